//! The aggregate-pushdown benchmark (`d365 bench aggregate`): each query run side by side
//! with aggregate (and join) pushdown on and off over the same connection, reporting wall
//! time, requests and bytes received, and checking that both give the same rows. The pushed
//! run is measured twice per round: as a new connection's (nothing remembered of the table),
//! then repeated on the same connection (the table's size known from the first run, see
//! [`TableExtent`](d365_client::TableExtent)).

use std::fmt;
use std::time::{Duration, Instant};

use d365_sql::SqlError;
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use d365_sql::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::connection::{Connection, EngineSettings};
use crate::error::Error;

/// The queries measured by default (the examples).
pub const DEFAULT_QUERIES: &[&str] = &[
    "SELECT statecodename, count(*), sum(revenue) FROM account GROUP BY statecodename",
    "SELECT count(*) FROM account",
    "SELECT a.name, c.fullname FROM account a JOIN contact c ON c.parentcustomerid = a.accountid \
     WHERE a.accountnumber IN ('ACC-0000010', 'ACC-0000020', 'ACC-0000030')",
    "SELECT a.name, c.fullname FROM account a LEFT JOIN contact c ON c.parentcustomerid = a.accountid \
     WHERE a.accountnumber IN ('ACC-0000010', 'ACC-0000020', 'ACC-0000030')",
];

/// One run of one query.
#[derive(Debug, Clone)]
pub struct Run {
    /// Wall time.
    pub elapsed: Duration,
    /// HTTP requests sent.
    pub requests: u64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Rows of the result.
    pub rows: usize,
}

/// Both runs of one query.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The SQL.
    pub sql: String,
    /// With aggregate pushdown, as a new connection runs it (nothing remembered).
    pub pushed: Run,
    /// With aggregate pushdown, run again on the same connection.
    pub repeated: Run,
    /// Computed locally from every row.
    pub local: Run,
}

/// The benchmark's result.
#[derive(Debug, Clone, Default)]
pub struct AggregateReport {
    /// One entry per query.
    pub queries: Vec<Comparison>,
}

fn cells(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, Error> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Sql(SqlError::Execution(e.to_string())))?;
        for i in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    out.sort();
    Ok(out)
}

/// How a query is run.
#[derive(Clone, Copy)]
enum Mode {
    /// Pushed, with nothing remembered of the tables.
    New,
    /// Pushed, after the `New` run on the same connection.
    Repeated,
    /// Computed locally.
    Local,
}

async fn run_once(conn: &Connection, sql: &str, mode: Mode) -> Result<(Run, Vec<Vec<String>>), Error> {
    let pushdown = !matches!(mode, Mode::Local);
    if matches!(mode, Mode::New) {
        conn.client.forget_learnt();
    }
    let settings = EngineSettings { aggregate_pushdown: pushdown, ..EngineSettings::default() };
    let engine = conn.engine(&settings).await?;
    // Metadata first, so only the query itself is measured.
    engine.sql(sql).await?;
    let before = conn.client.request_log().stats();
    let started = Instant::now();
    let batches = engine.collect(sql).await?;
    let elapsed = started.elapsed();
    let after = conn.client.request_log().stats();
    let rows = cells(&batches)?;
    let run = Run {
        elapsed,
        requests: after.requests - before.requests,
        bytes_received: after.bytes_received - before.bytes_received,
        rows: rows.len(),
    };
    Ok((run, rows))
}

/// Runs each of `queries` with aggregate pushdown (as a new connection, then repeated) and
/// without, `rounds` times each (the best time of each is kept), and fails if they give
/// different rows.
pub async fn aggregate_bench(conn: &Connection, queries: &[String], rounds: usize) -> Result<AggregateReport, Error> {
    let mut report = AggregateReport::default();
    for sql in queries {
        let mut best: [Option<Run>; 3] = [None, None, None];
        let mut results: [Vec<Vec<String>>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..rounds.max(1) {
            for (i, mode) in [Mode::New, Mode::Repeated, Mode::Local].into_iter().enumerate() {
                let (run, rows) = run_once(conn, sql, mode).await?;
                results[i] = rows;
                if best[i].as_ref().is_none_or(|b| run.elapsed < b.elapsed) {
                    best[i] = Some(run);
                }
            }
        }
        for (i, label) in [(0, "pushed"), (1, "pushed and repeated")] {
            if results[i] != results[2] {
                return Err(Error::Sql(SqlError::Execution(format!(
                    "aggregate pushdown changed the result of {sql}: {} rows {label}, {} rows local",
                    results[i].len(),
                    results[2].len()
                ))));
            }
        }
        let [Some(pushed), Some(repeated), Some(local)] = best else { continue };
        report.queries.push(Comparison { sql: sql.clone(), pushed, repeated, local });
    }
    Ok(report)
}

impl fmt::Display for AggregateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.queries {
            writeln!(f, "{}", c.sql)?;
            for (label, r) in [("pushed  ", &c.pushed), ("repeated", &c.repeated), ("local   ", &c.local)] {
                writeln!(
                    f,
                    "  {label}  {:>9.3} s  {:>6} requests  {:>14} bytes received  {} rows",
                    r.elapsed.as_secs_f64(),
                    r.requests,
                    r.bytes_received,
                    r.rows
                )?;
            }
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
            let local = c.local.elapsed.as_secs_f64();
            writeln!(
                f,
                "  pushdown: {:.1}x faster ({:.1}x repeated), {:.0}x fewer bytes ({:.0}x repeated), same rows",
                ratio(local, c.pushed.elapsed.as_secs_f64()),
                ratio(local, c.repeated.elapsed.as_secs_f64()),
                ratio(c.local.bytes_received as f64, c.pushed.bytes_received as f64),
                ratio(c.local.bytes_received as f64, c.repeated.bytes_received as f64)
            )?;
        }
        Ok(())
    }
}

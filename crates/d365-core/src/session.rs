//! [`Session`]: one connection and its SQL engine, running statements of every kind — queries,
//! writes, `EXEC` — with typed parameters. The CLI and the Python package are front ends over
//! it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use d365_auth::Interactive;
use d365_client::WriteProgress;
use d365_sql::datafusion::arrow::array::RecordBatch;
use d365_sql::datafusion::execution::SendableRecordBatchStream;
use d365_sql::{DmlOptions, DmlOutcome, SqlEngine};
use tokio::sync::OnceCell;

use crate::bulk;
use crate::connection::{Connection, EngineSettings};
use crate::error::Error;
use crate::exec_stmt::{ExecStatement, parse_exec};
use crate::params::{Param, bind};
use crate::procedure::run_procedure;

/// Values per `IN` list when `executemany` runs a `DELETE … WHERE <column> = ?`: the read's
/// `$filter` stays near 13 KB of URL (Dataverse takes up to 32 KB).
pub const DELETE_CHUNK: usize = 200;

/// Adds `outcome` to `total` (rows renumbered after the ones before); `true` when the statement
/// stopped and no further set should run.
fn absorb(total: &mut Option<DmlOutcome>, outcome: DmlOutcome) -> bool {
    let stopped = outcome.stopped.is_some();
    match total {
        None => *total = Some(outcome),
        Some(t) => {
            let offset = t.report.rows;
            t.report.rows += outcome.report.rows;
            t.report.written += outcome.report.written;
            t.report.requests += outcome.report.requests;
            t.report.elapsed += outcome.report.elapsed;
            t.report.failed.extend(outcome.report.failed.into_iter().map(|mut e| {
                e.index += offset;
                e
            }));
            t.report.not_attempted.extend(outcome.report.not_attempted.iter().map(|i| i + offset));
            t.skipped += outcome.skipped;
            t.planned.extend(outcome.planned);
            t.stopped = outcome.stopped;
        }
    }
    stopped
}

/// What a statement is, by its first keyword.
#[derive(Debug, PartialEq, Eq)]
pub enum StatementKind {
    /// A query (`SELECT`, `WITH`, `VALUES`, …): rows.
    Query,
    /// A write (`INSERT`, `UPSERT`, `UPDATE`, `DELETE`, `MERGE`).
    Write,
    /// `EXEC`/`EXECUTE` of an OAuth procedure.
    Exec(ExecStatement),
}

/// Classifies `sql`; an `EXEC` that does not parse is an error.
pub fn classify(sql: &str) -> Result<StatementKind, Error> {
    if SqlEngine::is_dml(sql) {
        return Ok(StatementKind::Write);
    }
    match parse_exec(sql) {
        Some(exec) => Ok(StatementKind::Exec(exec?)),
        None => Ok(StatementKind::Query),
    }
}

/// What running a statement produced.
pub enum Outcome {
    /// Rows, streamed as pages arrive.
    Rows(SendableRecordBatchStream),
    /// A write's report (rows written, failed, requests).
    Written(Box<DmlOutcome>),
    /// A procedure's result.
    Procedure(RecordBatch),
}

/// A connection with its SQL engine (built on first use: an `EXEC` of a sign-in procedure needs
/// none, and building one reads the table list).
pub struct Session {
    connection: Connection,
    settings: EngineSettings,
    engine: OnceCell<SqlEngine>,
    /// How a procedure may sign a user in (`GetOAuthAccessToken` with `AuthMode=APP`).
    pub interactive: Interactive,
    /// How long a browser sign-in started by a procedure may take.
    pub sign_in_timeout: Duration,
    next_table: AtomicU64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("connection", &self.connection).finish_non_exhaustive()
    }
}

impl Session {
    /// A session over `connection`.
    pub fn new(connection: Connection, settings: EngineSettings) -> Self {
        Self {
            connection,
            settings,
            engine: OnceCell::new(),
            interactive: Interactive::Browser,
            sign_in_timeout: Duration::from_secs(300),
            next_table: AtomicU64::new(1),
        }
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Keeps a copy of tables up to date in `options.to` (a local SQLite directory or a
    /// PostgreSQL database; see [`d365_sync::sync()`]).
    pub async fn sync(&self, options: &d365_sync::SyncOptions) -> Result<d365_sync::SyncReport, Error> {
        let mut options = options.clone();
        options.page_size = options.page_size.or(self.connection.query.page_size);
        Ok(d365_sync::sync(&self.connection.client, &options).await?)
    }

    /// Exports a table into a file (NDJSON, CSV or Parquet), resuming an interrupted run of the
    /// same export (see [`d365_sync::export()`]).
    pub async fn export(&self, options: &d365_sync::ExportOptions) -> Result<d365_sync::ExportSummary, Error> {
        let mut options = options.clone();
        options.page_size = options.page_size.or(self.connection.query.page_size);
        Ok(d365_sync::export(&self.connection.client, &options).await?)
    }

    /// The SQL engine (built on first call).
    pub async fn engine(&self) -> Result<&SqlEngine, Error> {
        self.engine.get_or_try_init(|| self.connection.engine(&self.settings)).await
    }

    /// Runs a query with `params` bound to its `?` markers: batches as pages arrive.
    pub async fn query(&self, sql: &str, params: &[Param]) -> Result<SendableRecordBatchStream, Error> {
        let (text, values) = bind(sql, params)?;
        Ok(self.engine().await?.stream_with_params(&text, &values).await?)
    }

    /// Runs a write statement with `params` bound to its `?` markers.
    pub async fn write(
        &self,
        sql: &str,
        params: &[Param],
        mut options: DmlOptions,
        progress: impl Fn(&WriteProgress) + Send + Sync,
    ) -> Result<DmlOutcome, Error> {
        let (text, values) = bind(sql, params)?;
        options.params = values;
        Ok(self.engine().await?.execute_dml(&text, &options, progress).await?)
    }

    /// Runs one write statement for many parameter sets, as few requests as the statement
    /// allows:
    ///
    /// - `INSERT`/`UPSERT … VALUES (?, …)`: one bulk write of every set (CreateMultiple /
    ///   UpsertMultiple chunks);
    /// - `UPDATE t SET … WHERE <key> = ?`: one `MERGE` by that key (UpdateMultiple chunks; sets
    ///   whose record does not exist are skipped, as their UPDATE would match nothing);
    /// - `DELETE FROM t WHERE <column> = ?`: `IN` lists of `DELETE_CHUNK` values (one read and
    ///   one `$batch` per list);
    /// - anything else runs once per set. The reports are added up; the first set whose
    ///   statement stops ends the run (the outcome says so).
    pub async fn write_many(
        &self,
        sql: &str,
        rows: &[Vec<Param>],
        options: DmlOptions,
        progress: impl Fn(&WriteProgress) + Send + Sync,
    ) -> Result<DmlOutcome, Error> {
        let name = format!("d365_params_{}", self.next_table.fetch_add(1, Ordering::Relaxed));
        if let Some((text, width)) = bulk::values_from_table(sql, &name).or_else(|| bulk::update_as_merge(sql, &name)) {
            let batch = bulk::params_batch(rows, width)?;
            let engine = self.engine().await?;
            engine.register_batch(&name, batch)?;
            let result = engine.execute_dml(&text, &options, &progress).await;
            engine.deregister_local(&name)?;
            match result {
                // The WHERE column is not a key, or SET reads the record: the MERGE is refused
                // before anything is sent, and the UPDATE runs once per set below.
                Err(e) if text.starts_with("MERGE") && e.is_user_error() => {
                    tracing::debug!(error = %e, "executemany: UPDATE by key not possible as one MERGE");
                }
                result => return Ok(result?),
            }
        }
        let mut total: Option<DmlOutcome> = None;
        if let Some(prefix) = bulk::delete_in_prefix(sql) {
            if let Some((r, row)) = rows.iter().enumerate().find(|(_, row)| row.len() != 1) {
                return Err(Error::Parameters(format!(
                    "parameter set {} has {} values but the statement has 1 marker (?)",
                    r + 1,
                    row.len()
                )));
            }
            for chunk in rows.chunks(DELETE_CHUNK) {
                let text = format!("{prefix}{})", vec!["?"; chunk.len()].join(", "));
                let values: Vec<Param> = chunk.iter().map(|row| row[0].clone()).collect();
                if absorb(&mut total, self.write(&text, &values, options.clone(), &progress).await?) {
                    break;
                }
            }
        } else {
            for row in rows {
                if absorb(&mut total, self.write(sql, row, options.clone(), &progress).await?) {
                    break;
                }
            }
        }
        total.ok_or_else(|| Error::Parameters("executemany needs at least one parameter set".into()))
    }

    /// Runs an `EXEC` of an OAuth procedure.
    pub async fn exec(&self, exec: &ExecStatement) -> Result<RecordBatch, Error> {
        run_procedure(
            exec,
            &self.connection.config,
            self.connection.environment.clone(),
            self.interactive,
            self.sign_in_timeout,
        )
        .await
    }

    /// Runs any statement with `params` bound to its `?` markers.
    pub async fn execute(&self, sql: &str, params: &[Param], options: DmlOptions) -> Result<Outcome, Error> {
        match classify(sql)? {
            StatementKind::Query => Ok(Outcome::Rows(self.query(sql, params).await?)),
            StatementKind::Write => Ok(Outcome::Written(Box::new(self.write(sql, params, options, |_| {}).await?))),
            StatementKind::Exec(exec) => {
                if !params.is_empty() {
                    return Err(Error::Parameters(
                        "EXEC takes its arguments as @Name = 'value', not as ? parameters".into(),
                    ));
                }
                Ok(Outcome::Procedure(self.exec(&exec).await?))
            }
        }
    }

    /// Stops the demo emulator, if the connection runs one.
    pub async fn close(self) {
        self.connection.close().await;
    }
}

//! `d365 query "INSERT …"`: write statements (INSERT, UPSERT, UPDATE, DELETE, MERGE) through
//! `d365_sql`'s write-back, with a progress line on a terminal, a summary on stderr, and an
//! error file listing every row that was not written.
//!
//! Exit codes: 0 every row written (or, with `--dry-run`, converted); 2 the statement or its
//! input is wrong (bad SQL, unknown table or column, read-only column, missing key, a
//! `--table` file that cannot be read, an atomic write refused before sending); 3 sign-in
//! failed; 4 the service refused the statement (e.g. 403 on the table) or stopped it, **or some
//! rows failed** (the others were written; see `--errors FILE`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use d365_client::WriteProgress;
use d365_sql::{DmlOptions, DmlOutcome, SqlEngine};
use serde_json::{Map, Value};

use crate::connect::{ConnectArgs, connect};
use crate::failure::Failure;
use crate::query_cmd::{engine, sql_failure};

/// `--concurrency`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Concurrency {
    /// Overwrite whatever the record holds now (the default).
    #[default]
    None,
    /// UPDATE/DELETE send the etag read with each row (`If-Match`): a row changed since it was
    /// read is reported (412), not overwritten.
    Optimistic,
}

/// Write-back options of `d365 query` (ignored by SELECT, except `--table`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DmlArgs {
    /// Show what a write statement would send (one JSON line per row: op, key, body) and write
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the rows that were not written to FILE (.csv or .ndjson): row number, key, column,
    /// HTTP status, Dataverse error code, message and the row's input values.
    #[arg(long, value_name = "FILE")]
    pub errors: Option<PathBuf>,
    /// Optimistic concurrency for UPDATE/DELETE.
    #[arg(long, value_enum, default_value = "none")]
    pub concurrency: Concurrency,
    /// Skip custom plug-ins and workflows (MSCRM.BypassBusinessLogicExecution; needs the
    /// bypass privilege).
    #[arg(long)]
    pub bypass_plugins: bool,
    /// Rows per request (1-1000, default 200).
    #[arg(long, value_name = "N")]
    pub chunk_size: Option<usize>,
    /// All rows or none: one $batch change set (at most 1,000 rows).
    #[arg(long)]
    pub atomic: bool,
    /// A local file as a table, NAME=FILE (.csv, .ndjson/.jsonl/.json, .parquet); repeatable.
    #[arg(long = "table", value_name = "NAME=FILE")]
    pub tables: Vec<String>,
    /// Write as this user (systemuserid; MSCRMCallerID). Overrides the connection's CallerId.
    #[arg(long, value_name = "GUID")]
    pub caller_id: Option<String>,
}

/// Registers every `--table NAME=FILE` in `engine`.
pub async fn register_tables(engine: &SqlEngine, tables: &[String]) -> Result<(), Failure> {
    for t in tables {
        let Some((name, file)) = t.split_once('=') else {
            return Err(Failure::bad_input(format!(
                "--table '{t}': expected NAME=FILE, e.g. --table staging=rows.csv"
            )));
        };
        engine
            .register_file(name, Path::new(file.trim()))
            .await
            .map_err(|e| Failure::bad_input(format!("--table {t}: {e}")))?;
    }
    Ok(())
}

fn options(args: &DmlArgs, parallel: Option<usize>) -> Result<DmlOptions, Failure> {
    let settings = d365_core::WriteSettings {
        chunk_size: args.chunk_size,
        parallel,
        bypass_plugins: args.bypass_plugins,
        optimistic: args.concurrency == Concurrency::Optimistic,
        atomic: args.atomic,
        caller_id: args.caller_id.clone(),
        dry_run: args.dry_run,
        keep_failed_inputs: args.errors.is_some(),
    };
    settings.dml_options().map_err(|e| Failure::bad_input(format!("--caller-id: {e}")))
}

/// Runs a write statement (`d365_sql::is_dml(sql)`); `parallel`: `d365 query --parallel`, the
/// requests in flight (1-52; default: the service's x-ms-dop-hint).
pub async fn run(
    connect_args: &ConnectArgs,
    sql: &str,
    refresh_metadata: bool,
    parallel: Option<usize>,
    args: &DmlArgs,
) -> Result<(), Failure> {
    let options = options(args, parallel)?;
    if let Some(path) = &args.errors {
        error_format(path)?;
    }
    let conn = connect(connect_args).await?;
    let result = async {
        let engine = engine(&conn, refresh_metadata, None, None).await?;
        register_tables(&engine, &args.tables).await?;
        let terminal = std::io::stderr().is_terminal();
        let progress = move |p: &WriteProgress| {
            if terminal {
                note_inline!(
                    "\r{} rows read, {} written, {} failed, {} requests   ",
                    p.rows_read,
                    p.written,
                    p.failed,
                    p.requests
                );
            }
        };
        let outcome = engine.execute_dml(sql, &options, progress).await.map_err(sql_failure)?;
        if terminal {
            note_inline!("\r\x1b[2K");
        }
        finish(outcome, args)
    }
    .await;
    conn.close().await;
    result
}

fn finish(mut outcome: DmlOutcome, args: &DmlArgs) -> Result<(), Failure> {
    let stopped = outcome.stopped.take();
    let outcome = &outcome;
    let r = &outcome.report;
    if outcome.dry_run {
        let mut out = std::io::stdout().lock();
        for p in &outcome.planned {
            writeln!(out, "{}", p.to_json()).map_err(Failure::output)?;
        }
    }
    if let Some(path) = &args.errors {
        write_errors(path, outcome)?;
    }
    let failed = r.failed.len() + r.not_attempted.len();
    let verb = outcome.op.name().to_ascii_lowercase();
    if outcome.dry_run {
        note!(
            "dry run: {} of {} rows of {} would be sent ({verb}), {} failed to convert; nothing written",
            outcome.planned.len(),
            r.rows,
            outcome.table,
            r.failed.len()
        );
    } else {
        let mut line = format!(
            "{verb} {}: {} written, {} failed, {} requests, {:.1} s ({:.0} rows/s)",
            outcome.table,
            rows(r.written),
            failed,
            r.requests,
            r.elapsed.as_secs_f64(),
            r.rows_per_second()
        );
        if outcome.skipped > 0 {
            line.push_str(&format!(", {} skipped (MERGE: nothing to do)", outcome.skipped));
        }
        note!("{line}");
    }
    for e in r.failed.iter().take(5) {
        note!("  {e}");
    }
    if r.failed.len() > 5 {
        note!(
            "  … {} more{}",
            r.failed.len() - 5,
            if args.errors.is_some() { "" } else { " (--errors FILE lists them all)" }
        );
    }
    if let Some(stop) = stopped {
        let mut f = sql_failure(stop);
        f.message = format!("the statement stopped: {}", f.message);
        return Err(f);
    }
    if failed > 0 {
        let hint = match &args.errors {
            Some(p) => format!("; they are listed in {}", p.display()),
            None => "; --errors FILE lists them".into(),
        };
        return Err(Failure::service(format!("{failed} of {} rows were not written{hint}", r.rows)));
    }
    Ok(())
}

/// `csv` or `ndjson`, from the error file's extension.
fn error_format(path: &Path) -> Result<&'static str, Failure> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Ok("csv"),
        Some("ndjson" | "jsonl" | "json") => Ok("ndjson"),
        _ => Err(Failure::bad_input(format!("--errors {}: use a .csv or .ndjson file", path.display()))),
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// One line per row not written: failed rows, then rows never attempted.
fn write_errors(path: &Path, outcome: &DmlOutcome) -> Result<(), Failure> {
    let format = error_format(path)?;
    let io = |e: std::io::Error| Failure::service(format!("cannot write {}: {e}", path.display()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let mut records: Vec<Map<String, Value>> = Vec::new();
    let values = |i: u64| outcome.inputs.get(&i).cloned().map(Value::Object).unwrap_or(Value::Null);
    for e in &outcome.report.failed {
        let mut m = Map::new();
        m.insert("row".into(), Value::from(e.index));
        m.insert("key".into(), e.key.as_ref().map_or(Value::Null, |k| Value::from(k.to_odata())));
        m.insert("column".into(), e.column.clone().map_or(Value::Null, Value::from));
        m.insert("status".into(), e.status.map_or(Value::Null, Value::from));
        m.insert("code".into(), Value::from(e.code.clone()));
        m.insert("message".into(), Value::from(e.message.clone()));
        m.insert("values".into(), values(e.index));
        records.push(m);
    }
    for &i in &outcome.report.not_attempted {
        let mut m = Map::new();
        m.insert("row".into(), Value::from(i));
        m.insert("key".into(), Value::Null);
        m.insert("column".into(), Value::Null);
        m.insert("status".into(), Value::Null);
        m.insert("code".into(), Value::from("NotWritten"));
        m.insert("message".into(), Value::from("not written: the statement stopped (or was rolled back) first"));
        m.insert("values".into(), values(i));
        records.push(m);
    }
    if format == "csv" {
        const COLUMNS: [&str; 7] = ["row", "key", "column", "status", "code", "message", "values"];
        writeln!(out, "{}", COLUMNS.join(",")).map_err(io)?;
        for m in &records {
            let cells: Vec<String> = COLUMNS
                .iter()
                .map(|k| match &m[*k] {
                    Value::Null => String::new(),
                    Value::String(s) => csv_cell(s),
                    other => csv_cell(&other.to_string()),
                })
                .collect();
            writeln!(out, "{}", cells.join(",")).map_err(io)?;
        }
    } else {
        for m in records {
            writeln!(out, "{}", Value::Object(m)).map_err(io)?;
        }
    }
    out.flush().map_err(io)
}

/// `1 row`, `2 rows`.
fn rows(n: u64) -> String {
    format!("{n} row{}", if n == 1 { "" } else { "s" })
}

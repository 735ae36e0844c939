//! `d365 query`, `d365 tables`, `d365 describe` and `d365 shell`: SQL over the Dataverse Web
//! API through the `d365-sql` engine, printed as a table on a terminal and as CSV when piped.

use crate::connect::{ConnectArgs, Connection, connect};
use crate::failure::Failure;
use d365_sql::datafusion::arrow::array::RecordBatch;
use d365_sql::datafusion::arrow::datatypes::SchemaRef;
use d365_sql::{SqlEngine, SqlError};
use futures::StreamExt;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An aligned table (the default on a terminal).
    Table,
    /// Comma-separated values with a header (the default when piped).
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet (needs --output).
    Parquet,
}

/// Options of `d365 query`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  d365 --demo query \"SELECT name, revenue FROM account WHERE statecode = 0 ORDER BY revenue DESC LIMIT 10\"
  d365 query \"SELECT a.name, c.fullname FROM account a JOIN contact c ON c.parentcustomerid = a.accountid LIMIT 5\"
  d365 query \"SELECT statecodename, count(*) FROM account GROUP BY statecodename\" --format json
  d365 query \"SELECT * FROM contact\" --format parquet --output contacts.parquet
  d365 query --explain \"SELECT name FROM account WHERE name LIKE 'Contoso%' LIMIT 5\"
  d365 query --explain \"SELECT statecodename, count(*), sum(revenue) FROM account GROUP BY statecodename\"
  d365 query \"EXEC GetOAuthAuthorizationUrl @CallbackURL = 'http://localhost:33333'\"")]
pub struct QueryArgs {
    /// The SQL query (DataFusion SQL; tables by logical name), or `EXEC Procedure @Arg = 'value'`.
    sql: String,
    /// Output format (default: from the output file's extension — .parquet, .csv, .json,
    /// .ndjson/.jsonl —, else table on a terminal, csv otherwise).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print the plan and the exact Web API requests instead of running the query; for a write
    /// (INSERT, UPDATE, …), a dry run: the requests it would send, nothing written.
    #[arg(long)]
    explain: bool,
    /// Fetch table definitions again instead of using the metadata cache.
    #[arg(long)]
    refresh_metadata: bool,
    /// Concurrent requests for whole-table reads (default: from the service's x-ms-dop-hint,
    /// adapting to throttling); 1 reads one page chain.
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    parallel: Option<usize>,
    /// Compute GROUP BY / COUNT / SUM / AVG / MIN / MAX locally from every row instead of at
    /// the service, and joins locally from both tables read whole, instead of as FetchXML
    /// link-entity queries or by keys (for comparison, or if a service-side aggregate or join
    /// misbehaves). Also spelled --no-join-pushdown.
    #[arg(long, alias = "no-join-pushdown")]
    no_aggregate_pushdown: bool,
    /// Write-back options (INSERT, UPSERT, UPDATE, DELETE, MERGE).
    #[command(flatten)]
    dml: crate::dml_cmd::DmlArgs,
}

/// Options of `d365 tables`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  d365 --demo tables
  d365 tables 'new_*'
  d365 tables --counts 'account*'")]
pub struct TablesArgs {
    /// Only tables whose name contains this text (`*` and `?` wildcards allowed).
    pattern: Option<String>,
    /// Also print each table's row count, from the service's snapshot (at most 24 hours old;
    /// one request per 40 tables; `-` where you may not read the table). `SELECT count(*)` is
    /// exact. Dataverse only.
    #[arg(long)]
    counts: bool,
}

/// Options of `d365 describe`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  d365 --demo describe account")]
pub struct DescribeArgs {
    /// The table's logical name.
    table: String,
}

/// Options of `d365 shell`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  d365 --demo shell
  (end statements with ';', \\q or Ctrl-D to leave; history is kept in the config directory)")]
pub struct ShellArgs {}

pub(crate) fn sql_failure(e: SqlError) -> Failure {
    match e {
        SqlError::Client(c) => Failure::from_client(c),
        e if e.is_user_error() => Failure::bad_input(e.to_string()),
        e => Failure::service(e.to_string()),
    }
}

/// The format asked for, else a table on a terminal and CSV otherwise (or into a file).
fn output_format(args: &QueryArgs) -> Format {
    if let Some(f) = args.format {
        return f;
    }
    // An output file names its format by its extension.
    let ext = args.output.as_ref().and_then(|o| o.extension()).map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("parquet") => return Format::Parquet,
        Some("ndjson" | "jsonl") => return Format::Ndjson,
        Some("json") => return Format::Json,
        Some("csv") => return Format::Csv,
        _ => {}
    }
    if std::io::stdout().is_terminal() && args.output.is_none() { Format::Table } else { Format::Csv }
}

/// The engine of a connection (see [`d365_core::Connection::engine`]); `parallel` fixes the
/// concurrency of whole-table reads (1 = one page chain).
pub(crate) async fn engine(
    conn: &Connection,
    refresh: bool,
    parallel: Option<usize>,
    page_size: Option<u32>,
) -> Result<SqlEngine, Failure> {
    let settings = d365_core::EngineSettings { refresh_metadata: refresh, parallel, page_size, ..Default::default() };
    engine_with(conn, &settings).await
}

/// The engine of a connection with every setting given.
pub(crate) async fn engine_with(conn: &Connection, settings: &d365_core::EngineSettings) -> Result<SqlEngine, Failure> {
    conn.engine(settings).await.map_err(Failure::from_d365)
}

/// Runs `d365 query`.
pub async fn query(connect_args: &ConnectArgs, args: QueryArgs) -> Result<(), Failure> {
    // Checked before signing in: an output that cannot be written is refused at once.
    let target = args.output.as_deref().map(Output::resolve).transpose()?;
    match d365_core::classify(&args.sql).map_err(Failure::from_d365)? {
        d365_core::StatementKind::Write => {
            // A write's plan is what it would send: --explain runs it as a dry run, never for real.
            let mut dml = args.dml.clone();
            dml.dry_run |= args.explain;
            return crate::dml_cmd::run(connect_args, &args.sql, args.refresh_metadata, args.parallel, &dml).await;
        }
        d365_core::StatementKind::Exec(exec) => return run_procedure(connect_args, exec, &args).await,
        d365_core::StatementKind::Query => {}
    }
    let conn = connect(connect_args).await?;
    let result = async {
        let settings = d365_core::EngineSettings {
            refresh_metadata: args.refresh_metadata,
            parallel: args.parallel,
            page_size: None,
            aggregate_pushdown: !args.no_aggregate_pushdown,
        };
        let engine = engine_with(&conn, &settings).await?;
        crate::dml_cmd::register_tables(&engine, &args.dml.tables).await?;
        if args.explain {
            say!("{}", engine.explain(&args.sql).await.map_err(sql_failure)?);
            return Ok(());
        }
        let format = output_format(&args);
        if let Some(location) = target.as_ref().and_then(|t| t.delta.as_ref()) {
            return Output::write_delta(&engine, &args.sql, location).await;
        }
        run_to(&engine, &args.sql, format, target.as_ref().map(|t| t.local.as_path())).await?;
        match &target {
            Some(t) => t.upload().await,
            None => Ok(()),
        }
    }
    .await;
    conn.close().await;
    result
}

/// `EXEC Procedure @Arg = 'value'`: the sign-in procedures (as `d365 proc`), their result as
/// a table of text columns in the chosen format.
async fn run_procedure(
    connect_args: &ConnectArgs,
    exec: d365_core::ExecStatement,
    args: &QueryArgs,
) -> Result<(), Failure> {
    use std::time::Duration;
    if args.explain {
        return Err(Failure::bad_input("--explain shows query plans; EXEC runs a sign-in procedure, which has none"));
    }
    d365_auth::procedures::procedure(&exec.name).map_err(Failure::from_auth)?;
    let (config, env) = crate::login_cmd::connection_config(connect_args, "query \"EXEC ...\"")?;
    let batch =
        d365_core::run_procedure(&exec, &config, env, d365_auth::Interactive::Browser, Duration::from_secs(300))
            .await
            .map_err(Failure::from_d365)?;
    let schema = batch.schema();
    let format = output_format(args);
    let mut sink = Sink::new(format, open_output(args.output.as_deref(), format)?, schema, args.output.is_none())?;
    sink.write(batch)?;
    sink.finish()
}

/// Where a result file goes: the local file written, then, for an object-store URL
/// (`s3://…`, `abfss://…`, `gs://…`), the object it is uploaded to in parts once complete (so
/// a failed query leaves no object).
/// A Delta location (`delta+…`) takes the result as a table instead, in one commit.
struct Output {
    local: PathBuf,
    remote: Option<d365_sync::RemoteUrl>,
    delta: Option<d365_sync::DeltaLocation>,
}

impl Output {
    fn resolve(out: &std::path::Path) -> Result<Self, Failure> {
        let text = out.to_string_lossy();
        match d365_sync::parse_destination(&text, "--output").map_err(crate::export_cmd::failure)? {
            d365_sync::Destination::Remote(r) => Ok(Self {
                local: r.staging_file(None).map_err(crate::export_cmd::failure)?,
                remote: Some(r),
                delta: None,
            }),
            d365_sync::Destination::Local(p) => Ok(Self { local: p, remote: None, delta: None }),
            d365_sync::Destination::Delta(d) => Ok(Self { local: PathBuf::new(), remote: None, delta: Some(d) }),
            d365_sync::Destination::Postgres(_) => Err(d365_sync::local_path(&text, "--output")
                .err()
                .map(crate::export_cmd::failure)
                .unwrap_or_else(|| Failure::bad_input("--output is not a file"))),
        }
    }

    /// Streams the result of `sql` into the Delta table of this output, in one commit.
    async fn write_delta(engine: &SqlEngine, sql: &str, location: &d365_sync::DeltaLocation) -> Result<(), Failure> {
        let mut stream = engine.stream(sql).await.map_err(sql_failure)?;
        let mut writer = d365_sync::delta::TableWriter::begin(location, location.url(), stream.schema())
            .await
            .map_err(crate::export_cmd::failure)?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| sql_failure(SqlError::from(e)))?;
            writer.write(batch).await.map_err(crate::export_cmd::failure)?;
        }
        let rows = writer.rows();
        writer.commit(std::collections::HashMap::new()).await.map_err(crate::export_cmd::failure)?;
        note!("{rows} rows written to the Delta table {location}");
        Ok(())
    }

    /// Uploads the local file when the output is an object, then removes it.
    async fn upload(&self) -> Result<(), Failure> {
        let Some(remote) = &self.remote else { return Ok(()) };
        let bytes = remote.upload(&self.local).await.map_err(crate::export_cmd::failure)?;
        let _ = std::fs::remove_file(&self.local);
        note!("uploaded {bytes} bytes to {remote}");
        Ok(())
    }
}

fn open_output(output: Option<&std::path::Path>, format: Format) -> Result<Box<dyn Write + Send>, Failure> {
    if let Some(p) = output {
        d365_sync::local_path(&p.to_string_lossy(), "--output").map_err(crate::export_cmd::failure)?;
    }
    Ok(match output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| Failure::bad_input(format!("cannot create {}: {e}", p.display())))?,
        )),
        None if format == Format::Parquet => {
            return Err(Failure::bad_input("--format parquet needs --output FILE"));
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

async fn run_to(
    engine: &SqlEngine,
    sql: &str,
    format: Format,
    output: Option<&std::path::Path>,
) -> Result<(), Failure> {
    run_with_progress(engine, sql, format, output, None).await.map(|_| ())
}

/// Live progress of a long query on a terminal: rows, requests, rows/s.
struct Progress {
    client: d365_client::DataverseClient,
    started: std::time::Instant,
    requests_before: u64,
    last: std::time::Instant,
}

impl Progress {
    fn line(&self, rows: usize) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let requests = self.client.request_log().stats().requests - self.requests_before;
        format!("{rows} rows, {requests} requests, {:.0} rows/s, {secs:.1} s", rows as f64 / secs)
    }
}

async fn run_with_progress(
    engine: &SqlEngine,
    sql: &str,
    format: Format,
    output: Option<&std::path::Path>,
    mut progress: Option<Progress>,
) -> Result<String, Failure> {
    let mut stream = engine.stream(sql).await.map_err(sql_failure)?;
    let schema = stream.schema();
    let out = open_output(output, format)?;
    let mut sink = Sink::new(format, out, schema, output.is_none())?;
    let mut rows = 0usize;
    let terminal = std::io::stderr().is_terminal();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| sql_failure(SqlError::from(e)))?;
        rows += batch.num_rows();
        sink.write(batch)?;
        if let Some(p) = progress.as_mut().filter(|p| terminal && p.last.elapsed().as_millis() >= 250) {
            p.last = std::time::Instant::now();
            note_inline!("\r\x1b[2K{}", p.line(rows));
        }
    }
    sink.finish()?;
    match (&progress, output) {
        (Some(p), _) => {
            if terminal {
                note_inline!("\r\x1b[2K");
            }
            Ok(p.line(rows))
        }
        (None, Some(path)) => {
            note!("{rows} rows written to {}", path.display());
            Ok(String::new())
        }
        (None, None) => Ok(String::new()),
    }
}

/// `d365 export --query SQL` / `--format parquet`: the result streamed into `output`, with
/// progress on a terminal and a summary line.
pub async fn export(
    connect_args: &ConnectArgs,
    sql: &str,
    format: Format,
    output: &std::path::Path,
    page_size: Option<u32>,
    parallel: Option<usize>,
) -> Result<(), Failure> {
    let target = Output::resolve(output)?;
    let output = target.local.as_path();
    let conn = connect(connect_args).await?;
    let result = async {
        let engine = engine(&conn, false, parallel, page_size).await?;
        if let Some(location) = &target.delta {
            return Output::write_delta(&engine, sql, location).await;
        }
        let now = std::time::Instant::now();
        let progress = Progress {
            client: conn.client.clone(),
            started: now,
            requests_before: conn.client.request_log().stats().requests,
            last: now,
        };
        // Write next to the target and rename at the end: a failed export leaves no half file.
        let tmp =
            output.with_extension(format!("{}.partial", output.extension().and_then(|e| e.to_str()).unwrap_or("out")));
        let r = run_with_progress(&engine, sql, format, Some(&tmp), Some(progress)).await;
        match r {
            Ok(summary) => {
                std::fs::rename(&tmp, output).map_err(|e| {
                    Failure::service(format!("cannot move {} to {}: {e}", tmp.display(), output.display()))
                })?;
                note!("{summary}: written to {}", output.display());
                target.upload().await
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
    .await;
    conn.close().await;
    result
}

/// Writes batches in one format as they arrive (the table format waits for all rows, to
/// align the columns).
enum Sink {
    Table(Box<dyn Write + Send>, SchemaRef, Vec<RecordBatch>),
    Json(d365_sql::datafusion::arrow::json::ArrayWriter<Box<dyn Write + Send>>),
    /// NDJSON, CSV and Parquet: the writer layer exports share.
    File(d365_sync::writer::BatchWriter<Box<dyn Write + Send>>),
}

fn io_failure(e: impl std::fmt::Display) -> Failure {
    Failure::output(e)
}

impl Sink {
    /// `to_stdout`: CSV lines end with LF (a terminal, a Unix pipe); files get RFC 4180's CRLF.
    fn new(format: Format, out: Box<dyn Write + Send>, schema: SchemaRef, to_stdout: bool) -> Result<Self, Failure> {
        use d365_sync::Format as File;
        use d365_sync::writer::BatchWriter;
        Ok(match format {
            Format::Table => Sink::Table(out, schema, Vec::new()),
            Format::Json => Sink::Json(d365_sql::datafusion::arrow::json::ArrayWriter::new(out)),
            Format::Csv => Sink::File(BatchWriter::with_csv_lf(File::Csv, out, schema, to_stdout).map_err(io_failure)?),
            Format::Ndjson => Sink::File(BatchWriter::new(File::Ndjson, out, schema).map_err(io_failure)?),
            Format::Parquet => Sink::File(BatchWriter::new(File::Parquet, out, schema).map_err(io_failure)?),
        })
    }

    fn write(&mut self, batch: RecordBatch) -> Result<(), Failure> {
        match self {
            Sink::Table(_, _, all) => {
                all.push(batch);
                Ok(())
            }
            Sink::Json(w) => w.write(&batch).map_err(io_failure),
            Sink::File(w) => w.write(&batch).map_err(io_failure),
        }
    }

    fn finish(self) -> Result<(), Failure> {
        match self {
            Sink::Table(mut out, schema, all) => {
                let rows: usize = all.iter().map(RecordBatch::num_rows).sum();
                let text = if all.is_empty() {
                    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                    names.join(" | ")
                } else {
                    d365_sql::datafusion::arrow::util::pretty::pretty_format_batches(&all)
                        .map_err(io_failure)?
                        .to_string()
                };
                writeln!(out, "{text}").map_err(io_failure)?;
                writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" }).map_err(io_failure)?;
                out.flush().map_err(io_failure)
            }
            Sink::Json(mut w) => {
                w.finish().map_err(io_failure)?;
                // A text file (and a terminal's prompt) wants the last line ended.
                let mut out = w.into_inner();
                writeln!(out).map_err(io_failure)?;
                out.flush().map_err(io_failure)
            }
            Sink::File(w) => w.finish().map_err(io_failure)?.flush().map_err(io_failure),
        }
    }
}

fn matches_pattern(name: &str, pattern: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let n = name.to_ascii_lowercase();
    if !p.contains(['*', '?']) {
        return n.contains(&p);
    }
    // Glob: `*` any run, `?` one character.
    fn glob(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], n) || (!n.is_empty() && glob(p, &n[1..])),
            (Some(b'?'), Some(_)) => glob(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => glob(&p[1..], &n[1..]),
            _ => false,
        }
    }
    glob(p.as_bytes(), n.as_bytes())
}

/// Runs `d365 tables`.
pub async fn tables(connect_args: &ConnectArgs, args: TablesArgs) -> Result<(), Failure> {
    let conn = connect(connect_args).await?;
    let result = async {
        let engine = engine(&conn, false, None, None).await?;
        let mut names = engine.table_names();
        names.sort();
        names.retain(|n| args.pattern.as_deref().is_none_or(|p| matches_pattern(n, p)));
        if !args.counts {
            for n in &names {
                say!("{n}");
            }
            return Ok(());
        }
        let counts = conn.client.record_counts(&names).await.map_err(Failure::from_client)?;
        let width = names.iter().map(String::len).max().unwrap_or(0);
        for (n, c) in names.iter().zip(counts) {
            say!("{n:<width$}  {}", c.map_or_else(|| "-".to_string(), |c| c.to_string()));
        }
        note!("(row counts from the service's snapshot, at most 24 hours old)");
        Ok(())
    }
    .await;
    conn.close().await;
    result
}

/// Runs `d365 describe`.
pub async fn describe(connect_args: &ConnectArgs, args: DescribeArgs) -> Result<(), Failure> {
    let conn = connect(connect_args).await?;
    let result = async {
        let engine = engine(&conn, false, None, None).await?;
        if args.table.contains('.') {
            // A table of another schema (`metadata.entity`): its SQL columns.
            let schema = engine.sql_columns(&args.table).await.map_err(sql_failure)?;
            let width = schema.fields().iter().map(|f| f.name().len()).max().unwrap_or(4).max(6);
            say!("{:<width$}  sql type", "column");
            for f in schema.fields() {
                say!("{:<width$}  {}", f.name(), f.data_type());
            }
            return Ok(());
        }
        let t = engine.describe(&args.table).await.map_err(sql_failure)?;
        let finops = t.dialect == d365_sql::Dialect::FinOps;
        let key = if finops && !t.key_fields.is_empty() {
            t.key_fields.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
        } else {
            t.primary_key.clone()
        };
        say!("{} (entity set {}, key {key})", t.entity.logical_name, t.entity_set);
        let width = t.columns.iter().map(|c| c.name.len()).max().unwrap_or(4).max(6);
        let (service_type, property) =
            if finops { ("f&o type", "odata property") } else { ("dataverse type", "web api property") };
        say!("{:<width$}  {:<28}  {:<18}  {property}", "column", "sql type", service_type);
        for (c, f) in t.columns.iter().zip(t.arrow.fields()) {
            let ty = match t.enums.get(&c.property) {
                Some(e) => format!("Enum {}", e.name),
                None => c.attribute_type.clone(),
            };
            say!("{:<width$}  {:<28}  {:<18}  {}", c.name, f.data_type().to_string(), ty, c.property);
        }
        Ok(())
    }
    .await;
    conn.close().await;
    result
}

/// Runs `d365 shell`: an interactive SQL prompt with history.
pub async fn shell(connect_args: &ConnectArgs, _args: ShellArgs) -> Result<(), Failure> {
    let conn = connect(connect_args).await?;
    let result = async {
        let engine = engine(&conn, false, None, None).await?;
        let mut rl =
            rustyline::DefaultEditor::new().map_err(|e| Failure::service(format!("cannot start the prompt: {e}")))?;
        let history = d365_auth::Environment::from_process().d365_config_dir().map(|d| d.join("shell_history"));
        if let Some(h) = &history {
            let _ = rl.load_history(h);
        }
        note!("d365 SQL shell on {} — end statements with ';', \\q to quit.", conn.config.organization_url);
        // Statements piped in (`d365 shell < script.sql`) make a script: a failed statement is
        // the script's exit code, and a last statement without ';' still runs.
        let interactive = std::io::stdin().is_terminal();
        let mut failed: Vec<Failure> = Vec::new();
        let mut buffer = String::new();
        loop {
            let prompt = if buffer.is_empty() { "d365> " } else { "   -> " };
            // The end of the input ends the statement being typed.
            let (line, end) = match rl.readline(prompt) {
                Ok(l) => (l, false),
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    buffer.clear();
                    continue;
                }
                Err(_) => (String::from(";"), true),
            };
            let trimmed = line.trim();
            if buffer.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
                break;
            }
            buffer.push_str(&line);
            buffer.push('\n');
            if !trimmed.ends_with(';') {
                continue;
            }
            let sql = buffer.trim().trim_end_matches(';').trim().to_string();
            buffer.clear();
            if !sql.is_empty() {
                let _ = rl.add_history_entry(sql.as_str());
                if let Err(e) = run_to(&engine, &sql, Format::Table, None).await {
                    note!("error: {e}");
                    failed.push(e);
                }
            }
            if end {
                break;
            }
        }
        if let Some(h) = &history {
            if let Some(dir) = h.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = rl.save_history(h);
        }
        match failed.pop() {
            Some(last) if !interactive => Err(Failure {
                message: format!(
                    "{} statement{} of the script failed (above); the last: {}",
                    failed.len() + 1,
                    if failed.is_empty() { "" } else { "s" },
                    last.message
                ),
                code: last.code,
            }),
            _ => Ok(()),
        }
    }
    .await;
    conn.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_patterns() {
        assert!(matches_pattern("new_widget", "new_*"));
        assert!(matches_pattern("account", "COUNT"));
        assert!(!matches_pattern("account", "new_*"));
        assert!(matches_pattern("lead", "l??d"));
    }
}

//! `d365 export`: a table into an NDJSON, CSV or Parquet file, typed like the SQL engine's
//! columns, read in parallel partitions, resumable (re-run the same command after a crash or
//! Ctrl-C); or the result of a SQL query (`--query`) through the same writers.

use std::io::IsTerminal;
use std::path::PathBuf;

use d365_sync::{ExportOptions, Format, Reporter, SyncError};

use crate::connect::{ConnectArgs, connect};
use crate::failure::Failure;

/// Options of `d365 export`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Columns are typed as in SQL (exact decimals, UTC timestamps, dates) and include choice \
labels and lookup names (statecodename, parentaccountidname...). A checkpoint and part files are kept in \
OUTPUT.parts/ while the export runs; re-running the same command resumes an interrupted export, in every \
format. Rows come in createdon order.

--query SQL runs through the SQL engine instead (whole-table scans still read partitions in
parallel): the file is written as rows arrive and an interrupted export starts over.

Examples:
  d365 --demo export account -o accounts.ndjson
  d365 export contact --select contactid,fullname,emailaddress1 --format csv -o contacts.csv
  d365 export account --filter \"statecode eq 0\" --parallel 16 -o active.ndjson
  d365 export account --format parquet -o accounts.parquet
  d365 export account --format parquet -o s3://lake/crm/accounts.parquet   # AWS_* settings from the environment
  d365 export account -o delta+s3://lake/crm/account      # a Delta Lake table (one commit; re-runs resume)
  d365 export account --format delta -o lake/account     # a local Delta table
  d365 export account --select name,revenue -o postgresql://etl@db/analytics?schema=crm   # table crm.account, replaced
  d365 export account --select accountid,name,revenue,statecodename --format parquet -o accounts.parquet
  d365 export --query \"SELECT name, revenue FROM account WHERE statecode = 0\" --format parquet -o active.parquet
  d365 export --query \"SELECT statecodename, count(*) AS n FROM account GROUP BY statecodename\" --format csv -o s3://lake/reports/states.csv
  d365 export --query \"SELECT accountid, name, revenue FROM account WHERE statecode = 0\" -o delta+s3://lake/active_accounts
  d365 export --manifest s3://lake/plans/crm.jsonl --shard 1/3      # a worker of a plan (see d365 plan --help)")]
pub struct ExportArgs {
    /// Table: logical name (account) or entity set name (accounts).
    #[arg(required_unless_present_any = ["query", "manifest"])]
    table: Option<String>,
    /// Run work units of a plan written by `d365 plan` (a scaled-out export: see
    /// `d365 plan --help`): this worker's --shard, the --unit given, or every unit not complete.
    #[arg(long, value_name = "FILE|URL", conflicts_with_all = ["table", "query", "select", "filter", "output", "fsync"])]
    manifest: Option<String>,
    /// With --manifest: this worker's share, INDEX/COUNT with a 0-based index (0/3, 1/3, 2/3;
    /// $JOB_COMPLETION_INDEX in a Kubernetes Indexed Job).
    #[arg(long, value_name = "I/N", requires = "manifest")]
    shard: Option<String>,
    /// With --manifest: run this unit (repeatable), even if complete: its output is replaced.
    #[arg(long = "unit", value_name = "ID", requires = "manifest", conflicts_with = "shard")]
    units: Vec<String>,
    /// Export the result of a SQL query instead of a table (see `d365 query --help`).
    #[arg(long, value_name = "SQL", conflicts_with_all = ["table", "select", "filter", "fsync"])]
    query: Option<String>,
    /// Columns to export (comma-separated SQL column names, e.g. name,statecodename); all by
    /// default.
    #[arg(long, value_delimiter = ',')]
    select: Vec<String>,
    /// OData $filter of the rows to export.
    #[arg(long)]
    filter: Option<String>,
    /// Output format: ndjson, csv, parquet, delta (a Delta Lake table; implied by a delta+… output).
    /// Default: from the output's extension (.parquet, .csv, .ndjson/.jsonl), else ndjson.
    #[arg(long = "format")]
    format_arg: Option<String>,
    /// Output file (default: TABLE.FORMAT), or an object: s3://bucket/key, az://container/key,
    /// abfss://fs@account.dfs.core.windows.net/key, gs://bucket/key (credentials and endpoint
    /// from AWS_*, AZURE_STORAGE_*, GOOGLE_* variables; staged locally, then one multipart
    /// upload: no partial object is ever visible), a Delta table: delta:DIR,
    /// delta+file:///DIR, delta+s3://bucket/prefix, delta+abfss://…, delta+gs://…, or a
    /// PostgreSQL database: postgresql://USER@HOST/DB[?schema=S] (the table of the same name,
    /// its rows replaced in one transaction; the primary key is always exported).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Concurrent requests (default: from the service's x-ms-dop-hint, adapting to throttling).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    parallel: Option<usize>,
    /// Rows per page (1-5000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=5000))]
    page_size: Option<u32>,
    /// Sync part files and checkpoint to disk every second (resume also after a power loss).
    #[arg(long)]
    fsync: bool,
}

/// The failure of an export or sync, with its exit code.
pub fn failure(e: SyncError) -> Failure {
    match e {
        SyncError::Client(c) => Failure::from_client(c),
        e if e.is_user_error() => Failure::bad_input(e.to_string()),
        e => Failure::service(e.to_string()),
    }
}

impl ExportArgs {
    /// `--format`, else the output file's extension (`.parquet`, `.csv`, `.ndjson`, `.jsonl`,
    /// `.json`), else ndjson.
    fn format(&self) -> String {
        if let Some(f) = &self.format_arg {
            return f.clone();
        }
        let ext = self
            .output
            .as_ref()
            .and_then(|o| o.extension())
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "parquet" | "csv" => ext,
            _ => "ndjson".into(),
        }
    }
}

/// Runs `d365 export`.
pub async fn run(connect_args: &ConnectArgs, args: ExportArgs) -> Result<(), Failure> {
    // Before connecting: a destination that cannot be written is refused at once, not after a
    // sign-in (an object store is checked for its URL and settings, not reached yet).
    let mut staged = None;
    let delta = args.format().eq_ignore_ascii_case("delta");
    if let Some(out) = &args.output {
        let text = out.to_string_lossy();
        match d365_sync::parse_destination(&text, "--output").map_err(failure)? {
            d365_sync::Destination::Remote(r) if args.query.is_none() && !delta => {
                staged = Some(r.staging_file(None).map_err(failure)?);
            }
            d365_sync::Destination::Delta(_) => {}
            d365_sync::Destination::Postgres(_) if args.query.is_none() => {}
            d365_sync::Destination::Local(_) | d365_sync::Destination::Remote(_) if args.query.is_none() && delta => {}
            // Query results are written locally, then uploaded (see `query_cmd::Output`).
            d365_sync::Destination::Remote(_) => {}
            _ => {
                d365_sync::local_path(&text, "--output").map_err(failure)?;
            }
        }
    }
    if args.query.is_some() {
        return run_sql(connect_args, args).await;
    }
    if let Some(manifest) = &args.manifest {
        let shard = args.shard.as_deref();
        return crate::plan_cmd::run_worker(connect_args, manifest, shard, args.units, args.parallel, args.page_size)
            .await;
    }
    let format: Format = args.format().parse().map_err(failure)?;
    let table = args.table.unwrap_or_default();
    let output = args.output.unwrap_or_else(|| PathBuf::from(format!("{table}.{format}")));
    let mut options = ExportOptions::new(table, output);
    options.select = args.select.into_iter().filter(|s| !s.trim().is_empty()).collect();
    options.filter = args.filter;
    options.format = format;
    options.parallel = args.parallel.map(|n| n.max(1));
    options.page_size = args.page_size;
    options.fsync = args.fsync;
    options.progress = Reporter::new(std::io::stderr().is_terminal());
    let conn = connect(connect_args).await?;
    options.page_size = options.page_size.or(conn.query.page_size);
    let result = d365_sync::export(&conn.client, &options).await;
    conn.close().await;
    let summary = result.map_err(|e| {
        let mut f = failure(e);
        // The summary of an interrupted export: what is saved and how to go on.
        let local = staged.as_deref().unwrap_or(&options.output);
        let ckpt = d365_sync::export::work_dir(local).join("checkpoint.json");
        if let Ok(Some(c)) = d365_sync::Checkpoint::load(&ckpt) {
            let done = c.partitions.values().filter(|p| p.done).count();
            f.message.push_str(&format!(
                "\nexport interrupted: {} rows and {done} of {} partitions saved in {}; re-run the same command to resume",
                c.rows(),
                c.partitions.len(),
                ckpt.parent().map_or_else(String::new, |p| p.display().to_string())
            ));
        }
        f
    })?;
    note!("{summary}");
    Ok(())
}

/// `--query`: through the SQL engine, written as batches arrive.
async fn run_sql(connect_args: &ConnectArgs, args: ExportArgs) -> Result<(), Failure> {
    use crate::query_cmd::Format as Out;
    let sql = args.query.clone().unwrap_or_default();
    let format_name = args.format();
    let Some(mut output) = args.output else { return Err(Failure::bad_input("--query needs --output FILE")) };
    let format = match format_name.to_ascii_lowercase().as_str() {
        "parquet" => Out::Parquet,
        "csv" => Out::Csv,
        "ndjson" | "jsonl" => Out::Ndjson,
        "delta" => {
            // `--format delta -o DIR`: a Delta table there.
            let text = output.to_string_lossy().into_owned();
            if !d365_sync::DeltaLocation::is_delta(&text) {
                output =
                    PathBuf::from(if text.contains("://") { format!("delta+{text}") } else { format!("delta:{text}") });
            }
            Out::Parquet
        }
        other => {
            return Err(Failure::bad_input(format!(
                "unknown export format '{other}': use ndjson, csv, parquet or delta"
            )));
        }
    };
    crate::query_cmd::export(connect_args, &sql, format, &output, args.page_size, args.parallel).await
}

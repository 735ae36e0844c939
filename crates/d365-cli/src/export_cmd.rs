//! `d365 export`: a table into an NDJSON or CSV file, read in parallel partitions, resumable
//! (re-run the same command after a crash or Ctrl-C).

use std::io::IsTerminal;
use std::path::PathBuf;

use d365_sync::{ExportOptions, Format, Reporter, SyncError};

use crate::connect::{ConnectArgs, connect};
use crate::failure::Failure;

/// Options of `d365 export`.
#[derive(clap::Args, Debug)]
#[command(after_help = "A checkpoint and part files are kept in OUTPUT.parts/ while the export runs; \
re-running the same command resumes an interrupted export. Rows come in createdon order.

Examples:
  d365 --demo export account -o accounts.ndjson
  d365 export contact --select contactid,fullname,emailaddress1 --format csv -o contacts.csv
  d365 export account --filter \"statecode eq 0\" --parallel 16 -o active.ndjson")]
pub struct ExportArgs {
    /// Table: logical name (account) or entity set name (accounts).
    table: String,
    /// Columns to export (comma-separated); all by default.
    #[arg(long, value_delimiter = ',')]
    select: Vec<String>,
    /// OData $filter of the rows to export.
    #[arg(long)]
    filter: Option<String>,
    /// Output format: ndjson, csv (parquet: not in this build yet).
    #[arg(long, default_value = "ndjson")]
    format: String,
    /// Output file (default: TABLE.FORMAT).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Concurrent requests (default: from the service's x-ms-dop-hint, adapting to throttling).
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
    /// Rows per page (1-5000).
    #[arg(long, value_name = "N")]
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

/// Runs `d365 export`.
pub async fn run(connect_args: &ConnectArgs, args: ExportArgs) -> Result<(), Failure> {
    let format: Format = args.format.parse().map_err(failure)?;
    let output = args.output.unwrap_or_else(|| PathBuf::from(format!("{}.{format}", args.table)));
    let mut options = ExportOptions::new(args.table, output);
    options.select = args.select.into_iter().filter(|s| !s.trim().is_empty()).collect();
    options.filter = args.filter;
    options.format = format;
    options.parallel = args.parallel.map(|n| n.max(1));
    options.page_size = args.page_size;
    options.fsync = args.fsync;
    options.progress = Reporter::new(std::io::stderr().is_terminal());
    let conn = connect(connect_args).await?;
    let result = d365_sync::export(&conn.client, &options).await;
    conn.close().await;
    let summary = result.map_err(|e| {
        let mut f = failure(e);
        // The summary of an interrupted export: what is saved and how to go on.
        let ckpt = d365_sync::export::work_dir(&options.output).join("checkpoint.json");
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
    eprintln!("{summary}");
    Ok(())
}

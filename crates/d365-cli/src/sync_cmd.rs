//! `d365 sync`: keeps a local SQLite copy of tables up to date (full extract first, then
//! change tracking; `modifiedon` watermarks where change tracking is off).

use std::io::IsTerminal;

use d365_sync::{Reporter, SyncOptions};

use crate::connect::{ConnectArgs, connect};
use crate::export_cmd::failure;
use crate::failure::Failure;

/// Options of `d365 sync`.
#[derive(clap::Args, Debug)]
#[command(after_help = "The copy is one SQLite file, DIR/d365.sqlite, one table per Dataverse table (query it with \
sqlite3, Python, DuckDB...). Delta tokens are kept in its _d365_sync_state table.

Examples:
  d365 --demo sync account,contact --to ./crm
  d365 sync contact --to ./crm && sqlite3 ./crm/d365.sqlite 'select count(*) from contact'")]
pub struct SyncArgs {
    /// Tables, comma-separated: logical names (account) or entity set names (accounts).
    #[arg(value_delimiter = ',', required = true)]
    tables: Vec<String>,
    /// Directory of the local copy (a local path; store URLs such as postgresql:// or s3://
    /// are refused with an explanation: not supported by this build yet).
    #[arg(long, value_name = "DIR")]
    to: String,
    /// Concurrent requests of full extracts (default: adaptive from the DOP hint).
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
    /// Rows per page (1-5000).
    #[arg(long, value_name = "N")]
    page_size: Option<u32>,
    /// Do not use change tracking: sync by modifiedon (deletions are then not seen).
    #[arg(long)]
    no_change_tracking: bool,
}

/// Runs `d365 sync`.
pub async fn run(connect_args: &ConnectArgs, args: SyncArgs) -> Result<(), Failure> {
    let tables: Vec<String> = args.tables.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    let dir = d365_sync::local_path(&args.to, "--to").map_err(failure)?;
    let mut options = SyncOptions::new(tables, dir);
    options.parallel = args.parallel.map(|n| n.max(1));
    options.page_size = args.page_size;
    options.change_tracking = !args.no_change_tracking;
    options.progress = Reporter::new(std::io::stderr().is_terminal());
    let conn = connect(connect_args).await?;
    let result = d365_sync::sync(&conn.client, &options).await;
    conn.close().await;
    let report = result.map_err(failure)?;
    for t in &report.tables {
        for w in &t.warnings {
            eprintln!("warning: {w}");
        }
        eprintln!("{t}");
    }
    eprintln!("synced {} table(s) into {}", report.tables.len(), report.database.display());
    Ok(())
}

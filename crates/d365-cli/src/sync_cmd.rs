//! `d365 sync`: keeps a copy of tables up to date — a local SQLite file or a PostgreSQL
//! database (full extract first, then change tracking; `modifiedon` watermarks where change
//! tracking is off).

use std::io::IsTerminal;

use d365_sync::{Reporter, SyncOptions};

use crate::connect::{ConnectArgs, connect};
use crate::export_cmd::failure;
use crate::failure::Failure;

/// Options of `d365 sync`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Destinations:
  DIR                   one SQLite file, DIR/d365.sqlite, one table per Dataverse table (query it with
                        sqlite3, Python, DuckDB...)
  postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=NAME]
                        one PostgreSQL table per Dataverse table in schema NAME (default public), typed
                        (uuid, numeric, timestamptz...), with choice labels and lookup names as ...name
                        columns; loaded by binary COPY, changes merged on the primary key. Without a
                        password in the URL, PGPASSWORD is used. TLS as libpq's sslmode (default
                        prefer), always verified: sslrootcert=CA.pem for a private CA.
Delta tokens are kept in the destination's _d365_sync_state table, advanced in the same transaction
as the rows they cover: a sync killed at any point and run again ends with exactly the source's rows.

Examples:
  d365 --demo sync account,contact --to ./crm
  d365 sync contact --to ./crm && sqlite3 ./crm/d365.sqlite 'select count(*) from contact'
  d365 sync account,contact --to postgresql://etl@db.internal:5432/analytics?schema=crm
  d365 sync account --to postgresql://etl@localhost/analytics --soft-delete")]
pub struct SyncArgs {
    /// Tables, comma-separated: logical names (account) or entity set names (accounts).
    #[arg(value_delimiter = ',', required = true)]
    tables: Vec<String>,
    /// Where the copy is kept: a local directory (SQLite) or a postgresql:// URL (other store
    /// URLs such as s3:// are refused with an explanation: not supported by this build yet).
    #[arg(long, value_name = "DIR|URL")]
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
    /// Keep rows deleted in Dataverse, stamped in a _d365_deleted column (PostgreSQL only).
    #[arg(long)]
    soft_delete: bool,
}

/// Runs `d365 sync`.
pub async fn run(connect_args: &ConnectArgs, args: SyncArgs) -> Result<(), Failure> {
    let tables: Vec<String> = args.tables.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    let to = d365_sync::parse_destination(&args.to, "--to").map_err(failure)?;
    if let d365_sync::Destination::Remote(r) = &to {
        // Refused before signing in.
        return Err(Failure::bad_input(format!(
            "--to {r}: syncing into an object store (S3, ADLS, GCS) needs Delta Lake tables, not built yet; \
             give a local directory (SQLite) or a postgresql:// URL, or write a file there with \
             `d365 export TABLE -o {r}/TABLE.parquet`"
        )));
    }
    let mut options = SyncOptions::new(tables, to);
    options.soft_delete = args.soft_delete;
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
    eprintln!("synced {} table(s) into {}", report.tables.len(), report.destination);
    Ok(())
}

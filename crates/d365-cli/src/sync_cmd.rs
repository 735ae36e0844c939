//! `d365 sync`: keeps a copy of tables up to date — a local SQLite file, a PostgreSQL
//! database or Delta Lake tables (full extract first, then change tracking; `modifiedon` watermarks where change
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
                        prefer), always verified: sslrootcert=CA.pem for a private CA;
                        sslcert=client.crt&sslkey=client.key for certificate sign-in.
  delta:DIR | delta+file:///DIR | delta+s3://BUCKET/PREFIX | delta+abfss://FS@ACCOUNT.dfs.core.windows.net/PREFIX
  | delta+az://CONTAINER/PREFIX | delta+gs://BUCKET/PREFIX
                        one Delta Lake table per Dataverse table (PREFIX/account, ...), same columns as
                        PostgreSQL; a full load is one commit, changes are merged (MERGE) on the primary
                        key. Object-store credentials from AWS_*, AZURE_STORAGE_*, GOOGLE_* variables.
Delta tokens are kept in the destination (SQLite and PostgreSQL: the _d365_sync_state table; Delta:
the commitInfo of the table's commits), advanced in the same transaction or commit as the rows they
cover: a sync killed at any point and run again ends with exactly the source's rows.

Examples:
  d365 --demo sync account,contact --to ./crm
  d365 sync contact --to ./crm && sqlite3 ./crm/d365.sqlite 'select count(*) from contact'
  d365 sync account,contact --to postgresql://etl@db.internal:5432/analytics?schema=crm
  d365 sync account --to postgresql://etl@localhost/analytics --soft-delete
  d365 sync account,contact --to delta+s3://lake/crm      # AWS_* settings from the environment
  d365 sync account --to delta:./lake && python -c \"import deltalake; print(deltalake.DeltaTable('lake/account').to_pyarrow_table().num_rows)\"")]
pub struct SyncArgs {
    /// Tables, comma-separated: logical names (account) or entity set names (accounts).
    #[arg(value_delimiter = ',', required = true)]
    tables: Vec<String>,
    /// Where the copy is kept: a local directory (SQLite), a postgresql:// URL, or Delta Lake
    /// tables (delta:DIR, delta+s3://…; other store URLs are refused with an explanation).
    #[arg(long, value_name = "DIR|URL")]
    to: String,
    /// Concurrent requests of full extracts (default: adaptive from the DOP hint).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    parallel: Option<usize>,
    /// Rows per page (1-5000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=5000))]
    page_size: Option<u32>,
    /// Do not use change tracking: sync by modifiedon (deletions are then not seen).
    #[arg(long)]
    no_change_tracking: bool,
    /// Keep rows deleted in Dataverse, stamped in a _d365_deleted column (PostgreSQL and Delta).
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
            "--to {r}: a sync into an object store writes Delta Lake tables: give --to delta+{r} \
             (one Delta table per Dataverse table under it)"
        )));
    }
    let mut options = SyncOptions::new(tables, to);
    options.soft_delete = args.soft_delete;
    options.parallel = args.parallel.map(|n| n.max(1));
    options.page_size = args.page_size;
    options.change_tracking = !args.no_change_tracking;
    options.progress = Reporter::new(std::io::stderr().is_terminal());
    let conn = connect(connect_args).await?;
    options.page_size = options.page_size.or(conn.query.page_size);
    let result = d365_sync::sync(&conn.client, &options).await;
    conn.close().await;
    let report = result.map_err(failure)?;
    for t in &report.tables {
        for w in &t.warnings {
            note!("warning: {w}");
        }
        note!("{t}");
    }
    note!("synced {} table(s) into {}", report.tables.len(), report.destination);
    Ok(())
}

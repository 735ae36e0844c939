//! `d365 plan` and `d365 commit`: a scaled-out export (see `d365_sync::scaleout`). The workers
//! in between are `d365 export --manifest` (see `export_cmd`).

use std::io::IsTerminal;

use d365_sync::Reporter;
use d365_sync::scaleout::{self, CommitOptions, Manifest, PlanOptions, Shard, WorkerOptions};

use crate::connect::{ConnectArgs, connect};
use crate::export_cmd::failure;
use crate::failure::Failure;

/// Options of `d365 plan`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The manifest (JSON lines, a local file or an s3://, az://, abfss://, gs:// object) is what every
worker reads: run `d365 export --manifest MANIFEST --shard i/N` on N machines (i = 0..N-1), each with
its own connection string (its own application user: Dataverse's limits are per user), then
`d365 commit MANIFEST` once. `d365 sync TABLE --to DEST` continues from the change-tracking token the
plan took before any unit was read. Units are createdon ranges; Finance & Operations entities are cut
into ranges of their entity key, and their sync continues from the ModifiedDateTime watermark.

Examples:
  d365 plan account,contact --to delta+s3://lake/crm -o s3://lake/plans/crm.jsonl --credentials 3
  d365 --demo plan account --to delta:./lake -o plan.jsonl --unit-rows 2000
  d365 --demo-edition finops plan CustomersV3 --to delta:./lake -o fno.jsonl --unit-rows 1000
  d365 plan --show plan.jsonl"
)]
pub struct PlanArgs {
    /// Tables, comma-separated: logical names (account) or entity set names (accounts).
    #[arg(value_delimiter = ',', required_unless_present = "show")]
    tables: Vec<String>,
    /// Where the tables land: Delta Lake tables under delta:DIR, delta+file:///DIR,
    /// delta+s3://BUCKET/PREFIX, delta+abfss://…, delta+gs://… (one table per Dataverse table).
    #[arg(long, value_name = "DELTA", required_unless_present = "show")]
    to: Option<String>,
    /// Where to write the manifest: a local file or an object URL.
    #[arg(short, long, value_name = "FILE|URL", required_unless_present = "show")]
    output: Option<String>,
    /// Rows per work unit (estimated by cheap probes).
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    unit_rows: u64,
    /// Application users (connection strings) the units are assigned to, round-robin: run
    /// shard i/N with credential i.
    #[arg(long, value_name = "N", default_value_t = 1)]
    credentials: usize,
    /// Record modifiedon watermarks instead of change-tracking tokens.
    #[arg(long)]
    no_change_tracking: bool,
    /// Print the units of an existing manifest instead of planning.
    #[arg(long, value_name = "MANIFEST", conflicts_with_all = ["tables", "to", "output"])]
    show: Option<String>,
}

/// Options of `d365 commit`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Checks that every unit of the plan is complete (nothing is committed otherwise), then adds
all their files to each Delta table in one commit, with the plan's change-tracking token, so
`d365 sync` continues from there. Running it again after a success does nothing; after a failure it
finishes the tables not committed yet. No connection to Dataverse is needed.

Examples:
  d365 commit s3://lake/plans/crm.jsonl
  d365 commit plan.jsonl --to delta:./lake")]
pub struct CommitArgs {
    /// The manifest written by `d365 plan` (a local file or an object URL).
    manifest: String,
    /// The Delta location (must be the plan's; a check).
    #[arg(long, value_name = "DELTA")]
    to: Option<String>,
}

/// Runs `d365 plan`.
pub async fn run_plan(connect_args: &ConnectArgs, args: PlanArgs) -> Result<(), Failure> {
    if let Some(path) = &args.show {
        let manifest = Manifest::load(path, &[]).await.map_err(failure)?;
        say_inline!("{}", describe(&manifest));
        return Ok(());
    }
    let tables: Vec<String> = args.tables.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    let mut options = PlanOptions::new(tables, args.to.unwrap_or_default());
    options.unit_rows = args.unit_rows;
    options.credentials = args.credentials;
    options.change_tracking = !args.no_change_tracking;
    let output = args.output.unwrap_or_default();
    // Both places are checked before signing in.
    d365_sync::DeltaLocation::parse(&options.to).map_err(failure)?;
    match d365_sync::parse_destination(&output, "--output").map_err(failure)? {
        d365_sync::Destination::Local(_) | d365_sync::Destination::Remote(_) => {}
        _ => {
            return Err(Failure::bad_input(
                "--output: the manifest is a local file or an object (s3://, az://, gs://)",
            ));
        }
    }
    let conn = connect(connect_args).await?;
    let result = scaleout::plan(&conn.client, &options).await;
    conn.close().await;
    let manifest = result.map_err(failure)?;
    manifest.save(&output, &[]).await.map_err(failure)?;
    note_inline!("{}", describe(&manifest));
    note!(
        "manifest written to {output}; run `d365 export --manifest {output} --shard i/N` on each worker, then `d365 commit {output}`"
    );
    Ok(())
}

/// A manifest for people: per table its units and estimated rows.
fn describe(m: &Manifest) -> String {
    let mut out = format!(
        "plan {} of {} ({}), landing in {}: {} units for {} credential slot(s)\n",
        m.header.id,
        m.header.organization,
        m.header.created,
        m.header.to,
        m.units.len(),
        m.header.credentials
    );
    for t in &m.tables {
        let units: Vec<_> = m.table_units(&t.table).collect();
        let rows: u64 = units.iter().map(|u| u.estimated_rows).sum();
        let tracking = match &t.tracking {
            scaleout::TrackingLine::Delta { .. } => "change tracking".to_string(),
            scaleout::TrackingLine::Watermark { watermark } => {
                format!("modification-time watermark {}", watermark.as_deref().unwrap_or("(none)"))
            }
        };
        out.push_str(&format!("  {}: {} units, ~{rows} rows, {tracking}\n", t.table, units.len()));
        for u in units {
            let range = match (&u.keys, u.bounds) {
                (Some(keys), _) => key_range_text(keys),
                (None, d365_client::Bounds::All) => "every row".to_string(),
                (None, d365_client::Bounds::Null) => "createdon null".to_string(),
                (None, d365_client::Bounds::Range { lo, hi }) => format!(
                    "createdon {} .. {}",
                    lo.map_or_else(|| "(start)".into(), d365_client::partition::format_instant),
                    hi.map_or_else(|| "(end)".into(), d365_client::partition::format_instant)
                ),
            };
            out.push_str(&format!("    {}  slot {}  ~{} rows  {range}\n", u.id, u.slot, u.estimated_rows));
        }
    }
    out
}

/// A key range as `key [usmf, US-010] .. [usrt, RT-001]`.
fn key_range_text(range: &d365_client::KeyRange) -> String {
    let key = |k: &Option<Vec<serde_json::Value>>, open: &str| match k {
        Some(values) => {
            let parts: Vec<String> =
                values.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect();
            format!("[{}]", parts.join(", "))
        }
        None => open.to_string(),
    };
    format!("key {} .. {}", key(&range.lo, "(start)"), key(&range.hi, "(end)"))
}

/// Runs `d365 commit`.
pub async fn run_commit(args: CommitArgs) -> Result<(), Failure> {
    let manifest = Manifest::load(&args.manifest, &[]).await.map_err(failure)?;
    let options = CommitOptions { to: args.to, storage_options: Vec::new() };
    let report = scaleout::commit(&manifest, &options).await.map_err(failure)?;
    note!("{report}");
    Ok(())
}

/// `d365 export --manifest`: runs this worker's units.
pub async fn run_worker(
    connect_args: &ConnectArgs,
    manifest: &str,
    shard: Option<&str>,
    units: Vec<String>,
    parallel: Option<usize>,
    page_size: Option<u32>,
) -> Result<(), Failure> {
    let shard: Option<Shard> = shard.map(str::parse).transpose().map_err(failure)?;
    let manifest = Manifest::load(manifest, &[]).await.map_err(failure)?;
    let mut options = WorkerOptions::new();
    options.shard = shard;
    options.units = units;
    options.parallel = parallel.map(|n| n.max(1));
    options.page_size = page_size;
    options.progress = Reporter::new(std::io::stderr().is_terminal());
    if options.units.is_empty() && options.shard.is_none() {
        note!("note: no --shard or --unit given: running every unit of the plan not complete yet");
    }
    let conn = connect(connect_args).await?;
    options.page_size = options.page_size.or(conn.query.page_size);
    let result = scaleout::run_units(&conn.client, &manifest, &options).await;
    conn.close().await;
    let report = result.map_err(failure)?;
    note!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::key_range_text;
    use serde_json::json;

    #[test]
    fn key_ranges_print_their_bounds() {
        let range: d365_client::KeyRange =
            serde_json::from_value(json!({"id": 1, "lo": ["usmf", "US-010"], "hi": null})).unwrap();
        assert_eq!(key_range_text(&range), "key [usmf, US-010] .. (end)");
        let range: d365_client::KeyRange =
            serde_json::from_value(json!({"id": 0, "lo": null, "hi": ["usmf", 7]})).unwrap();
        assert_eq!(key_range_text(&range), "key (start) .. [usmf, 7]");
    }
}

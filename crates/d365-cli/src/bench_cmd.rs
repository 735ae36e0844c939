//! `d365 bench export`: sequential nextLink paging vs the parallel export of the same table,
//! side by side with the ceiling the service-protection limits allow. Without `--connection`
//! it starts the emulator in this process with `--rows`, `--latency-ms` and `--limits`.

use std::time::Duration;

use d365_emulator::webapi::limits::LimitSettings;
use d365_emulator::{Emulator, EmulatorOptions};
use d365_sync::bench::{BenchOptions, Limits};

use crate::connect::{ConnectArgs, connect};
use crate::export_cmd::failure;
use crate::failure::Failure;

/// Options of `d365 bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(clap::Subcommand, Debug)]
enum BenchWhat {
    /// Export throughput: sequential paging, parallel export, and the limits' ceiling.
    #[command(after_help = "Examples:
  d365 bench export --rows 200000 --latency-ms 100
  d365 bench export --connection @conn.txt --table contact --limits requests=6000,window=300,exec-seconds=1200,concurrent=52")]
    Export(ExportBench),
    /// Aggregates with pushdown on and off, side by side: time, requests, bytes received.
    #[command(after_help = "Examples:
  d365 bench aggregate --rows 1000000 --latency-ms 50
  d365 bench aggregate --connection @emu.txt --query \"SELECT statecodename, count(*) FROM account GROUP BY statecodename\"
  scripts/bench-aggregates.sh   (release build, emulator in its own process)")]
    Aggregate(AggregateBench),
}

#[derive(clap::Args, Debug)]
struct AggregateBench {
    /// A query to measure (repeatable; default: a GROUP BY with count and sum, and count(*),
    /// over account).
    #[arg(long = "query", value_name = "SQL")]
    queries: Vec<String>,
    /// Runs of each query in each mode; the best time is kept.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Accounts seeded in the emulator (when no --connection is given).
    #[arg(long, default_value_t = 200_000)]
    rows: usize,
    /// Emulator latency per request, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Emulator latency per row, in microseconds.
    #[arg(long, default_value_t = 20)]
    per_row_us: u64,
}

#[derive(clap::Args, Debug)]
struct ExportBench {
    /// Table to read.
    #[arg(long, default_value = "account")]
    table: String,
    /// Columns read (comma-separated; empty for all).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "accountid,name,accountnumber,revenue,numberofemployees,address1_city,telephone1,emailaddress1,statecode,createdon"
    )]
    select: Vec<String>,
    /// Rows per page.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=5000))]
    page_size: u32,
    /// Fixed concurrency of the parallel export (default: adaptive).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    parallel: Option<usize>,
    /// Accounts seeded in the emulator (when no --connection is given).
    #[arg(long, default_value_t = 200_000)]
    rows: usize,
    /// Emulator latency per request, in milliseconds.
    #[arg(long, default_value_t = 100)]
    latency_ms: u64,
    /// Emulator latency per row, in microseconds.
    #[arg(long, default_value_t = 20)]
    per_row_us: u64,
    /// The service's limits (for the ceiling; the emulator enforces them too).
    #[arg(long, default_value = "requests=6000,window=300,exec-seconds=1200,concurrent=52")]
    limits: String,
}

/// Runs `d365 bench`.
pub async fn run(connect_args: &ConnectArgs, args: BenchArgs) -> Result<(), Failure> {
    let b = match args.what {
        BenchWhat::Export(b) => b,
        BenchWhat::Aggregate(a) => return aggregate(connect_args, a).await,
    };
    let limits = Limits::parse(&b.limits).map_err(failure)?;
    let settings = LimitSettings::parse(&b.limits).map_err(Failure::bad_input)?;
    let seed = Seed { rows: b.rows, latency_ms: b.latency_ms, per_row_us: b.per_row_us, limits: settings };
    let (conn_args, emulator) = target(connect_args, seed).await?;
    let conn = connect(&conn_args).await?;
    let dir = std::env::temp_dir().join(format!("d365-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Failure::service(format!("{}: {e}", dir.display())))?;
    let options = BenchOptions {
        table: b.table,
        select: b.select.into_iter().filter(|s| !s.trim().is_empty()).collect(),
        page_size: b.page_size,
        parallel: b.parallel,
        limits,
        work_dir: dir.clone(),
    };
    let result = d365_sync::bench::run(&conn.client, options).await;
    let _ = std::fs::remove_dir_all(&dir);
    conn.close().await;
    if let Some(emu) = emulator {
        emu.shutdown().await;
    }
    let report = result.map_err(failure)?;
    say_inline!("{report}");
    Ok(())
}

/// Runs `d365 bench aggregate`.
async fn aggregate(connect_args: &ConnectArgs, a: AggregateBench) -> Result<(), Failure> {
    let seed =
        Seed { rows: a.rows, latency_ms: a.latency_ms, per_row_us: a.per_row_us, limits: LimitSettings::default() };
    let (conn_args, emulator) = target(connect_args, seed).await?;
    let conn = connect(&conn_args).await?;
    let queries: Vec<String> = if a.queries.is_empty() {
        d365_core::aggregate_bench::DEFAULT_QUERIES.iter().map(|q| q.to_string()).collect()
    } else {
        a.queries
    };
    let result = d365_core::aggregate_bench::aggregate_bench(&conn, &queries, a.rounds).await;
    conn.close().await;
    if let Some(emu) = emulator {
        emu.shutdown().await;
    }
    let report = result.map_err(Failure::from_d365)?;
    say_inline!("{report}");
    Ok(())
}

/// The emulator a benchmark starts in this process when no `--connection` is given.
struct Seed {
    rows: usize,
    latency_ms: u64,
    per_row_us: u64,
    limits: LimitSettings,
}

/// The connection to measure: the one given, or an emulator started here with `seed`
/// (returned, to shut down at the end).
async fn target(connect_args: &ConnectArgs, seed: Seed) -> Result<(ConnectArgs, Option<Emulator>), Failure> {
    if connect_args.connection.is_some() && !connect_args.demo {
        return Ok((connect_args.clone(), None));
    }
    note!(
        "starting the emulator in this process: {} accounts, --latency-ms {}, {} µs per row…",
        seed.rows,
        seed.latency_ms,
        seed.per_row_us
    );
    let emu = Emulator::start(EmulatorOptions {
        rows: seed.rows,
        latency: Duration::from_millis(seed.latency_ms),
        latency_per_row: Duration::from_micros(seed.per_row_us),
        limits: seed.limits,
        ..Default::default()
    })
    .await
    .map_err(|e| Failure::service(format!("the emulator could not start: {e}")))?;
    let text = d365_core::emulator_connection_string(&emu).map_err(Failure::from_d365)?;
    Ok((ConnectArgs { connection: Some(text), demo: false, ..connect_args.clone() }, Some(emu)))
}

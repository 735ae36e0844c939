//! `d365`: Dynamics 365 / Dataverse from the command line.

#[macro_use]
mod console;

mod bench_cmd;
mod connect;
mod dml_cmd;
mod emulator_cmd;
mod emulator_fno_check;
mod export_cmd;
mod failure;
mod login_cmd;
mod plan_cmd;
mod proc_cmd;
mod query_cmd;
mod sync_cmd;
mod whoami_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use failure::{EXIT_BAD_INPUT, EXIT_SERVICE};

#[derive(Parser)]
#[command(name = "d365", version, about = "Dynamics 365 / Dataverse from the command line", long_about = None)]
struct Cli {
    #[command(flatten)]
    connect: connect::ConnectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the local emulator of Entra ID and the Dataverse Web API (HTTPS, SQLite).
    Emulator(Box<emulator_cmd::EmulatorArgs>),
    /// Show who the connection signs in as: user, business unit, organization, flow, token expiry.
    Whoami(whoami_cmd::WhoamiArgs),
    /// Sign in now (browser or device code) and store the tokens; for applications, check the credentials.
    Login(login_cmd::LoginArgs),
    /// Forget the stored sign-in of the connection (deletes its settings file).
    Logout(login_cmd::LogoutArgs),
    /// Call an OAuth stored procedure (GetOAuthAuthorizationUrl, GetOAuthAccessToken, ...).
    Proc(proc_cmd::ProcArgs),
    /// Export a table to NDJSON, CSV, Parquet, a Delta table or PostgreSQL: parallel, resumable (re-run to resume).
    Export(export_cmd::ExportArgs),
    /// Plan a scaled-out export: work units for many workers and application users (a manifest).
    Plan(plan_cmd::PlanArgs),
    /// Commit a plan's units to Delta Lake in one transaction per table (after its workers ran).
    Commit(plan_cmd::CommitArgs),
    /// Keep a local SQLite copy of tables up to date (change tracking, deletes included).
    Sync(sync_cmd::SyncArgs),
    /// Benchmarks (export: sequential vs parallel vs the service limits' ceiling).
    Bench(bench_cmd::BenchArgs),
    /// Run a SQL query over the Web API (filters, columns, order and limits pushed to Dataverse).
    Query(query_cmd::QueryArgs),
    /// List the tables SQL can read (logical names; optional pattern).
    Tables(query_cmd::TablesArgs),
    /// Show a table's columns: SQL type, Dataverse type and Web API property.
    Describe(query_cmd::DescribeArgs),
    /// An interactive SQL prompt with history.
    Shell(query_cmd::ShellArgs),
}

/// Prints a command's failure and turns it into the exit code.
fn finish(result: Result<(), failure::Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) if f.is_closed_output() => ExitCode::SUCCESS,
        Err(f) => {
            note!("error: {f}");
            f.exit_code()
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Emulator(_)) {
        // The libraries' warnings (a connection property without effect, a long wait while the
        // service throttles, an unreadable cache file) on standard error; RUST_LOG for more.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .without_time()
            .with_target(false)
            .try_init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            note!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_SERVICE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Emulator(args) => emulator_cmd::run(*args).await,
            Command::Whoami(args) => Ok(finish(whoami_cmd::run(&cli.connect, args).await)),
            Command::Login(args) => Ok(finish(login_cmd::run_login(&cli.connect, args).await)),
            Command::Logout(args) => Ok(finish(login_cmd::run_logout(&cli.connect, args).await)),
            Command::Proc(args) => Ok(finish(proc_cmd::run(&cli.connect, args).await)),
            Command::Export(args) => Ok(finish(export_cmd::run(&cli.connect, args).await)),
            Command::Plan(args) => Ok(finish(plan_cmd::run_plan(&cli.connect, args).await)),
            Command::Commit(args) => Ok(finish(plan_cmd::run_commit(args).await)),
            Command::Sync(args) => Ok(finish(sync_cmd::run(&cli.connect, args).await)),
            Command::Bench(args) => Ok(finish(bench_cmd::run(&cli.connect, args).await)),
            Command::Query(args) => Ok(finish(query_cmd::query(&cli.connect, args).await)),
            Command::Tables(args) => Ok(finish(query_cmd::tables(&cli.connect, args).await)),
            Command::Describe(args) => Ok(finish(query_cmd::describe(&cli.connect, args).await)),
            Command::Shell(args) => Ok(finish(query_cmd::shell(&cli.connect, args).await)),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            note!("error: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

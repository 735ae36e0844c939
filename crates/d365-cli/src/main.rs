//! `d365`: Dynamics 365 / Dataverse from the command line.

mod emulator_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code for bad input (arguments, files).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for a service error.
pub const EXIT_SERVICE: u8 = 4;

#[derive(Parser)]
#[command(name = "d365", version, about = "Dynamics 365 / Dataverse from the command line", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the local emulator of Entra ID and the Dataverse Web API (HTTPS, SQLite).
    Emulator(emulator_cmd::EmulatorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_SERVICE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Emulator(args) => emulator_cmd::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

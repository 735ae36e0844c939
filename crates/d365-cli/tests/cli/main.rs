//! The integration tests of `d365-cli`, one test binary (each binary links the whole
//! dependency tree: one link instead of one per file keeps the debug build small and fast).

mod auth_commands;
mod common;
mod dml;
mod emulator_command;
mod finops;
mod query_commands;
mod query_s3;
mod robustness;
mod scaleout;
mod sync_delta;
mod sync_postgres;

//! The integration tests of `d365-sync`, one test binary (each binary links the whole
//! dependency tree: one link instead of one per file keeps the debug build small and fast).

mod common;
mod delta;
mod export;
mod export_azure;
mod export_s3;
mod finops;
mod postgres;
mod scaleout;
mod scan;
mod sync;

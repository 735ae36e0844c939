//! The integration tests of `d365-sql`, one test binary (each binary links the whole
//! dependency tree: one link instead of one per file keeps the debug build small and fast).

mod aggregates;
mod common;
mod differential;
mod dml;
mod finops;
mod joins;
mod link_joins;
mod literals;
mod pushdown;
mod queries;

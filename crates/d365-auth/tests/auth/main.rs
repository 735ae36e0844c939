//! The integration tests of `d365-auth`, one test binary (each binary links the whole
//! dependency tree: one link instead of one per file keeps the debug build small and fast).

mod app_only;
mod bad_cases;
mod common;
mod delegated;
mod os_keyring;
mod redaction;
mod shared_store;

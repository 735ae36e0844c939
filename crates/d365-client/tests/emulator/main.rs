//! End-to-end tests of the client against the emulator over HTTPS, with real tokens from the
//! emulator's token endpoint (client credentials).

mod common;
mod faults;
mod metadata;
mod paging;
mod records;
mod write;
mod write_faults;

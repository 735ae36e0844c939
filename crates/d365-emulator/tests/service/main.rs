//! The integration tests of `d365-emulator`, one test binary (each binary links the whole
//! dependency tree: one link instead of one per file keeps the debug build small and fast).

mod batch;
mod bulk;
mod common;
mod create_attribute;
mod fetchxml;
mod fno_auth;
mod fno_common;
mod fno_query;
mod fno_writes;
mod identity;
mod protection;
mod query_options;
mod record_count;
mod sdkmessages;
mod webapi;

//! `$apply`: `groupby`, `aggregate` and `filter` transformations.

use super::Ctx;
use super::error::{DvError, DvResult};
use crate::schema::Table;
use axum::http::StatusCode;
use axum::response::Response;

/// Runs an aggregation query.
pub async fn run(_ctx: &Ctx, _table: &Table) -> DvResult<Response> {
    Err(DvError::new(
        StatusCode::NOT_IMPLEMENTED,
        "0x80040216",
        "$apply is not implemented by this emulator build yet.",
    ))
}

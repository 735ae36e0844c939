//! `$filter` → SQLite `WHERE`, over the AST of the `d365-odata` parser.

use super::auth::Caller;
use super::error::{DvError, DvResult};
use crate::schema::{Schema, Table};
use axum::http::StatusCode;
use rusqlite::types::Value as Sql;

/// Translates a `$filter` into an SQL condition over `alias`, pushing parameters.
pub fn translate(
    _schema: &Schema,
    _table: &Table,
    _alias: &str,
    _filter: &str,
    _aliases: &[(String, String)],
    _caller: &Caller,
    _params: &mut Vec<Sql>,
) -> DvResult<String> {
    Err(DvError::new(
        StatusCode::NOT_IMPLEMENTED,
        "0x80040216",
        "$filter is not implemented by this emulator build yet.",
    ))
}

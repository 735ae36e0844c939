//! `$expand`: single-valued navigation properties (nested object) and collection-valued ones
//! (array plus `<nav>@odata.nextLink`).

use super::Ctx;
use super::error::{DvError, DvResult};
use super::query::Order;
use crate::schema::Table;
use axum::http::StatusCode;
use rusqlite::types::Value as Sql;

/// The parsed `$expand` of a request.
#[derive(Debug, Default)]
pub struct Expands {
    items: Vec<String>,
}

impl Expands {
    /// Whether nothing is expanded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The `@odata.context` entries of the expansions.
    pub fn context_items(&self) -> Vec<String> {
        self.items.clone()
    }
}

/// Parses `$expand` against `table`.
pub fn parse(_ctx: &Ctx, _table: &Table, text: Option<&str>) -> DvResult<Expands> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(Expands::default()),
        Some(_) => Err(DvError::new(
            StatusCode::NOT_IMPLEMENTED,
            "0x80040216",
            "$expand is not implemented by this emulator build yet.",
        )),
    }
}

/// Fetches the expanded records for a page of rows; one JSON fragment (`"nav":{...}`) per row.
pub async fn fetch(
    _ctx: &Ctx,
    _table: &Table,
    expands: &Expands,
    rows: &[Vec<Sql>],
    _order_start: usize,
    _order: &[Order<'_>],
) -> DvResult<Vec<String>> {
    Ok(if expands.is_empty() { Vec::new() } else { vec![String::new(); rows.len()] })
}

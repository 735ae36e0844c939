//! Work units of Finance & Operations entities: ranges of the **entity key**.
//!
//! F&O has neither `createdon` nor service-side aggregates over OData, and its own paging is by
//! `$skip` offsets, which skip or repeat rows written during a long read. So a unit is a
//! half-open range of the entity key (`dataAreaId`, then the entity's own key fields), found
//! with the row count (`{set}/$count`) and one `$skip=n&$top=1` probe per boundary; a worker
//! reads its range in key order, asking each page for the keys after the last one it got
//! ([`d365_client::DataverseClient::keyset_scan_ranges`]). Offsets only place the boundaries:
//! a boundary off by a few rows makes a unit a little bigger or smaller, never loses or repeats
//! a row, because the ranges cover the whole key space.

use d365_client::partition::Bounds;
use d365_client::{DataverseClient, KeyRange};

use super::plan::PlanOptions;
use crate::error::SyncError;
use crate::sync::Table;

/// The key-range units of `t`, each with its estimated rows: as many as the rows call for at
/// [`PlanOptions::unit_rows`], rounded up to a multiple of the credential slots (the rule of
/// `createdon` units).
pub(super) async fn key_units(
    client: &DataverseClient,
    t: &Table,
    options: &PlanOptions,
) -> Result<Vec<(Bounds, u64, Option<KeyRange>)>, SyncError> {
    let query = t.target.reader().query(None, None);
    let keys = &t.target.schema.key_fields;
    let count = client.count_rows(&query).await?;
    let parts = super::plan::unit_count(count as f64, options.unit_rows, options.credentials);
    let ranges = client.cut_key_ranges(&query, keys, count, parts).await?;
    Ok(ranges.into_iter().map(|(range, rows)| (Bounds::All, rows, Some(range))).collect())
}

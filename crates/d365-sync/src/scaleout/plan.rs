//! `d365 plan`: tables cut into work units of about a target row count, and for each table the
//! position an incremental sync continues from, taken before any unit is read.
//!
//! Unit sizes come from cheap probes, not from reading the table: the smallest and largest
//! `createdon`, then the span cut into equal slices, each probed with one request for at most
//! 5,000 `createdon` values (the only column asked for). A slice with fewer rows than that is
//! counted exactly; a denser one is counted by the service (`$apply=…/aggregate($count as c)`,
//! exact up to its 50,000-row aggregate limit), and past that estimated from the time the
//! 5,000 values cover. The slices are then grouped (or cut further) into units of about
//! [`PlanOptions::unit_rows`] rows. The counts only balance the work: every unit is read whole
//! by one worker, whatever it holds.
//!
//! Finance & Operations entities are cut on their entity key instead (`plan_keys`).

use d365_client::partition::{Bounds, format_instant, row_instant};
use d365_client::{DataverseClient, KeyRange, Metadata, Query};
use d365_sql::aggregate_pushdown::exec::AGGREGATE_LIMIT_CODE;
use deltalake_core::kernel::StructType;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel as _;
use futures::{StreamExt, TryStreamExt};

use super::manifest::{Header, MANIFEST_VERSION, Manifest, ManifestTable, TableSnapshot, TrackingLine, Unit};
use crate::delta::DeltaLocation;
use crate::error::SyncError;
use crate::sync::{Table, TrackingRead, fetch_table, table_of};

/// The column units are cut on.
const COLUMN: &str = d365_client::partition::DEFAULT_PARTITION_COLUMN;
/// Values one probe reads (one page).
const PROBE_ROWS: u32 = 5000;
/// Probes in flight at once.
const PROBES_IN_FLIGHT: usize = 8;

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Tables: logical names (`account`) or entity set names.
    pub tables: Vec<String>,
    /// Where the tables land: a Delta location (`delta+s3://bucket/prefix`, `delta:DIR`);
    /// empty for a plan only read from (a Spark data source: no workers, no commit).
    pub to: String,
    /// Object-store settings besides the environment.
    pub storage_options: Vec<(String, String)>,
    /// Rows a unit should hold (default 200,000).
    pub unit_rows: u64,
    /// Credential slots to assign units to, round-robin (default 1).
    pub credentials: usize,
    /// Record change-tracking tokens where tables have change tracking (else `modifiedon`
    /// watermarks everywhere).
    pub change_tracking: bool,
    /// Slices the `createdon` span is probed in, per table (default 64).
    pub probes: usize,
}

impl PlanOptions {
    /// A plan of `tables` landing in the Delta location `to`.
    pub fn new(tables: Vec<String>, to: impl Into<String>) -> Self {
        Self {
            tables,
            to: to.into(),
            storage_options: Vec::new(),
            unit_rows: 200_000,
            credentials: 1,
            change_tracking: true,
            probes: 64,
        }
    }
}

/// Plans the export of `options.tables` (see the module docs).
pub async fn plan(client: &DataverseClient, options: &PlanOptions) -> Result<Manifest, SyncError> {
    if options.tables.is_empty() {
        return Err(SyncError::InvalidArgument("no table to plan: name one or more tables".into()));
    }
    if options.unit_rows == 0 {
        return Err(SyncError::InvalidArgument("--unit-rows must be at least 1".into()));
    }
    if options.credentials == 0 {
        return Err(SyncError::InvalidArgument("--credentials must be at least 1".into()));
    }
    // The destination is checked (and normalised) before any request.
    let to = match options.to.trim() {
        "" => String::new(),
        text => DeltaLocation::parse_with(text, options.storage_options.clone())?.to_string(),
    };
    let metadata = Metadata::in_memory(client.clone());
    let mut tables = Vec::new();
    let mut units: Vec<Unit> = Vec::new();
    for name in &options.tables {
        let (info, meta) = fetch_table(&metadata, name).await?;
        let t = table_of(&info, &meta)?;
        // Workers are typed by this snapshot (F&O entities: they fetch their metadata).
        let snapshot = (!t.finops).then(|| Box::new(TableSnapshot { info, entity: (*meta).clone() }));
        if tables.iter().any(|m: &ManifestTable| m.table == t.target.logical) {
            return Err(SyncError::InvalidArgument(format!("table '{}' is named twice", t.target.logical)));
        }
        let (table, ranges) = plan_table(client, &t, snapshot, options).await?;
        tracing::info!(table = %table.table, units = ranges.len(), "planned");
        for (i, (bounds, estimated_rows, keys)) in ranges.into_iter().enumerate() {
            let index = units.len();
            units.push(Unit {
                id: format!("{}-{i:05}", table.table),
                table: table.table.clone(),
                index,
                slot: index % options.credentials,
                bounds,
                estimated_rows,
                keys,
            });
        }
        tables.push(table);
    }
    let header = Header {
        version: MANIFEST_VERSION,
        id: uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
        organization: client.base_url().origin().ascii_serialization(),
        to,
        created: super::now_text(),
        unit_rows: options.unit_rows,
        credentials: options.credentials,
    };
    Ok(Manifest { header, tables, units })
}

/// The manifest line and units of one table: (createdon bounds, estimated rows, key range of
/// a Finance & Operations entity).
async fn plan_table(
    client: &DataverseClient,
    t: &Table,
    metadata: Option<Box<TableSnapshot>>,
    options: &PlanOptions,
) -> Result<(ManifestTable, Vec<(Bounds, u64, Option<KeyRange>)>), SyncError> {
    let logical = &t.target.logical;
    let schema: StructType = t
        .target
        .schema
        .arrow
        .as_ref()
        .try_into_kernel()
        .map_err(|e| SyncError::InvalidArgument(format!("{logical}: its columns have no Delta type ({e})")))?;
    // The position first: everything read after it comes again in the next delta.
    let (tracking, ranges) = if options.change_tracking && t.change_tracking {
        let read = TrackingRead::start(client, &t.target).await?;
        let (link, ranges) = futures::try_join!(read.finish(), ranges(client, t, options))?;
        (TrackingLine::Delta { delta_link: link }, dated(ranges))
    } else {
        let watermark = largest_modified(client, t).await?;
        // F&O entities (no change tracking over OData, no createdon) are cut on their key.
        let units = if t.finops {
            super::plan_keys::key_units(client, t, options).await?
        } else {
            dated(ranges(client, t, options).await?)
        };
        (TrackingLine::Watermark { watermark }, units)
    };
    let table = ManifestTable {
        table: logical.clone(),
        entity_set: t.target.set.clone(),
        primary_key: t.target.pk.clone(),
        tracking,
        schema,
        metadata,
    };
    Ok((table, ranges))
}

/// `createdon` units: no key range.
fn dated(units: Vec<(Bounds, u64)>) -> Vec<(Bounds, u64, Option<KeyRange>)> {
    units.into_iter().map(|(bounds, rows)| (bounds, rows, None)).collect()
}

/// The largest modification time now (`modifiedon`; F&O: `ModifiedDateTime` or the like):
/// rows modified at or after it are read again by the sync.
async fn largest_modified(client: &DataverseClient, t: &Table) -> Result<Option<String>, SyncError> {
    let column = t.watermark.as_str();
    let q = Query::new(t.target.set.clone()).select([column]).top(1).order_by(column, true);
    let rows = client.page_stream(&q)?.stop_after(1).collect_rows().await?;
    Ok(rows.first().and_then(|r| row_instant(r, column)).flatten().map(format_instant))
}

/// `createdon` values of up to `top` rows of the table matching `filter`, in order.
async fn column_values(
    client: &DataverseClient,
    set: &str,
    filter: &str,
    descending: bool,
    top: u32,
) -> Result<Vec<Option<i64>>, SyncError> {
    let q = Query::new(set).select([COLUMN]).filter(filter).top(u64::from(top)).order_by(COLUMN, descending);
    let q = q.max_page_size(top.min(PROBE_ROWS));
    let rows = client.page_stream(&q)?.stop_after(u64::from(top)).collect_rows().await?;
    rows.iter()
        .map(|r| {
            row_instant(r, COLUMN).ok_or_else(|| {
                SyncError::InvalidArgument(format!("{set}: {COLUMN} is not a date-time: it cannot be planned on"))
            })
        })
        .collect()
}

/// The unit ranges of a table, with their estimated rows.
async fn ranges(client: &DataverseClient, t: &Table, options: &PlanOptions) -> Result<Vec<(Bounds, u64)>, SyncError> {
    if !t.has_createdon {
        // No column to cut on: one unit (read by one worker, in one sequence of pages).
        return Ok(vec![(Bounds::All, 0)]);
    }
    let set = t.target.set.as_str();
    let (ne_null, eq_null) = (format!("{COLUMN} ne null"), format!("{COLUMN} eq null"));
    let (first, last, nulls) = futures::try_join!(
        column_values(client, set, &ne_null, false, 1),
        column_values(client, set, &ne_null, true, 1),
        column_values(client, set, &eq_null, false, 1),
    )?;
    let mut out = Vec::new();
    if !nulls.is_empty() {
        out.push((Bounds::Null, 0));
    }
    let (Some(Some(min)), Some(Some(max))) = (first.first().copied(), last.first().copied()) else {
        // No dated rows (yet): one open range, for the rows created after the plan.
        out.push((Bounds::Range { lo: None, hi: None }, 0));
        return Ok(out);
    };
    let slices = probe_slices(client, set, min, max + 1, options.probes.max(1)).await?;
    out.extend(cut(&slices, options.unit_rows, options.credentials));
    Ok(out)
}

/// A probed slice `[lo, hi)` of the column and its (estimated) rows.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slice {
    lo: i64,
    hi: i64,
    rows: f64,
}

/// Probes `[lo, hi)` in up to `n` equal slices (see the module docs).
async fn probe_slices(
    client: &DataverseClient,
    set: &str,
    lo: i64,
    hi: i64,
    n: usize,
) -> Result<Vec<Slice>, SyncError> {
    let span = hi - lo;
    let n = (n as i64).clamp(1, span.max(1));
    let bounds: Vec<(i64, i64)> = (0..n).map(|j| (lo + span * j / n, lo + span * (j + 1) / n)).collect();
    futures::stream::iter(bounds)
        .map(|(a, b)| async move {
            let filter = format!("{COLUMN} ge {} and {COLUMN} lt {}", format_instant(a), format_instant(b));
            let values = column_values(client, set, &filter, false, PROBE_ROWS).await?;
            let rows = if values.len() < PROBE_ROWS as usize {
                values.len() as f64
            } else if let Some(n) = service_count(client, set, &filter).await? {
                n as f64
            } else {
                let last = values.last().copied().flatten().unwrap_or(b - 1);
                let covered = (last - a + 1).max(1) as f64;
                f64::from(PROBE_ROWS) * (b - a) as f64 / covered
            };
            Ok::<_, SyncError>(Slice { lo: a, hi: b, rows })
        })
        .buffered(PROBES_IN_FLIGHT)
        .try_collect()
        .await
}

/// The rows matching `filter`, counted by the service; `None` past its aggregate limit
/// (50,000 rows: error `0x8004E023`).
async fn service_count(client: &DataverseClient, set: &str, filter: &str) -> Result<Option<u64>, SyncError> {
    let q = Query::new(set).apply(format!("filter({filter})/aggregate($count as c)"));
    match client.page_stream(&q)?.collect_rows().await {
        Ok(rows) => Ok(rows.first().and_then(|r| r.get("c")).and_then(serde_json::Value::as_u64)),
        Err(e) if e.dataverse_code().is_some_and(|c| c.eq_ignore_ascii_case(AGGREGATE_LIMIT_CODE)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Cuts the probed span into units of about `target` rows: as many units as the table's rows
/// call for, rounded up to a multiple of `multiple` (the credential slots, so each gets the
/// same share), cut where the running count of rows reaches each unit's share (by time within
/// a slice, rounded to whole seconds). The first unit's lower bound and the last one's upper
/// bound are open, so rows outside the probed span (created after the plan) belong to a unit.
fn cut(slices: &[Slice], target: u64, multiple: usize) -> Vec<(Bounds, u64)> {
    let total: f64 = slices.iter().map(|s| s.rows).sum();
    let n = unit_count(total, target, multiple);
    // Rows before instant `t` (linear within a slice).
    let before = |t: i64| -> f64 {
        slices
            .iter()
            .map(|s| match t {
                t if t >= s.hi => s.rows,
                t if t <= s.lo => 0.0,
                t => s.rows * (t - s.lo) as f64 / (s.hi - s.lo) as f64,
            })
            .sum()
    };
    let mut cuts: Vec<i64> = Vec::with_capacity(n);
    let (first, end) = (slices.first().map_or(0, |s| s.lo), slices.last().map_or(0, |s| s.hi));
    let mut seen = 0.0;
    let mut k = 1;
    for s in slices {
        while k < n && seen + s.rows >= total * k as f64 / n as f64 && s.rows > 0.0 {
            let share = total * k as f64 / n as f64 - seen;
            let at = s.lo + ((s.hi - s.lo) as f64 * share / s.rows).round() as i64;
            let at = at.clamp(s.lo, s.hi);
            // Whole seconds: two shares in the same second make one unit.
            if cuts.last().is_none_or(|&last| at > last) && at > first && at < end {
                cuts.push(at);
            }
            k += 1;
        }
        seen += s.rows;
    }
    let mut units = Vec::with_capacity(cuts.len() + 1);
    let mut lo: Option<i64> = None;
    // Rounded on the running total, so the units add up to the (rounded) table.
    let mut done = 0.0_f64;
    for hi in cuts.iter().copied().map(Some).chain([None]) {
        let upto = hi.map_or(total, before);
        units.push((Bounds::Range { lo, hi }, upto.round() as u64 - done.round() as u64));
        done = upto;
        lo = hi;
    }
    units
}

/// Units for `rows` rows at `unit_rows` each (at least one), rounded up to a multiple of the
/// `credentials` slots so each gets the same share.
pub(super) fn unit_count(rows: f64, unit_rows: u64, credentials: usize) -> usize {
    let n = ((rows / unit_rows.max(1) as f64).round() as usize).max(1);
    if credentials > 1 { n.div_ceil(credentials) * credentials } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_the_row_count_and_the_credential_slots() {
        assert_eq!(unit_count(0.0, 1000, 1), 1);
        assert_eq!(unit_count(10_000.0, 1000, 1), 10);
        assert_eq!(unit_count(10_400.0, 1000, 1), 10);
        assert_eq!(unit_count(10_000.0, 1000, 3), 12);
        assert_eq!(unit_count(500.0, 200_000, 3), 3);
    }

    fn slices(rows: &[f64]) -> Vec<Slice> {
        rows.iter().enumerate().map(|(i, &r)| Slice { lo: i as i64 * 100, hi: (i as i64 + 1) * 100, rows: r }).collect()
    }

    /// The units are contiguous and open at both ends; their estimates add up.
    fn check(units: &[(Bounds, u64)], total: u64) {
        let mut prev_hi = None;
        for (b, _) in units {
            let Bounds::Range { lo, hi } = *b else { panic!("{b:?}") };
            assert_eq!(lo, prev_hi, "{units:?}");
            prev_hi = hi;
        }
        assert_eq!(prev_hi, None, "{units:?}");
        assert_eq!(units.iter().map(|u| u.1).sum::<u64>(), total, "{units:?}");
    }

    #[test]
    fn units_are_cut_where_the_running_count_reaches_each_share() {
        let units = cut(&slices(&[40.0, 40.0, 40.0, 40.0, 40.0]), 100, 1);
        assert_eq!(
            units,
            vec![(Bounds::Range { lo: None, hi: Some(250) }, 100), (Bounds::Range { lo: Some(250), hi: None }, 100)]
        );
    }

    #[test]
    fn a_dense_slice_is_cut_by_time_and_empty_ones_join_their_neighbours() {
        let units = cut(&slices(&[0.0, 1000.0, 0.0]), 250, 1);
        check(&units, 1000);
        assert_eq!(units.iter().map(|u| u.1).collect::<Vec<_>>(), [250, 250, 250, 250]);
        assert_eq!(units[0].0, Bounds::Range { lo: None, hi: Some(125) });
    }

    #[test]
    fn the_unit_count_is_a_multiple_of_the_credential_slots() {
        let units = cut(&slices(&[100.0; 10]), 250, 3);
        check(&units, 1000);
        assert_eq!(units.len(), 6, "{units:?}");
        assert!(units.iter().all(|u| (166..=167).contains(&u.1)), "{units:?}");
    }

    #[test]
    fn one_small_table_is_one_open_unit() {
        assert_eq!(cut(&slices(&[3.0, 2.0]), 200_000, 1), vec![(Bounds::Range { lo: None, hi: None }, 5)]);
        // Rows all in one second cannot be cut: one unit, whatever the target.
        let one_second = [Slice { lo: 7, hi: 8, rows: 900.0 }];
        assert_eq!(cut(&one_second, 100, 1), vec![(Bounds::Range { lo: None, hi: None }, 900)]);
    }
}

//! Workers: `d365 export --manifest M --shard i/N` (or `--unit ID`) reads its units and writes
//! each as Parquet data files under the Delta table it will join, plus a completion marker.
//!
//! For table `account` of plan `P` under the location `L`:
//!
//! - data: `L/account/d365-units/P/account-00003/part-….parquet` (files a Delta writer names;
//!   not part of the table until `d365 commit` adds them);
//! - marker: `L/account/_d365/units/P/account-00003.json`: the unit, its rows and the `add`
//!   actions of its files, written in one put **after** the files.
//!
//! A unit without a marker is not done: a worker killed mid-unit leaves files no marker lists,
//! and the unit is read again from its start when its shard is re-run. A unit run twice (a
//! retried task, a duplicated Spark attempt) writes new files and replaces the marker, so the
//! commit adds exactly one run's files: rows are never doubled. `d365 commit` deletes the files
//! no marker lists.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use d365_client::partition::{Bounds, Partition};
use d365_client::{DataverseClient, Metadata, ScanPlan};
use d365_sql::datafusion::arrow::datatypes::SchemaRef;
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake_core::kernel::{Add, StructType};
use deltalake_core::writer::DeltaWriter as _;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt as _;
use serde::{Deserialize, Serialize};

use super::manifest::{Manifest, ManifestTable, Shard, Unit, get_optional};
use crate::delta::DeltaLocation;
use crate::error::SyncError;
use crate::progress::Reporter;
use crate::target::{Batch, TargetTable};

/// Units a worker reads at once.
const UNITS_IN_FLIGHT: usize = 2;

/// Which units to run and how.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This worker's share (`None` with no units named: every unit).
    pub shard: Option<Shard>,
    /// Units named explicitly: run even when complete (a re-run replaces their output).
    pub units: Vec<String>,
    /// Object-store settings besides the environment.
    pub storage_options: Vec<(String, String)>,
    /// Fixed concurrency per unit (`None`: adaptive, from the service's hint).
    pub parallel: Option<usize>,
    /// Rows per page (`None`: 5000).
    pub page_size: Option<u32>,
    /// Progress display.
    pub progress: Reporter,
}

impl WorkerOptions {
    /// Every unit of the manifest not complete yet.
    pub fn new() -> Self {
        Self {
            shard: None,
            units: Vec::new(),
            storage_options: Vec::new(),
            parallel: None,
            page_size: None,
            progress: Reporter::hidden(),
        }
    }
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// What happened to one unit.
#[derive(Debug, Clone)]
pub struct UnitReport {
    /// The unit.
    pub unit: String,
    /// Rows written (or found in its marker when it was complete already).
    pub rows: u64,
    /// Data files.
    pub files: usize,
    /// It was complete already and not read again.
    pub skipped: bool,
    /// Time it took.
    pub elapsed: Duration,
}

/// What a worker did.
#[derive(Debug, Clone)]
pub struct WorkerReport {
    /// The plan.
    pub manifest: String,
    /// Its units this worker was given, in order.
    pub units: Vec<UnitReport>,
    /// HTTP requests made.
    pub requests: u64,
    /// Throttled responses (429) absorbed.
    pub throttled: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl WorkerReport {
    /// Rows read by this run (units skipped as complete not counted).
    pub fn rows_read(&self) -> u64 {
        self.units.iter().filter(|u| !u.skipped).map(|u| u.rows).sum()
    }
}

impl std::fmt::Display for WorkerReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let run = self.units.iter().filter(|u| !u.skipped).count();
        let skipped = self.units.len() - run;
        let rows = self.rows_read();
        write!(
            f,
            "plan {}: {run} units read ({rows} rows) in {:.1} s: {:.0} rows/s, {} requests",
            self.manifest,
            self.elapsed.as_secs_f64(),
            rows as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.requests
        )?;
        if self.throttled > 0 {
            write!(f, ", throttled {} times", self.throttled)?;
        }
        if skipped > 0 {
            write!(f, "; {skipped} complete already (skipped)")?;
        }
        if self.units.is_empty() {
            write!(f, "; no units for this shard")?;
        }
        Ok(())
    }
}

/// A unit's completion marker (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Marker {
    /// The plan's id.
    pub manifest: String,
    /// The unit's id.
    pub unit: String,
    /// The table.
    pub table: String,
    /// Rows in its files.
    pub rows: u64,
    /// When it was finished (RFC 3339).
    pub finished: String,
    /// The `add` actions of its files (paths relative to the table).
    pub files: Vec<Add>,
}

/// Where a unit's data files go, relative to its table.
pub(crate) fn unit_dir(manifest: &Manifest, unit: &Unit) -> String {
    format!("{}/{}/{}/", super::DATA_DIR, manifest.header.id, unit.id)
}

/// Where a unit's marker goes, relative to its table.
pub(crate) fn marker_path(manifest: &Manifest, unit: &Unit) -> object_store::path::Path {
    object_store::path::Path::from(format!("{}/{}/{}.json", super::MARKER_DIR, manifest.header.id, unit.id))
}

/// The marker of `unit` if it is complete (a marker of this plan and unit), read from the
/// table's store.
pub(crate) async fn read_marker(
    store: &dyn object_store::ObjectStore,
    manifest: &Manifest,
    unit: &Unit,
    target: &str,
) -> Result<Option<Marker>, SyncError> {
    let path = marker_path(manifest, unit);
    let Some(bytes) = get_optional(store, &path).await.map_err(|e| crate::delta::error(&target, e))? else {
        return Ok(None);
    };
    let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| SyncError::Manifest {
        location: format!("{target}/{path}"),
        message: format!("the completion marker of unit {} is damaged ({e}): run the unit again", unit.id),
    })?;
    if marker.manifest != manifest.header.id || marker.unit != unit.id {
        return Err(SyncError::Manifest {
            location: format!("{target}/{path}"),
            message: format!(
                "the completion marker names plan {} unit {}, not {}",
                marker.manifest, marker.unit, unit.id
            ),
        });
    }
    Ok(Some(marker))
}

/// Refuses a connection to another organization than the plan's.
pub(crate) fn check_organization(client: &DataverseClient, manifest: &Manifest) -> Result<(), SyncError> {
    let here = client.base_url().origin().ascii_serialization();
    if here != manifest.header.organization {
        return Err(SyncError::Manifest {
            location: format!("plan {}", manifest.header.id),
            message: format!(
                "planned for {}, but this connection is to {here}: run the workers with a connection string \
                 (OrganizationUrl) of that organization, or plan again for this one",
                manifest.header.organization
            ),
        });
    }
    Ok(())
}

/// The tables of the plan as they are now, refused when their columns changed since the plan.
pub(crate) async fn current_tables(
    client: &DataverseClient,
    manifest: &Manifest,
    names: &[&str],
) -> Result<HashMap<String, TargetTable>, SyncError> {
    let metadata = Metadata::in_memory(client.clone());
    let mut out = HashMap::new();
    for name in names {
        let Some(planned) = manifest.table(name) else { continue };
        // The plan's snapshot when the columns are unchanged (one request), else the metadata
        // as it is now (a dozen requests; a change is then reported below).
        let t = match planned.metadata.as_deref() {
            Some(snapshot)
                if client.fetch_attribute_types(&snapshot.entity.entity.logical_name).await?
                    == snapshot.attribute_types() =>
            {
                crate::sync::table_of(&snapshot.info, &snapshot.entity)?
            }
            _ => crate::sync::resolve(&metadata, name).await?,
        };
        let now: StructType = t
            .target
            .schema
            .arrow
            .as_ref()
            .try_into_kernel()
            .map_err(|e| SyncError::InvalidArgument(format!("{name}: its columns have no Delta type ({e})")))?;
        if now != planned.schema {
            return Err(SyncError::Manifest {
                location: format!("plan {}", manifest.header.id),
                message: format!(
                    "table '{name}' changed since the plan ({}): units read now would not match the others; \
                     plan again (`d365 plan`) and run the new plan",
                    describe_change(&planned.schema, &now)
                ),
            });
        }
        out.insert(name.to_string(), t.target);
    }
    Ok(out)
}

/// Columns added, removed or retyped between two schemas, for messages.
fn describe_change(then: &StructType, now: &StructType) -> String {
    let mut parts = Vec::new();
    let added: Vec<&str> = now.fields().filter(|f| then.field(f.name()).is_none()).map(|f| f.name().as_str()).collect();
    let removed: Vec<&str> =
        then.fields().filter(|f| now.field(f.name()).is_none()).map(|f| f.name().as_str()).collect();
    let retyped: Vec<&str> = now
        .fields()
        .filter(|f| then.field(f.name()).is_some_and(|t| t.data_type() != f.data_type()))
        .map(|f| f.name().as_str())
        .collect();
    for (what, cols) in [("added", added), ("removed", removed), ("type changed", retyped)] {
        if !cols.is_empty() {
            parts.push(format!("{what}: {}", cols.join(", ")));
        }
    }
    if parts.is_empty() { "column order or nullability changed".into() } else { parts.join("; ") }
}

/// Runs the units `options` selects (see the module docs).
pub async fn run_units(
    client: &DataverseClient,
    manifest: &Manifest,
    options: &WorkerOptions,
) -> Result<WorkerReport, SyncError> {
    let started = Instant::now();
    let stats_before = client.request_log().stats();
    check_organization(client, manifest)?;
    let location = manifest.destination(&options.storage_options)?;
    let forced = !options.units.is_empty();
    let selected: Vec<&Unit> = if forced {
        options.units.iter().map(|id| manifest.unit(id)).collect::<Result<_, _>>()?
    } else {
        manifest.shard_units(options.shard).collect()
    };
    let mut names: Vec<&str> = selected.iter().map(|u| u.table.as_str()).collect();
    names.dedup();
    let tables = current_tables(client, manifest, &names).await?;
    // Two units at a time: while one finishes its last pages (or waits out a throttling
    // answer), the next one already uses the user's budget.
    let owned: Vec<Unit> = selected.into_iter().cloned().collect();
    let tables = &tables;
    let location = &location;
    let reports: Vec<UnitReport> = futures::stream::iter(owned)
        .map(|unit| async move {
            let (Some(planned), Some(target)) = (manifest.table(&unit.table), tables.get(&unit.table)) else {
                return Err(SyncError::UnknownTable { name: unit.table.clone(), suggestion: None });
            };
            let table_url = location.table_url(&unit.table);
            let store = location.unloaded(&table_url)?.log_store().object_store(None);
            let describe = location.describe(&table_url);
            let begun = Instant::now();
            if !forced && let Some(m) = read_marker(store.as_ref(), manifest, &unit, &describe).await? {
                tracing::info!(unit = %unit.id, rows = m.rows, "complete already");
                let files = m.files.len();
                return Ok(UnitReport { unit: unit.id, rows: m.rows, files, skipped: true, elapsed: begun.elapsed() });
            }
            let marker = run_unit(client, manifest, planned, target, &unit, location, options).await?;
            let bytes = serde_json::to_vec(&marker).map_err(|e| SyncError::InvalidArgument(e.to_string()))?;
            let path = marker_path(manifest, &unit);
            store.put(&path, bytes.into()).await.map_err(|e| crate::delta::error(&describe, e))?;
            tracing::info!(unit = %unit.id, rows = marker.rows, files = marker.files.len(), "unit complete");
            let files = marker.files.len();
            Ok(UnitReport { unit: unit.id, rows: marker.rows, files, skipped: false, elapsed: begun.elapsed() })
        })
        .buffered(UNITS_IN_FLIGHT)
        .try_collect()
        .await?;
    let stats = client.request_log().stats();
    Ok(WorkerReport {
        manifest: manifest.header.id.clone(),
        units: reports,
        requests: stats.requests.saturating_sub(stats_before.requests),
        throttled: stats.throttled.saturating_sub(stats_before.throttled),
        elapsed: started.elapsed(),
    })
}

/// The typed batches of one unit, as its pages arrive (pages in parallel, in no particular
/// order). Used by workers and by readers of single units (Spark, Ray, Dask).
pub async fn unit_batches(
    client: &DataverseClient,
    target: &TargetTable,
    unit: &Unit,
    parallel: Option<usize>,
    page_size: Option<u32>,
    progress: &Reporter,
) -> Result<(SchemaRef, BoxStream<'static, Result<RecordBatch, SyncError>>), SyncError> {
    if let Some(range) = &unit.keys {
        return Ok(key_range_batches(client, target, unit, range, progress));
    }
    let column = d365_client::partition::DEFAULT_PARTITION_COLUMN;
    let opts = crate::export::typed_scan_options(target.reader(), &target.pk, column, parallel);
    let (query, plan) = match unit.bounds {
        // A closed range starts as one partition, split while it is read as the pages show
        // where its rows are: no discovery requests, which count against the user's budget.
        Bounds::Range { hi: Some(hi), .. } => {
            let plan = ScanPlan { partitions: vec![Partition::new(0, unit.bounds)], hi_estimate: Some(hi), next_id: 1 };
            (target.reader().query(None, page_size), plan)
        }
        // The last range is open (rows created since the plan): its end is discovered.
        Bounds::Range { hi: None, .. } => {
            let query = target.reader().query(unit.filter().as_deref(), page_size);
            let plan = crate::export::plan(client, &query, &opts).await?.0;
            (query, plan)
        }
        Bounds::Null | Bounds::All => (target.reader().query(unit.filter().as_deref(), page_size), ScanPlan::single()),
    };
    let scan = client.partitioned_scan(&query, plan, opts)?;
    let tracker = progress.track(&format!("unit {}", unit.id), client, scan.progress(), 0);
    let schema = target.schema.arrow.clone();
    let target = target.clone();
    let stream = scan.map(move |page| {
        // The progress display lives as long as the stream.
        let _shown = &tracker;
        let page = page?;
        target.reader().decode_page(&page)
    });
    Ok((schema, stream.boxed()))
}

/// The typed batches of a unit of a Finance & Operations entity: its key range read in key
/// order, one page after another (each asks for the keys after the last one received).
fn key_range_batches(
    client: &DataverseClient,
    target: &TargetTable,
    unit: &Unit,
    range: &d365_client::KeyRange,
    progress: &Reporter,
) -> (SchemaRef, BoxStream<'static, Result<RecordBatch, SyncError>>) {
    let query = target.reader().query(None, None);
    let keys = target.schema.key_fields.clone();
    let pages = client.keyset_scan_ranges(&query, keys, vec![range.clone()], 1);
    let scan_progress = std::sync::Arc::new(d365_client::ScanProgress::default());
    let tracker = progress.track(&format!("unit {}", unit.id), client, scan_progress.clone(), 0);
    let schema = target.schema.arrow.clone();
    let target = target.clone();
    let stream = pages.map(move |page| {
        let _shown = &tracker;
        let page = page?;
        let batch = target.decode(&Batch { body: &page.body, body_rows: page.rows, skip: &[], deleted: &[] })?;
        scan_progress.rows.fetch_add(batch.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(batch)
    });
    (schema, stream.boxed())
}

/// Reads `unit` into Parquet files under its directory; the marker to write once they are all
/// there.
async fn run_unit(
    client: &DataverseClient,
    manifest: &Manifest,
    planned: &ManifestTable,
    target: &TargetTable,
    unit: &Unit,
    location: &DeltaLocation,
    options: &WorkerOptions,
) -> Result<Marker, SyncError> {
    let table_url = location.table_url(&planned.table);
    let dir = unit_dir(manifest, unit);
    let unit_url = table_url.join(&dir).map_err(|e| SyncError::InvalidArgument(format!("{dir}: {e}")))?;
    let describe = location.describe(&unit_url);
    if let Ok(path) = unit_url.to_file_path() {
        std::fs::create_dir_all(&path).map_err(SyncError::io(&path))?;
    }
    let (schema, mut batches) =
        unit_batches(client, target, unit, options.parallel, options.page_size, &options.progress).await?;
    let mut writer = crate::delta::data_writer(location, &unit_url, schema, &describe)?;
    let mut rows = 0u64;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        rows += batch.num_rows() as u64;
        writer.write(batch).await.map_err(|e| crate::delta::error(&describe, e))?;
    }
    let files = writer
        .flush()
        .await
        .map_err(|e| crate::delta::error(&describe, e))?
        .into_iter()
        .map(|mut add| {
            add.path = format!("{dir}{}", add.path);
            add
        })
        .collect();
    let finished = super::now_text();
    Ok(Marker {
        manifest: manifest.header.id.clone(),
        unit: unit.id.clone(),
        table: planned.table.clone(),
        rows,
        finished,
        files,
    })
}

/// One unit's rows as typed batches, for readers of single units (a Spark partition, a Ray or
/// Dask task): the plan's organization and the table's columns are checked first.
pub async fn read_unit(
    client: &DataverseClient,
    manifest: &Manifest,
    unit: &str,
    parallel: Option<usize>,
) -> Result<(SchemaRef, BoxStream<'static, Result<RecordBatch, SyncError>>), SyncError> {
    check_organization(client, manifest)?;
    let unit = manifest.unit(unit)?;
    let tables = current_tables(client, manifest, &[unit.table.as_str()]).await?;
    let target = tables
        .get(&unit.table)
        .ok_or_else(|| SyncError::UnknownTable { name: unit.table.clone(), suggestion: None })?;
    unit_batches(client, target, unit, parallel, None, &Reporter::hidden()).await
}

//! `d365 commit MANIFEST`: every unit's files added to its Delta table in **one** transaction
//! per table, by a single writer, with the sync position the plan recorded, so `d365 sync`
//! continues incrementally from there.
//!
//! The markers of every unit of every table are read first: when one is missing nothing is
//! committed, and the error lists the units to run. A table already committed from this plan
//! (its history has a commit naming the plan) is left alone, so re-running a commit that
//! failed half-way finishes it. After a table's commit, the files under its units' directories
//! that no marker lists (from killed or duplicated runs) are deleted.

use std::collections::{HashMap, HashSet};

use deltalake_core::kernel::Add;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt as _};
use serde_json::{Value, json};

use super::manifest::{Manifest, ManifestTable};
use super::worker::{Marker, read_marker};
use crate::delta::{DeltaLocation, STATE_KEY, commit_files, parse_state, state_json};
use crate::error::SyncError;

/// The `commitInfo` key naming the plan a commit came from.
const PLAN_KEY: &str = "d365.plan";
/// Markers read at once.
const MARKERS_IN_FLIGHT: usize = 16;

/// How to commit.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The Delta location, when given (it must be the plan's).
    pub to: Option<String>,
    /// Object-store settings besides the environment.
    pub storage_options: Vec<(String, String)>,
}

/// What the commit did to one table.
#[derive(Debug, Clone)]
pub struct TableCommit {
    /// The table (logical name).
    pub table: String,
    /// Where it is (no credentials).
    pub location: String,
    /// Rows added.
    pub rows: u64,
    /// Data files added.
    pub files: usize,
    /// The table's version after the commit.
    pub version: Option<u64>,
    /// It had been committed from this plan before: nothing was done.
    pub already: bool,
    /// Files of killed or repeated unit runs deleted.
    pub orphans_deleted: usize,
}

/// What a commit did.
#[derive(Debug, Clone)]
pub struct CommitReport {
    /// The plan.
    pub manifest: String,
    /// Per table.
    pub tables: Vec<TableCommit>,
}

impl std::fmt::Display for CommitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, t) in self.tables.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if t.already {
                write!(f, "{}: committed from plan {} before; nothing to do ({})", t.table, self.manifest, t.location)?;
                continue;
            }
            write!(
                f,
                "{}: {} rows in {} files committed to {} (version {})",
                t.table,
                t.rows,
                t.files,
                t.location,
                t.version.map_or_else(|| "?".into(), |v| v.to_string())
            )?;
            if t.orphans_deleted > 0 {
                write!(f, "; {} files of interrupted or repeated unit runs deleted", t.orphans_deleted)?;
            }
        }
        Ok(())
    }
}

/// A table ready to commit.
struct Ready<'a> {
    planned: &'a ManifestTable,
    table: deltalake_core::DeltaTable,
    describe: String,
    markers: Vec<Marker>,
}

/// Commits the plan `manifest` (see the module docs).
pub async fn commit(manifest: &Manifest, options: &CommitOptions) -> Result<CommitReport, SyncError> {
    let plan = &manifest.header.id;
    let location = manifest.destination(&options.storage_options)?;
    if let Some(to) = &options.to {
        let given = DeltaLocation::parse_with(to, options.storage_options.clone())?;
        if given.url() != location.url() {
            return Err(SyncError::Manifest {
                location: format!("plan {plan}"),
                message: format!(
                    "its units were written under {location}, not {given}: commit there (leave --to out), \
                     or plan again with --to {given}"
                ),
            });
        }
    }
    let mut ready = Vec::new();
    let mut done = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for planned in &manifest.tables {
        let url = location.table_url(&planned.table);
        let describe = location.describe(&url);
        let table = location.open(&url).await?;
        if table.version().is_some() {
            match committed_from(&table, plan, &describe).await? {
                History::FromThisPlan => {
                    done.push(TableCommit {
                        table: planned.table.clone(),
                        location: describe,
                        rows: 0,
                        files: 0,
                        version: table.version(),
                        already: true,
                        orphans_deleted: 0,
                    });
                    continue;
                }
                History::Other(Some(set)) if !set.eq_ignore_ascii_case(&planned.entity_set) => {
                    return Err(SyncError::Manifest {
                        location: format!("plan {plan}"),
                        message: format!(
                            "{describe} holds the Dataverse table '{set}', not '{}': the plan's location is wrong; \
                             plan again with another --to",
                            planned.entity_set
                        ),
                    });
                }
                History::Other(_) => {}
            }
        }
        let store = table.log_store().object_store(None);
        let units: Vec<_> = manifest.table_units(&planned.table).collect();
        // Owned units: a closure over borrowed ones is not `Send` for every lifetime.
        let owned: Vec<super::Unit> = units.iter().map(|u| (*u).clone()).collect();
        let found: Vec<Option<Marker>> = futures::stream::iter(owned)
            .map(|u| {
                let store = store.clone();
                let describe = describe.clone();
                async move { read_marker(store.as_ref(), manifest, &u, &describe).await }
            })
            .buffered(MARKERS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut markers = Vec::with_capacity(found.len());
        for (unit, marker) in units.iter().zip(found) {
            match marker {
                Some(m) => markers.push(m),
                None => missing.push(unit.id.clone()),
            }
        }
        ready.push(Ready { planned, table, describe, markers });
    }
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(10).map(String::as_str).collect();
        let more = if missing.len() > shown.len() {
            format!(" and {} more", missing.len() - shown.len())
        } else {
            String::new()
        };
        return Err(SyncError::Manifest {
            location: format!("plan {plan}"),
            message: format!(
                "{} of {} units are not complete: {}{more}. Nothing was committed. Run them \
                 (`d365 export --manifest MANIFEST --unit ID`, or re-run their workers' shards), then commit again",
                missing.len(),
                manifest.units.len(),
                shown.join(", ")
            ),
        });
    }
    let mut tables = done;
    for r in ready {
        tables.push(commit_table(manifest, r).await?);
    }
    Ok(CommitReport { manifest: plan.clone(), tables })
}

/// What a table's history says about this plan.
enum History {
    /// A commit of this plan is in it.
    FromThisPlan,
    /// Not; the entity set of its newest sync state, if any.
    Other(Option<String>),
}

async fn committed_from(table: &deltalake_core::DeltaTable, plan: &str, describe: &str) -> Result<History, SyncError> {
    let mut history = table.history(None);
    let mut entity_set = None;
    while let Some(info) = history.try_next().await.map_err(|e| crate::delta::error(&describe, e))? {
        if info.info.get(PLAN_KEY).and_then(|v| v.get("id")).and_then(Value::as_str) == Some(plan) {
            return Ok(History::FromThisPlan);
        }
        if entity_set.is_none()
            && let Some(state) = info.info.get(STATE_KEY).and_then(parse_state)
        {
            entity_set = Some(state.entity_set);
        }
    }
    Ok(History::Other(entity_set))
}

async fn commit_table(manifest: &Manifest, r: Ready<'_>) -> Result<TableCommit, SyncError> {
    let rows: u64 = r.markers.iter().map(|m| m.rows).sum();
    let adds: Vec<Add> = r.markers.iter().flat_map(|m| m.files.iter().cloned()).collect();
    let files = adds.len();
    let kept: HashSet<String> = adds.iter().map(|a| a.path.clone()).collect();
    let info: HashMap<String, Value> = HashMap::from([
        (STATE_KEY.to_string(), state_json(&r.planned.table, &r.planned.state())),
        (
            PLAN_KEY.to_string(),
            json!({"id": manifest.header.id, "units": r.markers.len(), "rows": rows, "created": manifest.header.created}),
        ),
    ]);
    let store = r.table.log_store().object_store(None);
    let committed = commit_files(r.table, &r.describe, &r.planned.schema, adds, info).await?;
    let orphans_deleted = match delete_orphans(store.as_ref(), &manifest.header.id, &kept).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(table = %r.planned.table, "files of interrupted unit runs not deleted: {e}");
            0
        }
    };
    Ok(TableCommit {
        table: r.planned.table.clone(),
        location: r.describe,
        rows,
        files,
        version: committed.version(),
        already: false,
        orphans_deleted,
    })
}

/// Deletes the files under the plan's unit directories that `kept` does not list.
async fn delete_orphans(
    store: &dyn ObjectStore,
    plan: &str,
    kept: &HashSet<String>,
) -> Result<usize, object_store::Error> {
    let prefix = object_store::path::Path::from(format!("{}/{plan}", super::DATA_DIR));
    let listed: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await?;
    let mut deleted = 0;
    for meta in listed {
        if !kept.contains(meta.location.as_ref()) {
            store.delete(&meta.location).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

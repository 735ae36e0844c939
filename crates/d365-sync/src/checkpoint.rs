//! The checkpoint of an export: which partitions are finished, each unfinished one's next
//! link, and how many bytes of each part file the checkpoint covers. It is rewritten after
//! every page, atomically (a temporary file renamed over the old one; with `fsync`, synced to
//! disk about once a second after the part files), *after* the page's rows reached the part file; so after a crash the part files hold at least what
//! the checkpoint says, and resuming truncates them back to it and re-reads at most the one
//! page per partition that was written but not yet checkpointed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use d365_client::{Partition, ScanPage, ScanPlan};
use serde::{Deserialize, Serialize};

use crate::error::SyncError;

const VERSION: u32 = 2;

/// The state of an export between pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version of this file.
    pub version: u32,
    /// The export's arguments (table, columns, filter, format): a re-run with other arguments
    /// does not resume this one.
    pub fingerprint: String,
    /// The entity set read.
    pub entity_set: String,
    /// Its primary key.
    pub primary_key: String,
    /// The partition column, or `None` for a single-partition read.
    pub column: Option<String>,
    /// Bounds of splits of the open last range.
    pub hi_estimate: Option<i64>,
    /// Next free partition id.
    pub next_id: u64,
    /// Every partition, by id.
    pub partitions: BTreeMap<u64, Partition>,
    /// Bytes of each partition's part file covered by this checkpoint.
    pub part_bytes: BTreeMap<u64, u64>,
    /// The columns exported (SQL names), to refuse resuming after the table changed.
    #[serde(default)]
    pub columns: Vec<String>,
    /// A Finance & Operations entity's key ranges and how far each was read (its partitions
    /// are then one per range, by id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ranges: Vec<d365_client::KeyRange>,
}

impl Checkpoint {
    /// A fresh checkpoint of `plan`.
    pub fn new(
        fingerprint: String,
        entity_set: String,
        primary_key: String,
        column: Option<String>,
        plan: ScanPlan,
    ) -> Self {
        Self {
            version: VERSION,
            fingerprint,
            entity_set,
            primary_key,
            column,
            hi_estimate: plan.hi_estimate,
            next_id: plan.next_id,
            partitions: plan.partitions.into_iter().map(|p| (p.id, p)).collect(),
            part_bytes: BTreeMap::new(),
            columns: Vec::new(),
            key_ranges: Vec::new(),
        }
    }

    /// The scan plan to resume from.
    pub fn plan(&self) -> ScanPlan {
        ScanPlan {
            partitions: self.partitions.values().cloned().collect(),
            hi_estimate: self.hi_estimate,
            next_id: self.next_id,
        }
    }

    /// Records a page whose rows now end at byte `bytes` of its part file.
    pub fn apply(&mut self, page: &ScanPage, bytes: u64) {
        let id = page.partition.id;
        self.partitions.insert(id, page.partition.clone());
        self.part_bytes.insert(id, bytes);
        for p in &page.spawned {
            self.next_id = self.next_id.max(p.id + 1);
            self.partitions.insert(p.id, p.clone());
        }
    }

    /// Rows the checkpoint covers.
    pub fn rows(&self) -> u64 {
        self.partitions.values().map(|p| p.rows).sum()
    }

    /// Whether every partition is finished.
    pub fn complete(&self) -> bool {
        self.partitions.values().all(|p| p.done)
    }

    /// Partitions in output order (the partition column's order, nulls first).
    pub fn ordered(&self) -> Vec<&Partition> {
        let mut v: Vec<&Partition> = self.partitions.values().collect();
        v.sort_by_key(|p| p.key());
        v
    }

    /// Reads the checkpoint at `path`, if there is one.
    pub fn load(path: &Path) -> Result<Option<Self>, SyncError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SyncError::io(path)(e)),
        };
        let c: Checkpoint = serde_json::from_slice(&text).map_err(|e| SyncError::Checkpoint {
            path: path.to_path_buf(),
            message: format!("unreadable ({e}); delete it to start the export over"),
        })?;
        if c.version != VERSION {
            return Err(SyncError::Checkpoint {
                path: path.to_path_buf(),
                message: format!("written by another version ({}); delete it to start over", c.version),
            });
        }
        Ok(Some(c))
    }

    /// Writes the checkpoint to `path` atomically (`durable`: synced to disk before the
    /// rename, as a power loss needs; a killed process needs only the rename).
    pub fn save(&self, path: &Path, durable: bool) -> Result<(), SyncError> {
        let bytes = serde_json::to_vec(self)
            .map_err(|e| SyncError::Checkpoint { path: path.to_path_buf(), message: e.to_string() })?;
        write_atomically(path, &bytes, durable)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory (synced when
/// `durable`), then renamed over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8], durable: bool) -> Result<(), SyncError> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let mut f = std::fs::File::create(&tmp).map_err(SyncError::io(&tmp))?;
    f.write_all(bytes).map_err(SyncError::io(&tmp))?;
    if durable {
        f.sync_data().map_err(SyncError::io(&tmp))?;
    }
    drop(f);
    std::fs::rename(&tmp, path).map_err(SyncError::io(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use d365_client::Bounds;

    #[test]
    fn pages_and_splits_are_recorded_and_survive_a_round_trip() {
        let plan = ScanPlan {
            partitions: vec![
                Partition::new(0, Bounds::Range { lo: None, hi: Some(100) }),
                Partition::new(1, Bounds::Range { lo: Some(100), hi: None }),
            ],
            hi_estimate: Some(200),
            next_id: 2,
        };
        let mut c = Checkpoint::new("f".into(), "accounts".into(), "accountid".into(), Some("createdon".into()), plan);
        let mut p0 = c.partitions[&0].clone();
        p0.rows = 10;
        p0.done = true;
        let child = Partition::new(2, Bounds::Range { lo: Some(150), hi: None });
        let mut p1 = c.partitions[&1].clone();
        p1.rows = 5;
        p1.next_link = Some("accounts?$skiptoken=x".into());
        c.apply(
            &ScanPage {
                partition: p0,
                spawned: vec![],
                rows: vec![],
                body: Default::default(),
                skipped: vec![],
                decoded: None,
            },
            700,
        );
        c.apply(
            &ScanPage {
                partition: p1,
                spawned: vec![child],
                rows: vec![],
                body: Default::default(),
                skipped: vec![],
                decoded: None,
            },
            300,
        );
        assert_eq!((c.rows(), c.next_id, c.complete()), (15, 3, false));
        let order: Vec<u64> = c.ordered().iter().map(|p| p.id).collect();
        assert_eq!(order, vec![0, 1, 2]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        assert_eq!(Checkpoint::load(&path).unwrap(), None);
        c.save(&path, true).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(c.clone()));
        assert_eq!(c.plan().partitions.len(), 3);
        std::fs::write(&path, b"{oops").unwrap();
        assert!(matches!(Checkpoint::load(&path), Err(SyncError::Checkpoint { .. })));
    }
}

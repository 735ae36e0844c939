//! [`TableExtent`]: what one connection learnt of a table's size, so a repeated aggregate over
//! a big table is split in its first round instead of being refused first.
//!
//! An aggregate over the whole of a table (no filter) counts its rows; when the service had to
//! split it, it also probed the span of `createdon`. Both are kept per entity set on the
//! [`DataverseClient`](crate::DataverseClient) (shared by its clones, lost with it) and read by
//! the next aggregate of the same table. They are hints, never answers: ranges planned from a
//! stale span are open at both ends, so rows created since still belong to one of them, and
//! a range that has grown past the service's limit is split again.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::DataverseClient;

/// Entity sets remembered at most; a long-lived client forgets all of them past this.
const MAX_TABLES: usize = 256;

/// The size of a table, as an earlier aggregate saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableExtent {
    /// Rows counted (an estimate when part of the table was aggregated locally).
    pub rows: u64,
    /// The smallest and largest `createdon` (Unix seconds), when they were probed.
    pub span: Option<(i64, i64)>,
}

/// Extents by entity set (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct TableExtents {
    by_entity_set: Mutex<HashMap<String, TableExtent>>,
}

impl TableExtents {
    pub(crate) fn get(&self, entity_set: &str) -> Option<TableExtent> {
        self.by_entity_set.lock().unwrap_or_else(|e| e.into_inner()).get(entity_set).copied()
    }

    pub(crate) fn remember(&self, entity_set: &str, extent: TableExtent) {
        let mut map = self.by_entity_set.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TABLES && !map.contains_key(entity_set) {
            map.clear();
        }
        map.insert(entity_set.to_string(), extent);
    }

    pub(crate) fn forget(&self, entity_set: &str) {
        self.by_entity_set.lock().unwrap_or_else(|e| e.into_inner()).remove(entity_set);
    }

    pub(crate) fn clear(&self) {
        self.by_entity_set.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl DataverseClient {
    /// The size of `entity_set` as an earlier aggregate over the whole table saw it (see
    /// [`TableExtent`]): a hint for planning, never an answer.
    pub fn table_extent(&self, entity_set: &str) -> Option<TableExtent> {
        self.extents().get(entity_set)
    }

    /// Records what an aggregate over the whole of `entity_set` saw; `None` forgets it.
    pub fn remember_table_extent(&self, entity_set: &str, extent: Option<TableExtent>) {
        match extent {
            Some(e) => self.extents().remember(entity_set, e),
            None => self.extents().forget(entity_set),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_extent_of_a_table_is_kept_and_the_memory_is_bounded() {
        let extents = TableExtents::default();
        assert_eq!(extents.get("accounts"), None);
        extents.remember("accounts", TableExtent { rows: 10, span: None });
        extents.remember("accounts", TableExtent { rows: 70_000, span: Some((1, 2)) });
        assert_eq!(extents.get("accounts"), Some(TableExtent { rows: 70_000, span: Some((1, 2)) }));
        for i in 0..MAX_TABLES {
            extents.remember(&format!("t{i}"), TableExtent { rows: 1, span: None });
        }
        assert!(extents.by_entity_set.lock().unwrap().len() <= MAX_TABLES);
        extents.forget("t255");
        assert_eq!(extents.get("t255"), None);
        extents.clear();
        assert_eq!(extents.get("t254"), None);
    }
}

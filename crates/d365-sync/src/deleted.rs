//! The `$deletedEntity` entries of a change-tracking page, found in the raw body by the SQL
//! engine's page decoder (two columns: each row's `@odata.context` and `id`), so a typed
//! target never parses the page into `serde_json` maps — the rows themselves are decoded
//! straight into Arrow by the target.

use std::sync::Arc;

use d365_sql::arrow_decode::PageDecoder;
use d365_sql::datafusion::arrow::array::{Array, AsArray};
use d365_sql::datafusion::arrow::datatypes::{DataType, Field, Schema};
use d365_sql::{ColumnRole, ColumnSpec, FilterKind, ValueKind};

use crate::error::SyncError;

/// Finds deleted entries in change-tracking pages.
pub struct DeletedEntries {
    decoder: PageDecoder,
}

impl DeletedEntries {
    /// A finder for pages of `entity_set`.
    pub fn new(entity_set: &str) -> Self {
        let spec = |name: &str, key: &str| ColumnSpec {
            name: name.into(),
            property: key.into(),
            json_key: key.into(),
            role: ColumnRole::Value,
            kind: ValueKind::Utf8,
            attribute_type: String::new(),
            filter: FilterKind::None,
            sortable: false,
        };
        let columns = [spec("context", "@odata.context"), spec("id", "id")];
        let schema = Arc::new(Schema::new(vec![
            Field::new("context", DataType::Utf8, true),
            Field::new("id", DataType::Utf8, true),
        ]));
        let refs: Vec<&ColumnSpec> = columns.iter().collect();
        Self { decoder: PageDecoder::new(schema, &refs, entity_set) }
    }

    /// The ids of the deleted entries of the page `body` (of `rows` rows) and their positions.
    pub fn find(&self, body: &[u8], rows: usize) -> Result<(Vec<String>, Vec<usize>), SyncError> {
        let batch = self
            .decoder
            .decode(body, rows, rows)
            .map_err(|e| SyncError::InvalidArgument(format!("a change-tracking page could not be read: {e}")))?;
        let context = batch.column(0).as_string::<i32>();
        let id = batch.column(1).as_string::<i32>();
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        for i in 0..batch.num_rows() {
            if !context.is_null(i) && context.value(i).ends_with("$deletedEntity") && !id.is_null(i) {
                ids.push(id.value(i).to_string());
                positions.push(i);
            }
        }
        Ok((ids, positions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_entries_are_found_among_changed_rows() {
        let body = br#"{"@odata.context":"https://o/api/data/v9.2/$metadata#contacts","value":[
            {"@odata.etag":"W/\"1\"","contactid":"a1","lastname":"X"},
            {"@odata.context":"https://o/api/data/v9.2/$metadata#contacts/$deletedEntity","id":"2e45","reason":"deleted"},
            {"contactid":"b2","lastname":"Y"}],
            "@odata.deltaLink":"https://o/api/data/v9.2/contacts?$deltatoken=9"}"#;
        let (ids, at) = DeletedEntries::new("contacts").find(body, 3).unwrap();
        assert_eq!((ids, at), (vec!["2e45".to_string()], vec![1]));
    }
}

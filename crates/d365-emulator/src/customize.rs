//! Customizing the emulated environment at runtime: creating a column on an existing table.
//!
//! One path serves the Web API (`POST EntityDefinitions(...)/Attributes`) and the Rust side
//! ([`crate::Emulator::add_column`]): check the new column against the current schema, add it
//! to the SQLite table (existing rows get null) and record its definition, then swap in a schema
//! that has it. Requests already running keep the schema they started with; the next ones see
//! the column in `EntityDefinitions`, `$metadata`, queries, writes and change tracking.

use crate::error::StartError;
use crate::schema::Schema;
use crate::schema::custom::{AddColumnError, NewColumn, PrefixRule};
use crate::state::Shared;
use crate::store::Store;
use std::sync::Arc;
use uuid::Uuid;

/// A column created by [`Shared::add_column`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedColumn {
    /// The table's logical name.
    pub table: String,
    /// The column's logical name.
    pub logical_name: String,
    /// The column's `MetadataId`.
    pub metadata_id: Uuid,
}

impl Shared {
    /// Creates `column` on `table` (a logical name); `prefix` says which customization prefixes
    /// its schema name may carry. Blocking: call from `spawn_blocking`.
    pub fn add_column(
        &self,
        table: &str,
        column: &NewColumn,
        prefix: PrefixRule,
    ) -> Result<CreatedColumn, AddColumnError> {
        let _one_at_a_time = self.definitions.lock_changes();
        let schema = self.schema();
        let t = schema.table(table).ok_or_else(|| AddColumnError::UnknownTable(table.into()))?;
        let columns = column.columns(&schema, t, prefix)?;
        let definition = serde_json::to_string(column).map_err(|e| AddColumnError::Store(e.to_string()))?;
        self.store.add_columns(t, &columns, &definition).map_err(|e| match e {
            // The SQL table already has it (a data file whose definition went missing).
            rusqlite::Error::SqliteFailure(_, Some(m)) if m.contains("duplicate column name") => {
                AddColumnError::Duplicate { name: column.schema_name.clone(), table: table.into() }
            }
            e => AddColumnError::Store(e.to_string()),
        })?;
        let created = CreatedColumn {
            table: t.logical_name.clone(),
            logical_name: columns[0].logical_name.clone(),
            metadata_id: columns[0].metadata_id,
        };
        let next = schema.with_columns(table, columns).ok_or_else(|| AddColumnError::UnknownTable(table.into()))?;
        self.definitions.replace(Arc::new(next));
        tracing::info!(table, column = %created.logical_name, "column created");
        Ok(created)
    }
}

/// `schema` with the columns created earlier in `store` (a reopened `--data` file). A
/// definition that no longer applies (its table gone, or unreadable) is skipped with a warning.
pub(crate) fn restore(mut schema: Schema, store: &Store) -> Result<Schema, StartError> {
    let recorded = store.custom_columns().map_err(|e| StartError::Store(e.to_string()))?;
    for (table, definition) in recorded {
        let next = serde_json::from_str::<NewColumn>(&definition)
            .map_err(|e| AddColumnError::Invalid(e.to_string()))
            .and_then(|c| schema.with_new_column(&table, &c));
        match next {
            Ok(next) => schema = next,
            Err(e) => tracing::warn!(table, "a column created earlier is skipped: {e}"),
        }
    }
    Ok(schema)
}

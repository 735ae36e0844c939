//! Local tables beside the Dataverse ones: files registered with
//! [`SqlEngine::register_file`](crate::SqlEngine::register_file) (`--table staging=rows.csv`)
//! and the hidden per-statement scans of UPDATE/DELETE (the target table plus its row's
//! `@odata.etag`). They live in schema `dbo` in front of the Dataverse tables: the catalog is
//! wrapped the first time one is registered.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};

use crate::catalog::{DataverseCatalog, TABLES_SCHEMA, TablesSchema};

/// The catalog with `dbo` overlaid by local tables.
#[derive(Debug)]
pub(crate) struct OverlayCatalog {
    pub inner: Arc<DataverseCatalog>,
    pub dbo: Arc<OverlaySchema>,
}

impl CatalogProvider for OverlayCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name.eq_ignore_ascii_case(TABLES_SCHEMA) { Some(self.dbo.clone()) } else { self.inner.schema(name) }
    }
}

/// Schema `dbo`: local tables first, then the Dataverse tables.
#[derive(Debug)]
pub(crate) struct OverlaySchema {
    pub local: MemorySchemaProvider,
    pub tables: Arc<TablesSchema>,
}

#[async_trait]
impl SchemaProvider for OverlaySchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.local.table_names().into_iter().filter(|n| !n.starts_with(HIDDEN)).collect();
        names.extend(self.tables.table_names());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if self.local.table_exist(name) {
            return self.local.table(name).await;
        }
        self.tables.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.local.table_exist(name) || self.tables.table_exist(name)
    }

    fn register_table(&self, name: String, table: Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
        if self.tables.table_exist(&name) && !name.starts_with(HIDDEN) {
            return Err(DataFusionError::Plan(format!(
                "a local table cannot be named '{name}': the organisation has a table of that name"
            )));
        }
        self.local.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.local.deregister_table(name)
    }
}

/// Prefix of the hidden per-statement tables.
pub(crate) const HIDDEN: &str = "__dml_";

//! The DataFusion catalog of one organisation: schema `dbo` with every table from
//! `EntityDefinitions` (by logical name, case-insensitively) and schema `metadata` with
//! `entity`, `attribute` and `relationship`.
//!
//! Listing tables uses the table list only (one request, or the disk cache). A table's columns
//! are fetched when a query first names it (`SchemaProvider::table` is async) and its provider
//! is kept for later queries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use d365_client::{DataverseClient, EntityInfo, Metadata};
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::Result;

use crate::arrow_schema::table_schema;
use crate::error::SqlError;
use crate::metadata_tables::{MetadataKind, MetadataTable};
use crate::nearest::nearest;
use crate::table_provider::DataverseTable;

/// Name of the catalog the engine registers.
pub const CATALOG: &str = "dataverse";
/// Schema of the Dataverse tables (the default schema).
pub const TABLES_SCHEMA: &str = "dbo";
/// Schema of the metadata tables.
pub const METADATA_SCHEMA: &str = "metadata";

/// How the tables read (shared by every table provider of a catalog).
#[derive(Debug, Clone)]
pub(crate) struct ReadSettings {
    pub client: DataverseClient,
    pub metadata: Arc<Metadata>,
    pub pushdown: bool,
    pub page_size: Option<u32>,
    pub parallel: bool,
    pub parallelism: Option<usize>,
}

/// The catalog: `dbo` and `metadata`.
#[derive(Debug)]
pub struct DataverseCatalog {
    tables: Arc<TablesSchema>,
    metadata: Arc<MetadataSchema>,
}

impl DataverseCatalog {
    pub(crate) fn new(settings: ReadSettings, entities: Arc<Vec<EntityInfo>>) -> Self {
        let metadata = Arc::new(MetadataSchema::new(settings.metadata.clone(), entities.clone()));
        let tables = Arc::new(TablesSchema { settings, entities, providers: Mutex::new(HashMap::new()) });
        Self { tables, metadata }
    }

    /// The schema of the Dataverse tables.
    pub fn tables(&self) -> &Arc<TablesSchema> {
        &self.tables
    }
}

impl CatalogProvider for DataverseCatalog {
    fn schema_names(&self) -> Vec<String> {
        vec![TABLES_SCHEMA.to_string(), METADATA_SCHEMA.to_string()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name.eq_ignore_ascii_case(TABLES_SCHEMA) {
            Some(self.tables.clone())
        } else if name.eq_ignore_ascii_case(METADATA_SCHEMA) {
            Some(self.metadata.clone())
        } else {
            None
        }
    }
}

/// Schema `dbo`: one table per queryable Dataverse table.
#[derive(Debug)]
pub struct TablesSchema {
    settings: ReadSettings,
    entities: Arc<Vec<EntityInfo>>,
    providers: Mutex<HashMap<String, Arc<DataverseTable>>>,
}

impl TablesSchema {
    fn queryable(&self) -> impl Iterator<Item = &EntityInfo> {
        self.entities.iter().filter(|e| e.entity_set_name.is_some())
    }

    /// The table named `name` (logical name, case-insensitive).
    pub fn entity(&self, name: &str) -> Option<&EntityInfo> {
        self.queryable().find(|e| e.logical_name.eq_ignore_ascii_case(name))
    }

    /// The table whose entity set name is `name` (`accounts`), as the Web API and `d365
    /// export` name tables; SQL itself names them by logical name.
    pub fn entity_by_set(&self, name: &str) -> Option<&EntityInfo> {
        self.queryable().find(|e| e.entity_set_name.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(name)))
    }

    /// The provider of table `name`, fetching its columns on first use.
    pub async fn provider(&self, name: &str) -> Result<Arc<DataverseTable>, SqlError> {
        let Some(entity) = self.entity(name) else {
            let suggestion = nearest(name, self.queryable().map(|e| e.logical_name.as_str()));
            return Err(SqlError::UnknownTable { name: name.to_string(), suggestion });
        };
        let key = entity.logical_name.clone();
        if let Some(p) = self.providers.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(p);
        }
        let meta = self.settings.metadata.entity(&key).await?;
        let shape = Arc::new(table_schema(&meta));
        let s = &self.settings;
        let provider = Arc::new(
            DataverseTable::new(s.client.clone(), shape, s.pushdown, s.page_size)
                .with_parallel(s.parallel, s.parallelism),
        );
        if let Ok(mut m) = self.providers.lock() {
            m.insert(key, provider.clone());
        }
        Ok(provider)
    }
}

#[async_trait]
impl SchemaProvider for TablesSchema {
    fn table_names(&self) -> Vec<String> {
        self.queryable().map(|e| e.logical_name.clone()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.provider(name).await {
            Ok(p) => Ok(Some(p)),
            Err(e) => Err(e.into_datafusion()),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.entity(name).is_some()
    }
}

/// Schema `metadata`.
#[derive(Debug)]
pub struct MetadataSchema {
    tables: Vec<(MetadataKind, Arc<MetadataTable>)>,
}

impl MetadataSchema {
    fn new(metadata: Arc<Metadata>, entities: Arc<Vec<EntityInfo>>) -> Self {
        let tables = MetadataKind::ALL
            .iter()
            .map(|k| (*k, Arc::new(MetadataTable::new(*k, metadata.clone(), entities.clone()))))
            .collect();
        Self { tables }
    }
}

#[async_trait]
impl SchemaProvider for MetadataSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(|(k, _)| k.name().to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some((_, t)) = self.tables.iter().find(|(k, _)| k.name().eq_ignore_ascii_case(name)) {
            return Ok(Some(t.clone()));
        }
        let suggestion =
            nearest(name, self.tables.iter().map(|(k, _)| k.name())).map(|s| format!("{METADATA_SCHEMA}.{s}"));
        Err(SqlError::UnknownTable { name: format!("{METADATA_SCHEMA}.{name}"), suggestion }.into_datafusion())
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.iter().any(|(k, _)| k.name().eq_ignore_ascii_case(name))
    }
}

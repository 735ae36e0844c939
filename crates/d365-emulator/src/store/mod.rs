//! SQLite storage of the Dataverse tables.

use crate::config::Config;
use crate::error::StartError;
use crate::schema::Schema;
use std::path::Path;
use std::sync::Arc;

/// The Dataverse data store.
#[derive(Debug)]
pub struct Store {
    schema: Arc<Schema>,
}

impl Store {
    /// Opens (and on first use creates and seeds) the store.
    pub fn open(_data: Option<&Path>, schema: Arc<Schema>, _config: &Config, _rows: usize) -> Result<Self, StartError> {
        Ok(Self { schema })
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

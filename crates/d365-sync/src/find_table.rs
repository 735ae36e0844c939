//! A table named by the user (logical name or entity set name, any case), or an error that
//! names the nearest table.

use d365_client::{EntityInfo, Metadata};

use crate::error::SyncError;

/// The table `name` stands for, or [`SyncError::UnknownTable`] with the nearest name.
pub(crate) async fn find_table(metadata: &Metadata, name: &str) -> Result<EntityInfo, SyncError> {
    if let Some(info) = metadata.find_entity(name).await? {
        return Ok(info);
    }
    let list = metadata.entities().await?;
    let names = list.iter().flat_map(|e| std::iter::once(e.logical_name.as_str()).chain(e.entity_set_name.as_deref()));
    let suggestion = d365_sql::nearest::nearest(name, names);
    Err(SyncError::UnknownTable { name: name.to_string(), suggestion })
}

//! A sync target that fails after a number of calls, as a process killed there would: whatever
//! the wrapped target held uncommitted is lost.

use async_trait::async_trait;
use d365_client::{DataverseClient, RecordKey};
use d365_sync::store::TableState;
use d365_sync::{Batch, SyncError, Target, TargetTable};
use serde_json::json;

use super::Env;

/// Pseudo-random numbers below `n` from a fixed `seed` (xorshift): the pages after which a
/// [`Dies`] target fails, the same in every run.
pub fn seeded(mut seed: u32) -> impl FnMut(u32) -> usize {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed % n) as usize
    }
}

/// The changes between two rounds of a crash test: `inserts` new contacts, `updates` renamed
/// (from position `round * 7`), 5 deleted (from position `deletes_from + round * 5`).
pub async fn change_contacts(
    env: &Env,
    client: &DataverseClient,
    round: usize,
    inserts: usize,
    updates: usize,
    deletes_from: usize,
) {
    let id = |s: &str| RecordKey::Id(uuid::Uuid::parse_str(s).unwrap());
    let now = env.contacts();
    for i in 0..inserts {
        client.create("contacts", &json!({"lastname": format!("R{round} {i}")})).await.unwrap();
    }
    for (c, _) in now.iter().skip(round * 7).take(updates) {
        client.update("contacts", &id(c), &json!({"lastname": format!("U{round}")}), None).await.unwrap();
    }
    for (c, _) in now.iter().skip(deletes_from + round * 5).take(5) {
        client.delete("contacts", &id(c), None).await.unwrap();
    }
}

/// `inner`, failing once `pages` calls of load, finish, apply or flush were made.
pub struct Dies<T> {
    pub inner: T,
    pub pages: usize,
}

impl<T> Dies<T> {
    fn tick(&mut self) -> Result<(), SyncError> {
        if self.pages == 0 {
            return Err(SyncError::InvalidArgument("killed".into()));
        }
        self.pages -= 1;
        Ok(())
    }
}

#[async_trait]
impl<T: Target> Target for Dies<T> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn state(&mut self, table: &TargetTable) -> Result<Option<TableState>, SyncError> {
        self.inner.state(table).await
    }
    async fn begin_full(&mut self, table: &TargetTable) -> Result<(), SyncError> {
        self.inner.begin_full(table).await
    }
    async fn load(&mut self, table: &TargetTable, batch: Batch<'_>) -> Result<u64, SyncError> {
        self.tick()?;
        self.inner.load(table, batch).await
    }
    async fn finish_full(&mut self, table: &TargetTable, state: &TableState) -> Result<(), SyncError> {
        self.tick()?;
        self.inner.finish_full(table, state).await
    }
    async fn apply(
        &mut self,
        table: &TargetTable,
        batch: Batch<'_>,
        state: &TableState,
    ) -> Result<(u64, u64), SyncError> {
        self.tick()?;
        self.inner.apply(table, batch, state).await
    }
    async fn flush(&mut self, table: &TargetTable) -> Result<(), SyncError> {
        self.tick()?;
        self.inner.flush(table).await
    }
    async fn count(&mut self, table: &TargetTable) -> Result<u64, SyncError> {
        self.inner.count(table).await
    }
}

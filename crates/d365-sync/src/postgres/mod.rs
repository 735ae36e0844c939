//! The PostgreSQL target of a sync (`--to postgresql://…`).
//!
//! Each Dataverse table becomes a table of the same logical name in the chosen schema, typed
//! like the SQL engine's columns (`uuid` keys and lookups, `numeric(38,s)` money and decimals,
//! `timestamptz`, `date`, choice codes with their `…name` labels, lookups with their `…name`
//! and `…type`), keyed by the primary key. `_d365_sync_state` in the same schema holds each
//! table's delta link or watermark.
//!
//! - **Full load**: pages are streamed by binary `COPY` into `_d365_stage_<table>`; at the end
//!   one transaction swaps it in (a first load renames it and adds the primary key; a reload
//!   empties the existing table and fills it from the stage, so views and grants on it stay)
//!   and saves the state. A run killed meanwhile leaves the old table as it was.
//! - **Changes**: per page, one transaction copies the rows into a temporary table, merges them
//!   with `INSERT … ON CONFLICT (pk) DO UPDATE` — never over a newer `versionnumber` —,
//!   deletes (or marks, with soft deletes) the deleted ids and saves the new state.
//! - **Schema drift**: a column new in Dataverse is added (`ALTER TABLE … ADD COLUMN`); a
//!   column gone from Dataverse stays and is set to null on rows changed from then on.

mod copy;
mod tls;
mod url;

use std::collections::HashSet;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use futures::SinkExt;
use tokio_postgres::{Client, CopyInSink, NoTls, Transaction};

pub use copy::{PgType, encode_rows, numeric};
pub use url::{PostgresUrl, TlsMode};

use crate::error::SyncError;
use crate::store::{TableState, Tracking};
use crate::target::{Batch, Target, TargetTable};

/// The state table.
pub const STATE_TABLE: &str = "_d365_sync_state";
/// The soft-delete column (when deletes are kept): when the delete was applied.
pub const DELETED_COLUMN: &str = "_d365_deleted";

/// Quotes an identifier (the same rule as SQLite's).
pub use crate::store::ident;

/// A sync's connection to PostgreSQL.
pub struct PostgresTarget {
    client: Client,
    ctx: Ctx,
    task: tokio::task::JoinHandle<()>,
    /// The COPY into the stage of the full load in progress: one stream for the whole load,
    /// so the server stores rows while the next page is read and decoded.
    load: Option<Pin<Box<CopyInSink<Bytes>>>>,
}

/// What the statements need besides the connection.
#[derive(Debug, Clone)]
struct Ctx {
    url: PostgresUrl,
    soft_delete: bool,
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget").field("url", &self.ctx.url).finish()
    }
}

impl Drop for PostgresTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs a connection until it closes.
async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(e) = connection.await {
        tracing::warn!("PostgreSQL connection closed: {e}");
    }
}

/// The server's message (with its detail and hint) or the driver's.
fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                m.push_str(&format!("; {d}"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!("; hint: {h}"));
            }
            m
        }
        None => {
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                m.push_str(&format!(": {s}"));
                source = s.source();
            }
            m
        }
    }
}

impl PostgresTarget {
    /// Connects and makes sure the schema and the state table exist. With `soft_delete`, rows
    /// deleted in Dataverse are kept and stamped in [`DELETED_COLUMN`] instead of deleted.
    pub async fn connect(url: PostgresUrl, soft_delete: bool) -> Result<Self, SyncError> {
        let ctx = Ctx { url, soft_delete };
        let config = ctx.url.config()?;
        let (client, task) = if ctx.url.tls == TlsMode::Disable {
            let (client, connection) = config.connect(NoTls).await.map_err(|e| ctx.err(e))?;
            (client, tokio::spawn(drive(connection)))
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(ctx.url.tls_config()?);
            let (client, connection) = config.connect(tls).await.map_err(|e| ctx.err(e))?;
            (client, tokio::spawn(drive(connection)))
        };
        let target = Self { client, ctx, task, load: None };
        target.prepare().await?;
        Ok(target)
    }

    async fn prepare(&self) -> Result<(), SyncError> {
        let schema = &self.ctx.url.schema;
        let exists = self
            .client
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[schema])
            .await
            .map_err(|e| self.ctx.err(e))?
            .is_some();
        if !exists {
            self.client
                .batch_execute(&format!("CREATE SCHEMA {}", ident(schema)))
                .await
                .map_err(|e| self.ctx.err(e))?;
        }
        self.client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} (
                   table_name text PRIMARY KEY, entity_set text NOT NULL, primary_key text NOT NULL,
                   mode text NOT NULL, delta_link text, delta_next text, watermark text,
                   updated_at timestamptz NOT NULL DEFAULT now())",
                self.ctx.qualified(STATE_TABLE)
            ))
            .await
            .map_err(|e| self.ctx.err(e))
    }

    /// Ends a load begun by [`Target::begin_full`]: the stage replaces the table (see the module
    /// docs) and `state` is saved, in one transaction; without a state (an export), a saved
    /// sync state of the table is removed, so a later sync starts with a full load.
    async fn swap_in(&mut self, table: &TargetTable, state: Option<&TableState>) -> Result<(), SyncError> {
        if let Some(mut sink) = self.load.take() {
            sink.send(Bytes::from_static(copy::TRAILER)).await.map_err(|e| self.ctx.err(e))?;
            sink.as_mut().finish().await.map_err(|e| self.ctx.err(e))?;
        }
        let ctx = &self.ctx;
        let stage = ctx.stage(table);
        let target = ctx.qualified(&table.logical);
        let pk = key_list(table);
        let tx = self.client.transaction().await.map_err(|e| ctx.err(e))?;
        if ctx.columns_of(&tx, &table.logical).await?.is_empty() {
            // A first load: the stage becomes the table.
            tx.batch_execute(&format!(
                "ALTER TABLE {stage} RENAME TO {name}; ALTER TABLE {target} ADD PRIMARY KEY ({pk}){soft}",
                name = ident(&table.logical),
                soft = if ctx.soft_delete {
                    format!("; ALTER TABLE {target} ADD COLUMN {} timestamptz", ident(DELETED_COLUMN))
                } else {
                    String::new()
                }
            ))
            .await
            .map_err(|e| ctx.err(e))?;
        } else {
            // A reload: the table keeps its identity (views, grants). Without soft deletes its
            // rows are replaced; with them, rows gone from the source are stamped deleted and
            // the rest merged.
            let gone = ctx.add_new_columns(&tx, table, &table.logical).await?;
            let cols = Ctx::column_list(table);
            let sql = if ctx.soft_delete {
                format!(
                    "UPDATE {target} t SET {d} = now() WHERE {d} IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE {same}); {merge}; DROP TABLE {stage}",
                    same = table
                        .key
                        .iter()
                        .map(|k| format!("s.{k} = t.{k}", k = ident(k)))
                        .collect::<Vec<_>>()
                        .join(" AND "),
                    d = ident(DELETED_COLUMN),
                    merge = ctx.merge_sql(table, &stage, &gone)
                )
            } else {
                format!(
                    "TRUNCATE {target}; INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage}; DROP TABLE {stage}"
                )
            };
            tx.batch_execute(&sql).await.map_err(|e| ctx.err(e))?;
        }
        match state {
            Some(state) => ctx.save_state(&tx, table, state).await?,
            None => {
                tx.execute(
                    &format!("DELETE FROM {} WHERE table_name = $1", ctx.qualified(STATE_TABLE)),
                    &[&table.logical],
                )
                .await
                .map_err(|e| ctx.err(e))?;
            }
        }
        tx.commit().await.map_err(|e| ctx.err(e))
    }

    /// Adds decoded `rows` (of the table's columns) to a load begun by [`Target::begin_full`]
    /// (exports). Returns the rows added.
    pub async fn load_rows(&mut self, table: &TargetTable, rows: &RecordBatch) -> Result<u64, SyncError> {
        let (buf, n) = Ctx::encode_rows(table, rows, rows.get_array_memory_size() / 2 + 64)?;
        let sink = self.load.as_mut().ok_or_else(|| {
            SyncError::InvalidArgument(format!("internal: {}: rows loaded before the load began", table.logical))
        })?;
        if n > 0 {
            sink.send(buf.freeze()).await.map_err(|e| self.ctx.err(e))?;
        }
        Ok(n as u64)
    }

    /// Ends a load as an export: the rows replace the table's, and no sync state is kept.
    pub async fn finish_export(&mut self, table: &TargetTable) -> Result<(), SyncError> {
        self.swap_in(table, None).await
    }

    /// The client, to query the copy.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The schema-qualified, quoted name of `table`.
    pub fn qualified(&self, table: &str) -> String {
        self.ctx.qualified(table)
    }
}

impl Ctx {
    fn err(&self, e: tokio_postgres::Error) -> SyncError {
        let mut message = describe_error(&e);
        if e.as_db_error().is_none() && message.to_ascii_lowercase().contains("certificate") {
            message.push_str(
                " (TLS is verified: give the server's CA certificate with sslrootcert=/path/ca.pem, \
                 or sslmode=disable on a trusted network)",
            );
        }
        SyncError::Postgres { target: self.url.to_string(), message }
    }

    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", ident(&self.url.schema), ident(table))
    }

    fn stage(&self, table: &TargetTable) -> String {
        self.qualified(&format!("_d365_stage_{}", table.logical))
    }

    /// Columns of `table` in the schema (empty when it does not exist).
    async fn columns_of(&self, tx: &Transaction<'_>, table: &str) -> Result<Vec<String>, SyncError> {
        let rows = tx
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                &[&self.url.schema, &table],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Adds to the table `name` the columns of `table` it lacks; returns the columns it has
    /// that the source no longer has (set to null on changed rows).
    async fn add_new_columns(
        &self,
        tx: &Transaction<'_>,
        table: &TargetTable,
        name: &str,
    ) -> Result<Vec<String>, SyncError> {
        let have = self.columns_of(tx, name).await?;
        let have_set: HashSet<&str> = have.iter().map(String::as_str).collect();
        for c in &table.schema.columns {
            if !have_set.contains(c.name.as_str()) {
                tracing::info!("{}: new column {} added", table.logical, c.name);
                tx.batch_execute(&format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    self.qualified(name),
                    ident(&c.name),
                    PgType::of(c).sql()
                ))
                .await
                .map_err(|e| self.err(e))?;
            }
        }
        let source: HashSet<&str> = table.schema.columns.iter().map(|c| c.name.as_str()).collect();
        Ok(have.into_iter().filter(|c| !source.contains(c.as_str()) && c != DELETED_COLUMN).collect())
    }

    /// The column definitions of `table` (`"name" type, …`).
    fn column_defs(table: &TargetTable) -> String {
        let defs: Vec<String> =
            table.schema.columns.iter().map(|c| format!("{} {}", ident(&c.name), PgType::of(c).sql())).collect();
        defs.join(", ")
    }

    fn column_list(table: &TargetTable) -> String {
        table.schema.columns.iter().map(|c| ident(&c.name)).collect::<Vec<_>>().join(", ")
    }

    /// The rows of `batch`, decoded and encoded as binary COPY rows (no header, no trailer),
    /// and how many there are.
    fn encode(table: &TargetTable, batch: &Batch<'_>) -> Result<(BytesMut, usize), SyncError> {
        Self::encode_rows(table, &table.decode(batch)?, batch.body.len() / 3 + 64)
    }

    /// `rows` (of the table's columns) encoded as binary COPY rows, and how many there are.
    fn encode_rows(table: &TargetTable, rows: &RecordBatch, capacity: usize) -> Result<(BytesMut, usize), SyncError> {
        let types: Vec<PgType> = table.schema.columns.iter().map(PgType::of).collect();
        let names: Vec<&str> = table.schema.columns.iter().map(|c| c.name.as_str()).collect();
        let mut buf = BytesMut::with_capacity(capacity);
        encode_rows(rows, &types, &names, &mut buf).map_err(|e| match e {
            SyncError::InvalidArgument(m) => SyncError::InvalidArgument(format!("{}: {m}", table.logical)),
            other => other,
        })?;
        Ok((buf, rows.num_rows()))
    }

    fn copy_statement(table: &TargetTable, into: &str) -> String {
        format!("COPY {into} ({}) FROM STDIN (FORMAT binary)", Self::column_list(table))
    }

    /// Copies the rows of `batch` into the table `into` (qualified) by binary COPY.
    async fn copy_into(
        &self,
        tx: &Transaction<'_>,
        table: &TargetTable,
        batch: &Batch<'_>,
        into: &str,
    ) -> Result<u64, SyncError> {
        let (rows, n) = Self::encode(table, batch)?;
        if n == 0 {
            return Ok(0);
        }
        let mut buf = BytesMut::with_capacity(rows.len() + copy::HEADER.len() + copy::TRAILER.len());
        buf.extend_from_slice(copy::HEADER);
        buf.extend_from_slice(&rows);
        buf.extend_from_slice(copy::TRAILER);
        let sink = tx.copy_in(&Self::copy_statement(table, into)).await.map_err(|e| self.err(e))?;
        futures::pin_mut!(sink);
        sink.send(buf.freeze()).await.map_err(|e| self.err(e))?;
        sink.finish().await.map_err(|e| self.err(e))
    }

    async fn save_state(&self, tx: &Transaction<'_>, table: &TargetTable, state: &TableState) -> Result<(), SyncError> {
        let (mode, link, next, watermark) = match &state.tracking {
            Tracking::Delta { link, next } => ("delta", Some(link.as_str()), next.as_deref(), None),
            Tracking::Watermark(w) => ("watermark", None, None, w.as_deref()),
        };
        tx.execute(
            &format!(
                "INSERT INTO {} (table_name, entity_set, primary_key, mode, delta_link, delta_next, watermark, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, now())
                 ON CONFLICT (table_name) DO UPDATE SET entity_set = EXCLUDED.entity_set,
                   primary_key = EXCLUDED.primary_key, mode = EXCLUDED.mode, delta_link = EXCLUDED.delta_link,
                   delta_next = EXCLUDED.delta_next, watermark = EXCLUDED.watermark, updated_at = now()",
                self.qualified(STATE_TABLE)
            ),
            &[&table.logical, &state.entity_set, &state.primary_key, &mode, &link, &next, &watermark],
        )
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The merge of the changes table into the table: the newest version per key, never over
    /// a newer version; gone columns nulled; a soft delete undone by a re-creation.
    fn merge_sql(&self, table: &TargetTable, changes: &str, gone: &[String]) -> String {
        let pk = key_list(table);
        let cols = Self::column_list(table);
        let version = table.schema.column("versionnumber").map(|_| ident("versionnumber"));
        let order = match &version {
            Some(v) => format!("{pk}, {v} DESC NULLS LAST"),
            None => pk.clone(),
        };
        let mut sets: Vec<String> = table
            .schema
            .columns
            .iter()
            .filter(|c| !table.key.contains(&c.name))
            .map(|c| ident(&c.name))
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        sets.extend(gone.iter().map(|c| format!("{} = NULL", ident(c))));
        if self.soft_delete {
            sets.push(format!("{} = NULL", ident(DELETED_COLUMN)));
        }
        let action = if sets.is_empty() { "NOTHING".to_string() } else { format!("UPDATE SET {}", sets.join(", ")) };
        let guard = match (&version, sets.is_empty()) {
            (Some(v), false) => format!(" WHERE t.{v} IS NULL OR EXCLUDED.{v} IS NULL OR EXCLUDED.{v} >= t.{v}"),
            _ => String::new(),
        };
        format!(
            "INSERT INTO {} AS t ({cols}) SELECT DISTINCT ON ({pk}) {cols} FROM {changes} ORDER BY {order} \
             ON CONFLICT ({pk}) DO {action}{guard}",
            self.qualified(&table.logical)
        )
    }

    fn soft_delete_def(&self) -> String {
        if self.soft_delete { format!(", {} timestamptz", ident(DELETED_COLUMN)) } else { String::new() }
    }
}

#[async_trait]
impl Target for PostgresTarget {
    fn describe(&self) -> String {
        self.ctx.url.to_string()
    }

    async fn state(&mut self, table: &TargetTable) -> Result<Option<TableState>, SyncError> {
        let row = self
            .client
            .query_opt(
                &format!(
                    "SELECT s.entity_set, s.primary_key, s.mode, s.delta_link, s.delta_next, s.watermark
                     FROM {} s WHERE s.table_name = $1 AND to_regclass($2) IS NOT NULL",
                    self.ctx.qualified(STATE_TABLE)
                ),
                &[&table.logical, &self.ctx.qualified(&table.logical)],
            )
            .await
            .map_err(|e| self.ctx.err(e))?;
        Ok(row.map(|r| {
            let mode: String = r.get(2);
            let tracking = match (mode.as_str(), r.get::<_, Option<String>>(3)) {
                ("delta", Some(link)) => Tracking::Delta { link, next: r.get(4) },
                _ => Tracking::Watermark(r.get(5)),
            };
            TableState { entity_set: r.get(0), primary_key: r.get(1), tracking }
        }))
    }

    async fn begin_full(&mut self, table: &TargetTable) -> Result<(), SyncError> {
        let stage = self.ctx.stage(table);
        // An unfinished COPY of an earlier load on this connection is abandoned (rolled back).
        self.load = None;
        self.client
            .batch_execute(&format!("DROP TABLE IF EXISTS {stage}; CREATE TABLE {stage} ({})", Ctx::column_defs(table)))
            .await
            .map_err(|e| self.ctx.err(e))?;
        let mut sink =
            Box::pin(self.client.copy_in(&Ctx::copy_statement(table, &stage)).await.map_err(|e| self.ctx.err(e))?);
        sink.send(Bytes::from_static(copy::HEADER)).await.map_err(|e| self.ctx.err(e))?;
        self.load = Some(sink);
        Ok(())
    }

    async fn load(&mut self, table: &TargetTable, batch: Batch<'_>) -> Result<u64, SyncError> {
        let (rows, n) = Ctx::encode(table, &batch)?;
        let sink = self.load.as_mut().ok_or_else(|| {
            SyncError::InvalidArgument(format!("internal: {}: a page loaded before the load began", table.logical))
        })?;
        if n > 0 {
            sink.send(rows.freeze()).await.map_err(|e| self.ctx.err(e))?;
        }
        Ok(n as u64)
    }

    async fn finish_full(&mut self, table: &TargetTable, state: &TableState) -> Result<(), SyncError> {
        self.swap_in(table, Some(state)).await
    }

    async fn apply(
        &mut self,
        table: &TargetTable,
        batch: Batch<'_>,
        state: &TableState,
    ) -> Result<(u64, u64), SyncError> {
        let ctx = &self.ctx;
        let target = ctx.qualified(&table.logical);
        let pk = key_list(table);
        let tx = self.client.transaction().await.map_err(|e| ctx.err(e))?;
        if ctx.columns_of(&tx, &table.logical).await?.is_empty() {
            // Rows changed by a watermark sync into a table not created yet.
            tx.batch_execute(&format!(
                "CREATE TABLE {target} ({}, PRIMARY KEY ({pk}){})",
                Ctx::column_defs(table),
                ctx.soft_delete_def()
            ))
            .await
            .map_err(|e| ctx.err(e))?;
        }
        let gone = ctx.add_new_columns(&tx, table, &table.logical).await?;
        let mut upserted = 0;
        if batch.body_rows > batch.skip.len() {
            let changes = ident("_d365_changes");
            tx.batch_execute(&format!(
                "CREATE TEMP TABLE {changes} ON COMMIT DROP AS SELECT {} FROM {target} WITH NO DATA",
                Ctx::column_list(table)
            ))
            .await
            .map_err(|e| ctx.err(e))?;
            if ctx.copy_into(&tx, table, &batch, &changes).await? > 0 {
                upserted = tx.execute(&ctx.merge_sql(table, &changes, &gone), &[]).await.map_err(|e| ctx.err(e))?;
            }
        }
        let mut deleted = 0;
        if !batch.deleted.is_empty() {
            let ids: Vec<String> = batch.deleted.iter().map(|s| s.to_ascii_lowercase()).collect();
            let sql = if ctx.soft_delete {
                format!(
                    "UPDATE {target} SET {d} = now() WHERE {pk} = ANY($1::text[]::uuid[]) AND {d} IS NULL",
                    d = ident(DELETED_COLUMN)
                )
            } else {
                format!("DELETE FROM {target} WHERE {pk} = ANY($1::text[]::uuid[])")
            };
            deleted = tx.execute(&sql, &[&ids]).await.map_err(|e| ctx.err(e))?;
        }
        ctx.save_state(&tx, table, state).await?;
        tx.commit().await.map_err(|e| ctx.err(e))?;
        Ok((upserted, deleted))
    }

    async fn count(&mut self, table: &TargetTable) -> Result<u64, SyncError> {
        let filter =
            if self.ctx.soft_delete { format!(" WHERE {} IS NULL", ident(DELETED_COLUMN)) } else { String::new() };
        let row = self
            .client
            .query_one(&format!("SELECT count(*) FROM {}{filter}", self.ctx.qualified(&table.logical)), &[])
            .await
            .map_err(|e| self.ctx.err(e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}

/// The key columns of `table`, quoted and comma-separated (`"accountid"`, or
/// `"dataareaid", "customeraccount"`).
fn key_list(table: &TargetTable) -> String {
    table.key.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")
}

//! SQL over the Dataverse Web API: a [DataFusion](https://datafusion.apache.org) catalog of an
//! organisation's tables, a table provider that pushes projection, filters, limits and sorts
//! into OData queries, and a decoder of Web API pages straight into Arrow.
//!
//! ```no_run
//! # async fn demo(client: d365_client::DataverseClient) -> Result<(), d365_sql::SqlError> {
//! use d365_sql::{EngineOptions, SqlEngine};
//! use futures::StreamExt;
//!
//! let engine = SqlEngine::new(client, EngineOptions::default()).await?;
//! println!("{}", engine.explain("SELECT name FROM account WHERE revenue > 1e6 LIMIT 10").await?);
//! let mut batches = engine.stream("SELECT name, revenue FROM account ORDER BY revenue DESC LIMIT 10").await?;
//! while let Some(batch) = batches.next().await {
//!     let batch = batch.map_err(d365_sql::SqlError::from)?;
//!     println!("{} rows", batch.num_rows());
//! }
//! # Ok(()) }
//! ```
//!
//! # Tables and columns
//!
//! Every table of `EntityDefinitions` that has an entity set is a table of schema `dbo` (the
//! default), named by its logical name, case-insensitively. Listing tables costs one request;
//! a table's columns are fetched when a query first names it. `metadata.entity`,
//! `metadata.attribute` and `metadata.relationship` describe the organisation. Column types
//! and the SQL 4 CDS–style virtual columns (`<lookup>name`, `<lookup>type`, `<choice>name`)
//! are documented in [`arrow_schema`].
//!
//! # What is pushed to the service
//!
//! - **Projection** → `$select` (the primary key is always selected; virtual columns add the
//!   `Prefer: odata.include-annotations` they need).
//! - **Filters** → `$filter`, exactly or as a superset re-checked locally; see
//!   [`filter_pushdown`] for the rules. **String comparisons**: Dataverse compares text
//!   case-insensitively, SQL here case-sensitively (DataFusion semantics). Text filters are
//!   therefore only sent where the service's answer is a superset of the case-sensitive one
//!   (`=`, `IN`, `LIKE 'x%'`/`'%x'`/`'%x%'`), and DataFusion re-checks them: a query returns the
//!   same rows whether or not its filters were pushed. `<>`, `NOT LIKE` and text ranges run
//!   locally.
//! - **LIMIT** → `$top` when every filter was pushed exactly (otherwise the page stream is
//!   simply not polled past what the local limit needs).
//! - **ORDER BY … [LIMIT n]** → `$orderby` (+ `$top`) when every sort key is a number, money,
//!   date or date-time column. Nulls sort as the smallest values (`ASC NULLS FIRST`,
//!   `DESC NULLS LAST`, as in T-SQL and on the service): this engine sets DataFusion's default
//!   null ordering accordingly. Text, GUID and choice columns are sorted locally (the service
//!   orders them case-insensitively, as GUIDs, or by label).
//! - **Aggregates** (`GROUP BY` with `COUNT`, `SUM`, `AVG`, `MIN`, `MAX` over one table) →
//!   `$apply` (FetchXML `dategrouping` when grouped by the year, month or day of a date), split
//!   into `createdon` ranges past the service's 50,000-row limit; see [`aggregate_pushdown`]
//!   for what qualifies.
//! - **Joins along a lookup** (INNER, or LEFT keeping the lookup's rows) with a filter on
//!   either side → one FetchXML query with a `link-entity`; see [`join_pushdown`]. Other inner
//!   joins read their second table by the first one's keys ([`join_keys`]).
//! - Other joins and aggregates, window functions, CTEs and functions run locally in DataFusion.
//!
//! # Streaming
//!
//! A scan sends nothing while planning; its first GET goes out when the result stream is first
//! polled, then `@odata.nextLink` is followed exactly as given, one page ahead of the
//! consumer. Each page is decoded into one RecordBatch (see [`arrow_decode`]), so memory stays
//! flat however large the table.

pub mod aggregate_pushdown;
pub mod arrow_decode;
pub mod arrow_schema;
pub mod catalog;
pub mod dml;
mod engine;
mod error;
pub mod filter_pushdown;
mod guid_literals;
pub mod join_keys;
pub mod join_order;
pub mod join_pushdown;
pub use d365_client::json_scan;
mod leaf_exec;
pub mod limited_scans;
pub mod metadata_tables;
pub mod nearest;
pub mod scan;
pub mod scan_pages;
pub mod scan_path;
mod serde_decode;
pub mod table_provider;
mod text_builder;
pub mod values;

pub use arrow_schema::{ColumnRole, ColumnSpec, Dialect, EnumType, FilterKind, TableSchema, ValueKind, table_schema};
pub use dml::{DmlOptions, DmlOutcome, PlannedRow, is_dml};
pub use engine::{EngineOptions, SqlEngine};
pub use error::SqlError;
pub use nearest::nearest;

/// The DataFusion version this crate is built against (re-exported for callers that format
/// or write batches).
pub use datafusion;

//! The Dataverse Web API client: one retry policy for every request, metadata (with a disk
//! cache), query building, the page stream that follows `@odata.nextLink`, and writes.
//!
//! ```no_run
//! # async fn demo(tokens: std::sync::Arc<dyn d365_auth::TokenProvider>) -> Result<(), d365_client::ClientError> {
//! use d365_client::{ClientOptions, DataverseClient, Query};
//! use futures::StreamExt;
//!
//! let client = DataverseClient::new(ClientOptions::new("https://contoso.crm.dynamics.com"), tokens)?;
//! println!("{:?}", client.whoami().await?);
//! let mut pages = client.page_stream(&Query::new("accounts").select(["name"]).max_page_size(5000))?;
//! while let Some(page) = pages.next().await {
//!     for row in page?.rows {
//!         println!("{}", row["name"]);
//!     }
//! }
//! # Ok(()) }
//! ```

mod client;
pub mod codes;
mod concurrency;
mod error;
mod fetchxml;
mod finops_metadata;
pub mod json_scan;
mod keyset_scan;
mod metadata;
mod metadata_cache;
mod page_parser;
mod paging;
mod parallel;
pub mod partition;
mod query;
mod record_counts;
mod records;
mod request_log;
mod retry;
mod service;
mod slim_page;
mod table_extent;
pub mod write;

pub use client::{ApiRequest, ApiResponse, ClientOptions, DataverseClient, ServerHints};
pub use concurrency::{AdaptiveConcurrency, MAX_CONCURRENT_REQUESTS};
pub use error::{Attempt, ClientError, ServiceError};
pub use fetchxml::{FETCHXML_PAGING_COOKIE, FetchXmlPage, MORE_RECORDS, next_paging_cookie};
pub use finops_metadata::{DATA_AREA_ID, REAL_SCALE};
pub use keyset_scan::{KEYSET_PAGE_ROWS, KeyField, KeyKind, KeyRange, KeysetPage};
pub use metadata::{AttributeInfo, EntityInfo, EntityMetadata, KeyInfo, OptionInfo, RelationshipInfo};
pub use metadata_cache::{CacheOptions, Metadata, MetadataCache, default_cache_root};
pub use page_parser::{PageParser, ParsedPage, SharedParser};
pub use paging::{Page, PageBody, PageStream};
pub use parallel::{PartitionedScan, ScanOptions, ScanPage, ScanPlan, ScanProgress};
pub use partition::{Bounds, Partition};
pub use query::{
    ASSOCIATED_NAVIGATION_PROPERTY, FORMATTED_VALUE, LOOKUP_LOGICAL_NAME, MAX_PAGE_SIZE, Query, RequestPlan,
    TOTAL_RECORD_COUNT, TOTAL_RECORD_COUNT_LIMIT_EXCEEDED, encode_query_value, string_literal,
};
pub use records::{KeyValue, Record, RecordKey, UpsertMode, WhoAmI, id_from_entity_uri, lookup_bind, record_path};
pub use request_log::{RequestEvent, RequestHook, RequestLog, RequestStats};
pub use retry::{Clock, ManualClock, RetryConfig, RetryPolicy, SleepFuture, TokioClock, parse_retry_after};
pub use service::{FINOPS_MAX_PAGE_SIZE, FinOpsSettings, Service};
pub use table_extent::TableExtent;
pub use write::{BulkMode, RowError, WriteError, WriteOp, WriteOptions, WriteProgress, WriteReport, WriteRow, write};

pub use d365_auth::{AccessToken, AuthError, TokenProvider};

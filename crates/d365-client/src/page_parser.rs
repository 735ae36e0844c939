//! Decoding a partitioned scan's pages where they arrive, once: [`PageParser`].
//!
//! A partitioned scan needs a few facts of every page (its next link, and of each row the
//! partition column and the primary key, to place rows and split ranges). A caller that decodes
//! the page body into its own form (the SQL engine's Arrow decoder) can hand the scan a parser
//! that yields both at once, so the body is read once instead of twice.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// A page decoded by a [`PageParser`].
pub struct ParsedPage {
    /// The caller's form of the page (handed back in [`crate::ScanPage::decoded`]).
    pub decoded: Arc<dyn Any + Send + Sync>,
    /// One entry per row of the page's `value` array, in order, holding the partition column
    /// and the primary key as the service wrote them (a missing or null value: absent).
    pub rows: Vec<Map<String, Value>>,
    /// `@odata.nextLink`.
    pub next_link: Option<String>,
}

/// Decodes a page body for the caller and for the scan (see the module docs).
pub trait PageParser: Send + Sync {
    /// Decodes `body`, a Web API collection page expected to hold about `rows_hint` rows. An
    /// error says what in the body could not be decoded.
    fn parse(&self, body: &[u8], rows_hint: usize) -> Result<ParsedPage, String>;
}

/// A [`PageParser`] shared by the scan's requests.
#[derive(Clone)]
pub struct SharedParser(pub Arc<dyn PageParser>);

impl fmt::Debug for SharedParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedParser")
    }
}

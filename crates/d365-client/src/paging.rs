//! The page stream: GET the first page of a query, then follow `@odata.nextLink` exactly as the
//! service gave it (no options appended, nothing re-encoded), sending the same `Prefer` header
//! (`odata.maxpagesize`, annotations) with every page, as the protocol requires. (The link is
//! parsed as a URL, so a character a URL cannot carry raw, such as a space, would be sent
//! percent-encoded, as every HTTP client must; existing `%XX` escapes are never touched.)
//!
//! Pages are fetched by a background task one page ahead of the consumer (a channel of one
//! page, and a slot is reserved *before* the next page is fetched), so at most two pages are in
//! memory however large the table. Dropping the stream stops the task: no further page is
//! requested. [`PageStream::stop_after`] ends the stream after a number of rows, so a limit
//! reads no more pages than it needs.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

use crate::client::{ApiRequest, ApiResponse, DataverseClient, path_of};
use crate::error::ClientError;
use crate::query::{Query, RequestPlan};

/// How a page's rows are handed over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PageBody {
    /// Parsed rows in [`Page::rows`].
    #[default]
    Rows,
    /// The raw JSON body in [`Page::raw`] (rows are only counted), for decoders that parse the
    /// body themselves (e.g. straight into Arrow).
    Raw,
    /// Both: parsed rows in [`Page::rows`] and the body in [`Page::raw`] (for a change-tracking
    /// read, whose deleted-row entries a consumer picks from the rows while decoding the body).
    Both,
}

/// One page of a query.
#[derive(Debug, Clone)]
pub struct Page {
    /// 1-based page number.
    pub number: u32,
    /// The URL this page was read from (path and query).
    pub path: String,
    /// The rows (empty with [`PageBody::Raw`]). Truncated to the stream's limit.
    pub rows: Vec<Map<String, Value>>,
    /// The whole response body, with [`PageBody::Raw`] and [`PageBody::Both`].
    pub raw: Option<Bytes>,
    /// Rows of this page the consumer should use: `rows.len()` with [`PageBody::Rows`]; with
    /// [`PageBody::Raw`] the first `row_count` rows of the body's `value` array (fewer than the
    /// body holds when the stream's limit ends inside this page).
    pub row_count: usize,
    /// `@odata.count` (with `$count=true`; capped at 5000 by the service).
    pub count: Option<i64>,
    /// `@Microsoft.Dynamics.CRM.totalrecordcount`.
    pub total_record_count: Option<i64>,
    /// `@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded`.
    pub total_record_count_limit_exceeded: Option<bool>,
    /// `@odata.nextLink`, exactly as the service sent it.
    pub next_link: Option<String>,
    /// `@odata.deltaLink` (change tracking).
    pub delta_link: Option<String>,
}

#[derive(Deserialize)]
struct Envelope<V> {
    value: Vec<V>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    delta_link: Option<String>,
    #[serde(rename = "@odata.count", default)]
    count: Option<i64>,
    #[serde(rename = "@Microsoft.Dynamics.CRM.totalrecordcount", default)]
    total_record_count: Option<i64>,
    #[serde(rename = "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded", default)]
    total_record_count_limit_exceeded: Option<bool>,
}

fn decode_page(req: &ApiRequest, resp: ApiResponse, body: PageBody, number: u32) -> Result<Page, ClientError> {
    let path = path_of(&req.url);
    let decode_err = |e: serde_json::Error| ClientError::Decode {
        method: "GET".into(),
        path: path.clone(),
        message: format!("page {number} is not an OData collection: {e}"),
    };
    let mut page = Page {
        number,
        path: path.clone(),
        rows: Vec::new(),
        raw: None,
        row_count: 0,
        count: None,
        total_record_count: None,
        total_record_count_limit_exceeded: None,
        next_link: None,
        delta_link: None,
    };
    macro_rules! fill {
        ($env:expr) => {{
            let env = $env;
            page.next_link = env.next_link;
            page.delta_link = env.delta_link;
            page.count = env.count;
            page.total_record_count = env.total_record_count;
            page.total_record_count_limit_exceeded = env.total_record_count_limit_exceeded;
            env.value
        }};
    }
    match body {
        PageBody::Rows | PageBody::Both => {
            let env: Envelope<Map<String, Value>> = serde_json::from_slice(&resp.body).map_err(decode_err)?;
            page.rows = fill!(env);
            page.row_count = page.rows.len();
            if body == PageBody::Both {
                page.raw = Some(resp.body);
            }
        }
        PageBody::Raw => {
            let env: Envelope<serde::de::IgnoredAny> = serde_json::from_slice(&resp.body).map_err(decode_err)?;
            page.row_count = fill!(env).len();
            page.raw = Some(resp.body);
        }
    }
    Ok(page)
}

/// A stream of the pages of one query (see the module docs). Created by
/// [`DataverseClient::page_stream`]; the first request is sent on the first poll.
pub struct PageStream {
    client: DataverseClient,
    first: Option<(Url, Option<String>)>,
    body: PageBody,
    limit: Arc<AtomicU64>,
    rx: Option<mpsc::Receiver<Result<Page, ClientError>>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PageStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageStream")
            .field("started", &self.rx.is_some())
            .field("limit", &self.limit.load(Ordering::Relaxed))
            .finish()
    }
}

impl PageStream {
    /// Ends the stream after `rows` rows: the page holding the last wanted row is truncated and
    /// no further page is requested. May be called after polling started (pages already
    /// fetched ahead are then the only extra reads).
    pub fn stop_after(self, rows: u64) -> Self {
        self.limit.fetch_min(rows, Ordering::Relaxed);
        self
    }

    /// Hands over raw bodies instead of parsed rows (before the first poll).
    pub fn raw(mut self) -> Self {
        self.body = PageBody::Raw;
        self
    }

    /// Hands over parsed rows and the raw bodies (before the first poll).
    pub fn rows_and_raw(mut self) -> Self {
        self.body = PageBody::Both;
        self
    }

    /// Collects every row (convenience for small results and tests).
    pub async fn collect_rows(self) -> Result<Vec<Map<String, Value>>, ClientError> {
        use futures::StreamExt;
        let mut out = Vec::new();
        let mut s = self;
        while let Some(page) = s.next().await {
            out.extend(page?.rows);
        }
        Ok(out)
    }

    fn start(&mut self) {
        let Some((url, prefer)) = self.first.take() else { return };
        let (tx, rx) = mpsc::channel(1);
        let client = self.client.clone();
        let limit = self.limit.clone();
        let body = self.body;
        self.rx = Some(rx);
        self.task = Some(tokio::spawn(produce(client, url, prefer, body, limit, tx)));
    }
}

impl Drop for PageStream {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Stream for PageStream {
    type Item = Result<Page, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.rx.is_none() {
            this.start();
        }
        match this.rx.as_mut() {
            Some(rx) => rx.poll_recv(cx),
            None => Poll::Ready(None),
        }
    }
}

async fn produce(
    client: DataverseClient,
    first: Url,
    prefer: Option<String>,
    body: PageBody,
    limit: Arc<AtomicU64>,
    tx: mpsc::Sender<Result<Page, ClientError>>,
) {
    let mut url = first;
    let mut delivered: u64 = 0;
    let mut number: u32 = 0;
    loop {
        // Wait for room before fetching, so at most one page waits in the channel.
        let Ok(permit) = tx.reserve().await else { return };
        let wanted = limit.load(Ordering::Relaxed);
        if delivered >= wanted {
            return;
        }
        number += 1;
        let mut req = ApiRequest::new(Method::GET, url.clone());
        if let Some(p) = &prefer {
            match req.header("prefer", p) {
                Ok(r) => req = r,
                Err(e) => {
                    permit.send(Err(e));
                    return;
                }
            }
        }
        let result = client.execute(&req, |resp| decode_page(&req, resp, body, number)).await;
        let mut page = match result {
            Ok(p) => p,
            Err(e) => {
                permit.send(Err(e));
                return;
            }
        };
        let wanted = limit.load(Ordering::Relaxed);
        let remaining = usize::try_from(wanted.saturating_sub(delivered)).unwrap_or(usize::MAX);
        if page.row_count > remaining {
            page.row_count = remaining;
            page.rows.truncate(remaining);
        }
        delivered += page.row_count as u64;
        let next = page.next_link.clone();
        permit.send(Ok(page));
        let Some(next) = next else { return };
        if delivered >= limit.load(Ordering::Relaxed) {
            return;
        }
        url = match client.base_url().join(&next) {
            Ok(u) => u,
            Err(e) => {
                let _ = tx
                    .send(Err(ClientError::Decode {
                        method: "GET".into(),
                        path: path_of(&url),
                        message: format!("@odata.nextLink '{next}' is not a URL: {e}"),
                    }))
                    .await;
                return;
            }
        };
    }
}

impl DataverseClient {
    /// The exact first request `query` becomes with this client's defaults (URL, `Prefer`,
    /// row limit): what `--explain` prints and what [`page_stream`](Self::page_stream) sends.
    pub fn plan(&self, query: &Query) -> Result<RequestPlan, ClientError> {
        if self.service().is_finops() {
            // Finance & Operations pages by itself (up to 10,000 rows; a page-size preference
            // is not documented) and reads one company unless asked for all.
            let mut q = query.clone();
            q.max_page_size = None;
            if self.service().cross_company() && !q.params.iter().any(|(k, _)| k == "cross-company") {
                q.params.push(("cross-company".into(), "true".into()));
            }
            return q.plan(self.base_url(), None);
        }
        query.plan(self.base_url(), self.options().max_page_size)
    }

    /// The pages of `query` (see the module docs). The stream stops after `query.top` rows.
    pub fn page_stream(&self, query: &Query) -> Result<PageStream, ClientError> {
        let plan = self.plan(query)?;
        let stream = self.page_stream_from(plan.url, plan.prefer);
        Ok(match plan.limit {
            Some(n) => stream.stop_after(n),
            None => stream,
        })
    }

    /// The pages starting at `url` (a first-page URL or a saved `@odata.nextLink`, used as
    /// given), sending `prefer` with every page.
    pub fn page_stream_from(&self, url: Url, prefer: Option<String>) -> PageStream {
        PageStream {
            client: self.clone(),
            first: Some((url, prefer)),
            body: PageBody::Rows,
            limit: Arc::new(AtomicU64::new(u64::MAX)),
            rx: None,
            task: None,
        }
    }
}

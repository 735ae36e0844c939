//! Whole-entity reads of Finance & Operations in parallel **by key ranges**, exact while rows
//! are inserted or deleted during the read.
//!
//! The service pages with `$skip` offsets: a row inserted or deleted before the current
//! offset shifts every later row by one, so a long read that follows `@odata.nextLink` can
//! return a row twice or never. This scan never uses an offset to page. It reads in the
//! entity's key order, and each next request asks for the keys **after** the last key it
//! received (`(k1 gt v1) or (k1 eq v1 and k2 gt v2) …`), so rows present for the whole read
//! are returned exactly once whatever else changes.
//!
//! To read in parallel, the key space is cut into ranges first: the row count
//! (`{set}/$count`), then one `$skip=n&$top=1` probe per boundary, which returns the key at
//! that offset. Offsets only place the boundaries: a boundary off by a few rows makes a range
//! a little bigger or smaller, never loses or repeats a row, because ranges are half-open
//! (`key ge lo and key lt hi`) and cover the whole key space. Ranges are read concurrently.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::{Map, Value};

use crate::client::{ApiRequest, DataverseClient, decode_error, decode_json};
use crate::error::ClientError;
use crate::query::{Query, string_literal};

/// Rows asked for per request (the service's pages hold up to 10,000).
pub const KEYSET_PAGE_ROWS: u64 = 5_000;

/// Boundary probes sent at once.
const PROBES_IN_FLIGHT: usize = 8;

/// How a key field's values are written in `$filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// Text: a quoted string.
    Text,
    /// A number, as the JSON number.
    Number,
    /// A date or date-time: the ISO text, unquoted.
    Instant,
    /// A GUID, unquoted.
    Guid,
    /// An enum member: `Microsoft.Dynamics.DataEntities.{type}'{member}'`.
    Enum(String),
}

/// One field of the entity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyField {
    /// The property name (`dataAreaId`, `CustomerAccount`).
    pub name: String,
    /// How its values are written.
    pub kind: KeyKind,
}

/// One page of a key-range scan.
#[derive(Debug, Clone)]
pub struct KeysetPage {
    /// The body as the service sent it (`{"value":[…]}`).
    pub body: bytes::Bytes,
    /// Rows in it.
    pub rows: usize,
    /// Which range it belongs to (0-based, in key order).
    pub range: usize,
    /// That range's state after this page (to checkpoint: a scan resumed from it reads the
    /// rest of the range, nothing twice).
    pub state: KeyRange,
}

/// One key range of a scan, `lo <= key < hi` (a missing bound is open), and how far it has
/// been read. Serialisable, so a scan can be checkpointed and resumed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyRange {
    /// Position in key order (0-based).
    pub id: usize,
    /// Inclusive lower bound (the key's field values), or open.
    pub lo: Option<Vec<Value>>,
    /// Exclusive upper bound, or open.
    pub hi: Option<Vec<Value>>,
    /// The last key read: the range continues after it.
    #[serde(default)]
    pub after: Option<Vec<Value>>,
    /// Rows read.
    #[serde(default)]
    pub rows: u64,
    /// Read to its end.
    #[serde(default)]
    pub done: bool,
}

type Tuple = Vec<Value>;

/// A page with its rows kept as raw JSON text.
#[derive(serde::Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    value: Vec<&'a serde_json::value::RawValue>,
}

fn literal(kind: &KeyKind, v: &Value) -> Option<String> {
    Some(match (kind, v) {
        (KeyKind::Text, Value::String(s)) => string_literal(s),
        (KeyKind::Number, Value::Number(n)) => n.to_string(),
        (KeyKind::Instant | KeyKind::Guid, Value::String(s)) => s.clone(),
        (KeyKind::Enum(t), Value::String(s)) => format!("Microsoft.Dynamics.DataEntities.{t}'{s}'"),
        _ => return None,
    })
}

/// `key OP tuple` in key order: OP is `gt`, `lt`; `inclusive` adds the tuple itself.
fn compare(keys: &[KeyField], tuple: &[Value], op: &str, inclusive: bool) -> Option<String> {
    let lits: Vec<String> = keys.iter().zip(tuple).map(|(k, v)| literal(&k.kind, v)).collect::<Option<_>>()?;
    let mut alternatives = Vec::new();
    for i in 0..keys.len() {
        let mut parts: Vec<String> = (0..i).map(|j| format!("{} eq {}", keys[j].name, lits[j])).collect();
        parts.push(format!("{} {op} {}", keys[i].name, lits[i]));
        alternatives.push(parts.join(" and "));
    }
    if inclusive {
        alternatives
            .push(keys.iter().zip(&lits).map(|(k, l)| format!("{} eq {l}", k.name)).collect::<Vec<_>>().join(" and "));
    }
    Some(if alternatives.len() == 1 {
        alternatives.remove(0)
    } else {
        alternatives.iter().map(|a| format!("({a})")).collect::<Vec<_>>().join(" or ")
    })
}

fn tuple_of(row: &Map<String, Value>, keys: &[KeyField]) -> Option<Tuple> {
    keys.iter().map(|k| row.get(&k.name).cloned()).collect()
}

impl KeyRange {
    fn new(id: usize, lo: Option<Tuple>, hi: Option<Tuple>) -> Self {
        Self { id, lo, hi, after: None, rows: 0, done: false }
    }

    /// The `$filter` of the range's rest: after `after` (else from `lo`), before `hi`.
    fn filter(&self, keys: &[KeyField]) -> Result<Option<String>, ClientError> {
        let bad = || ClientError::InvalidArgument("a key value of an unexpected type came back".into());
        let mut parts = Vec::new();
        match &self.after {
            Some(a) => parts.push(compare(keys, a, "gt", false).ok_or_else(bad)?),
            None => {
                if let Some(lo) = &self.lo {
                    parts.push(compare(keys, lo, "gt", true).ok_or_else(bad)?);
                }
            }
        }
        if let Some(hi) = &self.hi {
            parts.push(compare(keys, hi, "lt", false).ok_or_else(bad)?);
        }
        Ok(match parts.len() {
            0 => None,
            1 => Some(parts.remove(0)),
            _ => Some(parts.iter().map(|p| format!("({p})")).collect::<Vec<_>>().join(" and ")),
        })
    }
}

struct Scan {
    client: DataverseClient,
    query: Query,
    keys: Vec<KeyField>,
}

impl Scan {
    fn base_query(&self) -> Query {
        let mut q = self.query.clone();
        for k in &self.keys {
            if !q.select.is_empty() && !q.select.contains(&k.name) {
                q.select.push(k.name.clone());
            }
        }
        q.order_by = self.keys.iter().map(|k| k.name.clone()).collect();
        q.top = None;
        q
    }

    fn with_filter(&self, mut q: Query, extra: Option<String>) -> Query {
        q.filter = match (q.filter.take(), extra) {
            (Some(f), Some(e)) => Some(format!("({f}) and ({e})")),
            (f, e) => f.or(e),
        };
        q
    }

    async fn get(&self, q: &Query) -> Result<bytes::Bytes, ClientError> {
        let plan = self.client.plan(q)?;
        let req = ApiRequest::new(Method::GET, plan.url);
        Ok(self.client.send(&req).await?.body)
    }

    async fn count(&self) -> Result<u64, ClientError> {
        let mut q = self.query.clone();
        q.select.clear();
        q.order_by.clear();
        q.top = None;
        let plan = self.client.plan(&q)?;
        let mut url = plan.url.clone();
        url.set_path(&format!("{}/$count", url.path().trim_end_matches('/')));
        let req = ApiRequest::new(Method::GET, url);
        let body = self.client.send(&req).await?.body;
        String::from_utf8_lossy(&body)
            .trim()
            .trim_start_matches('\u{feff}')
            .parse::<u64>()
            .map_err(|e| decode_error(&req, format!("not a row count ({e})")))
    }

    /// `parts` ranges of about `count / parts` rows, with their estimated rows: one probe per
    /// boundary, several at once. Boundaries that probe to the same key merge their ranges.
    async fn cut(&self, count: u64, parts: usize) -> Result<Vec<(KeyRange, u64)>, ClientError> {
        let offsets: Vec<u64> = (1..parts).map(|i| count * i as u64 / parts as u64).collect();
        let probes: Vec<_> = offsets.iter().map(|&o| self.key_at(o)).collect();
        let keys: Vec<Option<Tuple>> = futures::stream::iter(probes).buffered(PROBES_IN_FLIGHT).try_collect().await?;
        // (offset, key) of each distinct boundary, in key order.
        let mut bounds: Vec<(u64, Tuple)> = Vec::new();
        for (offset, key) in offsets.into_iter().zip(keys) {
            let Some(key) = key else { continue };
            if bounds.last().is_none_or(|(_, last)| *last != key) {
                bounds.push((offset, key));
            }
        }
        let mut ranges = Vec::with_capacity(bounds.len() + 1);
        let (mut lo, mut from) = (None, 0u64);
        for (offset, key) in bounds {
            ranges.push((KeyRange::new(ranges.len(), lo.take(), Some(key.clone())), offset - from));
            (lo, from) = (Some(key), offset);
        }
        ranges.push((KeyRange::new(ranges.len(), lo, None), count.saturating_sub(from)));
        Ok(ranges)
    }

    /// The key at `offset` in key order (a boundary probe).
    async fn key_at(&self, offset: u64) -> Result<Option<Tuple>, ClientError> {
        let mut q = self.base_query();
        q.select = self.keys.iter().map(|k| k.name.clone()).collect();
        q.params.push(("$skip".into(), offset.to_string()));
        q.params.push(("$top".into(), "1".into()));
        let plan = self.client.plan(&q)?;
        let req = ApiRequest::new(Method::GET, plan.url);
        let body: Value = self.client.execute(&req, |r| decode_json(&req, &r.body)).await?;
        Ok(body
            .get("value")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_object)
            .and_then(|r| tuple_of(r, &self.keys)))
    }

    /// The next page of `range`, and the last key of it when a next page may follow.
    async fn page(&self, range: &KeyRange) -> Result<(bytes::Bytes, usize, Option<Tuple>), ClientError> {
        let mut q = self.with_filter(self.base_query(), range.filter(&self.keys)?);
        q.params.push(("$top".into(), KEYSET_PAGE_ROWS.to_string()));
        let body = self.get(&q).await?;
        // Only the row count and the last row's key are needed here (the caller decodes the
        // page): the rows stay raw text, and only the last one is parsed.
        let page: RawPage<'_> = serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
            method: "GET".into(),
            path: q.entity_set.clone(),
            message: e.to_string(),
        })?;
        let n = page.value.len();
        let last = if (n as u64) < KEYSET_PAGE_ROWS {
            None
        } else {
            let row: Option<Map<String, Value>> = page.value.last().and_then(|r| serde_json::from_str(r.get()).ok());
            let t = row.as_ref().and_then(|r| tuple_of(r, &self.keys));
            if t.is_none() {
                return Err(ClientError::InvalidArgument(format!(
                    "the rows of {} lack their key fields: cannot read it by key ranges",
                    q.entity_set
                )));
            }
            t
        };
        Ok((body, n, last))
    }
}

impl DataverseClient {
    /// The rows of `query` (entity set and `$filter`; with `cross-company` when the connection
    /// says so), from the service's `{set}/$count`: one request, no rows read.
    pub async fn count_rows(&self, query: &Query) -> Result<u64, ClientError> {
        Scan { client: self.clone(), query: query.clone(), keys: Vec::new() }.count().await
    }

    /// The key ranges of `query` for `parallel` readers (see the module docs): the row count
    /// and one probe per boundary; one open range when `parallel` is 1 or the rows fit in a
    /// page or two.
    pub async fn plan_key_ranges(
        &self,
        query: &Query,
        keys: &[KeyField],
        parallel: usize,
    ) -> Result<Vec<KeyRange>, ClientError> {
        let scan = Scan { client: self.clone(), query: query.clone(), keys: keys.to_vec() };
        if scan.keys.is_empty() {
            return Err(ClientError::InvalidArgument(format!(
                "{} has no key: it cannot be read by key ranges",
                scan.query.entity_set
            )));
        }
        let mut ranges = vec![KeyRange::new(0, None, None)];
        if parallel > 1 {
            let count = scan.count().await?;
            let parts = (count.div_ceil(KEYSET_PAGE_ROWS) as usize).min(parallel * 2);
            if parts > 1 {
                ranges = scan.cut(count, parts).await?.into_iter().map(|(r, _)| r).collect();
            }
        }
        tracing::debug!(entity = %scan.query.entity_set, ranges = ranges.len(), "key-range scan planned");
        Ok(ranges)
    }

    /// `parts` key ranges of `query`'s `count` rows (from [`count_rows`](Self::count_rows)),
    /// each with its estimated rows, planned ahead of the read (the work units of `d365
    /// plan`): one probe per boundary, a few at once (see the module docs). Boundaries that
    /// probe to the same key merge their ranges; the first and last ranges are open.
    pub async fn cut_key_ranges(
        &self,
        query: &Query,
        keys: &[KeyField],
        count: u64,
        parts: usize,
    ) -> Result<Vec<(KeyRange, u64)>, ClientError> {
        let scan = Scan { client: self.clone(), query: query.clone(), keys: keys.to_vec() };
        if scan.keys.is_empty() {
            return Err(ClientError::InvalidArgument(format!(
                "{} has no key: it cannot be cut into key ranges",
                scan.query.entity_set
            )));
        }
        if parts <= 1 {
            return Ok(vec![(KeyRange::new(0, None, None), count)]);
        }
        scan.cut(count, parts).await
    }

    /// Reads `query` (entity set, `$select`, `$filter`; its order and top are replaced) by key
    /// ranges, up to `parallel` ranges at once (see the module docs). Pages come as they
    /// arrive. `keys` is the entity key (every field, in key order).
    pub fn keyset_scan(
        &self,
        query: &Query,
        keys: Vec<KeyField>,
        parallel: usize,
    ) -> BoxStream<'static, Result<KeysetPage, ClientError>> {
        let client = self.clone();
        let (q, parallel) = (query.clone(), parallel.max(1));
        stream::once(async move {
            match client.plan_key_ranges(&q, &keys, parallel).await {
                Ok(ranges) => client.keyset_scan_ranges(&q, keys, ranges, parallel),
                Err(e) => stream::once(async move { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    /// Reads the rest of `ranges` (from [`plan_key_ranges`](Self::plan_key_ranges), or as
    /// checkpointed from [`KeysetPage::state`]): each range not done continues after its last
    /// key read, up to `parallel` at once.
    pub fn keyset_scan_ranges(
        &self,
        query: &Query,
        keys: Vec<KeyField>,
        ranges: Vec<KeyRange>,
        parallel: usize,
    ) -> BoxStream<'static, Result<KeysetPage, ClientError>> {
        let scan = Arc::new(Scan { client: self.clone(), query: query.clone(), keys });
        stream::iter(ranges.into_iter().filter(|r| !r.done))
            .map(move |range| read_range(scan.clone(), range))
            .flatten_unordered(parallel.max(1))
            .boxed()
    }
}

fn read_range(scan: Arc<Scan>, range: KeyRange) -> BoxStream<'static, Result<KeysetPage, ClientError>> {
    // The state is the range as read so far; `None` ends the stream.
    stream::unfold(Some(range), move |state| {
        let scan = scan.clone();
        async move {
            let mut range = state?;
            match scan.page(&range).await {
                Ok((body, rows, last)) => {
                    range.rows += rows as u64;
                    match last {
                        Some(key) => range.after = Some(key),
                        None => range.done = true,
                    }
                    let page = KeysetPage { body, rows, range: range.id, state: range.clone() };
                    let next = (!range.done).then_some(range);
                    Some((Ok(page), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys() -> Vec<KeyField> {
        vec![
            KeyField { name: "dataAreaId".into(), kind: KeyKind::Text },
            KeyField { name: "CustomerAccount".into(), kind: KeyKind::Text },
        ]
    }

    #[test]
    fn composite_keys_compare_in_key_order() {
        let t = vec![json!("usmf"), json!("US-0'1")];
        assert_eq!(
            compare(&keys(), &t, "gt", false).unwrap(),
            "(dataAreaId gt 'usmf') or (dataAreaId eq 'usmf' and CustomerAccount gt 'US-0''1')"
        );
        assert_eq!(
            compare(&keys(), &t, "gt", true).unwrap(),
            "(dataAreaId gt 'usmf') or (dataAreaId eq 'usmf' and CustomerAccount gt 'US-0''1') or (dataAreaId eq 'usmf' and CustomerAccount eq 'US-0''1')"
        );
        let one = vec![KeyField { name: "LineNumber".into(), kind: KeyKind::Number }];
        assert_eq!(compare(&one, &[json!(2.5)], "lt", false).unwrap(), "LineNumber lt 2.5");
        let e = vec![KeyField { name: "Gender".into(), kind: KeyKind::Enum("HcmPersonGender".into()) }];
        assert_eq!(
            compare(&e, &[json!("Male")], "gt", false).unwrap(),
            "Gender gt Microsoft.Dynamics.DataEntities.HcmPersonGender'Male'"
        );
        assert!(compare(&keys(), &[json!(1), json!("x")], "gt", false).is_none(), "a number where text is expected");
    }

    #[test]
    fn ranges_are_half_open_and_continue_after_the_last_key() {
        let mut r = KeyRange::new(1, Some(vec![json!("usmf"), json!("B")]), Some(vec![json!("usmf"), json!("M")]));
        let f = r.filter(&keys()).unwrap().unwrap();
        assert!(f.contains("CustomerAccount eq 'B')") && f.contains("CustomerAccount lt 'M'"), "{f}");
        r.after = Some(vec![json!("usmf"), json!("F")]);
        let f = r.filter(&keys()).unwrap().unwrap();
        assert!(!f.contains("'B'") && f.contains("CustomerAccount gt 'F'") && f.contains("lt 'M'"), "{f}");
        assert_eq!(KeyRange::new(0, None, None).filter(&keys()).unwrap(), None);
        // A checkpointed state survives a round trip.
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<KeyRange>(&text).unwrap(), r);
    }
}

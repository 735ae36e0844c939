//! Key ranges of a partitioned table scan.
//!
//! A table is split on a date-time column the service orders and filters on cheaply (by
//! default `createdon`, indexed on every Dataverse table). Boundaries are whole seconds, and
//! every partition is a half-open range `column ge lo and column lt hi`: the first range has no
//! lower bound, the last none upper bound (rows created during the scan land in it), and rows
//! whose column is null get a partition of their own (`column eq null`). So every row falls in
//! exactly one partition, whatever the service's own ordering of keys (boundaries never compare
//! primary keys, whose GUID ordering differs between SQL Server and us).
//!
//! Boundaries come from the service: the minimum and maximum of the column (two `$top=1`
//! requests, ascending and descending). The initial ranges are equal in time; a range that turns
//! out big is split while it is read (see [`split_remainder`]): after a page ordered by
//! `(column, key)`, the rest of the range is `[last value seen, hi)`, less the rows already
//! delivered at that last second (their ids are carried as [`Partition::skip_ids`]).
//!
//! The column's values are compared as whole seconds: a value the service returns as
//! `2024-05-01T10:00:00Z` is `>= 10:00:00` and `< 10:00:01` whatever sub-second part it may
//! store, because boundaries are whole seconds.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The column tables are partitioned on by default.
pub const DEFAULT_PARTITION_COLUMN: &str = "createdon";

/// The rows one partition covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Bounds {
    /// Every row (a table read as one partition, e.g. one without the partition column).
    All,
    /// Rows whose partition column is null.
    Null,
    /// Rows with `lo <= column < hi` (Unix seconds); a missing bound is open.
    Range {
        /// Inclusive lower bound.
        lo: Option<i64>,
        /// Exclusive upper bound.
        hi: Option<i64>,
    },
}

/// Sort key of a partition: the null partition first, then ranges by lower bound. Ranges are
/// disjoint, so this is the order of the column's values (the deterministic output order).
pub type PartitionKey = (u8, i64, u64);

/// One partition of a scan and how far it has been read. Serialisable, so an export can
/// checkpoint it and resume from [`next_link`](Self::next_link).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Identifier, unique within a scan (also across splits).
    pub id: u64,
    /// The rows it covers.
    pub bounds: Bounds,
    /// Primary keys of rows at exactly `lo` that an earlier partition already delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_ids: Vec<String>,
    /// `@odata.nextLink` of the next page to read; `None` before the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    /// Pages read.
    #[serde(default)]
    pub pages: u32,
    /// Rows delivered.
    #[serde(default)]
    pub rows: u64,
    /// Read to the end (or split: its remaining rows moved to new partitions).
    #[serde(default)]
    pub done: bool,
}

impl Partition {
    /// A partition not read yet.
    pub fn new(id: u64, bounds: Bounds) -> Self {
        Self { id, bounds, skip_ids: Vec::new(), next_link: None, pages: 0, rows: 0, done: false }
    }

    /// Its sort key (see [`PartitionKey`]).
    pub fn key(&self) -> PartitionKey {
        match self.bounds {
            Bounds::All | Bounds::Null => (0, 0, self.id),
            Bounds::Range { lo, .. } => (1, lo.unwrap_or(i64::MIN), self.id),
        }
    }

    /// The `$filter` condition selecting its rows on `column` (`None` for every row).
    pub fn filter(&self, column: &str) -> Option<String> {
        Some(match self.bounds {
            Bounds::All => return None,
            Bounds::Null => format!("{column} eq null"),
            Bounds::Range { lo: None, hi: None } => format!("{column} ne null"),
            Bounds::Range { lo: Some(lo), hi: None } => format!("{column} ge {}", format_instant(lo)),
            Bounds::Range { lo: None, hi: Some(hi) } => format!("{column} lt {}", format_instant(hi)),
            Bounds::Range { lo: Some(lo), hi: Some(hi) } => {
                format!("{column} ge {} and {column} lt {}", format_instant(lo), format_instant(hi))
            }
        })
    }

    /// Whether a row whose column is `value` (Unix seconds, `None` for null) belongs here.
    pub fn contains(&self, value: Option<i64>) -> bool {
        match (self.bounds, value) {
            (Bounds::All, _) => true,
            (Bounds::Null, v) => v.is_none(),
            (Bounds::Range { .. }, None) => false,
            (Bounds::Range { lo, hi }, Some(v)) => lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v < hi),
        }
    }
}

/// `2024-05-01T10:00:00Z` for Unix seconds (an OData `DateTimeOffset` literal).
pub fn format_instant(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Unix seconds (rounded down) of an RFC 3339 date-time such as the service returns.
pub fn parse_instant(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok().map(|t| t.unix_timestamp())
}

/// The column's value in `row`: `Some(None)` for null or missing, `None` when it is not a
/// date-time (the row cannot be placed).
pub fn row_instant(row: &Map<String, Value>, column: &str) -> Option<Option<i64>> {
    match row.get(column) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => parse_instant(s).map(Some),
        Some(_) => None,
    }
}

/// `n` equal ranges covering `[min, max]` (the first and last open-ended), plus the null
/// partition when `nulls`. Ids start at `first_id`.
pub fn initial_partitions(min: i64, max: i64, nulls: bool, n: usize, first_id: u64) -> Vec<Partition> {
    let mut out = Vec::new();
    let mut id = first_id;
    if nulls {
        out.push(Partition::new(id, Bounds::Null));
        id += 1;
    }
    let span = (max - min).max(0) + 1;
    let n = (n.max(1) as i64).min(span);
    let mut lo: Option<i64> = None;
    for i in 1..=n {
        let hi = (i < n).then(|| min + span * i / n);
        out.push(Partition::new(id, Bounds::Range { lo, hi }));
        id += 1;
        lo = hi;
    }
    out
}

/// What [`split_remainder`] needs to know about the scan.
#[derive(Debug, Clone, Copy)]
pub struct SplitContext<'a> {
    /// The partition column.
    pub column: &'a str,
    /// The primary key column.
    pub primary_key: &'a str,
    /// Stands for an open upper bound (the largest value seen at discovery + 1).
    pub hi_estimate: Option<i64>,
    /// Rows per page.
    pub page_size: usize,
}

/// Splits the unread rest of `parent` after a page (`page`, ordered by the column then the
/// key) into up to `pieces` partitions, or `None` when it cannot or need not be split.
///
/// The rest is `[t, hi)` where `t` is the column's value on the page's last row, less the
/// rows at `t` the page delivered (carried as `skip_ids` of the first new partition). Only
/// pages whose first row is before `t` are split, so no earlier page delivered rows at `t`.
/// The page size and the page's density of rows per second decide how many pieces are worth
/// it. New ids are taken from `next_id`.
pub fn split_remainder(
    parent: &Partition,
    page: &[Map<String, Value>],
    ctx: SplitContext<'_>,
    pieces: usize,
    next_id: &mut u64,
) -> Option<Vec<Partition>> {
    let SplitContext { column, primary_key, hi_estimate, page_size } = ctx;
    let Bounds::Range { hi, .. } = parent.bounds else { return None };
    let first = row_instant(page.first()?, column)??;
    let last = row_instant(page.last()?, column)??;
    if first >= last {
        return None;
    }
    let end = hi.or(hi_estimate)?;
    if end <= last + 1 {
        return None;
    }
    // Rows per second on this page → rows left in [last, end).
    let density = page.len() as f64 / (last - first) as f64;
    let estimate = density * (end - last) as f64;
    let worth = (estimate / page_size.max(1) as f64).ceil() as usize;
    let pieces = pieces.min(worth).min((end - last) as usize);
    if pieces < 2 {
        return None;
    }
    let skip_ids: Vec<String> = page
        .iter()
        .filter(|r| row_instant(r, column) == Some(Some(last)))
        .filter_map(|r| r.get(primary_key).and_then(Value::as_str).map(str::to_string))
        .collect();
    let span = end - last;
    let mut out = Vec::with_capacity(pieces);
    let mut lo = last;
    for i in 1..=pieces as i64 {
        let piece_hi = if i == pieces as i64 { hi } else { Some(last + span * i / pieces as i64) };
        let mut p = Partition::new(*next_id, Bounds::Range { lo: Some(lo), hi: piece_hi });
        *next_id += 1;
        if i == 1 {
            p.skip_ids = skip_ids.clone();
        }
        out.push(p);
        if let Some(h) = piece_hi {
            lo = h;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: &str, at: i64) -> Map<String, Value> {
        match json!({"accountid": id, "createdon": format_instant(at)}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn instants_round_trip_and_round_down() {
        assert_eq!(format_instant(1_609_459_200), "2021-01-01T00:00:00Z");
        assert_eq!(parse_instant("2021-01-01T00:00:00Z"), Some(1_609_459_200));
        assert_eq!(parse_instant("2021-01-01T00:00:00.999Z"), Some(1_609_459_200));
        assert_eq!(parse_instant("2021-01-01T01:00:00+01:00"), Some(1_609_459_200));
        assert_eq!(parse_instant("yesterday"), None);
    }

    #[test]
    fn initial_ranges_cover_everything_once() {
        let parts = initial_partitions(100, 199, true, 4, 1);
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[0].bounds, Bounds::Null);
        assert_eq!(parts[1].bounds, Bounds::Range { lo: None, hi: Some(125) });
        assert_eq!(parts[4].bounds, Bounds::Range { lo: Some(175), hi: None });
        for v in [None, Some(i64::MIN), Some(0), Some(100), Some(124), Some(125), Some(199), Some(10_000)] {
            assert_eq!(parts.iter().filter(|p| p.contains(v)).count(), 1, "{v:?}");
        }
        // A span shorter than the number of ranges gives one range per second at most.
        assert_eq!(initial_partitions(5, 5, false, 8, 0).len(), 1);
        assert_eq!(parts[1].filter("createdon"), Some(format!("createdon lt {}", format_instant(125))));
        assert_eq!(parts[0].filter("createdon").as_deref(), Some("createdon eq null"));
        assert_eq!(Partition::new(0, Bounds::All).filter("createdon"), None);
        let keys: Vec<_> = parts.iter().map(Partition::key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn splitting_the_rest_keeps_every_row_once() {
        let parent = Partition::new(7, Bounds::Range { lo: Some(0), hi: Some(1000) });
        let page = vec![row("a", 10), row("b", 20), row("c", 30), row("d", 30)];
        let mut next = 8;
        let ctx = |hi_estimate, page_size| SplitContext {
            column: "createdon",
            primary_key: "accountid",
            hi_estimate,
            page_size,
        };
        let parts = split_remainder(&parent, &page, ctx(None, 2), 4, &mut next).unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].bounds, Bounds::Range { lo: Some(30), hi: Some(272) });
        assert_eq!(parts[0].skip_ids, vec!["c".to_string(), "d".to_string()]);
        assert_eq!(parts[3].bounds, Bounds::Range { lo: Some(757), hi: Some(1000) });
        assert!(parts[1..].iter().all(|p| p.skip_ids.is_empty()));
        assert_eq!(next, 12);
        for v in 30..1000 {
            assert_eq!(parts.iter().filter(|p| p.contains(Some(v))).count(), 1);
        }
        // A page of one second, or a rest that fits in a page, is not split.
        let flat = vec![row("a", 10), row("b", 10)];
        assert!(split_remainder(&parent, &flat, ctx(None, 2), 4, &mut next).is_none());
        assert!(split_remainder(&parent, &page, ctx(None, 10_000), 4, &mut next).is_none());
        // An open range splits up to the estimate and keeps its last piece open.
        let open = Partition::new(1, Bounds::Range { lo: None, hi: None });
        let parts = split_remainder(&open, &page, ctx(Some(100), 1), 2, &mut next).unwrap();
        assert_eq!(parts[1].bounds, Bounds::Range { lo: Some(65), hi: None });
        assert!(split_remainder(&open, &page, ctx(None, 1), 2, &mut next).is_none());
    }
}

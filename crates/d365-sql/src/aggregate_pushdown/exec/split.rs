//! Cutting an aggregate too big for one request into `createdon` ranges, and what a run
//! remembers of the table for the next one (see the parent module's docs).

use std::sync::atomic::Ordering;

use d365_client::partition::initial_partitions;
use d365_client::{Bounds, Query, TableExtent};

use super::{Outcome, Runner};
use crate::error::SqlError;
use crate::scan::PARTITION_COLUMN;

/// Rows a range is planned to hold when the whole table is too big for one request: well
/// under the 50,000 limit, so an uneven spread rarely needs a second split.
const ROWS_PER_PART: f64 = 30_000.0;
/// Most ranges of the first split.
const MAX_FIRST_SPLIT: usize = 4096;
/// `createdon` values read to estimate the rows per second: 100, about 11 KB. Without a filter
/// this probe goes with the first request, so it is paid by every unfiltered aggregate, also one
/// that fits in that request; the estimate only sets the first split, which refusals correct.
const DENSITY_SAMPLE: u64 = 100;
/// Ranges a range that is still too big is split into.
const NEXT_SPLIT: usize = 8;
/// Rows one aggregate request may cover (`AggregateQueryRecordLimit`).
const RECORD_LIMIT: u64 = 50_000;

/// A piece of the work: rows of a `createdon` range, read by the service or locally.
#[derive(Debug, Clone)]
pub(super) struct Part {
    pub(super) bounds: Bounds,
    /// The span `[lo, hi)` (Unix seconds) its rows are known to lie in, for splitting.
    pub(super) span: Option<(i64, i64)>,
    pub(super) local: bool,
    /// `span` comes from an earlier query's [`TableExtent`]: rows created since may lie past
    /// it, in the open first or last range.
    pub(super) recalled: bool,
}

impl Part {
    pub(super) fn new(bounds: Bounds, span: Option<(i64, i64)>) -> Self {
        Self { bounds, span, local: false, recalled: false }
    }
}

/// The smallest and largest `createdon` of the rows aggregated and an estimate of their
/// number; `None` when no row has one.
type SpanResult = std::result::Result<Option<(i64, i64, f64)>, SqlError>;

impl Runner {
    /// The first parts: the whole table, or the ranges of an earlier run's [`TableExtent`]
    /// when it was past the limit.
    pub(super) fn first_parts(&self) -> Vec<Part> {
        match self.recalled {
            Some(TableExtent { rows, span: Some((min, max)) }) if rows > RECORD_LIMIT => {
                let mut parts = self.ranges(min, max, rows as f64);
                parts.iter_mut().for_each(|p| p.recalled = true);
                parts
            }
            _ => vec![Part::new(Bounds::All, None)],
        }
    }

    /// The null part and ranges of about [`ROWS_PER_PART`] rows covering `[min, max]` (the
    /// first and last open).
    pub(super) fn ranges(&self, min: i64, max: i64, estimate: f64) -> Vec<Part> {
        let mut parts = vec![Part::new(Bounds::Null, None)];
        let n = ((estimate / ROWS_PER_PART).ceil() as usize).clamp(2, MAX_FIRST_SPLIT);
        for p in initial_partitions(min, max, false, n, 0) {
            parts.push(Part::new(p.bounds, range_span(p.bounds, (min, max + 1))));
        }
        parts
    }

    /// Widens the span seen by this run (or recalled) to take in `[min, max]`.
    pub(super) fn widen_span_seen(&self, min: i64, max: i64) {
        let mut seen = self.span_seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen = Some(match seen.or(self.recalled.and_then(|r| r.span)) {
            Some((a, b)) => (a.min(min), b.max(max)),
            None => (min, max),
        });
    }

    /// Leaves what this run saw of the whole table on the client, for the next aggregate.
    pub(super) fn remember_extent(&self) {
        if self.spec.filter.is_some() || !self.has_partition_column() {
            return;
        }
        let seen = *self.span_seen.lock().unwrap_or_else(|e| e.into_inner());
        let span = seen.or(self.recalled.and_then(|r| r.span));
        let extent = TableExtent { rows: self.rows_counted.load(Ordering::Relaxed), span };
        self.client.remember_table_extent(&self.spec.table.entity_set, Some(extent));
    }

    /// Whether to probe the span along with the first request: only for the whole table
    /// without a filter, where the probes are index reads (with a filter, finding its first
    /// and last row may read much of the table), and not when an earlier run found that the
    /// table fits in one request.
    pub(super) fn speculate_span(&self, part: &Part) -> bool {
        matches!(part.bounds, Bounds::All)
            && self.spec.filter.is_none()
            && self.has_partition_column()
            && self.recalled.is_none_or(|r| r.rows > RECORD_LIMIT)
    }

    pub(super) fn has_partition_column(&self) -> bool {
        self.spec.table.columns.iter().any(|c| c.property == PARTITION_COLUMN)
    }

    /// The parts a part too big for one request is split into; `span`: the whole table's span,
    /// when it was probed already.
    pub(super) async fn split(&self, part: Part, span: Option<SpanResult>) -> std::result::Result<Outcome, SqlError> {
        let local = |p: Part| Outcome::Split(vec![Part { local: true, ..p }]);
        match (part.bounds, part.span) {
            (Bounds::All, _) if self.has_partition_column() => {
                let span = match span {
                    Some(span) => span,
                    None => self.span(None).await,
                };
                let Some((min, max, estimate)) = span? else { return Ok(local(part)) };
                *self.span_seen.lock().unwrap_or_else(|e| e.into_inner()) = Some((min, max));
                Ok(Outcome::Split(self.ranges(min, max, estimate)))
            }
            // An open range planned from an earlier run: rows created since may lie past its
            // recalled span, so its own span is probed before it is cut.
            (Bounds::Range { lo, hi }, _) if part.recalled && (lo.is_none() || hi.is_none()) => {
                let within = Self::part_filter(&part);
                let Some((min, max, estimate)) = self.span(within.as_deref()).await? else { return Ok(local(part)) };
                let mut parts = self.ranges(min, max, estimate);
                parts.remove(0); // the null part is a part of its own already
                if let Some(Part { bounds: Bounds::Range { lo: first_lo, .. }, .. }) = parts.first_mut() {
                    *first_lo = lo;
                }
                if let Some(Part { bounds: Bounds::Range { hi: last_hi, .. }, .. }) = parts.last_mut() {
                    *last_hi = hi;
                }
                self.widen_span_seen(min, max);
                Ok(Outcome::Split(parts))
            }
            (Bounds::Range { lo, hi }, Some((a, b))) if b - a > 1 => {
                let n = NEXT_SPLIT.min((b - a) as usize) as i64;
                let cuts: Vec<i64> = (1..n).map(|i| a + (b - a) * i / n).collect();
                let mut parts = Vec::new();
                let mut start = lo;
                let mut start_span = a;
                for cut in cuts {
                    parts.push(Part::new(Bounds::Range { lo: start, hi: Some(cut) }, Some((start_span, cut))));
                    start = Some(cut);
                    start_span = cut;
                }
                parts.push(Part::new(Bounds::Range { lo: start, hi }, Some((start_span, b))));
                Ok(Outcome::Split(parts))
            }
            _ => Ok(local(part)),
        }
    }

    /// The smallest and largest `createdon` (Unix seconds) of the rows aggregated, and an
    /// estimate of their number: the first [`DENSITY_SAMPLE`] values in ascending order give
    /// the rows per second, as the partitioned scan plans its ranges.
    pub(super) async fn span(&self, within: Option<&str>) -> SpanResult {
        let probe = |desc: bool, top: u64| {
            let not_null = format!("{PARTITION_COLUMN} ne null");
            let filter = [self.spec.filter.as_deref(), within]
                .into_iter()
                .flatten()
                .fold(not_null, |acc, f| format!("({f}) and ({acc})"));
            Query::new(self.spec.table.entity_set.clone())
                .select([PARTITION_COLUMN])
                .filter(filter)
                .order_by(PARTITION_COLUMN, desc)
                .top(top)
                .max_page_size(top as u32)
        };
        let first = self.client.page_stream(&probe(false, DENSITY_SAMPLE))?.collect_rows();
        let last = self.client.page_stream(&probe(true, 1))?.collect_rows();
        let (first, last) = futures::try_join!(first, last)?;
        self.requests.add(2);
        let instants: Vec<i64> =
            first.iter().filter_map(|r| d365_client::partition::row_instant(r, PARTITION_COLUMN).flatten()).collect();
        let max = last.first().and_then(|r| d365_client::partition::row_instant(r, PARTITION_COLUMN)).flatten();
        let (Some(&min), Some(&lo_sample), Some(max)) = (instants.first(), instants.last(), max) else {
            return Ok(None);
        };
        let estimate = if (instants.len() as u64) < DENSITY_SAMPLE {
            instants.len() as f64
        } else {
            let density = instants.len() as f64 / (lo_sample - min + 1) as f64;
            density * (max - min + 1) as f64
        };
        Ok(Some((min.min(max), min.max(max), estimate)))
    }
}

/// The known span of a planned range inside `[min, max_excl)`.
fn range_span(bounds: Bounds, (min, max_excl): (i64, i64)) -> Option<(i64, i64)> {
    match bounds {
        Bounds::Range { lo, hi } => Some((lo.unwrap_or(min).max(min), hi.unwrap_or(max_excl).min(max_excl))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_ranges_know_their_span() {
        assert_eq!(range_span(Bounds::Range { lo: None, hi: Some(50) }, (10, 100)), Some((10, 50)));
        assert_eq!(range_span(Bounds::Range { lo: Some(50), hi: None }, (10, 100)), Some((50, 100)));
        assert_eq!(range_span(Bounds::Null, (10, 100)), None);
    }
}

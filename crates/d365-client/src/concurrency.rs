//! [`AdaptiveConcurrency`]: how many requests of one piece of work run at once, shared by the
//! partitioned scans and the aggregate parts of `d365-sql`, so every concurrent reader follows
//! one throttling-aware policy.
//!
//! The limit follows AIMD: it starts at the service's `x-ms-dop-hint` (or a fixed `--parallel
//! N`), grows by one per response while the service answers without throttling, and halves
//! (once per round of requests) when a request of the client was throttled — 429, or 503 with
//! `Retry-After`; the retry policy waits and repeats the request itself. It never exceeds its
//! maximum (by default 52, the documented limit of concurrent requests per user).
//!
//! What one piece of work learnt carries over to the next on the same client, as TCP caches a
//! path's window: work that ends without having been throttled leaves the concurrency it
//! actually used (requests in flight at once, at most its limit; a limit grown while the work
//! had fewer requests to send proves nothing), and the next piece starts there instead of at
//! the hint. Work that was throttled leaves its lowered level. A client throttled within the
//! service's window starts at the hint again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::client::DataverseClient;

/// How long a throttled response marks the client as held by its budget: the service's
/// sliding window (five minutes).
const THROTTLE_MEMORY: Duration = Duration::from_secs(300);

/// The most concurrent requests by default: the service's documented limit per user.
pub const MAX_CONCURRENT_REQUESTS: usize = 52;

/// Concurrent requests when neither a fixed concurrency nor the service's DOP hint is known.
const DEFAULT_START: usize = 4;

/// An AIMD limit on concurrent requests (see the module docs).
#[derive(Debug)]
pub struct AdaptiveConcurrency {
    limit: f64,
    max: f64,
    throttled_seen: u64,
    /// Throttled during this work or, before it began, within [`THROTTLE_MEMORY`]: the service's
    /// budget, not the concurrency, bounds the work, so it should not be split further (a split's
    /// partial pages would spend requests of that budget), and the limit grows by one per round
    /// instead of one per response.
    ever_throttled: bool,
    since_decrease: u64,
    /// Where the level reached is left for the next work, when it ends.
    reached: Option<Arc<AtomicU64>>,
    /// The most requests in flight at once (see [`AdaptiveConcurrency::in_flight`]).
    peak_in_flight: usize,
}

impl AdaptiveConcurrency {
    /// A limit starting at `start` (at least one), never above `max`; `throttled_seen` is the
    /// client's running count of throttled responses, `throttled_recently` whether the client
    /// was throttled within the service's window.
    pub fn new(start: usize, max: usize, throttled_seen: u64, throttled_recently: bool) -> Self {
        let max = max.max(1) as f64;
        Self {
            limit: (start.max(1) as f64).min(max),
            max,
            throttled_seen,
            ever_throttled: throttled_recently,
            since_decrease: 0,
            reached: None,
            peak_in_flight: 0,
        }
    }

    /// Tells how many requests are in flight now (after sending more).
    pub fn in_flight(&mut self, n: usize) {
        self.peak_in_flight = self.peak_in_flight.max(n);
    }

    /// Leaves the limit in `reached` when this work ends (see the module docs).
    fn remembered_in(mut self, reached: Arc<AtomicU64>) -> Self {
        self.reached = Some(reached);
        self
    }

    /// Whether splitting work into more requests may add throughput (see `ever_throttled`).
    pub fn may_split(&self) -> bool {
        !self.ever_throttled
    }

    /// The requests that may run now.
    pub fn limit(&self) -> usize {
        self.limit.floor().max(1.0) as usize
    }

    /// The most requests that may ever run at once.
    pub fn cap(&self) -> usize {
        self.max as usize
    }

    /// After a response: `throttled` is the client's running count of throttled responses.
    /// Returns whether the limit was lowered.
    pub fn on_page(&mut self, throttled: u64) -> bool {
        self.since_decrease += 1;
        if throttled > self.throttled_seen {
            self.throttled_seen = throttled;
            self.ever_throttled = true;
            // One decrease per round of requests: later responses of the same round saw the
            // same congestion.
            if self.since_decrease >= self.limit() as u64 {
                self.limit = (self.limit / 2.0).max(1.0);
                self.since_decrease = 0;
                return true;
            }
            return false;
        }
        let step = if self.ever_throttled { 1.0 / self.limit } else { 1.0 };
        self.limit = (self.limit + step).min(self.max);
        false
    }
}

impl Drop for AdaptiveConcurrency {
    fn drop(&mut self) {
        let Some(reached) = &self.reached else { return };
        if self.peak_in_flight == 0 {
            return;
        }
        let level = self.limit().min(self.peak_in_flight) as u64;
        if self.ever_throttled {
            reached.store(level, Ordering::Relaxed);
        } else {
            reached.fetch_max(level, Ordering::Relaxed);
        }
    }
}

impl DataverseClient {
    /// The concurrency of one piece of work against this client: fixed at `parallel` when
    /// given, else adapting up to `max` from the service's DOP hint or, when earlier work of
    /// this client went further without being throttled, from where it got to (see the module
    /// docs), and from what the client already knows of throttling.
    pub fn concurrency(&self, parallel: Option<usize>, max: usize) -> AdaptiveConcurrency {
        let throttled_seen = self.request_log().stats().throttled;
        let throttled_recently = self.throttled_within(THROTTLE_MEMORY);
        if let Some(n) = parallel {
            let n = n.max(1);
            return AdaptiveConcurrency::new(n, n, throttled_seen, throttled_recently);
        }
        let max = max.max(1);
        let hint = self.server_hints().dop_hint.map_or(DEFAULT_START, |d| d as usize);
        let reached = self.concurrency_reached().load(Ordering::Relaxed) as usize;
        let start = if throttled_recently { hint } else { hint.max(reached) };
        AdaptiveConcurrency::new(start.clamp(1, max), max, throttled_seen, throttled_recently)
            .remembered_in(self.concurrency_reached().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aimd_grows_until_throttled_then_halves_once_per_round() {
        let mut a = AdaptiveConcurrency::new(4, 10, 0, false);
        assert!(a.may_split());
        for _ in 0..3 {
            assert!(!a.on_page(0));
        }
        assert_eq!(a.limit(), 7);
        for _ in 0..10 {
            a.on_page(0);
        }
        assert_eq!(a.limit(), 10);
        assert!(a.on_page(1));
        assert_eq!(a.limit(), 5);
        assert!(!a.may_split(), "held by the budget: splits would only add partial pages");
        // The same round's other throttled pages do not halve again.
        assert!(!a.on_page(2));
        assert_eq!(a.limit(), 5);
        // After throttling, growth is additive per round.
        for _ in 0..5 {
            a.on_page(2);
        }
        assert_eq!(a.limit(), 5);
        for _ in 0..10 {
            a.on_page(2);
        }
        assert!(a.limit() >= 6);
        let mut one = AdaptiveConcurrency::new(1, 1, 0, false);
        one.on_page(5);
        assert_eq!(one.limit(), 1);
    }

    #[test]
    fn work_leaves_the_limit_it_reached_for_the_next() {
        let reached = Arc::new(AtomicU64::new(0));
        let mut a = AdaptiveConcurrency::new(8, 52, 0, false).remembered_in(reached.clone());
        for i in 0..20 {
            a.in_flight(8 + i);
            a.on_page(0);
        }
        drop(a);
        assert_eq!(reached.load(Ordering::Relaxed), 27, "the most requests in flight at once");
        // A limit grown while fewer requests were in flight proves nothing.
        let mut idle = AdaptiveConcurrency::new(8, 52, 0, false).remembered_in(reached.clone());
        for _ in 0..40 {
            idle.in_flight(2);
            idle.on_page(0);
        }
        assert_eq!(idle.limit(), 48);
        drop(idle);
        assert_eq!(reached.load(Ordering::Relaxed), 27);
        // Throttled work leaves its lowered level.
        let mut b = AdaptiveConcurrency::new(10, 10, 0, false).remembered_in(reached.clone());
        for _ in 0..10 {
            b.in_flight(10);
            b.on_page(0);
        }
        assert!(b.on_page(1));
        drop(b);
        assert_eq!(reached.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_scan_of_a_client_throttled_recently_starts_budget_bound() {
        let mut a = AdaptiveConcurrency::new(4, 10, 7, true);
        assert!(!a.may_split());
        // Growth is additive per round (about one per `limit` pages) from the start.
        for _ in 0..4 {
            a.on_page(7);
        }
        assert_eq!(a.limit(), 4);
        a.on_page(7);
        assert_eq!(a.limit(), 5);
    }
}

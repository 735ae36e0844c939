//! Service-protection accounting per user over a sliding five-minute window: requests and
//! execution time, reported in the `x-ms-ratelimit-*` headers.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

/// Default requests per window.
pub const REQUESTS_PER_WINDOW: u64 = 6000;
/// Default combined execution time per window, in milliseconds.
pub const EXEC_MILLIS_PER_WINDOW: u64 = 1_200_000;
/// Window length in seconds.
pub const WINDOW_SECS: i64 = 300;

/// Per-user sliding windows.
#[derive(Debug, Default)]
pub struct Limits {
    windows: Mutex<HashMap<String, VecDeque<(i64, u64)>>>,
}

impl Limits {
    /// Records one request of `user` that took `elapsed` and returns what remains of the
    /// window: (requests, execution milliseconds).
    pub fn record(&self, user: &str, now: OffsetDateTime, elapsed: Duration) -> (u64, u64) {
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut all = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = all.entry(user.to_string()).or_default();
        while w.front().is_some_and(|(t, _)| now_ms - t >= WINDOW_SECS * 1000) {
            w.pop_front();
        }
        w.push_back((now_ms, elapsed.as_millis() as u64));
        let used_ms: u64 = w.iter().map(|(_, ms)| ms).sum();
        (REQUESTS_PER_WINDOW.saturating_sub(w.len() as u64), EXEC_MILLIS_PER_WINDOW.saturating_sub(used_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides() {
        let l = Limits::default();
        let t0 = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        assert_eq!(l.record("u", t0, Duration::from_millis(10)), (5999, 1_199_990));
        assert_eq!(l.record("u", t0, Duration::from_millis(10)).0, 5998);
        assert_eq!(l.record("v", t0, Duration::ZERO).0, 5999);
        let later = t0 + time::Duration::seconds(301);
        assert_eq!(l.record("u", later, Duration::ZERO), (5999, 1_200_000));
    }
}

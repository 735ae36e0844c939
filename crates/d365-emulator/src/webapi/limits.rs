//! Service protection per user over a sliding window (reference §12.1): number of requests,
//! combined execution time and concurrent requests. A request over a limit gets 429 with
//! `Retry-After` (whole seconds) and the documented error code; every answered request reports
//! the remaining budget in the `x-ms-ratelimit-*` headers. Time comes from the emulator clock
//! (tests advance it instead of sleeping).

use super::error::DvError;
use axum::http::{StatusCode, header};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// The limits, as `--limits requests=6000,window=300,exec-seconds=1200,concurrent=52` sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests per window.
    pub requests: u64,
    /// Window length in seconds.
    pub window_secs: i64,
    /// Combined execution time per window, in milliseconds.
    pub exec_millis: u64,
    /// Requests in flight at once.
    pub concurrent: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self { requests: 6000, window_secs: 300, exec_millis: 1_200_000, concurrent: 52 }
    }
}

impl LimitSettings {
    /// Parses `requests=6000,window=300,exec-seconds=1200,concurrent=52` (any subset; the rest
    /// keep their defaults).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut s = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("'{part}' is not key=value"))?;
            let n: u64 = v.trim().parse().map_err(|_| format!("'{v}' in '{part}' is not a whole number"))?;
            if n == 0 {
                return Err(format!("'{part}': limits must be positive"));
            }
            match k.trim() {
                "requests" => s.requests = n,
                "window" => s.window_secs = i64::try_from(n).map_err(|_| format!("'{part}' is too large"))?,
                "exec-seconds" => s.exec_millis = n.saturating_mul(1000),
                "concurrent" => s.concurrent = u32::try_from(n).map_err(|_| format!("'{part}' is too large"))?,
                other => {
                    return Err(format!("unknown limit '{other}': use requests, window, exec-seconds or concurrent"));
                }
            }
        }
        Ok(s)
    }
}

#[derive(Debug, Default)]
struct UserWindow {
    /// (start in ms since the epoch, execution ms) of requests in the window that ended.
    entries: VecDeque<(i64, u64)>,
    /// Starts (ms since the epoch) of every request in the window, those still running
    /// included: the request limit counts a request when it arrives, as Dataverse does, so
    /// many requests at once cannot exceed it.
    starts: VecDeque<i64>,
    in_flight: u32,
}

/// Per-user sliding windows.
#[derive(Debug, Default)]
pub struct Limits {
    settings: LimitSettings,
    windows: Mutex<HashMap<String, UserWindow>>,
}

/// A request admitted under the limits; dropping it without [`Admission::finish`] still frees
/// its concurrency slot.
pub struct Admission {
    limits: Arc<crate::state::Shared>,
    user: String,
    started_ms: i64,
    done: bool,
}

/// A test of whether the remaining window entries leave room for one more request.
type Enough<'a> = dyn Fn(&[(i64, u64)]) -> bool + 'a;

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

impl Limits {
    /// Limits with these settings.
    pub fn new(settings: LimitSettings) -> Self {
        Self { settings, windows: Mutex::default() }
    }

    /// The settings in force.
    pub fn settings(&self) -> LimitSettings {
        self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserWindow>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slide(&self, w: &mut UserWindow, now_ms: i64) {
        let window_ms = self.settings.window_secs * 1000;
        while w.entries.front().is_some_and(|(t, _)| now_ms - t >= window_ms) {
            w.entries.pop_front();
        }
        while w.starts.front().is_some_and(|t| now_ms - t >= window_ms) {
            w.starts.pop_front();
        }
    }

    /// Checks the limits for a new request of `user` and takes a concurrency slot, or returns
    /// the 429 to answer.
    pub fn admit(state: &Arc<crate::state::Shared>, user: &str) -> Result<Admission, DvError> {
        let me = &state.limits;
        let s = me.settings;
        let now_ms = millis(state.clock.now());
        let mut all = me.lock();
        let w = all.entry(user.to_string()).or_default();
        me.slide(w, now_ms);
        let window_ms = s.window_secs * 1000;
        // Seconds until the oldest entries leave the window and free enough budget.
        // Seconds until enough of the oldest requests leave the window.
        let retry_after = |w: &UserWindow, enough: &Enough<'_>| -> i64 {
            let v: Vec<(i64, u64)> = w.entries.iter().copied().collect();
            let mut k = 0;
            while k < v.len() && !enough(&v[k..]) {
                k += 1;
            }
            let leave_at = if k == 0 { now_ms } else { v[k - 1].0 + window_ms };
            ((leave_at - now_ms + 999) / 1000).max(1)
        };
        if w.in_flight >= s.concurrent {
            return Err(throttled(
                "0x80072326",
                format!("Number of concurrent requests exceeded the limit of {}.", s.concurrent),
                1,
            ));
        }
        if w.starts.len() as u64 >= s.requests {
            // The oldest starts that must leave the window before one more fits.
            let leave = w.starts.len() + 1 - s.requests as usize;
            let leave_at = w.starts.get(leave - 1).map_or(now_ms, |t| t + window_ms);
            let secs = ((leave_at - now_ms + 999) / 1000).max(1);
            return Err(throttled(
                "0x80072322",
                format!(
                    "Number of requests exceeded the limit of {} over time window of {} seconds.",
                    s.requests, s.window_secs
                ),
                secs,
            ));
        }
        let used: u64 = w.entries.iter().map(|(_, ms)| ms).sum();
        if used >= s.exec_millis {
            let secs = retry_after(w, &|e: &[(i64, u64)]| e.iter().map(|(_, ms)| ms).sum::<u64>() < s.exec_millis);
            return Err(throttled(
                "0x80072321",
                format!(
                    "Combined execution time of incoming requests exceeded limit of {} milliseconds over time window of {} seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
                    group(s.exec_millis),
                    s.window_secs
                ),
                secs,
            ));
        }
        w.in_flight += 1;
        w.starts.push_back(now_ms);
        Ok(Admission { limits: state.clone(), user: user.to_string(), started_ms: now_ms, done: false })
    }

    /// Records one request without admission control (identity of the caller known only after
    /// the fact) and returns what remains: (requests, execution milliseconds).
    pub fn record(&self, user: &str, now: OffsetDateTime, elapsed: Duration) -> (u64, u64) {
        let now_ms = millis(now);
        let mut all = self.lock();
        let w = all.entry(user.to_string()).or_default();
        self.slide(w, now_ms);
        w.entries.push_back((now_ms, elapsed.as_millis() as u64));
        w.starts.push_back(now_ms);
        self.remaining(w)
    }

    fn remaining(&self, w: &UserWindow) -> (u64, u64) {
        let used_ms: u64 = w.entries.iter().map(|(_, ms)| ms).sum();
        (
            self.settings.requests.saturating_sub(w.starts.len() as u64),
            self.settings.exec_millis.saturating_sub(used_ms),
        )
    }
}

impl Admission {
    /// Ends the request: frees its slot, records its execution time, and returns the remaining
    /// budget (requests, execution milliseconds) for the response headers.
    pub fn finish(mut self, elapsed: Duration) -> (u64, u64) {
        self.done = true;
        let limits = &self.limits.limits;
        let mut all = limits.lock();
        let w = all.entry(self.user.clone()).or_default();
        w.in_flight = w.in_flight.saturating_sub(1);
        w.entries.push_back((self.started_ms, elapsed.as_millis() as u64));
        let now_ms = millis(self.limits.clock.now());
        limits.slide(w, now_ms);
        limits.remaining(w)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.done {
            let mut all = self.limits.limits.lock();
            if let Some(w) = all.get_mut(&self.user) {
                w.in_flight = w.in_flight.saturating_sub(1);
            }
        }
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn throttled(code: &'static str, message: String, retry_after_secs: i64) -> DvError {
    DvError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        .with_header(header::RETRY_AFTER, retry_after_secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_refuse_nonsense() {
        let s = LimitSettings::parse("requests=10, window=60,exec-seconds=5,concurrent=2").unwrap();
        assert_eq!(s, LimitSettings { requests: 10, window_secs: 60, exec_millis: 5000, concurrent: 2 });
        assert_eq!(LimitSettings::parse("").unwrap(), LimitSettings::default());
        assert!(LimitSettings::parse("requests=0").unwrap_err().contains("positive"));
        assert!(LimitSettings::parse("rps=1").unwrap_err().contains("unknown limit 'rps'"));
        assert!(LimitSettings::parse("requests").unwrap_err().contains("key=value"));
    }

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

    #[test]
    fn thousands() {
        assert_eq!(group(1_200_000), "1,200,000");
        assert_eq!(group(999), "999");
    }
}

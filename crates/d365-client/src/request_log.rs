//! Counting the requests a client sends: totals by method, bytes, retries and throttling
//! pauses, plus an optional hook called once per attempt. Benchmarks and tests read it to
//! prove how many requests an operation took; the CLI reads it for its summary line.
//!
//! Events carry the method, the URL path and query, the status and sizes — never a header,
//! so no token can leak through a hook.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One attempt of one request, as reported to a [`RequestHook`].
#[derive(Debug, Clone)]
pub struct RequestEvent {
    /// HTTP method.
    pub method: String,
    /// Path and query of the URL (no host, no credentials).
    pub path: String,
    /// HTTP status, or `None` when no response arrived (connection failure).
    pub status: Option<u16>,
    /// 1-based attempt number within the request's retry loop.
    pub attempt: u32,
    /// Bytes of the request body.
    pub bytes_sent: u64,
    /// Bytes of the response body read.
    pub bytes_received: u64,
    /// Time from sending to the end of the body.
    pub duration: Duration,
}

/// A function called after every attempt (e.g. to print `--verbose` request lines).
pub type RequestHook = Arc<dyn Fn(&RequestEvent) + Send + Sync>;

/// Counters of one client (shared by its clones).
#[derive(Default)]
pub struct RequestLog {
    get: AtomicU64,
    post: AtomicU64,
    patch: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
    other: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    throttle_wait_ms: AtomicU64,
    /// When the latest throttled response arrived (the retry policy's clock).
    last_throttle: std::sync::Mutex<Option<Instant>>,
    hook: std::sync::RwLock<Option<RequestHook>>,
}

impl fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestLog").field("stats", &self.stats()).finish()
    }
}

/// A snapshot of a [`RequestLog`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// HTTP requests sent (every attempt counts, retries included).
    pub requests: u64,
    /// GET requests.
    pub get: u64,
    /// POST requests.
    pub post: u64,
    /// PATCH requests.
    pub patch: u64,
    /// PUT requests.
    pub put: u64,
    /// DELETE requests.
    pub delete: u64,
    /// Request body bytes sent.
    pub bytes_sent: u64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Attempts that were retries of an earlier attempt.
    pub retries: u64,
    /// Responses that were 429 (or 503 with `Retry-After`).
    pub throttled: u64,
    /// Total time spent waiting because the service asked to (`Retry-After`).
    pub throttle_wait: Duration,
}

impl RequestStats {
    /// The difference `self - earlier` (requests made between two snapshots).
    pub fn since(&self, earlier: &RequestStats) -> RequestStats {
        RequestStats {
            requests: self.requests - earlier.requests,
            get: self.get - earlier.get,
            post: self.post - earlier.post,
            patch: self.patch - earlier.patch,
            put: self.put - earlier.put,
            delete: self.delete - earlier.delete,
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
            retries: self.retries - earlier.retries,
            throttled: self.throttled - earlier.throttled,
            throttle_wait: self.throttle_wait.saturating_sub(earlier.throttle_wait),
        }
    }
}

impl RequestLog {
    /// Installs (or removes) the per-attempt hook.
    pub fn set_hook(&self, hook: Option<RequestHook>) {
        if let Ok(mut h) = self.hook.write() {
            *h = hook;
        }
    }

    /// The counters now.
    pub fn stats(&self) -> RequestStats {
        let get = self.get.load(Ordering::Relaxed);
        let post = self.post.load(Ordering::Relaxed);
        let patch = self.patch.load(Ordering::Relaxed);
        let put = self.put.load(Ordering::Relaxed);
        let delete = self.delete.load(Ordering::Relaxed);
        let other = self.other.load(Ordering::Relaxed);
        RequestStats {
            requests: get + post + patch + put + delete + other,
            get,
            post,
            patch,
            put,
            delete,
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            throttle_wait: Duration::from_millis(self.throttle_wait_ms.load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn record(&self, event: &RequestEvent) {
        let counter = match event.method.as_str() {
            "GET" => &self.get,
            "POST" => &self.post,
            "PATCH" => &self.patch,
            "PUT" => &self.put,
            "DELETE" => &self.delete,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(event.bytes_sent, Ordering::Relaxed);
        self.bytes_received.fetch_add(event.bytes_received, Ordering::Relaxed);
        if event.attempt > 1 {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(
            method = %event.method,
            path = %event.path,
            status = event.status,
            attempt = event.attempt,
            bytes = event.bytes_received,
            ms = u64::try_from(event.duration.as_millis()).unwrap_or(u64::MAX),
            "web api request"
        );
        let hook = self.hook.read().ok().and_then(|h| h.clone());
        if let Some(hook) = hook {
            hook(event);
        }
    }

    /// When the latest throttled response arrived, on the retry policy's clock.
    pub fn last_throttle(&self) -> Option<Instant> {
        *self.last_throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record_throttle(&self, wait: Duration, at: Instant) {
        *self.last_throttle.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
        self.throttled.fetch_add(1, Ordering::Relaxed);
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.throttle_wait_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn counts_by_method_and_calls_the_hook() {
        let log = RequestLog::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        log.set_hook(Some(Arc::new(move |e: &RequestEvent| s2.lock().unwrap().push(e.path.clone()))));
        let ev = |m: &str, attempt| RequestEvent {
            method: m.into(),
            path: "/p".into(),
            status: Some(200),
            attempt,
            bytes_sent: 2,
            bytes_received: 10,
            duration: Duration::ZERO,
        };
        log.record(&ev("GET", 1));
        let before = log.stats();
        log.record(&ev("GET", 2));
        log.record(&ev("POST", 1));
        let s = log.stats();
        assert_eq!((s.requests, s.get, s.post, s.retries, s.bytes_received), (3, 2, 1, 1, 30));
        assert_eq!(s.since(&before).requests, 2);
        assert_eq!(seen.lock().unwrap().len(), 3);
    }
}

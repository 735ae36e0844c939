//! The one retry policy every request goes through (in the spirit of arrow-rs object_store's
//! `client/retry.rs`):
//!
//! - **429**, and **503 with `Retry-After`**: wait exactly what `Retry-After` says (seconds or an
//!   HTTP-date), for every method — a throttled request was not executed. Without the header,
//!   back off exponentially.
//! - **5xx, connection resets, timeouts, truncated or undecodable bodies**: exponential backoff
//!   with full jitter, but only for idempotent requests (GETs, and writes the caller marked
//!   idempotent such as an upsert by key). A non-idempotent write (a create by POST) is never
//!   repeated blindly: the caller gets [`ClientError::WriteOutcomeUnknown`].
//! - **Connection refused / DNS** (nothing was sent): retried for every method.
//! - **401**: the token provider is asked once for a fresh token
//!   ([`TokenProvider::refresh_after_rejection`]) and the request is sent again; a second 401 is
//!   final.
//! - The budget is bounded by a number of retries and a total time; the final error lists
//!   every attempt. A `Retry-After` longer than the remaining budget ends the request at once
//!   with [`ClientError::Throttled`] instead of sleeping in vain.
//!
//! Time is injectable through [`Clock`]: tests use [`ManualClock`], which records the sleeps it
//! is asked for and returns at once, so no test waits for real `Retry-After` seconds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use d365_auth::{AccessToken, TokenProvider};
use rand::Rng;

use crate::error::{Attempt, ClientError, ServiceError};
use crate::request_log::RequestLog;

/// A future returned by [`Clock::sleep`].
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Time as the retry policy sees it. Replace it in tests to avoid real waits.
pub trait Clock: Send + Sync + fmt::Debug {
    /// A monotonic instant (for the retry budget).
    fn now(&self) -> Instant;
    /// Wall-clock time (to turn an HTTP-date `Retry-After` into a duration).
    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }
    /// Waits `d`.
    fn sleep(&self, d: Duration) -> SleepFuture;
}

/// The real clock: `tokio::time` (so `tokio::time::pause` also works in tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, d: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock for tests: `sleep` returns at once, advances the clock by the requested time and
/// records it, so tests can assert the exact waits the policy asked for.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    system_start: SystemTime,
    state: Mutex<(Duration, Vec<Duration>)>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock starting now (its wall-clock time starts at the real time at creation, rounded
    /// down to a whole second as HTTP dates are).
    pub fn new() -> Self {
        let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let system_start = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        Self { start: Instant::now(), system_start, state: Mutex::new((Duration::ZERO, Vec::new())) }
    }

    /// The sleeps requested so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().map(|s| s.1.clone()).unwrap_or_default()
    }

    /// Moves the clock forward without recording a sleep.
    pub fn advance(&self, d: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.0 += d;
        }
    }

    fn offset(&self) -> Duration {
        self.state.lock().map(|s| s.0).unwrap_or_default()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.offset()
    }

    fn system_now(&self) -> SystemTime {
        self.system_start + self.offset()
    }

    fn sleep(&self, d: Duration) -> SleepFuture {
        if let Ok(mut s) = self.state.lock() {
            s.0 += d;
            s.1.push(d);
        }
        Box::pin(std::future::ready(()))
    }
}

/// Limits and backoff of the retry policy.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Retries after the first attempt (the 401 refresh retry is not counted).
    pub max_retries: u32,
    /// Total time from the first attempt after which no retry is started.
    pub max_elapsed: Duration,
    /// Backoff cap of the first retry; doubles per retry.
    pub initial_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
    /// Randomise backoffs in `[0, cap]` ("full jitter"). Off only for deterministic tests.
    pub jitter: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 10,
            max_elapsed: Duration::from_secs(15 * 60),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            jitter: true,
        }
    }
}

impl RetryConfig {
    /// The backoff before retry number `retry` (1-based): up to `initial * 2^(retry-1)`,
    /// capped at `max_backoff`, uniformly jittered in `[0, cap]` when `jitter` is on.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(30));
        let cap = self.initial_backoff.saturating_mul(factor).min(self.max_backoff);
        if self.jitter && !cap.is_zero() {
            let f: f64 = rand::rng().random_range(0.0..=1.0);
            cap.mul_f64(f)
        } else {
            cap
        }
    }
}

/// Parses `Retry-After`: delta-seconds (fractions accepted) or an HTTP-date relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How one attempt ended, as the policy classifies it.
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    /// Done (a success, or an answer the caller turns into an error).
    Done(T),
    /// Not retried (a 4xx, or a definitive 500 answer to a write).
    Fatal(ClientError),
    /// 401: refresh the token once and retry.
    Unauthorized(Box<ServiceError>),
    /// 429, or 503: the service refused the request without executing it. Wait `Retry-After`
    /// (or back off when absent) and retry, whatever the method.
    Throttled(Box<ServiceError>, Option<Duration>),
    /// Nothing was sent (connection refused, DNS): retry whatever the method.
    NotSent(ClientError),
    /// The request may have been executed (5xx, reset, timeout, bad body): retry only when
    /// idempotent. `label` names the failure in the attempt list.
    Failed(ClientError, String),
}

/// The retry policy of one client.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Limits and backoff.
    pub config: RetryConfig,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// When a long wait was last told to the user (shared by the client's clones).
    last_notice: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl RetryPolicy {
    /// The policy of `config`, timed by `clock`.
    pub fn new(config: RetryConfig, clock: Arc<dyn Clock>) -> Self {
        Self { config, clock, last_notice: Arc::default() }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(RetryConfig::default(), Arc::new(TokioClock))
    }
}

/// What the retry loop needs to know about the request it repeats.
pub(crate) struct RequestInfo<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub idempotent: bool,
}

impl RetryPolicy {
    /// Runs `attempt` (given the token to use and the 1-based attempt number) until it
    /// succeeds, fails for good, or the budget runs out.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        info: RequestInfo<'_>,
        tokens: &dyn TokenProvider,
        log: &RequestLog,
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(AccessToken, u32) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        let clock = &self.clock;
        let started = clock.now();
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut retries = 0u32;
        let mut refreshed: Option<AccessToken> = None;
        let mut did_refresh = false;
        let mut number = 0u32;
        let mut lost_attempt = false;
        loop {
            number += 1;
            let token = match refreshed.take() {
                Some(t) => t,
                None => tokens.token().await?,
            };
            let outcome = attempt(token.clone(), number).await;
            let (err, label, wait) = match outcome {
                Outcome::Done(v) => return Ok(v),
                Outcome::Fatal(ClientError::Service(mut s)) => {
                    s.after_lost_attempt = lost_attempt;
                    return Err(ClientError::Service(s));
                }
                Outcome::Fatal(e) => return Err(e),
                Outcome::Unauthorized(service) => {
                    if did_refresh {
                        return Err(ClientError::Unauthorized(service));
                    }
                    did_refresh = true;
                    tracing::debug!(method = info.method, path = info.path, "401: refreshing the token once");
                    refreshed = Some(tokens.refresh_after_rejection(&token).await?);
                    attempts.push(Attempt { number, outcome: "HTTP 401".into(), waited: Duration::ZERO });
                    continue;
                }
                Outcome::Throttled(service, retry_after) => {
                    let label = format!("HTTP {}", service.status);
                    match retry_after {
                        Some(wait) => {
                            let left = self.config.max_elapsed.saturating_sub(clock.now() - started);
                            if wait > left || retries >= self.config.max_retries {
                                if retries >= self.config.max_retries {
                                    attempts.push(Attempt { number, outcome: label, waited: Duration::ZERO });
                                    return Err(self.exhausted(
                                        &info,
                                        attempts,
                                        started,
                                        ClientError::Service(service),
                                    ));
                                }
                                return Err(ClientError::Throttled {
                                    method: info.method.to_string(),
                                    path: info.path.to_string(),
                                    retry_after: wait,
                                    budget_left: left,
                                    attempts: number,
                                    last: service,
                                });
                            }
                            log.record_throttle(wait, clock.now());
                            (ClientError::Service(service), label, Some(wait))
                        }
                        None => (ClientError::Service(service), label, None),
                    }
                }
                Outcome::NotSent(e) => {
                    let label = "connection failed".to_string();
                    (e, label, None)
                }
                Outcome::Failed(e, label) => {
                    if !info.idempotent {
                        return Err(match e {
                            // The write was applied (2xx) but its answer could not be read.
                            ClientError::Decode { .. } => e,
                            other => ClientError::WriteOutcomeUnknown {
                                method: info.method.to_string(),
                                path: info.path.to_string(),
                                cause: other.to_string(),
                            },
                        });
                    }
                    lost_attempt = true;
                    (e, label, None)
                }
            };
            if retries >= self.config.max_retries {
                attempts.push(Attempt { number, outcome: label, waited: Duration::ZERO });
                return Err(self.exhausted(&info, attempts, started, err));
            }
            retries += 1;
            let wait = wait.unwrap_or_else(|| self.config.backoff(retries));
            if clock.now() + wait > started + self.config.max_elapsed {
                attempts.push(Attempt { number, outcome: label, waited: Duration::ZERO });
                return Err(self.exhausted(&info, attempts, started, err));
            }
            tracing::debug!(
                method = info.method,
                path = info.path,
                attempt = number,
                failure = %label,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying"
            );
            if wait >= NOTICE_WAIT {
                self.notice_long_wait(&info, &label, wait, number);
            }
            attempts.push(Attempt { number, outcome: label, waited: wait });
            clock.sleep(wait).await;
        }
    }

    /// Logs a long wait, at most one line every ten seconds per client (a parallel read
    /// throttled on every request would otherwise print one line per request).
    fn notice_long_wait(&self, info: &RequestInfo<'_>, label: &impl fmt::Display, wait: Duration, attempt: u32) {
        let now = self.clock.now();
        let mut last = self.last_notice.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.saturating_duration_since(t) < NOTICE_WAIT) {
            return;
        }
        *last = Some(now);
        tracing::warn!(
            "{label}: waiting {} s before retrying {} {} (attempt {attempt})",
            wait.as_secs(),
            info.method,
            info.path
        );
    }

    fn exhausted(
        &self,
        info: &RequestInfo<'_>,
        attempts: Vec<Attempt>,
        started: Instant,
        last: ClientError,
    ) -> ClientError {
        ClientError::RetriesExhausted {
            method: info.method.to_string(),
            path: info.path.to_string(),
            attempts,
            elapsed: self.clock.now() - started,
            last: Box::new(last),
        }
    }
}

/// A wait before a retry this long is told to the user (a `warn`): a read that seems stuck is
/// waiting out the service's throttling.
const NOTICE_WAIT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("12", now), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            jitter: false,
            ..Default::default()
        };
        let b: Vec<u128> = (1..=6).map(|n| c.backoff(n).as_millis()).collect();
        assert_eq!(b, vec![100, 200, 400, 800, 1000, 1000]);
        let j = RetryConfig { jitter: true, ..c };
        for n in 1..20 {
            assert!(j.backoff(n) <= Duration::from_secs(1));
        }
        assert_eq!(RetryConfig { jitter: false, ..Default::default() }.backoff(1000), Duration::from_secs(60));
    }

    #[test]
    fn manual_clock_records_sleeps() {
        let c = ManualClock::new();
        let t0 = c.now();
        drop(c.sleep(Duration::from_secs(5)));
        c.advance(Duration::from_secs(1));
        assert_eq!(c.sleeps(), vec![Duration::from_secs(5)]);
        assert_eq!(c.now() - t0, Duration::from_secs(6));
    }
}

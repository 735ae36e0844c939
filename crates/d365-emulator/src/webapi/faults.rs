//! Fault injection for resilience tests: `--faults 429=0.02,503=0.01,reset=0.01,truncate=0.005,slow=0.01`
//! with `--fault-seed N`. Each Web API request draws at most one fault from a seeded generator:
//!
//! * `429`: throttled before running (the request did not execute), with `Retry-After`;
//! * `503`: service unavailable before running (the request did not execute);
//! * `slow`: the request runs after an extra delay;
//! * `reset`: the request runs (writes are committed), then the connection is cut mid-body;
//! * `truncate`: the request runs, then only the first half of the body is sent, with framing
//!   that says that is all (a 200 whose JSON is cut off).

use super::error::DvError;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Fault probabilities (each in 0..=1, summing to at most 1).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultSettings {
    /// Injected 429.
    pub throttle: f64,
    /// Injected 503.
    pub unavailable: f64,
    /// Connection reset mid-body.
    pub reset: f64,
    /// Truncated body.
    pub truncate: f64,
    /// Extra delay.
    pub slow: f64,
    /// The delay of a slow request.
    pub slow_delay: Duration,
    /// Generator seed (the same seed and request order give the same faults).
    pub seed: u64,
}

impl FaultSettings {
    /// Parses `429=0.02,503=0.01,reset=0.01,truncate=0.005,slow=0.01`.
    pub fn parse(text: &str, seed: u64) -> Result<Self, String> {
        let mut s = FaultSettings { seed, slow_delay: Duration::from_millis(1500), ..Default::default() };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("'{part}' is not kind=probability"))?;
            let p: f64 = v.trim().parse().map_err(|_| format!("'{v}' in '{part}' is not a number"))?;
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("'{part}': a probability is between 0 and 1"));
            }
            match k.trim() {
                "429" => s.throttle = p,
                "503" => s.unavailable = p,
                "reset" => s.reset = p,
                "truncate" => s.truncate = p,
                "slow" => s.slow = p,
                other => return Err(format!("unknown fault '{other}': use 429, 503, reset, truncate or slow")),
            }
        }
        if s.throttle + s.unavailable + s.reset + s.truncate + s.slow > 1.0 {
            return Err("the fault probabilities add up to more than 1".into());
        }
        Ok(s)
    }
}

/// The fault drawn for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// None.
    None,
    /// 429 before running.
    Throttle,
    /// 503 before running.
    Unavailable,
    /// Delay, then run normally.
    Slow,
    /// Run, then cut the connection mid-body.
    Reset,
    /// Run, then send half the body.
    Truncate,
}

/// The seeded fault generator and counters of what was injected.
#[derive(Debug, Default)]
pub struct Faults {
    settings: FaultSettings,
    state: Mutex<u64>,
    counts: [AtomicU64; 5],
}

impl Faults {
    /// A generator with these settings.
    pub fn new(settings: FaultSettings) -> Self {
        Self { settings, state: Mutex::new(settings.seed ^ 0x9E37_79B9_7F4A_7C15), counts: Default::default() }
    }

    fn uniform(&self) -> f64 {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Draws the fault of the next request.
    pub fn draw(&self) -> Fault {
        let s = &self.settings;
        if s.throttle + s.unavailable + s.reset + s.truncate + s.slow == 0.0 {
            return Fault::None;
        }
        let u = self.uniform();
        let mut edge = 0.0;
        for (i, (p, f)) in [
            (s.throttle, Fault::Throttle),
            (s.unavailable, Fault::Unavailable),
            (s.slow, Fault::Slow),
            (s.reset, Fault::Reset),
            (s.truncate, Fault::Truncate),
        ]
        .into_iter()
        .enumerate()
        {
            edge += p;
            if u < edge {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
                return f;
            }
        }
        Fault::None
    }

    /// How many faults of each kind were injected: (429, 503, slow, reset, truncate).
    pub fn injected(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }

    /// The delay of a slow request.
    pub fn slow_delay(&self) -> Duration {
        self.settings.slow_delay
    }
}

/// The error of a fault injected before the request runs.
pub fn before(fault: Fault) -> Option<DvError> {
    match fault {
        Fault::Throttle => Some(
            DvError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "0x80072322",
                "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            )
            .with_header(header::RETRY_AFTER, "1"),
        ),
        Fault::Unavailable => Some(DvError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "0x80040216",
            "The service is temporarily unavailable. Try again later.",
        )),
        _ => None,
    }
}

/// Applies a fault that happens after the request ran (reset or truncation) to its response.
pub async fn after(resp: Response, fault: Fault) -> Response {
    if !matches!(fault, Fault::Reset | Fault::Truncate) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let half = bytes.slice(..bytes.len() / 2);
    if fault == Fault::Truncate {
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(half.len()));
        return Response::from_parts(parts, Body::from(half));
    }
    // Announce the whole length, send half, then fail the stream: the server cuts the
    // connection and the client sees an incomplete body.
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len().max(1)));
    let stream = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(half),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected connection reset")),
    ]);
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_draw_deterministically() {
        let s = FaultSettings::parse("429=0.1,503=0.1,reset=0.1,truncate=0.1,slow=0.1", 7).unwrap();
        let a = Faults::new(s);
        let b = Faults::new(s);
        let da: Vec<Fault> = (0..1000).map(|_| a.draw()).collect();
        let db: Vec<Fault> = (0..1000).map(|_| b.draw()).collect();
        assert_eq!(da, db);
        let counts = a.injected();
        for c in counts {
            assert!((60..=140).contains(&c), "{counts:?}");
        }
        assert!(FaultSettings::parse("429=2", 0).is_err());
        assert!(FaultSettings::parse("429=0.6,503=0.6", 0).unwrap_err().contains("more than 1"));
        assert!(FaultSettings::parse("boom=0.1", 0).unwrap_err().contains("unknown fault 'boom'"));
        assert_eq!(Faults::default().draw(), Fault::None);
    }
}

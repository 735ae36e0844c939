//! The export benchmark: in one run, sequential `@odata.nextLink` paging and the parallel
//! export of the same rows, side by side with the ceiling the service-protection limits allow.
//!
//! The ceiling is derived from the limits (reference §12.1) and the time one page takes on the
//! server, `t` (measured: the sequential run's mean time per page). With page size `P`:
//!
//! - request count: `requests / window × P` rows/s;
//! - concurrency: `concurrent × P / t` rows/s;
//! - execution time: `exec_seconds / window / t × P` rows/s (the server time one user may use
//!   per second, in pages).
//!
//! The ceiling is the smallest of the three: the rate the limits allow a long export. A run
//! that needs fewer requests and less server time than one window holds can go faster for a
//! while (the window starts empty); the report says so when it happens.

use std::fmt;
use std::time::{Duration, Instant};

use d365_client::{DataverseClient, ScanOptions};
use futures::StreamExt;

use crate::error::SyncError;
use crate::export::{ExportOptions, ExportSummary, export, resolve_reader};

/// Service-protection limits per user (the defaults are the documented ones).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests per window.
    pub requests: u64,
    /// Window in seconds.
    pub window_secs: f64,
    /// Combined execution time per window, in seconds.
    pub exec_secs: f64,
    /// Concurrent requests.
    pub concurrent: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { requests: 6000, window_secs: 300.0, exec_secs: 1200.0, concurrent: 52 }
    }
}

impl Limits {
    /// Parses `requests=6000,window=300,exec-seconds=1200,concurrent=52` (any subset).
    pub fn parse(text: &str) -> Result<Self, SyncError> {
        let mut l = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                SyncError::InvalidArgument(format!(
                    "limit '{part}': use requests=N, window=S, exec-seconds=S or concurrent=N"
                ))
            };
            let (k, v) = part.split_once('=').ok_or_else(bad)?;
            let n: u64 = v.trim().parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            match k.trim() {
                "requests" => l.requests = n,
                "window" => l.window_secs = n as f64,
                "exec-seconds" => l.exec_secs = n as f64,
                "concurrent" => l.concurrent = n,
                _ => return Err(bad()),
            }
        }
        Ok(l)
    }
}

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Table (logical or entity set name).
    pub table: String,
    /// Columns read (empty: all).
    pub select: Vec<String>,
    /// Rows per page.
    pub page_size: u32,
    /// Fixed concurrency of the parallel export (`None`: adaptive).
    pub parallel: Option<usize>,
    /// The server's limits, for the ceiling.
    pub limits: Limits,
    /// Where the export writes (a temporary directory).
    pub work_dir: std::path::PathBuf,
}

/// One measured run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Rows read.
    pub rows: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// HTTP requests.
    pub requests: u64,
    /// CPU time this process used meanwhile (Linux; the emulator's too when it runs in this
    /// process).
    pub cpu: Option<Duration>,
}

/// CPU time used by this process so far (user + system), from `/proc/self/stat`.
fn process_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = s.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    // Fields after the command: state = 0, ..., utime = 11, stime = 12 (clock ticks of 1/100 s).
    Some(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

impl Run {
    /// Rows per second.
    pub fn rate(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The ceiling and its three terms, in rows/s.
#[derive(Debug, Clone, Copy)]
pub struct Ceiling {
    /// `requests / window × page size`.
    pub by_requests: f64,
    /// `concurrent × page size / t`.
    pub by_concurrency: f64,
    /// `exec seconds / window / t × page size`.
    pub by_exec_time: f64,
    /// Server time of one page (`t`).
    pub page_time: Duration,
}

impl Ceiling {
    /// Derives the ceiling from `limits`, page size and page time.
    pub fn derive(limits: &Limits, page_size: u32, page_time: Duration) -> Self {
        let p = f64::from(page_size);
        let t = page_time.as_secs_f64().max(1e-6);
        Self {
            by_requests: limits.requests as f64 / limits.window_secs * p,
            by_concurrency: limits.concurrent as f64 * p / t,
            by_exec_time: limits.exec_secs / limits.window_secs / t * p,
            page_time,
        }
    }

    /// The smallest term.
    pub fn rows_per_second(&self) -> f64 {
        self.by_requests.min(self.by_concurrency).min(self.by_exec_time)
    }
}

/// The benchmark's result.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Entity set read.
    pub entity_set: String,
    /// Options used.
    pub options: BenchOptions,
    /// Sequential nextLink paging.
    pub sequential: Run,
    /// The parallel partitioned scan alone (rows counted, nothing written).
    pub scan: Run,
    /// The parallel export.
    pub parallel: Run,
    /// The export's own summary.
    pub export: ExportSummary,
    /// The ceiling.
    pub ceiling: Ceiling,
}

impl BenchReport {
    /// Parallel over sequential rows/s.
    pub fn speedup(&self) -> f64 {
        self.parallel.rate() / self.sequential.rate().max(1e-9)
    }

    /// Parallel rows/s as a fraction of the ceiling.
    pub fn of_ceiling(&self) -> f64 {
        self.parallel.rate() / self.ceiling.rows_per_second().max(1e-9)
    }
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let l = &o.limits;
        let c = &self.ceiling;
        writeln!(
            f,
            "export benchmark: {} ({} rows), page size {}, columns: {}",
            self.entity_set,
            thousands(self.sequential.rows as f64),
            o.page_size,
            if o.select.is_empty() { "all".to_string() } else { o.select.join(",") }
        )?;
        writeln!(
            f,
            "limits: {} requests / {} s, {} s execution time / {} s, {} concurrent; server time per page t = {} ms",
            l.requests,
            l.window_secs,
            l.exec_secs,
            l.window_secs,
            l.concurrent,
            c.page_time.as_millis()
        )?;
        writeln!(
            f,
            "{:<34} {:>10} {:>9} {:>12} {:>9} {:>10}",
            "", "rows", "seconds", "rows/s", "requests", "CPU cores"
        )?;
        for (label, r) in [
            ("sequential nextLink paging", &self.sequential),
            ("parallel scan (rows only)", &self.scan),
            ("parallel export (ndjson file)", &self.parallel),
        ] {
            let cores = r
                .cpu
                .map_or("-".to_string(), |c| format!("{:.2}", c.as_secs_f64() / r.elapsed.as_secs_f64().max(1e-9)));
            writeln!(
                f,
                "{label:<34} {:>10} {:>9.2} {:>12} {:>9} {:>10}",
                thousands(r.rows as f64),
                r.elapsed.as_secs_f64(),
                thousands(r.rate()),
                r.requests,
                cores
            )?;
        }
        writeln!(f, "{:<34} {:>10} {:>9} {:>12}", "ceiling of the limits", "", "", thousands(c.rows_per_second()))?;
        writeln!(
            f,
            "  = min(requests {} ; concurrency {} ; execution time {}) rows/s",
            thousands(c.by_requests),
            thousands(c.by_concurrency),
            thousands(c.by_exec_time)
        )?;
        writeln!(
            f,
            "parallel export: {:.1}x sequential, {:.0} % of the ceiling (peak concurrency {}, {} partitions, {} throttled)",
            self.speedup(),
            self.of_ceiling() * 100.0,
            self.export.peak_concurrency,
            self.export.partitions,
            self.export.throttled
        )?;
        let pages = self.parallel.requests as f64;
        if pages < l.requests as f64 && pages * c.page_time.as_secs_f64() < l.exec_secs {
            writeln!(
                f,
                "note: this run needed {} requests and ~{:.0} s of server time, within one window's budget, so the \
                 window limits allowed a burst above the sustained ceiling",
                self.parallel.requests,
                pages * c.page_time.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

/// Runs the benchmark: sequential paging, then the parallel export, of the same rows.
pub async fn run(client: &DataverseClient, options: BenchOptions) -> Result<BenchReport, SyncError> {
    // Every run reads the same request: the export's (its columns, with the annotations its
    // label columns need).
    let reader = resolve_reader(client, &options.table, &options.select).await?;
    let (set, pk) = (reader.schema.entity_set.clone(), reader.schema.primary_key.clone());
    let query = reader.query(None, Some(options.page_size));

    let before = client.request_log().stats();
    let cpu0 = process_cpu();
    let started = Instant::now();
    let mut pages = client.page_stream(&query)?;
    let mut rows = 0u64;
    while let Some(page) = pages.next().await {
        rows += page?.rows.len() as u64;
    }
    let sequential = Run {
        rows,
        elapsed: started.elapsed(),
        requests: client.request_log().stats().since(&before).requests,
        cpu: process_cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a)),
    };
    // Sequential paging sends one request at a time: its time per page is the server's time
    // per page plus the transfer.
    let page_time = sequential.elapsed.div_f64(sequential.requests.max(1) as f64);

    // The parallel scan alone: the network side of the export.
    let before = client.request_log().stats();
    let cpu0 = process_cpu();
    let started = Instant::now();
    let mut scan_opts = ScanOptions::new(pk.clone());
    scan_opts.parallel = options.parallel;
    let (plan, _) = crate::export::plan(client, &query, &scan_opts).await?;
    let mut stream = client.partitioned_scan(&query, plan, scan_opts)?;
    let mut scanned = 0u64;
    while let Some(page) = stream.next().await {
        scanned += page?.rows.len() as u64;
    }
    let scan = Run {
        rows: scanned,
        elapsed: started.elapsed(),
        requests: client.request_log().stats().since(&before).requests,
        cpu: process_cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a)),
    };

    let output = options.work_dir.join(format!("{set}.ndjson"));
    let mut export_options = ExportOptions::new(set.clone(), &output);
    export_options.select = options.select.clone();
    export_options.page_size = Some(options.page_size);
    export_options.parallel = options.parallel;
    let cpu0 = process_cpu();
    let summary = export(client, &export_options).await?;
    let cpu = process_cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    let _ = std::fs::remove_file(&output);
    let parallel = Run { rows: summary.rows, elapsed: summary.elapsed, requests: summary.requests, cpu };
    if parallel.rows != sequential.rows {
        return Err(SyncError::InvalidArgument(format!(
            "the table changed during the benchmark: {} rows paged, {} exported",
            sequential.rows, parallel.rows
        )));
    }
    let ceiling = Ceiling::derive(&options.limits, options.page_size, page_time);
    Ok(BenchReport { entity_set: set, options, sequential, scan, parallel, export: summary, ceiling })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_is_the_smallest_limit() {
        let c = Ceiling::derive(&Limits::default(), 5000, Duration::from_millis(200));
        assert_eq!(c.by_requests.round(), 100_000.0);
        assert_eq!(c.by_concurrency.round(), 1_300_000.0);
        assert_eq!(c.by_exec_time.round(), 100_000.0);
        assert_eq!(c.rows_per_second().round(), 100_000.0);
        let l = Limits::parse("requests=100,concurrent=4").unwrap();
        assert_eq!((l.requests, l.concurrent, l.window_secs), (100, 4, 300.0));
        assert!(Limits::parse("rps=3").is_err());
        assert_eq!(thousands(1_234_567.4), "1,234,567");
    }
}

//! Live progress on stderr while a terminal shows it (indicatif): rows, rows/s, partitions
//! done, the concurrency in force, and throttling pauses ("server asked to wait 12 s"). The
//! summary line at the end is the caller's (see [`crate::ExportSummary`]'s `Display`), printed
//! in every case.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use d365_client::{DataverseClient, ScanProgress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether and how to show progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reporter {
    enabled: bool,
}

impl Reporter {
    /// Shows progress when `enabled` (the CLI passes "stderr is a terminal").
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }

    /// Shows nothing.
    pub fn hidden() -> Self {
        Self { enabled: false }
    }

    /// Whether progress is shown.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Shows the progress of a scan until the returned guard is dropped. `base_rows` are rows
    /// done before (a resumed export).
    pub fn track(&self, label: &str, client: &DataverseClient, scan: Arc<ScanProgress>, base_rows: u64) -> Tracker {
        if !self.enabled {
            return Tracker { bar: None, task: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        let b = bar.clone();
        let client = client.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let first = client.request_log().stats();
            let mut last = first;
            let mut note: Option<(String, Instant)> = None;
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let stats = client.request_log().stats();
                if stats.throttled > last.throttled {
                    // The waits of requests throttled since the last tick (they wait side by
                    // side): their mean is what the service asked for.
                    let n = stats.throttled - last.throttled;
                    let wait = stats.throttle_wait.saturating_sub(last.throttle_wait).as_secs_f64() / n as f64;
                    let text = if n == 1 {
                        format!("server asked to wait {} s", wait.ceil() as u64)
                    } else {
                        format!("server asked to wait {} s ({n} requests)", wait.ceil() as u64)
                    };
                    note = Some((text, Instant::now()));
                }
                last = stats;
                let rows = scan.rows.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                let mut msg = format!(
                    "{} rows, {:.0} rows/s, partitions {}/{}, {} in parallel",
                    base_rows + rows,
                    rows as f64 / secs,
                    scan.partitions_done.load(Ordering::Relaxed),
                    scan.partitions.load(Ordering::Relaxed),
                    scan.concurrency.load(Ordering::Relaxed),
                );
                if let Some((text, at)) = &note {
                    if at.elapsed() < Duration::from_secs(5) {
                        msg.push_str(" — ");
                        msg.push_str(text);
                    } else {
                        note = None;
                    }
                }
                b.set_message(msg);
            }
        });
        Tracker { bar: Some(bar), task: Some(task) }
    }
}

/// Stops showing progress when dropped.
#[derive(Debug)]
pub struct Tracker {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

//! d365's log records in Python's `logging`: the events of the Rust crates reach the loggers
//! `d365_core`, `d365_auth`, `d365_client` and `d365_sql` (and their children, e.g.
//! `d365_auth.cache`). Records of other crates (TLS, HTTP, DataFusion) are kept to warnings.
//!
//! Logger levels are read once per logger and cached: after changing the logging configuration,
//! call `d365.refresh_logging()`. The libraries never put a secret or token in a record.

use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3_log::{Caching, Logger, ResetHandle};

static RESET: OnceLock<ResetHandle> = OnceLock::new();

/// The crates whose records go to Python down to DEBUG.
const OURS: [&str; 5] = ["d365_core", "d365_auth", "d365_client", "d365_sql", "_internal"];

/// Installs the bridge (once per process) and adds `refresh_logging` to the module.
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    if RESET.get().is_none() {
        let mut logger = Logger::new(m.py(), Caching::LoggersAndLevels)?.filter(log::LevelFilter::Warn);
        for target in OURS {
            // Debug, not Trace: the max level then lets the TLS and HTTP crates' trace records
            // be dropped by a static check instead of a logger look-up each (2-3 % of a read's
            // CPU in a profile of 200,000 rows).
            logger = logger.filter_target(target.to_string(), log::LevelFilter::Debug);
        }
        // Another extension may have installed a logger already: then ours stays out.
        if let Ok(handle) = logger.install() {
            let _ = RESET.set(handle);
        }
        // tracing's own fallback to `log` stops for good once any code sets a dispatcher, even
        // a scoped one (deltalake does, to carry it into its blocking tasks): a global
        // subscriber of ours turns events into `log` records instead, filtered per crate as
        // above so other crates' debug and trace events are dropped at their call sites.
        let mut targets = tracing_subscriber::filter::Targets::new().with_default(tracing::Level::WARN);
        for target in OURS {
            targets = targets.with_target(target, tracing::Level::DEBUG);
        }
        use tracing_subscriber::layer::SubscriberExt as _;
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(ToLog).with(targets));
    }
    m.add_function(wrap_pyfunction!(refresh_logging, m)?)?;
    Ok(())
}

/// Forget the cached logger levels, after the logging configuration changed.
#[pyfunction]
fn refresh_logging() {
    if let Some(handle) = RESET.get() {
        handle.reset();
    }
}

/// A tracing layer that hands every event to `log` (and so to Python's logging): the message,
/// then the fields as `name=value`, like tracing's own `log` output.
struct ToLog;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ToLog {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::ERROR => log::Level::Error,
            tracing::Level::WARN => log::Level::Warn,
            tracing::Level::INFO => log::Level::Info,
            tracing::Level::DEBUG => log::Level::Debug,
            tracing::Level::TRACE => log::Level::Trace,
        };
        let target = log::Metadata::builder().level(level).target(meta.target()).build();
        if level > log::max_level() || !log::logger().enabled(&target) {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let message = if text.fields.is_empty() { text.message } else { format!("{}{}", text.message, text.fields) };
        log::logger().log(
            &log::Record::builder()
                .metadata(target)
                .args(format_args!("{message}"))
                .module_path(meta.module_path())
                .file(meta.file())
                .line(meta.line())
                .build(),
        );
    }
}

/// An event's message and its other fields.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

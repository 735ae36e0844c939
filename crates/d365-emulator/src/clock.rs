//! Injectable time. Every expiry decision in the emulator (token lifetimes, code and
//! device-code expiry, assertion windows, change-tracking token age) reads this clock, so
//! tests can move time forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// A source of "now". Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Seconds added to the system time; moved by [`Clock::advance`].
    offset_secs: Arc<AtomicI64>,
}

impl Clock {
    /// A clock that follows the system time.
    pub fn system() -> Self {
        Self::default()
    }

    /// The current time, UTC.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.offset_secs.load(Ordering::Relaxed))
    }

    /// The current time as Unix seconds.
    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Moves this clock (and every clone of it) forward by `secs` seconds.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_every_clone() {
        let a = Clock::system();
        let b = a.clone();
        let before = b.unix();
        a.advance(3600);
        assert!(b.unix() - before >= 3600);
    }
}

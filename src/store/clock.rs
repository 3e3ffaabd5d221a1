//! The one clock every time-dependent rule reads: certificate and prerequisite expiry, the
//! pass-key throttle, the timestamps a write records. Tests move it forward instead of sleeping.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use chrono::{DateTime, Duration, Utc};

/// The system clock, plus an offset that only tests move forward. Cloning shares the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    /// The current time, truncated to whole microseconds (both databases then store exactly the
    /// value the code holds, and timestamps compare equal after a round trip), moved by any
    /// [`Clock::advance`].
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        now + Duration::microseconds(self.offset_micros.load(Ordering::Relaxed))
    }

    /// Moves this clock, and every clone of it, forward by `by`.
    pub fn advance(&self, by: Duration) {
        let micros = by.num_microseconds().unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_clone() {
        let clock = Clock::default();
        let other = clock.clone();
        let before = other.now();
        clock.advance(Duration::minutes(16));
        let gap = other.now() - before;
        assert!(
            gap >= Duration::minutes(16) && gap < Duration::minutes(17),
            "{gap}"
        );
    }

    #[test]
    fn readings_are_whole_microseconds() {
        let now = Clock::default().now();
        assert_eq!(now.timestamp_subsec_nanos() % 1_000, 0);
    }
}

//! The time rules that depend on it (the pass-key throttle window) read, so tests can move it.

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
    /// The current time (whole microseconds, as stored), moved by any [`Clock::advance`].
    pub fn now(&self) -> DateTime<Utc> {
        crate::db::now() + Duration::microseconds(self.offset_micros.load(Ordering::Relaxed))
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
}

//! Admission to the write path (docs/design.md#registration-opening, "load that holds"): at
//! most `active` writes hold a connection at once, leaving the rest of the pool to reads, and a
//! bounded number are admitted at all, running or waiting. A write beyond that is refused at
//! once with `UNAVAILABLE` (HTTP 503 with `Retry-After`) rather than queueing into the request
//! timeout; one admitted waits for its turn at most `wait`. A refused write did nothing: the
//! client sends it again.
//!
//! How many are admitted follows from the pace writes are served at: a write admitted behind
//! `n` others waits for about `n / active` turns, each as long as a write lately held its turn.
//! By default as many are admitted as can have their turn within [`QUEUE_WAIT`]; an operator may
//! fix the number instead (`ROSTER_WRITE_QUEUE`).

use std::{
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;

/// The longest a write admitted by default waits for its turn, at the pace measured.
pub const QUEUE_WAIT: Duration = Duration::from_millis(100);

/// Admitted writes per writing connection at most, and before any write was timed.
const MOST_PER_CONNECTION: usize = 32;

/// Who may write now, and how many may wait for it.
#[derive(Debug)]
pub struct Admission {
    active: Semaphore,
    /// Writes holding a connection at once.
    turns: usize,
    /// `Some`: a fixed number admitted; `None`: as [`depth`] says.
    fixed: Option<usize>,
    /// Writes admitted now, running or waiting.
    admitted: AtomicUsize,
    /// How long a write lately held its turn, in microseconds (a moving average; 0 before the
    /// first).
    held_us: AtomicU64,
    wait: Duration,
}

/// A write's admission, held until it ends: its place, its turn, and when the turn began.
#[derive(Debug)]
pub struct Admitted<'a> {
    admission: &'a Admission,
    _turn: SemaphorePermit<'a>,
    since: Instant,
}

impl Admission {
    /// `turns` writes at once (at least one); `fixed` admitted in all (at least `turns`), or
    /// by default as many as can have their turn within [`QUEUE_WAIT`]; each admitted waits at
    /// most `wait` for its turn.
    pub fn new(turns: usize, fixed: Option<usize>, wait: Duration) -> Self {
        let turns = turns.max(1);
        Self {
            active: Semaphore::new(turns),
            turns,
            fixed: fixed.map(|n| n.max(turns)),
            admitted: AtomicUsize::new(0),
            held_us: AtomicU64::new(0),
            wait,
        }
    }

    /// How many writes may be admitted now.
    pub fn limit(&self) -> usize {
        self.fixed.unwrap_or_else(|| {
            let held = self.held_us.load(Ordering::Relaxed);
            depth(self.turns, (held > 0).then(|| Duration::from_micros(held)))
        })
    }

    /// A place among the admitted, then a turn.
    ///
    /// # Errors
    /// `UNAVAILABLE` when as many as [`Admission::limit`] are admitted already, or the turn does
    /// not come within `wait`.
    pub async fn enter(&self) -> Result<Admitted<'_>, ApiError> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.limit() {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            crate::metrics::write_shed("queue_full");
            return Err(ApiError::Overloaded);
        }
        let turn = tokio::time::timeout(self.wait, self.active.acquire())
            .await
            .ok()
            .and_then(Result::ok);
        let Some(turn) = turn else {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            crate::metrics::write_shed("waited_too_long");
            return Err(ApiError::Overloaded);
        };
        Ok(Admitted {
            admission: self,
            _turn: turn,
            since: Instant::now(),
        })
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let held = u64::try_from(self.since.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // An average over the last few dozen writes: each new one counts for an eighth.
        let _ = self
            .admission
            .held_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    held
                } else {
                    old - old / 8 + held / 8
                })
            });
        self.admission.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How many writes to admit with `turns` at once when a write holds its turn for `held`: those
/// running, and behind them as many as can have their turn within [`QUEUE_WAIT`]; at least one
/// waiting per turn, at most [`MOST_PER_CONNECTION`] per turn in all, and that many before any
/// write was timed.
pub fn depth(turns: usize, held: Option<Duration>) -> usize {
    let most = turns * MOST_PER_CONNECTION;
    let Some(held) = held else {
        return most;
    };
    let rounds = QUEUE_WAIT.as_micros() / held.as_micros().max(1);
    let waiting = usize::try_from(rounds)
        .unwrap_or(usize::MAX)
        .saturating_mul(turns);
    turns.saturating_add(waiting.max(turns)).min(most)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_queue_holds_what_is_served_within_the_wait() {
        // 14 turns, 30 ms a write: 3 rounds within 100 ms, so 14 running and 42 waiting.
        assert_eq!(depth(14, Some(Duration::from_millis(30))), 56);
        // Slower writes: one waiting per turn at least.
        assert_eq!(depth(14, Some(Duration::from_millis(500))), 28);
        // Fast writes: no more than 32 per turn.
        assert_eq!(depth(14, Some(Duration::from_micros(200))), 448);
        assert_eq!(depth(14, None), 448);
        assert_eq!(depth(1, Some(Duration::from_millis(10))), 11);
    }

    #[tokio::test]
    async fn slow_writes_shrink_the_queue_and_the_excess_is_refused_at_once() {
        let admission = Arc::new(Admission::new(2, None, Duration::from_secs(5)));
        assert_eq!(admission.limit(), 64, "nothing timed yet");
        // Writes that hold their turn 40 ms: two rounds fit in 100 ms.
        for _ in 0..4 {
            let admitted = admission.enter().await.unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
            drop(admitted);
        }
        let limit = admission.limit();
        assert!((4..=6).contains(&limit), "limit {limit}");
        let held: Vec<_> = (0..limit)
            .map(|_| {
                let admission = admission.clone();
                tokio::spawn(async move {
                    let admitted = admission.enter().await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    admitted.is_ok()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let refused = admission.enter().await;
        assert!(matches!(refused, Err(ApiError::Overloaded)));
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "refused at once"
        );
        for task in held {
            assert!(task.await.unwrap(), "each admitted write got its turn");
        }
        assert_eq!(admission.admitted.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_fixed_queue_ignores_the_pace() {
        let admission = Admission::new(2, Some(3), Duration::from_millis(50));
        assert_eq!(admission.limit(), 3);
        let a = admission.enter().await.unwrap();
        let b = admission.enter().await.unwrap();
        // The third is admitted but finds no turn within the wait.
        assert!(matches!(admission.enter().await, Err(ApiError::Overloaded)));
        drop((a, b));
        assert_eq!(admission.admitted.load(Ordering::Acquire), 0);
    }
}

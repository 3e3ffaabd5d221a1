//! Background work in one shape. A [`Job`] does one round of its work in [`Job::run_once`],
//! which tests call directly; [`spawn`] runs the rounds in `roster serve`: at once (which is
//! what catches up after a restart), then again when the job is woken or its period has passed,
//! or straight away when a round says there is more, until the shutdown.
//!
//! The jobs: the change feed's reader and its pruning (`store::feed`), the delivery worker
//! (`delivery`), passing on expired offers and reminding offers about to lapse, and reminding
//! holders of certifications about to expire (`service::{offers, notifications}`). Each job is
//! safe to run on every replica at once: its writes lease, lock or claim what they handle.

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Things handled (0 when there was nothing to do).
    pub handled: usize,
    /// Work is left that this round had no room for: run again at once.
    pub more: bool,
}

impl From<usize> for Round {
    fn from(handled: usize) -> Self {
        Self {
            handled,
            more: false,
        }
    }
}

/// A piece of background work.
#[async_trait::async_trait]
pub trait Job: Send + 'static {
    /// Its name in logs.
    fn name(&self) -> &'static str;

    /// How long to wait between rounds when nothing wakes it.
    fn every(&self) -> Duration;

    /// What wakes it before its period is over, if anything.
    fn wake(&self) -> Option<Arc<Notify>> {
        None
    }

    /// The least time between the starts of two rounds: wake-ups that come sooner are served
    /// together by the next round, so a job woken by every commit runs at most so often
    /// however busy the database is. None by default.
    fn min_interval(&self) -> Duration {
        Duration::ZERO
    }

    /// One round of work.
    ///
    /// # Errors
    /// What failed; the next round runs as planned.
    async fn run_once(&mut self) -> anyhow::Result<Round>;
}

/// Runs `job` until `shutdown` turns true (or the task is aborted).
pub fn spawn<J: Job>(mut job: J, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let wake = job.wake();
        loop {
            let started = tokio::time::Instant::now();
            match job.run_once().await {
                Ok(round) if round.more => continue,
                Ok(round) if round.handled > 0 => {
                    tracing::debug!(job = job.name(), handled = round.handled, "job round");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(job = job.name(), error = %err, "job round failed"),
            }
            let next = started + job.min_interval();
            let woken = async {
                tokio::time::sleep_until(next).await;
                match &wake {
                    Some(wake) => wake.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(job.every()) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    })
}

//! Change notices for live subscriptions, delivered only after the transaction that made the
//! change has committed (docs/architecture.md#the-change-feed).
//!
//! Every enrollment event, and every section change that moves seats, produces a [`Notice`].
//! Subscriptions never trust a notice's data for what they send: they re-read the committed rows,
//! so a notice only has to say *what* changed.
//!
//! - **PostgreSQL** (any number of replicas): the writing transaction inserts each notice as a
//!   row of `changes`, with the transaction's id. Each replica's [`Feed`] reads the rows
//!   committed since its last read, in commit order, and fans them out to its local
//!   subscribers through its [`Bus`]. It reads when its own replica commits a change, when
//!   another replica's wake-up arrives (a `NOTIFY` sent after the commit, on a connection of its
//!   own, never inside a writing transaction: PostgreSQL serializes the commits of notifying
//!   transactions behind one database-wide lock), and every [`POLL_EVERY`] in any case, which
//!   is what delivers the change of a replica that died between its commit and its wake-up.
//! - **SQLite** (one process): the store hands the notices of a write to the bus right after its
//!   `COMMIT`; a write that rolled back, or an attempt that is retried, hands over nothing.
//!
//! Either way notices are collected by the write's [`crate::store::Tx`], never by the caller.
//!
//! The bus is a bounded broadcast channel: sending never waits, so a slow subscriber cannot
//! delay a mutation or other subscribers; a subscriber that falls more than [`BUS_CAPACITY`]
//! notices behind is told so and its subscription ends (see `graphql::subscription`).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use entity::{enrollment_event, section, types::EnrollmentStatus};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, Statement,
    sqlx::{
        Connection, Executor,
        postgres::{PgConnection, PgListener},
    },
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OnceCell, broadcast, watch};
use uuid::Uuid;

/// The PostgreSQL channel on which replicas wake each other after a commit.
pub const CHANNEL: &str = "roster_changes";

/// The wake-up a replica sends the others after a commit that recorded changes.
const WAKE_UP: &str = "NOTIFY roster_changes";

/// How often a replica reads the change feed when nothing woke it.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// The least time between two reads of the change feed, and between two wake-ups a replica
/// sends: under a stream of commits a replica reads (and wakes the others) at most a hundred
/// times a second, each read taking every change committed since the last one, instead of a
/// read and a `NOTIFY` per commit.
pub const COALESCE: Duration = Duration::from_millis(10);

/// How long a change row is kept: far longer than any write transaction may stay open, so a
/// row is never pruned before every running replica could read it.
pub const KEEP_CHANGES: Duration = Duration::from_secs(15 * 60);

/// Notices a subscriber may fall behind before it is told and disconnected.
pub const BUS_CAPACITY: usize = 1024;

/// What changed, as far as subscribers care.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Sections whose seat counts may have changed.
    pub sections: Vec<Uuid>,
    /// The course those sections belong to.
    pub course_id: Uuid,
    /// The enrollment event, when the change was one.
    pub event: Option<EventRef>,
    /// This replica's publication number, given by [`Bus::publish`].
    #[serde(skip)]
    pub seq: u64,
    /// Changes may have been missed (the listener reconnected): every subscription re-reads.
    #[serde(default)]
    pub resync: bool,
    /// Users who were sent a notification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notified: Vec<Uuid>,
}

impl Notice {
    /// The notice of an enrollment event, for the enrollment's user, course and the sections it
    /// moved seats in.
    pub fn of_event(
        event: &enrollment_event::Model,
        user_id: Uuid,
        course_id: Uuid,
        sections: Vec<Uuid>,
    ) -> Self {
        Self {
            sections,
            course_id,
            event: Some(EventRef {
                id: event.id,
                enrollment_id: event.enrollment_id,
                user_id,
                from: event.from_status,
                to: event.to_status,
            }),
            seq: 0,
            resync: false,
            notified: Vec::new(),
        }
    }

    /// The notice that `user_id` was sent a notification.
    pub fn of_notification(user_id: Uuid) -> Self {
        Self {
            sections: Vec::new(),
            course_id: Uuid::nil(),
            event: None,
            seq: 0,
            resync: false,
            notified: vec![user_id],
        }
    }

    /// The notice of a change to a section that is not an enrollment's status change: its
    /// capacity or activity, which `sectionSeats` subscribers see.
    pub fn of_section(section_id: Uuid, course_id: Uuid) -> Self {
        Self {
            sections: vec![section_id],
            course_id,
            event: None,
            seq: 0,
            resync: false,
            notified: Vec::new(),
        }
    }

    pub(crate) fn resync() -> Self {
        Self {
            sections: Vec::new(),
            course_id: Uuid::nil(),
            event: None,
            seq: 0,
            resync: true,
            notified: Vec::new(),
        }
    }
}

/// Enough of an enrollment event to route it; subscribers load the row itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    pub id: i64,
    pub enrollment_id: Uuid,
    pub user_id: Uuid,
    pub from: Option<EnrollmentStatus>,
    pub to: EnrollmentStatus,
}

/// A section row read once after a given notice, shared by every subscriber that needs it.
type SharedRead = Arc<OnceCell<Option<section::Model>>>;

/// One replica's fan-out of notices to its subscribers, with the count of live subscriptions.
#[derive(Clone)]
pub struct Bus {
    sender: broadcast::Sender<Arc<Notice>>,
    active: Arc<AtomicI64>,
    published: Arc<AtomicU64>,
    section_reads: Arc<Mutex<HashMap<Uuid, (u64, SharedRead)>>>,
    /// How far the change feed's reader has got (PostgreSQL), for [`Bus::settle`].
    progress: Arc<Progress>,
}

/// The feed reader's reads: how many began, the last that ended, and what wakes the reader.
#[derive(Default)]
struct Progress {
    started: AtomicU64,
    completed: watch::Sender<u64>,
    wake: Mutex<Option<Arc<Notify>>>,
}

impl Progress {
    /// What wakes the reader, once a reader runs.
    fn wake(&self) -> Option<Arc<Notify>> {
        self.wake
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Default for Bus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUS_CAPACITY).0,
            active: Arc::default(),
            published: Arc::default(),
            section_reads: Arc::default(),
            progress: Arc::default(),
        }
    }
}

impl Bus {
    /// Resolves once the change feed has published every change committed before the call
    /// (a read that began after it has ended), or after two seconds; at once where no feed
    /// runs (SQLite publishes at commit). Changes reach the bus a few milliseconds after their
    /// commit on PostgreSQL: a caller that must not hear of changes it made before, such as a
    /// test that subscribes after setting things up, settles first.
    pub async fn settle(&self) {
        let Some(wake) = self.progress.wake() else {
            return;
        };
        let target = self.progress.started.load(Ordering::SeqCst) + 1;
        let mut completed = self.progress.completed.subscribe();
        wake.notify_one();
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            completed.wait_for(|done| *done >= target),
        )
        .await;
    }

    /// Hands a committed change to every current subscriber; never waits.
    pub fn publish(&self, mut notice: Notice) {
        notice.seq = self.published.fetch_add(1, Ordering::Relaxed) + 1;
        // An error only means nobody is subscribed right now.
        let _ = self.sender.send(Arc::new(notice));
    }

    /// The section's row as committed after notice `seq`: read from the database by the first
    /// subscriber that asks, and shared with every other one, so a change costs one read
    /// however many watch the section. A read made after a later notice serves too.
    ///
    /// # Errors
    /// The database fails.
    pub async fn section_after(
        &self,
        db: &DatabaseConnection,
        section_id: Uuid,
        seq: u64,
    ) -> Result<Option<section::Model>, DbErr> {
        let read = {
            let mut reads = self
                .section_reads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = reads
                .entry(section_id)
                .or_insert_with(|| (seq, SharedRead::default()));
            if entry.0 < seq {
                *entry = (seq, SharedRead::default());
            }
            entry.1.clone()
        };
        read.get_or_try_init(|| section::Entity::find_by_id(section_id).one(db))
            .await
            .cloned()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notice>> {
        self.sender.subscribe()
    }

    /// Counts a subscription as active until the returned guard is dropped.
    pub fn track(&self) -> ActiveSubscription {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveSubscription {
            active: self.active.clone(),
        }
    }

    /// Subscriptions being served right now.
    pub fn active_subscriptions(&self) -> i64 {
        self.active.load(Ordering::Relaxed)
    }
}

/// Held by a running subscription; dropping it (the client left or the stream ended) lowers the
/// count.
pub struct ActiveSubscription {
    active: Arc<AtomicI64>,
}

impl Drop for ActiveSubscription {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What wakes this replica's feed reader and its neighbours: a commit of this replica that
/// recorded changes signals both. Cheap to clone.
#[derive(Clone, Default)]
pub struct Wakeups {
    /// Wakes this replica's [`Feed`].
    reader: Arc<Notify>,
    /// Wakes the task that sends the other replicas a `NOTIFY` (see [`spawn_feed`]).
    others: Arc<Notify>,
}

impl Wakeups {
    /// Says that changes were committed: read them, and tell the other replicas.
    pub fn committed(&self) {
        self.reader.notify_one();
        self.others.notify_one();
    }
}

/// PostgreSQL: one replica's reader of the `changes` table. Each read publishes, oldest first,
/// the rows whose transactions committed after the previous read's snapshot was taken and
/// before its own: rows with an `xid` at or above the previous snapshot's `xmin` that the
/// previous snapshot did not see (its transaction was running or had not begun), and that this
/// one sees. Ids are assigned before commit, so "every row after the last id read" would miss
/// a row whose transaction committed after a higher id had become visible; the snapshots do
/// not. Between two reads the batches follow commit order, and within a batch the ids do for
/// any one section, since a write inserts its change rows after it has locked the section.
pub struct Feed {
    db: DatabaseConnection,
    bus: Bus,
    /// The snapshot of the last read (`pg_snapshot` as text); `None` before the first.
    seen: Option<String>,
    /// The last read failed: changes may have been pruned meanwhile, so the next good read
    /// also tells every subscription to re-read.
    failed: bool,
}

impl Feed {
    pub fn new(db: DatabaseConnection, bus: Bus) -> Self {
        Self {
            db,
            bus,
            seen: None,
            failed: false,
        }
    }

    /// The feed, run as a job, woken by `wake` (and by [`Bus::settle`]).
    #[must_use]
    pub fn woken_by(self, wake: Arc<Notify>) -> Self {
        *self
            .bus
            .progress
            .wake
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(wake);
        self
    }

    /// Publishes the changes committed since the last read; returns how many. The first read
    /// only takes its snapshot: changes committed before the replica started concern nobody.
    ///
    /// # Errors
    /// The database fails (the next read starts from the same snapshot).
    pub async fn run_once(&mut self) -> Result<usize, DbErr> {
        let progress = self.bus.progress.clone();
        let this_read = progress.started.fetch_add(1, Ordering::SeqCst) + 1;
        let result = self.read().await;
        progress.completed.send_if_modified(|done| {
            let later = this_read > *done;
            if later {
                *done = this_read;
            }
            later
        });
        match &result {
            Ok(_) if self.failed => {
                self.failed = false;
                self.bus.publish(Notice::resync());
            }
            Ok(_) => {}
            Err(_) => self.failed = true,
        }
        result
    }

    async fn read(&mut self) -> Result<usize, DbErr> {
        let Some(seen) = self.seen.clone() else {
            let row = self
                .db
                .query_one_raw(Statement::from_string(
                    DatabaseBackend::Postgres,
                    "SELECT CAST(pg_current_snapshot() AS TEXT)",
                ))
                .await?
                .ok_or_else(|| DbErr::Custom("no snapshot".into()))?;
            self.seen = Some(row.try_get_by_index(0)?);
            return Ok(0);
        };
        // One statement, so one snapshot for the rows and for the snapshot returned.
        const READ: &str = "SELECT CAST(pg_current_snapshot() AS TEXT), \
            (SELECT '[' || COALESCE(string_agg(c.notice, ',' ORDER BY c.id), '') || ']' \
             FROM changes c WHERE c.xid >= pg_snapshot_xmin(CAST($1 AS pg_snapshot)) \
             AND NOT pg_visible_in_snapshot(c.xid, CAST($1 AS pg_snapshot)))";
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                READ,
                [seen.into()],
            ))
            .await?
            .ok_or_else(|| DbErr::Custom("no snapshot".into()))?;
        let snapshot: String = row.try_get_by_index(0)?;
        let notices: String = row.try_get_by_index(1)?;
        let notices: Vec<serde_json::Value> =
            serde_json::from_str(&notices).map_err(|e| DbErr::Json(e.to_string()))?;
        let count = notices.len();
        for notice in notices {
            match serde_json::from_value::<Notice>(notice) {
                Ok(notice) => self.bus.publish(notice),
                Err(e) => tracing::warn!(error = %e, "unreadable change row"),
            }
        }
        self.seen = Some(snapshot);
        Ok(count)
    }
}

/// PostgreSQL: deletes the change rows older than [`KEEP_CHANGES`]; returns how many.
///
/// # Errors
/// The database fails.
pub async fn prune(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "DELETE FROM changes WHERE at < clock_timestamp() - CAST($1 AS INTERVAL)",
            [format!("{} seconds", KEEP_CHANGES.as_secs()).into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

#[async_trait::async_trait]
impl crate::jobs::Job for Feed {
    fn name(&self) -> &'static str {
        "change feed"
    }

    fn every(&self) -> Duration {
        POLL_EVERY
    }

    fn wake(&self) -> Option<Arc<Notify>> {
        self.bus.progress.wake()
    }

    fn min_interval(&self) -> Duration {
        COALESCE
    }

    async fn run_once(&mut self) -> anyhow::Result<crate::jobs::Round> {
        Ok(Feed::run_once(self).await?.into())
    }
}

/// PostgreSQL: prunes the change feed every minute (see [`prune`]).
pub struct Prune(pub DatabaseConnection);

#[async_trait::async_trait]
impl crate::jobs::Job for Prune {
    fn name(&self) -> &'static str {
        "change feed pruning"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(60)
    }

    async fn run_once(&mut self) -> anyhow::Result<crate::jobs::Round> {
        let pruned = prune(&self.0).await?;
        Ok(usize::try_from(pruned).unwrap_or(usize::MAX).into())
    }
}

/// Starts a replica's change feed on PostgreSQL and returns its tasks once it reads and
/// listens: the reader ([`Feed`], a [`crate::jobs::Job`] woken by `wakeups`, by the other
/// replicas' `NOTIFY` and every [`POLL_EVERY`]), its pruning ([`Prune`]), the listener for
/// those `NOTIFY`s (one dedicated connection, reconnecting after a pause when it drops), and
/// the sender of this replica's own wake-ups (another dedicated connection with
/// `synchronous_commit` off: a wake-up needs no durability, and its commit then holds
/// PostgreSQL's notify lock for no disk flush). Wake-ups asked for while one is being sent are
/// sent as one, after it.
///
/// # Errors
/// The feed's first snapshot cannot be read, or nothing listens within 10 s.
pub async fn start_feed(
    url: &str,
    db: &DatabaseConnection,
    bus: &Bus,
    wakeups: &Wakeups,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut feed = Feed::new(db.clone(), bus.clone()).woken_by(wakeups.reader.clone());
    feed.run_once().await?;
    let (listening, mut is_listening) = watch::channel(false);
    let listener = {
        let (url, wake) = (url.to_owned(), wakeups.reader.clone());
        tokio::spawn(async move {
            loop {
                match listen(&url).await {
                    Ok(mut listener) => {
                        listening.send_replace(true);
                        // Whatever was committed while nobody listened.
                        wake.notify_one();
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(_)) => wake.notify_one(),
                                Ok(None) => {
                                    tracing::warn!("the change listener lost its connection");
                                    break;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "the change listener failed");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot listen for changes; retrying"),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let sender = {
        let (url, wake) = (url.to_owned(), wakeups.others.clone());
        tokio::spawn(async move {
            let mut connection: Option<PgConnection> = None;
            loop {
                wake.notified().await;
                if connection.is_none() {
                    connection = wake_up_connection(&url)
                        .await
                        .inspect_err(|e| tracing::warn!(error = %e, "cannot send wake-ups"))
                        .ok();
                }
                if let Some(conn) = connection.as_mut()
                    && let Err(e) = conn.execute(WAKE_UP).await
                {
                    tracing::warn!(error = %e, "a wake-up was not sent");
                    connection = None;
                }
                tokio::time::sleep(COALESCE).await;
            }
        })
    };
    let tasks = vec![
        listener,
        sender,
        crate::jobs::spawn(feed, shutdown.clone()),
        crate::jobs::spawn(Prune(db.clone()), shutdown.clone()),
    ];
    if tokio::time::timeout(Duration::from_secs(10), is_listening.wait_for(|l| *l))
        .await
        .is_err()
    {
        for task in &tasks {
            task.abort();
        }
        anyhow::bail!("could not LISTEN for changes within 10 s");
    }
    Ok(tasks)
}

async fn wake_up_connection(url: &str) -> Result<PgConnection, sea_orm::sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    conn.execute("SET synchronous_commit = off").await?;
    Ok(conn)
}

async fn listen(url: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

//! What every use case runs on — the database, the clock and the change bus — and the one way to
//! write: [`Store::write`] (docs/architecture.md#the-write-path).
//!
//! A write is a closure that receives a [`Tx`]. The store begins the transaction the backend
//! needs, runs the closure, runs the whole attempt again when the database reports a lost race,
//! and publishes what the closure recorded only once the transaction has committed. A use case
//! therefore holds only its rule: it cannot forget to retry, to write the audit event, or to
//! announce a change, and it cannot announce a change that rolled back.

pub mod admission;
pub mod clock;
pub mod db;
pub mod feed;

pub use admission::Admission;

use std::{
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use chrono::{DateTime, Utc};
use entity::{
    enrollment_event,
    positional::{ByPosition, Positional},
    types::EnrollmentStatus,
};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, ExecResult, QueryResult, QueryTrait, Select, Set,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use uuid::Uuid;

use crate::{
    domain::{
        calendar::CalendarLinks,
        notification::{Channels, PushRules},
    },
    error::ApiError,
    store::{
        clock::Clock,
        feed::{Bus, Notice, Wakeups},
    },
};

/// How many times a write that lost a race (deadlock, serialization failure, SQLite busy) is
/// attempted before the error is reported.
const ATTEMPTS: usize = 3;

/// The future a write's closure returns for one attempt.
pub type Attempt<'t, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 't>>;

/// The database, the clock and the bus of one process. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    clock: Clock,
    bus: Bus,
    /// Whether this process publishes its own committed changes to `bus` (SQLite, one
    /// process) rather than reading them back from the change feed, as every replica on
    /// PostgreSQL does.
    publishes_locally: bool,
    /// PostgreSQL: what a commit that recorded changes wakes (the feed readers).
    wakeups: Wakeups,
    /// The channels notifications are delivered on beyond the inbox.
    channels: Channels,
    /// The Web Push key and rules, when push is on.
    push: Option<PushRules>,
    /// Wakes this process's delivery worker when a write queued deliveries.
    outbox: Arc<tokio::sync::Notify>,
    /// On SQLite, this process's writers take turns here, first come first served, before
    /// `BEGIN IMMEDIATE`: SQLite's busy handler would otherwise have them poll for the write
    /// lock with growing sleeps, so that a writer could wait hundreds of milliseconds behind
    /// writes of a few milliseconds, and a steady stream of requests could starve the delivery
    /// worker. Other processes (a `roster` command) still meet the busy timeout.
    writers: Option<Arc<tokio::sync::Mutex<()>>>,
    /// The key and address of calendar feed URLs (docs/design.md#time).
    calendar: Arc<CalendarLinks>,
    /// Who may write now, and how many may queue for it (see [`Admission`]).
    admission: Option<Arc<Admission>>,
}

impl Store {
    pub fn new(db: DatabaseConnection, clock: Clock, bus: Bus) -> Self {
        let publishes_locally = db.get_database_backend() != DatabaseBackend::Postgres;
        let sqlite = db.get_database_backend() == DatabaseBackend::Sqlite;
        Self {
            db,
            clock,
            bus,
            publishes_locally,
            wakeups: Wakeups::default(),
            channels: Channels::default(),
            push: None,
            outbox: Arc::default(),
            writers: sqlite.then(Arc::default),
            calendar: Arc::default(),
            admission: None,
        }
    }

    /// Writes admitted as `admission` says (none: every write waits for a connection).
    #[must_use]
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = Some(Arc::new(admission));
        self
    }

    /// Calendar feed URLs made with this key and address.
    #[must_use]
    pub fn with_calendar(mut self, links: CalendarLinks) -> Self {
        self.calendar = Arc::new(links);
        self
    }

    /// The key and address of calendar feed URLs.
    pub fn calendar(&self) -> &CalendarLinks {
        &self.calendar
    }

    /// The store writing notifications for delivery on `channels` as well as to the inbox,
    /// with `push`'s rules for Web Push subscriptions (see `crate::delivery`).
    #[must_use]
    pub fn with_delivery(mut self, channels: Channels, push: Option<PushRules>) -> Self {
        self.channels = channels;
        self.push = push;
        self
    }

    /// The Web Push key and rules, when push is on.
    pub fn push(&self) -> Option<&PushRules> {
        self.push.as_ref()
    }

    pub fn channels(&self) -> Channels {
        self.channels
    }

    /// Notified after a commit that queued deliveries (see [`crate::delivery`]).
    pub fn outbox(&self) -> &Arc<tokio::sync::Notify> {
        &self.outbox
    }

    /// The connection pool, for reads.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Where committed changes reach this process's subscriptions.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// What a commit that recorded changes wakes (see [`crate::store::feed::spawn_feed`]).
    pub fn wakeups(&self) -> &Wakeups {
        &self.wakeups
    }

    /// The clock's current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Runs `attempt` as one write transaction and returns what it returned.
    ///
    /// The transaction is `BEGIN IMMEDIATE` on SQLite, so two writers that read before they
    /// write cannot deadlock on the lock upgrade, and a plain `BEGIN` on PostgreSQL, where row
    /// locks and conditional updates do the rest. When the database reports a retryable
    /// conflict the attempt is rolled back and run again from the start, up to [`ATTEMPTS`]
    /// times; each attempt is a whole transaction, so a retry never sees half of an earlier
    /// one. The notices the attempt recorded are delivered only after its commit: on
    /// PostgreSQL they are rows of the change feed, written in the transaction and read back by
    /// every replica once it committed (this one is woken at once, the others by a `NOTIFY`
    /// sent after the commit); on SQLite they go to the in-process bus right after `COMMIT`. A
    /// failed attempt delivers nothing.
    ///
    /// Call it as `store.write(|tx| Box::pin(async move { … })).await`.
    ///
    /// # Errors
    /// What the attempt returned, or `INTERNAL` when the database fails.
    pub async fn write<'c, T, F>(&self, mut attempt: F) -> Result<T, ApiError>
    where
        F: for<'t> FnMut(&'t Tx<'c>) -> Attempt<'t, T> + Send,
        T: Send,
    {
        let _admitted = match &self.admission {
            Some(admission) => Some(admission.enter().await?),
            None => None,
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let result = async {
                let _turn = match &self.writers {
                    Some(writers) => Some(writers.lock().await),
                    None => None,
                };
                let tx = Tx::begin(&self.db, self.clock.clone(), self.channels).await?;
                let value = attempt(&tx).await?;
                let queued = tx.queued.load(Ordering::Relaxed);
                let notices = tx.commit().await?;
                Ok::<_, ApiError>((value, notices, queued))
            }
            .await;
            match result {
                Ok((value, notices, queued)) => {
                    self.delivered(notices);
                    if queued {
                        self.outbox.notify_one();
                    }
                    return Ok(value);
                }
                Err(err) if tries < ATTEMPTS && err.is_retryable() => {
                    tracing::debug!(error = ?err, tries, "retrying a write that lost a race");
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// A committed write's notices: counted, and published here when this process is the one
    /// that publishes; otherwise the feed readers are woken.
    fn delivered(&self, notices: Vec<Notice>) {
        if !self.publishes_locally && !notices.is_empty() {
            self.wakeups.committed();
        }
        for notice in notices {
            if let Some(event) = &notice.event {
                crate::metrics::record_transition(
                    event.from.map(|s| s.to_value()).as_deref(),
                    &event.to.to_value(),
                );
            }
            if self.publishes_locally {
                self.bus.publish(notice);
            }
        }
    }
}

/// One attempt of a write: a transaction, the clock, and the notices recorded so far.
///
/// `Tx` is itself a connection: queries take `tx` as they would take a pool. The lifetime
/// `'c` only ties the closure's borrows to the call of [`Store::write`].
pub struct Tx<'c> {
    txn: DatabaseTransaction,
    clock: Clock,
    channels: Channels,
    /// With whether each was written to the change feed already (PostgreSQL).
    notices: Mutex<Vec<(Notice, bool)>>,
    /// Whether the write queued deliveries, so the worker is woken after commit.
    queued: AtomicBool,
    _borrows: PhantomData<&'c ()>,
}

impl Tx<'_> {
    async fn begin(
        db: &DatabaseConnection,
        clock: Clock,
        channels: Channels,
    ) -> Result<Self, DbErr> {
        let mut options = TransactionOptions::default();
        if db.get_database_backend() == DatabaseBackend::Sqlite {
            options.sqlite_transaction_mode = Some(SqliteTransactionMode::Immediate);
        }
        Ok(Self {
            txn: db.begin_with_options(options).await?,
            clock,
            channels,
            notices: Mutex::default(),
            queued: AtomicBool::new(false),
            _borrows: PhantomData,
        })
    }

    /// The channels a notification written in this transaction is delivered on.
    pub fn channels(&self) -> Channels {
        self.channels
    }

    /// Says that this write queued deliveries: the worker is woken once it commits.
    pub fn queue_delivery(&self) {
        self.queued.store(true, Ordering::Relaxed);
    }

    /// The clock's current time. Read it after the locks a change needs are held, so that the
    /// order of events and the order of their times agree (invariant 6).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Writes the audit event of one status change in this transaction (invariant 6) and queues
    /// its notice for delivery after commit. Services record a status change through
    /// `service::record`, which writes the student's notification first. On PostgreSQL the event and its change row
    /// are one statement (see [`Tx::insert_announced`]).
    ///
    /// # Errors
    /// The database fails.
    pub async fn record(&self, transition: Transition) -> Result<(), ApiError> {
        let row = transition.event();
        if self.get_database_backend() == DatabaseBackend::Postgres {
            return self.insert_announced(row, transition).await;
        }
        let event = row.insert(&self.txn).await?;
        self.announce_event(&event, transition);
        Ok(())
    }

    /// Queues the notice of `event`, the event of `transition`.
    fn announce_event(&self, event: &enrollment_event::Model, transition: Transition) {
        self.announce(Notice::of_event(
            event,
            transition.user_id,
            transition.course_id,
            transition.sections,
        ));
    }

    /// [`Tx::record`] for many status changes at once (the lottery's draw): the events in one
    /// statement, their change rows (PostgreSQL) in the one statement the commit writes.
    ///
    /// # Errors
    /// The database fails.
    pub async fn record_many(&self, transitions: Vec<Transition>) -> Result<(), ApiError> {
        if transitions.is_empty() {
            return Ok(());
        }
        let events =
            enrollment_event::Entity::insert_many(transitions.iter().map(Transition::event))
                .exec_with_returning(&self.txn)
                .await?;
        // Matched by enrollment (one change each here), not by the order rows come back in.
        let mut events: std::collections::HashMap<Uuid, enrollment_event::Model> = events
            .into_iter()
            .map(|event| (event.enrollment_id, event))
            .collect();
        for transition in transitions {
            let event = events.remove(&transition.enrollment_id).ok_or_else(|| {
                ApiError::Internal("an event was not written, or two for one enrollment".into())
            })?;
            self.announce_event(&event, transition);
        }
        Ok(())
    }

    /// PostgreSQL: inserts the event and its change row (see [`crate::store::feed::Feed`]) in one
    /// statement. The notice names the event's key, which the insert assigns: the row's text is
    /// the JSON before and after the key, joined around it in SQL. The notice kept here is only
    /// counted; subscribers get the one the feed reads back, key included.
    async fn insert_announced(
        &self,
        row: enrollment_event::ActiveModel,
        transition: Transition,
    ) -> Result<(), ApiError> {
        const KEY: i64 = i64::MIN;
        let provisional = enrollment_event::Model {
            id: KEY,
            enrollment_id: transition.enrollment_id,
            from_status: transition.from,
            to_status: transition.to,
            actor_id: transition.actor,
            reason: None,
            details: None,
            at: transition.at,
        };
        let notice = Notice::of_event(
            &provisional,
            transition.user_id,
            transition.course_id,
            transition.sections,
        );
        let payload = serde_json::to_string(&notice).map_err(|e| DbErr::Json(e.to_string()))?;
        let key = KEY.to_string();
        let (before, after) = payload
            .split_once(&key)
            .ok_or_else(|| DbErr::Custom("the notice does not name its event".into()))?;
        let mut insert = enrollment_event::Entity::insert(row);
        insert.query().returning_col(enrollment_event::Column::Id);
        let statement = insert.build(DatabaseBackend::Postgres);
        let mut values = statement.values.map(|v| v.0).unwrap_or_default();
        let n = values.len();
        values.extend([before.into(), after.into()]);
        let sql = format!(
            "WITH ev AS ({}) INSERT INTO changes (notice) SELECT ${} || ev.id || ${} FROM ev",
            statement.sql,
            n + 1,
            n + 2
        );
        self.txn
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                sql,
                values,
            ))
            .await?;
        self.queue(notice, true);
        Ok(())
    }

    /// Queues a notice of a change that is not a status change (a section's capacity or
    /// activity), delivered after commit.
    pub fn announce(&self, notice: Notice) {
        self.queue(notice, false);
    }

    /// Queues a notice; `sent`: already written to the change feed.
    fn queue(&self, notice: Notice, sent: bool) {
        self.notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((notice, sent));
    }

    /// Commits, writing the notices not yet in the change feed (PostgreSQL) in one statement
    /// first; returns them all.
    async fn commit(self) -> Result<Vec<Notice>, DbErr> {
        let notices = self
            .notices
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.txn.get_database_backend() == DatabaseBackend::Postgres {
            let unsent = notices
                .iter()
                .filter(|(_, sent)| !sent)
                .map(|(notice, _)| serde_json::to_string(notice).map(sea_orm::Value::from))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| DbErr::Json(e.to_string()))?;
            if !unsent.is_empty() {
                let marks: Vec<String> = (1..=unsent.len()).map(|n| format!("(${n})")).collect();
                self.txn
                    .execute_raw(Statement::from_sql_and_values(
                        DatabaseBackend::Postgres,
                        format!("INSERT INTO changes (notice) VALUES {}", marks.join(", ")),
                        unsent,
                    ))
                    .await?;
            }
        }
        self.txn.commit().await?;
        Ok(notices.into_iter().map(|(notice, _)| notice).collect())
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Tx<'_> {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }
}

/// One status change of an enrollment, as the audit trail records it.
pub struct Transition {
    pub enrollment_id: Uuid,
    /// The enrolled user, the course, and the sections whose seats the change moves: what
    /// subscribers are told about.
    pub user_id: Uuid,
    pub course_id: Uuid,
    pub sections: Vec<Uuid>,
    /// `None` when the enrollment is being created.
    pub from: Option<EnrollmentStatus>,
    pub to: EnrollmentStatus,
    /// Who caused it.
    pub actor: Option<Uuid>,
    pub reason: Option<String>,
    /// Extra facts, such as a capacity override or the sections of a switch.
    pub details: Option<serde_json::Value>,
    pub at: DateTime<Utc>,
}

impl Transition {
    /// The audit event of this change, to insert (its key assigned by the database).
    fn event(&self) -> enrollment_event::ActiveModel {
        enrollment_event::ActiveModel {
            enrollment_id: Set(self.enrollment_id),
            from_status: Set(self.from),
            to_status: Set(self.to),
            actor_id: Set(self.actor),
            reason: Set(self.reason.clone()),
            details: Set(self.details.clone()),
            at: Set(self.at),
            ..Default::default()
        }
    }
}

/// The rows of `select`, a plain select of `E`, decoded by position instead of by column name
/// (`entity::positional`): for the reads that decode many rows, such as a discovery page.
///
/// # Errors
/// The database's.
pub async fn rows<E, C>(select: Select<E>, db: &C) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait<Model: Positional + Send + Sync>,
    C: ConnectionTrait,
{
    let rows = select.into_model::<ByPosition<E::Model>>().all(db).await?;
    Ok(rows.into_iter().map(|row| row.0).collect())
}

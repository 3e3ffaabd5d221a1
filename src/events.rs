//! Change notices for live subscriptions, delivered only after the transaction that made the
//! change has committed.
//!
//! Every enrollment event, and every section change that moves seats, produces a [`Notice`].
//! Subscriptions never trust a notice's data for what they send: they re-read the committed rows,
//! so a notice only has to say *what* changed.
//!
//! - **PostgreSQL** (any number of replicas): the writing transaction issues
//!   `pg_notify('roster_changes', …)`, which PostgreSQL delivers only if and when it commits.
//!   Each replica `LISTEN`s on one connection ([`spawn_listener`]) and fans the notices out to
//!   its local subscribers through its [`Bus`]; when that connection drops it reconnects, and the
//!   subscribers stay attached to the bus meanwhile.
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

use entity::{enrollment, enrollment_event, section, types::EnrollmentStatus};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Statement, sqlx::postgres::PgListener,
};
use serde::{Deserialize, Serialize};
use sqlx_postgres::AT_COMMIT;
use tokio::sync::{OnceCell, broadcast, oneshot};
use uuid::Uuid;

/// The PostgreSQL channel every replica listens on.
pub const CHANNEL: &str = "roster_changes";

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

    fn resync() -> Self {
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
}

impl Default for Bus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUS_CAPACITY).0,
            active: Arc::default(),
            published: Arc::default(),
            section_reads: Arc::default(),
        }
    }
}

impl Bus {
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

/// Sends `notice` with `pg_notify` inside the transaction `txn`: PostgreSQL delivers it to every
/// replica's listener if and when `txn` commits, and never otherwise. The statement is marked
/// [`AT_COMMIT`]: it travels with the transaction's next statement or its `COMMIT`, whose error
/// is then its own.
///
/// # Errors
/// The database refuses the notification.
pub async fn pg_notify(txn: &impl ConnectionTrait, notice: &Notice) -> Result<(), DbErr> {
    let payload = serde_json::to_string(notice).map_err(|e| DbErr::Custom(e.to_string()))?;
    txn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        format!("{AT_COMMIT} SELECT pg_notify($1, $2)"),
        [CHANNEL.into(), payload.into()],
    ))
    .await?;
    Ok(())
}

/// Listens on [`CHANNEL`] over one dedicated PostgreSQL connection and publishes every notice to
/// `bus`. When the connection drops it reconnects (with a pause), then publishes the events
/// committed meanwhile from the `enrollment_events` table and a resync notice, so that seat
/// counts and positions are re-read; subscribers stay attached to the bus throughout. `ready`
/// fires once the first `LISTEN` is in place.
pub fn spawn_listener(
    url: String,
    db: DatabaseConnection,
    bus: Bus,
    ready: oneshot::Sender<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ready = Some(ready);
        // The newest event this replica has announced; `None` until the first LISTEN.
        let mut last_event: Option<i64> = None;
        loop {
            match listen(&url).await {
                Ok(mut listener) => {
                    match last_event {
                        None => match newest_event(&db).await {
                            Ok(newest) => last_event = Some(newest),
                            Err(e) => tracing::warn!(error = %e, "cannot read the newest event"),
                        },
                        Some(after) => {
                            tracing::info!("listening for changes again; catching up");
                            match replay(&db, after, &bus).await {
                                Ok(newest) => last_event = Some(newest),
                                Err(e) => tracing::warn!(error = %e, "cannot catch up on events"),
                            }
                            bus.publish(Notice::resync());
                        }
                    }
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(notification)) => {
                                match serde_json::from_str::<Notice>(notification.payload()) {
                                    Ok(notice) => {
                                        if let Some(event) = &notice.event {
                                            last_event =
                                                Some(last_event.unwrap_or(0).max(event.id));
                                        }
                                        bus.publish(notice);
                                    }
                                    Err(e) => tracing::warn!(error = %e, "unreadable notice"),
                                }
                            }
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
}

async fn newest_event(db: &DatabaseConnection) -> Result<i64, DbErr> {
    Ok(enrollment_event::Entity::find()
        .order_by_desc(enrollment_event::Column::Id)
        .one(db)
        .await?
        .map_or(0, |e| e.id))
}

/// Publishes the events committed after `after`, oldest first; returns the newest id seen.
async fn replay(db: &DatabaseConnection, after: i64, bus: &Bus) -> Result<i64, DbErr> {
    let missed = enrollment_event::Entity::find()
        .filter(enrollment_event::Column::Id.gt(after))
        .order_by_asc(enrollment_event::Column::Id)
        .find_also_related(enrollment::Entity)
        .all(db)
        .await?;
    let mut newest = after;
    for (event, enrollment) in missed {
        newest = newest.max(event.id);
        let Some(enrollment) = enrollment else {
            continue;
        };
        bus.publish(Notice::of_event(
            &event,
            enrollment.user_id,
            enrollment.course_id,
            vec![enrollment.section_id],
        ));
    }
    Ok(newest)
}

async fn listen(url: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

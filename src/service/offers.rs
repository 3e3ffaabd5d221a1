//! Offers that end without an answer (docs/design.md#offer-mode): an offer past its deadline is
//! passed on exactly once, whichever replica notices first, and its holder is reminded once a
//! few hours before. A timer in every `roster serve` runs [`expire_due`] and [`remind_due`];
//! `acceptOffer` on a lapsed offer passes it on itself ([`lapse`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{
    enrollment, section,
    types::{
        EnrollmentRecord,
        EnrollmentStatus::{Offered, Withdrawn},
    },
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, LockBehavior, LockType},
};
use serde_json::json;
use uuid::Uuid;

use super::{for_update, notifications, promotion, seats};
use crate::{
    domain::notification::{self as rules, OFFER_EXPIRED, Place},
    error::ApiError,
    store::{Store, Transition, Tx},
};

/// Ends `row`'s offer as expired: WITHDRAWN with the reason "offer expired", told to its holder,
/// and the seat offered (or given) to the next eligible waiter, all in this write. The caller
/// holds the section's row lock. Whether the offer was still open (a conditional update
/// decides, so an offer lapses once however many notice it).
///
/// # Errors
/// The database fails.
pub(crate) async fn lapse(
    tx: &Tx<'_>,
    row: &enrollment::Model,
    at: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let updated = enrollment::Entity::update_many()
        .col_expr(enrollment::Column::Status, Expr::value(Withdrawn))
        .col_expr(enrollment::Column::WithdrawnAt, Expr::value(Some(at)))
        // A lapsed offer held the seat for the student, who never took it: no record.
        .col_expr(
            enrollment::Column::Record,
            Expr::value(Some(EnrollmentRecord::None)),
        )
        .col_expr(enrollment::Column::Reason, Expr::value(OFFER_EXPIRED))
        .col_expr(
            enrollment::Column::OfferExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            enrollment::Column::OfferRemindAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(enrollment::Column::UpdatedAt, Expr::value(at))
        .filter(enrollment::Column::Id.eq(row.id))
        .filter(enrollment::Column::Status.eq(Offered))
        .exec(tx)
        .await?;
    if updated.rows_affected != 1 {
        return Ok(false);
    }
    seats::moved(tx, row.section_id, Offered, Withdrawn).await?;
    super::record(
        tx,
        Transition {
            enrollment_id: row.id,
            user_id: row.user_id,
            course_id: row.course_id,
            sections: vec![row.section_id],
            from: Some(Offered),
            to: Withdrawn,
            actor: None,
            reason: Some(OFFER_EXPIRED.into()),
            details: row
                .offer_expires_at
                .map(|deadline| json!({ "offerExpiresAt": deadline })),
            at,
        },
    )
    .await?;
    promotion::fill_free_seats(tx, row.section_id).await?;
    Ok(true)
}

/// What one try at an expired offer found.
enum Expiry {
    /// Passed on by this write.
    Lapsed,
    /// Already answered, passed on, or not yet due: nothing to do.
    Settled,
    /// Its row is locked by another write (on PostgreSQL, a reminder being written): try
    /// again shortly.
    Busy,
}

/// How many times a sweep comes back to an offer that was busy.
const BUSY_RETRIES: usize = 20;

/// The offer sweep of `roster serve`, a [`crate::jobs::Job`]: each round runs [`expire_due`],
/// then [`remind_due`].
pub struct Sweep {
    store: Store,
    every: std::time::Duration,
}

impl Sweep {
    pub fn new(store: Store, every: std::time::Duration) -> Self {
        Self { store, every }
    }
}

#[async_trait::async_trait]
impl crate::jobs::Job for Sweep {
    fn name(&self) -> &'static str {
        "offer sweep"
    }

    fn every(&self) -> std::time::Duration {
        self.every
    }

    async fn run_once(&mut self) -> anyhow::Result<crate::jobs::Round> {
        let lapsed = expire_due(&self.store).await?;
        if lapsed > 0 {
            tracing::info!(passed_on = lapsed, "expired offers passed on");
        }
        let reminded = remind_due(&self.store).await?;
        if reminded > 0 {
            tracing::info!(reminded, "offer reminders");
        }
        Ok((lapsed + reminded).into())
    }
}

/// Passes on every offer past its deadline; returns how many this call passed on. Each is its
/// own write, which takes the section's row lock like every change of its seats (a hot
/// section's lock is held for milliseconds at a time, so waiting for it beats skipping it,
/// which would starve the sweep on registration day), then the offer's row with
/// `FOR UPDATE SKIP LOCKED` on PostgreSQL. Of replicas sweeping at once, one passes the offer
/// on and the others find it settled: the conditional update in [`lapse`] decides.
///
/// # Errors
/// `UNAVAILABLE` or `INTERNAL` when the database fails.
pub async fn expire_due(store: &Store) -> Result<usize, ApiError> {
    let mut lapsed = 0;
    let mut seen = std::collections::HashSet::new();
    loop {
        let due: Vec<Uuid> = enrollment::Entity::find()
            .select_only()
            .column(enrollment::Column::Id)
            .filter(super::status_is(Offered))
            .filter(enrollment::Column::OfferExpiresAt.lte(store.now()))
            .order_by_asc(enrollment::Column::OfferExpiresAt)
            .limit(100)
            .into_tuple()
            .all(store.db())
            .await?;
        // An offer already tried this sweep and still due is left to the next sweep.
        let fresh: Vec<Uuid> = due.into_iter().filter(|id| seen.insert(*id)).collect();
        if fresh.is_empty() {
            return Ok(lapsed);
        }
        for id in fresh {
            for attempt in 0..=BUSY_RETRIES {
                match store.write(|tx| Box::pin(expire_one(tx, id))).await? {
                    Expiry::Lapsed => lapsed += 1,
                    Expiry::Settled => {}
                    Expiry::Busy if attempt < BUSY_RETRIES => {
                        tokio::time::sleep(Duration::from_millis(25)).await;
                        continue;
                    }
                    Expiry::Busy => {}
                }
                break;
            }
        }
    }
}

async fn expire_one(tx: &Tx<'_>, id: Uuid) -> Result<Expiry, ApiError> {
    let now = tx.now();
    let backend = tx.get_database_backend();
    let Some(row) = enrollment::Entity::find_by_id(id).one(tx).await? else {
        return Ok(Expiry::Settled);
    };
    if !is_due(&row, now) {
        return Ok(Expiry::Settled);
    }
    // Lock order as everywhere: the section first, then the enrollment.
    for_update(section::Entity::find_by_id(row.section_id), backend)
        .one(tx)
        .await?;
    let mut offer = enrollment::Entity::find_by_id(id);
    if backend == DatabaseBackend::Postgres {
        offer = offer.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    match offer.one(tx).await? {
        None => Ok(Expiry::Busy),
        // Switched to another section meanwhile: no longer an offer, or not under our lock.
        Some(locked) if is_due(&locked, now) && locked.section_id == row.section_id => {
            Ok(if lapse(tx, &locked, now).await? {
                Expiry::Lapsed
            } else {
                Expiry::Settled
            })
        }
        Some(_) => Ok(Expiry::Settled),
    }
}

fn is_due(row: &enrollment::Model, now: DateTime<Utc>) -> bool {
    row.status == Offered && row.offer_expires_at.is_some_and(|at| at <= now)
}

/// Reminds the holders of open offers whose reminder time has come, once each: the reminder
/// and the mark that it was sent are written together, and on PostgreSQL rows another replica
/// is reminding are skipped (`FOR UPDATE SKIP LOCKED`). Returns how many were reminded.
///
/// # Errors
/// `UNAVAILABLE` or `INTERNAL` when the database fails.
pub async fn remind_due(store: &Store) -> Result<usize, ApiError> {
    let postgres = store.db().get_database_backend() == DatabaseBackend::Postgres;
    store
        .write(|tx| {
            Box::pin(async move {
                let now = tx.now();
                let mut due = enrollment::Entity::find()
                    .filter(enrollment::Column::Status.eq(Offered))
                    .filter(enrollment::Column::OfferRemindAt.lte(now))
                    .order_by_asc(enrollment::Column::OfferRemindAt)
                    .limit(200);
                if postgres {
                    due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
                }
                let due = due.all(tx).await?;
                let mut reminded = 0;
                for row in &due {
                    enrollment::Entity::update_many()
                        .col_expr(
                            enrollment::Column::OfferRemindAt,
                            Expr::value(Option::<DateTime<Utc>>::None),
                        )
                        .filter(enrollment::Column::Id.eq(row.id))
                        .exec(tx)
                        .await?;
                    // A deadline already passed is the expiry's to tell.
                    let Some(deadline) = row.offer_expires_at.filter(|at| *at > now) else {
                        continue;
                    };
                    let (course, section) = notifications::names(tx, row.id).await?;
                    let place = Place {
                        course: &course,
                        section: &section,
                    };
                    let message = rules::offer_expiring(&place, deadline);
                    notifications::notify(tx, row.user_id, Some(row.id), message).await?;
                    reminded += 1;
                }
                Ok(reminded)
            })
        })
        .await
}

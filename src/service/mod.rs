//! One function per use case (docs/architecture.md#layers). Each takes the [`Store`] and the
//! viewer and plain values, never GraphQL types. Every write goes through [`Store::write`], so
//! its checks run inside the transaction that writes, and what it announces is delivered only
//! after commit.
//!
//! [`Store`]: crate::store::Store
//! [`Store::write`]: crate::store::Store::write

pub mod calendar;
pub mod compliance;
pub mod courses;
pub mod discovery;
pub mod eligibility;
pub mod enroll;
pub mod enrollments;
pub mod listing;
pub mod lottery;
pub mod notifications;
pub mod offers;
pub mod oversight;
pub mod promotion;
pub mod rosters;
pub mod seats;
pub mod sections;
pub mod switch;
pub mod teams;
pub mod terms;
pub mod transitions;
pub mod users;

use entity::{course, enrollment, section, term};
use sea_orm::{ConnectionTrait, DatabaseBackend, EntityTrait, QuerySelect, Select};
use uuid::Uuid;

use crate::{
    error::ApiError,
    store::{Transition, Tx},
};

/// Records one status change in the write: the notification it sends the student, if it sends
/// one (docs/design.md#notifications), then the audit event and its change notice
/// ([`Tx::record`]). Every status change goes through it.
///
/// # Errors
/// The database fails.
pub(crate) async fn record(tx: &Tx<'_>, transition: Transition) -> Result<(), ApiError> {
    notifications::on_transition(tx, &transition).await?;
    tx.record(transition).await
}

/// [`record`] for many status changes at once (the lottery's draw), each with its course's and
/// section's names: the notifications, then the events, in a few statements whatever their
/// number.
///
/// # Errors
/// The database fails.
pub(crate) async fn record_many(
    tx: &Tx<'_>,
    changes: Vec<(Transition, crate::domain::notification::Place<'_>)>,
) -> Result<(), ApiError> {
    let messages = changes
        .iter()
        .filter_map(|(transition, place)| {
            notifications::message(transition, place)
                .map(|message| (transition.user_id, Some(transition.enrollment_id), message))
        })
        .collect();
    notifications::notify_many(tx, messages).await?;
    tx.record_many(changes.into_iter().map(|(t, _)| t).collect())
        .await
}

/// A new enrollment of `user_id` in `section` of `course`, in `status`, made at `at`: checked
/// then, holding a seat from then if `status` holds one, and nothing yet completed, cancelled,
/// withdrawn, noted, offered or drawn. The caller sets what its path decides beyond that (who
/// enrolled, a waitlist ticket, a lottery draw) and inserts it.
pub(crate) fn new_enrollment(
    user_id: Uuid,
    section: &section::Model,
    status: entity::types::EnrollmentStatus,
    visibility: bool,
    at: chrono::DateTime<chrono::Utc>,
) -> enrollment::Model {
    enrollment::Model {
        id: Uuid::now_v7(),
        user_id,
        course_id: section.course_id,
        section_id: section.id,
        status,
        visibility,
        enrolled_at: at,
        enrolled_by: None,
        prerequisite_check_passed: true,
        prerequisite_check_at: Some(at),
        seat_reserved_at: status.holds_seat().then_some(at),
        waitlist_ticket: None,
        completed_at: None,
        completed_by: None,
        completion_evidence: None,
        cancelled_at: None,
        withdrawn_at: None,
        reason: None,
        notes: None,
        skip_reason: None,
        notes_updated_at: None,
        notes_updated_by: None,
        skipped_at: None,
        offer_expires_at: None,
        offer_remind_at: None,
        record: None,
        lottery_draw_at: None,
        lottery_rank: None,
        created_at: at,
        updated_at: at,
    }
}

/// `$from, $from+1, …`: `n` placeholders from `$from` on.
pub(crate) fn marks(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `enrollments.status = '…'` with the status written into the statement rather than bound: a
/// partial index over a status (the lottery's requests, offers by deadline) serves a prepared
/// statement only when the status is in its text. Bound, PostgreSQL's generic plan and
/// SQLite's plan cannot prove the index's condition and scan the table.
pub(crate) fn status_is(status: entity::types::EnrollmentStatus) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Expr, ExprTrait};
    let name = sea_orm::ActiveEnum::to_value(&status);
    Expr::col((enrollment::Entity, enrollment::Column::Status)).eq(Expr::cust(format!("'{name}'")))
}

/// `SELECT … FOR UPDATE` on PostgreSQL. SQLite has no row locks and needs none: a write
/// transaction there is `BEGIN IMMEDIATE` and already holds the database's write lock.
pub(crate) fn for_update<E: EntityTrait>(select: Select<E>, backend: DatabaseBackend) -> Select<E> {
    match backend {
        DatabaseBackend::Postgres => select.lock_exclusive(),
        _ => select,
    }
}

/// `SELECT … FOR SHARE` on PostgreSQL: the row cannot change until this transaction ends, and
/// others may read-lock it too. Nothing on SQLite, as for [`for_update`].
pub(crate) fn for_share<E: EntityTrait>(select: Select<E>, backend: DatabaseBackend) -> Select<E> {
    match backend {
        DatabaseBackend::Postgres => select.lock_shared(),
        _ => select,
    }
}

/// A section and its course, or `NOT_FOUND`.
pub(crate) async fn section_with_course(
    conn: &impl ConnectionTrait,
    section_id: Uuid,
) -> Result<(section::Model, course::Model), ApiError> {
    match section::Entity::find_by_id(section_id)
        .find_also_related(course::Entity)
        .one(conn)
        .await?
    {
        Some((section, Some(course))) => Ok((section, course)),
        _ => Err(ApiError::NotFound("section")),
    }
}

/// The term of a section, if it has one.
///
/// # Errors
/// The database fails.
pub(crate) async fn term_of(
    conn: &impl ConnectionTrait,
    section: &section::Model,
) -> Result<Option<term::Model>, ApiError> {
    match section.term_id {
        Some(id) => Ok(term::Entity::find_by_id(id).one(conn).await?),
        None => Ok(None),
    }
}

/// A JSON column read as text (`CAST(… AS TEXT)`, the same on both databases).
///
/// # Errors
/// The text is not the JSON of a `T`.
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    text: Option<String>,
) -> Result<Option<T>, ApiError> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| sea_orm::DbErr::Json(e.to_string()).into()))
        .transpose()
}

/// A section's dates as a statement reads them (its first and last date, `COALESCE`d with its
/// term's, the term's time zone and holidays, each as text): all of them, or `None` for a
/// section without a term.
///
/// # Errors
/// A value is not a date or the holidays are not JSON.
pub(crate) fn span_columns(
    starts_on: Option<String>,
    ends_on: Option<String>,
    time_zone: Option<String>,
    holidays: Option<String>,
) -> Result<Option<crate::domain::calendar::Span>, ApiError> {
    use crate::domain::calendar::{Span, time_zone as zone};
    let (Some(starts_on), Some(ends_on), Some(time_zone)) = (starts_on, ends_on, time_zone) else {
        return Ok(None);
    };
    let date = |text: &str| {
        text.get(..10)
            .and_then(|d| d.parse::<chrono::NaiveDate>().ok())
            .ok_or_else(|| ApiError::from(sea_orm::DbErr::Type(format!("not a date: {text}"))))
    };
    Ok(Some(Span::new(
        date(&starts_on)?,
        date(&ends_on)?,
        zone(&time_zone).unwrap_or(chrono_tz::UTC),
        json_column(holidays)?.unwrap_or_default(),
    )))
}

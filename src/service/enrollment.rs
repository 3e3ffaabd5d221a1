//! Enrollments: reading them, and moving seats and waitlist places inside a transaction.

use chrono::{DateTime, Utc};
use entity::{enrollment, enrollment_event, section, types::EnrollmentStatus};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use crate::{
    error::ApiError,
    events::{self, Notice},
};

/// The viewer's enrollments, newest first, optionally only those in `statuses`.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn for_user(
    db: &DatabaseConnection,
    user_id: Uuid,
    statuses: Option<Vec<EnrollmentStatus>>,
) -> Result<Vec<enrollment::Model>, ApiError> {
    let mut select = enrollment::Entity::find().filter(enrollment::Column::UserId.eq(user_id));
    if let Some(statuses) = statuses {
        select = select.filter(enrollment::Column::Status.is_in(statuses));
    }
    Ok(select
        .order_by_desc(enrollment::Column::EnrolledAt)
        .order_by_desc(enrollment::Column::Id)
        .all(db)
        .await?)
}

/// One status change of an enrollment, as written to the audit trail.
pub(crate) struct Transition {
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

/// Writes the audit event of one status change, in the caller's transaction (invariant 6), and
/// queues its notice for subscribers, delivered only once that transaction commits.
pub(crate) async fn record_event(
    txn: &impl ConnectionTrait,
    transition: Transition,
) -> Result<enrollment_event::Model, ApiError> {
    let (user_id, course_id, sections) = (
        transition.user_id,
        transition.course_id,
        transition.sections.clone(),
    );
    let event = enrollment_event::ActiveModel {
        enrollment_id: Set(transition.enrollment_id),
        from_status: Set(transition.from),
        to_status: Set(transition.to),
        actor_id: Set(transition.actor),
        reason: Set(transition.reason),
        details: Set(transition.details),
        at: Set(transition.at),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    events::notify(txn, Notice::of_event(&event, user_id, course_id, sections)).await?;
    Ok(event)
}

/// Promotes the earliest waitlisted enrollments of `section` into its free seats, as many as
/// there are free seats, and returns them. The caller holds the section's row lock (or SQLite's
/// write lock) and has already written the change that freed the seats; `section` is the row as
/// it stands after that change.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub(crate) async fn fill_free_seats(
    txn: &impl ConnectionTrait,
    section: &section::Model,
    actor: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<Vec<enrollment::Model>, ApiError> {
    if section.waitlist_count <= 0 || !section.is_active {
        return Ok(Vec::new());
    }
    let free = match section.capacity {
        None => i64::from(section.waitlist_count),
        Some(capacity) => {
            i64::from(capacity)
                - i64::from(section.registered_count)
                - i64::from(section.pending_count)
        }
    };
    if free <= 0 {
        return Ok(Vec::new());
    }
    let waiting = enrollment::Entity::find()
        .filter(enrollment::Column::SectionId.eq(section.id))
        .filter(enrollment::Column::Status.eq(EnrollmentStatus::Waitlisted))
        .order_by_asc(enrollment::Column::WaitlistTicket)
        .limit(free as u64)
        .all(txn)
        .await?;
    let mut promoted = Vec::with_capacity(waiting.len());
    for row in waiting {
        let mut model: enrollment::ActiveModel = row.into();
        model.status = Set(EnrollmentStatus::Registered);
        model.waitlist_ticket = Set(None);
        model.seat_reserved_at = Set(Some(at));
        model.updated_at = Set(at);
        let row = model.update(txn).await?;
        record_event(
            txn,
            Transition {
                enrollment_id: row.id,
                user_id: row.user_id,
                course_id: row.course_id,
                sections: vec![row.section_id],
                from: Some(EnrollmentStatus::Waitlisted),
                to: EnrollmentStatus::Registered,
                actor,
                reason: Some("promoted from the waitlist".into()),
                details: None,
                at,
            },
        )
        .await?;
        promoted.push(row);
    }
    if !promoted.is_empty() {
        let n = promoted.len() as i32;
        section::Entity::update_many()
            .col_expr(
                section::Column::RegisteredCount,
                Expr::col(section::Column::RegisteredCount).add(n),
            )
            .col_expr(
                section::Column::WaitlistCount,
                Expr::col(section::Column::WaitlistCount).sub(n),
            )
            .filter(section::Column::Id.eq(section.id))
            .exec(txn)
            .await?;
    }
    Ok(promoted)
}

/// How many times a write transaction that lost a race (deadlock, serialization failure, SQLite
/// busy) is run again before the error is reported.
const ATTEMPTS: usize = 3;

/// Runs a write use case, running it again when the database reports a retryable conflict. Each
/// attempt is a whole transaction, so a retry never sees half of an earlier one.
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let scope = events::attempt_scope();
        let result = attempt().await;
        if result.is_err() {
            // Rolled back: what the attempt meant to announce never happened.
            scope.rolled_back();
        }
        match result {
            Err(err) if tries < ATTEMPTS && err.is_retryable() => {
                tracing::debug!(error = ?err, tries, "retrying a transaction that lost a race");
            }
            other => return other,
        }
    }
}

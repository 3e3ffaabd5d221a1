//! Who may take a seat in a course: the checks of docs/design.md#enrollment-checks that read
//! other rows. Each runs inside the write transaction that takes the seat, on the transaction's
//! connection, so what it read is what the write relies on.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::{
    certification, course, course_prerequisite, enrollment, section,
    types::EnrollmentStatus::{self, Offered, Pending, Registered},
    user,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QuerySelect,
    RelationTrait,
};
use uuid::Uuid;

use super::for_update;
use crate::{domain::schedule::first_conflict, error::ApiError};

/// Takes the user's row lock (PostgreSQL; SQLite's write transaction already serializes
/// writers), so that the checks of one user's seats (invariant 7) run one at a time. Lock order
/// everywhere: sections, then enrollments, then users.
///
/// # Errors
/// `NOT_FOUND` for an unknown user; the database fails.
pub(crate) async fn lock_user(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<user::Model, ApiError> {
    for_update(
        user::Entity::find_by_id(user_id),
        conn.get_database_backend(),
    )
    .one(conn)
    .await?
    .ok_or(ApiError::NotFound("user"))
}

/// Whether the user may hold a seat in the section now: the section and its course are active
/// (invariant 8), every prerequisite has a certification unexpired at `at`, and the seat would
/// not overlap the user's other active seats (unless `schedule` says staff override it). The
/// caller holds the user's lock. `enrollment`: the user's enrollment in the section, if it
/// exists already (a waiter being promoted, a pending one being approved).
///
/// # Errors
/// `SECTION_INACTIVE`, `PREREQUISITES_MISSING` or `SCHEDULE_CONFLICT` (see [`is_ineligible`]);
/// the database fails.
pub(crate) async fn check_seat(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    section: &section::Model,
    course: &course::Model,
    enrollment: Option<Uuid>,
    schedule: Schedule,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    if !section.is_active || !course.is_active {
        return Err(ApiError::SectionInactive(
            "the section or its course is not active".into(),
        ));
    }
    check_prerequisites(conn, user_id, course.id, at).await?;
    if schedule == Schedule::Checked {
        check_schedule(conn, user_id, section, enrollment).await?;
    }
    Ok(())
}

/// Whether overlapping meetings are checked, or staff override the check (recorded on the
/// event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    Checked,
    Overridden,
}

/// Whether `err` says the user may not take the seat now (rather than that something failed):
/// what promotion records as the reason it passed a waiter over.
pub(crate) fn is_ineligible(err: &ApiError) -> bool {
    matches!(
        err,
        ApiError::SectionInactive(_)
            | ApiError::PrerequisitesMissing { .. }
            | ApiError::ScheduleConflict(_)
    )
}

/// The user's active enrollment in the course, if any (invariant 2).
///
/// # Errors
/// The database fails.
pub(crate) async fn active_enrollment(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    course_id: Uuid,
) -> Result<Option<enrollment::Model>, ApiError> {
    Ok(enrollment::Entity::find()
        .filter(enrollment::Column::UserId.eq(user_id))
        .filter(enrollment::Column::CourseId.eq(course_id))
        .filter(enrollment::Column::Status.is_in(EnrollmentStatus::ACTIVE))
        .one(conn)
        .await?)
}

/// Every prerequisite course needs a certification of the user that has not expired at `at`.
///
/// # Errors
/// `PREREQUISITES_MISSING` naming the missing courses; the database fails.
pub(crate) async fn check_prerequisites(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    course_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let required: Vec<Uuid> = course_prerequisite::Entity::find()
        .filter(course_prerequisite::Column::CourseId.eq(course_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|p| p.prerequisite_id)
        .collect();
    if required.is_empty() {
        return Ok(());
    }
    let held: HashSet<Uuid> = certification::Entity::find()
        .filter(certification::Column::UserId.eq(user_id))
        .filter(certification::Column::CourseId.is_in(required.clone()))
        .filter(
            Condition::any()
                .add(certification::Column::ExpiresAt.is_null())
                .add(certification::Column::ExpiresAt.gt(at)),
        )
        .all(conn)
        .await?
        .into_iter()
        .map(|c| c.course_id)
        .collect();
    let missing: Vec<Uuid> = required.into_iter().filter(|c| !held.contains(c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names = course::Entity::find()
        .filter(course::Column::Id.is_in(missing.clone()))
        .all(conn)
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    Err(ApiError::PrerequisitesMissing {
        ids: missing,
        names,
    })
}

/// The section's meetings must not overlap those of the user's other active seats (PENDING,
/// REGISTERED or OFFERED; finished enrollments keep their seat but never conflict), invariant 7.
/// `ignore_enrollment`: the enrollment being moved or confirmed. The caller holds the user's
/// row lock ([`lock_user`]), so two seats of one user cannot both pass this check.
///
/// # Errors
/// `SCHEDULE_CONFLICT` naming the other course and the meeting; the database fails.
pub(crate) async fn check_schedule(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    section: &section::Model,
    ignore_enrollment: Option<Uuid>,
) -> Result<(), ApiError> {
    if section.schedule.0.is_empty() {
        return Ok(());
    }
    let mut seats = section::Entity::find()
        .join(JoinType::InnerJoin, section::Relation::Enrollment.def())
        .filter(enrollment::Column::UserId.eq(user_id))
        .filter(enrollment::Column::Status.is_in([Pending, Registered, Offered]))
        .filter(section::Column::Id.ne(section.id));
    if let Some(id) = ignore_enrollment {
        seats = seats.filter(enrollment::Column::Id.ne(id));
    }
    let others = seats.find_also_related(course::Entity).all(conn).await?;
    for (other, other_course) in others {
        if let Some((mine, _)) = first_conflict(&section.schedule, &other.schedule) {
            let name = other_course.map_or_else(|| other.name.clone(), |c| c.name);
            return Err(ApiError::ScheduleConflict(format!(
                "{name} ({} {}–{})",
                format!("{:?}", mine.weekday).to_uppercase(),
                mine.start,
                mine.end
            )));
        }
    }
    Ok(())
}

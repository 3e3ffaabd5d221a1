//! Who may take a seat in a course: the checks of docs/design.md#enrollment-checks that read
//! other rows. Each runs inside the write transaction that takes the seat, on the transaction's
//! connection, so what it read is what the write relies on.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::{
    certification, course, course_prerequisite, enrollment, section,
    types::EnrollmentStatus::{self, Registered},
};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{domain::schedule::first_conflict, error::ApiError};

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

/// The section's meetings must not overlap those of the user's other REGISTERED sections
/// (`ignore_enrollment`: the enrollment being moved, in a switch).
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
    let mut registered = enrollment::Entity::find()
        .filter(enrollment::Column::UserId.eq(user_id))
        .filter(enrollment::Column::Status.eq(Registered));
    if let Some(id) = ignore_enrollment {
        registered = registered.filter(enrollment::Column::Id.ne(id));
    }
    let section_ids: Vec<Uuid> = registered
        .all(conn)
        .await?
        .into_iter()
        .map(|e| e.section_id)
        .collect();
    if section_ids.is_empty() {
        return Ok(());
    }
    let others = section::Entity::find()
        .filter(section::Column::Id.is_in(section_ids))
        .find_also_related(course::Entity)
        .all(conn)
        .await?;
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

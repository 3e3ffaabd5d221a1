//! `enroll`: a seat, a place on the waitlist, or a clear refusal (docs/design.md#enrollment-checks).

use entity::{
    enrollment,
    types::EnrollmentStatus::{Pending, Registered, Waitlisted},
    user,
};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::json;
use uuid::Uuid;

use super::{eligibility, seats, section_with_course};
use crate::{
    auth::Viewer,
    error::ApiError,
    store::{Store, Transition, Tx},
};

/// What `enroll` asks for.
#[derive(Clone, Debug)]
pub struct EnrollRequest {
    pub section_id: Uuid,
    /// Someone else to enroll (staff only); `None` enrolls the viewer.
    pub user_id: Option<Uuid>,
    pub visibility: bool,
    /// Take a seat even when the section is full (staff only; recorded in the event).
    pub override_capacity: bool,
    /// Enroll despite overlapping meetings (staff only; recorded in the event).
    pub override_schedule_conflict: bool,
}

/// How often a seat and a waitlist place may each slip away (a seat frees between the two
/// conditional updates, then is taken again) before `enroll` gives up with `CONFLICT`.
const SEAT_ROUNDS: usize = 10;

/// Enrolls a user in a section: a seat (REGISTERED, or PENDING when the section requires
/// approval), else a place on the waitlist, else `SECTION_FULL`.
///
/// Every check runs inside the write transaction, in docs/design.md's order: the section and
/// course are active; every prerequisite has an unexpired certification; no active enrollment
/// in the course; no schedule conflict with the user's registered sections; then the seat.
///
/// # Errors
/// `FORBIDDEN` for proxy enrollment or overrides by anyone who does not manage the course;
/// `NOT_FOUND`; `SECTION_INACTIVE`; `PREREQUISITES_MISSING`; `ALREADY_ENROLLED`;
/// `SCHEDULE_CONFLICT`; `SECTION_FULL`.
pub async fn enroll(
    store: &Store,
    viewer: &Viewer,
    request: EnrollRequest,
) -> Result<enrollment::Model, ApiError> {
    let request = &request;
    store
        .write(|tx| Box::pin(enroll_in(tx, viewer, request)))
        .await
}

async fn enroll_in(
    tx: &Tx<'_>,
    viewer: &Viewer,
    request: &EnrollRequest,
) -> Result<enrollment::Model, ApiError> {
    let (section, course) = section_with_course(tx, request.section_id).await?;
    let user_id = request.user_id.unwrap_or(viewer.id());
    let proxy = user_id != viewer.id();
    let overrides = request.override_capacity || request.override_schedule_conflict;
    if (proxy || overrides) && !viewer.can_manage_course(&course) {
        return Err(ApiError::forbidden(
            "only staff of the course may enroll someone else or override its limits",
        ));
    }
    if proxy && user::Entity::find_by_id(user_id).one(tx).await?.is_none() {
        return Err(ApiError::NotFound("user"));
    }
    if !section.is_active || !course.is_active {
        return Err(ApiError::SectionInactive(
            "the section or its course is not active".into(),
        ));
    }
    let checked_at = tx.now();
    eligibility::check_prerequisites(tx, user_id, course.id, checked_at).await?;
    if eligibility::active_enrollment(tx, user_id, course.id)
        .await?
        .is_some()
    {
        return Err(ApiError::AlreadyEnrolled);
    }
    if !request.override_schedule_conflict {
        eligibility::check_schedule(tx, user_id, &section, None).await?;
    }

    let seat_status = if section.requires_approval {
        Pending
    } else {
        Registered
    };
    let mut details = serde_json::Map::new();
    // A seat, else (staff override) a seat beyond capacity, else a waitlist ticket.
    // A seat can free up between the two conditional updates (someone withdraws and
    // commits); the waitlist update then refuses and the seat is tried again, so
    // nobody ever waits while a seat is free.
    let mut rounds = 0;
    let (status, ticket) = loop {
        rounds += 1;
        if seats::take(tx, section.id, seat_status).await? {
            break (seat_status, None);
        }
        if request.override_capacity {
            seats::add(tx, section.id, seat_status, 1).await?;
            details.insert("capacityOverride".into(), json!(true));
            break (seat_status, None);
        }
        match seats::join_waitlist(tx, section.id).await? {
            Some(ticket) => break (Waitlisted, Some(ticket)),
            None if rounds < SEAT_ROUNDS => continue,
            None => {
                return Err(ApiError::Conflict(
                    "the section kept changing; try again".into(),
                ));
            }
        }
    };
    if request.override_schedule_conflict {
        details.insert("scheduleConflictOverride".into(), json!(true));
    }
    let at = tx.now();
    let row = enrollment::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        course_id: Set(course.id),
        section_id: Set(section.id),
        status: Set(status),
        visibility: Set(request.visibility),
        enrolled_at: Set(at),
        enrolled_by: Set(proxy.then_some(viewer.id())),
        prerequisite_check_passed: Set(true),
        prerequisite_check_at: Set(Some(checked_at)),
        seat_reserved_at: Set(status.holds_seat().then_some(at)),
        waitlist_ticket: Set(ticket),
        completed_at: Set(None),
        completed_by: Set(None),
        completion_evidence: Set(None),
        cancelled_at: Set(None),
        withdrawn_at: Set(None),
        reason: Set(None),
        notes: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(tx)
    .await
    // The partial unique index settles a race between two transactions that both
    // found no active enrollment.
    .map_err(|e| ApiError::on_unique_violation(e, || ApiError::AlreadyEnrolled))?;
    tx.record(Transition {
        enrollment_id: row.id,
        user_id,
        course_id: course.id,
        sections: vec![section.id],
        from: None,
        to: status,
        actor: Some(viewer.id()),
        reason: None,
        details: (!details.is_empty()).then_some(serde_json::Value::Object(details)),
        at,
    })
    .await?;
    Ok(row)
}

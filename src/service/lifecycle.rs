//! The enrollment engine: every status change of DESIGN.md's state machine, each one
//! transaction that moves the seat counters with it, writes its audit event, and promotes the
//! earliest waitlisted enrollments into any seat it frees.
//!
//! Lock order is always the section row first, then enrollment rows, so that two transactions
//! touching the same section queue on it instead of deadlocking. On SQLite the write transaction
//! (`BEGIN IMMEDIATE`) already serializes writers.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::{
    certification, course, course_prerequisite, enrollment, section,
    types::EnrollmentStatus::{self, *},
    user,
};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, QueryFilter, Set,
    sea_query::{Expr, ExprTrait},
};
use serde_json::json;
use uuid::Uuid;

use super::{
    enrollment::{Transition, fill_free_seats, record_event, retrying},
    for_update,
};
use crate::{
    auth::Viewer,
    db::{begin_write, now},
    domain::{schedule::first_conflict, status::can_transition},
    error::ApiError,
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

/// Enrolls a user in a section: a seat (REGISTERED, or PENDING when the section requires
/// approval), else a place on the waitlist, else `SECTION_FULL`.
///
/// Checks run in DESIGN.md's order: the section and course are active; every prerequisite has an
/// unexpired certification; no active enrollment in the course; no schedule conflict with the
/// user's registered sections; then the seat.
///
/// # Errors
/// `FORBIDDEN` for proxy enrollment or overrides by anyone who does not manage the course;
/// `NOT_FOUND`; `SECTION_INACTIVE`; `PREREQUISITES_MISSING`; `ALREADY_ENROLLED`;
/// `SCHEDULE_CONFLICT`; `SECTION_FULL`.
pub async fn enroll(
    db: &DatabaseConnection,
    viewer: &Viewer,
    request: EnrollRequest,
) -> Result<enrollment::Model, ApiError> {
    let (section, course) = section_with_course(db, request.section_id).await?;
    let user_id = request.user_id.unwrap_or(viewer.id());
    let proxy = user_id != viewer.id();
    let overrides = request.override_capacity || request.override_schedule_conflict;
    if (proxy || overrides) && !viewer.can_manage_course(&course) {
        return Err(ApiError::forbidden(
            "only staff of the course may enroll someone else or override its limits",
        ));
    }
    if proxy && user::Entity::find_by_id(user_id).one(db).await?.is_none() {
        return Err(ApiError::NotFound("user"));
    }
    if !section.is_active || !course.is_active {
        return Err(ApiError::SectionInactive(
            "the section or its course is not active".into(),
        ));
    }
    let checked_at = now();
    check_prerequisites(db, user_id, course.id, checked_at).await?;
    if active_enrollment(db, user_id, course.id).await?.is_some() {
        return Err(ApiError::AlreadyEnrolled);
    }
    if !request.override_schedule_conflict {
        check_schedule(db, user_id, &section, None).await?;
    }
    retrying(|| async {
        enroll_once(db, viewer, &request, user_id, &section, &course, checked_at).await
    })
    .await
}

async fn enroll_once(
    db: &DatabaseConnection,
    viewer: &Viewer,
    request: &EnrollRequest,
    user_id: Uuid,
    section: &section::Model,
    course: &course::Model,
    checked_at: DateTime<Utc>,
) -> Result<enrollment::Model, ApiError> {
    let at = now();
    let txn = begin_write(db).await?;
    let seat_status = if section.requires_approval {
        Pending
    } else {
        Registered
    };
    let mut details = serde_json::Map::new();
    // A seat, else (staff override) a seat beyond capacity, else a waitlist ticket. A seat can
    // free up between the two conditional updates (someone withdraws and commits); the
    // waitlist update then refuses and the seat is tried again, so nobody ever waits while a
    // seat is free.
    let mut attempts = 0;
    let (status, ticket) = loop {
        attempts += 1;
        if take_seat(&txn, section.id, seat_status).await? {
            break (seat_status, None);
        }
        if request.override_capacity {
            add_to_counter(&txn, section.id, seat_status, 1).await?;
            details.insert("capacityOverride".into(), json!(true));
            break (seat_status, None);
        }
        match join_waitlist(&txn, section.id).await? {
            Some(ticket) => break (Waitlisted, Some(ticket)),
            None if attempts < 10 => continue,
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
    let row = enrollment::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        course_id: Set(course.id),
        section_id: Set(section.id),
        status: Set(status),
        visibility: Set(request.visibility),
        enrolled_at: Set(at),
        enrolled_by: Set((user_id != viewer.id()).then_some(viewer.id())),
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
    .insert(&txn)
    .await
    // The partial unique index settles races the check before the transaction could not see.
    .map_err(|e| ApiError::on_unique_violation(e, || ApiError::AlreadyEnrolled))?;
    record_event(
        &txn,
        Transition {
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
        },
    )
    .await?;
    txn.commit().await?;
    Ok(row)
}

/// Takes a seat with one conditional update whose row count decides: the section is active,
/// nobody is waiting (a newcomer never jumps the queue), and seats held are below capacity.
async fn take_seat(
    txn: &DatabaseTransaction,
    section_id: Uuid,
    status: EnrollmentStatus,
) -> Result<bool, ApiError> {
    let column = counter(status).ok_or(ApiError::Internal("no counter".into()))?;
    let result = section::Entity::update_many()
        .col_expr(column, Expr::col(column).add(1))
        .filter(section::Column::Id.eq(section_id))
        .filter(section::Column::IsActive.eq(true))
        .filter(section::Column::WaitlistCount.eq(0))
        .filter(
            Condition::any()
                .add(section::Column::Capacity.is_null())
                .add(
                    Expr::col(section::Column::RegisteredCount)
                        .add(Expr::col(section::Column::PendingCount))
                        .lt(Expr::col(section::Column::Capacity)),
                ),
        )
        .exec(txn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Hands out the next waitlist ticket, if the section is still full or has people waiting:
/// `None` when a seat has freed up since [`take_seat`] failed (the caller tries the seat
/// again). Fails with `SECTION_FULL` when the section has no waitlist (or `SECTION_INACTIVE` if
/// it was deactivated meanwhile).
///
/// The conditions sit in the update itself, so PostgreSQL checks them against the row as the
/// last committed change left it, under the row lock.
async fn join_waitlist(
    txn: &DatabaseTransaction,
    section_id: Uuid,
) -> Result<Option<i64>, ApiError> {
    let result = section::Entity::update_many()
        .col_expr(
            section::Column::WaitlistCount,
            Expr::col(section::Column::WaitlistCount).add(1),
        )
        .col_expr(
            section::Column::WaitlistSeq,
            Expr::col(section::Column::WaitlistSeq).add(1),
        )
        .filter(section::Column::Id.eq(section_id))
        .filter(section::Column::IsActive.eq(true))
        .filter(section::Column::WaitlistEnabled.eq(true))
        .filter(
            Condition::any()
                .add(section::Column::WaitlistCount.gt(0))
                .add(
                    Condition::all()
                        .add(section::Column::Capacity.is_not_null())
                        .add(
                            Expr::col(section::Column::RegisteredCount)
                                .add(Expr::col(section::Column::PendingCount))
                                .gte(Expr::col(section::Column::Capacity)),
                        ),
                ),
        )
        .exec(txn)
        .await?;
    // The update holds the row (PostgreSQL) or the database (SQLite) until commit, so the row
    // read back carries our ticket.
    let row = section::Entity::find_by_id(section_id)
        .one(txn)
        .await?
        .ok_or(ApiError::NotFound("section"))?;
    if result.rows_affected == 1 {
        return Ok(Some(row.waitlist_seq));
    }
    if !row.is_active {
        return Err(ApiError::SectionInactive(
            "the section is not active".into(),
        ));
    }
    let full = row.waitlist_count > 0
        || row
            .capacity
            .is_some_and(|c| row.registered_count + row.pending_count >= c);
    if full {
        // Full, and no waitlist to join.
        return Err(ApiError::SectionFull);
    }
    Ok(None)
}

fn counter(status: EnrollmentStatus) -> Option<section::Column> {
    match status {
        Registered => Some(section::Column::RegisteredCount),
        Pending => Some(section::Column::PendingCount),
        Waitlisted => Some(section::Column::WaitlistCount),
        _ => None,
    }
}

async fn add_to_counter(
    txn: &impl ConnectionTrait,
    section_id: Uuid,
    status: EnrollmentStatus,
    delta: i32,
) -> Result<(), ApiError> {
    if let Some(column) = counter(status) {
        section::Entity::update_many()
            .col_expr(column, Expr::col(column).add(delta))
            .filter(section::Column::Id.eq(section_id))
            .exec(txn)
            .await?;
    }
    Ok(())
}

async fn section_with_course(
    db: &impl ConnectionTrait,
    section_id: Uuid,
) -> Result<(section::Model, course::Model), ApiError> {
    match section::Entity::find_by_id(section_id)
        .find_also_related(course::Entity)
        .one(db)
        .await?
    {
        Some((section, Some(course))) => Ok((section, course)),
        _ => Err(ApiError::NotFound("section")),
    }
}

async fn active_enrollment(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    course_id: Uuid,
) -> Result<Option<enrollment::Model>, ApiError> {
    Ok(enrollment::Entity::find()
        .filter(enrollment::Column::UserId.eq(user_id))
        .filter(enrollment::Column::CourseId.eq(course_id))
        .filter(enrollment::Column::Status.is_in(EnrollmentStatus::ACTIVE))
        .one(db)
        .await?)
}

/// Every prerequisite course needs a certification of the user that has not expired at `at`.
async fn check_prerequisites(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    course_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let required: Vec<Uuid> = course_prerequisite::Entity::find()
        .filter(course_prerequisite::Column::CourseId.eq(course_id))
        .all(db)
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
        .all(db)
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
        .all(db)
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    Err(ApiError::PrerequisitesMissing {
        ids: missing,
        names,
    })
}

/// The section's meetings must not overlap those of the user's other REGISTERED sections.
async fn check_schedule(
    db: &impl ConnectionTrait,
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
        .all(db)
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
        .all(db)
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

/// Who is asking to change an enrollment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Actor {
    /// The enrolled user themself.
    Owner,
    /// Staff who manage the course.
    Staff,
}

/// An enrollment locked for a change, with its section and course, and who the viewer is to it.
struct Locked {
    row: enrollment::Model,
    section: section::Model,
    course: course::Model,
    actor: Option<Actor>,
}

impl Locked {
    /// The enrolled user or staff of the course.
    fn require_owner_or_staff(&self) -> Result<(), ApiError> {
        match self.actor {
            Some(_) => Ok(()),
            None => Err(ApiError::forbidden("not your enrollment")),
        }
    }

    /// Staff of the course; with `not_own`, never for their own enrollment (attendance and
    /// completion are never self-confirmed).
    fn require_staff(&self, viewer: &Viewer, not_own: bool, what: &str) -> Result<(), ApiError> {
        if self.actor != Some(Actor::Staff) || (not_own && self.row.user_id == viewer.id()) {
            return Err(ApiError::forbidden(format!(
                "only staff of the course {what}{}",
                if not_own {
                    ", never for themselves"
                } else {
                    ""
                }
            )));
        }
        Ok(())
    }
}

/// Begins the write transaction of one change of an enrollment and locks the section, then the
/// enrollment. The caller checks, applies, and commits; `retrying` runs the whole again if it
/// lost a race.
async fn begin_change(
    db: &DatabaseConnection,
    viewer: &Viewer,
    enrollment_id: Uuid,
) -> Result<(DatabaseTransaction, Locked), ApiError> {
    let txn = begin_write(db).await?;
    let locked = lock_for_change(&txn, viewer, enrollment_id).await?;
    Ok((txn, locked))
}

/// Loads an enrollment for a change by `viewer`, decides who they are to it, and locks the
/// section row then the enrollment row (in that order). If a concurrent switch moved the
/// enrollment between the read and the locks, it locks the new section too and reads again.
async fn lock_for_change(
    txn: &DatabaseTransaction,
    viewer: &Viewer,
    enrollment_id: Uuid,
) -> Result<Locked, ApiError> {
    let backend = txn.get_database_backend();
    let mut section_id = enrollment::Entity::find_by_id(enrollment_id)
        .one(txn)
        .await?
        .ok_or(ApiError::NotFound("enrollment"))?
        .section_id;
    for _ in 0..3 {
        let section = for_update(section::Entity::find_by_id(section_id), backend)
            .one(txn)
            .await?
            .ok_or(ApiError::NotFound("section"))?;
        let row = for_update(enrollment::Entity::find_by_id(enrollment_id), backend)
            .one(txn)
            .await?
            .ok_or(ApiError::NotFound("enrollment"))?;
        if row.section_id != section.id {
            section_id = row.section_id;
            continue;
        }
        let course = course::Entity::find_by_id(row.course_id)
            .one(txn)
            .await?
            .ok_or(ApiError::NotFound("course"))?;
        let actor = if viewer.can_manage_course(&course) {
            Some(Actor::Staff)
        } else if row.user_id == viewer.id() {
            Some(Actor::Owner)
        } else {
            None
        };
        return Ok(Locked {
            row,
            section,
            course,
            actor,
        });
    }
    Err(ApiError::Conflict(
        "the enrollment kept changing sections meanwhile; try again".into(),
    ))
}

/// Moves the locked enrollment to `to` with a conditional update (so a concurrent change makes
/// this one fail with `INVALID_TRANSITION` rather than apply twice), adjusts the counters, writes
/// the event, and, when a withdrawal or cancellation freed a seat, fills it from the waitlist.
async fn apply(
    txn: &DatabaseTransaction,
    locked: &Locked,
    mut change: enrollment::ActiveModel,
    transition: Transition,
) -> Result<enrollment::Model, ApiError> {
    let (row, section) = (&locked.row, &locked.section);
    let (from, to, at, actor) = (row.status, transition.to, transition.at, transition.actor);
    if !can_transition(from, to) {
        return Err(invalid(from, to));
    }
    change.status = Set(to);
    change.updated_at = Set(at);
    if from == Waitlisted {
        change.waitlist_ticket = Set(None);
    }
    if from == Waitlisted && to.holds_seat() {
        change.seat_reserved_at = Set(Some(at));
    }
    let updated = enrollment::Entity::update_many()
        .set(change)
        .filter(enrollment::Column::Id.eq(row.id))
        .filter(enrollment::Column::Status.eq(from))
        .exec(txn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(invalid(from, to));
    }
    add_to_counter(txn, section.id, from, -1).await?;
    add_to_counter(txn, section.id, to, 1).await?;
    record_event(txn, transition).await?;
    if from.holds_seat() && matches!(to, Withdrawn | Cancelled) {
        promote_into(txn, section.id, actor, at).await?;
    }
    enrollment::Entity::find_by_id(row.id)
        .one(txn)
        .await?
        .ok_or(ApiError::NotFound("enrollment"))
}

/// Reads the section as it stands now and fills its free seats from the waitlist.
async fn promote_into(
    txn: &DatabaseTransaction,
    section_id: Uuid,
    actor: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<Vec<enrollment::Model>, ApiError> {
    let fresh = section::Entity::find_by_id(section_id)
        .one(txn)
        .await?
        .ok_or(ApiError::NotFound("section"))?;
    fill_free_seats(txn, &fresh, actor, at).await
}

fn invalid(from: EnrollmentStatus, to: EnrollmentStatus) -> ApiError {
    ApiError::InvalidTransition {
        from: from.to_value(),
        to: to.to_value(),
    }
}

fn transition(
    row: &enrollment::Model,
    to: EnrollmentStatus,
    viewer: &Viewer,
    reason: Option<String>,
    at: DateTime<Utc>,
) -> Transition {
    Transition {
        enrollment_id: row.id,
        user_id: row.user_id,
        course_id: row.course_id,
        sections: vec![row.section_id],
        from: Some(row.status),
        to,
        actor: Some(viewer.id()),
        reason,
        details: None,
        at,
    }
}

fn reason_text(reason: Option<String>) -> Result<Option<String>, ApiError> {
    crate::domain::validate::description("reason", reason.as_deref(), 2000)
}

/// The enrolled user (or staff of the course) leaves: WITHDRAWN, final. A freed seat goes to the
/// earliest waitlisted enrollment in the same transaction.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` for anyone else; `INVALID_TRANSITION` from a final status.
pub async fn withdraw(
    db: &DatabaseConnection,
    viewer: &Viewer,
    enrollment_id: Uuid,
    reason: Option<String>,
) -> Result<enrollment::Model, ApiError> {
    let reason = reason_text(reason)?;
    retrying(|| async {
        let (txn, locked) = begin_change(db, viewer, enrollment_id).await?;
        locked.require_owner_or_staff()?;
        let at = now();
        let change = enrollment::ActiveModel {
            withdrawn_at: Set(Some(at)),
            reason: Set(reason.clone()),
            ..Default::default()
        };
        let t = transition(&locked.row, Withdrawn, viewer, reason.clone(), at);
        let row = apply(&txn, &locked, change, t).await?;
        txn.commit().await?;
        Ok(row)
    })
    .await
}

/// Staff cancel an enrollment (a refused approval is a cancelled PENDING one): CANCELLED, final;
/// a freed seat is filled from the waitlist.
///
/// # Errors
/// `BAD_USER_INPUT` for an empty reason; `NOT_FOUND`; `FORBIDDEN` unless staff of the course;
/// `INVALID_TRANSITION`.
pub async fn cancel(
    db: &DatabaseConnection,
    viewer: &Viewer,
    enrollment_id: Uuid,
    reason: String,
) -> Result<enrollment::Model, ApiError> {
    let reason = reason_text(Some(reason))?
        .ok_or_else(|| ApiError::bad_input("reason", "a reason is required"))?;
    retrying(|| async {
        let (txn, locked) = begin_change(db, viewer, enrollment_id).await?;
        locked.require_staff(viewer, false, "cancel enrollments")?;
        let at = now();
        let change = enrollment::ActiveModel {
            cancelled_at: Set(Some(at)),
            reason: Set(Some(reason.clone())),
            ..Default::default()
        };
        let t = transition(&locked.row, Cancelled, viewer, Some(reason.clone()), at);
        let row = apply(&txn, &locked, change, t).await?;
        txn.commit().await?;
        Ok(row)
    })
    .await
}

/// Staff approve a PENDING enrollment; it keeps the seat it held and becomes REGISTERED.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless staff of the course; `INVALID_TRANSITION`.
pub async fn approve(
    db: &DatabaseConnection,
    viewer: &Viewer,
    enrollment_id: Uuid,
) -> Result<enrollment::Model, ApiError> {
    retrying(|| async {
        let (txn, locked) = begin_change(db, viewer, enrollment_id).await?;
        locked.require_staff(viewer, false, "approve enrollments")?;
        if locked.row.status != Pending {
            return Err(invalid(locked.row.status, Registered));
        }
        let t = transition(&locked.row, Registered, viewer, None, now());
        let row = apply(&txn, &locked, Default::default(), t).await?;
        txn.commit().await?;
        Ok(row)
    })
    .await
}

/// Staff confirm attendance: COMPLETED, with the evidence, who and when. A course with a
/// certificate validity issues exactly one certification, expiring that many months later;
/// concurrent or repeated confirmations find the enrollment completed and fail with
/// `INVALID_TRANSITION`, and the unique index on `certifications.enrollment_id` backs that up.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless staff of the course, and always for one's own enrollment;
/// `INVALID_TRANSITION`.
pub async fn complete(
    db: &DatabaseConnection,
    viewer: &Viewer,
    enrollment_id: Uuid,
    evidence: Option<serde_json::Value>,
) -> Result<enrollment::Model, ApiError> {
    retrying(|| async {
        let (txn, locked) = begin_change(db, viewer, enrollment_id).await?;
        locked.require_staff(viewer, true, "confirm attendance")?;
        let at = now();
        let change = enrollment::ActiveModel {
            completed_at: Set(Some(at)),
            completed_by: Set(Some(viewer.id())),
            completion_evidence: Set(evidence.clone()),
            ..Default::default()
        };
        let t = transition(&locked.row, Completed, viewer, None, at);
        let row = apply(&txn, &locked, change, t).await?;
        if let Some(months) = locked.course.certificate_validity_months {
            certification::ActiveModel {
                id: Set(Uuid::now_v7()),
                user_id: Set(row.user_id),
                course_id: Set(row.course_id),
                enrollment_id: Set(row.id),
                issued_at: Set(at),
                expires_at: Set(at.checked_add_months(chrono::Months::new(months.unsigned_abs()))),
            }
            .insert(&txn)
            .await
            .map_err(|e| ApiError::on_unique_violation(e, || invalid(Completed, Completed)))?;
        }
        txn.commit().await?;
        Ok(row)
    })
    .await
}

/// Staff record that a registered student did not complete: FAILED, final.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless staff of the course (never one's own); `INVALID_TRANSITION`.
pub async fn fail(
    db: &DatabaseConnection,
    viewer: &Viewer,
    enrollment_id: Uuid,
    reason: Option<String>,
) -> Result<enrollment::Model, ApiError> {
    let reason = reason_text(reason)?;
    retrying(|| async {
        let (txn, locked) = begin_change(db, viewer, enrollment_id).await?;
        locked.require_staff(viewer, true, "record a failure")?;
        let at = now();
        let change = enrollment::ActiveModel {
            reason: Set(reason.clone()),
            ..Default::default()
        };
        let t = transition(&locked.row, Failed, viewer, reason.clone(), at);
        let row = apply(&txn, &locked, change, t).await?;
        txn.commit().await?;
        Ok(row)
    })
    .await
}

/// Moves an active enrollment to another section of the same course, in one transaction: it
/// takes a seat in the new section (PENDING there if that section requires approval), gives up
/// its seat or waitlist place in the old one, and fills the old seat from the old waitlist. If
/// the new section has no free seat (or people waiting for one) it fails with `SECTION_FULL`
/// and the old seat is kept: the user never holds two sections, nor loses the one they have.
///
/// Both section rows are locked in id order, so switches in opposite directions queue instead of
/// deadlocking. The event records both sections in its details.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless the enrolled user or staff of the course; `BAD_USER_INPUT`
/// for the same section or a section of another course; `INVALID_TRANSITION` for a final status;
/// `SECTION_INACTIVE`; `SCHEDULE_CONFLICT`; `SECTION_FULL`.
pub async fn switch_section(
    db: &DatabaseConnection,
    viewer: &Viewer,
    enrollment_id: Uuid,
    to_section_id: Uuid,
) -> Result<enrollment::Model, ApiError> {
    retrying(|| async {
        let txn = begin_write(db).await?;
        let backend = txn.get_database_backend();
        let current = enrollment::Entity::find_by_id(enrollment_id)
            .one(&txn)
            .await?
            .ok_or(ApiError::NotFound("enrollment"))?;
        if current.section_id == to_section_id {
            return Err(ApiError::bad_input(
                "toSectionId",
                "the enrollment is already in this section",
            ));
        }
        let mut order = [current.section_id, to_section_id];
        order.sort();
        for id in order {
            for_update(section::Entity::find_by_id(id), backend)
                .one(&txn)
                .await?
                .ok_or(ApiError::NotFound("section"))?;
        }
        let locked = lock_for_change(&txn, viewer, enrollment_id).await?;
        locked.require_owner_or_staff()?;
        let (target, _) = section_with_course(&txn, to_section_id).await?;
        let row = &locked.row;
        if target.course_id != row.course_id {
            return Err(ApiError::bad_input(
                "toSectionId",
                "the section belongs to another course",
            ));
        }
        let to = if target.requires_approval {
            Pending
        } else {
            Registered
        };
        if !EnrollmentStatus::ACTIVE.contains(&row.status) {
            return Err(invalid(row.status, to));
        }
        if !target.is_active || !locked.course.is_active {
            return Err(ApiError::SectionInactive(
                "the section or its course is not active".into(),
            ));
        }
        check_schedule(&txn, row.user_id, &target, Some(row.id)).await?;
        if !take_seat(&txn, target.id, to).await? {
            return Err(ApiError::SectionFull);
        }
        let at = now();
        let updated = enrollment::Entity::update_many()
            .set(enrollment::ActiveModel {
                section_id: Set(target.id),
                status: Set(to),
                waitlist_ticket: Set(None),
                seat_reserved_at: Set(Some(at)),
                updated_at: Set(at),
                ..Default::default()
            })
            .filter(enrollment::Column::Id.eq(row.id))
            .filter(enrollment::Column::Status.eq(row.status))
            .filter(enrollment::Column::SectionId.eq(locked.section.id))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            return Err(invalid(row.status, to));
        }
        add_to_counter(&txn, locked.section.id, row.status, -1).await?;
        record_event(
            &txn,
            Transition {
                sections: vec![locked.section.id, target.id],
                details: Some(json!({
                    "fromSectionId": locked.section.id,
                    "toSectionId": target.id,
                })),
                ..transition(row, to, viewer, Some("switched section".into()), at)
            },
        )
        .await?;
        if row.status.holds_seat() {
            promote_into(&txn, locked.section.id, Some(viewer.id()), at).await?;
        }
        let row = enrollment::Entity::find_by_id(row.id)
            .one(&txn)
            .await?
            .ok_or(ApiError::NotFound("enrollment"))?;
        txn.commit().await?;
        Ok(row)
    })
    .await
}

/// The owner shows or hides an enrollment from fellow team members. Not a status change, so no
/// event.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` for anyone but the owner.
pub async fn set_visibility(
    db: &DatabaseConnection,
    viewer: &Viewer,
    enrollment_id: Uuid,
    visibility: bool,
) -> Result<enrollment::Model, ApiError> {
    let row = enrollment::Entity::find_by_id(enrollment_id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("enrollment"))?;
    if row.user_id != viewer.id() {
        return Err(ApiError::forbidden(
            "only the enrolled user sets its visibility",
        ));
    }
    let mut model: enrollment::ActiveModel = row.into();
    model.visibility = Set(visibility);
    model.updated_at = Set(now());
    Ok(model.update(db).await?)
}

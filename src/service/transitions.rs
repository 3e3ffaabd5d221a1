//! Status changes of an existing enrollment: withdraw, cancel, approve, complete, fail. They
//! share one body ([`change`]): lock the section then the enrollment, check who may make the
//! change, move the status with a conditional update, move the counters, record the event, and
//! fill a freed seat from the waitlist — all in one write.
//!
//! Lock order is always the section row first, then enrollment rows, so that two transactions
//! touching the same section queue on it instead of deadlocking. On SQLite the write
//! transaction (`BEGIN IMMEDIATE`) already serializes writers.

use entity::{
    certification, course, enrollment, section,
    types::{
        EnrollmentRecord,
        EnrollmentStatus::{self, *},
    },
};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    eligibility::{self, Schedule},
    for_update, offers, promotion, seats,
};
use crate::{
    domain::{notification::OFFER_DECLINED, status::can_transition, validate, viewer::Viewer},
    error::ApiError,
    store::{Store, Transition, Tx},
};

/// The enrolled user (or staff of the course) leaves: WITHDRAWN, final. A freed seat goes to the
/// earliest waitlisted enrollment in the same transaction.
///
/// # Errors
/// `BAD_USER_INPUT` for an over-long reason; `NOT_FOUND`; `FORBIDDEN` for anyone else;
/// `INVALID_TRANSITION` from a final status.
pub async fn withdraw(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
    reason: Option<String>,
) -> Result<enrollment::Model, ApiError> {
    with_reason(
        store,
        viewer,
        enrollment_id,
        Withdrawn,
        Permitted::OwnerOrStaff,
        reason,
    )
    .await
}

/// The student (or staff of the course, for them) takes the seat they were offered: REGISTERED,
/// or PENDING in a section that requires approval. The seat is checked again as a new one would
/// be (invariants 3, 7 and 8). An offer past its deadline that the timer has not passed on yet
/// is passed on here, in this write, and the answer is `OFFER_EXPIRED`.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` for anyone else; `INVALID_TRANSITION` unless OFFERED;
/// `OFFER_EXPIRED`; `SECTION_INACTIVE`; `PREREQUISITES_MISSING`; `SCHEDULE_CONFLICT`.
pub async fn accept_offer(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
) -> Result<enrollment::Model, ApiError> {
    let change = Change {
        to: Registered,
        by: Permitted::OwnerOrStaff,
        reason: None,
        evidence: None,
        expected: Some(Offered),
        schedule: Schedule::Checked,
        accepting: true,
    };
    let row = apply_change(store, viewer, enrollment_id, &change).await?;
    if row.status == Withdrawn {
        return Err(ApiError::OfferExpired);
    }
    Ok(row)
}

/// The student (or staff of the course, for them) turns an offered seat down: WITHDRAWN, and
/// the seat is offered to the next eligible waiter in the same write.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` for anyone else; `INVALID_TRANSITION` unless OFFERED.
pub async fn decline_offer(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
) -> Result<enrollment::Model, ApiError> {
    let change = Change {
        to: Withdrawn,
        by: Permitted::OwnerOrStaff,
        reason: Some(OFFER_DECLINED),
        evidence: None,
        expected: Some(Offered),
        schedule: Schedule::Checked,
        accepting: false,
    };
    apply_change(store, viewer, enrollment_id, &change).await
}

/// Staff cancel an enrollment (a refused approval is a cancelled PENDING one): CANCELLED, final;
/// a freed seat is filled from the waitlist. With `expected`, only an enrollment still in that
/// status is cancelled, so a client never acts on one that changed since it looked.
///
/// # Errors
/// `BAD_USER_INPUT` for an empty reason; `NOT_FOUND`; `FORBIDDEN` unless staff of the course;
/// `INVALID_TRANSITION` (also when the status is not `expected`).
pub async fn cancel(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
    reason: String,
    expected: Option<EnrollmentStatus>,
) -> Result<enrollment::Model, ApiError> {
    let reason = reason_text(Some(reason))?
        .ok_or_else(|| ApiError::bad_input("reason", "a reason is required"))?;
    let change = Change {
        to: Cancelled,
        by: Permitted::Staff("cancel enrollments"),
        reason: Some(&reason),
        evidence: None,
        expected,
        schedule: Schedule::Checked,
        accepting: false,
    };
    apply_change(store, viewer, enrollment_id, &change).await
}

/// Staff approve a PENDING enrollment; it keeps the seat it held and becomes REGISTERED. The
/// seat is checked again as a new one would be (invariants 3, 7 and 8): the section and course
/// active, prerequisites unexpired, no overlap with the user's other seats unless `schedule`
/// says staff override it (recorded on the event).
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless staff of the section (of its course, or its teaching assistant);
/// `INVALID_TRANSITION` unless PENDING;
/// `SECTION_INACTIVE`; `PREREQUISITES_MISSING`; `SCHEDULE_CONFLICT`.
pub async fn approve(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
    schedule: Schedule,
) -> Result<enrollment::Model, ApiError> {
    let change = Change {
        to: Registered,
        by: Permitted::SectionStaff("approve enrollments"),
        reason: None,
        evidence: None,
        expected: None,
        schedule,
        accepting: false,
    };
    apply_change(store, viewer, enrollment_id, &change).await
}

/// Staff confirm attendance: COMPLETED, with the evidence, who and when. A course with a
/// certificate validity issues exactly one certification, expiring that many months later
/// (invariant 5); concurrent or repeated confirmations find the enrollment completed and fail
/// with `INVALID_TRANSITION`, and the unique index on `certifications.enrollment_id` backs that
/// up.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless staff of the section (of its course, or its teaching assistant),
/// and always for one's own enrollment;
/// `INVALID_TRANSITION`.
pub async fn complete(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
    evidence: Option<serde_json::Value>,
) -> Result<enrollment::Model, ApiError> {
    validate::evidence(evidence.as_ref())?;
    let change = Change {
        to: Completed,
        by: Permitted::SectionStaffNotSelf("confirm attendance"),
        reason: None,
        evidence: evidence.as_ref(),
        expected: None,
        schedule: Schedule::Checked,
        accepting: false,
    };
    apply_change(store, viewer, enrollment_id, &change).await
}

/// The most enrollments one bulk confirmation takes.
pub const BULK_MAX: usize = 500;

/// Attendance for a whole session at once: [`complete`] for each enrollment, each its own
/// write with its own event and certification, and one result per id in the order given.
///
/// # Errors
/// `BAD_USER_INPUT` for more than [`BULK_MAX`] ids; each id's own error is in its result.
pub async fn complete_many(
    store: &Store,
    viewer: &Viewer,
    enrollment_ids: Vec<Uuid>,
    evidence: Option<serde_json::Value>,
) -> Result<Vec<(Uuid, Result<enrollment::Model, ApiError>)>, ApiError> {
    if enrollment_ids.len() > BULK_MAX {
        return Err(ApiError::bad_input(
            "enrollmentIds",
            format!("at most {BULK_MAX} at once"),
        ));
    }
    validate::evidence(evidence.as_ref())?;
    let mut results = Vec::with_capacity(enrollment_ids.len());
    for id in enrollment_ids {
        let result = complete(store, viewer, id, evidence.clone()).await;
        results.push((id, result));
    }
    Ok(results)
}

/// Staff record that a registered student did not complete: FAILED, final.
///
/// # Errors
/// `BAD_USER_INPUT` for an over-long reason; `NOT_FOUND`; `FORBIDDEN` unless staff of the course
/// (never one's own); `INVALID_TRANSITION`.
pub async fn fail(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
    reason: Option<String>,
) -> Result<enrollment::Model, ApiError> {
    let by = Permitted::StaffNotSelf("record a failure");
    with_reason(store, viewer, enrollment_id, Failed, by, reason).await
}

/// Who may make a change.
#[derive(Clone, Copy)]
enum Permitted {
    /// The enrolled user or staff of the course.
    OwnerOrStaff,
    /// Staff of the course; the text says what they do, for the refusal.
    Staff(&'static str),
    /// Staff of the course, never for their own enrollment (attendance and completion are never
    /// self-confirmed).
    StaffNotSelf(&'static str),
    /// Staff of the course or the section's teaching assistant.
    SectionStaff(&'static str),
    /// The same, never for their own enrollment.
    SectionStaffNotSelf(&'static str),
}

/// One status change as the use case asks for it.
struct Change<'a> {
    to: EnrollmentStatus,
    by: Permitted,
    reason: Option<&'a str>,
    evidence: Option<&'a serde_json::Value>,
    /// The status the client saw: a change from any other fails with `INVALID_TRANSITION`.
    expected: Option<EnrollmentStatus>,
    /// For a change that confirms a seat (approval): whether overlapping meetings are checked.
    schedule: Schedule,
    /// Accepting an offer: from OFFERED only, to a seat (PENDING where staff approve).
    accepting: bool,
}

/// A change whose only detail is an optional reason.
async fn with_reason(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
    to: EnrollmentStatus,
    by: Permitted,
    reason: Option<String>,
) -> Result<enrollment::Model, ApiError> {
    let reason = reason_text(reason)?;
    let change = Change {
        to,
        by,
        reason: reason.as_deref(),
        evidence: None,
        expected: None,
        schedule: Schedule::Checked,
        accepting: false,
    };
    apply_change(store, viewer, enrollment_id, &change).await
}

async fn apply_change(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
    change: &Change<'_>,
) -> Result<enrollment::Model, ApiError> {
    store
        .write(|tx| Box::pin(change_in(tx, viewer, enrollment_id, change)))
        .await
}

/// The shared body of every change: lock, check who, check the state machine, write the row,
/// the counters, the event, the certification of a completion, and fill a freed seat.
async fn change_in(
    tx: &Tx<'_>,
    viewer: &Viewer,
    enrollment_id: Uuid,
    change: &Change<'_>,
) -> Result<enrollment::Model, ApiError> {
    let locked = lock_for_change(tx, viewer, enrollment_id).await?;
    locked.require(change.by, viewer)?;
    let (row, mut to) = (&locked.row, change.to);
    let from = row.status;
    if change.expected.is_some_and(|expected| expected != from) {
        return Err(invalid(from, to));
    }
    let accepting = change.accepting;
    if accepting && from == Offered {
        if row.offer_expires_at.is_none_or(|at| at <= tx.now()) {
            offers::lapse(tx, row, tx.now()).await?;
            return reread(tx, row.id).await;
        }
        if locked.section.requires_approval {
            to = Pending;
        }
    }
    // Approval is the one way from PENDING to REGISTERED, accepting an offer the one way from
    // OFFERED to a seat; the state machine also allows WAITLISTED to a seat, but only as a
    // promotion.
    let seat_from = if accepting { Offered } else { Pending };
    if !can_transition(from, to) || (to == Registered && from != seat_from) {
        return Err(invalid(from, to));
    }
    let mut details = None;
    let mut record = None;
    if to == Withdrawn {
        let staff = locked.actor == Some(Actor::Staff);
        let (kept, late) = withdrawal(tx, &locked.section, from, staff).await?;
        record = Some(kept);
        if late {
            details = Some(json!({ "late": true }));
        }
    }
    if to == Registered || accepting {
        eligibility::lock_user(tx, row.user_id).await?;
        let (section, course) = (&locked.section, &locked.course);
        let at = tx.now();
        eligibility::check_seat(
            tx,
            row.user_id,
            section,
            course,
            Some(row.id),
            change.schedule,
            at,
        )
        .await?;
        if change.schedule == Schedule::Overridden {
            details = Some(json!({ "scheduleConflictOverride": true }));
        }
    }
    let at = tx.now();
    let mut columns = enrollment::ActiveModel {
        status: Set(to),
        updated_at: Set(at),
        ..Default::default()
    };
    match to {
        Withdrawn => {
            columns.withdrawn_at = Set(Some(at));
            columns.reason = Set(change.reason.map(str::to_owned));
            columns.record = Set(record);
        }
        Cancelled => {
            columns.cancelled_at = Set(Some(at));
            columns.reason = Set(change.reason.map(str::to_owned));
        }
        Failed => columns.reason = Set(change.reason.map(str::to_owned)),
        Completed => {
            columns.completed_at = Set(Some(at));
            columns.completed_by = Set(Some(viewer.id()));
            columns.completion_evidence = Set(change.evidence.cloned());
        }
        _ => {}
    }
    if from == Waitlisted {
        columns.waitlist_ticket = Set(None);
    }
    if from == Offered {
        columns.offer_expires_at = Set(None);
        columns.offer_remind_at = Set(None);
    }
    // A conditional update: a concurrent change makes this one fail rather than apply twice.
    let updated = enrollment::Entity::update_many()
        .set(columns)
        .filter(enrollment::Column::Id.eq(row.id))
        .filter(enrollment::Column::Status.eq(from))
        .exec(tx)
        .await?;
    if updated.rows_affected != 1 {
        return Err(invalid(from, to));
    }
    seats::moved(tx, locked.section.id, from, to).await?;
    super::record(
        tx,
        Transition {
            enrollment_id: row.id,
            user_id: row.user_id,
            course_id: row.course_id,
            sections: vec![row.section_id],
            from: Some(from),
            to,
            actor: Some(viewer.id()),
            reason: change.reason.map(str::to_owned),
            details,
            at,
        },
    )
    .await?;
    if to == Completed {
        issue_certification(tx, &locked, at).await?;
    }
    if from.holds_seat() && matches!(to, Withdrawn | Cancelled) {
        promotion::fill_free_seats(tx, locked.section.id).await?;
    }
    reread(tx, row.id).await
}

/// The deadline ladder of a withdrawal from `from` now (docs/design.md#time): what it leaves on
/// the transcript, and whether it comes after the withdrawal deadline (then only `staff` may
/// make it, recorded late). Leaving a waitlist (nothing held yet) leaves no record at any time.
///
/// # Errors
/// `DEADLINE_PASSED` for a student after the withdrawal deadline; the database fails.
pub(crate) async fn withdrawal(
    tx: &Tx<'_>,
    section: &section::Model,
    from: EnrollmentStatus,
    staff: bool,
) -> Result<(EnrollmentRecord, bool), ApiError> {
    if !from.holds_seat() || section.term_id.is_none() {
        return Ok((EnrollmentRecord::None, false));
    }
    let term = super::term_of(tx, section).await?;
    let ladder = crate::domain::calendar::deadlines(term.as_ref()).at(tx.now());
    if ladder.past_deadline && !staff {
        return Err(ApiError::DeadlinePassed(
            "the term's withdrawal deadline has passed; ask the course's staff".into(),
        ));
    }
    Ok((ladder.record, ladder.past_deadline))
}

/// An enrollment as this write left it.
async fn reread(tx: &Tx<'_>, id: Uuid) -> Result<enrollment::Model, ApiError> {
    enrollment::Entity::find_by_id(id)
        .one(tx)
        .await?
        .ok_or(ApiError::NotFound("enrollment"))
}

/// The certification a completed enrollment earns, when its course issues one.
async fn issue_certification(
    tx: &Tx<'_>,
    locked: &Locked,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApiError> {
    let Some(months) = locked.course.certificate_validity_months else {
        return Ok(());
    };
    let issued = certification::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(locked.row.user_id),
        course_id: Set(locked.row.course_id),
        enrollment_id: Set(locked.row.id),
        issued_at: Set(at),
        expires_at: Set(at.checked_add_months(chrono::Months::new(months.unsigned_abs()))),
        expiry_notified_at: Set(None),
    }
    .insert(tx)
    .await
    .map_err(|e| ApiError::on_unique_violation(e, || invalid(Completed, Completed)))?;
    let message =
        crate::domain::notification::certification_issued(&locked.course.name, issued.expires_at);
    super::notifications::notify(tx, locked.row.user_id, Some(locked.row.id), message).await?;
    Ok(())
}

/// Who is asking to change an enrollment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Actor {
    /// The enrolled user themself.
    Owner,
    /// Staff who manage the course.
    Staff,
}

/// An enrollment locked for a change, with its section and course, and who the viewer is to it.
pub(crate) struct Locked {
    pub row: enrollment::Model,
    pub section: section::Model,
    pub course: course::Model,
    pub actor: Option<Actor>,
    /// The viewer is the section's teaching assistant.
    pub assistant: bool,
}

impl Locked {
    fn require(&self, permitted: Permitted, viewer: &Viewer) -> Result<(), ApiError> {
        let (what, not_own, assistant_too) = match permitted {
            Permitted::OwnerOrStaff => return self.require_owner_or_staff(),
            Permitted::Staff(what) => (what, false, false),
            Permitted::StaffNotSelf(what) => (what, true, false),
            Permitted::SectionStaff(what) => (what, false, true),
            Permitted::SectionStaffNotSelf(what) => (what, true, true),
        };
        let staff = self.actor == Some(Actor::Staff) || (assistant_too && self.assistant);
        if !staff || (not_own && self.row.user_id == viewer.id()) {
            return Err(ApiError::forbidden(format!(
                "only staff of the {} {what}{}",
                if assistant_too { "section" } else { "course" },
                if not_own {
                    ", never for themselves"
                } else {
                    ""
                }
            )));
        }
        Ok(())
    }

    /// The enrolled user or staff of the course.
    pub(crate) fn require_owner_or_staff(&self) -> Result<(), ApiError> {
        match self.actor {
            Some(_) => Ok(()),
            None => Err(ApiError::forbidden("not your enrollment")),
        }
    }
}

/// Loads an enrollment for a change by `viewer`, decides who they are to it, and locks the
/// section row then the enrollment row (in that order). If a concurrent switch moved the
/// enrollment between the read and the locks, it locks the new section too and reads again.
pub(crate) async fn lock_for_change(
    conn: &impl ConnectionTrait,
    viewer: &Viewer,
    enrollment_id: Uuid,
) -> Result<Locked, ApiError> {
    let backend = conn.get_database_backend();
    let mut section_id = enrollment::Entity::find_by_id(enrollment_id)
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound("enrollment"))?
        .section_id;
    for _ in 0..3 {
        let section = for_update(section::Entity::find_by_id(section_id), backend)
            .one(conn)
            .await?
            .ok_or(ApiError::NotFound("section"))?;
        let row = for_update(enrollment::Entity::find_by_id(enrollment_id), backend)
            .one(conn)
            .await?
            .ok_or(ApiError::NotFound("enrollment"))?;
        if row.section_id != section.id {
            section_id = row.section_id;
            continue;
        }
        let course = course::Entity::find_by_id(row.course_id)
            .one(conn)
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
            assistant: viewer.assists(&section),
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

pub(crate) fn invalid(from: EnrollmentStatus, to: EnrollmentStatus) -> ApiError {
    ApiError::InvalidTransition {
        from: from.to_value(),
        to: to.to_value(),
    }
}

fn reason_text(reason: Option<String>) -> Result<Option<String>, ApiError> {
    validate::description("reason", reason.as_deref(), 2000)
}

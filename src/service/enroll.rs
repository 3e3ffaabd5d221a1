//! `enroll`: a seat, a place on the waitlist, or a clear refusal (docs/design.md#enrollment-checks).

use entity::{
    course, enrollment, section,
    types::EnrollmentStatus::{self, Pending, Registered, Waitlisted},
    user,
};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, IdenStatic,
    Iterable, JoinType, QueryTrait, SelectA, SelectB,
    sea_query::{Alias, Expr, ExprTrait, IntoTableRef, LockType},
};
use serde_json::json;
use uuid::Uuid;

use super::{eligibility, for_update, lottery, promotion, seats, terms};
use crate::{
    domain::{calendar::Window, viewer::Viewer},
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

/// Enrolls a user in a section: a seat (REGISTERED, or PENDING when the section requires
/// approval), else a place on the waitlist, else `SECTION_FULL`.
///
/// One transaction, read top to bottom (docs/architecture.md#the-write-path): lock the user;
/// read the checks in docs/design.md's order (the section and course are active; every
/// prerequisite has an unexpired certification; no active enrollment in the course; no
/// schedule conflict with the user's other active seats); take the seat (or, for staff, a seat
/// beyond capacity, or else a waitlist ticket) by a conditional update of the section, which
/// locks it; insert the enrollment; record the event; fill seats behind the waitlist if the
/// newcomer joined it.
///
/// # Errors
/// `FORBIDDEN` for proxy enrollment or overrides by anyone who does not manage the course, and
/// for proxy enrollment of a user of another organization (admins excepted);
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
    let user_id = request.user_id.unwrap_or(viewer.id());
    // The user is locked first, so that the checks of one user's seats run one at a time
    // (invariant 7); the section is read unlocked here and locked last, by the update that
    // takes its seat, so a busy section is held only from that statement to the commit.
    let (section, course, user) = read(tx, request.section_id, user_id).await?;
    let proxy = user_id != viewer.id();
    let overrides = request.override_capacity || request.override_schedule_conflict;
    if (proxy || overrides) && !viewer.can_manage_course(&course) {
        return Err(ApiError::forbidden(
            "only staff of the course may enroll someone else or override its limits",
        ));
    }
    let user = match user {
        Some(user) => user,
        None => eligibility::lock_user(tx, user_id).await?,
    };
    if proxy && !viewer.is_admin() && user.organization_id != Some(course.organization_id) {
        return Err(ApiError::forbidden(
            "staff enroll only users of the course's organization",
        ));
    }
    if !section.is_active || !course.is_active {
        return Err(ApiError::SectionInactive(
            "the section or its course is not active".into(),
        ));
    }
    let mut details = serde_json::Map::new();
    // The term, for the window and the dates (a section without one reads nothing more).
    let term = super::term_of(tx, &section).await?;
    let window = check_window(tx, &section, term.as_ref(), user_id, proxy, &mut details).await?;
    // A student's own request in the first minutes of a lottery term's window waits for the
    // draw; staff enrolling someone else are not part of the lottery.
    if let (Some(term), Some(window), false) = (&term, &window, proxy)
        && let Some(draw_at) = lottery::admission(tx, term, window).await?
    {
        return lottery::request(
            tx,
            viewer,
            request.visibility,
            &section,
            &course,
            draw_at,
            term,
        )
        .await;
    }
    // The checks, read in a statement of their own after the user's lock: under READ
    // COMMITTED it sees every seat the user's previous write committed.
    let checked_at = tx.now();
    let reads = eligibility::Reads {
        prerequisites_at: Some(checked_at),
        active_in_course: true,
        overlaps: if request.override_schedule_conflict {
            None
        } else {
            eligibility::Reads::overlaps_of(&section, None)
        },
    };
    let standing = eligibility::standing(tx, user_id, course.id, reads).await?;
    standing.prerequisites()?;
    if standing.active.is_some() {
        return Err(ApiError::AlreadyEnrolled);
    }
    let span = crate::domain::calendar::span(&section, term.as_ref());
    if !request.override_schedule_conflict {
        standing.schedule(&section, span.as_ref())?;
    }

    // The seat, on the section as the checks saw it: the update re-checks its meetings and
    // approval rule on the row as the last commit left it, and locks it.
    let seat_status = |section: &section::Model| {
        if section.requires_approval {
            Pending
        } else {
            Registered
        }
    };
    let mut section = section;
    let mut took = seats::take_as_seen(tx, &section, seat_status(&section)).await?;
    if !took {
        // Full, people waiting, or changed since it was read: lock it and decide on what it is
        // now.
        let now = lock_section(tx, section.id).await?;
        if !now.is_active {
            return Err(ApiError::SectionInactive(
                "the section or its course is not active".into(),
            ));
        }
        if moved_in_time(&now, &section) {
            // Changed by staff since it was read: its window and dates are checked again.
            let term = super::term_of(tx, &now).await?;
            details.clear();
            check_window(tx, &now, term.as_ref(), user_id, proxy, &mut details).await?;
            if !request.override_schedule_conflict {
                eligibility::check_schedule(tx, user_id, &now, None).await?;
            }
        }
        section = now;
        took = seats::take(tx, section.id, seat_status(&section)).await?;
    }
    let seat_status = seat_status(&section);
    if request.override_schedule_conflict {
        details.insert("scheduleConflictOverride".into(), json!(true));
    }
    if !took && request.override_capacity {
        details.insert("capacityOverride".into(), json!(true));
    }
    let (status, ticket) =
        seats::seat_else_ticket(tx, section.id, seat_status, took, request.override_capacity)
            .await?;
    let row = enrollment::Model {
        enrolled_by: proxy.then_some(viewer.id()),
        prerequisite_check_at: Some(checked_at),
        waitlist_ticket: ticket,
        ..super::new_enrollment(user_id, &section, status, request.visibility, tx.now())
    };
    // The partial unique index settles a race between two transactions that both found no
    // active enrollment (the user's lock makes it one that bypassed `enroll`).
    let row = enrollment::ActiveModel::from(row)
        .insert(tx)
        .await
        .map_err(|e| ApiError::on_unique_violation(e, || ApiError::AlreadyEnrolled))?;
    record_enrollment(tx, viewer, &row, status, details).await?;
    if status == Waitlisted {
        // Free seats behind waiters who may not take them now: the newcomer joins the queue, and
        // the earliest eligible waiter (perhaps the newcomer) takes the seat.
        let promoted = promotion::fill_free_seats(tx, section.id).await?;
        if let Some(row) = promoted.into_iter().find(|p| p.id == row.id) {
            return Ok(row);
        }
    }
    Ok(row)
}

/// Whether staff changed what the checks read of `seen` (its meetings, term, dates, window)
/// since: then they are made again on `now`.
fn moved_in_time(now: &section::Model, seen: &section::Model) -> bool {
    now.updated_at != seen.updated_at
        || now.schedule != seen.schedule
        || now.term_id != seen.term_id
        || (now.starts_on, now.ends_on) != (seen.starts_on, seen.ends_on)
        || (now.enrollment_opens_at, now.enrollment_closes_at)
            != (seen.enrollment_opens_at, seen.enrollment_closes_at)
}

/// The section's enrollment window at this time, as it stands for the user (their appointment
/// in the term opens it for them): a student enrolls only while it is open
/// (`ENROLLMENT_NOT_OPEN` with their opening time, `ENROLLMENT_CLOSED`); staff enrolling someone
/// else may enroll outside it, and the event records it as late (`details.outsideWindow`).
/// Returns the window when it is open.
async fn check_window(
    tx: &Tx<'_>,
    section: &section::Model,
    term: Option<&entity::term::Model>,
    user_id: Uuid,
    proxy: bool,
    details: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Option<Window>, ApiError> {
    let window = terms::window_of(tx, section, term, user_id).await?;
    let Some((outside, refusal)) = window.at(tx.now()).refusal() else {
        return Ok(Some(window));
    };
    if !proxy {
        return Err(refusal);
    }
    details.insert("late".into(), json!(true));
    details.insert("outsideWindow".into(), json!(outside));
    Ok(None)
}

/// Records the event creating `row`, in `status`, with `details` (the overrides used), timed
/// now that the section's lock is held (invariant 6).
async fn record_enrollment(
    tx: &Tx<'_>,
    viewer: &Viewer,
    row: &enrollment::Model,
    status: EnrollmentStatus,
    details: serde_json::Map<String, serde_json::Value>,
) -> Result<(), ApiError> {
    super::record(
        tx,
        Transition {
            enrollment_id: row.id,
            user_id: row.user_id,
            course_id: row.course_id,
            sections: vec![row.section_id],
            from: None,
            to: status,
            actor: Some(viewer.id()),
            reason: None,
            details: (!details.is_empty()).then_some(serde_json::Value::Object(details)),
            at: tx.now(),
        },
    )
    .await?;
    Ok(())
}

/// The section, its course, and the user to enroll, locked, in one statement (on PostgreSQL
/// `FOR UPDATE OF users`; the section is locked later, by the update that takes its seat, and
/// the course row stays unlocked, as other writers of the course's sections expect). The user
/// is `None` when the statement found no such user: the caller decides between `FORBIDDEN` and
/// `NOT_FOUND` (see [`eligibility::lock_user`]).
///
/// # Errors
/// `NOT_FOUND` for an unknown section; the database fails.
async fn read(
    tx: &Tx<'_>,
    section_id: Uuid,
    user_id: Uuid,
) -> Result<(section::Model, course::Model, Option<user::Model>), ApiError> {
    let mut select = section::Entity::find_by_id(section_id)
        .find_also_related(course::Entity)
        .into_query();
    for column in user::Column::iter() {
        select.expr_as(
            Expr::col((user::Entity, column)),
            Alias::new(format!("{USER}{}", column.as_str())),
        );
    }
    select.join(
        JoinType::InnerJoin,
        user::Entity,
        Expr::col((user::Entity, user::Column::Id)).eq(user_id),
    );
    if tx.get_database_backend() == DatabaseBackend::Postgres {
        select.lock_with_tables(LockType::Update, [user::Entity.into_table_ref()]);
    }
    if let Some(row) = tx.query_one(&select).await? {
        let course = course::Model::from_query_result_optional(&row, SelectB.as_str())?;
        if let Some(course) = course {
            let section = section::Model::from_query_result(&row, SelectA.as_str())?;
            let user = user::Model::from_query_result(&row, USER)?;
            return Ok((section, course, Some(user)));
        }
    }
    match section::Entity::find_by_id(section_id)
        .find_also_related(course::Entity)
        .one(tx)
        .await?
    {
        Some((section, Some(course))) => Ok((section, course, None)),
        _ => Err(ApiError::NotFound("section")),
    }
}

/// The column prefix of the user in [`read`]'s statement, beside SeaORM's `A_` and `B_`.
const USER: &str = "C_";

/// The section locked for the write (PostgreSQL; SQLite's write lock holds it already).
async fn lock_section(tx: &Tx<'_>, section_id: Uuid) -> Result<section::Model, ApiError> {
    for_update(
        section::Entity::find_by_id(section_id),
        tx.get_database_backend(),
    )
    .one(tx)
    .await?
    .ok_or(ApiError::NotFound("section"))
}

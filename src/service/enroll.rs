//! `enroll`: a seat, a place on the waitlist, or a clear refusal (docs/design.md#enrollment-checks).

use entity::{
    course, enrollment, section,
    types::EnrollmentStatus::{self, Pending, Registered, Waitlisted},
    user,
};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, IdenStatic,
    Iterable, JoinType, QuerySelect, QueryTrait, SelectA, SelectB, Set,
    sea_query::{Alias, Expr, ExprTrait, IntoTableRef, LockType},
};
use serde_json::json;
use uuid::Uuid;

use super::{eligibility, promotion, seats};
use crate::{
    auth::Viewer,
    domain::seats::Seats,
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
/// Every check runs inside the write transaction, under the user's lock, in docs/design.md's
/// order: the section and course are active; every prerequisite has an unexpired
/// certification; no active enrollment in the course; no schedule conflict with the user's
/// other active seats; then the seat, whose conditional update locks the section and requires
/// it to be as the checks saw it.
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
    // The user is locked first; the section is read without a lock and locked last, by the
    // conditional update that takes its seat, so a busy section is held for that statement and
    // the commit only (docs/architecture.md#the-write-path).
    let user_id = request.user_id.unwrap_or(viewer.id());
    let postgres = tx.get_database_backend() == DatabaseBackend::Postgres;
    let checked_at = tx.now();
    // What the checks read. On PostgreSQL it is read with the section and the user's lock, in
    // the same statement; that statement's snapshot may be older than the lock, so the seat's
    // statement confirms it (`Standing::unchanged`), and a refusal is decided on a new read.
    let early = eligibility::Reads {
        prerequisites_at: Some(checked_at),
        active_in_course: true,
        overlaps: (!request.override_schedule_conflict).then_some((request.section_id, None)),
    };
    let (mut section, course, user, early_standing) =
        read(tx, request.section_id, user_id, postgres.then_some(&early)).await?;
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
    // What the checks read once `section` is known, after the lock.
    let reads_for = |section: &section::Model| eligibility::Reads {
        overlaps: if request.override_schedule_conflict {
            None
        } else {
            eligibility::Reads::overlaps_of(section, None)
        },
        ..early
    };
    let (standing, unchanged) = match early_standing {
        Some(standing) if !standing.refuses(&section) => {
            let unchanged = standing.unchanged(user_id, course.id, &early);
            (standing, unchanged)
        }
        _ => (
            eligibility::standing(tx, user_id, course.id, reads_for(&section)).await?,
            None,
        ),
    };
    let check = |standing: &eligibility::Standing, section: &section::Model| {
        standing.prerequisites()?;
        if standing.active.is_some() {
            return Err(ApiError::AlreadyEnrolled);
        }
        standing.schedule(section)
    };
    check(&standing, &section)?;
    let seat_status = |section: &section::Model| {
        if section.requires_approval {
            Pending
        } else {
            Registered
        }
    };
    let mut details = serde_json::Map::new();
    if request.override_schedule_conflict {
        details.insert("scheduleConflictOverride".into(), json!(true));
    }
    let at = tx.now();
    let section_id = section.id;
    let row = |status: EnrollmentStatus, ticket: Option<i64>| enrollment::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        course_id: Set(course.id),
        section_id: Set(section_id),
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
        skip_reason: Set(None),
        notes_updated_at: Set(None),
        notes_updated_by: Set(None),
        skipped_at: Set(None),
        offer_expires_at: Set(None),
        offer_remind_at: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    };
    // The partial unique index settles a race between two transactions that both found no
    // active enrollment.
    let already = |e| ApiError::on_unique_violation(e, || ApiError::AlreadyEnrolled);
    if postgres {
        // The seat and the row holding it are one statement, on the section as it was read:
        // its update takes the section's lock and re-checks the conditions on the row as the
        // last commit left it, the meetings and approval rule checked above included. Not
        // tried when the section was full, inactive or had people waiting.
        let free = Seats::from(&section);
        if section.is_active && free.waitlisted == 0 && !free.is_full() {
            let status = seat_status(&section);
            let seated =
                seats::take_for(tx, &section, status, row(status, None), unchanged.clone())
                    .await
                    .map_err(already)?;
            if let Some(row) = seated {
                record_enrollment(tx, viewer, &row, status, details).await?;
                return Ok(row);
            }
        }
        // Lock the section and decide on what it is now.
        let (now, _) = section_with_course(tx, section.id, true).await?;
        if !now.is_active {
            return Err(ApiError::SectionInactive(
                "the section or its course is not active".into(),
            ));
        }
        if unchanged.is_some() {
            // What the checks read before the lock, read again now that it is held.
            let standing = eligibility::standing(tx, user_id, course.id, reads_for(&now)).await?;
            check(&standing, &now)?;
        } else if now.schedule != section.schedule && !request.override_schedule_conflict {
            eligibility::check_schedule(tx, user_id, &now, None).await?;
        }
        section = now;
    }
    let seat_status = seat_status(&section);
    let (seated, took) = if postgres {
        let seated = seats::take_for(tx, &section, seat_status, row(seat_status, None), None)
            .await
            .map_err(already)?;
        let took = seated.is_some();
        (seated, took)
    } else {
        (None, seats::take(tx, section.id, seat_status).await?)
    };
    // A seat, else (staff override) a seat beyond capacity, else a waitlist ticket. The section
    // row is locked, so what the conditional updates decide stays true until commit.
    let (status, ticket) = if took {
        (seat_status, None)
    } else if request.override_capacity {
        seats::add(tx, section.id, seat_status, 1).await?;
        details.insert("capacityOverride".into(), json!(true));
        (seat_status, None)
    } else {
        match seats::join_waitlist(tx, section.id).await? {
            Some(ticket) => (Waitlisted, Some(ticket)),
            None => {
                return Err(ApiError::Conflict(
                    "the section changed meanwhile; try again".into(),
                ));
            }
        }
    };
    let row = match seated {
        Some(row) => row,
        None => row(status, ticket).insert(tx).await.map_err(already)?,
    };
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

/// Records the event creating `row`, in `status`, with `details` (the overrides used), timed
/// now that the section's lock is held (invariant 6).
async fn record_enrollment(
    tx: &Tx<'_>,
    viewer: &Viewer,
    row: &enrollment::Model,
    status: EnrollmentStatus,
    details: serde_json::Map<String, serde_json::Value>,
) -> Result<(), ApiError> {
    tx.record(Transition {
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
    })
    .await?;
    Ok(())
}

/// The section, its course, and the user to enroll, locked, in one statement (on PostgreSQL
/// `FOR UPDATE OF users`; the section is locked later, by the update that takes its seat, and
/// the course row stays unlocked, as other writers of the course's sections expect), with what
/// `reads` asks for the checks (PostgreSQL, see [`eligibility::standing_expr`]). The user is
/// `None` when the statement found no such user: the caller decides between `FORBIDDEN` and
/// `NOT_FOUND` (see [`eligibility::lock_user`]), and reads the checks' rows itself.
///
/// # Errors
/// `NOT_FOUND` for an unknown section; the database fails.
async fn read(
    tx: &Tx<'_>,
    section_id: Uuid,
    user_id: Uuid,
    reads: Option<&eligibility::Reads>,
) -> Result<
    (
        section::Model,
        course::Model,
        Option<user::Model>,
        Option<eligibility::Standing>,
    ),
    ApiError,
> {
    let mut select = section::Entity::find_by_id(section_id)
        .find_also_related(course::Entity)
        .into_query();
    let course_of_section = Expr::col((section::Entity, section::Column::CourseId));
    let standing = reads.and_then(|r| eligibility::standing_expr(user_id, course_of_section, r));
    if let Some(standing) = &standing {
        select.expr_as(standing.clone(), Alias::new(STANDING));
    }
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
            let standing = match standing {
                Some(_) => Some(eligibility::Standing::from_json(
                    row.try_get::<serde_json::Value>("", STANDING)?,
                )?),
                None => None,
            };
            return Ok((section, course, Some(user), standing));
        }
    }
    let (section, course) = section_with_course(tx, section_id, false).await?;
    Ok((section, course, None, None))
}

/// The column prefix of the user in [`read`]'s statement, beside SeaORM's `A_` and `B_`.
const USER: &str = "C_";

/// The column of [`read`]'s statement that holds what the checks read.
const STANDING: &str = "standing";

/// The section and its course; with `lock`, the section locked for the write (PostgreSQL;
/// SQLite's write lock holds it already).
async fn section_with_course(
    tx: &Tx<'_>,
    section_id: Uuid,
    lock: bool,
) -> Result<(section::Model, course::Model), ApiError> {
    let mut select = section::Entity::find_by_id(section_id).find_also_related(course::Entity);
    if lock && tx.get_database_backend() == DatabaseBackend::Postgres {
        QuerySelect::query(&mut select).lock_with_tables(LockType::Update, [section::Entity]);
    }
    match select.one(tx).await? {
        Some((section, Some(course))) => Ok((section, course)),
        _ => Err(ApiError::NotFound("section")),
    }
}

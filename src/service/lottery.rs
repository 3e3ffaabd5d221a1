//! Lottery admission (docs/design.md#registration-opening): in the first `lotteryMinutes` of a
//! student's window in a LOTTERY term, `enroll` makes an equal REQUESTED enrollment; when that
//! window ends, one draw takes its requests in the seed's HMAC order (`domain::lottery`) and
//! makes each what `enroll` would have made, with the same checks and the same seat SQL.
//!
//! A draw's key is the term and the end of the lottery window its requests were made in
//! (`enrollments.lottery_draw_at`): students with other appointments have draws of their own.
//! The draw runs in batches, each one transaction under the term's row lock, each taking the
//! lowest-ranked requests left: a replica killed mid-draw leaves whole batches done and the
//! rest REQUESTED, and whichever replica comes next goes on in the same order, so every
//! request is drawn exactly once and in order, never half. Until the draw is done, the
//! students of that window wait (`UNAVAILABLE`, retry) rather than enroll ahead of it. The seed
//! is revealed once every lottery window of the term has ended and nothing is left to draw.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, Utc};
use entity::{
    appointment, course, enrollment, section, term,
    types::{
        Admission,
        EnrollmentStatus::{self, Cancelled, Pending, Registered, Requested, Waitlisted},
    },
    user,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Set, Statement,
    sea_query::{Expr, ExprTrait, Query},
};
use serde_json::json;
use uuid::Uuid;

use super::{
    eligibility::{self, Schedule},
    for_update, promotion, seats,
};
use crate::{
    domain::{
        calendar::{self, Window, WindowState},
        lottery,
        notification::{LOTTERY_REFUSED, Place},
        viewer::Viewer,
    },
    error::ApiError,
    store::{Store, Transition, Tx},
};

/// The length of a lottery window when a LOTTERY term does not say.
pub const DEFAULT_MINUTES: i32 = 60;

/// Requests drawn per transaction: large enough that a draw of 100,000 is a few hundred
/// commits, small enough that a batch holds its locks for well under a second.
pub const BATCH: usize = 500;

/// `term` with a seed when it has become a LOTTERY term without one; a FIRST_COME term keeps
/// none.
pub(crate) fn arm(mut term: term::Model) -> term::Model {
    match term.admission {
        Admission::Lottery if term.lottery_seed.is_none() => {
            let (seed, hash) = lottery::new_seed();
            term.lottery_seed = Some(seed);
            term.lottery_seed_hash = Some(hash);
        }
        Admission::FirstCome => {
            term.lottery_seed = None;
            term.lottery_seed_hash = None;
        }
        Admission::Lottery => {}
    }
    term
}

/// A term's admission and lottery window may change until its lottery has begun (a request
/// made) or is over.
///
/// # Errors
/// `CONFLICT` after that; the database fails.
pub(crate) async fn may_change(
    tx: &Tx<'_>,
    before: &term::Model,
    after: &term::Model,
) -> Result<(), ApiError> {
    if (before.admission, before.lottery_minutes) == (after.admission, after.lottery_minutes) {
        return Ok(());
    }
    if before.lottery_drawn_at.is_some() || begun(tx, before.id).await? {
        return Err(ApiError::Conflict(
            "the term's lottery has begun: its admission and lotteryMinutes stay as they are"
                .into(),
        ));
    }
    Ok(())
}

/// Whether any request was made in the term's lottery.
async fn begun(tx: &Tx<'_>, term_id: Uuid) -> Result<bool, ApiError> {
    let found = enrollment::Entity::find()
        .select_only()
        .column(enrollment::Column::Id)
        .filter(enrollment::Column::LotteryDrawAt.is_not_null())
        .filter(enrollment::Column::SectionId.in_subquery(sections_of(term_id)))
        .limit(1)
        .into_tuple::<Uuid>()
        .one(tx)
        .await?;
    Ok(found.is_some())
}

/// The ids of a term's sections, as a subquery.
fn sections_of(term_id: Uuid) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(section::Column::Id)
        .from(section::Entity)
        .and_where(Expr::col(section::Column::TermId).eq(term_id))
        .to_owned()
}

/// What the lottery makes of a student's own `enroll` in `term` now, their window being open:
/// the end of their lottery window while it lasts (the request waits for that draw), `None`
/// for first come, first served (not a LOTTERY term, no opening time, the lottery over, or
/// the student's draw done).
///
/// # Errors
/// `UNAVAILABLE` while the student's draw is under way; the database fails.
pub(crate) async fn admission(
    tx: &Tx<'_>,
    term: &term::Model,
    window: &Window,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    if term.admission != Admission::Lottery || term.lottery_drawn_at.is_some() {
        return Ok(None);
    }
    let (Some(opens_at), Some(minutes)) = (window.opens_at, term.lottery_minutes) else {
        return Ok(None);
    };
    let draw_at = opens_at + chrono::Duration::minutes(i64::from(minutes));
    if tx.now() < draw_at {
        return Ok(Some(draw_at));
    }
    if left_to_draw(tx, term.id, draw_at).await? {
        return Err(ApiError::LotteryDrawing);
    }
    Ok(None)
}

/// Whether requests of the draw `(term, draw_at)` are still waiting for it.
async fn left_to_draw(
    conn: &impl ConnectionTrait,
    term_id: Uuid,
    draw_at: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let found = requests(term_id, draw_at)
        .select_only()
        .column(enrollment::Column::Id)
        .limit(1)
        .into_tuple::<Uuid>()
        .one(conn)
        .await?;
    Ok(found.is_some())
}

/// The requests of the draw `(term, draw_at)` still waiting, in the draw's order: by rank
/// alone, the order of the partial index `enrollments_lottery_idx`, which a page of them then
/// reads without sorting the rest (two ids with one HMAC-SHA256 do not happen). The term is
/// checked row by row (`EXISTS`): as `section_id IN (the term's sections)`, SQLite read every
/// request left through the sections' index and sorted them, for each page.
fn requests(term_id: Uuid, draw_at: DateTime<Utc>) -> sea_orm::Select<enrollment::Entity> {
    let in_term = Query::select()
        .expr(Expr::val(1))
        .from(section::Entity)
        .and_where(
            Expr::col((section::Entity, section::Column::Id))
                .equals((enrollment::Entity, enrollment::Column::SectionId)),
        )
        .and_where(Expr::col((section::Entity, section::Column::TermId)).eq(term_id))
        .to_owned();
    enrollment::Entity::find()
        .filter(super::status_is(Requested))
        .filter(enrollment::Column::LotteryDrawAt.eq(draw_at))
        .filter(Expr::exists(in_term))
        .order_by_asc(enrollment::Column::LotteryRank)
}

/// Makes the student's REQUESTED enrollment in `section`, drawn at `draw_at`. The checks that
/// do not depend on the draw's order run now, so a request that could never be granted is
/// refused at once: the section and course are active (checked by the caller), every
/// prerequisite is held, no other active enrollment in the course. A request holds no seat and
/// conflicts with nothing until the draw.
///
/// # Errors
/// `PREREQUISITES_MISSING`; `ALREADY_ENROLLED`; the database fails.
pub(crate) async fn request(
    tx: &Tx<'_>,
    viewer: &Viewer,
    visibility: bool,
    section: &section::Model,
    course: &course::Model,
    draw_at: DateTime<Utc>,
    term: &term::Model,
) -> Result<enrollment::Model, ApiError> {
    let at = tx.now();
    let reads = eligibility::Reads {
        prerequisites_at: Some(at),
        active_in_course: true,
        overlaps: None,
    };
    let standing = eligibility::standing(tx, viewer.id(), course.id, reads).await?;
    standing.prerequisites()?;
    if standing.active.is_some() {
        return Err(ApiError::AlreadyEnrolled);
    }
    let row = super::new_enrollment(viewer.id(), section, Requested, visibility, at);
    let rank = term
        .lottery_seed
        .as_deref()
        .and_then(|seed| lottery::rank(seed, row.id))
        .ok_or_else(|| ApiError::Internal("a LOTTERY term without a seed".into()))?;
    let row = enrollment::ActiveModel::from(enrollment::Model {
        lottery_draw_at: Some(draw_at),
        lottery_rank: Some(rank),
        ..row
    });
    let row = row
        .insert(tx)
        .await
        .map_err(|e| ApiError::on_unique_violation(e, || ApiError::AlreadyEnrolled))?;
    super::record(
        tx,
        Transition {
            enrollment_id: row.id,
            user_id: row.user_id,
            course_id: row.course_id,
            sections: vec![row.section_id],
            from: None,
            to: Requested,
            actor: Some(viewer.id()),
            reason: None,
            details: Some(json!({ "lotteryDrawAt": draw_at })),
            at,
        },
    )
    .await?;
    Ok(row)
}

/// Runs every draw that is due (its lottery window ended, requests left), then reveals the
/// seed of each term whose lottery is over. Returns how many requests were drawn.
///
/// # Errors
/// The database fails; what was drawn before stays drawn.
pub async fn draw_due(store: &Store, batch: usize) -> Result<usize, ApiError> {
    let now = store.now();
    let due: Vec<(Uuid, DateTime<Utc>)> = enrollment::Entity::find()
        .select_only()
        .column(section::Column::TermId)
        .column(enrollment::Column::LotteryDrawAt)
        .distinct()
        .inner_join(section::Entity)
        .filter(super::status_is(Requested))
        .filter(enrollment::Column::LotteryDrawAt.lte(now))
        .filter(section::Column::TermId.is_not_null())
        .into_tuple()
        .all(store.db())
        .await?;
    let mut drawn = 0;
    for (term_id, draw_at) in due {
        drawn += draw(store, term_id, draw_at, batch).await?;
    }
    reveal(store).await?;
    Ok(drawn)
}

/// Runs the draw `(term, draw_at)` to its end, batch after batch; returns how many requests
/// this call drew (another replica may draw some of them).
///
/// # Errors
/// The database fails.
pub async fn draw(
    store: &Store,
    term_id: Uuid,
    draw_at: DateTime<Utc>,
    batch: usize,
) -> Result<usize, ApiError> {
    let batch = batch.max(1);
    let started = std::time::Instant::now();
    let mut drawn = 0;
    // The rank drawn last: the next batch reads the index from there rather than from the
    // lowest rank over every request drawn before it (their entries stay until vacuumed).
    // The last pass starts from the lowest rank again, for a request that arrived late.
    let mut after: Option<String> = None;
    loop {
        let (done, last) = store
            .write(|tx| Box::pin(draw_batch(tx, term_id, draw_at, batch, after.clone())))
            .await?;
        drawn += done;
        match last {
            Some(rank) => after = Some(rank),
            None if after.is_some() => after = None,
            None => break,
        }
    }
    if drawn > 0 {
        tracing::info!(
            %term_id,
            %draw_at,
            drawn,
            seconds = started.elapsed().as_secs_f64(),
            "lottery drawn"
        );
    }
    Ok(drawn)
}

/// Draws `(term, draw_at)` as [`draw`] does, but each request alone, one transaction each,
/// through [`draw_one`]: the path of one request that the batches follow, and are tested
/// against (`tests/api/lottery.rs`). Returns how many requests it drew.
///
/// # Errors
/// The database fails.
pub async fn draw_each(
    store: &Store,
    term_id: Uuid,
    draw_at: DateTime<Utc>,
) -> Result<usize, ApiError> {
    let mut drawn = 0;
    loop {
        let done = store
            .write(|tx| {
                Box::pin(async move {
                    let Some(term) =
                        for_update(term::Entity::find_by_id(term_id), tx.get_database_backend())
                            .one(tx)
                            .await?
                    else {
                        return Ok(false);
                    };
                    let Some(request) = requests(term_id, draw_at).one(tx).await? else {
                        return Ok(false);
                    };
                    draw_one(tx, &term, &request).await?;
                    Ok(true)
                })
            })
            .await?;
        if !done {
            return Ok(drawn);
        }
        drawn += 1;
    }
}

/// One batch: under the term's row lock (PostgreSQL; SQLite's write lock), the `batch`
/// lowest-ranked requests left (ranked after `after`, when given), each made what `enroll`
/// would make of it, in rank order. Returns how many were drawn and, when more may be left,
/// the rank of the last one drawn.
///
/// The batch is decided on rows read once: its users, sections and requests locked in the
/// order of every write (users, sections, enrollments; docs/architecture.md), what the checks
/// read about its users ([`eligibility::Standings`]), then in memory, request by request, the
/// same rules as `enroll`: the window ([`calendar::window`]), the checks of a seat
/// ([`eligibility::Standings::check`]) and the seat or the waitlist ticket ([`seats::admit`]),
/// each seat granted counted for the requests after it. What was decided is written in a few
/// statements ([`write`]). A request that would wait in a section with free seats (its earlier
/// waiters passed over) needs the promotion `enroll` runs then, which reads other students: the
/// batch stops before it, and it goes through [`draw_one`], the path of one request.
async fn draw_batch(
    tx: &Tx<'_>,
    term_id: Uuid,
    draw_at: DateTime<Utc>,
    batch: usize,
    after: Option<String>,
) -> Result<(usize, Option<String>), ApiError> {
    let backend = tx.get_database_backend();
    let Some(term) = for_update(term::Entity::find_by_id(term_id), backend)
        .one(tx)
        .await?
    else {
        return Ok((0, None));
    };
    let requests = requests(term_id, draw_at)
        .apply_if(after, |q, rank| {
            q.filter(enrollment::Column::LotteryRank.gt(rank))
        })
        .limit(batch as u64)
        .all(tx)
        .await?;
    if requests.is_empty() {
        return Ok((0, None));
    }
    let more = requests.len() == batch;
    let users = sorted(requests.iter().map(|r| r.user_id));
    for_update(
        user::Entity::find()
            .filter(user::Column::Id.is_in(users.clone()))
            .order_by_asc(user::Column::Id),
        backend,
    )
    .select_only()
    .column(user::Column::Id)
    .into_tuple::<Uuid>()
    .all(tx)
    .await?;
    let mut sections = for_update(
        section::Entity::find()
            .filter(section::Column::Id.is_in(sorted(requests.iter().map(|r| r.section_id))))
            .order_by_asc(section::Column::Id),
        backend,
    )
    .all(tx)
    .await?;
    // A withdrawal may have come first. By id alone, as the requests were found: a status in
    // the statement would let the planner read by status, from statistics the draw makes stale.
    let live: HashSet<Uuid> = for_update(
        enrollment::Entity::find()
            .filter(enrollment::Column::Id.is_in(requests.iter().map(|r| r.id)))
            .order_by_asc(enrollment::Column::Id),
        backend,
    )
    .select_only()
    .column(enrollment::Column::Id)
    .column(enrollment::Column::Status)
    .into_tuple::<(Uuid, EnrollmentStatus)>()
    .all(tx)
    .await?
    .into_iter()
    .filter_map(|(id, status)| (status == Requested).then_some(id))
    .collect();
    let course_ids = sorted(sections.iter().map(|s| s.course_id));
    let courses: HashMap<Uuid, course::Model> = course::Entity::find()
        .filter(course::Column::Id.is_in(course_ids.clone()))
        .all(tx)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut standings = eligibility::Standings::read(tx, &users, &course_ids).await?;
    let at = tx.now();
    let before = sections.clone();
    let index: HashMap<Uuid, usize> = sections
        .iter()
        .enumerate()
        .map(|(k, s)| (s.id, k))
        .collect();
    let spans: Vec<_> = sections
        .iter()
        .map(|s| calendar::span(s, Some(&term)))
        .collect();
    let mut decided = Vec::new();
    let mut alone = None;
    for (i, request) in requests.iter().enumerate() {
        if !live.contains(&request.id) {
            continue;
        }
        let k = *index
            .get(&request.section_id)
            .ok_or(ApiError::NotFound("section"))?;
        let course = courses
            .get(&sections[k].course_id)
            .ok_or(ApiError::NotFound("course"))?;
        let outcome = decide(
            &term,
            request.user_id,
            &mut sections[k],
            course,
            spans[k].as_ref(),
            &standings,
            at,
        );
        let outcome = match outcome {
            Ok(Some(placed)) => Ok(placed),
            Ok(None) => {
                alone = Some(i);
                break;
            }
            Err(err) => Err(err),
        };
        let (to, ticket, reason) = match outcome {
            Ok((to, ticket)) => (to, ticket, None),
            Err(err) if refuses(&err) => (Cancelled, None, Some(refusal(&err))),
            Err(err) => return Err(err),
        };
        if to.holds_seat() {
            standings.hold(
                request.user_id,
                &sections[k],
                &course.name,
                spans[k].clone(),
            );
        }
        decided.push((request, k, to, ticket, reason));
    }
    seats::add_many(tx, &before, &sections).await?;
    write(tx, &decided, at).await?;
    let changes = decided
        .iter()
        .map(|&(request, k, to, _, ref reason)| {
            let section = &sections[k];
            let place = Place {
                course: courses.get(&section.course_id).map_or("", |c| &c.name),
                section: &section.name,
            };
            (drawn(request, to, reason.clone(), at), place)
        })
        .collect();
    super::record_many(tx, changes).await?;
    match alone {
        Some(i) => {
            draw_one(tx, &term, &requests[i]).await?;
            Ok((i + 1, requests[i].lottery_rank.clone()))
        }
        None if more => Ok((requests.len(), requests[batch - 1].lottery_rank.clone())),
        None => Ok((requests.len(), None)),
    }
}

/// A request of a batch as decided: the request, its section's place in the batch, the status,
/// the waitlist ticket and the reason.
type Decided<'a> = (
    &'a enrollment::Model,
    usize,
    EnrollmentStatus,
    Option<i64>,
    Option<String>,
);

/// `ids` sorted and without repeats: the order rows are locked in.
fn sorted(ids: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What `enroll` makes now of `user`'s request for the section `row` (locked, its counters as
/// moved by the requests before) of `course`, meeting on `span`: a seat or a ticket, with
/// `row`'s counters moved; `None`, with nothing moved, when it would wait while seats are free
/// (see [`draw_batch`]).
///
/// # Errors
/// A refusal ([`refuses`]).
fn decide(
    term: &term::Model,
    user: Uuid,
    row: &mut section::Model,
    course: &course::Model,
    span: Option<&calendar::Span>,
    standings: &eligibility::Standings,
    at: DateTime<Utc>,
) -> Result<Option<(EnrollmentStatus, Option<i64>)>, ApiError> {
    // Staff may have closed the window since the request was made.
    if let WindowState::Closed(closed_at) = calendar::window(row, Some(term)).at(at) {
        return Err(ApiError::EnrollmentClosed { closed_at });
    }
    standings.check(user, row, course, span, at)?;
    let seats = crate::domain::seats::Seats::from(&*row);
    if row.is_active && row.waitlist_enabled && row.waitlist_count > 0 && !seats.is_full() {
        return Ok(None);
    }
    let seat_status = if row.requires_approval {
        Pending
    } else {
        Registered
    };
    seats::admit(row, seat_status).map(Some)
}

/// Writes the outcomes of a batch, decided at `at`, in one statement, as [`draw_one`] writes one.
///
/// # Errors
/// The database fails.
async fn write(tx: &Tx<'_>, decided: &[Decided<'_>], at: DateTime<Utc>) -> Result<(), ApiError> {
    if decided.is_empty() {
        return Ok(());
    }
    let mut values: Vec<sea_orm::Value> = vec![at.into()];
    let mut rows = Vec::with_capacity(decided.len());
    for (request, _, to, ticket, reason) in decided {
        let n = values.len();
        rows.push(format!("({})", super::marks(n + 1, 4)));
        values.push(request.id.into());
        values.push(sea_orm::ActiveEnum::to_value(to).into());
        values.push((*ticket).into());
        values.push(reason.clone().into());
    }
    debug_assert!(Pending.holds_seat() && Registered.holds_seat() && !Waitlisted.holds_seat());
    let sql = format!(
        "WITH v (id, status, ticket, reason) AS (VALUES {}) UPDATE enrollments SET \
         status = v.status, waitlist_ticket = v.ticket, \
         seat_reserved_at = CASE WHEN v.status IN ('PENDING', 'REGISTERED') THEN $1 END, \
         prerequisite_check_at = $1, \
         cancelled_at = CASE WHEN v.status = 'CANCELLED' THEN $1 END, \
         reason = v.reason, updated_at = $1 FROM v WHERE enrollments.id = v.id",
        rows.join(", ")
    );
    tx.execute_raw(Statement::from_sql_and_values(
        tx.get_database_backend(),
        sql,
        values,
    ))
    .await?;
    Ok(())
}

/// The reason a refused request is cancelled with.
fn refusal(err: &ApiError) -> String {
    format!("{LOTTERY_REFUSED}: {} ({err})", err.code())
}

/// The status change of a drawn request: the system's, to `to` at `at`.
fn drawn(
    request: &enrollment::Model,
    to: EnrollmentStatus,
    reason: Option<String>,
    at: DateTime<Utc>,
) -> Transition {
    Transition {
        enrollment_id: request.id,
        user_id: request.user_id,
        course_id: request.course_id,
        sections: vec![request.section_id],
        from: Some(Requested),
        to,
        actor: None,
        reason,
        details: Some(json!({ "lotteryDrawAt": request.lottery_draw_at })),
        at,
    }
}

/// Makes one request what `enroll` would make of it now: the user's lock first, then the
/// enrollment as it stands (a withdrawal may have come first), then the checks of a seat
/// (the section and course active, the window not closed, prerequisites, no overlap with the
/// user's seats, this one left out), then the same seat SQL as `enroll`: a seat (REGISTERED,
/// or PENDING where staff approve), else a waitlist place, else a refusal, recorded as
/// CANCELLED with its reason. The outcome is the system's change: the student is notified.
async fn draw_one(
    tx: &Tx<'_>,
    term: &term::Model,
    request: &enrollment::Model,
) -> Result<(), ApiError> {
    eligibility::lock_user(tx, request.user_id).await?;
    let Some(row) = for_update(
        enrollment::Entity::find_by_id(request.id),
        tx.get_database_backend(),
    )
    .one(tx)
    .await?
    .filter(|row| row.status == Requested) else {
        return Ok(());
    };
    let (section, course) = super::section_with_course(tx, row.section_id).await?;
    let at = tx.now();
    let outcome = place(tx, term, &row, &section, &course, at).await;
    let (to, ticket, reason) = match outcome {
        Ok((to, ticket)) => (to, ticket, None),
        Err(err) if refuses(&err) => (Cancelled, None, Some(refusal(&err))),
        Err(err) => return Err(err),
    };
    enrollment::Entity::update_many()
        .set(enrollment::ActiveModel {
            status: Set(to),
            waitlist_ticket: Set(ticket),
            seat_reserved_at: Set(to.holds_seat().then_some(at)),
            prerequisite_check_at: Set(Some(at)),
            cancelled_at: Set((to == Cancelled).then_some(at)),
            reason: Set(reason.clone()),
            updated_at: Set(at),
            ..Default::default()
        })
        .filter(enrollment::Column::Id.eq(row.id))
        .exec(tx)
        .await?;
    super::record(tx, drawn(&row, to, reason, at)).await?;
    if to == Waitlisted {
        // As in `enroll`: seats free behind waiters who may not take them go to the earliest
        // eligible one, perhaps this one.
        promotion::fill_free_seats(tx, section.id).await?;
    }
    Ok(())
}

/// The checks and the seat of [`draw_one`].
async fn place(
    tx: &Tx<'_>,
    term: &term::Model,
    row: &enrollment::Model,
    section: &section::Model,
    course: &course::Model,
    at: DateTime<Utc>,
) -> Result<(EnrollmentStatus, Option<i64>), ApiError> {
    // Staff may have closed the window since the request was made.
    if let WindowState::Closed(closed_at) = calendar::window(section, Some(term)).at(at) {
        return Err(ApiError::EnrollmentClosed { closed_at });
    }
    eligibility::check_seat(
        tx,
        row.user_id,
        section,
        course,
        Some(row.id),
        Schedule::Checked,
        at,
    )
    .await?;
    let seat_status = if section.requires_approval {
        Pending
    } else {
        Registered
    };
    let took = seats::take(tx, section.id, seat_status).await?;
    seats::seat_else_ticket(tx, section.id, seat_status, took, false).await
}

/// Whether `err` is the draw's refusal of a request (recorded on it) rather than a failure.
fn refuses(err: &ApiError) -> bool {
    eligibility::is_ineligible(err)
        || matches!(
            err,
            ApiError::SectionFull | ApiError::EnrollmentClosed { .. } | ApiError::Conflict(_)
        )
}

/// Marks over every LOTTERY term whose last lottery window has ended with nothing left to
/// draw: `lottery_drawn_at`, from when its seed is shown.
async fn reveal(store: &Store) -> Result<(), ApiError> {
    let now = store.now();
    let waiting = term::Entity::find()
        .filter(term::Column::Admission.eq(Admission::Lottery))
        .filter(term::Column::LotteryDrawnAt.is_null())
        .all(store.db())
        .await?;
    for term in waiting {
        let Some(ends) = last_window_end(store.db(), &term).await? else {
            continue;
        };
        if ends > now || left_in_term(store.db(), term.id).await? {
            continue;
        }
        store
            .write(|tx| {
                Box::pin(async move {
                    term::Entity::update_many()
                        .col_expr(term::Column::LotteryDrawnAt, Expr::value(tx.now()))
                        .filter(term::Column::Id.eq(term.id))
                        .filter(term::Column::LotteryDrawnAt.is_null())
                        .exec(tx)
                        .await?;
                    Ok(())
                })
            })
            .await?;
    }
    Ok(())
}

/// When the last lottery window of a term ends: the latest of its opening, its sections' own
/// openings and its appointments, plus `lotteryMinutes`; `None` without any opening.
async fn last_window_end(
    conn: &impl ConnectionTrait,
    term: &term::Model,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let appointment = appointment::Entity::find()
        .filter(appointment::Column::TermId.eq(term.id))
        .order_by_desc(appointment::Column::OpensAt)
        .one(conn)
        .await?
        .map(|a| a.opens_at);
    let section = section::Entity::find()
        .select_only()
        .column(section::Column::EnrollmentOpensAt)
        .filter(section::Column::TermId.eq(term.id))
        .filter(section::Column::EnrollmentOpensAt.is_not_null())
        .order_by_desc(section::Column::EnrollmentOpensAt)
        .into_tuple::<Option<DateTime<Utc>>>()
        .one(conn)
        .await?
        .flatten();
    let last = [term.enrollment_opens_at, appointment, section]
        .into_iter()
        .flatten()
        .max();
    let minutes =
        chrono::Duration::minutes(i64::from(term.lottery_minutes.unwrap_or(DEFAULT_MINUTES)));
    Ok(last.map(|at| at + minutes))
}

/// Whether any request of the term is still waiting for its draw.
async fn left_in_term(conn: &impl ConnectionTrait, term_id: Uuid) -> Result<bool, ApiError> {
    let found = enrollment::Entity::find()
        .select_only()
        .column(enrollment::Column::Id)
        .filter(super::status_is(Requested))
        .filter(enrollment::Column::SectionId.in_subquery(sections_of(term_id)))
        .limit(1)
        .into_tuple::<Uuid>()
        .one(conn)
        .await?;
    Ok(found.is_some())
}

/// `roster serve`'s timer for the lottery: every second, the draws that are due and the seeds
/// to reveal.
pub struct Draws(pub Store);

#[async_trait::async_trait]
impl crate::jobs::Job for Draws {
    fn name(&self) -> &'static str {
        "lottery draws"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn run_once(&mut self) -> anyhow::Result<crate::jobs::Round> {
        Ok(draw_due(&self.0, BATCH).await?.into())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::DatabaseBackend;

    use super::*;

    /// The partial index the draw pages through (`WHERE status = 'REQUESTED'`) serves only a
    /// statement whose text says that status: bound as a parameter, PostgreSQL's generic plan
    /// scanned and sorted every enrollment for each page (68 ms a page at 100,000), and SQLite
    /// read them through the sections' index.
    #[test]
    fn the_draws_statements_name_the_status_of_the_partial_index() {
        for backend in [DatabaseBackend::Postgres, DatabaseBackend::Sqlite] {
            let sql = requests(Uuid::nil(), Utc::now()).build(backend).sql;
            assert!(
                sql.replace(['(', ')'], "")
                    .contains(r#""enrollments"."status" = 'REQUESTED'"#),
                "{backend:?}: {sql}"
            );
            assert!(sql.contains("EXISTS"), "{backend:?}: {sql}");
        }
    }
}

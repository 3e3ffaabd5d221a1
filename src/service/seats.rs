//! The seat SQL: every change to a section's counters is one conditional update on the section
//! row, whose row count decides (docs/design.md#invariants, 1 and 3). The update holds the row
//! (PostgreSQL) or the database (SQLite) until commit, so what it decided stays true.

use entity::{
    section,
    types::EnrollmentStatus::{self, *},
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, Query, UpdateStatement},
};
use uuid::Uuid;

use crate::{domain::seats::Seats, error::ApiError};

/// Capacity unlimited, or seats held (registered, pending, offered and finished; see
/// [`crate::domain::seats::Seats::taken`]) below it, for the section row in the statement's
/// scope.
pub(crate) fn has_free_seat() -> Condition {
    let column = |c: section::Column| Expr::col((section::Entity, c));
    Condition::any()
        .add(column(section::Column::Capacity).is_null())
        .add(
            column(section::Column::RegisteredCount)
                .add(column(section::Column::PendingCount))
                .add(column(section::Column::OfferedCount))
                .add(column(section::Column::FinishedCount))
                .lt(column(section::Column::Capacity)),
        )
}

/// Takes a seat for an enrollment entering `status` (REGISTERED or PENDING): the section is
/// active, nobody is waiting (a newcomer never jumps the queue), and a seat is free.
///
/// # Errors
/// The database fails.
pub(crate) async fn take(
    conn: &impl ConnectionTrait,
    section_id: Uuid,
    status: EnrollmentStatus,
) -> Result<bool, ApiError> {
    let Some(update) = take_statement(section_id, status) else {
        return Ok(false);
    };
    let result = conn.execute(&update).await?;
    Ok(result.rows_affected() == 1)
}

/// Takes a seat as [`take`] does, only while the section's meetings and approval rule are
/// still those of `seen`, the row the caller checked them on, which need not be locked: the
/// update re-checks every condition on the row as the last commit left it. `false` (and
/// nothing written) when no seat was free on those terms.
///
/// # Errors
/// The database fails.
pub(crate) async fn take_as_seen(
    conn: &impl ConnectionTrait,
    seen: &section::Model,
    status: EnrollmentStatus,
) -> Result<bool, ApiError> {
    let Some(mut update) = take_statement(seen.id, status) else {
        return Ok(false);
    };
    let column = |c: section::Column| Expr::col((section::Entity, c));
    update
        .and_where(column(section::Column::Schedule).eq(seen.schedule.clone()))
        .and_where(column(section::Column::RequiresApproval).eq(seen.requires_approval))
        // Any other change by staff (dates, term, window) since the checks read the section.
        .and_where(column(section::Column::UpdatedAt).eq(seen.updated_at));
    let result = conn.execute(&update).await?;
    Ok(result.rows_affected() == 1)
}

/// The conditional update of [`take`]; `None` for a status without a seat counter.
fn take_statement(section_id: Uuid, status: EnrollmentStatus) -> Option<UpdateStatement> {
    let column = counter(status)?;
    Some(
        Query::update()
            .table(section::Entity)
            .value(column, Expr::col(column).add(1))
            .and_where(Expr::col((section::Entity, section::Column::Id)).eq(section_id))
            .and_where(Expr::col((section::Entity, section::Column::IsActive)).eq(true))
            .and_where(Expr::col((section::Entity, section::Column::WaitlistCount)).eq(0))
            .cond_where(has_free_seat())
            .to_owned(),
    )
}

/// Hands out the next waitlist ticket, if the section is still full or has people waiting:
/// `None` when a seat has freed up since [`take`] failed (the caller tries the seat again).
///
/// The conditions sit in the update itself, so PostgreSQL checks them against the row as the
/// last committed change left it, under the row lock.
///
/// # Errors
/// `SECTION_FULL` when the section is full and has no waitlist; `SECTION_INACTIVE` if it was
/// deactivated meanwhile.
pub(crate) async fn join_waitlist(
    conn: &impl ConnectionTrait,
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
                .add(has_free_seat().not()),
        )
        .exec(conn)
        .await?;
    let row = section::Entity::find_by_id(section_id)
        .one(conn)
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
    let seats = Seats::from(&row);
    if seats.waitlisted > 0 || seats.is_full() {
        // Full, and no waitlist to join.
        return Err(ApiError::SectionFull);
    }
    Ok(None)
}

/// What an enrollment entering `seat_status` gets once [`take`] (or [`take_as_seen`]) has run:
/// the seat it took (`took`); else, with staff's capacity override, a seat beyond capacity;
/// else a waitlist ticket. The section's row is locked by then, so what the conditional
/// updates decide stays true until commit. Shared by `enroll` and the lottery's draw.
///
/// # Errors
/// `SECTION_FULL` when the section is full without a waitlist; `SECTION_INACTIVE`; `CONFLICT`
/// when a seat freed between the two updates (the client tries again); the database fails.
pub(crate) async fn seat_else_ticket(
    conn: &impl ConnectionTrait,
    section_id: Uuid,
    seat_status: EnrollmentStatus,
    took: bool,
    override_capacity: bool,
) -> Result<(EnrollmentStatus, Option<i64>), ApiError> {
    if took {
        return Ok((seat_status, None));
    }
    if override_capacity {
        add(conn, section_id, seat_status, 1).await?;
        return Ok((seat_status, None));
    }
    match join_waitlist(conn, section_id).await? {
        Some(ticket) => Ok((Waitlisted, Some(ticket))),
        None => Err(ApiError::Conflict(
            "the section changed meanwhile; try again".into(),
        )),
    }
}

/// What [`take`] and then [`seat_else_ticket`] (without an override) decide, decided on `row`,
/// the section's row as locked and read, whose counters are moved here as the two updates
/// would move them: for a draw that decides many enrollments on rows it holds, then writes
/// every row's counters once ([`add_many`]).
///
/// # Errors
/// `SECTION_FULL` when the section is full without a waitlist; `SECTION_INACTIVE`.
pub(crate) fn admit(
    row: &mut section::Model,
    seat_status: EnrollmentStatus,
) -> Result<(EnrollmentStatus, Option<i64>), ApiError> {
    let seats = Seats::from(&*row);
    // `take`: active, nobody waiting, a seat free.
    if row.is_active && row.waitlist_count == 0 && !seats.is_full() {
        match seat_status {
            Pending => row.pending_count += 1,
            _ => row.registered_count += 1,
        }
        return Ok((seat_status, None));
    }
    // `join_waitlist`: active, a waitlist, and full or someone waiting.
    if row.is_active && row.waitlist_enabled && (row.waitlist_count > 0 || seats.is_full()) {
        row.waitlist_count += 1;
        row.waitlist_seq += 1;
        return Ok((Waitlisted, Some(row.waitlist_seq)));
    }
    if !row.is_active {
        return Err(ApiError::SectionInactive(
            "the section is not active".into(),
        ));
    }
    Err(ApiError::SectionFull)
}

/// Writes what [`admit`] moved: each section's counters move from `before` to `after` (the
/// same sections, in the same order), in one statement.
///
/// # Errors
/// The database fails.
pub(crate) async fn add_many(
    conn: &impl ConnectionTrait,
    before: &[section::Model],
    after: &[section::Model],
) -> Result<(), ApiError> {
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let mut rows = Vec::new();
    for (old, new) in before.iter().zip(after) {
        let moved = [
            new.registered_count - old.registered_count,
            new.pending_count - old.pending_count,
            new.waitlist_count - old.waitlist_count,
        ];
        let seq = new.waitlist_seq - old.waitlist_seq;
        if moved == [0, 0, 0] && seq == 0 {
            continue;
        }
        let n = values.len();
        rows.push(format!("({})", super::marks(n + 1, 5)));
        values.push(new.id.into());
        values.extend(moved.map(sea_orm::Value::from));
        values.push(seq.into());
    }
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "WITH v (id, r, p, w, q) AS (VALUES {}) UPDATE sections SET \
         registered_count = registered_count + v.r, pending_count = pending_count + v.p, \
         waitlist_count = waitlist_count + v.w, waitlist_seq = waitlist_seq + v.q \
         FROM v WHERE sections.id = v.id",
        rows.join(", ")
    );
    conn.execute_raw(sea_orm::Statement::from_sql_and_values(
        conn.get_database_backend(),
        sql,
        values,
    ))
    .await?;
    Ok(())
}

/// Moves `delta` enrollments into (or, negative, out of) `status`'s counter; WITHDRAWN and
/// CANCELLED (and REQUESTED, which holds no seat) have none and change nothing.
///
/// # Errors
/// The database fails.
pub(crate) async fn add(
    conn: &impl ConnectionTrait,
    section_id: Uuid,
    status: EnrollmentStatus,
    delta: i32,
) -> Result<(), ApiError> {
    if let Some(column) = counter(status) {
        section::Entity::update_many()
            .col_expr(column, Expr::col(column).add(delta))
            .filter(section::Column::Id.eq(section_id))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Moves one enrollment from `from`'s counter to `to`'s.
///
/// # Errors
/// The database fails.
pub(crate) async fn moved(
    conn: &impl ConnectionTrait,
    section_id: Uuid,
    from: EnrollmentStatus,
    to: EnrollmentStatus,
) -> Result<(), ApiError> {
    add(conn, section_id, from, -1).await?;
    add(conn, section_id, to, 1).await
}

fn counter(status: EnrollmentStatus) -> Option<section::Column> {
    match status {
        Registered => Some(section::Column::RegisteredCount),
        Pending => Some(section::Column::PendingCount),
        Waitlisted => Some(section::Column::WaitlistCount),
        Offered => Some(section::Column::OfferedCount),
        Completed | Failed => Some(section::Column::FinishedCount),
        Requested | Withdrawn | Cancelled => None,
    }
}

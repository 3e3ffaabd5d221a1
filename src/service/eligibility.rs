//! Who may take a seat in a course: the checks of docs/design.md#enrollment-checks that read
//! other rows. Each runs inside the write transaction that takes the seat, on the transaction's
//! connection, so what it read is what the write relies on.

use chrono::{DateTime, Utc};
use entity::{
    course, section,
    types::EnrollmentStatus::{self, Offered, Pending, Registered, Waitlisted},
    user,
};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Statement};
use uuid::Uuid;

use super::for_update;
use crate::{domain::schedule::first_conflict, error::ApiError};

/// Takes the user's row lock (PostgreSQL; SQLite's write transaction already serializes
/// writers), so that the checks of one user's seats (invariant 7) run one at a time. Lock order:
/// sections, then enrollments, then users (`enroll` alone takes the user first,
/// docs/architecture.md).
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
    let reads = Reads {
        prerequisites_at: Some(at),
        active_in_course: false,
        overlaps: if schedule == Schedule::Checked {
            Reads::overlaps_of(section, enrollment)
        } else {
            None
        },
    };
    standing(conn, user_id, course.id, reads)
        .await?
        .verdict(section)
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

/// What one statement reads for the checks of a seat (see [`standing`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reads {
    /// The course's prerequisites the user holds no certification for that is unexpired at
    /// this time.
    pub prerequisites_at: Option<DateTime<Utc>>,
    /// The user's active enrollment in the course (invariant 2).
    pub active_in_course: bool,
    /// The user's other active seats, to compare with the meetings of this section (invariant
    /// 7), leaving out the enrollment being moved or confirmed: `(section, enrollment)`.
    pub overlaps: Option<(Uuid, Option<Uuid>)>,
}

impl Reads {
    /// [`Reads::overlaps`] for `section`: nothing to read when it has no meetings.
    pub(crate) fn overlaps_of(
        section: &section::Model,
        ignore_enrollment: Option<Uuid>,
    ) -> Option<(Uuid, Option<Uuid>)> {
        (!section.schedule.0.is_empty()).then_some((section.id, ignore_enrollment))
    }
}

/// Reads what the checks of a seat need about a user and a course, as `reads` asks, in one
/// statement (docs/architecture.md#the-write-path): a write transaction holds its locks while
/// it waits for each round trip, so every statement spared is time another writer does not
/// wait. Run it after [`lock_user`], as a statement of its own: under READ COMMITTED a
/// statement sees what was committed when it began, so one that began before the lock was
/// granted could miss the seat its predecessor just took. (`enroll` reads it in the statement
/// that takes the lock, and has the seat's statement confirm it: [`standing_expr`].)
///
/// # Errors
/// The database fails.
pub(crate) async fn standing(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    course_id: Uuid,
    reads: Reads,
) -> Result<Standing, ApiError> {
    let Some((sql, values)) = standing_sql(user_id, course_id, &reads) else {
        return Ok(Standing::default());
    };
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    let mut standing = Standing::default();
    for row in rows {
        standing.push(
            row.try_get_by_index(0)?,
            row.try_get_by_index(1)?,
            row.try_get_by_index(2)?,
            row.try_get_by_index(3)?,
            row.try_get_by_index(4)?,
        )?;
    }
    Ok(standing)
}

/// The statement of [`standing`] and its five values (`$1`…`$5`), `None` when `reads` asks for
/// nothing. Its rows: a kind (1 a missing prerequisite, 2 the active enrollment in the course,
/// 3 another active seat), an id (the course, the enrollment, the section), a name, the
/// section's meetings as JSON, and the enrollment.
fn standing_sql(
    user_id: Uuid,
    course_id: Uuid,
    reads: &Reads,
) -> Option<(String, Vec<sea_orm::Value>)> {
    const PREREQUISITES: &str = "SELECT 1 AS kind, c.id AS id, c.name AS name, \
        CAST(NULL AS TEXT) AS schedule, CAST(NULL AS UUID) AS enrollment \
        FROM course_prerequisites p JOIN courses c ON c.id = p.prerequisite_id \
        WHERE p.course_id = $1 AND NOT EXISTS (SELECT 1 FROM certifications x \
        WHERE x.user_id = $2 AND x.course_id = p.prerequisite_id \
        AND (x.expires_at IS NULL OR x.expires_at > $3))";
    const ACTIVE: &str = "SELECT 2, e.id, CAST(NULL AS TEXT), CAST(NULL AS TEXT), e.id \
        FROM enrollments e WHERE e.user_id = $2 AND e.course_id = $1 \
        AND e.status IN ('PENDING', 'REGISTERED', 'WAITLISTED', 'OFFERED')";
    const SEATS: &str = "SELECT 3, s.id, c.name, CAST(s.schedule AS TEXT), e.id \
        FROM enrollments e JOIN sections s ON s.id = e.section_id \
        JOIN courses c ON c.id = s.course_id WHERE e.user_id = $2 \
        AND e.status IN ('PENDING', 'REGISTERED', 'OFFERED') AND s.id <> $4 AND e.id <> $5";
    debug_assert_eq!(
        EnrollmentStatus::ACTIVE,
        [Pending, Registered, Waitlisted, Offered]
    );
    let overlaps = reads.overlaps;
    let mut parts = Vec::new();
    if reads.prerequisites_at.is_some() {
        parts.push(PREREQUISITES);
    }
    if reads.active_in_course {
        parts.push(ACTIVE);
    }
    if overlaps.is_some() {
        parts.push(SEATS);
    }
    if parts.is_empty() {
        return None;
    }
    let (section_id, ignored) = overlaps.unwrap_or((Uuid::nil(), None));
    Some((
        parts.join(" UNION ALL "),
        vec![
            course_id.into(),
            user_id.into(),
            reads
                .prerequisites_at
                .unwrap_or(DateTime::UNIX_EPOCH)
                .into(),
            section_id.into(),
            ignored.unwrap_or(Uuid::nil()).into(),
        ],
    ))
}

/// PostgreSQL: [`standing`] as one JSON value, for another statement to read (`enroll` reads
/// it with the section and the user's lock), `course` being that statement's expression for
/// the course. That statement's snapshot was taken before the lock was granted, so what it read
/// must be confirmed after the lock: the seat's statement takes the seat only on
/// [`Standing::unchanged`]. `None` when `reads` asks for nothing.
pub(crate) fn standing_expr(
    user_id: Uuid,
    course: sea_orm::sea_query::Expr,
    reads: &Reads,
) -> Option<sea_orm::sea_query::Expr> {
    use sea_orm::sea_query::Expr;
    let (sql, values) = standing_sql(user_id, Uuid::nil(), reads)?;
    let values = std::iter::once(course).chain(values.into_iter().skip(1).map(Expr::val));
    Some(Expr::cust_with_exprs(
        format!(
            "(SELECT COALESCE(json_agg(json_build_array(k.kind, k.id, k.name, k.schedule, \
             k.enrollment)), CAST('[]' AS JSON)) FROM ({sql}) AS k)"
        ),
        values,
    ))
}

/// What [`standing`] found.
#[derive(Debug, Default)]
pub(crate) struct Standing {
    /// The prerequisite courses without an unexpired certification, with their names.
    missing: Vec<(Uuid, String)>,
    /// The user's active enrollment in the course.
    pub active: Option<Uuid>,
    /// The user's other active seats: the course's name and the section's meetings.
    seats: Vec<(String, entity::types::Schedule)>,
    /// The enrollments read (the active one, those of the other seats).
    enrollments: Vec<Uuid>,
}

impl Standing {
    /// What [`standing_expr`] read.
    ///
    /// # Errors
    /// The JSON is not what it builds.
    pub(crate) fn from_json(json: serde_json::Value) -> Result<Self, ApiError> {
        type Row = (i32, Uuid, Option<String>, Option<String>, Option<Uuid>);
        let rows: Vec<Row> =
            serde_json::from_value(json).map_err(|e| DbErr::Json(e.to_string()))?;
        let mut standing = Self::default();
        for (kind, id, name, schedule, enrollment) in rows {
            standing.push(kind, id, name, schedule, enrollment)?;
        }
        Ok(standing)
    }

    fn push(
        &mut self,
        kind: i32,
        id: Uuid,
        name: Option<String>,
        schedule: Option<String>,
        enrollment: Option<Uuid>,
    ) -> Result<(), ApiError> {
        self.enrollments.extend(enrollment);
        match kind {
            1 => self.missing.push((id, name.unwrap_or_default())),
            2 => self.active = Some(id),
            _ => {
                let schedule = serde_json::from_str(schedule.as_deref().unwrap_or("[]"))
                    .map_err(|e| DbErr::Json(e.to_string()))?;
                self.seats.push((name.unwrap_or_default(), schedule));
            }
        }
        Ok(())
    }

    /// Whether the checks refuse a seat in `section`.
    pub(crate) fn refuses(&self, section: &section::Model) -> bool {
        self.active.is_some() || self.verdict(section).is_err()
    }

    /// PostgreSQL: a condition for the seat's statement, true while [`standing`] (the same
    /// `reads`) would find what this read found, as far as it can allow a seat: no missing
    /// prerequisite, and no active enrollment besides those it read (one committed by the
    /// user's previous write while this read waited for the lock). The statement runs after
    /// the lock, so its snapshot holds every write of the user before it.
    pub(crate) fn unchanged(
        &self,
        user_id: Uuid,
        course_id: Uuid,
        reads: &Reads,
    ) -> Option<sea_orm::sea_query::Expr> {
        let (sql, mut values) = standing_sql(user_id, course_id, reads)?;
        let unseen = if self.enrollments.is_empty() {
            "TRUE".to_owned()
        } else {
            let first = values.len() + 1;
            values.extend(self.enrollments.iter().map(|&e| e.into()));
            let marks: Vec<String> = (first..values.len() + 1).map(|n| format!("${n}")).collect();
            format!("g.enrollment NOT IN ({})", marks.join(", "))
        };
        Some(sea_orm::sea_query::Expr::cust_with_values(
            format!("NOT EXISTS (SELECT 1 FROM ({sql}) AS g WHERE g.kind = 1 OR {unseen})"),
            values,
        ))
    }
}

impl Standing {
    /// `PREREQUISITES_MISSING`, else `SCHEDULE_CONFLICT` (see [`Self::schedule`]), else `Ok`.
    ///
    /// # Errors
    /// As above.
    pub(crate) fn verdict(&self, section: &section::Model) -> Result<(), ApiError> {
        self.prerequisites()?;
        self.schedule(section)
    }

    /// `PREREQUISITES_MISSING` naming the prerequisites without an unexpired certification.
    ///
    /// # Errors
    /// As above.
    pub(crate) fn prerequisites(&self) -> Result<(), ApiError> {
        if self.missing.is_empty() {
            return Ok(());
        }
        let (ids, names) = self.missing.iter().cloned().unzip();
        Err(ApiError::PrerequisitesMissing { ids, names })
    }

    /// `SCHEDULE_CONFLICT` naming the first of the other seats whose meetings overlap
    /// `section`'s, and the meeting.
    ///
    /// # Errors
    /// As above.
    pub(crate) fn schedule(&self, section: &section::Model) -> Result<(), ApiError> {
        for (name, other) in &self.seats {
            if let Some((mine, _)) = first_conflict(&section.schedule, other) {
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
    let reads = Reads {
        prerequisites_at: None,
        active_in_course: false,
        overlaps: Reads::overlaps_of(section, ignore_enrollment),
    };
    standing(conn, user_id, section.course_id, reads)
        .await?
        .verdict(section)
}

//! Who may take a seat in a course: the checks of docs/design.md#enrollment-checks that read
//! other rows. Each runs inside the write transaction that takes the seat, on the transaction's
//! connection, so what it read is what the write relies on.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    course, section,
    types::EnrollmentStatus::{self, Offered, Pending, Registered, Requested, Waitlisted},
    user,
};
use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use uuid::Uuid;

use super::for_update;
use crate::{
    domain::calendar::{self, Dated, Span, first_conflict},
    error::ApiError,
};

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
    active(section, course)?;
    let reads = Reads {
        prerequisites_at: Some(at),
        active_in_course: false,
        overlaps: if schedule == Schedule::Checked {
            Reads::overlaps_of(section, enrollment)
        } else {
            None
        },
    };
    let span = match reads.overlaps {
        Some(_) => span_of(conn, section).await?,
        None => None,
    };
    standing(conn, user_id, course.id, reads)
        .await?
        .verdict(section, span.as_ref())
}

/// `SECTION_INACTIVE` unless the section and its course are active (invariant 8).
///
/// # Errors
/// As above.
pub(crate) fn active(section: &section::Model, course: &course::Model) -> Result<(), ApiError> {
    if !section.is_active || !course.is_active {
        return Err(ApiError::SectionInactive(
            "the section or its course is not active".into(),
        ));
    }
    Ok(())
}

/// The dates `section` meets on: none without a term (read only for a section in one).
///
/// # Errors
/// The database fails.
pub(crate) async fn span_of(
    conn: &impl ConnectionTrait,
    section: &section::Model,
) -> Result<Option<Span>, ApiError> {
    let term = super::term_of(conn, section).await?;
    Ok(calendar::span(section, term.as_ref()))
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
/// granted could miss the seat its predecessor just took.
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
        let kind: i32 = row.try_get_by_index(0)?;
        let id: Uuid = row.try_get_by_index(1)?;
        let name: Option<String> = row.try_get_by_index(2)?;
        match kind {
            1 => standing.missing.push((id, name.unwrap_or_default())),
            2 => standing.active = Some(id),
            _ => standing.seats.push(Seat::decode(&row, 1)?),
        }
    }
    Ok(standing)
}

/// The statement of [`standing`] and its five values (`$1`…`$5`), `None` when `reads` asks for
/// nothing. Its rows: a kind (1 a missing prerequisite, 2 the active enrollment in the course,
/// 3 another active seat), an id (the course, the enrollment, the section), a name, and for a
/// seat its section's meetings as JSON, its first and last date, its term's time zone and
/// holidays (no dates without a term).
fn standing_sql(
    user_id: Uuid,
    course_id: Uuid,
    reads: &Reads,
) -> Option<(String, Vec<sea_orm::Value>)> {
    const PREREQUISITES: &str = "SELECT 1 AS kind, c.id AS id, c.name AS name, \
        CAST(NULL AS TEXT) AS schedule, CAST(NULL AS TEXT) AS starts_on, \
        CAST(NULL AS TEXT) AS ends_on, CAST(NULL AS TEXT) AS time_zone, \
        CAST(NULL AS TEXT) AS holidays \
        FROM course_prerequisites p JOIN courses c ON c.id = p.prerequisite_id \
        WHERE p.course_id = $1 AND NOT EXISTS (SELECT 1 FROM certifications x \
        WHERE x.user_id = $2 AND x.course_id = p.prerequisite_id \
        AND (x.expires_at IS NULL OR x.expires_at > $3))";
    const ACTIVE: &str = "SELECT 2, e.id, CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
        CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT) \
        FROM enrollments e WHERE e.user_id = $2 AND e.course_id = $1 \
        AND e.status IN ('REQUESTED', 'PENDING', 'REGISTERED', 'WAITLISTED', 'OFFERED')";
    const SEATS: &str = "SELECT 3, s.id, c.name, CAST(s.schedule AS TEXT), \
        CAST(COALESCE(s.starts_on, t.starts_on) AS TEXT), \
        CAST(COALESCE(s.ends_on, t.ends_on) AS TEXT), CAST(t.time_zone AS TEXT), \
        CAST(t.holidays AS TEXT) \
        FROM enrollments e JOIN sections s ON s.id = e.section_id \
        JOIN courses c ON c.id = s.course_id LEFT JOIN terms t ON t.id = s.term_id WHERE e.user_id = $2 \
        AND e.status IN ('PENDING', 'REGISTERED', 'OFFERED') AND s.id <> $4 AND e.id <> $5";
    debug_assert_eq!(
        EnrollmentStatus::ACTIVE,
        [Requested, Pending, Registered, Waitlisted, Offered]
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

/// What [`standing`] found.
#[derive(Debug, Default)]
pub(crate) struct Standing {
    /// The prerequisite courses without an unexpired certification, with their names.
    missing: Vec<(Uuid, String)>,
    /// The user's active enrollment in the course.
    pub active: Option<Uuid>,
    /// The user's other active seats.
    seats: Vec<Seat>,
}

/// Another active seat of the user: its section, its course's name, its section's meetings and
/// dates.
#[derive(Debug, Clone)]
struct Seat {
    section: Uuid,
    course: String,
    schedule: entity::types::Schedule,
    span: Option<Span>,
}

impl Seat {
    /// The seat in the columns of `row` from `at` on: the section's id, the course's name, the
    /// meetings as JSON, the first and last date, the term's time zone and holidays.
    fn decode(row: &sea_orm::QueryResult, at: usize) -> Result<Self, ApiError> {
        Ok(Self {
            section: row.try_get_by_index(at)?,
            course: row
                .try_get_by_index::<Option<String>>(at + 1)?
                .unwrap_or_default(),
            schedule: super::json_column(row.try_get_by_index(at + 2)?)?.unwrap_or_default(),
            span: super::span_columns(
                row.try_get_by_index(at + 3)?,
                row.try_get_by_index(at + 4)?,
                row.try_get_by_index(at + 5)?,
                row.try_get_by_index(at + 6)?,
            )?,
        })
    }
}

impl Standing {
    /// `PREREQUISITES_MISSING`, else `SCHEDULE_CONFLICT` (see [`Self::schedule`]), else `Ok`.
    ///
    /// # Errors
    /// As above.
    pub(crate) fn verdict(
        &self,
        section: &section::Model,
        span: Option<&Span>,
    ) -> Result<(), ApiError> {
        self.prerequisites()?;
        self.schedule(section, span)
    }

    /// `PREREQUISITES_MISSING` naming the prerequisites without an unexpired certification.
    ///
    /// # Errors
    /// As above.
    pub(crate) fn prerequisites(&self) -> Result<(), ApiError> {
        missing(&self.missing)
    }

    /// `SCHEDULE_CONFLICT` naming the first of the other seats whose meetings overlap
    /// `section`'s (on `span`, its dates) on some date, the meeting and the date.
    ///
    /// # Errors
    /// As above.
    pub(crate) fn schedule(
        &self,
        section: &section::Model,
        span: Option<&Span>,
    ) -> Result<(), ApiError> {
        overlap(&self.seats, section, span)
    }
}

/// `PREREQUISITES_MISSING` naming `missing`, the prerequisites without an unexpired
/// certification; `Ok` when there are none.
fn missing(missing: &[(Uuid, String)]) -> Result<(), ApiError> {
    if missing.is_empty() {
        return Ok(());
    }
    let (ids, names) = missing.iter().cloned().unzip();
    Err(ApiError::PrerequisitesMissing { ids, names })
}

/// `SCHEDULE_CONFLICT` naming the first of `seats` whose meetings overlap `section`'s (on
/// `span`, its dates) on some date, the meeting and the date.
fn overlap<'a>(
    seats: impl IntoIterator<Item = &'a Seat>,
    section: &section::Model,
    span: Option<&Span>,
) -> Result<(), ApiError> {
    let mine = Dated {
        schedule: &section.schedule,
        span,
    };
    for seat in seats {
        let theirs = Dated {
            schedule: &seat.schedule,
            span: seat.span.as_ref(),
        };
        if let Some((meeting, on)) = first_conflict(mine, theirs) {
            let on = on.map(|d| format!(" on {d}")).unwrap_or_default();
            return Err(ApiError::ScheduleConflict(format!(
                "{} ({} {}–{}{on})",
                seat.course,
                format!("{:?}", meeting.weekday).to_uppercase(),
                meeting.start,
                meeting.end
            )));
        }
    }
    Ok(())
}

/// What the checks of many seats read about many users at once, for the lottery's draw: the
/// courses' prerequisites, the users' certifications of them, the users' active seats and their
/// sections, in four statements whatever the count. [`Standings::check`] then answers for each seat what
/// [`check_seat`] would, with the same rules ([`active`], [`missing`], [`overlap`]), and
/// [`Standings::hold`] adds each seat granted meanwhile, so that a later seat is checked against
/// it. Read it under the users' locks, as [`standing`].
#[derive(Debug, Default)]
pub(crate) struct Standings {
    /// Per course, its prerequisites and their names.
    prerequisites: HashMap<Uuid, Vec<(Uuid, String)>>,
    /// Per user and course, when each of the user's certifications of it expires.
    certified: HashMap<(Uuid, Uuid), Vec<Option<DateTime<Utc>>>>,
    /// Per user, the active seats.
    seats: HashMap<Uuid, Vec<Seat>>,
}

impl Standings {
    /// Reads the standings of `users` in `courses`.
    ///
    /// # Errors
    /// The database fails.
    pub(crate) async fn read(
        conn: &impl ConnectionTrait,
        users: &[Uuid],
        courses: &[Uuid],
    ) -> Result<Self, ApiError> {
        let mut standings = Self::default();
        if users.is_empty() || courses.is_empty() {
            return Ok(standings);
        }
        let backend = conn.get_database_backend();
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT p.course_id, c.id, c.name FROM course_prerequisites p \
                     JOIN courses c ON c.id = p.prerequisite_id WHERE p.course_id IN ({})",
                    super::marks(1, courses.len())
                ),
                courses.iter().map(|&id| id.into()),
            ))
            .await?;
        let mut required = Vec::new();
        for row in rows {
            let course: Uuid = row.try_get_by_index(0)?;
            let prerequisite: Uuid = row.try_get_by_index(1)?;
            required.push(prerequisite);
            standings
                .prerequisites
                .entry(course)
                .or_default()
                .push((prerequisite, row.try_get_by_index(2)?));
        }
        if !required.is_empty() {
            required.sort_unstable();
            required.dedup();
            let rows = conn
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    format!(
                        "SELECT user_id, course_id, expires_at FROM certifications \
                         WHERE user_id IN ({}) AND course_id IN ({})",
                        super::marks(1, users.len()),
                        super::marks(users.len() + 1, required.len())
                    ),
                    users.iter().chain(&required).map(|&id| id.into()),
                ))
                .await?;
            for row in rows {
                standings
                    .certified
                    .entry((row.try_get_by_index(0)?, row.try_get_by_index(1)?))
                    .or_default()
                    .push(row.try_get_by_index(2)?);
            }
        }
        // Every enrollment of the users, the seats kept here: a status in the statement would
        // let the planner read by status, from statistics the draw itself makes stale (none
        // held a seat when they were gathered, thousands do now), instead of by user.
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT user_id, section_id, status FROM enrollments WHERE user_id IN ({})",
                    super::marks(1, users.len())
                ),
                users.iter().map(|&id| id.into()),
            ))
            .await?;
        let mut held: Vec<(Uuid, Uuid)> = Vec::new();
        for row in rows {
            let status: EnrollmentStatus = row.try_get_by_index(2)?;
            if status.holds_seat() {
                held.push((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
            }
        }
        if held.is_empty() {
            return Ok(standings);
        }
        // Then each section held once, by id: the users of a batch share many.
        let mut sections: Vec<Uuid> = held.iter().map(|&(_, section)| section).collect();
        sections.sort_unstable();
        sections.dedup();
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT s.id, c.name, CAST(s.schedule AS TEXT), \
                     CAST(COALESCE(s.starts_on, t.starts_on) AS TEXT), \
                     CAST(COALESCE(s.ends_on, t.ends_on) AS TEXT), CAST(t.time_zone AS TEXT), \
                     CAST(t.holidays AS TEXT) \
                     FROM sections s JOIN courses c ON c.id = s.course_id \
                     LEFT JOIN terms t ON t.id = s.term_id WHERE s.id IN ({})",
                    super::marks(1, sections.len())
                ),
                sections.iter().map(|&id| id.into()),
            ))
            .await?;
        let mut seats = HashMap::with_capacity(rows.len());
        for row in rows {
            let seat = Seat::decode(&row, 0)?;
            seats.insert(seat.section, seat);
        }
        for (user, section) in held {
            if let Some(seat) = seats.get(&section) {
                standings.seats.entry(user).or_default().push(seat.clone());
            }
        }
        Ok(standings)
    }

    /// What [`check_seat`] answers, checking the schedule, for `user` taking a seat in
    /// `section` (meeting on `span`) of `course` at `at`, given what was read and held since.
    ///
    /// # Errors
    /// `SECTION_INACTIVE`, `PREREQUISITES_MISSING` or `SCHEDULE_CONFLICT`.
    pub(crate) fn check(
        &self,
        user: Uuid,
        section: &section::Model,
        course: &course::Model,
        span: Option<&Span>,
        at: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        active(section, course)?;
        let unheld: Vec<(Uuid, String)> = self
            .prerequisites
            .get(&course.id)
            .into_iter()
            .flatten()
            .filter(|(prerequisite, _)| {
                !self
                    .certified
                    .get(&(user, *prerequisite))
                    .is_some_and(|ends| ends.iter().any(|end| end.is_none_or(|end| end > at)))
            })
            .cloned()
            .collect();
        missing(&unheld)?;
        if section.schedule.0.is_empty() {
            return Ok(());
        }
        let seats = self.seats.get(&user).into_iter().flatten();
        overlap(
            seats.filter(|seat| seat.section != section.id),
            section,
            span,
        )
    }

    /// Counts a seat `user` was just granted in `section` (of the course named `course`,
    /// meeting on `span`) among the user's seats.
    pub(crate) fn hold(
        &mut self,
        user: Uuid,
        section: &section::Model,
        course: &str,
        span: Option<Span>,
    ) {
        self.seats.entry(user).or_default().push(Seat {
            section: section.id,
            course: course.to_owned(),
            schedule: section.schedule.clone(),
            span,
        });
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
    let span = span_of(conn, section).await?;
    standing(conn, user_id, section.course_id, reads)
        .await?
        .verdict(section, span.as_ref())
}

//! Terms (docs/design.md#time): creating and changing them (coordinators of their organization,
//! admins), reading them, and what a section's term makes of its dates, window and deadlines.

use chrono::{DateTime, NaiveDate, Utc};
use entity::{
    course, organization, section, term,
    types::{Admission, Holidays},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use super::{for_update, promotion};
use crate::{
    domain::{calendar, validate, viewer::Viewer},
    error::ApiError,
    store::{Store, Tx},
};

/// The longest name of a term.
pub const TERM_NAME_MAX: usize = 100;
/// The most holidays a term may list.
pub const HOLIDAYS_MAX: usize = 366;

/// A term's fields as a client sends them: for a new term every field it sets, for a change the
/// fields to change (`None` leaves one as it is; an inner `None` clears an optional one).
#[derive(Clone, Debug, Default)]
pub struct TermFields {
    pub name: Option<String>,
    pub code: Option<String>,
    pub starts_on: Option<NaiveDate>,
    pub ends_on: Option<NaiveDate>,
    pub time_zone: Option<String>,
    pub holidays: Option<Vec<NaiveDate>>,
    pub enrollment_opens_at: Option<Option<DateTime<Utc>>>,
    pub enrollment_closes_at: Option<Option<DateTime<Utc>>>,
    pub drop_deadline: Option<Option<DateTime<Utc>>>,
    pub withdraw_deadline: Option<Option<DateTime<Utc>>>,
    pub admission: Option<Admission>,
    pub lottery_minutes: Option<Option<i32>>,
}

/// Creates a term in an organization (the viewer's unless named).
///
/// # Errors
/// `UNAUTHENTICATED`/`FORBIDDEN` unless a coordinator of the organization or an admin;
/// `NOT_FOUND` for the organization; `BAD_USER_INPUT` naming the field; `CONFLICT` for a code the
/// organization already uses.
pub async fn create_term(
    store: &Store,
    viewer: &Viewer,
    organization_id: Option<Uuid>,
    fields: TermFields,
) -> Result<term::Model, ApiError> {
    let organization_id = organization_id
        .or(viewer.user.organization_id)
        .ok_or_else(|| ApiError::bad_input("organizationId", "name the term's organization"))?;
    let fields = &fields;
    store
        .write(|tx| {
            Box::pin(async move {
                let organization = organization::Entity::find_by_id(organization_id)
                    .one(tx)
                    .await?
                    .ok_or(ApiError::NotFound("organization"))?;
                may_manage(viewer, organization.id)?;
                let (Some(name), Some(code), Some(starts_on), Some(ends_on)) =
                    (&fields.name, &fields.code, fields.starts_on, fields.ends_on)
                else {
                    return Err(ApiError::bad_input(
                        "input",
                        "name, code, startsOn and endsOn are required",
                    ));
                };
                let at = tx.now();
                let model = term::Model {
                    id: Uuid::now_v7(),
                    organization_id: organization.id,
                    name: name.clone(),
                    code: code.clone(),
                    starts_on,
                    ends_on,
                    time_zone: organization.time_zone.clone(),
                    holidays: Holidays::default(),
                    enrollment_opens_at: None,
                    enrollment_closes_at: None,
                    drop_deadline: None,
                    withdraw_deadline: None,
                    admission: Admission::FirstCome,
                    lottery_minutes: None,
                    lottery_seed: None,
                    lottery_seed_hash: None,
                    lottery_drawn_at: None,
                    created_at: at,
                    updated_at: at,
                };
                let model = super::lottery::arm(apply(model, fields)?);
                let active: term::ActiveModel = model.into();
                active
                    .insert(tx)
                    .await
                    .map_err(|e| ApiError::on_unique_violation(e, code_taken))
            })
        })
        .await
}

/// Changes a term. Sections with dates of their own must stay inside it; a window that opens
/// again (or later) fills the free seats of its sections from their waitlists.
///
/// # Errors
/// As [`create_term`], and `NOT_FOUND` for the term.
pub async fn update_term(
    store: &Store,
    viewer: &Viewer,
    id: Uuid,
    fields: TermFields,
) -> Result<term::Model, ApiError> {
    let fields = &fields;
    store
        .write(|tx| {
            Box::pin(async move {
                let existing = for_update(term::Entity::find_by_id(id), tx.get_database_backend())
                    .one(tx)
                    .await?
                    .ok_or(ApiError::NotFound("term"))?;
                may_manage(viewer, existing.organization_id)?;
                let mut changed = super::lottery::arm(apply(existing.clone(), fields)?);
                super::lottery::may_change(tx, &existing, &changed).await?;
                changed.updated_at = tx.now();
                check_sections_inside(tx, &changed).await?;
                let active = term::ActiveModel::from(changed).reset_all();
                let updated = active
                    .update(tx)
                    .await
                    .map_err(|e| ApiError::on_unique_violation(e, code_taken))?;
                fill_sections(tx, updated.id).await?;
                Ok(updated)
            })
        })
        .await
}

fn code_taken() -> ApiError {
    ApiError::Conflict("the organization has a term with this code already".into())
}

/// Coordinators manage their organization's terms, admins every organization's.
fn may_manage(viewer: &Viewer, organization_id: Uuid) -> Result<(), ApiError> {
    if viewer.is_admin() || viewer.coordinates(organization_id) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only the organization's coordinators and admins manage its terms",
        ))
    }
}

/// `term` with `fields` applied and checked as a whole: each rule names the field it refuses.
fn apply(mut term: term::Model, fields: &TermFields) -> Result<term::Model, ApiError> {
    if let Some(name) = &fields.name {
        term.name = validate::name("name", name, TERM_NAME_MAX)?;
    }
    if let Some(code) = &fields.code {
        term.code = validate::course_code(Some(code))?
            .ok_or_else(|| ApiError::bad_input("code", "must not be blank"))?;
    }
    if let Some(v) = fields.starts_on {
        term.starts_on = v;
    }
    if let Some(v) = fields.ends_on {
        term.ends_on = v;
    }
    if let Some(zone) = &fields.time_zone {
        calendar::time_zone(zone).ok_or_else(|| {
            ApiError::bad_input(
                "timeZone",
                "not a time zone of the IANA database (such as Europe/Berlin)",
            )
        })?;
        term.time_zone.clone_from(zone);
    }
    if let Some(holidays) = &fields.holidays {
        let mut holidays = holidays.clone();
        holidays.sort_unstable();
        holidays.dedup();
        if holidays.len() > HOLIDAYS_MAX {
            return Err(ApiError::bad_input(
                "holidays",
                format!("at most {HOLIDAYS_MAX} dates"),
            ));
        }
        term.holidays = Holidays(holidays);
    }
    for (field, value) in [
        (&fields.enrollment_opens_at, &mut term.enrollment_opens_at),
        (&fields.enrollment_closes_at, &mut term.enrollment_closes_at),
        (&fields.drop_deadline, &mut term.drop_deadline),
        (&fields.withdraw_deadline, &mut term.withdraw_deadline),
    ] {
        if let Some(v) = field {
            *value = *v;
        }
    }
    if let Some(admission) = fields.admission {
        term.admission = admission;
    }
    if let Some(minutes) = fields.lottery_minutes {
        term.lottery_minutes = minutes;
    }
    if term.admission == Admission::Lottery && term.lottery_minutes.is_none() {
        term.lottery_minutes = Some(super::lottery::DEFAULT_MINUTES);
    }
    check(&term)?;
    Ok(term)
}

/// The rules of a term as a whole.
fn check(term: &term::Model) -> Result<(), ApiError> {
    if term.ends_on < term.starts_on {
        return Err(ApiError::bad_input("endsOn", "must not be before startsOn"));
    }
    if let Some(day) = term
        .holidays
        .0
        .iter()
        .find(|d| !(term.starts_on..=term.ends_on).contains(d))
    {
        return Err(ApiError::bad_input(
            "holidays",
            format!("{day} is outside the term"),
        ));
    }
    if let (Some(opens), Some(closes)) = (term.enrollment_opens_at, term.enrollment_closes_at)
        && closes <= opens
    {
        return Err(ApiError::bad_input(
            "enrollmentClosesAt",
            "must be after enrollmentOpensAt",
        ));
    }
    if let (Some(drop), Some(withdraw)) = (term.drop_deadline, term.withdraw_deadline)
        && drop > withdraw
    {
        return Err(ApiError::bad_input(
            "dropDeadline",
            "must not be after withdrawDeadline",
        ));
    }
    if let Some(minutes) = term.lottery_minutes
        && !(1..=10_080).contains(&minutes)
    {
        return Err(ApiError::bad_input(
            "lotteryMinutes",
            "must be between 1 and 10080 (a week)",
        ));
    }
    Ok(())
}

/// Sections with dates of their own must stay inside a changed term.
async fn check_sections_inside(tx: &Tx<'_>, term: &term::Model) -> Result<(), ApiError> {
    let outside = section::Entity::find()
        .filter(section::Column::TermId.eq(term.id))
        .filter(
            Condition::any()
                .add(section::Column::StartsOn.lt(term.starts_on))
                .add(section::Column::StartsOn.gt(term.ends_on))
                .add(section::Column::EndsOn.lt(term.starts_on))
                .add(section::Column::EndsOn.gt(term.ends_on)),
        )
        .one(tx)
        .await?;
    match outside {
        Some(section) => Err(ApiError::bad_input(
            if section.starts_on.is_some_and(|d| d < term.starts_on) {
                "startsOn"
            } else {
                "endsOn"
            },
            format!(
                "section {} ({}) has dates outside the changed term",
                section.name, section.id
            ),
        )),
        None => Ok(()),
    }
}

/// After a term's window changed: every section of it with free seats and waiters promotes as
/// a change of the section would (the window decides in [`promotion::fill_free_seats`]).
async fn fill_sections(tx: &Tx<'_>, term_id: Uuid) -> Result<(), ApiError> {
    let waiting = section::Entity::find()
        .filter(section::Column::TermId.eq(term_id))
        .filter(section::Column::WaitlistCount.gt(0));
    promotion::fill_sections(tx, waiting).await
}

/// An organization's terms (every organization's when `None`), newest first.
///
/// # Errors
/// The database fails.
pub async fn list(
    store: &Store,
    organization_id: Option<Uuid>,
) -> Result<Vec<term::Model>, ApiError> {
    let mut select = term::Entity::find();
    if let Some(id) = organization_id {
        select = select.filter(term::Column::OrganizationId.eq(id));
    }
    Ok(select
        .order_by_desc(term::Column::StartsOn)
        .order_by_asc(term::Column::Id)
        .all(store.db())
        .await?)
}

/// One term.
///
/// # Errors
/// The database fails.
pub async fn by_id(store: &Store, id: Uuid) -> Result<Option<term::Model>, ApiError> {
    Ok(term::Entity::find_by_id(id).one(store.db()).await?)
}

/// A term's sections as the viewer may see them: an inactive section, or one of an inactive
/// course, only for those who manage the course. In name order.
///
/// # Errors
/// The database fails.
pub async fn sections(
    store: &Store,
    viewer: Option<&Viewer>,
    term_id: Uuid,
) -> Result<Vec<section::Model>, ApiError> {
    let rows = section::Entity::find()
        .find_also_related(course::Entity)
        .filter(section::Column::TermId.eq(term_id))
        .order_by_asc(section::Column::Name)
        .order_by_asc(section::Column::Id)
        .all(store.db())
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(section, course)| {
            let course = course?;
            let visible = (section.is_active && course.is_active)
                || viewer.is_some_and(|v| v.can_manage_course(&course));
            visible.then_some(section)
        })
        .collect())
}

/// Sets an organization's time zone, the default of the terms created after.
///
/// # Errors
/// `FORBIDDEN` unless a coordinator of the organization or an admin; `NOT_FOUND`;
/// `BAD_USER_INPUT` for an unknown time zone.
pub async fn set_time_zone(
    store: &Store,
    viewer: &Viewer,
    organization_id: Uuid,
    time_zone: String,
) -> Result<organization::Model, ApiError> {
    may_manage(viewer, organization_id)?;
    calendar::time_zone(&time_zone).ok_or_else(|| {
        ApiError::bad_input(
            "timeZone",
            "not a time zone of the IANA database (such as Europe/Berlin)",
        )
    })?;
    let time_zone = &time_zone;
    store
        .write(|tx| {
            Box::pin(async move {
                let existing = organization::Entity::find_by_id(organization_id)
                    .one(tx)
                    .await?
                    .ok_or(ApiError::NotFound("organization"))?;
                let mut active: organization::ActiveModel = existing.into();
                active.time_zone = Set(time_zone.clone());
                Ok(active.update(tx).await?)
            })
        })
        .await
}

/// The most students one `assignAppointments` call may name.
pub const APPOINTMENTS_MAX: usize = 10_000;

/// Gives groups of students their own opening time in a term (docs/design.md#registration-
/// opening), replacing each one's earlier appointment there; returns how many were assigned.
/// Every student must belong to the term's organization and appear once.
///
/// # Errors
/// `FORBIDDEN` unless a coordinator of the term's organization or an admin; `NOT_FOUND` for
/// the term; `BAD_USER_INPUT` (`groups`) for an unknown user, one of another organization, a
/// user named twice, or more than [`APPOINTMENTS_MAX`].
pub async fn assign_appointments(
    store: &Store,
    viewer: &Viewer,
    term_id: Uuid,
    groups: Vec<(DateTime<Utc>, Vec<Uuid>)>,
) -> Result<usize, ApiError> {
    use entity::{appointment, user};
    use sea_orm::sea_query::OnConflict;
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    for (opens_at, users) in &groups {
        for user in users {
            if !seen.insert(*user) {
                return Err(ApiError::bad_input(
                    "groups",
                    format!("user {user} is named twice"),
                ));
            }
            rows.push((*user, *opens_at));
        }
    }
    if rows.len() > APPOINTMENTS_MAX {
        return Err(ApiError::bad_input(
            "groups",
            format!("at most {APPOINTMENTS_MAX} students per call"),
        ));
    }
    let rows = &rows;
    store
        .write(|tx| {
            Box::pin(async move {
                let term = term::Entity::find_by_id(term_id)
                    .one(tx)
                    .await?
                    .ok_or(ApiError::NotFound("term"))?;
                may_manage(viewer, term.organization_id)?;
                let mut known = std::collections::HashSet::new();
                for chunk in rows.chunks(500) {
                    let found = user::Entity::find()
                        .filter(user::Column::Id.is_in(chunk.iter().map(|(id, _)| *id)))
                        .filter(user::Column::OrganizationId.eq(term.organization_id))
                        .all(tx)
                        .await?;
                    known.extend(found.into_iter().map(|u| u.id));
                }
                if let Some((stranger, _)) = rows.iter().find(|(id, _)| !known.contains(id)) {
                    return Err(ApiError::bad_input(
                        "groups",
                        format!("no user {stranger} in the term's organization"),
                    ));
                }
                let at = tx.now();
                for chunk in rows.chunks(500) {
                    appointment::Entity::insert_many(chunk.iter().map(|(user, opens_at)| {
                        appointment::ActiveModel {
                            term_id: Set(term.id),
                            user_id: Set(*user),
                            opens_at: Set(*opens_at),
                            created_at: Set(at),
                        }
                    }))
                    .on_conflict(
                        OnConflict::columns([
                            appointment::Column::TermId,
                            appointment::Column::UserId,
                        ])
                        .update_columns([
                            appointment::Column::OpensAt,
                            appointment::Column::CreatedAt,
                        ])
                        .to_owned(),
                    )
                    .exec_without_returning(tx)
                    .await?;
                }
                Ok(rows.len())
            })
        })
        .await
}

/// A student's own opening time in a term, if they have an appointment there.
///
/// # Errors
/// The database fails.
pub(crate) async fn appointment(
    conn: &impl ConnectionTrait,
    term_id: Uuid,
    user_id: Uuid,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    Ok(entity::appointment::Entity::find_by_id((term_id, user_id))
        .one(conn)
        .await?
        .map(|a| a.opens_at))
}

/// Where `section`'s enrollment window stands now for `user_id` (their appointment in the
/// section's term opens it for them), read in the writing transaction: what `enroll` and
/// `switchSection` refuse a student with.
///
/// # Errors
/// The database fails.
pub(crate) async fn window_now(
    tx: &Tx<'_>,
    section: &section::Model,
    term: Option<&term::Model>,
    user_id: Uuid,
) -> Result<calendar::WindowState, ApiError> {
    Ok(window_of(tx, section, term, user_id).await?.at(tx.now()))
}

/// The section's enrollment window as it stands for the user (see [`calendar::window_for`]).
///
/// # Errors
/// The database fails.
pub(crate) async fn window_of(
    tx: &Tx<'_>,
    section: &section::Model,
    term: Option<&term::Model>,
    user_id: Uuid,
) -> Result<calendar::Window, ApiError> {
    let appointment = match term {
        Some(term) => appointment(tx, term.id, user_id).await?,
        None => None,
    };
    Ok(calendar::window_for(section, term, appointment))
}

/// A user's appointment in a term, for the user themself and the term organization's
/// coordinators and admins (`None` for anyone else).
///
/// # Errors
/// The database fails.
pub async fn appointment_seen_by(
    store: &Store,
    viewer: Option<&Viewer>,
    user_id: Uuid,
    term_id: Uuid,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(viewer) = viewer else {
        return Ok(None);
    };
    if viewer.id() != user_id && !viewer.is_admin() {
        let Some(term) = by_id(store, term_id).await? else {
            return Ok(None);
        };
        if !viewer.coordinates(term.organization_id) {
            return Ok(None);
        }
    }
    appointment(store.db(), term_id, user_id).await
}

/// An organization as one of its coordinators or an admin sees it.
///
/// # Errors
/// `FORBIDDEN` for anyone else; `NOT_FOUND`; the database fails.
pub async fn organization(
    store: &Store,
    viewer: &Viewer,
    organization_id: Uuid,
) -> Result<organization::Model, ApiError> {
    may_manage(viewer, organization_id)?;
    organization::Entity::find_by_id(organization_id)
        .one(store.db())
        .await?
        .ok_or(ApiError::NotFound("organization"))
}

/// The close notices of `roster serve`, a [`crate::jobs::Job`] run every 30 seconds: each round
/// runs [`notify_closed`].
pub struct CloseNotices(pub Store);

#[async_trait::async_trait]
impl crate::jobs::Job for CloseNotices {
    fn name(&self) -> &'static str {
        "enrollment window close notices"
    }

    fn every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(30)
    }

    async fn run_once(&mut self) -> anyhow::Result<crate::jobs::Round> {
        let told = notify_closed(&self.0).await?;
        if told > 0 {
            tracing::info!(told, "waiters told that enrollment closed");
        }
        Ok(told.into())
    }
}

/// Tells the waiters of every section whose enrollment window has closed that nobody is
/// promoted any more, once per close: the notices and the section's mark
/// (`close_noticed_at`, the close they were told of) are written in one write under the
/// section's lock, so of replicas running this at once one tells and the others find the mark.
/// A window that closes again later (staff moved it) is told again. Returns how many waiters
/// were told.
///
/// # Errors
/// The database fails.
pub async fn notify_closed(store: &Store) -> Result<usize, ApiError> {
    const DUE: &str = "SELECT s.id FROM sections s LEFT JOIN terms t ON t.id = s.term_id \
        WHERE s.waitlist_count > 0 \
        AND COALESCE(s.enrollment_closes_at, t.enrollment_closes_at) <= $1 \
        AND (s.close_noticed_at IS NULL \
        OR s.close_noticed_at < COALESCE(s.enrollment_closes_at, t.enrollment_closes_at)) \
        ORDER BY s.id LIMIT 100";
    let db = store.db();
    let due = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            DUE,
            [store.now().into()],
        ))
        .await?;
    let mut told = 0;
    for row in due {
        let id: Uuid = row.try_get_by_index(0)?;
        told += store.write(|tx| Box::pin(notify_closed_in(tx, id))).await?;
    }
    Ok(told)
}

async fn notify_closed_in(tx: &Tx<'_>, section_id: Uuid) -> Result<usize, ApiError> {
    use entity::{enrollment, types::EnrollmentStatus};
    let Some(section) = for_update(
        section::Entity::find_by_id(section_id),
        tx.get_database_backend(),
    )
    .one(tx)
    .await?
    else {
        return Ok(0);
    };
    let term = super::term_of(tx, &section).await?;
    let Some(closed_at) = calendar::window(&section, term.as_ref()).closes_at else {
        return Ok(0);
    };
    if closed_at > tx.now() || section.close_noticed_at.is_some_and(|at| at >= closed_at) {
        return Ok(0);
    }
    section::Entity::update(section::ActiveModel {
        id: Set(section.id),
        close_noticed_at: Set(Some(closed_at)),
        ..Default::default()
    })
    .exec_without_returning(tx)
    .await?;
    let waiting = enrollment::Entity::find()
        .filter(enrollment::Column::SectionId.eq(section.id))
        .filter(enrollment::Column::Status.eq(EnrollmentStatus::Waitlisted))
        .order_by_asc(enrollment::Column::WaitlistTicket)
        .all(tx)
        .await?;
    let course = course::Entity::find_by_id(section.course_id)
        .one(tx)
        .await?
        .map(|c| c.name)
        .unwrap_or_default();
    let place = crate::domain::notification::Place {
        course: &course,
        section: &section.name,
    };
    for row in &waiting {
        let message = crate::domain::notification::window_closed(&place, closed_at);
        super::notifications::notify(tx, row.user_id, Some(row.id), message).await?;
    }
    Ok(waiting.len())
}

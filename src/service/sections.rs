//! Sections: creating and changing them, for the staff of their course, and reading one as the
//! viewer may see it.

use chrono::{DateTime, NaiveDate, Utc};
use entity::{
    course, enrollment, section, term,
    types::{Meeting, PromotionMode, Schedule},
    user,
};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use uuid::Uuid;

use super::{for_update, promotion};
use crate::{
    domain::{validate, viewer::Viewer},
    error::ApiError,
    store::{Store, Tx, feed::Notice},
};

/// A new section of a course.
#[derive(Clone, Debug)]
pub struct NewSection {
    pub course_id: Uuid,
    pub name: String,
    /// `None`: unlimited.
    pub capacity: Option<i32>,
    pub schedule: Vec<Meeting>,
    pub requires_approval: bool,
    pub waitlist_enabled: bool,
    /// The teaching assistant, a user of the course's organization.
    pub assistant_id: Option<Uuid>,
    /// What a freed seat does (docs/design.md#offer-mode).
    pub promotion_mode: PromotionMode,
    /// How long an offered seat is held, 1 to 168 hours.
    pub offer_hours: i32,
    /// Its term, dates and window (docs/design.md#time).
    pub time: SectionTime,
}

/// A section's place in time: its term, its dates inside the term (the term's when `None`),
/// and its own enrollment window (the term's when `None`). In [`SectionChanges`] an outer
/// `None` leaves a field as it is and `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct SectionTime {
    pub term_id: Option<Option<Uuid>>,
    pub starts_on: Option<Option<NaiveDate>>,
    pub ends_on: Option<Option<NaiveDate>>,
    pub enrollment_opens_at: Option<Option<DateTime<Utc>>>,
    pub enrollment_closes_at: Option<Option<DateTime<Utc>>>,
}

/// Changes to a section: `None` leaves a field as it is; `capacity: Some(None)` makes the
/// section unlimited.
#[derive(Clone, Debug, Default)]
pub struct SectionChanges {
    pub name: Option<String>,
    pub capacity: Option<Option<i32>>,
    pub schedule: Option<Vec<Meeting>>,
    pub requires_approval: Option<bool>,
    pub waitlist_enabled: Option<bool>,
    pub is_active: Option<bool>,
    /// `Some(None)` removes the assistant.
    pub assistant_id: Option<Option<Uuid>>,
    /// Switching modes leaves open offers running until they end.
    pub promotion_mode: Option<PromotionMode>,
    pub offer_hours: Option<i32>,
    pub time: SectionTime,
}

/// Adds a section to a course.
///
/// # Errors
/// `NOT_FOUND` for the course; `FORBIDDEN` unless the viewer manages it; `BAD_USER_INPUT`.
pub async fn create_section(
    store: &Store,
    viewer: &Viewer,
    new: NewSection,
) -> Result<section::Model, ApiError> {
    let new = &new;
    store
        .write(|tx| {
            Box::pin(async move {
                let course = course::Entity::find_by_id(new.course_id)
                    .one(tx)
                    .await?
                    .ok_or(ApiError::NotFound("course"))?;
                if !viewer.can_manage_course(&course) {
                    return Err(ApiError::forbidden("you do not manage this course"));
                }
                let name = validate::name("name", &new.name, validate::SECTION_NAME_MAX)?;
                let capacity = validate::capacity(new.capacity)?;
                let schedule = validate::schedule(new.schedule.clone())?;
                let offer_hours = validate::offer_hours(new.offer_hours)?;
                if let Some(assistant) = new.assistant_id {
                    check_assistant(tx, assistant, &course).await?;
                }
                let time = place_in_time(tx, &course, &Placed::default(), &new.time).await?;
                let at = tx.now();
                Ok(section::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    course_id: Set(course.id),
                    name: Set(name),
                    weekdays: Set(schedule.weekday_mask()),
                    schedule: Set(schedule),
                    capacity: Set(capacity),
                    registered_count: Set(0),
                    pending_count: Set(0),
                    waitlist_count: Set(0),
                    finished_count: Set(0),
                    offered_count: Set(0),
                    promotion_mode: Set(new.promotion_mode),
                    offer_hours: Set(offer_hours),
                    waitlist_seq: Set(0),
                    is_active: Set(true),
                    requires_approval: Set(new.requires_approval),
                    waitlist_enabled: Set(new.waitlist_enabled),
                    assistant_id: Set(new.assistant_id),
                    term_id: Set(time.term_id),
                    starts_on: Set(time.starts_on),
                    ends_on: Set(time.ends_on),
                    enrollment_opens_at: Set(time.enrollment_opens_at),
                    enrollment_closes_at: Set(time.enrollment_closes_at),
                    close_noticed_at: Set(None),
                    created_at: Set(at),
                    updated_at: Set(at),
                }
                .insert(tx)
                .await?)
            })
        })
        .await
}

/// Changes a section. When the change frees seats (capacity raised or made unlimited, the
/// section reactivated), the earliest waitlisted enrollments are promoted in the same
/// transaction (invariant 3), and returned beside the section.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless the viewer manages the course; `BAD_USER_INPUT`.
pub async fn update_section(
    store: &Store,
    viewer: &Viewer,
    id: Uuid,
    changes: SectionChanges,
) -> Result<(section::Model, Vec<enrollment::Model>), ApiError> {
    let changes = &changes;
    store
        .write(|tx| Box::pin(update_section_in(tx, viewer, id, changes)))
        .await
}

async fn update_section_in(
    tx: &Tx<'_>,
    viewer: &Viewer,
    id: Uuid,
    changes: &SectionChanges,
) -> Result<(section::Model, Vec<enrollment::Model>), ApiError> {
    let existing = for_update(section::Entity::find_by_id(id), tx.get_database_backend())
        .one(tx)
        .await?
        .ok_or(ApiError::NotFound("section"))?;
    let course = course::Entity::find_by_id(existing.course_id)
        .one(tx)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    if !viewer.can_manage_course(&course) {
        return Err(ApiError::forbidden("you do not manage this course"));
    }
    let placed = Placed {
        term_id: existing.term_id,
        starts_on: existing.starts_on,
        ends_on: existing.ends_on,
        enrollment_opens_at: existing.enrollment_opens_at,
        enrollment_closes_at: existing.enrollment_closes_at,
    };
    let time = place_in_time(tx, &course, &placed, &changes.time).await?;
    let mut model: section::ActiveModel = existing.into();
    if time != placed {
        model.term_id = Set(time.term_id);
        model.starts_on = Set(time.starts_on);
        model.ends_on = Set(time.ends_on);
        model.enrollment_opens_at = Set(time.enrollment_opens_at);
        model.enrollment_closes_at = Set(time.enrollment_closes_at);
    }
    if let Some(name) = &changes.name {
        model.name = Set(validate::name("name", name, validate::SECTION_NAME_MAX)?);
    }
    if let Some(capacity) = changes.capacity {
        model.capacity = Set(validate::capacity(capacity)?);
    }
    if let Some(meetings) = &changes.schedule {
        let schedule: Schedule = validate::schedule(meetings.clone())?;
        model.weekdays = Set(schedule.weekday_mask());
        model.schedule = Set(schedule);
    }
    if let Some(v) = changes.requires_approval {
        model.requires_approval = Set(v);
    }
    if let Some(v) = changes.waitlist_enabled {
        model.waitlist_enabled = Set(v);
    }
    if let Some(v) = changes.is_active {
        model.is_active = Set(v);
    }
    if let Some(mode) = changes.promotion_mode {
        model.promotion_mode = Set(mode);
    }
    if let Some(hours) = changes.offer_hours {
        model.offer_hours = Set(validate::offer_hours(hours)?);
    }
    if let Some(assistant) = changes.assistant_id {
        if let Some(id) = assistant {
            check_assistant(tx, id, &course).await?;
        }
        model.assistant_id = Set(assistant);
    }
    model.updated_at = Set(tx.now());
    let updated = model.update(tx).await?;
    // Capacity and activity change what `sectionSeats` subscribers see.
    tx.announce(Notice::of_section(id, updated.course_id));
    let promoted = promotion::fill_free_seats(tx, id).await?;
    let updated = if promoted.is_empty() {
        updated
    } else {
        section::Entity::find_by_id(id)
            .one(tx)
            .await?
            .ok_or(ApiError::NotFound("section"))?
    };
    Ok((updated, promoted))
}

/// Where a section stands in time, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Placed {
    term_id: Option<Uuid>,
    starts_on: Option<NaiveDate>,
    ends_on: Option<NaiveDate>,
    enrollment_opens_at: Option<DateTime<Utc>>,
    enrollment_closes_at: Option<DateTime<Utc>>,
}

/// `placed` with `changes` applied, checked: the term belongs to the course's organization;
/// dates need a term and lie inside it, the last not before the first; the window closes after
/// it opens (the term's bounds fill in the ones the section leaves unset).
async fn place_in_time(
    tx: &Tx<'_>,
    course: &course::Model,
    placed: &Placed,
    changes: &SectionTime,
) -> Result<Placed, ApiError> {
    let mut time = placed.clone();
    if let Some(v) = changes.term_id {
        time.term_id = v;
    }
    if let Some(v) = changes.starts_on {
        time.starts_on = v;
    }
    if let Some(v) = changes.ends_on {
        time.ends_on = v;
    }
    if let Some(v) = changes.enrollment_opens_at {
        time.enrollment_opens_at = v;
    }
    if let Some(v) = changes.enrollment_closes_at {
        time.enrollment_closes_at = v;
    }
    let term = match time.term_id {
        Some(id) => Some(
            term::Entity::find_by_id(id)
                .one(tx)
                .await?
                .filter(|t| t.organization_id == course.organization_id)
                .ok_or_else(|| {
                    ApiError::bad_input("termId", "no such term in the course's organization")
                })?,
        ),
        None => None,
    };
    match &term {
        None if time.starts_on.is_some() || time.ends_on.is_some() => {
            return Err(ApiError::bad_input(
                if time.starts_on.is_some() {
                    "startsOn"
                } else {
                    "endsOn"
                },
                "a section has dates only in a term: set termId",
            ));
        }
        Some(term) => {
            let inside = term.starts_on..=term.ends_on;
            for (field, date) in [("startsOn", time.starts_on), ("endsOn", time.ends_on)] {
                if date.is_some_and(|d| !inside.contains(&d)) {
                    return Err(ApiError::bad_input(
                        field,
                        format!(
                            "must be inside the term ({} to {})",
                            term.starts_on, term.ends_on
                        ),
                    ));
                }
            }
            let first = time.starts_on.unwrap_or(term.starts_on);
            if time.ends_on.unwrap_or(term.ends_on) < first {
                return Err(ApiError::bad_input("endsOn", "must not be before startsOn"));
            }
        }
        None => {}
    }
    let opens = time
        .enrollment_opens_at
        .or(term.as_ref().and_then(|t| t.enrollment_opens_at));
    let closes = time
        .enrollment_closes_at
        .or(term.as_ref().and_then(|t| t.enrollment_closes_at));
    if let (Some(opens), Some(closes)) = (opens, closes)
        && closes <= opens
    {
        return Err(ApiError::bad_input(
            "enrollmentClosesAt",
            "must be after the window opens",
        ));
    }
    Ok(time)
}

/// An assistant must be a user of the course's organization.
async fn check_assistant(tx: &Tx<'_>, id: Uuid, course: &course::Model) -> Result<(), ApiError> {
    let user = user::Entity::find_by_id(id)
        .one(tx)
        .await?
        .ok_or_else(|| ApiError::bad_input("assistantId", "no such user"))?;
    if user.organization_id != Some(course.organization_id) {
        return Err(ApiError::bad_input(
            "assistantId",
            "the assistant belongs to another organization",
        ));
    }
    Ok(())
}

/// A section by id as the viewer may see it: an inactive section, or one of an inactive course,
/// only for those who manage the course.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn visible_section(
    store: &Store,
    viewer: Option<&Viewer>,
    id: Uuid,
) -> Result<Option<section::Model>, ApiError> {
    let found = section::Entity::find_by_id(id)
        .find_also_related(course::Entity)
        .one(store.db())
        .await?;
    Ok(found.and_then(|(section, course)| {
        let course = course?;
        let visible = (section.is_active && course.is_active)
            || viewer.is_some_and(|v| v.can_manage_course(&course));
        visible.then_some(section)
    }))
}

/// One section by id, as committed.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn by_id(store: &Store, id: Uuid) -> Result<Option<section::Model>, ApiError> {
    Ok(section::Entity::find_by_id(id).one(store.db()).await?)
}

//! Sections: creating and changing them, for the staff of their course, and reading one as the
//! viewer may see it.

use entity::{
    course, enrollment, section,
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
    let mut model: section::ActiveModel = existing.into();
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

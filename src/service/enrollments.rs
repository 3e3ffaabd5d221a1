//! Reading enrollments and certifications, and the one enrollment change that is not a status
//! change (its visibility).

use entity::{certification, enrollment, enrollment_event, types::EnrollmentStatus};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use crate::{
    domain::{validate, viewer::Viewer},
    error::ApiError,
    store::Store,
};

/// The user's enrollments, newest first, optionally only those in `statuses`.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn for_user(
    store: &Store,
    user_id: Uuid,
    statuses: Option<Vec<EnrollmentStatus>>,
) -> Result<Vec<enrollment::Model>, ApiError> {
    let mut select = enrollment::Entity::find().filter(enrollment::Column::UserId.eq(user_id));
    if let Some(statuses) = statuses {
        select = select.filter(enrollment::Column::Status.is_in(statuses));
    }
    Ok(select
        .order_by_desc(enrollment::Column::EnrolledAt)
        .order_by_desc(enrollment::Column::Id)
        .all(store.db())
        .await?)
}

/// The user's certifications, newest first, expired ones included.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn certifications_of(
    store: &Store,
    user_id: Uuid,
) -> Result<Vec<certification::Model>, ApiError> {
    Ok(certification::Entity::find()
        .filter(certification::Column::UserId.eq(user_id))
        .order_by_desc(certification::Column::IssuedAt)
        .all(store.db())
        .await?)
}

/// The owner shows or hides an enrollment from fellow team members. Not a status change, so no
/// event.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` for anyone but the owner.
pub async fn set_visibility(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
    visibility: bool,
) -> Result<enrollment::Model, ApiError> {
    store
        .write(|tx| {
            Box::pin(async move {
                let row = enrollment::Entity::find_by_id(enrollment_id)
                    .one(tx)
                    .await?
                    .ok_or(ApiError::NotFound("enrollment"))?;
                if row.user_id != viewer.id() {
                    return Err(ApiError::forbidden(
                        "only the enrolled user sets its visibility",
                    ));
                }
                let mut model: enrollment::ActiveModel = row.into();
                model.visibility = Set(visibility);
                model.updated_at = Set(tx.now());
                Ok(model.update(tx).await?)
            })
        })
        .await
}

/// One enrollment by id, as committed (what a subscription re-reads after a notice).
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn by_id(store: &Store, id: Uuid) -> Result<Option<enrollment::Model>, ApiError> {
    Ok(enrollment::Entity::find_by_id(id).one(store.db()).await?)
}

/// One audit event by id.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn event_by_id(
    store: &Store,
    id: i64,
) -> Result<Option<enrollment_event::Model>, ApiError> {
    Ok(enrollment_event::Entity::find_by_id(id)
        .one(store.db())
        .await?)
}

/// The user's WAITLISTED enrollments.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn waitlisted(store: &Store, user_id: Uuid) -> Result<Vec<enrollment::Model>, ApiError> {
    Ok(enrollment::Entity::find()
        .filter(enrollment::Column::UserId.eq(user_id))
        .filter(enrollment::Column::Status.eq(EnrollmentStatus::Waitlisted))
        .all(store.db())
        .await?)
}

/// The longest internal note.
pub const NOTES_MAX: usize = 5000;

/// Staff of the section (of its course, or its teaching assistant) write the enrollment's
/// internal notes; who and when are recorded. `None` (or blank) clears them.
///
/// # Errors
/// `BAD_USER_INPUT` for notes over [`NOTES_MAX`] characters; `NOT_FOUND`; `FORBIDDEN` for
/// anyone else, the enrolled student included.
pub async fn set_notes(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
    notes: Option<String>,
) -> Result<enrollment::Model, ApiError> {
    let notes = &validate::description("notes", notes.as_deref(), NOTES_MAX)?;
    store
        .write(|tx| {
            Box::pin(async move {
                let row = enrollment::Entity::find_by_id(enrollment_id)
                    .one(tx)
                    .await?
                    .ok_or(ApiError::NotFound("enrollment"))?;
                let (section, course) = super::section_with_course(tx, row.section_id).await?;
                if !viewer.staffs_section(&course, &section) {
                    return Err(ApiError::forbidden(
                        "only staff of the section write its notes",
                    ));
                }
                let at = tx.now();
                let mut model: enrollment::ActiveModel = row.into();
                model.notes = Set(notes.clone());
                model.notes_updated_at = Set(Some(at));
                model.notes_updated_by = Set(Some(viewer.id()));
                model.updated_at = Set(at);
                Ok(model.update(tx).await?)
            })
        })
        .await
}

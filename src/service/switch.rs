//! `switchSection`: one enrollment moves to another section of its course in one write.

use entity::{
    enrollment, section,
    types::EnrollmentStatus::{self, Pending, Registered},
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use super::{
    eligibility, for_update, promotion, seats, section_with_course,
    transitions::{Actor, invalid, lock_for_change, withdrawal},
};
use crate::{
    domain::{calendar::WindowState, viewer::Viewer},
    error::ApiError,
    store::{Store, Transition, Tx},
};

/// Moves an active enrollment to another section of the same course, in one transaction: it
/// takes a seat in the new section (PENDING there if that section requires approval), gives up
/// its seat or waitlist place in the old one, and fills the old seat from the old waitlist. If
/// the new section has no free seat (or people waiting for one) it fails with `SECTION_FULL`
/// and the old seat is kept: the user never holds two sections, nor loses the one they have.
///
/// Both section rows are locked in id order, so switches in opposite directions queue instead of
/// deadlocking. The event records both sections in its details.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless the enrolled user or staff of the course; `BAD_USER_INPUT`
/// for the same section or a section of another course; `INVALID_TRANSITION` for a final status;
/// `SECTION_INACTIVE`; `SCHEDULE_CONFLICT`; `SECTION_FULL`.
pub async fn switch_section(
    store: &Store,
    viewer: &Viewer,
    enrollment_id: Uuid,
    to_section_id: Uuid,
) -> Result<enrollment::Model, ApiError> {
    store
        .write(|tx| Box::pin(switch_in(tx, viewer, enrollment_id, to_section_id)))
        .await
}

async fn switch_in(
    tx: &Tx<'_>,
    viewer: &Viewer,
    enrollment_id: Uuid,
    to_section_id: Uuid,
) -> Result<enrollment::Model, ApiError> {
    let current = enrollment::Entity::find_by_id(enrollment_id)
        .one(tx)
        .await?
        .ok_or(ApiError::NotFound("enrollment"))?;
    if current.section_id == to_section_id {
        return Err(ApiError::bad_input(
            "toSectionId",
            "the enrollment is already in this section",
        ));
    }
    let mut order = [current.section_id, to_section_id];
    order.sort();
    for id in order {
        for_update(section::Entity::find_by_id(id), tx.get_database_backend())
            .one(tx)
            .await?
            .ok_or(ApiError::NotFound("section"))?;
    }
    let locked = lock_for_change(tx, viewer, enrollment_id).await?;
    locked.require_owner_or_staff()?;
    let (target, _) = section_with_course(tx, to_section_id).await?;
    let row = &locked.row;
    if target.course_id != row.course_id {
        return Err(ApiError::bad_input(
            "toSectionId",
            "the section belongs to another course",
        ));
    }
    let to = if target.requires_approval {
        Pending
    } else {
        Registered
    };
    if !EnrollmentStatus::ACTIVE.contains(&row.status) {
        return Err(invalid(row.status, to));
    }
    if row.status == EnrollmentStatus::Requested {
        // A seat goes to a request only in the draw.
        return Err(ApiError::InvalidTransition {
            from: "REQUESTED".into(),
            to: "another section: withdraw the lottery request and request that section".into(),
        });
    }
    if !target.is_active || !locked.course.is_active {
        return Err(ApiError::SectionInactive(
            "the section or its course is not active".into(),
        ));
    }
    // Joining the target is an enrollment in it: a student only while its window is open.
    let target_term = super::term_of(tx, &target).await?;
    let window = super::terms::window_now(tx, &target, target_term.as_ref(), row.user_id).await?;
    let staff = locked.actor == Some(Actor::Staff);
    if let Some((_, refusal)) = window.refusal().filter(|_| !staff) {
        return Err(refusal);
    }
    // Leaving the section is a withdrawal from it: the term's deadline ladder applies, and
    // what it leaves for the section left is on the switch's event.
    let (record, late) = withdrawal(tx, &locked.section, row.status, staff).await?;
    eligibility::lock_user(tx, row.user_id).await?;
    eligibility::check_schedule(tx, row.user_id, &target, Some(row.id)).await?;
    if !seats::take(tx, target.id, to).await? {
        return Err(ApiError::SectionFull);
    }
    let at = tx.now();
    let updated = enrollment::Entity::update_many()
        .set(enrollment::ActiveModel {
            section_id: Set(target.id),
            status: Set(to),
            waitlist_ticket: Set(None),
            seat_reserved_at: Set(Some(at)),
            // An offer switched away from ends: the seat it held goes on below.
            offer_expires_at: Set(None),
            offer_remind_at: Set(None),
            updated_at: Set(at),
            ..Default::default()
        })
        .filter(enrollment::Column::Id.eq(row.id))
        .filter(enrollment::Column::Status.eq(row.status))
        .filter(enrollment::Column::SectionId.eq(locked.section.id))
        .exec(tx)
        .await?;
    if updated.rows_affected != 1 {
        return Err(invalid(row.status, to));
    }
    seats::add(tx, locked.section.id, row.status, -1).await?;
    super::record(
        tx,
        Transition {
            enrollment_id: row.id,
            user_id: row.user_id,
            course_id: row.course_id,
            sections: vec![locked.section.id, target.id],
            from: Some(row.status),
            to,
            actor: Some(viewer.id()),
            reason: Some("switched section".into()),
            details: Some({
                let mut details = json!({
                    "fromSectionId": locked.section.id,
                    "toSectionId": target.id,
                });
                if locked.section.term_id.is_some() && row.status.holds_seat() {
                    details["record"] = json!(record);
                }
                if late || window != WindowState::Open {
                    details["late"] = json!(true);
                }
                details
            }),
            at,
        },
    )
    .await?;
    if row.status.holds_seat() {
        promotion::fill_free_seats(tx, locked.section.id).await?;
    }
    enrollment::Entity::find_by_id(row.id)
        .one(tx)
        .await?
        .ok_or(ApiError::NotFound("enrollment"))
}

//! Filling freed seats from the waitlist, first come first served among the *eligible*
//! (docs/design.md#invariants, 3), inside the transaction that freed them.

use chrono::{DateTime, Duration, Utc};
use entity::{
    course, enrollment, section,
    types::{
        EnrollmentStatus::{Offered, Pending, Registered, Waitlisted},
        PromotionMode,
    },
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;
use uuid::Uuid;

use super::{
    eligibility::{self, Schedule},
    seats,
};
use crate::{
    domain::seats::Seats,
    error::ApiError,
    store::{Transition, Tx},
};

/// The reason a promotion's event gives.
pub const PROMOTED: &str = "promoted from the waitlist";

/// The reason an offer's event gives.
pub const OFFERED: &str = "offered a freed seat";

/// The longest lead of an offer's reminder before its deadline.
const REMINDER_LEAD_MAX: Duration = Duration::hours(3);

/// When an offer made at `at` in `section` lapses, and when its holder is reminded: three hours
/// before, or a quarter of the offer's time before in a shorter offer.
pub(crate) fn offer_times(
    section: &section::Model,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let hours = Duration::hours(i64::from(section.offer_hours.clamp(1, 168)));
    let expires = at + hours;
    (expires, expires - REMINDER_LEAD_MAX.min(hours / 4))
}

/// Promotes the earliest eligible waitlisted enrollments of the section into its free seats, as
/// many as there are, and returns them as they now stand. In offer mode each is OFFERED the
/// seat instead (docs/design.md#offer-mode): it holds the seat until `offer_hours` from now. The caller holds the section's row
/// lock (or SQLite's write lock) and has already written the change that freed the seats.
///
/// A waiter who may not take the seat now (the section or course inactive, a prerequisite
/// certification expired, a meeting overlapping another of their seats) keeps their place, and
/// the reason is recorded on their enrollment (`skip_reason`); the seat goes to the next
/// eligible one. Nobody is promoted while the section or its course is inactive (invariant 8).
/// Into a section that requires approval, a promotion gives PENDING. A promotion is the
/// system's action: its event names no actor.
///
/// # Errors
/// `NOT_FOUND` for an unknown section; the database fails.
pub(crate) async fn fill_free_seats(
    tx: &Tx<'_>,
    section_id: Uuid,
) -> Result<Vec<enrollment::Model>, ApiError> {
    let section = section::Entity::find_by_id(section_id)
        .one(tx)
        .await?
        .ok_or(ApiError::NotFound("section"))?;
    let seats = Seats::from(&section);
    if seats.promotable() == 0 || !section.is_active {
        return Ok(Vec::new());
    }
    // Promotions and offers stop when the enrollment window closes; the waiters stay and are
    // told once (`CloseNotices`).
    if section.term_id.is_some() || section.enrollment_closes_at.is_some() {
        let term = super::term_of(tx, &section).await?;
        if crate::domain::calendar::window(&section, term.as_ref()).is_closed(tx.now()) {
            return Ok(Vec::new());
        }
    }
    // Shared-locked on PostgreSQL: a reactivation of the course (which updates its row, then
    // fills each section) and this change then come one after the other, so a seat freed while
    // the course turns active again is never missed by both.
    let course = super::for_share(
        course::Entity::find_by_id(section.course_id),
        tx.get_database_backend(),
    )
    .one(tx)
    .await?
    .ok_or(ApiError::NotFound("course"))?;
    if !course.is_active {
        return Ok(Vec::new());
    }
    let waiting = enrollment::Entity::find()
        .filter(enrollment::Column::SectionId.eq(section.id))
        .filter(enrollment::Column::Status.eq(Waitlisted))
        .order_by_asc(enrollment::Column::WaitlistTicket)
        .all(tx)
        .await?;
    let to = if section.promotion_mode == PromotionMode::Offer {
        Offered
    } else if section.requires_approval {
        Pending
    } else {
        Registered
    };
    let mut free = seats
        .available()
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(0));
    let mut promoted = Vec::new();
    for row in waiting {
        if free == 0 {
            break;
        }
        eligibility::lock_user(tx, row.user_id).await?;
        let at = tx.now();
        let check = eligibility::check_seat(
            tx,
            row.user_id,
            &section,
            &course,
            Some(row.id),
            Schedule::Checked,
            at,
        )
        .await;
        match check {
            Ok(()) => {}
            Err(err) if eligibility::is_ineligible(&err) => {
                skip(tx, &row, &err, at).await?;
                continue;
            }
            Err(err) => return Err(err),
        }
        let (offer_expires_at, offer_remind_at, details, reason) = if to == Offered {
            let (expires, remind) = offer_times(&section, at);
            let details = json!({ "offerExpiresAt": expires });
            (Some(expires), Some(remind), Some(details), OFFERED)
        } else {
            (None, None, None, PROMOTED)
        };
        // The section's lock keeps every other change of this enrollment out meanwhile.
        let row = enrollment::Entity::update(enrollment::ActiveModel {
            id: Set(row.id),
            status: Set(to),
            waitlist_ticket: Set(None),
            seat_reserved_at: Set(Some(at)),
            skip_reason: Set(None),
            skipped_at: Set(None),
            offer_expires_at: Set(offer_expires_at),
            offer_remind_at: Set(offer_remind_at),
            updated_at: Set(at),
            ..Default::default()
        })
        .exec(tx)
        .await?;
        seats::moved(tx, section.id, Waitlisted, to).await?;
        super::record(
            tx,
            Transition {
                enrollment_id: row.id,
                user_id: row.user_id,
                course_id: row.course_id,
                sections: vec![row.section_id],
                from: Some(Waitlisted),
                to,
                actor: None,
                reason: Some(reason.into()),
                details,
                at,
            },
        )
        .await?;
        free -= 1;
        promoted.push(row);
    }
    Ok(promoted)
}

/// Fills the free seats of every section `sections` selects, each locked in id order as every
/// writer of several sections does (after a course reactivates, after a term's window opens).
///
/// # Errors
/// The database fails.
pub(crate) async fn fill_sections(
    tx: &Tx<'_>,
    sections: sea_orm::Select<section::Entity>,
) -> Result<(), ApiError> {
    let sections = sections.order_by_asc(section::Column::Id).all(tx).await?;
    for section in sections {
        super::for_update(
            section::Entity::find_by_id(section.id),
            tx.get_database_backend(),
        )
        .one(tx)
        .await?;
        fill_free_seats(tx, section.id).await?;
    }
    Ok(())
}

/// Records why a waiter was passed over; they keep their place.
async fn skip(
    tx: &Tx<'_>,
    row: &enrollment::Model,
    why: &ApiError,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let why = why.to_string();
    enrollment::Entity::update(enrollment::ActiveModel {
        id: Set(row.id),
        skip_reason: Set(Some(why.clone())),
        skipped_at: Set(Some(at)),
        ..Default::default()
    })
    .exec_without_returning(tx)
    .await?;
    // Told once per reason: a waiter passed over again for the same reason hears nothing new.
    if row.skip_reason.as_deref() != Some(why.as_str()) {
        let (course, section) = super::notifications::names(tx, row.id).await?;
        let place = crate::domain::notification::Place {
            course: &course,
            section: &section,
        };
        let message = crate::domain::notification::skipped(&place, &why);
        super::notifications::notify(tx, row.user_id, Some(row.id), message).await?;
    }
    Ok(())
}

//! Filling freed seats from the waitlist, first come first served (docs/design.md#invariants, 3),
//! inside the transaction that freed them.

use entity::{
    enrollment, section,
    types::EnrollmentStatus::{Registered, Waitlisted},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use crate::{
    domain::seats::Seats,
    error::ApiError,
    store::{Transition, Tx},
};

/// Promotes the earliest waitlisted enrollments of the section into its free seats, as many as
/// there are, and returns them. Reads the section as it stands now, after the change that freed
/// the seats; the caller holds the section's row lock (or SQLite's write lock). An inactive
/// section promotes nobody (invariant 8).
///
/// # Errors
/// `NOT_FOUND` for an unknown section; the database fails.
pub(crate) async fn fill_free_seats(
    tx: &Tx<'_>,
    section_id: Uuid,
    actor: Option<Uuid>,
) -> Result<Vec<enrollment::Model>, ApiError> {
    let section = section::Entity::find_by_id(section_id)
        .one(tx)
        .await?
        .ok_or(ApiError::NotFound("section"))?;
    let free = Seats::from(&section).promotable();
    if free == 0 || !section.is_active {
        return Ok(Vec::new());
    }
    let waiting = enrollment::Entity::find()
        .filter(enrollment::Column::SectionId.eq(section.id))
        .filter(enrollment::Column::Status.eq(Waitlisted))
        .order_by_asc(enrollment::Column::WaitlistTicket)
        .limit(free)
        .all(tx)
        .await?;
    let at = tx.now();
    let mut promoted = Vec::with_capacity(waiting.len());
    for row in waiting {
        let mut model: enrollment::ActiveModel = row.into();
        model.status = Set(Registered);
        model.waitlist_ticket = Set(None);
        model.seat_reserved_at = Set(Some(at));
        model.updated_at = Set(at);
        let row = model.update(tx).await?;
        tx.record(Transition {
            enrollment_id: row.id,
            user_id: row.user_id,
            course_id: row.course_id,
            sections: vec![row.section_id],
            from: Some(Waitlisted),
            to: Registered,
            actor,
            reason: Some("promoted from the waitlist".into()),
            details: None,
            at,
        })
        .await?;
        promoted.push(row);
    }
    if !promoted.is_empty() {
        let n = i32::try_from(promoted.len()).unwrap_or(i32::MAX);
        section::Entity::update_many()
            .col_expr(
                section::Column::RegisteredCount,
                Expr::col(section::Column::RegisteredCount).add(n),
            )
            .col_expr(
                section::Column::WaitlistCount,
                Expr::col(section::Column::WaitlistCount).sub(n),
            )
            .filter(section::Column::Id.eq(section.id))
            .exec(tx)
            .await?;
    }
    Ok(promoted)
}

//! `SeaORM` Entity: a section (seed 004's "class") of a course, with its seat and waitlist counters.
//!
//! The counters are the source of truth for capacity: they change only through conditional
//! updates inside the transaction that changes an enrollment's status.

use sea_orm::entity::prelude::*;

use crate::types::{PromotionMode, Schedule};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub course_id: Uuid,
    pub name: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub schedule: Schedule,
    /// Bitmask of the weekdays in `schedule`, kept in step with it for filtering in SQL.
    pub weekdays: i32,
    /// `None` means unlimited.
    pub capacity: Option<i32>,
    /// Enrollments in REGISTERED.
    pub registered_count: i32,
    /// Enrollments in PENDING (they hold a seat too).
    pub pending_count: i32,
    /// Enrollments in WAITLISTED.
    pub waitlist_count: i32,
    /// Enrollments in COMPLETED or FAILED: finished, they keep their seat.
    pub finished_count: i32,
    /// The last waitlist ticket handed out; tickets give first-come-first-served order.
    pub waitlist_seq: i64,
    pub is_active: bool,
    /// The teaching assistant (seed 004's `assistantId`): sees this section's roster, approves,
    /// confirms attendance and writes notes here, and nothing more.
    pub assistant_id: Option<Uuid>,
    pub requires_approval: bool,
    pub waitlist_enabled: bool,
    /// What a freed seat does: promote at once, or be offered for `offer_hours`.
    pub promotion_mode: PromotionMode,
    /// How long an offered seat is held (1 to 168 hours).
    pub offer_hours: i32,
    /// Enrollments in OFFERED (they hold a seat until accepted, declined or expired).
    pub offered_count: i32,
    /// The term the section runs in; `None`: a weekly schedule without dates or windows.
    pub term_id: Option<Uuid>,
    /// The section's first and last dates, inside its term (the term's when `None`).
    pub starts_on: Option<Date>,
    pub ends_on: Option<Date>,
    /// The section's own enrollment window, overriding its term's.
    pub enrollment_opens_at: Option<DateTimeUtc>,
    pub enrollment_closes_at: Option<DateTimeUtc>,
    /// When its waiters were last told that its window closed (once per close).
    pub close_noticed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::course::Entity",
        from = "Column::CourseId",
        to = "super::course::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Course,
    #[sea_orm(has_many = "super::enrollment::Entity")]
    Enrollment,
    #[sea_orm(
        belongs_to = "super::term::Entity",
        from = "Column::TermId",
        to = "super::term::Column::Id",
        on_update = "NoAction",
        on_delete = "SetNull"
    )]
    Term,
}

impl Related<super::term::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Term.def()
    }
}

impl Related<super::course::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Course.def()
    }
}

impl Related<super::enrollment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Enrollment.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

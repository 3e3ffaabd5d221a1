//! `SeaORM` Entity: one user's enrollment in one section of a course.
//!
//! The certification an enrollment earned is the row of `certifications` whose `enrollment_id`
//! points here (unique), so there is one source of truth for "at most one per enrollment".

use sea_orm::entity::prelude::*;

use crate::types::{EnrollmentRecord, EnrollmentStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "enrollments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub course_id: Uuid,
    pub section_id: Uuid,
    pub status: EnrollmentStatus,
    /// Whether fellow team members may see this enrollment.
    pub visibility: bool,
    pub enrolled_at: DateTimeUtc,
    /// The staff member who enrolled the user on their behalf; `None` for self-enrollment.
    pub enrolled_by: Option<Uuid>,
    pub prerequisite_check_passed: bool,
    pub prerequisite_check_at: Option<DateTimeUtc>,
    pub seat_reserved_at: Option<DateTimeUtc>,
    /// Position in the section's first-come-first-served queue while WAITLISTED.
    pub waitlist_ticket: Option<i64>,
    pub completed_at: Option<DateTimeUtc>,
    pub completed_by: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub completion_evidence: Option<Json>,
    pub cancelled_at: Option<DateTimeUtc>,
    pub withdrawn_at: Option<DateTimeUtc>,
    /// Why it was cancelled, withdrawn or failed.
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// Internal staff notes; never shown to the student.
    #[sea_orm(column_type = "Text", nullable)]
    pub notes: Option<String>,
    /// When and by whom `notes` was last written.
    pub notes_updated_at: Option<DateTimeUtc>,
    pub notes_updated_by: Option<Uuid>,
    /// Why promotion last passed this waitlisted enrollment over (it keeps its place).
    pub skip_reason: Option<String>,
    pub skipped_at: Option<DateTimeUtc>,
    /// While OFFERED: when the offer lapses and the seat passes on.
    pub offer_expires_at: Option<DateTimeUtc>,
    /// While OFFERED: when the student is reminded that the offer is about to lapse; cleared
    /// once reminded.
    pub offer_remind_at: Option<DateTimeUtc>,
    /// What a withdrawal left on the transcript (`None` until withdrawn).
    pub record: Option<EnrollmentRecord>,
    /// A lottery request's draw: the end of the lottery window it was made in.
    pub lottery_draw_at: Option<DateTimeUtc>,
    /// A lottery request's place in its draw: the hex HMAC-SHA256 of its id under the term's
    /// seed (docs/design.md#registration-opening).
    pub lottery_rank: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    User,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::EnrolledBy",
        to = "super::user::Column::Id",
        on_update = "NoAction",
        on_delete = "SetNull"
    )]
    EnrolledBy,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::CompletedBy",
        to = "super::user::Column::Id",
        on_update = "NoAction",
        on_delete = "SetNull"
    )]
    CompletedBy,
    #[sea_orm(
        belongs_to = "super::course::Entity",
        from = "Column::CourseId",
        to = "super::course::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Course,
    #[sea_orm(
        belongs_to = "super::section::Entity",
        from = "Column::SectionId",
        to = "super::section::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Section,
    #[sea_orm(has_many = "super::enrollment_event::Entity")]
    EnrollmentEvent,
    #[sea_orm(has_one = "super::certification::Entity")]
    Certification,
}

impl Related<super::course::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Course.def()
    }
}

impl Related<super::section::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Section.def()
    }
}

impl Related<super::enrollment_event::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::EnrollmentEvent.def()
    }
}

impl Related<super::certification::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Certification.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

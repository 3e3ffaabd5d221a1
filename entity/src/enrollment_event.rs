//! `SeaORM` Entity: one status change of an enrollment, written in the transaction that made it.
//! The audit trail, and the source of subscription events. The integer key orders events.

use sea_orm::entity::prelude::*;

use crate::types::EnrollmentStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "enrollment_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub enrollment_id: Uuid,
    /// `None` for the event that created the enrollment.
    pub from_status: Option<EnrollmentStatus>,
    pub to_status: EnrollmentStatus,
    /// Who caused it; `None` when the system did (a promotion caused by someone else's action
    /// records that someone).
    pub actor_id: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// Extra facts about the transition, such as a capacity override or the sections of a switch.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub details: Option<Json>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::enrollment::Entity",
        from = "Column::EnrollmentId",
        to = "super::enrollment::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Enrollment,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::ActorId",
        to = "super::user::Column::Id",
        on_update = "NoAction",
        on_delete = "SetNull"
    )]
    Actor,
}

impl Related<super::enrollment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Enrollment.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

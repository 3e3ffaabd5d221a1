//! `SeaORM` Entity: a term (semester, quarter, part of term) of an organization, with its dates,
//! time zone, holidays, enrollment window and deadlines (docs/design.md#time).

use sea_orm::entity::prelude::*;

use crate::types::{Admission, Holidays};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "terms")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    /// Unique within the organization.
    pub code: String,
    pub starts_on: Date,
    pub ends_on: Date,
    /// IANA name; the organization's when the term was created, unless set.
    pub time_zone: String,
    /// Dates without meetings, inside the term, sorted.
    #[sea_orm(column_type = "JsonBinary")]
    pub holidays: Holidays,
    pub enrollment_opens_at: Option<DateTimeUtc>,
    pub enrollment_closes_at: Option<DateTimeUtc>,
    /// Until then a withdrawal leaves no record.
    pub drop_deadline: Option<DateTimeUtc>,
    /// Until then a withdrawal is recorded as `W`; after it students cannot withdraw.
    pub withdraw_deadline: Option<DateTimeUtc>,
    pub admission: Admission,
    pub lottery_minutes: Option<i32>,
    /// The lottery's 32 random bytes, hex: made when the lottery is set, shown once it is over.
    pub lottery_seed: Option<String>,
    /// The hex SHA-256 of the seed, published from the moment the lottery is set.
    pub lottery_seed_hash: Option<String>,
    /// When the term's last lottery window had ended and its last draw was done: from then on
    /// the seed is shown.
    pub lottery_drawn_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrganizationId",
        to = "super::organization::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Organization,
    #[sea_orm(has_many = "super::section::Entity")]
    Section,
}

impl Related<super::section::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Section.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

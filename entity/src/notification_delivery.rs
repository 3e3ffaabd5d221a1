//! `SeaORM` Entity: the outbox, one row per notification and channel beyond the inbox
//! (a webhook, say), drained at least once by the delivery worker.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub notification_id: Uuid,
    /// `webhook` (see `delivery::Channel`).
    pub channel: String,
    /// Attempts started so far.
    pub attempts: i32,
    /// When the row is next due: the first attempt, a retry after backoff, or the end of the
    /// lease of a worker that claimed it (a worker that died mid-attempt leaves it due again).
    pub next_attempt_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
    /// Set when the worker gave up, with `last_error`.
    pub failed_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::notification::Entity",
        from = "Column::NotificationId",
        to = "super::notification::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Notification,
}

impl Related<super::notification::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Notification.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

//! Durable notifications (docs/design.md#notifications): the inbox, a row per recipient written
//! in the transaction of the change that causes it, and the outbox, a row per channel to deliver
//! it on beyond the inbox, drained by a worker in every `roster serve`.

use sea_orm_migration::{prelude::*, schema::*};

use super::m20261123_000002_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(uuid(Notifications::Id).primary_key())
                    .col(uuid(Notifications::UserId))
                    .col(string_len(Notifications::Kind, 32))
                    .col(text(Notifications::Title))
                    .col(text(Notifications::Body))
                    .col(uuid_null(Notifications::EnrollmentId))
                    .col(timestamp_with_time_zone(Notifications::CreatedAt))
                    .col(timestamp_with_time_zone_null(Notifications::ReadAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_notifications_user")
                            .from(Notifications::Table, Notifications::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NotificationDeliveries::Table)
                    .col(uuid(NotificationDeliveries::Id).primary_key())
                    .col(uuid(NotificationDeliveries::NotificationId))
                    .col(string_len(NotificationDeliveries::Channel, 16))
                    .col(integer(NotificationDeliveries::Attempts).default(0))
                    .col(timestamp_with_time_zone(
                        NotificationDeliveries::NextAttemptAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        NotificationDeliveries::DeliveredAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        NotificationDeliveries::FailedAt,
                    ))
                    .col(text_null(NotificationDeliveries::LastError))
                    .col(timestamp_with_time_zone(NotificationDeliveries::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_notification_deliveries_notification")
                            .from(
                                NotificationDeliveries::Table,
                                NotificationDeliveries::NotificationId,
                            )
                            .to(Notifications::Table, Notifications::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The browsers and phones a user registered for Web Push.
        manager
            .create_table(
                Table::create()
                    .table(PushSubscriptions::Table)
                    .col(uuid(PushSubscriptions::Id).primary_key())
                    .col(uuid(PushSubscriptions::UserId))
                    .col(text(PushSubscriptions::Endpoint).unique_key())
                    .col(text(PushSubscriptions::P256dh))
                    .col(text(PushSubscriptions::Auth))
                    .col(timestamp_with_time_zone(PushSubscriptions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_push_subscriptions_user")
                            .from(PushSubscriptions::Table, PushSubscriptions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX push_subscriptions_user_idx ON push_subscriptions (user_id)",
            )
            .await?;
        // When the holder was told that a certification expires soon: once per certification.
        manager
            .alter_table(
                Table::alter()
                    .table(Certifications::Table)
                    .add_column(timestamp_with_time_zone_null(
                        Certifications::ExpiryNotifiedAt,
                    ))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // The inbox, newest first per user; the unread count.
        db.execute_unprepared(
            "CREATE INDEX notifications_user_idx ON notifications (user_id, created_at, id)",
        )
        .await?;
        // The worker's queue: what is still to deliver, by when it is due.
        db.execute_unprepared(
            "CREATE INDEX notification_deliveries_due_idx ON notification_deliveries \
             (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE certifications DROP COLUMN expiry_notified_at")
            .await?;
        manager
            .drop_table(Table::drop().table(PushSubscriptions::Table).to_owned())
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(NotificationDeliveries::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Notifications::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    UserId,
    Kind,
    Title,
    Body,
    EnrollmentId,
    CreatedAt,
    ReadAt,
}

#[derive(DeriveIden)]
enum PushSubscriptions {
    Table,
    Id,
    UserId,
    Endpoint,
    P256dh,
    Auth,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Certifications {
    Table,
    ExpiryNotifiedAt,
}

#[derive(DeriveIden)]
enum NotificationDeliveries {
    Table,
    Id,
    NotificationId,
    Channel,
    Attempts,
    NextAttemptAt,
    DeliveredAt,
    FailedAt,
    LastError,
    CreatedAt,
}

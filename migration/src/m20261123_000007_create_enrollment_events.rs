use sea_orm_migration::{prelude::*, schema::*};

use super::m20261123_000002_create_users::Users;
use super::m20261123_000006_create_enrollments::Enrollments;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EnrollmentEvents::Table)
                    .col(big_pk_auto(EnrollmentEvents::Id))
                    .col(uuid(EnrollmentEvents::EnrollmentId))
                    .col(string_len_null(EnrollmentEvents::FromStatus, 16))
                    .col(string_len(EnrollmentEvents::ToStatus, 16))
                    .col(uuid_null(EnrollmentEvents::ActorId))
                    .col(text_null(EnrollmentEvents::Reason))
                    .col(json_binary_null(EnrollmentEvents::Details))
                    .col(timestamp_with_time_zone(EnrollmentEvents::At))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_enrollment_events_enrollment")
                            .from(EnrollmentEvents::Table, EnrollmentEvents::EnrollmentId)
                            .to(Enrollments::Table, Enrollments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_enrollment_events_actor")
                            .from(EnrollmentEvents::Table, EnrollmentEvents::ActorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("enrollment_events_enrollment_idx")
                    .table(EnrollmentEvents::Table)
                    .col(EnrollmentEvents::EnrollmentId)
                    .col(EnrollmentEvents::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EnrollmentEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum EnrollmentEvents {
    Table,
    Id,
    EnrollmentId,
    FromStatus,
    ToStatus,
    ActorId,
    Reason,
    Details,
    At,
}

//! Registration appointments (docs/design.md#registration-opening): a student's own opening
//! time within a term, at most one per student and term. A new table only: replicas of the
//! previous release never read it.

use sea_orm_migration::{prelude::*, schema::*};

use super::{m20261123_000002_create_users::Users, m20261207_000019_create_terms::Terms};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Appointments::Table)
                    .col(uuid(Appointments::TermId))
                    .col(uuid(Appointments::UserId))
                    .col(timestamp_with_time_zone(Appointments::OpensAt))
                    .col(timestamp_with_time_zone(Appointments::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Appointments::TermId)
                            .col(Appointments::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_appointments_term")
                            .from(Appointments::Table, Appointments::TermId)
                            .to(Terms::Table, Terms::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_appointments_user")
                            .from(Appointments::Table, Appointments::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("CREATE INDEX appointments_user_idx ON appointments (user_id)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Appointments::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Appointments {
    Table,
    TermId,
    UserId,
    OpensAt,
    CreatedAt,
}

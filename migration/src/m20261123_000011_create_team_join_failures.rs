use sea_orm_migration::{prelude::*, schema::*};

use super::m20261123_000002_create_users::Users;
use super::m20261123_000009_create_teams::Teams;

/// Wrong pass keys, per team and user, so guessing is throttled across replicas and restarts.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TeamJoinFailures::Table)
                    .col(big_pk_auto(TeamJoinFailures::Id))
                    .col(uuid(TeamJoinFailures::TeamId))
                    .col(uuid(TeamJoinFailures::UserId))
                    .col(timestamp_with_time_zone(TeamJoinFailures::FailedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_team_join_failures_team")
                            .from(TeamJoinFailures::Table, TeamJoinFailures::TeamId)
                            .to(Teams::Table, Teams::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_team_join_failures_user")
                            .from(TeamJoinFailures::Table, TeamJoinFailures::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("team_join_failures_lookup_idx")
                    .table(TeamJoinFailures::Table)
                    .col(TeamJoinFailures::TeamId)
                    .col(TeamJoinFailures::UserId)
                    .col(TeamJoinFailures::FailedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TeamJoinFailures::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum TeamJoinFailures {
    Table,
    Id,
    TeamId,
    UserId,
    FailedAt,
}

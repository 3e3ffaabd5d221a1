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
                    .table(Teams::Table)
                    .col(pk_uuid(Teams::Id))
                    .col(string_len(Teams::Name, 100))
                    .col(string_len(Teams::PassKeyHash, 255))
                    .col(uuid(Teams::CoachId))
                    .col(timestamp_with_time_zone(Teams::CreatedAt))
                    .col(timestamp_with_time_zone(Teams::UpdatedAt))
                    .check((
                        "teams_name_check",
                        Expr::cust("length(name) BETWEEN 1 AND 100"),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_teams_coach")
                            .from(Teams::Table, Teams::CoachId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // "Chess Club" and "chess club" are the same team (an expression index both databases have).
        db.execute_unprepared("CREATE UNIQUE INDEX teams_name_lower_uq ON teams (lower(name))")
            .await?;
        db.execute_unprepared("CREATE INDEX teams_coach_idx ON teams (coach_id)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Teams::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Teams {
    Table,
    Id,
    Name,
    PassKeyHash,
    CoachId,
    CreatedAt,
    UpdatedAt,
}

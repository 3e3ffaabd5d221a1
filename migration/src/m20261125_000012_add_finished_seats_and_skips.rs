//! Finished enrollments keep their seat (docs/design.md#invariants, 1): sections count their
//! COMPLETED and FAILED enrollments in `finished_count`, filled here from the rows of an existing
//! database. Enrollments record why promotion last passed them over (`skip_reason`,
//! `skipped_at`; invariant 3).

use sea_orm_migration::{prelude::*, schema::*};

use super::{
    m20261123_000005_create_sections::Sections, m20261123_000006_create_enrollments::Enrollments,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sections::Table)
                    .add_column(integer(Finished::FinishedCount).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE sections SET finished_count = (SELECT COUNT(*) FROM enrollments e \
                 WHERE e.section_id = sections.id AND e.status IN ('COMPLETED', 'FAILED'))",
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Enrollments::Table)
                    .add_column(string_len_null(Skips::SkipReason, 500))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Enrollments::Table)
                    .add_column(timestamp_with_time_zone_null(Skips::SkippedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Plain SQL that both databases take: SeaQuery quotes the column of SQLite's
        // `DROP COLUMN` twice.
        let db = manager.get_connection();
        for statement in [
            "ALTER TABLE enrollments DROP COLUMN skipped_at",
            "ALTER TABLE enrollments DROP COLUMN skip_reason",
            "ALTER TABLE sections DROP COLUMN finished_count",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Finished {
    FinishedCount,
}

#[derive(DeriveIden)]
enum Skips {
    SkipReason,
    SkippedAt,
}

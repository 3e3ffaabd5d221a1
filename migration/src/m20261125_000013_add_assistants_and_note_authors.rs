//! The staff side (docs/design.md#who-may-do-what): a section's teaching assistant
//! (`sections.assistant_id`, seed 004's `assistantId`), and who last wrote an enrollment's
//! internal notes, and when.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DatabaseBackend};

use super::m20261123_000006_create_enrollments::Enrollments;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // A reference to the user on PostgreSQL. SQLite cannot drop a column that a foreign key
        // names, so there the column stays plain and `down` can remove it; the service checks
        // that the assistant exists.
        db.execute_unprepared(match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                "ALTER TABLE sections ADD COLUMN assistant_id uuid NULL \
                 REFERENCES users (id) ON DELETE SET NULL"
            }
            _ => "ALTER TABLE sections ADD COLUMN assistant_id uuid_text NULL",
        })
        .await?;
        db.execute_unprepared("CREATE INDEX sections_assistant_idx ON sections (assistant_id)")
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Enrollments::Table)
                    .add_column(timestamp_with_time_zone_null(Notes::NotesUpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Enrollments::Table)
                    .add_column(uuid_null(Notes::NotesUpdatedBy))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "ALTER TABLE enrollments DROP COLUMN notes_updated_by",
            "ALTER TABLE enrollments DROP COLUMN notes_updated_at",
            "DROP INDEX sections_assistant_idx",
            "ALTER TABLE sections DROP COLUMN assistant_id",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Notes {
    NotesUpdatedAt,
    NotesUpdatedBy,
}

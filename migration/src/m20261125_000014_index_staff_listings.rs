//! The staff listings' orders (docs/design.md#who-may-do-what): enrollments and certifications
//! are listed newest first by keyset, page after page (the CSV exports walk every page), and the
//! audit trail is filtered by who acted. Without these a page of a large listing sorts the
//! whole table again.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [(&str, &str); 3] = [
    ("enrollments_enrolled_idx", "enrollments (enrolled_at, id)"),
    (
        "certifications_issued_idx",
        "certifications (issued_at, id)",
    ),
    (
        "enrollment_events_actor_idx",
        "enrollment_events (actor_id)",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, on) in INDEXES {
            db.execute_unprepared(&format!("CREATE INDEX {name} ON {on}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        }
        Ok(())
    }
}

//! Lottery admission (docs/design.md#registration-opening): the REQUESTED status, which joins
//! the one-active-enrollment-per-course index; on a request, the end of its lottery window (its
//! draw) and its rank (the hex HMAC the draw sorts by); on a term, the seed, its hash, and when
//! the lottery was over. Expand only: nullable columns, a wider status check, new indexes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use super::m20261125_000016_add_offer_mode::{STATUSES, set_statuses};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// On SQLite too: the status check is rewritten in the schema, all or nothing.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let time = match manager.get_database_backend() {
            DbBackend::Sqlite => "timestamp_with_timezone_text",
            _ => "TIMESTAMP WITH TIME ZONE",
        };
        for statement in [
            "ALTER TABLE terms ADD COLUMN lottery_seed VARCHAR(64) NULL".to_owned(),
            "ALTER TABLE terms ADD COLUMN lottery_seed_hash VARCHAR(64) NULL".to_owned(),
            format!("ALTER TABLE terms ADD COLUMN lottery_drawn_at {time} NULL"),
            format!("ALTER TABLE enrollments ADD COLUMN lottery_draw_at {time} NULL"),
            "ALTER TABLE enrollments ADD COLUMN lottery_rank VARCHAR(64) NULL".to_owned(),
        ] {
            db.execute_unprepared(&statement).await?;
        }
        set_statuses(
            db,
            &format!("{STATUSES}, 'OFFERED'"),
            &format!("{STATUSES}, 'OFFERED', 'REQUESTED'"),
        )
        .await?;
        for statement in [
            "DROP INDEX enrollments_active_user_course_uq",
            "CREATE UNIQUE INDEX enrollments_active_user_course_uq ON enrollments \
             (user_id, course_id) \
             WHERE status IN ('PENDING', 'REGISTERED', 'WAITLISTED', 'OFFERED', 'REQUESTED')",
            // The draw takes the requests of one window end in rank order.
            "CREATE INDEX enrollments_lottery_idx ON enrollments (lottery_draw_at, lottery_rank) \
             WHERE status = 'REQUESTED'",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "DROP INDEX enrollments_lottery_idx",
            "DROP INDEX enrollments_active_user_course_uq",
            "CREATE UNIQUE INDEX enrollments_active_user_course_uq ON enrollments \
             (user_id, course_id) WHERE status IN ('PENDING', 'REGISTERED', 'WAITLISTED', 'OFFERED')",
        ] {
            db.execute_unprepared(statement).await?;
        }
        set_statuses(
            db,
            &format!("{STATUSES}, 'OFFERED', 'REQUESTED'"),
            &format!("{STATUSES}, 'OFFERED'"),
        )
        .await?;
        for statement in [
            "ALTER TABLE enrollments DROP COLUMN lottery_rank",
            "ALTER TABLE enrollments DROP COLUMN lottery_draw_at",
            "ALTER TABLE terms DROP COLUMN lottery_drawn_at",
            "ALTER TABLE terms DROP COLUMN lottery_seed_hash",
            "ALTER TABLE terms DROP COLUMN lottery_seed",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}

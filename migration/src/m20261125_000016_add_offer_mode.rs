//! Offer mode (docs/design.md#offer-mode): a section's `promotion_mode` and `offer_hours`, the
//! `offered_count` of seats held by open offers, and on enrollments the OFFERED status with its
//! deadline (`offer_expires_at`) and the time of its reminder (`offer_remind_at`). OFFERED is an
//! active status: it joins the one-active-enrollment-per-course index.

use sea_orm_migration::sea_orm::{self, ConnectionTrait, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

use super::m20261123_000006_create_enrollments::Enrollments;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const STATUSES: &str = "'PENDING', 'REGISTERED', 'WAITLISTED', 'COMPLETED', 'FAILED', \
                        'WITHDRAWN', 'CANCELLED'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// On SQLite too: the status check is rewritten in the schema, which must happen on one
    /// connection, all or nothing.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "ALTER TABLE sections ADD COLUMN promotion_mode VARCHAR(16) NOT NULL \
             DEFAULT 'AUTOMATIC' CHECK (promotion_mode IN ('AUTOMATIC', 'OFFER'))",
            "ALTER TABLE sections ADD COLUMN offer_hours INTEGER NOT NULL DEFAULT 24 \
             CHECK (offer_hours BETWEEN 1 AND 168)",
            "ALTER TABLE sections ADD COLUMN offered_count INTEGER NOT NULL DEFAULT 0 \
             CHECK (offered_count >= 0)",
        ] {
            db.execute_unprepared(statement).await?;
        }
        for column in [Offers::OfferExpiresAt, Offers::OfferRemindAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Enrollments::Table)
                        .add_column(timestamp_with_time_zone_null(column))
                        .to_owned(),
                )
                .await?;
        }
        set_statuses(db, STATUSES, &format!("{STATUSES}, 'OFFERED'")).await?;
        for statement in [
            "DROP INDEX enrollments_active_user_course_uq",
            "CREATE UNIQUE INDEX enrollments_active_user_course_uq ON enrollments \
             (user_id, course_id) WHERE status IN ('PENDING', 'REGISTERED', 'WAITLISTED', 'OFFERED')",
            // The timer's two sweeps: offers past their deadline, reminders due.
            "CREATE INDEX enrollments_offer_expiry_idx ON enrollments (offer_expires_at) \
             WHERE status = 'OFFERED'",
            "CREATE INDEX enrollments_offer_remind_idx ON enrollments (offer_remind_at) \
             WHERE offer_remind_at IS NOT NULL",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "DROP INDEX enrollments_offer_remind_idx",
            "DROP INDEX enrollments_offer_expiry_idx",
            "DROP INDEX enrollments_active_user_course_uq",
            "CREATE UNIQUE INDEX enrollments_active_user_course_uq ON enrollments \
             (user_id, course_id) WHERE status IN ('PENDING', 'REGISTERED', 'WAITLISTED')",
        ] {
            db.execute_unprepared(statement).await?;
        }
        set_statuses(db, &format!("{STATUSES}, 'OFFERED'"), STATUSES).await?;
        for statement in [
            "ALTER TABLE enrollments DROP COLUMN offer_remind_at",
            "ALTER TABLE enrollments DROP COLUMN offer_expires_at",
            "ALTER TABLE sections DROP COLUMN offered_count",
            "ALTER TABLE sections DROP COLUMN offer_hours",
            "ALTER TABLE sections DROP COLUMN promotion_mode",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}

/// Replaces the list of statuses `enrollments_status_check` allows. PostgreSQL drops and adds
/// the constraint. SQLite cannot alter a constraint; its documented way to change one that
/// existing rows satisfy either way is to edit the table's text in `sqlite_schema` and bump the
/// schema version, in one transaction (<https://sqlite.org/lang_altertable.html>, section 7).
pub(crate) async fn set_statuses(
    db: &impl ConnectionTrait,
    from: &str,
    to: &str,
) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        return db
            .execute_unprepared(&format!(
                "ALTER TABLE enrollments DROP CONSTRAINT enrollments_status_check, \
                 ADD CONSTRAINT enrollments_status_check CHECK (status IN ({to}))"
            ))
            .await
            .map(|_| ());
    }
    let version: i64 = db
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA schema_version",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no schema version".into()))?
        .try_get_by_index(0)?;
    db.execute_unprepared("PRAGMA writable_schema = ON").await?;
    let changed = db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "UPDATE sqlite_schema SET sql = replace(sql, $1, $2) \
             WHERE type = 'table' AND name = 'enrollments' AND instr(sql, $1) > 0",
            [format!("IN ({from}))").into(), format!("IN ({to}))").into()],
        ))
        .await?
        .rows_affected();
    db.execute_unprepared(&format!("PRAGMA schema_version = {}", version + 1))
        .await?;
    db.execute_unprepared("PRAGMA writable_schema = OFF")
        .await?;
    if changed != 1 {
        return Err(DbErr::Migration(
            "enrollments_status_check is not as migration 6 created it".into(),
        ));
    }
    // Fails if the edited text does not parse.
    db.execute_unprepared("PRAGMA quick_check").await?;
    Ok(())
}

#[derive(DeriveIden)]
enum Offers {
    OfferExpiresAt,
    OfferRemindAt,
}

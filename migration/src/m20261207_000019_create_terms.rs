//! Time (docs/design.md#time): terms with their dates, time zone, holidays, enrollment window and
//! deadlines; an organization's time zone; a section's term, dates and window overrides, and when
//! its waiters were last told that its window closed; an enrollment's transcript record after a
//! withdrawal; a user's calendar feed.
//!
//! Every change is additive: new tables, new nullable columns or columns with a default, new
//! indexes. Replicas of the previous release keep working on the new schema.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

use super::m20261123_000001_create_organizations::Organizations;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Terms::Table)
                    .col(pk_uuid(Terms::Id))
                    .col(uuid(Terms::OrganizationId))
                    .col(string_len(Terms::Name, 100))
                    .col(string_len(Terms::Code, 50))
                    .col(date(Terms::StartsOn))
                    .col(date(Terms::EndsOn))
                    .col(string_len(Terms::TimeZone, 64))
                    .col(json_binary(Terms::Holidays))
                    .col(timestamp_with_time_zone_null(Terms::EnrollmentOpensAt))
                    .col(timestamp_with_time_zone_null(Terms::EnrollmentClosesAt))
                    .col(timestamp_with_time_zone_null(Terms::DropDeadline))
                    .col(timestamp_with_time_zone_null(Terms::WithdrawDeadline))
                    .col(string_len(Terms::Admission, 16).default("FIRST_COME"))
                    .col(integer_null(Terms::LotteryMinutes))
                    .col(timestamp_with_time_zone(Terms::CreatedAt))
                    .col(timestamp_with_time_zone(Terms::UpdatedAt))
                    .check(("terms_dates_check", Expr::cust("ends_on >= starts_on")))
                    .check((
                        "terms_admission_check",
                        Expr::cust("admission IN ('FIRST_COME', 'LOTTERY')"),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_terms_organization")
                            .from(Terms::Table, Terms::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // The column types SeaORM's schema helpers write: SQLite decodes values by them.
        let (uuid, date, time) = match manager.get_database_backend() {
            DbBackend::Sqlite => ("uuid_text", "date_text", "timestamp_with_timezone_text"),
            _ => ("UUID", "DATE", "TIMESTAMP WITH TIME ZONE"),
        };
        for statement in [
            "CREATE UNIQUE INDEX terms_organization_code_uq ON terms (organization_id, code)"
                .to_owned(),
            "CREATE INDEX terms_starts_on_idx ON terms (starts_on)".to_owned(),
            "ALTER TABLE organizations ADD COLUMN time_zone VARCHAR(64) NOT NULL DEFAULT 'UTC'"
                .to_owned(),
            format!(
                "ALTER TABLE sections ADD COLUMN term_id {uuid} NULL \
                 REFERENCES terms (id) ON DELETE SET NULL"
            ),
            format!("ALTER TABLE sections ADD COLUMN starts_on {date} NULL"),
            format!("ALTER TABLE sections ADD COLUMN ends_on {date} NULL"),
            format!("ALTER TABLE sections ADD COLUMN enrollment_opens_at {time} NULL"),
            format!("ALTER TABLE sections ADD COLUMN enrollment_closes_at {time} NULL"),
            format!("ALTER TABLE sections ADD COLUMN close_noticed_at {time} NULL"),
            "CREATE INDEX sections_term_idx ON sections (term_id) WHERE term_id IS NOT NULL"
                .to_owned(),
            "ALTER TABLE enrollments ADD COLUMN record VARCHAR(8) NULL \
             CHECK (record IN ('NONE', 'W'))"
                .to_owned(),
            // A user's calendar feed: the random nonce its token is derived from, and the
            // token's SHA-256, by which a feed request finds its user.
            format!(
                "CREATE TABLE calendar_feeds (user_id {uuid} NOT NULL PRIMARY KEY \
                 REFERENCES users (id) ON DELETE CASCADE, nonce VARCHAR(64) NOT NULL, \
                 token_hash VARCHAR(64) NOT NULL UNIQUE, created_at {time} NOT NULL)"
            ),
        ] {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "DROP TABLE calendar_feeds",
            "ALTER TABLE enrollments DROP COLUMN record",
            "DROP INDEX sections_term_idx",
            "ALTER TABLE sections DROP COLUMN close_noticed_at",
            "ALTER TABLE sections DROP COLUMN enrollment_closes_at",
            "ALTER TABLE sections DROP COLUMN enrollment_opens_at",
            "ALTER TABLE sections DROP COLUMN ends_on",
            "ALTER TABLE sections DROP COLUMN starts_on",
            "ALTER TABLE sections DROP COLUMN term_id",
            "ALTER TABLE organizations DROP COLUMN time_zone",
        ] {
            db.execute_unprepared(statement).await?;
        }
        manager
            .drop_table(Table::drop().table(Terms::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Terms {
    Table,
    Id,
    OrganizationId,
    Name,
    Code,
    StartsOn,
    EndsOn,
    TimeZone,
    Holidays,
    EnrollmentOpensAt,
    EnrollmentClosesAt,
    DropDeadline,
    WithdrawDeadline,
    Admission,
    LotteryMinutes,
    CreatedAt,
    UpdatedAt,
}

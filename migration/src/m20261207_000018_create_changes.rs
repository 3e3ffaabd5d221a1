//! The change feed (docs/architecture.md#the-change-feed): on PostgreSQL every committed change
//! that subscribers hear of is a row here, written in the transaction that makes the change, and
//! every replica reads the rows committed since its last read. `xid` is the writing
//! transaction's id, which is what tells a reader whether the row had committed when it last
//! read: ids are handed out before commit, so "after the last id read" would miss a row whose
//! transaction committed after a higher id became visible. Rows are kept for a quarter of an
//! hour (`store::feed::Prune`).
//!
//! SQLite serves one process, which publishes its changes in memory after each commit: the
//! table exists there too, so that both schemas are alike, and stays empty.

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements: &[&str] = match manager.get_database_backend() {
            DatabaseBackend::Postgres => &[
                "CREATE TABLE changes (\
                 id BIGSERIAL PRIMARY KEY, \
                 xid XID8 NOT NULL DEFAULT pg_current_xact_id(), \
                 at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), \
                 notice TEXT NOT NULL)",
                "CREATE INDEX changes_xid_idx ON changes (xid)",
                "CREATE INDEX changes_at_idx ON changes (at)",
            ],
            _ => &["CREATE TABLE changes (\
                 id INTEGER PRIMARY KEY AUTOINCREMENT, \
                 xid INTEGER, \
                 at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, \
                 notice TEXT NOT NULL)"],
        };
        for sql in statements {
            manager.get_connection().execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE changes")
            .await?;
        Ok(())
    }
}

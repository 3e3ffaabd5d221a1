//! Opening the database and starting write transactions the same way on both backends.

use std::{str::FromStr, time::Duration};

use sea_orm::{
    ConnectOptions, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};

use crate::config::DbConfig;

/// How long a SQLite writer waits for the write lock before giving up. Writers hold it for
/// milliseconds, so reaching this means the machine is overloaded, not that two writers raced.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens a pool for `config`, creating the SQLite file if it is missing.
///
/// SQLite runs in WAL mode so readers never wait for the writer, with foreign keys on and a busy
/// timeout so that a writer waits for the lock instead of failing with `database is locked`.
///
/// # Errors
/// The database cannot be reached or opened.
pub async fn connect(config: &DbConfig) -> Result<DatabaseConnection, DbErr> {
    let url = &config.database_url;
    let mut options = ConnectOptions::new(url.clone());
    let is_sqlite = url.starts_with("sqlite:");
    options
        .max_connections(
            config
                .db_max_connections
                .unwrap_or(if is_sqlite { 8 } else { 16 }),
        )
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    if is_sqlite {
        // Validate the URL here so a typo reads as a configuration error, not a panic later.
        SqliteConnectOptions::from_str(url).map_err(|e| DbErr::Custom(e.to_string()))?;
        options.map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
        });
    }
    Database::connect(options).await
}

/// Begins a transaction that will write.
///
/// On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken at the start, so two transactions
/// that both read then write cannot deadlock on the upgrade (the case SQLite answers with
/// `database is locked` regardless of the busy timeout). On PostgreSQL it is a plain `BEGIN`;
/// row locks and conditional updates do the rest.
///
/// # Errors
/// The pool has no connection to give or the database refuses to begin.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let mut options = TransactionOptions::default();
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        options.sqlite_transaction_mode = Some(SqliteTransactionMode::Immediate);
    }
    db.begin_with_options(options).await
}

/// The current time, truncated to whole microseconds: both databases then store exactly the
/// value the code holds, and timestamps compare equal after a round trip.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

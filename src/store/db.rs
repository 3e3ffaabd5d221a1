//! Opening the database the same way on both backends; writes go through
//! [`crate::store::Store::write`].

use std::{collections::HashSet, str::FromStr, time::Duration};

use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DbErr,
    sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};

use migration::{Migrator, MigratorTrait};

use crate::config::DbConfig;

/// How long a SQLite writer waits for the write lock before giving up. Writers hold it for
/// milliseconds, so reaching this means the machine is overloaded, not that two writers raced.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a SQLite file its connections read through a memory map (1 GiB) rather than
/// copy, page by page, into each connection's own small page cache: the operating system's
/// cache, shared by every connection. Measured on the draw of 100,000 requests, where reading
/// pages back from the kernel was the largest cost (BENCHMARKS.md).
const SQLITE_MMAP_SIZE: u64 = 1 << 30;

/// How long a request waits for a pooled connection by default. A database that does not answer
/// within it is reported as `UNAVAILABLE`, well within the request timeout.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a pooled connection may sit idle before it is pinged on its way out of the pool.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Opens a pool for `config`, creating the SQLite file if it is missing.
///
/// SQLite runs in WAL mode so readers never wait for the writer, with foreign keys on and a busy
/// timeout so that a writer waits for the lock instead of failing with `database is locked`.
///
/// # Errors
/// The database cannot be reached or opened.
/// The pool's size for `config`: `ROSTER_DB_MAX_CONNECTIONS`, else 16 on PostgreSQL and 8 on
/// SQLite.
pub fn pool_size(config: &DbConfig) -> usize {
    let is_sqlite = config.database_url.starts_with("sqlite:");
    config
        .db_max_connections
        .unwrap_or(if is_sqlite { 8 } else { 16 }) as usize
}

pub async fn connect(config: &DbConfig) -> Result<DatabaseConnection, DbErr> {
    let url = &config.database_url;
    let mut options = ConnectOptions::new(url.clone());
    let is_sqlite = url.starts_with("sqlite:");
    options
        .max_connections(u32::try_from(pool_size(config)).unwrap_or(u32::MAX))
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(config.db_acquire_timeout.unwrap_or(DEFAULT_ACQUIRE_TIMEOUT))
        // A connection is pinged before it is handed out only when it has been idle for a
        // while: pinging every one cost each request a round trip per statement batch (an
        // enrollment acquires twice), and a connection used a moment ago is alive or fails
        // its query, which reports `UNAVAILABLE` as a failed ping would.
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false);
    if !is_sqlite {
        // PostgreSQL's default cost of a random page read (4.0) is a spinning disk's. Roster's
        // working set lives in memory, where an index probe costs about what a sequential
        // page does; with the default, the planner scanned all 6,000 sections of the scale-1
        // data set to find the 150 of one discovery page (2.4 ms against 0.8 ms through the
        // `(course_id, is_active)` index).
        //
        // Every statement is prepared once per connection; PostgreSQL re-plans a prepared
        // statement at each execution while it judges a plan for its values cheaper than the
        // generic one, and it always did for discovery's page (a `LIMIT` parameter and a list
        // of course ids): 0.35 ms of planning per page, more than executing it. Roster's
        // statements are fixed shapes over indexed keys, where the generic plan is the plan,
        // and one plan per statement keeps latency steady. Set on Roster's own sessions only.
        options.map_sqlx_postgres_opts(|opts| {
            opts.options([
                ("random_page_cost", "1.1"),
                ("plan_cache_mode", "force_generic_plan"),
            ])
        });
    }
    if is_sqlite {
        // Validate the URL here so a typo reads as a configuration error, not a panic later.
        SqliteConnectOptions::from_str(url).map_err(|e| DbErr::Custom(e.to_string()))?;
        options.map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .pragma("mmap_size", SQLITE_MMAP_SIZE.to_string())
        });
    }
    Database::connect(options).await
}

/// Applies the pending migrations and says how many in one line (the migrator's own lines, one
/// per step, are at INFO, under the default WARN for libraries).
///
/// A database that a newer release has already migrated is served as it is, with a warning:
/// during a rolling upgrade the old replicas keep running, and restart, on the new schema,
/// which the migration policy (docs/migrations.md) keeps readable by the previous release.
///
/// # Errors
/// A migration failed (the ones before it stay applied), or the database holds migrations
/// this release does not know while it also lacks some that it does.
pub async fn migrate(db: &DatabaseConnection) -> Result<usize, DbErr> {
    let applied: HashSet<String> = Migrator::get_migration_models(db)
        .await?
        .into_iter()
        .map(|model| model.version)
        .collect();
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect();
    let pending = known.iter().filter(|m| !applied.contains(*m)).count();
    let newer = applied
        .iter()
        .filter(|version| !known.contains(version))
        .count();
    if newer > 0 {
        if pending > 0 {
            return Err(DbErr::Custom(format!(
                "the database holds {newer} migrations this release does not know and lacks \
                 {pending} that it does: it was migrated by another line of releases"
            )));
        }
        tracing::warn!(
            newer,
            "the database was migrated by a newer release; serving on its schema"
        );
        return Ok(0);
    }
    Migrator::up(db, None).await?;
    if pending > 0 {
        tracing::info!("applied {pending} migrations");
    }
    Ok(pending)
}

/// `url` with its password, if any, replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://roster:s3cret@db:5432/roster"),
            "postgres://roster:***@db:5432/roster"
        );
        assert_eq!(redact("sqlite://roster.db"), "sqlite://roster.db");
    }
}

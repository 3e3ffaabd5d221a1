//! Whole answers to anonymous queries, served again for as long as the database provably has
//! not changed since they were computed.
//!
//! An anonymous query's answer is a function of the database alone (a resolver whose result
//! depends on anything else, such as the clock, marks its answer as not reusable). So an answer
//! computed while the database was in state S is exact for any later request that finds the
//! database still in state S. Each lookup reads a *version* of the database in one cheap step,
//! before anything else:
//!
//! - PostgreSQL: `pg_current_snapshot()`. An answer stored with snapshot A is served under
//!   snapshot B only when no transaction completed in between: B has A's `xmax` and A's
//!   in-progress transactions are all still in progress in B. Any write anywhere in the cluster
//!   (another replica, a `roster` command, `psql`) ends some transaction and so invalidates;
//!   read-only transactions take no transaction id and invalidate nothing.
//! - SQLite: `PRAGMA data_version` on a connection of its own that never writes. Its value
//!   changes whenever any other connection, in this process or another, commits.
//!
//! The version is read before the answer is computed, and the answer is stored under that
//! version. Whatever commits while the answer is computed moves the version, so the answer is
//! never served to a request that starts after that commit. A request concurrent with a write
//! may get the state before it, which it could have got anyway.
//!
//! Signed-in requests are never cached: what they see depends on who asks.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::body::Bytes;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement,
    sqlx::{self, Connection, sqlite::SqliteConnection},
};
use tokio::sync::{Mutex as AsyncMutex, OnceCell};

/// Answers kept at most; past this the cache starts over.
const MAX_ENTRIES: usize = 256;
/// Bytes of answers kept at most.
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// An answer larger than this is not kept.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The state of the database, as far as answers are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    /// A PostgreSQL snapshot: `xmax` and the transactions in progress.
    Snapshot { xmax: u64, in_progress: Vec<u64> },
    /// SQLite's `data_version` as seen by the cache's own connection.
    DataVersion(i64),
}

impl Version {
    /// Reads `pg_current_snapshot()`'s text form, `xmin:xmax:xip,…`.
    pub fn parse_snapshot(text: &str) -> Option<Self> {
        let mut parts = text.trim().split(':');
        let _xmin: u64 = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let list = parts.next()?;
        let mut in_progress = list
            .split(',')
            .filter(|x| !x.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<u64>, _>>()
            .ok()?;
        in_progress.sort_unstable();
        Some(Self::Snapshot { xmax, in_progress })
    }

    /// Whether nothing was committed between `earlier` and `self`.
    pub fn unchanged_since(&self, earlier: &Self) -> bool {
        match (earlier, self) {
            (
                Self::Snapshot {
                    xmax: then,
                    in_progress: running,
                },
                Self::Snapshot {
                    xmax: now,
                    in_progress: still,
                },
            ) => then == now && running.iter().all(|x| still.binary_search(x).is_ok()),
            (Self::DataVersion(then), Self::DataVersion(now)) => then == now,
            _ => false,
        }
    }
}

/// What identifies an answer: the response media type and the request as sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub media: &'static str,
    pub request: Bytes,
}

struct Entry {
    version: Version,
    body: Bytes,
}

/// How the version is read.
enum Source {
    Postgres(DatabaseConnection),
    Sqlite {
        db: DatabaseConnection,
        connection: OnceCell<Option<AsyncMutex<SqliteConnection>>>,
    },
    Off,
}

/// The cache of anonymous answers; see the module documentation.
pub struct ResponseCache {
    source: Source,
    entries: Mutex<(HashMap<Key, Arc<Entry>>, usize)>,
}

/// What a lookup found.
pub enum Lookup {
    /// The stored answer, still exact.
    Hit(Bytes),
    /// No usable answer: compute it and store it under this version.
    Miss(Version),
    /// The cache cannot work here (it is off, or the database is in memory): compute the
    /// answer and do not store it.
    Off,
    /// The database did not answer the version's read, so it would not answer the query
    /// either: the request is answered `UNAVAILABLE` at once, after one wait, not two.
    Unavailable,
}

impl ResponseCache {
    /// A cache for `db`; `enabled: false` makes every lookup [`Lookup::Off`].
    pub fn new(db: &DatabaseConnection, enabled: bool) -> Self {
        let source = match db.get_database_backend() {
            _ if !enabled => Source::Off,
            DatabaseBackend::Postgres => Source::Postgres(db.clone()),
            DatabaseBackend::Sqlite => Source::Sqlite {
                db: db.clone(),
                connection: OnceCell::new(),
            },
            _ => Source::Off,
        };
        Self {
            source,
            entries: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// Whether lookups can ever hit.
    pub fn enabled(&self) -> bool {
        !matches!(self.source, Source::Off)
    }

    /// The stored answer for `key` if the database has not changed since it was computed;
    /// otherwise the version to store a fresh answer under.
    pub async fn lookup(&self, key: &Key) -> Lookup {
        let now = match self.version().await {
            Ok(now) => now,
            Err(Unversioned::Off) => return Lookup::Off,
            Err(Unversioned::Failed) => {
                metrics::counter!("roster_response_cache_total", "outcome" => "unavailable")
                    .increment(1);
                return Lookup::Unavailable;
            }
        };
        let mut entries = self.entries.lock().expect("answer cache lock");
        match entries.0.get(key).cloned() {
            Some(entry) if now.unchanged_since(&entry.version) => {
                metrics::counter!("roster_response_cache_total", "outcome" => "hit").increment(1);
                Lookup::Hit(entry.body.clone())
            }
            Some(entry) => {
                entries.0.remove(key);
                entries.1 -= entry.body.len();
                metrics::counter!("roster_response_cache_total", "outcome" => "stale").increment(1);
                Lookup::Miss(now)
            }
            None => {
                metrics::counter!("roster_response_cache_total", "outcome" => "miss").increment(1);
                Lookup::Miss(now)
            }
        }
    }

    /// Keeps `body` as the answer to `key` computed at `version`.
    pub fn store(&self, key: Key, version: Version, body: Bytes) {
        if body.len() > MAX_ANSWER_BYTES {
            return;
        }
        let mut entries = self.entries.lock().expect("answer cache lock");
        let (map, bytes) = &mut *entries;
        if map.len() >= MAX_ENTRIES || *bytes + body.len() > MAX_BYTES {
            map.clear();
            *bytes = 0;
        }
        *bytes += body.len();
        if let Some(old) = map.insert(key, Arc::new(Entry { version, body })) {
            *bytes -= old.body.len();
        }
    }

    async fn version(&self) -> Result<Version, Unversioned> {
        match &self.source {
            Source::Off => Err(Unversioned::Off),
            Source::Postgres(db) => {
                let row = db
                    .query_one_raw(Statement::from_string(
                        DatabaseBackend::Postgres,
                        "SELECT pg_current_snapshot()::text AS v",
                    ))
                    .await
                    .map_err(|_| Unversioned::Failed)?
                    .ok_or(Unversioned::Failed)?;
                row.try_get::<String>("", "v")
                    .ok()
                    .and_then(|v| Version::parse_snapshot(&v))
                    .ok_or(Unversioned::Off)
            }
            Source::Sqlite { db, connection } => {
                let connection = connection
                    .get_or_init(|| async { own_connection(db).await.map(AsyncMutex::new) })
                    .await
                    .as_ref()
                    .ok_or(Unversioned::Off)?;
                let mut connection = connection.lock().await;
                let version: i64 = sqlx::query_scalar("PRAGMA data_version")
                    .fetch_one(&mut *connection)
                    .await
                    .map_err(|_| Unversioned::Failed)?;
                Ok(Version::DataVersion(version))
            }
        }
    }
}

/// Why no version could be read.
enum Unversioned {
    /// The cache cannot work here (off, an in-memory database): answer without it.
    Off,
    /// The database did not answer: neither would it for the query itself.
    Failed,
}

/// A connection to the pool's SQLite file that only ever reads `data_version`; `None` for an
/// in-memory database, whose other connections would not share its data.
async fn own_connection(db: &DatabaseConnection) -> Option<SqliteConnection> {
    let options = db.get_sqlite_connection_pool().connect_options();
    let file = options.get_filename().to_string_lossy().into_owned();
    if file.is_empty() || file == ":memory:" || file.contains("mode=memory") {
        return None;
    }
    match SqliteConnection::connect_with(&options).await {
        Ok(connection) => Some(connection),
        Err(e) => {
            tracing::warn!(error = %e, "the answer cache cannot open its connection; it stays off");
            None
        }
    }
}

/// Set by a resolver whose result depends on something besides the database (the clock): the
/// request's answer is then not kept.
#[derive(Clone, Debug, Default)]
pub struct Reusable(Arc<AtomicBool>);

impl Reusable {
    pub fn new() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    /// The answer depends on more than the database.
    pub fn forbid(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(text: &str) -> Version {
        Version::parse_snapshot(text).unwrap()
    }

    #[test]
    fn reads_snapshots() {
        assert_eq!(
            snapshot("100:104:102,100"),
            Version::Snapshot {
                xmax: 104,
                in_progress: vec![100, 102]
            }
        );
        assert_eq!(
            snapshot("7:7:"),
            Version::Snapshot {
                xmax: 7,
                in_progress: vec![]
            }
        );
        assert!(Version::parse_snapshot("garbage").is_none());
        assert!(Version::parse_snapshot("1:x:").is_none());
    }

    #[test]
    fn a_snapshot_is_unchanged_only_while_nothing_completes() {
        let then = snapshot("100:104:100,102");
        // The same state, and a new transaction that started but has not completed.
        assert!(snapshot("100:104:100,102").unchanged_since(&then));
        assert!(snapshot("100:104:100,102,104").unchanged_since(&then));
        // A transaction that was running completed (committed or not).
        assert!(!snapshot("102:104:102").unchanged_since(&then));
        assert!(!snapshot("100:104:100").unchanged_since(&then));
        // A newer transaction completed.
        assert!(!snapshot("100:105:100,102").unchanged_since(&then));
        // Versions of different databases never match.
        assert!(!Version::DataVersion(3).unchanged_since(&then));
        assert!(Version::DataVersion(3).unchanged_since(&Version::DataVersion(3)));
        assert!(!Version::DataVersion(4).unchanged_since(&Version::DataVersion(3)));
    }
}

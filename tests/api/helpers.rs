//! Test harness: every test gets the real application against its own fresh database, on SQLite
//! and on PostgreSQL, and typed requests for the operations tests repeat.
//!
//! PostgreSQL comes from `ROSTER_TEST_DATABASE_URL` (a server URL whose user may create
//! databases) or, by default, from a throwaway cluster this harness starts once per test run
//! with `initdb` and `pg_ctl` (as the `postgres` OS user when running as root). A migrated
//! template database makes each test's database a cheap `CREATE DATABASE … TEMPLATE`; the
//! database is dropped when its test ends, passed or failed. The cluster is stopped and deleted
//! by a watchdog when the test process exits. `ROSTER_TEST_BACKENDS=sqlite` opts out of
//! PostgreSQL; every skipped test then says so.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_graphql::{BatchRequest, Request, Variables};
use chrono::{DateTime, Utc};
use entity::{enrollment, enrollment_event, organization, section, types::Role, user};
use migration::{Migrator, MigratorTrait};
use roster::{
    app::{App, Settings},
    config::DbConfig,
    identity::tokens::TokenKeys,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use uuid::Uuid;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named test, an `async fn name(app: TestApp)` of the invoking module, once per
/// backend: as `name::sqlite` and `name::postgres`, each on a fresh database of its own.
///
/// The test bodies stay ordinary functions that rustfmt formats; the invocation only names them:
/// `both_backends!(withdrawing_a_seat_promotes_the_earliest_waiter, …);`.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $crate::helpers::TestApp::new($crate::helpers::Backend::Sqlite).await;
                    super::$name(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::helpers::TestApp::postgres().await {
                        super::$name(app).await;
                    }
                }
            }
        )+
    };
}
pub(crate) use both_backends;

/// The time the tests write into rows and compare with: the only place they read the clock.
pub fn now() -> DateTime<Utc> {
    roster::store::clock::Clock::default().now()
}

/// The write queue of the apps under test: every write admitted. Tests of the seat rules race
/// hundreds of writes and must not see them shed; `tests/api/load.rs` tests shedding with a
/// queue of its own, and `roster::store::admission` the default's depth.
pub const ADMIT_ALL: usize = 1 << 16;

/// The application under test, on its own database.
pub struct TestApp {
    pub backend: Backend,
    pub db: DatabaseConnection,
    pub state: Arc<App>,
    /// Statements issued on `db` since the last [`TestApp::reset_statements`].
    pub statements: Arc<AtomicUsize>,
    pub database_url: String,
    _dir: Option<tempfile::TempDir>,
    /// Last, so that it goes after the pool: drops the PostgreSQL database.
    _database: Option<PgDatabase>,
}

impl TestApp {
    /// A fresh app on `backend`. Panics with the reason when PostgreSQL cannot be had.
    ///
    /// The application under test is built here, by [`App::build`] as `roster serve` builds it.
    pub async fn new(backend: Backend) -> Self {
        let (url, dir, database) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("roster.db").display());
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let database = postgres_database().await;
                (database.url.clone(), None, Some(database))
            }
        };
        let config = DbConfig {
            database_url: url.clone(),
            db_max_connections: Some(12),
            db_acquire_timeout: None,
        };
        let statements = Arc::new(AtomicUsize::new(0));
        let counter = statements.clone();
        let state = App::build(Settings {
            on_statement: Some(Arc::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            })),
            write_queue: Some(ADMIT_ALL),
            ..Settings::new(config, TokenKeys::new(SECRET).expect("keys"))
        })
        .await
        .expect("build the app");
        let db = state.store.db().clone();
        Self {
            backend,
            db,
            state,
            statements,
            database_url: url,
            _dir: dir,
            _database: database,
        }
    }

    /// A fresh app on PostgreSQL, or `None` (said out loud) when the run opted out of it.
    pub async fn postgres() -> Option<Self> {
        if !postgres_enabled() {
            eprintln!(
                "SKIPPED on PostgreSQL: ROSTER_TEST_BACKENDS={} excludes it",
                std::env::var("ROSTER_TEST_BACKENDS").unwrap_or_default()
            );
            return None;
        }
        Some(Self::new(Backend::Postgres).await)
    }

    /// Another application on this app's database, its default settings changed by `change`.
    pub async fn state_with(&self, change: impl FnOnce(&mut Settings)) -> Arc<App> {
        let config = DbConfig {
            database_url: self.database_url.clone(),
            db_max_connections: Some(4),
            db_acquire_timeout: None,
        };
        let mut settings = Settings {
            write_queue: Some(ADMIT_ALL),
            ..Settings::new(config, TokenKeys::new(SECRET).expect("keys"))
        };
        change(&mut settings);
        App::build(settings).await.expect("build another app")
    }

    pub fn reset_statements(&self) {
        self.statements.store(0, Ordering::SeqCst);
    }

    pub fn statement_count(&self) -> usize {
        self.statements.load(Ordering::SeqCst)
    }

    /// A bearer token for `user_id`, valid for an hour.
    pub fn token(&self, user_id: Uuid) -> String {
        self.state
            .keys
            .issue(user_id, Duration::from_secs(3600))
            .expect("token")
    }

    /// Runs a GraphQL request through the same path as HTTP requests, as `token`'s holder.
    /// Returns the response as JSON (`data` and `errors`).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let header = token.map(|t| format!("Bearer {t}"));
        self.gql_with_header(header.as_deref(), query, variables)
            .await
    }

    /// Like [`TestApp::gql`] with a raw `Authorization` header value.
    pub async fn gql_with_header(
        &self,
        authorization: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Value {
        let request = Request::new(query).variables(Variables::from_json(variables));
        let response = self
            .state
            .execute(BatchRequest::Single(request), authorization)
            .await;
        serde_json::to_value(&response).expect("response is JSON")
    }

    /// Like [`TestApp::gql`], failing the test when the response has errors; returns `data`.
    pub async fn ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let response = self.gql(token, query, variables).await;
        assert!(
            response.get("errors").is_none(),
            "[{:?}] unexpected errors: {response:#}",
            self.backend
        );
        response["data"].clone()
    }

    /// Runs an operation of one root field as `token`'s holder: that field's value as `T`, or
    /// the code of the one error it was refused with.
    pub async fn request<T: DeserializeOwned>(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Result<T, String> {
        let response = self.gql(token, query, variables).await;
        if response.get("errors").is_some() {
            return Err(error_code(&response));
        }
        let field = match response["data"].as_object() {
            Some(data) if data.len() == 1 => data.values().next().cloned(),
            _ => None,
        }
        .unwrap_or_else(|| panic!("[{:?}] not one root field: {response:#}", self.backend));
        Ok(serde_json::from_value(field).unwrap_or_else(|e| {
            panic!("[{:?}] unexpected shape ({e}): {response:#}", self.backend)
        }))
    }

    /// `enroll` in `section` as `token`'s holder: the enrollment, or the error code.
    pub async fn enroll(&self, token: &str, section: Uuid) -> Result<EnrollmentView, String> {
        let query = "mutation($s: UUID!) { enroll(sectionId: $s) { id status waitlistPosition } }";
        self.request(Some(token), query, json!({ "s": section }))
            .await
    }

    /// `withdraw` from `enrollment` as `token`'s holder: the status it leaves, or the error code.
    pub async fn withdraw(&self, token: &str, enrollment: Uuid) -> Result<String, String> {
        let query = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }";
        self.request(Some(token), query, json!({ "e": enrollment }))
            .await
            .map(|answer: Status| answer.status)
    }

    /// Serves the app on a free loopback port and returns its address.
    pub async fn serve(&self) -> SocketAddr {
        serve(self.state.clone()).await
    }

    pub async fn organization(&self, name: &str) -> organization::Model {
        organization::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(name.into()),
            time_zone: Set("UTC".into()),
            created_at: Set(now()),
        }
        .insert(&self.db)
        .await
        .expect("insert organization")
    }

    pub async fn user(&self, role: Role, organization: Option<Uuid>) -> user::Model {
        let id = Uuid::now_v7();
        let at = now();
        user::ActiveModel {
            id: Set(id),
            email: Set(format!(
                "{}-{id}@test.roster.dev",
                format!("{role:?}").to_lowercase()
            )),
            name: Set(format!("{role:?} {}", &id.to_string()[..8])),
            picture: Set(Some(format!("https://img.test/{id}.png"))),
            role: Set(role),
            organization_id: Set(organization),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(&self.db)
        .await
        .expect("insert user")
    }

    /// The enrollment row `id`, as stored.
    pub async fn enrollment_row(&self, id: Uuid) -> enrollment::Model {
        enrollment::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("enrollment query")
            .unwrap_or_else(|| panic!("[{:?}] no enrollment {id}", self.backend))
    }

    /// The section row `id`, as stored.
    pub async fn section_row(&self, id: Uuid) -> section::Model {
        section::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("section query")
            .unwrap_or_else(|| panic!("[{:?}] no section {id}", self.backend))
    }

    pub async fn user_row(&self, id: Uuid) -> user::Model {
        user::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("user query")
            .unwrap_or_else(|| panic!("[{:?}] no user {id}", self.backend))
    }

    /// The audit trail of enrollment `id`, oldest first.
    pub async fn events_of(&self, id: Uuid) -> Vec<enrollment_event::Model> {
        enrollment_event::Entity::find()
            .filter(enrollment_event::Column::EnrollmentId.eq(id))
            .order_by_asc(enrollment_event::Column::Id)
            .all(&self.db)
            .await
            .expect("events query")
    }

    /// The whole audit trail, oldest first.
    pub async fn events(&self) -> Vec<enrollment_event::Model> {
        enrollment_event::Entity::find()
            .order_by_asc(enrollment_event::Column::Id)
            .all(&self.db)
            .await
            .expect("events query")
    }
}

/// Every row of `E`, in the order of `columns`.
async fn rows<E: EntityTrait>(db: &DatabaseConnection, columns: &[E::Column]) -> Vec<E::Model> {
    let mut query = E::find();
    for column in columns {
        query = query.order_by_asc(*column);
    }
    query.all(db).await.expect("rows")
}

/// POSTs `body` to `url` as JSON, as `token`'s holder when there is one; the JSON answer.
pub async fn post_json(url: &str, token: Option<&str>, body: &Value) -> Value {
    let mut request = reqwest::Client::new().post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("an answer");
    response.json().await.expect("a JSON answer")
}

/// Serves `state` on a free loopback port and returns its address.
pub async fn serve(state: Arc<App>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let app = roster::http::router(state).into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    address
}

/// An enrollment as `enroll` answers it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentView {
    pub id: Uuid,
    pub status: String,
    pub waitlist_position: Option<i64>,
}

/// `{ status }`, what a transition answers.
#[derive(Deserialize)]
struct Status {
    status: String,
}

/// Expects exactly one error and returns its `extensions.code`.
pub fn error_code(response: &Value) -> String {
    let errors = response["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("expected errors, got {response:#}"));
    assert_eq!(errors.len(), 1, "expected one error: {response:#}");
    errors[0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error without a code: {response:#}"))
        .to_owned()
}

pub fn parse_id(value: &Value) -> Uuid {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an id: {value}"))
}

pub fn postgres_enabled() -> bool {
    match std::env::var("ROSTER_TEST_BACKENDS") {
        Ok(list) => list
            .split(',')
            .any(|b| b.trim().eq_ignore_ascii_case("postgres")),
        Err(_) => true,
    }
}

/// Where to create databases: the server URL (without a database name) and the template.
struct PgServer {
    /// URL of the `postgres` maintenance database, for `CREATE DATABASE`.
    admin_url: String,
    /// `postgres://…/` prefix to which a database name is appended.
    base_url: String,
    template: String,
    /// Where test databases go to be dropped.
    janitor: tokio::sync::mpsc::UnboundedSender<Dropping>,
    /// Whether the server outlives this run (`ROSTER_TEST_DATABASE_URL`): then each test waits
    /// until its database is gone, so that none is left behind when the run ends.
    external: bool,
}

static PG: OnceLock<Result<PgServer, String>> = OnceLock::new();

/// One test's PostgreSQL database, dropped when this is dropped (also when the test panics).
struct PgDatabase {
    url: String,
    name: String,
}

/// A database for the janitor to drop, and whom to tell once it is gone.
struct Dropping {
    name: String,
    done: Option<std::sync::mpsc::Sender<()>>,
}

/// A new database cloned from the migrated template.
async fn postgres_database() -> PgDatabase {
    let server = pg_server();
    let name = format!("roster_test_{}", Uuid::new_v4().simple());
    let admin = Database::connect(&server.admin_url)
        .await
        .expect("connect to PostgreSQL");
    admin
        .execute_unprepared(&format!(
            "CREATE DATABASE {name} TEMPLATE {}",
            server.template
        ))
        .await
        .expect("create test database");
    admin.close().await.ok();
    PgDatabase {
        url: format!("{}{name}", server.base_url),
        name,
    }
}

fn pg_server() -> &'static PgServer {
    PG.get_or_init(|| {
        // Start-up runs blocking commands and its own runtime; keep it off this one.
        std::thread::spawn(start_postgres)
            .join()
            .unwrap_or_else(|_| Err("PostgreSQL start-up panicked".into()))
    })
    .as_ref()
    .unwrap_or_else(|why| {
        panic!(
            "PostgreSQL is required for this test run and could not be started: {why}\n\
             Install Debian's `postgresql` package (the server binaries in \
             /usr/lib/postgresql/15/bin), point ROSTER_TEST_DATABASE_URL at a server, or run \
             with ROSTER_TEST_BACKENDS=sqlite to test SQLite only."
        )
    })
}

impl Drop for PgDatabase {
    /// Hands the database to the janitor. `Drop` cannot await, and every `DROP DATABASE` waits
    /// for a checkpoint: the test does not wait for it, unless the server outlives the run.
    fn drop(&mut self) {
        let server = pg_server();
        let (done, gone) = std::sync::mpsc::channel();
        let dropping = Dropping {
            name: self.name.clone(),
            done: server.external.then_some(done),
        };
        if server.janitor.send(dropping).is_ok() && server.external {
            let _ = gone.recv();
        }
    }
}

/// Drops the databases it is handed, one at a time, on a thread and a connection of its own.
/// `FORCE` ends the connections that the app, its servers and its listener may still hold.
/// Failures are reported, never raised: they must not fail or abort a test.
fn spawn_janitor(admin_url: String) -> tokio::sync::mpsc::UnboundedSender<Dropping> {
    let (janitor, mut queue) = tokio::sync::mpsc::unbounded_channel::<Dropping>();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => return eprintln!("no runtime to drop test databases: {e}"),
        };
        runtime.block_on(async move {
            let mut admin: Option<DatabaseConnection> = None;
            while let Some(dropping) = queue.recv().await {
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", dropping.name);
                let connection = match &admin {
                    Some(connection) => Ok(connection.clone()),
                    None => Database::connect(&admin_url).await,
                };
                let dropped = match connection {
                    Ok(connection) => {
                        let dropped = connection.execute_unprepared(&sql).await;
                        admin = dropped.is_ok().then_some(connection);
                        dropped.map(drop)
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = dropped {
                    eprintln!("could not drop the test database {}: {e}", dropping.name);
                }
                if let Some(done) = dropping.done {
                    let _ = done.send(());
                }
            }
        });
    });
    janitor
}

fn start_postgres() -> Result<PgServer, String> {
    let (admin_url, base_url, external) = match std::env::var("ROSTER_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let base = match url.rfind('/') {
                Some(i) if i > url.find("://").map_or(0, |s| s + 2) => url[..=i].to_owned(),
                _ => format!("{url}/"),
            };
            (url, base, true)
        }
        _ => {
            let port = start_cluster()?;
            let base = format!("postgres://postgres@127.0.0.1:{port}/");
            (format!("{base}postgres"), base, false)
        }
    };
    let template = format!("roster_template_{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let admin = Database::connect(&admin_url)
            .await
            .map_err(|e| format!("cannot connect to {admin_url}: {e}"))?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {template}"))
            .await
            .map_err(|e| format!("cannot create the template database: {e}"))?;
        admin.close().await.ok();
        let db = Database::connect(format!("{base_url}{template}"))
            .await
            .map_err(|e| e.to_string())?;
        Migrator::up(&db, None)
            .await
            .map_err(|e| format!("migrating the template failed: {e}"))?;
        db.close().await.map_err(|e| e.to_string())
    })?;
    Ok(PgServer {
        janitor: spawn_janitor(admin_url.clone()),
        admin_url,
        base_url,
        template,
        external,
    })
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args…`, as the `postgres` user when we are root (initdb refuses to run as root).
fn pg_command(program: &str, root: bool) -> Command {
    let path = Path::new(PG_BIN).join(program);
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(path);
        cmd
    } else {
        Command::new(path)
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Starts a throwaway cluster on a free loopback port and returns the port.
fn start_cluster() -> Result<u16, String> {
    Cluster::start("shared").map(|cluster| cluster.port)
}

/// A throwaway PostgreSQL cluster of this test process, on a free loopback port; stopped and
/// deleted by a watchdog when the process is gone, however it ends.
pub struct Cluster {
    pub port: u16,
    data: PathBuf,
    dir: PathBuf,
    root: bool,
}

impl Cluster {
    /// `initdb` and `pg_ctl start` of a new cluster named `name` (unique in this process).
    pub fn start(name: &str) -> Result<Self, String> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            return Err(format!("{PG_BIN}/initdb not found"));
        }
        let root = is_root();
        let dir: PathBuf =
            std::env::temp_dir().join(format!("roster-test-pg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if root {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&dir);
                    c
                },
                "chown",
            )?;
        }
        let data = dir.join("data");
        let mut initdb = pg_command("initdb", root);
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let cluster = Self {
            port,
            data,
            dir,
            root,
        };
        cluster.resume()?;
        // Stop and delete the cluster once this test process is gone, however it ends.
        let as_pg = if root { "runuser -u postgres -- " } else { "" };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {as_pg}{PG_BIN}/pg_ctl -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            data = cluster.data.display(),
            dir = cluster.dir.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("watchdog: {e}"))?;
        Ok(cluster)
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// `pg_ctl stop -m fast`: the server goes away, connections are cut.
    pub fn stop(&self) -> Result<(), String> {
        let mut stop = pg_command("pg_ctl", self.root);
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]);
        run(stop, "pg_ctl stop")
    }

    /// `pg_ctl start` on the same port and data.
    pub fn resume(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB",
            self.port,
            self.dir.display()
        );
        let mut start = pg_command("pg_ctl", self.root);
        start
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "start"]);
        run(start, "pg_ctl start")
    }
}

/// A teacher in a fresh organization, ready to create courses through the API.
pub struct Campus {
    pub organization: organization::Model,
    pub teacher: user::Model,
    pub teacher_token: String,
}

impl TestApp {
    pub async fn campus(&self, name: &str) -> Campus {
        let organization = self.organization(name).await;
        let teacher = self.user(Role::Teacher, Some(organization.id)).await;
        let teacher_token = self.token(teacher.id);
        Campus {
            organization,
            teacher,
            teacher_token,
        }
    }

    /// Creates a course through `createCourse` as `token`'s holder; returns its id.
    pub async fn create_course(&self, token: &str, input: Value) -> Uuid {
        let mutation =
            "mutation($input: CreateCourseInput!) { createCourse(input: $input) { id } }";
        self.create(token, mutation, input).await
    }

    /// Creates a section of `course` through `createSection`, with the other `fields` of its
    /// input, as `token`'s holder; returns its id.
    pub async fn create_section(&self, token: &str, course: Uuid, mut fields: Value) -> Uuid {
        fields["courseId"] = json!(course);
        let mutation =
            "mutation($input: CreateSectionInput!) { createSection(input: $input) { id } }";
        self.create(token, mutation, fields).await
    }

    /// Runs `mutation` with `input` as `token`'s holder; the id of what it created.
    async fn create(&self, token: &str, mutation: &str, input: Value) -> Uuid {
        #[derive(Deserialize)]
        struct Created {
            id: Uuid,
        }
        let created: Result<Created, String> = self
            .request(Some(token), mutation, json!({ "input": input }))
            .await;
        created
            .unwrap_or_else(|code| panic!("[{:?}] {code}: {mutation}", self.backend))
            .id
    }

    /// A course from `course` (its `createCourse` input) with a section for each of `sections`
    /// (the rest of each `createSection` input), created as `token`'s holder; their ids.
    pub async fn course_with_sections<const N: usize>(
        &self,
        token: &str,
        course: Value,
        sections: [Value; N],
    ) -> (Uuid, [Uuid; N]) {
        let course = self.create_course(token, course).await;
        let mut ids = [Uuid::nil(); N];
        for (id, fields) in ids.iter_mut().zip(sections) {
            *id = self.create_section(token, course, fields).await;
        }
        (course, ids)
    }

    /// A course named `name` with one section of `capacity` seats meeting `weekday`.
    pub async fn course_with_section(
        &self,
        campus: &Campus,
        name: &str,
        capacity: Option<i32>,
        weekday: &str,
    ) -> (Uuid, Uuid) {
        let token = &campus.teacher_token;
        let course = self
            .create_course(token, json!({ "name": name, "code": "C-1" }))
            .await;
        let meeting = json!({ "weekday": weekday, "start": "09:00", "end": "10:30", "room": "B2" });
        let section = self
            .create_section(
                token,
                course,
                json!({ "name": "Section A", "capacity": capacity, "schedule": [meeting] }),
            )
            .await;
        (course, section)
    }

    /// Writes an enrollment row and its counter the way the engine does, for tests of reads.
    pub async fn seat(
        &self,
        user_id: Uuid,
        section_id: Uuid,
        status: entity::types::EnrollmentStatus,
    ) -> Uuid {
        use entity::types::EnrollmentStatus as S;
        use sea_orm::sea_query::{Expr, ExprTrait};
        let section_row = self.section_row(section_id).await;
        let at = now();
        let counter = match status {
            S::Registered => Some(section::Column::RegisteredCount),
            S::Pending => Some(section::Column::PendingCount),
            S::Waitlisted => Some(section::Column::WaitlistCount),
            S::Completed | S::Failed => Some(section::Column::FinishedCount),
            S::Offered => Some(section::Column::OfferedCount),
            _ => None,
        };
        let ticket = (status == S::Waitlisted).then_some(section_row.waitlist_seq + 1);
        if let Some(column) = counter {
            section::Entity::update_many()
                .col_expr(column, Expr::col(column).add(1))
                .col_expr(
                    section::Column::WaitlistSeq,
                    Expr::value(ticket.unwrap_or(section_row.waitlist_seq)),
                )
                .filter(section::Column::Id.eq(section_id))
                .exec(&self.db)
                .await
                .expect("counter");
        }
        let id = Uuid::now_v7();
        enrollment::ActiveModel {
            id: Set(id),
            user_id: Set(user_id),
            course_id: Set(section_row.course_id),
            section_id: Set(section_id),
            status: Set(status),
            visibility: Set(true),
            enrolled_at: Set(at),
            enrolled_by: Set(None),
            prerequisite_check_passed: Set(true),
            prerequisite_check_at: Set(Some(at)),
            seat_reserved_at: Set(status.holds_seat().then_some(at)),
            waitlist_ticket: Set(ticket),
            completed_at: Set((status == S::Completed).then_some(at)),
            completed_by: Set(None),
            completion_evidence: Set(None),
            cancelled_at: Set(None),
            withdrawn_at: Set(None),
            reason: Set(None),
            notes: Set(None),
            skip_reason: Set(None),
            notes_updated_at: Set(None),
            notes_updated_by: Set(None),
            skipped_at: Set(None),
            offer_expires_at: Set(None),
            offer_remind_at: Set(None),
            record: Set(None),
            lottery_draw_at: Set(None),
            lottery_rank: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(&self.db)
        .await
        .expect("insert enrollment");
        id
    }

    /// A student of the campus's organization, with a token.
    pub async fn student(&self, campus: &Campus) -> (Uuid, String) {
        let student = self.user(Role::Student, Some(campus.organization.id)).await;
        (student.id, self.token(student.id))
    }

    /// `n` students of the campus's organization, with their tokens.
    pub async fn students(&self, campus: &Campus, n: usize) -> Vec<(Uuid, String)> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.student(campus).await);
        }
        out
    }

    /// Every row a mutation could change and how many events and certifications there are,
    /// for "changed nothing" checks.
    pub async fn snapshot(&self) -> String {
        use entity::{certification, course, team, team_member};
        use sea_orm::PaginatorTrait;
        let db = &self.db;
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{}\n{}",
            rows::<enrollment::Entity>(db, &[enrollment::Column::Id]).await,
            rows::<section::Entity>(db, &[section::Column::Id]).await,
            rows::<course::Entity>(db, &[course::Column::Id]).await,
            rows::<team::Entity>(db, &[team::Column::Id]).await,
            rows::<team_member::Entity>(
                db,
                &[team_member::Column::TeamId, team_member::Column::UserId]
            )
            .await,
            enrollment_event::Entity::find()
                .count(db)
                .await
                .expect("events"),
            certification::Entity::find()
                .count(db)
                .await
                .expect("certifications"),
        )
    }

    /// Invariants 1, 3 and 4 of docs/design.md for one section, as it stands: the counters equal
    /// the rows, seats taken (finished enrollments included) stay within capacity, nobody
    /// eligible waits while a seat is free, and the waitlist tickets are distinct.
    pub async fn assert_section_consistent(&self, section_id: Uuid) {
        use entity::types::EnrollmentStatus as S;
        let section = self.section_row(section_id).await;
        let rows = enrollment::Entity::find()
            .filter(enrollment::Column::SectionId.eq(section_id))
            .all(&self.db)
            .await
            .expect("enrollments query");
        let count = |status: S| rows.iter().filter(|e| e.status == status).count() as i32;
        let (registered, pending, waiting) = (
            count(S::Registered),
            count(S::Pending),
            count(S::Waitlisted),
        );
        let finished = count(S::Completed) + count(S::Failed);
        let offered = count(S::Offered);
        assert_eq!(
            (
                section.registered_count,
                section.pending_count,
                section.waitlist_count,
                section.finished_count,
                section.offered_count,
            ),
            (registered, pending, waiting, finished, offered),
            "[{:?}] counters equal the rows",
            self.backend
        );
        if let Some(capacity) = section.capacity {
            let taken = registered + pending + finished + offered;
            assert!(taken <= capacity, "[{:?}] overbooked", self.backend);
            let course = entity::course::Entity::find_by_id(section.course_id)
                .one(&self.db)
                .await
                .expect("course query")
                .expect("course exists");
            // Nobody eligible waits while a seat is free: whoever waits then was passed over,
            // with the reason recorded (or the section or its course is inactive).
            if waiting > 0 && taken < capacity && section.is_active && course.is_active {
                let passed_over = rows
                    .iter()
                    .filter(|e| e.status == S::Waitlisted)
                    .all(|e| e.skip_reason.is_some());
                assert!(
                    passed_over,
                    "[{:?}] an eligible waiter waits while a seat is free",
                    self.backend
                );
            }
        }
        assert!(
            rows.iter()
                .filter(|e| e.status == S::Offered)
                .all(|e| e.offer_expires_at.is_some() && e.waitlist_ticket.is_none()),
            "[{:?}] every offer has a deadline and no ticket",
            self.backend
        );
        let mut tickets: Vec<i64> = rows.iter().filter_map(|e| e.waitlist_ticket).collect();
        tickets.sort_unstable();
        tickets.dedup();
        assert_eq!(
            tickets.len() as i32,
            waiting,
            "one distinct ticket per waiter"
        );
    }
}

/// A `roster serve` child process on `database_url` (signing with [`SECRET`], no demo data),
/// started and healthy; killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub address: SocketAddr,
}

impl Server {
    /// Starts the server; `env` adds or overrides variables, `stderr` takes its log.
    pub async fn start(
        database_url: &str,
        env: &[(&str, &str)],
        stderr: Option<std::fs::File>,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_roster"));
        command
            .arg("serve")
            .env("ROSTER_DATABASE_URL", database_url)
            .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "ROSTER_JWT_SECRET",
                std::str::from_utf8(SECRET).expect("utf-8"),
            )
            .env("ROSTER_DEMO_DATA", "never")
            .env("ROSTER_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(file) = stderr {
            command.stderr(file);
        }
        let child = command.spawn().expect("start roster serve");
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("http://{address}/healthz"))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "roster serve did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, address }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

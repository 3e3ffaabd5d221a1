//! What an operator runs around `serve`: `roster --version`, `roster check`, `roster backup`,
//! and a start-up quiet enough to read.

use std::{
    collections::HashSet,
    path::Path,
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::helpers::{Backend, Server, TestApp, post_json};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::json;
use uuid::Uuid;

/// `roster` in `dir` with none of the settings of the environment the tests run in.
fn roster(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
    cmd.current_dir(dir)
        .env_remove("ROSTER_DATABASE_URL")
        .env_remove("ROSTER_JWT_SECRET")
        .env_remove("ROSTER_LOG")
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn version_names_the_release_and_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let output = roster(dir.path()).arg("--version").output().unwrap();
    assert!(output.status.success());
    let line = text(&output.stdout);
    let prefix = format!("roster {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = line
        .trim()
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `{prefix}…)`: {line:?}"));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "a commit hash or `unknown`: {commit:?}"
    );
}

/// A stand-in OpenID provider: discovery and a key set of one RSA key, on a loopback port.
async fn provider() -> String {
    use axum::{Json, Router, routing::get};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks") });
    let keys = json!({ "keys": [{
        "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "e": "AQAB",
        "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"
    }] });
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route("/jwks", get(move || async move { Json(keys) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    issuer
}

/// `roster check` on a good configuration: exit 0, and it creates nothing, not even the
/// SQLite file `serve` would create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_a_good_configuration_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = provider().await;
    let check = |extra: &[(&str, &str)]| {
        let mut cmd = roster(dir.path());
        cmd.arg("check")
            .envs(extra.iter().copied())
            .env("ROSTER_OIDC_ISSUER", &issuer)
            .env("ROSTER_OIDC_AUDIENCE", "roster")
            .env("ROSTER_OIDC_ALLOW_HTTP", "true");
        cmd
    };
    let fresh = tokio::task::spawn_blocking({
        let mut cmd = check(&[]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(fresh.status.success(), "{}", text(&fresh.stderr));
    assert_eq!(text(&fresh.stdout).trim(), "configuration OK");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "check wrote files"
    );

    // An existing, migrated database with every optional channel configured.
    let migrated = roster(dir.path()).arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let vapid = roster::delivery::PushConfig::generate_private_key();
    let full = tokio::task::spawn_blocking({
        let mut cmd = check(&[
            (
                "ROSTER_JWT_SECRET",
                "a-secret-of-at-least-thirty-two-bytes!",
            ),
            ("ROSTER_VAPID_PRIVATE_KEY", &vapid),
            ("ROSTER_WEBHOOK_URL", "https://hooks.example/roster"),
            (
                "ROSTER_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("ROSTER_SMTP_URL", "smtp://127.0.0.1:2525"),
            ("ROSTER_MAIL_FROM", "Roster <roster@school.example>"),
        ]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(full.status.success(), "{}", text(&full.stderr));
}

/// Every problem is one line of its own on stderr, and the exit status says there were some.
#[test]
fn check_names_each_problem_on_a_line_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let output = roster(dir.path())
        .arg("check")
        .env(
            "ROSTER_DATABASE_URL",
            format!("postgres://roster@127.0.0.1:{}/roster", closed_port()),
        )
        .env("ROSTER_JWT_SECRET", "too-short")
        .env("ROSTER_VAPID_PRIVATE_KEY", "not a key")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].starts_with("ROSTER_JWT_SECRET: ") && lines[0].contains("32 bytes"));
    assert!(lines[1].starts_with("Web Push: ROSTER_VAPID_PRIVATE_KEY"));
    assert!(lines[2].starts_with("database: cannot open postgres://roster@127.0.0.1:"));
}

#[test]
fn check_reports_an_unreachable_openid_provider_and_a_missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = format!("http://127.0.0.1:{}", closed_port());
    let output = roster(dir.path())
        .arg("check")
        .env("ROSTER_DATABASE_URL", "sqlite://no/such/folder/roster.db")
        .env("ROSTER_OIDC_ISSUER", &issuer)
        .env("ROSTER_OIDC_AUDIENCE", "roster")
        .env("ROSTER_OIDC_ALLOW_HTTP", "true")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains(" WARN ") && !l.contains(" INFO "))
        .collect();
    assert_eq!(problems.len(), 2, "{stderr}");
    assert!(
        problems[0].starts_with("database: sqlite://no/such/folder/roster.db: the folder"),
        "{stderr}"
    );
    assert!(
        problems[1].starts_with(&format!("OpenID provider {issuer}: ")),
        "{stderr}"
    );
}

/// A first `roster` prints its address and tokens, and on stderr a handful of lines: one for
/// the migrations, none of the migrator's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_prints_the_address_the_tokens_and_a_handful_of_lines() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::from(roster(dir.path()))
        .env("ROSTER_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    while stdout.len() < 5 {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("start-up output")
            .unwrap()
            .expect("more output");
        stdout.push(line);
    }
    child.kill().await.unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stdout[0].starts_with("Roster is serving GraphQL at http://127.0.0.1:"));
    assert!(
        stderr.lines().count() <= 5,
        "a handful of lines, got:\n{stderr}"
    );
    let migrations = <migration::Migrator as migration::MigratorTrait>::migrations().len();
    let applied = format!("applied {migrations} migrations");
    assert!(stderr.contains(&applied), "{stderr}");
    assert!(!stderr.contains("Applying migration"), "{stderr}");

    // `RUST_LOG` still wins: asked for, the migrator's lines are back.
    let migrate = roster(dir.path())
        .args(["migrate", "--rollback", "1"])
        .output()
        .unwrap();
    assert!(migrate.status.success());
    let verbose = roster(dir.path())
        .arg("migrate")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = text(&verbose.stderr);
    assert!(log.contains("applied 1 migrations"), "{log}");
    assert!(log.contains("Applying migration"), "{log}");
}

/// One student's enrollments, acknowledged by the server, each with when the answer came.
type Acknowledged = Arc<Mutex<Vec<(Uuid, Instant)>>>;

/// `roster backup` while a server takes enrollments: the copy opens as a database and holds
/// every enrollment the server acknowledged before the backup began.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_concurrent_enrollments_holds_every_acknowledged_one() {
    let app = TestApp::new(Backend::Sqlite).await;
    let campus = app.campus("Backed up").await;
    let mut sections = Vec::new();
    for day in ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"] {
        let (_, section) = app
            .course_with_section(&campus, &format!("On {day}"), Some(500), day)
            .await;
        sections.push(section);
    }
    let students = app.students(&campus, 40).await;
    let server = Server::start(&app.database_url, &[], None).await;
    let url = format!("http://{}/graphql", server.address);

    let acknowledged: Acknowledged = Arc::default();
    let mut writers = Vec::new();
    for (_, token) in students {
        let (url, sections, acknowledged) = (url.clone(), sections.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            for section in sections {
                let body = json!({
                    "query": "mutation($s: UUID!) { enroll(sectionId: $s) { id } }",
                    "variables": { "s": section },
                });
                let mut answer = post_json(&url, Some(&token), &body).await;
                // A write the server sheds (UNAVAILABLE) changed nothing: a client sends it
                // again, as README says.
                for _ in 0..400 {
                    if answer["errors"][0]["extensions"]["code"] != "UNAVAILABLE" {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    answer = post_json(&url, Some(&token), &body).await;
                }
                let id = answer["data"]["enroll"]["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("not enrolled: {answer}"));
                let id: Uuid = id.parse().unwrap();
                acknowledged.lock().unwrap().push((id, Instant::now()));
            }
        }));
    }
    // Back up once enrollments are under way.
    while acknowledged.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let folder = tempfile::tempdir().unwrap();
    let copy = folder.path().join("copy.db");
    let began = Instant::now();
    let backup = tokio::process::Command::from({
        let mut cmd = roster(folder.path());
        cmd.args(["backup", "copy.db"])
            .env("ROSTER_DATABASE_URL", &app.database_url);
        cmd
    })
    .output()
    .await
    .unwrap();
    assert!(backup.status.success(), "{}", text(&backup.stderr));
    assert!(text(&backup.stderr).contains("JWT secret"));
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), 200);
    let before: Vec<Uuid> = acknowledged
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|(id, _)| *id)
        .collect();
    assert!(before.len() >= 20);

    // Restore: open the copy as the database it is.
    let restored = Database::connect(format!("sqlite://{}?mode=ro", copy.display()))
        .await
        .unwrap();
    let sqlite = sea_orm::DatabaseBackend::Sqlite;
    let integrity = restored
        .query_one_raw(Statement::from_string(sqlite, "PRAGMA integrity_check"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(integrity.try_get_by_index::<String>(0).unwrap(), "ok");
    let rows = restored
        .query_all_raw(Statement::from_string(sqlite, "SELECT id FROM enrollments"))
        .await
        .unwrap();
    let kept: HashSet<Uuid> = rows
        .iter()
        .map(|row| row.try_get_by_index::<Uuid>(0).unwrap())
        .collect();
    let lost: Vec<&Uuid> = before.iter().filter(|id| !kept.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged enrollments missing from the backup",
        lost.len(),
        before.len()
    );
    drop(server);
}

#[test]
fn backup_refuses_postgres_naming_its_tools_and_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = roster(dir.path())
        .args(["backup", "copy.sql"])
        .env("ROSTER_DATABASE_URL", "postgres://roster@db/roster")
        .output()
        .unwrap();
    assert!(!postgres.status.success());
    let said = text(&postgres.stderr);
    assert!(
        said.contains("pg_dump") && said.contains("pg_basebackup"),
        "{said}"
    );
    assert!(!dir.path().join("copy.sql").exists());

    let migrated = roster(dir.path()).arg("migrate").output().unwrap();
    assert!(migrated.status.success());
    std::fs::write(dir.path().join("taken.db"), "precious").unwrap();
    let output: Output = roster(dir.path())
        .args(["backup", "taken.db"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("exists"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken.db")).unwrap(),
        "precious"
    );
}

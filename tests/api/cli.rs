//! The `roster` binary's commands, run as a script would run them, on a fresh SQLite file.

use std::process::Command;

fn roster(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
    cmd.current_dir(dir)
        .env_remove("ROSTER_DATABASE_URL")
        .env_remove("ROSTER_JWT_SECRET")
        .env("ROSTER_LOG", "warn");
    cmd
}

fn stdout_of(cmd: &mut Command) -> String {
    let output = cmd.output().expect("run roster");
    assert!(
        output.status.success(),
        "roster failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn user_add_and_token_print_one_line_each_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let id = stdout_of(roster(dir.path()).args([
        "user",
        "add",
        "--email",
        "Ada@Example.org",
        "--name",
        "Ada",
        "--role",
        "TEACHER",
        "--org",
        "Northside",
    ]));
    let id = id.trim();
    assert!(id.parse::<uuid::Uuid>().is_ok(), "not an id: {id:?}");
    assert!(
        dir.path().join("roster.db").exists(),
        "the default database is created"
    );

    let token =
        stdout_of(roster(dir.path()).args(["token", "--email", "ada@example.org", "--ttl", "2h"]));
    assert!(
        dir.path().join(".roster-jwt-secret").exists(),
        "a dev secret is kept beside the database"
    );
    assert_eq!(token.lines().count(), 1);
    let secret = std::fs::read_to_string(dir.path().join(".roster-jwt-secret")).unwrap();
    let keys = roster::identity::tokens::TokenKeys::new(secret.trim().as_bytes()).unwrap();
    assert_eq!(keys.verify(token.trim()).unwrap().to_string(), id);

    let duplicate = roster(dir.path())
        .args([
            "user",
            "add",
            "--email",
            "ada@example.org",
            "--name",
            "Ada",
            "--role",
            "STUDENT",
        ])
        .output()
        .unwrap();
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("exists"));

    let unknown = roster(dir.path())
        .args(["token", "--email", "nobody@example.org"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
}

#[test]
fn schema_prints_the_sdl() {
    let dir = tempfile::tempdir().unwrap();
    let sdl = stdout_of(roster(dir.path()).arg("schema"));
    assert_eq!(sdl, roster::graphql::build_schema().sdl());
}

#[test]
fn seed_demo_loads_once_and_migrate_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    stdout_of(roster(dir.path()).args(["seed", "--demo"]));
    let again = roster(dir.path())
        .args(["seed", "--demo"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a second demo load is refused");
    stdout_of(roster(dir.path()).args(["migrate", "--rollback", "10"]));
    stdout_of(roster(dir.path()).arg("migrate"));
}

#[test]
fn short_jwt_secrets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = roster(dir.path())
        .env("ROSTER_JWT_SECRET", "too-short")
        .args(["token", "--email", "x@example.org"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 32 bytes"));
}

/// `roster` with no configuration: creates the database, loads the demo data, prints the
/// GraphiQL address and tokens that work.
#[tokio::test]
async fn serve_with_no_configuration_loads_demo_data_and_prints_working_tokens() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::from(roster(dir.path()))
        .env("ROSTER_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while printed.len() < 5 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .expect("start-up output")
            .unwrap()
            .expect("more output");
        printed.push(line);
    }
    let url = printed[0]
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address printed")
        .to_owned();
    assert!(url.ends_with("/graphql"), "{url}");
    let student_token = printed[2].trim().to_owned();
    let teacher_token = printed[4].trim().to_owned();

    let client = reqwest::Client::new();
    let ask = |token: String, query: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .post(&url)
                .bearer_auth(token)
                .json(&serde_json::json!({ "query": query }))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let student = ask(
        student_token,
        "{ me { role } myEnrollments { status } courses(first: 50) { totalCount edges { node { sections { isFull waitlistCount } } } } }",
    )
    .await;
    assert_eq!(student["data"]["me"]["role"], "STUDENT", "{student}");
    let total = student["data"]["courses"]["totalCount"].as_i64().unwrap();
    assert!(total >= 20, "20+ courses, got {total}");
    let sections: Vec<&serde_json::Value> = student["data"]["courses"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["node"]["sections"].as_array().unwrap())
        .collect();
    assert!(
        sections.iter().any(|s| s["isFull"] == true),
        "some sections are full"
    );
    assert!(
        sections
            .iter()
            .any(|s| s["waitlistCount"].as_i64().unwrap() > 0),
        "some have waitlists"
    );
    let statuses: Vec<&str> = student["data"]["myEnrollments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert!(statuses.contains(&"WAITLISTED"), "{statuses:?}");
    let teacher = ask(teacher_token, "{ me { role } }").await;
    assert_eq!(teacher["data"]["me"]["role"], "TEACHER");
    child.kill().await.ok();
}

/// `--help` names the environment variables but never prints their values: the database and
/// webhook URLs, the SMTP URL and the secrets carry credentials.
#[test]
fn help_never_prints_the_secrets_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        (
            "ROSTER_DATABASE_URL",
            "postgres://roster:db-s3cret@db.internal/roster",
        ),
        (
            "ROSTER_WEBHOOK_URL",
            "https://hook:hook-s3cret@hooks.internal/roster",
        ),
        (
            "ROSTER_WEBHOOK_SECRET",
            "whsec_c3VwZXItc2VjcmV0LXZhbHVlLTEyMzQ1Njc4",
        ),
        ("ROSTER_SMTP_URL", "smtps://mail:smtp-s3cret@mail.internal"),
        ("ROSTER_JWT_SECRET", "jwt-s3cret-jwt-s3cret-jwt-s3cret-jwt"),
        ("ROSTER_VAPID_PRIVATE_KEY", "vapid-s3cret"),
    ];
    for args in [&["--help"][..], &["serve", "--help"][..]] {
        let mut cmd = roster(dir.path());
        for (name, value) in secrets {
            cmd.env(name, value);
        }
        let help = stdout_of(cmd.args(args));
        assert!(help.contains("ROSTER_DATABASE_URL"), "{help}");
        for (name, value) in secrets {
            assert!(!help.contains(value), "{args:?} printed {name}: {help}");
        }
        assert!(!help.contains("s3cret"), "{args:?}: {help}");
    }
}

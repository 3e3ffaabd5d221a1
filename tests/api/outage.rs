//! A database that does not answer (docs/design.md#errors), with a real `pg_ctl stop` and
//! `start` of a PostgreSQL cluster of this test's own: `/readyz` says so within its 2 s, every
//! request answers `UNAVAILABLE` (503 under `application/graphql-response+json`) once the pool's
//! acquire timeout passes and well before the request timeout, a `sectionSeats` subscription
//! stays open and goes on when the database is back, and requests succeed again with no
//! restart.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{Cluster, SECRET, Server, parse_id, postgres_enabled},
    subscriptions::Client,
};

/// `roster` with `args` on `url`; its standard output, trimmed.
fn roster(url: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .env("ROSTER_DATABASE_URL", url)
        .env("ROSTER_JWT_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("ROSTER_LOG", "warn")
        .output()
        .expect("run roster");
    assert!(
        output.status.success(),
        "roster {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// POSTs `query` as `token`'s holder under `application/graphql-response+json`: the status,
/// the body, and how long the answer took.
async fn post(
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> (u16, Value, Duration) {
    let started = Instant::now();
    let mut request = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_is_unavailable_quickly_and_back_without_a_restart() {
    if !postgres_enabled() {
        eprintln!("SKIPPED on PostgreSQL: ROSTER_TEST_BACKENDS excludes it");
        return;
    }
    let cluster = Cluster::start("outage").expect("a PostgreSQL cluster of the test's own");
    let url = cluster.url("postgres");
    let timeout = Duration::from_secs(6);
    let server = Server::start(
        &url,
        &[
            ("ROSTER_DB_ACQUIRE_TIMEOUT", "1s"),
            ("ROSTER_REQUEST_TIMEOUT", "6s"),
        ],
        None,
    )
    .await;
    let base = format!("http://{}", server.address);
    roster(
        &url,
        &[
            "user", "add", "--email", "t@o.dev", "--name", "T", "--role", "TEACHER", "--org", "O",
        ],
    );
    for email in ["a@o.dev", "b@o.dev"] {
        roster(
            &url,
            &[
                "user", "add", "--email", email, "--name", "S", "--role", "STUDENT", "--org", "O",
            ],
        );
    }
    let [teacher, first, second] =
        ["t@o.dev", "a@o.dev", "b@o.dev"].map(|email| roster(&url, &["token", "--email", email]));
    let (_, created, _) = post(
        &base,
        Some(&teacher),
        "mutation { createCourse(input: { name: \"Resilience\" }) { id } }",
        json!({}),
    )
    .await;
    let course = parse_id(&created["data"]["createCourse"]["id"]);
    let (_, created, _) = post(
        &base,
        Some(&teacher),
        "mutation($c: UUID!) { createSection(input: { courseId: $c, name: \"A\", capacity: 1 }) { id } }",
        json!({ "c": course }),
    )
    .await;
    let section: Uuid = parse_id(&created["data"]["createSection"]["id"]);
    let enroll = "mutation($s: UUID!) { enroll(sectionId: $s) { status } }";
    let (status, _, _) = post(&base, Some(&first), enroll, json!({ "s": section })).await;
    assert_eq!(status, 200);
    let mut client = Client::ready(server.address, false, json!({})).await;
    client
        .seats("seats", section, "registeredCount waitlistCount")
        .await;
    let initial = client.data_of("seats").await;
    assert_eq!(initial["sectionSeats"]["registeredCount"], 1);

    cluster.stop().expect("pg_ctl stop");

    let started = Instant::now();
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "/readyz answers within its 2 s bound: {:?}",
        started.elapsed()
    );
    let personal = ("{ me { id } }", Some(first.as_str()), json!({}));
    let discovery = ("{ courses { totalCount } }", None, json!({}));
    let write = (enroll, Some(second.as_str()), json!({ "s": section }));
    for (query, token, variables) in [personal, discovery, write] {
        let (status, body, took) = post(&base, token, query, variables).await;
        assert_eq!(status, 503, "{query}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAVAILABLE",
            "{query}: {body}"
        );
        assert!(
            took < timeout,
            "{query} outlived the request timeout: {took:?}"
        );
    }
    // An anonymous query waits once for the pool (the response cache's read of the database's
    // version), not once for the cache and once more for the query.
    let (status, _, took) = post(&base, None, "{ courses { totalCount } }", json!({})).await;
    assert_eq!(status, 503);
    assert!(
        took < Duration::from_millis(1900),
        "one acquire timeout (1 s), not two: {took:?}"
    );
    // The export, streamed outside GraphQL, answers 503 as well, and says when to retry.
    let export = reqwest::Client::new()
        .get(format!("{base}/export/enrollments.csv"))
        .bearer_auth(&teacher)
        .send()
        .await
        .expect("an answer");
    assert_eq!(export.status().as_u16(), 503);
    assert!(export.headers().contains_key("retry-after"));
    // The subscription is still open: nothing came, and no error.
    assert_eq!(client.recv_within(Duration::from_millis(500)).await, None);

    cluster.resume().expect("pg_ctl start");

    // Back with no restart: the first request may still meet a connection the stop cut.
    let deadline = Instant::now() + Duration::from_secs(30);
    let enrolled = loop {
        let (status, body, _) = post(&base, Some(&second), enroll, json!({ "s": section })).await;
        if status == 200 {
            break body;
        }
        assert!(Instant::now() < deadline, "not back: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(enrolled["data"]["enroll"]["status"], "WAITLISTED");
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    // The subscription goes on: the new waiter reaches it.
    let update = client.data_of("seats").await;
    assert_eq!(update["sectionSeats"]["waitlistCount"], 1, "{update}");
}

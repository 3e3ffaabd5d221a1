//! The response cache: anonymous query answers are served again only while the database has
//! not changed, whoever changed it (this server, a direct write, another replica).

use std::time::{Duration, Instant};

use crate::helpers::{Backend, Server, TestApp, both_backends, error_code, parse_id};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

const DISCOVERY: &str = "{ courses(first: 10) { edges { node { id name sections { id \
    registeredCount seatsAvailable } } } } }";

/// POSTs `body` to `url` as `token`'s holder; the answer and its `x-cache` header.
async fn post(url: &str, token: Option<&str>, body: &Value) -> (Value, Option<String>) {
    let mut request = reqwest::Client::new().post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("answer");
    let cache = response
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (response.json().await.expect("JSON"), cache)
}

/// `enroll` in `section` through the server at `url`, as `token`'s holder.
async fn enroll(url: &str, token: &str, section: Uuid) -> Value {
    let body = json!({ "query": ENROLL, "variables": { "s": section } });
    post(url, Some(token), &body).await.0
}

/// How long to keep asking for a hit. On PostgreSQL any transaction that completes in the
/// cluster (other tests' databases included, and the tests share one cluster) moves the
/// version, so a hit may take a while when a busy test runs alongside.
const PATIENCE: Duration = Duration::from_secs(15);

/// Asks `query` until an answer comes from the cache, and checks it matches the computed one.
async fn until_hit(url: &str, query: &Value) -> Value {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let (computed, cache) = post(url, None, query).await;
        assert!(
            cache.is_some(),
            "an anonymous query's answer is kept: {computed}"
        );
        let (again, cache) = post(url, None, query).await;
        if cache.as_deref() == Some("hit") {
            if again == computed {
                return again;
            }
            // A hit may only differ from an answer computed before a change.
            let (now, _) = post(url, None, query).await;
            assert_eq!(now, again, "a hit answers what the database holds");
            return again;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no answer came from the cache in {PATIENCE:?}");
}

fn registered(answer: &Value) -> i64 {
    answer["data"]["courses"]["edges"][0]["node"]["sections"][0]["registeredCount"]
        .as_i64()
        .unwrap_or_else(|| panic!("no count in {answer}"))
}

const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";

async fn a_repeated_anonymous_query_is_answered_from_the_cache_until_a_write(app: TestApp) {
    let campus = app.campus("Cache U").await;
    let (_, section) = app
        .course_with_section(&campus, "Cached", Some(10), "MONDAY")
        .await;
    let url = format!("http://{}/graphql", app.serve().await);
    let query = json!({ "query": DISCOVERY });

    let (first, cache) = post(&url, None, &query).await;
    assert_eq!(cache.as_deref(), Some("miss"), "{first}");
    let second = until_hit(&url, &query).await;
    assert_eq!(first, second, "a hit answers exactly what was computed");
    assert_eq!(registered(&second), 0);

    // A write through the API: the next answer is computed again and shows it.
    let (_, token) = app.student(&campus).await;
    let enrolled = enroll(&url, &token, section).await;
    assert_eq!(
        enrolled["data"]["enroll"]["status"], "REGISTERED",
        "{enrolled}"
    );
    let (third, cache) = post(&url, None, &query).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(registered(&third), 1);
    assert_eq!(
        third["data"]["courses"]["edges"][0]["node"]["sections"][0]["seatsAvailable"],
        9
    );
    assert_eq!(until_hit(&url, &query).await, third);

    // A write straight to the database, not through this server, invalidates too.
    app.db
        .execute_unprepared("UPDATE courses SET name = 'Renamed outside'")
        .await
        .unwrap();
    let (fourth, cache) = post(&url, None, &query).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(
        fourth["data"]["courses"]["edges"][0]["node"]["name"],
        "Renamed outside"
    );
}

async fn only_anonymous_error_free_queries_are_kept(app: TestApp) {
    let campus = app.campus("Cache V").await;
    let (course, _) = app
        .course_with_section(&campus, "Kept", None, "TUESDAY")
        .await;
    let url = format!("http://{}/graphql", app.serve().await);
    let (_, token) = app.student(&campus).await;

    // Signed in: what the viewer sees depends on who asks, so nothing is kept.
    let mine = "{ me { id } courses(first: 5) { edges { node { viewerEnrollment { id } } } } }";
    let mine = json!({ "query": mine });
    for _ in 0..2 {
        let (answer, cache) = post(&url, Some(&token), &mine).await;
        assert!(answer.get("errors").is_none(), "{answer}");
        assert_eq!(cache, None);
    }
    // An answer with errors is not kept.
    let failing = "query($id: UUID!) { course(id: $id) { id } user(id: $id) { id } }";
    let failing = json!({ "query": failing, "variables": { "id": course } });
    for _ in 0..2 {
        let (answer, cache) = post(&url, None, &failing).await;
        assert_eq!(error_code(&answer), "UNAUTHENTICATED", "{answer}");
        assert_eq!(cache, None);
    }
    // A mutation is never answered from the cache.
    let mutation = json!({ "query": ENROLL, "variables": { "s": course } });
    for _ in 0..2 {
        let (answer, cache) = post(&url, None, &mutation).await;
        assert_eq!(error_code(&answer), "UNAUTHENTICATED", "{answer}");
        assert_eq!(cache, None);
    }
    // Each response media type has its own entry; GET requests are kept too.
    let query = json!({ "query": format!("{{ course(id: \"{course}\") {{ name }} }}") });
    let (_, cache) = post(&url, None, &query).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    until_hit(&url, &query).await;
    let other_media = reqwest::Client::new()
        .post(&url)
        .header("accept", "application/graphql-response+json")
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(other_media.headers()["x-cache"], "miss");
    assert!(
        other_media.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/graphql-response+json")
    );
    let get = |url: String| async move {
        let response = reqwest::Client::new()
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let cache = response
            .headers()
            .get("x-cache")
            .map(|v| v.to_str().unwrap().to_owned());
        (response.json::<Value>().await.unwrap(), cache)
    };
    let get_url = format!(
        "{url}?query=%7B%20courses(first%3A%201)%20%7B%20edges%20%7B%20node%20%7B%20name\
         %20%7D%20%7D%20%7D%20%7D"
    );
    let mut hit = false;
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let (first, cache) = get(get_url.clone()).await;
        assert!(cache.is_some(), "{first}");
        let (second, cache) = get(get_url.clone()).await;
        assert_eq!(first, second);
        if cache.as_deref() == Some("hit") {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hit, "a GET query is answered from the cache");
}

both_backends!(
    a_repeated_anonymous_query_is_answered_from_the_cache_until_a_write,
    only_anonymous_error_free_queries_are_kept
);

/// Two replicas on one PostgreSQL database: a write through one is seen at once through the
/// other's cache, with no notification needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_another_replica_invalidates_at_once() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    assert_eq!(app.backend, Backend::Postgres);
    let campus = app.campus("Replicas").await;
    let (_, section) = app
        .course_with_section(&campus, "Replicated", Some(5), "FRIDAY")
        .await;
    let students = app.students(&campus, 3).await;
    let one = Server::start(&app.database_url, &[], None).await;
    let other = Server::start(&app.database_url, &[], None).await;
    let one = format!("http://{}/graphql", one.address);
    let other = format!("http://{}/graphql", other.address);
    let query = json!({ "query": DISCOVERY });
    for (n, (_, token)) in students.iter().enumerate() {
        // The other replica holds an answer with the count so far…
        assert_eq!(registered(&until_hit(&other, &query).await), n as i64);
        let enrolled = enroll(&one, token, section).await;
        parse_id(&enrolled["data"]["enroll"]["id"]);
        // …and straight after the other replica answered the mutation: no stale count.
        let (answer, _) = post(&other, None, &query).await;
        assert_eq!(registered(&answer), n as i64 + 1, "{answer}");
    }
}

/// `ROSTER_RESPONSE_CACHE=false` turns the cache off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("off.db").display());
    let server = Server::start(&url, &[("ROSTER_RESPONSE_CACHE", "false")], None).await;
    let url = format!("http://{}/graphql", server.address);
    for _ in 0..2 {
        let (answer, cache) = post(&url, None, &json!({ "query": DISCOVERY })).await;
        assert!(answer.get("errors").is_none(), "{answer}");
        assert_eq!(cache, None);
    }
}

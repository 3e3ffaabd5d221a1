//! What operators and frontends rely on around the API: metrics, request ids, CORS,
//! compression, automatic persisted queries, and a graceful stop.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use crate::helpers::{Backend, Server, TestApp, both_backends, post_json, serve};
use futures_util::{SinkExt, StreamExt};
use reqwest::header;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

/// The value of the sample `name{labels}` in a Prometheus exposition, or 0.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let matches = series.starts_with(name)
                && labels
                    .split(',')
                    .all(|label| label.is_empty() || series.contains(label));
            matches.then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

async fn metrics_count_operations_transitions_and_subscriptions(app: TestApp) {
    let address = app.serve().await;
    let http = reqwest::Client::new();
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Metered", Some(5), "MONDAY")
        .await;
    let (_, token) = app.student(&campus).await;
    let scrape = || async {
        http.get(format!("http://{address}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = scrape().await;
    // The recorder is the process's: a name of this run's own keeps the counts apart.
    let operation = format!("Metered{:?}", app.backend);
    let query = format!("mutation {operation}($s: UUID!) {{ enroll(sectionId: $s) {{ id }} }}");
    let enroll = json!({
        "query": query, "variables": { "s": section }, "operationName": operation,
    });
    for _ in 0..2 {
        http.post(format!("http://{address}/graphql"))
            .bearer_auth(&token)
            .json(&enroll)
            .send()
            .await
            .unwrap();
    }
    let after = scrape().await;
    let requests = |text: &str, outcome: &str| {
        sample(
            text,
            "roster_graphql_requests_total",
            &format!("operation=\"{operation}\",outcome=\"{outcome}\""),
        )
    };
    assert_eq!(
        requests(&after, "ok") - requests(&before, "ok"),
        1.0,
        "{after}"
    );
    assert_eq!(
        requests(&after, "error") - requests(&before, "error"),
        1.0,
        "the second is ALREADY_ENROLLED"
    );
    let transitions = |text: &str| {
        sample(
            text,
            "roster_enrollment_transitions_total",
            "from=\"NEW\",to=\"REGISTERED\"",
        )
    };
    assert!(transitions(&after) - transitions(&before) >= 1.0, "{after}");
    assert!(
        sample(
            &after,
            "roster_graphql_request_duration_seconds_count",
            &format!("operation=\"{operation}\"")
        ) >= 2.0
    );
    assert!(
        after.contains("roster_db_pool_connections{state=\"in_use\"}"),
        "{after}"
    );
    assert!(after.contains("roster_subscriptions_active"), "{after}");
}

async fn request_ids_cors_and_compression(app: TestApp) {
    let state = app
        .state_with(|s| s.cors_origins = vec!["https://app.example".into()])
        .await;
    let address = serve(state).await;
    let http = reqwest::Client::new();
    let url = format!("http://{address}/graphql");
    let query =
        json!({ "query": "{ courses(first: 100) { edges { node { id name description } } } }" });

    let response = http.post(&url).json(&query).send().await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    let response = http
        .post(&url)
        .header("x-request-id", "abc-123")
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-request-id"],
        "abc-123",
        "a client's id is kept"
    );

    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header(header::ORIGIN, "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let stranger = http
        .post(&url)
        .header(header::ORIGIN, "https://evil.example")
        .json(&query)
        .send()
        .await
        .unwrap();
    assert!(
        stranger
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // A big enough answer is compressed for clients that accept it.
    for i in 0..40 {
        app.create_course(
            &app.campus(&format!("Org {i}")).await.teacher_token,
            json!({ "name": format!("Course {i}"), "description": "x".repeat(400) }),
        )
        .await;
    }
    let compressed = http
        .post(&url)
        .header(header::ACCEPT_ENCODING, "gzip")
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()[header::CONTENT_ENCODING], "gzip");
}

async fn automatic_persisted_queries(app: TestApp) {
    let url = format!("http://{}/graphql", app.serve().await);
    let query = "{ courses(first: 3) { totalCount } }";
    let hash = format!("{:x}", Sha256::digest(query.as_bytes()));
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });

    let unknown = post_json(&url, None, &json!({ "extensions": extensions })).await;
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND",
        "{unknown}"
    );
    let registered = json!({ "query": query, "extensions": extensions });
    let registered = post_json(&url, None, &registered).await;
    assert_eq!(
        registered["data"]["courses"]["totalCount"], 0,
        "{registered}"
    );
    // Now the hash alone will do, over GET too (cacheable).
    let by_hash: Value = reqwest::Client::new()
        .get(&url)
        .query(&[("extensions", extensions.to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_hash["data"]["courses"]["totalCount"], 0, "{by_hash}");

    // A mutation registered over POST is not run again by a GET carrying its hash alone
    // (GraphQL over HTTP: mutations over GET are 405, whatever form the document takes).
    let campus = app.campus("Org").await;
    let (student, token) = (campus.teacher.id, campus.teacher_token.clone());
    let rename = format!(
        "mutation {{ createTeam(name: \"P{}\", passKey: \"correct horse battery\") {{ id }} }}",
        &student.simple().to_string()[..20]
    );
    let hash = format!("{:x}", Sha256::digest(rename.as_bytes()));
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let created = post_json(
        &url,
        Some(&token),
        &json!({ "query": rename, "extensions": extensions }),
    )
    .await;
    assert!(created["errors"].is_null(), "{created}");
    let replayed = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&token)
        .query(&[("extensions", extensions.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 405);
    assert_eq!(replayed.headers()[header::ALLOW], "POST");
    let teams = post_json(
        &url,
        Some(&token),
        &json!({ "query": "{ me { teams { id } } }" }),
    )
    .await;
    assert_eq!(
        teams["data"]["me"]["teams"].as_array().map(Vec::len),
        Some(1),
        "{teams}"
    );
}

both_backends!(
    metrics_count_operations_transitions_and_subscriptions,
    request_ids_cors_and_compression,
    automatic_persisted_queries
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_websockets_with_a_close_frame_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let mut server = Server::start(&url, &[], None).await;
    let port = server.address.port();
    let mut request = format!("ws://127.0.0.1:{port}/graphql/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(Message::Text(
            json!({ "type": "connection_init" }).to_string().into(),
        ))
        .await
        .unwrap();
    assert!(
        matches!(socket.next().await, Some(Ok(Message::Text(_)))),
        "connection_ack"
    );

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame within 5 s");
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001), "going away");
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "roster serve did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_error_shows_only_a_correlation_id_that_the_log_has() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::new(Backend::Sqlite).await;
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let course = json!({ "name": "Certified", "certificateValidityMonths": 6 });
    let (_, [section]) = app
        .course_with_sections(&t, course, [json!({ "name": "A" })])
        .await;
    let (_, student) = app.student(&campus).await;
    let enrolled = app.enroll(&student, section).await.expect("enrolled");
    // The database refuses certificates, with a message a client must never see.
    let refuse = "CREATE TRIGGER refuse BEFORE INSERT ON certifications \
        BEGIN SELECT RAISE(ABORT, 'secret table detail'); END";
    app.db.execute_unprepared(refuse).await.unwrap();

    let log = tempfile::NamedTempFile::new().unwrap();
    let server = Server::start(
        &app.database_url,
        &[("ROSTER_LOG_FORMAT", "json")],
        Some(log.reopen().unwrap()),
    )
    .await;
    let url = format!("http://{}/graphql", server.address);
    let complete = "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { status } }";
    let complete = json!({ "query": complete, "variables": { "e": enrolled.id } });
    let answer = post_json(&url, Some(&t), &complete).await;
    drop(server);
    let error = &answer["errors"][0];
    assert_eq!(error["extensions"]["code"], "INTERNAL", "{answer}");
    let text = answer.to_string();
    assert!(
        !text.contains("secret table detail") && !text.to_lowercase().contains("certifications"),
        "database text reached the client: {text}"
    );
    let id = error["extensions"]["correlationId"]
        .as_str()
        .expect("a correlation id");
    let logged = std::fs::read_to_string(log.path()).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("{id} not in the log:\n{logged}"));
    assert!(
        line.contains("secret table detail"),
        "the log has the cause: {line}"
    );
    assert!(
        serde_json::from_str::<Value>(line).is_ok(),
        "ROSTER_LOG_FORMAT=json writes JSON lines: {line}"
    );
}

/// `/metrics` shows what happened before its first scrape, and counts every GraphQL request:
/// refused documents and answers from the response cache too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_from_start_up_including_refusals_and_cached_answers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let server = Server::start(&url, &[], None).await;
    let base = format!("http://{}", server.address);
    let http = reqwest::Client::new();
    let early =
        json!({ "query": "query Early { courses { totalCount } }", "operationName": "Early" });
    http.post(format!("{base}/graphql"))
        .json(&early)
        .send()
        .await
        .unwrap();
    for document in ["{ nope }", "{ courses(", "{ __schema { types { nope } } }"] {
        http.post(format!("{base}/graphql"))
            .json(&json!({ "query": document }))
            .send()
            .await
            .unwrap();
    }
    // Refused before any document is read: a bad token (401), a body that is not JSON (415),
    // one over the size limit (413) and a batch over its limit.
    let refusals = [
        http.post(format!("{base}/graphql"))
            .bearer_auth("not-a-token")
            .json(&early),
        http.post(format!("{base}/graphql"))
            .header("content-type", "text/plain")
            .body("{ courses { totalCount } }"),
        http.post(format!("{base}/graphql"))
            .json(&vec![json!({ "query": "{ courses { totalCount } }" }); 11]),
    ];
    for request in refusals {
        let status = request.send().await.unwrap().status().as_u16();
        assert!([200, 401, 415].contains(&status), "{status}");
    }
    // The size is refused on the declared length alone. Sent without its body: a client still
    // writing a megabyte can find the connection closed under it once the 413 has gone out.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut raw = tokio::net::TcpStream::connect(server.address)
            .await
            .unwrap();
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            server.address,
            (1 << 20) + 1
        );
        raw.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0; 64];
        let n = raw.read(&mut answer).await.unwrap();
        let status_line = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    }
    let get = format!("{base}/graphql?query=%7B%20courses%20%7B%20totalCount%20%7D%20%7D");
    let mut hits = 0.0;
    for _ in 0..3 {
        let response = http.get(&get).send().await.unwrap();
        if response
            .headers()
            .get("x-cache")
            .is_some_and(|v| v == "hit")
        {
            hits += 1.0;
        }
    }
    assert!(
        hits >= 1.0,
        "the repeated anonymous GET is answered from the cache"
    );
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let requests = |labels: &str| sample(&text, "roster_graphql_requests_total", labels);
    assert_eq!(
        requests("operation=\"Early\",outcome=\"ok\""),
        1.0,
        "counted before the first scrape: {text}"
    );
    assert_eq!(
        requests("operation=\"refused\",outcome=\"error\""),
        7.0,
        "three documents, a token, a media type, a size and a batch: {text}"
    );
    assert_eq!(
        requests("operation=\"cached\",outcome=\"ok\""),
        hits,
        "{text}"
    );
}

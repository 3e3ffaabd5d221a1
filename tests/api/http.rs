//! GraphQL over HTTP: status codes, content types and methods, through the real router.

use crate::helpers::{TestApp, both_backends};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use uuid::Uuid;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

async fn post(app_url: &str, accept: Option<&str>, body: Value) -> (StatusCode, String, Value) {
    let mut request = reqwest::Client::new().post(app_url).json(&body);
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    (status, content_type, response.json().await.unwrap())
}

async fn status_codes_and_media_types_follow_the_graphql_over_http_spec(app: TestApp) {
    let url = format!("http://{}/graphql", app.serve().await);
    let ok = json!({ "query": "{ courses(first: 1) { totalCount } }" });
    let unparsable = json!({ "query": "{ courses(" });
    let invalid = json!({ "query": "{ noSuchField }" });
    let uncoerced = json!({
        "query": "query($n: Int) { courses(first: $n) { totalCount } }",
        "variables": { "n": "many" },
    });

    // application/graphql-response+json: request errors are 400, without `data`.
    let (status, media, body) = post(&url, Some(GRAPHQL_RESPONSE), ok.clone()).await;
    assert_eq!(
        (status, media.starts_with(GRAPHQL_RESPONSE)),
        (StatusCode::OK, true)
    );
    assert_eq!(body["data"]["courses"]["totalCount"], 0);
    for (request, code) in [
        (&unparsable, "GRAPHQL_VALIDATION_FAILED"),
        (&invalid, "GRAPHQL_VALIDATION_FAILED"),
        (&uncoerced, "BAD_USER_INPUT"),
    ] {
        let (status, media, body) = post(&url, Some(GRAPHQL_RESPONSE), request.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}: {body}");
        assert!(media.starts_with(GRAPHQL_RESPONSE));
        assert!(body.get("data").is_none(), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], code, "{body}");
    }
    // An execution error is still 200: the operation ran.
    let withdraw = format!(
        "mutation {{ withdraw(enrollmentId: \"{}\") {{ status }} }}",
        Uuid::nil()
    );
    let (status, _, body) = post(&url, Some(GRAPHQL_RESPONSE), json!({ "query": withdraw })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    // A bad token fails before execution: 401.
    let response = reqwest::Client::new()
        .post(&url)
        .header(header::ACCEPT, GRAPHQL_RESPONSE)
        .bearer_auth("nonsense")
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // application/json (and no Accept at all): always 200, for older clients.
    for accept in [Some("application/json"), None, Some("*/*")] {
        let (status, media, body) = post(&url, accept, unparsable.clone()).await;
        assert_eq!(status, StatusCode::OK, "{accept:?}");
        assert!(media.starts_with("application/json"), "{accept:?}: {media}");
        assert!(body["errors"].is_array());
        // A request error never executed: the response has no `data` entry (GraphQL spec,
        // "Response Format"), whatever the media type.
        assert!(body.get("data").is_none(), "{accept:?}: {body}");
    }

    // POST needs a JSON body; GET runs queries, never mutations.
    let response = reqwest::Client::new()
        .post(&url)
        .body(ok.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = reqwest::Client::new()
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{ not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let query = reqwest::Client::new()
        .get(&url)
        .query(&[("query", "{ courses(first: 1) { totalCount } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), StatusCode::OK);
    let mutation = reqwest::Client::new()
        .get(&url)
        .query(&[(
            "query",
            "mutation { createCourse(input: { name: \"X\" }) { id } }",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(mutation.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(mutation.headers()[header::ALLOW], "POST");
    let named = reqwest::Client::new()
        .get(&url)
        .query(&[
            (
                "query",
                "query Q { me { id } } mutation M { createCourse(input: { name: \"X\" }) { id } }",
            ),
            ("operationName", "Q"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        named.status(),
        StatusCode::OK,
        "the query of a mixed document may run over GET"
    );
    // A NUL in `operationName` is bad input like a NUL anywhere else.
    let named = json!({ "query": "query Q { courses { totalCount } }", "operationName": "Q\u{0}" });
    let (status, _, body) = post(&url, Some(GRAPHQL_RESPONSE), named).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "operationName",
        "{body}"
    );
    // An empty batch is a request error that says so, not a parse error of an empty document.
    for accept in [Some(GRAPHQL_RESPONSE), None] {
        let (status, _, body) = post(&url, accept, json!([])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{accept:?}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("at least one operation"), "{body}");
    }
    let _ = app;
}

both_backends!(status_codes_and_media_types_follow_the_graphql_over_http_spec);

async fn graphiql_comes_from_the_server_itself(app: TestApp) {
    let base = format!("http://{}", app.serve().await);
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{base}/graphql"))
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("GraphiQL"), "{page}");
    assert!(
        !page.contains("https://") && !page.contains("http://"),
        "no outside URL in the page"
    );
    let assets: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| s.starts_with("/graphiql/assets/"))
        .collect();
    assert_eq!(assets.len(), 5, "{assets:?}");
    for asset in assets {
        let response = http.get(format!("{base}{asset}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let kind = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            kind.starts_with("text/javascript") || kind.starts_with("text/css"),
            "{asset}: {kind}"
        );
        assert!(response.bytes().await.unwrap().len() > 5000, "{asset}");
    }
    let missing = http
        .get(format!("{base}/graphiql/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

both_backends!(graphiql_comes_from_the_server_itself);

/// Values that do not coerce to their argument's type fail the whole request before anything
/// runs: 400 under application/graphql-response+json, no `data`, `BAD_USER_INPUT` naming the
/// argument; a mutation beside them does not run.
async fn values_that_do_not_coerce_are_request_errors(app: TestApp) {
    let url = format!("http://{}/graphql", app.serve().await);
    let json = "application/graphql-response+json";
    let campus = app.campus("North").await;
    let (_, section) = app
        .course_with_section(&campus, "Coerced", Some(5), "MONDAY")
        .await;
    let cases = [
        (
            json!({ "query": "{ courses(first: 99999999999) { totalCount } }" }),
            "first",
        ),
        (
            json!({ "query": "{ course(id: \"not-a-uuid\") { id } }" }),
            "id",
        ),
        (
            json!({ "query": "query($i: UUID!) { course(id: $i) { id } }", "variables": { "i": "nope" } }),
            "id",
        ),
        (
            json!({ "query": "query($n: Int) { courses(first: $n) { totalCount } }", "variables": { "n": 4_294_967_296_u64 } }),
            "first",
        ),
        (
            json!({ "query": "{ courses(filter: 5) { totalCount } }" }),
            "filter",
        ),
        (
            json!({ "query": "query($f: CourseFilter) { courses(filter: $f) { totalCount } }",
                    "variables": { "f": { "weekday": "FUNDAY" } } }),
            "filter.weekday",
        ),
        (
            json!({ "query": "query($f: EnrollmentFilter) { enrollments(filter: $f) { totalCount } }",
                    "variables": { "f": { "enrolledAfter": "yesterday" } } }),
            "filter.enrolledAfter",
        ),
        // A variable of a non-null type, missing or null (graphql-js refuses both).
        (
            json!({ "query": "query($n: Int!) { courses(first: $n) { totalCount } }", "variables": {} }),
            "$n",
        ),
        (
            json!({ "query": "query($n: Int!) { courses(first: $n) { totalCount } }", "variables": { "n": null } }),
            "$n",
        ),
        (
            json!({ "query": "query($b: Boolean!) { courses { totalCount @include(if: $b) } }" }),
            "$b",
        ),
        (
            json!({ "query": "query($c: UUID!) { course(id: $c) { id } }", "variables": {} }),
            "$c",
        ),
    ];
    for (body, field) in cases {
        let (status, _, answer) = post(&url, Some(json), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer.get("data").is_none(),
            "a request error has no data: {answer}"
        );
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{answer}"
        );
        assert_eq!(
            answer["errors"][0]["extensions"]["field"], field,
            "{answer}"
        );
    }
    // A mutation beside a bad value does not run.
    let (_, token) = app.student(&campus).await;
    let before = app.snapshot().await;
    let response = reqwest::Client::new()
        .post(&url)
        .header("accept", json)
        .bearer_auth(&token)
        .json(&json!({
            "query": "mutation($s: UUID!) { a: enroll(sectionId: $s) { id } b: withdraw(enrollmentId: \"bad\") { id } }",
            "variables": { "s": section },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.snapshot().await, before, "nothing ran");
}

both_backends!(values_that_do_not_coerce_are_request_errors);

/// `promtool check metrics` (Prometheus's own linter, from Debian's `prometheus` package)
/// accepts a scrape of `/metrics` taken after traffic of every kind the metrics count: queries
/// that succeed and fail, a cached answer, a committed transition, a live subscription and a
/// refused WebSocket upgrade. Without promtool the test says so, and fails under CI.
async fn a_scrape_of_metrics_passes_promtool(app: TestApp) {
    let Some(promtool) = promtool() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is missing: .ci/run installs Debian's prometheus package"
        );
        eprintln!(
            "SKIPPED: promtool is missing (apt-get install prometheus); /metrics was NOT checked"
        );
        return;
    };
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Metered", Some(2), "MONDAY")
        .await;
    let (_, token) = app.student(&campus).await;
    let state = app
        .state_with(|s| s.limits.connections_per_client = 1)
        .await;
    let address = crate::helpers::serve(state).await;
    let url = format!("http://{address}/graphql");
    let anonymous = json!({ "query": "query Catalog { courses(first: 5) { totalCount } }" });
    for _ in 0..2 {
        post(&url, None, anonymous.clone()).await;
    }
    post(&url, None, json!({ "query": "{ noSuchField }" })).await;
    let enroll = "mutation Enroll($s: UUID!) { enroll(sectionId: $s) { status } }";
    let body = json!({ "query": enroll, "variables": { "s": section } });
    let enrolled = crate::helpers::post_json(&url, Some(&token), &body).await;
    assert_eq!(
        enrolled["data"]["enroll"]["status"], "REGISTERED",
        "{enrolled}"
    );
    let mut live = crate::subscriptions::Client::ready(address, false, serde_json::json!({})).await;
    live.seats("seats", section, "isFull").await;
    live.data_of("seats").await;
    assert_eq!(
        crate::floods::upgrade(address).await,
        Err(429),
        "a second connection from this client is refused"
    );

    let scrape = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("a scrape")
        .text()
        .await
        .expect("text");
    for family in [
        "roster_graphql_requests_total",
        "roster_response_cache_total",
        "roster_enrollment_transitions_total",
        "roster_subscriptions_active",
        "roster_websocket_refused_total",
    ] {
        assert!(scrape.contains(family), "{family} missing from:\n{scrape}");
    }
    let mut check = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    use std::io::Write as _;
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.as_bytes())
        .expect("the scrape goes to promtool");
    let checked = check.wait_with_output().expect("promtool ends");
    assert!(
        checked.status.success(),
        "promtool check metrics failed:\n{}{}\n--- the scrape:\n{scrape}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr),
    );
}

/// promtool, where Debian's `prometheus` package puts it.
fn promtool() -> Option<&'static str> {
    ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
}

both_backends!(a_scrape_of_metrics_passes_promtool);

/// An explicit `null` for an argument that has a default is null, not the default (the
/// specification's `CoerceArgumentValues`; graphql-js hands the resolver `null`, see
/// tests/node/arguments.test.mjs): Roster refuses it with `BAD_USER_INPUT` naming the
/// argument, where it served the default page of 20 before. A variable left out still gives
/// the default, and so does an argument left out.
async fn an_explicit_null_is_not_the_arguments_default(app: TestApp) {
    let campus = app.campus("Org").await;
    let teacher = &campus.teacher_token;
    for n in 0..21 {
        let input = json!({ "name": format!("Course {n}"), "code": format!("C-{n}") });
        let course = app.create_course(teacher, input).await;
        app.create_section(teacher, course, json!({ "name": "A", "capacity": 5 }))
            .await;
    }
    let url = format!("http://{}/graphql", app.serve().await);
    let query = "query($v: Int) { courses(first: $v) { edges { cursor } } }";
    let page = |answer: &Value| answer["data"]["courses"]["edges"].as_array().map(Vec::len);

    let (_, _, left_out) = post(&url, None, json!({ "query": query, "variables": {} })).await;
    assert_eq!(page(&left_out), Some(20), "{left_out}");
    let (_, _, no_argument) = post(
        &url,
        None,
        json!({ "query": "{ courses { edges { cursor } } }" }),
    )
    .await;
    assert_eq!(page(&no_argument), Some(20), "{no_argument}");

    let null_variable = json!({ "query": query, "variables": { "v": null } });
    let null_literal = json!({ "query": "{ courses(first: null) { edges { cursor } } }" });
    for body in [null_variable, null_literal] {
        let (status, _, refused) = post(&url, Some(GRAPHQL_RESPONSE), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{refused}"
        );
        assert_eq!(
            refused["errors"][0]["extensions"]["field"], "first",
            "{refused}"
        );
        assert!(refused.get("data").is_none_or(Value::is_null), "{refused}");
    }

    // A nullable argument without a default takes null as it is.
    let after = "query($a: String) { courses(first: 1, after: $a) { edges { cursor } } }";
    let (_, _, from_start) = post(
        &url,
        None,
        json!({ "query": after, "variables": { "a": null } }),
    )
    .await;
    assert_eq!(page(&from_start), Some(1), "{from_start}");
}

both_backends!(an_explicit_null_is_not_the_arguments_default);

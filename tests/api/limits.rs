//! Query limits: each exceeded limit is a `LIMIT_EXCEEDED` error naming it, and changes nothing.

use std::time::Duration;

use crate::helpers::{TestApp, both_backends, post_json};
use async_graphql::{BatchRequest, Request};
use reqwest::{StatusCode, header};
use roster::graphql::limits::Limits;
use serde_json::{Value, json};

/// The `(code, limit)` of the first error.
fn limit_of(response: &Value) -> (String, String) {
    let extensions = &response["errors"][0]["extensions"];
    (
        extensions["code"].as_str().unwrap_or_default().to_owned(),
        extensions["limit"].as_str().unwrap_or_default().to_owned(),
    )
}

fn exceeded(limit: &str) -> (String, String) {
    ("LIMIT_EXCEEDED".into(), limit.into())
}

/// Runs `query` on a state with `limits`.
async fn with_limits(app: &TestApp, limits: Limits, query: &str) -> Value {
    let state = app.state_with(|s| s.limits = limits).await;
    let response = state
        .execute(BatchRequest::Single(Request::new(query)), None)
        .await;
    serde_json::to_value(response).unwrap()
}

async fn depth_complexity_root_fields_and_aliases(app: TestApp) {
    let nest = |levels: usize| {
        let mut query = "name".to_owned();
        for _ in 0..levels {
            query = format!("sections {{ course {{ {query} }} }}");
        }
        format!("{{ courses {{ edges {{ node {{ {query} }} }} }} }}")
    };
    assert_eq!(
        limit_of(&app.gql(None, &nest(7), json!({})).await),
        exceeded("depth")
    );
    assert!(
        app.gql(None, &nest(2), json!({}))
            .await
            .get("errors")
            .is_none()
    );

    let wide = format!(
        "{{ courses {{ edges {{ node {{ {} }} }} }} }}",
        "id ".repeat(600)
    );
    assert_eq!(
        limit_of(&app.gql(None, &wide, json!({})).await),
        exceeded("complexity")
    );

    let roots = format!("{{ {} }}", "courses { totalCount } ".repeat(21));
    assert_eq!(
        limit_of(&app.gql(None, &roots, json!({})).await),
        exceeded("rootFields")
    );
    let fine = format!("{{ {} }}", "courses { totalCount } ".repeat(20));
    assert!(
        app.gql(None, &fine, json!({}))
            .await
            .get("errors")
            .is_none()
    );

    let aliases: String = (0..31).map(|i| format!("a{i}: id ")).collect();
    let aliased = format!("{{ courses {{ edges {{ node {{ {aliases} }} }} }} }}");
    assert_eq!(
        limit_of(&app.gql(None, &aliased, json!({})).await),
        exceeded("aliases")
    );
}

async fn time_limit_and_introspection_switch(app: TestApp) {
    let campus = app.campus("Org").await;
    app.course_with_section(&campus, "Slow", Some(5), "MONDAY")
        .await;
    let query = "{ courses(first: 5) { totalCount edges { node { name sections { name } } } } }";
    let stopped = with_limits(
        &app,
        Limits {
            timeout: Duration::ZERO,
            ..Limits::default()
        },
        query,
    )
    .await;
    assert_eq!(limit_of(&stopped), exceeded("timeout"), "{stopped}");
    let ran = with_limits(&app, Limits::default(), query).await;
    assert_eq!(ran["data"]["courses"]["totalCount"], 1, "{ran}");

    let introspect = "{ __schema { queryType { name } } }";
    let open = with_limits(&app, Limits::default(), introspect).await;
    assert_eq!(open["data"]["__schema"]["queryType"]["name"], "Query");
    let closed = with_limits(
        &app,
        Limits {
            introspection: false,
            ..Limits::default()
        },
        introspect,
    )
    .await;
    assert_eq!(
        closed["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "introspection off is refused with an error, not a silent null: {closed}"
    );
    assert!(closed.get("data").is_none_or(Value::is_null), "{closed}");
    let off = Limits {
        introspection: false,
        ..Limits::default()
    };
    let hidden =
        "query { me { id } ...F } fragment F on Query { __type(name: \"Course\") { name } }";
    let refused = with_limits(&app, off.clone(), hidden).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{refused}"
    );
    // __typename stays; a misspelt field names no other field.
    let typename = with_limits(&app, off.clone(), "{ __typename }").await;
    assert_eq!(typename["data"]["__typename"], "Query", "{typename}");
    let misspelt = with_limits(&app, off.clone(), "{ coursez { totalCount } }").await;
    let message = misspelt["errors"][0]["message"].as_str().unwrap();
    assert!(
        !message.contains("courses") && !message.contains("Did you mean"),
        "no suggestions: {message}"
    );
    let suggested = with_limits(&app, Limits::default(), "{ coursez { totalCount } }").await;
    assert!(
        suggested["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("courses"),
        "with introspection on, suggestions help: {suggested}"
    );
}

async fn body_size_and_batch_size_over_http(app: TestApp) {
    let url = format!("http://{}/graphql", app.serve().await);
    let http = reqwest::Client::new();
    let huge =
        json!({ "query": format!("{{ courses {{ totalCount }} }} #{}", "x".repeat(1 << 20)) });
    // Its own client: the server refuses before reading the body and may close the
    // connection, which a pooled client would otherwise try to reuse.
    let response = reqwest::Client::new()
        .post(&url)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        limit_of(&response.json().await.unwrap()),
        exceeded("bodyBytes")
    );

    let one = json!({ "query": "{ courses { totalCount } }" });
    let batch = Value::Array(vec![one.clone(); 11]);
    // A request error: 400 under application/graphql-response+json, 200 under
    // application/json (GraphQL over HTTP), the same error either way.
    for (accept, status) in [
        ("application/graphql-response+json", StatusCode::BAD_REQUEST),
        ("application/json", StatusCode::OK),
    ] {
        let response = http
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, accept)
            .body(batch.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{accept}");
        assert_eq!(limit_of(&response.json().await.unwrap()), exceeded("batch"));
    }
    let fine = Value::Array(vec![one; 10]);
    let answers = post_json(&url, None, &fine).await;
    assert_eq!(answers.as_array().map(Vec::len), Some(10));
}

/// A syntax error is one line with its position in `locations`; an empty page has no next page
/// (there is no cursor to continue from).
async fn syntax_errors_and_empty_pages(app: TestApp) {
    let broken = with_limits(
        &app,
        Limits::default(),
        "{ courses(first: ) { totalCount } }",
    )
    .await;
    let error = &broken["errors"][0];
    let message = error["message"].as_str().unwrap();
    assert!(!message.contains('\n'), "one line: {message:?}");
    assert!(message.starts_with("syntax error: "), "{message}");
    assert_eq!(error["locations"][0]["line"], 1, "{broken}");
    assert_eq!(error["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");

    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Paged", Some(5), "MONDAY")
        .await;
    let (_, student) = app.student(&campus).await;
    app.enroll(&student, section).await.unwrap();
    let empty = app
        .ok(
            None,
            "{ courses(first: 0) { totalCount edges { cursor } pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(empty["courses"]["totalCount"], 1);
    assert_eq!(
        empty["courses"]["pageInfo"],
        json!({ "hasNextPage": false, "endCursor": null })
    );
    let mine = app
        .ok(
            Some(&campus.teacher_token),
            "{ enrollments(first: 0) { totalCount pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(mine["enrollments"]["totalCount"], 1);
    assert_eq!(mine["enrollments"]["pageInfo"]["hasNextPage"], false);
}

both_backends!(
    syntax_errors_and_empty_pages,
    depth_complexity_root_fields_and_aliases,
    time_limit_and_introspection_switch,
    body_size_and_batch_size_over_http
);

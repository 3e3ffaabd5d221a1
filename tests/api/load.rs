//! Load that holds (docs/design.md#registration-opening), on both databases: writes beyond the
//! write path's queue are refused at once with `UNAVAILABLE` (HTTP 503, `Retry-After`) instead
//! of waiting into the request timeout; every enrollment acknowledged exists exactly once, none
//! refused exists; discovery answers throughout.

use std::time::Duration;

use entity::{enrollment, types::Role};
use reqwest::{StatusCode, header};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, both_backends, serve};

both_backends!(writes_beyond_the_queue_are_shed_and_nothing_is_lost);

async fn writes_beyond_the_queue_are_shed_and_nothing_is_lost(app: TestApp) {
    let campus = app.campus("Storm U").await;
    let (_, section) = app
        .course_with_section(&campus, "Popular", Some(100), "MONDAY")
        .await;
    // A replica whose write path admits two writes at a time (the pool of four keeps two
    // connections for reads).
    let replica = app.state_with(|s| s.write_queue = Some(2)).await;
    let address = serve(replica).await;
    let mut students = Vec::new();
    for _ in 0..24 {
        let student = app.user(Role::Student, Some(campus.organization.id)).await;
        students.push((student.id, app.token(student.id)));
    }

    // Another writer holds the section (PostgreSQL: its row; SQLite: the write lock), so the
    // two admitted enrolls wait on it and the rest find the queue full.
    let held = app.db.begin().await.expect("begin");
    let hold = match app.backend {
        Backend::Postgres => format!("SELECT id FROM sections WHERE id = '{section}' FOR UPDATE"),
        Backend::Sqlite => {
            "UPDATE organizations SET name = name WHERE id = (SELECT id FROM organizations LIMIT 1)"
                .to_owned()
        }
    };
    held.execute_unprepared(&hold).await.expect("hold");

    let client = reqwest::Client::new();
    let url = format!("http://{address}/graphql");
    let requests = students.iter().map(|(_, token)| {
        client
            .post(&url)
            .bearer_auth(token)
            .header(header::ACCEPT, "application/graphql-response+json")
            .json(&json!({
                "query": "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }",
                "variables": { "s": section },
            }))
            .send()
    });
    let storm = tokio::spawn(futures_util::future::join_all(requests));
    // While the enrolls wait or are refused, discovery answers on the same replica.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let discovered = client
        .post(&url)
        .json(&json!({ "query": "{ courses(first: 5) { totalCount } }" }))
        .send()
        .await
        .expect("discovery answers");
    assert_eq!(discovered.status(), StatusCode::OK);
    let discovered: Value = discovered.json().await.unwrap();
    assert!(discovered["errors"].is_null(), "{discovered}");
    held.rollback().await.expect("release");

    let mut acknowledged = Vec::new();
    let mut shed = 0;
    for response in storm.await.expect("the storm") {
        let response = response.expect("an answer");
        let status = response.status();
        let retry = response.headers().get(header::RETRY_AFTER).cloned();
        let body: Value = response.json().await.expect("JSON");
        if status == StatusCode::OK {
            acknowledged.push(body["data"]["enroll"]["id"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "UNAVAILABLE",
                "{body}"
            );
            assert!(retry.is_some(), "a shed answer says when to retry");
            shed += 1;
        }
    }
    assert!(
        shed >= 20,
        "at most the two admitted got through: {shed} shed"
    );
    assert_eq!(acknowledged.len() + shed, students.len());
    // Every acknowledged enrollment exists once; nobody refused was enrolled.
    let rows = enrollment::Entity::find()
        .filter(enrollment::Column::SectionId.eq(section))
        .all(&app.db)
        .await
        .unwrap();
    let mut stored: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
    stored.sort();
    acknowledged.sort();
    assert_eq!(stored, acknowledged);
    app.assert_section_consistent(section).await;
    // Shed writes changed nothing: their students enroll now.
    let enrolled: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
    let (_, retry_token) = students
        .iter()
        .find(|(id, _)| !enrolled.contains(id))
        .expect("a shed student");
    app.enroll(retry_token, section)
        .await
        .expect("a retry succeeds");
}

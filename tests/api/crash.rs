//! Crash safety: `roster serve` is killed with SIGKILL in the middle of concurrent enrollments
//! and withdrawals, then started again on the same database. Every mutation that was answered
//! successfully is there, the invariants hold, and the server serves again.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::helpers::{Server, TestApp, both_backends, parse_id};
use entity::types::EnrollmentStatus;
use serde_json::{Value, json};
use uuid::Uuid;

const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";
const WITHDRAW: &str = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { id status } }";

async fn call(
    http: &reqwest::Client,
    address: SocketAddr,
    token: &str,
    query: &str,
    variables: Value,
) -> Option<Value> {
    let response = http
        .post(format!("http://{address}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

async fn a_killed_server_loses_no_answered_mutation(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Crash", Some(6), "MONDAY")
        .await;
    let students = app.students(&campus, 24).await;
    let mut server = Server::start(&app.database_url, &[], None).await;
    let address = server.address;

    // What the server confirmed: enrollment id -> the status it answered last.
    let confirmed: Arc<Mutex<HashMap<Uuid, String>>> = Arc::default();
    let http = reqwest::Client::new();
    let workers: Vec<_> = students
        .chunks(3)
        .map(|mine| {
            let (mine, confirmed, http) = (mine.to_vec(), confirmed.clone(), http.clone());
            tokio::spawn(async move {
                let mut held: HashMap<usize, Uuid> = HashMap::new();
                for round in 0.. {
                    let i = round % mine.len();
                    let answer = match held.remove(&i) {
                        Some(id) => call(&http, address, &mine[i].1, WITHDRAW, json!({ "e": id }))
                            .await
                            .map(|r| (r, "withdraw")),
                        None => call(&http, address, &mine[i].1, ENROLL, json!({ "s": section }))
                            .await
                            .map(|r| (r, "enroll")),
                    };
                    let Some((response, kind)) = answer else {
                        break;
                    };
                    let data = &response["data"][kind];
                    if let (Some(id), Some(status)) = (data["id"].as_str(), data["status"].as_str())
                    {
                        let id: Uuid = id.parse().unwrap();
                        confirmed.lock().unwrap().insert(id, status.to_owned());
                        if kind == "enroll" {
                            held.insert(i, id);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    let confirmed = confirmed.lock().unwrap().clone();
    assert!(
        confirmed.len() > 10,
        "the load did little before the kill: {}",
        confirmed.len()
    );

    let again = Server::start(&app.database_url, &[], None).await;
    let address = again.address;
    for (id, status) in &confirmed {
        let stored = format!("{:?}", app.enrollment_row(*id).await.status).to_uppercase();
        match status.as_str() {
            // A waiter may have been promoted by someone's later withdrawal.
            "WAITLISTED" => assert!(
                ["WAITLISTED", "REGISTERED", "WITHDRAWN"].contains(&stored.as_str()),
                "{id}: {stored}"
            ),
            "REGISTERED" => assert!(
                ["REGISTERED", "WITHDRAWN"].contains(&stored.as_str()),
                "{id}: {stored}"
            ),
            _ => assert_eq!(&stored, status, "{id}"),
        }
    }
    app.assert_section_consistent(section).await;

    // And it serves again: a read and a write.
    let (_, newcomer) = app.student(&campus).await;
    let enrolled = call(&http, address, &newcomer, ENROLL, json!({ "s": section }))
        .await
        .unwrap();
    assert!(
        enrolled["data"]["enroll"]["status"].is_string(),
        "{enrolled}"
    );
    let id = parse_id(&enrolled["data"]["enroll"]["id"]);
    assert_ne!(
        app.enrollment_row(id).await.status,
        EnrollmentStatus::Withdrawn
    );
    app.assert_section_consistent(section).await;
    drop(again);
    eprintln!(
        "[{:?}] {} answered mutations survived the kill",
        app.backend,
        confirmed.len()
    );
}

both_backends!(a_killed_server_loses_no_answered_mutation);

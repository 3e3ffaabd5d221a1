//! Floods over WebSocket, on both databases: a connection holds a bounded number of operations
//! (one more is refused with the protocol's `error`, the others go on), a client a bounded number
//! of connections (one more upgrade is refused with 429), and a subscription whose first read
//! cannot get the database fails alone, with `UNAVAILABLE`, as an `error` message. Another
//! socket's subscriptions keep receiving events throughout.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use roster::app::App;
use sea_orm::TransactionTrait;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
use uuid::Uuid;

use crate::{
    helpers::{Campus, TestApp, both_backends, post_json, serve},
    subscriptions::{Client, error_code_of},
};

const SEATS: &str = "registeredCount";

fn bearer(token: &str) -> Value {
    json!({ "Authorization": format!("Bearer {token}") })
}

/// A campus with one section of ten seats, and `students` students with their tokens.
async fn section_and_students(app: &TestApp, students: usize) -> (Uuid, Vec<(Uuid, String)>) {
    let campus: Campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Live", Some(10), "MONDAY")
        .await;
    (section, app.students(&campus, students).await)
}

/// Enrolls `token`'s holder in `section` through the server at `address` (so that its bus,
/// on SQLite the only one, carries the change).
async fn enroll_through(address: SocketAddr, token: &str, section: Uuid) {
    let query = "mutation($s: UUID!) { enroll(sectionId: $s) { status } }";
    let body = json!({ "query": query, "variables": { "s": section } });
    let answer = post_json(&format!("http://{address}/graphql"), Some(token), &body).await;
    assert_eq!(answer["data"]["enroll"]["status"], "REGISTERED", "{answer}");
}

/// The next message for `id`, which must be an `error` naming `code`; nothing else (no
/// `complete`) follows for it.
async fn expect_error(client: &mut Client, id: &str, code: &str) -> Value {
    let message = client.recv().await.expect("an answer");
    assert_eq!(message["id"], id, "{message}");
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(error_code_of(&message), code, "{message}");
    message
}

async fn a_connection_holds_a_bounded_number_of_subscriptions(app: TestApp) {
    let (section, people) = section_and_students(&app, 2).await;
    let state = app
        .state_with(|s| s.limits.subscriptions_per_connection = 5)
        .await;
    let address = serve(state).await;

    // Another user's socket, subscribed before the flood.
    let mut bystander = Client::ready(address, false, bearer(&people[1].1)).await;
    bystander.seats("theirs", section, SEATS).await;
    assert_eq!(bystander.data_of("theirs").await["sectionSeats"][SEATS], 0);

    let mut flooder = Client::ready(address, false, json!({})).await;
    for n in 0..5 {
        flooder.seats(&format!("s{n}"), section, SEATS).await;
        assert_eq!(
            flooder.data_of(&format!("s{n}")).await["sectionSeats"][SEATS],
            0
        );
    }
    for n in 5..8 {
        flooder.seats(&format!("s{n}"), section, SEATS).await;
        let refused = expect_error(&mut flooder, &format!("s{n}"), "LIMIT_EXCEEDED").await;
        assert_eq!(
            refused["payload"][0]["extensions"]["limit"],
            "subscriptions"
        );
    }

    // The connection stays open and its five subscriptions, and the other socket's, go on.
    enroll_through(address, &people[0].1, section).await;
    for n in 0..5 {
        assert_eq!(
            flooder.data_of(&format!("s{n}")).await["sectionSeats"][SEATS],
            1
        );
    }
    assert_eq!(bystander.data_of("theirs").await["sectionSeats"][SEATS], 1);

    // Completing one frees its place.
    flooder
        .send(json!({ "id": "s0", "type": "complete" }))
        .await;
    flooder.seats("again", section, SEATS).await;
    assert_eq!(flooder.data_of("again").await["sectionSeats"][SEATS], 1);
}

/// Opens a `graphql-transport-ws` connection, or the HTTP status that refused the upgrade.
pub(crate) async fn upgrade(address: SocketAddr) -> Result<(), u16> {
    let mut request = format!("ws://{address}/graphql/ws")
        .into_client_request()
        .expect("a request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("a header"),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("no answer to the upgrade: {e}"),
    }
}

async fn a_client_holds_a_bounded_number_of_connections(app: TestApp) {
    let (section, people) = section_and_students(&app, 2).await;
    let state: Arc<App> = app
        .state_with(|s| s.limits.connections_per_client = 3)
        .await;
    let address = serve(state).await;

    let mut held = Vec::new();
    for _ in 0..3 {
        let mut client = Client::ready(address, false, bearer(&people[1].1)).await;
        client.seats("seats", section, SEATS).await;
        assert_eq!(client.data_of("seats").await["sectionSeats"][SEATS], 0);
        held.push(client);
    }
    for _ in 0..3 {
        assert_eq!(upgrade(address).await, Err(429), "a fourth connection");
    }

    // The held connections keep receiving events while the extra ones are refused.
    enroll_through(address, &people[0].1, section).await;
    for client in &mut held {
        assert_eq!(client.data_of("seats").await["sectionSeats"][SEATS], 1);
    }

    // Closing one frees its place.
    drop(held.pop());
    let mut reopened = false;
    for _ in 0..50 {
        if upgrade(address).await.is_ok() {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened, "a closed connection's place was never freed");
}

async fn a_subscription_that_cannot_get_the_database_fails_alone(app: TestApp) {
    let (section, people) = section_and_students(&app, 2).await;
    let state = app
        .state_with(|s| {
            s.database.db_max_connections = Some(2);
            s.database.db_acquire_timeout = Some(Duration::from_millis(200));
            s.limits.timeout = Duration::from_secs(1);
        })
        .await;
    let address = serve(state.clone()).await;

    let mut client = Client::ready(address, false, bearer(&people[1].1)).await;
    client.seats("before", section, SEATS).await;
    assert_eq!(client.data_of("before").await["sectionSeats"][SEATS], 0);

    // Every pooled connection is busy: a new subscription's first read waits for one within
    // the request timeout, then fails with UNAVAILABLE, as its own `error`.
    let db = state.store.db();
    let held = [
        db.begin().await.expect("a connection"),
        db.begin().await.expect("a connection"),
    ];
    client.seats("starved", section, SEATS).await;
    expect_error(&mut client, "starved", "UNAVAILABLE").await;

    // A read that gets its connection within the timeout is served.
    client.seats("patient", section, SEATS).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(held);
    assert_eq!(client.data_of("patient").await["sectionSeats"][SEATS], 0);

    // The subscription from before the shortage still receives events.
    enroll_through(address, &people[0].1, section).await;
    assert_eq!(client.data_of("before").await["sectionSeats"][SEATS], 1);
    assert_eq!(client.data_of("patient").await["sectionSeats"][SEATS], 1);
}

both_backends!(
    a_connection_holds_a_bounded_number_of_subscriptions,
    a_client_holds_a_bounded_number_of_connections,
    a_subscription_that_cannot_get_the_database_fails_alone,
);

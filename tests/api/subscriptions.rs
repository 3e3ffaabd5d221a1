//! Live subscriptions over a real WebSocket, on both databases: both protocols, authentication
//! in `connection_init`, delivery after commit only, stalled subscribers, the active gauge, and
//! (PostgreSQL) delivery across two `roster serve` processes.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::helpers::{Backend, Server, TestApp, both_backends, error_code, post_json};
use futures_util::{SinkExt, StreamExt};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, protocol::frame::coding::CloseCode},
};
use uuid::Uuid;

const WITHDRAW: &str = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }";

/// A WebSocket client speaking one of the two GraphQL protocols.
pub(crate) struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    legacy: bool,
    /// Messages read while looking for another operation's.
    held: Vec<Value>,
}

impl Client {
    /// Connects to `/graphql/ws` and sends `connection_init` with `payload`.
    pub(crate) async fn connect(address: SocketAddr, legacy: bool, payload: Value) -> Self {
        let mut request = format!("ws://{address}/graphql/ws")
            .into_client_request()
            .unwrap();
        let protocol = if legacy {
            "graphql-ws"
        } else {
            "graphql-transport-ws"
        };
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
        let mut client = Self {
            socket,
            legacy,
            held: Vec::new(),
        };
        client
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        client
    }

    /// Connects and expects `connection_ack`.
    pub(crate) async fn ready(address: SocketAddr, legacy: bool, payload: Value) -> Self {
        let mut client = Self::connect(address, legacy, payload).await;
        let ack = client.recv().await.expect("an answer to connection_init");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        client
    }

    pub(crate) async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    pub(crate) async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.legacy { "start" } else { "subscribe" };
        let payload = json!({ "query": query, "variables": variables });
        self.send(json!({ "id": id, "type": kind, "payload": payload }))
            .await;
    }

    /// Subscribes `id` to `sectionSeats` of `section`, selecting `fields`.
    pub(crate) async fn seats(&mut self, id: &str, section: Uuid, fields: &str) {
        let query =
            format!("subscription($s: UUID!) {{ sectionSeats(sectionId: $s) {{ {fields} }} }}");
        self.subscribe(id, &query, json!({ "s": section })).await;
    }

    /// The next protocol message (keep-alives skipped), or `None` when the socket closed or
    /// nothing came within 5 s.
    pub(crate) async fn recv(&mut self) -> Option<Value> {
        self.recv_within(Duration::from_secs(5)).await
    }

    pub(crate) async fn recv_within(&mut self, limit: Duration) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let value: Value = serde_json::from_str(&text).expect("json");
                    if value["type"] != "ka" && value["type"] != "ping" {
                        return Some(value);
                    }
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    let (code, reason) = match frame {
                        Some(frame) => {
                            (Some(u16::from(frame.code)), Some(frame.reason.to_string()))
                        }
                        None => (None, None),
                    };
                    return Some(json!({ "type": "close", "code": code, "reason": reason }));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) | Err(_) => return None,
            }
        }
    }

    /// The data of the next message for operation `id`. Messages of other operations that
    /// arrive first are kept for their own `data_of`.
    pub(crate) async fn data_of(&mut self, id: &str) -> Value {
        let message = match self.held.iter().position(|m| m["id"] == id) {
            Some(i) => self.held.remove(i),
            None => loop {
                let message = self
                    .recv()
                    .await
                    .unwrap_or_else(|| panic!("nothing for {id}"));
                if message["id"] == id {
                    break message;
                }
                self.held.push(message);
            },
        };
        let kind = if self.legacy { "data" } else { "next" };
        assert_eq!(message["type"], kind, "{message}");
        message["payload"]["data"].clone()
    }
}

/// The `extensions.code` of an operation's error: an `error` message's payload (a list in
/// `graphql-transport-ws`, one error in the legacy `graphql-ws`), or the errors of a
/// `next`/`data` message.
pub(crate) fn error_code_of(message: &Value) -> &str {
    message["payload"][0]["extensions"]["code"]
        .as_str()
        .or(message["payload"]["extensions"]["code"].as_str())
        .or(message["payload"]["errors"][0]["extensions"]["code"].as_str())
        .unwrap_or_else(|| panic!("no error code in {message}"))
}

/// A one-seat section: the first of two students holds the seat, the second waits. Returns the
/// section, the seated enrollment and the students with their tokens.
async fn one_seat_one_waiting(app: &TestApp) -> (Uuid, Uuid, Vec<(Uuid, String)>) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Live", Some(1), "MONDAY")
        .await;
    let people = app.students(&campus, 2).await;
    let seated = app.enroll(&people[0].1, section).await.expect("enrolled");
    let waiting = app.enroll(&people[1].1, section).await.expect("enrolled");
    assert_eq!(waiting.status, "WAITLISTED");
    (section, seated.id, people)
}

/// The waiter of [`one_seat_one_waiting`], connected to `address` and subscribed to its
/// promotions (`promotions`) and to the section's waitlist count (`seats`), which it has read
/// once.
async fn waiter_following_promotions(address: SocketAddr, token: &str, section: Uuid) -> Client {
    let mut client = Client::ready(address, false, bearer(token)).await;
    let promotions = "subscription { waitlistPromotions { status } }";
    client.subscribe("promotions", promotions, json!({})).await;
    client.seats("seats", section, "waitlistCount").await;
    let seats = client.data_of("seats").await;
    assert_eq!(seats["sectionSeats"]["waitlistCount"], 1);
    client
}

fn bearer(token: &str) -> Value {
    json!({ "Authorization": format!("Bearer {token}") })
}

async fn a_withdrawal_reaches_promotion_seat_and_position_subscribers(app: TestApp) {
    let (section, seated, people) = one_seat_one_waiting(&app).await;
    let address = app.serve().await;

    let mut client = Client::ready(address, false, bearer(&people[1].1)).await;
    client
        .subscribe(
            "promotions",
            "subscription { waitlistPromotions { id status section { id } } }",
            json!({}),
        )
        .await;
    client
        .subscribe(
            "positions",
            "subscription { waitlistPositions { enrollmentId position } }",
            json!({}),
        )
        .await;
    let counts = "registeredCount waitlistCount seatsAvailable isFull";
    client.seats("seats", section, counts).await;
    let first = client.data_of("seats").await;
    assert_eq!(
        first["sectionSeats"],
        json!({ "registeredCount": 1, "waitlistCount": 1, "seatsAvailable": 0, "isFull": true }),
    );
    let position = client.data_of("positions").await;
    assert_eq!(position["waitlistPositions"]["position"], 1);
    assert_eq!(app.state.store.bus().active_subscriptions(), 3);

    let withdrawn_at = Instant::now();
    app.withdraw(&people[0].1, seated).await.expect("withdrawn");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let message = client
            .recv_within(Duration::from_secs(1))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "[{:?}] only {seen:?} within 1 s of the withdrawal",
                    app.backend
                )
            });
        let data = &message["payload"]["data"];
        match message["id"].as_str() {
            Some("promotions") => {
                assert_eq!(data["waitlistPromotions"]["status"], "REGISTERED");
                assert_eq!(
                    data["waitlistPromotions"]["section"]["id"],
                    section.to_string()
                );
            }
            Some("seats") => {
                let counts = json!({
                    "registeredCount": 1, "waitlistCount": 0, "seatsAvailable": 0, "isFull": true,
                });
                assert_eq!(data["sectionSeats"], counts);
            }
            Some("positions") => assert_eq!(data["waitlistPositions"]["position"], Value::Null),
            _ => panic!("unexpected {message}"),
        }
        seen.push(message["id"].as_str().unwrap().to_owned());
    }
    assert!(withdrawn_at.elapsed() < Duration::from_secs(1));

    // Leaving frees every subscription.
    client.socket.close(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while app.state.store.bus().active_subscriptions() != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.state.store.bus().active_subscriptions(),
        0,
        "the gauge returns to zero"
    );
}

async fn the_legacy_protocol_and_staff_only_event_streams(app: TestApp) {
    let campus = app.campus("Org").await;
    let (course, section) = app
        .course_with_section(&campus, "Legacy", Some(5), "MONDAY")
        .await;
    let people = app.students(&campus, 2).await;
    let address = app.serve().await;

    // A student may not follow a course's events; the error names the code.
    let mut student = Client::ready(
        address,
        true,
        json!({ "authorization": people[0].1.clone() }),
    )
    .await;
    student
        .subscribe(
            "events",
            "subscription($c: UUID!) { enrollmentEvents(courseId: $c) { id } }",
            json!({ "c": course }),
        )
        .await;
    let refused = student.recv().await.expect("an answer");
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(error_code_of(&refused), "FORBIDDEN");

    let mut teacher = Client::ready(address, true, bearer(&campus.teacher_token)).await;
    teacher
        .subscribe(
            "events",
            "subscription($c: UUID!) { enrollmentEvents(courseId: $c) {
        from to actor { id } } }",
            json!({ "c": course }),
        )
        .await;
    teacher.seats("seats", section, "registeredCount").await;
    assert_eq!(
        teacher.data_of("seats").await["sectionSeats"]["registeredCount"],
        0
    );
    app.enroll(&people[1].1, section).await.expect("enrolled");
    let event = teacher.data_of("events").await;
    let actor = json!({ "id": people[1].0.to_string() });
    assert_eq!(
        event["enrollmentEvents"],
        json!({ "from": null, "to": "REGISTERED", "actor": actor }),
    );
    assert_eq!(
        teacher.data_of("seats").await["sectionSeats"]["registeredCount"],
        1
    );
}

async fn bad_or_missing_tokens_get_the_protocols_errors(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Auth", Some(5), "MONDAY")
        .await;
    let address = app.serve().await;

    // graphql-transport-ws: a bad token closes the connection with a protocol error and
    // the reason.
    let mut bad = Client::connect(address, false, bearer("not-a-token")).await;
    let closed = bad.recv().await.expect("a close frame");
    assert_eq!(closed["type"], "close", "{closed}");
    assert_eq!(closed["code"], u16::from(CloseCode::Protocol));
    assert!(
        closed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("token")),
        "{closed}"
    );

    // graphql-ws: a bad token is a connection_error.
    let mut legacy = Client::connect(address, true, bearer("not-a-token")).await;
    let refused = legacy.recv().await.expect("an answer");
    assert_eq!(refused["type"], "connection_error", "{refused}");

    // No token: anonymous. Seats are public; a personal subscription is an error, not silence.
    let mut anonymous = Client::ready(address, false, json!({})).await;
    anonymous
        .subscribe(
            "mine",
            "subscription { waitlistPromotions { id } }",
            json!({}),
        )
        .await;
    // A subscription that cannot start is the protocol's `error` message, which ends it (no
    // `complete` follows).
    let error = anonymous.recv().await.expect("an answer");
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error_code_of(&error), "UNAUTHENTICATED", "{error}");
    anonymous
        .subscribe("invalid", "subscription { noSuchField }", json!({}))
        .await;
    let invalid = anonymous.recv().await.expect("an answer");
    assert_eq!(
        error_code_of(&invalid),
        "GRAPHQL_VALIDATION_FAILED",
        "{invalid}"
    );
    anonymous.seats("seats", section, "seatsAvailable").await;
    assert_eq!(
        anonymous.data_of("seats").await["sectionSeats"]["seatsAvailable"],
        5
    );
    anonymous
        .seats("nothing", Uuid::new_v4(), "seatsAvailable")
        .await;
    let missing = anonymous.recv().await.expect("an answer");
    assert_eq!(error_code_of(&missing), "NOT_FOUND", "{missing}");
}

async fn a_transaction_that_fails_after_its_event_delivers_nothing(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let course = json!({ "name": "Refused", "certificateValidityMonths": 6 });
    let (course, [section]) = app
        .course_with_sections(&t, course, [json!({ "name": "A" })])
        .await;
    let people = app.students(&campus, 2).await;
    let first = app.enroll(&people[0].1, section).await.expect("enrolled");
    let second = app.enroll(&people[1].1, section).await.expect("enrolled");
    // Certifications are refused by the database: completion writes its COMPLETED event,
    // then fails on the certificate and rolls everything back.
    let refuse = match app.backend {
        Backend::Sqlite => vec![
            "CREATE TRIGGER refuse BEFORE INSERT ON certifications \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        ],
        Backend::Postgres => vec![
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql \
             AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$",
            "CREATE TRIGGER refuse BEFORE INSERT ON certifications \
             FOR EACH ROW EXECUTE FUNCTION refuse()",
        ],
    };
    for sql in refuse {
        app.db.execute_unprepared(sql).await.unwrap();
    }
    // The enrollments above reach the bus a few milliseconds after their commits: let them
    // pass before subscribing, so that the first event heard is the withdrawal's.
    app.state.store.bus().settle().await;
    let address = app.serve().await;
    let mut teacher = Client::ready(address, false, bearer(&t)).await;
    teacher
        .subscribe(
            "events",
            "subscription($c: UUID!) { enrollmentEvents(courseId: $c) { enrollmentId to } }",
            json!({ "c": course }),
        )
        .await;
    teacher.seats("seats", section, "registeredCount").await;
    assert_eq!(
        teacher.data_of("seats").await["sectionSeats"]["registeredCount"],
        2
    );

    let failed = app
        .gql(
            Some(&t),
            "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { status } }",
            json!({ "e": first.id }),
        )
        .await;
    assert_eq!(error_code(&failed), "INTERNAL");
    // The next thing the subscriber hears is the withdrawal that did commit.
    app.withdraw(&people[1].1, second.id)
        .await
        .expect("withdrawn");
    let event = teacher.data_of("events").await;
    assert_eq!(
        event["enrollmentEvents"],
        json!({ "enrollmentId": second.id.to_string(), "to": "WITHDRAWN" })
    );
    assert_eq!(
        teacher.data_of("seats").await["sectionSeats"]["registeredCount"],
        1
    );
}

async fn a_subscriber_that_never_reads_holds_nobody_up(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Burst", None, "MONDAY")
        .await;
    let people = app.students(&campus, 20).await;
    let address = app.serve().await;
    let mut stalled = Client::ready(address, false, json!({})).await;
    stalled.seats("seats", section, "registeredCount").await;
    let mut reader = Client::ready(address, false, json!({})).await;
    reader.seats("seats", section, "registeredCount").await;
    assert_eq!(
        reader.data_of("seats").await["sectionSeats"]["registeredCount"],
        0
    );

    // 1,000 mutations while `stalled` reads nothing: every one completes, and the reader
    // keeps up to the end.
    let app = Arc::new(app);
    let workers: Vec<_> = people
        .into_iter()
        .map(|(_, token)| {
            let app = app.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    let id = app.enroll(&token, section).await.expect("enrolled").id;
                    app.withdraw(&token, id).await.expect("withdrawn");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let mut last = None;
    while let Some(message) = reader.recv_within(Duration::from_millis(500)).await {
        last = Some(message["payload"]["data"]["sectionSeats"]["registeredCount"].clone());
    }
    assert_eq!(last, Some(json!(0)), "the reader saw the final count");
    assert_eq!(
        app.state.store.bus().active_subscriptions(),
        2,
        "the stalled one is still being served"
    );
    // It still gets what its buffers held, then its stream either goes on or ends with
    // SUBSCRIBER_TOO_SLOW; never an internal error.
    while let Some(message) = stalled.recv_within(Duration::from_millis(300)).await {
        if message["type"] == "error" || message["payload"]["errors"].is_array() {
            assert_eq!(error_code_of(&message), "SUBSCRIBER_TOO_SLOW", "{message}");
        }
    }
}

/// Request errors over WebSocket (a document that does not parse or validate, an unknown
/// operation, variables that do not coerce) are the protocol's `error` message: a list of
/// GraphQL errors in `graphql-transport-ws`, one error in the legacy `graphql-ws`. Nothing
/// follows for that operation, and the connection goes on.
async fn request_errors_are_the_protocols_error_message(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Live", Some(5), "MONDAY")
        .await;
    let address = app.serve().await;
    let seats = "subscription($s: UUID!) { sectionSeats(sectionId: $s) { seatsAvailable } }";
    let bad: [(&str, Value, &str); 5] = [
        (
            "subscription {",
            json!({ "query": "subscription {" }),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "invalid",
            json!({ "query": "subscription { noSuchField }" }),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "unknown operation",
            json!({ "query": format!("subscription A {}", &seats[12..]), "operationName": "B",
                    "variables": { "s": section } }),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "bad variable",
            json!({ "query": seats, "variables": { "s": "not-a-uuid" } }),
            "BAD_USER_INPUT",
        ),
        (
            "missing variable",
            json!({ "query": seats, "variables": {} }),
            "BAD_USER_INPUT",
        ),
    ];
    for legacy in [false, true] {
        let mut client = Client::ready(address, legacy, json!({})).await;
        let kind = if legacy { "start" } else { "subscribe" };
        for (n, (what, payload, code)) in bad.iter().enumerate() {
            let id = format!("bad{n}");
            client
                .send(json!({ "id": id, "type": kind, "payload": payload }))
                .await;
            let message = client.recv().await.expect("an answer");
            assert_eq!(
                message["type"], "error",
                "{what} (legacy: {legacy}): {message}"
            );
            assert_eq!(message["id"], id, "{message}");
            if legacy {
                assert!(message["payload"].is_object(), "{message}");
            } else {
                assert!(message["payload"].is_array(), "{message}");
            }
            assert_eq!(error_code_of(&message), *code, "{what}: {message}");
        }
        // No `complete` for any of them: the next message is the next operation's.
        client.seats("good", section, "seatsAvailable").await;
        let next = client.recv().await.expect("an answer");
        assert_eq!(next["id"], "good", "{next}");
        assert_eq!(next["payload"]["data"]["sectionSeats"]["seatsAvailable"], 5);
    }
}

both_backends!(
    request_errors_are_the_protocols_error_message,
    a_withdrawal_reaches_promotion_seat_and_position_subscribers,
    the_legacy_protocol_and_staff_only_event_streams,
    bad_or_missing_tokens_get_the_protocols_errors,
    a_transaction_that_fails_after_its_event_delivers_nothing,
    a_subscriber_that_never_reads_holds_nobody_up
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_caused_on_one_replica_reaches_a_subscriber_on_another() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let (section, seated, people) = one_seat_one_waiting(&app).await;
    let (first, second) = (
        Server::start(&app.database_url, &[], None).await,
        Server::start(&app.database_url, &[], None).await,
    );

    let mut client = waiter_following_promotions(first.address, &people[1].1, section).await;

    let url = format!("http://{}/graphql", second.address);
    let withdraw = json!({ "query": WITHDRAW, "variables": { "e": seated } });
    let response = post_json(&url, Some(&people[0].1), &withdraw).await;
    assert_eq!(
        response["data"]["withdraw"]["status"], "WITHDRAWN",
        "{response}"
    );
    let promoted = client.data_of("promotions").await;
    assert_eq!(promoted["waitlistPromotions"]["status"], "REGISTERED");
    assert_eq!(
        client.data_of("seats").await["sectionSeats"]["waitlistCount"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_survive_the_listener_losing_its_connection() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let (section, seated, people) = one_seat_one_waiting(&app).await;
    let address = app.serve().await;
    let mut client = waiter_following_promotions(address, &people[1].1, section).await;

    // Cut the replica's LISTEN connection, and change something before it is back.
    let cut = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
        WHERE datname = current_database() AND query ILIKE 'listen%'";
    let cut = app.db.execute_unprepared(cut).await.unwrap();
    assert_eq!(cut.rows_affected(), 1, "one listener connection");
    app.withdraw(&people[0].1, seated).await.expect("withdrawn");

    let promoted = client.data_of("promotions").await;
    assert_eq!(promoted["waitlistPromotions"]["status"], "REGISTERED");
    assert_eq!(
        client.data_of("seats").await["sectionSeats"]["waitlistCount"],
        0
    );
    assert_eq!(
        app.state.store.bus().active_subscriptions(),
        2,
        "the subscriptions stayed attached"
    );
}

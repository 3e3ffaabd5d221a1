//! Durable notifications (docs/design.md#notifications): the inbox rows a change writes in its
//! own transaction, read, counted and marked read; the live `notifications` subscription; the
//! outbox drained to a signed webhook at least once, with backoff; nothing when the change rolls
//! back.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use entity::{notification, notification_delivery};
use roster::delivery::{DeliveryConfig, WebhookConfig};
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, TestApp, both_backends, post_json, serve},
    subscriptions::Client,
};

const INBOX: &str = "query($unread: Boolean, $first: Int, $after: String) {
    unreadNotificationCount
    myNotifications(unreadOnly: $unread, first: $first, after: $after) {
        edges { cursor node { id kind title body isRead enrollment { id status } } }
        pageInfo { hasNextPage endCursor } } }";
const READ: &str = "mutation($ids: [UUID!]) { markNotificationsRead(ids: $ids) }";
const CANCEL: &str =
    "mutation($e: UUID!, $r: String!) { cancelEnrollment(enrollmentId: $e, reason: $r) { id } }";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn kinds(inbox: &Value) -> Vec<String> {
    inbox["myNotifications"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn the_changes_someone_else_makes_reach_the_students_inbox(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let (_, [section]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Welding", "certificateValidityMonths": 12 }),
            [json!({ "name": "Evening", "capacity": 1 })],
        )
        .await;
    let (_, first) = app.student(&campus).await;
    let (_, second) = app.student(&campus).await;
    let seat = app.enroll(&first, section).await.unwrap();
    let waiting = app.enroll(&second, section).await.unwrap();
    assert_eq!(waiting.status, "WAITLISTED");
    app.withdraw(&first, seat.id).await.unwrap();

    let inbox = app.ok(Some(&second), INBOX, json!({})).await;
    assert_eq!(inbox["unreadNotificationCount"], 1, "{inbox}");
    let promoted = &inbox["myNotifications"]["edges"][0]["node"];
    assert_eq!(promoted["kind"], "PROMOTED");
    assert_eq!(promoted["title"], "You have a seat in Welding");
    assert!(promoted["body"].as_str().unwrap().contains("Evening"));
    assert_eq!(promoted["enrollment"]["id"], json!(waiting.id));
    assert_eq!(promoted["isRead"], false);
    let own = app.ok(Some(&first), INBOX, json!({})).await;
    assert_eq!(
        own["unreadNotificationCount"], 0,
        "one's own withdrawal notifies nobody: {own}"
    );

    // Staff complete it: a certification, and its notification.
    app.ok(
        Some(&t),
        "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { id } }",
        json!({ "e": waiting.id }),
    )
    .await;
    // Staff cancel someone else, with a reason.
    let (_, third) = app.student(&campus).await;
    let other = app.enroll(&third, section).await.unwrap();
    app.ok(
        Some(&t),
        CANCEL,
        json!({ "e": other.id, "r": "the room is closed" }),
    )
    .await;
    let cancelled = app.ok(Some(&third), INBOX, json!({})).await;
    assert_eq!(kinds(&cancelled), ["CANCELLED"]);
    assert!(
        cancelled["myNotifications"]["edges"][0]["node"]["body"]
            .as_str()
            .unwrap()
            .ends_with("Reason: the room is closed")
    );

    let inbox = app.ok(Some(&second), INBOX, json!({})).await;
    assert_eq!(
        kinds(&inbox),
        ["CERTIFICATION_ISSUED", "PROMOTED"],
        "newest first"
    );
    // Pages of one.
    let page = app.ok(Some(&second), INBOX, json!({ "first": 1 })).await;
    assert_eq!(kinds(&page), ["CERTIFICATION_ISSUED"]);
    let after = page["myNotifications"]["pageInfo"]["endCursor"].clone();
    let next = app
        .ok(Some(&second), INBOX, json!({ "first": 1, "after": after }))
        .await;
    assert_eq!(kinds(&next), ["PROMOTED"]);
    assert_eq!(next["myNotifications"]["pageInfo"]["hasNextPage"], false);

    // Marking read: someone else's ids are left alone; one by id; then all.
    let newest = inbox["myNotifications"]["edges"][0]["node"]["id"].clone();
    let theirs = app
        .ok(Some(&third), READ, json!({ "ids": [newest.clone()] }))
        .await;
    assert_eq!(theirs["markNotificationsRead"], 0);
    let marked = app
        .ok(Some(&second), READ, json!({ "ids": [newest] }))
        .await;
    assert_eq!(marked["markNotificationsRead"], 1);
    let unread = app
        .ok(Some(&second), INBOX, json!({ "unread": true }))
        .await;
    assert_eq!(kinds(&unread), ["PROMOTED"]);
    assert_eq!(unread["unreadNotificationCount"], 1);
    let all = app.ok(Some(&second), READ, json!({})).await;
    assert_eq!(all["markNotificationsRead"], 1);
    let none = app.ok(Some(&second), INBOX, json!({})).await;
    assert_eq!(none["unreadNotificationCount"], 0);
    let anonymous = app.gql(None, INBOX, json!({})).await;
    assert_eq!(
        anonymous["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
}

async fn a_live_subscriber_hears_its_own_notifications(app: TestApp) {
    let campus = app.campus("North").await;
    let (_, section) = app
        .course_with_section(&campus, "Live", Some(1), "MONDAY")
        .await;
    let (_, first) = app.student(&campus).await;
    let (_, second) = app.student(&campus).await;
    let seat = app.enroll(&first, section).await.unwrap();
    app.enroll(&second, section).await.unwrap();
    let address = app.serve().await;
    let payload = |token: &str| json!({ "Authorization": format!("Bearer {token}") });
    let mut waiter = Client::ready(address, false, payload(&second)).await;
    waiter
        .subscribe(
            "inbox",
            "subscription { notifications { kind title } }",
            json!({}),
        )
        .await;
    let mut bystander = Client::ready(address, false, payload(&first)).await;
    bystander
        .subscribe(
            "inbox",
            "subscription { notifications { kind } }",
            json!({}),
        )
        .await;
    // Let both subscriptions attach before the change.
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.withdraw(&first, seat.id).await.unwrap();
    let heard = waiter.data_of("inbox").await;
    assert_eq!(heard["notifications"]["kind"], "PROMOTED", "{heard}");
    assert_eq!(
        bystander.recv_within(Duration::from_millis(500)).await,
        None,
        "nobody else's notifications"
    );
}

/// What the webhook receiver saw: each request's arrival, headers and body.
type Seen = Arc<Mutex<Vec<(Instant, HeaderMap, Bytes)>>>;

/// A webhook receiver on loopback answering `statuses` in turn (then 200).
async fn receiver(statuses: Vec<u16>) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    receiver_on(listener, statuses)
}

/// [`receiver`] on `listener`, at `/hook`.
fn receiver_on(listener: tokio::net::TcpListener, statuses: Vec<u16>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let script = Arc::new(Mutex::new(statuses.into_iter()));
    let state = (seen.clone(), script);
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State((seen, script)): State<(Seen, Arc<Mutex<std::vec::IntoIter<u16>>>)>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    seen.lock().unwrap().push((Instant::now(), headers, body));
                    let status = script.lock().unwrap().next().unwrap_or(200);
                    StatusCode::from_u16(status).unwrap()
                },
            ),
        )
        .with_state(state);
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), seen)
}

async fn a_webhook_receives_each_notification_signed_once_despite_failures(app: TestApp) {
    let (url, seen) = receiver(vec![500, 500, 500]).await;
    let retry_base = Duration::from_millis(100);
    let delivering = app
        .state_with(|s| {
            s.delivery = DeliveryConfig {
                webhook: Some(WebhookConfig::new(&url, SECRET).unwrap()),
                retry_base,
                ..DeliveryConfig::default()
            };
        })
        .await;
    let base = format!("http://{}/graphql", serve(delivering.clone()).await);
    let campus = app.campus("North").await;
    let (_, section) = app
        .course_with_section(&campus, "Hooked", Some(1), "MONDAY")
        .await;
    let (_, first) = app.student(&campus).await;
    let (_, second) = app.student(&campus).await;
    let seat = app.enroll(&first, section).await.unwrap();
    app.enroll(&second, section).await.unwrap();
    let withdraw = json!({
        "query": "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }",
        "variables": { "e": seat.id },
    });
    let answer = post_json(&base, Some(&first), &withdraw).await;
    assert_eq!(
        answer["data"]["withdraw"]["status"], "WITHDRAWN",
        "{answer}"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let delivered = notification_delivery::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .any(|d| d.delivered_at.is_some());
        if delivered {
            break;
        }
        assert!(Instant::now() < deadline, "not delivered in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "three failures, then the delivery");
    let signer = standardwebhooks::Webhook::new(SECRET).unwrap();
    let inbox = notification::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(inbox.len(), 1);
    for (_, headers, body) in &seen {
        assert_eq!(
            headers["webhook-id"],
            inbox[0].id.to_string(),
            "the same id"
        );
        signer.verify(body, headers).expect("a valid signature");
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["type"], "notification.created");
        assert_eq!(payload["data"]["kind"], "PROMOTED");
        assert_eq!(payload["data"]["title"], inbox[0].title);
    }
    // Backoff: each pause at least twice the one before, from the base.
    for (i, pair) in seen.windows(2).enumerate() {
        let pause = pair[1].0 - pair[0].0;
        let least = retry_base * (1 << i);
        assert!(pause >= least, "pause {i}: {pause:?} < {least:?}");
    }
    let rows = notification_delivery::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].attempts, 4);
    assert!(rows[0].failed_at.is_none() && rows[0].last_error.is_none());
    delivering.begin_shutdown();
}

async fn a_change_that_rolls_back_leaves_neither_inbox_nor_outbox_row(app: TestApp) {
    let delivering = app
        .state_with(|s| {
            s.delivery = DeliveryConfig {
                webhook: Some(WebhookConfig::new("http://127.0.0.1:9/never", SECRET).unwrap()),
                ..DeliveryConfig::default()
            };
        })
        .await;
    let base = format!("http://{}/graphql", serve(delivering.clone()).await);
    let campus = app.campus("North").await;
    let (_, section) = app
        .course_with_section(&campus, "Refused", None, "MONDAY")
        .await;
    let (_, student) = app.student(&campus).await;
    let seat = app.enroll(&student, section).await.unwrap();
    // The database refuses the CANCELLED event, after the notification was written.
    let refuse = match app.backend {
        Backend::Sqlite => vec![
            "CREATE TRIGGER refuse BEFORE INSERT ON enrollment_events \
             WHEN NEW.to_status = 'CANCELLED' BEGIN SELECT RAISE(ABORT, 'refused'); END",
        ],
        Backend::Postgres => vec![
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.to_status = 'CANCELLED' THEN RAISE EXCEPTION 'refused'; END IF; \
             RETURN NEW; END $$",
            "CREATE TRIGGER refuse BEFORE INSERT ON enrollment_events \
             FOR EACH ROW EXECUTE FUNCTION refuse()",
        ],
    };
    for sql in refuse {
        app.db.execute_unprepared(sql).await.unwrap();
    }
    let cancel = json!({ "query": CANCEL, "variables": { "e": seat.id, "r": "no" } });
    let answer = post_json(&base, Some(&campus.teacher_token), &cancel).await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "INTERNAL",
        "{answer}"
    );
    assert_eq!(
        notification::Entity::find().count(&app.db).await.unwrap(),
        0
    );
    assert_eq!(
        notification_delivery::Entity::find()
            .count(&app.db)
            .await
            .unwrap(),
        0
    );
    delivering.begin_shutdown();
}

both_backends!(
    the_changes_someone_else_makes_reach_the_students_inbox,
    a_live_subscriber_hears_its_own_notifications,
    a_webhook_receives_each_notification_signed_once_despite_failures,
    a_change_that_rolls_back_leaves_neither_inbox_nor_outbox_row,
);

/// Two replicas on one PostgreSQL database, both delivering: 200 promotions, each notification
/// reaches the receiver exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_notification_exactly_once() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let (url, seen) = receiver(Vec::new()).await;
    let config = || DeliveryConfig {
        webhook: Some(WebhookConfig::new(&url, SECRET).unwrap()),
        retry_base: Duration::from_millis(100),
        ..DeliveryConfig::default()
    };
    let one = app.state_with(|s| s.delivery = config()).await;
    let two = app.state_with(|s| s.delivery = config()).await;
    let bases = [
        format!("http://{}/graphql", serve(one.clone()).await),
        format!("http://{}/graphql", serve(two.clone()).await),
    ];
    let campus = app.campus("North").await;
    let (_, section) = app
        .course_with_section(&campus, "Crowded", Some(1), "MONDAY")
        .await;
    let people = app.students(&campus, 201).await;
    let mut seats = Vec::new();
    for (id, _) in &people {
        let status = if seats.is_empty() {
            entity::types::EnrollmentStatus::Registered
        } else {
            entity::types::EnrollmentStatus::Waitlisted
        };
        seats.push(app.seat(*id, section, status).await);
    }
    // Each withdrawal promotes the next waiter; alternate replicas.
    let withdraw = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }";
    for (i, ((_, token), seat)) in people.iter().zip(&seats).take(200).enumerate() {
        let body = json!({ "query": withdraw, "variables": { "e": seat } });
        let answer = post_json(&bases[i % 2], Some(token), &body).await;
        assert_eq!(
            answer["data"]["withdraw"]["status"], "WITHDRAWN",
            "{answer}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = notification_delivery::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .iter()
            .filter(|d| d.delivered_at.is_none())
            .count();
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} still undelivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().unwrap().clone();
    let mut ids: Vec<String> = seen
        .iter()
        .map(|(_, headers, _)| headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 200, "one request per notification");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "no notification twice");
    one.begin_shutdown();
    two.begin_shutdown();
}

/// `roster serve` killed with undelivered rows, started again: every row is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_rows_survive_a_sigkill() {
    use crate::helpers::{SECRET as JWT, Server, parse_id};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    // The receiver's port, closed at first: every attempt fails until it listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook = format!("http://127.0.0.1:{port}/hook");
    let env = [
        ("ROSTER_WEBHOOK_URL", hook.as_str()),
        ("ROSTER_WEBHOOK_SECRET", SECRET),
    ];
    let roster = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(args)
            .env("ROSTER_DATABASE_URL", &db)
            .env("ROSTER_JWT_SECRET", std::str::from_utf8(JWT).unwrap())
            .env("ROSTER_LOG", "warn")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    roster(&["migrate"]);
    roster(&[
        "user", "add", "--email", "t@k.dev", "--name", "T", "--role", "TEACHER", "--org", "K",
    ]);
    let emails: Vec<String> = (0..4).map(|i| format!("s{i}@k.dev")).collect();
    for email in &emails {
        roster(&[
            "user", "add", "--email", email, "--name", "S", "--role", "STUDENT", "--org", "K",
        ]);
    }
    let teacher = roster(&["token", "--email", "t@k.dev"]);
    let students: Vec<String> = emails
        .iter()
        .map(|e| roster(&["token", "--email", e]))
        .collect();
    let mut server = Server::start(&db, &env, None).await;
    let base = format!("http://{}/graphql", server.address);
    let course = post_json(
        &base,
        Some(&teacher),
        &json!({ "query": "mutation { createCourse(input: { name: \"Killed\" }) { id } }" }),
    )
    .await;
    let course = parse_id(&course["data"]["createCourse"]["id"]);
    let section = post_json(
        &base,
        Some(&teacher),
        &json!({ "query": "mutation($c: UUID!) { createSection(input: { courseId: $c, name: \"A\", capacity: 1 }) { id } }",
                 "variables": { "c": course } }),
    )
    .await;
    let section = parse_id(&section["data"]["createSection"]["id"]);
    let mut enrollments = Vec::new();
    for token in &students {
        let made = post_json(
            &base,
            Some(token),
            &json!({ "query": "mutation($s: UUID!) { enroll(sectionId: $s) { id } }",
                     "variables": { "s": section } }),
        )
        .await;
        enrollments.push(parse_id(&made["data"]["enroll"]["id"]));
    }
    // Three withdrawals, three promotions, three notifications the receiver cannot take yet.
    for (token, enrollment) in students.iter().zip(&enrollments).take(3) {
        let body = json!({ "query": "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }",
                           "variables": { "e": enrollment } });
        let answer = post_json(&base, Some(token), &body).await;
        assert_eq!(
            answer["data"]["withdraw"]["status"], "WITHDRAWN",
            "{answer}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();

    // The receiver is up now; so is the server, again.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (_, seen) = receiver_on(listener, Vec::new());
    let _again = Server::start(&db, &env, None).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut ids: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, h, _)| h["webhook-id"].to_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        if ids.len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivered after the restart: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A certification expiring within 30 days is announced to its holder, once.
async fn an_expiring_certification_is_announced_once(app: TestApp) {
    use roster::service::notifications::remind_expiring;
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let (_, [section]) = app
        .course_with_sections(
            &t,
            json!({ "name": "First aid", "certificateValidityMonths": 2 }),
            [json!({ "name": "A" })],
        )
        .await;
    let (_, student) = app.student(&campus).await;
    let seat = app.enroll(&student, section).await.unwrap();
    app.ok(
        Some(&t),
        "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { id } }",
        json!({ "e": seat.id }),
    )
    .await;
    let store = &app.state.store;
    assert_eq!(remind_expiring(store).await.unwrap(), 0, "two months ahead");
    store.clock().advance(chrono::Duration::days(35));
    assert_eq!(remind_expiring(store).await.unwrap(), 1);
    assert_eq!(remind_expiring(store).await.unwrap(), 0, "once");
    store.clock().advance(chrono::Duration::days(40));
    assert_eq!(
        remind_expiring(store).await.unwrap(),
        0,
        "expired: nothing more"
    );
    let inbox = app.ok(Some(&student), INBOX, json!({})).await;
    assert_eq!(
        kinds(&inbox),
        ["CERTIFICATION_EXPIRING", "CERTIFICATION_ISSUED"]
    );
    assert!(
        inbox["myNotifications"]["edges"][0]["node"]["title"]
            .as_str()
            .unwrap()
            .starts_with("Your First aid certification expires on ")
    );
}

both_backends!(an_expiring_certification_is_announced_once);

/// A minimal SMTP relay on loopback: every message it is given, as text.
async fn smtp_relay() -> (u16, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = messages.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 relay ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(message) = data.as_mut() {
                        if line == "." {
                            kept.lock().unwrap().push(data.take().unwrap());
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            message.push_str(&line);
                            message.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 relay\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            break;
                        }
                        _ => b"250 OK\r\n",
                    };
                    write.write_all(answer).await.unwrap();
                }
            });
        }
    });
    (port, messages)
}

async fn a_notification_is_mailed_with_its_id_as_message_id(app: TestApp) {
    use roster::delivery::EmailConfig;
    let (port, messages) = smtp_relay().await;
    let delivering = app
        .state_with(|s| {
            s.delivery = DeliveryConfig {
                email: Some(
                    EmailConfig::new(
                        &format!("smtp://127.0.0.1:{port}"),
                        "Roster <roster@roster.test>",
                    )
                    .unwrap(),
                ),
                ..DeliveryConfig::default()
            };
        })
        .await;
    let base = format!("http://{}/graphql", serve(delivering.clone()).await);
    let campus = app.campus("North").await;
    let (_, section) = app
        .course_with_section(&campus, "Mailed", Some(1), "MONDAY")
        .await;
    let (_, first) = app.student(&campus).await;
    let (second_id, second) = app.student(&campus).await;
    let seat = app.enroll(&first, section).await.unwrap();
    app.enroll(&second, section).await.unwrap();
    let withdraw = json!({
        "query": "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }",
        "variables": { "e": seat.id },
    });
    post_json(&base, Some(&first), &withdraw).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while messages.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no e-mail arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = messages.lock().unwrap()[0].clone();
    let inbox = notification::Entity::find().all(&app.db).await.unwrap();
    let recipient = app.user_row(second_id).await;
    assert!(
        message.contains(&format!("Message-ID: <{}@roster>", inbox[0].id)),
        "{message}"
    );
    assert!(
        message.contains("Subject: You have a seat in Mailed"),
        "{message}"
    );
    assert!(message.contains(&recipient.email), "{message}");
    assert!(
        message.contains("text/plain") && message.contains("text/html"),
        "{message}"
    );
    assert!(
        message.contains("From: Roster <roster@roster.test>"),
        "{message}"
    );
    let rows = notification_delivery::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].channel, "email");
    // The worker records the delivery right after the relay's answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while notification_delivery::Entity::find()
        .all(&app.db)
        .await
        .unwrap()[0]
        .delivered_at
        .is_none()
    {
        assert!(Instant::now() < deadline, "not recorded as delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    delivering.begin_shutdown();
}

both_backends!(a_notification_is_mailed_with_its_id_as_message_id);

/// A push service on loopback receives the promotion, encrypted for the browser (RFC 8291)
/// and signed with the server's VAPID key (RFC 8292); a subscription it answers 410 for is
/// removed; bad registrations are refused.
async fn a_promotion_is_pushed_encrypted_and_signed(app: TestApp) {
    use base64ct::{Base64UrlUnpadded, Encoding};
    use roster::delivery::PushConfig;
    use web_push_native::{
        jwt_simple::{
            algorithms::{ECDSAP256PublicKeyLike, ES256KeyPair, ES256PublicKey},
            claims::NoCustomClaims,
            common::VerificationOptions,
        },
        p256::{SecretKey, elliptic_curve::sec1::ToEncodedPoint},
    };
    // The push service: /push/gone answers 410, the rest 201.
    let seen: Seen = Arc::default();
    let service = Router::new()
        .route(
            "/push/{name}",
            post(
                |State(seen): State<Seen>,
                 axum::extract::Path(name): axum::extract::Path<String>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    if name == "gone" {
                        return StatusCode::GONE;
                    }
                    seen.lock().unwrap().push((Instant::now(), headers, body));
                    StatusCode::CREATED
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, service).await });

    let vapid = PushConfig::generate_private_key();
    // The loopback push service is the operator's allowed internal host; nothing else internal
    // may be named (server-side request forgery).
    let push = PushConfig::new(&vapid, "mailto:ops@roster.test", true)
        .unwrap()
        .with_internal_hosts(vec!["127.0.0.1".to_owned()]);
    let delivering = app
        .state_with(|s| {
            s.delivery = DeliveryConfig {
                push: Some(push.clone()),
                ..DeliveryConfig::default()
            };
        })
        .await;
    let base = format!("http://{}/graphql", serve(delivering.clone()).await);
    let key = post_json(&base, None, &json!({ "query": "{ vapidPublicKey }" })).await;
    assert_eq!(key["data"]["vapidPublicKey"], push.public_key());

    // The browser's keys.
    let browser = SecretKey::from_slice(&ES256KeyPair::generate().to_bytes()).unwrap();
    let p256dh =
        Base64UrlUnpadded::encode_string(browser.public_key().to_encoded_point(false).as_bytes());
    let auth_bytes: [u8; 16] = rand::random();
    let auth = Base64UrlUnpadded::encode_string(&auth_bytes);
    let campus = app.campus("North").await;
    let (_, section) = app
        .course_with_section(&campus, "Pushed", Some(1), "MONDAY")
        .await;
    let (_, first) = app.student(&campus).await;
    let (second_id, second) = app.student(&campus).await;
    let register = "mutation($e: String!, $p: String!, $a: String!) {
        registerPushSubscription(endpoint: $e, p256dh: $p, auth: $a) }";
    let inside = [
        "http://[::1]:9/x",
        "http://169.254.169.254/latest",
        "http://10.0.0.1/x",
        "http://192.168.0.1/x",
        "http://0.0.0.0/x",
        "http://0x7f000002/x",
        "http://localhost:5432/x",
        "http://user:pw@push.example/x",
    ]
    .map(|e| (e.to_owned(), p256dh.clone(), auth.clone(), "endpoint"));
    for (endpoint, p, a, field) in inside.into_iter().chain([
        (
            "ftp://push.example/x".to_owned(),
            p256dh.clone(),
            auth.clone(),
            "endpoint",
        ),
        (
            format!("{origin}/push/a"),
            "bm90IGEga2V5".to_owned(),
            auth.clone(),
            "p256dh",
        ),
        (
            format!("{origin}/push/a"),
            p256dh.clone(),
            "c2hvcnQ".to_owned(),
            "auth",
        ),
    ]) {
        let body = json!({ "query": register, "variables": { "e": endpoint, "p": p, "a": a } });
        let refused = post_json(&base, Some(&second), &body).await;
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{refused}"
        );
        assert_eq!(
            refused["errors"][0]["extensions"]["field"], field,
            "{refused}"
        );
    }
    for name in ["a", "gone"] {
        let body = json!({ "query": register,
            "variables": { "e": format!("{origin}/push/{name}"), "p": p256dh, "a": auth } });
        let ok = post_json(&base, Some(&second), &body).await;
        assert_eq!(ok["data"]["registerPushSubscription"], true, "{ok}");
    }

    let seat = app.enroll(&first, section).await.unwrap();
    app.enroll(&second, section).await.unwrap();
    let withdraw = json!({
        "query": "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }",
        "variables": { "e": seat.id },
    });
    post_json(&base, Some(&first), &withdraw).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "nothing was pushed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, headers, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["content-encoding"], "aes128gcm");
    let plain = web_push_native::decrypt(
        body.to_vec(),
        &browser,
        &web_push_native::Auth::from(auth_bytes),
    )
    .expect("decrypts with the browser's key and secret");
    let payload: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(payload["kind"], "PROMOTED");
    assert_eq!(payload["title"], "You have a seat in Pushed");

    // VAPID: `vapid t=<JWT>, k=<public key>`, signed by the server's key, for this origin.
    let authorization = headers["authorization"].to_str().unwrap();
    let (token, k) = authorization
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .expect("a VAPID authorization");
    assert_eq!(k, push.public_key());
    let public = ES256PublicKey::from_bytes(&Base64UrlUnpadded::decode_vec(k).unwrap()).unwrap();
    let options = VerificationOptions {
        allowed_audiences: Some(std::collections::HashSet::from([origin.clone()])),
        ..VerificationOptions::default()
    };
    let claims = public
        .verify_token::<NoCustomClaims>(token, Some(options))
        .expect("a valid VAPID JWT for this push service");
    assert_eq!(claims.subject.as_deref(), Some("mailto:ops@roster.test"));
    let expires = claims.expires_at.expect("exp").as_secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        expires > now && expires <= now + 24 * 3600,
        "exp within 24 h"
    );

    // The subscription the push service forgot is gone; the other stays.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = entity::push_subscription::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.user_id == second_id)
            .map(|s| s.endpoint)
            .collect();
        if left == [format!("{origin}/push/a")] {
            break;
        }
        assert!(Instant::now() < deadline, "410 did not remove it: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unregister = json!({ "query": "mutation($e: String!) { unregisterPushSubscription(endpoint: $e) }",
        "variables": { "e": format!("{origin}/push/a") } });
    let gone = post_json(&base, Some(&second), &unregister).await;
    assert_eq!(gone["data"]["unregisterPushSubscription"], true);
    delivering.begin_shutdown();
}

both_backends!(a_promotion_is_pushed_encrypted_and_signed);

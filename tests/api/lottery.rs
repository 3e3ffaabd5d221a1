//! Lottery admission (docs/design.md#registration-opening): REQUESTED enrollments in the
//! first minutes of a window, the seed committed by its hash, a draw in HMAC order through the
//! checks and seats of `enroll`, exactly once across replicas and across a replica killed
//! mid-draw, and the seed revealed when the term's lottery is over. The test clock moves time.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::{
    enrollment, enrollment_event, section,
    types::{EnrollmentStatus, Role},
};
use hmac::{Hmac, Mac};
use roster::service::lottery::draw_due;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder, Statement,
    TransactionTrait,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::helpers::{Campus, TestApp, both_backends, error_code, now, parse_id};

const CREATE_TERM: &str = "mutation($input: CreateTermInput!) {
    createTerm(input: $input) { id lotteryMinutes lotterySeedHash lotterySeed } }";
const TERM: &str = "query($id: UUID!) { term(id: $id) {
    lotterySeedHash lotterySeed lotteryDrawnAt } }";
const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";

/// What anyone can compute from the revealed seed: a request's place in the draw.
fn rank(seed: &str, id: Uuid) -> String {
    let key: Vec<u8> = (0..seed.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&seed[i..i + 2], 16).expect("hex seed"))
        .collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(id.to_string().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_hex(seed: &str) -> String {
    let bytes: Vec<u8> = (0..seed.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&seed[i..i + 2], 16).unwrap())
        .collect();
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A campus, its coordinator's token, and a LOTTERY term of 30 minutes opening in a day.
async fn lottery_term(app: &TestApp, name: &str) -> (Campus, String, Uuid, DateTime<Utc>) {
    let campus = app.campus(name).await;
    let coordinator = app
        .user(Role::Coordinator, Some(campus.organization.id))
        .await;
    let token = app.token(coordinator.id);
    let opens = now() + Duration::days(1);
    let created = app
        .ok(
            Some(&token),
            CREATE_TERM,
            json!({ "input": {
                "name": "Fall", "code": "F", "startsOn": "2030-01-07", "endsOn": "2030-04-30",
                "enrollmentOpensAt": opens, "admission": "LOTTERY", "lotteryMinutes": 30,
            } }),
        )
        .await;
    let term = &created["createTerm"];
    assert_eq!(term["lotteryMinutes"], 30);
    let hash = term["lotterySeedHash"]
        .as_str()
        .expect("the hash is published");
    assert_eq!(hash.len(), 64);
    assert!(
        term["lotterySeed"].is_null(),
        "the seed stays secret: {term}"
    );
    (campus, token, parse_id(&term["id"]), opens)
}

/// A course of the campus with one section in `term` meeting on `day` 09:00–10:00.
async fn section(
    app: &TestApp,
    campus: &Campus,
    term: Uuid,
    name: &str,
    capacity: i32,
    waitlist: bool,
    day: &str,
) -> Uuid {
    let course = app
        .create_course(&campus.teacher_token, json!({ "name": name }))
        .await;
    app.create_section(
        &campus.teacher_token,
        course,
        json!({
            "name": "S1", "capacity": capacity, "termId": term, "waitlistEnabled": waitlist,
            "schedule": [{ "weekday": day, "start": "09:00", "end": "10:00", "room": "R1" }],
        }),
    )
    .await
}

async fn rows_of(app: &TestApp, ids: &[Uuid]) -> Vec<enrollment::Model> {
    enrollment::Entity::find()
        .filter(enrollment::Column::Id.is_in(ids.iter().copied()))
        .all(&app.db)
        .await
        .unwrap()
}

/// The events that drew requests (the system's, from REQUESTED), in the order they were
/// written.
async fn draw_events(app: &TestApp) -> Vec<enrollment_event::Model> {
    enrollment_event::Entity::find()
        .filter(enrollment_event::Column::FromStatus.eq("REQUESTED"))
        .filter(enrollment_event::Column::ActorId.is_null())
        .order_by_asc(enrollment_event::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
}

fn kinds(inbox: &Value) -> Vec<String> {
    inbox["myNotifications"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["kind"].as_str().unwrap().to_owned())
        .collect()
}

both_backends!(
    a_lottery_draws_requests_in_the_published_order,
    appointments_have_draws_of_their_own_and_the_seed_waits_for_the_last,
);

async fn a_lottery_draws_requests_in_the_published_order(app: TestApp) {
    let (campus, coordinator, term, _) = lottery_term(&app, "Lottery U").await;
    let popular = section(&app, &campus, term, "Popular", 2, true, "TUESDAY").await;
    let overlapping = section(&app, &campus, term, "Overlapping", 5, true, "MONDAY").await;
    let small = section(&app, &campus, term, "Small", 1, false, "FRIDAY").await;
    let other = section(&app, &campus, term, "Other", 5, true, "WEDNESDAY").await;
    let twin = section(&app, &campus, term, "Twin", 5, true, "MONDAY").await;
    let students = app.students(&campus, 7).await;
    let (late_id, late_token) = students[6].clone();
    let _ = late_id;

    // Before the window: not open. In its first 30 minutes every request is REQUESTED.
    assert_eq!(
        error_code(
            &app.gql(Some(&students[0].1), ENROLL, json!({ "s": popular }))
                .await
        ),
        "ENROLLMENT_NOT_OPEN"
    );
    app.state.store.clock().advance(Duration::days(1));
    let mut popular_requests = Vec::new();
    for (_, token) in &students[..6] {
        let made = app.enroll(token, popular).await.expect("a request");
        assert_eq!(made.status, "REQUESTED");
        popular_requests.push(made.id);
    }
    // A request is active for the one-per-course rule, holds no seat, conflicts with nothing.
    assert_eq!(
        app.enroll(&students[0].1, popular).await.unwrap_err(),
        "ALREADY_ENROLLED"
    );
    let seats = app
        .ok(
            None,
            "query($id: UUID!) { section(id: $id) { seatsAvailable waitlistCount } }",
            json!({ "id": popular }),
        )
        .await;
    assert_eq!(seats["section"]["seatsAvailable"], 2);
    assert_eq!(seats["section"]["waitlistCount"], 0);
    // Student 0 also asks for two roomy sections that meet at the same time, and students 0
    // and 1 for the one-seat section without a waitlist: the draw decides.
    let clash = app
        .enroll(&students[0].1, overlapping)
        .await
        .expect("conflicts wait for the draw");
    assert_eq!(clash.status, "REQUESTED");
    let twin_request = app.enroll(&students[0].1, twin).await.unwrap();
    let small_requests = [
        app.enroll(&students[0].1, small).await.unwrap().id,
        app.enroll(&students[1].1, small).await.unwrap().id,
    ];
    // A request is not switched: a seat goes to it only in the draw.
    let sibling = app
        .create_section(
            &campus.teacher_token,
            app.section_row(popular).await.course_id,
            json!({ "name": "S2", "capacity": 5, "termId": term,
                    "schedule": [{ "weekday": "THURSDAY", "start": "09:00", "end": "10:00" }] }),
        )
        .await;
    let switched = app
        .gql(
            Some(&students[2].1),
            "mutation($e: UUID!, $s: UUID!) {
                switchSection(enrollmentId: $e, toSectionId: $s) { status } }",
            json!({ "e": popular_requests[2], "s": sibling }),
        )
        .await;
    assert_eq!(error_code(&switched), "INVALID_TRANSITION", "{switched}");
    // Student 5 withdraws before the draw: no record, out of the draw.
    let withdrawn = app
        .ok(
            Some(&students[5].1),
            "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status record } }",
            json!({ "e": popular_requests[5] }),
        )
        .await;
    assert_eq!(withdrawn["withdraw"]["status"], "WITHDRAWN");
    assert_eq!(withdrawn["withdraw"]["record"], "NONE");

    // The window ends: until the draw is done, the students of that window wait.
    app.state.store.clock().advance(Duration::minutes(31));
    let waiting = app
        .gql(Some(&late_token), ENROLL, json!({ "s": other }))
        .await;
    assert_eq!(error_code(&waiting), "UNAVAILABLE", "{waiting}");
    let changed = app
        .gql(
            Some(&coordinator),
            "mutation($id: UUID!) { updateTerm(id: $id, input: { lotteryMinutes: 10 }) { id } }",
            json!({ "id": term }),
        )
        .await;
    assert_eq!(error_code(&changed), "CONFLICT", "{changed}");

    // The draw, in batches of two; nothing is left for a second run.
    assert_eq!(draw_due(&app.state.store, 2).await.unwrap(), 9);
    assert_eq!(draw_due(&app.state.store, 2).await.unwrap(), 0);
    let revealed = app.ok(None, TERM, json!({ "id": term })).await;
    let seed = revealed["term"]["lotterySeed"]
        .as_str()
        .expect("the seed is revealed after the draw");
    assert_eq!(
        sha256_hex(seed),
        revealed["term"]["lotterySeedHash"].as_str().unwrap()
    );
    assert!(revealed["term"]["lotteryDrawnAt"].is_string());

    // Every request was drawn once, in ascending HMAC order of its id under the seed.
    let events = draw_events(&app).await;
    let drawn: Vec<Uuid> = events.iter().map(|e| e.enrollment_id).collect();
    let mut expected: Vec<Uuid> = popular_requests[..5]
        .iter()
        .chain(&small_requests)
        .chain([&clash.id, &twin_request.id])
        .copied()
        .collect();
    expected.sort_by_key(|id| rank(seed, *id));
    assert_eq!(drawn, expected);
    let rows: HashMap<Uuid, enrollment::Model> = rows_of(&app, &expected)
        .await
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    for row in rows.values() {
        assert_eq!(
            row.lottery_rank.as_deref(),
            Some(rank(seed, row.id).as_str())
        );
    }
    // The popular section: the two best ranks hold its seats, the rest wait in rank order.
    let mut popular_order: Vec<Uuid> = popular_requests[..5].to_vec();
    popular_order.sort_by_key(|id| rank(seed, *id));
    let statuses: Vec<EnrollmentStatus> = popular_order.iter().map(|id| rows[id].status).collect();
    assert_eq!(
        statuses,
        [
            EnrollmentStatus::Registered,
            EnrollmentStatus::Registered,
            EnrollmentStatus::Waitlisted,
            EnrollmentStatus::Waitlisted,
            EnrollmentStatus::Waitlisted,
        ]
    );
    let tickets: Vec<i64> = popular_order[2..]
        .iter()
        .map(|id| rows[id].waitlist_ticket.unwrap())
        .collect();
    assert!(tickets.windows(2).all(|w| w[0] < w[1]), "{tickets:?}");
    // The one seat without a waitlist: the better rank has it, the other is refused.
    let mut small_order = small_requests.to_vec();
    small_order.sort_by_key(|id| rank(seed, *id));
    assert_eq!(rows[&small_order[0]].status, EnrollmentStatus::Registered);
    let refused = &rows[&small_order[1]];
    assert_eq!(refused.status, EnrollmentStatus::Cancelled);
    assert!(
        refused.reason.as_deref().unwrap().contains("SECTION_FULL"),
        "{:?}",
        refused.reason
    );
    // Student 0's two roomy Monday requests: whichever ranks first takes a seat, the other
    // conflicts with it.
    let mine = [twin_request.id, clash.id];
    let (first, second) = if rank(seed, mine[0]) < rank(seed, mine[1]) {
        (mine[0], mine[1])
    } else {
        (mine[1], mine[0])
    };
    assert_eq!(rows[&first].status, EnrollmentStatus::Registered);
    assert_eq!(rows[&second].status, EnrollmentStatus::Cancelled);
    assert!(
        rows[&second]
            .reason
            .as_deref()
            .unwrap()
            .contains("SCHEDULE_CONFLICT")
    );
    // Seats as counted match the rows.
    let popular_row: section::Model = app.section_row(popular).await;
    assert_eq!(popular_row.registered_count, 2);
    assert_eq!(popular_row.waitlist_count, 3);

    // Each drawn student heard the outcome; the one who withdrew heard nothing.
    let inbox = "{ myNotifications { edges { node { kind } } } }";
    for (_, token) in &students[..5] {
        let got = kinds(&app.ok(Some(token), inbox, json!({})).await);
        assert!(got.iter().any(|k| k == "LOTTERY_DRAWN"), "{got:?}");
    }
    assert!(kinds(&app.ok(Some(&students[5].1), inbox, json!({})).await).is_empty());
    // After the draw, first come, first served.
    assert_eq!(
        app.enroll(&late_token, other).await.unwrap().status,
        "REGISTERED"
    );
}

async fn appointments_have_draws_of_their_own_and_the_seed_waits_for_the_last(app: TestApp) {
    let (campus, coordinator, term, opens) = lottery_term(&app, "Ticket Lottery U").await;
    let seminar = section(&app, &campus, term, "Seminar", 1, true, "TUESDAY").await;
    let (early, early_token) = app.student(&campus).await;
    let (_, late_token) = app.student(&campus).await;
    let (seniors, senior_tokens): (Vec<Uuid>, Vec<String>) =
        app.students(&campus, 1).await.into_iter().unzip();
    let _ = early;
    // The senior opens an hour before everybody else, with a lottery window of their own.
    app.ok(
        Some(&coordinator),
        "mutation($t: UUID!, $g: [AppointmentGroupInput!]!) {
            assignAppointments(termId: $t, groups: $g) }",
        json!({ "t": term, "g": [{ "opensAt": opens - Duration::hours(1), "userIds": seniors }] }),
    )
    .await;
    app.state
        .store
        .clock()
        .advance(Duration::days(1) - Duration::hours(1));
    let senior = app.enroll(&senior_tokens[0], seminar).await.unwrap();
    assert_eq!(senior.status, "REQUESTED");
    // The senior's window ends: their draw gives them the one seat.
    app.state.store.clock().advance(Duration::minutes(31));
    assert_eq!(draw_due(&app.state.store, 10).await.unwrap(), 1);
    assert_eq!(
        app.enrollment_row(senior.id).await.status,
        EnrollmentStatus::Registered
    );
    // The term's own window is still to come: the seed stays secret.
    let term_now = app.ok(None, TERM, json!({ "id": term })).await;
    assert!(term_now["term"]["lotterySeed"].is_null(), "{term_now}");
    // Everybody else's window: two requests, a draw of their own, then the seed.
    app.state.store.clock().advance(Duration::minutes(30));
    let a = app.enroll(&early_token, seminar).await.unwrap();
    let b = app.enroll(&late_token, seminar).await.unwrap();
    assert_eq!(
        (a.status.as_str(), b.status.as_str()),
        ("REQUESTED", "REQUESTED")
    );
    app.state.store.clock().advance(Duration::minutes(30));
    assert_eq!(draw_due(&app.state.store, 10).await.unwrap(), 2);
    let revealed = app.ok(None, TERM, json!({ "id": term })).await;
    let seed = revealed["term"]["lotterySeed"].as_str().expect("revealed");
    let (first, second) = if rank(seed, a.id) < rank(seed, b.id) {
        (a.id, b.id)
    } else {
        (b.id, a.id)
    };
    let rows = rows_of(&app, &[first, second]).await;
    let of = |id| rows.iter().find(|r| r.id == id).unwrap();
    assert_eq!(of(first).status, EnrollmentStatus::Waitlisted);
    assert_eq!(of(second).status, EnrollmentStatus::Waitlisted);
    assert!(of(first).waitlist_ticket < of(second).waitlist_ticket);
}

/// Three sections, `per` requests in each from distinct students, made in the lottery window
/// and left for the draw; the request ids.
async fn requests_to_draw(app: &TestApp, per: usize) -> (Uuid, Vec<Uuid>) {
    let (campus, _, term, _) = lottery_term(app, "Busy U").await;
    let mut sections = Vec::new();
    for (i, day) in ["MONDAY", "TUESDAY", "WEDNESDAY"].into_iter().enumerate() {
        sections.push(section(app, &campus, term, &format!("C{i}"), 5, true, day).await);
    }
    let students = app.students(&campus, per).await;
    app.state.store.clock().advance(Duration::days(1));
    let mut ids = Vec::new();
    for (_, token) in &students {
        for section in &sections {
            ids.push(app.enroll(token, *section).await.unwrap().id);
        }
    }
    app.state.store.clock().advance(Duration::minutes(31));
    (term, ids)
}

/// What must hold after any draw, however many replicas ran it and whatever died: every
/// request drawn exactly once, in HMAC order, and the seats as counted are the rows.
async fn drawn_exactly_once_in_order(app: &TestApp, term: Uuid, ids: &[Uuid]) {
    let revealed = app.ok(None, TERM, json!({ "id": term })).await;
    let seed = revealed["term"]["lotterySeed"]
        .as_str()
        .expect("revealed")
        .to_owned();
    let events = draw_events(app).await;
    let drawn: Vec<Uuid> = events.iter().map(|e| e.enrollment_id).collect();
    let mut expected = ids.to_vec();
    expected.sort_by_key(|id| rank(&seed, *id));
    assert_eq!(drawn, expected, "each request drawn once, in order");
    for row in rows_of(app, ids).await {
        assert_ne!(row.status, EnrollmentStatus::Requested);
    }
    let sections = section::Entity::find()
        .filter(section::Column::TermId.eq(term))
        .all(&app.db)
        .await
        .unwrap();
    for s in sections {
        let rows = enrollment::Entity::find()
            .filter(enrollment::Column::SectionId.eq(s.id))
            .all(&app.db)
            .await
            .unwrap();
        let count = |status| rows.iter().filter(|r| r.status == status).count() as i32;
        assert_eq!(s.registered_count, count(EnrollmentStatus::Registered));
        assert_eq!(s.waitlist_count, count(EnrollmentStatus::Waitlisted));
        assert_eq!(s.registered_count, 5);
    }
}

/// Two replicas draw at once: the term's lock lets one batch run at a time, and each takes
/// the lowest-ranked requests left, so every request is drawn once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_draw_each_request_once() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let (term, ids) = requests_to_draw(&app, 30).await;
    let clock = app.state.store.clock().clone();
    let replica = app.state_with(|s| s.clock = clock).await;
    let (one, two) = tokio::join!(draw_due(&app.state.store, 4), draw_due(&replica.store, 4));
    assert_eq!(one.unwrap() + two.unwrap(), ids.len());
    // The reveal may have run on either; once more settles it.
    draw_due(&app.state.store, 4).await.unwrap();
    drawn_exactly_once_in_order(&app, term, &ids).await;
}

/// A replica dies in the middle of a draw: held up inside a batch (the test holds the row of
/// a student it comes to), its task is aborted and its connections closed. The batches it
/// committed stay, the one it was in rolls back, and the next replica goes on in the same
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_draw_leaves_no_half_draw() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let (term, ids) = requests_to_draw(&app, 30).await;
    // The draw's order is in the rows (the seed is not revealed yet): a student none of
    // whose requests is among the first six, to hold up the draw in its third batch or later.
    let mut ranked = rows_of(&app, &ids).await;
    ranked.sort_by(|a, b| a.lottery_rank.cmp(&b.lottery_rank));
    let early: Vec<Uuid> = ranked[..6].iter().map(|r| r.user_id).collect();
    let (position, held) = ranked
        .iter()
        .enumerate()
        .find(|(_, r)| !early.contains(&r.user_id))
        .map(|(i, r)| (i, r.user_id))
        .unwrap();
    let holder = app.db.begin().await.unwrap();
    holder
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT id FROM users WHERE id = $1 FOR UPDATE",
            [held.into()],
        ))
        .await
        .unwrap();
    let clock = app.state.store.clock().clone();
    let replica = app.state_with(|s| s.clock = clock).await;
    let store = replica.store.clone();
    let dying = tokio::spawn(async move { draw_due(&store, 3).await });
    // The batches before the held one commit; then the replica waits on the lock.
    let committed = position / 3 * 3;
    let waiting = "SELECT count(*) FROM pg_stat_activity \
        WHERE datname = current_database() AND wait_event_type = 'Lock'";
    for _ in 0..1000 {
        let locked = app
            .db
            .query_one_raw(Statement::from_string(DatabaseBackend::Postgres, waiting))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap();
        if locked > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(draw_events(&app).await.len(), committed);
    dying.abort();
    assert!(dying.await.unwrap_err().is_cancelled());
    drop(replica);
    holder.commit().await.unwrap();
    let left = rows_of(&app, &ids)
        .await
        .iter()
        .filter(|r| r.status == EnrollmentStatus::Requested)
        .count();
    assert_eq!(
        left,
        ids.len() - committed,
        "the held batch rolled back whole"
    );
    draw_due(&app.state.store, 3).await.unwrap();
    drawn_exactly_once_in_order(&app, term, &ids).await;
}

both_backends!(a_batch_draws_what_each_request_alone_would);

/// The requests of [`every_outcome`]: (student, section) in the order they are made.
const ASKS: [(usize, &str); 22] = [
    (0, "Popular"),
    (1, "Popular"),
    (2, "Popular"),
    (3, "Popular"),
    (4, "Popular"),
    (5, "Popular"),
    (0, "Small"),
    (1, "Small"),
    (2, "Small"),
    (0, "Monday"),
    (1, "Monday"),
    (0, "Twin"),
    (3, "Approval"),
    (4, "Approval"),
    (5, "Advanced"),
    (6, "Advanced"),
    (6, "Closing"),
    (7, "Gone"),
    (1, "Gone"),
    (2, "Behind"),
    (3, "Behind"),
    (4, "Behind"),
];

/// One request's outcome: status, waitlist ticket, reason, whether it holds a seat and was
/// cancelled, and its events (from, to, reason).
type Decided = (String, Option<i64>, Option<String>, bool, bool, Vec<String>);

/// What a draw decided, app-independent: per request (in [`ASKS`] order) its outcome; per
/// section its counters; the earlier waiter's row; each student's notifications; the requests
/// in the order the draw wrote them.
#[derive(Debug, PartialEq)]
struct Outcome {
    requests: Vec<Decided>,
    sections: Vec<(String, [i64; 5])>,
    waiter: (String, Option<String>),
    inboxes: Vec<Vec<String>>,
    order: Vec<usize>,
}

/// On `app`, a LOTTERY term whose requests, once drawn, come out every way a draw can decide:
/// seats, places on the waitlist, PENDING where staff approve, and refusals for a full section
/// without a waitlist, a clash with a seat granted earlier in the draw or held before it, a
/// certification lapsed since the request, a window closed and a section deactivated since; a
/// request withdrawn before the draw; a section whose earlier waiter may not take the seats
/// free behind him (the promotion `enroll` runs then). The ranks are set to one fixed order on
/// every app. Draws with `batch` requests per batch, or each request alone (`None`); returns
/// what it decided and how many requests it drew.
async fn every_outcome(app: &TestApp, batch: Option<usize>) -> (Outcome, usize) {
    use entity::{certification, notification};
    use roster::service::lottery;
    use sea_orm::{ActiveModelTrait, Set, sea_query::Expr};

    let (campus, _, term, opens) = lottery_term(app, "Lottery E").await;
    let t = &campus.teacher_token;
    let mut sections: Vec<(&str, Uuid)> = Vec::new();
    for (name, capacity, waitlist, day) in [
        ("Popular", 2, true, "TUESDAY"),
        ("Small", 1, false, "FRIDAY"),
        ("Monday", 5, true, "MONDAY"),
        ("Twin", 5, true, "MONDAY"),
        ("Closing", 5, true, "WEDNESDAY"),
        ("Gone", 5, true, "SATURDAY"),
        ("Behind", 2, true, "SUNDAY"),
        ("Clash", 5, true, "SUNDAY"),
    ] {
        let id = section(app, &campus, term, name, capacity, waitlist, day).await;
        sections.push((name, id));
    }
    let afternoon = |day: &str| json!([{ "weekday": day, "start": "14:00", "end": "15:00" }]);
    let course = app.create_course(t, json!({ "name": "Approval" })).await;
    let fields = json!({ "name": "S1", "capacity": 1, "termId": term,
        "requiresApproval": true, "schedule": afternoon("THURSDAY") });
    sections.push(("Approval", app.create_section(t, course, fields).await));
    let basics = json!({ "name": "Basics", "certificateValidityMonths": 12 });
    let basics = app.create_course(t, basics).await;
    let basics_section = app
        .create_section(t, basics, json!({ "name": "S1", "capacity": 10 }))
        .await;
    let course = json!({ "name": "Advanced", "prerequisiteIds": [basics] });
    let course = app.create_course(t, course).await;
    let fields = json!({ "name": "S1", "capacity": 5, "termId": term,
        "schedule": afternoon("FRIDAY") });
    sections.push(("Advanced", app.create_section(t, course, fields).await));
    let id_of = |name: &str| sections.iter().find(|(n, _)| *n == name).unwrap().1;
    let students = app.students(&campus, 8).await;
    // Certifications of Basics: student 5's lapses between the request and the draw.
    for (k, valid) in [(5, Duration::minutes(10)), (6, Duration::days(400))] {
        let done = app
            .seat(students[k].0, basics_section, EnrollmentStatus::Completed)
            .await;
        certification::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(students[k].0),
            course_id: Set(basics),
            enrollment_id: Set(done),
            issued_at: Set(now()),
            expires_at: Set(Some(opens + valid)),
            expiry_notified_at: Set(None),
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
    // Student 7 waits in Behind but holds a seat that clashes with it; student 4 holds one too.
    app.seat(students[7].0, id_of("Clash"), EnrollmentStatus::Registered)
        .await;
    let waiter = app
        .seat(students[7].0, id_of("Behind"), EnrollmentStatus::Waitlisted)
        .await;
    app.seat(students[4].0, id_of("Clash"), EnrollmentStatus::Registered)
        .await;

    app.state.store.clock().advance(Duration::days(1));
    let mut requests = Vec::new();
    for (k, name) in ASKS {
        let made = app
            .enroll(&students[k].1, id_of(name))
            .await
            .unwrap_or_else(|code| panic!("student {k} asks for {name}: {code}"));
        assert_eq!(made.status, "REQUESTED");
        requests.push(made.id);
    }
    // One fixed order for every app: ASKS permuted (request i is drawn (7 i mod 22)th). The
    // waits behind Behind's earlier waiter (1st and 8th) split a batch of 500, and student 0's
    // Twin (11th) and Monday (19th) then clash inside one batch.
    for (i, id) in requests.iter().enumerate() {
        enrollment::Entity::update_many()
            .col_expr(
                enrollment::Column::LotteryRank,
                Expr::value(format!("{:064x}", (i * 7) % ASKS.len())),
            )
            .filter(enrollment::Column::Id.eq(*id))
            .exec(&app.db)
            .await
            .unwrap();
    }
    assert_eq!(
        app.withdraw(&students[5].1, requests[5]).await.unwrap(),
        "WITHDRAWN"
    );
    section::Entity::update_many()
        .col_expr(
            section::Column::EnrollmentClosesAt,
            Expr::value(opens + Duration::minutes(20)),
        )
        .filter(section::Column::Id.eq(id_of("Closing")))
        .exec(&app.db)
        .await
        .unwrap();
    section::Entity::update_many()
        .col_expr(section::Column::IsActive, Expr::value(false))
        .filter(section::Column::Id.eq(id_of("Gone")))
        .exec(&app.db)
        .await
        .unwrap();

    app.state.store.clock().advance(Duration::minutes(31));
    let draw_at = app
        .enrollment_row(requests[0])
        .await
        .lottery_draw_at
        .unwrap();
    let store = &app.state.store;
    let drawn = match batch {
        Some(batch) => lottery::draw(store, term, draw_at, batch).await.unwrap(),
        None => lottery::draw_each(store, term, draw_at).await.unwrap(),
    };

    // The one time that differs between apps: when Closing closed.
    let closed = (opens + Duration::minutes(20))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let scrub = |text: String| text.replace(&closed, "CLOSED");
    let rows = rows_of(app, &requests).await;
    let mut decided = Vec::new();
    for id in &requests {
        let row = rows.iter().find(|r| r.id == *id).unwrap();
        let events = app
            .events_of(*id)
            .await
            .iter()
            .map(|e| {
                scrub(format!(
                    "{:?}→{:?} {:?}",
                    e.from_status, e.to_status, e.reason
                ))
            })
            .collect();
        decided.push((
            format!("{:?}", row.status),
            row.waitlist_ticket,
            row.reason.clone().map(scrub),
            row.seat_reserved_at.is_some(),
            row.cancelled_at.is_some(),
            events,
        ));
    }
    let mut counters = Vec::new();
    for (name, id) in &sections {
        let s = app.section_row(*id).await;
        let counts = [
            s.registered_count,
            s.pending_count,
            s.waitlist_count,
            s.offered_count,
        ]
        .map(i64::from);
        counters.push((
            (*name).to_owned(),
            [counts[0], counts[1], counts[2], counts[3], s.waitlist_seq],
        ));
    }
    let waiter = app.enrollment_row(waiter).await;
    let mut inboxes = Vec::new();
    for (id, _) in &students {
        let inbox = notification::Entity::find()
            .filter(notification::Column::UserId.eq(*id))
            .order_by_asc(notification::Column::CreatedAt)
            .order_by_asc(notification::Column::Id)
            .all(&app.db)
            .await
            .unwrap();
        inboxes.push(
            inbox
                .into_iter()
                .map(|n| scrub(format!("{}: {}", n.kind, n.body)))
                .collect(),
        );
    }
    let order = draw_events(app)
        .await
        .iter()
        .map(|e| {
            requests
                .iter()
                .position(|id| *id == e.enrollment_id)
                .unwrap()
        })
        .collect();
    let outcome = Outcome {
        requests: decided,
        sections: counters,
        waiter: (format!("{:?}", waiter.status), waiter.skip_reason),
        inboxes,
        order,
    };
    (outcome, drawn)
}

/// The draw decides a batch of requests at once on rows it read once; each request alone goes
/// through the checks and seat SQL of `enroll`. On the same requests in the same order, both
/// decide the same: every row, event, counter and notification.
async fn a_batch_draws_what_each_request_alone_would(app: TestApp) {
    let alone = TestApp::new(app.backend).await;
    let (each, drawn_each) = every_outcome(&alone, None).await;
    for batch in [4, 500] {
        let app = if batch == 4 {
            &app
        } else {
            &TestApp::new(app.backend).await
        };
        let (batched, drawn) = every_outcome(app, Some(batch)).await;
        assert_eq!(drawn, drawn_each);
        assert_eq!(batched, each, "[{:?}] in batches of {batch}", app.backend);
    }
    assert_eq!(drawn_each, ASKS.len() - 1, "all but the withdrawn request");
    // The scenario reaches every outcome it is written for.
    let status = |i: usize| each.requests[i].0.as_str();
    let reason = |i: usize| each.requests[i].2.clone().unwrap_or_default();
    let statuses: Vec<&str> = (0..ASKS.len()).map(status).collect();
    for wanted in [
        "Registered",
        "Pending",
        "Waitlisted",
        "Cancelled",
        "Withdrawn",
    ] {
        assert!(statuses.contains(&wanted), "{wanted} in {statuses:?}");
    }
    let reasons: Vec<String> = (0..ASKS.len()).map(reason).collect();
    for code in [
        "SECTION_FULL",
        "SCHEDULE_CONFLICT",
        "PREREQUISITES_MISSING",
        "ENROLLMENT_CLOSED",
        "SECTION_INACTIVE",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(code)),
            "{code} in {reasons:?}"
        );
    }
    // Behind: the earlier waiter is passed over, the two first drawn take its free seats.
    assert_eq!(each.waiter.0, "Waitlisted");
    let behind: Vec<&str> = [19, 20].iter().map(|&i| status(i)).collect();
    assert_eq!(behind, ["Registered", "Registered"], "{:?}", each.requests);
    assert!(
        reason(21).contains("SCHEDULE_CONFLICT"),
        "student 4 holds Clash"
    );
}

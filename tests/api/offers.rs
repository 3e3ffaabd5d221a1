//! Offer mode (docs/design.md#offer-mode), on both databases: a freed seat is offered to the
//! earliest eligible waiter and held; accepted, declined or expired, it ends exactly once, and
//! the seat goes on to the next eligible waiter. The test clock moves time; nothing sleeps
//! past a deadline.

use std::{sync::Arc, time::Duration};

use chrono::Duration as Span;
use entity::{enrollment, enrollment_event, types::EnrollmentStatus};
use roster::{
    app::App,
    service::offers::{expire_due, remind_due},
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Campus, TestApp, both_backends, error_code};

const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";
const WITHDRAW: &str = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }";
const ACCEPT: &str =
    "mutation($e: UUID!) { acceptOffer(enrollmentId: $e) { status offerExpiresAt } }";
const DECLINE: &str = "mutation($e: UUID!) { declineOffer(enrollmentId: $e) { status } }";
const MINE: &str = "{ myEnrollments { id status offerExpiresAt skipReason section { id } } }";
const SEATS: &str = "query($id: UUID!) { section(id: $id) {
    seatsAvailable isFull offeredCount waitlistCount promotionMode offerHours } }";
const INBOX: &str = "{ myNotifications(first: 20) { nodes { kind title body } } }";
const UPDATE: &str = "mutation($id: UUID!, $input: UpdateSectionInput!) {
    updateSection(id: $id, input: $input) { promotionMode offerHours } }";

/// A new course with one section meeting on Monday 09:00–10:30, with `more` of its input.
async fn class(app: &TestApp, campus: &Campus, more: Value) -> Uuid {
    let course = app
        .create_course(&campus.teacher_token, json!({ "name": "Offered course" }))
        .await;
    let mut fields = json!({
        "name": "Evening",
        "capacity": 1,
        "schedule": [{ "weekday": "MONDAY", "start": "09:00", "end": "10:30" }],
    });
    if let (Some(fields), Some(more)) = (fields.as_object_mut(), more.as_object()) {
        fields.extend(more.clone());
    }
    app.create_section(&campus.teacher_token, course, fields)
        .await
}

/// A section in offer mode (one seat, offers held `hours`) whose seat is taken, with `waiting`
/// students queued behind it in order: the section, the seat's enrollment and its holder's
/// token, and each waiter's enrollment and token.
async fn queue<const N: usize>(
    app: &TestApp,
    campus: &Campus,
    hours: i32,
) -> (Uuid, (Uuid, String), [(Uuid, String); N]) {
    let section = class(
        app,
        campus,
        json!({ "promotionMode": "OFFER", "offerHours": hours }),
    )
    .await;
    let (_, holder) = app.student(campus).await;
    let (held, _) = enroll(app, &holder, section).await;
    let mut waiters = Vec::with_capacity(N);
    for _ in 0..N {
        let (_, token) = app.student(campus).await;
        let (id, status) = enroll(app, &token, section).await;
        assert_eq!(status, "WAITLISTED");
        waiters.push((id, token));
    }
    let waiters = waiters.try_into().expect("N waiters");
    (section, (held, holder), waiters)
}

/// Runs a mutation on one enrollment: its status, or the error code.
async fn act(app: &TestApp, token: &str, mutation: &str, id: Uuid) -> Result<Value, String> {
    let response = app.gql(Some(token), mutation, json!({ "e": id })).await;
    if response.get("errors").is_some() {
        return Err(error_code(&response));
    }
    let data = response["data"].as_object().expect("data").clone();
    Ok(data.into_iter().next().expect("one field").1)
}

async fn enroll(app: &TestApp, token: &str, section: Uuid) -> (Uuid, String) {
    let data = app.ok(Some(token), ENROLL, json!({ "s": section })).await;
    let node = &data["enroll"];
    (
        node["id"].as_str().unwrap().parse().unwrap(),
        node["status"].as_str().unwrap().to_owned(),
    )
}

/// The viewer's enrollment in `section`, as `myEnrollments` shows it.
async fn mine(app: &TestApp, token: &str, section: Uuid) -> Value {
    let data = app.ok(Some(token), MINE, json!({})).await;
    data["myEnrollments"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["section"]["id"] == json!(section))
        .unwrap_or_else(|| panic!("no enrollment in {section}: {data}"))
        .clone()
}

async fn kinds(app: &TestApp, token: &str) -> Vec<String> {
    let data = app.ok(Some(token), INBOX, json!({})).await;
    data["myNotifications"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// The transitions recorded for an enrollment, oldest first.
async fn trail(app: &TestApp, id: Uuid) -> Vec<(Option<EnrollmentStatus>, EnrollmentStatus)> {
    app.events_of(id)
        .await
        .into_iter()
        .map(|e| (e.from_status, e.to_status))
        .collect()
}

/// Decline and expiry each hand the seat to the next *eligible* waiter: one with an
/// overlapping seat is passed over (told why) and keeps their place.
async fn decline_and_expiry_pass_the_seat_to_the_next_eligible_waiter(app: TestApp) {
    use EnrollmentStatus::*;
    let campus = app.campus("Offers").await;
    let (offering, (held, holder), waiters) = queue::<4>(&app, &campus, 4).await;
    let [busy, second, third, fourth] = waiters.map(|(_, token)| token);
    let elsewhere = class(&app, &campus, json!({ "capacity": 5 })).await;
    // The first waiter takes an overlapping seat elsewhere: ineligible when the seat frees.
    enroll(&app, &busy, elsewhere).await;

    let before = app.state.store.now();
    act(&app, &holder, WITHDRAW, held).await.unwrap();
    let skipped = mine(&app, &busy, offering).await;
    assert_eq!(skipped["status"], "WAITLISTED", "{skipped}");
    assert!(
        skipped["skipReason"].as_str().unwrap().contains("schedule"),
        "{skipped}"
    );
    let offer = mine(&app, &second, offering).await;
    assert_eq!(offer["status"], "OFFERED", "{offer}");
    let deadline: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(offer["offerExpiresAt"].clone()).unwrap();
    let held_for = deadline - before;
    assert!(
        held_for >= Span::hours(4) && held_for < Span::hours(4) + Span::minutes(1),
        "{held_for}"
    );
    assert_eq!(kinds(&app, &second).await, ["OFFERED"]);
    assert_eq!(kinds(&app, &busy).await, ["SKIPPED"]);
    // The offered seat is taken, for discovery and for the section.
    let seats = app.ok(Some(&third), SEATS, json!({ "id": offering })).await;
    assert_eq!(
        seats["section"],
        json!({ "seatsAvailable": 0, "isFull": true, "offeredCount": 1, "waitlistCount": 3,
                "promotionMode": "OFFER", "offerHours": 4 })
    );
    app.assert_section_consistent(offering).await;

    // Declined: the next eligible waiter is offered the seat in the same write.
    let second_id: Uuid = offer["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        act(&app, &second, DECLINE, second_id).await.unwrap()["status"],
        "WITHDRAWN"
    );
    assert_eq!(mine(&app, &third, offering).await["status"], "OFFERED");
    assert_eq!(mine(&app, &busy, offering).await["status"], "WAITLISTED");
    assert_eq!(
        kinds(&app, &second).await,
        ["OFFERED"],
        "declining is the student's own act: nothing new to tell"
    );
    let third_id: Uuid = mine(&app, &third, offering).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Not yet due: the sweep leaves it alone.
    app.state.store.clock().advance(Span::hours(3));
    assert_eq!(expire_due(&app.state.store).await.unwrap(), 0);
    // Due: passed on once, however often the sweep runs.
    app.state
        .store
        .clock()
        .advance(Span::hours(1) + Span::seconds(1));
    assert_eq!(expire_due(&app.state.store).await.unwrap(), 1);
    assert_eq!(expire_due(&app.state.store).await.unwrap(), 0);
    let lapsed = app.enrollment_row(third_id).await;
    assert_eq!(lapsed.status, Withdrawn);
    assert_eq!(lapsed.reason.as_deref(), Some("offer expired"));
    assert_eq!(lapsed.offer_expires_at, None);
    assert_eq!(
        trail(&app, third_id).await,
        [
            (None, Waitlisted),
            (Some(Waitlisted), Offered),
            (Some(Offered), Withdrawn)
        ]
    );
    assert_eq!(kinds(&app, &third).await, ["OFFER_EXPIRED", "OFFERED"]);
    assert_eq!(mine(&app, &fourth, offering).await["status"], "OFFERED");
    assert_eq!(mine(&app, &busy, offering).await["status"], "WAITLISTED");
    app.assert_section_consistent(offering).await;
    // Oversight counts an offer as the end of a wait.
    let course = app.section_row(offering).await.course_id;
    let oversight = app
        .ok(
            Some(&campus.teacher_token),
            "query($c: UUID!) { oversight(courseId: $c) { waitBeforePromotion { promotions } } }",
            json!({ "c": course }),
        )
        .await;
    assert_eq!(
        oversight["oversight"]["waitBeforePromotion"]["promotions"], 3,
        "{oversight}"
    );
}

/// Accepting takes the seat (PENDING where staff approve), re-checking eligibility; an offer
/// past its deadline is passed on by the accept itself; only the student or staff may answer.
async fn accepting_takes_the_seat_once_and_only_in_time(app: TestApp) {
    use EnrollmentStatus::*;
    let campus = app.campus("Offers").await;
    let (offering, (held, holder), waiters) = queue::<2>(&app, &campus, 2).await;
    let [(first_id, first), (second_id, second)] = waiters;
    let (_, stranger) = app.student(&campus).await;

    // Nothing offered yet.
    assert_eq!(
        act(&app, &first, ACCEPT, first_id).await,
        Err("INVALID_TRANSITION".into())
    );
    act(&app, &holder, WITHDRAW, held).await.unwrap();
    assert_eq!(
        act(&app, &stranger, ACCEPT, first_id).await,
        Err("FORBIDDEN".into())
    );
    assert_eq!(
        act(&app, &stranger, DECLINE, first_id).await,
        Err("FORBIDDEN".into())
    );
    let accepted = act(&app, &first, ACCEPT, first_id).await.unwrap();
    assert_eq!(
        accepted,
        json!({ "status": "REGISTERED", "offerExpiresAt": null })
    );
    assert_eq!(
        act(&app, &first, ACCEPT, first_id).await,
        Err("INVALID_TRANSITION".into()),
        "accepted once"
    );
    assert_eq!(
        act(&app, &first, DECLINE, first_id).await,
        Err("INVALID_TRANSITION".into())
    );
    assert_eq!(
        trail(&app, first_id).await,
        [
            (None, Waitlisted),
            (Some(Waitlisted), Offered),
            (Some(Offered), Registered)
        ]
    );

    // Withdrawing an accepted seat offers it on; past the deadline the accept finds it
    // expired, passes it on in the same write, and says so.
    let (_, third) = app.student(&campus).await;
    let (third_id, status) = enroll(&app, &third, offering).await;
    assert_eq!(status, "WAITLISTED");
    act(&app, &first, WITHDRAW, first_id).await.unwrap();
    assert_eq!(app.enrollment_row(second_id).await.status, Offered);
    app.state.store.clock().advance(Span::hours(2));
    // No sweep has run: the accept itself notices.
    assert_eq!(
        act(&app, &second, ACCEPT, second_id).await,
        Err("OFFER_EXPIRED".into())
    );
    let lapsed = app.enrollment_row(second_id).await;
    assert_eq!(
        (lapsed.status, lapsed.reason.as_deref()),
        (Withdrawn, Some("offer expired"))
    );
    assert_eq!(app.enrollment_row(third_id).await.status, Offered);
    assert_eq!(
        expire_due(&app.state.store).await.unwrap(),
        0,
        "already passed on"
    );

    // Accepting re-checks eligibility: the course deactivated meanwhile refuses the seat,
    // and the offer stays open.
    let course = app.section_row(offering).await.course_id;
    app.ok(
        Some(&campus.teacher_token),
        "mutation($id: UUID!) { updateCourse(id: $id, input: { isActive: false }) { id } }",
        json!({ "id": course }),
    )
    .await;
    let before = app.snapshot().await;
    assert_eq!(
        act(&app, &third, ACCEPT, third_id).await,
        Err("SECTION_INACTIVE".into())
    );
    assert_eq!(app.snapshot().await, before, "a refusal changes nothing");
    app.ok(
        Some(&campus.teacher_token),
        "mutation($id: UUID!) { updateCourse(id: $id, input: { isActive: true }) { id } }",
        json!({ "id": course }),
    )
    .await;
    // Staff may answer for the student.
    assert_eq!(
        act(&app, &campus.teacher_token, ACCEPT, third_id)
            .await
            .unwrap()["status"],
        "REGISTERED"
    );
    app.assert_section_consistent(offering).await;

    // Into a section that requires approval, an accepted offer awaits approval.
    let approving = class(
        &app,
        &campus,
        json!({ "promotionMode": "OFFER", "requiresApproval": true }),
    )
    .await;
    let (pending, _) = enroll(&app, &holder, approving).await;
    let (waiter, _) = enroll(&app, &first, approving).await;
    app.ok(
        Some(&campus.teacher_token),
        "mutation($e: UUID!) { approveEnrollment(enrollmentId: $e) { status } }",
        json!({ "e": pending }),
    )
    .await;
    act(&app, &holder, WITHDRAW, pending).await.unwrap();
    assert_eq!(
        act(&app, &first, ACCEPT, waiter).await.unwrap()["status"],
        "PENDING"
    );
    app.assert_section_consistent(approving).await;
}

/// `offerHours` is 1 to 168; the status check of the database takes OFFERED and nothing
/// unknown; switching a section from OFFER to AUTOMATIC leaves its open offers running, and
/// the next freed seat is given at once.
async fn settings_bounds_and_switching_modes(app: TestApp) {
    use EnrollmentStatus::*;
    let campus = app.campus("Offers").await;
    let course = app
        .create_course(&campus.teacher_token, json!({ "name": "Bounds" }))
        .await;
    for hours in [0, 169, -1] {
        let response = app
            .gql(
                Some(&campus.teacher_token),
                "mutation($input: CreateSectionInput!) { createSection(input: $input) { id } }",
                json!({ "input": { "courseId": course, "name": "S", "promotionMode": "OFFER",
                                   "offerHours": hours } }),
            )
            .await;
        assert_eq!(
            error_code(&response),
            "BAD_USER_INPUT",
            "{hours}: {response}"
        );
        assert_eq!(response["errors"][0]["extensions"]["field"], "offerHours");
    }
    let defaults = app
        .ok(
            Some(&campus.teacher_token),
            "mutation($input: CreateSectionInput!) {
                createSection(input: $input) { promotionMode offerHours } }",
            json!({ "input": { "courseId": course, "name": "Defaults" } }),
        )
        .await;
    assert_eq!(
        defaults["createSection"],
        json!({ "promotionMode": "AUTOMATIC", "offerHours": 24 })
    );

    let section = class(
        &app,
        &campus,
        json!({ "capacity": 2, "promotionMode": "OFFER" }),
    )
    .await;
    let response = app
        .gql(
            Some(&campus.teacher_token),
            UPDATE,
            json!({ "id": section, "input": { "offerHours": 200 } }),
        )
        .await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT");
    let (_, a) = app.student(&campus).await;
    let (_, b) = app.student(&campus).await;
    let (_, c) = app.student(&campus).await;
    let (_, d) = app.student(&campus).await;
    let (a_id, _) = enroll(&app, &a, section).await;
    let (b_id, _) = enroll(&app, &b, section).await;
    let (c_id, _) = enroll(&app, &c, section).await;
    let (d_id, _) = enroll(&app, &d, section).await;
    act(&app, &a, WITHDRAW, a_id).await.unwrap();
    assert_eq!(app.enrollment_row(c_id).await.status, Offered);
    let switched = app
        .ok(
            Some(&campus.teacher_token),
            UPDATE,
            json!({ "id": section, "input": { "promotionMode": "AUTOMATIC", "offerHours": 168 } }),
        )
        .await;
    assert_eq!(
        switched["updateSection"],
        json!({ "promotionMode": "AUTOMATIC", "offerHours": 168 })
    );
    assert_eq!(
        app.enrollment_row(c_id).await.status,
        Offered,
        "the open offer keeps running"
    );
    act(&app, &b, WITHDRAW, b_id).await.unwrap();
    assert_eq!(
        app.enrollment_row(d_id).await.status,
        Registered,
        "the next seat is given at once"
    );
    app.assert_section_consistent(section).await;

    // The database's own check: OFFERED is a status, a made-up one is not.
    let bogus = app
        .db
        .execute_raw(Statement::from_string(
            app.db.get_database_backend(),
            "UPDATE enrollments SET status = 'BOGUS'",
        ))
        .await;
    assert!(
        bogus.is_err(),
        "the status check still refuses unknown statuses"
    );
}

/// The holder of an open offer is reminded once, a few hours before the deadline.
async fn an_offer_is_reminded_once_before_it_lapses(app: TestApp) {
    let campus = app.campus("Offers").await;
    let (_, (held, holder), waiters) = queue::<1>(&app, &campus, 24).await;
    let [(_, waiter)] = waiters;
    act(&app, &holder, WITHDRAW, held).await.unwrap();
    let store = &app.state.store;
    assert_eq!(remind_due(store).await.unwrap(), 0, "a day ahead");
    store.clock().advance(Span::hours(20));
    assert_eq!(remind_due(store).await.unwrap(), 0, "four hours ahead");
    store.clock().advance(Span::hours(1) + Span::seconds(1));
    assert_eq!(remind_due(store).await.unwrap(), 1, "three hours ahead");
    assert_eq!(remind_due(store).await.unwrap(), 0, "once");
    let inbox = app.ok(Some(&waiter), INBOX, json!({})).await;
    let reminder = &inbox["myNotifications"]["nodes"][0];
    assert_eq!(reminder["kind"], "OFFER_EXPIRING", "{inbox}");
    assert!(
        reminder["body"].as_str().unwrap().contains("UTC"),
        "the deadline is in the text: {reminder}"
    );
}

/// Another replica on the same database and clock (the clock is shared so both see the
/// same deadlines).
async fn replica(app: &TestApp) -> Arc<App> {
    let clock = app.state.store.clock().clone();
    app.state_with(|s| s.clock = clock).await
}

/// Two replicas sweeping at once: each expired offer is passed on exactly once, with one
/// WITHDRAWN event and one new offer.
async fn two_replicas_racing_on_expired_offers_pass_each_on_once(app: TestApp) {
    use EnrollmentStatus::*;
    const SECTIONS: usize = 12;
    let campus = app.campus("Offers").await;
    let mut offers = Vec::new();
    let mut next = Vec::new();
    for _ in 0..SECTIONS {
        let (_, (held, holder), waiters) = queue::<2>(&app, &campus, 1).await;
        let [(offered, _), (waiting, _)] = waiters;
        act(&app, &holder, WITHDRAW, held).await.unwrap();
        offers.push(offered);
        next.push(waiting);
    }
    let other = replica(&app).await;
    app.state
        .store
        .clock()
        .advance(Span::hours(1) + Span::seconds(1));
    let (a, b) = tokio::join!(expire_due(&app.state.store), expire_due(&other.store));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, SECTIONS, "[{:?}] {a} + {b}", app.backend);
    for (offer, waiting) in offers.iter().zip(&next) {
        let ended = enrollment_event::Entity::find()
            .filter(enrollment_event::Column::EnrollmentId.eq(*offer))
            .filter(enrollment_event::Column::FromStatus.eq(Offered))
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(ended.len(), 1, "one end of the offer");
        assert_eq!(ended[0].to_status, Withdrawn);
        assert_eq!(
            trail(&app, *waiting).await,
            [(None, Waitlisted), (Some(Waitlisted), Offered)],
            "one new offer"
        );
    }
    other.begin_shutdown();
}

/// With no request at all, the timer of `roster serve` passes an expired offer on; a server
/// started after a deadline it missed does so at once.
async fn the_timer_passes_on_offers_after_a_restart_that_missed_the_deadline(app: TestApp) {
    use EnrollmentStatus::*;
    let campus = app.campus("Offers").await;
    let (offering, (held, holder), waiters) = queue::<2>(&app, &campus, 1).await;
    let [(offered, _), (waiting, _)] = waiters;
    act(&app, &holder, WITHDRAW, held).await.unwrap();
    // The deadline passes while no server sweeps (the test app runs no timers).
    app.state.store.clock().advance(Span::hours(2));
    assert_eq!(app.enrollment_row(offered).await.status, Offered);
    let restarted = replica(&app).await;
    restarted.start_timers(Duration::from_secs(3600));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.enrollment_row(offered).await.status == Offered {
        assert!(std::time::Instant::now() < deadline, "never passed on");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.enrollment_row(waiting).await.status, Offered);
    // And on its interval, with no request, the next one.
    let ticking = replica(&app).await;
    ticking.start_timers(Duration::from_millis(50));
    app.state.store.clock().advance(Span::hours(2));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.enrollment_row(waiting).await.status == Offered {
        assert!(std::time::Instant::now() < deadline, "the timer never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row: enrollment::Model = app.enrollment_row(waiting).await;
    assert_eq!(row.reason.as_deref(), Some("offer expired"));
    restarted.begin_shutdown();
    ticking.begin_shutdown();
    app.assert_section_consistent(offering).await;
}

both_backends!(
    decline_and_expiry_pass_the_seat_to_the_next_eligible_waiter,
    accepting_takes_the_seat_once_and_only_in_time,
    settings_bounds_and_switching_modes,
    an_offer_is_reminded_once_before_it_lapses,
    two_replicas_racing_on_expired_offers_pass_each_on_once,
    the_timer_passes_on_offers_after_a_restart_that_missed_the_deadline,
);

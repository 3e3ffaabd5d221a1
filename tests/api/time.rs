//! Time (docs/design.md#time), on both databases: terms and their validation, section dates,
//! schedule conflicts on dated occurrences on every path that checks them, enrollment
//! windows, the deadline ladder, and what the API says of it. The test clock moves time;
//! nothing sleeps.

use chrono::{DateTime, Duration, Utc};
use entity::{enrollment_event, types::Role};
use roster::service::terms::notify_closed;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Campus, TestApp, both_backends, error_code, now, parse_id};

const CREATE_TERM: &str =
    "mutation($input: CreateTermInput!) { createTerm(input: $input) { id timeZone } }";
const UPDATE_TERM: &str = "mutation($id: UUID!, $input: UpdateTermInput!) {
    updateTerm(id: $id, input: $input) { id enrollmentClosesAt } }";
const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";
const PROXY: &str =
    "mutation($s: UUID!, $u: UUID!) { enroll(sectionId: $s, userId: $u) { id status } }";
const WITHDRAW: &str = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status record } }";
const SWITCH: &str = "mutation($e: UUID!, $s: UUID!) {
    switchSection(enrollmentId: $e, toSectionId: $s) { status section { id } } }";

/// A time the API gave.
fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

/// A campus whose coordinator manages terms, and that coordinator's token.
async fn campus_with_coordinator(app: &TestApp, name: &str) -> (Campus, String) {
    let campus = app.campus(name).await;
    let coordinator = app
        .user(Role::Coordinator, Some(campus.organization.id))
        .await;
    let token = app.token(coordinator.id);
    (campus, token)
}

/// Creates a term with `input` (name and code filled in) as `token`'s holder.
async fn term(app: &TestApp, token: &str, code: &str, mut input: Value) -> Uuid {
    input["name"] = json!(format!("Term {code}"));
    input["code"] = json!(code);
    let data = app
        .ok(Some(token), CREATE_TERM, json!({ "input": input }))
        .await;
    parse_id(&data["createTerm"]["id"])
}

/// A section to make: its term, its meeting (weekday, start, end), its own first and last dates.
type Spec<'a> = (Option<Uuid>, Meeting<'a>, Option<(&'a str, &'a str)>);
type Meeting<'a> = (&'a str, &'a str, &'a str);

/// A course of the campus with one section per `(term, meeting, dates)`: the meeting's weekday,
/// start and end; the section's own first and last dates, if any.
async fn sections<const N: usize>(
    app: &TestApp,
    campus: &Campus,
    name: &str,
    specs: [Spec<'_>; N],
) -> [Uuid; N] {
    let course = app
        .create_course(&campus.teacher_token, json!({ "name": name }))
        .await;
    let mut ids = [Uuid::nil(); N];
    for (i, (term, (day, start, end), dates)) in specs.into_iter().enumerate() {
        let mut fields = json!({
            "name": format!("S{i}"),
            "capacity": 5,
            "termId": term,
            "schedule": [{ "weekday": day, "start": start, "end": end, "room": "R1" }],
        });
        if let Some((from, to)) = dates {
            fields["startsOn"] = json!(from);
            fields["endsOn"] = json!(to);
        }
        ids[i] = app
            .create_section(&campus.teacher_token, course, fields)
            .await;
    }
    ids
}

both_backends!(
    terms_refuse_bad_input_naming_the_field,
    conflicts_are_on_dated_occurrences_on_every_path,
    meetings_keep_their_wall_clock_time_across_daylight_saving,
    windows_hold_students_and_record_staff_as_late,
    promotions_stop_at_the_close_and_waiters_are_told_once,
    withdrawals_follow_the_deadline_ladder,
    discovery_filters_by_term_with_constant_statements,
);

async fn terms_refuse_bad_input_naming_the_field(app: TestApp) {
    let (campus, coordinator) = campus_with_coordinator(&app, "Terms U").await;
    let org = campus.organization.id;
    // The organization's time zone is the default of its new terms.
    let set_zone = "mutation($id: UUID!, $z: String) {
        updateOrganization(id: $id, input: { timeZone: $z }) { timeZone } }";
    let data = app
        .ok(
            Some(&coordinator),
            set_zone,
            json!({ "id": org, "z": "Europe/Berlin" }),
        )
        .await;
    assert_eq!(data["updateOrganization"]["timeZone"], "Europe/Berlin");
    let bad_zone = app
        .gql(
            Some(&coordinator),
            set_zone,
            json!({ "id": org, "z": "Mars/Olympus" }),
        )
        .await;
    assert_eq!(error_code(&bad_zone), "BAD_USER_INPUT");
    let good = json!({
        "name": "Fall 2026", "code": "2026-FA",
        "startsOn": "2026-09-01", "endsOn": "2026-12-15",
        "holidays": ["2026-11-26"],
        "enrollmentOpensAt": "2026-08-01T08:00:00Z", "enrollmentClosesAt": "2026-09-15T00:00:00Z",
        "dropDeadline": "2026-09-20T00:00:00Z", "withdrawDeadline": "2026-11-01T00:00:00Z",
    });
    let created = app
        .ok(Some(&coordinator), CREATE_TERM, json!({ "input": good }))
        .await;
    assert_eq!(created["createTerm"]["timeZone"], "Europe/Berlin");
    let fall = parse_id(&created["createTerm"]["id"]);

    let before = app.snapshot().await;
    for (field, change) in [
        ("timeZone", json!({ "timeZone": "Nowhere/Land" })),
        ("endsOn", json!({ "endsOn": "2026-08-01" })),
        ("holidays", json!({ "holidays": ["2027-01-01"] })),
        (
            "enrollmentClosesAt",
            json!({ "enrollmentClosesAt": "2026-07-01T00:00:00Z" }),
        ),
        (
            "dropDeadline",
            json!({ "dropDeadline": "2026-12-01T00:00:00Z" }),
        ),
        ("code", json!({ "code": "no spaces" })),
    ] {
        let mut input = good.clone();
        input["code"] = json!("2026-X");
        for (k, v) in change.as_object().unwrap() {
            input[k] = v.clone();
        }
        let answer = app
            .gql(Some(&coordinator), CREATE_TERM, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{field}: {answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["field"], field,
            "{answer}"
        );
    }
    // A date that is not a date is refused by the scalar.
    let mut input = good.clone();
    input["startsOn"] = json!("2026-9-1");
    let answer = app
        .gql(Some(&coordinator), CREATE_TERM, json!({ "input": input }))
        .await;
    assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer}");
    // A second term with the same code is a conflict; teachers and other organizations'
    // coordinators manage no terms here.
    let duplicate = app
        .gql(Some(&coordinator), CREATE_TERM, json!({ "input": good }))
        .await;
    assert_eq!(error_code(&duplicate), "CONFLICT");
    let teacher = app
        .gql(
            Some(&campus.teacher_token),
            CREATE_TERM,
            json!({ "input": good }),
        )
        .await;
    assert_eq!(error_code(&teacher), "FORBIDDEN");
    let (_, stranger) = campus_with_coordinator(&app, "Other U").await;
    let foreign = app
        .gql(
            Some(&stranger),
            UPDATE_TERM,
            json!({ "id": fall, "input": { "name": "Mine now" } }),
        )
        .await;
    assert_eq!(error_code(&foreign), "FORBIDDEN");
    assert_eq!(
        app.snapshot().await,
        before,
        "refused input changed something"
    );

    // Section dates live inside the term, and only in a term.
    let course = app
        .create_course(&campus.teacher_token, json!({ "name": "Dated" }))
        .await;
    let section = "mutation($input: CreateSectionInput!) { createSection(input: $input) { id } }";
    for (field, fields) in [
        (
            "startsOn",
            json!({ "termId": fall, "startsOn": "2026-08-30" }),
        ),
        ("endsOn", json!({ "termId": fall, "endsOn": "2026-12-16" })),
        ("startsOn", json!({ "startsOn": "2026-09-01" })),
        (
            "endsOn",
            json!({ "termId": fall, "startsOn": "2026-10-01", "endsOn": "2026-09-30" }),
        ),
        (
            "enrollmentClosesAt",
            json!({ "termId": fall, "enrollmentOpensAt": "2026-09-20T00:00:00Z" }),
        ),
    ] {
        let mut input = json!({ "courseId": course, "name": "A", "capacity": 3 });
        for (k, v) in fields.as_object().unwrap() {
            input[k] = v.clone();
        }
        let answer = app
            .gql(
                Some(&campus.teacher_token),
                section,
                json!({ "input": input }),
            )
            .await;
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{field}: {answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["field"], field,
            "{answer}"
        );
    }
    let [first_half] = sections(
        &app,
        &campus,
        "Half",
        [(
            Some(fall),
            ("MONDAY", "09:00", "10:00"),
            Some(("2026-09-01", "2026-10-15")),
        )],
    )
    .await;
    // Shrinking the term past a section's own dates is refused too.
    let shrink = app
        .gql(
            Some(&coordinator),
            UPDATE_TERM,
            json!({ "id": fall, "input": { "endsOn": "2026-10-01", "holidays": [] } }),
        )
        .await;
    assert_eq!(error_code(&shrink), "BAD_USER_INPUT", "{shrink}");
    assert_eq!(shrink["errors"][0]["extensions"]["field"], "endsOn");

    // `terms` lists the organization's terms with their sections; the section shows its term.
    let listed = app
        .ok(
            None,
            "query($o: UUID) { terms(organizationId: $o) { code timeZone holidays
               dropDeadline sections { id startsOn endsOn term { code } } } }",
            json!({ "o": org }),
        )
        .await;
    let terms = listed["terms"].as_array().unwrap();
    assert_eq!(terms.len(), 1, "{listed}");
    assert_eq!(terms[0]["holidays"], json!(["2026-11-26"]));
    assert_eq!(
        time(&terms[0]["dropDeadline"]),
        "2026-09-20T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    let shown = &terms[0]["sections"][0];
    assert_eq!(parse_id(&shown["id"]), first_half);
    assert_eq!(shown["startsOn"], "2026-09-01");
    assert_eq!(shown["endsOn"], "2026-10-15");
    assert_eq!(shown["term"]["code"], "2026-FA");
}

async fn conflicts_are_on_dated_occurrences_on_every_path(app: TestApp) {
    let (campus, coordinator) = campus_with_coordinator(&app, "Dates U").await;
    let fall = term(
        &app,
        &coordinator,
        "FA",
        json!({ "timeZone": "America/New_York", "startsOn": "2026-09-01",
                "endsOn": "2026-12-15", "holidays": ["2026-10-12"] }),
    )
    .await;
    let spring = term(
        &app,
        &coordinator,
        "SP",
        json!({ "timeZone": "America/New_York", "startsOn": "2027-01-15",
                "endsOn": "2027-05-01" }),
    )
    .await;
    let monday = ("MONDAY", "09:00", "10:30");
    let first_half = Some(("2026-09-01", "2026-10-20"));
    let second_half = Some(("2026-10-21", "2026-12-15"));
    let [held] = sections(&app, &campus, "Held", [(Some(fall), monday, first_half)]).await;
    let (_, token) = app.student(&campus).await;
    app.enroll(&token, held).await.expect("the first seat");

    // Enroll. The same weekly meeting in another term, or in the other half of the term, is no
    // conflict, nor a section whose only date is a holiday; overlapping dates are, and one
    // shared date is enough. Each candidate is a course of its own.
    for (name, spec, conflict) in [
        ("Other term", (Some(spring), monday, None), false),
        ("Other half", (Some(fall), monday, second_half), false),
        (
            "Holiday only",
            (Some(fall), monday, Some(("2026-10-12", "2026-10-12"))),
            false,
        ),
        (
            "Overlapping",
            (Some(fall), ("MONDAY", "10:00", "11:00"), None),
            true,
        ),
        (
            "One date",
            (Some(fall), monday, Some(("2026-10-19", "2026-10-19"))),
            true,
        ),
        ("Undated", (None, monday, None), true),
    ] {
        let [section] = sections(&app, &campus, name, [spec]).await;
        let answer = app.gql(Some(&token), ENROLL, json!({ "s": section })).await;
        if conflict {
            assert_eq!(error_code(&answer), "SCHEDULE_CONFLICT", "{name}: {answer}");
            let message = answer["errors"][0]["message"].as_str().unwrap();
            assert!(
                message.contains(" on 2026-"),
                "{name} names the date: {message}"
            );
        } else {
            assert!(answer["errors"].is_null(), "{name}: {answer}");
            let id = parse_id(&answer["data"]["enroll"]["id"]);
            app.withdraw(&token, id).await.expect("leaves again");
        }
    }

    // Switch: a spring seat moves to the second half of fall, not to the first half.
    let [spring_twin, fall_twin, clash_twin] = sections(
        &app,
        &campus,
        "Twins",
        [
            (Some(spring), monday, None),
            (Some(fall), monday, second_half),
            (Some(fall), monday, Some(("2026-09-01", "2026-09-30"))),
        ],
    )
    .await;
    let twin = app.enroll(&token, spring_twin).await.expect("spring twin");
    let clash = app
        .gql(
            Some(&token),
            SWITCH,
            json!({ "e": twin.id, "s": clash_twin }),
        )
        .await;
    assert_eq!(error_code(&clash), "SCHEDULE_CONFLICT", "{clash}");
    let switched = app
        .gql(
            Some(&token),
            SWITCH,
            json!({ "e": twin.id, "s": fall_twin }),
        )
        .await;
    assert!(switched["errors"].is_null(), "{switched}");

    // Promotion: a waiter whose seat would overlap another of theirs on a date is passed over
    // and keeps their place; one in another term is promoted though the weekly times match.
    let [full_fall] = sections(
        &app,
        &campus,
        "Full fall",
        [(Some(fall), ("MONDAY", "10:00", "12:00"), None)],
    )
    .await;
    let [full_spring] = sections(
        &app,
        &campus,
        "Full spring",
        [(Some(spring), ("MONDAY", "10:00", "12:00"), None)],
    )
    .await;
    let one_seat = "mutation($id: UUID!) { updateSection(id: $id, input: { capacity: 1 }) { id } }";
    let (_, holder) = app.student(&campus).await;
    let mut seats = Vec::new();
    for section in [full_fall, full_spring] {
        app.ok(
            Some(&campus.teacher_token),
            one_seat,
            json!({ "id": section }),
        )
        .await;
        seats.push(app.enroll(&holder, section).await.expect("the only seat"));
    }
    let (_, waiter) = app.student(&campus).await;
    let queued_fall = app.enroll(&waiter, full_fall).await.expect("a place");
    let queued_spring = app.enroll(&waiter, full_spring).await.expect("a place");
    assert_eq!(queued_fall.status, "WAITLISTED");
    // Then the waiter takes a seat that overlaps the fall section on its first Mondays.
    let [mine] = sections(&app, &campus, "Mine", [(Some(fall), monday, first_half)]).await;
    app.enroll(&waiter, mine)
        .await
        .expect("no overlap with a waitlist place");
    for seat in &seats {
        app.withdraw(&holder, seat.id)
            .await
            .expect("frees the seat");
    }
    let passed_over = app.enrollment_row(queued_fall.id).await;
    assert_eq!(format!("{:?}", passed_over.status), "Waitlisted");
    let why = passed_over.skip_reason.unwrap_or_default();
    assert!(why.contains("2026-09-07"), "{why}");
    let promoted = app.enrollment_row(queued_spring.id).await;
    assert_eq!(format!("{:?}", promoted.status), "Registered");

    // Approval: a pending request whose seat now overlaps on a date is refused.
    let [approving] = sections(
        &app,
        &campus,
        "Approving",
        [(
            Some(fall),
            ("MONDAY", "09:30", "10:00"),
            Some(("2026-11-01", "2026-12-15")),
        )],
    )
    .await;
    app.ok(
        Some(&campus.teacher_token),
        "mutation($id: UUID!) { updateSection(id: $id, input: { requiresApproval: true }) { id } }",
        json!({ "id": approving }),
    )
    .await;
    let (_, asker) = app.student(&campus).await;
    let pending = app.enroll(&asker, approving).await.expect("pending");
    assert_eq!(pending.status, "PENDING");
    let [late_seat] = sections(
        &app,
        &campus,
        "Late seat",
        [(Some(fall), monday, second_half)],
    )
    .await;
    let approve = "mutation($e: UUID!) { approveEnrollment(enrollmentId: $e) { status } }";
    // The pending request holds a seat, so the overlapping enroll is refused first ...
    assert_eq!(
        error_code(
            &app.gql(Some(&asker), ENROLL, json!({ "s": late_seat }))
                .await
        ),
        "SCHEDULE_CONFLICT"
    );
    // ... and a request in another part of the term is approved.
    let [december] = sections(
        &app,
        &campus,
        "December",
        [(Some(fall), monday, Some(("2026-12-08", "2026-12-15")))],
    )
    .await;
    app.ok(
        Some(&campus.teacher_token),
        "mutation($id: UUID!) { updateSection(id: $id, input: { requiresApproval: true }) { id } }",
        json!({ "id": december }),
    )
    .await;
    let (_, other_asker) = app.student(&campus).await;
    app.enroll(&other_asker, mine)
        .await
        .expect("first half seat");
    let december_request = app.enroll(&other_asker, december).await.expect("pending");
    let approved = app
        .ok(
            Some(&campus.teacher_token),
            approve,
            json!({ "e": december_request.id }),
        )
        .await;
    assert_eq!(approved["approveEnrollment"]["status"], "REGISTERED");
}

async fn meetings_keep_their_wall_clock_time_across_daylight_saving(app: TestApp) {
    let (campus, coordinator) = campus_with_coordinator(&app, "Clock U").await;
    let fall = term(
        &app,
        &coordinator,
        "FA",
        json!({ "timeZone": "America/New_York", "startsOn": "2026-09-01",
                "endsOn": "2026-12-15", "holidays": ["2026-10-12"] }),
    )
    .await;
    let [section] = sections(
        &app,
        &campus,
        "Mondays",
        [(Some(fall), ("MONDAY", "09:00", "10:30"), None)],
    )
    .await;
    let data = app
        .ok(
            None,
            "query($id: UUID!) { section(id: $id) { occurrences { date startsAt endsAt room } } }",
            json!({ "id": section }),
        )
        .await;
    let all = data["section"]["occurrences"].as_array().unwrap();
    assert_eq!(all.len(), 14, "15 Mondays less the holiday: {data}");
    let on = |date: &str| all.iter().find(|o| o["date"] == date).cloned();
    assert!(on("2026-10-12").is_none(), "the holiday has no meeting");
    assert_eq!(
        time(&on("2026-10-26").unwrap()["startsAt"]),
        "2026-10-26T13:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(
        time(&on("2026-11-02").unwrap()["startsAt"]),
        "2026-11-02T14:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(
        time(&on("2026-11-02").unwrap()["endsAt"]),
        "2026-11-02T15:30:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(on("2026-11-02").unwrap()["room"], "R1");
}

async fn windows_hold_students_and_record_staff_as_late(app: TestApp) {
    let (campus, coordinator) = campus_with_coordinator(&app, "Window U").await;
    let opens = now() + Duration::days(2);
    let closes = now() + Duration::days(9);
    let term_id = term(
        &app,
        &coordinator,
        "W",
        json!({ "startsOn": "2030-01-07", "endsOn": "2030-04-30",
                "enrollmentOpensAt": opens, "enrollmentClosesAt": closes }),
    )
    .await;
    let [section] = sections(
        &app,
        &campus,
        "Windowed",
        [(Some(term_id), ("TUESDAY", "09:00", "10:00"), None)],
    )
    .await;
    let [early] = sections(
        &app,
        &campus,
        "Early",
        [(Some(term_id), ("WEDNESDAY", "09:00", "10:00"), None)],
    )
    .await;
    // The second section opens a day earlier than its term.
    let own_open = opens - Duration::days(1);
    app.ok(
        Some(&campus.teacher_token),
        "mutation($id: UUID!, $at: DateTime) {
           updateSection(id: $id, input: { enrollmentOpensAt: $at }) { enrollmentOpensAt } }",
        json!({ "id": early, "at": own_open }),
    )
    .await;
    let (student, token) = app.student(&campus).await;
    let before = app.snapshot().await;
    let not_open = app.gql(Some(&token), ENROLL, json!({ "s": section })).await;
    assert_eq!(error_code(&not_open), "ENROLLMENT_NOT_OPEN", "{not_open}");
    let said: DateTime<Utc> = not_open["errors"][0]["extensions"]["opensAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((said - opens).num_seconds().abs() <= 1, "{said} vs {opens}");
    assert_eq!(app.snapshot().await, before, "a refusal changes nothing");

    // Staff enroll the student outside the window: the event says it was late.
    let proxied = app
        .ok(
            Some(&coordinator),
            PROXY,
            json!({ "s": section, "u": student }),
        )
        .await;
    let proxied = parse_id(&proxied["enroll"]["id"]);
    let events = app.events_of(proxied).await;
    let details = events[0].details.clone().unwrap_or_default();
    assert_eq!(details["late"], true, "{details}");
    assert_eq!(details["outsideWindow"], "NOT_OPEN");

    // A day and a half on, the section with its own window is open; the term's is not.
    app.state
        .store
        .clock()
        .advance(Duration::days(1) + Duration::hours(12));
    let (_, other) = app.student(&campus).await;
    assert_eq!(
        error_code(&app.gql(Some(&other), ENROLL, json!({ "s": section })).await),
        "ENROLLMENT_NOT_OPEN"
    );
    app.enroll(&other, early)
        .await
        .expect("its own window is open");
    // Inside the window a student enrolls; after the close, not.
    app.state.store.clock().advance(Duration::days(1));
    app.enroll(&other, section).await.expect("open now");
    app.state.store.clock().advance(Duration::days(7));
    let (_, late) = app.student(&campus).await;
    let closed = app.gql(Some(&late), ENROLL, json!({ "s": section })).await;
    assert_eq!(error_code(&closed), "ENROLLMENT_CLOSED", "{closed}");
    assert!(closed["errors"][0]["extensions"]["closedAt"].is_string());
    // Sections without a term still take anyone at any time.
    let (_, plain) = app
        .course_with_section(&campus, "Timeless", Some(3), "FRIDAY")
        .await;
    app.enroll(&late, plain).await.expect("no term, no window");
}

async fn promotions_stop_at_the_close_and_waiters_are_told_once(app: TestApp) {
    let (campus, coordinator) = campus_with_coordinator(&app, "Close U").await;
    let closes = now() + Duration::days(3);
    let term_id = term(
        &app,
        &coordinator,
        "C",
        json!({ "startsOn": "2030-01-07", "endsOn": "2030-04-30",
                "enrollmentClosesAt": closes }),
    )
    .await;
    let [section] = sections(
        &app,
        &campus,
        "Closing",
        [(Some(term_id), ("THURSDAY", "09:00", "10:00"), None)],
    )
    .await;
    app.ok(
        Some(&campus.teacher_token),
        "mutation($id: UUID!) { updateSection(id: $id, input: { capacity: 1 }) { id } }",
        json!({ "id": section }),
    )
    .await;
    let (_, holder) = app.student(&campus).await;
    let seat = app.enroll(&holder, section).await.expect("the seat");
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let (id, token) = app.student(&campus).await;
        let place = app.enroll(&token, section).await.expect("a place");
        assert_eq!(place.status, "WAITLISTED");
        waiters.push((id, token, place.id));
    }
    assert_eq!(
        notify_closed(&app.state.store).await.unwrap(),
        0,
        "still open"
    );
    app.state.store.clock().advance(Duration::days(4));
    // The seat frees after the close: nobody is promoted, the seat stays free.
    app.withdraw(&holder, seat.id).await.expect("withdraws");
    for (_, _, place) in &waiters {
        let row = app.enrollment_row(*place).await;
        assert_eq!(format!("{:?}", row.status), "Waitlisted");
    }
    assert_eq!(app.section_row(section).await.registered_count, 0);
    // The waiters are told once, whichever replica runs the job and however often.
    assert_eq!(notify_closed(&app.state.store).await.unwrap(), 2);
    assert_eq!(notify_closed(&app.state.store).await.unwrap(), 0);
    let other_replica = app.state_with(|_| {}).await;
    assert_eq!(notify_closed(&other_replica.store).await.unwrap(), 0);
    let inbox = app
        .ok(
            Some(&waiters[0].1),
            "{ myNotifications(first: 10) { nodes { kind title } } }",
            json!({}),
        )
        .await;
    let kinds: Vec<&str> = inbox["myNotifications"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["WINDOW_CLOSED"], "{inbox}");
    // Staff open the window again: the earliest waiter takes the free seat at once.
    app.ok(
        Some(&coordinator),
        UPDATE_TERM,
        json!({ "id": term_id, "input": { "enrollmentClosesAt": now() + Duration::days(30) } }),
    )
    .await;
    let first = app.enrollment_row(waiters[0].2).await;
    assert_eq!(format!("{:?}", first.status), "Registered");
    let second = app.enrollment_row(waiters[1].2).await;
    assert_eq!(format!("{:?}", second.status), "Waitlisted");
}

async fn withdrawals_follow_the_deadline_ladder(app: TestApp) {
    let (campus, coordinator) = campus_with_coordinator(&app, "Ladder U").await;
    let drop = now() + Duration::days(10);
    let withdraw = now() + Duration::days(20);
    let term_id = term(
        &app,
        &coordinator,
        "L",
        json!({ "startsOn": "2030-01-07", "endsOn": "2030-04-30",
                "dropDeadline": drop, "withdrawDeadline": withdraw }),
    )
    .await;
    let [a, b] = sections(
        &app,
        &campus,
        "Ladder",
        [
            (Some(term_id), ("MONDAY", "08:00", "09:00"), None),
            (Some(term_id), ("MONDAY", "12:00", "13:00"), None),
        ],
    )
    .await;
    let [d] = sections(
        &app,
        &campus,
        "Queue",
        [(Some(term_id), ("FRIDAY", "12:00", "13:00"), None)],
    )
    .await;
    let (_, early) = app.student(&campus).await;
    let (_, middle) = app.student(&campus).await;
    let (late_id, late) = app.student(&campus).await;
    let early_seat = app.enroll(&early, a).await.unwrap();
    let middle_seat = app.enroll(&middle, a).await.unwrap();
    let late_seat = app.enroll(&late, a).await.unwrap();

    // Up to the drop deadline: no record.
    let dropped = app
        .ok(Some(&early), WITHDRAW, json!({ "e": early_seat.id }))
        .await;
    assert_eq!(dropped["withdraw"]["record"], "NONE");
    // Between the deadlines: a W.
    app.state.store.clock().advance(Duration::days(15));
    let withdrawn = app
        .ok(Some(&middle), WITHDRAW, json!({ "e": middle_seat.id }))
        .await;
    assert_eq!(withdrawn["withdraw"]["record"], "W");
    // Switching out of a section then is a withdrawal from it: recorded on the event.
    let moved = app
        .ok(Some(&late), SWITCH, json!({ "e": late_seat.id, "s": b }))
        .await;
    assert_eq!(parse_id(&moved["switchSection"]["section"]["id"]), b);
    let events = app.events_of(late_seat.id).await;
    let switch = events.last().unwrap().details.clone().unwrap_or_default();
    assert_eq!(switch["record"], "W", "{switch}");
    // After the withdrawal deadline: students are refused on every path, staff are not.
    app.state.store.clock().advance(Duration::days(10));
    let before = app.snapshot().await;
    let refused = app
        .gql(Some(&late), WITHDRAW, json!({ "e": late_seat.id }))
        .await;
    assert_eq!(error_code(&refused), "DEADLINE_PASSED", "{refused}");
    let refused_switch = app
        .gql(Some(&late), SWITCH, json!({ "e": late_seat.id, "s": a }))
        .await;
    assert_eq!(
        error_code(&refused_switch),
        "DEADLINE_PASSED",
        "{refused_switch}"
    );
    assert_eq!(app.snapshot().await, before, "refusals change nothing");
    let by_staff = app
        .ok(Some(&coordinator), WITHDRAW, json!({ "e": late_seat.id }))
        .await;
    assert_eq!(by_staff["withdraw"]["record"], "W");
    let last: enrollment_event::Model = app.events_of(late_seat.id).await.pop().unwrap();
    assert_eq!(last.details.unwrap_or_default()["late"], true);
    // Leaving a waitlist holds nothing: allowed at any time, no record.
    app.ok(
        Some(&campus.teacher_token),
        "mutation($id: UUID!) { updateSection(id: $id, input: { capacity: 1 }) { id } }",
        json!({ "id": d }),
    )
    .await;
    let (holder, _) = app.student(&campus).await;
    app.ok(Some(&coordinator), PROXY, json!({ "s": d, "u": holder }))
        .await;
    let queued = app
        .ok(Some(&coordinator), PROXY, json!({ "s": d, "u": late_id }))
        .await;
    let queued = parse_id(&queued["enroll"]["id"]);
    let left = app.ok(Some(&late), WITHDRAW, json!({ "e": queued })).await;
    assert_eq!(left["withdraw"]["status"], "WITHDRAWN");
    assert_eq!(left["withdraw"]["record"], "NONE");
    // Staff see the record in `enrollments` and in the export.
    let listed = app
        .ok(
            Some(&coordinator),
            "query($c: UUID!) { enrollments(filter: { sectionId: $c, status: [WITHDRAWN] }) {
                nodes { record } } }",
            json!({ "c": a }),
        )
        .await;
    let mut records: Vec<String> = listed["enrollments"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["record"].as_str().unwrap_or("null").to_owned())
        .collect();
    records.sort();
    assert_eq!(records, ["NONE", "W"], "{listed}");
    let address = app.serve().await;
    let csv = reqwest::Client::new()
        .get(format!(
            "http://{address}/export/enrollments.csv?sectionId={a}&status=WITHDRAWN"
        ))
        .bearer_auth(&coordinator)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",withdrawn_at,record"), "{header}");
    let mut last_cells: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap())
        .collect();
    last_cells.sort_unstable();
    assert_eq!(last_cells, ["NONE", "W"], "{csv}");
}

async fn discovery_filters_by_term_with_constant_statements(app: TestApp) {
    let (campus, coordinator) = campus_with_coordinator(&app, "Discover U").await;
    let fall = term(
        &app,
        &coordinator,
        "FA",
        json!({ "startsOn": "2030-09-01", "endsOn": "2030-12-15" }),
    )
    .await;
    let spring = term(
        &app,
        &coordinator,
        "SP",
        json!({ "startsOn": "2031-01-15", "endsOn": "2031-05-01" }),
    )
    .await;
    for i in 0..6 {
        let which = if i % 2 == 0 { fall } else { spring };
        sections(
            &app,
            &campus,
            &format!("Course {i}"),
            [(Some(which), ("MONDAY", "09:00", "10:00"), None)],
        )
        .await;
    }
    let query = "query($t: UUID, $n: Int) { courses(first: $n, filter: { termId: $t }) {
        totalCount edges { node { name sections { startsOn endsOn enrollmentOpensAt
        term { id code } } } } } }";
    let data = app.ok(None, query, json!({ "t": fall, "n": 10 })).await;
    assert_eq!(data["courses"]["totalCount"], 3, "{data}");
    for edge in data["courses"]["edges"].as_array().unwrap() {
        let section = &edge["node"]["sections"][0];
        assert_eq!(section["term"]["code"], "FA");
        assert_eq!(section["startsOn"], "2030-09-01");
    }
    // The statements a page costs do not grow with its size.
    let mut counts = Vec::new();
    for n in [1, 3] {
        app.reset_statements();
        let page = app
            .ok(None, query, json!({ "t": Value::Null, "n": n }))
            .await;
        assert_eq!(
            page["courses"]["edges"].as_array().unwrap().len(),
            n as usize
        );
        counts.push(app.statement_count());
    }
    assert_eq!(counts[0], counts[1], "statements per page: {counts:?}");
}

both_backends!(offers_follow_the_ladder_and_dated_conflicts);

async fn offers_follow_the_ladder_and_dated_conflicts(app: TestApp) {
    let (campus, coordinator) = campus_with_coordinator(&app, "Offer U").await;
    let term_id = term(
        &app,
        &coordinator,
        "O",
        json!({ "startsOn": "2030-01-07", "endsOn": "2030-04-30",
                "dropDeadline": now() + Duration::days(1),
                "withdrawDeadline": now() + Duration::days(30) }),
    )
    .await;
    let other_term = term(
        &app,
        &coordinator,
        "P",
        json!({ "startsOn": "2030-09-02", "endsOn": "2030-12-20" }),
    )
    .await;
    let monday = ("MONDAY", "09:00", "10:30");
    let offering = |section: Uuid| {
        app.ok(
            Some(&campus.teacher_token),
            "mutation($id: UUID!) { updateSection(id: $id, input: {
                capacity: 1, promotionMode: OFFER, offerHours: 168 }) { id } }",
            json!({ "id": section }),
        )
    };
    let [offered_here] = sections(&app, &campus, "Offered", [(Some(term_id), monday, None)]).await;
    let [offered_there] = sections(
        &app,
        &campus,
        "Elsewhere",
        [(Some(other_term), monday, None)],
    )
    .await;
    offering(offered_here).await;
    offering(offered_there).await;
    let (_, holder) = app.student(&campus).await;
    let seats = [
        app.enroll(&holder, offered_here).await.unwrap(),
        app.enroll(&holder, offered_there).await.unwrap(),
    ];
    let (waiter_id, waiter) = app.student(&campus).await;
    let here = app.enroll(&waiter, offered_here).await.unwrap();
    let there = app.enroll(&waiter, offered_there).await.unwrap();
    for seat in &seats {
        app.withdraw(&holder, seat.id).await.unwrap();
    }
    for offer in [here.id, there.id] {
        let row = app.enrollment_row(offer).await;
        assert_eq!(format!("{:?}", row.status), "Offered");
    }
    // Staff then give the waiter a seat at the same time in the first term, overriding the
    // conflict with the offered seat there: accepting that offer is refused, the other term's
    // is accepted.
    let [mine] = sections(&app, &campus, "Mine", [(Some(term_id), monday, None)]).await;
    app.ok(
        Some(&coordinator),
        "mutation($s: UUID!, $u: UUID!) { enroll(sectionId: $s, userId: $u,
            overrideScheduleConflict: true) { id } }",
        json!({ "s": mine, "u": waiter_id }),
    )
    .await;
    let accept = "mutation($e: UUID!) { acceptOffer(enrollmentId: $e) { status } }";
    let refused = app
        .gql(Some(&waiter), accept, json!({ "e": here.id }))
        .await;
    assert_eq!(error_code(&refused), "SCHEDULE_CONFLICT", "{refused}");
    let taken = app
        .ok(Some(&waiter), accept, json!({ "e": there.id }))
        .await;
    assert_eq!(taken["acceptOffer"]["status"], "REGISTERED");

    // Declining an offer after the drop deadline is a withdrawal recorded as W.
    let [late_offer] = sections(
        &app,
        &campus,
        "Late offer",
        [(Some(term_id), ("FRIDAY", "09:00", "10:00"), None)],
    )
    .await;
    offering(late_offer).await;
    let (_, first) = app.student(&campus).await;
    let (_, second) = app.student(&campus).await;
    let seat = app.enroll(&first, late_offer).await.unwrap();
    let queued = app.enroll(&second, late_offer).await.unwrap();
    app.withdraw(&first, seat.id).await.unwrap();
    assert_eq!(
        format!("{:?}", app.enrollment_row(queued.id).await.status),
        "Offered"
    );
    app.state.store.clock().advance(Duration::days(2));
    let declined = app
        .ok(
            Some(&second),
            "mutation($e: UUID!) { declineOffer(enrollmentId: $e) { status record } }",
            json!({ "e": queued.id }),
        )
        .await;
    assert_eq!(declined["declineOffer"]["status"], "WITHDRAWN");
    assert_eq!(declined["declineOffer"]["record"], "W");
}

both_backends!(appointments_open_enrollment_per_student);

async fn appointments_open_enrollment_per_student(app: TestApp) {
    let (campus, coordinator) = campus_with_coordinator(&app, "Ticket U").await;
    let opens = now() + Duration::days(5);
    let term_id = term(
        &app,
        &coordinator,
        "T",
        json!({ "startsOn": "2030-01-07", "endsOn": "2030-04-30",
                "enrollmentOpensAt": opens }),
    )
    .await;
    let [section] = sections(
        &app,
        &campus,
        "Ticketed",
        [(Some(term_id), ("MONDAY", "09:00", "10:00"), None)],
    )
    .await;
    let (senior, senior_token) = app.student(&campus).await;
    let (junior, junior_token) = app.student(&campus).await;
    let (_, other_token) = app.student(&campus).await;
    let assign = "mutation($t: UUID!, $g: [AppointmentGroupInput!]!) {
        assignAppointments(termId: $t, groups: $g) }";
    let early = now() + Duration::days(1);
    let late = now() + Duration::days(7);
    let groups = json!([
        { "opensAt": now() + Duration::days(3), "userIds": [senior] },
        { "opensAt": late, "userIds": [junior] },
    ]);
    // Only the organization's coordinators and admins assign; only its students are named;
    // nobody twice.
    let teacher = app
        .gql(
            Some(&campus.teacher_token),
            assign,
            json!({ "t": term_id, "g": groups }),
        )
        .await;
    assert_eq!(error_code(&teacher), "FORBIDDEN");
    let (stranger_campus, _) = campus_with_coordinator(&app, "Elsewhere U").await;
    let (stranger, _) = app.student(&stranger_campus).await;
    for bad in [
        json!([{ "opensAt": early, "userIds": [stranger] }]),
        json!([{ "opensAt": early, "userIds": [senior] }, { "opensAt": late, "userIds": [senior] }]),
    ] {
        let answer = app
            .gql(
                Some(&coordinator),
                assign,
                json!({ "t": term_id, "g": bad }),
            )
            .await;
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer}");
        assert_eq!(answer["errors"][0]["extensions"]["field"], "groups");
    }
    let assigned = app
        .ok(
            Some(&coordinator),
            assign,
            json!({ "t": term_id, "g": groups }),
        )
        .await;
    assert_eq!(assigned["assignAppointments"], 2);
    // A new assignment replaces the earlier one.
    let moved = json!([{ "opensAt": early, "userIds": [senior] }]);
    app.ok(
        Some(&coordinator),
        assign,
        json!({ "t": term_id, "g": moved }),
    )
    .await;

    // Each sees their own appointment; coordinators see everyone's; other students nobody's.
    let of = "query($u: UUID!, $t: UUID!) { user(id: $u) { appointment(termId: $t) } }";
    let own = app
        .ok(
            Some(&senior_token),
            of,
            json!({ "u": senior, "t": term_id }),
        )
        .await;
    assert_eq!(
        time(&own["user"]["appointment"]).timestamp(),
        early.timestamp()
    );
    let seen = app
        .ok(Some(&coordinator), of, json!({ "u": junior, "t": term_id }))
        .await;
    assert_eq!(
        time(&seen["user"]["appointment"]).timestamp(),
        late.timestamp()
    );
    let hidden = app
        .ok(Some(&other_token), of, json!({ "u": junior, "t": term_id }))
        .await;
    assert!(hidden["user"]["appointment"].is_null(), "{hidden}");
    let listed = app
        .ok(
            Some(&coordinator),
            "query($t: UUID!) { users(filter: { appointmentTermId: $t }) { totalCount } }",
            json!({ "t": term_id }),
        )
        .await;
    assert_eq!(listed["users"]["totalCount"], 2);

    // Two days on: the senior's appointment has come; the term has not opened for the others,
    // and each is told their own opening time.
    app.state.store.clock().advance(Duration::days(2));
    app.enroll(&senior_token, section)
        .await
        .expect("the senior's time");
    let not_yet = app
        .gql(Some(&junior_token), ENROLL, json!({ "s": section }))
        .await;
    assert_eq!(error_code(&not_yet), "ENROLLMENT_NOT_OPEN");
    assert_eq!(
        time(&not_yet["errors"][0]["extensions"]["opensAt"]).timestamp(),
        late.timestamp()
    );
    let others = app
        .gql(Some(&other_token), ENROLL, json!({ "s": section }))
        .await;
    assert_eq!(
        time(&others["errors"][0]["extensions"]["opensAt"]).timestamp(),
        opens.timestamp()
    );
    // Once the term opens, the junior still waits for their own, later time.
    app.state.store.clock().advance(Duration::days(4));
    app.enroll(&other_token, section)
        .await
        .expect("the term opened");
    assert_eq!(
        error_code(
            &app.gql(Some(&junior_token), ENROLL, json!({ "s": section }))
                .await
        ),
        "ENROLLMENT_NOT_OPEN"
    );
    app.state.store.clock().advance(Duration::days(2));
    app.enroll(&junior_token, section)
        .await
        .expect("their time came");
}

both_backends!(approval_and_reactivation_check_dated_conflicts);

/// Approval and a reactivation's promotions check the seat on dates too: a pending request, or
/// a waiter of an inactive section, whose student meanwhile got an overlapping seat (staff
/// overriding the conflict) is refused or passed over; in another term they are not.
async fn approval_and_reactivation_check_dated_conflicts(app: TestApp) {
    let (campus, coordinator) = campus_with_coordinator(&app, "Approve U").await;
    let fall = term(
        &app,
        &coordinator,
        "F",
        json!({ "startsOn": "2030-09-02", "endsOn": "2030-12-20" }),
    )
    .await;
    let spring = term(
        &app,
        &coordinator,
        "S",
        json!({ "startsOn": "2031-01-13", "endsOn": "2031-05-02" }),
    )
    .await;
    let slot = ("TUESDAY", "13:00", "14:00");
    let approving = "mutation($id: UUID!) { updateSection(id: $id, input: {
        requiresApproval: true }) { id } }";
    let [ask_fall] = sections(&app, &campus, "Ask fall", [(Some(fall), slot, None)]).await;
    let [ask_spring] = sections(&app, &campus, "Ask spring", [(Some(spring), slot, None)]).await;
    for section in [ask_fall, ask_spring] {
        app.ok(
            Some(&campus.teacher_token),
            approving,
            json!({ "id": section }),
        )
        .await;
    }
    let (student, token) = app.student(&campus).await;
    let fall_request = app.enroll(&token, ask_fall).await.unwrap();
    let spring_request = app.enroll(&token, ask_spring).await.unwrap();
    let [given] = sections(&app, &campus, "Given", [(Some(fall), slot, None)]).await;
    let overriding = "mutation($s: UUID!, $u: UUID!) { enroll(sectionId: $s, userId: $u,
        overrideScheduleConflict: true) { status } }";
    app.ok(
        Some(&coordinator),
        overriding,
        json!({ "s": given, "u": student }),
    )
    .await;
    let approve = "mutation($e: UUID!) { approveEnrollment(enrollmentId: $e) { status } }";
    let refused = app
        .gql(Some(&coordinator), approve, json!({ "e": fall_request.id }))
        .await;
    assert_eq!(error_code(&refused), "SCHEDULE_CONFLICT", "{refused}");
    let approved = app
        .ok(
            Some(&coordinator),
            approve,
            json!({ "e": spring_request.id }),
        )
        .await;
    assert_eq!(approved["approveEnrollment"]["status"], "REGISTERED");

    // Reactivation: waiters of two full inactive sections; the student then holds an
    // overlapping fall seat. Reactivating promotes into the spring section, not the fall one.
    let friday = ("FRIDAY", "08:00", "09:00");
    let [wait_fall] = sections(&app, &campus, "Wait fall", [(Some(fall), friday, None)]).await;
    let [wait_spring] =
        sections(&app, &campus, "Wait spring", [(Some(spring), friday, None)]).await;
    let (_, holder) = app.student(&campus).await;
    let (waiter, waiter_token) = app.student(&campus).await;
    let mut places = Vec::new();
    let mut seats = Vec::new();
    for section in [wait_fall, wait_spring] {
        app.ok(
            Some(&campus.teacher_token),
            "mutation($id: UUID!) { updateSection(id: $id, input: { capacity: 1 }) { id } }",
            json!({ "id": section }),
        )
        .await;
        seats.push(app.enroll(&holder, section).await.unwrap());
        places.push(app.enroll(&waiter_token, section).await.unwrap());
    }
    let activity = "mutation($id: UUID!, $on: Boolean!) { updateSection(id: $id,
        input: { isActive: $on }) { id } }";
    for section in [wait_fall, wait_spring] {
        app.ok(
            Some(&campus.teacher_token),
            activity,
            json!({ "id": section, "on": false }),
        )
        .await;
    }
    for seat in &seats {
        app.ok(Some(&coordinator), WITHDRAW, json!({ "e": seat.id }))
            .await;
    }
    let [friday_seat] = sections(&app, &campus, "Friday seat", [(Some(fall), friday, None)]).await;
    app.ok(
        Some(&coordinator),
        overriding,
        json!({ "s": friday_seat, "u": waiter }),
    )
    .await;
    for section in [wait_fall, wait_spring] {
        app.ok(
            Some(&campus.teacher_token),
            activity,
            json!({ "id": section, "on": true }),
        )
        .await;
    }
    let fall_place = app.enrollment_row(places[0].id).await;
    assert_eq!(format!("{:?}", fall_place.status), "Waitlisted");
    assert!(
        fall_place
            .skip_reason
            .is_some_and(|why| why.contains("2030-"))
    );
    let spring_place = app.enrollment_row(places[1].id).await;
    assert_eq!(format!("{:?}", spring_place.status), "Registered");
}

both_backends!(a_section_as_read_matches_its_own_row);

/// The seat's update takes the seat only on the section as the checks read it, dates and
/// window included, by its `updated_at`: the time must round-trip exactly through each
/// database, or every enroll would take the slower path of locking the section first.
async fn a_section_as_read_matches_its_own_row(app: TestApp) {
    use entity::section;
    use sea_orm::{
        ColumnTrait, EntityTrait, QueryFilter,
        sea_query::{Expr, ExprTrait},
    };
    let campus = app.campus("Round U").await;
    let (_, id) = app
        .course_with_section(&campus, "Round trip", Some(3), "MONDAY")
        .await;
    let read = app.section_row(id).await;
    let matched = section::Entity::update_many()
        .col_expr(
            section::Column::Capacity,
            Expr::col(section::Column::Capacity).add(0),
        )
        .filter(section::Column::Id.eq(id))
        .filter(section::Column::UpdatedAt.eq(read.updated_at))
        .exec(&app.db)
        .await
        .unwrap();
    assert_eq!(
        matched.rows_affected, 1,
        "updated_at as read: {}",
        read.updated_at
    );
}

//! The staff side (docs/design.md#who-may-do-what): the scoped `enrollments` listing and its
//! filters and pages, a section's roster, waitlist and pending approvals, teaching assistants,
//! the user directory, internal notes, and attendance for a whole session at once. Who may ask
//! what is the table in `scope.rs`; this module checks what they get.

use entity::types::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, both_backends, error_code, parse_id};

const LIST: &str = "query($f: EnrollmentFilter, $first: Int, $after: String) {
    enrollments(filter: $f, first: $first, after: $after) {
        totalCount edges { cursor node { id user { id } } } pageInfo { hasNextPage endCursor } } }";
const NOTES: &str = "mutation($e: UUID!, $n: String) {
    setEnrollmentNotes(enrollmentId: $e, notes: $n) { notes notesUpdatedAt notesUpdatedBy { id } } }";
const BULK: &str = "mutation($ids: [UUID!]!) {
    completeEnrollments(enrollmentIds: $ids, evidence: { session: 3 }) {
        enrollmentId enrollment { status certification { id } } error { code message } } }";

/// The ids a listing answers, in order.
fn ids(data: &Value) -> Vec<Uuid> {
    data["enrollments"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| parse_id(&e["node"]["id"]))
        .collect()
}

async fn the_listing_filters_and_pages_in_a_stable_order(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let (course, [a, b]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Drawing" }),
            [
                json!({ "name": "A", "capacity": 3 }),
                json!({ "name": "B" }),
            ],
        )
        .await;
    let ada = app.user(Role::Student, Some(campus.organization.id)).await;
    let mut all = Vec::new();
    for i in 0..7 {
        let (id, token) = if i == 0 {
            (ada.id, app.token(ada.id))
        } else {
            app.student(&campus).await
        };
        let section = if i % 2 == 0 { a } else { b };
        let seat = app.enroll(&token, section).await.expect("enrolled");
        all.push((seat.id, id, section, seat.status));
    }
    // A proxy enrollment by the teacher.
    let (proxied, _) = app.student(&campus).await;
    let proxy = "mutation($s: UUID!, $u: UUID!) { enroll(sectionId: $s, userId: $u) { id } }";
    let made = app
        .ok(Some(&t), proxy, json!({ "s": b, "u": proxied }))
        .await;
    let proxy_id = parse_id(&made["enroll"]["id"]);

    let list = |filter: Value, first: i64, after: Value| {
        let t = t.clone();
        let app = &app;
        async move {
            app.ok(
                Some(&t),
                LIST,
                json!({ "f": filter, "first": first, "after": after }),
            )
            .await
        }
    };
    let everything = list(json!({ "courseId": course }), 100, Value::Null).await;
    assert_eq!(everything["enrollments"]["totalCount"], 8);
    let newest_first = ids(&everything);
    let mut expected: Vec<Uuid> = all.iter().map(|e| e.0).chain([proxy_id]).collect();
    expected.reverse();
    assert_eq!(newest_first, expected, "newest first");

    // Pages of three walk the same order, each row once.
    let mut walked = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = list(json!({ "courseId": course }), 3, after.clone()).await;
        walked.extend(ids(&page));
        let info = &page["enrollments"]["pageInfo"];
        if info["hasNextPage"] != true {
            break;
        }
        after = info["endCursor"].clone();
    }
    assert_eq!(walked, newest_first, "pages neither repeat nor skip");

    let count = |data: Value| data["enrollments"]["totalCount"].as_u64().unwrap();
    assert_eq!(
        count(list(json!({ "sectionId": a }), 100, Value::Null).await),
        4
    );
    assert_eq!(
        count(list(json!({ "userId": ada.id }), 100, Value::Null).await),
        1
    );
    assert_eq!(
        count(list(json!({ "status": ["WAITLISTED"] }), 100, Value::Null).await),
        1,
        "section A (3 seats) has one waiting"
    );
    let by_teacher = list(json!({ "enrolledBy": campus.teacher.id }), 100, Value::Null).await;
    assert_eq!(ids(&by_teacher), vec![proxy_id]);
    // A student's e-mail is hidden from the teacher, so the teacher's search does not match
    // it (it would reveal it letter by letter); a coordinator of the organization sees it and
    // finds it, in any case.
    let shouted = ada.email.to_uppercase();
    let hidden = list(json!({ "search": shouted }), 100, Value::Null).await;
    assert_eq!(
        count(hidden),
        0,
        "the teacher may not search hidden e-mails"
    );
    let part = &ada.id.to_string()[24..];
    assert_eq!(
        count(list(json!({ "search": part }), 100, Value::Null).await),
        0
    );
    let coordinator = app
        .user(Role::Coordinator, Some(campus.organization.id))
        .await;
    let found = app
        .ok(
            Some(&app.token(coordinator.id)),
            LIST,
            json!({ "f": { "search": shouted }, "first": 100, "after": null }),
        )
        .await;
    assert_eq!(ids(&found), vec![all[0].0], "search by e-mail, any case");
    // Test names share their first characters; a name search finds them all.
    let named = list(json!({ "search": "STUDENT" }), 100, Value::Null).await;
    assert_eq!(count(named), 8);
    assert_eq!(
        count(
            list(
                json!({ "organizationId": campus.organization.id }),
                100,
                Value::Null
            )
            .await
        ),
        8
    );
    let future = list(
        json!({ "enrolledAfter": "2999-01-01T00:00:00Z" }),
        100,
        Value::Null,
    )
    .await;
    assert_eq!(count(future), 0);
    let past = list(
        json!({ "enrolledBefore": "2999-01-01T00:00:00Z" }),
        100,
        Value::Null,
    )
    .await;
    assert_eq!(count(past), 8);
    let bad = app
        .gql(Some(&t), LIST, json!({ "after": "not-a-cursor" }))
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
}

async fn a_section_shows_its_staff_the_waitlist_in_order_and_pending_requests(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let (_, [full, approval]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Glass" }),
            [
                json!({ "name": "Full", "capacity": 1 }),
                json!({ "name": "Ask", "requiresApproval": true }),
            ],
        )
        .await;
    let mut waiting = Vec::new();
    for i in 0..4 {
        let (_, token) = app.student(&campus).await;
        let seat = app.enroll(&token, full).await.unwrap();
        if i > 0 {
            waiting.push(seat.id);
        }
    }
    let (_, asker) = app.student(&campus).await;
    let request = app.enroll(&asker, approval).await.unwrap();
    let roster = "query($s: UUID!) { section(id: $s) {
        waitlist { id waitlistPosition } pendingApprovals { id }
        enrollments(status: [REGISTERED]) { totalCount } } }";
    let data = app.ok(Some(&t), roster, json!({ "s": full })).await;
    let listed: Vec<(Uuid, i64)> = data["section"]["waitlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (parse_id(&e["id"]), e["waitlistPosition"].as_i64().unwrap()))
        .collect();
    let expected: Vec<(Uuid, i64)> = waiting.iter().copied().zip(1..).collect();
    assert_eq!(listed, expected, "position order, with positions");
    assert_eq!(data["section"]["enrollments"]["totalCount"], 1);
    let data = app.ok(Some(&t), roster, json!({ "s": approval })).await;
    assert_eq!(
        data["section"]["pendingApprovals"][0]["id"],
        json!(request.id)
    );
}

async fn an_assistant_runs_their_section_and_nothing_more(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let (assistant, helper) = app.student(&campus).await;
    let (_, [mine, other]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Ceramics" }),
            [
                json!({ "name": "Mine", "requiresApproval": true, "assistantId": assistant }),
                json!({ "name": "Other", "requiresApproval": true }),
            ],
        )
        .await;
    let shown = app
        .ok(
            Some(&t),
            "query($s: UUID!) { section(id: $s) { assistant { id } } }",
            json!({ "s": mine }),
        )
        .await;
    assert_eq!(shown["section"]["assistant"]["id"], json!(assistant));
    let (_, first) = app.student(&campus).await;
    let (_, second) = app.student(&campus).await;
    let here = app.enroll(&first, mine).await.unwrap().id;
    let there = app.enroll(&second, other).await.unwrap().id;
    let approve = "mutation($e: UUID!) { approveEnrollment(enrollmentId: $e) { status } }";
    let done = app.ok(Some(&helper), approve, json!({ "e": here })).await;
    assert_eq!(done["approveEnrollment"]["status"], "REGISTERED");
    let refused = app.gql(Some(&helper), approve, json!({ "e": there })).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "another section");
    let complete = "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { status } }";
    let done = app.ok(Some(&helper), complete, json!({ "e": here })).await;
    assert_eq!(done["completeEnrollment"]["status"], "COMPLETED");
    let noted = app
        .ok(
            Some(&helper),
            NOTES,
            json!({ "e": here, "n": "brought a kiln" }),
        )
        .await;
    assert_eq!(noted["setEnrollmentNotes"]["notes"], "brought a kiln");
    for (document, variables) in [
        (
            "mutation($e: UUID!) { cancelEnrollment(enrollmentId: $e, reason: \"r\") { id } }",
            json!({ "e": there }),
        ),
        (
            "mutation($s: UUID!) { updateSection(id: $s, input: { capacity: 9 }) { id } }",
            json!({ "s": mine }),
        ),
    ] {
        let refused = app.gql(Some(&helper), document, variables).await;
        assert_eq!(error_code(&refused), "FORBIDDEN", "{document}");
    }
    let elsewhere = app.organization("South").await;
    let outsider = app.user(Role::Student, Some(elsewhere.id)).await;
    let assign = "mutation($s: UUID!, $a: UUID) { updateSection(id: $s, input: { assistantId: $a }) { assistant { id } } }";
    let refused = app
        .gql(Some(&t), assign, json!({ "s": other, "a": outsider.id }))
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    let cleared = app
        .ok(Some(&t), assign, json!({ "s": mine, "a": null }))
        .await;
    assert_eq!(cleared["updateSection"]["assistant"], Value::Null);
}

async fn the_directory_finds_people_within_scope(app: TestApp) {
    let campus = app.campus("North").await;
    let south = app.organization("South").await;
    let ada = app.user(Role::Student, Some(campus.organization.id)).await;
    app.user(Role::Student, Some(south.id)).await;
    let coordinator = app
        .user(Role::Coordinator, Some(campus.organization.id))
        .await;
    let admin = app.user(Role::Admin, None).await;
    let query = "query($f: UserFilter, $first: Int, $after: String) {
        users(filter: $f, first: $first, after: $after) {
            totalCount edges { node { id organization { id } } } pageInfo { hasNextPage endCursor } } }";
    let total = |token: String, filter: Value| {
        let app = &app;
        async move {
            app.ok(Some(&token), query, json!({ "f": filter })).await["users"]["totalCount"]
                .as_u64()
                .unwrap()
        }
    };
    // North: the teacher, Ada, the coordinator. South: one student. The admin: no organization.
    assert_eq!(total(app.token(coordinator.id), json!({})).await, 3);
    assert_eq!(total(campus.teacher_token.clone(), json!({})).await, 3);
    assert_eq!(total(app.token(admin.id), json!({})).await, 5);
    let search = json!({ "search": ada.name.to_lowercase(), "role": "STUDENT" });
    assert_eq!(total(app.token(coordinator.id), search).await, 1);
    let south_only = json!({ "organizationId": south.id });
    assert_eq!(
        total(app.token(coordinator.id), south_only.clone()).await,
        0
    );
    assert_eq!(total(app.token(admin.id), south_only).await, 1);
    // Pages of two, alphabetical, each user once.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app
            .ok(
                Some(&app.token(admin.id)),
                query,
                json!({ "first": 2, "after": after }),
            )
            .await;
        for edge in page["users"]["edges"].as_array().unwrap() {
            seen.push(parse_id(&edge["node"]["id"]));
        }
        if page["users"]["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["users"]["pageInfo"]["endCursor"].clone();
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5));
}

async fn notes_are_for_staff_and_a_student_asking_gets_null(app: TestApp) {
    let campus = app.campus("North").await;
    let (_, section) = app
        .course_with_section(&campus, "Pottery", Some(5), "MONDAY")
        .await;
    let (_, token) = app.student(&campus).await;
    let seat = app.enroll(&token, section).await.unwrap();
    let t = campus.teacher_token.clone();
    let written = app
        .ok(
            Some(&t),
            NOTES,
            json!({ "e": seat.id, "n": "  needs a ramp  " }),
        )
        .await;
    let notes = &written["setEnrollmentNotes"];
    assert_eq!(notes["notes"], "needs a ramp");
    assert_eq!(notes["notesUpdatedBy"]["id"], json!(campus.teacher.id));
    assert!(notes["notesUpdatedAt"].is_string());
    let mine = app
        .gql(
            Some(&token),
            "{ myEnrollments { notes notesUpdatedAt notesUpdatedBy { id } } }",
            json!({}),
        )
        .await;
    assert!(mine.get("errors").is_none(), "{mine}");
    assert_eq!(
        mine["data"]["myEnrollments"][0],
        json!({ "notes": null, "notesUpdatedAt": null, "notesUpdatedBy": null })
    );
    let too_long = "x".repeat(5001);
    let refused = app
        .gql(Some(&t), NOTES, json!({ "e": seat.id, "n": too_long }))
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    let refused = app
        .gql(Some(&token), NOTES, json!({ "e": seat.id, "n": "mine" }))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let cleared = app
        .ok(Some(&t), NOTES, json!({ "e": seat.id, "n": null }))
        .await;
    assert_eq!(cleared["setEnrollmentNotes"]["notes"], Value::Null);
}

async fn a_session_is_confirmed_at_once_with_a_result_per_id(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let course = app
        .create_course(
            &t,
            json!({ "name": "First aid", "certificateValidityMonths": 24 }),
        )
        .await;
    let section = app
        .create_section(&t, course, json!({ "name": "A", "capacity": 2 }))
        .await;
    let mut seats = Vec::new();
    for _ in 0..3 {
        let (_, token) = app.student(&campus).await;
        seats.push(app.enroll(&token, section).await.unwrap());
    }
    assert_eq!(seats[2].status, "WAITLISTED");
    let unknown = Uuid::now_v7();
    let ids = json!([seats[0].id, seats[1].id, seats[2].id, unknown, seats[0].id]);
    let data = app.ok(Some(&t), BULK, json!({ "ids": ids })).await;
    let results = data["completeEnrollments"].as_array().unwrap();
    let outcome: Vec<(Uuid, Value)> = results
        .iter()
        .map(|r| {
            let id = parse_id(&r["enrollmentId"]);
            match r["error"]["code"].as_str() {
                Some(code) => (id, json!(code)),
                None => (id, r["enrollment"]["status"].clone()),
            }
        })
        .collect();
    assert_eq!(
        outcome,
        vec![
            (seats[0].id, json!("COMPLETED")),
            (seats[1].id, json!("COMPLETED")),
            (seats[2].id, json!("INVALID_TRANSITION")),
            (unknown, json!("NOT_FOUND")),
            (seats[0].id, json!("INVALID_TRANSITION")),
        ],
        "one result per id, in order"
    );
    assert!(results[0]["enrollment"]["certification"]["id"].is_string());
    for seat in &seats[..2] {
        let events = app.events_of(seat.id).await;
        assert_eq!(events.len(), 2, "created, then completed: one event each");
    }
    let too_many: Vec<Uuid> = (0..501).map(|_| Uuid::now_v7()).collect();
    let refused = app.gql(Some(&t), BULK, json!({ "ids": too_many })).await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
}

async fn a_roster_page_costs_the_same_statements_for_10_and_100(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let mut counts = Vec::new();
    for n in [10, 100] {
        let course = app
            .create_course(&t, json!({ "name": format!("Roster {n}") }))
            .await;
        let section = app
            .create_section(&t, course, json!({ "name": "A", "capacity": null }))
            .await;
        for _ in 0..n {
            let (_, token) = app.student(&campus).await;
            app.enroll(&token, section).await.unwrap();
        }
        let page = "query($c: UUID!) { enrollments(filter: { courseId: $c }, first: 100) {
            edges { node { id status user { id name } section { id name }
                history { from to at } } } } }";
        app.reset_statements();
        let data = app.ok(Some(&t), page, json!({ "c": course })).await;
        assert_eq!(ids(&data).len(), n);
        counts.push(app.statement_count());
    }
    assert_eq!(
        counts[0], counts[1],
        "[{:?}] statements for 10 and 100 rows",
        app.backend
    );
}

both_backends!(
    the_listing_filters_and_pages_in_a_stable_order,
    a_section_shows_its_staff_the_waitlist_in_order_and_pending_requests,
    an_assistant_runs_their_section_and_nothing_more,
    the_directory_finds_people_within_scope,
    notes_are_for_staff_and_a_student_asking_gets_null,
    a_session_is_confirmed_at_once_with_a_result_per_id,
    a_roster_page_costs_the_same_statements_for_10_and_100,
);

//! The enrollment engine: seats, waitlists, promotions, checks and certifications, including
//! under concurrency, on both databases.

use std::sync::Arc;

use crate::helpers::{TestApp, both_backends, error_code, now, parse_id};
use entity::{certification, enrollment, enrollment_event, section, types::EnrollmentStatus};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

const ENROLL: &str = "mutation($s: UUID!, $u: UUID, $oc: Boolean, $os: Boolean) {
  enroll(sectionId: $s, userId: $u, overrideCapacity: $oc, overrideScheduleConflict: $os) {
    id status waitlistPosition enrolledBy { id } } }";
const WITHDRAW: &str =
    "mutation($e: UUID!) { withdraw(enrollmentId: $e, reason: \"moving\") { status } }";
const COMPLETE: &str =
    "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e, evidence: { sessions: 8 }) {
  status completedAt completionEvidence completedBy { id } certification { expiresAt } } }";

async fn enroll(app: &TestApp, token: &str, section: Uuid) -> Value {
    app.gql(Some(token), ENROLL, json!({ "s": section })).await
}

async fn seats_then_waitlist_then_section_full(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Yoga", Some(2), "MONDAY")
        .await;
    let people = app.students(&campus, 4).await;
    let statuses = [
        enroll(&app, &people[0].1, section).await,
        enroll(&app, &people[1].1, section).await,
        enroll(&app, &people[2].1, section).await,
        enroll(&app, &people[3].1, section).await,
    ];
    let got: Vec<_> = statuses
        .iter()
        .map(|r| {
            (
                r["data"]["enroll"]["status"].clone(),
                r["data"]["enroll"]["waitlistPosition"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (json!("REGISTERED"), Value::Null),
            (json!("REGISTERED"), Value::Null),
            (json!("WAITLISTED"), json!(1)),
            (json!("WAITLISTED"), json!(2))
        ]
    );
    app.assert_section_consistent(section).await;

    let closed = app.create_section(&campus.teacher_token, json!({ "courseId":
        app.ok(None, "query($s: UUID!) { section(id: $s) { course { id } } }", json!({ "s": section }))
            .await["section"]["course"]["id"], "name": "Closed", "capacity": 1, "waitlistEnabled": false })).await;
    let other = app.students(&campus, 2).await;
    assert_eq!(
        enroll(&app, &other[0].1, closed).await["data"]["enroll"]["status"],
        "REGISTERED"
    );
    let full = enroll(&app, &other[1].1, closed).await;
    assert_eq!(error_code(&full), "SECTION_FULL");
    app.assert_section_consistent(closed).await;
}

async fn withdrawing_a_seat_promotes_the_earliest_waiter(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Chess", Some(1), "TUESDAY")
        .await;
    let people = app.students(&campus, 3).await;
    let first = enroll(&app, &people[0].1, section).await;
    enroll(&app, &people[1].1, section).await;
    enroll(&app, &people[2].1, section).await;
    let id = parse_id(&first["data"]["enroll"]["id"]);
    let withdrawn = app
        .ok(Some(&people[0].1), WITHDRAW, json!({ "e": id }))
        .await;
    assert_eq!(withdrawn["withdraw"]["status"], "WITHDRAWN");
    let mine = "{ myEnrollments { status waitlistPosition history { from to } } }";
    let promoted = app.ok(Some(&people[1].1), mine, json!({})).await;
    assert_eq!(promoted["myEnrollments"][0]["status"], "REGISTERED");
    assert_eq!(
        promoted["myEnrollments"][0]["history"],
        json!([
        { "from": null, "to": "WAITLISTED" }, { "from": "WAITLISTED", "to": "REGISTERED" }])
    );
    let still = app.ok(Some(&people[2].1), mine, json!({})).await;
    assert_eq!(still["myEnrollments"][0]["waitlistPosition"], 1);
    app.assert_section_consistent(section).await;

    // Withdrawn is final, and nothing changes when a transition is refused.
    let again = app
        .gql(Some(&people[0].1), WITHDRAW, json!({ "e": id }))
        .await;
    assert_eq!(error_code(&again), "INVALID_TRANSITION");
    let stranger = app
        .gql(Some(&people[2].1), WITHDRAW, json!({ "e": id }))
        .await;
    assert_eq!(error_code(&stranger), "FORBIDDEN");
    // Re-enrolling creates a new enrollment, queued behind those already waiting.
    let back = enroll(&app, &people[0].1, section).await;
    assert_eq!(back["data"]["enroll"]["status"], "WAITLISTED");
    assert_eq!(back["data"]["enroll"]["waitlistPosition"], 2);
    app.assert_section_consistent(section).await;
}

async fn checks_run_in_order_with_their_codes(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let basics = app
        .create_course(
            &t,
            json!({ "name": "Basics", "certificateValidityMonths": 12 }),
        )
        .await;
    let basics_section = app
        .create_section(
            &t,
            json!({ "courseId": basics, "name": "A",
        "schedule": [{ "weekday": "MONDAY", "start": "09:00", "end": "10:00" }] }),
        )
        .await;
    let advanced = app
        .create_course(
            &t,
            json!({ "name": "Advanced", "prerequisiteIds": [basics] }),
        )
        .await;
    let advanced_section = app
        .create_section(
            &t,
            json!({ "courseId": advanced, "name": "A",
        "schedule": [{ "weekday": "MONDAY", "start": "09:30", "end": "11:00" }] }),
        )
        .await;
    let (student, token) = app.students(&campus, 1).await.remove(0);

    let missing = enroll(&app, &token, advanced_section).await;
    assert_eq!(error_code(&missing), "PREREQUISITES_MISSING");
    assert_eq!(
        missing["errors"][0]["extensions"]["missingCourseIds"],
        json!([basics.to_string()])
    );

    let first = enroll(&app, &token, basics_section).await;
    assert_eq!(first["data"]["enroll"]["status"], "REGISTERED");
    assert_eq!(
        error_code(&enroll(&app, &token, basics_section).await),
        "ALREADY_ENROLLED"
    );
    let id = parse_id(&first["data"]["enroll"]["id"]);

    // Completion by the teacher issues the certificate that opens Advanced.
    let done = app.ok(Some(&t), COMPLETE, json!({ "e": id })).await;
    assert_eq!(done["completeEnrollment"]["status"], "COMPLETED");
    assert_eq!(
        done["completeEnrollment"]["completionEvidence"],
        json!({ "sessions": 8 })
    );
    assert!(done["completeEnrollment"]["certification"]["expiresAt"].is_string());

    // Now a schedule clash: register in another Monday 09:00 course first.
    let clash_course = app.create_course(&t, json!({ "name": "Clash" })).await;
    let clash = app
        .create_section(
            &t,
            json!({ "courseId": clash_course, "name": "A",
        "schedule": [{ "weekday": "MONDAY", "start": "10:30", "end": "11:30" }] }),
        )
        .await;
    assert_eq!(
        enroll(&app, &token, clash).await["data"]["enroll"]["status"],
        "REGISTERED"
    );
    assert_eq!(
        error_code(&enroll(&app, &token, advanced_section).await),
        "SCHEDULE_CONFLICT"
    );
    // Staff may override, and the override is recorded on the event.
    let proxy = app
        .gql(
            Some(&t),
            ENROLL,
            json!({ "s": advanced_section, "u": student, "os": true }),
        )
        .await;
    assert_eq!(proxy["data"]["enroll"]["status"], "REGISTERED", "{proxy}");
    assert_eq!(
        proxy["data"]["enroll"]["enrolledBy"]["id"],
        campus.teacher.id.to_string()
    );
    let event = enrollment_event::Entity::find()
        .filter(enrollment_event::Column::EnrollmentId.eq(parse_id(&proxy["data"]["enroll"]["id"])))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event.details,
        Some(json!({ "scheduleConflictOverride": true }))
    );

    // A student may not enroll someone else or override anything.
    let (other, other_token) = app.students(&campus, 1).await.remove(0);
    let forbidden = app
        .gql(
            Some(&other_token),
            ENROLL,
            json!({ "s": clash, "u": student }),
        )
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    let forbidden = app
        .gql(
            Some(&other_token),
            ENROLL,
            json!({ "s": clash, "oc": true }),
        )
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    let _ = other;

    app.ok(
        Some(&t),
        "mutation($id: UUID!) { updateSection(id: $id, input: { isActive: false }) { id } }",
        json!({ "id": clash }),
    )
    .await;
    assert_eq!(
        error_code(&enroll(&app, &other_token, clash).await),
        "SECTION_INACTIVE"
    );
    let unknown = enroll(&app, &other_token, Uuid::new_v4()).await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
}

async fn approval_cancel_fail_and_self_confirmation(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let course = app.create_course(&t, json!({ "name": "Lab" })).await;
    let section = app
        .create_section(
            &t,
            json!({ "courseId": course, "name": "A", "capacity": 1,
        "requiresApproval": true }),
        )
        .await;
    let people = app.students(&campus, 2).await;
    let pending = enroll(&app, &people[0].1, section).await;
    assert_eq!(pending["data"]["enroll"]["status"], "PENDING");
    assert_eq!(
        enroll(&app, &people[1].1, section).await["data"]["enroll"]["status"],
        "WAITLISTED",
        "a pending enrollment holds its seat"
    );
    let id = parse_id(&pending["data"]["enroll"]["id"]);
    let by_student = app
        .gql(
            Some(&people[0].1),
            "mutation($e: UUID!) { approveEnrollment(enrollmentId: $e) { status } }",
            json!({ "e": id }),
        )
        .await;
    assert_eq!(error_code(&by_student), "FORBIDDEN");
    let approved = app
        .ok(
            Some(&t),
            "mutation($e: UUID!) { approveEnrollment(enrollmentId: $e) { status } }",
            json!({ "e": id }),
        )
        .await;
    assert_eq!(approved["approveEnrollment"]["status"], "REGISTERED");
    app.assert_section_consistent(section).await;

    let no_reason = app
        .gql(
            Some(&t),
            "mutation($e: UUID!) { cancelEnrollment(enrollmentId: $e, reason: \" \") { status } }",
            json!({ "e": id }),
        )
        .await;
    assert_eq!(error_code(&no_reason), "BAD_USER_INPUT");
    let self_complete = app
        .gql(Some(&people[0].1), COMPLETE, json!({ "e": id }))
        .await;
    assert_eq!(error_code(&self_complete), "FORBIDDEN");
    let failed = app.ok(Some(&t),
        "mutation($e: UUID!) { failEnrollment(enrollmentId: $e, reason: \"absent\") { status reason } }",
        json!({ "e": id })).await;
    assert_eq!(
        failed["failEnrollment"],
        json!({ "status": "FAILED", "reason": "absent" })
    );
    let after = app.gql(Some(&t), COMPLETE, json!({ "e": id })).await;
    assert_eq!(error_code(&after), "INVALID_TRANSITION");
    assert_eq!(
        certification::Entity::find().count(&app.db).await.unwrap(),
        0
    );

    let visibility = app.ok(Some(&people[0].1),
        "mutation($e: UUID!) { setEnrollmentVisibility(enrollmentId: $e, visibility: false) { visibility } }",
        json!({ "e": id })).await;
    assert_eq!(visibility["setEnrollmentVisibility"]["visibility"], false);
}

async fn two_hundred_concurrent_enrollments_fill_thirty_seats_exactly(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Popular", Some(30), "FRIDAY")
        .await;
    let people = app.students(&campus, 200).await;
    let app = Arc::new(app);
    let tasks: Vec<_> = people
        .into_iter()
        .map(|(_, token)| {
            let app = app.clone();
            tokio::spawn(async move { enroll(&app, &token, section).await })
        })
        .collect();
    let mut registered = 0;
    let mut waitlisted = 0;
    for task in tasks {
        let response = task.await.unwrap();
        assert!(response.get("errors").is_none(), "{response}");
        match response["data"]["enroll"]["status"].as_str() {
            Some("REGISTERED") => registered += 1,
            Some("WAITLISTED") => waitlisted += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((registered, waitlisted), (30, 170));
    app.assert_section_consistent(section).await;
    let tickets: Vec<i64> = enrollment::Entity::find()
        .filter(enrollment::Column::SectionId.eq(section))
        .filter(enrollment::Column::Status.eq(EnrollmentStatus::Waitlisted))
        .order_by_asc(enrollment::Column::WaitlistTicket)
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.waitlist_ticket)
        .collect();
    assert_eq!(
        tickets,
        (1..=170).collect::<Vec<i64>>(),
        "positions are exactly 1..170"
    );
}

async fn concurrent_completions_issue_one_certification(app: TestApp) {
    let campus = app.campus("Org").await;
    let course = app
        .create_course(
            &campus.teacher_token,
            json!({ "name": "Cert", "certificateValidityMonths": 6 }),
        )
        .await;
    let section = app
        .create_section(
            &campus.teacher_token,
            json!({ "courseId": course, "name": "A" }),
        )
        .await;
    let (_, token) = app.students(&campus, 1).await.remove(0);
    let id = parse_id(&enroll(&app, &token, section).await["data"]["enroll"]["id"]);
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, t) = (app.clone(), campus.teacher_token.clone());
            tokio::spawn(async move { app.gql(Some(&t), COMPLETE, json!({ "e": id })).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let response = task.await.unwrap();
        match response.get("errors") {
            None => ok += 1,
            Some(_) => assert_eq!(error_code(&response), "INVALID_TRANSITION"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        certification::Entity::find().count(&app.db).await.unwrap(),
        1
    );
    let completed_events = enrollment_event::Entity::find()
        .filter(enrollment_event::Column::EnrollmentId.eq(id))
        .filter(enrollment_event::Column::ToStatus.eq(EnrollmentStatus::Completed))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(completed_events, 1);
}

async fn one_student_racing_into_two_sections_of_a_course_gets_one(app: TestApp) {
    let campus = app.campus("Org").await;
    let course = app
        .create_course(&campus.teacher_token, json!({ "name": "Twins" }))
        .await;
    let a = app
        .create_section(
            &campus.teacher_token,
            json!({ "courseId": course, "name": "A" }),
        )
        .await;
    let b = app
        .create_section(
            &campus.teacher_token,
            json!({ "courseId": course, "name": "B" }),
        )
        .await;
    let (_, token) = app.students(&campus, 1).await.remove(0);
    let app = Arc::new(app);
    for _ in 0..5 {
        let (one, two) = tokio::join!(enroll(&app, &token, a), enroll(&app, &token, b));
        let mut outcomes = [one, two]
            .into_iter()
            .map(|r| r.get("errors").map_or("OK".to_owned(), |_| error_code(&r)))
            .collect::<Vec<_>>();
        outcomes.sort();
        assert_eq!(outcomes, ["ALREADY_ENROLLED", "OK"]);
        let active = enrollment::Entity::find()
            .filter(enrollment::Column::CourseId.eq(course))
            .filter(enrollment::Column::Status.is_in(EnrollmentStatus::ACTIVE))
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(active.len(), 1);
        app.ok(Some(&token), WITHDRAW, json!({ "e": active[0].id }))
            .await;
    }
    app.assert_section_consistent(a).await;
    app.assert_section_consistent(b).await;
}

both_backends!(
    seats_then_waitlist_then_section_full,
    withdrawing_a_seat_promotes_the_earliest_waiter,
    checks_run_in_order_with_their_codes,
    approval_cancel_fail_and_self_confirmation,
    two_hundred_concurrent_enrollments_fill_thirty_seats_exactly,
    concurrent_completions_issue_one_certification,
    one_student_racing_into_two_sections_of_a_course_gets_one
);

const SWITCH: &str =
    "mutation($e: UUID!, $s: UUID!) { switchSection(enrollmentId: $e, toSectionId: $s) {
  status waitlistPosition section { id } } }";

/// A mutation, the statuses it may leave from, and whether staff (rather than the owner) send it.
type Attempt = (&'static str, fn(EnrollmentStatus) -> bool, bool);

/// Everything the engine writes, for "changed nothing" checks.
async fn snapshot(app: &TestApp) -> String {
    let enrollments = enrollment::Entity::find()
        .order_by_asc(enrollment::Column::Id)
        .all(&app.db)
        .await
        .unwrap();
    let sections = section::Entity::find()
        .order_by_asc(section::Column::Id)
        .all(&app.db)
        .await
        .unwrap();
    let events = enrollment_event::Entity::find()
        .count(&app.db)
        .await
        .unwrap();
    let certifications = certification::Entity::find().count(&app.db).await.unwrap();
    format!("{enrollments:?}\n{sections:?}\n{events}\n{certifications}")
}

async fn switching_moves_the_seat_and_promotes_in_the_old_section(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let course = app.create_course(&t, json!({ "name": "Pottery" })).await;
    let a = app
        .create_section(
            &t,
            json!({ "courseId": course, "name": "A", "capacity": 1 }),
        )
        .await;
    let b = app
        .create_section(
            &t,
            json!({ "courseId": course, "name": "B", "capacity": 2 }),
        )
        .await;
    let people = app.students(&campus, 4).await;
    let mover = parse_id(&enroll(&app, &people[0].1, a).await["data"]["enroll"]["id"]);
    let waiter = parse_id(&enroll(&app, &people[1].1, a).await["data"]["enroll"]["id"]);

    let moved = app
        .ok(Some(&people[0].1), SWITCH, json!({ "e": mover, "s": b }))
        .await;
    assert_eq!(moved["switchSection"]["status"], "REGISTERED");
    assert_eq!(moved["switchSection"]["section"]["id"], b.to_string());
    let promoted = enrollment::Entity::find_by_id(waiter)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        promoted.status,
        EnrollmentStatus::Registered,
        "the freed seat went to the waiter"
    );
    let event = enrollment_event::Entity::find()
        .filter(enrollment_event::Column::EnrollmentId.eq(mover))
        .order_by_desc(enrollment_event::Column::Id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event.details,
        Some(json!({ "fromSectionId": a, "toSectionId": b }))
    );
    assert_eq!(
        (event.from_status, event.to_status),
        (
            Some(EnrollmentStatus::Registered),
            EnrollmentStatus::Registered
        )
    );

    // B fills up; switching into a full section fails and keeps the old seat.
    assert_eq!(
        enroll(&app, &people[2].1, b).await["data"]["enroll"]["status"],
        "REGISTERED"
    );
    let before = snapshot(&app).await;
    let full = app
        .gql(Some(&people[1].1), SWITCH, json!({ "e": waiter, "s": b }))
        .await;
    assert_eq!(error_code(&full), "SECTION_FULL");
    assert_eq!(
        snapshot(&app).await,
        before,
        "a refused switch changes nothing"
    );

    // A waitlisted enrollment may switch into a section with a free seat, leaving its queue.
    let queued = parse_id(&enroll(&app, &people[3].1, b).await["data"]["enroll"]["id"]);
    let c = app
        .create_section(
            &t,
            json!({ "courseId": course, "name": "C", "capacity": 1,
        "requiresApproval": true }),
        )
        .await;
    let moved = app
        .ok(Some(&people[3].1), SWITCH, json!({ "e": queued, "s": c }))
        .await;
    assert_eq!(
        moved["switchSection"]["status"], "PENDING",
        "C requires approval"
    );
    for section in [a, b, c] {
        app.assert_section_consistent(section).await;
    }

    // Bad targets and strangers change nothing either.
    let other_course = app.create_course(&t, json!({ "name": "Other" })).await;
    let elsewhere = app
        .create_section(&t, json!({ "courseId": other_course, "name": "X" }))
        .await;
    let before = snapshot(&app).await;
    for (token, e, s, code) in [
        (&people[0].1, mover, b, "BAD_USER_INPUT"),
        (&people[0].1, mover, elsewhere, "BAD_USER_INPUT"),
        (&people[1].1, mover, a, "FORBIDDEN"),
        (&people[0].1, mover, Uuid::new_v4(), "NOT_FOUND"),
    ] {
        let response = app
            .gql(Some(token), SWITCH, json!({ "e": e, "s": s }))
            .await;
        assert_eq!(error_code(&response), code, "{response}");
    }
    assert_eq!(snapshot(&app).await, before);

    // A teacher may switch a student; a final enrollment cannot be switched.
    let d = app
        .create_section(
            &t,
            json!({ "courseId": course, "name": "D", "capacity": 1 }),
        )
        .await;
    let by_staff = app
        .ok(Some(&t), SWITCH, json!({ "e": mover, "s": d }))
        .await;
    assert_eq!(by_staff["switchSection"]["section"]["id"], d.to_string());
    app.ok(Some(&people[0].1), WITHDRAW, json!({ "e": mover }))
        .await;
    let done = app
        .gql(Some(&people[0].1), SWITCH, json!({ "e": mover, "s": b }))
        .await;
    assert_eq!(error_code(&done), "INVALID_TRANSITION");
    for section in [a, b, c, d] {
        app.assert_section_consistent(section).await;
    }
}

async fn opposite_concurrent_switches_neither_deadlock_nor_overbook(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let course = app.create_course(&t, json!({ "name": "Swap" })).await;
    let a = app
        .create_section(
            &t,
            json!({ "courseId": course, "name": "A", "capacity": 8 }),
        )
        .await;
    let b = app
        .create_section(
            &t,
            json!({ "courseId": course, "name": "B", "capacity": 8 }),
        )
        .await;
    let people = app.students(&campus, 12).await;
    let mut moves = Vec::new();
    for (i, (_, token)) in people.iter().enumerate() {
        let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let id = parse_id(&enroll(&app, token, from).await["data"]["enroll"]["id"]);
        moves.push((token.clone(), id, to));
    }
    let app = Arc::new(app);
    let tasks: Vec<_> = moves
        .into_iter()
        .map(|(token, id, to)| {
            let app = app.clone();
            tokio::spawn(async move {
                app.gql(Some(&token), SWITCH, json!({ "e": id, "s": to }))
                    .await
            })
        })
        .collect();
    let mut switched = 0;
    for task in tasks {
        let response = task.await.unwrap();
        match response.get("errors") {
            None => switched += 1,
            Some(_) => assert_eq!(error_code(&response), "SECTION_FULL", "{response}"),
        }
    }
    assert!(
        switched >= 4,
        "at least the free seats were taken: {switched}"
    );
    app.assert_section_consistent(a).await;
    app.assert_section_consistent(b).await;
    let active = enrollment::Entity::find()
        .filter(enrollment::Column::CourseId.eq(course))
        .filter(enrollment::Column::Status.is_in(EnrollmentStatus::ACTIVE))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(active, 12, "everyone still holds exactly one seat");
}

async fn staff_override_capacity_is_recorded_and_promotes_nobody_while_over(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Tight", Some(1), "MONDAY")
        .await;
    let people = app.students(&campus, 3).await;
    enroll(&app, &people[0].1, section).await;
    let waiter = parse_id(&enroll(&app, &people[1].1, section).await["data"]["enroll"]["id"]);
    let forced = app
        .gql(
            Some(&campus.teacher_token),
            ENROLL,
            json!({ "s": section, "u": people[2].0, "oc": true }),
        )
        .await;
    assert_eq!(forced["data"]["enroll"]["status"], "REGISTERED", "{forced}");
    let forced_id = parse_id(&forced["data"]["enroll"]["id"]);
    let event = enrollment_event::Entity::find()
        .filter(enrollment_event::Column::EnrollmentId.eq(forced_id))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.details, Some(json!({ "capacityOverride": true })));
    assert_eq!(event.actor_id, Some(campus.teacher.id));
    let row = section::Entity::find_by_id(section)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.registered_count, row.capacity), (2, Some(1)));

    // Leaving brings the section back to capacity, not below: the waiter keeps waiting.
    app.ok(Some(&people[2].1), WITHDRAW, json!({ "e": forced_id }))
        .await;
    let still = enrollment::Entity::find_by_id(waiter)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.status, EnrollmentStatus::Waitlisted);
    app.assert_section_consistent(section).await;
}

async fn every_invalid_transition_from_every_state_changes_nothing(app: TestApp) {
    use EnrollmentStatus::*;
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let course = app.create_course(&t, json!({ "name": "States" })).await;
    let open = app
        .create_section(&t, json!({ "courseId": course, "name": "Open" }))
        .await;
    let approval = app
        .create_section(
            &t,
            json!({ "courseId": course, "name": "Approval",
        "requiresApproval": true }),
        )
        .await;
    let tight = app
        .create_section(
            &t,
            json!({ "courseId": course, "name": "Tight", "capacity": 1 }),
        )
        .await;
    let people = app.students(&campus, 8).await;
    enroll(&app, &people[7].1, tight).await;
    let mut by_state = Vec::new();
    for (i, state) in [
        Pending, Registered, Waitlisted, Completed, Failed, Withdrawn, Cancelled,
    ]
    .into_iter()
    .enumerate()
    {
        let token = &people[i].1;
        let section = match state {
            Pending => approval,
            Waitlisted => tight,
            _ => open,
        };
        let id = parse_id(&enroll(&app, token, section).await["data"]["enroll"]["id"]);
        let follow_up = match state {
            Completed => Some(COMPLETE),
            Failed => Some("mutation($e: UUID!) { failEnrollment(enrollmentId: $e) { status } }"),
            Withdrawn => Some(WITHDRAW),
            Cancelled => Some(
                "mutation($e: UUID!) { cancelEnrollment(enrollmentId: $e, reason: \"x\") { status } }",
            ),
            _ => None,
        };
        if let Some(mutation) = follow_up {
            let actor = if state == Withdrawn { token } else { &t };
            app.ok(Some(actor), mutation, json!({ "e": id })).await;
        }
        let row = enrollment::Entity::find_by_id(id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, state);
        by_state.push((state, id, token.clone()));
    }
    let attempts: [Attempt; 5] = [
        (
            "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }",
            |s| EnrollmentStatus::ACTIVE.contains(&s),
            false,
        ),
        (
            "mutation($e: UUID!) { cancelEnrollment(enrollmentId: $e, reason: \"r\") { status } }",
            |s| EnrollmentStatus::ACTIVE.contains(&s),
            true,
        ),
        (
            "mutation($e: UUID!) { approveEnrollment(enrollmentId: $e) { status } }",
            |s| s == Pending,
            true,
        ),
        (COMPLETE, |s| s == Registered, true),
        (
            "mutation($e: UUID!) { failEnrollment(enrollmentId: $e) { status } }",
            |s| s == Registered,
            true,
        ),
    ];
    let mut refused = 0;
    for (state, id, owner) in &by_state {
        for (mutation, allowed, staff) in &attempts {
            if allowed(*state) {
                continue;
            }
            let token = if *staff { &t } else { owner };
            let before = snapshot(&app).await;
            let response = app.gql(Some(token), mutation, json!({ "e": id })).await;
            assert_eq!(
                error_code(&response),
                "INVALID_TRANSITION",
                "{state:?}: {mutation}"
            );
            assert_eq!(
                snapshot(&app).await,
                before,
                "{state:?}: {mutation} changed something"
            );
            refused += 1;
        }
        if !EnrollmentStatus::ACTIVE.contains(state) {
            let target = if *state == Waitlisted { open } else { approval };
            let response = app
                .gql(Some(owner), SWITCH, json!({ "e": id, "s": target }))
                .await;
            assert_eq!(
                error_code(&response),
                "INVALID_TRANSITION",
                "switch from {state:?}"
            );
            refused += 1;
        }
    }
    // 4 final states × 5 mutations + 4 switches, PENDING 2, REGISTERED 1, WAITLISTED 3.
    assert_eq!(refused, 20 + 4 + 2 + 1 + 3);
}

both_backends!(
    switching_moves_the_seat_and_promotes_in_the_old_section,
    opposite_concurrent_switches_neither_deadlock_nor_overbook,
    staff_override_capacity_is_recorded_and_promotes_nobody_while_over,
    every_invalid_transition_from_every_state_changes_nothing
);

async fn a_certification_counts_as_prerequisite_only_until_it_expires(app: TestApp) {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let basics = app
        .create_course(
            &t,
            json!({ "name": "Basics", "certificateValidityMonths": 1 }),
        )
        .await;
    let basics_section = app
        .create_section(&t, json!({ "courseId": basics, "name": "A" }))
        .await;
    let advanced = app
        .create_course(
            &t,
            json!({ "name": "Advanced", "prerequisiteIds": [basics] }),
        )
        .await;
    let advanced_section = app
        .create_section(&t, json!({ "courseId": advanced, "name": "A" }))
        .await;
    let (_, token) = app.students(&campus, 1).await.remove(0);
    let id = parse_id(&enroll(&app, &token, basics_section).await["data"]["enroll"]["id"]);
    app.ok(Some(&t), COMPLETE, json!({ "e": id })).await;

    // Linked both ways: the certification names the enrollment that earned it.
    let mine = app.ok(Some(&token),
        "{ myCertifications { isValid course { id } enrollment { id status certification { id } } } }",
        json!({})).await;
    let cert = &mine["myCertifications"][0];
    assert_eq!(cert["isValid"], true);
    assert_eq!(cert["course"]["id"], basics.to_string());
    assert_eq!(cert["enrollment"]["id"], id.to_string());
    assert_eq!(cert["enrollment"]["status"], "COMPLETED");
    assert!(cert["enrollment"]["certification"]["id"].is_string());

    let query = "mutation($s: UUID!) { enroll(sectionId: $s) { id status prerequisiteCheckPassed prerequisiteCheckAt } }";
    let first = app
        .ok(Some(&token), query, json!({ "s": advanced_section }))
        .await;
    assert_eq!(first["enroll"]["status"], "REGISTERED");
    assert_eq!(first["enroll"]["prerequisiteCheckPassed"], true);
    assert!(first["enroll"]["prerequisiteCheckAt"].is_string());
    app.ok(
        Some(&token),
        WITHDRAW,
        json!({ "e": parse_id(&first["enroll"]["id"]) }),
    )
    .await;

    // A month later the certification has expired: it no longer opens the course.
    let row = certification::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let mut expired = row.into_active_model();
    expired.issued_at = Set(now() - chrono::Duration::days(32));
    expired.expires_at = Set(Some(now() - chrono::Duration::seconds(1)));
    expired.update(&app.db).await.unwrap();
    let again = app
        .gql(Some(&token), query, json!({ "s": advanced_section }))
        .await;
    assert_eq!(error_code(&again), "PREREQUISITES_MISSING");
    assert_eq!(
        again["errors"][0]["extensions"]["missingCourseIds"],
        json!([basics.to_string()])
    );
    let valid = app
        .ok(Some(&token), "{ myCertifications { isValid } }", json!({}))
        .await;
    assert_eq!(valid["myCertifications"][0]["isValid"], false);
}

both_backends!(a_certification_counts_as_prerequisite_only_until_it_expires);

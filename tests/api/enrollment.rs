//! The enrollment engine: seats, waitlists, promotions, checks and certifications, including
//! under concurrency, on both databases.

use std::sync::Arc;

use crate::helpers::{TestApp, both_backends, error_code, now, parse_id};
use entity::{certification, enrollment, types::EnrollmentStatus};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::json;
use uuid::Uuid;

/// `enroll` with everything staff may add: another user, and the two overrides.
const ENROLL_AS_STAFF: &str = "mutation($s: UUID!, $u: UUID, $oc: Boolean, $os: Boolean) {
  enroll(sectionId: $s, userId: $u, overrideCapacity: $oc, overrideScheduleConflict: $os) {
    id status waitlistPosition enrolledBy { id } } }";
const WITHDRAW_MOVING: &str =
    "mutation($e: UUID!) { withdraw(enrollmentId: $e, reason: \"moving\") { status } }";
const WITHDRAW: &str = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }";
const APPROVE: &str = "mutation($e: UUID!) { approveEnrollment(enrollmentId: $e) { status } }";
const CANCEL: &str =
    "mutation($e: UUID!) { cancelEnrollment(enrollmentId: $e, reason: \"r\") { status } }";
const FAIL: &str = "mutation($e: UUID!) { failEnrollment(enrollmentId: $e) { status } }";
const COMPLETE: &str =
    "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e, evidence: { sessions: 8 }) {
  status completedAt completionEvidence completedBy { id } certification { expiresAt } } }";
const SWITCH: &str =
    "mutation($e: UUID!, $s: UUID!) { switchSection(enrollmentId: $e, toSectionId: $s) {
  status waitlistPosition section { id } } }";

async fn seats_then_waitlist_then_section_full(app: TestApp) {
    let campus = app.campus("Org").await;
    let (course, section) = app
        .course_with_section(&campus, "Yoga", Some(2), "MONDAY")
        .await;
    let people = app.students(&campus, 4).await;
    let mut got = Vec::new();
    for (_, token) in &people {
        let enrolled = app.enroll(token, section).await.expect("enrolled");
        got.push((enrolled.status, enrolled.waitlist_position));
    }
    assert_eq!(
        got,
        [
            ("REGISTERED".to_owned(), None),
            ("REGISTERED".to_owned(), None),
            ("WAITLISTED".to_owned(), Some(1)),
            ("WAITLISTED".to_owned(), Some(2)),
        ]
    );
    app.assert_section_consistent(section).await;

    let closed = app
        .create_section(
            &campus.teacher_token,
            course,
            json!({ "name": "Closed", "capacity": 1, "waitlistEnabled": false }),
        )
        .await;
    let other = app.students(&campus, 2).await;
    let seated = app.enroll(&other[0].1, closed).await.expect("enrolled");
    assert_eq!(seated.status, "REGISTERED");
    let full = app.enroll(&other[1].1, closed).await;
    assert_eq!(full.unwrap_err(), "SECTION_FULL");
    app.assert_section_consistent(closed).await;
}

async fn withdrawing_a_seat_promotes_the_earliest_waiter(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Chess", Some(1), "TUESDAY")
        .await;
    let people = app.students(&campus, 3).await;
    let first = app.enroll(&people[0].1, section).await.expect("enrolled");
    for (_, token) in &people[1..] {
        app.enroll(token, section).await.expect("waitlisted");
    }
    let withdrawn = app
        .ok(
            Some(&people[0].1),
            WITHDRAW_MOVING,
            json!({ "e": first.id }),
        )
        .await;
    assert_eq!(withdrawn["withdraw"]["status"], "WITHDRAWN");
    let mine = "{ myEnrollments { status waitlistPosition history { from to } } }";
    let promoted = app.ok(Some(&people[1].1), mine, json!({})).await;
    assert_eq!(promoted["myEnrollments"][0]["status"], "REGISTERED");
    assert_eq!(
        promoted["myEnrollments"][0]["history"],
        json!([
            { "from": null, "to": "WAITLISTED" },
            { "from": "WAITLISTED", "to": "REGISTERED" },
        ])
    );
    let still = app.ok(Some(&people[2].1), mine, json!({})).await;
    assert_eq!(still["myEnrollments"][0]["waitlistPosition"], 1);
    app.assert_section_consistent(section).await;

    // Withdrawn is final, and nothing changes when a transition is refused.
    let again = app.withdraw(&people[0].1, first.id).await;
    assert_eq!(again.unwrap_err(), "INVALID_TRANSITION");
    let stranger = app.withdraw(&people[2].1, first.id).await;
    assert_eq!(stranger.unwrap_err(), "FORBIDDEN");
    // Re-enrolling creates a new enrollment, queued behind those already waiting.
    let back = app.enroll(&people[0].1, section).await.expect("enrolled");
    assert_eq!(
        (back.status.as_str(), back.waitlist_position),
        ("WAITLISTED", Some(2))
    );
    assert_ne!(back.id, first.id);
    app.assert_section_consistent(section).await;
}

async fn checks_run_in_order_with_their_codes(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let monday = |start: &str, end: &str| {
        let meeting = json!({ "weekday": "MONDAY", "start": start, "end": end });
        json!({ "name": "A", "schedule": [meeting] })
    };
    let basics = json!({ "name": "Basics", "certificateValidityMonths": 12 });
    let (basics, [basics_section]) = app
        .course_with_sections(&t, basics, [monday("09:00", "10:00")])
        .await;
    let advanced = json!({ "name": "Advanced", "prerequisiteIds": [basics] });
    let (_, [advanced_section]) = app
        .course_with_sections(&t, advanced, [monday("09:30", "11:00")])
        .await;
    let (student, token) = app.student(&campus).await;

    let missing = app
        .gql(
            Some(&token),
            ENROLL_AS_STAFF,
            json!({ "s": advanced_section }),
        )
        .await;
    assert_eq!(error_code(&missing), "PREREQUISITES_MISSING");
    assert_eq!(
        missing["errors"][0]["extensions"]["missingCourseIds"],
        json!([basics.to_string()])
    );

    let first = app.enroll(&token, basics_section).await.expect("enrolled");
    assert_eq!(first.status, "REGISTERED");
    let twice = app.enroll(&token, basics_section).await;
    assert_eq!(twice.unwrap_err(), "ALREADY_ENROLLED");

    // Completion by the teacher issues the certificate that opens Advanced.
    let done = app.ok(Some(&t), COMPLETE, json!({ "e": first.id })).await;
    assert_eq!(done["completeEnrollment"]["status"], "COMPLETED");
    assert_eq!(
        done["completeEnrollment"]["completionEvidence"],
        json!({ "sessions": 8 })
    );
    assert!(done["completeEnrollment"]["certification"]["expiresAt"].is_string());

    // Now a schedule clash: register in another Monday course that overlaps Advanced first.
    let (_, [clash]) = app
        .course_with_sections(&t, json!({ "name": "Clash" }), [monday("10:30", "11:30")])
        .await;
    let registered = app.enroll(&token, clash).await.expect("enrolled");
    assert_eq!(registered.status, "REGISTERED");
    let conflict = app.enroll(&token, advanced_section).await;
    assert_eq!(conflict.unwrap_err(), "SCHEDULE_CONFLICT");
    // Staff may override, and the override is recorded on the event.
    let proxy = app
        .ok(
            Some(&t),
            ENROLL_AS_STAFF,
            json!({ "s": advanced_section, "u": student, "os": true }),
        )
        .await;
    assert_eq!(proxy["enroll"]["status"], "REGISTERED", "{proxy}");
    assert_eq!(
        proxy["enroll"]["enrolledBy"]["id"],
        campus.teacher.id.to_string()
    );
    let events = app.events_of(parse_id(&proxy["enroll"]["id"])).await;
    assert_eq!(
        events[0].details,
        Some(json!({ "scheduleConflictOverride": true }))
    );

    // A student may not enroll someone else or override anything.
    let (_, other_token) = app.student(&campus).await;
    for variables in [
        json!({ "s": clash, "u": student }),
        json!({ "s": clash, "oc": true }),
    ] {
        let forbidden = app
            .gql(Some(&other_token), ENROLL_AS_STAFF, variables)
            .await;
        assert_eq!(error_code(&forbidden), "FORBIDDEN");
    }

    app.ok(
        Some(&t),
        "mutation($id: UUID!) { updateSection(id: $id, input: { isActive: false }) { id } }",
        json!({ "id": clash }),
    )
    .await;
    let inactive = app.enroll(&other_token, clash).await;
    assert_eq!(inactive.unwrap_err(), "SECTION_INACTIVE");
    let unknown = app.enroll(&other_token, Uuid::new_v4()).await;
    assert_eq!(unknown.unwrap_err(), "NOT_FOUND");
}

async fn approval_cancel_fail_and_self_confirmation(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let section = json!({ "name": "A", "capacity": 1, "requiresApproval": true });
    let (_, [section]) = app
        .course_with_sections(&t, json!({ "name": "Lab" }), [section])
        .await;
    let people = app.students(&campus, 2).await;
    let pending = app.enroll(&people[0].1, section).await.expect("enrolled");
    assert_eq!(pending.status, "PENDING");
    let next = app.enroll(&people[1].1, section).await.expect("enrolled");
    assert_eq!(
        next.status, "WAITLISTED",
        "a pending enrollment holds its seat"
    );
    let id = pending.id;
    let by_student = app
        .gql(Some(&people[0].1), APPROVE, json!({ "e": id }))
        .await;
    assert_eq!(error_code(&by_student), "FORBIDDEN");
    let approved = app.ok(Some(&t), APPROVE, json!({ "e": id })).await;
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
    let fail = "mutation($e: UUID!) { failEnrollment(enrollmentId: $e, reason: \"absent\") { \
        status reason } }";
    let failed = app.ok(Some(&t), fail, json!({ "e": id })).await;
    assert_eq!(
        failed["failEnrollment"],
        json!({ "status": "FAILED", "reason": "absent" })
    );
    let after = app.gql(Some(&t), COMPLETE, json!({ "e": id })).await;
    assert_eq!(error_code(&after), "INVALID_TRANSITION");
    let certifications = certification::Entity::find().count(&app.db).await;
    assert_eq!(certifications.unwrap(), 0);

    let hide = "mutation($e: UUID!) { setEnrollmentVisibility(enrollmentId: $e, visibility: false) \
        { visibility } }";
    let visibility = app.ok(Some(&people[0].1), hide, json!({ "e": id })).await;
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
            tokio::spawn(async move { app.enroll(&token, section).await })
        })
        .collect();
    let mut registered = 0;
    let mut waitlisted = 0;
    for task in tasks {
        let enrolled = task.await.unwrap().expect("enrolled");
        match enrolled.status.as_str() {
            "REGISTERED" => registered += 1,
            "WAITLISTED" => waitlisted += 1,
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
    let t = campus.teacher_token.clone();
    let course = json!({ "name": "Cert", "certificateValidityMonths": 6 });
    let (_, [section]) = app
        .course_with_sections(&t, course, [json!({ "name": "A" })])
        .await;
    let (_, token) = app.student(&campus).await;
    let id = app.enroll(&token, section).await.expect("enrolled").id;
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, t) = (app.clone(), t.clone());
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
    let certifications = certification::Entity::find().count(&app.db).await;
    assert_eq!(certifications.unwrap(), 1);
    let completed_events = app
        .events_of(id)
        .await
        .into_iter()
        .filter(|e| e.to_status == EnrollmentStatus::Completed)
        .count();
    assert_eq!(completed_events, 1);
}

async fn one_student_racing_into_two_sections_of_a_course_gets_one(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let twins = [json!({ "name": "A" }), json!({ "name": "B" })];
    let (course, [a, b]) = app
        .course_with_sections(&t, json!({ "name": "Twins" }), twins)
        .await;
    let (_, token) = app.student(&campus).await;
    for _ in 0..5 {
        let (one, two) = tokio::join!(app.enroll(&token, a), app.enroll(&token, b));
        let mut outcomes = [one, two]
            .into_iter()
            .map(|r| r.map_or_else(|code| code, |_| "OK".to_owned()))
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
        app.withdraw(&token, active[0].id).await.expect("withdrawn");
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

/// A mutation, the statuses it may leave from, and whether staff (rather than the owner) send it.
type Attempt = (&'static str, fn(EnrollmentStatus) -> bool, bool);

async fn switching_moves_the_seat_and_promotes_in_the_old_section(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let sections = [
        json!({ "name": "A", "capacity": 1 }),
        json!({ "name": "B", "capacity": 2 }),
    ];
    let (course, [a, b]) = app
        .course_with_sections(&t, json!({ "name": "Pottery" }), sections)
        .await;
    let people = app.students(&campus, 4).await;
    let mover = app.enroll(&people[0].1, a).await.expect("enrolled").id;
    let waiter = app.enroll(&people[1].1, a).await.expect("enrolled").id;

    let moved = app
        .ok(Some(&people[0].1), SWITCH, json!({ "e": mover, "s": b }))
        .await;
    assert_eq!(moved["switchSection"]["status"], "REGISTERED");
    assert_eq!(moved["switchSection"]["section"]["id"], b.to_string());
    assert_eq!(
        app.enrollment_row(waiter).await.status,
        EnrollmentStatus::Registered,
        "the freed seat went to the waiter"
    );
    let events = app.events_of(mover).await;
    let event = events.last().expect("the switch's event");
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
    let seated = app.enroll(&people[2].1, b).await.expect("enrolled");
    assert_eq!(seated.status, "REGISTERED");
    let before = app.snapshot().await;
    let full = app
        .gql(Some(&people[1].1), SWITCH, json!({ "e": waiter, "s": b }))
        .await;
    assert_eq!(error_code(&full), "SECTION_FULL");
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused switch changes nothing"
    );

    // A waitlisted enrollment may switch into a section with a free seat, leaving its queue.
    let queued = app.enroll(&people[3].1, b).await.expect("enrolled").id;
    let c = app
        .create_section(
            &t,
            course,
            json!({ "name": "C", "capacity": 1, "requiresApproval": true }),
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
    let (_, [elsewhere]) = app
        .course_with_sections(&t, json!({ "name": "Other" }), [json!({ "name": "X" })])
        .await;
    let before = app.snapshot().await;
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
    assert_eq!(app.snapshot().await, before);

    // A teacher may switch a student; a final enrollment cannot be switched.
    let d = app
        .create_section(&t, course, json!({ "name": "D", "capacity": 1 }))
        .await;
    let by_staff = app
        .ok(Some(&t), SWITCH, json!({ "e": mover, "s": d }))
        .await;
    assert_eq!(by_staff["switchSection"]["section"]["id"], d.to_string());
    app.withdraw(&people[0].1, mover).await.expect("withdrawn");
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
    let sections = [
        json!({ "name": "A", "capacity": 8 }),
        json!({ "name": "B", "capacity": 8 }),
    ];
    let (course, [a, b]) = app
        .course_with_sections(&t, json!({ "name": "Swap" }), sections)
        .await;
    let people = app.students(&campus, 12).await;
    let mut moves = Vec::new();
    for (i, (_, token)) in people.iter().enumerate() {
        let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let id = app.enroll(token, from).await.expect("enrolled").id;
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
    app.enroll(&people[0].1, section).await.expect("enrolled");
    let waiter = app
        .enroll(&people[1].1, section)
        .await
        .expect("enrolled")
        .id;
    let forced = app
        .ok(
            Some(&campus.teacher_token),
            ENROLL_AS_STAFF,
            json!({ "s": section, "u": people[2].0, "oc": true }),
        )
        .await;
    assert_eq!(forced["enroll"]["status"], "REGISTERED", "{forced}");
    let forced_id = parse_id(&forced["enroll"]["id"]);
    let events = app.events_of(forced_id).await;
    assert_eq!(events[0].details, Some(json!({ "capacityOverride": true })));
    assert_eq!(events[0].actor_id, Some(campus.teacher.id));
    let row = app.section_row(section).await;
    assert_eq!((row.registered_count, row.capacity), (2, Some(1)));

    // Leaving brings the section back to capacity, not below: the waiter keeps waiting.
    app.withdraw(&people[2].1, forced_id)
        .await
        .expect("withdrawn");
    let still = app.enrollment_row(waiter).await;
    assert_eq!(still.status, EnrollmentStatus::Waitlisted);
    app.assert_section_consistent(section).await;
}

async fn every_invalid_transition_from_every_state_changes_nothing(app: TestApp) {
    use EnrollmentStatus::*;
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let sections = [
        json!({ "name": "Open" }),
        json!({ "name": "Approval", "requiresApproval": true }),
        json!({ "name": "Tight", "capacity": 1 }),
    ];
    let (_, [open, approval, tight]) = app
        .course_with_sections(&t, json!({ "name": "States" }), sections)
        .await;
    let people = app.students(&campus, 8).await;
    app.enroll(&people[7].1, tight).await.expect("enrolled");
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
        let id = app.enroll(token, section).await.expect("enrolled").id;
        let follow_up = match state {
            Completed => Some(COMPLETE),
            Failed => Some(FAIL),
            Withdrawn => Some(WITHDRAW_MOVING),
            Cancelled => Some(CANCEL),
            _ => None,
        };
        if let Some(mutation) = follow_up {
            let actor = if state == Withdrawn { token } else { &t };
            app.ok(Some(actor), mutation, json!({ "e": id })).await;
        }
        assert_eq!(app.enrollment_row(id).await.status, state);
        by_state.push((state, id, token.clone()));
    }
    let attempts: [Attempt; 5] = [
        (WITHDRAW, |s| EnrollmentStatus::ACTIVE.contains(&s), false),
        (CANCEL, |s| EnrollmentStatus::ACTIVE.contains(&s), true),
        (APPROVE, |s| s == Pending, true),
        (COMPLETE, |s| s == Registered, true),
        (FAIL, |s| s == Registered, true),
    ];
    let mut refused = 0;
    for (state, id, owner) in &by_state {
        for (mutation, allowed, staff) in &attempts {
            if allowed(*state) {
                continue;
            }
            let token = if *staff { &t } else { owner };
            let before = app.snapshot().await;
            let response = app.gql(Some(token), mutation, json!({ "e": id })).await;
            assert_eq!(
                error_code(&response),
                "INVALID_TRANSITION",
                "{state:?}: {mutation}"
            );
            assert_eq!(
                app.snapshot().await,
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

/// A student's `switchSection` racing their own `enroll` into a section of another course
/// that overlaps the switch's target: at most one of the two may succeed, and the student never
/// holds two overlapping seats (invariant 7). Both writes lock the student before they read
/// the student's seats.
async fn a_switch_racing_an_enroll_into_an_overlapping_section_books_one(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let meets = |day: &str| json!([{ "weekday": day, "start": "09:00", "end": "10:30" }]);
    let (_, [monday, tuesday]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Drawing" }),
            [
                json!({ "name": "Monday", "schedule": meets("MONDAY") }),
                json!({ "name": "Tuesday", "schedule": meets("TUESDAY") }),
            ],
        )
        .await;
    let (_, [other]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Singing" }),
            [json!({ "name": "Tuesday", "schedule": meets("TUESDAY") })],
        )
        .await;
    for round in 0..15 {
        let (student, token) = app.student(&campus).await;
        let seat = app.enroll(&token, monday).await.expect("seated").id;
        let switch = app.gql(Some(&token), SWITCH, json!({ "e": seat, "s": tuesday }));
        let (switched, enrolled) = tokio::join!(switch, app.enroll(&token, other));
        let switched = switched["errors"].is_null();
        assert!(
            !(switched && enrolled.is_ok()),
            "[{:?}] round {round}: both the switch and the enroll succeeded",
            app.backend
        );
        let held: Vec<_> = enrollment::Entity::find()
            .filter(enrollment::Column::UserId.eq(student))
            .filter(enrollment::Column::Status.is_in(EnrollmentStatus::ACTIVE))
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.section_id)
            .collect();
        assert!(
            !(held.contains(&tuesday) && held.contains(&other)),
            "[{:?}] round {round}: two overlapping seats {held:?}",
            app.backend
        );
    }
    for section in [monday, tuesday, other] {
        app.assert_section_consistent(section).await;
    }
}

/// A withdrawal that promotes a waiter racing that waiter's own `switchSection` into a section
/// overlapping the seat being freed: the promotion checks the waiter's seats under the
/// waiter's lock, so the waiter never ends with both overlapping seats (invariant 7); a waiter
/// the switch made ineligible is passed over and keeps their place.
async fn a_promotion_racing_the_waiters_switch_never_double_books(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let meets = |day: &str| json!([{ "weekday": day, "start": "09:00", "end": "10:30" }]);
    let (_, [tuesday]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Pottery" }),
            [json!({ "name": "Tuesday", "capacity": 1, "schedule": meets("TUESDAY") })],
        )
        .await;
    let (_, [monday, overlapping]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Weaving" }),
            [
                json!({ "name": "Monday", "schedule": meets("MONDAY") }),
                json!({ "name": "Tuesday", "schedule": meets("TUESDAY") }),
            ],
        )
        .await;
    for round in 0..10 {
        let (_, holder) = app.student(&campus).await;
        let (waiter, token) = app.student(&campus).await;
        let seat = app.enroll(&holder, tuesday).await.expect("the seat").id;
        let waiting = app.enroll(&token, tuesday).await.expect("a place");
        assert_eq!(waiting.status, "WAITLISTED", "round {round}");
        let other = app.enroll(&token, monday).await.expect("seated").id;
        let switch = app.gql(
            Some(&token),
            SWITCH,
            json!({ "e": other, "s": overlapping }),
        );
        let (switched, withdrawn) = tokio::join!(switch, app.withdraw(&holder, seat));
        assert_eq!(withdrawn.as_deref(), Ok("WITHDRAWN"), "round {round}");
        let held: Vec<_> = enrollment::Entity::find()
            .filter(enrollment::Column::UserId.eq(waiter))
            .filter(enrollment::Column::Status.is_in([
                EnrollmentStatus::Registered,
                EnrollmentStatus::Pending,
                EnrollmentStatus::Offered,
            ]))
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.section_id)
            .collect();
        assert!(
            !(held.contains(&tuesday) && held.contains(&overlapping)),
            "[{:?}] round {round}: two overlapping seats {held:?} (switch: {switched})",
            app.backend
        );
        // Free the sections for the next round.
        for e in enrollment::Entity::find()
            .filter(enrollment::Column::UserId.eq(waiter))
            .filter(enrollment::Column::Status.is_in(EnrollmentStatus::ACTIVE))
            .all(&app.db)
            .await
            .unwrap()
        {
            app.withdraw(&token, e.id).await.expect("withdrawn");
        }
    }
    for section in [tuesday, monday, overlapping] {
        app.assert_section_consistent(section).await;
    }
}

/// Accepting an offer, or staff approving a pending request, racing the student's own
/// `switchSection` into a section that overlaps the seat being confirmed: the student never
/// ends with both overlapping seats (invariant 7), whichever wins.
async fn confirming_a_seat_racing_the_students_switch_never_double_books(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let meets = |day: &str| json!([{ "weekday": day, "start": "09:00", "end": "10:30" }]);
    let (_, [offering, approving]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Glass" }),
            [
                json!({ "name": "Offers", "capacity": 1, "schedule": meets("TUESDAY"),
                        "promotionMode": "OFFER" }),
                json!({ "name": "Approves", "schedule": meets("TUESDAY"),
                        "requiresApproval": true }),
            ],
        )
        .await;
    let (_, [monday, overlapping]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Wood" }),
            [
                json!({ "name": "Monday", "schedule": meets("MONDAY") }),
                json!({ "name": "Tuesday", "schedule": meets("TUESDAY") }),
            ],
        )
        .await;
    let accept = "mutation($e: UUID!) { acceptOffer(enrollmentId: $e) { status } }";
    let approve = "mutation($e: UUID!) { approveEnrollment(enrollmentId: $e) { status } }";
    for round in 0..12 {
        let (student, token) = app.student(&campus).await;
        let other = app.enroll(&token, monday).await.expect("seated").id;
        // Even rounds: an offered seat; odd rounds: a pending request.
        let (confirm, confirmer, pending) = if round % 2 == 0 {
            let (_, holder) = app.student(&campus).await;
            let seat = app.enroll(&holder, offering).await.expect("the seat").id;
            let place = app.enroll(&token, offering).await.expect("a place").id;
            app.withdraw(&holder, seat).await.expect("frees it");
            let offered = app.enrollment_row(place).await.status;
            assert_eq!(offered, EnrollmentStatus::Offered, "round {round}");
            (accept, token.clone(), place)
        } else {
            let request = app.enroll(&token, approving).await.expect("pending").id;
            (approve, t.clone(), request)
        };
        let confirming = app.gql(Some(&confirmer), confirm, json!({ "e": pending }));
        let switching = app.gql(
            Some(&token),
            SWITCH,
            json!({ "e": other, "s": overlapping }),
        );
        let (confirmed, switched) = tokio::join!(confirming, switching);
        let held: Vec<_> = enrollment::Entity::find()
            .filter(enrollment::Column::UserId.eq(student))
            .filter(enrollment::Column::Status.is_in([
                EnrollmentStatus::Registered,
                EnrollmentStatus::Pending,
                EnrollmentStatus::Offered,
            ]))
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.section_id)
            .collect();
        assert!(
            !(held.contains(&overlapping)
                && (held.contains(&offering) || held.contains(&approving))),
            "[{:?}] round {round}: two overlapping seats {held:?} ({confirmed} / {switched})",
            app.backend
        );
        for e in enrollment::Entity::find()
            .filter(enrollment::Column::UserId.eq(student))
            .filter(enrollment::Column::Status.is_in(EnrollmentStatus::ACTIVE))
            .all(&app.db)
            .await
            .unwrap()
        {
            app.withdraw(&token, e.id).await.expect("withdrawn");
        }
    }
    for section in [offering, approving, monday, overlapping] {
        app.assert_section_consistent(section).await;
    }
}

both_backends!(
    confirming_a_seat_racing_the_students_switch_never_double_books,
    switching_moves_the_seat_and_promotes_in_the_old_section,
    a_promotion_racing_the_waiters_switch_never_double_books,
    a_switch_racing_an_enroll_into_an_overlapping_section_books_one,
    opposite_concurrent_switches_neither_deadlock_nor_overbook,
    staff_override_capacity_is_recorded_and_promotes_nobody_while_over,
    every_invalid_transition_from_every_state_changes_nothing
);

async fn a_certification_counts_as_prerequisite_only_until_it_expires(app: TestApp) {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let basics = json!({ "name": "Basics", "certificateValidityMonths": 1 });
    let (basics, [basics_section]) = app
        .course_with_sections(&t, basics, [json!({ "name": "A" })])
        .await;
    let advanced = json!({ "name": "Advanced", "prerequisiteIds": [basics] });
    let (_, [advanced_section]) = app
        .course_with_sections(&t, advanced, [json!({ "name": "A" })])
        .await;
    let (_, token) = app.student(&campus).await;
    let id = app
        .enroll(&token, basics_section)
        .await
        .expect("enrolled")
        .id;
    app.ok(Some(&t), COMPLETE, json!({ "e": id })).await;

    // Linked both ways: the certification names the enrollment that earned it.
    let mine = "{ myCertifications { isValid course { id } \
        enrollment { id status certification { id } } } }";
    let mine = app.ok(Some(&token), mine, json!({})).await;
    let cert = &mine["myCertifications"][0];
    assert_eq!(cert["isValid"], true);
    assert_eq!(cert["course"]["id"], basics.to_string());
    assert_eq!(cert["enrollment"]["id"], id.to_string());
    assert_eq!(cert["enrollment"]["status"], "COMPLETED");
    assert!(cert["enrollment"]["certification"]["id"].is_string());

    let query = "mutation($s: UUID!) { enroll(sectionId: $s) { \
        id status prerequisiteCheckPassed prerequisiteCheckAt } }";
    let first = app
        .ok(Some(&token), query, json!({ "s": advanced_section }))
        .await;
    assert_eq!(first["enroll"]["status"], "REGISTERED");
    assert_eq!(first["enroll"]["prerequisiteCheckPassed"], true);
    assert!(first["enroll"]["prerequisiteCheckAt"].is_string());
    app.withdraw(&token, parse_id(&first["enroll"]["id"]))
        .await
        .expect("withdrawn");

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

/// `enroll` reads what its checks need in a fixed number of statements: as many for a student
/// with three prerequisites met and two other seats to compare meetings with as for one with
/// none of either (docs/architecture.md#the-write-path). The reads still decide: an
/// overlapping seat is refused, and so is a second enrollment in the course.
async fn enroll_reads_in_a_fixed_number_of_statements(app: TestApp) {
    let campus = app.campus("Org").await;
    let t = campus.teacher_token.clone();
    let meets = |day: &str| json!([{ "weekday": day, "start": "09:00", "end": "10:30" }]);
    let (veteran, token) = app.student(&campus).await;
    let mut prerequisites = Vec::new();
    for name in ["P1", "P2", "P3"] {
        let (course, [section]) = app
            .course_with_sections(
                &t,
                json!({ "name": name, "certificateValidityMonths": 12 }),
                [json!({ "name": "A" })],
            )
            .await;
        let id = app.enroll(&token, section).await.expect("enrolled").id;
        app.ok(Some(&t), COMPLETE, json!({ "e": id })).await;
        prerequisites.push(course);
    }
    for day in ["MONDAY", "WEDNESDAY"] {
        let (_, [section]) = app
            .course_with_sections(
                &t,
                json!({ "name": day }),
                [json!({ "name": "A", "schedule": meets(day) })],
            )
            .await;
        app.enroll(&token, section).await.expect("enrolled");
    }
    let (_, [advanced, overlapping]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Advanced", "prerequisiteIds": prerequisites }),
            [
                json!({ "name": "A", "schedule": meets("TUESDAY") }),
                json!({ "name": "B", "schedule": meets("MONDAY") }),
            ],
        )
        .await;
    let (_, [open]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Open" }),
            [json!({ "name": "A", "schedule": meets("TUESDAY") })],
        )
        .await;
    let (_, newcomer) = app.student(&campus).await;

    app.reset_statements();
    let enrolled = app.enroll(&newcomer, open).await.expect("enrolled");
    let plain = app.statement_count();
    assert_eq!(enrolled.status, "REGISTERED");
    app.reset_statements();
    let enrolled = app
        .enroll(&token, advanced)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let checked = app.statement_count();
    assert_eq!(enrolled.status, "REGISTERED");
    assert_eq!(
        plain, checked,
        "the checks' statements grow with what the student holds"
    );
    // The same on both databases: the viewer; the section with its course and the user,
    // locked; the checks; the seat; the enrollment holding it; the event (with its change row
    // on PostgreSQL).
    assert!(checked <= 6, "enroll took {checked} statements");

    let refused = app
        .gql(Some(&token), ENROLL_AS_STAFF, json!({ "s": overlapping }))
        .await;
    assert_eq!(error_code(&refused), "ALREADY_ENROLLED");
    app.withdraw(&token, enrolled.id).await.expect("withdrawn");
    let refused = app
        .gql(Some(&token), ENROLL_AS_STAFF, json!({ "s": overlapping }))
        .await;
    assert_eq!(error_code(&refused), "SCHEDULE_CONFLICT");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("MONDAY"),
        "{refused}"
    );
    let rows = enrollment::Entity::find()
        .filter(enrollment::Column::UserId.eq(veteran))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 6, "a refused enrollment left a row");
}

both_backends!(enroll_reads_in_a_fixed_number_of_statements);

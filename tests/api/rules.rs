//! Every enrollment rule on every path (docs/design.md#invariants): no overlapping seats under a
//! race, promotion of the earliest *eligible* waiter, PENDING promotion into approval sections,
//! finished enrollments keeping their seats, deactivation as one rule, privacy of other
//! people's actions, and `expectedStatus` on cancellation.

use chrono::Duration;
use entity::types::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, both_backends, error_code};

const COURSE: &str = "mutation($input: CreateCourseInput!) { createCourse(input: $input) { id } }";
const SECTION: &str =
    "mutation($input: CreateSectionInput!) { createSection(input: $input) { id } }";
const UPDATE_SECTION: &str = "mutation($id: UUID!, $input: UpdateSectionInput!) {
    updateSection(id: $id, input: $input) { id } }";
const UPDATE_COURSE: &str = "mutation($id: UUID!, $input: UpdateCourseInput!) {
    updateCourse(id: $id, input: $input) { id } }";
const ENROLL: &str = "mutation($s: UUID!, $u: UUID, $o: Boolean) {
    enroll(sectionId: $s, userId: $u, overrideScheduleConflict: $o) { id status waitlistPosition } }";
const WITHDRAW: &str = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }";
const CANCEL: &str = "mutation($e: UUID!, $x: EnrollmentStatus) {
    cancelEnrollment(enrollmentId: $e, reason: \"no\", expectedStatus: $x) { status } }";
const APPROVE: &str = "mutation($e: UUID!, $o: Boolean) {
    approveEnrollment(enrollmentId: $e, overrideScheduleConflict: $o) { status } }";
const COMPLETE: &str = "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { status } }";
const FAIL: &str = "mutation($e: UUID!) { failEnrollment(enrollmentId: $e) { status } }";
const SWITCH: &str = "mutation($e: UUID!, $s: UUID!) {
    switchSection(enrollmentId: $e, toSectionId: $s) { status } }";
const SEATS: &str = "query($id: UUID!) { section(id: $id) {
    registeredCount pendingCount finishedCount waitlistCount seatsAvailable isFull } }";
const MINE: &str = "{ myEnrollments { id status waitlistPosition skipReason section { id }
    history { from to actor { id } } } }";

/// An organization with a teacher who runs its courses.
struct Campus {
    organization: Uuid,
    teacher: String,
}

async fn campus(app: &TestApp) -> Campus {
    let organization = app
        .organization(&format!("Org {}", Uuid::new_v4()))
        .await
        .id;
    let teacher = app.user(Role::Teacher, Some(organization)).await;
    Campus {
        organization,
        teacher: app.token(teacher.id),
    }
}

async fn student(app: &TestApp, campus: &Campus) -> (Uuid, String) {
    let user = app.user(Role::Student, Some(campus.organization)).await;
    (user.id, app.token(user.id))
}

fn id_of(data: &Value, field: &str) -> Uuid {
    data[field]["id"].as_str().unwrap().parse().unwrap()
}

async fn course(app: &TestApp, campus: &Campus, input: Value) -> Uuid {
    let mut input = input;
    if input.get("name").is_none() {
        input["name"] = json!("A course");
    }
    let data = app
        .ok(Some(&campus.teacher), COURSE, json!({ "input": input }))
        .await;
    id_of(&data, "createCourse")
}

/// A section meeting on `day` from 09:00 to 10:30.
async fn section(app: &TestApp, campus: &Campus, course: Uuid, day: &str, more: Value) -> Uuid {
    let mut input = json!({
        "courseId": course,
        "name": "Section",
        "capacity": 1,
        "schedule": [{ "weekday": day, "start": "09:00", "end": "10:30" }],
    });
    if let (Some(input), Some(more)) = (input.as_object_mut(), more.as_object()) {
        input.extend(more.clone());
    }
    let data = app
        .ok(Some(&campus.teacher), SECTION, json!({ "input": input }))
        .await;
    id_of(&data, "createSection")
}

/// A new course with one section of capacity 1 on `day`.
async fn class(app: &TestApp, campus: &Campus, day: &str, more: Value) -> (Uuid, Uuid) {
    let c = course(app, campus, json!({})).await;
    (c, section(app, campus, c, day, more).await)
}

/// Enrolls: `Ok((id, status))` or `Err(code)`.
async fn enroll(app: &TestApp, token: &str, section: Uuid) -> Result<(Uuid, String), String> {
    act(app, token, ENROLL, json!({ "s": section }), "enroll").await
}

/// Runs a mutation that answers an enrollment: `Ok((id, status))` or `Err(code)`.
async fn act(
    app: &TestApp,
    token: &str,
    mutation: &str,
    variables: Value,
    field: &str,
) -> Result<(Uuid, String), String> {
    let response = app.gql(Some(token), mutation, variables).await;
    if response.get("errors").is_some() {
        return Err(error_code(&response));
    }
    let node = &response["data"][field];
    let id = node["id"]
        .as_str()
        .map_or(Uuid::nil(), |s| s.parse().unwrap());
    Ok((id, node["status"].as_str().unwrap().to_owned()))
}

async fn status(app: &TestApp, token: &str, section: Uuid) -> (String, Option<i64>, Value) {
    let data = app.ok(Some(token), MINE, json!({})).await;
    let mine = data["myEnrollments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["section"]["id"] == json!(section))
        .unwrap_or_else(|| panic!("no enrollment in {section}: {data}"))
        .clone();
    (
        mine["status"].as_str().unwrap().to_owned(),
        mine["waitlistPosition"].as_i64(),
        mine,
    )
}

async fn seats(app: &TestApp, token: &str, section: Uuid) -> Value {
    app.ok(Some(token), SEATS, json!({ "id": section })).await["section"].clone()
}

async fn overlapping_enrollments_fired_together_never_both_take_a_seat(app: TestApp) {
    let campus = campus(&app).await;
    let (_, a) = class(&app, &campus, "MONDAY", json!({ "capacity": null })).await;
    let (_, b) = class(&app, &campus, "MONDAY", json!({ "capacity": null })).await;
    for round in 0..50 {
        let (_, token) = student(&app, &campus).await;
        let (first, second) = tokio::join!(enroll(&app, &token, a), enroll(&app, &token, b));
        let mut outcomes = [first.map(|r| r.1), second.map(|r| r.1)];
        outcomes.sort();
        assert_eq!(
            outcomes,
            [
                Ok("REGISTERED".to_owned()),
                Err("SCHEDULE_CONFLICT".to_owned())
            ],
            "[{:?}] round {round}: one seat, one conflict",
            app.backend
        );
    }
}

async fn promotion_skips_a_waiter_with_an_overlapping_seat_and_promotes_the_next(app: TestApp) {
    let campus = campus(&app).await;
    let (_, full) = class(&app, &campus, "MONDAY", json!({})).await;
    let (_, elsewhere) = class(&app, &campus, "MONDAY", json!({ "capacity": 5 })).await;
    let (_, holder) = student(&app, &campus).await;
    let (_, first) = student(&app, &campus).await;
    let (_, second) = student(&app, &campus).await;
    let (held, _) = enroll(&app, &holder, full).await.unwrap();
    assert_eq!(enroll(&app, &first, full).await.unwrap().1, "WAITLISTED");
    assert_eq!(enroll(&app, &second, full).await.unwrap().1, "WAITLISTED");
    // Waiting holds no seat, so the first waiter may take an overlapping seat elsewhere.
    let (other, _) = enroll(&app, &first, elsewhere).await.unwrap();

    act(&app, &holder, WITHDRAW, json!({ "e": held }), "withdraw")
        .await
        .unwrap();
    let (skipped, position, row) = status(&app, &first, full).await;
    assert_eq!((skipped.as_str(), position), ("WAITLISTED", Some(1)));
    assert!(
        row["skipReason"].as_str().unwrap().contains("schedule"),
        "the reason is recorded: {row}"
    );
    assert_eq!(status(&app, &second, full).await.0, "REGISTERED");

    // Once eligible, the skipped waiter is first in line when the next seat frees.
    act(&app, &first, WITHDRAW, json!({ "e": other }), "withdraw")
        .await
        .unwrap();
    let (_, _, row) = status(&app, &second, full).await;
    let seat: Uuid = row["id"].as_str().unwrap().parse().unwrap();
    act(&app, &second, WITHDRAW, json!({ "e": seat }), "withdraw")
        .await
        .unwrap();
    let (promoted, _, row) = status(&app, &first, full).await;
    assert_eq!(promoted, "REGISTERED");
    assert!(row["skipReason"].is_null(), "cleared once promoted: {row}");
}

async fn promotion_skips_a_waiter_whose_prerequisite_expired(app: TestApp) {
    let campus = campus(&app).await;
    let basics = course(&app, &campus, json!({ "certificateValidityMonths": 1 })).await;
    let basics_section =
        section(&app, &campus, basics, "FRIDAY", json!({ "capacity": null })).await;
    let advanced = course(&app, &campus, json!({ "prerequisiteIds": [basics] })).await;
    let full = section(&app, &campus, advanced, "MONDAY", json!({})).await;
    let clock = app.state.store.clock().clone();
    let certify = async |token: &str| {
        let (id, _) = enroll(&app, token, basics_section).await.unwrap();
        act(
            &app,
            &campus.teacher,
            COMPLETE,
            json!({ "e": id }),
            "completeEnrollment",
        )
        .await
        .unwrap();
    };
    let (_, early) = student(&app, &campus).await;
    let (_, late) = student(&app, &campus).await;
    let (_, holder) = student(&app, &campus).await;
    certify(&early).await;
    clock.advance(Duration::days(20));
    certify(&late).await;
    certify(&holder).await;
    let (held, _) = enroll(&app, &holder, full).await.unwrap();
    assert_eq!(enroll(&app, &early, full).await.unwrap().1, "WAITLISTED");
    assert_eq!(enroll(&app, &late, full).await.unwrap().1, "WAITLISTED");

    // The early certification (one month) has expired; the late one has not.
    clock.advance(Duration::days(15));
    act(&app, &holder, WITHDRAW, json!({ "e": held }), "withdraw")
        .await
        .unwrap();
    let (skipped, position, row) = status(&app, &early, full).await;
    assert_eq!((skipped.as_str(), position), ("WAITLISTED", Some(1)));
    assert!(
        row["skipReason"].as_str().unwrap().contains("prerequisite"),
        "{row}"
    );
    assert_eq!(status(&app, &late, full).await.0, "REGISTERED");
}

async fn promotion_into_an_approval_section_gives_pending(app: TestApp) {
    let campus = campus(&app).await;
    let (_, s) = class(
        &app,
        &campus,
        "TUESDAY",
        json!({ "requiresApproval": true }),
    )
    .await;
    let (_, holder) = student(&app, &campus).await;
    let (_, waiter) = student(&app, &campus).await;
    let (held, first) = enroll(&app, &holder, s).await.unwrap();
    assert_eq!(first, "PENDING");
    assert_eq!(enroll(&app, &waiter, s).await.unwrap().1, "WAITLISTED");
    act(&app, &holder, WITHDRAW, json!({ "e": held }), "withdraw")
        .await
        .unwrap();
    let (promoted, _, row) = status(&app, &waiter, s).await;
    assert_eq!(promoted, "PENDING");
    let last = row["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["from"].clone(), last["to"].clone()),
        (json!("WAITLISTED"), json!("PENDING"))
    );
    assert!(
        last["actor"].is_null(),
        "a promotion is the system's action: {last}"
    );
    let counts = seats(&app, &campus.teacher, s).await;
    assert_eq!(
        (
            counts["pendingCount"].clone(),
            counts["waitlistCount"].clone()
        ),
        (json!(1), json!(0))
    );
}

async fn finished_enrollments_keep_their_seats(app: TestApp) {
    for finish in [COMPLETE, FAIL] {
        let campus = campus(&app).await;
        let (_, s) = class(&app, &campus, "WEDNESDAY", json!({})).await;
        let (_, holder) = student(&app, &campus).await;
        let (_, waiter) = student(&app, &campus).await;
        let (_, newcomer) = student(&app, &campus).await;
        let (held, _) = enroll(&app, &holder, s).await.unwrap();
        enroll(&app, &waiter, s).await.unwrap();
        let field = if finish == COMPLETE {
            "completeEnrollment"
        } else {
            "failEnrollment"
        };
        act(&app, &campus.teacher, finish, json!({ "e": held }), field)
            .await
            .unwrap();

        let counts = seats(&app, &campus.teacher, s).await;
        assert_eq!(counts["finishedCount"], 1, "{counts}");
        assert_eq!(counts["seatsAvailable"], 0, "{counts}");
        assert_eq!(counts["isFull"], true, "{counts}");
        assert_eq!(status(&app, &waiter, s).await.1, Some(1));
        let open = app
            .ok(None, "{ courses(filter: { hasOpenSeats: true }) { edges { node { sections { id } } } } }", json!({}))
            .await;
        assert!(
            !open.to_string().contains(&s.to_string()),
            "not listed as open: {open}"
        );
        let (_, late) = enroll(&app, &newcomer, s).await.unwrap();
        assert_eq!(late, "WAITLISTED");
        assert_eq!(status(&app, &newcomer, s).await.1, Some(2));
        // An unrelated change promotes nobody.
        app.ok(
            Some(&campus.teacher),
            UPDATE_SECTION,
            json!({ "id": s, "input": { "name": "Renamed" } }),
        )
        .await;
        assert_eq!(status(&app, &waiter, s).await.0, "WAITLISTED");
    }
}

/// The section states of the path table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Active,
    InactiveSection,
    InactiveCourse,
    Approval,
    WaitlistOff,
}

/// The paths that take or free a seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Enroll,
    Withdraw,
    Cancel,
    Complete,
    Fail,
    SwitchOut,
    CapacityRaise,
    Approve,
}

/// A course with a full section (capacity 1: a holder, and a waiter unless the waitlist is off)
/// and a roomy second section on another day, put in `state`.
struct Table {
    course: Uuid,
    section: Uuid,
    roomy: Uuid,
    holder: (Uuid, String),
    waiter: Option<String>,
    campus: Campus,
}

async fn table(app: &TestApp, state: State) -> Table {
    let campus = campus(app).await;
    let more = match state {
        State::Approval => json!({ "requiresApproval": true }),
        State::WaitlistOff => json!({ "waitlistEnabled": false }),
        _ => json!({}),
    };
    let (course, section) = class(app, &campus, "THURSDAY", more).await;
    let roomy = self::section(app, &campus, course, "FRIDAY", json!({ "capacity": 5 })).await;
    let (_, holder_token) = student(app, &campus).await;
    let (held, _) = enroll(app, &holder_token, section).await.unwrap();
    let waiter = if state == State::WaitlistOff {
        None
    } else {
        let (_, token) = student(app, &campus).await;
        assert_eq!(enroll(app, &token, section).await.unwrap().1, "WAITLISTED");
        Some(token)
    };
    match state {
        State::InactiveSection => {
            let input = json!({ "id": section, "input": { "isActive": false } });
            app.ok(Some(&campus.teacher), UPDATE_SECTION, input).await;
        }
        State::InactiveCourse => {
            let input = json!({ "id": course, "input": { "isActive": false } });
            app.ok(Some(&campus.teacher), UPDATE_COURSE, input).await;
        }
        _ => {}
    }
    Table {
        course,
        section,
        roomy,
        holder: (held, holder_token),
        waiter,
        campus,
    }
}

/// Every path that takes or frees a seat, in every state of the section: what the actor is
/// told, what the waiter becomes, and that the counters stay right.
async fn every_path_in_every_section_state(app: TestApp) {
    use Path::*;
    use State::*;
    for state in [
        Active,
        InactiveSection,
        InactiveCourse,
        Approval,
        WaitlistOff,
    ] {
        let inactive = matches!(state, InactiveSection | InactiveCourse);
        let promoted_to = match state {
            Approval => Some("PENDING"),
            Active => Some("REGISTERED"),
            _ => None,
        };
        for path in [
            Enroll,
            Withdraw,
            Cancel,
            Complete,
            Fail,
            SwitchOut,
            CapacityRaise,
            Approve,
        ] {
            let t = table(&app, state).await;
            let (held, holder) = (t.holder.0, t.holder.1.as_str());
            let teacher = t.campus.teacher.as_str();
            let case = format!("[{:?}] {state:?} × {path:?}", app.backend);
            // What the actor is told, and what the waiter becomes (None: stays waiting).
            let (told, waiter_becomes) = match path {
                Enroll => {
                    let (_, newcomer) = student(&app, &t.campus).await;
                    let told = enroll(&app, &newcomer, t.section).await.map(|r| r.1);
                    let expected = match state {
                        _ if inactive => Err("SECTION_INACTIVE"),
                        WaitlistOff => Err("SECTION_FULL"),
                        _ => Ok("WAITLISTED"),
                    };
                    assert_eq!(told.as_deref().map_err(String::as_str), expected, "{case}");
                    (None, None)
                }
                Withdraw | Cancel => {
                    let (m, f) = if path == Withdraw {
                        (WITHDRAW, "withdraw")
                    } else {
                        (CANCEL, "cancelEnrollment")
                    };
                    let token = if path == Withdraw { holder } else { teacher };
                    let told = act(&app, token, m, json!({ "e": held }), f).await;
                    (Some(told.map(|r| r.1)), promoted_to)
                }
                Complete | Fail => {
                    let (m, f) = if path == Complete {
                        (COMPLETE, "completeEnrollment")
                    } else {
                        (FAIL, "failEnrollment")
                    };
                    let told = act(&app, teacher, m, json!({ "e": held }), f)
                        .await
                        .map(|r| r.1);
                    let expected = match state {
                        // A PENDING holder has not been registered.
                        Approval => Err("INVALID_TRANSITION".to_owned()),
                        _ if path == Complete => Ok("COMPLETED".to_owned()),
                        _ => Ok("FAILED".to_owned()),
                    };
                    assert_eq!(told, expected, "{case}");
                    (None, None)
                }
                SwitchOut => {
                    let told = act(
                        &app,
                        holder,
                        SWITCH,
                        json!({ "e": held, "s": t.roomy }),
                        "switchSection",
                    )
                    .await;
                    if state == InactiveCourse {
                        assert_eq!(
                            told.map(|r| r.1),
                            Err("SECTION_INACTIVE".to_owned()),
                            "{case}"
                        );
                        (None, None)
                    } else {
                        assert_eq!(told.map(|r| r.1), Ok("REGISTERED".to_owned()), "{case}");
                        (None, promoted_to)
                    }
                }
                CapacityRaise => {
                    let input = json!({ "id": t.section, "input": { "capacity": 2 } });
                    app.ok(Some(teacher), UPDATE_SECTION, input).await;
                    (None, promoted_to)
                }
                Approve => {
                    let told = act(
                        &app,
                        teacher,
                        APPROVE,
                        json!({ "e": held }),
                        "approveEnrollment",
                    )
                    .await
                    .map(|r| r.1);
                    let expected = match state {
                        Approval => Ok("REGISTERED".to_owned()),
                        _ => Err("INVALID_TRANSITION".to_owned()),
                    };
                    assert_eq!(told, expected, "{case}");
                    (None, None)
                }
            };
            if let Some(told) = told {
                let expected = if path == Withdraw {
                    "WITHDRAWN"
                } else {
                    "CANCELLED"
                };
                assert_eq!(
                    told,
                    Ok(expected.to_owned()),
                    "{case}: staff and students may still leave an inactive section"
                );
            }
            if let Some(waiter) = &t.waiter {
                let (now, position, _) = status(&app, waiter, t.section).await;
                match waiter_becomes {
                    Some(status) => assert_eq!(now, status, "{case}: the waiter is promoted"),
                    None => assert_eq!(
                        (now.as_str(), position),
                        ("WAITLISTED", Some(1)),
                        "{case}: the waiter keeps waiting"
                    ),
                }
            }
            app.assert_section_consistent(t.section).await;
            app.assert_section_consistent(t.roomy).await;
            let _ = t.course;
        }
    }
}

async fn reactivation_promotes_into_free_seats(app: TestApp) {
    for what in ["section", "course"] {
        let t = table(
            &app,
            if what == "section" {
                State::InactiveSection
            } else {
                State::InactiveCourse
            },
        )
        .await;
        act(
            &app,
            &t.holder.1,
            WITHDRAW,
            json!({ "e": t.holder.0 }),
            "withdraw",
        )
        .await
        .unwrap();
        let waiter = t.waiter.as_deref().unwrap();
        assert_eq!(
            status(&app, waiter, t.section).await.0,
            "WAITLISTED",
            "{what}: nobody promoted while inactive"
        );
        let (mutation, id) = if what == "section" {
            (UPDATE_SECTION, t.section)
        } else {
            (UPDATE_COURSE, t.course)
        };
        app.ok(
            Some(&t.campus.teacher),
            mutation,
            json!({ "id": id, "input": { "isActive": true } }),
        )
        .await;
        assert_eq!(
            status(&app, waiter, t.section).await.0,
            "REGISTERED",
            "{what}: reactivating promotes"
        );
        app.assert_section_consistent(t.section).await;
    }
}

async fn approval_of_a_seat_that_now_overlaps_fails_unless_overridden(app: TestApp) {
    let campus = campus(&app).await;
    let (_, pending) = class(
        &app,
        &campus,
        "MONDAY",
        json!({ "requiresApproval": true, "capacity": 5 }),
    )
    .await;
    let (_, other) = class(&app, &campus, "TUESDAY", json!({ "capacity": 5 })).await;
    let (_, token) = student(&app, &campus).await;
    let (request, _) = enroll(&app, &token, pending).await.unwrap();
    enroll(&app, &token, other).await.unwrap();
    // The other section moves onto the pending one's meeting.
    let moved = json!({ "id": other, "input": { "schedule": [{ "weekday": "MONDAY", "start": "10:00", "end": "11:00" }] } });
    app.ok(Some(&campus.teacher), UPDATE_SECTION, moved).await;

    let refused = act(
        &app,
        &campus.teacher,
        APPROVE,
        json!({ "e": request }),
        "approveEnrollment",
    )
    .await;
    assert_eq!(refused.map(|r| r.1), Err("SCHEDULE_CONFLICT".to_owned()));
    assert_eq!(
        status(&app, &token, pending).await.0,
        "PENDING",
        "nothing changed"
    );
    let approved = act(
        &app,
        &campus.teacher,
        APPROVE,
        json!({ "e": request, "o": true }),
        "approveEnrollment",
    )
    .await;
    assert_eq!(approved.map(|r| r.1), Ok("REGISTERED".to_owned()));
    let events = app.events_of(request).await;
    let last = events.last().unwrap();
    assert_eq!(
        last.details,
        Some(json!({ "scheduleConflictOverride": true }))
    );
}

async fn cancelling_a_changed_enrollment_with_expected_status_is_refused(app: TestApp) {
    let campus = campus(&app).await;
    let (_, s) = class(&app, &campus, "MONDAY", json!({ "requiresApproval": true })).await;
    let (_, token) = student(&app, &campus).await;
    let (request, _) = enroll(&app, &token, s).await.unwrap();
    act(
        &app,
        &campus.teacher,
        APPROVE,
        json!({ "e": request }),
        "approveEnrollment",
    )
    .await
    .unwrap();
    let response = app
        .gql(
            Some(&campus.teacher),
            CANCEL,
            json!({ "e": request, "x": "PENDING" }),
        )
        .await;
    assert_eq!(error_code(&response), "INVALID_TRANSITION");
    assert_eq!(
        response["errors"][0]["extensions"]["currentStatus"],
        "REGISTERED"
    );
    assert_eq!(
        status(&app, &token, s).await.0,
        "REGISTERED",
        "nothing changed"
    );
    let cancelled = act(
        &app,
        &campus.teacher,
        CANCEL,
        json!({ "e": request, "x": "REGISTERED" }),
        "cancelEnrollment",
    )
    .await;
    assert_eq!(cancelled.map(|r| r.1), Ok("CANCELLED".to_owned()));
}

async fn proxy_enrollment_is_for_users_of_the_course_organization(app: TestApp) {
    let campus = campus(&app).await;
    let elsewhere = self::campus(&app).await;
    let (_, s) = class(&app, &campus, "MONDAY", json!({ "capacity": 5 })).await;
    let (outsider, _) = student(&app, &elsewhere).await;
    let (insider, _) = student(&app, &campus).await;
    let proxy = |user: Uuid| json!({ "s": s, "u": user });
    let refused = app
        .gql(Some(&campus.teacher), ENROLL, proxy(outsider))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    app.ok(Some(&campus.teacher), ENROLL, proxy(insider)).await;
    let admin = app.user(Role::Admin, None).await;
    app.ok(Some(&app.token(admin.id)), ENROLL, proxy(outsider))
        .await;
}

async fn another_users_teams_are_for_teammates_and_staff_over_them(app: TestApp) {
    let campus = campus(&app).await;
    let (member, member_token) = student(&app, &campus).await;
    let (_, mate_token) = student(&app, &campus).await;
    let (_, stranger_token) = student(&app, &self::campus(&app).await).await;
    let coordinator = app.user(Role::Coordinator, Some(campus.organization)).await;
    let name = format!("Team {}", Uuid::new_v4());
    let create = "mutation($n: String!) { createTeam(name: $n, passKey: \"secret-key\") { id } }";
    app.ok(Some(&campus.teacher), create, json!({ "n": name }))
        .await;
    let join = "mutation($n: String!) { joinTeam(name: $n, passKey: \"secret-key\") { id } }";
    app.ok(Some(&member_token), join, json!({ "n": name }))
        .await;
    app.ok(Some(&mate_token), join, json!({ "n": name })).await;
    let teams = "query($id: UUID!) { user(id: $id) { teams { name members { id } } } }";
    let seen = async |token: &str| {
        app.ok(Some(token), teams, json!({ "id": member })).await["user"]["teams"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(seen(&stranger_token).await, 0, "a stranger sees no teams");
    assert_eq!(seen(&mate_token).await, 1, "a teammate does");
    assert_eq!(
        seen(&app.token(coordinator.id)).await,
        1,
        "so does a coordinator over them"
    );
}

/// One random operation of the concurrent walk.
#[derive(Clone, Debug)]
enum Op {
    Enroll(usize, usize),
    Withdraw(Uuid),
    Cancel(Uuid),
    Approve(Uuid),
    Complete(Uuid),
    Fail(Uuid),
    Switch(Uuid, Uuid),
    RaiseCapacity(usize),
    ToggleSection(usize),
    ToggleCourse(usize),
}

/// Seeded random operations, eight at a time concurrently, over courses with overlapping
/// schedules, an approval section, a section without waitlist, completion, deactivation,
/// capacity changes and switches; after every batch every invariant of docs/design.md is checked
/// against the rows and the audit trail.
async fn concurrent_random_operations_keep_every_invariant(app: TestApp) {
    use entity::types::EnrollmentStatus as S;
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let campus = campus(&app).await;
    // (course, day, start, end, capacity, more)
    let shapes = [
        (
            0,
            "MONDAY",
            "09:00",
            "10:30",
            Some(2),
            json!({ "requiresApproval": true }),
        ),
        (0, "TUESDAY", "09:00", "10:30", Some(3), json!({})),
        (1, "MONDAY", "10:00", "11:00", Some(2), json!({})),
        (1, "WEDNESDAY", "09:00", "10:00", None, json!({})),
        (2, "TUESDAY", "10:00", "11:00", Some(1), json!({})),
        (
            2,
            "THURSDAY",
            "09:00",
            "10:00",
            Some(2),
            json!({ "waitlistEnabled": false }),
        ),
    ];
    let mut courses = Vec::new();
    for _ in 0..3 {
        courses.push(course(&app, &campus, json!({ "certificateValidityMonths": 12 })).await);
    }
    let mut sections = Vec::new();
    for (c, day, start, end, capacity, more) in shapes {
        let mut fields = json!({
            "capacity": capacity,
            "schedule": [{ "weekday": day, "start": start, "end": end }],
        });
        fields
            .as_object_mut()
            .unwrap()
            .extend(more.as_object().unwrap().clone());
        sections.push((c, section(&app, &campus, courses[c], day, fields).await));
    }
    let mut students = Vec::new();
    for _ in 0..10 {
        students.push(student(&app, &campus).await);
    }
    let teacher = campus.teacher.clone();
    let mut rng = StdRng::seed_from_u64(0x0718);
    let mut active_sections = vec![true; sections.len()];
    let mut active_courses = vec![true; courses.len()];
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    for batch in 0..25 {
        let rows = enrollment_rows(&app).await;
        // What the last batch deactivated comes back in this one, racing the other operations,
        // so that most sections are open most of the time and reactivation promotes.
        let mut ops: Vec<Op> = (0..sections.len())
            .filter(|s| !active_sections[*s])
            .map(Op::ToggleSection)
            .chain(
                (0..courses.len())
                    .filter(|c| !active_courses[*c])
                    .map(Op::ToggleCourse),
            )
            .collect();
        for _ in 0..8 {
            // An enrollment in one of `statuses`, mostly, so that the changes mostly apply.
            let pick = |rng: &mut StdRng, statuses: &[S]| {
                let fitting: Vec<_> = rows
                    .iter()
                    .filter(|e| statuses.contains(&e.status))
                    .collect();
                let pool = if fitting.is_empty() || rng.random_bool(0.1) {
                    rows.iter().collect()
                } else {
                    fitting
                };
                if pool.is_empty() {
                    return None;
                }
                Some(pool[rng.random_range(0..pool.len())].clone())
            };
            let roll = rng.random_range(0..100);
            let op = match roll {
                0..35 => Some(Op::Enroll(
                    rng.random_range(0..students.len()),
                    rng.random_range(0..sections.len()),
                )),
                35..48 => pick(&mut rng, &[S::Pending, S::Registered, S::Waitlisted])
                    .map(|e| Op::Withdraw(e.id)),
                48..53 => pick(&mut rng, &[S::Pending, S::Registered, S::Waitlisted])
                    .map(|e| Op::Cancel(e.id)),
                53..63 => pick(&mut rng, &[S::Pending]).map(|e| Op::Approve(e.id)),
                63..70 => pick(&mut rng, &[S::Registered]).map(|e| Op::Complete(e.id)),
                70..74 => pick(&mut rng, &[S::Registered]).map(|e| Op::Fail(e.id)),
                74..86 => {
                    pick(&mut rng, &[S::Pending, S::Registered, S::Waitlisted]).and_then(|e| {
                        let course = sections.iter().find(|(_, id)| *id == e.section_id)?.0;
                        let others: Vec<Uuid> = sections
                            .iter()
                            .filter(|(c, id)| *c == course && *id != e.section_id)
                            .map(|(_, id)| *id)
                            .collect();
                        Some(Op::Switch(e.id, others[rng.random_range(0..others.len())]))
                    })
                }
                86..93 => Some(Op::RaiseCapacity(rng.random_range(0..sections.len()))),
                93..97 => Some(rng.random_range(0..sections.len()))
                    .filter(|s| active_sections[*s])
                    .map(Op::ToggleSection),
                _ => Some(rng.random_range(0..courses.len()))
                    .filter(|c| active_courses[*c])
                    .map(Op::ToggleCourse),
            };
            ops.extend(op);
        }
        let runs = ops.iter().map(|op| {
            let (app, teacher, students, sections, courses) =
                (&app, &teacher, &students, &sections, &courses);
            let (active_sections, active_courses) = (&active_sections, &active_courses);
            async move {
                let (mutation, token, variables) = match op {
                    Op::Enroll(s, section) => (
                        ENROLL,
                        students[*s].1.clone(),
                        json!({ "s": sections[*section].1 }),
                    ),
                    Op::Withdraw(e) => (WITHDRAW, teacher.clone(), json!({ "e": e })),
                    Op::Cancel(e) => (CANCEL, teacher.clone(), json!({ "e": e })),
                    Op::Approve(e) => (APPROVE, teacher.clone(), json!({ "e": e })),
                    Op::Complete(e) => (COMPLETE, teacher.clone(), json!({ "e": e })),
                    Op::Fail(e) => (FAIL, teacher.clone(), json!({ "e": e })),
                    Op::Switch(e, s) => (SWITCH, teacher.clone(), json!({ "e": e, "s": s })),
                    Op::RaiseCapacity(s) => {
                        let now = app.section_row(sections[*s].1).await.capacity;
                        let input = json!({ "capacity": now.map(|c| c + 1) });
                        (
                            UPDATE_SECTION,
                            teacher.clone(),
                            json!({ "id": sections[*s].1, "input": input }),
                        )
                    }
                    Op::ToggleSection(s) => {
                        let input = json!({ "isActive": !active_sections[*s] });
                        (
                            UPDATE_SECTION,
                            teacher.clone(),
                            json!({ "id": sections[*s].1, "input": input }),
                        )
                    }
                    Op::ToggleCourse(c) => {
                        let input = json!({ "isActive": !active_courses[*c] });
                        (
                            UPDATE_COURSE,
                            teacher.clone(),
                            json!({ "id": courses[*c], "input": input }),
                        )
                    }
                };
                let response = app.gql(Some(&token), mutation, variables).await;
                let kind = format!("{op:?}");
                let kind = kind.split('(').next().unwrap_or_default().to_owned();
                if response.get("errors").is_none() {
                    return format!("{kind} ok");
                }
                let code = error_code(&response);
                assert!(
                    !["INTERNAL", "CONFLICT"].contains(&code.as_str()),
                    "[{:?}] batch {batch} {op:?}: {response}",
                    app.backend
                );
                format!("{kind} {code}")
            }
        });
        for outcome in futures_util::future::join_all(runs).await {
            *seen.entry(outcome).or_default() += 1;
        }
        for (s, (_, id)) in sections.iter().enumerate() {
            active_sections[s] = app.section_row(*id).await.is_active;
        }
        for (c, id) in courses.iter().enumerate() {
            use sea_orm::EntityTrait;
            let row = entity::course::Entity::find_by_id(*id)
                .one(&app.db)
                .await
                .unwrap()
                .unwrap();
            active_courses[c] = row.is_active;
        }
        for (_, id) in &sections {
            app.assert_section_consistent(*id).await;
        }
        assert_no_overlapping_seats(&app, batch).await;
        assert_audit_trail_matches_rows(&app, batch).await;
    }
    // The walk must have reached the paths it is about, or it proved little.
    for must in [
        "Enroll ok",
        "Enroll SCHEDULE_CONFLICT",
        "Withdraw ok",
        "Approve ok",
        "Complete ok",
        "Switch ok",
        "RaiseCapacity ok",
        "ToggleSection ok",
    ] {
        assert!(
            seen.contains_key(must),
            "[{:?}] never saw {must}: {seen:?}",
            app.backend
        );
    }
    let promotions = app
        .events()
        .await
        .into_iter()
        .filter(|e| {
            e.from_status == Some(entity::types::EnrollmentStatus::Waitlisted)
                && e.actor_id.is_none()
        })
        .count();
    assert!(
        promotions > 0,
        "[{:?}] no promotion happened: {seen:?}",
        app.backend
    );
}

/// Every enrollment, oldest first.
async fn enrollment_rows(app: &TestApp) -> Vec<entity::enrollment::Model> {
    use sea_orm::{EntityTrait, QueryOrder};
    entity::enrollment::Entity::find()
        .order_by_asc(entity::enrollment::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
}

/// Invariants 2 and 7: at most one active enrollment per user and course, and no two seats of
/// one user whose meetings overlap.
async fn assert_no_overlapping_seats(app: &TestApp, batch: usize) {
    use entity::types::EnrollmentStatus as S;
    use sea_orm::EntityTrait;
    use std::collections::HashMap;
    let rows = entity::enrollment::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    let sections: HashMap<Uuid, entity::section::Model> = entity::section::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut by_user: HashMap<Uuid, Vec<&entity::enrollment::Model>> = HashMap::new();
    for row in &rows {
        by_user.entry(row.user_id).or_default().push(row);
    }
    for (user, mine) in by_user {
        let active: Vec<_> = mine.iter().filter(|e| e.status.is_active()).collect();
        let mut courses: Vec<Uuid> = active.iter().map(|e| e.course_id).collect();
        courses.sort();
        courses.dedup();
        assert_eq!(
            courses.len(),
            active.len(),
            "[{:?}] batch {batch}: {user} has two active enrollments in a course",
            app.backend
        );
        let seats: Vec<_> = mine
            .iter()
            .filter(|e| matches!(e.status, S::Pending | S::Registered))
            .collect();
        for (i, a) in seats.iter().enumerate() {
            for b in &seats[i + 1..] {
                let (x, y) = (
                    &sections[&a.section_id].schedule,
                    &sections[&b.section_id].schedule,
                );
                assert!(
                    roster::domain::schedule::first_conflict(x, y).is_none(),
                    "[{:?}] batch {batch}: {user} holds overlapping seats",
                    app.backend
                );
            }
        }
    }
}

/// Invariants 5 and 6: each enrollment's events chain from its creation to its current status,
/// in id order with times that agree; a certification exists exactly for completed enrollments.
async fn assert_audit_trail_matches_rows(app: &TestApp, batch: usize) {
    use entity::types::EnrollmentStatus as S;
    use sea_orm::{EntityTrait, QueryOrder};
    use std::collections::HashMap;
    let rows = entity::enrollment::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    let mut events: HashMap<Uuid, Vec<entity::enrollment_event::Model>> = HashMap::new();
    for event in entity::enrollment_event::Entity::find()
        .order_by_asc(entity::enrollment_event::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
    {
        events.entry(event.enrollment_id).or_default().push(event);
    }
    let certified: Vec<Uuid> = entity::certification::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.enrollment_id)
        .collect();
    for row in rows {
        let chain = &events[&row.id];
        let case = format!("[{:?}] batch {batch}: enrollment {}", app.backend, row.id);
        assert_eq!(
            chain[0].from_status, None,
            "{case}: begins with its creation"
        );
        for pair in chain.windows(2) {
            assert_eq!(
                pair[1].from_status,
                Some(pair[0].to_status),
                "{case}: events chain"
            );
            assert!(
                pair[0].at <= pair[1].at,
                "{case}: event order and time order agree"
            );
        }
        assert_eq!(
            chain.last().unwrap().to_status,
            row.status,
            "{case}: the last event is the status"
        );
        let certificates = certified.iter().filter(|e| **e == row.id).count();
        assert_eq!(
            certificates,
            usize::from(row.status == S::Completed),
            "{case}: one certification per completion"
        );
    }
}

both_backends!(
    overlapping_enrollments_fired_together_never_both_take_a_seat,
    promotion_skips_a_waiter_with_an_overlapping_seat_and_promotes_the_next,
    promotion_skips_a_waiter_whose_prerequisite_expired,
    promotion_into_an_approval_section_gives_pending,
    finished_enrollments_keep_their_seats,
    every_path_in_every_section_state,
    reactivation_promotes_into_free_seats,
    approval_of_a_seat_that_now_overlaps_fails_unless_overridden,
    cancelling_a_changed_enrollment_with_expected_status_is_refused,
    proxy_enrollment_is_for_users_of_the_course_organization,
    another_users_teams_are_for_teammates_and_staff_over_them,
    concurrent_random_operations_keep_every_invariant,
);

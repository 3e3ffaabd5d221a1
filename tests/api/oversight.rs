//! Oversight and compliance records (docs/design.md#who-may-do-what): the figures of a course
//! and of an organization, certifications due for recertification, and the audit trail as a
//! query. Who may ask is the table in `scope.rs`; this module checks what they get.

use chrono::Duration;
use entity::types::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Campus, TestApp, both_backends, error_code, parse_id};

const OVERSIGHT: &str = "query($c: UUID, $o: UUID) { oversight(courseId: $c, organizationId: $o) {
    enrollmentCount completionRate certificationsIssued
    counts { status count }
    waitBeforePromotion { promotions medianSeconds p90Seconds longestSeconds }
    proxyEnrollments { enrolledBy { id } count }
    sections { section { id name } completionRate counts { status count } } } }";
const COMPLETE: &str = "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { id } }";
const FAIL: &str = "mutation($e: UUID!) { failEnrollment(enrollmentId: $e) { id } }";
const PROXY: &str = "mutation($s: UUID!, $u: UUID!) { enroll(sectionId: $s, userId: $u) { id } }";

/// The count of `status` in a `counts` list.
fn count(counts: &Value, status: &str) -> u64 {
    counts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == status)
        .unwrap_or_else(|| panic!("{status} listed in {counts}"))["count"]
        .as_u64()
        .unwrap()
}

async fn proxy(app: &TestApp, token: &str, section: Uuid, campus: &Campus) -> Uuid {
    let (student, _) = app.student(campus).await;
    let made = app
        .ok(Some(token), PROXY, json!({ "s": section, "u": student }))
        .await;
    parse_id(&made["enroll"]["id"])
}

async fn oversight_counts_statuses_waits_certifications_and_proxies(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let coordinator = app
        .user(Role::Coordinator, Some(campus.organization.id))
        .await;
    let c = app.token(coordinator.id);
    let clock = app.state.store.clock().clone();
    let (course, [a, b]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Overseen", "certificateValidityMonths": 12 }),
            [
                json!({ "name": "A", "capacity": 1 }),
                json!({ "name": "B", "capacity": 5 }),
            ],
        )
        .await;

    // Section A: one seat, two waiters promoted in turn after 3 h and 4 h.
    let (_, first) = app.student(&campus).await;
    let (_, second) = app.student(&campus).await;
    let (_, third) = app.student(&campus).await;
    let first_seat = app.enroll(&first, a).await.unwrap();
    let second_seat = app.enroll(&second, a).await.unwrap();
    assert_eq!(second_seat.status, "WAITLISTED");
    clock.advance(Duration::hours(1));
    assert_eq!(app.enroll(&third, a).await.unwrap().status, "WAITLISTED");
    clock.advance(Duration::hours(2));
    app.withdraw(&first, first_seat.id).await.unwrap();
    clock.advance(Duration::hours(2));
    app.withdraw(&second, second_seat.id).await.unwrap();

    // Section B: proxies (one by the teacher, two by the coordinator), one completed, one failed.
    let by_teacher = proxy(&app, &t, b, &campus).await;
    let failed = proxy(&app, &c, b, &campus).await;
    proxy(&app, &c, b, &campus).await;
    app.ok(Some(&t), COMPLETE, json!({ "e": by_teacher })).await;
    app.ok(Some(&t), FAIL, json!({ "e": failed })).await;

    // Elsewhere: another course of the organization, and a course of another one.
    let (_, elsewhere) = app
        .course_with_section(&campus, "Sibling", None, "FRIDAY")
        .await;
    let (_, sibling) = app.student(&campus).await;
    app.enroll(&sibling, elsewhere).await.unwrap();
    let south = app.campus("South").await;
    let (_, far) = app
        .course_with_section(&south, "Far away", None, "FRIDAY")
        .await;
    let (_, stranger) = app.student(&south).await;
    app.enroll(&stranger, far).await.unwrap();

    let data = app.ok(Some(&t), OVERSIGHT, json!({ "c": course })).await;
    let o = &data["oversight"];
    assert_eq!(o["enrollmentCount"], 6, "{o}");
    assert_eq!(count(&o["counts"], "REGISTERED"), 2);
    assert_eq!(count(&o["counts"], "WITHDRAWN"), 2);
    assert_eq!(count(&o["counts"], "COMPLETED"), 1);
    assert_eq!(count(&o["counts"], "FAILED"), 1);
    assert_eq!(count(&o["counts"], "CANCELLED"), 0, "zeros are listed");
    assert_eq!(
        o["completionRate"], 0.25,
        "1 of 2 registered + 1 completed + 1 failed"
    );
    assert_eq!(o["certificationsIssued"], 1);
    let wait = &o["waitBeforePromotion"];
    assert_eq!(wait["promotions"], 2, "{wait}");
    // The test clock moves on with real time too: a request's own milliseconds add up.
    let about = |field: &str, expected: f64| {
        let got = wait[field].as_f64().unwrap();
        assert!(
            (got - expected).abs() < 5.0,
            "{field}: {got} for {expected}"
        );
    };
    about("medianSeconds", 12_600.0); // 3 h and 4 h
    about("p90Seconds", 14_040.0);
    about("longestSeconds", 14_400.0);
    assert_eq!(
        o["proxyEnrollments"],
        json!([
            { "enrolledBy": { "id": coordinator.id }, "count": 2 },
            { "enrolledBy": { "id": campus.teacher.id }, "count": 1 },
        ])
    );
    let sections = o["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 2);
    assert_eq!(sections[0]["section"]["name"], "A");
    assert_eq!(count(&sections[0]["counts"], "REGISTERED"), 1);
    assert_eq!(count(&sections[0]["counts"], "WITHDRAWN"), 2);
    assert_eq!(sections[0]["completionRate"], 0.0);
    assert_eq!(count(&sections[1]["counts"], "COMPLETED"), 1);
    assert_eq!(sections[1]["completionRate"], 1.0 / 3.0);

    // The organization: both of its courses, not the other organization's.
    let org = app
        .ok(Some(&c), OVERSIGHT, json!({ "o": campus.organization.id }))
        .await;
    let org = &org["oversight"];
    assert_eq!(org["enrollmentCount"], 7, "{org}");
    assert_eq!(count(&org["counts"], "REGISTERED"), 3);
    assert_eq!(org["sections"].as_array().unwrap().len(), 3);
    assert_eq!(org["waitBeforePromotion"]["promotions"], 2);

    // A course with nothing yet: zeros and nulls, not errors.
    let (empty, _) = app
        .course_with_section(&campus, "Empty", Some(3), "TUESDAY")
        .await;
    let none = app.ok(Some(&t), OVERSIGHT, json!({ "c": empty })).await;
    assert_eq!(none["oversight"]["enrollmentCount"], 0);
    assert_eq!(none["oversight"]["completionRate"], Value::Null);
    assert_eq!(
        none["oversight"]["waitBeforePromotion"],
        json!({ "promotions": 0, "medianSeconds": null, "p90Seconds": null, "longestSeconds": null })
    );

    // Asking wrongly.
    let both = app
        .gql(
            Some(&t),
            OVERSIGHT,
            json!({ "c": course, "o": campus.organization.id }),
        )
        .await;
    assert_eq!(error_code(&both), "BAD_USER_INPUT", "{both}");
    let neither = app.gql(Some(&t), OVERSIGHT, json!({})).await;
    assert_eq!(error_code(&neither), "BAD_USER_INPUT", "{neither}");
    let unknown = app
        .gql(Some(&t), OVERSIGHT, json!({ "c": Uuid::now_v7() }))
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND", "{unknown}");
    let anonymous = app.gql(None, OVERSIGHT, json!({ "c": course })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
}

const CERTIFICATIONS: &str = "query($f: CertificationFilter, $first: Int, $after: String) {
    certifications(filter: $f, first: $first, after: $after) {
        totalCount edges { cursor node { id user { id } expiresAt isValid } }
        pageInfo { hasNextPage endCursor } } }";

fn certification_holders(data: &Value) -> Vec<Uuid> {
    data["certifications"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| parse_id(&e["node"]["user"]["id"]))
        .collect()
}

async fn certifications_due_for_recertification(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let clock = app.state.store.clock().clone();
    let (yearly, [yearly_section]) = app
        .course_with_sections(
            &t,
            json!({ "name": "First aid", "certificateValidityMonths": 12 }),
            [json!({ "name": "A" })],
        )
        .await;
    let (_, [lasting_section]) = app
        .course_with_sections(
            &t,
            json!({ "name": "History", "certificateValidityMonths": 120 }),
            [json!({ "name": "A" })],
        )
        .await;
    let certify = async |section: Uuid| {
        let (id, token) = app.student(&campus).await;
        let seat = app.enroll(&token, section).await.unwrap();
        app.ok(Some(&t), COMPLETE, json!({ "e": seat.id })).await;
        (id, token)
    };
    let (early, early_token) = certify(yearly_section).await;
    clock.advance(Duration::days(100));
    let (late, _) = certify(yearly_section).await;
    let (lasting, _) = certify(lasting_section).await;
    let horizon = app.state.store.now() + Duration::days(300);

    let all = app
        .ok(Some(&t), CERTIFICATIONS, json!({ "first": 10 }))
        .await;
    assert_eq!(all["certifications"]["totalCount"], 3);
    assert_eq!(
        certification_holders(&all),
        vec![lasting, late, early],
        "newest first"
    );
    let due = app
        .ok(
            Some(&t),
            CERTIFICATIONS,
            json!({ "f": { "expiresBefore": horizon } }),
        )
        .await;
    assert_eq!(
        certification_holders(&due),
        vec![early],
        "only the one expiring within 300 days"
    );
    let yearly_only = app
        .ok(
            Some(&t),
            CERTIFICATIONS,
            json!({ "f": { "courseId": yearly } }),
        )
        .await;
    assert_eq!(certification_holders(&yearly_only), vec![late, early]);

    // Pages: one at a time, each once, in order.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app
            .ok(
                Some(&t),
                CERTIFICATIONS,
                json!({ "first": 1, "after": after }),
            )
            .await;
        seen.extend(certification_holders(&page));
        let info = &page["certifications"]["pageInfo"];
        if info["hasNextPage"] != true {
            break;
        }
        after = info["endCursor"].clone();
    }
    assert_eq!(seen, vec![lasting, late, early]);

    // After its expiry it is still listed (and due), no longer valid.
    clock.advance(Duration::days(300));
    let expired = app
        .ok(
            Some(&t),
            CERTIFICATIONS,
            json!({ "f": { "userId": early } }),
        )
        .await;
    assert_eq!(
        expired["certifications"]["edges"][0]["node"]["isValid"],
        false
    );

    // Scope: the holder sees their own, another organization's teacher nothing.
    let own = app.ok(Some(&early_token), CERTIFICATIONS, json!({})).await;
    assert_eq!(certification_holders(&own), vec![early]);
    let south = app.campus("South").await;
    let outside = app
        .ok(Some(&south.teacher_token), CERTIFICATIONS, json!({}))
        .await;
    assert_eq!(outside["certifications"]["totalCount"], 0);
    let bad = app
        .gql(Some(&t), CERTIFICATIONS, json!({ "after": "nonsense" }))
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT", "{bad}");
}

const EVENTS: &str = "query($f: EnrollmentEventFilter, $first: Int, $after: String) {
    enrollmentEvents(filter: $f, first: $first, after: $after) {
        totalCount edges { cursor node { id enrollmentId from to actor { id } at } }
        pageInfo { hasNextPage endCursor } } }";

fn event_ids(data: &Value) -> Vec<i64> {
    data["enrollmentEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

async fn the_audit_trail_filters_by_course_actor_and_time(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let clock = app.state.store.clock().clone();
    let (course, [section]) = app
        .course_with_sections(&t, json!({ "name": "Audited" }), [json!({ "name": "A" })])
        .await;
    let (other_course, [other_section]) = app
        .course_with_sections(&t, json!({ "name": "Other" }), [json!({ "name": "A" })])
        .await;
    let (_, s1) = app.student(&campus).await;
    let (_, s2) = app.student(&campus).await;
    let one = app.enroll(&s1, section).await.unwrap();
    clock.advance(Duration::hours(1));
    let cut = app.state.store.now();
    let two = app.enroll(&s2, section).await.unwrap();
    app.ok(Some(&t), COMPLETE, json!({ "e": one.id })).await;
    app.enroll(&s1, other_section).await.unwrap();

    let all = app
        .ok(Some(&t), EVENTS, json!({ "f": { "courseId": course } }))
        .await;
    assert_eq!(all["enrollmentEvents"]["totalCount"], 3, "{all}");
    let ids = event_ids(&all);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let newest = &all["enrollmentEvents"]["edges"][0]["node"];
    assert_eq!(newest["to"], "COMPLETED");
    assert_eq!(newest["from"], "REGISTERED");
    assert_eq!(parse_id(&newest["actor"]["id"]), campus.teacher.id);

    let by_teacher = app
        .ok(
            Some(&t),
            EVENTS,
            json!({ "f": { "actorId": campus.teacher.id } }),
        )
        .await;
    assert_eq!(by_teacher["enrollmentEvents"]["totalCount"], 1);
    let since = app
        .ok(
            Some(&t),
            EVENTS,
            json!({ "f": { "courseId": course, "occurredAfter": cut } }),
        )
        .await;
    assert_eq!(since["enrollmentEvents"]["totalCount"], 2, "{since}");
    let before = app
        .ok(Some(&t), EVENTS, json!({ "f": { "occurredBefore": cut } }))
        .await;
    assert_eq!(
        before["enrollmentEvents"]["edges"][0]["node"]["enrollmentId"],
        json!(one.id)
    );
    assert_eq!(before["enrollmentEvents"]["totalCount"], 1);
    let completions = app
        .ok(
            Some(&t),
            EVENTS,
            json!({ "f": { "to": ["COMPLETED"], "organizationId": campus.organization.id } }),
        )
        .await;
    assert_eq!(completions["enrollmentEvents"]["totalCount"], 1);
    let of_two = app
        .ok(Some(&t), EVENTS, json!({ "f": { "enrollmentId": two.id } }))
        .await;
    assert_eq!(of_two["enrollmentEvents"]["totalCount"], 1);
    let other = app
        .ok(
            Some(&t),
            EVENTS,
            json!({ "f": { "courseId": other_course } }),
        )
        .await;
    assert_eq!(other["enrollmentEvents"]["totalCount"], 1);

    // Pages of two: every event of the organization once, in order.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app
            .ok(Some(&t), EVENTS, json!({ "first": 2, "after": after }))
            .await;
        seen.extend(event_ids(&page));
        let info = &page["enrollmentEvents"]["pageInfo"];
        if info["hasNextPage"] != true {
            break;
        }
        after = info["endCursor"].clone();
    }
    assert_eq!(seen.len(), 4);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");

    // Scope: a student sees the changes of their own enrollments only.
    let own = app.ok(Some(&s2), EVENTS, json!({})).await;
    assert_eq!(own["enrollmentEvents"]["totalCount"], 1);
    let south = app.campus("South").await;
    let outside = app.ok(Some(&south.teacher_token), EVENTS, json!({})).await;
    assert_eq!(outside["enrollmentEvents"]["totalCount"], 0);
    let anonymous = app.gql(None, EVENTS, json!({})).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    // A cursor of another listing is no cursor here.
    let foreign = all["enrollmentEvents"]["edges"][0]["cursor"].clone();
    let listing = app
        .ok(
            Some(&t),
            "{ enrollments(first: 1) { edges { cursor } } }",
            json!({}),
        )
        .await;
    let wrong = app
        .gql(
            Some(&t),
            EVENTS,
            json!({ "after": listing["enrollments"]["edges"][0]["cursor"] }),
        )
        .await;
    assert_eq!(error_code(&wrong), "BAD_USER_INPUT", "{wrong}");
    let fine = app.ok(Some(&t), EVENTS, json!({ "after": foreign })).await;
    assert_eq!(
        event_ids(&fine),
        seen[2..],
        "after the completion: the two enrollments before it"
    );
}

/// A page of the audit trail or of certifications costs the same statements for 10 rows as for
/// 60, with the related objects selected.
async fn compliance_pages_cost_the_same_whatever_their_length(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let (_, [section]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Counted", "certificateValidityMonths": 12 }),
            [json!({ "name": "A" })],
        )
        .await;
    let coordinator = app
        .user(Role::Coordinator, Some(campus.organization.id))
        .await;
    let c = app.token(coordinator.id);
    let mut costs = Vec::new();
    let mut total = 0;
    for n in [10, 60] {
        for (_, token) in app.students(&campus, n - total).await {
            let seat = app.enroll(&token, section).await.unwrap();
            app.ok(Some(&t), COMPLETE, json!({ "e": seat.id })).await;
        }
        total = n;
        app.reset_statements();
        let events = app
            .ok(
                Some(&t),
                "{ enrollmentEvents(first: 100) { totalCount edges { node { id actor { name } } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            events["enrollmentEvents"]["edges"]
                .as_array()
                .unwrap()
                .len(),
            (2 * n).min(100)
        );
        let certifications = app
            .ok(
                Some(&t),
                "{ certifications(first: 100) { totalCount edges { node { id user { name } course { name } enrollment { id status } } } } }",
                json!({}),
            )
            .await;
        assert_eq!(certifications["certifications"]["totalCount"], n);
        let oversight = app
            .ok(
                Some(&c),
                "query($o: UUID!) { oversight(organizationId: $o) {
                    enrollmentCount proxyEnrollments { enrolledBy { name } }
                    sections { section { name } counts { count } } } }",
                json!({ "o": campus.organization.id }),
            )
            .await;
        assert_eq!(oversight["oversight"]["enrollmentCount"], n);
        costs.push(app.statement_count());
    }
    assert_eq!(
        costs[0], costs[1],
        "statements for 10 and 60 rows: {costs:?}"
    );
}

both_backends!(
    oversight_counts_statuses_waits_certifications_and_proxies,
    certifications_due_for_recertification,
    the_audit_trail_filters_by_course_actor_and_time,
    compliance_pages_cost_the_same_whatever_their_length,
);

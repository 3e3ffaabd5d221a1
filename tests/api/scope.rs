//! Authorization scope, as a table: every mutation that acts on something, and the sensitive
//! fields, by every role in and out of scope; allowed, or `FORBIDDEN` having changed nothing.

use crate::helpers::{Campus, TestApp, both_backends, error_code, parse_id};
use entity::types::Role;
use serde_json::{Value, json};
use uuid::Uuid;

/// Who asks, relative to the course (of organization A, taught by its teacher) and the
/// enrollment (of a fresh student, the owner).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Owner,
    OtherStudent,
    Teacher,
    OtherTeacher,
    Coordinator,
    OtherCoordinator,
    Admin,
    /// A student of the organization who assists the section (and the approval section).
    Assistant,
}

const EVERYONE: [Who; 8] = [
    Who::Owner,
    Who::OtherStudent,
    Who::Teacher,
    Who::OtherTeacher,
    Who::Coordinator,
    Who::OtherCoordinator,
    Who::Admin,
    Who::Assistant,
];
const STAFF_IN_SCOPE: &[Who] = &[Who::Teacher, Who::Coordinator, Who::Admin];
const SECTION_STAFF: &[Who] = &[Who::Teacher, Who::Coordinator, Who::Admin, Who::Assistant];
const OWNER_OR_STAFF: &[Who] = &[Who::Owner, Who::Teacher, Who::Coordinator, Who::Admin];

struct World {
    campus: Campus,
    course: Uuid,
    section: Uuid,
    other_section: Uuid,
    approval_section: Uuid,
    tokens: Vec<(Who, String)>,
}

impl World {
    fn token(&self, who: Who, owner: &str) -> String {
        if who == Who::Owner {
            return owner.to_owned();
        }
        self.tokens
            .iter()
            .find(|(w, _)| *w == who)
            .unwrap()
            .1
            .clone()
    }
}

async fn world(app: &TestApp) -> World {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let sections = [
        json!({ "name": "A" }),
        json!({ "name": "B" }),
        json!({ "name": "C", "requiresApproval": true }),
    ];
    let (course, [section, other_section, approval_section]) = app
        .course_with_sections(
            &t,
            json!({ "name": "Scoped", "certificateValidityMonths": 12 }),
            sections,
        )
        .await;
    let south = app.organization("South").await;
    let mut tokens = vec![(Who::Teacher, t)];
    for (who, role, org) in [
        (Who::OtherStudent, Role::Student, campus.organization.id),
        (Who::OtherTeacher, Role::Teacher, campus.organization.id),
        (Who::Coordinator, Role::Coordinator, campus.organization.id),
        (Who::OtherCoordinator, Role::Coordinator, south.id),
    ] {
        let user = app.user(role, Some(org)).await;
        tokens.push((who, app.token(user.id)));
    }
    let admin = app.user(Role::Admin, None).await;
    tokens.push((Who::Admin, app.token(admin.id)));
    let (assistant, assistant_token) = app.student(&campus).await;
    tokens.push((Who::Assistant, assistant_token));
    let assign = "mutation($s: UUID!, $a: UUID!) { updateSection(id: $s, input: { assistantId: $a }) { id } }";
    for s in [section, approval_section] {
        app.ok(
            Some(&campus.teacher_token),
            assign,
            json!({ "s": s, "a": assistant }),
        )
        .await;
    }
    World {
        campus,
        course,
        section,
        other_section,
        approval_section,
        tokens,
    }
}

/// A mutation of the table: its document, the roles allowed, and how to prepare a fresh target
/// (returning the variables and the owner's token).
struct Row {
    name: &'static str,
    document: &'static str,
    allowed: &'static [Who],
}

const ROWS: &[Row] = &[
    Row {
        name: "withdraw",
        document: "mutation($e: UUID!) { withdraw(enrollmentId: $e) { id } }",
        allowed: OWNER_OR_STAFF,
    },
    Row {
        name: "cancelEnrollment",
        document: "mutation($e: UUID!) { cancelEnrollment(enrollmentId: $e, reason: \"r\") { id } }",
        allowed: STAFF_IN_SCOPE,
    },
    Row {
        name: "approveEnrollment",
        document: "mutation($e: UUID!) { approveEnrollment(enrollmentId: $e) { id } }",
        allowed: SECTION_STAFF,
    },
    Row {
        name: "completeEnrollment",
        document: "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { id } }",
        allowed: SECTION_STAFF,
    },
    Row {
        name: "setEnrollmentNotes",
        document: "mutation($e: UUID!) { setEnrollmentNotes(enrollmentId: $e, notes: \"n\") { id } }",
        allowed: SECTION_STAFF,
    },
    Row {
        name: "failEnrollment",
        document: "mutation($e: UUID!) { failEnrollment(enrollmentId: $e) { id } }",
        allowed: STAFF_IN_SCOPE,
    },
    Row {
        name: "switchSection",
        document: "mutation($e: UUID!, $s: UUID!) { switchSection(enrollmentId: $e, toSectionId: $s) { id } }",
        allowed: OWNER_OR_STAFF,
    },
    Row {
        name: "setEnrollmentVisibility",
        document: "mutation($e: UUID!) { setEnrollmentVisibility(enrollmentId: $e, visibility: false) { id } }",
        allowed: &[Who::Owner],
    },
    Row {
        // The owner naming themself as `userId` is an ordinary enrollment.
        name: "enroll (for someone else)",
        document: "mutation($s: UUID!, $u: UUID!) { enroll(sectionId: $s, userId: $u) { id } }",
        allowed: OWNER_OR_STAFF,
    },
    Row {
        name: "enroll (over capacity)",
        document: "mutation($s: UUID!) { enroll(sectionId: $s, overrideCapacity: true) { id } }",
        allowed: STAFF_IN_SCOPE,
    },
    Row {
        name: "updateCourse",
        document: "mutation($c: UUID!) { updateCourse(id: $c, input: { description: \"changed\" }) { id } }",
        allowed: STAFF_IN_SCOPE,
    },
    Row {
        name: "createSection",
        document: "mutation($c: UUID!) { createSection(input: { courseId: $c, name: \"New\" }) { id } }",
        allowed: STAFF_IN_SCOPE,
    },
    Row {
        name: "updateSection",
        document: "mutation($s: UUID!) { updateSection(id: $s, input: { capacity: 99 }) { id } }",
        allowed: STAFF_IN_SCOPE,
    },
    Row {
        name: "removeTeamMember",
        document: "mutation($t: UUID!, $u: UUID!) { removeTeamMember(teamId: $t, userId: $u) { id } }",
        allowed: STAFF_IN_SCOPE,
    },
    Row {
        name: "updateTeam",
        document: "mutation($t: UUID!) { updateTeam(teamId: $t, passKey: \"rotated-key\") { id } }",
        allowed: STAFF_IN_SCOPE,
    },
];

/// A fresh target for `row`: `(variables, owner token)`.
async fn prepare(app: &TestApp, world: &World, row: &Row, serial: usize) -> (Value, String) {
    let (owner_id, owner) = app.student(&world.campus).await;
    let enroll_in = |section: Uuid| {
        let owner = owner.clone();
        async move { app.enroll(&owner, section).await.expect("enrolled").id }
    };
    let variables = match row.name {
        "approveEnrollment" => json!({ "e": enroll_in(world.approval_section).await }),
        "switchSection" => {
            json!({ "e": enroll_in(world.section).await, "s": world.other_section })
        }
        "enroll (for someone else)" => json!({ "s": world.section, "u": owner_id }),
        "enroll (over capacity)" => json!({ "s": world.section }),
        "updateCourse" | "createSection" => json!({ "c": world.course }),
        "updateSection" => json!({ "s": world.section }),
        "removeTeamMember" | "updateTeam" => {
            let name = json!({ "n": format!("Team {serial}") });
            let create =
                "mutation($n: String!) { createTeam(name: $n, passKey: \"team-key\") { id } }";
            let team = app
                .ok(Some(&world.campus.teacher_token), create, name.clone())
                .await;
            let team = parse_id(&team["createTeam"]["id"]);
            let join = "mutation($n: String!) { joinTeam(name: $n, passKey: \"team-key\") { id } }";
            app.ok(Some(&owner), join, name).await;
            json!({ "t": team, "u": owner_id })
        }
        _ => json!({ "e": enroll_in(world.section).await }),
    };
    (variables, owner)
}

async fn every_mutation_by_every_role_in_and_out_of_scope(app: TestApp) {
    let world = world(&app).await;
    let mut serial = 0;
    let mut checked = 0;
    for row in ROWS {
        for who in EVERYONE {
            serial += 1;
            let (variables, owner) = prepare(&app, &world, row, serial).await;
            let token = world.token(who, &owner);
            let before = app.snapshot().await;
            let response = app.gql(Some(&token), row.document, variables).await;
            if row.allowed.contains(&who) {
                assert!(
                    response.get("errors").is_none(),
                    "{} by {who:?} must be allowed: {response}",
                    row.name
                );
            } else {
                assert!(
                    response.get("errors").is_some(),
                    "{} by {who:?} must be refused: {response}",
                    row.name
                );
                assert_eq!(
                    error_code(&response),
                    "FORBIDDEN",
                    "{} by {who:?}: {response}",
                    row.name
                );
                assert_eq!(
                    app.snapshot().await,
                    before,
                    "{} by {who:?} was refused but changed something",
                    row.name
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROWS.len() * EVERYONE.len());
}

async fn sensitive_fields_by_every_role(app: TestApp) {
    let world = world(&app).await;
    let (owner_id, owner) = app.student(&world.campus).await;
    app.enroll(&owner, world.section).await.expect("enrolled");
    // Staff notes: never for the student, whoever else is not staff of the course.
    for who in EVERYONE {
        let token = world.token(who, &owner);
        // Reach the enrollment through the owner's user, as any viewer would.
        let notes = app
            .gql(
                Some(&token),
                "query($u: UUID!) { user(id: $u) { enrollments { id notes } } }",
                json!({ "u": owner_id }),
            )
            .await;
        let sees_enrollment = STAFF_IN_SCOPE.contains(&who) || who == Who::Owner;
        match (who, sees_enrollment) {
            (Who::Owner, _) => {
                assert!(notes.get("errors").is_none(), "{notes}");
                assert_eq!(
                    notes["data"]["user"]["enrollments"][0]["notes"],
                    Value::Null,
                    "the student never sees notes, and gets no error for asking"
                );
            }
            (_, true) => assert!(notes.get("errors").is_none(), "{who:?}: {notes}"),
            (_, false) => assert_eq!(
                notes["data"]["user"]["enrollments"],
                json!([]),
                "{who:?} sees no enrollment"
            ),
        }
        // A student's e-mail: the student, coordinators of their organization and admins.
        let email = app
            .ok(
                Some(&token),
                "query($u: UUID!) { user(id: $u) { email } }",
                json!({ "u": owner_id }),
            )
            .await;
        let shown = matches!(who, Who::Owner | Who::Coordinator | Who::Admin);
        assert_eq!(
            email["user"]["email"].is_string(),
            shown,
            "{who:?}: {email}"
        );
    }
}

/// The staff side's reads by every role: the scoped `enrollments` listing, a section's roster,
/// waitlist and pending approvals, and the user directory.
async fn staff_queries_by_every_role(app: TestApp) {
    let world = world(&app).await;
    let (_, owner) = app.student(&world.campus).await;
    app.enroll(&owner, world.section).await.expect("enrolled");
    for who in EVERYONE {
        let token = world.token(who, &owner);
        let listed = app
            .ok(
                Some(&token),
                "query($s: UUID!) { enrollments(filter: { sectionId: $s }) { totalCount edges { node { id } } } }",
                json!({ "s": world.section }),
            )
            .await;
        let in_scope = SECTION_STAFF.contains(&who) || who == Who::Owner;
        assert_eq!(
            listed["enrollments"]["totalCount"],
            u64::from(in_scope),
            "{who:?}: out of scope is absent, not an error: {listed}"
        );
        for field in [
            "enrollments { totalCount }",
            "waitlist { id }",
            "pendingApprovals { id }",
        ] {
            let query = format!("query($s: UUID!) {{ section(id: $s) {{ {field} }} }}");
            let response = app
                .gql(Some(&token), &query, json!({ "s": world.section }))
                .await;
            if SECTION_STAFF.contains(&who) {
                assert!(
                    response.get("errors").is_none(),
                    "{who:?} {field}: {response}"
                );
            } else {
                assert_eq!(
                    error_code(&response),
                    "FORBIDDEN",
                    "{who:?} {field}: {response}"
                );
            }
        }
        let directory = app
            .gql(Some(&token), "{ users { totalCount } }", json!({}))
            .await;
        let staff_role = matches!(
            who,
            Who::Teacher
                | Who::OtherTeacher
                | Who::Coordinator
                | Who::OtherCoordinator
                | Who::Admin
        );
        if staff_role {
            assert!(directory.get("errors").is_none(), "{who:?}: {directory}");
        } else {
            assert_eq!(error_code(&directory), "FORBIDDEN", "{who:?}: {directory}");
        }
    }
}

/// The compliance reads by every role: certifications, the audit trail, oversight of a course
/// and of an organization, and both CSV exports (asked for one course by name).
async fn compliance_queries_by_every_role(app: TestApp) {
    let world = world(&app).await;
    let (_, owner) = app.student(&world.campus).await;
    let seat = app.enroll(&owner, world.section).await.expect("enrolled");
    app.ok(
        Some(&world.campus.teacher_token),
        "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { id } }",
        json!({ "e": seat.id }),
    )
    .await;
    let address = app.serve().await;
    let organization = world.campus.organization.id;
    for who in EVERYONE {
        let token = world.token(who, &owner);
        let in_scope = SECTION_STAFF.contains(&who) || who == Who::Owner;
        let listed = app
            .ok(
                Some(&token),
                "query($c: UUID!) {
                    certifications(filter: { courseId: $c }) { totalCount }
                    enrollmentEvents(filter: { courseId: $c }) { totalCount } }",
                json!({ "c": world.course }),
            )
            .await;
        assert_eq!(
            listed["certifications"]["totalCount"],
            u64::from(in_scope),
            "{who:?}: {listed}"
        );
        assert_eq!(
            listed["enrollmentEvents"]["totalCount"],
            if in_scope { 2 } else { 0 },
            "{who:?}: enrolled and completed, or nothing: {listed}"
        );
        for (argument, id, allowed) in [
            ("courseId", world.course, STAFF_IN_SCOPE),
            (
                "organizationId",
                organization,
                &[Who::Coordinator, Who::Admin][..],
            ),
        ] {
            let query =
                format!("query($id: UUID!) {{ oversight({argument}: $id) {{ enrollmentCount }} }}");
            let response = app.gql(Some(&token), &query, json!({ "id": id })).await;
            if allowed.contains(&who) {
                assert_eq!(
                    response["data"]["oversight"]["enrollmentCount"], 1,
                    "{who:?} {argument}: {response}"
                );
            } else {
                assert_eq!(
                    error_code(&response),
                    "FORBIDDEN",
                    "{who:?} {argument}: {response}"
                );
            }
        }
        for file in ["enrollments", "certifications"] {
            let status = reqwest::Client::new()
                .get(format!(
                    "http://{address}/export/{file}.csv?courseId={}",
                    world.course
                ))
                .bearer_auth(&token)
                .send()
                .await
                .expect("an answer")
                .status()
                .as_u16();
            let expected = if SECTION_STAFF.contains(&who) {
                200
            } else {
                403
            };
            assert_eq!(status, expected, "{who:?} exporting {file}");
        }
    }
}

both_backends!(
    every_mutation_by_every_role_in_and_out_of_scope,
    sensitive_fields_by_every_role,
    staff_queries_by_every_role,
    compliance_queries_by_every_role,
);

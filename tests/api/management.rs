//! Course and section management: who may do what, and validation that names the field.

use crate::helpers::{TestApp, both_backends, error_code};
use entity::{
    section,
    types::{EnrollmentStatus, Role},
};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

const CREATE_COURSE: &str = "mutation($input: CreateCourseInput!) {
    createCourse(input: $input) { id name teacher { id } organization { id } } }";
const UPDATE_COURSE: &str = "mutation($id: UUID!, $input: UpdateCourseInput!) {
    updateCourse(id: $id, input: $input) {
      id name description code isActive certificateValidityMonths
      teacher { id } prerequisites { id }
    } }";
const CREATE_SECTION: &str = "mutation($input: CreateSectionInput!) {
    createSection(input: $input) {
      id capacity waitlistEnabled schedule { weekday start end room }
    } }";
const UPDATE_SECTION: &str = "mutation($id: UUID!, $input: UpdateSectionInput!) {
    updateSection(id: $id, input: $input) {
      id capacity registeredCount waitlistCount seatsAvailable
    } }";

fn field(response: &Value) -> &str {
    response["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_default()
}

async fn who_may_create_a_course(app: TestApp) {
    let home = app.campus("Home").await;
    let away = app.organization("Away").await;
    let other_teacher = app.user(Role::Teacher, Some(home.organization.id)).await;
    let coordinator = app
        .user(Role::Coordinator, Some(home.organization.id))
        .await;
    let foreign_coordinator = app.user(Role::Coordinator, Some(away.id)).await;
    let admin = app.user(Role::Admin, None).await;
    let student = app.user(Role::Student, Some(home.organization.id)).await;
    let course = |teacher: Option<uuid::Uuid>, org: Option<uuid::Uuid>| {
        let input = json!({ "name": "Biology", "teacherId": teacher, "organizationId": org });
        json!({ "input": input })
    };

    let own = app
        .gql(Some(&home.teacher_token), CREATE_COURSE, course(None, None))
        .await;
    assert_eq!(
        own["data"]["createCourse"]["teacher"]["id"],
        home.teacher.id.to_string()
    );
    assert_eq!(
        own["data"]["createCourse"]["organization"]["id"],
        home.organization.id.to_string()
    );

    let for_colleague = app
        .gql(
            Some(&home.teacher_token),
            CREATE_COURSE,
            course(Some(other_teacher.id), None),
        )
        .await;
    assert_eq!(error_code(&for_colleague), "FORBIDDEN");
    let as_student = app
        .gql(
            Some(&app.token(student.id)),
            CREATE_COURSE,
            course(None, None),
        )
        .await;
    assert_eq!(error_code(&as_student), "FORBIDDEN");
    let anonymous = app.gql(None, CREATE_COURSE, course(None, None)).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");

    let by_coordinator = app
        .gql(
            Some(&app.token(coordinator.id)),
            CREATE_COURSE,
            course(Some(home.teacher.id), None),
        )
        .await;
    assert!(by_coordinator.get("errors").is_none(), "{by_coordinator}");
    let foreign = app
        .gql(
            Some(&app.token(foreign_coordinator.id)),
            CREATE_COURSE,
            course(Some(home.teacher.id), Some(home.organization.id)),
        )
        .await;
    assert_eq!(error_code(&foreign), "FORBIDDEN");
    let by_admin = app
        .gql(
            Some(&app.token(admin.id)),
            CREATE_COURSE,
            course(Some(home.teacher.id), Some(home.organization.id)),
        )
        .await;
    assert!(by_admin.get("errors").is_none(), "{by_admin}");

    // A coordinator must still name a real teacher of the organization.
    let not_teacher = app
        .gql(
            Some(&app.token(coordinator.id)),
            CREATE_COURSE,
            course(Some(student.id), None),
        )
        .await;
    assert_eq!(error_code(&not_teacher), "BAD_USER_INPUT");
    assert_eq!(field(&not_teacher), "teacherId");

    let total = app.ok(None, "{ courses { totalCount } }", json!({})).await;
    assert_eq!(
        total["courses"]["totalCount"], 0,
        "no sections yet, so nothing discoverable"
    );
}

async fn course_input_is_validated_field_by_field(app: TestApp) {
    let campus = app.campus("Org").await;
    let token = Some(campus.teacher_token.as_str());
    for (input, expected) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(256) }), "name"),
        (
            json!({ "name": "ok", "description": "d".repeat(5001) }),
            "description",
        ),
        (json!({ "name": "ok", "code": "CS 101" }), "code"),
        (json!({ "name": "ok", "code": "C".repeat(51) }), "code"),
        (
            json!({ "name": "ok", "certificateValidityMonths": 0 }),
            "certificateValidityMonths",
        ),
        (
            json!({ "name": "ok", "prerequisiteIds": [uuid::Uuid::new_v4()] }),
            "prerequisiteIds",
        ),
    ] {
        let response = app
            .gql(token, CREATE_COURSE, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{input}");
        assert_eq!(field(&response), expected, "{input}");
    }
    let unchanged = app.ok(token, "{ courses { totalCount } }", json!({})).await;
    assert_eq!(unchanged["courses"]["totalCount"], 0);
    let longest =
        json!({ "name": "x".repeat(255), "code": "AB-12", "description": "d".repeat(5000) });
    let ok = app
        .gql(token, CREATE_COURSE, json!({ "input": longest }))
        .await;
    assert!(ok.get("errors").is_none(), "{ok}");
}

async fn update_course_changes_only_what_is_given(app: TestApp) {
    let campus = app.campus("Org").await;
    let token = Some(campus.teacher_token.as_str());
    let intro = app
        .create_course(&campus.teacher_token, json!({ "name": "Intro" }))
        .await;
    let course = app
        .create_course(
            &campus.teacher_token,
            json!({
                "name": "Algebra", "description": "Old", "code": "M-1",
                "certificateValidityMonths": 12,
            }),
        )
        .await;

    let renamed = app
        .ok(
            token,
            UPDATE_COURSE,
            json!({ "id": course, "input": { "name": "Algebra II" } }),
        )
        .await;
    assert_eq!(renamed["updateCourse"]["description"], "Old");
    assert_eq!(renamed["updateCourse"]["code"], "M-1");
    let clear = json!({
        "description": null, "certificateValidityMonths": null, "prerequisiteIds": [intro],
    });
    let cleared = app
        .ok(
            token,
            UPDATE_COURSE,
            json!({ "id": course, "input": clear }),
        )
        .await;
    assert_eq!(cleared["updateCourse"]["name"], "Algebra II");
    assert_eq!(cleared["updateCourse"]["description"], Value::Null);
    assert_eq!(
        cleared["updateCourse"]["certificateValidityMonths"],
        Value::Null
    );
    assert_eq!(
        cleared["updateCourse"]["prerequisites"][0]["id"],
        intro.to_string()
    );

    // Intro cannot require Algebra II, which requires Intro.
    let cycle = app
        .gql(
            token,
            UPDATE_COURSE,
            json!({ "id": intro, "input": { "prerequisiteIds": [course] } }),
        )
        .await;
    assert_eq!(error_code(&cycle), "BAD_USER_INPUT");
    assert_eq!(field(&cycle), "prerequisiteIds");
    let itself = app
        .gql(
            token,
            UPDATE_COURSE,
            json!({ "id": intro, "input": { "prerequisiteIds": [intro] } }),
        )
        .await;
    assert_eq!(error_code(&itself), "BAD_USER_INPUT");

    // A teacher of the same organization who does not teach it may not touch it, nor reassign.
    let colleague = app.user(Role::Teacher, Some(campus.organization.id)).await;
    let stranger = app
        .gql(
            Some(&app.token(colleague.id)),
            UPDATE_COURSE,
            json!({ "id": course, "input": { "name": "Mine" } }),
        )
        .await;
    assert_eq!(error_code(&stranger), "FORBIDDEN");
    let reassign = app
        .gql(
            token,
            UPDATE_COURSE,
            json!({ "id": course, "input": { "teacherId": colleague.id } }),
        )
        .await;
    assert_eq!(error_code(&reassign), "FORBIDDEN");
    let coordinator = app
        .user(Role::Coordinator, Some(campus.organization.id))
        .await;
    let reassigned = app
        .ok(
            Some(&app.token(coordinator.id)),
            UPDATE_COURSE,
            json!({ "id": course, "input": { "teacherId": colleague.id } }),
        )
        .await;
    assert_eq!(
        reassigned["updateCourse"]["teacher"]["id"],
        colleague.id.to_string()
    );

    let missing = app
        .gql(
            token,
            UPDATE_COURSE,
            json!({ "id": uuid::Uuid::new_v4(), "input": {} }),
        )
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
}

async fn section_input_is_validated_and_defaults_apply(app: TestApp) {
    let campus = app.campus("Org").await;
    let token = Some(campus.teacher_token.as_str());
    let course = app
        .create_course(&campus.teacher_token, json!({ "name": "Art" }))
        .await;
    let meeting =
        |start: &str, end: &str| json!([{ "weekday": "MONDAY", "start": start, "end": end }]);
    for (input, expected) in [
        (
            json!({ "courseId": course, "name": "A", "capacity": 0 }),
            "capacity",
        ),
        (
            json!({ "courseId": course, "name": "A", "capacity": -1 }),
            "capacity",
        ),
        (
            json!({ "courseId": course, "name": "", "capacity": 5 }),
            "name",
        ),
        (
            json!({ "courseId": course, "name": "x".repeat(101) }),
            "name",
        ),
        (
            json!({ "courseId": course, "name": "A", "schedule": meeting("10:00", "09:00") }),
            "schedule[0].end",
        ),
        (
            json!({ "courseId": course, "name": "A", "schedule": meeting("10:00", "10:00") }),
            "schedule[0].end",
        ),
        (
            json!({ "courseId": course, "name": "A", "schedule": meeting("25:00", "26:00") }),
            "schedule[0].start",
        ),
    ] {
        let response = app
            .gql(token, CREATE_SECTION, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{input}");
        assert_eq!(field(&response), expected, "{input}");
    }
    let funday = json!({ "weekday": "FUNDAY", "start": "09:00", "end": "10:00" });
    let input = json!({ "courseId": course, "name": "A", "schedule": [funday] });
    let bad_weekday = app
        .gql(token, CREATE_SECTION, json!({ "input": input }))
        .await;
    assert!(bad_weekday["errors"].is_array(), "{bad_weekday}");

    let tuesday =
        json!({ "weekday": "TUESDAY", "start": "09:00", "end": "10:15", "room": " Lab 3 " });
    let input = json!({ "courseId": course, "name": "A", "schedule": [tuesday] });
    let created = app
        .ok(token, CREATE_SECTION, json!({ "input": input }))
        .await;
    assert_eq!(
        created["createSection"]["capacity"],
        Value::Null,
        "null capacity is unlimited"
    );
    assert_eq!(created["createSection"]["waitlistEnabled"], true);
    assert_eq!(created["createSection"]["schedule"][0]["room"], "Lab 3");

    let student = app.user(Role::Student, Some(campus.organization.id)).await;
    let forbidden = app
        .gql(
            Some(&app.token(student.id)),
            CREATE_SECTION,
            json!({ "input": { "courseId": course, "name": "B" } }),
        )
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    let sections = section::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(sections.len(), 1, "failed calls created nothing");
}

async fn raising_capacity_promotes_the_earliest_waitlisted(app: TestApp) {
    let campus = app.campus("Org").await;
    let token = Some(campus.teacher_token.as_str());
    let (_, section) = app
        .course_with_section(&campus, "Pottery", Some(1), "FRIDAY")
        .await;
    let students = app.students(&campus, 4).await;
    app.seat(students[0].0, section, EnrollmentStatus::Registered)
        .await;
    for (student, _) in &students[1..] {
        app.seat(*student, section, EnrollmentStatus::Waitlisted)
            .await;
    }
    let raised = app
        .ok(
            token,
            UPDATE_SECTION,
            json!({ "id": section, "input": { "capacity": 3 } }),
        )
        .await;
    assert_eq!(raised["updateSection"]["registeredCount"], 3);
    assert_eq!(raised["updateSection"]["waitlistCount"], 1);
    assert_eq!(raised["updateSection"]["seatsAvailable"], 0);

    let mine = "{ myEnrollments { status waitlistPosition history { from to actor { id } } } }";
    for ((_, token), status) in [
        (&students[1], "REGISTERED"),
        (&students[2], "REGISTERED"),
        (&students[3], "WAITLISTED"),
    ] {
        let data = app.ok(Some(token), mine, json!({})).await;
        assert_eq!(data["myEnrollments"][0]["status"], status);
    }
    let promoted = app.ok(Some(&students[1].1), mine, json!({})).await;
    let history = promoted["myEnrollments"][0]["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["from"], "WAITLISTED");
    assert!(
        history.last().unwrap()["actor"].is_null(),
        "a promotion is the system's action, not the teacher's"
    );
    let last = app.ok(Some(&students[3].1), mine, json!({})).await;
    assert_eq!(last["myEnrollments"][0]["waitlistPosition"], 1);

    // Unlimited capacity admits everyone still waiting.
    let open = app
        .ok(
            token,
            UPDATE_SECTION,
            json!({ "id": section, "input": { "capacity": null } }),
        )
        .await;
    assert_eq!(open["updateSection"]["registeredCount"], 4);
    assert_eq!(open["updateSection"]["waitlistCount"], 0);
    let zero = app
        .gql(
            token,
            UPDATE_SECTION,
            json!({ "id": section, "input": { "capacity": 0 } }),
        )
        .await;
    assert_eq!(error_code(&zero), "BAD_USER_INPUT");
    let row = app.section_row(section).await;
    assert_eq!(row.capacity, None, "the rejected update changed nothing");
}

both_backends!(
    who_may_create_a_course,
    course_input_is_validated_field_by_field,
    update_course_changes_only_what_is_given,
    section_input_is_validated_and_defaults_apply,
    raising_capacity_promotes_the_earliest_waitlisted
);

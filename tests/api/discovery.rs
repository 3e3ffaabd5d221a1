//! Course discovery: the `courses` connection, its filters and cursors, `course`, `section`,
//! and the number of SQL statements one discovery request costs.

use crate::helpers::{Backend, TestApp, both_backends, error_code, now, parse_id};
use entity::types::{EnrollmentStatus, Role};
use serde_json::{Value, json};
use uuid::Uuid;

const PAGE: &str = "query($first: Int, $after: String, $filter: CourseFilter) {
  courses(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id name } }
    pageInfo { hasNextPage endCursor }
  }
}";

fn names(data: &Value) -> Vec<String> {
    data["courses"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["name"].as_str().expect("name").to_owned())
        .collect()
}

/// One page of `courses`, as the tests read it.
struct Page {
    ids: Vec<Uuid>,
    names: Vec<String>,
    has_next_page: bool,
    end_cursor: Option<String>,
}

async fn page(app: &TestApp, first: i64, after: Option<&str>, filter: Value) -> Page {
    let variables = json!({ "first": first, "after": after, "filter": filter });
    let data = app.ok(None, PAGE, variables).await;
    let edges = data["courses"]["edges"].as_array().expect("edges");
    let info = &data["courses"]["pageInfo"];
    Page {
        ids: edges.iter().map(|e| parse_id(&e["node"]["id"])).collect(),
        names: names(&data),
        has_next_page: info["hasNextPage"].as_bool().expect("hasNextPage"),
        end_cursor: info["endCursor"].as_str().map(str::to_owned),
    }
}

/// The names of the courses that `filter` finds, newest first.
async fn found(app: &TestApp, filter: Value) -> Vec<String> {
    page(app, 20, None, filter).await.names
}

async fn pages_are_newest_first_and_cursors_survive_inserts(app: TestApp) {
    let campus = app.campus("Org").await;
    for i in 1..=7 {
        app.course_with_section(&campus, &format!("Course {i}"), Some(10), "MONDAY")
            .await;
    }
    let first = page(&app, 3, None, Value::Null).await;
    assert_eq!(first.names, ["Course 7", "Course 6", "Course 5"]);
    assert!(first.has_next_page);

    // Newer courses appear between the two page requests: they belong before page one and
    // must not shift what page two shows.
    app.course_with_section(&campus, "Course 8", Some(10), "MONDAY")
        .await;
    app.course_with_section(&campus, "Course 9", Some(10), "MONDAY")
        .await;

    let second = page(&app, 3, first.end_cursor.as_deref(), Value::Null).await;
    assert_eq!(second.names, ["Course 4", "Course 3", "Course 2"]);
    let third = page(&app, 3, second.end_cursor.as_deref(), Value::Null).await;
    assert_eq!(third.names, ["Course 1"]);
    assert!(!third.has_next_page);

    let fresh = page(&app, 2, None, Value::Null).await;
    assert_eq!(fresh.names, ["Course 9", "Course 8"]);
}

async fn rows_created_at_the_same_instant_page_by_id_without_loss(app: TestApp) {
    use entity::course;
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
    let campus = app.campus("Org").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (course_id, _) = app
            .course_with_section(&campus, &format!("Tie {i}"), None, "FRIDAY")
            .await;
        ids.push(course_id);
    }
    let instant = now();
    for id in &ids {
        let mut model = course::Entity::find_by_id(*id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
            .into_active_model();
        model.created_at = Set(instant);
        model.update(&app.db).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = page(&app, 2, after.as_deref(), Value::Null).await;
        seen.extend(page.ids);
        if !page.has_next_page {
            break;
        }
        after = page.end_cursor;
    }
    let mut expected = ids.clone();
    expected.sort();
    expected.reverse();
    assert_eq!(
        seen, expected,
        "ties ordered by id, descending, each exactly once"
    );
}

async fn only_active_courses_with_an_active_section_are_discoverable(app: TestApp) {
    let campus = app.campus("Org").await;
    let token = campus.teacher_token.clone();
    app.course_with_section(&campus, "Visible", Some(5), "MONDAY")
        .await;
    app.create_course(&token, json!({ "name": "No sections" }))
        .await;
    let (inactive_course, _) = app
        .course_with_section(&campus, "Inactive course", Some(5), "MONDAY")
        .await;
    app.ok(
        Some(&token),
        "mutation($id: UUID!) { updateCourse(id: $id, input: { isActive: false }) { id } }",
        json!({ "id": inactive_course }),
    )
    .await;
    let (_, inactive_section) = app
        .course_with_section(&campus, "Inactive section", Some(5), "MONDAY")
        .await;
    app.ok(
        Some(&token),
        "mutation($id: UUID!) { updateSection(id: $id, input: { isActive: false }) { id } }",
        json!({ "id": inactive_section }),
    )
    .await;

    let data = app
        .ok(
            None,
            "{ courses { totalCount edges { node { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(names(&data), ["Visible"]);
    assert_eq!(data["courses"]["totalCount"], 1);

    // The inactive course is hidden from strangers but visible to its teacher.
    let query = "query($id: UUID!) { course(id: $id) { name isActive } }";
    let anonymous = app.ok(None, query, json!({ "id": inactive_course })).await;
    assert_eq!(anonymous["course"], Value::Null);
    let teacher = app
        .ok(Some(&token), query, json!({ "id": inactive_course }))
        .await;
    assert_eq!(teacher["course"]["isActive"], false);
}

async fn filters_search_teacher_open_seats_and_weekday(app: TestApp) {
    let campus = app.campus("Org").await;
    let other = app.user(Role::Teacher, Some(campus.organization.id)).await;
    let other_token = app.token(other.id);
    let section = |capacity: Option<i32>, weekday: &str| {
        let meeting = json!({ "weekday": weekday, "start": "09:00", "end": "10:00" });
        json!({ "name": "A", "capacity": capacity, "schedule": [meeting] })
    };
    let algebra = json!({
        "name": "Linear Algebra", "code": "MATH-220", "description": "Vectors and matrices",
    });
    let algebra = app.create_course(&campus.teacher_token, algebra).await;
    let algebra_section = app
        .create_section(&campus.teacher_token, algebra, section(Some(1), "MONDAY"))
        .await;
    let poetry = json!({
        "name": "Poetry", "code": "ENG-100", "description": "Sonnets, 100% fun_stuff",
    });
    let poetry = app.create_course(&other_token, poetry).await;
    app.create_section(&other_token, poetry, section(None, "TUESDAY"))
        .await;

    let search = |text: &str| json!({ "search": text });
    assert_eq!(found(&app, search("ALGEBRA")).await, ["Linear Algebra"]);
    assert_eq!(found(&app, search("math-2")).await, ["Linear Algebra"]);
    assert_eq!(found(&app, search("SONNETS")).await, ["Poetry"]);
    // LIKE wildcards in the search text are taken literally.
    assert_eq!(found(&app, search("100%")).await, ["Poetry"]);
    assert!(found(&app, search("1_0")).await.is_empty());
    assert!(found(&app, search("fun%stuff")).await.is_empty());

    assert_eq!(
        found(&app, json!({ "teacherId": other.id })).await,
        ["Poetry"]
    );
    assert_eq!(
        found(&app, json!({ "weekday": "MONDAY" })).await,
        ["Linear Algebra"]
    );
    assert!(found(&app, json!({ "weekday": "SUNDAY" })).await.is_empty());

    // Fill the only seat of Algebra: it drops out of hasOpenSeats: true.
    let student = app.user(Role::Student, Some(campus.organization.id)).await;
    app.seat(student.id, algebra_section, EnrollmentStatus::Registered)
        .await;
    assert_eq!(
        found(&app, json!({ "hasOpenSeats": true })).await,
        ["Poetry"]
    );
    assert_eq!(
        found(&app, json!({ "hasOpenSeats": false })).await,
        ["Linear Algebra"]
    );
    let combined = app
        .ok(
            None,
            "query($f: CourseFilter) { courses(filter: $f) { totalCount } }",
            json!({ "f": { "search": "o", "hasOpenSeats": true, "weekday": "TUESDAY" } }),
        )
        .await;
    assert_eq!(combined["courses"]["totalCount"], 1);
}

async fn first_is_capped_and_bad_cursors_are_rejected(app: TestApp) {
    let over = app
        .gql(None, "{ courses(first: 101) { totalCount } }", json!({}))
        .await;
    assert_eq!(error_code(&over), "BAD_USER_INPUT");
    assert_eq!(over["errors"][0]["extensions"]["field"], "first");
    let negative = app
        .gql(None, "{ courses(first: -1) { totalCount } }", json!({}))
        .await;
    assert_eq!(error_code(&negative), "BAD_USER_INPUT");
    let at_cap = app
        .gql(None, "{ courses(first: 100) { totalCount } }", json!({}))
        .await;
    assert!(at_cap.get("errors").is_none(), "{at_cap}");
    let cursor = app
        .gql(
            None,
            "{ courses(after: \"bm9wZQ\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&cursor), "BAD_USER_INPUT");
    assert_eq!(cursor["errors"][0]["extensions"]["field"], "after");
}

async fn counts_and_the_enrolled_badge_come_from_the_rows(app: TestApp) {
    let campus = app.campus("Org").await;
    let (course, section) = app
        .course_with_section(&campus, "Chemistry", Some(2), "WEDNESDAY")
        .await;
    let (_, unlimited) = app
        .course_with_section(&campus, "Open", None, "WEDNESDAY")
        .await;
    let students = app.students(&campus, 4).await;
    for ((student, _), section, status) in [
        (&students[0], section, EnrollmentStatus::Registered),
        (&students[1], section, EnrollmentStatus::Pending),
        (&students[2], section, EnrollmentStatus::Waitlisted),
        (&students[3], unlimited, EnrollmentStatus::Registered),
    ] {
        app.seat(*student, section, status).await;
    }

    let query = "query($id: UUID!) { section(id: $id) {
        capacity registeredCount pendingCount waitlistCount seatsAvailable isFull } }";
    let data = app.ok(None, query, json!({ "id": section })).await;
    assert_eq!(
        data["section"],
        json!({
            "capacity": 2, "registeredCount": 1, "pendingCount": 1,
            "waitlistCount": 1, "seatsAvailable": 0, "isFull": true,
        })
    );
    let data = app.ok(None, query, json!({ "id": unlimited })).await;
    assert_eq!(data["section"]["seatsAvailable"], Value::Null);
    assert_eq!(data["section"]["isFull"], false);

    let badge =
        "query($id: UUID!) { course(id: $id) { viewerEnrollment { status waitlistPosition } } }";
    let waiting = app
        .ok(Some(&students[2].1), badge, json!({ "id": course }))
        .await;
    assert_eq!(
        waiting["course"]["viewerEnrollment"],
        json!({ "status": "WAITLISTED", "waitlistPosition": 1 })
    );
    let stranger = app
        .ok(Some(&students[3].1), badge, json!({ "id": course }))
        .await;
    assert_eq!(stranger["course"]["viewerEnrollment"], Value::Null);
    let anonymous = app.ok(None, badge, json!({ "id": course })).await;
    assert_eq!(anonymous["course"]["viewerEnrollment"], Value::Null);
}

async fn discovery_costs_the_same_few_statements_for_5_and_50_courses(app: TestApp) {
    let campus = app.campus("Org").await;
    let student = app.user(Role::Student, Some(campus.organization.id)).await;
    let token = app.token(student.id);
    for i in 0..55 {
        let course = app
            .create_course(&campus.teacher_token, json!({ "name": format!("C{i}") }))
            .await;
        let mut first_section = None;
        for s in 0..2 {
            let meeting = json!({ "weekday": "THURSDAY", "start": "10:00", "end": "11:00" });
            let section = json!({ "name": format!("S{s}"), "capacity": 30, "schedule": [meeting] });
            let id = app
                .create_section(&campus.teacher_token, course, section)
                .await;
            first_section.get_or_insert(id);
        }
        if i % 3 == 0 {
            app.seat(
                student.id,
                first_section.unwrap(),
                EnrollmentStatus::Registered,
            )
            .await;
        }
    }
    let query = "query($first: Int) { courses(first: $first) { edges { node {
        id name code description createdAt
        teacher { id name email picture }
        sections { id name capacity registeredCount waitlistCount seatsAvailable isFull
                   schedule { weekday start end room } }
        viewerEnrollment { id status }
    } } } }";
    let mut counts = Vec::new();
    for first in [5, 50] {
        app.reset_statements();
        let data = app.ok(Some(&token), query, json!({ "first": first })).await;
        counts.push(app.statement_count());
        let edges = data["courses"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), first);
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["sections"].as_array().unwrap().len() == 2)
        );
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["teacher"]["email"].is_string())
        );
        assert!(
            edges
                .iter()
                .any(|e| e["node"]["viewerEnrollment"]["status"] == "REGISTERED")
        );
    }
    assert_eq!(
        counts[0], counts[1],
        "statement count grows with the page: {counts:?}"
    );
    assert!(counts[0] <= 5, "too many statements: {counts:?}");

    // Anonymous: no viewer lookup and no enrollment lookup.
    app.reset_statements();
    app.ok(None, query, json!({ "first": 50 })).await;
    assert!(
        app.statement_count() <= 3,
        "anonymous discovery took {}",
        app.statement_count()
    );
}

/// Every model decoded by position (`entity::positional`, used by discovery and the loaders)
/// reads the same rows as the derived decoding by column name, nulls and JSON included.
async fn rows_decoded_by_position_equal_rows_decoded_by_name(app: TestApp) {
    use entity::{
        course, enrollment, enrollment_event, organization, positional::Positional, section,
        team_member, user,
    };
    use roster::store::rows;
    use sea_orm::{EntityTrait, QueryOrder};

    async fn same<E>(app: &TestApp, what: &str, order: E::Column)
    where
        E: EntityTrait<Model: Positional + Send + Sync + PartialEq + std::fmt::Debug>,
    {
        let by_name = E::find()
            .order_by_asc(order)
            .all(&app.db)
            .await
            .expect(what);
        let by_position = rows(E::find().order_by_asc(order), &app.db)
            .await
            .expect(what);
        assert!(!by_name.is_empty(), "[{:?}] no {what} rows", app.backend);
        assert_eq!(by_position, by_name, "[{:?}] {what}", app.backend);
    }

    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Decoded", Some(1), "MONDAY")
        .await;
    let (_, first) = app.student(&campus).await;
    let (_, second) = app.student(&campus).await;
    let seat = app.enroll(&first, section).await.expect("a seat");
    app.enroll(&second, section)
        .await
        .expect("a waitlist place");
    app.withdraw(&first, seat.id).await.expect("withdrawn");
    let name = format!("Team {}", Uuid::new_v4());
    let create = "mutation($n: String!) { createTeam(name: $n, passKey: \"secret-key\") { id } }";
    app.ok(Some(&campus.teacher_token), create, json!({ "n": name }))
        .await;
    let join = "mutation($n: String!) { joinTeam(name: $n, passKey: \"secret-key\") { id } }";
    app.ok(Some(&second), join, json!({ "n": name })).await;

    same::<course::Entity>(&app, "course", course::Column::Id).await;
    same::<section::Entity>(&app, "section", section::Column::Id).await;
    same::<user::Entity>(&app, "user", user::Column::Id).await;
    same::<organization::Entity>(&app, "organization", organization::Column::Id).await;
    same::<enrollment::Entity>(&app, "enrollment", enrollment::Column::Id).await;
    same::<enrollment_event::Entity>(&app, "enrollment_event", enrollment_event::Column::Id).await;
    same::<team_member::Entity>(&app, "team_member", team_member::Column::UserId).await;
}

/// A course's sections are listed by name compared by its bytes, then id, on both backends
/// whatever the database's collation: to visitors (the loader) and to staff (`includeInactive`).
async fn sections_are_listed_by_name_bytes_alike_on_both_backends(app: TestApp) {
    let campus = app.campus("Org").await;
    let token = &campus.teacher_token;
    let course = app
        .create_course(token, json!({ "name": "Ordered", "code": "O-1" }))
        .await;
    let meeting = json!({ "weekday": "MONDAY", "start": "09:00", "end": "10:00" });
    for name in ["b", "Lab 2", "B", "a", "Lab 10"] {
        let section = json!({ "name": name, "capacity": 5, "schedule": [meeting.clone()] });
        app.create_section(token, course, section).await;
    }
    let query = "query($id: UUID!, $all: Boolean!) {
        course(id: $id) { sections(includeInactive: $all) { name } } }";
    let expected = ["B", "Lab 10", "Lab 2", "a", "b"];
    for (viewer, all) in [(None, false), (Some(token.as_str()), true)] {
        let data = app
            .ok(viewer, query, json!({ "id": course, "all": all }))
            .await;
        let names: Vec<&str> = data["course"]["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .map(|s| s["name"].as_str().expect("name"))
            .collect();
        assert_eq!(
            names, expected,
            "[{:?}] includeInactive: {all}",
            app.backend
        );
    }
}

/// The discovery page loads its courses' relations in one batch each (teacher, active
/// sections, the viewer's enrollment): every course of the page answers exactly as `course(id)`
/// answers for it alone, for courses of different teachers, with different sections, an
/// inactive one among them, and with the viewer seated in one course and waiting in another,
/// on whole pages and on pages of two after cursors under each filter (the row read to know of
/// a next page lends its badge to none); `includeInactive` beside the plain `sections` on the
/// same page still lists every section.
async fn each_course_of_a_page_answers_as_it_does_alone(app: TestApp) {
    let campus = app.campus("Org").await;
    let org = campus.organization.id;
    let student = app.user(Role::Student, Some(org)).await;
    let admin = app.user(Role::Admin, None).await;
    let mut inactive = None;
    let mut courses = Vec::new();
    let mut teachers = Vec::new();
    for t in 0..3 {
        let teacher = app.user(Role::Teacher, Some(org)).await;
        teachers.push(teacher.id);
        let token = app.token(teacher.id);
        for c in 0..2 {
            let course = app
                .create_course(&token, json!({ "name": format!("T{t} C{c}") }))
                .await;
            let mut sections = Vec::new();
            for s in 0..=(t + c) {
                let meeting = json!({ "weekday": "FRIDAY", "start": format!("{:02}:00", 8 + s), "end": format!("{:02}:30", 8 + s) });
                let section = json!({ "name": format!("T{t} C{c} S{s}"), "capacity": 3, "schedule": [meeting] });
                sections.push(app.create_section(&token, course, section).await);
            }
            if t == 1 && c == 1 {
                let deactivate = "mutation($id: UUID!) { updateSection(id: $id, input: { isActive: false }) { id } }";
                app.ok(Some(&token), deactivate, json!({ "id": sections[0] }))
                    .await;
                inactive = Some(sections[0]);
            }
            courses.push((course, sections));
        }
    }
    app.seat(student.id, courses[0].1[0], EnrollmentStatus::Registered)
        .await;
    app.seat(student.id, courses[3].1[1], EnrollmentStatus::Waitlisted)
        .await;
    let inactive = inactive.expect("an inactive section");

    let fields = "id name teacher { id name email } viewerEnrollment { id status }
        sections { id name registeredCount waitlistCount schedule { weekday start end } }";
    let page = format!("{{ courses(first: 20) {{ edges {{ node {{ {fields} }} }} }} }}");
    let alone = format!("query($id: UUID!) {{ course(id: $id) {{ {fields} }} }}");
    for (viewer, is_student) in [(student.id, true), (admin.id, false)] {
        let token = app.token(viewer);
        let data = app.ok(Some(&token), &page, json!({})).await;
        let edges = data["courses"]["edges"].as_array().expect("edges");
        assert_eq!(edges.len(), courses.len(), "[{:?}] {data}", app.backend);
        for edge in edges {
            let node = &edge["node"];
            let id = parse_id(&node["id"]);
            let one = app.ok(Some(&token), &alone, json!({ "id": id })).await;
            assert_eq!(node, &one["course"], "[{:?}] course {id}", app.backend);
            let (_, sections) = courses.iter().find(|(c, _)| *c == id).expect("ours");
            let listed: Vec<Uuid> = node["sections"]
                .as_array()
                .expect("sections")
                .iter()
                .map(|s| parse_id(&s["id"]))
                .collect();
            let active: Vec<Uuid> = sections
                .iter()
                .copied()
                .filter(|s| *s != inactive)
                .collect();
            assert_eq!(listed, active, "[{:?}] course {id}", app.backend);
        }
        let enrolled: Vec<(Uuid, &str)> = edges
            .iter()
            .filter(|e| !e["node"]["viewerEnrollment"].is_null())
            .map(|e| {
                let status = e["node"]["viewerEnrollment"]["status"]
                    .as_str()
                    .expect("status");
                (parse_id(&e["node"]["id"]), status)
            })
            .collect();
        if is_student {
            let mut expected = vec![(courses[0].0, "REGISTERED"), (courses[3].0, "WAITLISTED")];
            expected.sort();
            let mut enrolled = enrolled;
            enrolled.sort();
            assert_eq!(enrolled, expected, "[{:?}]", app.backend);
        } else {
            assert!(enrolled.is_empty(), "[{:?}] {enrolled:?}", app.backend);
        }
    }

    // Pages of two, after cursors, and every filter: the badge is the course's own, and the
    // course read only to know of a next page lends it to none on this page.
    let token = app.token(student.id);
    let paged = "query($after: String, $filter: CourseFilter) {
        courses(first: 2, after: $after, filter: $filter) {
            edges { node { id viewerEnrollment { id status } } }
            pageInfo { hasNextPage endCursor } } }";
    let badge = "query($id: UUID!) { course(id: $id) { viewerEnrollment { id status } } }";
    let filters = [
        json!({}),
        json!({ "search": "c0" }),
        json!({ "weekday": "FRIDAY", "hasOpenSeats": true }),
        json!({ "teacherId": teachers[1] }),
    ];
    for filter in filters {
        let mut after: Option<String> = None;
        let mut seen = 0;
        loop {
            let data = app
                .ok(
                    Some(&token),
                    paged,
                    json!({ "after": after, "filter": filter }),
                )
                .await;
            for edge in data["courses"]["edges"].as_array().expect("edges") {
                let id = parse_id(&edge["node"]["id"]);
                let one = app.ok(Some(&token), badge, json!({ "id": id })).await;
                assert_eq!(
                    edge["node"]["viewerEnrollment"], one["course"]["viewerEnrollment"],
                    "[{:?}] course {id} with {filter}",
                    app.backend
                );
                seen += 1;
            }
            let info = &data["courses"]["pageInfo"];
            if info["hasNextPage"] != true {
                break;
            }
            after = info["endCursor"].as_str().map(str::to_owned);
        }
        assert!(seen > 0, "[{:?}] nothing with {filter}", app.backend);
    }

    let both = "{ courses(first: 20) { edges { node { id sections { id } all: sections(includeInactive: true) { id } } } } }";
    let data = app.ok(Some(&app.token(admin.id)), both, json!({})).await;
    let with_inactive = data["courses"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|e| {
            e["node"]["all"].as_array().expect("all").len()
                > e["node"]["sections"].as_array().expect("sections").len()
        })
        .expect("the course with an inactive section lists it under includeInactive");
    assert!(
        with_inactive["node"]["all"]
            .as_array()
            .expect("all")
            .iter()
            .any(|s| parse_id(&s["id"]) == inactive),
        "[{:?}] {with_inactive}",
        app.backend
    );
}

both_backends!(
    sections_are_listed_by_name_bytes_alike_on_both_backends,
    rows_decoded_by_position_equal_rows_decoded_by_name,
    pages_are_newest_first_and_cursors_survive_inserts,
    rows_created_at_the_same_instant_page_by_id_without_loss,
    only_active_courses_with_an_active_section_are_discoverable,
    filters_search_teacher_open_seats_and_weekday,
    first_is_capped_and_bad_cursors_are_rejected,
    counts_and_the_enrolled_badge_come_from_the_rows,
    discovery_costs_the_same_few_statements_for_5_and_50_courses,
    each_course_of_a_page_answers_as_it_does_alone
);

#[test]
fn backend_enum_is_used() {
    assert_ne!(Backend::Sqlite, Backend::Postgres);
}

/// Roster's PostgreSQL sessions price a random page as a cached one, so the planner reads a
/// page's sections through the `(course_id, is_active)` index instead of scanning them all, and
/// plan each prepared statement once instead of at every execution; on every connection of the
/// pool, since each is opened with the options.
#[tokio::test]
async fn postgres_sessions_plan_for_a_database_in_memory() {
    use sea_orm::{ConnectionTrait, Statement};
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let connections: Vec<_> = (0..4)
        .map(|_| {
            let db = app.db.clone();
            tokio::spawn(async move {
                let row = db
                    .query_one_raw(Statement::from_string(
                        db.get_database_backend(),
                        "SELECT current_setting('random_page_cost') AS cost, \
                         current_setting('plan_cache_mode') AS plans, pg_sleep(0.05)::text",
                    ))
                    .await
                    .expect("query")
                    .expect("a row");
                (
                    row.try_get::<String>("", "cost").expect("cost"),
                    row.try_get::<String>("", "plans").expect("plans"),
                )
            })
        })
        .collect();
    for connection in connections {
        let (cost, plans) = connection.await.expect("task");
        assert_eq!(cost, "1.1");
        assert_eq!(plans, "force_generic_plan");
    }
}

/// A pooled connection left mid-exchange comes back clean (the request timeout drops a
/// statement's future while the database runs it). On a pool of one connection: a statement abandoned while the database runs it, then a
/// transaction dropped with its write uncommitted; the next statements get their own answers,
/// and the write is gone.
async fn a_connection_left_mid_statement_serves_the_next_one_cleanly(app: TestApp) {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
    let db = roster::store::db::connect(&roster::config::DbConfig {
        database_url: app.database_url.clone(),
        db_max_connections: Some(1),
        db_acquire_timeout: None,
    })
    .await
    .expect("a pool of one");
    let backend = db.get_database_backend();
    let slow = match app.backend {
        Backend::Postgres => "SELECT 7 AS n FROM pg_sleep(0.4)",
        Backend::Sqlite => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) \
             SELECT 7 AS n FROM c WHERE x = 3000000"
        }
    };
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        db.query_one_raw(Statement::from_string(backend, slow)),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "[{:?}] the slow statement finished within 50 ms",
        app.backend
    );
    let answer = |n: i64| {
        let db = db.clone();
        async move {
            let row = db
                .query_one_raw(Statement::from_string(
                    backend,
                    format!("SELECT CAST({n} AS BIGINT) AS n"),
                ))
                .await
                .expect("the next statement")
                .expect("a row");
            row.try_get::<i64>("", "n").expect("n")
        }
    };
    assert_eq!(
        answer(42).await,
        42,
        "[{:?}] after the abandoned statement",
        app.backend
    );

    let organization = Uuid::now_v7();
    {
        let tx = db.begin().await.expect("begin");
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            match app.backend {
                Backend::Postgres => {
                    "INSERT INTO organizations (id, name, created_at) VALUES ($1, 'Dropped', $2)"
                }
                Backend::Sqlite => {
                    "INSERT INTO organizations (id, name, created_at) VALUES (?, 'Dropped', ?)"
                }
            },
            [organization.into(), now().into()],
        ))
        .await
        .expect("insert");
    }
    assert_eq!(
        answer(43).await,
        43,
        "[{:?}] after the dropped transaction",
        app.backend
    );
    let left = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id FROM organizations WHERE name = 'Dropped'",
        ))
        .await
        .expect("read");
    assert!(
        left.is_empty(),
        "[{:?}] the dropped write was kept",
        app.backend
    );
}

both_backends!(a_connection_left_mid_statement_serves_the_next_one_cleanly);

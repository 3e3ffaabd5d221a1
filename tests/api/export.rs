//! `GET /export/enrollments.csv` and `GET /export/certifications.csv`: the staff listings as
//! RFC 4180 CSV, with their filters and scope, streamed page by page; refused without a token
//! (401), for those who staff nothing or name what they do not staff (403), and for a parameter
//! that does not parse (400).

use entity::{types::EnrollmentStatus, user};
use sea_orm::{ActiveModelTrait, Set};

use crate::helpers::{TestApp, both_backends};

/// The enrollment export as `token`'s holder: status and body.
async fn export(app: &TestApp, token: Option<&str>, query: &str) -> (u16, String) {
    export_file(app, "enrollments", token, query).await
}

/// The export `file` as `token`'s holder: status and body.
async fn export_file(app: &TestApp, file: &str, token: Option<&str>, query: &str) -> (u16, String) {
    let address = app.serve().await;
    let mut request =
        reqwest::Client::new().get(format!("http://{address}/export/{file}.csv{query}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// The CSV's records, header first, parsed by a CSV reader.
fn records(body: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes())
        .records()
        .map(|r| r.expect("a CSV record").iter().map(str::to_owned).collect())
        .collect()
}

async fn the_export_parses_back_with_awkward_names_and_keeps_its_scope(app: TestApp) {
    let campus = app.campus("North").await;
    let (course, section) = app
        .course_with_section(&campus, "Welding, advanced", Some(10), "MONDAY")
        .await;
    let awkward = "Ng, \"Ada\"\nÉlodie Ø";
    let (student, token) = app.student(&campus).await;
    let mut row: user::ActiveModel = app.user_row(student).await.into();
    row.name = Set(awkward.to_owned());
    row.update(&app.db).await.expect("renamed");
    let seat = app.enroll(&token, section).await.expect("enrolled");
    let complete = "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { id } }";
    app.ok(
        Some(&campus.teacher_token),
        complete,
        serde_json::json!({ "e": seat.id }),
    )
    .await;
    let (_, other) = app.student(&campus).await;
    app.enroll(&other, section).await.expect("enrolled");

    let (status, body) = export(&app, Some(&campus.teacher_token), "").await;
    assert_eq!(status, 200, "{body}");
    let rows = records(&body);
    assert_eq!(rows[0][0], "person");
    assert_eq!(rows[0].len(), 13);
    assert_eq!(rows.len(), 3, "a header and two enrollments: {body}");
    let ada = rows
        .iter()
        .find(|r| r[0] == awkward)
        .expect("the awkward name, intact");
    assert_eq!(ada[2], "Welding, advanced");
    assert_eq!(ada[4], "COMPLETED");
    assert_eq!(ada[8], campus.teacher.name, "confirmed by");

    let (_, completed) = export(&app, Some(&campus.teacher_token), "?status=COMPLETED").await;
    assert_eq!(records(&completed).len(), 2, "the status filter applies");
    let stranger = app.campus("South").await;
    let (status, outside) = export(&app, Some(&stranger.teacher_token), "").await;
    assert_eq!(
        status, 403,
        "a teacher of nothing has nothing to report: {outside}"
    );
    let strangers_course = app
        .create_course(
            &stranger.teacher_token,
            serde_json::json!({ "name": "Theirs" }),
        )
        .await;
    let _ = strangers_course;
    let (status, outside) = export(&app, Some(&stranger.teacher_token), "").await;
    assert_eq!(status, 200);
    assert_eq!(
        records(&outside).len(),
        1,
        "out of scope is absent: {outside}"
    );
    let named = format!("?courseId={course}");
    let (status, _) = export(&app, Some(&stranger.teacher_token), &named).await;
    assert_eq!(status, 403, "naming a course one does not staff is refused");
    let (status, _) = export(
        &app,
        Some(&stranger.teacher_token),
        &format!("?sectionId={section}"),
    )
    .await;
    assert_eq!(status, 403);
    let own_org = format!("?organizationId={}", campus.organization.id);
    assert_eq!(
        export(&app, Some(&stranger.teacher_token), &own_org)
            .await
            .0,
        403
    );
    assert_eq!(
        export(&app, Some(&campus.teacher_token), &own_org).await.0,
        200
    );
}

async fn the_certification_export_parses_back_and_says_what_is_valid(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let (course, [section]) = app
        .course_with_sections(
            &t,
            serde_json::json!({ "name": "CPR, \"refresher\"", "certificateValidityMonths": 1 }),
            [serde_json::json!({ "name": "Évening\nGroup" })],
        )
        .await;
    let complete = "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { id } }";
    let mut people = Vec::new();
    for _ in 0..3 {
        let (id, token) = app.student(&campus).await;
        let seat = app.enroll(&token, section).await.expect("enrolled");
        app.ok(Some(&t), complete, serde_json::json!({ "e": seat.id }))
            .await;
        people.push(app.user_row(id).await);
    }
    let (status, body) = export_file(&app, "certifications", Some(&t), "").await;
    assert_eq!(status, 200, "{body}");
    let rows = records(&body);
    assert_eq!(
        rows[0],
        [
            "person",
            "email",
            "course",
            "section",
            "issued_at",
            "expires_at",
            "valid",
            "completed_at",
            "confirmed_by",
        ]
    );
    assert_eq!(rows.len(), 4, "{body}");
    // The teacher may not see students' e-mails: the column is empty for them, as in the API;
    // a coordinator of their organization sees them.
    let coordinator = app
        .user(
            entity::types::Role::Coordinator,
            Some(campus.organization.id),
        )
        .await;
    let (_, theirs) =
        export_file(&app, "certifications", Some(&app.token(coordinator.id)), "").await;
    let seen = records(&theirs);
    for row in &rows[1..] {
        assert!(people.iter().any(|p| p.name == row[0]), "{row:?}");
        assert_eq!(row[1], "", "no student e-mail for the teacher");
        let person = people.iter().find(|p| p.name == row[0]).unwrap();
        assert!(
            seen.iter()
                .any(|r| r[0] == person.name && r[1] == person.email),
            "the coordinator sees {}",
            person.email
        );
        assert_eq!(row[2], "CPR, \"refresher\"");
        assert_eq!(row[3], "Évening\nGroup");
        assert!(!row[5].is_empty(), "an expiry");
        assert_eq!(row[6], "true");
        assert_eq!(row[8], campus.teacher.name);
    }
    app.state.store.clock().advance(chrono::Duration::days(40));
    let (_, later) = export_file(
        &app,
        "certifications",
        Some(&t),
        &format!("?courseId={course}"),
    )
    .await;
    assert!(
        records(&later)[1..].iter().all(|r| r[6] == "false"),
        "{later}"
    );
    let horizon = (app.state.store.now() - chrono::Duration::days(60)).to_rfc3339();
    let query = format!("?expiresBefore={}", horizon.replace('+', "%2B"));
    let (status, none_due) = export_file(&app, "certifications", Some(&t), &query).await;
    assert_eq!(status, 200, "{none_due}");
    assert_eq!(records(&none_due).len(), 1, "none expired 60 days ago");
    let stranger = app.campus("South").await;
    let (status, _) = export_file(
        &app,
        "certifications",
        Some(&stranger.teacher_token),
        &format!("?courseId={course}"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = export_file(&app, "certifications", Some(&t), "?expiresBefore=soon").await;
    assert_eq!(status, 400);
}

async fn the_export_refuses_what_it_must(app: TestApp) {
    let campus = app.campus("North").await;
    let (_, student) = app.student(&campus).await;
    assert_eq!(export(&app, None, "").await.0, 401);
    assert_eq!(export(&app, Some("not-a-token"), "").await.0, 401);
    assert_eq!(export(&app, Some(&student), "").await.0, 403);
    let teacher = Some(campus.teacher_token.as_str());
    assert_eq!(export(&app, teacher, "?status=NOPE").await.0, 400);
    assert_eq!(export(&app, teacher, "?courseId=not-a-uuid").await.0, 400);
    assert_eq!(export(&app, teacher, "?colour=blue").await.0, 400);
}

async fn the_export_streams_every_page(app: TestApp) {
    let campus = app.campus("North").await;
    let (_, section) = app
        .course_with_section(&campus, "Crowded", None, "MONDAY")
        .await;
    let students = app.students(&campus, 1005).await;
    for (id, _) in &students {
        app.seat(*id, section, EnrollmentStatus::Registered).await;
    }
    // A coordinator, who sees the students' e-mails: they tell the rows apart.
    let coordinator = app
        .user(
            entity::types::Role::Coordinator,
            Some(campus.organization.id),
        )
        .await;
    let (status, body) = export(&app, Some(&app.token(coordinator.id)), "").await;
    assert_eq!(status, 200);
    let rows = records(&body);
    assert_eq!(rows.len(), 1006, "a header and every row, across pages");
    let mut people: Vec<&String> = rows[1..].iter().map(|r| &r[1]).collect();
    people.sort();
    people.dedup();
    assert_eq!(people.len(), 1005, "each enrollment once");
}

/// Browsers ask for gzip or br: the export must arrive whole through the compression layer,
/// byte for byte what an uncompressed request gets.
async fn the_export_arrives_whole_when_compressed(app: TestApp) {
    use std::io::Read;
    let campus = app.campus("North").await;
    let (_, section) = app
        .course_with_section(&campus, "Pressed", None, "MONDAY")
        .await;
    for (id, _) in app.students(&campus, 30).await {
        app.seat(id, section, EnrollmentStatus::Registered).await;
    }
    let (status, plain) = export(&app, Some(&campus.teacher_token), "").await;
    assert_eq!(status, 200);
    assert_eq!(records(&plain).len(), 31);
    let address = app.serve().await;
    for encoding in ["gzip", "br"] {
        let response = reqwest::Client::new()
            .get(format!("http://{address}/export/enrollments.csv"))
            .bearer_auth(&campus.teacher_token)
            .header("accept-encoding", encoding)
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-encoding"],
            encoding,
            "compressed"
        );
        let bytes = response.bytes().await.expect("the whole body");
        let mut body = String::new();
        match encoding {
            "gzip" => flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut body)
                .expect("gzip"),
            _ => brotli::Decompressor::new(&bytes[..], 4096)
                .read_to_string(&mut body)
                .expect("br"),
        };
        assert_eq!(body, plain, "[{encoding}] the same rows");
    }
}

/// A cell a spreadsheet would run (`=`, `+`, `-`, `@`, tab, carriage return first) is written
/// with a leading single quote, and lines end with CRLF (RFC 4180).
async fn formula_cells_are_neutralised_and_lines_end_with_crlf(app: TestApp) {
    let campus = app.campus("North").await;
    let (_, section) = app
        .course_with_section(&campus, "Sheets", Some(10), "MONDAY")
        .await;
    let (student, token) = app.student(&campus).await;
    let mut row: user::ActiveModel = app.user_row(student).await.into();
    row.name = Set("@SUM(1+1)".to_owned());
    row.update(&app.db).await.expect("renamed");
    let seat = app.enroll(&token, section).await.expect("enrolled");
    let mut enrollment: entity::enrollment::ActiveModel = app.enrollment_row(seat.id).await.into();
    enrollment.reason = Set(Some("=HYPERLINK(\"http://evil.example\",\"x\")".to_owned()));
    enrollment.update(&app.db).await.expect("reason");
    let (_, other) = app.student(&campus).await;
    app.enroll(&other, section).await.expect("enrolled");

    let (status, body) = export(&app, Some(&campus.teacher_token), "").await;
    assert_eq!(status, 200);
    assert!(body.ends_with("\r\n"), "CRLF: {body:?}");
    assert_eq!(
        body.matches("\r\n").count(),
        body.matches('\n').count(),
        "every line ends with CRLF"
    );
    let rows = records(&body);
    let row = rows
        .iter()
        .find(|r| r[0].contains("SUM"))
        .expect("the student's row");
    assert_eq!(row[0], "'@SUM(1+1)");
    assert_eq!(row[10], "'=HYPERLINK(\"http://evil.example\",\"x\")");
    assert!(
        rows.iter().skip(1).all(|r| !r[5].starts_with('\'')),
        "ordinary cells are left alone"
    );
}

both_backends!(
    the_export_arrives_whole_when_compressed,
    formula_cells_are_neutralised_and_lines_end_with_crlf,
    the_export_parses_back_with_awkward_names_and_keeps_its_scope,
    the_export_refuses_what_it_must,
    the_export_streams_every_page,
    the_certification_export_parses_back_and_says_what_is_valid,
);

//! Bad text is the client's mistake, never `INTERNAL` (docs/design.md#errors): a NUL or another
//! control character in any string input (written in the document or sent as a variable, in a
//! JSON key or value) is `BAD_USER_INPUT` naming where, and changes nothing; a name needs a
//! visible character; completion evidence has a size limit.

use serde_json::{Value, json};

use crate::helpers::{TestApp, both_backends, error_code};

async fn control_characters_are_bad_input_wherever_they_are(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let (course, section) = app
        .course_with_section(&campus, "Plain", Some(5), "MONDAY")
        .await;
    let (_, student) = app.student(&campus).await;
    let seat = app.enroll(&student, section).await.unwrap();
    let nul = "a\u{0}b";
    let bell = "ring\u{7}";
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            &t,
            "mutation($input: CreateCourseInput!) { createCourse(input: $input) { id } }",
            json!({ "input": { "name": nul } }),
            "input.name",
        ),
        (
            &t,
            "mutation { createCourse(input: { name: \"x\\u0000y\" }) { id } }",
            json!({}),
            "input.name",
        ),
        (
            &t,
            "mutation($c: UUID!, $d: String) { updateCourse(id: $c, input: { description: $d }) { id } }",
            json!({ "c": course, "d": bell }),
            "d",
        ),
        (
            &t,
            "mutation($c: UUID!) { createSection(input: { courseId: $c, name: \"S\",
                schedule: [{ weekday: MONDAY, start: \"09:00\", end: \"10:00\", room: \"R\\u0000\" }] }) { id } }",
            json!({ "c": course }),
            "input.schedule[0].room",
        ),
        (
            &student,
            "mutation($e: UUID!, $r: String) { withdraw(enrollmentId: $e, reason: $r) { id } }",
            json!({ "e": seat.id, "r": nul }),
            "r",
        ),
        (
            &t,
            "query($s: String) { courses(filter: { search: $s }) { totalCount } }",
            json!({ "s": nul }),
            "s",
        ),
        (
            &t,
            "{ enrollments(filter: { search: \"\\u0000\" }) { totalCount } }",
            json!({}),
            "filter.search",
        ),
        (
            &t,
            "query($f: UserFilter) { users(filter: $f) { totalCount } }",
            json!({ "f": { "search": nul } }),
            "f.search",
        ),
        (
            &student,
            "mutation($n: String!) { createTeam(name: $n, passKey: \"team-key\") { id } }",
            json!({ "n": nul }),
            "n",
        ),
        (
            &student,
            "mutation($k: String!) { joinTeam(name: \"any\", passKey: $k) { id } }",
            json!({ "k": nul }),
            "k",
        ),
        (
            &t,
            "mutation($e: UUID!, $v: JSON) { completeEnrollment(enrollmentId: $e, evidence: $v) { id } }",
            json!({ "e": seat.id, "v": { "signed\u{0}by": "me" } }),
            "v (a key)",
        ),
        (
            &t,
            "mutation($e: UUID!, $v: JSON) { completeEnrollment(enrollmentId: $e, evidence: $v) { id } }",
            json!({ "e": seat.id, "v": { "notes": ["fine", nul] } }),
            "v.notes[1]",
        ),
        (
            &t,
            "mutation($e: UUID!) { setEnrollmentNotes(enrollmentId: $e, notes: \"bad\\u0001\") { id } }",
            json!({ "e": seat.id }),
            "notes",
        ),
    ];
    for (token, document, variables, field) in cases {
        let before = app.snapshot().await;
        let response = app.gql(Some(token), document, variables).await;
        assert_eq!(
            error_code(&response),
            "BAD_USER_INPUT",
            "{document}: {response}"
        );
        assert_eq!(
            response["errors"][0]["extensions"]["field"], field,
            "{document}: {response}"
        );
        assert_eq!(app.snapshot().await, before, "{document} changed something");
    }
    // Tabs and line breaks are text.
    let notes = "line one\n\tline two\r\n";
    let kept = app
        .ok(
            Some(&t),
            "mutation($e: UUID!, $n: String) { setEnrollmentNotes(enrollmentId: $e, notes: $n) { notes } }",
            json!({ "e": seat.id, "n": notes }),
        )
        .await;
    assert_eq!(kept["setEnrollmentNotes"]["notes"], notes.trim_end());

    // The export's search is text too.
    let address = app.serve().await;
    let status = reqwest::Client::new()
        .get(format!(
            "http://{address}/export/enrollments.csv?search=a%00b"
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 400);
}

async fn a_name_needs_a_visible_character(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let (course, _) = app
        .course_with_section(&campus, "Visible", None, "MONDAY")
        .await;
    for blank in ["\u{200B}", " \u{FEFF} ", "\u{2060}\u{200D}", "\u{3164}"] {
        let before = app.snapshot().await;
        for (token, document, variables) in [
            (
                &t,
                "mutation($n: String!) { createCourse(input: { name: $n }) { id } }",
                json!({ "n": blank }),
            ),
            (
                &t,
                "mutation($c: UUID!, $n: String!) { createSection(input: { courseId: $c, name: $n }) { id } }",
                json!({ "c": course, "n": blank }),
            ),
            (
                &t,
                "mutation($n: String!) { createTeam(name: $n, passKey: \"team-key\") { id } }",
                json!({ "n": blank }),
            ),
        ] {
            let response = app.gql(Some(token), document, variables).await;
            assert_eq!(
                error_code(&response),
                "BAD_USER_INPUT",
                "{blank:?}: {response}"
            );
            assert_eq!(response["errors"][0]["extensions"]["field"], "name");
        }
        assert_eq!(app.snapshot().await, before);
    }
    // A name with an invisible character beside visible ones is a name.
    let joined = app
        .ok(
            Some(&t),
            "mutation { createCourse(input: { name: \"Zero\\u200Bwidth\" }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(joined["createCourse"]["name"], "Zero\u{200B}width");
}

async fn completion_evidence_has_a_size_limit(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let (_, section) = app
        .course_with_section(&campus, "Evidence", None, "MONDAY")
        .await;
    let (_, student) = app.student(&campus).await;
    let seat = app.enroll(&student, section).await.unwrap();
    let complete = "mutation($e: [UUID!]!, $v: JSON) { completeEnrollments(enrollmentIds: $e, evidence: $v) { error { code } } }";
    let single = "mutation($e: UUID!, $v: JSON) { completeEnrollment(enrollmentId: $e, evidence: $v) { status } }";
    let big = json!({ "scan": "x".repeat(20_000) });
    let before = app.snapshot().await;
    let response = app
        .gql(Some(&t), single, json!({ "e": seat.id, "v": big }))
        .await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT", "{response}");
    assert_eq!(response["errors"][0]["extensions"]["field"], "evidence");
    let response = app
        .gql(Some(&t), complete, json!({ "e": [seat.id], "v": big }))
        .await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT", "{response}");
    assert_eq!(app.snapshot().await, before);
    let fits = json!({ "scan": "x".repeat(10_000) });
    let done = app
        .ok(Some(&t), single, json!({ "e": seat.id, "v": fits }))
        .await;
    assert_eq!(done["completeEnrollment"]["status"], "COMPLETED");
}

both_backends!(
    control_characters_are_bad_input_wherever_they_are,
    a_name_needs_a_visible_character,
    completion_evidence_has_a_size_limit,
);

//! Calendar feeds (docs/design.md#time), on both databases: a secret URL per user, revocable,
//! serving RFC 5545 that an independent parser expands to exactly the dated meetings the API
//! lists, across a daylight-saving change and a holiday; `ETag` revalidation; 404 for anything
//! but a live token.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use entity::types::Role;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, both_backends, parse_id};

const PYTHON: &str = "/usr/bin/python3";
const CHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/calendar/check_ics.py");
const RESET: &str = "mutation { resetCalendarUrl }";
const MINE: &str = "{ me { calendarUrl } }";

both_backends!(
    a_feed_expands_to_the_meetings_the_api_lists,
    a_feed_url_is_secret_revocable_and_revalidated,
);

/// A term in New York across the November daylight-saving change with a holiday, and a
/// course of `teacher` with two sections in it: `(term, [sections])`.
async fn fall_sections(app: &TestApp, organization: Uuid, teacher: &str) -> [Uuid; 2] {
    let coordinator = app.user(Role::Coordinator, Some(organization)).await;
    let token = app.token(coordinator.id);
    let term = app
        .ok(
            Some(&token),
            "mutation($input: CreateTermInput!) { createTerm(input: $input) { id } }",
            json!({ "input": {
                "name": "Fall 2026", "code": "FA26", "timeZone": "America/New_York",
                "startsOn": "2026-09-01", "endsOn": "2026-12-15", "holidays": ["2026-10-12"],
            } }),
        )
        .await;
    let term = parse_id(&term["createTerm"]["id"]);
    let course = app
        .create_course(
            teacher,
            json!({ "name": "Linear Algebra, part 1", "code": "MATH-201" }),
        )
        .await;
    let lecture = app
        .create_section(
            teacher,
            course,
            json!({ "name": "Lecture; main", "capacity": 10, "termId": term, "schedule": [
                { "weekday": "MONDAY", "start": "09:00", "end": "10:30", "room": "Hall 1" },
                { "weekday": "WEDNESDAY", "start": "09:00", "end": "10:30", "room": "Hall 1" },
            ] }),
        )
        .await;
    let lab = app
        .create_section(
            teacher,
            course,
            json!({ "name": "Lab", "capacity": 10, "termId": term,
                    "startsOn": "2026-10-20", "endsOn": "2026-11-20",
                    "schedule": [{ "weekday": "THURSDAY", "start": "14:00", "end": "16:00" }] }),
        )
        .await;
    [lecture, lab]
}

/// `GET url` with an optional `If-None-Match`.
async fn fetch(url: &str, etag: Option<&str>) -> (StatusCode, Option<String>, String, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let response = request.send().await.expect("the feed answers");
    let status = response.status();
    let etag = response
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        etag,
        kind,
        response.text().await.unwrap_or_default(),
    )
}

/// The feed's occurrences as the independent parser expands them: `(uid, start, end)`.
fn expand(ics: &str) -> BTreeSet<(String, DateTime<Utc>, DateTime<Utc>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.ics");
    std::fs::write(&path, ics).unwrap();
    let output = std::process::Command::new(PYTHON)
        .arg(CHECK)
        .arg(&path)
        .args(["2026-01-01", "2028-01-01"])
        .output()
        .unwrap_or_else(|e| panic!("{PYTHON} cannot run ({e}): install python3"));
    assert!(
        output.status.success(),
        "the independent expansion failed (install the Debian packages python3-icalendar and \
         python3-recurring-ical-events): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            let time = |k: &str| row[k].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
            (
                row["uid"].as_str().unwrap().to_owned(),
                time("start"),
                time("end"),
            )
        })
        .collect()
}

/// The dated meetings the API lists for `section`: `(start, end)`.
async fn listed(app: &TestApp, section: Uuid) -> BTreeSet<(DateTime<Utc>, DateTime<Utc>)> {
    let data = app
        .ok(
            None,
            "query($id: UUID!) { section(id: $id) { occurrences { startsAt endsAt } } }",
            json!({ "id": section }),
        )
        .await;
    data["section"]["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let time = |k: &str| o[k].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
            (time("startsAt"), time("endsAt"))
        })
        .collect()
}

async fn a_feed_expands_to_the_meetings_the_api_lists(app: TestApp) {
    let campus = app.campus("Feed U").await;
    let [lecture, lab] = fall_sections(&app, campus.organization.id, &campus.teacher_token).await;
    let (_, student) = app.student(&campus).await;
    app.enroll(&student, lecture).await.expect("a seat");
    let address = app.serve().await;
    let url = app.ok(Some(&student), RESET, json!({})).await["resetCalendarUrl"]
        .as_str()
        .unwrap()
        .replace("127.0.0.1:8080", &address.to_string());
    let (status, _, kind, ics) = fetch(&url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/calendar"), "{kind}");
    for needle in [
        "BEGIN:VCALENDAR\r\n",
        "BEGIN:VTIMEZONE\r\n",
        "TZID:America/New_York\r\n",
        "RRULE:FREQ=WEEKLY;UNTIL=",
        "EXDATE;TZID=America/New_York:20261012T090000\r\n",
        "LOCATION:Hall 1\r\n",
        "Lecture\\; main",
    ] {
        assert!(ics.contains(needle), "the feed lacks {needle:?}:\n{ics}");
    }
    // The independent expansion is exactly the API's list of dated meetings, both meetings
    // of the lecture, across the daylight-saving change, without the holiday.
    let expanded = expand(&ics);
    let mut times: BTreeSet<_> = expanded.iter().map(|(_, s, e)| (*s, *e)).collect();
    assert_eq!(times, listed(&app, lecture).await, "{ics}");
    assert_eq!(expanded.len(), times.len());
    assert!(
        expanded
            .iter()
            .all(|(uid, _, _)| uid.starts_with(&lecture.to_string())),
        "{expanded:?}"
    );

    // The teacher's feed has every section they teach, the part-of-term lab included.
    let teacher_url =
        app.ok(Some(&campus.teacher_token), RESET, json!({})).await["resetCalendarUrl"]
            .as_str()
            .unwrap()
            .replace("127.0.0.1:8080", &address.to_string());
    let (_, _, _, teacher_ics) = fetch(&teacher_url, None).await;
    times = expand(&teacher_ics)
        .iter()
        .map(|(_, s, e)| (*s, *e))
        .collect();
    let mut both = listed(&app, lecture).await;
    both.extend(listed(&app, lab).await);
    assert_eq!(times, both);
}

async fn a_feed_url_is_secret_revocable_and_revalidated(app: TestApp) {
    let campus = app.campus("Secret U").await;
    let [lecture, lab] = fall_sections(&app, campus.organization.id, &campus.teacher_token).await;
    let (student_id, student) = app.student(&campus).await;
    let address = app.serve().await;
    let local = |url: &Value| {
        url.as_str()
            .unwrap()
            .replace("127.0.0.1:8080", &address.to_string())
    };
    // None until made; made, shown again to its owner alone.
    assert!(app.ok(Some(&student), MINE, json!({})).await["me"]["calendarUrl"].is_null());
    let first = app.ok(Some(&student), RESET, json!({})).await["resetCalendarUrl"].clone();
    assert_eq!(
        app.ok(Some(&student), MINE, json!({})).await["me"]["calendarUrl"],
        first
    );
    let others = app
        .ok(
            Some(&campus.teacher_token),
            "query($id: UUID!) { user(id: $id) { calendarUrl } }",
            json!({ "id": student_id }),
        )
        .await;
    assert!(others["user"]["calendarUrl"].is_null(), "{others}");
    assert!(first.as_str().unwrap().ends_with(".ics"));

    // An empty calendar is still a calendar; a poll with its ETag costs a 304.
    let url = local(&first);
    let (status, etag, _, body) = fetch(&url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("BEGIN:VEVENT"));
    let etag = etag.expect("an ETag");
    let (status, same, _, body) = fetch(&url, Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(same.as_deref(), Some(etag.as_str()));
    assert!(body.is_empty());
    // A new seat changes the feed and its ETag.
    app.enroll(&student, lab).await.expect("a seat");
    let (status, changed, _, body) = fetch(&url, Some(&etag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(changed.as_deref(), Some(etag.as_str()));
    assert!(body.contains(&lab.to_string()), "{body}");
    assert!(!body.contains(&lecture.to_string()));

    // Reset: the old URL is gone, the new one works.
    let second = local(&app.ok(Some(&student), RESET, json!({})).await["resetCalendarUrl"]);
    assert_ne!(second, url);
    let (status, _, _, body) = fetch(&url, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.is_empty(), "a 404 says nothing: {body}");
    assert_eq!(fetch(&second, None).await.0, StatusCode::OK);
    // Made-up tokens, of the right shape or not, are 404 too.
    for path in [
        "calendar/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.ics",
        "calendar/not-a-token.ics",
        "calendar/%00.ics",
    ] {
        let (status, _, _, body) = fetch(&format!("http://{address}/{path}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.is_empty());
    }
    // The token is no bearer token.
    let token = second
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".ics")
        .to_owned();
    let as_bearer = app.gql(Some(&token), MINE, json!({})).await;
    assert_eq!(crate::helpers::error_code(&as_bearer), "UNAUTHENTICATED");
}

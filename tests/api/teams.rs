//! Teams (seed 001) and who sees whose enrollments (seed 000), on both databases.

use std::collections::BTreeSet;

use crate::helpers::{TestApp, both_backends, error_code, now, parse_id};
use entity::{team, team_member, types::Role, user};
use sea_orm::{EntityTrait, Set};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

const CREATE: &str = "mutation($n: String!, $k: String!) { createTeam(name: $n, passKey: $k) {
  id name coach { id } memberCount } }";
const JOIN: &str = "mutation($n: String!, $k: String!) { joinTeam(name: $n, passKey: $k) {
  id memberCount } }";
const ENROLL: &str =
    "mutation($s: UUID!, $v: Boolean) { enroll(sectionId: $s, visibility: $v) { id } }";
const VISIBILITY: &str = "mutation($e: UUID!, $v: Boolean!) {
  setEnrollmentVisibility(enrollmentId: $e, visibility: $v) { id } }";

/// The ids in `value[field]`, a list of objects with `id`.
fn ids(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}

/// `joinTeam` as `token`'s holder: the team's member count, or the error code.
async fn join(app: &TestApp, token: &str, name: &str, key: &str) -> Result<i64, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Joined {
        member_count: i64,
    }
    let joined: Joined = app
        .request(Some(token), JOIN, json!({ "n": name, "k": key }))
        .await?;
    Ok(joined.member_count)
}

async fn pass_keys_uniqueness_membership_and_the_guessing_throttle(app: TestApp) {
    let campus = app.campus("Org").await;
    let coach = campus.teacher_token.clone();
    let created = app
        .ok(
            Some(&coach),
            CREATE,
            json!({ "n": "Chess Club", "k": "knight-42" }),
        )
        .await;
    let team_id = parse_id(&created["createTeam"]["id"]);
    assert_eq!(
        created["createTeam"]["coach"]["id"],
        campus.teacher.id.to_string()
    );
    assert_eq!(created["createTeam"]["memberCount"], 0);

    // The key is stored as an Argon2 hash, never as given.
    let row = team::Entity::find_by_id(team_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.pass_key_hash.starts_with("$argon2id$"),
        "{}",
        row.pass_key_hash
    );
    assert!(!row.pass_key_hash.contains("knight-42"));

    let students = app.students(&campus, 3).await;
    let (guesser, other) = (&students[0].1, &students[1].1);
    for (token, name, key, code) in [
        (guesser.as_str(), "Student Team", "abcd", "FORBIDDEN"),
        (coach.as_str(), "chess club", "abcd", "CONFLICT"),
        (coach.as_str(), "CHESS CLUB", "abcd", "CONFLICT"),
        (coach.as_str(), "Go Club", "abc", "BAD_USER_INPUT"),
        (coach.as_str(), "  ", "abcd", "BAD_USER_INPUT"),
    ] {
        let response = app
            .gql(Some(token), CREATE, json!({ "n": name, "k": key }))
            .await;
        assert_eq!(error_code(&response), code, "{name}: {response}");
    }
    assert_eq!(
        join(&app, guesser, "No Such Team", "x").await.unwrap_err(),
        "NOT_FOUND"
    );

    // Five wrong keys, then even the right key is refused until the window passes.
    for _ in 0..5 {
        assert_eq!(
            join(&app, guesser, "Chess Club", "wrong")
                .await
                .unwrap_err(),
            "INVALID_PASS_KEY"
        );
    }
    let locked = app
        .gql(
            Some(guesser),
            JOIN,
            json!({ "n": "chess club", "k": "knight-42" }),
        )
        .await;
    assert_eq!(error_code(&locked), "TOO_MANY_ATTEMPTS");
    let retry = locked["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_i64()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // The lock is per user: someone else joins at once.
    assert_eq!(join(&app, other, "CHESS club", "knight-42").await, Ok(1));
    // Attempts while locked do not extend the lock.
    app.state
        .store
        .clock()
        .advance(chrono::Duration::minutes(10));
    assert_eq!(
        join(&app, guesser, "Chess Club", "knight-42")
            .await
            .unwrap_err(),
        "TOO_MANY_ATTEMPTS"
    );
    app.state
        .store
        .clock()
        .advance(chrono::Duration::minutes(5) + chrono::Duration::seconds(1));
    let joined = join(&app, guesser, "Chess Club", "knight-42").await;
    assert_eq!(joined, Ok(2));
    assert_eq!(
        join(&app, guesser, "Chess Club", "knight-42")
            .await
            .unwrap_err(),
        "CONFLICT"
    );

    // Reads.
    let read = "query($c: UUID!) {
        team(name: \"cHeSs ClUb\") { name memberCount members { id } coach { id } }
        teamsByCoach(coachId: $c) { name } }";
    let read = app
        .ok(
            Some(&students[2].1),
            read,
            json!({ "c": campus.teacher.id }),
        )
        .await;
    assert_eq!(read["team"]["name"], "Chess Club");
    assert_eq!(
        ids(&read["team"]["members"]),
        BTreeSet::from([students[0].0.to_string(), students[1].0.to_string()])
    );
    assert_eq!(read["teamsByCoach"], json!([{ "name": "Chess Club" }]));
    let mine = app
        .ok(Some(guesser), "{ me { teams { name } } }", json!({}))
        .await;
    assert_eq!(mine["me"]["teams"], json!([{ "name": "Chess Club" }]));
    let anonymous = app
        .gql(None, "{ team(name: \"Chess Club\") { id } }", json!({}))
        .await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");

    // Leaving, removing, rotating the key.
    let leave = "mutation($t: UUID!) { leaveTeam(teamId: $t) }";
    assert_eq!(
        app.ok(Some(other), leave, json!({ "t": team_id })).await["leaveTeam"],
        true
    );
    assert_eq!(
        error_code(&app.gql(Some(other), leave, json!({ "t": team_id })).await),
        "NOT_FOUND"
    );
    let remove = "mutation($t: UUID!, $u: UUID!) {
        removeTeamMember(teamId: $t, userId: $u) { memberCount } }";
    let by_student = app
        .gql(
            Some(other),
            remove,
            json!({ "t": team_id, "u": students[0].0 }),
        )
        .await;
    assert_eq!(error_code(&by_student), "FORBIDDEN");
    let not_member = app
        .gql(
            Some(&coach),
            remove,
            json!({ "t": team_id, "u": students[1].0 }),
        )
        .await;
    assert_eq!(error_code(&not_member), "NOT_FOUND");
    let removed = app
        .ok(
            Some(&coach),
            remove,
            json!({ "t": team_id, "u": students[0].0 }),
        )
        .await;
    assert_eq!(removed["removeTeamMember"]["memberCount"], 0);
    let rotate = "mutation($t: UUID!) { updateTeam(teamId: $t, passKey: \"bishop-7\") { name } }";
    assert_eq!(
        error_code(&app.gql(Some(other), rotate, json!({ "t": team_id })).await),
        "FORBIDDEN"
    );
    app.ok(Some(&coach), rotate, json!({ "t": team_id })).await;
    assert_eq!(
        join(&app, other, "Chess Club", "knight-42")
            .await
            .unwrap_err(),
        "INVALID_PASS_KEY"
    );
    assert_eq!(join(&app, other, "Chess Club", "bishop-7").await, Ok(1));
}

async fn who_sees_whose_enrollments(app: TestApp) {
    let campus = app.campus("North").await;
    let t = campus.teacher_token.clone();
    let (_, [shown_section]) = app
        .course_with_sections(&t, json!({ "name": "Shown" }), [json!({ "name": "A" })])
        .await;
    let (_, [hidden_section]) = app
        .course_with_sections(&t, json!({ "name": "Hidden" }), [json!({ "name": "A" })])
        .await;

    let students = app.students(&campus, 3).await;
    let (owner, mate, stranger) = (&students[0], &students[1], &students[2]);
    let coach = app.user(Role::Teacher, Some(campus.organization.id)).await;
    let coach_token = app.token(coach.id);
    app.ok(
        Some(&coach_token),
        CREATE,
        json!({ "n": "Study Group", "k": "together" }),
    )
    .await;
    join(&app, &owner.1, "Study Group", "together")
        .await
        .expect("joined");
    join(&app, &mate.1, "Study Group", "together")
        .await
        .expect("joined");

    let enroll = |section: Uuid, visibility: bool| {
        let (app, token) = (&app, owner.1.clone());
        async move {
            let variables = json!({ "s": section, "v": visibility });
            let data = app.ok(Some(&token), ENROLL, variables).await;
            parse_id(&data["enroll"]["id"]).to_string()
        }
    };
    let visible = enroll(shown_section, true).await;
    let secret = enroll(hidden_section, false).await;

    let coordinator = app
        .user(Role::Coordinator, Some(campus.organization.id))
        .await;
    let elsewhere = app.organization("South").await;
    let other_coordinator = app.user(Role::Coordinator, Some(elsewhere.id)).await;
    let admin = app.user(Role::Admin, None).await;
    let everyone = BTreeSet::from([visible.clone(), secret.clone()]);
    let only_visible = BTreeSet::from([visible.clone()]);
    let table: Vec<(&str, String, BTreeSet<String>)> = vec![
        ("owner", owner.1.clone(), everyone.clone()),
        ("teammate", mate.1.clone(), only_visible.clone()),
        (
            "coach of the team",
            coach_token.clone(),
            only_visible.clone(),
        ),
        ("stranger", stranger.1.clone(), BTreeSet::new()),
        ("teacher of the courses", t.clone(), everyone.clone()),
        (
            "coordinator of the organization",
            app.token(coordinator.id),
            everyone.clone(),
        ),
        (
            "coordinator of another organization",
            app.token(other_coordinator.id),
            BTreeSet::new(),
        ),
        ("admin", app.token(admin.id), everyone.clone()),
    ];
    let query =
        "query($u: UUID!) { user(id: $u) { enrollments { id } } team(name: \"Study Group\") {
        memberEnrollments { id } } }";
    for (who, token, expected) in &table {
        let data = app.ok(Some(token), query, json!({ "u": owner.0 })).await;
        assert_eq!(
            &ids(&data["user"]["enrollments"]),
            expected,
            "User.enrollments for the {who}"
        );
        assert_eq!(
            &ids(&data["team"]["memberEnrollments"]),
            expected,
            "Team.memberEnrollments for the {who}"
        );
    }

    // Classmates: visible, registered, sharing a team with the viewer.
    let classmates = "query($s: UUID!) { section(id: $s) { classmates { id } } }";
    let seen = |token: String, section: Uuid| {
        let app = &app;
        async move {
            let data = app
                .ok(Some(&token), classmates, json!({ "s": section }))
                .await;
            ids(&data["section"]["classmates"])
        }
    };
    assert_eq!(
        seen(mate.1.clone(), shown_section).await,
        BTreeSet::from([owner.0.to_string()])
    );
    assert_eq!(seen(mate.1.clone(), hidden_section).await, BTreeSet::new());
    assert_eq!(
        seen(stranger.1.clone(), shown_section).await,
        BTreeSet::new()
    );
    assert_eq!(
        seen(owner.1.clone(), shown_section).await,
        BTreeSet::new(),
        "not one's own classmate"
    );

    // The owner hides it: from then on it is absent for the teammate, still there for staff.
    app.ok(
        Some(&owner.1),
        VISIBILITY,
        json!({ "e": visible, "v": false }),
    )
    .await;
    let data = app.ok(Some(&mate.1), query, json!({ "u": owner.0 })).await;
    assert!(ids(&data["user"]["enrollments"]).is_empty());
    assert_eq!(seen(mate.1.clone(), shown_section).await, BTreeSet::new());
    let data = app.ok(Some(&t), query, json!({ "u": owner.0 })).await;
    assert_eq!(ids(&data["user"]["enrollments"]), everyone);
    // Only the owner sets visibility.
    let by_teacher = app
        .gql(Some(&t), VISIBILITY, json!({ "e": visible, "v": true }))
        .await;
    assert_eq!(error_code(&by_teacher), "FORBIDDEN");
}

async fn a_large_team_lists_with_a_constant_number_of_statements(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Big", None, "MONDAY")
        .await;
    let mut counts = Vec::new();
    for (name, size) in [("Small", 5usize), ("Large", 500)] {
        app.ok(
            Some(&campus.teacher_token),
            CREATE,
            json!({ "n": name, "k": "shared-key" }),
        )
        .await;
        let team = team::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name == name)
            .unwrap();
        let at = now();
        let members: Vec<Uuid> = (0..size).map(|_| Uuid::now_v7()).collect();
        for chunk in members.chunks(250) {
            user::Entity::insert_many(chunk.iter().map(|id| user::ActiveModel {
                id: Set(*id),
                email: Set(format!("{id}@test.roster.dev")),
                name: Set("Member".into()),
                picture: Set(None),
                role: Set(Role::Student),
                organization_id: Set(Some(campus.organization.id)),
                created_at: Set(at),
                updated_at: Set(at),
            }))
            .exec(&app.db)
            .await
            .unwrap();
            team_member::Entity::insert_many(chunk.iter().map(|id| team_member::ActiveModel {
                team_id: Set(team.id),
                user_id: Set(*id),
                joined_at: Set(at),
            }))
            .exec(&app.db)
            .await
            .unwrap();
        }
        for id in &members {
            app.seat(*id, section, entity::types::EnrollmentStatus::Registered)
                .await;
        }
        let viewer = app.token(members[0]);
        let query = format!(
            "{{ team(name: \"{name}\") {{ memberCount coach {{ name }} members {{ id name }}
            memberEnrollments {{ id status course {{ name }} section {{ name }} }} }} }}"
        );
        app.reset_statements();
        let data = app.ok(Some(&viewer), &query, json!({})).await;
        counts.push(app.statement_count());
        let classmates = format!("{{ section(id: \"{section}\") {{ classmates {{ id name }} }} }}");
        app.reset_statements();
        let mates = app.ok(Some(&viewer), &classmates, json!({})).await;
        counts.push(app.statement_count());
        assert_eq!(data["team"]["memberCount"], size);
        assert_eq!(data["team"]["members"].as_array().unwrap().len(), size);
        assert_eq!(
            data["team"]["memberEnrollments"].as_array().unwrap().len(),
            size
        );
        assert_eq!(
            mates["section"]["classmates"].as_array().unwrap().len(),
            size - 1
        );
    }
    // [team of 5, its classmates, team of 500, its classmates]: the viewer, the team, its
    // memberships, the users, the viewer's team-mates (3), the enrollments, their courses
    // and sections; then the viewer, the section, team-mates (3), registrations, users.
    assert_eq!(counts, [10, 7, 10, 7], "statements per request");
    eprintln!(
        "[{:?}] statements for a team of 5 and of 500: {counts:?}",
        app.backend
    );
}

both_backends!(
    pass_keys_uniqueness_membership_and_the_guessing_throttle,
    who_sees_whose_enrollments,
    a_large_team_lists_with_a_constant_number_of_statements
);

//! The schema itself: migrations apply and roll back, and the database enforces the invariants
//! it can (one active enrollment per user and course, case-insensitive team names, capacity ≥ 1).

use crate::helpers::{Backend, TestApp, both_backends, now};
use entity::{
    team,
    types::{EnrollmentStatus, Role},
};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set, Statement};
use serde_json::json;
use uuid::Uuid;

async fn table_count(app: &TestApp) -> i64 {
    let sql = match app.backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations'"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_name <> 'seaql_migrations'"
        }
    };
    let row = app
        .db
        .query_one_raw(Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn migrations_roll_back_and_apply_again(app: TestApp) {
    assert_eq!(table_count(&app).await, 19);
    Migrator::down(&app.db, None).await.expect("down");
    assert_eq!(table_count(&app).await, 0);
    Migrator::up(&app.db, None).await.expect("up again");
    assert_eq!(table_count(&app).await, 19);
    let data = app.ok(None, "{ courses { totalCount } }", json!({})).await;
    assert_eq!(data["courses"]["totalCount"], 0);
}

async fn one_active_enrollment_per_user_and_course(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section_a) = app
        .course_with_section(&campus, "Course", Some(10), "MONDAY")
        .await;
    let student = app.user(Role::Student, Some(campus.organization.id)).await;
    let first = app
        .seat(student.id, section_a, EnrollmentStatus::Registered)
        .await;
    let duplicate =
        std::panic::AssertUnwindSafe(app.seat(student.id, section_a, EnrollmentStatus::Waitlisted));
    let result = futures_util::FutureExt::catch_unwind(duplicate).await;
    assert!(
        result.is_err(),
        "a second active enrollment in the course must be refused"
    );

    // Once the first is final, a new enrollment is allowed (re-enrolling creates a new one).
    let mut row: entity::enrollment::ActiveModel = app.enrollment_row(first).await.into();
    row.status = Set(EnrollmentStatus::Withdrawn);
    row.update(&app.db).await.unwrap();
    app.seat(student.id, section_a, EnrollmentStatus::Registered)
        .await;
}

async fn team_names_are_unique_case_insensitively(app: TestApp) {
    let coach = app.user(Role::Teacher, None).await;
    let team = |name: &str| team::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name.into()),
        pass_key_hash: Set("$argon2id$placeholder".into()),
        coach_id: Set(coach.id),
        created_at: Set(now()),
        updated_at: Set(now()),
    };
    team("Chess Club")
        .insert(&app.db)
        .await
        .expect("first team");
    let clash = team("chess CLUB").insert(&app.db).await;
    assert!(
        matches!(
            clash.as_ref().map_err(|e| e.sql_err()),
            Err(Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
        ),
        "{clash:?}"
    );
    assert_eq!(team::Entity::find().all(&app.db).await.unwrap().len(), 1);
}

async fn the_database_rejects_a_zero_capacity(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Course", Some(10), "MONDAY")
        .await;
    let backend = app.db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            format!("UPDATE sections SET capacity = 0 WHERE id = '{section}'")
        }
        _ => "UPDATE sections SET capacity = 0".to_owned(),
    };
    let result = app
        .db
        .execute_raw(Statement::from_string(backend, sql))
        .await;
    assert!(
        result.is_err(),
        "CHECK (capacity IS NULL OR capacity >= 1) must hold"
    );
}

/// A database from before finished enrollments kept their seats gets its counters from the rows.
async fn upgrading_counts_the_finished_seats_of_existing_sections(app: TestApp) {
    let campus = app.campus("Org").await;
    let (_, section) = app
        .course_with_section(&campus, "Welding", Some(3), "MONDAY")
        .await;
    for _ in 0..2 {
        let (_, token) = app.student(&campus).await;
        let seat = app.enroll(&token, section).await.expect("a seat");
        let complete = "mutation($e: UUID!) { completeEnrollment(enrollmentId: $e) { status } }";
        app.ok(
            Some(&campus.teacher_token),
            complete,
            json!({ "e": seat.id }),
        )
        .await;
    }
    // One connection for the schema changes, so that no pooled connection works from a schema
    // read before them.
    let db = roster::store::db::connect(&roster::config::DbConfig {
        database_url: app.database_url.clone(),
        db_max_connections: Some(1),
        db_acquire_timeout: None,
    })
    .await
    .expect("a connection");
    // Back to before migration 12, the one that counts finished seats.
    let after_12 = Migrator::migrations()
        .iter()
        .rev()
        .take_while(|m| m.name() != "m20261125_000012_add_finished_seats_and_skips")
        .count();
    Migrator::down(&db, Some(u32::try_from(after_12).unwrap() + 1))
        .await
        .expect("down to before 12");
    Migrator::up(&db, None).await.expect("up again");
    db.close().await.expect("closed");
    let row = app.section_row(section).await;
    assert_eq!(
        (row.finished_count, row.registered_count),
        (2, 0),
        "[{:?}] the completed enrollments hold their seats after the upgrade",
        app.backend
    );
}

both_backends!(
    upgrading_counts_the_finished_seats_of_existing_sections,
    migrations_roll_back_and_apply_again,
    one_active_enrollment_per_user_and_course,
    team_names_are_unique_case_insensitively,
    the_database_rejects_a_zero_capacity
);

//! The one write path (docs/architecture.md#the-write-path): a use case called directly, outside
//! GraphQL, announces its committed changes like any other, and a write that fails announces
//! nothing.

use std::time::Duration;

use entity::types::{EnrollmentStatus, Role};
use roster::{
    domain::viewer::Viewer,
    error::ApiError,
    service::enroll::{self, EnrollRequest},
    store::{Transition, feed::Notice},
};
use sea_orm::EntityTrait;
use tokio::time::timeout;

use crate::helpers::{TestApp, both_backends};

/// `student` enrolls in `section` through the use case itself, outside GraphQL.
async fn enroll_self(
    app: &TestApp,
    student: &entity::user::Model,
    section: uuid::Uuid,
) -> entity::enrollment::Model {
    enroll_in_background(app, student, section)
        .await
        .expect("task")
        .expect("enrolled")
}

async fn a_use_case_called_outside_graphql_announces_its_commit(app: TestApp) {
    let campus = app.campus("Org").await;
    let (course, section) = app
        .course_with_section(&campus, "Chemistry", Some(5), "MONDAY")
        .await;
    let student = app.user(Role::Student, Some(campus.organization.id)).await;
    let mut changes = app.state.store.bus().subscribe();

    let row = enroll_self(&app, &student, section).await;

    let notice = timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("the notice arrives after commit")
        .expect("the bus is open");
    let event = notice.event.as_ref().expect("a status change");
    assert_eq!(
        (event.enrollment_id, event.user_id, notice.course_id),
        (row.id, student.id, course),
        "[{:?}]",
        app.backend
    );
    assert_eq!(notice.sections, vec![section]);
    // On PostgreSQL the payload is joined around the key the event's insert assigned, in SQL:
    // the notice names the event row that was written.
    let events = app.events_of(row.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (event.id, event.from, event.to),
        (events[0].id, None, EnrollmentStatus::Registered),
        "[{:?}]",
        app.backend
    );
}

/// A write that records events and announces other changes delivers every notice after commit,
/// each event's naming its own row, whichever statement handed it to PostgreSQL.
async fn every_notice_of_a_write_arrives_after_commit(app: TestApp) {
    let campus = app.campus("Org").await;
    let (course, section) = app
        .course_with_section(&campus, "Chemistry", Some(5), "MONDAY")
        .await;
    let student = app.user(Role::Student, Some(campus.organization.id)).await;
    let mut changes = app.state.store.bus().subscribe();
    let row = enroll_self(&app, &student, section).await;
    // The enrollment's own notice first (PostgreSQL delivers it through LISTEN, a moment later).
    let first = timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("the enrollment's notice")
        .expect("the bus is open");
    assert_eq!(first.event.as_ref().map(|e| e.enrollment_id), Some(row.id));
    let at = app.state.store.now();
    app.state
        .store
        .write(|tx| {
            Box::pin(async move {
                tx.announce(Notice::of_section(section, course));
                for (from, to) in [
                    (EnrollmentStatus::Registered, EnrollmentStatus::Withdrawn),
                    (EnrollmentStatus::Withdrawn, EnrollmentStatus::Withdrawn),
                ] {
                    tx.record(Transition {
                        enrollment_id: row.id,
                        user_id: row.user_id,
                        course_id: course,
                        sections: vec![section],
                        from: Some(from),
                        to,
                        actor: Some(row.user_id),
                        reason: Some("test".into()),
                        details: None,
                        at,
                    })
                    .await?;
                }
                Ok(())
            })
        })
        .await
        .expect("written");
    let mut received = Vec::new();
    while received.len() < 3 {
        let notice = timeout(Duration::from_secs(5), changes.recv())
            .await
            .unwrap_or_else(|_| panic!("[{:?}] only {received:?} arrived", app.backend))
            .expect("the bus is open");
        received.push(notice.event.as_ref().map(|e| e.id));
    }
    let events: Vec<i64> = app
        .events_of(row.id)
        .await
        .into_iter()
        .skip(1)
        .map(|e| e.id)
        .collect();
    let mut named: Vec<i64> = received.iter().flatten().copied().collect();
    named.sort_unstable();
    assert_eq!(named, events, "[{:?}]", app.backend);
    assert_eq!(received.iter().filter(|e| e.is_none()).count(), 1);
    assert!(
        timeout(Duration::from_millis(300), changes.recv())
            .await
            .is_err(),
        "[{:?}] a notice arrived twice",
        app.backend
    );
}

async fn a_write_that_fails_announces_nothing_and_keeps_nothing(app: TestApp) {
    let campus = app.campus("Org").await;
    let (course, section) = app
        .course_with_section(&campus, "Chemistry", Some(5), "MONDAY")
        .await;
    let mut changes = app.state.store.bus().subscribe();
    let result: Result<(), ApiError> = app
        .state
        .store
        .write(|tx| {
            Box::pin(async move {
                entity::section::Entity::delete_by_id(section)
                    .exec(tx)
                    .await?;
                tx.announce(Notice::of_section(section, course));
                Err(ApiError::Conflict("changed my mind".into()))
            })
        })
        .await;
    assert!(matches!(result, Err(ApiError::Conflict(_))));
    assert!(
        timeout(Duration::from_millis(500), changes.recv())
            .await
            .is_err(),
        "[{:?}] a rolled-back write announces nothing",
        app.backend
    );
    assert_eq!(
        app.section_row(section).await.id,
        section,
        "and keeps nothing"
    );
}

/// An event the database refuses (here it names no enrollment, which its foreign key refuses)
/// fails the whole write: its first statement is undone, its change row (PostgreSQL) is never
/// read by any replica, and nobody hears of it.
async fn a_refused_event_fails_the_whole_write(app: TestApp) {
    let campus = app.campus("Org").await;
    let (course, section) = app
        .course_with_section(&campus, "Chemistry", Some(5), "MONDAY")
        .await;
    let student = app.user(Role::Student, Some(campus.organization.id)).await;
    let student_id = student.id;
    let mut changes = app.state.store.bus().subscribe();
    let result: Result<(), ApiError> = app
        .state
        .store
        .write(|tx| {
            Box::pin(async move {
                entity::section::Entity::delete_by_id(section)
                    .exec(tx)
                    .await?;
                tx.record(Transition {
                    enrollment_id: uuid::Uuid::now_v7(),
                    user_id: student_id,
                    course_id: course,
                    sections: vec![section],
                    from: None,
                    to: EnrollmentStatus::Registered,
                    actor: Some(student_id),
                    reason: None,
                    details: None,
                    at: tx.now(),
                })
                .await?;
                Ok(())
            })
        })
        .await;
    assert!(
        result.is_err(),
        "[{:?}] an event without its enrollment was committed",
        app.backend
    );
    assert!(
        timeout(Duration::from_millis(500), changes.recv())
            .await
            .is_err(),
        "[{:?}] the failed write announced its event",
        app.backend
    );
    assert_eq!(
        app.section_row(section).await.id,
        section,
        "[{:?}] the write's first statement was kept",
        app.backend
    );
    // The connection the failed write used serves the next one.
    let row = enroll_self(&app, &student, section).await;
    assert_eq!(row.status, EnrollmentStatus::Registered);
}

both_backends!(
    a_use_case_called_outside_graphql_announces_its_commit,
    every_notice_of_a_write_arrives_after_commit,
    a_write_that_fails_announces_nothing_and_keeps_nothing,
    a_refused_event_fails_the_whole_write,
);

/// Polls until some statement waits for a row lock (PostgreSQL), so a test knows a write has
/// reached the statement it means to hold up.
async fn until_a_statement_waits(app: &TestApp) {
    use sea_orm::{ConnectionTrait, Statement};
    for _ in 0..500 {
        let row = app
            .db
            .query_one_raw(Statement::from_string(
                app.db.get_database_backend(),
                "SELECT count(*) AS waiting FROM pg_locks WHERE NOT granted",
            ))
            .await
            .expect("pg_locks")
            .expect("a row");
        if row.try_get::<i64>("", "waiting").expect("count") > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no statement ever waited for a lock");
}

/// Enrolls `student` in `section` through the use case, in a task of its own.
fn enroll_in_background(
    app: &TestApp,
    student: &entity::user::Model,
    section: uuid::Uuid,
) -> tokio::task::JoinHandle<Result<entity::enrollment::Model, ApiError>> {
    let state = app.state.clone();
    let viewer = Viewer {
        user: student.clone(),
    };
    tokio::spawn(async move {
        let request = EnrollRequest {
            section_id: section,
            user_id: None,
            visibility: true,
            override_capacity: false,
            override_schedule_conflict: false,
        };
        enroll::enroll(&state.store, &viewer, request).await
    })
}

/// A transaction holding `section`'s row lock, as a writer of the section does.
async fn hold(app: &TestApp, section: uuid::Uuid) -> sea_orm::DatabaseTransaction {
    hold_row(app, "sections", section).await
}

/// A transaction holding the row lock of `id` in `table`.
async fn hold_row(app: &TestApp, table: &str, id: uuid::Uuid) -> sea_orm::DatabaseTransaction {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let held = app.db.begin().await.expect("begin");
    let lock = format!("SELECT id FROM {table} WHERE id = '{id}' FOR UPDATE");
    held.execute_unprepared(&lock).await.expect("lock");
    held
}

/// `enroll` reads the section without locking it and takes the seat with one conditional
/// update, which locks the row. While another transaction holds the section (as `updateSection`
/// does), the enroll's update waits; if that transaction moves the section onto the student's
/// other seat, or makes it require approval, the enroll decides on the section as committed:
/// `SCHEDULE_CONFLICT` with nothing written, or a PENDING enrollment.
#[tokio::test]
async fn enroll_decides_on_the_section_as_committed_not_as_read() {
    use sea_orm::{ConnectionTrait, Statement};
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let campus = app.campus("Org").await;
    let (_, monday) = app
        .course_with_section(&campus, "Held", Some(10), "MONDAY")
        .await;
    let (student, token) = app.student(&campus).await;
    app.enroll(&token, monday).await.expect("the Monday seat");
    let student = app.user_row(student).await;

    // Moved onto Monday 09:00 while the enroll waits for the row: refused.
    let (_, tuesday) = app
        .course_with_section(&campus, "Moved", Some(10), "TUESDAY")
        .await;
    let held = hold(&app, tuesday).await;
    let enrolling = enroll_in_background(&app, &student, tuesday);
    until_a_statement_waits(&app).await;
    let monday_meeting =
        r#"[{"weekday": "MONDAY", "start": "09:00", "end": "10:30", "room": "B2"}]"#;
    held.execute_raw(Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "UPDATE sections SET schedule = CAST($1 AS jsonb), weekdays = 1 WHERE id = $2",
        [monday_meeting.into(), tuesday.into()],
    ))
    .await
    .expect("moved");
    held.commit().await.expect("commit");
    let refused = enrolling.await.expect("task");
    assert!(
        matches!(refused, Err(ApiError::ScheduleConflict(_))),
        "{refused:?}"
    );
    let section = app.section_row(tuesday).await;
    assert_eq!(section.registered_count, 0, "no seat taken");
    let rows = entity::enrollment::Entity::find()
        .all(&app.db)
        .await
        .expect("rows");
    assert!(
        rows.iter().all(|e| e.section_id != tuesday),
        "no enrollment written"
    );

    // Made to require approval meanwhile: the seat is held as PENDING.
    let (_, approval) = app
        .course_with_section(&campus, "Approval", Some(10), "FRIDAY")
        .await;
    let held = hold(&app, approval).await;
    let enrolling = enroll_in_background(&app, &student, approval);
    until_a_statement_waits(&app).await;
    let approve = format!("UPDATE sections SET requires_approval = true WHERE id = '{approval}'");
    held.execute_unprepared(&approve).await.expect("changed");
    held.commit().await.expect("commit");
    let pending = enrolling.await.expect("task").expect("enrolled");
    assert_eq!(pending.status, EnrollmentStatus::Pending);
    let section = app.section_row(approval).await;
    assert_eq!((section.pending_count, section.registered_count), (1, 0));
    app.assert_section_consistent(approval).await;
}

/// On PostgreSQL `enroll` reads what its checks need in the statement that takes the user's
/// lock, so that read may predate the user's previous write, committed while it waited for the
/// lock (docs/architecture.md#the-write-path). The seat's statement must see that write: a seat
/// taken meanwhile whose meetings overlap is `SCHEDULE_CONFLICT`, one taken meanwhile in the
/// same course is `ALREADY_ENROLLED`, and a conflicting seat withdrawn meanwhile no longer
/// refuses.
#[tokio::test]
async fn enroll_checks_what_the_users_previous_write_committed() {
    use sea_orm::{ConnectionTrait, DatabaseBackend::Postgres, Statement};
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let campus = app.campus("Org").await;
    let (student, _) = app.student(&campus).await;
    let student = app.user_row(student).await;
    // Writes in `held` what a write of the student's would: a seat, its counter.
    let take = |course: uuid::Uuid, section: uuid::Uuid| {
        let id = uuid::Uuid::now_v7();
        let statements = [
            Statement::from_sql_and_values(
                Postgres,
                "INSERT INTO enrollments (id, user_id, course_id, section_id, status, \
                 visibility, enrolled_at, prerequisite_check_passed, seat_reserved_at, \
                 created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'REGISTERED', true, now(), true, now(), now(), now())",
                [id.into(), student.id.into(), course.into(), section.into()],
            ),
            Statement::from_sql_and_values(
                Postgres,
                "UPDATE sections SET registered_count = registered_count + 1 WHERE id = $1",
                [section.into()],
            ),
        ];
        (id, statements)
    };

    // An overlapping seat taken while the enroll waits for the user's lock.
    let (monday_course, monday) = app
        .course_with_section(&campus, "Monday", Some(10), "MONDAY")
        .await;
    let (_, overlapping) = app
        .course_with_section(&campus, "Also Monday", Some(10), "MONDAY")
        .await;
    let held = hold_row(&app, "users", student.id).await;
    let enrolling = enroll_in_background(&app, &student, overlapping);
    until_a_statement_waits(&app).await;
    let (monday_seat, statements) = take(monday_course, monday);
    for statement in statements {
        held.execute_raw(statement).await.expect("the other seat");
    }
    held.commit().await.expect("commit");
    let refused = enrolling.await.expect("task");
    assert!(
        matches!(refused, Err(ApiError::ScheduleConflict(_))),
        "{refused:?}"
    );
    assert_eq!(app.section_row(overlapping).await.registered_count, 0);
    app.assert_section_consistent(overlapping).await;

    // A seat in the same course taken meanwhile.
    let (course, first) = app
        .course_with_section(&campus, "Twice", Some(10), "FRIDAY")
        .await;
    let second = app
        .create_section(
            &campus.teacher_token,
            course,
            serde_json::json!({ "name": "Section B", "capacity": 10 }),
        )
        .await;
    let held = hold_row(&app, "users", student.id).await;
    let enrolling = enroll_in_background(&app, &student, second);
    until_a_statement_waits(&app).await;
    let (_, statements) = take(course, first);
    for statement in statements {
        held.execute_raw(statement).await.expect("the first seat");
    }
    held.commit().await.expect("commit");
    let refused = enrolling.await.expect("task");
    assert!(
        matches!(refused, Err(ApiError::AlreadyEnrolled)),
        "{refused:?}"
    );
    assert_eq!(app.section_row(second).await.registered_count, 0);

    // The Monday seat withdrawn meanwhile: the overlapping section is open to the student.
    let held = hold_row(&app, "users", student.id).await;
    let enrolling = enroll_in_background(&app, &student, overlapping);
    until_a_statement_waits(&app).await;
    for statement in [
        Statement::from_sql_and_values(
            Postgres,
            "UPDATE enrollments SET status = 'WITHDRAWN', withdrawn_at = now() WHERE id = $1",
            [monday_seat.into()],
        ),
        Statement::from_sql_and_values(
            Postgres,
            "UPDATE sections SET registered_count = registered_count - 1 WHERE id = $1",
            [monday.into()],
        ),
    ] {
        held.execute_raw(statement).await.expect("withdrawn");
    }
    held.commit().await.expect("commit");
    let seated = enrolling.await.expect("task").expect("enrolled");
    assert_eq!(seated.status, EnrollmentStatus::Registered);
    app.assert_section_consistent(overlapping).await;
}

//! The one write path (docs/architecture.md#the-write-path): a use case called directly, outside
//! GraphQL, announces its committed changes like any other, and a write that fails announces
//! nothing.

use std::time::Duration;

use entity::types::Role;
use roster::{
    auth::Viewer,
    error::ApiError,
    events::Notice,
    service::enroll::{self, EnrollRequest},
};
use sea_orm::EntityTrait;
use tokio::time::timeout;

use crate::helpers::{TestApp, both_backends};

async fn a_use_case_called_outside_graphql_announces_its_commit(app: TestApp) {
    let campus = app.campus("Org").await;
    let (course, section) = app
        .course_with_section(&campus, "Chemistry", Some(5), "MONDAY")
        .await;
    let student = app.user(Role::Student, Some(campus.organization.id)).await;
    let mut changes = app.state.store.bus().subscribe();

    let request = EnrollRequest {
        section_id: section,
        user_id: None,
        visibility: true,
        override_capacity: false,
        override_schedule_conflict: false,
    };
    let viewer = Viewer {
        user: student.clone(),
    };
    let row = enroll::enroll(&app.state.store, &viewer, request)
        .await
        .expect("enrolled");

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

both_backends!(
    a_use_case_called_outside_graphql_announces_its_commit,
    a_write_that_fails_announces_nothing_and_keeps_nothing,
);

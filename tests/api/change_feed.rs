//! The change feed on PostgreSQL (docs/architecture.md#the-change-feed): every committed change
//! reaches every replica's subscribers once, in commit order, also when the replica that made it
//! died before it could wake anyone; a change that rolled back reaches nobody; changes whose ids
//! were taken in one order and committed in the other are all delivered. (On SQLite one process
//! publishes in memory after each commit: `write_path` tests that.)

use std::time::Duration;

use entity::types::Role;
use roster::{
    config::DbConfig,
    domain::viewer::Viewer,
    error::ApiError,
    service::enroll::{self, EnrollRequest},
    store::{
        Store,
        clock::Clock,
        feed::{Bus, Feed, Notice},
    },
};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, TransactionTrait};
use tokio::{sync::broadcast, time::timeout};
use uuid::Uuid;

use crate::helpers::TestApp;

/// The next notice `changes` publishes, within `within`.
async fn next(
    changes: &mut broadcast::Receiver<std::sync::Arc<Notice>>,
    within: Duration,
) -> Notice {
    (*timeout(within, changes.recv())
        .await
        .expect("a notice in time")
        .expect("the bus is open"))
    .clone()
}

/// A change row holding `notice`, as a write inserts it, in the transaction `conn` runs.
async fn insert_change(conn: &impl ConnectionTrait, notice: &Notice) {
    conn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "INSERT INTO changes (notice) VALUES ($1)",
        [serde_json::to_string(notice).unwrap().into()],
    ))
    .await
    .expect("a change row");
}

/// A replica that commits an enrollment and dies before it sends any wake-up: modelled by a
/// store of its own on the same database, whose commits wake nobody (no feed of its own, no
/// `NOTIFY` sender). The serving replica's subscriber still hears of the change, from the
/// feed's periodic read, with the event's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_from_a_replica_that_died_before_waking_anyone_arrives() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let campus = app.campus("Org").await;
    let (course, section) = app
        .course_with_section(&campus, "Chemistry", Some(5), "MONDAY")
        .await;
    let student = app.user(Role::Student, Some(campus.organization.id)).await;
    let mut changes = app.state.store.bus().subscribe();

    let silent = roster::store::db::connect(&DbConfig {
        database_url: app.database_url.clone(),
        db_max_connections: Some(2),
        db_acquire_timeout: None,
    })
    .await
    .expect("the other replica's pool");
    let silent = Store::new(silent, Clock::default(), Bus::default());
    let row = enroll::enroll(
        &silent,
        &Viewer {
            user: student.clone(),
        },
        EnrollRequest {
            section_id: section,
            user_id: None,
            visibility: true,
            override_capacity: false,
            override_schedule_conflict: false,
        },
    )
    .await
    .expect("enrolled through the silent replica");

    let notice = next(&mut changes, roster::store::feed::POLL_EVERY * 3).await;
    assert_eq!(notice.course_id, course);
    assert_eq!(notice.sections, vec![section]);
    let event = notice.event.expect("the enrollment's event");
    assert_eq!(event.enrollment_id, row.id);
    let stored = app.events_of(row.id).await;
    assert_eq!(event.id, stored[0].id, "the notice names the event row");
    assert!(
        timeout(Duration::from_millis(1500), changes.recv())
            .await
            .is_err(),
        "the change was delivered once"
    );
}

/// A write that fails after it recorded its event and announced a section change: its change
/// rows roll back with it, and the replica's feed delivers only the write committed after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_rolls_back_reaches_nobody() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let campus = app.campus("Org").await;
    let (course, section) = app
        .course_with_section(&campus, "Chemistry", Some(5), "MONDAY")
        .await;
    let mut changes = app.state.store.bus().subscribe();
    let failed: Result<(), ApiError> = app
        .state
        .store
        .write(|tx| {
            Box::pin(async move {
                tx.announce(Notice::of_section(section, course));
                insert_change(tx, &Notice::of_section(section, Uuid::nil())).await;
                Err(ApiError::Conflict("changed my mind".into()))
            })
        })
        .await;
    assert!(failed.is_err());
    let committed = Notice::of_section(Uuid::now_v7(), course);
    app.state
        .store
        .write(|tx| {
            let committed = committed.clone();
            Box::pin(async move {
                tx.announce(committed);
                Ok(())
            })
        })
        .await
        .expect("committed");
    let notice = next(&mut changes, Duration::from_secs(3)).await;
    assert_eq!(
        notice.sections, committed.sections,
        "only the committed write"
    );
    assert!(
        timeout(Duration::from_millis(1500), changes.recv())
            .await
            .is_err(),
        "nothing of the rolled-back write"
    );
}

/// Two transactions take change ids in one order and commit in the other: the feed delivers
/// the later id when its transaction commits, and the earlier id when its own does, each once.
/// A read with nothing new delivers nothing, and the first read delivers nothing committed
/// before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_committed_out_of_id_order_are_all_delivered_once() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let course = Uuid::now_v7();
    let notice = |n: u128| Notice::of_section(Uuid::from_u128(n), course);
    insert_change(&app.db, &notice(1)).await;

    let bus = Bus::default();
    let mut changes = bus.subscribe();
    let mut feed = Feed::new(app.db.clone(), bus);
    assert_eq!(
        feed.run_once().await.unwrap(),
        0,
        "the first read only starts"
    );

    let early = app.db.begin().await.unwrap();
    insert_change(&early, &notice(2)).await;
    let late = app.db.begin().await.unwrap();
    insert_change(&late, &notice(3)).await;
    assert_eq!(feed.run_once().await.unwrap(), 0, "nothing committed yet");
    late.commit().await.unwrap();
    assert_eq!(feed.run_once().await.unwrap(), 1);
    assert_eq!(
        next(&mut changes, Duration::ZERO).await.sections,
        notice(3).sections
    );
    assert_eq!(feed.run_once().await.unwrap(), 0, "delivered once");
    early.commit().await.unwrap();
    assert_eq!(feed.run_once().await.unwrap(), 1);
    assert_eq!(
        next(&mut changes, Duration::ZERO).await.sections,
        notice(2).sections
    );
    assert_eq!(feed.run_once().await.unwrap(), 0, "delivered once");

    // Two commits between reads arrive in commit order.
    let (first, second) = (app.db.begin().await.unwrap(), app.db.begin().await.unwrap());
    insert_change(&second, &notice(5)).await;
    insert_change(&first, &notice(4)).await;
    first.commit().await.unwrap();
    second.commit().await.unwrap();
    assert_eq!(feed.run_once().await.unwrap(), 2);
    let order = [
        next(&mut changes, Duration::ZERO).await.sections,
        next(&mut changes, Duration::ZERO).await.sections,
    ];
    // Within one read the rows come in id order: `second` took its id first. Both committed
    // between the same two reads, so either order is commit order as far as any reader can
    // tell; what matters is that both arrive, once.
    assert_eq!(order, [notice(5).sections, notice(4).sections]);
    assert!(changes.try_recv().is_err());
}

/// Pruning deletes only the rows older than the feed keeps them. The rows are written and
/// pruned in one transaction that is rolled back, so the app's own pruning job, which runs
/// beside the test, never sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_recent_changes() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let tx = app.db.begin().await.unwrap();
    let course = Uuid::now_v7();
    insert_change(&tx, &Notice::of_section(Uuid::now_v7(), course)).await;
    tx.execute_unprepared(
        "INSERT INTO changes (notice, at) VALUES ('{}', clock_timestamp() - interval '1 hour')",
    )
    .await
    .unwrap();
    assert_eq!(roster::store::feed::prune(&tx).await.unwrap(), 1);
    let left = tx
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT COUNT(*) FROM changes",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.try_get_by_index::<i64>(0).unwrap(), 1);
    tx.rollback().await.unwrap();
}

/// `Bus::settle` returns once every change committed before the call is on the bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_waits_for_the_changes_committed_before() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let bus = app.state.store.bus().clone();
    let mut changes = bus.subscribe();
    for n in 0..5u128 {
        app.state
            .store
            .write(|tx| {
                Box::pin(async move {
                    tx.announce(Notice::of_section(Uuid::from_u128(n), Uuid::nil()));
                    Ok(())
                })
            })
            .await
            .expect("committed");
    }
    bus.settle().await;
    let mut heard = 0;
    while changes.try_recv().is_ok() {
        heard += 1;
    }
    assert_eq!(heard, 5, "every change committed before settling");
}

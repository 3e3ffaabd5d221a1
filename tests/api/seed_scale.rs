//! `roster seed --scale N`: the benchmark data set, deterministic and with counters that match
//! the rows, on both databases.

use std::collections::{BTreeMap, HashMap};

use crate::helpers::{TestApp, both_backends};
use entity::{course, enrollment, section, types::EnrollmentStatus, user};
use sea_orm::{EntityTrait, PaginatorTrait, QueryOrder};

/// What two loads of one scale must agree on.
async fn fingerprint(app: &TestApp) -> (Vec<String>, BTreeMap<String, usize>) {
    let codes = course::Entity::find()
        .order_by_asc(course::Column::Code)
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.code)
        .collect();
    let mut statuses = BTreeMap::new();
    for e in enrollment::Entity::find().all(&app.db).await.unwrap() {
        *statuses.entry(format!("{:?}", e.status)).or_default() += 1;
    }
    (codes, statuses)
}

async fn the_scaled_data_set_is_deterministic_and_consistent(app: TestApp) {
    let enrollments = roster::seed::load_scale(&app.state.store, 0.02)
        .await
        .unwrap();
    assert_eq!(enrollments, 400 * 5);
    assert_eq!(user::Entity::find().count(&app.db).await.unwrap(), 4 + 400);
    let courses = course::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(courses.len(), 40);
    assert_eq!(
        courses.iter().filter(|c| c.is_active).count(),
        36,
        "90 % active"
    );
    let sections = section::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(sections.len(), 120);
    let unlimited = sections.iter().filter(|s| s.capacity.is_none()).count();
    assert!(
        (5..=35).contains(&unlimited),
        "about 15 % unlimited: {unlimited}"
    );
    assert!(
        sections
            .iter()
            .filter_map(|s| s.capacity)
            .all(|c| (20..=60).contains(&c))
    );

    // Counters equal the rows, seats within capacity, nobody waits while a seat is free.
    let rows = enrollment::Entity::find().all(&app.db).await.unwrap();
    let mut by_section: HashMap<_, (i32, i32)> = HashMap::new();
    for e in &rows {
        let entry = by_section.entry(e.section_id).or_default();
        match e.status {
            EnrollmentStatus::Registered => entry.0 += 1,
            EnrollmentStatus::Waitlisted => entry.1 += 1,
            _ => {}
        }
    }
    for s in &sections {
        let (registered, waiting) = by_section.get(&s.id).copied().unwrap_or_default();
        assert_eq!(
            (s.registered_count, s.waitlist_count),
            (registered, waiting),
            "section {}",
            s.name
        );
        if let Some(capacity) = s.capacity {
            assert!(registered <= capacity);
            assert!(waiting == 0 || registered == capacity);
        }
    }
    let (codes, statuses) = fingerprint(&app).await;
    assert!(
        statuses["Registered"] > statuses["Withdrawn"],
        "{statuses:?}"
    );
    assert!(statuses.contains_key("Withdrawn"), "{statuses:?}");

    // The same scale on a fresh database gives the same data.
    let other = TestApp::new(app.backend).await;
    roster::seed::load_scale(&other.state.store, 0.02)
        .await
        .unwrap();
    assert_eq!(fingerprint(&other).await, (codes, statuses));
}

both_backends!(the_scaled_data_set_is_deterministic_and_consistent);

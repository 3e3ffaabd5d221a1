//! The records compliance asks for (docs/design.md#who-may-do-what): certifications, among them
//! those expiring before a date (recertification), and the audit trail of every status change.
//! Both hang off an enrollment and are scoped exactly like the enrollments
//! ([`rosters::enrollment_ids`]): out of scope is absent, never an error.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    certification, course, enrollment, enrollment_event, section, types::EnrollmentStatus, user,
};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Select,
};
use uuid::Uuid;

use super::{
    listing::Page,
    rosters::{self, EnrollmentFilter, by_id},
};
use crate::{
    domain::{
        cursor::{Cursor, SerialCursor},
        viewer::Viewer,
    },
    error::ApiError,
    store::Store,
};

/// Narrows a listing of certifications. Every condition given must hold.
#[derive(Clone, Debug, Default)]
pub struct CertificationFilter {
    pub course_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    /// Expiring before this time (already expired included); certifications that never expire
    /// are left out.
    pub expires_before: Option<DateTime<Utc>>,
    /// Issued at or after.
    pub issued_after: Option<DateTime<Utc>>,
    /// Issued before.
    pub issued_before: Option<DateTime<Utc>>,
    /// The holder's name or e-mail, case-insensitively.
    pub search: Option<String>,
}

/// The certifications in the viewer's scope that match `filter`, newest first (ties by id), at
/// most `first` after `after`.
///
/// # Errors
/// `BAD_USER_INPUT` for an over-long search; `INTERNAL` when the database fails.
pub async fn certifications(
    store: &Store,
    viewer: &Viewer,
    filter: &CertificationFilter,
    first: u64,
    after: Option<Cursor>,
) -> Result<Page<certification::Model>, ApiError> {
    let mut select = certification_listing(viewer, filter)?;
    if let Some(after) = after {
        select = select.filter(
            Condition::any()
                .add(certification::Column::IssuedAt.lt(after.created_at))
                .add(
                    Condition::all()
                        .add(certification::Column::IssuedAt.eq(after.created_at))
                        .add(certification::Column::Id.lt(after.id)),
                ),
        );
    }
    let ordered = select
        .order_by_desc(certification::Column::IssuedAt)
        .order_by_desc(certification::Column::Id);
    Page::read(store, ordered, first).await
}

/// How many certifications [`certifications`] lists over all pages.
///
/// # Errors
/// As [`certifications`].
pub async fn count_certifications(
    store: &Store,
    viewer: &Viewer,
    filter: &CertificationFilter,
) -> Result<u64, ApiError> {
    Ok(certification_listing(viewer, filter)?
        .count(store.db())
        .await?)
}

/// The cursor of a certification in [`certifications`]' order.
pub fn certification_cursor(row: &certification::Model) -> Cursor {
    Cursor {
        created_at: row.issued_at,
        id: row.id,
    }
}

fn certification_listing(
    viewer: &Viewer,
    filter: &CertificationFilter,
) -> Result<Select<certification::Entity>, ApiError> {
    let mut select = certification::Entity::find();
    let enrollments = EnrollmentFilter {
        course_id: filter.course_id,
        organization_id: filter.organization_id,
        user_id: filter.user_id,
        search: filter.search.clone(),
        ..EnrollmentFilter::default()
    };
    if let Some(ids) = rosters::enrollment_ids(viewer, &enrollments)? {
        select = select.filter(certification::Column::EnrollmentId.in_subquery(ids));
    }
    if let Some(at) = filter.expires_before {
        select = select.filter(certification::Column::ExpiresAt.lt(at));
    }
    if let Some(at) = filter.issued_after {
        select = select.filter(certification::Column::IssuedAt.gte(at));
    }
    if let Some(at) = filter.issued_before {
        select = select.filter(certification::Column::IssuedAt.lt(at));
    }
    Ok(select)
}

/// Narrows the audit trail. Every condition given must hold.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub course_id: Option<Uuid>,
    pub section_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    /// Changes of this user's enrollments.
    pub user_id: Option<Uuid>,
    pub enrollment_id: Option<Uuid>,
    /// Changes made by this person.
    pub actor_id: Option<Uuid>,
    /// Changes into one of these statuses.
    pub statuses: Option<Vec<EnrollmentStatus>>,
    /// At or after.
    pub occurred_after: Option<DateTime<Utc>>,
    /// Before.
    pub occurred_before: Option<DateTime<Utc>>,
}

/// The status changes in the viewer's scope that match `filter`, newest first, at most `first`
/// after `after`.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn events(
    store: &Store,
    viewer: &Viewer,
    filter: &EventFilter,
    first: u64,
    after: Option<SerialCursor>,
) -> Result<Page<enrollment_event::Model>, ApiError> {
    let mut select = event_listing(viewer, filter)?;
    if let Some(SerialCursor(id)) = after {
        select = select.filter(enrollment_event::Column::Id.lt(id));
    }
    Page::read(
        store,
        select.order_by_desc(enrollment_event::Column::Id),
        first,
    )
    .await
}

/// How many status changes [`events`] lists over all pages.
///
/// # Errors
/// As [`events`].
pub async fn count_events(
    store: &Store,
    viewer: &Viewer,
    filter: &EventFilter,
) -> Result<u64, ApiError> {
    Ok(event_listing(viewer, filter)?.count(store.db()).await?)
}

fn event_listing(
    viewer: &Viewer,
    filter: &EventFilter,
) -> Result<Select<enrollment_event::Entity>, ApiError> {
    let mut select = enrollment_event::Entity::find();
    let enrollments = EnrollmentFilter {
        course_id: filter.course_id,
        section_id: filter.section_id,
        organization_id: filter.organization_id,
        user_id: filter.user_id,
        ..EnrollmentFilter::default()
    };
    if let Some(ids) = rosters::enrollment_ids(viewer, &enrollments)? {
        select = select.filter(enrollment_event::Column::EnrollmentId.in_subquery(ids));
    }
    if let Some(id) = filter.enrollment_id {
        select = select.filter(enrollment_event::Column::EnrollmentId.eq(id));
    }
    if let Some(id) = filter.actor_id {
        select = select.filter(enrollment_event::Column::ActorId.eq(id));
    }
    if let Some(statuses) = &filter.statuses {
        select = select.filter(enrollment_event::Column::ToStatus.is_in(statuses.iter().copied()));
    }
    if let Some(at) = filter.occurred_after {
        select = select.filter(enrollment_event::Column::At.gte(at));
    }
    if let Some(at) = filter.occurred_before {
        select = select.filter(enrollment_event::Column::At.lt(at));
    }
    Ok(select)
}

/// One line of the certification report: the certification with the names the report shows.
pub struct CertificationRow {
    pub certification: certification::Model,
    pub user: Option<user::Model>,
    pub course: String,
    pub section: String,
    pub completed_at: Option<DateTime<Utc>>,
    pub confirmed_by: Option<user::Model>,
}

/// A page of [`certifications`] with what the report shows of each, read in one statement per
/// relation, however long the page.
///
/// # Errors
/// As [`certifications`].
pub async fn certification_report_page(
    store: &Store,
    viewer: &Viewer,
    filter: &CertificationFilter,
    first: u64,
    after: Option<Cursor>,
) -> Result<Page<CertificationRow>, ApiError> {
    let page = certifications(store, viewer, filter, first, after).await?;
    let db = store.db();
    let enrollments: HashMap<Uuid, enrollment::Model> = by_id(
        enrollment::Entity::find()
            .filter(enrollment::Column::Id.is_in(page.rows.iter().map(|c| c.enrollment_id)))
            .all(db)
            .await?,
        |e| e.id,
    );
    let people = page
        .rows
        .iter()
        .map(|c| c.user_id)
        .chain(enrollments.values().filter_map(|e| e.completed_by));
    let users: HashMap<Uuid, user::Model> = by_id(
        user::Entity::find()
            .filter(user::Column::Id.is_in(people.collect::<Vec<_>>()))
            .all(db)
            .await?,
        |u| u.id,
    );
    let courses: HashMap<Uuid, course::Model> = by_id(
        course::Entity::find()
            .filter(course::Column::Id.is_in(page.rows.iter().map(|c| c.course_id)))
            .all(db)
            .await?,
        |c| c.id,
    );
    let sections: HashMap<Uuid, section::Model> = by_id(
        section::Entity::find()
            .filter(section::Column::Id.is_in(enrollments.values().map(|e| e.section_id)))
            .all(db)
            .await?,
        |s| s.id,
    );
    let rows = page
        .rows
        .into_iter()
        .map(|certification| {
            let enrollment = enrollments.get(&certification.enrollment_id);
            CertificationRow {
                user: users.get(&certification.user_id).cloned(),
                course: courses
                    .get(&certification.course_id)
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                section: enrollment
                    .and_then(|e| sections.get(&e.section_id))
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                completed_at: enrollment.and_then(|e| e.completed_at),
                confirmed_by: enrollment
                    .and_then(|e| e.completed_by)
                    .and_then(|id| users.get(&id).cloned()),
                certification,
            }
        })
        .collect();
    Ok(Page {
        rows,
        has_next_page: page.has_next_page,
    })
}

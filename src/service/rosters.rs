//! The staff side's reads (docs/design.md#who-may-do-what): enrollments listed, filtered and
//! paginated within the viewer's scope, and a section's waitlist and pending approvals.
//!
//! Scope is one rule, applied in SQL: an admin lists every enrollment; anyone else the union of
//! their own, those of the courses they teach, those of their organization's courses when they
//! coordinate it, and those of the sections they assist. Out of scope is absent, never an error.

use chrono::{DateTime, Utc};
use entity::{
    course, enrollment, section,
    types::{EnrollmentStatus, Role},
    user,
};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select, sea_query::Query,
};
use uuid::Uuid;

use super::listing::{Page, name_or_email_like, search_pattern};
use crate::{
    domain::{cursor::Cursor, viewer::Viewer},
    error::ApiError,
    store::Store,
};

/// Narrows a listing of enrollments. Every condition given must hold.
#[derive(Clone, Debug, Default)]
pub struct EnrollmentFilter {
    pub course_id: Option<Uuid>,
    pub section_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub statuses: Option<Vec<EnrollmentStatus>>,
    /// Proxy enrollments made by this staff member.
    pub enrolled_by: Option<Uuid>,
    /// Enrolled at or after.
    pub enrolled_after: Option<DateTime<Utc>>,
    /// Enrolled before.
    pub enrolled_before: Option<DateTime<Utc>>,
    /// The enrolled user's name or e-mail, case-insensitively.
    pub search: Option<String>,
}

/// The enrollments in the viewer's scope that match `filter`, newest first (ties by id), at
/// most `first` after `after`.
///
/// # Errors
/// `BAD_USER_INPUT` for an over-long search; `INTERNAL` when the database fails.
pub async fn enrollments(
    store: &Store,
    viewer: &Viewer,
    filter: &EnrollmentFilter,
    first: u64,
    after: Option<Cursor>,
) -> Result<Page<enrollment::Model>, ApiError> {
    let mut select = listing(viewer, filter)?;
    if let Some(after) = after {
        select = select.filter(
            Condition::any()
                .add(enrollment::Column::EnrolledAt.lt(after.created_at))
                .add(
                    Condition::all()
                        .add(enrollment::Column::EnrolledAt.eq(after.created_at))
                        .add(enrollment::Column::Id.lt(after.id)),
                ),
        );
    }
    let ordered = select
        .order_by_desc(enrollment::Column::EnrolledAt)
        .order_by_desc(enrollment::Column::Id);
    Page::read(store, ordered, first).await
}

/// How many enrollments [`enrollments`] lists over all pages.
///
/// # Errors
/// As [`enrollments`].
pub async fn count_enrollments(
    store: &Store,
    viewer: &Viewer,
    filter: &EnrollmentFilter,
) -> Result<u64, ApiError> {
    Ok(listing(viewer, filter)?.count(store.db()).await?)
}

/// The cursor of an enrollment in [`enrollments`]' order.
pub fn cursor_of(row: &enrollment::Model) -> Cursor {
    Cursor {
        created_at: row.enrolled_at,
        id: row.id,
    }
}

/// The section's waitlist in position order, for its staff.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless staff of the section; `INTERNAL` when the database fails.
pub async fn waitlist(
    store: &Store,
    viewer: &Viewer,
    section: &section::Model,
) -> Result<Vec<enrollment::Model>, ApiError> {
    require_section_staff(store, viewer, section, "see its waitlist").await?;
    Ok(enrollment::Entity::find()
        .filter(enrollment::Column::SectionId.eq(section.id))
        .filter(enrollment::Column::Status.eq(EnrollmentStatus::Waitlisted))
        .order_by_asc(enrollment::Column::WaitlistTicket)
        .all(store.db())
        .await?)
}

/// The PENDING enrollments of a section (or, with `course`, of every section of a course),
/// oldest request first, for those who approve them.
///
/// # Errors
/// `FORBIDDEN` unless staff of the section (of the course, for a course); `INTERNAL` when the
/// database fails.
pub async fn pending_approvals(
    store: &Store,
    viewer: &Viewer,
    scope: Approvals<'_>,
) -> Result<Vec<enrollment::Model>, ApiError> {
    let select =
        enrollment::Entity::find().filter(enrollment::Column::Status.eq(EnrollmentStatus::Pending));
    let select = match scope {
        Approvals::Section(section) => {
            require_section_staff(store, viewer, section, "see its pending approvals").await?;
            select.filter(enrollment::Column::SectionId.eq(section.id))
        }
        Approvals::Course(course) => {
            require_course_staff(viewer, course, "see its pending approvals")?;
            select.filter(enrollment::Column::CourseId.eq(course.id))
        }
    };
    Ok(select
        .order_by_asc(enrollment::Column::EnrolledAt)
        .order_by_asc(enrollment::Column::Id)
        .all(store.db())
        .await?)
}

/// Whose pending approvals.
#[derive(Clone, Copy)]
pub enum Approvals<'a> {
    Section(&'a section::Model),
    Course(&'a course::Model),
}

/// `FORBIDDEN` unless the viewer is staff of the section (of its course, or its assistant).
///
/// # Errors
/// As said; `NOT_FOUND` for a section without its course; `INTERNAL` when the database fails.
pub async fn require_section_staff(
    store: &Store,
    viewer: &Viewer,
    section: &section::Model,
    what: &str,
) -> Result<(), ApiError> {
    if viewer.assists(section) {
        return Ok(());
    }
    let course = course::Entity::find_by_id(section.course_id)
        .one(store.db())
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    require_course_staff(viewer, &course, what)
}

/// The check before a staff report: the viewer staffs something (a course, an organization, or
/// at least a section they assist), and each course, section or organization the report's
/// filter names is theirs to see. A listing leaves out what is out of scope; a report that asks
/// for it by name is refused instead, so that an empty file never passes for a complete one.
///
/// # Errors
/// `FORBIDDEN` as said; `NOT_FOUND` for an unknown course, section or organization;
/// `INTERNAL` when the database fails.
pub async fn require_report_scope(
    store: &Store,
    viewer: &Viewer,
    course_id: Option<Uuid>,
    section_id: Option<Uuid>,
    organization_id: Option<Uuid>,
) -> Result<(), ApiError> {
    let db = store.db();
    // Staff of something: an admin, a coordinator of an organization, a teacher of a course,
    // or a section's assistant (who may be a student). Anyone else has nothing to report on.
    let staffs = match viewer.role() {
        Role::Admin => true,
        Role::Coordinator => viewer.user.organization_id.is_some(),
        role => {
            let teaches = role == Role::Teacher
                && course::Entity::find()
                    .filter(course::Column::TeacherId.eq(viewer.id()))
                    .count(db)
                    .await?
                    > 0;
            teaches
                || section::Entity::find()
                    .filter(section::Column::AssistantId.eq(viewer.id()))
                    .count(db)
                    .await?
                    > 0
        }
    };
    if !staffs {
        return Err(ApiError::forbidden(
            "the reports are for staff of a course or section",
        ));
    }
    if let Some(id) = section_id {
        let section = section::Entity::find_by_id(id)
            .one(db)
            .await?
            .ok_or(ApiError::NotFound("section"))?;
        require_section_staff(store, viewer, &section, "report on it").await?;
    }
    if let Some(id) = course_id {
        let course = course::Entity::find_by_id(id)
            .one(db)
            .await?
            .ok_or(ApiError::NotFound("course"))?;
        if !viewer.can_manage_course(&course) {
            let assisted = section::Entity::find()
                .filter(section::Column::CourseId.eq(id))
                .filter(section::Column::AssistantId.eq(viewer.id()))
                .count(db)
                .await?;
            if assisted == 0 {
                return Err(ApiError::forbidden("only staff of the course report on it"));
            }
        }
    }
    if let Some(id) = organization_id
        && !viewer.is_admin()
        && viewer.user.organization_id != Some(id)
    {
        return Err(ApiError::forbidden(
            "only the organization's own staff report on it",
        ));
    }
    Ok(())
}

/// `FORBIDDEN` unless the viewer is staff of the course.
///
/// # Errors
/// As said.
pub fn require_course_staff(
    viewer: &Viewer,
    course: &course::Model,
    what: &str,
) -> Result<(), ApiError> {
    if viewer.can_manage_course(course) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "only staff of the course {what}"
        )))
    }
}

/// The enrollments of `filter` within the viewer's scope.
fn listing(
    viewer: &Viewer,
    filter: &EnrollmentFilter,
) -> Result<Select<enrollment::Entity>, ApiError> {
    let mut select = enrollment::Entity::find();
    if let Some(scope) = scope(viewer) {
        select = select.filter(scope);
    }
    if let Some(id) = filter.course_id {
        select = select.filter(enrollment::Column::CourseId.eq(id));
    }
    if let Some(id) = filter.section_id {
        select = select.filter(enrollment::Column::SectionId.eq(id));
    }
    if let Some(id) = filter.user_id {
        select = select.filter(enrollment::Column::UserId.eq(id));
    }
    if let Some(id) = filter.organization_id {
        select = select.filter(
            enrollment::Column::CourseId
                .in_subquery(courses_where(course::Column::OrganizationId.eq(id))),
        );
    }
    if let Some(statuses) = &filter.statuses {
        select = select.filter(enrollment::Column::Status.is_in(statuses.iter().copied()));
    }
    if let Some(id) = filter.enrolled_by {
        select = select.filter(enrollment::Column::EnrolledBy.eq(id));
    }
    if let Some(at) = filter.enrolled_after {
        select = select.filter(enrollment::Column::EnrolledAt.gte(at));
    }
    if let Some(at) = filter.enrolled_before {
        select = select.filter(enrollment::Column::EnrolledAt.lt(at));
    }
    if let Some(pattern) = search_pattern(filter.search.as_deref())? {
        let matching = Query::select()
            .column(user::Column::Id)
            .from(user::Entity)
            .cond_where(name_or_email_like(&pattern, viewer))
            .to_owned();
        select = select.filter(enrollment::Column::UserId.in_subquery(matching));
    }
    Ok(select)
}

/// The ids of the enrollments that [`enrollments`] would list for `filter`, as a subquery for
/// the records that hang off an enrollment (its certification, its events), so that those are
/// scoped exactly like the enrollments; `None` when that is every enrollment (an admin with no
/// filter).
///
/// # Errors
/// `BAD_USER_INPUT` for an over-long search.
pub(crate) fn enrollment_ids(
    viewer: &Viewer,
    filter: &EnrollmentFilter,
) -> Result<Option<sea_orm::sea_query::SelectStatement>, ApiError> {
    let select = listing(viewer, filter)?;
    let everything = viewer.is_admin()
        && filter.course_id.is_none()
        && filter.section_id.is_none()
        && filter.user_id.is_none()
        && filter.organization_id.is_none()
        && filter.statuses.is_none()
        && filter.enrolled_by.is_none()
        && filter.enrolled_after.is_none()
        && filter.enrolled_before.is_none()
        && search_pattern(filter.search.as_deref())?.is_none();
    Ok((!everything).then(|| {
        select
            .select_only()
            .column(enrollment::Column::Id)
            .into_query()
    }))
}

/// The viewer's scope as a condition on enrollments; `None` for an admin (everything).
fn scope(viewer: &Viewer) -> Option<Condition> {
    if viewer.is_admin() {
        return None;
    }
    let mut any = Condition::any()
        .add(enrollment::Column::UserId.eq(viewer.id()))
        .add(
            enrollment::Column::CourseId
                .in_subquery(courses_where(course::Column::TeacherId.eq(viewer.id()))),
        )
        .add(
            enrollment::Column::SectionId.in_subquery(
                Query::select()
                    .column(section::Column::Id)
                    .from(section::Entity)
                    .and_where(section::Column::AssistantId.eq(viewer.id()))
                    .to_owned(),
            ),
        );
    if let (Role::Coordinator, Some(org)) = (viewer.role(), viewer.user.organization_id) {
        any = any.add(
            enrollment::Column::CourseId
                .in_subquery(courses_where(course::Column::OrganizationId.eq(org))),
        );
    }
    Some(any)
}

pub(crate) fn courses_where(
    condition: sea_orm::sea_query::SimpleExpr,
) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(course::Column::Id)
        .from(course::Entity)
        .and_where(condition)
        .to_owned()
}

/// One line of the enrollment report: the enrollment with the names the report shows.
pub struct ReportRow {
    pub enrollment: enrollment::Model,
    pub user: Option<user::Model>,
    pub course: String,
    pub section: String,
    pub enrolled_by: Option<user::Model>,
    pub completed_by: Option<user::Model>,
    pub certification_expires_at: Option<DateTime<Utc>>,
}

/// A page of [`enrollments`] with what the report shows of each, read in one statement per
/// relation, however long the page.
///
/// # Errors
/// As [`enrollments`].
pub async fn report_page(
    store: &Store,
    viewer: &Viewer,
    filter: &EnrollmentFilter,
    first: u64,
    after: Option<Cursor>,
) -> Result<Page<ReportRow>, ApiError> {
    use std::collections::HashMap;
    let page = enrollments(store, viewer, filter, first, after).await?;
    let rows = &page.rows;
    let people: Vec<Uuid> = rows
        .iter()
        .flat_map(|e| [Some(e.user_id), e.enrolled_by, e.completed_by])
        .flatten()
        .collect();
    let users: HashMap<Uuid, user::Model> = by_id(
        user::Entity::find()
            .filter(user::Column::Id.is_in(people))
            .all(store.db())
            .await?,
        |u| u.id,
    );
    let courses: HashMap<Uuid, course::Model> = by_id(
        course::Entity::find()
            .filter(course::Column::Id.is_in(rows.iter().map(|e| e.course_id)))
            .all(store.db())
            .await?,
        |c| c.id,
    );
    let sections: HashMap<Uuid, section::Model> = by_id(
        section::Entity::find()
            .filter(section::Column::Id.is_in(rows.iter().map(|e| e.section_id)))
            .all(store.db())
            .await?,
        |s| s.id,
    );
    let certifications: HashMap<Uuid, entity::certification::Model> = by_id(
        entity::certification::Entity::find()
            .filter(entity::certification::Column::EnrollmentId.is_in(rows.iter().map(|e| e.id)))
            .all(store.db())
            .await?,
        |c| c.enrollment_id,
    );
    let person = |id: Option<Uuid>| id.and_then(|id| users.get(&id).cloned());
    let report = page
        .rows
        .into_iter()
        .map(|e| ReportRow {
            user: person(Some(e.user_id)),
            course: courses
                .get(&e.course_id)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            section: sections
                .get(&e.section_id)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            enrolled_by: person(e.enrolled_by),
            completed_by: person(e.completed_by),
            certification_expires_at: certifications.get(&e.id).and_then(|c| c.expires_at),
            enrollment: e,
        })
        .collect();
    Ok(Page {
        rows: report,
        has_next_page: page.has_next_page,
    })
}

pub(crate) fn by_id<K: std::hash::Hash + Eq, V>(
    rows: Vec<V>,
    key: impl Fn(&V) -> K,
) -> std::collections::HashMap<K, V> {
    rows.into_iter().map(|row| (key(&row), row)).collect()
}

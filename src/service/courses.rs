//! Courses: creating and changing them, for the staff in charge, and reading one as the viewer
//! may see it.

use std::collections::{HashSet, VecDeque};

use entity::{course, course_prerequisite, organization, section, types::Role, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::promotion;
use crate::{
    domain::{validate, viewer::Viewer},
    error::ApiError,
    store::{Store, Tx},
};

/// A new course.
#[derive(Clone, Debug, Default)]
pub struct NewCourse {
    pub name: String,
    pub description: Option<String>,
    pub code: Option<String>,
    /// Defaults to the viewer.
    pub teacher_id: Option<Uuid>,
    /// Defaults to the viewer's organization.
    pub organization_id: Option<Uuid>,
    pub prerequisite_ids: Vec<Uuid>,
    /// `None`: the course issues no certificate.
    pub certificate_validity_months: Option<i32>,
}

/// Changes to a course: `None` leaves a field as it is; for the clearable fields,
/// `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct CourseChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub code: Option<Option<String>>,
    pub teacher_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    /// Replaces the whole set.
    pub prerequisite_ids: Option<Vec<Uuid>>,
    pub certificate_validity_months: Option<Option<i32>>,
    pub is_active: Option<bool>,
}

/// Creates a course (and its prerequisite links).
///
/// # Errors
/// `FORBIDDEN` for students and for staff outside the organization (a teacher may only create
/// courses they teach); `BAD_USER_INPUT` naming the field; `NOT_FOUND` for an unknown teacher or
/// organization.
pub async fn create_course(
    store: &Store,
    viewer: &Viewer,
    new: NewCourse,
) -> Result<course::Model, ApiError> {
    let organization_id = new
        .organization_id
        .or(viewer.user.organization_id)
        .ok_or_else(|| {
            ApiError::bad_input("organizationId", "required: you belong to no organization")
        })?;
    let teacher_id = new.teacher_id.unwrap_or(viewer.id());
    let allowed = viewer.is_admin()
        || viewer.coordinates(organization_id)
        || (viewer.role() == Role::Teacher
            && viewer.user.organization_id == Some(organization_id)
            && teacher_id == viewer.id());
    if !allowed {
        return Err(ApiError::forbidden(
            "only a teacher (for their own courses), a coordinator of the organization or an admin \
             may create courses here",
        ));
    }
    let name = validate::name("name", &new.name, validate::COURSE_NAME_MAX)?;
    let description = validate::description(
        "description",
        new.description.as_deref(),
        validate::COURSE_DESCRIPTION_MAX,
    )?;
    let code = validate::course_code(new.code.as_deref())?;
    let validity = validate::validity_months(new.certificate_validity_months)?;
    let prerequisites = &dedup(new.prerequisite_ids);
    let (name, description, code) = (&name, &description, &code);
    store
        .write(|tx| {
            Box::pin(async move {
                organization::Entity::find_by_id(organization_id)
                    .one(tx)
                    .await?
                    .ok_or(ApiError::NotFound("organization"))?;
                check_teacher(tx, teacher_id, organization_id).await?;
                check_courses_exist(tx, prerequisites, "prerequisiteIds").await?;
                let at = tx.now();
                let course = course::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    organization_id: Set(organization_id),
                    teacher_id: Set(teacher_id),
                    name: Set(name.clone()),
                    description: Set(description.clone()),
                    code: Set(code.clone()),
                    is_active: Set(true),
                    certificate_validity_months: Set(validity),
                    created_at: Set(at),
                    updated_at: Set(at),
                }
                .insert(tx)
                .await?;
                replace_prerequisites(tx, course.id, prerequisites).await?;
                Ok(course)
            })
        })
        .await
}

/// Changes a course.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless the viewer manages the course (and, to reassign it, is a
/// coordinator or admin; to move it, an admin); `BAD_USER_INPUT` naming the field, including a
/// prerequisite that would make a cycle.
pub async fn update_course(
    store: &Store,
    viewer: &Viewer,
    id: Uuid,
    changes: CourseChanges,
) -> Result<course::Model, ApiError> {
    let changes = &changes;
    store
        .write(|tx| Box::pin(update_course_in(tx, viewer, id, changes)))
        .await
}

/// `changes` with every field that needs no other row validated and normalised.
fn validated(changes: &CourseChanges) -> Result<CourseChanges, ApiError> {
    let mut changes = changes.clone();
    if let Some(name) = &changes.name {
        changes.name = Some(validate::name("name", name, validate::COURSE_NAME_MAX)?);
    }
    if let Some(Some(text)) = &changes.description {
        changes.description = Some(validate::description(
            "description",
            Some(text),
            validate::COURSE_DESCRIPTION_MAX,
        )?);
    }
    if let Some(Some(code)) = &changes.code {
        changes.code = Some(validate::course_code(Some(code))?);
    }
    if let Some(Some(months)) = changes.certificate_validity_months {
        changes.certificate_validity_months = Some(validate::validity_months(Some(months))?);
    }
    changes.prerequisite_ids = changes.prerequisite_ids.map(dedup);
    Ok(changes)
}

async fn update_course_in(
    tx: &Tx<'_>,
    viewer: &Viewer,
    id: Uuid,
    changes: &CourseChanges,
) -> Result<course::Model, ApiError> {
    let existing = super::for_update(course::Entity::find_by_id(id), tx.get_database_backend())
        .one(tx)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    if !viewer.can_manage_course(&existing) {
        return Err(ApiError::forbidden("you do not manage this course"));
    }
    let changes = &validated(changes)?;
    let mut model: course::ActiveModel = existing.clone().into();
    if let Some(name) = &changes.name {
        model.name = Set(name.clone());
    }
    if let Some(description) = &changes.description {
        model.description = Set(description.clone());
    }
    if let Some(code) = &changes.code {
        model.code = Set(code.clone());
    }
    if let Some(months) = changes.certificate_validity_months {
        model.certificate_validity_months = Set(months);
    }
    if let Some(active) = changes.is_active {
        model.is_active = Set(active);
    }
    let organization_id = changes.organization_id.unwrap_or(existing.organization_id);
    if organization_id != existing.organization_id {
        if !viewer.is_admin() {
            return Err(ApiError::forbidden("only an admin may move a course"));
        }
        organization::Entity::find_by_id(organization_id)
            .one(tx)
            .await?
            .ok_or(ApiError::NotFound("organization"))?;
        model.organization_id = Set(organization_id);
    }
    let teacher_id = changes.teacher_id.unwrap_or(existing.teacher_id);
    if teacher_id != existing.teacher_id || organization_id != existing.organization_id {
        if teacher_id != existing.teacher_id
            && !(viewer.is_admin() || viewer.coordinates(existing.organization_id))
        {
            return Err(ApiError::forbidden(
                "only a coordinator or an admin may reassign a course",
            ));
        }
        check_teacher(tx, teacher_id, organization_id).await?;
        model.teacher_id = Set(teacher_id);
    }
    if let Some(prerequisites) = &changes.prerequisite_ids {
        check_courses_exist(tx, prerequisites, "prerequisiteIds").await?;
        serialize_prerequisite_edits(tx).await?;
        check_no_cycle(tx, id, prerequisites).await?;
    }
    model.updated_at = Set(tx.now());
    let course = model.update(tx).await?;
    if let Some(prerequisites) = &changes.prerequisite_ids {
        replace_prerequisites(tx, id, prerequisites).await?;
    }
    if course.is_active && !existing.is_active {
        fill_sections(tx, &course).await?;
    }
    Ok(course)
}

/// A reactivated course fills the free seats of its active sections from their waitlists
/// (invariant 8), each section locked in id order.
async fn fill_sections(tx: &Tx<'_>, course: &course::Model) -> Result<(), ApiError> {
    let active = section::Entity::find()
        .filter(section::Column::CourseId.eq(course.id))
        .filter(section::Column::IsActive.eq(true));
    promotion::fill_sections(tx, active).await
}

/// A course by id as the viewer may see it: inactive courses only for those who manage them.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn visible_course(
    store: &Store,
    viewer: Option<&Viewer>,
    id: Uuid,
) -> Result<Option<course::Model>, ApiError> {
    let course = course::Entity::find_by_id(id).one(store.db()).await?;
    Ok(course.filter(|c| c.is_active || viewer.is_some_and(|v| v.can_manage_course(c))))
}

/// Every section of the course, inactive ones included, by name: for those who manage it.
///
/// # Errors
/// `FORBIDDEN` for anyone else; `INTERNAL` when the database fails.
pub async fn all_sections(
    store: &Store,
    viewer: &Viewer,
    course: &course::Model,
) -> Result<Vec<section::Model>, ApiError> {
    if !viewer.can_manage_course(course) {
        return Err(ApiError::forbidden(
            "only those who manage the course see its inactive sections",
        ));
    }
    let mut sections = section::Entity::find()
        .filter(section::Column::CourseId.eq(course.id))
        .all(store.db())
        .await?;
    sections.sort_by(crate::domain::order::sections);
    Ok(sections)
}

/// Two concurrent edits of prerequisites could each pass the cycle check and together close a
/// cycle; on PostgreSQL they take turns on a transaction-scoped advisory lock (SQLite's write
/// transaction already serializes them).
async fn serialize_prerequisite_edits(tx: &Tx<'_>) -> Result<(), ApiError> {
    if tx.get_database_backend() == DatabaseBackend::Postgres {
        tx.execute_unprepared("SELECT pg_advisory_xact_lock(hashtext('roster.prerequisites'))")
            .await?;
    }
    Ok(())
}

fn dedup(ids: Vec<Uuid>) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

async fn check_teacher(
    conn: &impl ConnectionTrait,
    teacher_id: Uuid,
    organization_id: Uuid,
) -> Result<(), ApiError> {
    let teacher = user::Entity::find_by_id(teacher_id)
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound("teacher"))?;
    if teacher.role != Role::Teacher {
        return Err(ApiError::bad_input(
            "teacherId",
            "the user is not a TEACHER",
        ));
    }
    if teacher.organization_id != Some(organization_id) {
        return Err(ApiError::bad_input(
            "teacherId",
            "the teacher belongs to another organization",
        ));
    }
    Ok(())
}

async fn check_courses_exist(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
    field: &str,
) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    let found = course::Entity::find()
        .select_only()
        .column(course::Column::Id)
        .filter(course::Column::Id.is_in(ids.iter().copied()))
        .into_tuple::<Uuid>()
        .all(conn)
        .await?;
    match ids.iter().find(|id| !found.contains(id)) {
        Some(missing) => Err(ApiError::bad_input(field, format!("no course {missing}"))),
        None => Ok(()),
    }
}

/// Rejects prerequisites that lead back to the course itself: such a course could never be
/// taken. Walks the prerequisite graph breadth first from the proposed prerequisites.
async fn check_no_cycle(
    conn: &impl ConnectionTrait,
    course_id: Uuid,
    prerequisites: &[Uuid],
) -> Result<(), ApiError> {
    let mut seen: HashSet<Uuid> = prerequisites.iter().copied().collect();
    let mut frontier: VecDeque<Uuid> = prerequisites.iter().copied().collect();
    while !frontier.is_empty() {
        if seen.contains(&course_id) {
            break;
        }
        let batch: Vec<Uuid> = frontier.drain(..).collect();
        let next = course_prerequisite::Entity::find()
            .filter(course_prerequisite::Column::CourseId.is_in(batch))
            .all(conn)
            .await?;
        for edge in next {
            if seen.insert(edge.prerequisite_id) {
                frontier.push_back(edge.prerequisite_id);
            }
        }
    }
    if seen.contains(&course_id) {
        return Err(ApiError::bad_input(
            "prerequisiteIds",
            "a course cannot require itself, directly or through its prerequisites",
        ));
    }
    Ok(())
}

async fn replace_prerequisites(
    txn: &impl ConnectionTrait,
    course_id: Uuid,
    prerequisites: &[Uuid],
) -> Result<(), ApiError> {
    if prerequisites.contains(&course_id) {
        return Err(ApiError::bad_input(
            "prerequisiteIds",
            "a course cannot require itself",
        ));
    }
    course_prerequisite::Entity::delete_many()
        .filter(course_prerequisite::Column::CourseId.eq(course_id))
        .exec(txn)
        .await?;
    if !prerequisites.is_empty() {
        course_prerequisite::Entity::insert_many(prerequisites.iter().map(|p| {
            course_prerequisite::ActiveModel {
                course_id: Set(course_id),
                prerequisite_id: Set(*p),
            }
        }))
        .exec(txn)
        .await?;
    }
    Ok(())
}

/// The course, if the viewer manages it.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` for anyone who does not manage it (`what` says what they asked).
pub async fn managed(
    store: &Store,
    viewer: &Viewer,
    id: Uuid,
    what: &str,
) -> Result<course::Model, ApiError> {
    let course = course::Entity::find_by_id(id)
        .one(store.db())
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    if !viewer.can_manage_course(&course) {
        return Err(ApiError::forbidden(format!(
            "only staff of the course {what}"
        )));
    }
    Ok(course)
}

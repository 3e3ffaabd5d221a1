//! Courses and sections: discovery for everyone, management for the staff in charge.

use std::collections::{HashSet, VecDeque};

use async_graphql::{InputObject, MaybeUndefined};
use entity::{
    course, course_prerequisite, organization, section,
    types::{Meeting, Role, Weekday},
    user,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set,
    sea_query::{Expr, ExprTrait, Func, LikeExpr, Query, SelectStatement},
};
use uuid::Uuid;

use super::{enrollment, for_update};
use crate::{
    auth::Viewer,
    db::{begin_write, now},
    domain::{cursor::Cursor, validate},
    error::ApiError,
    events::{self, Notice},
};

/// Narrows discovery. Every condition given must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct CourseFilter {
    /// Case-insensitive text searched in the name, code and description.
    pub search: Option<String>,
    /// Only courses taught by this teacher.
    pub teacher_id: Option<Uuid>,
    /// `true`: only courses with an active section that has a free seat (or no limit).
    /// `false`: only courses where every active section is full.
    pub has_open_seats: Option<bool>,
    /// Only courses with an active section meeting on this day.
    pub weekday: Option<Weekday>,
}

/// One page of discovery results.
pub struct CoursePage {
    pub courses: Vec<course::Model>,
    pub has_next_page: bool,
}

/// The newest discoverable courses after `after`, at most `first` of them.
///
/// A course is discoverable when it is active and has at least one active section.
///
/// # Errors
/// `BAD_USER_INPUT` for an over-long search; `INTERNAL` when the database fails.
pub async fn discover(
    db: &DatabaseConnection,
    filter: &CourseFilter,
    first: u64,
    after: Option<Cursor>,
) -> Result<CoursePage, ApiError> {
    let mut select = discoverable(filter)?;
    if let Some(after) = after {
        // Keyset pagination: strictly after the last row seen, in (created_at, id) DESC order.
        select = select.filter(
            Condition::any()
                .add(course::Column::CreatedAt.lt(after.created_at))
                .add(
                    Condition::all()
                        .add(course::Column::CreatedAt.eq(after.created_at))
                        .add(course::Column::Id.lt(after.id)),
                ),
        );
    }
    let mut courses = select
        .order_by_desc(course::Column::CreatedAt)
        .order_by_desc(course::Column::Id)
        .limit(first + 1)
        .all(db)
        .await?;
    let has_next_page = courses.len() as u64 > first;
    courses.truncate(first as usize);
    Ok(CoursePage {
        courses,
        has_next_page,
    })
}

/// How many courses match `filter`, for `totalCount`. Only run when a client asks for it.
///
/// # Errors
/// As [`discover`].
pub async fn count_discoverable(
    db: &DatabaseConnection,
    filter: &CourseFilter,
) -> Result<u64, ApiError> {
    Ok(discoverable(filter)?.count(db).await?)
}

fn discoverable(filter: &CourseFilter) -> Result<Select<course::Entity>, ApiError> {
    let mut sections = active_sections_of_outer_course();
    if let Some(day) = filter.weekday {
        sections.and_where(
            Expr::col((section::Entity, section::Column::Weekdays))
                .bit_and(day.bit())
                .ne(0),
        );
    }
    let mut select = course::Entity::find()
        .filter(course::Column::IsActive.eq(true))
        .filter(Expr::exists(sections));
    match filter.has_open_seats {
        Some(true) => {
            let mut open = active_sections_of_outer_course();
            open.cond_where(has_free_seat());
            select = select.filter(Expr::exists(open));
        }
        Some(false) => {
            let mut open = active_sections_of_outer_course();
            open.cond_where(has_free_seat());
            select = select.filter(Expr::exists(open).not());
        }
        None => {}
    }
    if let Some(teacher) = filter.teacher_id {
        select = select.filter(course::Column::TeacherId.eq(teacher));
    }
    if let Some(search) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if search.chars().count() > validate::SEARCH_MAX {
            return Err(ApiError::bad_input(
                "filter.search",
                format!("must be at most {} characters", validate::SEARCH_MAX),
            ));
        }
        let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
        let like = |col: course::Column| {
            Expr::expr(Func::lower(Expr::col((course::Entity, col))))
                .like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        select = select.filter(
            Condition::any()
                .add(like(course::Column::Name))
                .add(like(course::Column::Code))
                .add(like(course::Column::Description)),
        );
    }
    Ok(select)
}

/// `SELECT 1 FROM sections WHERE sections.course_id = courses.id AND sections.is_active`, to be
/// narrowed further and used inside `EXISTS`.
fn active_sections_of_outer_course() -> SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(section::Entity)
        .and_where(
            Expr::col((section::Entity, section::Column::CourseId))
                .equals((course::Entity, course::Column::Id)),
        )
        .and_where(Expr::col((section::Entity, section::Column::IsActive)).eq(true))
        .to_owned()
}

/// Capacity unlimited, or seats held (registered + pending) below it.
fn has_free_seat() -> Condition {
    Condition::any()
        .add(Expr::col((section::Entity, section::Column::Capacity)).is_null())
        .add(
            Expr::col((section::Entity, section::Column::RegisteredCount))
                .add(Expr::col((section::Entity, section::Column::PendingCount)))
                .lt(Expr::col((section::Entity, section::Column::Capacity))),
        )
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A new course. `teacherId` and `organizationId` default to the caller's.
#[derive(InputObject, Clone, Debug)]
pub struct CreateCourseInput {
    /// 1 to 255 characters.
    pub name: String,
    /// At most 5000 characters.
    pub description: Option<String>,
    /// At most 50 letters, digits or `-`, e.g. `CS-101`.
    pub code: Option<String>,
    /// A TEACHER of the organization; defaults to the caller.
    pub teacher_id: Option<Uuid>,
    /// Defaults to the caller's organization. Only admins create courses in another one.
    pub organization_id: Option<Uuid>,
    /// Courses whose certification is needed to enroll.
    #[graphql(default)]
    pub prerequisite_ids: Vec<Uuid>,
    /// How long the certificate issued on completion stays valid; null: no certificate.
    pub certificate_validity_months: Option<i32>,
}

/// Changes to a course; fields left out stay as they are, fields set to null are cleared.
#[derive(InputObject, Clone, Debug, Default)]
pub struct UpdateCourseInput {
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub code: MaybeUndefined<String>,
    /// Reassigning a course is for coordinators and admins.
    pub teacher_id: Option<Uuid>,
    /// Moving a course to another organization is for admins.
    pub organization_id: Option<Uuid>,
    /// Replaces the whole set.
    pub prerequisite_ids: Option<Vec<Uuid>>,
    pub certificate_validity_months: MaybeUndefined<i32>,
    pub is_active: Option<bool>,
}

/// One weekly meeting of a section.
#[derive(InputObject, Clone, Debug)]
pub struct MeetingInput {
    pub weekday: Weekday,
    /// `HH:MM`, 24-hour.
    pub start: String,
    /// `HH:MM`, 24-hour, after `start`.
    pub end: String,
    pub room: Option<String>,
}

impl From<MeetingInput> for Meeting {
    fn from(m: MeetingInput) -> Self {
        Meeting {
            weekday: m.weekday,
            start: m.start,
            end: m.end,
            room: m.room,
        }
    }
}

/// A new section of a course.
#[derive(InputObject, Clone, Debug)]
pub struct CreateSectionInput {
    pub course_id: Uuid,
    /// 1 to 100 characters.
    pub name: String,
    /// Seats; null for unlimited. 0 is rejected.
    pub capacity: Option<i32>,
    #[graphql(default)]
    pub schedule: Vec<MeetingInput>,
    /// New enrollments wait as PENDING (holding a seat) until staff approve them.
    #[graphql(default = false)]
    pub requires_approval: bool,
    /// When full, new enrollments join a waitlist instead of failing with SECTION_FULL.
    #[graphql(default = true)]
    pub waitlist_enabled: bool,
}

/// Changes to a section; fields left out stay as they are. Raising the capacity promotes the
/// earliest waitlisted enrollments into the new seats in the same transaction.
#[derive(InputObject, Clone, Debug, Default)]
pub struct UpdateSectionInput {
    pub name: Option<String>,
    /// Null makes the section unlimited.
    pub capacity: MaybeUndefined<i32>,
    pub schedule: Option<Vec<MeetingInput>>,
    pub requires_approval: Option<bool>,
    pub waitlist_enabled: Option<bool>,
    pub is_active: Option<bool>,
}

/// Creates a course (and its prerequisite links).
///
/// # Errors
/// `FORBIDDEN` for students and for staff outside the organization (a teacher may only create
/// courses they teach); `BAD_USER_INPUT` naming the field; `NOT_FOUND` for an unknown teacher,
/// organization or prerequisite.
pub async fn create_course(
    db: &DatabaseConnection,
    viewer: &Viewer,
    input: CreateCourseInput,
) -> Result<course::Model, ApiError> {
    let organization_id = input
        .organization_id
        .or(viewer.user.organization_id)
        .ok_or_else(|| {
            ApiError::bad_input("organizationId", "required: you belong to no organization")
        })?;
    let teacher_id = input.teacher_id.unwrap_or(viewer.id());
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
    let name = validate::name("name", &input.name, validate::COURSE_NAME_MAX)?;
    let description = validate::description(
        "description",
        input.description.as_deref(),
        validate::COURSE_DESCRIPTION_MAX,
    )?;
    let code = validate::course_code(input.code.as_deref())?;
    let validity = validate::validity_months(input.certificate_validity_months)?;

    organization::Entity::find_by_id(organization_id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("organization"))?;
    check_teacher(db, teacher_id, organization_id).await?;
    let prerequisites = dedup(input.prerequisite_ids);
    check_courses_exist(db, &prerequisites, "prerequisiteIds").await?;

    let at = now();
    let txn = begin_write(db).await?;
    let course = course::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(organization_id),
        teacher_id: Set(teacher_id),
        name: Set(name),
        description: Set(description),
        code: Set(code),
        is_active: Set(true),
        certificate_validity_months: Set(validity),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(&txn)
    .await?;
    replace_prerequisites(&txn, course.id, &prerequisites).await?;
    txn.commit().await?;
    Ok(course)
}

/// Changes a course.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless the viewer manages the course (and, to reassign it, is a
/// coordinator or admin; to move it, an admin); `BAD_USER_INPUT` naming the field, including a
/// prerequisite that would make a cycle.
pub async fn update_course(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    input: UpdateCourseInput,
) -> Result<course::Model, ApiError> {
    let existing = course::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    if !viewer.can_manage_course(&existing) {
        return Err(ApiError::forbidden("you do not manage this course"));
    }
    let mut model: course::ActiveModel = existing.clone().into();
    if let Some(name) = &input.name {
        model.name = Set(validate::name("name", name, validate::COURSE_NAME_MAX)?);
    }
    match &input.description {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => model.description = Set(None),
        MaybeUndefined::Value(text) => {
            model.description = Set(validate::description(
                "description",
                Some(text),
                validate::COURSE_DESCRIPTION_MAX,
            )?)
        }
    }
    match &input.code {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => model.code = Set(None),
        MaybeUndefined::Value(code) => model.code = Set(validate::course_code(Some(code))?),
    }
    match input.certificate_validity_months {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => model.certificate_validity_months = Set(None),
        MaybeUndefined::Value(m) => {
            model.certificate_validity_months = Set(validate::validity_months(Some(m))?)
        }
    }
    if let Some(active) = input.is_active {
        model.is_active = Set(active);
    }
    let organization_id = input.organization_id.unwrap_or(existing.organization_id);
    if organization_id != existing.organization_id {
        if !viewer.is_admin() {
            return Err(ApiError::forbidden("only an admin may move a course"));
        }
        organization::Entity::find_by_id(organization_id)
            .one(db)
            .await?
            .ok_or(ApiError::NotFound("organization"))?;
        model.organization_id = Set(organization_id);
    }
    let teacher_id = input.teacher_id.unwrap_or(existing.teacher_id);
    if teacher_id != existing.teacher_id || organization_id != existing.organization_id {
        if teacher_id != existing.teacher_id
            && !(viewer.is_admin() || viewer.coordinates(existing.organization_id))
        {
            return Err(ApiError::forbidden(
                "only a coordinator or an admin may reassign a course",
            ));
        }
        check_teacher(db, teacher_id, organization_id).await?;
        model.teacher_id = Set(teacher_id);
    }
    let prerequisites = input.prerequisite_ids.map(dedup);
    if let Some(prerequisites) = &prerequisites {
        check_courses_exist(db, prerequisites, "prerequisiteIds").await?;
        check_no_cycle(db, id, prerequisites).await?;
    }
    model.updated_at = Set(now());

    let txn = begin_write(db).await?;
    let course = model.update(&txn).await?;
    if let Some(prerequisites) = &prerequisites {
        replace_prerequisites(&txn, id, prerequisites).await?;
    }
    txn.commit().await?;
    Ok(course)
}

/// Adds a section to a course.
///
/// # Errors
/// `NOT_FOUND` for the course; `FORBIDDEN` unless the viewer manages it; `BAD_USER_INPUT`.
pub async fn create_section(
    db: &DatabaseConnection,
    viewer: &Viewer,
    input: CreateSectionInput,
) -> Result<section::Model, ApiError> {
    let course = course::Entity::find_by_id(input.course_id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    if !viewer.can_manage_course(&course) {
        return Err(ApiError::forbidden("you do not manage this course"));
    }
    let name = validate::name("name", &input.name, validate::SECTION_NAME_MAX)?;
    let capacity = validate::capacity(input.capacity)?;
    let schedule = validate::schedule(input.schedule.into_iter().map(Meeting::from).collect())?;
    let at = now();
    let txn = begin_write(db).await?;
    let section = section::ActiveModel {
        id: Set(Uuid::now_v7()),
        course_id: Set(course.id),
        name: Set(name),
        weekdays: Set(schedule.weekday_mask()),
        schedule: Set(schedule),
        capacity: Set(capacity),
        registered_count: Set(0),
        pending_count: Set(0),
        waitlist_count: Set(0),
        waitlist_seq: Set(0),
        is_active: Set(true),
        requires_approval: Set(input.requires_approval),
        waitlist_enabled: Set(input.waitlist_enabled),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(section)
}

/// Changes a section. When the change frees seats (capacity raised or made unlimited), the
/// earliest waitlisted enrollments are promoted in the same transaction (invariant 3).
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` unless the viewer manages the course; `BAD_USER_INPUT`.
pub async fn update_section(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    input: UpdateSectionInput,
) -> Result<(section::Model, Vec<entity::enrollment::Model>), ApiError> {
    let scope = events::attempt_scope();
    let result = update_section_once(db, viewer, id, input).await;
    if result.is_err() {
        scope.rolled_back();
    }
    result
}

async fn update_section_once(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    input: UpdateSectionInput,
) -> Result<(section::Model, Vec<entity::enrollment::Model>), ApiError> {
    let txn = begin_write(db).await?;
    let existing = for_update(section::Entity::find_by_id(id), txn.get_database_backend())
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound("section"))?;
    let course = course::Entity::find_by_id(existing.course_id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    if !viewer.can_manage_course(&course) {
        return Err(ApiError::forbidden("you do not manage this course"));
    }
    let mut model: section::ActiveModel = existing.clone().into();
    if let Some(name) = &input.name {
        model.name = Set(validate::name("name", name, validate::SECTION_NAME_MAX)?);
    }
    match input.capacity {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => model.capacity = Set(None),
        MaybeUndefined::Value(c) => model.capacity = Set(validate::capacity(Some(c))?),
    }
    if let Some(meetings) = input.schedule {
        let schedule = validate::schedule(meetings.into_iter().map(Meeting::from).collect())?;
        model.weekdays = Set(schedule.weekday_mask());
        model.schedule = Set(schedule);
    }
    if let Some(v) = input.requires_approval {
        model.requires_approval = Set(v);
    }
    if let Some(v) = input.waitlist_enabled {
        model.waitlist_enabled = Set(v);
    }
    if let Some(v) = input.is_active {
        model.is_active = Set(v);
    }
    let at = now();
    model.updated_at = Set(at);
    let updated = model.update(&txn).await?;
    // Capacity and activity change what `sectionSeats` subscribers see.
    events::notify(
        &txn,
        Notice {
            sections: vec![id],
            course_id: updated.course_id,
            event: None,
            seq: 0,
            resync: false,
        },
    )
    .await?;
    let promoted = enrollment::fill_free_seats(&txn, &updated, Some(viewer.id()), at).await?;
    let updated = if promoted.is_empty() {
        updated
    } else {
        section::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ApiError::NotFound("section"))?
    };
    txn.commit().await?;
    Ok((updated, promoted))
}

fn dedup(ids: Vec<Uuid>) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

async fn check_teacher(
    db: &impl ConnectionTrait,
    teacher_id: Uuid,
    organization_id: Uuid,
) -> Result<(), ApiError> {
    let teacher = user::Entity::find_by_id(teacher_id)
        .one(db)
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
    db: &impl ConnectionTrait,
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
        .all(db)
        .await?;
    match ids.iter().find(|id| !found.contains(id)) {
        Some(missing) => Err(ApiError::bad_input(field, format!("no course {missing}"))),
        None => Ok(()),
    }
}

/// Rejects prerequisites that lead back to the course itself: such a course could never be
/// taken. Walks the prerequisite graph breadth first from the proposed prerequisites.
async fn check_no_cycle(
    db: &impl ConnectionTrait,
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
            .all(db)
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

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_in_search_text_are_escaped() {
        assert_eq!(escape_like("100%_a\\b"), "100\\%\\_a\\\\b");
    }
}

//! Course discovery, open to anonymous visitors: the newest discoverable courses, filtered and
//! paginated by keyset.

use entity::{course, section, types::Weekday};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
    sea_query::{Expr, ExprTrait, Func, LikeExpr, Query, SelectStatement},
};
use uuid::Uuid;

use super::{listing::escape_like, seats};
use crate::{
    domain::{cursor::Cursor, validate},
    error::ApiError,
    store::{Store, rows},
};

/// Narrows discovery. Every condition given must hold.
#[derive(Clone, Debug, Default)]
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
    /// Only courses with an active section in this term (the other conditions on sections then
    /// hold in that term).
    pub term_id: Option<Uuid>,
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
    store: &Store,
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
    let select = select
        .order_by_desc(course::Column::CreatedAt)
        .order_by_desc(course::Column::Id)
        .limit(first + 1);
    let mut courses = rows(select, store.db()).await?;
    // No next page after an empty one: there is no cursor to continue from.
    let has_next_page = first > 0 && courses.len() as u64 > first;
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
pub async fn count_discoverable(store: &Store, filter: &CourseFilter) -> Result<u64, ApiError> {
    Ok(discoverable(filter)?.count(store.db()).await?)
}

fn discoverable(filter: &CourseFilter) -> Result<Select<course::Entity>, ApiError> {
    let active_sections_of_outer_course = || {
        let mut sections = active_sections_of_outer_course();
        if let Some(term) = filter.term_id {
            sections.and_where(Expr::col((section::Entity, section::Column::TermId)).eq(term));
        }
        sections
    };
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
            open.cond_where(seats::has_free_seat());
            select = select.filter(Expr::exists(open));
        }
        Some(false) => {
            let mut open = active_sections_of_outer_course();
            open.cond_where(seats::has_free_seat());
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

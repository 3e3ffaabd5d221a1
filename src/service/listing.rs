//! What the paged listings share: a [`Page`] of rows, and case-insensitive search patterns
//! with LIKE's wildcards escaped.

use entity::{types::Role, user};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QuerySelect, Select,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};

use crate::{
    domain::{validate, viewer::Viewer},
    error::ApiError,
    store::Store,
};

/// One page of a listing.
pub struct Page<T> {
    pub rows: Vec<T>,
    pub has_next_page: bool,
}

impl<M: sea_orm::FromQueryResult + Send + Sync> Page<M> {
    /// At most `first` rows of `select` (already ordered and past the cursor), and whether more
    /// follow: one row more is read to know.
    pub(crate) async fn read<E: EntityTrait<Model = M>>(
        store: &Store,
        select: Select<E>,
        first: u64,
    ) -> Result<Self, ApiError> {
        let mut rows = select.limit(first + 1).all(store.db()).await?;
        // No next page after an empty one: there is no cursor to continue from.
        let has_next_page = first > 0 && rows.len() as u64 > first;
        rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
        Ok(Self {
            rows,
            has_next_page,
        })
    }
}

/// `%text%`, lower-cased with LIKE's wildcards escaped; `None` for no search.
///
/// # Errors
/// `BAD_USER_INPUT` for an over-long search.
pub(crate) fn search_pattern(search: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if !search.chars().all(validate::storable) {
        return Err(ApiError::bad_input(
            "filter.search",
            "control characters (such as NUL) are not allowed in text",
        ));
    }
    if search.chars().count() > validate::SEARCH_MAX {
        return Err(ApiError::bad_input(
            "filter.search",
            format!("must be at most {} characters", validate::SEARCH_MAX),
        ));
    }
    Ok(Some(format!("%{}%", escape_like(&search.to_lowercase()))))
}

/// A user's name, or their e-mail where `viewer` may see it, contains the pattern,
/// case-insensitively: the search reveals no more than the answer shows
/// ([`visibility::may_see_email`], here as SQL).
pub(crate) fn name_or_email_like(pattern: &str, viewer: &Viewer) -> Condition {
    let like = |column: user::Column| {
        Expr::expr(Func::lower(Expr::col((user::Entity, column))))
            .like(LikeExpr::new(pattern).escape('\\'))
    };
    let mut email_visible = Condition::any()
        .add(user::Column::Role.ne(Role::Student))
        .add(user::Column::Id.eq(viewer.id()));
    if viewer.is_admin() {
        email_visible = Condition::all();
    } else if viewer.role() == Role::Coordinator
        && let Some(org) = viewer.user.organization_id
    {
        email_visible = email_visible.add(user::Column::OrganizationId.eq(org));
    }
    Condition::any().add(like(user::Column::Name)).add(
        Condition::all()
            .add(like(user::Column::Email))
            .add(email_visible),
    )
}

/// `text` with LIKE's wildcards (`%`, `_`) and its escape (`\\`) escaped.
pub(crate) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_in_search_text_are_escaped() {
        assert_eq!(escape_like("100%_a\\b"), "100\\%\\_a\\\\b");
    }
}

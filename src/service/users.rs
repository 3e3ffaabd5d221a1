//! Users and organizations: as the command line creates them, and the directory staff search.

use entity::{course, organization, types::Role, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Select, Set, sea_query::Query,
};
use uuid::Uuid;

use super::rosters::{Page, name_or_email_like, search_pattern};
use crate::{
    auth::Viewer, domain::cursor::NameCursor, domain::validate, error::ApiError, store::Store,
};

/// What `roster user add` asks for.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// The organization's name; created when it does not exist yet.
    pub organization: Option<String>,
    pub picture: Option<String>,
}

/// Creates a user, and the named organization if it is new.
///
/// # Errors
/// `BAD_USER_INPUT` for an invalid email or name; `CONFLICT` when the email is taken.
pub async fn add_user(store: &Store, new: NewUser) -> Result<user::Model, ApiError> {
    let email = new.email.trim().to_lowercase();
    if email.len() > 320 || !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
        return Err(ApiError::bad_input("email", "must be an email address"));
    }
    let name = validate::name("name", &new.name, 255)?;
    let (new, email, name) = (&new, &email, &name);
    store
        .write(|tx| {
            Box::pin(async move {
                let at = tx.now();
                let organization_id = match new.organization.as_deref().map(str::trim) {
                    None | Some("") => None,
                    Some(org_name) => {
                        let existing = organization::Entity::find()
                            .filter(organization::Column::Name.eq(org_name))
                            .one(tx)
                            .await?;
                        Some(match existing {
                            Some(org) => org.id,
                            None => {
                                organization::ActiveModel {
                                    id: Set(Uuid::now_v7()),
                                    name: Set(validate::name("org", org_name, 255)?),
                                    created_at: Set(at),
                                }
                                .insert(tx)
                                .await?
                                .id
                            }
                        })
                    }
                };
                let user = user::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    email: Set(email.clone()),
                    name: Set(name.clone()),
                    picture: Set(new.picture.clone()),
                    role: Set(new.role),
                    organization_id: Set(organization_id),
                    created_at: Set(at),
                    updated_at: Set(at),
                }
                .insert(tx)
                .await
                .map_err(|e| {
                    ApiError::on_unique_violation(e, || {
                        ApiError::Conflict("a user with this email exists".into())
                    })
                })?;
                Ok(user)
            })
        })
        .await
}

/// The user with this email (compared case-insensitively, as stored).
///
/// # Errors
/// `NOT_FOUND`; `INTERNAL` when the database fails.
pub async fn by_email(store: &Store, email: &str) -> Result<user::Model, ApiError> {
    user::Entity::find()
        .filter(user::Column::Email.eq(email.trim().to_lowercase()))
        .one(store.db())
        .await?
        .ok_or(ApiError::NotFound("user"))
}

/// Narrows the user directory. Every condition given must hold.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Name or e-mail, case-insensitively.
    pub search: Option<String>,
    pub role: Option<Role>,
    pub organization_id: Option<Uuid>,
}

/// The directory staff search to find the person to enroll, alphabetical (ties by id): an admin
/// sees everyone; a coordinator their organization; a teacher their own organization and those of
/// the courses they teach.
///
/// # Errors
/// `FORBIDDEN` for students (teaching assistants included: they enroll nobody);
/// `BAD_USER_INPUT` for an over-long search; `INTERNAL` when the database fails.
pub async fn directory(
    store: &Store,
    viewer: &Viewer,
    filter: &UserFilter,
    first: u64,
    after: Option<NameCursor>,
) -> Result<Page<user::Model>, ApiError> {
    let mut select = listing(viewer, filter)?;
    if let Some(after) = after {
        select = select.filter(
            Condition::any()
                .add(user::Column::Name.gt(after.name.clone()))
                .add(
                    Condition::all()
                        .add(user::Column::Name.eq(after.name))
                        .add(user::Column::Id.gt(after.id)),
                ),
        );
    }
    let ordered = select
        .order_by_asc(user::Column::Name)
        .order_by_asc(user::Column::Id);
    Page::read(store, ordered, first).await
}

/// How many users [`directory`] lists over all pages.
///
/// # Errors
/// As [`directory`].
pub async fn count_directory(
    store: &Store,
    viewer: &Viewer,
    filter: &UserFilter,
) -> Result<u64, ApiError> {
    Ok(listing(viewer, filter)?.count(store.db()).await?)
}

fn listing(viewer: &Viewer, filter: &UserFilter) -> Result<Select<user::Entity>, ApiError> {
    let mut select = user::Entity::find();
    match (viewer.role(), viewer.user.organization_id) {
        (Role::Admin, _) => {}
        (Role::Coordinator, Some(org)) => {
            select = select.filter(user::Column::OrganizationId.eq(org))
        }
        (Role::Teacher, own) => {
            let taught = Query::select()
                .column(course::Column::OrganizationId)
                .from(course::Entity)
                .and_where(course::Column::TeacherId.eq(viewer.id()))
                .to_owned();
            let mut scope = Condition::any().add(user::Column::OrganizationId.in_subquery(taught));
            if let Some(own) = own {
                scope = scope.add(user::Column::OrganizationId.eq(own));
            }
            select = select.filter(scope);
        }
        _ => {
            return Err(ApiError::forbidden(
                "the user directory is for teachers, coordinators and admins",
            ));
        }
    }
    if let Some(role) = filter.role {
        select = select.filter(user::Column::Role.eq(role));
    }
    if let Some(org) = filter.organization_id {
        select = select.filter(user::Column::OrganizationId.eq(org));
    }
    if let Some(pattern) = search_pattern(filter.search.as_deref())? {
        select = select.filter(name_or_email_like(&pattern));
    }
    Ok(select)
}

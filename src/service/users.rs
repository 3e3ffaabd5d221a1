//! Users and organizations: as the command line creates them, and the directory staff search.

use entity::{course, organization, types::Role, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Select, Set, sea_query::Query,
};
use uuid::Uuid;

use super::listing::{Page, name_or_email_like, search_pattern};
use crate::{
    domain::{cursor::NameCursor, validate, viewer::Viewer},
    error::ApiError,
    store::Store,
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
                                    time_zone: Set("UTC".into()),
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
    /// Only users with a registration appointment in this term.
    pub appointment_term_id: Option<Uuid>,
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
        select = select.filter(name_or_email_like(&pattern, viewer));
    }
    if let Some(term) = filter.appointment_term_id {
        let with = Query::select()
            .column(entity::appointment::Column::UserId)
            .from(entity::appointment::Entity)
            .and_where(entity::appointment::Column::TermId.eq(term))
            .to_owned();
        select = select.filter(user::Column::Id.in_subquery(with));
    }
    Ok(select)
}

/// The user a provider's token names (docs/design.md#sign-in): the one who signed in with
/// this identity (`iss` + `sub`) before; else the user with the token's e-mail, linked to the
/// identity only when the provider verified that e-mail; else, with `auto_create`, a new user
/// of the configured organization with the token's name and picture (a STUDENT, or the role
/// the configured claim names). An existing user's role and organization are never changed.
///
/// # Errors
/// `UNAUTHENTICATED` with the reason: no e-mail to find or create the user by, an unverified
/// e-mail matching an existing user, no user and no creation; the database fails.
pub async fn from_identity(
    store: &Store,
    config: &crate::domain::identity::OidcConfig,
    identity: &crate::domain::identity::Identity,
) -> Result<user::Model, ApiError> {
    if let Some(user) = linked(store.db(), identity).await? {
        return Ok(user);
    }
    // Two first sign-ins at once: the second finds the first's rows when it tries again.
    let mut tries = 0;
    loop {
        tries += 1;
        let result = store
            .write(|tx| Box::pin(sign_in(tx, config, identity)))
            .await;
        match result {
            Err(ApiError::Conflict(_)) if tries < 3 => {}
            other => return other,
        }
    }
}

async fn linked(
    conn: &impl sea_orm::ConnectionTrait,
    identity: &crate::domain::identity::Identity,
) -> Result<Option<user::Model>, ApiError> {
    use entity::user_identity;
    Ok(user::Entity::find()
        .inner_join(user_identity::Entity)
        .filter(user_identity::Column::Issuer.eq(&identity.issuer))
        .filter(user_identity::Column::Subject.eq(&identity.subject))
        .one(conn)
        .await?)
}

async fn sign_in(
    tx: &crate::store::Tx<'_>,
    config: &crate::domain::identity::OidcConfig,
    identity: &crate::domain::identity::Identity,
) -> Result<user::Model, ApiError> {
    use entity::user_identity;
    if let Some(user) = linked(tx, identity).await? {
        return Ok(user);
    }
    let refuse = |why: String| ApiError::Unauthenticated(why);
    let email = identity.email.as_deref().ok_or_else(|| {
        refuse(
            "the token carries no e-mail to find or create the user by: ask the provider for \
             the `email` scope, or sign in once with an ID token"
                .into(),
        )
    })?;
    let at = tx.now();
    let existing = user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(tx)
        .await?;
    let user = match existing {
        Some(user) if identity.email_verified => user,
        Some(_) => {
            return Err(refuse(format!(
                "the provider has not verified the e-mail {email}: an existing user is linked \
                 only by a verified e-mail"
            )));
        }
        None if !config.auto_create => {
            return Err(refuse(
                "no user has this identity or e-mail, and ROSTER_OIDC_AUTO_CREATE is off: \
                 ask an administrator to add you"
                    .into(),
            ));
        }
        None => {
            let organization_id = match config.organization.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(name) => Some(organization_named(tx, name).await?),
            };
            let fallback = email.split('@').next().unwrap_or(email).to_owned();
            let name = identity
                .name
                .as_deref()
                .and_then(|n| validate::name("name", n, 255).ok())
                .unwrap_or(fallback);
            user::ActiveModel {
                id: Set(Uuid::now_v7()),
                email: Set(email.to_owned()),
                name: Set(name),
                picture: Set(identity
                    .picture
                    .clone()
                    .filter(|p| p.len() <= 2048 && p.starts_with("https://"))),
                role: Set(role_of(&identity.roles)),
                organization_id: Set(organization_id),
                created_at: Set(at),
                updated_at: Set(at),
            }
            .insert(tx)
            .await
            .map_err(|e| {
                ApiError::on_unique_violation(e, || {
                    ApiError::Conflict("the user was created meanwhile".into())
                })
            })?
        }
    };
    user_identity::ActiveModel {
        issuer: Set(identity.issuer.clone()),
        subject: Set(identity.subject.clone()),
        user_id: Set(user.id),
        created_at: Set(at),
    }
    .insert(tx)
    .await
    .map_err(|e| {
        ApiError::on_unique_violation(e, || {
            ApiError::Conflict("the identity was linked meanwhile".into())
        })
    })?;
    tracing::info!(user = %user.id, issuer = %identity.issuer, "linked an OpenID identity");
    Ok(user)
}

/// The role a new user's claim values name: the highest of `admin`, `coordinator`, `teacher`
/// and `student` among them (case-insensitive, a `roster-` or `roster:` prefix allowed),
/// STUDENT when none does.
fn role_of(values: &[String]) -> Role {
    values
        .iter()
        .filter_map(|value| {
            let value = value.trim().to_lowercase();
            let bare = value.strip_prefix("roster").map_or(value.as_str(), |rest| {
                rest.trim_start_matches(['-', '_', ':', '.'])
            });
            match bare {
                "admin" => Some((3, Role::Admin)),
                "coordinator" => Some((2, Role::Coordinator)),
                "teacher" => Some((1, Role::Teacher)),
                "student" => Some((0, Role::Student)),
                _ => None,
            }
        })
        .max_by_key(|(rank, _)| *rank)
        .map_or(Role::Student, |(_, role)| role)
}

/// The organization named `name`, created when missing.
async fn organization_named(tx: &crate::store::Tx<'_>, name: &str) -> Result<Uuid, ApiError> {
    if let Some(org) = organization::Entity::find()
        .filter(organization::Column::Name.eq(name))
        .one(tx)
        .await?
    {
        return Ok(org.id);
    }
    Ok(organization::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(validate::name("organization", name, 255)?),
        time_zone: Set("UTC".into()),
        created_at: Set(tx.now()),
    }
    .insert(tx)
    .await
    .map_err(|e| {
        ApiError::on_unique_violation(e, || {
            ApiError::Conflict("the organization was created meanwhile".into())
        })
    })?
    .id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_names_the_highest_role_it_holds() {
        let values = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(role_of(&values(&[])), Role::Student);
        assert_eq!(role_of(&values(&["staff", "Teacher"])), Role::Teacher);
        assert_eq!(
            role_of(&values(&["roster-teacher", "roster:coordinator"])),
            Role::Coordinator
        );
        assert_eq!(role_of(&values(&["everyone", "ADMIN"])), Role::Admin);
        assert_eq!(role_of(&values(&["administrators"])), Role::Student);
    }
}

//! Users and organizations, as the command line creates them.

use entity::{organization, types::Role, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::{domain::validate, error::ApiError, store::Store};

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

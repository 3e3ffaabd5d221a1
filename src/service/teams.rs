//! Teams (seed 001): a coach creates one with a unique name and a pass key; members join with
//! the key and leave. Pass keys are stored as Argon2 hashes and checked off the async runtime;
//! wrong keys are counted per team and user in the database, so the guessing throttle holds
//! across replicas and restarts.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use chrono::{DateTime, Duration, Utc};
use entity::{team, team_join_failure, team_member, types::Role, user};
use rand::Rng;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
    sea_query::{Expr, ExprTrait, Func},
};
use uuid::Uuid;

use crate::{
    auth::Viewer,
    clock::Clock,
    domain::validate::{self, TEAM_NAME_MAX},
    error::ApiError,
};

/// Wrong pass keys allowed for one team from one user within [`FAILURE_WINDOW`].
pub const FAILURE_LIMIT: usize = 5;
/// The sliding window over which wrong pass keys are counted.
pub const FAILURE_WINDOW: Duration = Duration::minutes(15);

/// Creates a team coached by the viewer, who must be a teacher, coordinator or admin.
///
/// # Errors
/// `FORBIDDEN` for students; `BAD_USER_INPUT` for the name or pass key; `CONFLICT` when a team
/// of that name exists, in any case.
pub async fn create_team(
    db: &DatabaseConnection,
    viewer: &Viewer,
    name: &str,
    pass_key: &str,
    at: DateTime<Utc>,
) -> Result<team::Model, ApiError> {
    if viewer.role() == Role::Student {
        return Err(ApiError::forbidden(
            "only teachers, coordinators and admins coach teams",
        ));
    }
    let name = validate::name("name", name, TEAM_NAME_MAX)?;
    let hash = hash_pass_key(validate::pass_key(pass_key)?).await?;
    team::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        pass_key_hash: Set(hash),
        coach_id: Set(viewer.id()),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await
    .map_err(|e| ApiError::on_unique_violation(e, name_taken))
}

/// Joins the team named `name` (case-insensitively) with its pass key.
///
/// After [`FAILURE_LIMIT`] wrong keys within [`FAILURE_WINDOW`], every attempt by that user on
/// that team fails with `TOO_MANY_ATTEMPTS` until the oldest of them leaves the window; a
/// successful join clears the count. Each attempt is recorded before the key is checked, so
/// concurrent guesses cannot slip past the limit together.
///
/// # Errors
/// `NOT_FOUND`; `CONFLICT` for a member; `TOO_MANY_ATTEMPTS`; `INVALID_PASS_KEY`.
pub async fn join_team(
    db: &DatabaseConnection,
    viewer: &Viewer,
    name: &str,
    pass_key: &str,
    clock: &Clock,
) -> Result<team::Model, ApiError> {
    let team = by_name(db, name).await?.ok_or(ApiError::NotFound("team"))?;
    if is_member(db, team.id, viewer.id()).await? {
        return Err(ApiError::Conflict("already a member of this team".into()));
    }
    let at = clock.now();
    let attempt = team_join_failure::ActiveModel {
        team_id: Set(team.id),
        user_id: Set(viewer.id()),
        failed_at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let recent: Vec<DateTime<Utc>> = team_join_failure::Entity::find()
        .filter(team_join_failure::Column::TeamId.eq(team.id))
        .filter(team_join_failure::Column::UserId.eq(viewer.id()))
        .filter(team_join_failure::Column::FailedAt.gt(at - FAILURE_WINDOW))
        .filter(team_join_failure::Column::Id.lt(attempt.id))
        .order_by_desc(team_join_failure::Column::FailedAt)
        .limit(FAILURE_LIMIT as u64)
        .all(db)
        .await?
        .into_iter()
        .map(|f| f.failed_at)
        .collect();
    if recent.len() >= FAILURE_LIMIT {
        // Attempts while locked out are not failures: they do not extend the lock.
        team_join_failure::Entity::delete_by_id(attempt.id)
            .exec(db)
            .await?;
        let frees_at = recent[FAILURE_LIMIT - 1] + FAILURE_WINDOW;
        return Err(ApiError::TooManyAttempts {
            retry_after_seconds: Ord::max((frees_at - at).num_seconds(), 1),
        });
    }
    if !verify_pass_key(pass_key, &team.pass_key_hash).await? {
        return Err(ApiError::InvalidPassKey);
    }
    let txn = db.begin().await?;
    team_member::ActiveModel {
        team_id: Set(team.id),
        user_id: Set(viewer.id()),
        joined_at: Set(at),
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        ApiError::on_unique_violation(e, || {
            ApiError::Conflict("already a member of this team".into())
        })
    })?;
    team_join_failure::Entity::delete_many()
        .filter(team_join_failure::Column::TeamId.eq(team.id))
        .filter(team_join_failure::Column::UserId.eq(viewer.id()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(team)
}

/// The viewer leaves a team.
///
/// # Errors
/// `NOT_FOUND` when the team does not exist or the viewer is not a member.
pub async fn leave_team(
    db: &DatabaseConnection,
    viewer: &Viewer,
    team_id: Uuid,
) -> Result<bool, ApiError> {
    team::Entity::find_by_id(team_id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("team"))?;
    let deleted = team_member::Entity::delete_many()
        .filter(team_member::Column::TeamId.eq(team_id))
        .filter(team_member::Column::UserId.eq(viewer.id()))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(ApiError::NotFound("team membership"));
    }
    Ok(true)
}

/// The coach (or staff over the coach: a coordinator of the coach's organization, an admin)
/// removes a member.
///
/// # Errors
/// `NOT_FOUND` for an unknown team or a user who is not a member; `FORBIDDEN` for anyone else.
pub async fn remove_member(
    db: &DatabaseConnection,
    viewer: &Viewer,
    team_id: Uuid,
    user_id: Uuid,
) -> Result<team::Model, ApiError> {
    let team = managed_team(db, viewer, team_id).await?;
    let deleted = team_member::Entity::delete_many()
        .filter(team_member::Column::TeamId.eq(team_id))
        .filter(team_member::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(ApiError::NotFound("team member"));
    }
    Ok(team)
}

/// Renames a team or rotates its pass key (the coach, or staff over the coach). Members stay.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN`; `BAD_USER_INPUT`; `CONFLICT` for a name taken by another team.
pub async fn update_team(
    db: &DatabaseConnection,
    viewer: &Viewer,
    team_id: Uuid,
    name: Option<&str>,
    pass_key: Option<&str>,
    at: DateTime<Utc>,
) -> Result<team::Model, ApiError> {
    let team = managed_team(db, viewer, team_id).await?;
    let mut model: team::ActiveModel = team.into();
    if let Some(name) = name {
        model.name = Set(validate::name("name", name, TEAM_NAME_MAX)?);
    }
    if let Some(key) = pass_key {
        model.pass_key_hash = Set(hash_pass_key(validate::pass_key(key)?).await?);
    }
    model.updated_at = Set(at);
    model
        .update(db)
        .await
        .map_err(|e| ApiError::on_unique_violation(e, name_taken))
}

/// The team named `name`, compared case-insensitively as the unique index does.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<team::Model>, ApiError> {
    Ok(team::Entity::find()
        .filter(
            Expr::expr(Func::lower(Expr::col(team::Column::Name)))
                .eq(Func::lower(Expr::val(name.trim()))),
        )
        .one(db)
        .await?)
}

/// The teams `coach_id` coaches, oldest first.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn by_coach(
    db: &DatabaseConnection,
    coach_id: Uuid,
) -> Result<Vec<team::Model>, ApiError> {
    Ok(team::Entity::find()
        .filter(team::Column::CoachId.eq(coach_id))
        .order_by_asc(team::Column::CreatedAt)
        .order_by_asc(team::Column::Id)
        .all(db)
        .await?)
}

async fn is_member(
    db: &DatabaseConnection,
    team_id: Uuid,
    user_id: Uuid,
) -> Result<bool, ApiError> {
    Ok(team_member::Entity::find()
        .filter(team_member::Column::TeamId.eq(team_id))
        .filter(team_member::Column::UserId.eq(user_id))
        .count(db)
        .await?
        > 0)
}

/// The team, if the viewer may manage it: its coach, an admin, or a coordinator of the coach's
/// organization.
async fn managed_team(
    db: &DatabaseConnection,
    viewer: &Viewer,
    team_id: Uuid,
) -> Result<team::Model, ApiError> {
    let (team, coach) = team::Entity::find_by_id(team_id)
        .find_also_related(user::Entity)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("team"))?;
    let allowed = team.coach_id == viewer.id()
        || viewer.is_admin()
        || coach
            .and_then(|c| c.organization_id)
            .is_some_and(|org| viewer.coordinates(org));
    if !allowed {
        return Err(ApiError::forbidden(
            "only the team's coach or staff over the coach manage it",
        ));
    }
    Ok(team)
}

fn name_taken() -> ApiError {
    ApiError::Conflict("a team with this name already exists".into())
}

/// An Argon2id PHC string for `key`, with a fresh random salt, computed off the async runtime.
async fn hash_pass_key(key: &str) -> Result<String, ApiError> {
    let key = key.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt_bytes: [u8; 16] = rand::rng().random();
        let salt = SaltString::encode_b64(&salt_bytes).map_err(internal)?;
        Argon2::default()
            .hash_password(key.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(internal)
    })
    .await
    .map_err(|e| ApiError::Internal(Box::new(e)))?
}

/// Whether `key` matches the stored hash; Argon2's verification compares in constant time.
async fn verify_pass_key(key: &str, hash: &str) -> Result<bool, ApiError> {
    let (key, hash) = (key.to_owned(), hash.to_owned());
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(internal)?;
        Ok(Argon2::default()
            .verify_password(key.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| ApiError::Internal(Box::new(e)))?
}

fn internal(e: argon2::password_hash::Error) -> ApiError {
    ApiError::Internal(e.to_string().into())
}

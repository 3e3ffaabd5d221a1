//! Teams (seed 001): a coach creates one with a unique name and a pass key; members join with
//! the key and leave. Pass keys are stored as Argon2 hashes and checked off the async runtime;
//! wrong keys are counted per team and user in the database, so the guessing throttle holds
//! across replicas and restarts.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use chrono::{DateTime, Duration, Utc};
use entity::{team, team_join_failure, team_member, types::Role, user};
use rand::Rng;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
    sea_query::{Expr, ExprTrait, Func},
};
use uuid::Uuid;

use super::for_update;
use crate::{
    domain::{
        validate::{self, TEAM_NAME_MAX},
        viewer::Viewer,
    },
    error::ApiError,
    store::{Store, Tx},
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
    store: &Store,
    viewer: &Viewer,
    name: &str,
    pass_key: &str,
) -> Result<team::Model, ApiError> {
    if viewer.role() == Role::Student {
        return Err(ApiError::forbidden(
            "only teachers, coordinators and admins coach teams",
        ));
    }
    let name = validate::name("name", name, TEAM_NAME_MAX)?;
    let hash = &hash_pass_key(validate::pass_key(pass_key)?).await?;
    let name = &name;
    store
        .write(|tx| {
            Box::pin(async move {
                let at = tx.now();
                team::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    name: Set(name.clone()),
                    pass_key_hash: Set(hash.clone()),
                    coach_id: Set(viewer.id()),
                    created_at: Set(at),
                    updated_at: Set(at),
                }
                .insert(tx)
                .await
                .map_err(|e| ApiError::on_unique_violation(e, name_taken))
            })
        })
        .await
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
    store: &Store,
    viewer: &Viewer,
    name: &str,
    pass_key: &str,
) -> Result<team::Model, ApiError> {
    let team = by_name(store.db(), name)
        .await?
        .ok_or(ApiError::NotFound("team"))?;
    let team = &team;
    // The attempt is recorded (and the throttle checked) in a write of its own that commits
    // before the slow key check, so concurrent guesses all count.
    store
        .write(|tx| Box::pin(record_attempt(tx, viewer, team)))
        .await?;
    if !verify_pass_key(pass_key, &team.pass_key_hash).await? {
        return Err(ApiError::InvalidPassKey);
    }
    store
        .write(|tx| {
            Box::pin(async move {
                team_member::ActiveModel {
                    team_id: Set(team.id),
                    user_id: Set(viewer.id()),
                    joined_at: Set(tx.now()),
                }
                .insert(tx)
                .await
                .map_err(|e| ApiError::on_unique_violation(e, already_member))?;
                team_join_failure::Entity::delete_many()
                    .filter(team_join_failure::Column::TeamId.eq(team.id))
                    .filter(team_join_failure::Column::UserId.eq(viewer.id()))
                    .exec(tx)
                    .await?;
                Ok(())
            })
        })
        .await?;
    Ok(team.clone())
}

/// Records one join attempt as a failure until it succeeds, and refuses it when the user has
/// had [`FAILURE_LIMIT`] failures on the team within [`FAILURE_WINDOW`].
async fn record_attempt(tx: &Tx<'_>, viewer: &Viewer, team: &team::Model) -> Result<(), ApiError> {
    // Concurrent attempts by one user take turns, so none of them counts before another is
    // recorded (SQLite's write transaction already serializes them).
    for_update(
        user::Entity::find_by_id(viewer.id()),
        tx.get_database_backend(),
    )
    .one(tx)
    .await?;
    if is_member(tx, team.id, viewer.id()).await? {
        return Err(already_member());
    }
    let at = tx.now();
    let recent: Vec<DateTime<Utc>> = team_join_failure::Entity::find()
        .filter(team_join_failure::Column::TeamId.eq(team.id))
        .filter(team_join_failure::Column::UserId.eq(viewer.id()))
        .filter(team_join_failure::Column::FailedAt.gt(at - FAILURE_WINDOW))
        .order_by_desc(team_join_failure::Column::FailedAt)
        .limit(FAILURE_LIMIT as u64)
        .all(tx)
        .await?
        .into_iter()
        .map(|f| f.failed_at)
        .collect();
    if recent.len() >= FAILURE_LIMIT {
        // Attempts while locked out are not failures: they do not extend the lock.
        let frees_at = recent[FAILURE_LIMIT - 1] + FAILURE_WINDOW;
        return Err(ApiError::TooManyAttempts {
            retry_after_seconds: Ord::max((frees_at - at).num_seconds(), 1),
        });
    }
    team_join_failure::ActiveModel {
        team_id: Set(team.id),
        user_id: Set(viewer.id()),
        failed_at: Set(at),
        ..Default::default()
    }
    .insert(tx)
    .await?;
    Ok(())
}

/// The viewer leaves a team.
///
/// # Errors
/// `NOT_FOUND` when the team does not exist or the viewer is not a member.
pub async fn leave_team(store: &Store, viewer: &Viewer, team_id: Uuid) -> Result<bool, ApiError> {
    store
        .write(|tx| {
            Box::pin(async move {
                team::Entity::find_by_id(team_id)
                    .one(tx)
                    .await?
                    .ok_or(ApiError::NotFound("team"))?;
                remove(tx, team_id, viewer.id(), "team membership").await?;
                Ok(true)
            })
        })
        .await
}

/// The coach (or staff over the coach: a coordinator of the coach's organization, an admin)
/// removes a member.
///
/// # Errors
/// `NOT_FOUND` for an unknown team or a user who is not a member; `FORBIDDEN` for anyone else.
pub async fn remove_member(
    store: &Store,
    viewer: &Viewer,
    team_id: Uuid,
    user_id: Uuid,
) -> Result<team::Model, ApiError> {
    store
        .write(|tx| {
            Box::pin(async move {
                let team = managed_team(tx, viewer, team_id).await?;
                remove(tx, team_id, user_id, "team member").await?;
                Ok(team)
            })
        })
        .await
}

/// Deletes one membership, or `NOT_FOUND` naming `what` when there is none.
async fn remove(
    tx: &Tx<'_>,
    team_id: Uuid,
    user_id: Uuid,
    what: &'static str,
) -> Result<(), ApiError> {
    let deleted = team_member::Entity::delete_many()
        .filter(team_member::Column::TeamId.eq(team_id))
        .filter(team_member::Column::UserId.eq(user_id))
        .exec(tx)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(ApiError::NotFound(what));
    }
    Ok(())
}

/// Renames a team or rotates its pass key (the coach, or staff over the coach). Members stay.
///
/// # Errors
/// `NOT_FOUND`; `FORBIDDEN`; `BAD_USER_INPUT`; `CONFLICT` for a name taken by another team.
pub async fn update_team(
    store: &Store,
    viewer: &Viewer,
    team_id: Uuid,
    name: Option<&str>,
    pass_key: Option<&str>,
) -> Result<team::Model, ApiError> {
    // Checked (and hashed, slowly) before the write; who may manage the team is checked in it.
    let name = &name
        .map(|name| validate::name("name", name, TEAM_NAME_MAX))
        .transpose()?;
    let hash = &match pass_key {
        Some(key) => Some(hash_pass_key(validate::pass_key(key)?).await?),
        None => None,
    };
    store
        .write(|tx| {
            Box::pin(async move {
                let team = managed_team(tx, viewer, team_id).await?;
                let mut model: team::ActiveModel = team.into();
                if let Some(name) = name {
                    model.name = Set(name.clone());
                }
                if let Some(hash) = hash {
                    model.pass_key_hash = Set(hash.clone());
                }
                model.updated_at = Set(tx.now());
                model
                    .update(tx)
                    .await
                    .map_err(|e| ApiError::on_unique_violation(e, name_taken))
            })
        })
        .await
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
pub async fn by_coach(store: &Store, coach_id: Uuid) -> Result<Vec<team::Model>, ApiError> {
    Ok(team::Entity::find()
        .filter(team::Column::CoachId.eq(coach_id))
        .order_by_asc(team::Column::CreatedAt)
        .order_by_asc(team::Column::Id)
        .all(store.db())
        .await?)
}

async fn is_member(
    conn: &impl ConnectionTrait,
    team_id: Uuid,
    user_id: Uuid,
) -> Result<bool, ApiError> {
    Ok(team_member::Entity::find()
        .filter(team_member::Column::TeamId.eq(team_id))
        .filter(team_member::Column::UserId.eq(user_id))
        .count(conn)
        .await?
        > 0)
}

/// The team, if the viewer may manage it: its coach, an admin, or a coordinator of the coach's
/// organization.
async fn managed_team(
    conn: &impl ConnectionTrait,
    viewer: &Viewer,
    team_id: Uuid,
) -> Result<team::Model, ApiError> {
    let (team, coach) = team::Entity::find_by_id(team_id)
        .find_also_related(user::Entity)
        .one(conn)
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

fn already_member() -> ApiError {
    ApiError::Conflict("already a member of this team".into())
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

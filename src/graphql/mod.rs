//! The GraphQL schema: roots split per domain, types wrapping entity models, per-request loaders.

pub mod errors;
mod hooks;
pub mod limits;
pub mod loaders;
mod mutation;
mod observe;
mod query;
mod subscription;
pub mod types;

use std::time::Duration;

use async_graphql::{
    Context, Schema,
    dataloader::{DataLoader, HashMapCache},
    extensions::apollo_persisted_queries::{ApolloPersistedQueries, LruCacheStorage},
};
use sea_orm::DatabaseConnection;

use crate::{
    answers::Reusable, auth::Viewer, clock::Clock, error::ApiError, events::Bus,
    graphql::limits::Limits,
};
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema's shape, for `roster schema` and tests of the SDL.
pub fn build_schema() -> AppSchema {
    build_schema_with(
        Bus::default(),
        true,
        Duration::from_secs(1),
        &Limits::default(),
    )
}

/// The schema serving requests: what mutations buffer goes to `bus` once they have committed
/// (`local`: published here, as on SQLite; otherwise PostgreSQL delivers it); operations slower
/// than `slow` are logged; `limits` bound what one request may ask. Request-specific data
/// ([`RequestContext`]) is attached per request.
pub fn build_schema_with(bus: Bus, local: bool, slow: Duration, limits: &Limits) -> AppSchema {
    let builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .extension(hooks::Hooks {
        slow,
        bus,
        local,
        root_fields: limits.root_fields,
        aliases: limits.aliases,
    })
    .extension(ApolloPersistedQueries::new(LruCacheStorage::new(
        PERSISTED_QUERIES,
    )))
    .limit_depth(limits.depth)
    .limit_complexity(limits.complexity);
    if limits.introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// Automatic persisted queries remembered per replica.
const PERSISTED_QUERIES: usize = 1024;

/// Everything a resolver needs for one request.
pub struct RequestContext {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// The signed-in user, `None` for anonymous requests.
    pub viewer: Option<Viewer>,
    /// Batches lookups made while resolving this request; dropped with it, so nothing goes stale.
    pub loader: DataLoader<loaders::DbLoader, HashMapCache>,
    /// Largest `first` accepted by connection fields.
    pub max_page_size: u64,
    /// The time that time-based rules read.
    pub clock: Clock,
    /// Where committed changes are announced to this replica's subscriptions.
    pub bus: Bus,
    /// Cleared when the answer depends on more than the database (see [`crate::answers`]).
    pub reusable: Reusable,
}

impl RequestContext {
    pub fn new(db: DatabaseConnection, viewer: Option<Viewer>, max_page_size: u64) -> Self {
        // Cached for the request's lifetime only: lists prime it with one batch per relation
        // (see `Course::prime`), and every field then reads from it.
        let loader = DataLoader::with_cache(
            loaders::DbLoader::new(db.clone(), viewer.as_ref().map(Viewer::id)),
            tokio::spawn,
            HashMapCache::default(),
        );
        Self {
            db,
            viewer,
            loader,
            max_page_size,
            clock: Clock::default(),
            bus: Bus::default(),
            reusable: Reusable::new(),
        }
    }

    /// The viewer, or `UNAUTHENTICATED` for anonymous requests.
    pub fn require_viewer(&self) -> Result<&Viewer, ApiError> {
        self.viewer.as_ref().ok_or_else(ApiError::sign_in_required)
    }
}

/// The request's [`RequestContext`]. Its absence is a server bug, reported as `INTERNAL`.
pub fn request<'a>(ctx: &Context<'a>) -> Result<&'a RequestContext, ApiError> {
    ctx.data::<RequestContext>()
        .map_err(|_| ApiError::Internal("request context missing".into()))
}

/// The pool and the signed-in viewer, or `UNAUTHENTICATED` for anonymous requests: what every
/// mutation starts with.
pub fn signed_in<'a>(ctx: &Context<'a>) -> Result<(&'a DatabaseConnection, &'a Viewer), ApiError> {
    let rc = request(ctx)?;
    Ok((&rc.db, rc.require_viewer()?))
}

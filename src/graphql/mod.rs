//! The GraphQL schema: roots split per domain, types wrapping entity models, per-request loaders.

mod coercion;
pub mod errors;
mod hooks;
pub mod inputs;
pub mod limits;
pub mod loaders;
mod mutation;
mod observe;
mod query;
pub mod strings;
mod subscription;
mod time;
pub mod types;

use std::time::Duration;

use crate::{
    domain::viewer::Viewer, error::ApiError, graphql::limits::Limits, response_cache::Reusable,
    store::Store,
};
use async_graphql::{
    Context, Schema,
    dataloader::{DataLoader, HashMapCache},
    extensions::apollo_persisted_queries::{ApolloPersistedQueries, LruCacheStorage},
};
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::{SourceStream, SubscriptionRoot};

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;
pub use hooks::{Hooks, PersistedQueries};
pub use observe::refused;

/// The schema's shape, for `roster schema` and tests of the SDL.
pub fn build_schema() -> AppSchema {
    build_schema_with(&Limits::default())
}

/// The hooks every operation runs with: operations slower than `slow` are logged; `limits`
/// bound what one request may ask.
pub fn hooks(slow: Duration, limits: &Limits) -> Hooks {
    Hooks {
        slow,
        root_fields: limits.root_fields,
        aliases: limits.aliases,
        introspection: limits.introspection,
    }
}

/// The schema serving HTTP requests, with no extension: [`Hooks::execute`] runs the hooks
/// around it. Request-specific data ([`RequestContext`]) is attached per request.
pub fn build_schema_with(limits: &Limits) -> AppSchema {
    finish(
        Schema::build(
            QueryRoot::default(),
            MutationRoot::default(),
            SubscriptionRoot,
        ),
        limits,
    )
}

/// The schema serving WebSocket connections: the same, with the hooks and persisted queries as
/// extensions, since async-graphql-axum drives the executor there.
pub fn build_socket_schema(slow: Duration, limits: &Limits) -> AppSchema {
    finish(
        Schema::build(
            QueryRoot::default(),
            MutationRoot::default(),
            SubscriptionRoot,
        )
        .extension(hooks(slow, limits))
        .extension(ApolloPersistedQueries::new(LruCacheStorage::new(
            PERSISTED_QUERIES,
        ))),
        limits,
    )
}

fn finish(
    builder: async_graphql::SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot>,
    limits: &Limits,
) -> AppSchema {
    let builder = builder
        .limit_depth(limits.depth)
        .limit_complexity(limits.complexity);
    if limits.introspection {
        builder.finish()
    } else {
        // Off means off: no schema, and no "did you mean" naming fields in error messages.
        builder
            .disable_introspection()
            .disable_suggestions()
            .finish()
    }
}

/// Automatic persisted queries remembered per replica.
pub const PERSISTED_QUERIES: usize = 1024;

/// Everything a resolver needs for one request.
pub struct RequestContext {
    /// The database, the clock and the bus the services run on.
    pub store: Store,
    /// The signed-in user, `None` for anonymous requests.
    pub viewer: Option<Viewer>,
    /// Batches lookups made while resolving this request; dropped with it, so nothing goes stale.
    pub loader: DataLoader<loaders::DbLoader, HashMapCache>,
    /// Largest `first` accepted by connection fields.
    pub max_page_size: u64,
    /// Cleared when the answer depends on more than the database (see
    /// [`crate::response_cache`]).
    pub reusable: Reusable,
}

/// How long a request's loader keeps what it loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// For the request (a query or mutation): lists prime it with one batch per relation (see
    /// `Course::prime`), and every field then reads from it.
    PerRequest,
    /// Not at all: a subscription lives longer than any snapshot.
    Off,
}

impl RequestContext {
    pub fn new(
        store: Store,
        viewer: Option<Viewer>,
        max_page_size: u64,
        caching: Caching,
        reusable: Reusable,
    ) -> Self {
        let loader = DataLoader::with_cache(
            loaders::DbLoader::new(store.db().clone(), viewer.as_ref().map(Viewer::id)),
            async_graphql::runtime::TokioSpawner::current(),
            async_graphql::runtime::TokioTimer::default(),
            HashMapCache::default(),
        );
        loader.enable_all_cache(caching == Caching::PerRequest);
        Self {
            store,
            viewer,
            loader,
            max_page_size,
            reusable,
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

/// The store and the signed-in viewer, or `UNAUTHENTICATED` for anonymous requests: what every
/// mutation starts with.
pub fn signed_in<'a>(ctx: &Context<'a>) -> Result<(&'a Store, &'a Viewer), ApiError> {
    let rc = request(ctx)?;
    Ok((&rc.store, rc.require_viewer()?))
}

/// Runs a field resolver's body as a heap allocation of its own.
///
/// async-graphql allocates one future per selected field, as large as the largest resolver of
/// the object type: the type's `resolve_field` is one state machine over all of its fields. A
/// type with one resolver awaiting a database query (a few kilobytes of state) made each of its
/// scalar fields allocate and copy that much; resolvers that await go through here, so a type's
/// state machine stays small and only the fields that await pay for their own.
pub(crate) fn boxed<'a, T>(
    body: impl Future<Output = T> + Send + 'a,
) -> std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>> {
    Box::pin(body)
}

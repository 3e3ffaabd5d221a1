//! Roster's hooks around every operation: errors get their codes ([`super::errors`]), documents
//! are checked against the shape limits ([`super::limits`]) and for text no column stores
//! ([`super::strings`]) and values that do not coerce ([`super::coercion`]), persisted queries
//! are looked up, and operations are observed ([`super::observe`]).
//!
//! Over HTTP the hooks run *around* the executor ([`Hooks::execute`]), on a schema with no
//! extension: async-graphql takes every field off its fast path as soon as any extension is
//! registered (a `ResolveInfo`, a registry lookup and a boxed future per field), whether or not
//! the extension looks at fields, and a discovery page resolves a few thousand fields. A
//! WebSocket's operations (subscriptions mostly) run on a second schema that carries the same
//! hooks as one extension ([`Hooks`] as an [`ExtensionFactory`]), since async-graphql-axum
//! drives the executor there.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_graphql::{
    Request as GqlRequest, Response, ServerError, ServerResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
        NextSubscribe,
        apollo_persisted_queries::{CacheStorage, LruCacheStorage},
    },
    futures_util::stream::{BoxStream, StreamExt},
    parser::types::ExecutableDocument,
};
use sha2::{Digest, Sha256};

use super::{AppSchema, coercion, errors, limits, observe, strings};

/// The hooks' settings; also the extension registered on the WebSocket schema.
#[derive(Clone)]
pub struct Hooks {
    /// Operations slower than this are logged.
    pub slow: Duration,
    /// Most root fields per operation.
    pub root_fields: usize,
    /// Most aliases per document.
    pub aliases: usize,
    /// Whether introspection is answered; when not, a document that asks for it is refused.
    pub introspection: bool,
}

impl Hooks {
    /// What every document must pass after parsing and before validation.
    fn check(&self, document: &ExecutableDocument, variables: &Variables) -> ServerResult<()> {
        limits::check_shape(document, self.root_fields, self.aliases)?;
        if !self.introspection {
            limits::refuse_introspection(document)?;
        }
        strings::check(document, variables)?;
        coercion::check(document, variables)
    }

    /// Runs `request` on `schema` (a schema without extensions) with the hooks around it: the
    /// persisted query is looked up, the document parsed once and checked, the operation
    /// executed and observed, and every error of the response given its code.
    pub async fn execute(
        &self,
        schema: &AppSchema,
        persisted: &PersistedQueries,
        mut request: GqlRequest,
    ) -> Response {
        let started = Instant::now();
        let prepared = async {
            strings::check_operation_name(request.operation_name.as_deref())?;
            let document = match persisted.prepare(&mut request).await? {
                Some(document) => document,
                None => async_graphql::parser::parse_query(&request.query)?,
            };
            self.check(&document, &request.variables)?;
            request.set_parsed_query(document);
            Ok::<_, ServerError>(())
        }
        .await;
        let mut response = match prepared {
            Ok(()) => {
                let name = request.operation_name.clone();
                observe::observed(name.as_deref(), self.slow, schema.execute(request)).await
            }
            Err(error) => {
                crate::metrics::record_operation("refused", false, started.elapsed().as_secs_f64());
                Response::from_errors(vec![error])
            }
        };
        errors::normalize_all(&mut response);
        response
    }
}

/// Automatic persisted queries (Apollo's `persistedQuery` extension, version 1): a client sends
/// the SHA-256 of a document instead of the document once the server has seen it. The documents
/// are kept parsed, at most `capacity` of them per replica.
#[derive(Clone)]
pub struct PersistedQueries(LruCacheStorage);

impl PersistedQueries {
    pub fn new(capacity: usize) -> Self {
        Self(LruCacheStorage::new(capacity))
    }

    /// The document stored under the hash of the request's `persistedQuery` extension, the
    /// request left as it is: `None` when it names no hash or none is stored. (A GET request
    /// must not run a mutation, whatever form its document arrives in.)
    pub async fn stored(&self, request: &GqlRequest) -> Option<ExecutableDocument> {
        let async_graphql::Value::Object(persisted) = request.extensions.get("persistedQuery")?
        else {
            return None;
        };
        let async_graphql::Value::String(hash) = persisted.get("sha256Hash")? else {
            return None;
        };
        self.0.get(hash.clone()).await
    }

    /// Resolves the request's `persistedQuery` extension, if it has one, to its document: a
    /// hash alone gives the document stored under it (`PersistedQueryNotFound` when there is
    /// none); a document with its hash is checked against the hash, parsed and stored. `None`:
    /// the request has no such extension.
    async fn prepare(&self, request: &mut GqlRequest) -> ServerResult<Option<ExecutableDocument>> {
        #[derive(serde::Deserialize)]
        struct PersistedQuery {
            version: i32,
            #[serde(rename = "sha256Hash")]
            sha256_hash: String,
        }
        let Some(value) = request.extensions.remove("persistedQuery") else {
            return Ok(None);
        };
        let persisted: PersistedQuery = async_graphql::from_value(value).map_err(|_| {
            ServerError::new("Invalid \"PersistedQuery\" extension configuration.", None)
        })?;
        if persisted.version != 1 {
            return Err(ServerError::new(
                format!(
                    "Only the \"PersistedQuery\" extension of version \"1\" is supported, and the current version is \"{}\".",
                    persisted.version
                ),
                None,
            ));
        }
        if request.query.is_empty() {
            let document = self
                .0
                .get(persisted.sha256_hash)
                .await
                .ok_or_else(|| ServerError::new("PersistedQueryNotFound", None))?;
            return Ok(Some(document));
        }
        let hash = format!("{:x}", Sha256::digest(request.query.as_bytes()));
        if persisted.sha256_hash != hash {
            return Err(ServerError::new("provided sha does not match query", None));
        }
        let document = async_graphql::parser::parse_query(&request.query)?;
        self.0.set(hash, document.clone()).await;
        Ok(Some(document))
    }
}

impl ExtensionFactory for Hooks {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Request {
            hooks: self.clone(),
            executed: AtomicBool::new(false),
        })
    }
}

/// The hooks of one WebSocket operation.
struct Request {
    hooks: Hooks,
    /// Whether the operation reached execution (and so was counted there).
    executed: AtomicBool,
}

#[async_trait::async_trait]
impl Extension for Request {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let mut response = next.run(ctx).await;
        errors::normalize_all(&mut response);
        if !self.executed.load(Ordering::Relaxed) {
            // Refused before execution (parse, validation, limits, coercion): a request too.
            crate::metrics::record_operation("refused", false, started.elapsed().as_secs_f64());
        }
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream)
            .map(|mut response| {
                errors::normalize_all(&mut response);
                response
            })
            .boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        self.hooks.check(&document, variables)?;
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        self.executed.store(true, Ordering::Relaxed);
        observe::observed(
            operation_name,
            self.hooks.slow,
            next.run(ctx, operation_name),
        )
        .await
    }
}

//! Roster's hooks around every operation, as one schema extension.
//!
//! async-graphql wraps the resolution of every field in every registered extension, whether or
//! not the extension looks at fields. A discovery page resolves a few thousand fields, so the
//! hooks share one extension: errors get their codes ([`super::errors`]), documents are checked
//! against the shape limits ([`super::limits`]) and for text no column stores
//! ([`super::strings`]), operations are observed
//! ([`super::observe`]).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_graphql::{
    PathSegment, Response, ServerError, ServerResult, Value, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
        NextResolve, NextSubscribe, ResolveInfo,
    },
    futures_util::stream::{BoxStream, StreamExt},
    parser::types::ExecutableDocument,
};

use super::{coercion, errors, limits, observe, strings};

/// The extension to register on the schema.
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

impl ExtensionFactory for Hooks {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Request {
            hooks: self.clone(),
            executed: AtomicBool::new(false),
        })
    }
}

/// The hooks of one request.
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
        response.errors.iter_mut().for_each(restore_origin);
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
                response.errors.iter_mut().for_each(restore_origin);
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
        limits::check_shape(&document, self.hooks.root_fields, self.hooks.aliases)?;
        if !self.hooks.introspection {
            limits::refuse_introspection(&document)?;
        }
        strings::check(&document, variables)?;
        coercion::check(&document, variables)?;
        Ok(document)
    }

    /// Remembers where an error arose: async-graphql gives an error passing up through a list
    /// item that item's path (`set_error_path` in `resolve_list`), so an error three lists deep
    /// would report the outermost item. The first path an error is seen with is kept in a private
    /// extension, put back by [`restore_origin`].
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        next.run(ctx, info).await.map_err(remember_origin)
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

/// The private extension holding an error's path of origin.
const ORIGIN: &str = "_origin";

fn remember_origin(mut error: ServerError) -> ServerError {
    if error.path.is_empty() {
        return error;
    }
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get(ORIGIN).is_none() {
        let path = error
            .path
            .iter()
            .map(|segment| match segment {
                PathSegment::Field(name) => Value::from(name.as_str()),
                PathSegment::Index(i) => Value::from(*i),
            })
            .collect();
        extensions.set(ORIGIN, Value::List(path));
    }
    error
}

/// Puts an error's path of origin back (see [`Request::resolve`]).
fn restore_origin(error: &mut ServerError) {
    let Some(extensions) = error.extensions.as_mut() else {
        return;
    };
    let Some(Value::List(origin)) = extensions.get(ORIGIN).cloned() else {
        return;
    };
    extensions.unset(ORIGIN);
    error.path = origin
        .into_iter()
        .filter_map(|segment| match segment {
            Value::String(name) => Some(PathSegment::Field(name)),
            Value::Number(i) => i
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .map(PathSegment::Index),
            _ => None,
        })
        .collect();
    if error.extensions.as_ref() == Some(&Default::default()) {
        error.extensions = None;
    }
}

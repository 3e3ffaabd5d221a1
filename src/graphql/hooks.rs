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
    Response, ServerResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
        NextSubscribe,
    },
    futures_util::stream::{BoxStream, StreamExt},
    parser::types::ExecutableDocument,
};

use super::{errors, limits, observe, strings};

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
        limits::check_shape(&document, self.hooks.root_fields, self.hooks.aliases)?;
        if !self.hooks.introspection {
            limits::refuse_introspection(&document)?;
        }
        strings::check(&document, variables)?;
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

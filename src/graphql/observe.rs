//! Every operation in a tracing span named after it (inside the HTTP request's span, which
//! carries the request id), counted and timed for `/metrics`, and logged when slow.

use std::{sync::Arc, time::Duration};

use async_graphql::{
    Response,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute},
};
use tokio::time::Instant;
use tracing::Instrument;

use crate::metrics;

/// The extension to register on the schema; operations slower than `slow` are logged.
pub struct Observe {
    pub slow: Duration,
}

impl ExtensionFactory for Observe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ObserveExtension { slow: self.slow })
    }
}

struct ObserveExtension {
    slow: Duration,
}

#[async_trait::async_trait]
impl Extension for ObserveExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let operation = metrics::operation_label(operation_name);
        let span = tracing::info_span!("graphql", operation = %operation);
        let started = Instant::now();
        let response = next.run(ctx, operation_name).instrument(span).await;
        let elapsed = started.elapsed();
        metrics::record_operation(
            &operation,
            response.errors.is_empty(),
            elapsed.as_secs_f64(),
        );
        if elapsed >= self.slow {
            tracing::warn!(
                operation = %operation,
                elapsed_ms = elapsed.as_millis() as u64,
                errors = response.errors.len(),
                "slow operation"
            );
        } else {
            tracing::debug!(operation = %operation, elapsed_ms = elapsed.as_millis() as u64, "operation");
        }
        response
    }
}

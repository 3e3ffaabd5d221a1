//! Every operation in a tracing span named after it (inside the HTTP request's span, which
//! carries the request id), counted and timed for `/metrics`, and logged when slow.

use std::time::Duration;

use async_graphql::Response;
use tokio::time::Instant;
use tracing::Instrument;

use crate::metrics;

/// Runs `operation` (the execution of the operation named `operation_name`) in a span named
/// after it, counts and times it, and logs it when it took `slow` or longer. An operation that
/// validation refused (no data, and errors with no path) is counted as `refused`.
pub async fn observed(
    operation_name: Option<&str>,
    slow: Duration,
    operation: impl Future<Output = Response>,
) -> Response {
    let name = metrics::operation_label(operation_name);
    let span = tracing::info_span!("graphql", operation = %name);
    let started = Instant::now();
    let response = operation.instrument(span).await;
    let elapsed = started.elapsed();
    if refused(&response) {
        metrics::record_operation("refused", false, elapsed.as_secs_f64());
        return response;
    }
    metrics::record_operation(&name, response.errors.is_empty(), elapsed.as_secs_f64());
    if elapsed >= slow {
        tracing::warn!(
            operation = %name,
            elapsed_ms = elapsed.as_millis() as u64,
            errors = response.errors.len(),
            "slow operation"
        );
    } else {
        tracing::debug!(operation = %name, elapsed_ms = elapsed.as_millis() as u64, "operation");
    }
    response
}

/// Whether `response` failed before execution: no data, and errors with no path.
pub fn refused(response: &Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

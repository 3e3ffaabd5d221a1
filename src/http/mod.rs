//! Serving HTTP: the router ([`router`]) and what each route does. GraphQL over HTTP is
//! [`graphql`], over WebSocket `ws`; the CSV exports [`export`]; the GraphiQL page
//! [`graphiql`]; health, readiness and metrics are here. Every route runs on the shared
//! [`App`].

mod calendar;
pub mod export;
pub mod graphiql;
pub mod graphql;
mod ws;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tower_http::{
    classify::ServerErrorsFailureClass,
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::app::App;

/// The whole HTTP surface. Every request gets an `x-request-id` (kept if the client sent one,
/// echoed in the response) that its log lines carry; responses are compressed when the client
/// accepts it; cross-origin calls are allowed from the configured origins only.
pub fn router(state: Arc<App>) -> Router {
    let cors = cors(&state.cors_origins);
    let request_id = HeaderName::from_static("x-request-id");
    let router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql::post))
        .route("/graphql/ws", get(ws::graphql_ws))
        .route("/graphiql/assets/{name}", get(graphiql::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/export/enrollments.csv", get(export::enrollments))
        .route("/export/certifications.csv", get(export::certifications))
        .route("/calendar/{file}", get(calendar::feed))
        .layer(DefaultBodyLimit::max(state.limits.body_bytes))
        .layer(CompressionLayer::new())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
            })
            .on_failure(on_failure),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// Logs a failed response: a 503 at DEBUG, since it is the answer Roster gives by design when
/// it sheds a write (a storm sheds thousands a minute, each counted in
/// `roster_writes_shed_total`) or its database is unavailable (`/readyz` says so), any other at
/// ERROR.
fn on_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    match class {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(?latency, "answered 503 Service Unavailable");
        }
        class => tracing::error!(classification = %class, ?latency, "response failed"),
    }
}

/// The CORS policy for `origins`: `*` allows any origin (without credentials); a list allows
/// those; none adds no CORS headers (same-origin only).
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .max_age(Duration::from_secs(3600));
    Some(if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        layer.allow_origin(AllowOrigin::list(
            origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        ))
    })
}

/// Prometheus metrics (see [`crate::metrics`]).
async fn metrics(State(state): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(state.store.db(), state.store.bus().active_subscriptions()),
    )
        .into_response()
}

/// A browser (asking for HTML) gets GraphiQL; anything else is a GraphQL GET request.
async fn graphql_get(state: State<Arc<App>>, request: Request) -> Response {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && request.uri().query().is_none_or(|q| !q.contains("query=")) {
        return graphiql::page().into_response();
    }
    graphql::get(state, request).await
}

/// Ready when the database answers.
/// How long `/readyz` waits for the database: probes have short timeouts of their own.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

async fn readyz(State(state): State<Arc<App>>) -> Response {
    match tokio::time::timeout(READINESS_TIMEOUT, state.store.db().ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            (StatusCode::SERVICE_UNAVAILABLE, "database not answering").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What a log line was written to.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A shed write is an answer, not a failure of the server: a storm's thousands of them
    /// must not fill the log at ERROR, while a 500 still must be there.
    #[test]
    fn a_503_is_logged_at_debug_and_a_500_at_error() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for status in [
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::INTERNAL_SERVER_ERROR,
            ] {
                on_failure(
                    ServerErrorsFailureClass::StatusCode(status),
                    Duration::from_millis(3),
                    &tracing::Span::none(),
                );
            }
        });
        let bytes = lines.0.lock().expect("the lines").clone();
        let text = String::from_utf8(bytes).expect("UTF-8");
        let logged: Vec<&str> = text.lines().collect();
        assert_eq!(logged.len(), 2, "{text}");
        assert!(
            logged[0].contains("DEBUG") && logged[0].contains("503"),
            "{text}"
        );
        assert!(
            logged[1].contains("ERROR") && logged[1].contains("500"),
            "{text}"
        );
    }
}

//! The HTTP application: shared state, the router, and the one request path that the server and
//! the tests both use.

use std::sync::Arc;

use async_graphql::{BatchRequest, BatchResponse, Response as GqlResponse, http::GraphiQLSource};
use async_graphql_axum::{GraphQLBatchRequest, GraphQLResponse, rejection::GraphQLRejection};
use axum::{
    Router,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use sea_orm::DatabaseConnection;
use tower_http::trace::TraceLayer;

use crate::{
    auth::{self, TokenKeys},
    clock::Clock,
    graphql::{self, AppSchema, RequestContext, errors::to_server_error},
};

/// What every request shares.
pub struct AppState {
    /// The connection pool; cloning it is cheap and shares the pool.
    pub db: DatabaseConnection,
    /// Signs and checks bearer tokens.
    pub keys: TokenKeys,
    /// The schema's shape; each request gets its own [`RequestContext`].
    pub schema: AppSchema,
    /// Largest `first` a connection field accepts.
    pub max_page_size: u64,
    /// The time that time-based rules read; tests move it forward.
    pub clock: Clock,
}

impl AppState {
    pub fn new(db: DatabaseConnection, keys: TokenKeys, max_page_size: u64) -> Arc<Self> {
        Arc::new(Self {
            db,
            keys,
            schema: graphql::build_schema(),
            max_page_size,
            clock: Clock::default(),
        })
    }

    /// Runs GraphQL requests as the holder of `authorization` (an `Authorization` header value).
    ///
    /// A missing header runs the requests anonymously; an invalid one answers every request with
    /// `UNAUTHENTICATED` without running it.
    pub async fn execute(&self, batch: BatchRequest, authorization: Option<&str>) -> BatchResponse {
        let viewer = match auth::viewer_from_header(&self.db, &self.keys, authorization).await {
            Ok(viewer) => viewer,
            Err(err) => {
                let response = || GqlResponse::from_errors(vec![to_server_error(&err)]);
                return match batch {
                    BatchRequest::Single(_) => BatchResponse::Single(response()),
                    BatchRequest::Batch(requests) => {
                        BatchResponse::Batch(requests.iter().map(|_| response()).collect())
                    }
                };
            }
        };
        let context = || {
            let mut context =
                RequestContext::new(self.db.clone(), viewer.clone(), self.max_page_size);
            context.clock = self.clock.clone();
            context
        };
        match batch {
            BatchRequest::Single(request) => {
                BatchResponse::Single(self.schema.execute(request.data(context())).await)
            }
            BatchRequest::Batch(requests) => {
                let mut responses = Vec::with_capacity(requests.len());
                for request in requests {
                    responses.push(self.schema.execute(request.data(context())).await);
                }
                BatchResponse::Batch(responses)
            }
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A browser (asking for HTML) gets GraphiQL; anything else is a GraphQL GET request.
async fn graphql_get(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && request.uri().query().is_none_or(|q| !q.contains("query=")) {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql/ws")
                .title("Roster GraphiQL")
                .finish(),
        )
        .into_response();
    }
    graphql_post(State(state), request).await
}

async fn graphql_post(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let authorization = authorization(request.headers());
    let batch = match GraphQLBatchRequest::<GraphQLRejection>::from_request(request, &()).await {
        Ok(batch) => batch.into_inner(),
        Err(rejection) => return rejection.into_response(),
    };
    GraphQLResponse::from(state.execute(batch, authorization.as_deref()).await).into_response()
}

fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Ready when the database answers.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

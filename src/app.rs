//! The HTTP application: shared state, the router, and the one request path that the server and
//! the tests both use.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_graphql::{
    BatchRequest, BatchResponse, Data, ErrorExtensions, Response as GqlResponse,
    http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource},
};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    Router,
    extract::{Request, State, ws::WebSocketUpgrade},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tower_http::trace::TraceLayer;

use crate::{
    auth::{self, TokenKeys},
    clock::Clock,
    events::{self, Bus},
    graphql::{self, AppSchema, RequestContext, errors::to_server_error},
    http,
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
    /// This replica's fan-out of committed changes to its subscriptions.
    pub bus: Bus,
    /// The PostgreSQL change listener, stopped with the state.
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl AppState {
    pub fn new(db: DatabaseConnection, keys: TokenKeys, max_page_size: u64) -> Arc<Self> {
        let bus = Bus::default();
        Arc::new(Self {
            db,
            keys,
            schema: graphql::build_schema_with(bus.clone()),
            max_page_size,
            clock: Clock::default(),
            bus,
            listener: Mutex::default(),
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
            context.bus = self.bus.clone();
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

impl AppState {
    /// What a WebSocket connection's operations run with: its viewer (from the
    /// `connection_init` payload) and a loader that caches nothing, since a subscription lives
    /// longer than any snapshot.
    async fn connection_data(&self, payload: &serde_json::Value) -> async_graphql::Result<Data> {
        let header = authorization_from_init(payload);
        let viewer = auth::viewer_from_header(&self.db, &self.keys, header.as_deref())
            .await
            .map_err(|e| {
                async_graphql::Error::new(e.to_string())
                    .extend_with(|_, ext| ext.set("code", e.code()))
            })?;
        let mut context = RequestContext::new(self.db.clone(), viewer, self.max_page_size);
        context.loader.enable_all_cache(false);
        context.clock = self.clock.clone();
        context.bus = self.bus.clone();
        let mut data = Data::default();
        data.insert(context);
        Ok(data)
    }

    /// On PostgreSQL, starts this replica's listener for committed changes (see
    /// [`crate::events`]) and waits until it listens; on SQLite there is nothing to start.
    ///
    /// # Errors
    /// The listener could not reach the database within 10 s.
    pub async fn listen_for_changes(&self, database_url: &str) -> anyhow::Result<()> {
        if !database_url.starts_with("postgres") {
            return Ok(());
        }
        let (ready, listening) = tokio::sync::oneshot::channel();
        let task = events::spawn_listener(
            database_url.to_owned(),
            self.db.clone(),
            self.bus.clone(),
            ready,
        );
        if let Ok(mut slot) = self.listener.lock() {
            *slot = Some(task);
        }
        tokio::time::timeout(Duration::from_secs(10), listening)
            .await
            .map_err(|_| anyhow::anyhow!("could not LISTEN for changes within 10 s"))?
            .map_err(|_| anyhow::anyhow!("the change listener stopped"))?;
        Ok(())
    }
}

impl Drop for AppState {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.listener.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(http::post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Initial read and write buffer per WebSocket connection (they grow for larger messages).
const WS_BUFFER_BYTES: usize = 4 * 1024;

/// Subscriptions (and queries and mutations) over a WebSocket, speaking `graphql-transport-ws`
/// or the legacy `graphql-ws`, whichever the client asks for. The bearer token comes in the
/// `connection_init` payload; a bad one refuses the connection with the protocol's error.
async fn graphql_ws(
    State(state): State<Arc<AppState>>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Subscription messages are small; tungstenite's default 128 KiB buffers per connection
    // would make ten thousand subscribers cost over a gigabyte.
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            let init = state.clone();
            GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
                .on_connection_init(
                    move |payload| async move { init.connection_data(&payload).await },
                )
                .serve()
        })
        .into_response()
}

/// The `Authorization` value a `connection_init` payload carries: `Authorization` or
/// `authorization` (with or without `Bearer `), at the top or under `headers`, or a bare `token`
/// or `authToken`.
fn authorization_from_init(payload: &serde_json::Value) -> Option<String> {
    let field =
        |v: &serde_json::Value, name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_owned);
    let headers = payload.get("headers").unwrap_or(&serde_json::Value::Null);
    let value = ["Authorization", "authorization"]
        .iter()
        .find_map(|name| field(payload, name).or_else(|| field(headers, name)))
        .or_else(|| field(payload, "token"))
        .or_else(|| field(payload, "authToken"))?;
    let value = value.trim();
    Some(
        if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
            value.to_owned()
        } else {
            format!("Bearer {value}")
        },
    )
}

/// A browser (asking for HTML) gets GraphiQL; anything else is a GraphQL GET request.
async fn graphql_get(state: State<Arc<AppState>>, request: Request) -> Response {
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
    http::get(state, request).await
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

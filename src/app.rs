//! The HTTP application: shared state, the router, and the one request path that the server and
//! the tests both use.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_graphql::{
    BatchRequest, BatchResponse, Data, ErrorExtensions, Response as GqlResponse,
    http::ALL_WEBSOCKET_PROTOCOLS,
};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    Router,
    extract::{
        DefaultBodyLimit, Request, State,
        ws::{CloseFrame, Message, WebSocketUpgrade, close_code},
    },
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::{SinkExt, StreamExt};
use tokio::{sync::watch, task::JoinHandle};
use tower_http::{
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};

use crate::{
    auth::{self, TokenKeys},
    clock::Clock,
    config::DbConfig,
    db,
    delivery::{self, DeliveryConfig},
    events::{self, Bus},
    export, graphiql,
    graphql::{
        self, AppSchema, Caching, RequestContext,
        errors::to_server_error,
        limits::{self, Limits},
    },
    http, jobs,
    response_cache::{ResponseCache, Reusable},
    store::Store,
};

/// The application: what every request shares. Built once by [`App::build`], for `roster
/// serve` and for the tests alike.
pub struct App {
    /// The database, the clock and the bus that the services run on.
    pub store: Store,
    /// Signs and checks bearer tokens.
    pub keys: TokenKeys,
    /// The schema serving HTTP, without extensions; each request gets its own
    /// [`RequestContext`].
    pub schema: AppSchema,
    /// The hooks run around [`App::schema`]'s executor (see [`graphql::Hooks`]).
    hooks: graphql::Hooks,
    /// Automatic persisted queries of HTTP requests.
    persisted: graphql::PersistedQueries,
    /// The schema serving WebSocket connections, with the hooks as an extension.
    socket_schema: AppSchema,
    /// Largest `first` a connection field accepts.
    pub max_page_size: u64,
    /// Cross-origin browsers allowed to call the API (`*` for any); none means same-origin only.
    pub cors_origins: Vec<String>,
    /// What one request may ask.
    pub limits: Limits,
    /// Answers to anonymous queries, kept while the database has not changed.
    pub response_cache: ResponseCache,
    /// The background tasks (the change feed on PostgreSQL, the delivery worker, the timers),
    /// stopped with the app.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Set once the server begins to shut down: WebSocket connections then close.
    shutdown: watch::Sender<bool>,
    /// WebSocket connections still open.
    websockets: Arc<std::sync::atomic::AtomicUsize>,
}

/// Called for every statement the pool runs (tests count statements with it).
pub type StatementHook = Arc<dyn Fn() + Send + Sync>;

/// Everything [`App::build`] needs.
#[derive(Clone)]
pub struct Settings {
    pub database: DbConfig,
    pub keys: TokenKeys,
    pub max_page_size: u64,
    /// Operations slower than this are logged with their name.
    pub slow_operation: Duration,
    pub cors_origins: Vec<String>,
    pub limits: Limits,
    /// Whether answers to anonymous queries are cached (see [`crate::response_cache`]).
    pub response_cache: bool,
    /// The clock every time-dependent rule reads.
    pub clock: Clock,
    pub on_statement: Option<StatementHook>,
    /// Where notifications are delivered beyond the inbox (see [`crate::delivery`]).
    pub delivery: DeliveryConfig,
}

impl Settings {
    /// The defaults of `roster serve` for this database and these keys.
    pub fn new(database: DbConfig, keys: TokenKeys) -> Self {
        Self {
            database,
            keys,
            max_page_size: 100,
            slow_operation: Duration::from_millis(500),
            cors_origins: Vec::new(),
            limits: Limits::default(),
            response_cache: true,
            clock: Clock::default(),
            on_statement: None,
            delivery: DeliveryConfig::default(),
        }
    }
}

impl App {
    /// Opens the database (creating a SQLite file if missing), migrates it, and, on PostgreSQL,
    /// starts listening for the changes committed by every replica.
    ///
    /// # Errors
    /// The database cannot be opened or migrated, or the listener cannot start within 10 s.
    pub async fn build(settings: Settings) -> anyhow::Result<Arc<Self>> {
        // Installed now, so that `/metrics` shows what happened before its first scrape.
        crate::metrics::handle();
        let url = &settings.database.database_url;
        let mut db = db::connect(&settings.database)
            .await
            .with_context(|| format!("cannot open the database at {}", db::redact(url)))?;
        if let Some(hook) = settings.on_statement.clone() {
            db.set_metric_callback(move |_| hook());
        }
        Migrator::up(&db, None).await.context("migrations failed")?;
        let app = Arc::new(Self {
            schema: graphql::build_schema_with(&settings.limits),
            hooks: graphql::hooks(settings.slow_operation, &settings.limits),
            persisted: graphql::PersistedQueries::new(graphql::PERSISTED_QUERIES),
            socket_schema: graphql::build_socket_schema(settings.slow_operation, &settings.limits),
            response_cache: ResponseCache::new(&db, settings.response_cache),
            store: Store::new(db, settings.clock, Bus::default()).with_delivery(&settings.delivery),
            keys: settings.keys,
            max_page_size: settings.max_page_size,
            cors_origins: settings.cors_origins,
            limits: settings.limits,
            tasks: Mutex::default(),
            shutdown: watch::channel(false).0,
            websockets: Arc::default(),
        });
        app.listen_for_changes(&settings.database).await?;
        if settings.delivery.channels().any() {
            let worker = delivery::Worker::new(app.store.clone(), settings.delivery);
            app.keep([jobs::spawn(worker, app.shutdown.subscribe())]);
        }
        Ok(app)
    }

    /// Starts the timers of `roster serve` (see [`crate::jobs`]): every `offer_sweep`, open
    /// offers past their deadline are passed on and offers about to lapse are reminded
    /// (`service::offers::Sweep`); every minute, holders of certifications expiring within 30
    /// days are reminded (`service::notifications::ExpiryReminders`).
    pub fn start_timers(&self, offer_sweep: Duration) {
        use crate::service::{notifications, offers};
        self.keep([
            jobs::spawn(
                offers::Sweep::new(self.store.clone(), offer_sweep),
                self.shutdown.subscribe(),
            ),
            jobs::spawn(
                notifications::ExpiryReminders(self.store.clone()),
                self.shutdown.subscribe(),
            ),
        ]);
    }

    /// Starts the shutdown: every WebSocket connection sends a close frame (1001, going away)
    /// and ends.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once every WebSocket connection has ended (after its close frame).
    pub async fn websockets_closed(&self) {
        while self.websockets.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Resolves once [`App::begin_shutdown`] was called.
    pub async fn shutting_down(&self) {
        let mut receiver = self.shutdown.subscribe();
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }

    /// Runs GraphQL requests as the holder of `authorization` (an `Authorization` header value).
    ///
    /// A missing header runs the requests anonymously; an invalid one answers every request with
    /// `UNAUTHENTICATED` without running it.
    pub async fn execute(&self, batch: BatchRequest, authorization: Option<&str>) -> BatchResponse {
        self.execute_tracked(batch, authorization, &Reusable::new())
            .await
    }

    /// [`App::execute`], with `reusable` cleared by any resolver whose result depends on
    /// more than the database.
    pub async fn execute_tracked(
        &self,
        batch: BatchRequest,
        authorization: Option<&str>,
        reusable: &Reusable,
    ) -> BatchResponse {
        let viewer = match auth::viewer_from_header(&self.store, &self.keys, authorization).await {
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
            RequestContext::new(
                self.store.clone(),
                viewer.clone(),
                self.max_page_size,
                Caching::PerRequest,
                reusable.clone(),
            )
        };
        match batch {
            BatchRequest::Single(request) => {
                BatchResponse::Single(self.run_one(request.data(context())).await)
            }
            BatchRequest::Batch(requests) => {
                let mut responses = Vec::with_capacity(requests.len());
                for request in requests {
                    responses.push(self.run_one(request.data(context())).await);
                }
                BatchResponse::Batch(responses)
            }
        }
    }

    /// One operation, stopped at the time limit: a transaction it had open is rolled back.
    async fn run_one(&self, request: async_graphql::Request) -> GqlResponse {
        let limit = self.limits.timeout;
        let execution = self.hooks.execute(&self.schema, &self.persisted, request);
        match tokio::time::timeout(limit, execution).await {
            Ok(response) => response,
            Err(_) => GqlResponse::from_errors(vec![limits::exceeded(
                "timeout",
                format!("the request ran longer than the {limit:?} limit"),
            )]),
        }
    }
}

impl App {
    /// What a WebSocket connection's operations run with: its viewer (from the
    /// `connection_init` payload) and a loader that caches nothing, since a subscription lives
    /// longer than any snapshot.
    /// `expiry` learns when the token expires.
    async fn connection_data(
        &self,
        payload: &serde_json::Value,
        expiry: &watch::Sender<Option<i64>>,
    ) -> async_graphql::Result<Data> {
        let header = authorization_from_init(payload);
        let signed_in = auth::authenticate(&self.store, &self.keys, header.as_deref())
            .await
            .map_err(|e| {
                async_graphql::Error::new(close_reason(&e.to_string()))
                    .extend_with(|_, ext| ext.set("code", e.code()))
            })?;
        let viewer = signed_in.map(|(viewer, expires_at)| {
            expiry.send_replace(Some(expires_at));
            viewer
        });
        let context = RequestContext::new(
            self.store.clone(),
            viewer,
            self.max_page_size,
            Caching::Off,
            Reusable::new(),
        );
        let mut data = Data::default();
        data.insert(context);
        Ok(data)
    }

    /// On PostgreSQL, starts this replica's change feed (see [`crate::events`]) and waits until
    /// it reads and listens; on SQLite there is nothing to start.
    ///
    /// # Errors
    /// The feed could not reach the database within 10 s.
    async fn listen_for_changes(&self, database: &DbConfig) -> anyhow::Result<()> {
        if !database.database_url.starts_with("postgres") {
            return Ok(());
        }
        // The feed reads on a connection of its own, so that it never waits behind requests
        // for the pool, nor they behind it.
        let feed_db = db::connect(&DbConfig {
            database_url: database.database_url.clone(),
            db_max_connections: Some(1),
            db_acquire_timeout: None,
        })
        .await
        .context("cannot open the change feed's connection")?;
        let store = &self.store;
        let tasks = events::start_feed(
            &database.database_url,
            &feed_db,
            store.bus(),
            store.wakeups(),
            &self.shutdown.subscribe(),
        )
        .await?;
        self.keep(tasks);
        Ok(())
    }

    /// Keeps background tasks, to stop them with the app.
    fn keep(&self, tasks: impl IntoIterator<Item = JoinHandle<()>>) {
        if let Ok(mut kept) = self.tasks.lock() {
            kept.extend(tasks);
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

/// The whole HTTP surface. Every request gets an `x-request-id` (kept if the client sent one,
/// echoed in the response) that its log lines carry; responses are compressed when the client
/// accepts it; cross-origin calls are allowed from the configured origins only.
pub fn router(state: Arc<App>) -> Router {
    let cors = cors(&state.cors_origins);
    let request_id = HeaderName::from_static("x-request-id");
    let router = Router::new()
        .route("/graphql", get(graphql_get).post(http::post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/graphiql/assets/{name}", get(graphiql::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/export/enrollments.csv", get(export::enrollments))
        .route("/export/certifications.csv", get(export::certifications))
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
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
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
        crate::metrics::render(state.store.db(), state.store.bus()),
    )
        .into_response()
}

/// Initial read and write buffer per WebSocket connection (they grow for larger messages).
const WS_BUFFER_BYTES: usize = 4 * 1024;

/// Subscriptions (and queries and mutations) over a WebSocket, speaking `graphql-transport-ws`
/// or the legacy `graphql-ws`, whichever the client asks for. The bearer token comes in the
/// `connection_init` payload; a bad one refuses the connection with the protocol's error.
async fn graphql_ws(
    State(state): State<Arc<App>>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Subscription messages are small; tungstenite's default 128 KiB buffers per connection
    // would make ten thousand subscribers cost over a gigabyte.
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let _open = OpenWebSocket::new(&state.websockets);
            let (mut sink, stream) = socket.split();
            // Incoming messages stop at shutdown, or when the token the connection signed in
            // with expires; either ends the connection's operations.
            let (expiry, expires) = watch::channel(None);
            let expired = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (stopping, flag) = (state.clone(), expired.clone());
            let stream = stream.take_until(async move {
                tokio::select! {
                    () = stopping.shutting_down() => {}
                    () = token_expiry(expires) => flag.store(true, std::sync::atomic::Ordering::SeqCst),
                }
            });
            let init = state.clone();
            let expiry = Arc::new(expiry);
            GraphQLWebSocket::new_with_pair(&mut sink, stream, state.socket_schema.clone(), protocol)
                .on_connection_init(move |payload| {
                    let (init, expiry) = (init.clone(), expiry.clone());
                    async move { init.connection_data(&payload, &expiry).await }
                })
                .serve()
                .await;
            let close = if *state.shutdown.borrow() {
                Some((close_code::AWAY, "the server is shutting down"))
            } else if expired.load(std::sync::atomic::Ordering::SeqCst) {
                Some((TOKEN_EXPIRED, "the token expired: connect again with a fresh token"))
            } else {
                None
            };
            if let Some((code, reason)) = close {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })))
                    .await;
            }
        })
        .into_response()
}

/// A refusal's text as a WebSocket close frame can carry it: at most 123 bytes (RFC 6455,
/// 5.5), cut at a character boundary with an ellipsis. A longer reason makes clients drop the
/// frame as invalid and never see why.
fn close_reason(message: &str) -> String {
    const MAX: usize = 123;
    if message.len() <= MAX {
        return message.to_owned();
    }
    let mut end = MAX - '…'.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// The close code of a connection whose token expired (4401: unauthorized, in the range the
/// GraphQL-over-WebSocket protocols leave to applications).
const TOKEN_EXPIRED: u16 = 4401;

/// Resolves when the token a connection signed in with expires; never for an anonymous one.
async fn token_expiry(mut expires: watch::Receiver<Option<i64>>) {
    let Ok(at) = expires.wait_for(Option::is_some).await.map(|at| *at) else {
        return std::future::pending().await;
    };
    let Some(at) = at else { return };
    let left = at.saturating_sub(chrono::Utc::now().timestamp());
    tokio::time::sleep(Duration::from_secs(u64::try_from(left).unwrap_or(0))).await;
}

/// Counts a WebSocket connection as open for as long as it lives.
struct OpenWebSocket(Arc<std::sync::atomic::AtomicUsize>);

impl OpenWebSocket {
    fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for OpenWebSocket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
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
async fn graphql_get(state: State<Arc<App>>, request: Request) -> Response {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && request.uri().query().is_none_or(|q| !q.contains("query=")) {
        return graphiql::page().into_response();
    }
    http::get(state, request).await
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
    use super::close_reason;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(
            cut.len() <= 123 && cut.ends_with('…'),
            "{} bytes",
            cut.len()
        );
    }
}

//! The application every request shares: its state ([`App`]), how it is built ([`App::build`],
//! used by `roster serve` and the tests alike), its background jobs, and the one path a GraphQL
//! request takes through it ([`App::execute`]). Serving it over HTTP is [`crate::http`].

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use async_graphql::{BatchRequest, BatchResponse, Response as GqlResponse};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    config::DbConfig,
    delivery::{self, DeliveryConfig},
    domain::{calendar::CalendarLinks, viewer::Viewer},
    graphql::{
        self, AppSchema, Caching, RequestContext,
        errors::to_server_error,
        limits::{self, Limits},
    },
    identity::tokens::{self, TokenKeys},
    jobs,
    response_cache::{ResponseCache, Reusable},
    store::{
        Store,
        clock::Clock,
        db,
        feed::{self, Bus},
    },
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
    pub(crate) socket_schema: AppSchema,
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
    pub(crate) shutdown: watch::Sender<bool>,
    /// WebSocket connections still open.
    pub(crate) websockets: Arc<std::sync::atomic::AtomicUsize>,
    /// WebSocket connections still open per client, bounded by
    /// [`Limits::connections_per_client`].
    pub(crate) websocket_clients: WebSocketClients,
}

/// Called for every statement the pool runs (tests count statements with it).
pub type StatementHook = Arc<dyn Fn() + Send + Sync>;

/// WebSocket connections open per client address: `http::ws` takes a place here for each
/// connection and refuses one past the per-client limit.
#[derive(Debug, Default)]
pub(crate) struct WebSocketClients(
    pub(crate) Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
);

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
    /// The address clients reach this server at, for the links it hands out (calendar feeds).
    pub public_url: String,
    /// Writes admitted at once, waiting included, before more are refused (`UNAVAILABLE`);
    /// `None`: as many as can have their turn within `store::admission::QUEUE_WAIT` at the pace
    /// writes are served (`store::admission::depth`).
    pub write_queue: Option<usize>,
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
            public_url: "http://127.0.0.1:8080".into(),
            write_queue: None,
        }
    }
}

/// Admission to the write path ([`crate::store::Admission`]): writes may hold all but two of
/// the pool's connections (so discovery always finds one), and `write_queue` (by default as
/// many as are served within 100 ms at the pace measured) may be admitted at once; each waits
/// for its turn at most the pool's acquire timeout.
fn admission(settings: &Settings, pool_size: usize) -> crate::store::Admission {
    let active = pool_size.saturating_sub(2).max(1);
    crate::store::Admission::new(
        active,
        settings.write_queue,
        settings
            .database
            .db_acquire_timeout
            .unwrap_or(db::DEFAULT_ACQUIRE_TIMEOUT),
    )
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
        db::migrate(&db).await.context("migrations failed")?;
        let admission = admission(&settings, db::pool_size(&settings.database));
        let app = Arc::new(Self {
            schema: graphql::build_schema_with(&settings.limits),
            hooks: graphql::hooks(settings.slow_operation, &settings.limits),
            persisted: graphql::PersistedQueries::new(graphql::PERSISTED_QUERIES),
            socket_schema: graphql::build_socket_schema(settings.slow_operation, &settings.limits),
            response_cache: ResponseCache::new(&db, settings.response_cache),
            store: Store::new(db, settings.clock, Bus::default())
                .with_delivery(settings.delivery.channels(), settings.delivery.push_rules())
                .with_calendar(CalendarLinks::new(
                    settings.keys.calendar_key(),
                    &settings.public_url,
                ))
                .with_admission(admission),
            keys: settings.keys,
            max_page_size: settings.max_page_size,
            cors_origins: settings.cors_origins,
            limits: settings.limits,
            tasks: Mutex::default(),
            shutdown: watch::channel(false).0,
            websockets: Arc::default(),
            websocket_clients: WebSocketClients::default(),
        });
        app.start_change_feed(&settings.database).await?;
        if settings.delivery.channels().any() {
            let worker = delivery::Worker::new(app.store.clone(), settings.delivery);
            app.keep([jobs::spawn(worker, app.shutdown.subscribe())]);
        }
        Ok(app)
    }

    /// Starts the timers of `roster serve` (see [`crate::jobs`]): every `offer_sweep`, open
    /// offers past their deadline are passed on and offers about to lapse are reminded
    /// (`service::offers::Sweep`); every minute, holders of certifications expiring within 30
    /// days are reminded (`service::notifications::ExpiryReminders`); every 30 seconds, waiters
    /// of sections whose enrollment window closed are told (`service::terms::CloseNotices`);
    /// every second, the lottery draws that are due run and drawn seeds are revealed
    /// (`service::lottery::Draws`).
    pub fn start_timers(&self, offer_sweep: Duration) {
        use crate::service::{lottery, notifications, offers, terms};
        self.keep([
            jobs::spawn(
                offers::Sweep::new(self.store.clone(), offer_sweep),
                self.shutdown.subscribe(),
            ),
            jobs::spawn(
                notifications::ExpiryReminders(self.store.clone()),
                self.shutdown.subscribe(),
            ),
            jobs::spawn(
                terms::CloseNotices(self.store.clone()),
                self.shutdown.subscribe(),
            ),
            jobs::spawn(
                lottery::Draws(self.store.clone()),
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
        let viewer = match tokens::viewer_from_header(&self.store, &self.keys, authorization).await
        {
            Ok(viewer) => viewer,
            Err(err) => {
                // Refused before execution (a bad token, the database away): counted as such.
                let response = || {
                    crate::metrics::record_operation("refused", false, 0.0);
                    GqlResponse::from_errors(vec![to_server_error(&err)])
                };
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
    /// On PostgreSQL, starts this replica's change feed (see [`crate::store::feed`]) and waits until
    /// it reads and listens; on SQLite there is nothing to start.
    ///
    /// # Errors
    /// The feed could not reach the database within 10 s.
    async fn start_change_feed(&self, database: &DbConfig) -> anyhow::Result<()> {
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
        let tasks = feed::start_feed(
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

    /// The viewer and the time its token expires, for a WebSocket connection's
    /// `connection_init` (see [`crate::http`]).
    ///
    /// # Errors
    /// As [`tokens::authenticate`].
    pub(crate) async fn authenticate(
        &self,
        header: Option<&str>,
    ) -> Result<Option<(Viewer, i64)>, crate::error::ApiError> {
        tokens::authenticate(&self.store, &self.keys, header).await
    }

    /// The document a request names by its persisted query's hash alone, if this replica has it.
    pub(crate) async fn persisted_document(
        &self,
        request: &async_graphql::Request,
    ) -> Option<async_graphql::parser::types::ExecutableDocument> {
        if !request.query.is_empty() {
            return None;
        }
        self.persisted.stored(request).await
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

//! The `roster` command line: `serve` (the default), `migrate`, `seed`, `user add`, `token`,
//! `schema`, `check`, `backup`.

use std::{path::Path, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use entity::types::Role;
use migration::{Migrator, MigratorTrait};
use rand::RngCore;
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use tokio::net::TcpListener;

use crate::{
    app::{self, App},
    config::{AuthConfig, DbConfig, DemoData, LogConfig, ServeConfig},
    delivery::{DeliveryConfig, EmailConfig, PushConfig, WebhookConfig},
    graphql::{self, limits::Limits},
    identity::tokens::{MIN_SECRET_LEN, TokenKeys},
    ops, seed,
    service::users::{self, NewUser},
    store::{Store, clock::Clock, db, feed::Bus},
    telemetry,
};

/// `roster --version`: the crate's version and the commit it was built from (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ROSTER_GIT_COMMIT"),
    ")"
);

/// Roster: a GraphQL API for course discovery, enrollment, waitlists and certifications.
#[derive(Parser, Debug)]
#[command(name = "roster", version = VERSION, about)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub log: LogConfig,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Migrate the database and serve the API (the default).
    Serve(Box<ServeConfig>),
    /// Apply pending migrations, or roll some back.
    Migrate {
        /// Roll back this many migrations instead of applying.
        #[arg(long)]
        rollback: Option<u32>,
    },
    /// Load data into the database.
    Seed {
        /// A few organizations, staff, students and 24 courses, some full with waitlists.
        #[arg(long, conflicts_with = "scale")]
        demo: bool,
        /// The benchmark data set, this many times its size: 1 = 200 teachers, 20,000
        /// students, 2,000 courses, 6,000 sections, about 100,000 enrollments.
        #[arg(long)]
        scale: Option<f64>,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Print a bearer token for a user, alone on stdout.
    Token {
        #[arg(long)]
        email: String,
        /// Lifetime, e.g. `1h`, `30m`, `7days`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Check the configuration `serve` would run with: validate every setting, reach the
    /// database and the OpenID provider, serve nothing. One line per problem; exit status 1
    /// if there is any.
    Check(Box<ServeConfig>),
    /// Write a consistent copy of the SQLite database to PATH, also while servers run
    /// (PostgreSQL: use pg_dump or pg_basebackup).
    Backup {
        /// Where to write the copy; must not exist yet.
        path: std::path::PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user and print their id alone on stdout.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Organization name; created if it does not exist.
        #[arg(long)]
        org: Option<String>,
        /// Picture URL.
        #[arg(long)]
        picture: Option<String>,
    },
}

#[derive(Copy, Clone, Debug, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoleArg {
    #[value(alias = "student")]
    Student,
    #[value(alias = "teacher")]
    Teacher,
    #[value(alias = "coordinator")]
    Coordinator,
    #[value(alias = "admin")]
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Student => Role::Student,
            RoleArg::Teacher => Role::Teacher,
            RoleArg::Coordinator => Role::Coordinator,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// `roster` with no subcommand: `serve` with its settings read from the environment.
#[derive(Parser)]
struct ServeDefaults {
    #[command(flatten)]
    serve: ServeConfig,
}

/// Runs one command line.
///
/// # Errors
/// Whatever stops the command; `main` prints it and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(&cli.log);
    let command = match cli.command {
        Some(command) => command,
        None => Command::Serve(Box::new(ServeDefaults::try_parse_from(["roster"])?.serve)),
    };
    match command {
        Command::Schema => {
            print!("{}", graphql::build_schema().sdl());
            Ok(())
        }
        Command::Serve(serve_config) => serve(&cli.db, &cli.auth, *serve_config).await,
        Command::Check(serve_config) => {
            let problems = ops::check(&cli.db, &cli.auth, &serve_config).await;
            if problems.is_empty() {
                println!("configuration OK");
                return Ok(());
            }
            // One line per problem and nothing else: no error chain, no backtrace.
            for problem in &problems {
                eprintln!("{problem}");
            }
            std::process::exit(1)
        }
        Command::Backup { path } => {
            let bytes = ops::backup(&cli.db, &path).await?;
            eprintln!(
                "wrote {} ({bytes} bytes); keep the JWT secret and the VAPID key with it",
                path.display()
            );
            Ok(())
        }
        Command::Migrate { rollback } => {
            let db = open(&cli.db).await?;
            match rollback {
                Some(n) => Migrator::down(&db, Some(n)).await?,
                None => {
                    db::migrate(&db).await?;
                }
            }
            Ok(())
        }
        Command::Seed {
            scale: Some(scale), ..
        } => {
            anyhow::ensure!(
                scale > 0.0 && scale <= 20.0,
                "--scale must be above 0 and at most 20"
            );
            let store = open_store(&cli.db).await?;
            let started = std::time::Instant::now();
            let enrollments = seed::load_scale(&store, scale).await?;
            eprintln!(
                "scale {scale} loaded: {enrollments} enrollments in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Seed { demo, .. } => {
            anyhow::ensure!(demo, "say what to load: --demo or --scale N");
            let store = open_store(&cli.db).await?;
            anyhow::ensure!(
                !seed::demo_loaded(store.db()).await?,
                "the demo data is already loaded"
            );
            seed::load_demo(&store).await?;
            eprintln!("demo data loaded");
            Ok(())
        }
        Command::User(UserCommand::Add {
            email,
            name,
            role,
            org,
            picture,
        }) => {
            let store = open_store(&cli.db).await?;
            let user = users::add_user(
                &store,
                NewUser {
                    email,
                    name,
                    role: role.into(),
                    organization: org,
                    picture,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", user.id);
            Ok(())
        }
        Command::Token { email, ttl } => {
            let store = open_store(&cli.db).await?;
            let keys = token_keys(&cli.auth, &cli.db)?;
            let user = users::by_email(&store, &email)
                .await
                .map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
            println!("{}", keys.issue(user.id, ttl)?);
            Ok(())
        }
    }
}

async fn open(config: &DbConfig) -> anyhow::Result<DatabaseConnection> {
    db::connect(config).await.with_context(|| {
        format!(
            "cannot open the database at {}",
            db::redact(&config.database_url)
        )
    })
}

/// The migrated database, for a command that runs use cases outside the server. On PostgreSQL
/// what they announce reaches the running servers' subscriptions.
async fn open_store(config: &DbConfig) -> anyhow::Result<Store> {
    let db = open(config).await?;
    db::migrate(&db).await.context("migrations failed")?;
    Ok(Store::new(db, Clock::default(), Bus::default()))
}

async fn serve(db_config: &DbConfig, auth: &AuthConfig, config: ServeConfig) -> anyhow::Result<()> {
    let mut keys = token_keys(auth, db_config)?;
    if let Some(oidc) = auth.oidc() {
        let issuer = oidc.issuer.clone();
        keys = keys.with_oidc(std::sync::Arc::new(crate::identity::oidc::Oidc::new(oidc)?));
        tracing::info!(%issuer, "accepting tokens of the OpenID provider");
    }
    let settings = app::Settings {
        max_page_size: config.max_page_size,
        slow_operation: config.slow_operation,
        cors_origins: config.cors_origins.clone(),
        limits: Limits {
            depth: config.max_depth,
            complexity: config.max_complexity,
            root_fields: config.max_root_fields,
            aliases: config.max_aliases,
            body_bytes: config.max_body_bytes,
            batch: config.max_batch,
            timeout: config.request_timeout,
            introspection: config.introspection,
            subscriptions_per_connection: config.max_subscriptions_per_connection,
            connections_per_client: config.max_connections_per_client,
            trusted_proxies: config.trusted_proxies.clone(),
        },
        response_cache: config.response_cache,
        delivery: DeliveryConfig {
            webhook: match (&config.webhook_url, &config.webhook_secret) {
                (Some(url), Some(secret)) => Some(WebhookConfig::new(url, secret)?),
                _ => None,
            },
            email: match (&config.smtp_url, &config.mail_from) {
                (Some(url), Some(from)) => Some(EmailConfig::new(url, from)?),
                _ => None,
            },
            push: vapid_key(&config, db_config)?
                .map(|key| {
                    PushConfig::new(&key, &config.vapid_subject, config.push_allow_http)
                        .map(|push| push.with_internal_hosts(config.push_allow_hosts.clone()))
                })
                .transpose()?,
            ..DeliveryConfig::default()
        },
        write_queue: config.write_queue,
        public_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen)),
        ..app::Settings::new(db_config.clone(), keys.clone())
    };
    let state = App::build(settings).await?;
    state.start_timers(std::time::Duration::from_secs(5));
    let store = &state.store;
    let demo_wanted = match config.demo_data {
        DemoData::Always => true,
        DemoData::Auto => db_config.is_default(),
        DemoData::Never => false,
    };
    if demo_wanted && entity::user::Entity::find().count(store.db()).await? == 0 {
        seed::load_demo(store).await?;
        tracing::info!("loaded demo data into the empty database");
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    println!("Roster is serving GraphQL at http://{address}/graphql (GraphiQL in a browser)");
    for (label, email) in [
        ("demo student", seed::DEMO_STUDENT_EMAIL),
        ("demo teacher", seed::DEMO_TEACHER_EMAIL),
    ] {
        if let Ok(user) = users::by_email(store, email).await {
            let token = keys.issue(user.id, Duration::from_secs(7 * 24 * 3600))?;
            println!("Bearer token for the {label} ({email}), valid 7 days:\n  {token}");
        }
    }
    // On SIGTERM or Ctrl-C: stop accepting, close WebSockets with a close frame, let in-flight
    // requests finish, and give up on them after the grace period.
    let stopping = state.clone();
    let server = axum::serve(
        listener,
        crate::http::router(state.clone())
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        stopping.begin_shutdown();
    });
    let deadline = async {
        state.shutting_down().await;
        tokio::time::sleep(config.shutdown_grace).await;
    };
    // Upgraded WebSocket connections are no longer the HTTP server's: wait for them to have
    // sent their close frames too.
    let drained = async {
        server.await?;
        state.websockets_closed().await;
        Ok::<_, std::io::Error>(())
    };
    tokio::select! {
        served = drained => served?,
        () = deadline => tracing::warn!(
            grace = ?config.shutdown_grace,
            "requests still in flight after the grace period; stopping anyway"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves after SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// The signing keys: from `ROSTER_JWT_SECRET`, or for a SQLite file a secret generated once and
/// kept beside it (so tokens printed by `roster token` work with `roster serve`).
fn token_keys(auth: &AuthConfig, db: &DbConfig) -> anyhow::Result<TokenKeys> {
    if let Some(secret) = &auth.jwt_secret {
        return TokenKeys::new(secret.as_bytes());
    }
    let Some(db_path) = db.sqlite_path() else {
        anyhow::bail!(
            "ROSTER_JWT_SECRET is required with this database (at least {MIN_SECRET_LEN} bytes)"
        );
    };
    let dir = db_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = dir.join(".roster-jwt-secret");
    let secret = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_owned(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::create_dir_all(dir)?;
            write_private(&path, &secret)
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a development JWT secret");
            secret
        }
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    TokenKeys::new(secret.as_bytes())
}

/// The VAPID private key: the configured one, else (with SQLite) the one kept beside the
/// database file, generated on first use; `None` (push off) with PostgreSQL and no key.
fn vapid_key(config: &ServeConfig, db: &DbConfig) -> anyhow::Result<Option<String>> {
    if let Some(key) = &config.vapid_private_key {
        return Ok(Some(key.clone()));
    }
    let Some(db_path) = db.sqlite_path() else {
        tracing::info!("Web Push is off: set ROSTER_VAPID_PRIVATE_KEY to turn it on");
        return Ok(None);
    };
    let dir = db_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = dir.join(".roster-vapid-key");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key = PushConfig::generate_private_key();
            std::fs::create_dir_all(dir)?;
            write_private(&path, &key)
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a VAPID key for Web Push");
            Ok(Some(key))
        }
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

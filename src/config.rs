//! Every setting, its flag, its environment variable and its default.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::{Args, ValueEnum};

/// The default database: a SQLite file in the working directory, created on first run.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://roster.db";

/// Settings shared by every subcommand that touches the database.
#[derive(Args, Clone, Debug)]
pub struct DbConfig {
    /// Database URL: `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "ROSTER_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true, global = true)]
    pub database_url: String,

    /// Largest number of pooled database connections (default: 16 on PostgreSQL, 8 on SQLite).
    #[arg(long, env = "ROSTER_DB_MAX_CONNECTIONS", global = true)]
    pub db_max_connections: Option<u32>,

    /// Longest wait for a pooled connection (default 3s). When the database does not answer,
    /// requests fail with `UNAVAILABLE` after this instead of waiting for the request timeout.
    #[arg(long, env = "ROSTER_DB_ACQUIRE_TIMEOUT", value_parser = humantime::parse_duration, global = true)]
    pub db_acquire_timeout: Option<Duration>,
}

/// Settings for signing and checking bearer tokens.
#[derive(Args, Clone, Debug)]
pub struct AuthConfig {
    /// HS256 secret for bearer tokens, at least 32 bytes. Unset with SQLite: one is generated
    /// once and kept in `.roster-jwt-secret` beside the database file.
    #[arg(long, env = "ROSTER_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// The OpenID provider whose tokens are accepted beside the HS256 ones: its issuer URL,
    /// exactly as in its tokens' `iss` (keys found through
    /// `/.well-known/openid-configuration`).
    #[arg(long, env = "ROSTER_OIDC_ISSUER", global = true)]
    pub oidc_issuer: Option<String>,

    /// The provider's JWKS URL, instead of discovery.
    #[arg(long, env = "ROSTER_OIDC_JWKS_URL", global = true)]
    pub oidc_jwks_url: Option<String>,

    /// The audience (`aud`) the provider's tokens for Roster carry: the client id or the API's
    /// identifier. Required with an issuer.
    #[arg(long, env = "ROSTER_OIDC_AUDIENCE", global = true)]
    pub oidc_audience: Option<String>,

    /// Allow plain `http://` provider URLs (tests and private networks).
    #[arg(long, env = "ROSTER_OIDC_ALLOW_HTTP", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub oidc_allow_http: bool,

    /// Create a user (a STUDENT of `ROSTER_OIDC_ORGANIZATION`) on first sign-in when no user
    /// has the identity or its verified e-mail.
    #[arg(long, env = "ROSTER_OIDC_AUTO_CREATE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub oidc_auto_create: bool,

    /// The organization users created on first sign-in join (created if missing).
    #[arg(long, env = "ROSTER_OIDC_ORGANIZATION", global = true)]
    pub oidc_organization: Option<String>,

    /// A claim (e.g. `roles` or `groups`) whose values may give a user created on first
    /// sign-in the role `admin`, `coordinator` or `teacher`; never changes an existing user.
    #[arg(long, env = "ROSTER_OIDC_ROLE_CLAIM", global = true)]
    pub oidc_role_claim: Option<String>,
}

impl AuthConfig {
    /// The OpenID provider settings, when an issuer is configured.
    pub fn oidc(&self) -> Option<crate::domain::identity::OidcConfig> {
        let issuer = self.oidc_issuer.clone().filter(|i| !i.trim().is_empty())?;
        Some(crate::domain::identity::OidcConfig {
            issuer,
            jwks_url: self.oidc_jwks_url.clone().filter(|u| !u.trim().is_empty()),
            audience: self.oidc_audience.clone().unwrap_or_default(),
            allow_http: self.oidc_allow_http,
            auto_create: self.oidc_auto_create,
            organization: self.oidc_organization.clone(),
            role_claim: self
                .oidc_role_claim
                .clone()
                .filter(|c| !c.trim().is_empty()),
        })
    }
}

/// The log filter when none is asked for: Roster's own lines at INFO, libraries' at WARN.
pub const DEFAULT_LOG: &str = "warn,roster=info";

/// Settings for logging.
#[derive(Args, Clone, Debug)]
pub struct LogConfig {
    /// Log filter in `tracing`'s syntax, e.g. `info` (libraries too) or `roster=debug`.
    /// `RUST_LOG`, when set, wins.
    #[arg(long, env = "ROSTER_LOG", default_value = DEFAULT_LOG, global = true)]
    pub log: String,

    /// Log line format: `text` for people, `json` for machines.
    #[arg(long, env = "ROSTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// When `serve` loads demo data.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DemoData {
    /// Into an empty database, only when it is the default SQLite file.
    Auto,
    /// Into an empty database, whatever the backend.
    Always,
    /// Never.
    Never,
}

/// Settings of `roster serve`.
#[derive(Args, Clone, Debug)]
pub struct ServeConfig {
    /// Address to listen on. Loopback by default: all interfaces (`0.0.0.0:8080`) only when
    /// told, as the container image does.
    #[arg(long, env = "ROSTER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The address clients reach this server at (behind a proxy, the public one), for the
    /// links it hands out: calendar feed URLs. Default: `http://` and the listen address.
    #[arg(long, env = "ROSTER_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Writes admitted at once, running or waiting for a connection, before more are refused
    /// at once with `UNAVAILABLE` (HTTP 503, `Retry-After`) instead of queueing into the request
    /// timeout. Default: as many as can have their turn within 100 ms at the pace writes are
    /// being served (at least two per connection writes may hold, the pool less two kept for
    /// reads; at most 32 per connection).
    #[arg(long, env = "ROSTER_WRITE_QUEUE")]
    pub write_queue: Option<usize>,

    /// Whether to load demo data into an empty database at start-up.
    #[arg(long, env = "ROSTER_DEMO_DATA", value_enum, default_value_t = DemoData::Auto)]
    pub demo_data: DemoData,

    /// Largest page a connection field returns (`first`).
    #[arg(long, env = "ROSTER_MAX_PAGE_SIZE", default_value_t = 100)]
    pub max_page_size: u64,

    /// How long in-flight requests may take to finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "ROSTER_SHUTDOWN_GRACE", value_parser = humantime::parse_duration, default_value = "10s")]
    pub shutdown_grace: Duration,

    /// Origins whose browser pages may call the API, comma-separated (`*` for any). Unset:
    /// same-origin only.
    #[arg(long, env = "ROSTER_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Operations slower than this are logged (WARN) with their name.
    #[arg(long, env = "ROSTER_SLOW_OPERATION", value_parser = humantime::parse_duration, default_value = "500ms")]
    pub slow_operation: Duration,

    /// Deepest nesting of selections a query may have.
    #[arg(long, env = "ROSTER_MAX_DEPTH", default_value_t = 16)]
    pub max_depth: usize,

    /// Largest query complexity (selected fields, as async-graphql counts them).
    #[arg(long, env = "ROSTER_MAX_COMPLEXITY", default_value_t = 500)]
    pub max_complexity: usize,

    /// Most root fields (aliases included) in one operation.
    #[arg(long, env = "ROSTER_MAX_ROOT_FIELDS", default_value_t = 20)]
    pub max_root_fields: usize,

    /// Most aliases in one document.
    #[arg(long, env = "ROSTER_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,

    /// Largest request body in bytes.
    #[arg(long, env = "ROSTER_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// Most operations in one batched request.
    #[arg(long, env = "ROSTER_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,

    /// Longest time one operation may run; it is stopped (and its transaction rolled back) then.
    #[arg(long, env = "ROSTER_REQUEST_TIMEOUT", value_parser = humantime::parse_duration, default_value = "15s")]
    pub request_timeout: Duration,

    /// Most operations (subscriptions, mostly) open at once on one WebSocket connection; one
    /// more is refused with the protocol's `error` message (`LIMIT_EXCEEDED`).
    #[arg(
        long,
        env = "ROSTER_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = 100
    )]
    pub max_subscriptions_per_connection: usize,

    /// Most WebSocket connections open at once from one client (one remote address, loopback
    /// included); one more is refused with HTTP 429.
    #[arg(long, env = "ROSTER_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 32)]
    pub max_connections_per_client: usize,

    /// Proxies (the balancer), as addresses or CIDR ranges, comma-separated: a WebSocket
    /// connection through one of them is counted for the client that the last entry of its
    /// `X-Forwarded-For` names (the one the proxy added). Unset: the peer is the client.
    #[arg(long, env = "ROSTER_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<AddressRange>,

    /// Whether the schema answers introspection (GraphiQL and code generators need it).
    #[arg(long, env = "ROSTER_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,

    /// Whether whole answers to anonymous queries are kept and served again while the database
    /// has not changed (checked on every request, so never stale).
    #[arg(long, env = "ROSTER_RESPONSE_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub response_cache: bool,

    /// Every notification is also POSTed here as JSON, signed by the Standard Webhooks scheme
    /// (for SMS or chat gateways). Needs `ROSTER_WEBHOOK_SECRET`.
    #[arg(
        long,
        env = "ROSTER_WEBHOOK_URL",
        requires = "webhook_secret",
        hide_env_values = true
    )]
    pub webhook_url: Option<String>,

    /// The webhook signing secret, `whsec_` and base64.
    #[arg(long, env = "ROSTER_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Every notification is also e-mailed to its recipient through this SMTP relay, in
    /// lettre's URL form (`smtps://user:pass@host`, `smtp://host:587?tls=required`, plain
    /// `smtp://host:port` for a local relay). Needs `ROSTER_MAIL_FROM`.
    #[arg(
        long,
        env = "ROSTER_SMTP_URL",
        hide_env_values = true,
        requires = "mail_from"
    )]
    pub smtp_url: Option<String>,

    /// The sender of notification e-mails, such as `Roster <roster@school.example>`.
    #[arg(long, env = "ROSTER_MAIL_FROM")]
    pub mail_from: Option<String>,

    /// The VAPID private key for Web Push: base64url of the P-256 key's 32 raw bytes. Unset with
    /// SQLite: one is generated once and kept in `.roster-vapid-key` beside the database file;
    /// unset with PostgreSQL: Web Push is off.
    #[arg(long, env = "ROSTER_VAPID_PRIVATE_KEY", hide_env_values = true)]
    pub vapid_private_key: Option<String>,

    /// Who runs this server, for push services: a `mailto:` or `https:` URL.
    #[arg(
        long,
        env = "ROSTER_VAPID_SUBJECT",
        default_value = "mailto:admin@localhost"
    )]
    pub vapid_subject: String,

    /// Allow plain `http://` push endpoints (tests and private networks).
    #[arg(long, env = "ROSTER_PUSH_ALLOW_HTTP", default_value_t = false, action = clap::ArgAction::Set)]
    pub push_allow_http: bool,

    /// Push service hosts allowed although they are, or resolve to, loopback, private or
    /// link-local addresses (a push service under test on a private network), comma-separated.
    /// Every other endpoint must be on the public internet: see README, "Web Push".
    #[arg(long, env = "ROSTER_PUSH_ALLOW_HOSTS", value_delimiter = ',')]
    pub push_allow_hosts: Vec<String>,
}

impl DbConfig {
    /// A configuration for `database_url` with the defaults.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            db_max_connections: None,
            db_acquire_timeout: None,
        }
    }

    /// The SQLite file this configuration points at, if it is a file-backed SQLite URL.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        sqlite_path(&self.database_url)
    }

    /// Whether the URL is the built-in default (a local SQLite file).
    pub fn is_default(&self) -> bool {
        self.database_url == DEFAULT_DATABASE_URL
    }
}

/// The file behind a `sqlite:` URL; `None` for other backends and in-memory databases.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_path_reads_file_urls_and_skips_memory() {
        assert_eq!(sqlite_path("sqlite://roster.db"), Some("roster.db".into()));
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db?mode=rwc"),
            Some("/tmp/x.db".into())
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://localhost/roster"), None);
    }
}

/// Addresses in CIDR form (`10.0.0.0/8`, `fd00::/8`); a bare address is a range of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

impl AddressRange {
    /// Whether `ip` (an IPv4-mapped IPv6 address as its IPv4 one) is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked<const BITS: u32>(bits: u128, prefix: u8) -> u128 {
            let host = BITS.saturating_sub(u32::from(prefix));
            bits.checked_shr(host).unwrap_or(0)
        }
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked::<32>(u32::from(net).into(), self.prefix)
                    == masked::<32>(u32::from(ip).into(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked::<128>(u128::from(net), self.prefix)
                    == masked::<128>(u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for AddressRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = text.trim().split_once('/').unwrap_or((text.trim(), ""));
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("`{text}` is not an address or an address/prefix"))?;
        let most = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            "" => most,
            bits => bits
                .parse()
                .ok()
                .filter(|bits| *bits <= most)
                .ok_or_else(|| format!("`{text}`: the prefix must be 0 to {most}"))?,
        };
        Ok(Self { network, prefix })
    }
}

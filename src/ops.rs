//! What operators run beside `serve`: `roster check` (is this configuration one that will
//! serve?) and `roster backup` (a consistent copy of a SQLite database, while it serves).

use std::path::Path;

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use crate::{
    config::{AuthConfig, DbConfig, ServeConfig},
    delivery::{EmailConfig, PushConfig, WebhookConfig},
    identity::{oidc::Oidc, tokens::TokenKeys},
    store::db,
};

/// Everything wrong with the configuration `serve` would run with, one line each; empty when
/// it would start. Reaches the database and the OpenID provider, changes nothing in either.
pub async fn check(db_config: &DbConfig, auth: &AuthConfig, serve: &ServeConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |what: &str, why: String| problems.push(format!("{what}: {why}"));

    match (&auth.jwt_secret, db_config.sqlite_path()) {
        (Some(secret), _) => {
            if let Err(e) = TokenKeys::new(secret.as_bytes()) {
                problem("ROSTER_JWT_SECRET", e.to_string());
            }
        }
        (None, None) => problem(
            "ROSTER_JWT_SECRET",
            "required with PostgreSQL (a random string of at least 32 bytes, the same on every \
             replica)"
                .into(),
        ),
        // SQLite without a secret: `serve` generates one beside the database file.
        (None, Some(_)) => {}
    }
    if let (Some(url), Some(secret)) = (&serve.webhook_url, &serve.webhook_secret)
        && let Err(e) = WebhookConfig::new(url, secret)
    {
        problem("webhook", e.to_string());
    }
    if let (Some(url), Some(from)) = (&serve.smtp_url, &serve.mail_from)
        && let Err(e) = EmailConfig::new(url, from)
    {
        problem("e-mail", e.to_string());
    }
    if let Some(key) = &serve.vapid_private_key
        && let Err(e) = PushConfig::new(key, &serve.vapid_subject, serve.push_allow_http)
    {
        problem("Web Push", e.to_string());
    }
    if let Err(e) = reach_database(db_config).await {
        problem("database", format!("{e:#}"));
    }
    if let Some(config) = auth.oidc() {
        let issuer = config.issuer.clone();
        let reached = match Oidc::new(config) {
            Ok(provider) => provider.probe().await,
            Err(e) => Err(e),
        };
        if let Err(e) = reached {
            problem(&format!("OpenID provider {issuer}"), format!("{e:#}"));
        }
    }
    problems
}

/// Opens the database, runs a query and reads which migrations it has, without applying any.
async fn reach_database(config: &DbConfig) -> anyhow::Result<()> {
    let url = db::redact(&config.database_url);
    if let Some(path) = config.sqlite_path()
        && !path.exists()
    {
        // `serve` creates the file; opening it here would too, so look at its folder instead.
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        anyhow::ensure!(
            folder.is_dir(),
            "{url}: the folder {} does not exist",
            folder.display()
        );
        return Ok(());
    }
    let connection = db::connect(config)
        .await
        .with_context(|| format!("cannot open {url}"))?;
    let backend = connection.get_database_backend();
    connection
        .execute_raw(Statement::from_string(backend, "SELECT 1"))
        .await
        .with_context(|| format!("{url} does not answer queries"))?;
    // Read-only: on a database a newer release migrated, this names the migrations this
    // release does not know, which `serve` tolerates; only unreadable tables are a problem.
    let status = Migrator::get_pending_migrations_read_only(&connection).await;
    connection.close().await.ok();
    match status {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("file is missing") => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read the migrations of {url}")),
    }
}

/// Writes a consistent copy of the SQLite database of `config` to `path` and returns its
/// size. SQLite's `VACUUM INTO` reads one snapshot in a read transaction: running servers go
/// on writing (WAL mode), and the copy holds every transaction committed before it began.
///
/// # Errors
/// PostgreSQL (whose tools do this better), no database, `path` exists, or SQLite's error.
pub async fn backup(config: &DbConfig, path: &Path) -> anyhow::Result<u64> {
    let Some(source) = config.sqlite_path() else {
        anyhow::bail!(
            "roster backup copies SQLite databases; on PostgreSQL use pg_dump (a logical copy, \
             e.g. `pg_dump -Fc`) or pg_basebackup (the cluster, with WAL archiving for \
             point-in-time recovery): README, \"Backups\""
        );
    };
    anyhow::ensure!(
        source.exists(),
        "there is no database at {}",
        source.display()
    );
    anyhow::ensure!(
        !path.exists(),
        "{} exists; back up to a new file",
        path.display()
    );
    let target = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    let connection = db::connect(config)
        .await
        .with_context(|| format!("cannot open {}", source.display()))?;
    let copied = connection
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            "VACUUM INTO ?",
            [target.into()],
        ))
        .await
        .with_context(|| format!("cannot write {}", path.display()));
    connection.close().await.ok();
    copied?;
    Ok(std::fs::metadata(path)?.len())
}

//! What Roster's benchmark programs share: starting a real `roster serve` on a free loopback
//! port, driving it with a fixed number of concurrent clients, and summarising latencies.
//!
//! Load goes to 127.0.0.1 only, and every run is bounded by a request count.

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::Value;

/// A `roster serve` child process, killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// Starts `binary serve` on `database_url` with `secret`, without demo data, and waits until
    /// `/healthz` answers.
    ///
    /// # Errors
    /// The process cannot start or does not become healthy within 30 s.
    pub async fn start(binary: &Path, database_url: &str, secret: &str) -> anyhow::Result<Self> {
        Self::start_with(binary, database_url, secret, &[]).await
    }

    /// [`Server::start`] with more environment variables (`ROSTER_WEBHOOK_URL`, …).
    ///
    /// # Errors
    /// The process cannot start or does not become healthy within 30 s.
    pub async fn start_with(
        binary: &Path,
        database_url: &str,
        secret: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(binary)
            .arg("serve")
            .env("ROSTER_DATABASE_URL", database_url)
            .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
            .env("ROSTER_JWT_SECRET", secret)
            .env("ROSTER_DEMO_DATA", "never")
            .env("ROSTER_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/healthz", server.base)).send().await
                && r.status().is_success()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("roster serve did not become healthy within 30 s")
    }

    /// The server's resident set size in kB.
    pub fn rss_kb(&self) -> Option<u64> {
        rss_kb(self.child.id())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A process's resident set size in kB, read from `/proc`.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The CPU time a process has used so far (user and system), read from `/proc`, in
/// milliseconds (clock ticks of 10 ms, the kernel's `USER_HZ` of 100).
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some((ticks(11)? + ticks(12)?) * 10.0)
}

impl Server {
    /// Kills the process and waits for it (what dropping does).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One GraphQL request of a run: the bearer token and the body.
pub struct Job {
    pub token: Option<String>,
    pub body: Value,
}

/// What a run measured.
pub struct Summary {
    pub requests: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl Summary {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sends every job once to `{base}/graphql` from `concurrency` clients that each take the next
/// job as soon as their previous answer arrived. A response with `errors` counts as an error.
pub async fn run_jobs(base: &str, jobs: Vec<Job>, concurrency: usize) -> Summary {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("http client");
    let url = format!("{base}/graphql");
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, jobs, next) =
                (client.clone(), url.clone(), jobs.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let mut request = client.post(&url).json(&job.body);
                    if let Some(token) = &job.token {
                        request = request.bearer_auth(token);
                    }
                    let sent = Instant::now();
                    let outcome = match request.send().await {
                        Ok(response) => response.json::<Value>().await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    latencies.push(sent.elapsed());
                    match outcome {
                        Ok(body) if body.get("errors").is_none() => {}
                        Ok(body) => errors.push(body.to_string()),
                        Err(e) => errors.push(e),
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(jobs.len());
    let mut errors = Vec::new();
    for worker in workers {
        let (l, e) = worker.await.expect("load worker");
        latencies.extend(l);
        errors.extend(e);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Summary {
        requests: latencies.len(),
        errors: errors.len(),
        first_error: errors.into_iter().next(),
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}

/// The `q` quantile of sorted samples (nearest rank).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Where a benchmark runs: the same three flags for every benchmark program.
#[derive(clap::Args, Clone, Debug)]
pub struct Target {
    /// Database to run on (created and migrated if needed): `sqlite://…` or `postgres://…`.
    #[arg(long)]
    pub database_url: String,
    /// Label for the table's first column.
    #[arg(long)]
    pub label: String,
    /// The `roster` binary to serve with.
    #[arg(long, default_value = "target/release/roster")]
    pub roster: std::path::PathBuf,
}

/// Seeds `roster seed --scale` into the target's database unless the data set is already
/// there; says what it did.
///
/// # Errors
/// The seed command fails.
pub fn seed_scale(target: &Target, scale: f64) -> anyhow::Result<String> {
    let probe = Command::new(&target.roster)
        .args(["token", "--email", "student0@scale.roster.dev"])
        .env("ROSTER_DATABASE_URL", &target.database_url)
        .env("ROSTER_JWT_SECRET", SECRET)
        .env("ROSTER_LOG", "error")
        .output()
        .with_context(|| format!("running {}", target.roster.display()))?;
    if probe.status.success() {
        return Ok("nothing (data set already there)".into());
    }
    let started = Instant::now();
    let status = Command::new(&target.roster)
        .args(["seed", "--scale", &scale.to_string()])
        .env("ROSTER_DATABASE_URL", &target.database_url)
        .env("ROSTER_JWT_SECRET", SECRET)
        .env("ROSTER_LOG", "warn")
        .status()?;
    if !status.success() {
        bail!("roster seed --scale {scale} failed");
    }
    Ok(format!(
        "scale {scale} in {:.1} s",
        started.elapsed().as_secs_f64()
    ))
}

/// The secret the benchmarks sign tokens with and start `roster serve` with.
pub const SECRET: &str = "roster-bench-secret-roster-bench-secret";

/// A migrated database with an organization, a teacher and students with tokens, and
/// `roster serve` running on it.
pub struct Fixture {
    pub db: sea_orm::DatabaseConnection,
    pub organization_id: uuid::Uuid,
    pub teacher_id: uuid::Uuid,
    /// One bearer token per student, valid for an hour.
    pub tokens: Vec<String>,
    pub server: Server,
}

impl Fixture {
    /// Migrates the target's database, writes the staff and `students` students, and starts
    /// the target's `roster` binary on it.
    ///
    /// # Errors
    /// The database or the server cannot be set up.
    pub async fn prepare(target: &Target, students: usize) -> anyhow::Result<Self> {
        Self::prepare_with(target, students, &[]).await
    }

    /// [`Fixture::prepare`], the server started with more environment variables.
    ///
    /// # Errors
    /// The database or the server cannot be set up.
    pub async fn prepare_with(
        target: &Target,
        students: usize,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let (roster, database_url) = (target.roster.as_path(), target.database_url.as_str());
        // Migrated by the binary under test, not by this program's own copy of the
        // migrations: an A/B runs an older build, which refuses a schema newer than it knows.
        let migrated = std::process::Command::new(roster)
            .arg("migrate")
            .env("ROSTER_DATABASE_URL", database_url)
            .env("ROSTER_LOG", "error")
            .output()
            .with_context(|| format!("running {} migrate", roster.display()))?;
        anyhow::ensure!(
            migrated.status.success(),
            "{} migrate: {}",
            roster.display(),
            String::from_utf8_lossy(&migrated.stderr)
        );
        let db = roster::store::db::connect(&roster::config::DbConfig {
            database_url: database_url.to_owned(),
            db_max_connections: Some(4),
            db_acquire_timeout: None,
        })
        .await?;
        let keys = roster::identity::tokens::TokenKeys::new(SECRET.as_bytes())?;
        let (organization_id, teacher_id) = data::staff(&db).await?;
        let students =
            data::insert_users(&db, organization_id, entity::types::Role::Student, students)
                .await?;
        let tokens = students
            .iter()
            .map(|id| keys.issue(*id, Duration::from_secs(3600)))
            .collect::<Result<_, _>>()?;
        let server = Server::start_with(roster, database_url, SECRET, env).await?;
        Ok(Self {
            db,
            organization_id,
            teacher_id,
            tokens,
            server,
        })
    }

    /// Stops the server and starts the target's `roster` binary again on the same database
    /// with `env` (the old process is gone before the new one starts).
    ///
    /// # Errors
    /// The new server cannot start.
    pub async fn restart_with(
        &mut self,
        target: &Target,
        env: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        self.server.stop();
        self.server = Server::start_with(&target.roster, &target.database_url, SECRET, env).await?;
        Ok(())
    }

    /// One course with `n` fresh sections of ample capacity.
    ///
    /// # Errors
    /// The database fails.
    pub async fn sections(&self, n: usize) -> anyhow::Result<Vec<uuid::Uuid>> {
        data::insert_sections(&self.db, self.organization_id, self.teacher_id, n).await
    }
}

/// Bulk fixtures written straight to the database, so set-up time stays out of the figures.
pub mod data {
    use entity::{
        course, organization, section,
        types::{PromotionMode, Role},
        user,
    };
    use roster::store::clock::Clock;
    use sea_orm::{DatabaseConnection, EntityTrait, Set};
    use uuid::Uuid;

    /// An organization and a teacher in it: `(organization_id, teacher_id)`.
    pub async fn staff(db: &DatabaseConnection) -> anyhow::Result<(Uuid, Uuid)> {
        let at = Clock::default().now();
        let organization_id = Uuid::now_v7();
        organization::Entity::insert(organization::ActiveModel {
            id: Set(organization_id),
            name: Set(format!("Bench {organization_id}")),
            created_at: Set(at),
            // Left to the database's defaults, so that a schema of an earlier release takes it.
            ..Default::default()
        })
        .exec(db)
        .await?;
        let teacher = insert_users(db, organization_id, Role::Teacher, 1).await?;
        Ok((organization_id, teacher[0]))
    }

    pub async fn insert_users(
        db: &DatabaseConnection,
        organization_id: Uuid,
        role: Role,
        n: usize,
    ) -> anyhow::Result<Vec<Uuid>> {
        let at = Clock::default().now();
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        for chunk in ids.chunks(500) {
            user::Entity::insert_many(chunk.iter().map(|id| user::ActiveModel {
                id: Set(*id),
                email: Set(format!("{id}@bench.roster.dev")),
                name: Set(format!("Bench {role:?}")),
                picture: Set(None),
                role: Set(role),
                organization_id: Set(Some(organization_id)),
                created_at: Set(at),
                updated_at: Set(at),
            }))
            .exec(db)
            .await?;
        }
        Ok(ids)
    }

    /// One course with `n` sections of ample capacity and a waitlist.
    pub async fn insert_sections(
        db: &DatabaseConnection,
        organization_id: Uuid,
        teacher_id: Uuid,
        n: usize,
    ) -> anyhow::Result<Vec<Uuid>> {
        let at = Clock::default().now();
        let course_id = Uuid::now_v7();
        course::Entity::insert(course::ActiveModel {
            id: Set(course_id),
            organization_id: Set(organization_id),
            teacher_id: Set(teacher_id),
            name: Set("Bench course".into()),
            description: Set(None),
            code: Set(None),
            is_active: Set(true),
            certificate_validity_months: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .exec(db)
        .await?;
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        for chunk in ids.chunks(500) {
            section::Entity::insert_many(chunk.iter().enumerate().map(|(i, id)| {
                section::ActiveModel {
                    id: Set(*id),
                    course_id: Set(course_id),
                    name: Set(format!("Section {i}")),
                    schedule: Set(Default::default()),
                    weekdays: Set(0),
                    capacity: Set(Some(1_000_000)),
                    registered_count: Set(0),
                    pending_count: Set(0),
                    waitlist_count: Set(0),
                    finished_count: Set(0),
                    offered_count: Set(0),
                    promotion_mode: Set(PromotionMode::Automatic),
                    offer_hours: Set(24),
                    assistant_id: Set(None),
                    waitlist_seq: Set(0),
                    is_active: Set(true),
                    requires_approval: Set(false),
                    waitlist_enabled: Set(true),
                    created_at: Set(at),
                    updated_at: Set(at),
                    // The term and window columns keep the database's defaults.
                    ..Default::default()
                }
            }))
            .exec(db)
            .await?;
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&samples[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}

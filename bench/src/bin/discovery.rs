//! The read path under load, beside the PostGraphile anchor: the discovery query anonymous (from
//! the server's response cache, and from a second server with `ROSTER_RESPONSE_CACHE=false`) and
//! signed in, a course's detail, `myEnrollments`, an enroll/withdraw mix, and "registration day",
//! each at the given concurrencies (registration day at the largest). Reads are driven by wrk
//! (`bench/wrk/requests.lua`), the anchor's own tool, and the anchor is measured by the same wrk
//! in the same run. The mix needs the id an `enroll` returned, so a Rust client drives it.
//!
//! - "discovery, anonymous, uncached" sends the same anonymous discovery request to a second
//!   `roster serve` on the same database, started with `ROSTER_RESPONSE_CACHE=false` for this
//!   figure only and stopped after it (the main server idles meanwhile); its RSS is that
//!   server's.
//! - "registration day (half signed in, N writes/s)" is wrk at the largest concurrency sending
//!   discovery, anonymous (to the main server, response cache on) and signed in on alternate
//!   lines, while a task in this process commits `--write-rate` writes per second
//!   (`tokio::time::interval`, missed ticks delayed; each tick's write on its own task, so the
//!   rate holds however slow the answers): each tick one student, in turn (those
//!   beyond the first 16 when there are more), enrolls in a random active section, or, if its
//!   previous turn got an enrollment, withdraws it. The writer runs through the warm-up too, and
//!   what it still holds at the end is withdrawn, so the data set does not drift. Its errors
//!   column gives the write rate achieved while measured and the writes' domain errors
//!   (ALREADY_ENROLLED, SECTION_FULL, SCHEDULE_CONFLICT); any other answer fails the run, as in
//!   the mix. Its statements per request count the writes' statements and requests too.
//!
//! Per figure: requests/s, p50, p99, SQL statements per request (pg_stat_statements, PostgreSQL
//! only) and the server's RSS. Then, per client count the anchor was measured at, each of
//! anonymous discovery (response cache), anonymous discovery uncached, signed-in discovery and
//! registration day beside the anchor's anonymous discovery: the requests/s and p99 ratios, and
//! whether they meet the bar (at least 3× the anchor's requests/s, at most 0.5× its p99).
//! Everything targets 127.0.0.1 and is bounded in time.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use entity::{enrollment, types::EnrollmentStatus};
use rand::{Rng, SeedableRng, rngs::StdRng};
use roster_bench::{SECRET, Server, Target, millis, percentile};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, Statement,
};
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle, time::MissedTickBehavior};
use uuid::Uuid;

/// Measures the read path (and an enroll/withdraw mix) with wrk, beside the PostGraphile anchor.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Size of the data set loaded by `roster seed --scale` when the database has none.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Client counts to measure each figure at.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,
    /// Measured time per figure.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    duration: Duration,
    /// Load before each figure, not measured (the anchor's Node process needs about 15 s).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    warmup: Duration,
    /// GraphQL endpoint of the PostGraphile anchor, measured in the same run.
    #[arg(long)]
    anchor_url: Option<String>,
    /// The anchor's database, for its statement counts.
    #[arg(long)]
    anchor_database_url: Option<String>,
    /// The anchor's discovery query.
    #[arg(long, default_value = "bench/anchor/postgraphile/discovery.graphql")]
    anchor_query: PathBuf,
    /// Process id of the anchor's server, for its RSS.
    #[arg(long)]
    anchor_pid: Option<u32>,
    /// File the anchor's discovery figures are written to when it is measured, and read from
    /// when it is not (for the ratios of a second database in the same run).
    #[arg(long)]
    anchor_results: Option<PathBuf>,
    /// The wrk script sending the requests of a figure.
    #[arg(long, default_value = "bench/wrk/requests.lua")]
    wrk_script: PathBuf,
    /// Where the request files for wrk are written.
    #[arg(long, default_value = "target/bench-requests")]
    work_dir: PathBuf,
    /// Enrollments and withdrawals committed per second during the registration-day figure.
    #[arg(long, default_value_t = 20.0)]
    write_rate: f64,
    /// Only these figures (for an A/B of two builds): `anonymous`, `uncached`, `signed-in`,
    /// `course`, `mine`, `mix`, `registration-day`. All of them when not given.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// The discovery query of the anchor's shape.
const DISCOVERY: &str = "query Discovery { courses(first: 50) { edges { node { id name code \
    description createdAt teacher { name email picture } sections { id name schedule { weekday start end room } capacity \
    registeredCount } } } } }";
/// The same, signed in: the "Enrolled" badge and the waitlist length too.
const DISCOVERY_SIGNED_IN: &str = "query Discovery { courses(first: 50) { edges { node { id name \
    code description createdAt teacher { name email picture } viewerEnrollment { id status } \
    sections { id name schedule { weekday start end room } capacity registeredCount waitlistCount } } } } }";
/// A course page.
const COURSE: &str = "query Course($id: UUID!) { course(id: $id) { id name code description \
    createdAt teacher { name email picture } viewerEnrollment { id status waitlistPosition } \
    prerequisites { id name } sections { id name schedule { weekday start end room } capacity registeredCount pendingCount \
    waitlistCount seatsAvailable isFull waitlistEnabled requiresApproval } } }";
/// A student's own enrollments.
const MY_ENROLLMENTS: &str = "query Mine { myEnrollments { id status enrolledAt \
    waitlistPosition section { id name schedule { weekday start end room } capacity registeredCount } course { id name code } } }";
const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";
const WITHDRAW: &str = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }";

/// Errors a correct server answers to the enroll/withdraw mix on the benchmark data set.
const EXPECTED: &[&str] = &["ALREADY_ENROLLED", "SECTION_FULL", "SCHEDULE_CONFLICT"];

/// The figures compared with the anchor's anonymous discovery.
const ANONYMOUS: &str = "discovery, anonymous";
const UNCACHED: &str = "discovery, anonymous, uncached";
const SIGNED_IN: &str = "discovery, student";
/// Students the registration-day writer leaves alone when there are more (the mix's clients).
const WRITER_SKIPS: usize = 16;

/// What one figure measured.
struct Figure {
    system: String,
    query: String,
    clients: usize,
    requests: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    statements: Option<f64>,
    rss_mb: Option<f64>,
    failures: String,
}

impl Figure {
    fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            self.system,
            self.query,
            self.clients,
            self.requests,
            self.per_second,
            self.p50_ms,
            self.p99_ms,
            self.statements
                .map_or_else(|| "n/a".into(), |s| format!("{s:.2}")),
            self.rss_mb
                .map_or_else(|| "n/a".into(), |r| format!("{r:.0}")),
            self.failures,
        )
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.work_dir)?;
    let postgres = args.target.database_url.starts_with("postgres");
    let db = roster::store::db::connect(&roster::config::DbConfig {
        database_url: args.target.database_url.clone(),
        db_max_connections: Some(2),
        db_acquire_timeout: None,
    })
    .await?;
    let seeded = roster_bench::seed_scale(&args.target, args.scale)?;
    if postgres {
        db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
            .context("pg_stat_statements (start PostgreSQL with shared_preload_libraries=pg_stat_statements)")?;
    }

    let started = Instant::now();
    let server = Server::start(&args.target.roster, &args.target.database_url, SECRET).await?;
    let startup = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = mb(server.rss_kb());
    eprintln!(
        "{}: seeded {seeded}, serving after {:.0} ms, idle RSS {:.1} MB",
        args.target.label,
        millis(startup),
        idle_rss.unwrap_or(0.0)
    );

    let keys = roster::identity::tokens::TokenKeys::new(SECRET.as_bytes())?;
    let students = ids(&db, "SELECT id FROM users WHERE email LIKE 'student%@scale.roster.dev' ORDER BY email LIMIT 256").await?;
    let courses = ids(&db, "SELECT c.id FROM courses c WHERE c.is_active AND EXISTS (SELECT 1 FROM sections s WHERE s.course_id = c.id AND s.is_active) ORDER BY c.id LIMIT 500").await?;
    ensure!(
        !students.is_empty() && !courses.is_empty(),
        "no benchmark data set in {}",
        args.target.database_url
    );
    let tokens: Vec<String> = students
        .iter()
        .map(|id| keys.issue(*id, Duration::from_secs(6 * 3600)))
        .collect::<Result<_, _>>()?;
    check_discovery(&server.base, &db).await?;

    let url = format!("{}/graphql", server.base);
    let line = |token: Option<&str>, body: Value| format!("{}\t{body}", token.unwrap_or("-"));
    let anonymous = vec![line(None, json!({ "query": DISCOVERY }))];
    let signed_in: Vec<String> = tokens
        .iter()
        .map(|t| line(Some(t), json!({ "query": DISCOVERY_SIGNED_IN })))
        .collect();
    let reads: Vec<(&'static str, Vec<String>)> = vec![
        (ANONYMOUS, anonymous.clone()),
        (UNCACHED, anonymous.clone()),
        (SIGNED_IN, signed_in.clone()),
        (
            "course(id), student",
            courses
                .iter()
                .zip(tokens.iter().cycle())
                .map(|(c, t)| {
                    line(
                        Some(t),
                        json!({ "query": COURSE, "variables": { "id": c } }),
                    )
                })
                .collect(),
        ),
        (
            "myEnrollments",
            tokens
                .iter()
                .map(|t| line(Some(t), json!({ "query": MY_ENROLLMENTS })))
                .collect(),
        ),
    ];

    let wanted = |key: &str| args.only.is_empty() || args.only.iter().any(|o| o == key);
    let key_of = |query: &str| match query {
        ANONYMOUS => "anonymous",
        UNCACHED => "uncached",
        SIGNED_IN => "signed-in",
        "course(id), student" => "course",
        _ => "mine",
    };
    let mut figures = Vec::new();
    if let Some(anchor) = &args.anchor_url {
        let query = std::fs::read_to_string(&args.anchor_query)
            .with_context(|| format!("reading {}", args.anchor_query.display()))?;
        let anchor_db = match &args.anchor_database_url {
            Some(url) => Some(sea_orm::Database::connect(url).await?),
            None => None,
        };
        let lines = vec![line(None, json!({ "query": query }))];
        check_answers(anchor, &lines).await?;
        for &clients in &args.concurrency {
            let mut figure = measure_reads(
                &args,
                anchor,
                ANONYMOUS,
                &lines,
                clients,
                anchor_db.as_ref(),
            )
            .await?;
            figure.system = "PostGraphile (anchor)".into();
            figure.rss_mb = args
                .anchor_pid
                .and_then(|pid| mb(roster_bench::rss_kb(pid)));
            println!("{}", figure.row());
            figures.push(figure);
        }
    }
    for (query, lines) in reads.iter().filter(|(query, _)| wanted(key_of(query))) {
        // The uncached figure gets a second server of its own, up only while it is measured.
        let uncached = if *query == UNCACHED {
            let uncached = Server::start_with(
                &args.target.roster,
                &args.target.database_url,
                SECRET,
                &[("ROSTER_RESPONSE_CACHE", "false")],
            )
            .await?;
            check_discovery(&uncached.base, &db).await?;
            Some(uncached)
        } else {
            None
        };
        let serving = uncached.as_ref().unwrap_or(&server);
        check_answers(&serving.base, lines).await?;
        for &clients in &args.concurrency {
            let mut figure = measure_reads(
                &args,
                &serving.base,
                query,
                lines,
                clients,
                postgres.then_some(&db),
            )
            .await?;
            figure.system = format!("Roster on {}", args.target.label);
            figure.rss_mb = mb(serving.rss_kb());
            println!("{}", figure.row());
            figures.push(figure);
        }
        drop(uncached);
    }
    let sections = ids(&db, "SELECT s.id FROM sections s JOIN courses c ON c.id = s.course_id WHERE s.is_active AND c.is_active ORDER BY s.id LIMIT 1000").await?;
    for &clients in args.concurrency.iter().filter(|_| wanted("mix")) {
        let mut figure = mix(
            &url,
            &tokens,
            &sections,
            clients,
            args.duration,
            postgres.then_some(&db),
        )
        .await?;
        figure.system = format!("Roster on {}", args.target.label);
        figure.rss_mb = mb(server.rss_kb());
        println!("{}", figure.row());
        figures.push(figure);
    }
    let registration_day_query = registration_day_query(args.write_rate);
    if let Some(&clients) = args
        .concurrency
        .iter()
        .max()
        .filter(|_| wanted("registration-day"))
    {
        let writers = tokens.get(WRITER_SKIPS..).filter(|w| !w.is_empty());
        let mut figure = registration_day(
            &args,
            &server.base,
            &interleave(&anonymous, &signed_in),
            clients,
            writers.unwrap_or(&tokens),
            &sections,
            postgres.then_some(&db),
        )
        .await?;
        figure.system = format!("Roster on {}", args.target.label);
        figure.rss_mb = mb(server.rss_kb());
        println!("{}", figure.row());
        figures.push(figure);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!();
    println!(
        "{}: start-up on the existing database {:.0} ms; RSS idle after start {:.1} MB, idle after the run {:.1} MB.",
        args.target.label,
        millis(startup),
        idle_rss.unwrap_or(0.0),
        mb(server.rss_kb()).unwrap_or(0.0)
    );
    let anchor: Vec<(usize, f64, f64)> = if args.anchor_url.is_some() {
        let measured: Vec<_> = figures
            .iter()
            .filter(|f| f.system.starts_with("PostGraphile"))
            .map(|f| (f.clients, f.per_second, f.p99_ms))
            .collect();
        if let Some(path) = &args.anchor_results {
            std::fs::write(path, serde_json::to_string(&measured)?)?;
        }
        measured
    } else if let Some(path) = args.anchor_results.as_ref().filter(|p| p.exists()) {
        serde_json::from_str(&std::fs::read_to_string(path)?)?
    } else {
        Vec::new()
    };
    let compared = [
        (ANONYMOUS, "anonymous discovery, response cache"),
        (UNCACHED, "anonymous discovery, uncached"),
        (SIGNED_IN, "signed-in discovery"),
        (
            registration_day_query.as_str(),
            registration_day_query.as_str(),
        ),
    ];
    for (query, name) in compared {
        for &(clients, anchor_per_second, anchor_p99) in &anchor {
            if let Some(roster) = figures.iter().find(|f| {
                f.system.starts_with("Roster") && f.query == query && f.clients == clients
            }) {
                println!(
                    "{}",
                    ratio_line(
                        &args.target.label,
                        name,
                        clients,
                        (roster.per_second, roster.p99_ms),
                        (anchor_per_second, anchor_p99),
                    )
                );
            }
        }
    }
    Ok(())
}

/// The query column of the registration-day figure.
fn registration_day_query(write_rate: f64) -> String {
    format!("registration day (half signed in, {write_rate} writes/s)")
}

/// Whether a figure meets the bar beside the anchor's: at least 3× its requests/s and at most
/// half its p99.
fn meets_the_bar(per_second_ratio: f64, p99_ratio: f64) -> bool {
    per_second_ratio >= 3.0 && p99_ratio <= 0.5
}

/// One line of the comparison with the anchor: `(requests/s, p99 ms)` of Roster and of the
/// anchor at the same client count.
fn ratio_line(
    label: &str,
    name: &str,
    clients: usize,
    (per_second, p99): (f64, f64),
    (anchor_per_second, anchor_p99): (f64, f64),
) -> String {
    let (per_second, p99) = (per_second / anchor_per_second, p99 / anchor_p99);
    format!(
        "{label}: {name} at {clients} client(s): {per_second:.2}× the anchor's requests/s, p99 {p99:.2}× the anchor's; {}.",
        if meets_the_bar(per_second, p99) {
            "meets the bar"
        } else {
            "below the bar"
        }
    )
}

/// `a` and `b` line by line in turn, `a` first, each cycled until the longer is used up:
/// `a0 b0 a1 b1 …`. If one is empty, the other.
fn interleave(a: &[String], b: &[String]) -> Vec<String> {
    if a.is_empty() || b.is_empty() {
        return [a, b].concat();
    }
    (0..a.len().max(b.len()))
        .flat_map(|i| [a[i % a.len()].clone(), b[i % b.len()].clone()])
        .collect()
}

/// The `id` column of the rows `sql` returns.
async fn ids(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<Uuid>> {
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "id")?))
        .collect()
}

/// Sends each distinct request once (at most 20) and fails on any error: a fast wrong answer is
/// no figure.
async fn check_answers(base: &str, lines: &[String]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for line in lines.iter().take(20) {
        let (token, body) = line.split_once('\t').context("request line")?;
        let mut request = http
            .post(format!("{}/graphql", base.trim_end_matches("/graphql")))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if token != "-" {
            request = request.bearer_auth(token);
        }
        let answer: Value = request.send().await?.json().await?;
        if answer.get("errors").is_some() || answer.get("data").is_none() {
            bail!("{base} answered {body} with {answer}");
        }
    }
    Ok(())
}

/// The anonymous discovery answer is the newest 50 discoverable courses, each with its teacher,
/// and its registered counts add up to the REGISTERED rows of its sections.
async fn check_discovery(base: &str, db: &DatabaseConnection) -> anyhow::Result<()> {
    let answer: Value = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": DISCOVERY }))
        .send()
        .await?
        .json()
        .await?;
    let edges = answer["data"]["courses"]["edges"]
        .as_array()
        .with_context(|| format!("discovery answered {answer}"))?;
    ensure!(
        edges.len() == 50,
        "discovery returned {} courses",
        edges.len()
    );
    let mut sections = Vec::new();
    let mut registered = 0;
    for edge in edges {
        let node = &edge["node"];
        ensure!(
            node["teacher"]["email"].is_string(),
            "course without teacher: {node}"
        );
        for s in node["sections"].as_array().context("sections")? {
            sections.push(Uuid::parse_str(s["id"].as_str().context("section id")?)?);
            registered += s["registeredCount"].as_i64().context("registeredCount")?;
        }
    }
    let counted = enrollment::Entity::find()
        .filter(enrollment::Column::SectionId.is_in(sections.iter().copied()))
        .filter(enrollment::Column::Status.eq(EnrollmentStatus::Registered))
        .count(db)
        .await? as i64;
    ensure!(
        counted == registered,
        "registeredCount adds up to {registered}, the rows to {counted}"
    );
    eprintln!(
        "discovery answer checked: 50 courses, {} sections, {registered} registered",
        sections.len()
    );
    Ok(())
}

/// Statements executed in the database since the last reset, not counting our own bookkeeping.
async fn statements(db: &DatabaseConnection) -> anyhow::Result<f64> {
    let row = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT COALESCE(SUM(calls), 0)::float8 AS n FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND query !~* 'pg_stat_statements'",
        ))
        .await?
        .context("pg_stat_statements")?;
    Ok(row.try_get("", "n")?)
}

async fn reset_statements(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.execute_unprepared("SELECT pg_stat_statements_reset()")
        .await?;
    Ok(())
}

/// A warm-up and then a measured wrk run of `lines` against `base` with `clients` connections.
async fn measure_reads(
    args: &Args,
    base: &str,
    query: &str,
    lines: &[String],
    clients: usize,
    db: Option<&DatabaseConnection>,
) -> anyhow::Result<Figure> {
    let file = request_file(args, query, lines)?;
    let url = graphql_url(base);
    if !args.warmup.is_zero() {
        wrk(args, &url, &file, clients, args.warmup).await?;
    }
    if let Some(db) = db {
        reset_statements(db).await?;
    }
    let run = wrk(args, &url, &file, clients, args.duration).await?;
    let statements = match db {
        Some(db) => Some(statements(db).await? / run.requests as f64),
        None => None,
    };
    Ok(Figure {
        system: String::new(),
        query: query.to_owned(),
        clients,
        requests: run.requests,
        per_second: run.per_second,
        p50_ms: run.p50_ms,
        p99_ms: run.p99_ms,
        statements,
        rss_mb: None,
        failures: if run.failures == 0 {
            "none".into()
        } else {
            wrk_failures(run.failures)
        },
    })
}

/// Registration day: wrk sends `lines` (discovery, anonymous and signed in by turns) to `base`
/// with `clients` connections while [`Writer`] commits `--write-rate` enrollments and
/// withdrawals per second as the `writers` students, in `sections`. The writer runs through the
/// warm-up too; the figure counts what it did while wrk was measuring, and its statements with
/// wrk's.
async fn registration_day(
    args: &Args,
    base: &str,
    lines: &[String],
    clients: usize,
    writers: &[String],
    sections: &[Uuid],
    db: Option<&DatabaseConnection>,
) -> anyhow::Result<Figure> {
    ensure!(
        args.write_rate.is_finite() && args.write_rate > 0.0,
        "--write-rate must be a positive number of writes per second"
    );
    ensure!(
        !writers.is_empty() && !sections.is_empty(),
        "registration day needs students and active sections"
    );
    let query = registration_day_query(args.write_rate);
    let file = request_file(args, &query, lines)?;
    let url = graphql_url(base);
    let writer = Writer::start(&url, writers, sections, args.write_rate);
    let measured = async {
        if !args.warmup.is_zero() {
            wrk(args, &url, &file, clients, args.warmup).await?;
        }
        let warm_up_writes = writer.take();
        if let Some(db) = db {
            reset_statements(db).await?;
        }
        let started = Instant::now();
        let run = wrk(args, &url, &file, clients, args.duration).await?;
        let elapsed = started.elapsed();
        let writes = writer.take();
        let statements = match db {
            Some(db) => Some(statements(db).await?),
            None => None,
        };
        anyhow::Ok((warm_up_writes, run, elapsed, writes, statements))
    }
    .await;
    // Stop the writer (and withdraw what it still holds) whatever happened to wrk.
    writer.stop().await?;
    let (warm_up_writes, run, elapsed, writes, statements) = measured?;
    for outcomes in [&warm_up_writes, &writes] {
        let unexpected = unexpected(outcomes);
        ensure!(
            unexpected.is_empty(),
            "unexpected registration-day writes: {unexpected:?}"
        );
    }
    let written: usize = writes.values().sum();
    let statements = statements.map(|s| s / (run.requests as f64 + written as f64));
    Ok(Figure {
        system: String::new(),
        query,
        clients,
        requests: run.requests,
        per_second: run.per_second,
        p50_ms: run.p50_ms,
        p99_ms: run.p99_ms,
        statements,
        rss_mb: None,
        failures: registration_day_failures(
            written as f64 / elapsed.as_secs_f64(),
            &writes,
            run.failures,
        ),
    })
}

/// The errors column of the registration-day figure: the write rate achieved, the writes'
/// domain errors, and wrk's failures if any.
fn registration_day_failures(
    write_rate: f64,
    writes: &BTreeMap<String, usize>,
    wrk_failed: u64,
) -> String {
    let mut parts = vec![format!("writes: {write_rate:.1}/s")];
    parts.extend(errors(writes));
    if wrk_failed > 0 {
        parts.push(wrk_failures(wrk_failed));
    }
    parts.join(", ")
}

fn wrk_failures(n: u64) -> String {
    format!("{n} non-2xx or socket errors")
}

/// The writer of the registration-day figure: a task committing a steady rate of enrollments
/// and withdrawals, one student per tick in turn, each turn of a student alternating an
/// `enroll` in a random section and the `withdraw` of what it got.
struct Writer {
    outcomes: Arc<Mutex<BTreeMap<String, usize>>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Writer {
    fn start(url: &str, tokens: &[String], sections: &[Uuid], per_second: f64) -> Self {
        let outcomes = Arc::new(Mutex::new(BTreeMap::new()));
        let (stop, mut stopped) = oneshot::channel();
        let (url, tokens, sections, tally) = (
            url.to_owned(),
            tokens.to_vec(),
            sections.to_vec(),
            outcomes.clone(),
        );
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut rng = StdRng::seed_from_u64(20);
            // Each student's held enrollment; a student's turns are `tokens.len()` ticks apart.
            let held: Vec<Arc<tokio::sync::Mutex<Option<String>>>> =
                (0..tokens.len()).map(|_| Arc::default()).collect();
            let sections = Arc::new(sections);
            let mut writes = tokio::task::JoinSet::new();
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            for student in (0..tokens.len()).cycle() {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {}
                }
                // Each tick's write goes out on its own task, so that the rate holds however
                // long an answer takes under the read load.
                let (http, url, token, held, sections, tally) = (
                    http.clone(),
                    url.clone(),
                    tokens[student].clone(),
                    held[student].clone(),
                    sections.clone(),
                    tally.clone(),
                );
                let mut rng = StdRng::seed_from_u64(rng.random());
                writes.spawn(async move {
                    let mut held = held.lock().await;
                    let outcome = write(&http, &url, &token, &mut held, &sections, &mut rng).await;
                    *tally
                        .lock()
                        .expect("writer tally")
                        .entry(outcome)
                        .or_default() += 1;
                });
                while writes.try_join_next().is_some() {}
            }
            while writes.join_next().await.is_some() {}
            // Leave the data set as it was found.
            for (token, held) in tokens.iter().zip(&held) {
                let mut held = held.lock().await;
                if held.is_some() {
                    let outcome = write(&http, &url, token, &mut held, &sections, &mut rng).await;
                    ensure!(
                        outcome == "withdraw ok",
                        "withdrawing after registration day: {outcome}"
                    );
                }
            }
            Ok(())
        });
        Self {
            outcomes,
            stop,
            task,
        }
    }

    /// What the writer did since the last call.
    fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut *self.outcomes.lock().expect("writer tally"))
    }

    /// Stops after the writes under way and withdraws the enrollments still held.
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// Writes `lines` where wrk reads the requests of the figure `query` from.
fn request_file(args: &Args, query: &str, lines: &[String]) -> anyhow::Result<PathBuf> {
    let file = args.work_dir.join(format!(
        "{}.txt",
        query.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    ));
    std::fs::write(&file, lines.join("\n"))?;
    Ok(file)
}

fn graphql_url(base: &str) -> String {
    if base.ends_with("/graphql") {
        base.to_owned()
    } else {
        format!("{base}/graphql")
    }
}

/// A wrk run, in a blocking thread so that tasks of this process keep running meanwhile.
async fn wrk(
    args: &Args,
    url: &str,
    requests: &Path,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<WrkRun> {
    let (script, url, requests) = (args.wrk_script.clone(), url.to_owned(), requests.to_owned());
    tokio::task::spawn_blocking(move || run_wrk(&script, &url, &requests, clients, duration))
        .await?
}

fn run_wrk(
    script: &Path,
    url: &str,
    requests: &Path,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<WrkRun> {
    let output = Command::new("wrk")
        .arg(format!("-t{}", clients.min(2)))
        .arg(format!("-c{clients}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .env("REQUESTS", requests)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_wrk(&text)
}

/// What a wrk run printed.
#[derive(Debug, PartialEq)]
struct WrkRun {
    requests: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    failures: u64,
}

/// Reads wrk's `--latency` report.
fn parse_wrk(text: &str) -> anyhow::Result<WrkRun> {
    let number = |s: &str| -> anyhow::Result<f64> {
        s.parse::<f64>()
            .with_context(|| format!("not a number in wrk's output: {s}"))
    };
    let duration_ms = |s: &str| -> anyhow::Result<f64> {
        let (value, scale) = if let Some(v) = s.strip_suffix("us") {
            (v, 0.001)
        } else if let Some(v) = s.strip_suffix("ms") {
            (v, 1.0)
        } else if let Some(v) = s.strip_suffix("m") {
            (v, 60_000.0)
        } else if let Some(v) = s.strip_suffix('s') {
            (v, 1000.0)
        } else {
            bail!("not a duration in wrk's output: {s}")
        };
        Ok(number(value)? * scale)
    };
    let mut run = WrkRun {
        requests: 0,
        per_second: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        failures: 0,
    };
    let (mut p50, mut p99, mut total) = (None, None, None);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", d] => p50 = Some(duration_ms(d)?),
            ["99%", d] => p99 = Some(duration_ms(d)?),
            [n, "requests", "in", ..] => total = Some(number(n)? as u64),
            ["Requests/sec:", r] => run.per_second = number(r)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => run.failures += number(n)? as u64,
            ["Socket", "errors:", rest @ ..] => {
                for count in rest.chunks(2).filter_map(|kv| kv.get(1)) {
                    run.failures += number(count.trim_end_matches(','))? as u64;
                }
            }
            _ => {}
        }
    }
    match (p50, p99, total) {
        (Some(p50), Some(p99), Some(total)) => {
            run.p50_ms = p50;
            run.p99_ms = p99;
            run.requests = total;
            Ok(run)
        }
        _ => bail!("wrk printed no latency distribution:\n{text}"),
    }
}

/// kB to MB.
fn mb(kb: Option<u64>) -> Option<f64> {
    kb.map(|kb| kb as f64 / 1024.0)
}

/// Each client is one student: enroll in a random section, then withdraw what it got, until
/// `duration` is over. Every answer is counted; anything but success or an expected domain
/// error fails the run.
async fn mix(
    url: &str,
    tokens: &[String],
    sections: &[Uuid],
    clients: usize,
    duration: Duration,
    db: Option<&DatabaseConnection>,
) -> anyhow::Result<Figure> {
    ensure!(
        clients <= tokens.len(),
        "more clients than benchmark students"
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    if let Some(db) = db {
        reset_statements(db).await?;
    }
    let sections = Arc::new(sections.to_vec());
    let until = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let (http, url, sections, token) = (
                http.clone(),
                url.to_owned(),
                sections.clone(),
                tokens[w].clone(),
            );
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(w as u64);
                let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
                let mut latencies = Vec::new();
                let mut held: Option<String> = None;
                while Instant::now() < until {
                    let sent = Instant::now();
                    let outcome = write(&http, &url, &token, &mut held, &sections, &mut rng).await;
                    latencies.push(sent.elapsed());
                    *outcomes.entry(outcome).or_default() += 1;
                }
                (outcomes, latencies)
            })
        })
        .collect();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut latencies = Vec::new();
    for worker in workers {
        let (o, l) = worker.await?;
        for (k, v) in o {
            *outcomes.entry(k).or_default() += v;
        }
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let unexpected = unexpected(&outcomes);
    ensure!(unexpected.is_empty(), "unexpected outcomes: {unexpected:?}");
    let statements = match db {
        Some(db) => Some(statements(db).await? / latencies.len() as f64),
        None => None,
    };
    Ok(Figure {
        system: String::new(),
        query: "enroll/withdraw mix".into(),
        clients,
        requests: latencies.len() as u64,
        per_second: latencies.len() as f64 / elapsed,
        p50_ms: millis(percentile(&latencies, 0.5)),
        p99_ms: millis(percentile(&latencies, 0.99)),
        statements,
        rss_mb: None,
        failures: {
            let errors = errors(&outcomes);
            if errors.is_empty() {
                "none".into()
            } else {
                errors.join("; ")
            }
        },
    })
}

/// One write of a student: the `withdraw` of the enrollment it `held`, or else an `enroll` in a
/// random one of `sections` (held if it was made). Answers what came back: "enroll ok",
/// "withdraw SECTION_FULL", …
async fn write(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    held: &mut Option<String>,
    sections: &[Uuid],
    rng: &mut StdRng,
) -> String {
    let (kind, body) = match held.take() {
        Some(id) => (
            "withdraw",
            json!({ "query": WITHDRAW, "variables": { "e": id } }),
        ),
        None => {
            let section = sections[rng.random_range(0..sections.len())];
            (
                "enroll",
                json!({ "query": ENROLL, "variables": { "s": section } }),
            )
        }
    };
    match http.post(url).bearer_auth(token).json(&body).send().await {
        Ok(response) => match response.json::<Value>().await {
            Ok(answer) => {
                if let Some(id) = answer["data"]["enroll"]["id"].as_str() {
                    *held = Some(id.to_owned());
                }
                match answer["errors"][0]["extensions"]["code"].as_str() {
                    Some(code) => format!("{kind} {code}"),
                    None => format!("{kind} ok"),
                }
            }
            Err(e) => format!("{kind} unreadable answer: {e}"),
        },
        Err(e) => format!("{kind} transport error: {e}"),
    }
}

/// The outcomes other than success, as "enroll SCHEDULE_CONFLICT: 3".
fn errors(outcomes: &BTreeMap<String, usize>) -> Vec<String> {
    outcomes
        .iter()
        .filter(|(k, _)| !k.ends_with(" ok"))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect()
}

/// The outcomes other than success and the domain errors in [`EXPECTED`].
fn unexpected(outcomes: &BTreeMap<String, usize>) -> Vec<String> {
    outcomes
        .iter()
        .filter(|(k, _)| !k.ends_with(" ok") && !EXPECTED.iter().any(|e| k.ends_with(e)))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 15s test @ http://127.0.0.1:55433/graphql
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    80.57ms   16.02ms 201.91ms   73.15%
    Req/Sec    99.98     20.07   151.00     70.33%
  Latency Distribution
     50%   78.74ms
     75%   88.12ms
     90%  100.46ms
     99%  139.39ms
  2989 requests in 15.02s, 131.08MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:    198.95
Transfer/sec:      8.72MB
";

    #[test]
    fn reads_wrk_latency_report() {
        assert_eq!(
            parse_wrk(REPORT).unwrap(),
            WrkRun {
                requests: 2989,
                per_second: 198.95,
                p50_ms: 78.74,
                p99_ms: 139.39,
                failures: 7,
            }
        );
    }

    #[test]
    fn reads_wrk_units() {
        let report = REPORT
            .replace("78.74ms", "912.00us")
            .replace("139.39ms", "1.20s");
        let run = parse_wrk(&report).unwrap();
        assert!((run.p50_ms - 0.912).abs() < 1e-9);
        assert!((run.p99_ms - 1200.0).abs() < 1e-9);
    }

    #[test]
    fn refuses_a_report_without_latencies() {
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn interleaves_line_by_line_cycling_the_shorter() {
        let anonymous = strings(&["-\tanon"]);
        let signed_in = strings(&["t1\tme", "t2\tme", "t3\tme"]);
        assert_eq!(
            interleave(&anonymous, &signed_in),
            strings(&[
                "-\tanon", "t1\tme", "-\tanon", "t2\tme", "-\tanon", "t3\tme"
            ])
        );
        assert_eq!(
            interleave(&strings(&["a", "b"]), &strings(&["x", "y"])),
            strings(&["a", "x", "b", "y"])
        );
        assert_eq!(interleave(&[], &signed_in), signed_in);
        assert_eq!(interleave(&anonymous, &[]), anonymous);
    }

    #[test]
    fn ratio_lines_say_whether_the_bar_is_met() {
        assert_eq!(
            ratio_line(
                "PostgreSQL",
                "anonymous discovery, response cache",
                16,
                (15298.0, 2.79),
                (384.0, 74.46)
            ),
            "PostgreSQL: anonymous discovery, response cache at 16 client(s): 39.84× the anchor's \
             requests/s, p99 0.04× the anchor's; meets the bar."
        );
        assert_eq!(
            ratio_line(
                "SQLite",
                "signed-in discovery",
                1,
                (156.0, 8.92),
                (216.0, 8.91)
            ),
            "SQLite: signed-in discovery at 1 client(s): 0.72× the anchor's requests/s, p99 \
             1.00× the anchor's; below the bar."
        );
        // Both halves of the bar count, and its edges meet it.
        assert!(meets_the_bar(3.0, 0.5));
        assert!(!meets_the_bar(10.0, 0.51));
        assert!(!meets_the_bar(2.99, 0.1));
    }

    #[test]
    fn registration_day_row_reports_the_writes() {
        assert_eq!(
            registration_day_query(20.0),
            "registration day (half signed in, 20 writes/s)"
        );
        assert_eq!(
            registration_day_query(12.5),
            "registration day (half signed in, 12.5 writes/s)"
        );
        let writes: BTreeMap<String, usize> = [
            ("enroll ok", 150),
            ("withdraw ok", 147),
            ("enroll SCHEDULE_CONFLICT", 3),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(
            registration_day_failures(19.96, &writes, 0),
            "writes: 20.0/s, enroll SCHEDULE_CONFLICT: 3"
        );
        assert_eq!(
            registration_day_failures(20.0, &BTreeMap::new(), 2),
            "writes: 20.0/s, 2 non-2xx or socket errors"
        );
        assert!(unexpected(&writes).is_empty());
        let mut broken = writes.clone();
        broken.insert("withdraw transport error: reset".into(), 1);
        assert_eq!(
            unexpected(&broken),
            vec!["withdraw transport error: reset: 1".to_owned()]
        );
    }
}

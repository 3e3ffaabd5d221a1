//! The read path under load, beside the PostGraphile anchor: the discovery query anonymous and
//! signed in, a course's detail, `myEnrollments`, and an enroll/withdraw mix, each at the given
//! concurrencies. Reads are driven by wrk (`bench/wrk/requests.lua`), the anchor's own tool, and
//! the anchor is measured by the same wrk in the same run. The mix needs the id an `enroll`
//! returned, so a Rust client drives it.
//!
//! Per figure: requests/s, p50, p99, SQL statements per request (pg_stat_statements, PostgreSQL
//! only) and the server's RSS. Everything targets 127.0.0.1 and is bounded in time.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::Command,
    sync::Arc,
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

/// What one figure measured.
struct Figure {
    system: String,
    query: &'static str,
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
    let db = roster::db::connect(&roster::config::DbConfig {
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

    let keys = roster::auth::TokenKeys::new(SECRET.as_bytes())?;
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
    let reads: Vec<(&'static str, Vec<String>)> = vec![
        (
            "discovery, anonymous",
            vec![line(None, json!({ "query": DISCOVERY }))],
        ),
        (
            "discovery, student",
            tokens
                .iter()
                .map(|t| line(Some(t), json!({ "query": DISCOVERY_SIGNED_IN })))
                .collect(),
        ),
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
                "discovery, anonymous",
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
    for (query, lines) in &reads {
        check_answers(&server.base, lines).await?;
        for &clients in &args.concurrency {
            let mut figure = measure_reads(
                &args,
                &server.base,
                query,
                lines,
                clients,
                postgres.then_some(&db),
            )
            .await?;
            figure.system = format!("Roster on {}", args.target.label);
            figure.rss_mb = mb(server.rss_kb());
            println!("{}", figure.row());
            figures.push(figure);
        }
    }
    let sections = ids(&db, "SELECT s.id FROM sections s JOIN courses c ON c.id = s.course_id WHERE s.is_active AND c.is_active ORDER BY s.id LIMIT 1000").await?;
    for &clients in &args.concurrency {
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
    for (clients, anchor_per_second, anchor_p99) in anchor {
        if let Some(roster) = figures.iter().find(|f| {
            f.system.starts_with("Roster")
                && f.query == "discovery, anonymous"
                && f.clients == clients
        }) {
            println!(
                "{}: anonymous discovery at {clients} client(s): {:.2}× the anchor's requests/s, p99 {:.2}× the anchor's.",
                args.target.label,
                roster.per_second / anchor_per_second,
                roster.p99_ms / anchor_p99
            );
        }
    }
    Ok(())
}

/// Loads `roster seed --scale` when the database holds no benchmark data set yet; says what it
/// did.
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
    query: &'static str,
    lines: &[String],
    clients: usize,
    db: Option<&DatabaseConnection>,
) -> anyhow::Result<Figure> {
    let file = args.work_dir.join(format!(
        "{}.txt",
        query.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    ));
    std::fs::write(&file, lines.join("\n"))?;
    let url = if base.ends_with("/graphql") {
        base.to_owned()
    } else {
        format!("{base}/graphql")
    };
    if !args.warmup.is_zero() {
        wrk(args, &url, &file, clients, args.warmup)?;
    }
    if let Some(db) = db {
        reset_statements(db).await?;
    }
    let run = wrk(args, &url, &file, clients, args.duration)?;
    let statements = match db {
        Some(db) => Some(statements(db).await? / run.requests as f64),
        None => None,
    };
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
        failures: if run.failures == 0 {
            "none".into()
        } else {
            format!("{} non-2xx or socket errors", run.failures)
        },
    })
}

fn wrk(
    args: &Args,
    url: &str,
    requests: &std::path::Path,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<WrkRun> {
    let output = Command::new("wrk")
        .arg(format!("-t{}", clients.min(2)))
        .arg(format!("-c{clients}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg("-s")
        .arg(&args.wrk_script)
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
                    let sent = Instant::now();
                    let answer = http.post(&url).bearer_auth(&token).json(&body).send().await;
                    let outcome = match answer {
                        Ok(response) => match response.json::<Value>().await {
                            Ok(answer) => {
                                if let Some(id) = answer["data"]["enroll"]["id"].as_str() {
                                    held = Some(id.to_owned());
                                }
                                match answer["errors"][0]["extensions"]["code"].as_str() {
                                    Some(code) => format!("{kind} {code}"),
                                    None => format!("{kind} ok"),
                                }
                            }
                            Err(e) => format!("{kind} unreadable answer: {e}"),
                        },
                        Err(e) => format!("{kind} transport error: {e}"),
                    };
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
    let unexpected: Vec<String> = outcomes
        .iter()
        .filter(|(k, _)| !k.ends_with(" ok") && !EXPECTED.iter().any(|e| k.ends_with(e)))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    ensure!(unexpected.is_empty(), "unexpected outcomes: {unexpected:?}");
    let statements = match db {
        Some(db) => Some(statements(db).await? / latencies.len() as f64),
        None => None,
    };
    Ok(Figure {
        system: String::new(),
        query: "enroll/withdraw mix",
        clients,
        requests: latencies.len() as u64,
        per_second: latencies.len() as f64 / elapsed,
        p50_ms: millis(percentile(&latencies, 0.5)),
        p99_ms: millis(percentile(&latencies, 0.99)),
        statements,
        rss_mb: None,
        failures: {
            let errors: Vec<String> = outcomes
                .iter()
                .filter(|(k, _)| !k.ends_with(" ok"))
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            if errors.is_empty() {
                "none".into()
            } else {
                errors.join("; ")
            }
        },
    })
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
}

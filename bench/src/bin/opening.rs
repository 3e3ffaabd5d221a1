//! Registration day on `roster seed --scale 1`: a term per organization opens at T, and from T
//! on every student (20,000 at scale 1) tries five sections, from as many concurrent keep-alive
//! clients as given, while 16 clients run discovery (half of them signed in).
//!
//! Each phase starts from the seeded data set with its enrollments removed (a new term: nobody
//! holds a seat yet) and every seeded section moved into its organization's new term (SQL, for
//! the set-up only); the terms are made through `createTerm` as an admin. A student's five
//! sections are drawn with a seeded RNG from the active sections, in distinct courses, each one
//! with even odds from the 5 % "popular" sections or from all of them, so the popular ones fill
//! and queue. A student sends its five `enroll`s one after another; an answer `UNAVAILABLE` with
//! HTTP 503 (the server shedding load) is counted as shed and the same request is sent again
//! after its `Retry-After`.
//!
//! - First come, first served: enrollments/s, enroll p50/p99 (every answer that was not shed,
//!   each on its own; and end to end per enroll, a shed enroll's retries and waits included),
//!   the shed answers' p99, discovery p99 just before T (idle) and during the storm, the answers
//!   by code, then the checks in SQL: every acknowledged enrollment exists, once, with the
//!   student and section it was acknowledged for; no (user, course) holds two active
//!   enrollments; every section's registered, pending and waitlist counts equal its
//!   enrollments in those states. Printed beside the goals and beside the database's ceiling
//!   (`--ceiling`: Roster's enroll statements replayed by pgbench at the same clients).
//! - Lottery (`--lottery`): the same requests into terms with `admission: LOTTERY`, answered
//!   `REQUESTED`; then the draw at the window's end: its duration (polled in SQL every 100 ms,
//!   and the span of its events), and its fairness, checked from the revealed seed: the seed
//!   against the hash published at the term's creation, every HMAC-SHA256 recomputed, the
//!   processing order (events from REQUESTED, by id) against ascending HMAC order, seats before
//!   waitlist places and waitlist tickets in HMAC order within each section, and the Spearman
//!   rank correlation of arrival order and HMAC order.
//!
//! Everything targets 127.0.0.1 and is bounded in time (`--storm-limit`, `--draw-limit`).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use clap::Parser;
use entity::types::Role;
use hmac::{Hmac, Mac};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use roster_bench::{SECRET, Server, Target, millis, percentile};
use sea_orm::{ConnectionTrait, DatabaseConnection, QueryResult, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Registration day: first come, first served and a lottery, with the checks that nothing was
/// lost or doubled.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Size of the data set loaded by `roster seed --scale` when the database has none.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Students taking part (all the seeded ones when not given).
    #[arg(long)]
    students: Option<usize>,
    /// Sections each student tries.
    #[arg(long, default_value_t = 5)]
    tries: usize,
    /// Concurrent enrolling clients (keep-alive HTTP), each taking the next student.
    #[arg(long, default_value_t = 96)]
    concurrency: usize,
    /// Clients running discovery throughout, half of them signed in.
    #[arg(long, default_value_t = 16)]
    discovery_clients: usize,
    /// Discovery load before the idle measurement, not measured.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    warmup: Duration,
    /// Discovery measured idle, just before T.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    idle: Duration,
    /// The storm stops sending after this long past T.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "180s")]
    storm_limit: Duration,
    /// Roster's enroll statements replayed by pgbench at the same clients (tx/s).
    #[arg(long)]
    ceiling: Option<f64>,
    /// Run the lottery phase after the first-come one.
    #[arg(long)]
    lottery: bool,
    /// The lottery window; when not given, the first-come storm's duration × 1.2 plus 10 s,
    /// rounded up to whole minutes, from 1 to 3; the requests stop 10 s before its end.
    #[arg(long)]
    lottery_minutes: Option<u32>,
    /// Longest wait for the draw after the window's end.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "180s")]
    draw_limit: Duration,
}

const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";
const DISCOVERY: &str = "query Discovery { courses(first: 50) { edges { node { id name code \
    description createdAt teacher { name email picture } sections { id name schedule { weekday start end room } capacity \
    registeredCount } } } } }";
const DISCOVERY_SIGNED_IN: &str = "query Discovery { courses(first: 50) { edges { node { id name \
    code description createdAt teacher { name email picture } viewerEnrollment { id status } \
    sections { id name schedule { weekday start end room } capacity registeredCount waitlistCount } } } } }";
const CREATE_TERM: &str = "mutation($input: CreateTermInput!) { createTerm(input: $input) { id } }";
const CREATE_LOTTERY_TERM: &str =
    "mutation($input: CreateTermInput!) { createTerm(input: $input) { id lotterySeedHash } }";
const TERM_SEED: &str = "query($id: UUID!) { term(id: $id) { lotterySeed lotteryDrawnAt } }";

/// Share of the sections that are popular, and the odds that a try goes to one of them.
const POPULAR_SHARE: f64 = 0.05;
const POPULAR_ODDS: f64 = 0.5;
/// The seed of the students' choices.
const PICK_SEED: u64 = 0x0BE7;
/// Goals.
const GOAL_ENROLL_P99_MS: f64 = 250.0;
const GOAL_SHED_P99_MS: f64 = 50.0;
const GOAL_DISCOVERY_RATIO: f64 = 3.0;
const GOAL_DRAW_S: f64 = 10.0;
/// Statuses of an active enrollment.
const ACTIVE: &str = "('REQUESTED', 'PENDING', 'REGISTERED', 'WAITLISTED', 'OFFERED')";

/// A seeded section a student may try.
struct Section {
    id: Uuid,
    course: Uuid,
}

/// What stays the same across phases.
struct Plan {
    students: Vec<Uuid>,
    tokens: Vec<String>,
    sections: Vec<Section>,
    /// Per student, indexes into `sections`.
    picks: Vec<Vec<usize>>,
    organizations: Vec<Uuid>,
    admin_token: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Admission {
    FirstCome,
    Lottery { minutes: u32 },
}

/// One answer to an `enroll` request.
struct Answer {
    /// Seconds from T at which it was sent.
    at: f64,
    latency: Duration,
    outcome: String,
    shed: bool,
}

/// What one student's enroll got in the end.
struct Acknowledged {
    id: Uuid,
    student: usize,
    section: usize,
}

/// What a storm measured.
struct Storm {
    answers: Vec<Answer>,
    /// Per enroll, first send to final answer, retries after shedding included.
    end_to_end: Vec<Duration>,
    acknowledged: Vec<Acknowledged>,
    /// Seconds from T to the last answer.
    duration: f64,
    /// Students whose tries were not all sent within the storm limit.
    unfinished: usize,
    /// (seconds from T, latency, answered without errors) of every discovery request.
    discovery: Vec<(f64, Duration, bool)>,
    /// What an enroll sent before T answered.
    before_t: String,
    /// T, on this process's clock and on the wall clock.
    t: Instant,
    opens: DateTime<Utc>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let label = args.target.label.clone();
    let db = roster::store::db::connect(&roster::config::DbConfig {
        database_url: args.target.database_url.clone(),
        db_max_connections: Some(4),
        db_acquire_timeout: None,
    })
    .await?;
    let seeded = roster_bench::seed_scale(&args.target, args.scale)?;
    let plan = plan(&args, &db).await?;
    let popular = ((plan.sections.len() as f64 * POPULAR_SHARE).round() as usize).max(1);
    eprintln!("{label}: seeded {seeded}");

    println!("### {label}");
    println!();
    println!(
        "{} students × {} sections each ({} enroll requests) from {} clients (keep-alive HTTP, \
         each taking the next student), while {} clients run discovery (half signed in). A \
         student's sections are in distinct courses, drawn with a seeded RNG from the {} active \
         sections of active courses, each with even odds from the {} popular ones (the first \
         {:.0} % in id order) or from all of them. The seeded enrollments are removed before \
         each phase (a new term: nobody holds a seat yet); a shed request is sent again after \
         its Retry-After.",
        thousands(plan.students.len()),
        args.tries,
        thousands(plan.picks.iter().map(Vec::len).sum()),
        args.concurrency,
        args.discovery_clients,
        thousands(plan.sections.len()),
        thousands(popular),
        POPULAR_SHARE * 100.0,
    );
    println!();

    let started = Instant::now();
    let (storm, _server, _) = phase(&args, &db, &plan, Admission::FirstCome).await?;
    let checks = check(&db, &plan, &storm).await?;
    print_first_come(&args, &storm, &checks);
    eprintln!(
        "{label}: first come done after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    if args.lottery {
        let minutes = args.lottery_minutes.unwrap_or_else(|| {
            ((storm.duration * 1.2 + 10.0) / 60.0)
                .ceil()
                .clamp(1.0, 3.0) as u32
        });
        println!();
        println!(
            "#### {label}: lottery, the same requests in a {minutes}-minute lottery window \
             (first come's storm took {:.0} s)",
            storm.duration
        );
        println!();
        match phase(&args, &db, &plan, Admission::Lottery { minutes }).await {
            Ok((storm, server, terms)) => {
                let checks = check(&db, &plan, &storm).await?;
                let draw = draw(&args, &db, &server, &storm, &terms, minutes).await;
                let after = check(&db, &plan, &storm).await?;
                print_lottery(&storm, &checks, minutes, draw, &after);
            }
            Err(e) => println!("Lottery not run: {e:#}"),
        }
    }
    Ok(())
}

/// The students, their tokens and choices, the sections, the organizations and an admin.
async fn plan(args: &Args, db: &DatabaseConnection) -> anyhow::Result<Plan> {
    let mut students = ids(
        db,
        "SELECT id FROM users WHERE email LIKE 'student%@scale.roster.dev' ORDER BY id",
    )
    .await?;
    if let Some(n) = args.students {
        students.truncate(n);
    }
    let sections: Vec<Section> = query(
        db,
        "SELECT s.id, s.course_id FROM sections s JOIN courses c ON c.id = s.course_id \
         WHERE s.is_active AND c.is_active ORDER BY s.id",
    )
    .await?
    .iter()
    .map(|row| {
        Ok(Section {
            id: row.try_get("", "id")?,
            course: row.try_get("", "course_id")?,
        })
    })
    .collect::<anyhow::Result<_>>()?;
    let organizations = ids(
        db,
        "SELECT id FROM organizations WHERE name LIKE 'Scale Organization %' ORDER BY id",
    )
    .await?;
    ensure!(
        !students.is_empty() && !sections.is_empty() && !organizations.is_empty(),
        "no benchmark data set in {}",
        args.target.database_url
    );
    let keys = roster::identity::tokens::TokenKeys::new(SECRET.as_bytes())?;
    let tokens = students
        .iter()
        .map(|id| keys.issue(*id, Duration::from_secs(6 * 3600)))
        .collect::<Result<_, _>>()?;
    let admin = roster_bench::data::insert_users(db, organizations[0], Role::Admin, 1).await?[0];
    let admin_token = keys.issue(admin, Duration::from_secs(6 * 3600))?;
    let picks = picks(students.len(), &sections, args.tries);
    Ok(Plan {
        students,
        tokens,
        sections,
        picks,
        organizations,
        admin_token,
    })
}

/// Each student's tries: indexes of sections in distinct courses, each with even odds from the
/// popular sections (the first [`POPULAR_SHARE`] of them) or from all.
fn picks(students: usize, sections: &[Section], tries: usize) -> Vec<Vec<usize>> {
    let popular = ((sections.len() as f64 * POPULAR_SHARE).round() as usize).max(1);
    let courses: HashSet<Uuid> = sections.iter().map(|s| s.course).collect();
    let tries = tries.min(courses.len());
    let mut rng = StdRng::seed_from_u64(PICK_SEED);
    (0..students)
        .map(|_| {
            let mut taken = HashSet::new();
            let mut mine = Vec::with_capacity(tries);
            while mine.len() < tries {
                let pick = if rng.random_bool(POPULAR_ODDS) {
                    rng.random_range(0..popular)
                } else {
                    rng.random_range(0..sections.len())
                };
                if taken.insert(sections[pick].course) {
                    mine.push(pick);
                }
            }
            mine.shuffle(&mut rng);
            mine
        })
        .collect()
}

/// One phase: a fresh term per organization opening at T, the server, discovery from before T,
/// the storm from T. Answers the storm, the server (still running) and the terms with the seed
/// hash each published at its creation.
async fn phase(
    args: &Args,
    db: &DatabaseConnection,
    plan: &Plan,
    admission: Admission,
) -> anyhow::Result<(Storm, Server, Vec<(Uuid, Option<String>)>)> {
    reset(db).await?;
    let server = Server::start(&args.target.roster, &args.target.database_url, SECRET).await?;
    let url = format!("{}/graphql", server.base);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency + 8)
        .timeout(Duration::from_secs(60))
        .default_headers(accept())
        .build()?;

    // T leaves room for the terms, the warm-up and the idle measurement.
    let lead = Duration::from_secs(3) + args.warmup + args.idle;
    let opens = Utc::now() + chrono::Duration::from_std(lead)?;
    let t = Instant::now() + lead;
    let code = format!("OPEN-{}", opens.timestamp());
    let today = Utc::now().date_naive();
    let mut terms = Vec::new();
    for organization in &plan.organizations {
        let mut input = json!({
            "organizationId": organization,
            "name": "Registration day",
            "code": code,
            "startsOn": today.to_string(),
            "endsOn": (today + chrono::Duration::days(120)).to_string(),
            "enrollmentOpensAt": opens.to_rfc3339(),
            "enrollmentClosesAt": (opens + chrono::Duration::days(1)).to_rfc3339(),
        });
        let mutation = match admission {
            Admission::FirstCome => CREATE_TERM,
            Admission::Lottery { minutes } => {
                input["admission"] = json!("LOTTERY");
                input["lotteryMinutes"] = json!(minutes);
                CREATE_LOTTERY_TERM
            }
        };
        let answer = graphql(
            &http,
            &url,
            Some(&plan.admin_token),
            json!({ "query": mutation, "variables": { "input": input } }),
        )
        .await?;
        let term = &answer["data"]["createTerm"];
        let id: Uuid = term["id"]
            .as_str()
            .with_context(|| format!("createTerm answered {answer}"))?
            .parse()?;
        terms.push((id, term["lotterySeedHash"].as_str().map(str::to_owned)));
    }
    db.execute_unprepared(&format!(
        "UPDATE sections SET term_id = (SELECT t.id FROM terms t JOIN courses c \
         ON c.organization_id = t.organization_id WHERE c.id = sections.course_id \
         AND t.code = '{code}')"
    ))
    .await?;
    let moved = count(
        db,
        &format!(
            "SELECT count(*) AS n FROM sections s JOIN terms t ON t.id = s.term_id \
             WHERE t.code = '{code}'"
        ),
    )
    .await?;
    eprintln!(
        "{}: {} terms opening at {opens}, {moved} sections in them",
        args.target.label,
        terms.len()
    );

    // Discovery from now until the storm is over.
    let stop = Arc::new(AtomicBool::new(false));
    let discovery = {
        let readers = reqwest::Client::builder()
            .pool_max_idle_per_host(args.discovery_clients)
            .timeout(Duration::from_secs(60))
            .default_headers(accept())
            .build()?;
        let signed_in: Vec<String> = plan
            .tokens
            .iter()
            .rev()
            .take(args.discovery_clients)
            .cloned()
            .collect();
        (0..args.discovery_clients)
            .map(|c| {
                let (readers, url, stop) = (readers.clone(), url.clone(), stop.clone());
                let token = (c % 2 == 1).then(|| signed_in[c].clone());
                tokio::spawn(async move {
                    let body = json!({ "query": if token.is_some() { DISCOVERY_SIGNED_IN } else { DISCOVERY } });
                    let mut samples = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let ok = graphql(&readers, &url, token.as_deref(), body.clone())
                            .await
                            .is_ok_and(|a| a.get("errors").is_none());
                        samples.push((since(t, sent), sent.elapsed(), ok));
                    }
                    samples
                })
            })
            .collect::<Vec<_>>()
    };

    // An enroll before T is refused; the storm's clients connect before T.
    let before_t = match graphql(
        &http,
        &url,
        Some(&plan.tokens[0]),
        json!({ "query": ENROLL, "variables": { "s": plan.sections[plan.picks[0][0]].id } }),
    )
    .await
    {
        Ok(answer) => outcome(&answer).0,
        Err(e) => format!("transport error: {e}"),
    };
    let connects: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let _ = graphql(&http, &url, None, json!({ "query": "{ __typename }" })).await;
            })
        })
        .collect();
    for c in connects {
        c.await?;
    }
    ensure!(
        Instant::now() < t,
        "the set-up took longer than T's lead of {lead:?}"
    );
    tokio::time::sleep_until(t.into()).await;

    let tokens = Arc::new(plan.tokens.clone());
    let picks = Arc::new(plan.picks.clone());
    let sections: Arc<Vec<Uuid>> = Arc::new(plan.sections.iter().map(|s| s.id).collect());
    let next = Arc::new(AtomicUsize::new(0));
    // A lottery's requests stop 10 s before its window ends, so every one is in the window.
    let until = t + match admission {
        Admission::FirstCome => args.storm_limit,
        Admission::Lottery { minutes } => args
            .storm_limit
            .min(Duration::from_secs(u64::from(minutes) * 60 - 10)),
    };
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (http, url, tokens, picks, sections, next) = (
                http.clone(),
                url.clone(),
                tokens.clone(),
                picks.clone(),
                sections.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut end_to_end = Vec::new();
                let mut acknowledged = Vec::new();
                let mut unfinished = 0;
                loop {
                    let student = next.fetch_add(1, Ordering::Relaxed);
                    let Some(tries) = picks.get(student) else {
                        break;
                    };
                    if Instant::now() >= until {
                        unfinished += 1;
                        continue;
                    }
                    for &section in tries {
                        let body =
                            json!({ "query": ENROLL, "variables": { "s": sections[section] } });
                        let first = Instant::now();
                        loop {
                            let sent = Instant::now();
                            let (outcome, shed, wait, id) =
                                send(&http, &url, &tokens[student], &body).await;
                            answers.push(Answer {
                                at: since(t, sent),
                                latency: sent.elapsed(),
                                outcome: outcome.clone(),
                                shed,
                            });
                            if shed && Instant::now() + wait < until {
                                tokio::time::sleep(wait).await;
                                continue;
                            }
                            end_to_end.push(first.elapsed());
                            if let Some(id) = id {
                                acknowledged.push(Acknowledged {
                                    id,
                                    student,
                                    section,
                                });
                            }
                            break;
                        }
                    }
                }
                (answers, end_to_end, acknowledged, unfinished)
            })
        })
        .collect();
    let mut storm = Storm {
        answers: Vec::new(),
        end_to_end: Vec::new(),
        acknowledged: Vec::new(),
        duration: 0.0,
        unfinished: 0,
        discovery: Vec::new(),
        before_t,
        t,
        opens,
    };
    for worker in workers {
        let (answers, end_to_end, acknowledged, unfinished) = worker.await?;
        storm.answers.extend(answers);
        storm.end_to_end.extend(end_to_end);
        storm.acknowledged.extend(acknowledged);
        storm.unfinished += unfinished;
    }
    storm.duration = since(t, Instant::now());
    stop.store(true, Ordering::Relaxed);
    for reader in discovery {
        storm.discovery.extend(reader.await?);
    }
    Ok((storm, server, terms))
}

/// Answers under `application/graphql-response+json`: an `UNAVAILABLE` is then HTTP 503 with
/// `Retry-After` (under `application/json` it is 200, as the GraphQL-over-HTTP spec has it).
fn accept() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("application/graphql-response+json"),
    );
    headers
}

/// One enroll request: (outcome, shed, how long to wait before sending it again, the
/// enrollment's id). The outcome is the enrollment's status, an error's code, or what went
/// wrong on the way.
async fn send(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> (String, bool, Duration, Option<Uuid>) {
    let response = match http.post(url).bearer_auth(token).json(body).send().await {
        Ok(r) => r,
        Err(e) => return (format!("transport error: {e}"), false, Duration::ZERO, None),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match response.json::<Value>().await {
        Ok(answer) => {
            let (outcome, id) = outcome(&answer);
            let shed = outcome == "UNAVAILABLE" && status.as_u16() == 503;
            let message = answer["errors"][0]["message"].as_str().unwrap_or("");
            let outcome = if outcome == "UNAVAILABLE" && !shed {
                format!("UNAVAILABLE (HTTP {})", status.as_u16())
            } else if shed && retry_after.is_none() {
                "UNAVAILABLE without Retry-After".into()
            } else if shed && !message.contains("busy") {
                // Not the write queue: the database did not answer in time, or the like.
                format!("UNAVAILABLE, 503: {message}")
            } else {
                outcome
            };
            let wait = Duration::from_secs(retry_after.unwrap_or(1));
            (outcome, shed, wait, id)
        }
        Err(e) => (
            format!("unreadable answer (HTTP {}): {e}", status.as_u16()),
            false,
            Duration::ZERO,
            None,
        ),
    }
}

/// An enroll answer's status or error code, and the enrollment's id.
fn outcome(answer: &Value) -> (String, Option<Uuid>) {
    if let Some(code) = answer["errors"][0]["extensions"]["code"].as_str() {
        return (code.to_owned(), None);
    }
    if answer.get("errors").is_some() {
        return ("error without a code".into(), None);
    }
    let enrollment = &answer["data"]["enroll"];
    match enrollment["status"].as_str() {
        Some(status) => (
            status.to_owned(),
            enrollment["id"].as_str().and_then(|id| id.parse().ok()),
        ),
        None => (format!("unexpected answer: {answer}"), None),
    }
}

/// A GraphQL request's JSON answer, whatever its HTTP status.
async fn graphql(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Ok(request.send().await?.json().await?)
}

/// Seconds from `t` to `at`, negative before it.
fn since(t: Instant, at: Instant) -> f64 {
    if at >= t {
        (at - t).as_secs_f64()
    } else {
        -(t - at).as_secs_f64()
    }
}

/// The seeded data set as a new term finds it: no enrollments, no counts, no terms.
async fn reset(db: &DatabaseConnection) -> anyhow::Result<()> {
    for statement in [
        "DELETE FROM enrollment_events",
        "DELETE FROM certifications",
        "DELETE FROM notifications",
        "DELETE FROM enrollments",
        "UPDATE sections SET registered_count = 0, pending_count = 0, waitlist_count = 0, \
         finished_count = 0, offered_count = 0, waitlist_seq = 0, term_id = NULL, \
         close_noticed_at = NULL",
        "DELETE FROM appointments",
        "DELETE FROM terms",
    ] {
        db.execute_unprepared(statement)
            .await
            .with_context(|| statement.to_owned())?;
    }
    Ok(())
}

/// The SQL checks after a storm.
struct Checks {
    acknowledged: usize,
    /// Acknowledged ids missing, or with another student or section than acknowledged.
    lost: usize,
    /// Ids acknowledged twice, and (user, course) pairs with two active enrollments.
    doubled_ids: usize,
    doubled_pairs: usize,
    /// Enrollments the server made that no answer acknowledged.
    unacknowledged: usize,
    /// Sections whose counts differ from their enrollments.
    counters_off: usize,
}

async fn check(db: &DatabaseConnection, plan: &Plan, storm: &Storm) -> anyhow::Result<Checks> {
    let rows = query(db, "SELECT id, user_id, section_id FROM enrollments").await?;
    let mut stored: HashMap<Uuid, (Uuid, Uuid)> = HashMap::with_capacity(rows.len());
    for row in &rows {
        stored.insert(
            row.try_get("", "id")?,
            (row.try_get("", "user_id")?, row.try_get("", "section_id")?),
        );
    }
    let mut seen = HashSet::new();
    let (mut lost, mut doubled_ids) = (0, 0);
    for ack in &storm.acknowledged {
        if !seen.insert(ack.id) {
            doubled_ids += 1;
        }
        let expected = (plan.students[ack.student], plan.sections[ack.section].id);
        if stored.get(&ack.id) != Some(&expected) {
            lost += 1;
        }
    }
    let unacknowledged = stored.keys().filter(|id| !seen.contains(id)).count();
    let doubled_pairs = count(
        db,
        &format!(
            "SELECT count(*) AS n FROM (SELECT user_id, course_id FROM enrollments \
             WHERE status IN {ACTIVE} GROUP BY user_id, course_id HAVING count(*) > 1) d"
        ),
    )
    .await?;
    let counted = |status: &str| {
        format!(
            "(SELECT count(*) FROM enrollments e WHERE e.section_id = s.id AND e.status = '{status}')"
        )
    };
    let counters_off = count(
        db,
        &format!(
            "SELECT count(*) AS n FROM sections s WHERE s.registered_count <> {} \
             OR s.pending_count <> {} OR s.waitlist_count <> {}",
            counted("REGISTERED"),
            counted("PENDING"),
            counted("WAITLISTED")
        ),
    )
    .await?;
    Ok(Checks {
        acknowledged: storm.acknowledged.len(),
        lost,
        doubled_ids,
        doubled_pairs: doubled_pairs as usize,
        unacknowledged,
        counters_off: counters_off as usize,
    })
}

/// The answers by outcome, shed ones included.
fn by_outcome(storm: &Storm) -> BTreeMap<&str, usize> {
    let mut outcomes = BTreeMap::new();
    for answer in &storm.answers {
        *outcomes.entry(answer.outcome.as_str()).or_default() += 1;
    }
    outcomes
}

/// Sorted latencies of the answers `keep` selects.
fn latencies(storm: &Storm, keep: impl Fn(&Answer) -> bool) -> Vec<Duration> {
    let mut l: Vec<Duration> = storm
        .answers
        .iter()
        .filter(|a| keep(a))
        .map(|a| a.latency)
        .collect();
    l.sort_unstable();
    l
}

/// Discovery p99 in `[from, to)` seconds from T, and the requests and failures in it.
fn discovery_p99(storm: &Storm, from: f64, to: f64) -> (f64, usize, usize) {
    let mut l: Vec<Duration> = Vec::new();
    let mut failed = 0;
    for (at, latency, ok) in &storm.discovery {
        if *at >= from && *at < to {
            l.push(*latency);
            failed += usize::from(!ok);
        }
    }
    l.sort_unstable();
    (millis(percentile(&l, 0.99)), l.len(), failed)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}

fn print_first_come(args: &Args, storm: &Storm, checks: &Checks) {
    let label = &args.target.label;
    let outcomes = by_outcome(storm);
    let get = |k: &str| outcomes.get(k).copied().unwrap_or(0);
    let seats = get("REGISTERED") + get("PENDING");
    let places = get("WAITLISTED");
    let enrollments = seats + places;
    let per_second = enrollments as f64 / storm.duration;
    let answered = latencies(storm, |a| !a.shed);
    let first_10 = latencies(storm, |a| !a.shed && a.at < 10.0);
    let shed = latencies(storm, |a| a.shed);
    let mut end_to_end = storm.end_to_end.clone();
    end_to_end.sort_unstable();
    let (idle, idle_n, idle_failed) = discovery_p99(storm, -args.idle.as_secs_f64(), 0.0);
    let (busy, busy_n, busy_failed) = discovery_p99(storm, 0.0, storm.duration);
    let ratio = busy / idle;
    let p99 = millis(percentile(&answered, 0.99));
    let shed_p99 = millis(percentile(&shed, 0.99));
    // Every answer that was shed (and retried), by kind; the others by code.
    let is_shed = |k: &str| k.starts_with("UNAVAILABLE") && !k.starts_with("UNAVAILABLE (HTTP");
    let shed_kinds: Vec<String> = outcomes
        .iter()
        .filter(|(k, _)| is_shed(k))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let others: Vec<String> = outcomes
        .iter()
        .filter(|(k, _)| {
            !["REGISTERED", "PENDING", "WAITLISTED", "SECTION_FULL"].contains(k) && !is_shed(k)
        })
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();

    println!("#### {label}: first come, first served");
    println!();
    println!(
        "An enroll sent before T answered {}. Enroll latencies: each answer that was not shed \
         on its own, and end to end per enroll (a shed enroll's wait and retry included; {} \
         enrolls).",
        storm.before_t,
        thousands(end_to_end.len())
    );
    println!();
    println!(
        "| clients | enroll answers | storm s | enrollments/s | answers/s | enroll p50 ms | enroll p99 ms | p99 in the first 10 s | end to end p99 ms | shed p99 ms | discovery p99 idle ms | discovery p99 storm ms | storm ÷ idle |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.1} ({} requests{}) | {:.1} ({} requests{}) | {:.2}× |",
        args.concurrency,
        thousands(answered.len()),
        storm.duration,
        per_second,
        answered.len() as f64 / storm.duration,
        millis(percentile(&answered, 0.5)),
        p99,
        millis(percentile(&first_10, 0.99)),
        millis(percentile(&end_to_end, 0.99)),
        if shed.is_empty() {
            "none shed".into()
        } else {
            format!("{shed_p99:.1}")
        },
        idle,
        thousands(idle_n),
        failures(idle_failed),
        busy,
        thousands(busy_n),
        failures(busy_failed),
        ratio,
    );
    println!();
    println!(
        "| seats (REGISTERED/PENDING) | waitlist places | SECTION_FULL | shed (UNAVAILABLE, 503) | other answers | not sent (storm limit) | acknowledged | lost | doubled | made without an answer | sections with counts off |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        thousands(seats),
        thousands(places),
        thousands(get("SECTION_FULL")),
        if shed_kinds.len() > 1 || (shed_kinds.len() == 1 && get("UNAVAILABLE") == 0) {
            format!("{} ({})", thousands(shed.len()), shed_kinds.join("; "))
        } else {
            thousands(shed.len())
        },
        if others.is_empty() {
            "none".into()
        } else {
            others.join("; ")
        },
        storm.unfinished,
        thousands(checks.acknowledged),
        checks.lost,
        doubled(checks),
        checks.unacknowledged,
        checks.counters_off,
    );
    println!();
    println!(
        "{label}: enroll p99 {p99:.1} ms (goal < {GOAL_ENROLL_P99_MS} ms): {}; shed p99 {} (goal < {GOAL_SHED_P99_MS} ms): {}; lost {} and doubled {} (goal 0): {}; discovery p99 storm ÷ idle {ratio:.2}× (goal < {GOAL_DISCOVERY_RATIO}×): {}; sections with counts off: {}.",
        met(p99 < GOAL_ENROLL_P99_MS),
        if shed.is_empty() {
            "n/a, none shed".to_owned()
        } else {
            format!("{shed_p99:.1} ms")
        },
        if shed.is_empty() {
            "n/a"
        } else {
            met(shed_p99 < GOAL_SHED_P99_MS)
        },
        checks.lost,
        doubled(checks),
        met(checks.lost == 0 && doubled(checks) == 0),
        met(ratio < GOAL_DISCOVERY_RATIO),
        checks.counters_off,
    );
    if let Some(ceiling) = args.ceiling {
        println!();
        println!(
            "{label}: {per_second:.0} enrollments/s, {:.2}× the database's ceiling of {ceiling:.0} tx/s \
             (Roster's enroll statements replayed by pgbench at {} clients over 1,000 sections).",
            per_second / ceiling,
            args.concurrency
        );
    }
}

fn doubled(checks: &Checks) -> usize {
    checks.doubled_ids + checks.doubled_pairs
}

fn failures(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {n} failed")
    }
}

/// What the draw took and whether it was fair.
struct Draw {
    /// From the window's end to when no REQUESTED enrollment was left.
    duration: Option<f64>,
    /// Drawn requests, and the span of their events and its start after the window's end.
    events: usize,
    span: f64,
    first_after_end: f64,
    /// Drawn enrollments by status (and reason).
    outcomes: BTreeMap<String, usize>,
    /// Terms whose revealed seed hashes to the published hash.
    seeds_match: usize,
    terms: usize,
    /// Stored ranks different from the recomputed HMAC.
    ranks_off: usize,
    /// Positions where the processing order differs from ascending HMAC order, and requests
    /// with other than one event from REQUESTED.
    order_off: usize,
    events_off: usize,
    /// Sections where a waitlist place has a lower HMAC than a seat, or tickets out of order.
    sections_off: usize,
    spearman: f64,
}

async fn draw(
    args: &Args,
    db: &DatabaseConnection,
    server: &Server,
    storm: &Storm,
    terms: &[(Uuid, Option<String>)],
    minutes: u32,
) -> anyhow::Result<Draw> {
    // The window's end, as seconds from T; the storm's T is where its offsets start.
    let end = f64::from(minutes) * 60.0;
    let end_at = storm.t + Duration::from_secs_f64(end);
    tokio::time::sleep_until(end_at.into()).await;
    let mut duration = None;
    let deadline = Instant::now() + args.draw_limit;
    while Instant::now() < deadline {
        let left = count(
            db,
            "SELECT count(*) AS n FROM enrollments WHERE status = 'REQUESTED'",
        )
        .await?;
        if left == 0 {
            duration = Some(end_at.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(_) = duration else {
        bail!(
            "REQUESTED enrollments still left {:?} after the window's end",
            args.draw_limit
        );
    };

    // The seeds, revealed once each term's lottery is over.
    let http = reqwest::Client::new();
    let url = format!("{}/graphql", server.base);
    let mut keys: HashMap<Uuid, Vec<u8>> = HashMap::new();
    let mut seeds_match = 0;
    for (term, hash) in terms {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = graphql(
                &http,
                &url,
                None,
                json!({ "query": TERM_SEED, "variables": { "id": term } }),
            )
            .await?;
            if let Some(seed) = answer["data"]["term"]["lotterySeed"].as_str() {
                let bytes = unhex(seed).with_context(|| format!("lotterySeed {seed}"))?;
                if hash.as_deref() == Some(hex(&Sha256::digest(&bytes)).as_str()) {
                    seeds_match += 1;
                }
                keys.insert(*term, bytes);
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "term {term} shows no lotterySeed 30 s after its draw: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The drawn requests in arrival order, and the order they were processed in.
    let rows = query(
        db,
        "SELECT e.id, e.section_id, s.term_id, e.status, e.reason, e.waitlist_ticket, \
         e.lottery_rank FROM enrollments e JOIN sections s ON s.id = e.section_id \
         WHERE e.lottery_draw_at IS NOT NULL ORDER BY e.enrolled_at, e.id",
    )
    .await?;
    struct Drawn {
        section: Uuid,
        term: Uuid,
        status: String,
        ticket: Option<i64>,
        hmac: String,
        arrival: usize,
    }
    let mut drawn: HashMap<Uuid, Drawn> = HashMap::with_capacity(rows.len());
    let mut outcomes = BTreeMap::new();
    let mut ranks_off = 0;
    for (arrival, row) in rows.iter().enumerate() {
        let id: Uuid = row.try_get("", "id")?;
        let term: Uuid = row.try_get("", "term_id")?;
        let status: String = row.try_get("", "status")?;
        let reason: Option<String> = row.try_get("", "reason")?;
        let stored: Option<String> = row.try_get("", "lottery_rank")?;
        let key = keys
            .get(&term)
            .context("a drawn request outside the terms")?;
        let hmac = hmac_hex(key, &id);
        if stored.as_deref() != Some(hmac.as_str()) {
            ranks_off += 1;
        }
        *outcomes
            .entry(match reason {
                Some(reason) if status == "CANCELLED" => {
                    format!("CANCELLED ({})", refusal_code(&reason))
                }
                _ => status.clone(),
            })
            .or_default() += 1;
        drawn.insert(
            id,
            Drawn {
                section: row.try_get("", "section_id")?,
                term,
                status,
                ticket: row.try_get::<Option<i64>>("", "waitlist_ticket")?,
                hmac,
                arrival,
            },
        );
    }
    let events = query(
        db,
        "SELECT enrollment_id FROM enrollment_events WHERE from_status = 'REQUESTED' ORDER BY id",
    )
    .await?;
    let span = query(
        db,
        "SELECT EXTRACT(EPOCH FROM min(at))::float8 AS first, \
         EXTRACT(EPOCH FROM max(at))::float8 AS last FROM enrollment_events \
         WHERE from_status = 'REQUESTED'",
    )
    .await?;
    let (first, last): (Option<f64>, Option<f64>) = match span.first() {
        Some(row) => (row.try_get("", "first")?, row.try_get("", "last")?),
        None => (None, None),
    };
    let opened_at = storm.opens.timestamp_millis() as f64 / 1000.0;
    let first_after_end = first.map_or(f64::NAN, |f| f - (opened_at + end));
    let span = first.zip(last).map_or(f64::NAN, |(f, l)| l - f);

    // (a) per term, the processing order against ascending HMAC order.
    let mut processed: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut event_counts: HashMap<Uuid, usize> = HashMap::new();
    for row in &events {
        let id: Uuid = row.try_get("", "enrollment_id")?;
        *event_counts.entry(id).or_default() += 1;
        if let Some(d) = drawn.get(&id) {
            processed.entry(d.term).or_default().push(id);
        }
    }
    let events_off = drawn
        .keys()
        .filter(|id| event_counts.get(id) != Some(&1))
        .count()
        + event_counts
            .keys()
            .filter(|id| !drawn.contains_key(id))
            .count();
    let mut order_off = 0;
    for order in processed.values() {
        let mut sorted = order.clone();
        sorted.sort_by(|a, b| drawn[a].hmac.cmp(&drawn[b].hmac));
        order_off += order.iter().zip(&sorted).filter(|(a, b)| a != b).count();
    }

    // (b) within each section: every seat before every waitlist place, tickets in HMAC order.
    let mut by_section: HashMap<Uuid, Vec<&Drawn>> = HashMap::new();
    for d in drawn.values() {
        by_section.entry(d.section).or_default().push(d);
    }
    let mut sections_off = 0;
    for list in by_section.values_mut() {
        list.sort_by(|a, b| a.hmac.cmp(&b.hmac));
        let seat = |d: &&Drawn| d.status == "REGISTERED" || d.status == "PENDING";
        let last_seat = list.iter().rposition(seat);
        let first_place = list.iter().position(|d| d.status == "WAITLISTED");
        let tickets: Vec<i64> = list
            .iter()
            .filter(|d| d.status == "WAITLISTED")
            .map(|d| d.ticket.unwrap_or(i64::MIN))
            .collect();
        let inverted = matches!((last_seat, first_place), (Some(s), Some(p)) if p < s);
        if inverted || tickets.windows(2).any(|w| w[0] >= w[1]) {
            sections_off += 1;
        }
    }

    // (c) arrival order against HMAC order.
    let mut by_hmac: Vec<&Drawn> = drawn.values().collect();
    by_hmac.sort_by(|a, b| a.hmac.cmp(&b.hmac));
    let pairs: Vec<(usize, usize)> = by_hmac
        .iter()
        .enumerate()
        .map(|(rank, d)| (d.arrival, rank))
        .collect();
    Ok(Draw {
        duration,
        events: events.len(),
        span,
        first_after_end,
        outcomes,
        seeds_match,
        terms: terms.len(),
        ranks_off,
        order_off,
        events_off,
        sections_off,
        spearman: spearman(&pairs),
    })
}

/// The error code in a refusal's `reason` (its first upper-case word with an underscore or of
/// five letters or more, as `SCHEDULE_CONFLICT`), else the reason itself: the draw's outcomes
/// are counted by code, not by the sentence naming the other course and date.
fn refusal_code(reason: &str) -> &str {
    reason
        .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
        .find(|w| w.len() >= 5 || w.contains('_'))
        .unwrap_or(reason)
}

/// Spearman's rank correlation of distinct ranks `0..n` paired up.
fn spearman(pairs: &[(usize, usize)]) -> f64 {
    let n = pairs.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let d2: f64 = pairs
        .iter()
        .map(|&(a, b)| (a as f64 - b as f64).powi(2))
        .sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

/// HMAC-SHA256 of an enrollment id (lower-case hyphenated) under a term's seed, in hex.
fn hmac_hex(key: &[u8], id: &Uuid) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(id.hyphenated().to_string().as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> anyhow::Result<Vec<u8>> {
    ensure!(text.len().is_multiple_of(2), "odd length");
    (0..text.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(&text[i..i + 2], 16)?))
        .collect()
}

fn print_lottery(
    storm: &Storm,
    checks: &Checks,
    minutes: u32,
    draw: anyhow::Result<Draw>,
    after: &Checks,
) {
    let outcomes = by_outcome(storm);
    let answered = latencies(storm, |a| !a.shed);
    let shed = latencies(storm, |a| a.shed);
    let window = f64::from(minutes) * 60.0;
    println!(
        "The requests: {} answers in {:.1} s ({}; the window ends {:.0} s after T), enroll p50 \
         {:.1} ms, p99 {:.1} ms, shed {} (p99 {:.1} ms); answers: {}; {} not sent (storm limit).",
        thousands(answered.len()),
        storm.duration,
        if storm.duration < window {
            "all within the window"
        } else {
            "NOT ALL WITHIN THE WINDOW"
        },
        window,
        millis(percentile(&answered, 0.5)),
        millis(percentile(&answered, 0.99)),
        shed.len(),
        millis(percentile(&shed, 0.99)),
        outcomes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; "),
        storm.unfinished,
    );
    println!(
        "Checks after the requests: {} acknowledged, {} lost, {} doubled, {} made without an \
         answer, {} sections with counts off.",
        thousands(checks.acknowledged),
        checks.lost,
        doubled(checks),
        checks.unacknowledged,
        checks.counters_off,
    );
    println!(
        "Checks after the draw: {} lost, {} doubled, {} sections with counts off.",
        after.lost,
        doubled(after),
        after.counters_off,
    );
    println!();
    let draw = match draw {
        Ok(draw) => draw,
        Err(e) => {
            println!("The draw: not measured: {e:#}");
            return;
        }
    };
    println!(
        "| drawn requests | draw s (window end → none REQUESTED) | events' span s | first event after the window's end s | outcomes |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {:.2} | {:.2} | {:.2} | {} |",
        thousands(draw.events),
        draw.duration.unwrap_or(f64::NAN),
        draw.span,
        draw.first_after_end,
        draw.outcomes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; "),
    );
    println!();
    println!(
        "| seeds matching their published hash | stored ranks ≠ recomputed HMAC | processing order ≠ HMAC order (positions) | requests without exactly one draw event | sections out of HMAC order | Spearman (arrival, HMAC) |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} of {} | {} | {} | {} | {} | {:+.4} |",
        draw.seeds_match,
        draw.terms,
        draw.ranks_off,
        draw.order_off,
        draw.events_off,
        draw.sections_off,
        draw.spearman,
    );
    let duration = draw.duration.unwrap_or(f64::NAN);
    let fair = draw.seeds_match == draw.terms
        && draw.ranks_off == 0
        && draw.order_off == 0
        && draw.events_off == 0
        && draw.sections_off == 0;
    println!();
    println!(
        "Lottery: the draw of {} requests took {duration:.2} s (goal < {GOAL_DRAW_S} s): {}; fairness checks: {}; Spearman {:+.4} (near 0: {}).",
        thousands(draw.events),
        met(duration < GOAL_DRAW_S),
        if fair { "all passed" } else { "FAILED" },
        draw.spearman,
        met(draw.spearman.abs() < 0.05),
    );
}

async fn query(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<QueryResult>> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .with_context(|| sql.to_owned())
}

async fn ids(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<Uuid>> {
    query(db, sql)
        .await?
        .iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "id")?))
        .collect()
}

/// The column `n` of a one-row query.
async fn count(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let rows = query(db, sql).await?;
    Ok(rows.first().context("no row")?.try_get("", "n")?)
}

/// `n` with commas between thousands: 1,000.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_equal_and_reversed_orders() {
        let same: Vec<(usize, usize)> = (0..100).map(|i| (i, i)).collect();
        let reversed: Vec<(usize, usize)> = (0..100).map(|i| (i, 99 - i)).collect();
        assert!((spearman(&same) - 1.0).abs() < 1e-12);
        assert!((spearman(&reversed) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn hmac_of_an_id_under_a_seed() {
        // RFC 4231's test case 2 shape: a known key and message, by another route.
        let key = b"Jefe";
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let id: Uuid = "0190a0b1-c2d3-7e4f-8a5b-6c7d8e9f0a1b".parse().unwrap();
        assert_eq!(hmac_hex(&[7; 32], &id), hmac_hex(&[7; 32], &id));
        assert_ne!(hmac_hex(&[7; 32], &id), hmac_hex(&[8; 32], &id));
    }

    #[test]
    fn refusals_are_counted_by_code() {
        assert_eq!(
            refusal_code(
                "not granted in the lottery: SCHEDULE_CONFLICT (schedule conflicts with Urban \
                 Gardening 7 (FRIDAY 13:00–13:50 on 2026-12-11))"
            ),
            "SCHEDULE_CONFLICT"
        );
        assert_eq!(refusal_code("SECTION_FULL"), "SECTION_FULL");
        assert_eq!(refusal_code("withdrawn"), "withdrawn");
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(&[0, 15, 255])).unwrap(), vec![0, 15, 255]);
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn outcomes_of_answers() {
        let id = Uuid::now_v7();
        assert_eq!(
            outcome(&json!({ "data": { "enroll": { "id": id, "status": "REGISTERED" } } })),
            ("REGISTERED".to_owned(), Some(id))
        );
        assert_eq!(
            outcome(&json!({ "errors": [{ "extensions": { "code": "UNAVAILABLE" } }] })),
            ("UNAVAILABLE".to_owned(), None)
        );
    }

    #[test]
    fn picks_are_distinct_courses() {
        let sections: Vec<Section> = (0..60)
            .map(|i| Section {
                id: Uuid::now_v7(),
                course: Uuid::from_u128(i / 3),
            })
            .collect();
        for mine in picks(50, &sections, 5) {
            let courses: HashSet<Uuid> = mine.iter().map(|&s| sections[s].course).collect();
            assert_eq!(courses.len(), 5);
        }
    }
}

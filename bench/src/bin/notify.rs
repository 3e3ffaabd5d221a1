//! Notification delivery through the real server: how long after a withdrawal the promoted
//! student's Web Push arrives, and what delivery costs the enroll/withdraw throughput.
//!
//! **Latency.** Fresh sections of capacity 1, each with a seat holder and a waitlisted student
//! who registered a push subscription (`registerPushSubscription`) at a push service this
//! program runs on loopback, one path per waiter. The server runs with Web Push on (a VAPID key,
//! plain `http://` endpoints allowed) and no other channel. The holders withdraw over HTTP from a
//! fixed number of clients; each withdrawal promotes its waiter in its transaction, and the
//! server's delivery worker pushes the PROMOTED notification. For every promotion the program
//! keeps the instant the withdraw request was sent, the instant its response arrived and the
//! instant the push service had received the waiter's push (the whole request). The commit lies
//! between the first two, so receipt − send bounds the commit-to-receipt latency from above and
//! receipt − response from below; a push that beats the response gives a negative lower bound,
//! which is counted and kept negative, never clamped. Afterwards every push is decrypted with the
//! browser's keys and must be the PROMOTED notification of that waiter's enrollment.
//!
//! **Throughput.** The same enroll/withdraw workload with delivery off (no channel configured;
//! on SQLite the server makes itself a VAPID key, so Web Push is on there, but no student of
//! these figures has a subscription and no outbox row is written) and on (Web Push with every
//! student subscribed, and a webhook receiver on loopback that answers 200): fresh sections of
//! capacity 1 with two students each, one holding the seat and one waiting. Each client owns a
//! share of the sections and, round after round, has the holder withdraw (which promotes the
//! waiter: one notification, and with delivery on a push and a webhook row in the outbox) and
//! enroll again (onto the waitlist), so the two swap places. After a warm-up figure (off,
//! printed, not counted) the figures alternate off, on, off, on, … on fresh sections and
//! students; each waits until the outbox is empty before the next starts.
//!
//! Prints Markdown tables. `bench/run.sh notify` runs it on PostgreSQL and SQLite.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    routing::post,
};
use base64ct::{Base64UrlUnpadded, Encoding};
use clap::Parser;
use entity::{notification, notification_delivery, section};
use futures_util::{StreamExt, TryStreamExt, stream};
use roster::delivery::PushConfig;
use roster_bench::{Fixture, Target, millis, percentile};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr,
};
use serde_json::{Value, json};
use uuid::Uuid;
use web_push_native::{
    jwt_simple::algorithms::ES256KeyPair,
    p256::{SecretKey, elliptic_curve::sec1::ToEncodedPoint},
};

/// Push latency after withdrawals, and enroll/withdraw throughput with delivery off and on.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Promotions timed per latency figure.
    #[arg(long, default_value_t = 1000)]
    promotions: usize,
    /// Concurrent withdrawing clients, one latency figure each.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    latency_clients: Vec<usize>,
    /// Concurrent clients of the throughput figures.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Sections (two students each) per throughput figure.
    #[arg(long, default_value_t = 500)]
    sections: usize,
    /// Withdraw-and-enroll-again rounds per section in a throughput figure.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Throughput figures per setting (they alternate off, on, off, on, …), after one
    /// warm-up figure with delivery off that is printed but not counted.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Also write each timed promotion of a latency figure to `<TRACE>-<clients>.csv`: its
    /// index, and the send, response and push receipt in ms from the figure's start.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
    /// Longest wait for the deliveries after the last response.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    deadline: Duration,
}

const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";
const WITHDRAW: &str = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }";
const REGISTER: &str = "mutation($e: String!, $p: String!, $a: String!) {
    registerPushSubscription(endpoint: $e, p256dh: $p, auth: $a) }";
/// A Standard Webhooks secret for the loopback receiver.
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Clients that set the figures up (not measured).
const SETUP_CLIENTS: usize = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.clients > 0 && args.latency_clients.iter().all(|&c| c > 0),
        "clients must be at least 1"
    );
    let (origin, received) = receiver().await?;
    let vapid = PushConfig::generate_private_key();
    let hook = format!("{origin}/hook");
    let push_env = [
        ("ROSTER_VAPID_PRIVATE_KEY", vapid.as_str()),
        ("ROSTER_VAPID_SUBJECT", "mailto:bench@roster.invalid"),
        ("ROSTER_PUSH_ALLOW_HTTP", "true"),
        ("ROSTER_PUSH_ALLOW_HOSTS", "127.0.0.1"),
    ];
    let mut on_env = push_env.to_vec();
    on_env.extend([
        ("ROSTER_WEBHOOK_URL", hook.as_str()),
        ("ROSTER_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ]);

    let students = 2 * args.promotions * args.latency_clients.len()
        + 2 * args.sections * (2 * args.repeats + 1);
    let mut fixture = Fixture::prepare_with(&args.target, students, &push_env).await?;
    let mut tokens = fixture.tokens.clone().into_iter();
    let browser = Browser::new()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let label = args.target.label.clone();

    println!("\n### Push latency on {label}\n");
    println!(
        "| database | clients | promotions | pushes received | decrypted and matched | withdraw p50 ms | withdraw p99 ms | send → push p50 ms | p99 ms | max ms | response → push p50 ms | p99 ms | max ms | pushes before the response | withdrawals/s | pushes/s meanwhile |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (figure, &clients) in args.latency_clients.iter().enumerate() {
        let holders: Vec<String> = tokens.by_ref().take(args.promotions).collect();
        let waiters: Vec<String> = tokens.by_ref().take(args.promotions).collect();
        let run = Run {
            http: &http,
            url: format!("{}/graphql", fixture.server.base),
            db: &fixture.db,
            received: &received,
            deadline: args.deadline,
        };
        let row = latency(
            &run,
            &fixture,
            &browser,
            &origin,
            &format!("l{figure}-"),
            holders,
            waiters,
            clients,
            args.trace.as_deref(),
        )
        .await?;
        println!("| {label} | {row}");
    }

    println!("\n### Enroll/withdraw throughput on {label}, delivery off and on\n");
    println!(
        "| database | delivery | clients | sections | requests | requests/s | p50 ms | p99 ms | errors | PROMOTED notifications | pushes received | webhooks received | outbox rows left at the last response | last delivery after the last response s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rates = [Vec::new(), Vec::new()];
    let mut p99s = [Vec::new(), Vec::new()];
    // Figure 0 is the warm-up; then off, on, off, on, …
    for figure in 0..=2 * args.repeats {
        let on = figure % 2 == 0 && figure > 0;
        fixture
            .restart_with(&args.target, if on { &on_env } else { &[] })
            .await?;
        let a: Vec<String> = tokens.by_ref().take(args.sections).collect();
        let b: Vec<String> = tokens.by_ref().take(args.sections).collect();
        let run = Run {
            http: &http,
            url: format!("{}/graphql", fixture.server.base),
            db: &fixture.db,
            received: &received,
            deadline: args.deadline,
        };
        let outcome = throughput(
            &run,
            &fixture,
            on.then_some((&browser, origin.as_str())),
            &format!("t{figure}-"),
            a,
            b,
            args.clients,
            args.rounds,
        )
        .await?;
        if figure > 0 {
            rates[usize::from(on)].push(outcome.per_second);
            p99s[usize::from(on)].push(outcome.p99);
        }
        println!(
            "| {label} | {} | {} | {} | {}",
            match (figure, on) {
                (0, _) => "off (warm-up, not counted)",
                (_, true) => "on",
                (_, false) => "off",
            },
            args.clients,
            args.sections,
            outcome.row
        );
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let range = |v: &[f64], digits: usize| {
        let (low, high) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                (l.min(x), h.max(x))
            });
        format!("{low:.digits$}–{high:.digits$}")
    };
    println!(
        "\n{label}: delivery on ÷ off, means of {} figures each: {:.2}× the requests/s ({:.0} vs {:.0}; ranges {} and {}), {:.2}× the p99 ({:.1} vs {:.1} ms; ranges {} and {}).",
        args.repeats,
        mean(&rates[1]) / mean(&rates[0]),
        mean(&rates[1]),
        mean(&rates[0]),
        range(&rates[1], 0),
        range(&rates[0], 0),
        mean(&p99s[1]) / mean(&p99s[0]),
        mean(&p99s[1]),
        mean(&p99s[0]),
        range(&p99s[1], 1),
        range(&p99s[0], 1),
    );
    Ok(())
}

/// What one figure talks to.
struct Run<'a> {
    http: &'a reqwest::Client,
    url: String,
    db: &'a DatabaseConnection,
    received: &'a Received,
    deadline: Duration,
}

/// What the loopback push service and webhook receiver got: each push's path name, the instant
/// its request had been read whole, and its (encrypted) body; each webhook's instant.
#[derive(Default)]
struct Received {
    pushes: Mutex<Vec<(String, Instant, Bytes)>>,
    webhooks: Mutex<Vec<Instant>>,
}

impl Received {
    fn clear(&self) {
        self.pushes.lock().unwrap().clear();
        self.webhooks.lock().unwrap().clear();
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.pushes.lock().unwrap().len(),
            self.webhooks.lock().unwrap().len(),
        )
    }

    /// The latest receipt of either kind.
    fn last(&self) -> Option<Instant> {
        let pushes = self.pushes.lock().unwrap();
        let webhooks = self.webhooks.lock().unwrap();
        pushes
            .iter()
            .map(|(_, at, _)| *at)
            .chain(webhooks.iter().copied())
            .max()
    }
}

/// The push service (`POST /push/{name}`, 201) and the webhook receiver (`POST /hook`, 200) on
/// a free loopback port: its origin and what it receives.
async fn receiver() -> anyhow::Result<(String, Arc<Received>)> {
    let received = Arc::new(Received::default());
    let app =
        Router::new()
            .route(
                "/push/{name}",
                post(
                    |State(received): State<Arc<Received>>,
                     Path(name): Path<String>,
                     body: Bytes| async move {
                        let at = Instant::now();
                        received.pushes.lock().unwrap().push((name, at, body));
                        StatusCode::CREATED
                    },
                ),
            )
            .route(
                "/hook",
                post(
                    |State(received): State<Arc<Received>>, _body: Bytes| async move {
                        received.webhooks.lock().unwrap().push(Instant::now());
                        StatusCode::OK
                    },
                ),
            )
            .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((origin, received))
}

/// A browser's push keys: its P-256 key pair and its 16-byte auth secret (one for every
/// subscription of the run).
struct Browser {
    secret: SecretKey,
    p256dh: String,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> anyhow::Result<Self> {
        let secret = SecretKey::from_slice(&ES256KeyPair::generate().to_bytes())?;
        let p256dh = Base64UrlUnpadded::encode_string(
            secret.public_key().to_encoded_point(false).as_bytes(),
        );
        Ok(Self {
            secret,
            p256dh,
            auth: rand::random(),
        })
    }

    /// The JSON payload of a push sent to this browser.
    fn open(&self, body: &[u8]) -> anyhow::Result<Value> {
        let plain = web_push_native::decrypt(
            body.to_vec(),
            &self.secret,
            &web_push_native::Auth::from(self.auth),
        )
        .map_err(|e| anyhow::anyhow!("cannot decrypt a push: {e:?}"))?;
        Ok(serde_json::from_slice(&plain)?)
    }
}

/// One GraphQL request: its `data`, or the errors or transport failure as text.
async fn gql(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Result<Value, String> {
    let response = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut body: Value = response.json().await.map_err(|e| e.to_string())?;
    match body.get("errors") {
        Some(errors) => Err(errors.to_string()),
        None => Ok(body["data"].take()),
    }
}

/// `n` fresh sections of capacity 1.
async fn sections(fixture: &Fixture, n: usize) -> anyhow::Result<Vec<Uuid>> {
    let ids = fixture.sections(n).await?;
    for chunk in ids.chunks(500) {
        section::Entity::update_many()
            .col_expr(section::Column::Capacity, Expr::value(1))
            .filter(section::Column::Id.is_in(chunk.iter().copied()))
            .exec(&fixture.db)
            .await?;
    }
    Ok(ids)
}

/// Enrolls each student in its section (in order, [`SETUP_CLIENTS`] at a time), expecting
/// `status`; the enrollments' ids.
async fn enroll_all(
    run: &Run<'_>,
    students: &[String],
    sections: &[Uuid],
    status: &str,
) -> anyhow::Result<Vec<Uuid>> {
    stream::iter(students.iter().zip(sections))
        .map(|(token, section)| async move {
            let data = gql(run.http, &run.url, token, ENROLL, json!({ "s": section }))
                .await
                .map_err(|e| anyhow::anyhow!("enroll: {e}"))?;
            ensure!(
                data["enroll"]["status"] == status,
                "enroll answered {data}, not {status}"
            );
            data["enroll"]["id"]
                .as_str()
                .and_then(|id| id.parse::<Uuid>().ok())
                .context("enroll without an id")
        })
        .buffered(SETUP_CLIENTS)
        .try_collect()
        .await
}

/// Registers each student's push subscription at `{origin}/push/{name}`.
async fn register_all(
    run: &Run<'_>,
    browser: &Browser,
    subscriptions: &[(&String, String)],
    origin: &str,
) -> anyhow::Result<()> {
    let auth = Base64UrlUnpadded::encode_string(&browser.auth);
    stream::iter(subscriptions)
        .map(|(token, name)| {
            let variables =
                json!({ "e": format!("{origin}/push/{name}"), "p": browser.p256dh, "a": auth });
            async move {
                let data = gql(run.http, &run.url, token, REGISTER, variables)
                    .await
                    .map_err(|e| anyhow::anyhow!("registerPushSubscription: {e}"))?;
                ensure!(
                    data["registerPushSubscription"] == true,
                    "registerPushSubscription answered {data}"
                );
                Ok(())
            }
        })
        .buffer_unordered(SETUP_CLIENTS)
        .try_collect()
        .await
}

/// Outbox rows neither delivered nor given up.
async fn outbox_depth(db: &DatabaseConnection) -> anyhow::Result<u64> {
    Ok(notification_delivery::Entity::find()
        .filter(notification_delivery::Column::DeliveredAt.is_null())
        .filter(notification_delivery::Column::FailedAt.is_null())
        .count(db)
        .await?)
}

/// Waits until `done` holds or `until`; whether it held.
async fn wait_until(until: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits (bounded) until the outbox is empty, so that the next figure starts from nothing.
async fn drain(run: &Run<'_>) -> anyhow::Result<()> {
    let until = Instant::now() + run.deadline;
    loop {
        let depth = outbox_depth(run.db).await?;
        if depth == 0 {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!(
                "{depth} outbox rows still undelivered after {:?}",
                run.deadline
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `q` quantile of sorted signed samples (nearest rank).
fn signed_percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One latency figure; the table row after the database column.
#[allow(clippy::too_many_arguments)]
async fn latency(
    run: &Run<'_>,
    fixture: &Fixture,
    browser: &Browser,
    origin: &str,
    prefix: &str,
    holders: Vec<String>,
    waiters: Vec<String>,
    clients: usize,
    trace: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    let n = holders.len();
    let sections = sections(fixture, n).await?;
    let held = enroll_all(run, &holders, &sections, "REGISTERED").await?;
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let subscriptions: Vec<(&String, String)> = waiters.iter().zip(names.clone()).collect();
    register_all(run, browser, &subscriptions, origin).await?;
    let waiting = enroll_all(run, &waiters, &sections, "WAITLISTED").await?;
    drain(run).await?;
    run.received.clear();

    // The withdrawals: each client takes the next holder as soon as its previous answer came.
    let jobs: Arc<Vec<(String, Uuid)>> = Arc::new(holders.into_iter().zip(held).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, jobs, next) = (
                run.http.clone(),
                run.url.clone(),
                jobs.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                let mut timed = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((token, enrollment)) = jobs.get(i) else {
                        break;
                    };
                    let sent = Instant::now();
                    let answer =
                        gql(&http, &url, token, WITHDRAW, json!({ "e": enrollment })).await;
                    let answered = Instant::now();
                    match answer {
                        Ok(data) if data["withdraw"]["status"] == "WITHDRAWN" => {
                            timed.push((i, sent, answered));
                        }
                        Ok(data) => errors.push(format!("withdraw answered {data}")),
                        Err(e) => errors.push(e),
                    }
                }
                (timed, errors)
            })
        })
        .collect();
    let mut timed = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for worker in workers {
        let (t, e) = worker.await?;
        timed.extend(t);
        errors.extend(e);
    }
    if let Some(first) = errors.first() {
        bail!("{} withdrawals failed; the first: {first}", errors.len());
    }
    let last_response = timed.iter().map(|t| t.2).max().unwrap_or(started);
    let all = wait_until(last_response + run.deadline, || {
        run.received.counts().0 >= n
    })
    .await;
    if !all {
        eprintln!(
            "{} of {n} pushes arrived within {:?} of the last response",
            run.received.counts().0,
            run.deadline
        );
    }
    if let Err(e) = drain(run).await {
        // Reported with the figure's counts; the next figure's set-up fails on it.
        eprintln!("{e}");
    }

    // Each waiter's first push, by its path.
    let mut first: Vec<Option<(Instant, Bytes)>> = vec![None; n];
    let mut duplicates = 0;
    for (name, at, body) in run.received.pushes.lock().unwrap().iter() {
        let Some(i) = name
            .strip_prefix(prefix)
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i < n)
        else {
            eprintln!("a push to an unknown path: /push/{name}");
            continue;
        };
        match &first[i] {
            Some((earlier, _)) if earlier <= at => duplicates += 1,
            Some(_) => {
                duplicates += 1;
                first[i] = Some((*at, body.clone()));
            }
            None => first[i] = Some((*at, body.clone())),
        }
    }
    if duplicates > 0 {
        eprintln!("{duplicates} pushes arrived more than once (delivery is at least once)");
    }
    let mut matched = 0;
    for (i, push) in first.iter().enumerate() {
        let Some((_, body)) = push else { continue };
        match browser.open(body) {
            Ok(payload)
                if payload["kind"] == "PROMOTED"
                    && payload["enrollmentId"] == waiting[i].to_string() =>
            {
                matched += 1;
            }
            Ok(payload) => eprintln!("push {i} is not the waiter's promotion: {payload}"),
            Err(e) => eprintln!("push {i}: {e}"),
        }
    }

    let mut withdraw = Vec::with_capacity(n);
    let mut from_send = Vec::with_capacity(n);
    let mut from_response = Vec::with_capacity(n);
    // The arrival rate of promotions and the rate the worker kept meanwhile.
    let withdrawing = (last_response - started).as_secs_f64();
    let meanwhile = first
        .iter()
        .flatten()
        .filter(|(at, _)| *at <= last_response)
        .count();
    for &(i, sent, answered) in &timed {
        withdraw.push(answered - sent);
        let Some((at, _)) = &first[i] else { continue };
        from_send.push(*at - sent);
        from_response.push(if *at >= answered {
            millis(*at - answered)
        } else {
            -millis(answered - *at)
        });
    }
    withdraw.sort_unstable();
    from_send.sort_unstable();
    from_response.sort_unstable_by(f64::total_cmp);
    let received = from_send.len();
    let early = from_response.iter().filter(|&&ms| ms < 0.0).count();
    if let Some(path) = trace {
        let mut out = String::new();
        for &(i, sent, answered) in &timed {
            let at = first[i].as_ref().map_or(f64::NAN, |(at, _)| {
                millis(at.saturating_duration_since(started))
            });
            out.push_str(&format!(
                "{i},{:.2},{:.2},{at:.2}\n",
                millis(sent - started),
                millis(answered - started)
            ));
        }
        std::fs::write(format!("{}-{clients}.csv", path.display()), out)?;
    }
    Ok(format!(
        "{clients} | {n} | {received} of {n} | {matched} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {early} | {:.0} | {:.0} |",
        millis(percentile(&withdraw, 0.50)),
        millis(percentile(&withdraw, 0.99)),
        millis(percentile(&from_send, 0.50)),
        millis(percentile(&from_send, 0.99)),
        millis(from_send.last().copied().unwrap_or_default()),
        signed_percentile(&from_response, 0.50),
        signed_percentile(&from_response, 0.99),
        from_response.last().copied().unwrap_or(f64::NAN),
        timed.len() as f64 / withdrawing,
        meanwhile as f64 / withdrawing,
    ))
}

/// A section of the throughput workload: who holds its seat and who waits, with their
/// enrollments.
struct Pair {
    section: Uuid,
    holder: (String, Uuid),
    waiter: (String, Uuid),
}

/// What a throughput figure measured.
struct Throughput {
    per_second: f64,
    p99: f64,
    /// The table row after the database, delivery, clients and sections columns.
    row: String,
}

/// One throughput figure: students `a` hold the seats and `b` wait at first; with `push`, all of
/// them are subscribed at `{origin}/push/{prefix}…` and the server delivers.
#[allow(clippy::too_many_arguments)]
async fn throughput(
    run: &Run<'_>,
    fixture: &Fixture,
    push: Option<(&Browser, &str)>,
    prefix: &str,
    a: Vec<String>,
    b: Vec<String>,
    clients: usize,
    rounds: usize,
) -> anyhow::Result<Throughput> {
    let n = a.len();
    let sections = sections(fixture, n).await?;
    let students: Vec<Uuid> = {
        // The students' ids, for counting their notifications: the tokens' subjects.
        let keys = roster::identity::tokens::TokenKeys::new(roster_bench::SECRET.as_bytes())?;
        a.iter()
            .chain(&b)
            .map(|t| {
                keys.verify(t)
                    .map_err(|e| anyhow::anyhow!("a bench token: {e}"))
            })
            .collect::<Result<_, _>>()?
    };
    if let Some((browser, origin)) = push {
        let subscriptions: Vec<(&String, String)> = a
            .iter()
            .enumerate()
            .map(|(i, t)| (t, format!("{prefix}{i}-a")))
            .chain(
                b.iter()
                    .enumerate()
                    .map(|(i, t)| (t, format!("{prefix}{i}-b"))),
            )
            .collect();
        register_all(run, browser, &subscriptions, origin).await?;
    }
    let held = enroll_all(run, &a, &sections, "REGISTERED").await?;
    let waiting = enroll_all(run, &b, &sections, "WAITLISTED").await?;
    drain(run).await?;
    run.received.clear();

    let mut shares: Vec<Vec<Pair>> = (0..clients).map(|_| Vec::new()).collect();
    for (i, ((section, (a, held)), (b, waiting))) in sections
        .iter()
        .zip(a.into_iter().zip(held))
        .zip(b.into_iter().zip(waiting))
        .enumerate()
    {
        shares[i % clients].push(Pair {
            section: *section,
            holder: (a, held),
            waiter: (b, waiting),
        });
    }
    let started = Instant::now();
    let workers: Vec<_> = shares
        .into_iter()
        .map(|mut share| {
            let (http, url) = (run.http.clone(), run.url.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = Vec::new();
                let mut promotions = 0usize;
                let mut broken = vec![false; share.len()];
                for _ in 0..rounds {
                    for (pair, broken) in share.iter_mut().zip(&mut broken) {
                        if *broken {
                            continue;
                        }
                        let sent = Instant::now();
                        let answer = gql(
                            &http,
                            &url,
                            &pair.holder.0,
                            WITHDRAW,
                            json!({ "e": pair.holder.1 }),
                        )
                        .await;
                        latencies.push(sent.elapsed());
                        match answer {
                            Ok(data) if data["withdraw"]["status"] == "WITHDRAWN" => {
                                promotions += 1;
                            }
                            other => {
                                errors.push(format!("withdraw: {other:?}"));
                                *broken = true;
                                continue;
                            }
                        }
                        let sent = Instant::now();
                        let answer = gql(
                            &http,
                            &url,
                            &pair.holder.0,
                            ENROLL,
                            json!({ "s": pair.section }),
                        )
                        .await;
                        latencies.push(sent.elapsed());
                        let again = match answer {
                            Ok(data) if data["enroll"]["status"] == "WAITLISTED" => data["enroll"]
                                ["id"]
                                .as_str()
                                .and_then(|id| id.parse::<Uuid>().ok()),
                            other => {
                                errors.push(format!("enroll: {other:?}"));
                                None
                            }
                        };
                        let Some(again) = again else {
                            *broken = true;
                            continue;
                        };
                        // The waiter holds the seat now; the old holder waits.
                        let old = std::mem::take(&mut pair.holder.0);
                        pair.holder = std::mem::replace(&mut pair.waiter, (old, again));
                    }
                }
                (latencies, errors, promotions)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    let mut promotions = 0;
    for worker in workers {
        let (l, e, p) = worker.await?;
        latencies.extend(l);
        errors.extend(e);
        promotions += p;
    }
    let elapsed = started.elapsed();
    let ended = Instant::now();
    let left = outbox_depth(run.db).await?;
    if let Some(first) = errors.first() {
        eprintln!("{} errors; the first: {first}", errors.len());
    }
    let (pushes, webhooks, after) = if push.is_some() {
        let all = wait_until(ended + run.deadline, || {
            let (p, w) = run.received.counts();
            p >= promotions && w >= promotions
        })
        .await;
        let (p, w) = run.received.counts();
        if !all {
            eprintln!(
                "{p} pushes and {w} webhooks of {promotions} arrived within {:?}",
                run.deadline
            );
        }
        let after = run
            .received
            .last()
            .map(|at| at.saturating_duration_since(ended).as_secs_f64());
        (p.to_string(), w.to_string(), after)
    } else {
        ("–".to_owned(), "–".to_owned(), None)
    };
    if let Err(e) = drain(run).await {
        // Reported with the figure's counts; the next figure's set-up fails on it.
        eprintln!("{e}");
    }
    let promoted = notification::Entity::find()
        .filter(notification::Column::UserId.is_in(students))
        .filter(notification::Column::Kind.eq("PROMOTED"))
        .count(run.db)
        .await?;
    latencies.sort_unstable();
    let per_second = latencies.len() as f64 / elapsed.as_secs_f64();
    let p99 = millis(percentile(&latencies, 0.99));
    Ok(Throughput {
        per_second,
        p99,
        row: format!(
            "{} | {per_second:.0} | {:.1} | {p99:.1} | {} | {promoted} of {promotions} | {pushes} | {webhooks} | {left} | {} |",
            latencies.len(),
            millis(percentile(&latencies, 0.50)),
            errors.len(),
            after.map_or_else(|| "–".to_owned(), |s| format!("{s:.2}")),
        ),
    })
}

//! How fast a waitlist promotion reaches the promoted student's screen, on one replica and
//! across two, while an enroll load runs.
//!
//! Two `roster serve` processes share one PostgreSQL database: A (the fixture's server) and B.
//! Fresh sections of capacity 1, in one course, each with a seat holder and a waiting student
//! (both enrolled over HTTP through A, the second one WAITLISTED). Every waiting student
//! subscribes to `waitlistPromotions` over its own WebSocket (`graphql-transport-ws`, the token in
//! the `connection_init` payload), alternately on A and on B; the program waits until all are
//! subscribed. Then the load starts: a fixed number of clients enroll fresh students, each once,
//! into a separate course of 1,000 ample sections, every client alternating between A and B.
//! During the load the holders withdraw one after the other through A, with a short spacing
//! between one promotion's receipt and the next withdrawal. Each withdrawal promotes its waiter
//! in its transaction; the promotion is timed from the arrival of the withdraw's HTTP response to
//! the arrival on the waiter's socket of the `next` message that shows that enrollment REGISTERED
//! (saturating at 0 when the message beats the response). A waiter subscribed on A is the "same
//! replica" figure (A's own change feed tells it); one on B is the "other replica" figure (B
//! learns of A's commit through the `changes` table, woken by A's `NOTIFY`). A promotion that has
//! not arrived within the timeout counts as missed; in the percentiles a missed promotion counts
//! as slower than the timeout. The load's rate is its successful enrollments per second over the
//! promotions, after a short warm-up.
//!
//! SQLite is one process, so there only the same-replica figure is measured (one server, every
//! subscriber and all the load on it).
//!
//! Prints a Markdown table and the two p99s beside their goals (< 100 ms on one replica,
//! < 250 ms across two). `bench/run.sh promotion` runs it on PostgreSQL.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use entity::section;
use futures_util::{SinkExt, StreamExt, TryStreamExt, stream};
use roster_bench::{Fixture, SECRET, Server, Target, millis};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use uuid::Uuid;

/// Waitlist promotion latency to a `waitlistPromotions` subscriber, on one replica and across
/// two, under enroll load.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Promotions timed: sections of capacity 1, each with a holder and a waiter.
    #[arg(long, default_value_t = 200)]
    promotions: usize,
    /// Clients enrolling fresh students into 1,000 other sections meanwhile.
    #[arg(long, default_value_t = 8)]
    load_clients: usize,
    /// Students the load may enroll (each once); the load stops early if it runs out.
    #[arg(long, default_value_t = 20_000)]
    load_students: usize,
    /// Milliseconds between one promotion's receipt (or miss) and the next withdrawal.
    #[arg(long, default_value_t = 20)]
    spacing: u64,
    /// Milliseconds a promotion may take to arrive before it counts as missed.
    #[arg(long, default_value_t = 5000)]
    timeout: u64,
}

const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";
const WITHDRAW: &str = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }";
const PROMOTIONS: &str = "subscription { waitlistPromotions { id status } }";

/// Clients that set the sections up and connections opened at once (not measured).
const SETUP_CLIENTS: usize = 16;
/// Sections the load spreads over.
const LOAD_SECTIONS: usize = 1000;
/// How long the load runs before the first withdrawal.
const LOAD_WARMUP: Duration = Duration::from_secs(1);
/// How long to wait after the last `subscribe`: the protocol does not acknowledge one.
const SUBSCRIBE_SETTLE: Duration = Duration::from_millis(500);
/// The goals for p99, ms: on one replica, across two.
const GOAL_ONE: f64 = 100.0;
const GOAL_TWO: f64 = 250.0;

/// The table's second column, per replica the subscriber is on.
const WHERE: [&str; 2] = ["same replica (A)", "other replica (B)"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = args.promotions;
    ensure!(n > 0, "--promotions must be at least 1");
    ensure!(args.load_clients > 0, "--load-clients must be at least 1");
    let label = args.target.label.clone();
    let sqlite = args.target.database_url.starts_with("sqlite");
    if sqlite {
        eprintln!(
            "{label}: SQLite is served by one process: only the same-replica figure is measured"
        );
    }

    let fixture = Fixture::prepare(&args.target, 2 * n + args.load_students).await?;
    let second = if sqlite {
        None
    } else {
        Some(Server::start(&args.target.roster, &args.target.database_url, SECRET).await?)
    };
    let replicas: Vec<&Server> = std::iter::once(&fixture.server)
        .chain(second.as_ref())
        .collect();
    let graphql: Vec<String> = replicas
        .iter()
        .map(|s| format!("{}/graphql", s.base))
        .collect();
    let (holders, rest) = fixture.tokens.split_at(n);
    let (waiters, load_tokens) = rest.split_at(n);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;

    // The sections, their holders on the seats and their waiters on the waitlists, through A.
    let sections = capacity_one(&fixture, n).await?;
    let load_sections = fixture.sections(LOAD_SECTIONS).await?;
    let pairs: Vec<(Uuid, Uuid)> = stream::iter(0..n)
        .map(|k| {
            let (http, url) = (&http, &graphql[0]);
            let (holder, waiter, section) = (&holders[k], &waiters[k], sections[k]);
            async move {
                let seat = enroll(http, url, holder, section, "REGISTERED").await?;
                let waiting = enroll(http, url, waiter, section, "WAITLISTED").await?;
                anyhow::Ok((seat, waiting))
            }
        })
        .buffered(SETUP_CLIENTS)
        .try_collect()
        .await?;

    // Every waiter subscribes, alternately on A and on B.
    let (receipts, mut received) = mpsc::unbounded_channel::<Receipt>();
    let gate = Arc::new(Semaphore::new(SETUP_CLIENTS));
    let mut subscribers = Vec::with_capacity(n);
    let mut readies = Vec::with_capacity(n);
    for (k, (token, &(_, waiting))) in waiters.iter().zip(&pairs).enumerate() {
        let url = format!(
            "{}/graphql/ws",
            replicas[k % replicas.len()].base.replace("http", "ws")
        );
        let (ready, is_ready) = oneshot::channel();
        subscribers.push(tokio::spawn(subscriber(
            k,
            url,
            token.clone(),
            waiting,
            gate.clone(),
            ready,
            receipts.clone(),
        )));
        readies.push(is_ready);
    }
    drop(receipts);
    for (k, ready) in readies.into_iter().enumerate() {
        match ready.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("waiter {k} could not subscribe: {e:#}"),
            Err(_) => bail!("waiter {k}'s subscriber stopped before subscribing"),
        }
    }
    tokio::time::sleep(SUBSCRIBE_SETTLE).await;

    // The load, then the promotions one after the other.
    let mut load = Load::start(
        &http,
        &graphql,
        load_tokens,
        &load_sections,
        args.load_clients,
    );
    tokio::time::sleep(LOAD_WARMUP).await;
    let (load_before, started) = (load.enrolled(), Instant::now());

    let sides = replicas.len();
    let timeout = Duration::from_millis(args.timeout);
    let mut arrived: HashMap<usize, Instant> = HashMap::new();
    let mut ended: HashMap<usize, String> = HashMap::new();
    let mut latencies = [Vec::new(), Vec::new()];
    let mut missed = [0usize; 2];
    for (k, &(seat, _)) in pairs.iter().enumerate() {
        let data = gql(
            &http,
            &graphql[0],
            &holders[k],
            WITHDRAW,
            json!({ "e": seat }),
        )
        .await
        .map_err(|e| anyhow::anyhow!("withdraw of holder {k}: {e}"))?;
        let answered = Instant::now();
        ensure!(
            data["withdraw"]["status"] == "WITHDRAWN",
            "withdraw of holder {k} answered {data}"
        );
        let deadline = answered + timeout;
        let receipt = loop {
            if let Some(at) = arrived.get(&k) {
                break Some(*at);
            }
            if ended.contains_key(&k) {
                break None;
            }
            match tokio::time::timeout_at(deadline.into(), received.recv()).await {
                Ok(Some(Receipt::Promoted(j, at))) => {
                    arrived.insert(j, at);
                }
                Ok(Some(Receipt::Ended(j, why))) => {
                    ended.insert(j, why);
                }
                Ok(None) | Err(_) => break None,
            }
        };
        let side = k % sides;
        match receipt.map(|at| at.saturating_duration_since(answered)) {
            Some(latency) if latency <= timeout => latencies[side].push(latency),
            _ => missed[side] += 1,
        }
        tokio::time::sleep(Duration::from_millis(args.spacing)).await;
    }
    let elapsed = started.elapsed();
    let load_during = load.enrolled() - load_before;
    let load_out_at = load.stop().await;
    for subscriber in &subscribers {
        subscriber.abort();
    }
    let load_rate = load_during as f64 / elapsed.as_secs_f64();

    println!(
        "\n### Waitlist promotion on the subscriber's screen on {label} ({n} promotions, {} load clients)\n",
        args.load_clients
    );
    println!(
        "| database | where the subscriber is | promotions | received | p50 ms | p99 ms | max ms | missed | load enrollments/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut p99 = [None, None];
    for side in 0..2 {
        if side >= sides {
            println!(
                "| {label} | {} | n/a (one process) | | | | | | |",
                WHERE[side]
            );
            continue;
        }
        let sorted = &mut latencies[side];
        sorted.sort_unstable();
        let promotions = (0..n).filter(|k| k % sides == side).count();
        let figure = |q| quantile(sorted, missed[side], q, timeout);
        p99[side] = Some(figure(0.99));
        println!(
            "| {label} | {} | {promotions} | {} | {} | {} | {} | {} | {load_rate:.0} |",
            WHERE[side],
            sorted.len(),
            figure(0.50),
            figure(0.99),
            figure(1.0),
            missed[side],
        );
    }
    let [one, two] = p99.map(|p| p.map_or_else(|| "n/a (one process)".into(), |p| p + " ms"));
    println!();
    println!(
        "{label}: promotion on the subscriber's screen: p99 {one} on one replica (goal < {GOAL_ONE} ms), {two} across two (goal < {GOAL_TWO} ms)"
    );
    if let Some(at) = load_out_at {
        let when = match at.checked_duration_since(started) {
            Some(into) => format!("{:.1} s into the promotions", into.as_secs_f64()),
            None => "before the promotions began".into(),
        };
        println!(
            "\n{label}: the load ran out of students {when}, so it was lighter than asked (raise --load-students)"
        );
    }
    let (errors, first_error) = load.errors();
    if errors > 0 {
        eprintln!(
            "{label}: the load had {errors} errors; the first: {}",
            first_error.unwrap_or_default()
        );
    }
    for (k, why) in &ended {
        eprintln!("{label}: waiter {k}'s subscription ended: {why}");
    }
    Ok(())
}

/// A figure in ms for the `q` quantile (nearest rank) of the sorted received latencies and the
/// `missed` promotions, each missed one counted as slower than `timeout`.
fn quantile(sorted: &[Duration], missed: usize, q: f64, timeout: Duration) -> String {
    let total = sorted.len() + missed;
    if total == 0 {
        return "n/a".into();
    }
    let rank = ((q * total as f64).ceil() as usize).clamp(1, total);
    if rank > sorted.len() {
        format!("> {:.0}", millis(timeout))
    } else {
        format!("{:.1}", millis(sorted[rank - 1]))
    }
}

/// `n` fresh sections of capacity 1 in one course, with a waitlist and automatic promotion.
async fn capacity_one(fixture: &Fixture, n: usize) -> anyhow::Result<Vec<Uuid>> {
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

/// Enrolls the student in the section, expecting `status`; the enrollment's id.
async fn enroll(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    section: Uuid,
    status: &str,
) -> anyhow::Result<Uuid> {
    let data = gql(http, url, token, ENROLL, json!({ "s": section }))
        .await
        .map_err(|e| anyhow::anyhow!("enroll: {e}"))?;
    ensure!(
        data["enroll"]["status"] == status,
        "enroll answered {data}, not {status}"
    );
    data["enroll"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .context("enroll without an id")
}

/// What a subscriber reports, with the waiter's index.
enum Receipt {
    /// The `next` showing the waiter's enrollment REGISTERED, and when it arrived.
    Promoted(usize, Instant),
    /// The subscription or the connection ended, and why.
    Ended(usize, String),
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

/// Waiter `k`: subscribes (at most [`SETUP_CLIENTS`] connecting at once), says so on `ready`,
/// then reports every promotion of `enrollment` and the end of the subscription.
async fn subscriber(
    k: usize,
    url: String,
    token: String,
    enrollment: Uuid,
    gate: Arc<Semaphore>,
    ready: oneshot::Sender<anyhow::Result<()>>,
    receipts: mpsc::UnboundedSender<Receipt>,
) {
    let permit = gate.acquire_owned().await;
    let mut socket = match subscribe(&url, &token).await {
        Ok(socket) => socket,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    drop(permit);
    let _ = ready.send(Ok(()));
    let enrollment = enrollment.to_string();
    let why = loop {
        let message = match socket.next().await {
            None => break "the server closed the connection".to_owned(),
            Some(Err(e)) => break e.to_string(),
            Some(Ok(message)) => message,
        };
        let at = Instant::now();
        let text_message = match message {
            Message::Text(text_message) => text_message,
            Message::Close(frame) => break format!("closed: {frame:?}"),
            _ => continue,
        };
        let Ok(value) = serde_json::from_str::<Value>(&text_message) else {
            continue;
        };
        match value["type"].as_str() {
            Some("next") if value["payload"].get("errors").is_some() => {
                break text_message.to_string();
            }
            Some("next") => {
                let promotion = &value["payload"]["data"]["waitlistPromotions"];
                if promotion["status"] == "REGISTERED" && promotion["id"] == enrollment.as_str() {
                    let _ = receipts.send(Receipt::Promoted(k, at));
                }
            }
            Some("ping") => {
                if let Err(e) = socket.send(text(json!({ "type": "pong" }))).await {
                    break e.to_string();
                }
            }
            Some("error" | "complete") => break text_message.to_string(),
            _ => {}
        }
    };
    let _ = receipts.send(Receipt::Ended(k, why));
}

/// Connects with the token in `connection_init`, waits for `connection_ack` and subscribes to
/// `waitlistPromotions` (which sends nothing until a promotion).
async fn subscribe(url: &str, token: &str) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    socket
        .send(text(json!({ "type": "connection_init",
            "payload": { "Authorization": format!("Bearer {token}") } })))
        .await?;
    loop {
        match socket
            .next()
            .await
            .context("closed before connection_ack")??
        {
            Message::Text(t) => match serde_json::from_str::<Value>(&t)?["type"].as_str() {
                Some("connection_ack") => break,
                Some("ping") => socket.send(text(json!({ "type": "pong" }))).await?,
                _ => bail!("expected connection_ack, got {t}"),
            },
            Message::Close(frame) => bail!("connection refused: {frame:?}"),
            _ => {}
        }
    }
    socket
        .send(text(json!({ "id": "1", "type": "subscribe",
            "payload": { "query": PROMOTIONS } })))
        .await?;
    Ok(socket)
}

/// The enroll load: clients enrolling one fresh student after another, spread over the load
/// sections, each client alternating between the replicas, until stopped or out of students.
struct Load {
    stop: Arc<AtomicBool>,
    enrolled: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
    first_error: Arc<Mutex<Option<String>>>,
    /// When the last student was taken, if the load ran out.
    out_at: Arc<Mutex<Option<Instant>>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(
        http: &reqwest::Client,
        urls: &[String],
        tokens: &[String],
        sections: &[Uuid],
        clients: usize,
    ) -> Self {
        let tokens: Arc<[String]> = tokens.into();
        let (urls, sections): (Arc<[String]>, Arc<[Uuid]>) = (urls.into(), sections.into());
        let next = Arc::new(AtomicUsize::new(0));
        let mut load = Self {
            stop: Arc::default(),
            enrolled: Arc::default(),
            errors: Arc::default(),
            first_error: Arc::default(),
            out_at: Arc::default(),
            clients: Vec::with_capacity(clients),
        };
        for client in 0..clients {
            let (http, urls, tokens, sections, next) = (
                http.clone(),
                urls.clone(),
                tokens.clone(),
                sections.clone(),
                next.clone(),
            );
            let (stop, enrolled, errors, first_error, out_at) = (
                load.stop.clone(),
                load.enrolled.clone(),
                load.errors.clone(),
                load.first_error.clone(),
                load.out_at.clone(),
            );
            load.clients.push(tokio::spawn(async move {
                for request in client.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(token) = tokens.get(i) else {
                        out_at.lock().unwrap().get_or_insert_with(Instant::now);
                        break;
                    };
                    let url = &urls[request % urls.len()];
                    let section = sections[i % sections.len()];
                    match gql(&http, url, token, ENROLL, json!({ "s": section })).await {
                        Ok(_) => {
                            enrolled.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(e);
                        }
                    }
                }
            }));
        }
        load
    }

    /// Successful enrollments so far.
    fn enrolled(&self) -> usize {
        self.enrolled.load(Ordering::Relaxed)
    }

    /// Errors so far, and the first one.
    fn errors(&self) -> (usize, Option<String>) {
        (
            self.errors.load(Ordering::Relaxed),
            self.first_error.lock().unwrap().clone(),
        )
    }

    /// Stops the clients and waits for them; when the load ran out of students, if it did.
    async fn stop(&mut self) -> Option<Instant> {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients.drain(..) {
            let _ = client.await;
        }
        *self.out_at.lock().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_promotions_count_as_slower_than_the_timeout() {
        let ms = Duration::from_millis;
        let timeout = ms(5000);
        let received: Vec<Duration> = (1..=99).map(ms).collect();
        assert_eq!(quantile(&received, 0, 0.99, timeout), "99.0");
        assert_eq!(quantile(&received, 0, 0.50, timeout), "50.0");
        assert_eq!(quantile(&received, 1, 0.50, timeout), "50.0");
        assert_eq!(quantile(&received, 1, 0.99, timeout), "99.0");
        assert_eq!(quantile(&received, 1, 1.0, timeout), "> 5000");
        assert_eq!(quantile(&received, 2, 0.99, timeout), "> 5000");
        assert_eq!(quantile(&[], 0, 0.99, timeout), "n/a");
        assert_eq!(quantile(&[], 3, 0.5, timeout), "> 5000");
    }
}

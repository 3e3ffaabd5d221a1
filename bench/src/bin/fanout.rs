//! Subscription fan-out through the real server: N WebSocket clients subscribe to
//! `sectionSeats` of one section; each of a series of enrollments (over HTTP) changes its count,
//! and every client's receipt of the new count is timed from the mutation's response. Also: a
//! burst of enrollments with and without a subscriber that never reads.
//!
//! Prints Markdown table rows. `bench/run.sh fanout` runs it on PostgreSQL and SQLite.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use roster_bench::{Fixture, Job, Target, millis, percentile, run_jobs};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use uuid::Uuid;

/// `sectionSeats` fan-out to many WebSocket subscribers, and a burst with a stalled one.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Subscriber counts, one figure each.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    subscribers: Vec<usize>,
    /// Changes timed per figure.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// Enrollments in the burst comparison.
    #[arg(long, default_value_t = 1000)]
    burst: usize,
}

const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id } }";
const SEATS: &str = "subscription($s: UUID!) { sectionSeats(sectionId: $s) { registeredCount } }";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let students = args.changes.max(args.burst);
    let fixture = Fixture::prepare(&args.target, students).await?;
    let (tokens, server) = (&fixture.tokens, &fixture.server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kb = server.rss_kb().unwrap_or(0);
    let ws_url = format!("{}/graphql/ws", server.base.replace("http", "ws"));
    let http = reqwest::Client::new();

    println!("\n### Fan-out on {}\n", args.target.label);
    println!(
        "| database | subscribers | connected | seconds to subscribe all | receipts | p50 ms | p99 ms | max ms | missed | RSS idle MB | RSS subscribed MB | KB per subscriber |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &args.subscribers {
        let section = fixture.sections(1).await?[0];
        let (receipts, mut received) = mpsc::unbounded_channel::<(i64, Instant)>();
        let gate = Arc::new(Semaphore::new(200));
        let mut clients = Vec::with_capacity(n);
        let subscribed_at = Instant::now();
        for _ in 0..n {
            let (url, gate, receipts) = (ws_url.clone(), gate.clone(), receipts.clone());
            let (ready, is_ready) = tokio::sync::oneshot::channel();
            clients.push((
                tokio::spawn(async move {
                    let permit = gate.acquire_owned().await;
                    let mut socket = match subscribe(&url, section).await {
                        Ok(socket) => socket,
                        Err(e) => {
                            let _ = ready.send(Err(e.to_string()));
                            return;
                        }
                    };
                    drop(permit);
                    let _ = ready.send(Ok(()));
                    while let Some(Ok(message)) = socket.next().await {
                        if let Message::Text(text) = message
                            && let Ok(value) = serde_json::from_str::<Value>(&text)
                            && let Some(count) =
                                value["payload"]["data"]["sectionSeats"]["registeredCount"].as_i64()
                        {
                            let _ = receipts.send((count, Instant::now()));
                        }
                    }
                }),
                is_ready,
            ));
        }
        let mut failed = 0;
        for (_, ready) in clients.iter_mut() {
            if !matches!(ready.await, Ok(Ok(()))) {
                failed += 1;
            }
        }
        let connected = n - failed;
        let subscribe_secs = subscribed_at.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let busy_kb = server.rss_kb().unwrap_or(0);

        let mut latencies = Vec::with_capacity(connected * args.changes);
        let mut missing = 0;
        for (k, token) in tokens.iter().take(args.changes).enumerate() {
            let expected = k as i64 + 1;
            let response: Value = http
                .post(format!("{}/graphql", server.base))
                .bearer_auth(token)
                .json(&json!({ "query": ENROLL, "variables": { "s": section } }))
                .send()
                .await?
                .json()
                .await?;
            let answered = Instant::now();
            anyhow::ensure!(
                response.get("errors").is_none(),
                "enroll failed: {response}"
            );
            let mut got = 0;
            let deadline = answered + Duration::from_secs(20);
            while got < connected {
                let Ok(Some((count, at))) =
                    tokio::time::timeout_at(deadline.into(), received.recv()).await
                else {
                    break;
                };
                if count == expected {
                    got += 1;
                    latencies.push(at.saturating_duration_since(answered));
                }
            }
            missing += connected - got;
        }
        latencies.sort_unstable();
        println!(
            "| {} | {n} | {connected} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {missing} | {} | {} | {:.1} |",
            args.target.label,
            subscribe_secs,
            latencies.len(),
            millis(percentile(&latencies, 0.50)),
            millis(percentile(&latencies, 0.99)),
            millis(latencies.last().copied().unwrap_or_default()),
            idle_kb / 1024,
            busy_kb / 1024,
            busy_kb.saturating_sub(idle_kb) as f64 / connected.max(1) as f64,
        );
        for (client, _) in clients {
            client.abort();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // A burst of enrollments with no subscriber, then with one that never reads.
    println!(
        "\n### A burst of {} enrollments on {} (8 clients)\n",
        args.burst, args.target.label
    );
    println!("| subscriber | requests | enrollments/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|");
    for stalled in [false, true] {
        let section = fixture.sections(1).await?[0];
        let _socket = if stalled {
            Some(subscribe(&ws_url, section).await?)
        } else {
            None
        };
        let jobs = tokens
            .iter()
            .take(args.burst)
            .map(|token| Job {
                token: Some(token.clone()),
                body: json!({ "query": ENROLL, "variables": { "s": section } }),
            })
            .collect();
        let summary = run_jobs(&server.base, jobs, 8).await;
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {} |",
            if stalled {
                "one that never reads"
            } else {
                "none"
            },
            summary.requests,
            summary.per_second(),
            millis(summary.p50),
            millis(summary.p99),
            summary.errors
        );
    }
    Ok(())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects, acknowledges, subscribes to the section's seats and reads the first update.
async fn subscribe(url: &str, section: Uuid) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let send = |v: Value| Message::Text(v.to_string().into());
    socket
        .send(send(json!({ "type": "connection_init", "payload": {} })))
        .await?;
    socket.next().await.ok_or(anyhow::anyhow!("no ack"))??;
    socket
        .send(send(json!({ "id": "1", "type": "subscribe",
            "payload": { "query": SEATS, "variables": { "s": section } } })))
        .await?;
    socket
        .next()
        .await
        .ok_or(anyhow::anyhow!("no first update"))??;
    Ok(socket)
}

//! A bounded mixed load on `roster serve` (loopback only): 64 clients for 30 s, each sending
//! discovery reads, enrollments and withdrawals at random. Prints throughput, latency and the
//! count of every outcome; exits non-zero if anything but an expected domain error came back.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use rand::{Rng, SeedableRng, rngs::StdRng};
use roster_bench::{Fixture, Target, millis, percentile};
use serde_json::{Value, json};
use uuid::Uuid;

/// A bounded mixed load of reads and writes; fails on any unexpected outcome.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    duration: Duration,
}

/// Errors a correct server answers under this load.
const EXPECTED: &[&str] = &["ALREADY_ENROLLED", "INVALID_TRANSITION", "SECTION_FULL"];
const DISCOVERY: &str = "{ courses(first: 20) { totalCount edges { node { id name teacher { name }
  sections { id seatsAvailable waitlistCount } } } } }";
const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";
const WITHDRAW: &str = "mutation($e: UUID!) { withdraw(enrollmentId: $e) { status } }";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fixture = Fixture::prepare(&args.target, 2000).await?;
    let sections = Arc::new(fixture.sections(40).await?);
    let tokens = Arc::new(fixture.tokens.clone());
    let url = format!("{}/graphql", fixture.server.base);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let until = Instant::now() + args.duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (http, url, sections, tokens) =
                (http.clone(), url.clone(), sections.clone(), tokens.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(w as u64);
                let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
                let mut latencies = Vec::new();
                let mut held: Vec<(usize, Uuid)> = Vec::new();
                while Instant::now() < until {
                    let roll = rng.random_range(0..100);
                    let (token, body, kind) = if roll < 70 {
                        (None, json!({ "query": DISCOVERY }), "discovery")
                    } else if roll < 85 || held.is_empty() {
                        let student = rng.random_range(0..tokens.len());
                        let section = sections[rng.random_range(0..sections.len())];
                        (
                            Some(student),
                            json!({ "query": ENROLL, "variables": { "s": section } }),
                            "enroll",
                        )
                    } else {
                        let (student, id) = held.swap_remove(rng.random_range(0..held.len()));
                        (
                            Some(student),
                            json!({ "query": WITHDRAW, "variables": { "e": id } }),
                            "withdraw",
                        )
                    };
                    let mut request = http.post(&url).json(&body);
                    if let Some(student) = token {
                        request = request.bearer_auth(&tokens[student]);
                    }
                    let sent = Instant::now();
                    let outcome = match request.send().await {
                        Ok(response) => match response.json::<Value>().await {
                            Ok(answer) => {
                                if kind == "enroll"
                                    && let Some(id) = answer["data"]["enroll"]["id"].as_str()
                                {
                                    held.push((token.unwrap_or(0), id.parse().unwrap()));
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
    let unexpected: Vec<(&String, &usize)> = outcomes
        .iter()
        .filter(|(k, _)| !k.ends_with(" ok") && !EXPECTED.iter().any(|e| k.ends_with(e)))
        .collect();
    println!(
        "| {} | {} | {:.0} s | {} | {:.0} | {:.1} | {:.1} | {} | {} |",
        args.target.label,
        args.concurrency,
        elapsed,
        latencies.len(),
        latencies.len() as f64 / elapsed,
        millis(percentile(&latencies, 0.5)),
        millis(percentile(&latencies, 0.99)),
        outcomes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; "),
        if unexpected.is_empty() {
            "none"
        } else {
            "SEE OUTCOMES"
        },
    );
    anyhow::ensure!(unexpected.is_empty(), "unexpected outcomes: {unexpected:?}");
    Ok(())
}

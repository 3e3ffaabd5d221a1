//! Enrollment throughput through the real server: `enroll` over HTTP into one hot section and
//! spread over 1,000 sections, at several concurrencies, on the database given.
//!
//! Each figure uses fresh sections and the same students, so every request is a successful
//! enrollment that takes a seat (capacity is large, as in the raw-SQL anchor). Prints one
//! Markdown table row per figure. `bench/run.sh enroll` runs it on SQLite and PostgreSQL beside
//! the anchor, and passes the anchor's figures (`--anchor 1=HOT/SPREAD,8=HOT/SPREAD,…`, pgbench's
//! tx/s): each row then gives the anchor's tx/s for the same clients and case and the ratio
//! Roster ÷ anchor, and the rows are followed by the two ratios at 8 clients beside their goals
//! (spread ≥ 0.5×, one hot section ≥ 0.7×).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::Parser;
use roster_bench::{Fixture, Job, Target, millis, run_jobs};
use serde_json::json;

/// Enroll throughput through `roster serve`, one hot section and many.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Students, and so requests per figure.
    #[arg(long, default_value_t = 1000)]
    students: usize,
    /// Sections of the spread figure.
    #[arg(long, default_value_t = 1000)]
    sections: usize,
    /// Concurrent clients, one figure each.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// The raw-SQL anchor's tx/s from the same run, one hot section and spread, per client
    /// count: `1=HOT/SPREAD,8=HOT/SPREAD,32=HOT/SPREAD`. Without it the ratios are "n/a".
    #[arg(long)]
    anchor: Option<String>,
}

const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";

/// The clients the goals are set at, and the goals over HTTP: (spread, one hot section).
const GOAL_CLIENTS: usize = 8;
const GOAL_SPREAD: f64 = 0.33;
const GOAL_HOT: f64 = 0.4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let anchor = args
        .anchor
        .as_deref()
        .map(parse_anchor)
        .transpose()
        .context("--anchor")?;
    let fixture = Fixture::prepare(&args.target, args.students).await?;
    let (tokens, server) = (&fixture.tokens, &fixture.server);

    // Roster ÷ anchor per (clients, spread).
    let mut ratios: BTreeMap<(usize, bool), f64> = BTreeMap::new();
    for &concurrency in &args.concurrency {
        for spread in [false, true] {
            let sections = fixture
                .sections(if spread { args.sections } else { 1 })
                .await?;
            let jobs = tokens
                .iter()
                .enumerate()
                .map(|(i, token)| Job {
                    token: Some(token.clone()),
                    body: json!({ "query": ENROLL,
                        "variables": { "s": sections[i % sections.len()] } }),
                })
                .collect();
            let cpu_before = roster_bench::cpu_ms(server.pid());
            let summary = run_jobs(&server.base, jobs, concurrency).await;
            let cpu = cpu_before
                .zip(roster_bench::cpu_ms(server.pid()))
                .map(|(before, after)| (after - before) / summary.requests.max(1) as f64);
            if let Some(error) = &summary.first_error {
                eprintln!("{} errors; the first: {error}", summary.errors);
            }
            let anchor_tx = anchor
                .as_ref()
                .and_then(|a| a.get(&concurrency))
                .map(|&(hot, spread_tx)| if spread { spread_tx } else { hot });
            let ratio = anchor_tx.map(|tx| summary.per_second() / tx);
            if let Some(ratio) = ratio {
                ratios.insert((concurrency, spread), ratio);
            }
            println!(
                "| {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} |",
                args.target.label,
                if spread {
                    format!("spread over {}", sections.len())
                } else {
                    "one hot section".into()
                },
                concurrency,
                summary.requests,
                summary.per_second(),
                millis(summary.p50),
                millis(summary.p99),
                anchor_tx.map_or_else(|| "n/a".into(), |tx| format!("{tx:.0}")),
                ratio.map_or_else(|| "n/a".into(), |r| format!("{r:.2}")),
                summary.errors,
                cpu.map_or_else(|| "n/a".into(), |ms| format!("{ms:.2}")),
            );
        }
    }
    if anchor.is_some() {
        let spread_over = format!("spread over {} sections", thousands(args.sections));
        let goals = [
            (true, spread_over.as_str(), GOAL_SPREAD),
            (false, "in one hot section", GOAL_HOT),
        ];
        let lines: Vec<String> = goals
            .into_iter()
            .filter_map(|(spread, case, goal)| {
                let ratio = ratios.get(&(GOAL_CLIENTS, spread))?;
                Some(goal_line(
                    &args.target.label,
                    case,
                    GOAL_CLIENTS,
                    *ratio,
                    goal,
                ))
            })
            .collect();
        if !lines.is_empty() {
            println!();
            for line in lines {
                println!("{line}");
            }
        }
    }
    if let Some(rss) = server.rss_kb() {
        eprintln!(
            "{}: server RSS after the run: {} MB",
            args.target.label,
            rss / 1024
        );
    }
    Ok(())
}

/// Reads `--anchor`: `CLIENTS=HOT/SPREAD` pairs separated by commas, the anchor's tx/s on one
/// hot section and spread over the sections, into clients → (hot, spread).
fn parse_anchor(text: &str) -> anyhow::Result<BTreeMap<usize, (f64, f64)>> {
    let mut anchor = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = part.split_once('=').and_then(|(clients, figures)| {
            let (hot, spread) = figures.split_once('/')?;
            Some((
                clients.trim().parse::<usize>().ok()?,
                hot.trim().parse::<f64>().ok()?,
                spread.trim().parse::<f64>().ok()?,
            ))
        });
        let Some((clients, hot, spread)) = parsed.filter(|(_, h, s)| *h > 0.0 && *s > 0.0) else {
            bail!("not CLIENTS=HOT/SPREAD with positive tx/s: {part:?}");
        };
        if anchor.insert(clients, (hot, spread)).is_some() {
            bail!("{clients} clients given twice");
        }
    }
    Ok(anchor)
}

/// One of the lines after the rows: a ratio beside its goal.
fn goal_line(label: &str, case: &str, clients: usize, ratio: f64, goal: f64) -> String {
    format!(
        "{label}: enroll {case} at {clients} clients: {ratio:.2}× the raw-SQL anchor (goal ≥ {goal}×)"
    )
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
    fn reads_the_anchor_figures() {
        let anchor = parse_anchor("1=1524/1493,8=1859/5191,32=1153/5952").unwrap();
        assert_eq!(
            anchor.into_iter().collect::<Vec<_>>(),
            vec![
                (1, (1524.0, 1493.0)),
                (8, (1859.0, 5191.0)),
                (32, (1153.0, 5952.0))
            ]
        );
        assert_eq!(
            parse_anchor(" 8 = 2210.5 / 7349 ,").unwrap()[&8],
            (2210.5, 7349.0)
        );
        assert!(parse_anchor("").unwrap().is_empty());
    }

    #[test]
    fn refuses_a_malformed_anchor() {
        for bad in [
            "8=1859",
            "8=/5191",
            "x=1/2",
            "8=1/2,8=3/4",
            "8=0/5191",
            "1=a/b",
        ] {
            assert!(parse_anchor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prints_ratios_beside_their_goals() {
        assert_eq!(
            goal_line(
                "PostgreSQL",
                "spread over 1,000 sections",
                8,
                1029.0 / 5191.0,
                GOAL_SPREAD
            ),
            "PostgreSQL: enroll spread over 1,000 sections at 8 clients: 0.20× the raw-SQL anchor (goal ≥ 0.33×)"
        );
        assert_eq!(
            goal_line("SQLite", "in one hot section", 8, 708.0 / 1859.0, GOAL_HOT),
            "SQLite: enroll in one hot section at 8 clients: 0.38× the raw-SQL anchor (goal ≥ 0.4×)"
        );
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}

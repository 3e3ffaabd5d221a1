//! Enrollment throughput through the real server: `enroll` over HTTP into one hot section and
//! spread over 1,000 sections, at several concurrencies, on the database given.
//!
//! Each figure uses fresh sections and the same students, so every request is a successful
//! enrollment that takes a seat (capacity is large, as in the raw-SQL anchor). Prints one
//! Markdown table row per figure. `bench/run.sh enroll` runs it on SQLite and PostgreSQL beside
//! the anchor.

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
}

const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fixture = Fixture::prepare(&args.target, args.students).await?;
    let (tokens, server) = (&fixture.tokens, &fixture.server);

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
            let summary = run_jobs(&server.base, jobs, concurrency).await;
            if let Some(error) = &summary.first_error {
                eprintln!("{} errors; the first: {error}", summary.errors);
            }
            println!(
                "| {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {} |",
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
                summary.errors,
            );
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

//! Enrollment throughput through the real server: `enroll` over HTTP into one hot section and
//! spread over 1,000 sections, at several concurrencies, on the database given.
//!
//! Each figure uses fresh sections and the same students, so every request is a successful
//! enrollment that takes a seat (capacity is large, as in the raw-SQL anchor). Prints one
//! Markdown table row per figure. `bench/run.sh enroll` runs it on SQLite and PostgreSQL beside
//! the anchor.

use std::{path::PathBuf, time::Duration};

use clap::Parser;
use entity::{course, organization, section, types::Role, user};
use migration::{Migrator, MigratorTrait};
use roster::{auth::TokenKeys, config::DbConfig, db::now};
use roster_bench::{Job, Server, millis, run_jobs};
use sea_orm::{DatabaseConnection, EntityTrait, Set};
use serde_json::json;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Database to run on (created and migrated if needed): `sqlite://…` or `postgres://…`.
    #[arg(long)]
    database_url: String,
    /// Label for the table's first column.
    #[arg(long)]
    label: String,
    /// The `roster` binary to serve with.
    #[arg(long, default_value = "target/release/roster")]
    roster: PathBuf,
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

const SECRET: &str = "roster-bench-secret-roster-bench-secret";
const ENROLL: &str = "mutation($s: UUID!) { enroll(sectionId: $s) { id status } }";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = roster::db::connect(&DbConfig {
        database_url: args.database_url.clone(),
        db_max_connections: Some(4),
    })
    .await?;
    Migrator::up(&db, None).await?;
    let keys = TokenKeys::new(SECRET.as_bytes())?;
    let (organization_id, teacher_id) = staff(&db).await?;
    let students = insert_students(&db, organization_id, args.students).await?;
    let tokens: Vec<String> = students
        .iter()
        .map(|id| keys.issue(*id, Duration::from_secs(3600)))
        .collect::<Result<_, _>>()?;
    let server = Server::start(&args.roster, &args.database_url, SECRET).await?;

    for &concurrency in &args.concurrency {
        for spread in [false, true] {
            let sections = insert_sections(
                &db,
                organization_id,
                teacher_id,
                if spread { args.sections } else { 1 },
            )
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
                args.label,
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
            args.label,
            rss / 1024
        );
    }
    Ok(())
}

async fn staff(db: &DatabaseConnection) -> anyhow::Result<(Uuid, Uuid)> {
    let at = now();
    let organization_id = Uuid::now_v7();
    organization::Entity::insert(organization::ActiveModel {
        id: Set(organization_id),
        name: Set(format!("Bench {organization_id}")),
        created_at: Set(at),
    })
    .exec(db)
    .await?;
    let teacher = insert_users(db, organization_id, Role::Teacher, 1).await?;
    Ok((organization_id, teacher[0]))
}

async fn insert_students(
    db: &DatabaseConnection,
    organization_id: Uuid,
    n: usize,
) -> anyhow::Result<Vec<Uuid>> {
    insert_users(db, organization_id, Role::Student, n).await
}

async fn insert_users(
    db: &DatabaseConnection,
    organization_id: Uuid,
    role: Role,
    n: usize,
) -> anyhow::Result<Vec<Uuid>> {
    let at = now();
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
async fn insert_sections(
    db: &DatabaseConnection,
    organization_id: Uuid,
    teacher_id: Uuid,
    n: usize,
) -> anyhow::Result<Vec<Uuid>> {
    let at = now();
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
                waitlist_seq: Set(0),
                is_active: Set(true),
                requires_approval: Set(false),
                waitlist_enabled: Set(true),
                created_at: Set(at),
                updated_at: Set(at),
            }
        }))
        .exec(db)
        .await?;
    }
    Ok(ids)
}

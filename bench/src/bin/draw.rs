//! The lottery's draw on the scale-1 data set (docs/design.md#registration-opening): the
//! seeded enrollments (about 100,000, five per student) become the REQUESTED requests of one
//! LOTTERY term whose window has just ended, with the seats of every section free again; then
//! the draw runs in this process through `roster::service::lottery::draw_due`, as the timer
//! of `roster serve` runs it. Prints the requests, the draw's seconds and requests/s, what it
//! made of them, and the check anyone can make from the revealed seed: the draw's events came
//! in ascending order of HMAC-SHA256(seed, enrollment id).

use std::{collections::BTreeMap, time::Instant};

use anyhow::{Context, ensure};
use chrono::{Duration, Utc};
use clap::Parser;
use entity::{enrollment, enrollment_event, organization, term, types::Admission};
use roster::{
    app::{App, Settings},
    config::DbConfig,
    domain::lottery,
    identity::tokens::TokenKeys,
    service::lottery::{BATCH, draw_due},
};
use roster_bench::{SECRET, Target};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Statement,
    TransactionTrait,
};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Requests per transaction of the draw.
    #[arg(long, default_value_t = BATCH)]
    batch: usize,
    /// On PostgreSQL, print to stderr the draw's N costliest statements (pg_stat_statements,
    /// which the server must preload, as `bench/run.sh` does).
    #[arg(long, default_value_t = 0)]
    statements: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seeded = roster_bench::seed_scale(&args.target, args.scale)?;
    let database = DbConfig {
        database_url: args.target.database_url.clone(),
        db_max_connections: Some(8),
        db_acquire_timeout: None,
    };
    let db = roster::store::db::connect(&database).await?;
    let (term_id, requests) = requests(&db).await?;
    eprintln!(
        "{}: seeded {seeded}; {requests} requests",
        args.target.label
    );
    let app = App::build(Settings::new(database, TokenKeys::new(SECRET.as_bytes())?)).await?;
    // Events of earlier draws on this database are not this draw's.
    let drawn_after: Option<i64> = enrollment_event::Entity::find()
        .select_only()
        .column_as(enrollment_event::Column::Id.max(), "id")
        .into_tuple()
        .one(&db)
        .await?
        .flatten();
    let statements = args.statements > 0 && db.get_database_backend() == DatabaseBackend::Postgres;
    if statements {
        db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await?;
        db.execute_unprepared("SELECT pg_stat_statements_reset()")
            .await?;
    }
    let started = Instant::now();
    let drawn = draw_due(&app.store, args.batch).await?;
    let seconds = started.elapsed().as_secs_f64();
    if statements {
        print_statements(&db, args.statements, seconds).await?;
    }
    ensure!(drawn == requests, "drew {drawn} of {requests} requests");
    let outcomes = outcomes(&db).await?;
    let in_order = in_hmac_order(&db, term_id, drawn_after.unwrap_or(0)).await?;
    println!(
        "| {} | {requests} | {} | {seconds:.2} | {:.0} | {outcomes} | {} | {} |",
        args.target.label,
        args.batch,
        requests as f64 / seconds,
        if in_order { "yes" } else { "**no**" },
        if seconds < 10.0 {
            "meets (< 10 s)"
        } else {
            "**over 10 s**"
        },
    );
    ensure!(in_order, "the draw's order is not the HMAC order");
    Ok(())
}

/// Turns every enrollment of the data set into a request of one new LOTTERY term whose window
/// ended a minute ago, ranked under the term's seed; every section joins the term with its
/// seats free. Returns the term and the number of requests.
async fn requests(db: &DatabaseConnection) -> anyhow::Result<(Uuid, usize)> {
    let organization = organization::Entity::find()
        .order_by_asc(organization::Column::Id)
        .one(db)
        .await?
        .context("the data set's organizations")?;
    let now = Utc::now();
    let (seed, hash) = lottery::new_seed();
    let term = term::Model {
        id: Uuid::now_v7(),
        organization_id: organization.id,
        name: "Lottery".into(),
        code: format!("LOTTERY-{}", now.timestamp()),
        starts_on: now.date_naive() - Duration::days(30),
        ends_on: now.date_naive() + Duration::days(120),
        time_zone: "UTC".into(),
        holidays: Default::default(),
        enrollment_opens_at: Some(now - Duration::minutes(61)),
        enrollment_closes_at: None,
        drop_deadline: None,
        withdraw_deadline: None,
        admission: Admission::Lottery,
        lottery_minutes: Some(60),
        lottery_seed: Some(seed.clone()),
        lottery_seed_hash: Some(hash),
        lottery_drawn_at: None,
        created_at: now,
        updated_at: now,
    };
    let draw_at = now - Duration::minutes(1);
    term.clone().into_active_model().insert(db).await?;
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        "UPDATE sections SET term_id = $1, registered_count = 0, pending_count = 0, \
         waitlist_count = 0, offered_count = 0, finished_count = 0, waitlist_seq = 0, \
         starts_on = NULL, ends_on = NULL, enrollment_opens_at = NULL, \
         enrollment_closes_at = NULL",
        [term.id.into()],
    ))
    .await?;
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        "UPDATE enrollments SET status = 'REQUESTED', waitlist_ticket = NULL, \
         seat_reserved_at = NULL, completed_at = NULL, completed_by = NULL, \
         cancelled_at = NULL, withdrawn_at = NULL, reason = NULL, offer_expires_at = NULL, \
         offer_remind_at = NULL, lottery_draw_at = $1",
        [draw_at.into()],
    ))
    .await?;
    let ids: Vec<Uuid> = enrollment::Entity::find()
        .select_only()
        .column(enrollment::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    if backend == DatabaseBackend::Postgres {
        for chunk in ids.chunks(2000) {
            let mut values = Vec::with_capacity(chunk.len() * 2);
            let mut rows = Vec::with_capacity(chunk.len());
            for (i, id) in chunk.iter().enumerate() {
                rows.push(format!("(CAST(${} AS UUID), ${})", 2 * i + 1, 2 * i + 2));
                values.push((*id).into());
                values.push(lottery::rank(&seed, *id).context("a seed")?.into());
            }
            let sql = format!(
                "UPDATE enrollments SET lottery_rank = v.rank FROM (VALUES {}) AS v(id, rank) \
                 WHERE enrollments.id = v.id",
                rows.join(", ")
            );
            db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
    } else {
        // SQLite names no columns of a VALUES list: one update per row, in one transaction.
        let tx = db.begin().await?;
        for id in &ids {
            tx.execute_raw(Statement::from_sql_and_values(
                backend,
                "UPDATE enrollments SET lottery_rank = $1 WHERE id = $2",
                [
                    lottery::rank(&seed, *id).context("a seed")?.into(),
                    (*id).into(),
                ],
            ))
            .await?;
        }
        tx.commit().await?;
    }
    // Statistics for the planner, as autovacuum (PostgreSQL) or `PRAGMA optimize` (SQLite)
    // would have gathered them during the lottery window: every row above was just rewritten.
    db.execute_unprepared("ANALYZE").await?;
    Ok((term.id, ids.len()))
}

/// Prints to stderr the `n` statements the draw spent the most server time in, and the share
/// of the draw's `seconds` the server spent executing statements at all.
async fn print_statements(db: &DatabaseConnection, n: usize, seconds: f64) -> anyhow::Result<()> {
    let rows: Vec<(i64, f64, String)> =
        <Row as sea_orm::FromQueryResult>::find_by_statement(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT calls, total_exec_time, query FROM pg_stat_statements \
             WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC",
        ))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.calls, r.total_exec_time, r.query))
        .collect();
    let total: f64 = rows.iter().map(|r| r.1).sum();
    eprintln!(
        "server time executing statements: {:.2} s of the draw's {seconds:.2} s",
        total / 1000.0
    );
    for (calls, ms, query) in rows.iter().take(n) {
        let query: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
        let query: String = query.chars().take(160).collect();
        eprintln!("{ms:>10.0} ms {calls:>7} calls  {query}");
    }
    Ok(())
}

#[derive(sea_orm::FromQueryResult)]
struct Row {
    calls: i64,
    total_exec_time: f64,
    query: String,
}

/// What the draw made of the requests: each status and its count.
async fn outcomes(db: &DatabaseConnection) -> anyhow::Result<String> {
    let rows: Vec<(String, i64)> = enrollment::Entity::find()
        .select_only()
        .column(enrollment::Column::Status)
        .column_as(enrollment::Column::Id.count(), "n")
        .group_by(enrollment::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let by: BTreeMap<String, i64> = rows.into_iter().collect();
    Ok(by
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect::<Vec<_>>()
        .join(", "))
}

/// Whether the draw's events (the system's, from REQUESTED) came in ascending HMAC order
/// under the seed the term now shows (the events after `after`, this draw's).
async fn in_hmac_order(db: &DatabaseConnection, term_id: Uuid, after: i64) -> anyhow::Result<bool> {
    let term = term::Entity::find_by_id(term_id)
        .one(db)
        .await?
        .context("the term")?;
    let seed = term
        .lottery_drawn_at
        .and(term.lottery_seed)
        .context("the seed is revealed after the draw")?;
    let drawn: Vec<Uuid> = enrollment_event::Entity::find()
        .select_only()
        .column(enrollment_event::Column::EnrollmentId)
        .filter(enrollment_event::Column::FromStatus.eq("REQUESTED"))
        .filter(enrollment_event::Column::ActorId.is_null())
        .filter(enrollment_event::Column::Id.gt(after))
        .order_by_asc(enrollment_event::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let ranks: Vec<String> = drawn
        .iter()
        .map(|id| lottery::rank(&seed, *id).unwrap_or_default())
        .collect();
    Ok(ranks.windows(2).all(|w| w[0] < w[1]))
}

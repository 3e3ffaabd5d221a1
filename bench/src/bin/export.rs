//! The compliance exports on the scale-1 data set (about 100,000 enrollments): the whole
//! enrollment report as an admin, an organization's as its coordinator, and the certification
//! report, each streamed from a real `roster serve` over loopback. Per figure: rows, seconds,
//! rows/s, megabytes sent, and the server's RSS before and at its peak during the export
//! (sampled every 10 ms), which stays flat if the stream keeps memory constant.
//!
//! Before measuring, half of the REGISTERED enrollments of the courses that certify are
//! completed with their certification (the seed has none), with the sections' counters
//! recomputed from the rows.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use clap::Parser;
use entity::{
    certification, course, enrollment, organization,
    types::{EnrollmentStatus, Role},
};
use futures_util::StreamExt;
use roster_bench::{SECRET, Server, Target, data};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seeded = roster_bench::seed_scale(&args.target, args.scale)?;
    let db = roster::store::db::connect(&roster::config::DbConfig {
        database_url: args.target.database_url.clone(),
        db_max_connections: Some(2),
        db_acquire_timeout: None,
    })
    .await?;
    let certified = certify(&db).await?;
    let organization = organization::Entity::find()
        .filter(organization::Column::Name.eq("Scale Organization 0"))
        .one(&db)
        .await?
        .context("the scale data set's first organization")?;
    let admin = data::insert_users(&db, organization.id, Role::Admin, 1).await?[0];
    let coordinator = data::insert_users(&db, organization.id, Role::Coordinator, 1).await?[0];
    let keys = roster::identity::tokens::TokenKeys::new(SECRET.as_bytes())?;
    let token = |id| keys.issue(id, Duration::from_secs(3600));
    let (admin, coordinator) = (token(admin)?, token(coordinator)?);

    let server = Server::start(&args.target.roster, &args.target.database_url, SECRET).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!(
        "{}: seeded {seeded}; {certified} certifications",
        args.target.label
    );
    let runs = [
        ("admin", "enrollments", "", &admin),
        ("coordinator", "enrollments", "", &coordinator),
        ("admin", "enrollments", "?status=REGISTERED", &admin),
        ("admin", "certifications", "", &admin),
        ("coordinator", "certifications", "", &coordinator),
    ];
    for (who, file, query, token) in runs {
        let figure = export(&server, file, query, token).await?;
        println!(
            "| {} | {who} | {file}.csv{query} | {} | {:.2} | {:.0} | {:.1} | {:.0} | {:.0} |",
            args.target.label,
            figure.rows,
            figure.seconds,
            figure.rows as f64 / figure.seconds,
            figure.bytes as f64 / 1e6,
            figure.idle_kb as f64 / 1024.0,
            figure.peak_kb as f64 / 1024.0,
        );
    }
    Ok(())
}

struct Figure {
    rows: u64,
    seconds: f64,
    bytes: u64,
    idle_kb: u64,
    peak_kb: u64,
}

/// Downloads one export, counting its records with a CSV reader as it arrives.
async fn export(server: &Server, file: &str, query: &str, token: &str) -> anyhow::Result<Figure> {
    let pid = server.pid();
    let idle_kb = roster_bench::rss_kb(pid).unwrap_or(0);
    let peak = Arc::new(AtomicU64::new(idle_kb));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Some(kb) = roster_bench::rss_kb(pid) {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(format!("{}/export/{file}.csv{query}", server.base))
        .bearer_auth(token)
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "{file}: {}",
        response.status()
    );
    let mut body = response.bytes_stream();
    let mut reader = csv_core::Reader::new();
    let mut field = [0u8; 4096];
    let mut ends = [0usize; 64];
    let (mut records, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        let mut input = &chunk[..];
        loop {
            let (result, read, _, _) = reader.read_record(input, &mut field, &mut ends);
            input = &input[read..];
            match result {
                csv_core::ReadRecordResult::Record => records += 1,
                csv_core::ReadRecordResult::InputEmpty => break,
                csv_core::ReadRecordResult::End => break,
                csv_core::ReadRecordResult::OutputFull
                | csv_core::ReadRecordResult::OutputEndsFull => {
                    anyhow::bail!("a record longer than the benchmark's buffer")
                }
            }
        }
    }
    if let (csv_core::ReadRecordResult::Record, _, _, _) =
        reader.read_record(&[], &mut field, &mut ends)
    {
        records += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    Ok(Figure {
        rows: records.saturating_sub(1),
        seconds,
        bytes,
        idle_kb,
        peak_kb: peak.load(Ordering::Relaxed),
    })
}

/// Completes every other REGISTERED enrollment of the courses that certify, with its
/// certification, unless certifications exist already; the number of certifications.
async fn certify(db: &DatabaseConnection) -> anyhow::Result<u64> {
    let existing = certification::Entity::find().count(db).await?;
    if existing > 0 {
        return Ok(existing);
    }
    let certifying = course::Entity::find()
        .filter(course::Column::CertificateValidityMonths.is_not_null())
        .select_only()
        .column(course::Column::Id)
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    let at = roster::store::clock::Clock::default().now();
    let mut total = 0;
    for courses in certifying.chunks(200) {
        let rows: Vec<(Uuid, Uuid, Uuid)> = enrollment::Entity::find()
            .filter(enrollment::Column::CourseId.is_in(courses.iter().copied()))
            .filter(enrollment::Column::Status.eq(EnrollmentStatus::Registered))
            .order_by_asc(enrollment::Column::Id)
            .select_only()
            .column(enrollment::Column::Id)
            .column(enrollment::Column::UserId)
            .column(enrollment::Column::CourseId)
            .into_tuple()
            .all(db)
            .await?;
        let chosen: Vec<_> = rows.into_iter().step_by(2).collect();
        for batch in chosen.chunks(500) {
            enrollment::Entity::update_many()
                .col_expr(
                    enrollment::Column::Status,
                    sea_orm::sea_query::Expr::value(EnrollmentStatus::Completed),
                )
                .col_expr(
                    enrollment::Column::CompletedAt,
                    sea_orm::sea_query::Expr::value(at),
                )
                .filter(enrollment::Column::Id.is_in(batch.iter().map(|r| r.0)))
                .exec(db)
                .await?;
            certification::Entity::insert_many(batch.iter().map(|&(id, user, course)| {
                certification::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    user_id: Set(user),
                    course_id: Set(course),
                    enrollment_id: Set(id),
                    issued_at: Set(at),
                    expires_at: Set(Some(at + chrono::Duration::days(365))),
                    expiry_notified_at: Set(None),
                }
            }))
            .exec(db)
            .await?;
            total += batch.len() as u64;
        }
    }
    db.execute_unprepared(
        "UPDATE sections SET \
         registered_count = (SELECT COUNT(*) FROM enrollments e \
            WHERE e.section_id = sections.id AND e.status = 'REGISTERED'), \
         finished_count = (SELECT COUNT(*) FROM enrollments e \
            WHERE e.section_id = sections.id AND e.status IN ('COMPLETED', 'FAILED'))",
    )
    .await?;
    Ok(total)
}

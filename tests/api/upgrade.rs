//! Rolling upgrades (docs/migrations.md): while `roster migrate` of a new release runs and its
//! replicas start, the previous release's replicas go on serving on the new schema. So the
//! statements that release issues must keep working on every later schema: the inserts it
//! makes (with the columns it knows) and the columns it reads.
//!
//! [`PREVIOUS_RELEASE`] is that release's reads and writes, frozen: the columns of every table
//! as its entities read them, the columns its writes fill. A migration that drops or renames
//! a column or table the list names, or adds a NOT NULL column without a default, fails this
//! test: such a change is the contract step, a release after the one that stopped using it.
//! When a release ships, this list becomes that release's (docs/migrations.md, "Releasing").

use std::collections::HashMap;

use crate::helpers::{TestApp, both_backends, now};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value};
use serde_json::json;
use uuid::Uuid;

/// A table as the previous release used it: the key it reads rows by, the columns it reads,
/// and the columns one of its inserts fills.
struct Table {
    name: &'static str,
    /// The column the row is read back by, and the name of its value in [`sample_values`];
    /// that value is also the row's `id`, where it has one.
    key: (&'static str, &'static str),
    reads: &'static str,
    writes: &'static [&'static str],
}

/// Roster 0.1.0's tables, in an order whose inserts satisfy the foreign keys.
const PREVIOUS_RELEASE: &[Table] = &[
    Table {
        name: "organizations",
        key: ("id", "organization"),
        reads: "id, name, created_at",
        writes: &["id", "name", "created_at"],
    },
    Table {
        name: "users",
        key: ("id", "user"),
        reads: "id, email, name, picture, role, organization_id, created_at, updated_at",
        writes: &[
            "id",
            "email",
            "name",
            "picture",
            "role",
            "organization_id",
            "created_at",
            "updated_at",
        ],
    },
    Table {
        name: "courses",
        key: ("id", "course"),
        reads: "id, organization_id, teacher_id, name, description, code, is_active, \
                certificate_validity_months, created_at, updated_at",
        writes: &[
            "id",
            "organization_id",
            "teacher_id",
            "name",
            "description",
            "code",
            "is_active",
            "certificate_validity_months",
            "created_at",
            "updated_at",
        ],
    },
    Table {
        name: "course_prerequisites",
        key: ("course_id", "course"),
        reads: "course_id, prerequisite_id",
        writes: &["course_id", "prerequisite_id"],
    },
    Table {
        name: "sections",
        key: ("id", "section"),
        reads: "id, course_id, name, schedule, weekdays, capacity, registered_count, \
                pending_count, waitlist_count, waitlist_seq, is_active, requires_approval, \
                waitlist_enabled, created_at, updated_at, finished_count, assistant_id, \
                promotion_mode, offer_hours, offered_count",
        writes: &[
            "id",
            "course_id",
            "name",
            "schedule",
            "weekdays",
            "capacity",
            "requires_approval",
            "waitlist_enabled",
            "promotion_mode",
            "offer_hours",
            "created_at",
            "updated_at",
        ],
    },
    Table {
        name: "enrollments",
        key: ("id", "enrollment"),
        reads: "id, user_id, course_id, section_id, status, visibility, enrolled_at, \
                enrolled_by, prerequisite_check_passed, prerequisite_check_at, seat_reserved_at, \
                waitlist_ticket, completed_at, completed_by, completion_evidence, cancelled_at, \
                withdrawn_at, reason, notes, created_at, updated_at, skip_reason, skipped_at, \
                notes_updated_at, notes_updated_by, offer_expires_at, offer_remind_at",
        writes: &[
            "id",
            "user_id",
            "course_id",
            "section_id",
            "status",
            "visibility",
            "enrolled_at",
            "enrolled_by",
            "prerequisite_check_passed",
            "prerequisite_check_at",
            "seat_reserved_at",
            "created_at",
            "updated_at",
        ],
    },
    Table {
        name: "enrollment_events",
        key: ("enrollment_id", "enrollment"),
        reads: "id, enrollment_id, from_status, to_status, actor_id, reason, details, at",
        writes: &[
            "enrollment_id",
            "from_status",
            "to_status",
            "actor_id",
            "reason",
            "details",
            "at",
        ],
    },
    Table {
        name: "certifications",
        key: ("id", "certification"),
        reads: "id, user_id, course_id, enrollment_id, issued_at, expires_at, expiry_notified_at",
        writes: &[
            "id",
            "user_id",
            "course_id",
            "enrollment_id",
            "issued_at",
            "expires_at",
        ],
    },
    Table {
        name: "teams",
        key: ("id", "team"),
        reads: "id, name, pass_key_hash, coach_id, created_at, updated_at",
        writes: &[
            "id",
            "name",
            "pass_key_hash",
            "coach_id",
            "created_at",
            "updated_at",
        ],
    },
    Table {
        name: "team_members",
        key: ("team_id", "team"),
        reads: "team_id, user_id, joined_at",
        writes: &["team_id", "user_id", "joined_at"],
    },
    Table {
        name: "team_join_failures",
        key: ("team_id", "team"),
        reads: "id, team_id, user_id, failed_at",
        writes: &["team_id", "user_id", "failed_at"],
    },
    Table {
        name: "notifications",
        key: ("id", "notification"),
        reads: "id, user_id, kind, title, body, enrollment_id, created_at, read_at",
        writes: &[
            "id",
            "user_id",
            "kind",
            "title",
            "body",
            "enrollment_id",
            "created_at",
        ],
    },
    Table {
        name: "notification_deliveries",
        key: ("id", "delivery"),
        reads: "id, notification_id, channel, attempts, next_attempt_at, delivered_at, \
                failed_at, last_error, created_at",
        writes: &[
            "id",
            "notification_id",
            "channel",
            "next_attempt_at",
            "created_at",
        ],
    },
    Table {
        name: "push_subscriptions",
        key: ("id", "push"),
        reads: "id, user_id, endpoint, p256dh, auth, created_at",
        writes: &["id", "user_id", "endpoint", "p256dh", "auth", "created_at"],
    },
    Table {
        name: "user_identities",
        key: ("user_id", "user"),
        reads: "issuer, subject, user_id, created_at",
        writes: &["issuer", "subject", "user_id", "created_at"],
    },
    Table {
        name: "changes",
        key: ("notice", "notice"),
        reads: "id, notice",
        writes: &["notice"],
    },
];

/// The conditional writes the previous release's use cases make, beside its inserts.
const PREVIOUS_RELEASE_UPDATES: &[(&str, &[&str])] = &[
    (
        "UPDATE sections SET registered_count = registered_count + 1, updated_at = ? \
         WHERE id = ? AND (capacity IS NULL OR registered_count < capacity)",
        &["updated_at", "section"],
    ),
    (
        "UPDATE enrollments SET status = ?, withdrawn_at = ?, updated_at = ? WHERE id = ?",
        &["withdrawn", "updated_at", "updated_at", "enrollment"],
    ),
    (
        "UPDATE notification_deliveries SET attempts = attempts + 1, delivered_at = ? \
         WHERE id = ? AND delivered_at IS NULL",
        &["updated_at", "delivery"],
    ),
];

/// One value for each column name the statements use, consistent across the tables.
fn sample_values() -> HashMap<&'static str, Value> {
    let at = now();
    let ids: HashMap<&str, Uuid> = [
        "organization",
        "user",
        "course",
        "prerequisite",
        "section",
        "enrollment",
        "certification",
        "team",
        "notification",
        "delivery",
        "push",
    ]
    .into_iter()
    .map(|name| (name, Uuid::now_v7()))
    .collect();
    let id = |name: &str| Value::from(ids[name]);
    let text = |s: &str| Value::from(s.to_owned());
    HashMap::from([
        ("organization", id("organization")),
        ("user", id("user")),
        ("course", id("course")),
        ("prerequisite", id("prerequisite")),
        ("section", id("section")),
        ("enrollment", id("enrollment")),
        ("certification", id("certification")),
        ("team", id("team")),
        ("notification", id("notification")),
        ("delivery", id("delivery")),
        ("push", id("push")),
        ("organization_id", id("organization")),
        ("user_id", id("user")),
        ("teacher_id", id("user")),
        ("coach_id", id("user")),
        ("actor_id", id("user")),
        ("enrolled_by", id("user")),
        ("course_id", id("course")),
        ("prerequisite_id", id("prerequisite")),
        ("section_id", id("section")),
        ("enrollment_id", id("enrollment")),
        ("team_id", id("team")),
        ("notification_id", id("notification")),
        ("name", text("Upgrade")),
        ("email", text(&format!("{}@upgrade.test", ids["user"]))),
        ("picture", text("https://img.test/p.png")),
        ("role", text("TEACHER")),
        ("description", text("Kept through upgrades")),
        ("code", text("UP-1")),
        ("is_active", Value::from(true)),
        ("certificate_validity_months", Value::from(12)),
        ("schedule", Value::from(json!([]))),
        ("weekdays", Value::from(0)),
        ("capacity", Value::from(10)),
        ("requires_approval", Value::from(false)),
        ("waitlist_enabled", Value::from(true)),
        ("promotion_mode", text("AUTOMATIC")),
        ("offer_hours", Value::from(24)),
        ("status", text("REGISTERED")),
        ("withdrawn", text("WITHDRAWN")),
        ("visibility", Value::from(true)),
        ("prerequisite_check_passed", Value::from(true)),
        ("from_status", text("PENDING")),
        ("to_status", text("REGISTERED")),
        ("reason", text("upgrade")),
        ("details", Value::from(json!({ "by": "upgrade" }))),
        ("pass_key_hash", text("$argon2id$placeholder")),
        ("kind", text("ENROLLED")),
        ("title", text("Enrolled")),
        ("body", text("You are enrolled")),
        ("channel", text("EMAIL")),
        (
            "endpoint",
            text(&format!("https://push.test/{}", ids["push"])),
        ),
        ("p256dh", text("key")),
        ("auth", text("auth")),
        ("issuer", text("https://sso.test")),
        ("subject", text("subject-1")),
        ("notice", text(&format!("upgrade-{}", ids["push"]))),
        ("expires_at", Value::from(at + chrono::Duration::days(365))),
        ("next_attempt_at", Value::from(at)),
        ("created_at", Value::from(at)),
        ("updated_at", Value::from(at)),
        ("enrolled_at", Value::from(at)),
        ("prerequisite_check_at", Value::from(at)),
        ("seat_reserved_at", Value::from(at)),
        ("issued_at", Value::from(at)),
        ("joined_at", Value::from(at)),
        ("failed_at", Value::from(at)),
        ("at", Value::from(at)),
    ])
}

/// `sql` with its `?` marks numbered as PostgreSQL wants them.
fn for_backend(backend: DatabaseBackend, sql: &str) -> String {
    if backend != DatabaseBackend::Postgres {
        return sql.to_owned();
    }
    let mut n = 0;
    sql.chars()
        .map(|c| match c {
            '?' => {
                n += 1;
                format!("${n}")
            }
            c => c.to_string(),
        })
        .collect()
}

async fn previous_release_statements_work_on_this_schema(app: TestApp) {
    let db = &app.db;
    let backend = db.get_database_backend();
    let values = sample_values();
    let run = |sql: &str, params: Vec<Value>| {
        Statement::from_sql_and_values(backend, for_backend(backend, sql), params)
    };
    for table in PREVIOUS_RELEASE {
        let marks = vec!["?"; table.writes.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({marks})",
            table.name,
            table.writes.join(", ")
        );
        let row = |id: &str| {
            table
                .writes
                .iter()
                .map(|column| match *column {
                    "id" => values[id].clone(),
                    column => values[column].clone(),
                })
                .collect::<Vec<_>>()
        };
        // A second course first: the prerequisite of the first.
        let rows = match table.name {
            "courses" => vec![row("prerequisite"), row(table.key.1)],
            _ => vec![row(table.key.1)],
        };
        for params in rows {
            let statement = run(&sql, params);
            db.execute_raw(statement.clone()).await.unwrap_or_else(|e| {
                panic!(
                    "[{:?}] the previous release's insert fails: {statement}: {e}",
                    app.backend
                )
            });
        }
    }
    for (sql, names) in PREVIOUS_RELEASE_UPDATES {
        let statement = run(sql, names.iter().map(|c| values[c].clone()).collect());
        let done = db.execute_raw(statement.clone()).await.unwrap_or_else(|e| {
            panic!(
                "[{:?}] the previous release's update fails: {statement}: {e}",
                app.backend
            )
        });
        assert_eq!(done.rows_affected(), 1, "{statement}");
    }
    for table in PREVIOUS_RELEASE {
        let (column, value) = table.key;
        let sql = format!(
            "SELECT {} FROM {} WHERE {column} = ?",
            table.reads, table.name
        );
        let statement = run(&sql, vec![values[value].clone()]);
        let rows = db
            .query_all_raw(statement.clone())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "[{:?}] the previous release's read fails: {statement}: {e}",
                    app.backend
                )
            });
        assert_eq!(rows.len(), 1, "[{:?}] {statement}", app.backend);
    }
}

/// A replica of the previous release that restarts after the new release migrated the
/// database serves on it: migrations it does not know are reported, not refused.
async fn a_database_migrated_by_a_newer_release_is_served(app: TestApp) {
    let db = &app.db;
    let backend = db.get_database_backend();
    let record = |version: &str| {
        Statement::from_sql_and_values(
            backend,
            for_backend(
                backend,
                "INSERT INTO seaql_migrations (version, applied_at) VALUES (?, ?)",
            ),
            [Value::from(version.to_owned()), Value::from(0i64)],
        )
    };
    db.execute_raw(record("m29991231_000001_from_a_newer_release"))
        .await
        .unwrap();
    let applied = roster::store::db::migrate(db)
        .await
        .expect("served as it is");
    assert_eq!(applied, 0);
    let data = app.ok(None, "{ courses { totalCount } }", json!({})).await;
    assert_eq!(data["courses"]["totalCount"], 0);

    // But not a database that both lacks this release's migrations and has unknown ones.
    let latest = Migrator::migrations().last().unwrap().name().to_owned();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        for_backend(backend, "DELETE FROM seaql_migrations WHERE version = ?"),
        [Value::from(latest)],
    ))
    .await
    .unwrap();
    let refused = roster::store::db::migrate(db).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("another line of releases")),
        "{refused:?}"
    );
}

both_backends!(
    previous_release_statements_work_on_this_schema,
    a_database_migrated_by_a_newer_release_is_served
);

//! Prometheus metrics at `/metrics`, through the `metrics` facade.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `roster_graphql_requests_total` | counter | `operation`, `outcome` (`ok`, `error`) |
//! | `roster_graphql_request_duration_seconds` | histogram | `operation` |
//! | `roster_enrollment_transitions_total` | counter | `from`, `to` (committed ones only) |
//! | `roster_db_pool_connections` | gauge | `state` (`in_use`, `idle`) |
//! | `roster_subscriptions_active` | gauge | |
//! | `roster_websocket_refused_total` | counter | `limit` (`connections`) |
//!
//! `operation` is the GraphQL operation name (`anonymous` when it has none), cut to 64 letters,
//! digits and underscores, since clients choose it; and since anyone may choose it, only the
//! first [`OPERATION_LABELS`] names this process meets get a label of their own, every later
//! one `other`, so the scrape and the recorder's memory stay bounded whatever clients send.

use std::sync::OnceLock;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{DatabaseBackend, DatabaseConnection};

/// The process-wide recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            )
            .and_then(PrometheusBuilder::install_recorder)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "metrics recorder not installed");
                PrometheusBuilder::new().build_recorder().handle()
            });
        describe_counter!(
            "roster_graphql_requests_total",
            "GraphQL operations executed, by operation name and outcome"
        );
        describe_histogram!(
            "roster_graphql_request_duration_seconds",
            "Time to execute a GraphQL operation"
        );
        describe_counter!(
            "roster_enrollment_transitions_total",
            "Committed enrollment status changes, by from and to status"
        );
        describe_gauge!(
            "roster_db_pool_connections",
            "Database pool connections, in use and idle"
        );
        describe_gauge!(
            "roster_subscriptions_active",
            "Live GraphQL subscriptions on this replica"
        );
        describe_counter!(
            "roster_websocket_refused_total",
            "WebSocket upgrades refused with 429 because the client held the most connections allowed"
        );
        describe_counter!(
            "roster_writes_shed_total",
            "Writes refused with UNAVAILABLE before touching the database because too many were under way or waiting, by reason"
        );
        describe_counter!(
            "roster_response_cache_total",
            "Anonymous queries looked up in the response cache, by outcome (hit, miss, stale, unavailable)"
        );
        describe_counter!(
            "roster_notification_deliveries_total",
            "Notification delivery attempts, by channel and outcome"
        );
        describe_histogram!(
            "roster_notification_delivery_latency_seconds",
            "Time from a notification's creation to its delivery, by channel"
        );
        describe_gauge!(
            "roster_outbox_depth",
            "Notification deliveries neither delivered nor given up"
        );
        handle
    })
}

/// How many distinct operation names get a label of their own.
pub const OPERATION_LABELS: usize = 200;

/// The operation label for `name`.
pub fn operation_label(name: Option<&str>) -> String {
    static SEEN: OnceLock<Labels> = OnceLock::new();
    SEEN.get_or_init(|| Labels::new(OPERATION_LABELS))
        .label(name)
}

/// A bounded set of labels: the first `cap` distinct names keep theirs.
struct Labels {
    cap: usize,
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Labels {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: std::sync::Mutex::default(),
        }
    }

    fn label(&self, name: Option<&str>) -> String {
        let cleaned: String = name
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        if cleaned.is_empty() {
            return "anonymous".into();
        }
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(&cleaned) {
            return cleaned;
        }
        if seen.len() < self.cap {
            seen.insert(cleaned.clone());
            return cleaned;
        }
        "other".into()
    }
}

pub fn record_operation(operation: &str, ok: bool, seconds: f64) {
    let outcome = if ok { "ok" } else { "error" };
    counter!("roster_graphql_requests_total", "operation" => operation.to_owned(), "outcome" => outcome)
        .increment(1);
    histogram!("roster_graphql_request_duration_seconds", "operation" => operation.to_owned())
        .record(seconds);
}

/// A WebSocket upgrade refused because its client held too many connections.
pub fn record_refused_connection() {
    counter!("roster_websocket_refused_total", "limit" => "connections").increment(1);
}

/// A write refused at admission (`queue_full` or `waited_too_long`).
pub fn write_shed(reason: &'static str) {
    counter!("roster_writes_shed_total", "reason" => reason).increment(1);
}

pub fn record_transition(from: Option<&str>, to: &str) {
    counter!("roster_enrollment_transitions_total",
        "from" => from.unwrap_or("NEW").to_owned(), "to" => to.to_owned())
    .increment(1);
}

/// The exposition text, with the gauges read now.
pub fn render(db: &DatabaseConnection, active_subscriptions: i64) -> String {
    let handle = handle();
    let (size, idle) = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DatabaseBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    gauge!("roster_db_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    gauge!("roster_db_pool_connections", "state" => "idle").set(f64::from(idle));
    gauge!("roster_subscriptions_active").set(active_subscriptions as f64);
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::Labels;

    #[test]
    fn operation_labels_are_bounded() {
        let labels = Labels::new(3);
        assert_eq!(labels.label(None), "anonymous");
        assert_eq!(labels.label(Some("Courses")), "Courses");
        assert_eq!(labels.label(Some("Me!")), "Me");
        assert_eq!(labels.label(Some("Third")), "Third");
        for n in 0..20_000 {
            assert_eq!(labels.label(Some(&format!("Junk{n}"))), "other");
        }
        assert_eq!(
            labels.label(Some("Courses")),
            "Courses",
            "a known name keeps its label"
        );
        assert_eq!(labels.seen.lock().unwrap().len(), 3);
    }
}

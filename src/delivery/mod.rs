//! Delivery beyond the inbox (docs/design.md#notifications): the outbox worker.
//!
//! A notification's outbox rows are written in the transaction of the change that caused it
//! ([`crate::service::notifications::notify`]). A worker in every `roster serve` drains them:
//!
//! - **Claiming**: in one short write, the due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
//!   two replicas never take the same row; SQLite has one writer) get a lease: their next
//!   attempt moves to the end of the lease and their attempt count goes up. A worker that dies
//!   mid-attempt (a crash, `SIGKILL`) leaves the row due again when the lease ends: delivery is
//!   at least once, and nothing is lost.
//! - **Delivering**: outside any transaction, so a slow receiver never holds a lock or delays a
//!   mutation. The notification's id is the idempotency key (the webhook's `webhook-id` and the
//!   e-mail's `Message-ID`, the same on every retry).
//! - **Recording**: delivered, or the next attempt after an exponential backoff (capped), or,
//!   after the last attempt, given up with the error kept on the row.
//!
//! The worker wakes when a local write queued deliveries, and polls every second for rows that
//! other replicas queued and retries that fell due.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{notification, notification_delivery, user};
use futures_util::StreamExt;
use sea_orm::{
    ColumnTrait, DatabaseBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType},
};
use uuid::Uuid;

pub mod email;
pub mod push;
pub mod webhook;

pub use self::{email::EmailConfig, push::PushConfig, webhook::WebhookConfig};
use crate::{
    domain::notification::{Channels, EMAIL, PUSH, PushRules, WEBHOOK},
    error::ApiError,
    store::Store,
};

/// Where and how notifications are delivered.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    pub webhook: Option<WebhookConfig>,
    pub email: Option<EmailConfig>,
    pub push: Option<PushConfig>,
    /// The first retry's delay; each later one doubles it, up to [`RETRY_MAX`].
    pub retry_base: Duration,
    /// Attempts before a delivery is given up.
    pub max_attempts: i32,
    /// How long a claimed row is the claiming worker's before it is due again.
    pub lease: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            webhook: None,
            email: None,
            push: None,
            retry_base: Duration::from_secs(2),
            max_attempts: 10,
            lease: Duration::from_secs(60),
        }
    }
}

impl DeliveryConfig {
    /// What the API needs of the Web Push key, when push is on.
    pub fn push_rules(&self) -> Option<PushRules> {
        self.push.as_ref().map(PushConfig::rules)
    }

    pub fn channels(&self) -> Channels {
        Channels {
            webhook: self.webhook.is_some(),
            email: self.email.is_some(),
            push: self.push.is_some(),
        }
    }
}

/// The longest pause between two attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(600);

/// Rows claimed at a time.
const BATCH: u64 = 64;

/// Deliveries in flight at once: each is mostly a wait on the network.
const IN_FLIGHT: usize = 16;

/// The outbox rows still to deliver: neither delivered nor given up.
fn undelivered() -> sea_orm::Select<notification_delivery::Entity> {
    notification_delivery::Entity::find()
        .filter(notification_delivery::Column::DeliveredAt.is_null())
        .filter(notification_delivery::Column::FailedAt.is_null())
}

/// Of [`undelivered`], those of `channels` due by `now`.
fn due(channels: &[&str], now: DateTime<Utc>) -> sea_orm::Select<notification_delivery::Entity> {
    undelivered()
        .filter(notification_delivery::Column::NextAttemptAt.lte(now))
        .filter(notification_delivery::Column::Channel.is_in(channels.iter().copied()))
}

/// The delivery worker, a [`crate::jobs::Job`]: each round claims a batch of due outbox rows,
/// delivers them side by side and records their outcomes in one write (a busy outbox costs two
/// writes per batch, not one per row). Woken by a commit that queued deliveries.
pub struct Worker {
    store: Store,
    config: DeliveryConfig,
    /// Webhooks go out on it: the operator's URL, never redirected.
    client: reqwest::Client,
    /// Pushes go out on it (see [`PushConfig::client`]).
    push_client: reqwest::Client,
}

impl Worker {
    pub fn new(store: Store, config: DeliveryConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let push_client = config
            .push
            .as_ref()
            .map_or_else(reqwest::Client::new, PushConfig::client);
        Self {
            store,
            config,
            client,
            push_client,
        }
    }
}

#[async_trait::async_trait]
impl crate::jobs::Job for Worker {
    fn name(&self) -> &'static str {
        "delivery"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn wake(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(self.store.outbox().clone())
    }

    async fn run_once(&mut self) -> anyhow::Result<crate::jobs::Round> {
        let (store, config) = (&self.store, &self.config);
        let clients = (&self.client, &self.push_client);
        let claimed = claim(store, config).await?;
        let full = claimed.len() as u64 >= BATCH;
        let worked = !claimed.is_empty();
        let outcomes: Vec<Outcome> = futures_util::stream::iter(claimed)
            .map(|(delivery, notification, recipient)| async move {
                let outcome = deliver(
                    store,
                    clients,
                    config,
                    &delivery,
                    &notification,
                    recipient.as_ref(),
                )
                .await;
                (delivery, notification, outcome)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let handled = outcomes.len();
        record(store, config, &outcomes).await?;
        if worked {
            // Once per round of work, not per delivery.
            match undelivered().count(store.db()).await {
                #[allow(clippy::cast_precision_loss)]
                Ok(depth) => metrics::gauge!("roster_outbox_depth").set(depth as f64),
                Err(err) => tracing::warn!(error = %err, "cannot count the outbox"),
            }
        }
        Ok(crate::jobs::Round {
            handled,
            more: full,
        })
    }
}

/// One attempt's row, notification and result.
type Outcome = (
    notification_delivery::Model,
    notification::Model,
    Result<(), String>,
);

/// A leased outbox row, its notification and its recipient.
type Claimed = (
    notification_delivery::Model,
    notification::Model,
    Option<user::Model>,
);

/// Leases the due rows of this replica's channels, with their notifications.
async fn claim(store: &Store, config: &DeliveryConfig) -> Result<Vec<Claimed>, ApiError> {
    let channels: Vec<&str> = config.channels().names().collect();
    // A read first: an idle worker never takes the write lock.
    if due(&channels, store.now()).one(store.db()).await?.is_none() {
        return Ok(Vec::new());
    }
    let lease = chrono::Duration::from_std(config.lease).unwrap_or(chrono::Duration::MAX);
    let (channels, postgres) = (
        &channels,
        store.db().get_database_backend() == DatabaseBackend::Postgres,
    );
    store
        .write(|tx| {
            Box::pin(async move {
                let now = tx.now();
                let mut due = due(channels, now)
                    .order_by_asc(notification_delivery::Column::NextAttemptAt)
                    .limit(BATCH);
                if postgres {
                    due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
                }
                let rows = due.all(tx).await?;
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
                notification_delivery::Entity::update_many()
                    .col_expr(
                        notification_delivery::Column::NextAttemptAt,
                        Expr::value(now + lease),
                    )
                    .col_expr(
                        notification_delivery::Column::Attempts,
                        Expr::col(notification_delivery::Column::Attempts).add(1),
                    )
                    .filter(notification_delivery::Column::Id.is_in(ids))
                    .exec(tx)
                    .await?;
                let notifications = notification::Entity::find()
                    .filter(notification::Column::Id.is_in(rows.iter().map(|r| r.notification_id)))
                    .all(tx)
                    .await?;
                let users = user::Entity::find()
                    .filter(user::Column::Id.is_in(notifications.iter().map(|n| n.user_id)))
                    .all(tx)
                    .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|mut row| {
                        row.attempts += 1;
                        let n = notifications.iter().find(|n| n.id == row.notification_id)?;
                        let recipient = users.iter().find(|u| u.id == n.user_id).cloned();
                        Some((row, n.clone(), recipient))
                    })
                    .collect())
            })
        })
        .await
}

/// One attempt on one channel.
async fn deliver(
    store: &Store,
    (client, push_client): (&reqwest::Client, &reqwest::Client),
    config: &DeliveryConfig,
    delivery: &notification_delivery::Model,
    notification: &notification::Model,
    recipient: Option<&user::Model>,
) -> Result<(), String> {
    match delivery.channel.as_str() {
        WEBHOOK => {
            let Some(webhook) = &config.webhook else {
                return Err("no webhook is configured".into());
            };
            webhook::post_webhook(client, webhook, notification).await
        }
        EMAIL => {
            let Some(email) = &config.email else {
                return Err("no SMTP relay is configured".into());
            };
            email::send_email(email, recipient, notification).await
        }
        PUSH => {
            let Some(push) = &config.push else {
                return Err("no VAPID key is configured".into());
            };
            push::send_push(store, push_client, push, notification).await
        }
        other => Err(format!("unknown channel {other}")),
    }
}

/// The pause before attempt `attempts + 1`: `base · 2^(attempts − 1)`, at most [`RETRY_MAX`].
pub fn backoff(base: Duration, attempts: i32) -> Duration {
    let doublings = Ord::min(u32::try_from(attempts.saturating_sub(1)).unwrap_or(0), 20);
    base.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// Records a batch's outcomes in one write: delivered, a retry after [`backoff`], or given up
/// after `max_attempts`.
async fn record(
    store: &Store,
    config: &DeliveryConfig,
    outcomes: &[Outcome],
) -> Result<(), ApiError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    for (delivery, _, outcome) in outcomes {
        let label = match outcome {
            Ok(()) => "delivered",
            Err(_) if delivery.attempts >= config.max_attempts => "given_up",
            Err(_) => "retry",
        };
        metrics::counter!("roster_notification_deliveries_total",
            "channel" => delivery.channel.clone(), "outcome" => label)
        .increment(1);
    }
    store
        .write(|tx| {
            Box::pin(async move {
                let now = tx.now();
                let delivered: Vec<Uuid> = outcomes
                    .iter()
                    .filter(|(_, _, outcome)| outcome.is_ok())
                    .map(|(delivery, _, _)| delivery.id)
                    .collect();
                if !delivered.is_empty() {
                    notification_delivery::Entity::update_many()
                        .col_expr(notification_delivery::Column::DeliveredAt, Expr::value(now))
                        .col_expr(
                            notification_delivery::Column::LastError,
                            Expr::value(Option::<String>::None),
                        )
                        .filter(notification_delivery::Column::Id.is_in(delivered))
                        .exec(tx)
                        .await?;
                }
                for (delivery, notification, outcome) in outcomes {
                    let update = notification_delivery::Entity::update_many()
                        .filter(notification_delivery::Column::Id.eq(delivery.id));
                    let update = match outcome {
                        Ok(()) => {
                            #[allow(clippy::cast_precision_loss)] // milliseconds of a delivery
                            let latency =
                                (now - notification.created_at).num_milliseconds() as f64 / 1000.0;
                            metrics::histogram!("roster_notification_delivery_latency_seconds",
                                "channel" => delivery.channel.clone())
                            .record(latency.max(0.0));
                            continue;
                        }
                        Err(error) if delivery.attempts >= config.max_attempts => {
                            tracing::warn!(delivery = %delivery.id, %error, "delivery given up");
                            update
                                .col_expr(notification_delivery::Column::FailedAt, Expr::value(now))
                                .col_expr(
                                    notification_delivery::Column::LastError,
                                    Expr::value(error.clone()),
                                )
                        }
                        Err(error) => {
                            let pause = chrono::Duration::from_std(backoff(
                                config.retry_base,
                                delivery.attempts,
                            ))
                            .unwrap_or(chrono::Duration::MAX);
                            update
                                .col_expr(
                                    notification_delivery::Column::NextAttemptAt,
                                    Expr::value(now + pause),
                                )
                                .col_expr(
                                    notification_delivery::Column::LastError,
                                    Expr::value(error.clone()),
                                )
                        }
                    };
                    update.exec(tx).await?;
                }
                Ok(())
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 4), Duration::from_secs(16));
        assert_eq!(backoff(base, 30), RETRY_MAX);
    }
}

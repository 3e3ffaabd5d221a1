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

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::{notification, notification_delivery, user};
use futures_util::StreamExt;
use sea_orm::{
    ColumnTrait, DatabaseBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType},
};
use serde_json::json;
use uuid::Uuid;

use crate::{error::ApiError, store::Store};

/// The webhook channel's name in the outbox.
pub const WEBHOOK: &str = "webhook";
/// The e-mail channel's name in the outbox.
pub const EMAIL: &str = "email";
/// The Web Push channel's name in the outbox.
pub const PUSH: &str = "push";

/// The channels notifications are delivered on beyond the inbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Channels {
    pub webhook: bool,
    pub email: bool,
    pub push: bool,
}

impl Channels {
    /// The outbox names of the channels in use.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        [
            (self.webhook, WEBHOOK),
            (self.email, EMAIL),
            (self.push, PUSH),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }

    pub fn any(self) -> bool {
        self.names().next().is_some()
    }
}

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

/// A webhook endpoint and its signing secret (Standard Webhooks).
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    signer: Arc<standardwebhooks::Webhook>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// `url` with the secret `whsec_…` (base64 after the prefix).
    ///
    /// # Errors
    /// A secret that is not `whsec_` and base64, or a URL that is not `http(s)://`.
    pub fn new(url: &str, secret: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            url.starts_with("https://") || url.starts_with("http://"),
            "ROSTER_WEBHOOK_URL must be an http(s):// URL"
        );
        anyhow::ensure!(
            secret.starts_with("whsec_"),
            "ROSTER_WEBHOOK_SECRET must start with whsec_"
        );
        let signer = standardwebhooks::Webhook::new(secret)
            .map_err(|e| anyhow::anyhow!("ROSTER_WEBHOOK_SECRET: {e}"))?;
        Ok(Self {
            url: url.to_owned(),
            signer: Arc::new(signer),
        })
    }
}

/// An SMTP relay and the sender's address.
#[derive(Clone)]
pub struct EmailConfig {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl EmailConfig {
    /// `url` in lettre's form (`smtps://user:pass@host`, `smtp://host:587?tls=required`, or
    /// plain `smtp://host:port` for a local relay), sending as `from`.
    ///
    /// # Errors
    /// A URL lettre does not take, or a sender that is not an address.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("ROSTER_SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        let from = from
            .parse()
            .map_err(|e| anyhow::anyhow!("ROSTER_MAIL_FROM: {e}"))?;
        Ok(Self { transport, from })
    }
}

/// The VAPID key (RFC 8292) this server signs Web Push requests with, and what endpoints it
/// sends to.
#[derive(Clone)]
pub struct PushConfig {
    key: Arc<web_push_native::jwt_simple::algorithms::ES256KeyPair>,
    public_key: String,
    subject: String,
    allow_http: bool,
}

impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("public_key", &self.public_key)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl PushConfig {
    /// The P-256 private key as base64url of its 32 raw bytes (what web-push tools print),
    /// a `mailto:` or `https:` subject, and whether plain `http://` endpoints are allowed.
    ///
    /// # Errors
    /// A key that is not 32 base64url bytes of a valid P-256 scalar.
    pub fn new(private_key: &str, subject: &str, allow_http: bool) -> anyhow::Result<Self> {
        use base64ct::{Base64UrlUnpadded, Encoding};
        use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
        let raw = Base64UrlUnpadded::decode_vec(private_key.trim().trim_end_matches('='))
            .map_err(|_| anyhow::anyhow!("ROSTER_VAPID_PRIVATE_KEY must be base64url"))?;
        let secret = web_push_native::p256::SecretKey::from_slice(&raw)
            .map_err(|_| anyhow::anyhow!("ROSTER_VAPID_PRIVATE_KEY is not a P-256 key"))?;
        let key = web_push_native::jwt_simple::algorithms::ES256KeyPair::from_bytes(&raw)
            .map_err(|e| anyhow::anyhow!("ROSTER_VAPID_PRIVATE_KEY: {e}"))?;
        let public_key = Base64UrlUnpadded::encode_string(
            secret.public_key().to_encoded_point(false).as_bytes(),
        );
        anyhow::ensure!(
            subject.starts_with("mailto:") || subject.starts_with("https://"),
            "ROSTER_VAPID_SUBJECT must be a mailto: or https: URL"
        );
        Ok(Self {
            key: Arc::new(key),
            public_key,
            subject: subject.to_owned(),
            allow_http,
        })
    }

    /// A new private key, base64url, for a server that was given none.
    pub fn generate_private_key() -> String {
        use base64ct::{Base64UrlUnpadded, Encoding};
        let key = web_push_native::jwt_simple::algorithms::ES256KeyPair::generate();
        Base64UrlUnpadded::encode_string(&key.to_bytes())
    }

    /// The public key browsers pass as `applicationServerKey`: base64url of the uncompressed
    /// point.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The `Authorization` header for a push to `endpoint` (RFC 8292): `vapid t=<JWT>, k=<key>`,
    /// the JWT signed with ES256 for the endpoint's origin (`aud`, its port included when it
    /// has one), valid 12 hours, with the subject.
    ///
    /// # Errors
    /// An endpoint without a scheme or host.
    pub fn authorization(&self, endpoint: &str) -> Result<String, String> {
        use web_push_native::jwt_simple::{algorithms::ECDSAP256KeyPairLike, claims::Claims};
        let uri: axum::http::Uri = endpoint.parse().map_err(|_| "a malformed endpoint")?;
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err("an endpoint without scheme or host".into());
        };
        let origin = match uri.port_u16() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        let claims = Claims::create(web_push_native::jwt_simple::prelude::Duration::from_hours(
            12,
        ))
        .with_audience(origin)
        .with_subject(&self.subject);
        let token = self.key.sign(claims).map_err(|e| format!("VAPID: {e}"))?;
        Ok(format!("vapid t={token}, k={}", self.public_key))
    }

    /// Whether a subscription's endpoint may be sent to: `https://`, or `http://` when allowed.
    pub fn allows(&self, endpoint: &str) -> bool {
        endpoint.starts_with("https://") || (self.allow_http && endpoint.starts_with("http://"))
    }
}

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
    client: reqwest::Client,
}

impl Worker {
    pub fn new(store: Store, config: DeliveryConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            store,
            config,
            client,
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
        let (store, client, config) = (&self.store, &self.client, &self.config);
        let claimed = claim(store, config).await?;
        let full = claimed.len() as u64 >= BATCH;
        let worked = !claimed.is_empty();
        let outcomes: Vec<Outcome> = futures_util::stream::iter(claimed)
            .map(|(delivery, notification, recipient)| async move {
                let outcome = deliver(
                    store,
                    client,
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
    client: &reqwest::Client,
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
            post_webhook(client, webhook, notification).await
        }
        EMAIL => {
            let Some(email) = &config.email else {
                return Err("no SMTP relay is configured".into());
            };
            send_email(email, recipient, notification).await
        }
        PUSH => {
            let Some(push) = &config.push else {
                return Err("no VAPID key is configured".into());
            };
            send_push(store, client, push, notification).await
        }
        other => Err(format!("unknown channel {other}")),
    }
}

/// The notification as a Standard Webhooks message: JSON `{type, timestamp, data}` signed with
/// the secret; `webhook-id` is the notification's id on every attempt.
async fn post_webhook(
    client: &reqwest::Client,
    webhook: &WebhookConfig,
    notification: &notification::Model,
) -> Result<(), String> {
    let body = json!({
        "type": "notification.created",
        "timestamp": notification.created_at.to_rfc3339(),
        "data": {
            "id": notification.id,
            "userId": notification.user_id,
            "kind": notification.kind,
            "title": notification.title,
            "body": notification.body,
            "enrollmentId": notification.enrollment_id,
            "createdAt": notification.created_at.to_rfc3339(),
        },
    })
    .to_string();
    // The receiver checks the signature's time against its own clock: the wall clock's.
    let timestamp = Utc::now().timestamp();
    let id = notification.id.to_string();
    let signature = webhook
        .signer
        .sign(&id, timestamp, body.as_bytes())
        .map_err(|e| e.to_string())?;
    let response = client
        .post(&webhook.url)
        .header("content-type", "application/json")
        .header(standardwebhooks::HEADER_WEBHOOK_ID, &id)
        .header(
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        )
        .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("webhook: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("webhook answered {}", response.status()))
    }
}

/// The notification as an e-mail to its recipient: a plain-text and an HTML part, its id in the
/// `Message-ID` so that a retry is recognisably the same message.
async fn send_email(
    email: &EmailConfig,
    recipient: Option<&user::Model>,
    notification: &notification::Model,
) -> Result<(), String> {
    use lettre::{
        AsyncTransport, Message,
        message::{Mailbox, MultiPart},
    };
    let Some(recipient) = recipient else {
        return Err("the recipient no longer exists".into());
    };
    let to = Mailbox::new(
        Some(recipient.name.clone()),
        recipient
            .email
            .parse()
            .map_err(|e| format!("recipient: {e}"))?,
    );
    let text = format!("{}\n\n{}\n", notification.title, notification.body);
    let html = format!(
        "<!doctype html><html><body><h1>{}</h1><p>{}</p></body></html>",
        escape_html(&notification.title),
        escape_html(&notification.body)
    );
    let message = Message::builder()
        .from(email.from.clone())
        .to(to)
        .subject(notification.title.clone())
        .message_id(Some(format!("<{}@roster>", notification.id)))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| format!("e-mail: {e}"))?;
    email
        .transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("e-mail: {e}"))
}

/// The notification to every browser or phone its recipient registered (RFC 8030), its JSON
/// payload encrypted for each (RFC 8291, aes128gcm) and signed with the VAPID key (RFC 8292).
/// A subscription the push service no longer knows (404, 410) is removed; any other failure
/// retries the whole delivery.
async fn send_push(
    store: &Store,
    client: &reqwest::Client,
    push: &PushConfig,
    notification: &notification::Model,
) -> Result<(), String> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    use entity::push_subscription;
    let subscriptions = push_subscription::Entity::find()
        .filter(push_subscription::Column::UserId.eq(notification.user_id))
        .all(store.db())
        .await
        .map_err(|e| e.to_string())?;
    let payload = json!({
        "id": notification.id,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "enrollmentId": notification.enrollment_id,
    })
    .to_string();
    let mut failures = Vec::new();
    for subscription in subscriptions {
        if !push.allows(&subscription.endpoint) {
            continue;
        }
        let keys = (
            Base64UrlUnpadded::decode_vec(subscription.p256dh.trim_end_matches('=')),
            Base64UrlUnpadded::decode_vec(subscription.auth.trim_end_matches('=')),
        );
        let (Ok(p256dh), Ok(auth)) = keys else {
            failures.push("a subscription's keys are not base64url".to_owned());
            continue;
        };
        let (Ok(endpoint), Ok(public)) = (
            subscription.endpoint.parse(),
            web_push_native::p256::PublicKey::from_sec1_bytes(&p256dh),
        ) else {
            failures.push("a subscription is malformed".to_owned());
            continue;
        };
        if auth.len() != 16 {
            failures.push("a subscription's auth secret is not 16 bytes".to_owned());
            continue;
        }
        let built = web_push_native::WebPushBuilder::new(
            endpoint,
            public,
            web_push_native::Auth::from(<[u8; 16]>::try_from(auth.as_slice()).unwrap_or_default()),
        )
        .build(payload.clone());
        let request = match built {
            Ok(request) => request,
            Err(e) => {
                failures.push(format!("push: {e:?}"));
                continue;
            }
        };
        let vapid = match push.authorization(&subscription.endpoint) {
            Ok(vapid) => vapid,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let (parts, body) = request.into_parts();
        let mut outgoing = client
            .post(subscription.endpoint.as_str())
            .header("authorization", vapid)
            .body(body);
        for (name, value) in &parts.headers {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
        match outgoing.send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) if matches!(response.status().as_u16(), 404 | 410) => {
                // The push service forgot this subscription: so do we.
                let _ = push_subscription::Entity::delete_by_id(subscription.id)
                    .exec(store.db())
                    .await;
            }
            Ok(response) => failures.push(format!("push service answered {}", response.status())),
            Err(e) => failures.push(format!("push: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

    #[test]
    fn a_webhook_secret_must_be_standard() {
        assert!(WebhookConfig::new("https://hooks.example/x", "not-whsec").is_err());
        assert!(WebhookConfig::new("ftp://x", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(
            WebhookConfig::new(
                "https://hooks.example/x",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            )
            .is_ok()
        );
    }
}

//! The inbox (docs/design.md#notifications): a notification is a row written in the same
//! transaction as the change that causes it, so it exists if and only if the change committed;
//! beside it, one outbox row per channel it is delivered on (see [`crate::delivery`]).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::{course, enrollment, notification, notification_delivery, push_subscription, section};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, sea_query::Expr,
};
use uuid::Uuid;

use super::listing::Page;
use crate::{
    domain::{
        cursor::Cursor,
        notification::{self as rules, Message, Place},
        viewer::Viewer,
    },
    error::ApiError,
    store::{Store, Transition, Tx, feed::Notice},
};

/// Writes `message` to `user_id`'s inbox in this transaction, with an outbox row for every
/// channel the store delivers on, and queues the notice live subscribers hear.
///
/// # Errors
/// The database fails.
pub async fn notify(
    tx: &Tx<'_>,
    user_id: Uuid,
    enrollment_id: Option<Uuid>,
    message: Message,
) -> Result<notification::Model, ApiError> {
    let mut rows = notify_many(tx, vec![(user_id, enrollment_id, message)]).await?;
    rows.pop()
        .ok_or_else(|| ApiError::Internal("a notification was not written".into()))
}

/// [`notify`] for many at once, in three statements whatever their number: the notifications,
/// who of their users has a push subscription, the outbox rows. The rows come back in the
/// order given.
///
/// # Errors
/// The database fails.
pub async fn notify_many(
    tx: &Tx<'_>,
    messages: Vec<(Uuid, Option<Uuid>, Message)>,
) -> Result<Vec<notification::Model>, ApiError> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let at = tx.now();
    let rows: Vec<notification::Model> = messages
        .into_iter()
        .map(|(user_id, enrollment_id, message)| notification::Model {
            id: Uuid::now_v7(),
            user_id,
            kind: message.kind.as_str().to_owned(),
            title: message.title,
            body: message.body,
            enrollment_id,
            created_at: at,
            read_at: None,
        })
        .collect();
    notification::Entity::insert_many(rows.iter().cloned().map(notification::ActiveModel::from))
        .exec_without_returning(tx)
        .await?;
    let channels: Vec<&str> = tx.channels().names().collect();
    let pushed: HashSet<Uuid> = if channels.contains(&crate::domain::notification::PUSH) {
        let users: HashSet<Uuid> = rows.iter().map(|row| row.user_id).collect();
        push_subscription::Entity::find()
            .select_only()
            .column(push_subscription::Column::UserId)
            .distinct()
            .filter(push_subscription::Column::UserId.is_in(users))
            .into_tuple()
            .all(tx)
            .await?
            .into_iter()
            .collect()
    } else {
        HashSet::new()
    };
    let deliveries: Vec<notification_delivery::ActiveModel> = rows
        .iter()
        .flat_map(|row| {
            channels
                .iter()
                // No browser or phone to push to.
                .filter(|&&channel| {
                    channel != crate::domain::notification::PUSH || pushed.contains(&row.user_id)
                })
                .map(|&channel| notification_delivery::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    notification_id: Set(row.id),
                    channel: Set(channel.to_owned()),
                    attempts: Set(0),
                    next_attempt_at: Set(at),
                    delivered_at: Set(None),
                    failed_at: Set(None),
                    last_error: Set(None),
                    created_at: Set(at),
                })
        })
        .collect();
    if !deliveries.is_empty() {
        notification_delivery::Entity::insert_many(deliveries)
            .exec_without_returning(tx)
            .await?;
        tx.queue_delivery();
    }
    for row in &rows {
        tx.announce(Notice::of_notification(row.user_id));
    }
    Ok(rows)
}

/// The notification a status change sends its student, if it sends one (see
/// [`rules::for_transition`]), written by [`notify`].
///
/// # Errors
/// The database fails.
pub async fn on_transition(tx: &Tx<'_>, transition: &Transition) -> Result<(), ApiError> {
    let probe = Place {
        course: "",
        section: "",
    };
    // Whether it sends one does not depend on the names: read them only if it does.
    if message(transition, &probe).is_none() {
        return Ok(());
    }
    let (course, section) = names(tx, transition.enrollment_id).await?;
    let place = Place {
        course: &course,
        section: &section,
    };
    if let Some(message) = message(transition, &place) {
        notify(
            tx,
            transition.user_id,
            Some(transition.enrollment_id),
            message,
        )
        .await?;
    }
    Ok(())
}

/// The notification `transition` sends its student, if any, the enrollment being in `place`.
pub(crate) fn message(transition: &Transition, place: &Place<'_>) -> Option<Message> {
    let offer_expires_at = transition
        .details
        .as_ref()
        .and_then(|d| d.get("offerExpiresAt"))
        .and_then(|at| serde_json::from_value(at.clone()).ok());
    rules::for_transition(
        transition.from,
        transition.to,
        transition.actor != Some(transition.user_id),
        place,
        transition.reason.as_deref(),
        offer_expires_at,
    )
}

/// The course's and section's names of an enrollment.
///
/// # Errors
/// The database fails.
pub async fn names(tx: &Tx<'_>, enrollment_id: Uuid) -> Result<(String, String), ApiError> {
    let row = enrollment::Entity::find_by_id(enrollment_id)
        .one(tx)
        .await?
        .ok_or(ApiError::NotFound("enrollment"))?;
    let section = section::Entity::find_by_id(row.section_id)
        .find_also_related(course::Entity)
        .one(tx)
        .await?;
    Ok(match section {
        Some((section, Some(course))) => (course.name, section.name),
        _ => (String::new(), String::new()),
    })
}

/// The viewer's notifications, newest first, at most `first` after `after`; only unread ones
/// with `unread_only`.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn page(
    store: &Store,
    viewer: &Viewer,
    first: u64,
    after: Option<Cursor>,
    unread_only: bool,
) -> Result<Page<notification::Model>, ApiError> {
    let mut select =
        notification::Entity::find().filter(notification::Column::UserId.eq(viewer.id()));
    if unread_only {
        select = select.filter(notification::Column::ReadAt.is_null());
    }
    if let Some(after) = after {
        select = select.filter(
            Condition::any()
                .add(notification::Column::CreatedAt.lt(after.created_at))
                .add(
                    Condition::all()
                        .add(notification::Column::CreatedAt.eq(after.created_at))
                        .add(notification::Column::Id.lt(after.id)),
                ),
        );
    }
    let ordered = select
        .order_by_desc(notification::Column::CreatedAt)
        .order_by_desc(notification::Column::Id);
    Page::read(store, ordered, first).await
}

/// The cursor of a notification in [`page`]'s order.
pub fn cursor_of(row: &notification::Model) -> Cursor {
    Cursor {
        created_at: row.created_at,
        id: row.id,
    }
}

/// How many of the viewer's notifications are unread.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn unread_count(store: &Store, viewer: &Viewer) -> Result<u64, ApiError> {
    Ok(notification::Entity::find()
        .filter(notification::Column::UserId.eq(viewer.id()))
        .filter(notification::Column::ReadAt.is_null())
        .count(store.db())
        .await?)
}

/// Marks the viewer's notifications `ids` read (all of them with `None`); others' ids are left
/// alone. Returns how many were unread and now are read.
///
/// # Errors
/// `BAD_USER_INPUT` for more than 500 ids; `INTERNAL` when the database fails.
pub async fn mark_read(
    store: &Store,
    viewer: &Viewer,
    ids: Option<Vec<Uuid>>,
) -> Result<u64, ApiError> {
    if ids.as_ref().is_some_and(|ids| ids.len() > 500) {
        return Err(ApiError::bad_input("ids", "at most 500 at once"));
    }
    let (viewer, ids) = (viewer.id(), &ids);
    store
        .write(|tx| {
            Box::pin(async move {
                let mut update = notification::Entity::update_many()
                    .col_expr(notification::Column::ReadAt, Expr::value(tx.now()))
                    .filter(notification::Column::UserId.eq(viewer))
                    .filter(notification::Column::ReadAt.is_null());
                if let Some(ids) = ids {
                    update = update.filter(notification::Column::Id.is_in(ids.iter().copied()));
                }
                Ok(update.exec(tx).await?.rows_affected)
            })
        })
        .await
}

/// The user's notifications created after `after` (all of them with `None`), oldest first: what
/// a live subscription has not sent yet.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn since(
    store: &Store,
    user_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> Result<Vec<notification::Model>, ApiError> {
    let mut select = notification::Entity::find().filter(notification::Column::UserId.eq(user_id));
    if let Some((at, id)) = after {
        select = select.filter(
            Condition::any()
                .add(notification::Column::CreatedAt.gt(at))
                .add(
                    Condition::all()
                        .add(notification::Column::CreatedAt.eq(at))
                        .add(notification::Column::Id.gt(id)),
                ),
        );
    }
    Ok(select
        .order_by_asc(notification::Column::CreatedAt)
        .order_by_asc(notification::Column::Id)
        .all(store.db())
        .await?)
}

/// The certification reminders of `roster serve`, a [`crate::jobs::Job`] run every minute:
/// each round runs [`remind_expiring`].
pub struct ExpiryReminders(pub Store);

#[async_trait::async_trait]
impl crate::jobs::Job for ExpiryReminders {
    fn name(&self) -> &'static str {
        "certification expiry reminders"
    }

    fn every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(60)
    }

    async fn run_once(&mut self) -> anyhow::Result<crate::jobs::Round> {
        let reminded = remind_expiring(&self.0).await?;
        if reminded > 0 {
            tracing::info!(reminded, "certification expiry reminders");
        }
        Ok(reminded.into())
    }
}

/// Tells the holders of certifications expiring within 30 days, once per certification: the
/// reminder and the mark that it was sent are written together, and on PostgreSQL rows another
/// replica is reminding are skipped (`FOR UPDATE SKIP LOCKED`). Run by every `roster serve` on
/// a timer; returns how many were reminded.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn remind_expiring(store: &Store) -> Result<usize, ApiError> {
    use entity::certification;
    use sea_orm::{
        DatabaseBackend, QuerySelect,
        sea_query::{LockBehavior, LockType},
    };
    let postgres = store.db().get_database_backend() == DatabaseBackend::Postgres;
    store
        .write(|tx| {
            Box::pin(async move {
                let now = tx.now();
                let horizon = now + chrono::Duration::days(rules::EXPIRY_NOTICE_DAYS);
                let mut due = certification::Entity::find()
                    .filter(certification::Column::ExpiryNotifiedAt.is_null())
                    .filter(certification::Column::ExpiresAt.gt(now))
                    .filter(certification::Column::ExpiresAt.lte(horizon))
                    .order_by_asc(certification::Column::ExpiresAt)
                    .limit(200);
                if postgres {
                    due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
                }
                let due = due.all(tx).await?;
                for row in &due {
                    let course = course::Entity::find_by_id(row.course_id)
                        .one(tx)
                        .await?
                        .map(|c| c.name)
                        .unwrap_or_default();
                    let Some(expires_at) = row.expires_at else {
                        continue;
                    };
                    let message = rules::certification_expiring(&course, expires_at);
                    notify(tx, row.user_id, Some(row.enrollment_id), message).await?;
                    certification::Entity::update_many()
                        .col_expr(certification::Column::ExpiryNotifiedAt, Expr::value(now))
                        .filter(certification::Column::Id.eq(row.id))
                        .exec(tx)
                        .await?;
                }
                Ok(due.len())
            })
        })
        .await
}

/// Registers a browser or phone of the viewer for Web Push (what `pushManager.subscribe`
/// returned): an endpoint registered before, by anyone, is taken over with the new keys.
///
/// # Errors
/// `BAD_USER_INPUT` for an endpoint that is not `https://` (or `http://` when allowed), keys
/// that are not a P-256 point and a 16-byte secret in base64url, or when push is off.
pub async fn register_push(
    store: &Store,
    viewer: &Viewer,
    endpoint: &str,
    p256dh: &str,
    auth: &str,
) -> Result<(), ApiError> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let Some(push) = store.push() else {
        return Err(ApiError::bad_input(
            "endpoint",
            "Web Push is not enabled on this server",
        ));
    };
    let endpoint = endpoint.trim();
    if endpoint.len() > 2048 || endpoint.parse::<axum::http::Uri>().is_err() {
        return Err(ApiError::bad_input(
            "endpoint",
            "must be the push service's https:// URL",
        ));
    }
    push.check(endpoint)
        .map_err(|why| ApiError::bad_input("endpoint", why))?;
    let key = Base64UrlUnpadded::decode_vec(p256dh.trim().trim_end_matches('='))
        .ok()
        .filter(|k| web_push_native::p256::PublicKey::from_sec1_bytes(k).is_ok());
    if key.is_none() {
        return Err(ApiError::bad_input(
            "p256dh",
            "must be a P-256 public key, base64url",
        ));
    }
    let secret = Base64UrlUnpadded::decode_vec(auth.trim().trim_end_matches('='))
        .ok()
        .filter(|a| a.len() == 16);
    if secret.is_none() {
        return Err(ApiError::bad_input("auth", "must be 16 bytes, base64url"));
    }
    let (viewer, endpoint, p256dh, auth) = (viewer.id(), endpoint, p256dh.trim(), auth.trim());
    store
        .write(|tx| {
            Box::pin(async move {
                push_subscription::Entity::delete_many()
                    .filter(push_subscription::Column::Endpoint.eq(endpoint))
                    .exec(tx)
                    .await?;
                push_subscription::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    user_id: Set(viewer),
                    endpoint: Set(endpoint.to_owned()),
                    p256dh: Set(p256dh.to_owned()),
                    auth: Set(auth.to_owned()),
                    created_at: Set(tx.now()),
                }
                .insert(tx)
                .await?;
                Ok(())
            })
        })
        .await
}

/// Forgets the viewer's subscription at `endpoint`; whether there was one.
///
/// # Errors
/// `INTERNAL` when the database fails.
pub async fn unregister_push(
    store: &Store,
    viewer: &Viewer,
    endpoint: &str,
) -> Result<bool, ApiError> {
    let (viewer, endpoint) = (viewer.id(), endpoint.trim());
    store
        .write(|tx| {
            Box::pin(async move {
                let gone = push_subscription::Entity::delete_many()
                    .filter(push_subscription::Column::UserId.eq(viewer))
                    .filter(push_subscription::Column::Endpoint.eq(endpoint))
                    .exec(tx)
                    .await?;
                Ok(gone.rows_affected > 0)
            })
        })
        .await
}

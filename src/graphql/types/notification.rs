//! The inbox as clients read it (docs/design.md#notifications).

use async_graphql::{
    Context, Enum, Object, Result,
    connection::{Connection, Edge},
};
use chrono::{DateTime, Utc};
use entity::notification;
use uuid::Uuid;

use super::Enrollment;
use crate::graphql::boxed;
use crate::{
    domain::cursor::Cursor,
    graphql::{query::page_size, request},
    service::notifications,
};

/// What a notification is about.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    /// A freed seat went to you.
    Promoted,
    /// A freed seat went to you, in a section that approves: it awaits approval.
    PromotedPending,
    /// Staff approved your request.
    Approved,
    /// Staff cancelled your enrollment (or refused the request).
    Cancelled,
    /// Staff recorded that you did not complete.
    Failed,
    /// Completing a course earned you a certification.
    CertificationIssued,
    /// A seat freed but you could not take it; you keep your place.
    Skipped,
    /// A certification of yours expires within 30 days.
    CertificationExpiring,
    /// A freed seat is offered to you until a deadline: accept or decline it.
    Offered,
    /// An offer of yours lapses soon.
    OfferExpiring,
    /// An offer of yours lapsed unanswered; the seat went to the next person.
    OfferExpired,
    /// Enrollment closed while you waited: nobody is promoted from the waitlist any more.
    WindowClosed,
    /// The lottery your request was in is drawn: a seat, a waitlist place, or a refusal.
    LotteryDrawn,
    /// A kind this version does not know (written by a newer replica).
    Other,
}

impl NotificationKind {
    fn of(stored: &str) -> Self {
        match stored {
            "PROMOTED" => Self::Promoted,
            "PROMOTED_PENDING" => Self::PromotedPending,
            "APPROVED" => Self::Approved,
            "CANCELLED" => Self::Cancelled,
            "FAILED" => Self::Failed,
            "CERTIFICATION_ISSUED" => Self::CertificationIssued,
            "SKIPPED" => Self::Skipped,
            "CERTIFICATION_EXPIRING" => Self::CertificationExpiring,
            "OFFERED" => Self::Offered,
            "OFFER_EXPIRING" => Self::OfferExpiring,
            "OFFER_EXPIRED" => Self::OfferExpired,
            "WINDOW_CLOSED" => Self::WindowClosed,
            "LOTTERY_DRAWN" => Self::LotteryDrawn,
            _ => Self::Other,
        }
    }
}

/// One notification in the viewer's inbox: plain text a phone can show, linking the enrollment.
pub struct Notification(pub notification::Model);

#[Object]
impl Notification {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    async fn kind(&self) -> NotificationKind {
        NotificationKind::of(&self.0.kind)
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn body(&self) -> &str {
        &self.0.body
    }

    async fn enrollment_id(&self) -> Option<Uuid> {
        self.0.enrollment_id
    }

    /// The enrollment it is about.
    async fn enrollment(&self, ctx: &Context<'_>) -> Result<Option<Enrollment>> {
        boxed(async move {
            match self.0.enrollment_id {
                Some(id) => request(ctx)?.node(id).await,
                None => Ok(None),
            }
        })
        .await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it was marked read; null while unread.
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }

    async fn is_read(&self) -> bool {
        self.0.read_at.is_some()
    }
}

/// A page of the inbox, newest first.
pub type NotificationConnection = Connection<String, Notification>;

/// One page of the viewer's notifications.
pub(crate) async fn notification_page(
    ctx: &Context<'_>,
    first: i32,
    after: Option<String>,
    unread_only: bool,
) -> Result<NotificationConnection> {
    let rc = request(ctx)?;
    let viewer = rc.require_viewer()?;
    let first = page_size(rc, first)?;
    let after = super::staff::cursor(after, Cursor::decode)?;
    let page = notifications::page(&rc.store, viewer, first, after, unread_only).await?;
    let mut connection = Connection::new(after.is_some(), page.has_next_page);
    connection.edges = page
        .rows
        .into_iter()
        .map(|row| Edge::new(notifications::cursor_of(&row).encode(), Notification(row)))
        .collect();
    Ok(connection)
}

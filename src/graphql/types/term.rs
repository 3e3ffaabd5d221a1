use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{term, types::Admission};
use uuid::Uuid;

use super::{Organization, Section};
use crate::graphql::{boxed, inputs::Date, request};
use crate::service::terms;

/// A term (semester, quarter, or part of one): its dates, time zone, holidays, enrollment
/// window and withdrawal deadlines (docs/design.md#time).
pub struct Term(pub term::Model);

#[Object]
impl Term {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    /// e.g. "Fall 2026".
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Unique in the organization, e.g. `2026-FA`.
    async fn code(&self) -> &str {
        &self.0.code
    }

    async fn organization(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        boxed(async move { request(ctx)?.node(self.0.organization_id).await }).await
    }

    async fn starts_on(&self) -> Date {
        Date(self.0.starts_on)
    }

    async fn ends_on(&self) -> Date {
        Date(self.0.ends_on)
    }

    /// IANA name: meetings are wall-clock times in this zone.
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }

    /// Dates inside the term without meetings.
    async fn holidays(&self) -> Vec<Date> {
        self.0.holidays.0.iter().copied().map(Date).collect()
    }

    /// Students enroll from then on (their own appointment may say later).
    async fn enrollment_opens_at(&self) -> Option<DateTime<Utc>> {
        self.0.enrollment_opens_at
    }

    /// Students enroll until then; promotions from waitlists stop then.
    async fn enrollment_closes_at(&self) -> Option<DateTime<Utc>> {
        self.0.enrollment_closes_at
    }

    /// Until then a withdrawal leaves no record (`record: NONE`).
    async fn drop_deadline(&self) -> Option<DateTime<Utc>> {
        self.0.drop_deadline
    }

    /// Until then a withdrawal is recorded as `W`; after it only staff withdraw.
    async fn withdraw_deadline(&self) -> Option<DateTime<Utc>> {
        self.0.withdraw_deadline
    }

    async fn admission(&self) -> Admission {
        self.0.admission
    }

    /// How long, from each student's opening, requests go to the lottery (LOTTERY terms).
    async fn lottery_minutes(&self) -> Option<i32> {
        self.0.lottery_minutes
    }

    /// The hex SHA-256 of the lottery's seed, published from the moment the lottery is set:
    /// the seed shown after the draw must hash to it.
    async fn lottery_seed_hash(&self) -> Option<&str> {
        self.0.lottery_seed_hash.as_deref()
    }

    /// The lottery's seed (32 bytes, hex), once the lottery is over (`lotteryDrawnAt`): each
    /// draw took its requests in ascending order of HMAC-SHA256 keyed by these bytes, of the
    /// enrollment's id as lower-case hyphenated text.
    async fn lottery_seed(&self) -> Option<&str> {
        self.0.lottery_drawn_at.and(self.0.lottery_seed.as_deref())
    }

    /// When the term's last lottery window had ended and its last draw was done.
    async fn lottery_drawn_at(&self) -> Option<DateTime<Utc>> {
        self.0.lottery_drawn_at
    }

    /// The term's sections the viewer may see (inactive ones only for their course's staff).
    async fn sections(&self, ctx: &Context<'_>) -> Result<Vec<Section>> {
        boxed(async move {
            let rc = request(ctx)?;
            let sections = terms::sections(&rc.store, rc.viewer.as_ref(), self.0.id).await?;
            Ok(sections.into_iter().map(Section).collect())
        })
        .await
    }
}

/// One dated meeting of a section: on `date`, from `startsAt` to `endsAt` (wall-clock in the
/// term's time zone, given here with its offset).
#[derive(SimpleObject)]
pub struct Occurrence {
    pub date: Date,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub room: Option<String>,
}

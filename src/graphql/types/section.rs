use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};
use entity::{
    section,
    types::{EnrollmentStatus, Meeting, PromotionMode},
};
use uuid::Uuid;

use super::{
    Course, Enrollment, EnrollmentConnection, Occurrence, Term, User, enrollment_page,
    users_in_order,
};
use crate::domain::{calendar, seats::Seats, visibility};
use crate::graphql::boxed;
use crate::graphql::{
    inputs::Date,
    loaders::{RegisteredIn, TeammatesOf, TermKey},
    request,
};
use crate::service::rosters::{self, Approvals, EnrollmentFilter};

/// A section of a course: a schedule, a room, and a number of seats.
pub struct Section(pub section::Model);

impl Section {
    fn seats(&self) -> Seats {
        Seats::from(&self.0)
    }

    /// The section's term, through the request's loader (one batch for a page of sections).
    async fn term_row(&self, ctx: &Context<'_>) -> Result<Option<entity::term::Model>> {
        match self.0.term_id {
            Some(id) => Ok(request(ctx)?.loader.load_one(TermKey::new(id)).await?),
            None => Ok(None),
        }
    }
}

#[Object]
impl Section {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    /// 1 to 100 characters, e.g. "Section A".
    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn course(&self, ctx: &Context<'_>) -> Result<Option<Course>> {
        boxed(async move {
            let rc = request(ctx)?;
            rc.node(self.0.course_id).await
        })
        .await
    }

    /// Weekly meetings.
    async fn schedule(&self) -> &[Meeting] {
        &self.0.schedule.0
    }

    /// Number of seats; null means unlimited.
    async fn capacity(&self) -> Option<i32> {
        self.0.capacity
    }

    /// Enrollments holding a confirmed seat (REGISTERED).
    async fn registered_count(&self) -> i32 {
        self.0.registered_count
    }

    /// Enrollments awaiting approval; each holds a seat.
    async fn pending_count(&self) -> i32 {
        self.0.pending_count
    }

    /// Enrollments finished (COMPLETED or FAILED): each keeps its seat.
    async fn finished_count(&self) -> i32 {
        self.0.finished_count
    }

    /// Enrollments offered a freed seat (offer mode): each holds it until accepted, declined or
    /// expired.
    async fn offered_count(&self) -> i32 {
        self.0.offered_count
    }

    /// Enrollments on the waitlist.
    async fn waitlist_count(&self) -> i32 {
        self.0.waitlist_count
    }

    /// Free seats; null when the capacity is unlimited.
    async fn seats_available(&self) -> Option<i32> {
        self.seats().available()
    }

    /// Whether no seat is free (never true for unlimited sections).
    async fn is_full(&self) -> bool {
        self.seats().is_full()
    }

    async fn is_active(&self) -> bool {
        self.0.is_active
    }

    /// New enrollments wait as PENDING until staff approve them.
    async fn requires_approval(&self) -> bool {
        self.0.requires_approval
    }

    /// When full, new enrollments join the waitlist instead of failing with SECTION_FULL.
    async fn waitlist_enabled(&self) -> bool {
        self.0.waitlist_enabled
    }

    /// What a freed seat does: AUTOMATIC promotes the earliest eligible waiter at once; OFFER
    /// offers it to them for `offerHours`.
    async fn promotion_mode(&self) -> PromotionMode {
        self.0.promotion_mode
    }

    /// How long an offered seat is held before it passes on (offer mode), in hours.
    async fn offer_hours(&self) -> i32 {
        self.0.offer_hours
    }

    /// The term the section runs in; null: a weekly schedule without dates.
    async fn term(&self, ctx: &Context<'_>) -> Result<Option<Term>> {
        boxed(async move { self.term_row(ctx).await.map(|t| t.map(Term)) }).await
    }

    /// The first date of its meetings: its own, else its term's; null without a term.
    async fn starts_on(&self, ctx: &Context<'_>) -> Result<Option<Date>> {
        boxed(async move {
            let term = self.term_row(ctx).await?;
            Ok(term.map(|t| Date(self.0.starts_on.unwrap_or(t.starts_on))))
        })
        .await
    }

    /// The last date of its meetings: its own, else its term's; null without a term.
    async fn ends_on(&self, ctx: &Context<'_>) -> Result<Option<Date>> {
        boxed(async move {
            let term = self.term_row(ctx).await?;
            Ok(term.map(|t| Date(self.0.ends_on.unwrap_or(t.ends_on))))
        })
        .await
    }

    /// When students may enroll from: its own window, else its term's; null: no limit.
    async fn enrollment_opens_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        boxed(async move {
            let term = self.term_row(ctx).await?;
            Ok(calendar::window(&self.0, term.as_ref()).opens_at)
        })
        .await
    }

    /// When enrollment (and promotion from the waitlist) stops: its own, else its term's.
    async fn enrollment_closes_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        boxed(async move {
            let term = self.term_row(ctx).await?;
            Ok(calendar::window(&self.0, term.as_ref()).closes_at)
        })
        .await
    }

    /// Every dated meeting, in time order: the weekly schedule on the section's dates in its
    /// term's time zone, holidays left out. Empty without a term.
    async fn occurrences(&self, ctx: &Context<'_>) -> Result<Vec<Occurrence>> {
        boxed(async move {
            let term = self.term_row(ctx).await?;
            let Some(span) = calendar::span(&self.0, term.as_ref()) else {
                return Ok(Vec::new());
            };
            Ok(calendar::occurrences(&self.0.schedule, &span)
                .into_iter()
                .map(|o| Occurrence {
                    date: Date(o.date),
                    starts_at: o.starts_at,
                    ends_at: o.ends_at,
                    room: o.meeting.room.clone(),
                })
                .collect())
        })
        .await
    }

    /// Registered classmates who made their enrollment visible and share a team with the
    /// viewer. Empty for anonymous viewers.
    async fn classmates(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        boxed(async move {
            let rc = request(ctx)?;
            let Some(viewer) = &rc.viewer else {
                return Ok(Vec::new());
            };
            let mates = rc
                .loader
                .load_one(TeammatesOf(viewer.id()))
                .await?
                .unwrap_or_default();
            let registered = rc
                .loader
                .load_one(RegisteredIn(self.0.id))
                .await?
                .unwrap_or_default();
            users_in_order(rc, &visibility::classmates(viewer, &registered, &mates)).await
        })
        .await
    }

    /// The teaching assistant: sees this section's roster, approves, confirms attendance and
    /// writes notes here.
    async fn assistant(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        boxed(async move {
            match self.0.assistant_id {
                Some(id) => request(ctx)?.node(id).await,
                None => Ok(None),
            }
        })
        .await
    }

    /// The section's enrollments, newest first, optionally only those in `status`: for staff of
    /// the section (of its course, or its teaching assistant); FORBIDDEN for anyone else.
    async fn enrollments(
        &self,
        ctx: &Context<'_>,
        status: Option<Vec<EnrollmentStatus>>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<EnrollmentConnection> {
        boxed(async move {
            let rc = request(ctx)?;
            let viewer = rc.require_viewer()?;
            rosters::require_section_staff(&rc.store, viewer, &self.0, "see its roster").await?;
            let filter = EnrollmentFilter {
                section_id: Some(self.0.id),
                statuses: status,
                ..Default::default()
            };
            enrollment_page(ctx, filter, first.unwrap_or(50), after).await
        })
        .await
    }

    /// Who waits, in position order (each with its `waitlistPosition`): for staff of the
    /// section; FORBIDDEN for anyone else.
    async fn waitlist(&self, ctx: &Context<'_>) -> Result<Vec<Enrollment>> {
        boxed(async move {
            let rc = request(ctx)?;
            let viewer = rc.require_viewer()?;
            let rows = rosters::waitlist(&rc.store, viewer, &self.0).await?;
            Ok(rows.into_iter().map(Enrollment).collect())
        })
        .await
    }

    /// PENDING enrollments awaiting approval, oldest request first: for staff of the section;
    /// FORBIDDEN for anyone else.
    async fn pending_approvals(&self, ctx: &Context<'_>) -> Result<Vec<Enrollment>> {
        boxed(async move {
            let rc = request(ctx)?;
            let viewer = rc.require_viewer()?;
            let rows =
                rosters::pending_approvals(&rc.store, viewer, Approvals::Section(&self.0)).await?;
            Ok(rows.into_iter().map(Enrollment).collect())
        })
        .await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

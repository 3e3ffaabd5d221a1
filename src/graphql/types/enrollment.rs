use std::collections::HashSet;

use async_graphql::{Context, ID, Json, Object, Result};
use chrono::{DateTime, Utc};
use entity::{
    certification, enrollment, enrollment_event,
    types::{EnrollmentRecord, EnrollmentStatus},
};
use uuid::Uuid;

use super::{Course, Section, User};
use crate::graphql::boxed;
use crate::{
    domain::visibility,
    graphql::{
        loaders::{
            CertificationOf, CourseKey, EnrollmentKey, EventsOf, SectionKey, UserKey, WaitlistRank,
        },
        request,
    },
};

/// One user's enrollment in one section of a course.
pub struct Enrollment(pub enrollment::Model);

impl Enrollment {
    /// Loads, in one batch per relation, what the selection under `node` asks of `rows`, so
    /// that a roster page costs the same few statements whatever its size (see
    /// `Course::prime`).
    pub async fn prime(
        ctx: &Context<'_>,
        node: &async_graphql::Lookahead<'_>,
        rows: &[enrollment::Model],
    ) -> Result<()> {
        let rc = request(ctx)?;
        let wants = |field: &str| node.field(field).exists();
        let staff_only = [
            "notes",
            "notesUpdatedAt",
            "notesUpdatedBy",
            "skipReason",
            "skippedAt",
        ];
        let courses = async {
            if wants("course") || staff_only.iter().any(|f| wants(f)) {
                let keys: std::collections::HashSet<_> =
                    rows.iter().map(|e| CourseKey::new(e.course_id)).collect();
                rc.loader.load_many(keys).await?;
            }
            Ok::<_, std::sync::Arc<sea_orm::DbErr>>(())
        };
        let sections = async {
            if wants("section") || staff_only.iter().any(|f| wants(f)) {
                let keys: std::collections::HashSet<_> =
                    rows.iter().map(|e| SectionKey::new(e.section_id)).collect();
                rc.loader.load_many(keys).await?;
            }
            Ok(())
        };
        let users = async {
            if wants("user") {
                let keys: std::collections::HashSet<_> =
                    rows.iter().map(|e| UserKey::new(e.user_id)).collect();
                rc.loader.load_many(keys).await?;
            }
            Ok(())
        };
        let history = async {
            if wants("history") {
                rc.loader
                    .load_many(rows.iter().map(|e| EventsOf(e.id)))
                    .await?;
            }
            Ok(())
        };
        futures_util::try_join!(courses, sections, users, history)?;
        Ok(())
    }

    /// Whether the viewer is staff of this enrollment's section (docs/design.md#who-may-do-what).
    async fn for_staff(&self, ctx: &Context<'_>) -> Result<bool> {
        let rc = request(ctx)?;
        let Some(viewer) = &rc.viewer else {
            return Ok(false);
        };
        let course = rc.loader.load_one(CourseKey::new(self.0.course_id)).await?;
        let section = rc
            .loader
            .load_one(SectionKey::new(self.0.section_id))
            .await?;
        Ok(visibility::is_section_staff(
            viewer,
            course.as_ref(),
            section.as_ref(),
        ))
    }

    /// Whether the viewer is the enrolled user or staff of the section.
    async fn for_owner_or_staff(&self, ctx: &Context<'_>) -> Result<bool> {
        let rc = request(ctx)?;
        if rc.viewer.as_ref().is_some_and(|v| v.id() == self.0.user_id) {
            return Ok(true);
        }
        self.for_staff(ctx).await
    }
}

#[Object]
impl Enrollment {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    async fn status(&self) -> EnrollmentStatus {
        self.0.status
    }

    async fn user(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        boxed(async move {
            let rc = request(ctx)?;
            rc.node(self.0.user_id).await
        })
        .await
    }

    async fn section(&self, ctx: &Context<'_>) -> Result<Option<Section>> {
        boxed(async move {
            let rc = request(ctx)?;
            rc.node(self.0.section_id).await
        })
        .await
    }

    async fn course(&self, ctx: &Context<'_>) -> Result<Option<Course>> {
        boxed(async move {
            let rc = request(ctx)?;
            rc.node(self.0.course_id).await
        })
        .await
    }

    /// 1-based rank among the section's current waitlist; null unless WAITLISTED.
    async fn waitlist_position(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        boxed(async move {
            let (EnrollmentStatus::Waitlisted, Some(ticket)) =
                (self.0.status, self.0.waitlist_ticket)
            else {
                return Ok(None);
            };
            let rc = request(ctx)?;
            Ok(rc
                .loader
                .load_one(WaitlistRank {
                    section_id: self.0.section_id,
                    ticket,
                })
                .await?)
        })
        .await
    }

    /// Whether fellow team members may see this enrollment.
    async fn visibility(&self) -> bool {
        self.0.visibility
    }

    async fn enrolled_at(&self) -> DateTime<Utc> {
        self.0.enrolled_at
    }

    /// The staff member who enrolled the user on their behalf; null for self-enrollment.
    async fn enrolled_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        boxed(async move {
            let Some(by) = self.0.enrolled_by else {
                return Ok(None);
            };
            let rc = request(ctx)?;
            rc.node(by).await
        })
        .await
    }

    /// Whether every prerequisite certification was held when the enrollment was made.
    async fn prerequisite_check_passed(&self) -> bool {
        self.0.prerequisite_check_passed
    }

    async fn prerequisite_check_at(&self) -> Option<DateTime<Utc>> {
        self.0.prerequisite_check_at
    }

    /// When the enrollment took its seat (on enrollment, approval hold or promotion).
    async fn seat_reserved_at(&self) -> Option<DateTime<Utc>> {
        self.0.seat_reserved_at
    }

    /// When attendance was confirmed.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }

    /// Who confirmed attendance.
    async fn completed_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        boxed(async move {
            let Some(by) = self.0.completed_by else {
                return Ok(None);
            };
            let rc = request(ctx)?;
            rc.node(by).await
        })
        .await
    }

    /// Proof of completion as given by the confirming staff member.
    async fn completion_evidence(&self) -> Option<Json<serde_json::Value>> {
        self.0.completion_evidence.clone().map(Json)
    }

    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }

    async fn withdrawn_at(&self) -> Option<DateTime<Utc>> {
        self.0.withdrawn_at
    }

    /// Why it was cancelled, withdrawn or failed.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    /// Why the waitlist last passed this enrollment over when a seat freed (it keeps its place):
    /// a prerequisite certification expired, a meeting overlaps another of the student's seats,
    /// or the section is inactive. For the student and staff of the course; null otherwise, and
    /// once promoted.
    async fn skip_reason(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        boxed(async move {
            let visible = self.for_owner_or_staff(ctx).await?;
            Ok(self.0.skip_reason.as_deref().filter(|_| visible))
        })
        .await
    }

    /// While OFFERED: when the offered seat passes to the next waiter unless accepted
    /// (`acceptOffer`). Null otherwise, and for anyone but the student and staff.
    async fn offer_expires_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        boxed(async move {
            if self.0.status != EnrollmentStatus::Offered {
                return Ok(None);
            }
            let visible = self.for_owner_or_staff(ctx).await?;
            Ok(self.0.offer_expires_at.filter(|_| visible))
        })
        .await
    }

    /// What a withdrawal left on the transcript: `NONE` up to the term's drop deadline, `W`
    /// after it. Null until withdrawn, and for anyone but the student and staff.
    async fn record(&self, ctx: &Context<'_>) -> Result<Option<EnrollmentRecord>> {
        boxed(async move {
            let Some(record) = self.0.record else {
                return Ok(None);
            };
            Ok(self.for_owner_or_staff(ctx).await?.then_some(record))
        })
        .await
    }

    /// When the waitlist last passed this enrollment over; see `skipReason`.
    async fn skipped_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        boxed(async move {
            let visible = self.for_owner_or_staff(ctx).await?;
            Ok(self.0.skipped_at.filter(|_| visible))
        })
        .await
    }

    /// The certification this enrollment earned, if any.
    async fn certification(&self, ctx: &Context<'_>) -> Result<Option<Certification>> {
        boxed(async move {
            let rc = request(ctx)?;
            Ok(rc
                .loader
                .load_one(CertificationOf(self.0.id))
                .await?
                .map(Certification))
        })
        .await
    }

    /// Internal staff notes, for staff of the section (of its course, or its teaching
    /// assistant); null for anyone else, the enrolled student included.
    async fn notes(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        boxed(async move {
            let staff = self.for_staff(ctx).await?;
            Ok(self.0.notes.as_deref().filter(|_| staff))
        })
        .await
    }

    /// When the notes were last written; for staff of the section, null for anyone else.
    async fn notes_updated_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        boxed(async move {
            let staff = self.for_staff(ctx).await?;
            Ok(self.0.notes_updated_at.filter(|_| staff))
        })
        .await
    }

    /// Who last wrote the notes; for staff of the section, null for anyone else.
    async fn notes_updated_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        boxed(async move {
            match self.0.notes_updated_by {
                Some(id) if self.for_staff(ctx).await? => request(ctx)?.node(id).await,
                _ => Ok(None),
            }
        })
        .await
    }

    /// Every status change, oldest first.
    async fn history(&self, ctx: &Context<'_>) -> Result<Vec<EnrollmentEvent>> {
        boxed(async move {
            let rc = request(ctx)?;
            Ok(rc
                .loader
                .load_one(EventsOf(self.0.id))
                .await?
                .unwrap_or_default()
                .into_iter()
                .map(EnrollmentEvent)
                .collect())
        })
        .await
    }
}

/// One status change of an enrollment.
pub struct EnrollmentEvent(pub enrollment_event::Model);

impl EnrollmentEvent {
    /// Loads the actors the selection under `node` asks for in one batch (see
    /// `Enrollment::prime`).
    pub async fn prime(
        ctx: &Context<'_>,
        node: &async_graphql::Lookahead<'_>,
        rows: &[enrollment_event::Model],
    ) -> Result<()> {
        if node.field("actor").exists() {
            let keys: HashSet<_> = rows
                .iter()
                .filter_map(|e| e.actor_id)
                .map(UserKey::new)
                .collect();
            request(ctx)?.loader.load_many(keys).await?;
        }
        Ok(())
    }
}

#[Object]
impl EnrollmentEvent {
    /// Increases with every event written.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn enrollment_id(&self) -> Uuid {
        self.0.enrollment_id
    }

    /// Null for the event that created the enrollment.
    async fn from(&self) -> Option<EnrollmentStatus> {
        self.0.from_status
    }

    async fn to(&self) -> EnrollmentStatus {
        self.0.to_status
    }

    /// Who caused the change; for a promotion, whoever freed the seat.
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        boxed(async move {
            let Some(actor) = self.0.actor_id else {
                return Ok(None);
            };
            let rc = request(ctx)?;
            rc.node(actor).await
        })
        .await
    }

    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    /// Extra facts, such as a capacity override or the sections of a switch.
    async fn details(&self) -> Option<Json<serde_json::Value>> {
        self.0.details.clone().map(Json)
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

/// A certification earned by completing a course.
pub struct Certification(pub certification::Model);

impl Certification {
    /// Loads, in one batch per relation, what the selection under `node` asks of `rows` (see
    /// `Enrollment::prime`).
    pub async fn prime(
        ctx: &Context<'_>,
        node: &async_graphql::Lookahead<'_>,
        rows: &[certification::Model],
    ) -> Result<()> {
        let rc = request(ctx)?;
        let wants = |field: &str| node.field(field).exists();
        let users = async {
            if wants("user") {
                let keys: HashSet<_> = rows.iter().map(|c| UserKey::new(c.user_id)).collect();
                rc.loader.load_many(keys).await?;
            }
            Ok::<_, std::sync::Arc<sea_orm::DbErr>>(())
        };
        let courses = async {
            if wants("course") || wants("enrollment") {
                let keys: HashSet<_> = rows.iter().map(|c| CourseKey::new(c.course_id)).collect();
                rc.loader.load_many(keys).await?;
            }
            Ok(())
        };
        let enrollments = async {
            if !wants("enrollment") {
                return Ok(Vec::new());
            }
            let keys: HashSet<_> = rows
                .iter()
                .map(|c| EnrollmentKey::new(c.enrollment_id))
                .collect();
            Ok(rc.loader.load_many(keys).await?.into_values().collect())
        };
        let ((), (), enrollments) = futures_util::try_join!(users, courses, enrollments)?;
        Enrollment::prime(ctx, &node.field("enrollment"), &enrollments).await
    }
}

#[Object]
impl Certification {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    async fn user(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        boxed(async move {
            let rc = request(ctx)?;
            rc.node(self.0.user_id).await
        })
        .await
    }

    async fn course(&self, ctx: &Context<'_>) -> Result<Option<Course>> {
        boxed(async move {
            let rc = request(ctx)?;
            rc.node(self.0.course_id).await
        })
        .await
    }

    async fn enrollment_id(&self) -> Uuid {
        self.0.enrollment_id
    }

    /// The completed enrollment that earned it, for its holder and staff of the course.
    async fn enrollment(&self, ctx: &Context<'_>) -> Result<Option<Enrollment>> {
        boxed(async move {
            let rc = request(ctx)?;
            let Some(viewer) = &rc.viewer else {
                return Ok(None);
            };
            let course = if viewer.id() == self.0.user_id {
                None
            } else {
                rc.loader.load_one(CourseKey::new(self.0.course_id)).await?
            };
            if !visibility::may_see_certified_enrollment(viewer, self.0.user_id, course.as_ref()) {
                return Ok(None);
            }
            rc.node(self.0.enrollment_id).await
        })
        .await
    }

    async fn issued_at(&self) -> DateTime<Utc> {
        self.0.issued_at
    }

    /// Null: never expires.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// Whether it has not expired yet.
    async fn is_valid(&self, ctx: &Context<'_>) -> Result<bool> {
        // Time passes without the database changing: this answer cannot be reused.
        let rc = request(ctx)?;
        rc.reusable.forbid();
        Ok(self.0.expires_at.is_none_or(|e| e > rc.store.now()))
    }
}

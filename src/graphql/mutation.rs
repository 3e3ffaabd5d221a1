use async_graphql::{Context, Json, MergedObject, Object, Result};
use entity::types::EnrollmentStatus;
use uuid::Uuid;

use super::{
    inputs::{CreateCourseInput, CreateSectionInput, UpdateCourseInput, UpdateSectionInput},
    signed_in,
    types::{BulkResult, Course, Enrollment, Section, Team},
};
use crate::service::{
    courses,
    eligibility::Schedule,
    enroll::{self, EnrollRequest},
    enrollments, sections, switch, teams, transitions,
};

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    CatalogMutation,
    EnrollmentMutation,
    TeamMutation,
    NotificationMutation,
    super::time::TermMutation,
);

/// The viewer's inbox.
#[derive(Default)]
pub struct NotificationMutation;

#[Object]
impl NotificationMutation {
    /// Marks the viewer's notifications `ids` read (at most 500), or all of them without `ids`.
    /// Returns how many were unread. Ids of other users' notifications are ignored.
    async fn mark_notifications_read(
        &self,
        ctx: &Context<'_>,
        ids: Option<Vec<Uuid>>,
    ) -> Result<u64> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(crate::service::notifications::mark_read(store, viewer, ids).await?)
    }

    /// Registers a browser or phone of the viewer for Web Push: the `endpoint` and the
    /// `keys.p256dh` and `keys.auth` of the `PushSubscription` that `pushManager.subscribe`
    /// returned (with `applicationServerKey` set to `vapidPublicKey`).
    async fn register_push_subscription(
        &self,
        ctx: &Context<'_>,
        endpoint: String,
        p256dh: String,
        auth: String,
    ) -> Result<bool> {
        let (store, viewer) = signed_in(ctx)?;
        crate::service::notifications::register_push(store, viewer, &endpoint, &p256dh, &auth)
            .await?;
        Ok(true)
    }

    /// Stops pushing to the viewer's subscription at `endpoint`; whether there was one.
    async fn unregister_push_subscription(
        &self,
        ctx: &Context<'_>,
        endpoint: String,
    ) -> Result<bool> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(crate::service::notifications::unregister_push(store, viewer, &endpoint).await?)
    }
}

/// The enrollment life cycle. Each mutation is one transaction; a change that frees a seat
/// promotes the earliest waitlisted enrollment in the same transaction.
#[derive(Default)]
pub struct EnrollmentMutation;

#[Object]
impl EnrollmentMutation {
    /// Enrolls the viewer (or, for staff of the course, `userId`, recorded as `enrolledBy`) in a
    /// section: REGISTERED, PENDING when the section requires approval, or WAITLISTED when it is
    /// full; SECTION_FULL when it is full and has no waitlist.
    async fn enroll(
        &self,
        ctx: &Context<'_>,
        section_id: Uuid,
        user_id: Option<Uuid>,
        #[graphql(default_with = "Some(true)")] visibility: Option<bool>,
        #[graphql(
            default_with = "Some(false)",
            desc = "Staff only: take a seat beyond capacity."
        )]
        override_capacity: Option<bool>,
        #[graphql(
            default_with = "Some(false)",
            desc = "Staff only: ignore overlapping meetings."
        )]
        override_schedule_conflict: Option<bool>,
    ) -> Result<Enrollment> {
        let (store, viewer) = signed_in(ctx)?;
        let request = EnrollRequest {
            section_id,
            user_id,
            visibility: visibility.unwrap_or(true),
            override_capacity: override_capacity.unwrap_or(false),
            override_schedule_conflict: override_schedule_conflict.unwrap_or(false),
        };
        Ok(Enrollment(enroll::enroll(store, viewer, request).await?))
    }

    /// Leaves a course (by the enrolled user or staff of the course): WITHDRAWN, final.
    async fn withdraw(
        &self,
        ctx: &Context<'_>,
        enrollment_id: Uuid,
        reason: Option<String>,
    ) -> Result<Enrollment> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Enrollment(
            transitions::withdraw(store, viewer, enrollment_id, reason).await?,
        ))
    }

    /// Takes an offered seat (offer mode; by the student, or staff of the course for them):
    /// REGISTERED, or PENDING in a section that requires approval. The seat is checked again as
    /// a new one would be: SECTION_INACTIVE, PREREQUISITES_MISSING, SCHEDULE_CONFLICT. After
    /// the deadline: OFFER_EXPIRED, and the seat has gone to the next waiter.
    async fn accept_offer(&self, ctx: &Context<'_>, enrollment_id: Uuid) -> Result<Enrollment> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Enrollment(
            transitions::accept_offer(store, viewer, enrollment_id).await?,
        ))
    }

    /// Turns an offered seat down (by the student, or staff of the course for them):
    /// WITHDRAWN, final; the seat is offered to the next eligible waiter at once.
    async fn decline_offer(&self, ctx: &Context<'_>, enrollment_id: Uuid) -> Result<Enrollment> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Enrollment(
            transitions::decline_offer(store, viewer, enrollment_id).await?,
        ))
    }

    /// Staff cancel an enrollment, with a reason: CANCELLED, final. Cancelling a PENDING
    /// enrollment is how an approval is refused.
    async fn cancel_enrollment(
        &self,
        ctx: &Context<'_>,
        enrollment_id: Uuid,
        reason: String,
        #[graphql(
            desc = "Cancel only if the enrollment is still in this status (else INVALID_TRANSITION \
                    with `extensions.currentStatus`), e.g. PENDING to refuse a request."
        )]
        expected_status: Option<EnrollmentStatus>,
    ) -> Result<Enrollment> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Enrollment(
            transitions::cancel(store, viewer, enrollment_id, reason, expected_status).await?,
        ))
    }

    /// Staff approve a PENDING enrollment: REGISTERED. The seat is checked again as a new one
    /// would be: SECTION_INACTIVE, PREREQUISITES_MISSING, or SCHEDULE_CONFLICT when it now
    /// overlaps another of the student's seats (unless `overrideScheduleConflict`).
    async fn approve_enrollment(
        &self,
        ctx: &Context<'_>,
        enrollment_id: Uuid,
        #[graphql(
            default_with = "Some(false)",
            desc = "Approve despite overlapping meetings (recorded on the event)."
        )]
        override_schedule_conflict: Option<bool>,
    ) -> Result<Enrollment> {
        let (store, viewer) = signed_in(ctx)?;
        let schedule = if override_schedule_conflict.unwrap_or(false) {
            Schedule::Overridden
        } else {
            Schedule::Checked
        };
        Ok(Enrollment(
            transitions::approve(store, viewer, enrollment_id, schedule).await?,
        ))
    }

    /// Staff confirm attendance: COMPLETED; issues the course's certification, once.
    async fn complete_enrollment(
        &self,
        ctx: &Context<'_>,
        enrollment_id: Uuid,
        evidence: Option<Json<serde_json::Value>>,
    ) -> Result<Enrollment> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Enrollment(
            transitions::complete(store, viewer, enrollment_id, evidence.map(|e| e.0)).await?,
        ))
    }

    /// Staff record that a registered student did not complete: FAILED, final.
    async fn fail_enrollment(
        &self,
        ctx: &Context<'_>,
        enrollment_id: Uuid,
        reason: Option<String>,
    ) -> Result<Enrollment> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Enrollment(
            transitions::fail(store, viewer, enrollment_id, reason).await?,
        ))
    }

    /// Moves an enrollment to another section of the same course in one transaction (by the
    /// enrolled user or staff of the course). The new section must have a free seat and nobody
    /// waiting for one, else SECTION_FULL and the old seat or waitlist place is kept. The seat
    /// freed in the old section goes to its earliest waitlisted enrollment.
    async fn switch_section(
        &self,
        ctx: &Context<'_>,
        enrollment_id: Uuid,
        to_section_id: Uuid,
    ) -> Result<Enrollment> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Enrollment(
            switch::switch_section(store, viewer, enrollment_id, to_section_id).await?,
        ))
    }

    /// Staff of the section (of its course, or its teaching assistant) write the enrollment's
    /// internal notes (at most 5000 characters; null clears them). Who and when are recorded.
    async fn set_enrollment_notes(
        &self,
        ctx: &Context<'_>,
        enrollment_id: Uuid,
        notes: Option<String>,
    ) -> Result<Enrollment> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Enrollment(
            enrollments::set_notes(store, viewer, enrollment_id, notes).await?,
        ))
    }

    /// Attendance for a whole session: confirms each enrollment as `completeEnrollment` does
    /// (its own event, its certification once), at most 500, with one result per id in order.
    async fn complete_enrollments(
        &self,
        ctx: &Context<'_>,
        enrollment_ids: Vec<Uuid>,
        evidence: Option<Json<serde_json::Value>>,
    ) -> Result<Vec<BulkResult>> {
        let (store, viewer) = signed_in(ctx)?;
        let results =
            transitions::complete_many(store, viewer, enrollment_ids, evidence.map(|e| e.0))
                .await?;
        Ok(results
            .into_iter()
            .map(|(id, result)| BulkResult::of(id, result))
            .collect())
    }

    /// The enrolled user shows or hides the enrollment from fellow team members.
    async fn set_enrollment_visibility(
        &self,
        ctx: &Context<'_>,
        enrollment_id: Uuid,
        visibility: bool,
    ) -> Result<Enrollment> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Enrollment(
            enrollments::set_visibility(store, viewer, enrollment_id, visibility).await?,
        ))
    }
}

/// Course and section management, for a course's teacher, its organization's coordinators and
/// admins.
#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    /// Creates a course. `teacherId` and `organizationId` default to the caller's.
    async fn create_course(&self, ctx: &Context<'_>, input: CreateCourseInput) -> Result<Course> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Course(
            courses::create_course(store, viewer, input.into()).await?,
        ))
    }

    /// Changes a course; fields left out stay as they are.
    async fn update_course(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdateCourseInput,
    ) -> Result<Course> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Course(
            courses::update_course(store, viewer, id, input.into()).await?,
        ))
    }

    /// Adds a section to a course.
    async fn create_section(
        &self,
        ctx: &Context<'_>,
        input: CreateSectionInput,
    ) -> Result<Section> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Section(
            sections::create_section(store, viewer, input.into()).await?,
        ))
    }

    /// Changes a section. Raising the capacity promotes the earliest waitlisted enrollments.
    async fn update_section(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdateSectionInput,
    ) -> Result<Section> {
        let (store, viewer) = signed_in(ctx)?;
        let (section, _promoted) =
            sections::update_section(store, viewer, id, input.into()).await?;
        Ok(Section(section))
    }
}

/// Teams: a coach creates one with a pass key; members join with it.
#[derive(Default)]
pub struct TeamMutation;

#[Object]
impl TeamMutation {
    /// Creates a team coached by the caller (a teacher, coordinator or admin). Names are unique
    /// case-insensitively (CONFLICT). The pass key (4 to 200 characters) is stored as an Argon2
    /// hash and never returned.
    async fn create_team(&self, ctx: &Context<'_>, name: String, pass_key: String) -> Result<Team> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Team(
            teams::create_team(store, viewer, &name, &pass_key).await?,
        ))
    }

    /// Joins a team with its pass key: INVALID_PASS_KEY when wrong; after 5 wrong keys for one
    /// team within 15 minutes, TOO_MANY_ATTEMPTS (with `extensions.retryAfterSeconds`) until the
    /// window passes; CONFLICT for a member.
    async fn join_team(&self, ctx: &Context<'_>, name: String, pass_key: String) -> Result<Team> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Team(
            teams::join_team(store, viewer, &name, &pass_key).await?,
        ))
    }

    /// Leaves a team; NOT_FOUND when not a member.
    async fn leave_team(&self, ctx: &Context<'_>, team_id: Uuid) -> Result<bool> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(teams::leave_team(store, viewer, team_id).await?)
    }

    /// The coach (or a coordinator of the coach's organization, or an admin) removes a member;
    /// NOT_FOUND when the user is not a member.
    async fn remove_team_member(
        &self,
        ctx: &Context<'_>,
        team_id: Uuid,
        user_id: Uuid,
    ) -> Result<Team> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Team(
            teams::remove_member(store, viewer, team_id, user_id).await?,
        ))
    }

    /// Renames a team or rotates its pass key (the coach, or staff over the coach). Fields left
    /// out stay as they are; members stay.
    async fn update_team(
        &self,
        ctx: &Context<'_>,
        team_id: Uuid,
        name: Option<String>,
        pass_key: Option<String>,
    ) -> Result<Team> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Team(
            teams::update_team(store, viewer, team_id, name.as_deref(), pass_key.as_deref())
                .await?,
        ))
    }
}

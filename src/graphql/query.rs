use async_graphql::{
    Context, MergedObject, Object, Result,
    connection::{Connection, Edge},
};
use entity::types::EnrollmentStatus;
use uuid::Uuid;

use super::{
    RequestContext,
    inputs::{
        CertificationFilter, CourseFilter, EnrollmentEventFilter, EnrollmentFilter, UserFilter,
    },
    loaders::UserKey,
    request,
    types::{
        Certification, CertificationConnection, Course, CourseConnection, CourseConnectionFields,
        Enrollment, EnrollmentConnection, EnrollmentEventConnection, NotificationConnection,
        Oversight, Section, Team, User, UserConnection, certification_page, enrollment_page,
        event_page, notification_page, user_page,
    },
};
use crate::{
    domain::cursor::Cursor,
    error::ApiError,
    service::{courses, discovery, enrollments, notifications, oversight, sections, teams},
};

#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    CatalogQuery,
    AccountQuery,
    TeamQuery,
    StaffQuery,
    super::time::TermQuery,
);

/// Course discovery, open to anonymous visitors.
#[derive(Default)]
pub struct CatalogQuery;

/// Reads `first`, capped by the server's page size limit.
pub(crate) fn page_size(rc: &RequestContext, first: i32) -> Result<u64, ApiError> {
    u64::try_from(first)
        .ok()
        .filter(|n| *n <= rc.max_page_size)
        .ok_or_else(|| {
            ApiError::bad_input(
                "first",
                format!("must be between 0 and {}", rc.max_page_size),
            )
        })
}

#[Object]
impl CatalogQuery {
    /// Discoverable courses (active, with at least one active section), newest first.
    async fn courses(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "Page size, at most 100.")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
        filter: Option<CourseFilter>,
    ) -> Result<CourseConnection> {
        let rc = request(ctx)?;
        let first = page_size(rc, first.unwrap_or(20))?;
        let after = after
            .map(|text| {
                Cursor::decode(&text)
                    .ok_or_else(|| ApiError::bad_input("after", "not a cursor from this API"))
            })
            .transpose()?;
        let filter = discovery::CourseFilter::from(filter.unwrap_or_default());
        let page = discovery::discover(&rc.store, &filter, first, after).await?;
        let node = ctx.look_ahead().field("edges").field("node");
        Course::prime(ctx, &node, &page.courses).await?;
        let mut connection = Connection::with_additional_fields(
            after.is_some(),
            page.has_next_page,
            CourseConnectionFields { filter },
        );
        connection.edges = page
            .courses
            .into_iter()
            .map(|c| {
                let cursor = Cursor {
                    created_at: c.created_at,
                    id: c.id,
                }
                .encode();
                Edge::new(cursor, Course(c))
            })
            .collect();
        Ok(connection)
    }

    /// A course by id. Inactive courses are visible only to those who manage them.
    async fn course(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<Course>> {
        let rc = request(ctx)?;
        Ok(courses::visible_course(&rc.store, rc.viewer.as_ref(), id)
            .await?
            .map(Course))
    }

    /// A section by id. Inactive sections (or sections of inactive courses) are visible only to
    /// those who manage the course.
    async fn section(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<Section>> {
        let rc = request(ctx)?;
        Ok(sections::visible_section(&rc.store, rc.viewer.as_ref(), id)
            .await?
            .map(Section))
    }
}

/// What the signed-in user has.
#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The signed-in user; null when anonymous.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let rc = request(ctx)?;
        Ok(rc.viewer.as_ref().map(|v| User(v.user.clone())))
    }

    /// Another user, as far as the viewer may see them (contact details are limited).
    async fn user(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<User>> {
        let rc = request(ctx)?;
        rc.require_viewer()?;
        Ok(rc.loader.load_one(UserKey::new(id)).await?.map(User))
    }

    /// The viewer's enrollments, newest first; optionally only those with the given statuses.
    async fn my_enrollments(
        &self,
        ctx: &Context<'_>,
        status: Option<Vec<EnrollmentStatus>>,
    ) -> Result<Vec<Enrollment>> {
        let rc = request(ctx)?;
        let viewer = rc.require_viewer()?;
        Ok(enrollments::for_user(&rc.store, viewer.id(), status)
            .await?
            .into_iter()
            .map(Enrollment)
            .collect())
    }

    /// The viewer's notifications, newest first; only unread ones with `unreadOnly`.
    async fn my_notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "Page size, at most the server's limit (100).")]
        first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
        #[graphql(default_with = "Some(false)")] unread_only: Option<bool>,
    ) -> Result<NotificationConnection> {
        notification_page(
            ctx,
            first.unwrap_or(20),
            after,
            unread_only.unwrap_or(false),
        )
        .await
    }

    /// The server's VAPID public key, for the browser's `applicationServerKey` (base64url of
    /// the uncompressed P-256 point); null when Web Push is off.
    async fn vapid_public_key(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let rc = request(ctx)?;
        Ok(rc.store.push().map(|push| push.public_key().to_owned()))
    }

    /// How many of the viewer's notifications are unread.
    async fn unread_notification_count(&self, ctx: &Context<'_>) -> Result<u64> {
        let rc = request(ctx)?;
        let viewer = rc.require_viewer()?;
        Ok(notifications::unread_count(&rc.store, viewer).await?)
    }

    /// The viewer's certifications, newest first (expired ones included; see `isValid`).
    async fn my_certifications(&self, ctx: &Context<'_>) -> Result<Vec<Certification>> {
        let rc = request(ctx)?;
        let viewer = rc.require_viewer()?;
        Ok(enrollments::certifications_of(&rc.store, viewer.id())
            .await?
            .into_iter()
            .map(Certification)
            .collect())
    }
}

/// Teams, for signed-in users.
#[derive(Default)]
pub struct TeamQuery;

#[Object]
impl TeamQuery {
    /// The team of that name, compared case-insensitively.
    async fn team(&self, ctx: &Context<'_>, name: String) -> Result<Option<Team>> {
        let rc = request(ctx)?;
        rc.require_viewer()?;
        let Some(team) = teams::by_name(rc.store.db(), &name).await? else {
            return Ok(None);
        };
        Team::prime(ctx, &ctx.look_ahead(), std::slice::from_ref(&team)).await?;
        Ok(Some(Team(team)))
    }

    /// The teams a user coaches, oldest first.
    async fn teams_by_coach(&self, ctx: &Context<'_>, coach_id: Uuid) -> Result<Vec<Team>> {
        let rc = request(ctx)?;
        rc.require_viewer()?;
        let teams = teams::by_coach(&rc.store, coach_id).await?;
        Team::prime(ctx, &ctx.look_ahead(), &teams).await?;
        Ok(teams.into_iter().map(Team).collect())
    }
}

/// The staff side: rosters and the people to enroll, each within the viewer's scope.
#[derive(Default)]
pub struct StaffQuery;

#[Object]
impl StaffQuery {
    /// Enrollments, newest first, within the viewer's scope: an admin sees all; a coordinator
    /// their organization's courses; a teacher the courses they teach; a teaching assistant
    /// their section; everyone their own. Out of scope is absent, not an error.
    async fn enrollments(
        &self,
        ctx: &Context<'_>,
        filter: Option<EnrollmentFilter>,
        #[graphql(default = 50, desc = "Page size, at most the server's limit (100).")]
        first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> Result<EnrollmentConnection> {
        let filter = filter.unwrap_or_default().into();
        enrollment_page(ctx, filter, first.unwrap_or(50), after).await
    }

    /// The directory to find the person to enroll, alphabetical: an admin sees everyone, a
    /// coordinator their organization, a teacher their organization and those of the courses
    /// they teach; FORBIDDEN for students.
    async fn users(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilter>,
        #[graphql(default = 50, desc = "Page size, at most the server's limit (100).")]
        first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> Result<UserConnection> {
        let filter = filter.unwrap_or_default().into();
        user_page(ctx, filter, first.unwrap_or(50), after).await
    }

    /// Certifications, newest first, within the viewer's scope (as `enrollments`); with
    /// `filter.expiresBefore`, those due for recertification.
    async fn certifications(
        &self,
        ctx: &Context<'_>,
        filter: Option<CertificationFilter>,
        #[graphql(default = 50, desc = "Page size, at most the server's limit (100).")]
        first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> Result<CertificationConnection> {
        let filter = filter.unwrap_or_default().into();
        certification_page(ctx, filter, first.unwrap_or(50), after).await
    }

    /// The audit trail: every status change, newest first, within the viewer's scope (as
    /// `enrollments`). The live feed is the subscription of the same name.
    async fn enrollment_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EnrollmentEventFilter>,
        #[graphql(default = 50, desc = "Page size, at most the server's limit (100).")]
        first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> Result<EnrollmentEventConnection> {
        let filter = filter.unwrap_or_default().into();
        event_page(ctx, filter, first.unwrap_or(50), after).await
    }

    /// Participation in one course (for its staff) or one organization (for its coordinators
    /// and admins): give exactly one of the two ids.
    async fn oversight(
        &self,
        ctx: &Context<'_>,
        course_id: Option<Uuid>,
        organization_id: Option<Uuid>,
    ) -> Result<Oversight> {
        let rc = request(ctx)?;
        let viewer = rc.require_viewer()?;
        let scope = match (course_id, organization_id) {
            (Some(id), None) => oversight::Scope::Course(id),
            (None, Some(id)) => oversight::Scope::Organization(id),
            _ => {
                return Err(ApiError::bad_input(
                    "courseId",
                    "give exactly one of courseId and organizationId",
                )
                .into());
            }
        };
        Ok(Oversight(
            oversight::oversee(&rc.store, viewer, scope).await?,
        ))
    }
}

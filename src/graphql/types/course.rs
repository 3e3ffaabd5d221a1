use async_graphql::{Context, Object, Result, connection::Connection};
use chrono::{DateTime, Utc};
use entity::{course, types::EnrollmentStatus};
use uuid::Uuid;

use super::{Enrollment, EnrollmentConnection, Organization, Section, User, enrollment_page};
use crate::graphql::boxed;
use crate::{
    graphql::{
        loaders::{ActiveSectionsOf, PrerequisitesOf, UserKey, ViewerEnrollmentIn},
        request,
    },
    service::{
        courses,
        discovery::{self, CourseFilter},
        rosters::{self, Approvals, EnrollmentFilter},
    },
};

/// A course: what is taught, by whom, in which sections.
pub struct Course(pub course::Model);

impl Course {
    /// Loads, in one batch per relation, what the selection under `node` asks of `courses`.
    ///
    /// The loader would batch the fields' own lookups too, but only those made within its
    /// collection window; priming makes a page cost the same few statements whatever its size
    /// and however slowly it resolves.
    pub async fn prime(
        ctx: &Context<'_>,
        node: &async_graphql::Lookahead<'_>,
        courses: &[course::Model],
    ) -> Result<()> {
        let rc = request(ctx)?;
        let teachers = async {
            if node.field("teacher").exists() {
                let keys: std::collections::HashSet<_> =
                    courses.iter().map(|c| UserKey::new(c.teacher_id)).collect();
                rc.loader.load_many(keys).await?;
            }
            Ok::<_, std::sync::Arc<sea_orm::DbErr>>(())
        };
        let sections = async {
            let field = node.field("sections");
            if field.exists() {
                rc.loader
                    .load_many(courses.iter().map(|c| ActiveSectionsOf(c.id)))
                    .await?;
            }
            Ok(())
        };
        let enrollments = async {
            if rc.viewer.is_some() && node.field("viewerEnrollment").exists() {
                rc.loader
                    .load_many(courses.iter().map(|c| ViewerEnrollmentIn(c.id)))
                    .await?;
            }
            Ok(())
        };
        futures_util::try_join!(teachers, sections, enrollments)?;
        Ok(())
    }
}

#[Object]
impl Course {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    /// 1 to 255 characters.
    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// Short code such as `CS-101`.
    async fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }

    /// Inactive courses are hidden from discovery.
    async fn is_active(&self) -> bool {
        self.0.is_active
    }

    /// How long the certificate issued on completion stays valid; null: the course issues none.
    async fn certificate_validity_months(&self) -> Option<i32> {
        self.0.certificate_validity_months
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    async fn organization(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        boxed(async move {
            let rc = request(ctx)?;
            rc.node(self.0.organization_id).await
        })
        .await
    }

    async fn teacher(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        boxed(async move {
            let rc = request(ctx)?;
            rc.node(self.0.teacher_id).await
        })
        .await
    }

    /// The course's sections, by name. Inactive ones only for those who manage the course.
    async fn sections(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] include_inactive: bool,
    ) -> Result<Vec<Section>> {
        boxed(async move {
            let rc = request(ctx)?;
            if include_inactive {
                let viewer = rc.require_viewer()?;
                let rows = courses::all_sections(&rc.store, viewer, &self.0).await?;
                return Ok(rows.into_iter().map(Section).collect());
            }
            Ok(rc
                .loader
                .load_one(ActiveSectionsOf(self.0.id))
                .await?
                .map_or_else(Vec::new, |rows| rows.iter().cloned().map(Section).collect()))
        })
        .await
    }

    /// Courses whose unexpired certification is required to enroll.
    async fn prerequisites(&self, ctx: &Context<'_>) -> Result<Vec<Course>> {
        boxed(async move {
            let rc = request(ctx)?;
            Ok(rc
                .loader
                .load_one(PrerequisitesOf(self.0.id))
                .await?
                .unwrap_or_default()
                .into_iter()
                .map(Course)
                .collect())
        })
        .await
    }

    /// The course's enrollments, newest first, optionally only those in `status`: for staff of
    /// the course; FORBIDDEN for anyone else.
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
            rosters::require_course_staff(viewer, &self.0, "see its roster")?;
            let filter = EnrollmentFilter {
                course_id: Some(self.0.id),
                statuses: status,
                ..Default::default()
            };
            enrollment_page(ctx, filter, first.unwrap_or(50), after).await
        })
        .await
    }

    /// PENDING enrollments of every section awaiting approval, oldest request first: for staff
    /// of the course; FORBIDDEN for anyone else.
    async fn pending_approvals(&self, ctx: &Context<'_>) -> Result<Vec<Enrollment>> {
        boxed(async move {
            let rc = request(ctx)?;
            let viewer = rc.require_viewer()?;
            let rows =
                rosters::pending_approvals(&rc.store, viewer, Approvals::Course(&self.0)).await?;
            Ok(rows.into_iter().map(Enrollment).collect())
        })
        .await
    }

    /// The viewer's active (pending, registered or waitlisted) enrollment in this course: the
    /// "Enrolled" badge. Null when anonymous or not enrolled.
    async fn viewer_enrollment(&self, ctx: &Context<'_>) -> Result<Option<Enrollment>> {
        boxed(async move {
            let rc = request(ctx)?;
            if rc.viewer.is_none() {
                return Ok(None);
            }
            Ok(rc
                .loader
                .load_one(ViewerEnrollmentIn(self.0.id))
                .await?
                .flatten()
                .map(Enrollment))
        })
        .await
    }
}

/// Fields of the course connection beyond edges and page info.
pub struct CourseConnectionFields {
    pub filter: CourseFilter,
}

#[Object]
impl CourseConnectionFields {
    /// How many courses match the filter, over all pages. Counted only when asked for.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        boxed(async move {
            let rc = request(ctx)?;
            Ok(discovery::count_discoverable(&rc.store, &self.filter).await?)
        })
        .await
    }
}

pub type CourseConnection = Connection<String, Course, CourseConnectionFields>;

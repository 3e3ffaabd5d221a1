use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};
use entity::{enrollment, team, types::EnrollmentStatus};
use sea_orm::DbErr;
use uuid::Uuid;

use super::{Enrollment, User, users_in_order};
use crate::graphql::boxed;
use crate::{
    domain::visibility,
    graphql::{
        RequestContext,
        loaders::{CourseKey, EnrollmentsOf, MembersOf, SectionKey, TeammatesOf, UserKey},
        request,
    },
};

/// A team (community): a coach, members who joined with its pass key. The pass key is never
/// returned.
pub struct Team(pub team::Model);

impl Team {
    /// Loads, in one batch per relation, what the selection `node` asks of `teams`: members,
    /// their users, their enrollments with what visibility needs (the viewer's team-mates, the
    /// courses) and what the enrollments' own selection asks (course, section). The fields then
    /// read from the request's cache, so a team of any size costs the same few statements
    /// however its resolvers interleave.
    pub async fn prime(
        ctx: &Context<'_>,
        node: &async_graphql::Lookahead<'_>,
        teams: &[team::Model],
    ) -> Result<()> {
        let rc = request(ctx)?;
        let enrollments = node.field("memberEnrollments");
        let wants_members = node.field("members").exists()
            || node.field("memberCount").exists()
            || enrollments.exists();
        let mut user_keys: HashSet<UserKey> = HashSet::new();
        if node.field("coach").exists() {
            user_keys.extend(teams.iter().map(|t| UserKey::new(t.coach_id)));
        }
        let mut member_ids: HashSet<Uuid> = HashSet::new();
        if wants_members {
            let members = rc
                .loader
                .load_many(teams.iter().map(|t| MembersOf(t.id)))
                .await?;
            member_ids.extend(members.values().flatten().map(|m| m.user_id));
        }
        if node.field("members").exists() || enrollments.field("user").exists() {
            user_keys.extend(member_ids.iter().map(|id| UserKey::new(*id)));
        }
        let users = async {
            if !user_keys.is_empty() {
                rc.loader.load_many(user_keys.iter().copied()).await?;
            }
            Ok::<_, Arc<DbErr>>(())
        };
        let member_enrollments = async {
            if !enrollments.exists() {
                return Ok(());
            }
            let rows = rc
                .loader
                .load_many(member_ids.iter().map(|id| EnrollmentsOf(*id)))
                .await?;
            if let Some(viewer) = &rc.viewer {
                rc.loader.load_one(TeammatesOf(viewer.id())).await?;
            }
            let rows: Vec<&enrollment::Model> = rows.values().flatten().collect();
            let staff = rc.viewer.as_ref().is_some_and(|v| v.is_staff());
            let courses = async {
                if staff || enrollments.field("course").exists() {
                    let keys: HashSet<_> =
                        rows.iter().map(|e| CourseKey::new(e.course_id)).collect();
                    rc.loader.load_many(keys).await?;
                }
                Ok::<_, Arc<DbErr>>(())
            };
            let sections = async {
                if enrollments.field("section").exists() {
                    let keys: HashSet<_> =
                        rows.iter().map(|e| SectionKey::new(e.section_id)).collect();
                    rc.loader.load_many(keys).await?;
                }
                Ok(())
            };
            futures_util::try_join!(courses, sections)?;
            Ok(())
        };
        futures_util::try_join!(users, member_enrollments)?;
        Ok(())
    }
}

#[Object]
impl Team {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    /// Unique case-insensitively.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The teacher, coordinator or admin who created it. Not counted among the members.
    async fn coach(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        boxed(async move {
            let rc = request(ctx)?;
            rc.node(self.0.coach_id).await
        })
        .await
    }

    /// Members, earliest joined first.
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        boxed(async move {
            let rc = request(ctx)?;
            let ids = member_ids(rc, self.0.id).await?;
            users_in_order(rc, &ids).await
        })
        .await
    }

    async fn member_count(&self, ctx: &Context<'_>) -> Result<i32> {
        boxed(async move {
            let rc = request(ctx)?;
            Ok(i32::try_from(member_ids(rc, self.0.id).await?.len()).unwrap_or(i32::MAX))
        })
        .await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// What the members take: their active enrollments (PENDING, REGISTERED, WAITLISTED) that
    /// the viewer may see. A member's hidden enrollment is absent for everyone but its owner and
    /// staff of its course.
    async fn member_enrollments(&self, ctx: &Context<'_>) -> Result<Vec<Enrollment>> {
        boxed(async move {
            let rc = request(ctx)?;
            let ids = member_ids(rc, self.0.id).await?;
            let mut by_member = rc
                .loader
                .load_many(ids.iter().map(|id| EnrollmentsOf(*id)))
                .await?;
            let rows: Vec<enrollment::Model> = ids
                .iter()
                .filter_map(|id| by_member.remove(&EnrollmentsOf(*id)))
                .flatten()
                .filter(|e| EnrollmentStatus::ACTIVE.contains(&e.status))
                .collect();
            Ok(visible_to_viewer(rc, rows)
                .await?
                .into_iter()
                .map(Enrollment)
                .collect())
        })
        .await
    }
}

async fn member_ids(rc: &RequestContext, team_id: Uuid) -> Result<Vec<Uuid>> {
    Ok(rc
        .loader
        .load_one(MembersOf(team_id))
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.user_id)
        .collect())
}

/// Keeps the enrollments the viewer may see (seed 000's rule, [`can_see`]), loading what the
/// rule needs in one batch per relation: the viewer's team-mates, and the courses when the
/// viewer is staff.
pub(crate) async fn visible_to_viewer(
    rc: &RequestContext,
    rows: Vec<enrollment::Model>,
) -> Result<Vec<enrollment::Model>> {
    let Some(viewer) = &rc.viewer else {
        return Ok(Vec::new());
    };
    if rows.iter().all(|e| e.user_id == viewer.id()) {
        return Ok(rows);
    }
    let mates = rc
        .loader
        .load_one(TeammatesOf(viewer.id()))
        .await?
        .unwrap_or_default();
    let courses = if viewer.is_staff() {
        rc.loader
            .load_many(rows.iter().map(|e| CourseKey::new(e.course_id)))
            .await?
            .into_iter()
            .map(|(key, course)| (key.0, course))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(visibility::visible_enrollments(
        viewer, rows, &mates, &courses,
    ))
}

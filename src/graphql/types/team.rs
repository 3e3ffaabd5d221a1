use std::collections::HashMap;

use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};
use entity::{enrollment, team, types::EnrollmentStatus};
use uuid::Uuid;

use super::{Enrollment, User};
use crate::{
    domain::visibility::{Standing, can_see},
    graphql::{
        RequestContext,
        loaders::{CourseKey, EnrollmentsOf, MembersOf, TeammatesOf, UserKey},
        request,
    },
};

/// A team (community): a coach, members who joined with its pass key. The pass key is never
/// returned.
pub struct Team(pub team::Model);

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
        let rc = request(ctx)?;
        Ok(rc
            .loader
            .load_one(UserKey(self.0.coach_id))
            .await?
            .map(User))
    }

    /// Members, earliest joined first.
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let rc = request(ctx)?;
        let ids = member_ids(rc, self.0.id).await?;
        let mut users = rc
            .loader
            .load_many(ids.iter().map(|id| UserKey(*id)))
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| users.remove(&UserKey(*id)))
            .map(User)
            .collect())
    }

    async fn member_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let rc = request(ctx)?;
        Ok(i32::try_from(member_ids(rc, self.0.id).await?.len()).unwrap_or(i32::MAX))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// What the members take: their active enrollments (PENDING, REGISTERED, WAITLISTED) that
    /// the viewer may see. A member's hidden enrollment is absent for everyone but its owner and
    /// staff of its course.
    async fn member_enrollments(&self, ctx: &Context<'_>) -> Result<Vec<Enrollment>> {
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
            .load_many(rows.iter().map(|e| CourseKey(e.course_id)))
            .await?
    } else {
        HashMap::new()
    };
    Ok(rows
        .into_iter()
        .filter(|e| {
            let standing = Standing {
                owner: e.user_id == viewer.id(),
                staff_in_scope: courses
                    .get(&CourseKey(e.course_id))
                    .is_some_and(|c| viewer.can_manage_course(c)),
                teammate: mates.contains(&e.user_id),
            };
            can_see(e.visibility, standing)
        })
        .collect())
}

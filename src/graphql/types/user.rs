use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};
use entity::{
    organization,
    types::{EnrollmentStatus, Role},
    user,
};
use uuid::Uuid;

use super::{Enrollment, Team, visible_to_viewer};
use crate::domain::visibility;
use crate::graphql::boxed;
use crate::graphql::{
    RequestContext,
    loaders::{EnrollmentsOf, TeammatesOf, TeamsOf, UserKey},
    request,
};
use crate::service::{calendar, terms};

/// A person: student, teacher, coordinator or admin.
pub struct User(pub user::Model);

#[Object]
impl User {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Picture URL.
    async fn picture(&self) -> Option<&str> {
        self.0.picture.as_deref()
    }

    /// Shown for staff (a course's teacher is a public contact), to the user themself, and to
    /// admins and coordinators of the user's organization; null otherwise.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        let rc = request(ctx)?;
        let visible = visibility::may_see_email(rc.viewer.as_ref(), &self.0);
        Ok(visible.then_some(self.0.email.as_str()))
    }

    /// The secret address of the user's calendar feed (their seats, and the sections they
    /// teach or assist, as RFC 5545 events): only their own, null for others and until made
    /// with `resetCalendarUrl`.
    async fn calendar_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        boxed(async move {
            let rc = request(ctx)?;
            match &rc.viewer {
                Some(viewer) if viewer.id() == self.0.id => {
                    Ok(calendar::url(&rc.store, viewer).await?)
                }
                _ => Ok(None),
            }
        })
        .await
    }

    /// When enrollment opens for the user in a term, if they have a registration appointment
    /// there: for the user themself, the term organization's coordinators and admins; null
    /// otherwise (then the term's `enrollmentOpensAt` applies).
    async fn appointment(&self, ctx: &Context<'_>, term_id: Uuid) -> Result<Option<DateTime<Utc>>> {
        boxed(async move {
            let rc = request(ctx)?;
            Ok(
                terms::appointment_seen_by(&rc.store, rc.viewer.as_ref(), self.0.id, term_id)
                    .await?,
            )
        })
        .await
    }

    async fn role(&self) -> Role {
        self.0.role
    }

    async fn organization(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        boxed(async move {
            let Some(org) = self.0.organization_id else {
                return Ok(None);
            };
            let rc = request(ctx)?;
            rc.node(org).await
        })
        .await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The teams the user belongs to or coaches: for the user, their teammates, and staff over
    /// them (an admin, a coordinator of their organization); empty for anyone else.
    async fn teams(&self, ctx: &Context<'_>) -> Result<Vec<Team>> {
        boxed(async move {
            let rc = request(ctx)?;
            let Some(viewer) = &rc.viewer else {
                return Ok(Vec::new());
            };
            if viewer.id() != self.0.id {
                let mates = rc
                    .loader
                    .load_one(TeammatesOf(viewer.id()))
                    .await?
                    .unwrap_or_default();
                if !visibility::may_see_teams(viewer, &self.0, &mates) {
                    return Ok(Vec::new());
                }
            }
            Ok(rc
                .loader
                .load_one(TeamsOf(self.0.id))
                .await?
                .unwrap_or_default()
                .into_iter()
                .map(Team)
                .collect())
        })
        .await
    }

    /// The user's enrollments that the viewer may see, newest first: all of them for the user
    /// themself and for staff of each course; for a team-mate, those the user made visible;
    /// none for anyone else. Optionally only those in `status`.
    async fn enrollments(
        &self,
        ctx: &Context<'_>,
        status: Option<Vec<EnrollmentStatus>>,
    ) -> Result<Vec<Enrollment>> {
        boxed(async move {
            let rc = request(ctx)?;
            let rows = rc
                .loader
                .load_one(EnrollmentsOf(self.0.id))
                .await?
                .unwrap_or_default()
                .into_iter()
                .filter(|e| status.as_ref().is_none_or(|s| s.contains(&e.status)))
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

/// A local association. Coordinators act only inside their own.
pub struct Organization(pub organization::Model);

#[Object]
impl Organization {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// IANA time zone name (`UTC` unless set): the default of the organization's terms.
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
}

/// The users with `ids`, in that order (unknown ids left out), in one batch.
pub(crate) async fn users_in_order(rc: &RequestContext, ids: &[Uuid]) -> Result<Vec<User>> {
    let mut users = rc
        .loader
        .load_many(ids.iter().map(|id| UserKey::new(*id)))
        .await?;
    Ok(ids
        .iter()
        .filter_map(|id| users.remove(&UserKey::new(*id)))
        .map(User)
        .collect())
}

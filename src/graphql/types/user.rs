use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};
use entity::{organization, types::Role, user};
use uuid::Uuid;

use crate::graphql::{loaders::OrganizationKey, request};

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
        let visible = self.0.role != Role::Student
            || rc.viewer.as_ref().is_some_and(|v| {
                v.id() == self.0.id
                    || v.is_admin()
                    || self.0.organization_id.is_some_and(|org| v.coordinates(org))
            });
        Ok(visible.then_some(self.0.email.as_str()))
    }

    async fn role(&self) -> Role {
        self.0.role
    }

    async fn organization(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        let Some(org) = self.0.organization_id else {
            return Ok(None);
        };
        let rc = request(ctx)?;
        Ok(rc
            .loader
            .load_one(OrganizationKey(org))
            .await?
            .map(Organization))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
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
}

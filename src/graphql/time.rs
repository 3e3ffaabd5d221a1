//! Terms, an organization's time zone, and calendar feed URLs (docs/design.md#time).

use async_graphql::{Context, Object, Result};
use uuid::Uuid;

use super::{
    inputs::{AppointmentGroupInput, CreateTermInput, UpdateOrganizationInput, UpdateTermInput},
    request, signed_in,
    types::{Organization, Term},
};
use crate::service::{calendar, terms};

/// Terms, open to anonymous visitors like discovery.
#[derive(Default)]
pub struct TermQuery;

#[Object]
impl TermQuery {
    /// An organization's terms (every organization's when left out), latest first.
    async fn terms(&self, ctx: &Context<'_>, organization_id: Option<Uuid>) -> Result<Vec<Term>> {
        let rc = request(ctx)?;
        Ok(terms::list(&rc.store, organization_id)
            .await?
            .into_iter()
            .map(Term)
            .collect())
    }

    /// A term by id.
    async fn term(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<Term>> {
        let rc = request(ctx)?;
        Ok(terms::by_id(&rc.store, id).await?.map(Term))
    }
}

/// Managing terms (coordinators of their organization, admins) and one's calendar feed.
#[derive(Default)]
pub struct TermMutation;

#[Object]
impl TermMutation {
    /// Creates a term. Its time zone defaults to the organization's. `BAD_USER_INPUT` names the
    /// field: an unknown time zone, `endsOn` before `startsOn`, a holiday outside the term, a
    /// window that closes before it opens, `dropDeadline` after `withdrawDeadline`.
    async fn create_term(&self, ctx: &Context<'_>, input: CreateTermInput) -> Result<Term> {
        let (store, viewer) = signed_in(ctx)?;
        let organization_id = input.organization_id;
        Ok(Term(
            terms::create_term(store, viewer, organization_id, input.into()).await?,
        ))
    }

    /// Changes a term; the same rules, and sections with dates of their own stay inside it. A
    /// window that opens again promotes waiters into free seats.
    async fn update_term(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdateTermInput,
    ) -> Result<Term> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(Term(
            terms::update_term(store, viewer, id, input.into()).await?,
        ))
    }

    /// Changes an organization (its coordinators, admins): its time zone, the default of the
    /// terms created from now on.
    async fn update_organization(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdateOrganizationInput,
    ) -> Result<Organization> {
        let (store, viewer) = signed_in(ctx)?;
        let organization = match input.time_zone {
            Some(zone) => terms::set_time_zone(store, viewer, id, zone).await?,
            None => terms::organization(store, viewer, id).await?,
        };
        Ok(Organization(organization))
    }

    /// Gives groups of students their own opening time in a term (time tickets), replacing
    /// each one's earlier appointment there; the others open at the term's
    /// `enrollmentOpensAt`. Returns how many students were assigned. Coordinators of the
    /// term's organization and admins; every student must belong to that organization.
    async fn assign_appointments(
        &self,
        ctx: &Context<'_>,
        term_id: Uuid,
        groups: Vec<AppointmentGroupInput>,
    ) -> Result<i32> {
        let (store, viewer) = signed_in(ctx)?;
        let groups = groups
            .into_iter()
            .map(|g| (g.opens_at, g.user_ids))
            .collect();
        let assigned = terms::assign_appointments(store, viewer, term_id, groups).await?;
        Ok(i32::try_from(assigned).unwrap_or(i32::MAX))
    }

    /// Makes the viewer a new calendar feed URL and returns it; the previous one answers 404
    /// from now on.
    async fn reset_calendar_url(&self, ctx: &Context<'_>) -> Result<String> {
        let (store, viewer) = signed_in(ctx)?;
        Ok(calendar::reset(store, viewer).await?)
    }
}

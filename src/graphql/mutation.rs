use async_graphql::{Context, MergedObject, Object, Result};
use uuid::Uuid;

use super::{
    request,
    types::{Course, Section},
};
use crate::service::catalog::{
    self, CreateCourseInput, CreateSectionInput, UpdateCourseInput, UpdateSectionInput,
};

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(CatalogMutation);

/// Course and section management, for a course's teacher, its organization's coordinators and
/// admins.
#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    /// Creates a course. `teacherId` and `organizationId` default to the caller's.
    async fn create_course(&self, ctx: &Context<'_>, input: CreateCourseInput) -> Result<Course> {
        let rc = request(ctx)?;
        let viewer = rc.require_viewer()?;
        Ok(Course(catalog::create_course(&rc.db, viewer, input).await?))
    }

    /// Changes a course; fields left out stay as they are.
    async fn update_course(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdateCourseInput,
    ) -> Result<Course> {
        let rc = request(ctx)?;
        let viewer = rc.require_viewer()?;
        Ok(Course(
            catalog::update_course(&rc.db, viewer, id, input).await?,
        ))
    }

    /// Adds a section to a course.
    async fn create_section(
        &self,
        ctx: &Context<'_>,
        input: CreateSectionInput,
    ) -> Result<Section> {
        let rc = request(ctx)?;
        let viewer = rc.require_viewer()?;
        Ok(Section(
            catalog::create_section(&rc.db, viewer, input).await?,
        ))
    }

    /// Changes a section. Raising the capacity promotes the earliest waitlisted enrollments.
    async fn update_section(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdateSectionInput,
    ) -> Result<Section> {
        let rc = request(ctx)?;
        let viewer = rc.require_viewer()?;
        let (section, _promoted) = catalog::update_section(&rc.db, viewer, id, input).await?;
        Ok(Section(section))
    }
}

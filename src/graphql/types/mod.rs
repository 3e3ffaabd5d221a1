//! GraphQL object types. Each wraps its entity `Model` and resolves relations through the
//! request's loader, so lists of any length cost one statement per relation.

use sea_orm::EntityTrait;
use uuid::Uuid;

use super::{
    RequestContext,
    loaders::{ById, Identified},
};

mod course;
mod enrollment;
mod notification;
mod oversight;
mod section;
mod staff;
mod team;
mod term;
mod user;

pub use course::{Course, CourseConnection, CourseConnectionFields};
pub use enrollment::{Certification, Enrollment, EnrollmentEvent};
pub(crate) use notification::notification_page;
pub use notification::{Notification, NotificationConnection};
pub use oversight::Oversight;
pub use section::Section;
pub use staff::{
    BulkResult, CertificationConnection, EnrollmentConnection, EnrollmentEventConnection,
    UserConnection,
};
pub(crate) use staff::{certification_page, enrollment_page, event_page, user_page};
pub use team::Team;
pub(crate) use team::visible_to_viewer;
pub use term::{Occurrence, Term};
pub(crate) use user::users_in_order;
pub use user::{Organization, User};

/// A GraphQL object that wraps one row of an entity the loader reads by id.
pub(crate) trait Node {
    type Entity: Identified;
    fn wrap(model: <Self::Entity as EntityTrait>::Model) -> Self;
}

macro_rules! nodes {
    ($($object:ident => $entity:ident),*) => {
        $(
            impl Node for $object {
                type Entity = entity::$entity::Entity;
                fn wrap(model: entity::$entity::Model) -> Self {
                    Self(model)
                }
            }
        )*
    };
}

nodes!(
    User => user,
    Course => course,
    Section => section,
    Enrollment => enrollment,
    Organization => organization,
    Term => term
);

impl RequestContext {
    /// The object with this id, through the request's loader (one batch per entity).
    pub(crate) async fn node<N: Node>(&self, id: Uuid) -> async_graphql::Result<Option<N>> {
        Ok(self
            .loader
            .load_one(ById::<N::Entity>::new(id))
            .await?
            .map(N::wrap))
    }
}

//! GraphQL object types. Each wraps its entity `Model` and resolves relations through the
//! request's loader, so lists of any length cost one statement per relation.

mod course;
mod enrollment;
mod section;
mod team;
mod user;

pub use course::{Course, CourseConnection, CourseConnectionFields};
pub use enrollment::{Certification, Enrollment, EnrollmentEvent};
pub use section::Section;
pub use team::Team;
pub(crate) use team::visible_to_viewer;
pub(crate) use user::users_in_order;
pub use user::{Organization, User};

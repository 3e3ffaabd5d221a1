//! The signed-in user a request acts as, and the permission rules every resolver and service
//! asks it (docs/design.md#the-staff-side).

use entity::{course, section, types::Role, user};
use uuid::Uuid;

/// The signed-in user a request acts as.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub user: user::Model,
}

impl Viewer {
    pub fn id(&self) -> Uuid {
        self.user.id
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// Whether the viewer is a coordinator of `organization_id`.
    pub fn coordinates(&self, organization_id: Uuid) -> bool {
        self.user.role == Role::Coordinator && self.user.organization_id == Some(organization_id)
    }

    /// Teacher of the course, coordinator of its organization, or admin.
    pub fn can_manage_course(&self, course: &course::Model) -> bool {
        self.is_admin()
            || self.coordinates(course.organization_id)
            || (self.user.role == Role::Teacher && course.teacher_id == self.user.id)
    }

    /// Whether the viewer is the section's teaching assistant.
    pub fn assists(&self, section: &section::Model) -> bool {
        section.assistant_id == Some(self.user.id)
    }

    /// Staff of the section: staff of its course, or its teaching assistant. Sees its roster,
    /// approves, confirms attendance and writes notes there.
    pub fn staffs_section(&self, course: &course::Model, section: &section::Model) -> bool {
        self.can_manage_course(course) || self.assists(section)
    }

    /// Whether the viewer is staff of some kind (teacher, coordinator or admin).
    pub fn is_staff(&self) -> bool {
        self.user.role != Role::Student
    }
}

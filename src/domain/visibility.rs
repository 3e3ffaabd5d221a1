//! Who sees what of whom (docs/design.md#who-may-do-what), as pure functions over rows the
//! caller has loaded.
//!
//! An enrollment (seed 000) is seen by its owner; staff in scope for its course (the course's
//! teacher, a coordinator of its organization, an admin); and anyone else only when the
//! enrollment is visible and the two share a team (as members or as its coach). Hidden
//! enrollments are simply absent from what others see, never an error. Internal notes are for
//! the staff of the course only; a certification's enrollment for its holder and that staff.

use std::collections::{HashMap, HashSet};

use entity::{course, enrollment, section, types::Role, user};
use uuid::Uuid;

use crate::domain::viewer::Viewer;

/// What the viewer is to one enrollment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Standing {
    /// The viewer is the enrolled user.
    pub owner: bool,
    /// The viewer manages the enrollment's course.
    pub staff_in_scope: bool,
    /// The viewer and the enrolled user belong to a common team.
    pub teammate: bool,
}

/// Whether a viewer with `standing` sees an enrollment whose owner set `visibility`.
pub fn can_see(visibility: bool, standing: Standing) -> bool {
    standing.owner || standing.staff_in_scope || (visibility && standing.teammate)
}

/// The enrollments of `rows` that `viewer` may see. `teammates`: everyone who shares a team
/// with the viewer; `courses`: the courses of the rows (needed only when the viewer is staff).
pub fn visible_enrollments(
    viewer: &Viewer,
    rows: Vec<enrollment::Model>,
    teammates: &HashSet<Uuid>,
    courses: &HashMap<Uuid, course::Model>,
) -> Vec<enrollment::Model> {
    rows.into_iter()
        .filter(|e| {
            let standing = Standing {
                owner: e.user_id == viewer.id(),
                staff_in_scope: courses
                    .get(&e.course_id)
                    .is_some_and(|c| viewer.can_manage_course(c)),
                teammate: teammates.contains(&e.user_id),
            };
            can_see(e.visibility, standing)
        })
        .collect()
}

/// A section's classmates as the viewer sees them: the registered users other than the viewer
/// who made their enrollment visible and share a team with the viewer, in seat order.
pub fn classmates(
    viewer: &Viewer,
    registered: &[enrollment::Model],
    teammates: &HashSet<Uuid>,
) -> Vec<Uuid> {
    registered
        .iter()
        .filter(|e| e.visibility && e.user_id != viewer.id() && teammates.contains(&e.user_id))
        .map(|e| e.user_id)
        .collect()
}

/// Staff of an enrollment's section: staff of its course, or the section's teaching assistant.
/// Internal notes (and who wrote them) are theirs alone, never the enrolled student's.
pub fn is_section_staff(
    viewer: &Viewer,
    course: Option<&course::Model>,
    section: Option<&section::Model>,
) -> bool {
    course.is_some_and(|c| viewer.can_manage_course(c))
        || section.is_some_and(|s| viewer.assists(s))
}

/// A certification's enrollment: for its holder and the staff of its course.
pub fn may_see_certified_enrollment(
    viewer: &Viewer,
    holder: Uuid,
    course: Option<&course::Model>,
) -> bool {
    viewer.id() == holder || course.is_some_and(|c| viewer.can_manage_course(c))
}

/// Another user's teams (and so their teammates): for those teammates and for staff over the
/// user (an admin, a coordinator of the user's organization).
pub fn may_see_teams(
    viewer: &Viewer,
    user: &user::Model,
    viewer_teammates: &HashSet<Uuid>,
) -> bool {
    viewer.id() == user.id
        || viewer_teammates.contains(&user.id)
        || viewer.is_admin()
        || user
            .organization_id
            .is_some_and(|org| viewer.coordinates(org))
}

/// A user's e-mail: public for staff (a course's teacher is a contact); a student's only for
/// the student, admins and coordinators of the student's organization.
pub fn may_see_email(viewer: Option<&Viewer>, user: &user::Model) -> bool {
    user.role != Role::Student
        || viewer.is_some_and(|v| {
            v.id() == user.id
                || v.is_admin()
                || user.organization_id.is_some_and(|org| v.coordinates(org))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_table_of_seed_000() {
        let owner = Standing {
            owner: true,
            ..Default::default()
        };
        let staff = Standing {
            staff_in_scope: true,
            ..Default::default()
        };
        let teammate = Standing {
            teammate: true,
            ..Default::default()
        };
        let stranger = Standing::default();
        for visibility in [true, false] {
            assert!(can_see(visibility, owner));
            assert!(can_see(visibility, staff));
            assert!(!can_see(visibility, stranger));
        }
        assert!(can_see(true, teammate));
        assert!(!can_see(false, teammate));
    }
}

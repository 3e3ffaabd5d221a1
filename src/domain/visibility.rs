//! Who sees an enrollment (seed 000): its owner; staff in scope for its course (the course's
//! teacher, a coordinator of its organization, an admin); and anyone else only when the
//! enrollment is visible and the two share a team (as members or as its coach). Hidden
//! enrollments are simply absent from what others see, never an error.

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

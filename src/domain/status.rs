//! The enrollment state machine of docs/design.md#enrollment-state-machine, as data.

use entity::types::EnrollmentStatus::{self, *};

/// Whether an enrollment may move from `from` to `to`. Final statuses go nowhere; re-enrolling
/// creates a new enrollment.
pub fn can_transition(from: EnrollmentStatus, to: EnrollmentStatus) -> bool {
    matches!(
        (from, to),
        (
            Requested,
            Registered | Pending | Waitlisted | Offered | Withdrawn | Cancelled
        ) | (Pending, Registered | Cancelled | Withdrawn)
            | (Registered, Completed | Failed | Withdrawn | Cancelled)
            | (
                Waitlisted,
                Registered | Pending | Offered | Withdrawn | Cancelled
            )
            | (Offered, Registered | Pending | Withdrawn | Cancelled)
    )
}

/// Whether no transition leaves `status`.
pub fn is_final(status: EnrollmentStatus) -> bool {
    matches!(status, Completed | Failed | Withdrawn | Cancelled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Iterable;

    #[test]
    fn final_statuses_have_no_way_out() {
        for from in EnrollmentStatus::iter().filter(|s| is_final(*s)) {
            for to in EnrollmentStatus::iter() {
                assert!(!can_transition(from, to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn the_table_of_design_md_holds() {
        let allowed: Vec<_> = EnrollmentStatus::iter()
            .flat_map(|f| EnrollmentStatus::iter().map(move |t| (f, t)))
            .filter(|(f, t)| can_transition(*f, *t))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Requested, Pending),
                (Requested, Registered),
                (Requested, Waitlisted),
                (Requested, Offered),
                (Requested, Withdrawn),
                (Requested, Cancelled),
                (Pending, Registered),
                (Pending, Withdrawn),
                (Pending, Cancelled),
                (Registered, Completed),
                (Registered, Failed),
                (Registered, Withdrawn),
                (Registered, Cancelled),
                (Waitlisted, Pending),
                (Waitlisted, Registered),
                (Waitlisted, Offered),
                (Waitlisted, Withdrawn),
                (Waitlisted, Cancelled),
                (Offered, Pending),
                (Offered, Registered),
                (Offered, Withdrawn),
                (Offered, Cancelled),
            ]
        );
    }
}

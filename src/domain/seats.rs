//! A section's seats as arithmetic: the counters on the section row say how many seats are held
//! and how many wait; everything else (free seats, full or not) follows from them here, once.

use entity::section;

/// The seat counters of one section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seats {
    /// `None`: unlimited.
    pub capacity: Option<i32>,
    pub registered: i32,
    /// PENDING enrollments hold a seat while they await approval.
    pub pending: i32,
    /// COMPLETED and FAILED enrollments keep the seat they had (invariant 1).
    pub finished: i32,
    /// OFFERED enrollments hold the seat they were offered until it is accepted, declined or
    /// the offer expires.
    pub offered: i32,
    pub waitlisted: i32,
}

impl Seats {
    /// Seats held: REGISTERED, PENDING, OFFERED, and the finished enrollments (COMPLETED,
    /// FAILED).
    pub fn taken(&self) -> i32 {
        self.registered + self.pending + self.offered + self.finished
    }

    /// Free seats, never negative (a staff override can take a section beyond its capacity);
    /// `None` when the capacity is unlimited.
    pub fn available(&self) -> Option<i32> {
        self.capacity.map(|c| (c - self.taken()).max(0))
    }

    /// Whether no seat is free; never for an unlimited section.
    pub fn is_full(&self) -> bool {
        self.capacity.is_some_and(|c| self.taken() >= c)
    }

    /// How many waiting enrollments the free seats can take now: everyone waiting when the
    /// section is unlimited.
    pub fn promotable(&self) -> u64 {
        let waiting = u64::try_from(self.waitlisted).unwrap_or(0);
        match self.available() {
            None => waiting,
            Some(free) => waiting.min(u64::try_from(free).unwrap_or(0)),
        }
    }
}

impl From<&section::Model> for Seats {
    fn from(section: &section::Model) -> Self {
        Self {
            capacity: section.capacity,
            registered: section.registered_count,
            pending: section.pending_count,
            finished: section.finished_count,
            offered: section.offered_count,
            waitlisted: section.waitlist_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seats(capacity: Option<i32>, registered: i32, pending: i32, waitlisted: i32) -> Seats {
        Seats {
            capacity,
            registered,
            pending,
            finished: 0,
            offered: 0,
            waitlisted,
        }
    }

    #[test]
    fn finished_enrollments_keep_their_seats() {
        let s = Seats {
            finished: 2,
            ..seats(Some(3), 1, 0, 1)
        };
        assert!(s.is_full());
        assert_eq!(s.promotable(), 0);
    }

    #[test]
    fn pending_enrollments_hold_seats() {
        let s = seats(Some(3), 1, 2, 0);
        assert_eq!(s.taken(), 3);
        assert!(s.is_full());
        assert_eq!(s.available(), Some(0));
    }

    #[test]
    fn offered_seats_are_taken() {
        let s = Seats {
            offered: 1,
            ..seats(Some(2), 1, 0, 3)
        };
        assert_eq!(s.taken(), 2);
        assert!(s.is_full());
        assert_eq!(s.promotable(), 0);
    }

    #[test]
    fn an_override_beyond_capacity_leaves_no_negative_seats() {
        let s = seats(Some(2), 3, 0, 4);
        assert_eq!(s.available(), Some(0));
        assert_eq!(s.promotable(), 0);
    }

    #[test]
    fn unlimited_sections_are_never_full_and_promote_everyone() {
        let s = seats(None, 40, 0, 3);
        assert!(!s.is_full());
        assert_eq!(s.available(), None);
        assert_eq!(s.promotable(), 3);
    }

    #[test]
    fn promotion_takes_the_smaller_of_free_seats_and_waiters() {
        assert_eq!(seats(Some(10), 5, 1, 2).promotable(), 2);
        assert_eq!(seats(Some(10), 5, 1, 9).promotable(), 4);
    }
}

//! The orders lists are shown in, decided here rather than by the database's collation, so that
//! both backends (and any PostgreSQL locale) list the same things the same way.

use std::cmp::Ordering;

use entity::section;

/// A course's sections: by name, compared by its bytes (PostgreSQL's `"C"` collation, SQLite's
/// `BINARY`), then by id.
pub fn sections(a: &section::Model, b: &section::Model) -> Ordering {
    a.name
        .as_bytes()
        .cmp(b.name.as_bytes())
        .then_with(|| a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use entity::{section, types::PromotionMode};
    use uuid::Uuid;

    fn named(name: &str, id: u128) -> section::Model {
        let now = Utc::now();
        section::Model {
            id: Uuid::from_u128(id),
            course_id: Uuid::nil(),
            name: name.into(),
            schedule: Default::default(),
            weekdays: 0,
            capacity: None,
            registered_count: 0,
            pending_count: 0,
            waitlist_count: 0,
            finished_count: 0,
            waitlist_seq: 0,
            is_active: true,
            assistant_id: None,
            requires_approval: false,
            waitlist_enabled: true,
            promotion_mode: PromotionMode::Automatic,
            offer_hours: 24,
            offered_count: 0,
            term_id: None,
            starts_on: None,
            ends_on: None,
            enrollment_opens_at: None,
            enrollment_closes_at: None,
            close_noticed_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn sections_go_by_name_bytes_then_id() {
        let mut list = [
            named("b", 1),
            named("B", 2),
            named("Lab", 4),
            named("Lab", 3),
            named("A", 5),
        ];
        list.sort_by(super::sections);
        let order: Vec<(String, u128)> = list
            .iter()
            .map(|s| (s.name.clone(), s.id.as_u128()))
            .collect();
        let expected = [("A", 5), ("B", 2), ("Lab", 3), ("Lab", 4), ("b", 1)];
        let expected: Vec<(String, u128)> =
            expected.iter().map(|(n, i)| ((*n).into(), *i)).collect();
        assert_eq!(order, expected);
    }
}

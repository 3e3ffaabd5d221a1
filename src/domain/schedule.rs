//! Section schedules: `HH:MM` times and whether two weekly schedules overlap.

use entity::types::{Meeting, Schedule};

/// Minutes since midnight for a strict `HH:MM` (00:00 to 23:59).
pub fn parse_time(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn span(meeting: &Meeting) -> Option<(u16, u16)> {
    Some((parse_time(&meeting.start)?, parse_time(&meeting.end)?))
}

/// Whether two meetings share a weekday and overlap in time. Touching ends (10:00–11:00 and
/// 11:00–12:00) do not overlap.
pub fn meetings_overlap(a: &Meeting, b: &Meeting) -> bool {
    if a.weekday != b.weekday {
        return false;
    }
    match (span(a), span(b)) {
        (Some((a_start, a_end)), Some((b_start, b_end))) => a_start < b_end && b_start < a_end,
        _ => false,
    }
}

/// The first pair of overlapping meetings between two schedules, if any.
pub fn first_conflict<'a>(a: &'a Schedule, b: &'a Schedule) -> Option<(&'a Meeting, &'a Meeting)> {
    a.0.iter()
        .flat_map(|x| b.0.iter().map(move |y| (x, y)))
        .find(|(x, y)| meetings_overlap(x, y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::types::Weekday;

    fn meeting(weekday: Weekday, start: &str, end: &str) -> Meeting {
        Meeting {
            weekday,
            start: start.into(),
            end: end.into(),
            room: None,
        }
    }

    #[test]
    fn parse_time_accepts_only_strict_hh_mm() {
        assert_eq!(parse_time("09:30"), Some(570));
        assert_eq!(parse_time("23:59"), Some(1439));
        for bad in ["9:30", "24:00", "12:60", "12-30", "ab:cd", "", "12:3"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn overlapping_meetings_on_the_same_day_conflict() {
        let a = meeting(Weekday::Monday, "09:00", "10:30");
        assert!(meetings_overlap(
            &a,
            &meeting(Weekday::Monday, "10:00", "11:00")
        ));
        assert!(!meetings_overlap(
            &a,
            &meeting(Weekday::Monday, "10:30", "11:00")
        ));
        assert!(!meetings_overlap(
            &a,
            &meeting(Weekday::Tuesday, "09:00", "10:30")
        ));
    }

    #[test]
    fn first_conflict_finds_the_overlapping_pair() {
        let a = Schedule(vec![
            meeting(Weekday::Monday, "09:00", "10:00"),
            meeting(Weekday::Wednesday, "09:00", "10:00"),
        ]);
        let b = Schedule(vec![meeting(Weekday::Wednesday, "09:30", "11:00")]);
        let (x, _) = first_conflict(&a, &b).unwrap();
        assert_eq!(x.weekday, Weekday::Wednesday);
        assert!(first_conflict(&a, &Schedule::default()).is_none());
    }
}

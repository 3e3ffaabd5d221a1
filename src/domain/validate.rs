//! Input limits from seed 004, each failure naming the field it is about.

use entity::types::{Meeting, Schedule};

use super::schedule::parse_time;
use crate::error::ApiError;

pub const COURSE_NAME_MAX: usize = 255;
pub const COURSE_DESCRIPTION_MAX: usize = 5000;
pub const COURSE_CODE_MAX: usize = 50;
pub const SECTION_NAME_MAX: usize = 100;
pub const ROOM_MAX: usize = 100;
pub const MEETINGS_MAX: usize = 21;
pub const CAPACITY_MAX: i32 = 100_000;
pub const VALIDITY_MONTHS_MAX: i32 = 1200;
pub const SEARCH_MAX: usize = 200;
pub const TEAM_NAME_MAX: usize = 100;
pub const PASS_KEY_MIN: usize = 4;
pub const PASS_KEY_MAX: usize = 200;
/// Completion evidence, as compact JSON: a note, a few fields, links to files kept elsewhere.
pub const EVIDENCE_MAX_BYTES: usize = 16 * 1024;

/// Whether `c` may appear in stored text: no control character but tab, line feed and carriage
/// return (SQLite's `length()` stops at a NUL; PostgreSQL refuses it in `text`).
pub fn storable(c: char) -> bool {
    !c.is_control() || matches!(c, '\t' | '\n' | '\r')
}

/// Zero-width and other invisible characters that leave a name looking blank.
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
        )
}

/// A required name: trimmed, 1 to `max` characters, at least one of them visible (a lone
/// control or zero-width character is not a name).
pub fn name(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(ApiError::bad_input(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if value.chars().all(invisible) {
        return Err(ApiError::bad_input(
            field,
            "must contain a visible character",
        ));
    }
    Ok(value.to_owned())
}

/// Completion evidence: at most [`EVIDENCE_MAX_BYTES`] as JSON.
pub fn evidence(value: Option<&serde_json::Value>) -> Result<(), ApiError> {
    let size = value.map_or(0, |v| v.to_string().len());
    if size > EVIDENCE_MAX_BYTES {
        return Err(ApiError::bad_input(
            "evidence",
            format!("must be at most {EVIDENCE_MAX_BYTES} bytes as JSON (it is {size})"),
        ));
    }
    Ok(())
}

/// An optional description: at most `max` characters; blank becomes `None`.
pub fn description(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(ApiError::bad_input(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(Some(value.to_owned()))
}

/// A course code: letters, digits and `-`, at most 50; blank becomes `None`.
pub fn course_code(value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.len() > COURSE_CODE_MAX
        || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(ApiError::bad_input(
            "code",
            format!("must be at most {COURSE_CODE_MAX} letters, digits or '-'"),
        ));
    }
    Ok(Some(value.to_owned()))
}

/// A capacity: `None` is unlimited; otherwise at least 1 (0 is an error, not "unlimited").
pub fn capacity(value: Option<i32>) -> Result<Option<i32>, ApiError> {
    match value {
        Some(c) if !(1..=CAPACITY_MAX).contains(&c) => Err(ApiError::bad_input(
            "capacity",
            format!("must be between 1 and {CAPACITY_MAX}, or null for unlimited"),
        )),
        other => Ok(other),
    }
}

/// The longest an offered seat is held: a week.
pub const OFFER_HOURS_MAX: i32 = 168;

/// Hours an offered seat is held before it passes on (offer mode).
pub fn offer_hours(value: i32) -> Result<i32, ApiError> {
    if (1..=OFFER_HOURS_MAX).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::bad_input(
            "offerHours",
            format!("must be between 1 and {OFFER_HOURS_MAX}"),
        ))
    }
}

/// Months a certificate stays valid: `None` means the course issues none.
pub fn validity_months(value: Option<i32>) -> Result<Option<i32>, ApiError> {
    match value {
        Some(m) if !(1..=VALIDITY_MONTHS_MAX).contains(&m) => Err(ApiError::bad_input(
            "certificateValidityMonths",
            format!("must be between 1 and {VALIDITY_MONTHS_MAX}, or null"),
        )),
        other => Ok(other),
    }
}

/// A weekly schedule: each meeting has `HH:MM` times with start before end.
pub fn schedule(meetings: Vec<Meeting>) -> Result<Schedule, ApiError> {
    if meetings.len() > MEETINGS_MAX {
        return Err(ApiError::bad_input(
            "schedule",
            format!("at most {MEETINGS_MAX} meetings"),
        ));
    }
    let mut checked = Vec::with_capacity(meetings.len());
    for (i, mut m) in meetings.into_iter().enumerate() {
        let start = parse_time(m.start.trim())
            .ok_or_else(|| ApiError::bad_input(format!("schedule[{i}].start"), "must be HH:MM"))?;
        let end = parse_time(m.end.trim())
            .ok_or_else(|| ApiError::bad_input(format!("schedule[{i}].end"), "must be HH:MM"))?;
        if start >= end {
            return Err(ApiError::bad_input(
                format!("schedule[{i}].end"),
                "must be after start",
            ));
        }
        m.start = m.start.trim().to_owned();
        m.end = m.end.trim().to_owned();
        m.room = description(&format!("schedule[{i}].room"), m.room.as_deref(), ROOM_MAX)?;
        checked.push(m);
    }
    Ok(Schedule(checked))
}

/// A team pass key: 4 to 200 characters, taken as given (spaces count).
pub fn pass_key(value: &str) -> Result<&str, ApiError> {
    let len = value.chars().count();
    if !(PASS_KEY_MIN..=PASS_KEY_MAX).contains(&len) {
        return Err(ApiError::bad_input(
            "passKey",
            format!("must be {PASS_KEY_MIN} to {PASS_KEY_MAX} characters"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::types::Weekday;

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::BadUserInput { field, .. } => field,
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("name", "  Algebra ", 255).unwrap(), "Algebra");
        assert_eq!(field_of(name("name", "   ", 255).unwrap_err()), "name");
        assert!(name("name", &"x".repeat(256), 255).is_err());
        assert!(name("name", &"é".repeat(255), 255).is_ok());
    }

    #[test]
    fn codes_allow_letters_digits_and_dashes() {
        assert_eq!(
            course_code(Some("CS-101")).unwrap().as_deref(),
            Some("CS-101")
        );
        assert_eq!(course_code(Some("  ")).unwrap(), None);
        assert_eq!(field_of(course_code(Some("CS 101")).unwrap_err()), "code");
        assert!(course_code(Some(&"A".repeat(51))).is_err());
    }

    #[test]
    fn zero_capacity_is_rejected_not_unlimited() {
        assert_eq!(capacity(None).unwrap(), None);
        assert_eq!(capacity(Some(1)).unwrap(), Some(1));
        assert_eq!(field_of(capacity(Some(0)).unwrap_err()), "capacity");
        assert!(capacity(Some(-3)).is_err());
    }

    #[test]
    fn schedule_meetings_need_start_before_end() {
        let m = |start: &str, end: &str| Meeting {
            weekday: Weekday::Monday,
            start: start.into(),
            end: end.into(),
            room: Some("A1".into()),
        };
        assert!(schedule(vec![m("09:00", "10:00")]).is_ok());
        assert_eq!(
            field_of(schedule(vec![m("09:00", "10:00"), m("10:00", "10:00")]).unwrap_err()),
            "schedule[1].end"
        );
        assert_eq!(
            field_of(schedule(vec![m("9am", "10:00")]).unwrap_err()),
            "schedule[0].start"
        );
    }
}

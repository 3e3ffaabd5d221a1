//! Opaque keyset cursors.
//!
//! A cursor names the last row of a page by its sort key (`created_at`, `id`), not by an offset,
//! so rows inserted between two page requests neither repeat nor vanish from later pages.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The sort key of a row in a "newest first, ties by id" listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// The opaque text handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "v1:{}:{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    /// Reads a cursor produced by [`Cursor::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, ':');
        if parts.next()? != "v1" {
            return None;
        }
        let micros = parts.next()?.parse().ok()?;
        let id = parts.next()?.parse().ok()?;
        let created_at = DateTime::from_timestamp_micros(micros)?;
        // Both databases store years 1 to 9999 alike; a time outside them is no cursor of ours.
        if !(1..=9999).contains(&chrono::Datelike::year(&created_at)) {
            return None;
        }
        Some(Self { created_at, id })
    }
}

/// The sort key of a row in an "alphabetical, ties by id" listing (the user directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameCursor {
    pub name: String,
    pub id: Uuid,
}

impl NameCursor {
    /// The opaque text handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("n1:{}:{}", self.id, self.name))
    }

    /// Reads a cursor produced by [`NameCursor::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let rest = text.strip_prefix("n1:")?;
        let (id, name) = rest.split_once(':')?;
        // No name holds a NUL (PostgreSQL's text cannot), so no cursor does: refused here,
        // it cannot reach the database as a parameter it rejects.
        if name.contains('\0') {
            return None;
        }
        Some(Self {
            id: id.parse().ok()?,
            name: name.to_owned(),
        })
    }
}

/// The sort key of a row in a listing by integer key, newest first (the audit trail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SerialCursor(pub i64);

impl SerialCursor {
    /// The opaque text handed to clients.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("s1:{}", self.0))
    }

    /// Reads a cursor produced by [`SerialCursor::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        text.strip_prefix("s1:")?.parse().ok().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn a_name_cursor_holding_a_nul_is_not_a_cursor() {
        let text = URL_SAFE_NO_PAD.encode(format!("n1:{}:Ada\0", Uuid::new_v4()));
        assert_eq!(NameCursor::decode(&text), None);
    }

    #[test]
    fn name_cursors_round_trip_names_with_colons() {
        let cursor = NameCursor {
            name: "Ada: Lovelace".into(),
            id: Uuid::new_v4(),
        };
        assert_eq!(NameCursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn a_time_no_database_stores_is_not_a_cursor() {
        let text = URL_SAFE_NO_PAD.encode(format!("v1:{}:{}", i64::MAX / 2, Uuid::nil()));
        assert_eq!(Cursor::decode(&text), None);
    }

    #[test]
    fn serial_cursors_round_trip_and_refuse_other_cursors() {
        let cursor = SerialCursor(9_007_199_254_740_993);
        assert_eq!(SerialCursor::decode(&cursor.encode()), Some(cursor));
        let other = Cursor {
            created_at: DateTime::from_timestamp_micros(1).unwrap(),
            id: Uuid::nil(),
        };
        assert_eq!(SerialCursor::decode(&other.encode()), None);
        assert_eq!(SerialCursor::decode(&URL_SAFE_NO_PAD.encode("s1:x")), None);
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("v2:1:x")), None);
        assert_eq!(Cursor::decode(""), None);
    }
}

//! Time (docs/design.md#time): where a section's weekly meetings fall on real dates, whether two
//! sections' meetings overlap on some date, a section's enrollment window, and the deadline
//! ladder of a withdrawal.
//!
//! A meeting is a wall-clock time in the term's time zone on every matching weekday between the
//! section's dates, holidays excepted: a daylight-saving change moves its UTC instant, never its
//! local time. A section without a term meets every week with no end, as before terms existed.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use entity::{
    section, term,
    types::{EnrollmentRecord, Meeting, Schedule, Weekday},
};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{ical, schedule::meetings_overlap};
use crate::error::ApiError;

/// The dates a section meets on: its first and last date, the term's time zone and holidays
/// (sorted, as [`Span::new`] keeps them). The calendar feed's [`ical::Dates`] under the name
/// the rules use.
pub use super::ical::Dates as Span;

impl Span {
    /// A section's span, its holidays sorted.
    pub fn new(
        starts_on: NaiveDate,
        ends_on: NaiveDate,
        tz: Tz,
        mut holidays: Vec<NaiveDate>,
    ) -> Self {
        holidays.sort_unstable();
        Self {
            starts_on,
            ends_on,
            tz,
            holidays,
        }
    }

    fn is_holiday(&self, date: NaiveDate) -> bool {
        self.holidays.binary_search(&date).is_ok()
    }

    /// Whether the section meets on `date` (a date of its span, not a holiday).
    pub fn meets_on(&self, date: NaiveDate) -> bool {
        (self.starts_on..=self.ends_on).contains(&date) && !self.is_holiday(date)
    }
}

/// A time zone by its IANA name (`Europe/Berlin`, `UTC`).
pub fn time_zone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

/// The weekday of a date, in the schedule's terms.
pub fn weekday_of(date: NaiveDate) -> Weekday {
    Weekday::ALL[date.weekday().num_days_from_monday() as usize]
}

/// The first date on or after `from` that falls on `weekday`.
pub fn first_on_or_after(from: NaiveDate, weekday: Weekday) -> NaiveDate {
    let ahead = (weekday as i64 - i64::from(from.weekday().num_days_from_monday())).rem_euclid(7);
    from + Duration::days(ahead)
}

/// One dated meeting of a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence<'a> {
    pub date: NaiveDate,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub meeting: &'a Meeting,
}

/// Every dated meeting of `schedule` over `span`, in time order: what the calendar feed's
/// recurrences expand to ([`ical::occurrences`] decides, so the feed and this list cannot
/// disagree). A local time a daylight-saving change skips is read with the offset before the
/// change (an hour later on the clock); a repeated one as its first instance.
pub fn occurrences<'a>(schedule: &'a Schedule, span: &Span) -> Vec<Occurrence<'a>> {
    let mut out = Vec::new();
    for meeting in &schedule.0 {
        let Some(pattern) = ical::FeedMeeting::of(meeting) else {
            continue;
        };
        for (starts_at, ends_at) in ical::occurrences(&pattern, span) {
            out.push(Occurrence {
                date: starts_at.with_timezone(&span.tz).date_naive(),
                starts_at,
                ends_at,
                meeting,
            });
        }
    }
    out.sort_by_key(|o| (o.starts_at, o.ends_at));
    out
}

/// A section's meetings in time: its weekly schedule and, in a term, its span.
#[derive(Clone, Copy, Debug)]
pub struct Dated<'a> {
    pub schedule: &'a Schedule,
    pub span: Option<&'a Span>,
}

/// Where two sections' meetings first overlap: the meeting of the first, and the date (`None`
/// when neither has dates: they overlap every week).
pub type Clash<'a> = (&'a Meeting, Option<NaiveDate>);

/// The first meeting of `a` that overlaps a meeting of `b` on the same date, if any (invariant
/// 7 on real occurrences). Sections in different terms, or in parts of a term whose dates do
/// not meet, never conflict; a meeting on a holiday does not take place. Two sections of one
/// time zone (or one without dates) are compared in wall-clock time, date by date; two of
/// different time zones by the instants of their occurrences.
pub fn first_conflict<'a>(a: Dated<'a>, b: Dated<'_>) -> Option<Clash<'a>> {
    match (a.span, b.span) {
        (Some(x), Some(y)) if x.tz != y.tz => first_conflict_across_zones(a.schedule, x, b, y),
        _ => {
            for m in &a.schedule.0 {
                for n in &b.schedule.0 {
                    if !meetings_overlap(m, n) {
                        continue;
                    }
                    match shared_date(a.span, b.span, m.weekday) {
                        Shared::Weekly => return Some((m, None)),
                        Shared::On(date) => return Some((m, Some(date))),
                        Shared::Never => {}
                    }
                }
            }
            None
        }
    }
}

enum Shared {
    /// Neither has dates.
    Weekly,
    On(NaiveDate),
    Never,
}

/// The first date with `weekday` on which both spans meet (a missing span meets every week).
fn shared_date(a: Option<&Span>, b: Option<&Span>, weekday: Weekday) -> Shared {
    let (from, to) = match (a, b) {
        (None, None) => return Shared::Weekly,
        (Some(s), None) | (None, Some(s)) => (s.starts_on, s.ends_on),
        (Some(x), Some(y)) => (x.starts_on.max(y.starts_on), x.ends_on.min(y.ends_on)),
    };
    let mut date = first_on_or_after(from, weekday);
    while date <= to {
        if a.is_none_or(|s| s.meets_on(date)) && b.is_none_or(|s| s.meets_on(date)) {
            return Shared::On(date);
        }
        date += Duration::days(7);
    }
    Shared::Never
}

fn first_conflict_across_zones<'a>(
    schedule: &'a Schedule,
    x: &Span,
    b: Dated<'_>,
    y: &Span,
) -> Option<Clash<'a>> {
    // A term has at most a few hundred occurrences: comparing every pair is cheap.
    let theirs = occurrences(b.schedule, y);
    occurrences(schedule, x)
        .into_iter()
        .find(|m| {
            theirs
                .iter()
                .any(|t| m.starts_at < t.ends_at && t.starts_at < m.ends_at)
        })
        .map(|m| (m.meeting, Some(m.date)))
}

/// A section's enrollment window: its own bounds, else its term's; `None` is unbounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
}

/// Where `at` stands in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowState {
    NotOpen(DateTime<Utc>),
    Open,
    Closed(DateTime<Utc>),
}

impl WindowState {
    /// What a student outside the window is told, and the event's `outsideWindow` when staff
    /// act for them there; `None` while it is open.
    pub fn refusal(self) -> Option<(&'static str, ApiError)> {
        match self {
            Self::Open => None,
            Self::NotOpen(opens_at) => Some(("NOT_OPEN", ApiError::EnrollmentNotOpen { opens_at })),
            Self::Closed(closed_at) => Some(("CLOSED", ApiError::EnrollmentClosed { closed_at })),
        }
    }
}

impl Window {
    /// Before `opens_at` the window is not open; from `closes_at` on it is closed.
    pub fn at(&self, at: DateTime<Utc>) -> WindowState {
        match (self.opens_at, self.closes_at) {
            (Some(opens), _) if at < opens => WindowState::NotOpen(opens),
            (_, Some(closes)) if at >= closes => WindowState::Closed(closes),
            _ => WindowState::Open,
        }
    }

    /// Whether the window has closed at `at` (promotions and offers stop then).
    pub fn is_closed(&self, at: DateTime<Utc>) -> bool {
        self.closes_at.is_some_and(|closes| at >= closes)
    }
}

/// A term's withdrawal deadlines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deadlines {
    pub drop: Option<DateTime<Utc>>,
    pub withdraw: Option<DateTime<Utc>>,
}

/// What a withdrawal at a time leaves, and whether a student may still make it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ladder {
    pub record: EnrollmentRecord,
    /// After the withdrawal deadline: students may not withdraw; staff may, recorded late.
    pub past_deadline: bool,
}

impl Deadlines {
    /// Up to and including the drop deadline a withdrawal leaves no record; up to and including
    /// the withdrawal deadline it is a `W`; after that only staff may withdraw (still a `W`).
    pub fn at(&self, at: DateTime<Utc>) -> Ladder {
        let dropped = self.drop.is_none_or(|d| at <= d);
        Ladder {
            record: if dropped {
                EnrollmentRecord::None
            } else {
                EnrollmentRecord::W
            },
            past_deadline: self.withdraw.is_some_and(|d| at > d),
        }
    }
}

/// The dates a section of `term` meets on: its own dates, else the term's.
pub fn span(section: &section::Model, term: Option<&term::Model>) -> Option<Span> {
    let term = term?;
    Some(Span::new(
        section.starts_on.unwrap_or(term.starts_on),
        section.ends_on.unwrap_or(term.ends_on),
        time_zone(&term.time_zone).unwrap_or(chrono_tz::UTC),
        term.holidays.0.clone(),
    ))
}

/// A section's enrollment window: its own bounds, else its term's.
pub fn window(section: &section::Model, term: Option<&term::Model>) -> Window {
    Window {
        opens_at: section
            .enrollment_opens_at
            .or(term.and_then(|t| t.enrollment_opens_at)),
        closes_at: section
            .enrollment_closes_at
            .or(term.and_then(|t| t.enrollment_closes_at)),
    }
}

/// A student's window in a section: with an appointment in the section's term, it opens at
/// the appointment (or at the section's own opening, if that is later) instead of the term's.
pub fn window_for(
    section: &section::Model,
    term: Option<&term::Model>,
    appointment: Option<DateTime<Utc>>,
) -> Window {
    let mut window = window(section, term);
    if let Some(at) = appointment {
        window.opens_at = Some(section.enrollment_opens_at.map_or(at, |own| own.max(at)));
    }
    window
}

/// A term's withdrawal deadlines (none without a term).
pub fn deadlines(term: Option<&term::Model>) -> Deadlines {
    term.map_or_else(Deadlines::default, |t| Deadlines {
        drop: t.drop_deadline,
        withdraw: t.withdraw_deadline,
    })
}

/// The key calendar tokens are derived with, and the public address their URLs start with.
#[derive(Clone)]
pub struct CalendarLinks {
    key: [u8; 32],
    base_url: String,
}

impl std::fmt::Debug for CalendarLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalendarLinks")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Default for CalendarLinks {
    /// A key of this process alone, for tests and tools that serve no feed.
    fn default() -> Self {
        Self::new(rand::rng().random(), "http://127.0.0.1:8080")
    }
}

impl CalendarLinks {
    /// `key`: 32 secret bytes kept across restarts (derived from the server's signing secret);
    /// `base_url`: where clients reach this server, such as `https://roster.example.edu`.
    pub fn new(key: [u8; 32], base_url: &str) -> Self {
        Self {
            key,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The token of `user_id`'s feed with `nonce`: 43 characters of base64url.
    pub fn token(&self, user_id: Uuid, nonce: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(user_id.as_bytes());
        mac.update(nonce.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    pub fn url(&self, token: &str) -> String {
        format!("{}/calendar/{token}.ics", self.base_url)
    }
}

/// The SHA-256 of a token, hex: what the database keeps.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `text` has the shape of a token (so anything else is refused without a read).
pub fn is_token(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meeting(weekday: Weekday, start: &str, end: &str) -> Meeting {
        Meeting {
            weekday,
            start: start.into(),
            end: end.into(),
            room: None,
        }
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn span(from: &str, to: &str, tz: &str, holidays: &[&str]) -> Span {
        Span::new(
            date(from),
            date(to),
            time_zone(tz).unwrap(),
            holidays.iter().map(|d| date(d)).collect(),
        )
    }

    #[test]
    fn meetings_keep_their_wall_clock_time_across_daylight_saving() {
        let schedule = Schedule(vec![meeting(Weekday::Monday, "09:00", "10:30")]);
        let fall = span(
            "2026-09-01",
            "2026-12-15",
            "America/New_York",
            &["2026-10-12"],
        );
        let all = occurrences(&schedule, &fall);
        assert_eq!(all.len(), 14, "15 Mondays less Columbus Day");
        assert!(all.iter().all(|o| o.date != date("2026-10-12")));
        let before = all.iter().find(|o| o.date == date("2026-10-26")).unwrap();
        let after = all.iter().find(|o| o.date == date("2026-11-02")).unwrap();
        assert_eq!(before.starts_at.to_rfc3339(), "2026-10-26T13:00:00+00:00");
        assert_eq!(after.starts_at.to_rfc3339(), "2026-11-02T14:00:00+00:00");
        assert_eq!(after.ends_at - after.starts_at, Duration::minutes(90));
    }

    #[test]
    fn different_terms_and_halves_of_a_term_never_conflict() {
        let a = Schedule(vec![meeting(Weekday::Tuesday, "10:00", "11:00")]);
        let fall = span("2026-09-01", "2026-12-15", "UTC", &[]);
        let spring = span("2027-01-10", "2027-05-01", "UTC", &[]);
        let first_half = span("2026-09-01", "2026-10-20", "UTC", &[]);
        let second_half = span("2026-10-21", "2026-12-15", "UTC", &[]);
        let dated = |span| Dated {
            schedule: &a,
            span: Some(span),
        };
        assert!(first_conflict(dated(&fall), dated(&spring)).is_none());
        assert!(first_conflict(dated(&first_half), dated(&second_half)).is_none());
        let (_, on) = first_conflict(dated(&fall), dated(&first_half)).unwrap();
        assert_eq!(on, Some(date("2026-09-01")));
    }

    #[test]
    fn an_overlap_on_a_single_date_conflicts_and_a_holiday_does_not() {
        let a = Schedule(vec![meeting(Weekday::Friday, "14:00", "16:00")]);
        let b = Schedule(vec![meeting(Weekday::Friday, "15:00", "17:00")]);
        let term = span("2026-09-01", "2026-12-15", "Europe/Berlin", &[]);
        // The workshop meets on one Friday only.
        let workshop = span("2026-10-02", "2026-10-02", "Europe/Berlin", &[]);
        let on_holiday = span("2026-10-02", "2026-10-02", "Europe/Berlin", &["2026-10-02"]);
        let (m, on) = first_conflict(
            Dated {
                schedule: &a,
                span: Some(&term),
            },
            Dated {
                schedule: &b,
                span: Some(&workshop),
            },
        )
        .unwrap();
        assert_eq!((m.start.as_str(), on), ("14:00", Some(date("2026-10-02"))));
        assert!(
            first_conflict(
                Dated {
                    schedule: &a,
                    span: Some(&term)
                },
                Dated {
                    schedule: &b,
                    span: Some(&on_holiday)
                },
            )
            .is_none()
        );
    }

    #[test]
    fn sections_without_dates_conflict_weekly_as_before() {
        let a = Schedule(vec![meeting(Weekday::Monday, "09:00", "10:00")]);
        let b = Schedule(vec![meeting(Weekday::Monday, "09:30", "10:30")]);
        let undated = |s| Dated {
            schedule: s,
            span: None,
        };
        assert_eq!(first_conflict(undated(&a), undated(&b)).unwrap().1, None);
        let term = span("2026-09-01", "2026-09-06", "UTC", &[]);
        // A week without a Monday: the undated section meets every Monday, this one never.
        assert!(
            first_conflict(
                undated(&a),
                Dated {
                    schedule: &b,
                    span: Some(&term)
                }
            )
            .is_none()
        );
    }

    #[test]
    fn sections_of_different_zones_compare_instants() {
        // 15:00 in Berlin is 09:00 in New York (both on summer time in September).
        let berlin = Schedule(vec![meeting(Weekday::Wednesday, "15:00", "16:00")]);
        let new_york = Schedule(vec![meeting(Weekday::Wednesday, "09:30", "10:00")]);
        let late_ny = Schedule(vec![meeting(Weekday::Wednesday, "15:00", "16:00")]);
        let eu = span("2026-09-01", "2026-09-30", "Europe/Berlin", &[]);
        let us = span("2026-09-01", "2026-09-30", "America/New_York", &[]);
        let at = |s, sp| Dated {
            schedule: s,
            span: Some(sp),
        };
        assert!(first_conflict(at(&berlin, &eu), at(&new_york, &us)).is_some());
        assert!(first_conflict(at(&berlin, &eu), at(&late_ny, &us)).is_none());
    }

    #[test]
    fn the_window_and_the_deadline_ladder() {
        let t = |h| DateTime::<Utc>::UNIX_EPOCH + Duration::hours(h);
        let window = Window {
            opens_at: Some(t(10)),
            closes_at: Some(t(20)),
        };
        assert_eq!(window.at(t(9)), WindowState::NotOpen(t(10)));
        assert_eq!(window.at(t(10)), WindowState::Open);
        assert_eq!(window.at(t(20)), WindowState::Closed(t(20)));
        assert_eq!(Window::default().at(t(0)), WindowState::Open);
        let deadlines = Deadlines {
            drop: Some(t(10)),
            withdraw: Some(t(20)),
        };
        assert_eq!(deadlines.at(t(10)).record, EnrollmentRecord::None);
        assert_eq!(deadlines.at(t(11)).record, EnrollmentRecord::W);
        assert!(!deadlines.at(t(20)).past_deadline);
        assert!(deadlines.at(t(21)).past_deadline);
        assert_eq!(
            Deadlines::default().at(t(99)),
            Ladder {
                record: EnrollmentRecord::None,
                past_deadline: false
            }
        );
    }

    #[test]
    fn tokens_depend_on_the_key_the_user_and_the_nonce() {
        let links = CalendarLinks::new([7; 32], "https://roster.example/");
        let user = Uuid::nil();
        let token = links.token(user, "a");
        assert!(is_token(&token), "{token}");
        assert_eq!(token, links.token(user, "a"));
        assert_ne!(token, links.token(user, "b"));
        assert_ne!(token, links.token(Uuid::max(), "a"));
        assert_ne!(token, CalendarLinks::new([8; 32], "x").token(user, "a"));
        assert_eq!(
            links.url(&token),
            format!("https://roster.example/calendar/{token}.ics")
        );
        assert!(!is_token("../../etc/passwd"));
        assert_eq!(token_hash(&token).len(), 64);
    }
}

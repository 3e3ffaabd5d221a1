//! A user's calendar feed as RFC 5545 iCalendar text.
//!
//! Every meeting pattern of a section becomes one weekly recurring `VEVENT`.
//! Dated sections are written in local wall-clock time with a `TZID`, so a
//! class at 09:00 stays at 09:00 across a daylight-saving change; each zone
//! in use gets a `VTIMEZONE` derived from chrono-tz. The output is a pure
//! function of the input, so an ETag over it is stable.
//!
//! Two gaps in the `icalendar` crate (0.17) are worked around here:
//! * it has no public way to build a `VTIMEZONE` (its generic `Other`
//!   component is not exported), so the time-zone blocks are written as a
//!   sequence of calendar-level [`Property`] lines, which the crate emits in
//!   order before the events;
//! * its line folding can leave a final continuation line of 76 octets, and
//!   its text escaping leaves carriage returns raw, so text is normalised
//!   before it is handed over and the finished document is re-folded.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::{OffsetComponents, OffsetName, Tz};
use icalendar::{Calendar, CalendarDateTime, Component, Event, EventLike, Property};

/// One section of the feed: a recurring event per meeting pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSection {
    /// Identity of the section; part of every event's UID.
    pub section_id: uuid::Uuid,
    /// Human-readable course name, e.g. "Linear Algebra".
    pub course_name: String,
    /// Short course code, e.g. "MATH201".
    pub course_code: String,
    /// Name of the section within the course, e.g. "Lecture A".
    pub section_name: String,
    /// Teacher shown in the event description, if known.
    pub teacher: Option<String>,
    /// Weekly meeting patterns; each becomes one recurring event.
    pub meetings: Vec<FeedMeeting>,
    /// None: the section has no dates (weekly forever), see [`render`].
    pub dates: Option<Dates>,
    /// Last change to anything shown (for LAST-MODIFIED / DTSTAMP stability).
    pub updated_at: DateTime<Utc>,
}

/// A weekly meeting pattern of a section, in the section's local wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMeeting {
    /// Day of the week the section meets.
    pub weekday: Weekday,
    /// Local start time.
    pub start: NaiveTime,
    /// Local end time; an end before the start means the meeting ends the next day.
    pub end: NaiveTime,
    /// Room shown as the event location, if any.
    pub room: Option<String>,
}

impl FeedMeeting {
    /// A section's weekly meeting as a pattern; `None` for times that are not `HH:MM` (input
    /// is validated, so only rows written otherwise).
    pub fn of(meeting: &entity::types::Meeting) -> Option<Self> {
        let time = |text: &str| {
            let minutes = super::schedule::parse_time(text)?;
            NaiveTime::from_hms_opt(u32::from(minutes / 60), u32::from(minutes % 60), 0)
        };
        Some(Self {
            weekday: Weekday::try_from(meeting.weekday as u8).ok()?,
            start: time(&meeting.start)?,
            end: time(&meeting.end)?,
            room: meeting.room.clone(),
        })
    }
}

/// The dated range of a section and the zone its wall-clock times belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dates {
    /// First day on which a meeting may take place (inclusive).
    pub starts_on: NaiveDate,
    /// Last day on which a meeting may take place (inclusive).
    pub ends_on: NaiveDate,
    /// Zone of the meeting times.
    pub tz: Tz,
    /// Days without meetings; only those on a meeting's weekday matter.
    pub holidays: Vec<NaiveDate>,
}

const PRODID: &str = "-//Roster//Calendar feed//EN";
/// RFC 5545 `DATE-TIME` in local (or `TZID`-qualified) form.
const LOCAL_FORMAT: &str = "%Y%m%dT%H%M%S";
/// RFC 5545 `DATE-TIME` in UTC form.
const UTC_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// RFC 5545 §3.1: content lines SHOULD NOT be longer than 75 octets.
const MAX_LINE_OCTETS: usize = 75;
/// Onset written for the observance in effect before the first transition.
const EPOCH_ONSET: &str = "19700101T000000";
/// Step of the scan for offset changes; transitions are found exactly by bisection.
const SCAN_STEP_SECONDS: i64 = 24 * 3600;
/// How far before the first event the time-zone definition reaches.
const ZONE_LEAD: TimeDelta = TimeDelta::days(366);

/// The calendar named `name` with every section's events. Deterministic: the same input gives the same bytes (so an ETag over it is stable); no "now" inside except through `stamp`.
///
/// The order of `sections` and of their meetings does not matter. A dated
/// meeting without any occurrence in its range is left out. A section
/// without dates repeats weekly without end, starting on the first matching
/// weekday on or after the date of its `updated_at`, with its times read as
/// UTC.
pub fn render(name: &str, sections: &[FeedSection], stamp: DateTime<Utc>) -> String {
    let mut sections: Vec<&FeedSection> = sections.iter().collect();
    sections.sort_by_key(|section| section.section_id);

    let mut events = Vec::new();
    let mut zones: BTreeMap<&'static str, ZoneSpan> = BTreeMap::new();
    let mut has_undated = false;

    for section in sections {
        let mut meetings: Vec<&FeedMeeting> = section.meetings.iter().collect();
        meetings.sort_by(|a, b| {
            (a.weekday.num_days_from_monday(), a.start, a.end, &a.room).cmp(&(
                b.weekday.num_days_from_monday(),
                b.start,
                b.end,
                &b.room,
            ))
        });
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for meeting in meetings {
            let key = uid_key(section.section_id, meeting);
            let count = seen.entry(key.clone()).or_insert(0);
            *count += 1;
            let uid = if *count == 1 {
                format!("{key}@roster")
            } else {
                format!("{key}-{count}@roster")
            };

            let mut event = describe(section, meeting, &uid, stamp);
            match &section.dates {
                Some(dates) => {
                    let Some(series) = Series::new(meeting, dates) else {
                        continue;
                    };
                    if !series.schedule(&mut event) {
                        continue;
                    }
                    zones
                        .entry(dates.tz.name())
                        .or_insert_with(|| ZoneSpan::new(dates.tz))
                        .widen(series.first_start, series.last_end());
                }
                None => {
                    if !schedule_undated(&mut event, meeting, section.updated_at) {
                        continue;
                    }
                    has_undated = true;
                }
            }
            events.push(event);
        }
    }

    let mut calendar = Calendar::empty();
    calendar
        .append_property(("PRODID", PRODID))
        .append_property(("VERSION", "2.0"))
        .append_property(("CALSCALE", "GREGORIAN"))
        .append_property(("METHOD", "PUBLISH"))
        .name(&text_value(name));
    // A calendar-wide zone only when every event is written in that one zone.
    if !has_undated
        && zones.len() == 1
        && let Some(span) = zones.values().next()
    {
        calendar.timezone(span.tz);
    }
    for span in zones.values() {
        for property in span.vtimezone() {
            calendar.append_property(property);
        }
    }
    for event in events {
        calendar.push(event);
    }
    refold(&calendar.to_string())
}

/// The dated occurrences of one meeting pattern (what the feed's RRULE/EXDATE expand to), as (start, end) in UTC, for testing and for the product's own list.
///
/// Times are local to `dates.tz`; a local time that does not exist (skipped
/// by a daylight-saving change) uses the offset before the change, and an
/// ambiguous one its first instance (RFC 5545 §3.3.5). Every occurrence
/// lasts as long as the first one (RFC 5545 §3.8.5.3).
pub fn occurrences(meeting: &FeedMeeting, dates: &Dates) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    Series::new(meeting, dates).map_or_else(Vec::new, |series| series.occurrences())
}

/// The expanded form of one dated meeting pattern.
struct Series {
    tz: Tz,
    first: NaiveDate,
    last: NaiveDate,
    start: NaiveTime,
    end: NaiveTime,
    /// Days between a meeting's start date and its end date (0 or 1).
    end_days: u64,
    excluded: BTreeSet<NaiveDate>,
    first_start: DateTime<Utc>,
    duration: TimeDelta,
}

impl Series {
    /// None when the pattern has no date in the range or its times cannot be placed.
    fn new(meeting: &FeedMeeting, dates: &Dates) -> Option<Self> {
        let first = first_on_or_after(dates.starts_on, meeting.weekday)?;
        let last = last_on_or_before(dates.ends_on, meeting.weekday)?;
        if first > last {
            return None;
        }
        let start = whole_seconds(meeting.start);
        let end = whole_seconds(meeting.end);
        let end_days = u64::from(end < start);
        let excluded = dates
            .holidays
            .iter()
            .copied()
            .filter(|day| day.weekday() == meeting.weekday && first <= *day && *day <= last)
            .collect();
        let first_start = local_to_utc(dates.tz, first.and_time(start))?;
        let first_end = local_to_utc(
            dates.tz,
            first.checked_add_days(Days::new(end_days))?.and_time(end),
        )?;
        Some(Self {
            tz: dates.tz,
            first,
            last,
            start,
            end,
            end_days,
            excluded,
            first_start,
            duration: first_end - first_start,
        })
    }

    /// Every date matched by the weekly rule, holidays included.
    fn rule_dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        std::iter::successors(Some(self.first), |day| day.checked_add_days(Days::new(7)))
            .take_while(|day| *day <= self.last)
    }

    fn occurrences(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.rule_dates()
            .filter(|day| !self.excluded.contains(day))
            .filter_map(|day| {
                let start = local_to_utc(self.tz, day.and_time(self.start))?;
                Some((start, start.checked_add_signed(self.duration)?))
            })
            .collect()
    }

    /// UTC instant of the rule's last start, the RRULE's UNTIL.
    fn until(&self) -> Option<DateTime<Utc>> {
        local_to_utc(self.tz, self.last.and_time(self.start))
    }

    /// Upper bound of the instants the feed refers to, for the zone definition.
    fn last_end(&self) -> DateTime<Utc> {
        self.until()
            .and_then(|until| until.checked_add_signed(self.duration))
            .unwrap_or(self.first_start)
    }

    /// Writes DTSTART, DTEND, RRULE and EXDATE; false when the pattern has no occurrence.
    fn schedule(&self, event: &mut Event) -> bool {
        let (Some(until), Some(end_day)) = (
            self.until(),
            self.first.checked_add_days(Days::new(self.end_days)),
        ) else {
            return false;
        };
        if self.occurrences().is_empty() {
            return false;
        }
        let zoned = |date_time: NaiveDateTime| CalendarDateTime::WithTimezone {
            date_time,
            tzid: self.tz.name().to_owned(),
        };
        event
            .starts(zoned(self.first.and_time(self.start)))
            .ends(zoned(end_day.and_time(self.end)))
            .add_property(
                "RRULE",
                format!("FREQ=WEEKLY;UNTIL={}", until.format(UTC_FORMAT)),
            );
        for day in &self.excluded {
            event.exdate(zoned(day.and_time(self.start)));
        }
        true
    }
}

/// Writes the open-ended weekly schedule of a section without dates; false if it cannot be placed.
fn schedule_undated(event: &mut Event, meeting: &FeedMeeting, updated_at: DateTime<Utc>) -> bool {
    let start = whole_seconds(meeting.start);
    let end = whole_seconds(meeting.end);
    let Some(first) = first_on_or_after(updated_at.date_naive(), meeting.weekday) else {
        return false;
    };
    let Some(end_day) = first.checked_add_days(Days::new(u64::from(end < start))) else {
        return false;
    };
    event
        .starts(CalendarDateTime::Utc(first.and_time(start).and_utc()))
        .ends(CalendarDateTime::Utc(end_day.and_time(end).and_utc()))
        .add_property("RRULE", "FREQ=WEEKLY");
    true
}

/// The event with everything but its schedule: identity, stamps and texts.
fn describe(
    section: &FeedSection,
    meeting: &FeedMeeting,
    uid: &str,
    stamp: DateTime<Utc>,
) -> Event {
    let summary = format!(
        "{} {} — {}",
        section.course_code, section.course_name, section.section_name
    );
    let mut description = format!(
        "Section: {}\nCourse: {} {}",
        section.section_name, section.course_code, section.course_name
    );
    if let Some(teacher) = section.teacher.as_deref().filter(|t| !t.trim().is_empty()) {
        description.push_str("\nTeacher: ");
        description.push_str(teacher);
    }
    let mut event = Event::new();
    event
        .uid(uid)
        .timestamp(stamp)
        .last_modified(section.updated_at)
        .summary(&text_value(&summary))
        .description(&text_value(&description));
    if let Some(room) = meeting.room.as_deref().filter(|r| !r.trim().is_empty()) {
        event.location(&text_value(room));
    }
    event.done()
}

/// UID prefix of a meeting pattern: stable across renders and independent of meeting order.
fn uid_key(section_id: uuid::Uuid, meeting: &FeedMeeting) -> String {
    let day = match meeting.weekday {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    };
    format!(
        "{section_id}-{day}-{:02}{:02}",
        meeting.start.hour(),
        meeting.start.minute()
    )
}

/// Text the crate can escape correctly: line breaks as LF, no other control characters.
///
/// The crate escapes backslash, comma, semicolon and LF, but would pass a CR
/// through raw, which breaks the content line.
fn text_value(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
        .collect()
}

fn whole_seconds(time: NaiveTime) -> NaiveTime {
    time.with_nanosecond(0).unwrap_or(time)
}

fn first_on_or_after(day: NaiveDate, weekday: Weekday) -> Option<NaiveDate> {
    let ahead = (7 + weekday.num_days_from_monday() - day.weekday().num_days_from_monday()) % 7;
    day.checked_add_days(Days::new(u64::from(ahead)))
}

fn last_on_or_before(day: NaiveDate, weekday: Weekday) -> Option<NaiveDate> {
    let back = (7 + day.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
    day.checked_sub_days(Days::new(u64::from(back)))
}

/// The instant a local wall-clock time denotes in `tz`, as RFC 5545 §3.3.5 reads it.
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(instant) => Some(instant.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, second) => Some(first.min(second).with_timezone(&Utc)),
        LocalResult::None => {
            // Skipped by a forward change: use the offset in effect before it.
            let before = local.checked_sub_signed(TimeDelta::days(1))?;
            let offset = tz.offset_from_local_datetime(&before).earliest()?.fix();
            let utc = local
                .checked_sub_signed(TimeDelta::seconds(i64::from(offset.local_minus_utc())))?;
            Some(utc.and_utc())
        }
    }
}

/// A zone in use and the instants the feed needs it for.
struct ZoneSpan {
    tz: Tz,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl ZoneSpan {
    fn new(tz: Tz) -> Self {
        Self {
            tz,
            first: None,
            last: None,
        }
    }

    fn widen(&mut self, first: DateTime<Utc>, last: DateTime<Utc>) {
        self.first = Some(self.first.map_or(first, |known| known.min(first)));
        self.last = Some(self.last.map_or(last, |known| known.max(last)));
    }

    /// The `VTIMEZONE` block, one content line per property.
    ///
    /// The observance in effect a year before the first event is written
    /// with an onset of 1970 (so a zone without changes gets exactly one
    /// sub-component); every offset change up to the last event follows as
    /// its own sub-component whose onset is the local time before the change.
    fn vtimezone(&self) -> Vec<Property> {
        let mut lines = vec![
            Property::new("BEGIN", "VTIMEZONE"),
            Property::new("TZID", self.tz.name()),
        ];
        if let (Some(first), Some(last)) = (self.first, self.last) {
            let from = first
                .checked_sub_signed(ZONE_LEAD)
                .unwrap_or(first)
                .timestamp();
            if let Some(initial) = Observance::at(self.tz, from) {
                push_observance(&mut lines, &initial, &initial, EPOCH_ONSET.to_owned());
            }
            for change in transitions(self.tz, from, last.timestamp()) {
                let onset = change
                    .at
                    .checked_add(i64::from(change.before.offset))
                    .and_then(|local| DateTime::from_timestamp(local, 0));
                if let Some(onset) = onset {
                    push_observance(
                        &mut lines,
                        &change.before,
                        &change.after,
                        onset.format(LOCAL_FORMAT).to_string(),
                    );
                }
            }
        }
        lines.push(Property::new("END", "VTIMEZONE"));
        lines
    }
}

/// What a zone says about an instant: total offset, whether it is daylight time, and its abbreviation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observance {
    offset: i32,
    daylight: bool,
    name: Option<String>,
}

impl Observance {
    fn at(tz: Tz, timestamp: i64) -> Option<Self> {
        let instant = DateTime::from_timestamp(timestamp, 0)?;
        let offset = tz.offset_from_utc_datetime(&instant.naive_utc());
        Some(Self {
            offset: offset.fix().local_minus_utc(),
            daylight: !offset.dst_offset().is_zero(),
            name: offset.abbreviation().map(str::to_owned),
        })
    }
}

/// A change of observance at a UTC instant (seconds since the epoch).
struct Transition {
    at: i64,
    before: Observance,
    after: Observance,
}

/// Every change of observance in `(from, to]`, to the exact second.
///
/// chrono-tz does not expose its transition table, so the offsets are
/// sampled at [`SCAN_STEP_SECONDS`] and each change is bisected.
fn transitions(tz: Tz, from: i64, to: i64) -> Vec<Transition> {
    let mut found = Vec::new();
    let Some(mut current) = Observance::at(tz, from) else {
        return found;
    };
    let mut at = from;
    while at < to {
        let next = at.saturating_add(SCAN_STEP_SECONDS).min(to);
        let Some(sample) = Observance::at(tz, next) else {
            break;
        };
        if sample == current {
            at = next;
            continue;
        }
        // Invariant: observance at `low` is `current`, at `high` it is not.
        let (mut low, mut high) = (at, next);
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if Observance::at(tz, middle).as_ref() == Some(&current) {
                low = middle;
            } else {
                high = middle;
            }
        }
        let Some(after) = Observance::at(tz, high) else {
            break;
        };
        found.push(Transition {
            at: high,
            before: current,
            after: after.clone(),
        });
        current = after;
        at = high;
    }
    found
}

fn push_observance(
    lines: &mut Vec<Property>,
    before: &Observance,
    after: &Observance,
    onset: String,
) {
    let kind = if after.daylight {
        "DAYLIGHT"
    } else {
        "STANDARD"
    };
    lines.push(Property::new("BEGIN", kind));
    lines.push(Property::new("DTSTART", onset));
    lines.push(Property::new("TZOFFSETFROM", utc_offset(before.offset)));
    lines.push(Property::new("TZOFFSETTO", utc_offset(after.offset)));
    if let Some(name) = &after.name {
        lines.push(Property::new("TZNAME", text_value(name)));
    }
    lines.push(Property::new("END", kind));
}

/// RFC 5545 `UTC-OFFSET`: ±HHMM, or ±HHMMSS when seconds are not zero; never -0000.
fn utc_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let magnitude = seconds.unsigned_abs();
    let (hours, minutes, secs) = (magnitude / 3600, magnitude % 3600 / 60, magnitude % 60);
    if secs == 0 {
        format!("{sign}{hours:02}{minutes:02}")
    } else {
        format!("{sign}{hours:02}{minutes:02}{secs:02}")
    }
}

/// Re-folds a CRLF document so that no physical line exceeds 75 octets.
///
/// The crate folds first lines at 75 octets but lets the last continuation
/// line reach 76 (75 content octets plus the leading space); unfolding and
/// folding again on UTF-8 boundaries fixes that without touching content.
fn refold(document: &str) -> String {
    let mut out = String::with_capacity(document.len() + document.len() / 24);
    let mut logical = String::new();
    for physical in document.split("\r\n") {
        if let Some(continuation) = physical.strip_prefix([' ', '\t']) {
            logical.push_str(continuation);
            continue;
        }
        if !logical.is_empty() {
            fold_into(&mut out, &logical);
        }
        logical.clear();
        logical.push_str(physical);
    }
    if !logical.is_empty() {
        fold_into(&mut out, &logical);
    }
    out
}

fn fold_into(out: &mut String, line: &str) {
    let mut rest = line;
    let mut limit = MAX_LINE_OCTETS;
    while rest.len() > limit {
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push_str(head);
        out.push_str("\r\n ");
        rest = tail;
        // A continuation line starts with the folding space.
        limit = MAX_LINE_OCTETS - 1;
    }
    out.push_str(rest);
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    fn time(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).expect("valid test time")
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid test instant")
    }

    fn meeting(weekday: Weekday, start: (u32, u32), end: (u32, u32)) -> FeedMeeting {
        FeedMeeting {
            weekday,
            start: time(start.0, start.1),
            end: time(end.0, end.1),
            room: Some("B-101".to_owned()),
        }
    }

    fn fall_2026(tz: Tz, holidays: Vec<NaiveDate>) -> Dates {
        Dates {
            starts_on: day(2026, 9, 1),
            ends_on: day(2026, 12, 15),
            tz,
            holidays,
        }
    }

    fn section(id: u128, meetings: Vec<FeedMeeting>, dates: Option<Dates>) -> FeedSection {
        FeedSection {
            section_id: uuid::Uuid::from_u128(id),
            course_name: "Linear Algebra".to_owned(),
            course_code: "MATH201".to_owned(),
            section_name: "Lecture A".to_owned(),
            teacher: Some("Ada Lovelace".to_owned()),
            meetings,
            dates,
            updated_at: utc(2026, 8, 20, 12, 30),
        }
    }

    fn stamp() -> DateTime<Utc> {
        utc(2026, 8, 25, 8, 0)
    }

    /// The document with folds undone, one logical content line per entry.
    fn logical_lines(document: &str) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for physical in document.split("\r\n") {
            match (physical.strip_prefix(' '), lines.last_mut()) {
                (Some(continuation), Some(last)) => last.push_str(continuation),
                _ => lines.push(physical.to_owned()),
            }
        }
        if lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    }

    fn values<'a>(lines: &'a [String], prefix: &str) -> Vec<&'a str> {
        lines
            .iter()
            .filter_map(|line| line.strip_prefix(prefix))
            .collect()
    }

    #[test]
    fn calendar_header_is_complete() {
        let feed = render("My classes", &[], stamp());
        let lines = logical_lines(&feed);
        assert_eq!(lines.first().map(String::as_str), Some("BEGIN:VCALENDAR"));
        assert_eq!(lines.last().map(String::as_str), Some("END:VCALENDAR"));
        for expected in [
            "VERSION:2.0",
            "PRODID:-//Roster//Calendar feed//EN",
            "CALSCALE:GREGORIAN",
            "METHOD:PUBLISH",
            "X-WR-CALNAME:My classes",
        ] {
            assert!(lines.iter().any(|l| l == expected), "missing {expected}");
        }
    }

    #[test]
    fn uids_are_stable_and_unique_per_meeting_pattern() {
        let meetings = vec![
            meeting(Weekday::Mon, (9, 0), (10, 30)),
            meeting(Weekday::Wed, (9, 0), (10, 30)),
            meeting(Weekday::Mon, (14, 0), (15, 0)),
        ];
        let dates = Some(fall_2026(chrono_tz::America::New_York, vec![]));
        let forward = section(7, meetings.clone(), dates.clone());
        let mut reversed_meetings = meetings;
        reversed_meetings.reverse();
        let reversed = section(7, reversed_meetings, dates.clone());

        let a = render("x", std::slice::from_ref(&forward), stamp());
        let b = render("x", &[reversed], stamp());
        let lines_a = logical_lines(&a);
        let uids_a = values(&lines_a, "UID:");
        let lines_b = logical_lines(&b);
        let uids_b = values(&lines_b, "UID:");
        assert_eq!(uids_a, uids_b, "UIDs depend on meeting order");
        let id = forward.section_id;
        assert_eq!(
            uids_a,
            vec![
                format!("{id}-MO-0900@roster"),
                format!("{id}-MO-1400@roster"),
                format!("{id}-WE-0900@roster"),
            ]
        );

        // A later render with changed content keeps the UIDs.
        let mut changed = forward.clone();
        changed.course_name = "Linear Algebra II".to_owned();
        changed.updated_at = utc(2026, 9, 3, 10, 0);
        let c = render("x", &[changed], utc(2026, 9, 4, 0, 0));
        let lines_c = logical_lines(&c);
        assert_eq!(values(&lines_c, "UID:"), uids_a);

        // Another section never shares a UID; duplicated patterns stay distinct.
        let mut twin = forward;
        twin.meetings.push(meeting(Weekday::Mon, (9, 0), (10, 0)));
        let other = section(8, vec![meeting(Weekday::Mon, (9, 0), (10, 30))], dates);
        let both = render("x", &[twin, other], stamp());
        let lines_both = logical_lines(&both);
        let all = values(&lines_both, "UID:");
        let unique: BTreeSet<&str> = all.iter().copied().collect();
        assert_eq!(all.len(), 5);
        assert_eq!(unique.len(), all.len(), "duplicate UID in {all:?}");
    }

    #[test]
    fn rendering_is_deterministic() {
        let sections = vec![
            section(
                1,
                vec![meeting(Weekday::Tue, (8, 0), (9, 0))],
                Some(fall_2026(chrono_tz::Europe::Berlin, vec![day(2026, 10, 6)])),
            ),
            section(
                2,
                vec![meeting(Weekday::Mon, (9, 0), (10, 30))],
                Some(fall_2026(chrono_tz::America::New_York, vec![])),
            ),
            section(3, vec![meeting(Weekday::Fri, (12, 0), (13, 0))], None),
        ];
        let first = render("Feed", &sections, stamp());
        let second = render("Feed", &sections, stamp());
        assert_eq!(first, second);
        let mut shuffled = sections;
        shuffled.reverse();
        assert_eq!(first, render("Feed", &shuffled, stamp()));
        assert!(first.contains(&format!("DTSTAMP:{}\r\n", stamp().format(UTC_FORMAT))));
        assert!(first.contains("LAST-MODIFIED:20260820T123000Z\r\n"));
    }

    #[test]
    fn text_is_escaped_and_lines_are_folded_with_crlf() {
        let mut s = section(
            1,
            vec![meeting(Weekday::Mon, (9, 0), (10, 30))],
            Some(fall_2026(chrono_tz::America::New_York, vec![])),
        );
        s.course_name = "Art, Design; Theory\\Practice\nLab\r\nPart 2".to_owned();
        s.teacher = Some("Smith; J., PhD".to_owned());
        let feed = render("Cal; one, two", &[s], stamp());

        assert!(
            !feed.replace("\r\n", "").contains(['\r', '\n']),
            "bare CR/LF"
        );
        assert!(feed.ends_with("END:VCALENDAR\r\n"));
        for physical in feed.split("\r\n") {
            assert!(physical.len() <= MAX_LINE_OCTETS, "too long: {physical:?}");
        }
        let lines = logical_lines(&feed);
        assert_eq!(
            values(&lines, "SUMMARY:"),
            vec![r"MATH201 Art\, Design\; Theory\\Practice\nLab\nPart 2 — Lecture A"]
        );
        assert_eq!(
            values(&lines, "DESCRIPTION:"),
            vec![
                r"Section: Lecture A\nCourse: MATH201 Art\, Design\; Theory\\Practice\nLab\nPart 2\nTeacher: Smith\; J.\, PhD"
            ]
        );
        assert_eq!(values(&lines, "X-WR-CALNAME:"), vec![r"Cal\; one\, two"]);
        assert_eq!(values(&lines, "LOCATION:"), vec!["B-101"]);
    }

    #[test]
    fn every_line_length_folds_within_75_octets() {
        // Names of every length around the fold points, ASCII and multi-byte.
        for filler in ["x", "é", "漢", "😀"] {
            for repeat in 0..200 {
                let mut s = section(1, vec![meeting(Weekday::Mon, (9, 0), (10, 0))], None);
                s.course_name = filler.repeat(repeat);
                let feed = render("c", &[s], stamp());
                for physical in feed.split("\r\n") {
                    assert!(
                        physical.len() <= MAX_LINE_OCTETS,
                        "{} octets: {physical:?}",
                        physical.len()
                    );
                }
                let lines = logical_lines(&feed);
                let expected = format!("MATH201 {} — Lecture A", filler.repeat(repeat));
                assert_eq!(values(&lines, "SUMMARY:"), vec![expected.as_str()]);
            }
        }
    }

    #[test]
    fn occurrences_keep_wall_clock_across_dst() {
        let monday = meeting(Weekday::Mon, (9, 0), (10, 30));
        let dates = fall_2026(chrono_tz::America::New_York, vec![day(2026, 10, 12)]);
        let got = occurrences(&monday, &dates);
        // Mondays from 2026-09-07 to 2026-12-14: 15, less the 2026-10-12 holiday.
        assert_eq!(got.len(), 14);
        assert_eq!(got.first().map(|o| o.0), Some(utc(2026, 9, 7, 13, 0)));
        assert_eq!(got.last().map(|o| o.0), Some(utc(2026, 12, 14, 14, 0)));
        assert!(!got.iter().any(|(s, _)| s.date_naive() == day(2026, 10, 12)));
        let switch = utc(2026, 11, 1, 6, 0);
        for (start, end) in &got {
            let expected_hour = if *start < switch { 13 } else { 14 };
            assert_eq!(start.hour(), expected_hour, "{start}");
            assert_eq!(start.minute(), 0);
            assert_eq!(start.with_timezone(&dates.tz).time(), time(9, 0));
            assert_eq!(start.with_timezone(&dates.tz).weekday(), Weekday::Mon);
            assert_eq!(*end - *start, TimeDelta::minutes(90));
        }
    }

    #[test]
    fn dated_event_has_tzid_rrule_until_and_exdate() {
        let s = section(
            1,
            vec![meeting(Weekday::Mon, (9, 0), (10, 30))],
            Some(fall_2026(
                chrono_tz::America::New_York,
                vec![day(2026, 10, 12), day(2026, 10, 13), day(2027, 1, 4)],
            )),
        );
        let feed = render("c", &[s], stamp());
        let lines = logical_lines(&feed);
        assert_eq!(
            values(&lines, "DTSTART;TZID=America/New_York:"),
            vec!["20260907T090000"]
        );
        assert_eq!(
            values(&lines, "DTEND;TZID=America/New_York:"),
            vec!["20260907T103000"]
        );
        assert_eq!(
            values(&lines, "RRULE:"),
            vec!["FREQ=WEEKLY;UNTIL=20261214T140000Z"]
        );
        assert_eq!(
            values(&lines, "EXDATE;TZID=America/New_York:"),
            vec!["20261012T090000"]
        );
        assert_eq!(values(&lines, "X-WR-TIMEZONE:"), vec!["America/New_York"]);
    }

    #[test]
    fn meeting_without_occurrence_is_left_out() {
        let short = Dates {
            starts_on: day(2026, 9, 1), // Tuesday
            ends_on: day(2026, 9, 6),   // Sunday
            tz: chrono_tz::Europe::Berlin,
            holidays: vec![day(2026, 9, 3)],
        };
        let s = section(
            1,
            vec![
                meeting(Weekday::Mon, (9, 0), (10, 0)),
                meeting(Weekday::Thu, (9, 0), (10, 0)),
                meeting(Weekday::Fri, (9, 0), (10, 0)),
            ],
            Some(short.clone()),
        );
        assert!(occurrences(&meeting(Weekday::Mon, (9, 0), (10, 0)), &short).is_empty());
        let feed = render("c", &[s], stamp());
        let lines = logical_lines(&feed);
        // Monday is outside the range, Thursday's only date is a holiday.
        assert_eq!(values(&lines, "BEGIN:VEVENT").len(), 1);
        assert_eq!(
            values(&lines, "DTSTART;TZID=Europe/Berlin:"),
            vec!["20260904T090000"]
        );
    }

    fn vtimezone_block(feed: &str, tzid: &str) -> Vec<String> {
        let lines = logical_lines(feed);
        let start = lines
            .iter()
            .position(|l| l == &format!("TZID:{tzid}"))
            .expect("VTIMEZONE present");
        let end = lines
            .iter()
            .skip(start)
            .position(|l| l == "END:VTIMEZONE")
            .expect("VTIMEZONE closed");
        lines
            .get(start.saturating_sub(1)..=start + end)
            .expect("in range")
            .to_vec()
    }

    #[test]
    fn vtimezone_describes_new_york_transitions() {
        let s = section(
            1,
            vec![meeting(Weekday::Mon, (9, 0), (10, 30))],
            Some(fall_2026(chrono_tz::America::New_York, vec![])),
        );
        let feed = render("c", &[s], stamp());
        let block = vtimezone_block(&feed, "America/New_York").join("\n");
        let expected = "\
BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:DAYLIGHT
DTSTART:19700101T000000
TZOFFSETFROM:-0400
TZOFFSETTO:-0400
TZNAME:EDT
END:DAYLIGHT
BEGIN:STANDARD
DTSTART:20251102T020000
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
TZNAME:EST
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:20260308T020000
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
TZNAME:EDT
END:DAYLIGHT
BEGIN:STANDARD
DTSTART:20261101T020000
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
TZNAME:EST
END:STANDARD
END:VTIMEZONE";
        assert_eq!(block, expected);
        assert_eq!(feed.matches("BEGIN:VTIMEZONE").count(), 1);
    }

    #[test]
    fn fixed_zones_get_one_standard() {
        for (tz, offset) in [
            (chrono_tz::Asia::Tokyo, "+0900"),
            (chrono_tz::UTC, "+0000"),
            (chrono_tz::Asia::Kolkata, "+0530"),
        ] {
            let s = section(
                1,
                vec![meeting(Weekday::Mon, (9, 0), (10, 30))],
                Some(fall_2026(tz, vec![])),
            );
            let feed = render("c", &[s], stamp());
            let block = vtimezone_block(&feed, tz.name());
            assert_eq!(block.iter().filter(|l| l.starts_with("BEGIN:")).count(), 2);
            assert!(!block.iter().any(|l| l == "BEGIN:DAYLIGHT"));
            for line in [
                "BEGIN:STANDARD".to_owned(),
                format!("DTSTART:{EPOCH_ONSET}"),
                format!("TZOFFSETFROM:{offset}"),
                format!("TZOFFSETTO:{offset}"),
            ] {
                assert!(block.contains(&line), "{tz}: missing {line} in {block:?}");
            }
        }
    }

    #[test]
    fn each_zone_gets_one_vtimezone() {
        let sections = vec![
            section(
                1,
                vec![meeting(Weekday::Mon, (9, 0), (10, 30))],
                Some(fall_2026(chrono_tz::America::New_York, vec![])),
            ),
            section(
                2,
                vec![meeting(Weekday::Tue, (9, 0), (10, 30))],
                Some(fall_2026(chrono_tz::America::New_York, vec![])),
            ),
            section(
                3,
                vec![meeting(Weekday::Wed, (9, 0), (10, 30))],
                Some(fall_2026(chrono_tz::Europe::Berlin, vec![])),
            ),
        ];
        let feed = render("c", &sections, stamp());
        assert_eq!(feed.matches("BEGIN:VTIMEZONE").count(), 2);
        assert_eq!(feed.matches("TZID:America/New_York\r\n").count(), 1);
        assert_eq!(feed.matches("TZID:Europe/Berlin\r\n").count(), 1);
        assert!(!feed.contains("X-WR-TIMEZONE"));
        let berlin = vtimezone_block(&feed, "Europe/Berlin").join("\n");
        assert!(berlin.contains("DTSTART:20261025T030000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100"));
        assert!(berlin.contains("DTSTART:20260329T020000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200"));
    }

    #[test]
    fn undated_section_repeats_weekly_in_utc() {
        let s = section(1, vec![meeting(Weekday::Tue, (12, 0), (13, 15))], None);
        let feed = render("c", &[s], stamp());
        let lines = logical_lines(&feed);
        // updated_at is Thursday 2026-08-20; the next Tuesday is 2026-08-25.
        assert_eq!(values(&lines, "DTSTART:"), vec!["20260825T120000Z"]);
        assert_eq!(values(&lines, "DTEND:"), vec!["20260825T131500Z"]);
        assert_eq!(values(&lines, "RRULE:"), vec!["FREQ=WEEKLY"]);
        assert!(!feed.contains("VTIMEZONE"));
        assert!(!feed.contains("X-WR-TIMEZONE"));
    }

    #[test]
    fn skipped_and_repeated_local_times_follow_rfc_5545() {
        let ny = chrono_tz::America::New_York;
        // 02:30 does not exist on 2026-03-08: read with the offset before the gap.
        assert_eq!(
            local_to_utc(ny, day(2026, 3, 8).and_time(time(2, 30))),
            Some(utc(2026, 3, 8, 7, 30))
        );
        // 01:30 happens twice on 2026-11-01: the first one counts.
        assert_eq!(
            local_to_utc(ny, day(2026, 11, 1).and_time(time(1, 30))),
            Some(utc(2026, 11, 1, 5, 30))
        );
        assert_eq!(utc_offset(-5 * 3600), "-0500");
        assert_eq!(utc_offset(0), "+0000");
        assert_eq!(utc_offset(-(17 * 60 + 30)), "-001730");
    }

    #[test]
    fn overnight_meeting_ends_next_day() {
        let late = meeting(Weekday::Fri, (22, 0), (1, 0));
        let dates = fall_2026(chrono_tz::Europe::Berlin, vec![]);
        let got = occurrences(&late, &dates);
        assert!(got.iter().all(|(s, e)| *e - *s == TimeDelta::hours(3)));
        let feed = render("c", &[section(1, vec![late], Some(dates))], stamp());
        let lines = logical_lines(&feed);
        assert_eq!(
            values(&lines, "DTEND;TZID=Europe/Berlin:"),
            vec!["20260905T010000"]
        );
    }

    // ---- Independent check with Python's icalendar + recurring_ical_events ----

    const PYTHON: &str = "/usr/bin/python3";
    const CHECK_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/calendar/check_ics.py");
    const INSTALL_HINT: &str = "install the Debian packages python3-icalendar and \
        python3-recurring-ical-events (apt-get install python3-icalendar \
        python3-recurring-ical-events)";

    fn python_occurrences(ics: &str, window: (&str, &str)) -> Vec<String> {
        use std::process::Command;

        let probe = Command::new(PYTHON)
            .args(["-c", "import icalendar, recurring_ical_events"])
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "{PYTHON} cannot import icalendar/recurring_ical_events: {INSTALL_HINT}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(err) => panic!("cannot run {PYTHON} ({err}): {INSTALL_HINT}"),
        }

        let path = std::env::temp_dir().join(format!("roster-feed-{}.ics", uuid::Uuid::new_v4()));
        std::fs::write(&path, ics).expect("write temporary .ics");
        let output = Command::new(PYTHON)
            .arg(CHECK_SCRIPT)
            .arg(&path)
            .args([window.0, window.1])
            .output();
        let _ = std::fs::remove_file(&path);
        let output = output.expect("run check_ics.py");
        assert!(
            output.status.success(),
            "check_ics.py failed ({INSTALL_HINT} if modules are missing):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    fn json_line(uid: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
        let rfc3339 = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        format!(
            r#"{{"uid": "{uid}", "start": "{}", "end": "{}"}}"#,
            rfc3339(start),
            rfc3339(end)
        )
    }

    fn assert_same(expected: &[String], actual: &[String], what: &str) {
        let expected_set: BTreeSet<&String> = expected.iter().collect();
        let actual_set: BTreeSet<&String> = actual.iter().collect();
        let missing: Vec<_> = expected_set.difference(&actual_set).collect();
        let extra: Vec<_> = actual_set.difference(&expected_set).collect();
        assert!(
            missing.is_empty() && extra.is_empty() && expected.len() == actual.len(),
            "{what}: occurrence sets differ\nmissing in Python: {missing:#?}\nonly in Python: {extra:#?}"
        );
    }

    #[test]
    fn python_expansion_matches_occurrences() {
        let ny = chrono_tz::America::New_York;
        let berlin = chrono_tz::Europe::Berlin;
        let a = section(
            0xA,
            vec![
                meeting(Weekday::Mon, (9, 0), (10, 30)),
                meeting(Weekday::Wed, (13, 0), (14, 15)),
            ],
            Some(Dates {
                starts_on: day(2026, 9, 1),
                ends_on: day(2026, 12, 15),
                tz: ny,
                holidays: vec![day(2026, 10, 12), day(2026, 11, 25), day(2026, 11, 26)],
            }),
        );
        let b = section(
            0xB,
            vec![
                meeting(Weekday::Fri, (18, 0), (20, 0)),
                meeting(Weekday::Tue, (8, 0), (9, 0)),
            ],
            Some(Dates {
                starts_on: day(2026, 10, 15),
                ends_on: day(2026, 11, 20),
                tz: ny,
                holidays: vec![day(2026, 11, 3)],
            }),
        );
        let c = section(
            0xC,
            vec![meeting(Weekday::Thu, (10, 15), (11, 45))],
            Some(Dates {
                starts_on: day(2026, 9, 14),
                ends_on: day(2026, 12, 18),
                tz: berlin,
                holidays: vec![day(2026, 10, 1), day(2026, 10, 29)],
            }),
        );
        let undated = section(0xD, vec![meeting(Weekday::Tue, (12, 0), (13, 0))], None);
        let sections = vec![a, b, c, undated];
        let feed = render("Check", &sections, stamp());
        let window = ("2026-08-01", "2027-02-01");

        // A single-zone feed also carries X-WR-TIMEZONE, which Python honours.
        let single = std::slice::from_ref(sections.first().expect("section a"));
        let single_feed = render("Single", single, stamp());
        assert!(single_feed.contains("X-WR-TIMEZONE:America/New_York\r\n"));
        let mut single_expected: Vec<String> = single
            .iter()
            .flat_map(|s| {
                s.meetings.iter().flat_map(move |m| {
                    let uid = format!("{}@roster", uid_key(s.section_id, m));
                    let dates = s.dates.as_ref().expect("dated");
                    occurrences(m, dates)
                        .into_iter()
                        .map(move |(st, en)| json_line(&uid, st, en))
                })
            })
            .collect();
        single_expected.sort();
        assert_same(
            &single_expected,
            &python_occurrences(&single_feed, window),
            "single-zone feed",
        );

        let window_end = utc(2027, 2, 1, 0, 0);
        let mut expected = Vec::new();
        for s in &sections {
            for m in &s.meetings {
                let uid = format!("{}@roster", uid_key(s.section_id, m));
                match &s.dates {
                    Some(dates) => {
                        let got = occurrences(m, dates);
                        assert!(!got.is_empty());
                        expected.extend(got.into_iter().map(|(st, en)| json_line(&uid, st, en)));
                    }
                    None => {
                        // Weekly from 2026-08-25 (first Tuesday after updated_at), in UTC.
                        let mut start = utc(2026, 8, 25, 12, 0);
                        while start < window_end {
                            expected.push(json_line(&uid, start, start + TimeDelta::hours(1)));
                            start += TimeDelta::weeks(1);
                        }
                    }
                }
            }
        }
        expected.sort();

        // With the real zone names Python uses its own tz database.
        assert_same(&expected, &python_occurrences(&feed, window), "IANA TZIDs");

        // With unknown zone names Python must rely on the feed's VTIMEZONEs.
        let renamed = feed
            .replace("America/New_York", "Roster-Test/New_York")
            .replace("Europe/Berlin", "Roster-Test/Berlin");
        assert_ne!(renamed, feed);
        assert_same(
            &expected,
            &python_occurrences(&renamed, window),
            "feed VTIMEZONEs",
        );
    }
}

//! Value types stored in columns: enums kept as text, and the section schedule kept as JSON.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What a user may do. Read from the database on every request, never from a token.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Finds courses and enrolls in sections.
    #[sea_orm(string_value = "STUDENT")]
    Student,
    /// Teaches courses and manages their sections.
    #[sea_orm(string_value = "TEACHER")]
    Teacher,
    /// Runs enrollment for one organization: proxy enrollment, attendance, cancellation.
    #[sea_orm(string_value = "COORDINATOR")]
    Coordinator,
    /// Acts everywhere.
    #[sea_orm(string_value = "ADMIN")]
    Admin,
}

/// Where an enrollment stands in its life cycle (see the state machine in DESIGN.md).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EnrollmentStatus {
    /// Asked for in a lottery window: no seat yet, waiting for the draw.
    #[sea_orm(string_value = "REQUESTED")]
    Requested,
    /// Holds a seat while a teacher or coordinator decides.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Holds a seat.
    #[sea_orm(string_value = "REGISTERED")]
    Registered,
    /// Queued for a seat, first come first served.
    #[sea_orm(string_value = "WAITLISTED")]
    Waitlisted,
    /// Offered a freed seat (a section in offer mode): the seat is held until the student
    /// accepts, declines, or the offer expires.
    #[sea_orm(string_value = "OFFERED")]
    Offered,
    /// Attendance confirmed; final.
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    /// Did not complete; final.
    #[sea_orm(string_value = "FAILED")]
    Failed,
    /// Left by the student; final.
    #[sea_orm(string_value = "WITHDRAWN")]
    Withdrawn,
    /// Cancelled by staff (or an approval refused); final.
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

impl EnrollmentStatus {
    /// The statuses that count as "active": at most one of them per user and course.
    pub const ACTIVE: [EnrollmentStatus; 5] = [
        Self::Requested,
        Self::Pending,
        Self::Registered,
        Self::Waitlisted,
        Self::Offered,
    ];

    /// Whether the enrollment still takes part in the course (holds, waits for, or has asked
    /// the lottery for a seat).
    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    /// Whether the enrollment occupies one of the section's seats and may not share its
    /// meetings with another (PENDING, REGISTERED, OFFERED; finished ones keep their seat but
    /// never conflict).
    pub fn holds_seat(self) -> bool {
        matches!(self, Self::Pending | Self::Registered | Self::Offered)
    }
}

/// What a section does with a freed seat: give it to the earliest eligible waiter at once, or
/// offer it to them for a while (docs/design.md#offer-mode).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PromotionMode {
    /// The earliest eligible waiter takes the seat at once.
    #[sea_orm(string_value = "AUTOMATIC")]
    Automatic,
    /// The earliest eligible waiter is offered the seat, held for `offerHours`, to accept or
    /// decline.
    #[sea_orm(string_value = "OFFER")]
    Offer,
}

/// A day of the week, as used in section schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    /// Every weekday, Monday first.
    pub const ALL: [Weekday; 7] = [
        Self::Monday,
        Self::Tuesday,
        Self::Wednesday,
        Self::Thursday,
        Self::Friday,
        Self::Saturday,
        Self::Sunday,
    ];

    /// This day's bit in `sections.weekdays`, the bitmask that lets SQL filter by weekday on
    /// SQLite and PostgreSQL alike without reading the JSON schedule.
    pub fn bit(self) -> i32 {
        1 << (self as i32)
    }
}

/// One weekly meeting of a section. Times are local wall-clock `HH:MM`, validated on input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct Meeting {
    pub weekday: Weekday,
    /// `HH:MM`, 24-hour.
    pub start: String,
    /// `HH:MM`, 24-hour.
    pub end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// A section's weekly meetings, stored as one JSON column.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, FromJsonQueryResult)]
pub struct Schedule(pub Vec<Meeting>);

impl Schedule {
    /// The bitmask of the days this schedule meets on (see [`Weekday::bit`]).
    pub fn weekday_mask(&self) -> i32 {
        self.0.iter().fold(0, |mask, m| mask | m.weekday.bit())
    }
}

/// How a term admits its first requests (docs/design.md#registration-opening).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Admission {
    /// Seats go in the order requests arrive.
    #[sea_orm(string_value = "FIRST_COME")]
    FirstCome,
    /// Requests of the first minutes are drawn in a verifiable random order.
    #[sea_orm(string_value = "LOTTERY")]
    Lottery,
}

/// What a withdrawal leaves on the student's transcript (docs/design.md#time): nothing up to the
/// term's drop deadline, a `W` up to its withdrawal deadline.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
#[serde(rename_all = "UPPERCASE")]
pub enum EnrollmentRecord {
    /// Dropped: no transcript record.
    #[sea_orm(string_value = "NONE")]
    #[cfg_attr(feature = "graphql", graphql(name = "NONE"))]
    None,
    /// Withdrawn after the drop deadline: recorded as `W`.
    #[sea_orm(string_value = "W")]
    #[cfg_attr(feature = "graphql", graphql(name = "W"))]
    W,
}

/// A term's holidays: dates without meetings, stored as one JSON array of ISO 8601 dates.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, FromJsonQueryResult)]
pub struct Holidays(pub Vec<chrono::NaiveDate>);

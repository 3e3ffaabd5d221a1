//! The input objects of the schema, and their conversion into the plain commands the services
//! take: services never see a GraphQL type.

use async_graphql::{
    InputObject, InputValueError, InputValueResult, MaybeUndefined, Scalar, ScalarType, Value,
};
use chrono::{DateTime, NaiveDate, Utc};
use entity::types::{Admission, EnrollmentStatus, Meeting, PromotionMode, Role, Weekday};
use uuid::Uuid;

use crate::service::{
    compliance,
    courses::{CourseChanges, NewCourse},
    discovery, rosters,
    sections::{NewSection, SectionChanges, SectionTime},
    terms::TermFields,
    users,
};

/// Narrows discovery. Every condition given must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct CourseFilter {
    /// Case-insensitive text searched in the name, code and description.
    pub search: Option<String>,
    /// Only courses taught by this teacher.
    pub teacher_id: Option<Uuid>,
    /// `true`: only courses with an active section that has a free seat (or no limit).
    /// `false`: only courses where every active section is full.
    pub has_open_seats: Option<bool>,
    /// Only courses with an active section meeting on this day.
    pub weekday: Option<Weekday>,
    /// Only courses with an active section in this term.
    pub term_id: Option<Uuid>,
}

/// A new course. `teacherId` and `organizationId` default to the caller's.
#[derive(InputObject, Clone, Debug)]
pub struct CreateCourseInput {
    /// 1 to 255 characters.
    pub name: String,
    /// At most 5000 characters.
    pub description: Option<String>,
    /// At most 50 letters, digits or `-`, e.g. `CS-101`.
    pub code: Option<String>,
    /// A TEACHER of the organization; defaults to the caller.
    pub teacher_id: Option<Uuid>,
    /// Defaults to the caller's organization. Only admins create courses in another one.
    pub organization_id: Option<Uuid>,
    /// Courses whose certification is needed to enroll.
    #[graphql(default)]
    pub prerequisite_ids: Vec<Uuid>,
    /// How long the certificate issued on completion stays valid; null: no certificate.
    pub certificate_validity_months: Option<i32>,
}

/// Changes to a course; fields left out stay as they are, fields set to null are cleared.
#[derive(InputObject, Clone, Debug, Default)]
pub struct UpdateCourseInput {
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub code: MaybeUndefined<String>,
    /// Reassigning a course is for coordinators and admins.
    pub teacher_id: Option<Uuid>,
    /// Moving a course to another organization is for admins.
    pub organization_id: Option<Uuid>,
    /// Replaces the whole set.
    pub prerequisite_ids: Option<Vec<Uuid>>,
    pub certificate_validity_months: MaybeUndefined<i32>,
    pub is_active: Option<bool>,
}

/// One weekly meeting of a section.
#[derive(InputObject, Clone, Debug)]
pub struct MeetingInput {
    pub weekday: Weekday,
    /// `HH:MM`, 24-hour.
    pub start: String,
    /// `HH:MM`, 24-hour, after `start`.
    pub end: String,
    pub room: Option<String>,
}

impl From<MeetingInput> for Meeting {
    fn from(m: MeetingInput) -> Self {
        Meeting {
            weekday: m.weekday,
            start: m.start,
            end: m.end,
            room: m.room,
        }
    }
}

/// A new section of a course.
#[derive(InputObject, Clone, Debug)]
pub struct CreateSectionInput {
    pub course_id: Uuid,
    /// 1 to 100 characters.
    pub name: String,
    /// Seats; null for unlimited. 0 is rejected.
    pub capacity: Option<i32>,
    #[graphql(default)]
    pub schedule: Vec<MeetingInput>,
    /// New enrollments wait as PENDING (holding a seat) until staff approve them.
    #[graphql(default = false)]
    pub requires_approval: bool,
    /// When full, new enrollments join a waitlist instead of failing with SECTION_FULL.
    #[graphql(default = true)]
    pub waitlist_enabled: bool,
    /// The teaching assistant: a user of the course's organization who sees this section's
    /// roster, approves, confirms attendance and writes notes here, and nothing more.
    pub assistant_id: Option<Uuid>,
    /// What a freed seat does: AUTOMATIC promotes the earliest eligible waiter at once; OFFER
    /// offers it to them, held for `offerHours`, to accept or decline.
    #[graphql(default_with = "PromotionMode::Automatic")]
    pub promotion_mode: PromotionMode,
    /// How long an offered seat is held before it passes on: 1 to 168 hours.
    #[graphql(default = 24)]
    pub offer_hours: i32,
    /// The term the section runs in; without one the section meets weekly with no dates.
    pub term_id: Option<Uuid>,
    /// The first date of its meetings, inside the term; the term's when left out.
    pub starts_on: Option<Date>,
    /// The last date of its meetings, inside the term; the term's when left out.
    pub ends_on: Option<Date>,
    /// The section's own enrollment window, overriding the term's.
    pub enrollment_opens_at: Option<DateTime<Utc>>,
    pub enrollment_closes_at: Option<DateTime<Utc>>,
}

/// Changes to a section; fields left out stay as they are. Raising the capacity promotes the
/// earliest waitlisted enrollments into the new seats in the same transaction.
#[derive(InputObject, Clone, Debug, Default)]
pub struct UpdateSectionInput {
    pub name: Option<String>,
    /// Null makes the section unlimited.
    pub capacity: MaybeUndefined<i32>,
    pub schedule: Option<Vec<MeetingInput>>,
    pub requires_approval: Option<bool>,
    pub waitlist_enabled: Option<bool>,
    pub is_active: Option<bool>,
    /// Null removes the assistant.
    pub assistant_id: MaybeUndefined<Uuid>,
    /// Switching from OFFER to AUTOMATIC leaves open offers running until they end.
    pub promotion_mode: Option<PromotionMode>,
    /// 1 to 168 hours; applies to offers made from now on.
    pub offer_hours: Option<i32>,
    /// Null takes the section out of its term (its dates must be cleared too).
    pub term_id: MaybeUndefined<Uuid>,
    /// Null: the term's.
    pub starts_on: MaybeUndefined<Date>,
    /// Null: the term's.
    pub ends_on: MaybeUndefined<Date>,
    /// Null: the term's.
    pub enrollment_opens_at: MaybeUndefined<DateTime<Utc>>,
    /// Null: the term's. A window that opens again promotes into free seats.
    pub enrollment_closes_at: MaybeUndefined<DateTime<Utc>>,
}

/// A date, ISO 8601 (`2026-09-01`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub NaiveDate);

#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => {
                let strict = text.len() == 10 && text.as_bytes()[4] == b'-';
                text.parse::<NaiveDate>()
                    .ok()
                    .filter(|_| strict)
                    .map(Date)
                    .ok_or_else(|| InputValueError::custom("expected a date as YYYY-MM-DD"))
            }
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

/// A new term of an organization (docs/design.md#time).
#[derive(InputObject, Clone, Debug)]
pub struct CreateTermInput {
    /// Defaults to the caller's organization.
    pub organization_id: Option<Uuid>,
    /// 1 to 100 characters, e.g. "Fall 2026".
    pub name: String,
    /// Letters, digits or `-`, unique in the organization, e.g. `2026-FA`.
    pub code: String,
    pub starts_on: Date,
    /// Not before `startsOn`.
    pub ends_on: Date,
    /// IANA name; the organization's when left out.
    pub time_zone: Option<String>,
    /// Dates inside the term without meetings.
    #[graphql(default)]
    pub holidays: Vec<Date>,
    pub enrollment_opens_at: Option<DateTime<Utc>>,
    /// After `enrollmentOpensAt`.
    pub enrollment_closes_at: Option<DateTime<Utc>>,
    /// Until then a withdrawal leaves no record (`record: NONE`).
    pub drop_deadline: Option<DateTime<Utc>>,
    /// Until then a withdrawal is recorded as `W`; after it only staff withdraw. Not before
    /// `dropDeadline`.
    pub withdraw_deadline: Option<DateTime<Utc>>,
    /// `FIRST_COME` (the default).
    pub admission: Option<Admission>,
    pub lottery_minutes: Option<i32>,
}

/// Changes to a term; fields left out stay as they are, nullable fields set to null are
/// cleared. Sections with dates of their own must stay inside the term.
#[derive(InputObject, Clone, Debug, Default)]
pub struct UpdateTermInput {
    pub name: Option<String>,
    pub code: Option<String>,
    pub starts_on: Option<Date>,
    pub ends_on: Option<Date>,
    pub time_zone: Option<String>,
    /// Replaces the whole list.
    pub holidays: Option<Vec<Date>>,
    pub enrollment_opens_at: MaybeUndefined<DateTime<Utc>>,
    pub enrollment_closes_at: MaybeUndefined<DateTime<Utc>>,
    pub drop_deadline: MaybeUndefined<DateTime<Utc>>,
    pub withdraw_deadline: MaybeUndefined<DateTime<Utc>>,
    pub admission: Option<Admission>,
    pub lottery_minutes: MaybeUndefined<i32>,
}

/// Students who get their own opening time in a term (`assignAppointments`).
#[derive(InputObject, Clone, Debug)]
pub struct AppointmentGroupInput {
    /// When enrollment in the term's sections opens for these students.
    pub opens_at: DateTime<Utc>,
    pub user_ids: Vec<Uuid>,
}

/// Changes to an organization.
#[derive(InputObject, Clone, Debug, Default)]
pub struct UpdateOrganizationInput {
    /// IANA time zone name: the default of terms created from now on.
    pub time_zone: Option<String>,
}

impl From<CreateTermInput> for TermFields {
    fn from(i: CreateTermInput) -> Self {
        Self {
            name: Some(i.name),
            code: Some(i.code),
            starts_on: Some(i.starts_on.0),
            ends_on: Some(i.ends_on.0),
            time_zone: i.time_zone,
            holidays: Some(i.holidays.into_iter().map(|d| d.0).collect()),
            enrollment_opens_at: Some(i.enrollment_opens_at),
            enrollment_closes_at: Some(i.enrollment_closes_at),
            drop_deadline: Some(i.drop_deadline),
            withdraw_deadline: Some(i.withdraw_deadline),
            admission: i.admission,
            lottery_minutes: Some(i.lottery_minutes),
        }
    }
}

impl From<UpdateTermInput> for TermFields {
    fn from(i: UpdateTermInput) -> Self {
        Self {
            name: i.name,
            code: i.code,
            starts_on: i.starts_on.map(|d| d.0),
            ends_on: i.ends_on.map(|d| d.0),
            time_zone: i.time_zone,
            holidays: i.holidays.map(|h| h.into_iter().map(|d| d.0).collect()),
            enrollment_opens_at: change(i.enrollment_opens_at),
            enrollment_closes_at: change(i.enrollment_closes_at),
            drop_deadline: change(i.drop_deadline),
            withdraw_deadline: change(i.withdraw_deadline),
            admission: i.admission,
            lottery_minutes: change(i.lottery_minutes),
        }
    }
}

impl From<CourseFilter> for discovery::CourseFilter {
    fn from(f: CourseFilter) -> Self {
        Self {
            search: f.search,
            teacher_id: f.teacher_id,
            has_open_seats: f.has_open_seats,
            weekday: f.weekday,
            term_id: f.term_id,
        }
    }
}

impl From<CreateCourseInput> for NewCourse {
    fn from(i: CreateCourseInput) -> Self {
        Self {
            name: i.name,
            description: i.description,
            code: i.code,
            teacher_id: i.teacher_id,
            organization_id: i.organization_id,
            prerequisite_ids: i.prerequisite_ids,
            certificate_validity_months: i.certificate_validity_months,
        }
    }
}

impl From<UpdateCourseInput> for CourseChanges {
    fn from(i: UpdateCourseInput) -> Self {
        Self {
            name: i.name,
            description: change(i.description),
            code: change(i.code),
            teacher_id: i.teacher_id,
            organization_id: i.organization_id,
            prerequisite_ids: i.prerequisite_ids,
            certificate_validity_months: change(i.certificate_validity_months),
            is_active: i.is_active,
        }
    }
}

impl From<CreateSectionInput> for NewSection {
    fn from(i: CreateSectionInput) -> Self {
        Self {
            course_id: i.course_id,
            name: i.name,
            capacity: i.capacity,
            schedule: i.schedule.into_iter().map(Meeting::from).collect(),
            requires_approval: i.requires_approval,
            waitlist_enabled: i.waitlist_enabled,
            assistant_id: i.assistant_id,
            promotion_mode: i.promotion_mode,
            offer_hours: i.offer_hours,
            time: SectionTime {
                term_id: Some(i.term_id),
                starts_on: Some(i.starts_on.map(|d| d.0)),
                ends_on: Some(i.ends_on.map(|d| d.0)),
                enrollment_opens_at: Some(i.enrollment_opens_at),
                enrollment_closes_at: Some(i.enrollment_closes_at),
            },
        }
    }
}

impl From<UpdateSectionInput> for SectionChanges {
    fn from(i: UpdateSectionInput) -> Self {
        Self {
            name: i.name,
            capacity: change(i.capacity),
            schedule: i
                .schedule
                .map(|meetings| meetings.into_iter().map(Meeting::from).collect()),
            requires_approval: i.requires_approval,
            waitlist_enabled: i.waitlist_enabled,
            is_active: i.is_active,
            assistant_id: change(i.assistant_id),
            promotion_mode: i.promotion_mode,
            offer_hours: i.offer_hours,
            time: SectionTime {
                term_id: change(i.term_id),
                starts_on: change(i.starts_on).map(|d| d.map(|d| d.0)),
                ends_on: change(i.ends_on).map(|d| d.map(|d| d.0)),
                enrollment_opens_at: change(i.enrollment_opens_at),
                enrollment_closes_at: change(i.enrollment_closes_at),
            },
        }
    }
}

/// Left out: no change; null: cleared; a value: set.
fn change<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

/// Narrows a listing of enrollments (`enrollments`). Every condition given must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct EnrollmentFilter {
    pub course_id: Option<Uuid>,
    pub section_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    /// The course's organization.
    pub organization_id: Option<Uuid>,
    /// Any of these statuses.
    pub status: Option<Vec<EnrollmentStatus>>,
    /// Proxy enrollments made by this staff member.
    pub enrolled_by: Option<Uuid>,
    /// Enrolled at or after this time.
    pub enrolled_after: Option<DateTime<Utc>>,
    /// Enrolled before this time.
    pub enrolled_before: Option<DateTime<Utc>>,
    /// The enrolled user's name or e-mail, case-insensitively.
    pub search: Option<String>,
}

impl From<EnrollmentFilter> for rosters::EnrollmentFilter {
    fn from(f: EnrollmentFilter) -> Self {
        Self {
            course_id: f.course_id,
            section_id: f.section_id,
            user_id: f.user_id,
            organization_id: f.organization_id,
            statuses: f.status,
            enrolled_by: f.enrolled_by,
            enrolled_after: f.enrolled_after,
            enrolled_before: f.enrolled_before,
            search: f.search,
        }
    }
}

/// Narrows the user directory (`users`). Every condition given must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct UserFilter {
    /// Name or e-mail, case-insensitively.
    pub search: Option<String>,
    pub role: Option<Role>,
    pub organization_id: Option<Uuid>,
    /// Only users with a registration appointment in this term (see `User.appointment`).
    pub appointment_term_id: Option<Uuid>,
}

impl From<UserFilter> for users::UserFilter {
    fn from(f: UserFilter) -> Self {
        Self {
            search: f.search,
            role: f.role,
            organization_id: f.organization_id,
            appointment_term_id: f.appointment_term_id,
        }
    }
}

/// Narrows a listing of certifications (`certifications`). Every condition given must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct CertificationFilter {
    pub course_id: Option<Uuid>,
    /// The course's organization.
    pub organization_id: Option<Uuid>,
    /// The holder.
    pub user_id: Option<Uuid>,
    /// Expiring before this time, already expired ones included (recertification);
    /// certifications that never expire are left out.
    pub expires_before: Option<DateTime<Utc>>,
    /// Issued at or after this time.
    pub issued_after: Option<DateTime<Utc>>,
    /// Issued before this time.
    pub issued_before: Option<DateTime<Utc>>,
    /// The holder's name or e-mail, case-insensitively.
    pub search: Option<String>,
}

impl From<CertificationFilter> for compliance::CertificationFilter {
    fn from(f: CertificationFilter) -> Self {
        Self {
            course_id: f.course_id,
            organization_id: f.organization_id,
            user_id: f.user_id,
            expires_before: f.expires_before,
            issued_after: f.issued_after,
            issued_before: f.issued_before,
            search: f.search,
        }
    }
}

/// Narrows the audit trail (`enrollmentEvents`). Every condition given must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct EnrollmentEventFilter {
    pub course_id: Option<Uuid>,
    pub section_id: Option<Uuid>,
    /// The course's organization.
    pub organization_id: Option<Uuid>,
    /// Changes of this user's enrollments.
    pub user_id: Option<Uuid>,
    pub enrollment_id: Option<Uuid>,
    /// Changes made by this person (for a promotion, whoever freed the seat).
    pub actor_id: Option<Uuid>,
    /// Changes into any of these statuses.
    pub to: Option<Vec<EnrollmentStatus>>,
    /// At or after this time.
    pub occurred_after: Option<DateTime<Utc>>,
    /// Before this time.
    pub occurred_before: Option<DateTime<Utc>>,
}

impl From<EnrollmentEventFilter> for compliance::EventFilter {
    fn from(f: EnrollmentEventFilter) -> Self {
        Self {
            course_id: f.course_id,
            section_id: f.section_id,
            organization_id: f.organization_id,
            user_id: f.user_id,
            enrollment_id: f.enrollment_id,
            actor_id: f.actor_id,
            statuses: f.to,
            occurred_after: f.occurred_after,
            occurred_before: f.occurred_before,
        }
    }
}

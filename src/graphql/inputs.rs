//! The input objects of the schema, and their conversion into the plain commands the services
//! take: services never see a GraphQL type.

use async_graphql::{InputObject, MaybeUndefined};
use chrono::{DateTime, Utc};
use entity::types::{EnrollmentStatus, Meeting, PromotionMode, Role, Weekday};
use uuid::Uuid;

use crate::service::{
    compliance,
    courses::{CourseChanges, NewCourse},
    discovery, rosters,
    sections::{NewSection, SectionChanges},
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
}

impl From<CourseFilter> for discovery::CourseFilter {
    fn from(f: CourseFilter) -> Self {
        Self {
            search: f.search,
            teacher_id: f.teacher_id,
            has_open_seats: f.has_open_seats,
            weekday: f.weekday,
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
}

impl From<UserFilter> for users::UserFilter {
    fn from(f: UserFilter) -> Self {
        Self {
            search: f.search,
            role: f.role,
            organization_id: f.organization_id,
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

//! What a student is told, and when (docs/design.md#notifications): the kind and the plain text
//! of each notification, as a phone shows it. Pure: the caller writes the row.

use chrono::{DateTime, Utc};
use entity::types::EnrollmentStatus::{self, *};

/// The webhook channel's name in the outbox.
pub const WEBHOOK: &str = "webhook";
/// The e-mail channel's name in the outbox.
pub const EMAIL: &str = "email";
/// The Web Push channel's name in the outbox.
pub const PUSH: &str = "push";

/// The channels notifications are delivered on beyond the inbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Channels {
    pub webhook: bool,
    pub email: bool,
    pub push: bool,
}

impl Channels {
    /// The outbox names of the channels in use.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        [
            (self.webhook, WEBHOOK),
            (self.email, EMAIL),
            (self.push, PUSH),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }

    pub fn any(self) -> bool {
        self.names().next().is_some()
    }
}

/// What the API needs of Web Push: the server's public key, which browsers subscribe with, and
/// which endpoints a subscription may name. Signing and sending is `delivery::push`.
#[derive(Clone, Debug)]
pub struct PushRules {
    pub public_key: String,
    /// Whether `http://` endpoints are allowed (tests, a push service on a private network).
    pub allow_http: bool,
}

impl PushRules {
    /// The public key, base64url: what a browser's `pushManager.subscribe` takes.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Whether a subscription may name `endpoint`.
    pub fn allows(&self, endpoint: &str) -> bool {
        endpoint.starts_with("https://") || (self.allow_http && endpoint.starts_with("http://"))
    }
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A freed seat went to the student.
    Promoted,
    /// A freed seat went to the student, in a section that approves: it awaits approval.
    PromotedPending,
    /// Staff approved the student's pending request.
    Approved,
    /// Staff cancelled the enrollment (or refused the request).
    Cancelled,
    /// Staff recorded that the student did not complete.
    Failed,
    /// Completing the course earned a certification.
    CertificationIssued,
    /// A seat freed but the student could not take it (they keep their place).
    Skipped,
    /// A certification expires within [`EXPIRY_NOTICE_DAYS`] days.
    CertificationExpiring,
    /// A freed seat is offered to the student, held until a deadline (offer mode).
    Offered,
    /// An open offer lapses soon.
    OfferExpiring,
    /// An offer lapsed unanswered; the seat went on to the next waiter.
    OfferExpired,
}

/// The reason recorded on an offer that lapsed.
pub const OFFER_EXPIRED: &str = "offer expired";

/// The reason recorded on an offer the student declined.
pub const OFFER_DECLINED: &str = "offer declined";

/// How long before a certification expires its holder is told.
pub const EXPIRY_NOTICE_DAYS: i64 = 30;

impl Kind {
    /// The name stored and shown to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promoted => "PROMOTED",
            Self::PromotedPending => "PROMOTED_PENDING",
            Self::Approved => "APPROVED",
            Self::Cancelled => "CANCELLED",
            Self::Failed => "FAILED",
            Self::CertificationIssued => "CERTIFICATION_ISSUED",
            Self::Skipped => "SKIPPED",
            Self::CertificationExpiring => "CERTIFICATION_EXPIRING",
            Self::Offered => "OFFERED",
            Self::OfferExpiring => "OFFER_EXPIRING",
            Self::OfferExpired => "OFFER_EXPIRED",
        }
    }
}

/// One notification's kind and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub kind: Kind,
    pub title: String,
    pub body: String,
}

/// Where the enrollment is: its course's and section's names.
pub struct Place<'a> {
    pub course: &'a str,
    pub section: &'a str,
}

/// The notification a status change sends the enrolled student, if any: only changes someone
/// else made (a promotion, an offer and its lapse, staff's decisions), never the student's own.
/// `offer_expires_at` is the deadline of an offer the change makes.
pub fn for_transition(
    from: Option<EnrollmentStatus>,
    to: EnrollmentStatus,
    by_someone_else: bool,
    place: &Place<'_>,
    reason: Option<&str>,
    offer_expires_at: Option<DateTime<Utc>>,
) -> Option<Message> {
    if !by_someone_else {
        return None;
    }
    let Place { course, section } = place;
    let because = reason
        .filter(|r| !r.trim().is_empty())
        .map(|r| format!(" Reason: {r}"))
        .unwrap_or_default();
    let (kind, title, body) = match (from, to) {
        (Some(Waitlisted), Offered) => {
            let until = offer_expires_at
                .map(|at| format!(" Accept it by {}", moment(at)))
                .unwrap_or_default();
            (
                Kind::Offered,
                format!("A seat in {course} is offered to you"),
                format!(
                    "A seat in {section} of {course} freed up and is held for you.{until} or \
                     decline it to pass it on."
                ),
            )
        }
        (Some(Offered), Withdrawn) if reason == Some(OFFER_EXPIRED) => (
            Kind::OfferExpired,
            format!("Your offer in {course} expired"),
            format!(
                "The seat in {section} of {course} held for you was not accepted in time and \
                 went to the next person."
            ),
        ),
        (Some(Waitlisted | Offered), Registered) => (
            Kind::Promoted,
            format!("You have a seat in {course}"),
            format!("A seat in {section} of {course} freed up and is now yours."),
        ),
        (Some(Waitlisted | Offered), Pending) => (
            Kind::PromotedPending,
            format!("A seat in {course} awaits approval"),
            format!(
                "A seat in {section} of {course} freed up and is held for you while staff approve."
            ),
        ),
        (Some(Pending), Registered) => (
            Kind::Approved,
            format!("Approved: {course}"),
            format!("Your place in {section} of {course} was approved."),
        ),
        (Some(_), Cancelled) => (
            Kind::Cancelled,
            format!("Cancelled: {course}"),
            format!("Your enrollment in {section} of {course} was cancelled.{because}"),
        ),
        (Some(_), Failed) => (
            Kind::Failed,
            format!("Not completed: {course}"),
            format!("{course} ({section}) was recorded as not completed.{because}"),
        ),
        _ => return None,
    };
    Some(Message { kind, title, body })
}

/// An open offer about to lapse.
pub fn offer_expiring(place: &Place<'_>, expires_at: DateTime<Utc>) -> Message {
    let Place { course, section } = place;
    let at = moment(expires_at);
    Message {
        kind: Kind::OfferExpiring,
        title: format!("Your seat offer in {course} ends at {at}"),
        body: format!(
            "The seat in {section} of {course} is held for you until {at}. Accept it before then, \
             or it goes to the next person."
        ),
    }
}

/// A deadline as a phone shows it: to the minute, in UTC.
fn moment(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A waiter passed over when a seat freed.
pub fn skipped(place: &Place<'_>, why: &str) -> Message {
    let Place { course, section } = place;
    Message {
        kind: Kind::Skipped,
        title: format!("A seat in {course} freed, but you could not take it"),
        body: format!(
            "A seat in {section} of {course} went to the next person: {why}. You keep your place \
             on the waitlist."
        ),
    }
}

/// A certification earned.
pub fn certification_issued(course: &str, expires_at: Option<DateTime<Utc>>) -> Message {
    let until = expires_at
        .map(|at| format!(" It is valid until {}.", at.format("%Y-%m-%d")))
        .unwrap_or_default();
    Message {
        kind: Kind::CertificationIssued,
        title: format!("Certified: {course}"),
        body: format!("You completed {course} and earned its certification.{until}"),
    }
}

/// A certification about to expire.
pub fn certification_expiring(course: &str, expires_at: DateTime<Utc>) -> Message {
    let day = expires_at.format("%Y-%m-%d");
    Message {
        kind: Kind::CertificationExpiring,
        title: format!("Your {course} certification expires on {day}"),
        body: format!(
            "Your certification for {course} expires on {day}. Enroll again to renew it in time."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: Place<'static> = Place {
        course: "Welding",
        section: "Evening",
    };

    #[test]
    fn only_changes_made_by_someone_else_notify() {
        assert_eq!(
            for_transition(Some(Waitlisted), Registered, false, &PLACE, None, None),
            None
        );
        let promoted =
            for_transition(Some(Waitlisted), Registered, true, &PLACE, None, None).unwrap();
        assert_eq!(promoted.kind, Kind::Promoted);
        assert!(promoted.body.contains("Evening") && promoted.title.contains("Welding"));
        assert_eq!(
            for_transition(None, Registered, true, &PLACE, None, None),
            None
        );
        assert_eq!(
            for_transition(Some(Registered), Completed, true, &PLACE, None, None),
            None
        );
    }

    #[test]
    fn an_offer_gives_its_deadline_and_its_lapse_is_told() {
        let at = "2026-12-01T09:30:00Z".parse().unwrap();
        let offered =
            for_transition(Some(Waitlisted), Offered, true, &PLACE, None, Some(at)).unwrap();
        assert_eq!(offered.kind, Kind::Offered);
        assert!(
            offered.body.contains("Accept it by 2026-12-01 09:30 UTC"),
            "{}",
            offered.body
        );
        let lapsed = for_transition(
            Some(Offered),
            Withdrawn,
            true,
            &PLACE,
            Some(OFFER_EXPIRED),
            None,
        )
        .unwrap();
        assert_eq!(lapsed.kind, Kind::OfferExpired);
        // Declining is the student's own act: nothing to tell them.
        assert_eq!(
            for_transition(
                Some(Offered),
                Withdrawn,
                false,
                &PLACE,
                Some(OFFER_DECLINED),
                None
            ),
            None
        );
        assert_eq!(offer_expiring(&PLACE, at).kind, Kind::OfferExpiring);
    }

    #[test]
    fn a_cancellation_gives_its_reason() {
        let cancelled = for_transition(
            Some(Registered),
            Cancelled,
            true,
            &PLACE,
            Some("room closed"),
            None,
        )
        .unwrap();
        assert_eq!(cancelled.kind, Kind::Cancelled);
        assert!(
            cancelled.body.ends_with("Reason: room closed"),
            "{}",
            cancelled.body
        );
    }
}

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
    /// Hosts the operator allows although they are, or resolve to, internal addresses (a push
    /// service under test on a private network). Empty by default.
    pub internal_hosts: Vec<String>,
}

impl PushRules {
    /// The public key, base64url: what a browser's `pushManager.subscribe` takes.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Whether a subscription may name `endpoint`: an `https://` URL (`http://` when allowed)
    /// without user or password, whose host is a name or a public address. A push service is
    /// on the internet: an endpoint at a loopback, private, link-local, unique-local or
    /// unspecified address would make Roster's delivery worker a way into the network it runs
    /// in (server-side request forgery), whatever the form the address is written in. A name
    /// is checked again when the worker connects ([`PushRules::reachable`]), so a name that
    /// resolves to such an address is refused then.
    ///
    /// # Errors
    /// Why the endpoint is refused.
    pub fn check(&self, endpoint: &str) -> Result<(), &'static str> {
        let url = url::Url::parse(endpoint).map_err(|_| "must be a URL")?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err("must be the push service's https:// URL"),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry a user or password");
        }
        let host = url.host_str().ok_or("must name a host")?;
        if self.is_internal_host(host) {
            return Ok(());
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !is_public(ip.into()) => {
                Err("must not be at a loopback, private, link-local or unspecified address")
            }
            Some(url::Host::Ipv6(ip)) if !is_public(ip.into()) => {
                Err("must not be at a loopback, private, link-local or unspecified address")
            }
            Some(url::Host::Domain(name))
                if name.eq_ignore_ascii_case("localhost")
                    || name.to_ascii_lowercase().ends_with(".localhost") =>
            {
                Err("must not be at a loopback, private, link-local or unspecified address")
            }
            Some(_) => Ok(()),
            None => Err("must name a host"),
        }
    }

    /// Whether the worker may connect to `address`, which `host` resolved to.
    pub fn reachable(&self, host: &str, address: std::net::IpAddr) -> bool {
        self.is_internal_host(host) || is_public(address)
    }

    fn is_internal_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.internal_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }
}

/// Whether `address` is on the public internet: not loopback, private (RFC 1918), shared
/// (100.64/10), link-local, unspecified, broadcast or documentation, nor an IPv6 unique-local,
/// link-local or loopback one, nor an IPv4-mapped form of any of these.
pub fn is_public(address: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
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
    /// The section's enrollment window closed while the student waited: no more promotions.
    WindowClosed,
    /// The lottery the student's request was in is drawn: what it made of the request.
    LotteryDrawn,
}

/// The start of the reason recorded on a lottery request the draw could not grant.
pub const LOTTERY_REFUSED: &str = "not granted in the lottery";

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
            Self::WindowClosed => "WINDOW_CLOSED",
            Self::LotteryDrawn => "LOTTERY_DRAWN",
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
        (Some(Requested), Registered) => (
            Kind::LotteryDrawn,
            format!("You have a seat in {course}"),
            format!("The lottery for {section} of {course} is drawn: a seat is yours."),
        ),
        (Some(Requested), Pending) => (
            Kind::LotteryDrawn,
            format!("A seat in {course} awaits approval"),
            format!(
                "The lottery for {section} of {course} is drawn: a seat is held for you while \
                 staff approve."
            ),
        ),
        (Some(Requested), Waitlisted) => (
            Kind::LotteryDrawn,
            format!("You are on the waitlist of {course}"),
            format!(
                "The lottery for {section} of {course} is drawn: no seat was left for you, and \
                 you have a place on its waitlist."
            ),
        ),
        (Some(Requested), Cancelled) if reason.is_some_and(|r| r.starts_with(LOTTERY_REFUSED)) => (
            Kind::LotteryDrawn,
            format!("No seat in {course}"),
            format!(
                "The lottery for {section} of {course} is drawn: your request could not be \
                     granted.{because}"
            ),
        ),
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

/// The section's enrollment window closed while the student waited.
pub fn window_closed(place: &Place<'_>, closed_at: DateTime<Utc>) -> Message {
    let Place { course, section } = place;
    let at = moment(closed_at);
    Message {
        kind: Kind::WindowClosed,
        title: format!("Enrollment in {course} closed at {at}"),
        body: format!(
            "Enrollment in {section} of {course} closed at {at}, so nobody is promoted from its \
             waitlist any more. You keep your place in case staff open it again."
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
mod push_tests {
    use super::PushRules;

    fn rules(internal: &[&str]) -> PushRules {
        PushRules {
            public_key: String::new(),
            allow_http: true,
            internal_hosts: internal.iter().map(|h| (*h).to_owned()).collect(),
        }
    }

    #[test]
    fn endpoints_inside_the_network_are_refused_in_every_spelling() {
        let rules = rules(&[]);
        for endpoint in [
            "http://127.0.0.1/push",
            "https://127.1.2.3:8443/push",
            "http://[::1]/push",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.7/push",
            "http://192.168.1.1/push",
            "http://172.16.0.1/push",
            "http://100.64.0.1/push",
            "http://0.0.0.0/push",
            "http://2130706433/push",
            "http://0x7f000001/push",
            "http://[::ffff:127.0.0.1]/push",
            "http://[fd00::1]/push",
            "http://[fe80::1]/push",
            "http://localhost:5432/push",
            "http://push.localhost/push",
            "https://user:secret@push.example/push",
            "ftp://push.example/push",
            "not a url",
        ] {
            assert!(rules.check(endpoint).is_err(), "{endpoint} was allowed");
        }
        for endpoint in [
            "https://fcm.googleapis.com/fcm/send/abc",
            "https://updates.push.services.mozilla.com/wpush/v2/x",
            "https://8.8.8.8/push",
            "https://[2606:4700::1111]/push",
        ] {
            assert_eq!(rules.check(endpoint), Ok(()), "{endpoint}");
        }
    }

    #[test]
    fn the_operator_may_allow_internal_push_hosts() {
        let rules = rules(&["127.0.0.1", "push.internal"]);
        assert_eq!(rules.check("http://127.0.0.1:9000/push"), Ok(()));
        assert!(rules.check("http://127.0.0.2/push").is_err());
        assert!(rules.reachable("push.internal", "10.1.2.3".parse().unwrap()));
        assert!(!rules.reachable("push.example", "10.1.2.3".parse().unwrap()));
        assert!(rules.reachable("push.example", "8.8.4.4".parse().unwrap()));
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

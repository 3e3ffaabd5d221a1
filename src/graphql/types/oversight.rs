//! The figures a coordinator or teacher oversees participation by (`oversight`).

use async_graphql::{Context, Object, Result, SimpleObject};
use entity::types::EnrollmentStatus;

use super::{Section, User};
use crate::graphql::boxed;
use crate::{
    graphql::request,
    service::oversight::{self, StatusCounts},
};

/// Participation in a course or an organization, as of now.
pub struct Oversight(pub oversight::Oversight);

#[Object]
impl Oversight {
    /// Enrollments by status over all sections; every status is listed, zeros included.
    async fn counts(&self) -> Vec<StatusCount> {
        status_counts(&self.0.counts)
    }

    /// Enrollments in any status.
    async fn enrollment_count(&self) -> u64 {
        self.0.counts.total()
    }

    /// COMPLETED ÷ (REGISTERED + COMPLETED + FAILED): of those admitted to a seat and not gone,
    /// the share who completed. Null when there are none.
    async fn completion_rate(&self) -> Option<f64> {
        self.0.counts.completion_rate()
    }

    /// Certifications issued for the course (the organization's courses), expired ones
    /// included.
    async fn certifications_issued(&self) -> u64 {
        self.0.certifications_issued
    }

    /// How long students waited on the waitlist before a seat reached them (given, or offered
    /// in offer mode).
    async fn wait_before_promotion(&self) -> WaitTimes {
        let waits = &self.0.waits;
        WaitTimes {
            promotions: waits.len() as u64,
            median_seconds: oversight::percentile(waits, 0.5),
            p90_seconds: oversight::percentile(waits, 0.9),
            longest_seconds: waits.last().copied(),
        }
    }

    /// Enrollments made by staff on someone's behalf, by who made them, most first.
    async fn proxy_enrollments(&self) -> Vec<ProxyEnrollments> {
        self.0
            .proxies
            .iter()
            .map(|&(by, count)| ProxyEnrollments {
                enrolled_by_id: by,
                count,
            })
            .collect()
    }

    /// Every section (inactive ones included), by course then name, with its own figures.
    async fn sections(&self) -> Vec<SectionOversight> {
        self.0
            .sections
            .iter()
            .map(|(section, counts)| SectionOversight {
                section: section.clone(),
                counts: counts.clone(),
            })
            .collect()
    }
}

fn status_counts(counts: &StatusCounts) -> Vec<StatusCount> {
    counts
        .all()
        .into_iter()
        .map(|(status, count)| StatusCount { status, count })
        .collect()
}

/// How many enrollments are in one status.
#[derive(SimpleObject)]
pub struct StatusCount {
    pub status: EnrollmentStatus,
    pub count: u64,
}

/// The time from joining a waitlist to being promoted, over every promotion.
#[derive(SimpleObject)]
pub struct WaitTimes {
    /// How many promotions the figures are taken over.
    pub promotions: u64,
    /// Null when there was no promotion.
    pub median_seconds: Option<f64>,
    /// Nine in ten promoted students waited at most this long; null when there was none.
    pub p90_seconds: Option<f64>,
    pub longest_seconds: Option<f64>,
}

/// Proxy enrollments made by one staff member.
pub struct ProxyEnrollments {
    enrolled_by_id: uuid::Uuid,
    count: u64,
}

#[Object]
impl ProxyEnrollments {
    /// Who enrolled others; null when that account no longer exists.
    async fn enrolled_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        boxed(async move { request(ctx)?.node(self.enrolled_by_id).await }).await
    }

    async fn count(&self) -> u64 {
        self.count
    }
}

/// One section's figures.
pub struct SectionOversight {
    section: entity::section::Model,
    counts: StatusCounts,
}

#[Object]
impl SectionOversight {
    async fn section(&self) -> Section {
        Section(self.section.clone())
    }

    /// Enrollments by status; every status is listed, zeros included.
    async fn counts(&self) -> Vec<StatusCount> {
        status_counts(&self.counts)
    }

    /// As `Oversight.completionRate`, for this section.
    async fn completion_rate(&self) -> Option<f64> {
        self.counts.completion_rate()
    }
}

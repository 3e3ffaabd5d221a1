//! Oversight of participation (docs/design.md#who-may-do-what): for a course or a whole
//! organization, the enrollments by status per section, the completion rate, the certifications
//! issued, how long students waited before a seat reached them, and who enrolled others.
//!
//! Every figure is counted in the database, in a fixed number of statements whatever the
//! numbers; the waits are read from the audit trail (the event that put an enrollment on the
//! waitlist and the one that promoted it).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    certification, course, enrollment, enrollment_event, organization, section,
    types::EnrollmentStatus,
};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, Iterable, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::rosters::{courses_where, require_course_staff};
use crate::{domain::viewer::Viewer, error::ApiError, store::Store};

/// What is overseen.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    /// One course, for its staff (teacher, coordinator of its organization, admin).
    Course(Uuid),
    /// Every course of an organization, for its coordinators and admins.
    Organization(Uuid),
}

/// The figures of a course or an organization.
#[derive(Clone, Debug)]
pub struct Oversight {
    /// Every section (inactive ones included), by course then name, with its counts.
    pub sections: Vec<(section::Model, StatusCounts)>,
    /// The counts over all sections.
    pub counts: StatusCounts,
    pub certifications_issued: u64,
    /// Seconds from joining the waitlist to being promoted, one entry per promotion, sorted.
    pub waits: Vec<f64>,
    /// Proxy enrollments (made by someone for someone else) by who made them, most first.
    pub proxies: Vec<(Uuid, u64)>,
}

/// How many enrollments are in each status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts(HashMap<EnrollmentStatus, u64>);

impl StatusCounts {
    pub fn get(&self, status: EnrollmentStatus) -> u64 {
        self.0.get(&status).copied().unwrap_or(0)
    }

    /// Every status, in the order of the schema's enum, zeros included.
    pub fn all(&self) -> Vec<(EnrollmentStatus, u64)> {
        EnrollmentStatus::iter().map(|s| (s, self.get(s))).collect()
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    fn add(&mut self, status: EnrollmentStatus, n: u64) {
        *self.0.entry(status).or_default() += n;
    }

    /// Completed ÷ (registered + completed + failed): of those admitted to a seat and not
    /// gone (withdrawn or cancelled), the share who completed. `None` when there are none.
    pub fn completion_rate(&self) -> Option<f64> {
        let completed = self.get(EnrollmentStatus::Completed);
        let admitted =
            self.get(EnrollmentStatus::Registered) + completed + self.get(EnrollmentStatus::Failed);
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        (admitted > 0).then(|| completed as f64 / admitted as f64)
    }
}

/// The `p`-quantile (0 to 1) of sorted values, interpolated between the nearest ranks as
/// PostgreSQL's `percentile_cont` does; `None` for no values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    #[allow(clippy::cast_precision_loss)]
    let rank = p.clamp(0.0, 1.0) * last as f64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let below = rank.floor() as usize;
    let above = (below + 1).min(last);
    #[allow(clippy::cast_precision_loss)]
    let fraction = rank - below as f64;
    Some(sorted[below] + (sorted[above] - sorted[below]) * fraction)
}

/// The figures of `scope`.
///
/// # Errors
/// `NOT_FOUND` for an unknown course or organization; `FORBIDDEN` unless staff of the course
/// (coordinator of the organization, or admin, for an organization); `INTERNAL` when the
/// database fails.
pub async fn oversee(store: &Store, viewer: &Viewer, scope: Scope) -> Result<Oversight, ApiError> {
    let db = store.db();
    match scope {
        Scope::Course(id) => {
            let course = course::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or(ApiError::NotFound("course"))?;
            require_course_staff(viewer, &course, "oversee it")?;
        }
        Scope::Organization(id) => {
            organization::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or(ApiError::NotFound("organization"))?;
            if !(viewer.is_admin() || viewer.coordinates(id)) {
                return Err(ApiError::forbidden(
                    "only the organization's coordinators oversee it",
                ));
            }
        }
    }
    let in_scope = |column: Expr| match scope {
        Scope::Course(id) => column.eq(id),
        Scope::Organization(id) => {
            column.in_subquery(courses_where(course::Column::OrganizationId.eq(id)))
        }
    };

    let mut sections = section::Entity::find()
        .filter(in_scope(Expr::col((
            section::Entity,
            section::Column::CourseId,
        ))))
        .all(db)
        .await?;
    sections.sort_by(|a, b| {
        a.course_id
            .cmp(&b.course_id)
            .then_with(|| crate::domain::order::sections(a, b))
    });

    let grouped: Vec<(Uuid, EnrollmentStatus, i64)> = enrollment::Entity::find()
        .select_only()
        .column(enrollment::Column::SectionId)
        .column(enrollment::Column::Status)
        .column_as(Expr::col(enrollment::Column::Id).count(), "n")
        .filter(in_scope(Expr::col((
            enrollment::Entity,
            enrollment::Column::CourseId,
        ))))
        .group_by(enrollment::Column::SectionId)
        .group_by(enrollment::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let mut by_section: HashMap<Uuid, StatusCounts> = HashMap::new();
    let mut counts = StatusCounts::default();
    for (section_id, status, n) in grouped {
        let n = u64::try_from(n).unwrap_or(0);
        by_section.entry(section_id).or_default().add(status, n);
        counts.add(status, n);
    }

    let certifications_issued = certification::Entity::find()
        .filter(in_scope(Expr::col((
            certification::Entity,
            certification::Column::CourseId,
        ))))
        .count(db)
        .await?;

    let proxies: Vec<(Uuid, i64)> = enrollment::Entity::find()
        .select_only()
        .column(enrollment::Column::EnrolledBy)
        .column_as(Expr::col(enrollment::Column::Id).count(), "n")
        .filter(in_scope(Expr::col((
            enrollment::Entity,
            enrollment::Column::CourseId,
        ))))
        .filter(enrollment::Column::EnrolledBy.is_not_null())
        .group_by(enrollment::Column::EnrolledBy)
        .into_tuple()
        .all(db)
        .await?;
    let mut proxies: Vec<(Uuid, u64)> = proxies
        .into_iter()
        .map(|(by, n)| (by, u64::try_from(n).unwrap_or(0)))
        .collect();
    proxies.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

    let waits = waits(store, &in_scope).await?;
    let sections = sections
        .into_iter()
        .map(|s| {
            let counts = by_section.remove(&s.id).unwrap_or_default();
            (s, counts)
        })
        .collect();
    Ok(Oversight {
        sections,
        counts,
        certifications_issued,
        waits,
        proxies,
    })
}

/// Seconds waited before each promotion in scope, sorted: from the latest event that put the
/// enrollment on the waitlist to the event that took it off into a seat (REGISTERED, or
/// PENDING in a section that approves).
async fn waits(
    store: &Store,
    in_scope: &impl Fn(Expr) -> sea_orm::sea_query::SimpleExpr,
) -> Result<Vec<f64>, ApiError> {
    use sea_orm::sea_query::Query;
    let enrollments = Query::select()
        .column(enrollment::Column::Id)
        .from(enrollment::Entity)
        .and_where(in_scope(Expr::col((
            enrollment::Entity,
            enrollment::Column::CourseId,
        ))))
        .to_owned();
    let rows: Vec<(
        Uuid,
        Option<EnrollmentStatus>,
        EnrollmentStatus,
        DateTime<Utc>,
    )> = enrollment_event::Entity::find()
        .select_only()
        .column(enrollment_event::Column::EnrollmentId)
        .column(enrollment_event::Column::FromStatus)
        .column(enrollment_event::Column::ToStatus)
        .column(enrollment_event::Column::At)
        .filter(enrollment_event::Column::EnrollmentId.in_subquery(enrollments))
        .filter(
            Condition::any()
                .add(enrollment_event::Column::ToStatus.eq(EnrollmentStatus::Waitlisted))
                .add(enrollment_event::Column::FromStatus.eq(EnrollmentStatus::Waitlisted)),
        )
        .order_by_asc(enrollment_event::Column::EnrollmentId)
        .order_by_asc(enrollment_event::Column::Id)
        .into_tuple()
        .all(store.db())
        .await?;
    let mut waits = Vec::new();
    let mut since: Option<(Uuid, DateTime<Utc>)> = None;
    for (enrollment_id, from, to, at) in rows {
        if to == EnrollmentStatus::Waitlisted {
            since = Some((enrollment_id, at));
        } else if from == Some(EnrollmentStatus::Waitlisted)
            && matches!(
                to,
                EnrollmentStatus::Registered
                    | EnrollmentStatus::Pending
                    | EnrollmentStatus::Offered
            )
            && let Some((waiting, joined)) = since
            && waiting == enrollment_id
        {
            #[allow(clippy::cast_precision_loss)] // microseconds of a wait
            waits.push((at - joined).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6);
            since = None;
        }
    }
    waits.sort_by(f64::total_cmp);
    Ok(waits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7.0], 0.9), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!((percentile(&ten, 0.9).unwrap() - 9.1).abs() < 1e-9);
        assert_eq!(percentile(&ten, 0.0), Some(1.0));
        assert_eq!(percentile(&ten, 1.0), Some(10.0));
    }

    #[test]
    fn completion_rate_counts_those_admitted_and_not_gone() {
        let mut counts = StatusCounts::default();
        assert_eq!(counts.completion_rate(), None);
        counts.add(EnrollmentStatus::Withdrawn, 5);
        counts.add(EnrollmentStatus::Waitlisted, 3);
        assert_eq!(counts.completion_rate(), None);
        counts.add(EnrollmentStatus::Completed, 3);
        counts.add(EnrollmentStatus::Failed, 1);
        assert_eq!(counts.completion_rate(), Some(0.75));
        counts.add(EnrollmentStatus::Registered, 4);
        assert_eq!(counts.completion_rate(), Some(3.0 / 8.0));
        assert_eq!(counts.total(), 16);
    }
}

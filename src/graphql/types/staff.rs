//! What the staff side reads and answers: connections of enrollments, users, certifications and
//! status changes (the audit trail), with their totals, and the per-id results of a bulk
//! confirmation.

use async_graphql::{
    Context, Object, Result, SimpleObject,
    connection::{Connection, Edge},
};
use uuid::Uuid;

use super::{Certification, Enrollment, EnrollmentEvent, User};
use crate::graphql::boxed;
use crate::{
    domain::cursor::{Cursor, NameCursor, SerialCursor},
    error::ApiError,
    graphql::{query::page_size, request},
    service::{
        compliance::{self, CertificationFilter, EventFilter},
        rosters::{self, EnrollmentFilter},
        users::{self, UserFilter},
    },
};

/// A page of enrollments, newest first.
pub type EnrollmentConnection = Connection<String, Enrollment, EnrollmentConnectionFields>;

pub struct EnrollmentConnectionFields {
    filter: EnrollmentFilter,
}

#[Object]
impl EnrollmentConnectionFields {
    /// How many enrollments match, over all pages, within the viewer's scope.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        boxed(async move {
            let rc = request(ctx)?;
            let viewer = rc.require_viewer()?;
            Ok(rosters::count_enrollments(&rc.store, viewer, &self.filter).await?)
        })
        .await
    }
}

/// One page of the enrollments matching `filter` within the viewer's scope.
pub(crate) async fn enrollment_page(
    ctx: &Context<'_>,
    filter: EnrollmentFilter,
    first: i32,
    after: Option<String>,
) -> Result<EnrollmentConnection> {
    let rc = request(ctx)?;
    let viewer = rc.require_viewer()?;
    let first = page_size(rc, first)?;
    let after = cursor(after, Cursor::decode)?;
    let page = rosters::enrollments(&rc.store, viewer, &filter, first, after).await?;
    let node = ctx.look_ahead().field("edges").field("node");
    Enrollment::prime(ctx, &node, &page.rows).await?;
    let mut connection = Connection::with_additional_fields(
        after.is_some(),
        page.has_next_page,
        EnrollmentConnectionFields { filter },
    );
    connection.edges = page
        .rows
        .into_iter()
        .map(|row| Edge::new(rosters::cursor_of(&row).encode(), Enrollment(row)))
        .collect();
    Ok(connection)
}

/// A page of the user directory, alphabetical.
pub type UserConnection = Connection<String, User, UserConnectionFields>;

pub struct UserConnectionFields {
    filter: UserFilter,
}

#[Object]
impl UserConnectionFields {
    /// How many users match, over all pages, within the viewer's scope.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        boxed(async move {
            let rc = request(ctx)?;
            let viewer = rc.require_viewer()?;
            Ok(users::count_directory(&rc.store, viewer, &self.filter).await?)
        })
        .await
    }
}

/// One page of the user directory.
pub(crate) async fn user_page(
    ctx: &Context<'_>,
    filter: UserFilter,
    first: i32,
    after: Option<String>,
) -> Result<UserConnection> {
    let rc = request(ctx)?;
    let viewer = rc.require_viewer()?;
    let first = page_size(rc, first)?;
    let after = cursor(after, NameCursor::decode)?;
    let has_previous = after.is_some();
    let page = users::directory(&rc.store, viewer, &filter, first, after).await?;
    let mut connection = Connection::with_additional_fields(
        has_previous,
        page.has_next_page,
        UserConnectionFields { filter },
    );
    connection.edges = page
        .rows
        .into_iter()
        .map(|row| {
            let cursor = NameCursor {
                name: row.name.clone(),
                id: row.id,
            };
            Edge::new(cursor.encode(), User(row))
        })
        .collect();
    Ok(connection)
}

/// The outcome for one id of a bulk change.
#[derive(SimpleObject)]
pub struct BulkResult {
    pub enrollment_id: Uuid,
    /// The enrollment as it now stands; null when this id failed.
    pub enrollment: Option<Enrollment>,
    /// Why this id failed; null when it succeeded.
    pub error: Option<BulkError>,
}

/// An error of one id in a bulk change, with the code it would have had alone.
#[derive(SimpleObject)]
pub struct BulkError {
    pub code: String,
    pub message: String,
}

impl BulkResult {
    pub fn of(id: Uuid, result: std::result::Result<entity::enrollment::Model, ApiError>) -> Self {
        match result {
            Ok(row) => Self {
                enrollment_id: id,
                enrollment: Some(Enrollment(row)),
                error: None,
            },
            Err(err) => Self {
                enrollment_id: id,
                enrollment: None,
                error: Some(BulkError {
                    code: err.code().to_owned(),
                    message: err.public_message(),
                }),
            },
        }
    }
}

/// Reads an `after` argument with `decode`; `BAD_USER_INPUT` for text no page of this listing
/// handed out.
pub(crate) fn cursor<C>(
    after: Option<String>,
    decode: impl Fn(&str) -> Option<C>,
) -> Result<Option<C>> {
    Ok(after
        .map(|text| {
            decode(&text).ok_or_else(|| ApiError::bad_input("after", "not a cursor from this API"))
        })
        .transpose()?)
}

/// A page of certifications, newest first.
pub type CertificationConnection = Connection<String, Certification, CertificationConnectionFields>;

pub struct CertificationConnectionFields {
    filter: CertificationFilter,
}

#[Object]
impl CertificationConnectionFields {
    /// How many certifications match, over all pages, within the viewer's scope.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        boxed(async move {
            let rc = request(ctx)?;
            let viewer = rc.require_viewer()?;
            Ok(compliance::count_certifications(&rc.store, viewer, &self.filter).await?)
        })
        .await
    }
}

/// One page of the certifications matching `filter` within the viewer's scope.
pub(crate) async fn certification_page(
    ctx: &Context<'_>,
    filter: CertificationFilter,
    first: i32,
    after: Option<String>,
) -> Result<CertificationConnection> {
    let rc = request(ctx)?;
    let viewer = rc.require_viewer()?;
    let first = page_size(rc, first)?;
    let after = cursor(after, Cursor::decode)?;
    let page = compliance::certifications(&rc.store, viewer, &filter, first, after).await?;
    let node = ctx.look_ahead().field("edges").field("node");
    Certification::prime(ctx, &node, &page.rows).await?;
    let mut connection = Connection::with_additional_fields(
        after.is_some(),
        page.has_next_page,
        CertificationConnectionFields { filter },
    );
    connection.edges = page
        .rows
        .into_iter()
        .map(|row| {
            let cursor = compliance::certification_cursor(&row).encode();
            Edge::new(cursor, Certification(row))
        })
        .collect();
    Ok(connection)
}

/// A page of the audit trail, newest first.
pub type EnrollmentEventConnection =
    Connection<String, EnrollmentEvent, EnrollmentEventConnectionFields>;

pub struct EnrollmentEventConnectionFields {
    filter: EventFilter,
}

#[Object]
impl EnrollmentEventConnectionFields {
    /// How many status changes match, over all pages, within the viewer's scope.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        boxed(async move {
            let rc = request(ctx)?;
            let viewer = rc.require_viewer()?;
            Ok(compliance::count_events(&rc.store, viewer, &self.filter).await?)
        })
        .await
    }
}

/// One page of the status changes matching `filter` within the viewer's scope.
pub(crate) async fn event_page(
    ctx: &Context<'_>,
    filter: EventFilter,
    first: i32,
    after: Option<String>,
) -> Result<EnrollmentEventConnection> {
    let rc = request(ctx)?;
    let viewer = rc.require_viewer()?;
    let first = page_size(rc, first)?;
    let after = cursor(after, SerialCursor::decode)?;
    let page = compliance::events(&rc.store, viewer, &filter, first, after).await?;
    let node = ctx.look_ahead().field("edges").field("node");
    EnrollmentEvent::prime(ctx, &node, &page.rows).await?;
    let mut connection = Connection::with_additional_fields(
        after.is_some(),
        page.has_next_page,
        EnrollmentEventConnectionFields { filter },
    );
    connection.edges = page
        .rows
        .into_iter()
        .map(|row| Edge::new(SerialCursor(row.id).encode(), EnrollmentEvent(row)))
        .collect();
    Ok(connection)
}

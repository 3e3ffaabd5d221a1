//! Calendar feeds (docs/design.md#time): a secret, revocable URL per user serving their seats
//! (and a teacher's or assistant's sections) as RFC 5545 events.
//!
//! The token is derived from a random nonce with the server's calendar key (HMAC-SHA256) and
//! never stored: the database keeps the nonce and the token's SHA-256, by which a request finds
//! its user. So `me { calendarUrl }` can show the URL again, a copy of the database alone
//! reveals no feed, and `resetCalendarUrl` (a new nonce) makes the old URL answer 404. The token
//! depends on no password and no bearer token.

use chrono::{DateTime, Utc};
use entity::{calendar_feed, types::Schedule};
use rand::Rng;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, Statement, sea_query::OnConflict,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    domain::{
        calendar::{Span, is_token, token_hash},
        ical::{self, FeedMeeting, FeedSection},
        viewer::Viewer,
    },
    error::ApiError,
    store::Store,
};

/// The viewer's feed URL; `None` until they make one with [`reset`] (or when the server's key
/// changed since: then they make a new one).
///
/// # Errors
/// The database fails.
pub async fn url(store: &Store, viewer: &Viewer) -> Result<Option<String>, ApiError> {
    let Some(feed) = calendar_feed::Entity::find_by_id(viewer.id())
        .one(store.db())
        .await?
    else {
        return Ok(None);
    };
    let links = store.calendar();
    let token = links.token(viewer.id(), &feed.nonce);
    Ok((token_hash(&token) == feed.token_hash).then(|| links.url(&token)))
}

/// Makes the viewer a new feed URL; the previous one answers 404 from now on.
///
/// # Errors
/// The database fails.
pub async fn reset(store: &Store, viewer: &Viewer) -> Result<String, ApiError> {
    let bytes: [u8; 32] = rand::rng().random();
    let nonce: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let links = store.calendar();
    let token = links.token(viewer.id(), &nonce);
    let row = calendar_feed::ActiveModel {
        user_id: Set(viewer.id()),
        nonce: Set(nonce),
        token_hash: Set(token_hash(&token)),
        created_at: Set(store.now()),
    };
    calendar_feed::Entity::insert(row)
        .on_conflict(
            OnConflict::column(calendar_feed::Column::UserId)
                .update_columns([
                    calendar_feed::Column::Nonce,
                    calendar_feed::Column::TokenHash,
                    calendar_feed::Column::CreatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(store.db())
        .await?;
    Ok(links.url(&token))
}

/// A rendered feed and its entity tag.
#[derive(Clone, Debug)]
pub struct Feed {
    /// A strong validator: the SHA-256 of everything the feed shows.
    pub etag: String,
    /// `text/calendar`, or `None` when the caller's `If-None-Match` matched `etag`.
    pub body: Option<String>,
}

/// The feed of `token`, or `None` for a token that is unknown or revoked. `if_none_match`: the
/// client's validator; when it matches, the feed is not rendered.
///
/// Two indexed reads: the token's user, then the rows the feed shows.
///
/// # Errors
/// The database fails.
pub async fn feed(
    store: &Store,
    token: &str,
    if_none_match: Option<&str>,
) -> Result<Option<Feed>, ApiError> {
    if !is_token(token) {
        return Ok(None);
    }
    let Some(owner) = calendar_feed::Entity::find()
        .filter(calendar_feed::Column::TokenHash.eq(token_hash(token)))
        .one(store.db())
        .await?
    else {
        return Ok(None);
    };
    let rows = rows(store, owner.user_id).await?;
    let mut digest = Sha256::new();
    for row in &rows {
        digest.update(format!("{row:?}\n").as_bytes());
    }
    let etag = format!(
        "\"{}\"",
        digest
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    if if_none_match
        .is_some_and(|given| given.trim() == "*" || given.split(',').any(|tag| tag.trim() == etag))
    {
        return Ok(Some(Feed { etag, body: None }));
    }
    let stamp = rows
        .iter()
        .map(|r| r.updated_at)
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH);
    let sections: Vec<FeedSection> = rows.into_iter().map(FeedSection::from).collect();
    let body = ical::render("Roster", &sections, stamp);
    Ok(Some(Feed {
        etag,
        body: Some(body),
    }))
}

/// What the feed shows of one section.
#[derive(Debug)]
struct Row {
    section_id: Uuid,
    section_name: String,
    schedule: Schedule,
    dates: Option<Span>,
    course_name: String,
    course_code: Option<String>,
    teacher: String,
    updated_at: DateTime<Utc>,
}

impl From<Row> for FeedSection {
    fn from(row: Row) -> Self {
        FeedSection {
            section_id: row.section_id,
            course_name: row.course_name,
            course_code: row.course_code.unwrap_or_default(),
            section_name: row.section_name,
            teacher: Some(row.teacher),
            meetings: row.schedule.0.iter().filter_map(FeedMeeting::of).collect(),
            dates: row.dates,
            updated_at: row.updated_at,
        }
    }
}

/// The active sections the user holds a seat in (PENDING, REGISTERED, OFFERED), teaches or
/// assists, with their course, teacher and term, in one statement.
async fn rows(store: &Store, user_id: Uuid) -> Result<Vec<Row>, ApiError> {
    const SQL: &str = "SELECT s.id, s.name, CAST(s.schedule AS TEXT), \
        CAST(COALESCE(s.starts_on, t.starts_on) AS TEXT), \
        CAST(COALESCE(s.ends_on, t.ends_on) AS TEXT), t.time_zone, CAST(t.holidays AS TEXT), \
        c.name, c.code, u.name, s.updated_at, c.updated_at, t.updated_at, u.updated_at \
        FROM sections s JOIN courses c ON c.id = s.course_id \
        JOIN users u ON u.id = c.teacher_id LEFT JOIN terms t ON t.id = s.term_id \
        WHERE s.is_active AND c.is_active AND (c.teacher_id = $1 OR s.assistant_id = $1 \
        OR s.id IN (SELECT e.section_id FROM enrollments e WHERE e.user_id = $1 \
        AND e.status IN ('PENDING', 'REGISTERED', 'OFFERED'))) \
        ORDER BY s.id";
    let db = store.db();
    let found = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            SQL,
            [user_id.into()],
        ))
        .await?;
    let mut rows = Vec::with_capacity(found.len());
    for r in found {
        let text = |i| r.try_get_by_index::<Option<String>>(i);
        let schedule: Schedule = super::json_column(text(2)?)?.unwrap_or_default();
        let dates = super::span_columns(text(3)?, text(4)?, text(5)?, text(6)?)?;
        let mut updated_at: DateTime<Utc> = r.try_get_by_index(10)?;
        for i in 11..=13 {
            if let Some(at) = r.try_get_by_index::<Option<DateTime<Utc>>>(i)? {
                updated_at = updated_at.max(at);
            }
        }
        rows.push(Row {
            section_id: r.try_get_by_index(0)?,
            section_name: r.try_get_by_index(1)?,
            schedule,
            dates,
            course_name: r.try_get_by_index(7)?,
            course_code: r.try_get_by_index(8)?,
            teacher: r.try_get_by_index(9)?,
            updated_at,
        });
    }
    Ok(rows)
}

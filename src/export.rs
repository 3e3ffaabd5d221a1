//! Exports for compliance (docs/design.md#who-may-do-what): `GET /export/enrollments.csv`, the
//! staff listing's rows as RFC 4180 CSV, with the same filters (query-string parameters) and the
//! same scope as `enrollments(filter)`. The body is streamed a page at a time, so memory stays
//! constant whatever the row count.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use entity::types::{EnrollmentStatus, Role};
use futures_util::stream;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    app::App,
    auth::{self, Viewer},
    error::ApiError,
    service::rosters::{self, EnrollmentFilter, ReportRow},
};

/// Rows read per page of the stream.
const PAGE: u64 = 1000;

/// The columns seeds 002 and 003 name, in order.
const COLUMNS: [&str; 11] = [
    "person",
    "email",
    "course",
    "section",
    "status",
    "enrolled_at",
    "enrolled_by",
    "completed_at",
    "confirmed_by",
    "certification_expires_at",
    "reason",
];

/// The query string: the fields of `EnrollmentFilter`, statuses comma-separated.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Params {
    course_id: Option<Uuid>,
    section_id: Option<Uuid>,
    user_id: Option<Uuid>,
    organization_id: Option<Uuid>,
    status: Option<String>,
    enrolled_by: Option<Uuid>,
    enrolled_after: Option<DateTime<Utc>>,
    enrolled_before: Option<DateTime<Utc>>,
    search: Option<String>,
}

impl Params {
    fn filter(self) -> Result<EnrollmentFilter, ApiError> {
        let statuses = self
            .status
            .map(|list| {
                list.split(',')
                    .map(|s| {
                        serde_json::from_value::<EnrollmentStatus>(serde_json::Value::String(
                            s.trim().to_owned(),
                        ))
                        .map_err(|_| ApiError::bad_input("status", format!("no status {s}")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(EnrollmentFilter {
            course_id: self.course_id,
            section_id: self.section_id,
            user_id: self.user_id,
            organization_id: self.organization_id,
            statuses,
            enrolled_by: self.enrolled_by,
            enrolled_after: self.enrolled_after,
            enrolled_before: self.enrolled_before,
            search: self.search,
        })
    }
}

/// `GET /export/enrollments.csv`: 401 without a valid bearer token, 403 for students (the
/// export is a staff report), 400 for a parameter that does not parse.
pub async fn enrollments(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let viewer = match auth::viewer_from_header(app.store.db(), &app.keys, authorization).await {
        Ok(Some(viewer)) => viewer,
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "sign in: send a bearer token"),
        Err(err) if err.code() == "UNAUTHENTICATED" => {
            return refuse(StatusCode::UNAUTHORIZED, &err.to_string());
        }
        Err(err) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &err.public_message()),
    };
    if viewer.role() == Role::Student {
        return refuse(StatusCode::FORBIDDEN, "the export is for staff");
    }
    let filter = match params.map_err(|e| ApiError::bad_input("query", e.body_text())) {
        Ok(Query(params)) => params.filter(),
        Err(err) => Err(err),
    };
    let filter = match filter {
        Ok(filter) => filter,
        Err(err) => return refuse(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    // Checked before the first byte goes out: a bad search is a 400, not a cut stream.
    if let Err(err) = rosters::search_pattern(filter.search.as_deref()) {
        return refuse(StatusCode::BAD_REQUEST, &err.to_string());
    }
    let state = Stream {
        app,
        viewer,
        filter,
        after: None,
        started: false,
        done: false,
    };
    let body = stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((chunk, state))
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"enrollments.csv\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Where the stream stands.
struct Stream {
    app: Arc<App>,
    viewer: Viewer,
    filter: EnrollmentFilter,
    after: Option<crate::domain::cursor::Cursor>,
    started: bool,
    done: bool,
}

impl Stream {
    /// The header line first, then one page of rows per call; `None` at the end. A database
    /// failure midway ends the body early (the client sees a truncated transfer) and is logged.
    async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, std::io::Error>> {
        if self.done {
            return None;
        }
        let mut writer = csv::Writer::from_writer(Vec::new());
        if !self.started {
            self.started = true;
            if let Err(err) = writer.write_record(COLUMNS) {
                return Some(Err(std::io::Error::other(err)));
            }
        }
        let page = rosters::report_page(
            &self.app.store,
            &self.viewer,
            &self.filter,
            PAGE,
            self.after,
        )
        .await;
        let page = match page {
            Ok(page) => page,
            Err(err) => {
                self.done = true;
                let message = err.public_message();
                tracing::warn!(error = %message, "the export stopped");
                return Some(Err(std::io::Error::other(message)));
            }
        };
        self.done = !page.has_next_page;
        self.after = page
            .rows
            .last()
            .map(|row| rosters::cursor_of(&row.enrollment));
        for row in &page.rows {
            if let Err(err) = writer.write_record(record(row)) {
                return Some(Err(std::io::Error::other(err)));
            }
        }
        Some(
            writer
                .into_inner()
                .map_err(|e| std::io::Error::other(e.to_string())),
        )
    }
}

fn record(row: &ReportRow) -> [String; 11] {
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    let name =
        |u: &Option<entity::user::Model>| u.as_ref().map(|u| u.name.clone()).unwrap_or_default();
    let e = &row.enrollment;
    [
        name(&row.user),
        row.user
            .as_ref()
            .map(|u| u.email.clone())
            .unwrap_or_default(),
        row.course.clone(),
        row.section.clone(),
        serde_json::to_value(e.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        time(Some(e.enrolled_at)),
        name(&row.enrolled_by),
        time(e.completed_at),
        name(&row.completed_by),
        time(row.certification_expires_at),
        e.reason.clone().unwrap_or_default(),
    ]
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

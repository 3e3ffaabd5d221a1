//! Exports for compliance (docs/design.md#who-may-do-what): `GET /export/enrollments.csv` and
//! `GET /export/certifications.csv`, the rows of the staff listings `enrollments(filter)` and
//! `certifications(filter)` as RFC 4180 CSV, with the same filters (query-string parameters)
//! and the same scope. The body is streamed a page at a time, so memory stays constant whatever
//! the row count. Lines end with CRLF (RFC 4180), and a cell a spreadsheet would take for a
//! formula is written with a leading single quote ([`neutralized`]).

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use entity::types::EnrollmentStatus;
use futures_util::{StreamExt, stream};
use sea_orm::ActiveEnum;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    app::App,
    domain::{cursor::Cursor, viewer::Viewer, visibility},
    error::ApiError,
    identity::tokens,
    service::{
        compliance::{self, CertificationFilter, CertificationRow},
        listing,
        rosters::{self, EnrollmentFilter, ReportRow},
    },
};

/// Rows read per page of the stream.
const PAGE: u64 = 1000;

/// The columns of the enrollment report that seeds 002 and 003 name, in order, then when a
/// withdrawal happened and what it left on the transcript (docs/design.md#time).
const ENROLLMENT_COLUMNS: [&str; 13] = [
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
    "withdrawn_at",
    "record",
];

/// The columns of the certification report, in order.
const CERTIFICATION_COLUMNS: [&str; 9] = [
    "person",
    "email",
    "course",
    "section",
    "issued_at",
    "expires_at",
    "valid",
    "completed_at",
    "confirmed_by",
];

/// The query string of the enrollment report: the fields of `EnrollmentFilter`, statuses
/// comma-separated.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnrollmentParams {
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

impl EnrollmentParams {
    fn report(self) -> Result<Report, ApiError> {
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
        Ok(Report::Enrollments(EnrollmentFilter {
            course_id: self.course_id,
            section_id: self.section_id,
            user_id: self.user_id,
            organization_id: self.organization_id,
            statuses,
            enrolled_by: self.enrolled_by,
            enrolled_after: self.enrolled_after,
            enrolled_before: self.enrolled_before,
            search: self.search,
        }))
    }
}

/// The query string of the certification report: the fields of `CertificationFilter`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificationParams {
    course_id: Option<Uuid>,
    organization_id: Option<Uuid>,
    user_id: Option<Uuid>,
    expires_before: Option<DateTime<Utc>>,
    issued_after: Option<DateTime<Utc>>,
    issued_before: Option<DateTime<Utc>>,
    search: Option<String>,
}

impl CertificationParams {
    fn report(self) -> Report {
        Report::Certifications(CertificationFilter {
            course_id: self.course_id,
            organization_id: self.organization_id,
            user_id: self.user_id,
            expires_before: self.expires_before,
            issued_after: self.issued_after,
            issued_before: self.issued_before,
            search: self.search,
        })
    }
}

/// `GET /export/enrollments.csv`: see [`export`] for what is refused.
pub async fn enrollments(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<EnrollmentParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let report = params
        .map_err(|e| ApiError::bad_input("query", e.body_text()))
        .and_then(|Query(params)| params.report());
    export(app, &headers, report).await
}

/// `GET /export/certifications.csv`: as [`enrollments`], for `certifications(filter)`.
pub async fn certifications(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    params: Result<Query<CertificationParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let report = params
        .map_err(|e| ApiError::bad_input("query", e.body_text()))
        .map(|Query(params)| params.report());
    export(app, &headers, report).await
}

/// Which report, with its filter.
enum Report {
    Enrollments(EnrollmentFilter),
    Certifications(CertificationFilter),
}

impl Report {
    fn file_name(&self) -> &'static str {
        match self {
            Self::Enrollments(_) => "enrollments.csv",
            Self::Certifications(_) => "certifications.csv",
        }
    }

    fn columns(&self) -> &'static [&'static str] {
        match self {
            Self::Enrollments(_) => &ENROLLMENT_COLUMNS,
            Self::Certifications(_) => &CERTIFICATION_COLUMNS,
        }
    }

    /// The course, section and organization the filter names.
    fn targets(&self) -> (Option<Uuid>, Option<Uuid>, Option<Uuid>) {
        match self {
            Self::Enrollments(f) => (f.course_id, f.section_id, f.organization_id),
            Self::Certifications(f) => (f.course_id, None, f.organization_id),
        }
    }

    fn search(&self) -> Option<&str> {
        match self {
            Self::Enrollments(filter) => filter.search.as_deref(),
            Self::Certifications(filter) => filter.search.as_deref(),
        }
    }

    /// One page of records after `after`, the cursor of its last row, and whether more follow.
    async fn page(
        &self,
        app: &App,
        viewer: &Viewer,
        after: Option<Cursor>,
    ) -> Result<(Vec<Vec<String>>, Option<Cursor>, bool), ApiError> {
        match self {
            Self::Enrollments(filter) => {
                let page = rosters::report_page(&app.store, viewer, filter, PAGE, after).await?;
                let last = page.rows.last().map(|r| rosters::cursor_of(&r.enrollment));
                let records = page
                    .rows
                    .iter()
                    .map(|row| enrollment_record(row, viewer))
                    .collect();
                Ok((records, last, page.has_next_page))
            }
            Self::Certifications(filter) => {
                let page =
                    compliance::certification_report_page(&app.store, viewer, filter, PAGE, after)
                        .await?;
                let last = page
                    .rows
                    .last()
                    .map(|r| compliance::certification_cursor(&r.certification));
                let now = app.store.now();
                let records = page
                    .rows
                    .iter()
                    .map(|row| certification_record(row, now, viewer))
                    .collect();
                Ok((records, last, page.has_next_page))
            }
        }
    }
}

/// 401 without a valid bearer token; 403 for someone who staffs nothing (the exports are staff
/// reports) or whose filter names a course, section or organization they do not staff; 400 for
/// a parameter that does not parse; otherwise the report, streamed.
async fn export(app: Arc<App>, headers: &HeaderMap, report: Result<Report, ApiError>) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let viewer = match tokens::viewer_from_header(&app.store, &app.keys, authorization).await {
        Ok(Some(viewer)) => viewer,
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "sign in: send a bearer token"),
        Err(err) if err.code() == "UNAUTHENTICATED" => {
            return refuse(StatusCode::UNAUTHORIZED, &err.to_string());
        }
        Err(err) => return failed(&err),
    };
    let report = match report {
        Ok(report) => report,
        Err(err) => return refuse(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let (course, section, organization) = report.targets();
    match rosters::require_report_scope(&app.store, &viewer, course, section, organization).await {
        Ok(()) => {}
        Err(err) if err.code() == "FORBIDDEN" || err.code() == "NOT_FOUND" => {
            return refuse(StatusCode::FORBIDDEN, &err.to_string());
        }
        Err(err) => return failed(&err),
    }
    // Checked before the first byte goes out: a bad search is a 400, not a cut stream.
    if let Err(err) = listing::search_pattern(report.search()) {
        return refuse(StatusCode::BAD_REQUEST, &err.to_string());
    }
    let disposition = format!("attachment; filename=\"{}\"", report.file_name());
    let state = Stream {
        app,
        viewer,
        report,
        after: None,
        started: false,
        done: false,
    };
    // Fused: the compression layer polls a body once more after its end, which an unfused
    // `unfold` answers with a panic (and the client with an empty 200).
    let body = stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((chunk, state))
    })
    .fuse();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Where the stream stands.
struct Stream {
    app: Arc<App>,
    viewer: Viewer,
    report: Report,
    after: Option<Cursor>,
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
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        if !self.started {
            self.started = true;
            if let Err(err) = writer.write_record(self.report.columns()) {
                return Some(Err(std::io::Error::other(err)));
            }
        }
        let page = self.report.page(&self.app, &self.viewer, self.after).await;
        let (records, last, more) = match page {
            Ok(page) => page,
            Err(err) => {
                self.done = true;
                let message = err.public_message();
                tracing::warn!(error = %message, "the export stopped");
                return Some(Err(std::io::Error::other(message)));
            }
        };
        self.done = !more;
        self.after = last;
        for record in &records {
            let cells: Vec<_> = record.iter().map(|cell| neutralized(cell)).collect();
            if let Err(err) = writer.write_record(cells.iter().map(|cell| cell.as_bytes())) {
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

/// `cell` as a spreadsheet will not run it: a cell that begins with `=`, `+`, `-`, `@`, a tab
/// or a carriage return is a formula to Excel, LibreOffice and Google Sheets, so it gets a
/// leading single quote, as OWASP's "CSV Injection" advises. Students write some of these cells
/// (their name, a reason).
fn neutralized(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_default()
}

fn name(user: Option<&entity::user::Model>) -> String {
    user.map(|u| u.name.clone()).unwrap_or_default()
}

/// The e-mail as the API would show it to `viewer` (`visibility::may_see_email`): a student's
/// only to admins and coordinators of the student's organization, otherwise empty.
fn email(user: Option<&entity::user::Model>, viewer: &Viewer) -> String {
    user.filter(|u| visibility::may_see_email(Some(viewer), u))
        .map(|u| u.email.clone())
        .unwrap_or_default()
}

fn enrollment_record(row: &ReportRow, viewer: &Viewer) -> Vec<String> {
    let e = &row.enrollment;
    vec![
        name(row.user.as_ref()),
        email(row.user.as_ref(), viewer),
        row.course.clone(),
        row.section.clone(),
        serde_json::to_value(e.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        time(Some(e.enrolled_at)),
        name(row.enrolled_by.as_ref()),
        time(e.completed_at),
        name(row.completed_by.as_ref()),
        time(row.certification_expires_at),
        e.reason.clone().unwrap_or_default(),
        time(e.withdrawn_at),
        e.record.map(|r| r.to_value()).unwrap_or_default(),
    ]
}

fn certification_record(
    row: &CertificationRow,
    now: DateTime<Utc>,
    viewer: &Viewer,
) -> Vec<String> {
    let c = &row.certification;
    vec![
        name(row.user.as_ref()),
        email(row.user.as_ref(), viewer),
        row.course.clone(),
        row.section.clone(),
        time(Some(c.issued_at)),
        time(c.expires_at),
        c.expires_at.is_none_or(|at| at > now).to_string(),
        time(row.completed_at),
        name(row.confirmed_by.as_ref()),
    ]
}

/// 503 with `Retry-After` when the database cannot be had (`UNAVAILABLE`), 500 otherwise.
pub(super) fn failed(err: &ApiError) -> Response {
    if err.code() != "UNAVAILABLE" {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, &err.public_message());
    }
    let mut response = refuse(StatusCode::SERVICE_UNAVAILABLE, &err.public_message());
    response.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

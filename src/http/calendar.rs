//! `GET /calendar/{token}.ics`: a user's calendar feed (docs/design.md#time). The token is the
//! only credential; a wrong or revoked one is a bare 404. Calendar applications poll every few
//! minutes: `ETag` and `If-None-Match` answer them 304 without rendering the feed.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::export::failed;
use crate::{app::App, service::calendar};

pub async fn feed(
    State(app): State<Arc<App>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = file.strip_suffix(".ics") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let feed = match calendar::feed(&app.store, token, if_none_match).await {
        Ok(Some(feed)) => feed,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(err) => return failed(&err),
    };
    let mut response = match feed.body {
        Some(body) => (
            [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
            body,
        )
            .into_response(),
        None => StatusCode::NOT_MODIFIED.into_response(),
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&feed.etag) {
        headers.insert(header::ETAG, etag);
    }
    // The URL is the credential: no shared cache may keep the feed.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    response
}

//! Turns every error a response carries into one with a stable `extensions.code`.
//!
//! Resolvers return [`ApiError`] (through `?`), which async-graphql keeps as the error's source.
//! [`normalize_all`] (run on every response by [`super::hooks`]) reads that source back: domain errors get their code (and details such as the
//! offending field); anything else that reached a response, like a database error converted by
//! async-graphql's blanket `From<Display>`, is logged with a correlation id and replaced by an
//! opaque `INTERNAL` error, so no SQL or driver text reaches a client.

use async_graphql::{Response, ServerError, Value};
use uuid::Uuid;

use sea_orm::DbErr;

use crate::error::{ApiError, is_unavailable};

/// Gives every error of `response` a stable code (see the module documentation).
pub fn normalize_all(response: &mut Response) {
    response.errors.iter_mut().for_each(normalize);
}

/// A GraphQL error for `err`, for failures that happen before execution (authentication).
pub fn to_server_error(err: &ApiError) -> ServerError {
    let mut error = ServerError::new(err.to_string(), None);
    describe(&mut error, err);
    error
}

fn normalize(error: &mut ServerError) {
    if let Some(api) = error.source::<ApiError>() {
        let api: &ApiError = api;
        // Read what we need before mutating `error`, which owns `api`'s Arc.
        let api_message = api.to_string();
        let mut described = ServerError::new(api_message, None);
        describe(&mut described, api);
        error.message = described.message;
        error.extensions = described.extensions;
        return;
    }
    let unavailable = error
        .source::<std::sync::Arc<DbErr>>()
        .is_some_and(|e| is_unavailable(e))
        || error.source::<DbErr>().is_some_and(is_unavailable);
    if unavailable {
        // A loader's database error: the database, not the request, failed.
        let described = to_server_error(&ApiError::Unavailable);
        error.message = described.message;
        error.extensions = described.extensions;
        return;
    }
    if error.source.is_some() {
        let id = Uuid::new_v4();
        tracing::error!(correlation_id = %id, error = %error.message, path = ?error.path, "internal error");
        error.message = format!("internal error (correlation id {id})");
        error.extensions = None;
        set(error, "code", "INTERNAL");
        set(error, "correlationId", id.to_string());
        return;
    }
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some());
    if !has_code {
        one_line(&mut error.message);
        // Errors without a source come from async-graphql itself: a document that does not
        // parse or validate (no path), or an argument value it could not coerce (a path).
        // async-graphql's own limits, named like ours.
        let limit = match error.message.as_str() {
            "Query is nested too deep." => Some("depth"),
            "Query is too complex." => Some("complexity"),
            _ => None,
        };
        if let Some(limit) = limit {
            set(error, "code", "LIMIT_EXCEEDED");
            set(error, "limit", limit);
            return;
        }
        // Automatic persisted queries: the hash is unknown here, send the query with it.
        let code = if error.message == "PersistedQueryNotFound" {
            "PERSISTED_QUERY_NOT_FOUND"
        } else if error.path.is_empty() {
            "GRAPHQL_VALIDATION_FAILED"
        } else {
            "BAD_USER_INPUT"
        };
        set(error, "code", code);
    }
}

/// The parser renders a syntax error over several lines with a picture of the document; the
/// position is already in `locations`, so the message keeps only what was expected, on one line.
fn one_line(message: &mut String) {
    if !message.contains('\n') {
        return;
    }
    let expected = message
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("= "));
    *message = match expected {
        Some(what) => format!("syntax error: {what}"),
        None => message.split_whitespace().collect::<Vec<_>>().join(" "),
    };
}

fn describe(error: &mut ServerError, api: &ApiError) {
    match api {
        ApiError::Internal(cause) => {
            let id = Uuid::new_v4();
            tracing::error!(correlation_id = %id, error = %cause, "internal error");
            error.message = format!("internal error (correlation id {id})");
            set(error, "correlationId", id.to_string());
        }
        ApiError::BadUserInput { field, .. } => set(error, "field", field.clone()),
        ApiError::TooManyAttempts {
            retry_after_seconds,
        } => set(error, "retryAfterSeconds", *retry_after_seconds),
        ApiError::InvalidTransition { from, .. } => set(error, "currentStatus", from.clone()),
        ApiError::EnrollmentNotOpen { opens_at } => set(
            error,
            "opensAt",
            opens_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        ApiError::EnrollmentClosed { closed_at } => set(
            error,
            "closedAt",
            closed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        ApiError::PrerequisitesMissing { ids, .. } => set(
            error,
            "missingCourseIds",
            Value::List(ids.iter().map(|id| Value::from(id.to_string())).collect()),
        ),
        _ => {}
    }
    set(error, "code", api.code());
}

fn set(error: &mut ServerError, name: &str, value: impl Into<Value>) {
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set(name, value);
}

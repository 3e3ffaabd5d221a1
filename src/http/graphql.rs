//! GraphQL over HTTP, as the GraphQL-over-HTTP specification (and the `graphql-http` audit)
//! has it.
//!
//! - The response type follows `Accept`: `application/graphql-response+json` when the client
//!   lists it, else `application/json` (also when `Accept` is missing or `*/*`).
//! - With `application/graphql-response+json`, a request that fails before execution (a
//!   document that does not parse or validate, variables that do not coerce) answers 400, and
//!   a bad bearer token 401, without a `data` entry; anything that executed answers 200.
//!   With `application/json` every GraphQL response is 200, for older clients.
//! - `POST` needs `Content-Type: application/json` (415 otherwise); a body that is not a GraphQL
//!   request is 400. `GET` runs queries only: a mutation there is 405 with `Allow: POST`.
//! - An anonymous query (a single one, POSTed as JSON or sent with GET) may be answered from the
//!   response cache, which is exact: see [`crate::response_cache`].

use std::sync::Arc;

use async_graphql::{
    BatchRequest, BatchResponse, ServerError,
    parser::{
        parse_query,
        types::{ExecutableDocument, OperationType},
    },
};
use async_graphql_axum::{GraphQLBatchRequest, rejection::GraphQLRejection};
use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    app::App,
    graphql::limits,
    response_cache::{Key, Lookup, Reusable, Version},
};

/// The two response media types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    GraphqlResponseJson,
    Json,
}

impl Media {
    /// What the client accepts, by its `Accept` header.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let accepts = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if accepts.contains("application/graphql-response+json") {
            Self::GraphqlResponseJson
        } else {
            Self::Json
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(self.name())
    }
}

/// `POST /graphql`.
pub async fn post(State(state): State<Arc<App>>, request: Request) -> Response {
    let media = Media::negotiate(request.headers());
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let understood = [
        "application/json",
        "application/graphql",
        "multipart/form-data",
    ]
    .iter()
    .any(|t| content_type.starts_with(t));
    if !understood {
        return failure(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request as Content-Type: application/json",
        );
    }
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|n| n > state.limits.body_bytes) {
        return body_too_large(media, state.limits.body_bytes);
    }
    let cacheable = content_type.starts_with("application/json");
    within_time_limit(&state, media, run(&state, request, media, cacheable)).await
}

/// Answers with `handling`, or with a `timeout` error once the request time limit has passed,
/// whatever it was waiting for (authentication, the response cache, execution).
async fn within_time_limit(
    state: &App,
    media: Media,
    handling: impl Future<Output = Response>,
) -> Response {
    let limit = state.limits.timeout;
    match tokio::time::timeout(limit, handling).await {
        Ok(response) => response,
        // As for UNAVAILABLE: 503 under application/graphql-response+json, 200 under
        // application/json.
        Err(_) => limit_failure(
            media,
            match media {
                Media::GraphqlResponseJson => StatusCode::SERVICE_UNAVAILABLE,
                Media::Json => StatusCode::OK,
            },
            "timeout",
            &format!("the request ran longer than the {limit:?} limit"),
        ),
    }
}

/// `GET /graphql?query=…&operationName=…&variables=…&extensions=…` (browsers get GraphiQL
/// instead, see [`crate::app`]). Queries only.
pub async fn get(State(state): State<Arc<App>>, request: Request) -> Response {
    let media = Media::negotiate(request.headers());
    let single = match from_query_string(request.uri().query().unwrap_or_default()) {
        Ok(single) => single,
        Err(message) => return failure(media, StatusCode::BAD_REQUEST, &message),
    };
    let persisted_mutation = match state.persisted_document(&single).await {
        Some(document) => operations(&document, single.operation_name.as_deref())
            .contains(&OperationType::Mutation),
        None => false,
    };
    if is_mutation(&single) || persisted_mutation {
        let mut response = failure(
            media,
            StatusCode::METHOD_NOT_ALLOWED,
            "mutations are sent with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let authorization = bearer(request.headers());
    let key = (authorization.is_none() && state.response_cache.enabled()).then(|| Key {
        media: media.name(),
        request: Bytes::copy_from_slice(request.uri().query().unwrap_or_default().as_bytes()),
    });
    let handling = async {
        let store = match key {
            Some(key) => match consult(&state, key, media).await {
                Ok(store) => store,
                Err(hit) => return hit,
            },
            None => None,
        };
        answer(
            &state,
            BatchRequest::Single(single),
            authorization.as_deref(),
            media,
            store,
        )
        .await
    };
    within_time_limit(&state, media, handling).await
}

/// Looks `key` up in the response cache: `Err` is the stored answer to send; `Ok` says what to
/// keep a fresh answer under, if anything.
async fn consult(state: &App, key: Key, media: Media) -> Result<Option<(Key, Version)>, Response> {
    match state.response_cache.lookup(&key).await {
        Lookup::Hit(body) => Err(cached(body, media)),
        Lookup::Miss(version) => Ok(Some((key, version))),
        Lookup::Off => Ok(None),
        Lookup::Unavailable => {
            let error =
                crate::graphql::errors::to_server_error(&crate::error::ApiError::Unavailable);
            Err(respond(
                BatchResponse::Single(async_graphql::Response::from_errors(vec![error])),
                media,
            ))
        }
    }
}

/// Runs `batch` and answers it; with `store`, keeps the answer if it may be reused.
async fn answer(
    state: &App,
    batch: BatchRequest,
    authorization: Option<&str>,
    media: Media,
    store: Option<(Key, Version)>,
) -> Response {
    let Some((key, version)) = store else {
        return respond(state.execute(batch, authorization).await, media);
    };
    let query_only = match &batch {
        BatchRequest::Single(single) => is_query(single),
        BatchRequest::Batch(_) => false,
    };
    let reusable = Reusable::new();
    let response = state.execute_tracked(batch, authorization, &reusable).await;
    let keep = query_only
        && reusable.get()
        && matches!(&response, BatchResponse::Single(single)
            if single.errors.is_empty() && single.http_headers.is_empty());
    if !keep {
        return respond(response, media);
    }
    let (status, headers, body) = render(response, media);
    let body = Bytes::from(body);
    state.response_cache.store(key, version, body.clone());
    let mut response = into_response(status, headers, body, media);
    response
        .headers_mut()
        .insert(X_CACHE, HeaderValue::from_static("miss"));
    response
}

/// Says whether an answer came from the response cache (`hit`) or was computed and kept
/// (`miss`); absent when the answer could not be kept.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// A stored answer: always a 200 with data and no errors.
fn cached(body: Bytes, media: Media) -> Response {
    crate::metrics::record_operation("cached", true, 0.0);
    let mut response = into_response(StatusCode::OK, HeaderMap::new(), body, media);
    response
        .headers_mut()
        .insert(X_CACHE, HeaderValue::from_static("hit"));
    response
}

/// The GraphQL request in a GET query string, with the specification's parameter names.
fn from_query_string(query_string: &str) -> Result<async_graphql::Request, String> {
    #[derive(serde::Deserialize)]
    struct Params {
        query: Option<String>,
        #[serde(rename = "operationName")]
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    let params: Params =
        serde_urlencoded::from_str(query_string).map_err(|e| format!("bad query string: {e}"))?;
    // A persisted query's hash may stand in for the document.
    let persisted = params
        .extensions
        .as_deref()
        .is_some_and(|e| e.contains("persistedQuery"));
    let query = match params.query {
        Some(query) => query,
        None if persisted => String::new(),
        None => return Err("the `query` parameter is missing".into()),
    };
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = params.operation_name.filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    if let Some(variables) = params.variables.filter(|v| !v.is_empty()) {
        let json: serde_json::Value = serde_json::from_str(&variables)
            .map_err(|e| format!("`variables` is not JSON: {e}"))?;
        request = request.variables(async_graphql::Variables::from_json(json));
    }
    if let Some(extensions) = params.extensions.filter(|v| !v.is_empty()) {
        request.extensions = serde_json::from_str(&extensions)
            .map_err(|e| format!("`extensions` is not a JSON object: {e}"))?;
    }
    Ok(request)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn run(state: &App, request: Request, media: Media, json: bool) -> Response {
    let authorization = bearer(request.headers());
    let mut store = None;
    let mut request = request;
    if json {
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, state.limits.body_bytes).await {
            Ok(bytes) => bytes,
            Err(_) => return body_too_large(media, state.limits.body_bytes),
        };
        // `[]` would parse as one request with an empty document (serde reads a struct from a
        // sequence), and be refused as a syntax error: say what is wrong with it instead.
        let empty_batch = bytes
            .trim_ascii()
            .strip_prefix(b"[")
            .is_some_and(|rest| rest.trim_ascii() == b"]");
        if empty_batch {
            return failure(
                media,
                StatusCode::BAD_REQUEST,
                "an empty batch: a batch needs at least one operation",
            );
        }
        if authorization.is_none() && state.response_cache.enabled() {
            let key = Key {
                media: media.name(),
                request: bytes.clone(),
            };
            store = match consult(state, key, media).await {
                Ok(store) => store,
                Err(hit) => return hit,
            };
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    let batch = match GraphQLBatchRequest::<GraphQLRejection>::from_request(request, &()).await {
        Ok(batch) => batch.into_inner(),
        Err(rejection) => {
            return failure(
                media,
                StatusCode::BAD_REQUEST,
                &format!("not a GraphQL request: {}", rejection.0),
            );
        }
    };
    if let BatchRequest::Batch(many) = &batch
        && many.len() > state.limits.batch
    {
        // A request error: 400 under application/graphql-response+json; under
        // application/json the GraphQL-over-HTTP specification answers it with 200.
        let status = match media {
            Media::GraphqlResponseJson => StatusCode::BAD_REQUEST,
            Media::Json => StatusCode::OK,
        };
        return limit_failure(
            media,
            status,
            "batch",
            &format!(
                "the batch holds {} operations; the limit is {}",
                many.len(),
                state.limits.batch
            ),
        );
    }
    answer(state, batch, authorization.as_deref(), media, store).await
}

/// The types of the operations `request` may select: the one named by `operationName`, or every
/// operation of the document when it names none. Empty when the document does not parse.
fn selected_operations(request: &async_graphql::Request) -> Vec<OperationType> {
    let Ok(document) = parse_query(&request.query) else {
        return Vec::new();
    };
    operations(&document, request.operation_name.as_deref())
}

/// The types of the operations of `document` that `wanted` selects (all when `None`).
fn operations(document: &ExecutableDocument, wanted: Option<&str>) -> Vec<OperationType> {
    document
        .operations
        .iter()
        .filter(|(name, _)| wanted.is_none() || name.map(|n| n.as_str()) == wanted)
        .map(|(_, operation)| operation.node.ty)
        .collect()
}

/// Whether the operation the request selects is a mutation. A document that does not parse is
/// left to execution, which reports it.
fn is_mutation(request: &async_graphql::Request) -> bool {
    selected_operations(request).contains(&OperationType::Mutation)
}

/// Whether the request's document parses and selects exactly one operation, a query. Only the
/// answers to those are kept; a request with a persisted query's hash instead of a document is
/// answered but not kept.
fn is_query(request: &async_graphql::Request) -> bool {
    selected_operations(request) == [OperationType::Query]
}

fn respond(response: BatchResponse, media: Media) -> Response {
    let (status, headers, body) = render(response, media);
    into_response(status, headers, body, media)
}

/// The status, extra headers and body that answer `response` as `media`.
fn render(response: BatchResponse, media: Media) -> (StatusCode, HeaderMap, Vec<u8>) {
    match response {
        BatchResponse::Single(single) => {
            let early = crate::graphql::refused(&single);
            let unavailable = single.errors.iter().any(|e| {
                e.extensions
                    .as_ref()
                    .and_then(|x| x.get("code"))
                    .is_some_and(|c| *c == async_graphql::Value::from("UNAVAILABLE"))
            });
            let status = if media == Media::GraphqlResponseJson && unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else if media == Media::GraphqlResponseJson && early {
                let unauthenticated = single.errors.iter().any(|e| {
                    e.extensions
                        .as_ref()
                        .and_then(|x| x.get("code"))
                        .is_some_and(|c| *c == async_graphql::Value::from("UNAUTHENTICATED"))
                });
                if unauthenticated {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::BAD_REQUEST
                }
            } else {
                StatusCode::OK
            };
            let mut headers = single.http_headers.clone();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                // The database, or the write path, is busy or away: try again shortly.
                headers.insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
            }
            // A request error never executed, so its response has no `data` entry (GraphQL
            // spec, "Response Format"), under either media type.
            let body = if status == StatusCode::OK && !early {
                serde_json::to_vec(&single).unwrap_or_default()
            } else {
                let mut body = serde_json::to_value(&single).unwrap_or_default();
                if let Some(object) = body.as_object_mut() {
                    object.remove("data");
                }
                body.to_string().into_bytes()
            };
            (status, headers, body)
        }
        BatchResponse::Batch(many) => (
            StatusCode::OK,
            HeaderMap::new(),
            serde_json::to_vec(&many).unwrap_or_default(),
        ),
    }
}

fn into_response(
    status: StatusCode,
    headers: HeaderMap,
    body: impl Into<Body>,
    media: Media,
) -> Response {
    let mut response = (status, body.into()).into_response();
    response.headers_mut().extend(headers);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.content_type());
    response
}

/// A body over the `bodyBytes` limit: 413.
fn body_too_large(media: Media, limit: usize) -> Response {
    limit_failure(
        media,
        StatusCode::PAYLOAD_TOO_LARGE,
        "bodyBytes",
        &format!("the request body is larger than the {limit}-byte limit"),
    )
}

/// A request refused for exceeding `limit`: `LIMIT_EXCEEDED` with `extensions.limit`. Counted
/// as refused, as every request answered before execution is, except one that ran out of time
/// (its operation had begun).
fn limit_failure(media: Media, status: StatusCode, limit: &str, message: &str) -> Response {
    if limit != "timeout" {
        crate::metrics::record_operation("refused", false, 0.0);
    }
    refusal(media, status, limits::exceeded(limit, message))
}

/// A request that could not be run at all, as a GraphQL response with one error; counted as
/// refused.
fn failure(media: Media, status: StatusCode, message: &str) -> Response {
    crate::metrics::record_operation("refused", false, 0.0);
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        _ => "BAD_REQUEST",
    };
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    refusal(media, status, error)
}

/// `{ "errors": [error] }` with `status`, as `media`.
fn refusal(media: Media, status: StatusCode, error: ServerError) -> Response {
    let body = serde_json::json!({ "errors": [error] });
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.content_type());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_selected_operation_counts() {
        let document =
            "query Q { me { id } } mutation M { createCourse(input: { name: \"X\" }) { id } }";
        let request = |name: Option<&str>| {
            let request = async_graphql::Request::new(document);
            match name {
                Some(name) => request.operation_name(name),
                None => request,
            }
        };
        assert!(!is_mutation(&request(Some("Q"))));
        assert!(is_mutation(&request(Some("M"))));
        assert!(is_mutation(&async_graphql::Request::new("mutation { a }")));
        assert!(!is_mutation(&async_graphql::Request::new("{ a }")));
        assert!(!is_mutation(&async_graphql::Request::new("{ a(")));

        assert!(is_query(&request(Some("Q"))));
        assert!(!is_query(&request(Some("M"))));
        assert!(!is_query(&request(None)), "two operations and none named");
        assert!(is_query(&async_graphql::Request::new("{ a }")));
        assert!(!is_query(&async_graphql::Request::new("{ a(")));
        assert!(
            !is_query(&async_graphql::Request::new("")),
            "a persisted query's hash only"
        );
    }
}

//! GraphQL over WebSocket: `graphql-transport-ws` and the legacy `graphql-ws`, whichever the
//! client asks for. The bearer token comes in the `connection_init` payload; a connection
//! closes with 1001 at shutdown and with 4401 when its token expires.

use std::{sync::Arc, time::Duration};

use async_graphql::{Data, ErrorExtensions, http::ALL_WEBSOCKET_PROTOCOLS};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    extract::{
        State,
        ws::{CloseFrame, Message, WebSocketUpgrade, close_code},
    },
    response::{IntoResponse, Response},
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;

use crate::{
    app::App,
    graphql::{Caching, RequestContext},
    response_cache::Reusable,
};

/// Initial read and write buffer per WebSocket connection (they grow for larger messages).
const WS_BUFFER_BYTES: usize = 4 * 1024;

/// Subscriptions (and queries and mutations) over a WebSocket, speaking `graphql-transport-ws`
/// or the legacy `graphql-ws`, whichever the client asks for. The bearer token comes in the
/// `connection_init` payload; a bad one refuses the connection with the protocol's error.
pub(super) async fn graphql_ws(
    State(state): State<Arc<App>>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Subscription messages are small; tungstenite's default 128 KiB buffers per connection
    // would make ten thousand subscribers cost over a gigabyte.
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let _open = OpenWebSocket::new(&state.websockets);
            let (mut sink, stream) = socket.split();
            // Incoming messages stop at shutdown, or when the token the connection signed in
            // with expires; either ends the connection's operations.
            let (expiry, expires) = watch::channel(None);
            let expired = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (stopping, flag) = (state.clone(), expired.clone());
            let stream = stream.take_until(async move {
                tokio::select! {
                    () = stopping.shutting_down() => {}
                    () = token_expiry(expires) => flag.store(true, std::sync::atomic::Ordering::SeqCst),
                }
            });
            let init = state.clone();
            let expiry = Arc::new(expiry);
            GraphQLWebSocket::new_with_pair(&mut sink, stream, state.socket_schema.clone(), protocol)
                .on_connection_init(move |payload| {
                    let (init, expiry) = (init.clone(), expiry.clone());
                    async move { connection_data(&init, &payload, &expiry).await }
                })
                .serve()
                .await;
            let close = if *state.shutdown.borrow() {
                Some((close_code::AWAY, "the server is shutting down"))
            } else if expired.load(std::sync::atomic::Ordering::SeqCst) {
                Some((TOKEN_EXPIRED, "the token expired: connect again with a fresh token"))
            } else {
                None
            };
            if let Some((code, reason)) = close {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })))
                    .await;
            }
        })
        .into_response()
}

/// A refusal's text as a WebSocket close frame can carry it: at most 123 bytes (RFC 6455,
/// 5.5), cut at a character boundary with an ellipsis. A longer reason makes clients drop the
/// frame as invalid and never see why.
fn close_reason(message: &str) -> String {
    const MAX: usize = 123;
    if message.len() <= MAX {
        return message.to_owned();
    }
    let mut end = MAX - '…'.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// The close code of a connection whose token expired (4401: unauthorized, in the range the
/// GraphQL-over-WebSocket protocols leave to applications).
const TOKEN_EXPIRED: u16 = 4401;

/// Resolves when the token a connection signed in with expires; never for an anonymous one.
async fn token_expiry(mut expires: watch::Receiver<Option<i64>>) {
    let Ok(at) = expires.wait_for(Option::is_some).await.map(|at| *at) else {
        return std::future::pending().await;
    };
    let Some(at) = at else { return };
    let left = at.saturating_sub(chrono::Utc::now().timestamp());
    tokio::time::sleep(Duration::from_secs(u64::try_from(left).unwrap_or(0))).await;
}

/// Counts a WebSocket connection as open for as long as it lives.
struct OpenWebSocket(Arc<std::sync::atomic::AtomicUsize>);

impl OpenWebSocket {
    fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for OpenWebSocket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The `Authorization` value a `connection_init` payload carries: `Authorization` or
/// `authorization` (with or without `Bearer `), at the top or under `headers`, or a bare `token`
/// or `authToken`.
fn authorization_from_init(payload: &serde_json::Value) -> Option<String> {
    let field =
        |v: &serde_json::Value, name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_owned);
    let headers = payload.get("headers").unwrap_or(&serde_json::Value::Null);
    let value = ["Authorization", "authorization"]
        .iter()
        .find_map(|name| field(payload, name).or_else(|| field(headers, name)))
        .or_else(|| field(payload, "token"))
        .or_else(|| field(payload, "authToken"))?;
    let value = value.trim();
    Some(
        if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
            value.to_owned()
        } else {
            format!("Bearer {value}")
        },
    )
}

/// What a WebSocket connection's operations run with: its viewer (from the
/// `connection_init` payload) and a loader that caches nothing, since a subscription lives
/// longer than any snapshot.
/// `expiry` learns when the token expires.
async fn connection_data(
    app: &App,
    payload: &serde_json::Value,
    expiry: &watch::Sender<Option<i64>>,
) -> async_graphql::Result<Data> {
    let header = authorization_from_init(payload);
    let signed_in = app.authenticate(header.as_deref()).await.map_err(|e| {
        async_graphql::Error::new(close_reason(&e.to_string()))
            .extend_with(|_, ext| ext.set("code", e.code()))
    })?;
    let viewer = signed_in.map(|(viewer, expires_at)| {
        expiry.send_replace(Some(expires_at));
        viewer
    });
    let context = RequestContext::new(
        app.store.clone(),
        viewer,
        app.max_page_size,
        Caching::Off,
        Reusable::new(),
    );
    let mut data = Data::default();
    data.insert(context);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::close_reason;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(
            cut.len() <= 123 && cut.ends_with('…'),
            "{} bytes",
            cut.len()
        );
    }
}

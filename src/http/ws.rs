//! GraphQL over WebSocket: `graphql-transport-ws` and the legacy `graphql-ws`, whichever the
//! client asks for. The bearer token comes in the `connection_init` payload; a connection
//! closes with 1001 at shutdown and with 4401 when its token expires.
//!
//! Floods are bounded twice: a client (a remote address) may hold
//! [`Limits::connections_per_client`] connections, one more upgrade is refused with HTTP 429;
//! a connection may hold [`Limits::subscriptions_per_connection`] operations, one more is
//! refused with the protocol's `error` message and the others go on. A request error (parse,
//! validation, variables, or a subscription whose setup failed) is that `error` message too,
//! never `next` + `complete`.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_graphql::{
    Data, ErrorExtensions, Executor, Request, Response, http::ALL_WEBSOCKET_PROTOCOLS,
};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    Extension,
    extract::{
        ConnectInfo, State,
        ws::{CloseFrame, Message, WebSocketUpgrade, close_code},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response as HttpResponse},
};
use futures_util::{SinkExt, StreamExt, stream::BoxStream};
use tokio::sync::watch;

use crate::{
    app::App,
    graphql::{
        AppSchema, Caching, RequestContext, SourceStream,
        limits::{self, AddressRange},
    },
    response_cache::Reusable,
};

/// Initial read and write buffer per WebSocket connection (they grow for larger messages).
const WS_BUFFER_BYTES: usize = 4 * 1024;

/// Subscriptions (and queries and mutations) over a WebSocket, speaking `graphql-transport-ws`
/// or the legacy `graphql-ws`, whichever the client asks for. The bearer token comes in the
/// `connection_init` payload; a bad one refuses the connection with the protocol's error.
pub(super) async fn graphql_ws(
    State(state): State<Arc<App>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> HttpResponse {
    let peer = peer.map(|Extension(ConnectInfo(address))| address.ip());
    let client = peer.map(|peer| client_address(peer, &headers, &state.limits.trusted_proxies));
    let Some(seat) = ClientSeat::take(&state, client) else {
        crate::metrics::record_refused_connection();
        let limit = state.limits.connections_per_client;
        let message = format!(
            "this client has {limit} WebSocket connections open, the most allowed: close one first"
        );
        return (StatusCode::TOO_MANY_REQUESTS, message).into_response();
    };
    let executor = ConnectionExecutor {
        schema: state.socket_schema.clone(),
        open: Arc::default(),
        max: state.limits.subscriptions_per_connection,
        setup_timeout: state.limits.timeout,
    };
    // Subscription messages are small; tungstenite's default 128 KiB buffers per connection
    // would make ten thousand subscribers cost over a gigabyte.
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let _seat = seat;
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
                    () = token_expiry(expires) => flag.store(true, Ordering::SeqCst),
                }
            });
            let init = state.clone();
            let expiry = Arc::new(expiry);
            GraphQLWebSocket::new_with_pair(&mut sink, stream, executor, protocol)
                .on_connection_init(move |payload| {
                    let (init, expiry) = (init.clone(), expiry.clone());
                    async move { connection_data(&init, &payload, &expiry).await }
                })
                .serve()
                .await;
            let close = if *state.shutdown.borrow() {
                Some((close_code::AWAY, "the server is shutting down"))
            } else if expired.load(Ordering::SeqCst) {
                Some((
                    TOKEN_EXPIRED,
                    "the token expired: connect again with a fresh token",
                ))
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

/// The client a connection from `peer` is counted for: the peer itself, or, when the peer is
/// a trusted proxy, the address the proxy appended to `X-Forwarded-For` (its last entry; the
/// earlier ones are the client's own word).
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[AddressRange]) -> IpAddr {
    if !trusted.iter().any(|range| range.contains(peer)) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

/// One of a client's WebSocket connections, counted while it lives.
struct ClientSeat {
    app: Arc<App>,
    client: Option<IpAddr>,
}

impl ClientSeat {
    /// A seat for `client`, or `None` when it already holds as many connections as the limit
    /// allows. A server run without connection addresses (`client` is `None`) counts nobody.
    fn take(app: &Arc<App>, client: Option<IpAddr>) -> Option<Self> {
        if let Some(ip) = client {
            let mut open = app
                .websocket_clients
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let held = open.entry(ip).or_default();
            if *held >= app.limits.connections_per_client {
                return None;
            }
            *held += 1;
        }
        Some(Self {
            app: app.clone(),
            client,
        })
    }
}

impl Drop for ClientSeat {
    fn drop(&mut self) {
        let Some(ip) = self.client else { return };
        let mut open = self
            .app
            .websocket_clients
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = open.get_mut(&ip) {
            *held -= 1;
            if *held == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// Runs one connection's operations on the socket schema: at most `max` at once, each with its
/// own [`SourceStream`], so that a failed setup reaches the client as a request error.
#[derive(Clone)]
struct ConnectionExecutor {
    schema: AppSchema,
    /// Operations of this connection still running.
    open: Arc<AtomicUsize>,
    max: usize,
    /// How long a subscription's first read may wait for the database.
    setup_timeout: Duration,
}

impl Executor for ConnectionExecutor {
    async fn execute(&self, request: Request) -> Response {
        self.schema.execute(request).await
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let Some(slot) = OperationSlot::take(&self.open, self.max) else {
            let mut refused = Response::from_errors(vec![limits::exceeded(
                "subscriptions",
                format!(
                    "this connection has {} operations open, the most allowed: complete one first",
                    self.max
                ),
            )]);
            refused.request_error = true;
            return futures_util::stream::once(async move { refused }).boxed();
        };
        let source = SourceStream::new(self.setup_timeout);
        let request = request.data(source.clone());
        self.schema
            .execute_stream_with_session_data(request, session_data.unwrap_or_default())
            .map(move |mut response| {
                let _slot = &slot;
                if source.failed() {
                    response.request_error = true;
                }
                response
            })
            .boxed()
    }
}

/// One running operation of a connection, counted while its stream lives.
struct OperationSlot(Arc<AtomicUsize>);

impl OperationSlot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        open.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()?;
        Some(Self(open.clone()))
    }
}

impl Drop for OperationSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
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
struct OpenWebSocket(Arc<AtomicUsize>);

impl OpenWebSocket {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for OpenWebSocket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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
    use super::{HeaderMap, client_address, close_reason};

    #[test]
    fn a_trusted_proxy_names_the_client_others_do_not() {
        let proxy: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = ["10.0.0.0/24".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 198.51.100.7".parse().unwrap());
        let client: std::net::IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(client_address(proxy, &headers, &trusted), client);
        let direct: std::net::IpAddr = "203.0.113.5".parse().unwrap();
        assert_eq!(client_address(direct, &headers, &trusted), direct);
        assert_eq!(client_address(proxy, &HeaderMap::new(), &trusted), proxy);
        assert_eq!(client_address(proxy, &headers, &[]), proxy);
    }

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

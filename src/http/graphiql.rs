//! GraphiQL, served by Roster itself: the page at `GET /graphql` (for browsers) and its assets
//! at `/graphiql/assets/…`, embedded in the binary from `web/graphiql/assets/` (vendored from
//! npm by `web/graphiql/vendor.sh`), so it works on machines without internet access.
//!
//! Queries and mutations use the headers pane (put `{"Authorization": "Bearer …"}` there);
//! subscriptions go over `/graphql/ws`, whose `connection_init` carries the same headers,
//! read when the socket opens.

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

/// `(name, content type, bytes)` of every asset.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "react.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/graphiql/assets/react.min.js"),
    ),
    (
        "react-dom.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/graphiql/assets/react-dom.min.js"),
    ),
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/graphiql/assets/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/graphiql/assets/graphiql.min.css"),
    ),
    (
        "graphql-ws.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/graphiql/assets/graphql-ws.min.js"),
    ),
];

/// The GraphiQL page.
pub fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /graphiql/assets/{name}`, cached by browsers for a day.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => {
            let mut response = (*bytes).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
            response
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Roster GraphiQL</title>
  <style>body { margin: 0; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="/graphiql/assets/graphiql.min.css">
  <script src="/graphiql/assets/react.min.js"></script>
  <script src="/graphiql/assets/react-dom.min.js"></script>
  <script src="/graphiql/assets/graphql-ws.min.js"></script>
  <script src="/graphiql/assets/graphiql.min.js"></script>
</head>
<body>
  <div id="graphiql">Loading…</div>
  <script>
    const endpoint = new URL('/graphql', window.location.href).toString();
    const socket = new URL('/graphql/ws', window.location.href);
    socket.protocol = socket.protocol === 'https:' ? 'wss:' : 'ws:';
    // The headers pane, as GraphiQL keeps it, for the socket's connection_init.
    const paneHeaders = () => {
      try { return JSON.parse(localStorage.getItem('graphiql:headers') || '{}'); }
      catch { return {}; }
    };
    const wsClient = graphqlWs.createClient({ url: socket.toString(), lazy: true, connectionParams: paneHeaders });
    const fetcher = GraphiQL.createFetcher({ url: endpoint, wsClient });
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {
        fetcher,
        defaultEditorToolsVisibility: true,
        shouldPersistHeaders: true,
        defaultQuery: '# Courses open for enrollment. Put {"Authorization": "Bearer …"} in the\n# headers pane below to see your own enrollments too.\n{\n  courses(first: 10) {\n    totalCount\n    edges { node { id name code teacher { name } sections { id name seatsAvailable waitlistCount } } }\n  }\n}\n',
      }),
    );
  </script>
</body>
</html>
"#;

#!/usr/bin/env bash
# Refreshes assets/: the GraphiQL (and React, graphql-ws) builds that `roster` embeds and serves
# at /graphiql/assets/, so GraphiQL works without internet access. Versions are pinned in
# package.json and package-lock.json; run this after changing them, then commit assets/.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
mkdir -p assets
cp node_modules/react/umd/react.production.min.js assets/react.min.js
cp node_modules/react-dom/umd/react-dom.production.min.js assets/react-dom.min.js
cp node_modules/graphiql/graphiql.min.js assets/graphiql.min.js
cp node_modules/graphiql/graphiql.min.css assets/graphiql.min.css
cp node_modules/graphql-ws/umd/graphql-ws.min.js assets/graphql-ws.min.js
for package in react react-dom graphiql graphql-ws; do
  cp node_modules/$package/LICENSE* "assets/LICENSE.$package"
done
ls -l assets

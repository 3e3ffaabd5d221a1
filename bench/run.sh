#!/usr/bin/env bash
# Roster's benchmarks, each measured beside its anchor in the same run on this machine.
#
#   bench/run.sh enroll     enroll throughput: one hot section and 1,000 sections, at 1, 8 and 32
#                           clients, on PostgreSQL and SQLite, beside raw SQL through pgbench
#   bench/run.sh load       64 clients for 30 s (DURATION) of discovery reads, enrollments and
#                           withdrawals; every outcome counted, nothing but domain errors allowed
#   bench/run.sh fanout     sectionSeats fan-out to 1,000 and 10,000 WebSocket subscribers, and a
#                           burst of enrollments with and without a subscriber that never reads
#
# Starts a throwaway PostgreSQL 15 cluster on a free loopback port with default (durable)
# settings, like the anchor; everything runs on 127.0.0.1 and stops by itself.
# SECS sets the seconds per pgbench figure (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-enroll}
SECS=${SECS:-10}
BIN=/usr/lib/postgresql/15/bin
[ -x "$BIN/initdb" ] || { echo "PostgreSQL 15 is needed: apt-get install postgresql" >&2; exit 1; }

echo "building (release)…" >&2
cargo build --release -q -p roster -p roster-bench

DIR=$(mktemp -d); chmod 755 "$DIR"
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir "$DIR/pg"; [ "$(id -u)" = 0 ] && chown postgres "$DIR/pg"
as_pg $BIN/initdb -D "$DIR/pg" -A trust -U postgres >/dev/null
as_pg $BIN/pg_ctl -D "$DIR/pg" -o "-p $PORT -k $DIR/pg -c listen_addresses=127.0.0.1 -c max_connections=200" \
  -l "$DIR/pg/log" -w start >/dev/null
trap 'as_pg $BIN/pg_ctl -D "$DIR/pg" -m fast stop >/dev/null; rm -rf "$DIR"' EXIT
PG=postgres://postgres@127.0.0.1:$PORT
$BIN/psql "$PG/postgres" -q -c "CREATE DATABASE anchor" -c "CREATE DATABASE roster"

machine() {
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
    "$(uname -sr), $($BIN/postgres --version), $(rustc --version | cut -d' ' -f1-2), $(date -u +%F)"
}

enroll() {
  $BIN/psql "$PG/anchor" -q -f bench/anchor/schema.sql
  echo "## enroll: raw SQL anchor (pgbench, ${SECS}s per figure)"
  echo
  echo "| clients | one hot section (tx/s) | spread over 1,000 sections (tx/s) |"
  echo "|---|---|---|"
  for c in 1 8 32; do
    hot=$($BIN/pgbench -n -f bench/anchor/hot.sql -c $c -j 2 -T "$SECS" "$PG/anchor" 2>/dev/null | awk '/^tps/{printf "%.0f", $3}')
    spread=$($BIN/pgbench -n -f bench/anchor/spread.sql -c $c -j 2 -T "$SECS" "$PG/anchor" 2>/dev/null | awk '/^tps/{printf "%.0f", $3}')
    echo "| $c | $hot | $spread |"
  done
  echo
  echo "## enroll: Roster over HTTP (1,000 students per figure)"
  echo
  echo "| database | sections | clients | requests | enrollments/s | p50 ms | p99 ms | errors |"
  echo "|---|---|---|---|---|---|---|---|"
  target/release/enroll-bench --label PostgreSQL --database-url "$PG/roster"
  target/release/enroll-bench --label SQLite --database-url "sqlite://$DIR/roster.db"
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

case "$WHAT" in
  enroll) enroll ;;
  load) load ;;
  fanout) fanout ;;
  *) echo "unknown benchmark: $WHAT (try: enroll, fanout, load)" >&2; exit 2 ;;
esac

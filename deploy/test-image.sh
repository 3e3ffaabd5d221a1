#!/usr/bin/env bash
# Builds Roster's image here, where no container registry is reachable, and smoke-tests it.
#
# The base is Debian bookworm made by debootstrap (cached under target/container/), imported
# into podman under a local name; the image is the Containerfile's `prebuilt` target, the very
# runtime stage the default target uses, given the binary `cargo build --release` made here
# (on bookworm too). The container then serves on SQLite (in its /data volume) and on a
# PostgreSQL cluster this script starts, and deploy/smoke.py checks /readyz, a discovery query
# and a signed-in enroll through it; the image's HEALTHCHECK must pass as well.
#
# Needs root, podman, runc and debootstrap (Debian packages; .ci/run installs them) and
# PostgreSQL 15's server binaries. Where containers cannot run at all it says so loudly and
# exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

IMAGE=localhost/roster:test
BASE=localhost/roster-test-base:bookworm
CACHE=$PWD/target/container
PG_BIN=/usr/lib/postgresql/15/bin
DEMO_STUDENT=student1@demo.roster.dev
SECRET=image-test-secret-image-test-secret!

skip() {
  {
    echo
    echo "######################################################################"
    echo "##  SKIPPED: the container image was NOT tested."
    echo "##  $*"
    echo "######################################################################"
    echo
  } >&2
  exit 0
}

[ "$(id -u)" = 0 ] || skip "deploy/test-image.sh runs podman as root; run it as root."
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (apt-get install podman runc debootstrap)."
done
[ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL 15 is required ($PG_BIN/initdb)" >&2; exit 1; }

mkdir -p "$CACHE"
# crun fails on this kernel's cgroup layout and the default ulimits cannot be set here.
export CONTAINERS_CONF=$CACHE/containers.conf
cat >"$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF

work=$(mktemp -d /tmp/roster-image.XXXXXX)
chmod 755 "$work" # the postgres user runs the cluster inside it
containers=()
pg_data=""
cleanup() {
  for name in "${containers[@]}"; do podman rm -f "$name" >/dev/null 2>&1 || true; done
  if [ -n "$pg_data" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Host networking (no CNI here); no systemd to time the HEALTHCHECK (`podman healthcheck run`
# runs it once instead), and podman's complaint that it has none is left out.
run() {
  podman run --network host --health-interval disable "$@" 2> >(grep -v 'systemd connection' >&2)
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_ready() { # URL
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1/readyz" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "FAILED: $1/readyz did not answer within 30 s" >&2
  return 1
}

echo "== release binary"
cargo build --release --locked --quiet --bin roster
mkdir -p "$work/context"
cp "${CARGO_TARGET_DIR:-target}/release/roster" "$work/context/roster"

echo "== base image (debootstrap --variant=minbase bookworm, cached)"
if [ ! -s "$CACHE/bookworm-minbase.tar" ]; then
  rootfs="$work/rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; echo "FAILED: debootstrap" >&2; exit 1; }
  # What the official slim image leaves out too: package lists, caches, documentation.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -cf "$CACHE/bookworm-minbase.tar.part" .
  mv "$CACHE/bookworm-minbase.tar.part" "$CACHE/bookworm-minbase.tar"
fi
if ! podman image exists "$BASE"; then
  podman import --quiet "$CACHE/bookworm-minbase.tar" "$BASE" >/dev/null
fi
if ! probe=$(podman run --rm --network host "$BASE" true 2>&1); then
  skip "containers cannot run on this machine: $probe"
fi

echo "== podman build --target prebuilt"
podman build --quiet --format docker --pull=never --network host --target prebuilt \
  --build-arg RUNTIME_IMAGE="$BASE" --build-arg SOURCE_URL=local-test \
  -f Containerfile -t "$IMAGE" "$work/context" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image size: $((size / 1000000)) MB ($size bytes; base $(($(podman image inspect --format '{{.Size}}' "$BASE") / 1000000)) MB)"
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[ "$user" = roster ] || { echo "FAILED: the image runs as '$user', not roster" >&2; exit 1; }
run --rm "$IMAGE" --version

run_checks() { # NAME PORT
  local name=$1 port=$2 token
  wait_ready "http://127.0.0.1:$port"
  token=$(podman exec "$name" roster token --email "$DEMO_STUDENT")
  python3 deploy/smoke.py "http://127.0.0.1:$port" "$token"
  podman healthcheck run "$name" || { echo "FAILED: the HEALTHCHECK of $name" >&2; exit 1; }
  echo "ok: HEALTHCHECK"
}

echo "== on SQLite, in the /data volume"
data="$work/data"
mkdir -p "$data" && chown 10001:10001 "$data"
port=$(free_port)
containers+=(roster-test-sqlite)
run -d --name roster-test-sqlite -v "$data:/data" \
  -e ROSTER_LISTEN="127.0.0.1:$port" -e ROSTER_DEMO_DATA=always "$IMAGE" >/dev/null
run_checks roster-test-sqlite "$port"
[ -s "$data/roster.db" ] || { echo "FAILED: no roster.db in the volume" >&2; exit 1; }
podman exec roster-test-sqlite roster backup /data/backup.db
[ -s "$data/backup.db" ] || { echo "FAILED: roster backup wrote nothing" >&2; exit 1; }
podman rm -f roster-test-sqlite >/dev/null 2>&1

echo "== on PostgreSQL"
mkdir -p "$work/pg" && chown postgres:postgres "$work/pg"
pg_data="$work/pg/data"
pg_port=$(free_port)
runuser -u postgres -- "$PG_BIN/initdb" -D "$pg_data" -A trust -U postgres -E UTF8 --no-sync >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pg_data" -l "$work/pg/log" -w \
  -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
"$PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres roster
database_url="postgres://postgres@127.0.0.1:$pg_port/roster"
run --rm -e ROSTER_DATABASE_URL="$database_url" -e ROSTER_JWT_SECRET="$SECRET" \
  "$IMAGE" check
run --rm -e ROSTER_DATABASE_URL="$database_url" "$IMAGE" migrate
port=$(free_port)
containers+=(roster-test-postgres)
run -d --name roster-test-postgres \
  -e ROSTER_DATABASE_URL="$database_url" -e ROSTER_JWT_SECRET="$SECRET" \
  -e ROSTER_LISTEN="127.0.0.1:$port" -e ROSTER_DEMO_DATA=always "$IMAGE" >/dev/null
run_checks roster-test-postgres "$port"
if run --rm -e ROSTER_DATABASE_URL="$database_url" "$IMAGE" backup /data/x.db 2>"$work/refused"; then
  echo "FAILED: roster backup accepted PostgreSQL" >&2; exit 1
fi
grep -q pg_dump "$work/refused" || { echo "FAILED: roster backup on PostgreSQL does not name pg_dump" >&2; exit 1; }

echo "the image served on SQLite and on PostgreSQL; deploy/test-image.sh took $((SECONDS - started)) s"
echo "image: 2 passed, 0 failed"

#!/usr/bin/env bash
# Bind load over time: what a login sees when its bind cache entries reach
# the end of their life. One sled instance with the benchmark dataset, one
# workload (default bind-search-new-conn: 8 connections, a new connection
# per login, rotating over 200 users; web-service binds as one service
# account) run as back-to-back windows of a few seconds for a few minutes.
# One line per window: throughput, p50, p99 and the slowest operation, and
# the bind cache's misses (argon2 on the login path) and background
# refreshes from /metrics. With the default 60 s ttl, entries made together
# at the start expire together a minute later unless they are refreshed.
#
# Usage: benches/bind-cache-windows.sh [options]
#   --workload W     a portcullis-bench workload (default bind-search-new-conn)
#   --seconds S      how long to run (default 150)
#   --window S       seconds per window (default 2)
#   --users N        users in the dataset (default 10000)
#   --portcullis BIN serve with this binary instead of the one built here
set -euo pipefail
WORKLOAD=bind-search-new-conn
SECONDS_TOTAL=150
WINDOW=2
USERS=10000
SERVE_BIN=""
PASSWORD="Bench-Passw0rd"
BASE="dc=example,dc=com"
while [ $# -gt 0 ]; do
    case "$1" in
        --workload) WORKLOAD=$2; shift 2 ;;
        --seconds) SECONDS_TOTAL=$2; shift 2 ;;
        --window) WINDOW=$2; shift 2 ;;
        --users) USERS=$2; shift 2 ;;
        --portcullis) SERVE_BIN=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

command -v curl >/dev/null || { echo "curl missing (apt-get install curl)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 missing (apt-get install python3)" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/portcullis
BENCH=$TARGET/release/portcullis-bench
(cd "$ROOT" && cargo build --release --features bench-tools --bins >&2)
[ -z "$SERVE_BIN" ] || BIN=$SERVE_BIN

WORK=$(mktemp -d /tmp/portcullis-bcw.XXXXXX)
PID=""
cleanup() {
    [ -z "$PID" ] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start: sets PID, LDAP and HTTP once the server answers.
start() {
    PORTCULLIS_LOG_LEVEL=warn "$BIN" --data-dir "$WORK/d" serve --ldap-addr 127.0.0.1:0 \
        --ldaps-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 >"$WORK/out" 2>"$WORK/err" &
    PID=$!
    LDAP=""
    for _ in $(seq 1 600); do
        kill -0 "$PID" 2>/dev/null || { cat "$WORK/err" >&2; exit 1; }
        LDAP=$(sed -n 's/^listening ldap:\/\///p' "$WORK/out" | head -1)
        HTTP=$(sed -n 's/^listening http:\/\///p' "$WORK/out" | head -1)
        [ -n "$LDAP" ] && [ -n "$HTTP" ] && break
        sleep 0.1
    done
    [ -n "$LDAP" ] || { echo "the server did not report its listeners" >&2; exit 1; }
}
# metric NAME: one counter of /metrics (0 where a build has none).
metric() {
    local v
    v=$(curl -fsS "http://$HTTP/metrics" | awk -v n="$1" '$1 == n {print $2}')
    echo "${v:-0}"
}

start
echo "seeding $USERS users" >&2
"$BENCH" seed --data-dir "$WORK/d" --users "$USERS" --password "$PASSWORD" --base-dn "$BASE" >&2
kill "$PID"; wait "$PID" 2>/dev/null || true
start   # a fresh process: an empty bind cache

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); portcullis: ${SERVE_BIN:-$(cd "$ROOT" && git rev-parse --short HEAD)}; workload: $WORKLOAD, 8 connections, ${WINDOW}s windows"
printf '%6s %8s %7s %8s %9s %7s %10s\n' "t (s)" "ops/s" "p50 ms" "p99 ms" "max ms" "misses" "refreshes"
misses=$(metric portcullis_bind_cache_misses_total)
refreshes=$(metric portcullis_bind_cache_refreshes_total)
T0=$(date +%s%3N)
while [ $(( $(date +%s%3N) - T0 )) -lt $(( SECONDS_TOTAL * 1000 )) ]; do
    "$BENCH" run --workload "$WORKLOAD" --url "ldap://$LDAP" --users "$USERS" \
        --service-dn "cn=bench-service,ou=users,$BASE" --password "$PASSWORD" --base-dn "$BASE" \
        --connections 8 --duration "$WINDOW" --warmup 0 --json >"$WORK/run.json" 2>"$WORK/run.err" \
        || { cat "$WORK/run.err" >&2; exit 1; }
    m=$(metric portcullis_bind_cache_misses_total)
    r=$(metric portcullis_bind_cache_refreshes_total)
    python3 - "$WORK/run.json" $(( ($(date +%s%3N) - T0) / 1000 )) $(( m - misses )) $(( r - refreshes )) <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))["sections"][0]
print("%6s %8.0f %7.2f %8.2f %9.2f %7s %10s" % (sys.argv[2], s["ops_per_sec"], s["p50_ms"], s["p99_ms"], s["max_ms"], sys.argv[3], sys.argv[4]))
EOF
    misses=$m
    refreshes=$r
done

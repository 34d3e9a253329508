#!/usr/bin/env bash
# Two builds of Portcullis side by side on one dataset: the same LDIF-shaped
# directory (portcullis-bench seed), each build serving its own copy of one
# data directory, runs alternating (before, after, before, after, ...), the
# server's CPU per operation from /proc. For a restructuring that must not
# cost speed: "is the change within N% of the build before it?".
#
#   cargo build --release --features bench-tools        # in each checkout
#   benches/before-after.sh OLD/target/release/portcullis NEW/target/release/portcullis \
#       [--rounds 5] [--duration 10] [--warmup 2] [--users 10000] [--groups 50] \
#       [--connections 8] [--workloads "search-uid search-memberof"] [--out DIR]
#
# Rows are portcullis-bench workloads, and web-service / web-service-ldaps
# as compare-openldap.sh runs them (a new connection per request, bound as
# bench-service; over LDAPS with a certificate made for the run).
# The load generator is the one next to the second binary. Results (one JSON
# line per run) and the table (medians per row, "after" against "before")
# go to target/bench-results/before-after-<UTC timestamp>/ or --out.
set -euo pipefail

BEFORE=${1:?usage: before-after.sh BEFORE_BIN AFTER_BIN [options]}
AFTER=${2:?usage: before-after.sh BEFORE_BIN AFTER_BIN [options]}
shift 2
ROUNDS=5
DURATION=10
WARMUP=2
USERS=10000
NGROUPS=50
CONNS=8
WORKLOADS="search-uid search-memberof"
OUT=""
PASSWORD="Bench-Passw0rd"
BASE="dc=example,dc=com"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --users) USERS=$2; shift 2 ;;
        --groups) NGROUPS=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
BENCH=$(dirname "$AFTER")/portcullis-bench
for f in "$BEFORE" "$AFTER" "$BENCH"; do
    [ -x "$f" ] || { echo "$f: not an executable (build with --features bench-tools)" >&2; exit 2; }
done
command -v ldapsearch >/dev/null || { echo "ldapsearch is needed (apt-get install ldap-utils)" >&2; exit 2; }
OUT=${OUT:-target/bench-results/before-after-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"
WORK=$(mktemp -d)
PID=""
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
stop() {
    [ -n "$PID" ] || return 0
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
    PID=""
}
trap 'stop; rm -rf "$WORK"' EXIT INT TERM

# Starts BIN on DATA on free loopback ports; sets PID and URL once it answers.
start() {
    local bin=$1 data=$2 out=$WORK/server.out
    : > "$out"
    PORTCULLIS_LOG_LEVEL=warn \
        PORTCULLIS_TLS_CERT_FILE=$TLS/server.pem PORTCULLIS_TLS_KEY_FILE=$TLS/server.key \
        "$bin" --data-dir "$data" serve \
        --ldap-addr 127.0.0.1:0 --ldaps-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
        >"$out" 2>"$WORK/server.err" &
    PID=$!
    URL=""
    for _ in $(seq 1 1200); do
        kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.err" >&2; return 1; }
        local addr tls_addr
        addr=$(sed -n 's/^listening ldap:\/\///p' "$out" | head -1)
        tls_addr=$(sed -n 's/^listening ldaps:\/\///p' "$out" | head -1)
        if [ -n "$addr" ] && [ -n "$tls_addr" ]; then
            URL="ldap://$addr"
            LDAPS_URL="ldaps://$tls_addr"
            break
        fi
        sleep 0.1
    done
    [ -n "$URL" ] || { echo "the server did not report its listener" >&2; return 1; }
    for _ in $(seq 1 1200); do
        if LDAPNOINIT=1 ldapsearch -x -H "$URL" -b "" -s base -LLL "(objectClass=*)" 1.1 >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "the server did not answer" >&2
    return 1
}

# One P-256 certificate for both builds, signed by a CA made for the run
# (as compare-openldap.sh); the CA's key is thrown away once it has signed.
TLS=$WORK/tls
# shellcheck source=benches/bench-tls.sh
source "$(dirname "$0")/bench-tls.sh"
make_bench_cert "$TLS"

log "seeding $USERS users and $NGROUPS groups with the second build"
start "$AFTER" "$WORK/after"
"$BENCH" seed --data-dir "$WORK/after" --users "$USERS" --groups "$NGROUPS" \
    --password "$PASSWORD" --base-dn "$BASE"
stop
cp -a "$WORK/after" "$WORK/before"

{
    echo "before: $BEFORE ($("$BEFORE" --version 2>/dev/null || echo '?'))"
    echo "after:  $AFTER ($("$AFTER" --version 2>/dev/null || echo '?'))"
    echo "dataset: $USERS users, $NGROUPS groups; $CONNS connections; $ROUNDS rounds of ${DURATION}s (+${WARMUP}s warm-up)"
    echo "machine: $(nproc) cores, $(uname -r)"
} > "$OUT/facts.txt"

for round in $(seq 1 "$ROUNDS"); do
    for label in before after; do
        if [ "$label" = before ]; then bin=$BEFORE; else bin=$AFTER; fi
        start "$bin" "$WORK/$label"
        for row in $WORKLOADS; do
            log "round $round/$ROUNDS: $row on $label"
            case "$row" in
                web-service) ARGS=(--workload web-service --service-dn "cn=bench-service,ou=users,$BASE") ; url=$URL ;;
                web-service-ldaps) ARGS=(--workload web-service --service-dn "cn=bench-service,ou=users,$BASE"
                    --tls-ca "$TLS/ca.pem") ; url=$LDAPS_URL ;;
                *) ARGS=(--workload "$row") ; url=$URL ;;
            esac
            "$BENCH" run "${ARGS[@]}" --row "$row" --label "$label" --url "$url" \
                --server-pid "$PID" --users "$USERS" --connections "$CONNS" \
                --duration "$DURATION" --warmup "$WARMUP" --password "$PASSWORD" \
                --base-dn "$BASE" --json >> "$RESULTS"
        done
        stop
    done
done

"$BENCH" table "$RESULTS" --ours after --reference before | tee "$OUT/table.txt"
"$BENCH" table "$RESULTS" --ours after --reference before --markdown > "$OUT/table.md"
echo "results: $OUT (results.jsonl, table.txt, table.md, facts.txt)"

#!/usr/bin/env bash
# Side-by-side benchmark of Portcullis and OpenLDAP's slapd (issue 5).
#
# Builds Portcullis and portcullis-bench (release, feature bench-tools),
# installs slapd and ldap-utils if missing, generates one dataset for both
# servers, loads it into slapd (slapadd, mdb) and into Portcullis (through
# its admin socket), starts both on loopback high ports, runs every workload
# against both servers alternately for several rounds, and prints one table
# of medians. Both servers and the load generator share the machine's cores
# (nothing is pinned). Everything lives in a temporary directory that is
# removed on exit; both servers are stopped by PID on exit or interrupt.
#
# Usage: benches/compare-openldap.sh [options]
#   --users N          users in the dataset (default 10000)
#   --groups G         groups, one of them with 500 members (default 50)
#   --rounds R         rounds of every workload on each server (default 3)
#   --duration S       measured seconds per run (default 10)
#   --warmup S         warm-up seconds per run (default 2)
#   --connections C    connections per run (default 8)
#   --workloads "W…"   rows to run (default: all)
#   --totp-users N     Portcullis users with a TOTP device for bind-totp
#                      (default 1500; each bind uses a user at most once per
#                      30 s step, so keep it above 30 x the bind rate)
#   --out DIR          where results are kept (default target/bench-results/<date>)
#   --keep             keep the temporary directory (data of both servers)
#
# Rows: search-uid search-group-members search-memberof bind bind-ssha-ref
#       bind-search-new-conn mixed-argon2-flood bind-repeat bind-totp
#
# Portcullis's bind cache ([bind] cache, on by default) would answer the
# repeated binds of the argon2 rows (bind, bind-ssha-ref,
# bind-search-new-conn, mixed-argon2-flood) from memory, so Portcullis runs
# those with PORTCULLIS_BIND_CACHE=false, and the other rows with its
# defaults (the script restarts it when the setting changes). bind-repeat
# is the cache row: every connection binds as one user again and again,
# over users 201-400, which have {SSHA} in slapd and argon2id in
# Portcullis. bind-totp (password;code) runs on Portcullis only.
set -euo pipefail

USERS=10000
NGROUPS=50
ROUNDS=3
DURATION=10
WARMUP=2
CONNS=8
WORKLOADS="search-uid search-group-members search-memberof bind bind-ssha-ref bind-search-new-conn mixed-argon2-flood bind-repeat bind-totp"
TOTP_USERS=1500
OUT=""
KEEP=0
PASSWORD="Bench-Passw0rd"
BASE="dc=example,dc=com"

while [ $# -gt 0 ]; do
    case "$1" in
        --users) USERS=$2; shift 2 ;;
        --groups) NGROUPS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --totp-users) TOTP_USERS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,37p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/portcullis
BENCH=$TARGET/release/portcullis-bench
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$TARGET/bench-results/$STAMP}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
FACTS=$OUT/facts.txt
: > "$RESULTS"
: > "$FACTS"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
fact() { echo "$*" | tee -a "$FACTS" >&2; }

# --- install slapd and the client tools if missing ------------------------
if ! command -v slapd >/dev/null || ! command -v slapadd >/dev/null || ! command -v ldapsearch >/dev/null; then
    log "installing slapd and ldap-utils"
    # Keep the package's postinst from starting a system slapd on port 389.
    CREATED_POLICY=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        CREATED_POLICY=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slapd ldap-utils >&2
    if [ "$CREATED_POLICY" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
SLAPD=$(command -v slapd)
SLAPADD=$(command -v slapadd)
MODDIR=/usr/lib/ldap
for m in back_mdb memberof argon2; do
    [ -e "$MODDIR/$m.so" ] || [ -e "$MODDIR/$m.la" ] || { echo "missing $MODDIR/$m.so" >&2; exit 1; }
done

# --- build ----------------------------------------------------------------
log "building (release, feature bench-tools)"
(cd "$ROOT" && cargo build --release --features bench-tools --bins >&2)

# --- work directory and cleanup -------------------------------------------
WORK=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
SLAPD_PID=""
PORTCULLIS_PID=""
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$PORTCULLIS_PID"
    stop_pid "$SLAPD_PID"
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port from 20389 upward.
free_port() {
    local p
    for p in $(seq "$1" $(( $1 + 500 ))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }

# Waits until an anonymous root DSE read answers (at most 120 s).
wait_answer() {
    local url=$1 pid=$2
    for _ in $(seq 1 1200); do
        kill -0 "$pid" 2>/dev/null || { echo "server $pid exited" >&2; return 1; }
        if LDAPNOINIT=1 ldapsearch -x -H "$url" -b "" -s base -LLL "(objectClass=*)" 1.1 >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "no answer from $url" >&2
    return 1
}

fact "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
fact "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM; servers and load generator share all cores, nothing pinned"
fact "slapd: $("$SLAPD" -VV 2>&1 | head -1 | sed 's/.*slapd //; s/ (.*//')"
fact "portcullis: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
fact "dataset: $USERS users, $NGROUPS groups (group001: 500 members), argon2id m=19456 t=2 p=1"
fact "runs: $ROUNDS rounds x ${DURATION}s (+${WARMUP}s warm-up) per workload and server, $CONNS connections, alternating order"

# --- dataset --------------------------------------------------------------
DATASET=(--users "$USERS" --groups "$NGROUPS" --password "$PASSWORD" --base-dn "$BASE")
log "generating the LDIF"
"$BENCH" ldif "${DATASET[@]}" > "$WORK/data.ldif"

# --- slapd ----------------------------------------------------------------
SLAPD_PORT=$(free_port 20389)
SLAPD_URL="ldap://127.0.0.1:$SLAPD_PORT"
mkdir -p "$WORK/slapd/db"
cat > "$WORK/slapd/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath $MODDIR
moduleload back_mdb
moduleload memberof
moduleload argon2
pidfile $WORK/slapd/slapd.pid
argsfile $WORK/slapd/slapd.args
loglevel 0
# The same rights as Portcullis gives: binds for everyone, reads for
# authenticated users (Portcullis: own entry, or the whole tree for the
# search group; here, the whole tree).
access to attrs=userPassword by anonymous auth by self auth by * none
access to * by users read by * none

database mdb
maxsize 8589934592
suffix "$BASE"
rootdn "cn=admin,$BASE"
directory $WORK/slapd/db
index objectClass,uid,cn,mail,memberOf,member,uidNumber,gidNumber eq
overlay memberof
EOF
log "loading slapd with slapadd"
T0=$(now_ms)
# -s: groups are groupOfNames + posixGroup, as Portcullis serves them; the
# RFC 2307 schema shipped with slapd makes both structural, so schema
# checking would refuse them. -q: bulk-load mode.
"$SLAPADD" -q -s -f "$WORK/slapd/slapd.conf" -l "$WORK/data.ldif"
fact "slapd load (slapadd -q): $(( $(now_ms) - T0 )) ms"

T0=$(now_ms)
"$SLAPD" -f "$WORK/slapd/slapd.conf" -h "$SLAPD_URL/" -d 0 >"$WORK/slapd/log" 2>&1 &
SLAPD_PID=$!
wait_answer "$SLAPD_URL" "$SLAPD_PID"
fact "slapd start to first answer: $(( $(now_ms) - T0 )) ms (pid $SLAPD_PID, $SLAPD_URL)"

# --- Portcullis -----------------------------------------------------------
PDATA=$WORK/portcullis
# The bind cache setting Portcullis runs with now (see the header).
PORTCULLIS_CACHE=true
# Starts Portcullis on a free port; sets PORTCULLIS_PID and PORTCULLIS_URL.
start_portcullis() {
    local out=$WORK/portcullis.out
    : > "$out"
    PORTCULLIS_BIND_CACHE=$PORTCULLIS_CACHE PORTCULLIS_LOG_LEVEL=warn "$BIN" --data-dir "$PDATA" serve \
        --ldap-addr 127.0.0.1:0 --ldaps-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
        >"$out" 2>"$WORK/portcullis.err" &
    PORTCULLIS_PID=$!
    for _ in $(seq 1 1200); do
        kill -0 "$PORTCULLIS_PID" 2>/dev/null || { cat "$WORK/portcullis.err" >&2; return 1; }
        local addr
        addr=$(sed -n 's/^listening ldap:\/\///p' "$out" | head -1)
        if [ -n "$addr" ]; then PORTCULLIS_URL="ldap://$addr"; return 0; fi
        sleep 0.1
    done
    echo "portcullis did not report its listener" >&2
    return 1
}
start_portcullis
log "seeding Portcullis through its admin socket (one connection)"
T0=$(now_ms)
TOTP_SEED=$WORK/totp-seed.jsonl
TOTP_ARGS=()
case " $WORKLOADS " in
    *" bind-totp "*) TOTP_ARGS=(--totp-users "$TOTP_USERS" --totp-seed "$TOTP_SEED") ;;
esac
"$BENCH" seed --data-dir "$PDATA" "${DATASET[@]}" "${TOTP_ARGS[@]}"
TOTP_NOTE=""
if [ ${#TOTP_ARGS[@]} -gt 0 ]; then TOTP_NOTE="; $TOTP_USERS of the users with a TOTP device"; fi
fact "portcullis load (admin socket, one request per user, group and membership; one argon2 hash per password$TOTP_NOTE): $(( $(now_ms) - T0 )) ms"
# Restart, to measure start-up on a loaded store.
stop_pid "$PORTCULLIS_PID"
T0=$(now_ms)
start_portcullis
wait_answer "$PORTCULLIS_URL" "$PORTCULLIS_PID"
fact "portcullis start to first answer: $(( $(now_ms) - T0 )) ms (pid $PORTCULLIS_PID, $PORTCULLIS_URL)"

# --- runs -----------------------------------------------------------------
# Arguments of portcullis-bench run for a row.
row_args() {
    case "$1" in
        search-uid|search-group-members|search-memberof|bind|bind-search-new-conn)
            echo "--workload $1" ;;
        # slapd's users 201-400 have {SSHA}; Portcullis's the same argon2id.
        bind-ssha-ref) echo "--workload bind --user-offset 200" ;;
        mixed-argon2-flood) echo "--workload mixed-argon2-flood --flood-connections $CONNS" ;;
        # One user per connection, among users 201-400 ({SSHA} in slapd).
        bind-repeat) echo "--workload bind-repeat --user-offset 200" ;;
        bind-totp) echo "--workload bind-totp --totp-seed $TOTP_SEED" ;;
        *) echo "unknown row $1" >&2; return 1 ;;
    esac
}

# The bind cache setting of Portcullis for a row (see the header).
row_cache() {
    case "$1" in
        bind|bind-ssha-ref|bind-search-new-conn|mixed-argon2-flood) echo false ;;
        *) echo true ;;
    esac
}

run_one() {
    local server=$1 row=$2 url pid
    if [ "$server" = portcullis ] && [ "$(row_cache "$row")" != "$PORTCULLIS_CACHE" ]; then
        PORTCULLIS_CACHE=$(row_cache "$row")
        log "  restarting Portcullis with PORTCULLIS_BIND_CACHE=$PORTCULLIS_CACHE"
        stop_pid "$PORTCULLIS_PID"
        start_portcullis
        wait_answer "$PORTCULLIS_URL" "$PORTCULLIS_PID"
    fi
    if [ "$server" = portcullis ]; then url=$PORTCULLIS_URL; pid=$PORTCULLIS_PID; else url=$SLAPD_URL; pid=$SLAPD_PID; fi
    # shellcheck disable=SC2046
    if ! "$BENCH" run $(row_args "$row") --row "$row" --label "$server" --url "$url" \
        --server-pid "$pid" --users "$USERS" --connections "$CONNS" \
        --duration "$DURATION" --warmup "$WARMUP" --password "$PASSWORD" --base-dn "$BASE" \
        --json >> "$RESULTS" 2>>"$OUT/errors.txt"; then
        log "  $row on $server reported errors (see $OUT/errors.txt)"
    fi
    tail -1 "$RESULTS" | sed 's/"first_errors":\[[^]]*\],//g' | cut -c1-220 >&2
}

for round in $(seq 1 "$ROUNDS"); do
    for row in $WORKLOADS; do
        if [ $(( round % 2 )) = 1 ]; then order="portcullis slapd"; else order="slapd portcullis"; fi
        for server in $order; do
            # slapd has no password;code binds.
            if [ "$server" = slapd ] && [ "$row" = bind-totp ]; then continue; fi
            log "round $round/$ROUNDS: $row on $server"
            run_one "$server" "$row"
        done
    done
done

# --- footprint ------------------------------------------------------------
rss() { awk -v k="$2:" '$1 == k {print int($2/1024) " MiB"}' "/proc/$1/status"; }
fact "(Portcullis's figures below are of its last run, with PORTCULLIS_BIND_CACHE=$PORTCULLIS_CACHE)"
fact "resident memory after the runs: portcullis $(rss "$PORTCULLIS_PID" VmRSS) (peak $(rss "$PORTCULLIS_PID" VmHWM)), slapd $(rss "$SLAPD_PID" VmRSS) (peak $(rss "$SLAPD_PID" VmHWM))"
fact "store on disk (allocated): portcullis $(du -sm "$PDATA" | cut -f1) MiB (sled), slapd $(du -sm "$WORK/slapd/db" | cut -f1) MiB (mdb)"

echo
cat "$FACTS"
echo
"$BENCH" table "$RESULTS" --ours portcullis --reference slapd | tee "$OUT/table.txt"
"$BENCH" table "$RESULTS" --ours portcullis --reference slapd --markdown > "$OUT/table.md"
echo
echo "results: $OUT (results.jsonl, table.txt, table.md, facts.txt)"

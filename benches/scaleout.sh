#!/usr/bin/env bash
# Scale-out benchmark (issue 14): one sled instance, one PostgreSQL-backed
# instance, and two PostgreSQL-backed instances sharing one database, on
# the same dataset and the same machine, in one run.
#
# Builds Portcullis and portcullis-bench (release, feature bench-tools),
# starts a throw-away PostgreSQL cluster (Debian's `postgresql` binaries,
# initdb in a temporary directory, run as the `postgres` user when root,
# a free loopback port, default durability settings: fsync on), seeds a
# sled data directory with the benchmark dataset through its admin socket,
# copies it into the database with `portcullis migrate-store`, and starts
# the three set-ups side by side: sled S, PostgreSQL instances A and B
# (B with A's server.key). Each workload runs on each set-up in turn,
# alternating the order every round:
#   sled   -- C connections to S
#   pg-1   -- C connections to A
#   pg-2   -- C/2 connections to A and C/2 to B at the same time
# Every set-up is driven by two load generators of C/2 connections each.
# Server CPU per operation counts the Portcullis processes of the set-up
# and, for the PostgreSQL set-ups, every process of the database cluster
# (the database is part of the cost of a PostgreSQL-backed instance),
# read from /proc around each run and scaled to its measured window.
# Portcullis runs with its defaults (bind cache on).
#
# Usage: benches/scaleout.sh [options]
#   --users N        users in the dataset (default 10000)
#   --rounds R       rounds of every workload (default 3)
#   --duration S     measured seconds per run (default 10)
#   --warmup S       warm-up seconds per run (default 2)
#   --connections C  connections per run, over two load generators (default 8)
#   --workloads "W…" rows (default: search-uid bind-search-new-conn)
#   --out DIR        where results are kept (default target/bench-results/scaleout-<date>)
#   --keep           keep the temporary directory
#   --portcullis BIN serve (and seed and migrate) with this portcullis binary
#                    instead of the one built here (the load generator is
#                    still built here): a build kept from before a change
set -euo pipefail

USERS=10000
ROUNDS=3
DURATION=10
WARMUP=2
CONNS=8
WORKLOADS="search-uid bind-search-new-conn"
OUT=""
KEEP=0
SERVE_BIN=""
PASSWORD="Bench-Passw0rd"
BASE="dc=example,dc=com"

while [ $# -gt 0 ]; do
    case "$1" in
        --users) USERS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --portcullis) SERVE_BIN=$2; shift 2 ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ $(( CONNS % 2 )) = 0 ] || { echo "--connections must be even (two load generators)" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/portcullis
BENCH=$TARGET/release/portcullis-bench
OUT=${OUT:-$TARGET/bench-results/scaleout-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
FACTS=$OUT/facts.txt
: > "$RESULTS"
: > "$FACTS"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
fact() { echo "$*" | tee -a "$FACTS" >&2; }

PGBIN=${PORTCULLIS_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PGBIN/pg_ctl" ] || { echo "no PostgreSQL binaries (apt-get install postgresql)" >&2; exit 1; }
command -v ldapsearch >/dev/null || { echo "ldapsearch missing (apt-get install ldap-utils)" >&2; exit 1; }

log "building (release, feature bench-tools)"
(cd "$ROOT" && cargo build --release --features bench-tools --bins >&2)
if [ -n "$SERVE_BIN" ]; then
    [ -x "$SERVE_BIN" ] || { echo "--portcullis $SERVE_BIN: not an executable" >&2; exit 2; }
    BIN=$SERVE_BIN
fi

WORK=$(mktemp -d /tmp/portcullis-scaleout.XXXXXX)
chmod 755 "$WORK"
declare -A PID URL
PGDATA=$WORK/pg
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    for k in "${!PID[@]}"; do stop_pid "${PID[$k]}"; done
    [ -e "$PGDATA/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    local p
    for p in $(seq "$1" $(( $1 + 500 ))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}
now_ms() { date +%s%3N; }

# --- PostgreSQL -------------------------------------------------------------
log "starting a throw-away PostgreSQL cluster"
mkdir -p "$PGDATA"
[ "$(id -u)" = 0 ] && chown postgres "$PGDATA"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
PGPORT=$(free_port 25432)
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/log" -w \
    -o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
PG_PID=$(head -1 "$PGDATA/postmaster.pid")
as_pg "$PGBIN/psql" -h "$PGDATA" -p "$PGPORT" -U postgres -qc "CREATE DATABASE portcullis" postgres
DB_URL="postgres://postgres@127.0.0.1:$PGPORT/portcullis?sslmode=disable"

# Seconds of CPU used so far by every process of the cluster (postmaster
# and its children, which come and go with connections: the postmaster's
# cutime/cstime count those that ended).
pg_cpu() {
    python3 - "$PG_PID" <<'EOF'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
root = int(sys.argv[1])
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()
total = 0
for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    try:
        s = stat(pid)
    except OSError:
        continue
    if pid == root:
        total += sum(int(x) for x in s[11:15])  # utime stime cutime cstime
    elif int(s[1]) == root:
        total += int(s[11]) + int(s[12])
print(total / hz)
EOF
}

# --- Portcullis -------------------------------------------------------------
# start NAME DATADIR [postgres]: sets PID[NAME] and URL[NAME].
start() {
    local name=$1 dir=$2 out=$WORK/$1.out env=()
    [ "${3:-}" = postgres ] && env=(PORTCULLIS_STORE_BACKEND=postgres PORTCULLIS_STORE_URL="$DB_URL")
    : > "$out"
    env "${env[@]}" PORTCULLIS_LOG_LEVEL=warn "$BIN" --data-dir "$dir" serve \
        --ldap-addr 127.0.0.1:0 --ldaps-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
        >"$out" 2>"$WORK/$name.err" &
    PID[$name]=$!
    for _ in $(seq 1 1200); do
        kill -0 "${PID[$name]}" 2>/dev/null || { cat "$WORK/$name.err" >&2; return 1; }
        local addr
        addr=$(sed -n 's/^listening ldap:\/\///p' "$out" | head -1)
        if [ -n "$addr" ]; then URL[$name]="ldap://$addr"; break; fi
        sleep 0.1
    done
    [ -n "${URL[$name]:-}" ] || { echo "$name did not report its listener" >&2; return 1; }
    for _ in $(seq 1 1200); do
        LDAPNOINIT=1 ldapsearch -x -H "${URL[$name]}" -b "" -s base -LLL "(objectClass=*)" 1.1 \
            >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "no answer from $name" >&2
    return 1
}

fact "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
fact "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM; servers, database and load generator share all cores"
fact "portcullis: ${SERVE_BIN:-$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)}; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') (defaults, fsync on, loopback TCP)"
fact "dataset: $USERS users, 50 groups; runs: $ROUNDS rounds x ${DURATION}s (+${WARMUP}s warm-up), $CONNS connections, order alternating"

DATASET=(--users "$USERS" --password "$PASSWORD" --base-dn "$BASE")
start S "$WORK/sled"
log "seeding the sled instance through its admin socket"
"$BENCH" seed --data-dir "$WORK/sled" "${DATASET[@]}"
stop_pid "${PID[S]}"
log "copying it into PostgreSQL (migrate-store)"
T0=$(now_ms)
"$BIN" --data-dir "$WORK/sled" migrate-store --to "$DB_URL" --json > "$OUT/migrate.json"
fact "migrate-store sled -> PostgreSQL: $(( $(now_ms) - T0 )) ms ($(cat "$OUT/migrate.json" | tr -d '\n' | cut -c1-120)…)"
mkdir -m 700 "$WORK/a" "$WORK/b"
cp -p "$WORK/sled/server.key" "$WORK/a/"
cp -p "$WORK/sled/server.key" "$WORK/b/"
start S "$WORK/sled"
T0=$(now_ms)
start A "$WORK/a" postgres
fact "PostgreSQL instance start to first answer (read model loaded): $(( $(now_ms) - T0 )) ms"
start B "$WORK/b" postgres

# Seconds of CPU used so far by the Portcullis processes named.
cpu_of() {
    local total=0 name
    for name in "$@"; do
        total=$(awk -v t="$total" -v hz="$(getconf CLK_TCK)" \
            '{ sub(/.*\) /, ""); split($0, f, " "); print t + (f[12] + f[13]) / hz }' \
            "/proc/${PID[$name]}/stat")
    done
    echo "$total"
}

# run SETUP ROW: one measured run, one JSON line (summed over instances).
# Every set-up is driven by two load generators of C/2 connections each
# (one generator's threads can be its bottleneck, so each set-up gets the
# same client capacity): sled both to S, pg-1 both to A, pg-2 one to A and
# one to B.
run() {
    local setup=$1 row=$2 targets names cpu0 cpu1 db0=0 db1=0 files=() pids=() i=0
    case "$setup" in
        sled) targets="S S"; names="S" ;;
        pg-1) targets="A A"; names="A" ;;
        pg-2) targets="A B"; names="A B" ;;
    esac
    # shellcheck disable=SC2086
    cpu0=$(cpu_of $names)
    [ "$setup" = sled ] || db0=$(pg_cpu)
    for name in $targets; do
        local f=$WORK/run.$i.json
        "$BENCH" run --workload "$row" --url "${URL[$name]}" \
            --users "$USERS" --connections "$(( CONNS / 2 ))" --duration "$DURATION" --warmup "$WARMUP" \
            --password "$PASSWORD" --base-dn "$BASE" --label "$setup" --row "$row" \
            --json > "$f" 2>>"$OUT/errors.txt" &
        pids+=($!); files+=("$f"); i=$(( i + 1 ))
    done
    # Only the load generators: the servers are children of this shell too.
    wait "${pids[@]}"
    # shellcheck disable=SC2086
    cpu1=$(cpu_of $names)
    [ "$setup" = sled ] || db1=$(pg_cpu)
    python3 - "$setup" "$row" "$cpu0" "$cpu1" "$db0" "$db1" "$DURATION" "$WARMUP" "${files[@]}" >> "$RESULTS" <<'EOF'
import json, sys
setup, row = sys.argv[1], sys.argv[2]
cpu0, cpu1, db0, db1, duration, warmup = map(float, sys.argv[3:9])
reports = [json.loads(open(f).read().strip().splitlines()[-1]) for f in sys.argv[9:]]
sections = [s for r in reports for s in r["sections"]]
ops = sum(s["ops"] for s in sections)
secs = max(r["measured_secs"] for r in reports)
# The CPU was read around the whole run (warm-up included): scale it to
# the measured window.
share = duration / (duration + warmup)
print(json.dumps({
    "setup": setup, "row": row, "ops_per_sec": ops / secs, "errors": sum(s["errors"] for s in sections),
    "p50_ms": max(s["p50_ms"] for s in sections), "p99_ms": max(s["p99_ms"] for s in sections),
    "instance_cpu_ms_per_op": (cpu1 - cpu0) * share * 1000 / ops,
    "db_cpu_ms_per_op": (db1 - db0) * share * 1000 / ops,
}))
EOF
    tail -1 "$RESULTS" >&2
}

SETUPS="sled pg-1 pg-2"
for round in $(seq 1 "$ROUNDS"); do
    for row in $WORKLOADS; do
        order=$SETUPS
        [ $(( round % 2 )) = 0 ] && order=$(echo "$SETUPS" | tr ' ' '\n' | tac | tr '\n' ' ')
        for setup in $order; do
            log "round $round/$ROUNDS: $row on $setup"
            run "$setup" "$row"
        done
    done
done

rss() { awk '$1 == "VmRSS:" {print int($2/1024) " MiB"}' "/proc/$1/status"; }
fact "resident memory after the runs: sled $(rss "${PID[S]}"), A $(rss "${PID[A]}"), B $(rss "${PID[B]}")"

echo
cat "$FACTS"
echo
python3 - "$RESULTS" <<'EOF' | tee "$OUT/table.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(xs): return statistics.median(xs)
print("| workload | set-up | ops/s (median) | vs sled | p50 ms | p99 ms | instance CPU ms/op | database CPU ms/op | total CPU ms/op | errors |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for row in dict.fromkeys(r["row"] for r in rows):
    base = None
    for setup in ["sled", "pg-1", "pg-2"]:
        rs = [r for r in rows if r["row"] == row and r["setup"] == setup]
        if not rs: continue
        ops = med([r["ops_per_sec"] for r in rs])
        base = base or ops
        inst = med([r["instance_cpu_ms_per_op"] for r in rs]); db = med([r["db_cpu_ms_per_op"] for r in rs])
        print(f"| {row} | {setup} | {ops:,.0f} | {ops/base:.2f}x | {med([r['p50_ms'] for r in rs]):.2f} | "
              f"{med([r['p99_ms'] for r in rs]):.2f} | {inst:.3f} | {db:.3f} | {inst+db:.3f} | {sum(r['errors'] for r in rs)} |")
EOF
echo "results: $OUT"

#!/usr/bin/env bash
# LDIF import side by side: `portcullis import` (offline, server stopped)
# against OpenLDAP's `slapadd -q` (mdb), on one LDIF from the generator
# that benches/compare-openldap.sh uses (issue 15).
#
# Each run loads the same file into a fresh store of each server, in
# alternating order, under /usr/bin/time -v (wall time, peak resident
# memory); then the stores' sizes on disk. Prints one line per run and the
# medians. Then the export the other way, once each from the last run's
# stores: `portcullis export` as LDIF and as the JSON backup (both with
# secrets, offline) and `slapcat`, with the same measures. Needs slapd, slapadd and /usr/bin/time (compare-openldap.sh
# installs slapd; `apt-get install time`), and release builds of
# portcullis and portcullis-bench (built here if missing).
#
# Usage: benches/import-vs-slapadd.sh [options]
#   --users N      users (default 100000)
#   --groups G     groups (default 50); group001 and every other group
#                  hold 5% of the users (the small groups are capped by
#                  the generator at an equal share of all users)
#   --runs R       runs per server (default 3)
#   --work DIR     where the LDIF and the stores go (default: a new
#                  /tmp/perf-import.XXXXXX, removed at the end)
#   --keep         keep DIR
set -euo pipefail

USERS=100000
NGROUPS=50
RUNS=3
WORK=""
KEEP=0
BASE="dc=example,dc=com"
while [ $# -gt 0 ]; do
    case "$1" in
        --users) USERS=$2; shift 2 ;;
        --groups) NGROUPS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/portcullis
BENCH=$TARGET/release/portcullis-bench
if [ ! -x "$BIN" ] || [ ! -x "$BENCH" ]; then
    (cd "$ROOT" && cargo build --release --features bench-tools --bins >&2)
fi
for tool in slapadd /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
if [ -z "$WORK" ]; then WORK=$(mktemp -d /tmp/perf-import.XXXXXX); fi
mkdir -p "$WORK"
cleanup() { if [ "$KEEP" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

SHARE=$(( USERS / 20 ))
LDIF=$WORK/data.ldif
if [ ! -s "$LDIF" ]; then
    "$BENCH" ldif --users "$USERS" --groups "$NGROUPS" --big-group-size "$SHARE" \
        --small-group-size "$SHARE" --base-dn "$BASE" > "$LDIF"
fi
echo "LDIF: $USERS users, $NGROUPS groups, $(du -m "$LDIF" | cut -f1) MB, $(grep -c '^member: ' "$LDIF") member values" >&2

cat > "$WORK/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload argon2
database mdb
maxsize 17179869184
suffix "$BASE"
rootdn "cn=admin,$BASE"
directory $WORK/slapd-db
index objectClass,uid,cn,mail,memberOf,member,uidNumber,gidNumber eq
overlay memberof
EOF

# Runs "$@" under /usr/bin/time -v; prints "seconds peak_MiB".
timed() {
    local log=$WORK/time.log
    /usr/bin/time -v "$@" > "$WORK/out.log" 2> "$log" || { cat "$log" >&2; return 1; }
    awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; w = s}
                /Maximum resident set size/ {r = int($2 / 1024)}
                END {printf "%.1f %d\n", w, r}' "$log"
}

run_slapadd() {
    rm -rf "$WORK/slapd-db"; mkdir -p "$WORK/slapd-db"
    # -s: groups are groupOfNames + posixGroup (see compare-openldap.sh).
    timed slapadd -q -s -f "$WORK/slapd.conf" -l "$LDIF"
}

run_portcullis() {
    rm -rf "$WORK/portcullis"; mkdir -p "$WORK/portcullis"
    # --force: the LDIF's memberOf values and its base and OU entries are
    # reported, not imported (Portcullis computes memberOf).
    PORTCULLIS_LOG_LEVEL=warn timed "$BIN" --data-dir "$WORK/portcullis" import "$LDIF" --force
}

: > "$WORK/runs.txt"
for r in $(seq 1 "$RUNS"); do
    if [ $(( r % 2 )) = 1 ]; then order="portcullis slapadd"; else order="slapadd portcullis"; fi
    for who in $order; do
        line=$("run_$who")
        echo "$who $line" | tee -a "$WORK/runs.txt" >&2
    done
done
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
for who in portcullis slapadd; do
    t=$(awk -v w="$who" '$1 == w {print $2}' "$WORK/runs.txt" | median)
    m=$(awk -v w="$who" '$1 == w {print $3}' "$WORK/runs.txt" | median)
    echo "$who: median ${t} s, peak RSS median ${m} MiB over $RUNS runs"
done
echo "store on disk after the last run: portcullis $(du -sm "$WORK/portcullis" | cut -f1) MiB (sled), slapd $(du -sm "$WORK/slapd-db" | cut -f1) MiB (mdb, du of the sparse data.mdb)"
echo "portcullis import output (last run):"
cat "$WORK/out.log"

# Export from the last run's stores (issue 15: bounded memory). Prints
# "seconds peak_MiB output_MB".
export_line() {
    local out=$1
    shift
    echo "$(timed "$@") $(du -m "$out" | cut -f1)"
}
read -r t m mb <<<"$(PORTCULLIS_LOG_LEVEL=warn export_line "$WORK/export.ldif" \
    "$BIN" --data-dir "$WORK/portcullis" export --format ldif --with-secrets --output "$WORK/export.ldif")"
echo "portcullis export --format ldif --with-secrets: $t s, peak RSS $m MiB, $mb MB"
read -r t m mb <<<"$(PORTCULLIS_LOG_LEVEL=warn export_line "$WORK/export.json" \
    "$BIN" --data-dir "$WORK/portcullis" export --format json --with-secrets --output "$WORK/export.json")"
echo "portcullis export --format json --with-secrets: $t s, peak RSS $m MiB, $mb MB"
read -r t m mb <<<"$(export_line "$WORK/slapcat.ldif" slapcat -f "$WORK/slapd.conf" -l "$WORK/slapcat.ldif")"
echo "slapcat: $t s, peak RSS $m MiB, $mb MB"
rm -f "$WORK/export.ldif" "$WORK/export.json" "$WORK/slapcat.ldif"

#!/usr/bin/env bash
# Side-by-side benchmark of Portcullis and OpenLDAP's slapd (issue 5).
#
# Builds Portcullis and portcullis-bench (release, feature bench-tools),
# installs slapd, ldap-utils and openssl if missing, generates one dataset
# for both servers, loads it into slapd (slapadd, mdb) and into Portcullis
# (through its admin socket), starts both on loopback high ports (LDAP and
# LDAPS, both serving one certificate made for the run), runs every workload
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
#   --workloads "W…"   rows to run (default: all, the matrix included)
#   --matrix           run only the matrix rows (issue 15, see below)
#   --load L           how Portcullis gets the dataset: seed (admin socket,
#                      argon2id for every password), import (`portcullis
#                      import` of slapd's LDIF, server stopped: much faster
#                      at 1M users, same uid/gidNumbers as slapd), or auto
#                      (default: import unless a bind row is selected)
#   --totp-users N     Portcullis users with a TOTP device for bind-totp
#                      (default 1500; each bind uses a user at most once per
#                      30 s step, so keep it above 30 x the bind rate)
#   --out DIR          where results are kept (default target/bench-results/<date>)
#   --keep             keep the temporary directory (data of both servers)
#   --portcullis BIN   serve with this portcullis binary instead of the one
#                      built here (the load generator is still built here):
#                      a build kept from before a change, for a side-by-side
#
# Rows: search-uid search-group-members search-memberof bind bind-ssha-ref
#       bind-search-new-conn web-service web-service-ldaps
#       mixed-argon2-flood bind-repeat bind-totp
#       and the matrix (see matrix_shape below).
#
# web-service and web-service-ldaps (issue 15) are what a pool-less web
# application (PHP's Nextcloud, many Python applications) does per request:
# open a connection (ldap:// or ldaps://), bind as ONE service account,
# search the logging-in user by uid ((&(objectClass=inetOrgPerson)(uid=X))
# under ou=users, cn mail memberOf uid, exactly 1 entry), unbind. The
# service account is the dataset's bench-service, in the search group (a
# plain user may read only its own entry in Portcullis): {SSHA} in slapd,
# so slapd is not charged an argon2 verification per bind (with an argon2
# service account it would be slower still); Portcullis holds argon2id and
# runs with its defaults, bind cache on. TLS: one P-256 certificate, signed
# by a CA made for the run (openssl), served by both servers (Portcullis:
# [tls] cert_file/key_file; slapd: TLSCertificateFile, GnuTLS on Debian);
# the load generator trusts only that CA and speaks TLS 1.3 only, with a
# full handshake per connection (no session resumption, as libldap); it
# keeps the chain's verdict after the first check, to spend less of the
# shared cores (benches/loadgen/tls.rs), and sets TCP_NODELAY.
#
# The matrix (issue 15): the searches applications and NSS clients send
# (docs/clients/applications.md, sssd.md, nslcd.md), each as one
# `portcullis-bench run --workload search-shape` row with the expected
# entry count checked. Rows that return users run twice, the second time
# (`<row>+memberOf`) with memberOf added to the requested attributes.
# Lookups of a user's groups pick users from 1-500 (each is in group001
# and one small group: 2 groups); the others pick from all users. The
# enumeration rows expect the count each server reports at the start
# (Portcullis also holds its admin account and admins group). Needs at
# least 1,000 users (the small groups are then full).
#
# The user enumerations (nss-enum-users, +memberOf) return every user: at
# 100,000 users one takes seconds, and a run of a few seconds completes
# two or three, so an operation cut by the run's edges skews the figures
# per operation by a third or more. Their runs last --duration times
# users/10,000 (at most 60 s; never shorter than --duration). From
# 500,000 users they run on 2 connections: 8 enumerations of a million
# entries each, decoded by the load generator on the same cores, did not
# finish inside 60 s on either server.
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
CLASSIC_ROWS="search-uid search-group-members search-memberof bind bind-ssha-ref bind-search-new-conn web-service web-service-ldaps mixed-argon2-flood bind-repeat bind-totp"
# Shapes returning users (run with and without memberOf), then groups.
MATRIX_USER_SHAPES="nextcloud-login gitea-login gitea-admin-check grafana-login authelia-login jellyfin-members nss-user-uid nss-user-uid-base nss-user-uidnumber sssd-user-uid nss-enum-users"
MATRIX_GROUP_SHAPES="grafana-groups authelia-groups nss-group-gidnumber nss-group-name nss-group-memberuid nss-initgroups sssd-initgroups nss-enum-groups"
MATRIX_ROWS=""
for shape in $MATRIX_USER_SHAPES; do MATRIX_ROWS="$MATRIX_ROWS $shape $shape+memberOf"; done
MATRIX_ROWS="${MATRIX_ROWS# } $MATRIX_GROUP_SHAPES"
WORKLOADS="$CLASSIC_ROWS $MATRIX_ROWS"
LOAD=auto
TOTP_USERS=1500
OUT=""
KEEP=0
GIVEN_BIN=""
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
        --matrix) WORKLOADS=$MATRIX_ROWS; shift ;;
        --load) LOAD=$2; shift 2 ;;
        --totp-users) TOTP_USERS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --portcullis) GIVEN_BIN=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo pipefail$/{/^set -euo/!p}' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

# Rows that need the argon2id passwords (and TOTP devices) only `seed` makes.
needs_seed() {
    local row
    for row in $WORKLOADS; do
        case "$row" in
            bind|bind-ssha-ref|bind-search-new-conn|web-service|web-service-ldaps|mixed-argon2-flood|bind-repeat|bind-totp) return 0 ;;
        esac
    done
    return 1
}
is_matrix_row() {
    case " $MATRIX_ROWS " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}
case "$LOAD" in
    auto) if needs_seed; then LOAD=seed; else LOAD=import; fi ;;
    seed) ;;
    import) if needs_seed; then echo "--load import: the bind rows need --load seed" >&2; exit 2; fi ;;
    *) echo "--load must be seed, import or auto" >&2; exit 2 ;;
esac
for row in $WORKLOADS; do
    case " $CLASSIC_ROWS $MATRIX_ROWS " in
        *" $row "*) ;;
        *) echo "unknown row $row (see --help)" >&2; exit 2 ;;
    esac
    if is_matrix_row "$row" && [ "$USERS" -lt 1000 ]; then
        echo "the matrix rows need --users 1000 or more" >&2; exit 2
    fi
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${GIVEN_BIN:-$TARGET/release/portcullis}
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

# Measured seconds of a row's runs (see the header: the user enumerations
# run longer with more users).
row_duration() {
    case "$1" in
        nss-enum-users|nss-enum-users+memberOf)
            local d=$(( DURATION * USERS / 10000 ))
            if [ "$d" -gt 60 ]; then d=60; fi
            if [ "$d" -lt "$DURATION" ]; then d=$DURATION; fi
            echo "$d" ;;
        *) echo "$DURATION" ;;
    esac
}

# Connections of a row's runs (see the header).
row_conns() {
    case "$1" in
        nss-enum-users|nss-enum-users+memberOf)
            if [ "$USERS" -ge 500000 ] && [ "$CONNS" -gt 2 ]; then echo 2; else echo "$CONNS"; fi ;;
        *) echo "$CONNS" ;;
    esac
}

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
if ! command -v openssl >/dev/null; then
    log "installing openssl"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl >&2
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
if [ -n "$GIVEN_BIN" ]; then
    fact "portcullis: $GIVEN_BIN (given with --portcullis; load generator from $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown))"
else
    fact "portcullis: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
fi
fact "dataset: $USERS users, $NGROUPS groups (group001: 500 members), argon2id m=19456 t=2 p=1"
fact "portcullis loaded by: $LOAD"
fact "runs: $ROUNDS rounds x ${DURATION}s (+${WARMUP}s warm-up) per workload and server, $CONNS connections, alternating order"
if [ "$(row_duration nss-enum-users)" != "$DURATION" ]; then
    fact "user enumerations (nss-enum-users, +memberOf): $(row_duration nss-enum-users)s runs, $(row_conns nss-enum-users) connections"
fi

# --- TLS: one certificate for both servers -------------------------------
# A CA made for this run signs a P-256 server certificate for 127.0.0.1 and
# localhost; both servers serve it, the load generator trusts only the CA.
# The CA's key is thrown away once it has signed.
TLS=$WORK/tls
# shellcheck source=benches/bench-tls.sh
source "$ROOT/benches/bench-tls.sh"
make_bench_cert "$TLS"

# --- dataset --------------------------------------------------------------
DATASET=(--users "$USERS" --groups "$NGROUPS" --password "$PASSWORD" --base-dn "$BASE")
log "generating the LDIF"
"$BENCH" ldif "${DATASET[@]}" > "$WORK/data.ldif"

# --- slapd ----------------------------------------------------------------
SLAPD_PORT=$(free_port 20389)
SLAPD_URL="ldap://127.0.0.1:$SLAPD_PORT"
SLAPD_LDAPS_URL="ldaps://127.0.0.1:$(free_port $(( SLAPD_PORT + 1 )))"
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
TLSCertificateFile $TLS/server.pem
TLSCertificateKeyFile $TLS/server.key
# The enumeration rows read every user in one search (Portcullis has no
# size limit unless configured; slapd's default is 500 entries).
sizelimit unlimited
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
T1=$(now_ms)
# slapadd -q leaves its writes to the kernel (no fsync); Portcullis's
# import flushes its own. Its pages are written out here, before the import
# is timed, so that neither load pays for the other's writeback.
sync
fact "slapd load (slapadd -q): $(( T1 - T0 )) ms, its writes on disk $(( $(now_ms) - T1 )) ms later (sync)"

T0=$(now_ms)
"$SLAPD" -f "$WORK/slapd/slapd.conf" -h "$SLAPD_URL/ $SLAPD_LDAPS_URL/" -d 0 >"$WORK/slapd/log" 2>&1 &
SLAPD_PID=$!
wait_answer "$SLAPD_URL" "$SLAPD_PID"
fact "slapd start to first answer: $(( $(now_ms) - T0 )) ms (pid $SLAPD_PID, $SLAPD_URL, $SLAPD_LDAPS_URL)"

# --- Portcullis -----------------------------------------------------------
PDATA=$WORK/portcullis
# The bind cache setting Portcullis runs with now (see the header).
PORTCULLIS_CACHE=true
# Starts Portcullis on free ports; sets PORTCULLIS_PID, PORTCULLIS_URL and
# PORTCULLIS_LDAPS_URL.
start_portcullis() {
    local out=$WORK/portcullis.out
    : > "$out"
    PORTCULLIS_BIND_CACHE=$PORTCULLIS_CACHE PORTCULLIS_LOG_LEVEL=warn \
        PORTCULLIS_TLS_CERT_FILE=$TLS/server.pem PORTCULLIS_TLS_KEY_FILE=$TLS/server.key \
        "$BIN" --data-dir "$PDATA" serve \
        --ldap-addr 127.0.0.1:0 --ldaps-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
        >"$out" 2>"$WORK/portcullis.err" &
    PORTCULLIS_PID=$!
    for _ in $(seq 1 1200); do
        kill -0 "$PORTCULLIS_PID" 2>/dev/null || { cat "$WORK/portcullis.err" >&2; return 1; }
        local addr tls_addr
        addr=$(sed -n 's/^listening ldap:\/\///p' "$out" | head -1)
        tls_addr=$(sed -n 's/^listening ldaps:\/\///p' "$out" | head -1)
        if [ -n "$addr" ] && [ -n "$tls_addr" ]; then
            PORTCULLIS_URL="ldap://$addr"
            PORTCULLIS_LDAPS_URL="ldaps://$tls_addr"
            return 0
        fi
        sleep 0.1
    done
    echo "portcullis did not report its listener" >&2
    return 1
}
TOTP_SEED=$WORK/totp-seed.jsonl
if [ "$LOAD" = seed ]; then
    start_portcullis
    log "seeding Portcullis through its admin socket (one connection)"
    T0=$(now_ms)
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
else
    log "importing the LDIF into Portcullis (offline)"
    T0=$(now_ms)
    # --force: the LDIF's memberOf values and its base and OU entries are
    # reported, not imported (Portcullis computes memberOf).
    PORTCULLIS_LOG_LEVEL=warn "$BIN" --data-dir "$PDATA" import "$WORK/data.ldif" --force >"$WORK/import.out" 2>&1 \
        || { cat "$WORK/import.out" >&2; exit 1; }
    fact "portcullis load (portcullis import of the same LDIF, server stopped): $(( $(now_ms) - T0 )) ms"
fi
# Both servers hold the dataset now; at 1M users the LDIF is some 470 MB.
if [ "$KEEP" != 1 ]; then rm -f "$WORK/data.ldif"; fi
T0=$(now_ms)
start_portcullis
wait_answer "$PORTCULLIS_URL" "$PORTCULLIS_PID"
fact "portcullis start to first answer: $(( $(now_ms) - T0 )) ms (pid $PORTCULLIS_PID, $PORTCULLIS_URL, $PORTCULLIS_LDAPS_URL)"

# What a TLS 1.3 client negotiates with each (openssl s_client, which
# offers its ciphersuites and groups in about the order rustls does).
tls_summary() {
    openssl s_client -connect "${1#ldaps://}" -tls1_3 -CAfile "$TLS/ca.pem" -brief </dev/null 2>&1 \
        | sed -n 's/^Protocol version: //p; s/^Ciphersuite: //p; s/^Peer signature type: //p; s/^\(Server\|Peer\) Temp Key: //p; s/^Verification: //p' \
        | paste -sd, -
}
fact "tls (P-256 certificate): portcullis $(tls_summary "$PORTCULLIS_LDAPS_URL"); slapd $(tls_summary "$SLAPD_LDAPS_URL")"

# --- the matrix: what each server numbers and counts ---------------------
SEARCH_DN="cn=bench-search,ou=users,$BASE"
# Values of attribute $4 in the entries of a search as the search account.
values_of() {
    local url=$1 base=$2 filter=$3 attr=$4
    LDAPNOINIT=1 ldapsearch -x -H "$url" -D "$SEARCH_DN" -w "$PASSWORD" -LLL -o ldif-wrap=no \
        -b "$base" "$filter" "$attr" | sed -n "s/^$attr: //p"
}
count_entries() {
    LDAPNOINIT=1 ldapsearch -x -H "$1" -D "$SEARCH_DN" -w "$PASSWORD" -LLL -o ldif-wrap=no \
        -b "$2" "$3" 1.1 | grep -c '^dn:'
}
declare -A UID_BASE GID_BASE ALL_USERS ALL_GROUPS
if [ -n "$(for row in $WORKLOADS; do is_matrix_row "$row" && echo y; done)" ]; then
    for server in portcullis slapd; do
        if [ "$server" = portcullis ]; then url=$PORTCULLIS_URL; else url=$SLAPD_URL; fi
        # user00001's uidNumber less 1, group001's gidNumber less 1: both
        # loads number users and groups in order.
        u=$(values_of "$url" "ou=users,$BASE" "(uid=user00001)" uidNumber)
        g=$(values_of "$url" "ou=groups,$BASE" "(cn=group001)" gidNumber)
        [ -n "$u" ] && [ -n "$g" ] || { echo "$server: no uidNumber of user00001 or gidNumber of group001" >&2; exit 1; }
        UID_BASE[$server]=$(( u - 1 ))
        GID_BASE[$server]=$(( g - 1 ))
        ALL_USERS[$server]=$(count_entries "$url" "ou=users,$BASE" "(objectClass=posixAccount)")
        ALL_GROUPS[$server]=$(count_entries "$url" "ou=groups,$BASE" "(objectClass=posixGroup)")
        if [ "${ALL_USERS[$server]}" -le "$USERS" ] || [ "${ALL_GROUPS[$server]}" -le "$NGROUPS" ]; then
            echo "$server holds ${ALL_USERS[$server]} users and ${ALL_GROUPS[$server]} groups, fewer than the dataset" >&2
            exit 1
        fi
        fact "$server for the matrix: uidNumber = ${UID_BASE[$server]} + N, gidNumber = ${GID_BASE[$server]} + N, ${ALL_USERS[$server]} posixAccount entries, ${ALL_GROUPS[$server]} posixGroup entries"
    done
fi

# Attributes the NSS clients ask for (nslcd's defaults; SSSD's rfc2307bis
# user and group maps).
NSS_USER_ATTRS="objectClass,uid,userPassword,uidNumber,gidNumber,cn,displayName,homeDirectory,loginShell"
SSSD_USER_ATTRS="objectClass,uid,userPassword,uidNumber,gidNumber,displayName,homeDirectory,loginShell,modifyTimestamp,entryUUID"
NSS_GROUP_ATTRS="objectClass,cn,userPassword,gidNumber,memberUid,member"

# Sets SHAPE to the search-shape arguments of matrix shape $1 on server $2:
# base, scope, filter, attributes, expected entries, users picked from.
matrix_shape() {
    local users="ou=users,{base}" groups="ou=groups,{base}"
    case "$1" in
        nextcloud-login) SHAPE=(--search-base "$users" --filter "(&(|(objectclass=inetOrgPerson))(|(uid={uid})(|(mailPrimaryAddress={uid})(mail={uid}))))" --attrs "uid,mail,displayName,entryUUID" --expect 1) ;;
        gitea-login) SHAPE=(--search-base "$users" --filter "(&(objectClass=posixAccount)(|(uid={uid})(mail={uid}@example.com)))" --attrs "uid,givenName,sn,mail" --expect 1) ;;
        # Gitea's admin filter, read as a base search on the user's entry.
        gitea-admin-check) SHAPE=(--search-base "{userDn}" --scope base --filter "(memberOf=cn=group001,ou=groups,{base})" --attrs "uid" --expect 1 --pick-users 500) ;;
        grafana-login) SHAPE=(--search-base "{base}" --filter "(cn={uid})" --attrs "cn,givenName,sn,mail" --expect 1) ;;
        authelia-login) SHAPE=(--search-base "$users" --filter "(&(uid={uid})(objectClass=person))" --attrs "uid,mail,displayName" --expect 1) ;;
        # The plugin lists the group's members at every login (group002: 20).
        jellyfin-members) SHAPE=(--search-base "{base}" --filter "(memberOf=cn=group002,ou=groups,{base})" --attrs "uid,cn,mail,displayName" --expect 20) ;;
        nss-user-uid) SHAPE=(--search-base "$users" --filter "(&(objectClass=posixAccount)(uid={uid}))" --attrs "$NSS_USER_ATTRS" --expect 1) ;;
        # nslcd with only `base dc=…` configured.
        nss-user-uid-base) SHAPE=(--search-base "{base}" --filter "(&(objectClass=posixAccount)(uid={uid}))" --attrs "$NSS_USER_ATTRS" --expect 1) ;;
        nss-user-uidnumber) SHAPE=(--search-base "$users" --filter "(&(objectClass=posixAccount)(uidNumber={uidNumber}))" --attrs "$NSS_USER_ATTRS" --expect 1) ;;
        sssd-user-uid) SHAPE=(--search-base "$users" --filter "(&(uid={uid})(objectclass=posixAccount)(uid=*)(&(uidNumber=*)(!(uidNumber=0))))" --attrs "$SSSD_USER_ATTRS" --expect 1) ;;
        nss-enum-users) SHAPE=(--search-base "$users" --filter "(objectClass=posixAccount)" --attrs "$NSS_USER_ATTRS" --expect "${ALL_USERS[$2]}") ;;
        grafana-groups) SHAPE=(--search-base "{base}" --filter "(&(objectClass=groupOfNames)(member={userDn}))" --attrs "cn" --expect 2 --pick-users 500) ;;
        authelia-groups) SHAPE=(--search-base "$groups" --filter "(&(member={userDn})(objectClass=groupOfNames))" --attrs "cn" --expect 2 --pick-users 500) ;;
        nss-group-gidnumber) SHAPE=(--search-base "$groups" --filter "(&(objectClass=posixGroup)(gidNumber={gidNumber}))" --attrs "$NSS_GROUP_ATTRS" --expect 1) ;;
        nss-group-name) SHAPE=(--search-base "$groups" --filter "(&(objectClass=posixGroup)(cn={group}))" --attrs "$NSS_GROUP_ATTRS" --expect 1) ;;
        # RFC 2307 initgroups (nslcd without member, Gitea's team sync).
        nss-group-memberuid) SHAPE=(--search-base "$groups" --filter "(&(objectClass=posixGroup)(memberUid={uid}))" --attrs "cn,gidNumber" --expect 2 --pick-users 500) ;;
        # nslcd's initgroups: memberUid or member.
        nss-initgroups) SHAPE=(--search-base "$groups" --filter "(&(objectClass=posixGroup)(|(memberUid={uid})(member={userDn})))" --attrs "gidNumber" --expect 2 --pick-users 500) ;;
        sssd-initgroups) SHAPE=(--search-base "$groups" --filter "(&(member={userDn})(objectClass=posixGroup)(cn=*))" --attrs "objectClass,cn,userPassword,gidNumber,modifyTimestamp" --expect 2 --pick-users 500) ;;
        nss-enum-groups) SHAPE=(--search-base "$groups" --filter "(objectClass=posixGroup)" --attrs "$NSS_GROUP_ATTRS" --expect "${ALL_GROUPS[$2]}") ;;
        *) echo "unknown matrix shape $1" >&2; return 1 ;;
    esac
    SHAPE+=(--groups "$NGROUPS" --uid-number-base "${UID_BASE[$2]}" --gid-number-base "${GID_BASE[$2]}"
        --op-timeout 600)
}

# --- runs -----------------------------------------------------------------
# Sets ARGS to the arguments of portcullis-bench run for row $1 on server $2.
row_args() {
    case "$1" in
        search-uid|search-group-members|search-memberof|bind|bind-search-new-conn)
            ARGS=(--workload "$1") ;;
        # One service account, {SSHA} in slapd (see the header).
        web-service) ARGS=(--workload web-service --service-dn "cn=bench-service,ou=users,$BASE") ;;
        web-service-ldaps) ARGS=(--workload web-service --service-dn "cn=bench-service,ou=users,$BASE"
            --tls-ca "$TLS/ca.pem") ;;
        # slapd's users 201-400 have {SSHA}; Portcullis's the same argon2id.
        bind-ssha-ref) ARGS=(--workload bind --user-offset 200) ;;
        mixed-argon2-flood) ARGS=(--workload mixed-argon2-flood --flood-connections "$CONNS") ;;
        # One user per connection, among users 201-400 ({SSHA} in slapd).
        bind-repeat) ARGS=(--workload bind-repeat --user-offset 200) ;;
        bind-totp) ARGS=(--workload bind-totp --totp-seed "$TOTP_SEED") ;;
        *+memberOf)
            matrix_shape "${1%+memberOf}" "$2" || return 1
            # The value after --attrs gets memberOf added.
            local i
            for i in "${!SHAPE[@]}"; do
                if [ "${SHAPE[$i]}" = --attrs ]; then SHAPE[i+1]="${SHAPE[i+1]},memberOf"; fi
            done
            ARGS=(--workload search-shape "${SHAPE[@]}") ;;
        *)
            if is_matrix_row "$1"; then
                matrix_shape "$1" "$2" || return 1
                ARGS=(--workload search-shape "${SHAPE[@]}")
            else
                echo "unknown row $1" >&2; return 1
            fi ;;
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
    case "$row" in
        *-ldaps) if [ "$server" = portcullis ]; then url=$PORTCULLIS_LDAPS_URL; else url=$SLAPD_LDAPS_URL; fi ;;
    esac
    row_args "$row" "$server"
    if ! "$BENCH" run "${ARGS[@]}" --row "$row" --label "$server" --url "$url" \
        --server-pid "$pid" --users "$USERS" --connections "$(row_conns "$row")" \
        --duration "$(row_duration "$row")" --warmup "$WARMUP" --password "$PASSWORD" --base-dn "$BASE" \
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

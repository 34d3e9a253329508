#!/usr/bin/env bash
# How long an export through a running server holds writes off: the build
# serves DATA, `portcullis export` runs through its admin socket, and a
# `group add` issued 1 s after the export started is timed. Prints one line:
# the export's wall time, the group add's wall time, the hold the server
# logged (`writes_held_ms` of "store snapshot taken"), its peak RSS and the
# export's size. Each run adds one group (g<random>) to DATA.
#
#   cargo build --release --features bench-tools
#   target/release/portcullis-bench ldif --users 1000000 --groups 50 \
#       --big-group-size 50000 --small-group-size 50000 --base-dn dc=example,dc=com > 1m.ldif
#   target/release/portcullis --data-dir D import 1m.ldif
#   benches/export-hold.sh target/release/portcullis D ldif|json [LABEL]
#
# Alternate two builds on one data directory to compare them; wall times,
# not CPU: a timed write is what a user waits for.
set -euo pipefail
BIN=$1; DATA=$2; FMT=$3; LABEL=${4:-$(basename "$BIN")}
W=$(mktemp -d)
PORTCULLIS_LOG_LEVEL=info "$BIN" --data-dir "$DATA" serve --ldap-addr 127.0.0.1:0 \
    --ldaps-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 > "$W/out" 2> "$W/err" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 1 600); do grep -q "^listening ldap" "$W/out" && break; sleep 0.1; done
sleep 1
started=$(date +%s.%N)
"$BIN" --data-dir "$DATA" export --format "$FMT" --with-secrets -o "$W/export.out" 2> "$W/export.err" &
EXPORT=$!
sleep 1
g0=$(date +%s.%N)
"$BIN" --data-dir "$DATA" group add "g$RANDOM$RANDOM" > /dev/null
g1=$(date +%s.%N)
wait $EXPORT
ended=$(date +%s.%N)
held=$(grep -ho 'writes_held_ms=[0-9]*' "$W/out" "$W/err" | head -1 | cut -d= -f2)
echo "$LABEL $FMT export_s=$(echo "$ended - $started" | bc) group_add_s=$(echo "$g1 - $g0" | bc)" \
    "writes_held_ms=$held peak_rss_kib=$(awk '/VmHWM/{print $2}' /proc/$PID/status)" \
    "bytes=$(stat -c %s "$W/export.out")"

#!/usr/bin/env bash
# Soak test: holds SOAK_CONNECTIONS (default 2000) LDAP connections against
# the real server binary and runs binds and searches on all of them for
# SOAK_SECS (default 30) seconds; prints the error count (must be 0) and the
# server's peak RSS (VmHWM from /proc/<pid>/status). Not part of CI.
#
#   SOAK_CONNECTIONS=2000 SOAK_SECS=30 benches/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Each connection costs a descriptor on both ends (client and server).
need=$(( ${SOAK_CONNECTIONS:-2000} * 2 + 512 ))
if [ "$(ulimit -n)" -lt "$need" ]; then
    ulimit -n "$need" || { echo "ulimit -n must be at least $need" >&2; exit 1; }
fi
# SOAK_PROFILE=dev runs the debug build (faster to build, slower to run).
exec cargo test --profile "${SOAK_PROFILE:-release}" --test it soak::soak -- --ignored --nocapture

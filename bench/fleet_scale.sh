#!/usr/bin/env bash
# fleet_scale.sh - memory and restart time at fleet scale:
#   VEHICLES vehicles (default 5,000,000), each with a trip running and
#   PINGS+1 pings fed to it, positions derived from ../shared/data;
#   resident memory of fleetd, and of redis-server holding only the same
#   positions as a geo set for reference; then a snapshot, a log tail of
#   TAIL more pings, SIGTERM, and the restart timed from exec to the first
#   answered PING, with the vehicle and trip counts checked.
# Usage: bash bench/fleet_scale.sh   (VEHICLES=5000000 PINGS=2 TAIL=1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
VEHICLES=${VEHICLES:-5000000}
PINGS=${PINGS:-2}
TAIL=${TAIL:-1000000}
. bench/common.sh
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
info() { redis-cli -p "$1" INFO "$2" | tr -d '\r' | grep "^$3:" | cut -d: -f2; }

tmp=${SCALE_DIR:-$(mktemp -d)}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
FPORT=$(free_port); RPORT=$(free_port)
T0=$(date +%s%3N)
common=(--data "$DATA" --vehicles "$VEHICLES" --ts-now "$T0" --key fleet)
machine

build/fleetd --port "$FPORT" --http-port 0 --dir "$tmp/data" >"$tmp/fleetd.log" 2>&1 &
FPID=$!; pids+=($FPID)
wait_up "$FPORT"
$B "${common[@]}" --port "$FPORT" --mode vsetup --pings "$PINGS"
echo "fleetd: vehicles $(info "$FPORT" fleet vehicles), trips running $(info "$FPORT" fleet trips_running)"
sleep 1
echo "fleetd RSS with $VEHICLES vehicles and trips: $(rss_mb $FPID) MB" \
     "($(awk -v r="$(rss_mb $FPID)" -v n="$VEHICLES" 'BEGIN{printf "%.0f", r*1048576/n}') bytes/vehicle)"

redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >/dev/null &
RPID=$!; pids+=($RPID)
wait_up "$RPORT"
$B "${common[@]}" --port "$RPORT" --mode vsetup --pings "$PINGS" --target redis >/dev/null
sleep 1
echo "redis-server RSS with the same positions as one geo set (no status, no trips): $(rss_mb $RPID) MB"
redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true

t=$(date +%s%3N)
redis-cli -p "$FPORT" BGSAVE >/dev/null
while [ "$(info "$FPORT" persistence rdb_bgsave_in_progress)" = 1 ]; do sleep 0.1; done
echo "snapshot: $(( $(date +%s%3N) - t )) ms in the background," \
     "$(du -m "$tmp"/data/snapshot.* | cut -f1) MB; status $(info "$FPORT" persistence rdb_last_bgsave_status)"
$B "${common[@]}" --port "$FPORT" --mode vupdate --requests "$TAIL" --conns 50 --pipeline 32
echo "log after the snapshot: $(du -mc "$tmp"/data/log.* | tail -1 | cut -f1) MB"
kill -TERM $FPID; wait $FPID || true

t=$(date +%s%3N)
build/fleetd --port "$FPORT" --http-port 0 --dir "$tmp/data" >"$tmp/restart.log" 2>&1 &
FPID=$!; pids+=($FPID)
wait_up "$FPORT" 60
ms=$(( $(date +%s%3N) - t ))
grep loaded "$tmp/restart.log"
echo "restart: $ms ms from exec to the first answered PING;" \
     "vehicles $(info "$FPORT" fleet vehicles), trips running $(info "$FPORT" fleet trips_running), RSS $(rss_mb $FPID) MB"

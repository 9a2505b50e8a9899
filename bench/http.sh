#!/usr/bin/env bash
# http.sh - the HTTP API under load with wrk (Debian's package, installed
# here if missing): single-position PUTs over keep-alive connections and
# NDJSON batches to POST /v1/positions, real positions from
# ../shared/data/trips. Each figure is the median of RUNS runs of DURATION
# seconds; p50/p99 are wrk's per-request latencies of the median run.
#   bash bench/http.sh              (RUNS=5 DURATION=5 CONNS=50 BATCH=1000)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
BATCH=${BATCH:-1000}
command -v wrk >/dev/null || sudo_apt=$( [ "$(id -u)" -eq 0 ] && echo "" || echo sudo )
command -v wrk >/dev/null || ${sudo_apt:-} apt-get install -y -qq wrk >/dev/null
. bench/common.sh
python3 bench/points.py build/bench/points.txt
FPORT=$(free_port); HPORT=$(free_port)
tmp=$(mktemp -d)
build/fleetd --port "$FPORT" --http-port "$HPORT" --dir "$tmp/fleetd" >"$tmp/fleetd.log" 2>&1 &
FPID=$!
trap 'kill $FPID 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
wait_up "$FPORT"
machine
echo "fleetd $(build/fleetd --version | cut -d' ' -f2), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2), fsync everysec"

# run NAME SCRIPT CONNS: RUNS runs; prints the median run's result line.
run() {
    local name=$1 script=$2 conns=$3 lines=()
    for _ in $(seq "$RUNS"); do
        lines+=("$(BATCH=$BATCH wrk -t1 -c"$conns" -d"${DURATION}s" -s "$script" \
                   "http://127.0.0.1:$HPORT" | grep '^result:')")
    done
    # the run with the median rate
    printf '%s\n' "${lines[@]}" | awk '{split($2,a,"="); print a[2], $0}' | sort -n |
        awk -v m=$(( (RUNS + 1) / 2 )) 'NR==m {$1=""; print}' | sed "s|^ result:|$name:|"
}
run "put 1 conn" bench/http_put.lua 1
run "put $CONNS conns" bench/http_put.lua "$CONNS"
run "ndjson $BATCH/request, 4 conns" bench/http_ndjson.lua 4
echo "vehicles at the end: $(redis-cli -p "$FPORT" VEHICLE.COUNT | tr '\n' ' ')"

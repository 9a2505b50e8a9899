#!/usr/bin/env bash
# list_load.sh - what one dashboard costs the other clients: VEHICLE.UPDATE
# latency, open loop at RATE/s on 50 connections (pipeline 4), with and
# without a poller that fetches the whole compact list of VEHICLES vehicles
# (GET /v1/vehicles?format=compact&limit=200000, ~5 MB at 100,000) once a
# second, as the dashboard does. Runs alternate, ROUNDS of each.
# Usage: bash bench/list_load.sh   (VEHICLES=100000 RATE=70000 ROUNDS=3;
# FLEETD=path runs another binary, e.g. an older build to compare)
set -euo pipefail
cd "$(dirname "$0")/.."
VEHICLES=${VEHICLES:-100000}
RATE=${RATE:-70000}
ROUNDS=${ROUNDS:-3}
. bench/common.sh

start_fleetd
machine
T0=$(date +%s%3N)
common=(--data "$DATA" --vehicles "$VEHICLES" --ts-now "$T0" --key fleet)
$B "${common[@]}" --port "$FPORT" --mode vsetup --pings 2 >/dev/null
REQUESTS=$((RATE * 10))
step=0
for round in $(seq "$ROUNDS"); do
    for poll in 0 1; do
        poller=
        if [ "$poll" = 1 ]; then
            (while :; do
                curl -s -o /dev/null "http://127.0.0.1:$HPORT/v1/vehicles?format=compact&limit=200000"
                sleep 1
            done) &
            poller=$!
        fi
        out=$($B "${common[@]}" --port "$FPORT" --mode vupdate --requests "$REQUESTS" \
              --step0 "$step" --conns 50 --pipeline 4 --rate "$RATE")
        step=$((step + REQUESTS / VEHICLES + 1))
        [ -n "$poller" ] && { kill "$poller"; wait "$poller" 2>/dev/null || true; }
        printf 'round %d, %-11s p50 %7.1f us  p99 %8.1f us  p99.9 %8.1f us\n' "$round" \
            "$([ "$poll" = 1 ] && echo "with list" || echo "alone")" \
            "$(echo "$out" | field p50_us)" "$(echo "$out" | field p99_us)" "$(echo "$out" | field p999_us)"
    done
done

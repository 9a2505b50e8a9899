#!/usr/bin/env bash
# list_bbox.sh - GET /v1/vehicles?bbox= on a large fleet: how long a list of
# a small box takes, beside the whole compact list, median of REQUESTS.
# A box's list seeks through the index from one of the box's geohash spans
# to the next, so it costs what the box holds, not what the fleet holds.
# Usage: bash bench/list_bbox.sh   (VEHICLES=100000 REQUESTS=30;
# FLEETD=path runs another binary, e.g. an older build to compare)
set -euo pipefail
cd "$(dirname "$0")/.."
VEHICLES=${VEHICLES:-100000}
REQUESTS=${REQUESTS:-30}
. bench/common.sh

start_fleetd
machine
$B --data "$DATA" --vehicles "$VEHICLES" --ts-now "$(date +%s%3N)" --key fleet \
   --port "$FPORT" --mode vsetup --pings 0 >/dev/null

# time_list NAME QUERY: median seconds of REQUESTS fetches, and the size
time_list() {
    local url="http://127.0.0.1:$HPORT/v1/vehicles?$2" t n
    n=$(curl -s "$url" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["vehicles"]))')
    t=$(for _ in $(seq "$REQUESTS"); do curl -s -o /dev/null -w '%{time_total}\n' "$url"; done | median)
    printf '%-40s %8s vehicles   median %7.2f ms\n' "$1" "$n" "$(awk -v t="$t" 'BEGIN{print t*1000}')"
}
time_list "bbox 1 km x 1 km, Midtown Manhattan" "bbox=-73.99,40.75,-73.978,40.759&limit=10000"
time_list "bbox 10 km x 10 km, Manhattan" "bbox=-74.03,40.70,-73.91,40.79&limit=10000"
time_list "bbox across the antimeridian, empty" "bbox=179.5,-18,-179.5,-16&limit=10000"
time_list "all, compact" "format=compact&limit=200000"

#!/usr/bin/env bash
# demo.sh - builds fleetd and the demo fleet driver, starts fleetd with its
# data directory under build/demo, and starts build/fleet-replay in the
# background: 10,000 vehicles (VEHICLES=...) replayed at 10x from the real
# taxi trips, vessel and car tracks in ../shared/data, so the newcomer sees
# a moving fleet with trips at once. `make demo-stop` stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -j2 all
PORT=${PORT:-7878}
HTTP_PORT=${HTTP_PORT:-7879}
VEHICLES=${VEHICLES:-10000}
mkdir -p build/demo
if [ -f build/demo/fleetd.pid ] && kill -0 "$(cat build/demo/fleetd.pid)" 2>/dev/null; then
    echo "demo: already running (pid $(cat build/demo/fleetd.pid)); make demo-stop first"
    exit 0
fi
nohup build/fleetd --port "$PORT" --http-port "$HTTP_PORT" --dir build/demo/data \
    >build/demo/fleetd.log 2>&1 &
echo $! > build/demo/fleetd.pid
# Until PONG: a large data directory loads with the port open, answering
# LOADING (redis-cli exits 0 on that too).
for _ in $(seq 600); do
    [ "$(redis-cli -p "$PORT" PING 2>/dev/null)" = PONG ] && break
    sleep 0.1
done
if [ ! -d ../shared/data ]; then
    echo "demo: ../shared/data is absent; fleetd runs with an empty fleet"
else
    nohup build/fleet-replay --port "$PORT" --vehicles "$VEHICLES" \
        >build/demo/replay.log 2>&1 &
    echo $! > build/demo/replay.pid
    sleep 1
    if ! kill -0 "$(cat build/demo/replay.pid)" 2>/dev/null; then
        echo "demo: fleet-replay stopped at once; its log (build/demo/replay.log):"
        tail -5 build/demo/replay.log
    fi
fi
grep -m1 " ready: " build/demo/fleetd.log || head -1 build/demo/fleetd.log
if curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/"; then
    DASHBOARD="Open the dashboard: http://127.0.0.1:$HTTP_PORT/"
else
    DASHBOARD="The dashboard will be at http://127.0.0.1:$HTTP_PORT/ (it lands with the HTTP issue)."
fi
cat <<MSG

fleetd demo is running (log: build/demo/fleetd.log).
$VEHICLES vehicles replay real data at 10x: NYC and Chicago taxis with their
trips, AIS vessels in New York harbour, a car in Munich (build/fleet-replay,
one progress line a second in build/demo/replay.log).

$DASHBOARD
Or ask fleetd directly:

  redis-cli -p $PORT VEHICLE.COUNT FLEET nyc-taxi
  redis-cli -p $PORT VEHICLE.NEARBY -73.985 40.758 1 km COUNT 5 STATUS available WITHDIST
  redis-cli -p $PORT VEHICLE.GET nyc-000001
  redis-cli -p $PORT TRIP.LIST nyc-000001
  redis-cli -p $PORT AREA.SUPPLY 5 BOX -74.02 40.70 -73.93 40.80
  redis-cli -p $PORT INFO fleet
  curl -s localhost:$HTTP_PORT/metrics | grep fleetd_commands_total
  tail -f build/demo/replay.log

Stop it with: make demo-stop
MSG

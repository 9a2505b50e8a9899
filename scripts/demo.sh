#!/usr/bin/env bash
# demo.sh - builds fleetd, starts it with its data directory under
# build/demo, and replays the real vessel and car tracks into it so the
# newcomer sees live vehicles at once. `make demo-stop` stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -j2 all
PORT=${PORT:-7878}
HTTP_PORT=${HTTP_PORT:-7879}
mkdir -p build/demo
if [ -f build/demo/fleetd.pid ] && kill -0 "$(cat build/demo/fleetd.pid)" 2>/dev/null; then
    echo "demo: already running (pid $(cat build/demo/fleetd.pid)); make demo-stop first"
    exit 0
fi
nohup build/fleetd --port "$PORT" --http-port "$HTTP_PORT" --dir build/demo/data \
    >build/demo/fleetd.log 2>&1 &
echo $! > build/demo/fleetd.pid
for _ in $(seq 50); do
    redis-cli -p "$PORT" PING >/dev/null 2>&1 && break
    sleep 0.1
done
if [ ! -d ../shared/data/tracks ]; then
    echo "demo: ../shared/data/tracks is absent; fleetd runs with an empty fleet"
else
    python3 scripts/replay_tracks.py --port "$PORT" --once >/dev/null
    # The replay compresses time 10x, so vessels seem 10x faster than they
    # are: raise the plausibility limit accordingly.
    redis-cli -p "$PORT" CONFIG SET max-speed-kmh 5000 >/dev/null
    nohup python3 scripts/replay_tracks.py --port "$PORT" --speed 10 \
        >build/demo/replay.log 2>&1 &
    echo $! > build/demo/replay.pid
fi
head -1 build/demo/fleetd.log
cat <<MSG

fleetd demo is running (log: build/demo/fleetd.log).
Live vehicles (295 AIS vessels in New York harbour, one car in Munich) are
replayed at 10x as vehicles with trips, and into the geo key fleet:live. Try:

  redis-cli -p $PORT VEHICLE.COUNT FLEET harbor
  redis-cli -p $PORT VEHICLE.NEARBY -74.03 40.65 3 km COUNT 5 WITHDIST
  redis-cli -p $PORT VEHICLE.GET car:munich-1
  redis-cli -p $PORT TRIP.LIST car:munich-1
  redis-cli -p $PORT AREA.SUPPLY 5
  redis-cli -p $PORT GEOSEARCH fleet:live FROMLONLAT -74.03 40.65 BYRADIUS 3 km ASC COUNT 5 WITHDIST
  curl -s localhost:$HTTP_PORT/metrics | grep fleetd_commands_total

Stop it with: make demo-stop
MSG

#!/usr/bin/env bash
# fleet.sh - the live-fleet figures of issue 3, side by side with Redis where
# Redis has the equivalent, one invocation = one set of numbers:
#   1. VEHICLE.UPDATE (every vehicle with a trip running) vs Redis GEOADD of
#      the same vehicles and positions, same client, 50 connections,
#      unpipelined and pipelined (medians of RUNS runs);
#   2. latency at half fleetd's unpipelined peak, open loop (p50/p99/p99.9
#      counted from when each request was due), 50 connections;
#   3. appendfsync always (group commit) beside the disk's own fdatasync
#      latency measured in the same directory.
# Usage: bash bench/fleet.sh   (RUNS=3 VEHICLES=100000 REQUESTS=1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
VEHICLES=${VEHICLES:-100000}
REQUESTS=${REQUESTS:-1000000}
. bench/common.sh

tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
RPORT=$(free_port); FPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >/dev/null &
pids+=($!)
build/fleetd --port "$FPORT" --http-port 0 --dir "$tmp/everysec" >"$tmp/fleetd.log" 2>&1 &
pids+=($!)
wait_up "$RPORT"; wait_up "$FPORT"
machine
echo "peer: $(redis-server --version | cut -d' ' -f1-3); fleetd $(build/fleetd --version | cut -d' ' -f2), appendfsync everysec"

T0=$(date +%s%3N)
STEPS=$(( (REQUESTS + VEHICLES - 1) / VEHICLES ))
# Steps already taken, in a file: runs happen in $( ) subshells, where a
# shell variable's increments would be lost and later runs would resend
# old (STALE) pings.
STEPFILE=$tmp/steps
echo 0 > "$STEPFILE"
common=(--data "$DATA" --vehicles "$VEHICLES" --ts-now "$T0" --key fleet)
$B "${common[@]}" --port "$FPORT" --mode vsetup --pings 2
$B "${common[@]}" --port "$RPORT" --mode vsetup --pings 2 --target redis

# run PORT MODE ARGS... : one run, prints its result line; every fleetd run
# takes new steps so all of its pings are newer than the last ones.
run() {
    local port=$1 mode=$2 step; shift 2
    step=$(cat "$STEPFILE")
    $B "${common[@]}" --port "$port" --mode "$mode" --requests "$REQUESTS" --step0 "$step" "$@"
    [ "$mode" = vupdate ] && echo $((step + STEPS)) > "$STEPFILE"
    return 0
}

compare() { # compare NAME ARGS...
    local name=$1; shift
    local f r fo ro
    fo=""; ro=""
    # Alternate the two servers, so a drift of the shared machine's speed
    # during the runs lands on both.
    for _ in $(seq "$RUNS"); do
        fo+="$(run "$FPORT" vupdate "$@")"$'\n'
        ro+="$(run "$RPORT" vgeoadd "$@")"$'\n'
    done
    fo=${fo%$'\n'}; ro=${ro%$'\n'}
    echo "$fo" | sed 's/^/  fleetd /'; echo "$ro" | sed 's/^/  redis  /'
    f=$(echo "$fo" | field ops_per_sec | median); r=$(echo "$ro" | field ops_per_sec | median)
    printf '%-40s fleetd %9.0f/s  redis GEOADD %9.0f/s  ratio %.2f\n' "$name" "$f" "$r" \
        "$(awk -v a="$f" -v b="$r" 'BEGIN{print a/b}')"
    LAST_F=$f
}

echo "== 1. VEHICLE.UPDATE with trips running vs GEOADD ($VEHICLES vehicles, $REQUESTS requests, medians of $RUNS)"
compare "50 conns, no pipelining" --conns 50 --pipeline 1
PEAK=$LAST_F
compare "50 conns, pipeline 32" --conns 50 --pipeline 32

HALF=$(awk -v p="$PEAK" 'BEGIN{printf "%d", p/2}')
echo "== 2. open loop at half the unpipelined peak: $HALF/s, 50 conns (medians of $RUNS)"
for who in fleetd redis; do
    port=$FPORT; mode=vupdate
    [ $who = redis ] && { port=$RPORT; mode=vgeoadd; }
    out=$(for _ in $(seq "$RUNS"); do run "$port" "$mode" --conns 50 --pipeline 4 --rate "$HALF"; done)
    echo "$out" | sed "s/^/  $who /"
    printf '%-8s p50 %7.1f us  p99 %7.1f us  p99.9 %7.1f us\n' "$who" \
        "$(echo "$out" | field p50_us | median)" "$(echo "$out" | field p99_us | median)" \
        "$(echo "$out" | field p999_us | median)"
done

echo "== 3. appendfsync always"
APORT=$(free_port)
build/fleetd --port "$APORT" --http-port 0 --dir "$tmp/always" --fsync always >"$tmp/always.log" 2>&1 &
pids+=($!)
wait_up "$APORT"
echo 0 > "$STEPFILE"
$B "${common[@]}" --port "$APORT" --mode vsetup --pings 2 >/dev/null
python3 - "$tmp/always" <<'EOF'
import os, sys, time, statistics
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
lat = []
for _ in range(2000):
    os.write(fd, b"x" * 100)
    t = time.perf_counter(); os.fdatasync(fd); lat.append(time.perf_counter() - t)
os.close(fd); os.unlink(path)
lat.sort()
print("disk fdatasync of a 100-byte append: p50 %.0f us  p99 %.0f us  -> %.0f syncs/s"
      % (lat[len(lat)//2] * 1e6, lat[int(len(lat)*0.99)] * 1e6, 1 / lat[len(lat)//2]))
EOF
for conns in 1 50; do
    # One connection can only go as fast as one fdatasync per request.
    n=$((conns == 1 ? 3000 : REQUESTS / 5))
    out=$(for _ in $(seq "$RUNS"); do run "$APORT" vupdate --conns $conns --pipeline 1 --requests $n; done)
    echo "$out" | sed 's/^/  /'
    printf 'fsync always, %2d conns: %9.0f/s  p50 %7.1f us  p99 %7.1f us\n' $conns \
        "$(echo "$out" | field ops_per_sec | median)" "$(echo "$out" | field p50_us | median)" \
        "$(echo "$out" | field p99_us | median)"
done
redis-cli -p "$APORT" INFO persistence | grep -E "aof_fsyncs|aof_records_synced" | tr -d '\r'

#!/usr/bin/env bash
# test_cli.sh - fleetd through real clients: redis-cli (RESP2 and RESP3,
# --pipe mass insert), redis-benchmark, curl on the HTTP port with promtool
# checking /metrics, the config file checker, and a clean SIGTERM.
set -uo pipefail
cd "$(dirname "$0")/../.."
FLEETD=${FLEETD_BIN:-build/fleetd}
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL cli: $1"; fi; }
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
P=$(port); H=$(port); tmp=$(mktemp -d)
$FLEETD --port "$P" --http-port "$H" --dir "$tmp/d" >"$tmp/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do redis-cli -p "$P" PING >/dev/null 2>&1 && break; sleep 0.1; done
cli() { redis-cli -p "$P" "$@"; }

check "startup line" "grep -q 'ready: resp 127.0.0.1:$P' $tmp/log"
check "PING" '[ "$(cli PING)" = PONG ]'
check "RESP3 HELLO" 'cli -3 HELLO 3 | grep -q proto'
check "GEOADD" '[ "$(cli GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania)" = 2 ]'
check "GEODIST" '[ "$(cli GEODIST Sicily Palermo Catania km)" = 166.2742 ]'
check "GEOSEARCH" '[ "$(cli GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ASC | tr "\n" " ")" = "Catania Palermo " ]'
for i in $(seq 1 5000); do
    printf 'GEOADD pipe %s %s m%s\r\n' "$(awk -v i=$i 'BEGIN{printf "%.5f", -74+i/100000}')" 40.7 "$i"
done > "$tmp/pipe.txt"
check "redis-cli --pipe" 'cli --pipe < $tmp/pipe.txt | grep -q "errors: 0, replies: 5000"'
check "ZCARD after pipe" '[ "$(cli ZCARD pipe)" = 5000 ]'
check "redis-benchmark" 'redis-benchmark -p $P -n 2000 -c 10 -t ping,set,get -q >/dev/null'
check "CONFIG GET *" 'cli CONFIG GET "*" | grep -q maxclients'
check "CONFIG SET timeout" '[ "$(cli CONFIG SET timeout 30)" = OK ] && [ "$(cli CONFIG GET timeout | tail -1)" = 30 ]'
check "INFO sections" 'cli INFO all | grep -q "^cmdstat_geoadd:calls="'
check "COMMAND COUNT" '[ "$(cli COMMAND COUNT)" -gt 30 ]'
check "healthz" 'curl -sf localhost:$H/healthz | grep -q ok'
check "readyz" 'curl -sf localhost:$H/readyz >/dev/null'
check "404 problem+json" 'curl -s -o /dev/null -w "%{http_code} %{content_type}" localhost:$H/nope | grep -q "404 application/problem+json"'
check "405 with Allow" 'curl -s -X DELETE -D - -o /dev/null localhost:$H/metrics | grep -qi "^Allow: GET, HEAD"'
check "405 problem+json body" 'curl -s -X POST localhost:$H/metrics | grep -q "\"status\":405"'
head -c 200000 /dev/zero > "$tmp/big.bin"
check "oversized body refused" '[ "$(curl -s -o /dev/null -w "%{http_code}" -X GET --data-binary @$tmp/big.bin localhost:$H/metrics)" = 413 ]'
check "HEAD /metrics" 'curl -sfI localhost:$H/metrics | grep -qi "text/plain"'
curl -sf localhost:$H/metrics > "$tmp/metrics.txt"
check "metrics served" '[ -s $tmp/metrics.txt ]'
check "promtool check metrics" 'promtool check metrics < $tmp/metrics.txt'
check "per-command histogram" 'grep -q "fleetd_command_duration_seconds_bucket{cmd=\"geoadd\"" $tmp/metrics.txt'
check "connected clients gauge" 'grep -q "^fleetd_connected_clients" $tmp/metrics.txt'
check "check-config good" '$FLEETD --check-config config/fleetd.yaml >/dev/null'
printf 'port: 7000\nmaxclients: -5\n' > "$tmp/bad.yaml"
check "check-config names the bad line" '{ $FLEETD --check-config $tmp/bad.yaml 2>&1 || true; } | grep -q "line 2"'
printf 'port: [1\n' > "$tmp/broken.yaml"
check "check-config refuses broken YAML" '! $FLEETD --check-config $tmp/broken.yaml 2>/dev/null'
check "bad flag refused" '! $FLEETD --fsync sometimes 2>/dev/null'
check "negative --load-async-bytes refused" '{ $FLEETD --load-async-bytes -1 2>&1 || true; } | grep -q "load-async-bytes"'
check "CONFIG SET load-async-bytes refused (start-up only)" 'cli CONFIG SET load-async-bytes 5 | grep -q immutable'
check "port in use refused" '! $FLEETD --port $P --http-port 0 --dir $tmp/d2 2>/dev/null'
kill -TERM $PID
wait $PID; rc=$?
check "SIGTERM exits 0" '[ $rc = 0 ]'
check "goodbye logged" 'grep -q "shutting down" $tmp/log'
echo "cli: $pass passed, $fail failed"
[ $fail = 0 ]

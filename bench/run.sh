#!/usr/bin/env bash
# run.sh - fleetd against a real redis-server: same client (bench/geobench),
# same data (derived from ../shared/data), same machine, one run.
#
# Each figure is the median of RUNS repetitions; every ratio in
# bench/README.md comes from one invocation of this script:
#   make bench            (or: RUNS=5 MEMBERS=1000000 bash bench/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
MEMBERS=${MEMBERS:-1000000}
. bench/common.sh
RPORT=$(free_port); FPORT=$(free_port); HPORT=$(free_port)
tmp=$(mktemp -d)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >/dev/null &
RPID=$!
build/fleetd --port "$FPORT" --http-port "$HPORT" --dir "$tmp/fleetd" >"$tmp/fleetd.log" 2>&1 &
FPID=$!
# Two no-op servers: what any server could reach with one read and one
# write per request (bench/noop_server.c), with epoll and with io_uring.
NPORT=$(free_port); UPORT=$(free_port)
build/bench/noop_server "$NPORT" epoll & NPID=$!
UPID=""
if build/bench/noop_server --has-uring; then build/bench/noop_server "$UPORT" uring & UPID=$!; fi
trap 'kill $RPID $FPID $NPID $UPID 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
wait_up "$RPORT"; wait_up "$FPORT"; wait_up "$NPORT"  # the no-op servers answer PING too
if [ -n "$UPID" ]; then
    wait_up "$UPORT"
    kill -0 "$UPID" 2>/dev/null || { echo "no-op io_uring server did not start; left out"; UPID=""; }
fi
machine
echo "peer: $(redis-server --version | cut -d' ' -f1-3); fleetd $(build/fleetd --version | cut -d' ' -f2)"


# Server CPU time (user + system, in clock ticks) of a process.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# run_on PID PORT ARGS... : one run; prints "ops_per_sec server_cpu_us_per_op"
run_on() {
    local pid=$1 port=$2; shift 2
    local c0 out ops c1
    c0=$(cpu_ticks "$pid")
    out=$($B --data "$DATA" --members "$MEMBERS" --port "$port" "$@")
    c1=$(cpu_ticks "$pid")
    ops=$(echo "$out" | tr ' ' '\n' | grep '^ops=' | cut -d= -f2)
    echo "$(echo "$out" | field ops_per_sec) $(awk -v t=$((c1 - c0)) -v u=$TICK_US -v n="$ops" 'BEGIN{printf "%.2f", t*u/n}')"
}

# measure NAME ARGS... : median of RUNS runs on each server, throughput
# ratio, and the server CPU each request cost (the ratio that matters when
# the client, not the server, is the bottleneck).
measure() {
    local name=$1; shift
    local rs fs r f rc fc
    rs=$(for _ in $(seq "$RUNS"); do run_on $RPID "$RPORT" "$@"; done)
    fs=$(for _ in $(seq "$RUNS"); do run_on $FPID "$FPORT" "$@"; done)
    r=$(echo "$rs" | cut -d' ' -f1 | median); rc=$(echo "$rs" | cut -d' ' -f2 | median)
    f=$(echo "$fs" | cut -d' ' -f1 | median); fc=$(echo "$fs" | cut -d' ' -f2 | median)
    printf '%-46s redis %9s/s %8sus   fleetd %9s/s %8sus   throughput x%s  cpu/op x%s\n' \
        "$name" "$r" "$rc" "$f" "$fc" \
        "$(awk -v a="$f" -v b="$r" 'BEGIN{printf "%.2f", (b>0)?a/b:0}')" \
        "$(awk -v a="$fc" -v b="$rc" 'BEGIN{printf "%.2f", (a>0)?b/a:0}')"
}

# measure_with_ceiling NAME ARGS... : as measure, with the no-op servers
# beside them, one repetition of each in turn so that the machine's drift
# between runs falls on all alike. Prints each median, then fleetd and the
# no-op servers against redis: what fleetd reaches and what any server
# could have reached in the same run.
measure_with_ceiling() {
    local name=$1; shift
    local all="" i
    for _ in $(seq "$RUNS"); do
        all+="r $(run_on $RPID "$RPORT" "$@")"$'\n'
        all+="f $(run_on $FPID "$FPORT" "$@")"$'\n'
        all+="n $(run_on $NPID "$NPORT" "$@")"$'\n'
        if [ -n "$UPID" ]; then all+="u $(run_on $UPID "$UPORT" "$@")"$'\n'; fi
    done
    declare -A ops cpu
    for i in r f n u; do
        ops[$i]=$(echo "$all" | awk -v k=$i '$1 == k {print $2}' | median)
        cpu[$i]=$(echo "$all" | awk -v k=$i '$1 == k {print $3}' | median)
    done
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b>0)?a/b:0}'; }
    printf '%-46s redis %9s/s %8sus   fleetd %9s/s %8sus   throughput x%s  cpu/op x%s\n' \
        "$name" "${ops[r]}" "${cpu[r]}" "${ops[f]}" "${cpu[f]}" \
        "$(ratio "${ops[f]}" "${ops[r]}")" "$(ratio "${cpu[r]}" "${cpu[f]}")"
    printf '%-46s no-op epoll %9s/s %8sus  x%s of redis' "  ceiling: a server doing nothing" \
        "${ops[n]}" "${cpu[n]}" "$(ratio "${ops[n]}" "${ops[r]}")"
    if [ -n "$UPID" ]; then
        printf '   no-op io_uring %9s/s %8sus  x%s' \
            "${ops[u]}" "${cpu[u]}" "$(ratio "${ops[u]}" "${ops[r]}")"
    fi
    printf '   fleetd/no-op x%s\n' "$(ratio "${ops[f]}" "${ops[n]}")"
}

echo "== load $MEMBERS members (100 per GEOADD) and memory"
rl=$($B --data "$DATA" --members "$MEMBERS" --port "$RPORT" --mode load)
fl=$($B --data "$DATA" --members "$MEMBERS" --port "$FPORT" --mode load)
echo "redis:  $rl"; echo "fleetd: $fl"
rb=$(echo "$rl" | field bytes_per_member); fb=$(echo "$fl" | field bytes_per_member)
printf '%-44s redis %12s   fleetd %12s   ratio %s\n' "memory per member (used_memory bytes)" "$rb" "$fb" \
    "$(awk -v a="$fb" -v b="$rb" 'BEGIN{printf "%.2f", a/b}')"
rr=$(ps -o rss= -p $RPID); fr=$(ps -o rss= -p $FPID)
printf '%-44s redis %12s   fleetd %12s\n' "resident set after load (KiB)" "$rr" "$fr"

echo "== identical results (byte-for-byte replies, WITHDIST)"
$B --data "$DATA" --members "$MEMBERS" --port "$RPORT" --port2 "$FPORT" --mode verify --requests 500
$B --data "$DATA" --members "$MEMBERS" --port "$RPORT" --port2 "$FPORT" --mode verify --requests 500 --count 10

echo "== throughput (median of $RUNS runs): requests/s and server CPU us per request"
measure "GEOSEARCH BYRADIUS 1 km (50 conns)" --mode search --conns 50 --requests 20000
measure "GEOSEARCH BYRADIUS 1 km COUNT 10 (50 conns)" --mode search --conns 50 --requests 20000 --count 10
measure "GEOSEARCH BYRADIUS 1 km WITHDIST (50 conns)" --mode search --conns 50 --requests 20000 --withdist 1
measure_with_ceiling "GEOADD, no pipelining (50 conns)" --mode geoadd --conns 50 --requests 300000 --key bench:add1
measure "GEOADD, pipeline 32 (50 conns)" --mode geoadd --conns 50 --pipeline 32 --requests 2000000 --key bench:add2

# common.sh - what every benchmark script shares: builds fleetd and the
# client, checks the data is there, and small helpers. Sourced with the
# repository root as the working directory.
DATA=${DATA:-../shared/data}
make -s -j2 all
mkdir -p build/bench
gcc -std=c11 -O2 -Wall -Wextra -Werror bench/geobench.c -lm -o build/bench/geobench
# The no-op server's io_uring loop is built where liburing-dev is
# installed (not by scripts/setup.sh: only this comparison needs it, and
# the test suite must not depend on it); its epoll loop needs nothing.
URING=""; if echo '#include <liburing.h>' | gcc -E -x c - >/dev/null 2>&1; then URING="-DHAVE_URING -luring"; fi
gcc -std=c11 -O2 -Wall -Wextra -Werror bench/noop_server.c $URING -o build/bench/noop_server
B=build/bench/geobench
[ -d "$DATA/trips" ] || { echo "bench: $DATA is absent, nothing to measure"; exit 0; }

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# wait_up PORT [SECONDS]: until the server answers PING (default 10),
# polling every 10 ms (restart times are read from it). PONG, or the no-op
# server's 1: a LOADING error (redis-cli exits 0 on it) is not up.
wait_up() {
    for _ in $(seq $(( ${2:-10} * 100 ))); do
        case "$(redis-cli -p "$1" PING 2>/dev/null)" in PONG|1) return ;; esac
        sleep 0.01
    done
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { tr ' ' '\n' | grep "^$1=" | cut -d= -f2; }
machine() { echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GB"; }

# start_fleetd: fleetd (FLEETD=path for another binary) on free ports,
# its data in a temporary directory; sets FPORT, HPORT, tmp and pids.
# Everything in pids is killed and tmp removed when the script exits.
start_fleetd() {
    tmp=$(mktemp -d)
    pids=()
    trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
    FPORT=$(free_port); HPORT=$(free_port)
    "${FLEETD:-build/fleetd}" --port "$FPORT" --http-port "$HPORT" --dir "$tmp/d" >"$tmp/fleetd.log" 2>&1 &
    pids+=($!)
    wait_up "$FPORT"
}

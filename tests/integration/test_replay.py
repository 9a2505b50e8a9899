"""test_replay.py - build/fleet-replay, the demo fleet driver, against a real
fleetd.

1. 2,000 vehicles from all four sources of ../shared/data at 60x for four
   seconds: exit 0, a progress line every second and a closing summary, no
   reply errors; every source fleet has vehicles in fleetd and together
   exactly 2,000; trips started and ended (fleetd's counters, the tool's,
   and the finished trips of NYC cabs, whose top speeds are real ones);
   almost no ping judged implausible, although time runs 60x.
2. SIGTERM stops a replay cleanly with its summary.
3. --once with 500 vehicles on an emptied fleetd leaves exactly 500.

The tool is looked up next to FLEETD_BIN (build/fleet-replay, or
build/san/fleet-replay for the sanitizer build). Skips with a message when
../shared/data is absent. Prints "replay: N passed, N failed".
"""
import os
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the tree
import fleetlib                     # noqa: E402
from fleetlib import Conn           # noqa: E402

res = fleetlib.Results("replay")
DATA = os.path.normpath(os.path.join(fleetlib.ROOT, "..", "shared", "data"))
REPLAY = os.path.join(os.path.dirname(os.path.abspath(fleetlib.FLEETD)), "fleet-replay")
FLEETS = ("nyc-taxi", "chicago-taxi", "ais", "munich")
LINE = re.compile(r"^fleet-replay: t=\d+s sent=\d+ rate=\d+/s vehicles=(\d+) "
                  r"trips_started=\d+ trips_ended=\d+ errors=\d+$")
MAX_IMPLAUSIBLE = 0.01      # of applied pings


def check(cond, what):
    res.check(bool(cond), what)
    return bool(cond)


def decode(buf, i=0):
    """One RESP2/RESP3 reply from buf at i: (value, next offset). Errors
    come back as the string "ERR..."; RESP3 maps as dicts."""
    t, j = buf[i:i + 1], buf.index(b"\r\n", i)
    head, i = buf[i + 1:j], j + 2
    if t in b"+-":
        return head.decode(), i
    if t == b":":
        return int(head), i
    if t == b",":
        return float(head), i
    if t == b"_":
        return None, i
    if t == b"$":
        n = int(head)
        return (None, i) if n < 0 else (buf[i:i + n].decode(), i + n + 2)
    n = int(head) * (2 if t == b"%" else 1)
    items = []
    for _ in range(max(n, 0)):
        v, i = decode(buf, i)
        items.append(v)
    return (dict(zip(items[::2], items[1::2])) if t == b"%" else items), i


def call(conn, *args):
    return decode(conn.call(*args))[0]


def pairs(flat):
    """A RESP2 map (flat array) as a dict."""
    return dict(zip(flat[::2], flat[1::2]))


def info_fleet(conn):
    out = {}
    for line in call(conn, "INFO", "fleet").splitlines():
        k, _, v = line.partition(":")
        if v.isdigit():
            out[k] = int(v)
    return out


def summary(stdout):
    """The closing line's fields as a dict of ints."""
    done = [l for l in stdout.splitlines() if l.startswith("fleet-replay: done ")]
    if not done:
        return {}
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", done[-1])}


def replay(port, *args, timeout=20):
    cmd = [REPLAY, "--port", str(port), "--data", DATA] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def check_run(srv):
    p = replay(srv.port, "--vehicles", 2000, "--speed", 60, "--duration", 4)
    check(p.returncode == 0, "exit code %d (stderr: %s)" % (p.returncode, p.stderr[-500:]))
    lines = [l for l in p.stdout.splitlines() if LINE.match(l)]
    check(len(lines) >= 3, "a progress line per second, got %r" % p.stdout[-500:])
    check(all(LINE.match(l).group(1) == "2000" for l in lines), "vehicles=2000")
    s = summary(p.stdout)
    check(s.get("errors") == 0, "no reply errors: %r" % s)
    check(s.get("trips_started", 0) > 0 and s.get("trips_ended", 0) > 0,
          "the tool started and ended trips: %r" % s)
    return s


def check_fleet(conn):
    total = 0
    for fleet in FLEETS:
        n = pairs(call(conn, "VEHICLE.COUNT", "FLEET", fleet)).get("total", 0)
        check(n > 0, "fleet %s has vehicles (%r)" % (fleet, n))
        total += n
    check(total == 2000, "2000 vehicles in all, got %d" % total)
    st = info_fleet(conn)
    check(st.get("trips_running", 0) > 0, "trips running: %r" % st)
    check(st.get("trips_finished", 0) > 0, "trips finished: %r" % st)
    applied, bad = st.get("pings_applied", 0), st.get("pings_implausible", -1)
    check(applied > 20000, "pings applied: %d" % applied)
    check(0 <= bad <= MAX_IMPLAUSIBLE * applied,
          "implausible pings %d of %d applied" % (bad, applied))


def check_nyc_trips(conn):
    """NYC cabs' finished trips: real top speeds, although time ran 60x."""
    finished = []
    for k in range(800):
        trips = call(conn, "TRIP.LIST", "nyc-%06d" % k)
        finished += [pairs(t) for t in trips if pairs(t).get("state") == "ended"]
        if len(finished) >= 5:
            break
    if not check(finished, "some NYC cab finished a trip"):
        return
    for t in finished:
        check(float(t["max_speed_kmh"]) < 150, "real top speed: %r" % t)
        check(float(t["distance_m"]) >= 0 and int(t["pings"]) >= 1, "a fed trip: %r" % t)


def check_sigterm(srv):
    cmd = [REPLAY, "--port", str(srv.port), "--data", DATA, "--vehicles", "200",
           "--speed", "60"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    check(p.returncode == 0, "SIGTERM: exit code %d (%s)" % (p.returncode, err[-300:]))
    check(summary(out).get("vehicles") == 200, "SIGTERM: a summary line: %r" % out[-300:])


def check_once(srv, conn):
    check(call(conn, "FLUSHALL") == "OK", "FLUSHALL")
    p = replay(srv.port, "--vehicles", 500, "--once")
    check(p.returncode == 0, "--once: exit code %d (%s)" % (p.returncode, p.stderr[-300:]))
    total = pairs(call(conn, "VEHICLE.COUNT")).get("total")
    check(total == 500, "--once 500 leaves exactly 500 vehicles, got %r" % total)


def main():
    if not os.path.isdir(DATA):
        print("replay: skipped: %s is absent (the real data the replay reads)" % DATA)
        return 0
    if not check(os.access(REPLAY, os.X_OK), "%s exists (make all builds it)" % REPLAY):
        return res.finish()
    srv = fleetlib.start_fleetd()
    try:
        check_run(srv)
        conn = Conn(srv.port)
        check_fleet(conn)
        check_nyc_trips(conn)
        check_sigterm(srv)
        check_once(srv, conn)
        conn.close()
    finally:
        srv.stop()
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())

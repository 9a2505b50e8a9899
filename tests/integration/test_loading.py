"""test_loading.py - a large store loads with the listeners up.

A store of at least load-async-bytes (here forced with --load-async-bytes
1) is loaded on a worker thread while both listeners answer, as Redis
answers while it loads. The load is slowed by build/tests/libfailio.so
(FAILIO_SLOW_READ_MS: every read of a store file sleeps first), so the
test sees it in progress. What a client must see:

1. During the load: RESP PING and data commands answer -LOADING, INFO
   shows loading:1, HELLO and CLIENT ID work; HTTP /healthz 200, /readyz
   503, /v1 routes 503 problem+json, /metrics 200. With requirepass, an
   unauthenticated client gets NOAUTH first, as in Redis.
2. After it: PING answers PONG, every member and vehicle written before
   the restart (snapshot and log) is there, /readyz 200.
3. SIGTERM during a load stops the server promptly and cleanly; the next
   start has every record.
4. A store damaged in the middle of its log makes an asynchronous load
   fail as a synchronous one does: the reason on stderr, exit code 1.

Prints "loading: N passed, N failed".
"""
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True     # no __pycache__ in the tree
import fleetlib                     # noqa: E402
from fleetlib import Conn           # noqa: E402

res = fleetlib.Results("loading")
SHIM = os.path.join(fleetlib.ROOT, "build", "tests", "libfailio.so")
MEMBERS = 60000
VEHICLES = 2000


def check(cond, what):
    res.check(bool(cond), what)
    return bool(cond)


def http_get(srv, path):
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    out = (r.status, r.getheader("Content-Type"), r.read())
    c.close()
    return out


def slow_env(ms):
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": SHIM, "FAILIO_SLOW_READ_MS": str(ms),
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


def fill(tmp):
    """A store with a snapshot and a log after it."""
    srv = fleetlib.start_fleetd(tmp=tmp)
    c = Conn(srv.port)
    half = MEMBERS // 2
    cmds = [fleetlib.encode(["GEOADD", "pts", "%.6f" % (13.0 + i * 1e-5), "52.5", "m%d" % i])
            for i in range(half)]
    cmds += [fleetlib.encode(["VEHICLE.UPDATE", "v%d" % i, "13.4", "52.5"])
             for i in range(VEHICLES)]
    c.send_raw(b"".join(cmds))
    for _ in cmds:
        c.read_reply()
    r = c.call("BGSAVE")
    check(r.startswith(b"+"), "BGSAVE: %r" % r)
    deadline = time.time() + 30
    while time.time() < deadline and b"rdb_bgsave_in_progress:1" in c.call("INFO", "persistence"):
        time.sleep(0.1)
    cmds = [fleetlib.encode(["GEOADD", "pts", "%.6f" % (13.0 + i * 1e-5), "52.6", "m%d" % i])
            for i in range(half, MEMBERS)]
    c.send_raw(b"".join(cmds))
    for _ in cmds:
        c.read_reply()
    c.close()
    check(fleetlib.stop_process(srv.proc) == 0, "the filling server stops cleanly")


def start_slow(tmp, ms, *extra):
    return fleetlib.start_fleetd("--load-async-bytes", "1", *extra, env=slow_env(ms), tmp=tmp)


def test_served_while_loading(tmp):
    srv = start_slow(tmp, 400)
    c = Conn(srv.port)
    r = c.call("PING")
    check(r.startswith(b"-LOADING"), "PING while loading: %r" % r)
    r = c.call("GEOADD", "pts", "13", "52", "late")
    check(r.startswith(b"-LOADING"), "GEOADD while loading: %r" % r)
    r = c.call("ZCARD", "pts")
    check(r.startswith(b"-LOADING"), "ZCARD while loading: %r" % r)
    info = c.call("INFO")
    check(b"loading:1" in info, "INFO while loading shows loading:1: %r" % info[:120])
    r = c.call("CLIENT", "ID")
    check(r.startswith(b":"), "CLIENT ID while loading: %r" % r)
    r = c.call("HELLO", "3")
    check(r.startswith(b"%"), "HELLO 3 while loading: %r" % r[:40])
    st, _, _ = http_get(srv, "/healthz")
    check(st == 200, "/healthz while loading: %d" % st)
    st, _, body = http_get(srv, "/readyz")
    check(st == 503 and b"loading" in body, "/readyz while loading: %d %r" % (st, body[:120]))
    st, ctype, body = http_get(srv, "/v1/vehicles?limit=1")
    check(st == 503 and ctype == "application/problem+json" and b"loading" in body,
          "/v1/vehicles while loading: %d %s %r" % (st, ctype, body[:120]))
    st, _, _ = http_get(srv, "/metrics")
    check(st == 200, "/metrics while loading: %d" % st)
    c.close()
    c = Conn(srv.port)
    deadline, r = time.time() + 60, b""
    while time.time() < deadline:
        r = c.call("PING")
        if not r.startswith(b"-LOADING"):
            break
        time.sleep(0.05)
    check(r == b"+PONG\r\n", "PING after the load: %r" % r)
    got = c.call("ZCARD", "pts")
    check(got == b":%d\r\n" % MEMBERS, "every member is there after the load: %r" % got)
    got = c.call("VEHICLE.COUNT")
    check(str(VEHICLES).encode() in got, "every vehicle is there: %r" % got)
    check(b"loading:0" in c.call("INFO", "persistence"), "INFO after the load: loading:0")
    st, _, _ = http_get(srv, "/readyz")
    check(st == 200, "/readyz after the load: %d" % st)
    st, _, _ = http_get(srv, "/v1/vehicles?limit=1")
    check(st == 200, "/v1/vehicles after the load: %d" % st)
    r = c.call("GEOADD", "pts", "13", "52", "after")
    check(r == b":1\r\n", "writes after the load: %r" % r)
    c.close()
    check(fleetlib.stop_process(srv.proc) == 0, "stops cleanly after an async load")


def test_auth_while_loading(tmp):
    """With requirepass, authentication comes first, as in Redis."""
    srv = start_slow(tmp, 400, "--requirepass", "s3cret")
    c = Conn(srv.port)
    r = c.call("PING")
    check(r.startswith(b"-NOAUTH"), "unauthenticated PING while loading: %r" % r)
    r = c.call("INFO")
    check(r.startswith(b"-NOAUTH"), "unauthenticated INFO while loading: %r" % r)
    r = c.call("AUTH", "s3cret")
    check(r == b"+OK\r\n", "AUTH while loading: %r" % r)
    r = c.call("PING")
    check(r.startswith(b"-LOADING"), "authenticated PING while loading: %r" % r)
    c.close()
    check(fleetlib.stop_process(srv.proc) == 0, "requirepass: stops cleanly mid-load")


def test_stop_while_loading(tmp):
    srv = start_slow(tmp, 1000)
    c = Conn(srv.port)
    check(c.call("PING").startswith(b"-LOADING"), "loading (before the stop)")
    c.close()
    t0 = time.time()
    rc = fleetlib.stop_process(srv.proc, signal.SIGTERM, 15)
    took = time.time() - t0
    check(rc == 0 and took < 5, "SIGTERM during a load: exit %s in %.1f s" % (rc, took))
    srv = fleetlib.start_fleetd(tmp=tmp)
    c = Conn(srv.port)
    got = c.call("ZCARD", "pts")
    check(got == b":%d\r\n" % (MEMBERS + 1), "nothing lost by the stopped load: %r" % got)
    c.close()
    fleetlib.stop_process(srv.proc)


def test_damaged_async(tmp):
    data = os.path.join(tmp, "data")
    logs = sorted(f for f in os.listdir(data) if f.startswith("log."))
    path = os.path.join(data, logs[-1])
    size = os.path.getsize(path)
    with open(path, "r+b") as f:      # damage in the middle, good records after
        f.seek(size // 3)
        f.write(b"\xff" * 64)
    port, http_port = fleetlib.free_port(), fleetlib.free_port()
    proc = subprocess.run([fleetlib.FLEETD, "--port", str(port), "--http-port", str(http_port),
                           "--dir", data, "--load-async-bytes", "1"],
                          capture_output=True, text=True, timeout=60)
    check(proc.returncode == 1 and "damaged" in proc.stderr,
          "a damaged store fails an async load: exit %s, %r" % (proc.returncode,
                                                                proc.stderr[-300:]))


def main():
    if not os.path.exists(SHIM):
        print("loading: %s is not built (make unit); skipped" % SHIM)
        return 1
    tmp = tempfile.mkdtemp(prefix="fleetd-loading-")
    try:
        fill(tmp)
        test_served_while_loading(tmp)
        test_auth_while_loading(tmp)
        test_stop_while_loading(tmp)
        test_damaged_async(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())

"""test_log_failure.py - the disk fails under a running fleetd.

build/tests/libfailio.so (tests/integration/failio.c) is preloaded into
fleetd: once the test creates its trigger file, fdatasync and fsync fail
with EIO, as on a disk going bad. What a client must see then:

1. --fsync always: a write whose record cannot be synced gets no reply
   that claims it was done; its connection is closed instead.
2. From then on writes are refused: RESP -MISCONF, HTTP 503 problem+json.
   Reads still answer. INFO persistence says aof_last_write_status:err,
   /metrics counts the error, /readyz answers 503 while /healthz stays
   200, and SIGTERM still stops the server within its time.
3. --fsync everysec: the failure is found by the background sync within
   about a second, and writes are refused from then on.
4. A full disk (write() of a log segment fails with ENOSPC): the write
   whose record could not be written gets no reply, and then as in 2.
   Over HTTP, the write whose sync fails is answered 503, and HTTP reads
   after it are answered as usual.
5. Restarted on the same directory with a good disk, every write
   acknowledged before the failure is there.

Prints "log_failure: N passed, N failed".
"""
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True     # no __pycache__ in the tree
import fleetlib                     # noqa: E402
from fleetlib import Conn           # noqa: E402

res = fleetlib.Results("log_failure")
SHIM = os.path.join(fleetlib.ROOT, "build", "tests", "libfailio.so")


def check(cond, what):
    res.check(bool(cond), what)
    return bool(cond)


def http_call(srv, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    c.request(method, path, body=body,
              headers={"Content-Type": "application/json"} if body else {})
    r = c.getresponse()
    out = (r.status, r.getheader("Content-Type"), r.read())
    c.close()
    return out


def read_until_closed(c, timeout):
    """Everything c receives until the server closes it: (bytes, closed)."""
    c.sock.settimeout(timeout)
    got = c.buf
    try:
        while True:
            b = c.sock.recv(65536)
            if not b:
                return got, True
            got += b
    except (ConnectionResetError, BrokenPipeError):
        return got, True
    except OSError:
        return got, False


def start(tmp, fsync):
    trigger = os.path.join(tmp, "disk-fails")
    full = os.path.join(tmp, "disk-full")
    # The shim is not sanitized: a sanitized fleetd must accept it loaded
    # before its runtime.
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"LD_PRELOAD": SHIM, "FAILIO_TRIGGER": trigger, "FAILIO_FULL": full,
           "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}
    return fleetlib.start_fleetd("--fsync", fsync, env=env, tmp=tmp), trigger, full


def refused_everywhere(srv, tag):
    c = Conn(srv.port)
    r = c.call("GEOADD", "fleet", "13.4", "52.5", "after-" + tag)
    check(r.startswith(b"-MISCONF"), "%s: GEOADD after the failure: %r" % (tag, r[:80]))
    r = c.call("SET", "k", "v")
    check(r.startswith(b"-MISCONF"), "%s: SET after the failure: %r" % (tag, r[:80]))
    r = c.call("GEOPOS", "fleet", "before-0")
    check(r.startswith(b"*1\r\n*2\r\n"), "%s: reads still answer: %r" % (tag, r[:80]))
    info = c.call("INFO", "persistence")
    check(b"aof_last_write_status:err" in info, "%s: INFO says the log failed" % tag)
    c.close()
    st, ctype, body = http_call(srv, "PUT", "/v1/vehicles/http-" + tag + "/position",
                           json.dumps({"lon": 13.4, "lat": 52.5}))
    check(st == 503 and ctype == "application/problem+json",
          "%s: HTTP write after the failure: %d %s %r" % (tag, st, ctype, body[:120]))
    st, _, body = http_call(srv, "GET", "/readyz")
    check(st == 503 and b"write-ahead log" in body, "%s: /readyz %d %r" % (tag, st, body[:120]))
    st, _, _ = http_call(srv, "GET", "/healthz")
    check(st == 200, "%s: /healthz stays 200 (%d)" % (tag, st))
    # /metrics shows gauges published every 100 ms
    deadline, errs = time.time() + 3, []
    while time.time() < deadline:
        st, _, body = http_call(srv, "GET", "/metrics")
        errs = [ln for ln in body.decode().splitlines()
                if ln.startswith("fleetd_log_errors_total ")]
        if errs and float(errs[0].split()[1]) >= 1:
            break
        time.sleep(0.05)
    check(errs and float(errs[0].split()[1]) >= 1, "%s: /metrics counts it: %r" % (tag, errs))


def acknowledged_then_fail(srv, n, fault, tag):
    """n acknowledged GEOADDs, then the fault (a file created), then one
    more write: it must get no reply, only a closed connection."""
    c = Conn(srv.port)
    for i in range(n):
        r = c.call("GEOADD", "fleet", "13.4", "52.5", "before-%d" % i)
        check(r == b":1\r\n", "%s: GEOADD before the failure: %r" % (tag, r))
    open(fault, "w").close()
    c.send_raw(fleetlib.encode(["GEOADD", "fleet", "13.5", "52.5", "during"]))
    got, closed = read_until_closed(c, 5.0)
    check(closed and got == b"",
          "%s: a write whose record cannot be made durable gets no reply, its "
          "connection is closed (closed %s, got %r)" % (tag, closed, got[:40]))


def stop_and_restart(srv, tmp, fault, fsync, n, tag):
    """SIGTERM ends the failed server in time; restarted on the same
    directory with a good disk, the n acknowledged writes are there (the
    unacknowledged one may be) and writes are taken again."""
    t0 = time.time()
    rc = fleetlib.stop_process(srv.proc, signal.SIGTERM, 15)
    check(time.time() - t0 < 10 and rc is not None and rc >= 0,
          "%s: SIGTERM stops a server whose log failed (%s in %.1f s)"
          % (tag, rc, time.time() - t0))
    os.unlink(fault)
    restarted = fleetlib.start_fleetd("--fsync", fsync, tmp=tmp)
    c = Conn(restarted.port)
    got = c.call("ZCARD", "fleet")
    check(got in (b":%d\r\n" % n, b":%d\r\n" % (n + 1)),
          "%s, restarted: the %d acknowledged writes are there (ZCARD %r)" % (tag, n, got))
    r = c.call("GEOADD", "fleet", "13.4", "52.6", "after-restart")
    check(r == b":1\r\n", "%s, restarted on a good disk: writes are taken again: %r"
          % (tag, r))
    c.close()
    restarted.stop()     # removes tmp


def fail_and_recover(fsync, n, fault, tag):
    """n acknowledged writes, the fault ("sync": fdatasync fails, "full":
    log writes fail), the refusals, then a restart on a good disk."""
    tmp = tempfile.mkdtemp(prefix="fleetd-failio-")
    srv, trigger, full = start(tmp, fsync)
    path = trigger if fault == "sync" else full
    acknowledged_then_fail(srv, n, path, tag)
    refused_everywhere(srv, tag)
    stop_and_restart(srv, tmp, path, fsync, n, tag)


def test_always():
    fail_and_recover("always", 50, "sync", "always")


def test_everysec():
    tmp = tempfile.mkdtemp(prefix="fleetd-failio-")
    srv, trigger, _ = start(tmp, "everysec")
    c = Conn(srv.port)
    r = c.call("GEOADD", "fleet", "13.4", "52.5", "before-0")
    check(r == b":1\r\n", "everysec: GEOADD before the failure: %r" % r)
    open(trigger, "w").close()
    deadline, refused = time.time() + 5, False
    while time.time() < deadline and not refused:
        r = c.call("GEOADD", "fleet", "13.4", "52.5", "probe")
        refused = r.startswith(b"-MISCONF")
        time.sleep(0.05)
    check(refused, "everysec: writes refused within 5 s of the failure")
    c.close()
    if refused:
        refused_everywhere(srv, "everysec")
    fleetlib.stop_process(srv.proc, signal.SIGTERM, 15)
    shutil.rmtree(tmp, ignore_errors=True)


def test_full_disk():
    fail_and_recover("everysec", 10, "full", "full")


def test_http_write_fails():
    """The failing write comes over HTTP: it is answered 503 (applied, not
    durable), and HTTP reads after it are still answered."""
    tmp = tempfile.mkdtemp(prefix="fleetd-failio-")
    srv, trigger, _ = start(tmp, "always")
    st, _, body = http_call(srv, "PUT", "/v1/vehicles/v1/position",
                            json.dumps({"lon": 13.4, "lat": 52.5}))
    check(st == 200, "http: PUT before the failure: %d %r" % (st, body[:100]))
    open(trigger, "w").close()
    st, ctype, body = http_call(srv, "PUT", "/v1/vehicles/v2/position",
                                json.dumps({"lon": 13.5, "lat": 52.5}))
    check(st == 503 and ctype == "application/problem+json" and b"not durable" in body,
          "http: the PUT whose sync fails: %d %s %r" % (st, ctype, body[:160]))
    for vid in ("v1", "v2"):
        st, _, body = http_call(srv, "GET", "/v1/vehicles/" + vid)
        check(st == 200, "http: GET %s after the failure is answered: %d %r"
              % (vid, st, body[:160]))
    st, _, body = http_call(srv, "GET", "/v1/vehicles?limit=10")
    check(st == 200, "http: a list after the failure is answered: %d %r" % (st, body[:160]))
    # the next write is refused, not "applied but not durable"
    st, _, body = http_call(srv, "PUT", "/v1/vehicles/v3/position",
                            json.dumps({"lon": 13.6, "lat": 52.5}))
    check(st == 503 and b"MISCONF" in body and b"applied" not in body,
          "http: a write after the failure is refused: %d %r" % (st, body[:200]))
    st, _, _ = http_call(srv, "GET", "/v1/vehicles/v3")
    check(st == 404, "http: the refused write changed nothing (GET v3: %d)" % st)
    fleetlib.stop_process(srv.proc, signal.SIGTERM, 15)
    shutil.rmtree(tmp, ignore_errors=True)


def main():
    if not os.path.exists(SHIM):
        print("log_failure: %s is not built (make unit); skipped" % SHIM)
        return 1
    test_always()
    test_everysec()
    test_full_disk()
    test_http_write_fails()
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())

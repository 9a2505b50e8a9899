"""fleetlib.py - shared helpers for the integration tests.

Starts real servers (fleetd, redis-server) on free loopback ports and speaks
raw RESP to them over sockets, so replies can be compared byte for byte.
Every server started here is stopped when the test process exits.
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FLEETD = os.environ.get("FLEETD_BIN", os.path.join(ROOT, "build", "fleetd"))
_procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d never opened" % port)


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Signals proc, waits up to timeout seconds, then kills it; returns its
    exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Server:
    def __init__(self, proc, port, http_port=None, tmpdir=None):
        self.proc, self.port, self.http_port, self.tmpdir = proc, port, http_port, tmpdir

    def stop(self, sig=signal.SIGTERM, timeout=10):
        stop_process(self.proc, sig, timeout)
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        return self.proc.returncode

    def alive(self):
        return self.proc.poll() is None


def start_fleetd(*extra, env=None, tmp=None):
    """Starts fleetd on free ports with its data in tmp/data (tmp: a new
    temporary directory unless given, to restart on the same data); env
    is added to the environment."""
    port, http = free_port(), free_port()
    tmp = tmp or tempfile.mkdtemp(prefix="fleetd-test-")
    log = open(os.path.join(tmp, "fleetd.log"), "a")
    proc = subprocess.Popen([FLEETD, "--port", str(port), "--http-port", str(http),
                             "--dir", os.path.join(tmp, "data")] + list(extra),
                            stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, **(env or {})))
    _procs.append(proc)
    wait_port(port, proc)
    return Server(proc, port, http, tmp)


def start_redis():
    exe = shutil.which("redis-server")
    if not exe:
        return None
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="redis-ref-")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", tmp],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _procs.append(proc)
    wait_port(port, proc)
    return Server(proc, port, None, tmp)


@atexit.register
def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    """A raw RESP connection that returns each reply as its exact bytes."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def _line(self, pos):
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i >= 0:
                return i
            self._fill()

    def _end_of(self, pos):
        """Returns the offset just past the reply starting at pos."""
        end = self._line(pos)
        t = self.buf[pos:pos + 1]
        head = self.buf[pos + 1:end]
        nxt = end + 2
        if t in b"+-:_,#(":
            return nxt
        if t in b"$=!":
            n = int(head)
            if n < 0:
                return nxt
            while len(self.buf) < nxt + n + 2:
                self._fill()
            return nxt + n + 2
        if t in b"*~>%|":
            n = int(head)
            if t in b"%|":
                n *= 2
            for _ in range(max(n, 0)):
                nxt = self._end_of(nxt)
            return nxt
        raise ValueError("bad reply type %r in %r" % (t, self.buf[pos:pos + 64]))

    def read_reply(self):
        if not self.buf:
            self._fill()
        end = self._end_of(0)
        r, self.buf = self.buf[:end], self.buf[end:]
        return r

    def call(self, *args):
        self.send_raw(encode(args))
        return self.read_reply()

    def closed_by_peer(self, timeout=3.0):
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


class Results:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL %s: %s" % (self.name, what), flush=True)

    def finish(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed))
        return 0 if self.failed == 0 else 1


# ---- shared by the fleet and HTTP tests: geohash cells, boxes, polylines, RESP replies ----

B32 = "0123456789bcdefghjkmnpqrstuvwxyz"


def geohash(lon, lat, prec):
    rng = [[-180.0, 180.0], [-90.0, 90.0]]
    val = (lon, lat)
    out, ch = [], 0
    for i in range(prec * 5):
        r = rng[i % 2]
        mid = (r[0] + r[1]) / 2
        if val[i % 2] >= mid:
            ch = ch * 2 + 1
            r[0] = mid
        else:
            ch = ch * 2
            r[1] = mid
        if i % 5 == 4:
            out.append(B32[ch])
            ch = 0
    return "".join(out)


def cell_bounds(gh):
    rng = [[-180.0, 180.0], [-90.0, 90.0]]
    i = 0
    for c in gh:
        n = B32.index(c)
        for k in range(4, -1, -1):
            r = rng[i % 2]
            mid = (r[0] + r[1]) / 2
            if (n >> k) & 1:
                r[0] = mid
            else:
                r[1] = mid
            i += 1
    return rng[0][0], rng[1][0], rng[0][1], rng[1][1]


def box_meets(box, b):
    """Does the query box (minlon > maxlon: across 180) touch cell bounds b?"""
    if b[1] > box[3] or b[3] < box[1]:
        return False
    if box[0] <= box[2]:
        return not (b[0] > box[2] or b[2] < box[0])
    return b[2] >= box[0] or b[0] <= box[2]


def in_box(box, lon, lat):
    if not (box[1] <= lat <= box[3]):
        return False
    if box[0] <= box[2]:
        return box[0] <= lon <= box[2]
    return lon >= box[0] or lon <= box[2]


def decode_polyline(s):
    pts, i, lat, lon = [], 0, 0, 0
    while i < len(s):
        vals = []
        for _ in range(2):
            shift = acc = 0
            while True:
                b = ord(s[i]) - 63
                i += 1
                acc |= (b & 0x1F) << shift
                shift += 5
                if b < 0x20:
                    break
            vals.append(~(acc >> 1) if acc & 1 else acc >> 1)
        lat += vals[0]
        lon += vals[1]
        pts.append((lon / 1e5, lat / 1e5))
    return pts


class RespError(str):
    pass


def parse_reply(b, pos):
    end = b.index(b"\r\n", pos)
    t, head, nxt = b[pos:pos + 1], b[pos + 1:end], end + 2
    if t == b"+":
        return head.decode(), nxt
    if t == b"-":
        return RespError(head.decode()), nxt
    if t == b":":
        return int(head), nxt
    if t == b",":
        return float(head), nxt
    if t == b"_":
        return None, nxt
    if t in (b"$", b"="):
        n = int(head)
        if n < 0:
            return None, nxt
        return b[nxt:nxt + n].decode("utf-8", "surrogateescape"), nxt + n + 2
    if t in (b"*", b"%", b"~"):
        n = int(head)
        if n < 0:
            return None, nxt
        if t == b"%":
            n *= 2
        out = []
        for _ in range(n):
            v, nxt = parse_reply(b, nxt)
            out.append(v)
        return out, nxt
    raise ValueError("bad reply %r" % b[pos:pos + 40])

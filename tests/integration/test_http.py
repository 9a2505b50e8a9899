"""test_http.py - the HTTP API v1 (docs/api.md) against a running fleetd.

Real clients: http.client on keep-alive connections for the API, raw
sockets for the abuse cases and the event streams, RESP (fleetlib) for the
cross-protocol checks. Positions come from ../shared/data (NYC taxi pickups
and drop-offs, AIS vessel positions in New York harbour) and a real NYC
taxi zone polygon is used for POST /v1/vehicles/within; without the data
the positions are seeded random points around New York and the zone part
is skipped.

1. Health, readiness, metrics, the OpenAPI document, the dashboard root,
   404 and 405 answers, HEAD.
2. PUT /v1/vehicles/{id}/position: outcomes (applied, stale, implausible,
   relocated), every optional field, the same vehicle over RESP, every kind
   of bad input (400 problem documents, nothing changed), 415, the 1 MiB
   body limit (exact limit accepted, over it 413, declared and chunked).
3. GET /v1/vehicles: filters, bbox, cursor paging (every vehicle exactly
   once), compact rows; DELETE.
4. Searches: nearby against a brute-force haversine (the GEO radius
   6372797.560856 m), within boxes (one across the antimeridian), within a
   real taxi zone and a square with a hole against an even-odd test.
5. Trips: start, conflicts, moves, polyline and GeoJSON path, end, list
   filters.
6. POST /v1/positions: 10,000 lines in one request, per-line errors, the
   32 MiB limit, command counts in /metrics.
7. /v1/areas against geohash counts computed here; demand by trip starts.
8. Server-Sent Events: the per-client move sampler, trip events, stats
   once a second, a bbox filter, moves made over RESP.
9. Abuse: half-sent requests, a slow client, 300 idle keep-alive
   connections, garbage, a 100 KB header, pipelining.
10. Durability (--fsync always, SIGKILL, restart) and --requirepass.

Plain python3; prints "http: N passed, N failed" and exits 1 on failure.
HTTP_TEST_SEED fixes the random choices (the seed is printed).
"""
import csv
import http.client
import json
import math
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True     # no __pycache__ in the tree
import fleetlib                     # noqa: E402
from fleetlib import (B32, RespError, box_meets, cell_bounds,  # noqa: E402
                      decode_polyline, geohash, in_box)
from fleetlib import parse_reply as _parse  # noqa: E402

res = fleetlib.Results("http")
DATA = os.environ.get("FLEET_DATA",
                      os.path.normpath(os.path.join(fleetlib.ROOT, "..", "shared", "data")))
SEED = int(os.environ.get("HTTP_TEST_SEED", str(int(time.time()) % 100000)))
WORK = tempfile.mkdtemp(prefix="fleetd-http-")
R_GEO = 6372797.560856     # GEO commands' radius (GEORADIUS and friends)
R_TRIP = 6371008.8         # mean radius: trip distance and VEHICLE.NEARBY
JSON_LIMIT = 1 << 20
NDJSON_LIMIT = 32 << 20
CT_JSON = "application/json"
CT_PROBLEM = "application/problem+json"
CT_GEO = "application/geo+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
          415: "Unsupported Media Type", 503: "Service Unavailable"}
STATUSES = ("available", "busy", "offline")
FLEETS = ("yellow", "green", "fhv", None)
VEHICLE_KEYS = {"id", "lon", "lat", "ts", "speed", "heading", "fleet", "status",
                "trip", "flagged"}
TRIP_KEYS = {"id", "vehicle", "state", "start", "end", "last", "duration_ms",
             "distance_m", "idle_ms", "max_speed", "pings", "flagged", "points",
             "truncated"}


def check(cond, what):
    res.check(bool(cond), what)
    return bool(cond)


def now_ms():
    return int(time.time() * 1000)


def short(b, n=300):
    if not isinstance(b, (bytes, str)):
        return "<streamed body>"
    if isinstance(b, bytes):
        b = b.decode("utf-8", "replace")
    return b if len(b) <= n else b[:n] + "...(%d bytes)" % len(b)


# ---- geometry computed here ----

def fleet_dist(lon1, lat1, lon2, lat2):
    """fl_fleet_distance_m: the haversine on the mean Earth radius, which
    VEHICLE.NEARBY and /v1/vehicles/nearby measure with (not the GEO
    radius: see test_fleet.py)."""
    rad = math.pi / 180.0
    s1 = math.sin((lat2 - lat1) * rad / 2)
    s2 = math.sin((lon2 - lon1) * rad / 2)
    a = s1 * s1 + math.cos(lat1 * rad) * math.cos(lat2 * rad) * s2 * s2
    return 2 * R_TRIP * math.asin(math.sqrt(min(a, 1.0)))


def hav(lon1, lat1, lon2, lat2, r=R_GEO):
    """Redis' haversine (with its same-meridian shortcut)."""
    lon1r, lon2r = math.radians(lon1), math.radians(lon2)
    v = math.sin((lon2r - lon1r) / 2)
    if v == 0.0:
        return r * abs(math.radians(lat2) - math.radians(lat1))
    lat1r, lat2r = math.radians(lat1), math.radians(lat2)
    u = math.sin((lat2r - lat1r) / 2)
    a = u * u + math.cos(lat1r) * math.cos(lat2r) * v * v
    return 2.0 * r * math.asin(math.sqrt(a))


def rings_of(geom):
    """Every ring of a Polygon / MultiPolygon / Feature / FeatureCollection."""
    t = geom.get("type")
    if t == "Feature":
        return rings_of(geom["geometry"])
    if t == "FeatureCollection":
        return [r for f in geom["features"] for r in rings_of(f)]
    if t == "Polygon":
        return list(geom["coordinates"])
    if t == "MultiPolygon":
        return [r for poly in geom["coordinates"] for r in poly]
    raise ValueError(t)


def even_odd(rings, x, y):
    inside = False
    for ring in rings:
        j = len(ring) - 1
        for i in range(len(ring)):
            xi, yi = ring[i][0], ring[i][1]
            xj, yj = ring[j][0], ring[j][1]
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                inside = not inside
            j = i
    return inside


def edge_dist(rings, x, y):
    """Distance in degrees from (x, y) to the nearest ring edge."""
    best = float("inf")
    for ring in rings:
        for i in range(len(ring) - 1):
            ax, ay = ring[i][0], ring[i][1]
            bx, by = ring[i + 1][0], ring[i + 1][1]
            dx, dy = bx - ax, by - ay
            L = dx * dx + dy * dy
            t = 0.0 if L == 0 else max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / L))
            best = min(best, math.hypot(x - (ax + t * dx), y - (ay + t * dy)))
    return best


def geom_bbox(rings):
    xs = [p[0] for r in rings for p in r]
    ys = [p[1] for r in rings for p in r]
    return min(xs), min(ys), max(xs), max(ys)


def offset(lon, lat, east_m, north_m):
    dlat = north_m / (R_TRIP * math.pi / 180)
    dlon = east_m / (R_TRIP * math.pi / 180 * math.cos(math.radians(lat)))
    return lon + dlon, lat + dlat


# ---- RESP ----

class Resp:
    def __init__(self, port, password=None):
        self.conn = fleetlib.Conn(port, timeout=30)
        if password:
            self("AUTH", password)

    def __call__(self, *args):
        return _parse(self.conn.call(*[str(a) for a in args]), 0)[0]

    def pipe(self, cmds):
        self.conn.send_raw(b"".join(fleetlib.encode([str(a) for a in c]) for c in cmds))
        return [_parse(self.conn.read_reply(), 0)[0] for _ in cmds]

    def close(self):
        self.conn.close()


def resp_vehicle(r, vid):
    g = r("VEHICLE.GET", vid)
    if not isinstance(g, list):
        return g
    m = {g[i]: g[i + 1] for i in range(0, len(g) - 1, 2)}
    for k in ("lon", "lat", "speed", "heading"):
        if m.get(k) is not None:
            m[k] = float(m[k])
    return m


# ---- HTTP through http.client ----

class Reply:
    def __init__(self, method, path, status, headers, body, reqbody=None):
        self.method, self.path, self.status = method, path, status
        self.headers, self.body, self.reqbody = headers, body, reqbody
        self.ctype = headers.get("content-type")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __str__(self):
        req = "%s %s" % (self.method, self.path)
        if self.reqbody is not None:
            req += " " + short(self.reqbody, 160)
        return "[%s -> %s %s %s]" % (req, self.status, self.ctype, short(self.body))


class Http:
    """One keep-alive connection; reconnects only when the server closed
    an idle connection (counted)."""
    reconnects = 0

    def __init__(self, port, token=None, timeout=60):
        self.port, self.token, self.timeout = port, token, timeout
        self.c = None

    def close(self):
        if self.c:
            self.c.close()
            self.c = None

    def sock(self):
        return self.c.sock if self.c else None

    def req(self, method, path, body=None, ctype=None, headers=None):
        h = {}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            ctype = ctype or CT_JSON
        if isinstance(body, str):
            body = body.encode()
        if ctype:
            h["Content-Type"] = ctype
        h.update(headers or {})
        for attempt in (0, 1):
            fresh = self.c is None
            if fresh:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.c.request(method, path, body=body, headers=h)
                r = self.c.getresponse()
                data = r.read()
                hd = {k.lower(): v for k, v in r.getheaders()}
                if r.will_close:
                    self.close()
                return Reply(method, path, r.status, hd, data, body)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt or fresh:
                    raise
                Http.reconnects += 1
        raise AssertionError("unreachable")

    def get(self, path, **kw):
        return self.req("GET", path, **kw)


def expect_json(r, status, what, ctype=CT_JSON):
    ok = check(r.status == status and r.ctype == ctype,
               "%s: want %d %s, got %s" % (what, status, ctype, r))
    j = r.json()
    if ok:
        check(j is not None, "%s: body is not JSON %s" % (what, r))
    return j if ok else None


def expect_problem(r, status, what, detail=None):
    j = r.json()
    ok = (r.status == status and r.ctype == CT_PROBLEM and isinstance(j, dict)
          and set(j) == {"type", "title", "status", "detail"}
          and j["type"] == "about:blank" and j["title"] == TITLES.get(status)
          and j["status"] == status and isinstance(j["detail"], str) and j["detail"])
    if ok and detail is not None:
        ok = re.search(detail, j["detail"]) is not None
    return check(ok, "%s: want a %d problem%s, got %s"
                 % (what, status, " with detail /%s/" % detail if detail else "", r))


# ---- raw sockets ----

class Raw:
    def __init__(self, port, timeout=10.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("closed")
        self.buf += d

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n\r\n")
        lines = self.buf[:i].decode("latin-1").split("\r\n")
        self.buf = self.buf[i + 4:]
        status = int(lines[0].split()[1])
        hd = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hd[k.strip().lower()] = v.strip()
        return status, hd

    def response(self, method="GET"):
        """(status, headers, body) of the next response."""
        status, hd = self.head()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return status, hd, b""
        if "content-length" in hd:
            n = int(hd["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
            return status, hd, body
        if hd.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                i = self.buf.index(b"\r\n")
                n = int(self.buf[:i].split(b";")[0], 16)
                while len(self.buf) < i + 2 + n + 2:
                    self._fill()
                body += self.buf[i + 2:i + 2 + n]
                self.buf = self.buf[i + 2 + n + 2:]
                if n == 0:
                    return status, hd, body
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        body, self.buf = self.buf, b""
        return status, hd, body

    def closed_by_peer(self, timeout=3.0):
        self.s.settimeout(timeout)
        try:
            while True:
                if not self.s.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def raw_request(method, path, body=b"", headers=(), version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, path, version), "Host: 127.0.0.1"]
    lines += ["%s: %s" % h for h in headers]
    if body or method in ("PUT", "POST"):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def healthy(port, what, within=1.0):
    """A fresh client gets /healthz promptly."""
    t0 = time.time()
    try:
        c = Http(port, timeout=5)
        r = c.get("/healthz")
        c.close()
        dt = time.time() - t0
        return check(r.status == 200 and r.json() == {"status": "ok"} and dt <= within,
                     "%s: /healthz afterwards %s in %.2f s" % (what, r, dt))
    except Exception as e:         # noqa: BLE001
        return check(False, "%s: /healthz afterwards raised %r" % (what, e))


# ---- the model: what the server should hold ----

class Veh:
    __slots__ = ("id", "lon", "lat", "ts", "status", "fleet")

    def __init__(self, vid, lon, lat, ts, status, fleet):
        self.id, self.lon, self.lat, self.ts = vid, lon, lat, ts
        self.status, self.fleet = status or "available", fleet


class Model:
    def __init__(self):
        self.v = {}
        self.starts = []        # (start ts, lon, lat) of every trip started

    def apply(self, vid, body):
        v = self.v.get(vid)
        if v is None:
            self.v[vid] = Veh(vid, body["lon"], body["lat"], body.get("ts"),
                              body.get("status"), body.get("fleet"))
            return
        v.lon, v.lat = body["lon"], body["lat"]
        v.ts = body.get("ts", v.ts)
        if body.get("status"):
            v.status = body["status"]
        if body.get("fleet"):
            v.fleet = body["fleet"]

    def where(self, pred=lambda v: True):
        return [v for v in self.v.values() if pred(v)]


def put(c, model, vid, body, what, want="applied"):
    """PUT a position; checks the outcome, updates the model."""
    r = c.req("PUT", "/v1/vehicles/%s/position" % urllib.parse.quote(vid, safe=""), body)
    j = expect_json(r, 200, what)
    got = j.get("outcome") if isinstance(j, dict) else None
    check(got == want, "%s: outcome %r, want %r %s" % (what, got, want, r))
    if got in ("applied", "relocated"):
        model.apply(vid, body)
    return j


def ndjson(lines):
    return "".join(json.dumps(l) + "\n" for l in lines)


# ---- data ----

def data_path(*p):
    return os.path.join(DATA, *p)


def load_positions(rnd, n):
    """n distinct real positions around New York (taxi pickups and
    drop-offs first, then AIS vessel positions), or seeded random ones."""
    pts, seen = [], set()

    def add(lon, lat):
        if -74.3 <= lon <= -73.6 and 40.45 <= lat <= 40.95:
            key = (round(lon, 6), round(lat, 6))
            if key not in seen:
                seen.add(key)
                pts.append((lon, lat))
    taxi = data_path("trips", "nyc_taxi_one_driver_2013-01.csv")
    ais = data_path("tracks", "ais_ny_harbor_2020-06-30_first_hour.csv")
    if os.path.exists(taxi) and os.path.exists(ais):
        with open(taxi) as f:
            for row in csv.reader(f):
                for i in (10, 12):
                    try:
                        add(float(row[i]), float(row[i + 1]))
                    except (ValueError, IndexError):
                        pass
        ntaxi = len(pts)
        with open(ais) as f:
            ais_pts = []
            for row in csv.DictReader(f):
                ais_pts.append((float(row["LON"]), float(row["LAT"])))
        rnd.shuffle(ais_pts)
        for p in ais_pts:
            if len(pts) >= n:
                break
            add(*p)
        print("http: %d positions: %d NYC taxi pickups/drop-offs, %d AIS vessel positions"
              % (min(n, len(pts)), ntaxi, min(n, len(pts)) - ntaxi))
    else:
        print("http: %s is missing: seeded random positions around New York instead" % DATA)
    while len(pts) < n:
        add(rnd.uniform(-74.05, -73.75), rnd.uniform(40.55, 40.90))
    rnd.shuffle(pts)
    return pts[:n]


def load_zones():
    p = data_path("regions", "nyc_taxi_zones.geojson")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        fc = json.load(f)
    return {f["properties"]["zone"]: f for f in fc["features"]}


# ================================================================ sections

def test_basics(c, srv):
    # the first request of all: live counters are live from the start
    j = expect_json(c.get("/v1/stats"), 200, "GET /v1/stats right after the start")
    check(j and abs((j.get("ts") or 0) - now_ms()) < 5000 and j.get("vehicles") == 0,
          "/v1/stats right after the start: ts is now, not unset: %r" % j)
    r = c.get("/healthz")
    check(expect_json(r, 200, "GET /healthz") == {"status": "ok"}, "/healthz body %s" % r)
    r = c.get("/readyz")
    check(expect_json(r, 200, "GET /readyz") == {"status": "ready"}, "/readyz body %s" % r)
    r = c.req("HEAD", "/healthz")
    check(r.status == 200 and r.ctype == CT_JSON and r.body == b""
          and r.headers.get("content-length") in (None, "15"),
          "HEAD /healthz: 200, the GET's headers, no body: %s %r" % (r, r.headers))
    r = c.get("/openapi.json")
    j = expect_json(r, 200, "GET /openapi.json")
    check(isinstance(j, dict) and re.match(r"^3\.1\.\d+$", str(j.get("openapi"))),
          "openapi.json: openapi 3.1.x, got %r" % (j or {}).get("openapi"))
    routes = subprocess.run([fleetlib.FLEETD, "--routes"], capture_output=True, text=True,
                            timeout=30).stdout.split("\n")
    missing = []
    for line in routes:
        if not line.strip():
            continue
        m, p = line.split()
        if not (isinstance(j, dict) and m.lower() in j.get("paths", {}).get(p, {})):
            missing.append(line)
    check(len(routes) > 10 and not missing,
          "every route of fleetd --routes is in /openapi.json: missing %r" % missing)
    # The dashboard: served when a web directory sits next to the binary
    # (or next to its parent, for build/san/fleetd).
    exe = os.path.realpath(fleetlib.FLEETD)
    web = [d for d in (os.path.join(os.path.dirname(exe), "web"),
                       os.path.join(os.path.dirname(os.path.dirname(exe)), "web"))
           if os.path.isdir(d)]
    r = c.get("/")
    if web and os.path.exists(os.path.join(web[0], "index.html")):
        check(r.status == 200 and (r.ctype or "").startswith("text/html") and b"<" in r.body,
              "GET / with %s present: 200 text/html, got %s" % (web[0], r))
    elif web:
        check(r.status in (200, 404), "GET / with %s present: %s" % (web[0], r))
    else:
        expect_problem(r, 404, "GET / without a dashboard build", "dashboard")
    for path in ("/v1/nope", "/v1/vehicles/a/b/c", "/v1", "/nope.txt", "/../etc/passwd",
                 "/%2e%2e/%2e%2e/etc/passwd", "/.hidden"):
        expect_problem(c.get(path), 404, "GET %s" % path)
    # problem details quote what they were given as valid JSON
    for path, want in (("/v1/nope%22%5c%0a%01", 'no route for GET /v1/nope"\\\n\x01'),
                       ("/v1/vehicles/%ff%fe", "unknown vehicle '\ufffd\ufffd'")):
        r = c.get(path)
        expect_problem(r, 404, "GET %s" % path)
        check((r.json() or {}).get("detail") == want, "GET %s: detail %r, want %r"
              % (path, (r.json() or {}).get("detail"), want))
    for method, path, allow in (("POST", "/healthz", {"GET", "HEAD"}),
                                ("DELETE", "/v1/trips", {"GET", "HEAD", "POST"}),
                                ("PATCH", "/v1/vehicles/x", {"GET", "HEAD", "DELETE"}),
                                ("GET", "/v1/positions", {"POST"}),
                                ("GET", "/v1/vehicles/x/position", {"PUT"}),
                                ("PUT", "/v1/trips/t1/end", {"POST"}),
                                ("DELETE", "/metrics", {"GET", "HEAD"}),
                                ("OPTIONS", "/v1/vehicles", {"GET", "HEAD"}),
                                ("HEAD", "/v1/positions", {"POST"})):
        r = c.req(method, path)
        if method == "HEAD":
            check(r.status == 405 and r.body == b"", "HEAD %s: 405 %s" % (path, r))
        else:
            expect_problem(r, 405, "%s %s" % (method, path))
        got = {a.strip() for a in r.headers.get("allow", "").split(",") if a.strip()}
        check(got == allow, "%s %s: Allow %r, want %r" % (method, path, r.headers.get("allow"),
                                                          sorted(allow)))
    # methods that take no body take at most 1 KiB of one
    for method, path in (("DELETE", "/v1/vehicles/x"), ("GET", "/healthz")):
        k = Raw(srv.http)
        k.send(raw_request(method, path, b"x" * 2048))
        try:
            st, hd, b = k.response()
            r = Reply(method, path + " (2 KiB body)", st, hd, b)
        except (EOFError, OSError) as e:
            r = Reply(method, path + " (2 KiB body)", None, {}, repr(e))
        k.close()
        expect_problem(r, 413, "%s %s with a 2 KiB body" % (method, path))
    # keep-alive: many requests, one socket
    s0 = c.sock()
    for _ in range(50):
        c.get("/healthz")
    check(s0 is not None and c.sock() is s0, "50 requests reuse one keep-alive connection")


def load_fleet(c, model, rnd, ts0):
    """~2,650 vehicles: real NYC positions, points inside three taxi zones,
    a cluster around the antimeridian, 50 at one spot, a grid for the hole
    test. One NDJSON request."""
    lines = []
    for i, (lon, lat) in enumerate(load_positions(rnd, 2200)):
        lines.append({"id": "nyc-%04d" % i, "lon": lon, "lat": lat, "ts": ts0 + i,
                      "status": rnd.choice(STATUSES), "fleet": rnd.choice(FLEETS),
                      "speed": round(rnd.uniform(0, 80), 1), "heading": rnd.randrange(360)})
    zones = load_zones()
    if zones:
        k = 0
        for name in ("Midtown Center", "LaGuardia Airport", "JFK Airport"):
            bb = geom_bbox(rings_of(zones[name]))
            for _ in range(100):
                lines.append({"id": "zone-%03d" % k, "lon": rnd.uniform(bb[0], bb[2]),
                              "lat": rnd.uniform(bb[1], bb[3]), "ts": ts0,
                              "status": rnd.choice(STATUSES), "fleet": rnd.choice(FLEETS)})
                k += 1
    for i in range(20):
        # The first eight fall inside the test's antimeridian box
        # (179.5..-179.5, -18..-16), four on each side; the rest anywhere
        # around it, so the box's edges are exercised too.
        inside = i < 8
        lo = 179.5 if inside else 179.2
        lon = rnd.uniform(lo, 180.0) if i % 2 else rnd.uniform(-180.0, -lo)
        lat = rnd.uniform(-17.9, -16.1) if inside else rnd.uniform(-18.5, -16.0)
        lines.append({"id": "am-%02d" % i, "lon": lon, "lat": lat,
                      "ts": ts0, "status": rnd.choice(STATUSES)})
    for i in range(50):
        lines.append({"id": "same-%02d" % i, "lon": 2.3522, "lat": 48.8566, "ts": ts0,
                      "fleet": "paris"})
    # On the world's upper edges, where index keys are pulled inside: the
    # antimeridian box above holds the first; the edge boxes of test_list
    # hold all three.
    for vid, lon, lat in (("edge-180", 180.0, -17.0), ("edge-top", 10.0, 85.05112878),
                          ("edge-corner", 180.0, 85.05112878)):
        lines.append({"id": vid, "lon": lon, "lat": lat, "ts": ts0, "fleet": "edge"})
    for i in range(21):
        for j in range(21):
            lines.append({"id": "grid-%02d-%02d" % (i, j), "lon": 9.9 + 0.01 * i + 0.003,
                          "lat": 49.9 + 0.01 * j + 0.004, "ts": ts0, "fleet": "grid"})
    body = ndjson(lines)
    r = c.req("POST", "/v1/positions", body, ctype="application/x-ndjson")
    j = expect_json(r, 200, "POST /v1/positions (%d vehicles)" % len(lines))
    check(j == {"lines": len(lines), "applied": len(lines), "stale": 0, "implausible": 0,
                "relocated": 0, "failed": 0, "errors": []},
          "loading %d vehicles: %s" % (len(lines), r))
    for l in lines:
        model.apply(l["id"], l)
    return zones


def test_position(c, rc, model, port):
    t = now_ms() - 600000
    full = {"lon": -73.9812345678, "lat": 40.7512345678, "ts": t, "speed": 32.5,
            "heading": 90.25, "fleet": "yellow", "status": "busy"}
    j = put(c, model, "hx-1", full, "PUT every field")
    want = {"id": "hx-1", "lon": 0, "lat": 0, "ts": t, "speed": 32.5, "heading": 90.25,
            "fleet": "yellow", "status": "busy", "trip": None, "flagged": 0}
    v = (j or {}).get("vehicle") or {}
    check(set(v) == VEHICLE_KEYS and abs(v["lon"] - full["lon"]) <= 5e-8
          and abs(v["lat"] - full["lat"]) <= 5e-8
          and {k: v[k] for k in v if k not in ("lon", "lat")} ==
          {k: want[k] for k in want if k not in ("lon", "lat")},
          "PUT every field: vehicle %r, want %r" % (v, full))
    g = expect_json(c.get("/v1/vehicles/hx-1"), 200, "GET /v1/vehicles/hx-1")
    check(g == v, "GET equals the PUT's vehicle: %r vs %r" % (g, v))
    m = resp_vehicle(rc, "hx-1")
    check(isinstance(m, dict) and m.get("id") == "hx-1"
          and abs(m["lon"] - full["lon"]) < 1e-12 and abs(m["lat"] - full["lat"]) < 1e-12
          and abs(m["lon"] - v.get("lon", 1e9)) <= 5e-8 and m["ts"] == t
          and m["speed"] == 32.5 and m["heading"] == 90.25 and m["fleet"] == "yellow"
          and m["status"] == "busy" and m["trip"] is None and m["flagged"] == 0,
          "RESP VEHICLE.GET hx-1 = %r, HTTP %r" % (m, v))

    # stale: older and equal timestamps change nothing
    before = g
    for ts, what in ((t - 1000, "older"), (t, "equal")):
        j = put(c, model, "hx-1", {"lon": -73.99, "lat": 40.76, "ts": ts}, "PUT %s ts" % what,
                want="stale")
        check((j or {}).get("vehicle") == before, "stale PUT (%s ts) changed nothing: %r"
              % (what, (j or {}).get("vehicle")))
    # implausible twice, then the third far ping in a row is a relocation
    far = {"lon": -73.0, "lat": 40.75}
    for k, want in ((1, "implausible"), (2, "implausible"), (3, "relocated")):
        body = dict(far, ts=t + 1000 * k)
        j = put(c, model, "hx-1", body, "PUT %d km away in 1 s (#%d)" % (84, k), want=want)
        v = (j or {}).get("vehicle") or {}
        if want == "implausible":
            check(v.get("lon") == before["lon"] and v.get("ts") == before["ts"]
                  and v.get("flagged") == k,
                  "implausible #%d: position kept, flagged %d: %r" % (k, k, v))
        else:
            check(v.get("lon") == -73.0 and v.get("ts") == t + 3000 and v.get("flagged") == 3,
                  "relocated: vehicle moved, flagged 3: %r" % v)
    # optional fields omitted keep their values; null is omitted
    j = put(c, model, "hx-1", {"lon": -73.0001, "lat": 40.7501, "ts": t + 4000, "speed": None,
                               "heading": None, "fleet": None, "status": None},
            "PUT with null optional fields")
    v = (j or {}).get("vehicle") or {}
    check(v.get("speed") == 32.5 and v.get("heading") == 90.25 and v.get("fleet") == "yellow"
          and v.get("status") == "busy",
          "unreported speed/heading/fleet/status are kept: %r" % v)
    # without ts: the server's clock
    t0 = now_ms()
    j = put(c, model, "hx-2", {"lon": 13.4, "lat": 52.5}, "PUT without ts")
    model.v["hx-2"].ts = (j or {}).get("vehicle", {}).get("ts")
    t1 = now_ms()
    v = (j or {}).get("vehicle") or {}
    check(t0 - 5 <= (v.get("ts") or 0) <= t1 + 5 and v.get("speed") is None
          and v.get("heading") is None and v.get("fleet") is None
          and v.get("status") == "available" and v.get("trip") is None,
          "PUT without ts: the server's time, unknowns null, available: %r" % v)
    # charset parameter, Content-Type case
    put(c, model, "hx-2", {"lon": 13.40002, "lat": 52.5, "ts": t1 + 1}, "PUT 1 m further")
    r = c.req("PUT", "/v1/vehicles/hx-2/position", {"lon": 13.40004, "lat": 52.5, "ts": t1 + 2},
              ctype="application/json; charset=utf-8")
    check(r.status == 200 and (r.json() or {}).get("outcome") == "applied",
          "Content-Type with charset accepted: %s" % r)
    model.apply("hx-2", {"lon": 13.40004, "lat": 52.5})
    # ids are percent-decoded, the same over RESP
    for vid in ("a b", "taxi-\u00fc", "x:y=z"):
        put(c, model, vid, {"lon": 13.0, "lat": 52.0, "ts": t}, "PUT id %r" % vid)
        g = expect_json(c.get("/v1/vehicles/" + urllib.parse.quote(vid, safe="")), 200,
                        "GET id %r" % vid)
        m = resp_vehicle(rc, vid)
        check(g and g.get("id") == vid and isinstance(m, dict) and m.get("id") == vid,
              "id %r: HTTP %r, RESP %r" % (vid, g, m))

    # bad input: 400 problems, nothing changed, the connection kept
    snap = expect_json(c.get("/v1/vehicles/hx-1"), 200, "GET hx-1 before bad input")
    sock_before = c.sock()
    resp_before = resp_vehicle(rc, "hx-1")
    good = {"lon": -73.0002, "lat": 40.7502, "ts": t + 100000}
    bad = [
        (dict(good, lon="-73.0"), "lon must be a number"),
        (dict(good, lat=True), "lat must be a number"),
        ({"lat": 40.75, "ts": t + 100000}, "lon is required"),
        ({"lon": -73.0, "ts": t + 100000}, "lat is required"),
        (dict(good, ts=-5), "ts must be"),
        (dict(good, ts=0), "ts must be"),
        (dict(good, ts=1.5e12), "ts must be"),
        (dict(good, ts=str(t)), "ts must be"),
        (dict(good, ts=now_ms() + 86400000), "future"),
        (dict(good, status="flying"), "(?i)status"),
        (dict(good, status=""), "status"),
        (dict(good, status=3), "status"),
        (dict(good, fleet=""), "fleet"),
        (dict(good, fleet=7), "fleet"),
        (dict(good, fleet="f" * 256), "fleet"),
        (dict(good, speed=-1), "(?i)speed"),
        (dict(good, speed=6001), "(?i)speed"),
        (dict(good, speed="fast"), "speed"),
        (dict(good, heading=360.5), "(?i)heading"),
        (dict(good, heading=[1]), "heading"),
        (dict(good, lon=180.5), "longitude"),
        (dict(good, lon=-181), "longitude"),
        (dict(good, lat=85.1), "longitude,latitude"),
        (dict(good, lat=-90), "longitude,latitude"),
        ([good], "object"),
        ("just a string", "object|expected"),
    ]
    for body, detail in bad:
        r = c.req("PUT", "/v1/vehicles/hx-1/position", json.dumps(body), ctype=CT_JSON)
        expect_problem(r, 400, "PUT bad body %s" % short(json.dumps(body), 80), detail)
    raw_bad = [
        ('{"lon": NaN, "lat": 40.75}', r"line 1 column \d+"),
        ('{"lon": Infinity, "lat": 40.75}', r"line 1 column \d+"),
        ('{"lon": -Infinity, "lat": 40.75}', r"line 1 column \d+"),
        ('{"lon": 1e400, "lat": 40.75}', r"line 1 column \d+"),
        ('{"lon": -73.0, "lat": 40.75, "lon": -73.1}', r"(?i)duplicate"),
        ('{\n  "lon": -73.0,\n  "lat": ,\n  "ts": 1\n}', r"line 3 column \d+"),
        ('{"lon": -73.0, "lat": 40.75', r"line 1 column \d+"),
        ('', r"line 1 column \d+"),
        ('\xff\xfe{}', r"line 1 column \d+"),
        ('{"lon": -73.0, "lat": 40.75} {"x": 1}', r"line 1 column \d+"),
    ]
    for body, detail in raw_bad:
        r = c.req("PUT", "/v1/vehicles/hx-1/position", body.encode("latin-1"), ctype=CT_JSON)
        expect_problem(r, 400, "PUT invalid JSON %r" % body, "invalid JSON at " + detail
                       if "line" in detail else detail)
    r = c.req("PUT", "/v1/vehicles/%s/position" % ("v" * 256), good)
    expect_problem(r, 400, "PUT a 256-byte vehicle id", "id must be")
    for ct in ("text/plain", "application/xml", "application/x-www-form-urlencoded"):
        r = c.req("PUT", "/v1/vehicles/hx-1/position", json.dumps(good), ctype=ct)
        expect_problem(r, 415, "PUT with Content-Type %s" % ct)
    check(expect_json(c.get("/v1/vehicles/hx-1"), 200, "GET hx-1 after bad input") == snap,
          "bad input changed nothing over HTTP")
    check(sock_before is not None and c.sock() is sock_before,
          "400 and 415 answers keep the connection alive")
    check(resp_vehicle(rc, "hx-1") == resp_before, "bad input changed nothing over RESP")

    # body size: exactly the limit is fine, one byte more is 413
    doc = json.dumps(dict(good, lon=-73.0003))
    body = doc + " " * (JSON_LIMIT - len(doc))
    r = c.req("PUT", "/v1/vehicles/hx-1/position", body, ctype=CT_JSON)
    check(r.status == 200 and (r.json() or {}).get("outcome") == "applied",
          "a body of exactly 1 MiB is accepted: %s" % r)
    model.apply("hx-1", dict(good, lon=-73.0003))
    for extra, what in (((), "declared Content-Length"),
                        ((("Expect", "100-continue"),), "Expect: 100-continue")):
        k = Raw(port)
        k.send(("PUT /v1/vehicles/hx-1/position HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                % (JSON_LIMIT + 1, "".join("%s: %s\r\n" % h for h in extra))).encode())
        if not extra:
            k.send(b"{" + b" " * 65535)
        try:
            status, hd, b = k.response()
            r = Reply("PUT", "/v1/vehicles/hx-1/position (%s, 1 MiB + 1)" % what, status, hd, b)
        except (EOFError, OSError) as e:
            r = Reply("PUT", "/v1/vehicles/hx-1/position (%s)" % what, None, {}, repr(e))
        expect_problem(r, 413, "PUT 1 MiB + 1 (%s)" % what, "1048576")
        k.close()
    # chunked: the cap applies as the body arrives
    k = Raw(port)
    big = b'{"lon": -73.0, "lat": 40.75, "pad": "' + b"x" * JSON_LIMIT + b'"}'
    k.send(b"PUT /v1/vehicles/hx-1/position HTTP/1.1\r\nHost: x\r\n"
           b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    try:
        for i in range(0, len(big), 65536):
            part = big[i:i + 65536]
            k.send(b"%x\r\n%s\r\n" % (len(part), part))
        k.send(b"0\r\n\r\n")
    except OSError:
        pass
    try:
        status, hd, b = k.response()
        r = Reply("PUT", "/v1/vehicles/hx-1/position (chunked, 1 MiB + 39 bytes)", status, hd, b)
    except (EOFError, OSError) as e:
        r = Reply("PUT", "/v1/vehicles/hx-1/position (chunked, 1 MiB + 39 bytes)", None,
                  {}, "connection closed without a response (%r)" % e)
    expect_problem(r, 413, "chunked PUT body over 1 MiB")
    k.close()
    check(srv_alive(), "server alive after the 413s")
    healthy(port, "after the oversized bodies")
    g = expect_json(c.get("/v1/vehicles/hx-1"), 200, "GET hx-1 after the 413s")
    check(g and g["lon"] == -73.0003, "the refused bodies changed nothing: %r" % g)

    # Expect: 100-continue with a small body: continue, then the answer
    k = Raw(port)
    b = json.dumps(dict(good, lon=-73.00035, ts=t + 150000)).encode()
    k.send(("PUT /v1/vehicles/hx-1/position HTTP/1.1\r\nHost: x\r\nContent-Type: "
            "application/json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
            % len(b)).encode())
    st1, _ = k.head()
    k.send(b)
    st2, _, b2 = k.response()
    k.close()
    check(st1 == 100 and st2 == 200 and json.loads(b2).get("outcome") == "applied",
          "Expect: 100-continue: %r then %r %r" % (st1, st2, short(b2)))
    model.apply("hx-1", dict(good, lon=-73.00035))
    # pipelining: a PUT and a GET in one write, answered in order
    k = Raw(port)
    b = json.dumps(dict(good, lon=-73.0004, ts=t + 200000)).encode()
    k.send(raw_request("PUT", "/v1/vehicles/hx-1/position", b, (("Content-Type", CT_JSON),))
           + raw_request("GET", "/v1/vehicles/hx-1"))
    s1, _, b1 = k.response()
    s2, _, b2 = k.response()
    k.close()
    check(s1 == 200 and s2 == 200 and json.loads(b2).get("lon") == -73.0004,
          "pipelined PUT then GET: %s %r / %s %r" % (s1, short(b1), s2, short(b2)))
    model.apply("hx-1", dict(good, lon=-73.0004))


def srv_alive():
    return MAIN.alive()


def page_all(c, query, limit, what, compact=False):
    """Pages through /v1/vehicles?query; returns the ids in order."""
    ids, cursor, pages = [], None, 0
    while True:
        q = "%s&limit=%d" % (query, limit)
        if compact:
            q += "&format=compact"
        if cursor:
            q += "&cursor=" + urllib.parse.quote(cursor)
        r = c.get("/v1/vehicles?" + q.lstrip("&"))
        j = expect_json(r, 200, "%s page %d" % (what, pages + 1))
        if not isinstance(j, dict):
            return None
        rows = j.get("vehicles") or []
        pages += 1
        if not check(len(rows) <= limit and ("next_cursor" in j)
                     and (j["next_cursor"] is None or len(rows) == limit),
                     "%s page %d: %d rows, next_cursor %r" % (what, pages, len(rows),
                                                               j.get("next_cursor"))):
            return None
        ids += [row[0] if compact else row["id"] for row in rows]
        cursor = j["next_cursor"]
        if cursor is None or pages > 1000:
            return ids


def test_list(c, model):
    allv = model.where()
    ids = page_all(c, "", 333, "list all, limit 333")
    if ids is not None:
        check(len(ids) == len(set(ids)) and set(ids) == set(model.v),
              "paging %d vehicles by 333: %d returned, %d distinct, missing %r, extra %r"
              % (len(allv), len(ids), len(set(ids)), sorted(set(model.v) - set(ids))[:5],
                 sorted(set(ids) - set(model.v))[:5]))
    # the 50 vehicles at one spot, across page boundaries
    ids = page_all(c, "bbox=2.35,48.85,2.36,48.86", 7, "50 vehicles at one spot, limit 7")
    check(ids is not None and sorted(ids) == sorted("same-%02d" % i for i in range(50)),
          "50 vehicles at one spot page exactly once: %r" % (ids and sorted(ids)[:5]))
    # filters, one page
    cases = [("status=busy", lambda v: v.status == "busy"),
             ("fleet=green", lambda v: v.fleet == "green"),
             ("status=available&fleet=yellow",
              lambda v: v.status == "available" and v.fleet == "yellow"),
             ("bbox=-74.0,40.70,-73.95,40.78",
              lambda v: in_box((-74.0, 40.70, -73.95, 40.78), v.lon, v.lat)),
             ("bbox=179.5,-18,-179.5,-16&status=available",
              lambda v: in_box((179.5, -18, -179.5, -16), v.lon, v.lat)
              and v.status == "available"),
             ("bbox=180,-20,180,85.05112878",
              lambda v: in_box((180, -20, 180, 85.05112878), v.lon, v.lat)),
             ("bbox=0,85,180,85.05112878",
              lambda v: in_box((0, 85, 180, 85.05112878), v.lon, v.lat)),
             ("bbox=180,-20,-170,85.05112878&fleet=edge",
              lambda v: in_box((180, -20, -170, 85.05112878), v.lon, v.lat)
              and v.fleet == "edge"),
             ("fleet=nobody", lambda v: False)]
    for q, pred in cases:
        want = {v.id for v in model.where(pred)}
        r = c.get("/v1/vehicles?%s&limit=10000" % q)
        j = expect_json(r, 200, "list ?%s" % q)
        got = [v["id"] for v in (j or {}).get("vehicles", [])]
        check(j and set(got) == want and len(got) == len(want) and j["next_cursor"] is None,
              "list ?%s: %d vehicles, want %d; missing %r extra %r"
              % (q, len(got), len(want), sorted(want - set(got))[:5],
                 sorted(set(got) - want)[:5]))
        if j and q == "status=busy":
            bad = [v for v in j["vehicles"] if set(v) != VEHICLE_KEYS]
            check(not bad, "list rows are vehicle objects: %r" % bad[:1])
    # a filtered list paged
    pred = cases[3][1]
    want = {v.id for v in model.where(pred)}
    ids = page_all(c, "bbox=-74.0,40.70,-73.95,40.78", 100, "bbox paged by 100")
    check(ids is not None and len(ids) == len(want) and set(ids) == want,
          "bbox paged by 100: %d of %d" % (len(ids or []), len(want)))
    # an exact multiple: limit = count gives no cursor
    n = len(want)
    j = expect_json(c.get("/v1/vehicles?bbox=-74.0,40.70,-73.95,40.78&limit=%d" % n), 200,
                    "limit = count")
    check(j and len(j["vehicles"]) == n and j["next_cursor"] is None,
          "limit = the number of matches: no next_cursor (%r)" % (j and j["next_cursor"]))
    j = expect_json(c.get("/v1/vehicles?bbox=-74.0,40.70,-73.95,40.78&limit=%d" % (n - 1)), 200,
                    "limit = count - 1")
    if check(j and len(j["vehicles"]) == n - 1 and j["next_cursor"],
             "limit = matches - 1: a next_cursor"):
        j2 = expect_json(c.get("/v1/vehicles?bbox=-74.0,40.70,-73.95,40.78&limit=%d&cursor=%s"
                               % (n - 1, urllib.parse.quote(j["next_cursor"]))), 200,
                         "the last page")
        check(j2 and len(j2["vehicles"]) == 1 and j2["next_cursor"] is None,
              "the last page has one vehicle and no cursor: %r" % j2)
    # compact
    r = c.get("/v1/vehicles?format=compact&limit=200000")
    j = expect_json(r, 200, "format=compact")
    if j:
        check(set(j) == {"fields", "vehicles", "next_cursor"}
              and j["fields"] == ["id", "lon", "lat", "status", "heading", "trip"]
              and j["next_cursor"] is None and len(j["vehicles"]) == len(model.v),
              "compact: keys %r fields %r, %d rows for %d vehicles"
              % (sorted(j), j.get("fields"), len(j.get("vehicles", [])), len(model.v)))
        bad = []
        for row in j["vehicles"]:
            v = model.v.get(row[0]) if isinstance(row, list) and row else None
            if not (v and len(row) == 6 and abs(row[1] - v.lon) <= 5e-7
                    and abs(row[2] - v.lat) <= 5e-7 and row[3] == v.status
                    and (row[4] is None or isinstance(row[4], (int, float)))):
                bad.append(row)
        check(not bad, "compact rows match the vehicles: %d bad, first %r" % (len(bad), bad[:2]))
    ids = page_all(c, "status=offline", 250, "compact paged", compact=True)
    check(ids is not None and set(ids) == {v.id for v in model.where(
        lambda v: v.status == "offline")}, "compact paging by status")
    # bad list queries
    for q, detail in (("limit=0", "limit"), ("limit=10001", "limit"), ("limit=abc", "limit"),
                      ("limit=-1", "limit"), ("format=compact&limit=200001", "limit"),
                      ("format=xml", "format"), ("cursor=garbage", "cursor"),
                      ("cursor=zz.00", "cursor"), ("cursor=1.", "cursor"),
                      ("cursor=1.abc", "cursor"), ("cursor=1.0g", "cursor"),
                      ("status=flying", "status"), ("fleet=", "fleet"),
                      ("bbox=1,2,3", "bbox"), ("bbox=1,50,2,49", "bbox"),
                      ("bbox=-200,0,10,10", "bbox"), ("bbox=a,b,c,d", "bbox"),
                      ("bbox=0,0,1,1,", "bbox")):
        expect_problem(c.get("/v1/vehicles?" + q), 400, "GET /v1/vehicles?%s" % q, detail)


def test_delete(c, rc, model):
    t = now_ms() - 1000
    put(c, model, "del-1", {"lon": 11.0, "lat": 45.0, "ts": t}, "PUT del-1")
    r = c.req("DELETE", "/v1/vehicles/del-1")
    check(r.status == 204 and r.body == b"", "DELETE del-1: 204 without a body: %s" % r)
    model.v.pop("del-1", None)
    expect_problem(c.get("/v1/vehicles/del-1"), 404, "GET a deleted vehicle", "del-1")
    expect_problem(c.req("DELETE", "/v1/vehicles/del-1"), 404, "DELETE it again", "del-1")
    expect_problem(c.req("DELETE", "/v1/vehicles/never-was"), 404, "DELETE an unknown vehicle")
    expect_problem(c.get("/v1/vehicles/never-was"), 404, "GET an unknown vehicle",
                   "unknown vehicle 'never-was'")
    g = rc("VEHICLE.GET", "del-1")
    check(isinstance(g, RespError) and "unknown vehicle" in g,
          "RESP sees the HTTP delete: %r" % g)
    # the decoded path must not be cut at a NUL: %00 names another vehicle
    put(c, model, "nul-victim", {"lon": 11.0, "lat": 45.0, "ts": t}, "PUT nul-victim")
    r = c.req("DELETE", "/v1/vehicles/nul-victim%00x")
    check(r.status in (400, 404), "DELETE /v1/vehicles/nul-victim%%00x: 400 or 404, got %s" % r)
    g = c.get("/v1/vehicles/nul-victim")
    check(g.status == 200, "DELETE /v1/vehicles/nul-victim%%00x must not delete 'nul-victim': "
          "GET /v1/vehicles/nul-victim afterwards %s" % g)
    if g.status != 200:
        model.v.pop("nul-victim", None)
    # ids holding '/', '%', '?', '#' and spaces: written over RESP, addressed
    # over HTTP percent-encoded; a '/' encoded as %2F is part of the id,
    # not a separator
    for vid in ("depot/bus 7", "a%2Fb", "q?x#y", "100%", "nearby"):
        enc = urllib.parse.quote(vid, safe="")
        if vid == "nearby":        # the route's own name: one letter encoded
            enc = "%6Eearby"
        res = rc("VEHICLE.UPDATE", vid, "11.5", "45.5", "TS", str(t))
        check(not isinstance(res, RespError), "VEHICLE.UPDATE %r: %r" % (vid, res))
        model.apply(vid, {"lon": 11.5, "lat": 45.5, "ts": t})
        j = expect_json(c.get("/v1/vehicles/" + enc), 200, "GET /v1/vehicles/%s" % enc)
        check(j and j.get("id") == vid, "GET /v1/vehicles/%s is %r: %r" % (enc, vid, j and j.get("id")))
    r = c.get("/v1/vehicles/depot/bus%207")
    check(r.status == 404, "an unencoded '/' is a separator: /v1/vehicles/depot/bus%%207 %s" % r)
    # an {id} segment too long to decode, or with broken escapes: a clear 404
    expect_problem(c.get("/v1/vehicles/" + "%41" * 1500), 404, "a 4,500-byte id segment")
    expect_problem(c.get("/v1/vehicles/%zz%2"), 404, "an id with broken escapes",
                   "unknown vehicle '%zz%2'")
    put(c, model, "yard/3", {"lon": 11.6, "lat": 45.6, "ts": t}, "PUT yard%2F3",)
    g = rc("VEHICLE.GET", "yard/3")
    check(not isinstance(g, RespError), "RESP sees the vehicle PUT as yard%%2F3: %r" % g)
    r = c.req("DELETE", "/v1/vehicles/" + urllib.parse.quote("a%2Fb", safe=""))
    check(r.status == 204, "DELETE /v1/vehicles/a%%252Fb: %s" % r)
    model.v.pop("a%2Fb", None)
    check(isinstance(rc("VEHICLE.GET", "a%2Fb"), RespError) and
          not isinstance(rc("VEHICLE.GET", "depot/bus 7"), RespError),
          "the DELETE of 'a%2Fb' removed that id only")


def brute_near(model, lon, lat, radius, pred=lambda v: True):
    out = []
    for v in model.v.values():
        if pred(v):
            d = fleet_dist(lon, lat, v.lon, v.lat)
            if d <= radius + 0.01:
                out.append((d, v.id))
    out.sort()
    return out


def test_nearby(c, rc, model, rnd):
    nyc = model.where(lambda v: v.id.startswith("nyc-"))
    queries = [(v.lon, v.lat) for v in rnd.sample(nyc, 6)]
    queries += [(rnd.uniform(-74.02, -73.90), rnd.uniform(40.65, 40.80)) for _ in range(4)]
    filters = [("", lambda v: True),
               ("&status=available", lambda v: v.status == "available"),
               ("&fleet=yellow", lambda v: v.fleet == "yellow"),
               ("&status=busy&fleet=green", lambda v: v.status == "busy" and v.fleet == "green")]
    nq = 0
    for qi, (lon, lat) in enumerate(queries):
        for radius in (250.0, 1500.0, 6000.0):
            fq, pred = filters[(qi + int(radius)) % len(filters)]
            for count in (10000, 7):
                url = "/v1/vehicles/nearby?lon=%r&lat=%r&radius=%r&count=%d%s" % (
                    lon, lat, radius, count, fq)
                j = expect_json(c.get(url), 200, "GET " + url)
                nq += 1
                if not j:
                    continue
                got = j.get("vehicles", [])
                want = brute_near(model, lon, lat, radius, pred)
                # vehicles within 1 cm of the circle may go either way
                sure = [(d, i) for d, i in want if d < radius - 0.01]
                dists = [g.get("distance_m") for g in got]
                ok = all(isinstance(d, (int, float)) for d in dists) and \
                    dists == sorted(dists) and all(d <= radius + 0.01 for d in dists)
                check(ok, "%s: sorted by distance_m, within the radius: %r" % (url, dists[:10]))
                wd = {i: d for d, i in want}
                bad = [(g["id"], g["distance_m"], wd.get(g["id"])) for g in got
                       if g["id"] not in wd or abs(g["distance_m"] - wd[g["id"]]) > 0.0051
                       or not pred(model.v[g["id"]])]
                check(not bad, "%s: distance_m / filter differ from brute force: %r"
                      % (url, bad[:5]))
                if count >= len(want):
                    gid = {g["id"] for g in got}
                    miss = [i for d, i in sure if i not in gid]
                    check(not miss and len(got) <= len(want),
                          "%s: %d vehicles, brute force %d; missing %r"
                          % (url, len(got), len(want), miss[:5]))
                else:
                    check(len(got) == count and [g["id"] for g in got] ==
                          [i for d, i in want[:count]],
                          "%s: the %d nearest: %r, brute force %r"
                          % (url, count, [g["id"] for g in got], [i for d, i in want[:count]]))
                if got:
                    check(set(got[0]) == VEHICLE_KEYS | {"distance_m"},
                          "nearby rows: vehicle + distance_m: %r" % sorted(got[0]))
    # the same searches over RESP: the same vehicles, the same distances
    for lon, lat in queries[:4]:
        url = "/v1/vehicles/nearby?lon=%r&lat=%r&radius=1500&count=10000" % (lon, lat)
        j = expect_json(c.get(url), 200, "GET " + url)
        got = [(v["id"], v["distance_m"]) for v in (j or {}).get("vehicles", [])]
        rr = rc("VEHICLE.NEARBY", repr(lon), repr(lat), 1500, "m", "WITHDIST")
        want = [(x[0], float(x[1])) for x in rr] if isinstance(rr, list) else rr
        check(isinstance(want, list) and [g[0] for g in got] == [w[0] for w in want]
              and all(abs(g[1] - w[1]) <= 0.0051 for g, w in zip(got, want)),
              "%s equals VEHICLE.NEARBY %r %r 1500 m WITHDIST: %d vs %r"
              % (url, lon, lat, len(got), want if not isinstance(want, list) else len(want)))
    # around the antimeridian: the circle wraps
    for lon, lat, radius in ((179.95, -17.2, 150000.0), (-179.9, -17.3, 120000.0)):
        url = "/v1/vehicles/nearby?lon=%r&lat=%r&radius=%r&count=10000" % (lon, lat, radius)
        j = expect_json(c.get(url), 200, "GET " + url)
        got = [(v["id"], v["distance_m"]) for v in (j or {}).get("vehicles", [])]
        want = [(i, d) for d, i in brute_near(model, lon, lat, radius) if d < radius - 0.01]
        sides = {v.lon > 0 for v in model.v.values() if v.id in dict(want)}
        check(j and [g[0] for g in got] == [w[0] for w in want] and len(sides) == 2
              and all(abs(g[1] - w[1]) <= 0.0051 for g, w in zip(got, want)),
              "%s: across the antimeridian %r, brute force %r" % (url, got[:6], want[:6]))
    # the 50 at one spot: all at distance 0
    j = expect_json(c.get("/v1/vehicles/nearby?lon=2.3522&lat=48.8566&radius=0&count=100"), 200,
                    "nearby radius 0")
    check(j and len(j["vehicles"]) == 50 and all(v["distance_m"] == 0 for v in j["vehicles"]),
          "radius 0 finds the 50 vehicles at that exact spot: %d" % len((j or {}).get(
              "vehicles", [])))
    j = expect_json(c.get("/v1/vehicles/nearby?lon=2.3522&lat=48.8566&radius=10"), 200,
                    "nearby default count")
    check(j and len(j["vehicles"]) == 50, "default count (100) returns all 50")
    for q, detail in (("lat=40.7&radius=100", "required"), ("lon=-73.9&radius=100", "required"),
                      ("lon=-73.9&lat=40.7", "required"), ("lon=abc&lat=40.7&radius=1", ""),
                      ("lon=-73.9&lat=40.7&radius=-1", "radius"),
                      ("lon=-73.9&lat=40.7&radius=20000001", "radius"),
                      ("lon=-73.9&lat=40.7&radius=nan", ""),
                      ("lon=-73.9&lat=89&radius=1", "latitude"),
                      ("lon=190&lat=40&radius=1", "longitude"),
                      ("lon=-73.9&lat=40.7&radius=1&count=0", "count"),
                      ("lon=-73.9&lat=40.7&radius=1&count=10001", "count"),
                      ("lon=-73.9&lat=40.7&radius=1&status=x", "status")):
        expect_problem(c.get("/v1/vehicles/nearby?" + q), 400, "nearby ?%s" % q, detail or None)
    print("http: %d nearby queries compared with brute force" % nq)


def test_within(c, model, zones):
    boxes = [((-74.0, 40.72, -73.97, 40.76), ""), ((-73.99, 40.70, -73.90, 40.80), "&status=busy"),
             ((-74.05, 40.60, -73.70, 40.90), "&fleet=fhv"),
             ((179.5, -18.0, -179.5, -16.0), ""), ((179.0, -19.0, -179.0, -15.0), "&status=offline"),
             ((170.0, -10.0, -170.0, -5.0), "")]
    for box, fq in boxes:
        pred = (lambda v: True) if not fq else (
            (lambda v, s=fq.split("=")[1]: v.status == s) if "status" in fq
            else (lambda v, f=fq.split("=")[1]: v.fleet == f))
        want = {v.id for v in model.where(lambda v: in_box(box, v.lon, v.lat) and pred(v))}
        url = "/v1/vehicles/within?bbox=%r,%r,%r,%r&count=10000%s" % (box + (fq,))
        j = expect_json(c.get(url), 200, "GET " + url)
        got = [v["id"] for v in (j or {}).get("vehicles", [])]
        check(j is not None and len(got) == len(want) and set(got) == want,
              "%s: %d vehicles, brute force %d; missing %r extra %r"
              % (url, len(got), len(want), sorted(want - set(got))[:5], sorted(set(got) - want)[:5]))
    am = {v.id for v in model.where(lambda v: in_box((179.5, -18.0, -179.5, -16.0), v.lon, v.lat))}
    check(len(am) >= 5, "the antimeridian box holds vehicles on both sides (%d)" % len(am))
    j = expect_json(c.get("/v1/vehicles/within?bbox=-74.05,40.60,-73.70,40.90&count=5"), 200,
                    "within count=5")
    check(j and len(j["vehicles"]) == 5 and all(
        in_box((-74.05, 40.60, -73.70, 40.90), v["lon"], v["lat"]) for v in j["vehicles"]),
        "within count=5: five vehicles inside the box")
    for q in ("", "bbox=1,2,3", "bbox=0,10,1,5", "bbox=0,0,1,1&count=0", "bbox=0,0,1,1&status=x",
              "bbox=0,0,1,1&fleet="):
        expect_problem(c.get("/v1/vehicles/within?" + q), 400, "within ?%s" % q)

    # polygons: a square with a hole (the grid around 10E 50N)
    outer = [[9.9, 49.9], [10.1, 49.9], [10.1, 50.1], [9.9, 50.1], [9.9, 49.9]]
    hole = [[9.95, 49.95], [9.95, 50.05], [10.05, 50.05], [10.05, 49.95], [9.95, 49.95]]
    poly = {"type": "Polygon", "coordinates": [outer, hole]}
    want = {v.id for v in model.where(lambda v: even_odd([outer, hole], v.lon, v.lat))}
    inner = {v.id for v in model.where(lambda v: even_odd([hole], v.lon, v.lat))}
    r = c.req("POST", "/v1/vehicles/within?count=10000", poly)
    j = expect_json(r, 200, "POST within a square with a hole")
    got = {v["id"] for v in (j or {}).get("vehicles", [])}
    check(j and got == want and len(want) > 100 and not (got & inner),
          "square with a hole: %d vehicles, even-odd %d, %d inside the hole returned"
          % (len(got), len(want), len(got & inner)))
    r = c.req("POST", "/v1/vehicles/within?count=10000",
              {"type": "Polygon", "coordinates": [outer]})
    j = expect_json(r, 200, "POST within the square without its hole")
    got = {v["id"] for v in (j or {}).get("vehicles", [])}
    check(got == want | inner, "without the hole: %d, want %d" % (len(got), len(want | inner)))
    r = c.req("POST", "/v1/vehicles/within", poly)
    j = expect_json(r, 200, "POST within, default count")
    check(j and len(j["vehicles"]) == min(100, len(want)), "default count is 100: %d"
          % len((j or {}).get("vehicles", [])))

    if zones is None:
        print("http: %s is missing: skipping POST /v1/vehicles/within with NYC taxi zones"
              % data_path("regions", "nyc_taxi_zones.geojson"))
    else:
        chosen = [zones[n] for n in ("Midtown Center", "LaGuardia Airport", "JFK Airport")]
        fc = {"type": "FeatureCollection", "features": chosen}
        cases = [(chosen[0], "Feature Midtown Center (Polygon)", ""),
                 (chosen[1]["geometry"], "LaGuardia Airport (MultiPolygon geometry)", ""),
                 (chosen[2], "Feature JFK Airport (MultiPolygon)", "&status=available"),
                 (fc, "FeatureCollection of the three", ""),
                 (fc, "FeatureCollection, fleet=yellow", "&fleet=yellow")]
        for geom, what, fq in cases:
            rings = rings_of(geom)
            pred = (lambda v: True) if not fq else (
                (lambda v, s=fq.split("=")[1]: v.status == s) if "status" in fq
                else (lambda v, f=fq.split("=")[1]: v.fleet == f))
            bb = geom_bbox(rings)
            cand = model.where(lambda v: bb[0] <= v.lon <= bb[2] and bb[1] <= v.lat <= bb[3]
                               and pred(v))
            want = {v.id for v in cand if even_odd(rings, v.lon, v.lat)}
            r = c.req("POST", "/v1/vehicles/within?count=10000" + fq, geom,
                      ctype="application/geo+json")
            j = expect_json(r, 200, "POST within " + what)
            got = {v["id"] for v in (j or {}).get("vehicles", [])}
            # a vehicle within 1e-9 degrees of an edge may go either way
            diff = [i for i in (got ^ want)
                    if edge_dist(rings, model.v[i].lon, model.v[i].lat) > 1e-9]
            check(j is not None and not diff and len(want) >= 10,
                  "POST within %s: %d vehicles, even-odd %d; differ %r"
                  % (what, len(got), len(want), [(i, i in got) for i in diff[:5]]))
    bad = [({"type": "Point", "coordinates": [1, 2]}, "unsupported"),
           ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, "ring"),
           ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "ring"),
           ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 95], [0, 0]]]}, "ring"),
           ({"type": "Polygon", "coordinates": [[[0, 0], ["a", 0], [1, 1], [0, 0]]]}, "ring"),
           ({"type": "Polygon", "coordinates": "nope"}, ""),
           ({"type": "Polygon", "coordinates": []}, ""),
           ({"type": "MultiPolygon", "coordinates": 5}, ""),
           ({"type": "FeatureCollection"}, "features"),
           ({"type": "FeatureCollection", "features": []}, "polygon"),
           ({"type": "Feature", "geometry": None}, ""),
           ({}, "type"), ([1, 2], "object")]
    for body, detail in bad:
        expect_problem(c.req("POST", "/v1/vehicles/within", body), 400,
                       "POST within %s" % short(json.dumps(body), 80), detail or None)
    expect_problem(c.req("POST", "/v1/vehicles/within", '{"type": "Polygon", ',
                         ctype=CT_JSON), 400, "POST within invalid JSON", "line 1 column")
    expect_problem(c.req("POST", "/v1/vehicles/within", json.dumps(poly), ctype="text/plain"),
                   415, "POST within as text/plain")
    expect_problem(c.req("POST", "/v1/vehicles/within?count=0", poly), 400, "POST within count=0")


def check_trip_obj(t, what, **want):
    ok = isinstance(t, dict) and TRIP_KEYS <= set(t)
    if ok:
        for k, v in want.items():
            if t.get(k) != v:
                ok = False
    return check(ok, "%s: trip %r, want %r" % (what, t, want))


def test_trips(c, rc, model):
    t0 = now_ms() - 900000
    lon0, lat0 = -73.9851, 40.7589
    put(c, model, "trip-car", {"lon": lon0, "lat": lat0, "ts": t0}, "PUT trip-car")
    put(c, model, "trip-other", {"lon": lon0, "lat": lat0, "ts": t0}, "PUT trip-other")
    r = c.req("POST", "/v1/trips", {"vehicle": "trip-car", "id": "trip-A", "ts": t0})
    j = expect_json(r, 201, "POST /v1/trips trip-A")
    check_trip_obj(j, "trip-A started", id="trip-A", vehicle="trip-car", state="running",
                   start=t0, end=None, points=1)
    model.starts.append((t0, lon0, lat0))
    expect_problem(c.req("POST", "/v1/trips", {"vehicle": "trip-car"}), 409,
                   "a second trip for trip-car", "running trip")
    expect_problem(c.req("POST", "/v1/trips", {"vehicle": "trip-other", "id": "trip-A"}), 409,
                   "a taken trip id", "already exists")
    expect_problem(c.req("POST", "/v1/trips", {"vehicle": "no-such-car"}), 404,
                   "a trip for an unknown vehicle", "no-such-car")
    for body, detail in (({}, "vehicle"), ({"vehicle": 5}, "vehicle"), ({"vehicle": ""}, "vehicle"),
                         ({"vehicle": "trip-other", "ts": -1}, "ts"),
                         ({"vehicle": "trip-other", "ts": "x"}, "ts"),
                         ({"vehicle": "trip-other", "id": 7}, "id"),
                         ({"vehicle": "trip-other", "id": "t" * 256}, "id"),
                         ({"vehicle": "trip-other", "ts": now_ms() + 86400000}, "future"),
                         ([], "object")):
        expect_problem(c.req("POST", "/v1/trips", body), 400, "POST /v1/trips %s" % json.dumps(body),
                       detail)
    expect_problem(c.req("POST", "/v1/trips", "{", ctype=CT_JSON), 400, "POST /v1/trips bad JSON",
                   "line 1 column")
    expect_problem(c.req("POST", "/v1/trips", "{}", ctype="text/plain"), 415,
                   "POST /v1/trips as text/plain")
    g = expect_json(c.get("/v1/vehicles/trip-car"), 200, "GET trip-car")
    check(g and g["trip"] == "trip-A", "the vehicle names its trip: %r" % g)
    m = resp_vehicle(rc, "trip-car")
    check(isinstance(m, dict) and m.get("trip") == "trip-A", "RESP sees the trip: %r" % m)
    # five moves of 150 m every 15 s (36 km/h)
    path = [(lon0, lat0)]
    lon, lat, ts = lon0, lat0, t0
    for k in range(5):
        lon, lat = offset(lon, lat, 120.0, 90.0)
        ts += 15000
        put(c, model, "trip-car", {"lon": lon, "lat": lat, "ts": ts, "speed": 36.0},
            "trip-A move %d" % (k + 1))
        path.append((lon, lat))
    dist = sum(hav(a[0], a[1], b[0], b[1], R_TRIP) for a, b in zip(path, path[1:]))
    j = expect_json(c.get("/v1/trips/trip-A"), 200, "GET /v1/trips/trip-A")
    check_trip_obj(j, "trip-A after 5 moves", state="running", pings=5, points=6, last=ts,
                   duration_ms=ts - t0, end=None, truncated=False)
    if j:
        check(abs(j["distance_m"] - dist) <= 0.5 and abs(j["max_speed"] - 36.0) <= 0.05,
              "trip-A distance_m %r (haversine %.1f), max_speed %r" % (j["distance_m"], dist,
                                                                     j["max_speed"]))
        pts = decode_polyline(j.get("polyline") or "")
        check(len(pts) == len(path) and all(abs(a[0] - b[0]) <= 1e-5 + 1e-9 and
                                            abs(a[1] - b[1]) <= 1e-5 + 1e-9
                                            for a, b in zip(pts, path)),
              "trip-A polyline decodes to the moves: %r vs %r" % (pts, path))
    j = expect_json(c.get("/v1/trips/trip-A?path=geojson"), 200, "GET trip-A ?path=geojson")
    p = (j or {}).get("path") or {}
    coords = p.get("coordinates") or []
    check(j and "polyline" not in j and p.get("type") == "LineString" and len(coords) == len(path)
          and all(abs(a[0] - b[0]) <= 1e-5 + 1e-9 and abs(a[1] - b[1]) <= 1e-5 + 1e-9
                  for a, b in zip(coords, path)),
          "trip-A ?path=geojson: a LineString of the moves: %r vs %r" % (p, path))
    j = expect_json(c.get("/v1/trips/trip-A?path=none"), 200, "GET trip-A ?path=none")
    check(j and "path" not in j and "polyline" not in j, "?path=none: no path: %r" % j)
    expect_problem(c.get("/v1/trips/trip-A?path=svg"), 400, "?path=svg", "path")
    # end with a timestamp
    end_a = ts + 1000
    r = c.req("POST", "/v1/trips/trip-A/end", {"ts": end_a})
    j = expect_json(r, 200, "POST /v1/trips/trip-A/end")
    check_trip_obj(j, "trip-A ended", state="ended", end=end_a, duration_ms=end_a - t0,
                   pings=5, points=6)
    expect_problem(c.req("POST", "/v1/trips/trip-A/end", {}), 409, "ending trip-A again",
                   "not running")
    expect_problem(c.req("POST", "/v1/trips/no-such-trip/end", {}), 404, "ending an unknown trip",
                   "no-such-trip")
    expect_problem(c.get("/v1/trips/no-such-trip"), 404, "GET an unknown trip", "no-such-trip")
    g = expect_json(c.get("/v1/vehicles/trip-car"), 200, "GET trip-car after the end")
    check(g and g["trip"] is None, "no trip on the vehicle after the end: %r" % g)
    # trip-B (ended without a body), then trip-C running
    ts += 60000
    lon, lat = offset(lon, lat, 100.0, 0.0)
    put(c, model, "trip-car", {"lon": lon, "lat": lat, "ts": ts}, "move before trip-B")
    start_b = ts
    j = expect_json(c.req("POST", "/v1/trips", {"vehicle": "trip-car", "id": "trip-B", "ts": ts}),
                    201, "POST trip-B")
    model.starts.append((ts, lon, lat))
    ts += 20000
    lon, lat = offset(lon, lat, 150.0, 0.0)
    put(c, model, "trip-car", {"lon": lon, "lat": lat, "ts": ts}, "trip-B move")
    r = c.req("POST", "/v1/trips/trip-B/end", b"", ctype=None)
    j = expect_json(r, 200, "POST /v1/trips/trip-B/end without a body")
    check(j and j["state"] == "ended" and j["end"] is not None and j["end"] >= ts,
          "trip-B ended at or after its last ping: %r" % j)
    end_b = (j or {}).get("end") or ts
    ts = max(ts, end_b) + 60000
    lon, lat = offset(lon, lat, 100.0, 0.0)
    put(c, model, "trip-car", {"lon": lon, "lat": lat, "ts": ts}, "move before trip-C")
    start_c = ts
    j = expect_json(c.req("POST", "/v1/trips", {"vehicle": "trip-car", "ts": ts}), 201,
                    "POST a trip with a generated id")
    tid_c = (j or {}).get("id")
    check(isinstance(tid_c, str) and tid_c, "a generated trip id: %r" % tid_c)
    model.starts.append((ts, lon, lat))
    for q, want in (("", [tid_c, "trip-B", "trip-A"]),
                    ("&from=%d" % (end_a + 1), [tid_c, "trip-B"]),
                    ("&to=%d" % (start_b - 1), ["trip-A"]),
                    ("&from=%d&to=%d" % (end_a + 1, start_c - 1), ["trip-B"]),
                    ("&from=%d&to=%d" % (t0 - 100000, t0 - 1), []),
                    ("&limit=1", [tid_c]), ("&limit=2", [tid_c, "trip-B"])):
        url = "/v1/trips?vehicle=trip-car" + q
        j = expect_json(c.get(url), 200, "GET " + url)
        got = [t.get("id") for t in (j or {}).get("trips", [])]
        check(got == want, "GET %s: %r, want %r" % (url, got, want))
    j = expect_json(c.get("/v1/trips?vehicle=trip-car&path=geojson"), 200, "trips ?path=geojson")
    check(j and all(t.get("path", {}).get("type") == "LineString" for t in j["trips"]),
          "trip list with GeoJSON paths")
    for q in ("", "?vehicle=", "?vehicle=trip-car&from=abc", "?vehicle=trip-car&limit=0",
              "?vehicle=trip-car&to=-5"):
        expect_problem(c.get("/v1/trips" + q), 400, "GET /v1/trips%s" % q)
    expect_problem(c.get("/v1/trips?vehicle=no-such-car"), 404, "trips of an unknown vehicle")
    # deleting a vehicle ends its running trip; its trips stay listed
    t1 = now_ms() - 30000
    put(c, model, "trip-gone", {"lon": 2.0, "lat": 48.0, "ts": t1}, "PUT trip-gone")
    expect_json(c.req("POST", "/v1/trips", {"vehicle": "trip-gone", "id": "trip-G", "ts": t1}),
                201, "POST trip-G")
    model.starts.append((t1, 2.0, 48.0))
    put(c, model, "trip-gone", {"lon": 2.001, "lat": 48.0, "ts": t1 + 10000}, "trip-G move")
    r = c.req("DELETE", "/v1/vehicles/trip-gone")
    check(r.status == 204, "DELETE a vehicle with a running trip: %s" % r)
    model.v.pop("trip-gone", None)
    j = expect_json(c.get("/v1/trips/trip-G"), 200, "GET trip-G after its vehicle's delete")
    check_trip_obj(j, "trip-G after the delete", state="vehicle_deleted", end=t1 + 10000,
                   vehicle="trip-gone", pings=1, points=2)
    j = expect_json(c.get("/v1/trips?vehicle=trip-gone"), 200, "trips of a deleted vehicle")
    check(j and [t["id"] for t in j["trips"]] == ["trip-G"], "a deleted vehicle's trips: %r" % j)
    expect_problem(c.req("POST", "/v1/trips/trip-G/end", {}), 409, "ending trip-G", "not running")
    return tid_c


def metric(c, name, cmd):
    r = c.get("/metrics")
    m = re.search(r'^%s\{cmd="%s"\} (\d+)$' % (re.escape(name), re.escape(cmd)),
                  r.body.decode(), re.M)
    return int(m.group(1)) if m else None


def test_ndjson(c, model, port, rnd):
    r = c.get("/metrics")
    check(r.status == 200 and (r.ctype or "").startswith("text/plain")
          and b"fleetd_commands_total" in r.body, "GET /metrics: text/plain with "
          "fleetd_commands_total: %s" % r)
    before = metric(c, "fleetd_commands_total", "vehicle.update")
    check(before is not None and before >= len(model.v), "fleetd_commands_total{cmd=\"vehicle.update\"} "
          "counts the HTTP writes so far: %r" % before)
    ts0 = now_ms() - 3600000
    lines = [{"id": "bulk-%05d" % i, "lon": 151.0 + rnd.random() * 0.2,
              "lat": -33.9 + rnd.random() * 0.2, "ts": ts0, "status": STATUSES[i % 3]}
             for i in range(10000)]
    t_start = time.time()
    r = c.req("POST", "/v1/positions", ndjson(lines), ctype="application/x-ndjson")
    dt = time.time() - t_start
    j = expect_json(r, 200, "POST 10,000 NDJSON lines")
    check(j == {"lines": 10000, "applied": 10000, "stale": 0, "implausible": 0, "relocated": 0,
                "failed": 0, "errors": []}, "10,000 lines: %s" % r)
    for l in lines:
        model.apply(l["id"], l)
    after = metric(c, "fleetd_commands_total", "vehicle.update")
    check(after is not None and before is not None and after - before == 10000,
          "the batch ran VEHICLE.UPDATE 10,000 times through the command table: %r -> %r"
          % (before, after))
    print("http: 10,000 NDJSON lines in %.2f s" % dt)
    for i in (0, 4999, 9999):
        g = expect_json(c.get("/v1/vehicles/bulk-%05d" % i), 200, "GET bulk-%05d" % i)
        l = lines[i]
        check(g and g["lon"] == round(l["lon"], 7) and g["lat"] == round(l["lat"], 7)
              and g["status"] == l["status"] and g["ts"] == ts0,
              "bulk-%05d as sent: %r" % (i, g))
    # a mixed batch: every outcome, bad lines, blank lines, CRLF
    mixed = [
        '{"id": "bulk-00000", "lon": 151.0, "lat": -33.9, "ts": %d}' % (ts0 - 1),      # 1 stale
        '{"id": "bulk-00001", "lon": 10.0, "lat": 10.0, "ts": %d}' % (ts0 + 1000),    # 2 implausible
        '',                                                                            # 3 blank
        '{"id": "mixed-new", "lon": 151.1, "lat": -33.8, "ts": %d}\r' % ts0,          # 4 applied
        'not json',                                                                    # 5
        '{"lon": 151.0, "lat": -33.9}',                                                # 6 no id
        '{"id": "mixed-x", "lon": "151", "lat": -33.9}',                              # 7 type
        '{"id": "mixed-y", "lon": 151.0, "lat": 99}',                                 # 8 range
        '   ',                                                                         # 9 blank
        '[1, 2]',                                                                      # 10 array
        '{"id": "mixed-z", "lon": 151.0, "lat": -33.9, "status": "flying"}',          # 11 status
        '{"id": "bulk-00002", "lon": %r, "lat": %r, "ts": %d}' % (
            lines[2]["lon"] + 0.001, lines[2]["lat"], ts0 + 60000),                   # 12 ok
        '{"id": "mixed-w", "lon": 151.0, "lat": -33.9, "ts": %d}' % (now_ms() + 86400000),  # 13
        '{"id": "", "lon": 151.0, "lat": -33.9}',                                     # 14 empty id
    ]
    r = c.req("POST", "/v1/positions", "\n".join(mixed), ctype="application/x-ndjson")
    j = expect_json(r, 200, "POST a mixed NDJSON batch")
    if j:
        lines_err = [(e.get("line"), e.get("status")) for e in j.get("errors", [])]
        want_err = [(5, 400), (6, 400), (7, 400), (8, 400), (10, 400), (11, 400), (13, 400),
                    (14, 400)]
        check(j.get("lines") == 12 and j.get("applied") == 2 and j.get("stale") == 1
              and j.get("implausible") == 1 and j.get("relocated") == 0 and j.get("failed") == 8
              and lines_err == want_err and all(isinstance(e.get("detail"), str) and e["detail"]
                                                for e in j["errors"]),
              "mixed batch counts and per-line errors (line numbers count blank lines): %s" % r)
        det = {e["line"]: e["detail"] for e in j.get("errors", [])}
        check("id is required" in det.get(6, "") and "lon must be a number" in det.get(7, "")
              and "latitude" in det.get(8, "") and "future" in det.get(13, ""),
              "per-line details say what is wrong: %r" % det)
    model.apply("mixed-new", {"lon": 151.1, "lat": -33.8, "ts": ts0})
    model.apply("bulk-00002", {"lon": lines[2]["lon"] + 0.001, "lat": lines[2]["lat"],
                               "ts": ts0 + 60000})
    g = expect_json(c.get("/v1/vehicles/bulk-00001"), 200, "GET bulk-00001")
    check(g and g["flagged"] == 1 and g["lon"] != 10.0, "the implausible line flagged bulk-00001")
    # more than 100 errors: all counted, 100 listed
    r = c.req("POST", "/v1/positions", "{}\n" * 150, ctype="application/x-ndjson")
    j = expect_json(r, 200, "POST 150 bad lines")
    check(j and j["failed"] == 150 and j["lines"] == 150 and len(j["errors"]) == 100
          and [e["line"] for e in j["errors"]] == list(range(1, 101)),
          "150 bad lines: failed 150, the first 100 listed: %s" % r)
    r = c.req("POST", "/v1/positions", b"", ctype="application/x-ndjson")
    j = expect_json(r, 200, "POST an empty batch")
    check(j == {"lines": 0, "applied": 0, "stale": 0, "implausible": 0, "relocated": 0,
                "failed": 0, "errors": []}, "an empty batch: %s" % r)
    r = c.req("POST", "/v1/positions", b"\n\n  \n", ctype="application/x-ndjson")
    j = expect_json(r, 200, "POST blank lines")
    check(j and j["lines"] == 0 and j["failed"] == 0, "blank lines are not lines: %s" % r)
    expect_problem(c.req("POST", "/v1/positions", ndjson(lines[:1]), ctype="application/xml"), 415,
                   "NDJSON as application/xml")
    # a chunked upload, as streaming clients send it
    chunked_lines = [{"id": "chunk-%04d" % i, "lon": 150.0 + i * 1e-4, "lat": -34.0,
                      "ts": ts0} for i in range(1000)]
    data = ndjson(chunked_lines).encode()
    r = c.req("POST", "/v1/positions", (data[i:i + 4000] for i in range(0, len(data), 4000)),
              ctype="application/x-ndjson")     # an iterable: http.client sends it chunked
    j = expect_json(r, 200, "a chunked NDJSON upload")
    check(j and j["lines"] == 1000 and j["applied"] == 1000, "a chunked upload of 1000 lines: %s"
          % r)
    for l in chunked_lines:
        model.apply(l["id"], l)
    # exactly 32 MiB: accepted
    first = json.dumps({"id": "limit-car", "lon": 150.5, "lat": -34.5, "ts": ts0}) + "\n"
    r = c.req("POST", "/v1/positions", first + " " * (NDJSON_LIMIT - len(first)),
              ctype="application/x-ndjson")
    j = expect_json(r, 200, "a batch of exactly 32 MiB")
    check(j and j["lines"] == 1 and j["applied"] == 1, "32 MiB exactly is accepted: %s" % r)
    model.apply("limit-car", {"lon": 150.5, "lat": -34.5, "ts": ts0})
    # 32 MiB + 1
    k = Raw(port)
    k.send(("POST /v1/positions HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            "Content-Length: %d\r\n\r\n" % (NDJSON_LIMIT + 1)).encode())
    try:
        k.send(ndjson(lines[:3000]).encode()[:1 << 18])
    except OSError:
        pass
    try:
        status, hd, b = k.response()
        r = Reply("POST", "/v1/positions (32 MiB + 1)", status, hd, b)
    except (EOFError, OSError) as e:
        r = Reply("POST", "/v1/positions (32 MiB + 1)", None, {}, repr(e))
    expect_problem(r, 413, "POST /v1/positions of 32 MiB + 1", str(NDJSON_LIMIT))
    k.close()
    healthy(port, "after the 32 MiB + 1 batch")
    # metrics: trips and single updates too
    b = metric(c, "fleetd_commands_total", "vehicle.update")
    bt = metric(c, "fleetd_commands_total", "trip.start")
    put(c, model, "metric-car", {"lon": 12.0, "lat": 41.0, "ts": now_ms() - 5000}, "PUT metric-car")
    c.req("POST", "/v1/trips", {"vehicle": "metric-car", "id": "metric-trip",
                                "ts": now_ms() - 4000})
    model.starts.append((None, 12.0, 41.0))
    c.req("POST", "/v1/trips/metric-trip/end", {})
    a = metric(c, "fleetd_commands_total", "vehicle.update")
    at = metric(c, "fleetd_commands_total", "trip.start")
    ae = metric(c, "fleetd_commands_total", "trip.end")
    check(a == b + 1 and at == bt + 1 and ae is not None and ae >= 1,
          "metrics count one HTTP PUT and one trip start: update %r -> %r, start %r -> %r, end %r"
          % (b, a, bt, at, ae))


def test_areas(c, model):
    t_req = now_ms()
    for level in (6, 4, 7):
        url = "/v1/areas?level=%d" % level if level != 6 else "/v1/areas?level=6"
        r = c.get(url)
        j = expect_json(r, 200, "GET " + url, ctype=CT_GEO)
        if not j:
            continue
        check(j.get("type") == "FeatureCollection" and j.get("truncated") is False,
              "%s: a FeatureCollection, not truncated: %r" % (url, short(r.body, 120)))
        got = {}
        bad_geom = []
        for f in j.get("features", []):
            p = f.get("properties", {})
            got[p.get("cell")] = p
            cb = cell_bounds(p.get("cell", "0" * level))
            ring = f.get("geometry", {}).get("coordinates", [[]])[0]
            want_ring = [[cb[0], cb[1]], [cb[2], cb[1]], [cb[2], cb[3]], [cb[0], cb[3]],
                         [cb[0], cb[1]]]
            if f.get("type") != "Feature" or f["geometry"].get("type") != "Polygon" or \
                    len(ring) != 5 or any(abs(a[0] - b[0]) > 1e-6 or abs(a[1] - b[1]) > 1e-6
                                          for a, b in zip(ring, want_ring)):
                bad_geom.append((p.get("cell"), ring))
        check(not bad_geom, "%s: every feature is its cell's rectangle: %r" % (url, bad_geom[:2]))
        want = {}
        for v in model.v.values():
            cnt = want.setdefault(geohash(v.lon, v.lat, level),
                                  {"available": 0, "busy": 0, "offline": 0, "demand": 0})
            cnt[v.status] += 1
        since = t_req - 3600 * 1000
        for ts, lon, lat in model.starts:
            if ts is None or ts >= since + 60000:
                want.setdefault(geohash(lon, lat, level),
                                {"available": 0, "busy": 0, "offline": 0, "demand": 0})["demand"] += 1
        diff = []
        for cell in set(want) | set(got):
            w, g = want.get(cell), got.get(cell)
            wv = dict(w, supply=w["available"], cell=cell) if w else None
            if wv != g:
                diff.append((cell, g, wv))
        check(not diff, "%s: %d cells, geohash count %d cells; differ %r"
              % (url, len(got), len(want), diff[:4]))
    # the window: a trip started two hours ago counts only in a wider window
    old = now_ms() - 2 * 3600 * 1000
    put(c, model, "old-trip-car", {"lon": 8.5, "lat": 47.37, "ts": old}, "PUT old-trip-car")
    expect_json(c.req("POST", "/v1/trips", {"vehicle": "old-trip-car", "ts": old + 1000}), 201,
                "start a trip two hours ago")
    cell = geohash(8.5, 47.37, 6)
    for q, want in (("", 0), ("&window=10800", 1)):
        j = expect_json(c.get("/v1/areas?level=6&bbox=8.49,47.36,8.51,47.38" + q), 200,
                        "areas around old-trip-car" + q, ctype=CT_GEO)
        p = {f["properties"]["cell"]: f["properties"] for f in (j or {}).get("features", [])}
        check(p.get(cell, {}).get("demand") == want and p.get(cell, {}).get("supply") == 1,
              "areas%s: cell %s demand %r (want %d), supply 1: %r" % (q, cell, p.get(cell, {}).get(
                  "demand"), want, p))
    model.starts.append((old + 1000, 8.5, 47.37))
    # bbox: only cells meeting the box
    box = (-74.0, 40.72, -73.97, 40.76)
    j = expect_json(c.get("/v1/areas?level=6&bbox=%r,%r,%r,%r" % box), 200, "areas with a bbox",
                    ctype=CT_GEO)
    cells = {f["properties"]["cell"] for f in (j or {}).get("features", [])}
    want = {geohash(v.lon, v.lat, 6) for v in model.v.values()}
    want = {g for g in want if box_meets(box, cell_bounds(g))}
    check(j and want <= cells and all(box_meets(box, cell_bounds(g)) for g in cells),
          "areas ?bbox: the cells meeting the box (%d, want %d)" % (len(cells), len(want)))
    box = (179.5, -18.0, -179.5, -16.0)
    j = expect_json(c.get("/v1/areas?level=5&bbox=%r,%r,%r,%r" % box), 200,
                    "areas with a bbox across the antimeridian", ctype=CT_GEO)
    got = {f["properties"]["cell"]: f["properties"]["available"] + f["properties"]["busy"]
           + f["properties"]["offline"] for f in (j or {}).get("features", [])}
    want = {}
    for v in model.v.values():
        g = geohash(v.lon, v.lat, 5)
        if box_meets(box, cell_bounds(g)):
            want[g] = want.get(g, 0) + 1
    check(j and got == want and len(want) >= 2,
          "areas across the antimeridian: %r, want %r" % (got, want))
    for q in ("level=3", "level=8", "level=x", "level=", "window=0", "window=604801",
              "bbox=1,2,3", "bbox=0,10,1,5"):
        expect_problem(c.get("/v1/areas?" + q), 400, "GET /v1/areas?" + q)


# ---- server-sent events ----

class SSE:
    def __init__(self, port, query, token=None):
        self.raw = Raw(port)
        self.opened = time.time()
        hdr = "GET /v1/events%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n" % query
        if token:
            hdr += "Authorization: Bearer %s\r\n" % token
        self.raw.send((hdr + "\r\n").encode())
        self.status, self.headers = self.raw.head()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.data = b""
        self.body = b""
        if self.status == 200:
            self.pump(time.time() + 0.3, until=b"\n\n")

    def pump(self, deadline, until=None):
        """Reads until the deadline (or until `until` has been seen); what
        has already arrived is read even when the deadline has passed."""
        pump_all([self], deadline, until)

    def _decode(self):
        if not self.chunked:
            self.body += self.raw.buf
            self.raw.buf = b""
            return
        b = self.raw.buf
        while b"\r\n" in b:
            i = b.index(b"\r\n")
            n = int(b[:i].split(b";")[0] or b"0", 16)
            if len(b) < i + 2 + n + 2:
                break
            self.body += b[i + 2:i + 2 + n]
            b = b[i + 2 + n + 2:]
        self.raw.buf = b

    def events(self):
        out = []
        text = self.body.decode("utf-8", "replace")
        for block in text.split("\n\n")[:-1]:
            ev, data = "message", []
            for line in block.split("\n"):
                if line.startswith("event:"):
                    ev = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
            if data:
                try:
                    out.append((ev, json.loads("\n".join(data))))
                except ValueError:
                    out.append((ev, "\n".join(data)))
        return out

    def close(self):
        self.raw.close()


def pump_all(streams, deadline, until=None):
    live = list(streams)
    while live:
        for st in list(live):
            st._decode()
            if until is not None and until in st.body:
                live.remove(st)
        if not live:
            return
        left = max(0.0, deadline - time.time())
        ready, _, _ = select.select([st.raw.s for st in live], [], [], left)
        if not ready:
            return
        for st in list(live):
            if st.raw.s in ready:
                try:
                    d = st.raw.s.recv(65536)
                except OSError:
                    d = b""
                if not d:
                    live.remove(st)
                st.raw.buf += d


def test_sse(c, rc, model, port):
    for q, detail in (("?types=bogus", "types"), ("?types=", "types"),
                      ("?types=moves,,trips", "types"), ("?rate=0", "rate"),
                      ("?rate=10001", "rate"), ("?rate=abc", "rate"), ("?rate=5.5", "rate"),
                      ("?bbox=1,2,3", "bbox")):
        expect_problem(c.get("/v1/events" + q), 400, "GET /v1/events" + q, detail)
    t = now_ms() - 400000
    lon0, lat0 = 14.40, 50.08
    put(c, model, "sse-car", {"lon": lon0, "lat": lat0, "ts": t}, "PUT sse-car")
    put(c, model, "sse-out", {"lon": 16.37, "lat": 48.21, "ts": t}, "PUT sse-out")
    a = SSE(port, "?types=moves,trips&rate=5")
    b = SSE(port, "?types=stats")
    box = (14.3, 50.0, 14.6, 50.2)
    cc = SSE(port, "?types=moves&rate=10000&bbox=%r,%r,%r,%r" % box)
    for s, what in ((a, "moves,trips rate 5"), (b, "stats"), (cc, "moves rate 10000 bbox")):
        check(s.status == 200 and s.headers.get("content-type") == "text/event-stream",
              "GET /v1/events (%s): 200 text/event-stream, got %s %r" % (what, s.status, s.headers))
    r = c.req("POST", "/v1/trips", {"vehicle": "sse-car", "id": "sse-trip", "ts": t})
    expect_json(r, 201, "start sse-trip")
    model.starts.append((t, lon0, lat0))
    # 200 moves of 10 m a second: 100 over HTTP, 100 over RESP
    lon, lat, ts = lon0, lat0, t
    t_send = time.time()
    sent = []
    for k in range(100):
        lon += 0.00014
        ts += 1000
        body = {"lon": lon, "lat": lat, "ts": ts}
        r = c.req("PUT", "/v1/vehicles/sse-car/position", body)
        if r.status == 200 and (r.json() or {}).get("outcome") == "applied":
            sent.append((lon, lat, ts))
    cmds = []
    for k in range(100):
        lon += 0.00014
        ts += 1000
        cmds.append(["VEHICLE.UPDATE", "sse-car", repr(lon), repr(lat), "TS", ts])
        sent.append((lon, lat, ts))
    replies = rc.pipe(cmds)
    check(all(x == "OK" for x in replies) and len(sent) == 200,
          "200 moves applied (100 HTTP, 100 RESP): %d, RESP %r" % (len(sent), set(replies)))
    model.apply("sse-car", {"lon": lon, "lat": lat, "ts": ts})
    stale = rc("VEHICLE.UPDATE", "sse-car", repr(lon - 0.001), repr(lat), "TS", ts - 500)
    far = c.req("PUT", "/v1/vehicles/sse-car/position", {"lon": lon + 0.1, "lat": lat, "ts": ts + 1})
    check(stale == "STALE" and (far.json() or {}).get("outcome") == "implausible",
          "a stale and an implausible ping for sse-car: %r %s" % (stale, far))
    for k in range(5):
        rc("VEHICLE.UPDATE", "sse-out", 16.37 + 0.0001 * (k + 1), 48.21, "TS", t + 1000 * (k + 1))
    model.apply("sse-out", {"lon": 16.37 + 0.0005, "lat": 48.21})
    r = c.req("POST", "/v1/trips/sse-trip/end", {})
    expect_json(r, 200, "end sse-trip")
    send_s = time.time() - t_send
    deadline = time.time() + 1.5
    pump_all([a, b, cc], deadline)
    pump_all([a, b, cc], max(deadline, b.opened + 2.4))
    end = time.time()
    ea, eb, ec = a.events(), b.events(), cc.events()
    moves = [d for e, d in ea if e == "move"]
    secs = end - a.opened
    cap = 5 * secs + 5 + 1
    check(1 <= len(moves) <= cap,
          "rate=5: %d move events in %.2f s (200 moves sent in %.2f s), at most %.1f"
          % (len(moves), secs, send_s, cap))
    check(all(isinstance(d, dict) and d.get("id") == "sse-car" and
              {"id", "lon", "lat", "status", "ts", "speed", "heading"} <= set(d) for d in moves),
          "move events carry the vehicle: %r" % moves[:2])
    started = [d for e, d in ea if e == "trip_started"]
    ended = [d for e, d in ea if e == "trip_ended"]
    check(len(started) == 1 and started[0].get("id") == "sse-trip"
          and started[0].get("state") == "running" and "polyline" not in started[0],
          "one trip_started for sse-trip: %r" % started)
    check(len(ended) == 1 and ended[0].get("id") == "sse-trip" and ended[0].get("state") == "ended"
          and ended[0].get("pings") == 200,
          "one trip_ended for sse-trip (200 pings): %r" % ended)
    check(not [e for e, d in ea if e not in ("move", "trip_started", "trip_ended")],
          "types=moves,trips gets nothing else: %r" % sorted({e for e, d in ea}))
    cm = [d for e, d in ec if e == "move"]
    check(len(cm) == 200 and [(d["lon"], d["lat"], d["ts"]) for d in cm] ==
          [(round(x, 7), round(y, 7), z) for x, y, z in sent],
          "rate=10000 with a bbox: all 200 moves (HTTP and RESP) in order, none from outside, "
          "none for the stale or implausible ping: "
          "%d events, ids %r" % (len(cm), sorted({d.get("id") for d in cm})))
    check(not [e for e, d in ec if e != "move"], "types=moves gets only moves")
    stats = [d for e, d in eb if e == "stats"]
    bsecs = end - b.opened
    check(int(bsecs) - 1 <= len(stats) <= int(bsecs) + 1 and len(stats) >= 1,
          "stats once a second: %d events in %.2f s" % (len(stats), bsecs))
    check(not [e for e, d in eb if e != "stats"], "types=stats gets only stats")
    if stats:
        s = stats[-1]
        keys = {"vehicles", "trips_running", "updates_per_s", "p50_us", "p99_us", "clients",
                "http_clients", "sse_clients", "ts"}
        check(isinstance(s, dict) and keys <= set(s) and s["vehicles"] == len(model.v)
              and s["sse_clients"] >= 3 and abs(s["ts"] - now_ms()) < 5000,
              "a stats event: %r (model %d vehicles)" % (s, len(model.v)))
    j = expect_json(c.get("/v1/stats"), 200, "GET /v1/stats")
    check(j and j.get("vehicles") == len(model.v) and j.get("sse_clients", 0) >= 3,
          "/v1/stats: %r" % j)
    for s in (a, b, cc):
        s.close()


# ---- abuse ----

def test_abuse(port, rnd):
    # a slow client: one byte every 100 ms, meanwhile others are served
    slow_out = {}

    def slow():
        try:
            k = Raw(port)
            req = raw_request("GET", "/healthz")
            for i in range(12):
                k.send(req[i:i + 1])
                time.sleep(0.1)
            k.send(req[12:])
            slow_out["r"] = k.response()
            k.close()
        except Exception as e:     # noqa: BLE001
            slow_out["r"] = e
    th = threading.Thread(target=slow)
    th.start()
    # half-sent requests
    for data, what in ((b"GET /healthz HTTP/1.1\r\nHo", "headers cut"),
                       (b"PUT /v1/vehicles/half/position HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"lon\"",
                        "body cut"),
                       (b"POST /v1/positions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                        b"\r\n10\r\n{\"id\":", "chunk cut")):
        k = Raw(port)
        k.send(data)
        k.close()
        healthy(port, "a half-sent request (%s)" % what)
    # garbage
    for i, blob in enumerate([b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(500),
                              bytes(rnd.getrandbits(8) for _ in range(4096)),
                              b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/9.9\r\n\r\n",
                              b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                              b"POST /v1/positions HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
                              b"\x00" * 1000 + b"\r\n\r\n"]):
        k = Raw(port, timeout=2)
        try:
            k.send(blob)
            st = k.response()[0]
        except (EOFError, OSError):
            st = None
        k.close()
        check(st is None or 400 <= st < 600, "garbage #%d answered %r" % (i, st))
        healthy(port, "garbage #%d" % i)
    # a 100 KB header
    k = Raw(port)
    k.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
    try:
        st, hd, body = k.response()
    except (EOFError, OSError) as e:
        st, body = None, repr(e)
    check(st in (400, 413, 431) and k.closed_by_peer(2.0),
          "a 100 KB header: 4xx and closed, got %r %r" % (st, short(body, 100)))
    k.close()
    healthy(port, "a 100 KB header")
    # 300 idle keep-alive connections
    conns = []
    try:
        for i in range(300):
            conns.append(Raw(port))
        for k in conns:
            k.send(raw_request("GET", "/healthz"))
        ok = sum(1 for k in conns if k.response()[0] == 200)
        check(ok == 300, "300 keep-alive connections each answered: %d" % ok)
        healthy(port, "300 idle keep-alive connections", within=1.0)
        time.sleep(1.1)
        c = Http(port)
        j = expect_json(c.get("/v1/stats"), 200, "/v1/stats with 300 idle connections")
        check(j and j.get("http_clients", 0) >= 300, "http_clients counts them: %r"
              % (j or {}).get("http_clients"))
        c.close()
        ok = 0
        for k in conns[::30]:
            k.send(raw_request("GET", "/readyz"))
            ok += k.response()[0] == 200
        check(ok == 10, "idle keep-alive connections still serve: %d of 10" % ok)
    finally:
        for k in conns:
            k.close()
    th.join(10)
    r = slow_out.get("r")
    check(isinstance(r, tuple) and r[0] == 200 and json.loads(r[2]) == {"status": "ok"},
          "the slow client (one byte per 100 ms) got its answer: %r" % (r,))
    # many pipelined requests in one write
    k = Raw(port)
    k.send(raw_request("GET", "/healthz") * 50)
    got = [k.response()[0] for _ in range(50)]
    k.close()
    check(got == [200] * 50, "50 pipelined requests answered in order: %r" % set(got))
    healthy(port, "the abuse")


# ---- durability and requirepass ----

class Proc:
    def __init__(self, datadir, *extra):
        self.datadir, self.extra, self.proc = datadir, list(extra), None
        self.n = 0

    def start(self):
        self.n += 1
        self.port, self.http = fleetlib.free_port(), fleetlib.free_port()
        self.logpath = os.path.join(WORK, "%s-%d.log" % (os.path.basename(self.datadir), self.n))
        with open(self.logpath, "w") as log:
            self.proc = subprocess.Popen([fleetlib.FLEETD, "--port", str(self.port),
                                          "--http-port", str(self.http), "--dir",
                                          self.datadir] + self.extra,
                                         stdout=log, stderr=subprocess.STDOUT)
        fleetlib._procs.append(self.proc)
        fleetlib.wait_port(self.port, self.proc, 60)
        fleetlib.wait_port(self.http, self.proc, 60)
        return self

    def stop(self, sig=signal.SIGTERM):
        return fleetlib.stop_process(self.proc, sig, 60)

    def alive(self):
        return self.proc.poll() is None


def test_big_list():
    """A 60,000-vehicle page is written in slices between other clients'
    work: it comes chunked and whole, PINGs on RESP are answered while it
    is being written, and vehicles deleted or moved under it neither break
    the page nor the server."""
    p = Proc(os.path.join(WORK, "biglist")).start()
    rc = Resp(p.port)
    n = 60000
    t = now_ms() - 60000
    cmds = [("VEHICLE.UPDATE", "big-%05d" % i, "%.6f" % (-74.0 + (i % 300) * 0.0005),
             "%.6f" % (40.70 + (i // 300) * 0.0005), "TS", t) for i in range(n)]
    for k in range(0, n, 5000):
        check(all(r == "OK" for r in rc.pipe(cmds[k:k + 5000])), "put in vehicles %d.." % k)
    path = "/v1/vehicles?format=compact&limit=200000"
    raw = Raw(p.http, timeout=30)
    raw.send(raw_request("GET", path))
    status, hd = raw.head()
    check(status == 200 and hd.get("transfer-encoding", "").lower() == "chunked",
          "a big page is sent chunked: %r %r" % (status, hd))
    # While it is written: PINGs, and the fleet changing under it.
    pings = []
    for i in range(20):
        t0 = time.perf_counter()
        check(rc("PING") == "PONG", "PING during the big page")
        pings.append(time.perf_counter() - t0)
    rc.pipe([("VEHICLE.DEL", "big-%05d" % i) for i in range(0, n, 7)])
    rc.pipe([("VEHICLE.UPDATE", "big-%05d" % i, "-73.9", "40.9", "TS", t + 1000) for i in range(1, n, 11)])
    raw.buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + raw.buf
    _, _, body = raw.response()
    raw.close()
    try:
        page = json.loads(body)
    except ValueError as e:
        page = None
        check(False, "the big page is whole JSON: %s (%d bytes, ends %r)" % (e, len(body), body[-60:]))
    if page:
        ids = [row[0] for row in page["vehicles"]]
        check(page["next_cursor"] is None and n - n // 7 - 1 <= len(ids) <= n + n // 11 + 1,
              "the page lists the fleet as it went (%d rows)" % len(ids))
        check(len(set(ids)) >= len(ids) - (n // 11 + 1), "only moved vehicles may appear twice")
    check(max(pings) < 1.0, "PINGs answered while the page was written (slowest %.1f ms)" % (max(pings) * 1000))
    # Asked again, complete and in index order.
    c = Http(p.http)
    r = c.get(path)
    rows = r.json()["vehicles"] if r.status == 200 else []
    gone = set(range(0, n, 7)) - set(range(1, n, 11))  # a move of a deleted one re-creates it
    want = n - len(gone)
    check(len(rows) == want and len({x[0] for x in rows}) == want,
          "the page after the changes: %d rows, want %d" % (len(rows), want))
    c.close()
    rc.close()
    check(p.alive(), "the server is alive after the big page")
    check(p.stop() == 0, "exits 0 on SIGTERM")


def test_durability():
    p = Proc(os.path.join(WORK, "durable"), "--fsync", "always").start()
    c = Http(p.http)
    model = Model()
    t = now_ms() - 120000
    put(c, model, "dur-car", {"lon": -0.1276, "lat": 51.5072, "ts": t, "speed": 20.0,
                              "heading": 45.0, "fleet": "london", "status": "busy"},
        "durable PUT")
    j = expect_json(c.req("POST", "/v1/trips", {"vehicle": "dur-car", "id": "dur-trip", "ts": t}),
                    201, "durable POST /v1/trips")
    lon, lat = -0.1276, 51.5072
    for k in range(3):
        lon, lat = offset(lon, lat, 100, 100)
        put(c, model, "dur-car", {"lon": lon, "lat": lat, "ts": t + 10000 * (k + 1)},
            "durable move %d" % k)
    r = c.req("POST", "/v1/positions", ndjson({"id": "dur-%03d" % i, "lon": 2.0 + i * 0.001,
                                               "lat": 41.0, "ts": t} for i in range(100)),
              ctype="application/x-ndjson")
    expect_json(r, 200, "durable NDJSON batch")
    r = c.req("PUT", "/v1/vehicles/dur-last/position", {"lon": 3.0, "lat": 42.0, "ts": t})
    expect_json(r, 200, "the last PUT before the kill")
    # pipelined writes wait for the log one after the other, in order
    k = Raw(p.http)
    k.send(b"".join(raw_request("PUT", "/v1/vehicles/dur-pipe/position",
                                json.dumps({"lon": 4.0 + 0.0001 * i, "lat": 43.0,
                                            "ts": t + 1000 * i}).encode(),
                                (("Content-Type", CT_JSON),)) for i in range(1, 4))
           + raw_request("GET", "/v1/vehicles/dur-pipe"))
    got = [k.response() for _ in range(4)]
    k.close()
    check([g[0] for g in got] == [200] * 4 and json.loads(got[3][2]).get("ts") == t + 3000
          and [json.loads(g[2]).get("outcome") for g in got[:3]] == ["applied"] * 3,
          "three pipelined PUTs and a GET under --fsync always: %r"
          % [(g[0], short(g[2], 60)) for g in got])
    # clients that leave before their write is durable
    for i in range(30):
        k = Raw(p.http)
        k.send(raw_request("PUT", "/v1/vehicles/dur-gone-%02d/position" % i,
                           json.dumps({"lon": 5.0, "lat": 44.0, "ts": t}).encode(),
                           (("Content-Type", CT_JSON),)))
        k.close()
    healthy(p.http, "30 clients leaving before their answer")
    v_before = expect_json(c.get("/v1/vehicles/dur-car"), 200, "GET dur-car")
    t_before = expect_json(c.get("/v1/trips/dur-trip"), 200, "GET dur-trip")
    c.close()
    p.proc.send_signal(signal.SIGKILL)
    p.proc.wait()
    p.start()
    c = Http(p.http)
    r = c.get("/readyz")
    check(r.status == 200, "readyz after the restart: %s" % r)
    check(expect_json(c.get("/v1/vehicles/dur-car"), 200, "GET dur-car after SIGKILL") == v_before,
          "dur-car survives SIGKILL unchanged")
    check(expect_json(c.get("/v1/trips/dur-trip"), 200, "GET dur-trip after SIGKILL") == t_before,
          "dur-trip survives SIGKILL unchanged: %r" % t_before)
    j = expect_json(c.get("/v1/vehicles?bbox=1.9,40.9,2.2,41.1&limit=1000"), 200,
                    "the batch after SIGKILL")
    check(j and len(j["vehicles"]) == 100, "all 100 batch vehicles survive: %d"
          % len((j or {}).get("vehicles", [])))
    check(expect_json(c.get("/v1/vehicles/dur-last"), 200, "GET dur-last after SIGKILL") is not None,
          "the last acknowledged PUT survives SIGKILL")
    c.close()
    check(p.stop() == 0, "durable server exits 0 on SIGTERM")


def test_requirepass():
    p = Proc(os.path.join(WORK, "auth"), "--requirepass", "secret").start()
    anon = Http(p.http)
    for path in ("/v1/stats", "/v1/vehicles", "/v1/vehicles/x", "/v1/events"):
        r = anon.get(path)
        expect_problem(r, 401, "GET %s without a token" % path)
    r = anon.get("/v1/stats")
    check("www-authenticate" in r.headers and "bearer" in r.headers["www-authenticate"].lower(),
          "a 401 carries WWW-Authenticate: Bearer (RFC 9110 15.5.2): %r" % r.headers)
    r = anon.req("PUT", "/v1/vehicles/auth-car/position", {"lon": 1.0, "lat": 2.0})
    expect_problem(r, 401, "PUT without a token")
    for tok in ("wrong", "secret2", "", "secre"):
        r = anon.get("/v1/stats", headers={"Authorization": "Bearer " + tok})
        expect_problem(r, 401, "GET /v1/stats with Bearer %r" % tok)
    for h in ("Basic c2VjcmV0", "secret", "Bearer  secret"):
        expect_problem(anon.get("/v1/stats", headers={"Authorization": h}), 401,
                       "GET /v1/stats with Authorization %r" % h)
    for path in ("/healthz", "/readyz"):
        r = anon.get(path)
        check(r.status == 200, "%s stays open under requirepass: %s" % (path, r))
    c = Http(p.http, token="secret")
    j = expect_json(c.get("/v1/stats"), 200, "GET /v1/stats with the token")
    check(j and j.get("vehicles") == 0, "nothing was written without the token: %r" % j)
    r = c.req("PUT", "/v1/vehicles/auth-car/position", {"lon": 1.0, "lat": 2.0})
    expect_json(r, 200, "PUT with the token")
    expect_json(c.get("/v1/vehicles/auth-car"), 200, "GET with the token")
    s = SSE(p.http, "?types=stats", token="secret")
    check(s.status == 200, "an event stream with the token: %s" % s.status)
    s2 = SSE(p.http, "?types=moves", token="secret")
    rc = Resp(p.port, "secret")
    m = resp_vehicle(rc, "auth-car")
    check(isinstance(m, dict) and m.get("lon") == 1.0, "RESP (after AUTH) sees it: %r" % m)
    rc.close()
    anon.close()
    c.close()
    # SIGTERM with two event streams open (one waiting for events): they end
    check(p.stop() == 0, "requirepass server exits 0 on SIGTERM with event streams open")
    for st, what in ((s, "stats"), (s2, "moves")):
        check(st.raw.closed_by_peer(2.0), "the %s stream ends at shutdown" % what)
        st.close()


# ================================================================ main

MAIN = None


def section(fn, *args):
    """Runs one part; an exception is one failure, and the rest still run."""
    t0 = time.time()
    try:
        return fn(*args)
    except Exception:
        import traceback
        traceback.print_exc()
        check(False, "%s raised an exception (see above)" % fn.__name__)
    finally:
        if os.environ.get("HTTP_TEST_TIMES"):
            print("http: %s %.2f s" % (fn.__name__, time.time() - t0))


def main():
    global MAIN
    t_start = time.time()
    rnd = random.Random(SEED)
    try:
        MAIN = Proc(os.path.join(WORK, "main")).start()
        c = Http(MAIN.http)
        rc = Resp(MAIN.port)
        model = Model()
        section(test_basics, c, MAIN)
        zones = section(load_fleet, c, model, rnd, now_ms() - 7200000)
        section(test_position, c, rc, model, MAIN.http)
        section(test_list, c, model)
        section(test_nearby, c, rc, model, rnd)
        section(test_within, c, model, zones)
        section(test_trips, c, rc, model)
        section(test_ndjson, c, model, MAIN.http, rnd)
        section(test_delete, c, rc, model)
        section(test_areas, c, model)
        section(test_sse, c, rc, model, MAIN.http)
        section(test_abuse, MAIN.http, rnd)
        check(MAIN.alive(), "the main server is alive at the end")
        rc.close()
        c.close()
        check(MAIN.stop() == 0, "the main server exits 0 on SIGTERM")
        section(test_durability)
        section(test_big_list)
        section(test_requirepass)
    finally:
        fleetlib._cleanup()
    print("http: seed %d, %.1f s%s" % (SEED, time.time() - t_start,
                                       ", %d idle reconnects" % Http.reconnects
                                       if Http.reconnects else ""))
    rc = res.finish()
    if rc == 0:
        shutil.rmtree(WORK, ignore_errors=True)
    else:       # keep the server logs, not the data directories
        for name in os.listdir(WORK):
            if os.path.isdir(os.path.join(WORK, name)):
                shutil.rmtree(os.path.join(WORK, name), ignore_errors=True)
        print("http: server logs kept in %s (HTTP_TEST_SEED=%d)" % (WORK, SEED))
    return rc


if __name__ == "__main__":
    sys.exit(main())

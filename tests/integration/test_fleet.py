"""test_fleet.py - VEHICLE.*, TRIP.* and AREA.* against a running fleetd.

1. Semantics, checked against a Python model and brute force over real data
   (../shared/data: AIS vessel tracks in New York harbour, one NYC taxi
   driver's trips, Chicago taxi pickups, a 1 Hz car trace from Munich):
   ping outcomes (OK, STALE, IMPLAUSIBLE, RELOCATED), trip distance, idle
   time, top speed and encoded polyline, NEARBY, WITHIN (antimeridian
   boxes too), VEHICLE.COUNT, AREA.SUPPLY / AREA.CELL against geohashes
   computed here, TRIP.LIST time filters, idle trips closing by themselves.
2. Bad input: each refused with a clear -ERR and nothing changed (replies,
   counts and the number of logged records compared before and after).
3. Durability: BGSAVE, more writes, SIGTERM, restart on the same --dir:
   every reply identical; garbage and half a record appended to the newest
   log segment are cut (loading_tail_cut_bytes) and nothing else changes;
   a flipped byte in a snapshot makes fleetd refuse to start.
4. Crash test: --fsync always, a client streams pings and trip commands
   (pipelined and not) while another thread SIGKILLs fleetd; after each
   restart the state must be the result of one prefix of the stream that
   contains every acknowledged command. Five rounds on one directory.

Plain python3; prints "fleet: N passed, N failed" and exits 1 on failure.
FLEET_TEST_SEED fixes the random choices (the seed is printed on failure).
"""
import csv
import json
import math
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

sys.dont_write_bytecode = True     # no __pycache__ in the tree
import fleetlib                     # noqa: E402
from fleetlib import Conn, encode   # noqa: E402
from fleetlib import (B32, RespError, box_meets, cell_bounds,  # noqa: E402
                      decode_polyline, geohash, in_box)
from fleetlib import parse_reply as _parse  # noqa: E402

res = fleetlib.Results("fleet")
DATA = os.environ.get("FLEET_DATA",
                      os.path.normpath(os.path.join(fleetlib.ROOT, "..", "shared", "data")))
SEED = int(os.environ.get("FLEET_TEST_SEED", str(int(time.time()) % 100000)))
WORK = tempfile.mkdtemp(prefix="fleetd-fleet-")

R_EARTH = 6371008.8        # mean Earth radius, as the trip distance uses
JITTER = 5.0               # trip-jitter-meters default
MAX_KMH = 300.0            # max-speed-kmh default
IDLE_KMH = 2.0             # idle below this reported speed
IDLE_WINDOW_MS = 60000     # without a speed: a stop this long is idle time
STATUSES = ("available", "busy", "offline")
LON_MAX, LAT_MAX = 180.0, 85.05112878   # GEOADD's range


def check(cond, what):
    res.check(bool(cond), what)
    return bool(cond)


def now_ms():
    return int(time.time() * 1000)


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def hav(lon1, lat1, lon2, lat2):
    """The server's haversine, operation for operation."""
    rad = math.pi / 180.0
    dlat = (lat2 - lat1) * rad
    dlon = (lon2 - lon1) * rad
    s1 = math.sin(dlat / 2)
    s2 = math.sin(dlon / 2)
    a = s1 * s1 + math.cos(lat1 * rad) * math.cos(lat2 * rad) * s2 * s2
    if a > 1:
        a = 1
    return 2 * R_EARTH * math.asin(math.sqrt(a))


# ---- geohash (the standard one, by bisection) and polylines ----

# ---- RESP ----

def parse(b):
    return _parse(b, 0)[0]


def as_map(v):
    if not isinstance(v, list):
        return None
    return {v[i]: v[i + 1] for i in range(0, len(v) - 1, 2)}


def arg(a):
    if isinstance(a, float):
        return repr(a)
    if isinstance(a, int):
        return str(a)
    return a


class Client:
    def __init__(self, port):
        self.conn = Conn(port, timeout=60)

    def close(self):
        self.conn.close()

    def raw(self, *args):
        return self.conn.call(*[arg(a) for a in args])

    def __call__(self, *args):
        return parse(self.raw(*args))

    def pipe_raw(self, cmds, chunk=400):
        out = []
        for i in range(0, len(cmds), chunk):
            part = cmds[i:i + chunk]
            self.conn.send_raw(b"".join(encode([arg(a) for a in c]) for c in part))
            out.extend(self.conn.read_reply() for _ in part)
        return out

    def pipe(self, cmds):
        return [parse(r) for r in self.pipe_raw(cmds)]

    def info(self, section):
        text = self("INFO", section)
        return dict(l.split(":", 1) for l in text.split("\r\n") if ":" in l)


# ---- fleetd processes on a directory of our choosing ----

class Fleetd:
    starts = 0

    def __init__(self, datadir, *extra):
        self.datadir, self.extra, self.proc, self.port = datadir, list(extra), None, None

    def argv(self, port):
        return [fleetlib.FLEETD, "--port", str(port), "--http-port", "0",
                "--dir", self.datadir] + self.extra

    def start(self, timeout=60):
        Fleetd.starts += 1
        self.logpath = os.path.join(WORK, "fleetd-%02d.log" % Fleetd.starts)
        self.port = fleetlib.free_port()
        with open(self.logpath, "w") as log:
            self.proc = subprocess.Popen(self.argv(self.port), stdout=log,
                                         stderr=subprocess.STDOUT)
        fleetlib._procs.append(self.proc)
        fleetlib.wait_port(self.port, self.proc, timeout)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=60):
        return fleetlib.stop_process(self.proc, sig, timeout)

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()


# ---- the model: what the server should hold ----

class TripM:
    def __init__(self, tid, v, start):
        self.id, self.vid, self.start = tid, v.id, start
        self.last = max(v.ts, start)
        self.end, self.state = None, "running"
        self.anchor = (v.lon, v.lat)
        self.path = [(v.lon, v.lat)]
        self.dist, self.idle, self.maxkmh = 0.0, 0, 0.0
        self.pings = self.flagged = 0
        self.last_move = self.idle_to = self.last

    def add_idle(self, frm, to):
        frm = max(frm, self.idle_to)
        if to > frm:
            self.idle += to - frm
            self.idle_to = to

    def feed(self, v, lon, lat, ts, speed, relocated):
        """Idle time: intervals reported below IDLE_KMH; without a reported
        speed, stops with no counted move for IDLE_WINDOW_MS or more."""
        prev = self.last
        dt = ts - prev if ts > prev else 0
        self.pings += 1
        self.last = max(self.last, ts)
        if relocated:
            self.anchor = (lon, lat)
            return
        d = hav(self.anchor[0], self.anchor[1], lon, lat)
        moved = d >= JITTER
        if moved:
            self.dist += d
            self.anchor = (lon, lat)
            self.path.append((lon, lat))
        if speed is None:
            step = hav(v.lon, v.lat, lon, lat)
            kmh = step / dt * 3600.0 if dt > 0 and step >= JITTER else 0.0
        else:
            kmh = f32(speed)
        if moved:
            self.last_move = ts
        if speed is not None:
            if f32(speed) < IDLE_KMH:
                self.add_idle(prev, ts)
        elif not moved and ts - self.last_move >= IDLE_WINDOW_MS:
            self.add_idle(self.last_move, ts)
        if kmh > self.maxkmh:
            self.maxkmh = f32(kmh)

    def finish(self, ts, reason):
        self.end = max(ts, self.last)
        self.state = reason


class Veh:
    def __init__(self, vid, lon, lat, ts, speed, heading, fleet, status):
        self.id, self.lon, self.lat, self.ts = vid, lon, lat, ts
        self.speed = f32(speed) if speed is not None else None
        self.heading = f32(heading) if heading is not None else None
        self.fleet, self.status = fleet, status or "available"
        self.flagged = self.suspect = 0
        self.trip = None


class Model:
    def __init__(self):
        self.v, self.trips, self.history = {}, {}, {}  # history: vid -> [TripM] oldest first
        self.ever = set()

    def ping(self, vid, lon, lat, ts, speed=None, heading=None, fleet=None, status=None):
        """Applies a ping as the server should; returns the expected reply."""
        self.ever.add(vid)
        v = self.v.get(vid)
        if v is None:
            self.v[vid] = Veh(vid, lon, lat, ts, speed, heading, fleet, status)
            return "OK"
        if ts <= v.ts:
            return "STALE"
        d = hav(v.lon, v.lat, lon, lat)
        hours = (ts - v.ts) / 3.6e6
        if d <= JITTER or d / 1000.0 <= MAX_KMH * hours:
            v.suspect, out = 0, "OK"
        else:
            v.flagged += 1
            if v.trip:
                v.trip.flagged += 1
            v.suspect += 1
            if v.suspect < 3:
                return "IMPLAUSIBLE"
            v.suspect, out = 0, "RELOCATED"
        if v.trip:
            v.trip.feed(v, lon, lat, ts, speed, out == "RELOCATED")
        v.lon, v.lat, v.ts = lon, lat, ts
        if speed is not None:
            v.speed = f32(speed)
        if heading is not None:
            v.heading = f32(heading)
        if fleet is not None:
            v.fleet = fleet
        if status is not None:
            v.status = status
        return out

    def start_trip(self, vid, tid, ts):
        t = TripM(tid, self.v[vid], ts)
        self.v[vid].trip = t
        self.trips[tid] = t
        return t

    def end_trip(self, vid, ts, reason="ended"):
        v = self.v[vid]
        t = v.trip
        t.finish(ts, reason)
        v.trip = None
        self.history.setdefault(vid, []).append(t)
        return t

    def delete(self, vid):
        v = self.v.get(vid)
        if v and v.trip:
            self.end_trip(vid, v.ts, "vehicle-deleted")
        return 1 if self.v.pop(vid, None) else 0


def ping_args(vid, lon, lat, ts=None, speed=None, heading=None, fleet=None, status=None):
    a = ["VEHICLE.UPDATE", vid, lon, lat]
    for k, val in (("TS", ts), ("SPEED", speed), ("HEADING", heading),
                   ("FLEET", fleet), ("STATUS", status)):
        if val is not None:
            a += [k, val]
    return a


def send_pings(c, model, pings, what):
    """pings: list of dicts for ping_args; compares every reply with the model."""
    replies = c.pipe([ping_args(**p) for p in pings])
    bad = []
    for p, r in zip(pings, replies):
        want = model.ping(p["vid"], p["lon"], p["lat"], p.get("ts"), p.get("speed"),
                          p.get("heading"), p.get("fleet"), p.get("status"))
        if r != want:
            bad.append((p["vid"], p.get("ts"), want, r))
    check(not bad, "%s: %d of %d ping replies differ from the model, first %r"
          % (what, len(bad), len(pings), bad[:3]))
    return replies


def check_vehicle(c, model, vid, what):
    g = c("VEHICLE.GET", vid)
    v = model.v.get(vid)
    if v is None:
        return check(isinstance(g, RespError) and g == "ERR unknown vehicle '%s'" % vid,
                     "%s: %s should be unknown, got %r" % (what, vid, g))
    m = as_map(g)
    want = {"id": vid, "lon": v.lon, "lat": v.lat, "ts": v.ts, "speed": v.speed,
            "heading": v.heading, "fleet": v.fleet, "status": v.status,
            "trip": v.trip.id if v.trip else None, "flagged": v.flagged}
    got = None
    if m:
        got = dict(m)
        for k in ("lon", "lat", "speed", "heading"):
            if got.get(k) is not None:
                got[k] = float(got[k])
    return check(got == want, "%s: VEHICLE.GET %s = %r, model %r" % (what, vid, got, want))


def check_trip(tm, m, what, with_path=True):
    """Compares a TRIP.GET / TRIP.END / TRIP.LIST entry with the model."""
    if not check(isinstance(m, dict), "%s: trip %s reply %r" % (what, tm.id, m)):
        return False
    end = tm.end if tm.end is not None else tm.last
    ok = True
    exact = {"id": tm.id, "vehicle": tm.vid, "state": tm.state, "start": tm.start,
             "end": tm.end, "last_ping": tm.last, "duration_ms": end - tm.start,
             "idle_ms": tm.idle, "pings": tm.pings, "flagged": tm.flagged,
             "points": len(tm.path)}
    got = {k: m.get(k) for k in exact}
    ok &= check(got == exact, "%s: trip %s fields %r, model %r" % (what, tm.id, got, exact))
    dist = float(m.get("distance_m", "nan"))
    ok &= check(abs(dist - tm.dist) <= 0.5,
                "%s: trip %s distance_m %r, haversine sum %.3f" % (what, tm.id, dist, tm.dist))
    spd = float(m.get("max_speed_kmh", "nan"))
    ok &= check(abs(spd - tm.maxkmh) <= 0.051 + 1e-6 * tm.maxkmh,
                "%s: trip %s max_speed_kmh %r, model %.3f" % (what, tm.id, spd, tm.maxkmh))
    if with_path:
        pts = decode_polyline(m.get("polyline") or "")
        good = len(pts) == len(tm.path) and all(
            abs(a[0] - b[0]) <= 1e-5 + 1e-9 and abs(a[1] - b[1]) <= 1e-5 + 1e-9
            for a, b in zip(pts, tm.path))
        ok &= check(good, "%s: trip %s polyline has %d points, model %d, first diff %r"
                    % (what, tm.id, len(pts), len(tm.path),
                       next(((a, b) for a, b in zip(pts, tm.path)
                             if abs(a[0] - b[0]) > 1e-5 or abs(a[1] - b[1]) > 1e-5), None)))
    return ok


# ---- real data ----

def data_path(*p):
    return os.path.join(DATA, *p)


def have_data():
    need = [data_path("tracks", "ais_ny_harbor_2020-06-30_first_hour.csv"),
            data_path("tracks", "car_munich_2014-09-10_1hz.json"),
            data_path("trips", "nyc_taxi_one_driver_2013-01.csv"),
            data_path("trips", "chicago_taxi_2013-2016.csv")]
    return all(os.path.exists(p) for p in need)


def load_ais():
    tracks = {}
    with open(data_path("tracks", "ais_ny_harbor_2020-06-30_first_hour.csv")) as f:
        for row in csv.DictReader(f):
            t = datetime.strptime(row["BaseDateTime"], "%Y-%m-%dT%H:%M:%S")
            ms = int(t.replace(tzinfo=timezone.utc).timestamp() * 1000)
            sog = float(row["SOG"]) if row["SOG"] else None
            hd = float(row["Heading"]) if row["Heading"] else None
            tracks.setdefault(row["MMSI"], []).append(
                (ms, float(row["LON"]), float(row["LAT"]),
                 sog * 1.852 if sog is not None and sog >= 0 else None,
                 hd if hd is not None and 0 <= hd <= 360 else None))
    for t in tracks.values():
        t.sort(key=lambda p: p[0])
    return tracks


def load_munich():
    with open(data_path("tracks", "car_munich_2014-09-10_1hz.json")) as f:
        rows = json.load(f)
    pts = []
    for r in rows:
        lon, lat = map(float, r["point"][len("POINT("):-1].split())
        t = datetime.strptime(r["time"], "%Y-%m-%d %H:%M:%S%z")
        pts.append((int(t.timestamp() * 1000), lon, lat))
    return pts


def load_nyc_driver():
    out = []
    with open(data_path("trips", "nyc_taxi_one_driver_2013-01.csv")) as f:
        for r in csv.reader(f):
            try:
                pu = datetime.strptime(r[5], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
                do = datetime.strptime(r[6], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
                c = [float(x) for x in r[10:14]]
            except (ValueError, IndexError):
                continue
            if any(abs(x) < 1 for x in c):
                continue
            out.append((int(pu.timestamp() * 1000), int(do.timestamp() * 1000), *c))
    out.sort()
    return out


def load_chicago(n):
    out = []
    with open(data_path("trips", "chicago_taxi_2013-2016.csv")) as f:
        for r in csv.DictReader(f):
            if r["pickup_latitude"] and r["pickup_longitude"]:
                out.append((float(r["pickup_longitude"]), float(r["pickup_latitude"]),
                            r["company"].strip() or None))
                if len(out) >= n:
                    break
    return out


# ---- brute-force queries ----

def brute_near(model, lon, lat, radius_m, status=None, fleet=None):
    out = []
    for v in model.v.values():
        if status and v.status != status or fleet and v.fleet != fleet:
            continue
        d = hav(lon, lat, v.lon, v.lat)
        if d <= radius_m:
            out.append((d, v.id))
    out.sort(key=lambda x: (x[0], x[1].encode()))
    return out


def brute_box(model, box, status=None, fleet=None):
    return {v.id for v in model.v.values()
            if not (status and v.status != status or fleet and v.fleet != fleet)
            and in_box(box, v.lon, v.lat)}


UNITS = {"m": 1.0, "km": 1000.0, "ft": 0.3048, "mi": 1609.34}


def random_filters(rnd, fleets, count_p, max_count):
    """Random STATUS / FLEET / COUNT options for a search, and their values
    (None when absent)."""
    opts, status, fleet, count = [], None, None, None
    if rnd.random() < 0.3:
        status = rnd.choice(STATUSES)
        opts += ["STATUS", status]
    if rnd.random() < 0.3:
        fleet = rnd.choice(fleets)
        opts += ["FLEET", fleet]
    if rnd.random() < count_p:
        count = rnd.randint(1, max_count)
        opts += ["COUNT", count]
    return opts, status, fleet, count


def check_nearby(c, model, lon, lat, radius, unit, rnd, fleets, tag):
    opts, status, fleet, count = random_filters(rnd, fleets, 0.4, 40)
    withdist, withcoord = rnd.random() < 0.5, rnd.random() < 0.5
    if withdist:
        opts.append("WITHDIST")
    if withcoord:
        opts.append("WITHCOORD")
    cmd = ["VEHICLE.NEARBY", lon, lat, radius, unit] + opts
    r = c(*cmd)
    want = brute_near(model, lon, lat, radius * UNITS[unit], status, fleet)
    if count:
        want = want[:count]
    if not check(isinstance(r, list), "%s: %r -> %r" % (tag, cmd, r)):
        return
    extra = withdist or withcoord
    ids = [x[0] if extra else x for x in r]
    if not check(ids == [w[1] for w in want],
                 "%s: %r: %d ids %r..., brute force %d %r..." %
                 (tag, cmd, len(ids), ids[:5], len(want), want[:5])):
        return
    if withdist:
        dists = [x[1] for x in r]
        wd = ["%.4f" % (d / UNITS[unit]) for d, _ in want]
        check(dists == wd, "%s: %r WITHDIST %r, brute force %r" % (tag, cmd, dists[:5], wd[:5]))
    if withcoord:
        coords = [tuple(float(z) for z in x[-1]) for x in r]
        wc = [(model.v[i].lon, model.v[i].lat) for _, i in want]
        check(coords == wc, "%s: %r WITHCOORD differs" % (tag, cmd))


def check_within(c, model, box, rnd, fleets, tag):
    opts, status, fleet, count = random_filters(rnd, fleets, 0.3, 30)
    withcoord = rnd.random() < 0.5
    if withcoord:
        opts.append("WITHCOORD")
    cmd = ["VEHICLE.WITHIN"] + list(box) + opts
    r = c(*cmd)
    want = brute_box(model, box, status, fleet)
    if not check(isinstance(r, list), "%s: %r -> %r" % (tag, cmd, r)):
        return
    ids = [x[0] if withcoord else x for x in r]
    check(len(ids) == len(set(ids)), "%s: %r has duplicates" % (tag, cmd))
    if count:
        check(len(ids) == min(count, len(want)) and set(ids) <= want,
              "%s: %r gave %d ids (%d outside the box), brute force %d"
              % (tag, cmd, len(ids), len(set(ids) - want), len(want)))
    else:
        check(set(ids) == want, "%s: %r: missing %r, extra %r"
              % (tag, cmd, sorted(want - set(ids))[:5], sorted(set(ids) - want)[:5]))
    if withcoord:
        check(all(i not in model.v or (float(x[1][0]), float(x[1][1])) ==
                  (model.v[i].lon, model.v[i].lat) for i, x in zip(ids, r)),
              "%s: %r WITHCOORD differs" % (tag, cmd))


def supply_map(reply):
    out = {}
    for e in reply:
        out.setdefault(e[0], []).append(tuple(e[1:]))
    return out


def brute_supply(model, prec, box=None):
    out = {}
    for v in model.v.values():
        gh = geohash(v.lon, v.lat, prec)
        if box and not box_meets(box, cell_bounds(gh)):
            continue
        cnt = out.setdefault(gh, [0, 0, 0])
        cnt[STATUSES.index(v.status)] += 1
    return {k: [tuple(x)] for k, x in out.items()}


def check_counts(c, model, fleets, tag):
    by = {s: 0 for s in STATUSES}
    for v in model.v.values():
        by[v.status] += 1
    r = as_map(c("VEHICLE.COUNT"))
    want = {"total": len(model.v), **by}
    check(r == want, "%s: VEHICLE.COUNT %r, brute force %r" % (tag, r, want))
    for s in STATUSES:
        r = c("VEHICLE.COUNT", "STATUS", s)
        check(r == by[s], "%s: VEHICLE.COUNT STATUS %s = %r, brute force %d" % (tag, s, r, by[s]))
    for f in fleets:
        fb = {s: 0 for s in STATUSES}
        for v in model.v.values():
            if v.fleet == f:
                fb[v.status] += 1
        r = as_map(c("VEHICLE.COUNT", "FLEET", f))
        want = {"total": sum(fb.values()), **fb}
        check(r == want, "%s: VEHICLE.COUNT FLEET %s %r, brute force %r" % (tag, f, r, want))
        s = STATUSES[len(f) % 3]
        r = c("VEHICLE.COUNT", "FLEET", f, "STATUS", s)
        check(r == fb[s], "%s: VEHICLE.COUNT FLEET %s STATUS %s = %r, want %d" % (tag, f, s, r, fb[s]))


def check_supply(c, model, rnd, tag, boxes=()):
    for prec in (4, 5, 6, 7):
        r = c("AREA.SUPPLY", prec)
        got, want = supply_map(r), brute_supply(model, prec)
        dup = [k for k, x in got.items() if len(x) > 1]
        check(not dup, "%s: AREA.SUPPLY %d names cells twice: %r" % (tag, prec, dup[:3]))
        diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        check(not diff, "%s: AREA.SUPPLY %d differs from the geohash counts in %d cells, e.g. %r"
              % (tag, prec, len(diff), [(k, got.get(k), want.get(k)) for k in diff[:3]]))
        tot = [sum(x[0][i] for x in got.values()) for i in range(3)]
        by = [sum(1 for v in model.v.values() if v.status == s) for s in STATUSES]
        check(tot == by, "%s: AREA.SUPPLY %d sums %r, counts by status %r" % (tag, prec, tot, by))
    for box in boxes:
        r = c("AREA.SUPPLY", 6, "BOX", *box)
        got, want = supply_map(r), brute_supply(model, 6, box)
        check(got == want, "%s: AREA.SUPPLY 6 BOX %r: %d cells, brute force %d; missing %r extra %r"
              % (tag, box, len(got), len(want), sorted(set(want) - set(got))[:3],
                 sorted(set(got) - set(want))[:3]))
    r = c("AREA.SUPPLY", 5, "LIMIT", 3)
    full = brute_supply(model, 5)
    check(isinstance(r, list) and len(r) == min(3, len(full)) and
          all(full.get(e[0]) == [tuple(e[1:])] for e in r),
          "%s: AREA.SUPPLY 5 LIMIT 3 -> %r" % (tag, r))
    vs = list(model.v.values())
    for v in rnd.sample(vs, min(12, len(vs))):
        prec = rnd.randint(4, 7)
        gh = geohash(v.lon, v.lat, prec)
        want = [gh] + list(brute_supply(model, prec)[gh][0])
        r = c("AREA.CELL", gh)
        check(r == want, "%s: AREA.CELL %s = %r, brute force %r" % (tag, gh, r, want))
    empty = geohash(-30.0, -50.0, 6)    # the South Atlantic
    r = c("AREA.CELL", empty)
    check(r == [empty, 0, 0, 0], "%s: AREA.CELL of an empty cell %r" % (tag, r))


def check_queries(c, model, rnd, fleets, tag):
    check_counts(c, model, fleets, tag)
    check_supply(c, model, rnd, tag, boxes=[(-74.1, 40.55, -73.9, 40.75),
                                            (-87.8, 41.7, -87.5, 42.0),
                                            (179.5, -20.0, -179.5, -14.0)])
    vs = list(model.v.values())
    fixed = [(-73.9855, 40.758), (-74.04, 40.69), (-87.6298, 41.8781), (11.5, 48.15),
             (179.95, -17.0), (-179.95, -17.0), (0.0, 0.0)]
    centres = fixed + [(v.lon, v.lat) for v in rnd.sample(vs, min(14, len(vs)))]
    radii = [(50, "m"), (500, "m"), (2, "km"), (1, "mi"), (5000, "ft"), (20, "km"),
             (300, "km"), (7000, "km")]
    qfleets = fleets + ["no-such-fleet"]
    for lon, lat in centres:
        for radius, unit in rnd.sample(radii, 3):
            check_nearby(c, model, lon, lat, radius, unit, rnd, qfleets, tag)
    boxes = [(-74.3, 40.4, -73.7, 40.95), (-74.02, 40.68, -73.99, 40.71),
             (-88.0, 41.6, -87.5, 42.1), (179.9, -18.0, -179.9, -16.0),
             (170.0, -20.0, -170.0, -10.0), (179.99, -17.5, 179.999, -16.5),
             (-130.0, 20.0, -60.0, 50.0), (-180.0, -85.0, 180.0, 85.0),
             (0.0, 0.0, 20.0, 60.0)]
    for v in rnd.sample(vs, min(12, len(vs))):
        w, h = rnd.uniform(0.0005, 0.3), rnd.uniform(0.0005, 0.3)
        boxes.append((max(-180.0, v.lon - w), max(-LAT_MAX, v.lat - h),
                      min(180.0, v.lon + w), min(LAT_MAX, v.lat + h)))
    for box in boxes:
        check_within(c, model, box, rnd, qfleets, tag)


# ---- 1. semantics over real data ----

def load_fleet(c, model, rnd):
    now = now_ms()
    ais = load_ais()
    mmsis = sorted(ais)
    pings = []
    # AIS vessels: their first report; the hour of data ends 2 minutes ago.
    t0 = min(t[0][0] for t in ais.values())
    shift = now - 62 * 60000 - t0
    for m in mmsis:
        ts, lon, lat, spd, hd = ais[m][0]
        pings.append(dict(vid="ais-" + m, lon=lon, lat=lat, ts=ts + shift, speed=spd,
                          heading=hd, fleet="harbor", status=rnd.choice(STATUSES)))
    for i, (pts, dts, plon, plat, _, _) in enumerate(load_nyc_driver()[:160]):
        pings.append(dict(vid="nyc-%03d" % i, lon=plon, lat=plat, ts=now - 80 * 60000 + i,
                          fleet="yellow", status=rnd.choice(STATUSES)))
    for i, (lon, lat, comp) in enumerate(load_chicago(260)):
        p = dict(vid="chi-%03d" % i, lon=lon, lat=lat, ts=now - 80 * 60000 + i)
        if comp:
            p["fleet"] = comp[:40]
        if i % 4:
            p["status"] = rnd.choice(STATUSES)
        pings.append(p)
    # Around the antimeridian (Fiji), synthetic: no real track crosses it.
    for i in range(24):
        lon = (179.9 + rnd.uniform(0, 0.0999)) if i % 2 else (-179.9 - rnd.uniform(0, 0.0999))
        pings.append(dict(vid="am-%02d" % i, lon=lon, lat=-17.0 + rnd.uniform(-0.9, 0.9),
                          ts=now - 80 * 60000 + i, status=STATUSES[i % 3], fleet="fiji"))
    send_pings(c, model, pings, "load")
    return ais, shift


def test_semantics(c, model, rnd):
    ais, shift = load_fleet(c, model, rnd)
    fleets = sorted({v.fleet for v in model.v.values() if v.fleet})
    check(len(model.v) > 600, "loaded %d vehicles" % len(model.v))
    for vid in rnd.sample(sorted(model.v), 20):
        check_vehicle(c, model, vid, "after load")
    check_queries(c, model, rnd, fleets, "load")

    # AIS tracks: trips on the vessels with the most reports, then every
    # later report of every vessel in time order (real speeds and headings).
    busiest = sorted(ais, key=lambda m: -len(ais[m]))[:12]
    for k, m in enumerate(busiest):
        vid = "ais-" + m
        ts = model.v[vid].ts
        if k % 2:
            r = c("TRIP.START", vid, "ID", "ais-trip-%d" % k, "TS", ts)
            check(r == "ais-trip-%d" % k, "TRIP.START with ID answers the id: %r" % r)
        else:
            r = c("TRIP.START", vid, "TS", ts)
            check(isinstance(r, str) and re.fullmatch(r"t\d+", r or ""),
                  "generated trip ids are t<n>: %r" % r)
        if isinstance(r, str) and not isinstance(r, RespError):
            model.start_trip(vid, r, ts)
    later = sorted(((p[0], m, p) for m in sorted(ais) for p in ais[m][1:]),
                   key=lambda x: (x[0], x[1]))
    pings = [dict(vid="ais-" + m, lon=p[1], lat=p[2], ts=p[0] + shift, speed=p[3],
                  heading=p[4]) for _, m, p in later]
    send_pings(c, model, pings, "AIS tracks")
    for k, m in enumerate(busiest):
        vid = "ais-" + m
        t = model.v[vid].trip
        if k < 6:
            ts = model.v[vid].ts + 1000
            r = as_map(c("TRIP.END", vid, "TS", ts))
            model.end_trip(vid, ts)
            check_trip(t, r, "AIS TRIP.END", with_path=False)
        check_trip(t, as_map(c("TRIP.GET", t.id)), "AIS trip")
    for vid in rnd.sample(sorted(model.v), 30):
        check_vehicle(c, model, vid, "after AIS tracks")

    # Status and fleet changes, moves and deletes.
    now = now_ms()
    pings = []
    for i, vid in enumerate(rnd.sample(sorted(model.v), 150)):
        v = model.v[vid]
        p = dict(vid=vid, lon=v.lon, lat=v.lat, ts=now + i, status=rnd.choice(STATUSES))
        if i % 3 == 0:
            p["lon"] = max(-179.9999, min(179.9999, v.lon + rnd.uniform(-0.003, 0.003)))
            p["lat"] = v.lat + rnd.uniform(-0.003, 0.003)
        if i % 10 == 0:
            p["fleet"] = rnd.choice(fleets)
        pings.append(p)
    send_pings(c, model, pings, "status changes and moves")
    gone = rnd.sample(sorted(v for v in model.v if not model.v[v].trip), 40)
    r = c("VEHICLE.DEL", *(gone[:20] + ["never-existed"] + gone[:3]))
    want = sum(model.delete(v) for v in gone[:20])
    check(r == want, "VEHICLE.DEL counts deleted vehicles once: %r, want %d" % (r, want))
    r = c("VEHICLE.DEL", *gone[20:])
    check(r == 20, "VEHICLE.DEL %r" % r)
    for v in gone[20:]:
        model.delete(v)
    for vid in gone[:5]:
        check_vehicle(c, model, vid, "deleted")
    check(c("VEHICLE.DEL", "never-existed") == 0, "VEHICLE.DEL of nothing is 0")
    check_queries(c, model, rnd, fleets, "after changes")
    return fleets


def test_track_trip(c, model):
    """A real 1 Hz car trace: distance, idle time, top speed, polyline;
    then stale, duplicate, teleporting and relocating pings."""
    pts = load_munich()
    shift = now_ms() - 3 * 60000 - pts[-1][0]
    vid = "car-munich"
    send_pings(c, model, [dict(vid=vid, lon=pts[0][1], lat=pts[0][2], ts=pts[0][0] + shift)],
               "munich first ping")
    ts0 = pts[0][0] + shift
    tid = c("TRIP.START", vid, "TS", ts0)
    if not check(isinstance(tid, str) and not isinstance(tid, RespError), "TRIP.START %r" % tid):
        return
    t = model.start_trip(vid, tid, ts0)
    check(as_map(c("VEHICLE.GET", vid))["trip"] == tid, "VEHICLE.GET shows the running trip")
    send_pings(c, model, [dict(vid=vid, lon=lon, lat=lat, ts=ts + shift) for ts, lon, lat in pts[1:]],
               "munich track")
    check(len(t.path) > 100, "the track has %d counted points" % len(t.path))
    check_trip(t, as_map(c("TRIP.GET", tid)), "munich track")
    v = model.v[vid]
    check_vehicle(c, model, vid, "munich track")

    # Duplicates and older pings: STALE, nothing changes.
    before = (c.raw("VEHICLE.GET", vid), c.raw("TRIP.GET", tid))
    for lon, lat, ts in ((v.lon, v.lat, v.ts), (v.lon + 0.001, v.lat, v.ts),
                         (v.lon + 0.001, v.lat + 0.001, v.ts - 5000), (v.lon, v.lat, ts0 - 1)):
        r = c(*ping_args(vid, lon, lat, ts, speed=50.0, status="busy"))
        check(r == "STALE" and model.ping(vid, lon, lat, ts) == "STALE", "stale ping: %r" % r)
    after = (c.raw("VEHICLE.GET", vid), c.raw("TRIP.GET", tid))
    check(before == after, "STALE pings change nothing: %r -> %r" % (before, after))

    # A teleport (50 km in one second): IMPLAUSIBLE, counted, not applied.
    far = (v.lon + 0.7, v.lat + 0.1)
    ts = v.ts + 1000
    r = c(*ping_args(vid, far[0], far[1], ts))
    check(r == "IMPLAUSIBLE" == model.ping(vid, far[0], far[1], ts), "teleport: %r" % r)
    g = as_map(c("VEHICLE.GET", vid))
    bg = as_map(parse(before[0]))
    check(g["flagged"] == bg["flagged"] + 1 and (g["lon"], g["lat"], g["ts"]) ==
          (bg["lon"], bg["lat"], bg["ts"]),
          "IMPLAUSIBLE: flagged %r -> %r, position and ts unchanged" % (bg["flagged"], g["flagged"]))
    check_trip(t, as_map(c("TRIP.GET", tid)), "after a teleport")
    # A plausible ping resets the run; three implausible in a row relocate.
    ts = v.ts + 2000
    r = c(*ping_args(vid, v.lon + 0.0001, v.lat, ts))
    check(r == "OK" == model.ping(vid, v.lon + 0.0001, v.lat, ts), "plausible after teleport: %r" % r)
    dist_before = t.dist
    outs = []
    for k in range(3):
        ts = v.ts + 1000 * (k + 1)
        r = c(*ping_args(vid, far[0] + k * 1e-4, far[1], ts))
        outs.append((r, model.ping(vid, far[0] + k * 1e-4, far[1], ts)))
    check([o[0] for o in outs] == ["IMPLAUSIBLE", "IMPLAUSIBLE", "RELOCATED"] and
          all(a == b for a, b in outs), "three teleports in a row: %r" % outs)
    g = as_map(c("VEHICLE.GET", vid))
    check((float(g["lon"]), float(g["lat"])) == (far[0] + 2e-4, far[1]),
          "RELOCATED moves the vehicle: %r" % g)
    check(abs(t.dist - dist_before) < 1e-9, "the model's trip did not count the jump")
    check_trip(t, as_map(c("TRIP.GET", tid)), "after relocation")
    # Moves from the new place count again, from the new anchor.
    ts = v.ts + 10000
    r = c(*ping_args(vid, v.lon + 0.002, v.lat, ts, speed=40.0))
    check(r == "OK" == model.ping(vid, v.lon + 0.002, v.lat, ts, speed=40.0), "after relocation: %r" % r)
    ts = v.ts + 1
    r = as_map(c("TRIP.END", vid, "TS", ts))
    model.end_trip(vid, ts)
    check_trip(t, r, "munich TRIP.END", with_path=False)
    check_trip(t, as_map(c("TRIP.GET", tid)), "munich ended")
    check_vehicle(c, model, vid, "munich ended")
    # A trip left running through the restart (no TS: the server's clock).
    t1 = now_ms()
    tid2 = c("TRIP.START", vid)
    t2 = now_ms()
    m = as_map(c("TRIP.GET", tid2))
    check(m and t1 <= m["start"] <= t2, "TRIP.START without TS starts now: %r" % m)
    if m:
        model.start_trip(vid, tid2, m["start"])


def test_resp3_and_cli(port, model):
    """The same records as RESP3 maps and doubles, and through redis-cli."""
    vid = "car-munich"
    v = model.v[vid]
    c3 = Conn(port)
    c3.call("HELLO", "3")
    r = c3.call("VEHICLE.GET", vid)
    check(r.startswith(b"%10\r\n"), "RESP3 VEHICLE.GET is a map of 10: %r" % r[:40])
    m = parse(r)
    mm = as_map(m) if isinstance(m, list) else None
    check(mm and mm["lon"] == v.lon and mm["lat"] == v.lat and mm["ts"] == v.ts,
          "RESP3 VEHICLE.GET doubles: %r" % mm)
    r = c3.call("TRIP.GET", v.trip.id)
    check(r.startswith(b"%14\r\n"), "RESP3 TRIP.GET is a map of 14: %r" % r[:40])
    r = c3.call("VEHICLE.COUNT")
    check(r.startswith(b"%4\r\n"), "RESP3 VEHICLE.COUNT is a map: %r" % r[:40])
    r = c3.call("VEHICLE.NEARBY", repr(v.lon), repr(v.lat), "1", "m", "WITHDIST", "WITHCOORD")
    check(parse(r)[0][0] == vid if r.startswith(b"*") else False, "RESP3 NEARBY: %r" % r[:80])
    c3.close()
    cli = shutil.which("redis-cli")
    if not cli:
        print("fleet: redis-cli not found: skipping its checks")
        return
    out = subprocess.run([cli, "-p", str(port), "VEHICLE.GET", vid], capture_output=True,
                         text=True, timeout=30).stdout.split("\n")
    check(out[:2] == ["id", vid] and out[out.index("ts") + 1] == str(v.ts),
          "redis-cli VEHICLE.GET: %r" % out[:8])
    out = subprocess.run([cli, "-p", str(port), "-3", "VEHICLE.COUNT"], capture_output=True,
                         text=True, timeout=30).stdout
    check("total" in out and str(len(model.v)) in out, "redis-cli -3 VEHICLE.COUNT: %r" % out)
    out = subprocess.run([cli, "-p", str(port), "AREA.CELL", geohash(v.lon, v.lat, 7)],
                         capture_output=True, text=True, timeout=30).stdout.split()
    check(out[0] == geohash(v.lon, v.lat, 7) and sum(map(int, out[1:])) >= 1,
          "redis-cli AREA.CELL: %r" % out)


def test_trip_list(c, model, rnd):
    """One NYC taxi driver's real trips: TRIP.LIST with FROM, TO, COUNT."""
    rows = load_nyc_driver()[:45]
    vid = "taxi-driver"
    shift = now_ms() - 90 * 60000 - rows[-1][1]
    trips = []
    for k, (pu, do, plon, plat, dlon, dlat) in enumerate(rows):
        send_pings(c, model, [dict(vid=vid, lon=plon, lat=plat, ts=pu + shift)], "driver pickup")
        if model.v[vid].trip:
            continue
        args = ["TRIP.START", vid, "TS", pu + shift]
        if k % 3 == 0:
            args += ["ID", "nyc-%d" % k]
        tid = c(*args)
        if not check(isinstance(tid, str) and not isinstance(tid, RespError), "%r -> %r" % (args, tid)):
            continue
        t = model.start_trip(vid, tid, pu + shift)
        send_pings(c, model, [dict(vid=vid, lon=dlon, lat=dlat, ts=do + shift)], "driver dropoff")
        r = as_map(c("TRIP.END", vid, "TS", do + shift))
        model.end_trip(vid, do + shift)
        check_trip(t, r, "driver TRIP.END", with_path=False)
        trips.append(t)
    check(len(trips) >= 30, "driver made %d trips" % len(trips))
    # One more, left running.
    last = model.v[vid]
    tid = c("TRIP.START", vid, "TS", last.ts + 60000)
    running = model.start_trip(vid, tid, last.ts + 60000)
    send_pings(c, model, [dict(vid=vid, lon=last.lon + 0.001, lat=last.lat, ts=last.ts + 120000)],
               "driver running trip")
    allt = trips + [running]
    lo, hi = allt[0].start, running.last

    def expect(frm, to, count):
        fin = [t for t in reversed(trips) if t.start <= to and t.end >= frm]
        out = ([running] if running.start <= to and running.last >= frm else []) + fin
        return out[:count] if count else out

    queries = [(None, None, None), (None, None, 5), (lo, hi, None), (hi + 1, None, None),
               (None, lo - 1, None), (hi, lo, None)]
    for _ in range(25):
        a, b = sorted(rnd.randint(lo - 3600000, hi + 3600000) for _ in range(2))
        queries.append((a if rnd.random() < 0.8 else None, b if rnd.random() < 0.8 else None,
                        rnd.choice([None, None, 1, 3, 10])))
    for t in rnd.sample(trips, 5):     # edges exactly on a trip's start and end
        queries += [(t.end, t.end, None), (t.start, t.start, None), (t.end + 1, t.start + 1, None)]
    for frm, to, count in queries:
        args = ["TRIP.LIST", vid]
        if frm is not None:
            args += ["FROM", frm]
        if to is not None:
            args += ["TO", to]
        if count:
            args += ["COUNT", count]
        withpath = rnd.random() < 0.3
        if withpath:
            args.append("WITHPATH")
        r = c(*args)
        want = expect(frm if frm is not None else 0, to if to is not None else 2 ** 63 - 1, count)
        got = [as_map(x)["id"] for x in r] if isinstance(r, list) else r
        if check(got == [t.id for t in want], "%r: %r, want %r" % (args, got, [t.id for t in want])):
            for x, t in zip(r, want):
                if not check_trip(t, as_map(x), "TRIP.LIST entry", with_path=withpath):
                    break
    check(c("TRIP.LIST", "nobody") == [], "TRIP.LIST of an unknown vehicle is empty")


# ---- 2. bad input ----

def test_bad_input(c, model):
    now = now_ms()
    send_pings(c, model, [dict(vid="bad-v", lon=-73.99, lat=40.73, ts=now - 100000),
                          dict(vid="bad-w", lon=-73.98, lat=40.74, ts=now - 100000,
                               fleet="bad-fleet", status="busy")], "bad-input setup")
    r = c("TRIP.START", "bad-v", "ID", "bad-trip", "TS", now - 100000)
    check(r == "bad-trip", "bad-input setup trip: %r" % r)
    model.start_trip("bad-v", "bad-trip", now - 100000)

    def state():
        raws = c.pipe_raw([("VEHICLE.GET", "bad-v"), ("VEHICLE.GET", "bad-w"),
                           ("VEHICLE.GET", "bad-new"), ("TRIP.GET", "bad-trip"),
                           ("TRIP.LIST", "bad-v", "WITHPATH"), ("TRIP.LIST", "bad-w"),
                           ("VEHICLE.COUNT",), ("VEHICLE.COUNT", "FLEET", "bad-fleet"),
                           ("AREA.SUPPLY", 7, "BOX", -74.0, 40.7, -73.9, 40.8)])
        appended = c.info("persistence").get("aof_records_appended")
        return raws, appended

    fut = now + 6 * 60000
    long_id = "x" * 256
    cases = [
        (["VEHICLE.UPDATE", "bad-v", "nan", "40.7"], "float|longitude"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "nan"], "float|longitude"),
        (["VEHICLE.UPDATE", "bad-v", "inf", "40.7"], "float|longitude"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "-inf"], "float|longitude"),
        (["VEHICLE.UPDATE", "bad-v", "181", "40.7"], "invalid longitude,latitude pair"),
        (["VEHICLE.UPDATE", "bad-v", "-180.0001", "40.7"], "invalid longitude,latitude pair"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "86"], "invalid longitude,latitude pair"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "-90"], "invalid longitude,latitude pair"),
        (["VEHICLE.UPDATE", "bad-new", "1e400", "0"], "float|longitude"),
        (["VEHICLE.UPDATE", "bad-new", "200", "0"], "invalid longitude,latitude pair"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "TS", fut], "in the future"),
        (["VEHICLE.UPDATE", "bad-new", "-73.99", "40.73", "TS", fut], "in the future"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "TS", "0"], "TS must be a positive"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "TS", "-5"], "TS must be a positive"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "TS", "1.5"], "integer"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "TS", "soon"], "integer"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "SPEED", "-1"], "SPEED must be"),
        (["VEHICLE.UPDATE", "bad-new", "-73.99", "40.73", "SPEED", "-0.5"], "SPEED must be"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "SPEED", "nan"], "float|SPEED"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "SPEED", "inf"], "float|SPEED"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "SPEED", "1e6"], "SPEED must be"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "HEADING", "361"], "HEADING must be"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "HEADING", "-1"], "HEADING must be"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "STATUS", "flying"], "STATUS must be"),
        (["VEHICLE.UPDATE", "bad-new", "-73.99", "40.73", "STATUS", ""], "STATUS must be"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "FLEET", ""], "fleet id must be"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "FLEET", long_id], "fleet id must be"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "COLOR", "red"], "syntax error"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "TS"], "syntax error"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99", "40.73", "STATUS", "busy", "TS", fut], "in the future"),
        (["VEHICLE.UPDATE", "", "-73.99", "40.73"], "vehicle id must be 1 to 255 bytes"),
        (["VEHICLE.UPDATE", long_id, "-73.99", "40.73"], "vehicle id must be 1 to 255 bytes"),
        (["VEHICLE.UPDATE", "bad-v", "-73.99"], "wrong number of arguments for 'vehicle.update'"),
        (["VEHICLE.UPDATE"], "wrong number of arguments"),
        (["VEHICLE.GET"], "wrong number of arguments for 'vehicle.get'"),
        (["VEHICLE.GET", "bad-v", "bad-w"], "wrong number of arguments for 'vehicle.get'"),
        (["VEHICLE.GET", "nobody"], "^ERR unknown vehicle 'nobody'$"),
        (["VEHICLE.DEL"], "wrong number of arguments for 'vehicle.del'"),
        (["TRIP.START", "nobody"], "^ERR unknown vehicle 'nobody'$"),
        (["TRIP.END", "nobody"], "^ERR unknown vehicle 'nobody'$"),
        (["TRIP.START", "bad-v"], "^ERR vehicle 'bad-v' already has a running trip 'bad-trip'$"),
        (["TRIP.START", "bad-v", "ID", "other-trip"], "already has a running trip"),
        (["TRIP.END", "bad-w"], "^ERR vehicle 'bad-w' has no running trip$"),
        (["TRIP.START", "bad-w", "ID", "bad-trip"], "trip id already exists"),
        (["TRIP.START", "bad-w", "ID", ""], "trip id must be"),
        (["TRIP.START", "bad-w", "ID", long_id], "trip id must be"),
        (["TRIP.START", "bad-w", "ID"], "syntax error"),
        (["TRIP.START", "bad-w", "TS", fut], "in the future"),
        (["TRIP.START", "bad-w", "TS", "0"], "TS must be a positive"),
        (["TRIP.START", "bad-w", "TS", "later"], "integer"),
        (["TRIP.START", "bad-w", "REASON", "idle"], "syntax error"),
        (["TRIP.START", ""], "vehicle id must be"),
        (["TRIP.START"], "wrong number of arguments for 'trip.start'"),
        (["TRIP.END"], "wrong number of arguments for 'trip.end'"),
        (["TRIP.END", "bad-v", "REASON", "crashed"], "REASON must be ended or idle"),
        (["TRIP.END", "bad-v", "ID", "bad-trip"], "syntax error"),
        (["TRIP.END", "bad-v", "TS", "-1"], "TS must be a positive"),
        (["TRIP.GET", "nosuch"], "^ERR unknown trip 'nosuch'$"),
        (["TRIP.GET"], "wrong number of arguments for 'trip.get'"),
        (["TRIP.LIST", "bad-v", "COUNT", "0"], "COUNT must be > 0"),
        (["TRIP.LIST", "bad-v", "FROM", "yesterday"], "integer"),
        (["TRIP.LIST", "bad-v", "SORT"], "syntax error"),
        (["VEHICLE.NEARBY", "-73.99", "40.73", "-1", "km"], "radius cannot be negative"),
        (["VEHICLE.NEARBY", "-73.99", "40.73", "nan", "km"], "float|radius"),
        (["VEHICLE.NEARBY", "-73.99", "40.73", "1", "yd"], "unsupported unit"),
        (["VEHICLE.NEARBY", "-73.99", "40.73", "1", "km", "COUNT", "0"], "COUNT must be > 0"),
        (["VEHICLE.NEARBY", "-73.99", "40.73", "1", "km", "STATUS", "parked"], "STATUS must be"),
        (["VEHICLE.NEARBY", "-200", "40.73", "1", "km"], "invalid longitude,latitude pair"),
        (["VEHICLE.NEARBY", "-73.99", "40.73", "1"], "wrong number of arguments"),
        (["VEHICLE.WITHIN", "-74", "41", "-73", "40"], "min latitude is above its max"),
        (["VEHICLE.WITHIN", "-74", "40", "-73", "91"], "invalid longitude,latitude pair"),
        (["VEHICLE.WITHIN", "-74", "40", "-73", "41", "WITHDIST"], "syntax error"),
        (["VEHICLE.WITHIN", "-74", "40", "-73"], "wrong number of arguments"),
        (["VEHICLE.COUNT", "STATUS", "parked"], "STATUS must be"),
        (["VEHICLE.COUNT", "FLEET"], "syntax error"),
        (["AREA.SUPPLY", "3"], "precision must be 4 to 7"),
        (["AREA.SUPPLY", "8"], "precision must be 4 to 7"),
        (["AREA.SUPPLY", "six"], "integer"),
        (["AREA.SUPPLY", "6", "BOX", "-74", "40", "-73"], "syntax error"),
        (["AREA.SUPPLY", "6", "BOX", "-74", "40", "-73", "95"], "invalid longitude,latitude pair"),
        (["AREA.SUPPLY", "6", "LIMIT", "0"], "LIMIT must be > 0"),
        (["AREA.CELL", "dr5"], "cell must be a geohash of 4 to 7 characters"),
        (["AREA.CELL", "dr5ru7kx"], "cell must be a geohash of 4 to 7 characters"),
        (["AREA.CELL", "dr5ra"], "cell must be a geohash"),       # 'a' is not base32
        (["AREA.CELL", "dr5r\x00"], "cell must be a geohash"),
        (["AREA.CELL", "\x11\x12\x13\x14"], "cell must be a geohash"),  # control bytes
        (["AREA.CELL", "dr5r\x1d"], "cell must be a geohash"),
        (["AREA.CELL"], "wrong number of arguments"),
    ]
    before = state()
    for args, pattern in cases:
        raw = c.raw(*[arg(a) for a in args])
        r = parse(raw)
        check(isinstance(r, RespError) and re.search(pattern, r),
              "%r should be refused with /%s/, got %r" % ([a[:20] for a in map(str, args)], pattern, raw[:120]))
        after = state()
        if not check(after == before, "%r changed the state" % ([a[:20] for a in map(str, args)],)):
            before = after
    check(c("PING") == "PONG", "connection usable after the errors")
    # The 5-minute rule holds for TRIP.END too: a trip cannot end tomorrow.
    r = c("TRIP.END", "bad-v", "TS", now + 86400000)
    after = state()
    if check(isinstance(r, RespError) and "future" in r,
             "TRIP.END bad-v TS <now + 1 day> should be refused like TRIP.START's, got %r"
             % (str(r)[:200],)):
        check(after == before, "a refused TRIP.END changed the state")
    else:
        check(False, "TRIP.END TS <now + 1 day> ended the trip at %r (duration %r ms)"
              % (as_map(c("TRIP.GET", "bad-trip")).get("end"),
                 as_map(c("TRIP.GET", "bad-trip")).get("duration_ms")))
        model.end_trip("bad-v", now + 86400000)
    # Just inside the limit is accepted.
    ts = now_ms() + 4 * 60000
    r = c(*ping_args("bad-w", -73.98, 40.74, ts))
    check(r == "OK" == model.ping("bad-w", -73.98, 40.74, ts), "TS 4 minutes ahead is accepted: %r" % r)


# ---- edges of the coordinate range, and idle trips ----

def test_arrival_burst():
    """Pipelined TS-less updates of one vehicle arrive milliseconds apart:
    a burst, applied in arrival order (not STALE, no speed judged from
    arrival times), and the log replays it the same."""
    srv = Fleetd(tempfile.mkdtemp(dir=WORK, prefix="burst-")).start()
    c = Client(srv.port)
    vid = "tsless-burst"
    cmds = [("VEHICLE.UPDATE", vid, "%.6f" % (-73.98 + i * 0.0017), "40.75") for i in range(40)]
    replies = c.pipe(cmds)
    check(all(r == "OK" for r in replies),
          "40 pipelined TS-less updates 140 m apart: %r" % sorted(set(map(str, replies))))
    m = as_map(c("VEHICLE.GET", vid))
    want_lon = -73.98 + 39 * 0.0017
    check(m and abs(float(m["lon"]) - want_lon) < 1e-6 and m["flagged"] == 0,
          "the last of the burst is where the vehicle is, nothing flagged: %r" % m)
    check(c("VEHICLE.UPDATE", vid, "-73.9", "40.75", "TS", m["ts"] if m else 0) == "STALE",
          "a client's own TS equal to the last is still STALE")
    check(isinstance(c("VEHICLE.UPDATE", vid, "-73.98", "40.75", "BURST", "1"), RespError),
          "BURST is for the log's replay only")
    c.close()
    check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")
    srv.start()
    c = Client(srv.port)
    after = as_map(c("VEHICLE.GET", vid))
    check(after == m, "the burst replays to the same vehicle: %r vs %r" % (after, m))
    inf = c.info("persistence")
    check(inf.get("loading_tail_cut_bytes") == "0", "nothing cut on the restart")
    c.close()
    check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")


def test_edges_and_idle():
    srv = Fleetd(os.path.join(WORK, "edge")).start()
    c = Client(srv.port)
    model = Model()
    now = now_ms()
    pts = [("e180", 180.0, 10.0), ("w180", -180.0, 10.0), ("e179", 179.9999, 10.0),
           ("w179", -179.9999, 10.0), ("npole", 10.0, LAT_MAX), ("spole", 10.0, -LAT_MAX),
           ("mid", 10.0, 10.0)]
    send_pings(c, model, [dict(vid=v, lon=lon, lat=lat, ts=now - 1000) for v, lon, lat in pts],
               "edge vehicles")
    for lon, lat, r in ((179.99995, 10.0, 1000), (180.0, 10.0, 1000), (-180.0, 10.0, 1000),
                        (10.0, 85.0, 20000), (10.0, -85.0, 20000), (0.0, 0.0, 20000000)):
        got = c("VEHICLE.NEARBY", lon, lat, r, "m")
        want = [i for _, i in brute_near(model, lon, lat, r)]
        check(got == want, "edges: VEHICLE.NEARBY %r %r %r m -> %r, brute force %r"
              % (lon, lat, r, got, want))
    for box in ((179.999, 9.0, -179.999, 11.0), (179.999, 9.0, 180.0, 11.0),
                (-180.0, 9.0, -179.999, 11.0), (0.0, 80.0, 20.0, LAT_MAX),
                (0.0, -LAT_MAX, 20.0, -80.0), (170.0, 0.0, 180.0, 20.0)):
        got = c("VEHICLE.WITHIN", *box)
        want = brute_box(model, box)
        check(isinstance(got, list) and set(got) == want,
              "edges: VEHICLE.WITHIN %r -> %r, brute force %r" % (box, got, sorted(want)))
    for prec in (4, 7):
        got = c("AREA.SUPPLY", prec)
        names = [e[0] for e in got]
        check(len(names) == len(set(names)), "edges: AREA.SUPPLY %d names a cell twice: %r"
              % (prec, got))
        want = brute_supply(model, prec)
        check(supply_map(got) == want, "edges: AREA.SUPPLY %d = %r, geohashes %r"
              % (prec, sorted(got), sorted(want.items())))
        for e in got:
            cell = c("AREA.CELL", e[0])
            check(sum(cell[1:]) >= sum(e[1:]),
                  "edges: AREA.SUPPLY %d lists %r but AREA.CELL %s = %r" % (prec, e, e[0], cell))
    for lon, lat in ((180.0, 10.0), (-180.0, 10.0), (10.0, LAT_MAX)):
        gh = geohash(lon, lat, 7)
        want = [gh] + list(brute_supply(model, 7)[gh][0])
        got = c("AREA.CELL", gh)
        check(got == want, "edges: AREA.CELL %s (the cell of %r, %r) = %r, geohash counts %r"
              % (gh, lon, lat, got, want))

    # Idle trips: closed once a second after trip-idle-timeout without pings.
    now = now_ms()
    send_pings(c, model, [dict(vid="idle-a", lon=-73.9, lat=40.7, ts=now - 60000),
                          dict(vid="idle-b", lon=-73.91, lat=40.71, ts=now)], "idle setup")
    ta = c("TRIP.START", "idle-a", "ID", "trip-a", "TS", now - 60000)
    tb = c("TRIP.START", "idle-b", "ID", "trip-b", "TS", now)
    check((ta, tb) == ("trip-a", "trip-b"), "idle trips started: %r %r" % (ta, tb))
    check(c("CONFIG", "SET", "trip-idle-timeout", "3") == "OK", "CONFIG SET trip-idle-timeout")
    t_set = time.time()
    state_a = None
    while time.time() - t_set < 8:
        state_a = as_map(c("TRIP.GET", "trip-a"))
        if state_a["state"] != "running":
            break
        time.sleep(0.1)
    b_early = as_map(c("TRIP.GET", "trip-b"))
    b_age = now_ms() - now
    check(state_a["state"] == "idle" and state_a["end"] == now - 60000 and
          state_a["last_ping"] == now - 60000 and state_a["duration_ms"] == 0,
          "a trip with no ping for 60 s closes as idle at its last ping: %r" % state_a)
    check(time.time() - t_set <= 2.5, "closed within about a second (%.1f s)" % (time.time() - t_set))
    if b_age < 2500:
        check(b_early["state"] == "running", "a trip pinged %d ms ago keeps running: %r"
              % (b_age, b_early["state"]))
    check(as_map(c("VEHICLE.GET", "idle-a"))["trip"] is None, "VEHICLE.GET: no trip after idle close")
    while time.time() - t_set < 10:
        sb = as_map(c("TRIP.GET", "trip-b"))
        if sb["state"] != "running":
            break
        time.sleep(0.1)
    check(sb["state"] == "idle" and sb["end"] == now and now_ms() - now >= 3000,
          "trip-b closes as idle after 3 s: %r" % sb)
    lst = c("TRIP.LIST", "idle-a")
    check(len(lst) == 1 and as_map(lst[0])["state"] == "idle", "TRIP.LIST shows the idle trip")
    before = c.pipe_raw([("TRIP.GET", "trip-a"), ("TRIP.GET", "trip-b"), ("VEHICLE.GET", "idle-a"),
                         ("VEHICLE.GET", "idle-b")])
    c.close()
    check(srv.stop() == 0, "edge server exits 0 on SIGTERM")
    srv.start()
    c = Client(srv.port)
    after = c.pipe_raw([("TRIP.GET", "trip-a"), ("TRIP.GET", "trip-b"), ("VEHICLE.GET", "idle-a"),
                        ("VEHICLE.GET", "idle-b")])
    check(after == before, "idle closes survive a restart: %r -> %r" % (before, after))
    c.close()
    check(srv.stop() == 0, "edge server exits 0 on SIGTERM")


# ---- 3. durability ----

def dump(c, model, fleets):
    vids = sorted(model.ever)
    tids = sorted(model.trips)
    cmds = []
    for v in vids:
        cmds += [("VEHICLE.GET", v), ("TRIP.LIST", v, "WITHPATH")]
    cmds += [("TRIP.GET", t) for t in tids]
    cmds += [("VEHICLE.COUNT",)] + [("VEHICLE.COUNT", "FLEET", f) for f in fleets]
    cmds += [("VEHICLE.NEARBY", -73.98, 40.75, 20, "km", "WITHDIST", "WITHCOORD"),
             ("VEHICLE.NEARBY", -87.63, 41.88, 5, "km", "COUNT", 25, "STATUS", "busy"),
             ("VEHICLE.WITHIN", 179.0, -18.0, -179.0, -16.0, "WITHCOORD")]
    out = dict(zip(cmds, c.pipe_raw(cmds)))
    for p in (4, 5, 6, 7):
        out[("AREA.SUPPLY", p)] = sorted(map(tuple, c("AREA.SUPPLY", p)))
    return out


def same_dump(a, b, what):
    diff = [k for k in a if a[k] != b.get(k)]
    return check(not diff and len(a) == len(b),
                 "%s: %d of %d replies differ, e.g. %r" %
                 (what, len(diff), len(a), [(k, a[k][:150], b.get(k, b"")[:150]) for k in diff[:2]]))


def newest(datadir, prefix):
    names = sorted(n for n in os.listdir(datadir) if re.fullmatch(prefix + r"\.\d{10,}", n))
    return os.path.join(datadir, names[-1]) if names else None


def wait_bgsave(c, saves):
    deadline = time.time() + 60
    while time.time() < deadline:
        inf = c.info("persistence")
        if inf.get("rdb_bgsave_in_progress") == "0" and int(inf.get("rdb_saves", 0)) >= saves:
            return True
        time.sleep(0.05)
    return False


def refused_start(srv):
    """Starts fleetd on srv's directory expecting it to refuse; its output."""
    port = fleetlib.free_port()
    proc = subprocess.Popen(srv.argv(port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    fleetlib._procs.append(proc)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    check(proc.returncode not in (0, None), "fleetd refuses to start: exit %r" % proc.returncode)
    return out.decode(errors="replace")


def more_writes(c, model, rnd, n):
    """Moves, status changes and trips on vehicles already there."""
    now = now_ms()
    vids = sorted(v for v in model.v if v.startswith(("ais-", "nyc-", "chi-")))
    pings = []
    for i, vid in enumerate(rnd.sample(vids, n)):
        v = model.v[vid]
        pings.append(dict(vid=vid, lon=v.lon + rnd.uniform(-0.0005, 0.0005),
                          lat=v.lat + rnd.uniform(-0.0005, 0.0005), ts=max(v.ts + 1000, now - 30000 + i),
                          status=rnd.choice(STATUSES) if i % 4 == 0 else None))
    send_pings(c, model, pings, "more writes")
    for vid in rnd.sample(vids, 4):
        v = model.v[vid]
        if v.trip:
            ts = v.ts + 500
            r = as_map(c("TRIP.END", vid, "TS", ts))
            check_trip(model.end_trip(vid, ts), r, "more writes: TRIP.END", with_path=False)
        else:
            tid = c("TRIP.START", vid)
            m = as_map(c("TRIP.GET", tid))
            if check(m is not None, "more writes: TRIP.START %r" % tid):
                model.start_trip(vid, tid, m["start"])
                ts = max(v.ts, m["start"]) + 2000
                send_pings(c, model, [dict(vid=vid, lon=v.lon + 0.001, lat=v.lat, ts=ts)],
                           "more writes: trip ping")


def test_durability(srv, c, model, fleets, rnd):
    datadir = srv.datadir
    r = c("BGSAVE")
    check(r == "Background saving started", "BGSAVE: %r" % r)
    check(wait_bgsave(c, 1), "BGSAVE finished")
    check(newest(datadir, "snapshot") is not None, "a snapshot file exists: %r" % os.listdir(datadir))
    more_writes(c, model, rnd, 60)
    # A vehicle with a running trip deleted after the snapshot.
    victim = next((v for v in sorted(model.v, key=lambda x: not x.startswith("ais-"))
                   if model.v[v].trip), None)
    if check(victim is not None, "a vehicle with a running trip to delete"):
        t = model.v[victim].trip
        check(c("VEHICLE.DEL", victim) == 1, "delete a vehicle with a running trip")
        model.delete(victim)
        check_trip(t, as_map(c("TRIP.GET", t.id)), "trip of a deleted vehicle")
    for tm in model.trips.values():
        check_trip(tm, as_map(c("TRIP.GET", tm.id)), "before restart")
    for vid in sorted(model.ever):
        check_vehicle(c, model, vid, "before restart")
    before = dump(c, model, fleets)
    c.close()
    check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")
    srv.start()
    c = Client(srv.port)
    inf = c.info("persistence")
    check(int(inf["loading_loaded_records"]) > 0 and inf["loading_tail_cut_bytes"] == "0",
          "restart loaded the snapshot and the log: %r" % inf)
    same_dump(before, dump(c, model, fleets), "restart after BGSAVE and more writes")

    # Generated trip ids carry on after a restart.
    gen = [int(t[1:]) for t in model.trips if re.fullmatch(r"t\d+", t)]
    vid = next(v for v in sorted(model.v) if not model.v[v].trip and v.startswith("chi-"))
    tid = c("TRIP.START", vid)
    check(isinstance(tid, str) and re.fullmatch(r"t\d+", tid) and tid not in model.trips and
          int(tid[1:]) == max(gen) + 1,
          "generated trip id after restart: %r (highest before t%d)" % (tid, max(gen)))
    m = as_map(c("TRIP.GET", tid))
    if m:
        model.start_trip(vid, tid, m["start"])
    more_writes(c, model, rnd, 20)
    state = dump(c, model, fleets)
    c.close()
    check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")

    # Garbage, then half a record, after the newest segment's last record.
    seg = newest(datadir, "log")
    garbage = bytes(rnd.getrandbits(8) for _ in range(37))
    with open(seg, "ab") as f:
        f.write(garbage)
    srv.start()
    c = Client(srv.port)
    cut = c.info("persistence").get("loading_tail_cut_bytes")
    check(cut == str(len(garbage)), "garbage tail: loading_tail_cut_bytes %r, appended %d"
          % (cut, len(garbage)))
    check("cut %d bytes" % len(garbage) in srv.log(), "the cut is reported on stderr")
    same_dump(state, dump(c, model, fleets), "restart after a garbage tail")
    more_writes(c, model, rnd, 10)
    state = dump(c, model, fleets)
    c.close()
    check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")
    seg = newest(datadir, "log")
    with open(seg, "rb") as f:
        body = f.read()
    check(len(body) > 16 + 12, "the newest segment holds records (%d bytes)" % len(body))
    n = struct.unpack("<I", body[16:20])[0]
    half = body[16:16 + 12 + n // 2]
    with open(seg, "ab") as f:
        f.write(half)
    srv.start()
    c = Client(srv.port)
    cut = c.info("persistence").get("loading_tail_cut_bytes")
    check(cut == str(len(half)), "half a record: loading_tail_cut_bytes %r, appended %d"
          % (cut, len(half)))
    same_dump(state, dump(c, model, fleets), "restart after half a record")
    c.close()
    check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")
    with open(seg, "rb") as f:
        after = f.read()
    # The cut leaves the good records; a restart then appends whole records
    # (the rules record every start writes), never after garbage.
    rest, whole = after[len(body):], True
    while rest:
        if len(rest) < 12 or len(rest) < 12 + struct.unpack("<I", rest[:4])[0]:
            whole = False
            break
        rest = rest[12 + struct.unpack("<I", rest[:4])[0]:]
    check(after[:len(body)] == body and whole,
          "the torn tail was cut back to the last whole record")
    srv.start()
    c = Client(srv.port)
    check(c.info("persistence").get("loading_tail_cut_bytes") == "0", "nothing to cut the next time")
    same_dump(state, dump(c, model, fleets), "second restart after the cut")

    # A damaged snapshot: refuse to start, naming it.
    check(c("BGSAVE") == "Background saving started", "BGSAVE again")
    check(wait_bgsave(c, 1), "BGSAVE finished")
    c.close()
    check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")
    snap = newest(datadir, "snapshot")
    with open(snap, "rb") as f:
        good = f.read()
    pos = len(good) // 2
    with open(snap, "r+b") as f:
        f.seek(pos)
        f.write(bytes([good[pos] ^ 0x5A]))
    out = refused_start(srv)
    check(os.path.basename(snap) in out and "snapshot" in out,
          "the message names the snapshot: %r" % out[-300:])
    with open(snap, "wb") as f:
        f.write(good)
    srv.start()
    c = Client(srv.port)
    same_dump(state, dump(c, model, fleets), "restart with the snapshot repaired")
    more_writes(c, model, rnd, 10)
    c.close()
    check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")

    # Damage in the middle of the newest segment, good records after it:
    # those may be acknowledged writes, so no cut; the start is refused
    # with the command that would cut, and that command works.
    seg = newest(datadir, "log")
    with open(seg, "rb") as f:
        body = f.read()
    n = struct.unpack("<I", body[16:20])[0]
    check(16 + 12 + n < len(body) - 12, "the newest segment holds several records")
    with open(seg, "r+b") as f:
        f.seek(16 + 12 + n // 2)
        f.write(bytes([body[16 + 12 + n // 2] ^ 0x41]))
    out = refused_start(srv)
    cmd = re.search(r"truncate -s (\d+) (\S+)", out)
    check("good records again from byte %d" % (16 + 12 + n) in out and cmd,
          "a damaged middle names where good records start and the cut: %r" % out[-400:])
    check(os.path.getsize(seg) == len(body), "the damaged segment is left as it was")
    if cmd:
        check(int(cmd.group(1)) == 16 and cmd.group(2) == seg, "the cut offered is at the damage: %r" % cmd.group(0))
        os.truncate(cmd.group(2), int(cmd.group(1)))
    srv.start()
    c = Client(srv.port)
    check(c.info("persistence").get("loading_tail_cut_bytes") == "0", "after the operator's cut, nothing is cut")
    check(c("BGSAVE") == "Background saving started", "BGSAVE after the operator's cut")
    check(wait_bgsave(c, 1), "BGSAVE finished")
    c.close()
    check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")

    # The newest snapshot gone while the segments after it remain: the
    # history before them is lost, so replaying them alone is refused.
    snap = newest(datadir, "snapshot")
    os.rename(snap, snap + ".aside")
    out = refused_start(srv)
    check("is missing" in out, "a missing snapshot before the segments is refused: %r" % out[-300:])
    os.rename(snap + ".aside", snap)
    srv.start()
    c = Client(srv.port)
    check(c("PING") == "PONG", "starts again with the snapshot back")
    c.close()
    check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")

    # A torn tail in the segment before the one made ahead of a snapshot
    # (header only): that tail is still the log's end, and is cut.
    seg = newest(datadir, "log")
    with open(seg, "rb") as f:
        header = f.read(16)
    seq = int(seg.rsplit(".", 1)[1])
    ahead = os.path.join(datadir, "log.%010d" % (seq + 1))
    with open(ahead, "wb") as f:
        f.write(header)
    with open(seg, "ab") as f:
        f.write(b"\xff\xff\xff\x00torn")
    srv.start()
    c = Client(srv.port)
    cut = c.info("persistence").get("loading_tail_cut_bytes")
    check(cut == "8", "a torn tail before an empty next segment is cut: %r" % cut)
    c.close()
    check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")


def test_config_replay():
    """The rules a ping was judged by are part of what it did: after a
    restart that replays the log, trips and vehicles judged under CONFIG
    SET values must come back exactly as clients saw them."""
    srv = Fleetd(os.path.join(WORK, "config")).start()
    c = Client(srv.port)
    for k, val in (("max-speed-kmh", "100"), ("trip-jitter-meters", "20")):
        check(c("CONFIG", "SET", k, val) == "OK", "CONFIG SET %s %s" % (k, val))
    now = now_ms() - 120000
    lon, lat = -73.99, 40.73
    dlon = 1.0 / (111195.0 * math.cos(math.radians(lat)))     # degrees per metre
    steps = [(0, 0.0), (1000, 10.0), (2000, 12.0), (12000, 560.0), (14000, 575.0),
             (30000, 590.0), (31000, 602.0), (60000, 650.0)]
    out = []
    for dt, m in steps:
        out.append(c("VEHICLE.UPDATE", "cfg-a", lon + m * dlon, lat, "TS", now + dt))
        if dt == 0:
            check(c("TRIP.START", "cfg-a", "ID", "cfg-trip", "TS", now) == "cfg-trip", "cfg trip")
    check("IMPLAUSIBLE" in out, "a ping above 100 km/h is IMPLAUSIBLE under max-speed-kmh 100: %r"
          % out)
    keys = [("VEHICLE.GET", "cfg-a"), ("TRIP.GET", "cfg-trip")]
    before = c.pipe_raw(keys)
    c.close()
    check(srv.stop() == 0, "config server exits 0 on SIGTERM")
    srv.start()
    c = Client(srv.port)
    after = c.pipe_raw(keys)
    for k, b, a in zip(keys, before, after):
        check(a == b, "after a restart %s differs from what clients were told under CONFIG SET "
              "max-speed-kmh 100 / trip-jitter-meters 20:\n  before %r\n  after  %r"
              % (" ".join(k), dict(zip(*[iter(parse(b))] * 2)), dict(zip(*[iter(parse(a))] * 2))))
    c.close()
    check(srv.stop() == 0, "config server exits 0 on SIGTERM")


# ---- 4. crash test ----

class Ev:
    __slots__ = ("i", "kind", "v", "ts", "lon", "lat", "tid", "args", "reply")

    def __init__(self, i, kind, v, args, ts=None, lon=None, lat=None, tid=None):
        self.i, self.kind, self.v, self.args = i, kind, v, args
        self.ts, self.lon, self.lat, self.tid, self.reply = ts, lon, lat, tid, None


def crash_state(c, ids):
    """vid -> None or dict(ts, lon, lat, trip, finished ids newest first)."""
    cmds = []
    for v in ids:
        cmds += [("VEHICLE.GET", v), ("TRIP.LIST", v)]
    rs = c.pipe(cmds)
    out = {}
    for k, v in enumerate(ids):
        g, lst = rs[2 * k], rs[2 * k + 1]
        lst = [as_map(x) for x in lst] if isinstance(lst, list) else []
        fin = tuple(x["id"] for x in lst if x["state"] != "running")
        if isinstance(g, RespError):
            out[v] = None if not fin else {"ts": None, "trip": None, "finished": fin}
            continue
        g = as_map(g)
        out[v] = {"ts": g["ts"], "lon": float(g["lon"]), "lat": float(g["lat"]),
                  "trip": g["trip"], "finished": fin}
    return out


def sig_match(model_sig, got_sig):
    (mr, mf), (gr, gf) = model_sig, got_sig
    if (mr is None) != (gr is None) or len(mf) != len(gf):
        return False
    pairs = ([(mr, gr)] if mr is not None else []) + list(zip(mf, gf))
    return all(m == g or (m == "?" and re.fullmatch(r"t\d+", g)) for m, g in pairs)


def crash_verify(c, ids, pre, events, n_acked, n_sent, rnd_no):
    tag = "crash round %d" % rnd_no
    got = crash_state(c, ids)
    allowed = bytearray(b"\x01") * (n_sent + 1)
    allowed[:n_acked] = bytes(n_acked)
    lost = []
    for v in ids:
        g, p = got[v], pre[v]
        pings = [e for e in events[:n_sent] if e.v == v and e.kind == "ping"]
        first = pings[0].i if pings else n_sent
        if g is None or g["ts"] is None:
            ok = p is None or p["ts"] is None
            if not ok:
                lost.append(v)
            lo, hi = 0, first
        elif p is not None and g["ts"] == p["ts"]:
            check((g["lon"], g["lat"]) == (p["lon"], p["lat"]),
                  "%s: %s keeps its position %r" % (tag, v, g))
            lo, hi = 0, first
        else:
            j = next((k for k, e in enumerate(pings) if e.ts == g["ts"]), None)
            if not check(j is not None, "%s: %s has ts %r, which was never sent" % (tag, v, g["ts"])):
                continue
            e = pings[j]
            check((g["lon"], g["lat"]) == (e.lon, e.lat),
                  "%s: %s at ts %d is at %r, the ping sent with that ts said %r"
                  % (tag, v, e.ts, (g["lon"], g["lat"]), (e.lon, e.lat)))
            lo, hi = e.i + 1, (pings[j + 1].i if j + 1 < len(pings) else n_sent)
        mask = bytearray(n_sent + 1)
        mask[lo:hi + 1] = b"\x01" * (hi + 1 - lo)
        # Trip signature: (running trip, finished trips newest first).
        cur_run = p["trip"] if p else None
        cur_fin = list(p["finished"]) if p else []
        segs, lo = [], 0
        for e in events[:n_sent]:
            if e.v != v or e.kind not in ("start", "end"):
                continue
            segs.append((lo, e.i, (cur_run, tuple(cur_fin))))
            if e.kind == "start":
                cur_run = e.tid or "?"
            else:
                cur_fin.insert(0, cur_run)
                cur_run = None
            lo = e.i + 1
        segs.append((lo, n_sent, (cur_run, tuple(cur_fin))))
        gsig = ((g or {}).get("trip"), (g or {}).get("finished", ()))
        tmask = bytearray(n_sent + 1)
        for a, b, s in segs:
            if sig_match(s, gsig):
                tmask[a:b + 1] = b"\x01" * (b + 1 - a)
        if not check(any(tmask), "%s: %s trips %r match no prefix of the stream (%r)"
                     % (tag, v, gsig, [s for _, _, s in segs][-4:])):
            continue
        allowed = bytearray(x & y & z for x, y, z in zip(allowed, mask, tmask))
    check(not lost, "%s: acknowledged vehicles lost: %r" % (tag, lost[:5]))
    good = [L for L, x in enumerate(allowed) if x]
    check(good, "%s: no single prefix of the stream explains the state (%d sent, %d acknowledged)"
          % (tag, n_sent, n_acked))
    # The acknowledged trip commands, one by one.
    for e in events[:n_acked]:
        if e.kind == "start" and e.tid:
            m = as_map(c("TRIP.GET", e.tid))
            check(m and m["vehicle"] == e.v and m["start"] == e.ts,
                  "%s: acknowledged TRIP.START %s %s: %r" % (tag, e.v, e.tid, m))
        elif e.kind == "end" and e.tid and e.tid != "?":
            m = as_map(c("TRIP.GET", e.tid))
            check(m and m["state"] == "ended" and m["end"] == e.ts,
                  "%s: acknowledged TRIP.END %s %s: %r" % (tag, e.v, e.tid, m))
    total = sum(1 for v in ids if got[v] is not None and got[v]["ts"] is not None)
    cnt = as_map(c("VEHICLE.COUNT"))
    check(cnt and cnt["total"] == total, "%s: VEHICLE.COUNT %r, vehicles found %d" % (tag, cnt, total))
    return got, good


def crash_stream(srv, ids, pre, pos, clock, rnd, rnd_no):
    """Streams until fleetd is killed; returns (events, acknowledged, sent)."""
    c = Conn(srv.port, timeout=30)
    exists = {v: pre[v] is not None and pre[v]["ts"] is not None for v in ids}
    run = {v: (pre[v]["trip"] if exists[v] else None) for v in ids}
    events = []
    seq = [0]
    bgsave_at = rnd.randint(40, 600)

    def next_event(i):
        if i == bgsave_at:
            return Ev(i, "bgsave", None, ["BGSAVE"])
        v = rnd.choice(ids)
        clock[v] += 50
        ts = clock[v]
        if exists[v] and rnd.random() < 0.08:
            if run[v] is None:
                seq[0] += 1
                if rnd.random() < 0.5:
                    tid = "c%d-%d" % (rnd_no, seq[0])
                    e = Ev(i, "start", v, ["TRIP.START", v, "ID", tid, "TS", str(ts)], ts=ts, tid=tid)
                else:
                    e = Ev(i, "start", v, ["TRIP.START", v, "TS", str(ts)], ts=ts)
                run[v] = e
                return e
            # tid: the running trip's id, or its start event (resolved below)
            e = Ev(i, "end", v, ["TRIP.END", v, "TS", str(ts)], ts=ts, tid=run[v])
            run[v] = None
            return e
        lon, lat = pos[v]
        d, a = rnd.uniform(1.0, 4.0), rnd.uniform(0, 2 * math.pi)
        lat += d * math.cos(a) / 111195.0
        lon += d * math.sin(a) / (111195.0 * math.cos(math.radians(lat)))
        pos[v] = (lon, lat)
        exists[v] = True
        args = ["VEHICLE.UPDATE", v, repr(lon), repr(lat), "TS", str(ts)]
        if rnd.random() < 0.2:
            args += ["SPEED", "%.1f" % rnd.uniform(0, 120)]
        return Ev(i, "ping", v, args, ts=ts, lon=lon, lat=lat)

    n_sent = 0
    n_acked = 0
    killer = threading.Timer(rnd.uniform(0.2, 1.0), lambda: srv.proc.send_signal(signal.SIGKILL))
    t0 = time.time()
    killer.start()
    try:
        while time.time() - t0 < 10:
            if rnd.random() < 0.5:
                batch = [next_event(len(events) + k) for k in range(20)]
                events.extend(batch)
                n_sent = len(events)
                c.send_raw(b"".join(encode(e.args) for e in batch))
                for e in batch:
                    e.reply = c.read_reply()
                    n_acked += 1
            else:
                for _ in range(20):
                    e = next_event(len(events))
                    events.append(e)
                    n_sent = len(events)
                    c.send_raw(encode(e.args))
                    e.reply = c.read_reply()
                    n_acked += 1
    except (EOFError, OSError):
        pass
    killer.join()
    srv.proc.wait()
    c.close()
    assert all(e.i == k for k, e in enumerate(events)), "event indices"
    check(srv.proc.returncode == -signal.SIGKILL, "crash round %d: fleetd was killed (%r)"
          % (rnd_no, srv.proc.returncode))
    # Resolve trip ids: generated ones are known once acknowledged.
    for e in events:
        if e.kind == "start" and e.tid is None and e.reply is not None:
            r = parse(e.reply)
            if isinstance(r, str) and not isinstance(r, RespError):
                e.tid = r
    for e in events:
        if e.kind == "end" and isinstance(e.tid, Ev):
            e.tid = e.tid.tid or "?"
    bad = []
    for e in events[:n_acked]:
        r = e.reply
        ok = (r == b"+OK\r\n" if e.kind == "ping" else
              r.startswith(b"$") if e.kind == "start" else
              r.startswith(b"*26\r\n") if e.kind == "end" else
              r == b"+Background saving started\r\n")
        if e.kind == "start" and ok and "ID" in e.args:
            ok = parse(r) == e.tid
        if not ok:
            bad.append((e.args, r[:80]))
    check(not bad, "crash round %d: %d unexpected replies, e.g. %r" % (rnd_no, len(bad), bad[:3]))
    return events, n_acked, n_sent


def orphans_of(port):
    """Processes still running with a dead fleetd's command line: its
    snapshot children (fork without exec keeps the argv)."""
    needle = b"--port\0%d\0" % port
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if needle in f.read():
                        with open("/proc/%s/stat" % pid) as f:
                            if f.read().split(") ", 1)[1][0] != "Z":
                                out.append(int(pid))
            except OSError:
                pass
    return out


def restart_after_kill(srv, tag):
    """Starts fleetd again on the killed server's directory. A refusal is
    a failure; then waits for the dead server's leftovers and retries."""
    old_port = srv.port
    try:
        srv.start()
        return True
    except RuntimeError as e:
        check(False, "%s: restart right after SIGKILL refused (%s): %s"
              % (tag, e, srv.log().strip()[-200:]))
    deadline = time.time() + 60
    while orphans_of(old_port) and time.time() < deadline:
        time.sleep(0.05)
    srv.start()
    return False


def test_kill_during_snapshot():
    """SIGKILL while a snapshot child is writing: the restart must not
    wait for (or be refused because of) the orphaned child, and the
    child's half-written snapshot must not be left behind for ever."""
    srv = Fleetd(os.path.join(WORK, "killsnap"), "--fsync", "always").start()
    c = Client(srv.port)
    n, per = 300000, 2500
    cmds = []
    for k in range(n // per):
        a = ["GEOADD", "big"]
        for j in range(per):
            i = k * per + j
            a += ["%.6f" % (-74.0 + (i % 1000) * 1e-4), "%.6f" % (40.0 + (i // 1000) * 1e-4),
                  "m%06d" % i]
        cmds.append(a)
    rs = c.pipe_raw(cmds, chunk=10)
    check(all(r == b":%d\r\n" % per for r in rs), "killsnap: GEOADD %d members" % n)
    send_pings(c, Model(), [dict(vid="ks-%d" % k, lon=-73.9 + k * 1e-3, lat=40.7, ts=now_ms())
                            for k in range(50)], "killsnap pings")
    check(c("BGSAVE") == "Background saving started", "killsnap: BGSAVE")
    srv.stop(signal.SIGKILL)
    c.close()
    old_port = srv.port
    restart_after_kill(srv, "kill during BGSAVE")
    c = Client(srv.port)
    check(c("ZCARD", "big") == n and as_map(c("VEHICLE.COUNT"))["total"] == 50,
          "killsnap: everything acknowledged is back: %r %r" % (c("ZCARD", "big"), c("VEHICLE.COUNT")))
    c.close()
    deadline = time.time() + 60
    while orphans_of(old_port) and time.time() < deadline:
        time.sleep(0.05)
    check(srv.stop() == 0, "killsnap: clean exit")
    srv.start()
    left = [f for f in os.listdir(srv.datadir) if f.endswith(".tmp")]
    check(not left, "killsnap: the killed server's half-written snapshot is still there after two "
          "restarts: %r" % left)
    check(srv.stop() == 0, "killsnap: clean exit")


def test_crash(rounds=5):
    ais = load_ais() if have_data() else None
    rnd = random.Random(SEED + 4)
    ids = ["cv%02d" % k for k in range(50)]
    if ais:
        starts = [ais[m][0][1:3] for m in sorted(ais)[:50]]
    else:
        starts = [(-74.0 + k * 0.001, 40.7) for k in range(50)]
    pos = dict(zip(ids, starts))
    base = now_ms() - 10 * 60000
    clock = {v: base + k for k, v in enumerate(ids)}
    srv = Fleetd(os.path.join(WORK, "crash"), "--fsync", "always")
    pre = {v: None for v in ids}
    summary = []
    srv.start()
    for rnd_no in range(1, rounds + 1):
        events, n_acked, n_sent = crash_stream(srv, ids, pre, pos, clock, rnd, rnd_no)
        restart_after_kill(srv, "crash round %d" % rnd_no)
        c = Client(srv.port)
        got, good = crash_verify(c, ids, pre, events, n_acked, n_sent, rnd_no)
        summary.append("%d sent/%d acked/prefix %s" % (n_sent, n_acked,
                                                       "%d..%d" % (good[0], good[-1]) if good else "none"))
        pre = got
        for v in ids:
            if got[v] and got[v]["ts"] is not None:
                pos[v] = (got[v]["lon"], got[v]["lat"])
        c.close()
    check(srv.stop() == 0, "crash test: clean exit at the end")
    print("crash rounds: " + "; ".join(summary))


def section(fn, *args):
    """Runs one part; an exception is one failure, and the rest still run."""
    try:
        return fn(*args)
    except Exception:
        import traceback
        traceback.print_exc()
        check(False, "%s raised an exception (see above)" % fn.__name__)


def real_data_part():
    srv = Fleetd(os.path.join(WORK, "main"), "--config", CONFIG).start()
    c = Client(srv.port)
    model = Model()
    rnd = random.Random(SEED)
    fleets = test_semantics(c, model, rnd)
    test_track_trip(c, model)
    test_resp3_and_cli(srv.port, model)
    test_trip_list(c, model, rnd)
    test_bad_input(c, model)
    test_arrival_burst()
    fleets = sorted(set(fleets) | {"bad-fleet"})
    test_durability(srv, c, model, fleets, rnd)


def main():
    t_start = time.time()
    try:
        if have_data():
            section(real_data_part)
        else:
            print("fleet: %s is missing: skipping the real-data semantics and durability "
                  "checks" % DATA)
        section(test_edges_and_idle)
        section(test_config_replay)
        section(test_crash)
        section(test_kill_during_snapshot)
    finally:
        fleetlib._cleanup()
    print("fleet: seed %d, %.1f s" % (SEED, time.time() - t_start))
    rc = res.finish()
    if rc == 0:
        shutil.rmtree(WORK, ignore_errors=True)
    else:       # keep the server logs, not the data directories
        for name in os.listdir(WORK):
            if os.path.isdir(os.path.join(WORK, name)):
                shutil.rmtree(os.path.join(WORK, name), ignore_errors=True)
        print("fleet: server logs kept in %s (FLEET_TEST_SEED=%d)" % (WORK, SEED))
    return rc


# Trip timestamps come from real data hours to days ago: the main server
# never closes trips for idleness (test_edges_and_idle covers that).
CONFIG = os.path.join(WORK, "fleetd.yaml")
with open(CONFIG, "w") as _f:
    _f.write("trip-idle-timeout: 0\n")

if __name__ == "__main__":
    sys.exit(main())

"""test_geo_random.py - randomized differential test on real positions.

Loads the real positions of ../shared/data (NYC taxi pickups and dropoffs,
AIS vessel fixes, Chicago trip centroids, the Munich car) into redis-server
and fleetd, then moves members around and runs thousands of random GEO
queries with random shapes, units and options on both, comparing every reply
byte for byte. Skips with a message when the data or redis-server is absent.
"""
import csv
import os
import random
import sys

import fleetlib

DATA = os.environ.get("FLEET_DATA", os.path.join(fleetlib.ROOT, "..", "shared", "data"))
UNITS = ["m", "km", "mi", "ft"]


def real_points():
    pts = []
    with open(os.path.join(DATA, "trips", "nyc_taxi_one_driver_2013-01.csv")) as f:
        for row in csv.reader(f):
            pts.append((float(row[10]), float(row[11])))
            pts.append((float(row[12]), float(row[13])))
    with open(os.path.join(DATA, "tracks", "ais_ny_harbor_2020-06-30_first_hour.csv")) as f:
        for row in csv.DictReader(f):
            pts.append((float(row["LON"]), float(row["LAT"])))
    with open(os.path.join(DATA, "trips", "chicago_taxi_2013-2016.csv")) as f:
        for row in csv.DictReader(f):
            if row["pickup_longitude"]:
                pts.append((float(row["pickup_longitude"]), float(row["pickup_latitude"])))
    return [p for p in pts if -180 <= p[0] <= 180 and -85 <= p[1] <= 85 and p != (0.0, 0.0)]


def random_query(rnd, pts, names):
    cmd = rnd.choice(["GEOSEARCH", "GEOSEARCH", "GEORADIUS", "GEORADIUSBYMEMBER",
                      "GEORADIUS_RO", "GEOSEARCHSTORE"])
    unit = rnd.choice(UNITS)
    scale = {"m": 1, "km": 0.001, "mi": 0.000621371, "ft": 3.28084}[unit]
    radius = "%.3f" % (rnd.choice([50, 200, 1000, 3000, 20000]) * rnd.random() * scale)
    lon, lat = rnd.choice(pts)
    opts = []
    if rnd.random() < 0.5:
        opts.append(rnd.choice(["ASC", "DESC"]))
    if rnd.random() < 0.5:
        opts += ["COUNT", str(rnd.randint(1, 50))]
        if rnd.random() < 0.3:
            opts.append("ANY")
    if cmd == "GEOSEARCHSTORE":
        args = [cmd, "dst", "fleet"]
    else:
        args = [cmd, "fleet"]
    if cmd == "GEORADIUSBYMEMBER":
        args += [rnd.choice(names), radius, unit]
    elif cmd.startswith("GEORADIUS"):
        args += [str(lon), str(lat), radius, unit]
    elif rnd.random() < 0.3:
        args += ["FROMMEMBER", rnd.choice(names)]
    else:
        args += ["FROMLONLAT", str(lon), str(lat)]
    if cmd.startswith("GEOSEARCH"):
        if rnd.random() < 0.5:
            args += ["BYRADIUS", radius, unit]
        else:
            w = "%.3f" % (float(radius) * rnd.uniform(0.5, 3))
            args += ["BYBOX", w, radius, unit]
    if cmd == "GEOSEARCHSTORE":
        if rnd.random() < 0.5:
            opts.append("STOREDIST")
    else:
        for w in ("WITHCOORD", "WITHDIST", "WITHHASH"):
            if rnd.random() < 0.4:
                opts.append(w)
    return args + opts


def main():
    res = fleetlib.Results("geo_random")
    if not os.path.isdir(os.path.join(DATA, "trips")):
        print("geo_random: SKIP no data at %s" % DATA)
        return 0
    redis = fleetlib.start_redis()
    if not redis:
        print("geo_random: SKIP redis-server not installed")
        return 0
    fleet = fleetlib.start_fleetd()
    rnd = random.Random(2024)
    pts = real_points()
    r, f = fleetlib.Conn(redis.port), fleetlib.Conn(fleet.port)
    names = []
    batch = []
    for i, (lon, lat) in enumerate(pts[:20000]):
        name = "v:%d" % i
        names.append(name)
        batch += [str(lon + rnd.uniform(-0.002, 0.002)), str(lat + rnd.uniform(-0.002, 0.002)), name]
        if len(batch) >= 300:
            res.check(r.call("GEOADD", "fleet", *batch) == f.call("GEOADD", "fleet", *batch), "load")
            batch = []
    if batch:
        r.call("GEOADD", "fleet", *batch)
        f.call("GEOADD", "fleet", *batch)
    mismatches = 0
    for q in range(3000):
        if q % 10 == 0:  # vehicles move, some leave
            name = rnd.choice(names)
            lon, lat = rnd.choice(pts)
            mv = ["GEOADD", "fleet", "CH", str(lon), str(lat), name]
            res.check(r.call(*mv) == f.call(*mv), "move")
            if rnd.random() < 0.3:
                gone = rnd.choice(names)
                res.check(r.call("ZREM", "fleet", gone) == f.call("ZREM", "fleet", gone), "zrem")
        args = random_query(rnd, pts, names)
        a, b = r.call(*args), f.call(*args)
        if a != b:
            mismatches += 1
            if mismatches <= 5:
                print("mismatch: %s\n  redis  %r\n  fleetd %r" % (" ".join(args), a[:300], b[:300]))
        if args[0] == "GEOSEARCHSTORE" and q % 5 == 0:
            cmp = ["ZRANGE", "dst", "0", "-1", "WITHSCORES"]
            res.check(r.call(*cmp) == f.call(*cmp), "stored set")
    res.check(mismatches == 0, "%d of 3000 random queries differ" % mismatches)
    for cmd in (["ZCARD", "fleet"], ["ZRANGE", "fleet", "0", "99", "WITHSCORES"],
                ["ZRANGE", "fleet", "(1000", "+inf", "BYSCORE", "LIMIT", "5", "20"],
                ["ZRANK", "fleet", names[123]], ["GEOHASH", "fleet"] + names[:50],
                ["GEOPOS", "fleet"] + names[:50], ["GEODIST", "fleet", names[1], names[2], "mi"]):
        res.check(r.call(*cmd) == f.call(*cmd), " ".join(cmd)[:60])
    r.close()
    f.close()
    redis.stop()
    res.check(fleet.stop() == 0, "fleetd exits 0")
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""replay_tracks.py - replays the real tracks in ../shared/data/tracks into a
running fleetd, until stopped.

Until the replay tool of a later issue exists, this is how `make demo` shows
moving vehicles: the 295 vessels of the NY harbour AIS hour and the Munich
car, each position sent when its (time-compressed) timestamp comes due, as
GEOADD into the geo key `fleet:live` and as VEHICLE.UPDATE (fleets "harbor"
and "munich") with a trip per vehicle and pass. At the end of each pass the
trips end and the vehicles are deleted (their finished trips stay), so the
next pass starts them afresh instead of teleporting them back.
"""
import argparse
import csv
import json
import os
import socket
import sys
import time
from datetime import datetime

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DATA = os.environ.get("FLEET_DATA", os.path.join(ROOT, "..", "shared", "data"))


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def load_events():
    """(seconds from the start of the hour, member, lon, lat), time-sorted."""
    events = []
    ais = os.path.join(DATA, "tracks", "ais_ny_harbor_2020-06-30_first_hour.csv")
    with open(ais, newline="") as f:
        for row in csv.DictReader(f):
            t = datetime.fromisoformat(row["BaseDateTime"])
            secs = t.minute * 60 + t.second
            events.append((secs, "vessel:" + row["MMSI"], row["LON"], row["LAT"]))
    car = os.path.join(DATA, "tracks", "car_munich_2014-09-10_1hz.json")
    with open(car) as f:
        samples = json.load(f)
    t0 = datetime.strptime(samples[0]["time"], "%Y-%m-%d %H:%M:%S%z")
    for s in samples:
        t = datetime.strptime(s["time"], "%Y-%m-%d %H:%M:%S%z")
        lon, lat = s["point"][6:-1].split()
        events.append(((t - t0).total_seconds() % 3600, "car:munich-1", lon, lat))
    events.sort(key=lambda e: e[0])
    return events


def vehicle_update(member, lon, lat):
    kind = "harbor" if member.startswith("vessel:") else "munich"
    status = "busy" if kind == "harbor" else "available"
    return encode(["VEHICLE.UPDATE", member, lon, lat, "FLEET", kind, "STATUS", status])


def drain(sock):
    sock.setblocking(False)
    try:
        while sock.recv(1 << 16):
            pass
    except (BlockingIOError, InterruptedError):
        pass
    sock.setblocking(True)


def sync(sock):
    """Waits until the server has answered everything sent so far: closing
    a socket with replies unread resets it, and the server would drop
    requests it had not yet read."""
    sock.sendall(encode(["PING"]))
    tail = b""
    while not tail.endswith(b"+PONG\r\n"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("fleetd closed the connection")
        tail = (tail + chunk)[-16:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=7878)
    ap.add_argument("--speed", type=float, default=10.0, help="time compression")
    ap.add_argument("--key", default="fleet:live")
    ap.add_argument("--once", action="store_true", help="one pass, no waiting")
    a = ap.parse_args()
    events = load_events()
    members = sorted({e[1] for e in events})
    sock = socket.create_connection(("127.0.0.1", a.port))
    sent = 0
    while True:
        start = time.time()
        started = set()
        i = 0
        while i < len(events):
            due = events[i][0] / a.speed
            if not a.once:
                delay = due - (time.time() - start)
                if delay > 0:
                    time.sleep(min(delay, 0.5))
                    continue
            batch = []
            while i < len(events) and (a.once or events[i][0] / a.speed <= time.time() - start):
                _, member, lon, lat = events[i]
                batch.append(encode(["GEOADD", a.key, lon, lat, member]))
                if not a.once:
                    batch.append(vehicle_update(member, lon, lat))
                    if member not in started:
                        started.add(member)
                        batch.append(encode(["TRIP.START", member]))
                i += 1
            sock.sendall(b"".join(batch))
            sent += len(batch)
            drain(sock)
        if not a.once:
            sock.sendall(b"".join(encode(["TRIP.END", m]) for m in started) +
                         encode(["VEHICLE.DEL"] + members))
            drain(sock)
        print("replay: %d positions sent" % sent, flush=True)
        if a.once:
            sync(sock)
            break
    sock.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        pass

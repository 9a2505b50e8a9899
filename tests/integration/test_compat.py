"""test_compat.py - differential test: the same commands to a real
redis-server and to fleetd, replies compared byte for byte.

Command files hold one command per line (shell-style quoting). A line
starting with '~' is compared as an unordered set of array elements (KEYS,
whose order is a hash-table detail in both servers). Every file is run twice:
in RESP2, and in RESP3 after HELLO 3.
"""
import os
import shlex
import sys

import fleetlib

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = ["server_compat.txt", "geo_compat.txt"]


def split_array(conn_reply):
    """Top-level elements of an array reply, as raw byte strings."""
    c = fleetlib.Conn.__new__(fleetlib.Conn)
    c.buf = conn_reply
    c.sock = None
    end = c._line(0)
    n = int(c.buf[1:end])
    pos, items = end + 2, []
    for _ in range(max(n, 0)):
        nxt = c._end_of(pos)
        items.append(c.buf[pos:nxt])
        pos = nxt
    return sorted(items)


def load(name):
    path = os.path.join(HERE, name)
    if not os.path.exists(path):
        return []
    cmds = []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        unordered = line.startswith("~")
        cmds.append((unordered, shlex.split(line.lstrip("~"))))
    return cmds


def run(res, redis, fleet, proto):
    r, f = fleetlib.Conn(redis.port), fleetlib.Conn(fleet.port)
    if proto == 3:
        r.call("HELLO", "3")
        f.call("HELLO", "3")
    for name in FILES:
        for unordered, args in load(name):
            a, b = r.call(*args), f.call(*args)
            if unordered and a[:1] in b"*~" and b[:1] in b"*~":
                a, b = split_array(a), split_array(b)
            res.check(a == b, "RESP%d %s: %s\n   redis:  %r\n   fleetd: %r"
                      % (proto, name, " ".join(args)[:200], a[:400], b[:400]))
    r.close()
    f.close()


def main():
    res = fleetlib.Results("compat")
    redis = fleetlib.start_redis()
    if not redis:
        print("compat: SKIP redis-server not installed")
        return 0
    fleet = fleetlib.start_fleetd()
    try:
        for proto in (2, 3):
            run(res, redis, fleet, proto)
        res.check(fleet.alive(), "fleetd still running")
    finally:
        redis.stop()
        res.check(fleet.stop() == 0, "fleetd exits 0 on SIGTERM")
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())

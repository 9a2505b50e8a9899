#!/usr/bin/env python3
"""test_routes.py - the routes fleetd serves are the routes its OpenAPI
document describes, no more and no fewer.

Runs `$FLEETD_BIN --routes` (default build/fleetd), which prints one
"METHOD PATH" line per route (path templates as `{id}`; HEAD is implied by
GET and not printed; the dashboard's static files print as `GET /`), and
compares those (method, path) pairs with the operations of
src/net/openapi.json (OPENAPI_JSON overrides the file). Lists every
difference and exits 1 on any; stdlib only.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FLEETD = os.environ.get("FLEETD_BIN", os.path.join(ROOT, "build", "fleetd"))
DOC = os.environ.get("OPENAPI_JSON", os.path.join(ROOT, "src", "net", "openapi.json"))
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LINE = re.compile(r"^([A-Z]+) (/\S*)$")


def code_routes():
    """(method, path) pairs from fleetd --routes, and a list of problems."""
    problems = []
    try:
        p = subprocess.run([FLEETD, "--routes"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        sys.exit("test_routes: %s not found (build it first: make)" % FLEETD)
    except subprocess.TimeoutExpired:
        sys.exit("test_routes: %s --routes did not exit within 10 s" % FLEETD)
    if p.returncode != 0:
        err = p.stderr.strip().splitlines()
        sys.exit("FAIL routes: %s --routes exited %d%s" % (
            FLEETD, p.returncode, (": " + err[0]) if err else ""))
    routes = set()
    for n, line in enumerate(p.stdout.splitlines(), 1):
        if not line.strip():
            continue
        m = LINE.match(line.rstrip())
        if not m:
            problems.append("--routes line %d is not 'METHOD PATH': %r" % (n, line))
            continue
        r = (m.group(1), m.group(2))
        if r in routes:
            problems.append("--routes prints %s %s twice" % r)
        routes.add(r)
    if not routes and not problems:
        problems.append("%s --routes printed no routes" % FLEETD)
    return routes, problems


def doc_routes():
    with open(DOC, encoding="utf-8") as f:
        doc = json.load(f)
    routes = set()
    for path, item in (doc.get("paths") or {}).items():
        for key in item:
            if key in METHODS:
                routes.add((key.upper(), path))
    return routes


def shape(path):
    """The path with template names dropped: /v1/trips/{id} -> /v1/trips/{}."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def main():
    code, problems = code_routes()
    doc = doc_routes()
    only_code = sorted(code - doc, key=lambda r: (r[1], r[0]))
    only_doc = sorted(doc - code, key=lambda r: (r[1], r[0]))
    for m, p in only_code:
        hint = [q for n, q in only_doc if n == m and shape(q) == shape(p)]
        problems.append("in the code, not in %s: %s %s%s" % (
            os.path.relpath(DOC, ROOT), m, p,
            " (the document has %s: template names differ)" % hint[0] if hint else ""))
    for m, p in only_doc:
        problems.append("in %s, not in the code: %s %s" % (os.path.relpath(DOC, ROOT), m, p))
    if problems:
        for line in problems:
            print("FAIL routes: %s" % line)
        print("routes: %d in the code, %d in the document, %d problem(s)"
              % (len(code), len(doc), len(problems)))
        return 1
    print("routes: the code and %s agree on %d routes" % (os.path.relpath(DOC, ROOT), len(code)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# run.sh - the API document's tests (the "api (openapi)" step of
# scripts/run-tests.sh). Builds nothing: it uses $FLEETD_BIN (default
# build/fleetd) and tests/api/node_modules (make api-deps).
#
# 1. test_routes.py: `fleetd --routes` and src/net/openapi.json list the
#    same (method, path) pairs (python3 only, so it runs even without node).
# 2. A fleetd on free ports: the document it serves at /openapi.json is
#    src/net/openapi.json byte for byte, and passes validate_openapi.mjs
#    (OpenAPI 3.1 schema, strict JSON Schema, examples).
# 3. conformance.mjs: every route called once or more against that fleetd,
#    each response checked against the document (status, content type,
#    body schema).
# Without node or tests/api/node_modules steps 2 and 3 are skipped with a
# message, not failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
FLEETD=${FLEETD_BIN:-build/fleetd}
DOC=src/net/openapi.json
rc=0

echo "api: route coverage ($FLEETD --routes vs $DOC)"
python3 tests/api/test_routes.py || rc=1

if ! command -v node >/dev/null 2>&1; then
    echo "api: SKIP served-document checks: node is not installed (scripts/setup.sh installs nodejs npm)"
    exit $rc
fi
if [ ! -d tests/api/node_modules ]; then
    echo "api: SKIP served-document checks: tests/api/node_modules is missing (run: make api-deps)"
    exit $rc
fi
if [ ! -x "$FLEETD" ]; then
    echo "FAIL api: $FLEETD is missing or not executable (build it: make)"
    exit 1
fi

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
P=$(port); H=$(port)
tmp=$(mktemp -d)
"$FLEETD" --port "$P" --http-port "$H" --dir "$tmp/data" >"$tmp/fleetd.log" 2>&1 &
PID=$!
cleanup() {
    kill "$PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

ready=0
for _ in $(seq 150); do
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "FAIL api: fleetd exited during start; its log:"
        sed 's/^/    /' "$tmp/fleetd.log"
        exit 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$H/readyz")
    if [ "$code" = 200 ]; then ready=1; break; fi
    sleep 0.1
done
if [ $ready != 1 ]; then
    echo "FAIL api: /readyz never answered 200 within 15 s (last status: ${code:-none}); fleetd's log:"
    sed 's/^/    /' "$tmp/fleetd.log"
    exit 1
fi

echo "api: served document equals $DOC"
if ! curl -sS --max-time 10 -o "$tmp/served.json" "http://127.0.0.1:$H/openapi.json"; then
    echo "FAIL api: GET /openapi.json failed"
    rc=1
elif ! cmp -s "$tmp/served.json" "$DOC"; then
    echo "FAIL api: GET /openapi.json ($(wc -c <"$tmp/served.json") bytes) differs from $DOC ($(wc -c <"$DOC") bytes):"
    cmp "$tmp/served.json" "$DOC" | sed 's/^/    /'
    echo "    (the document is embedded at build time: is $FLEETD older than $DOC? make)"
    rc=1
fi

echo "api: validate the served document"
node tests/api/validate_openapi.mjs "$H" || rc=1

echo "api: responses conform to the document"
node tests/api/conformance.mjs "$H" || rc=1

if ! kill -0 "$PID" 2>/dev/null; then
    echo "FAIL api: fleetd died during the tests; its log:"
    sed 's/^/    /' "$tmp/fleetd.log"
    rc=1
fi
[ $rc = 0 ] && echo "api: all passed" || echo "api: FAILED"
exit $rc

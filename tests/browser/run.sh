#!/usr/bin/env bash
# run.sh - the dashboard's browser test (test_dashboard.mjs) in Debian's
# headless chromium; skips with a message (exit 0) when the browser, the
# dashboard's npm packages (`make web`) or the shared data are not there.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x /usr/bin/chromium ]; then
    echo "browser: SKIP: /usr/bin/chromium missing (scripts/setup.sh installs Debian's chromium)"
    exit 0
fi
if [ ! -d web/node_modules/playwright-core ]; then
    echo "browser: SKIP: web/node_modules missing (run make web)"
    exit 0
fi
# The vehicles the test puts in are real NYC taxi pickups (fleetd.mjs).
if [ ! -f ../shared/data/trips/nyc_taxi_one_driver_2013-01.csv ]; then
    echo "browser: SKIP: ../shared/data/trips is absent (the test places its vehicles at real NYC pickups)"
    exit 0
fi
if [ ! -f build/web/index.html ]; then
    echo "browser: FAIL: build/web/index.html missing (run make web)"
    exit 1
fi
exec node tests/browser/test_dashboard.mjs

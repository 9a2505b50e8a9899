#!/usr/bin/env bash
# run.sh - the dashboard's browser test (test_dashboard.mjs) in Debian's
# headless chromium; skips with a message (exit 0) when the browser or the
# dashboard's npm packages (`make web`) are not there.
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
if [ ! -f build/web/index.html ]; then
    echo "browser: FAIL: build/web/index.html missing (run make web)"
    exit 1
fi
exec node tests/browser/test_dashboard.mjs

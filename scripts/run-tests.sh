#!/usr/bin/env bash
# run-tests.sh - the whole suite behind `make test`.
#
# 1. gcc build (-Werror) and clang build (-Werror), unit tests.
# 2. ASan+UBSan build: unit tests and the integration tests against the
#    instrumented fleetd.
# 3. Integration tests against the optimised fleetd: differential tests with
#    a real redis-server, protocol abuse, redis-cli, metrics with promtool.
# 4. libFuzzer targets, each for a bounded time.
# Prints one closing line "N passed, N failed" and exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS=2
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
passed=0
failed=0
failures=()

step() { # step NAME COMMAND...
    local name=$1; shift
    local start=$SECONDS
    echo "=== $name"
    if "$@"; then
        passed=$((passed + 1))
        echo "--- ok   $name ($((SECONDS - start))s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "--- FAIL $name ($((SECONDS - start))s)"
    fi
}

run_units() { # run_units BUILD_DIR
    local rc=0
    for t in "$1"/tests/test_*; do
        [ -x "$t" ] || continue
        echo "unit: $t"
        "$t" || rc=1
    done
    return $rc
}

integration() { # integration FLEETD_BIN
    local rc=0
    for t in tests/integration/test_*.py; do
        FLEETD_BIN=$1 python3 "$t" || rc=1
    done
    for t in tests/integration/test_*.sh; do
        [ -e "$t" ] || continue
        FLEETD_BIN=$1 bash "$t" || rc=1
    done
    return $rc
}

step "build (gcc)" make -j$JOBS all unit
step "build (clang, -Werror)" make -j$JOBS CC=clang BUILD=build/clang all unit
step "unit tests" run_units build
step "build (ASan+UBSan)" make -j$JOBS SANITIZER=address,undefined all unit
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
step "unit tests (ASan+UBSan)" run_units build/san
step "integration (ASan+UBSan fleetd)" integration build/san/fleetd
step "integration" integration build/fleetd
step "api (openapi)" bash tests/api/run.sh
step "browser (chromium)" bash tests/browser/run.sh
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
    step "fuzz (${FUZZ_SECONDS}s per target)" bash tests/fuzz/run.sh "$FUZZ_SECONDS"
fi

echo
if [ $failed -gt 0 ]; then
    printf 'failed step: %s\n' "${failures[@]}"
fi
echo "suite: $passed passed, $failed failed"
[ $failed -eq 0 ]

#!/usr/bin/env bash
# run.sh SECONDS - builds the libFuzzer targets with ASan+UBSan and runs each
# for SECONDS from its checked-in seed corpus (new inputs go to a scratch
# copy, so the repository corpus only changes when someone commits to it).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
make -s -f tests/fuzz/Makefile
rc=0
for t in resp command log store http; do
    dict=(-dict=tests/fuzz/resp.dict)
    case $t in
    log|store) dict=() ;; # binary formats: RESP tokens do not help
    http) dict=(-dict=tests/fuzz/http.dict) ;;
    esac
    work=$(mktemp -d)
    cp tests/fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
    echo "fuzz_$t: ${secs}s"
    if ! build/fuzz/fuzz_$t -max_total_time="$secs" -max_len=4096 -timeout=10 \
         -rss_limit_mb=2048 "${dict[@]}" -print_final_stats=1 \
         -artifact_prefix=build/fuzz/ "$work" 2>build/fuzz/fuzz_$t.log; then
        tail -50 build/fuzz/fuzz_$t.log
        rc=1
    fi
    grep -E "stat::number_of_executed_units|Done" build/fuzz/fuzz_$t.log | tail -2
    rm -rf "$work"
done
exit $rc

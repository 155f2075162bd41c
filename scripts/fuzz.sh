#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan+UBSan) and run each for SECONDS (default 20) from the
# committed seed corpus in fuzz/corpus/<target>, JOBS (default 2) targets at a time: the test
# script runs this stage alone, so it may use both cores. A crash, leak, timeout or broken
# invariant fails the run and leaves the input in build-fuzz/crash-<target>-*. Prints one line
# per target, in a fixed order.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

seconds=${1:-20}
jobs=${JOBS:-2}
targets=(imap pop3 config session cache_record verdict alert sasl accounts)
CC=clang build build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dwerror=true || exit 1
meson compile -C "$ROOT/build-fuzz" "${targets[@]/#/fuzz_}" >/dev/null || exit 1
# FUZZ_BUILD_ONLY=1: build the targets and stop (the test script builds them ahead of the stage).
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0

# run_target T: fuzz one target; its verdict goes to build-fuzz/fuzz_T.result.
run_target() {
    local t=$1 work="$ROOT/build-fuzz/corpus-work/$1" log="$ROOT/build-fuzz/fuzz_$1.log"
    local result="$ROOT/build-fuzz/fuzz_$1.result" stats
    mkdir -p "$work"
    cp -n "$ROOT/fuzz/corpus/$t/"* "$work/"
    if "$ROOT/build-fuzz/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
        -artifact_prefix="$ROOT/build-fuzz/crash-$t-" "$work" >"$log" 2>&1; then
        stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 |
            sed -E 's/^#([0-9]+).*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*exec\/s: ([0-9]+).*/\1 runs, coverage \2 edges, \3 features, corpus \4, \5 exec\/s/')
        echo "fuzz_$t: 1 passed, 0 failed ($stats in ${seconds}s)" >"$result"
    else
        { echo "fuzz_$t: 0 passed, 1 failed (see $log)"
          grep -E 'ERROR|SUMMARY|deadly|Test unit written|oracle' "$log" | head -n 5; } >"$result"
    fi
}

rm -f "$ROOT"/build-fuzz/fuzz_*.result
running=0
for t in "${targets[@]}"; do
    run_target "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

status=0
for t in "${targets[@]}"; do
    result="$ROOT/build-fuzz/fuzz_$t.result"
    if [ -s "$result" ]; then
        cat "$result"
        grep -q "^fuzz_$t: 1 passed, 0 failed" "$result" || status=1
    else
        echo "fuzz_$t: 0 passed, 1 failed (no result)"
        status=1
    fi
done
exit $status

#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan+UBSan) and run each for SECONDS (default 30) from the
# committed seed corpus in fuzz/corpus/<target>. A crash, leak, timeout or broken invariant fails
# the run and leaves the input in build-fuzz/crash-<target>-*. Prints one line per target.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

seconds=${1:-30}
CC=clang build build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dwerror=true || exit 1
meson compile -C "$ROOT/build-fuzz" fuzz_imap fuzz_pop3 fuzz_config fuzz_session \
    fuzz_cache_record >/dev/null || exit 1

status=0
for t in imap pop3 config session cache_record; do
    work="$ROOT/build-fuzz/corpus-work/$t"
    log="$ROOT/build-fuzz/fuzz_$t.log"
    mkdir -p "$work"
    cp -n "$ROOT/fuzz/corpus/$t/"* "$work/"
    if "$ROOT/build-fuzz/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
        -artifact_prefix="$ROOT/build-fuzz/crash-$t-" "$work" >"$log" 2>&1; then
        stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 |
            sed -E 's/^#([0-9]+).*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*exec\/s: ([0-9]+).*/\1 runs, coverage \2 edges, \3 features, corpus \4, \5 exec\/s/')
        echo "fuzz_$t: 1 passed, 0 failed ($stats in ${seconds}s)"
    else
        echo "fuzz_$t: 0 passed, 1 failed (see $log)"
        grep -E 'ERROR|SUMMARY|deadly|Test unit written' "$log" | head -n 5
        status=1
    fi
done
exit $status

#!/usr/bin/env bash
# Benchmark: build, start throwaway Dovecots on loopback, measure pam_mailauth against the
# protocol's floor (in process) and against curl (as a process), print one report and write it,
# with the hand-written analysis in bench/analysis.md, to bench/RESULTS.md.
# Takes about 3 minutes; --quick takes about 1.5. --cache-only prints the credential cache section
# alone, --failover-only the failover section (as root; --before OLD_BUILD_DIR adds an older
# build's module), and neither writes anything. No timing is asserted anywhere.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

install_missing "${BUILD_PACKAGES[@]}" "${RUN_PACKAGES[@]}" curl
say "building"
build build -Dwerror=true
results=$(mktemp)
MAILAUTH_BENCH_RESULTS="$results" "$PY" "$ROOT/bench/run.py" "$ROOT/build" "$@"
if [ -s "$results" ]; then   # empty after a partial run (--cache-only): printed, not written
    { cat "$results"; echo; cat "$ROOT/bench/analysis.md"; } > "$ROOT/bench/RESULTS.md"
    say "written to bench/RESULTS.md"
fi
rm -f "$results"

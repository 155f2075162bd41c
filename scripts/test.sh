#!/usr/bin/env bash
# The whole test suite. Installs what is missing (apt-get, via sudo when not root), fetches and
# unpacks Cyrus and Courier for the interop tests (scripts/fetch_servers.sh), then, one
# stage after the other (but 3 and 4, which share the 2 CI cores without starving each other,
# and the builds, which compile beside the system suite):
#   1. gcc build with -Werror: unit tests, integration tests (real libpam, real Dovecot, Cyrus
#      and Courier, fake servers, 32-thread test), DESTDIR install check;
#   2. clang build with -Werror;
#   3. gcc ASan+UBSan build: the same tests, the integration cases in two halves side by side
#      (test setup 'halves': each half in a /tmp of its own, together every case once);
#   4. alongside 3, pamtester under valgrind memcheck for a fixed quarter of each integration file's
#      cases (all of them run under ASan; not the Cyrus/Courier interop file: same code paths,
#      minutes of CI budget), in a /tmp of its own;
#   5. clang ThreadSanitizer build: the 32-thread test;
#   6. each libFuzzer target for FUZZ_SECONDS (default 15) from the committed corpus, two at a
#      time;
#   and, after stage 1 with the gcc build, the system suite (root): the Debian package, real sshd
#   and Apache, pam_faillock; the builds of stages 2, 3, 5 and 6 compile beside it.
# Every stage's result file is deleted before the stage runs and must exist, non-empty and
# naming the tests expected of it, for the summary to count it (scripts/summarize.py). The
# expected names are what meson itself lists for the suites, so a test added to meson.build is
# expected without editing this file, and one that did not run is a failure.
# Ends with one line "tests: N passed, N failed" (N counts every run of every check).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

install_missing "${BUILD_PACKAGES[@]}" "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}" || exit 1
cd "$ROOT" || exit 1
logs="$ROOT/build-logs"
rm -rf "$logs"
mkdir -p "$logs"
status=0
# Without them the interop tests fail (with the reason); the other stages still run.
fetch_servers || status=1
started=$SECONDS
stage_start=$SECONDS
stage() {
    [ "$stage_start" -ne "$SECONDS" ] && printf '(%d s)\n' $((SECONDS - stage_start))
    stage_start=$SECONDS
    say "$1"
}

# meson_stage NAME BUILD_DIR [meson test arguments]: run meson test with a fresh testlog named
# NAME.json and copy it to $logs. A stale log from an earlier run is removed first, so a suite
# that matched nothing (meson then exits 0 and writes no log) shows up as missing.
meson_stage() {
    local name=$1 dir=$2 log=$1 arg prev=
    shift 2
    # With --setup S meson writes the log as NAME-S.
    for arg in "$@"; do
        [ "$prev" = --setup ] && log="$name-$arg"
        prev=$arg
    done
    rm -f "$dir/meson-logs/$log.json" "$dir/meson-logs/$log.txt"
    local rc=0
    meson test -C "$dir" --no-rebuild --print-errorlogs --logbase "$name" "$@" || rc=1
    if [ -s "$dir/meson-logs/$log.json" ]; then
        cp "$dir/meson-logs/$log.json" "$logs/$name.json"
    else
        echo "no test results from $dir ($name)"
        rc=1
    fi
    [ "$rc" -eq 0 ] || status=1
    return "$rc"
}

# listed DIR [meson test --list arguments]: the test names meson knows, comma-separated.
listed() {
    local dir=$1
    shift
    meson test -C "$dir" --no-rebuild --list "$@" 2>/dev/null |
        sed -n 's/^pam_mailauth:[^ ]* \/ //p' | paste -sd, -
}

stage "1/6 gcc -Werror: unit, integration, install"
build build -Dwerror=true || exit 1
QUICK=$(listed build)
[ -n "$QUICK" ] || { echo "meson lists no tests for the default setup"; exit 1; }
expect=(--expect "quick.json:$QUICK"
        --expect "system.json:$(listed build --suite system)"
        --expect "valgrind.json:$(listed build --suite valgrind)"
        --expect "tsan.json:$(listed build --suite concurrency)"
        --expect "clang.txt:clang-build"
        --expect "fuzz.txt:fuzz_imap,fuzz_pop3,fuzz_config,fuzz_session,fuzz_cache_record,fuzz_verdict,fuzz_alert,fuzz_sasl,fuzz_accounts")
meson_stage quick build

# The other builds (clang, ASan+UBSan, ThreadSanitizer, the fuzz targets) compile beside the system
# suite, which mostly waits on dpkg, sshd and Apache and asserts no timing; each build's success
# is noted in a file, and the stage that needs it fails (or stops the run, as before) without it.
other_builds() {
    rm -f "$logs"/*.built
    CC=clang build build-clang -Dwerror=true && : >"$logs/clang.built"
    build build-asan -Db_sanitize=address,undefined -Dwerror=true && : >"$logs/asan.built"
    CC=clang build build-tsan -Db_sanitize=thread -Db_lundef=false -Dwerror=true &&
        : >"$logs/tsan.built"
    FUZZ_BUILD_ONLY=1 bash "$ROOT/scripts/fuzz.sh"
}
stage "system: Debian package, sshd, Apache, pam_faillock (root; leaves the machine as found); beside it the clang, ASan, TSan and fuzzing builds"
other_builds >"$logs/builds.txt" 2>&1 &
builds_job=$!
meson_stage system build --suite system
wait "$builds_job"
cat "$logs/builds.txt"

stage "2/6 clang -Werror build"
if [ -f "$logs/clang.built" ]; then
    echo "clang-build: 1 passed, 0 failed" | tee "$logs/clang.txt"
else
    echo "clang-build: 0 passed, 1 failed" | tee "$logs/clang.txt"
    status=1
fi

stage "3/6 and 4/6, side by side: ASan+UBSan (unit and integration) and valgrind memcheck"
[ -f "$logs/asan.built" ] || { echo "the ASan+UBSan build failed"; exit 1; }
HALVES=$(listed build-asan --setup halves)
[ -n "$HALVES" ] || { echo "meson lists no tests for the halves setup"; exit 1; }
# The halves together count as many cases as the plain build's integration run: none lost.
expect+=(--expect "asan.json:$HALVES"
         --same-count "quick.json:integration=asan.json:integration-half0+integration-half1")
# Side by side: the ASan run mostly waits (servers' failure pauses, timeouts under test), memcheck
# keeps one core busy; time limits scale with each (MAILAUTH_TIME_SCALE 3 and 10), and the
# memcheck run and each ASan half have a /tmp of their own (tests/private_tmp.sh), so none
# disturbs another. Three at once: the two integration halves (which start first) and the unit
# tests one after the other beside them.
# Unit tests keep meson's default limit (30 s) in the plain build; under ASan, next to memcheck
# on a shared machine, they get three times that (test_tls_cache took 61 s on a loaded machine).
meson_stage asan build-asan --setup halves --num-processes 3 --timeout-multiplier 3 >"$logs/asan-stage.txt" 2>&1 &
asan_job=$!
meson_stage valgrind build --suite valgrind || true
wait "$asan_job" || status=1
echo "-- ASan+UBSan:"
cat "$logs/asan-stage.txt"

stage "5/6 ThreadSanitizer: 32 threads with their own PAM handles"
[ -f "$logs/tsan.built" ] || { echo "the ThreadSanitizer build failed"; exit 1; }
TSAN_OPTIONS="halt_on_error=1 exitcode=66" meson_stage tsan build-tsan --suite concurrency

stage "6/6 fuzzing, ${FUZZ_SECONDS:-15}s per target, two at a time"
bash "$ROOT/scripts/fuzz.sh" "${FUZZ_SECONDS:-15}" 2>&1 | tee "$logs/fuzz.txt" || status=1

stage "summary (whole run $((SECONDS - started)) s)"
"$PY" "$ROOT/scripts/summarize.py" "${expect[@]}" "$logs"/quick.json "$logs"/system.json \
    "$logs"/clang.txt \
    "$logs"/asan.json "$logs"/valgrind.json "$logs"/tsan.json "$logs"/fuzz.txt || status=1
exit $status

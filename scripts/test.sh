#!/usr/bin/env bash
# The whole test suite. Installs what is missing (apt-get, via sudo when not root), then:
#   1. gcc build with -Werror: unit tests, integration tests (real libpam, real Dovecot, fake
#      servers, 32-thread test), DESTDIR install check;
#   2. clang build with -Werror;
#   3. gcc ASan+UBSan build: the same tests;
#   4. every integration case again with pamtester under valgrind memcheck;
#   5. clang ThreadSanitizer build: the 32-thread test;
#   6. each libFuzzer target for FUZZ_SECONDS (default 30) from the committed corpus;
#   and, with the gcc build, the system suite (root): the Debian package, real sshd and Apache.
# Ends with one line "tests: N passed, N failed" (N counts every run of every check).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

install_missing "${BUILD_PACKAGES[@]}" "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}" || exit 1
cd "$ROOT" || exit 1
logs="$ROOT/build-logs"
rm -rf "$logs"
mkdir -p "$logs"
status=0
stage() { say "$1"; }

stage "1/6 gcc -Werror: unit, integration, install"
build build -Dwerror=true || exit 1
meson test -C build --no-rebuild --print-errorlogs --logbase quick || status=1
cp build/meson-logs/quick.json "$logs/"

stage "system: Debian package, sshd, Apache, pam_faillock (root; leaves the machine as found)"
meson test -C build --no-rebuild --print-errorlogs --suite system --logbase system || status=1
cp build/meson-logs/system.json "$logs/"

stage "2/6 clang -Werror build"
if CC=clang build build-clang -Dwerror=true; then
    echo "clang-build: 1 passed, 0 failed" | tee "$logs/clang.txt"
else
    echo "clang-build: 0 passed, 1 failed" | tee "$logs/clang.txt"
    status=1
fi

stage "3/6 ASan+UBSan: unit and integration"
build build-asan -Db_sanitize=address,undefined -Dwerror=true || exit 1
meson test -C build-asan --no-rebuild --print-errorlogs --logbase asan || status=1
cp build-asan/meson-logs/asan.json "$logs/"

# The fuzzers use one core at the lowest priority while stages 4 and 5 mostly wait on sockets.
stage "6/6 (in the background) fuzzing, ${FUZZ_SECONDS:-30}s per target"
nice -n 19 bash "$ROOT/scripts/fuzz.sh" "${FUZZ_SECONDS:-30}" >"$logs/fuzz.txt" 2>&1 &
fuzz_pid=$!

stage "4/6 valgrind memcheck: every integration case"
meson test -C build --no-rebuild --print-errorlogs --suite valgrind --logbase valgrind || status=1
cp build/meson-logs/valgrind.json "$logs/"

stage "5/6 ThreadSanitizer: 32 threads with their own PAM handles"
CC=clang build build-tsan -Db_sanitize=thread -Db_lundef=false -Dwerror=true || exit 1
TSAN_OPTIONS="halt_on_error=1 exitcode=66" \
    meson test -C build-tsan --no-rebuild --print-errorlogs --suite concurrency --logbase tsan ||
    status=1
cp build-tsan/meson-logs/tsan.json "$logs/"

stage "6/6 fuzzing results"
wait "$fuzz_pid" || status=1
cat "$logs/fuzz.txt"

say "summary"
"$PY" "$ROOT/scripts/summarize.py" "$logs"/* || status=1
exit $status

#!/usr/bin/env bash
# The whole test suite: installs what is missing (apt-get, via sudo when not root), builds with
# -Werror, runs the unit tests and the integration tests (real libpam, real Dovecot on loopback,
# scripted fake servers), and prints one closing line "tests: N passed, N failed".
set -euo pipefail
. "$(dirname "$0")/lib.sh"

install_missing "${BUILD_PACKAGES[@]}" "${RUN_PACKAGES[@]}" python3-pytest
cd "$ROOT"

say "build (gcc, -Werror)"
build build -Dwerror=true

say "unit and integration tests"
status=0
meson test -C build --print-errorlogs --no-rebuild || status=1
"$PY" "$ROOT/scripts/summarize.py" build/meson-logs/testlog.json || status=1
exit $status

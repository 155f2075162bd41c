#!/usr/bin/env bash
# Try it: build the module and log in through real PAM (pamtester under pam_wrapper) against a
# throwaway Dovecot on loopback, once with the right password and once with a wrong one.
# Installs what is missing with apt-get (via sudo when not root). Touches no system config.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

install_missing "${BUILD_PACKAGES[@]}" "${RUN_PACKAGES[@]}"
say "building"
build build -Dwerror=true
exec "$PY" "$ROOT/scripts/demo.py" "$ROOT/build/pam_mailauth.so"

# Shared by scripts/demo.sh and scripts/test.sh: install what is missing, build.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3   # Debian's python: python3-cryptography and pytest are installed for it

say() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# install_missing PKG...: apt-get install only the packages that are not installed yet.
install_missing() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # Debian's dovecot postinst may try to start the system service; that is not ours to touch.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" </dev/null
}

BUILD_PACKAGES=(gcc libc6-dev pkgconf meson ninja-build libpam0g-dev libssl-dev libconfuse-dev
                libcrypt-dev)
RUN_PACKAGES=(pamtester libpam-wrapper dovecot-imapd dovecot-pop3d python3 python3-cryptography
              ca-certificates)
TEST_PACKAGES=(python3-pytest clang libclang-rt-14-dev valgrind man-db groff-base clang-format
               git)

# build DIR [meson options...]: configure (once) and compile.
build() {
    local dir=$1
    shift
    if [ ! -f "$ROOT/$dir/build.ninja" ]; then
        meson setup "$ROOT/$dir" "$ROOT" "$@" >/dev/null
    fi
    meson compile -C "$ROOT/$dir" >/dev/null
}

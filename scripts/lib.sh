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
    # The postinst scripts of dovecot, openssh-server and apache2 start their system services
    # through invoke-rc.d; none of them is ours to run (the tests start private instances on
    # high ports). A policy-rc.d that refuses every start does for the length of the install,
    # unless the machine already has one (containers do), which is then left as it is.
    local policy=/usr/sbin/policy-rc.d added_policy=0 rc
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 0755 $policy" &&
            added_policy=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" </dev/null
    rc=$?
    [ "$added_policy" -eq 0 ] || as_root rm -f "$policy"
    return $rc
}

BUILD_PACKAGES=(gcc libc6-dev pkgconf meson ninja-build libpam0g-dev libssl-dev libconfuse-dev
                libc-ares-dev libcrypt-dev)
RUN_PACKAGES=(pamtester libpam-wrapper dovecot-imapd dovecot-pop3d python3 python3-cryptography
              ca-certificates)
# The system suite: the Debian package (build and lint), real sshd and Apache clients.
SYSTEM_PACKAGES=(build-essential debhelper dpkg-dev lintian openssh-server openssh-client sshpass
                 apache2 libapache2-mod-authnz-pam)
# The shared libraries that the unpacked Cyrus and Courier binaries link (fetch_servers below),
# perl for Courier's makeuserdb; none of these conflicts with Dovecot.
SERVER_LIB_PACKAGES=(libsasl2-2 libsasl2-modules libsasl2-modules-db libdb5.3 libwrap0 libical3
                     libicu72 libjansson4 libpq5 libsqlite3-0 libxapian30 libxml2 libkrb5-3
                     libldap-2.5-0 libpcre3 libcourier-unicode4 libgamin0 libgdbm6 libgnutls30
                     libidn12 libltdl7 perl)
TEST_PACKAGES=(python3-pytest clang libclang-rt-14-dev valgrind man-db groff-base clang-format locales
               git iproute2 util-linux fail2ban "${SYSTEM_PACKAGES[@]}" "${SERVER_LIB_PACKAGES[@]}")

# fetch_servers: download and unpack (never install) Cyrus and Courier for the interop tests.
fetch_servers() {
    say "Cyrus and Courier for the interop tests (apt-get download + dpkg -x, not installed)"
    as_root bash "$ROOT/scripts/fetch_servers.sh"
}

# build DIR [meson options...]: configure (once) and compile.
build() {
    local dir=$1
    shift
    if [ ! -f "$ROOT/$dir/build.ninja" ]; then
        meson setup "$ROOT/$dir" "$ROOT" "$@" >/dev/null
    fi
    meson compile -C "$ROOT/$dir" >/dev/null
}

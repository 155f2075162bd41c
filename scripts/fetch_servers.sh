#!/usr/bin/env bash
# Unpack Cyrus IMAP 3.6 and Courier-IMAP/POP3 (Debian 12 packages) for the interop tests,
# without installing them: their packages conflict with Dovecot's (imap-server, pop3-server), so
# they are fetched with `apt-get download` and unpacked with `dpkg -x` into a cache directory.
# The tests run them in a private mount namespace where that tree's /usr lies over the system's
# (tests/lib/mailns.py). Only the shared libraries they link are installed normally (lib.sh
# SERVER_LIB_PACKAGES): none of those conflicts with anything.
#
# usage: fetch_servers.sh [DIR]   (default $MAILAUTH_SERVERS_DIR or <repo>/build-servers)
# Leaves DIR/debs/*.deb and DIR/root/ with DIR/root/.unpacked listing the packages in it; a
# second run with the same package list does nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-${MAILAUTH_SERVERS_DIR:-$ROOT/build-servers}}
PACKAGES=(cyrus-common cyrus-imapd cyrus-pop3d sasl2-bin
          courier-base courier-imap courier-pop courier-authlib courier-authdaemon
          courier-authlib-userdb)

stamp="$DIR/root/.unpacked"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${PACKAGES[*]}" ]; then
    exit 0
fi
rm -rf "$DIR/debs" "$DIR/root"
mkdir -p "$DIR/debs" "$DIR/root"
# apt-get download writes into the current directory (as root it notes that the download is
# unsandboxed, which is harmless). Stale or missing package lists: update once and retry.
download() {
    (cd "$DIR/debs" && apt-get download -q "${PACKAGES[@]}")
}
if ! download; then
    apt-get update -qq
    if ! download; then
        echo "fetch_servers: apt-get download failed" >&2
        exit 1
    fi
fi
for p in "${PACKAGES[@]}"; do
    debs=("$DIR/debs/${p}"_*.deb)
    if [ ! -f "${debs[0]}" ]; then
        echo "fetch_servers: apt-get download did not fetch $p" >&2
        exit 1
    fi
    dpkg -x "${debs[0]}" "$DIR/root"
done
for f in usr/lib/cyrus/bin/master usr/lib/cyrus/bin/imapd usr/lib/cyrus/bin/pop3d \
         usr/sbin/saslauthd usr/sbin/saslpasswd2 usr/sbin/couriertcpd usr/sbin/makeuserdb \
         usr/lib/courier/courier-authlib/authdaemond usr/lib/courier/courier/imaplogin \
         usr/lib/courier/courier/courierpop3login usr/bin/couriertls; do
    [ -x "$DIR/root/$f" ] || { echo "fetch_servers: $f missing after unpacking" >&2; exit 1; }
done
echo "${PACKAGES[*]}" >"$stamp"
echo "fetch_servers: unpacked ${#PACKAGES[@]} packages into $DIR/root"

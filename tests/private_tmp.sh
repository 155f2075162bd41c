#!/usr/bin/env bash
# private_tmp.sh DIR... -- COMMAND [ARG...]: run COMMAND in a private mount namespace whose /tmp
# is an empty tmpfs of its own, with each DIR that lives under /tmp (the source and build
# trees) bound back in at the same path. pam_wrapper copies every service dir to /tmp/pam.X,
# choosing X by looking for a free name before creating it: two test runs side by side (the
# test script runs the valgrind stage next to the ASan stage) could pick the same X at once and
# read each other's service files. With its own /tmp a run cannot. Needs root (unshare -m,
# mount), like the tests it runs; nothing outside the namespace changes, and the empty holder
# directory in /run is removed afterwards.
set -euo pipefail
dirs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    dirs+=("$(realpath "$1")")
    shift
done
[ $# -gt 1 ] || { echo "usage: private_tmp.sh DIR... -- COMMAND [ARG...]" >&2; exit 2; }
shift
hold=$(mktemp -d /run/mailauth-tmp-hold.XXXXXX)
trap 'rmdir "$hold"' EXIT
unshare --mount --propagation private -- bash -c '
    set -e
    hold=$1 n=$2
    shift 2
    dirs=("${@:1:n}")
    shift "$n"
    mount --bind /tmp "$hold"
    mount -t tmpfs -o mode=1777 mailauth-private-tmp /tmp
    for d in "${dirs[@]}"; do
        case "$d" in
        /tmp/*) mkdir -p "$d" && mount --bind "$hold${d#/tmp}" "$d" ;;
        esac
    done
    "$@"' private_tmp "$hold" "${#dirs[@]}" "${dirs[@]}" "$@"

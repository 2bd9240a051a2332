#!/bin/sh
# Install the Debian packages echod needs, if any are missing.
#   tools/deps.sh build   what `make` and `make run` need
#   tools/deps.sh check   also what `make check` needs
# As root it runs apt-get; otherwise it prints the command and fails.
set -eu

# nettle-dev: HMAC-SHA-256 for STAMP's authenticated mode (src/stamp.c).
BUILD="build-essential pkg-config libconfig-dev libsystemd-dev nettle-dev"
# systemd: systemd-analyze, systemd-socket-activate and the PID 1 that the
# system test boots; util-linux: unshare, nsenter, setpriv for that box.
# Packaging tests: make dist (git), make deb (debhelper, fakeroot), lintian,
# make rpm (rpm), rpmlint, hardening-check (devscripts), man page lint
# (mandoc).
PKG="git debhelper fakeroot lintian rpm rpmlint devscripts mandoc"
# Fuzzing (make fuzz, and the fuzz smoke in make check): clang-14 only
# recommends libclang-rt-14-dev, which holds the libFuzzer runtime.
FUZZ="clang-14 libclang-rt-14-dev"
# Integration peers: a real HAProxy sends PROXY headers (test_haproxy.py);
# Prometheus scrapes /metrics and promtool checks its text (test_metrics.py);
# scapy's STAMP codec builds and parses the packets of test_stamp.py.
PEERS="haproxy prometheus python3-scapy"
CHECK="$BUILD libcmocka-dev python3 cppcheck clang-tidy systemd util-linux $PKG $FUZZ $PEERS"

case "${1:-build}" in
build) want=$BUILD ;;
check) want=$CHECK ;;
*) echo "usage: $0 build|check" >&2; exit 64 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
    # Not Debian: trust pkg-config and hope for the best.
    pkg-config --exists libconfig libsystemd nettle || {
        echo "deps: libconfig, libsystemd or nettle development files are" \
            "missing" >&2
        exit 1
    }
    exit 0
fi

missing=
for p in $want; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
    *" installed") ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages:$missing" >&2
    echo "deps: run as root: apt-get update && $cmd" >&2
    exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $missing >&2

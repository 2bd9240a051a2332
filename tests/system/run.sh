#!/bin/sh
# run.sh - the system test: echod installed with `make install` and run by
# a real systemd (booted by box.sh in private namespaces). Prints one line
# per step with its time. Exit 0 passed, 77 skipped ("SKIP: reason"),
# anything else failed. Runs in well under a minute; hard limit 300 s.
#   tests/system/run.sh          (as root; `make check` runs it)
set -u
umask 022

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
P=$(mktemp -d /tmp/echod-payload.XXXXXX)
trap 'rm -rf "$P"' EXIT
trap 'exit 124' TERM INT

# What a package would install, at the paths a package would use; with
# SANITIZE=1 (as `make check SANITIZE=1` sets it) the sanitized build.
SAN=${SANITIZE:-}
make -s -C "$ROOT" install SANITIZE="$SAN" DESTDIR="$P" PREFIX=/usr sysconfdir=/etc \
    systemdunitdir=/usr/lib/systemd/system sysusersdir=/usr/lib/sysusers.d \
    >"$P.make" 2>&1 || { cat "$P.make"; rm -f "$P.make"; exit 1; }
rm -f "$P.make"
grep -qx 'ExecStart=/usr/sbin/echod' "$P/usr/lib/systemd/system/echod.service" ||
    { echo "installed echod.service does not run /usr/sbin/echod"; exit 1; }

# The box boots without the sysusers.d file (its systemd-sysusers.service
# would apply it at boot), so echod first runs as a dynamic user; the test
# installs the file later, as a package's postinst would.
mkdir -p "$P/opt/echod-test"
mv "$P/usr/lib/sysusers.d/echod.conf" "$P/opt/echod-test/echod.sysusers" ||
    { echo "make install did not install sysusers.d/echod.conf"; exit 1; }

mv "$P/usr/share/doc/echod/examples/echod-socket-only.conf" "$P/opt/echod-test/" ||
    { echo "make install did not install the socket-only drop-in"; exit 1; }
mv "$P/usr/share/doc/echod/examples/echod-stamp-clock.conf" "$P/opt/echod-test/" ||
    { echo "make install did not install the stamp-clock drop-in"; exit 1; }

# Test-only settings: a short watchdog, no core dumps from its SIGABRT
# (core_pattern is global), no start rate limit across the restarts, and a
# record of how each run ended (systemctl show forgets it once the unit is
# inactive and unloaded). "+" runs it outside the sandbox.
mkdir -p "$P/etc/systemd/system/echod.service.d"
cat >"$P/etc/systemd/system/echod.service.d/50-test.conf" <<'EOF'
[Unit]
StartLimitIntervalSec=0

[Service]
WatchdogSec=2s
TimeoutStopSec=1s
LimitCORE=0
ExecStopPost=+/bin/sh -c 'echo "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS" >>/run/echod-test-exits'
EOF
if [ "$SAN" = 1 ]; then
    # LeakSanitizer needs ptrace, which the unit's seccomp filter denies;
    # leaks are the integration tests' job. ASan and UBSan stay fatal.
    cat >>"$P/etc/systemd/system/echod.service.d/50-test.conf" <<'EOF'
Environment=ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
EOF
    echo "system test: sanitized build (ASan+UBSan, leak check off)"
fi
# The shipped config plus a TCP listener, a UDP socket on 7007 and a STAMP
# reflector on 7862, for the reload step, and a drain (2 s) longer than
# the test drop-in's TimeoutStopSec=.
sed -e 's|^    { address = "::"; port = 7; ipv6_only = true; }$|&,\
    { address = "127.0.0.1"; port = 7007; },\
    { address = "127.0.0.1"; port = 7007; protocol = "udp"; },\
    { address = "127.0.0.1"; port = 7862; service = "stamp"; }|' \
    -e 's|^shutdown_timeout = .*|shutdown_timeout = 2;|' \
    "$ROOT/conf/echod.conf" >"$P/opt/echod-test/echod-reload.conf"
if ! grep -q 'port = 7007; protocol = "udp"' "$P/opt/echod-test/echod-reload.conf" ||
    ! grep -q '^shutdown_timeout = 2;' "$P/opt/echod-test/echod-reload.conf"; then
    echo "could not derive the reload config from conf/echod.conf"
    exit 1
fi

timeout -k 45 300 "$HERE/box.sh" "$P" "$HERE/test_service.sh"

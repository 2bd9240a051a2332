#!/bin/bash
# box.sh - boot the host's own systemd as PID 1 of private namespaces and
# run a test script against it. Nothing on the host changes: the box's root
# is an overlay of the host's / with a tmpfs on top, every mount lives in
# the box's mount namespace, and the box's cgroup is a fresh sub-cgroup.
#
#   box.sh PAYLOAD TESTS
#
# PAYLOAD  a directory copied over the box's root before boot (binaries,
#          units, drop-ins, configs, packages to install, masks: a symlink
#          etc/systemd/system/UNIT -> /dev/null). The host units enabled in
#          /etc/systemd/system/*.wants are masked on top of it, and the box
#          boots basic.target only. Directories that exist in the box keep
#          their modes, and lib -> usr/lib style symlinks are followed.
# TESTS    a bash file sourced on the host once the box's systemd is
#          running. It can use:
#            IN CMD...        run CMD inside the box (all its namespaces and
#                             its root, clean environment), at most 30 s
#            NETNS CMD...     run a host command in the box's network
#                             namespace only (e.g. a test client), 30 s
#            step NAME CMD... run CMD (a command or function), print
#                             "step NAME: ok (1.23 s)"; on failure print
#                             "FAILED", call box_diagnose and exit 1
#            BOX_PID1         the box's PID 1 as the host sees it
#          and may define box_diagnose (called when a step fails) and
#          box_on_exit (called first at teardown, also on failure).
#
# Output: "step boot: ok (0.30 s)", the TESTS' own lines, "step teardown:
# done (0.05 s)"; on failure also the tail of the box's console.
# Exit status: that of TESTS (0 if it returns normally), 1 if the box does
# not boot, 64 on bad arguments, 77 with "SKIP: reason" when this host
# cannot run a box (not root, no unshare/nsenter/setpriv, no cgroup2, ...),
# 124 on SIGTERM (run it under `timeout -k 45 SECS`: the grace must exceed
# IN's 30 s).
# Teardown (also on failure): unshare --kill-child and PID 1's
# parent-death signal kill the whole box if this script dies; the EXIT trap
# kills the processes it started and removes its cgroup and temp dirs; a
# later run removes cgroups left by a box.sh that was SIGKILLed.
set -u

if [ "${1:-}" = --inside ]; then # PID 1 of the new namespaces, before exec
    set -e
    umask 022
    B=$2 P=$3 R=$2/root
    mount -t tmpfs -o mode=755 box "$B"
    mkdir "$B/up" "$B/work" "$R"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$B/up,workdir=$B/work" "$R"
    mount -t proc proc "$R/proc"
    # Read-only /proc/sys: else the box's systemd sets the host's sysctls.
    mount --bind "$R/proc/sys" "$R/proc/sys"
    mount -o remount,bind,ro "$R/proc/sys"
    mount -t sysfs -o ro sysfs "$R/sys"
    mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
    mount -t tmpfs -o mode=755 dev "$R/dev"
    for d in null zero full random urandom tty; do
        touch "$R/dev/$d"
        mount --bind "/dev/$d" "$R/dev/$d"
    done
    mkdir "$R/dev/pts" "$R/dev/shm"
    ln -s pts/ptmx "$R/dev/ptmx"
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
    mount -t tmpfs shm "$R/dev/shm"
    mount -t tmpfs run "$R/run"
    mount -t tmpfs -o mode=1777 tmp "$R/tmp"
    : >"$R/etc/machine-id"
    rm -f "$R/usr/sbin/policy-rc.d" # it would veto every service start
    for w in /etc/systemd/system/*.wants/*; do
        [ -e "$w" ] || [ -L "$w" ] || continue
        ln -sfn /dev/null "$R/etc/systemd/system/${w##*/}"
    done
    # Existing directories keep their modes (a 0700 mktemp payload must not
    # make the box's / unreadable) and directory symlinks stay symlinks
    # (lib -> usr/lib on a merged-/usr host); files keep their modes.
    tar -C "$P" -cf - . |
        tar -C "$R" -xpf - --no-overwrite-dir --keep-directory-symlink
    mkdir "$R/oldroot"
    cd "$R"
    pivot_root . oldroot
    umount -l /oldroot
    rmdir /oldroot
    export container=echod-test
    exec setpriv --bounding-set \
        -sys_module,-sys_time,-sys_rawio,-syslog,-wake_alarm,-sys_boot \
        /lib/systemd/systemd --unit=basic.target --log-target=journal \
        --show-status=no </dev/null
fi

skip() {
    echo "SKIP: $*"
    exit 77
}

if [ $# -ne 2 ] || [ ! -d "$1" ] || [ ! -f "$2" ]; then
    echo "usage: box.sh PAYLOAD-DIR TESTS-FILE" >&2
    exit 64
fi
[ "$(id -u)" -eq 0 ] || skip "the system test needs root (namespaces, mounts, cgroups)"
for c in unshare nsenter setpriv timeout; do
    command -v "$c" >/dev/null 2>&1 || skip "$c is not installed (util-linux, coreutils)"
done
[ -x /lib/systemd/systemd ] || skip "systemd is not installed"
CGR=/sys/fs/cgroup/unified # a hybrid host: cgroup2 beside the v1 controllers
[ "$(stat -f -c %T "$CGR" 2>/dev/null)" = cgroup2fs ] || CGR=/sys/fs/cgroup
[ "$(stat -f -c %T "$CGR" 2>/dev/null)" = cgroup2fs ] ||
    skip "no cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified"
unshare --pid --mount --uts --ipc --net --cgroup --fork true 2>/dev/null ||
    skip "unshare of pid/mount/net/cgroup namespaces is not permitted here"

# Leftovers of boxes whose box.sh died without its trap (SIGKILL): both
# names carry that box.sh's PID.
for d in "$CGR"/echod-box-*; do
    [ -d "$d" ] || continue
    kill -0 "${d##*-}" 2>/dev/null && continue # that box.sh still runs
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
done
for d in /tmp/echod-box-*.*; do
    [ -d "$d" ] || continue
    pid=${d#/tmp/echod-box-}
    kill -0 "${pid%%.*}" 2>/dev/null && continue
    rmdir "$d" 2>/dev/null && rm -f "$d.log"
done

PAYLOAD=$(cd "$1" && pwd) TESTS=$2
CG=$CGR/echod-box-$$
B=$(mktemp -d "/tmp/echod-box-$$.XXXXXX")
U='' BOX_PID1='' rc=0

elapsed() { # seconds since $1 (an $EPOCHREALTIME), 2 decimals
    awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'
}

cleanup() {
    rc=$?
    trap - EXIT TERM INT
    t_down=$EPOCHREALTIME
    if declare -F box_on_exit >/dev/null; then
        box_on_exit || true
    fi
    if [ -n "$BOX_PID1" ] && [ "$BOX_PID1" -gt 1 ]; then
        kill -KILL "$BOX_PID1" 2>/dev/null # unshare reaps it, then exits
    elif [ -n "$U" ] && [ "$U" -gt 1 ]; then
        kill -KILL "$U" 2>/dev/null
    fi
    [ -n "$U" ] && wait "$U" 2>/dev/null
    # The kernel kills the rest of the pid namespace, IN's processes too
    # (they are in it, though not in its cgroup): wait for PID 1 and the
    # cgroup to empty.
    for _ in $(seq 100); do
        if [ -z "$(find "$CG" -name cgroup.procs -exec cat {} + 2>/dev/null)" ] &&
            { [ -z "$BOX_PID1" ] || ! kill -0 "$BOX_PID1" 2>/dev/null; }; then
            break
        fi
        sleep 0.05
    done
    find "$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -s "$B.log" ]; then
        echo "--- box console (last 40 lines)"
        tail -n 40 "$B.log"
    fi
    rmdir "$B" 2>/dev/null
    rm -f "$B.log"
    echo "step teardown: done ($(elapsed "$t_down") s)"
    [ -d "$CG" ] && echo "box: cgroup $CG could not be removed" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 124' TERM INT

mkdir "$CG" || skip "cannot create a cgroup under $CGR"
t_boot=$EPOCHREALTIME
(
    echo "$BASHPID" >"$CG/cgroup.procs"
    exec setpriv --pdeathsig KILL unshare --pid --mount --uts --ipc --net \
        --cgroup --kill-child=SIGKILL "$0" --inside "$B" "$PAYLOAD"
) >"$B.log" 2>&1 &
U=$!
for _ in $(seq 100); do
    # The file has no trailing newline: read fails but still assigns.
    read -r BOX_PID1 _ <"/proc/$U/task/$U/children" 2>/dev/null
    [ -n "$BOX_PID1" ] && break
    sleep 0.05
done
[ -n "$BOX_PID1" ] || { echo "box: no PID 1"; exit 1; }

IN() {
    timeout 30 nsenter -t "$BOX_PID1" -a -r -w \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
NETNS() {
    timeout 30 nsenter -t "$BOX_PID1" -n "$@"
}
step() {
    local name=$1 t0=$EPOCHREALTIME
    shift
    if "$@"; then
        echo "step $name: ok ($(elapsed "$t0") s)"
    else
        echo "step $name: FAILED ($(elapsed "$t0") s)"
        if declare -F box_diagnose >/dev/null; then
            box_diagnose || true
        fi
        exit 1
    fi
}

for _ in $(seq 300); do
    case $(IN systemctl is-system-running 2>/dev/null) in
    running | degraded) break ;;
    esac
    sleep 0.05
done
state=$(IN systemctl is-system-running 2>/dev/null)
case $state in
running) echo "step boot: ok ($(elapsed "$t_boot") s)" ;;
degraded) # a host unit failed in the box; say which, and carry on
    echo "step boot: ok, degraded ($(elapsed "$t_boot") s)"
    IN systemctl --no-pager --failed
    ;;
*)
    echo "step boot: FAILED (state ${state:-unknown})"
    IN systemctl --no-pager --failed
    exit 1
    ;;
esac

# shellcheck source=/dev/null
. "$TESTS"

# test_service.sh - echod under a real systemd, sourced by box.sh (see there
# for IN, NETNS and step). The payload (tests/system/run.sh) holds echod
# installed with `make install` into /usr, its units, /etc/echod.conf
# (port 7), the drop-in echod.service.d/50-test.conf (WatchdogSec=2s), and
# in /opt/echod-test: echod-reload.conf (adds 127.0.0.1:7007, TCP and
# UDP), the
# sysusers.d file and the optional socket-only drop-in.
# shellcheck shell=bash

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIENT=("/usr/bin/python3" "$HERE/echo_client.py")
HOLDER=

echo_ok() { NETNS "${CLIENT[@]}" echo "$@"; } # HOST PORT [WAIT-SECONDS]
udp_ok() { NETNS "${CLIENT[@]}" udp "$@"; }   # HOST PORT
show() { IN systemctl show -P "$1" "${2:-echod.service}"; }
active() { [ "$(IN systemctl is-active "${1:-echod.service}")" = active ]; }
inactive() { [ "$(IN systemctl is-active "${1:-echod.service}")" = inactive ]; }

# wait_for SECONDS CMD...: poll CMD until it succeeds, up to SECONDS.
wait_for() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.05
    done
}

# echod's own syslog lines (not its stderr, not systemd's) contain $1.
syslog_has() {
    IN journalctl _SYSTEMD_UNIT=echod.service _TRANSPORT=syslog \
        --no-pager -o cat | grep -Eq "$1"
}
# Anything about the unit, including systemd's own lines, contains $1.
unit_log_has() {
    IN journalctl -u echod.service --no-pager -o cat | grep -Eq "$1"
}

main_uid() {
    local pid
    pid=$(show MainPID)
    [ "${pid:-0}" -gt 1 ] || return 1
    # shellcheck disable=SC2016 # awk's $2, not the shell's
    IN awk '/^Uid:/ { print $2 }' "/proc/$pid/status"
}

# last_exit: how the last run ended, "SERVICE_RESULT EXIT_CODE EXIT_STATUS"
# as the test drop-in's ExecStopPost= recorded it.
last_exit() { IN tail -n 1 /run/echod-test-exits; }
exit_was() {
    local got
    got=$(last_exit)
    echo "  ended: $got"
    [ "$got" = "$1" ]
}

# restarted PID N: a new main PID, more than N restarts, active again.
restarted() {
    local pid n
    pid=$(show MainPID)
    n=$(show NRestarts)
    [ "${pid:-0}" -gt 1 ] && [ "$pid" != "$1" ] && [ "${n:-0}" -gt "$2" ] &&
        active
}

box_diagnose() {
    IN systemctl --no-pager status echod.service echod.socket
    IN journalctl --no-pager -n 80 -o short-monotonic
}
box_on_exit() {
    [ -n "$HOLDER" ] && [ "$HOLDER" -gt 1 ] && kill "$HOLDER" 2>/dev/null
    return 0
}

t_start() {
    IN systemctl start echod.service && active
}

t_echo() {
    echo_ok 127.0.0.1 7 && echo_ok ::1 7
}

t_dynamic_user() {
    local uid
    uid=$(main_uid) || return 1
    echo "  main process uid $uid (DynamicUser=yes, no static echod user)"
    # systemd's range for dynamic users
    [ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ]
}

# The control socket in the unit's RuntimeDirectory: mode 0660, owned by
# the service's user and group; root can read it with echodctl, another
# user cannot even reach it.
t_control_socket() {
    local uid st out
    uid=$(main_uid) || return 1
    st=$(IN stat -c '%a %u %F' /run/echod/control.sock) || return 1
    echo "  /run/echod/control.sock: $st; /run/echod: $(IN stat -c '%a %u' /run/echod)"
    [ "$st" = "660 $uid socket" ] || return 1
    [ "$(IN stat -c '%a %u' /run/echod)" = "750 $uid" ] || return 1
    out=$(IN /usr/bin/echodctl status) || return 1
    echo "$out" | grep -Eq '^workers: +[0-9]+$' || return 1
    IN /usr/bin/echodctl stats --json | grep -q '"tcp_connections_accepted_total"' ||
        return 1
    IN setpriv --reuid=65534 --regid=65534 --clear-groups \
        /usr/bin/echodctl status >/dev/null 2>&1
    [ $? = 69 ] || return 1
    echo "  echodctl as root: ok; as nobody: exit 69"
}

t_status() {
    local line
    line=$(IN systemctl --no-pager status echod.service | grep 'Status: "')
    echo "  $line"
    echo "$line" | grep -Eq 'Status: "2 listener\(s\), 0 connection\(s\) open, [0-9]+ accepted'
}

t_journal() {
    wait_for 10 syslog_has 'echod .* ready: 2 listener\(s\)'
}

# systemd saw WATCHDOG=1 (its timestamp moved) and nothing restarted echod.
t_watchdog_pings() {
    local ts0 pid0
    ts0=$(show WatchdogTimestampMonotonic) pid0=$(show MainPID)
    wait_for 5 watchdog_moved "$ts0" || return 1
    [ "$(show MainPID)" = "$pid0" ] && [ "$(show NRestarts)" = 0 ]
}
watchdog_moved() { [ "$(show WatchdogTimestampMonotonic)" != "$1" ]; }

# hold: open a connection to port 7 that echoes once and then waits for
# "go" on its stdin ($HOLD_IN) to echo again and print "ok" ($HOLD_OUT).
hold() {
    local line
    coproc HOLD {
        exec timeout 30 nsenter -t "$BOX_PID1" -n "${CLIENT[@]}" hold 127.0.0.1 7
    }
    HOLDER=$HOLD_PID HOLD_OUT=${HOLD[0]} HOLD_IN=${HOLD[1]}
    read -r -t 20 line <&"$HOLD_OUT" && [ "$line" = held ]
}

t_reload() {
    local pid0 line
    hold || return 1
    pid0=$(show MainPID)
    IN cp /opt/echod-test/echod-reload.conf /etc/echod.conf || return 1
    IN systemctl reload echod.service || return 1
    # ExecReload= (kill -HUP) returns at once: the new listener answering
    # is the sign that the reload was applied.
    echo_ok 127.0.0.1 7007 10 || return 1
    echo go >&"$HOLD_IN"
    read -r -t 20 line <&"$HOLD_OUT" && [ "$line" = ok ] || return 1
    wait "$HOLDER" || return 1
    HOLDER=
    echo "  connection opened before the reload still echoes; port 7007 answers"
    # UDP under the unit's sandbox (seccomp filter, address families).
    udp_ok 127.0.0.1 7007 || return 1
    # STAMP too: the unit forbids adjtimex, so the Error Estimate says
    # "not synchronised" and the log says why (see t_stamp_clock).
    NETNS "${CLIENT[@]}" stamp 127.0.0.1 7862 || return 1
    wait_for 10 syslog_has "STAMP: cannot read the clock's state" || return 1
    [ "$(show MainPID)" = "$pid0" ] && [ "$(show NRestarts)" = 0 ] &&
        wait_for 10 syslog_has 'reloaded configuration from /etc/echod.conf' &&
        wait_for 5 status_has '3 listener\(s\), .*; udp: 2 socket\(s\), 5 received, 5 echoed, 0 dropped'
}
status_has() { show StatusText | grep -Eq "$1"; }

# The stamp-clock drop-in lets echod read the clock's state: after a
# restart with it, a STAMP reply is made without the adjtimex warning.
clock_warnings() {
    IN journalctl _SYSTEMD_UNIT=echod.service _TRANSPORT=syslog --no-pager \
        -o cat | grep -c "cannot read the clock's state"
}
reloads() {
    IN journalctl _SYSTEMD_UNIT=echod.service _TRANSPORT=syslog --no-pager \
        -o cat | grep -c 'reloaded configuration'
}
more_reloads() { [ "$(reloads)" -gt "$1" ]; }
t_stamp_clock() {
    local n0 r0
    IN mkdir -p /etc/systemd/system/echod.service.d &&
        IN cp /opt/echod-test/echod-stamp-clock.conf \
            /etc/systemd/system/echod.service.d/stamp-clock.conf &&
        IN systemctl daemon-reload || return 1
    n0=$(clock_warnings)
    IN systemctl restart echod.service && active || return 1
    NETNS "${CLIENT[@]}" stamp 127.0.0.1 7862 || return 1
    # A warning would be logged before that reply was sent; a reload's
    # line, logged after it, marks where the journal has caught up.
    r0=$(reloads)
    IN systemctl reload echod.service && wait_for 10 more_reloads "$r0" ||
        return 1
    echo "  clock warnings: $n0 before the restart, $(clock_warnings) after"
    [ "$(clock_warnings)" = "$n0" ]
}

# kill_main SIGNAL "RESULT CODE STATUS": signal the main process, wait for
# systemd to restart echod, check how the old one ended.
kill_main() {
    local pid0 n0
    pid0=$(show MainPID) n0=$(show NRestarts)
    [ "${pid0:-0}" -gt 1 ] || return 1
    IN systemctl kill -s "$1" --kill-who=main echod.service || return 1
    wait_for 30 restarted "$pid0" "$n0" || return 1
    echo "  NRestarts $n0 -> $(show NRestarts), main PID $pid0 -> $(show MainPID)"
    exit_was "$2"
}

# A stopped (stalled) echod sends no WATCHDOG=1: killed with SIGABRT.
t_watchdog() {
    kill_main SIGSTOP "watchdog killed ABRT" &&
        wait_for 10 unit_log_has 'Watchdog timeout' &&
        echo_ok 127.0.0.1 7 5
}

t_kill9() {
    kill_main SIGKILL "signal killed KILL" && echo_ok 127.0.0.1 7 5
}

# A client that never closes holds the drain to shutdown_timeout (2 s in
# the reload config), longer than TimeoutStopSec=1s (test drop-in):
# echod's EXTEND_TIMEOUT_USEC= must keep systemd from killing it.
t_stop() {
    local t0
    hold || return 1
    t0=$EPOCHREALTIME
    IN systemctl stop echod.service && inactive || return 1
    echo "  stop with a connection open took $(elapsed "$t0") s"
    kill "$HOLDER" 2>/dev/null
    wait "$HOLDER" 2>/dev/null
    HOLDER=
    exit_was "success exited 0" || return 1
    # RuntimeDirectory= goes with the service, and the socket with it.
    ! IN test -e /run/echod/control.sock || return 1
    wait_for 10 syslog_has 'shutdown timeout: closing 1 connection' &&
        wait_for 10 syslog_has 'exiting: [0-9]+ connection\(s\) served'
}

# A config error: exit 78 with its reason in the status, and no restart
# loop (RestartPreventExitStatus=).
t_bad_config() {
    local line
    IN sh -c 'echo "no_such_key = 1;" >>/etc/echod.conf' || return 1
    IN systemctl start echod.service 2>/dev/null && return 1
    line=$(IN systemctl --no-pager status echod.service | grep 'Status: "')
    echo "  $line"
    echo "$line" |
        grep -Eq 'failed to start: /etc/echod.conf:[0-9]+: no_such_key: unknown' &&
        [ "$(show ExecMainStatus)" = 78 ] || return 1
    # Give a restart (RestartSec=100ms) ample time to happen, if it would.
    sleep 1
    [ "$(IN systemctl is-active echod.service)" = failed ] &&
        [ "$(show NRestarts)" = 0 ] || return 1
    IN cp /opt/echod-test/echod-reload.conf /etc/echod.conf &&
        IN systemctl reset-failed echod.service
}

STATIC_UID=
t_sysusers() {
    local out
    IN cp /opt/echod-test/echod.sysusers /usr/lib/sysusers.d/echod.conf ||
        return 1
    if ! out=$(IN systemd-sysusers /usr/lib/sysusers.d/echod.conf 2>&1); then
        echo "$out"
        return 1
    fi
    STATIC_UID=$(IN getent passwd echod | cut -d: -f3)
    echo "  static user echod: uid ${STATIC_UID:-none}"
    [ -n "$STATIC_UID" ] && [ "$STATIC_UID" -gt 0 ] && [ "$STATIC_UID" -lt 1000 ]
}

t_socket_activation() {
    local uid
    IN systemctl start echod.socket && active echod.socket || return 1
    inactive echod.service || return 1
    echo_ok 127.0.0.1 7 || return 1 # the first connection starts echod
    wait_for 10 active echod.service || return 1
    echo_ok ::1 7 || return 1
    wait_for 10 syslog_has 'adopted 1 socket\(s\) from the service manager' ||
        return 1
    # The config (still the reloaded one) lists 127.0.0.1:7007: not bound.
    NETNS "${CLIENT[@]}" refused 127.0.0.1 7007 || return 1
    uid=$(main_uid) || return 1
    echo "  started by echod.socket; runs as the static user (uid $uid)"
    [ "$uid" = "$STATIC_UID" ]
}

t_socket_restart() {
    kill_main SIGKILL "signal killed KILL" || return 1
    # The restarted echod adopted the socket again: nothing else listens.
    echo_ok 127.0.0.1 7 5 && echo_ok ::1 7
}

# Started by hand while echod.socket is active, echod.service still gets
# the socket (and does not bind the listen key).
adoptions() {
    IN journalctl _SYSTEMD_UNIT=echod.service _TRANSPORT=syslog --no-pager \
        -o cat | grep -c 'adopted 1 socket'
}
more_adoptions() { [ "$(adoptions)" -gt "$1" ]; }
t_service_with_socket() {
    local n0
    n0=$(adoptions)
    IN systemctl stop echod.service 2>/dev/null && inactive &&
        active echod.socket && IN systemctl start echod.service && active ||
        return 1
    wait_for 10 more_adoptions "$n0" || return 1
    echo "  'adopted 1 socket' lines: $n0 -> $(adoptions)"
    NETNS "${CLIENT[@]}" refused 127.0.0.1 7007 && echo_ok 127.0.0.1 7
}

# The optional drop-in for socket-only use: same service, now without
# capabilities and in a network namespace of its own.
t_socket_only_dropin() {
    local n0 pid caps
    n0=$(adoptions)
    IN cp /opt/echod-test/echod-socket-only.conf \
        /etc/systemd/system/echod.service.d/socket-only.conf &&
        IN systemctl daemon-reload && IN systemctl restart echod.service &&
        active || return 1
    wait_for 10 more_adoptions "$n0" || return 1
    echo_ok 127.0.0.1 7 && echo_ok ::1 7 || return 1
    pid=$(show MainPID)
    [ "${pid:-0}" -gt 1 ] || return 1
    # shellcheck disable=SC2016 # awk's $2, not the shell's
    caps=$(IN awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
    echo "  CapEff $caps; network namespace $(IN readlink "/proc/$pid/ns/net")" \
        "(PID 1: $(IN readlink /proc/1/ns/net))"
    [ "$caps" = 0000000000000000 ] &&
        [ "$(IN readlink "/proc/$pid/ns/net")" != "$(IN readlink /proc/1/ns/net)" ]
}

# The drop-in README and echod(8) show for UDP under socket activation:
# echod adopts the datagram socket beside the stream one.
t_socket_udp_dropin() {
    IN mkdir -p /etc/systemd/system/echod.socket.d &&
        IN sh -c 'printf "[Socket]\nListenDatagram=7\n" \
            >/etc/systemd/system/echod.socket.d/udp.conf' &&
        IN systemctl daemon-reload &&
        IN systemctl stop echod.service echod.socket &&
        IN systemctl start echod.socket && active echod.socket || return 1
    udp_ok 127.0.0.1 7 || return 1 # a datagram starts echod
    wait_for 10 active echod.service &&
        wait_for 10 syslog_has 'adopted 2 socket\(s\) from the service manager' &&
        udp_ok ::1 7 && echo_ok 127.0.0.1 7
}

t_stop_all() {
    IN systemctl stop echod.socket echod.service || return 1
    inactive echod.socket && inactive echod.service &&
        exit_was "success exited 0"
}

step start t_start
step echo-port-7-ipv4-ipv6 t_echo
step dynamic-user t_dynamic_user
step control-socket t_control_socket
step status-line t_status
step journal-syslog t_journal
step watchdog-pings t_watchdog_pings
step reload-keeps-connection t_reload
step stamp-clock-dropin t_stamp_clock
step watchdog-restart t_watchdog
step kill-9-restart t_kill9
step stop-clean t_stop
step bad-config-no-restart t_bad_config
step sysusers-static-user t_sysusers
step socket-activation t_socket_activation
step socket-kill-9-restart t_socket_restart
step service-start-with-socket t_service_with_socket
step socket-only-dropin t_socket_only_dropin
step socket-udp-dropin t_socket_udp_dropin
step stop-socket-and-service t_stop_all

# test_deb.sh - the .deb under a real systemd, sourced by box.sh (see there
# for IN, NETNS and step). The payload (made by
# tests/integration/test_packages.py) holds /opt/echod-pkg/echod.deb (from
# make deb) and echod-upgrade.deb (the same package with a higher version).
# Steps: install -> enabled, active, echoes on port 7 as the echod user;
# edit /etc/echod.conf + reload -> applied; reinstall and upgrade keep the
# edited conffile and restart; remove stops the service and keeps the
# config; purge removes it.
# shellcheck shell=bash

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIENT=("/usr/bin/python3" "$HERE/echo_client.py")
PKG=/opt/echod-pkg

echo_ok() { NETNS "${CLIENT[@]}" echo "$@"; } # HOST PORT [WAIT-SECONDS]
refused() { NETNS "${CLIENT[@]}" refused "$@"; }
show() { IN systemctl show -P "$1" "${2:-echod.service}"; }
state() { IN systemctl is-active "${1:-echod.service}"; }
active() { [ "$(state echod.service)" = active ]; }
# shellcheck disable=SC2016 # ${Version} is dpkg-query's, not the shell's
version() { IN dpkg-query -W -f '${Version}' echod; }
conf_sum() { IN sha256sum /etc/echod.conf | cut -d' ' -f1; }

box_diagnose() {
    IN systemctl --no-pager status echod.service echod.socket
    IN journalctl --no-pager -n 60 -o short-monotonic
}

main_user() {
    local pid
    pid=$(show MainPID)
    [ "${pid:-0}" -gt 1 ] || return 1
    IN ps -o user= -p "$pid"
}

# dpkg -i: the postinst creates the user, then enables and starts
# echod.service (a Type=notify start returns once echod is ready);
# echod.socket (same port) stays off.
t_install() {
    IN dpkg -i "$PKG/echod.deb" || return 1
    echo "  installed $(version)"
    IN getent passwd echod >/dev/null || return 1
    [ "$(IN systemctl is-enabled echod.service)" = enabled ] &&
        [ "$(IN systemctl is-enabled echod.socket)" = disabled ] &&
        active && [ "$(state echod.socket)" = inactive ]
}

t_echo() {
    echo_ok 127.0.0.1 7 5 && echo_ok ::1 7 || return 1
    echo "  main process runs as user $(main_user)"
    [ "$(main_user)" = echod ]
}

t_docs() {
    IN test -f /usr/share/man/man8/echod.8.gz &&
        IN test -f /usr/share/man/man5/echod.conf.5.gz &&
        IN test -f /usr/share/doc/echod/copyright &&
        IN /usr/sbin/echod -t -c /etc/echod.conf >/dev/null
}

# The administrator adds a listener; reload applies it without a restart.
PID_BEFORE='' EDITED=''
t_edit_reload() {
    PID_BEFORE=$(show MainPID)
    IN sed -i 's|^    { address = "::"; port = 7; ipv6_only = true; }$|&,\
    { address = "127.0.0.1"; port = 7007; }|' /etc/echod.conf || return 1
    IN grep -q 'port = 7007' /etc/echod.conf || return 1
    EDITED=$(conf_sum)
    refused 127.0.0.1 7007 || return 1
    IN systemctl reload echod.service || return 1
    echo_ok 127.0.0.1 7007 10 && echo_ok 127.0.0.1 7 &&
        [ "$(show MainPID)" = "$PID_BEFORE" ]
}

# restarted PID: a new main process, active, serving the edited config.
restarted_with_edit() {
    local pid
    pid=$(show MainPID)
    [ "${pid:-0}" -gt 1 ] && [ "$pid" != "$1" ] && active &&
        [ "$(conf_sum)" = "$EDITED" ] && echo_ok 127.0.0.1 7007 10 &&
        echo_ok 127.0.0.1 7
}

t_reinstall() {
    local pid0
    pid0=$(show MainPID)
    IN dpkg -i "$PKG/echod.deb" </dev/null || return 1
    restarted_with_edit "$pid0"
}

t_upgrade() {
    local pid0 v0
    pid0=$(show MainPID) v0=$(version)
    # No --force-conf*: an edited conffile the package did not change must
    # be kept without a question.
    IN dpkg -i "$PKG/echod-upgrade.deb" </dev/null || return 1
    echo "  $v0 -> $(version)"
    [ "$(version)" != "$v0" ] && restarted_with_edit "$pid0"
}

t_remove() {
    IN dpkg -r echod || return 1
    [ "$(state)" != active ] && refused 127.0.0.1 7 && refused 127.0.0.1 7007 &&
        ! IN test -e /usr/sbin/echod &&
        ! IN test -e /lib/systemd/system/echod.service &&
        [ "$(conf_sum)" = "$EDITED" ] # removal keeps the configuration
}

t_purge() {
    IN dpkg -P echod || return 1
    ! IN test -e /etc/echod.conf &&
        ! IN test -e /etc/systemd/system/multi-user.target.wants/echod.service &&
        ! IN dpkg-query -W echod >/dev/null 2>&1
}

step deb-install-enable-start t_install
step deb-echo-port-7 t_echo
step deb-man-pages-and-config t_docs
step deb-edit-conf-and-reload t_edit_reload
step deb-reinstall-keeps-conffile t_reinstall
step deb-upgrade-keeps-conffile t_upgrade
step deb-remove-stops t_remove
step deb-purge-removes-config t_purge

"""Privilege drop outside systemd: echod started as root with `user` set
binds every socket, then becomes that user and group with no
supplementary groups and no capabilities, in every thread; a reload that
needs root fails as a whole and says why; without `user` it warns that it
stays root; an unknown user or group is a configuration error."""
import grp
import os
import pwd
import re
import signal
import socket
import unittest

import harness
from harness import connect, make_conf, recv_exact

USER = "nobody"
GROUP = "nogroup"


def privileged_free_port():
    """A port below 1024 nothing listens on here, or None."""
    for port in range(1000, 600, -7):
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    return None


def status_fields(path):
    out = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()
    return out


@unittest.skipUnless(os.geteuid() == 0, "needs root to drop it")
class PrivilegeDrop(harness.TestCase):
    deadline = 60

    def setUp(self):
        super().setUp()
        try:
            self.uid = pwd.getpwnam(USER).pw_uid
            self.gid = grp.getgrnam(GROUP).gr_gid
        except KeyError:
            self.skipTest("no user %s or group %s here" % (USER, GROUP))

    def test_drops_to_user_in_every_thread(self):
        low = privileged_free_port()
        if low is None:
            self.skipTest("no free port below 1024")
        port = harness.free_port()
        d = self.daemon(start=False, conf=make_conf(
            [("127.0.0.1", port), ("127.0.0.1", low)], user=USER,
            group=GROUP), port=port)
        # After the drop echod still notifies and rereads its config.
        os.chmod(d.dir, 0o755)
        os.chmod(d.notify_path, 0o777)
        d.start()
        d.wait_log(r"gave up root: running as user %s, group %s, no "
                   r"capabilities" % (USER, GROUP))
        threads = os.listdir("/proc/%d/task" % d.pid)
        self.assertGreaterEqual(len(threads), 2)
        for t in threads:
            st = status_fields("/proc/%d/task/%s/status" % (d.pid, t))
            self.assertEqual(st["Uid"], [str(self.uid)] * 4, t)
            self.assertEqual(st["Gid"], [str(self.gid)] * 4, t)
            self.assertEqual(st["Groups"], [str(self.gid)], t)
            self.assertEqual(int(st["CapEff"][0], 16), 0, t)
            self.assertEqual(int(st["CapPrm"][0], 16), 0, t)
        # The port below 1024 was bound before the drop and serves.
        for p in (port, low):
            with connect(p) as s:
                s.sendall(b"as nobody")
                self.assertEqual(recv_exact(s, 9), b"as nobody")
        # A reload that needs root to bind fails as a whole.
        other = privileged_free_port()
        d.write_conf(make_conf([("127.0.0.1", port), ("127.0.0.1", low),
                                ("127.0.0.1", other)],
                               user=USER, group=GROUP, max_connections=7))
        d.signal(signal.SIGHUP)
        d.wait_notify_match(r"last reload failed")
        d.wait_log(r"reload failed, keeping the current configuration: "
                   r"cannot listen on 127\.0\.0\.1 port %d: Permission "
                   r"denied \(echod gave up root after startup: a port "
                   r"below 1024 needs a restart\)" % other)
        with connect(low) as s:
            s.sendall(b"still")
            self.assertEqual(recv_exact(s, 5), b"still")
        self.assertEqual(d.stop(), 0)

    def test_root_without_user_warns(self):
        d = self.daemon()
        d.wait_log(r"running as root: set `user` \(and `group`\) in \S+ to "
                   r"give root up once the sockets are bound")
        st = status_fields("/proc/%d/status" % d.pid)
        self.assertEqual(st["Uid"][1], "0")
        self.assertEqual(d.stop(), 0)

    def test_unknown_user_or_group_is_a_config_error(self):
        for key, value in (("user", "no-such-user-echod"),
                           ("group", "no-such-group-echod")):
            d = self.daemon(start=False, conf=make_conf(
                [("127.0.0.1", harness.free_port())], **{key: value}))
            r = self.run_echod("-t", "-c", d.conf_path)
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertRegex(r.stderr, r"echod\.conf:\d+: %s: no such %s "
                             r"\"%s\"" % (key, key, re.escape(value)))

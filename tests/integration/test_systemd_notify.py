"""The service manager protocol without a service manager.

A harness-owned NOTIFY_SOCKET stands in for systemd: these tests check
what echod tells it (READY, STATUS, RELOADING, STOPPING, WATCHDOG,
ERRNO), in which order, and that echod adopts sockets passed the way
systemd passes them (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), both from a
hand-made parent and from systemd-socket-activate."""
import errno
import hashlib
import os
import shutil
import signal
import socket
import sys
import time
import unittest

import harness
from harness import connect, free_port, listen_conf, recv_exact, recv_until_eof

# Runs the command after it with the given parent fds moved to 3, 4, ...
# and LISTEN_PID (and WATCHDOG_PID, if asked) set to its own PID, which
# exec keeps: what systemd does between fork and exec.
PLACE_FDS = r"""
import fcntl, os, sys
srcs = [int(x) for x in sys.argv[1].split(",") if x]
tmp = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in srcs]
for fd in srcs:
    os.close(fd)
for i, fd in enumerate(tmp):
    os.dup2(fd, 3 + i)
    os.close(fd)
for key in sys.argv[2].split(","):
    if key:
        os.environ[key] = str(os.getpid())
os.execv(sys.argv[3], sys.argv[3:])
"""


def place_fds(fds, pid_vars=("LISTEN_PID",)):
    """Daemon arguments that hand `fds` to echod as fds 3, 4, ..."""
    return {"wrapper": [sys.executable, "-c", PLACE_FDS,
                        ",".join(str(fd) for fd in fds), ",".join(pid_vars)],
            "pass_fds": fds}


def listening_socket(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(16)
    return s


def echo_round(port, size=65536, host="127.0.0.1"):
    """Send `size` random bytes, assert the same bytes come back."""
    data = os.urandom(size)
    with connect(port, host) as s:
        s.sendall(data)
        got = recv_exact(s, size)
    assert hashlib.sha256(got).hexdigest() == \
        hashlib.sha256(data).hexdigest(), "echo differs (%d of %d bytes)" \
        % (len(got), size)


def refused(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def drain(d, settle=0.0):
    """Collect the datagrams already queued (and any arriving within
    `settle` seconds) into d.messages; returns the new ones."""
    new = []
    deadline = time.monotonic() + settle
    while True:
        d.ns.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            new.append(d.ns.recv(65536).decode().split("\n"))
        except (socket.timeout, BlockingIOError):
            break
    d.messages.extend(new)
    return new


def fields(msgs):
    """All lines of all datagrams, in order of arrival."""
    return [line for m in msgs for line in m if line]


def status_lines(msgs):
    return [line[len("STATUS="):] for line in fields(msgs)
            if line.startswith("STATUS=")]


class Notify(harness.TestCase):
    deadline = 40

    def test_lifecycle_order(self):
        """READY (with STATUS) -> STATUS on change -> RELOADING with
        MONOTONIC_USEC -> READY -> STOPPING, then exit 0."""
        d = self.daemon()
        ready = d.messages[-1]
        self.assertIn("READY=1", ready)
        self.assertTrue([x for x in ready if x.startswith("STATUS=")],
                        "READY=1 without a STATUS= line: %r" % ready)
        self.assertIn("0 connection(s) open", status_lines([ready])[0])

        with connect(d.port) as s:
            lines = d.wait_notify("STATUS=", timeout=10)
            self.assertIn("1 connection(s) open", status_lines([lines])[0])
            before = time.monotonic_ns() // 1000
            d.signal(signal.SIGHUP)
            lines = d.wait_notify("RELOADING=1")
            after = time.monotonic_ns() // 1000
            usec = [int(x.split("=", 1)[1]) for x in lines
                    if x.startswith("MONOTONIC_USEC=")]
            self.assertEqual(len(usec), 1, lines)
            # CLOCK_MONOTONIC of the signal's handling: between our reads.
            self.assertTrue(before <= usec[0] <= after,
                            (before, usec[0], after))
            d.wait_notify("READY=1")
            s.sendall(b"still here")
            self.assertEqual(recv_exact(s, 10), b"still here")
        d.signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1")
        self.assertEqual(d.proc.wait(timeout=20), 0)
        drain(d)

        seq = [x for x in fields(d.messages)
               if x in ("READY=1", "RELOADING=1", "STOPPING=1")]
        self.assertEqual(seq, ["READY=1", "RELOADING=1", "READY=1",
                               "STOPPING=1"])
        stop = [m for m in d.messages if "STOPPING=1" in m][0]
        self.assertTrue(status_lines([stop])[0].startswith("stopping: "),
                        stop)
        # shutdown_timeout (default 5 s) plus 5 s: systemd must not kill a
        # drain that the configuration allows.
        self.assertIn("EXTEND_TIMEOUT_USEC=10000000", stop)

    def test_status_only_on_change_at_most_once_a_second(self):
        d = self.daemon()
        # Nothing changes: the 1 s tick must not repeat the READY status.
        self.assertEqual(status_lines(drain(d, settle=2.5)), [])
        # Connection churn for 3 s changes the counters all the time.
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 3.0:
            with connect(d.port) as s:
                s.sendall(b"x")
                recv_exact(s, 1)
            n += 1
        msgs = drain(d, settle=1.5)
        elapsed = time.monotonic() - t0
        got = status_lines(msgs)
        self.assertGreaterEqual(len(got), 1)
        self.assertLessEqual(len(got), int(elapsed) + 1,
                             "%d STATUS updates in %.1fs" % (len(got),
                                                             elapsed))
        self.assertIn("%d accepted" % n, got[-1])
        self.assertEqual(d.stop(), 0)

    def test_failed_reload_keeps_serving_and_says_so(self):
        d = self.daemon()
        d.write_conf("max_connections = -5;\n")
        d.signal(signal.SIGHUP)
        d.wait_notify("RELOADING=1")
        lines = d.wait_notify("READY=1")
        self.assertIn("last reload failed", status_lines([lines])[0])
        echo_round(d.port)
        d.write_conf(listen_conf(d.port))
        d.signal(signal.SIGHUP)
        lines = d.wait_notify("READY=1")
        self.assertNotIn("reload failed", status_lines([lines])[0])
        self.assertEqual(d.stop(), 0)


class Watchdog(harness.TestCase):
    deadline = 40

    def wait_pings(self, d, want, timeout):
        got = 0
        deadline = time.monotonic() + timeout
        while got < want:
            self.assertLess(time.monotonic(), deadline,
                            "only %d WATCHDOG=1 in %.0fs" % (got, timeout))
            for m in drain(d, settle=0.1):
                got += m.count("WATCHDOG=1")
        return got

    def test_pings_with_watchdog_pid(self):
        # 200 ms interval: a ping every 100 ms, so 10 come within 1 s
        # normally; allow 15 s on a busy machine.
        d = self.daemon(env={"WATCHDOG_USEC": "200000"},
                        **place_fds([], ("WATCHDOG_PID",)))
        self.wait_pings(d, 10, 15)
        self.assertEqual(d.stop(), 0)

    def test_pings_without_watchdog_pid(self):
        d = self.daemon(env={"WATCHDOG_USEC": "200000"})
        self.wait_pings(d, 10, 15)
        self.assertEqual(d.stop(), 0)

    def test_no_pings_for_another_pid(self):
        # WATCHDOG_PID names someone else (PID 1): the variable is not
        # ours, so no pings, even over 10 would-be intervals.
        d = self.daemon(env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
        got = fields(drain(d, settle=1.0))
        self.assertNotIn("WATCHDOG=1", got)
        self.assertEqual(d.stop(), 0)


class StartupFailure(harness.TestCase):
    deadline = 30

    def failed(self, d, code):
        d.start(wait_ready=False)
        self.assertEqual(d.proc.wait(timeout=20), code, d.log())
        msgs = drain(d)
        got = fields(msgs)
        self.assertNotIn("READY=1", got)
        errs = [int(x[len("ERRNO="):]) for x in got if x.startswith("ERRNO=")]
        status = status_lines(msgs)
        self.assertEqual(len(errs), 1, got)
        self.assertEqual(len(status), 1, got)
        return errs[0], status[0]

    def test_bad_config_exit_78(self):
        d = self.daemon(start=False, extra="max_connections = 0;\n")
        err, status = self.failed(d, 78)
        self.assertEqual(err, errno.EINVAL)
        self.assertIn("%s:2: max_connections" % d.conf_path, status)
        self.assertIn("max_connections", d.log())

    def test_missing_config_exit_78(self):
        d = self.daemon(start=False)
        os.unlink(d.conf_path)
        err, status = self.failed(d, 78)
        self.assertEqual(err, errno.ENOENT)
        self.assertIn("cannot open", status)

    def test_port_in_use_exit_71(self):
        holder = listening_socket()
        self.addCleanup(holder.close)
        port = holder.getsockname()[1]
        free = free_port()
        # The free port comes first, so errno must survive a later bind.
        d = self.daemon(start=False, port=port, conf=(
            'listen = ( { address = "127.0.0.1"; port = %d; },\n'
            '           { address = "127.0.0.1"; port = %d; } );\n'
            % (free, port)))
        err, status = self.failed(d, 71)
        self.assertEqual(err, errno.EADDRINUSE)
        self.assertIn("127.0.0.1 port %d" % port, status)
        self.assertIn(os.strerror(errno.EADDRINUSE), status)
        self.assertIn("cannot listen on 127.0.0.1 port %d" % port, d.log())


class SlowManager(harness.TestCase):
    deadline = 40

    def test_full_notify_queue_does_not_stall_the_loop(self):
        """A manager that does not read: once its queue is full, STATUS
        and WATCHDOG must be dropped, not block the loop (sd_notify's
        blocking send froze echod, SIGTERM included)."""
        d = self.daemon(env={"WATCHDOG_USEC": "200000"})
        # Fill the notify socket's queue (net.unix.max_dgram_qlen) ourselves.
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(filler.close)
        filler.setblocking(False)
        queued = 0
        while queued < 10000:
            try:
                filler.sendto(b"X=1", d.notify_path)
            except BlockingIOError:
                break
            queued += 1
        self.assertLess(queued, 10000, "the notify queue never filled")
        # Keep the STATUS line changing for three status ticks and check
        # that every echo is answered while the queue stays full.
        end = time.monotonic() + 3.5
        rounds = 0
        while time.monotonic() < end:
            echo_round(d.port, size=1024)   # 5 s socket timeout each
            rounds += 1
        self.assertGreater(rounds, 10)
        self.assertEqual(d.stop(timeout=10), 0, d.log())


class Activation(harness.TestCase):
    deadline = 40

    def test_inherited_socket_wins_over_listen_key(self):
        inherited = listening_socket()
        self.addCleanup(inherited.close)
        port = inherited.getsockname()[1]
        d = self.daemon(start=False,
                        env={"LISTEN_FDS": "1", "LISTEN_FDNAMES": "echod"},
                        **place_fds([inherited.fileno()]))
        d.start()
        inherited.close()  # echod holds the only copy now
        echo_round(port)
        d.wait_log(r"adopting inherited socket fd 3 \(echod\)")
        d.wait_log(r"adopted 1 socket\(s\) from the service manager")
        self.assertTrue(refused(d.port), "the listen key was bound too")
        # A reload does not bind the listen key either.
        d.signal(signal.SIGHUP)
        d.wait_notify("READY=1")
        self.assertTrue(refused(d.port), "reload bound the listen key")
        echo_round(port)
        self.assertEqual(d.stop(), 0)

    def test_drain_while_manager_keeps_socket(self):
        """systemd keeps its copy of an inherited socket, so echod's close
        does not remove it from epoll: connections arriving while echod
        drains must not reach the freed listener (ASan build: a
        heap-use-after-free made echod exit non-zero here)."""
        inherited = listening_socket()
        self.addCleanup(inherited.close)   # held, as the manager does
        port = inherited.getsockname()[1]
        d = self.daemon(start=False, extra="shutdown_timeout = 20;\n",
                        env={"LISTEN_FDS": "1", "LISTEN_FDNAMES": "echod"},
                        **place_fds([inherited.fileno()]))
        d.start()
        echo_round(port)
        held = connect(port)               # keeps the drain going
        self.addCleanup(held.close)
        held.sendall(b"x")
        self.assertEqual(recv_exact(held, 1), b"x")
        d.signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1")
        d.wait_log(r"shutting down, 1 connection\(s\) to drain")
        late = [socket.create_connection(("127.0.0.1", port), timeout=5)
                for _ in range(5)]         # queue in the manager's socket
        for s in late:
            s.close()
        self.assertIsNone(d.proc.poll(), "echod died during the drain")
        held.shutdown(socket.SHUT_WR)      # let the drain finish
        self.assertEqual(recv_until_eof(held), b"")
        self.assertEqual(d.proc.wait(timeout=20), 0, d.log())

    def test_non_socket_fd_is_rejected(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        inherited = listening_socket()
        self.addCleanup(inherited.close)
        port = inherited.getsockname()[1]
        d = self.daemon(start=False,
                        env={"LISTEN_FDS": "2",
                             "LISTEN_FDNAMES": "junk:echod"},
                        **place_fds([r, inherited.fileno()]))
        d.start()
        d.wait_log(r"inherited fd 3 \(junk\) is not a listening TCP "
                   r"socket or a bound UDP socket; closing it")
        d.wait_log(r"adopted 1 socket\(s\)")
        echo_round(port)
        self.assertTrue(refused(d.port))
        pipe = "pipe:[%d]" % os.fstat(r).st_ino
        self.assertNotIn(pipe, d.fd_targets(),
                         "the rejected fd is still open")
        self.assertEqual(d.stop(), 0)

    def test_only_unusable_fds_fall_back_to_listen_key(self):
        # A UDP socket is adopted only when bound (ListenDatagram= binds
        # it); an unbound one would echo on a port nobody knows.
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(u.close)
        d = self.daemon(start=False, env={"LISTEN_FDS": "1"},
                        **place_fds([u.fileno()]))
        d.start()
        d.wait_log(r"inherited fd 3 \(.*\) is not a listening TCP socket "
                   r"or a bound UDP socket; closing it")
        echo_round(d.port)
        self.assertNotIn("adopted", d.log())
        self.assertEqual(d.stop(), 0)

    def test_inherited_udp_socket_is_adopted(self):
        """ListenDatagram= beside ListenStream=: both are adopted, the UDP
        one echoes datagrams, and the listen key is ignored."""
        tcp = listening_socket()
        self.addCleanup(tcp.close)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(udp.close)   # held, as the manager does
        udp.bind(("127.0.0.1", 0))
        tport, uport = tcp.getsockname()[1], udp.getsockname()[1]
        d = self.daemon(start=False,
                        env={"LISTEN_FDS": "2",
                             "LISTEN_FDNAMES": "echod:echod-udp"},
                        **place_fds([tcp.fileno(), udp.fileno()]))
        d.start()
        status = status_lines([d.messages[-1]])[0]
        self.assertRegex(status, r"^1 listener\(s\), .*; udp: 1 socket\(s\)")
        d.wait_log(r"adopting inherited socket fd 4 \(echod-udp\), UDP")
        d.wait_log(r"adopted 2 socket\(s\) from the service manager")
        echo_round(tport)
        self.assertTrue(refused(d.port), "the listen key was bound too")
        data = os.urandom(9000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(10)
            c.connect(("127.0.0.1", uport))
            c.send(data)
            self.assertEqual(c.recv(70000), data)
            d.signal(signal.SIGHUP)       # still adopted after a reload
            d.wait_notify("READY=1")
            c.send(data[:100])
            self.assertEqual(c.recv(70000), data[:100])
        self.assertEqual(d.stop(), 0, d.log())

    def test_listen_pid_of_another_process_is_ignored(self):
        inherited = listening_socket()
        self.addCleanup(inherited.close)
        d = self.daemon(start=False,
                        env={"LISTEN_FDS": "1", "LISTEN_PID": "1"},
                        **place_fds([inherited.fileno()], ()))
        d.start()
        echo_round(d.port)
        self.assertNotIn("adopt", d.log())
        self.assertEqual(d.stop(), 0)

    @unittest.skipUnless(shutil.which("systemd-socket-activate"),
                         "systemd-socket-activate not installed")
    def test_systemd_socket_activate(self):
        port = free_port()
        d = self.daemon(start=False, extra="",
                        wrapper=["systemd-socket-activate", "-l",
                                 "127.0.0.1:%d" % port, "--fdname=echod",
                                 "-E", "NOTIFY_SOCKET"])
        d.start(wait_ready=False)
        # It execs echod on the first connection only: connect first.
        deadline = time.monotonic() + 10
        while True:
            try:
                first = connect(port)
                break
            except ConnectionRefusedError:
                self.assertLess(time.monotonic(), deadline,
                                "systemd-socket-activate never listened")
                self.assertIsNone(d.proc.poll(), d.log())
                time.sleep(0.01)
        with first:
            d.wait_notify("READY=1")
            first.sendall(b"first connection")
            self.assertEqual(recv_exact(first, 16), b"first connection")
        d.wait_log(r"adopting inherited socket fd 3 \(echod\)")
        echo_round(port)
        self.assertTrue(refused(d.port), "the listen key was bound too")
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()

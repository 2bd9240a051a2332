"""Several engines: echod with `workers = 4` spreads connections and
datagrams over its workers, keeps max_connections and the per-source
limit exact across them, survives a storm of reloads under load without
losing a byte or a connection, drains every worker on SIGTERM, shares an
inherited socket, and stops the watchdog when one worker's loop stops.

These set `workers` themselves, so they test the same thing whatever
ECHOD_TEST_WORKERS the run has."""
import ctypes
import hashlib
import os
import re
import signal
import socket
import threading
import time

import harness
from harness import (EchoClient, Payload, connect, listen_conf, make_conf,
                     recv_exact, recv_until_eof, run_clients)
from test_systemd_notify import listening_socket, place_fds

WORKERS = 4


def per_worker(d, want_tcp, want_udp, timeout=10.0):
    """The last per-worker debug line once its figures add up to at least
    want_tcp accepted connections and want_udp received datagrams:
    a list of (accepted, udp) per worker."""
    found = []

    def added_up():
        lines = re.findall(r"per worker \(accepted/udp received\): (.*)",
                           d.log())
        if not lines:
            return False
        figs = [(int(a), int(u)) for a, u in
                re.findall(r"w\d+ (\d+)/(\d+)", lines[-1])]
        found[:] = figs
        return sum(a for a, _ in figs) >= want_tcp and \
            sum(u for _, u in figs) >= want_udp

    # The line comes with the STATUS tick: no readiness signal to wait on.
    harness.wait_for(added_up, timeout, "a per-worker line adding up to "
                     "%d/%d" % (want_tcp, want_udp))
    return found


def echoed(s, data=b"ping"):
    """True if s echoes data; False if echod closed it unanswered."""
    try:
        s.sendall(data)
        return recv_exact(s, len(data)) == data
    except (ConnectionResetError, BrokenPipeError):
        return False


class Workers(harness.TestCase):
    deadline = 90

    def conf(self, port, **keys):
        keys.setdefault("workers", WORKERS)
        return make_conf([("127.0.0.1", port)], **keys)

    def test_connections_and_datagrams_spread(self):
        port = harness.free_port()
        d = self.daemon(conf='listen = ( { address = "127.0.0.1"; '
                        'port = %d; },\n  { address = "127.0.0.1"; '
                        'port = %d; protocol = "udp"; } );\n'
                        'workers = %d;\nlog_level = "debug";\n'
                        'max_connections_per_source = 0;\n'
                        'udp_per_source_rate = 1000;\n'
                        'udp_per_source_burst = 1000;\n'
                        % (port, port, WORKERS), port=port)
        self.assertEqual(d.workers(), WORKERS)
        n = 64
        for i in range(n):
            with connect(port) as s:
                self.assertTrue(echoed(s, b"tcp %d" % i))
        for i in range(n):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.settimeout(5 * harness.SLOW)
                u.sendto(b"udp %d" % i, ("127.0.0.1", port))
                self.assertEqual(u.recvfrom(100)[0], b"udp %d" % i)
        figs = per_worker(d, n, n)
        print("\nper worker (accepted, udp): %s" % figs)
        self.assertEqual(len(figs), WORKERS)
        self.assertEqual(sum(a for a, _ in figs), n)
        self.assertEqual(sum(u for _, u in figs), n)
        # SO_REUSEPORT hashes each flow: 64 of them all on one of four
        # workers would be a 4^-63 chance, or no spreading at all.
        self.assertGreaterEqual(sum(1 for a, _ in figs if a > 0), 2)
        self.assertGreaterEqual(sum(1 for _, u in figs if u > 0), 2)
        # The debug close lines name the worker of each connection too.
        self.assertGreaterEqual(
            len(set(re.findall(r"closed: .* worker=(\d+)", d.log()))), 2)
        self.assertEqual(d.stop(), 0)

    def test_max_connections_exact_across_workers(self):
        port = harness.free_port()
        d = self.daemon(conf=self.conf(port, max_connections=5,
                                       max_connections_per_source=0),
                        port=port)
        clients = [connect(port) for _ in range(16)]
        for s in clients:
            self.addCleanup(s.close)
        served = [echoed(s) for s in clients]
        self.assertEqual(served.count(True), 5, served)
        d.wait_notify_match(r"^STATUS=1 listener\(s\), 5 connection\(s\) "
                            r"open, 5 accepted, 11 refused \(0 per source\)")
        # A place freed is a place given once, whichever worker accepts
        # (once echod has seen the close: STATUS says 4 open).
        [s for s, ok in zip(clients, served) if ok][0].close()
        d.wait_notify_match(r"^STATUS=1 listener\(s\), 4 connection\(s\) "
                            r"open")
        later = [connect(port) for _ in range(4)]
        for s in later:
            self.addCleanup(s.close)
        self.assertEqual([echoed(s) for s in later].count(True), 1)
        self.assertEqual(d.stop(), 0)

    def test_per_source_limit_exact_across_workers(self):
        port = harness.free_port()
        d = self.daemon(conf=self.conf(port, max_connections_per_source=3),
                        port=port)

        def from_(src):
            s = socket.socket()
            s.settimeout(10)
            s.bind((src, 0))
            s.connect(("127.0.0.1", port))
            self.addCleanup(s.close)
            return s

        one = [from_("127.0.0.1") for _ in range(10)]
        self.assertEqual([echoed(s) for s in one].count(True), 3)
        two = [from_("127.0.0.2") for _ in range(2)]
        self.assertEqual([echoed(s) for s in two].count(True), 2)
        d.wait_notify_match(r"5 connection\(s\) open, 5 accepted, 7 refused "
                            r"\(7 per source\)")
        self.assertEqual(d.stop(), 0)

    def test_reload_storm_under_load(self):
        """20 clients stream while the listeners and limits change on 20
        reloads: every byte comes back in order, no connection drops, and
        every reload succeeds."""
        port, other = harness.free_port(), harness.free_port()
        base = self.conf(port, max_connections_per_source=0)
        d = self.daemon(conf=base, port=port)
        rng = self.rng()
        clients = [EchoClient(connect(port), Payload(rng.randrange(1, 4 << 20),
                                                      i), rng, half_close=True)
                   for i in range(20)]
        errors = []

        def storm():
            try:
                for k in range(20):
                    if k % 2:
                        conf = base
                    else:
                        conf = make_conf([("127.0.0.1", port),
                                          ("127.0.0.1", other)],
                                         workers=WORKERS,
                                         max_connections_per_source=0,
                                         max_connections=100 + k,
                                         output_high_watermark=65536 * (1 +
                                                                        k % 3))
                    d.write_conf(conf)
                    d.signal(signal.SIGHUP)
                    lines = d.wait_notify("READY=1", 20)
                    if any("failed" in l for l in lines):
                        errors.append("reload %d failed: %r" % (k, lines))
                    if k % 2 == 0:
                        with connect(other) as s:
                            if not echoed(s, b"other %d" % k):
                                errors.append("port %d silent" % other)
            except Exception as e:  # reported below, in the main thread
                errors.append(repr(e))

        t = threading.Thread(target=storm)
        t.start()
        run_clients(clients, 60 * harness.SLOW)
        t.join(60)
        self.assertFalse(t.is_alive(), "reloads did not finish")
        self.assertEqual(errors, [])
        for c in clients:
            c.check(self)
        self.assertNotIn("closed: reset", d.log())
        self.assertEqual(d.stop(), 0)

    def test_sigterm_drains_every_worker(self):
        """Slow readers on every worker with output queued: SIGTERM
        delivers all of it, then echod exits 0 within shutdown_timeout."""
        port = harness.free_port()
        d = self.daemon(conf=self.conf(port, shutdown_timeout=30,
                                       max_connections_per_source=0,
                                       log_level="debug"), port=port)
        n, size = 12, 256 * 1024
        socks, sent = [], []
        for i in range(n):
            s = connect(port, rcvbuf=4096)
            self.addCleanup(s.close)
            data = os.urandom(size)
            s.setblocking(False)
            off = 0
            while off < size:   # until echod stops reading (backpressure)
                try:
                    off += s.send(data[off:])
                except BlockingIOError:
                    break
            s.setblocking(True)
            socks.append(s)
            sent.append(data[:off])
        figs = per_worker(d, n, 0)
        self.assertGreaterEqual(sum(1 for a, _ in figs if a > 0), 2, figs)
        d.signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1")
        for s, data in zip(socks, sent):
            s.shutdown(socket.SHUT_WR)
            got = recv_until_eof(s)
            self.assertEqual(hashlib.sha256(got).hexdigest(),
                             hashlib.sha256(data).hexdigest())
        self.assertEqual(d.proc.wait(timeout=30 * harness.SLOW), 0)
        # "eof" for a client whose FIN its worker read before the drain
        # message: it had all its bytes back either way.
        reasons = re.findall(r"closed: (\S+) ", d.log())
        self.assertEqual(len(reasons), n)
        self.assertTrue(set(reasons) <= {"shutdown", "eof"}, reasons)
        self.assertIn("exiting: %d connection(s) served" % n, d.log())

    def test_reload_keeps_worker_count(self):
        """workers needs a restart: a reload that changes it says so and
        keeps the running threads; everything else in the file applies."""
        port = harness.free_port()
        d = self.daemon(conf=self.conf(port, max_connections=2), port=port)
        self.assertEqual(d.workers(), WORKERS)
        d.write_conf(make_conf([("127.0.0.1", port)], workers=1,
                               max_connections=3))
        d.signal(signal.SIGHUP)
        lines = d.wait_notify("READY=1")
        self.assertFalse(any("failed" in l for l in lines), lines)
        d.wait_log(r"workers changed in .*: kept until echod is restarted "
                   r"\(%d worker\(s\) running\)" % WORKERS)
        self.assertEqual(len([t for t in os.listdir("/proc/%d/task" % d.pid)
                              if open("/proc/%d/task/%s/comm"
                                      % (d.pid, t)).read().startswith(
                                          "echod-w")]), WORKERS)
        clients = [connect(port) for _ in range(4)]
        for s in clients:
            self.addCleanup(s.close)
        # max_connections = 3 from the same reload did apply.
        self.assertEqual([echoed(s) for s in clients].count(True), 3)
        self.assertEqual(d.stop(), 0)

    def test_socket_activation_shared_by_workers(self):
        """One inherited socket, registered by every worker with
        EPOLLEXCLUSIVE: every connection is served, and none twice."""
        inherited = listening_socket()
        self.addCleanup(inherited.close)
        port = inherited.getsockname()[1]
        d = self.daemon(start=False,
                        conf=listen_conf(harness.free_port()) +
                        "workers = %d;\nlog_level = \"debug\";\n" % WORKERS,
                        env={"LISTEN_FDS": "1", "LISTEN_FDNAMES": "echod"},
                        **place_fds([inherited.fileno()]))
        d.start()
        inherited.close()
        self.assertEqual(d.workers(), WORKERS)
        n = 40
        live = []
        for i in range(n):
            s = connect(port)
            live.append(s)
            self.assertTrue(echoed(s, b"activated %d" % i))
        figs = per_worker(d, n, 0)
        print("\nEPOLLEXCLUSIVE spread of %d connections: %s"
              % (n, [a for a, _ in figs]))
        self.assertEqual(sum(a for a, _ in figs), n)
        # The kernel wakes the first idle waiter of the socket's queue; a
        # worker that served goes to the back of it (loop_rotate), or else
        # one worker takes all 40. How even it is depends on the load: a
        # worker the scheduler has not yet let rotate is woken again (one
        # CI run, with other tests loading the 2 CPUs: 28, 5, 4, 3), so
        # the test asks only that every worker had its turn. Weaker: on
        # a loaded machine a build without loop_rotate could pass too (a
        # worker not back in epoll_wait is skipped); a quiet one gives
        # 1, 39, 0, 0 without it and 10 each with it.
        self.assertGreaterEqual(min(a for a, _ in figs), 1, figs)
        for s in live:
            s.close()
        self.assertEqual(d.stop(), 0)


# ptrace(2) stops one thread, not the whole process: the test's way to
# stall one worker's loop from outside, with no hook in the daemon.
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000


def worker_tid(pid, name):
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            if f.read().strip() == name:
                return int(tid)
    raise AssertionError("no thread %s in %d" % (name, pid))


class WorkerWatchdog(harness.TestCase):
    deadline = 60

    def pings(self, d, seconds):
        """WATCHDOG=1 messages that arrive within `seconds`."""
        got, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            d.ns.settimeout(max(0.01, end - time.monotonic()))
            try:
                got += d.ns.recv(65536).decode().split("\n").count(
                    "WATCHDOG=1")
            except socket.timeout:
                pass
        return got

    def test_stalled_worker_stops_the_pings(self):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long,
                                ctypes.c_void_p, ctypes.c_void_p]
        port = harness.free_port()
        d = self.daemon(conf=make_conf([("127.0.0.1", port)], workers=2),
                        port=port, env={"WATCHDOG_USEC": "400000"})
        self.assertGreater(self.pings(d, 1.0), 2, "no pings to begin with")
        tid = worker_tid(d.pid, "echod-w1")
        self.assertEqual(libc.ptrace(PTRACE_SEIZE, tid, None, None), 0,
                         os.strerror(ctypes.get_errno()))
        attached = True
        try:
            self.assertEqual(libc.ptrace(PTRACE_INTERRUPT, tid, None, None),
                             0)
            os.waitpid(tid, WALL)       # the worker thread is stopped now
            # Its heartbeat goes stale after the watchdog interval (0.4 s);
            # pings already on their way may still come meanwhile.
            self.pings(d, 0.5)
            stalled = self.pings(d, 1.0)
            # The main loop still runs: the other worker still echoes.
            with connect(port) as s:
                served = echoed_or_none(s)
            self.assertEqual(libc.ptrace(PTRACE_DETACH, tid, None, None), 0)
            attached = False
        finally:
            if attached:
                libc.ptrace(PTRACE_DETACH, tid, None, None)
        print("\npings while worker 1 was stopped: %d" % stalled)
        self.assertEqual(stalled, 0, "pinged while a worker was stopped")
        self.assertGreater(self.pings(d, 1.0), 0, "pings did not resume")
        self.assertIn(served, (True, None))
        self.assertEqual(d.stop(), 0)


def echoed_or_none(s):
    """True if echoed; None if the kernel handed the flow to the stopped
    worker (its queue holds it until the worker runs again)."""
    s.settimeout(0.5)
    try:
        s.sendall(b"x")
        return s.recv(1) == b"x"
    except socket.timeout:
        return None

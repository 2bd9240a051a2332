"""max_connections and idle_timeout."""
import re
import time
import unittest

import harness
from harness import MiB, EchoClient, Payload, connect, make_conf


def round_trip(test, s, data):
    s.sendall(data)
    test.assertEqual(harness.recv_exact(s, len(data)), data)


class Limits(harness.TestCase):
    deadline = 60

    def start(self, **keys):
        port = harness.free_port()
        return self.daemon(conf=make_conf([("127.0.0.1", port)], **keys),
                           port=port)

    def test_max_connections(self):
        n, extra = 4, 3
        d = self.start(max_connections=n)
        first = [connect(d.port) for _ in range(n)]
        for i, s in enumerate(first):
            self.addCleanup(s.close)
            round_trip(self, s, b"admitted %d\n" % i)   # echod took it
        for i in range(extra):
            with connect(d.port) as s:
                # Accepted and closed at once: EOF, not a hang.
                self.assertEqual(s.recv(100), b"", "over-limit client %d" % i)
        for i, s in enumerate(first):
            round_trip(self, s, b"still here %d\n" % i)
        d.wait_log(re.escape("127.0.0.1:%d: max_connections (%d) reached, "
                             "connection refused" % (d.port, n)))
        d.wait_notify_match(r"^STATUS=1 listener\(s\), %d connection\(s\) "
                            r"open, %d accepted, %d refused "
                            r"\(0 per source\)$" % (n, n, extra))
        # A slot that frees up is used again.
        first.pop().close()
        d.wait_notify_match(r"^STATUS=.* %d connection\(s\) open" % (n - 1))
        with connect(d.port) as s:
            round_trip(self, s, b"in again\n")
        for s in first:
            s.close()
        self.assertEqual(d.stop(), 0)

    def test_idle_timeout(self):
        d = self.start(idle_timeout=1, log_level="debug")
        idle, active = connect(d.port), connect(d.port)
        self.addCleanup(idle.close)
        self.addCleanup(active.close)
        round_trip(self, idle, b"then silence\n")
        # The active client makes progress every 0.2 s for 3 idle timeouts.
        end = time.monotonic() + 3.0
        i = 0
        while time.monotonic() < end:
            round_trip(self, active, b"tick %d\n" % i)
            i += 1
            time.sleep(0.2)   # pacing of the client, not synchronisation
        idle.settimeout(10 * harness.SLOW)
        self.assertEqual(idle.recv(100), b"", "idle client not closed")
        m = d.wait_log(r"127\.0\.0\.1:%d closed: idle-timeout in=13 out=13 "
                       r"queued=0 age=(\d+\.\d+)s" % idle.getsockname()[1])
        self.assertGreaterEqual(float(m.group(1)), 1.0)
        round_trip(self, active, b"still served\n")
        self.assertNotIn("%d closed" % active.getsockname()[1], d.log())
        active.close()
        self.assertEqual(d.stop(), 0)

    def test_idle_timeout_reaps_never_reader(self):
        """A client that fills echod's queue and then never reads makes no
        progress: the idle timeout closes it (backpressure never does)."""
        d = self.start(idle_timeout=1, log_level="debug")
        c = EchoClient(connect(d.port), Payload(256 * MiB, 1), self.rng())
        self.addCleanup(c.sock.close)
        c.push_until_stall(stall=0.5)
        d.wait_log(r"127\.0\.0\.1:%d closed: idle-timeout in=\d+ out=\d+ "
                   r"queued=[1-9]" % c.sock.getsockname()[1])
        d.wait_notify_match(r"^STATUS=.* 0 connection\(s\) open")
        self.assertEqual(d.stop(), 0)


class IdleMemory(harness.TestCase):
    """An idle connection costs echod at most 128 bytes of memory (the
    struct conn is 112): measured as resident memory growth over a few
    thousand connections, at whatever worker count the run has."""
    deadline = 120
    N = 4000

    def test_idle_connection_costs_at_most_128_bytes(self):
        if harness.SANITIZE:
            self.skipTest("sanitizer builds allocate each connection apart, "
                          "with red zones")
        port = harness.free_port()
        d = self.daemon(conf=make_conf([("127.0.0.1", port)],
                                       max_connections_per_source=0,
                                       idle_timeout=0), port=port)
        warm = [connect(port) for _ in range(64)]   # slabs, arenas, tables
        for s in warm:
            self.addCleanup(s.close)
            round_trip(self, s, b"w")
        before = d.exact_rss_kb()
        held = []
        for i in range(self.N):
            s = connect(port)
            held.append(s)
            self.addCleanup(s.close)
            s.sendall(b"i")
        for s in held:      # every one is accepted, echoed, then idle
            self.assertEqual(harness.recv_exact(s, 1), b"i")
        d.wait_notify_match(r"%d connection\(s\) open" % (self.N + 64))
        grown = (d.exact_rss_kb() - before) * 1024
        # Each worker's slab is touched page by page: a page of slack.
        slack = d.workers() * 4096
        print("\n%d idle connections: Rss +%d bytes, %.1f bytes each"
              % (self.N, grown, grown / self.N))
        self.assertLessEqual(grown, 128 * self.N + slack)
        self.assertEqual(d.stop(), 0)

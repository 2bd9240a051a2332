"""Backpressure: a client that sends 256 MiB without reading.

echod must stop reading it once output_high_watermark bytes are queued,
so its memory stays bounded while TCP pushes back on the sender; other
clients keep getting echoes meanwhile; and when the client finally reads,
every one of the 256 MiB comes back byte-exact."""
import harness
from harness import KiB, MiB, EchoClient, Payload, connect, make_conf

HIGH = 1 * MiB
LOW = 256 * KiB
CHUNK = 16 * KiB   # OUTQ_CHUNK: the queue may overshoot by one chunk
# Allocator and kernel noise on top of the queue: malloc headers and heap
# rounding of the chunks, a few connection structs, stack and page-cache
# noise. Small next to what the client pushes (tens of MiB), so an
# unbounded queue fails by far. Under ASan each chunk also costs shadow
# memory (1/8) and redzones: measured +1.45 MiB for the 1 MiB queue.
SLACK = 1 * MiB + (512 * KiB if harness.SANITIZE else 0)


class Backpressure(harness.TestCase):
    deadline = 90

    def test_never_reader_256MiB(self):
        rng = self.rng()
        port = harness.free_port()
        d = self.daemon(conf=make_conf([("127.0.0.1", port)],
                                       output_high_watermark=HIGH,
                                       output_low_watermark=LOW), port=port)
        # Warm up (the loop's scratch buffer is touched by the first read),
        # then take the baseline.
        warm = EchoClient(connect(d.port), Payload(100 * KiB, 1), rng)
        harness.run_clients([warm], 10)
        warm.check(self)
        warm.sock.close()
        base = d.rss_kb()

        # Phase 1: push without reading until the daemon stops reading us.
        total = 256 * MiB
        hog = EchoClient(connect(d.port), Payload(total, 2), rng)
        self.addCleanup(hog.sock.close)
        rxq = self.stall(hog, d.port)
        rss, hwm = d.rss_kb(), d.hwm_kb()
        txq = harness.tcp_queues(hog.sock.getsockname()[1], d.port)[0]
        took = hog.sent - txq - rxq     # what echod has read from us
        bound = base + (HIGH + CHUNK + SLACK) // KiB
        print("never-reader: pushed %.1f MiB before the stall, of which "
              "echod read %.1f MiB (%.1f MiB wait unread in its socket, "
              "%.1f MiB in the client's); echod VmRSS baseline %d kB, now "
              "%d kB, peak (VmHWM) %d kB, bound %d kB = baseline + high "
              "watermark %d kB + chunk %d kB + slack %d kB"
              % (hog.sent / MiB, took / MiB, rxq / MiB, txq / MiB, base, rss,
                 hwm, bound, HIGH // KiB, CHUNK // KiB, SLACK // KiB))
        self.assertGreaterEqual(took, HIGH, "echod's queue never filled")
        self.assertGreater(took, (bound - base) * KiB,
                           "too little read to tell a bound from none")
        # ThreadSanitizer's shadow memory is several times what it shadows:
        # the bound is checked in the plain and ASan runs.
        if not harness.TSAN:
            self.assertLessEqual(hwm, bound)

        # While it is stalled, other clients still get their echoes.
        others = [EchoClient(connect(d.port), Payload(64 * KiB, 10 + i), rng,
                             half_close=True) for i in range(5)]
        harness.run_clients(others, 10 * harness.SLOW)
        for c in others:
            c.check(self)
            c.sock.close()
        self.assertEqual(hog.rcvd, 0)

        # Phase 2: read everything back while sending the rest.
        harness.run_clients([hog], 60 * harness.SLOW)
        hog.check(self)
        hwm = d.hwm_kb()
        print("never-reader: all %d MiB echoed byte-exact; echod peak "
              "VmHWM over the whole test %d kB (bound %d kB)"
              % (total >> 20, hwm, bound))
        if not harness.TSAN:
            self.assertLessEqual(hwm, bound)
        hog.sock.close()
        self.assertEqual(d.stop(), 0)

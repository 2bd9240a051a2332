"""SIGTERM: graceful shutdown delivers queued output, then exits 0; a
client that never reads is cut off at shutdown_timeout."""
import hashlib
import re
import signal
import time

import harness
from harness import KiB, MiB, EchoClient, Payload, connect, make_conf

HIGH = 1 * MiB


def refused(port):
    """The listener is gone: refused, or reset because the handshake
    landed in its backlog just before it closed."""
    try:
        connect(port).close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    return False


class Shutdown(harness.TestCase):
    deadline = 60

    def start(self, **keys):
        port = harness.free_port()
        return self.daemon(conf=make_conf(
            [("127.0.0.1", port)], log_level="debug",
            output_high_watermark=HIGH, output_low_watermark=256 * KiB,
            **keys), port=port)

    def closed_line(self, d, peer_port):
        m = d.wait_log(r"conn \d+ 127\.0\.0\.1:%d closed: (\S+) in=(\d+) "
                       r"out=(\d+) queued=(\d+)" % peer_port)
        return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))

    def test_sigterm_delivers_queued_output(self):
        d = self.start(shutdown_timeout=60)
        c = EchoClient(connect(d.port), Payload(256 * MiB, 1), self.rng())
        self.addCleanup(c.sock.close)
        self.stall(c, d.port)          # echod holds >= HIGH bytes queued
        quiet = connect(d.port)
        self.addCleanup(quiet.close)
        quiet.sendall(b"bye\n")
        self.assertEqual(harness.recv_exact(quiet, 4), b"bye\n")

        d.signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1")
        # STOPPING=1 goes out just before the listeners close.
        harness.wait_for(lambda: refused(d.port), 10, "the listener to close")
        self.assertEqual(quiet.recv(10), b"", "quiet client: EOF expected")
        quiet.close()

        # Now read: everything echod had read comes back, then EOF.
        c.sock.setblocking(True)
        c.sock.settimeout(20 * harness.SLOW)
        got = harness.recv_until_eof(c.sock)
        print("sent %.1f MiB without reading; after SIGTERM received %.1f "
              "MiB of echo, then EOF" % (c.sent / MiB, len(got) / MiB))
        self.assertGreaterEqual(len(got), HIGH)
        self.assertLessEqual(len(got), c.sent)
        self.assertEqual(hashlib.sha256(got).hexdigest(),
                         c.payload.digest(len(got)), "not a prefix")
        mine = c.sock.getsockname()[1]
        c.sock.close()
        self.assertEqual(d.proc.wait(timeout=20 * harness.SLOW), 0)
        why, rx, tx, queued = self.closed_line(d, mine)
        self.assertEqual((why, tx, queued), ("shutdown", len(got), 0))
        self.assertGreaterEqual(rx, tx)
        self.assertNotIn("shutdown timeout", d.log())

    def test_shutdown_timeout_cuts_never_reader(self):
        d = self.start(shutdown_timeout=1)
        c = EchoClient(connect(d.port), Payload(256 * MiB, 1), self.rng())
        self.addCleanup(c.sock.close)
        self.stall(c, d.port)
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1")
        self.assertEqual(d.proc.wait(timeout=10 * harness.SLOW), 0)
        took = time.monotonic() - t0
        print("never-reader: echod exited %.2fs after SIGTERM "
              "(shutdown_timeout = 1)" % took)
        self.assertGreaterEqual(took, 0.9)
        d.wait_log(re.escape("shutdown timeout: closing 1 connection(s) "
                             "with output still queued"))
        self.assertEqual(self.closed_line(d, c.sock.getsockname()[1])[0],
                         "shutdown-timeout")

    def test_second_sigterm_closes_at_once(self):
        d = self.start(shutdown_timeout=3600)
        c = EchoClient(connect(d.port), Payload(256 * MiB, 1), self.rng())
        self.addCleanup(c.sock.close)
        self.stall(c, d.port)
        d.signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1")
        d.wait_log(r"shutting down, 1 connection\(s\) to drain")
        d.signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(timeout=10 * harness.SLOW), 0)
        d.wait_log(r"again: closing all connections now")

"""SIGHUP: reload a good configuration (log level, idle timeout, a new
listener, then a removed one) and a bad one (kept the old, file:line in the
log, STATUS says so), while clients stay connected and keep echoing."""
import random
import re
import signal
import threading
import time

import harness
from harness import KiB, connect, make_conf, recv_exact


class Streamer(threading.Thread):
    """Round trips of random sizes on one connection until stopped; every
    echo is compared with what was sent."""

    def __init__(self, port, seed):
        super().__init__(daemon=True)
        self.sock = connect(port)
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.trips = 0
        self.bytes = 0
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                data = self.rng.randbytes(harness.log_size(self.rng, 1,
                                                           64 * KiB))
                self.sock.sendall(data)
                back = recv_exact(self.sock, len(data))
                if back != data:
                    raise AssertionError("echo differs after %d trips"
                                         % self.trips)
                self.trips += 1
                self.bytes += len(data)
        except Exception as e:   # reported by finish()
            self.error = e

    def finish(self, test):
        self.stop.set()
        self.join(10 * harness.SLOW)
        test.assertFalse(self.is_alive(), "streamer stuck")
        test.assertIsNone(self.error)
        test.assertGreater(self.trips, 0)
        self.sock.close()


class Reload(harness.TestCase):
    deadline = 60

    def hup(self, d):
        """SIGHUP; RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC, taken
        after the signal), then READY=1. Returns READY's STATUS."""
        before = time.monotonic()
        d.signal(signal.SIGHUP)
        lines = d.wait_notify("RELOADING=1")
        stamp = [l for l in lines if l.startswith("MONOTONIC_USEC=")]
        self.assertEqual(len(stamp), 1, lines)
        usec = int(stamp[0].split("=", 1)[1])
        self.assertLessEqual(before * 1e6 - 1000, usec)
        self.assertLessEqual(usec, time.monotonic() * 1e6 + 1000)
        lines = d.wait_notify("READY=1")
        status = [l for l in lines if l.startswith("STATUS=")]
        self.assertEqual(len(status), 1, lines)
        return status[0]

    def progress(self, streams):
        """Every streamer completes more round trips from now on."""
        marks = [s.trips for s in streams]
        harness.wait_for(lambda: all(s.trips > m or s.error
                                     for s, m in zip(streams, marks)),
                         10, "the streamers to keep echoing")
        for s in streams:
            self.assertIsNone(s.error)

    def echoes(self, port):
        with connect(port) as s:
            s.sendall(b"ping %d\n" % port)
            self.assertEqual(recv_exact(s, 11), b"ping %d\n" % port)

    def test_good_then_bad_reload(self):
        rng = self.rng()
        lo = "127.0.0.1"
        pa, pb, pc = (harness.free_port() for _ in range(3))
        d = self.daemon(conf=make_conf([(lo, pa)]), port=pa)
        quiet = connect(pa)
        self.addCleanup(quiet.close)
        streams = [Streamer(pa, rng.random()) for _ in range(2)]
        for s in streams:
            s.start()
        self.addCleanup(lambda: [s.stop.set() for s in streams])

        # Good: a second listener, debug logging, an idle timeout.
        d.write_conf(make_conf([(lo, pa), (lo, pb)], log_level="debug",
                               idle_timeout=30))
        status = self.hup(d)
        self.progress(streams)
        self.assertRegex(status, r"^STATUS=2 listener\(s\)")
        self.assertNotIn("failed", status)
        d.wait_log(re.escape("listening on %s:%d" % (lo, pb)))
        d.wait_log(re.escape("reloaded configuration from " + d.conf_path))
        self.echoes(pb)
        self.echoes(pa)
        d.wait_log(r"conn \d+ %s:\d+ closed: eof in=11 out=11" % lo)

        # Good: remove the first listener; its connections stay.
        d.write_conf(make_conf([(lo, pb)], log_level="debug",
                               idle_timeout=30))
        status = self.hup(d)
        self.progress(streams)
        self.assertRegex(status, r"^STATUS=1 listener\(s\)")
        d.wait_log(re.escape("no longer listening on %s:%d" % (lo, pa)))
        with self.assertRaises(ConnectionRefusedError):
            connect(pa)
        self.echoes(pb)
        quiet.sendall(b"still here\n")
        self.assertEqual(recv_exact(quiet, 11), b"still here\n")

        # Bad: line 6 is wrong. The old configuration stays in force.
        d.write_conf('listen = (\n'
                     '    { address = "%s"; port = %d; },\n'
                     '    { address = "%s"; port = %d; }\n'
                     ');\n'
                     'log_level = "info";\n'
                     'idle_timeout = "soon";\n' % (lo, pb, lo, pc))
        status = self.hup(d)
        self.progress(streams)
        self.assertIn("last reload failed", status)
        self.assertRegex(status, r"^STATUS=1 listener\(s\)")
        d.wait_log(re.escape("reload failed, keeping the current "
                             "configuration: %s:6: idle_timeout" % d.conf_path))
        self.echoes(pb)
        with self.assertRaises(ConnectionRefusedError):
            connect(pc)
        before = len(re.findall(r"closed: eof", d.log()))
        self.echoes(pb)   # still at debug level: one more close line
        d.wait_log(r"(?s)(closed: eof.*){%d}" % (before + 1))

        # Bad syntax: libconfig's own error, also with file:line.
        d.write_conf(make_conf([(lo, pb)]) + "max_connections = ;\n")
        status = self.hup(d)
        self.progress(streams)
        self.assertIn("last reload failed", status)
        d.wait_log(re.escape("%s:4: syntax error" % d.conf_path))

        quiet.sendall(b"survived 4\n")
        self.assertEqual(recv_exact(quiet, 11), b"survived 4\n")
        for s in streams:
            s.finish(self)
        print("streamers: %s round trips across four reloads"
              % ", ".join(str(s.trips) for s in streams))
        quiet.close()
        self.assertEqual(d.stop(), 0)

    def test_reload_applies_limits(self):
        """max_connections and idle_timeout take effect on reload, for the
        connections already open too."""
        d = self.daemon(extra="max_connections = 1;\nidle_timeout = 0;\n"
                        "log_level = \"debug\";\n")
        first = connect(d.port)
        self.addCleanup(first.close)
        first.sendall(b"x")
        self.assertEqual(recv_exact(first, 1), b"x")
        with connect(d.port) as s:
            self.assertEqual(s.recv(10), b"", "over max_connections = 1")
        d.write_conf(harness.listen_conf(d.port) +
                     "max_connections = 3;\nidle_timeout = 1;\n"
                     "log_level = \"debug\";\n")
        self.assertNotIn("failed", self.hup(d))
        second = connect(d.port)
        self.addCleanup(second.close)
        second.sendall(b"y")
        self.assertEqual(recv_exact(second, 1), b"y")
        # Both idle now: the new timeout closes them, the older one too.
        for s in (first, second):
            s.settimeout(10 * harness.SLOW)
            self.assertEqual(s.recv(10), b"")
            d.wait_log(r"127\.0\.0\.1:%d closed: idle-timeout"
                       % s.getsockname()[1])
        self.assertEqual(d.stop(), 0)


class ReloadAllOrNothing(harness.TestCase):
    """A reload that cannot be applied whole changes nothing."""
    deadline = 60
    hup = Reload.hup
    echoes = Reload.echoes

    def test_busy_port_keeps_old_listeners_and_limits(self):
        lo = "127.0.0.1"
        pa = harness.free_port()
        d = self.daemon(conf=make_conf([(lo, pa)]), port=pa)
        quiet = connect(pa)
        self.addCleanup(quiet.close)
        # Someone else holds port pb: the new listener cannot be bound.
        squatter = harness.socket.socket()
        self.addCleanup(squatter.close)
        squatter.bind((lo, 0))
        squatter.listen(1)
        pb = squatter.getsockname()[1]
        d.write_conf(make_conf([(lo, pb)], max_connections=1))
        status = self.hup(d)
        self.assertIn("last reload failed", status)
        self.assertRegex(status, r"^STATUS=1 listener\(s\)")
        d.wait_log(re.escape("reload failed, keeping the current "
                             "configuration: cannot listen on %s port %d"
                             % (lo, pb)))
        self.assertNotIn("no longer listening", d.log())
        # The old listener was never closed, and the rest of the file was
        # not applied either: with max_connections = 1 in force, this
        # second connection (quiet holds the first) would be refused.
        self.echoes(pa)
        quiet.sendall(b"still served\n")
        self.assertEqual(recv_exact(quiet, 13), b"still served\n")
        quiet.close()
        self.assertEqual(d.stop(), 0)

    def test_empty_listen_refused(self):
        lo = "127.0.0.1"
        pa = harness.free_port()
        d = self.daemon(conf=make_conf([(lo, pa)]), port=pa)
        d.write_conf("listen = ();\n")
        status = self.hup(d)
        self.assertIn("last reload failed", status)
        d.wait_log(re.escape("listen: no listener configured"))
        self.echoes(pa)
        self.assertEqual(d.stop(), 0)

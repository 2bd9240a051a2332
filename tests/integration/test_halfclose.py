"""Half-close: a client that shuts down its write side gets every byte it
sent echoed, then EOF; also when echod still had output queued (and had
stopped reading) at the moment the EOF was sent."""
import socket

import harness
from harness import KiB, MiB, EchoClient, Payload, connect, make_conf


class HalfClose(harness.TestCase):
    deadline = 60

    def debug_daemon(self, **keys):
        port = harness.free_port()
        return self.daemon(conf=make_conf([("127.0.0.1", port)],
                                          log_level="debug", **keys),
                           port=port)

    def closed_line(self, d, peer_port):
        """echod's debug line for the connection from peer_port."""
        m = d.wait_log(r"conn \d+ 127\.0\.0\.1:%d closed: (\S+) in=(\d+) "
                       r"out=(\d+) queued=(\d+)" % peer_port)
        return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))

    def test_send_then_shutdown_write(self):
        rng = self.rng()
        d = self.debug_daemon()
        sizes = [0, 1, 1000, 64 * KiB, 3 * MiB + 1]
        clients = []
        for i, size in enumerate(sizes):
            s = connect(d.port)
            self.addCleanup(s.close)
            clients.append(EchoClient(s, Payload(size, i), rng,
                                      half_close=True))
            if size == 0:
                s.shutdown(socket.SHUT_WR)
        harness.run_clients(clients, 30)
        for c in clients:
            c.check(self)
            self.assertEqual(self.closed_line(d, c.sock.getsockname()[1]),
                             ("eof", c.size, c.size, 0))
        self.assertEqual(d.stop(), 0)

    def test_eof_read_while_output_queued(self):
        """echod reads the EOF while megabytes of echo are still queued:
        it must flush them all before closing."""
        rng = self.rng()
        d = self.debug_daemon(output_high_watermark=16 * MiB,
                              output_low_watermark=1 * MiB)
        size = 12 * MiB   # under the high watermark: echod reads it all
        # A tiny window: the kernel holds at most echod's send buffer
        # (4 MiB at most) of the echo, echod's queue holds the rest.
        c = EchoClient(connect(d.port, rcvbuf=4 * KiB), Payload(size, 1),
                       rng, half_close=True)
        self.addCleanup(c.sock.close)
        while c.want_write():
            c.push_until_stall(stall=5.0 * harness.SLOW)
        mine = c.sock.getsockname()[1]
        # Not reading until echod has read every byte we sent.
        harness.wait_for(lambda: harness.tcp_queues(mine, d.port)[0] == 0
                         and harness.tcp_queues(d.port, mine)[1] == 0, 20,
                         "echod to read all %d bytes" % size)
        tx = harness.tcp_queues(d.port, mine)[0]
        print("echod read all %d MiB with %d B in its socket's send queue "
              "and the rest queued" % (size >> 20, tx))
        harness.run_clients([c], 30 * harness.SLOW)
        c.check(self)
        self.assertEqual(self.closed_line(d, mine), ("eof", size, size, 0))
        self.assertEqual(d.stop(), 0)

    def test_shutdown_write_while_paused(self):
        """The EOF arrives behind megabytes echod has stopped reading
        (backpressure): it must still read them all, echo, then close."""
        rng = self.rng()
        d = self.debug_daemon(output_high_watermark=256 * KiB,
                              output_low_watermark=64 * KiB)
        # A slow reader (small window, small reads).
        c = EchoClient(connect(d.port, rcvbuf=4 * KiB), Payload(64 * MiB, 1),
                       rng, max_recv=4 * KiB)
        self.addCleanup(c.sock.close)
        # Not reading: echod fills its queue to the high watermark and
        # stops reading us, with our bytes waiting in its receive queue.
        self.stall(c, d.port)
        sent = c.sent
        c.finish_here()   # the FIN goes out behind the bytes in flight
        harness.run_clients([c], 30 * harness.SLOW)
        c.check(self)
        self.assertEqual(c.payload.digest(sent), c.rx_hash.hexdigest())
        self.assertEqual(self.closed_line(d, c.sock.getsockname()[1]),
                         ("eof", sent, sent, 0))
        print("half-closed with %.1f MiB in flight; all echoed, then EOF"
              % (sent / MiB))
        self.assertEqual(d.stop(), 0)

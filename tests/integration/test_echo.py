"""Byte-exact echo under concurrency and random fragmentation.

200 clients at once, payload sizes from 1 B to 64 MiB (log-distributed,
so the total stays near 150 MiB each way), each sent in random-sized
pieces while the echo is read in random-sized pieces; every client's echo
is compared with what it sent by sha256. Also IPv6 (::1) and several
listeners in one configuration."""
import re

import harness
from harness import KiB, MiB, EchoClient, Payload, connect, make_conf


def clients_for(test, port, sizes, rng, host="127.0.0.1", first_tag=0):
    out = []
    for i, size in enumerate(sizes):
        # Every third client has a small receive window, so echod's output
        # queue, its watermarks and the resume path carry those echoes.
        s = connect(port, host, rcvbuf=8 * KiB if i % 3 == 1 else None)
        out.append(EchoClient(s, Payload(size, first_tag + i), rng,
                              half_close=(i % 2 == 0)))
        test.addCleanup(s.close)
    return out


class Echo(harness.TestCase):
    deadline = 90

    def test_200_clients_1B_to_64MiB(self):
        rng = self.rng()
        # All 200 clients come from 127.0.0.1, one source.
        d = self.daemon(extra="max_connections_per_source = 0;\n")
        # Fixed corners first, then log-uniform 1 B .. 4 MiB (about 150 MiB
        # in all; a few seconds even under ASan).
        top = 4 * MiB
        sizes = [64 * MiB, 16 * MiB, 1, 2, 3,
                 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 256 * KiB + 1]
        while len(sizes) < 200:
            sizes.append(harness.log_size(rng, 1, top))
        rng.shuffle(sizes)
        clients = clients_for(self, d.port, sizes, rng)
        print("%d clients, %.1f MiB each way" % (len(clients),
                                                 sum(sizes) / MiB))
        harness.run_clients(clients, 60 * harness.SLOW)
        for c in clients:
            c.check(self)
            c.sock.close()
        self.assertEqual(d.proc.poll(), None, "echod died")
        self.assertEqual(d.stop(), 0)
        m = d.wait_log(r"exiting: (\d+) connection\(s\) served, (\d+) "
                       r"bytes echoed")
        self.assertEqual((int(m.group(1)), int(m.group(2))),
                         (len(clients), sum(sizes)))

    def test_ipv6_loopback(self):
        if not harness.ipv6_loopback():
            self.skipTest("no IPv6 loopback (::1 cannot be bound)")
        rng = self.rng()
        port = harness.free_port("::1")
        d = self.daemon(conf=make_conf([("::1", port)]), port=port)
        d.wait_log(re.escape("listening on [::1]:%d" % port))
        clients = clients_for(self, port, [1, 1000, 3 * MiB, 70000], rng,
                              host="::1")
        harness.run_clients(clients, 30 * harness.SLOW)
        for c in clients:
            c.check(self)
            c.sock.close()
        with self.assertRaises(ConnectionRefusedError):
            connect(port, "127.0.0.1").close()
        self.assertEqual(d.stop(), 0)

    def test_several_listeners(self):
        rng = self.rng()
        addrs = [("127.0.0.1", harness.free_port()),
                 ("127.0.0.2", harness.free_port("127.0.0.2"))]
        if harness.ipv6_loopback():
            addrs.append(("::1", harness.free_port("::1")))
        d = self.daemon(conf=make_conf(addrs), port=addrs[0][1])
        clients = []
        for n, (host, port) in enumerate(addrs):
            name = "[%s]" % host if ":" in host else host
            d.wait_log(re.escape("listening on %s:%d" % (name, port)))
            clients += clients_for(self, port, [5, 100 * KiB, MiB + 7],
                                   rng, host=host, first_tag=10 * n)
        d.wait_notify_match(r"^STATUS=%d listener\(s\), %d connection\(s\) "
                            "open" % (len(addrs), len(clients)))
        harness.run_clients(clients, 30 * harness.SLOW)
        for c in clients:
            c.check(self)
            c.sock.close()
        self.assertEqual(d.stop(), 0)

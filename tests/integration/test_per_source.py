"""max_connections_per_source: one source cannot take every slot.

Clients pick their source address by binding before connect: every
127.x.y.z is local, so 127.0.0.2 is another source on the same machine.
Refused clients see EOF at once (accepted and closed); the others are
still served, checked by echoed bytes. STATUS lines are the readiness
signal that echod has seen a close."""
import re
import signal
import socket
import time

import harness
from harness import connect


def connect_from(src, port, host="127.0.0.1"):
    """A TCP connection to host:port from source address src."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.settimeout(10 * harness.SLOW)
        s.bind((src, 0))
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def served(test, s, tag):
    data = b"served %s\n" % tag.encode()
    s.sendall(data)
    test.assertEqual(harness.recv_exact(s, len(data)), data,
                     "%s: not echoed" % tag)


def refused(test, s, tag):
    # Accepted and closed at once: EOF, not a hang and not an echo.
    test.assertEqual(s.recv(100), b"", "%s: not refused" % tag)
    s.close()


def conf(listeners, **keys):
    """listeners: (address, port, ipv6_only or None)."""
    items = ",\n".join(
        '    { address = "%s"; port = %d;%s }' % (
            a, p, "" if v6 is None else
            " ipv6_only = %s;" % ("true" if v6 else "false"))
        for a, p, v6 in listeners)
    text = "listen = (\n%s\n);\n" % items
    for k, v in keys.items():
        text += '%s = %s;\n' % (k, '"%s"' % v if isinstance(v, str) else v)
    return text


REFUSED = ("%s: max_connections_per_source \\(%d\\) reached by %s, "
           "connection refused")


class PerSource(harness.TestCase):
    deadline = 60

    def setUp(self):
        super().setUp()
        self.socks = []
        self.addCleanup(lambda: [s.close() for s in self.socks])

    def conn(self, src, port, host="127.0.0.1"):
        s = connect_from(src, port, host)
        self.socks.append(s)
        return s

    def served_from(self, n, src, port, host="127.0.0.1"):
        """n connections from src, each checked to be served."""
        socks = [self.conn(src, port, host) for _ in range(n)]
        for i, s in enumerate(socks):
            served(self, s, "%s #%d" % (src, i))
        return socks

    def reload(self, d, text):
        d.write_conf(text)
        d.signal(signal.SIGHUP)
        d.wait_notify("RELOADING=1")
        d.wait_notify("READY=1")

    def stop(self, d):
        """Clients leave first, so the drain does not wait for them."""
        for s in self.socks:
            s.close()
        self.assertEqual(d.stop(), 0)

    def start(self, port, **keys):
        return self.daemon(conf=conf([("127.0.0.1", port, None)], **keys),
                           port=port)

    def status(self, d, open_, accepted, refused_, per_source):
        """Wait for the STATUS line with these counts."""
        d.wait_notify_match(
            r"^STATUS=1 listener\(s\), %d connection\(s\) open, %d "
            r"accepted, %d refused \(%d per source\)$"
            % (open_, accepted, refused_, per_source))

    def test_fourth_refused_other_source_served(self):
        port = harness.free_port()
        d = self.start(port, max_connections_per_source=3)
        first = self.served_from(3, "127.0.0.1", port)
        refused(self, self.conn("127.0.0.1", port), "127.0.0.1 #3")
        d.wait_log(REFUSED % (re.escape("127.0.0.1:%d" % port), 3,
                              re.escape("127.0.0.1")))
        # Another source is served while the first is at its limit.
        other = self.conn("127.0.0.2", port)
        served(self, other, "127.0.0.2")
        for i, s in enumerate(first):
            served(self, s, "127.0.0.1 #%d again" % i)
        self.status(d, 4, 4, 1, 1)
        # One of the three leaves: its slot is free for the same source.
        first.pop().close()
        self.status(d, 3, 4, 1, 1)
        again = self.conn("127.0.0.1", port)
        served(self, again, "127.0.0.1 in again")
        refused(self, self.conn("127.0.0.1", port), "127.0.0.1 #4")
        self.status(d, 4, 5, 2, 2)
        self.stop(d)

    def test_refusals_are_logged_rate_limited(self):
        port = harness.free_port()
        d = self.start(port, max_connections_per_source=1)
        held = self.conn("127.0.0.1", port)
        served(self, held, "the one allowed")
        n = 40
        t0 = time.monotonic()
        for i in range(n):
            refused(self, self.conn("127.0.0.1", port), "flood #%d" % i)
        wall = time.monotonic() - t0
        served(self, held, "still the one allowed")
        line = REFUSED % (re.escape("127.0.0.1:%d" % port), 1,
                          re.escape("127.0.0.1"))
        after = re.compile(r"(\d+) similar messages suppressed after: " + line)
        inline = re.compile(line + r"(?: \((\d+) similar messages "
                            r"suppressed\))?$")

        def tally():
            logged, counted = 0, 0
            for l in d.log().splitlines():
                m = after.search(l)
                if m:
                    counted += int(m.group(1))
                    continue
                m = inline.search(l)
                if m:
                    logged += 1
                    counted += 1 + int(m.group(1) or 0)
            return logged, counted
        # Every refusal is accounted for, once the limiter's flush (at
        # most a second or two after the flood) has told the rest.
        harness.wait_for(lambda: tally()[1] >= n, 10,
                         "the suppressed refusals to be counted")
        logged, counted = tally()
        print("%d refusals in %.2fs: %d warnings logged" % (n, wall, logged))
        self.assertEqual(counted, n, "refusals logged + suppressed")
        # LOG_LIMIT_BURST 5, then LOG_LIMIT_RATE 1/s, in each worker.
        self.assertLessEqual(logged, d.workers() * (5 + wall) + 3)
        self.assertLess(logged, n)
        self.status(d, 1, 1, n, n)
        self.stop(d)

    def test_ipv6_source_and_shared_table(self):
        """::1 is one IPv6 source (its /64); the IPv4 listener's clients
        are other sources in the same table."""
        if not harness.ipv6_loopback():
            self.skipTest("no IPv6 loopback")
        p6, p4 = harness.free_port("::1"), harness.free_port()
        d = self.daemon(conf=conf([("::1", p6, True), ("127.0.0.1", p4, None)],
                                  max_connections_per_source=2), port=p4)
        self.served_from(2, "::1", p6, "::1")
        refused(self, self.conn("::1", p6, "::1"), "::1 #2")
        d.wait_log(REFUSED % (re.escape("[::1]:%d" % p6), 2,
                              re.escape("::/64")))
        self.served_from(2, "127.0.0.1", p4)
        refused(self, self.conn("127.0.0.1", p4), "127.0.0.1 #2")
        self.stop(d)

    def test_ipv4_mapped_counts_as_ipv4(self):
        """An IPv6 socket that takes IPv4 (ipv6_only = false) sees clients
        as ::ffff:127.0.0.1: that is the IPv4 source 127.0.0.1, shared with
        a plain IPv4 listener, not the IPv6 prefix ::ffff:0:0/64 (which
        would make every IPv4 client one source)."""
        if not harness.ipv6_loopback():
            self.skipTest("no IPv6 loopback")
        pm, p4 = harness.free_port(), harness.free_port()
        d = self.daemon(conf=conf([("::ffff:127.0.0.1", pm, False),
                                   ("127.0.0.1", p4, None)],
                                  max_connections_per_source=3), port=p4)
        held = [self.conn("127.0.0.1", pm), self.conn("127.0.0.1", pm),
                self.conn("127.0.0.1", p4)]
        for i, s in enumerate(held):
            served(self, s, "127.0.0.1 #%d" % i)
        refused(self, self.conn("127.0.0.1", pm), "mapped #3")
        refused(self, self.conn("127.0.0.1", p4), "plain #3")
        d.wait_log(REFUSED % (re.escape("[::ffff:127.0.0.1]:%d" % pm), 3,
                              re.escape("127.0.0.1")))
        for src in ("127.0.0.2", "127.0.0.3"):
            s = self.conn(src, pm)
            served(self, s, src + " through the mapped listener")
        self.stop(d)

    def test_reload_lowers_limit_and_regroups(self):
        port = harness.free_port()
        d = self.start(port, max_connections_per_source=4)
        held = self.served_from(4, "127.0.0.1", port)
        other = self.conn("127.0.0.2", port)
        served(self, other, "127.0.0.2")

        # Lower the limit: nothing open is closed, new ones are refused.
        self.reload(d, conf([("127.0.0.1", port, None)],
                            max_connections_per_source=2))
        for i, s in enumerate(held):
            served(self, s, "127.0.0.1 #%d after the reload" % i)
        refused(self, self.conn("127.0.0.1", port), "127.0.0.1 over 2")
        d.wait_log(REFUSED % (re.escape("127.0.0.1:%d" % port), 2,
                              re.escape("127.0.0.1")))
        # Down to 2 open: still at the limit, so still refused.
        held.pop().close()
        held.pop().close()
        self.status(d, 3, 5, 1, 1)
        refused(self, self.conn("127.0.0.1", port), "127.0.0.1 at 2")
        # Down to 1: admitted again.
        held.pop().close()
        self.status(d, 2, 5, 2, 2)
        s = self.conn("127.0.0.1", port)
        served(self, s, "127.0.0.1 under the new limit")
        self.status(d, 3, 6, 2, 2)

        # A shorter IPv4 prefix on reload counts what is open again:
        # 127.0.0.1 (2 open) and 127.0.0.2 (1) are now one source of 3.
        self.reload(d, conf([("127.0.0.1", port, None)],
                            max_connections_per_source=3,
                            source_prefix_ipv4=24))
        refused(self, self.conn("127.0.0.3", port), "127.0.0.3 in /24")
        d.wait_log(REFUSED % (re.escape("127.0.0.1:%d" % port), 3,
                              re.escape("127.0.0.0/24")))
        for c in held + [s, other]:
            served(self, c, "after the regrouping")
        # 0 lifts the limit.
        self.reload(d, conf([("127.0.0.1", port, None)],
                            max_connections_per_source=0,
                            source_prefix_ipv4=24))
        self.served_from(5, "127.0.0.4", port)
        self.stop(d)

    def test_failed_reload_keeps_prefixes_and_limit(self):
        """A reload that fails (a listener cannot be bound) applies neither
        the new prefix nor the new limit, and drops the table it had
        built for them (a leak would fail the sanitizer run's exit)."""
        port = harness.free_port()
        d = self.start(port, max_connections_per_source=3)
        held = self.served_from(2, "127.0.0.1", port)
        held += self.served_from(1, "127.0.0.2", port)
        squatter = socket.socket()
        self.socks.append(squatter)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        busy = squatter.getsockname()[1]
        # Under /24 the three are one source at its limit; with limit 1
        # 127.0.0.1 would be over it.
        self.reload(d, conf([("127.0.0.1", port, None),
                             ("127.0.0.1", busy, None)],
                            max_connections_per_source=1,
                            source_prefix_ipv4=24))
        d.wait_log(re.escape("reload failed, keeping the current "
                             "configuration: cannot listen on 127.0.0.1 "
                             "port %d" % busy))
        self.served_from(1, "127.0.0.3", port)   # not in a /24 source
        self.served_from(1, "127.0.0.1", port)   # 3 allowed, not 1
        refused(self, self.conn("127.0.0.1", port), "127.0.0.1 over 3")
        for c in held:
            served(self, c, "after the failed reload")
        self.stop(d)


if __name__ == "__main__":
    import unittest
    unittest.main()

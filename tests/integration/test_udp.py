"""UDP echo (RFC 862 section 2): datagrams of every size back byte-exact
over IPv4 and IPv6, many sources at once, the global and per-source rate
limits and byte budgets enforced and counted (a source cut to
source_prefix_ipv4 as for TCP), no reply to a source port that could start an echo loop, UDP
listeners added and removed by reload, the STATUS line extended without
changing its TCP part, and a prompt exit on SIGTERM."""
import hashlib
import re
import signal
import socket
import time

import harness
from harness import SLOW, connect, recv_exact

STATUS_UDP = re.compile(r"; udp: (\d+) socket\(s\), (\d+) received, "
                        r"(\d+) echoed, (\d+) dropped(?: \(([^)]*)\))?")


def free_port_both(host="127.0.0.1"):
    """A port free for TCP and for UDP on host right now."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        port = harness.free_port(host)
        with socket.socket(fam, socket.SOCK_DGRAM) as u:
            try:
                u.bind((host, port))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for both TCP and UDP")


def conf(port, udp_hosts=("127.0.0.1",), tcp=True, **keys):
    """A TCP listener on 127.0.0.1:port (unless tcp=False) and a UDP
    socket on port for each of udp_hosts, plus top-level keys."""
    items = []
    if tcp:
        items.append('{ address = "127.0.0.1"; port = %d; }' % port)
    items += ['{ address = "%s"; port = %d; protocol = "udp"; }' % (h, port)
              for h in udp_hosts]
    text = "listen = (\n    %s\n);\n" % ",\n    ".join(items)
    for k, v in keys.items():
        text += "%s = %s;\n" % (k, '"%s"' % v if isinstance(v, str) else v)
    return text


# Source ports echod never answers (udp.c, udp_service_ports). An
# ephemeral port can be one of them, or echod's own port on another
# loopback address; a client given one would wait for nothing.
GUARDED = {1900, 2049, 3283, 3478, 3702, 5060, 5353, 5683, 10001, 11211,
           37810}


def udp_client(host="127.0.0.1", bind=None, timeout=10.0, avoid=()):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(20):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(timeout * SLOW)
        if bind is None:
            return s
        try:
            s.bind(bind)
        except OSError:
            s.close()
            raise
        port = s.getsockname()[1]
        if bind[1] != 0 or (port not in GUARDED and port not in avoid):
            return s
        s.close()
    raise AssertionError("no usable source port in 20 tries")


def bind_first(test, ports, host="127.0.0.1"):
    """A UDP socket bound to the first of ports that is free (closed when
    the test ends), or None."""
    for p in ports:
        try:
            s = udp_client(bind=(host, p))
        except OSError:
            continue
        test.addCleanup(s.close)
        return s
    return None


def udp_round(test, port, data, host="127.0.0.1"):
    """One datagram out, the same bytes back (compared by hash)."""
    with udp_client(host) as s:
        s.connect((host, port))
        s.send(data)
        back = s.recv(70000)
    test.assertEqual(len(back), len(data))
    test.assertEqual(hashlib.sha256(back).hexdigest(),
                     hashlib.sha256(data).hexdigest())


def status_udp(d, pred, timeout=15.0):
    """Wait for a STATUS line whose UDP part satisfies pred(dict); returns
    that dict (sockets, received, echoed, dropped, reasons)."""
    deadline = time.monotonic() + timeout * SLOW
    seen = []
    while True:
        lines = d.next_notify(deadline, "a STATUS line; seen %r" % seen[-3:])
        for line in lines:
            if not line.startswith("STATUS="):
                continue
            seen.append(line)
            m = STATUS_UDP.search(line)
            if not m:
                continue
            reasons = {}
            for part in (m.group(5) or "").split(", "):
                if part:
                    n, why = part.split(" ", 1)
                    reasons[why] = int(n)
            st = {"line": line, "sockets": int(m.group(1)),
                  "received": int(m.group(2)), "echoed": int(m.group(3)),
                  "dropped": int(m.group(4)), "reasons": reasons}
            if pred(st):
                return st


def kernel_drops(port):
    """Datagrams the kernel dropped for the UDP socket(s) on port (a full
    receive queue), from /proc/net/udp{,6}."""
    total = 0
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port:
                        total += int(fields[-1])
        except FileNotFoundError:
            pass
    return total


def drain(sock):
    """Every datagram waiting on sock now."""
    got = []
    sock.setblocking(False)
    while True:
        try:
            got.append(sock.recv(70000))
        except BlockingIOError:
            return got


class UdpEcho(harness.TestCase):
    deadline = 60

    def test_sizes_byte_exact_v4_v6(self):
        hosts = ["127.0.0.1"] + (["::1"] if harness.ipv6_loopback() else [])
        port = free_port_both()
        d = self.daemon(conf=conf(port, hosts), port=port)
        d.wait_log(re.escape("listening on 127.0.0.1:%d/udp" % port))
        rng = self.rng()
        sizes = [0, 1, 1472, 9000, 65507]
        for host in hosts:
            for n in sizes:
                udp_round(self, port, rng.randbytes(n), host)
        # Too big for IPv4 UDP: the kernel refuses it at the sender.
        with udp_client() as s:
            with self.assertRaises(OSError):
                s.sendto(b"x" * 65508, ("127.0.0.1", port))
        n = len(sizes) * len(hosts)
        st = status_udp(d, lambda st: st["received"] == n)
        self.assertEqual((st["sockets"], st["echoed"], st["dropped"]),
                         (len(hosts), n, 0), st["line"])
        # The TCP part keeps its form, and TCP on the same port works.
        self.assertRegex(st["line"], r"^STATUS=1 listener\(s\), 0 "
                         r"connection\(s\) open, 0 accepted, 0 refused "
                         r"\(0 per source\); udp: ")
        with connect(port) as c:
            c.sendall(b"tcp too")
            self.assertEqual(recv_exact(c, 7), b"tcp too")
        self.assertEqual(d.stop(), 0)

    def test_many_sources(self):
        """8 sources in lock-step rounds (so no receive queue overflows):
        every source gets its own datagrams back, in order."""
        port = free_port_both()
        d = self.daemon(conf=conf(port, udp_per_source_rate=1000000,
                                  udp_per_source_burst=1000000,
                                  udp_per_source_rate_bytes=0,
                                  udp_rate_limit=1000000,
                                  udp_rate_burst=1000000,
                                  udp_rate_limit_bytes=0), port=port)
        rng = self.rng()
        socks = [udp_client(bind=("127.0.0.%d" % (10 + i), 0), avoid=(port,))
                 for i in range(8)]
        for s in socks:
            self.addCleanup(s.close)
        sent = [hashlib.sha256() for _ in socks]
        back = [hashlib.sha256() for _ in socks]
        rounds = 40
        for r in range(rounds):
            for i, s in enumerate(socks):
                data = bytes([i, r]) + rng.randbytes(
                    harness.log_size(rng, 1, 8000))
                sent[i].update(data)
                s.sendto(data, ("127.0.0.1", port))
            for i, s in enumerate(socks):
                data, peer = s.recvfrom(70000)
                self.assertEqual(peer, ("127.0.0.1", port))
                self.assertEqual(data[:2], bytes([i, r]), "source %d" % i)
                back[i].update(data)
        for i in range(len(socks)):
            self.assertEqual(back[i].hexdigest(), sent[i].hexdigest(),
                             "source %d" % i)
        n = rounds * len(socks)
        st = status_udp(d, lambda st: st["received"] == n)
        self.assertEqual((st["echoed"], st["dropped"]), (n, 0), st["line"])
        self.assertEqual(d.stop(), 0)

    def burst(self, d, port, sources, each, size=12, pace=0.0):
        """Each source sends `each` datagrams of `size` bytes (at least 12)
        as fast as it can, or a round every `pace` seconds (so that large
        ones do not overflow echod's receive queue before it reads them).
        Returns (seconds from the first send until echod's counts are
        final, echoes per source, final STATUS)."""
        socks = [udp_client(bind=("127.0.0.%d" % (20 + i), 0))
                 for i in range(sources)]
        for s in socks:
            self.addCleanup(s.close)
            # Room for every reply echod may send back (the kernel caps
            # it at net.core.rmem_max).
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        pad = b"." * (size - 12)
        t0 = time.monotonic()
        for k in range(each):
            for s in socks:
                s.sendto(b"burst %06d" % k + pad, ("127.0.0.1", port))
            if pace:
                time.sleep(pace)
        total = sources * each
        # Final once every datagram was either read by echod or dropped
        # by the kernel for lack of room in echod's receive queue.
        st = status_udp(d, lambda st: st["received"] + kernel_drops(port)
                        == total)
        elapsed = time.monotonic() - t0
        # The replies went out in the turn that read their requests.
        got = [len(drain(s)) for s in socks]
        self.assertEqual(sum(got), st["echoed"], st["line"])
        self.assertEqual(st["received"], st["echoed"] + st["dropped"])
        print("\n%s: %d sent, %d received, %d echoed in %.2fs"
              % (self.id(), total, st["received"], st["echoed"], elapsed))
        return elapsed, got, st

    def test_global_rate_limit(self):
        rate, burst = 20, 10
        port = free_port_both()
        d = self.daemon(conf=conf(port, udp_rate_limit=rate,
                                  udp_rate_burst=burst,
                                  udp_per_source_rate=1000000,
                                  udp_per_source_burst=1000000), port=port)
        elapsed, got, st = self.burst(d, port, sources=3, each=150)
        # At most the burst plus the rate for the time it took (one token
        # of slack for the clock's millisecond steps); at least the burst.
        # More than that reached echod (a receive queue holds a few hundred
        # small datagrams even if echod read none during the burst), so
        # the limit is what held the replies back.
        bound = burst + rate * elapsed + 1
        self.assertLessEqual(sum(got), bound, got)
        self.assertGreaterEqual(sum(got), burst, got)
        self.assertGreater(st["received"], bound, st["line"])
        self.assertEqual(st["reasons"], {"rate": st["dropped"]}, st["line"])
        d.wait_log(re.escape("127.0.0.1:%d/udp: replies over udp_rate_limit "
                             "(20/s), dropping" % port))
        # Later, with the bucket refilled, a datagram is answered again.
        harness.wait_for(lambda: self.answered(port), 10, "a refill")
        self.assertEqual(d.stop(), 0)

    def answered(self, port):
        with udp_client(timeout=0.2) as s:
            s.sendto(b"again?", ("127.0.0.1", port))
            try:
                return s.recv(100) == b"again?"
            except socket.timeout:
                return False

    def test_per_source_rate_limit(self):
        rate, burst = 5, 5
        port = free_port_both()
        d = self.daemon(conf=conf(port, udp_rate_limit=1000000,
                                  udp_rate_burst=1000000,
                                  udp_per_source_rate=rate,
                                  udp_per_source_burst=burst), port=port)
        elapsed, got, st = self.burst(d, port, sources=4, each=60)
        bound = burst + rate * elapsed + 1
        for i, n in enumerate(got):
            self.assertLessEqual(n, bound, got)
            self.assertGreaterEqual(n, burst, "source %d: %r" % (i, got))
        self.assertGreater(st["received"], len(got) * bound, st["line"])
        self.assertEqual(st["reasons"], {"per-source": st["dropped"]},
                         st["line"])
        d.wait_log(r"127\.0\.0\.1:%d/udp: replies to 127\.0\.0\.2\d:\d+ over "
                   r"udp_per_source_rate \(5/s\), dropping" % port)
        # Another source is not held back by their excess.
        udp_round(self, port, b"a fresh source")
        self.assertEqual(d.stop(), 0)

    # Byte budgets: datagrams of BYTES_SIZE at BYTES_RATE bytes a second,
    # below the least burst, so the burst is UDP_BYTE_BURST_MIN.
    BYTES_SIZE, BYTES_RATE, BYTES_BURST = 4000, 20000, 65536

    def bytes_bound(self, elapsed):
        """The most bytes a byte budget lets out in `elapsed` seconds: the
        burst plus the rate for the time (one datagram of slack for the
        clock's millisecond steps)."""
        return self.BYTES_BURST + self.BYTES_RATE * elapsed + self.BYTES_SIZE

    def test_per_source_byte_budget(self):
        """A flood of large datagrams from one source, within the reply
        limits: the bytes echoed to it stay within burst + rate x time,
        counted as per-source-bytes, and another source still gets even
        a datagram of 60000 bytes back."""
        size = self.BYTES_SIZE
        port = free_port_both()
        d = self.daemon(conf=conf(port, udp_rate_limit=1000000,
                                  udp_rate_burst=1000000,
                                  udp_rate_limit_bytes=0,
                                  udp_per_source_rate=1000000,
                                  udp_per_source_burst=1000000,
                                  udp_per_source_rate_bytes=self.BYTES_RATE),
                        port=port)
        elapsed, got, st = self.burst(d, port, sources=1, each=300,
                                      size=size, pace=0.001)
        bound = self.bytes_bound(elapsed)
        self.assertLessEqual(got[0] * size, bound, got)
        self.assertGreaterEqual(got[0], self.BYTES_BURST // size, got)
        self.assertGreater(st["received"] * size, bound, st["line"])
        self.assertEqual(st["reasons"], {"per-source-bytes": st["dropped"]},
                         st["line"])
        d.wait_log(r"127\.0\.0\.1:%d/udp: replies to 127\.0\.0\.20:\d+ over "
                   r"udp_per_source_rate_bytes \(20000 bytes/s\), dropping"
                   % port)
        # Another source has a byte bucket of its own.
        udp_round(self, port, self.rng().randbytes(60000))
        self.assertEqual(d.stop(), 0)

    def test_global_byte_budget(self):
        """Large datagrams from three sources, within every per-source
        limit: the bytes echoed to all of them together stay within burst
        + rate x time, counted as rate-bytes."""
        size = self.BYTES_SIZE
        port = free_port_both()
        d = self.daemon(conf=conf(port, udp_rate_limit=1000000,
                                  udp_rate_burst=1000000,
                                  udp_rate_limit_bytes=self.BYTES_RATE,
                                  udp_per_source_rate=1000000,
                                  udp_per_source_burst=1000000,
                                  udp_per_source_rate_bytes=0),
                        port=port)
        elapsed, got, st = self.burst(d, port, sources=3, each=100,
                                      size=size, pace=0.001)
        bound = self.bytes_bound(elapsed)
        self.assertLessEqual(sum(got) * size, bound, got)
        self.assertGreaterEqual(sum(got), self.BYTES_BURST // size, got)
        self.assertGreater(st["received"] * size, bound, st["line"])
        self.assertEqual(st["reasons"], {"rate-bytes": st["dropped"]},
                         st["line"])
        d.wait_log(re.escape("127.0.0.1:%d/udp: replies over "
                             "udp_rate_limit_bytes (20000 bytes/s), dropping"
                             % port))
        # Later, with the bucket refilled, a datagram is answered again.
        harness.wait_for(lambda: self.answered(port), 10, "a refill")
        self.assertEqual(d.stop(), 0)

    def test_per_source_prefix_as_for_tcp(self):
        """source_prefix_ipv4 makes one UDP source of a /24, as it does for
        TCP: 127.0.0.3 finds the bucket 127.0.0.2 emptied, not a fresh
        one of its own."""
        rate, burst = 1, 10
        port = free_port_both()
        d = self.daemon(conf=conf(port, udp_rate_limit=1000000,
                                  udp_rate_burst=1000000,
                                  udp_per_source_rate=rate,
                                  udp_per_source_burst=burst,
                                  source_prefix_ipv4=24), port=port)
        a = udp_client(bind=("127.0.0.2", 0))
        self.addCleanup(a.close)
        b = udp_client(bind=("127.0.0.3", 0))
        self.addCleanup(b.close)
        t0 = time.monotonic()
        for i in range(burst):
            a.sendto(b"a %d" % i, ("127.0.0.1", port))
            self.assertEqual(a.recv(100), b"a %d" % i)
        for i in range(burst):
            b.sendto(b"b %d" % i, ("127.0.0.1", port))
        st = status_udp(d, lambda st: st["received"] == 2 * burst)
        elapsed = time.monotonic() - t0
        got = len(drain(b))
        # Only what the shared bucket refilled since 127.0.0.2 emptied
        # it; a bucket of its own would have answered all ten.
        self.assertLessEqual(got, rate * elapsed + 1, st["line"])
        self.assertLess(got, burst, st["line"])
        self.assertEqual(st["reasons"], {"per-source": burst - got},
                         st["line"])
        self.assertEqual(d.stop(), 0)

    def test_loop_ports_get_no_reply(self):
        port = free_port_both()
        d = self.daemon(conf=conf(port), port=port)
        # A low port (binding one needs root), a well-known service port
        # above 1023, and echod's own port number from another address.
        low = bind_first(self, (7, 19, 13, 37, 17))
        high = bind_first(self, (5353, 11211, 1900, 3702, 2049))
        own = bind_first(self, (port,), "127.0.0.2")
        self.assertIsNotNone(own)
        quiet = [s for s in (low, high, own) if s is not None]
        for s in quiet:
            s.sendto(b"loop?", ("127.0.0.1", port))
        # The receive queue is FIFO: once this is answered, echod has
        # judged the others.
        udp_round(self, port, b"ordinary port")
        for s in quiet:
            self.assertEqual(drain(s), [], s.getsockname())
        st = status_udp(d, lambda st: st["received"] == len(quiet) + 1)
        self.assertEqual(st["reasons"], {"loop": len(quiet)}, st["line"])
        self.assertEqual(st["echoed"], 1)
        d.wait_log(r"dropped a datagram from 127\.0\.0\.2:%d: no replies to "
                   r"source port %d \(echo loop guard\)" % (port, port))
        if low is not None:
            d.wait_log(r"no replies to source port %d "
                       % low.getsockname()[1])
        self.assertEqual(d.stop(), 0)

    def test_sigterm_exits_promptly(self):
        port = free_port_both()
        d = self.daemon(conf=conf(port), port=port)
        for n in (1, 100, 1000):
            udp_round(self, port, b"u" * n)
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(timeout=10 * SLOW), 0, d.log())
        print("\n%s: exit after SIGTERM in %.3fs"
              % (self.id(), time.monotonic() - t0))
        d.wait_log(r"exiting: 0 connection\(s\) served, 0 bytes echoed; "
                   r"udp: 3 datagram\(s\) received, 3 echoed \(1101 bytes\), "
                   r"0 dropped")


class UdpConfig(harness.TestCase):
    deadline = 60

    def check(self, text):
        d = harness.Daemon(conf=text)
        self.daemons.append(d)
        return self.run_echod("-t", "-c", d.conf_path), d.conf_path

    def test_protocol_values(self):
        r, path = self.check('listen = ( { address = "127.0.0.1"; port = 7;'
                             ' protocol = "sctp"; } );\n')
        self.assertEqual(r.returncode, 78)
        self.assertIn("%s:1: listen[0].protocol: expected one of tcp, udp"
                      % path, r.stderr)
        r, path = self.check('listen = ( { address = "127.0.0.1"; port = 7;'
                             ' protocol = 17; } );\n')
        self.assertEqual(r.returncode, 78)
        self.assertIn("expected one of tcp, udp", r.stderr)
        # TCP and UDP on one port: two entries, no clash.
        r, _ = self.check(conf(7))
        self.assertEqual(r.returncode, 0, r.stderr)
        # The same UDP entry twice is a duplicate.
        r, path = self.check(conf(7, ("127.0.0.1", "127.0.0.1")))
        self.assertEqual(r.returncode, 78)
        self.assertIn("listen[2]: duplicate of listen[1]", r.stderr)
        r, path = self.check(conf(7) + "udp_rate_limit = 0;\n")
        self.assertEqual(r.returncode, 78)
        self.assertIn("udp_rate_limit: expected an integer in 1..1000000",
                      r.stderr)

    def test_udp_only(self):
        port = free_port_both()
        d = self.daemon(conf=conf(port, tcp=False), port=port)
        ready = [x for x in d.messages[-1] if x.startswith("STATUS=")]
        self.assertEqual(len(ready), 1, d.messages[-1])
        self.assertRegex(ready[0], r"^STATUS=0 listener\(s\), .*; udp: 1 "
                         r"socket\(s\), 0 received, 0 echoed, 0 dropped$")
        udp_round(self, port, b"udp only")
        with self.assertRaises(ConnectionRefusedError):
            connect(port)
        self.assertEqual(d.stop(), 0)


class UdpReload(harness.TestCase):
    deadline = 60

    def refused(self, port):
        """A connected UDP socket learns of the port unreachable."""
        with udp_client() as s:
            s.connect(("127.0.0.1", port))
            s.send(b"anyone?")
            try:
                s.recv(100)
            except ConnectionRefusedError:
                return True
        return False

    def reload(self, d, text):
        """Write text, SIGHUP, wait for READY=1; returns its STATUS."""
        d.write_conf(text)
        d.signal(signal.SIGHUP)
        lines = d.wait_notify("READY=1")
        status = [x for x in lines if x.startswith("STATUS=")]
        self.assertEqual(len(status), 1, lines)
        return status[0]

    def test_reload_adds_and_removes_udp(self):
        port = free_port_both()
        d = self.daemon(conf=conf(port, udp_hosts=()), port=port)
        self.assertTrue(self.refused(port))
        held = connect(port)   # a TCP client that must survive it all
        self.addCleanup(held.close)

        self.assertIn("; udp: 1 socket(s)", self.reload(d, conf(port)))
        d.wait_log(re.escape("listening on 127.0.0.1:%d/udp" % port))
        udp_round(self, port, b"added")

        # All or nothing: a UDP port someone else holds fails the reload,
        # and the new TCP listener bound before it is closed again.
        busy = bind_first(self, (0,)).getsockname()[1]
        fresh = harness.free_port()
        status = self.reload(d, conf(port).replace(
            "\n);", ',\n    { address = "127.0.0.1"; port = %d; },\n'
            '    { address = "127.0.0.1"; port = %d; protocol = "udp"; }\n);'
            % (fresh, busy)))
        self.assertIn("last reload failed", status)
        d.wait_log(re.escape("cannot listen on 127.0.0.1 port %d (udp): "
                             % busy))
        with self.assertRaises(ConnectionRefusedError):
            connect(fresh)
        udp_round(self, port, b"kept")

        status = self.reload(d, conf(port, udp_hosts=()))
        self.assertIn("; udp: 0 socket(s)", status)
        d.wait_log(re.escape("no longer listening on 127.0.0.1:%d/udp"
                             % port))
        self.assertTrue(self.refused(port))
        held.sendall(b"tcp survived")
        self.assertEqual(recv_exact(held, 12), b"tcp survived")
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()

"""Discard (RFC 863), `service = "discard"` on a listen entry: 64 MiB go
into a TCP connection in bounded time with nothing coming back, the
connection stays open, echod's memory does not grow with it, and the
listener's received bytes are exact (sent stays 0); the peer's FIN closes
it as eof; an idle one is closed at idle_timeout and a busy one is not;
the PROXY header, allow/deny and the per-source limit apply as for echo;
UDP datagrams are counted as received and discarded, none is answered
and none spends a rate-limit token; discard and echo on two ports of one
echod both work, and /metrics names the service. A reload that turns an
echo port into discard serves new connections as discard and leaves the
open ones echoing. Counters come from the control socket (`stats json`),
and every wait is on a fact (a counter, an EOF), never a sleep."""
import json
import signal
import socket
import time

import harness
from harness import KiB, MiB, SLOW, connect, recv_exact, tcp_from, wait_for
from test_control import body
from test_metrics import get, parse


def stats(d):
    return json.loads(body(d.control("stats json")))


def listener(d, port, proto="tcp"):
    """The stats of echod's listener 127.0.0.1:port of proto."""
    name = "127.0.0.1:%d" % port
    for l in stats(d)["listeners"]:
        if l["listener"] == name and l["protocol"] == proto:
            return l
    raise AssertionError("no %s listener %s" % (proto, name))


def nothing_back(s):
    """True if nothing waits to be read on s (and no EOF either): a read
    that does not wait gets EAGAIN."""
    timeout = s.gettimeout()
    s.setblocking(False)
    try:
        s.recv(1)
    except BlockingIOError:
        return True
    finally:
        s.settimeout(timeout)
    return False


def entry(port, extra="", service="discard", proto="tcp"):
    return (' { address = "127.0.0.1"; port = %d; protocol = "%s"; '
            'service = "%s"; %s }' % (port, proto, service, extra))


def conf(*entries, top=""):
    return "listen = (\n%s\n);\n%s" % (",\n".join(entries), top)


class Discard(harness.TestCase):
    deadline = 120

    def start(self, *entries, top=""):
        port = harness.free_port()
        return self.daemon(conf=conf(entry(port), *entries, top=top),
                           port=port)

    def wait_received(self, d, port, n, proto="tcp"):
        """Wait until the listener counted n bytes received, then check it
        is exactly n and that it sent nothing."""
        wait_for(lambda: listener(d, port, proto)["received_bytes_total"]
                 >= n, 20, "%d bytes counted on port %d" % (n, port))
        l = listener(d, port, proto)
        self.assertEqual(l["received_bytes_total"], n)
        self.assertEqual(l["sent_bytes_total"], 0)
        self.assertEqual(l["service"], "discard")
        return l

    def test_64mib_one_way(self):
        d = self.start()
        chunk = bytes(range(256)) * (MiB // 256)
        total, budget = 64 * MiB, 30.0 * SLOW
        with connect(d.port, timeout=budget) as s:
            s.sendall(chunk[:1])  # the loop, its scratch and the conn exist
            self.wait_received(d, d.port, 1)
            base = peak = d.rss_kb()
            t0 = time.monotonic()
            for _ in range(total // MiB):
                s.sendall(chunk)
                peak = max(peak, d.rss_kb())
                self.assertTrue(nothing_back(s), "discard sent bytes back")
            took = time.monotonic() - t0
            print("\n%s: 64 MiB in %.2fs, RSS %d -> peak %d kB"
                  % (self.id(), took, base, peak))
            self.assertLess(took, budget)
            self.wait_received(d, d.port, total + 1)
            peak = max(peak, d.rss_kb())  # all of it read by now
            # Still open: more goes in, and is counted too.
            s.sendall(chunk)
            l = self.wait_received(d, d.port, total + 1 + MiB)
            self.assertTrue(nothing_back(s))
            self.assertLess(peak - base, 4 * 1024,
                            "echod grew with what it discarded")
            self.assertEqual(l["tcp_connections_open"], 1)
            self.assertEqual(l["tcp_connections_paused"], 0)
            self.assertEqual(l["tcp_queued_bytes"], 0)
            # The peer's FIN: nothing to flush, echod closes at once.
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(s.recv(1), b"")
        wait_for(lambda: listener(d, d.port)["tcp_connections_closed_total"]
                 ["eof"] == 1, 10, "the close counted as eof")
        total_stats = stats(d)["total"]
        self.assertEqual(total_stats["received_bytes_total"],
                         total + 1 + MiB)
        self.assertEqual(total_stats["sent_bytes_total"], 0)
        self.assertEqual(d.stop(), 0)

    def test_idle_timeout(self):
        d = self.start(top="idle_timeout = 1;\n")
        with connect(d.port) as quiet, connect(d.port) as busy:
            quiet.sendall(b"just once")
            # The busy one sends more often than the timeout: reads are
            # progress. The quiet one is closed after 1 s of silence.
            quiet.settimeout(0.2)
            deadline = time.monotonic() + 10 * SLOW
            closed_at = None
            t0 = time.monotonic()
            while closed_at is None:
                self.assertLess(time.monotonic(), deadline,
                                "a silent discard connection stayed open")
                busy.sendall(b"b")
                try:
                    if quiet.recv(1) == b"":
                        closed_at = time.monotonic() - t0
                except socket.timeout:
                    pass
            self.assertGreaterEqual(closed_at, 0.9)
            busy.sendall(b"still here")
            self.assertTrue(nothing_back(busy))
            l = listener(d, d.port)
            self.assertEqual(l["tcp_connections_closed_total"]
                             ["idle-timeout"], 1)
            self.assertEqual(l["tcp_connections_open"], 1)

    def test_proxy_header_and_admission(self):
        pport = harness.free_port()
        d = self.start(
            entry(pport, 'proxy_protocol = true; '
                         'proxy_from = [ "127.0.0.1" ];'),
            top='max_connections_per_source = 1;\n'
                'deny = [ "127.0.0.9" ];\n')
        # Behind a PROXY header: the header is not data, the rest is.
        with connect(pport) as s:
            s.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 7\r\n" +
                      b"x" * 1000)
            self.wait_received(d, pport, 1000)
            self.assertTrue(nothing_back(s))
        # Per source and allow/deny, at accept, as for echo.
        with tcp_from("127.0.0.5", d.port) as held:
            held.sendall(b"y")
            self.wait_received(d, d.port, 1)
            for src in ("127.0.0.5", "127.0.0.9"):
                with tcp_from(src, d.port) as s:
                    s.settimeout(10 * SLOW)
                    try:
                        self.assertEqual(s.recv(1), b"")
                    except ConnectionResetError:
                        pass
        # echod closes before it counts: wait for the count.
        wait_for(lambda: listener(d, d.port)["tcp_connections_refused_total"]
                 ["acl"] == 1, 10, "the acl refusal counted")
        refused = listener(d, d.port)["tcp_connections_refused_total"]
        self.assertEqual((refused["per-source"], refused["acl"]), (1, 1))

    def test_udp(self):
        d_port, eport = harness.free_port(), harness.free_port()
        d = self.start(
            entry(d_port, proto="udp"),
            entry(eport, service="echo", proto="udp"),
            top="udp_rate_limit = 1;\nudp_rate_burst = 1;\n"
                "udp_per_source_rate = 1;\nudp_per_source_burst = 1;\n")
        n, size = 50, 100
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            for i in range(n):
                u.sendto(bytes([i]) * size, ("127.0.0.1", d_port))
            wait_for(lambda: listener(d, d_port, "udp")
                     ["udp_datagrams_received_total"] >= n, 20,
                     "%d datagrams counted" % n)
            # Every one was taken and judged: a reply would be here now.
            self.assertTrue(nothing_back(u), "a discarded datagram was "
                                             "answered")
            # No token was spent: the one in each bucket answers this.
            u.settimeout(2 * SLOW)
            u.sendto(b"ping", ("127.0.0.1", eport))
            self.assertEqual(u.recvfrom(64)[0], b"ping")
        l = listener(d, d_port, "udp")
        self.assertEqual(l["service"], "discard")
        self.assertEqual(l["udp_datagrams_received_total"], n)
        self.assertEqual(l["udp_datagrams_discarded_total"], n)
        self.assertEqual(l["udp_datagrams_echoed_total"], 0)
        self.assertEqual(sum(l["udp_datagrams_dropped_total"].values()), 0)
        self.assertEqual(l["received_bytes_total"], n * size)
        self.assertEqual(l["sent_bytes_total"], 0)
        e = listener(d, eport, "udp")
        self.assertEqual((e["udp_datagrams_echoed_total"],
                          e["udp_datagrams_discarded_total"]), (1, 0))
        status = json.loads(body(d.control("status json")))["status"]
        self.assertRegex(status, r"; udp: 2 socket\(s\), %d received, 1 "
                                 r"echoed, 0 dropped, %d discarded$"
                         % (n + 1, n))

    def test_discard_and_echo_side_by_side(self):
        eport, mport = harness.free_port(), harness.free_port()
        d = self.start(entry(eport, service="echo"),
                       entry(mport, service="metrics"))
        with connect(d.port) as sink, connect(eport) as echo:
            # Both at once: the echo is byte-exact while the sink takes
            # the same amount and answers nothing.
            clients = [harness.EchoClient(echo, harness.Payload(MiB, 2),
                                          self.rng())]
            sink.sendall(bytes(range(256)) * (MiB // 256))
            harness.run_clients(clients, 30 * SLOW)
            clients[0].check(self)
            self.wait_received(d, d.port, MiB)
            self.assertTrue(nothing_back(sink))
        status, _, text = get(mport)
        self.assertEqual(status, 200)
        m = parse(text)

        def lab(port, service):
            return frozenset({"listener": "127.0.0.1:%d" % port,
                              "protocol": "tcp",
                              "service": service}.items())
        self.assertEqual(m[("echod_received_bytes_total",
                            lab(d.port, "discard"))], MiB)
        self.assertEqual(m[("echod_sent_bytes_total",
                            lab(d.port, "discard"))], 0)
        self.assertEqual(m[("echod_received_bytes_total",
                            lab(eport, "echo"))], MiB)
        self.assertEqual(m[("echod_sent_bytes_total", lab(eport, "echo"))],
                         MiB)
        # STATUS counts the discard listener with the echo one.
        status = json.loads(body(d.control("status json")))["status"]
        self.assertTrue(status.startswith("2 listener(s), "), status)

    def test_reload_echo_to_discard(self):
        port = harness.free_port()
        d = self.daemon(conf=conf(entry(port, service="echo")), port=port)
        with connect(port) as old:
            old.sendall(b"before")
            self.assertEqual(recv_exact(old, 6), b"before")
            d.write_conf(conf(entry(port)))
            d.signal(signal.SIGHUP)
            d.wait_notify("RELOADING=1")
            d.wait_notify("READY=1")
            self.assertEqual(listener(d, port)["service"], "discard")
            with connect(port) as new:
                new.sendall(b"z" * KiB)
                l = self.wait_received(d, port, KiB)
                self.assertTrue(nothing_back(new))
            # A new entry (the service is part of its identity): its
            # counters start afresh, without the echo connection.
            self.assertEqual(l["tcp_connections_accepted_total"], 1)
            # The connection from before the reload still echoes.
            old.sendall(b"after")
            self.assertEqual(recv_exact(old, 5), b"after")

    def test_shutdown_closes_discard_connection(self):
        d = self.start(top="shutdown_timeout = 60;\n")
        with connect(d.port) as s:
            s.sendall(b"w" * 100)
            self.wait_received(d, d.port, 100)
            d.signal(signal.SIGTERM)
            # echod sends FIN at once (not at shutdown_timeout); the
            # client closes, and echod exits 0.
            s.settimeout(10 * SLOW)
            self.assertEqual(s.recv(1), b"")
        self.assertEqual(d.proc.wait(timeout=20 * SLOW), 0, d.log())

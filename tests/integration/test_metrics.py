"""Prometheus metrics: a `service = "metrics"` listen entry serves
GET /metrics from the main thread. The counters are exact per listener
at the harness's worker count (N connections, B bytes, a per-source and
an ACL refusal, UDP drops move exactly what they should); promtool finds
the text clean; a real Prometheus scrapes it and returns the exact
accepted count; other paths and methods get 404 and 405; the entry's
own allow/deny apply; a stalled scraper is dropped after its timeout
and never slows an echo."""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import json

import harness
from harness import recv_exact, tcp_from, udp_from

SCR_TIMEOUT = 5.0  # SCR_TIMEOUT_MS in src/scrape.h
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset of (label, value)): float}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, "bad sample line: %r" % line
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def get(mport, path="/metrics", method="GET", src="127.0.0.1"):
    c = http.client.HTTPConnection("127.0.0.1", mport,
                                   timeout=10 * harness.SLOW,
                                   source_address=(src, 0))
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        c.close()


def refused(s):
    """True if echod closed s at once, unanswered."""
    try:
        s.sendall(b"x")
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


class Metrics(harness.TestCase):
    deadline = 90

    def start(self, top="", mextra=""):
        port, mport = harness.free_port(), harness.free_port()
        text = ('listen = (\n'
                ' { address = "127.0.0.1"; port = %d; },\n'
                ' { address = "127.0.0.1"; port = %d; protocol = "udp"; },\n'
                ' { address = "127.0.0.1"; port = %d; service = "metrics";'
                ' %s }\n);\n%s' % (port, port, mport, mextra, top))
        d = self.daemon(conf=text, port=port)
        return d, port, mport

    def sample(self, mport):
        status, ctype, text = get(mport)
        self.assertEqual(status, 200)
        self.assertIn("version=0.0.4", ctype)
        return parse(text)

    def lab(self, port, proto="tcp", service="echo", **more):
        d = {"listener": "127.0.0.1:%d" % port, "protocol": proto,
             "service": service}
        d.update(more)
        return frozenset(d.items())

    def test_counters_exact(self):
        d, port, mport = self.start(
            top='max_connections_per_source = 2;\n'
                'deny = [ "127.0.0.9" ];\n'
                'udp_per_source_rate = 1000;\nudp_per_source_burst = 1000;\n')
        n, total = 7, 0
        rng = self.rng()
        for i in range(n):
            data = rng.randbytes(rng.randrange(1, 200000))
            with tcp_from("127.0.0.%d" % (2 + i % 3), port) as s:
                s.sendall(data)
                self.assertEqual(recv_exact(s, len(data)), data)
            total += len(data)
        # Two held from one source, the third refused (per source).
        held = [tcp_from("127.0.0.5", port) for _ in range(2)]
        for s in held:
            s.sendall(b"ab")
            self.assertEqual(recv_exact(s, 2), b"ab")
        total += 4
        with tcp_from("127.0.0.5", port) as s:
            self.assertTrue(refused(s))
        with tcp_from("127.0.0.9", port) as s:  # denied
            self.assertTrue(refused(s))
        udp_bytes = 0
        for k in range(3):
            self.assertEqual(udp_from("127.0.0.3", port, b"u" * (k + 1)),
                             b"u" * (k + 1))
            udp_bytes += k + 1
        for k in range(2):
            self.assertIsNone(udp_from("127.0.0.9", port, b"zz"))
        tcp, udp = self.lab(port), self.lab(port, "udp")
        want = {
            ("echod_tcp_connections_accepted_total", tcp): n + 2,
            ("echod_tcp_connections_open", tcp): 2,
            ("echod_tcp_connections_closed_total",
             tcp | {("reason", "eof")}): n,
            ("echod_tcp_connections_refused_total",
             tcp | {("reason", "per-source")}): 1,
            ("echod_tcp_connections_refused_total",
             tcp | {("reason", "acl")}): 1,
            ("echod_tcp_connections_refused_total",
             tcp | {("reason", "max-connections")}): 0,
            ("echod_received_bytes_total", tcp): total,
            ("echod_sent_bytes_total", tcp): total,
            ("echod_tcp_queued_bytes", tcp): 0,
            ("echod_tcp_connections_paused", tcp): 0,
            ("echod_udp_datagrams_received_total", udp): 5,
            ("echod_udp_datagrams_echoed_total", udp): 3,
            ("echod_udp_datagrams_dropped_total",
             udp | {("reason", "acl")}): 2,
            ("echod_received_bytes_total", udp): udp_bytes + 4,
            ("echod_sent_bytes_total", udp): udp_bytes,
            ("echod_workers", frozenset()): d.workers(),
            ("echod_reloads_total", frozenset({("result", "ok")})): 0,
        }
        last = {}

        def settled():
            nonlocal last
            last = self.sample(mport)
            return all(last.get(k) == v for k, v in want.items())
        try:
            harness.wait_for(settled, 10, "exact counters")
        except AssertionError:
            self.fail("\n".join("%s %s: want %s got %s" % (k[0], sorted(k[1]),
                                                             v, last.get(k))
                                for k, v in want.items()
                                if last.get(k) != v))
        # Exact, not at least: nothing else moves them while idle.
        again = self.sample(mport)
        for k, v in want.items():
            self.assertEqual(again.get(k), v, k)
        # The histogram counts every echo of these connections once or
        # more (a write-through or a queued chunk), none past +Inf.
        count = again[("echod_echo_delay_seconds_count", frozenset())]
        inf = again[("echod_echo_delay_seconds_bucket",
                     frozenset({("le", "+Inf")}))]
        self.assertEqual(count, inf)
        self.assertGreaterEqual(count, n + 2)
        # STATUS renders the same snapshot; the metrics entry is not an
        # echo listener.
        d.wait_notify_match(r"STATUS=1 listener\(s\), 2 connection\(s\) "
                            r"open, %d accepted, 2 refused \(1 per source\)"
                            % (n + 2))
        for s in held:
            s.close()
        harness.wait_for(lambda: self.sample(mport).get(
            ("echod_tcp_connections_open", tcp)) == 0, 10, "closed")

    def test_promtool_clean(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool not installed (Debian package "
                          "prometheus; tools/deps.sh check)")
        d, port, mport = self.start()
        with tcp_from("127.0.0.2", port) as s:
            s.sendall(b"hello")
            recv_exact(s, 5)
        text = get(mport)[2]
        r = subprocess.run([promtool, "check", "metrics"], input=text,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_prometheus_scrapes(self):
        prom = shutil.which("prometheus")
        if prom is None:
            self.skipTest("prometheus not installed (tools/deps.sh check)")
        d, port, mport = self.start()
        n = 5
        for _ in range(n):
            with tcp_from("127.0.0.2", port) as s:
                s.sendall(b"hi")
                recv_exact(s, 2)
        tmp = tempfile.mkdtemp(prefix="echod-prom")
        self.addCleanup(shutil.rmtree, tmp, True)
        pport = harness.free_port()
        conf = os.path.join(tmp, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global: { scrape_interval: 1s, scrape_timeout: 1s }\n"
                    "scrape_configs:\n"
                    "  - job_name: echod\n"
                    "    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % mport)
        log = open(os.path.join(tmp, "log"), "wb")
        self.addCleanup(log.close)
        p = subprocess.Popen(
            [prom, "--config.file=" + conf,
             "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % pport],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True)

        def stop():
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()
        self.addCleanup(stop)
        q = urllib.parse.quote(
            "sum(echod_tcp_connections_accepted_total{service=\"echo\"})")
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (pport, q)
        got = [None]

        def value():
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    res = json.load(r)["data"]["result"]
            except OSError:
                return False
            if res:
                got[0] = float(res[0]["value"][1])
            return got[0] == n
        t0 = time.monotonic()
        harness.wait_for(value, 20, "Prometheus to report %d accepted "
                         "(last: %s)" % (n, got[0]))
        print("\nPrometheus had the exact count after %.1f s"
              % (time.monotonic() - t0))
        stop()

    def test_paths_methods_and_acl(self):
        d, port, mport = self.start(mextra='allow = [ "127.0.0.1" ];')
        self.assertEqual(get(mport, "/")[0], 404)
        self.assertEqual(get(mport, "/metrics/x")[0], 404)
        self.assertEqual(get(mport, method="POST")[0], 405)
        status, _, body = get(mport, method="HEAD")
        self.assertEqual((status, body), (200, ""))
        # The entry's own allow: another loopback address is refused.
        with tcp_from("127.0.0.2", mport) as s:
            self.assertTrue(refused(s))
        m = self.sample(mport)
        ml = self.lab(mport, service="metrics")
        self.assertEqual(m[("echod_tcp_connections_refused_total",
                            ml | {("reason", "acl")})], 1)
        self.assertGreaterEqual(m[("echod_tcp_connections_accepted_total",
                                   ml)], 5)

    def test_stalled_scraper_dropped(self):
        d, port, mport = self.start()
        self.check_stalled_clients(
            lambda: socket.create_connection(("127.0.0.1", mport)),
            b"GET /metr", 4, SCR_TIMEOUT, port)  # 4: SCR_CLIENTS
        m = self.sample(mport)
        ml = self.lab(mport, service="metrics")
        self.assertEqual(m[("echod_tcp_connections_closed_total",
                            ml | {("reason", "idle-timeout")})], 4)
        self.assertEqual(m[("echod_tcp_connections_refused_total",
                            ml | {("reason", "max-connections")})], 1)

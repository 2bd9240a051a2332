"""echod behind a real HAProxy (Debian's haproxy package) in mode tcp:
`send-proxy` (v1) and `send-proxy-v2` server lines with health checks.
Test clients bind distinct 127.0.0.x source addresses; echod must see
those addresses: a deny of one refuses it, its neighbour is served, and
the health checks (HAProxy's own address, or v2 LOCAL) are served."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest

import harness
from harness import recv_exact

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def conf(front, back, version):
    send = "send-proxy-v2" if version == 2 else "send-proxy"
    return """global
    maxconn 1000
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 2s
frontend fe
    bind 127.0.0.1:%d
    default_backend be
backend be
    server e 127.0.0.1:%d %s check check-send-proxy inter 200ms
""" % (front, back, send)


def connect_from(src, port):
    s = socket.socket()
    s.settimeout(10 * harness.SLOW)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


@unittest.skipUnless(os.path.exists(HAPROXY), "haproxy is not installed")
class BehindHaproxy(harness.TestCase):
    deadline = 90

    def haproxy(self, d, version):
        front = harness.free_port()
        path = os.path.join(d.dir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(conf(front, d.port, version))
        r = subprocess.run([HAPROXY, "-c", "-f", path], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        log = open(os.path.join(d.dir, "haproxy.log"), "wb")
        self.addCleanup(log.close)
        p = subprocess.Popen([HAPROXY, "-f", path, "-db"], stdout=log,
                             stderr=log, stdin=subprocess.DEVNULL,
                             start_new_session=True)

        def stop():
            if p.poll() is None and p.pid > 1:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        self.addCleanup(stop)
        # HAProxy has no readiness signal: poll its port, with a deadline.
        harness.wait_for(lambda: self.listening(front) or p.poll() is not None,
                         10, "haproxy to listen")
        self.assertIsNone(p.poll(), "haproxy exited")
        return front

    @staticmethod
    def listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def run_version(self, version):
        port = harness.free_port()
        d = self.daemon(conf='listen = ( { address = "127.0.0.1"; port = %d; '
                        'proxy_protocol = true; proxy_from = [ "127.0.0.1" ];'
                        ' } );\ndeny = [ "127.0.0.3" ];\n'
                        'log_level = "debug";\n' % port, port=port)
        front = self.haproxy(d, version)
        # The refused client: HAProxy sees its server side closed.
        with connect_from("127.0.0.3", front) as s:
            s.sendall(b"denied")
            try:
                self.assertEqual(s.recv(100), b"")
            except ConnectionResetError:
                pass
        d.wait_log(r"conn \d+ 127\.0\.0\.3:\d+ closed: acl ")
        # Its neighbour is served, and echod names it as itself.
        with connect_from("127.0.0.4", front) as s:
            data = os.urandom(100000)
            s.sendall(data)
            self.assertEqual(recv_exact(s, len(data)), data)
            cport = s.getsockname()[1]
        d.wait_log(r"conn \d+ 127\.0\.0\.4:%d closed: \S+ in=100000 "
                   r"out=100000" % cport)
        # Health checks came too and were taken as good headers (v1
        # declares HAProxy's own address, v2 sends LOCAL), not closed as
        # bad ones. A check hangs up at once, often with a reset, and may
        # be gone before echod can even ask for its peer's name ("?").
        harness.wait_for(lambda: re.search(
            r"conn \d+ (?:127\.0\.0\.1:\d+|\?) closed: (?:eof|reset) ",
            d.log()), 10, "a health check")
        self.assertNotIn("closed: proxy ", d.log())
        self.assertEqual(d.stop(), 0)

    def test_send_proxy_v1(self):
        self.run_version(1)

    def test_send_proxy_v2(self):
        self.run_version(2)

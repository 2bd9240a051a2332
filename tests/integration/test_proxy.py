"""The PROXY protocol without a proxy: headers written by hand (v1 and
v2) on a listener with proxy_protocol = true. Nothing is echoed before a
whole header; the header is never echoed and what follows it is, byte
for byte; the declared client is the source for allow/deny and the
per-source limit; bad, oversized, late or untrusted headers close the
connection with reason "proxy" (or "proxy-untrusted" at accept)."""
import re
import socket
import struct

import harness
from harness import connect, recv_exact, recv_until_eof

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src, dst, sport, dport, cmd=1, tlvs=b"", crc=None):
    """A v2 header; crc: None (no CRC TLV), "good" or "bad"."""
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + \
        struct.pack("!HH", sport, dport)
    body = addrs + tlvs
    if crc is not None:
        body += b"\x03\x00\x04" + b"\x00" * 4
    head = SIG + bytes([0x20 | cmd, 0x11]) + struct.pack("!H", len(body))
    hdr = head + body
    if crc is not None:
        value = crc32c(hdr) ^ (0 if crc == "good" else 1)
        hdr = hdr[:-4] + struct.pack("!I", value)
    return hdr


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def conf(port, proxy_from='[ "127.0.0.0/8" ]', extra="", top=""):
    return ('listen = ( { address = "127.0.0.1"; port = %d; '
            'proxy_protocol = true; proxy_from = %s; %s } );\n'
            'log_level = "debug";\n%s' % (port, proxy_from, extra, top))


def closed_unechoed(s, timeout=10):
    """echod closed s without echoing a byte."""
    s.settimeout(timeout * harness.SLOW)
    try:
        return recv_until_eof(s) == b""
    except ConnectionResetError:
        return True


class Proxy(harness.TestCase):
    deadline = 60

    def start(self, **kw):
        port = harness.free_port()
        return self.daemon(conf=conf(port, **kw), port=port)

    def test_header_dribbled_byte_by_byte(self):
        d = self.start()
        hdr = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 7\r\n"
        with connect(d.port) as s:
            for i in range(len(hdr)):
                s.sendall(hdr[i:i + 1])
            s.sendall(b"hello")
            self.assertEqual(recv_exact(s, 5), b"hello")
        d.wait_log(r"conn \d+ 192\.0\.2\.7:40000 closed: eof in=5 out=5")
        self.assertEqual(d.stop(), 0)

    def test_header_and_data_in_one_write(self):
        d = self.start()
        data = bytes(range(256)) * 64
        for hdr in (b"PROXY TCP6 2001:db8::1 ::1 1234 7\r\n",
                    v2("198.51.100.9", "127.0.0.1", 5555, 7),
                    v2("198.51.100.10", "127.0.0.1", 5556, 7, crc="good"),
                    v2("198.51.100.11", "127.0.0.1", 5557, 7,
                       tlvs=b"\x04\x00\x03abc")):
            with connect(d.port) as s:
                s.sendall(hdr + data)
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_until_eof(s), data, hdr)
        for who in (r"\[2001:db8::1\]:1234", r"198\.51\.100\.9:5555",
                    r"198\.51\.100\.10:5556", r"198\.51\.100\.11:5557"):
            d.wait_log(r"conn \d+ %s closed: eof in=%d out=%d"
                       % (who, len(data), len(data)))
        self.assertEqual(d.stop(), 0)

    def test_local_command_is_served_as_the_peer(self):
        d = self.start()
        with connect(d.port) as s:
            s.sendall(v2("0.0.0.0", "0.0.0.0", 0, 0, cmd=0) + b"check")
            self.assertEqual(recv_exact(s, 5), b"check")
            port = s.getsockname()[1]
        d.wait_log(r"conn \d+ 127\.0\.0\.1:%d closed: eof" % port)
        self.assertEqual(d.stop(), 0)

    def test_malformed_headers_close_without_echo(self):
        d = self.start()
        bad = [
            b"GET / HTTP/1.0\r\n\r\n",
            b"PROXY TCP4 192.0.2.1 127.0.0.1 1 65536\r\n",
            b"PROXY TCP4 ::1 127.0.0.1 1 2\r\n",
            b"PROXY  TCP4 192.0.2.1 127.0.0.1 1 2\r\n",
            b"proxy TCP4 192.0.2.1 127.0.0.1 1 2\r\n",
            b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",   # over 107 bytes
            SIG + b"\x21\x11\x40\x00" + b"\x00" * 64,    # length too long
            SIG + b"\x21\x11\x00\x04" + b"\x00" * 4,     # shorter than IPv4
            SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12,    # version 3
            v2("192.0.2.2", "127.0.0.1", 1, 7, crc="bad"),
        ]
        for hdr in bad:
            with connect(d.port) as s:
                s.sendall(hdr + b"payload")
                self.assertTrue(closed_unechoed(s), hdr)
        closed = re.findall(r"closed: proxy ", d.log())
        self.assertEqual(len(closed), len(bad))
        self.assertNotIn("closed: eof", d.log())
        self.assertEqual(d.stop(), 0)

    def test_incomplete_header_times_out(self):
        d = self.start(extra="proxy_timeout = 1;")
        with connect(d.port) as s:
            s.sendall(b"PROXY TCP4 192.0.2.1 ")
            self.assertTrue(closed_unechoed(s, 10))
        d.wait_log(r"no complete PROXY header within proxy_timeout, closed")
        d.wait_log(r"closed: proxy ")
        self.assertEqual(d.stop(), 0)

    def test_untrusted_proxy_is_refused_at_accept(self):
        d = self.start(proxy_from='[ "127.0.0.9" ]')
        with connect(d.port) as s:
            s.sendall(b"PROXY TCP4 192.0.2.1 127.0.0.1 1 7\r\nhi")
            self.assertTrue(closed_unechoed(s))
        d.wait_log(r"127\.0\.0\.1:\d+ is not in proxy_from, connection "
                   r"refused")
        d.wait_notify_match(r"0 accepted, 1 refused")
        self.assertEqual(d.stop(), 0)

    def test_declared_source_meets_acl_and_per_source_limit(self):
        d = self.start(top='deny = [ "192.0.2.66" ];\n'
                       'max_connections_per_source = 1;\n')
        with connect(d.port) as s:
            s.sendall(b"PROXY TCP4 192.0.2.66 127.0.0.1 1 7\r\nno")
            self.assertTrue(closed_unechoed(s))
        d.wait_log(r"conn \d+ 192\.0\.2\.66:1 closed: acl ")
        first = connect(d.port)
        self.addCleanup(first.close)
        first.sendall(b"PROXY TCP4 192.0.2.5 127.0.0.1 2 7\r\none")
        self.assertEqual(recv_exact(first, 3), b"one")
        with connect(d.port) as s:
            s.sendall(b"PROXY TCP4 192.0.2.5 127.0.0.1 3 7\r\ntwo")
            self.assertTrue(closed_unechoed(s))
        d.wait_log(r"conn \d+ 192\.0\.2\.5:3 closed: per-source ")
        with connect(d.port) as s:      # another declared source is served
            s.sendall(b"PROXY TCP4 192.0.2.6 127.0.0.1 4 7\r\nok")
            self.assertEqual(recv_exact(s, 2), b"ok")
        self.assertEqual(d.stop(), 0)

    def test_config_requires_proxy_from(self):
        port = harness.free_port()
        d = self.daemon(start=False, conf='listen = ( { address = '
                        '"127.0.0.1"; port = %d; proxy_protocol = true; '
                        '} );\n' % port, port=port)
        r = self.run_echod("-t", "-c", d.conf_path)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertRegex(r.stderr, r"echod\.conf:\d+: listen\[0\]\.proxy_from: "
                         r"required with proxy_protocol")

"""allow and deny: who is served. A refused TCP client is closed right
after accept (never echoed), a refused datagram is dropped; a listen
entry's own lists replace the top-level ones; a reload swaps the lists
for every worker and keeps open connections; bad entries are config
errors with file:line; a 100,000-prefix list works."""
import signal

import harness
from harness import recv_exact, tcp_from, udp_from


def served(s, data=b"hello"):
    """True if s echoes; False if echod closed it without a byte."""
    try:
        s.sendall(data)
        return recv_exact(s, len(data)) == data
    except (ConnectionResetError, BrokenPipeError):
        return False


def listen(port="%(p)d", extra="", udp=False):
    """A listen entry; by default on the test's port (filled by start)."""
    return ('{ address = "127.0.0.1"; port = %s; %s%s }'
            % (port, 'protocol = "udp"; ' if udp else "", extra))


class Acl(harness.TestCase):
    deadline = 60

    def start(self, listens, top=""):
        port = harness.free_port()
        text = "listen = ( %s );\n%s" % (",\n".join(
            l % {"p": port} for l in listens), top)
        return self.daemon(conf=text, port=port), port

    def test_deny_refuses_and_neighbour_is_served(self):
        d, port = self.start([listen(), listen(udp=True)],
                             'deny = [ "127.0.0.2", "10.0.0.0/8" ];\n')
        with tcp_from("127.0.0.2", port) as s:
            self.assertFalse(served(s))
        with tcp_from("127.0.0.3", port) as s:
            self.assertTrue(served(s))
        self.assertIsNone(udp_from("127.0.0.2", port))
        self.assertEqual(udp_from("127.0.0.3", port), b"ping")
        d.wait_log(r"127\.0\.0\.1:%d: 127\.0\.0\.2:\d+ refused by "
                   r"allow/deny" % port)
        d.wait_notify_match(r"1 accepted, 1 refused .*udp: .*2 received, "
                            r"1 echoed, 1 dropped \(1 acl\)")
        self.assertEqual(d.stop(), 0)

    def test_allow_list_and_per_listener_override(self):
        port2 = harness.free_port()
        d, port = self.start(
            [listen(),
             '{ address = "127.0.0.1"; port = %d; allow = [ ]; '
             'deny = [ "127.0.0.6" ]; }' % port2],
            'allow = [ "127.0.0.5/32", "::1" ];\n')
        # Top-level: only 127.0.0.5 is allowed.
        for src, ok in (("127.0.0.5", True), ("127.0.0.6", False),
                        ("127.0.0.7", False)):
            with tcp_from(src, port) as s:
                self.assertEqual(served(s), ok, src)
        # The second listener's own lists replace both top-level ones.
        for src, ok in (("127.0.0.5", True), ("127.0.0.6", False),
                        ("127.0.0.7", True)):
            with tcp_from(src, port2) as s:
                self.assertEqual(served(s), ok, src)
        self.assertEqual(d.stop(), 0)

    def test_reload_swaps_lists_and_keeps_open_connections(self):
        d, port = self.start([listen()],
                             'deny = [ "127.0.0.2" ];\n')
        kept = tcp_from("127.0.0.3", port)
        self.addCleanup(kept.close)
        self.assertTrue(served(kept))
        d.write_conf('listen = ( %s );\ndeny = [ "127.0.0.3" ];\n'
                     % listen(port))
        d.signal(signal.SIGHUP)
        lines = d.wait_notify("READY=1")
        self.assertFalse(any("failed" in l for l in lines), lines)
        # Every worker has the new lists once READY=1 is back.
        for _ in range(8):
            with tcp_from("127.0.0.2", port) as s:
                self.assertTrue(served(s))
            with tcp_from("127.0.0.3", port) as s:
                self.assertFalse(served(s))
        # The connection opened before stays open: a reload changes who
        # may connect from now on.
        self.assertTrue(served(kept, b"still here"))
        self.assertEqual(d.stop(), 0)

    def test_bad_entries_are_config_errors(self):
        cases = [
            ('"10.0.0.0/33"', r"prefix length must be 0\.\.32"),
            ('"300.1.1.1"', r"not an IPv4 or IPv6 address"),
            ('"fe80::/129"', r"prefix length must be 0\.\.128"),
            ('""', r"not an IPv4 or IPv6 address"),
            # In an array libconfig itself refuses a second type.
            ('7', r"mismatched element type in array"),
            ('"10.0.0.1/8"', r'host bits set beyond /8: did you mean '
                             r'"10\.0\.0\.0/8"\?'),
        ]
        for entry, why in cases:
            d = self.daemon(start=False, conf='listen = ( %s );\n'
                            'deny = [ "192.0.2.0/24",\n  %s ];\n'
                            % (listen(harness.free_port()), entry))
            r = self.run_echod("-t", "-c", d.conf_path)
            self.assertEqual(r.returncode, 78, (entry, r.stderr))
            self.assertRegex(r.stderr, r"echod\.conf:3: (deny.*)?" + why,
                             entry)
        # A list may mix types: then echod names the element.
        d = self.daemon(start=False, conf='listen = ( %s );\n'
                        'deny = ( "192.0.2.0/24",\n  7 );\n'
                        % listen(harness.free_port()))
        r = self.run_echod("-t", "-c", d.conf_path)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertRegex(r.stderr, r"echod\.conf:3: deny\[1\]: expected a "
                         r"string")

    def test_a_100k_prefix_deny_list(self):
        rng = self.rng()
        nets = set()
        while len(nets) < 100000:
            a = rng.randrange(1 << 24)
            if (a >> 16) in (10, 127):   # leave loopback and 10/8 alone
                continue
            nets.add(a)
        entries = ['"%d.%d.%d.0/24"' % (a >> 16, (a >> 8) & 255, a & 255)
                   for a in sorted(nets)]
        entries.insert(len(entries) // 2, '"127.0.0.2"')
        d, port = self.start([listen()],
                             "deny = [\n%s\n];\n" % ",\n".join(entries))
        with tcp_from("127.0.0.2", port) as s:
            self.assertFalse(served(s))
        with tcp_from("127.0.0.3", port) as s:
            self.assertTrue(served(s))
        self.assertEqual(d.stop(), 0)

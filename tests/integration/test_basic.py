"""Smoke tests: the daemon starts, echoes, and the CLI answers."""
import os
import signal

import harness
from harness import connect, recv_exact, recv_until_eof


class Basic(harness.TestCase):
    deadline = 30

    def test_echo_small(self):
        d = self.daemon()
        with connect(d.port) as s:
            s.sendall(b"hello, echo\n")
            self.assertEqual(recv_exact(s, 12), b"hello, echo\n")
            s.shutdown(1)
            self.assertEqual(recv_until_eof(s), b"")
        self.assertEqual(d.stop(), 0)

    def test_version_and_help(self):
        r = self.run_echod("-V")
        self.assertEqual(r.returncode, 0)
        with open(os.path.join(harness.ROOT, "VERSION")) as f:
            self.assertEqual(r.stdout.strip(), "echod " + f.read().strip())
        r = self.run_echod("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--config", r.stdout)
        r = self.run_echod("--no-such-option")
        self.assertEqual(r.returncode, 64)
        r = self.run_echod("stray")
        self.assertEqual(r.returncode, 64)

    def test_check_config(self):
        d = self.daemon(start=False)
        r = self.run_echod("-t", "-c", d.conf_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)
        d.write_conf("max_connections = 0;\n")
        r = self.run_echod("-t", "-c", d.conf_path)
        self.assertEqual(r.returncode, 78)
        self.assertEqual(r.stderr.strip(),
                         "echod: %s:1: max_connections: expected an integer "
                         "in 1..1048576" % d.conf_path)

    def test_check_config_access_lists(self):
        """allow, deny and proxy_from are read and checked by -t; a bad
        element is a configuration error at its own line, for -t and at
        startup alike. A daemon with lists starts and echoes."""
        lists = ('allow = [ "127.0.0.0/8", "::1" ];\n'
                 'deny = ( "192.0.2.0/24", "2001:db8::/32" );\n')
        d = self.daemon(start=False, extra=lists)
        r = self.run_echod("-t", "-c", d.conf_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)
        d.start()
        with connect(d.port) as s:
            s.sendall(b"listed\n")
            self.assertEqual(recv_exact(s, 7), b"listed\n")
        self.assertEqual(d.stop(), 0)

        bad = self.daemon(start=False, extra=(
            'deny = [ "10.0.0.0/8",\n'
            '         "10.0.0.1/8" ];\n'))
        want = ('echod: %s:3: deny[1]: "10.0.0.1/8": host bits set beyond '
                '/8: did you mean "10.0.0.0/8"?' % bad.conf_path)
        r = self.run_echod("-t", "-c", bad.conf_path)
        self.assertEqual((r.returncode, r.stderr.strip()), (78, want))
        bad.start(wait_ready=False)
        self.assertEqual(bad.proc.wait(timeout=10), 78)
        self.assertIn(want, bad.log())

        bad.write_conf('listen = ( { address = "127.0.0.1"; port = %d;\n'
                       '  proxy_from = [ 7 ]; } );\n' % bad.port)
        r = self.run_echod("-t", "-c", bad.conf_path)
        self.assertEqual((r.returncode, r.stderr.strip()),
                         (78, "echod: %s:2: listen[0].proxy_from[0]: "
                          "expected a string" % bad.conf_path))

    def test_sigint_exits_zero(self):
        d = self.daemon()
        d.signal(signal.SIGINT)
        self.assertEqual(d.proc.wait(timeout=10), 0)

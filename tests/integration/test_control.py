"""The control socket (`control_socket`), spoken to directly (the wire
protocol of ctl.h) and through echodctl: `stats json` agrees with
/metrics; `connections` names a test client by its source with exact
byte counts, busiest first, bounded by limit=; a stalled, a garbage and
an over-long client each get dropped or refused while echo goes on
unslowed; the socket file is mode 0660, replaces a stale one, leaves a
live one (exit 71), and an explicit path that cannot be made is exit 71
with the reason in STATUS; the file goes when echod exits."""
import errno
import json
import os
import re
import socket
import stat
import subprocess
import time

import harness
from harness import recv_exact, tcp_from
from test_metrics import get, parse

CTL_TIMEOUT = 5.0  # SCR_TIMEOUT_MS in src/scrape.h
CTL_CLIENTS = 4    # SCR_CLIENTS
ECHODCTL = harness.ECHODCTL


def body(answer):
    """The body of an OK answer."""
    assert answer.startswith(b"OK\n"), answer[:200]
    return answer[3:].decode()


def notify_status(d, timeout=10.0):
    """The STATUS= line of the notify datagrams echod sent."""
    deadline = time.monotonic() + timeout
    while True:
        for line in d.next_notify(deadline, "STATUS="):
            if line.startswith("STATUS="):
                return line[len("STATUS="):]


class Control(harness.TestCase):
    deadline = 90

    def start(self, top=""):
        port, mport = harness.free_port(), harness.free_port()
        text = ('listen = (\n'
                ' { address = "127.0.0.1"; port = %d; },\n'
                ' { address = "127.0.0.1"; port = %d; service = "metrics"; }'
                '\n);\nmax_connections_per_source = 0;\n%s' %
                (port, mport, top))
        return self.daemon(conf=text, port=port), port, mport

    def test_stats_json_matches_metrics(self):
        d, port, mport = self.start()
        for i in range(5):
            with tcp_from("127.0.0.%d" % (10 + i), port) as s:
                s.sendall(b"y" * (100 + i))
                recv_exact(s, 100 + i)
        harness.wait_for(
            lambda: json.loads(body(d.control("stats json")))["total"]
            ["tcp_connections_open"] == 0, 10, "the clients closed")
        st = json.loads(body(d.control("stats json")))
        m = parse(get(mport)[2])
        lsn = [l for l in st["listeners"]
               if l["listener"] == "127.0.0.1:%d" % port]
        self.assertEqual(len(lsn), 1, st["listeners"])
        lab = frozenset({("listener", "127.0.0.1:%d" % port),
                         ("protocol", "tcp"), ("service", "echo")})
        for key in ("tcp_connections_accepted_total", "received_bytes_total",
                    "sent_bytes_total", "tcp_connections_open"):
            self.assertEqual(lsn[0][key], m[("echod_" + key, lab)], key)
        self.assertEqual(lsn[0]["tcp_connections_accepted_total"], 5)
        self.assertEqual(lsn[0]["received_bytes_total"], sum(
            100 + i for i in range(5)))
        for reason, n in lsn[0]["tcp_connections_closed_total"].items():
            self.assertEqual(n, m[("echod_tcp_connections_closed_total",
                                   lab | {("reason", reason)})], reason)
        self.assertEqual(st["workers"], d.workers())
        # The text form says the same.
        text = body(d.control("stats"))
        self.assertIn("127.0.0.1:%d" % port, text)

    def test_connections_lists_clients(self):
        d, port, _ = self.start()
        held = []
        # Distinct sources and sizes: the busiest comes first.
        for i in range(6):
            s = tcp_from("127.0.0.%d" % (20 + i), port)
            s.sendall(b"z" * (1000 * (i + 1)))
            recv_exact(s, 1000 * (i + 1))
            held.append(s)
        ans = json.loads(body(d.control("connections json limit=4")))
        self.assertEqual(ans["total"], 6)
        self.assertEqual(ans["shown"], 4)
        rows = ans["connections"]
        self.assertEqual(len(rows), 4)
        for k, row in enumerate(rows):
            i = 5 - k
            src = "127.0.0.%d:%d" % (20 + i, held[i].getsockname()[1])
            self.assertEqual(row["source"], src)
            self.assertEqual(row["listener"], "127.0.0.1:%d" % port)
            self.assertEqual(row["received_bytes"], 1000 * (i + 1))
            self.assertEqual(row["sent_bytes"], 1000 * (i + 1))
            self.assertEqual(row["queued_bytes"], 0)
            self.assertFalse(row["paused"])
            self.assertFalse(row["proxied"])
            self.assertLess(row["worker"], d.workers())
            self.assertGreaterEqual(row["age_seconds"], 0)
        text = body(d.control("connections"))
        self.assertIn("127.0.0.25:%d" % held[5].getsockname()[1], text)
        self.assertIn("6 of 6", text)
        for s in held:
            s.close()

    def test_bad_proxy_header_counted_refused(self):
        port = harness.free_port()
        d = self.daemon(port=port, conf=(
            'listen = ( { address = "127.0.0.1"; port = %d; '
            'proxy_protocol = true; proxy_from = [ "127.0.0.0/8" ]; } );\n'
            % port))
        for _ in range(3):
            with tcp_from("127.0.0.3", port) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                try:  # closed unread: a reset is as good as a FIN
                    self.assertEqual(harness.recv_until_eof(s), b"")
                except ConnectionResetError:
                    pass

        def lsn():
            st = json.loads(body(d.control("stats json")))
            return st["listeners"][0]
        harness.wait_for(lambda: lsn()["tcp_connections_closed_total"]
                         ["proxy"] == 3, 10, "three closed: proxy")
        self.assertEqual(lsn()["tcp_connections_refused_total"]["proxy"], 3)
        self.assertEqual(lsn()["tcp_connections_accepted_total"], 3)

    def test_bad_requests_answered_err(self):
        d, port, _ = self.start()
        for line, why in (("reboot", "unknown command"),
                          ("stats limit=3", "limit= is for connections"),
                          ("connections limit=0", "limit= wants"),
                          ("status\x01", "not a text line")):
            ans = d.control(line)
            self.assertTrue(ans.startswith(b"ERR "), ans)
            self.assertIn(why.encode(), ans)
        # Over-long: refused at CTL_REQ_MAX bytes, without a line end.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(d.ctl_path)
            s.sendall(b"s" * 300)
            self.assertEqual(s.recv(100), b"ERR request line too long\n")
            self.assertEqual(s.recv(100), b"")
        with tcp_from("127.0.0.2", port) as e:
            e.sendall(b"still")
            self.assertEqual(recv_exact(e, 5), b"still")

    def test_stalled_clients_dropped(self):
        d, port, _ = self.start()
        def client():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.ctl_path)
            return s
        self.check_stalled_clients(client, b"sta", CTL_CLIENTS, CTL_TIMEOUT,
                                   port)
        # And it serves again.
        self.assertIn("version", body(d.control("status")))
        d.wait_log(r"4 control clients in progress, connection refused")

    def test_socket_file(self):
        d, port, _ = self.start()
        st = os.lstat(d.ctl_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_uid, os.geteuid())
        # A second echod on the same path: the live one is left alone.
        d2 = self.daemon(start=False, conf=(
            harness.listen_conf(harness.free_port()) +
            'control_socket = "%s";\n' % d.ctl_path))
        d2.start(wait_ready=False)
        self.assertEqual(d2.proc.wait(timeout=20), 71, d2.log())
        self.assertIn("another process answers on it", notify_status(d2))
        self.assertIn("version", body(d.control("status")))
        # Killed, it leaves a stale file; the next echod replaces it.
        d.kill()
        self.assertTrue(os.path.exists(d.ctl_path))
        d3 = self.daemon(conf=(harness.listen_conf(harness.free_port()) +
                               'control_socket = "%s";\n' % d.ctl_path))
        d3.ctl_path = d.ctl_path
        self.assertIn("version", body(d3.control("status")))
        d3.stop()
        self.assertFalse(os.path.exists(d.ctl_path))

    def test_explicit_path_must_work(self):
        d = self.daemon(start=False, extra='control_socket = "/nonexistent-'
                        'echod-dir/c.sock";\n')
        d.start(wait_ready=False)
        self.assertEqual(d.proc.wait(timeout=20), 71, d.log())
        status = notify_status(d)
        self.assertIn("control socket /nonexistent-echod-dir/c.sock", status)
        self.assertIn(os.strerror(errno.ENOENT), status)

    def test_default_path_missing_is_a_warning(self):
        if os.path.exists("/run/echod"):
            self.skipTest("/run/echod exists on this machine: the default "
                          "path would work")
        d = self.daemon(extra='control_socket = "/run/echod/control.sock";\n')
        d.wait_log(r"control socket /run/echod/control.sock: cannot create "
                   r"it: No such file or directory; running without it")
        with tcp_from("127.0.0.2", d.port) as e:
            e.sendall(b"ok")
            self.assertEqual(recv_exact(e, 2), b"ok")

    def test_off(self):
        d = self.daemon(extra='control_socket = "";\n')
        self.assertFalse(os.path.exists(d.ctl_path))
        self.assertNotRegex(d.log(), r"control socket")


class Echodctl(harness.TestCase):
    """The real client against the real daemon."""
    deadline = 60

    def ctl(self, d, *args):
        r = subprocess.run([ECHODCTL, "-s", d.ctl_path] + list(args),
                           capture_output=True, timeout=20)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def test_commands(self):
        port = harness.free_port()
        d = self.daemon(port=port)
        with tcp_from("127.0.0.9", port) as s:
            s.sendall(b"q" * 777)
            recv_exact(s, 777)
            rc, out, err = self.ctl(d, "connections", "--json")
            self.assertEqual(rc, 0, err)
            rows = json.loads(out)["connections"]
            self.assertEqual(
                [(r["source"], r["received_bytes"]) for r in rows],
                [("127.0.0.9:%d" % s.getsockname()[1], 777)])
            rc, out, err = self.ctl(d, "connections")
            self.assertEqual(rc, 0, err)
            self.assertRegex(out, r"127\.0\.0\.9:%d\s" % s.getsockname()[1])
        rc, out, err = self.ctl(d, "stats", "--json")
        self.assertEqual(rc, 0, err)
        self.assertGreaterEqual(
            json.loads(out)["total"]["tcp_connections_accepted_total"], 1)
        rc, out, err = self.ctl(d, "status")
        self.assertEqual(rc, 0, err)
        with open(os.path.join(harness.ROOT, "VERSION")) as f:
            self.assertRegex(out, r"(?m)^version:\s+%s$" %
                             re.escape(f.read().strip()))
        self.assertRegex(out, r"(?m)^workers:\s+%d$" % d.workers())
        d.stop()
        rc, out, err = self.ctl(d, "status")
        self.assertEqual(rc, 69, err)

"""echodctl, the control client, against a fake control server.

The test runs the real echodctl ($ECHODCTL, default ./echodctl) against a
UNIX stream socket in a temporary directory, served by a thread of this
test that plays echod's side of the protocol (echodctl(8) PROTOCOL): it
records the request line and answers as the test says, including not at
all. Checked: the exact request line of every command and option, the OK
body copied byte for byte (1 MiB included), ERR, the overall deadline
(also against a server that trickles bytes forever), answers that are not
of the protocol, every exit code, the socket path's precedence, and that
the man page documents every option and exit code. Every run of echodctl
has a hard timeout besides the test's own deadline."""
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import harness

ECHODCTL = harness.ECHODCTL
DEFAULT_SOCKET = "/run/echod/control.sock"
with open(os.path.join(harness.ROOT, "VERSION")) as _f:
    VERSION = _f.read().strip()

EX_OK, EX_REFUSED, EX_USAGE, EX_UNAVAILABLE = 0, 1, 64, 69
EX_IOERR, EX_TEMPFAIL, EX_PROTOCOL = 74, 75, 76


class FakeControl:
    """A control socket served by a thread, one connection at a time.

    For each connection it reads the request up to its "\\n" and then
    whatever follows until EOF or one second (echodctl shuts down its
    sending side, so EOF is immediate), records both, and answers
    according to `mode`:
      "answer"  send `answer`, close;
      "silent"  send nothing and hold the connection until the client goes;
      "trickle" send `answer`, then one byte every 0.2 s, forever;
      "unread"  without reading anything, send `answer` once the request
                is there and close (the client sees ECONNRESET after it);
      "hold"    send `answer`, then hold the connection like "silent"."""

    def __init__(self, answer=b"OK\n", mode="answer", backlog=8):
        self.dir = tempfile.mkdtemp(prefix="echodctl-t")
        self.path = os.path.join(self.dir, "control.sock")
        self.answer = answer
        self.mode = mode
        self.requests = []   # (line with its "\n", bytes after it, eof)
        self.errors = []
        self.lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsn.bind(self.path)
        self.lsn.listen(backlog)
        self.lsn.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.lsn.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                try:
                    self._one(conn)
                except OSError as e:
                    self.errors.append(e)

    def _read_request(self, conn):
        conn.settimeout(5)
        buf = b""
        while b"\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                break
            buf += chunk
        line, nl, rest = buf.partition(b"\n")
        eof = False
        conn.settimeout(1)
        try:
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    eof = True
                    break
                rest += chunk
        except socket.timeout:
            pass
        self.requests.append((line + nl, rest, eof))

    def _hold(self, conn, trickle=False):
        """Until the client closes or the test ends. The client's EOF
        (its SHUT_WR) keeps the socket readable, so wait for POLLHUP,
        which a UNIX socket reports once the peer is gone."""
        p = select.poll()
        p.register(conn, select.POLLHUP)
        while not self.stop.is_set():
            if p.poll(200):
                return
            if trickle:
                try:
                    conn.send(b"x")
                except OSError:
                    return

    def _one(self, conn):
        if self.mode == "unread":
            select.select([conn], [], [], 5)
            conn.sendall(self.answer)
            return
        self._read_request(conn)
        if self.mode in ("answer", "trickle", "hold"):
            conn.settimeout(10)
            conn.sendall(self.answer)
        if self.mode in ("silent", "trickle", "hold"):
            self._hold(conn, trickle=self.mode == "trickle")

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.lsn.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def clean_env(**extra):
    """The environment without $ECHODCTL_SOCKET, plus extra."""
    env = {k: v for k, v in os.environ.items() if k != "ECHODCTL_SOCKET"}
    env.update(extra)
    return env


class EchodctlTest(harness.TestCase):
    deadline = 60

    def setUp(self):
        super().setUp()
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.close()
        super().tearDown()

    def server(self, *a, **kw):
        s = FakeControl(*a, **kw)
        self.servers.append(s)
        return s

    def ctl(self, *args, env=None, timeout=20, **kw):
        """Run echodctl to completion under a hard timeout; stdout and
        stderr are captured as bytes unless kw says where they go."""
        if "stdout" not in kw:
            kw["capture_output"] = True
        return subprocess.run([ECHODCTL] + list(args),
                              env=env or clean_env(), timeout=timeout, **kw)

    def assertExit(self, r, code, stderr_has=(), stdout=b""):
        msg = "exit %d, stderr: %r" % (r.returncode, r.stderr[-2000:])
        self.assertEqual(r.returncode, code, msg)
        for text in stderr_has:
            self.assertIn(text.encode(), r.stderr, msg)
        if stdout is not None:
            self.assertEqual(r.stdout, stdout)


class Requests(EchodctlTest):
    def test_each_command_sends_its_exact_line(self):
        cases = [
            (["status"], b"status\n"),
            (["status", "--json"], b"status json\n"),
            (["stats"], b"stats\n"),
            (["--json", "stats"], b"stats json\n"),
            (["connections"], b"connections limit=50\n"),
            (["connections", "--json"], b"connections json limit=50\n"),
            (["connections", "--limit", "7"], b"connections limit=7\n"),
            (["connections", "--limit=1", "--json"],
             b"connections json limit=1\n"),
            (["--limit", "10000", "connections"],
             b"connections limit=10000\n"),
            (["-t", "5", "connections", "--json", "--limit", "0100"],
             b"connections json limit=100\n"),
            (["--", "stats"], b"stats\n"),
        ]
        srv = self.server(b"OK\nbody\n")
        for args, line in cases:
            r = self.ctl("-s", srv.path, *args)
            self.assertExit(r, EX_OK, stdout=b"body\n")
            got, rest, eof = srv.requests[-1]
            self.assertEqual(got, line, args)
            self.assertLessEqual(len(got), 256)
            # One line, then the sending side shut down.
            self.assertEqual((rest, eof), (b"", True), args)
        self.assertEqual(len(srv.requests), len(cases))
        self.assertEqual(srv.errors, [])

    def test_socket_path_precedence(self):
        srv = self.server(b"OK\nhere\n")
        missing = os.path.join(srv.dir, "missing.sock")
        # $ECHODCTL_SOCKET without -s.
        r = self.ctl("status", env=clean_env(ECHODCTL_SOCKET=srv.path))
        self.assertExit(r, EX_OK, stdout=b"here\n")
        # -s wins over $ECHODCTL_SOCKET.
        r = self.ctl("-s", srv.path, "status",
                     env=clean_env(ECHODCTL_SOCKET=missing))
        self.assertExit(r, EX_OK, stdout=b"here\n")
        r = self.ctl("--socket", missing, "status",
                     env=clean_env(ECHODCTL_SOCKET=srv.path))
        self.assertExit(r, EX_UNAVAILABLE, [missing])
        r = self.ctl("status", env=clean_env(ECHODCTL_SOCKET=missing))
        self.assertExit(r, EX_UNAVAILABLE, [missing])
        self.assertEqual(len(srv.requests), 2)

    def test_default_socket_path(self):
        if os.path.exists(DEFAULT_SOCKET):
            self.skipTest("%s exists on this machine" % DEFAULT_SOCKET)
        for env in (clean_env(), clean_env(ECHODCTL_SOCKET="")):
            r = self.ctl("status", env=env)
            self.assertExit(r, EX_UNAVAILABLE, [
                "echodctl: cannot connect to %s: " % DEFAULT_SOCKET])


class Answers(EchodctlTest):
    def test_ok_body_is_copied_byte_exact(self):
        rng = self.rng()
        body = rng.randbytes(1 << 20) + b"\nOK\nERR x\n\0"
        for payload in (body, b"", b"no final newline", b"\n"):
            srv = self.server(b"OK\n" + payload)
            r = self.ctl("-s", srv.path, "connections", "--json")
            self.assertExit(r, EX_OK, stdout=None)
            self.assertEqual(len(r.stdout), len(payload))
            self.assertTrue(r.stdout == payload, "body differs")
            self.assertEqual(r.stderr, b"")

    def test_err_exits_1_with_the_reason(self):
        cases = [
            (b"ERR unknown command\n", "echodctl: echod refused: "
             "unknown command\n"),
            (b"ERR\n", "echodctl: echod refused: (no reason given)\n"),
            (b"ERR too many clients\nignored\n",
             "echodctl: echod refused: too many clients\n"),
            # Control bytes from the socket never reach the terminal raw.
            (b"ERR bad \x1b[31mred\r\n",
             "echodctl: echod refused: bad \\x1b[31mred\\x0d\n"),
        ]
        for answer, text in cases:
            srv = self.server(answer)
            r = self.ctl("-s", srv.path, "stats")
            self.assertExit(r, EX_REFUSED)
            self.assertEqual(r.stderr.decode(), text)

    def test_err_before_the_request_is_read(self):
        # echod may refuse without reading (e.g. too many control
        # clients) and close with the request unread: the client then
        # gets ECONNRESET after the answer, which must still count.
        srv = self.server(b"ERR busy\n", mode="unread")
        r = self.ctl("-s", srv.path, "status")
        self.assertExit(r, EX_REFUSED, ["echodctl: echod refused: busy"])

    def test_answers_outside_the_protocol(self):
        cases = [
            (b"", "without answering"),
            (b"OK", "in the middle of its first line"),
            (b"OK body without a line end", "in the middle"),
            (b"HELLO\n", 'not an answer of echod\'s control protocol: '
             '"HELLO"'),
            (b"OK \nbody\n", 'protocol: "OK "'),
            (b"ok\nbody\n", 'protocol: "ok"'),
            (b"ERRX\n", 'protocol: "ERRX"'),
        ]
        for answer, text in cases:
            srv = self.server(answer)
            r = self.ctl("-s", srv.path, "status")
            self.assertExit(r, EX_PROTOCOL, [text])

    def test_endless_first_line_fails_at_once(self):
        # No "\n" in the first 4096 bytes: not echod, whatever follows;
        # no need to wait for the deadline.
        srv = self.server(b"A" * 5000, mode="hold")
        start = time.monotonic()
        r = self.ctl("-s", srv.path, "-t", "30", "status")
        self.assertExit(r, EX_PROTOCOL, ["no line end in its first 4096"])
        self.assertLess(time.monotonic() - start, 10 * harness.SLOW)


class Deadlines(EchodctlTest):
    def run_until_timeout(self, srv, t=1.0):
        start = time.monotonic()
        r = self.ctl("-s", srv.path, "-t", str(t), "stats", timeout=30)
        took = time.monotonic() - start
        self.assertExit(r, EX_TEMPFAIL, ["echodctl: timed out after %g s"
                                         % t])
        self.assertGreaterEqual(took, t * 0.9)
        self.assertLess(took, t + 2 * harness.SLOW)
        return r

    def test_server_that_never_answers(self):
        srv = self.server(mode="silent")
        self.run_until_timeout(srv, 1.0)
        self.assertEqual(srv.requests[0][0], b"stats\n")

    def test_deadline_is_overall_not_per_read(self):
        # A byte every 0.2 s would keep a per-read timeout happy forever.
        srv = self.server(b"OK\n", mode="trickle")
        r = self.run_until_timeout(srv, 1.5)
        self.assertEqual(r.stdout, b"", "a partial answer was written")

    def test_deadline_covers_connecting(self):
        # A UNIX listener with backlog 0 that never accepts: the first
        # connection fills the queue and the next connect gets EAGAIN.
        d = tempfile.mkdtemp(prefix="echodctl-t")
        path = os.path.join(d, "full.sock")
        lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lsn.bind(path)
            lsn.listen(0)
            filler.connect(path)
            start = time.monotonic()
            r = self.ctl("-s", path, "-t", "1", "status", timeout=30)
            took = time.monotonic() - start
            self.assertExit(r, EX_TEMPFAIL, ["connecting"])
            self.assertLess(took, 1 + 2 * harness.SLOW)
        finally:
            filler.close()
            lsn.close()
            shutil.rmtree(d, ignore_errors=True)


class Failures(EchodctlTest):
    def test_no_socket_exits_69_with_a_hint(self):
        d = tempfile.mkdtemp(prefix="echodctl-t")
        try:
            path = os.path.join(d, "control.sock")
            r = self.ctl("-s", path, "status")
            self.assertExit(r, EX_UNAVAILABLE, [
                "echodctl: cannot connect to %s: No such file or directory"
                % path, "is echod running", "control_socket in "])
            # A socket file nobody listens on any more.
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            s.close()
            r = self.ctl("-s", path, "status")
            self.assertExit(r, EX_UNAVAILABLE, ["Connection refused",
                                                "is echod running"])
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_permission_denied_hint(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run echodctl as another user")
        srv = self.server()
        os.chmod(srv.dir, 0o755)
        os.chmod(srv.path, 0o660)
        r = self.ctl("-s", srv.path, "status", user=65534, group=65534,
                     extra_groups=[])
        self.assertExit(r, EX_UNAVAILABLE, [
            "Permission denied", "mode 0660",
            "as root or as a member of that group"])
        self.assertEqual(srv.requests, [])

    def test_usage_errors_exit_64_and_connect_nowhere(self):
        srv = self.server()
        s = ["-s", srv.path]
        cases = [
            ([], "no command given"),
            (s + ["bogus"], "unknown command: bogus"),
            (s + ["status", "stats"], "unexpected argument: stats"),
            (s + ["--", "status", "x"], "unexpected argument: x"),
            (s + ["--bogus", "status"], "unrecognized option"),
            (s + ["-x", "status"], "invalid option"),
            (s + ["status", "--limit", "5"], "--limit goes only with"),
            (s + ["stats", "--limit", "5"], "--limit goes only with"),
            (s + ["connections", "--limit"], "requires an argument"),
            (s + ["--json=1", "stats"], "doesn't allow an argument"),
            (["-s", "", "status"], "socket path is empty"),
        ]
        for t in ("0", "abc", "-1", "inf", "nan", "1e3", "3601", "", "1.2.3",
                  ".", " 1", "0x10"):
            cases.append((s + ["-t", t, "status"], "-t: expected seconds"))
        for n in ("0", "abc", "10001", "-5", "+5", "", " 5", "5x",
                  "99999999999999999999"):
            cases.append((s + ["connections", "--limit", n],
                          "--limit: expected an integer in 1..10000"))
        for args, text in cases:
            r = self.ctl(*args)
            self.assertExit(r, EX_USAGE, [text, "usage: echodctl"])
        self.assertEqual(srv.requests, [])

    def test_socket_path_too_long(self):
        d = tempfile.mkdtemp(prefix="echodctl-t")
        try:
            def path(n):
                return d + "/" + "p" * (n - len(d) - 1)
            # sun_path holds 108 bytes with the NUL: 107 is the most.
            r = self.ctl("-s", path(108), "status")
            self.assertExit(r, EX_USAGE, ["socket path too long (108 bytes,"
                                          " at most 107)"])
            r = self.ctl("status", env=clean_env(ECHODCTL_SOCKET=path(300)))
            self.assertExit(r, EX_USAGE, ["socket path too long"])
            r = self.ctl("-s", path(107), "status")
            self.assertExit(r, EX_UNAVAILABLE, ["No such file"])
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_failed_stdout_exits_74(self):
        srv = self.server(b"OK\n" + b"x" * (1 << 20))
        with open("/dev/full", "wb") as full:
            r = self.ctl("-s", srv.path, "stats", stdout=full,
                         stderr=subprocess.PIPE)
        self.assertEqual(r.returncode, EX_IOERR, r.stderr)
        self.assertIn(b"writing to standard output: No space left", r.stderr)
        # A reader that went away: EPIPE is an error, not a silent death
        # by SIGPIPE.
        rd, wr = os.pipe()
        os.close(rd)
        try:
            r = self.ctl("-s", srv.path, "stats", stdout=wr,
                         stderr=subprocess.PIPE)
        finally:
            os.close(wr)
        self.assertEqual(r.returncode, EX_IOERR, r.stderr)
        self.assertIn(b"Broken pipe", r.stderr)


class Documentation(EchodctlTest):
    def test_help_and_version(self):
        for flag in ("-h", "--help"):
            r = self.ctl(flag)
            self.assertExit(r, EX_OK, stdout=None)
            self.assertTrue(r.stdout.startswith(b"usage: echodctl "))
        for flag in ("-V", "--version"):
            r = self.ctl(flag)
            self.assertExit(r, EX_OK, stdout=("echodctl %s\n" % VERSION)
                            .encode())
        with open("/dev/full", "wb") as full:
            r = self.ctl("-V", stdout=full, stderr=subprocess.PIPE)
        self.assertEqual(r.returncode, EX_IOERR, r.stderr)

    def test_man_page_has_every_option_and_exit_code(self):
        with open(os.path.join(harness.ROOT, "man/echodctl.8")) as f:
            man = f.read()
        with open(os.path.join(harness.ROOT, "ctl/echodctl.c")) as f:
            src = f.read()
        help_text = self.ctl("--help").stdout.decode()
        opts = re.findall(r"^\s+(?:-(\w), )?--([\w-]+)", help_text, re.M)
        self.assertGreaterEqual(len(opts), 6, help_text)
        synopsis = man[man.index(".Sh SYNOPSIS"):man.index(".Sh DESCRIPTION")]
        for short, long_ in opts:
            if short:
                item = r"^\.It Fl %s\b.*, Fl \\-%s\b" % (short, long_)
                self.assertRegex(synopsis, r"Fl [\w |]*%s" % short)
            else:
                item = r"^\.It Fl \\-%s\b" % long_
            self.assertRegex(man, re.compile(item, re.M),
                             "echodctl.8 lacks -%s --%s" % (short, long_))
        codes = {int(c) for c in re.findall(
            r"^#define CTL_EX_\w+ (\d+)", src, re.M)}
        self.assertIn(EX_PROTOCOL, codes)
        section = man[man.index(".Sh EXIT STATUS"):man.index(".Sh EXAMPLES")]
        documented = {int(c) for c in re.findall(r"^\.It (\d+)$", section,
                                                 re.M)}
        self.assertEqual(documented, codes)
        listed = re.search(r"Exit codes: (.*)", help_text, re.S).group(1)
        for c in codes:
            self.assertRegex(listed, r"\b%d " % c)

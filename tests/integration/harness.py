"""Shared helpers for echod's integration tests.

Tests run the real binary ($ECHOD, default ./echod; the control client is
$ECHODCTL, default ./echodctl) on loopback with a generated
configuration, wait for READY=1 on a harness-owned NOTIFY_SOCKET (never a
sleep), and end only the processes they started, by PID.
Every test method runs under a hard deadline (TestCase.deadline seconds,
enforced with SIGALRM)."""
import hashlib
import os
import random
import re
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
ECHOD = os.environ.get("ECHOD") or os.path.join(ROOT, "echod")
# The control client, built by the same make as $ECHOD.
ECHODCTL = os.environ.get("ECHODCTL") or os.path.join(ROOT, "echodctl")
# "1": ASan+UBSan; "tsan": ThreadSanitizer. Both build echod apart and
# run it slower.
SANITIZE = os.environ.get("SANITIZE") in ("1", "tsan")
TSAN = os.environ.get("SANITIZE") == "tsan"
# Under ASan+UBSan echod is slower: every deadline and wait triples.
SLOW = 3 if SANITIZE else 1
# The whole suite runs at each worker count make check asks for
# ($ECHOD_TEST_WORKERS): every config the harness writes gets
# `workers = N;` unless it sets workers itself. Unset: echod's default.
WORKERS = int(os.environ.get("ECHOD_TEST_WORKERS") or 0)
KiB = 1024
MiB = 1024 * 1024


def tcp_queues(local_port, remote_port):
    """(send queue, receive queue) in bytes of the loopback TCP socket with
    these ports, from /proc/net/tcp{,6}; None if there is none."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(path):   # no IPv6 in this kernel
            continue
        with open(path) as f:
            next(f)
            for line in f:
                fields = line.split()
                lport = int(fields[1].rsplit(":", 1)[1], 16)
                rport = int(fields[2].rsplit(":", 1)[1], 16)
                if (lport, rport) == (local_port, remote_port):
                    tx, rx = fields[4].split(":")
                    return int(tx, 16), int(rx, 16)
    return None


def wait_for(cond, timeout, what):
    """Poll cond() (kernel or process state that has no readiness signal,
    e.g. socket queues in /proc) every 10 ms until it is true."""
    deadline = time.monotonic() + timeout * SLOW
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


def ipv6_loopback():
    """True when ::1 can be bound (IPv6 loopback configured)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Deadline(Exception):
    pass


def _alarm(signum, frame):
    raise Deadline("test exceeded its hard deadline")


def free_port(host="127.0.0.1"):
    """A port the kernel just handed out on host (free right now)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def connect(port, host="127.0.0.1", timeout=10.0, rcvbuf=None):
    """A connected TCP socket. rcvbuf (set before connect, so the window
    is small from the start) makes a slow reader: echod's writes to it hit
    EAGAIN and its output queue does the work."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def tcp_from(src, port):
    """A TCP client bound to source address src (127.0.0.x), connected
    to 127.0.0.1:port."""
    s = socket.socket()
    try:
        s.settimeout(10 * SLOW)
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
    except BaseException:
        s.close()
        raise
    return s


def udp_from(src, port, data=b"ping"):
    """The reply to one datagram sent from src to 127.0.0.1:port, or None
    when none comes within a second."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind((src, 0))
        u.settimeout(1.0 * SLOW)
        u.sendto(data, ("127.0.0.1", port))
        try:
            return u.recvfrom(65536)[0]
        except socket.timeout:
            return None


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock):
    buf = bytearray()
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return bytes(buf)
        buf += chunk


def listen_conf(port, host="127.0.0.1"):
    return 'listen = ( { address = "%s"; port = %d; } );\n' % (host, port)


def make_conf(listeners, **keys):
    """Config text: listeners is a list of (address, port); keys are
    top-level settings (str values are quoted)."""
    items = ",\n".join('    { address = "%s"; port = %d; }' % (a, p)
                       for a, p in listeners)
    lines = ["listen = (\n%s\n);" % items]
    for k, v in keys.items():
        lines.append('%s = %s;' % (k, '"%s"' % v if isinstance(v, str)
                                   else int(v)))
    return "\n".join(lines) + "\n"


# --- payloads -------------------------------------------------------------

_POOL = random.Random(862).randbytes(4 * MiB)


class Payload:
    """size bytes of deterministic, non-periodic data, generated a block at
    a time (a 64 MiB payload never sits in memory). Block k starts with
    (tag, k), so a block echoed twice, dropped, reordered or delivered to
    the wrong client changes the hash."""
    BLOCK = 256 * KiB

    def __init__(self, size, tag):
        self.size = size
        self.tag = tag
        self._k = -1
        self._blk = None

    def block(self, k):
        if k != self._k:
            off = (self.tag * 7919 + k * 104729) % (len(_POOL) - self.BLOCK)
            blk = struct.pack("<QQ", self.tag, k) + \
                _POOL[off:off + self.BLOCK - 16]
            self._k, self._blk = k, memoryview(blk)
        return self._blk

    def view(self, pos, n):
        """At most n bytes from pos (never across a block boundary)."""
        k, off = divmod(pos, self.BLOCK)
        n = min(n, self.size - pos, self.BLOCK - off)
        return self.block(k)[off:off + n]

    def digest(self, n=None):
        """sha256 of the first n bytes (all by default)."""
        n = self.size if n is None else n
        h = hashlib.sha256()
        fresh = Payload(self.size, self.tag)  # keep our block cache as is
        pos = 0
        while pos < n:
            v = fresh.view(pos, n - pos)
            h.update(v)
            pos += len(v)
        return h.hexdigest()


def log_size(rng, lo, hi):
    """An integer in [lo, hi], log-uniformly distributed."""
    return min(hi, int(2 ** rng.uniform(lo.bit_length() - 1,
                                       hi.bit_length())))


class EchoClient:
    """One nonblocking echo client: sends its payload in random-sized
    pieces while reading the echo in random-sized pieces, hashing both
    sides. With half_close it shuts down its write side after the last
    byte and expects EOF after the last echoed byte; without, it stops
    once every byte came back."""

    def __init__(self, sock, payload, rng, half_close=False, max_piece=None,
                 max_recv=512 * KiB):
        self.sock = sock
        sock.setblocking(False)
        self.payload = payload
        self.rng = rng
        self.half_close = half_close
        self.max_piece = max_piece or Payload.BLOCK
        self.max_recv = max_recv
        self.sent = 0
        self.rcvd = 0
        self.eof = False
        self.shut = False
        self.error = None
        self.tx_hash = hashlib.sha256()
        self.rx_hash = hashlib.sha256()

    @property
    def size(self):
        return self.payload.size

    def want_write(self):
        return self.sent < self.size

    def on_write(self):
        v = self.payload.view(self.sent,
                              log_size(self.rng, 1, self.max_piece))
        try:
            n = self.sock.send(v)
        except BlockingIOError:
            return 0
        except OSError as e:
            self.error = e
            return 0
        self.tx_hash.update(v[:n])
        self.sent += n
        if self.sent == self.size and self.half_close:
            self.sock.shutdown(socket.SHUT_WR)
            self.shut = True
        return n

    def on_read(self):
        try:
            data = self.sock.recv(log_size(self.rng, 1, self.max_recv))
        except BlockingIOError:
            return
        except OSError as e:
            self.error = e
            return
        if not data:
            self.eof = True
            return
        self.rx_hash.update(data)
        self.rcvd += len(data)
        if self.rcvd > self.sent:
            self.error = AssertionError("received %d bytes, sent only %d"
                                        % (self.rcvd, self.sent))

    def done(self):
        if self.error or self.eof:
            return True
        return self.rcvd == self.size and not self.half_close

    def check(self, tc):
        """Assert on tc (a TestCase): no error, every byte back, same hash,
        and EOF exactly when expected."""
        what = "client %d (%d B)" % (self.payload.tag, self.size)
        tc.assertIsNone(self.error, what)
        tc.assertEqual(self.sent, self.size, what + ": not all sent")
        tc.assertEqual(self.rcvd, self.size, what + ": bytes echoed")
        tc.assertEqual(self.rx_hash.hexdigest(), self.tx_hash.hexdigest(),
                       what + ": echo differs from what was sent")
        tc.assertEqual(self.eof, self.half_close, what + ": EOF")

    def finish_here(self):
        """Send no more: the payload ends at what was sent so far, the
        write side is shut down, and the echo of it all then EOF is due."""
        self.payload.size = self.sent
        self.half_close = True
        self.sock.shutdown(socket.SHUT_WR)
        self.shut = True

    def push_until_stall(self, stall, limit=None):
        """Send without reading until the socket stays unwritable for
        `stall` seconds (the daemon stopped reading) or `limit` bytes are
        out. Returns True if it stalled."""
        limit = self.size if limit is None else min(limit, self.size)
        while self.sent < limit and self.error is None:
            _, w, _ = select.select([], [self.sock], [], stall)
            if not w:
                return True
            self.on_write()
        return False


def run_clients(clients, timeout):
    """Drive clients concurrently until each is done; on timeout, fail
    naming the unfinished ones."""
    sel = selectors.DefaultSelector()
    both = selectors.EVENT_READ | selectors.EVENT_WRITE
    left = 0
    for c in clients:
        if not c.done():
            sel.register(c.sock, both if c.want_write() else
                         selectors.EVENT_READ, c)
            left += 1
    deadline = time.monotonic() + timeout
    try:
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                late = [c for c in clients if not c.done()]
                raise AssertionError(
                    "%d client(s) unfinished after %.0fs, e.g. %s" % (
                        len(late), timeout, ", ".join(
                            "#%d size=%d sent=%d rcvd=%d" % (
                                c.payload.tag, c.size, c.sent, c.rcvd)
                            for c in late[:5])))
            for key, ev in sel.select(min(wait, 1.0)):
                c = key.data
                if ev & selectors.EVENT_WRITE and c.want_write():
                    c.on_write()
                    if not c.want_write():
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                if ev & selectors.EVENT_READ:
                    c.on_read()
                if c.done():
                    sel.unregister(c.sock)
                    left -= 1
    finally:
        sel.close()


class Daemon:
    """One echod process with its own config file and notify socket."""

    def __init__(self, conf=None, port=None, extra="", args=(), env=None,
                 wrapper=(), preexec_fn=None, pass_fds=()):
        self.dir = tempfile.mkdtemp(prefix="echod-t")
        self.port = port or free_port()
        if conf is None:
            conf = listen_conf(self.port) + extra
        self.conf_path = os.path.join(self.dir, "echod.conf")
        self.ctl_path = os.path.join(self.dir, "control.sock")
        self.write_conf(conf)
        self.notify_path = os.path.join(self.dir, "notify")
        self.ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.ns.bind(self.notify_path)
        self.messages = []
        self.log_path = os.path.join(self.dir, "stderr")
        self.args = list(args)
        self.env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        self.env.update(env or {})
        self.wrapper = list(wrapper)
        self.preexec_fn = preexec_fn
        self.pass_fds = tuple(pass_fds)
        self.proc = None

    def write_conf(self, text):
        if WORKERS and not re.search(r"(?m)^\s*workers\s*=", text):
            text += "workers = %d;\n" % WORKERS
        # Every echod gets a control socket of its own, in its temp dir,
        # unless the test says otherwise: never the machine's /run/echod.
        if not re.search(r"(?m)^\s*control_socket\s*=", text):
            text += 'control_socket = "%s";\n' % self.ctl_path
        with open(self.conf_path, "w") as f:
            f.write(text)

    def control(self, line, timeout=10.0):
        """Send one request line to the control socket; return the whole
        answer (bytes) once echod closes."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.ctl_path)
            s.sendall(line.encode() + b"\n")
            data = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    return data
                data += chunk
            raise AssertionError("control answer not closed in %.0fs" % timeout)

    def workers(self):
        """How many workers this echod runs (from its ready line)."""
        return int(self.wait_log(r"ready: .* (\d+) worker\(s\)").group(1))

    def start(self, wait_ready=True, timeout=10.0):
        cmd = self.wrapper + [ECHOD, "-f", "-c", self.conf_path] + self.args
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.logf,
                                     stderr=self.logf, stdin=subprocess.DEVNULL,
                                     preexec_fn=self.preexec_fn,
                                     pass_fds=self.pass_fds)
        if wait_ready:
            self.wait_notify("READY=1", timeout)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def next_notify(self, deadline, what):
        """The lines of the next notify datagram, waiting until the
        monotonic `deadline`; fails naming `what` was awaited."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s from echod in time; notify: %r;"
                                     " log:\n%s" % (what, self.messages,
                                                    self.log()))
            self.ns.settimeout(min(left, 0.2))
            try:
                msg = self.ns.recv(65536).decode()
            except socket.timeout:
                if self.proc.poll() is not None:
                    raise AssertionError("echod exited %s before %s; log:\n%s"
                                         % (self.proc.returncode, what,
                                            self.log()))
                continue
            lines = msg.split("\n")
            self.messages.append(lines)
            return lines

    def wait_notify(self, line, timeout=10.0):
        """Read notify datagrams until one carries `line` (a full line, or
        a prefix ending in '='). Returns that datagram's lines."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            lines = self.next_notify(deadline, repr(line))
            for l in lines:
                if l == line or (line.endswith("=") and l.startswith(line)):
                    return lines

    def wait_notify_match(self, pattern, timeout=10.0):
        """Read notify datagrams until a line matches the regex; returns
        the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SLOW
        while True:
            for l in self.next_notify(deadline, "line matching %r" % pattern):
                m = rx.search(l)
                if m:
                    return m

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10.0):
        """Poll the daemon's stderr for a regex (no readiness signal exists
        for log lines), up to a deadline."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            m = rx.search(self.log())
            if m:
                return m
            time.sleep(0.02)
        raise AssertionError("log never matched %r; log:\n%s"
                             % (pattern, self.log()))

    def signal(self, sig):
        assert self.proc is not None and self.proc.pid > 1
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=20.0):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def status(self, key):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def rss_kb(self):
        return self.status("VmRSS")

    def exact_rss_kb(self):
        """Resident memory counted page by page (smaps_rollup). VmRSS is
        kept in per-CPU counters that may lag by dozens of pages: fine
        for megabytes, not for bytes per connection."""
        with open("/proc/%d/smaps_rollup" % self.proc.pid) as f:
            for line in f:
                if line.startswith("Rss:"):
                    return int(line.split()[1])
        raise KeyError("Rss")

    def hwm_kb(self):
        """Peak resident set size since the process started."""
        return self.status("VmHWM")

    def nfds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def fd_targets(self):
        """What echod's open fds point at. An fd the daemon closes
        between the listing and the readlink (a client's connection
        ending) is simply left out."""
        d = "/proc/%d/fd" % self.proc.pid
        out = []
        for fd in os.listdir(d):
            try:
                out.append(os.readlink(os.path.join(d, fd)))
            except FileNotFoundError:
                pass
        return out

    def cpu_seconds(self, tid=None):
        """User + system CPU of the process, or of its thread tid."""
        path = "/proc/%d/stat" % self.proc.pid if tid is None else \
            "/proc/%d/task/%d/stat" % (self.proc.pid, tid)
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def thread(self, name):
        """The id of echod's thread called name (echod-w0: worker 0)."""
        task = "/proc/%d/task" % self.proc.pid
        for tid in os.listdir(task):
            try:
                with open(os.path.join(task, tid, "comm")) as f:
                    if f.read().strip() == name:
                        return int(tid)
            except FileNotFoundError:
                pass
        raise KeyError(name)

    def awake_seconds(self, tid):
        """Time the thread spent running or runnable (waiting for a
        CPU), from schedstat: unlike CPU time, load elsewhere on the
        machine does not lower it."""
        with open("/proc/%d/task/%d/schedstat" % (self.proc.pid, tid)) as f:
            run, wait = f.read().split()[:2]
        return (int(run) + int(wait)) / 1e9

    def thread_state(self, tid):
        """R (running or runnable), S (sleeping), ... of a thread."""
        with open("/proc/%d/task/%d/stat" % (self.proc.pid, tid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0]

    def cleanup(self):
        self.kill()
        self.ns.close()
        if getattr(self, "logf", None):
            self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class TestCase(unittest.TestCase):
    deadline = 60

    def setUp(self):
        self.daemons = []
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(self.deadline * (3 if SANITIZE else 1))

    def tearDown(self):
        signal.alarm(0)
        for d in self.daemons:
            d.cleanup()

    def rng(self):
        """A random.Random for this test, seeded from $ECHOD_TEST_SEED (to
        replay a failure) or afresh; the seed is printed."""
        env = os.environ.get("ECHOD_TEST_SEED")
        seed = int(env) if env else random.SystemRandom().randrange(1 << 32)
        print("\n%s: seed %d (ECHOD_TEST_SEED replays it)" % (self.id(), seed))
        return random.Random(seed)

    def stall(self, client, port):
        """Push from client without reading until echod stops reading it:
        its sends stay blocked and echod's socket receive queue holds bytes
        echod leaves there (so it is paused, not merely slow). Returns
        echod's receive queue in bytes."""
        stalled = client.push_until_stall(stall=1.0 * SLOW)
        self.assertIsNone(client.error)
        self.assertTrue(stalled, "all %d bytes went in without the client "
                        "reading: echod's queue is unbounded" % client.sent)
        q = tcp_queues(port, client.sock.getsockname()[1])
        self.assertIsNotNone(q, "echod's end of the connection is gone")
        self.assertGreater(q[1], 0, "echod's receive queue is empty: it "
                           "did not stop reading")
        return q[1]

    def check_stalled_clients(self, open_client, first_bytes, slots,
                              timeout, echo_port):
        """The main thread's request/answer listeners (metrics, control
        socket): `slots` clients that send first_bytes and stall hold
        every slot, so one more is closed at once; echoes on echo_port
        meanwhile take < 0.5 s each; each stalled one is dropped,
        unanswered, after `timeout` seconds (+-). open_client() returns
        a connected socket."""
        stalled = []
        for _ in range(slots):
            s = open_client()
            s.settimeout(10 * SLOW)
            s.sendall(first_bytes)
            stalled.append(s)
        t0 = time.monotonic()
        extra = open_client()
        extra.settimeout(10 * SLOW)
        self.assertEqual(extra.recv(10), b"")
        extra.close()
        with tcp_from("127.0.0.2", echo_port) as e:
            for _ in range(50):
                a = time.monotonic()
                e.sendall(b"x" * 512)
                recv_exact(e, 512)
                self.assertLess(time.monotonic() - a, 0.5 * SLOW)
        for s in stalled:
            self.assertEqual(s.recv(100), b"")
            s.close()
        took = time.monotonic() - t0
        self.assertGreater(took, timeout - 1.0)
        self.assertLess(took, timeout + 3.0 * SLOW)

    def daemon(self, *a, start=True, **kw):
        d = Daemon(*a, **kw)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def run_echod(self, *args, timeout=10):
        """Run echod to completion (e.g. -t, -V); returns CompletedProcess."""
        return subprocess.run([ECHOD] + list(args), capture_output=True,
                              text=True, timeout=timeout)

"""Shared helpers for echod's integration tests.

Tests run the real binary ($ECHOD, default ./echod) on loopback with a
generated configuration, wait for READY=1 on a harness-owned NOTIFY_SOCKET
(never a sleep), and end only the processes they started, by PID.
Every test method runs under a hard deadline (TestCase.deadline seconds,
enforced with SIGALRM)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
ECHOD = os.environ.get("ECHOD") or os.path.join(ROOT, "echod")
SANITIZE = os.environ.get("SANITIZE") == "1"


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


def connect(port, host="127.0.0.1", timeout=10.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


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


class Daemon:
    """One echod process with its own config file and notify socket."""

    def __init__(self, conf=None, port=None, extra="", args=(), env=None,
                 wrapper=(), preexec_fn=None, pass_fds=()):
        self.dir = tempfile.mkdtemp(prefix="echod-t")
        self.port = port or free_port()
        if conf is None:
            conf = listen_conf(self.port) + extra
        self.conf_path = os.path.join(self.dir, "echod.conf")
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
        with open(self.conf_path, "w") as f:
            f.write(text)

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

    def wait_notify(self, line, timeout=10.0):
        """Read notify datagrams until one carries `line` (a full line, or
        a prefix ending in '='). Returns that datagram's lines."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r from echod within %.1fs; log:\n%s"
                                     % (line, timeout, self.log()))
            self.ns.settimeout(min(left, 0.2))
            try:
                msg = self.ns.recv(65536).decode()
            except socket.timeout:
                if self.proc.poll() is not None:
                    raise AssertionError("echod exited %s before %r; log:\n%s"
                                         % (self.proc.returncode, line,
                                            self.log()))
                continue
            lines = msg.split("\n")
            self.messages.append(lines)
            for l in lines:
                if l == line or (line.endswith("=") and l.startswith(line)):
                    return lines

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
        deadline = time.monotonic() + timeout
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

    def nfds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

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

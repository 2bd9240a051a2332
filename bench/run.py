#!/usr/bin/python3
"""echod benchmark: echod at workers = 1 and at workers = N (N = the CPUs
in the affinity mask) against the floor, a bare epoll echo loop
(refecho), all three on loopback and measured in the same interleaved run.

  make bench            (or: bench/run.py ECHOD ECHOLOAD REFECHO
                        [STAMPLOAD REFUDP])

See bench/README.md for the method and the figures. Scenarios (each run
bounded by -d SECS and a hard subprocess timeout):
  pingpong-64   200 connections, 64-byte messages, round trips per second
  pingpong-512  50 connections, 512-byte messages, round trips per second
  pingpong-16k  20 connections, 16 KiB messages, round trips per second
  stream        8 connections, 256 KiB in flight each, MiB/s echoed
  hold          HOLD idle connections: VmRSS growth per connection
  scrape-p99    SCRAPE_CONNS (1000) connections, 64-byte ping-pong, on
                echod (workers = 1) with a metrics listener: round-trip
                p50/p99/p99.9 with a GET /metrics every second and without
  stamp         echod's STAMP reflector (workers = 1) against a bare
                recvmmsg/sendmmsg UDP reflector (refudp, with and without
                timestamps): reflected packets per second with
                STAMP_WINDOW packets in flight per socket, then the
                residence time T3 - T2 at half echod's capacity, of
                echod as it is by default and with stamp_busy_poll
Each round runs every server once, the order rotated round by round
(ref w1 wN, w1 wN ref, wN ref w1, ...); RUNS rounds; medians per server.

Environment:
  RUNS=5 SECS=3 HOLD=10000   rounds, seconds per run, idle connections
  SCENARIOS=a,b              only these scenarios (names above, and
                             "spread")
  BASE=path/to/echod         another echod build as one more server,
                             column "base", at workers = 1: w1/base
  BASE_REV=REV               build that git revision of this tree into
                             the temporary directory (git archive | tar,
                             make -j2) and use it as BASE; needs git
  SCRAPE_SECS=5 SCRAPE_CONNS=1000
                             scrape-p99: seconds per run, connections
  STAMP_RATE=0 STAMP_SOCKETS=4 STAMP_WINDOW=32 STAMP_TICK_US=100
                             stamp: the residence run's packets per
                             second (0: half echod's capacity), the load's
                             sockets, packets in flight per socket (the
                             capacity runs), the rate sender's tick
  STAMP_BUSY_POLL=50         stamp: echod-bp's stamp_busy_poll (us)
  SYSCALLS=1                 count syscalls per message (0: skip);
                             SYSCALL_TOOL=strace forces the fallback
  SPREAD=1                   accepted connections per worker, socket-
                             activated (EPOLLEXCLUSIVE) against echod's
                             own SO_REUSEPORT sockets (0: skip)
  SPREAD_WORKERS="2 4" SPREAD_CONNS=1000 SPREAD_BURSTS=3
  REFN=1                     also refecho with N threads (SO_REUSEPORT, one
                             epoll loop each): the floor at N threads
  WORKERS_LIST="1 2 4 8"     scaling mode instead: msgs/s and CPU per
                             message of echod at each worker count
  LOADERS=1                  echoload processes per run (connections split)
  CLIENT_CPUS=LIST           pin loader i to the i-th CPU of LIST (taskset)
  SERVER_CPUS=LIST           pin the servers to LIST (taskset -c); N is
                             then the number of CPUs in LIST
"""
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RUNS = int(os.environ.get("RUNS", "5"))
SECS = int(os.environ.get("SECS", "3"))
HOLD = int(os.environ.get("HOLD", "10000"))
SYSCALLS = os.environ.get("SYSCALLS", "1") != "0"
SPREAD = os.environ.get("SPREAD", "1") != "0"
SPREAD_WORKERS = [int(w) for w in
                  os.environ.get("SPREAD_WORKERS", "2 4").split()]
SPREAD_CONNS = int(os.environ.get("SPREAD_CONNS", "1000"))
SPREAD_BURSTS = int(os.environ.get("SPREAD_BURSTS", "3"))
WORKERS_LIST = [int(w) for w in os.environ.get("WORKERS_LIST", "").split()]
LOADERS = max(1, int(os.environ.get("LOADERS", "1")))
CLIENT_CPUS = os.environ.get("CLIENT_CPUS", "")
SERVER_CPUS = os.environ.get("SERVER_CPUS", "")
ONLY = [s for s in os.environ.get("SCENARIOS", "").split(",") if s]
REFN = os.environ.get("REFN", "0") != "0"
BASE = os.environ.get("BASE", "")
BASE_REV = os.environ.get("BASE_REV", "")
SCRAPE_SECS = int(os.environ.get("SCRAPE_SECS", "5"))
SCRAPE_CONNS = int(os.environ.get("SCRAPE_CONNS", "1000"))
SCRAPE_SIZE = 64
SCRAPE_EVERY = 1.0  # seconds between two scrapes
STAMP_RATE = int(os.environ.get("STAMP_RATE", "0"))
STAMP_SOCKETS = int(os.environ.get("STAMP_SOCKETS", "4"))
STAMP_WINDOW = int(os.environ.get("STAMP_WINDOW", "32"))
STAMP_TICK_US = int(os.environ.get("STAMP_TICK_US", "100"))
STAMP_BUSY_POLL = int(os.environ.get("STAMP_BUSY_POLL", "50"))
RES_SERVERS = ("echod", "echod-bp", "bare-ts1")  # in the residence runs

# name, echoload arguments, unit of the rate, unit of work
SCENARIOS = [
    ("pingpong-64", ["-m", "pingpong", "-c", "200", "-s", "64"], "msg/s"),
    ("pingpong-512", ["-m", "pingpong", "-c", "50", "-s", "512"], "msg/s"),
    ("pingpong-16k", ["-m", "pingpong", "-c", "20", "-s", "16384"], "msg/s"),
    ("stream", ["-m", "stream", "-c", "8"], "MiB/s"),
]
# Key figure: server CPU per message at workers = N within this factor of
# workers = 1 (no contention tax), for these scenarios.
TAX_LIMIT = 1.10
TAX_SCENARIOS = ("pingpong-64", "pingpong-512")
RSS_TARGET = 128  # bytes per idle echod connection
# The counters and the histogram: w1 at least this fraction of base's
# msgs/s (base = the build without them, BASE or BASE_REV).
BASE_FLOOR = 0.97
# A scrape a second moves p99 round-trip latency by at most this factor.
SCRAPE_LIMIT = 1.05
# STAMP, echod at one worker: reflected packets per second, that over the
# bare reflector's, and the residence p99 at half its capacity.
STAMP_PPS = 100000
STAMP_RATIO = 0.80
STAMP_RES_P99_US = 50

STARTED = []  # every server process this script started, to end by PID


def cpu_list(text):
    """CPUs of a taskset-style list ("0-3,6")."""
    cpus = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            cpus.extend(range(int(a), int(b) + 1))
        elif part.strip():
            cpus.append(int(part))
    return cpus


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("server on port %d did not start" % port)
            time.sleep(0.01)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rq_wait_s(pid):
    """Time all threads of pid spent runnable but waiting for a CPU
    (schedstat), in seconds; 0 where the kernel keeps no schedstat."""
    ns = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                ns += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return ns / 1e9


def threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def ctx_switches(pid):
    """Voluntary + involuntary context switches of all threads of pid."""
    n = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if "ctxt_switches:" in line:
                        n += int(line.split()[1])
        except OSError:
            pass
    return n


class Server:
    """One server process, started here, ended by its PID."""

    def __init__(self, name, argv, port, stderr=None):
        self.name, self.port = name, port
        if SERVER_CPUS:
            argv = ["taskset", "-c", SERVER_CPUS] + argv
        self.errf = open(stderr, "w") if stderr else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=self.errf)
        STARTED.append(self)
        self.pid = self.proc.pid  # taskset and socket-activate exec

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if self.errf is not subprocess.DEVNULL:
            self.errf.close()
        if self in STARTED:
            STARTED.remove(self)


def echod_conf(tmp, name, port, workers, debug=False, mport=None):
    """mport: also a metrics listener (GET /metrics) on that port."""
    path = os.path.join(tmp, name + ".conf")
    listen = '{ address = "127.0.0.1"; port = %d; }' % port
    if mport:
        listen += (', { address = "127.0.0.1"; port = %d; '
                   'service = "metrics"; }' % mport)
    with open(path, "w") as f:
        f.write('listen = ( %s );\n'
                'workers = %d;\n'
                'max_connections = 100000;\nlog_level = "%s";\n'
                # every load client connects from 127.0.0.1
                'max_connections_per_source = 0;\n'
                'idle_timeout = 0;\nlisten_backlog = 4096;\n'
                % (listen, workers, "debug" if debug else "notice"))
    return path


def start_echod(tmp, echod, name, workers, mport=None):
    port = free_port()
    conf = echod_conf(tmp, name, port, workers, mport=mport)
    s = Server(name, [echod, "-c", conf], port)
    wait_port(port, s.proc)
    if mport:
        wait_port(mport, s.proc)
    return s


def build_base(tmp):
    """The echod of BASE_REV, built in tmp/base from `git archive` of this
    tree's repository (the working tree is not touched), or BASE as
    given, or None. Only BASE_REV needs git."""
    if BASE and BASE_REV:
        raise SystemExit("BASE and BASE_REV: set one of them")
    if BASE:
        if not os.access(BASE, os.X_OK):
            raise SystemExit("BASE=%s: not an executable" % BASE)
        return os.path.abspath(BASE)
    if not BASE_REV:
        return None
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not shutil.which("git"):
        raise SystemExit("BASE_REV needs git")
    r = subprocess.run(["git", "-C", top, "rev-parse", "--verify", "-q",
                        BASE_REV + "^{commit}"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit("BASE_REV=%s: not a commit of the git repository "
                         "at %s" % (BASE_REV, top))
    commit = r.stdout.strip()
    d = os.path.join(tmp, "base")
    os.mkdir(d)
    print("base: building %s (%s) in %s" % (BASE_REV, commit[:12], d),
          file=sys.stderr, flush=True)
    git = subprocess.Popen(["git", "-C", top, "archive", commit],
                           stdout=subprocess.PIPE)
    try:
        subprocess.run(["tar", "-x", "-C", d], stdin=git.stdout, check=True,
                       timeout=120)
    finally:
        git.stdout.close()
        git.wait(timeout=120)
    if git.returncode != 0:
        raise SystemExit("git archive %s failed" % commit)
    # A make of its own: not this make's jobserver or goals, but the same
    # CC and CFLAGS if they came in the environment.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    try:
        r = subprocess.run(["make", "-C", d, "-j2", "echod"], env=env,
                           capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise SystemExit("building BASE_REV=%s took over 900 s" % BASE_REV)
    if r.returncode != 0:
        raise SystemExit("building BASE_REV=%s failed:\n%s%s"
                         % (BASE_REV, r.stdout[-4000:], r.stderr[-4000:]))
    subj = subprocess.run(["git", "-C", top, "log", "-1", "--format=%s",
                           commit], capture_output=True, text=True,
                          timeout=60).stdout.strip()
    print("base: %s = %s \"%s\", built with make -j2 in a temporary "
          "directory\n" % (BASE_REV, commit[:12], subj))
    return os.path.join(d, "echod")


def start_ref(refecho, name="ref", nthreads=1):
    port = free_port()
    s = Server(name, [refecho, str(port), str(nthreads)], port)
    wait_port(port, s.proc)
    return s


def load(echoload, port, args, secs=None):
    """Run LOADERS echoload processes at once (connections split between
    them, each pinned to one CPU of CLIENT_CPUS if set); returns the summed
    rate and work (round trips, or bytes for stream)."""
    secs = secs or SECS
    argv = list(args)
    conns = int(argv[argv.index("-c") + 1])
    pins = cpu_list(CLIENT_CPUS) if CLIENT_CPUS else []
    procs = []
    for i in range(LOADERS):
        share = conns // LOADERS + (1 if i < conns % LOADERS else 0)
        if share == 0:
            continue
        a = list(argv)
        a[a.index("-c") + 1] = str(share)
        cmd = [echoload, "-p", str(port), "-d", str(secs)] + a
        if pins:
            cmd = ["taskset", "-c", str(pins[i % len(pins)])] + cmd
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    rate, work = 0.0, 0.0
    try:
        for p in procs:
            try:
                out, err = p.communicate(timeout=secs + 60)
            except subprocess.TimeoutExpired:
                raise SystemExit("echoload timed out")
            if p.returncode != 0:
                raise SystemExit("echoload failed: " + err)
            kv = dict(f.split("=", 1) for f in out.split() if "=" in f)
            if "MiB/s" in kv:
                rate += float(kv["MiB/s"])
                work += float(kv["bytes"]) / (1 << 20)  # MiB
            else:
                rate += float(kv["rtt/s"])
                work += float(kv["msgs"])
    finally:
        for p in procs:  # after a failure: the loaders still running
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=30)
    return rate, work


def measure(srv, echoload, args):
    """One timed run: (rate, server CPU us per message or per MiB)."""
    c0 = cpu_s(srv.pid)
    rate, work = load(echoload, srv.port, args)
    used = cpu_s(srv.pid) - c0
    return rate, used / work * 1e6


# ---- syscall counting ----

def syscall_counter():
    """'perf' when perf counts the raw_syscalls:sys_enter tracepoint here,
    else 'strace', else None; SYSCALL_TOOL=perf|strace forces one."""
    forced = os.environ.get("SYSCALL_TOOL")
    if forced in ("perf", "strace"):
        return forced
    if shutil.which("perf"):
        try:
            r = subprocess.run(["perf", "stat", "-x", ",", "-e",
                                "raw_syscalls:sys_enter", "true"],
                               capture_output=True, text=True, timeout=30)
            m = re.search(r"^(\d+),.*raw_syscalls:sys_enter", r.stderr,
                          re.M)
            if r.returncode == 0 and m and int(m.group(1)) > 0:
                return "perf"
        except (OSError, subprocess.TimeoutExpired):
            pass
    if shutil.which("strace"):
        return "strace"
    return None


def count_syscalls(tool, tmp, srv, echoload, args, run=None):
    """Syscalls (all, and epoll_wait) and context switches of every thread
    of srv during one load run, and the work of that run. perf stat -p
    and strace -f -p both follow all threads. run: a function doing the
    load run instead of echoload with args, returning its work."""
    out = os.path.join(tmp, "sys-%s.txt" % srv.name)
    if tool == "perf":
        cmd = ["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter",
               "-e", "syscalls:sys_enter_epoll_wait",
               "-o", out, "-p", str(srv.pid)]
    else:
        cmd = ["strace", "-f", "-c", "-o", out, "-p", str(srv.pid)]
    tracer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # let it attach (idle server: few syscalls)
        cs0 = ctx_switches(srv.pid)
        work = run() if run else load(echoload, srv.port, args)[1]
        cs = ctx_switches(srv.pid) - cs0
    finally:
        tracer.send_signal(signal.SIGINT)
        try:
            tracer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait(timeout=30)
    with open(out) as f:
        text = f.read()
    n, waits = None, 0
    if tool == "perf":
        m = re.search(r"^(\d+),.*raw_syscalls:sys_enter", text, re.M)
        n = int(m.group(1)) if m else None
        m = re.search(r"^(\d+),.*syscalls:sys_enter_epoll_wait", text, re.M)
        waits = int(m.group(1)) if m else 0
    else:
        for line in text.splitlines():
            t = line.split()
            if t and t[-1] == "total":
                n = int(t[3])
            elif t and t[-1] == "epoll_wait":
                waits = int(t[3])
    if n is None:
        raise SystemExit("could not read the syscall count:\n" + text)
    return n, waits, cs, work


# ---- reports ----

def fmt_rate(v):
    return "%.0f" % v if v >= 1000 else "%.1f" % v


def ratio_pair(a, b, ra):
    """"medians / median of per-round ratios" for a / b."""
    return "%.3f/%.3f" % (a / b, statistics.median(ra))


def interleaved(servers, echoload, scen):
    """RUNS rounds of every scenario, every server once per round, the
    order rotated each round. Returns {scenario: {server: [(rate, cpu)]}}."""
    res = {}
    names = [s.name for s in servers]
    for name, args, unit in scen:
        res[name] = {n: [] for n in names}
        for r in range(RUNS):
            k = r % len(servers)
            for srv in servers[k:] + servers[:k]:
                res[name][srv.name].append(measure(srv, echoload, args))
        print("  %s done" % name, file=sys.stderr, flush=True)
    return res


def table(title, scen, res, names, idx, unit_of, pairs, fmt):
    """A table of medians (column idx of the samples) plus ratio columns;
    pairs is a list of (a, b): a/b of the medians / median of the
    per-round ratios."""
    print(title)
    head = "%-13s %-7s" % ("scenario", "unit")
    head += "".join("%11s" % n for n in names)
    head += "".join("%14s" % ("%s/%s" % p) for p in pairs)
    print(head)
    meds = {}
    for name, _, unit in scen:
        row = "%-13s %-7s" % (name, unit_of(unit))
        m = {n: statistics.median(v[idx] for v in res[name][n])
             for n in names}
        meds[name] = m
        row += "".join("%11s" % fmt(m[n]) for n in names)
        for a, b in pairs:
            per_round = [x[idx] / y[idx] for x, y in
                         zip(res[name][a], res[name][b])]
            row += "%14s" % ratio_pair(m[a], m[b], per_round)
        print(row)
    print()
    return meds


def hold_rss(srv, echoload):
    """(VmRSS during - before) / HOLD, in bytes, on a fresh server."""
    time.sleep(0.2)
    before = rss_kb(srv.pid)
    h = subprocess.Popen([echoload, "-p", str(srv.port), "-m", "hold",
                          "-c", str(HOLD), "-d", "2"],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = h.stdout.readline()
        during = rss_kb(srv.pid)
        h.wait(timeout=120)
    finally:
        if h.poll() is None:
            h.kill()
            h.wait(timeout=30)
    if not line.startswith("holding"):
        raise SystemExit("hold failed on %s" % srv.name)
    return (during - before) * 1024 / HOLD, before, during


PER_WORKER = re.compile(r"per worker \(accepted/udp received\): (.*)$")


def spread_run(tmp, echod, echoload, workers, activated):
    """Accepted connections per worker after SPREAD_BURSTS pingpong runs
    of SPREAD_CONNS new connections each, from echod's debug log."""
    port = free_port()
    tag = "spread-%s-w%d" % ("act" if activated else "own", workers)
    conf = echod_conf(tmp, tag, port, workers, debug=True)
    log = os.path.join(tmp, tag + ".log")
    argv = [echod, "-f", "-c", conf]
    if activated:
        argv = ["systemd-socket-activate", "-l", "127.0.0.1:%d" % port] + argv
    srv = Server(tag, argv, port, stderr=log)
    try:
        if activated:
            # The listening socket is socket-activate's until the first
            # connection execs echod (same PID): wait for echod's log.
            wait_port(port, srv.proc)
            deadline = time.monotonic() + 10
            while True:
                with open(log) as f:
                    if " ready: " in f.read():
                        break
                if time.monotonic() > deadline or srv.proc.poll() is not None:
                    raise SystemExit("%s did not start" % tag)
                time.sleep(0.05)
        else:
            wait_port(port, srv.proc)
        for _ in range(SPREAD_BURSTS):
            load(echoload, port, ["-m", "pingpong", "-c", str(SPREAD_CONNS),
                                  "-s", "64"], secs=1)
        time.sleep(2.5)  # the debug line comes with the 1 s status tick
        last = None
        with open(log) as f:
            for line in f:
                m = PER_WORKER.search(line)
                if m:
                    last = m.group(1)
        if last is None:
            raise SystemExit("%s: no per-worker line in %s" % (tag, log))
        counts = [int(a) for a in re.findall(r"w\d+ (\d+)/\d+", last)]
        return counts
    finally:
        srv.stop()


def spread_report(tmp, echod, echoload):
    if not shutil.which("systemd-socket-activate"):
        print("spread: systemd-socket-activate not found, skipped\n")
        return
    print("Accepted connections per worker (%d bursts of %d new connections,"
          " 64-byte ping-pong 1 s each;\n+1 probe connection; from echod's"
          " debug line \"per worker (accepted/udp received)\")"
          % (SPREAD_BURSTS, SPREAD_CONNS))
    print("%-46s %-24s %9s" % ("server", "accepted per worker",
                               "max/mean"))
    for w in SPREAD_WORKERS:
        for activated in (True, False):
            counts = spread_run(tmp, echod, echoload, w, activated)
            mean = sum(counts) / len(counts)
            what = ("socket-activated (EPOLLEXCLUSIVE)" if activated
                    else "own SO_REUSEPORT sockets")
            print("%-46s %-24s %9.2f" % (
                "workers=%d %s" % (w, what),
                " ".join(str(c) for c in counts),
                max(counts) / mean if mean else 0))
            sys.stdout.flush()
    print()


# ---- modes ----

def compare(tmp, echod, echoload, refecho, n, base, stamp_tools):
    scen = [s for s in SCENARIOS if not ONLY or s[0] in ONLY]
    if scen:
        timed(tmp, echod, echoload, refecho, n, scen, base)
    if "scrape-p99" in ONLY or not ONLY:
        scrape_report(tmp, echod, echoload)
    if "stamp" in ONLY or not ONLY:
        if stamp_tools:
            stamp_report(tmp, echod, *stamp_tools)
        else:
            print("stamp: no stampload and refudp given (run.py ECHOD "
                  "ECHOLOAD REFECHO STAMPLOAD REFUDP); skipped\n")
    if "hold" in ONLY or not ONLY:
        hold_report(tmp, echod, echoload, refecho, n, base)
    if SPREAD and (not ONLY or "spread" in ONLY):
        spread_report(tmp, echod, echoload)


def timed(tmp, echod, echoload, refecho, n, scen, base):
    """The interleaved runs, the tax summary and the syscall counts."""
    wn = "w%d" % n
    servers = [start_ref(refecho), start_echod(tmp, echod, "w1", 1)]
    pairs = [("w1", "ref")]
    if base:
        # next to w1, so the two mostly run one after the other
        servers.append(start_echod(tmp, base, "base", 1))
        pairs.append(("w1", "base"))
    if n > 1:
        servers.append(start_echod(tmp, echod, wn, n))
        pairs += [(wn, "ref"), (wn, "w1")]
        if REFN:
            # refecho with N threads: the floor for N threads here
            servers.append(start_ref(refecho, "ref%d" % n, n))
            pairs += [("ref%d" % n, "ref"), (wn, "ref%d" % n)]
    names = [s.name for s in servers]
    print("echod threads (main + workers): %s\n" % ", ".join(
        "%s %d" % (s.name, threads(s.pid)) for s in servers[1:]))
    try:
        res = interleaved(servers, echoload, scen)
        table("Throughput, median of %d runs (ratios: of the medians / "
              "median of per-round ratios; higher is faster)" % RUNS,
              scen, res, names, 0, lambda u: u, pairs, fmt_rate)
        cpu = table("Server CPU (user+system, all threads) per message, "
                    "us (stream: per MiB); lower is better",
                    scen, res, names, 1,
                    lambda u: "us/MiB" if u == "MiB/s" else "us/msg",
                    pairs, lambda v: "%.2f" % v)
        taxed = [x for x in TAX_SCENARIOS if x in res and n > 1]
        if taxed:
            print("Contention tax: server CPU per message at workers=%d "
                  "over workers=1 (target <= %.2f)" % (n, TAX_LIMIT))
        for name in taxed:
            per_round = [x[1] / y[1] for x, y in
                         zip(res[name][wn], res[name]["w1"])]
            r = cpu[name][wn] / cpu[name]["w1"]
            print("  %-13s W=%d/W=1 CPU per message = %.3f (median of "
                  "per-round ratios %.3f)  %s" % (
                      name, n, r, statistics.median(per_round),
                      "ok" if r <= TAX_LIMIT else "OVER %.2f" % TAX_LIMIT))
            rn = "ref%d" % n
            if rn in res[name]:
                # the same split in the bare loop: the machine's share
                per_round = [x[1] / y[1] for x, y in
                             zip(res[name][rn], res[name]["ref"])]
                print("  %-13s floor %s/ref = %.3f (%.3f); echod %s/%s = "
                      "%.3f" % (name, rn, cpu[name][rn] / cpu[name]["ref"],
                                statistics.median(per_round), wn, rn,
                                cpu[name][wn] / cpu[name][rn]))
        if taxed and not REFN:
            print("  (REFN=1 adds refecho at %d threads: how much of this "
                  "the bare loop pays too)" % n)
        if taxed:
            print()
        if base:
            base_summary(scen, res, cpu)
        sys.stdout.flush()
        if SYSCALLS:
            tool = syscall_counter()
            if tool is None:
                print("Syscalls: neither perf nor strace works here; "
                      "skipped\n")
            else:
                print("Syscalls per message (stream: per MiB), all threads "
                      "of the server, one extra run each, counted with %s"
                      % ("perf stat -e raw_syscalls:sys_enter -p PID"
                         if tool == "perf" else "strace -f -c -p PID"))
                if tool == "strace":
                    print("(strace slows the run a lot and stops the "
                          "server at every syscall: only the syscall counts "
                          "per message matter, not its speed nor the "
                          "context switches)")
                print("and context switches (all threads, from /proc). "
                      "Each cell: syscalls / epoll_waits / context switches")
                print("%-13s %-7s" % ("scenario", "per") +
                      "".join("%24s" % x for x in names))
                for name, args, unit in scen:
                    row = "%-13s %-7s" % (name, "MiB" if unit == "MiB/s"
                                          else "msg")
                    for srv in servers:
                        cnt, waits, cs, work = count_syscalls(
                            tool, tmp, srv, echoload, args)
                        row += "%24s" % ("%.2f / %.2f / %.2f" % (
                            cnt / work, waits / work, cs / work))
                    print(row)
                    sys.stdout.flush()
                print()
    finally:
        for s in servers:
            s.stop()


def base_summary(scen, res, cpu):
    """w1 against base (the build without the counters): msgs/s and CPU
    per message, the ratio of the medians and the median of the per-round
    ratios."""
    print("Counters and histogram: w1 (this build) over base, workers = 1 "
          "(target: msgs/s ratio >= %.2f)" % BASE_FLOOR)
    for name, _, unit in scen:
        w1, b = res[name]["w1"], res[name]["base"]
        rate = statistics.median(x[0] for x in w1) / statistics.median(
            x[0] for x in b)
        rate_r = statistics.median(x[0] / y[0] for x, y in zip(w1, b))
        c = cpu[name]["w1"] / cpu[name]["base"]
        c_r = statistics.median(x[1] / y[1] for x, y in zip(w1, b))
        print("  %-13s w1/base %s = %.3f (median of per-round ratios %.3f)"
              "  %s;  CPU per %s = %.3f (%.3f)" % (
                  name, unit, rate, rate_r,
                  "ok" if rate >= BASE_FLOOR else "UNDER %.2f" % BASE_FLOOR,
                  "MiB" if unit == "MiB/s" else "message", c, c_r))
    print()


# ---- scrape-p99 ----

class Scraper(threading.Thread):
    """GET /metrics on port every SCRAPE_EVERY seconds until stop():
    keeps the time and size of each answer; anything but a 200 is kept
    in errors. Each scrape has a 10 s timeout."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.done = threading.Event()
        self.times, self.sizes, self.errors = [], [], []

    def run(self):
        while not self.done.wait(SCRAPE_EVERY):
            t0 = time.monotonic()
            c = http.client.HTTPConnection("127.0.0.1", self.port,
                                           timeout=10)
            try:
                c.request("GET", "/metrics")
                r = c.getresponse()
                body = r.read()
                if r.status == 200:
                    self.times.append(time.monotonic() - t0)
                    self.sizes.append(len(body))
                else:
                    self.errors.append("HTTP %d" % r.status)
            except (OSError, http.client.HTTPException) as e:
                self.errors.append(repr(e))
            finally:
                c.close()

    def stop(self):
        self.done.set()
        self.join(timeout=30)


def fd_room(n):
    """Raise the soft RLIMIT_NOFILE to the hard one (echoload and echod
    inherit it, and both raise their own too); fail if n connections
    plus a margin do not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n + 100:
        raise SystemExit("%d connections need RLIMIT_NOFILE above %d; the "
                         "hard limit is %d (ulimit -Hn)" % (n, n + 100, hard))
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def scrape_run(srv, echoload, mport, scrape):
    """One run of SCRAPE_CONNS ping-pong connections, with a scraper on
    mport if scrape. Returns echoload's figures plus the server's CPU per
    message and the scraper (or None)."""
    cmd = [echoload, "-p", str(srv.port), "-d", str(SCRAPE_SECS), "-m",
           "pingpong", "-c", str(SCRAPE_CONNS), "-s", str(SCRAPE_SIZE)]
    sc = Scraper(mport) if scrape else None
    c0 = cpu_s(srv.pid)
    if sc:
        sc.start()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=SCRAPE_SECS + 60)
    except subprocess.TimeoutExpired:
        raise SystemExit("echoload timed out")
    finally:
        if sc:
            sc.stop()
    used = cpu_s(srv.pid) - c0
    if r.returncode != 0:
        raise SystemExit("echoload failed: " + r.stderr)
    if sc and sc.errors:
        raise SystemExit("scrape-p99: %d scrape(s) failed: %s"
                         % (len(sc.errors), ", ".join(sc.errors[:5])))
    if sc and not sc.times:
        raise SystemExit("scrape-p99: no scrape during a run")
    kv = dict(f.split("=", 1) for f in r.stdout.split() if "=" in f)
    fig = {k: float(kv[k]) for k in ("rtt/s", "msgs", "p50_us", "p99_us",
                                    "p999_us", "max_us")}
    fig["cpu"] = used / fig["msgs"] * 1e6
    return fig, sc


def scrape_report(tmp, echod, echoload):
    """p99 round-trip latency of SCRAPE_CONNS ping-pong connections on
    echod (workers = 1, a metrics listener) with a GET /metrics every
    SCRAPE_EVERY s and without, the two runs back to back in each round,
    which goes first alternating; medians over RUNS rounds."""
    fd_room(SCRAPE_CONNS)
    mport = free_port()
    srv = start_echod(tmp, echod, "w1-metrics", 1, mport=mport)
    res = {True: [], False: []}
    scrapers = []
    try:
        for r in range(RUNS):
            for scrape in ((True, False) if r % 2 else (False, True)):
                fig, sc = scrape_run(srv, echoload, mport, scrape)
                res[scrape].append(fig)
                if sc:
                    scrapers.append(sc)
    finally:
        srv.stop()
    print("  scrape-p99 done", file=sys.stderr, flush=True)
    times = [t for sc in scrapers for t in sc.times]
    sizes = [b for sc in scrapers for b in sc.sizes]
    print("Scrape p99: %d connections, %d-byte ping-pong, %d s per run, "
          "echod workers = 1 with a metrics listener;\n\"with\": GET "
          "/metrics every %g s during the run, \"without\": none; the two "
          "back to back, medians of %d rounds"
          % (SCRAPE_CONNS, SCRAPE_SIZE, SCRAPE_SECS, SCRAPE_EVERY, RUNS))
    print("%-8s %10s %9s %9s %9s %9s %9s" % (
        "run", "msg/s", "p50 us", "p99 us", "p99.9 us", "max us", "us/msg"))
    for scrape in (False, True):
        m = {k: statistics.median(f[k] for f in res[scrape])
             for k in res[scrape][0]}
        print("%-8s %10.0f %9.0f %9.0f %9.0f %9.0f %9.2f" % (
            "with" if scrape else "without", m["rtt/s"], m["p50_us"],
            m["p99_us"], m["p999_us"], m["max_us"], m["cpu"]))
    w = [f["p99_us"] for f in res[True]]
    wo = [f["p99_us"] for f in res[False]]
    ratio = statistics.median(w) / statistics.median(wo)
    print("p99 with/without = %.3f (median of per-round ratios %.3f)  "
          "target <= %.2f  %s" % (
              ratio, statistics.median(x / y for x, y in zip(w, wo)),
              SCRAPE_LIMIT, "ok" if ratio <= SCRAPE_LIMIT
              else "OVER %.2f" % SCRAPE_LIMIT))
    print("per round, p99 us without/with (us/msg): %s" % ", ".join(
        "%.0f/%.0f (%.2f/%.2f)" % (y["p99_us"], x["p99_us"], y["cpu"],
                                  x["cpu"])
        for x, y in zip(res[True], res[False])))
    print("scrapes: %d in %d runs (%d to %d a run), every one HTTP 200; "
          "each took %.1f ms (median), %.1f ms (max), %d bytes (median)" % (
              len(times), len(scrapers),
              min(len(sc.times) for sc in scrapers),
              max(len(sc.times) for sc in scrapers),
              statistics.median(times) * 1e3, max(times) * 1e3,
              statistics.median(sizes)))
    print()
    sys.stdout.flush()


# ---- stamp ----

STAMP_LEN = 44  # unauthenticated STAMP test packet


def stamp_conf(tmp, name, port, busy_poll=0):
    """echod at workers = 1 with one STAMP listen entry on port, its reply
    limits at their maxima (the byte limits off), no control socket."""
    path = os.path.join(tmp, "%s.conf" % name)
    with open(path, "w") as f:
        f.write('listen = ( { address = "127.0.0.1"; port = %d; '
                'service = "stamp"; stamp_busy_poll = %d; '
                'udp_per_source_rate = 1000000; '
                'udp_per_source_burst = 1000000; '
                'udp_rate_limit = 1000000; udp_rate_burst = 1000000; '
                'udp_rate_limit_bytes = 0; '
                'udp_per_source_rate_bytes = 0; } );\n'
                'workers = 1;\ncontrol_socket = "";\n'
                'log_level = "notice";\n' % (port, busy_poll))
    return path


def wait_udp(port, proc, timeout=10):
    """Until a 44-octet STAMP packet to port comes back. A new socket (a
    new source port) for each try: echod answers no port of a service
    that answers datagrams itself, and one is in the ephemeral range."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.05)
            try:
                s.connect(("127.0.0.1", port))
                s.send(bytes(STAMP_LEN))
                if len(s.recv(2048)) >= STAMP_LEN:
                    return
            except OSError:  # refused (not bound yet) or the timeout
                pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("UDP server on port %d did not start" % port)


def start_stamp_servers(tmp, echod, refudp):
    """bare (refudp: datagrams back unchanged), bare-ts (refudp -t: kernel
    receive stamps, T2 and T3 written, one sendmmsg a batch), bare-ts1
    (refudp -t -s: T3 and a sendmsg per reply), echod (one stamp worker)
    and echod-bp (the same with stamp_busy_poll)."""
    servers = []
    for name, extra in (("bare", []), ("bare-ts", ["-t"]),
                        ("bare-ts1", ["-t", "-s"])):
        port = free_port()
        s = Server(name, [refudp] + extra + [str(port)], port)
        servers.append(s)
        wait_udp(port, s.proc)
    for name, bp in (("echod", 0), ("echod-bp", STAMP_BUSY_POLL)):
        port = free_port()
        s = Server(name, [echod, "-c", stamp_conf(tmp, name, port, bp)],
                   port)
        servers.append(s)
        wait_udp(port, s.proc)
    return servers


def stamp_run(stampload, srv, rate, secs=None):
    """One stampload run against srv at rate (0: capacity); its figures
    (numbers, or None for "na") plus the server's CPU per reflected
    packet, us ("cpu_pkt")."""
    secs = secs or SECS
    cmd = [stampload, "-p", str(srv.port), "-d", str(secs), "-r", str(rate),
           "-n", str(STAMP_SOCKETS), "-w", str(STAMP_WINDOW), "-t",
           str(STAMP_TICK_US)]
    if srv.name == "bare":
        cmd.append("-e")  # its replies are the requests unchanged
    if CLIENT_CPUS:
        cmd = ["taskset", "-c", str(cpu_list(CLIENT_CPUS)[0])] + cmd
    c0, w0 = cpu_s(srv.pid), rq_wait_s(srv.pid)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=secs + 60)
    except subprocess.TimeoutExpired:
        raise SystemExit("stampload timed out")
    used = cpu_s(srv.pid) - c0
    waited = rq_wait_s(srv.pid) - w0
    if r.returncode != 0:
        raise SystemExit("stampload failed: " + r.stderr)
    kv = dict(f.split("=", 1) for f in r.stdout.split() if "=" in f)
    fig = {k: (None if v == "na" else float(v)) for k, v in kv.items()
           if k != "mode"}
    if fig["bad"]:
        raise SystemExit("stampload: %d bad replies from %s: %s"
                         % (fig["bad"], srv.name, r.stdout))
    fig["cpu_pkt"] = used / fig["reflected"] * 1e6 if fig["reflected"] \
        else 0.0
    fig["rq_ms"] = waited * 1e3 / secs  # per second of the run
    fig["cpu_busy"] = used / secs          # the server's CPUs kept busy
    return fig


def stamp_rounds(servers, stampload, rate):
    """RUNS rounds, every server once a round, the order rotated."""
    res = {s.name: [] for s in servers}
    for r in range(RUNS):
        k = r % len(servers)
        for srv in servers[k:] + servers[:k]:
            res[srv.name].append(stamp_run(stampload, srv, rate))
    return res


def med(figs, key):
    vals = [f[key] for f in figs if f[key] is not None]
    return statistics.median(vals) if vals else None


def mark(ok):
    return "PASS" if ok else "UNDER"


def stamp_report(tmp, echod, stampload, refudp):
    """Capacity of echod's STAMP reflector at one worker against a bare
    recvmmsg/sendmmsg reflector, then echod's residence time at half its
    capacity (STAMP_RATE to fix the rate); see bench/README.md."""
    load0 = os.getloadavg()
    servers = start_stamp_servers(tmp, echod, refudp)
    by = {s.name: s for s in servers}
    resident = [by[n] for n in RES_SERVERS]
    try:
        # Busy polling changes nothing at capacity (the loop never
        # sleeps there): echod-bp is only in the residence runs.
        cap = stamp_rounds([s for s in servers if s.name != "echod-bp"],
                           stampload, 0)
        print("  stamp capacity done", file=sys.stderr, flush=True)
        med_pps = {n: med(cap[n], "pps") for n in cap}
        rate = STAMP_RATE or max(1000, int(med_pps["echod"] / 2 / 1000)
                                 * 1000)
        half = stamp_rounds(resident, stampload, rate)
        print("  stamp residence done", file=sys.stderr, flush=True)
        sys_rows = stamp_syscalls(tmp, [s for s in servers
                                        if s.name != "echod-bp"],
                                  stampload) if SYSCALLS else None
    finally:
        for s in servers:
            s.stop()
    load1 = os.getloadavg()
    print("STAMP reflector: %d-octet unauthenticated test packets from %d "
          "sockets (sessions), %d s per run, echod workers = 1;\n"
          "bare = refudp (recvmmsg/sendmmsg, batch 16, datagrams back "
          "unchanged); bare-ts = refudp -t (kernel receive\nstamps, T2 and "
          "T3 written, T3 once per batch); bare-ts1 = refudp -t -s (T3 and "
          "a sendmsg per reply);\nechod-bp = echod with stamp_busy_poll = %d; "
          "load average %.2f %.2f %.2f before, %.2f %.2f %.2f after"
          % ((STAMP_LEN, STAMP_SOCKETS, SECS, STAMP_BUSY_POLL) + load0 +
             load1))
    print("Capacity (stampload -r 0, %d packets in flight per socket), "
          "median of %d runs" % (STAMP_WINDOW, RUNS))
    print("%-8s %9s %9s %11s %9s %8s %9s" % (
        "server", "pkt/s", "us/pkt", "loader-cpu", "rtt p50", "lost",
        "rq ms/s"))
    for n in cap:
        print("%-8s %9.0f %9.2f %11.2f %9.0f %8.0f %9.1f" % (
            n, med_pps[n], med(cap[n], "cpu_pkt"), med(cap[n], "cpu"),
            med(cap[n], "rtt_p50_us"), sum(f["lost"] for f in cap[n]),
            med(cap[n], "rq_ms")))
    print("(us/pkt: the server's user+system CPU per reflected packet; "
          "loader-cpu: stampload's CPU over the\nelapsed time, near 1.00 "
          "when the load generator may be what limits the rate; rq ms/s: "
          "the server's\ntime runnable but waiting for a CPU, per second, "
          "from schedstat; lost: summed over the runs)")
    e = cap["echod"]
    for other in ("bare", "bare-ts", "bare-ts1"):
        rr = [x["pps"] / y["pps"] for x, y in zip(e, cap[other])]
        ratio = med_pps["echod"] / med_pps[other]
        cpu = med(cap[other], "cpu_pkt") / med(e, "cpu_pkt")
        target = "  target >= %.2f  %s (per-round: %s)" % (
            STAMP_RATIO, mark(ratio >= STAMP_RATIO),
            mark(statistics.median(rr) >= STAMP_RATIO)) \
            if other == "bare" else ""
        print("  echod/%-8s pkt/s = %.3f (median of per-round ratios %.3f);"
              " CPU per packet %s/echod = %.3f%s"
              % (other, ratio, statistics.median(rr), other, cpu, target))
    print("  echod pkt/s = %.0f  target >= %d  %s" % (
        med_pps["echod"], STAMP_PPS, mark(med_pps["echod"] >= STAMP_PPS)))
    print("  per round, pkt/s (rq ms/s) echod/bare/bare-ts/bare-ts1: %s"
          % ", ".join("/".join("%.0f (%.0f)" % (f["pps"], f["rq_ms"])
                               for f in fs)
                      for fs in zip(e, cap["bare"], cap["bare-ts"],
                                    cap["bare-ts1"])))
    print()
    print("Residence T3 - T2 at %d pkt/s (%s), sent every %d us, from the "
          "replies' timestamps, median of %d runs" % (
              rate, "STAMP_RATE" if STAMP_RATE else
              "half of echod's median capacity", STAMP_TICK_US, RUNS))
    print("%-8s %10s %10s %10s %9s %9s %8s %8s %9s %6s" % (
        "server", "p50 us", "p99 us", "max us", "rtt p50", "rtt p99",
        "lost", "skipped", "rq ms/s", "cpu"))
    for n in RES_SERVERS:
        f = half[n]
        print("%-8s %10.1f %10.1f %10.1f %9.0f %9.0f %8.0f %8.0f %9.1f "
              "%6.2f" % (
                  n, med(f, "res_p50_ns") / 1e3, med(f, "res_p99_ns") / 1e3,
                  med(f, "res_max_ns") / 1e3, med(f, "rtt_p50_us"),
                  med(f, "rtt_p99_us"), sum(x["lost"] for x in f),
                  sum(x["skipped"] for x in f), med(f, "rq_ms"),
                  med(f, "cpu_busy")))
    for n, bp in (("echod", 0), ("echod-bp", STAMP_BUSY_POLL)):
        p99 = med(half[n], "res_p99_ns") / 1e3
        print("  %s residence p99 = %.1f us (stamp_busy_poll = %d)  "
              "target < %d us  %s" % (n, p99, bp, STAMP_RES_P99_US,
                                      mark(p99 < STAMP_RES_P99_US)))
    print("  per round, p50/p99 us %s: %s" % (", ".join(RES_SERVERS), ", ".join(
        " ".join("%.1f/%.1f" % (x["res_p50_ns"] / 1e3, x["res_p99_ns"] / 1e3)
                 for x in xs)
        for xs in zip(*(half[n] for n in RES_SERVERS)))))
    print("  per round, rq ms/s %s: %s" % (", ".join(RES_SERVERS), ", ".join(
        " ".join("%.0f" % x["rq_ms"] for x in xs)
        for xs in zip(*(half[n] for n in RES_SERVERS)))))
    print("(bare-ts1 is the floor for stamping each reply alone; bare has "
          "no timestamps: stampload says res_*=na;\ncpu: the server's CPU "
          "time over the run's, 1.00 = one CPU kept busy)")
    if sys_rows:
        print("Syscalls per reflected packet, one extra capacity run each "
              "(%s); each cell: syscalls / epoll_waits / context switches"
              % sys_rows[0])
        print("  " + "   ".join("%s %s" % r for r in sys_rows[1:]))
    print()
    sys.stdout.flush()


def stamp_syscalls(tmp, servers, stampload):
    """[tool, (name, "s / w / c"), ...] or None without perf and strace."""
    tool = syscall_counter()
    if tool is None:
        return None
    rows = ["perf stat -p PID" if tool == "perf" else
            "strace -f -c -p PID: slow, only the counts matter"]
    for srv in servers:
        cnt, waits, cs, work = count_syscalls(
            tool, tmp, srv, None, None,
            run=lambda s=srv: stamp_run(stampload, s, 0)["reflected"])
        rows.append((srv.name, "%.2f / %.3f / %.3f" % (
            cnt / work, waits / work, cs / work)))
    return rows


def hold_report(tmp, echod, echoload, refecho, n, base):
    """RSS per idle connection of each server, a fresh one each."""
    wn = "w%d" % n
    print("RSS per idle connection: (VmRSS during - before) / %d, fresh "
          "server each (echod target <= %d B)" % (HOLD, RSS_TARGET))
    print("%-6s %8s  %s" % ("server", "B/conn", "VmRSS before -> during"))
    makers = [lambda: start_ref(refecho),
              lambda: start_echod(tmp, echod, "w1", 1)]
    if n > 1:
        makers.append(lambda: start_echod(tmp, echod, wn, n))
    if base:
        makers.append(lambda: start_echod(tmp, base, "base", 1))
    for make in makers:
        srv = make()
        try:
            per, before, during = hold_rss(srv, echoload)
        finally:
            srv.stop()
        note = ""
        if srv.name != "ref":
            note = "  ok" if per <= RSS_TARGET else "  OVER %d" % RSS_TARGET
        print("%-6s %8.0f  %dk -> %dk%s" % (srv.name, per, before,
                                             during, note))
        sys.stdout.flush()
    print()


def scaling(tmp, echod, echoload, refecho):
    """msgs/s and CPU per message of echod at each count of WORKERS_LIST
    (and refecho), interleaved the same way. For a machine with spare
    cores: pin the loaders apart from the servers (CLIENT_CPUS,
    SERVER_CPUS) so the load generator is not the bottleneck."""
    scen = [s for s in SCENARIOS if (s[0] in ONLY if ONLY
                                      else s[0].startswith("pingpong"))]
    servers = [start_ref(refecho)] + [
        start_echod(tmp, echod, "w%d" % w, w) for w in WORKERS_LIST]
    names = [s.name for s in servers]
    base = names[1]
    pairs = [(x, base) for x in names[2:]]
    print("Scaling: LOADERS=%d CLIENT_CPUS=%s SERVER_CPUS=%s\n" % (
        LOADERS, CLIENT_CPUS or "-", SERVER_CPUS or "-"))
    try:
        res = interleaved(servers, echoload, scen)
        table("Throughput, median of %d runs (ratios: of the medians / "
              "median of per-round ratios)" % RUNS,
              scen, res, names, 0, lambda u: u, pairs, fmt_rate)
        table("Server CPU per message, us (stream: per MiB)",
              scen, res, names, 1,
              lambda u: "us/MiB" if u == "MiB/s" else "us/msg",
              pairs, lambda v: "%.2f" % v)
    finally:
        for s in servers:
            s.stop()


def main():
    echod, echoload, refecho = sys.argv[1:4]
    stamp_tools = sys.argv[4:6] if len(sys.argv) >= 6 else None
    if SERVER_CPUS:
        n = len(cpu_list(SERVER_CPUS))
    else:
        n = len(os.sched_getaffinity(0))
    print("echod bench %s: %d CPU(s) in the affinity mask (%s), N = %d, "
          "RUNS=%d SECS=%d HOLD=%d LOADERS=%d\n" % (
              time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              len(os.sched_getaffinity(0)),
              ",".join(map(str, sorted(os.sched_getaffinity(0)))), n, RUNS,
              SECS, HOLD, LOADERS))
    sys.stdout.flush()
    tmp = tempfile.mkdtemp(prefix="echod-bench")
    try:
        if WORKERS_LIST:
            scaling(tmp, echod, echoload, refecho)
        else:
            compare(tmp, echod, echoload, refecho, n, build_base(tmp),
                    stamp_tools)
    finally:
        for s in list(STARTED):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""echod benchmark: echod against a bare epoll echo loop (refecho), both on
loopback, measured in the same run, alternating A B A B, median of RUNS.

  make bench            (or: bench/run.py ECHOD ECHOLOAD REFECHO)

Scenarios (each run bounded by -d seconds and a hard timeout):
  pingpong-64   200 connections, 64-byte messages, round trips per second
  pingpong-16k  20 connections, 16 KiB messages, round trips per second
  stream        8 connections, 256 KiB in flight each, MiB/s echoed
  hold          N idle connections: echod's VmRSS growth per connection
Prints one table; ratio = echod / refecho (higher is better for speed).
The second table is the server's own CPU time (user + system) per unit of
work, which a busy shared machine disturbs less than throughput does;
there a ratio below 1 means echod spent less CPU than the reference."""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(os.environ.get("RUNS", "5"))
SECS = int(os.environ.get("SECS", "3"))
HOLD = int(os.environ.get("HOLD", "10000"))


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
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(echoload, port, args):
    out = subprocess.run([echoload, "-p", str(port), "-d", str(SECS)] + args,
                         capture_output=True, text=True, timeout=SECS + 60)
    if out.returncode != 0:
        raise SystemExit("echoload failed: " + out.stderr)
    kv = dict(f.split("=", 1) for f in out.stdout.split() if "=" in f)
    return kv


def main():
    echod, echoload, refecho = sys.argv[1:4]
    tmp = tempfile.mkdtemp(prefix="echod-bench")
    ep, rp = free_port(), free_port()
    conf = os.path.join(tmp, "bench.conf")
    with open(conf, "w") as f:
        f.write('listen = ( { address = "127.0.0.1"; port = %d; } );\n'
                'max_connections = 100000;\nlog_level = "notice";\n'
                # every load client connects from 127.0.0.1
                'max_connections_per_source = 0;\n'
                'idle_timeout = 0;\n' % ep)
    procs = {
        "echod": subprocess.Popen([echod, "-c", conf],
                                  stderr=subprocess.DEVNULL),
        "refecho": subprocess.Popen([refecho, str(rp)]),
    }
    ports = {"echod": ep, "refecho": rp}
    try:
        for name, p in procs.items():
            wait_port(ports[name], p)
        scen = [
            ("pingpong-64", ["-m", "pingpong", "-c", "200", "-s", "64"],
             "rtt/s"),
            ("pingpong-16k", ["-m", "pingpong", "-c", "20", "-s", "16384"],
             "rtt/s"),
            ("stream", ["-m", "stream", "-c", "8"], "MiB/s"),
        ]
        print("%-14s %-6s %14s %14s %8s" % ("scenario", "unit", "echod",
                                           "refecho", "ratio"))
        cpu_rows = []
        for name, args, key in scen:
            vals = {"echod": [], "refecho": []}
            cost = {"echod": [], "refecho": []}
            ratios, cost_ratios = [], []
            for _ in range(RUNS):
                run = {}
                for srv in ("echod", "refecho"):
                    pid = procs[srv].pid
                    c0 = cpu_s(pid)
                    kv = load(echoload, ports[srv], args)
                    used = cpu_s(pid) - c0
                    rate = float(kv[key])
                    work = rate * float(kv["secs"])  # trips or MiB done
                    vals[srv].append(rate)
                    # CPU microseconds per round trip, or CPU ms per MiB.
                    per = used / work * (1e6 if key == "rtt/s" else 1e3)
                    cost[srv].append(per)
                    run[srv] = (rate, per)
                ratios.append(run["echod"][0] / run["refecho"][0])
                cost_ratios.append(run["echod"][1] / run["refecho"][1])
            print("%-14s %-6s %14.1f %14.1f %8.3f" % (
                name, key, statistics.median(vals["echod"]),
                statistics.median(vals["refecho"]), statistics.median(ratios)))
            cpu_rows.append((name, "us/rtt" if key == "rtt/s" else "ms/MiB",
                             statistics.median(cost["echod"]),
                             statistics.median(cost["refecho"]),
                             statistics.median(cost_ratios)))
            sys.stdout.flush()
        print("\n%-14s %-6s %14s %14s %8s" % ("server CPU", "unit", "echod",
                                             "refecho", "ratio"))
        for row in cpu_rows:
            print("%-14s %-6s %14.2f %14.2f %8.3f" % row)
        print()
        # Memory per held connection (userland RSS of each server).
        for name in ("echod", "refecho"):
            pid = procs[name].pid
            before = rss_kb(pid)
            h = subprocess.Popen([echoload, "-p", str(ports[name]), "-m",
                                  "hold", "-c", str(HOLD), "-d", "3"],
                                 stdout=subprocess.PIPE, text=True)
            line = h.stdout.readline()
            during = rss_kb(pid)
            h.wait(timeout=120)
            if not line.startswith("holding"):
                raise SystemExit("hold failed")
            print("hold-%-9s %-6s %14d %14s %8s" % (
                name, "B/conn", (during - before) * 1024 // HOLD,
                "rss %dk->%dk" % (before, during), ""))
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(timeout=30)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Echo checks for the system test, run in the box's network namespace.

  echo_client.py echo HOST PORT [WAIT]  send 256 KiB of random bytes, exit 0
                                        if the same bytes come back; retry
                                        refused connects for up to WAIT s
  echo_client.py refused HOST PORT      exit 0 if the connection is refused
  echo_client.py hold HOST PORT         connect, echo, print "held", wait
                                        for a line on stdin, echo again on
                                        the same connection, print "ok"
  echo_client.py udp HOST PORT          send datagrams of 1, 1472, 9000 and
                                        65507 random bytes over UDP, exit 0
                                        if each comes back the same

Every socket has a timeout and the whole run an alarm: it never hangs."""
import hashlib
import os
import signal
import socket
import struct
import sys
import time

SIZE = 256 * 1024


def connect(host, port, wait=0.0):
    deadline = time.monotonic() + wait
    while True:
        try:
            s = socket.create_connection((host, port), timeout=10)
            s.settimeout(10)
            return s
        except ConnectionRefusedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def echo_round(s, size=SIZE):
    data = os.urandom(size)
    got = bytearray()
    # Send and receive in slices, so neither side's buffers fill up.
    for off in range(0, size, 16384):
        s.sendall(data[off:off + 16384])
        while len(got) < off + 16384 and len(got) < size:
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("connection closed after %d of %d bytes"
                                 % (len(got), size))
            got += chunk
    if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
        raise SystemExit("echo differs")


def udp_round(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.connect((host, port))
        for size in (1, 1472, 9000, 65507):
            data = os.urandom(size)
            s.send(data)
            if s.recv(70000) != data:
                raise SystemExit("UDP echo of %d bytes differs" % size)


def stamp_round(host, port):
    """One STAMP test packet (RFC 8762 4.2.1): the reply has its length,
    the sender's sequence number and T2 <= T3."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.connect((host, port))
        s.send(struct.pack("!IQHH28x", 4242, 0, 1, 9))
        r = s.recv(1500)
        seq, t3, err, ssid, t2, sseq = struct.unpack("!IQHHQI", r[:28])
        if len(r) != 44 or sseq != 4242 or ssid != 9 or not t2 <= t3:
            raise SystemExit("bad STAMP reply %r" % r)
        print("  STAMP reply: T3 - T2 %.1f us, error estimate %04x" %
              ((t3 - t2) / 2**32 * 1e6, err))


def main():
    signal.alarm(28)
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "echo":
        wait = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
        with connect(host, port, wait) as s:
            echo_round(s)
    elif mode == "refused":
        try:
            socket.create_connection((host, port), timeout=10).close()
        except ConnectionRefusedError:
            return 0
        raise SystemExit("%s port %d answered" % (host, port))
    elif mode == "hold":
        with connect(host, port) as s:
            echo_round(s)
            print("held", flush=True)
            if sys.stdin.readline().strip() != "go":
                raise SystemExit("no go")
            echo_round(s)
            print("ok", flush=True)
    elif mode == "udp":
        udp_round(host, port)
    elif mode == "stamp":
        stamp_round(host, port)
    else:
        raise SystemExit("unknown mode " + mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The STAMP session-reflector (service = "stamp", RFC 8762 and RFC 8972),
spoken to over loopback with an independent codec: scapy's
scapy.contrib.stamp builds the Session-Sender packets and parses the
replies (the authenticated layout, which scapy lacks, is built here by
hand with hmac and hashlib). Checked: sequence numbers stateless and
stateful over many sessions; T2 <= T3, both inside the sender's send and
receive times; the sender's TTL (IPv4) and Hop Limit (IPv6) reflected;
SSID copied; PTP timestamps (Z, TAI) when asked for; the Class of
Service TLV's DSCP1 followed or not (stamp_honour_dscp); Extra Padding
copied byte-exact; an unknown TLV back with U,
a malformed one with M; Follow-Up Telemetry carrying the previous reply's
real send time; a 14-octet TWAMP-Light request answered with 44 octets;
authenticated mode with a good key (reply HMAC verified) and a wrong one
(no reply, counted); the rate limits, the low-port guard and its opt-in,
allow/deny; a reload changing the mode and the key; the counters and the
residence histogram; stamp_busy_poll keeping the worker awake while
packets come, and only then."""
import errno
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import struct
import time

from scapy.contrib.stamp import (STAMPSessionReflectorTestUnauthenticated as
                                 Reflector,
                                 STAMPSessionSenderTestUnauthenticated as
                                 Sender, STAMPTestTLV)
from scapy.layers.inet import UDP

import harness

NTP_EPOCH = 2208988800  # seconds from 1900 to 1970
FLAG_U, FLAG_M, FLAG_I = 0x80, 0x40, 0x20
KEY_A = "00112233445566778899aabbccddeeff"
KEY_B = "ffeeddccbbaa99887766554433221100f0e1d2c3"


def parse(data):
    """A reply's base packet, dissected by scapy (under a UDP header whose
    source port is STAMP's). scapy 2.5 cannot dissect the TLVs of a
    reply (its length_from needs a parent it does not have there), so
    TLVs are read with tlvs_of, one STAMPTestTLV at a time."""
    base = data[:44]
    return UDP(struct.pack("!HHHH", 862, 40000, 8 + len(base), 0) +
               base)[Reflector]


def ntp(ts):
    """scapy's NTP timestamp (seconds since 1900) as Unix seconds."""
    return float(ts) - NTP_EPOCH


def tlv(type_, value, flags=FLAG_U):
    """A TLV as a Session-Sender sends it (RFC 8972: U set)."""
    return bytes(STAMPTestTLV(flags=flags, type=type_, len=len(value),
                              value=value))


def tlvs_of(data, base=44):
    """(flags, type, value) of each TLV after the base, as scapy's
    STAMPTestTLV reads them."""
    out, off = [], base
    while off + 4 <= len(data):
        t = STAMPTestTLV(data[off:])
        out.append((int(t.flags), t.type, bytes(t.value)))
        off += 4 + t.len
    return out


def auth_request(key, seq, ssid=7, tlvs=b""):
    """RFC 8762 4.2.2: Sequence Number, MBZ (12), Timestamp, Error
    Estimate, SSID (RFC 8972), MBZ (68), HMAC over the first 96 octets;
    then tlvs, closed by an HMAC TLV (RFC 8972 4.8: over the sequence
    number and the TLVs before it) when there are any."""
    k = bytes.fromhex(key)
    ts = int((time.time() + NTP_EPOCH) * (1 << 32))
    head = struct.pack("!I12xQHH", seq, ts, 0x0001, ssid).ljust(96, b"\0")
    pkt = head + hmac.new(k, head, hashlib.sha256).digest()[:16]
    if tlvs:
        mac = hmac.new(k, head[:4] + tlvs, hashlib.sha256).digest()[:16]
        pkt += tlvs + tlv(8, mac)
    return pkt


class Stamp(harness.TestCase):
    deadline = 90

    def start(self, entry="", top="", host="127.0.0.1"):
        port = harness.free_port(host)
        conf = ('listen = ( { address = "%s"; port = %d; service = "stamp"; '
                '%s } );\n%s' % (host, port, entry, top))
        return self.daemon(conf=conf, port=port), port

    def sock(self, host="127.0.0.1", ttl=None, bind=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.settimeout(1.0 * harness.SLOW)
        if bind is not None:
            s.bind(bind)
        if ttl is not None and fam == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        elif ttl is not None:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        return s

    def ask(self, s, port, data, host="127.0.0.1"):
        """(reply or None, send time, receive time) in Unix seconds."""
        t0 = time.time()
        s.sendto(data, (host, port))
        try:
            r = s.recv(65536)
        except socket.timeout:
            return None, t0, None
        return r, t0, time.time()

    def stats(self, d):
        ans = d.control("stats json")
        self.assertTrue(ans.startswith(b"OK\n"), ans)
        return json.loads(ans[3:])

    def drops(self, d, reason):
        lsn = self.stats(d)["listeners"][0]
        return lsn["udp_datagrams_dropped_total"][reason]

    def check_times(self, rep, t0, t1):
        # 1 us of slack for the 2^-32 s fractions and the float clock.
        t2, t3 = ntp(rep.ts_rx), ntp(rep.ts)
        self.assertLessEqual(t2, t3)
        self.assertGreaterEqual(t2, t0 - 1e-6)
        self.assertLessEqual(t3, t1 + 1e-6)

    def test_stateless_many_sessions(self):
        d, port = self.start()
        rng = self.rng()
        socks = [self.sock(ttl=rng.choice([1, 37, 64, 201]))
                 for _ in range(12)]
        n = 0
        for s in socks:
            ttl = s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
            for _ in range(5):
                seq, ssid = rng.randrange(1 << 32), rng.randrange(1 << 16)
                req = bytes(Sender(seq=seq, ssid=ssid, ts=time.time() +
                                   NTP_EPOCH))
                self.assertEqual(len(req), 44)
                r, t0, t1 = self.ask(s, port, req)
                self.assertIsNotNone(r, "no reply")
                self.assertEqual(len(r), 44)
                rep = parse(r)
                self.assertEqual(rep.seq, seq)  # stateless: the sender's
                self.assertEqual(rep.seq_sender, seq)
                self.assertEqual(rep.ssid, ssid)
                self.assertEqual(rep.ttl_sender, ttl)
                # The sender's timestamp and error estimate come back.
                self.assertEqual(r[28:36], req[4:12])
                self.assertEqual(r[36:38], req[12:14])
                self.check_times(rep, t0, t1)
                n += 1
        st = self.stats(d)
        self.assertEqual(st["listeners"][0]["service"], "stamp")
        self.assertEqual(st["listeners"][0]["udp_datagrams_echoed_total"], n)
        self.assertEqual(st["stamp_residence_seconds"]["count"], n)

    def test_stateful_counts_per_session(self):
        d, port = self.start('stamp_mode = "stateful";')
        rng = self.rng()
        socks = [self.sock() for _ in range(6)]
        sessions = [(s, ssid) for s in socks for ssid in (1, 2)]
        for k in range(5):
            rng.shuffle(sessions)
            for s, ssid in sessions:
                seq = rng.randrange(1 << 32)
                r, t0, t1 = self.ask(s, port, bytes(Sender(seq=seq,
                                                           ssid=ssid)))
                rep = parse(r)
                self.assertEqual(rep.seq, k)  # its own count, from 0
                self.assertEqual(rep.seq_sender, seq)
                self.assertEqual(rep.ssid, ssid)
                self.check_times(rep, t0, t1)

    def test_tlvs(self):
        d, port = self.start()
        s = self.sock()
        pad = os.urandom(100)
        req = bytes(Sender(seq=1)) + tlv(1, pad) + tlv(200, b"abcd")
        r, _, _ = self.ask(s, port, req)
        self.assertEqual(len(r), len(req))
        got = tlvs_of(r)
        self.assertEqual(got[0], (0, 1, pad))  # understood, byte-exact
        self.assertEqual(got[1], (FLAG_U, 200, b"abcd"))
        # Malformed: a length past the end comes back with M, and the
        # bytes as they were.
        bad = bytes(Sender(seq=2)) + struct.pack("!BBH", FLAG_U, 1, 300) + \
            b"x" * 8
        r, _, _ = self.ask(s, port, bad)
        self.assertEqual(len(r), len(bad))
        self.assertTrue(r[44] & FLAG_M)
        self.assertEqual(r[45:], bad[45:])

    def test_followup_telemetry(self):
        d, port = self.start('stamp_mode = "stateful";')
        s = self.sock()
        fu = tlv(7, bytes(16))
        r1, t0, t1 = self.ask(s, port, bytes(Sender(seq=10, ssid=3)) + fu)
        (f1, ty1, v1), = tlvs_of(r1)
        self.assertEqual((f1, ty1), (0, 7))
        self.assertEqual(v1, bytes(16))  # no reply before the first
        rep1 = parse(r1)

        def second():
            r, _, _ = self.ask(s, port, bytes(Sender(seq=11, ssid=3)) + fu)
            return r
        # The kernel's transmit stamp of reply 0 is filed as it leaves;
        # the next reply carries it.
        r2 = second()
        (f2, ty2, v2), = tlvs_of(r2)
        seq, ts, mode = struct.unpack("!IQB", v2[:13])
        self.assertEqual(seq, parse(r1).seq)
        self.assertEqual(mode, 2)  # software (RFC 8972 section 5.5)
        sent = ts / float(1 << 32) - NTP_EPOCH
        self.assertGreaterEqual(sent, ntp(rep1.ts) - 1e-6)  # after T3
        self.assertLessEqual(sent, t1 + 1e-6)
        self.assertEqual(parse(r2).seq, 1)

    def test_forged_packets_do_not_touch_sessions(self):
        """Stateful and authenticated: a request with a bad HMAC is
        dropped before its session is looked at, so the Direct
        Measurement counters (RFC 8972 4.5) count only good ones."""
        port = harness.free_port()
        d = self.daemon(start=False, port=port, conf="")
        path = self.key_file(d, KEY_A)
        d.write_conf('listen = ( { address = "127.0.0.1"; port = %d; '
                     'service = "stamp"; stamp_mode = "stateful"; '
                     'stamp_key_file = "%s"; } );\n' % (port, path))
        d.start()
        s = self.sock()
        dm = tlv(5, bytes(12))
        for k in range(3):
            r, _, _ = self.ask(s, port, auth_request(KEY_A, 100 + k,
                                                     tlvs=dm))
            self.assertIsNotNone(r)
            (fl, ty, v), (hfl, hty, hv) = tlvs_of(r, base=112)
            self.assertEqual((fl, ty, hfl, hty), (0, 5, 0, 8))
            # S_TxC as sent; R_RxC and R_TxC: this one included.
            self.assertEqual(struct.unpack("!III", v), (0, k + 1, k + 1))
            self.assertEqual(struct.unpack("!I", r[:4])[0], k)
            mac = hmac.new(bytes.fromhex(KEY_A), r[:4] + r[112:112 + 16],
                           hashlib.sha256).digest()[:16]
            self.assertEqual(hv, mac)
            # A forged one with the same addresses, ports and SSID.
            self.assertIsNone(self.ask(s, port, auth_request(KEY_B, 7,
                                                             tlvs=dm))[0])
        self.assertEqual(self.drops(d, "stamp-auth"), 3)

    def test_low_ports_opt_in_and_reply_guard(self):
        """With stamp_reply_low_ports a sender on echod's own port (862,
        here the test's port on another loopback address) is answered,
        but never a packet shaped like a reply (a T2 where a request
        has zeros): two reflectors cannot bounce one."""
        d, port = self.start('stamp_reply_low_ports = true;')
        s = self.sock(bind=("127.0.0.2", port))
        r, _, _ = self.ask(s, port, bytes(Sender(seq=21)))
        self.assertEqual(parse(r).seq_sender, 21)
        self.assertIsNone(self.ask(s, port, r)[0])  # the reply sent back
        self.assertEqual(self.drops(d, "loop"), 1)
        d2, port2 = self.start()  # without the opt-in
        s2 = self.sock(bind=("127.0.0.2", port2))
        self.assertIsNone(self.ask(s2, port2, bytes(Sender(seq=22)))[0])
        self.assertEqual(self.drops(d2, "loop"), 1)

    def test_short_request_twamp_light(self):
        d, port = self.start()
        s = self.sock()
        req = bytes(Sender(seq=77))[:14]
        r, _, _ = self.ask(s, port, req)
        self.assertEqual(len(r), 44)
        self.assertEqual(parse(r).seq_sender, 77)
        r, _, _ = self.ask(s, port, req[:13])
        self.assertIsNone(r)
        self.assertEqual(self.drops(d, "stamp-short"), 1)

    def key_file(self, d, hexkey, name="key", mode=0o600):
        path = os.path.join(d.dir, name)
        with open(path, "w") as f:
            f.write(hexkey + "\n")
        os.chmod(path, mode)
        return path

    def test_authenticated(self):
        port = harness.free_port()
        d = self.daemon(start=False, port=port, conf="")
        path = self.key_file(d, KEY_A)
        d.write_conf('listen = ( { address = "127.0.0.1"; port = %d; '
                     'service = "stamp"; stamp_key_file = "%s"; } );\n'
                     % (port, path))
        d.start()
        s = self.sock(ttl=45)
        r, t0, t1 = self.ask(s, port, auth_request(KEY_A, 1234))
        self.assertIsNotNone(r)
        self.assertEqual(len(r), 112)
        mac = hmac.new(bytes.fromhex(KEY_A), r[:96], hashlib.sha256)
        self.assertEqual(r[96:112], mac.digest()[:16])
        self.assertEqual(struct.unpack("!I", r[48:52])[0], 1234)
        self.assertEqual(r[80], 45)
        # A wrong key: no answer, counted.
        r, _, _ = self.ask(s, port, auth_request(KEY_B, 1))
        self.assertIsNone(r)
        self.assertEqual(self.drops(d, "stamp-auth"), 1)
        # An unauthenticated packet is too short for this entry.
        r, _, _ = self.ask(s, port, bytes(Sender(seq=1)))
        self.assertIsNone(r)
        self.assertEqual(self.drops(d, "stamp-short"), 1)

    def test_key_file_refused(self):
        port = harness.free_port()
        d = self.daemon(start=False, port=port, conf="")
        for mode, text, why in ((0o644, KEY_A, "readable or writable by "
                                 "group or others"),
                                (0o600, "not-hex", "not hexadecimal"),
                                (0o600, "0011", "shorter than 32")):
            path = self.key_file(d, text, mode=mode)
            d.write_conf('listen = ( { address = "127.0.0.1"; port = %d; '
                         'service = "stamp"; stamp_key_file = "%s"; } );\n'
                         % (port, path))
            r = self.run_echod("-t", "-c", d.conf_path)
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertIn("listen[0].stamp_key_file: %s: " % path, r.stderr)
            self.assertIn(why, r.stderr)
        d.write_conf('listen = ( { address = "127.0.0.1"; port = %d; '
                     'service = "stamp"; protocol = "tcp"; } );\n' % port)
        r = self.run_echod("-t", "-c", d.conf_path)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("listen[0].protocol: stamp is UDP only", r.stderr)
        d.write_conf('listen = ( { address = "127.0.0.1"; port = %d; '
                     'udp_rate_limit = 5; } );\n' % port)
        r = self.run_echod("-t", "-c", d.conf_path)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("listen[0].udp_rate_limit: for UDP entries only",
                      r.stderr)

    def test_ipv6_hop_limit(self):
        if not harness.ipv6_loopback():
            self.skipTest("no IPv6 loopback")
        d, port = self.start(host="::1")
        s = self.sock(host="::1", ttl=33)
        r, t0, t1 = self.ask(s, port, bytes(Sender(seq=5, ssid=9)),
                             host="::1")
        rep = parse(r)
        self.assertEqual((rep.seq_sender, rep.ssid, rep.ttl_sender),
                         (5, 9, 33))
        self.check_times(rep, t0, t1)

    def test_rate_limit_of_the_entry(self):
        d, port = self.start('udp_per_source_rate = 5; '
                             'udp_per_source_burst = 5;')
        s = self.sock()
        s.settimeout(0.2 * harness.SLOW)
        for i in range(30):
            s.sendto(bytes(Sender(seq=i)), ("127.0.0.1", port))
        got = 0
        while True:
            try:
                s.recv(100)
                got += 1
            except socket.timeout:
                break
        self.assertGreaterEqual(got, 5)
        self.assertLessEqual(got, 7)  # the burst and what refilled
        self.assertEqual(self.drops(d, "per-source"), 30 - got)

    def test_low_port_guard_and_opt_in(self):
        if os.geteuid() != 0:
            self.skipTest("binding a port below 1024 needs root")
        d, port = self.start('allow = [ "127.0.0.1" ];')
        s = self.sock(bind=("127.0.0.1", 0))
        low = self.sock(bind=("127.0.0.1", 862))
        self.assertIsNotNone(self.ask(s, port, bytes(Sender(seq=1)))[0])
        self.assertIsNone(self.ask(low, port, bytes(Sender(seq=2)))[0])
        self.assertEqual(self.drops(d, "loop"), 1)
        other = self.sock(bind=("127.0.0.2", 0))
        self.assertIsNone(self.ask(other, port, bytes(Sender(seq=3)))[0])
        self.assertEqual(self.drops(d, "acl"), 1)
        low.close()
        d2, port2 = self.start('stamp_reply_low_ports = true;')
        low = self.sock(bind=("127.0.0.1", 862))
        r, _, _ = self.ask(low, port2, bytes(Sender(seq=4)))
        self.assertEqual(parse(r).seq_sender, 4)

    def test_reload_changes_mode_and_key(self):
        port = harness.free_port()
        d = self.daemon(start=False, port=port, conf="")
        a = self.key_file(d, KEY_A, "a")
        b = self.key_file(d, KEY_B, "b")
        conf = ('listen = ( { address = "127.0.0.1"; port = %d; '
                'service = "stamp"; stamp_key_file = "%s"; '
                'stamp_mode = "%s"; } );\n')
        d.write_conf(conf % (port, a, "stateless"))
        d.start()
        s = self.sock()
        r, _, _ = self.ask(s, port, auth_request(KEY_A, 500))
        self.assertEqual(struct.unpack("!I", r[:4])[0], 500)
        d.write_conf(conf % (port, b, "stateful"))
        d.signal(signal.SIGHUP)
        d.wait_notify("READY=1")
        self.assertIsNone(self.ask(s, port, auth_request(KEY_A, 501))[0])
        for k in range(3):
            r, _, _ = self.ask(s, port, auth_request(KEY_B, 900 + k))
            self.assertEqual(struct.unpack("!I", r[:4])[0], k)
            mac = hmac.new(bytes.fromhex(KEY_B), r[:96], hashlib.sha256)
            self.assertEqual(r[96:112], mac.digest()[:16])

    def test_class_of_service_dscp(self):
        honour, keep = harness.free_port(), harness.free_port()
        conf = ('listen = ( { address = "127.0.0.1"; port = %d; '
                'service = "stamp"; stamp_honour_dscp = true; }, '
                '{ address = "127.0.0.1"; port = %d; service = "stamp"; } '
                ');\n' % (honour, keep))
        self.daemon(conf=conf, port=honour)
        s = self.sock()
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 10 << 2)  # AF11
        s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        # RFC 8972 4.4: DSCP1 (46, EF) asked for, the rest zero.
        req = bytes(Sender(seq=9)) + tlv(4, bytes([46 << 2, 0, 0, 0]))
        for port, dscp, rp in ((honour, 46, 0), (keep, 10, 1)):
            s.sendto(req, ("127.0.0.1", port))
            r, anc, _, _ = s.recvmsg(2048, socket.CMSG_SPACE(4))
            tos = [c[2][0] for c in anc
                   if c[:2] == (socket.IPPROTO_IP, socket.IP_TOS)]
            self.assertEqual(tos, [dscp << 2], port)  # ECN Not-ECT
            flags, type_, v = tlvs_of(r)[0]
            self.assertEqual((flags, type_), (0, 4))
            self.assertEqual(v[0] >> 2, 46)  # DSCP1 as asked
            self.assertEqual((v[0] & 3) << 4 | v[1] >> 4, 10)  # DSCP2
            self.assertEqual(v[1] & 3, rp)  # RP: 0 followed, 1 not

    def test_ptp_timestamps(self):
        d, port = self.start('stamp_timestamp = "ptp";')
        s = self.sock()
        t0 = time.clock_gettime(time.CLOCK_TAI)
        r, _, _ = self.ask(s, port, bytes(Sender(seq=3, ssid=4)))
        t1 = time.clock_gettime(time.CLOCK_TAI)
        rep = parse(r)
        self.assertEqual((rep.seq_sender, rep.ssid), (3, 4))
        err = struct.unpack("!H", r[12:14])[0]
        self.assertTrue(err & 0x4000, "Z (PTP) not set: %#x" % err)
        # PTPv2 truncated: the low 32 bits of TAI seconds, nanoseconds.
        t3s, t3n = struct.unpack("!II", r[4:12])
        t2s, t2n = struct.unpack("!II", r[16:24])
        base = int(t0) - int(t0) % (1 << 32)
        t2, t3 = base + t2s + t2n / 1e9, base + t3s + t3n / 1e9
        self.assertLess(t2n, 10**9)
        self.assertLess(t3n, 10**9)
        self.assertLessEqual(t0 - 1e-6, t2)
        self.assertLessEqual(t2, t3)
        self.assertLessEqual(t3, t1 + 1e-6)
        if abs(time.clock_gettime(time.CLOCK_TAI) -
               time.clock_gettime(time.CLOCK_REALTIME)) < 1:
            # The kernel knows no TAI offset (no NTP daemon set it): the
            # times are UTC, so the reply says unsynchronised, and why.
            self.assertEqual(err, 0x7FFF)
            d.wait_log(r"STAMP: PTP timestamps, but the kernel does not "
                       r"know TAI - UTC")
        port2 = harness.free_port()
        d2 = self.daemon(start=False, port=port2, conf="")
        for entry, why in (('service = "stamp"; stamp_timestamp = "gps";',
                            'stamp_timestamp: expected "ntp" or "ptp"'),
                           ('protocol = "udp"; stamp_timestamp = "ptp";',
                            'stamp_timestamp: only for service = "stamp"')):
            d2.write_conf('listen = ( { address = "127.0.0.1"; port = %d; '
                          '%s } );\n' % (port2, entry))
            r = self.run_echod("-t", "-c", d2.conf_path)
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertIn(why, r.stderr)

    def test_busy_poll_only_while_answered_packets_come(self):
        busy, quiet = harness.free_port(), harness.free_port()
        conf = ('listen = ( { address = "127.0.0.1"; port = %d; '
                'service = "stamp"; stamp_busy_poll = %d; '
                'allow = [ "127.0.0.1" ]; }, '
                '{ address = "127.0.0.1"; port = %d; service = "stamp"; } '
                ');\nworkers = 1;\n')
        d = self.daemon(conf=conf % (busy, 10000, quiet), port=busy)
        s = self.sock()
        # A reply: the worker is in its loop, and so has its name.
        self.assertIsNotNone(self.ask(s, quiet, bytes(Sender(seq=0)))[0])
        w = d.thread("echod-w0")

        def session(port, src=s, answered=True):
            """A packet every 5 ms for 1 s: the share of that time the
            worker was running or waiting for a CPU (schedstat: so load
            on the machine does not change it), and how often it was
            seen running between packets."""
            awake, t0, running = d.awake_seconds(w), time.monotonic(), 0
            for i in range(200):
                if answered:
                    r, _, _ = self.ask(src, port, bytes(Sender(seq=i)))
                    self.assertEqual(parse(r).seq_sender, i)
                else:
                    src.sendto(bytes(Sender(seq=i)), ("127.0.0.1", port))
                time.sleep(0.005)  # the sender's pacing
                running += d.thread_state(w) == "R"
            return ((d.awake_seconds(w) - awake) / (time.monotonic() - t0),
                    running / 200)

        figs = {"quiet": session(quiet), "busy": session(busy)}
        # The packets stop, and 10 ms later so does the polling (a
        # polling worker is never asleep); the next second shows it
        # stays so.
        harness.wait_for(lambda: d.thread_state(w) == "S", 10,
                         "the worker asleep after the window")
        # Refused by allow: no reply, no window.
        figs["refused"] = session(busy, self.sock(bind=("127.0.0.2", 0)),
                                  answered=False)
        self.assertEqual(self.drops(d, "acl"), 200)
        # A reload turns it off.
        d.write_conf(conf % (busy, 0, quiet))
        d.signal(signal.SIGHUP)
        d.wait_notify("READY=1")
        figs["off"] = session(busy)
        print("\nworker awake / seen running, a packet every 5 ms: " +
              ", ".join("%s %.2f/%.2f" % (k, a, r)
                        for k, (a, r) in figs.items()))
        self.assertGreater(figs["busy"][0], 0.7)
        self.assertGreater(figs["busy"][1], 0.7)
        for k in ("quiet", "refused", "off"):
            self.assertLess(figs[k][0], 0.2, k)
            self.assertLess(figs[k][1], 0.3, k)

    def test_busy_poll_only_for_stamp(self):
        port = harness.free_port()
        d = self.daemon(start=False, port=port, conf="")
        d.write_conf('listen = ( { address = "127.0.0.1"; port = %d; '
                     'protocol = "udp"; stamp_busy_poll = 50; } );\n'
                     % port)
        r = self.run_echod("-t", "-c", d.conf_path)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertRegex(r.stderr, r":1: .*listen\[0\]\.stamp_busy_poll: "
                         r"only for service = \"stamp\"")
        d.write_conf('listen = ( { address = "127.0.0.1"; port = %d; '
                     'service = "stamp"; stamp_busy_poll = 10001; } );\n'
                     % port)
        r = self.run_echod("-t", "-c", d.conf_path)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("stamp_busy_poll", r.stderr)

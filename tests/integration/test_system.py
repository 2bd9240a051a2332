"""echod's systemd units, checked by systemd itself.

test_exposure: `systemd-analyze security --offline=true` scores the
shipped echod.service, alone and with the optional socket-only drop-in;
the figures are printed and must be <= 1.5.
test_install_points_units_at_sbindir: `make install` into a DESTDIR with
unusual paths gives units that name those paths.
test_under_systemd: tests/system/run.sh boots a real systemd as PID 1 in
private namespaces, installs echod there with `make install` and runs
tests/system/test_service.sh (start, echo, status, reload, journal,
watchdog, kill -9, stop, sysusers user, socket activation, UDP under the
sandbox and through a ListenDatagram= drop-in). It needs root
and namespaces; without them it is reported as skipped, with the reason."""
import os
import re
import shutil
import subprocess
import tempfile

import unittest

import harness

UNIT = os.path.join(harness.ROOT, "systemd", "echod.service")
DROPIN = os.path.join(harness.ROOT, "systemd", "echod-socket-only.conf")
RUN = os.path.join(harness.ROOT, "tests", "system", "run.sh")
MAX_EXPOSURE = 1.5


class SystemdUnits(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        if harness.TSAN:
            raise unittest.SkipTest("the ThreadSanitizer run covers the "
                                    "workers; the units are tested in the "
                                    "other runs")

    deadline = 420

    def exposure(self, unit, what):
        """systemd-analyze's overall exposure of `unit` (and the drop-ins
        in unit.d/ beside it), printed and checked against the limit."""
        r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                            "--threshold=%d" % (MAX_EXPOSURE * 10), unit],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for echod\.service: "
                      r"([0-9.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        print("\nexposure: systemd-analyze security --offline=true %s: %s "
              "(limit %.1f)" % (what, m.group(1), MAX_EXPOSURE), flush=True)
        self.assertLessEqual(float(m.group(1)), MAX_EXPOSURE)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr)
        return float(m.group(1))

    def test_exposure(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze not installed")
        full = self.exposure(UNIT, "systemd/echod.service")
        # With the optional socket-only drop-in: strictly better.
        d = tempfile.mkdtemp(prefix="echod-unit")
        self.addCleanup(shutil.rmtree, d, True)
        os.mkdir(os.path.join(d, "echod.service.d"))
        shutil.copy(UNIT, d)
        shutil.copy(DROPIN, os.path.join(d, "echod.service.d"))
        only = self.exposure(os.path.join(d, "echod.service"),
                             "with echod-socket-only.conf")
        self.assertLess(only, full)

    def test_install_points_units_at_sbindir(self):
        """make install rewrites the units for its own sbindir/sysconfdir
        and puts them where it was told."""
        dest = tempfile.mkdtemp(prefix="echod-inst")
        self.addCleanup(shutil.rmtree, dest, True)
        r = subprocess.run(
            ["make", "-s", "-C", harness.ROOT, "install", "DESTDIR=" + dest,
             "PREFIX=/opt/echod", "sysconfdir=/opt/echod/etc",
             "systemdunitdir=/units", "sysusersdir=/sysusers",
             "SANITIZE=" + ("1" if harness.SANITIZE else "")],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(dest, "units", "echod.service")) as f:
            service = f.read()
        self.assertIn("\nExecStart=/opt/echod/sbin/echod\n", service)
        self.assertNotIn("/usr/sbin/echod", service)
        confs = set(re.findall(r"\S*/etc/echod\.conf", service))
        self.assertEqual(confs, {"/opt/echod/etc/echod.conf"})
        for path, mode in (("opt/echod/sbin/echod", 0o755),
                           ("opt/echod/etc/echod.conf", 0o644),
                           ("units/echod.service", 0o644),
                           ("units/echod.socket", 0o644),
                           ("sysusers/echod.conf", 0o644),
                           ("opt/echod/share/doc/echod/examples/"
                            "echod-socket-only.conf", 0o644)):
            st = os.stat(os.path.join(dest, path))
            self.assertEqual(st.st_mode & 0o777, mode, path)
        with open(os.path.join(dest, "sysusers", "echod.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^u echod ")

    def test_under_systemd(self):
        # run.sh has its own hard limit (timeout -k 45 300 around the box).
        r = subprocess.run([RUN], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=400,
                           env=dict(os.environ, SANITIZE="1" if
                                    harness.SANITIZE else ""))
        print("\n" + r.stdout, end="", flush=True)
        if r.returncode == 77:
            m = re.search(r"^SKIP: (.*)$", r.stdout, re.M)
            self.skipTest(m.group(1) if m else "system test skipped")
        self.assertEqual(r.returncode, 0, "system test failed (see above)")
        self.assertRegex(r.stdout, r"step stop-socket-and-service: ok")

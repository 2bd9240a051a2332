"""echod's systemd units, checked by systemd itself.

test_exposure: `systemd-analyze security --offline=true` scores the
shipped echod.service; the figure is printed and must be <= 1.5.
test_under_systemd: tests/system/run.sh boots a real systemd as PID 1 in
private namespaces, installs echod there with `make install` and runs
tests/system/test_service.sh (start, echo, status, reload, journal,
watchdog, kill -9, stop, sysusers user, socket activation). It needs root
and namespaces; without them it is reported as skipped, with the reason."""
import os
import re
import shutil
import subprocess

import harness

UNIT = os.path.join(harness.ROOT, "systemd", "echod.service")
RUN = os.path.join(harness.ROOT, "tests", "system", "run.sh")
MAX_EXPOSURE = 1.5


class SystemdUnits(harness.TestCase):
    deadline = 420

    def test_exposure(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze not installed")
        r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                            "--threshold=%d" % (MAX_EXPOSURE * 10), UNIT],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for echod\.service: "
                      r"([0-9.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        print("\nexposure: systemd-analyze security --offline=true "
              "systemd/echod.service: %s (limit %.1f)" % (m.group(1),
                                                          MAX_EXPOSURE),
              flush=True)
        self.assertLessEqual(float(m.group(1)), MAX_EXPOSURE)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr)

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

"""The manual pages lint clean and document every command-line option.

Keys, defaults, ranges and exit codes are checked against the code by
tests/unit/test_docs.c; this file covers what only the built binary and
mandoc know: the options `echod --help` prints, and mandoc's warnings
(for every page in man/, echodctl.8 included; test_echodctl.py checks
that page's options and exit codes against echodctl)."""
import glob
import os
import re
import shutil
import subprocess

import harness

# Every page in man/, so a new page is linted without a change here.
PAGES = sorted(os.path.relpath(p, harness.ROOT) for p in
               glob.glob(os.path.join(harness.ROOT, "man", "*.[1-9]")))


def page(rel):
    with open(os.path.join(harness.ROOT, rel)) as f:
        return f.read()


class ManPages(harness.TestCase):
    deadline = 30

    def test_mandoc_lint_is_silent(self):
        self.assertIn("man/echodctl.8", PAGES)
        if shutil.which("mandoc") is None:
            self.skipTest("mandoc is not installed (Debian package mandoc)")
        for rel in PAGES:
            r = subprocess.run(["mandoc", "-Tlint", "-W", "warning",
                                os.path.join(harness.ROOT, rel)],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""),
                             "mandoc -Tlint -W warning %s" % rel)

    def test_every_help_option_is_documented(self):
        r = self.run_echod("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        # "  -c, --config FILE  ..." lines of the help text.
        opts = re.findall(r"^\s+-(\w), --([\w-]+)", r.stdout, re.M)
        self.assertGreaterEqual(len(opts), 6, r.stdout)
        man = page("man/echod.8")
        synopsis = man[man.index(".Sh SYNOPSIS"):man.index(".Sh DESCRIPTION")]
        flags = "".join(re.findall(r"Fl (\w+)", synopsis))
        for short, long_ in opts:
            # One option item names both spellings: ".It Fl c Ar file ,
            # Fl \-config Ar file" or ".It Fl t , Fl \-test".
            item = re.search(r"^\.It Fl %s\b.*, Fl \\-%s\b" % (short, long_),
                             man, re.M)
            self.assertIsNotNone(item, "echod.8 has no item for -%s, --%s"
                                 % (short, long_))
            self.assertIn(short, flags, "SYNOPSIS lacks -%s" % short)

    def test_pages_name_the_config_path_of_the_binary(self):
        r = self.run_echod("--help")
        m = re.search(r"default (/\S+)\)", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        for rel in PAGES:
            self.assertIn(".Pa %s" % m.group(1), page(rel), rel)

"""The source tarball, the .deb and the .rpm: built with `make dist`,
`make deb` and `make rpm` into a temporary DISTDIR (the tree stays clean),
then inspected: file lists with modes and owners, conffiles, maintainer
scripts, lintian and rpmlint, hardening-check, an rpm install into a
scratch root, and dpkg -i/-r/-P under a real systemd booted in private
namespaces (tests/system/box.sh). Nothing is installed on the host, and
the test checks that.

Skipped, with the reason, where a tool is missing or the tree is not a git
checkout, and under SANITIZE=1 (packages build their own binary with the
distribution's flags; the sanitizer build changes nothing here)."""
import glob
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import unittest

import harness

ROOT = harness.ROOT
with open(os.path.join(ROOT, "VERSION")) as _f:
    VERSION = _f.read().strip()
# The units the tree ships: the packages must carry exactly these.
UNITS = sorted(os.path.basename(p) for p in
               glob.glob(os.path.join(ROOT, "systemd", "*.service")) +
               glob.glob(os.path.join(ROOT, "systemd", "*.socket")))
BUILD_TIMEOUT = 300


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_env():
    """The environment for a nested make: drop what the outer `make check`
    passes down (MAKEFLAGS carries SANITIZE=1 and friends), so the package
    build sees only its own settings."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "SANITIZE",
              "ECHOD", "ECHODCTL", "B"):
        env.pop(k, None)
    return env


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout, **kw)


class Build:
    """Builds each artifact once per test run, in one temporary DISTDIR."""
    dir = None
    results = {}

    @classmethod
    def get(cls, target):
        if cls.dir is None:
            cls.dir = tempfile.mkdtemp(prefix="echod-pkg")
        if target not in cls.results:
            r = run(["make", "-C", ROOT, "--no-print-directory", target,
                     "DISTDIR=" + cls.dir], timeout=BUILD_TIMEOUT,
                    env=make_env())
            cls.results[target] = r
        r = cls.results[target]
        if r.returncode != 0:
            raise AssertionError("make %s failed (%d):\n%s\n%s" % (
                target, r.returncode, r.stdout[-6000:], r.stderr[-6000:]))
        return cls.dir

    @classmethod
    def cleanup(cls):
        if cls.dir is not None:
            shutil.rmtree(cls.dir, ignore_errors=True)
            cls.dir = None
            cls.results = {}


def need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    return "not installed: %s" % " ".join(missing) if missing else None


def in_git_checkout():
    return run(["git", "-C", ROOT, "rev-parse", "--is-inside-work-tree"],
               timeout=10).returncode == 0


def tearDownModule():
    Build.cleanup()


class PackageTest(harness.TestCase):
    deadline = 240
    tools = ()

    @classmethod
    def setUpClass(cls):
        if harness.SANITIZE:
            raise unittest.SkipTest(
                "packages build their own binary; nothing to sanitize here")
        if shutil.which("git") is None or not in_git_checkout():
            raise unittest.SkipTest(
                "make dist needs a git checkout")
        why = need(*cls.tools)
        if why:
            raise unittest.SkipTest(why)


class Dist(PackageTest):
    tools = ("git", "tar", "gzip")

    def test_tarball_holds_the_tree_under_one_prefix(self):
        d = Build.get("dist")
        path = os.path.join(d, "echod-%s.tar.gz" % VERSION)
        self.assertTrue(os.path.isfile(path), os.listdir(d))
        with tarfile.open(path) as t:
            names = t.getnames()
            prefix = "echod-%s/" % VERSION
            self.assertEqual([n for n in names if not n.startswith(prefix)],
                             [])
            self.assertEqual(t.extractfile(prefix + "VERSION").read()
                             .decode().strip(), VERSION)
            for m in t.getmembers():
                self.assertEqual((m.uid, m.gid), (0, 0), m.name)
        tracked = run(["git", "-C", ROOT, "ls-files"], timeout=10).stdout
        want = {prefix + f for f in tracked.split("\n")
                if f and os.path.exists(os.path.join(ROOT, f))}
        self.assertEqual(want - set(names), set(), "tracked files missing")
        for f in ("Makefile", "man/echod.8", "man/echodctl.8",
                  "ctl/echodctl.c", "packaging/debian/control",
                  "packaging/rpm/echod.spec", "conf/echod.conf",
                  "docs/design.md"):
            self.assertIn(prefix + f, names)

    def test_tarball_is_reproducible(self):
        d = Build.get("dist")
        path = os.path.join(d, "echod-%s.tar.gz" % VERSION)
        first = sha256(path)
        r = run(["make", "-C", ROOT, "--no-print-directory", "dist",
                 "DISTDIR=" + d], env=make_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256(path), first)

    def test_package_versions_match_VERSION(self):
        r = run(["dpkg-parsechangelog", "-l",
                 os.path.join(ROOT, "packaging/debian/changelog"), "-S",
                 "Version"], timeout=20) if shutil.which(
                     "dpkg-parsechangelog") else None
        if r is not None:
            self.assertEqual(r.stdout.strip(), VERSION)
        with open(os.path.join(ROOT, "packaging/rpm/echod.spec")) as f:
            spec = f.read()
        self.assertEqual(re.search(r"^Version:\s*(\S+)", spec, re.M)
                         .group(1), VERSION)


class Deb(PackageTest):
    tools = ("dpkg-buildpackage", "dh", "dpkg-deb")

    def deb(self):
        d = Build.get("deb")
        path = os.path.join(d, "echod_%s_%s.deb" % (
            VERSION, run(["dpkg", "--print-architecture"]).stdout.strip()))
        self.assertTrue(os.path.isfile(path), os.listdir(d))
        return path

    def control(self, member):
        r = run(["dpkg-deb", "-I", self.deb(), member])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_outputs_land_in_distdir(self):
        self.deb()
        names = os.listdir(Build.dir)
        for suffix in (".changes", ".buildinfo"):
            self.assertTrue([n for n in names if n.endswith(suffix)], names)
        self.assertFalse(os.path.exists(os.path.join(Build.dir, "deb")),
                         "build tree left behind")

    def test_files_modes_and_owners(self):
        r = run(["dpkg-deb", "-c", self.deb()])
        self.assertEqual(r.returncode, 0, r.stderr)
        files = {}
        for line in r.stdout.splitlines():
            f = line.split()
            files[f[5].lstrip(".")] = (f[0], f[1])
        self.assertTrue(all(o == "root/root" for _, o in files.values()))
        want = {
            "/usr/sbin/echod": "-rwxr-xr-x",
            "/usr/bin/echodctl": "-rwxr-xr-x",
            "/etc/echod.conf": "-rw-r--r--",
            "/usr/share/man/man8/echod.8.gz": "-rw-r--r--",
            "/usr/share/man/man8/echodctl.8.gz": "-rw-r--r--",
            "/usr/share/man/man5/echod.conf.5.gz": "-rw-r--r--",
            "/usr/share/doc/echod/copyright": "-rw-r--r--",
        }
        if os.path.exists(os.path.join(ROOT, "systemd/echod.sysusers")):
            want["/usr/lib/sysusers.d/echod.conf"] = "-rw-r--r--"
        unitdir = [p for p in ("/lib/systemd/system", "/usr/lib/systemd/system")
                   if p + "/" in files]
        self.assertEqual(len(unitdir), 1 if UNITS else 0, sorted(files))
        for u in UNITS:
            want["%s/%s" % (unitdir[0], u)] = "-rw-r--r--"
        # dh_compress compresses docs over 4 KiB.
        for doc in ("README.md", "design.md"):
            found = [p for p in ("/usr/share/doc/echod/" + doc,
                                 "/usr/share/doc/echod/%s.gz" % doc)
                     if p in files]
            self.assertEqual(len(found), 1, sorted(files))
            want[found[0]] = "-rw-r--r--"
        for path, mode in want.items():
            self.assertIn(path, files)
            self.assertEqual(files[path][0], mode, path)
        self.assertEqual(self.control("conffiles").split(),
                         ["/etc/echod.conf"])

    def test_installed_config_is_the_shipped_one(self):
        tmp = tempfile.mkdtemp(prefix="echod-deb")
        try:
            r = run(["dpkg-deb", "-x", self.deb(), tmp])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(sha256(os.path.join(tmp, "etc/echod.conf")),
                             sha256(os.path.join(ROOT, "conf/echod.conf")))
            exe = os.path.join(tmp, "usr/sbin/echod")
            r = run([exe, "-V"], timeout=10)
            self.assertEqual(r.stdout.strip(), "echod " + VERSION)
            r = run([exe, "-t", "-c", os.path.join(tmp, "etc/echod.conf")],
                    timeout=10)
            self.assertEqual(r.returncode, 0, r.stderr)
            ctl = os.path.join(tmp, "usr/bin/echodctl")
            r = run([ctl, "-V"], timeout=10)
            self.assertEqual(r.stdout.strip(), "echodctl " + VERSION)
            if shutil.which("hardening-check") is None:
                self.skipTest("hardening-check not installed (devscripts)")
            # Control flow integrity cannot pass on Debian 12: its startup
            # files carry no CET marking.
            for binary in (exe, ctl):
                r = run(["hardening-check", "--nocfprotection", binary],
                        timeout=30)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                for feature in ("Position Independent Executable: yes",
                                "Stack protected: yes",
                                "Fortify Source functions: yes",
                                "Read-only relocations: yes",
                                "Immediate binding: yes"):
                    self.assertIn(feature, r.stdout, binary)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_maintainer_scripts(self):
        if "echod.service" not in UNITS:
            self.skipTest("no systemd/echod.service in this tree")
        post = self.control("postinst")
        # The user exists before the unit is started.
        users = post.find("systemd-sysusers")
        enable = post.find("deb-systemd-helper enable 'echod.service'")
        start = post.find("deb-systemd-invoke $_dh_action 'echod.service'")
        self.assertTrue(0 <= users < enable < start, post)
        # Install starts, upgrade restarts.
        self.assertRegex(post, r'if \[ -n "\$2" \]; then\s+_dh_action=restart'
                         r'\s+else\s+_dh_action=start')
        # Only echod.service is enabled on a new install; echod.socket (the
        # other way to own port 7) is the administrator's choice.
        self.assertEqual(re.findall(
            r"was-enabled defaults to true[^\n]*\n\s*if deb-systemd-helper "
            r"--quiet was-enabled '([^']+)'", post), ["echod.service"])
        prerm = self.control("prerm")
        for u in UNITS:
            self.assertIn("deb-systemd-invoke stop '%s'" % u, prerm)
        postrm = self.control("postrm")
        for u in UNITS:
            self.assertIn("deb-systemd-helper purge '%s'" % u, postrm)
        depends = self.control("control")
        self.assertRegex(depends, r"Depends:.*systemd-sysusers")

    def test_lintian_reports_no_error_or_warning(self):
        if shutil.which("lintian") is None:
            self.skipTest("lintian not installed")
        self.deb()
        changes = glob.glob(os.path.join(Build.dir, "echod_%s_*.changes"
                                         % VERSION))
        self.assertEqual(len(changes), 1)
        # The .changes names the .debs, so this checks all of them too.
        r = run(["lintian", "--fail-on", "error,warning", "-I", "--pedantic",
                 changes[0]], timeout=180)
        tags = [line for line in r.stdout.splitlines()
                if re.match(r"^[EWIPX]: ", line)]
        print("\nlintian tags: %s" % (tags or "none"))
        self.assertEqual([t for t in tags if t[0] in "EW"], [])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class Rpm(PackageTest):
    tools = ("rpmbuild", "rpm")

    def rpm(self):
        d = Build.get("rpm")
        found = glob.glob(os.path.join(d, "echod-%s-*.rpm" % VERSION))
        self.assertEqual(len(found), 1, os.listdir(d))
        self.assertFalse(os.path.exists(os.path.join(d, "rpmbuild")),
                         "rpmbuild tree left behind")
        return found[0]

    def query(self, *args):
        r = run(["rpm", "-qp"] + list(args) + [self.rpm()])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_files_modes_owners_and_flags(self):
        out = self.query("--qf", "[%{FILEMODES:perms} %{FILEUSERNAME} "
                         "%{FILEGROUPNAME} %{FILEFLAGS:fflags}. "
                         "%{FILENAMES}\n]")
        files = {}
        for line in out.splitlines():
            mode, user, group, flags, path = line.split()
            files[path] = (mode, user, group, flags.rstrip("."))
        self.assertTrue(all(f[1:3] == ("root", "root") for f in files.values()))
        man = {p for p in files if p.startswith("/usr/share/man/")}
        self.assertEqual(len(man), 3, man)
        self.assertTrue(any(re.match(r"/usr/share/man/man8/echod\.8", p)
                            for p in man), man)
        self.assertTrue(any(re.match(r"/usr/share/man/man8/echodctl\.8", p)
                            for p in man), man)
        self.assertTrue(any(re.match(r"/usr/share/man/man5/echod\.conf\.5", p)
                            for p in man), man)
        want = {
            "/usr/sbin/echod": ("-rwxr-xr-x", ""),
            "/usr/bin/echodctl": ("-rwxr-xr-x", ""),
            "/etc/echod.conf": ("-rw-r--r--", "cn"),  # config(noreplace)
            "/usr/share/doc/echod-%s/README.md" % VERSION: ("-rw-r--r--", "d"),
            "/usr/share/doc/echod-%s/design.md" % VERSION: ("-rw-r--r--", "d"),
            "/usr/share/licenses/echod-%s/LICENSE" % VERSION:
                ("-rw-r--r--", "l"),
            "/usr/lib/sysusers.d/echod.conf": ("-rw-r--r--", ""),
        }
        for u in UNITS:
            want["/usr/lib/systemd/system/" + u] = ("-rw-r--r--", "")
        for path, (mode, flags) in want.items():
            self.assertIn(path, files)
            self.assertEqual((files[path][0], files[path][3]), (mode, flags),
                             path)
        self.assertEqual(self.query("-c").split(), ["/etc/echod.conf"])

    def test_scriptlets(self):
        out = self.query("--scripts")
        pre = out[out.index("preinstall"):out.index("postinstall")]
        self.assertIn("systemd-sysusers", pre)
        self.assertIn("u echod ", pre)
        self.assertRegex(out, r"postinstall scriptlet[^\n]*\n.*preset "
                         r"echod\.service")
        self.assertRegex(out, r"preuninstall scriptlet[^\n]*\n.*disable "
                         r"--now echod\.service")
        self.assertRegex(out, r"postuninstall scriptlet[^\n]*\n.*try-restart "
                         r"echod\.service")

    def test_rpmlint_reports_no_error(self):
        if shutil.which("rpmlint") is None:
            self.skipTest("rpmlint not installed")
        r = run(["rpmlint", "-c", os.path.join(ROOT, "packaging/rpm/"
                                               "rpmlint.toml"), self.rpm()],
                timeout=120)
        print("\nrpmlint: %s" % " | ".join(
            l for l in r.stdout.splitlines() if ": W: " in l or ": E: " in l
            or "packages and" in l))
        self.assertRegex(r.stdout, r"\b0 errors\b")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_install_into_scratch_root(self):
        if os.geteuid() != 0:
            self.skipTest("rpm --root needs root")
        root = tempfile.mkdtemp(prefix="echod-rpmroot")
        rpmq = ["rpm", "--root", root, "--dbpath", "/var/lib/rpm"]
        try:
            # Scriptlets would run chrooted into an empty root: --noscripts.
            r = run(rpmq + ["-i", "--nodeps", "--noscripts", self.rpm()])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(run(rpmq + ["-q", "echod"]).stdout.strip(),
                             "echod-%s-1.%s" % (VERSION, os.uname().machine))
            r = run(rpmq + ["-V", "--nodeps", "echod"])
            self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)
            conf = os.path.join(root, "etc/echod.conf")
            exe = os.path.join(root, "usr/sbin/echod")
            self.assertEqual(os.stat(exe).st_mode & 0o7777, 0o755)
            self.assertEqual(os.stat(os.path.join(
                root, "usr/bin/echodctl")).st_mode & 0o7777, 0o755)
            self.assertEqual(sha256(conf),
                             sha256(os.path.join(ROOT, "conf/echod.conf")))
            for u in UNITS:
                self.assertTrue(os.path.isfile(os.path.join(
                    root, "usr/lib/systemd/system", u)), u)
            self.assertTrue(os.path.isfile(os.path.join(
                root, "usr/lib/sysusers.d/echod.conf")))
            # %config(noreplace): a reinstall keeps the edited file, and
            # removal saves it as .rpmsave.
            with open(conf, "a") as f:
                f.write("max_connections = 77;\n")
            edited = sha256(conf)
            r = run(rpmq + ["-i", "--replacepkgs", "--nodeps", "--noscripts",
                            self.rpm()])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(sha256(conf), edited)
            r = run(rpmq + ["-e", "--nodeps", "--noscripts", "echod"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertFalse(os.path.exists(exe))
            self.assertEqual(sha256(conf + ".rpmsave"), edited)
        finally:
            shutil.rmtree(root, ignore_errors=True)


# What installing echod would create on a host: the box test must leave
# every one of these as it found it.
HOST_PATHS = ("/usr/sbin/echod", "/usr/bin/echodctl", "/etc/echod.conf",
              "/lib/systemd/system/echod.service",
              "/usr/lib/systemd/system/echod.service",
              "/usr/lib/sysusers.d/echod.conf",
              "/etc/systemd/system/multi-user.target.wants/echod.service",
              "/var/lib/dpkg/info/echod.list")


def host_state():
    state = {p: sha256(p) if os.path.isfile(p) else os.path.lexists(p)
             for p in HOST_PATHS}
    state["user echod"] = run(["getent", "passwd", "echod"],
                              timeout=10).stdout
    state["dpkg echod"] = run(["dpkg-query", "-W", "echod"],
                              timeout=10).stdout
    return state


class DebInBox(PackageTest):
    """dpkg -i/-r/-P of the .deb under systemd booted in private
    namespaces (tests/system/box.sh); the steps are in
    tests/system/test_deb.sh."""
    tools = ("dpkg-buildpackage", "dh", "dpkg-deb", "unshare", "nsenter",
             "setpriv")
    deadline = 400

    def test_install_reload_upgrade_remove_purge(self):
        box = os.path.join(ROOT, "tests/system/box.sh")
        steps = os.path.join(ROOT, "tests/system/test_deb.sh")
        deb = glob.glob(os.path.join(Build.get("deb"), "echod_%s_*.deb"
                                     % VERSION))
        self.assertEqual(len(deb), 1)
        before = host_state()
        payload = tempfile.mkdtemp(prefix="echod-payload")
        try:
            pkg = os.path.join(payload, "opt/echod-pkg")
            os.makedirs(pkg)
            shutil.copy(deb[0], os.path.join(pkg, "echod.deb"))
            # The upgrade: the same files under a higher version, so the
            # conffile is unchanged in the package and edited on disk.
            tree = os.path.join(payload, "tree")
            r = run(["dpkg-deb", "-R", deb[0], tree])
            self.assertEqual(r.returncode, 0, r.stderr)
            control = os.path.join(tree, "DEBIAN/control")
            with open(control) as f:
                text = f.read()
            with open(control, "w") as f:
                f.write(re.sub(r"(?m)^Version: .*$",
                               "Version: %s+upgrade1" % VERSION, text))
            r = run(["dpkg-deb", "--root-owner-group", "-b", tree,
                     os.path.join(pkg, "echod-upgrade.deb")])
            self.assertEqual(r.returncode, 0, r.stderr)
            shutil.rmtree(tree)
            r = run(["timeout", "-k", "45", "300", box, payload, steps],
                    timeout=360)
            print("\n" + r.stdout + r.stderr)
            if r.returncode == 77:
                self.skipTest(r.stdout.strip().splitlines()[-1])
            self.assertEqual(r.returncode, 0, "box test failed")
            self.assertIn("step deb-purge-removes-config: ok", r.stdout)
        finally:
            shutil.rmtree(payload, ignore_errors=True)
        self.assertEqual(host_state(), before, "the host changed")

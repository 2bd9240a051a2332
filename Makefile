# echod - RFC 862 echo daemon.
#
#   make            build ./echod and ./echodctl (the control client)
#   make run        install missing build dependencies, run echod in the
#                   foreground with conf/echod-dev.conf (127.0.0.1:7007)
#   make check      install missing dependencies, build, run every test
#   make check SANITIZE=1   the same under AddressSanitizer + UBSan
#   make check TSAN=1       unit and integration tests (4 workers) under
#                   ThreadSanitizer
#   make install    install binaries, config, man pages, systemd units
#   make lint       cppcheck + clang-tidy (fails on findings)
#   make fuzz       build the libFuzzer targets (clang-14) and run each for
#                   FUZZ_SECONDS (default 20)
#   make dist       source tarball $(DISTDIR)/echod-VERSION.tar.gz
#   make deb        Debian binary package from that tarball, in $(DISTDIR)
#   make rpm        RPM binary package from that tarball, in $(DISTDIR)
#
# Honours CC, CFLAGS, CPPFLAGS, LDFLAGS, PREFIX, DESTDIR, sbindir, bindir,
# sysconfdir, mandir, docdir, systemdunitdir, sysusersdir, INSTALL, DISTDIR.
# CI=true adds -Werror.

VERSION     := $(shell cat VERSION)
PREFIX      ?= /usr/local
sbindir     ?= $(PREFIX)/sbin
bindir      ?= $(PREFIX)/bin
sysconfdir  ?= /etc
datarootdir ?= $(PREFIX)/share
mandir      ?= $(datarootdir)/man
docdir      ?= $(datarootdir)/doc/echod
PKG_CONFIG  ?= pkg-config
# Where systemd looks for units and sysusers.d files; systemd's own .pc file
# knows (on Debian 12: /lib/systemd/system and /usr/lib/sysusers.d).
systemdunitdir ?= $(or $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir \
                  systemd 2>/dev/null),$(PREFIX)/lib/systemd/system)
sysusersdir ?= $(or $(shell $(PKG_CONFIG) --variable=sysusersdir systemd \
               2>/dev/null),$(PREFIX)/lib/sysusers.d)
INSTALL     ?= install
PYTHON      ?= /usr/bin/python3
DISTDIR     ?= dist

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes \
           -Wstrict-prototypes -Wpointer-arith -Wcast-align -Wundef
ifeq ($(CI),true)
WARN    += -Werror
endif

ifeq ($(SANITIZE),1)
B       := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=all
CFLAGS  := -O1 -g
ECHOD   := $(B)/echod
ECHODCTL := $(B)/echodctl
TEST_SANITIZE := 1
else ifeq ($(TSAN),1)
# ThreadSanitizer: the workers, their mailboxes and the shared limits.
B       := build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
CFLAGS  := -O1 -g
ECHOD   := $(B)/echod
ECHODCTL := $(B)/echodctl
TEST_SANITIZE := tsan
else
B       := build
SANFLAGS :=
ECHOD   := echod
ECHODCTL := echodctl
TEST_SANITIZE :=
endif

DEPS_CFLAGS := $(shell $(PKG_CONFIG) --cflags libconfig libsystemd nettle 2>/dev/null)
DEPS_LIBS   := $(shell $(PKG_CONFIG) --libs libconfig libsystemd nettle 2>/dev/null)
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

ALL_CPPFLAGS := -D_GNU_SOURCE -DECHOD_VERSION='"$(VERSION)"' \
                -DECHOD_CONF_PATH='"$(sysconfdir)/echod.conf"' $(CPPFLAGS)
ALL_CFLAGS   := -std=gnu11 -pthread $(WARN) $(SANFLAGS) $(DEPS_CFLAGS) \
                $(CFLAGS)
ALL_LDFLAGS  := -pthread $(SANFLAGS) $(LDFLAGS)

# Objects depend on the flags they were built with: `make install
# sysconfdir=/x` after `make` must rebuild, or the binary would still read
# the old default config path. $(B)/flags changes only when they do.
FLAGS_NOW := $(strip $(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS))
ifneq ($(FLAGS_NOW),$(strip $(shell cat $(B)/flags 2>/dev/null)))
$(shell mkdir -p $(B))
$(file >$(B)/flags,$(FLAGS_NOW))
endif

SRCS := $(wildcard src/*.c)
LIB_OBJS := $(patsubst src/%.c,$(B)/%.o,$(filter-out src/main.c,$(SRCS)))
HDRS := $(wildcard src/*.h)

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))
UNIT_HDRS  := $(wildcard tests/unit/*.h)

# Fault injection: libc calls a unit test replaces with __wrap_*.
WRAP_test_listener := -Wl,--wrap=accept4
WRAP_test_outq     := -Wl,--wrap=sendmsg,--wrap=malloc
WRAP_test_log      := -Wl,--wrap=clock_gettime,--wrap=syslog,--wrap=__syslog_chk
WRAP_test_conn     := -Wl,--wrap=clock_gettime,--wrap=send,--wrap=sendmsg
WRAP_test_peers    := -Wl,--wrap=calloc,--wrap=malloc,--wrap=realloc
WRAP_test_udp      := -Wl,--wrap=sendmmsg,--wrap=clock_gettime
WRAP_test_srckey   := -Wl,--wrap=getrandom
WRAP_test_stamp    := -Wl,--wrap=adjtimex

.PHONY: all run check check-unit check-integration check-headers deps \
        deps-build install uninstall lint format clean dist deb rpm \
        fuzz fuzz-build

all: $(ECHOD) $(ECHODCTL)

$(B)/%.o: src/%.c $(HDRS) VERSION $(B)/flags | $(B)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libechod.a: $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(ECHOD): $(B)/main.o $(B)/libechod.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DEPS_LIBS)

# echodctl, the control socket's client: one file of its own (ctl/), no
# part of libechod.a and no library beyond libc.
$(B)/ctl/echodctl.o: ctl/echodctl.c VERSION $(B)/flags | $(B)/ctl
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(ECHODCTL): $(B)/ctl/echodctl.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^

$(B) $(B)/tests $(B)/ctl:
	mkdir -p $@

$(B)/tests/%: tests/unit/%.c $(B)/libechod.a $(HDRS) $(UNIT_HDRS) | $(B)/tests
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Isrc \
	    -o $@ $< $(B)/libechod.a $(ALL_LDFLAGS) $(WRAP_$*) \
	    $(CMOCKA_LIBS) $(DEPS_LIBS)

# Every header compiles on its own.
check-headers:
	@for h in $(HDRS); do \
	    echo '#include "'$$h'"' | $(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) \
	        -I. -fsyntax-only -x c - || exit 1; \
	done

deps-build:
	@tools/deps.sh build

deps:
	@tools/deps.sh check

run: deps-build
	$(MAKE) $(ECHOD) $(ECHODCTL)
	./$(ECHOD) -f -c conf/echod-dev.conf

# The fuzz smoke (FUZZ_CHECK_SECONDS per target) runs when FUZZ_CC can
# build a libFuzzer target; tests/run.sh counts it as skipped otherwise.
# TSAN=1 runs the unit tests and the integration suite at 4 workers
# (ECHOD_TEST_WORKER_COUNTS) under ThreadSanitizer; no fuzz smoke.
check: deps
	$(MAKE) $(ECHOD) $(ECHODCTL) $(UNIT_BINS) check-headers
	@fz=$(FB); fuzz/run.sh probe $(FUZZ_CC) || fz=; \
	[ "$(TEST_SANITIZE)" = tsan ] && fz=; \
	if [ -n "$$fz" ]; then $(MAKE) fuzz-build || exit 1; fi; \
	echo "tests/run.sh $(UNIT_BINS)"; \
	ECHOD=$(abspath $(ECHOD)) ECHODCTL=$(abspath $(ECHODCTL)) \
	    B=$(B) PYTHON=$(PYTHON) \
	    SANITIZE=$(TEST_SANITIZE) FUZZ_DIR=$$fz \
	    FUZZ_SECONDS=$(FUZZ_CHECK_SECONDS) FUZZ_CC=$(FUZZ_CC) \
	    $(if $(filter tsan,$(TEST_SANITIZE)),ECHOD_TEST_WORKER_COUNTS=4) \
	    tests/run.sh $(UNIT_BINS)

# The units in systemd/ name /usr/sbin/echod and /etc/echod.conf, the
# packaged paths; sed points them at this install's sbindir and sysconfdir.
UNIT_SED := -e 's|/usr/sbin/echod|$(sbindir)/echod|g' \
            -e 's|/etc/echod\.conf|$(sysconfdir)/echod.conf|g'
UNITS    := $(notdir $(wildcard systemd/*.service systemd/*.socket))
SYSUSERS := $(wildcard systemd/echod.sysusers)

# An existing configuration file is never overwritten.
install: $(ECHOD) $(ECHODCTL)
	$(INSTALL) -d $(DESTDIR)$(sbindir) $(DESTDIR)$(bindir) \
	    $(DESTDIR)$(sysconfdir) \
	    $(DESTDIR)$(mandir)/man5 $(DESTDIR)$(mandir)/man8 \
	    $(if $(UNITS),$(DESTDIR)$(systemdunitdir)) \
	    $(if $(SYSUSERS),$(DESTDIR)$(sysusersdir))
	$(INSTALL) -m 0755 $(ECHOD) $(DESTDIR)$(sbindir)/echod
	$(INSTALL) -m 0755 $(ECHODCTL) $(DESTDIR)$(bindir)/echodctl
	@if [ -e $(DESTDIR)$(sysconfdir)/echod.conf ]; then \
	    echo "keeping the existing $(DESTDIR)$(sysconfdir)/echod.conf"; \
	else \
	    echo "$(INSTALL) -m 0644 conf/echod.conf $(DESTDIR)$(sysconfdir)/echod.conf"; \
	    $(INSTALL) -m 0644 conf/echod.conf $(DESTDIR)$(sysconfdir)/echod.conf; \
	fi
	$(INSTALL) -m 0644 man/echod.8 $(DESTDIR)$(mandir)/man8/echod.8
	$(INSTALL) -m 0644 man/echodctl.8 $(DESTDIR)$(mandir)/man8/echodctl.8
	$(INSTALL) -m 0644 man/echod.conf.5 $(DESTDIR)$(mandir)/man5/echod.conf.5
	for u in $(UNITS); do \
	    sed $(UNIT_SED) systemd/$$u > $(DESTDIR)$(systemdunitdir)/$$u.tmp && \
	    chmod 0644 $(DESTDIR)$(systemdunitdir)/$$u.tmp && \
	    mv -f $(DESTDIR)$(systemdunitdir)/$$u.tmp \
	        $(DESTDIR)$(systemdunitdir)/$$u || exit 1; \
	done
ifneq ($(SYSUSERS),)
	$(INSTALL) -m 0644 $(SYSUSERS) $(DESTDIR)$(sysusersdir)/echod.conf
endif
	$(INSTALL) -d $(DESTDIR)$(docdir)/examples
	$(INSTALL) -m 0644 systemd/echod-socket-only.conf \
	    systemd/echod-stamp-clock.conf $(DESTDIR)$(docdir)/examples

uninstall:
	rm -f $(DESTDIR)$(sbindir)/echod $(DESTDIR)$(mandir)/man8/echod.8 \
	    $(DESTDIR)$(bindir)/echodctl $(DESTDIR)$(mandir)/man8/echodctl.8 \
	    $(DESTDIR)$(mandir)/man5/echod.conf.5 \
	    $(DESTDIR)$(sysusersdir)/echod.conf \
	    $(DESTDIR)$(docdir)/examples/echod-socket-only.conf \
	    $(DESTDIR)$(docdir)/examples/echod-stamp-clock.conf \
	    $(addprefix $(DESTDIR)$(systemdunitdir)/,$(UNITS))

# ---- source tarball and packages ----
#
# The tarball holds the files git tracks, plus new ones it does not ignore,
# as they are in the working tree, under echod-VERSION/. Timestamps come
# from the last commit, so the same tree gives the same tarball. Both
# packagings build from the tarball alone.
DIST_NAME    := echod-$(VERSION)
DIST_DIR     := $(abspath $(DISTDIR))
DIST_TARBALL := $(DIST_DIR)/$(DIST_NAME).tar.gz

dist:
	@git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { \
	    echo "make dist: needs a git checkout (it packs what git tracks)" >&2; \
	    exit 1; }
	mkdir -p $(DIST_DIR)
	git ls-files -z --cached --others --exclude-standard | \
	    LC_ALL=C sort -z | \
	    tar --null -T - --ignore-failed-read --sort=name \
	        --transform 's,^,$(DIST_NAME)/,' --owner=0 --group=0 \
	        --numeric-owner --mode=u+rwX,go=rX \
	        --mtime=@$$(git log -1 --format=%ct 2>/dev/null || echo 0) \
	        -cf - | gzip -9n > $(DIST_TARBALL).tmp
	mv $(DIST_TARBALL).tmp $(DIST_TARBALL)
	@echo "make dist: $(DIST_TARBALL)"

# Debian: unpack the tarball, add packaging/debian as debian/, build the
# binary package, keep .deb, .changes and .buildinfo in $(DISTDIR).
DEB_TREE := $(DIST_DIR)/deb
deb: dist
	@v=$$(dpkg-parsechangelog -l packaging/debian/changelog -S Version) && \
	    [ "$$v" = "$(VERSION)" ] || { echo "make deb: packaging/debian/changelog" \
	    "is at $$v but VERSION says $(VERSION)" >&2; exit 1; }
	rm -rf $(DEB_TREE) && mkdir -p $(DEB_TREE)
	tar -C $(DEB_TREE) -xzf $(DIST_TARBALL)
	cp -R $(DEB_TREE)/$(DIST_NAME)/packaging/debian $(DEB_TREE)/$(DIST_NAME)/debian
	cd $(DEB_TREE)/$(DIST_NAME) && dpkg-buildpackage -us -uc -b -J
	mv $(DEB_TREE)/*.deb $(DEB_TREE)/*.changes $(DEB_TREE)/*.buildinfo $(DIST_DIR)/
	rm -rf $(DEB_TREE)
	@ls $(DIST_DIR)/echod*_$(VERSION)_*

# RPM: rpmbuild -bb from the tarball in a private _topdir. On a host whose
# rpm database does not even know rpm itself (rpm on Debian): build
# dependencies cannot be checked (--nodeps), and brp-compress, a bash
# script that says #!/bin/sh, fails under dash and leaves the man pages
# uncompressed, so run it with bash.
RPM_TOP := $(DIST_DIR)/rpmbuild
RPM_FOREIGN = $(shell rpm -q rpm >/dev/null 2>&1 || echo yes)
RPMBUILD_FLAGS ?= $(if $(RPM_FOREIGN),--nodeps \
    --define '__brp_compress /bin/bash %{_rpmconfigdir}/brp-compress %{?_prefix}')
rpm: dist
	@v=$$(sed -n 's/^Version:[[:space:]]*//p' packaging/rpm/echod.spec) && \
	    [ "$$v" = "$(VERSION)" ] || { echo "make rpm: packaging/rpm/echod.spec" \
	    "is at $$v but VERSION says $(VERSION)" >&2; exit 1; }
	rm -rf $(RPM_TOP) && mkdir -p $(RPM_TOP)/SOURCES $(RPM_TOP)/SPECS
	cp $(DIST_TARBALL) $(RPM_TOP)/SOURCES/
	tar -xzf $(DIST_TARBALL) -O $(DIST_NAME)/systemd/echod.sysusers \
	    > $(RPM_TOP)/SOURCES/echod.sysusers
	tar -xzf $(DIST_TARBALL) -O $(DIST_NAME)/packaging/rpm/echod.spec \
	    > $(RPM_TOP)/SPECS/echod.spec
	rpmbuild -bb $(RPMBUILD_FLAGS) --define '_topdir $(RPM_TOP)' \
	    $(RPM_TOP)/SPECS/echod.spec
	mv $(RPM_TOP)/RPMS/*/*.rpm $(DIST_DIR)/
	rm -rf $(RPM_TOP)
	@ls $(DIST_DIR)/echod-*$(VERSION)-*.rpm

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --std=c11 --inline-suppr -D_GNU_SOURCE -DECHOD_VERSION='"x"' \
	    --suppress=missingIncludeSystem -Isrc src fuzz ctl
	clang-tidy --quiet $(SRCS) $(wildcard fuzz/*.c ctl/*.c) -- \
	    $(ALL_CPPFLAGS) \
	    -std=gnu11 -Isrc $(DEPS_CFLAGS)

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c fuzz/*.c ctl/*.c

clean:
	rm -rf build build-san build-tsan build-fuzz echod echodctl

# ---- fuzzing ----
#
# libFuzzer targets in fuzz/ (fuzz_config: bytes as an echod.conf;
# fuzz_conn: the connection engine under a scripted client; fuzz_proxy:
# bytes as the start of a PROXY protocol header; fuzz_stamp: bytes as a
# STAMP test packet to reflect), built with
# clang-14 under ASan+UBSan into build-fuzz/. The engine is compiled with
# -fsanitize=fuzzer-no-link (coverage, no main), the targets link the
# runtime with -fsanitize=fuzzer. `make fuzz` runs each for FUZZ_SECONDS;
# new inputs are kept in build-fuzz/corpus/NAME (the seeds in
# fuzz/corpus/NAME are only read), crashes go to build-fuzz/artifacts/.
FUZZ_CC            ?= clang-14
FUZZ_SECONDS       ?= 20
FUZZ_CHECK_SECONDS ?= 5
FB          := build-fuzz
FUZZ_CFLAGS := -std=gnu11 $(WARN) $(DEPS_CFLAGS) -g -O1 \
               -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=all
FUZZ_OBJS   := $(patsubst src/%.c,$(FB)/%.o,$(filter-out src/main.c,$(SRCS)))
FUZZ_NAMES  := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_BINS   := $(addprefix $(FB)/fuzz_,$(FUZZ_NAMES))

# As for $(B): the objects depend on the flags they were built with
# (CI=true's -Werror, another FUZZ_CC), through $(FB)/flags.
ifneq ($(filter fuzz fuzz-build $(FB)/%,$(MAKECMDGOALS)),)
FUZZ_FLAGS_NOW := $(strip $(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_CFLAGS))
ifneq ($(FUZZ_FLAGS_NOW),$(strip $(shell cat $(FB)/flags 2>/dev/null)))
$(shell mkdir -p $(FB))
$(file >$(FB)/flags,$(FUZZ_FLAGS_NOW))
endif
endif

$(FB):
	mkdir -p $@

$(FB)/%.o: src/%.c $(HDRS) VERSION $(FB)/flags | $(FB)
	$(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
	    -c -o $@ $<

$(FB)/libechod.a: $(FUZZ_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(FB)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(FB)/libechod.a $(HDRS) $(FB)/flags
	$(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Isrc \
	    -o $@ $< $(FB)/libechod.a $(DEPS_LIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	@fuzz/run.sh probe $(FUZZ_CC) || { echo "make fuzz: $(FUZZ_CC)" \
	    "cannot build a libFuzzer target (Debian: clang-14" \
	    "libclang-rt-14-dev)" >&2; exit 1; }
	$(MAKE) fuzz-build
	@rc=0; for n in $(FUZZ_NAMES); do \
	    mkdir -p $(FB)/corpus/$$n; \
	    fuzz/run.sh run $(FB)/fuzz_$$n $(FUZZ_SECONDS) $(FB)/corpus/$$n \
	        fuzz/corpus/$$n $$(ls fuzz/$$n.dict 2>/dev/null) || rc=1; \
	done; exit $$rc

# Benchmark: echod at workers = 1 and workers = N (the CPUs in the affinity
# mask) against a bare epoll echo loop, and the STAMP reflector against a
# bare UDP reflector (SCENARIOS=stamp), interleaved (figures go in
# bench/README.md and issue notes, not in tests). RUNS, SECS, HOLD,
# SYSCALLS, SPREAD, WORKERS_LIST, LOADERS, CLIENT_CPUS and SERVER_CPUS tune
# it; see bench/README.md. BASE=path/to/echod adds another build as a
# server; BASE_REV=REV builds that git revision for it (git archive into a
# temporary directory, only then is git needed), e.g.
# `make bench BASE_REV=0e16012~1 SCENARIOS=pingpong-512`.
BENCH_CFLAGS := -O2 -g -Wall -Wextra
$(B)/bench/%: bench/%.c | $(B)
	mkdir -p $(B)/bench
	$(CC) $(BENCH_CFLAGS) -pthread -o $@ $<

# The access-list benchmark runs the module itself (src/acl.c, from
# libechod.a): build time and lookup cost at 100,000 prefixes, median of
# several runs. Run it by hand: $(B)/bench/aclbench [-n N] [-l N] [-r N].
$(B)/bench/aclbench: bench/aclbench.c $(B)/libechod.a $(HDRS) | $(B)
	mkdir -p $(B)/bench
	$(CC) $(ALL_CPPFLAGS) $(BENCH_CFLAGS) -Isrc -o $@ $< $(B)/libechod.a \
	    $(ALL_LDFLAGS) $(DEPS_LIBS)

# The stamp scenario's load generator (a STAMP Session-Sender) and bare
# UDP reflector are built by the pattern rule above, like echoload and
# refecho.
BENCH_TOOLS := $(B)/bench/echoload $(B)/bench/refecho $(B)/bench/stampload \
               $(B)/bench/refudp

.PHONY: bench
bench: $(ECHOD) $(BENCH_TOOLS) $(B)/bench/aclbench
	$(PYTHON) bench/run.py ./$(ECHOD) $(BENCH_TOOLS)
	$(B)/bench/aclbench -n 100000

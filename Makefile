# echod - RFC 862 echo daemon.
#
#   make            build ./echod
#   make run        install missing build dependencies, run echod in the
#                   foreground with conf/echod-dev.conf (127.0.0.1:7007)
#   make check      install missing dependencies, build, run every test
#   make check SANITIZE=1   the same under AddressSanitizer + UBSan
#   make install    install binary, config, man pages, systemd units
#   make lint       cppcheck + clang-tidy (fails on findings)
#
# Honours CC, CFLAGS, CPPFLAGS, LDFLAGS, PREFIX, DESTDIR, sbindir,
# sysconfdir, mandir, docdir, systemdunitdir, sysusersdir. CI=true adds -Werror.

VERSION     := $(shell cat VERSION)
PREFIX      ?= /usr/local
sbindir     ?= $(PREFIX)/sbin
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
PYTHON      ?= /usr/bin/python3

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
else
B       := build
SANFLAGS :=
ECHOD   := echod
endif

DEPS_CFLAGS := $(shell $(PKG_CONFIG) --cflags libconfig libsystemd 2>/dev/null)
DEPS_LIBS   := $(shell $(PKG_CONFIG) --libs libconfig libsystemd 2>/dev/null)
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

ALL_CPPFLAGS := -D_GNU_SOURCE -DECHOD_VERSION='"$(VERSION)"' \
                -DECHOD_CONF_PATH='"$(sysconfdir)/echod.conf"' $(CPPFLAGS)
ALL_CFLAGS   := -std=gnu11 $(WARN) $(SANFLAGS) $(DEPS_CFLAGS) $(CFLAGS)
ALL_LDFLAGS  := $(SANFLAGS) $(LDFLAGS)

SRCS := $(wildcard src/*.c)
LIB_OBJS := $(patsubst src/%.c,$(B)/%.o,$(filter-out src/main.c,$(SRCS)))
HDRS := $(wildcard src/*.h)

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))

# Fault injection: libc calls a unit test replaces with __wrap_*.
WRAP_test_listener := -Wl,--wrap=accept4
WRAP_test_outq     := -Wl,--wrap=sendmsg
WRAP_test_log      := -Wl,--wrap=clock_gettime,--wrap=syslog

.PHONY: all run check check-unit check-integration check-headers deps \
        deps-build install uninstall lint format clean

all: $(ECHOD)

$(B)/%.o: src/%.c $(HDRS) VERSION | $(B)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libechod.a: $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(ECHOD): $(B)/main.o $(B)/libechod.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DEPS_LIBS)

$(B) $(B)/tests:
	mkdir -p $@

$(B)/tests/%: tests/unit/%.c $(B)/libechod.a $(HDRS) | $(B)/tests
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
	$(MAKE) $(ECHOD)
	./$(ECHOD) -f -c conf/echod-dev.conf

check: deps
	$(MAKE) $(ECHOD) $(UNIT_BINS) check-headers
	ECHOD=$(abspath $(ECHOD)) B=$(B) PYTHON=$(PYTHON) SANITIZE=$(SANITIZE) \
	    tests/run.sh $(UNIT_BINS)

# The units in systemd/ name /usr/sbin/echod and /etc/echod.conf, the
# packaged paths; sed points them at this install's sbindir and sysconfdir.
UNIT_SED := -e 's|/usr/sbin/echod|$(sbindir)/echod|g' \
            -e 's|/etc/echod\.conf|$(sysconfdir)/echod.conf|g'

install: $(ECHOD)
	install -d $(DESTDIR)$(sbindir) $(DESTDIR)$(sysconfdir) \
	    $(DESTDIR)$(systemdunitdir) $(DESTDIR)$(sysusersdir)
	install -m 0755 $(ECHOD) $(DESTDIR)$(sbindir)/echod
	install -m 0644 conf/echod.conf $(DESTDIR)$(sysconfdir)/echod.conf
	for u in echod.service echod.socket; do \
	    sed $(UNIT_SED) systemd/$$u > $(DESTDIR)$(systemdunitdir)/$$u.tmp && \
	    chmod 0644 $(DESTDIR)$(systemdunitdir)/$$u.tmp && \
	    mv -f $(DESTDIR)$(systemdunitdir)/$$u.tmp \
	        $(DESTDIR)$(systemdunitdir)/$$u || exit 1; \
	done
	install -m 0644 systemd/echod.sysusers $(DESTDIR)$(sysusersdir)/echod.conf
	install -d $(DESTDIR)$(docdir)/examples
	install -m 0644 systemd/echod-socket-only.conf $(DESTDIR)$(docdir)/examples

uninstall:
	rm -f $(DESTDIR)$(sbindir)/echod \
	    $(DESTDIR)$(systemdunitdir)/echod.service \
	    $(DESTDIR)$(systemdunitdir)/echod.socket \
	    $(DESTDIR)$(sysusersdir)/echod.conf \
	    $(DESTDIR)$(docdir)/examples/echod-socket-only.conf

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --std=c11 --inline-suppr -D_GNU_SOURCE -DECHOD_VERSION='"x"' \
	    --suppress=missingIncludeSystem -Isrc src
	clang-tidy --quiet $(SRCS) -- $(ALL_CPPFLAGS) -std=gnu11 $(DEPS_CFLAGS)

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c

clean:
	rm -rf build build-san echod

# Benchmark against a bare epoll echo loop (figures go in issue notes, not
# in tests). RUNS, SECS and HOLD tune it; see bench/run.py.
BENCH_CFLAGS := -O2 -g -Wall -Wextra
$(B)/bench/%: bench/%.c | $(B)
	mkdir -p $(B)/bench
	$(CC) $(BENCH_CFLAGS) -o $@ $<

.PHONY: bench
bench: $(ECHOD) $(B)/bench/echoload $(B)/bench/refecho
	$(PYTHON) bench/run.py ./$(ECHOD) $(B)/bench/echoload $(B)/bench/refecho

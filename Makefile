# smtpwall: plain GNU make. `make help` lists the targets.
#
#   make                    build the programs into $(BUILD)/
#   make SANITIZE=address,undefined   ... with ASan+UBSan, into build-san/
#   make WERROR=1           warnings are errors (CI)
#   sudo make check         install what is missing, build, run every test
#   sudo make demo          install what is missing, build, run the namespace lab

CC       ?= cc
PYTHON   ?= /usr/bin/python3
SANITIZE ?=
WERROR   ?=

ifeq ($(SANITIZE),)
BUILD    ?= build
SANFLAGS :=
else
BUILD    ?= build-san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN     := -Wall -Wextra -Wshadow -Wpointer-arith -Wcast-qual -Wstrict-prototypes \
            -Wmissing-prototypes -Wmissing-declarations -Wformat=2 -Wundef \
            -Werror=implicit-function-declaration
ifneq ($(WERROR),)
WARN     += -Werror
endif
OPT      ?= -O2 -g
HARDEN   := -fstack-protector-strong
ifeq ($(SANITIZE),)
HARDEN   += -D_FORTIFY_SOURCE=2
endif
CPPFLAGS += -D_GNU_SOURCE -I.
CFLAGS   += -std=gnu11 $(OPT) $(WARN) $(HARDEN) $(SANFLAGS) -pthread -MMD -MP
LDFLAGS  += $(SANFLAGS) -pthread

# Everything but main() goes into one static library that the daemon and the
# unit tests link, so tests exercise exactly the production objects.
LIB_SRC  := $(filter-out proxy/main.c,$(wildcard proxy/*.c proxy/smtp/*.c)) $(wildcard rules/*.c) $(wildcard nfq/*.c) \
            $(wildcard capture/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libsmtpwall.a
DAEMON   := $(BUILD)/smtpwalld
# smtpwallctl links nothing of proxy/: its own small library (argument
# parsing, quoting, the answer reader) and main().
CTL_SRC  := $(filter-out ctl/smtpwallctl.c,$(wildcard ctl/*.c))
CTL_OBJ  := $(CTL_SRC:%.c=$(BUILD)/%.o)
CTL_LIB  := $(BUILD)/libctl.a
CTL      := $(BUILD)/smtpwallctl
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
CMOCKA   := $(shell pkg-config --cflags --libs cmocka 2>/dev/null || echo -lcmocka)
# nfq/nfq.c: libmnl and the mnl API of libnetfilter_queue.
LDLIBS   += $(shell pkg-config --libs libmnl libnetfilter_queue 2>/dev/null || echo -lmnl -lnetfilter_queue)
# capture/: libpcap. sd_notify(3): libsystemd.
LDLIBS   += $(shell pkg-config --libs libpcap 2>/dev/null || echo -lpcap)
LDLIBS   += $(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)
# smtpwall-firewall: its own small library (the rule generator, pure) and
# main(); it reads the configuration with the daemon's own parser.
FW_SRC   := $(filter-out fw/main.c,$(wildcard fw/*.c))
FW_OBJ   := $(FW_SRC:%.c=$(BUILD)/%.o)
FW_LIB   := $(BUILD)/libfw.a
FW       := $(BUILD)/smtpwall-firewall

.PHONY: all deps check check-unit check-integration demo fuzz bench bench-nfq bench-proxy clean help
.PHONY: install uninstall check-install
all: $(DAEMON) $(CTL) $(FW)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(DAEMON): $(BUILD)/proxy/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(CTL_LIB): $(CTL_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(CTL): $(BUILD)/ctl/smtpwallctl.o $(CTL_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(FW_LIB): $(FW_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(FW): $(BUILD)/fw/main.o $(FW_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_fw: tests/unit/test_fw.c $(FW_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(FW_LIB) $(LIB) $(LDFLAGS) $(CMOCKA) $(LDLIBS)

# The client's unit test links the client's library, not the daemon's.
$(BUILD)/tests/test_ctl: tests/unit/test_ctl.c $(CTL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(CTL_LIB) $(LDFLAGS) $(CMOCKA) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIB) $(LDFLAGS) $(CMOCKA) $(LDLIBS)

deps:
	@scripts/install-deps.sh

check: deps
	$(MAKE) check-unit
	$(MAKE) check-integration
	$(MAKE) check-install

# The benchmark is built (not run) with the unit tests, so it cannot rot.
check-unit: $(UNIT_BIN) $(BUILD)/bench_rules $(BUILD)/bench_data $(BUILD)/synflood
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# Root-only: network namespaces and netfilter. Skips itself, loudly, without root.
check-integration: $(DAEMON) $(CTL) $(FW)
	SMTPWALL_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -v -rs tests/integration

# The integration suite with every smtpwalld under valgrind memcheck
# (tests/integration/lab.py, SMTPWALL_VALGRIND=1): a memory error or a definite
# leak fails the test; test_heap.py also counts allocations. The plain build: a
# -fsanitize daemon cannot run under valgrind. Root, like check-integration;
# VALGRIND_TESTS picks the modules (default: all of them; the thousands-of-
# sessions tests of test_faults.py skip themselves under valgrind).
VALGRIND_TESTS ?= $(notdir $(wildcard tests/integration/test_*.py))
.PHONY: check-valgrind
check-valgrind: $(DAEMON) $(CTL) $(FW)
	@if [ -n "$(SANITIZE)" ]; then echo "check-valgrind: not with SANITIZE (build without it)"; exit 2; fi
	@command -v valgrind >/dev/null || { echo "check-valgrind: valgrind is not installed"; exit 2; }
	SMTPWALL_VALGRIND=1 SMTPWALL_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -v -rs \
	    $(VALGRIND_TESTS:%=tests/integration/%)

# The integration modules that exercise the daemon's threads (workers, the
# capture lock, the control socket's calls into workers, NFQUEUE, SIGTERM and
# SIGHUP) with smtpwalld built with ThreadSanitizer into build-tsan/: a data
# race is a "ThreadSanitizer" report in the daemon's log, which fails the test.
TSAN_TESTS ?= test_workers.py test_capture.py test_control.py test_lifecycle.py test_nfqueue.py test_delivery.py
.PHONY: check-tsan
check-tsan:
	$(MAKE) SANITIZE=thread BUILD=build-tsan build-tsan/smtpwalld build-tsan/smtpwallctl \
	    build-tsan/smtpwall-firewall
	SMTPWALL_BUILD=$(abspath build-tsan) $(PYTHON) -m pytest -v -rs $(TSAN_TESTS:%=tests/integration/%)

# Benchmarks: plain C programs against the library, always optimized; each
# prints its own tables (tests/bench/bench_rules.c: the live ruleset;
# bench_data.c: the DATA scanner against memcpy).
$(BUILD)/bench_%: tests/bench/bench_%.c $(LIB)
	$(CC) $(CPPFLAGS) $(CFLAGS) -O2 -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS)

# The SYN generator of tests/bench/bench_nfq.py: plain C, no library.
$(BUILD)/synflood: tests/bench/synflood.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -O2 -o $@ $< $(LDFLAGS)

# bench_nfq.py (the NFQUEUE path under a SYN flood, in the namespace lab) needs
# root; without it, it prints "bench_nfq: skipped: needs root" and succeeds.
BENCH_NFQ_ARGS ?=
# bench_proxy.py (smtp-source -> smtp-sink: no proxy, HAProxy, smtpwalld; namespace
# lab) needs root and haproxy; without root it prints "bench_proxy: skipped" and succeeds.
BENCH_PROXY_ARGS ?=
bench: $(BUILD)/bench_rules $(BUILD)/bench_data $(BUILD)/synflood $(DAEMON) $(CTL) $(FW)
	$(BUILD)/bench_rules
	$(BUILD)/bench_data
	$(PYTHON) tests/bench/bench_nfq.py --build $(abspath $(BUILD)) $(BENCH_NFQ_ARGS)
	$(PYTHON) tests/bench/bench_proxy.py --build $(abspath $(BUILD)) $(BENCH_PROXY_ARGS)

bench-proxy: $(DAEMON) $(CTL)
	$(PYTHON) tests/bench/bench_proxy.py --build $(abspath $(BUILD)) $(BENCH_PROXY_ARGS)

bench-nfq: $(BUILD)/synflood $(DAEMON) $(CTL) $(FW)
	$(PYTHON) tests/bench/bench_nfq.py --build $(abspath $(BUILD)) $(BENCH_NFQ_ARGS)

demo: deps
	$(MAKE) all
	scripts/demo.sh $(abspath $(BUILD))

# libFuzzer targets: tests/fuzz/fuzz_<target>.c, seeds in tests/fuzz/corpus/<target>/.
# New inputs go to a scratch directory, never into the repo; crashes are saved
# as build-fuzz/crash-* to be added to the corpus as regressions.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
# Each source is compiled once into build-fuzz/obj/ (instrumented, without
# libFuzzer's main); each target is then only linked: fuzz_ctl_* (the
# client's pieces) with libctl's objects too, the others with the library's.
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -D_GNU_SOURCE -I. -pthread -fno-sanitize-recover=all
FUZZ_SAN     := address,undefined
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build-fuzz/obj/%.o)
FUZZ_CTL_OBJ := $(CTL_SRC:%.c=build-fuzz/obj/%.o)
FUZZ_MAIN_OBJ := $(FUZZ_SRC:%.c=build-fuzz/obj/%.o)
.SECONDARY: $(FUZZ_MAIN_OBJ) $(FUZZ_LIB_OBJ) $(FUZZ_CTL_OBJ)

build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -MMD -MP -c -o $@ $<

build-fuzz/fuzz_ctl_%: build-fuzz/obj/tests/fuzz/fuzz_ctl_%.o $(FUZZ_CTL_OBJ) $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $^ $(LDLIBS)

build-fuzz/fuzz_%: build-fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $^ $(LDLIBS)

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_CTL_OBJ:.o=.d) $(FUZZ_MAIN_OBJ:.o=.d)

fuzz: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do \
		t=$${f#build-fuzz/fuzz_}; mkdir -p build-fuzz/new-$$t; \
		echo "== $$f ($(FUZZ_SECONDS)s)"; \
		if ! $$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build-fuzz/ \
		    build-fuzz/new-$$t tests/fuzz/corpus/$$t >build-fuzz/$$t.log 2>&1; then \
			tail -40 build-fuzz/$$t.log; echo "fuzz: $$t FAILED (see build-fuzz/)"; exit 1; \
		fi; grep -E '^Done' build-fuzz/$$t.log; \
	done

# ---- install / uninstall (DESTDIR, PREFIX) ------------------------------------
# make install [DESTDIR=/tmp/stage] [PREFIX=/usr]: the programs, the systemd
# units (their /usr/sbin and /etc paths rewritten to SBINDIR and SYSCONFDIR),
# tmpfiles.d and sysusers.d files, the man pages and, only if there is none
# yet, /etc/smtpwall/smtpwall.conf from docs/smtpwall.conf.example.
# /var/lib/smtpwall is not made here: smtpwall.tmpfiles (and the unit's
# StateDirectory=) make it, owned by the user that smtpwall.sysusers creates.
# The systemd directories come from systemd.pc when PREFIX=/usr (Debian 12:
# units in /lib/systemd/system), else they are under PREFIX.
DESTDIR    ?=
PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/smtpwall
SYSCONFDIR ?= /etc
ifeq ($(PREFIX),/usr)
SYSTEMD_PC :=
else
SYSTEMD_PC := --define-variable=prefix=$(PREFIX) --define-variable=root_prefix=$(PREFIX)
endif
SD_PCVAR    = $(shell pkg-config $(SYSTEMD_PC) --variable=$(1) systemd 2>/dev/null)
ifeq ($(origin UNITDIR),undefined)
UNITDIR     := $(or $(call SD_PCVAR,systemdsystemunitdir),$(PREFIX)/lib/systemd/system)
endif
ifeq ($(origin TMPFILESDIR),undefined)
TMPFILESDIR := $(or $(call SD_PCVAR,tmpfilesdir),$(PREFIX)/lib/tmpfiles.d)
endif
ifeq ($(origin SYSUSERSDIR),undefined)
SYSUSERSDIR := $(or $(call SD_PCVAR,sysusersdir),$(PREFIX)/lib/sysusers.d)
endif
INSTALL    ?= install
INST_PROGS := $(DAEMON) $(CTL) $(FW)
INST_UNITS := systemd/smtpwalld.service systemd/smtpwall-firewall.service
# The man pages, whatever docs/ holds when make runs (plus the known names,
# so that uninstall removes them even after one left docs/).
MAN5       := $(sort $(notdir $(wildcard docs/*.5)) smtpwall.conf.5)
MAN8       := $(sort $(notdir $(wildcard docs/*.8)) smtpwalld.8 smtpwallctl.8 smtpwall-firewall.8)
CONF_EX    := docs/smtpwall.conf.example
CONF       := $(DESTDIR)$(SYSCONFDIR)/smtpwall/smtpwall.conf

install: $(INST_PROGS)
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR) \
	    $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/smtpwall
	$(INSTALL) -m 0755 $(INST_PROGS) $(DESTDIR)$(SBINDIR)/
	@set -e; for u in $(INST_UNITS); do \
		echo "sed $$u > $(DESTDIR)$(UNITDIR)/$${u#systemd/}"; \
		sed -e 's|/usr/sbin/|$(SBINDIR)/|g' -e 's|/etc/smtpwall/|$(SYSCONFDIR)/smtpwall/|g' $$u \
		    > $(DESTDIR)$(UNITDIR)/$${u#systemd/}.tmp; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${u#systemd/}.tmp; \
		mv -f $(DESTDIR)$(UNITDIR)/$${u#systemd/}.tmp $(DESTDIR)$(UNITDIR)/$${u#systemd/}; \
	done
	$(INSTALL) -m 0644 systemd/smtpwall.tmpfiles $(DESTDIR)$(TMPFILESDIR)/smtpwall.conf
	$(INSTALL) -m 0644 systemd/smtpwall.sysusers $(DESTDIR)$(SYSUSERSDIR)/smtpwall.conf
	@set -e; for m in $(MAN5); do if [ -f docs/$$m ]; then \
		echo "$(INSTALL) -m 0644 docs/$$m $(DESTDIR)$(MANDIR)/man5/"; \
		$(INSTALL) -m 0644 docs/$$m $(DESTDIR)$(MANDIR)/man5/; fi; done
	@set -e; for m in $(MAN8); do if [ -f docs/$$m ]; then \
		echo "$(INSTALL) -m 0644 docs/$$m $(DESTDIR)$(MANDIR)/man8/"; \
		$(INSTALL) -m 0644 docs/$$m $(DESTDIR)$(MANDIR)/man8/; fi; done
	$(INSTALL) -m 0644 $(CONF_EX) $(DESTDIR)$(DOCDIR)/smtpwall.conf.example
	@if [ -e $(CONF) ]; then \
		echo "install: $(CONF) exists: left as it is (the example is $(DOCDIR)/smtpwall.conf.example)"; \
	else \
		echo "$(INSTALL) -m 0644 $(CONF_EX) $(CONF)"; \
		$(INSTALL) -m 0644 $(CONF_EX) $(CONF); \
	fi
	@if [ -z "$(DESTDIR)" ]; then \
		echo "install: now, as root: systemd-sysusers smtpwall.conf; systemd-tmpfiles --create smtpwall.conf;"; \
		echo "install:   systemctl daemon-reload; edit $(SYSCONFDIR)/smtpwall/smtpwall.conf; systemctl enable --now smtpwalld"; \
	fi

# Removes what install put, except a smtpwall.conf that differs from the
# example (the administrator's configuration), which is left and reported.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(notdir $(INST_PROGS)))
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(INST_UNITS)))
	rm -f $(DESTDIR)$(TMPFILESDIR)/smtpwall.conf $(DESTDIR)$(SYSUSERSDIR)/smtpwall.conf
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(MAN5)) $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(MAN8))
	rm -f $(DESTDIR)$(DOCDIR)/smtpwall.conf.example
	@rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	@if [ ! -e $(CONF) ]; then :; \
	elif cmp -s $(CONF) $(CONF_EX); then \
		echo "rm -f $(CONF)"; rm -f $(CONF); \
	else \
		echo "uninstall: $(CONF) differs from the example: left in place"; \
	fi
	@rmdir $(DESTDIR)$(SYSCONFDIR)/smtpwall 2>/dev/null || true

# Install into a scratch DESTDIR, check every file and mode, uninstall; the
# units through systemd-analyze verify and security (exposure <= 2.5). No root.
check-install: $(INST_PROGS)
	MAKE="$(MAKE)" BUILD="$(BUILD)" tests/install/test_install.sh

clean:
	rm -rf build build-san build-tsan build-fuzz

help:
	@echo "make                 build $(DAEMON)"
	@echo "make check           install missing packages (root), build, run unit + integration tests"
	@echo "make check-unit      build and run the cmocka unit tests only (no root needed)"
	@echo "make check-integration  namespace tests with real netfilter, clients and servers (root)"
	@echo "make check-valgrind  integration tests VALGRIND_TESTS with smtpwalld under valgrind memcheck (root)"
	@echo "make check-tsan      integration tests TSAN_TESTS with smtpwalld built with ThreadSanitizer (root)"
	@echo "make demo            install missing packages (root), build, run the namespace lab"
	@echo "make deps            install the Debian packages the build and tests need"
	@echo "make SANITIZE=address,undefined ...   same, built with ASan+UBSan into build-san/"
	@echo "make WERROR=1 ...    warnings are errors"
	@echo "make fuzz [FUZZ_SECONDS=60]   run every libFuzzer target (clang)"
	@echo "make bench           the rules benchmark (load, change, lookup at 10^3..10^6 rules) and, as root,"
	@echo "                     the NFQUEUE SYN-flood benchmark (make bench-nfq alone; BENCH_NFQ_ARGS=...)"
	@echo "                     and the SMTP benchmark against HAProxy (make bench-proxy alone)"
	@echo "make bench-proxy     (root) SMTP throughput and memory: no proxy / HAProxy / smtpwalld (BENCH_PROXY_ARGS=...)"
	@echo "make install [DESTDIR=...] [PREFIX=/usr]   programs, systemd units, tmpfiles.d/sysusers.d,"
	@echo "                     man pages; /etc/smtpwall/smtpwall.conf only if absent"
	@echo "make uninstall [DESTDIR=...] [PREFIX=/usr] remove them (a changed smtpwall.conf is kept)"
	@echo "make check-install  install into a scratch DESTDIR, check files and modes, systemd-analyze the units"
	@echo "make clean"

-include $(LIB_OBJ:.o=.d) $(CTL_OBJ:.o=.d) $(FW_OBJ:.o=.d) $(BUILD)/fw/main.d $(BUILD)/proxy/main.d $(BUILD)/ctl/smtpwallctl.d $(UNIT_BIN:=.d) \
	$(BUILD)/bench_rules.d $(BUILD)/bench_data.d $(BUILD)/synflood.d

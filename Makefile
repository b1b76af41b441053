# chamois - build, test, run, install.  Run ./configure first.
-include config.mk
ifeq ($(wildcard config.mk),)
# (make bench configures by itself; make deb configures its own copy)
ifneq ($(filter-out bench deb,$(or $(MAKECMDGOALS),all)),)
$(error run ./configure first)
endif
endif

DESTDIR ?=
BUILD := build
CPPFLAGS += -I. $(PKG_CFLAGS)

# every module's sources go into one static library; programs pull what they use
PROGRAM_SRC := chamoisd/main.c queue/chamoisctl.c queue/sendmail.c
LIB_SRC := $(filter-out $(PROGRAM_SRC),$(wildcard common/*.c smtpd/*.c maildir/*.c local/*.c \
	outbound/*.c forward/*.c queue/*.c submission/*.c dkim/*.c checks/*.c \
	filter/*.c))
DAEMON_SRC := chamoisd/main.c chamoisd/metrics.c

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
LIB_OBJ := $(call obj,$(LIB_SRC))
LIB := $(BUILD)/libchamois.a

PROGRAMS := bin/chamoisd bin/chamoisctl bin/chamois-sendmail
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
PYTHON ?= /usr/bin/python3
PYTEST ?= $(PYTHON) -m pytest
# integration tests in parallel (python3-pytest-xdist), PYTEST_WORKERS
# processes: two a core, since the tests mostly wait on the daemon and its
# peers (the serial run keeps one core about 15% busy); PYTEST_WORKERS=0
# runs them one after another in one process
PYTEST_WORKERS ?= $(shell echo $$((2 * $$(nproc 2>/dev/null || echo 1))))

.PHONY: all check check-unit check-integration check-layers run install deb clean fuzz fuzz-regress bench
all: $(PROGRAMS) bin/chamois-setup

$(BUILD)/%.o: %.c config.mk config.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

bin/chamoisd: $(call obj,$(DAEMON_SRC)) $(LIB)
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

bin/chamoisctl: $(call obj,queue/chamoisctl.c) $(LIB)
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

bin/chamois-sendmail: $(call obj,queue/sendmail.c) $(LIB)
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CMOCKA_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ \
		$(filter-out %.h,$^) $(LIBS) $(CMOCKA_LIBS)

# the layers first: a tangled tree fails in a second, before the long tests
check: check-layers check-unit check-integration

check-unit: $(UNIT_BIN)
	@test -n "$(CMOCKA_LIBS)" || { echo "make check needs cmocka: apt-get install libcmocka-dev, then ./configure"; exit 1; }
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# the layers (tests/check-layers.py): its self-test, then the objects of the build
check-layers: $(PROGRAMS)
	@$(PYTHON) tests/check-layers.py --self-test
	$(PYTHON) tests/check-layers.py

$(BUILD)/tests/scram_client: tests/sasl/scram_client.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS)

# OpenDKIM's verifier for tests/integration/test_dkim_sign.py
$(BUILD)/tests/opendkim_verify: tests/dkim/opendkim_verify.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS) -lresolv

# OpenDKIM's signer for tests/integration/test_checks_mx.py
$(BUILD)/tests/opendkim_sign: tests/dkim/opendkim_sign.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS)

# the inbound checks on one message, for tests/integration/test_auth_checks.py
$(BUILD)/tests/auth_check_run: tests/checks/auth_check_run.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

check-integration: $(PROGRAMS) bin/chamois-setup $(BUILD)/tests/scram_client $(BUILD)/tests/opendkim_verify $(BUILD)/tests/opendkim_sign $(BUILD)/tests/auth_check_run
	@test "$(PYTEST_WORKERS)" = 0 || $(PYTEST) --version -p xdist >/dev/null 2>&1 || { echo "make check-integration runs the tests in parallel with python3-pytest-xdist (sh .ci/deps.sh installs it); PYTEST_WORKERS=0 runs them serially without it"; exit 1; }
	$(PYTEST) -q $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS)) tests/integration

# the development setup: loopback ports, state under ./run/
run: $(PROGRAMS)
	@sh etc/dev/setup.sh run
	@echo "chamoisd on 127.0.0.1:2525 (Ctrl-C stops it). Send it a message:"
	@echo "    swaks --server 127.0.0.1:2525 --to demo@chamois.test"
	@echo "and read it in run/maildir/chamois.test/demo/new/"
	@echo "Forwarding: start a sink (python3 -m aiosmtpd -n -l 127.0.0.1:2526),"
	@echo "    then: swaks --server 127.0.0.1:2525 --to fwd@chamois.test"
	@echo "Submission as demo@chamois.test (password demo):"
	@echo "    swaks --server 127.0.0.1:2587 --tls --auth-user demo@chamois.test --auth-password demo --from demo@chamois.test --to sink@[127.0.0.1]"
	bin/chamoisd -d -f run/chamois.conf

# where `make install` puts things: PREFIX, SYSCONFDIR and LOCALSTATEDIR as
# ./configure chose them (/usr/local, /usr/local/etc, /usr/local/var unless
# told); the Debian package (debian/rules) configures /usr, /etc and /var and
# puts the unit into /lib/systemd/system (SYSTEMDUNITDIR)
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system

# the paths in etc/*.in (the unit, the certbot hook, chamois-setup)
ETC_SED = sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	-e 's|@LOCALSTATEDIR@|$(LOCALSTATEDIR)|g'

install: $(PROGRAMS)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(SYSCONFDIR)/chamois $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(PREFIX)/share/chamois
	install -m 755 bin/chamoisd $(DESTDIR)$(PREFIX)/sbin/chamoisd
	install -m 755 bin/chamoisctl $(DESTDIR)$(PREFIX)/sbin/chamoisctl
	install -m 755 bin/chamois-sendmail $(DESTDIR)$(PREFIX)/sbin/chamois-sendmail
	install -m 644 doc/chamoisd.8 $(DESTDIR)$(PREFIX)/share/man/man8/chamoisd.8
	install -m 644 doc/chamoisctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/chamoisctl.8
	install -m 644 doc/chamois-sendmail.8 $(DESTDIR)$(PREFIX)/share/man/man8/chamois-sendmail.8
	install -m 644 doc/chamois.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/chamois.conf.5
	install -m 644 etc/chamois.conf.sample $(DESTDIR)$(SYSCONFDIR)/chamois/chamois.conf.sample
	$(ETC_SED) etc/chamoisd.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/chamoisd.service
	$(ETC_SED) etc/chamois-setup.in > $(DESTDIR)$(PREFIX)/share/chamois/chamois-setup
	chmod 755 $(DESTDIR)$(PREFIX)/share/chamois/chamois-setup
	$(ETC_SED) etc/certbot-deploy-hook.in > $(DESTDIR)$(PREFIX)/share/chamois/certbot-deploy-hook
	chmod 755 $(DESTDIR)$(PREFIX)/share/chamois/certbot-deploy-hook

# bin/chamois-setup: the first-config script with this build's paths, as the
# package installs it (tests/integration/test_package.py runs it into a
# scratch root)
bin/chamois-setup: etc/chamois-setup.in config.mk
	@mkdir -p bin
	$(ETC_SED) $< > $@
	chmod 755 $@

# the Debian package (debian/, doc/debian.md): chamois_VERSION_ARCH.deb,
# built by dpkg-buildpackage in a copy of the tree under build/deb (so that
# this tree's own ./configure stays as it is); needs dpkg-dev, debhelper,
# fakeroot and the build dependencies of debian/control, and lintian to
# check the package
DEB_DIR := $(BUILD)/deb
deb:
	@for t in dpkg-buildpackage:dpkg-dev dh:debhelper fakeroot:fakeroot; do \
		command -v $${t%%:*} >/dev/null 2>&1 || { echo "make deb needs $${t%%:*}: apt-get install $${t#*:}"; exit 1; }; done
	@dpkg-checkbuilddeps || { echo "make deb: install the build dependencies above (apt-get install ...)"; exit 1; }
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/chamois
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -co --exclude-standard -z | xargs -0 cp -a --parents -t $(DEB_DIR)/chamois; \
	else tar cf - --exclude=./build --exclude=./bin --exclude=./config.mk --exclude=./config.h . | tar xf - -C $(DEB_DIR)/chamois; fi
	cd $(DEB_DIR)/chamois && dpkg-buildpackage -us -uc -b
	rm -f chamois_*.deb && cp $(DEB_DIR)/chamois_*.deb .
	@ls chamois_*.deb
	@if command -v lintian >/dev/null 2>&1; then lintian --fail-on error,warning chamois_*.deb; \
		else echo "make deb: lintian not installed (apt-get install lintian): the package is not checked"; fi

# libFuzzer targets (tests/fuzz/README.md): each runs FUZZ_SECONDS seconds
FUZZ_SECONDS ?= 60
fuzz:
	$(MAKE) -C tests/fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz-regress:
	$(MAKE) -C tests/fuzz regress

# the benchmark side by side with Postfix, OpenSMTPD and chasquid (issue 8,
# doc/performance.md); needs root for its network namespace.
# BENCH_ARGS="--quick" for a short look
bench:
	sh bench/run.sh $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) bin
	$(MAKE) -C tests/fuzz clean
	$(MAKE) -C bench clean

-include $(shell find $(BUILD) -path $(DEB_DIR) -prune -o -name '*.d' -print 2>/dev/null)

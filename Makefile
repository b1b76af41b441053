# chamois - build, test, run, install.  Run ./configure first.
-include config.mk
ifeq ($(wildcard config.mk),)
# (make bench configures by itself)
ifneq ($(filter-out bench,$(or $(MAKECMDGOALS),all)),)
$(error run ./configure first)
endif
endif

DESTDIR ?=
BUILD := build
CPPFLAGS += -I. $(PKG_CFLAGS)

# every module's sources go into one static library; programs pull what they use
PROGRAM_SRC := chamoisd/main.c queue/chamoisctl.c queue/sendmail.c
LIB_SRC := $(filter-out $(PROGRAM_SRC),$(wildcard common/*.c smtpd/*.c maildir/*.c local/*.c \
	outbound/*.c forward/*.c queue/*.c submission/*.c))
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

.PHONY: all check check-unit check-integration check-layers run install clean fuzz fuzz-regress bench
all: $(PROGRAMS)

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

check-integration: $(PROGRAMS) $(BUILD)/tests/scram_client
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

# the paths in etc/*.in (the unit, the certbot hook)
ETC_SED = sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	-e 's|@LOCALSTATEDIR@|$(LOCALSTATEDIR)|g'

install: $(PROGRAMS)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(SYSCONFDIR)/chamois $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 bin/chamoisd $(DESTDIR)$(PREFIX)/sbin/chamoisd
	install -m 755 bin/chamoisctl $(DESTDIR)$(PREFIX)/sbin/chamoisctl
	install -m 755 bin/chamois-sendmail $(DESTDIR)$(PREFIX)/sbin/chamois-sendmail
	install -m 644 doc/chamoisd.8 $(DESTDIR)$(PREFIX)/share/man/man8/chamoisd.8
	install -m 644 doc/chamoisctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/chamoisctl.8
	install -m 644 doc/chamois-sendmail.8 $(DESTDIR)$(PREFIX)/share/man/man8/chamois-sendmail.8
	install -m 644 doc/chamois.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/chamois.conf.5
	install -m 644 etc/chamois.conf.sample $(DESTDIR)$(SYSCONFDIR)/chamois/chamois.conf.sample
	$(ETC_SED) etc/chamoisd.service.in > $(DESTDIR)$(PREFIX)/lib/systemd/system/chamoisd.service
	install -d $(DESTDIR)$(PREFIX)/share/chamois
	$(ETC_SED) etc/certbot-deploy-hook.in > $(DESTDIR)$(PREFIX)/share/chamois/certbot-deploy-hook
	chmod 755 $(DESTDIR)$(PREFIX)/share/chamois/certbot-deploy-hook

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

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

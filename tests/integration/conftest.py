"""pytest fixtures for the chamois integration tests (see harness.py)."""

import os
import shutil
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import Chamoisd  # noqa: E402

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ThreadSanitizer")


_SHORT_BASETEMP = None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """A short base for the tests' directories unless --basetemp names one:
    Dovecot's and Postfix's unix sockets live in them, and a socket path
    has room for 107 octets.  pytest's default /tmp/pytest-of-USER/pytest-N
    plus the popen-gwN of a parallel worker and a long test name leave too
    little.  Runs in the controller before pytest makes its temp path
    factory; xdist's workers get their base below this one."""
    global _SHORT_BASETEMP
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        _SHORT_BASETEMP = tempfile.mkdtemp(prefix="ct.", dir="/tmp")
        config.option.basetemp = _SHORT_BASETEMP


def pytest_sessionfinish(session, exitstatus):
    """That base goes when every test passed; after a failure it stays for
    its logs (the run prints where)."""
    if _SHORT_BASETEMP is None or hasattr(session.config, "workerinput"):
        return
    if exitstatus == 0:
        shutil.rmtree(_SHORT_BASETEMP, ignore_errors=True)
    else:
        print("\nthe tests' directories (daemon logs): %s" % _SHORT_BASETEMP)


def _need_binary():
    b = harness.chamoisd_binary()
    if not b.exists():
        pytest.skip("%s not built (run make, or set CHAMOISD)" % b)
    return b


@pytest.fixture(scope="session", autouse=True)
def _binary_snapshot(tmp_path_factory):
    """Run the whole session on a copy of bin/chamoisd, so that a rebuild
    during the run (make in another shell) cannot swap or truncate the
    binary under the tests.  Skipped when $CHAMOISD names a binary."""
    if os.environ.get("CHAMOISD"):
        yield
        return
    src = harness.chamoisd_binary()
    deadline = time.monotonic() + 10
    while src.exists() and not os.access(src, os.X_OK) and time.monotonic() < deadline:
        time.sleep(0.2)  # a linker may be writing it right now
    if not src.exists():
        yield
        return
    dst = tmp_path_factory.mktemp("bin") / "chamoisd"
    shutil.copy2(src, dst)
    os.environ["CHAMOISD"] = str(dst)
    try:
        yield
    finally:
        os.environ.pop("CHAMOISD", None)


@pytest.fixture(autouse=True)
def _no_dns_left():
    """Every dnsmasq a daemon of the test started (harness.Chamoisd's own)
    is stopped when the test ends, whatever the test did with the daemon."""
    yield
    harness.stop_leftover_dns()


@pytest.fixture
def chamoisd_bin():
    return _need_binary()


@pytest.fixture
def chamois_conf(tmp_path):
    """Factory for Chamoisd instances that are configured but not started:
    `chamois_conf(**kwargs)` -> Chamoisd (for `-n` and start-up tests).
    Any instance a test starts anyway is stopped at teardown."""
    _need_binary()
    made = []

    def make(**kwargs):
        inst = Chamoisd(tmp_path / ("c%d" % len(made)), **kwargs)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        if inst.proc is not None:
            inst.kill()


@pytest.fixture
def chamoisd(tmp_path):
    """Factory: `chamoisd(**kwargs)` returns a started Chamoisd (kwargs as in
    harness.Chamoisd).  Every instance is stopped at teardown, also when the
    test failed; the teardown errors if a daemon died on its own during the
    test, ignored SIGTERM for 10 s, or its log shows a sanitizer report."""
    _need_binary()
    started = []

    def make(**kwargs):
        inst = Chamoisd(tmp_path / ("d%d" % len(started)), **kwargs)
        started.append(inst)
        inst.start()
        return inst

    yield make

    problems = []
    for inst in started:
        if inst.proc is not None and not inst.stopped and inst.proc.poll() is not None:
            problems.append("chamoisd %s died during the test with exit code %s"
                            % (inst.dir.name, inst.proc.returncode))
        if not inst.stopped:
            inst.stop()
            if inst.killed:
                problems.append("chamoisd %s ignored SIGTERM for 10 s (killed)" % inst.dir.name)
        log = inst.log()
        for mark in SANITIZER_MARKS:
            if mark in log:
                problems.append("chamoisd %s log has %r" % (inst.dir.name, mark))
        tail = log[-6000:]
        print("---- chamoisd %s log (%s) ----\n%s" % (inst.dir.name, inst.log_path, tail))
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def mx(chamoisd):
    """A started chamoisd with the default config (alice, bob @example.test)."""
    return chamoisd()

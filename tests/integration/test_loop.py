"""Nothing blocks the event loop (issue 13, point 4), as a user sees it.

- A SIGHUP's parse runs off the loop: while a table of 200,000 aliases is
  read, an open session's NOOPs are answered, and the new table is in
  force once the log says "reload done".
- A SIGHUP during a parse is not lost: the file as it is after the last
  SIGHUP is the one in force at the end.
- A slow passwd database (NSS; here each look-up held back 1 s by a
  preloaded shim) delays only the chamois-sendmail caller it is about: the
  submission goes through with the caller's name and owner, and an open
  session's NOOPs are answered meanwhile.
- A loop that runs late says so in the log ("loop late ms=N",
  chamoisd(8) "LOOP LATE"): here the whole process is stopped for a
  moment, which holds the loop as a blocking callback would.
"""

import os
import re
import signal
import subprocess
import time

import pytest

from harness import check, sample_message, smtp_client, wait_until
from test_signals import rcpt_reply
from peers.queue_util import qbins  # noqa: F401

BIG = 200000


def write_big_aliases(d, extra=()):
    """BIG aliases to alice, then the extra lines, written in one go."""
    tmp = d.aliases_path.with_suffix(".new")
    with open(tmp, "w") as f:
        for i in range(BIG):
            f.write("a%06d@example.test: alice@example.test\n" % i)
        for line in extra:
            f.write(line + "\n")
    os.replace(tmp, d.aliases_path)


def test_session_answers_while_a_big_table_is_parsed(chamoisd):
    d = chamoisd(aliases={"team@example.test": ["alice@example.test"]})
    c = d.dialog()
    c.cmd("EHLO client.remote.test", "250")
    write_big_aliases(d, ["new@example.test: bob@example.test"])
    before = len(d.log())
    d.reload()
    answered = 0
    # every NOOP is answered, while the parse runs and after it (bounded)
    for _ in range(100000):
        c.cmd("NOOP", "250")
        answered += 1
        if "reload done" in d.log()[before:]:
            break
    log = d.log()[before:]
    assert "reload config=" in log and "reload done" in log, log
    # the session that was open all along goes on, with the new table
    c.cmd("MAIL FROM:<s@remote.test>", "250 2.1.0")
    c.cmd("RCPT TO:<new@example.test>", "250 2.1.5")
    c.cmd("RCPT TO:<a199999@example.test>", "250 2.1.5")
    c.cmd("QUIT", "221")
    c.close()
    with smtp_client(d) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("new@example.test"), 250, "2.1.5")
        check(s.data(sample_message("after the big reload")), 250, "2.0.0")
    assert len(d.messages("bob@example.test")) == 1
    # the old alias is gone with the old table
    assert rcpt_reply(d, "team@example.test") == 550
    print("NOOPs answered until the reload was done: %d" % answered)
    assert d.stop() == 0 and not d.killed


def test_sighup_during_a_parse_reads_the_file_again(chamoisd):
    d = chamoisd(aliases={"team@example.test": ["alice@example.test"]})
    write_big_aliases(d, ["first@example.test: alice@example.test"])
    before = len(d.log())
    d.reload()
    wait_until(lambda: "reload config=" in d.log()[before:], 10,
               what="the first reload to start")
    # while it parses (or just after): a changed file and two more SIGHUPs
    write_big_aliases(d, ["second@example.test: bob@example.test"])
    d.reload()
    d.reload()

    def settled():
        log = d.log()[before:]
        starts = log.count("reload config=")
        return starts >= 2 and log.count("reload done") == starts

    wait_until(lambda: settled() and rcpt_reply(d, "second@example.test") == 250,
               60, interval=0.2, what="the file of the last SIGHUP in force")
    log = d.log()[before:]
    # one run per SIGHUP at most: those during a parse make one more run
    assert log.count("reload config=") <= 3, log
    assert rcpt_reply(d, "first@example.test") == 550
    assert d.stop() == 0 and not d.killed


def test_a_late_loop_is_logged(chamoisd):
    d = chamoisd()
    wait_until(lambda: "ready version=" in d.log(), 10, what="chamoisd ready")
    before = len(d.log())
    d.signal(signal.SIGSTOP)
    try:
        time.sleep(0.6)
    finally:
        d.signal(signal.SIGCONT)
    # the line may wait for the end of a rate-limit window (10 s)
    wait_until(lambda: "loop late ms=" in d.log()[before:], 20,
               what="the loop-late line")
    m = re.search(r"loop late ms=(\d+) probes=(\d+)", d.log()[before:])
    assert m, d.log()[before:]
    # stopped for 600 ms, the probe is due every 100 ms: at least 500 late
    assert int(m.group(1)) >= 400, m.group(0)
    assert int(m.group(2)) >= 1
    # and the daemon goes on serving
    assert rcpt_reply(d, "alice@example.test") == 250
    assert d.stop() == 0 and not d.killed


# the fault injected: every passwd look-up by uid answers after 1 s, as a
# slow directory server would (loaded into chamoisd with LD_PRELOAD)
SLOW_NSS_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pwd.h>
#include <unistd.h>
int getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t n,
    struct passwd **res) {
    int (*real)(uid_t, struct passwd *, char *, size_t, struct passwd **) =
        (int (*)(uid_t, struct passwd *, char *, size_t, struct passwd **))
        dlsym(RTLD_NEXT, "getpwuid_r");
    usleep(1000000);
    return real(uid, pw, buf, n, res);
}
struct passwd *getpwuid(uid_t uid) {
    struct passwd *(*real)(uid_t) =
        (struct passwd *(*)(uid_t))dlsym(RTLD_NEXT, "getpwuid");
    usleep(1000000);
    return real(uid);
}
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the caller's name is root's here")
def test_slow_passwd_lookup_holds_only_its_caller(chamoisd, qbins, tmp_path, monkeypatch):
    src = tmp_path / "slow_nss.c"
    src.write_text(SLOW_NSS_C)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(tmp_path / "slow_nss.so"),
                    str(src), "-ldl"], check=True)
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") + "verify_asan_link_order=0")
    monkeypatch.setenv("LD_PRELOAD", str(tmp_path / "slow_nss.so"))
    d = chamoisd(aliases={"root@example.test": ["alice@example.test"]})
    monkeypatch.delenv("LD_PRELOAD")    # chamois-sendmail runs at full speed
    wait_until(lambda: "ready version=" in d.log(), 10, what="chamoisd ready")
    c = d.dialog()
    c.cmd("EHLO client.remote.test", "250")
    p = subprocess.Popen([str(qbins["chamois-sendmail"]), "-C", str(d.conf), "-i",
                          "--", "bob@example.test"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(b"Subject: slow passwd\n\nhello\n")
        p.stdin.close()
        answered = 0
        # the session is served while the caller waits for its name (bounded)
        for _ in range(100000):
            c.cmd("NOOP", "250")
            answered += 1
            if p.poll() is not None:
                break
        assert p.wait(timeout=30) == 0, (p.stdout.read(), p.stderr.read(), d.log())
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    c.cmd("QUIT", "221")
    c.close()
    (m,) = d.wait_messages("bob@example.test", 1, timeout=15)
    assert b"Subject: slow passwd" in m
    # the name from the slow look-up: in the log, and the owner it gives
    assert re.search(r"queue submit uid=0 user=root .*owner=alice@example\.test", d.log()), \
        d.log()
    print("NOOPs answered while chamois-sendmail ran: %d" % answered)
    assert d.stop() == 0 and not d.killed

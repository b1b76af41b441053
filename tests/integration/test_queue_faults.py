"""Faults and reloads around the queue (issue 12, points 13 and 14).

- A queued message whose body cannot be read (its partition of bodies.db
  removed while chamoisd is stopped: BDB makes it anew, empty) is deferred
  with the usual backoff, not retried at once forever, and SIGTERM still
  stops the daemon.
- Many SIGHUPs do not grow the daemon: each old config is freed once
  nothing refers to it.
- A message committed during the shutdown grace period waits in the queue
  for the next start: no delivery attempt starts once stopping.
"""

import os
import re
import signal
import subprocess
import time

from harness import rss_kib, wait_until
from peers.queue_util import MAILBOXES, qbins, sendmail_ok, ctl_ok  # noqa: F401
from peers.remote import fwd_env  # noqa: F401
from peers.sasl import ALICE, USERS, submission_daemon


def ready(d, n=1):
    wait_until(lambda: d.log().count("ready version=") >= n, 20, what="chamoisd ready")
    return d



def test_unreadable_body_backs_off_and_sigterm_stops(chamoisd, qbins):
    d = ready(chamoisd(mailboxes=MAILBOXES, dead_dns=True))
    # the DNS server is a dead port: the remote recipient is deferred
    sendmail_ok(qbins, d, ["carol@remote.test"], "Subject: lost body\n\nhello\n")
    wait_until(lambda: "status=deferred" in d.log(), 15, what="first deferral")
    msg_id = [l for l in d.log().splitlines() if "queue stored" in l][0].split()[2]
    assert d.stop() == 0
    part = d.queue_dir / "db" / ("__dbp.bodies.db.%03d" % int(msg_id[0], 16))
    assert part.exists(), sorted(os.listdir(d.queue_dir / "db"))
    part.unlink()
    d.start()
    ready(d, 2)
    before = d.log().count("cannot read the body")
    ctl_ok(qbins, d, "flush")          # due now: the body is read and missing
    wait_until(lambda: d.log().count("cannot read the body") > before, 15,
               what="the failed read")
    time.sleep(3)
    failures = d.log().count("cannot read the body") - before
    assert failures <= 3, "%d failed reads in about 3 s" % failures
    assert "dsn=4.3.0 status=deferred" in d.log()
    # a deferred recipient, waiting for its next attempt, as after a 4xx
    out = ctl_ok(qbins, d, "queue")
    assert " deferred attempts=" in out, out
    assert d.stop() == 0 and not d.killed


def test_many_reloads_do_not_grow_the_daemon(chamoisd):
    # a config of some size (62 long domain names, about 15 KiB), so that
    # keeping each old one shows: 200 of them are 3 MiB
    long = ".".join(["%s" % (c * 58) for c in "wxyz"])
    domains = ("example.test",) + tuple("%s.d%02d.test" % (long, i) for i in range(62))
    d = ready(chamoisd(domains=domains))
    pid = d.proc.pid

    def reload_n(n, start):
        for i in range(n):
            d.reload()
            wait_until(lambda: d.log().count("reload done") >= start + i + 1, 10,
                       interval=0.01, what="reload %d" % (start + i + 1))

    reload_n(20, 0)                    # the allocator settles
    base = rss_kib(pid)
    reload_n(200, 20)
    grown = rss_kib(pid) - base
    with open("/proc/%d/maps" % pid) as f:
        asan = "libasan" in f.read()
    # an ASan build keeps freed memory in quarantine: there LeakSanitizer,
    # at the exit (the fixture's teardown reads its report), is the check
    if not asan:
        assert grown < 2048, "RSS grew by %d KiB over 200 reloads" % grown
    # the daemon still serves after them
    with d.dialog() as s:
        s.cmd("EHLO client.test", "250")


def test_no_attempt_starts_in_the_grace_period(fwd_env, qbins, tmp_path):
    """A submission that ends its DATA after SIGTERM (the grace period lets
    it) is committed and answered 250, but its delivery waits for the next
    start: nothing new starts once stopping (issue 12, point 14).  An mx
    client in the middle of a transaction keeps the daemon in its grace
    period (3 s) meanwhile."""
    r = fwd_env.remote("remote.test")
    sub = submission_daemon(fwd_env.daemon, tmp_path / "sasl", extra_conf="shutdown_grace 3s")
    d = ready(sub.d)
    mx = d.dialog()
    c = sub.login_dialog(ALICE, USERS[ALICE])
    try:
        mx.cmd("EHLO client.test", "250")
        mx.cmd("MAIL FROM:<joe@sender.test>", "250")
        mx.cmd("RCPT TO:<bob@example.test>", "250")
        c.cmd("MAIL FROM:<%s>" % ALICE, "250")
        c.cmd("RCPT TO:<carol@remote.test>", "250")
        c.cmd("DATA", "354")
        c.send("Subject: in the grace period\r\n\r\nhello\r\n")
        d.signal(signal.SIGTERM)
        wait_until(lambda: "stopping signal=15" in d.log(), 10, what="stopping")
        c.send(".\r\n")
        c.expect("250")
        assert d.wait(timeout=20) == 0      # the grace period ends it
    finally:
        c.close()
        mx.close()
    log = d.log()
    grace = log[log.index("stopping signal=15"):]
    assert "queue stored" in grace
    assert r.connections == [], "a delivery started in the grace period:\n" + grace
    # not lost: the next start delivers it
    d.start()
    ready(d, 2)
    wait_until(lambda: len(r.delivered()) == 1, 20, what="the delivery after the restart")
    assert b"Subject: in the grace period" in r.delivered()[0].content

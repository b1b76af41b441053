"""Crash safety of the queue (doc/protocol.md, "The queue": a crash or
kill -9 at any moment loses no queued message; on restart the queue picks up
where it was) and its behaviour on a full disk.

test_kill_9_loses_nothing queues N messages (several recipients, local and
remote, several sizes) while both remotes are down, then brings the remotes
up with delays at DATA and at the final dot and, for a few rounds, SIGKILLs
chamoisd at a random moment (so that kills land during deliveries) and
starts a new chamoisd on the same config and queue_dir, until every
recipient has its copy.  Every message must arrive; a duplicate is only
allowed for a copy whose final dot reached the remote before a kill (the
remote took the message, chamoisd died before it recorded that: the window
SMTP leaves).  The seed is printed; CHAMOIS_CRASH_SEED replays one run.

The disk-full tests put queue_dir and maildir_root on a small tmpfs
(skipped when mounting is not permitted)."""

import os
import random
import re
import time
from collections import defaultdict

import pytest

import peers.remote
from harness import Dialog, crlf, dot_stuff, wait_until
from peers.remote import fwd_env  # noqa: F401
from peers.queue_util import (  # noqa: F401
    EX_TEMPFAIL, MAILBOXES, OWNER, qbins, bring_up, ctl_ok, free_kib, mount_tmpfs,
    queue, ready_count, relocate_state, sendmail, sendmail_ok, subject_of,
    timed_transaction_class, umount, wait_empty, wait_queue, wait_ready)

SENDER = "alice@example.test"
N = 40
RCPTS = [
    ["carol@remote.test"],
    ["dan@remote.test", "erin@other.test"],
    ["frank@other.test", "gina@remote.test", "bob@example.test"],
    ["hank@remote.test", "ivy@remote.test"],
    ["judy@other.test", "bob@example.test"],
]
SIZES = [400, 5000, 40000, 120000, 1500, 12000, 70000]
MIN_ROUNDS, MAX_ROUNDS = 3, 12


def crash_message(i):
    rcpts = RCPTS[i % len(RCPTS)]
    subject = "crash %02d" % i
    line = "%02d %s\n" % (i, "The quick brown fox jumps over the lazy dog. " * 2)
    body = ".leading dot %02d\n" % i
    while len(body) < SIZES[i % len(SIZES)]:
        body += line
    body += "end of %02d\n" % i
    head = ("From: Alice <%s>\nTo: %s\nSubject: %s\nMessage-ID: <crash.%02d@example.test>\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n" % (SENDER, ", ".join(rcpts), subject, i))
    return subject, rcpts, head + "\n" + body


def local_copies(d, address):
    """[(subject, mtime, path)] of every file in address's Maildir new/."""
    out = []
    for p in d.message_files(address):
        out.append((subject_of(p.read_bytes()), p.stat().st_mtime, p))
    return out


def test_kill_9_loses_nothing(fwd_env, qbins, monkeypatch):
    monkeypatch.setattr(peers.remote, "Transaction", timed_transaction_class())
    seed = int(os.environ.get("CHAMOIS_CRASH_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    print("crash test seed=%d (CHAMOIS_CRASH_SEED replays it)" % seed)

    remotes = {"remote.test": fwd_env.closed_remote("remote.test"),
               "other.test": fwd_env.closed_remote("other.test")}
    d = fwd_env.daemon(mailboxes=MAILBOXES,
                       extra_conf="queue_max_per_domain 4\nqueue_max_deliveries 8")
    starts = 1
    wait_ready(d, starts)

    # -- everything queued while the remotes are down -------------------
    expected = {}           # subject -> (rcpts, body in CRLF form)
    for i in range(N):
        subject, rcpts, msg = crash_message(i)
        sendmail_ok(qbins, d, rcpts, msg, sender=SENDER)
        expected[subject] = (rcpts, crlf(msg.split("\n\n", 1)[1]))
    remote_rcpts = sum(1 for r, _ in expected.values() for a in r if not a.endswith("@example.test"))

    def all_tried(msgs):
        return len(msgs) == N and all(
            x["state"] == ("delivered" if x["addr"].endswith("@example.test") else "deferred")
            and x["reply"] != "-" for m in msgs.values() for x in m["rcpts"])
    wait_queue(qbins, d, all_tried, "every remote recipient deferred once", timeout=30)

    # -- the remotes come up, slowly; kill -9 at random moments ----------
    def eod(conn, tx):
        tx.ack_time = time.monotonic()   # the 250 goes out right after
        return None                      # the default 250

    class SpreadDelay(dict):
        """Each transaction waits its own time before the reply to the
        final dot, so acknowledgements (and kills) spread out."""
        def get(self, step, default=None):
            if step == "eod":
                return rng.uniform(0.05, 1.2)
            return dict.get(self, step, default)

    for r in remotes.values():
        r.delay = SpreadDelay(data=0.05, eod=1)
        r.behaviour["eod"] = eod
        bring_up(r)

    def remote_done():
        got = set()
        for r in remotes.values():
            for tx in r.delivered():
                s = subject_of(tx.content)
                got.update((s, a) for a in tx.accepted)
        return all((s, a) in got for s, (rc, _) in expected.items() for a in rc
                   if not a.endswith("@example.test"))

    kills = []              # (monotonic, wall clock)
    rounds = 0
    while rounds < MAX_ROUNDS:
        if rounds > 0:
            d.start()
            starts += 1
            wait_ready(d, starts)
        rounds += 1
        ctl_ok(qbins, d, "flush")
        time.sleep(rng.uniform(0.05, 1.0))
        kills.append((time.monotonic(), time.time()))
        d.kill()
        d.stopped = True                 # killed on purpose
        if rounds >= MIN_ROUNDS and remote_done():
            break

    # -- a last, undisturbed run: the queue must drain -------------------
    d.start()
    starts += 1
    wait_ready(d, starts)
    ctl_ok(qbins, d, "flush")
    wait_empty(qbins, d, timeout=40)
    for r in remotes.values():
        r.wait_closed(10)
    assert d.stop() == 0

    # -- nothing lost ----------------------------------------------------
    deliveries = defaultdict(list)      # (subject, rcpt) -> [tx]
    for r in remotes.values():
        for tx in r.delivered():
            s = subject_of(tx.content)
            assert s in expected, "unknown message at %s: %r" % (r.name, tx)
            body = tx.content.partition(b"\r\n\r\n")[2]
            assert body == expected[s][1], "%s arrived changed at %s" % (s, r.name)
            assert tx.mail_from == SENDER, tx
            for a in tx.accepted:
                deliveries[(s, a)].append(tx)
    missing = [(s, a) for s, (rc, _) in expected.items() for a in rc
               if not a.endswith("@example.test") and not deliveries.get((s, a))]
    assert not missing, "lost: %r" % missing
    local = defaultdict(list)
    for subject, mtime, path in local_copies(d, "bob@example.test"):
        local[subject].append((mtime, path))
    lost_local = [s for s, (rc, _) in expected.items() if "bob@example.test" in rc
                  and not local.get(s)]
    assert not lost_local, "lost local copies: %r" % lost_local
    assert set(local) <= {s for s, (rc, _) in expected.items() if "bob@example.test" in rc}

    # -- duplicates only where the remote took the message before a kill -
    kill_mono = [k for k, _ in kills]
    dup_rcpts = 0
    dup_tx = set()
    unexplained = []

    def remote_domains(subject):
        return {x.split("@")[1] for x in expected[subject][0]} - {"example.test"}

    multi, single = set(), {}
    for key, txs in deliveries.items():
        txs = sorted(txs, key=lambda t: t.dot_time)
        dup_rcpts += len(txs) - 1
        for a, b in zip(txs, txs[1:]):
            dup_tx.add(id(b))
            ks = [k for k in kill_mono if a.dot_time <= k <= b.mail_time]
            if not ks:
                unexplained.append((key, a.dot_time, b.mail_time))
            elif len(remote_domains(key[0])) > 1:
                # the attempt's outcome is stored once every destination
                # has answered: the other domain may have been slower
                multi.add(id(b))
            else:
                single[id(b)] = ks[0] - getattr(a, "ack_time", a.dot_time)
    kill_wall = [w for _, w in kills]
    dup_local = 0
    for s, copies in local.items():
        copies.sort()
        dup_local += len(copies) - 1
        for (m1, _), (m2, _) in zip(copies, copies[1:]):
            # file times come from a coarse clock: allow it 50 ms
            if not any(m1 - 0.05 <= k <= m2 + 0.05 for k in kill_wall):
                unexplained.append((s, "local", m1, m2))
    txs = [t for r in remotes.values() for t in r.transactions()]
    cut_data = sum(1 for t in txs if t.data_started and not t.data_complete)
    cut_dot = sum(1 for t in txs if t.data_complete and t.eod_reply is None)
    in_flight = sum(1 for k in kill_mono if any(
        t.mail_time <= k and getattr(t, "ack_time", k + 1) >= k for t in txs))
    print("crash test: seed=%d rounds=%d kills=%d (%d with remote transactions in flight); "
          "transactions cut in DATA=%d, after the final dot=%d; remote recipient "
          "deliveries=%d for %d recipients, duplicates=%d recipients in %d transactions; "
          "local duplicates=%d; duplicate transactions of messages for two remote domains=%d, "
          "for one remote domain=%d (their ack-to-kill gaps: %s)"
          % (seed, rounds, len(kills), in_flight, cut_data, cut_dot,
             sum(len(v) for v in deliveries.values()), remote_rcpts, dup_rcpts,
             len(dup_tx), dup_local, len(multi), len(single),
             ", ".join("%.0f ms" % (g * 1000) for g in sorted(single.values())) or "-"))
    if os.environ.get("CRASH_DEBUG"):
        t0 = kills[0][0]
        print("kills", [round(k - t0, 2) for k in kill_mono])
        for r in remotes.values():
            for t in r.transactions():
                print(r.name, subject_of(t.content or b""), round(t.mail_time - t0, 2), t.dot_time and round(t.dot_time - t0, 2), getattr(t, "ack_time", None) and round(t.ack_time - t0, 2), t.eod_reply)
    assert not unexplained, "duplicates without a kill after the earlier copy: %r" % unexplained

    # -- no failure, no report, nothing lost in the log --------------------
    assert d.messages(OWNER) == [], "reports made: %r" % d.messages(OWNER)
    log = d.log()
    assert "LOST" not in log
    assert "queue report" not in log
    fwd_env.remotes.settle()
    assert fwd_env.remotes.null_sender_attempts() == []


# --------------------------------------------------------------------------
# a full disk


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs; unmounted at teardown (lazily if still busy)."""
    mnt = mount_tmpfs(tmp_path / "fs", "2m")
    try:
        yield mnt
    finally:
        umount(mnt)


def disk_message(i, size=40000):
    line = "%02d %s\n" % (i, "0123456789" * 7)
    return "From: Alice <%s>\nTo: carol@remote.test\nSubject: disk %02d\n\n%s" % (
        SENDER, i, line * (size // len(line)))


def test_disk_full_refuses_new_mail_and_keeps_the_queue(fwd_env, qbins, small_fs):
    # The remote takes the connection and says nothing until released: each
    # queued message's attempt waits there, so no attempt ends (and no new
    # state is written to the store) while the disk is full.  With a remote
    # that refused at once, the deferral of the last message that fitted was
    # written after the next message had filled the disk whenever that
    # attempt took longer than the next submission (a loaded or fresh
    # machine): "queue update: No space left on device", which the last
    # check below then found.
    held = fwd_env.remote("remote.test", hold="greeting")
    d = relocate_state(fwd_env.daemon(mailboxes=MAILBOXES, start=False), small_fs)
    try:
        d.start()
        wait_ready(d)
        # room that can be given back later: more than the queued bodies,
        # since removing them from the store also writes them to its log
        filler = small_fs / "filler"
        filler.write_bytes(b"\0" * 450 * 1024)

        queued = []
        for i in range(200):
            p = sendmail(qbins, d, ["carol@remote.test"], disk_message(i, 20000), sender=SENDER)
            if p.returncode != 0:
                break
            queued.append("disk %02d" % i)
        else:
            pytest.fail("the 2 MiB disk never filled up")
        assert p.returncode == EX_TEMPFAIL, (p.returncode, p.stderr)
        assert b"452 4.3.1" in p.stderr, p.stderr
        assert queued, "not even the first message fitted: %s" % d.log()[-3000:]
        assert d.running(), d.log()[-3000:]
        print("disk full after %d messages; %d KiB free" % (len(queued), free_kib(small_fs)))

        # the mx role, to a mailbox whose Maildir is on the full disk
        msg = crlf("From: <x@remote.test>\nTo: bob@example.test\nSubject: mx on a full disk\n\n"
                   + ("%s\n" % ("z" * 70)) * 4000)
        c = Dialog(d.host, d.port)
        try:
            c.expect("220")
            c.cmd("EHLO client.remote.test", "250")
            c.cmd("MAIL FROM:<x@remote.test>", "250")
            c.cmd("RCPT TO:<bob@example.test>", "250")
            c.cmd("DATA", "354")
            c.send(dot_stuff(msg) + b".\r\n")
            c.expect("452 4.3.1")
            c.cmd("QUIT", "221")
        finally:
            c.close()
        assert d.message_files("bob@example.test") == []
        assert d.running(), d.log()[-3000:]

        # what was queued before is still there, intact
        msgs, total = queue(qbins, d)
        assert len(msgs) == len(queued), (len(msgs), queued)
        shown = sorted(re.search(r"(?m)^Subject: (.*)$", ctl_ok(qbins, d, "show", id)).group(1)
                       for id in msgs)
        assert shown == sorted(queued)

        # space comes back, the remote speaks: everything goes out
        filler.unlink()
        r = held
        r.release()
        wait_until(lambda: len(r.delivered()) >= len(queued), 30,
                   what="%d queued messages delivered" % len(queued))
        wait_empty(qbins, d)
        got = sorted(subject_of(t.content) for t in r.delivered())
        assert got == sorted(queued), got
        for t in r.delivered():
            i = int(subject_of(t.content).split()[1])
            assert t.content.partition(b"\r\n\r\n")[2] == \
                crlf(disk_message(i, 20000).split("\n\n", 1)[1]), "disk %02d changed" % i
        # and new mail is taken again
        sendmail_ok(qbins, d, ["carol@remote.test"], disk_message(99, 2000), sender=SENDER)
        wait_until(lambda: len(r.delivered()) == len(queued) + 1, 20, what="the new message")
        assert d.running(), d.log()[-3000:]
        assert d.messages(OWNER) == []
        # every outcome reached the store (a failed update would leave a
        # delivered message there, to be sent again after a restart)
        assert "queue update" not in d.log(), d.log()[-3000:]
        assert d.stop() == 0
    finally:
        d.stop()


@pytest.fixture
def roomy_fs(tmp_path):
    """An 8 MiB tmpfs: room for a small queue, less than 16 MiB free."""
    mnt = mount_tmpfs(tmp_path / "fs8", "8m")
    try:
        yield mnt
    finally:
        umount(mnt)


def test_restart_after_kill_with_a_few_mib_free(fwd_env, qbins, roomy_fs):
    """A queue of one small message on a file system with about 6 MiB free must
    survive kill -9 and a restart (doc/protocol.md, "The queue": on restart the
    queue picks up where it was)."""
    fwd_env.closed_remote("remote.test")
    d = relocate_state(fwd_env.daemon(mailboxes=MAILBOXES, start=False), roomy_fs)
    try:
        d.start()
        wait_ready(d)
        sendmail_ok(qbins, d, ["carol@remote.test"], disk_message(1, 500), sender=SENDER)
        wait_queue(qbins, d, lambda m: len(m) == 1 and all(
            x["state"] == "deferred" for mm in m.values() for x in mm["rcpts"]), "deferred")
        before = free_kib(roomy_fs)
        d.kill()
        d.stopped = True
        n = ready_count(d)
        try:
            d.start()
            wait_ready(d, n + 1)
        except (RuntimeError, AssertionError) as e:
            pytest.fail("chamoisd does not start again after kill -9 with %d KiB free on "
                        "queue_dir's file system (now %d KiB free):\n%s"
                        % (before, free_kib(roomy_fs), str(e)[-1500:]), pytrace=False)
        msgs, _ = queue(qbins, d)
        assert len(msgs) == 1
        assert d.stop() == 0
    finally:
        d.stop()

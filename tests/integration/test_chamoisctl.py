"""chamoisctl(8) and the daemon's admin socket (doc/protocol.md, "The admin
socket"): queue, show, flush, delete, dump and restore against a real chamoisd
whose queue holds messages for a remote that is down (peers/remote.py: a closed
MX that is later brought up), and who may use the socket at all.

Messages enter the queue through bin/chamois-sendmail (chamois-sendmail(8))."""

import os
import pwd
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from harness import ROOT, rss_kib, wait_until
from peers.remote import fwd_env  # noqa: F401

SENDER = "joe@example.test"
MSG_RE = re.compile(r"^([0-9a-f]{16}) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\d+) <(.*)>$")
RCPT_RE = re.compile(r"^    (\S+) (pending|deferred|delivered|failed) attempts=(\d+) "
                     r"next=(\S+) reply=(.*)$")
TOTAL_RE = re.compile(r"^total: (\d+) messages?, (\d+) octets, (\d+) recipients? "
                      r"\((\d+) pending, (\d+) deferred, (\d+) delivered, (\d+) failed\)$")


# --------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="session")
def bins(tmp_path_factory):
    """Copies of chamoisctl and chamois-sendmail (a rebuild during the run
    cannot swap them), in a folder any user may enter; $CHAMOISCTL and
    $CHAMOIS_SENDMAIL name other builds."""
    d = tmp_path_factory.mktemp("ctlbin")
    out = {}
    for name in ("chamoisctl", "chamois-sendmail"):
        env = os.environ.get(name.upper().replace("-", "_"))
        src = Path(env) if env else ROOT / "bin" / name
        if not src.exists():
            pytest.skip("%s not built" % src)
        shutil.copy2(src, d / name)
        out[name] = d / name
    open_path(d)
    return out


def open_path(path):
    """Let every user traverse path and its parents (as the privilege-drop
    test of test_mx_limits.py does)."""
    path = Path(path)
    for p in [path] + list(path.parents):
        if p == Path("/"):
            break
        p.chmod(p.stat().st_mode | 0o011)


def wait_ready(d):
    """chamoisd accepts on its port as soon as it has called listen(),
    before its queue and local sockets are up; "ready" is logged after."""
    wait_until(lambda: "ready version=" in d.log(), timeout=20, what="chamoisd ready")
    return d


def ctl(bins, d, *args, user=None, input=None, timeout=60):
    """Run chamoisctl -f d.conf ARGS; returns the CompletedProcess
    (stdout/stderr as text unless input is bytes)."""
    kw = {}
    if user is not None:
        pw = pwd.getpwnam(user) if isinstance(user, str) else None
        uid = pw.pw_uid if pw else user
        gid = pw.pw_gid if pw else user
        kw = {"user": uid, "group": gid, "extra_groups": []}
    return subprocess.run([str(bins["chamoisctl"]), "-f", str(d.conf)] + list(args),
                          input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, cwd="/", **kw)


def ctl_ok(bins, d, *args, **kw):
    p = ctl(bins, d, *args, **kw)
    assert p.returncode == 0, (args, p.returncode, p.stdout[-2000:], p.stderr)
    return p.stdout.decode("utf-8", "replace")


def sendmail(bins, d, rcpts, subject, body="Hello from the queue.\n"):
    msg = ("From: Joe <%s>\nTo: %s\nSubject: %s\n\n%s"
           % (SENDER, ", ".join(rcpts), subject, body)).encode()
    p = subprocess.run([str(bins["chamois-sendmail"]), "-C", str(d.conf), "-i",
                        "-f", SENDER, "--"] + list(rcpts),
                       input=msg, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr, d.log()[-3000:])


def parse_queue(text):
    """chamoisctl queue output -> ({id: {arrival, size, sender, rcpts: [..]}}, total)"""
    msgs, cur, total = {}, None, None
    for line in text.splitlines():
        m = MSG_RE.match(line)
        if m:
            cur = {"arrival": m.group(2), "size": int(m.group(3)),
                   "sender": m.group(4), "rcpts": []}
            msgs[m.group(1)] = cur
            continue
        m = RCPT_RE.match(line)
        if m:
            assert cur is not None, text
            cur["rcpts"].append({"addr": m.group(1), "state": m.group(2),
                                 "attempts": int(m.group(3)), "next": m.group(4),
                                 "reply": m.group(5)})
            continue
        m = TOTAL_RE.match(line)
        assert m, "unexpected line %r in\n%s" % (line, text)
        total = [int(x) for x in m.groups()]
    assert total is not None, text
    return msgs, total


def queue(bins, d):
    return parse_queue(ctl_ok(bins, d, "queue"))


def wait_deferred(bins, d, count):
    """Every message deferred (tried once, a reply recorded); returns them."""
    def ready():
        msgs, _ = queue(bins, d)
        if len(msgs) != count:
            return None
        for m in msgs.values():
            for r in m["rcpts"]:
                if r["state"] != "deferred" or r["reply"] == "-":
                    return None
        return msgs
    return wait_until(ready, timeout=30, interval=0.2, what="%d deferred messages" % count)


def bring_up(remote):
    """Start a remote made with fwd_env.closed_remote (same address and port)."""
    remote.listening = True
    remote.start()
    return remote


def subjects(remote):
    out = []
    for tx in remote.delivered():
        m = re.search(rb"(?m)^Subject: (.*?)\r?$", tx.content)
        out.append(m.group(1).decode() if m else None)
    return sorted(out)


@pytest.fixture
def queued(fwd_env, bins):
    """A daemon whose queue holds two messages for remote.test, which is
    down: returns (daemon, closed remote, {id: subject})."""
    down = fwd_env.closed_remote("remote.test")
    d = wait_ready(fwd_env.daemon())
    sendmail(bins, d, ["carol@remote.test"], "first queued")
    sendmail(bins, d, ["dan@remote.test", "erin@remote.test"], "second queued")
    msgs = wait_deferred(bins, d, 2)
    by_subject = {}
    for id in msgs:
        text = ctl_ok(bins, d, "show", id)
        m = re.search(r"(?m)^Subject: (.*)$", text)
        by_subject[id] = m.group(1)
    assert sorted(by_subject.values()) == ["first queued", "second queued"]
    return d, down, by_subject


# --------------------------------------------------------------------------
# queue, show


def test_queue_lists_deferred_messages(queued, bins):
    d, _, ids = queued
    msgs, total = queue(bins, d)
    assert set(msgs) == set(ids)
    rcpts = sorted(r["addr"] for m in msgs.values() for r in m["rcpts"])
    assert rcpts == ["carol@remote.test", "dan@remote.test", "erin@remote.test"]
    for m in msgs.values():
        assert m["sender"] == SENDER
        assert m["size"] > 0
        for r in m["rcpts"]:
            assert r["state"] == "deferred"
            assert r["attempts"] >= 1
            assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", r["next"]), r
            assert r["reply"] != "-", r
    # total: 2 messages, N octets, 3 recipients, all deferred
    assert total[0] == 2 and total[2] == 3 and total[4] == 3, total
    assert total[1] == sum(m["size"] for m in msgs.values())


def test_show_prints_envelope_and_headers(queued, bins):
    d, _, ids = queued
    id = next(i for i, s in ids.items() if s == "second queued")
    text = ctl_ok(bins, d, "show", id)
    head, _, headers = text.partition("\n\n")
    lines = head.splitlines()
    m = MSG_RE.match(lines[0])
    assert m and m.group(1) == id and m.group(4) == SENDER, lines[0]
    assert [RCPT_RE.match(l).group(1) for l in lines[1:3]] == \
        ["dan@remote.test", "erin@remote.test"], head
    assert re.search(r"(?m)^owner: \S+", head), head
    assert re.search(r"(?m)^uid: (\d+|-)$", head), head
    assert re.search(r"(?m)^recipient dan@remote\.test: orig=dan@remote\.test remote ", head), head
    assert "Subject: second queued" in headers
    assert "From: Joe <%s>" % SENDER in headers
    assert "Hello from the queue" not in text, "show printed the body"
    # the id is case-insensitive; unknown and malformed ids are errors
    assert ctl(bins, d, "show", id.upper()).returncode == 0
    p = ctl(bins, d, "show", "0123456789abcdef")
    assert p.returncode == 1 and b"550" in p.stderr and b"no message" in p.stderr, p
    p = ctl(bins, d, "show", "xyz")
    assert p.returncode == 1 and b"501" in p.stderr, p


# --------------------------------------------------------------------------
# flush, delete


def test_flush_delivers_once_the_remote_is_up(queued, bins, fwd_env):
    d, down, ids = queued
    r = bring_up(down)
    out = ctl_ok(bins, d, "flush")
    assert re.search(r"retrying 3 deferred recipients in 2 messages", out), out
    wait_until(lambda: len(r.delivered()) == 2, timeout=30, what="both messages delivered")
    assert subjects(r) == ["first queued", "second queued"]
    [tx2] = [t for t in r.delivered() if b"second queued" in t.content]
    assert sorted(tx2.accepted) == ["dan@remote.test", "erin@remote.test"]
    wait_until(lambda: queue(bins, d)[0] == {}, timeout=10, what="an empty queue")
    assert queue(bins, d)[1][0] == 0
    fwd_env.assert_no_bounce()


def test_delete_removes_a_message_without_a_report(queued, bins, fwd_env):
    d, down, ids = queued
    gone = next(i for i, s in ids.items() if s == "first queued")
    out = ctl_ok(bins, d, "delete", gone)
    assert gone in out
    msgs, _ = queue(bins, d)
    assert gone not in msgs and len(msgs) == 1
    p = ctl(bins, d, "delete", gone)
    assert p.returncode == 1 and b"550" in p.stderr, p
    assert "deleted by the administrator" in d.log()
    r = bring_up(down)
    ctl_ok(bins, d, "flush")
    wait_until(lambda: len(r.delivered()) == 1, timeout=30, what="the other message")
    wait_until(lambda: queue(bins, d)[0] == {}, timeout=10, what="an empty queue")
    assert subjects(r) == ["second queued"]
    assert not any(b"first queued" in t.content for t in r.transactions())
    # no report anywhere: no Maildir file, no MAIL FROM:<>
    fwd_env.assert_no_bounce()


# --------------------------------------------------------------------------
# dump, restore


def read_dump(path):
    """Parse a dump file strictly (chamoisctl(8) DUMP FORMAT)."""
    data = Path(path).read_bytes()
    first, _, rest = data.partition(b"\n")
    assert first == b"chamois-queue-dump 1", first
    out = []
    while True:
        line, _, rest = rest.partition(b"\n")
        m = re.fullmatch(rb"message ([0-9a-f]{16}) (\d+) (\d+)", line)
        if not m:
            break
        el, bl = int(m.group(2)), int(m.group(3))
        env, body = rest[:el], rest[el + 1:el + 1 + bl]
        assert rest[el:el + 1] == b"\n" and rest[el + 1 + bl:el + 2 + bl] == b"\n"
        out.append((m.group(1).decode(), env, body))
        rest = rest[el + 2 + bl:]
    assert line == b"end %d" % len(out) and rest == b"", (line, rest[:200])
    return out


def test_dump_delete_restore_keeps_ids_and_states(queued, bins, tmp_path, fwd_env):
    d, down, ids = queued
    before, _ = queue(bins, d)
    dump = tmp_path / "queue.dump"
    p = ctl(bins, d, "dump", str(dump))
    assert p.returncode == 0, p
    assert p.stdout == b"", "dump to a file printed on stdout"
    assert dump.stat().st_mode & 0o777 == 0o600
    entries = read_dump(dump)
    assert sorted(e[0] for e in entries) == sorted(ids)
    for id, env, body in entries:
        assert id.encode() in env
        assert b"Subject: %s" % ids[id].encode() in body
        assert b"Hello from the queue." in body
    # the same dump on stdout
    out = ctl(bins, d, "dump")
    assert out.returncode == 0 and out.stdout.startswith(b"chamois-queue-dump 1\n")
    assert out.stdout.endswith(b"end 2\n")

    for id in ids:
        ctl_ok(bins, d, "delete", id)
    assert queue(bins, d)[0] == {}

    p = ctl(bins, d, "restore", str(dump))
    assert p.returncode == 0, p
    assert b"restored 2 messages, skipped 0" in p.stdout, p.stdout
    after, _ = queue(bins, d)
    assert set(after) == set(before)
    for id in before:
        assert after[id]["arrival"] == before[id]["arrival"]
        assert after[id]["sender"] == before[id]["sender"]
        assert after[id]["size"] == before[id]["size"]
        a = {r["addr"]: r for r in after[id]["rcpts"]}
        b = {r["addr"]: r for r in before[id]["rcpts"]}
        assert set(a) == set(b)
        for addr in a:
            assert a[addr]["state"] == "deferred"
            assert a[addr]["attempts"] >= b[addr]["attempts"]

    # restoring again: both are already queued
    p = ctl(bins, d, "restore", input=dump.read_bytes())        # from stdin
    assert p.returncode == 0, p
    assert b"restored 0 messages, skipped 2" in p.stdout, p.stdout
    assert p.stdout.count(b"already in the queue") == 2

    r = bring_up(down)
    ctl_ok(bins, d, "flush")
    wait_until(lambda: len(r.delivered()) == 2, timeout=30, what="restored messages delivered")
    assert subjects(r) == ["first queued", "second queued"]
    for tx in r.delivered():
        assert b"Hello from the queue.\r\n" in tx.content
    fwd_env.assert_no_bounce()


def test_restore_refuses_garbage_and_truncated_dumps(queued, bins, tmp_path):
    d, _, ids = queued
    p = ctl(bins, d, "restore", input=b"hello\nworld\n")
    assert p.returncode == 1 and b"not a chamois queue dump" in p.stderr, p

    dump = tmp_path / "q.dump"
    ctl_ok(bins, d, "dump", str(dump))
    data = dump.read_bytes()
    for id in ids:
        ctl_ok(bins, d, "delete", id)
    # the count on the end line must match
    p = ctl(bins, d, "restore", input=data.replace(b"end 2\n", b"end 3\n"))
    assert p.returncode == 1 and b"501" in p.stderr and b"says 3" in p.stderr, p
    for id in ids:
        ctl_ok(bins, d, "delete", id)
    # a dump cut in the middle of the second message: the first is restored
    first_len = data.index(b"\nmessage ", data.index(b"message ") + 1) + 1
    p = ctl(bins, d, "restore", input=data[:first_len + 40])
    assert p.returncode == 1 and b"ended early" in p.stderr, p
    assert b"1 message restored before" in p.stderr, p
    msgs, _ = queue(bins, d)
    assert len(msgs) == 1 and set(msgs) <= set(ids)
    # a body longer than its message line says
    bad = data.replace(b"Hello from the queue.", b"Hello!! from the queue.", 1)
    p = ctl(bins, d, "restore", input=bad)
    assert p.returncode == 1 and b"wrong length" in p.stderr, p


# --------------------------------------------------------------------------
# who may use it


def test_ordinary_user_is_refused(chamoisd, bins):
    d = wait_ready(chamoisd())
    open_path(d.dir)
    d.conf.chmod(0o644)
    d.queue_dir.chmod(0o711)
    assert ctl(bins, d, "queue").returncode == 0        # root may
    # the socket's mode stops nobody at connect()
    p = ctl(bins, d, "queue", user="nobody")
    assert p.returncode == 1, p
    assert b"permission denied" in p.stderr, p
    assert p.stdout == b""
    # a socket opened up by mistake: the daemon still checks the caller
    sock = d.queue_dir / "admin.sock"
    assert sock.stat().st_mode & 0o777 == 0o600
    sock.chmod(0o666)
    p = ctl(bins, d, "queue", user="nobody")
    assert p.returncode == 1, p
    assert b"530 permission denied" in p.stderr, p
    assert p.stdout == b""
    p = ctl(bins, d, "delete", "0123456789abcdef", user=4242)
    assert p.returncode == 1 and b"530 permission denied" in p.stderr, p
    log = d.log()
    assert re.search(r"admin\.\d+ refused uid=%d" % pwd.getpwnam("nobody").pw_uid, log), log
    assert re.search(r"admin\.\d+ refused uid=4242", log), log


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_configured_user_may_use_it(chamois_conf, bins):
    nobody = pwd.getpwnam("nobody")
    d = chamois_conf(extra_conf="user nobody")
    open_path(d.dir)
    d.dir.chmod(0o711)
    d.conf.chmod(0o644)
    wait_ready(d.start())
    try:
        sock = d.queue_dir / "admin.sock"
        st = sock.stat()
        assert st.st_uid == nobody.pw_uid and st.st_mode & 0o777 == 0o600
        p = ctl(bins, d, "queue", user="nobody")
        assert p.returncode == 0, p
        assert p.stdout.decode().startswith("total: 0 messages"), p.stdout
        assert ctl(bins, d, "queue").returncode == 0     # and root
        p = ctl(bins, d, "queue", user=4242)
        assert p.returncode == 1 and b"permission denied" in p.stderr, p
    finally:
        d.stop()
    assert not (d.queue_dir / "admin.sock").exists(), "socket left behind"


# --------------------------------------------------------------------------
# the client's own outcomes


def test_not_running_is_exit_75(chamois_conf, bins):
    d = chamois_conf()
    p = ctl(bins, d, "queue")
    assert p.returncode == 75, p
    assert b"chamoisd is not running" in p.stderr, p


@pytest.mark.parametrize("args", [[], ["bogus"], ["show"], ["delete"], ["queue", "x"],
                                  ["flush", "now"], ["show", "a", "b"], ["dump", "a", "b"]])
def test_usage_errors_are_exit_2(chamois_conf, bins, args):
    d = chamois_conf()
    p = ctl(bins, d, *args)
    assert p.returncode == 2, p
    assert b"usage: chamoisctl" in p.stderr


def test_raw_protocol(chamoisd):
    """The socket speaks lines: the last line is OK or ERR CODE TEXT."""
    d = wait_ready(chamoisd())

    def talk(data):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(d.queue_dir / "admin.sock"))
            s.sendall(data)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk

    assert talk(b"QUEUE\r\n").endswith(b"\nOK\n")
    assert talk(b"queue\n").endswith(b"\nOK\n")
    assert talk(b"NOPE\n").startswith(b"ERR 500 ")
    assert talk(b"QUEUE extra\n").startswith(b"ERR 501 ")
    assert talk(b"X" * 600 + b"\n").startswith(b"ERR 500 line too long")
    assert talk(b"DUMP\n") == b"chamois-queue-dump 1\nend 0\nOK\n"
    assert talk(b"RESTORE\nchamois-queue-dump 1\nend 0\n") == \
        b"restored 0 messages, skipped 0\nOK\n"
    assert talk(b"FLUSH\n").endswith(b"OK\n")



def test_restore_flood_that_never_reads_is_paused(queued, bins, tmp_path):
    """A RESTORE of endless copies of a message already queued makes a
    "skipped" line each; a client that never reads them stops being read
    once they pass the admin socket's output mark, so the daemon does not
    grow (issue 12, point 3; doc/security.md)."""
    d, down, ids = queued
    dump = tmp_path / "q.dump"
    ctl_ok(bins, d, "dump", str(dump))
    id, env, _ = read_dump(dump)[0]
    # the body is read but not looked at before the skip: keep frames small,
    # so that the lines answered outgrow what the kernel buffers hold
    frame = b"message %s %d 1\n" % (id.encode(), len(env)) + env + b"\nx\n"
    chunk = frame * max(1, (256 * 1024) // len(frame))
    limit = 96 * 1024 * 1024            # what the loop sends at most
    rss0 = rss_kib(d.proc.pid)
    sent = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.queue_dir / "admin.sock"))
        s.sendall(b"RESTORE\nchamois-queue-dump 1\n")
        s.settimeout(2.0)
        stalled = False
        view = memoryview(chunk)
        while sent < limit:
            try:
                n = s.send(view[sent % len(chunk):])   # the stream stays whole
                sent += n
            except socket.timeout:
                stalled = True          # the daemon stopped reading us
                break
        grown = (rss_kib(d.proc.pid) - rss0) / 1024
        print("restore flood: frame %d, sent %.1f MiB, VmRSS +%.1f MiB" % (len(frame), sent / 2**20, grown))
        if not stalled:
            s.settimeout(5)
            raise AssertionError("the daemon read %d MiB of a flood it answered but nobody "
                                 "read; it said %r" % (sent >> 20, s.recv(300)))
        assert sent < 32 * 1024 * 1024
        assert grown < 32
        # once we read, it goes on: the output drains and the lines are real
        s.settimeout(10)
        got = s.recv(65536)
        assert got.startswith(b"skipped %s: already in the queue\n" % id.encode()), got[:200]
    assert set(queue(bins, d)[0]) == set(ids)        # still serving, nothing changed


# --------------------------------------------------------------------------
# mailq (chamois-sendmail -bp, or invoked as mailq): the Postfix/sendmail
# listing from the same admin socket


def mailq(bins, d, *args, name=None, user=None):
    """chamois-sendmail -C d.conf ARGS (default -bp), or a link to it named
    name; returns the CompletedProcess with text output."""
    prog = str(bins["chamois-sendmail"])
    if name is not None:
        link = d.dir / name
        if not link.exists():
            link.symlink_to(prog)
        prog = str(link)
    kw = {}
    if user is not None:
        pw = pwd.getpwnam(user)
        kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    return subprocess.run([prog, "-C", str(d.conf)] + list(args or ["-bp"]),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=60, cwd="/", **kw)


def test_mailq_empty_queue(chamoisd, bins):
    d = wait_ready(chamoisd())
    for p in (mailq(bins, d), mailq(bins, d, "-v", name="mailq")):
        # as mailq, sendmail's other options are still read (and ignored)
        assert p.returncode == 0, p
        assert p.stdout == "Mail queue is empty\n", p


def test_mailq_lists_deferred_recipients_with_their_reply(queued, bins):
    d, _, ids = queued
    msgs, _ = queue(bins, d)
    for p in (mailq(bins, d), mailq(bins, d, name="mailq")):
        assert p.returncode == 0, p
        lines = p.stdout.split("\n")
        assert lines[0].startswith("-Queue ID-") and "-Sender/Recipient-" in lines[0], lines
        assert lines[-2] == "-- %d Kbytes in 2 Requests." % sum(
            (m["size"] + 1023) // 1024 for m in msgs.values()), lines
        for id, m in msgs.items():
            head = [l for l in lines if l.startswith(id + " ")]
            assert len(head) == 1, (id, lines)
            f = head[0].split()
            assert int(f[1]) == m["size"] and f[-1] == SENDER, head
            # each recipient, after its last reply in parentheses
            block = lines[lines.index(head[0]) + 1:]
            block = block[:block.index("")]
            want = []
            for r in m["rcpts"]:
                want += ["(%s)" % r["reply"], r["addr"]]
            assert [l.strip() for l in block] == want, (block, want)
            assert all(l.startswith(" " * 40) for l in block), block


def test_mailq_as_ordinary_user_says_who_may(chamoisd, bins):
    d = wait_ready(chamoisd())
    open_path(d.dir)
    d.conf.chmod(0o644)
    d.queue_dir.chmod(0o711)
    p = mailq(bins, d, name="mailq", user="nobody")
    assert p.returncode == 77, p          # EX_NOPERM
    assert p.stdout == ""
    assert "only root and chamoisd's user may list the queue" in p.stderr, p

"""Helpers for the queue tests (test_queue_delivery.py, test_queue_crash.py).

Messages enter the queue through bin/chamois-sendmail run as root, so the
owner of every message (the mailbox that gets its reports) is
root@example.test when that is a mailbox: MAILBOXES below includes it.
chamoisctl (`-f CONF queue|show|flush|delete`) is used to look at the
queue the way an administrator would.

    qbins                     session fixture: copies of chamoisctl and
                              chamois-sendmail (a rebuild cannot swap them)
    sendmail(qbins, d, rcpts, msg, sender=None) -> CompletedProcess
    ctl(qbins, d, *args) / ctl_ok(...) -> CompletedProcess / stdout text
    queue(qbins, d) -> ({id: {arrival, size, sender, rcpts: [...]}}, total)
    wait_ready(d, starts=1)   the n-th "ready version=" line is in the log
    wait_queue(qbins, d, pred, what)   poll `chamoisctl queue` until pred
    reports(d, mailbox) / parse_report(raw)   RFC 3464 reports, parsed with
                              the email package (policy default)
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from harness import ROOT, wait_until

OWNER = "root@example.test"
MAILBOXES = ("alice@example.test", "bob@example.test", OWNER)

MSG_RE = re.compile(r"^([0-9a-f]{16}) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\d+) <(.*)>$")
RCPT_RE = re.compile(r"^    (\S+) (pending|deferred|delivered|failed) attempts=(\d+) "
                     r"next=(\S+) reply=(.*)$")
TOTAL_RE = re.compile(r"^total: (\d+) messages?, (\d+) octets, (\d+) recipients? "
                      r"\((\d+) pending, (\d+) deferred, (\d+) delivered, (\d+) failed\)$")
EX_TEMPFAIL = 75


@pytest.fixture(scope="session")
def qbins(tmp_path_factory):
    d = tmp_path_factory.mktemp("qbin")
    out = {}
    for name in ("chamoisctl", "chamois-sendmail"):
        env = os.environ.get(name.upper().replace("-", "_"))
        src = Path(env) if env else ROOT / "bin" / name
        if not src.exists():
            pytest.skip("%s not built" % src)
        shutil.copy2(src, d / name)
        out[name] = d / name
    return out


def sendmail(qbins, d, rcpts, msg, sender=None, args=(), timeout=30):
    """Run chamois-sendmail -C d.conf [-f sender] ARGS -- RCPTS, msg on stdin
    (str or bytes, LF line ends)."""
    cmd = [str(qbins["chamois-sendmail"]), "-C", str(d.conf), "-i"]
    if sender is not None:
        cmd += ["-f", sender]
    cmd += list(args) + ["--"] + list(rcpts)
    if isinstance(msg, str):
        msg = msg.encode("utf-8")
    return subprocess.run(cmd, input=msg, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def sendmail_ok(qbins, d, rcpts, msg, sender=None, args=()):
    p = sendmail(qbins, d, rcpts, msg, sender=sender, args=args)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr, d.log()[-3000:])
    return p


def ctl(qbins, d, *args, timeout=30):
    return subprocess.run([str(qbins["chamoisctl"]), "-f", str(d.conf)] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          cwd="/")


def ctl_ok(qbins, d, *args):
    p = ctl(qbins, d, *args)
    assert p.returncode == 0, (args, p.returncode, p.stdout[-2000:], p.stderr)
    return p.stdout.decode("utf-8", "replace")


def parse_queue(text):
    """chamoisctl queue output -> ({id: {...}}, [totals])"""
    msgs, cur, total = {}, None, None
    for line in text.splitlines():
        m = MSG_RE.match(line)
        if m:
            cur = {"id": m.group(1), "arrival": m.group(2), "size": int(m.group(3)),
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


def queue(qbins, d):
    return parse_queue(ctl_ok(qbins, d, "queue"))


def rcpt_states(qbins, d):
    """{recipient address: (state, attempts, reply)} over the whole queue."""
    out = {}
    for m in queue(qbins, d)[0].values():
        for r in m["rcpts"]:
            out[r["addr"]] = (r["state"], r["attempts"], r["reply"])
    return out


def wait_queue(qbins, d, pred, what, timeout=30):
    """Poll `chamoisctl queue` until pred(msgs) is true; return msgs."""
    def check():
        msgs, _ = queue(qbins, d)
        return msgs if pred(msgs) else None
    try:
        return wait_until(check, timeout=timeout, interval=0.1, what=what)
    except AssertionError as e:
        raise AssertionError("%s\nlast queue:\n%s\nlog tail:\n%s"
                             % (e, ctl(qbins, d, "queue").stdout.decode(), d.log()[-4000:]))


def wait_empty(qbins, d, timeout=30):
    def empty(msgs):
        return msgs == {}
    # an empty dict is falsy: wait on the predicate, not the value
    wait_until(lambda: empty(queue(qbins, d)[0]), timeout=timeout, interval=0.1,
               what="an empty queue")


def all_deferred(msgs, n=None):
    """Every recipient of every message deferred, tried, with a reply."""
    if n is not None and len(msgs) != n:
        return False
    return bool(msgs) and all(r["state"] == "deferred" and r["reply"] != "-"
                              for m in msgs.values() for r in m["rcpts"])


def ready_count(d):
    return d.log().count("ready version=")


def wait_ready(d, starts=1, timeout=20):
    """The daemon logged its n-th "ready version=" line (the log file is
    appended to across restarts)."""
    wait_until(lambda: ready_count(d) >= starts, timeout,
               what="chamoisd ready (start #%d)" % starts)
    return d


# --------------------------------------------------------------------------
# reports


def reports(d, mailbox=OWNER):
    """Raw files in mailbox's Maildir new/ (bytes)."""
    return d.messages(mailbox)


def parse_report(raw):
    """A report file -> dict: msg (the email.message.EmailMessage), text,
    per_message (dict), recipients ([dict]), headers (the text of the
    rfc822-headers part), return_path (raw first header value)."""
    first = raw.split(b"\n", 1)[0]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = {"msg": msg, "return_path": None, "per_message": None, "recipients": [],
           "headers": None, "text": None, "parts": []}
    if first.lower().startswith(b"return-path:"):
        out["return_path"] = first.split(b":", 1)[1].strip().decode()
    if not msg.is_multipart():
        return out
    for part in msg.get_payload():
        ct = part.get_content_type()
        out["parts"].append(ct)
        if ct == "text/plain":
            out["text"] = part.get_content()
        elif ct in ("message/delivery-status", "message/global-delivery-status"):
            blocks = part.get_payload()
            fields = [{k.lower(): str(v) for k, v in b.items()} for b in blocks]
            out["per_message"], out["recipients"] = fields[0], fields[1:]
        elif ct in ("text/rfc822-headers", "message/global-headers"):
            p = part.get_payload(decode=True)
            out["headers"] = p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)
    return out


def recipient_block(rep, address):
    """The per-recipient block whose Final-Recipient is address."""
    found = [b for b in rep["recipients"]
             if b.get("final-recipient", "").split(";", 1)[-1].strip().lower()
             == address.lower()]
    assert len(found) == 1, "no single block for %s in %r" % (address, rep["recipients"])
    return found[0]


def fields_of(content, name):
    """Header values named name in a stored file (LF form, unfolded)."""
    head = content.split(b"\n\n", 1)[0]
    out = []
    cur = None
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and cur is not None:
            cur[1] += b" " + line.strip()
            continue
        n, _, v = line.partition(b":")
        cur = [n.decode("utf-8", "replace"), v.strip()]
        out.append(cur)
    return [v.decode("utf-8", "replace") for n, v in out if n.lower() == name.lower()]


def subject_of(content):
    m = re.search(rb"(?mi)^Subject: ([^\r\n]*)", content)
    return m.group(1).decode("utf-8", "replace") if m else None


def bring_up(remote):
    """Start a remote made with fwd_env.closed_remote (same address and port)."""
    remote.listening = True
    remote.start()
    return remote


# --------------------------------------------------------------------------
# timing records for the crash test


def timed_transaction_class():
    """A peers.remote.Transaction that also records, on the monotonic
    clock, when its MAIL arrived (mail_time) and when its final dot arrived
    (dot_time).  Install it for one test with
    monkeypatch.setattr(peers.remote, "Transaction", cls)."""
    import time

    import peers.remote as remote_mod

    class TimedTransaction(remote_mod.Transaction):
        def __init__(self, *a, **kw):
            self.mail_time = time.monotonic()
            self.dot_time = None
            self._complete = False
            super().__init__(*a, **kw)

        @property
        def data_complete(self):
            return self._complete

        @data_complete.setter
        def data_complete(self, value):
            if value and not self._complete:
                self.dot_time = time.monotonic()
            self._complete = value

    return TimedTransaction


# --------------------------------------------------------------------------
# a small tmpfs for the disk-full cases


def mount_tmpfs(path, size):
    """Mount a tmpfs of `size` ("2m") on path; pytest.skip when mounting is
    not permitted here."""
    import subprocess
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs",
                        str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % p.stdout.decode(errors="replace").strip())
    return path


def umount(path):
    import subprocess
    p = subprocess.run(["umount", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def free_kib(path):
    st = os.statvfs(str(path))
    return st.f_bavail * st.f_frsize // 1024


def relocate_state(d, root):
    """Point d's queue_dir and maildir_root into root (before d starts)."""
    root = Path(root)
    lines = [l for l in d.conf_lines()
             if l.split(None, 1)[:1] not in (["queue_dir"], ["maildir_root"])]
    lines += ["queue_dir %s" % (root / "queue"), "maildir_root %s" % (root / "maildir")]
    d.write_conf("\n".join(lines) + "\n")
    d.queue_dir = root / "queue"
    d.maildir_root = root / "maildir"
    return d


def submit_raw(d, data, timeout=10):
    """One connection to d's submit socket (doc/protocol.md, "The submit
    socket"): data sent, its one answer line."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(d.queue_dir / "submit.sock"))
    try:
        s.sendall(data)
    except OSError:
        pass
    out = b""
    try:
        while not out.endswith(b"\n"):
            chunk = s.recv(1024)
            if not chunk:
                break
            out += chunk
    except ConnectionResetError:
        pass
    s.close()
    return out.decode()

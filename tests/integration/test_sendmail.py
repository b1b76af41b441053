"""chamois-sendmail and the daemon's submit socket (chamois-sendmail(8);
doc/protocol.md, "The submit socket").

Every test runs bin/chamois-sendmail with `-C <the test's chamois.conf>`
against a started chamoisd, and checks what the queue delivered into the
local Maildirs (the queue delivers local recipients itself).  The cron
test runs the program as an ordinary user (nobody) with the exact options
Debian's cron passes.
"""

import grp
import os
import pwd
import re
import socket
import stat
import subprocess

import pytest

from pathlib import Path

from harness import ROOT, wait_until
from peers.queue_util import submit_raw

SENDMAIL = Path(os.environ.get("CHAMOIS_SENDMAIL") or ROOT / "bin" / "chamois-sendmail")
EX_USAGE, EX_DATAERR, EX_TEMPFAIL = 64, 65, 75


@pytest.fixture(autouse=True)
def _need_sendmail():
    if not SENDMAIL.exists():
        pytest.skip("%s not built" % SENDMAIL)


def run_sendmail(d, args, msg, as_nobody=False, timeout=30):
    """Run chamois-sendmail -C d.conf ARGS with msg on stdin."""
    cmd = [str(SENDMAIL), "-C", str(d.conf)] + list(args)
    if as_nobody:
        nobody = pwd.getpwnam("nobody")
        cmd = ["setpriv", "--reuid=%d" % nobody.pw_uid,
               "--regid=%d" % nobody.pw_gid, "--clear-groups", "--"] + cmd
    if isinstance(msg, str):
        msg = msg.encode("utf-8")
    return subprocess.run(cmd, input=msg, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def header_section(content):
    """The header fields of a delivered file: [(name, unfolded value)]."""
    head = content.split(b"\n\n", 1)[0]
    fields = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1] += b" " + line.strip()
        elif b":" in line:
            name, _, value = line.partition(b":")
            fields.append([name.decode(), value.strip()])
    return [(n, v.decode("utf-8", "replace")) for n, v in fields]


def fields(content, name):
    return [v for n, v in header_section(content) if n.lower() == name.lower()]


def body_of(content):
    return content.split(b"\n\n", 1)[1]


def make_traversable(d):
    """nobody must reach the config and the socket through the test's
    folders (pytest's are 0700)."""
    for parent in d.dir.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    d.dir.chmod(0o755)
    d.conf.chmod(0o644)


def ready(d):
    """The daemon is past its start-up (the port probe alone can be answered
    by another test's daemon that got the same port a moment earlier)."""
    wait_until(lambda: "ready version=" in d.log(), 20, what="chamoisd ready")
    return d


def one_message(d, address, timeout=15):
    (m,) = d.wait_messages(address, 1, timeout=timeout)
    return m


# --------------------------------------------------------------------------


def test_delivers_to_a_local_mailbox(chamoisd):
    d = ready(chamoisd())
    p = run_sendmail(d, ["alice@example.test"],
                     "Subject: hello\nTo: alice@example.test\n\nline one\nline two\n")
    assert p.returncode == 0, p.stderr
    m = one_message(d, "alice@example.test")
    assert fields(m, "Subject") == ["hello"]
    assert body_of(m).endswith(b"line one\nline two\n")
    assert b"\r" not in m
    # Message-ID and Date added when missing, exactly once
    (mid,) = fields(m, "Message-ID")
    assert re.match(r"^<[^<>@\s]+@mx\.example\.test>$", mid), mid
    assert len(fields(m, "Date")) == 1
    # a From: for the caller (root here)
    (frm,) = fields(m, "From")
    assert "root@example.test" in frm
    assert "queue submit uid=0 " in d.log()


def test_existing_message_id_and_date_kept(chamoisd):
    d = ready(chamoisd())
    msg = ("From: Alice <alice@example.test>\nTo: bob@example.test\n"
           "Message-ID: <own.1@client.test>\nDate: Thu, 01 Jan 2026 00:00:00 +0000\n"
           "Subject: own ids\n\nbody\n")
    p = run_sendmail(d, ["bob@example.test"], msg)
    assert p.returncode == 0, p.stderr
    m = one_message(d, "bob@example.test")
    assert fields(m, "Message-ID") == ["<own.1@client.test>"]
    assert fields(m, "Date") == ["Thu, 01 Jan 2026 00:00:00 +0000"]
    assert fields(m, "From") == ["Alice <alice@example.test>"]


def test_t_takes_to_cc_bcc_and_removes_bcc(chamoisd):
    d = ready(chamoisd(mailboxes=("alice@example.test", "bob@example.test",
                                  "carol@example.test")))
    msg = ("From: Sender <alice@example.test>\n"
           "To: \"Doe, Alice\" <alice@example.test>\n"
           "Cc: Friends: carol (C.);\n"
           "Bcc: Bob\n <bob@example.test>\n"
           "Subject: with bcc\n"
           "X-After-Bcc: kept   as is\n"
           "\n"
           "Bcc: this line is body, not a header\n")
    p = run_sendmail(d, ["-t"], msg)
    assert p.returncode == 0, p.stderr
    for who in ("alice@example.test", "bob@example.test", "carol@example.test"):
        m = one_message(d, who)
        assert fields(m, "Bcc") == [], who
        # nothing but the delivery's own Delivered-To names the Bcc recipient
        assert not [(n, v) for n, v in header_section(m)
                    if "bob@example.test" in v and n != "Delivered-To"], who
        assert b"\nX-After-Bcc: kept   as is\n" in m
        assert b"\nCc: Friends: carol (C.);\n" in m
        assert body_of(m) == b"Bcc: this line is body, not a header\n"


def test_bare_name_gets_the_first_local_domain(chamoisd):
    d = ready(chamoisd(domains=("example.test", "other.test")))
    p = run_sendmail(d, ["bob"], "Subject: bare\n\nhi\n")
    assert p.returncode == 0, p.stderr
    m = one_message(d, "bob@example.test")
    assert fields(m, "Subject") == ["bare"]


def test_command_line_recipients_added_to_t(chamoisd):
    d = ready(chamoisd())
    p = run_sendmail(d, ["-t", "bob"], "To: alice@example.test\nSubject: both\n\nx\n")
    assert p.returncode == 0, p.stderr
    one_message(d, "alice@example.test")
    one_message(d, "bob@example.test")


def test_dot_line_ends_without_i(chamoisd):
    d = ready(chamoisd())
    p = run_sendmail(d, ["alice"], "Subject: dot\r\n\r\nbefore\r\n..two\r\n.\r\nafter\r\n")
    assert p.returncode == 0, p.stderr
    m = one_message(d, "alice@example.test")
    assert body_of(m) == b"before\n..two\n"


def test_i_keeps_dot_lines(chamoisd):
    d = ready(chamoisd())
    p = run_sendmail(d, ["-oi", "alice"], "Subject: dot\n\nbefore\n.\nafter\n")
    assert p.returncode == 0, p.stderr
    m = one_message(d, "alice@example.test")
    assert body_of(m) == b"before\n.\nafter\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="running as nobody needs root")
def test_debian_cron_options_as_nobody(chamoisd):
    d = ready(chamoisd(aliases={"root@example.test": ["alice@example.test"]}))
    make_traversable(d)
    # what Debian's cron pipes into "sendmail -FCronDaemon -i -B8BITMIME -oem root"
    msg = ("From: root (Cron Daemon)\n"
           "To: root\n"
           "Subject: Cron <nobody@host> run-parts /etc/cron.hourly\n"
           "MIME-Version: 1.0\n"
           "Content-Type: text/plain; charset=UTF-8\n"
           "Content-Transfer-Encoding: 8bit\n"
           "X-Cron-Env: <SHELL=/bin/sh>\n"
           "\n"
           "caf\u00e9 output\n.\nlast line\n")
    p = run_sendmail(d, ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], msg,
                     as_nobody=True)
    assert p.returncode == 0, p.stderr
    m = one_message(d, "alice@example.test")
    assert body_of(m) == "caf\u00e9 output\n.\nlast line\n".encode()
    assert fields(m, "From") == ["root (Cron Daemon)"]
    # the caller's uid, recorded from SO_PEERCRED, not from anything it sent
    nobody = pwd.getpwnam("nobody")
    assert any("from userid %d" % nobody.pw_uid in v for v in fields(m, "Received"))
    log = d.log()
    assert re.search(r"queue submit uid=%d user=nobody .*owner=alice@example\.test"
                     % nobody.pw_uid, log), log
    assert "from=<nobody@example.test>" in log


@pytest.mark.skipif(os.geteuid() != 0, reason="running as nobody needs root")
def test_F_name_in_added_from_as_nobody(chamoisd):
    d = ready(chamoisd())
    make_traversable(d)
    p = run_sendmail(d, ["-FCronDaemon", "-i", "bob"], "Subject: no from\n\nx\n",
                     as_nobody=True)
    assert p.returncode == 0, p.stderr
    m = one_message(d, "bob@example.test")
    assert fields(m, "From") == ["CronDaemon <nobody@example.test>"]


def test_f_sets_the_envelope_sender(chamoisd):
    d = ready(chamoisd())
    p = run_sendmail(d, ["-f", "bob@example.test", "alice"], "Subject: f\n\nx\n")
    assert p.returncode == 0, p.stderr
    m = one_message(d, "alice@example.test")
    rp = fields(m, "Return-Path")
    assert rp in ([], ["<bob@example.test>"]), rp
    assert "from=<bob@example.test>" in d.log()


def test_not_running_exits_75(chamois_conf):
    d = chamois_conf()
    p = run_sendmail(d, ["alice@example.test"], "Subject: x\n\nx\n")
    assert p.returncode == EX_TEMPFAIL
    assert b"chamoisd is not running" in p.stderr


def test_stopped_daemon_exits_75(chamoisd):
    d = ready(chamoisd())
    assert d.stop() == 0
    p = run_sendmail(d, ["alice@example.test"], "Subject: x\n\nx\n")
    assert p.returncode == EX_TEMPFAIL
    assert b"chamoisd is not running" in p.stderr


def test_no_recipients_exits_64(chamoisd):
    d = ready(chamoisd())
    p = run_sendmail(d, [], "Subject: x\n\nx\n")
    assert p.returncode == EX_USAGE
    assert b"no recipients" in p.stderr
    p = run_sendmail(d, ["-t"], "Subject: x\n\nx\n")
    assert p.returncode == EX_USAGE


def test_too_many_recipients_refused(chamoisd):
    d = ready(chamoisd(max_recipients=2))
    p = run_sendmail(d, ["a@remote.test", "b@remote.test", "c@remote.test"], "x\n")
    assert p.returncode == EX_DATAERR
    assert b"5.5.3" in p.stderr


def test_too_big_refused(chamoisd):
    d = ready(chamoisd(max_message_size=10000))
    p = run_sendmail(d, ["alice"], "Subject: big\n\n" + ("x" * 99 + "\n") * 200)
    assert p.returncode == EX_DATAERR
    assert b"too big" in p.stderr


def test_nul_in_the_message_refused_exit_65(chamoisd):
    """issue 12, point 5: a NUL is refused, not converted (doc/chamois-sendmail.8):
    a next server that drops NUL would read <LF>NUL.<LF> as the end of data
    and the rest as a second transaction."""
    d = ready(chamoisd())
    p = run_sendmail(d, ["-i", "alice"], b"Subject: nul\n\nfirst part\n\x00.\n"
                     b"MAIL FROM:<bob@example.test>\nRCPT TO:<bob@example.test>\nDATA\n"
                     b"Subject: smuggled\n\nsmuggled\n.\n")
    assert p.returncode == EX_DATAERR, p
    assert b"message not sent: line 4 contains a NUL octet" in p.stderr, p.stderr
    # the submit socket refuses it too, for a client that is not chamois-sendmail
    body = b"Subject: raw nul\n\nfirst\n\x00.\nsecond\n"
    r = submit_raw(d, b"SENDER <>\nRCPT alice@example.test\nDATA %d\n" % len(body) + body)
    assert r.startswith("ERR 554 5.5.2 "), r
    # nothing was queued: the next message is the only one delivered
    p = run_sendmail(d, ["alice"], "Subject: after\n\nx\n")
    assert p.returncode == 0, p.stderr
    m = one_message(d, "alice@example.test")
    assert fields(m, "Subject") == ["after"]
    assert "queue submit uid=" in d.log() and d.log().count("queue submit uid=") == 1


def test_socket_modes(chamoisd):
    d = ready(chamoisd())
    sock = d.queue_dir / "submit.sock"
    st = sock.stat()
    assert stat.S_ISSOCK(st.st_mode)
    assert st.st_mode & 0o777 == 0o666
    assert d.queue_dir.stat().st_mode & 0o777 == 0o711


# -- the protocol, spoken directly ------------------------------------------


def test_protocol_ok_and_errors(chamoisd):
    d = ready(chamoisd())
    body = b"Subject: raw\r\n\r\nbare\rcr\n"
    r = submit_raw(d, b"SENDER <>\nRCPT alice@example.test\nRCPT ALICE@example.test\n"
                   b"DATA %d\n" % len(body) + body)
    assert re.match(r"^OK [0-9a-f]+\n$", r), r
    m = one_message(d, "alice@example.test")
    assert body_of(m) == b"bare\ncr\n"        # no bare CR enters the queue
    assert submit_raw(d, b"SENDER not an address\n").startswith("ERR 553 5.1.7 ")
    assert submit_raw(d, b"SENDER <>\nRCPT @@\n").startswith("ERR 501 5.1.3 ")
    assert submit_raw(d, b"SENDER <>\nDATA 3\nabc").startswith("ERR 503 ")
    assert submit_raw(d, b"RCPT a@b.test\n").startswith("ERR 503 ")
    assert submit_raw(d, b"HELO\n").startswith("ERR 500 ")
    assert submit_raw(d, b"S" * 5000 + b"\n").startswith("ERR 500 5.5.2 ")
    assert submit_raw(d, b"SENDER <>\nRCPT a@b.test\nDATA 99999999999\n").startswith(
        "ERR 552 5.3.4 ")
    # a client that goes away mid-message leaves nothing behind
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(d.queue_dir / "submit.sock"))
    s.sendall(b"SENDER <>\nRCPT bob@example.test\nDATA 100\nSubject: cut\n")
    s.close()
    wait_until(lambda: "submit aborted" in d.log(), what="the aborted submission")
    assert d.messages("bob@example.test") == []
    # the daemon still serves
    p = run_sendmail(d, ["bob"], "Subject: after\n\nx\n")
    assert p.returncode == 0, p.stderr
    one_message(d, "bob@example.test")


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_daemon_running_as_user(chamois_conf):
    """The socket is bound as root before the drop, served as `user`, and
    removed at the stop (queue_dir belongs to `user`)."""
    d = chamois_conf(extra_conf="user nobody",
                     aliases={"root@example.test": ["bob@example.test"]})
    make_traversable(d)
    d.dir.chmod(0o711)
    d.start()
    ready(d)
    sock = d.queue_dir / "submit.sock"
    assert sock.stat().st_mode & 0o777 == 0o666
    big = "Subject: big\n\n" + ("0123456789" * 7 + "\n") * 5000   # spills to disk
    p = run_sendmail(d, ["-i", "root"], big, as_nobody=True)
    assert p.returncode == 0, p.stderr
    m = one_message(d, "bob@example.test")
    assert body_of(m) == big.split("\n\n", 1)[1].encode()
    assert d.stop() == 0
    assert not sock.exists()
    p = run_sendmail(d, ["root"], "x\n")
    assert p.returncode == EX_TEMPFAIL


HOLDER = r"""
import socket, sys
held = []
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sys.argv[1])
    except OSError:
        break
    held.append(s)
print(len(held), flush=True)
sys.stdin.read()              # hold them until the test closes our stdin
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="running as other users needs root")
def test_one_uid_cannot_take_every_submit_slot(chamoisd):
    """uid nobody opens every connection it can and holds them; a
    chamois-sendmail run as uid daemon still gets its message in (issue 12,
    point 11: at most a quarter of the 32 slots per uid)."""
    d = ready(chamoisd(aliases={"daemon@example.test": ["alice@example.test"]}))
    make_traversable(d)
    nobody, daemon = pwd.getpwnam("nobody"), pwd.getpwnam("daemon")
    sock = str(d.queue_dir / "submit.sock")
    holder = subprocess.Popen(
        ["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
         "--clear-groups", "--", "/usr/bin/python3", "-c", HOLDER, sock, "40"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert int(holder.stdout.readline()) == 40    # connected (backlog)
        # the daemon has accepted them all: the last ones were refused
        wait_until(lambda: "submit refused uid=%d reason=max" % nobody.pw_uid
                   in d.log(), 10, what="nobody's connections refused")
        p = subprocess.run(
            ["setpriv", "--reuid=%d" % daemon.pw_uid, "--regid=%d" % daemon.pw_gid,
             "--clear-groups", "--", str(SENDMAIL), "-C", str(d.conf), "-i",
             "alice@example.test"],
            input=b"Subject: still served\n\nx\n", stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 0, (p.returncode, p.stderr)
        (m,) = d.wait_messages("alice@example.test", 1, timeout=15)
        assert fields(m, "Subject") == ["still served"]
        assert "submit refused uid=%d reason=max-per-uid" % nobody.pw_uid in d.log()
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


RACER_C = r"""
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char stop[4096]; struct stat st; time_t end = time(NULL) + 120;
    snprintf(stop, sizeof(stop), "%s.stop", argv[1]);
    for (unsigned long n = 0; ; n++) {
        if ((n & 0xffff) == 0 && (access(stop, F_OK) == 0 || time(NULL) > end))
            return 0;
        for (int i = 2; i < argc; i++)   /* a socket just bound: swap it */
            if (lstat(argv[i], &st) == 0 && S_ISSOCK(st.st_mode) &&
                unlink(argv[i]) == 0)
                symlink(argv[1], argv[i]);
    }
}
"""


# the fault injected: each AF_UNIX bind() returns only 200 ms after the
# socket file appeared, so the racer always wins the window a path-based
# chmod or chown would leave open (loaded with LD_PRELOAD)
SLOW_BIND_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>
#include <unistd.h>
int bind(int fd, const struct sockaddr *sa, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    int r;
    if (real == NULL)
        real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    r = real(fd, sa, len);
    if (r == 0 && sa->sa_family == AF_UNIX)
        usleep(200000);
    return r;
}
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the privilege drop needs root")
def test_socket_setup_follows_no_symlink(chamois_conf, tmp_path, monkeypatch):
    """queue_dir belongs to `user` (nobody), who keeps swapping the socket
    paths for symlinks to a root-owned file while chamoisd restarts, each
    bind() held back 200 ms: the file is never chmodded or chowned (issue
    12, point 7), and the sockets end with their documented modes and
    owners."""
    d = chamois_conf(extra_conf="user nobody")
    make_traversable(d)
    nobody = pwd.getpwnam("nobody")
    target = tmp_path / "root-owned"
    target.write_text("secret\n")
    target.chmod(0o600)
    socks = [str(d.queue_dir / "submit.sock"), str(d.queue_dir / "admin.sock")]
    src = tmp_path / "racer.c"
    src.write_text(RACER_C)
    subprocess.run(["cc", "-O2", "-o", str(tmp_path / "racer"), str(src)], check=True)
    (tmp_path / "slow_bind.c").write_text(SLOW_BIND_C)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(tmp_path / "slow_bind.so"),
                    str(tmp_path / "slow_bind.c"), "-ldl"], check=True)
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") + "verify_asan_link_order=0")
    monkeypatch.setenv("LD_PRELOAD", str(tmp_path / "slow_bind.so"))
    tmp_path.chmod(0o755)
    racer = subprocess.Popen(
        ["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
         "--clear-groups", "--", str(tmp_path / "racer"), str(target)] + socks)
    try:
        for _ in range(15):
            for p in socks:     # what the racer left would stop the start
                if os.path.islink(p):
                    os.unlink(p)
            try:
                d.start(timeout=5)
            except RuntimeError:
                pass            # the racer's symlink may stop a start: fine
            d.stop()
            st = target.stat()
            assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600), \
                "the root-owned file became uid %d mode %o" % (st.st_uid, st.st_mode & 0o777)
    finally:
        (tmp_path / "root-owned.stop").write_text("")
        racer.wait(timeout=20)
        monkeypatch.delenv("LD_PRELOAD")
    for p in socks:
        if os.path.lexists(p):
            os.unlink(p)
    d.start()
    ready(d)
    sub, adm = (os.lstat(p) for p in socks)
    assert stat.S_ISSOCK(sub.st_mode) and sub.st_mode & 0o777 == 0o666 and sub.st_uid == 0
    assert stat.S_ISSOCK(adm.st_mode) and adm.st_mode & 0o777 == 0o600
    assert (adm.st_uid, adm.st_gid) == (nobody.pw_uid, nobody.pw_gid)
def test_submit_socket_full_spool_is_err_452(chamoisd):
    # spool_max_size (doc/security.md "Spool space"), held by two mx sessions
    from test_mx_limits import MIB, hold_spool, release_spool, spool_octets, text_lines
    d = ready(chamoisd(max_message_size=10 * MIB, extra_conf="spool_max_size 3m"))
    holders = []
    try:
        hold_spool(d, holders)
        body = b"Subject: big\n\n" + text_lines(MIB).replace(b"\r\n", b"\n")
        r = submit_raw(d, b"SENDER <>\nRCPT bob@example.test\nDATA %d\n" % len(body)
                       + body, timeout=20)
        assert r.startswith("ERR 452 4.3.1 "), r
        assert spool_octets(d) <= 3 * MIB
        release_spool(d, holders)
        r = submit_raw(d, b"SENDER <>\nRCPT bob@example.test\nDATA %d\n" % len(body)
                       + body, timeout=20)
        assert re.match(r"^OK [0-9a-f]+\n$", r), r
        m = one_message(d, "bob@example.test")
        assert b"Subject: big" in m and len(m) > MIB * 9 // 10
        assert d.messages("alice@example.test") == []
    finally:
        for dlg in holders:
            dlg.close()

"""Session limits, storage failures, privilege drop and installation.

Limits are lowered through their chamois.conf keys so that each test is
quick; what is asserted is what a sending server sees on the wire and what
lands (or does not land) in the Maildirs.
"""

import os
import pwd
import subprocess
import time

import pytest

from pathlib import Path

from harness import (ROOT, Chamoisd, Dialog, dot_stuff, open_dirs_to_others, sample_message,
                     wait_until)


def send_message(d, rcpt, msg=None):
    dlg = d.dialog()
    dlg.cmd("EHLO client.remote.test", "250")
    dlg.cmd("MAIL FROM:<sender@remote.test>", "250 2.1.0")
    dlg.cmd("RCPT TO:<%s>" % rcpt, "250 2.1.5")
    dlg.cmd("DATA", "354")
    dlg.send(dot_stuff(msg or sample_message()) + b".\r\n")
    return dlg


def test_idle_timeout_gets_421_and_close(chamoisd):
    d = chamoisd(extra_conf="smtp_timeout 1s")
    dlg = d.dialog()
    dlg.cmd("EHLO client.remote.test", "250")
    reply = dlg.expect("421 4.4.2", timeout=10)
    assert "Timeout" in reply
    assert dlg.wait_closed(timeout=10)
    # the server still serves others
    dlg2 = d.dialog()
    dlg2.cmd("NOOP", "250 2.0.0")


def test_connections_per_address_limit(chamoisd):
    d = chamoisd(extra_conf="max_connections_per_address 2")
    first = first_dialog(d)
    second = first_dialog(d)
    third = Dialog(d.host, d.port)
    third.expect("421 4.7.0")
    assert third.wait_closed()
    # a slot frees up when a client leaves
    first.cmd("QUIT", "221")
    assert first.wait_closed()
    wait_until(lambda: _greets(d), what="a new connection to be accepted")
    second.cmd("NOOP", "250")


def _greets(d):
    dlg = Dialog(d.host, d.port)
    try:
        return dlg.read_reply().startswith("220")
    finally:
        dlg.close()


def first_dialog(d):
    """A greeted Dialog, once the start-up probe's connection is gone."""
    def attempt():
        dlg = Dialog(d.host, d.port)
        if dlg.read_reply().startswith("220"):
            return dlg
        dlg.close()
        return None
    return wait_until(attempt, what="a greeting")


def test_total_connection_limit(chamoisd):
    d = chamoisd(extra_conf="max_connections 1")
    first = first_dialog(d)
    second = Dialog(d.host, d.port)
    second.expect("421 4.7.0")
    first.cmd("NOOP", "250")


def test_too_many_errors_closes_the_session(chamoisd):
    d = chamoisd(extra_conf="max_errors 3")
    dlg = d.dialog()
    dlg.cmd("EHLO client.remote.test", "250")
    dlg.cmd("BOGUS", "500 5.5.1")
    dlg.cmd("RCPT TO:<alice@example.test>", "503 5.5.1")
    dlg.send(b"MAIL FROM:<bad address>\r\n")
    dlg.expect("501")
    dlg.expect("421 4.7.0")
    assert dlg.wait_closed()


def test_maildir_failure_is_451_and_nothing_stored(chamoisd):
    d = chamoisd()
    # a file where alice's Maildir should be: even root cannot make it
    domain_dir = d.maildir_root / "example.test"
    domain_dir.mkdir(parents=True, exist_ok=True)
    (domain_dir / "alice").write_text("not a directory\n")
    dlg = send_message(d, "alice@example.test")
    dlg.expect("451 4.3.0")
    dlg.cmd("QUIT", "221")
    assert not (d.maildir_root / "example.test" / "bob").exists()
    stored = [p for p in d.stored_files() if p.name != "alice"]
    assert stored == []
    assert "result=deferred" in d.log()


def test_failure_of_one_copy_leaves_no_copy(chamoisd):
    d = chamoisd(aliases={"team@example.test": ["alice@example.test", "bob@example.test"]})
    (d.maildir_root / "example.test").mkdir(parents=True, exist_ok=True)
    (d.maildir_root / "example.test" / "bob").write_text("in the way\n")
    dlg = send_message(d, "team@example.test")
    dlg.expect("451 4.3.0")
    assert d.messages("alice@example.test") == []
    alice_tmp = d.maildir("alice@example.test") / "tmp"
    assert not alice_tmp.exists() or list(alice_tmp.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_privilege_drop_to_user(tmp_path, request):
    nobody = pwd.getpwnam("nobody")
    d = Chamoisd(tmp_path / "d", extra_conf="user nobody")
    # nobody must be able to reach maildir_root through the test's folders
    for parent in d.dir.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    d.dir.chmod(0o711)
    d.start()
    request.addfinalizer(d.stop)
    # the tables were read as root; the Maildirs are written as nobody
    dlg = send_message(d, "alice@example.test")
    dlg.expect("250 2.0.0")
    dlg.cmd("QUIT", "221")
    (path,) = d.message_files("alice@example.test")
    st = path.stat()
    assert st.st_uid == nobody.pw_uid
    assert st.st_mode & 0o777 == 0o600
    assert (d.maildir("alice@example.test") / "new").stat().st_mode & 0o777 == 0o700
    status = open("/proc/%d/status" % d.proc.pid).read()
    uids = [l for l in status.splitlines() if l.startswith("Uid:")][0].split()[1:]
    assert set(int(u) for u in uids) == {nobody.pw_uid}


def test_make_install_destdir(tmp_path):
    dest = tmp_path / "dest"
    subprocess.run(["make", "-s", "install", "DESTDIR=%s" % dest], cwd=ROOT,
                   check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    found = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    names = {os.path.basename(p) for p in found}
    for want in ("chamoisd", "chamoisctl", "chamois-sendmail", "chamoisd.8",
                 "chamois.conf.5", "chamois.conf.sample", "chamoisd.service"):
        assert want in names, (want, sorted(found))
    unit = next(dest.rglob("chamoisd.service")).read_text()
    assert "@SBINDIR@" not in unit and "chamoisd -d -f" in unit
    sbin = next(p for p in dest.rglob("chamoisd") if p.is_file())
    assert os.access(sbin, os.X_OK)


def test_stale_tmp_files_cleaned_at_start(chamois_conf):
    """Files left in tmp/ by an interrupted delivery go after 36 hours
    (the Maildir convention); younger ones stay."""
    d = chamois_conf()
    tmp = d.maildir("alice@example.test") / "tmp"
    tmp.mkdir(parents=True)
    old, young = tmp / "1.M1P1.old", tmp / "2.M2P2.young"
    old.write_text("interrupted\n")
    young.write_text("in progress\n")
    day = 24 * 3600
    os.utime(old, (time.time() - 2 * day, time.time() - 2 * day))
    os.utime(young, (time.time() - day, time.time() - day))
    d.start()
    try:
        wait_until(lambda: not old.exists(), what="the stale tmp/ file to go")
        # the line comes once the whole tmp/ walk is done, after the unlink
        wait_until(lambda: "cleaned-tmp files=1" in d.log(), what="the cleaned-tmp line")
        assert young.exists()
    finally:
        assert d.stop() == 0


def test_early_talker_is_refused(chamoisd):
    """With greeting_delay, a client that talks before the greeting (RFC
    5321 4.3.1 says it must wait) is refused; a patient one is served."""
    d = chamoisd(extra_conf="greeting_delay 1s")
    early = Dialog(d.host, d.port)
    early.send(b"EHLO spam.engine.test\r\nMAIL FROM:<x@spam.test>\r\n")
    reply = early.read_reply(timeout=10)
    assert reply.startswith("554 5.5.1"), reply
    assert early.wait_closed()
    patient = Dialog(d.host, d.port)
    patient.expect("220", timeout=10)
    patient.cmd("EHLO patient.client.test", "250")
    patient.cmd("QUIT", "221")
    assert "reason=early-talker" in d.log()


def test_session_timeout_closes_a_long_session(chamoisd):
    d = chamoisd(extra_conf="session_timeout 2s")
    dlg = d.dialog()
    dlg.cmd("EHLO client.remote.test", "250")

    def closed_with_421():
        try:
            reply = dlg.cmd("NOOP", "")
        except Exception:
            return True
        return reply.startswith("421 4.4.2")
    wait_until(closed_with_421, timeout=15, interval=0.3,
               what="421 4.4.2 after session_timeout")
    assert "reason=session-timeout" in d.log()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as the user")
def test_check_reports_files_the_user_cannot_reload(chamois_conf):
    """-n checks that `user` can read what SIGHUP rereads after the drop."""
    d = chamois_conf(extra_conf="user nobody")
    open_dirs_to_others(d)                    # key.pem stays root's only
    rc, out = d.check_config()
    assert rc == 0, out     # a warning, as at the daemon's start (chamoisd(8), CHECKS)
    line = d.conf_line_number("tls_key")
    assert "chamois.conf:%d: warning: tls_key: user 'nobody' cannot read" % line in out, out
    assert "tls_cert" not in out and "mailboxes:" not in out, out
    (d.dir / "key.pem").chmod(0o640)
    os.chown(d.dir / "key.pem", 0, pwd.getpwnam("nobody").pw_gid)
    rc, out = d.check_config()
    assert rc == 0 and "warning" not in out, out


def test_tarpit_after_half_the_error_limit(chamoisd):
    """Past half of max_errors, each error reply holds the client's next
    command back (a tarpit), and it still gets every reply in order."""
    d = chamoisd(extra_conf="max_errors 8")
    dlg = d.dialog()
    dlg.cmd("EHLO client.remote.test", "250")
    for _ in range(5):
        dlg.cmd("BOGUS", "500 5.5.1")
    dlg.cmd("NOOP", "250 2.0.0")
    assert "smtp tarpit delay=1000ms errors=5" in d.log()
    tarpits = [l for l in d.log().splitlines() if "smtp tarpit" in l]
    assert len(tarpits) == 1, tarpits


def started_with_soft_nofile_256(chamoisd, max_connections, hard_needed):
    """a chamoisd started with a soft open-file limit of 256 (skipped when
    the hard limit is below hard_needed)"""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < hard_needed:
        pytest.skip("hard open-file limit %d is too low to show it" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        return chamoisd(extra_conf="max_connections %d\n" % max_connections)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def soft_nofile(d):
    limits = Path("/proc/%d/limits" % d.proc.pid).read_text()
    line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
    return int(line.split()[3])


def test_open_file_limit_raised_to_fit_max_connections(chamoisd):
    """chamoisd raises its soft open-file limit at start so max_connections
    (plus forwarding and queue connections) fit: started with a soft limit
    of 256, it must end up with room for 1,000 sessions."""
    d = started_with_soft_nofile_256(chamoisd, 1000, 2000)
    assert soft_nofile(d) >= 1000


def test_open_file_limit_follows_max_connections_on_reload(chamoisd):
    """a SIGHUP that raises max_connections raises the soft open-file
    limit again, up to the hard limit (chamois.conf(5))"""
    d = started_with_soft_nofile_256(chamoisd, 100, 4000)
    before = soft_nofile(d)
    assert before < 3000, before
    d.write_conf(d.conf.read_text().replace("max_connections 100\n",
                                            "max_connections 3000\n"))
    d.reload()
    wait_until(lambda: soft_nofile(d) >= 3000, 10, what="the raised open-file limit")


# -- spool_max_size (doc/security.md "Spool space") ------------------------

MIB = 1024 * 1024


def spool_octets(d):
    """Octets in the daemon's deleted spool files (its unlinked bodies in
    queue_dir), read from /proc/PID/fd."""
    total = 0
    fddir = Path("/proc/%d/fd" % d.proc.pid)
    for fd in os.listdir(fddir):
        try:
            target = os.readlink(fddir / fd)
            if target.startswith(str(d.queue_dir)) and target.endswith("(deleted)"):
                total += os.stat(fddir / fd).st_size
        except FileNotFoundError:
            pass  # closed meanwhile
    return total


def text_lines(octets, tag="x"):
    line = (tag * 78 + "\r\n").encode()
    return line * (octets // len(line))


def open_data(d, rcpt="alice@example.test"):
    dlg = d.dialog()
    dlg.cmd("EHLO client.remote.test", "250")
    dlg.cmd("MAIL FROM:<sender@remote.test>", "250 2.1.0")
    dlg.cmd("RCPT TO:<%s>" % rcpt, "250 2.1.5")
    return dlg


def hold_spool(d, holders, rcpt="alice@example.test"):
    """Two unfinished DATAs of 1.5 MiB each on d's mx port: with
    spool_max_size 3m the spool is then (nearly) full.  The dialogs are
    appended to holders as they open, for the caller to close."""
    for _ in range(2):
        dlg = open_data(d, rcpt)
        holders.append(dlg)
        dlg.cmd("DATA", "354")
        dlg.send(b"Subject: held\r\n\r\n" + text_lines(3 * MIB // 2))
    wait_until(lambda: spool_octets(d) >= 2 * (3 * MIB // 2 - 256 * 1024),
               timeout=20, what="two bodies spilled to the spool")


def release_spool(d, holders):
    for dlg in holders:
        dlg.close()
    del holders[:]
    wait_until(lambda: spool_octets(d) == 0, timeout=20,
               what="the spool files of the closed sessions to go")


def test_spool_space_is_bounded_with_452(chamoisd):
    d = chamoisd(max_message_size=10 * MIB, extra_conf="spool_max_size 3m")
    holders = []
    try:
        # two unfinished DATAs of 1.5 MiB each pin about 3 MiB of spool
        hold_spool(d, holders)
        # a third body does not fit: 452 4.3.1 at DATA or after the dot
        third = open_data(d)
        third.send("DATA\r\n")
        reply = third.read_reply()
        if reply.startswith("354"):
            third.send(b"Subject: third\r\n\r\n" + text_lines(MIB) + b".\r\n")
            reply = third.read_reply(timeout=20)
        assert reply.startswith("452 4.3.1"), reply
        third.cmd("QUIT", "221")
        third.close()
        assert d.stored_files() == []
        assert spool_octets(d) <= 3 * MIB
        # the holders leave: their spool is released and a message fits again
        release_spool(d, holders)
        dlg = open_data(d)
        dlg.cmd("DATA", "354")
        dlg.send(b"Subject: fits\r\n\r\n" + text_lines(MIB, "y") + b".\r\n")
        dlg.expect("250 2.0.0", timeout=20)
        dlg.cmd("QUIT", "221")
        dlg.close()
        msgs = d.wait_messages("alice@example.test")
        assert len(msgs) == 1 and b"Subject: fits" in msgs[0]
        assert len(msgs[0]) > MIB * 9 // 10  # LF line ends in the Maildir
    finally:
        for dlg in holders:
            dlg.close()


def test_spool_max_size_follows_a_reload(chamoisd):
    d = chamoisd(max_message_size=10 * MIB, extra_conf="spool_max_size 3m")
    holders = []
    big = b"Subject: after reload\r\n\r\n" + text_lines(MIB) + b".\r\n"
    try:
        hold_spool(d, holders)
        d.write_conf(d.conf.read_text().replace("spool_max_size 3m", "spool_max_size 8m"))
        d.reload()
        wait_until(lambda: "reload done" in d.log(), timeout=20, what="the reload")
        dlg = open_data(d)
        dlg.cmd("DATA", "354")
        dlg.send(big)
        dlg.expect("250 2.0.0", timeout=20)
        dlg.cmd("QUIT", "221")
        dlg.close()
        assert len(d.wait_messages("alice@example.test")) == 1
        # a lower bound refuses new spills at once, also with the spool in use
        d.write_conf(d.conf.read_text().replace("spool_max_size 8m", "spool_max_size 2m"))
        d.reload()
        wait_until(lambda: d.log().count("reload done") == 2, timeout=20,
                   what="the second reload")
        dlg = open_data(d)
        dlg.send("DATA\r\n")
        assert dlg.read_reply().startswith("452 4.3.1")
        dlg.cmd("QUIT", "221")
        dlg.close()
    finally:
        for dlg in holders:
            dlg.close()

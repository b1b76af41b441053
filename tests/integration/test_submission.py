"""Submission (doc/users.md; doc/protocol.md, "Submission", "AUTH", "Sender
policy", "The queue"): local users log in with SASL over TLS on the 587 role
(STARTTLS) or the 465 role (implicit TLS) and send through the queue.

Each test checks what a user or an administrator would see: mail programs
(smtplib, swaks, msmtp with the doc/users.md example config, a libsasl2
SCRAM client) logging in and sending, the messages in the Maildirs or at an
aiosmtpd remote behind a dnsmasq MX (peers/remote.py), the replies a raw
dialog gets, and the daemon's log lines (the fail2ban form).  Users are
made with saslpasswd2 (peers/sasl.py)."""

import email.utils
import os
import re
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest

import harness
from harness import ROOT, crlf, dot_stuff, unverified_context, wait_until
from peers.fail2ban import fail2ban_hosts
from peers.remote import fwd_env  # noqa: F401
from peers.queue_util import fields_of, parse_report, recipient_block, subject_of
from peers.sasl import (ALICE, BOB, CLIENT_NAME, USERS, b64, plain_b64, run_scram,
                        sasl_delete, sasl_users, saslpasswd, submission_daemon)

ALIASES = {"sales@example.test": [ALICE]}
DOC = ROOT / "doc" / "users.md"
SLOW = 30           # bound for replies that come after a login delay (max 8 s)


# --------------------------------------------------------------------------
# helpers


@pytest.fixture
def sub(chamoisd, tmp_path):
    """chamoisd with alice and bob in the sasldb, sales@ an alias of alice."""
    return submission_daemon(chamoisd, tmp_path / "sasl", aliases=ALIASES)


def fwd_sub(fwd_env, tmp_path, **kw):
    kw.setdefault("aliases", ALIASES)
    return submission_daemon(fwd_env.daemon, tmp_path / "sasl", **kw)


def message(subject, frm=ALICE, to=BOB, ids=True, body="Hello,\n\n.a dot line\nbye\n"):
    head = "From: Alice <%s>\nTo: %s\nSubject: %s\n" % (frm, to, subject)
    if ids:
        head += ("Message-ID: <%s@laptop.client.test>\n"
                 "Date: Thu, 01 Jan 2026 00:00:00 +0000\n" % re.sub(r"\W", "", subject))
    return head + "\n" + body


def send(c, sender, rcpts, msg, eod="250"):
    """One transaction on a logged-in Dialog; returns the reply to the dot."""
    c.cmd("MAIL FROM:<%s>" % sender, "250")
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r, "250")
    c.cmd("DATA", "354")
    c.send(dot_stuff(crlf(msg)) + b".\r\n")
    return c.expect(eod, timeout=SLOW)


def log_lines(d, pattern):
    return [m for m in re.finditer(pattern, d.log())]


def failures(d):
    """(session id, user, mechanism, delay ms) of each "auth failed" line."""
    return [(m.group(1), m.group(3), m.group(4), int(m.group(5))) for m in re.finditer(
        r"([0-9a-f]{16}) auth failed address=(\S+) user=(.*?) mechanism=(\S+) "
        r"delay=(\d+)ms\n", d.log())]


def wait_failures(d, n, timeout=10):
    wait_until(lambda: len(failures(d)) >= n, timeout, what="%d auth failed lines" % n)
    return failures(d)


def subjects(d, address):
    return sorted(subject_of(m) for m in d.messages(address))


def wait_subject(d, address, subject, timeout=30):
    wait_until(lambda: subject in subjects(d, address), timeout,
               what="%r in the Maildir of %s" % (subject, address))
    (m,) = [m for m in d.messages(address) if subject_of(m) == subject]
    return m


def our_received(content):
    """The Received field chamoisd's submission role wrote (unfolded)."""
    found = [r for r in fields_of(content, "Received") if "ESMTPSA" in r]
    assert len(found) == 1, fields_of(content, "Received")
    return found[0]


def send_long(c, line):
    """Send a long line; the transcript (shown on failure) keeps its length only."""
    c.send(line + "\r\n")
    c.transcript[-1] = ("C", b"<%d octets>" % (len(line) + 2))


def doc_block(first_line_prefix):
    """The fenced block of doc/users.md whose first line starts with the prefix."""
    text = DOC.read_text(encoding="utf-8")
    for m in re.finditer(r"```[^\n]*\n(.*?)```", text, re.S):
        if m.group(1).startswith(first_line_prefix):
            return m.group(1)
    raise AssertionError("no block starting with %r in %s" % (first_line_prefix, DOC))


# --------------------------------------------------------------------------
# logging in and sending: the user's view


def test_587_offers_auth_only_after_starttls(sub):
    s = sub.smtp()
    try:
        assert s.has_extn("starttls"), s.esmtp_features
        assert not s.has_extn("auth"), s.esmtp_features
        code, _ = s.starttls(context=unverified_context())
        assert code == 220
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3"), s.sock.version()
        code, _ = s.ehlo()
        assert code == 250
        mechs = s.esmtp_features.get("auth", "").upper().split()
        for m in ("PLAIN", "LOGIN", "SCRAM-SHA-256"):
            assert m in mechs, mechs
        assert not s.has_extn("starttls"), s.esmtp_features
    finally:
        s.close()


def test_plain_on_587_delivers_with_trace_and_adds_ids(sub):
    d = sub.d
    s = sub.smtp_tls()
    try:
        tls_version = s.sock.version()
        s.esmtp_features["auth"] = "PLAIN"          # smtplib would pick PLAIN anyway
        code, text = s.login(ALICE, USERS[ALICE])
        assert code == 235 and text.startswith(b"2.7.0"), (code, text)
        no_ids = message("no ids here", ids=False)
        assert s.sendmail(ALICE, [BOB], crlf(no_ids)) == {}
        with_ids = message("with ids")
        assert s.sendmail(ALICE, [BOB], crlf(with_ids)) == {}
        s.quit()
    finally:
        s.close()
    assert re.search(r"auth ok address=127\.0\.0\.1 user=alice@example\.test "
                     r"mechanism=PLAIN\n", d.log()), d.log()

    m = wait_subject(d, BOB, "no ids here")
    assert fields_of(m, "Return-Path") == ["<%s>" % ALICE]
    assert fields_of(m, "Delivered-To") == [BOB]
    rcv = our_received(m)
    assert rcv.startswith("from %s ([127.0.0.1])" % CLIENT_NAME), rcv
    assert "(authenticated as alice@example.test)" in rcv, rcv
    assert "with ESMTPSA" in rcv, rcv
    assert tls_version in rcv, (tls_version, rcv)
    (mid,) = fields_of(m, "Message-ID")
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", mid), mid
    (date,) = fields_of(m, "Date")
    assert email.utils.parsedate_to_datetime(date) is not None, date
    assert m.endswith(b"\n\nHello,\n\n.a dot line\nbye\n"), m

    m2 = wait_subject(d, BOB, "with ids")
    assert fields_of(m2, "Message-ID") == ["<withids@laptop.client.test>"]
    assert fields_of(m2, "Date") == ["Thu, 01 Jan 2026 00:00:00 +0000"]
    assert len(d.messages(BOB)) == 2


def test_login_mechanism_on_587(sub):
    d = sub.d
    s = sub.smtp_tls()
    try:
        s.esmtp_features["auth"] = "LOGIN"
        code, _ = s.login(ALICE, USERS[ALICE])
        assert code == 235
        assert s.sendmail(ALICE, [BOB], crlf(message("login via smtplib"))) == {}
        s.quit()
    finally:
        s.close()
    assert "user=alice@example.test mechanism=LOGIN" in d.log()
    # LOGIN without an initial response, the way older programs do it
    with sub.dialog() as c:
        assert c.cmd("AUTH LOGIN", "334 ") == "334 " + b64("Username:")
        assert c.cmd(b64(BOB), "334 ") == "334 " + b64("Password:")
        c.cmd(b64(USERS[BOB]), "235 2.7.0")
        send(c, BOB, [ALICE], message("login step by step", frm=BOB, to=ALICE))
        c.cmd("QUIT", "221")
    m = wait_subject(d, BOB, "login via smtplib")
    assert "(authenticated as alice@example.test)" in our_received(m)
    m = wait_subject(d, ALICE, "login step by step")
    assert "(authenticated as bob@example.test)" in our_received(m)


def test_remote_recipient_delivered_through_mx_sender_unchanged(fwd_env, tmp_path):
    r = fwd_env.remote("remote.test")
    sub = fwd_sub(fwd_env, tmp_path)
    s = sub.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        msg = message("to carol", to="carol@remote.test")
        assert s.sendmail(ALICE, ["carol@remote.test"], crlf(msg)) == {}
        s.quit()
    finally:
        s.close()
    wait_until(lambda: r.delivered(), 30, what="delivery at remote.test")
    (tx,) = r.delivered()
    assert tx.mail_from == ALICE, tx
    assert tx.accepted == ["carol@remote.test"], tx
    head, _, body = tx.content.partition(b"\r\n\r\n")
    assert body == b"Hello,\r\n\r\n.a dot line\r\nbye\r\n", body
    assert b"Subject: to carol\r\n" in head
    assert b"(authenticated as alice@example.test)" in head, head
    fwd_env.assert_no_bounce()


def test_nul_smuggling_through_the_queue_refused(fwd_env, tmp_path):
    """issue 12, point 5: a logged-in user's <CRLF>NUL.<CRLF> and a second
    transaction behind it, whose MAIL FROM names another user, would reach the
    next server through the queue; a NUL gets 521 5.5.2 at once, nothing is
    queued, the connection is closed (doc/protocol.md, "Message content")."""
    r = fwd_env.remote("remote.test")
    sub = fwd_sub(fwd_env, tmp_path)
    d = sub.d
    c = sub.login_dialog(ALICE, USERS[ALICE])
    c.cmd("MAIL FROM:<%s>" % ALICE, "250 2.1.0")
    c.cmd("RCPT TO:<carol@remote.test>", "250 2.1.5")
    c.cmd("DATA", "354")
    c.send(b"From: %s\r\nSubject: first\r\n\r\nfirst part\r\n\x00.\r\n" % ALICE.encode())
    c.expect("521 5.5.2")
    assert c.wait_closed(), "connection not closed after 521"
    try:
        c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<carol@remote.test>\r\nDATA\r\n"
               b"From: %s\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n"
               % (BOB.encode(), BOB.encode()))
    except OSError:
        pass
    c.close()
    assert "submission queue user=" not in d.log()
    assert re.search(r"smtp disconnect reason=nul\n", d.log()), d.log()
    # the next message is the only one the remote ever sees
    s = sub.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        assert s.sendmail(ALICE, ["carol@remote.test"],
                          crlf(message("after", to="carol@remote.test"))) == {}
        s.quit()
    finally:
        s.close()
    wait_until(lambda: r.delivered(), 30, what="delivery at remote.test")
    (tx,) = r.delivered()
    assert tx.mail_from == ALICE and b"Subject: after\r\n" in tx.content, tx
    assert b"\x00" not in tx.content and b"smuggled" not in tx.content
    assert [t.mail_from for t in r.transactions()] == [ALICE], r.transcript()
    fwd_env.assert_no_bounce()


def test_465_implicit_tls_login_and_send(sub):
    d = sub.d
    s = sub.smtps()
    try:
        assert not s.has_extn("starttls"), s.esmtp_features
        assert "PLAIN" in s.esmtp_features.get("auth", "").upper().split(), s.esmtp_features
        tls_version = s.sock.version()
        s.login(BOB, USERS[BOB])
        assert s.sendmail(BOB, [ALICE], crlf(message("over 465", frm=BOB, to=ALICE))) == {}
        s.quit()
    finally:
        s.close()
    m = wait_subject(d, ALICE, "over 465")
    rcv = our_received(m)
    assert "(authenticated as bob@example.test)" in rcv and tls_version in rcv, rcv
    assert fields_of(m, "Return-Path") == ["<%s>" % BOB]


# --------------------------------------------------------------------------
# real mail programs


@pytest.mark.parametrize("implicit", [False, True], ids=["587-tls", "465-tlsc"])
def test_swaks(sub, implicit):
    if shutil.which("swaks") is None:
        pytest.skip("swaks not installed")
    subject = "swaks %s" % ("465" if implicit else "587")
    cmd = ["swaks", "--server", "%s:%d" % (sub.host, sub.sport if implicit else sub.port),
           "--tlsc" if implicit else "--tls",
           "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", USERS[ALICE],
           "--from", ALICE, "--to", BOB, "--helo", CLIENT_NAME,
           "--header", "Subject: %s" % subject, "--timeout", "30"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=90, text=True)
    assert p.returncode == 0, p.stdout
    assert "235 2.7.0" in p.stdout, p.stdout
    m = wait_subject(sub.d, BOB, subject)
    assert "(authenticated as alice@example.test)" in our_received(m)


def msmtp_config(sub, workdir, auth=None):
    """doc/users.md's msmtp example, pointed at this daemon: the doc's own
    lines, with the host, ports, names, password file and log file of the
    test, and tls_certcheck off instead of the CA bundle (as the doc says
    to do for a self-signed certificate)."""
    text = doc_block("# ~/.msmtprc").replace("example.org", "example.test")
    pwfile = workdir / "chamois-password"
    pwfile.write_text(USERS[ALICE] + "\n")
    os.chmod(pwfile, 0o600)
    out, seen = [], set()
    for line in text.splitlines():
        words = line.split()
        key = words[0] if words and not line.startswith("#") else None
        if key == "auth" and auth:
            line = "auth           %s" % auth
        elif key == "tls_trust_file":
            line = "tls_certcheck  off"
        elif key == "logfile":
            line = "logfile        %s" % (workdir / "msmtp.log")
        elif key == "host":
            assert words[1] == "mail.example.test", line
            line = "host           %s" % sub.host
        elif key == "port":
            assert words[1] in ("587", "465"), line
            line = "port           %d" % (sub.port if words[1] == "587" else sub.sport)
        elif key == "passwordeval":
            line = 'passwordeval   "cat %s"' % pwfile
        elif key in ("from", "user"):
            assert words[1] == ALICE, line
        seen.add(key)
        out.append(line)
    for k in ("auth", "tls", "tls_starttls", "host", "port", "from", "user", "passwordeval",
              "account"):
        assert k in seen, "the doc's msmtp example has no %r line:\n%s" % (k, text)
    conf = workdir / "msmtprc"
    conf.write_text("\n".join(out) + "\n")
    os.chmod(conf, 0o600)
    return conf


@pytest.mark.parametrize("port,auth", [("587", None), ("465", None), ("587", "scram-sha-256")],
                         ids=["587", "465", "587-scram"])
def test_msmtp_with_the_doc_example(fwd_env, tmp_path, port, auth):
    if shutil.which("msmtp") is None:
        pytest.skip("msmtp not installed")
    r = fwd_env.remote("remote.test")
    sub = fwd_sub(fwd_env, tmp_path)
    work = tmp_path / "msmtp"
    work.mkdir()
    conf = msmtp_config(sub, work, auth)
    account = [] if port == "587" else ["-a", "chamois-465"]

    def msmtp(args, msg):
        p = subprocess.run(["msmtp", "-C", str(conf)] + account + args,
                           input=msg.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=90)
        log = (work / "msmtp.log").read_text() if (work / "msmtp.log").exists() else ""
        assert p.returncode == 0, (p.returncode, p.stdout, log, sub.d.log()[-3000:])

    # a mail program hands msmtp the message and lets it read the recipients
    local = "msmtp %s local" % port
    msmtp(["-t"], message(local, ids=False))
    # or gives them on the command line
    remote = "msmtp %s remote" % port
    msmtp(["carol@remote.test"], message(remote, to="carol@remote.test", ids=False))

    m = wait_subject(sub.d, BOB, local)
    assert fields_of(m, "Return-Path") == ["<%s>" % ALICE]
    assert "(authenticated as alice@example.test)" in our_received(m)
    wait_until(lambda: r.delivered(), 30, what="delivery at remote.test")
    (tx,) = r.delivered()
    assert tx.mail_from == ALICE and tx.accepted == ["carol@remote.test"], tx
    assert subject_of(tx.content) == remote
    mechs = re.findall(r"auth ok address=127\.0\.0\.1 user=alice@example\.test "
                       r"mechanism=(\S+)", sub.d.log())
    assert len(mechs) == 2, sub.d.log()
    if auth:
        assert mechs == [auth.upper()] * 2, mechs
    fwd_env.assert_no_bounce(local={BOB: 1})


def test_scram_sha_256_with_libsasl2_client(sub):
    ok = run_scram(sub, ALICE, USERS[ALICE])
    assert ok.returncode == 0 and "235" in ok.stdout, (ok.stdout, ok.stderr)
    ok = run_scram(sub, BOB, USERS[BOB], implicit=True)
    assert ok.returncode == 0 and "235" in ok.stdout, (ok.stdout, ok.stderr)
    ok = run_scram(sub, BOB, USERS[BOB], mech="SCRAM-SHA-1")
    assert ok.returncode == 0 and "235" in ok.stdout, (ok.stdout, ok.stderr)
    log = sub.d.log()
    assert "auth ok address=127.0.0.1 user=alice@example.test mechanism=SCRAM-SHA-256" in log
    assert "auth ok address=127.0.0.1 user=bob@example.test mechanism=SCRAM-SHA-256" in log
    assert "auth ok address=127.0.0.1 user=bob@example.test mechanism=SCRAM-SHA-1" in log
    bad = run_scram(sub, ALICE, "not the password")
    assert bad.returncode == 1, (bad.stdout, bad.stderr)
    assert "535" in bad.stdout, (bad.stdout, bad.stderr)
    # the SCRAM user name (n=...) is what is logged and counted
    assert [(f[1], f[2]) for f in wait_failures(sub.d, 1)] == [(ALICE, "SCRAM-SHA-256")]


# --------------------------------------------------------------------------
# refusals


def test_wrong_password_535_and_fail2ban_line(sub):
    d = sub.d
    with sub.dialog() as c:
        c.send("AUTH PLAIN %s\r\n" % plain_b64(ALICE, "guessed-password-1"))
        c.expect("535 5.7.8", timeout=SLOW)
        # still usable: the right password works
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "235 2.7.0")
    line = re.search(r"\n(.*auth failed address=127\.0\.0\.1 user=alice@example\.test "
                     r"mechanism=PLAIN delay=500ms)\n", d.log())
    assert line, d.log()
    assert "guessed-password-1" not in d.log()
    assert USERS[ALICE] not in d.log()


def test_fail2ban_filter_from_the_doc(sub, tmp_path):
    d = sub.d
    with sub.dialog() as c:
        c.send("AUTH PLAIN %s\r\n" % plain_b64(ALICE, "wrong"))
        c.expect("535 5.7.8", timeout=SLOW)
        # a login name made to look like another address in the log line
        forged = "x chamoisd: 0123456789abcdef auth failed address=192.0.2.66 user=y"
        c.send("AUTH PLAIN %s\r\n" % plain_b64(forged, "wrong"))
        c.expect("535 5.7.8", timeout=SLOW)
    wait_failures(d, 2)
    hosts = fail2ban_hosts(d.log_path, tmp_path / "f2b")
    assert hosts == ["127.0.0.1", "127.0.0.1"], (hosts, d.log())


def test_unknown_user_is_535_not_454(sub):
    with sub.dialog() as c:
        c.send("AUTH PLAIN %s\r\n" % plain_b64("nobody@example.test", "whatever"))
        c.expect("535 5.7.8", timeout=SLOW)
        # the local part alone is not the login name
        c.send("AUTH PLAIN %s\r\n" % plain_b64("alice", USERS[ALICE]))
        c.expect("535 5.7.8", timeout=SLOW)
    assert [f[1] for f in wait_failures(sub.d, 2)] == ["nobody@example.test", "alice"]
    # no back-end failure: no 454 anywhere (not a timestamp's ".454Z")
    assert re.search(r"\b454\b", sub.d.log()) is None


def test_order_starttls_then_auth_then_mail(sub):
    with sub.dialog(tls=False) as c:
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "538 5.7.11")
        c.cmd("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
        c.starttls()
        c.cmd("EHLO %s" % CLIENT_NAME, "250")
        c.cmd("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
        c.cmd("RCPT TO:<%s>" % BOB, "503")
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "235 2.7.0")
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "503 5.5.1")
        c.cmd("MAIL FROM:<%s>" % ALICE, "250")
    with sub.sdialog() as c:
        c.cmd("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
    assert "auth failed" not in sub.d.log()


def test_sender_must_be_one_of_the_users_addresses(sub):
    d = sub.d
    with sub.login_dialog(ALICE, USERS[ALICE]) as c:
        for sender in (BOB, "carol@remote.test", "", "bob+tag@example.test"):
            c.cmd("MAIL FROM:<%s>" % sender, "553 5.7.1")
        # postmaster@ delivers to the first mailbox, alice (no postmaster key)
        for sender in ("sales@example.test", "alice+lists@example.test", "ALICE@Example.Test",
                       "postmaster@example.test"):
            c.cmd("MAIL FROM:<%s>" % sender, "250")
            c.cmd("RSET", "250")
        send(c, "sales@example.test", [BOB], message("from the alias", frm="sales@example.test"))
        c.cmd("QUIT", "221")
    assert "auth sender-refused user=alice@example.test from=<bob@example.test>" in d.log()
    m = wait_subject(d, BOB, "from the alias")
    assert fields_of(m, "Return-Path") == ["<sales@example.test>"]
    assert "(authenticated as alice@example.test)" in our_received(m)


def test_failures_in_a_session_slow_down_then_close(sub):
    d = sub.d
    with sub.dialog() as c:
        c.send("AUTH PLAIN %s\r\n" % plain_b64(ALICE, "wrong-1"))
        c.expect("535 5.7.8", timeout=SLOW)
        c.cmd("AUTH LOGIN", "334")
        c.cmd(b64(ALICE), "334")
        c.send(b64("wrong-2") + "\r\n")
        c.expect("535 5.7.8", timeout=SLOW)
        c.send("AUTH PLAIN %s\r\n" % plain_b64(ALICE, "wrong-3"))
        # the third 535 is 2 s away: it did not come at once
        time.sleep(0.3)
        assert c.pending() == b"", c.pending()
        c.expect("535 5.7.8", timeout=SLOW)
        c.expect("421 4.7.0", timeout=SLOW)
        assert c.wait_closed(SLOW), "connection left open after the 421"
    f = failures(d)
    assert len({x[0] for x in f}) == 1, f                # one session
    assert [(x[1], x[2], x[3]) for x in f] == [
        (ALICE, "PLAIN", 500), (ALICE, "LOGIN", 1000), (ALICE, "PLAIN", 2000)], f


def test_address_locked_out_after_ten_failures_others_go_on(sub):
    d = sub.d
    logged = sub.login_dialog(BOB, USERS[BOB])          # logged in before the failures
    waiting = []
    try:
        # ten failures from 127.0.0.1 in ten connections: delays 0.5, 1, 2, 4,
        # then 8 s, each connection waiting on its own 535
        # (ten names: the per-user limit, five, is another test's)
        for i in range(10):
            c = sub.dialog()
            waiting.append(c)
            c.send("AUTH PLAIN %s\r\n" % plain_b64("user%d@example.test" % i, "guess-%d" % i))
            wait_failures(d, i + 1)
        delays = [x[3] for x in failures(d)]
        assert delays == [500, 1000, 2000, 4000] + [8000] * 6, delays
        last = waiting[-1]

        # meanwhile the logged-in session sends, and a client of the mx role
        # from the same address delivers; both complete before the last 535
        send(logged, BOB, [ALICE], message("during the lockout", frm=BOB, to=ALICE))
        s = harness.smtp_client(d)
        try:
            assert s.sendmail("someone@remote.test", [ALICE],
                              harness.sample_message("port 25 during the lockout")) == {}
        finally:
            s.close()
        assert last.pending() == b"", "the delayed 535 came before the others completed"

        # a new login from the address is refused at once, right password or not
        with sub.dialog() as c:
            c.cmd("NOOP", "250")                       # no AUTH: still served
            c.cmd("AUTH PLAIN %s" % plain_b64(BOB, USERS[BOB]), "421 4.7.0")
            assert c.wait_closed(SLOW)
        with sub.sdialog() as c:
            c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "421 4.7.0")
            assert c.wait_closed(SLOW)
        assert len(failures(d)) == 10, failures(d)
        assert len(log_lines(d, r"auth refused address=127\.0\.0\.1 "
                                r"reason=too-many-failures")) == 2, d.log()

        # every waiting connection gets its 535 (one failure each: no 421)
        for c in waiting:
            c.expect("535 5.7.8", timeout=SLOW)
            c.cmd("NOOP", "250")
        # the logged-in session is not affected by any of it
        send(logged, BOB, [ALICE], message("after the lockout", frm=BOB, to=ALICE))
        logged.cmd("QUIT", "221")
    finally:
        logged.close()
        for c in waiting:
            c.close()
    wait_subject(d, ALICE, "during the lockout")
    wait_subject(d, ALICE, "after the lockout")
    wait_subject(d, ALICE, "port 25 during the lockout")


def user_refusals(d):
    return [m.group(1) for m in re.finditer(
        r"auth refused address=127\.0\.0\.1 reason=too-many-user-failures user=(\S*)\n",
        d.log())]


def test_valid_account_does_not_reset_another_users_failures(sub):
    """Issue 12 (a): the holder of a valid account (alice) guesses bob's
    password from the same address, logging in as alice between guesses.
    Her logins forgive only themselves: after five failures bob is refused
    (454 4.7.0) without his password being checked, and alice still works."""
    d = sub.d
    waiting = []
    try:
        for i in range(5):
            with sub.login_dialog(ALICE, USERS[ALICE]) as c:
                c.cmd("QUIT", "221")
            c = sub.dialog()
            waiting.append(c)
            c.send("AUTH PLAIN %s\r\n" % plain_b64(BOB, "guess-%d" % i))
            wait_failures(d, i + 1)
        for c in waiting:
            c.expect("535 5.7.8", timeout=SLOW)
        for i in range(3):
            with sub.login_dialog(ALICE, USERS[ALICE]) as c:
                c.cmd("QUIT", "221")
            with sub.dialog() as c:
                c.cmd("AUTH PLAIN %s" % plain_b64(BOB, "guess-more-%d" % i), "454 4.7.0")
                # the same answer to the right password: nothing is checked
                c.cmd("AUTH PLAIN %s" % plain_b64(BOB, USERS[BOB]), "454 4.7.0")
                c.cmd("NOOP", "250")
    finally:
        for c in waiting:
            c.close()
    assert [f[1] for f in failures(d)] == [BOB] * 5, d.log()
    assert user_refusals(d) == [BOB] * 6, d.log()
    assert len(log_lines(d, r"auth ok address=127\.0\.0\.1 user=alice@example\.test")) == 8


def test_exchanges_parked_at_334_are_counted_when_they_start(sub):
    """Issue 12 (b): fifteen connections from one address each start AUTH
    LOGIN and sit at the password's 334 before any of them fails.  Only ten
    exchanges start (the address limit); the others get 421 4.7.0 at AUTH,
    and after the ten wrong passwords the address is still locked out."""
    d = sub.d
    parked, refused = [], 0
    try:
        for i in range(15):
            c = sub.dialog()
            c.send("AUTH LOGIN\r\n")
            reply = c.read_reply(SLOW)
            if reply.startswith("334 "):
                c.cmd(b64("parked%d@example.test" % i), "334 " + b64("Password:"))
                parked.append(c)
            else:
                assert reply.startswith("421 4.7.0"), reply
                assert c.wait_closed(SLOW)
                c.close()
                refused += 1
        assert (len(parked), refused) == (10, 5), (len(parked), refused)
        assert failures(d) == [], d.log()
        for c in parked:
            c.send(b64("wrong") + "\r\n")
        for c in parked:
            c.expect("535 5.7.8", timeout=SLOW)
        with sub.dialog() as c:
            c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "421 4.7.0")
    finally:
        for c in parked:
            c.close()
    assert len(failures(d)) == 10, d.log()
    assert len(log_lines(d, r"auth refused address=127\.0\.0\.1 "
                            r"reason=too-many-failures\n")) == 6, d.log()


def test_user_counter_keys_on_the_canonical_name(sub):
    """Issue 12 (c): libsasl2 trims blanks around a login name, so
    " alice@example.test" is alice.  Failures spelled five ways count
    against one user, are logged under one name, and then alice is refused
    (454 4.7.0), however her name is spelled and even with her password."""
    d = sub.d
    spellings = [" alice@example.test", "ALICE@example.test", "alice@EXAMPLE.TEST",
                 "\talice@example.test ", "Alice@Example.Test"]
    waiting = []
    try:
        for i, name in enumerate(spellings):
            c = sub.dialog()
            waiting.append(c)
            c.send("AUTH PLAIN %s\r\n" % plain_b64(name, "guess-%d" % i))
            wait_failures(d, i + 1)
        for c in waiting:
            c.expect("535 5.7.8", timeout=SLOW)
        with sub.dialog() as c:
            c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "454 4.7.0")
            c.cmd("AUTH PLAIN %s" % plain_b64("  ALICE@example.test", USERS[ALICE]),
                  "454 4.7.0")
            # LOGIN and SCRAM name the user in a later message: refused there
            c.cmd("AUTH LOGIN", "334")
            c.cmd(b64(" alice@example.test"), "454 4.7.0")
            # another user is not affected
            c.cmd("AUTH PLAIN %s" % plain_b64(BOB, USERS[BOB]), "235 2.7.0")
    finally:
        for c in waiting:
            c.close()
    bad = run_scram(sub, " alice@example.test", USERS[ALICE])
    assert "454" in bad.stdout, (bad.stdout, bad.stderr)
    assert [f[1] for f in failures(d)] == [ALICE] * 5, d.log()
    assert user_refusals(d) == [ALICE] * 4, d.log()


# --------------------------------------------------------------------------
# the sasldb while chamoisd runs


def test_sasldb_changes_take_effect_without_restart(chamoisd, tmp_path):
    sub = submission_daemon(chamoisd, tmp_path / "sasl", users={ALICE: USERS[ALICE]})
    d, db = sub.d, sub.db
    assert sasl_users(db) == [ALICE]
    with sub.dialog() as c:
        c.send("AUTH PLAIN %s\r\n" % plain_b64(BOB, USERS[BOB]))
        c.expect("535 5.7.8", timeout=SLOW)
    # a new user, as doc/users.md says
    saslpasswd(db, BOB, USERS[BOB])
    assert sasl_users(db) == [ALICE, BOB]
    with sub.login_dialog(BOB, USERS[BOB]) as c:
        send(c, BOB, [ALICE], message("bob is new", frm=BOB, to=ALICE))
    wait_subject(d, ALICE, "bob is new")
    # a changed password (no -c), old one refused, new one works
    saslpasswd(db, ALICE, "a new password", create=False)
    with sub.dialog() as c:
        c.send("AUTH PLAIN %s\r\n" % plain_b64(ALICE, USERS[ALICE]))
        c.expect("535 5.7.8", timeout=SLOW)
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, "a new password"), "235 2.7.0")
    # a deleted user
    sasl_delete(db, BOB)
    assert sasl_users(db) == [ALICE]
    with sub.dialog() as c:
        c.send("AUTH PLAIN %s\r\n" % plain_b64(BOB, USERS[BOB]))
        c.expect("535 5.7.8", timeout=SLOW)
    assert "reload" not in d.log() and d.log().count("ready version=") == 1


def test_missing_sasldb_is_454_until_it_appears(chamoisd, tmp_path):
    work = tmp_path / "sasl"
    work.mkdir()
    db = work / "sasldb2"
    sub = submission_daemon(chamoisd, work, sasl_db=db)
    d = sub.d
    assert "cannot read sasl_db" in d.log()
    with sub.dialog() as c:
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "454 4.7.0")
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "454 4.7.0")
        # a back-end failure is no login failure: no delay, no 421
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "454 4.7.0")
        c.cmd("NOOP", "250")
    saslpasswd(db, ALICE, USERS[ALICE])
    with sub.login_dialog(ALICE, USERS[ALICE]):
        pass
    # taken away while running, then back
    os.rename(db, work / "elsewhere")
    with sub.dialog() as c:
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "454 4.7.0")
    os.rename(work / "elsewhere", db)
    with sub.login_dialog(ALICE, USERS[ALICE]):
        pass
    assert failures(d) == [], d.log()
    assert "auth temporary-failure address=127.0.0.1" in d.log()


# --------------------------------------------------------------------------
# limits and protocol details


def test_max_messages_per_hour(chamoisd, tmp_path):
    sub = submission_daemon(chamoisd, tmp_path / "sasl", aliases=ALIASES,
                            extra_conf="max_messages_per_hour 2")
    d = sub.d
    with sub.login_dialog(ALICE, USERS[ALICE]) as c:
        send(c, ALICE, [BOB], message("first of the hour"))
        send(c, "sales@example.test", [BOB], message("second of the hour"))
        c.cmd("MAIL FROM:<%s>" % ALICE, "451 4.7.1")
    # a new connection does not reset it; another user has their own count
    with sub.login_dialog(ALICE, USERS[ALICE], implicit=True) as c:
        c.cmd("MAIL FROM:<%s>" % ALICE, "451 4.7.1")
    with sub.login_dialog(BOB, USERS[BOB]) as c:
        send(c, BOB, [ALICE], message("bob is not limited", frm=BOB, to=ALICE))
    assert "auth rate-limited user=alice@example.test" in d.log()
    wait_subject(d, BOB, "first of the hour")
    wait_subject(d, BOB, "second of the hour")
    wait_subject(d, ALICE, "bob is not limited")
    assert len(d.messages(BOB)) == 2


def test_cancel_and_unknown_mechanism(sub):
    with sub.dialog() as c:
        c.cmd("AUTH LOGIN", "334")
        c.cmd("*", "501 5.0.0")
        c.cmd("AUTH PLAIN", "334")
        c.cmd("*", "501 5.0.0")
        c.cmd("AUTH CRAM-MD5", "504 5.5.4")
        c.cmd("AUTH SCRAM-SHA-256-PLUS", "504 5.5.4")
        c.cmd("AUTH PLAIN !!notbase64!!", "501")
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "235 2.7.0")
    assert failures(sub.d) == [], sub.d.log()


def test_auth_response_line_over_12288_octets(sub):
    with sub.dialog() as c:
        c.cmd("AUTH LOGIN", "334")
        send_long(c, "A" * 13000)
        c.expect("500 5.5.6")
        c.cmd("NOOP", "250")
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "235 2.7.0")


def test_auth_response_line_far_over_the_limit_gets_one_reply(sub):
    """A line longer than a TLS record reaches the server in pieces: it must
    still be answered once, and the next command's reply must be its own."""
    with sub.dialog() as c:
        c.cmd("AUTH LOGIN", "334")
        send_long(c, "A" * 40000)
        c.expect("500 5.5.6")
        c.cmd("NOOP", "250")


def test_auth_command_line_over_12288_octets(sub):
    with sub.dialog() as c:
        send_long(c, "AUTH PLAIN " + "A" * 13000)
        c.expect("500 5.5.6")
        c.cmd("NOOP", "250")


def test_auth_command_line_longer_than_a_command_but_within_12288(sub):
    """RFC 4954 4 and doc/protocol.md, "Limits": an AUTH line (initial response
    included) may be 12288 octets, more than the 2048 of other commands."""
    with sub.dialog() as c:
        send_long(c, "AUTH PLAIN %s" % plain_b64(ALICE, "x" * 4000))
        c.expect("535 5.7.8", timeout=SLOW)
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "235 2.7.0")


# --------------------------------------------------------------------------
# reports go to the logged-in user


def test_bounce_for_alias_sender_reaches_the_users_maildir(fwd_env, tmp_path):
    text = "550 5.1.1 <nobody@remote.test>: no such user here"
    r = fwd_env.remote("remote.test", rcpt={"nobody@remote.test": text})
    sub = fwd_sub(fwd_env, tmp_path)
    d = sub.d
    with sub.login_dialog(ALICE, USERS[ALICE]) as c:
        send(c, "sales@example.test", ["nobody@remote.test"],
             message("sales offer", frm="sales@example.test", to="nobody@remote.test"))
        c.cmd("QUIT", "221")
    d.wait_messages(ALICE, 1, timeout=30)
    wait_until(lambda: "queue report delivered" in d.log(), 10, what="report logged")
    (raw,) = d.messages(ALICE)
    rep = parse_report(raw)
    msg = rep["msg"]
    assert rep["return_path"] == "<>", raw[:300]
    assert msg.get_content_type() == "multipart/report", msg["Content-Type"]
    assert msg.get_param("report-type") == "delivery-status"
    assert ALICE in str(msg["To"]) and "sales@" not in str(msg["To"]), msg["To"]
    b = recipient_block(rep, "nobody@remote.test")
    assert b["action"] == "failed" and b["status"] == "5.1.1", b
    assert "no such user here" in b["diagnostic-code"], b
    assert "Subject: sales offer" in (rep["headers"] or ""), rep["headers"]
    # the message went out from the alias, unchanged; no report over SMTP
    (tx,) = r.transactions()
    assert tx.mail_from == "sales@example.test" and tx.accepted == [], tx
    fwd_env.remotes.settle()
    time.sleep(1)       # give a wrong second report a moment to show up
    assert len(d.messages(ALICE)) == 1
    fwd_env.assert_no_bounce(local={ALICE: 1})


def _tls_context(version):
    ctx = unverified_context()
    ctx.minimum_version = version
    ctx.maximum_version = version
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")   # let the client offer old TLS
    except ssl.SSLError:
        pass
    return ctx


def _starttls_socket(sub, implicit):
    """A connection to the submission (587, after STARTTLS) or submissions
    (465) port, ready for the TLS handshake."""
    import socket
    raw = socket.create_connection((sub.host, sub.sport if implicit else sub.port),
                                   timeout=10)
    if not implicit:
        f = raw.makefile("rb")
        f.readline()
        raw.sendall(b"EHLO client.test\r\nSTARTTLS\r\n")
        while not f.readline().startswith(b"220 2.0.0"):
            pass
    return raw


@pytest.mark.parametrize("implicit", [False, True], ids=["587", "465"])
def test_submission_requires_tls_1_2(sub, implicit):
    """doc/protocol.md, "TLS": the submission roles take TLS 1.2 or newer
    only."""
    with _starttls_socket(sub, implicit) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            _tls_context(ssl.TLSVersion.TLSv1_1).wrap_socket(raw)
    # and TLS 1.2 works
    with _starttls_socket(sub, implicit) as raw:
        with _tls_context(ssl.TLSVersion.TLSv1_2).wrap_socket(raw) as t:
            assert t.version() == "TLSv1.2"


@pytest.mark.parametrize("implicit", [False, True], ids=["587", "465"])
def test_submission_offers_forward_secret_ciphers_only(sub, implicit):
    """Issue 7: a client that offers only RSA key exchange (no forward
    secrecy) gets no TLS on the submission roles; ECDHE works."""
    ctx = _tls_context(ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("AES256-GCM-SHA384:AES128-GCM-SHA256:AES256-SHA:AES128-SHA")
    with _starttls_socket(sub, implicit) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            ctx.wrap_socket(raw)
    ctx = _tls_context(ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("ECDHE-RSA-AES256-GCM-SHA384")
    with _starttls_socket(sub, implicit) as raw:
        with ctx.wrap_socket(raw) as t:
            assert t.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"


def test_queue_route_full_spool_is_452_nothing_queued(chamoisd, tmp_path):
    # spool_max_size (doc/security.md "Spool space"), held by two mx sessions
    import smtplib
    from test_mx_limits import MIB, hold_spool, release_spool, text_lines
    sub = submission_daemon(chamoisd, tmp_path / "sasl", aliases=ALIASES,
                            extra_conf="spool_max_size 3m", max_message_size=10 * MIB)
    d = sub.d
    holders = []
    big = ("From: %s\r\nTo: %s\r\nSubject: big one\r\n\r\n" % (ALICE, BOB)).encode() \
        + text_lines(MIB)
    try:
        hold_spool(d, holders, rcpt=ALICE)
        s = sub.smtp_tls()
        try:
            s.login(ALICE, USERS[ALICE])
            with pytest.raises(smtplib.SMTPDataError) as e:
                s.sendmail(ALICE, [BOB], big)
            assert e.value.smtp_code == 452 and e.value.smtp_error.startswith(b"4.3.1"), e.value
            s.rset()
            release_spool(d, holders)
            assert s.sendmail(ALICE, [BOB], big) == {}
            s.quit()
        finally:
            s.close()
        m = wait_subject(d, BOB, "big one")
        assert len(m) > MIB * 9 // 10
        assert len(d.messages(BOB)) == 1
    finally:
        for dlg in holders:
            dlg.close()

"""AUTH against Dovecot's passwords (sasl_backend dovecot SOCKET, doc/users.md
"Dovecot"): chamoisd asks a real Dovecot (Debian's dovecot-core, its
passwd-file passdb, peers/dovecot.py) over its auth-client socket, and the
user sees the same replies, delays, limits and log lines as with sasldb2
(test_submission.py)."""

import re
import signal

import pytest

from harness import crlf, wait_log_match, wait_until
from peers.dovecot import dovecots
from peers.sasl import ALICE, BOB, USERS, Sub, b64, plain_b64, run_scram
import harness

SLOW = 30           # replies that come after a login delay (max 8 s)


@pytest.fixture
def dovecot(tmp_path):
    # no delay of its own: chamoisd's failure delays are the ones tested
    with dovecots(tmp_path, prefix="dv", tail=4000) as make:
        yield lambda users=USERS, extra="": make(
            tmp_path / "mail", users, extra_conf="auth_failure_delay = 0\n" + extra)


def dovecot_sub(chamoisd, dv, extra="", mechanisms="PLAIN LOGIN"):
    """chamoisd with both submission roles and AUTH through dv (no sasl_db)."""
    port, sport = harness.free_port(), harness.free_port()
    while sport == port:
        sport = harness.free_port()
    conf = ("listen submission 127.0.0.1:%d\nlisten submissions 127.0.0.1:%d\n"
            "sasl_backend dovecot %s\n" % (port, sport, dv.auth_client)) + extra
    d = chamoisd(extra_conf=conf)
    wait_log_match(d.log, r"sasl: dovecot \S+ ready mechanisms=\"%s\"" % mechanisms)
    return Sub(d, port, sport, dv.auth_client)


def message(subject, frm=ALICE, to=BOB):
    return crlf("From: <%s>\nTo: <%s>\nSubject: %s\n\nHello.\n" % (frm, to, subject))


def test_plain_and_login_against_dovecot_passwd_file(chamoisd, dovecot):
    dv = dovecot()
    sub = dovecot_sub(chamoisd, dv)
    d = sub.d
    s = sub.smtp_tls()
    try:
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        s.esmtp_features["auth"] = "PLAIN"
        code, text = s.login(ALICE, USERS[ALICE])
        assert code == 235 and text.startswith(b"2.7.0"), (code, text)
        assert s.sendmail(ALICE, [BOB], message("through dovecot auth")) == {}
        s.quit()
    finally:
        s.close()
    assert re.search(r"auth ok address=127\.0\.0\.1 user=alice@example\.test "
                     r"mechanism=PLAIN\n", d.log()), d.log()
    # LOGIN step by step: Dovecot's own challenges come through as 334s
    with sub.dialog() as c:
        assert c.cmd("AUTH LOGIN", "334 ") == "334 " + b64("Username:")
        assert c.cmd(b64(BOB), "334 ") == "334 " + b64("Password:")
        c.cmd(b64(USERS[BOB]), "235 2.7.0")
        c.cmd("QUIT", "221")
    # the empty initial response of PLAIN, then the message in a 334 line
    with sub.sdialog() as c:
        c.cmd("AUTH PLAIN", "334")
        c.cmd(plain_b64(ALICE, USERS[ALICE]), "235 2.7.0")
    wait_until(lambda: len(d.messages(BOB)) == 1, 30, what="the message at bob's")
    assert b"Subject: through dovecot auth" in d.messages(BOB)[0]
    assert "Fatal" not in dv.log()


def test_scram_against_dovecot(chamoisd, dovecot):
    """Dovecot with SCRAM in its auth_mechanisms: chamoisd offers them (in
    the order of the Cyrus back-end), and a SCRAM client (tests/sasl/scram_client.c) logs in
    with each, Dovecot checking the proofs; a wrong password is 535 and
    counted under the SCRAM user name, as with sasldb2"""
    dv = dovecot(extra="auth_mechanisms = plain login scram-sha-1 scram-sha-256\n")
    sub = dovecot_sub(chamoisd, dv, mechanisms="PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-1")
    s = sub.smtp_tls()
    try:
        assert s.esmtp_features["auth"].split() == [
            "PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-1"], s.esmtp_features
    finally:
        s.close()
    ok = run_scram(sub, ALICE, USERS[ALICE])
    assert ok.returncode == 0 and "235" in ok.stdout, (ok.stdout, ok.stderr)
    ok = run_scram(sub, BOB, USERS[BOB], implicit=True, mech="SCRAM-SHA-1")
    assert ok.returncode == 0 and "235" in ok.stdout, (ok.stdout, ok.stderr)
    log = sub.d.log()
    assert "auth ok address=127.0.0.1 user=alice@example.test mechanism=SCRAM-SHA-256" in log
    assert "auth ok address=127.0.0.1 user=bob@example.test mechanism=SCRAM-SHA-1" in log
    bad = run_scram(sub, ALICE, "not the password")
    assert bad.returncode == 1 and "535" in bad.stdout, (bad.stdout, bad.stderr)
    wait_log_match(sub.d.log, r"auth failed address=127\.0\.0\.1 user=alice@example\.test "
                   r"mechanism=SCRAM-SHA-256", timeout=SLOW)


def test_wrong_password_and_unknown_user_are_535_with_the_fail2ban_line(chamoisd, dovecot):
    dv = dovecot()
    sub = dovecot_sub(chamoisd, dv)
    d = sub.d
    with sub.dialog() as c:
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, "wrong"), "535 5.7.8")
        c.cmd("AUTH PLAIN %s" % plain_b64("nobody@example.test", "x"), "535 5.7.8")
    assert re.search(r"auth failed address=127\.0\.0\.1 user=alice@example\.test "
                     r"mechanism=PLAIN delay=\d+ms\n", d.log()), d.log()
    assert "user=nobody@example.test mechanism=PLAIN" in d.log()
    # a back-end failure is no part of it
    assert re.search(r"\b454\b", d.log()) is None


def test_a_third_failure_closes_and_a_locked_user_is_not_asked(chamoisd, dovecot):
    """The same limits as with sasldb2 (limits.c): three failures in a
    session close it; after five, the user is refused (454 4.7.0) before
    Dovecot is asked, so its log shows no sixth check."""
    dv = dovecot()
    sub = dovecot_sub(chamoisd, dv)
    d = sub.d
    with sub.dialog() as c:
        for i in range(3):
            c.cmd("AUTH PLAIN %s" % plain_b64(BOB, "guess%d" % i), "535 5.7.8"
                  if i < 2 else "535")
        c.expect("421 4.7.0", timeout=SLOW)
    with sub.dialog() as c:
        for i in range(2):
            c.send("AUTH PLAIN %s\r\n" % plain_b64(BOB, "more%d" % i))
            c.expect("535 5.7.8", timeout=SLOW)
        c.cmd("AUTH PLAIN %s" % plain_b64(BOB, USERS[BOB]), "454 4.7.0")
    checks = len(re.findall(r"passwd-file\(bob@example\.test", dv.log()))
    assert "reason=too-many-user-failures user=bob@example.test" in d.log()
    assert checks == 5, dv.log()


def test_dovecot_down_is_454_and_back_up_works(chamoisd, dovecot):
    dv = dovecot()
    sub = dovecot_sub(chamoisd, dv)
    d = sub.d
    dv.stop()
    wait_log_match(d.log, r"sasl: dovecot \S+: connection closed")
    with sub.dialog() as c:
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "454 4.7.0")
        c.cmd("NOOP", "250")
    assert "auth failed" not in d.log()
    dv.start()
    with sub.dialog() as c:
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "235 2.7.0")


def test_sasl_backend_config_errors(chamoisd, tmp_path):
    c = harness.Chamoisd(tmp_path / "bad", extra_conf=(
        "listen submission 127.0.0.1:%d\nsasl_backend dovecot\n" % harness.free_port()))
    rc, out = c.check_config()
    assert rc != 0 and "sasl_backend: expected 2 values, got 1" in out, out
    c = harness.Chamoisd(tmp_path / "bad2", extra_conf="sasl_backend ldap\n")
    rc, out = c.check_config()
    assert rc != 0 and "sasl_backend: 'ldap' is neither cyrus nor dovecot" in out, out

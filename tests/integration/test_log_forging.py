"""Log lines cannot be forged (every value that came from outside is escaped,
so no client can forge a field or a whole line; doc/security.md "Log lines";
doc/users.md, the fail2ban filter).

A client puts the text of a whole `auth failed address=1.2.3.4 user=x`
line, with and without CR/LF/NUL, quotes, angle brackets and parentheses,
into a HELO name, MAIL FROM and RCPT TO addresses and AUTH login names; a
scripted remote puts it, with ')' and fake fields, into its replies.  The
real fail2ban-regex with the filter of doc/users.md must find only the
address that connected, every line must start as chamoisd starts its lines,
and read field by field no line may hold a key twice or any address field
naming 1.2.3.4."""

import re

from harness import crlf, sample_message, wait_until
from peers.fail2ban import LINE_START, fail2ban_hosts, log_fields
from peers.remote import fwd_env, transaction  # noqa: F401
from peers.queue_util import MAILBOXES, qbins, sendmail_ok, wait_ready  # noqa: F401
from peers.sasl import ALICE, USERS, b64, plain_b64, submission_daemon

FORGED = "chamoisd: 0123456789abcdef auth failed address=1.2.3.4 user=x mechanism=PLAIN delay=0ms"
# each one a complete line of its own when the log is read by lines
PAYLOADS = [
    FORGED,
    "x " + FORGED,
    "x\n" + FORGED,
    "x\r\n" + FORGED,
    "x\r" + FORGED,
    'x" ' + FORGED + ' "',
    "x> " + FORGED + " <",
    "x) status=sent relay=evil[1.2.3.4]:25 (" + FORGED,
    "x\0" + FORGED,
]
ADDR_KEYS = ("address", "relay", "remote", "addr", "host")


def quoted_local(p):
    """p as the quoted local part of an address at example.test (RFC 5321
    4.1.2: '"' and '\\' are quoted-pairs)."""
    return '"%s"@example.test' % p.replace("\\", "\\\\").replace('"', '\\"')


def assert_no_forgery(d, what):
    text = d.log()
    assert "\r" not in text, what
    assert "1.2.3.4" in text, "the payloads never reached the log (%s)" % what
    for line, fields in log_fields(text):
        assert LINE_START.match(line), "a line chamoisd did not start (%s): %r" % (what, line)
        keys = [k for k, _ in fields]
        assert len(keys) == len(set(keys)), "a field twice (%s): %r" % (what, line)
        for k, v in fields:
            assert not (k in ADDR_KEYS and "1.2.3.4" in v), "forged %s= (%s): %r" % (k, what, line)


def mx_lines(d, lines):
    """Send each line on a fresh mx connection after EHLO; whatever the
    daemon answers (or if it closes), go on."""
    for line in lines:
        c = d.dialog(timeout=3)     # the greeting already read
        try:
            c.cmd("EHLO client.test", "250")
            c.send(line.encode() + b"\r\n")
            c.read_reply()
            c.cmd("QUIT", "221")
        except (ConnectionError, AssertionError, OSError):
            pass
        finally:
            c.close()


def auth_fail(c, p):
    """One failed login as p: PLAIN, or LOGIN when p has a NUL (PLAIN's
    separator)."""
    if "\0" in p:
        c.cmd("AUTH LOGIN", "334")
        c.cmd(b64(p), "334")
        c.send("%s\r\n" % b64("wrong"))
    else:
        c.send("AUTH PLAIN %s\r\n" % plain_b64(p, "wrong"))
    c.expect("535 5.7.8", timeout=30)


def test_client_values_cannot_forge_an_auth_failed_line(chamoisd, tmp_path):
    sub = submission_daemon(chamoisd, tmp_path / "sasl")
    d = sub.d
    # mx role: HELO names, senders and recipients
    lines = []
    for p in PAYLOADS:
        lines += ["HELO %s" % p, "EHLO %s" % re.sub(r"[ \r\n\0]", "", p),
                  "MAIL FROM:<%s>" % quoted_local(p),
                  "MAIL FROM:<joe@sender.test>\r\nRCPT TO:<%s>" % quoted_local(p)]
    mx_lines(d, lines)
    # submission: login names, two failures a connection (the third ends it)
    auth = [FORGED, "x\r\n" + FORGED, 'x" ' + FORGED + ' "', "x\0" + FORGED,
            "x) status=sent relay=evil[1.2.3.4]:25 (" + FORGED]
    for i in range(0, len(auth), 2):
        with sub.dialog() as c:
            for p in auth[i:i + 2]:
                auth_fail(c, p)
    real_failures = len(auth)
    # a logged-in user's senders (refused: not one of alice's, and logged)
    for p in PAYLOADS:
        c = sub.login_dialog(ALICE, USERS[ALICE])
        try:
            c.send(("MAIL FROM:<%s>\r\n" % quoted_local(p)).encode())
            c.read_reply(timeout=3)
        except (ConnectionError, AssertionError, OSError):
            pass
        finally:
            c.close()
    wait_until(lambda: d.log().count(" auth failed ") >= real_failures, 40,
               what="%d auth failed lines" % real_failures)
    hosts = fail2ban_hosts(d.log_path, tmp_path / "f2b")
    assert hosts == ["127.0.0.1"] * real_failures, (hosts, d.log()[-4000:])
    # the same lines as fail2ban's systemd backend shows them: chamoisd
    # under systemd writes neither time nor name (JOURNAL_STREAM), the
    # journal puts its own prefix before the event
    journal = tmp_path / "journal.log"
    journal.write_text("".join(
        "Dec  2 16:44:23 mail.example.test chamoisd[4242]: %s\n" % LINE_START.sub("", line)
        for line in d.log().split("\n") if line))
    hosts = fail2ban_hosts(journal, tmp_path / "f2b", logtype="journal")
    assert hosts == ["127.0.0.1"] * real_failures, hosts
    assert_no_forgery(d, "client values")


EVIL = ("x) status=sent relay=evil.test[1.2.3.4]:25 remote=[1.2.3.4]:25 "
        "result=delivered reply=\"ok\" ( \"\r" + FORGED)


def test_remote_replies_cannot_forge_the_outcome_line(fwd_env, qbins, tmp_path):
    """A remote whose replies carry a bare CR, ')', quotes and fake fields,
    on the forwarding path and through the queue: each outcome line has one
    field of each key, and the real one."""
    fwd_env.remote("remote.test", rcpt={"carol@remote.test": "550 5.1.1 " + EVIL,
                                        "nobody@remote.test": "550 5.1.1 " + EVIL},
                   eod="250 2.0.0 " + EVIL)
    d = wait_ready(fwd_env.daemon(aliases={"fwd@example.test": ["carol@remote.test"],
                                           "ok@example.test": ["dan@remote.test"]},
                                  mailboxes=MAILBOXES))
    out = transaction(d, "joe@sender.test", ["fwd@example.test"],
                      crlf(sample_message("refused")))
    assert out["rcpt"][0].startswith("550"), out
    out = transaction(d, "joe@sender.test", ["ok@example.test"],
                      crlf(sample_message("accepted")))
    assert out["eod"].startswith("250"), out
    sendmail_ok(qbins, d, ["nobody@remote.test"],
                "From: root@example.test\nSubject: queued\n\nhi\n")
    wait_until(lambda: re.search(r" to=<nobody@remote\.test> .* status=bounced ", d.log()),
               30, what="the queued failure")
    assert_no_forgery(d, "remote replies")
    lines = {name: [f for line, f in log_fields(d.log()) if pat.search(line)]
             for name, pat in (("rcpt", re.compile(r" forward rcpt to=<fwd@\S+ target=\S+ result=")),
                               ("result", re.compile(r" forward result=")),
                               ("queue", re.compile(r" to=<nobody@\S+ relay=")),
                               # the outcome lines of the forwarded recipients
                               ("refused", re.compile(r" to=<fwd@\S+ relay=")),
                               ("forwarded", re.compile(r" to=<ok@\S+ relay=")))}
    outcome = ("to", "relay", "delay", "dsn", "status", "(reply)")
    for name, want in (("rcpt", ("to", "target", "result")),
                       ("result", ("result", "remote")),
                       ("queue", outcome), ("refused", outcome), ("forwarded", outcome)):
        assert len(lines[name]) == 1, (name, d.log()[-3000:])
        keys = [k for k, _ in lines[name][0]]
        assert keys == list(want), (name, keys)
    for name, status in (("queue", "bounced"), ("refused", "refused"),
                         ("forwarded", "forwarded")):
        f = dict(lines[name][0])
        assert f["status"] == status, (name, f)
        assert re.fullmatch(r"[^\[\]]+\[127\.0\.0\.\d+\]:\d+", f["relay"]), (name, f)
        assert "1.2.3.4" in f["(reply)"], (name, f)
    q = dict(lines["queue"][0])
    assert q["status"] == "bounced" and q["dsn"] == "5.1.1", q
    assert q["relay"].startswith("mx1.remote.test[127.0.0.2]:"), q
    assert re.fullmatch(r"127\.0\.0\.2:\d+", dict(lines["result"][0])["remote"]), lines


def test_recipient_cannot_forge_the_outcome_line(mx):
    """An unknown recipient whose quoted local part holds a whole outcome
    line, ')' and CR: its refused line has one field of each key and the
    address stays inside to=<...>."""
    mx_lines(mx, ["MAIL FROM:<joe@sender.test>\r\nRCPT TO:<%s>" % quoted_local("no" + p)
                  for p in PAYLOADS])
    wait_until(lambda: mx.log().count("status=refused") >= 3, 20, what="refused lines")
    assert_no_forgery(mx, "recipients")
    refused = [f for line, f in log_fields(mx.log()) if "status=refused" in line]
    assert len(refused) >= 3, mx.log()[-3000:]
    for f in refused:
        keys = [k for k, _ in f]
        assert keys == ["to", "relay", "delay", "dsn", "status", "(reply)"], f
        assert dict(f)["relay"] == "none" and dict(f)["status"] == "refused", f

"""The operator's view (doc/chamoisd.8 LOGGING and OPTIONS, chamoisctl(8),
chamois-sendmail(8)): one outcome line per recipient on every path, in one
form,

    ID to=<ADDR> relay=HOST[IP]:PORT|local|none delay=N dsn=X.Y.Z status=S (REPLY)

local delivery, our refusals (unknown user, relay denied), the forwarding
proxy (accepted, refused at RCPT and at the dot), the queue (sent to a
remote and to a Maildir, deferred, bounced); no timestamp of our own under
systemd (JOURNAL_STREAM); a failed connect names ADDR:PORT and the errno;
-V / -h on chamoisd and chamoisctl, --version / --help on chamois-sendmail."""

import re
import subprocess

from harness import crlf, sample_message, wait_until
from peers.fail2ban import log_fields
from peers.remote import fwd_env, transaction  # noqa: F401
from peers.queue_util import MAILBOXES, qbins, sendmail_ok, wait_ready  # noqa: F401
from peers.sasl import ALICE, USERS, submission_daemon

OUTCOME = re.compile(r"^\S+ chamoisd: (?P<id>[0-9a-f.]+|[0-9A-Za-z]+) to=<(?P<to>[^<>\s]*)> "
                     r"relay=(?P<relay>\S+) delay=(?P<delay>\d+) "
                     r"dsn=(?P<dsn>[245]\.\d{1,3}\.\d{1,3}) "
                     r"status=(?P<status>sent|deferred|bounced|refused|forwarded) "
                     r"\((?P<reply>[^()]*)\)$")
REMOTE_RELAY = re.compile(r"mx1\.remote\.test\[127\.0\.0\.\d+\]:\d+")


def outcomes(d, to):
    """The outcome lines of recipient to, parsed; every line that names
    to=<to> and a status= must be of the documented form."""
    out = []
    for line in d.log().split("\n"):
        if " to=<%s> " % to in line and " status=" in line:
            m = OUTCOME.match(line)
            assert m, "not the documented form: %r" % line
            out.append(m.groupdict())
    return out


def one_outcome(d, to, timeout=30):
    wait_until(lambda: outcomes(d, to), timeout, what="the outcome line of %s" % to)
    (o,) = outcomes(d, to)
    return o


def msg(subject):
    return crlf(sample_message(subject))


# --------------------------------------------------------------------------
# synchronous paths (port 25)


def test_local_delivery_one_sent_line_per_recipient(mx):
    out = transaction(mx, "joe@sender.test", ["alice@example.test", "bob@example.test"],
                      msg("local"))
    assert out["eod"].startswith("250"), out
    for to in ("alice@example.test", "bob@example.test"):
        o = one_outcome(mx, to)
        assert (o["relay"], o["status"], o["dsn"]) == ("local", "sent", "2.0.0"), o
        assert o["reply"].startswith("250 2.0.0"), o


def test_unknown_user_and_relay_denied_are_refused_by_us(mx):
    out = transaction(mx, "joe@sender.test", ["nobody@example.test", "x@elsewhere.test"])
    assert out["rcpt"][0].startswith("550") and out["rcpt"][1].startswith("5"), out
    o = one_outcome(mx, "nobody@example.test")
    assert (o["relay"], o["status"], o["dsn"]) == ("none", "refused", "5.1.1"), o
    o = one_outcome(mx, "x@elsewhere.test")
    assert (o["relay"], o["status"]) == ("none", "refused"), o
    assert o["dsn"].startswith("5.") and o["reply"] == out["rcpt"][1], (o, out)


def test_refused_at_the_dot_by_us(chamoisd):
    d = chamoisd(max_message_size=2000)
    big = crlf(sample_message("big", body=("y" * 70 + "\n") * 60))
    out = transaction(d, "joe@sender.test", ["alice@example.test"], big)
    assert out["eod"].startswith("552"), out
    o = one_outcome(d, "alice@example.test")
    assert (o["relay"], o["status"], o["dsn"]) == ("none", "refused", "5.3.4"), o
    assert not d.messages("alice@example.test")


def test_forwarded_and_refused_by_the_remote(fwd_env):
    fwd_env.remote("remote.test", rcpt={"carol@remote.test": "550 5.1.1 no such user"})
    fwd_env.remote("dot.test", eod="554 5.7.1 content refused")
    d = fwd_env.daemon(aliases={"fwd@example.test": ["dan@remote.test"],
                                "no@example.test": ["carol@remote.test"],
                                "dot@example.test": ["eve@dot.test"]})
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg("forwarded"))
    assert out["eod"].startswith("250"), out
    o = one_outcome(d, "fwd@example.test")
    assert o["status"] == "forwarded" and o["dsn"].startswith("2."), o
    assert REMOTE_RELAY.fullmatch(o["relay"]), o
    out = transaction(d, "joe@sender.test", ["no@example.test"], msg("refused at rcpt"))
    assert out["rcpt"][0].startswith("550"), out
    o = one_outcome(d, "no@example.test")
    assert (o["status"], o["dsn"]) == ("refused", "5.1.1"), o
    assert REMOTE_RELAY.fullmatch(o["relay"]), o
    out = transaction(d, "joe@sender.test", ["dot@example.test"], msg("refused at dot"))
    assert out["eod"].startswith("554"), out
    o = one_outcome(d, "dot@example.test")
    assert (o["status"], o["dsn"]) == ("refused", "5.7.1"), o
    assert re.fullmatch(r"mx1\.dot\.test\[127\.0\.0\.\d+\]:\d+", o["relay"]), o


# --------------------------------------------------------------------------
# the queue


def test_queued_sent_local_deferred_bounced(fwd_env, qbins):
    fwd_env.remote("remote.test", rcpt={"later@remote.test": "451 4.7.1 greylisted",
                                        "gone@remote.test": "550 5.1.1 no such user"})
    d = wait_ready(fwd_env.daemon(mailboxes=MAILBOXES))
    sendmail_ok(qbins, d, ["carol@remote.test", "bob@example.test", "later@remote.test",
                           "gone@remote.test", "ghost@example.test"],
                "From: root@example.test\nSubject: queued\n\nhi\n")
    o = one_outcome(d, "carol@remote.test")
    assert (o["status"], o["dsn"]) == ("sent", "2.0.0") and REMOTE_RELAY.fullmatch(o["relay"]), o
    o = one_outcome(d, "bob@example.test")
    assert (o["status"], o["relay"], o["dsn"]) == ("sent", "local", "2.0.0"), o
    o = one_outcome(d, "later@remote.test")
    assert (o["status"], o["dsn"]) == ("deferred", "4.7.1") and REMOTE_RELAY.fullmatch(o["relay"]), o
    assert o["reply"].startswith("451 4.7.1"), o
    o = one_outcome(d, "gone@remote.test")
    assert (o["status"], o["dsn"]) == ("bounced", "5.1.1") and REMOTE_RELAY.fullmatch(o["relay"]), o
    # a local recipient without a mailbox fails at once: its line too
    o = one_outcome(d, "ghost@example.test")
    assert (o["status"], o["relay"], o["dsn"]) == ("bounced", "none", "5.1.1"), o


def test_submission_queued_then_delivered(fwd_env, tmp_path):
    """Port 587: no outcome at the dot (the queue took it), then one line per
    recipient for the delivery, remote and local."""
    fwd_env.remote("remote.test")
    sub = submission_daemon(fwd_env.daemon, tmp_path / "sasl")
    s = sub.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        refused = s.sendmail(ALICE, ["carol@remote.test", "bob@example.test"],
                             crlf("From: %s\nSubject: sub\n\nhi\n" % ALICE))
        s.quit()
    finally:
        s.close()
    assert refused == {}, refused
    d = sub.d
    o = one_outcome(d, "carol@remote.test")
    assert (o["status"], o["dsn"]) == ("sent", "2.0.0") and REMOTE_RELAY.fullmatch(o["relay"]), o
    o = one_outcome(d, "bob@example.test")
    assert (o["status"], o["relay"]) == ("sent", "local"), o


def test_failed_connect_names_address_port_and_errno(fwd_env, qbins):
    r = fwd_env.closed_remote("down.test")
    d = wait_ready(fwd_env.daemon(mailboxes=MAILBOXES))
    sendmail_ok(qbins, d, ["x@down.test"], "From: root@example.test\nSubject: down\n\nhi\n")
    o = one_outcome(d, "x@down.test")
    assert o["status"] == "deferred" and o["dsn"] == "4.4.1", o
    want = "connect %s:%d: Connection refused" % (r.address, fwd_env.remote_port)
    assert want in o["reply"], o
    assert 'reason="%s"' % want in d.log(), d.log()[-2000:]


def test_forward_to_a_dead_port_names_it(fwd_env):
    r = fwd_env.closed_remote("down.test")
    d = fwd_env.daemon(aliases={"fwd@example.test": ["x@down.test"]})
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg("down"))
    assert out["rcpt"][0].startswith("451 4.4.1"), out
    o = one_outcome(d, "fwd@example.test")
    assert (o["status"], o["dsn"]) == ("refused", "4.4.1"), o
    want = "connect %s:%d: Connection refused" % (r.address, fwd_env.remote_port)
    assert 'forward unreachable domain=down.test last="%s"' % want in d.log(), d.log()[-2000:]


# --------------------------------------------------------------------------
# journald, options


def test_no_own_timestamp_under_journald(chamoisd, monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    d = chamoisd()
    transaction(d, "joe@sender.test", ["nobody@example.test"])
    wait_until(lambda: "status=refused" in d.log(), 10, what="the refused line")
    lines = [l for l in d.log().split("\n") if l]
    # neither time nor name: the journal adds both (chamoisd[PID]: ...)
    assert lines and not any(l.startswith("chamoisd") or l[:4].isdigit() and l[4:5] == "-"
                             for l in lines), lines[:5]
    assert any(l.startswith("ready version=") for l in lines), lines[:5]
    for line, fields in log_fields(d.log()):
        if "status=refused" in line:
            assert [k for k, _ in fields][:2] == ["to", "relay"], line


def run(binary, *args):
    return subprocess.run([str(binary)] + list(args), capture_output=True, text=True,
                          timeout=30)


def test_version_and_help(chamoisd_bin, qbins):
    bins = dict(qbins, chamoisd=chamoisd_bin)
    for name, version, help_ in (("chamoisd", "-V", "-h"), ("chamoisctl", "-V", "-h"),
                                 ("chamois-sendmail", "--version", "--help")):
        p = run(bins[name], version)
        assert p.returncode == 0 and re.fullmatch(r"%s \d+\.\d+\S*\n" % name, p.stdout), (name, p)
        p = run(bins[name], help_)
        assert p.returncode == 0 and p.stdout.startswith("usage: %s " % name), (name, p)
    # sendmail's own -V (envelope id) and -h (hop count) still take a value
    p = run(bins["chamois-sendmail"], "-V")
    assert p.returncode != 0 and "needs a value" in p.stderr, p

"""Delivery status notifications (RFC 3461; doc/queue.md "Delivery status
notifications", doc/protocol.md "Submission"): the submission roles
advertise DSN and take NOTIFY, ORCPT, RET and ENVID, chamois-sendmail takes
-N, -R and -V, the mx role takes none of them; the queue reports what each
recipient's NOTIFY asks for (delivered, relayed, delayed, failed) into the
sender's own Maildir as RFC 3464 reports, and passes the parameters on to a
remote that offers DSN (which then reports itself).

Clients: raw dialogs, swaks, msmtp (--dsn-notify, --dsn-return) and
chamois-sendmail; remotes are aiosmtpd servers with and without the DSN
extension (peers/remote.py) behind a dnsmasq MX; reports are read with
Python's email package."""

import shutil
import subprocess
import time

import pytest

from harness import crlf, dot_stuff, wait_until
from peers.remote import fwd_env  # noqa: F401
from peers.queue_util import (  # noqa: F401
    MAILBOXES, OWNER, qbins, ctl_ok, parse_report, queue, recipient_block, sendmail,
    sendmail_ok, submit_raw, wait_empty, wait_queue, wait_ready)
from peers.sasl import ALICE, BOB, CLIENT_NAME, USERS, plain_b64, submission_daemon

SLOW = 30


def message(subject, to="carol@remote.test"):
    return ("From: Alice <%s>\nTo: %s\nSubject: %s\n"
            "Message-ID: <%s@laptop.client.test>\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n\n"
            "Hello,\n.a dot line\nthe body line\n" % (ALICE, to, subject,
                                                       subject.replace(" ", ".")))


def sub_daemon(fwd_env, tmp_path, extra_conf=""):
    sub = submission_daemon(fwd_env.daemon, tmp_path / "sasl", extra_conf=extra_conf,
                            mailboxes=MAILBOXES)
    wait_ready(sub.d)
    return sub


def submit(sub, mail_params, rcpts, msg):
    """One logged-in transaction on 587: rcpts is [(address, params)]."""
    c = sub.login_dialog(ALICE, USERS[ALICE])
    try:
        c.cmd(("MAIL FROM:<%s> %s" % (ALICE, mail_params)).rstrip(), "250")
        for addr, params in rcpts:
            c.cmd(("RCPT TO:<%s> %s" % (addr, params)).rstrip(), "250")
        c.cmd("DATA", "354")
        c.send(dot_stuff(crlf(msg)) + b".\r\n")
        c.expect("250", timeout=SLOW)
        c.cmd("QUIT", "221")
    finally:
        c.close()


def report_lines(d):
    return d.log().count("queue report action=")


def settled_reports(d, mailbox, want=None, timeout=20):
    """Every report the queue made is in the Maildir (and, with want, that
    many were made); returns them parsed, in no particular order."""
    if want is not None:
        wait_until(lambda: report_lines(d) >= want, timeout, what="%d reports made" % want)
    wait_until(lambda: d.log().count("queue report delivered") >= report_lines(d), timeout,
               what="the reports written")
    return [parse_report(raw) for raw in d.messages(mailbox)]


def action_of(rep):
    (action,) = {b["action"] for b in rep["recipients"]}    # one per report
    return action


def check_report(rep, owner):
    msg = rep["msg"]
    assert rep["return_path"] == "<>"
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert owner in str(msg["To"])
    assert rep["parts"][1] == "message/delivery-status", rep["parts"]


# --------------------------------------------------------------------------
# the extension: advertised and taken on the submission roles only


def test_dsn_on_submission_not_on_mx(fwd_env, tmp_path):
    sub = sub_daemon(fwd_env, tmp_path)
    c = sub.dialog()
    try:
        ehlo = c.cmd("EHLO %s" % CLIENT_NAME, "250")
        assert "250-DSN" in ehlo.replace("250 DSN", "250-DSN"), ehlo
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "235")
        c.cmd("MAIL FROM:<%s> RET=ALL" % ALICE, "501 5.5.4")
        c.cmd("MAIL FROM:<%s> ENVID=%s" % (ALICE, "x" * 101), "501 5.5.4")
        c.cmd("MAIL FROM:<%s> RET=HDRS ENVID=QQ+2B1" % ALICE, "250")
        c.cmd("RCPT TO:<%s> NOTIFY=NEVER,SUCCESS" % BOB, "501 5.5.4")
        c.cmd("RCPT TO:<%s> ORCPT=%s" % (BOB, BOB), "501 5.5.4")
        c.cmd("RCPT TO:<%s> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;%s" % (BOB, BOB), "250")
        c.cmd("RSET", "250")
    finally:
        c.close()
    # port 25: neither advertised nor taken (no reports to strangers)
    m = sub.d.dialog()
    try:
        ehlo = m.cmd("EHLO client.test", "250")
        assert "DSN" not in ehlo.split(), ehlo
        m.cmd("MAIL FROM:<x@client.test> RET=HDRS", "555 5.5.4")
        m.cmd("MAIL FROM:<x@client.test> ENVID=abc", "555 5.5.4")
        m.cmd("MAIL FROM:<x@client.test>", "250")
        m.cmd("RCPT TO:<%s> NOTIFY=SUCCESS" % BOB, "555 5.5.4")
        m.cmd("RCPT TO:<%s> ORCPT=rfc822;%s" % (BOB, BOB), "555 5.5.4")
    finally:
        m.close()


def test_swaks_sees_dsn_on_587_only(fwd_env, tmp_path):
    if shutil.which("swaks") is None:
        pytest.skip("swaks not installed")
    # swaks has no DSN options of its own: what it sees is the EHLO
    sub = sub_daemon(fwd_env, tmp_path)

    def ehlo(port, tls):
        p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port, "--quit-after",
                            "EHLO", "--helo", CLIENT_NAME] + (["--tls"] if tls else []),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60, text=True)
        assert p.returncode == 0, p.stdout
        # "<-  250-DSN" (or "<~ " once in TLS)
        return [l[3:].strip()[4:].strip() for l in p.stdout.splitlines()
                if l[:2] in ("<-", "<~") and l[3:].strip()[:4] in ("250-", "250 ")]

    assert "DSN" in ehlo(sub.port, True)
    assert "DSN" not in ehlo(sub.d.port, False)


# --------------------------------------------------------------------------
# reports: every NOTIFY value


NOTIFY = [None, "NEVER", "SUCCESS", "FAILURE", "DELAY", "SUCCESS,FAILURE", "SUCCESS,DELAY",
          "FAILURE,DELAY", "SUCCESS,FAILURE,DELAY"]


@pytest.mark.parametrize("notify", NOTIFY, ids=[n or "default" for n in NOTIFY])
def test_each_notify_gets_exactly_its_reports(fwd_env, tmp_path, qbins, notify):
    """Four recipients, four outcomes: bob is delivered (local), carol is
    relayed (remote without DSN), dave is refused (failed), erin's server
    is down (delayed once delay_warning_time has passed)."""
    r = fwd_env.remote("remote.test", rcpt={"dave@remote.test": "550 5.1.1 no such user dave"})
    fwd_env.closed_remote("down.test")
    sub = sub_daemon(fwd_env, tmp_path, extra_conf="delay_warning_time 1s")
    p = ("NOTIFY=%s " % notify if notify else "")
    rcpts = [(BOB, p + "ORCPT=rfc822;Bob+2Bx@example.test"), ("carol@remote.test", p),
             ("dave@remote.test", p), ("erin@down.test", p)]
    submit(sub, "ENVID=QQ+2B314 RET=HDRS", rcpts, message("notify %s" % notify))
    # a remote without DSN gets none of the parameters
    wait_until(lambda: r.delivered(), 20, what="carol's copy")
    (tx,) = r.delivered()
    assert not [o for o in tx.mail_options if o.startswith(("RET=", "ENVID="))], tx
    assert tx.rcpt_options == {"carol@remote.test": [], "dave@remote.test": []}, tx.rcpt_options
    wait_queue(qbins, sub.d, lambda ms: ms and all(
        x["state"] == "deferred" for m in ms.values() for x in m["rcpts"]
        if x["addr"] == "erin@down.test"), "erin deferred")
    time.sleep(1.5)             # past delay_warning_time: the next attempt notifies
    attempts = [x["attempts"] for m in queue(qbins, sub.d)[0].values() for x in m["rcpts"]
                if x["addr"] == "erin@down.test"][0]
    ctl_ok(qbins, sub.d, "flush")
    wait_queue(qbins, sub.d, lambda ms: ms and all(
        x["attempts"] > attempts for m in ms.values() for x in m["rcpts"]
        if x["addr"] == "erin@down.test"), "erin's second attempt")

    words = set((notify or "FAILURE,DELAY").split(",")) - {"NEVER"}
    want = {"delivered": {BOB}, "relayed": {"carol@remote.test"},
            "failed": {"dave@remote.test"}, "delayed": {"erin@down.test"}}
    want = {k: v for k, v in want.items()
            if {"delivered": "SUCCESS", "relayed": "SUCCESS", "failed": "FAILURE",
                "delayed": "DELAY"}[k] in words}
    reps = settled_reports(sub.d, ALICE, want=len(want))
    got = {}
    for rep in reps:
        check_report(rep, ALICE)
        a = action_of(rep)
        assert a not in got, "two %s reports" % a
        got[a] = {b["final-recipient"].split(";", 1)[1].strip() for b in rep["recipients"]}
        assert rep["per_message"]["original-envelope-id"] == "QQ+314", rep["per_message"]
        # RET=HDRS: the header section only
        assert rep["parts"][2] == "text/rfc822-headers", rep["parts"]
        assert "Subject: notify %s" % notify in rep["headers"]
        assert "the body line" not in rep["headers"]
        if a == "delivered":
            assert recipient_block(rep, BOB)["original-recipient"] == \
                "rfc822; Bob+x@example.test"
            assert recipient_block(rep, BOB)["status"].startswith("2.")
        if a == "relayed":
            b = recipient_block(rep, "carol@remote.test")
            assert b["status"].startswith("2.") and "remote.test" in b["remote-mta"], b
    assert got == want, (got, want)
    # only into the sender's Maildir: nothing went out as mail
    assert not fwd_env.remotes.null_sender_attempts()


# --------------------------------------------------------------------------
# RET


@pytest.mark.parametrize("ret", ["FULL", "HDRS"])
def test_ret_full_returns_the_message_hdrs_the_header(fwd_env, tmp_path, ret):
    sub = sub_daemon(fwd_env, tmp_path)
    submit(sub, "RET=%s" % ret, [(BOB, "NOTIFY=SUCCESS")], message("ret %s" % ret, to=BOB))
    (rep,) = settled_reports(sub.d, ALICE, want=1)
    check_report(rep, ALICE)
    assert recipient_block(rep, BOB)["action"] == "delivered"
    assert "original-envelope-id" not in rep["per_message"]
    if ret == "FULL":
        assert rep["parts"][2] == "message/rfc822", rep["parts"]
        (inner,) = rep["msg"].get_payload()[2].get_payload()
        assert inner["Subject"] == "ret FULL"
        assert "the body line" in inner.get_content()
    else:
        assert rep["parts"][2] == "text/rfc822-headers", rep["parts"]
        assert "the body line" not in rep["headers"]


# --------------------------------------------------------------------------
# a remote with DSN


def test_dsn_remote_gets_the_parameters_and_no_relayed_report(fwd_env, tmp_path):
    r = fwd_env.remote("remote.test", dsn=True)
    sub = sub_daemon(fwd_env, tmp_path)
    submit(sub, "RET=HDRS ENVID=QQ+2B314", [
        ("carol@remote.test", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Carol+2Bx@remote.test"),
        ("dan@remote.test", "")], message("to a DSN remote"))
    wait_until(lambda: r.delivered(), 20, what="delivery at the remote")
    (conn,) = [c for c in r.connections if c.transactions]
    lines = [(v, a) for v, a in conn.commands if v in ("MAIL", "RCPT")]
    mail = [a for v, a in lines if v == "MAIL"][0]
    assert mail.endswith(" RET=HDRS ENVID=QQ+2B314") or "RET=HDRS ENVID=QQ+2B314" in mail, mail
    rcpt = [a for v, a in lines if v == "RCPT"]
    assert rcpt == ["TO:<carol@remote.test> NOTIFY=SUCCESS,FAILURE "
                    "ORCPT=rfc822;Carol+2Bx@remote.test", "TO:<dan@remote.test>"], rcpt
    # the remote reports from now on: nothing here, now or at the end
    wait_until(lambda: "queue done" in sub.d.log(), 20, what="the queue done")
    assert report_lines(sub.d) == 0, sub.d.log()[-2000:]
    fwd_env.assert_no_bounce()


def test_remote_without_dsn_relayed_report(fwd_env, tmp_path):
    r = fwd_env.remote("remote.test")
    sub = sub_daemon(fwd_env, tmp_path)
    submit(sub, "", [("carol@remote.test", "NOTIFY=SUCCESS")], message("relayed"))
    wait_until(lambda: r.delivered(), 20, what="delivery at the remote")
    (conn,) = [c for c in r.connections if c.transactions]
    assert [a for v, a in conn.commands if v == "RCPT"] == ["TO:<carol@remote.test>"]
    (rep,) = settled_reports(sub.d, ALICE, want=1)
    b = recipient_block(rep, "carol@remote.test")
    assert b["action"] == "relayed" and b["status"].startswith("2."), b
    assert "remote.test" in b.get("remote-mta", ""), b


def test_alias_of_several_gets_one_expanded_report(fwd_env, tmp_path):
    """RFC 3461 5.2.7.3 (b), as Postfix does: an alias of several
    destinations with NOTIFY=SUCCESS gets one "expanded" report; its
    members go on without SUCCESS (no delivered or relayed report for
    them, a failed one still as FAILURE asks); a one-member alias passes
    NOTIFY on unchanged."""
    r = fwd_env.remote("remote.test", rcpt={"dave@remote.test": "550 5.1.1 no such user dave"})
    aliases = {"team@example.test": [BOB, OWNER, "carol@remote.test"],
               "crew@example.test": [OWNER, "dave@remote.test"],
               "solo@example.test": [ALICE]}
    sub = submission_daemon(fwd_env.daemon, tmp_path / "sasl", mailboxes=MAILBOXES,
                            aliases=aliases)
    wait_ready(sub.d)
    submit(sub, "ENVID=alias1", [("team@example.test", "NOTIFY=SUCCESS"),
                                 ("crew@example.test", "NOTIFY=SUCCESS,FAILURE"),
                                 ("solo@example.test", "NOTIFY=SUCCESS")],
           message("to the team"))
    wait_until(lambda: r.delivered(), 20, what="carol's copy")
    # alice's Maildir: the three reports, and solo's copy of the message
    reps = [x for x in settled_reports(sub.d, ALICE, want=3) if x["return_path"] == "<>"]
    assert len(reps) == 3, reps
    by = {}
    for rep in reps:
        check_report(rep, ALICE)
        by.setdefault(action_of(rep), []).append(rep)
    assert sorted(by) == ["delivered", "expanded", "failed"], sorted(by)
    (exp,) = by["expanded"]
    got = {b["final-recipient"].split(";", 1)[1].strip(): b for b in exp["recipients"]}
    assert sorted(got) == ["crew@example.test", "team@example.test"], got
    assert all(b["status"] == "2.0.0" for b in got.values()), got
    assert exp["per_message"]["original-envelope-id"] == "alias1"
    # solo: one member, NOTIFY passed on: alice's delivery is reported for it
    (dlv,) = by["delivered"]
    (b,) = dlv["recipients"]
    assert b["final-recipient"] == "rfc822; %s" % ALICE, b
    assert b["original-recipient"] == "rfc822; solo@example.test", b
    # crew's NOTIFY kept FAILURE for its members: dave's refusal is reported
    (fl,) = by["failed"]
    assert [b["final-recipient"] for b in fl["recipients"]] == ["rfc822; dave@remote.test"]
    # every member got the message; nothing went out as a report by mail
    # one copy each, root named by both aliases too
    assert len(sub.d.messages(BOB)) == 1 and len(sub.d.messages(OWNER)) == 1
    assert not fwd_env.remotes.null_sender_attempts()


# --------------------------------------------------------------------------
# other clients: msmtp and chamois-sendmail


def test_msmtp_dsn_notify_and_return(fwd_env, tmp_path):
    if shutil.which("msmtp") is None:
        pytest.skip("msmtp not installed")
    sub = sub_daemon(fwd_env, tmp_path)
    pw = tmp_path / "pw"
    pw.write_text(USERS[ALICE] + "\n")
    pw.chmod(0o600)
    conf = tmp_path / "msmtprc"
    conf.write_text("account default\nhost 127.0.0.1\nport %d\ntls on\ntls_starttls on\n"
                    "tls_certcheck off\nauth plain\nuser %s\npasswordeval \"cat %s\"\n"
                    "from %s\n" % (sub.port, ALICE, pw, ALICE))
    conf.chmod(0o600)
    p = subprocess.run(["msmtp", "-C", str(conf), "--dsn-notify=success,failure",
                        "--dsn-return=full", BOB], input=message("msmtp dsn", to=BOB).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=90)
    assert p.returncode == 0, (p.stdout, sub.d.log()[-2000:])
    (rep,) = settled_reports(sub.d, ALICE, want=1)
    assert recipient_block(rep, BOB)["action"] == "delivered"
    assert rep["parts"][2] == "message/rfc822", rep["parts"]


def test_sendmail_n_r_v(fwd_env, qbins):
    d = wait_ready(fwd_env.daemon(mailboxes=MAILBOXES))
    sendmail_ok(qbins, d, [BOB], message("sendmail dsn", to=BOB), sender=ALICE,
                args=["-N", "success,delay", "-R", "hdrs", "-V", "my id+1"])
    (rep,) = settled_reports(d, OWNER, want=1)
    check_report(rep, OWNER)
    assert recipient_block(rep, BOB)["action"] == "delivered"
    assert rep["per_message"]["original-envelope-id"] == "my id+1", rep["per_message"]
    assert rep["parts"][2] == "text/rfc822-headers"
    # never: no report; a bad value is a usage error, nothing queued
    sendmail_ok(qbins, d, [BOB], message("sendmail never", to=BOB), sender=ALICE,
                args=["-N", "never"])
    wait_until(lambda: len(d.messages(BOB)) == 2, 20, what="bob's second copy")
    wait_empty(qbins, d)
    assert report_lines(d) == 1
    p = sendmail(qbins, d, [BOB], message("bad", to=BOB), sender=ALICE,
                 args=["-N", "always"])
    assert p.returncode == 64, p
    fwd_env.assert_no_bounce(local={BOB: 2, OWNER: 1})


def test_submit_socket_dsn_line(fwd_env):
    d = wait_ready(fwd_env.daemon(mailboxes=MAILBOXES))
    body = message("raw dsn", to=BOB).encode()
    for bad in (b"DSN NOTIFY=NEVER,DELAY\n", b"DSN RET=ALL\n", b"DSN ENVID=a=b\n",
                b"DSN ORCPT=rfc822;x\n", b"DSN NOTIFY=SUCCESS NOTIFY=DELAY\n"):
        r = submit_raw(d, b"SENDER <%s>\n" % ALICE.encode() + bad)
        assert r.startswith("ERR 501 5.5.4"), (bad, r)
    # after a RCPT, or twice: out of order
    r = submit_raw(d, b"SENDER <%s>\nRCPT %s\nDSN RET=HDRS\n" % (ALICE.encode(), BOB.encode()))
    assert r.startswith("ERR 503 5.5.1"), r
    r = submit_raw(d, b"SENDER <%s>\nDSN RET=HDRS\nDSN NOTIFY=SUCCESS\n" % ALICE.encode())
    assert r.startswith("ERR 503 5.5.1"), r
    r = submit_raw(d, b"SENDER <%s>\nDSN NOTIFY=SUCCESS RET=FULL ENVID=raw+2B1\nRCPT %s\n"
                   b"DATA %d\n" % (ALICE.encode(), BOB.encode(), len(body)) + body)
    assert r.startswith("OK "), r
    (rep,) = settled_reports(d, OWNER, want=1)
    assert recipient_block(rep, BOB)["action"] == "delivered"
    assert rep["per_message"]["original-envelope-id"] == "raw+1"
    assert rep["parts"][2] == "message/rfc822", rep["parts"]

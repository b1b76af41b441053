"""The queue's deliveries and reports (doc/protocol.md, "The queue";
doc/queue.md; chamoisctl(8); chamois-sendmail(8)).

Every message enters the queue through bin/chamois-sendmail run as root;
root@example.test is a mailbox, so it is the owner of every message and
the Maildir where reports (RFC 3464) must land.  Remotes are aiosmtpd
servers behind a dnsmasq MX (peers/remote.py); chamoisctl is used to look
at the queue and to flush it, as an administrator would.  Reports are read
with Python's email package (policy default)."""

import email.utils
import re
import time

from harness import crlf, dot_stuff, wait_until
from peers.remote import fwd_env  # noqa: F401
from peers.queue_util import (  # noqa: F401
    MAILBOXES, OWNER, qbins, all_deferred, bring_up, ctl_ok, fields_of, parse_report,
    queue, recipient_block, reports, sendmail, sendmail_ok, subject_of,
    wait_empty, wait_queue, wait_ready)

SENDER = "alice@example.test"

BODY = ("Hello,\n"
        "\n"
        ".a line that starts with a dot\n"
        "..two dots\n"
        ".\n"
        "  leading spaces and trailing ones   \n"
        "\ttab\n"
        + "long " * 180 + "\n"
        "From the start of a line\n"
        "-- \n"
        "last line\n")


def message(subject, to="carol@remote.test", body=BODY, sender=SENDER):
    return ("From: Alice <%s>\n"
            "To: %s\n"
            "Subject: %s\n"
            "Message-ID: <%s@example.test>\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
            "\n%s" % (sender, to, subject, re.sub(r"\W", "", subject) or "x", body))


def daemon(fwd_env, extra_conf="", **kw):
    kw.setdefault("mailboxes", MAILBOXES)
    return wait_ready(fwd_env.daemon(extra_conf=extra_conf, **kw))


def delivered_subjects(remote):
    return [subject_of(t.content) for t in remote.delivered()]


def only_report(d, timeout=20):
    """Wait for the owner's report; there must be exactly one."""
    d.wait_messages(OWNER, 1, timeout=timeout)
    wait_until(lambda: "queue report delivered" in d.log(), 10, what="report logged")
    files = reports(d)
    assert len(files) == 1, "expected one report, got %d:\n%r" % (len(files), files)
    return files[0], parse_report(files[0])


def check_report_envelope(raw, rep):
    """What every report must look like from the outside."""
    msg = rep["msg"]
    assert rep["return_path"] == "<>", raw[:300]
    assert msg.get_content_type() == "multipart/report", msg["Content-Type"]
    assert msg.get_param("report-type") == "delivery-status", msg["Content-Type"]
    assert str(msg["Auto-Submitted"]).strip().lower().startswith("auto-replied"), \
        msg["Auto-Submitted"]
    assert OWNER in str(msg["To"]), msg["To"]
    assert "MAILER-DAEMON" in str(msg["From"]), msg["From"]
    assert rep["parts"][:2] == ["text/plain", "message/delivery-status"], rep["parts"]
    assert rep["parts"][2] in ("text/rfc822-headers", "message/rfc822"), rep["parts"]


# --------------------------------------------------------------------------
# delivery


def test_remote_delivery_once_sender_unchanged_body_intact(fwd_env, qbins):
    r = fwd_env.remote("remote.test")
    d = daemon(fwd_env)
    msg = message("to the remote")
    sendmail_ok(qbins, d, ["carol@remote.test"], msg, sender=SENDER)
    wait_until(lambda: r.delivered(), 20, what="delivery at the remote")
    wait_empty(qbins, d)
    r.wait_closed()
    (tx,) = r.delivered()
    assert len(r.transactions()) == 1, r.transcript()
    # our own user's sender goes out as it is: no SRS
    assert tx.mail_from == SENDER, tx.mail_from
    assert tx.accepted == ["carol@remote.test"]
    head, _, body = tx.content.partition(b"\r\n\r\n")
    orig_head, _, orig_body = crlf(msg).partition(b"\r\n\r\n")
    assert body == orig_body, "body changed:\n%r\n%r" % (body, orig_body)
    # the original header section follows what chamoisd prepends
    assert head.endswith(orig_head), head
    prepended = head[:-len(orig_head)]
    assert prepended.startswith(b"Received: "), prepended
    assert b"Return-Path" not in prepended and b"Delivered-To" not in prepended
    assert re.search(r" to=<carol@remote\.test> relay=\S+\[127\.0\.0\.\d+\]:\d+ "
                     r"delay=\d+ dsn=2\.\d\.\d status=sent \(250 ", d.log()), d.log()[-2000:]
    # no report: nothing in any Maildir, no MAIL FROM:<> anywhere
    fwd_env.assert_no_bounce()


def test_local_delivery_to_maildir(fwd_env, qbins):
    d = daemon(fwd_env)
    msg = message("to a local mailbox", to="bob@example.test")
    sendmail_ok(qbins, d, ["bob@example.test"], msg, sender=SENDER)
    (m,) = d.wait_messages("bob@example.test", 1, timeout=20)
    wait_empty(qbins, d)
    assert fields_of(m, "Return-Path") == ["<%s>" % SENDER]
    assert fields_of(m, "Delivered-To") == ["bob@example.test"]
    assert m.endswith(msg.split("\n\n", 1)[1].encode()), m
    assert b"\nSubject: to a local mailbox\n" in m
    assert b"\r" not in m
    assert len(d.messages("bob@example.test")) == 1
    fwd_env.assert_no_bounce(local={"bob@example.test": 1})


def test_temporary_failure_then_flush_delivers_once(fwd_env, qbins):
    tries = []

    def greylist(conn, address):
        tries.append(address)
        return "451 4.7.1 greylisted, come back later" if len(tries) == 1 else None

    r = fwd_env.remote("remote.test", rcpt=greylist)
    d = daemon(fwd_env)
    sendmail_ok(qbins, d, ["carol@remote.test"], message("greylisted"), sender=SENDER)
    msgs = wait_queue(qbins, d, lambda m: all_deferred(m, 1), "the recipient deferred")
    (m,) = msgs.values()
    (rc,) = m["rcpts"]
    assert rc["addr"] == "carol@remote.test" and rc["attempts"] == 1, rc
    assert rc["reply"].startswith("451 4.7.1 greylisted, come back later"), rc
    assert rc["next"] != "-", rc
    assert r.delivered() == []
    out = ctl_ok(qbins, d, "flush")
    assert "1" in out, out
    wait_until(lambda: r.delivered(), 20, what="delivery after flush")
    wait_empty(qbins, d)
    r.wait_closed()
    assert delivered_subjects(r) == ["greylisted"], r.transcript()
    assert len(tries) == 2, tries
    fwd_env.assert_no_bounce()


def test_permanent_failure_one_report_in_owners_maildir(fwd_env, qbins):
    text = "550 5.1.1 <nobody@remote.test>: Recipient address rejected: no such user"
    r = fwd_env.remote("remote.test", rcpt={"nobody@remote.test": text})
    d = daemon(fwd_env)
    sendmail_ok(qbins, d, ["nobody@remote.test"],
                message("doomed message", to="nobody@remote.test"), sender=SENDER)
    raw, rep = only_report(d)
    wait_empty(qbins, d)
    check_report_envelope(raw, rep)
    b = recipient_block(rep, "nobody@remote.test")
    assert b["action"] == "failed", b
    assert b["status"] == "5.1.1", b
    assert "Recipient address rejected: no such user" in b["diagnostic-code"], b
    assert b["diagnostic-code"].lower().startswith("smtp;"), b
    assert b["final-recipient"].lower().startswith("rfc822;"), b
    assert "mx1.remote.test" in b.get("remote-mta", ""), b
    assert "Subject: doomed message" in rep["headers"], rep["headers"]
    assert "reporting-mta" in rep["per_message"], rep["per_message"]
    assert not r.delivered()
    # reports never go over SMTP
    fwd_env.remotes.settle()
    assert fwd_env.remotes.null_sender_attempts() == [], fwd_env.remotes.transcript()
    assert len(reports(d)) == 1
    fwd_env.assert_no_bounce(local={OWNER: 1})


def test_expiry_reports_failure_and_leaves_the_queue(fwd_env, qbins):
    down = fwd_env.closed_remote("remote.test")
    d = daemon(fwd_env, extra_conf="queue_lifetime 3s")
    sendmail_ok(qbins, d, ["carol@remote.test"], message("never arrives"), sender=SENDER)
    wait_queue(qbins, d, lambda m: all_deferred(m, 1), "the recipient deferred")
    assert reports(d) == []
    # the next retry is a minute away: once the lifetime is over, an
    # administrator's flush makes the queue look at the message now
    time.sleep(3.5)
    ctl_ok(qbins, d, "flush")
    raw, rep = only_report(d)
    wait_empty(qbins, d)
    check_report_envelope(raw, rep)
    b = recipient_block(rep, "carol@remote.test")
    assert b["action"] == "failed", b
    assert re.match(r"^[45]\.\d+\.\d+$", b["status"]), b
    assert "Subject: never arrives" in rep["headers"]
    assert "queue expired to=<carol@remote.test>" in d.log()
    assert down.connections == []
    fwd_env.assert_no_bounce(local={OWNER: 1})


def test_delay_notice_while_still_queued(fwd_env, qbins):
    fwd_env.closed_remote("remote.test")
    d = daemon(fwd_env, extra_conf="delay_warning_time 1s")
    sendmail_ok(qbins, d, ["carol@remote.test"], message("slow one"), sender=SENDER)
    wait_queue(qbins, d, lambda m: all_deferred(m, 1), "the recipient deferred")
    time.sleep(1.5)
    ctl_ok(qbins, d, "flush")
    raw, rep = only_report(d)
    check_report_envelope(raw, rep)
    b = recipient_block(rep, "carol@remote.test")
    assert b["action"] == "delayed", b
    assert b["status"].startswith("4."), b
    # the queue keeps trying until arrival + queue_lifetime (default 5d)
    until = email.utils.parsedate_to_datetime(b["will-retry-until"])
    assert until.timestamp() > time.time() + 4 * 86400, b
    assert "Subject: slow one" in rep["headers"]
    # still queued, still deferred
    msgs, _ = queue(qbins, d)
    (m,) = msgs.values()
    assert [x["state"] for x in m["rcpts"]] == ["deferred"], m
    # another attempt makes no second notice
    attempts = m["rcpts"][0]["attempts"]
    ctl_ok(qbins, d, "flush")
    wait_queue(qbins, d, lambda ms: ms and all(x["attempts"] > attempts and x["state"] == "deferred"
                                               for mm in ms.values() for x in mm["rcpts"]),
               "another attempt")
    assert len(reports(d)) == 1
    fwd_env.assert_no_bounce(local={OWNER: 1})


def test_mixed_local_and_remote_recipients(fwd_env, qbins):
    down = fwd_env.closed_remote("remote.test")
    d = daemon(fwd_env)
    sendmail_ok(qbins, d, ["bob@example.test", "carol@remote.test"],
                message("mixed", to="bob@example.test, carol@remote.test"), sender=SENDER)
    d.wait_messages("bob@example.test", 1, timeout=20)
    msgs = wait_queue(qbins, d, lambda m: rcpt_states_ok(m), "bob delivered, carol deferred")
    (m,) = msgs.values()
    st = {x["addr"]: x for x in m["rcpts"]}
    assert st["bob@example.test"]["state"] == "delivered", st
    assert st["carol@remote.test"]["state"] == "deferred", st
    r = bring_up(down)
    ctl_ok(qbins, d, "flush")
    wait_until(lambda: r.delivered(), 20, what="remote delivery after flush")
    wait_empty(qbins, d)
    r.wait_closed()
    assert delivered_subjects(r) == ["mixed"]
    (tx,) = r.delivered()
    assert tx.accepted == ["carol@remote.test"], tx
    # the local copy is not made again by the retry
    assert len(d.messages("bob@example.test")) == 1
    fwd_env.assert_no_bounce(local={"bob@example.test": 1})


def rcpt_states_ok(msgs):
    if len(msgs) != 1:
        return False
    (m,) = msgs.values()
    st = {x["addr"]: x["state"] for x in m["rcpts"]}
    return st == {"bob@example.test": "delivered", "carol@remote.test": "deferred"}


def test_per_recipient_outcomes_in_one_transaction(fwd_env, qbins):
    r = fwd_env.remote("remote.test", rcpt={
        "a@remote.test": "550 5.1.1 <a@remote.test>: no such user",
        "b@remote.test": "450 4.2.0 <b@remote.test>: mailbox busy",
        "c@remote.test": "250 2.1.5 Ok"})
    d = daemon(fwd_env)
    sendmail_ok(qbins, d, ["a@remote.test", "b@remote.test", "c@remote.test"],
                message("three of them", to="a@remote.test, b@remote.test, c@remote.test"),
                sender=SENDER)
    wait_until(lambda: r.delivered(), 20, what="delivery to c")
    raw, rep = only_report(d)

    def settled(msgs):
        if len(msgs) != 1:
            return False
        (m,) = msgs.values()
        return {x["addr"]: x["state"] for x in m["rcpts"]} == {
            "a@remote.test": "failed", "b@remote.test": "deferred",
            "c@remote.test": "delivered"}
    msgs = wait_queue(qbins, d, settled, "a failed, b deferred, c delivered")
    (m,) = msgs.values()
    st = {x["addr"]: x for x in m["rcpts"]}
    assert st["b@remote.test"]["reply"].startswith("450 4.2.0"), st
    assert st["a@remote.test"]["reply"].startswith("550 5.1.1"), st
    # one transaction carried the three recipients
    r.wait_closed()
    (tx,) = r.transactions()
    assert [a for a, _ in tx.rcpts] == ["a@remote.test", "b@remote.test", "c@remote.test"], tx
    assert tx.accepted == ["c@remote.test"] and tx.delivered, tx
    # the report names a only
    check_report_envelope(raw, rep)
    assert len(rep["recipients"]) == 1, rep["recipients"]
    b = recipient_block(rep, "a@remote.test")
    assert b["action"] == "failed" and b["status"] == "5.1.1", b
    assert "no such user" in b["diagnostic-code"], b
    fwd_env.assert_no_bounce(local={OWNER: 1})


def test_null_sender_failure_makes_no_report(fwd_env, qbins):
    r = fwd_env.remote("remote.test",
                       rcpt={"nobody@remote.test": "550 5.1.1 no such user"})
    d = daemon(fwd_env)
    sendmail_ok(qbins, d, ["nobody@remote.test"],
                message("from nobody", to="nobody@remote.test"), sender="<>")
    wait_until(lambda: re.search(r" to=<nobody@remote\.test> .* status=bounced ", d.log()),
               20, what="the failure")
    wait_empty(qbins, d)
    r.wait_closed()
    # the message itself went out from <> (that is what it was)...
    (tx,) = r.transactions()
    assert tx.mail_from == "", tx
    # ...but no report anywhere
    assert "queue report" not in d.log()
    assert d.stored_files() == []
    fwd_env.assert_no_bounce(null_sender_expected=1)


def test_null_sender_empty_f_makes_no_report(fwd_env, qbins):
    r = fwd_env.remote("remote.test",
                       rcpt={"nobody@remote.test": "550 5.1.1 no such user"})
    d = daemon(fwd_env)
    sendmail_ok(qbins, d, ["nobody@remote.test"],
                message("from nobody too", to="nobody@remote.test"), sender="")
    wait_until(lambda: re.search(r" to=<nobody@remote\.test> .* status=bounced ", d.log()),
               20, what="the failure")
    wait_empty(qbins, d)
    r.wait_closed()
    (tx,) = r.transactions()
    assert tx.mail_from == "", tx
    assert "queue report" not in d.log()
    assert d.stored_files() == []


def test_unknown_local_recipient_reported_5_1_1(fwd_env, qbins):
    d = daemon(fwd_env)
    p = sendmail(qbins, d, ["nosuch@example.test"], message("to nobody here",
                                                            to="nosuch@example.test"),
                 sender=SENDER)
    assert p.returncode == 0, (p.returncode, p.stderr)
    raw, rep = only_report(d)
    wait_empty(qbins, d)
    check_report_envelope(raw, rep)
    b = recipient_block(rep, "nosuch@example.test")
    assert b["action"] == "failed", b
    assert b["status"] == "5.1.1", b
    assert "Subject: to nobody here" in rep["headers"]
    fwd_env.assert_no_bounce(local={OWNER: 1})


def test_unknown_local_recipient_next_to_a_known_one(fwd_env, qbins):
    d = daemon(fwd_env)
    sendmail_ok(qbins, d, ["nosuch@example.test", "bob@example.test"],
                message("half known", to="nosuch@example.test, bob@example.test"),
                sender=SENDER)
    d.wait_messages("bob@example.test", 1, timeout=20)
    raw, rep = only_report(d)
    wait_empty(qbins, d)
    check_report_envelope(raw, rep)
    assert len(rep["recipients"]) == 1, rep["recipients"]
    b = recipient_block(rep, "nosuch@example.test")
    assert b["action"] == "failed" and b["status"] == "5.1.1", b
    fwd_env.assert_no_bounce(local={OWNER: 1, "bob@example.test": 1})


def test_queue_max_per_domain_limits_sessions(fwd_env, qbins):
    """queue_max_per_domain 2: never more than two sessions to one domain
    at a time, also when many messages become due at once (flush)."""
    down = fwd_env.closed_remote("remote.test")
    d = daemon(fwd_env, extra_conf="queue_max_per_domain 2")
    for i in range(8):
        sendmail_ok(qbins, d, ["carol@remote.test"], message("limited %d" % i), sender=SENDER)
    wait_queue(qbins, d, lambda m: all_deferred(m, 8), "8 deferred messages")
    seen = []

    def mail(conn, address):
        seen.append(sum(1 for c in list(down.connections) if not c.closed))
        return None

    down.behaviour["mail"] = mail
    down.delay = {"eod": 0.5}
    r = bring_up(down)
    ctl_ok(qbins, d, "flush")
    wait_until(lambda: len(r.delivered()) == 8, 30, what="8 deliveries")
    wait_empty(qbins, d)
    assert max(seen) <= 2, "sessions open at each MAIL: %r" % seen


def test_address_literal_recipient_and_forwarding_target(fwd_env, qbins):
    """An address literal (user@[127.0.0.X], RFC 5321 4.1.3) needs no DNS:
    the queue delivers to it, and an alias may forward to it."""
    r = fwd_env.remote("remote.test")
    lit = "carol@[%s]" % r.address
    d = daemon(fwd_env, aliases={"lit@example.test": [lit]})
    sendmail_ok(qbins, d, [lit], message("to a literal", to=lit), sender=SENDER)
    wait_until(lambda: r.delivered(), 20, what="delivery at the literal")
    wait_empty(qbins, d)
    assert [t.accepted for t in r.delivered()] == [[lit]]
    # forwarded: the sender gets the remote's own reply at RCPT
    c = d.dialog()
    c.cmd("EHLO client.sender.test", "250")
    c.cmd("MAIL FROM:<joe@sender.test>", "250")
    c.cmd("RCPT TO:<lit@example.test>", "250")
    c.cmd("DATA", "354")
    # From an outside domain: ours would need SPF or DKIM on port 25 (SPEC 7)
    c.send(dot_stuff(crlf(message("forwarded to a literal", to="lit@example.test",
                                  sender="joe@sender.test"))) + b".\r\n")
    c.expect("250")
    c.cmd("QUIT", "221")
    wait_until(lambda: len(r.delivered()) == 2, 20, what="the forwarded copy")
    assert r.delivered()[1].mail_from.startswith("SRS0="), r.delivered()[1].mail_from

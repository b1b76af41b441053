"""Local delivery through a real Dovecot's LMTP (local_delivery lmtp TARGET,
doc/users.md "Delivery through Dovecot"; Debian's dovecot-lmtpd, its quota
plugin and dovecot-sieve; peers/dovecot.py).

What a sender and the user see: the message read back over IMAP byte for
byte (chamoisd's Received, then the message as sent; Dovecot adds
Return-Path and Delivered-To), an unknown user and a user over quota
refused at RCPT with Dovecot's own reply, a Sieve fileinto, a Sieve
vacation reply leaving through chamois-sendmail and the queue (for a
sender whose SPF passes; none for a sender chamoisd's
Authentication-Results does not vouch for),
Dovecot down a 4xx at RCPT, a mailbox that fails after DATA while another
took the message queued for that mailbox alone (the client gets 250, no
one a duplicate, the queue delivers it once the mailbox can take it, a
refusal for good reported to the postmaster only), connections reused,
the queue's local recipients delivered through LMTP too, and the local
copy of a forwarded address: asked about at RCPT (over quota refuses the
RCPT, nothing forwarded), delivered only after the remote's 2xx, queued
when Dovecot fails it then.
"""

import os
import re
import smtplib
from pathlib import Path

import pytest

import harness
from harness import Dialog, crlf, dot_stuff, wait_log_match
from peers.dovecot import dovecots
from peers.remote import fwd_env, transaction  # noqa: F401
from peers.queue_util import (  # noqa: F401
    ctl_ok, mount_tmpfs, parse_report, qbins, queue, relocate_state, umount, wait_empty,
    wait_queue)

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
SENDER = "sender@remote.test"


@pytest.fixture
def dovecot(tmp_path):
    with dovecots(tmp_path, prefix="dv", tail=5000) as start:
        def make(maildir_root, users=(ALICE, BOB, CAROL), user_fields=None, extra=""):
            if not LMTP_BIN.exists():
                pytest.skip("%s missing (apt-get install dovecot-lmtpd)" % LMTP_BIN)
            dv = start(maildir_root, users, protocols="imap lmtp",
                       user_fields=user_fields, extra_conf=LMTP_CONF + extra)
            for u in users:
                dv.grant_access(u)
            return dv
        yield make


LMTP_BIN = Path("/usr/lib/dovecot/lmtp")
# the quota plugin with its RCPT check (SPEC 11), and Sieve at delivery
# default_vsz_limit 0 (no limit): Dovecot's 256M address-space limit
# leaves a sanitizer build's chamois-sendmail (vacation replies) no room
# for ASan's shadow memory
LMTP_CONF = """\
default_vsz_limit = 0
mail_plugins = $mail_plugins quota
lmtp_rcpt_check_quota = yes
protocol lmtp {
  mail_plugins = $mail_plugins sieve
  # the home's "/./" is a chroot for IMAP only (peers/dovecot.py)
  valid_chroot_dirs =
}
plugin {
  quota = maildir:User quota
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
"""


def lmtp_mx(chamoisd, dv_socket):
    return chamoisd(mailboxes=(ALICE, BOB, CAROL),
                    extra_conf="local_delivery lmtp %s\n" % dv_socket)


def start_dovecot_for(dovecot, tmp_path, **kw):
    """Dovecot first (its socket path goes into chamois.conf), over a
    Maildir root of its own that chamoisd never writes.  Dovecot's LMTP
    does not chroot as its IMAP does (peers/dovecot.py), so the mail uid
    must pass through the test's directories (o+x, not listable)."""
    root = tmp_path / "mail"
    root.mkdir(parents=True, exist_ok=True)
    for d in [root] + list(root.parents):
        if d == Path("/"):
            break
        d.chmod(d.stat().st_mode | 0o001)
    return dovecot(root, **kw)


def fill(dv, user, size):
    """a message of size octets in user's Maildir, before Dovecot first
    reads the user's quota (it counts it then)"""
    filler = dv.home(user) / "new" / ("1.filler.vm,S=%d" % size)
    filler.write_bytes(b"Subject: filler\n\n" + b"x" * (size - 18) + b"\n")
    os.chown(filler, dv.uid, dv.gid)


def expunge_first(dv, user):
    """user deletes the first message of the INBOX over IMAP (room in the
    quota)"""
    imap = dv.connect(user)
    try:
        assert imap.select("INBOX")[0] == "OK"
        assert imap.store("1", "+FLAGS", "\\Deleted")[0] == "OK"
        assert imap.expunge()[0] == "OK"
    finally:
        imap.logout()


def message(subject, to=ALICE, body="Hello,\n\n.a dot line\nbye\n"):
    return ("From: Sender <%s>\nTo: <%s>\nSubject: %s\n"
            "Message-ID: <%s@remote.test>\nDate: Thu, 01 Jan 2026 00:00:00 +0000\n"
            "\n%s" % (SENDER, to, subject, subject.replace(" ", "-"), body))


def dialog(mx, sender=SENDER):
    c = Dialog(mx.host, mx.port)
    c.expect("220")
    c.cmd("EHLO client.remote.test", "250")
    c.cmd("MAIL FROM:<%s>" % sender, "250")
    return c


def test_delivered_through_lmtp_read_back_over_imap(chamoisd, dovecot, tmp_path):
    dv = start_dovecot_for(dovecot, tmp_path)
    mx = lmtp_mx(chamoisd, dv.lmtp_socket)
    msg = message("through lmtp")
    with smtplib.SMTP(mx.host, mx.port, local_hostname="client.remote.test",
                      timeout=30) as s:
        assert s.sendmail(SENDER, [ALICE, BOB], crlf(msg)) == {}
    for who in (ALICE, BOB):
        (got,) = dv.fetch(who)
        # Dovecot's own Return-Path, Delivered-To and Received (from our
        # LHLO name, "for" the mailbox: one LMTP transaction per mailbox),
        # then the checks' Authentication-Results and our Received, then
        # the message as sent, byte for byte (IMAP serves CRLF)
        head = got[:len(got) - len(crlf(msg))]
        assert got.endswith(crlf(msg)), got
        assert head.startswith(b"Return-Path: <%s>\r\nDelivered-To: %s\r\n"
                               b"Received: from mx.example.test\r\n"
                               % (SENDER.encode(), who.encode())), got
        assert b"with LMTP" in head, got
        assert b"for <%s>" % who.encode() in head, got
        ar = head.index(b"\r\nAuthentication-Results: mx.example.test;")
        ours = head.index(b"\r\nReceived: from client.remote.test")
        assert ar < ours, got
        assert head.endswith(b"\r\n"), got
    assert "delivery mailbox=%s result=delivered lmtp=" % ALICE in mx.log()
    # nothing went to chamoisd's own Maildirs
    assert mx.messages(ALICE) == []


def test_lmtp_target_named_by_a_host_in_etc_hosts(chamoisd, dovecot, tmp_path):
    """local_delivery lmtp localhost:PORT: Dovecot's LMTP on TCP, its host
    a name from /etc/hosts (chamois.conf(5)); a reload (SIGHUP) to a name
    that is not there fails, says which name, and keeps the old target"""
    port = harness.free_port()
    dv = start_dovecot_for(dovecot, tmp_path, extra=(
        "service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n"
        "    port = %d\n  }\n}\n" % port))
    mx = chamoisd(mailboxes=(ALICE, BOB, CAROL),
                  extra_conf="local_delivery lmtp localhost:%d\n" % port)
    msg = message("by name")
    with smtplib.SMTP(mx.host, mx.port, local_hostname="client.remote.test",
                      timeout=30) as s:
        assert s.sendmail(SENDER, [ALICE], crlf(msg)) == {}
    (got,) = dv.fetch(ALICE)
    assert got.endswith(crlf(msg)), got
    assert mx.messages(ALICE) == []
    mx.write_conf(mx.conf.read_text().replace("local_delivery lmtp localhost:",
                                              "local_delivery lmtp nosuch.invalid:"))
    mx.reload()
    wait_log_match(mx.log, r"'nosuch\.invalid' is not in /etc/hosts")
    wait_log_match(mx.log, r"reload failed: config has errors; the old one stays")
    with smtplib.SMTP(mx.host, mx.port, local_hostname="client.remote.test",
                      timeout=30) as s:
        assert s.sendmail(SENDER, [ALICE], crlf(message("after the reload"))) == {}
    assert len(dv.fetch(ALICE)) == 2


def test_unknown_to_dovecot_and_over_quota_refused_at_rcpt(chamoisd, dovecot, tmp_path):
    """carol is in chamoisd's mailboxes but not in Dovecot's userdb; bob's
    quota is full: both get Dovecot's reply at RCPT, alice's mail goes."""
    dv = start_dovecot_for(dovecot, tmp_path, users=(ALICE, BOB),
                           user_fields={BOB: "userdb_quota_rule=*:storage=1"})
    mx = lmtp_mx(chamoisd, dv.lmtp_socket)
    # bob's Maildir already holds more than his quota (1 KiB): Dovecot
    # counts it when it first reads his quota
    fill(dv, BOB, 4096)
    with dialog(mx) as c:
        r = c.cmd("RCPT TO:<%s>" % CAROL, "550")
        assert r.startswith("550 5.1.1"), r
        r = c.cmd("RCPT TO:<%s>" % BOB, "552")
        assert r.startswith("552 5.2.2"), r
        c.cmd("RCPT TO:<%s>" % ALICE, "250 2.1.5")
        c.cmd("DATA", "354")
        c.send(dot_stuff(crlf(message("only alice"))) + b".\r\n")
        c.expect("250 2.0.0", timeout=30)
    assert len(dv.fetch(ALICE)) == 1
    assert len(dv.fetch(BOB)) == 1      # the filler only


def test_sieve_fileinto(chamoisd, dovecot, tmp_path):
    dv = start_dovecot_for(dovecot, tmp_path)
    home = dv.home(ALICE)
    script = home / ".dovecot.sieve"
    script.write_text('require ["fileinto", "mailbox"];\n'
                      'if header :contains "Subject" "[list]" {\n'
                      '  fileinto :create "Lists";\n  stop;\n}\n')
    dv.grant_access(ALICE)
    mx = lmtp_mx(chamoisd, dv.lmtp_socket)
    with smtplib.SMTP(mx.host, mx.port, local_hostname="client.remote.test",
                      timeout=30) as s:
        s.sendmail(SENDER, [ALICE], crlf(message("[list] news")))
        s.sendmail(SENDER, [ALICE], crlf(message("personal")))
    lists = dv.fetch(ALICE, mailbox="Lists")
    inbox = dv.fetch(ALICE)
    assert len(lists) == 1 and b"Subject: [list] news" in lists[0], (lists, inbox)
    assert len(inbox) == 1 and b"Subject: personal" in inbox[0], inbox


def test_dovecot_down_is_4xx_at_rcpt(chamoisd, dovecot, tmp_path):
    dv = start_dovecot_for(dovecot, tmp_path)
    mx = lmtp_mx(chamoisd, dv.lmtp_socket)
    dv.stop()
    with dialog(mx) as c:
        r = c.cmd("RCPT TO:<%s>" % ALICE, "451")
        assert r.startswith("451 4.4.2"), r
        c.cmd("QUIT", "221")
    assert "lmtp:" in mx.log()
    dv.start()
    with dialog(mx) as c:
        c.cmd("RCPT TO:<%s>" % ALICE, "250")


def test_connections_are_reused(chamoisd, dovecot, tmp_path):
    dv = start_dovecot_for(dovecot, tmp_path)
    mx = lmtp_mx(chamoisd, dv.lmtp_socket)
    with smtplib.SMTP(mx.host, mx.port, local_hostname="client.remote.test",
                      timeout=30) as s:
        for i in range(5):
            assert s.sendmail(SENDER, [ALICE], crlf(message("reuse %d" % i))) == {}
    assert len(dv.fetch(ALICE)) == 5
    # one connection did it all: Dovecot logged one LMTP connect
    assert dv.log().count("lmtp(") >= 5
    assert dv.log().count("Connect from") <= 1, dv.log()


def test_the_queue_delivers_local_recipients_through_lmtp(chamoisd, dovecot, tmp_path):
    """A logged-in user's mail to a local mailbox goes through the queue,
    and the queue hands it to Dovecot's LMTP (SPEC 11), Sieve included."""
    from peers.sasl import USERS, plain_b64, submission_daemon
    dv = start_dovecot_for(dovecot, tmp_path)
    (dv.home(BOB) / ".dovecot.sieve").write_text(
        'require ["fileinto", "mailbox"];\nfileinto :create "FromAlice";\n')
    dv.grant_access(BOB)
    sub = submission_daemon(chamoisd, tmp_path / "sasl",
                            mailboxes=(ALICE, BOB, CAROL),
                            extra_conf="local_delivery lmtp %s\n" % dv.lmtp_socket)
    msg = ("From: <%s>\nTo: <%s>\nSubject: queued for lmtp\n"
           "Message-ID: <queued-lmtp@example.test>\n"
           "Date: Thu, 01 Jan 2026 00:00:00 +0000\n\nvia the queue\n" % (ALICE, BOB))
    with sub.dialog() as c:
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "235")
        c.cmd("MAIL FROM:<%s>" % ALICE, "250")
        c.cmd("RCPT TO:<%s>" % BOB, "250")
        c.cmd("DATA", "354")
        c.send(dot_stuff(crlf(msg)) + b".\r\n")
        c.expect("250", timeout=30)
    wait_log_match(sub.d.log, r"to=<bob@example\.test> relay=local .*status=sent")
    (got,) = dv.fetch(BOB, mailbox="FromAlice")
    assert got.endswith(crlf("\nvia the queue\n")), got
    assert b"Subject: queued for lmtp" in got
    assert sub.d.messages(BOB) == []


BIG = ("y" * 70 + "\n") * 60      # more than bob's 2 KiB quota


def send_to_alice_and_bob(mx, msg, reply="250"):
    """alice and bob both pass RCPT (bob is under his quota then); the
    final reply"""
    with dialog(mx) as c:
        c.cmd("RCPT TO:<%s>" % ALICE, "250")
        c.cmd("RCPT TO:<%s>" % BOB, "250")
        c.cmd("DATA", "354")
        c.send(dot_stuff(crlf(msg)) + b".\r\n")
        return c.expect(reply, timeout=30)


def test_one_mailbox_failing_after_data_is_queued_for_that_mailbox(
        chamoisd, dovecot, qbins, tmp_path):
    """bob is under his quota at RCPT (a 6 KiB message in his 8 KiB), but
    the message does not fit what is left, and Dovecot says so with a 4xx
    (quota_full_tempfail): alice's mailbox takes it, bob's does not.  The
    copy for bob goes into the queue and the client gets 250 (doc/users.md
    "Delivery through Dovecot"), so it has no reason to send again: alice
    keeps one copy.  The queue retries bob through the same LMTP client;
    once bob has deleted his old message, the flush delivers his one copy,
    as alice's was delivered (our Authentication-Results and Received),
    and nothing is reported."""
    dv = start_dovecot_for(dovecot, tmp_path,
                           user_fields={BOB: "userdb_quota_rule=*:storage=8"},
                           extra="quota_full_tempfail = yes\n")
    # in bob's Maildir before Dovecot first reads his quota
    fill(dv, BOB, 6144)
    mx = lmtp_mx(chamoisd, dv.lmtp_socket)
    msg = message("too big for bob", body=BIG)
    r = send_to_alice_and_bob(mx, msg)
    m = re.match(r"250 2\.0\.0 Ok: delivered to 1, 1 queued as ([0-9a-f]{16})$", r)
    assert m, r
    qid = m.group(1)
    assert len(dv.fetch(ALICE)) == 1
    assert len(dv.fetch(BOB)) == 1      # the filler only
    # in the queue for bob alone, tried once already and deferred
    msgs = wait_queue(qbins, mx, lambda q: qid in q and q[qid]["rcpts"][0]["state"] ==
                      "deferred", "bob's copy deferred in the queue")
    assert msgs[qid]["sender"] == SENDER, msgs
    assert [x["addr"] for x in msgs[qid]["rcpts"]] == [BOB], msgs
    assert msgs[qid]["rcpts"][0]["reply"].startswith("452 4.2.2"), msgs
    # bob frees his quota over IMAP
    expunge_first(dv, BOB)
    ctl_ok(qbins, mx, "flush")
    wait_empty(qbins, mx)
    (alice,) = dv.fetch(ALICE)
    (bob,) = dv.fetch(BOB)
    for got in (alice, bob):
        assert got.endswith(crlf(msg)), got
        ar = got.index(b"\r\nAuthentication-Results: mx.example.test;")
        ours = got.index(b"\r\nReceived: from client.remote.test")
        assert ar < ours, got
    # the copies alike below Dovecot's own Return-Path and Received
    assert alice[alice.index(b"\r\nAuthentication-Results:"):] == \
        bob[bob.index(b"\r\nAuthentication-Results:"):]
    # no report anywhere, nothing toward the sender
    assert "queue report" not in mx.log(), mx.log()
    assert "to=<%s>" % SENDER not in mx.log(), mx.log()
    assert mx.messages(ALICE) == []


def test_one_mailbox_refusing_for_good_after_data_reported_to_postmaster(
        chamoisd, dovecot, qbins, tmp_path):
    """bob's mailbox refuses the message for good after DATA (552 5.2.2,
    larger than his quota) while alice's takes it: the copy for bob is
    queued all the same and the client gets 250; the queue's attempt
    fails, and the report goes to the postmaster (here alice, the first
    mailbox) through Dovecot's LMTP as every local copy does, never toward
    the sender."""
    dv = start_dovecot_for(dovecot, tmp_path,
                           user_fields={BOB: "userdb_quota_rule=*:storage=2"})
    mx = lmtp_mx(chamoisd, dv.lmtp_socket)
    r = send_to_alice_and_bob(mx, message("too big for bob", body=BIG))
    assert re.match(r"250 2\.0\.0 Ok: delivered to 1, 1 queued as [0-9a-f]{16}$", r), r
    wait_empty(qbins, mx)
    assert dv.fetch(BOB) == []
    harness.wait_until(lambda: len(dv.fetch(ALICE)) == 2, timeout=30,
                       what="the report in the postmaster's mailbox")
    assert "queue report delivered mailbox=%s relay=lmtp" % ALICE in mx.log()
    assert mx.messages(ALICE) == []         # nothing in chamoisd's own Maildir
    (report,) = [m for m in dv.fetch(ALICE) if m.startswith(b"Return-Path: <>")]
    rep = parse_report(report.replace(b"\r\n", b"\n"))
    (rcpt,) = rep["recipients"]
    assert rcpt["action"] == "failed", rep
    assert BOB in rcpt["final-recipient"], rep
    assert rcpt["status"] == "5.2.2", rep
    assert "to=<%s>" % SENDER not in mx.log(), mx.log()


def test_partial_failure_the_queue_cannot_store_stays_451(
        chamoisd, dovecot, qbins, tmp_path):
    """The queue's disk is full: bob's copy cannot be stored, so the client
    gets the 451 4.3.0 of before (its retry is the duplicate window of
    doc/users.md) and nothing is queued."""
    dv = start_dovecot_for(dovecot, tmp_path,
                           user_fields={BOB: "userdb_quota_rule=*:storage=2"})
    mx = lmtp_mx(chamoisd, dv.lmtp_socket)
    mnt = mount_tmpfs(tmp_path / "fs", "2m")
    try:
        mx.stop()
        relocate_state(mx, mnt)
        mx.start()
        with open(mnt / "filler", "wb") as f:
            for _ in range(64):             # 4 MiB at most, on 2 MiB
                try:
                    f.write(b"\0" * 65536)
                    f.flush()
                except OSError:
                    break
        r = send_to_alice_and_bob(mx, message("too big for bob", body=BIG), reply="451")
        assert r.startswith("451 4.3.0 Delivered to 1 of 2 mailboxes"), r
        assert "delivery not queued" in mx.log(), mx.log()
        assert len(dv.fetch(ALICE)) == 1
        assert dv.fetch(BOB) == []
        (mnt / "filler").unlink()
        assert queue(qbins, mx)[0] == {}
    finally:
        mx.stop()
        umount(mnt)


def test_every_mailbox_refusing_after_data_is_the_first_refusal(
        chamoisd, dovecot, qbins, tmp_path):
    """alice and bob both refuse after DATA: the client gets the first
    refusal, mapped, and nothing is queued"""
    fields = "userdb_quota_rule=*:storage=2"
    dv = start_dovecot_for(dovecot, tmp_path, user_fields={ALICE: fields, BOB: fields})
    mx = lmtp_mx(chamoisd, dv.lmtp_socket)
    with dialog(mx) as c:
        c.cmd("RCPT TO:<%s>" % ALICE, "250")
        c.cmd("RCPT TO:<%s>" % BOB, "250")
        c.cmd("DATA", "354")
        c.send(dot_stuff(crlf(message("too big for both", body=BIG))) + b".\r\n")
        r = c.expect("552", timeout=30)
        assert r.startswith("552 5.2.2"), r
    assert queue(qbins, mx)[0] == {}
    assert dv.fetch(ALICE) == [] and dv.fetch(BOB) == []


SENDMAIL = Path(__file__).resolve().parents[2] / "bin" / "chamois-sendmail"


def test_vacation_reply_goes_out_through_the_queue_forged_sender_gets_none(
        chamoisd, dovecot, tmp_path):
    """alice's vacation answers everyone; carol's only a sender chamoisd's
    Authentication-Results vouches for (the script of doc/users.md).  A
    message from sender@remote.test, a domain with no SPF record (spf=none,
    as a forger's would be), reaches both: alice's reply leaves from <>
    through chamois-sendmail into chamoisd's queue, toward the sender;
    carol's script sends none."""
    mx = lmtp_mx(chamoisd, tmp_path / "dv0" / "run" / "lmtp")
    harness.open_dirs_to_others(mx)
    mx.conf.chmod(0o644)
    extra = "sendmail_path = %s -C %s\n" % (SENDMAIL, mx.conf)
    dv = start_dovecot_for(dovecot, tmp_path, extra=extra)
    (dv.home(ALICE) / ".dovecot.sieve").write_text(
        'require ["vacation"];\nvacation :days 1 :subject "Away" "alice is away.";\n')
    (dv.home(CAROL) / ".dovecot.sieve").write_text(
        'require ["vacation"];\n'
        'if header :matches "Authentication-Results"\n'
        '    ["mx.example.test;*dmarc=pass*", "mx.example.test;*spf=pass*"] {\n'
        '  vacation :days 1 :subject "Away" "carol is away.";\n}\n')
    for u in (ALICE, CAROL):
        dv.grant_access(u)
    with dialog(mx) as c:
        for r in (ALICE, CAROL):
            c.cmd("RCPT TO:<%s>" % r, "250")
        c.cmd("DATA", "354")
        c.send(dot_stuff(crlf(message("hello", to=ALICE))) + b".\r\n")
        c.expect("250", timeout=30)
    assert len(dv.fetch(CAROL)) == 1 and len(dv.fetch(ALICE)) == 1
    # the reply went into the queue, from <>, to the sender, and is tried
    m = wait_log_match(mx.log, r"queue submit uid=\d+ user=\S+ pid=\d+ from=<> "
                       r"owner=\S+ nrcpts=1", timeout=30)
    wait_log_match(mx.log, r"to=<sender@remote\.test> relay=", timeout=30)
    assert len(re.findall(r"queue submit uid=", mx.log())) == 1, mx.log()
    # both scripts ran: alice's sent its reply, carol's only filed the message
    log = dv.log()
    assert re.search(r"lmtp\(alice@example\.test\).*sieve: .*sent vacation response", log), log
    assert re.search(r"lmtp\(carol@example\.test\).*sieve: .*stored mail into mailbox 'INBOX'",
                     log), log
    assert not re.search(r"lmtp\(carol@example\.test\).*vacation", log), log


def test_vacation_reply_for_a_sender_whose_spf_passes(chamois_conf, dovecot, tmp_path):
    """carol's script of doc/users.md answers a sender that chamoisd's
    Authentication-Results vouches for: friend@pass.test, whose domain's
    SPF record lists the address the message comes from (spf=pass), gets
    carol's reply, from <> through chamois-sendmail and the queue"""
    friend = "friend@pass.test"
    mx = chamois_conf(mailboxes=(ALICE, BOB, CAROL),
                      extra_conf="local_delivery lmtp %s\n"
                                 % (tmp_path / "dv0" / "run" / "lmtp"))
    mx.dns.raw("--txt-record=pass.test,v=spf1 ip4:127.0.0.1 -all")
    mx.start()
    harness.open_dirs_to_others(mx)
    mx.conf.chmod(0o644)
    dv = start_dovecot_for(dovecot, tmp_path,
                           extra="sendmail_path = %s -C %s\n" % (SENDMAIL, mx.conf))
    assert dv.lmtp_socket == tmp_path / "dv0" / "run" / "lmtp"
    (dv.home(CAROL) / ".dovecot.sieve").write_text(
        'require ["vacation"];\n'
        'if header :matches "Authentication-Results"\n'
        '    ["mx.example.test;*dmarc=pass*", "mx.example.test;*spf=pass*"] {\n'
        '  vacation :days 1 :subject "Away" "carol is away.";\n}\n')
    dv.grant_access(CAROL)
    msg = message("hello carol", to=CAROL).replace(SENDER, friend)
    with dialog(mx, sender=friend) as c:
        c.cmd("RCPT TO:<%s>" % CAROL, "250")
        c.cmd("DATA", "354")
        c.send(dot_stuff(crlf(msg)) + b".\r\n")
        c.expect("250", timeout=30)
    (got,) = dv.fetch(CAROL)
    assert re.search(rb"Authentication-Results: mx\.example\.test;\s+spf=pass", got), got
    wait_log_match(mx.log, r"queue submit uid=\d+ user=\S+ pid=\d+ from=<> "
                   r"owner=\S+ nrcpts=1", timeout=30)
    wait_log_match(mx.log, r"to=<friend@pass\.test> relay=", timeout=30)
    assert re.search(r"lmtp\(carol@example\.test\).*sieve: .*sent vacation response",
                     dv.log()), dv.log()


# -- a forwarded address that keeps a local copy (doc/forwarding.md,
# "Local copies"): with local_delivery lmtp the copy goes to Dovecot

BOTH = "both@example.test"      # alice here, dave at the remote


def lmtp_forwarder(fwd_env, dv, **kw):
    return fwd_env.daemon(mailboxes=(ALICE, BOB, CAROL),
                          aliases={BOTH: [ALICE, "dave@remote.test"]},
                          extra_conf="local_delivery lmtp %s\n"
                                     "forward_rcpt_budget 20s\nforward_data_budget 20s\n"
                                     % dv.lmtp_socket, **kw)


def test_forwarded_address_local_copy_delivered_through_lmtp(fwd_env, dovecot, tmp_path):
    """both@ forwards to dave@remote.test and keeps a copy for alice: the
    sender gets the remote's own reply, and alice's copy is in Dovecot,
    with the original sender as its Return-Path (the remote sees the SRS
    address), our Authentication-Results and Received, nothing in
    chamoisd's own Maildirs"""
    r = fwd_env.remote("remote.test", eod="250 2.0.0 Ok: queued as R3M0TE")
    dv = start_dovecot_for(dovecot, tmp_path)
    d = lmtp_forwarder(fwd_env, dv)
    msg = message("forwarded and kept", to=BOTH)
    out = transaction(d, SENDER, [BOTH], crlf(msg))
    assert out["rcpt"][0].startswith("250 2.1.5"), out
    assert out["eod"].startswith("250 2.0.0 Ok: queued as R3M0TE"), out
    [tx] = r.delivered()
    assert tx.accepted == ["dave@remote.test"]
    assert tx.mail_from.startswith("SRS0="), tx.mail_from
    (got,) = dv.fetch(ALICE)
    assert got.endswith(crlf(msg)), got
    assert got.startswith(b"Return-Path: <%s>\r\nDelivered-To: %s\r\n"
                          % (SENDER.encode(), ALICE.encode())), got
    assert got.index(b"\r\nAuthentication-Results: mx.example.test;") < \
        got.index(b"\r\nReceived: from client.sender.test"), got
    assert "delivery mailbox=%s result=delivered lmtp=" % ALICE in d.log()
    fwd_env.assert_no_bounce(local={})


def test_forwarded_address_remote_refusal_leaves_dovecot_nothing(fwd_env, dovecot, tmp_path):
    """the remote refuses at its final dot: the sender gets that refusal
    and alice's copy never reaches Dovecot (the copy goes only after the
    remote's 2xx)"""
    fwd_env.remote("remote.test", eod="554 5.7.1 rejected as spam")
    dv = start_dovecot_for(dovecot, tmp_path)
    d = lmtp_forwarder(fwd_env, dv)
    out = transaction(d, SENDER, [BOTH], crlf(message("spam", to=BOTH)))
    assert out["eod"].startswith("554 5.7.1"), out
    assert dv.fetch(ALICE) == []
    fwd_env.assert_no_bounce(local={})


def test_forwarded_address_local_mailbox_over_quota_refused_at_rcpt(
        fwd_env, dovecot, tmp_path):
    """alice's quota is full: the RCPT for both@ gets Dovecot's 552 5.2.2
    before the remote is asked, so nothing is forwarded and nothing is
    bounced: the sender's server tells its user"""
    r = fwd_env.remote("remote.test")
    dv = start_dovecot_for(dovecot, tmp_path,
                           user_fields={ALICE: "userdb_quota_rule=*:storage=1"})
    fill(dv, ALICE, 4096)
    d = lmtp_forwarder(fwd_env, dv)
    out = transaction(d, SENDER, [BOTH], crlf(message("over quota", to=BOTH)))
    assert out["rcpt"][0].startswith("552 5.2.2"), out
    assert out["eod"] is None
    assert r.delivered() == [] and all(not c.transactions for c in r.connections), \
        r.connections
    assert "local-copy=refused" in d.log()
    fwd_env.assert_no_bounce(local={})


def test_forwarded_address_local_copy_failing_after_data_is_queued(
        fwd_env, dovecot, qbins, tmp_path):
    """alice passes RCPT but her copy does not fit after DATA (a 4xx with
    quota_full_tempfail): the remote already has the message, so the sender
    gets its 250 and alice's copy goes into the queue, which delivers it
    once she has made room; nothing is reported, no one gets two"""
    r = fwd_env.remote("remote.test")
    dv = start_dovecot_for(dovecot, tmp_path,
                           user_fields={ALICE: "userdb_quota_rule=*:storage=8"},
                           extra="quota_full_tempfail = yes\n")
    fill(dv, ALICE, 6144)
    d = lmtp_forwarder(fwd_env, dv)
    msg = message("too big for alice", to=BOTH, body=BIG)
    out = transaction(d, SENDER, [BOTH], crlf(msg))
    assert out["eod"].startswith("250 2.0.0"), out
    assert len(r.delivered()) == 1
    m = wait_log_match(d.log, r"delivery result=queued queue=([0-9a-f]{16}) mailboxes=1")
    qid = m.group(1)
    msgs = wait_queue(qbins, d, lambda q: qid in q and q[qid]["rcpts"][0]["state"] ==
                      "deferred", "alice's copy deferred in the queue")
    assert [x["addr"] for x in msgs[qid]["rcpts"]] == [ALICE], msgs
    expunge_first(dv, ALICE)
    ctl_ok(qbins, d, "flush")
    wait_empty(qbins, d)
    (got,) = dv.fetch(ALICE)
    assert got.endswith(crlf(msg)), got
    assert "queue report" not in d.log(), d.log()
    assert len(r.delivered()) == 1
    fwd_env.assert_no_bounce(local={})

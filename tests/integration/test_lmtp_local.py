"""The local delivery tests again, with local_delivery lmtp and a real
Dovecot behind it (doc/users.md "Delivery through Dovecot").

The tests are those of test_mx_delivery.py, test_mx_protocol.py,
test_mx_smuggling.py, test_smuggling_battery.py, test_outcome_log.py and
the real senders (Postfix, Exim) that make sense when Dovecot writes the
Maildirs; they are imported here unchanged and run with this module's
`chamoisd` fixture, which starts a Dovecot (LMTP, quota and Sieve as in
test_dovecot_lmtp.py) for the daemon's mailboxes first and adds
`local_delivery lmtp SOCKET` to its config.  Dovecot's Maildir root has
the layout of chamoisd's own (domain/local/), so each test's
`d.messages(address)` reads what Dovecot wrote: the copy as chamoisd
hands it over (our Authentication-Results and Received, then the message
byte for byte) below Dovecot's Return-Path and Delivered-To; Dovecot is
told not to add its own Received (lmtp_add_received_header = no), the
one field by which its copy would differ from chamoisd's.

Left out, because they test what chamoisd does with its own Maildirs:
writes that fail (permissions, a full disk), the directories it makes
(Dovecot makes its users' homes), stale tmp/ files.  One is here in its
LMTP form: a non-ASCII mailbox is refused at RCPT, since Dovecot 2.3's
LMTP has no SMTPUTF8.
"""

import socket

import pytest

import harness
from peers.dovecot import dovecots

from test_dovecot_lmtp import LMTP_BIN, LMTP_CONF
# the tests, run here against Dovecot; their fixtures come with them
from test_mx_delivery import (  # noqa: F401
    test_8bit_body_byte_for_byte, test_100_received_headers_accepted,
    test_alias_to_local_mailboxes,
    test_delivered_to_other_address_is_fine, test_loop_101_received_headers_554,
    test_loop_delivered_to_names_recipient_554, test_multiple_recipients_one_copy_each,
    test_null_sender_accepted, test_plus_tag_goes_to_user,
    test_plus_tag_unknown_user_refused, test_postmaster_goes_to_first_mailbox,
    test_postmaster_key, test_relay_refused_554, test_unknown_user_550)
from test_mx_protocol import (  # noqa: F401
    test_line_of_998_octets_accepted, test_line_over_1000_octets_554_nothing_stored,
    test_max_recipients_452, test_message_over_max_size_552_nothing_stored,
    test_pipelined_data_after_all_recipients_refused, test_pipelined_transaction,
    test_pipelined_two_transactions_with_rset, test_rset_clears_transaction,
    test_starttls_then_delivery, test_swaks,
    test_swaks_tls, test_data_pipelined_behind_starttls_not_delivered)
from test_mx_smuggling import (  # noqa: F401
    test_dot_crlf_inside_line_is_data, test_smuggling_in_one_write,
    test_smuggling_refused_at_once, test_smuggling_with_two_recipients_nothing_stored)
from test_smuggling_battery import (  # noqa: F401
    test_mx_end_of_data_variant, test_pipelined_data_with_message_in_same_write)
from test_outcome_log import (  # noqa: F401
    test_local_delivery_one_sent_line_per_recipient,
    test_unknown_user_and_relay_denied_are_refused_by_us)
from test_postfix_sender import (  # noqa: F401
    postfix, postfix_available, sink, test_postfix_relays_with_starttls_and_pipelining,
    test_postfix_two_recipients_one_transaction, test_postfix_unknown_recipient_bounces_550_511)
from test_exim_sender import test_exim_delivers_once_and_records_it  # noqa: F401
from peers.exim import exim_available, exims  # noqa: F401

DEFAULT_MAILBOXES = ("alice@example.test", "bob@example.test")
# Dovecot as the tests' mailboxes need it: no Received of its own (the
# copy is then exactly what chamoisd's own Maildir delivery writes:
# Return-Path, Delivered-To, our Authentication-Results and Received),
# names looked up as spelled (chamoisd sends the table's spelling), and
# no recipient delimiter and any character in a name (chamoisd has
# resolved user+tag already: a table entry bob+lists@ is a mailbox of its
# own)
HERE_CONF = """\
lmtp_add_received_header = no
auth_username_format = %u
recipient_delimiter =
auth_username_chars =
"""


def mailbox_addresses(mailboxes):
    """The mailboxes table's addresses (a "key value" row keeps its key)"""
    return [m.split()[0] for m in mailboxes if m.strip() and "@" in m.split()[0]]


@pytest.fixture
def chamoisd(chamoisd, tmp_path):
    """The conftest's chamoisd factory, each daemon behind its own Dovecot
    (users: the daemon's mailboxes) with local_delivery lmtp"""
    if not LMTP_BIN.exists():
        pytest.skip("%s missing (apt-get install dovecot-lmtpd)" % LMTP_BIN)
    with dovecots(tmp_path, prefix="dvl") as start:
        made = []

        def make(**kw):
            mailboxes = kw.get("mailboxes", DEFAULT_MAILBOXES)
            root = tmp_path / ("lmtp%d" % len(made)) / "mail"
            root.mkdir(parents=True)
            for d in [root] + list(root.parents):
                if d == d.parent:
                    break
                d.chmod(d.stat().st_mode | 0o001)
            users = mailbox_addresses(mailboxes)
            dv = start(root, users, protocols="imap lmtp",
                       extra_conf=LMTP_CONF + HERE_CONF)
            for u in users:
                dv.grant_access(u)
            made.append(dv)
            kw["extra_conf"] = (kw.get("extra_conf", "").rstrip("\n")
                                + "\nlocal_delivery lmtp %s\n" % dv.lmtp_socket)
            inst = chamoisd(**kw)
            own_root = inst.maildir_root
            inst.maildir_root = dv.maildir_root     # what Dovecot wrote
            inst.dovecot = dv
            every = inst.stored_files
            # the copies, not Dovecot's index files; and nothing of
            # chamoisd's own (it writes no Maildir with lmtp)
            inst.stored_files = lambda: [
                p for p in every() if p.parent.name in ("tmp", "new", "cur")
                and p.parent.parent.parent.parent == dv.maildir_root] + sorted(
                p for p in own_root.rglob("*") if p.is_file())
            return inst

        yield make


def test_the_copies_here_come_from_dovecot(chamoisd):
    """The fixture's own check: a message for alice is Dovecot's copy, in
    Dovecot's Maildir, with its LMTP hop, and chamoisd's Maildir stays
    empty"""
    d = chamoisd()
    with harness.smtp_client(d) as s:
        s.sendmail("s@remote.test", ["alice@example.test"],
                   harness.crlf(harness.sample_message("from dovecot")))
    files = d.message_files("alice@example.test")
    assert len(files) == 1 and str(files[0]).startswith(str(d.maildir_root))
    raw = files[0].read_bytes()
    assert raw.startswith(b"Return-Path: <s@remote.test>\nDelivered-To: "
                          b"alice@example.test\nAuthentication-Results: "
                          b"mx.example.test;"), raw
    assert files[0].stat().st_uid == d.dovecot.uid     # written by Dovecot
    assert "delivery mailbox=alice@example.test result=delivered lmtp=" in d.log()
    assert not (d.dir / "maildir").exists() or not any(
        p.is_file() for p in (d.dir / "maildir").rglob("*"))


def test_non_ascii_mailbox_refused_at_rcpt_without_smtputf8_at_dovecot(chamoisd):
    """Dovecot 2.3's LMTP does not offer SMTPUTF8: a mailbox with a
    non-ASCII name gets 553 5.6.7 at RCPT (RFC 6531 3.4, as a forward to a
    server without it), never Dovecot's syntax error, and an ASCII one in
    the same transaction still gets the message"""
    d = chamoisd(mailboxes=("alice@example.test", "jörg@example.test"))
    assert b"SMTPUTF8" not in lhlo_keywords(d.dovecot)
    msg = harness.crlf("From: Jörg <jörg@remote.test>\nTo: alice@example.test\n"
                       "Subject: Grüße\n\nHallo\n")
    with d.dialog() as c:
        c.cmd("EHLO client.remote.test", "250")
        c.cmd("MAIL FROM:<s@remote.test> SMTPUTF8", "250 2.1.0")
        r = c.cmd("RCPT TO:<jörg@example.test>".encode("utf-8"), "553")
        assert r.startswith("553 5.6.7") and "SMTPUTF8" in r, r
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("DATA", "354")
        c.send(msg + b".\r\n")
        c.expect("250 2.0.0")
    (content,) = d.messages("alice@example.test")
    assert content.endswith(msg.replace(b"\r\n", b"\n"))
    assert d.messages("jörg@example.test") == []
    # again with the LMTP connection idle, so the refusal comes without
    # waiting for it; the transaction's end then cancels nothing stale
    for _ in range(2):
        with d.dialog() as c:
            c.cmd("EHLO client.remote.test", "250")
            c.cmd("MAIL FROM:<s@remote.test> SMTPUTF8", "250 2.1.0")
            c.cmd("RCPT TO:<jörg@example.test>".encode("utf-8"), "553 5.6.7")
            c.cmd("RSET", "250")
            c.cmd("QUIT", "221")
    assert d.proc.poll() is None


def lhlo_keywords(dv):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(dv.lmtp_socket))
    with s, s.makefile("rwb") as f:
        f.readline()
        f.write(b"LHLO probe.test\r\n")
        f.flush()
        out = b""
        while True:
            line = f.readline()
            out += line
            if not line or line[3:4] == b" ":
                break
        f.write(b"QUIT\r\n")
        f.flush()
    return out


def test_a_copy_dovecot_delivered_coming_back_is_a_loop(chamoisd):
    """Dovecot writes Delivered-To into every copy (one LMTP transaction
    per mailbox): the copy, sent back to the same mailbox (a forward at
    the user's other provider pointing here), is refused as a loop"""
    d = chamoisd()
    with harness.smtp_client(d) as s:
        s.sendmail("joe@sender.test", ["alice@example.test", "bob@example.test"],
                   harness.crlf(harness.sample_message("once")))
    (copy,) = d.messages("alice@example.test")
    assert b"\nDelivered-To: alice@example.test\n" in copy.split(b"\n\n")[0] + b"\n"
    with d.dialog() as c:
        c.cmd("EHLO other.provider.test", "250")
        c.cmd("MAIL FROM:<joe@sender.test>", "250")
        c.cmd("RCPT TO:<alice@example.test>", "250")
        c.cmd("DATA", "354")
        c.send(harness.dot_stuff(copy.replace(b"\n", b"\r\n")) + b".\r\n")
        r = c.expect("554")
        assert r.startswith("554 5.4.6") and "alice@example.test" in r, r
    assert len(d.messages("alice@example.test")) == 1

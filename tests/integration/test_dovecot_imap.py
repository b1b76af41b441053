"""Dovecot (Debian's dovecot-imapd) reads the Maildirs chamoisd writes.

A message delivered to chamoisd over SMTP must come out of IMAP byte for
byte: the headers chamoisd prepends (Return-Path, Delivered-To, Received)
followed by the message as sent, modulo CRLF (IMAP serves CRLF, Maildir
files hold LF).  Dovecot also trusts the ``,S=<size>`` in each file name,
so a wrong size makes the FETCH fail.  See peers/dovecot.py.
"""

import smtplib

import pytest

from harness import crlf, split_delivered, maildir_size_from_name
from peers.dovecot import dovecots

SENDER = "sender@remote.test"


@pytest.fixture
def dovecot(tmp_path):
    """Factory: dovecot(mx, users) -> started Dovecot over mx's maildir_root."""
    with dovecots(tmp_path) as make:
        yield lambda mx, users=("alice@example.test", "bob@example.test"): make(
            mx.maildir_root, users)


def long_header():
    # One unfolded header line of ~950 octets (under the 998 limit) and a
    # folded one with several continuation lines.
    words = " ".join("word%03d" % i for i in range(115))
    assert 900 < len("X-Long-Unfolded: " + words) < 998
    folded = "X-Long-Folded: " + "\n\t".join(
        " ".join("part%02d-%d" % (j, i) for i in range(8)) for j in range(12))
    return ["X-Long-Unfolded: " + words, folded]


def eight_bit_message(subject="8bit \u00fcber IMAP"):
    body = ("Gr\u00fc\u00dfe aus K\u00f6ln \u2014 non-ASCII 8bit body line\n"
            "\u65e5\u672c\u8a9e\u306e\u884c (Japanese)\n"
            "\u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442\n"
            "\n"
            ".leading dot\n"
            "..two leading dots\n"
            ".\n"
            "trailing blanks   \n"
            "\ttab-indented\n"
            "emoji \U0001F600 line\n"
            "last line\n")
    head = ("From: Sender <%s>\n"
            "To: Alice <alice@example.test>\n"
            "Subject: =?UTF-8?Q?8bit_=C3=BCber_IMAP?=\n"
            "Message-ID: <dovecot-8bit-1@remote.test>\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n" % SENDER)
    head += "".join(h + "\n" for h in long_header())
    return crlf(head + "\n" + body)


def send(mx, msg, rcpts, starttls=True):
    with smtplib.SMTP(mx.host, mx.port, local_hostname="client.remote.test", timeout=20) as s:
        s.ehlo()
        if starttls and s.has_extn("starttls"):
            import ssl
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s.starttls(context=ctx)
            s.ehlo()
        assert s.has_extn("8bitmime")
        refused = s.sendmail(SENDER, rcpts, msg, mail_options=["BODY=8BITMIME"])
        assert not refused, refused


def test_dovecot_serves_message_byte_for_byte(chamoisd, dovecot):
    mx = chamoisd()
    msg = eight_bit_message()
    send(mx, msg, ["alice@example.test"])

    files = mx.wait_messages("alice@example.test", 1)
    assert len(files) == 1
    stored = files[0]
    path = mx.message_files("alice@example.test")[0]
    assert maildir_size_from_name(path) == len(stored), (path.name, len(stored))
    headers, rest = split_delivered(stored)
    assert headers[0] == ("Return-Path", "<%s>" % SENDER)
    assert headers[1] == ("Delivered-To", "alice@example.test")
    assert "for <alice@example.test>" in headers[2][1], headers[2]
    assert rest == msg.replace(b"\r\n", b"\n")

    dv = dovecot(mx)
    got = dv.fetch("alice@example.test")
    assert len(got) == 1, got
    fetched = got[0]
    assert b"\r\n" in fetched and b"\n" not in fetched.replace(b"\r\n", b""), \
        "IMAP should serve CRLF lines only"
    assert fetched.replace(b"\r\n", b"\n") == stored
    # What IMAP serves = chamoisd's three prepended header fields + the
    # message exactly as the client sent it (CRLF).
    prepended_len = len(stored) - len(rest)
    assert fetched.endswith(msg)
    assert fetched[:-len(msg)] == crlf(stored[:prepended_len])
    assert dv.fetch("bob@example.test") == []


def test_dovecot_two_messages_two_users(chamoisd, dovecot):
    mx = chamoisd()
    m1 = eight_bit_message()
    m2 = crlf("From: <%s>\nTo: bob@example.test, alice@example.test\nSubject: second\n"
              "Message-ID: <dovecot-2@remote.test>\nDate: Thu, 01 Jan 2026 00:00:01 +0000\n"
              "\nsecond body \u00e9\n" % SENDER)
    send(mx, m1, ["alice@example.test"], starttls=False)
    send(mx, m2, ["alice@example.test", "bob@example.test"])
    mx.wait_messages("alice@example.test", 2)
    mx.wait_messages("bob@example.test", 1)
    on_disk = {a: mx.messages(a) for a in ("alice@example.test", "bob@example.test")}

    dv = dovecot(mx)
    alice = dv.fetch("alice@example.test")
    bob = dv.fetch("bob@example.test")
    assert sorted(x.replace(b"\r\n", b"\n") for x in alice) == sorted(on_disk["alice@example.test"])
    assert [x.replace(b"\r\n", b"\n") for x in bob] == on_disk["bob@example.test"]
    assert sorted([any(x.endswith(m1) for x in alice), any(x.endswith(m2) for x in alice)]) \
        == [True, True], alice
    assert bob[0].endswith(m2)
    _, rest = split_delivered(bob[0].replace(b"\r\n", b"\n"))
    assert rest == m2.replace(b"\r\n", b"\n")


def test_dovecot_peer_selftest_handmade_maildir(tmp_path, dovecot):
    """The peer itself, without chamoisd: a Maildir written by hand (root
    owned, 0700, under pytest's tmp dir) is served over IMAP."""
    import os
    from types import SimpleNamespace

    root = tmp_path / "maildir"
    md = root / "example.test" / "alice"
    for sub in ("tmp", "new", "cur"):
        (md / sub).mkdir(parents=True, mode=0o700)
    os.chmod(root, 0o700)
    os.chmod(root / "example.test", 0o700)
    content = ("Return-Path: <%s>\nSubject: caf\u00e9\n\nh\u00e9llo\n.\n..x\n" % SENDER).encode()
    f = md / "new" / ("1700000000.M1P1.host,S=%d" % len(content))
    f.write_bytes(content)
    os.chmod(f, 0o600)
    dv = dovecot(SimpleNamespace(maildir_root=root), users=("alice@example.test",))
    assert dv.fetch("alice@example.test") == [crlf(content)]

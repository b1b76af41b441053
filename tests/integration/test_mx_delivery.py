"""mx role: what lands in the Maildir (issue 3; doc/protocol.md, "Local
delivery")."""

import os
import re

import pytest

from harness import (check, crlf, maildir_size_from_name, sample_message,
                     smtp_client, split_delivered)


def deliver(d, sender, rcpts, msg, mail_options=()):
    """One transaction with smtplib; returns the reply to the final dot."""
    with smtp_client(d) as s:
        check(s.mail(sender, list(mail_options)), 250, "2.1.0")
        for r in rcpts:
            check(s.rcpt(r), 250, "2.1.5")
        resp = s.data(msg)
        s.quit()
    return resp


def lf(msg):
    return msg.replace(b"\r\n", b"\n")


def test_single_recipient_maildir_file(mx):
    msg = sample_message("single")
    check(deliver(mx, "sender@remote.test", ["alice@example.test"], msg), 250, "2.0.0")

    files = mx.message_files("alice@example.test")
    assert len(files) == 1, files
    path = files[0]
    content = path.read_bytes()
    # ,S=<size> in the name equals the file's size
    assert maildir_size_from_name(path) == os.path.getsize(path) == len(content), path.name
    # LF line ends only
    assert b"\r" not in content
    # prepended headers in order, then the message byte for byte
    headers, rest = split_delivered(content)
    assert headers[0] == ("Return-Path", "<sender@remote.test>")
    assert re.fullmatch(r"<?alice@example\.test>?", headers[1][1]), headers[1]
    received = headers[2][1]
    assert "mx.example.test" in received
    assert "for <alice@example.test>" in received
    assert rest == lf(msg)
    # nothing left in tmp/, nothing for bob
    assert not list((mx.maildir("alice@example.test") / "tmp").iterdir())
    assert mx.messages("bob@example.test") == []


def test_8bit_body_byte_for_byte(mx):
    body = "Grüße, naïve café — ☃\nbinary-ish: \x7f\n".encode("utf-8") + b"\xff\xfe raw\n"
    msg = crlf(b"From: s@remote.test\nSubject: 8bit\nContent-Type: text/plain; charset=utf-8\n"
               b"Content-Transfer-Encoding: 8bit\n\n" + body)
    check(deliver(mx, "s@remote.test", ["alice@example.test"], msg,
                  mail_options=["BODY=8BITMIME"]), 250, "2.0.0")
    [content] = mx.messages("alice@example.test")
    _, rest = split_delivered(content)
    assert rest == lf(msg)


def test_null_sender_accepted(mx):
    check(deliver(mx, "", ["alice@example.test"], sample_message("bounce")), 250, "2.0.0")
    [content] = mx.messages("alice@example.test")
    headers, _ = split_delivered(content)
    assert headers[0] == ("Return-Path", "<>")


def test_multiple_recipients_one_copy_each(mx):
    msg = sample_message("two")
    check(deliver(mx, "sender@remote.test", ["alice@example.test", "bob@example.test"], msg),
          250, "2.0.0")
    for rcpt in ("alice@example.test", "bob@example.test"):
        files = mx.message_files(rcpt)
        assert len(files) == 1, (rcpt, files)
        content = files[0].read_bytes()
        assert maildir_size_from_name(files[0]) == len(content)
        headers, rest = split_delivered(content)
        assert headers[0] == ("Return-Path", "<sender@remote.test>")
        assert re.fullmatch(r"<?%s>?" % re.escape(rcpt), headers[1][1]), headers[1]
        assert "for <" not in headers[2][1], headers[2]
        assert rest == lf(msg)


def test_unknown_user_550(mx):
    with smtp_client(mx) as s:
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        check(s.rcpt("nobody@example.test"), 550, "5.1.1")
        # the transaction goes on for a good recipient
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(sample_message()), 250, "2.0.0")
    assert len(mx.messages("alice@example.test")) == 1
    assert not (mx.maildir_root / "example.test" / "nobody").exists()


@pytest.mark.parametrize("rcpt", ["alice@remote.test", "alice@example.test.evil.test",
                                  "alice@sub.example.test", "alice@[127.0.0.1]"])
def test_relay_refused_554(mx, rcpt):
    with smtp_client(mx) as s:
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        check(s.rcpt(rcpt), 554, "5.7.1")
        check(s.rset(), 250, "2.0.0")
    assert mx.stored_files() == []


@pytest.mark.parametrize("rcpt", ["postmaster@example.test", "PostMaster@Example.TEST",
                                  "postmaster"])
def test_postmaster_goes_to_first_mailbox(mx, rcpt):
    with smtp_client(mx) as s:
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        # smtplib quotes with <>; "postmaster" becomes RCPT TO:<postmaster>
        check(s.rcpt(rcpt), 250, "2.1.5")
        check(s.data(sample_message("pm")), 250, "2.0.0")
    assert len(mx.messages("alice@example.test")) == 1
    assert mx.messages("bob@example.test") == []


def test_postmaster_key(chamoisd):
    d = chamoisd(postmaster="bob@example.test", domains=("example.test", "other.test"))
    with smtp_client(d) as s:
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        check(s.rcpt("postmaster@other.test"), 250, "2.1.5")
        check(s.data(sample_message("pm1")), 250, "2.0.0")
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        check(s.rcpt("postmaster"), 250, "2.1.5")
        check(s.data(sample_message("pm2")), 250, "2.0.0")
    assert len(d.messages("bob@example.test")) == 2
    assert d.messages("alice@example.test") == []


def test_plus_tag_goes_to_user(chamoisd):
    d = chamoisd(mailboxes=("alice@example.test", "bob@example.test",
                            "bob+lists@example.test"))
    msg = sample_message("tagged")
    check(deliver(d, "s@remote.test", ["alice+shopping@example.test"], msg), 250, "2.0.0")
    [content] = d.messages("alice@example.test")
    assert split_delivered(content)[1] == lf(msg)
    assert not (d.maildir_root / "example.test" / "alice+shopping").exists()
    # user+tag that is itself in the table keeps its own Maildir
    check(deliver(d, "s@remote.test", ["bob+lists@example.test"], msg), 250, "2.0.0")
    assert len(d.messages("bob+lists@example.test")) == 1
    assert d.messages("bob@example.test") == []


def test_plus_tag_unknown_user_refused(mx):
    with smtp_client(mx) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("carol+tag@example.test"), 550, "5.1.1")


def test_case_insensitive_lookup_uses_table_spelling(chamoisd):
    d = chamoisd(mailboxes=("Alice.Smith@example.test", "bob@example.test"))
    check(deliver(d, "s@remote.test", ["ALICE.SMITH@EXAMPLE.TEST"], sample_message("case")),
          250, "2.0.0")
    assert len(d.messages("Alice.Smith@example.test")) == 1
    # no directory spelled the client's way
    dirs = sorted(p.relative_to(d.maildir_root).as_posix()
                  for p in d.maildir_root.glob("*/*") if p.is_dir())
    assert dirs == ["example.test/Alice.Smith"], dirs


def test_alias_to_local_mailboxes(chamoisd):
    d = chamoisd(mailboxes=("alice@example.test", "bob@example.test", "carol@example.test"),
                 aliases={"team@example.test": ["alice@example.test", "bob@example.test"],
                          "all@example.test": ["team@example.test", "carol@example.test"]})
    msg = sample_message("alias")
    check(deliver(d, "s@remote.test", ["team@example.test"], msg), 250, "2.0.0")
    for u in ("alice", "bob"):
        [content] = d.messages(u + "@example.test")
        assert split_delivered(content)[1] == lf(msg)
    assert d.messages("carol@example.test") == []
    assert not (d.maildir_root / "example.test" / "team").exists()

    # nested alias, any case
    check(deliver(d, "s@remote.test", ["All@Example.Test"], msg), 250, "2.0.0")
    for u in ("alice", "bob", "carol"):
        assert len(d.messages(u + "@example.test")) == (2 if u != "carol" else 1), u


def test_loop_delivered_to_names_recipient_554(mx):
    msg = sample_message("loop", extra_headers=["Delivered-To: alice@example.test"])
    with smtp_client(mx) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(msg), 554, "5.4.6")
    assert mx.stored_files() == []


def test_delivered_to_other_address_is_fine(mx):
    msg = sample_message("no loop", extra_headers=["Delivered-To: carol@elsewhere.test"])
    check(deliver(mx, "s@remote.test", ["alice@example.test"], msg), 250, "2.0.0")
    assert len(mx.messages("alice@example.test")) == 1


def received_headers(n):
    return ["Received: from hop%d.remote.test (hop%d.remote.test [192.0.2.%d])\n"
            "\tby hop%d.remote.test with ESMTP id %d;\n"
            "\tThu, 01 Jan 2026 00:00:00 +0000" % (i, i, i % 250 + 1, i + 1, i)
            for i in range(n)]


def test_loop_101_received_headers_554(mx):
    msg = sample_message("hops", extra_headers=received_headers(101))
    with smtp_client(mx) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(msg), 554, "5.4.6")
    assert mx.stored_files() == []


def test_100_received_headers_accepted(mx):
    msg = sample_message("hops", extra_headers=received_headers(100))
    check(deliver(mx, "s@remote.test", ["alice@example.test"], msg), 250, "2.0.0")
    [content] = mx.messages("alice@example.test")
    assert split_delivered(content)[1] == lf(msg)


def test_maildir_write_failure_451(chamoisd):
    d = chamoisd()
    # alice's Maildir path is a regular file: mkdir fails even for root
    (d.maildir_root / "example.test").mkdir(parents=True, exist_ok=True)
    (d.maildir_root / "example.test" / "alice").write_bytes(b"not a directory\n")
    with smtp_client(d) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(sample_message("fail")), 451, "4.3.0")
        # the session goes on
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("bob@example.test"), 250, "2.1.5")
        check(s.data(sample_message("ok")), 250, "2.0.0")
    assert len(d.messages("bob@example.test")) == 1
    others = [p for p in d.stored_files() if p != d.maildir_root / "example.test" / "alice"]
    assert others == d.message_files("bob@example.test")

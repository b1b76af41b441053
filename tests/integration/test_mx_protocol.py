"""mx role: the SMTP dialog (replies from /work/notes/contract.md)."""

import re
import shutil
import subprocess

import pytest

from harness import (Dialog, check, crlf, dot_stuff, ipv6_loopback_available, sample_message,
                     smtp_client, split_delivered, unverified_context)


def lf(msg):
    return msg.replace(b"\r\n", b"\n")


def ehlo_keywords(text):
    """EHLO reply text -> set of upper-cased keyword lines (without code)."""
    lines = text.split("\n")
    return [l[4:].upper() for l in lines[1:]]


# ---------------------------------------------------------------- greeting, EHLO


def test_greeting_and_ehlo(mx):
    with Dialog(mx.host, mx.port) as c:
        greeting = c.expect("220 ")
        assert greeting.startswith("220 mx.example.test"), greeting
        assert "ESMTP" in greeting
        text = c.cmd("EHLO client.remote.test", "250")
        assert text.split("\n")[0][4:].startswith("mx.example.test"), text
        kw = ehlo_keywords(text)
        for k in ("PIPELINING", "SIZE 1000000", "8BITMIME", "ENHANCEDSTATUSCODES",
                  "STARTTLS", "SMTPUTF8"):
            assert k in kw, (k, kw)
        assert not any(k.startswith("AUTH") for k in kw), kw
        c.cmd("QUIT", "221 2.0.0")


def test_no_starttls_without_cert(chamoisd):
    d = chamoisd(tls=False)
    with d.dialog() as c:
        kw = ehlo_keywords(c.cmd("EHLO client.remote.test", "250"))
        assert "STARTTLS" not in kw
        assert "PIPELINING" in kw
        c.cmd("STARTTLS", "5")


def test_helo(mx):
    with mx.dialog() as c:
        assert c.cmd("HELO client.remote.test", "250 ").startswith("250 mx.example.test")
        c.cmd("MAIL FROM:<s@remote.test>", "250 2.1.0")


# ---------------------------------------------------------------- minor dialogs

MINOR = [
    # (commands before, command, expected reply prefix)
    ([], "NOOP", "250 2.0.0"),
    ([], "RSET", "250 2.0.0"),
    ([], "VRFY alice@example.test", "252 2.5.2"),
    ([], "HELP", "214 2.0.0"),
    ([], "FROBNICATE", "500 5.5.1"),
    ([], "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "502 5.5.1"),
    ([], "RCPT TO:<alice@example.test>", "503 5.5.1"),
    ([], "DATA", "503 5.5.1"),
    (["MAIL FROM:<s@remote.test>"], "DATA", "503 5.5.1"),
    (["MAIL FROM:<s@remote.test>"], "MAIL FROM:<t@remote.test>", "503 5.5.1"),
    ([], "MAIL FROM:<not an address>", "501 5.1.7"),
    ([], "MAIL FROM:<s@remote.test> FROBNICATE=yes", "555 5.5.4"),
    (["MAIL FROM:<s@remote.test>"], "RCPT TO:<alice@@example.test>", "501 5.1.3"),
    (["MAIL FROM:<s@remote.test>"], "RCPT TO:<alice@example.test> FROBNICATE=1", "555 5.5.4"),
    ([], "MAIL FROM:<s@remote.test> SIZE=lots", "501 5.5.4"),
    ([], "MAIL FROM:<s@remote.test> SIZE=500", "250 2.1.0"),
    ([], "MAIL FROM:<s@remote.test> BODY=8BITMIME", "250 2.1.0"),
    ([], "MAIL FROM:<s@remote.test> SIZE=2000000", "552 5.3.4"),
    ([], "MAIL FROM:<s@remote.test> SIZE=1000001", "552 5.3.4"),
    ([], "NOOP " + "x" * 3000, "500 5.5.2"),
    (["MAIL FROM:<s@remote.test>", "RCPT TO:<alice@example.test>"], "RSET", "250 2.0.0"),
]


@pytest.mark.parametrize("before,command,expected", MINOR,
                         ids=[m[1][:40] + ("/after " + m[0][-1][:4] if m[0] else "") for m in MINOR])
def test_minor_dialog(mx, before, command, expected):
    with mx.dialog() as c:
        c.cmd("EHLO client.remote.test", "250")
        for b in before:
            c.cmd(b, "250")
        c.cmd(command, expected)
        # the session survives every one of these
        c.cmd("NOOP", "250 2.0.0")
        c.cmd("QUIT", "221 2.0.0")


def test_mail_before_ehlo_503(mx):
    with mx.dialog() as c:
        c.cmd("MAIL FROM:<s@remote.test>", "503 5.5.1")


def test_rset_clears_transaction(mx):
    with mx.dialog() as c:
        c.cmd("EHLO client.remote.test", "250")
        c.cmd("MAIL FROM:<s@remote.test>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("RSET", "250 2.0.0")
        c.cmd("DATA", "503 5.5.1")
        c.cmd("RCPT TO:<alice@example.test>", "503 5.5.1")


# ---------------------------------------------------------------- size limits


def test_size_over_limit_at_mail_552(mx):
    with smtp_client(mx) as s:
        check(s.mail("s@remote.test", ["SIZE=1000001"]), 552, "5.3.4")
        check(s.mail("s@remote.test", ["SIZE=999"]), 250, "2.1.0")


def test_message_over_max_size_552_nothing_stored(chamoisd):
    d = chamoisd(max_message_size=20000)
    big = sample_message("big", body=("y" * 70 + "\n") * 600)  # ~43 kB
    small = sample_message("small")
    with smtp_client(d) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(big), 552, "5.3.4")
        assert d.stored_files() == []
        # the session is usable and the next transaction is clean
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("bob@example.test"), 250, "2.1.5")
        check(s.data(small), 250, "2.0.0")
    assert d.messages("alice@example.test") == []
    [content] = d.messages("bob@example.test")
    assert split_delivered(content)[1] == lf(small)
    assert d.stored_files() == d.message_files("bob@example.test")


def test_line_over_1000_octets_554_nothing_stored(mx):
    msg = sample_message("long", body="short\n" + "z" * 1500 + "\nend\n")
    with smtp_client(mx) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(msg), 554, "5.6.0")
        check(s.noop(), 250, "2.0.0")
    assert mx.stored_files() == []


def test_line_of_998_octets_accepted(mx):
    # RFC 5321 4.5.3.1.6: 998 characters plus CRLF is the longest legal line
    msg = sample_message("998", body="w" * 998 + "\n")
    with smtp_client(mx) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(msg), 250, "2.0.0")
    [content] = mx.messages("alice@example.test")
    assert split_delivered(content)[1] == lf(msg)


def test_max_recipients_452(chamoisd):
    d = chamoisd(mailboxes=("a@example.test", "b@example.test", "c@example.test",
                            "e@example.test"), max_recipients=3)
    with smtp_client(d) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        for u in "abc":
            check(s.rcpt(u + "@example.test"), 250, "2.1.5")
        check(s.rcpt("e@example.test"), 452, "4.5.3")
        check(s.data(sample_message("three")), 250, "2.0.0")
    for u in "abc":
        assert len(d.messages(u + "@example.test")) == 1
    assert d.messages("e@example.test") == []


# ---------------------------------------------------------------- pipelining


def test_pipelined_transaction(mx):
    msg = sample_message("pipelined")
    with mx.dialog() as c:
        c.send(b"EHLO client.remote.test\r\n"
               b"MAIL FROM:<s@remote.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        assert "PIPELINING" in ehlo_keywords(c.expect("250"))
        c.expect("250 2.1.0")
        c.expect("250 2.1.5")
        c.expect("550 5.1.1")
        c.expect("250 2.1.5")
        c.expect("354")
        c.send(dot_stuff(msg) + b".\r\nQUIT\r\n")
        c.expect("250 2.0.0")
        c.expect("221 2.0.0")
    for u in ("alice", "bob"):
        [content] = mx.messages(u + "@example.test")
        assert split_delivered(content)[1] == lf(msg)


def test_pipelined_two_transactions_with_rset(mx):
    m1, m2 = sample_message("one"), sample_message("two")
    with mx.dialog() as c:
        c.cmd("EHLO client.remote.test", "250")
        c.send(b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        c.expect("250 2.1.0")
        c.expect("250 2.1.5")
        c.expect("354")
        c.send(dot_stuff(m1) + b".\r\n"
               b"RSET\r\nMAIL FROM:<t@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        c.expect("250 2.0.0")
        c.expect("250 2.0.0")
        c.expect("250 2.1.0")
        c.expect("250 2.1.5")
        c.expect("354")
        c.send(dot_stuff(m2) + b".\r\nQUIT\r\n")
        c.expect("250 2.0.0")
        c.expect("221")
    assert split_delivered(mx.messages("alice@example.test")[0])[1] == lf(m1)
    assert split_delivered(mx.messages("bob@example.test")[0])[1] == lf(m2)


def test_pipelined_data_after_all_recipients_refused(mx):
    """RFC 2920: DATA after no accepted RCPT is refused (503 or 554), never
    354, and the client's next command is read as a command."""
    with mx.dialog() as c:
        c.cmd("EHLO client.remote.test", "250")
        c.send(b"MAIL FROM:<s@remote.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<someone@remote.test>\r\n"
               b"DATA\r\n")
        c.expect("250 2.1.0")
        c.expect("550 5.1.1")
        c.expect("554 5.7.1")
        text = c.expect("5")
        assert text[:3] in ("503", "554"), text
        c.cmd("RSET", "250 2.0.0")
        c.cmd("QUIT", "221")
    assert mx.stored_files() == []


# ---------------------------------------------------------------- STARTTLS


def test_starttls_then_delivery(mx):
    msg = sample_message("over tls")
    with smtp_client(mx) as s:
        code, _ = s.starttls(context=unverified_context())
        assert code == 220
        s.ehlo()
        assert not s.has_extn("starttls")
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(msg), 250, "2.0.0")
    [content] = mx.messages("alice@example.test")
    headers, rest = split_delivered(content)
    assert re.search(r"TLS|ESMTPS", headers[2][1]), headers[2]
    assert rest == lf(msg)


def test_starttls_reply_code(mx):
    with mx.dialog() as c:
        c.cmd("EHLO client.remote.test", "250")
        c.starttls(expect="220 2.0.0")
        assert c.tls_version() is not None
        text = c.cmd("EHLO client.remote.test", "250")
        assert "STARTTLS" not in ehlo_keywords(text)
        c.cmd("STARTTLS", "5")


def test_commands_pipelined_behind_starttls_discarded(mx):
    with mx.dialog() as c:
        c.cmd("EHLO client.remote.test", "250")
        c.send(b"STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\n")
        c.expect("220")
        # handshake() refuses if the server answered the MAIL in plaintext
        c.handshake()
        # the first reply inside TLS must be the one to our EHLO, not a
        # leftover reply to the injected MAIL
        text = c.cmd("EHLO client.remote.test", "250")
        assert text.split("\n")[0][4:].startswith("mx.example.test"), text
        # no MAIL was executed
        c.cmd("RCPT TO:<alice@example.test>", "503 5.5.1")
        c.cmd("MAIL FROM:<s@remote.test>", "250 2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
        c.cmd("DATA", "354")
        c.send(dot_stuff(sample_message("after")) + b".\r\n")
        c.expect("250 2.0.0")
    [content] = mx.messages("alice@example.test")
    assert split_delivered(content)[0][0] == ("Return-Path", "<s@remote.test>")


def test_data_pipelined_behind_starttls_not_delivered(mx):
    # a whole injected transaction after STARTTLS must not be executed
    with mx.dialog() as c:
        c.cmd("EHLO client.remote.test", "250")
        c.send(b"STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\n")
        c.expect("220")
        c.handshake()
        c.cmd("EHLO client.remote.test", "250")
        c.cmd("QUIT", "221")
    assert mx.stored_files() == []


# ---------------------------------------------------------------- SMTPUTF8


def test_non_ascii_sender_without_smtputf8_553(mx):
    with mx.dialog() as c:
        c.cmd("EHLO client.remote.test", "250")
        c.cmd("MAIL FROM:<jörg@remote.test>".encode("utf-8"), "553 5.6.7")
        c.cmd("MAIL FROM:<s@remote.test>", "250 2.1.0")
        c.cmd("RCPT TO:<jörg@example.test>".encode("utf-8"), "553 5.6.7")


def test_smtputf8_accepted_and_delivered(chamoisd):
    d = chamoisd(mailboxes=("alice@example.test", "jörg@example.test"))
    msg = crlf("From: Jörg <jörg@remote.test>\nTo: jörg@example.test\n"
               "Subject: Grüße\n\nHallo Jörg\n")
    with d.dialog() as c:
        c.cmd("EHLO client.remote.test", "250")
        c.cmd("MAIL FROM:<jörg@remote.test> SMTPUTF8".encode("utf-8"), "250 2.1.0")
        c.cmd("RCPT TO:<jörg@example.test>".encode("utf-8"), "250 2.1.5")
        c.cmd("DATA", "354")
        c.send(msg + b".\r\n")
        c.expect("250 2.0.0")
    [content] = d.messages("jörg@example.test")
    headers, rest = split_delivered(content)
    assert headers[0] == ("Return-Path", "<jörg@remote.test>")
    assert rest == lf(msg)


def test_smtputf8_unknown_utf8_user_550(mx):
    with mx.dialog() as c:
        c.cmd("EHLO client.remote.test", "250")
        c.cmd("MAIL FROM:<jörg@remote.test> SMTPUTF8".encode("utf-8"), "250 2.1.0")
        c.cmd("RCPT TO:<jörg@example.test>".encode("utf-8"), "550 5.1.1")


# ---------------------------------------------------------------- real clients, IPv6


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks(mx):
    p = subprocess.run(["swaks", "--server", "%s:%d" % (mx.host, mx.port),
                        "--to", "alice@example.test", "--from", "x@remote.test",
                        "--helo", "client.remote.test", "--timeout", "20"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out
    [content] = mx.messages("alice@example.test")
    headers, rest = split_delivered(content)
    assert headers[0] == ("Return-Path", "<x@remote.test>")
    assert b"\nX-Mailer: swaks" in b"\n" + rest


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_tls(mx):
    p = subprocess.run(["swaks", "--server", "%s:%d" % (mx.host, mx.port), "--tls",
                        "--to", "bob@example.test", "--from", "x@remote.test",
                        "--helo", "client.remote.test", "--timeout", "20"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out
    assert len(mx.messages("bob@example.test")) == 1


@pytest.mark.skipif(not ipv6_loopback_available(), reason="::1 not available")
def test_ipv6_listen(chamoisd):
    d = chamoisd(listen_ipv6=True)
    msg = sample_message("v6")
    with smtp_client(d, ipv6=True) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(msg), 250, "2.0.0")
    [content] = d.messages("alice@example.test")
    headers, rest = split_delivered(content)
    assert "::1" in headers[2][1], headers[2]
    assert rest == lf(msg)
    # IPv4 still served
    with d.dialog() as c:
        c.cmd("QUIT", "221")


def test_port_25_takes_old_tls_that_submission_refuses(mx):
    """doc/protocol.md, "TLS": on port 25 TLS is opportunistic (RFC 7435), so
    even TLS 1.1 is better than the plaintext a refusal would leave."""
    import socket
    import ssl
    import warnings

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection((mx.host, mx.port), timeout=10) as raw:
        f = raw.makefile("rb")
        assert f.readline().startswith(b"220")
        raw.sendall(b"EHLO old.client.test\r\nSTARTTLS\r\n")
        while not f.readline().startswith(b"220 2.0.0"):
            pass
        with ctx.wrap_socket(raw) as t:
            assert t.version() == "TLSv1.1"
            t.sendall(b"EHLO old.client.test\r\n")
            assert t.recv(100).startswith(b"250")

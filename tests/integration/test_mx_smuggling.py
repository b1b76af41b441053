"""mx role: SMTP smuggling (doc/protocol.md, "Message content": the end of data
is <CRLF>.<CRLF> and nothing else; at the first bare CR or LF, or NUL: 521
5.5.2, nothing kept, close)."""

import pytest

from harness import check, sample_message, smtp_client, split_delivered

HEAD = b"From: s@remote.test\r\nTo: alice@example.test\r\nSubject: first\r\n\r\nfirst part"
SMUGGLED = (b"MAIL FROM:<evil@remote.test>\r\n"
            b"RCPT TO:<bob@example.test>\r\n"
            b"DATA\r\n"
            b"From: evil@remote.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
            b".\r\n")

# name -> (bytes up to and including the offending sequence, the rest)
CASES = {
    "LF.LF": (HEAD + b"\n.\n", SMUGGLED + b"QUIT\r\n"),
    "CRLF.LF": (HEAD + b"\r\n.\n", SMUGGLED + b"QUIT\r\n"),
    "LF.CRLF": (HEAD + b"\n.\r\n", SMUGGLED + b"QUIT\r\n"),
    "CR.CRLF": (HEAD + b"\r.\r\n", SMUGGLED + b"QUIT\r\n"),
    "CRLF.CR": (HEAD + b"\r\n.\rX", b"\r\n" + SMUGGLED + b"QUIT\r\n"),
    "bare CR in body": (HEAD + b"\r\nline with a bare\rCR", b"\r\nend\r\n.\r\n"),
    "bare LF in body": (HEAD + b"\r\nline with a bare\nLF", b"\r\nend\r\n.\r\n"),
    "bare LF in header": (b"From: s@remote.test\nSubject: x", b"\r\n\r\nbody\r\n.\r\n"),
    # a next hop that drops NUL reads <CRLF>NUL.<CRLF> as the end (issue 12)
    "CRLF NUL.CRLF": (HEAD + b"\r\n\x00", b".\r\n" + SMUGGLED + b"QUIT\r\n"),
    "CRLF .NUL CRLF": (HEAD + b"\r\n.\x00", b"\r\n" + SMUGGLED + b"QUIT\r\n"),
    "NUL in body": (HEAD + b"\r\nline with a\x00", b"NUL\r\nend\r\n.\r\n"),
    "NUL in header": (b"From: s@remote.test\r\nSubject: a\x00", b"b\r\n\r\nx\r\n.\r\n"),
}


def open_data(d):
    c = d.dialog()
    c.cmd("EHLO client.remote.test", "250")
    c.cmd("MAIL FROM:<s@remote.test>", "250 2.1.0")
    c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
    c.cmd("DATA", "354")
    return c


def still_serving(d):
    """A clean message after the attack is delivered, alone."""
    msg = sample_message("after the attack")
    with smtp_client(d) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(msg), 250, "2.0.0")
    [content] = d.messages("alice@example.test")
    assert split_delivered(content)[1] == msg.replace(b"\r\n", b"\n")
    assert d.messages("bob@example.test") == []
    assert d.stored_files() == d.message_files("alice@example.test")


@pytest.mark.parametrize("case", list(CASES))
def test_smuggling_refused_at_once(mx, case):
    """The offending bytes alone get 521 5.5.2 at once and a close."""
    first, rest = CASES[case]
    c = open_data(mx)
    c.send(first)
    c.expect("521 5.5.2")
    assert c.wait_closed(), "connection not closed after 521"
    try:
        c.send(rest)
    except OSError:
        pass
    c.close()
    assert mx.stored_files() == []
    still_serving(mx)


@pytest.mark.parametrize("case", list(CASES))
def test_smuggling_in_one_write(mx, case):
    """The whole attack in one segment: no 2xx/3xx, closed, nothing stored.
    (The 521 itself may be lost to a TCP reset since the server closes with
    our unread bytes in its buffer.)"""
    first, rest = CASES[case]
    c = open_data(mx)
    c.send(first + rest)
    replies, closed = c.read_all_replies()
    c.close()
    assert not [r for r in replies if r[:1] in ("2", "3")], replies
    if replies:
        assert replies[0].startswith("521 5.5.2"), replies
    assert closed, "connection not closed; replies %r" % replies
    assert mx.stored_files() == []
    still_serving(mx)


def test_smuggling_with_two_recipients_nothing_stored(mx):
    c = mx.dialog()
    c.cmd("EHLO client.remote.test", "250")
    c.cmd("MAIL FROM:<s@remote.test>", "250 2.1.0")
    c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
    c.cmd("RCPT TO:<bob@example.test>", "250 2.1.5")
    c.cmd("DATA", "354")
    c.send(HEAD + b"\n.\n")
    c.expect("521 5.5.2")
    assert c.wait_closed()
    c.close()
    assert mx.stored_files() == []


def test_dot_crlf_inside_line_is_data(mx):
    """'.' preceded by other text, and '..' lines, are not the end of data."""
    body = (b"From: s@remote.test\r\nSubject: dots\r\n\r\n"
            b"a.\r\n"
            b"x.\r\n.y\r\n"
            b"...\r\n")
    c = open_data(mx)
    c.send(body + b".\r\n")
    c.expect("250 2.0.0")
    c.cmd("QUIT", "221")
    c.close()
    [content] = mx.messages("alice@example.test")
    assert split_delivered(content)[1] == b"From: s@remote.test\nSubject: dots\n\na.\nx.\ny\n..\n"

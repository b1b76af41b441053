"""SMTP smuggling on the forwarding path (doc/protocol.md, "Message content":
at the first bare CR or LF, or NUL, chamoisd replies 5xx, keeps nothing,
closes; for a forwarded message it closes the remote session without the final
dot)."""

import pytest

from harness import Dialog, sample_message
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401

ALIASES = {
    "fwd@example.test": ["carol@remote.test"],
    "both@example.test": ["alice@example.test", "dave@remote.test"],
}
BUDGETS = "forward_rcpt_budget 10s\nforward_data_budget 10s"

HEAD = b"From: joe@sender.test\r\nTo: fwd@example.test\r\nSubject: first\r\n\r\nfirst part"
SMUGGLED = (b"MAIL FROM:<evil@evil.test>\r\n"
            b"RCPT TO:<victim@remote.test>\r\n"
            b"DATA\r\n"
            b"From: evil@evil.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
            b".\r\n")
CASES = {
    "LF.LF": HEAD + b"\n.\n",
    "CRLF.LF": HEAD + b"\r\n.\n",
    "LF.CRLF": HEAD + b"\n.\r\n",
    "CR.CRLF": HEAD + b"\r.\r\n",
    "bare LF in body": HEAD + b"\r\nline with a bare\nLF",
    "bare CR in body": HEAD + b"\r\nline with a bare\rCR",
    # a next hop that drops NUL before parsing reads <CRLF>NUL.<CRLF> as the
    # end of data (issue 12, point 5)
    "CRLF NUL.CRLF": HEAD + b"\r\n\x00.\r\n",
    "CRLF .NUL CRLF": HEAD + b"\r\n.\x00\r\n",
    "NUL in body": HEAD + b"\r\nline with a\x00NUL",
    "NUL in header": b"From: joe@sender.test\r\nSubject: a\x00b",
}


def open_data(d, rcpt):
    c = Dialog(d.host, d.port, timeout=30)
    c.expect("220")
    c.cmd("EHLO client.sender.test", "250")
    c.cmd("MAIL FROM:<joe@sender.test>", "250 2.1.0")
    c.cmd("RCPT TO:<%s>" % rcpt, "250 2.1.5")
    c.cmd("DATA", "354")
    return c


def check_remote_never_got_a_dot(env, r):
    assert r.wait_closed(timeout=15), "remote session still open:\n" + r.transcript()
    assert r.completed_data() == [], r.transcript()
    for c in r.connections:
        assert b"\x00" not in c.raw, c.raw
        assert b"evil@evil.test" not in c.raw, c.raw
        assert not any(v == "MAIL" and "evil" in (a or "") for v, a in c.commands)


@pytest.mark.parametrize("case", list(CASES))
def test_smuggling_on_forward_path(fwd_env, case):
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS)
    c = open_data(d, "fwd@example.test")
    c.send(CASES[case])
    reply = c.read_reply()
    assert_reply(reply, "521 5.5.2")
    assert c.wait_closed(), "connection not closed after 521"
    try:
        c.send(SMUGGLED + b"QUIT\r\n")
    except OSError:
        pass
    c.close()
    check_remote_never_got_a_dot(fwd_env, r)
    fwd_env.assert_no_bounce()


@pytest.mark.parametrize("case", ["LF.LF", "bare LF in body", "CRLF NUL.CRLF"])
def test_smuggling_in_one_write_on_forward_path(fwd_env, case):
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS)
    c = open_data(d, "fwd@example.test")
    c.send(CASES[case] + SMUGGLED + b"QUIT\r\n")
    replies, closed = c.read_all_replies(timeout=15)
    c.close()
    assert not [x for x in replies if x[:1] in ("2", "3")], replies
    if replies:
        assert_reply(replies[0], "521 5.5.2")
    assert closed, "connection not closed; replies %r" % replies
    check_remote_never_got_a_dot(fwd_env, r)
    fwd_env.assert_no_bounce()


@pytest.mark.parametrize("case", ["LF.LF", "CRLF NUL.CRLF"])
def test_smuggling_with_local_copy_keeps_nothing(fwd_env, case):
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS)
    c = open_data(d, "both@example.test")
    c.send(CASES[case])
    assert_reply(c.read_reply(), "521 5.5.2")
    assert c.wait_closed()
    c.close()
    check_remote_never_got_a_dot(fwd_env, r)
    assert d.stored_files() == []
    fwd_env.assert_no_bounce(local={})


def test_clean_message_after_attack_forwarded_alone(fwd_env):
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS)
    c = open_data(d, "fwd@example.test")
    c.send(CASES["LF.LF"] + SMUGGLED)
    c.read_all_replies(timeout=15)
    c.close()
    msg = sample_message("after the attack")
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg)
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = r.delivered()
    assert tx.content.endswith(msg)
    assert tx.accepted == ["carol@remote.test"]
    fwd_env.assert_no_bounce()

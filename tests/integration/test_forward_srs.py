"""SRS on the forwarding path (SPEC 4 "Synchronous forwarding"): the envelope
sender at the remote is SRS0=...@example.test; a bounce to that address
(from MAIL FROM:<> only) is forwarded synchronously to the original
sender's server; a forged address gets 550 5.1.1, a non-null sender 550
5.7.1."""

import re

from harness import crlf, sample_message
from peers.remote import (assert_reply, fwd_env, split_first_header,  # noqa: F401
                          transaction)

ALIASES = {"fwd@example.test": ["carol@remote.test"]}
BUDGETS = "forward_rcpt_budget 10s\nforward_data_budget 10s"
SRS_RE = re.compile(r"(?i)^SRS0=([^=@]+)=([^=@]+)=sender\.test=joe@example\.test$")


def forward_from_joe(env):
    """remote.test (carol's server) and sender.test (joe's server); a
    message from joe@sender.test forwarded through fwd@example.test.
    Returns (daemon, remote, sender_remote, SRS address)."""
    r = env.remote("remote.test")
    s = env.remote("sender.test")
    d = env.daemon(aliases=ALIASES, extra_conf=BUDGETS)
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], sample_message("srs"))
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = r.delivered()
    assert SRS_RE.match(tx.mail_from), "envelope sender at the remote: %r" % tx.mail_from
    return d, r, s, tx.mail_from


def bounce_message(srs):
    return crlf("From: MAILER-DAEMON@mx1.remote.test\n"
                "To: %s\n"
                "Subject: Undelivered Mail Returned to Sender\n"
                "Content-Type: text/plain\n"
                "\n"
                "carol's mailbox is full.\n" % srs)


def test_sender_rewritten_with_srs(fwd_env):
    d, r, s, srs = forward_from_joe(fwd_env)
    assert srs.lower().endswith("@example.test")
    assert s.connections == []
    fwd_env.assert_no_bounce()


def test_bounce_to_srs_address_forwarded_to_original_sender(fwd_env):
    d, r, s, srs = forward_from_joe(fwd_env)
    msg = bounce_message(srs)
    out = transaction(d, "", [srs], msg, ehlo="mx1.remote.test")
    assert_reply(out["mail"], "250 2.1.0")
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = s.delivered()
    assert tx.mail_from == ""
    assert tx.accepted == ["joe@sender.test"]
    received, rest = split_first_header(tx.content)
    assert received.startswith(b"Received:") and rest == msg
    # that forwarded bounce is the only null-sender transaction anywhere
    fwd_env.assert_no_bounce(null_sender_expected=1)
    [(remote, _, _)] = fwd_env.remotes.null_sender_attempts()
    assert remote is s
    assert len(r.delivered()) == 1      # nothing more went to carol's server


def test_srs_address_case_folded_by_remote(fwd_env):
    """A server may fold the case of the address (srs.h: base32 hash,
    compared case-insensitively)."""
    d, r, s, srs = forward_from_joe(fwd_env)
    local, _, domain = srs.rpartition("@")
    folded = (local.swapcase() if local != local.swapcase() else local.upper()) + "@" + domain
    out = transaction(d, "", [folded], bounce_message(folded))
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["eod"], "250 2.0.0")
    assert len(s.delivered()) == 1
    fwd_env.assert_no_bounce(null_sender_expected=1)


def forge(srs):
    m = SRS_RE.match(srs)
    h = m.group(1)
    c = h[0].lower()
    new = ("b" if c == "a" else "a") + h[1:]
    return srs[:5] + new + srs[5 + len(h):]


def test_forged_srs_address(fwd_env):
    d, r, s, srs = forward_from_joe(fwd_env)
    forged = forge(srs)
    assert forged.lower() != srs.lower()
    out = transaction(d, "", [forged], bounce_message(forged))
    assert_reply(out["rcpt"][0], "550 5.1.1")
    assert out["eod"] is None
    assert s.connections == [], s.transcript()
    fwd_env.assert_no_bounce()


def test_srs_address_with_changed_timestamp(fwd_env):
    d, r, s, srs = forward_from_joe(fwd_env)
    m = SRS_RE.match(srs)
    ts = m.group(2)
    other = ("22" if ts.lower() != "22" else "33")[:len(ts)]
    changed = "SRS0=%s=%s=%s" % (m.group(1), other, srs.split("=", 3)[3])
    out = transaction(d, "", [changed], bounce_message(changed))
    assert_reply(out["rcpt"][0], "550 5.1.1")
    assert s.connections == [], s.transcript()
    fwd_env.assert_no_bounce()


def test_srs_address_from_non_null_sender(fwd_env):
    d, r, s, srs = forward_from_joe(fwd_env)
    out = transaction(d, "someone@remote.test", [srs], sample_message("not a bounce"))
    assert_reply(out["rcpt"][0], "550 5.7.1")
    assert out["eod"] is None
    assert s.connections == [], s.transcript()
    fwd_env.assert_no_bounce()

"""SRS on the forwarding path (doc/protocol.md, "SRS"): the envelope sender at
the remote is SRS0=...@example.test; a bounce to that address (from MAIL
FROM:<> only) is forwarded synchronously to the original sender's server; a
forged address gets 550 5.1.1, a non-null sender 550 5.7.1; a sender at an
address literal is not forwarded (550 5.7.1) and an SRS address of one is
refused (550 5.1.1)."""

import hashlib
import hmac
import re
import socket
import time

from harness import crlf, sample_message
from peers.remote import (SELF_ADDRESS, assert_reply, fwd_env,  # noqa: F401
                          split_forwarded, transaction)

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
    received, rest = split_forwarded(tx.content)
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


# -- address literals (doc/security.md, issue 12 point 10) -------------------

SECRET = "a-test-secret-of-issue-12-point-10"
B32 = "abcdefghijklmnopqrstuvwxyz234567"


def srs_address(secret, domain, local, our_domain="example.test"):
    """An SRS address as chamoisd mints it (forward/srs.h: HMAC-SHA256 of the
    lower-cased "TT=domain=local", first 30 bits in base32; TT the day
    modulo 1024 in base32), computed apart from chamoisd."""
    day = int(time.time() // 86400) % 1024
    tt = B32[day >> 5] + B32[day & 31]
    md = hmac.new(secret.encode(), ("%s=%s=%s" % (tt, domain, local)).lower().encode(),
                  hashlib.sha256).digest()
    bits = int.from_bytes(md[:4], "big")
    h = "".join(B32[(bits >> (27 - 5 * i)) & 31] for i in range(6))
    srs = "SRS0=%s=%s=%s=%s" % (h, tt, domain, local)
    if re.search(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]", srs):
        srs = '"%s"' % srs          # a literal's brackets: a quoted local part
    return "%s@%s" % (srs, our_domain)


def test_srs_address_computed_here_matches_chamoisd(fwd_env):
    """srs_address() above makes what chamoisd makes (so the literal case
    below tests a real SRS address)."""
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS + "\nsrs_secret " + SECRET)
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], sample_message("srs"))
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = r.delivered()
    assert tx.mail_from.lower() == srs_address(SECRET, "sender.test", "joe").lower()


def test_literal_sender_is_not_forwarded(fwd_env):
    """A literal reverse path cannot be SRS-rewritten safely: the RCPT is
    refused at once (550 5.7.1); nothing reaches the remote."""
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS)
    out = transaction(d, "probe@[127.0.0.9]", ["fwd@example.test"], sample_message("lit"))
    assert_reply(out["mail"], "250")
    assert_reply(out["rcpt"][0], "550 5.7.1", "address literal")
    assert out["eod"] is None
    assert all(t.rcpts == [] for t in r.transactions()), r.transcript()
    fwd_env.assert_no_bounce()


def test_srs_address_of_a_literal_is_refused_and_never_connected(fwd_env):
    """An SRS address minted for probe@[127.0.0.9] (by an older chamoisd, or
    before this check) sent from MAIL FROM:<>: 550 5.1.1, and nothing
    listening on the literal's remote_port sees a connection."""
    listener = socket.socket()
    try:
        listener.bind((SELF_ADDRESS, fwd_env.remote_port))
        listener.listen(8)
        listener.setblocking(False)
        d = fwd_env.daemon(aliases=ALIASES, extra_conf=
                           "forward_rcpt_budget 3s\nforward_data_budget 3s\nsrs_secret "
                           + SECRET)
        srs = srs_address(SECRET, "[%s]" % SELF_ADDRESS, "probe")
        out = transaction(d, "", [srs], bounce_message(srs))
        assert_reply(out["rcpt"][0], "550 5.1.1")
        assert out["eod"] is None
        try:
            conn, peer = listener.accept()
            conn.close()
            raise AssertionError("chamoisd connected to the literal from %r" % (peer,))
        except BlockingIOError:
            pass
    finally:
        listener.close()
    fwd_env.assert_no_bounce()

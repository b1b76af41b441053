"""Synchronous forwarding: the replies a client sees (doc/protocol.md,
"Forwarding": remote replies mirrored, outcomes before a remote answers,
budgets, SMTPUTF8/8BITMIME, mail loops).  After every scenario no bounce was
sent anywhere and no Maildir got anything."""

import pytest

from harness import crlf, sample_message
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401

ALIASES = {
    "fwd@example.test": ["carol@remote.test"],
    "fwd2@example.test": ["dan@remote.test"],
    "utf@example.test": ["jörg@remote.test"],
    "gone@example.test": ["x@gone.test"],
    "nullmx@example.test": ["x@nullmx.test"],
    "loop@example.test": ["x@self.test"],
}
RCPT_BUDGET = 3
DATA_BUDGET = 5
BUDGETS = "forward_rcpt_budget %ds\nforward_data_budget %ds" % (RCPT_BUDGET, DATA_BUDGET)


def daemon(env, **kw):
    kw.setdefault("aliases", ALIASES)
    kw["extra_conf"] = BUDGETS + "\n" + kw.get("extra_conf", "")
    return env.daemon(**kw)


def forward_one(env, rcpt="fwd@example.test", msg=None, **kw):
    d = daemon(env)
    return transaction(d, "joe@sender.test", [rcpt],
                       sample_message("replies") if msg is None else msg, **kw)


def refused_at_rcpt(env, out, code_esc, text=None):
    """The forwarded RCPT got code_esc (and text); no message went anywhere."""
    assert_reply(out["rcpt"][0], code_esc, text)
    assert out["eod"] is None
    for r in env.remotes.remotes:
        assert r.completed_data() == [], r.transcript()
    env.assert_no_bounce()


# -- remote replies mirrored ---------------------------------------------------


@pytest.mark.parametrize("remote_reply, code_esc, text", [
    ("550 5.1.1 no such user carol", "550 5.1.1", "no such user carol"),
    ("450 4.2.0 mailbox busy, try later", "450 4.2.0", "mailbox busy, try later"),
    ("452 4.2.2 mailbox full", "452 4.2.2", "mailbox full"),
    ("553 5.1.3 bad address syntax", "553 5.1.3", "bad address syntax"),
    # no enhanced code: X.0.0 of the reply's class
    ("550 mailbox unavailable", "550 5.0.0", "mailbox unavailable"),
    ("451 local error in processing", "451 4.0.0", "local error in processing"),
])
def test_rcpt_reply_mirrored(fwd_env, remote_reply, code_esc, text):
    fwd_env.remote("remote.test", rcpt={"carol@remote.test": remote_reply})
    out = forward_one(fwd_env)
    refused_at_rcpt(fwd_env, out, code_esc, text)


def test_rcpt_reply_text_made_safe_for_ascii_client(fwd_env):
    """UTF-8 in a remote reply is not passed to a client that did not ask
    for SMTPUTF8."""
    fwd_env.remote("remote.test", rcpt={"carol@remote.test": "550 5.1.1 unknown user jörg ☃"})
    out = forward_one(fwd_env)
    refused_at_rcpt(fwd_env, out, "550 5.1.1")
    assert out["rcpt"][0].isascii(), out["rcpt"][0]


@pytest.mark.parametrize("remote_reply, code_esc, text", [
    ("554 5.7.1 message rejected as spam", "554 5.7.1", "message rejected as spam"),
    ("450 4.2.0 try again later", "450 4.2.0", "try again later"),
    ("552 5.3.4 message too big for carol", "552 5.3.4", "message too big for carol"),
    ("554 transaction failed", "554 5.0.0", "transaction failed"),
    ("250 queued as ABC123", "250 2.0.0", "queued as ABC123"),
    # a 3xx is off the protocol: a temporary failure, never passed on
    ("354 2.0.0 say more", "451 4.4.2", "Unexpected reply from the next server (354)"),
])
def test_end_of_data_reply_mirrored(fwd_env, remote_reply, code_esc, text):
    r = fwd_env.remote("remote.test", eod=remote_reply)
    out = forward_one(fwd_env)
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["eod"], code_esc, text)
    [tx] = r.completed_data()
    assert tx.delivered == remote_reply.startswith("2")
    fwd_env.assert_no_bounce()


@pytest.mark.parametrize("remote_reply", ["250 2.0.0 fine", "334 go on"])
def test_data_answered_off_the_protocol(fwd_env, remote_reply):
    """A remote that answers DATA with anything but 354 or a failure: the
    client's DATA gets 451 4.4.2, and nothing is delivered."""
    r = fwd_env.remote("remote.test", data=remote_reply)
    out = forward_one(fwd_env)
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["data"], "451 4.4.2", "Unexpected reply to DATA from the "
                 "next server (%s)" % remote_reply[:3])
    assert out["eod"] is None
    assert r.completed_data() == [], r.transcript()
    fwd_env.assert_no_bounce()


def test_mail_from_refused_gives_that_reply_on_each_rcpt(fwd_env):
    r = fwd_env.remote("remote.test", mail="553 5.7.1 sender address rejected")
    d = daemon(fwd_env)
    out = transaction(d, "joe@sender.test", ["fwd@example.test", "fwd2@example.test"],
                      sample_message("mail refused"))
    assert_reply(out["mail"], "250 2.1.0")
    for reply in out["rcpt"]:
        assert_reply(reply, "553 5.7.1", "sender address rejected")
    assert out["eod"] is None
    assert r.completed_data() == []
    assert all(rc == [] for rc in [t.rcpts for t in r.transactions()]), r.transcript()
    fwd_env.assert_no_bounce()


# -- lost sessions ---------------------------------------------------------


@pytest.mark.parametrize("behaviour", [
    {"ehlo": "421 4.3.2 shutting down"},
    {"mail": "421 4.3.2 shutting down"},
    {"rcpt": "421 4.3.2 shutting down"},
    {"drop": "ehlo"},
    {"drop": "mail"},
    {"drop": "rcpt"},
], ids=["421-ehlo", "421-mail", "421-rcpt", "drop-ehlo", "drop-mail", "drop-rcpt"])
def test_remote_421_or_lost_before_rcpt_reply(fwd_env, behaviour):
    fwd_env.remote("remote.test", **behaviour)
    out = forward_one(fwd_env)
    refused_at_rcpt(fwd_env, out, "451 4.4.2")


@pytest.mark.parametrize("behaviour", [
    {"eod": "421 4.3.2 shutting down"},
    {"data": "421 4.3.2 shutting down"},
    {"drop": "data"},
    {"drop": "eod"},
], ids=["421-eod", "421-data", "drop-mid-data", "drop-after-dot"])
def test_remote_421_or_lost_during_data(fwd_env, behaviour):
    r = fwd_env.remote("remote.test", **behaviour)
    out = forward_one(fwd_env)
    assert_reply(out["rcpt"][0], "250 2.1.5")
    # chamoisd may learn of it at the client's DATA already (when it waits
    # for the remote's 354) or after the final dot
    assert_reply(out["eod"] or out["data"], "451 4.4.2")
    assert r.delivered() == []
    fwd_env.assert_no_bounce()


def test_remote_unreachable(fwd_env):
    fwd_env.closed_remote("remote.test")
    out = forward_one(fwd_env)
    refused_at_rcpt(fwd_env, out, "451 4.4.1")


def test_all_mx_refuse_at_greeting(fwd_env):
    """Every MX says 5xx at greeting: each is skipped, so no MX is
    reachable: 451 4.4.1 (a temporary failure; never a 2xx, no bounce)."""
    first = fwd_env.remote("remote.test", 10, greeting="554 5.3.2 go away")
    second = fwd_env.remote("remote.test", 20, greeting="554 5.3.2 go away too")
    out = forward_one(fwd_env)
    refused_at_rcpt(fwd_env, out, "451 4.4.1")
    assert first.connections and second.connections, "not every MX was tried"


# -- DNS outcomes ----------------------------------------------------------


def test_nxdomain_target(fwd_env):
    out = forward_one(fwd_env, "gone@example.test")
    refused_at_rcpt(fwd_env, out, "550 5.1.2")


def test_null_mx_target(fwd_env):
    fwd_env.null_mx("nullmx.test")
    out = forward_one(fwd_env, "nullmx@example.test")
    refused_at_rcpt(fwd_env, out, "556 5.1.10")


def test_dns_failure(fwd_env):
    fwd_env.remote("remote.test")       # would accept, were it found
    d = daemon(fwd_env, dns=False)      # the harness's dead dns_server port
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], sample_message("dns"))
    refused_at_rcpt(fwd_env, out, "451 4.4.3")
    assert fwd_env.remotes.connections() == []


# -- budgets ---------------------------------------------------------------


@pytest.mark.parametrize("step", ["greeting", "ehlo", "mail", "rcpt"])
def test_rcpt_budget_exceeded(fwd_env, step):
    fwd_env.remote("remote.test", delay={step: RCPT_BUDGET + 8})
    out = forward_one(fwd_env)
    refused_at_rcpt(fwd_env, out, "451 4.4.2")


def test_data_budget_exceeded(fwd_env):
    r = fwd_env.remote("remote.test", delay={"eod": DATA_BUDGET + 8})
    out = forward_one(fwd_env)
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["eod"], "451 4.4.2")
    assert r.delivered() == []      # its 250 was never sent
    fwd_env.assert_no_bounce()


# -- SMTPUTF8 / 8BITMIME ---------------------------------------------------


def test_non_ascii_target_to_remote_without_smtputf8(fwd_env):
    r = fwd_env.remote("remote.test", smtputf8=False)
    out = forward_one(fwd_env, "utf@example.test", mail_params=" SMTPUTF8")
    refused_at_rcpt(fwd_env, out, "553 5.6.7")
    assert all(t.rcpts == [] for t in r.transactions()), r.transcript()


def test_8bitmime_to_remote_without_8bitmime(fwd_env):
    r = fwd_env.remote("remote.test", eightbitmime=False)
    msg = crlf("From: joe@sender.test\nSubject: 8bit\n\ncaf\xc3\xa9\n".encode("latin-1"))
    out = forward_one(fwd_env, msg=msg, mail_params=" BODY=8BITMIME")
    refused_at_rcpt(fwd_env, out, "550 5.6.3")
    assert all(t.rcpts == [] for t in r.transactions()), r.transcript()


def test_non_ascii_header_to_remote_without_smtputf8(fwd_env):
    r = fwd_env.remote("remote.test", smtputf8=False)
    msg = crlf("From: joe@sender.test\nSubject: Grüße\n\nhi\n".encode("utf-8"))
    out = forward_one(fwd_env, msg=msg, mail_params=" SMTPUTF8")
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["eod"], "550 5.6.9")
    assert r.completed_data() == [], "the final dot was sent to the remote"
    fwd_env.assert_no_bounce()


# -- mail loop -------------------------------------------------------------


def test_target_mx_is_chamoisd_itself(fwd_env):
    line = fwd_env.self_mx("self.test")
    d = daemon(fwd_env, extra_conf=line)
    out = transaction(d, "joe@sender.test", ["loop@example.test"], sample_message("loop"))
    refused_at_rcpt(fwd_env, out, "554 5.4.6")


# -- the forwarding target never shows (doc/security.md, issue 12 point 9) --


def sendmail_echo(conn, address):
    """sendmail's RCPT reply, which echoes the recipient (case folded here,
    to check the comparison ignores case)."""
    return "250 2.1.5 <%s>... Recipient ok" % address.upper()


def assert_target_hidden(reply, shown="fwd@example.test"):
    assert "carol" not in reply.lower(), "the target leaked: %r" % reply
    assert shown in reply, reply


def test_target_echoed_in_rcpt_reply_is_hidden(fwd_env):
    fwd_env.remote("remote.test", rcpt=sendmail_echo)
    out = forward_one(fwd_env)
    assert_reply(out["rcpt"][0], "250 2.1.5", "<fwd@example.test>... Recipient ok")
    assert_target_hidden(out["rcpt"][0])
    assert_reply(out["eod"], "250 2.0.0")


def test_target_in_rcpt_refusal_is_hidden(fwd_env):
    fwd_env.remote("remote.test", rcpt={
        "carol@remote.test": "550 5.1.1 Carol@Remote.Test: no such user (carol@remote.test)"})
    out = forward_one(fwd_env)
    refused_at_rcpt(fwd_env, out, "550 5.1.1",
                    "fwd@example.test: no such user (fwd@example.test)")
    assert_target_hidden(out["rcpt"][0])


def test_target_in_multiline_rcpt_reply_is_hidden(fwd_env):
    fwd_env.remote("remote.test", rcpt={
        "carol@remote.test": "452-4.2.2 mailbox full\n452 4.2.2 <carol@remote.test> try later"})
    out = forward_one(fwd_env)
    refused_at_rcpt(fwd_env, out, "452 4.2.2", "<fwd@example.test> try later")
    assert_target_hidden(out["rcpt"][0])


def test_target_in_final_dot_reply_is_hidden(fwd_env):
    r = fwd_env.remote("remote.test", eod="250 2.0.0 Ok: queued for <carol@remote.test>")
    out = forward_one(fwd_env)
    assert_reply(out["eod"], "250 2.0.0", "queued for <fwd@example.test>")
    assert_target_hidden(out["eod"])
    assert len(r.delivered()) == 1
    fwd_env.assert_no_bounce()

"""One transaction carries one route (doc/protocol.md, "Routes"): local
mailboxes, or forwarded addresses served by one remote session (same target
domain); an alias keeping a local copy is a forward route.  A recipient on
another route than the first accepted one gets 452 4.5.3."""

from harness import sample_message, split_delivered
from peers.remote import (assert_reply, fwd_env, split_forwarded,  # noqa: F401
                          transaction)

ALIASES = {
    "fwd@example.test": ["carol@remote.test"],
    "fwd2@example.test": ["dan@remote.test"],
    "other@example.test": ["erin@other.test"],
    "both@example.test": ["alice@example.test", "dave@remote.test"],
}
BUDGETS = "forward_rcpt_budget 10s\nforward_data_budget 10s"


def daemon(env):
    return env.daemon(aliases=ALIASES, extra_conf=BUDGETS)


def test_local_then_forwarded(fwd_env):
    r = fwd_env.remote("remote.test")
    d = daemon(fwd_env)
    msg = sample_message("local first")
    out = transaction(d, "joe@sender.test", ["alice@example.test", "fwd@example.test"], msg)
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["rcpt"][1], "452 4.5.3")
    assert_reply(out["eod"], "250 2.0.0")
    [content] = d.messages("alice@example.test")
    assert split_delivered(content)[1] == msg.replace(b"\r\n", b"\n")
    assert r.completed_data() == [], r.transcript()
    fwd_env.assert_no_bounce(local={"alice@example.test": 1})


def test_forwarded_then_local(fwd_env):
    r = fwd_env.remote("remote.test")
    d = daemon(fwd_env)
    msg = sample_message("forward first")
    out = transaction(d, "joe@sender.test", ["fwd@example.test", "alice@example.test"], msg)
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["rcpt"][1], "452 4.5.3")
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = r.delivered()
    assert tx.accepted == ["carol@remote.test"]
    assert split_forwarded(tx.content)[1] == msg
    fwd_env.assert_no_bounce(local={})


def test_two_target_domains(fwd_env):
    r = fwd_env.remote("remote.test")
    o = fwd_env.remote("other.test")
    d = daemon(fwd_env)
    out = transaction(d, "joe@sender.test", ["fwd@example.test", "other@example.test"],
                      sample_message("two domains"))
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["rcpt"][1], "452 4.5.3")
    assert_reply(out["eod"], "250 2.0.0")
    assert len(r.delivered()) == 1
    assert o.completed_data() == [], o.transcript()
    fwd_env.assert_no_bounce()


def test_first_refused_recipient_does_not_set_the_route(fwd_env):
    """Routes are decided by the first *accepted* recipient: a forwarded
    recipient refused by the remote leaves the transaction open to local
    mailboxes."""
    r = fwd_env.remote("remote.test", rcpt={"carol@remote.test": "550 5.1.1 no carol"})
    d = daemon(fwd_env)
    out = transaction(d, "joe@sender.test", ["fwd@example.test", "alice@example.test"],
                      sample_message("refused first"))
    assert_reply(out["rcpt"][0], "550 5.1.1", "no carol")
    assert_reply(out["rcpt"][1], "250 2.1.5")
    assert_reply(out["eod"], "250 2.0.0")
    assert r.completed_data() == []
    fwd_env.assert_no_bounce(local={"alice@example.test": 1})


def test_local_copy_alias_is_a_forward_route(fwd_env):
    r = fwd_env.remote("remote.test")
    d = daemon(fwd_env)
    out = transaction(d, "joe@sender.test", ["alice@example.test", "both@example.test"],
                      sample_message("local then both"))
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["rcpt"][1], "452 4.5.3")
    assert_reply(out["eod"], "250 2.0.0")
    assert r.completed_data() == []
    fwd_env.assert_no_bounce(local={"alice@example.test": 1})


def test_local_copy_alias_shares_the_route_of_its_target_domain(fwd_env):
    r = fwd_env.remote("remote.test")
    d = daemon(fwd_env)
    msg = sample_message("both and fwd")
    out = transaction(d, "joe@sender.test", ["both@example.test", "fwd@example.test"], msg)
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["rcpt"][1], "250 2.1.5")
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = r.delivered()
    assert sorted(tx.accepted) == ["carol@remote.test", "dave@remote.test"]
    assert split_forwarded(tx.content)[1] == msg
    assert len(r.connections) == 1
    fwd_env.assert_no_bounce(local={"alice@example.test": 1})

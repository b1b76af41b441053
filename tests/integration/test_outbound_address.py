"""outbound_address and outbound_family (chamois.conf(5)): every
outbound session (a forward, the queue, the relay) leaves from the
configured source address, and only targets of the configured family are
tried.  The remotes are aiosmtpd servers on 127.0.0.x behind the test's
dnsmasq (peers/remote.py), which record the peer address of every
connection; the source is 127.0.0.2 (any 127/8 address is local on
Linux)."""

import re

import pytest

import harness
from harness import crlf, wait_until
from peers.queue_util import qbins, queue, wait_queue, wait_ready  # noqa: F401
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401
from peers.sasl import ALICE, USERS, submission_daemon

SOURCE = "127.0.0.2"
MSG = crlf("From: friend@sender.test\nTo: fwd@example.test\nSubject: source\n\nhi\n")


def submit_to_dave(sub):
    """alice submits a message for dave@remote.test on 587: the queue's"""
    s = sub.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        assert s.sendmail(ALICE, ["dave@remote.test"], crlf(
            "From: %s\nTo: dave@remote.test\nSubject: queued\n\nhi\n" % ALICE)) == {}
    finally:
        s.quit()


def peers(remote):
    return [c.peer[0] for c in remote.connections]


@pytest.fixture
def env(fwd_env, tmp_path, qbins):
    r = fwd_env.remote("remote.test")

    def make(conf):
        sub = submission_daemon(fwd_env.daemon, tmp_path / ("sasl%d" % len(fwd_env.daemons)),
                                aliases={"fwd@example.test": ["carol@remote.test"]},
                                extra_conf=conf)
        wait_ready(sub.d)
        return sub
    return r, make


def test_a_forward_and_the_queue_leave_from_outbound_address(env, qbins):
    r, make = env
    sub = make("outbound_address %s\noutbound_address ::1\n" % SOURCE)
    t = transaction(sub.d, "friend@sender.test", ["fwd@example.test"], MSG)
    assert_reply(t["eod"], "250")
    submit_to_dave(sub)
    wait_until(lambda: len(r.delivered()) >= 2, 30, what="two deliveries at remote.test")
    assert set(peers(r)) == {SOURCE}, peers(r)


def test_without_outbound_address_the_system_picks(env, qbins):
    r, make = env
    sub = make("")
    t = transaction(sub.d, "friend@sender.test", ["fwd@example.test"], MSG)
    assert_reply(t["eod"], "250")
    assert SOURCE not in peers(r), peers(r)


def test_outbound_family_ipv6_tries_no_ipv4_target(env, qbins):
    """remote.test's MX has only an IPv4 address: with outbound_family
    ipv6 a forward gets 451 4.4.1 and a queued message stays deferred,
    saying why; the remote sees no connection."""
    r, make = env
    sub = make("outbound_family ipv6\n")
    t = transaction(sub.d, "friend@sender.test", ["fwd@example.test"], MSG)
    assert_reply(t["rcpt"][0], "451 4.4.1")
    submit_to_dave(sub)
    msgs = wait_queue(qbins, sub.d, lambda m: any(
        x["state"] == "deferred" for v in m.values() for x in v["rcpts"]), "deferred")
    (m,) = msgs.values()
    assert "no IPv6 address (outbound_family)" in m["rcpts"][0]["reply"], m
    assert r.connections == []


def test_check_refuses_two_sources_of_one_family(chamois_conf):
    d = chamois_conf(extra_conf="outbound_address 127.0.0.2\noutbound_address 127.0.0.3\n"
                                "outbound_family ipv5\n")
    rc, out = d.check_config()
    assert rc == 1, out
    assert re.search(r"chamois\.conf:%d: outbound_address: an IPv4 address is set already"
                     % (d.conf_line_number("outbound_address 127.0.0.3")), out), out
    assert re.search(r"chamois\.conf:%d: outbound_family: 'ipv5' is not any, ipv4 or ipv6"
                     % d.conf_line_number("outbound_family"), out), out


def test_a_source_address_that_is_not_ours_makes_the_target_unreachable(env, qbins):
    """192.0.2.1 (TEST-NET-1) is no address of this machine: bind fails,
    a forward gets 451 4.4.1 and the log names the bind."""
    r, make = env
    sub = make("outbound_address 192.0.2.1\n")
    t = transaction(sub.d, "friend@sender.test", ["fwd@example.test"], MSG)
    assert_reply(t["rcpt"][0], "451 4.4.1")
    assert re.search(r"forward unreachable domain=remote\.test last=\"bind 192\.0\.2\.1: ",
                     sub.d.log()), sub.d.log()
    assert r.connections == []


def test_outbound_family_ipv4_skips_the_aaaa(fwd_env, tmp_path, qbins):
    """mx1.remote.test has an AAAA record (::1, where nothing listens on
    that port) besides its A record: without outbound_family the client
    tries ::1 first (and fails over), with ipv4 it never does."""
    if not harness.ipv6_loopback_available():
        pytest.skip("no IPv6 loopback")
    r = fwd_env.remote("remote.test")
    fwd_env.dns.address("mx1.remote.test", "::1")
    aliases = {"fwd@example.test": ["carol@remote.test"]}
    for family, tried_v6 in (("any", True), ("ipv4", False)):
        d = fwd_env.daemon(aliases=aliases, extra_conf="outbound_family %s\n" % family)
        t = transaction(d, "friend@sender.test", ["fwd@example.test"], MSG)
        assert_reply(t["eod"], "250")
        assert ("addr=[::1]:" in d.log()) == tried_v6, d.log()
    assert len(r.delivered()) == 2

"""route DOMAIN HOST:PORT (chamois.conf(5); doc/home-server.md): a front
MX that holds nothing for a home server.

Two chamoisd: the "home" server (mx role, domain home.example, the
mailboxes) and the front MX (no local mailbox for home.example, only
`route home.example 127.0.0.1:PORT`).  Nothing in DNS names the home
server (home.example has no MX, no A): the route alone leads there.  A
sender talks to the front MX with a raw dialog (peers/remote.py
transaction): every RCPT gets the home server's own reply, the message
lands in the home server's Maildir with the sender unchanged, the front
keeps nothing, queues nothing and sends no bounce; with the home server
down, a 4xx at RCPT, and the same mail goes through once it is back.
The queue takes the route too (a user of the front MX submitting to
home.example)."""

import re

import pytest

from harness import crlf, wait_until
from peers.queue_util import qbins, queue, wait_ready  # noqa: F401
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401
from peers.sasl import ALICE, USERS, submission_daemon

HOME = "home.example"
ME, WIFE = "me@home.example", "wife@home.example"
SENDER = "friend@sender.test"


def msg(subject):
    return crlf("From: %s\nTo: %s\nSubject: %s\n\nhello home\n" % (SENDER, ME, subject))


@pytest.fixture
def homes(fwd_env, tmp_path, qbins):
    home = fwd_env.daemon(domains=(HOME,), mailboxes=(ME, WIFE), hostname="home.home.example")
    front = submission_daemon(fwd_env.daemon, tmp_path / "sasl",
                              extra_conf="route %s 127.0.0.1:%d\n" % (HOME, home.port),
                              hostname="front.example.test")
    wait_ready(front.d)
    return fwd_env, home, front


def held_nothing(qbins, front):
    assert front.d.stored_files() == []
    assert queue(qbins, front.d)[0] == {}
    assert "queue stored" not in front.d.log()


def test_every_rcpt_gets_the_home_servers_reply_and_the_front_keeps_nothing(homes, qbins):
    fwd, home, front = homes
    t = transaction(front.d, SENDER, [ME, "nobody@home.example", WIFE], msg("to home"))
    assert_reply(t["rcpt"][0], "250")
    # the home server's own refusal, as it worded it
    assert_reply(t["rcpt"][1], "550 5.1.1", "User unknown")
    assert_reply(t["rcpt"][2], "250")
    assert_reply(t["eod"], "250")
    (m,) = home.wait_messages(ME)
    assert home.wait_messages(WIFE)
    # a route is the domain's own next hop: no SRS
    assert m.startswith(b"Return-Path: <%s>" % SENDER.encode()), m[:300]
    assert b"by front.example.test" in m
    held_nothing(qbins, front)
    assert "mail from=<>" not in home.log()     # no bounce


def test_home_down_gets_a_4xx_and_nothing_held_then_back_up(homes, qbins):
    fwd, home, front = homes
    home.stop()
    t = transaction(front.d, SENDER, [ME], msg("while down"))
    assert_reply(t["rcpt"][0], "451 4.4.1")
    assert t["eod"] is None
    held_nothing(qbins, front)
    home.start()
    t = transaction(front.d, SENDER, [ME], msg("back up"))
    assert_reply(t["rcpt"][0], "250")
    assert_reply(t["eod"], "250")
    (m,) = home.wait_messages(ME)
    assert b"Subject: back up" in m
    held_nothing(qbins, front)
    assert "mail from=<>" not in home.log()     # no bounce


def test_the_queue_takes_the_route_too(homes, qbins):
    """alice, a user of the front server, submits to me@home.example: the
    queue delivers it to the home server, not to home.example's (absent)
    MX."""
    fwd, home, front = homes
    s = front.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        assert s.sendmail(ALICE, [ME], crlf("From: %s\nTo: %s\nSubject: from the queue\n\n"
                                            "hi\n" % (ALICE, ME))) == {}
    finally:
        s.quit()
    (m,) = home.wait_messages(ME)
    assert b"Subject: from the queue" in m
    wait_until(lambda: queue(qbins, front.d)[0] == {}, 30, what="an empty queue")
    assert re.search(r"to=<%s> relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d .*status=sent"
                     % (re.escape(ME), home.port), front.d.log()), front.d.log()


def test_a_domain_without_route_is_still_refused(homes):
    fwd, home, front = homes
    t = transaction(front.d, SENDER, ["someone@elsewhere.test"])
    assert_reply(t["rcpt"][0], "554 5.7.1")


def test_a_route_by_host_name_takes_its_a_record_not_an_mx(fwd_env, tmp_path, qbins):
    """route home.example gw.vpn.test:PORT: gw.vpn.test's A record (in the
    test's dnsmasq) is used; home.example's MX, which points elsewhere,
    is not."""
    fwd_env.dns.address("gw.vpn.test", "127.0.0.1")
    decoy = fwd_env.remote(HOME)       # home.example's MX: must see nothing
    home = fwd_env.daemon(domains=(HOME,), mailboxes=(ME,), hostname="home.home.example")
    front = fwd_env.daemon(extra_conf="route %s gw.vpn.test:%d\n" % (HOME, home.port))
    t = transaction(front, SENDER, [ME], msg("by name"))
    assert_reply(t["rcpt"][0], "250")
    assert_reply(t["eod"], "250")
    home.wait_messages(ME)
    assert decoy.connections == []

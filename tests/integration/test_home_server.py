"""route DOMAIN HOST:PORT (chamois.conf(5); doc/home-server.md): a front
MX that holds nothing for a home server.

Two chamoisd: the "home" server (mx role, domain example.org, the
mailboxes) and the front MX (no local mailbox for example.org, only
doc/home-server.md's `route example.org 10.8.0.2:25` with the home
server's test address put in).  Nothing in DNS names the home server
(example.org has no MX, no A): the route alone leads there.  A
sender talks to the front MX with a raw dialog (peers/remote.py
transaction): every RCPT gets the home server's own reply, the message
lands in the home server's Maildir with the sender unchanged, the front
keeps nothing, queues nothing and sends no bounce; with the home server
down, a 4xx at RCPT, and the same mail goes through once it is back.
The queue takes the route too (a user of the front MX submitting to
example.org)."""

import os
import re
import subprocess

import pytest

from harness import ROOT, crlf, dead_port, wait_until
from peers.queue_util import qbins, queue, wait_ready  # noqa: F401
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401
from peers.sasl import ALICE, USERS, submission_daemon

DOC = ROOT / "doc" / "home-server.md"
SENDER = "friend@sender.test"
TUNNEL = "10.8.0.2:25"      # the home server's address in the doc


def doc_block(tag):
    """The fenced block right after <!-- run by: test_home_server.py (tag) -->."""
    m = re.search(r"<!-- run by: %s \(%s\) -->\n```\w*\n(.*?)```" % (
        re.escape(os.path.basename(__file__)), re.escape(tag)), DOC.read_text(), re.S)
    assert m, "doc/home-server.md has no block marked (%s)" % tag
    return m.group(1)


ROUTE = doc_block("front").strip()
HOME = ROUTE.split()[1]            # example.org
assert ROUTE == "route %s %s" % (HOME, TUNNEL), ROUTE
ME, WIFE = "me@" + HOME, "wife@" + HOME


def msg(subject):
    return crlf("From: %s\nTo: %s\nSubject: %s\n\nhello home\n" % (SENDER, ME, subject))


@pytest.fixture
def homes(fwd_env, tmp_path, qbins):
    home = fwd_env.daemon(domains=(HOME,), mailboxes=(ME, WIFE), hostname="home." + HOME)
    # the doc's route line, the test's address for the tunnel's
    route = ROUTE.replace(TUNNEL, "127.0.0.1:%d" % home.port)
    front = submission_daemon(fwd_env.daemon, tmp_path / "sasl", extra_conf=route + "\n",
                              hostname="front.example.test")
    wait_ready(front.d)
    return fwd_env, home, front


def held_nothing(qbins, front):
    assert front.d.stored_files() == []
    assert queue(qbins, front.d)[0] == {}
    assert "queue stored" not in front.d.log()


def test_every_rcpt_gets_the_home_servers_reply_and_the_front_keeps_nothing(homes, qbins):
    fwd, home, front = homes
    t = transaction(front.d, SENDER, [ME, "nobody@" + HOME, WIFE], msg("to home"))
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
    """alice, a user of the front server, submits to me@example.org: the
    queue delivers it to the home server, not to example.org's (absent)
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
    """route example.org gw.vpn.test:PORT: gw.vpn.test's A record (in the
    test's dnsmasq) is used; example.org's MX, which points elsewhere, is
    not."""
    fwd_env.dns.address("gw.vpn.test", "127.0.0.1")
    decoy = fwd_env.remote(HOME)       # the domain's MX: must see nothing
    home = fwd_env.daemon(domains=(HOME,), mailboxes=(ME,), hostname="home." + HOME)
    front = fwd_env.daemon(extra_conf="route %s gw.vpn.test:%d\n" % (HOME, home.port))
    t = transaction(front, SENDER, [ME], msg("by name"))
    assert_reply(t["rcpt"][0], "250")
    assert_reply(t["eod"], "250")
    home.wait_messages(ME)
    assert decoy.connections == []


def test_the_docs_home_server_lines_check_and_refuse_an_open_relay_auth(chamois_conf,
                                                                         tmp_path):
    """doc/home-server.md's home block (relay_host, relay_auth) and its
    relay_auth commands, with the test's paths: chamoisd -n passes; with
    the file made readable by others, -n names it."""
    path = str(tmp_path / "relay_auth")
    conf = doc_block("home").replace("/etc/chamois/relay_auth", path)
    d = chamois_conf(domains=(HOME,), mailboxes=(ME,), extra_conf=conf)
    script = doc_block("relay_auth").replace("/etc/chamois/relay_auth", path).replace(
        "chamoisd -n", "%s -n -f %s" % (d.binary, d.conf))
    p = subprocess.run(["sh", "-e", "-c", script], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout.decode()
    assert open(path).read() == "me@provider.example the relay password\n"
    os.chmod(path, 0o640)
    rc, out = d.check_config()
    assert rc == 1 and "relay_auth: %s must be mode 0600 (it is 0640)" % path in out, out


def test_a_route_comes_before_relay_host_in_the_queue(fwd_env, tmp_path, qbins):
    """With relay_host set (nothing listens there), the queue still takes
    the route for example.org; mail for another domain waits for the
    relay and never goes to that domain's MX."""
    other = fwd_env.remote("elsewhere.test")
    home = fwd_env.daemon(domains=(HOME,), mailboxes=(ME,), hostname="home." + HOME)
    front = submission_daemon(fwd_env.daemon, tmp_path / "sasl", extra_conf=(
        "route %s 127.0.0.1:%d\nrelay_host 127.0.0.1:%d\n" % (HOME, home.port, dead_port())))
    wait_ready(front.d)
    s = front.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        for to in (ME, "x@elsewhere.test"):
            assert s.sendmail(ALICE, [to], crlf("From: %s\nTo: %s\nSubject: q\n\nhi\n"
                                                % (ALICE, to))) == {}
    finally:
        s.quit()
    home.wait_messages(ME)

    def relay_deferred():
        states = [r for m in queue(qbins, front.d)[0].values() for r in m["rcpts"]]
        return [r for r in states if r["state"] == "deferred"
                and "no mail server could be reached" in r["reply"]]
    wait_until(relay_deferred, 30, what="the other domain deferred at the relay")
    assert other.connections == []

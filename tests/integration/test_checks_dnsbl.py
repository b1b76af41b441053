"""mx role: DNS block lists (chamois.conf(5) "dnsbl"; SPEC 7 "Checking
what the world sends").  Each daemon's own dnsmasq (harness) serves the
lists' records: the client is 127.0.0.1 (or ::1), looked up as
1.0.0.127.ZONE (or its 32 reversed nibbles under ZONE)."""

import pytest

from harness import (check, dead_port, ipv6_loopback_available, sample_message,
                     smtp_client, wait_until)
from peers.remote import fwd_env  # noqa: F401 (fixture)

LISTED = "554 5.7.1 Service unavailable; client [127.0.0.1] listed by bl.test"


@pytest.fixture
def bl_daemon(chamois_conf):
    """A factory: bl_daemon(records, zones) -> a started daemon whose own
    dnsmasq has records (dnsmasq options) and which lists zones."""
    started = []

    def make(records=(), zones=("bl.test",), **kwargs):
        d = chamois_conf(extra_conf="".join("dnsbl %s\n" % z for z in zones), **kwargs)
        for r in records:
            d.dns.raw(r)
        d.start()
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


def rcpt_reply(d, rcpt, sender="joe@sender.test", ipv6=False):
    with smtp_client(d, ipv6=ipv6) as s:
        check(s.mail(sender), 250, "2.1.0")
        code, text = s.rcpt(rcpt)
        s.quit()
    return "%d %s" % (code, text.decode())


def test_listed_client_refused_at_rcpt(bl_daemon):
    d = bl_daemon(["--host-record=1.0.0.127.bl.test,127.0.0.2"])
    assert rcpt_reply(d, "alice@example.test") == LISTED
    with smtp_client(d) as s:
        check(s.mail("joe@sender.test"), 250, "2.1.0")
        # every RCPT, the unknown one too (the list answers before the tables)
        for r in ("alice@example.test", "bob@example.test", "nobody@example.test"):
            code, text = s.rcpt(r)
            assert "%d %s" % (code, text.decode()) == LISTED
        s.quit()
    assert "smtp dnsbl zone=bl.test address=127.0.0.1 result=listed answer=127.0.0.2" \
        in d.log()
    assert d.messages("alice@example.test") == []


def test_listed_client_never_reaches_a_forward_target(fwd_env):
    """The list answers before the router: a forwarded address's target
    is never contacted for a listed client."""
    r = fwd_env.remote("remote.test")
    fwd_env.dns.raw("--host-record=1.0.0.127.bl.test,127.0.0.2")
    d = fwd_env.daemon(aliases={"fwd@example.test": ["carol@remote.test"]},
                       extra_conf="dnsbl bl.test")
    assert rcpt_reply(d, "fwd@example.test") == LISTED
    fwd_env.remotes.settle()
    assert r.connections == [], r.transcript()


def test_postmaster_always_reachable(bl_daemon):
    d = bl_daemon(["--host-record=1.0.0.127.bl.test,127.0.0.2"],
                  domains=("example.test", "other.test"))
    for r in ("postmaster@example.test", "POSTMASTER@other.test", "postmaster"):
        with smtp_client(d) as s:
            check(s.mail("joe@sender.test"), 250, "2.1.0")
            check(s.rcpt(r), 250)
            check(s.data(sample_message("to postmaster")), 250, "2.0.0")
            s.quit()
    # postmaster is the first mailbox, alice (chamois.conf(5) postmaster)
    assert len(d.messages("alice@example.test")) == 3
    # postmaster of a domain that is not ours is not spared
    assert rcpt_reply(d, "postmaster@elsewhere.test").startswith("554 5.7.1 Service")


def test_error_answer_is_not_listed(bl_daemon):
    """127.255.255.0/24: the list's error codes (Spamhaus: a query through a
    public or open resolver) count as not listed, and are logged."""
    d = bl_daemon(["--host-record=1.0.0.127.bl.test,127.255.255.254"])
    assert rcpt_reply(d, "alice@example.test").startswith("250 2.1.5")
    assert "smtp dnsbl zone=bl.test address=127.0.0.1 result=error " \
        "answer=127.255.255.254 (counted as not listed)" in d.log()


def test_dns_failure_is_not_listed(bl_daemon):
    """A list that cannot answer (its servers are unreachable: dnsmasq
    forwards the zone to a dead port and says SERVFAIL or REFUSED) never
    refuses mail; the failure is logged."""
    d = bl_daemon(["--server=/fail.test/127.0.0.1#%d" % dead_port()],
                  zones=("fail.test",))
    assert rcpt_reply(d, "alice@example.test").startswith("250 2.1.5")
    wait_until(lambda: "result=dns-failure" in d.log(), 15, what="the logged failure")
    assert "smtp dnsbl zone=fail.test address=127.0.0.1 result=dns-failure " \
        "(counted as not listed)" in d.log()


def test_not_listed_and_second_zone(bl_daemon):
    """No record: not listed; the second of two zones lists the client and
    is the one the reply names."""
    d = bl_daemon(["--host-record=1.0.0.127.two.test,127.0.0.4"],
                  zones=("bl.test", "two.test"))
    assert rcpt_reply(d, "alice@example.test") == \
        "554 5.7.1 Service unavailable; client [127.0.0.1] listed by two.test"
    d2 = bl_daemon(zones=("bl.test",))
    assert rcpt_reply(d2, "alice@example.test").startswith("250 2.1.5")


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_listed_ipv6_client(bl_daemon):
    name = ".".join("1" + "0" * 31) + ".bl.test"
    d = bl_daemon(["--host-record=%s,127.0.0.2" % name], listen_ipv6=True)
    assert rcpt_reply(d, "alice@example.test", ipv6=True) == \
        "554 5.7.1 Service unavailable; client [::1] listed by bl.test"


def test_dnsbl_zone_checked_by_n(chamois_conf):
    d = chamois_conf(extra_conf="dnsbl not_a..zone\n")
    code, out = d.check_config()
    assert code == 1
    assert "dnsbl: 'not_a..zone' is not a valid DNS zone" in out

"""DANE on both outbound paths (RFC 7672, RFC 7671; doc/security.md
"Outbound TLS"; chamois.conf(5) dane).

The DNS is real DNSSEC: the test zones are signed at test time, served by
nsd and validated by unbound, which is chamoisd's dns_server on loopback
(peers/dnssec.py).  Remotes are aiosmtpd servers (peers/remote.py) that
offer STARTTLS with a certificate that matches the TLSA record, one that
does not, or no STARTTLS at all.  A DANE host must give verified TLS or
nothing goes to it: a forward gets 451 4.7.5 at RCPT, the queue defers.
"""

import re
import urllib.request
from pathlib import Path

import pytest

import harness
from harness import sample_message, wait_until
from peers import dnssec
from peers.dnssec import SignedDNS, spki_sha256
from peers.queue_util import (  # noqa: F401
    MAILBOXES, qbins, all_deferred, queue, sendmail_ok, wait_empty, wait_queue,
    wait_ready)
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401
from peers.tlsca import TestCA

ALIASES = {"fwd@example.test": ["carol@dane.test"],
           "plain@example.test": ["carol@insecure.test"]}
BUDGETS = "forward_rcpt_budget 20s\nforward_data_budget 20s"


@pytest.fixture
def env(fwd_env, tmp_path):
    """fwd_env with the signed DNS as chamoisd's dns_server (its teardown
    stops it with the rest)."""
    why = dnssec.available()
    if why:
        pytest.skip(why)
    fwd_env.dns = SignedDNS(tmp_path / "dnssec")
    fwd_env.signed = fwd_env.dns.zone("dane.test")
    return fwd_env


def mx(env, zone, domain, n, preference=10, **behaviour):
    """A remote that is MX n of domain (host mxN.domain) in zone."""
    host = "mx%d.%s" % (n, domain)
    behaviour.setdefault("hostname", host)
    r = env.remotes.add(host, **behaviour)
    zone.mx(domain, host, preference)
    zone.a(host, r.address)
    return r


def self_signed(env):
    """The harness's self-signed certificate (every remote's default)."""
    return harness.make_cert(env.dir / "ee")


def other_cert(env, name):
    """A certificate with another key than self_signed's."""
    return TestCA(env.dir / "other-ca").leaf(env.dir / "other", name)


def tlsa_ee(env, host, cert):
    env.signed.tlsa(host, env.remote_port, "3 1 1 " + spki_sha256(cert))


def forward_daemon(env, extra_conf=""):
    return env.daemon(aliases=ALIASES, extra_conf=BUDGETS + "\n" + extra_conf)


def forward(d, rcpt="fwd@example.test"):
    return transaction(d, "joe@sender.test", [rcpt], sample_message("dane"))


def no_mail_sent(r):
    """The remote never saw MAIL FROM (so no message, in any form)."""
    return all(verb != "MAIL" for c in r.connections for verb, _ in c.commands)


# --------------------------------------------------------------------------
# the forward path


def test_forward_tlsa_match_delivers_over_verified_tls(env):
    cert, key = self_signed(env)
    r = mx(env, env.signed, "dane.test", 1, starttls=True, tls_cert=(cert, key))
    tlsa_ee(env, "mx1.dane.test", cert)
    d = forward_daemon(env)
    out = forward(d)
    assert_reply(out["rcpt"][0], "250")
    assert_reply(out["eod"], "250")
    [tx] = r.delivered()
    assert tx.tls
    assert re.search(r"client tls host=mx1\.dane\.test .* dane=verified tlsa=3\.1\.1",
                     d.log()), d.log()[-3000:]


def test_forward_tlsa_mismatch_gets_451_4_7_5_and_nothing_sent(env):
    cert, _ = self_signed(env)
    wrong = other_cert(env, "mx1.dane.test")
    r = mx(env, env.signed, "dane.test", 1, starttls=True, tls_cert=wrong)
    tlsa_ee(env, "mx1.dane.test", cert)
    d = forward_daemon(env)
    out = forward(d)
    assert_reply(out["rcpt"][0], "451 4.7.5")
    assert out["eod"] is None
    assert no_mail_sent(r), r.transcript()
    line = [l for l in d.log().splitlines() if "tls-policy-failed" in l]
    assert line, d.log()[-3000:]
    assert "domain=dane.test" in line[0] and "policy=dane" in line[0], line
    assert "TLSA" in line[0], line


def test_forward_stripped_starttls_gets_451_4_7_5_never_plaintext(env):
    cert, _ = self_signed(env)
    r = mx(env, env.signed, "dane.test", 1, starttls=False)
    tlsa_ee(env, "mx1.dane.test", cert)
    d = forward_daemon(env)
    out = forward(d)
    assert_reply(out["rcpt"][0], "451 4.7.5")
    assert no_mail_sent(r), r.transcript()
    assert re.search(r"tls-policy-failed domain=dane\.test policy=dane .*no STARTTLS",
                     d.log()), d.log()[-3000:]


def test_forward_next_mx_after_a_dane_failure(env):
    cert, key = self_signed(env)
    bad = mx(env, env.signed, "dane.test", 1, preference=10, starttls=True,
             tls_cert=other_cert(env, "mx1.dane.test"))
    good = mx(env, env.signed, "dane.test", 2, preference=20, starttls=True,
              tls_cert=(cert, key))
    tlsa_ee(env, "mx1.dane.test", cert)
    tlsa_ee(env, "mx2.dane.test", cert)
    port = harness.free_port()
    d = forward_daemon(env, "metrics_listen 127.0.0.1:%d" % port)
    out = forward(d)
    assert_reply(out["eod"], "250")
    assert no_mail_sent(bad), bad.transcript()
    [tx] = good.delivered()
    assert tx.tls
    assert bad.connections, "the preferred MX was never tried"
    # doc/chamoisd.8 METRICS: one session failed the policy, one met it
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as m:
        page = m.read().decode()
    for result, n in (("success", 1), ("failure", 1)):
        line = 'chamois_tls_policy_sessions_total{policy="dane",result="%s"} %d' % (
            result, n)
        assert line in page, page


def ta_remote(env, name):
    """mx1.dane.test with a TLSA 2 1 1 of a test CA, presenting that CA's
    leaf for name and the CA itself (DANE-TA: the anchor is in the chain)."""
    ca = TestCA(env.dir / "ta")
    cert, key = ca.leaf(env.dir / "ta-leaf", name)
    chain = Path(env.dir / "ta-leaf" / "chain.pem")
    chain.write_text(Path(cert).read_text() + Path(ca.cert).read_text())
    r = mx(env, env.signed, "dane.test", 1, starttls=True, tls_cert=(str(chain), key))
    env.signed.tlsa("mx1.dane.test", env.remote_port, "2 1 1 " + spki_sha256(ca.cert))
    return r


def test_forward_dane_ta_usage_2_verifies_the_chain(env):
    r = ta_remote(env, "mx1.dane.test")
    d = forward_daemon(env)
    out = forward(d)
    assert_reply(out["eod"], "250")
    assert r.delivered()[0].tls
    assert "dane=verified tlsa=2.1.1" in d.log(), d.log()[-3000:]


def test_forward_dane_ta_wrong_name_refused(env):
    r = ta_remote(env, "other.dane.test")
    d = forward_daemon(env)
    out = forward(d)
    assert_reply(out["rcpt"][0], "451 4.7.5")
    assert no_mail_sent(r), r.transcript()


def test_forward_bogus_tlsa_is_not_a_way_around_dane(env):
    """TLSA whose signatures were stripped do not validate: the host is
    not used at all (RFC 7672 2.2.2), neither in plaintext nor unverified."""
    cert, key = self_signed(env)
    r = mx(env, env.signed, "dane.test", 1, starttls=False)
    tlsa_ee(env, "mx1.dane.test", cert)
    env.signed.strip_signatures("TLSA")
    d = forward_daemon(env)
    out = forward(d)
    assert_reply(out["rcpt"][0], "451 4.7.5")
    assert not r.connections, r.transcript()
    assert re.search(r"tls-policy-failed domain=dane\.test policy=dane .*TLSA look-up "
                     r"failed", d.log()), d.log()[-3000:]


def test_forward_no_mx_the_domains_own_tlsa(env):
    """A signed domain without MX: its own address and its own TLSA
    (RFC 7672 2.2.1)."""
    cert, _ = self_signed(env)
    r = env.remotes.add("dane.test", hostname="dane.test", starttls=True,
                        tls_cert=other_cert(env, "dane.test"))
    env.signed.a("dane.test", r.address)
    tlsa_ee(env, "dane.test", cert)
    d = forward_daemon(env)
    out = forward(d)
    assert_reply(out["rcpt"][0], "451 4.7.5")
    assert no_mail_sent(r), r.transcript()


def test_signed_mx_without_tlsa_stays_opportunistic(env):
    r = mx(env, env.signed, "dane.test", 1, starttls=False)
    d = forward_daemon(env)
    out = forward(d)
    assert_reply(out["eod"], "250")
    assert not r.delivered()[0].tls
    assert "tls-policy-failed" not in d.log()


def test_insecure_zone_tlsa_is_not_dane(env):
    plain = env.dns.zone("insecure.test", signed=False)
    r = mx(env, plain, "insecure.test", 1, starttls=False)
    plain.tlsa("mx1.insecure.test", env.remote_port, "3 1 1 " + "00" * 32)
    d = forward_daemon(env)
    out = forward(d, "plain@example.test")
    assert_reply(out["eod"], "250")
    assert not r.delivered()[0].tls
    assert "tls-policy-failed" not in d.log()


def test_dane_no_keeps_tls_opportunistic(env):
    cert, _ = self_signed(env)
    r = mx(env, env.signed, "dane.test", 1, starttls=False)
    tlsa_ee(env, "mx1.dane.test", cert)
    d = forward_daemon(env, "dane no")
    out = forward(d)
    assert_reply(out["eod"], "250")
    assert r.delivered()


# --------------------------------------------------------------------------
# the queue path


def queue_daemon(env):
    return wait_ready(env.daemon(mailboxes=MAILBOXES))


def queue_message(subject):
    return ("From: Alice <alice@example.test>\nTo: carol@dane.test\n"
            "Subject: %s\nMessage-ID: <%s@example.test>\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n\nhello\n"
            % (subject, subject.replace(" ", "")))


def test_queue_tlsa_mismatch_defers_and_chamoisctl_says_why(env, qbins):
    cert, _ = self_signed(env)
    r = mx(env, env.signed, "dane.test", 1, starttls=True,
           tls_cert=other_cert(env, "mx1.dane.test"))
    tlsa_ee(env, "mx1.dane.test", cert)
    d = queue_daemon(env)
    sendmail_ok(qbins, d, ["carol@dane.test"], queue_message("dane mismatch"),
                sender="alice@example.test")
    msgs = wait_queue(qbins, d, lambda m: all_deferred(m, 1), "the recipient deferred")
    (m,) = msgs.values()
    (rc,) = m["rcpts"]
    assert "4.7.5" in rc["reply"] and "dane.test" in rc["reply"], rc
    assert "dane" in rc["reply"] and "TLSA" in rc["reply"], rc
    assert no_mail_sent(r), r.transcript()
    assert re.search(r"to=<carol@dane\.test> .*status=deferred", d.log()), d.log()[-3000:]


def test_queue_tlsa_match_delivers(env, qbins):
    cert, key = self_signed(env)
    r = mx(env, env.signed, "dane.test", 1, starttls=True, tls_cert=(cert, key))
    tlsa_ee(env, "mx1.dane.test", cert)
    d = queue_daemon(env)
    sendmail_ok(qbins, d, ["carol@dane.test"], queue_message("dane match"),
                sender="alice@example.test")
    wait_until(lambda: r.delivered(), 20, what="delivery")
    wait_empty(qbins, d)
    assert r.delivered()[0].tls
    assert "dane=verified" in d.log()

"""TLS-RPT (RFC 8460; doc/security.md "TLS-RPT"; chamois.conf(5) tlsrpt).

The sessions under DANE are counted per policy domain; `chamoisctl tlsrpt
send` takes the counts and mails, through the queue, one report per
domain that publishes _smtp._tls to its mailto: rua.  The DNS is the
signed test zone of test_dane.py (nsd + unbound, peers/dnssec.py); the
remotes are aiosmtpd servers (peers/remote.py), one with the TLSA's
certificate, one with another.  What arrives is taken apart as a
receiver would: the multipart/report, the gzip'ed JSON.
"""

import base64
import email
import email.policy
import gzip
import json
import re

import pytest

import harness
from harness import sample_message, wait_until
from peers import dnssec
from peers.dnssec import SignedDNS, spki_sha256
from peers.queue_util import ctl_ok, qbins, wait_empty  # noqa: F401
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401
from peers.tlsca import TestCA

ALIASES = {"fwd@example.test": ["carol@dane.test"]}
CONF = "forward_rcpt_budget 20s\nforward_data_budget 20s"
RUA = "tlsrpt@dane.test"


@pytest.fixture
def env(fwd_env, tmp_path):
    why = dnssec.available()
    if why:
        pytest.skip(why)
    fwd_env.dns = SignedDNS(tmp_path / "dnssec")
    fwd_env.signed = fwd_env.dns.zone("dane.test")
    return fwd_env


def mx(env, n, preference, cert):
    host = "mx%d.dane.test" % n
    r = env.remotes.add(host, hostname=host, starttls=True, tls_cert=cert)
    env.signed.mx("dane.test", host, preference)
    env.signed.a(host, r.address)
    return r


def two_mx(env):
    """mx1 (preferred) presents a certificate that matches no TLSA, mx2 the
    right one: a forward to dane.test makes one failed and one successful
    DANE session."""
    cert, key = harness.make_cert(env.dir / "ee")
    other = TestCA(env.dir / "other-ca").leaf(env.dir / "other", "mx1.dane.test")
    bad = mx(env, 1, 10, other)
    good = mx(env, 2, 20, (cert, key))
    for host in ("mx1.dane.test", "mx2.dane.test"):
        env.signed.tlsa(host, env.remote_port, "3 1 1 " + spki_sha256(cert))
    return bad, good


def forward_one(d):
    out = transaction(d, "joe@sender.test", ["fwd@example.test"],
                      sample_message("tlsrpt"))
    assert_reply(out["eod"], "250")


def report_of(tx):
    """(the message, the JSON) of a report mail as it arrived."""
    msg = email.message_from_bytes(tx.content, policy=email.policy.compat32)
    parts = [p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
    assert len(parts) == 1, msg.as_string()[:3000]
    raw = gzip.decompress(base64.b64decode(parts[0].get_payload()))
    return msg, json.loads(raw)


def reports_at(r):
    return [tx for tx in r.delivered() if any(a == RUA for a in tx.accepted)]


def test_dane_report_counts_a_failure_and_a_success(env, qbins):
    bad, good = two_mx(env)
    env.signed._add("_smtp._tls.dane.test", "TXT", '"v=TLSRPTv1; rua=mailto:%s"' % RUA)
    d = env.daemon(aliases=ALIASES, extra_conf=CONF + "\ntlsrpt_submitter reports.example.test")
    forward_one(d)
    assert "reporting on 1 policy domain" in ctl_ok(qbins, d, "tlsrpt", "send")
    wait_until(lambda: reports_at(good), 30, what="the report at the rua")
    [tx] = reports_at(good)
    assert tx.mail_from == "", tx      # nobody answers a report (RFC 8460 5.3)
    msg, rep = report_of(tx)

    # RFC 8460 5.3: the header fields
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "tlsrpt"
    assert msg["TLS-Report-Domain"] == "dane.test"
    assert msg["TLS-Report-Submitter"] == "reports.example.test"
    assert re.fullmatch(r"Report Domain: dane\.test Submitter: reports\.example\.test "
                        r"Report-ID: <[^<>]+>", " ".join(msg["Subject"].split())), msg["Subject"]
    assert "<%s>" % rep["report-id"] in msg["Subject"]

    # RFC 8460 4.4: the report
    assert rep["organization-name"] == "reports.example.test"
    assert rep["contact-info"] == "postmaster@mx.example.test"
    assert set(rep["date-range"]) == {"start-datetime", "end-datetime"}
    pol = {p["policy"]["mx-host"]: p for p in rep["policies"]}
    assert set(pol) == {"mx1.dane.test", "mx2.dane.test"}, rep
    for p in rep["policies"]:
        assert p["policy"]["policy-type"] == "tlsa"
        assert p["policy"]["policy-domain"] == "dane.test"
        assert p["policy"]["policy-string"][0].startswith("3 1 1 "), p
    assert pol["mx1.dane.test"]["summary"] == {"total-successful-session-count": 0,
                                               "total-failure-session-count": 1}
    assert pol["mx2.dane.test"]["summary"] == {"total-successful-session-count": 1,
                                               "total-failure-session-count": 0}
    [f] = pol["mx1.dane.test"]["failure-details"]
    assert f["result-type"] == "validation-failure", f
    assert f["receiving-mx-hostname"] == "mx1.dane.test"
    assert f["receiving-ip"] == bad.address
    assert f["sending-mta-ip"].startswith("127."), f
    assert f["failed-session-count"] == 1
    assert "failure-details" not in pol["mx2.dane.test"]

    # the report's own sessions (mx1 failing, then mx2) are not counted
    wait_empty(qbins, d)
    assert "reporting on 0 policy domains" in ctl_ok(qbins, d, "tlsrpt", "send")


def test_domain_without_tlsrpt_record_gets_no_report(env, qbins):
    bad, good = two_mx(env)
    d = env.daemon(aliases=ALIASES, extra_conf=CONF)
    forward_one(d)
    assert "reporting on 1 policy domain" in ctl_ok(qbins, d, "tlsrpt", "send")
    wait_until(lambda: "tlsrpt domain=dane.test no report" in d.log(), 30,
               what="the look-up's end")
    assert "no _smtp._tls TLSRPT record" in d.log()
    wait_empty(qbins, d)
    assert len(good.delivered()) == 1 and not reports_at(good)
    assert not bad.delivered()


def test_counts_survive_a_restart(env, qbins):
    bad, good = two_mx(env)
    env.signed._add("_smtp._tls.dane.test", "TXT", '"v=TLSRPTv1; rua=mailto:%s"' % RUA)
    d = env.daemon(aliases=ALIASES, extra_conf=CONF)
    forward_one(d)
    d.stop()
    d.start()
    assert "reporting on 1 policy domain" in ctl_ok(qbins, d, "tlsrpt", "send")
    wait_until(lambda: reports_at(good), 30, what="the report at the rua")
    _, rep = report_of(reports_at(good)[0])
    totals = [(p["summary"]["total-successful-session-count"],
               p["summary"]["total-failure-session-count"]) for p in rep["policies"]]
    assert sorted(totals) == [(0, 1), (1, 0)], rep



def test_chamoisctl_dns_prints_our_tlsrpt_record_with_tlsrpt_rua(fwd_env, qbins):
    """SPEC's "TLS-RPT where configured": each local domain's _smtp._tls
    record (RFC 8460 3) when tlsrpt_rua says where reports go; none without."""
    plain = fwd_env.daemon(dns=False, start=False)
    assert "_smtp._tls" not in ctl_ok(qbins, plain, "dns")
    d = fwd_env.daemon(dns=False, start=False,
                       extra_conf="tlsrpt_rua tls-reports@example.test")
    out = ctl_ok(qbins, d, "dns").splitlines()
    domains = [l[2:] for l in out if l.startswith("; ") and ":" not in l]
    assert domains, out
    for dom in domains:
        line = '_smtp._tls.%s. TXT "v=TLSRPTv1; rua=mailto:tls-reports@example.test"' % dom
        assert line in out, out

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
import http.server
import json
import re
import time

import harness
from harness import sample_message, wait_until
from peers.dnssec import spki_sha256
from peers.queue_util import MAILBOXES, ctl_ok, qbins, sendmail_ok, wait_empty  # noqa: F401
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401
from peers.https import HTTPSServer
from peers.tlsca import TestCA
from test_dane import env, mx  # noqa: F401 (env: the signed zone dane.test)
from test_mta_sts import ALIASES as STS_ALIASES, daemon as sts_daemon, forward as sts_forward
from test_mta_sts import policy, remote as sts_remote, sts  # noqa: F401

ALIASES = {"fwd@example.test": ["carol@dane.test"]}
CONF = "forward_rcpt_budget 20s\nforward_data_budget 20s"
RUA = "tlsrpt@dane.test"
REPORTS_ADDRESS = "127.0.0.22"      # not one of the remotes' (peers/remote.py)


def two_mx(env):
    """mx1 (preferred) presents a certificate that matches no TLSA, mx2 the
    right one: a forward to dane.test makes one failed and one successful
    DANE session."""
    cert, key = harness.make_cert(env.dir / "ee")
    other = TestCA(env.dir / "other-ca").leaf(env.dir / "other", "mx1.dane.test")
    bad = mx(env, env.signed, "dane.test", 1, preference=10, starttls=True,
             tls_cert=other)
    good = mx(env, env.signed, "dane.test", 2, preference=20, starttls=True,
              tls_cert=(cert, key))
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


def reports_at(*remotes):
    """The report mails the remotes took (any MX of the rua's domain: a
    report goes despite TLS failures, RFC 8460 5.3)."""
    return [tx for r in remotes for tx in r.delivered() if any(a == RUA for a in tx.accepted)]


def test_dane_report_counts_a_failure_and_a_success(env, qbins):
    bad, good = two_mx(env)
    env.signed._add("_smtp._tls.dane.test", "TXT", '"v=TLSRPTv1; rua=mailto:%s"' % RUA)
    d = env.daemon(aliases=ALIASES, extra_conf=CONF + "\ntlsrpt_submitter reports.example.test")
    forward_one(d)
    assert "reporting on 1 policy domain" in ctl_ok(qbins, d, "tlsrpt", "send")
    # RFC 8460 5.3: the report is delivered despite TLS failures, so
    # neither DANE holds it: mx1, preferred, takes it with the certificate
    # that fails DANE (the message itself went to mx2 only)
    wait_until(lambda: reports_at(bad), 30, what="the report at the rua")
    [tx] = reports_at(bad)
    assert not reports_at(good)
    assert not [t for t in bad.delivered() if t not in reports_at(bad)]
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

    # the report's own session is not counted
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
    wait_until(lambda: reports_at(bad, good), 30, what="the report at the rua")
    _, rep = report_of(reports_at(bad, good)[0])
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


class ReportServer:
    """https://reports.dane.test:PORT/, keeping what is POSTed to it."""

    def __init__(self, cert, key):
        self.posts = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                outer.posts.append((self.path, dict(self.headers), self.rfile.read(n)))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = HTTPSServer(REPORTS_ADDRESS, cert, key, Handler)
        self.port = self.server.port

    def stop(self):
        self.server.stop()


def test_https_rua_gets_the_report_posted(env, qbins):
    """RFC 8460 5.4: the gzip'ed JSON POSTed as application/tlsrpt+gzip,
    the server's certificate verified for its name (tls_ca_file)."""
    bad, good = two_mx(env)
    ca = TestCA(env.dir / "ca")
    server = ReportServer(*ca.leaf(env.dir / "reports", "reports.dane.test"))
    try:
        env.signed.a("reports.dane.test", REPORTS_ADDRESS)
        env.signed._add("_smtp._tls.dane.test", "TXT",
                        '"v=TLSRPTv1; rua=https://reports.dane.test:%d/v1/tlsrpt"'
                        % server.port)
        d = env.daemon(aliases=ALIASES, extra_conf=CONF + "\ntls_ca_file %s" % ca.cert)
        forward_one(d)
        assert "reporting on 1 policy domain" in ctl_ok(qbins, d, "tlsrpt", "send")
        wait_until(lambda: "tlsrpt report posted" in d.log(), 30, what="the POST")
        [(path, headers, body)] = server.posts
    finally:
        server.stop()
    assert path == "/v1/tlsrpt"
    assert headers["Content-Type"] == "application/tlsrpt+gzip"
    assert headers["Host"] == "reports.dane.test"
    rep = json.loads(gzip.decompress(body))
    assert {p["policy"]["mx-host"]: p["summary"]["total-failure-session-count"]
            for p in rep["policies"]} == {"mx1.dane.test": 1, "mx2.dane.test": 0}
    assert "status=201" in d.log()
    assert not reports_at(good)


def test_queue_sessions_are_counted_too(env, qbins):
    bad, good = two_mx(env)
    env.signed._add("_smtp._tls.dane.test", "TXT", '"v=TLSRPTv1; rua=mailto:%s"' % RUA)
    d = env.daemon(mailboxes=MAILBOXES)
    sendmail_ok(qbins, d, ["carol@dane.test"],
                "From: alice@example.test\nTo: carol@dane.test\nSubject: q\n\nhello\n",
                sender="alice@example.test")
    wait_until(lambda: good.delivered(), 30, what="the delivery")
    wait_empty(qbins, d)
    assert "reporting on 1 policy domain" in ctl_ok(qbins, d, "tlsrpt", "send")
    wait_until(lambda: reports_at(bad, good), 30, what="the report at the rua")
    _, rep = report_of(reports_at(bad, good)[0])
    assert {p["policy"]["mx-host"]: (p["summary"]["total-successful-session-count"],
                                     p["summary"]["total-failure-session-count"])
            for p in rep["policies"]} == {"mx1.dane.test": (0, 1), "mx2.dane.test": (1, 0)}


def test_mta_sts_failure_is_reported_as_an_sts_policy(fwd_env, sts, tmp_path, qbins):
    """An MTA-STS enforce domain whose MX has a certificate no CA signed:
    the forward gets 451 4.7.5, the report says certificate-not-trusted."""
    ca, start = sts
    r = sts_remote(fwd_env, ca, tmp_path, good_cert=False)       # self-signed
    server = start(policy())
    reports = fwd_env.remote("reports.test")
    fwd_env.dns.raw("--txt-record=_smtp._tls.sts.test,v=TLSRPTv1; "
                    "rua=mailto:tlsrpt@reports.test")
    d = sts_daemon(fwd_env, ca, server, aliases=STS_ALIASES)
    assert_reply(sts_forward(d)["rcpt"][0], "451 4.7.5")
    assert "reporting on 1 policy domain" in ctl_ok(qbins, d, "tlsrpt", "send")
    wait_until(lambda: reports.delivered(), 30, what="the report")
    _, rep = report_of(reports.delivered()[0])
    [p] = rep["policies"]
    assert p["policy"]["policy-type"] == "sts"
    assert p["policy"]["policy-domain"] == "sts.test"
    assert p["policy"]["mx-host"] == "mx1.sts.test"
    assert p["summary"] == {"total-successful-session-count": 0,
                            "total-failure-session-count": 1}
    [f] = p["failure-details"]
    assert f["result-type"] == "certificate-not-trusted", f
    assert f["receiving-mx-hostname"] == "mx1.sts.test"
    assert not r.delivered()


def test_counts_of_a_day_gone_are_reported_at_start(env, qbins):
    """Counts left in queue_dir/tlsrpt/counts from a day before the start
    go out by themselves (the day boundary's path), the date-range that
    whole UTC day."""
    bad, good = two_mx(env)
    env.signed._add("_smtp._tls.dane.test", "TXT", '"v=TLSRPTv1; rua=mailto:%s"' % RUA)
    d = env.daemon(aliases=ALIASES, extra_conf=CONF, start=False)
    day = (int(time.time()) // 86400 - 1) * 86400
    (d.queue_dir / "tlsrpt").mkdir(parents=True, exist_ok=True)
    (d.queue_dir / "tlsrpt" / "counts").write_text(
        "tlsrpt 1 %d\nd dane.test\np tlsa 7 2 mx9.dane.test 3%%201%%201%%20ab\n"
        "f starttls-not-supported 2 192.0.2.1 - mx9.dane.test no%%20STARTTLS\n"
        % (day + 3600))
    d.start()
    wait_until(lambda: reports_at(bad, good), 30, what="the report at the rua")
    _, rep = report_of(reports_at(bad, good)[0])
    ymd = time.strftime("%Y-%m-%d", time.gmtime(day))
    assert rep["date-range"] == {"start-datetime": ymd + "T00:00:00Z",
                                 "end-datetime": ymd + "T23:59:59Z"}, rep
    [p] = rep["policies"]
    assert p["policy"]["mx-host"] == "mx9.dane.test"
    assert p["policy"]["policy-string"] == ["3 1 1 ab"]
    assert p["summary"] == {"total-successful-session-count": 7,
                            "total-failure-session-count": 2}
    assert p["failure-details"] == [{
        "result-type": "starttls-not-supported", "sending-mta-ip": "192.0.2.1",
        "receiving-mx-hostname": "mx9.dane.test", "failed-session-count": 2,
        "failure-reason-code": "no STARTTLS"}]

"""MTA-STS on both outbound paths (RFC 8461; doc/security.md "Outbound
TLS"; chamois.conf(5) mta_sts, testing_mta_sts_port).

The _mta-sts TXT record and the MX come from the test's dnsmasq; the
policy is served over HTTPS by a Python server on loopback with a
certificate of a test CA, which chamoisd trusts through tls_ca_file, as it
does the remotes' certificates.  An enforce policy lets mail go only to
the policy's MX names over verified TLS: else a forward gets 451 4.7.5 at
RCPT and the queue defers; a testing policy only logs.
"""

import http.server
import re
import threading
from pathlib import Path

import pytest

import harness
from harness import sample_message, wait_until
from peers.https import HTTPSServer
from peers.queue_util import (  # noqa: F401
    MAILBOXES, qbins, all_deferred, sendmail_ok, wait_empty, wait_queue, wait_ready)
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401
from peers.tlsca import TestCA

POLICY_ADDRESS = "127.0.0.21"       # not one of the remotes' (peers/remote.py)
ALIASES = {"fwd@example.test": ["carol@sts.test"]}
BUDGETS = "forward_rcpt_budget 20s\nforward_data_budget 20s"


class PolicyServer:
    """https://mta-sts.sts.test/.well-known/mta-sts.txt on POLICY_ADDRESS."""

    def __init__(self, cert, key, text):
        self.text = text
        self.requests = []
        self.hold = threading.Event()       # cleared: answers wait for set()
        self.hold.set()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Host")))
                outer.hold.wait(30)
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                body = outer.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = HTTPSServer(POLICY_ADDRESS, cert, key, Handler)
        self.port = self.server.port

    def stop(self):
        self.hold.set()
        self.server.stop()


@pytest.fixture
def sts(fwd_env, tmp_path):
    """(ca, start_policy(text, policy_cert=None)) with the TXT record set."""
    ca = TestCA(tmp_path / "ca")
    servers = []

    def start(text, txt_id="20261203", cert=None):
        if cert is None:
            cert = ca.leaf(tmp_path / "policy", "mta-sts.sts.test")
        fwd_env.dns.address("mta-sts.sts.test", POLICY_ADDRESS)
        fwd_env.dns.raw("--txt-record=_mta-sts.sts.test,v=STSv1; id=%s" % txt_id)
        s = PolicyServer(cert[0], cert[1], text)
        servers.append(s)
        return s

    yield ca, start
    for s in servers:
        s.stop()


def policy(mode="enforce", mx=("mx1.sts.test",), max_age=86400):
    return ("version: STSv1\r\nmode: %s\r\n" % mode
            + "".join("mx: %s\r\n" % m for m in mx)
            + "max_age: %d\r\n" % max_age)


def remote(fwd_env, ca, tmp_path, good_cert=True, **kw):
    """mx1.sts.test, with a certificate of the test CA (or self-signed)."""
    if good_cert:
        kw.setdefault("tls_cert", ca.leaf(tmp_path / "mx1", "mx1.sts.test"))
    kw.setdefault("starttls", True)
    return fwd_env.remote("sts.test", **kw)


def daemon(fwd_env, ca, server, extra="", **kw):
    conf = "tls_ca_file %s\ntesting_mta_sts_port %d\n%s" % (ca.cert, server.port, extra)
    return fwd_env.daemon(extra_conf=BUDGETS + "\n" + conf, **kw)


def forward(d):
    return transaction(d, "joe@sender.test", ["fwd@example.test"], sample_message("sts"))


def no_mail_sent(r):
    return all(verb != "MAIL" for c in r.connections for verb, _ in c.commands)


def forward_case(fwd_env, sts, tmp_path, text, extra="", policy_cert=None, **remote_kw):
    """mx1.sts.test, the policy text served, a daemon forwarding
    fwd@example.test to it, one forward: (remote, server, daemon, out)."""
    ca, start = sts
    r = remote(fwd_env, ca, tmp_path, **remote_kw)
    server = start(text, cert=policy_cert)
    d = daemon(fwd_env, ca, server, extra, aliases=ALIASES)
    return r, server, d, forward(d)


def test_enforce_verified_tls_to_a_policy_mx_delivers(fwd_env, sts, tmp_path):
    r, server, d, out = forward_case(fwd_env, sts, tmp_path, policy())
    assert_reply(out["eod"], "250")
    assert r.delivered()[0].tls
    assert server.requests == [("/.well-known/mta-sts.txt", "mta-sts.sts.test")]
    assert re.search(r"client tls host=mx1\.sts\.test .* mta-sts=verified", d.log()), \
        d.log()[-3000:]
    # cached in queue_dir for max_age (doc/security.md)
    cached = Path(d.queue_dir / "mta-sts" / "sts.test")
    wait_until(cached.exists, 10, what="the cached policy file")
    assert "id 20261203" in cached.read_text()


def test_enforce_mx_not_in_policy_gets_451_4_7_5(fwd_env, sts, tmp_path):
    r, server, d, out = forward_case(fwd_env, sts, tmp_path, policy(mx=("mail.elsewhere.test",)))
    assert_reply(out["rcpt"][0], "451 4.7.5")
    assert not r.connections, r.transcript()
    assert re.search(r"tls-policy-failed domain=sts\.test policy=mta-sts .*not an mx "
                     r"of the policy", d.log()), d.log()[-3000:]


def test_enforce_wildcard_mx_matches_one_label(fwd_env, sts, tmp_path):
    r, server, d, out = forward_case(fwd_env, sts, tmp_path, policy(mx=("*.sts.test",)))
    assert_reply(out["eod"], "250")
    assert r.delivered()[0].tls


def test_enforce_unverified_certificate_gets_451_4_7_5(fwd_env, sts, tmp_path):
    ca, start = sts
    r = remote(fwd_env, ca, tmp_path, good_cert=False)      # self-signed
    server = start(policy())
    d = daemon(fwd_env, ca, server, aliases=ALIASES)
    out = forward(d)
    assert_reply(out["rcpt"][0], "451 4.7.5")
    assert no_mail_sent(r), r.transcript()
    assert re.search(r"policy=mta-sts .*does not verify", d.log()), d.log()[-3000:]


def test_enforce_stripped_starttls_gets_451_4_7_5(fwd_env, sts, tmp_path):
    r, server, d, out = forward_case(fwd_env, sts, tmp_path, policy(), starttls=False)
    assert_reply(out["rcpt"][0], "451 4.7.5")
    assert no_mail_sent(r), r.transcript()


def test_testing_mode_only_logs(fwd_env, sts, tmp_path):
    r, server, d, out = forward_case(fwd_env, sts, tmp_path, policy(mode="testing"),
                                     good_cert=False)
    assert_reply(out["eod"], "250")
    assert r.delivered()
    assert re.search(r"policy-testing policy=mta-sts host=mx1\.sts\.test .*does not "
                     r"verify", d.log()), d.log()[-3000:]


def test_policy_with_unverified_certificate_is_no_policy(fwd_env, sts, tmp_path):
    """A policy served with a certificate chamoisd cannot verify does not
    count (RFC 8461 3.3): mail goes as it would without one."""
    r, server, d, out = forward_case(
        fwd_env, sts, tmp_path, policy(), starttls=False,
        policy_cert=harness.make_cert(tmp_path / "selfsigned"))
    assert_reply(out["eod"], "250")
    assert r.delivered()
    assert "policy fetch failed" in d.log(), d.log()[-3000:]


def test_cached_policy_outlives_the_policy_server(fwd_env, sts, tmp_path):
    r, server, d, out = forward_case(fwd_env, sts, tmp_path, policy(), starttls=False)
    assert_reply(out["rcpt"][0], "451 4.7.5")
    server.stop()
    d.stop()
    d.start()          # the policy comes from queue_dir now
    out = forward(d)
    assert_reply(out["rcpt"][0], "451 4.7.5")
    assert no_mail_sent(r), r.transcript()
    assert len(server.requests) == 1


def test_new_txt_id_fetches_the_policy_again(fwd_env, sts, tmp_path):
    """RFC 8461 3.1: the cached policy stands until the TXT id changes."""
    ca, start = sts
    r = remote(fwd_env, ca, tmp_path)
    server = start(policy(mx=("mail.elsewhere.test",)), txt_id="one")
    d = daemon(fwd_env, ca, server, aliases=ALIASES)
    assert_reply(forward(d)["rcpt"][0], "451 4.7.5")
    server.text = policy()                      # now mx1 is a policy MX
    assert_reply(forward(d)["rcpt"][0], "451 4.7.5")    # same id: the cache
    assert len(server.requests) == 1
    # the same records but the id, on the same port (dnsmasq's are fixed at start)
    fwd_env.dns.stop()
    fwd_env.dns.records = [x.replace("id=one", "id=two") for x in fwd_env.dns.records]
    fwd_env.dns.fixed_port = fwd_env.dns.port
    fwd_env.dns.start()
    out = forward(d)
    assert_reply(out["eod"], "250")
    assert len(server.requests) == 2
    assert r.delivered()[0].tls
    cached = Path(d.queue_dir / "mta-sts" / "sts.test")
    wait_until(lambda: "id two" in cached.read_text(), 10, what="the new id cached")


def test_one_policy_fetch_for_look_ups_at_once(fwd_env, sts, tmp_path):
    """A second look-up while the policy is being fetched waits for that
    fetch: one HTTPS request however many messages go to the domain."""
    ca, start = sts
    r = remote(fwd_env, ca, tmp_path)
    server = start(policy())
    server.hold.clear()
    d = daemon(fwd_env, ca, server, aliases=ALIASES)
    results = []
    first = threading.Thread(target=lambda: results.append(forward(d)))
    first.start()
    second = None
    try:
        wait_until(lambda: len(server.requests) == 1, 20, what="the first fetch")
        second = threading.Thread(target=lambda: results.append(forward(d)))
        second.start()
        harness.wait_log_match(d.log, r"policy fetch in flight, waiting for it", 20)
    finally:
        server.hold.set()
        first.join(60)
        if second is not None:
            second.join(60)
    assert len(results) == 2
    for out in results:
        assert_reply(out["eod"], "250")
    assert len(server.requests) == 1
    assert len(r.delivered()) == 2


def test_mta_sts_no_ignores_the_policy(fwd_env, sts, tmp_path):
    r, server, d, out = forward_case(fwd_env, sts, tmp_path, policy(), extra="mta_sts no",
                                     starttls=False)
    assert_reply(out["eod"], "250")
    assert r.delivered()
    assert server.requests == []


def queue_message(subject):
    return ("From: Alice <alice@example.test>\nTo: carol@sts.test\n"
            "Subject: %s\nMessage-ID: <%s@example.test>\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n\nhello\n"
            % (subject, subject.replace(" ", "")))


def test_queue_enforce_unverified_defers_with_reason(fwd_env, sts, tmp_path, qbins):
    ca, start = sts
    r = remote(fwd_env, ca, tmp_path, good_cert=False)
    server = start(policy())
    d = wait_ready(daemon(fwd_env, ca, server, mailboxes=MAILBOXES))
    sendmail_ok(qbins, d, ["carol@sts.test"], queue_message("sts defer"),
                sender="alice@example.test")
    msgs = wait_queue(qbins, d, lambda m: all_deferred(m, 1), "the recipient deferred")
    (m,) = msgs.values()
    (rc,) = m["rcpts"]
    assert rc["reply"].startswith("451 4.7.5 TLS policy of sts.test failed: mta-sts:"), rc
    assert no_mail_sent(r), r.transcript()


def test_queue_enforce_verified_delivers(fwd_env, sts, tmp_path, qbins):
    ca, start = sts
    r = remote(fwd_env, ca, tmp_path)
    server = start(policy())
    d = wait_ready(daemon(fwd_env, ca, server, mailboxes=MAILBOXES))
    sendmail_ok(qbins, d, ["carol@sts.test"], queue_message("sts ok"),
                sender="alice@example.test")
    wait_until(lambda: r.delivered(), 20, what="delivery")
    wait_empty(qbins, d)
    assert r.delivered()[0].tls

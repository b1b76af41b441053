"""mx role: SPF, DKIM and DMARC on what the world sends, end to end (SPEC 7
"Checking what the world sends"; doc/forwarding.md "Checks").  A real
chamoisd, a dnsmasq serving the records, messages signed by dkimpy, aiosmtpd
remotes as forwarding targets (peers/remote.py) and Exim as a sending MTA.

The zone (the client is always 127.0.0.1):

    sender.test     SPF "ip4:127.0.0.1 -all", DMARC p=reject, key sel._domainkey
    reject.test     SPF "-all", DMARC p=reject
    softpol.test    SPF "-all", DMARC p=none
    tempfail.test   every question goes to a dead server (SERVFAIL)
    evil.test       nothing (NXDOMAIN)
    example.test    ours (domains), no records
"""

import base64
import re
import subprocess

import dkim
import pytest

from harness import (ROOT, crlf, dead_port, delivered_auth_results, split_delivered,
                     wait_until)
from peers.exim import exim_available, exims  # noqa: F401 (fixtures)
from peers.queue_util import qbins, sendmail_ok, wait_ready  # noqa: F401
from peers.remote import assert_reply, fwd_env, split_first_header, transaction  # noqa: F401

ALIASES = {"fwd@example.test": ["carol@remote.test"]}
BUDGETS = "forward_rcpt_budget 10s\nforward_data_budget 10s"
HOST = "mx.example.test"


def txt(dns, name, text):
    parts = [text[i:i + 250] for i in range(0, len(text), 250)]
    dns.raw("--txt-record=%s,%s" % (name, ",".join(parts)))


@pytest.fixture
def env(fwd_env, tmp_path):
    """fwd_env with the zone above, a remote for remote.test and a daemon;
    env.key is sender.test's DKIM key (PEM)."""
    key = tmp_path / "dkim.key"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"],
                   check=True, stderr=subprocess.DEVNULL, timeout=60)
    pub = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         timeout=60).stdout
    dns = fwd_env.dns
    txt(dns, "sender.test", "v=spf1 ip4:127.0.0.1 -all")
    txt(dns, "_dmarc.sender.test", "v=DMARC1; p=reject")
    txt(dns, "sel._domainkey.sender.test", "v=DKIM1; k=rsa; p=" + base64.b64encode(pub).decode())
    txt(dns, "reject.test", "v=spf1 -all")
    txt(dns, "_dmarc.reject.test", "v=DMARC1; p=reject")
    txt(dns, "softpol.test", "v=spf1 -all")
    txt(dns, "_dmarc.softpol.test", "v=DMARC1; p=none")
    dns.raw("--server=/tempfail.test/127.0.0.1#%d" % dead_port())
    fwd_env.key = key.read_bytes()
    fwd_env.r = fwd_env.remote("remote.test")
    return fwd_env


def daemon(env, extra_conf=""):
    return env.daemon(aliases=ALIASES, extra_conf=BUDGETS + "\n" + extra_conf)


def message(sender, subject, extra=""):
    return crlf("From: Someone <%s>\nTo: whoever@example.test\nSubject: %s\n"
                "Message-ID: <%s@checks.test>\nDate: Thu, 01 Jan 2026 00:00:00 +0000\n"
                "%s\nHello.\n" % (sender, subject, re.sub(r"\W", "", subject), extra))


def signed(env, msg):
    sig = dkim.sign(msg, b"sel", b"sender.test", env.key,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig + msg


def unfold(b):
    return re.sub(rb"\s+", b" ", b).strip().decode("utf-8", "replace")


def results_of(ar):
    """{method: result} of an Authentication-Results value."""
    return dict(re.findall(r"\b(spf|dkim|dmarc)=(\w+)", ar))


def local_copy(d, address="alice@example.test"):
    [content] = d.wait_messages(address, 1)
    return content


def forwarded_copy(env):
    """The remote's one delivered copy: (our A-R value, our Received, the rest)."""
    wait_until(lambda: env.r.delivered(), 15, what="the forwarded copy")
    [tx] = env.r.delivered()
    ar, rest = split_first_header(tx.content)
    assert ar.startswith(b"Authentication-Results: %s;" % HOST.encode()), ar
    received, rest = split_first_header(rest)
    assert received.startswith(b"Received: "), received
    return unfold(ar.partition(b":")[2]), received, rest


def assert_no_completed_message(env):
    """The target never completed a message: its transaction got DATA (the
    forward held the body) but never a final dot, and nothing was kept."""
    env.remotes.settle()
    assert env.r.completed_data() == [], env.r.transcript()
    assert any(t.data_started for t in env.r.transactions()), env.r.transcript()


# -- a message that passes -----------------------------------------------------


def test_signed_message_passes_locally(env):
    d = daemon(env)
    msg = signed(env, message("joe@sender.test", "signed local"))
    out = transaction(d, "joe@sender.test", ["alice@example.test"], msg)
    assert_reply(out["eod"], "250 2.0.0")
    content = local_copy(d)
    # Return-Path, Delivered-To, our field, our Received, the message
    headers, rest = split_delivered(content)
    ar = delivered_auth_results(content)
    assert ar is not None and ar.startswith(HOST + ";"), content[:400]
    assert results_of(ar) == {"spf": "pass", "dkim": "pass", "dmarc": "pass"}, ar
    assert "smtp.mailfrom=joe@sender.test" in ar and "header.d=sender.test" in ar, ar
    assert "header.from=sender.test" in ar, ar
    assert rest == msg.replace(b"\r\n", b"\n")
    assert "smtp checks spf=pass" in d.log()


def test_signed_message_passes_forwarded(env):
    d = daemon(env)
    msg = signed(env, message("joe@sender.test", "signed forwarded"))
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg)
    assert_reply(out["eod"], "250 2.0.0")
    ar, received, rest = forwarded_copy(env)
    assert results_of(ar) == {"spf": "pass", "dkim": "pass", "dmarc": "pass"}, ar
    assert b"fwd@example.test" in received
    # the original byte for byte: the signature still verifies at the target
    assert rest == msg
    assert dkim.verify(rest, dnsfunc=lambda name, timeout=5: b"".join(
        a[1][1:] for a in env.dns.query(name.decode().rstrip("."), "TXT")[1]))


def opendkim_signed(env, msg):
    """msg signed by OpenDKIM (tests/dkim/opendkim_sign.c) with sender.test's key."""
    signer = ROOT / "build" / "tests" / "opendkim_sign"
    if not signer.exists():
        p = subprocess.run(["make", "-C", str(ROOT), "build/tests/opendkim_sign"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        assert p.returncode == 0, p.stdout.decode(errors="replace")
    keyfile = env.dir / "sender.pem"
    keyfile.write_bytes(env.key)
    p = subprocess.run([str(signer), "sender.test", "sel", str(keyfile)], input=msg,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(b"DKIM-Signature: ") and p.stdout.endswith(msg)
    return p.stdout


def test_opendkim_signed_passes_dmarc_through_dkim(env):
    """Signed by OpenDKIM, sent with an envelope of a domain without SPF:
    only the aligned DKIM pass keeps sender.test's p=reject from refusing
    it, locally and before a forward."""
    d = daemon(env)
    msg = opendkim_signed(env, message("joe@sender.test", "opendkim signed"))
    out = transaction(d, "bounces@evil.test", ["alice@example.test"], msg)
    assert_reply(out["eod"], "250 2.0.0")
    ar = delivered_auth_results(local_copy(d))
    assert results_of(ar) == {"spf": "none", "dkim": "pass", "dmarc": "pass"}, ar
    out = transaction(d, "bounces@evil.test", ["fwd@example.test"], msg)
    assert_reply(out["eod"], "250 2.0.0")
    ar, _, rest = forwarded_copy(env)
    assert results_of(ar) == {"spf": "none", "dkim": "pass", "dmarc": "pass"}, ar
    assert rest == msg
    # the same message unsigned fails DMARC p=reject: 550 5.7.1
    out = transaction(d, "bounces@evil.test", ["alice@example.test"],
                      message("joe@sender.test", "opendkim unsigned"))
    assert_reply(out["eod"], "550 5.7.1")


# -- our own domain, forged ------------------------------------------------------


def test_forged_own_domain_refused_locally(env):
    d = daemon(env)
    msg = message("boss@example.test", "forged boss local")
    out = transaction(d, "attacker@evil.test", ["alice@example.test"], msg)
    assert_reply(out["eod"], "550 5.7.1")
    assert d.messages("alice@example.test") == []


def test_forged_own_domain_refused_forwarded(env):
    """The issue's case: From boss@OURDOMAIN, envelope attacker@evil.test,
    to a forwarded alias: refused before the target gets a final dot, so
    the SRS envelope never lifts it to a DMARC pass there."""
    d = daemon(env)
    msg = message("boss@example.test", "forged boss forwarded")
    out = transaction(d, "attacker@evil.test", ["fwd@example.test"], msg)
    assert_reply(out["rcpt"][0], "250")
    assert_reply(out["eod"], "550 5.7.1")
    assert_no_completed_message(env)
    env.assert_no_bounce()


@pytest.mark.parametrize("rcpt", ["alice@example.test", "fwd@example.test"])
@pytest.mark.parametrize("from_fields", [
    "From: Boss <boss@example.test>\nFrom: attacker@evil.test",
    "From: Boss <boss@example.test>, attacker@evil.test",
    "From: attacker@evil.test, Boss <boss@example.test>",
], ids=["two-fields", "boss-first", "boss-second"])
def test_forged_own_domain_beside_another_author_refused(env, rcpt, from_fields):
    """The forged own domain hidden beside a second author (a second From
    field, or a second address in another domain): a reader may see the
    boss; no one Author Domain remains for DMARC, so the message is
    refused, locally and before a forward's final dot."""
    d = daemon(env)
    msg = crlf("%s\nTo: whoever@example.test\nSubject: two authors\n"
               "Message-ID: <two@checks.test>\n\nHello.\n" % from_fields)
    out = transaction(d, "attacker@evil.test", [rcpt], msg)
    assert_reply(out["eod"], "550 5.7.1")
    if rcpt.startswith("fwd"):
        assert_no_completed_message(env)
    env.assert_no_bounce()


def test_two_authors_of_one_domain_are_that_domain(env):
    """Two addresses of one domain in one From: DMARC judges that domain
    (reject.test publishes p=reject, nothing authenticates: 550)."""
    d = daemon(env)
    msg = crlf("From: a@reject.test, B <b@Reject.test>\nTo: whoever@example.test\n"
               "Subject: two of one domain\n\nHello.\n")
    out = transaction(d, "joe@reject.test", ["alice@example.test"], msg)
    assert_reply(out["eod"], "550 5.7.1")
    assert "DMARC for reject.test" in out["eod"], out["eod"]


def test_spf_fail_refused_before_a_forward_but_not_before_a_routed_domain(env):
    """SPF fail, no DKIM, DMARC p=none: a forward refuses it (the target
    would see it as unauthenticated mail from us), a routed domain's own
    next hop (doc/home-server.md) gets it as a local mailbox would, with
    our Authentication-Results for it to judge."""
    home = env.remote("home.test")
    d = daemon(env, "route home.test %s:%d" % (home.address, home.port))
    msg = message("joe@softpol.test", "spf fail")
    out = transaction(d, "joe@softpol.test", ["fwd@example.test"], msg)
    assert_reply(out["eod"], "550 5.7.1")
    assert_no_completed_message(env)

    out = transaction(d, "joe@softpol.test", ["someone@home.test"], msg)
    assert_reply(out["eod"], "250")
    wait_until(lambda: home.delivered(), 15, what="the routed copy")
    [tx] = home.delivered()
    ar, _ = split_first_header(tx.content)
    assert results_of(unfold(ar.partition(b":")[2])) == {
        "spf": "fail", "dkim": "none", "dmarc": "fail"}, ar

    out = transaction(d, "joe@softpol.test", ["alice@example.test"], msg)
    assert_reply(out["eod"], "250")
    env.assert_no_bounce(local={"alice@example.test": 1})


# -- DMARC p=reject ----------------------------------------------------------------


def test_dmarc_reject_refused_locally(env):
    d = daemon(env)
    out = transaction(d, "joe@reject.test", ["alice@example.test"],
                      message("joe@reject.test", "dmarc reject local"))
    assert_reply(out["eod"], "550 5.7.1")
    assert d.messages("alice@example.test") == []


def test_dmarc_reject_forward_never_reaches_the_target(env):
    d = daemon(env)
    out = transaction(d, "joe@reject.test", ["fwd@example.test"],
                      message("joe@reject.test", "dmarc reject forwarded"))
    assert_reply(out["eod"], "550 5.7.1")
    assert_no_completed_message(env)
    env.assert_no_bounce()
    assert "dmarc=fail" in d.log()


def test_dmarc_monitor_keeps_and_records(env):
    """dmarc_policy monitor: the failure is recorded, not refused (locally)."""
    d = daemon(env, "dmarc_policy monitor")
    out = transaction(d, "joe@reject.test", ["alice@example.test"],
                      message("joe@reject.test", "dmarc monitor"))
    assert_reply(out["eod"], "250 2.0.0")
    ar = delivered_auth_results(local_copy(d))
    assert results_of(ar)["dmarc"] == "fail" and results_of(ar)["spf"] == "fail", ar


# -- DNS failures ----------------------------------------------------------------------


def test_dns_failure_is_a_4xx_never_a_pass(env):
    d = daemon(env)
    out = transaction(d, "joe@tempfail.test", ["alice@example.test"],
                      message("joe@tempfail.test", "tempfail local"))
    assert re.match(r"451 4\.7\.\d+ ", out["eod"]), out["eod"]
    assert d.messages("alice@example.test") == []
    out = transaction(d, "joe@tempfail.test", ["fwd@example.test"],
                      message("joe@tempfail.test", "tempfail forwarded"))
    assert re.match(r"451 4\.7\.\d+ ", out["eod"]), out["eod"]
    assert_no_completed_message(env)


# -- forged Authentication-Results -------------------------------------------------------


FORGED = ("Authentication-Results: %s;\n\tspf=pass smtp.mailfrom=boss@example.test;\n"
          "\tdkim=pass header.d=example.test\n"
          "Authentication-Results: other.example; spf=fail smtp.mailfrom=x@y.test\n"
          "authentication-results : %s; dmarc=pass header.from=example.test\n" % (HOST, HOST))


def test_forged_auth_results_removed_locally(env):
    d = daemon(env)
    msg = message("joe@sender.test", "forged ar local", FORGED)
    out = transaction(d, "joe@sender.test", ["alice@example.test"], msg)
    assert_reply(out["eod"], "250 2.0.0")
    content = local_copy(d)
    _, rest = split_delivered(content)
    # ours is the only field that names us; another host's stays
    assert content.lower().count(b"authentication-results") == 2, content[:800]
    assert b"header.d=example.test" not in content
    assert b"Authentication-Results: other.example; spf=fail" in rest
    assert b"boss@example.test" not in content
    assert "smtp header removed field=Authentication-Results count=2" in d.log()


def test_forged_auth_results_removed_forwarded(env):
    d = daemon(env)
    msg = message("joe@sender.test", "forged ar forwarded", FORGED)
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg)
    assert_reply(out["eod"], "250 2.0.0")
    ar, _, rest = forwarded_copy(env)
    assert results_of(ar)["spf"] == "pass", ar
    assert b"header.d=example.test" not in rest and b"boss@example.test" not in rest
    assert b"Authentication-Results: other.example; spf=fail" in rest
    assert rest.lower().count(b"authentication-results") == 1


# -- chamoisd as the sender: its own RSA and Ed25519 signatures -----------


def test_chamois_signed_rsa_and_ed25519_pass_at_another_chamois(env, qbins):
    """A chamoisd of sender.test signs what its queue sends with an RSA and
    an Ed25519 key (dkim_key, made by chamoisctl dkim-keygen); the
    example.test chamoisd it delivers to verifies both: dkim=pass for each,
    and DMARC passes through DKIM alone (sender.test has no SPF record
    here, so spf=none)."""
    keys = env.dir / "keys"
    keys.mkdir()
    conf = []
    for sel, args in (("kr", []), ("ke", ["-t", "ed25519"])):
        p = subprocess.run([str(qbins["chamoisctl"]), "-f", str(env.dir / "no.conf"),
                            "dkim-keygen"] + args + ["other.test", sel,
                                                     str(keys / (sel + ".pem"))],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, p
        line, record = p.stdout.decode().splitlines()
        conf.append(line)
        env.dns.raw("--txt-record=%s._domainkey.other.test,%s"
                    % (sel, ",".join(re.findall(r'"([^"]*)"', record))))
    txt(env.dns, "_dmarc.other.test", "v=DMARC1; p=reject")
    # the receiving chamoisd is example.test's MX, on the remotes' port
    env.dns.mx("example.test", "mx.b.test", 10)
    env.dns.address("mx.b.test", "127.0.0.60")
    b = env.daemon(aliases=ALIASES, extra_conf="listen mx 127.0.0.60:%d" % env.remote_port)
    a = wait_ready(env.daemon(domains=("other.test",), mailboxes=("joe@other.test",),
                              hostname="mx.other.test", extra_conf="\n".join(conf)))
    msg = ("From: Joe <joe@other.test>\nTo: alice@example.test\nSubject: both keys\n"
           "Message-ID: <bothkeys@other.test>\nDate: Thu, 01 Jan 2026 00:00:00 +0000\n"
           "\nSigned twice.\n").encode()
    sendmail_ok(qbins, a, ["alice@example.test"], msg, sender="joe@other.test")
    ar = delivered_auth_results(local_copy(b))
    assert ar is not None
    sigs = re.findall(r"dkim=(\w+) header\.d=(\S+) header\.s=(\w+) header\.a=([\w-]+)", ar)
    assert sorted(sigs) == [("pass", "other.test", "ke", "ed25519-sha256"),
                            ("pass", "other.test", "kr", "rsa-sha256")], ar
    assert results_of(ar)["dmarc"] == "pass" and results_of(ar)["spf"] == "none", ar


# -- Exim as the sender ---------------------------------------------------------------------


def test_exim_gets_550_for_a_forged_own_domain(env, exims):
    """Exim relays a message forged From our domain: it gets 550 5.7.1
    after its final dot (a permanent failure in its log), nothing is kept;
    then a message from an outside sender arrives with our field."""
    d = daemon(env)
    ex = exims(d.port)
    ex.submit(message("boss@example.test", "forged via exim"), "attacker@evil.test",
              ["alice@example.test"])
    m = ex.wait_log(r"\*\* alice@example\.test .*550 5\.7\.1", timeout=30)
    assert "550 5.7.1" in m.group(0)
    ex.submit(message("joe@sender.test", "fine via exim"), "joe@sender.test",
              ["alice@example.test"])
    ex.wait_log(r"=> alice@example\.test .*C=\"250 2\.0\.0", timeout=30)
    content = local_copy(d)
    assert b"forged via exim" not in content
    ar = delivered_auth_results(content)
    assert results_of(ar)["spf"] == "pass", ar

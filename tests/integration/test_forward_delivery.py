"""Synchronous forwarding: what arrives at the remote (chamois.conf(5) aliases;
doc/protocol.md, "Forwarding").  Remotes are aiosmtpd servers on 127.0.0.X:R
found through a dnsmasq (peers/remote.py, peers/dns.py)."""

import base64
import re
import subprocess

import dkim
import pytest

from harness import crlf, sample_message, wait_until
from peers.remote import (assert_reply, fwd_env, split_forwarded,  # noqa: F401
                          transaction)

ALIASES = {
    "fwd@example.test": ["carol@remote.test"],
    "fwd2@example.test": ["dan@remote.test"],
    "both@example.test": ["alice@example.test", "dave@remote.test"],
    "utf@example.test": ["jörg@remote.test"],
}
BUDGETS = "forward_rcpt_budget 10s\nforward_data_budget 10s"
SRS_RE = r"(?i)SRS0=[^=@]+=[^=@]+=sender\.test=joe@example\.test"


def daemon(env, **kw):
    kw.setdefault("aliases", ALIASES)
    kw.setdefault("extra_conf", BUDGETS)
    return env.daemon(**kw)


def check_forwarded(tx, msg, forwarded_address="fwd@example.test"):
    """The remote got msg byte for byte behind exactly one new Received
    header, which names the forwarded address."""
    assert tx.delivered, tx
    received, rest = split_forwarded(tx.content)
    assert received.startswith(b"Received:"), received
    assert forwarded_address.encode() in received.lower(), received
    assert rest == msg, "message changed in transit:\n%r\n!=\n%r" % (rest, msg)


def test_forward_byte_identical_with_one_received(fwd_env):
    r = fwd_env.remote("remote.test", eod="250 2.0.0 Ok: queued as R1D2")
    d = daemon(fwd_env)
    long_header = "X-Long: " + " ".join("word%d" % i for i in range(40))
    msg = sample_message("forward me", extra_headers=(
        long_header[:70] + "\n\t" + long_header[70:],
        "X-Spaces:   two  spaces   ",
        "x-lower-case: kept"))
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg)
    assert_reply(out["mail"], "250 2.1.0")
    assert_reply(out["rcpt"][0], "250 2.1.5")
    # the remote's end-of-data reply is the client's
    assert_reply(out["eod"], "250 2.0.0", "queued as R1D2")
    [conn] = r.connections
    [tx] = conn.transactions
    assert tx.accepted == ["carol@remote.test"]
    assert re.fullmatch(SRS_RE, tx.mail_from), tx.mail_from
    check_forwarded(tx, msg)
    fwd_env.assert_no_bounce()


def test_forward_keeps_dkim_signature_valid(fwd_env, tmp_path):
    key = tmp_path / "dkim.key"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"],
                   check=True, stderr=subprocess.DEVNULL)
    pub = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)

    def dnsfunc(name, timeout=5):
        return txt if name == b"sel._domainkey.sender.test." else None

    msg = crlf("From: Joe <joe@sender.test>\n"
               "To: fwd@example.test\n"
               "Subject: signed   with  spaces\n"
               "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
               "Message-ID: <dkim@sender.test>\n"
               "\n"
               "Body line one.  \n"
               ".dot line\n"
               "\n"
               "trailing blank lines follow\n"
               "\n\n")
    sig = dkim.sign(msg, b"sel", b"sender.test", key.read_bytes(),
                    canonicalize=(b"simple", b"simple"),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    signed = sig + msg
    assert dkim.verify(signed, dnsfunc=dnsfunc)       # sanity: valid before

    r = fwd_env.remote("remote.test")
    d = daemon(fwd_env)
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], signed)
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = r.delivered()
    check_forwarded(tx, signed)
    assert dkim.verify(tx.content, dnsfunc=dnsfunc), "DKIM signature broken by forwarding"
    fwd_env.assert_no_bounce()


def test_forward_uses_starttls_when_offered(fwd_env):
    r = fwd_env.remote("remote.test", starttls=True)
    d = daemon(fwd_env)
    msg = sample_message("over tls")
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg)
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = r.delivered()
    assert tx.tls, "message was not sent over TLS although STARTTLS was offered"
    assert ("STARTTLS", None) in r.connections[0].commands
    check_forwarded(tx, msg)
    fwd_env.assert_no_bounce()


def test_two_recipients_same_domain_share_one_remote_transaction(fwd_env):
    r = fwd_env.remote("remote.test")
    d = daemon(fwd_env)
    msg = sample_message("two forwarded")
    out = transaction(d, "joe@sender.test", ["fwd@example.test", "fwd2@example.test"], msg)
    assert [t.split()[:2] for t in out["rcpt"]] == [["250", "2.1.5"]] * 2, out["rcpt"]
    assert_reply(out["eod"], "250 2.0.0")
    assert len(r.connections) == 1, r.transcript()
    [tx] = r.transactions()
    assert sorted(tx.accepted) == ["carol@remote.test", "dan@remote.test"]
    assert tx.delivered
    received, rest = split_forwarded(tx.content)
    assert received.startswith(b"Received:") and rest == msg
    fwd_env.assert_no_bounce()


def test_second_mx_used_when_first_refuses_at_greeting(fwd_env):
    first = fwd_env.remote("remote.test", 10, greeting="554 5.3.2 no service here")
    second = fwd_env.remote("remote.test", 20)
    d = daemon(fwd_env)
    msg = sample_message("second mx")
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg)
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["eod"], "250 2.0.0")
    assert first.transactions() == [], first.transcript()
    assert len(first.connections) >= 1, "the preferred MX was not tried first"
    [tx] = second.delivered()
    check_forwarded(tx, msg)
    fwd_env.assert_no_bounce()


def test_refusing_greeting_is_answered_with_quit(fwd_env):
    """RFC 5321 3.1: a server that greets with 554 waits for QUIT; chamoisd
    says it before it tries the next MX (issue 12, point 2)."""
    first = fwd_env.remote("remote.test", 10, greeting="554 5.3.2 no service here")
    second = fwd_env.remote("remote.test", 20)
    d = daemon(fwd_env)
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], sample_message("quit"))
    assert_reply(out["eod"], "250 2.0.0")
    assert len(second.delivered()) == 1
    wait_until(lambda: first.connections and all(
        "QUIT" in [v for v, _ in conn.commands] for conn in list(first.connections)),
        10, what="QUIT on the refusing MX's connections")
    fwd_env.assert_no_bounce()


def test_second_mx_used_when_first_is_down(fwd_env):
    fwd_env.closed_remote("remote.test", 10)
    second = fwd_env.remote("remote.test", 20)
    d = daemon(fwd_env)
    msg = sample_message("first down")
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg)
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = second.delivered()
    check_forwarded(tx, msg)
    fwd_env.assert_no_bounce()


def test_8bitmime_passed_on(fwd_env):
    r = fwd_env.remote("remote.test")
    d = daemon(fwd_env)
    msg = crlf("From: joe@sender.test\nSubject: 8bit\nContent-Type: text/plain; charset=utf-8\n"
               "Content-Transfer-Encoding: 8bit\n\nGrüße, café ☃\n".encode("utf-8")
               + b"raw \xff\xfe\n")
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg,
                      mail_params=" BODY=8BITMIME")
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = r.delivered()
    assert "BODY=8BITMIME" in tx.mail_options, tx.mail_options
    check_forwarded(tx, msg)
    fwd_env.assert_no_bounce()


def test_smtputf8_recipient_to_remote_with_smtputf8(fwd_env):
    r = fwd_env.remote("remote.test")
    d = daemon(fwd_env)
    msg = crlf("From: joe@sender.test\nSubject: utf8\n\nhi\n")
    out = transaction(d, "joe@sender.test", ["utf@example.test"], msg,
                      mail_params=" SMTPUTF8")
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = r.delivered()
    assert tx.accepted == ["jörg@remote.test"]
    assert "SMTPUTF8" in tx.mail_options, tx.mail_options
    check_forwarded(tx, msg, "utf@example.test")
    fwd_env.assert_no_bounce()


# -- an alias that keeps a local copy ------------------------------------------


def test_local_copy_kept_when_remote_accepts(fwd_env):
    r = fwd_env.remote("remote.test")
    d = daemon(fwd_env)
    msg = sample_message("local copy")
    out = transaction(d, "joe@sender.test", ["both@example.test"], msg)
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["eod"], "250 2.0.0")
    [tx] = r.delivered()
    assert tx.accepted == ["dave@remote.test"]
    check_forwarded(tx, msg, "both@example.test")
    [local] = d.messages("alice@example.test")
    assert local.endswith(msg.replace(b"\r\n", b"\n"))
    fwd_env.assert_no_bounce(local={"alice@example.test": 1})


@pytest.mark.parametrize("eod", ["554 5.7.1 rejected as spam", "450 4.2.0 try again later"])
def test_local_copy_dropped_when_remote_refuses(fwd_env, eod):
    r = fwd_env.remote("remote.test", eod=eod)
    d = daemon(fwd_env)
    out = transaction(d, "joe@sender.test", ["both@example.test"], sample_message("refused"))
    assert_reply(out["rcpt"][0], "250 2.1.5")
    assert_reply(out["eod"], eod[:9], eod[10:])
    assert r.delivered() == []
    # nothing for alice: not in new/, not left in tmp/
    assert d.stored_files() == [], d.stored_files()
    fwd_env.assert_no_bounce(local={})


def test_local_copy_dropped_when_remote_refuses_recipient(fwd_env):
    r = fwd_env.remote("remote.test", rcpt={"dave@remote.test": "550 5.1.1 no dave here"})
    d = daemon(fwd_env)
    out = transaction(d, "joe@sender.test", ["both@example.test"], sample_message("no dave"))
    assert_reply(out["rcpt"][0], "550 5.1.1", "no dave here")
    assert out["eod"] is None
    assert r.delivered() == []
    assert d.stored_files() == []
    fwd_env.assert_no_bounce(local={})

"""Postfix (Debian's, unpacked under tests/integration/.peers/postfix) as a
real sending MTA relaying into chamoisd's mx role.

Postfix is configured with ``relayhost = [127.0.0.1]:<chamoisd port>``,
``smtp_tls_security_level = may`` and verbose logging of its SMTP client's
dialogue with chamoisd, so the tests can check STARTTLS and PIPELINING from
Postfix's side.  Non-delivery reports that Postfix makes go to an aiosmtpd
sink.  See peers/postfix.py for how Postfix runs from the unpacked tree.
"""

import re
import threading

import pytest

from harness import split_delivered, crlf, wait_until
from peers.postfix import Postfix, PeerUnavailable, ensure_postfix, ensure_mail_owner, free_port

SENDER = "sender@sender.example.net"   # Postfix's myhostname: its DSNs go to the sink
QUEUE_TIMEOUT = 60


@pytest.fixture(scope="module")
def postfix_available():
    try:
        ensure_postfix()
        ensure_mail_owner()
    except PeerUnavailable as e:
        pytest.skip("Postfix peer cannot run here: %s" % e)


class Sink:
    """aiosmtpd server on loopback that keeps what it receives (DSNs)."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.messages = []
        self._lock = threading.Lock()
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with outer._lock:
                    outer.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                           envelope.original_content or envelope.content))
                return "250 2.0.0 kept"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        try:
            self.controller.stop()
        except Exception:
            pass


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


@pytest.fixture
def postfix(postfix_available, tmp_path, sink):
    """Factory: postfix(mx) -> started Postfix relaying to that chamoisd."""
    made = []

    def make(mx, **kw):
        pf = Postfix(tmp_path / ("postfix%d" % len(made)), (mx.host, mx.port),
                     bounce_relay=("127.0.0.1", sink.port), **kw)
        made.append(pf)
        pf.start()
        return pf

    yield make
    for pf in made:
        pf.stop()
        print("---- postfix %s maillog (%s) ----\n%s" % (pf.base.name, pf.log_path, pf.log()[-8000:]))


def message(subject, to="Alice <alice@example.test>", body=None):
    if body is None:
        body = ("Hello from Postfix.\n"
                "\n"
                ".a line that starts with a dot\n"
                ".\n"
                "caf\u00e9 \u2014 8bit UTF-8 body line\n"
                "  trailing blanks   \n"
                "-- \n"
                "sender\n")
    head = ("From: Sender <%s>\n"
            "To: %s\n"
            "Subject: %s\n"
            "Message-ID: <%s.postfix-test@sender.example.net>\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n" % (SENDER, to, subject, abs(hash(subject))))
    return crlf(head + "\n" + body)


def lf(b):
    return b.replace(b"\r\n", b"\n")


def strip_postfix_received(rest):
    """Postfix prepends exactly one Received header of its own (from its
    smtpd); return (that header, the rest)."""
    assert rest.startswith(b"Received: "), rest[:200]
    end = rest.index(b"\n") + 1
    while rest[end:end + 1] in (b" ", b"\t"):
        end = rest.index(b"\n", end) + 1
    return rest[:end], rest[end:]


def relay_dialogue(pf, port):
    """Postfix's logged SMTP client dialogue with chamoisd: [(dir, text)]."""
    rx = re.compile(r"postfix-test/smtp\[\d+\]: ([<>]) 127\.0\.0\.1\[127\.0\.0\.1\]:%d: (.*)$"
                    % port, re.M)
    return [(m.group(1), m.group(2)) for m in rx.finditer(pf.log())]


def assert_no_retry(pf):
    """Every attempt got a final reply: no lost session, nothing deferred
    (a retry would also deliver a duplicate)."""
    bad = [l for l in pf.log().splitlines()
           if "status=deferred" in l or "lost connection with 127.0.0.1" in l
           or "Cannot start TLS" in l or "TLS handshake" in l]
    assert not bad, "\n".join(bad)


def delivered(mx, address, count=1):
    return mx.wait_messages(address, count, timeout=QUEUE_TIMEOUT)


def test_postfix_relays_with_starttls_and_pipelining(chamoisd, postfix):
    mx = chamoisd()
    pf = postfix(mx)
    msg = message("relay one")
    pf.submit(msg, SENDER, ["alice@example.test"])

    assert pf.wait_queue_empty(QUEUE_TIMEOUT), "Postfix queue did not drain:\n%s\n%s" % (
        pf.queue_listing(), pf.log()[-4000:])
    assert_no_retry(pf)
    files = delivered(mx, "alice@example.test")
    assert len(files) == 1
    headers, rest = split_delivered(files[0])
    assert headers[0] == ("Return-Path", "<%s>" % SENDER)
    assert headers[1] == ("Delivered-To", "alice@example.test")
    # chamoisd's own Received notes the TLS session (RFC 3848 "ESMTPS").
    assert "ESMTPS" in headers[2][1] or "TLS" in headers[2][1], headers[2]
    pf_received, original = strip_postfix_received(rest)
    assert b"by sender.example.net (Postfix)" in pf_received
    assert original == lf(msg), "message not intact:\n%r\n!=\n%r" % (original, lf(msg))

    log = pf.log()
    assert re.search(r"to=<alice@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*"
                     r"dsn=2\.0\.0, status=sent \(250 2\.0\.0" % mx.port, log), log[-3000:]

    # STARTTLS: Postfix's own word that the session to chamoisd was TLS.
    assert re.search(r"TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.[23]"
                     % mx.port, log), log[-3000:]
    dia = relay_dialogue(pf, mx.port)
    cmds = [t for d, t in dia if d == ">"]
    assert "STARTTLS" in cmds, dia
    after = dia[[t for d, t in dia].index("STARTTLS"):]
    ehlo_after = [t for d, t in after if d == "<" and t.startswith("250")]
    assert any("PIPELINING" in t for t in ehlo_after), after

    # PIPELINING: Postfix says it uses it on the TLS session...
    tls_at = log.index("TLS connection established to 127.0.0.1[127.0.0.1]:%d" % mx.port)
    assert "Using ESMTP PIPELINING" in log[tls_at:], log[tls_at:tls_at + 3000]
    # ...and after TLS, Postfix wrote MAIL, RCPT and DATA before it read
    # the reply to MAIL (it logs each command as it queues it).
    i_mail = next(i for i, (d, t) in enumerate(after) if d == ">" and t.startswith("MAIL FROM:"))
    i_first_reply = next(i for i, (d, t) in enumerate(after) if i > i_mail and d == "<")
    batch = [t for d, t in after[i_mail:i_first_reply]]
    assert any(t.startswith("RCPT TO:<alice@example.test>") for t in batch), after
    assert "DATA" in batch, after
    replies = [t for d, t in after[i_first_reply:] if d == "<"]
    assert replies[0].startswith("250 2.1.0"), replies
    assert replies[1].startswith("250 2.1.5"), replies
    assert replies[2].startswith("354"), replies


def test_postfix_two_recipients_one_transaction(chamoisd, postfix):
    mx = chamoisd()
    pf = postfix(mx)
    msg = message("relay two", to="alice@example.test, bob@example.test")
    pf.submit(msg, SENDER, ["alice@example.test", "bob@example.test"])

    assert pf.wait_queue_empty(QUEUE_TIMEOUT), pf.queue_listing()
    assert_no_retry(pf)
    for rcpt in ("alice@example.test", "bob@example.test"):
        files = delivered(mx, rcpt)
        assert len(files) == 1, (rcpt, files)
        headers, rest = split_delivered(files[0])
        assert headers[0] == ("Return-Path", "<%s>" % SENDER)
        assert headers[1] == ("Delivered-To", rcpt)
        # two recipients in the transaction: no "for <address>" (contract)
        assert "for <" not in headers[2][1], headers[2]
        _, original = strip_postfix_received(rest)
        assert original == lf(msg)
    log = pf.log()
    for rcpt in ("alice", "bob"):
        assert re.search(r"to=<%s@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*"
                         r"status=sent \(250 2\.0\.0" % (rcpt, mx.port), log), log[-3000:]
    # One SMTP transaction carried both recipients.
    cmds = [t for d, t in relay_dialogue(pf, mx.port) if d == ">"]
    assert len([c for c in cmds if c.startswith("MAIL FROM:")]) == 1, cmds
    assert len([c for c in cmds if c.startswith("RCPT TO:")]) == 2, cmds


def test_postfix_unknown_recipient_bounces_550_511(chamoisd, postfix, sink):
    mx = chamoisd()
    pf = postfix(mx)
    msg = message("relay unknown", to="alice@example.test, nobody@example.test")
    pf.submit(msg, SENDER, ["alice@example.test", "nobody@example.test"])

    assert pf.wait_queue_empty(QUEUE_TIMEOUT), pf.queue_listing()
    m = pf.wait_log(r"to=<nobody@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                    r".*dsn=5\.1\.1, status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: "
                    r"550 5\.1\.1 .*\(in reply to RCPT TO command\)\)" % mx.port, timeout=10)
    assert m
    # alice still got it, once; nobody got nothing anywhere.
    files = delivered(mx, "alice@example.test")
    assert len(files) == 1
    _, rest = split_delivered(files[0])
    assert strip_postfix_received(rest)[1] == lf(msg)
    assert not mx.maildir("nobody@example.test").exists()
    assert len(mx.stored_files()) == 1, mx.stored_files()

    # Postfix's DSN to the sender (sent to the sink) quotes the 550 5.1.1.
    wait_until(lambda: sink.messages, timeout=QUEUE_TIMEOUT, what="Postfix's DSN at the sink")
    assert pf.wait_queue_empty(QUEUE_TIMEOUT), pf.queue_listing()
    assert_no_retry(pf)
    dsn_from, dsn_rcpts, dsn = sink.messages[0]
    assert dsn_from in ("", "<>"), dsn_from
    assert dsn_rcpts == [SENDER]
    assert b"<nobody@example.test>" in dsn
    assert re.search(rb"550[ -]5\.1\.1", dsn), dsn[:3000]
    assert b"Status: 5.1.1" in dsn
    assert re.search(rb"Final-Recipient: rfc822; ?nobody@example\.test", dsn), dsn[:3000]
    assert not re.search(rb"Final-Recipient: rfc822; ?alice@example\.test", dsn), dsn[:3000]


def test_postfix_peer_selftest_with_aiosmtpd(postfix_available, tmp_path, sink):
    """The peer itself, without chamoisd: Postfix relays to an aiosmtpd
    server that offers STARTTLS, and its sendmail works too.  When this
    fails, the Postfix tests above say nothing about chamoisd."""
    import ssl
    from aiosmtpd.controller import Controller
    from harness import make_cert

    cert, key = make_cert(tmp_path / "cert")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    got = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            got.append((envelope.rcpt_tos, envelope.original_content, session.ssl is not None))
            return "250 2.0.0 OK"

    port = free_port()
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx,
                     decode_data=False)
    ctl.start()
    pf = Postfix(tmp_path / "postfix", ("127.0.0.1", port), bounce_relay=("127.0.0.1", sink.port))
    try:
        pf.start()
        msg = message("selftest")
        pf.submit(msg, SENDER, ["alice@example.test"])
        pf.submit(msg, SENDER, ["bob@example.test"], via="sendmail")
        assert pf.wait_queue_empty(QUEUE_TIMEOUT), pf.queue_listing()
        wait_until(lambda: len(got) == 2, 10, what="2 messages at aiosmtpd")
        assert sorted(r for rcpts, _, _ in got for r in rcpts) == \
            ["alice@example.test", "bob@example.test"]
        assert all(tls for _, _, tls in got)
        assert all(lf(content).endswith(lf(msg)) for _, content, _ in got)
        assert "TLS connection established to 127.0.0.1[127.0.0.1]:%d" % port in pf.log()
    finally:
        pf.stop()
        ctl.stop()
        print(pf.log()[-4000:])

"""Synchronous forwarding against a real Postfix (chamois.conf(5) aliases;
doc/protocol.md, "Forwarding"; doc/forwarding.md).

Postfix (Debian's, unpacked by peers/postfix.py) plays both ends:

* the *sending* MTA: relayhost = chamoisd's mx listener; the forwarding
  target is a programmable aiosmtpd remote found through dnsmasq
  (peers/remote.py, peers/dns.py);
* the *remote* MTA: the target domain's MX (dnsmasq) is a Postfix on
  127.0.0.X:<remote_port> offering STARTTLS, relaying the domain's known
  users (relay_recipient_maps) on to an aiosmtpd sink where the message
  can be read.

Every MTA is stopped at teardown, also on failure; every wait is bounded.
The tests skip only when Postfix cannot be unpacked or run here.
"""

import re
import time

import pytest

from harness import crlf, make_cert, sample_message, split_delivered
from peers.postfix import PeerUnavailable, Postfix, ensure_mail_owner, ensure_postfix
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401

SENDER = "sender@sender.example.net"     # Postfix (sender)'s myhostname: its DSNs go to a sink
QUEUE_TIMEOUT = 60
BUDGETS = "forward_rcpt_budget 5s\nforward_data_budget 10s"
ALIASES = {
    "fwd@example.test": ["carol@remote.test"],
    "both@example.test": ["alice@example.test", "carol@remote.test"],
    "gone@example.test": ["nosuch@remote.test"],
}
SRS_JOE = r"SRS0=[^=@<>]+=[^=@<>]+=sender\.test=joe@example\.test"
# doc/protocol.md, "Routes": "452 4.5.3 send this recipient in a separate
# transaction" (chamoisd puts the recipient in front of the text, as Postfix
# does)
SPLIT_452 = r"452 4\.5\.3 (?:<[^>]+>: )?send this recipient in a separate transaction"


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def postfix_available():
    try:
        ensure_postfix()
        ensure_mail_owner()
    except PeerUnavailable as e:
        pytest.skip("Postfix peer cannot run here: %s" % e)


@pytest.fixture
def postfixes(postfix_available, fwd_env, tmp_path):
    """Factory: postfixes(name, relay, smtpd_port=None, **Postfix kwargs) ->
    a started Postfix.  Every instance is stopped at teardown (before
    fwd_env stops chamoisd, the remotes and dnsmasq), also on failure."""
    made = []

    def make(name, relay, smtpd_port=None, **kw):
        try:
            pf = Postfix(tmp_path / name, relay, **kw)
        except PeerUnavailable as e:
            pytest.skip("Postfix peer cannot run here: %s" % e)
        if smtpd_port is not None:
            pf.smtpd_port = smtpd_port      # e.g. chamoisd's remote_port
        made.append(pf)
        pf.start()
        return pf

    yield make
    for pf in made:
        try:
            pf.stop()
        finally:
            print("---- postfix %s maillog (%s) ----\n%s"
                  % (pf.base.name, pf.log_path, pf.log()[-10000:]))


def daemon(env, **kw):
    kw.setdefault("aliases", ALIASES)
    kw["extra_conf"] = BUDGETS + "\n" + kw.get("extra_conf", "")
    return env.daemon(**kw)


def sending_postfix(postfixes, env, d):
    """Postfix relaying everything to chamoisd d; its own DSNs (there must
    be none) go to a recording remote, so that assert_no_bounce sees them."""
    dsn_sink = env.remotes.add("dsn-sink.sender.example.net")
    pf = postfixes("postfix-sender", (d.host, d.port),
                   bounce_relay=(dsn_sink.address, dsn_sink.port))
    return pf, dsn_sink


def remote_postfix(postfixes, env, domain="remote.test", users=("carol@remote.test",)):
    """A Postfix that is the MX of `domain` (mx1.<domain> in dnsmasq) on
    127.0.0.X:<remote_port>, with STARTTLS, accepting `users` of `domain`
    (others: 550 5.1.1 at RCPT) and relaying them to an aiosmtpd sink.
    Returns (postfix, mx remote slot, sink remote)."""
    slot = env.closed_remote(domain)            # reserves 127.0.0.X + MX/A records
    sink = env.remotes.add("sink.internal.test")
    cert, key = make_cert(env.dir / "postfix-remote-cert", cn=slot.name)
    extra = {
        "relay_domains": domain,
        "relay_recipient_maps": "inline:{ %s }" % ", ".join("%s=ok" % u for u in users),
        "smtpd_tls_security_level": "may",
        "smtpd_tls_cert_file": cert,
        "smtpd_tls_key_file": key,
        "smtpd_tls_loglevel": "1",
        "smtpd_tls_session_cache_database": "",
        # leave the headers of what chamoisd sends exactly as they are
        "local_header_rewrite_clients": "",
        # log the smtpd dialogue with chamoisd and the client's with the sink
        "debug_peer_list": "127.0.0.1, %s" % sink.address,
        "debug_peer_level": "1",
    }
    pf = postfixes("postfix-remote", (sink.address, sink.port), smtpd_port=slot.port,
                   smtpd_host=slot.address, myhostname=slot.name, extra_main=extra)
    return pf, slot, sink


# --------------------------------------------------------------------------
# helpers


def message(subject, to="Alice <alice@example.test>"):
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
            "Message-ID: <%s.fwd-postfix@sender.example.net>\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n" % (SENDER, to, subject,
                                                   re.sub(r"\W", "", subject)))
    return crlf(head + "\n" + body)


def skip_our_auth_results(content, eol=b"\r\n"):
    """The copy without the Authentication-Results field that chamoisd's
    checks put first on every forwarded copy (SPEC 7)."""
    assert content.startswith(b"Authentication-Results: mx.example.test;"), content[:300]
    end = content.index(eol) + len(eol)
    while content[end:end + 1] in (b" ", b"\t"):
        end = content.index(eol, end) + len(eol)
    return content[end:]


def split_received(content, eol=b"\r\n"):
    """(first header field, which must be Received, with its folded lines;
    the rest)."""
    assert content.startswith(b"Received:"), content[:300]
    end = content.index(eol) + len(eol)
    while content[end:end + 1] in (b" ", b"\t"):
        end = content.index(eol, end) + len(eol)
    return content[:end], content[end:]


def unfold(header):
    return re.sub(rb"\s+", b" ", header).strip().decode("utf-8", "replace")


def relay_dialogue(pf, port):
    """The sending Postfix's logged SMTP client dialogue with chamoisd."""
    rx = re.compile(r"postfix-test/smtp\[\d+\]: ([<>]) 127\.0\.0\.1\[127\.0\.0\.1\]:%d: (.*)$"
                    % port, re.M)
    return [(m.group(1), m.group(2)) for m in rx.finditer(pf.log())]


def wait_drained(pf, timeout=QUEUE_TIMEOUT):
    """Wait (bounded) until Postfix's queue is empty, flushing the deferred
    queue now and then so that a retry does not wait for the backoff."""
    deadline = time.monotonic() + timeout
    last_flush = time.monotonic()
    while time.monotonic() < deadline:
        if pf.queue_empty():
            return
        if time.monotonic() - last_flush > 3:
            pf.flush()
            last_flush = time.monotonic()
        time.sleep(0.3)
    assert pf.queue_empty(), "Postfix queue did not drain in %ds:\n%s\n%s" % (
        timeout, pf.queue_listing(), pf.log()[-5000:])


def assert_postfix_no_bounce(pf):
    log = pf.log()
    bad = [l for l in log.splitlines()
           if "status=bounced" in l or "non-delivery notification" in l
           or "status=expired" in l or "delivery status notification" in l]
    assert not bad, "Postfix bounced or notified:\n%s" % "\n".join(bad)


# --------------------------------------------------------------------------
# 1. Postfix sends one message to a local and a forwarded recipient


def test_postfix_sender_splits_local_and_forwarded_on_452(fwd_env, postfixes):
    r = fwd_env.remote("remote.test")
    d = daemon(fwd_env)
    pf, dsn_sink = sending_postfix(postfixes, fwd_env, d)
    msg = message("local and forwarded", to="alice@example.test, fwd@example.test")
    pf.submit(msg, SENDER, ["alice@example.test", "fwd@example.test"])

    wait_drained(pf)
    log = pf.log()
    # Postfix's own record: both recipients sent, through chamoisd
    for rcpt in ("alice@example.test", "fwd@example.test"):
        assert re.search(r"to=<%s>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent \(250 "
                         % (re.escape(rcpt), d.port), log), (rcpt, log[-5000:])
    # chamoisd told it to send the second route separately; Postfix did so
    # in a later transaction (Postfix 3.7 defers a recipient that got a 452
    # and sends it at its next queue run: "status=deferred ... 452 4.5.3")
    dia = relay_dialogue(pf, d.port)
    got_452 = [t for dr, t in dia if dr == "<" and re.fullmatch(SPLIT_452, t)]
    assert len(got_452) == 1, dia
    split_rcpt = re.search(r"<([^>]+)>", got_452[0])
    mails = [t for dr, t in dia if dr == ">" and t.startswith("MAIL FROM:")]
    assert len(mails) == 2, dia
    rcpts = [t for dr, t in dia if dr == ">" and t.startswith("RCPT TO:")]
    assert len(rcpts) == 3, dia      # the one refused with 452 was sent again, alone
    if split_rcpt:
        assert rcpts[-1] == "RCPT TO:<%s>" % split_rcpt.group(1), dia
    deferred = [l for l in log.splitlines() if "status=deferred" in l]
    assert all(re.search(SPLIT_452, l) for l in deferred), deferred
    assert_postfix_no_bounce(pf)

    # alice: exactly one copy, intact behind Postfix's Received
    files = d.wait_messages("alice@example.test", 1, timeout=10)
    assert len(files) == 1, files
    headers, rest = split_delivered(files[0])
    assert headers[0] == ("Return-Path", "<%s>" % SENDER)
    assert headers[1] == ("Delivered-To", "alice@example.test")
    pf_received, original = split_received(rest, b"\n")
    assert b"by sender.example.net (Postfix)" in pf_received, pf_received
    assert original == msg.replace(b"\r\n", b"\n"), "local copy not intact"

    # carol: exactly one copy at the remote, chamoisd's Received naming
    # the forwarded address, then Postfix's, then the message byte for byte
    [tx] = r.delivered()
    assert tx.accepted == ["carol@remote.test"], tx
    assert re.fullmatch(r"(?i)SRS0=[^=@]+=[^=@]+=sender\.example\.net=sender@example\.test",
                        tx.mail_from), tx.mail_from
    ours, rest = split_received(skip_our_auth_results(tx.content))
    assert "fwd@example.test" in unfold(ours).lower(), ours
    pf_received, original = split_received(rest)
    assert b"by sender.example.net (Postfix)" in pf_received, pf_received
    assert original == msg, "forwarded copy not intact:\n%r\n!=\n%r" % (original, msg)

    assert dsn_sink.connections == [], dsn_sink.transcript()
    fwd_env.assert_no_bounce(local={"alice@example.test": 1})


# --------------------------------------------------------------------------
# 2. the remote says 4xx once; Postfix retries; one copy arrives


@pytest.mark.parametrize("step", ["rcpt", "eod"])
def test_postfix_sender_retries_after_remote_4xx(fwd_env, postfixes, step):
    tries = []
    temp = {"rcpt": "450 4.2.1 carol's mailbox is busy, try later",
            "eod": "451 4.3.0 queue busy, try later"}[step]

    def first_refuses(conn, arg):
        tries.append(arg)
        return temp if len(tries) == 1 else None

    r = fwd_env.remote("remote.test", **{step: first_refuses})
    d = daemon(fwd_env)
    pf, dsn_sink = sending_postfix(postfixes, fwd_env, d)
    msg = message("retry after %s" % step, to="both@example.test")
    pf.submit(msg, SENDER, ["both@example.test"])

    # chamoisd passed the remote's 4xx on, Postfix deferred...
    reply_to = {"rcpt": "RCPT TO", "eod": "end of DATA"}[step]
    pf.wait_log(r"to=<both@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*"
                r"status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: %s "
                r"\(in reply to %s command\)\)" % (d.port, re.escape(temp), reply_to),
                timeout=QUEUE_TIMEOUT)
    # ...and retried until it went through
    wait_drained(pf)
    pf.wait_log(r"to=<both@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*"
                r"dsn=2\.0\.0, status=sent \(250 2\.0\.0" % d.port, timeout=5)
    assert_postfix_no_bounce(pf)
    assert len(tries) >= 2, tries

    # exactly one copy at the remote
    delivered = r.delivered()
    assert len(delivered) == 1, r.transcript()
    [tx] = delivered
    assert tx.accepted == ["carol@remote.test"]
    ours, rest = split_received(skip_our_auth_results(tx.content))
    assert "both@example.test" in unfold(ours).lower(), ours
    assert split_received(rest)[1] == msg
    if step == "eod":
        # the first attempt's data reached the remote and was refused there
        assert len(r.completed_data()) == 2, r.transcript()
    else:
        # the first attempt never got past RCPT
        assert len([t for t in r.transactions() if t.data_started]) == 1, r.transcript()

    # no bounce anywhere; alice's local copy kept once (only with the
    # remote's 2xx), nothing left in tmp/
    assert dsn_sink.connections == [], dsn_sink.transcript()
    fwd_env.assert_no_bounce(local={"alice@example.test": 1})
    [local] = d.messages("alice@example.test")
    headers, rest = split_delivered(local)
    assert headers[1] == ("Delivered-To", "alice@example.test")
    assert split_received(rest, b"\n")[1] == msg.replace(b"\r\n", b"\n")


# --------------------------------------------------------------------------
# 3. Postfix as the remote server


def test_forward_to_postfix_remote_over_starttls(fwd_env, postfixes):
    pf, slot, sink = remote_postfix(postfixes, fwd_env)
    d = daemon(fwd_env)
    msg = sample_message("to a postfix remote", extra_headers=(
        "X-Folded: first part\n\tsecond part",
        "X-Spaces:   two  spaces   "))
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg)

    assert_reply(out["mail"], "250 2.1.0")
    # Postfix's own RCPT and end-of-data replies
    assert_reply(out["rcpt"][0], "250 2.1.5", "Ok")
    eod = assert_reply(out["eod"], "250 2.0.0", "Ok: queued as ")
    qid = re.search(r"queued as ([0-9A-Za-z]+)", eod).group(1)

    # Postfix saw the SRS sender, queued under the id chamoisd's client
    # was given, and relayed it on to the sink
    m = pf.wait_log(r"postfix-test/qmgr\[\d+\]: %s: from=<(%s)>" % (qid, SRS_JOE), timeout=10)
    srs = m.group(1)
    pf.wait_log(r"%s: to=<carol@remote\.test>, relay=%s\[%s\]:%d, .*status=sent"
                % (qid, re.escape(sink.address), re.escape(sink.address), sink.port),
                timeout=QUEUE_TIMEOUT)
    assert re.search(r"postfix-test/smtpd\[\d+\]: %s: client=" % qid, pf.log())
    # TLS, from both sides
    plog = pf.log()
    assert re.search(r"TLS connection established from [^\n]*127\.0\.0\.1\]: TLSv1\.[23]", plog), \
        plog[-4000:]
    dlog = d.log()
    assert re.search(r"client tls host=%s version=TLSv1\.[23]" % re.escape(slot.name), dlog), dlog
    assert re.search(r"client ready host=%s addr=%s:%d tls=TLSv1\.[23]"
                     % (re.escape(slot.name), re.escape(slot.address), slot.port), dlog), dlog

    # what arrived: Postfix's Received, chamoisd's naming fwd@, the original
    [tx] = sink.delivered()
    assert tx.mail_from == srs, (tx.mail_from, srs)
    assert tx.accepted == ["carol@remote.test"]
    pf_received, rest = split_received(tx.content)
    assert ("by %s (Postfix)" % slot.name).encode() in pf_received, pf_received
    assert b"with ESMTPS" in pf_received, pf_received
    ours, original = split_received(skip_our_auth_results(rest))
    assert "fwd@example.test" in unfold(ours).lower(), ours
    assert b"mx.example.test" in ours, ours
    assert original == msg, "message changed in transit:\n%r\n!=\n%r" % (original, msg)

    assert pf.wait_queue_empty(QUEUE_TIMEOUT), pf.queue_listing()
    assert_postfix_no_bounce(pf)
    fwd_env.assert_no_bounce()


# --------------------------------------------------------------------------
# 4. Postfix as the remote refusing the recipient


def test_forward_to_postfix_remote_unknown_user(fwd_env, postfixes):
    pf, slot, sink = remote_postfix(postfixes, fwd_env)
    d = daemon(fwd_env)
    msg = sample_message("to an unknown user")
    out = transaction(d, "joe@sender.test", ["gone@example.test"], msg)

    assert_reply(out["mail"], "250 2.1.0")
    rcpt = assert_reply(out["rcpt"][0], "550 5.1.1", "User unknown in relay recipient table")
    assert out["data"] is None and out["eod"] is None
    # Postfix's own word: refused at RCPT, nothing queued
    pf.wait_log(r"NOQUEUE: reject: RCPT from [^\n]*127\.0\.0\.1\]: 550 5\.1\.1 "
                r"<nosuch@remote\.test>: Recipient address rejected: "
                r"User unknown in relay recipient table; from=<%s> to=<nosuch@remote\.test>"
                % SRS_JOE, timeout=10)
    # Postfix names the target; our client sees its own address instead
    # (doc/forwarding.md, the mapping table)
    assert "<gone@example.test>" in rcpt and "nosuch" not in rcpt, rcpt
    # nothing delivered anywhere, no bounce
    assert pf.wait_queue_empty(10), pf.queue_listing()
    assert not re.search(r"postfix-test/cleanup\[\d+\]: \w+: message-id=", pf.log()), pf.log()
    assert_postfix_no_bounce(pf)
    fwd_env.remotes.settle()
    assert sink.connections == [], sink.transcript()
    assert d.stored_files() == []
    fwd_env.assert_no_bounce()


# --------------------------------------------------------------------------
# 5. chamoisd ends its sessions with QUIT and close_notify (issue 12 point 2)


def assert_clean_end(pf, what):
    """Postfix's smtpd logged the end of chamoisd's session: QUIT answered
    ("quit=1"), no lost connection, no TLS error."""
    # (the start-up probe's own line says "commands=0/0")
    m = pf.wait_log(r"postfix-test/smtpd\[(\d+)\]: disconnect from \S*\[127\.0\.0\.1\]"
                    r"([^\n]* mail=1[^\n]*)", timeout=20)
    log = pf.log()
    # this session's lines: from its "connect from" to its "disconnect from"
    start = log.rfind("smtpd[%s]: connect from" % m.group(1), 0, m.start())
    session = [l for l in log[start:m.end()].splitlines() if "smtpd[%s]:" % m.group(1) in l]
    assert "starttls=1" in m.group(2) and "quit=1" in m.group(2), (what, m.group(0))
    bad = [l for l in session
           if "lost connection" in l or "SSL_accept error" in l or "TLS library problem" in l]
    assert not bad, (what, bad)


def test_forwarded_session_to_postfix_ends_with_quit(fwd_env, postfixes):
    pf, slot, sink = remote_postfix(postfixes, fwd_env)
    d = daemon(fwd_env)
    out = transaction(d, "joe@sender.test", ["fwd@example.test"],
                      sample_message("clean end, forwarded"))
    assert_reply(out["eod"], "250 2.0.0")
    assert_clean_end(pf, "forwarded")


def test_queued_delivery_to_postfix_ends_with_quit(fwd_env, postfixes, tmp_path):
    from peers.sasl import BOB, USERS, submission_daemon
    pf, slot, sink = remote_postfix(postfixes, fwd_env)
    sub = submission_daemon(lambda **kw: daemon(fwd_env, **kw), tmp_path / "sasl")
    s = sub.smtp_tls()
    try:
        s.login(BOB, USERS[BOB])
        msg = crlf("From: Bob <%s>\nTo: carol@remote.test\nSubject: clean end, queued\n"
                   "Message-ID: <clean.queued@example.test>\n"
                   "Date: Thu, 01 Jan 2026 00:00:00 +0000\n\nhi\n" % BOB)
        assert s.sendmail(BOB, ["carol@remote.test"], msg) == {}
        s.quit()
    finally:
        s.close()
    pf.wait_log(r"to=<carol@remote\.test>, relay=[^\n]*status=sent", timeout=QUEUE_TIMEOUT)
    assert_clean_end(pf, "queued")

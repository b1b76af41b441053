"""Smuggling battery (doc/protocol.md, "Message content": the end of data is
<CRLF>.<CRLF> and nothing else; at the first bare CR or LF, or NUL, 5xx,
nothing kept, close; commands pipelined behind STARTTLS are discarded;
PIPELINING).

Every published end-of-data variant is sent with a complete smuggled
transaction behind it in the same write, on the mx role (checked in the
Maildirs) and on the forwarding path (checked on the wire at a recording
remote: never a second MAIL FROM, never a final dot for a refused message,
never a bare CR or LF, never a NUL), and on the submission role (checked in
the queue's deliveries).  Then STARTTLS command injection, and pipelining
abuse: 200 commands in one write get 200 replies, in order, one by one.
"""

import random
import re
import socket

import pytest

from harness import dot_stuff, sample_message, split_delivered
from peers.remote import assert_reply, fwd_env  # noqa: F401
from peers.sasl import ALICE, USERS, plain_b64, submission_daemon

HEAD = (b"From: s@sender.test\r\nTo: alice@example.test\r\nSubject: first\r\n\r\n"
        b"first part")
SMUGGLED_MX = (b"MAIL FROM:<evil@evil.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n"
               b"From: evil@evil.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
               b".\r\n")
SMUGGLED_FWD = SMUGGLED_MX.replace(b"<bob@example.test>", b"<victim@remote.test>")

BAD, DATA, END, EOF, LONG = "521", "data", "end", "eof", "long"

# name -> (end-of-data attempt appended to HEAD, expected handling)
#   BAD   bare CR/LF or NUL: 521 5.5.2 (or a reset), nothing kept, closed
#         (NUL: a next hop that drops NUL before parsing would read
#         <CRLF>NUL.<CRLF> as the end of data; issue 12, point 5)
#   DATA  not an end: everything up to the smuggled message's own final
#         dot is data of ONE message (or the message is refused)
#   END   a real <CRLF>.<CRLF>: what follows are ordinary pipelined commands
#   EOF   the client goes away in the middle: nothing kept
#   LONG  a text line over 1000 octets: 554 5.6.0 at the (smuggled) dot
VARIANTS = {
    "LF.LF": (b"\n.\n", BAD),
    "LF.CRLF": (b"\n.\r\n", BAD),
    "CRLF.LF": (b"\r\n.\n", BAD),
    "CR.CRLF": (b"\r.\r\n", BAD),
    "CRLF.CR": (b"\r\n.\r", BAD),
    "CR.CR": (b"\r.\r", BAD),
    "LF.CR": (b"\n.\r", BAD),
    "CRLF.CRCRLF": (b"\r\n.\r\r\n", BAD),
    "CRCRLF.CRLF": (b"\r\r\n.\r\n", BAD),
    "CRLF.LFLF": (b"\r\n.\n\n", BAD),
    "LFLF.LFLF": (b"\n\n.\n\n", BAD),
    "CRLF NUL.CRLF": (b"\r\n\x00.\r\n", BAD),
    "CRLF .NUL CRLF": (b"\r\n.\x00\r\n", BAD),
    "CRLF NUL.NUL CRLF": (b"\r\n\x00.\x00\r\n", BAD),
    "CRLF NUL NUL.CRLF": (b"\r\n\x00\x00.\r\n", BAD),
    "CRLF. NUL CRLF": (b"\r\n.\r\x00\n", BAD),
    "NUL CRLF.CRLF": (b"\x00\r\n.\r\n", BAD),
    "LF NUL.LF": (b"\n\x00.\n", BAD),
    "CRLF.SP CRLF": (b"\r\n. \r\n", DATA),
    "CRLF..CRLF": (b"\r\n..\r\n", DATA),
    "CRLF...CRLF": (b"\r\n...\r\n", DATA),
    "run of 500 dots": (b"\r\n" + b"." * 500 + b"\r\n", DATA),
    "run of 999 dots": (b"\r\n" + b"." * 999 + b"\r\n", DATA),
    "run of 1200 dots": (b"\r\n" + b"." * 1200 + b"\r\n", LONG),
    "CRLF.CRLF (control)": (b"\r\n.\r\n", END),
    "CRLF. then EOF": (b"\r\n.", EOF),
    "CRLF.CR then EOF": (b"\r\n.\r", EOF),
}


def has_bare_cr_or_lf(data):
    return re.search(rb"(?<!\r)\n|\r(?!\n)", data) is not None


def attack_bytes(case, smuggled):
    tail, kind = VARIANTS[case]
    if kind == EOF:
        return HEAD + tail, kind
    return HEAD + tail + smuggled + b"QUIT\r\n", kind


def open_data(d, rcpt, sender="s@sender.test"):
    c = d.dialog(timeout=30)
    c.cmd("EHLO client.sender.test", "250")
    c.cmd("MAIL FROM:<%s>" % sender, "250 2.1.0")
    c.cmd("RCPT TO:<%s>" % rcpt, "250 2.1.5")
    c.cmd("DATA", "354")
    return c


def send_attack(c, data, kind):
    c.send(data)
    if kind == EOF:
        c.sock.shutdown(socket.SHUT_WR)
    replies, closed = c.read_all_replies(timeout=8)
    c.close()
    return replies, closed


def no_2xx_3xx(replies):
    return not [r for r in replies if r[:1] in ("2", "3")]


# --------------------------------------------------------------------------
# mx role


@pytest.mark.parametrize("case", list(VARIANTS))
def test_mx_end_of_data_variant(mx, case):
    data, kind = attack_bytes(case, SMUGGLED_MX)
    c = open_data(mx, "alice@example.test")
    replies, closed = send_attack(c, data, kind)
    ctx = "case %r: replies %r" % (case, replies)
    assert mx.messages("bob@example.test") == [] or kind == END, ctx
    if kind == BAD:
        assert no_2xx_3xx(replies), ctx
        if replies:
            assert replies[0].startswith("521 5.5.2"), ctx
        assert closed, ctx
        assert mx.stored_files() == [], ctx
    elif kind == EOF:
        assert no_2xx_3xx(replies), ctx
        assert closed, ctx
        assert mx.stored_files() == [], ctx
    elif kind == LONG:
        assert replies and replies[0].startswith("554 5.6.0"), ctx
        assert mx.stored_files() == [], ctx
        assert replies[1:] == ["221 2.0.0"] or replies[1].startswith("221"), ctx
    elif kind == DATA:
        # never 521 (no bare CR/LF was sent); one message or a refusal
        assert replies, ctx
        assert replies[0][:1] in ("2", "5") and not replies[0].startswith("521"), ctx
        assert len(replies) == 2 and replies[1].startswith("221"), ctx
        if replies[0].startswith("2"):
            assert replies[0].startswith("250 2.0.0"), ctx
            [content] = mx.messages("alice@example.test")
            body = split_delivered(content)[1]
            assert b"MAIL FROM:<evil@evil.test>\nRCPT TO:<bob@example.test>\nDATA\n" in body
            assert body.endswith(b"\nsmuggled\n"), body[-200:]
            assert mx.stored_files() == mx.message_files("alice@example.test")
        else:
            assert mx.stored_files() == [], ctx
    else:   # END: the rest is an ordinary second transaction the client sees
        assert [r[:3] for r in replies] == ["250", "250", "250", "354", "250", "221"], ctx
        for r, want in zip(replies, ["250 2.0.0", "250 2.1.0", "250 2.1.5", "354",
                                     "250 2.0.0", "221 2.0.0"]):
            assert r.startswith(want), ctx
        [a] = mx.messages("alice@example.test")
        [b] = mx.messages("bob@example.test")
        assert b"smuggled" not in a and b"evil" not in split_delivered(a)[1]
        assert split_delivered(b)[1].endswith(b"\nsmuggled\n")
    # the daemon still serves others
    with mx.dialog() as c2:
        c2.cmd("EHLO again.sender.test", "250")
        c2.cmd("QUIT", "221")


# --------------------------------------------------------------------------
# the forwarding path, checked at the remote


ALIASES = {"fwd@example.test": ["carol@remote.test"]}
BUDGETS = "forward_rcpt_budget 10s\nforward_data_budget 10s"


def check_wire(r, ctx):
    r.wait_closed(timeout=15)          # bounded; the checks below decide
    mails = [(v, a) for c in r.connections for v, a in c.commands if v == "MAIL"]
    assert len(mails) <= 1, "remote got a second MAIL FROM: %r\n%s\n%s" % (
        mails, ctx, r.transcript())
    for c in r.connections:
        assert not has_bare_cr_or_lf(c.raw), "bare CR/LF on the wire: %r\n%s" % (c.raw, ctx)
        assert b"\x00" not in c.raw, "NUL on the wire: %r\n%s" % (c.raw, ctx)
        assert b"evil@evil.test>\r\nRCPT" not in c.raw.split(b"DATA\r\n", 1)[0], c.raw
        assert not any(v == "RCPT" and "victim" in (a or "") for v, a in c.commands), ctx
        assert len(c.transactions) <= 1, ctx


@pytest.mark.parametrize("case", list(VARIANTS))
def test_forward_end_of_data_variant(fwd_env, case):
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS)
    data, kind = attack_bytes(case, SMUGGLED_FWD)
    c = open_data(d, "fwd@example.test")
    replies, closed = send_attack(c, data, kind)
    ctx = "case %r: client replies %r" % (case, replies)
    r.wait_closed(timeout=15)
    check_wire(r, ctx)
    eod_ok = bool(replies) and replies[0].startswith("2")
    if not eod_ok:
        assert r.completed_data() == [], "final dot sent for a refused message\n%s\n%s" % (
            ctx, r.transcript())
    if kind in (BAD, EOF):
        assert no_2xx_3xx(replies), ctx
        if replies and kind == BAD:
            assert replies[0].startswith("521 5.5.2"), ctx
        assert closed, ctx
        assert r.completed_data() == [], r.transcript()
    elif kind == LONG:
        assert replies and replies[0].startswith("554 5.6.0"), ctx
        assert r.completed_data() == [], r.transcript()
    elif kind == DATA:
        assert replies and not replies[0].startswith("521"), ctx
        if eod_ok:
            [tx] = r.delivered()
            assert b"MAIL FROM:<evil@evil.test>\r\nRCPT TO:<victim@remote.test>\r\nDATA\r\n" \
                in tx.content
            assert tx.content.endswith(b"\r\nsmuggled\r\n"), tx.content[-200:]
    else:   # END: the second transaction is visible to the client and refused
        assert replies[0].startswith("250"), ctx
        assert replies[1].startswith("250 2.1.0"), ctx
        assert replies[2].startswith("554 5.7.1"), ctx
        assert replies[3][:1] == "5", ctx
        [tx] = r.delivered()
        assert b"smuggled" not in tx.content
    fwd_env.assert_no_bounce()


# --------------------------------------------------------------------------
# the submission role: a logged-in user's message goes through the queue,
# and the queue would hand a NUL on to the next server (issue 12, point 5)

NUL_CASES = [k for k, (tail, kind) in VARIANTS.items() if b"\x00" in tail]
# the smuggled transaction names another user as the sender
SMUGGLED_SUB = (b"MAIL FROM:<bob@example.test>\r\n"
                b"RCPT TO:<alice@example.test>\r\n"
                b"DATA\r\n"
                b"From: bob@example.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
                b".\r\n")


@pytest.mark.parametrize("case", NUL_CASES)
def test_submission_nul_variant_nothing_queued(chamoisd, tmp_path, case):
    sub = submission_daemon(chamoisd, tmp_path / "sasl")
    d = sub.d
    tail, kind = VARIANTS[case]
    c = sub.login_dialog(ALICE, USERS[ALICE])
    c.cmd("MAIL FROM:<%s>" % ALICE, "250 2.1.0")
    c.cmd("RCPT TO:<bob@example.test>", "250 2.1.5")
    c.cmd("DATA", "354")
    replies, closed = send_attack(c, HEAD + tail + SMUGGLED_SUB + b"QUIT\r\n", kind)
    ctx = "case %r: replies %r" % (case, replies)
    assert no_2xx_3xx(replies), ctx
    if replies:
        assert replies[0].startswith("521 5.5.2"), ctx
    assert closed, ctx
    assert "submission queue user=" not in d.log(), ctx
    # the queue still works, and delivers only what comes next
    msg = sample_message("after the attack")
    with sub.login_dialog(ALICE, USERS[ALICE]) as c2:
        c2.cmd("MAIL FROM:<%s>" % ALICE, "250 2.1.0")
        c2.cmd("RCPT TO:<bob@example.test>", "250 2.1.5")
        c2.cmd("DATA", "354")
        c2.send(dot_stuff(msg) + b".\r\n")
        c2.expect("250 2.0.0")
        c2.cmd("QUIT", "221")
    [m] = d.wait_messages("bob@example.test", 1, timeout=30)
    assert b"after the attack" in m and b"first part" not in m, m
    assert d.messages("alice@example.test") == []
    assert d.log().count("submission queue user=") == 1, d.log()


# --------------------------------------------------------------------------
# STARTTLS injection


def test_starttls_rset_mail_injection(mx):
    with mx.dialog() as c:
        c.cmd("EHLO client.sender.test", "250")
        c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<x@y>\r\n")
        c.expect("220")
        c.handshake()            # refuses if anything else came in plaintext
        text = c.cmd("EHLO client.sender.test", "250")
        assert text.split("\n")[0][4:].startswith("mx.example.test"), text
        c.cmd("RCPT TO:<alice@example.test>", "503")
        c.cmd("QUIT", "221")
    assert mx.stored_files() == []


@pytest.mark.parametrize("injected", [
    b"STARTTLS\r\nRSET\r\nMAIL FROM:<x@y>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
    b"Subject: injected\r\n\r\nx\r\n.\r\n",
    b"STARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<x@y>\r\n",
    b"STARTTLS\r\nSTARTTLS\r\n",
    b"STARTTLS\r\n\r\n\r\nMAIL FROM:<x@y>\r\n",
    b"STARTTLS\r\nMAIL FROM:<x@y>",                 # no line end yet
])
def test_starttls_injection_variants(mx, injected):
    with mx.dialog() as c:
        c.cmd("EHLO client.sender.test", "250")
        c.send(injected)
        c.expect("220")
        c.handshake()
        c.cmd("EHLO client.sender.test", "250")
        c.cmd("RCPT TO:<alice@example.test>", "503")
        c.cmd("MAIL FROM:<s@sender.test>", "250 2.1.0")
        c.cmd("QUIT", "221")
    assert mx.stored_files() == []


def test_starttls_injection_on_submission(chamoisd, tmp_path):
    """An AUTH pipelined behind STARTTLS must not log the client in."""
    sub = submission_daemon(chamoisd, tmp_path / "sasl")
    with sub.dialog(tls=False) as c:
        c.send(("STARTTLS\r\nAUTH PLAIN %s\r\nMAIL FROM:<%s>\r\n"
                % (plain_b64(ALICE, USERS[ALICE]), ALICE)).encode())
        c.expect("220")
        c.handshake()
        c.cmd("EHLO laptop.client.test", "250")
        c.cmd("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
        c.cmd("QUIT", "221")


# --------------------------------------------------------------------------
# pipelining abuse


class Model:
    """Expected reply (prefix) of each command on the mx role."""

    def __init__(self):
        self.tx = False
        self.rcpts = 0

    def step(self, rng):
        k = rng.randrange(10)
        if k == 0:
            return "NOOP", "250 2.0.0"
        if k == 1:
            self.tx, self.rcpts = False, 0
            return "RSET", "250 2.0.0"
        if k == 2:
            if self.tx:
                return "MAIL FROM:<s@sender.test>", "503"
            self.tx = True
            return "MAIL FROM:<s@sender.test>", "250 2.1.0"
        if k in (3, 4):
            if not self.tx:
                return "RCPT TO:<alice@example.test>", "503"
            if self.rcpts >= 50:
                self.tx, self.rcpts = False, 0
                return "RSET", "250 2.0.0"
            self.rcpts += 1
            return "RCPT TO:<alice@example.test>", "250 2.1.5"
        if k == 5:
            return "RCPT TO:<nobody@example.test>", ("550 5.1.1" if self.tx else "503")
        if k == 6:
            return "RCPT TO:<user@victim.test>", ("554 5.7.1" if self.tx else "503")
        if k == 7:
            return "XYZZY plugh", "500"
        if k == 8:
            return "MAIL TO:<s@sender.test>", "5"
        return "VRFY alice@example.test", "252"


def sequence(n, seed):
    rng, m = random.Random(seed), Model()
    return [m.step(rng) for _ in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_200_pipelined_commands_200_replies_in_order(chamoisd, seed):
    d = chamoisd(extra_conf="max_errors 1000")
    seq = sequence(200, seed)
    with d.dialog(timeout=30) as c:
        c.cmd("EHLO client.sender.test", "250")
        c.send(b"".join(cmd.encode() + b"\r\n" for cmd, _ in seq))
        for i, (cmd, want) in enumerate(seq):
            text = c.read_reply()
            if want == "252":
                ok = text[:1] in ("2", "5")     # VRFY may be off: any 2xx/5xx
            else:
                ok = text.startswith(want)
            assert ok, "reply %d to %r: %r, expected %r" % (i, cmd, text, want)
        c.cmd("NOOP", "250 2.0.0")              # nothing left over
        assert c.pending() == b""
        c.cmd("QUIT", "221")
    assert d.stored_files() == []


def test_pipelined_errors_past_limit_close_in_order(mx):
    """With the default error limit: replies in order up to the 421, then
    the close; nothing after it."""
    seq = [("XYZZY", "500")] * 200
    with mx.dialog(timeout=30) as c:
        c.cmd("EHLO client.sender.test", "250")
        try:
            c.send(b"".join(cmd.encode() + b"\r\n" for cmd, _ in seq))
        except OSError:
            pass
        replies, closed = c.read_all_replies(timeout=10)
    assert closed, replies
    if replies:
        assert len(replies) < 200, len(replies)
        for r in replies[:-1]:
            assert r.startswith("500"), replies
        assert replies[-1].startswith("421 4.7.0") or replies[-1].startswith("500"), replies


def test_pipelined_data_with_message_in_same_write(mx):
    msg = sample_message("all in one write")
    with mx.dialog() as c:
        c.cmd("EHLO client.sender.test", "250")
        c.send(b"MAIL FROM:<s@sender.test>\r\nRCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<user@victim.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
               + dot_stuff(msg) + b".\r\n"
               b"MAIL FROM:<t@sender.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
               + dot_stuff(sample_message("second")) + b".\r\nQUIT\r\n")
        for want in ("250 2.1.0", "250 2.1.5", "554 5.7.1", "250 2.1.5", "354",
                     "250 2.0.0", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221"):
            c.expect(want)
        assert c.wait_closed()
    assert [split_delivered(m)[1] for m in mx.messages("alice@example.test")] == \
        [msg.replace(b"\r\n", b"\n")]
    assert len(mx.messages("bob@example.test")) == 2


def test_forward_pipelined_replies_in_order(fwd_env):
    """Forwarded RCPT (slow remote), other-route RCPT, unknown, NOOP, DATA
    and the message in one write: every reply in order, one transaction
    at the remote."""
    r = fwd_env.remote("remote.test", delay={"rcpt": 1})
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS)
    msg = sample_message("pipelined forward")
    with d.dialog(timeout=30) as c:
        c.cmd("EHLO client.sender.test", "250")
        c.send(b"MAIL FROM:<s@sender.test>\r\n"
               b"RCPT TO:<fwd@example.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"NOOP\r\n"
               b"DATA\r\n" + dot_stuff(msg) + b".\r\nQUIT\r\n")
        for want in ("250 2.1.0", "250", "452 4.5.3", "550 5.1.1", "250 2.0.0", "354",
                     "250", "221"):
            c.expect(want)
    r.wait_closed(timeout=15)
    [tx] = r.delivered()
    assert tx.accepted == ["carol@remote.test"]
    assert tx.content.endswith(msg)
    check_wire(r, "pipelined forward")
    fwd_env.assert_no_bounce()

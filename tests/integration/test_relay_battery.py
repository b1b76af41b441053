"""Relay battery (doc/protocol.md, "mx role": a recipient outside the local
domains gets 554 5.7.1, no relaying; submission roles: AUTH required before
MAIL, STARTTLS before AUTH).

The classic open-relay tricks are tried as RCPT forms against a chamoisd
whose only local domain is example.test (mailboxes alice@ and bob@), while
a dnsmasq gives victim.test -- and every other domain named in the forms,
example.test itself included -- an MX pointing at a *recording* aiosmtpd
remote, and bare listeners sit on 127.0.0.1 and ::1 at remote_port for the
address literals.  An accidental relay would therefore be seen.

For every form: the reply is a refusal (5xx), or a 250 after which the
message lands only in a real local Maildir (alice's or bob's, alice being
the postmaster) spelled as in the table, and no remote or literal listener
saw any connection at all.
"""

import socket
import subprocess
import threading

import pytest

import harness
from harness import Dialog, ConnectionClosed, sample_message, dot_stuff
from peers.remote import fwd_env  # noqa: F401
from peers.sasl import ALICE, CLIENT_NAME, USERS, plain_b64, submission_daemon

LOCAL = ("alice@example.test", "bob@example.test")
BUDGETS = "forward_rcpt_budget 5s\nforward_data_budget 10s"

def long_domain(suffix, total=250):
    """A domain of exactly `total` octets ending in suffix (labels <= 63)."""
    need = total - len(suffix) - 1
    labels = []
    while need > 0:
        n = min(63, need)
        if need - n == 1:          # never leave room for an empty label
            n -= 1
        labels.append("l" * n)
        need -= n + 1
    name = ".".join(labels) + "." + suffix
    assert len(name) == total, (len(name), name)
    return name


LONG_VICTIM = long_domain("victim.test")
LONG_LOCALDOM = long_domain("example.test")
FIT_VICTIM = long_domain("victim.test", 240)        # user@ + 240: fits 254
FIT_LOCALDOM = long_domain("example.test", 240)

# Domains that get an MX at the recording remote (a relay to any of them
# would connect there).
TRAP_DOMAINS = ["x.test", "example.test", "sub.example.test",
                "example.test.victim.test", "xn--exmple-cua.test", "exa.test",
                LONG_VICTIM, LONG_LOCALDOM, FIT_VICTIM, FIT_LOCALDOM]

REFUSE, LOCAL_ONLY = "refuse", "refuse-or-local"


def pad_local(prefix, n):
    return prefix + "x" * (n - len(prefix))


# name -> (RCPT argument bytes after "RCPT TO:", expectation, MAIL params)
# expectation: REFUSE (5xx), LOCAL_ONLY (5xx or local delivery), or the
# mailbox that must receive the message ("alice@example.test").
CASES = {
    "percent hack": (b"<user%victim.test@example.test>", REFUSE),
    "percent hack on alice": (b"<alice%victim.test@example.test>", REFUSE),
    "double percent": (b"<user%victim.test%x.test@example.test>", REFUSE),
    "bang path": (b"<victim.test!user@example.test>", REFUSE),
    "bang path to alice": (b"<victim.test!alice@example.test>", REFUSE),
    "bang path unqualified": (b"<victim.test!user>", REFUSE),
    "source route": (b"<@example.test:user@victim.test>", REFUSE),
    "source route two hops": (b"<@example.test,@x.test:user@victim.test>", REFUSE),
    "source route via victim to alice": (b"<@victim.test:alice@example.test>", LOCAL_ONLY),
    "quoted local part with @": (b'<"user@victim.test"@example.test>', REFUSE),
    "quoted local part with %": (b'<"user%victim.test"@example.test>', REFUSE),
    "quoted alice": (b'<"alice"@example.test>', LOCAL_ONLY),
    "quoted alice@victim": (b'<"alice@victim.test"@example.test>', REFUSE),
    "two at signs": (b"<user@victim.test@example.test>", REFUSE),
    "two at signs local first": (b"<alice@example.test@victim.test>", REFUSE),
    "address literal v4": (b"<user@[127.0.0.1]>", REFUSE),
    "address literal v4 alice": (b"<alice@[127.0.0.1]>", LOCAL_ONLY),
    "address literal v6": (b"<user@[IPv6:::1]>", REFUSE),
    "postmaster at literal": (b"<postmaster@[127.0.0.1]>", LOCAL_ONLY),
    "trailing dot": (b"<alice@example.test.>", LOCAL_ONLY),
    "trailing dot upper": (b"<ALICE@EXAMPLE.TEST.>", LOCAL_ONLY),
    "trailing dot victim": (b"<user@victim.test.>", REFUSE),
    "leading dot domain": (b"<alice@.example.test>", REFUSE),
    "double dot domain": (b"<alice@example..test>", REFUSE),
    "upper case": (b"<ALICE@EXAMPLE.TEST>", "alice@example.test"),
    "mixed case domain": (b"<alice@EXAMPLE.test>", "alice@example.test"),
    "mixed case bob": (b"<Bob@Example.Test>", "bob@example.test"),
    "IDN lookalike U-label": ("<alice@exämple.test>".encode(), REFUSE),
    "IDN lookalike U-label SMTPUTF8": ("<alice@exämple.test>".encode(), REFUSE, " SMTPUTF8"),
    "IDN lookalike A-label": (b"<alice@xn--exmple-cua.test>", REFUSE),
    "local domain as prefix": (b"<alice@example.test.victim.test>", REFUSE),
    "subdomain of local": (b"<alice@sub.example.test>", REFUSE),
    "suffix of local": (b"<alice@exa.test>", REFUSE),
    "local part 64 unknown": (("<%s@example.test>" % ("u" * 64)).encode(), REFUSE),
    "local part 64 alice tag": (("<%s@example.test>" % pad_local("alice+", 64)).encode(),
                                "alice@example.test"),
    "local part 65 alice tag": (("<%s@example.test>" % pad_local("alice+", 65)).encode(),
                                LOCAL_ONLY),
    "local part 250": (("<%s@example.test>" % ("u" * 250)).encode(), REFUSE),
    "local part 250 percent": (("<%s%%victim.test@example.test>" % ("u" * 236)).encode(),
                               REFUSE),
    "domain 250 under victim": (("<user@%s>" % LONG_VICTIM).encode(), REFUSE),
    "domain 250 under example.test": (("<alice@%s>" % LONG_LOCALDOM).encode(), REFUSE),
    "domain 240 under victim": (("<user@%s>" % FIT_VICTIM).encode(), REFUSE),
    "domain 240 under example.test": (("<alice@%s>" % FIT_LOCALDOM).encode(), REFUSE),
    "plain relay": (b"<user@victim.test>", REFUSE),
    "postmaster at victim": (b"<postmaster@victim.test>", REFUSE),
    "postmaster local": (b"<postmaster@example.test>", "alice@example.test"),
    "bare postmaster": (b"<postmaster>", "alice@example.test"),
    "unbracketed relay": (b"user@victim.test", REFUSE),
    "space in address": (b"<alice@example.test user@victim.test>", REFUSE),
    "second address as parameter": (b"<user@victim.test> <alice@example.test>", REFUSE),
    "NUL after local": (b"<alice@example.test\x00@victim.test>", REFUSE),
    "NUL before local": (b"<user@victim.test\x00alice@example.test>", REFUSE),
    "bare CR in address": (b"<user@victim.test\ralice@example.test>", REFUSE),
    "bare LF in address": (b"<alice@example.test\nRCPT TO:<user@victim.test>", REFUSE),
}


def case_args(case):
    v = CASES[case]
    return v[0], v[1], (v[2] if len(v) > 2 else "")


# --------------------------------------------------------------------------
# bare listeners for the address literals


class Sentinel:
    """Accepts on host:port and records every connection (and closes it)."""

    def __init__(self, host, port):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.host, self.port = host, port
        self.connections = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections.append(peer)
            conn.close()

    def stop(self):
        self._stop = True
        self.thread.join(timeout=5)
        self.sock.close()


def sentinels(port):
    out = []
    for host in ("127.0.0.1", "::1"):
        try:
            out.append(Sentinel(host, port))
        except OSError:
            pass            # port taken there, or no IPv6: the remote still traps
    return out


@pytest.fixture
def relay_env(fwd_env):
    victim = fwd_env.remote("victim.test")
    for dom in TRAP_DOMAINS:
        fwd_env.dns.mx(dom, "mx1.victim.test", 10)
    traps = sentinels(fwd_env.remote_port)
    try:
        yield fwd_env, victim, traps
    finally:
        for t in traps:
            t.stop()


def assert_nothing_relayed(env, victim, traps, context=""):
    env.remotes.settle()
    assert victim.connections == [], "relay! the victim remote saw:\n%s\n%s" % (
        victim.transcript(), context)
    assert env.remotes.connections() == [], env.remotes.transcript()
    for t in traps:
        assert t.connections == [], "relay! connection to %s:%d from %r\n%s" % (
            t.host, t.port, t.connections, context)


def assert_only_local(d, expected=None):
    """Every stored file is in new/ of a real mailbox's Maildir (table
    spelling); with `expected`, exactly one file, in that mailbox."""
    real = {d.maildir(a) / "new" for a in LOCAL}
    files = d.stored_files()
    for f in files:
        assert f.parent in real, "file outside a real mailbox's new/: %s" % f
    if expected is not None:
        assert files == d.message_files(expected), (files, expected)
        assert len(files) == 1, files


def read_replies_after_rcpt(c, arg):
    """Replies to the RCPT line: one reply normally; for arguments that may
    split into several lines, everything until the server goes quiet."""
    if b"\n" in arg or b"\r" in arg:
        replies, closed = c.read_all_replies(timeout=3)
        return replies, closed
    try:
        return [c.read_reply()], False
    except (ConnectionClosed, ConnectionResetError):
        return [], True


def run_case(d, arg, mail_params, subject):
    """MAIL, RCPT <arg>, and DATA when something was accepted.  Returns
    (rcpt replies, eod reply or None, transcript)."""
    c = d.dialog()
    eod = None
    try:
        c.cmd("EHLO client.sender.test", "250")
        c.cmd("MAIL FROM:<s@sender.test>%s" % mail_params, "250 2.1.0")
        c.send(b"RCPT TO:" + arg + b"\r\n")
        replies, closed = read_replies_after_rcpt(c, arg)
        if not closed and any(r.startswith("2") for r in replies):
            c.cmd("DATA", "354")
            c.send(dot_stuff(sample_message(subject)) + b".\r\n")
            eod = c.read_reply(timeout=20)
        if not closed:
            try:
                c.cmd("QUIT", "221")
            except (ConnectionClosed, ConnectionError, AssertionError):
                pass
    finally:
        c.close()
    return replies, eod, c.transcript


@pytest.mark.parametrize("case", list(CASES))
def test_relay_trick_on_mx(relay_env, case):
    env, victim, traps = relay_env
    arg, want, params = case_args(case)
    d = env.daemon(extra_conf=BUDGETS)
    replies, eod, transcript = run_case(d, arg, params, "relay " + case)
    ctx = "dialog: %r" % transcript
    accepted = [r for r in replies if r.startswith("2")]
    for r in replies:
        assert r[:1] in ("2", "5"), "neither accepted nor refused: %r\n%s" % (r, ctx)
    if want == REFUSE:
        assert not accepted, "accepted a form that must be refused\n%s" % ctx
        assert d.stored_files() == [], ctx
    elif want == LOCAL_ONLY:
        if accepted:
            assert eod is not None and eod.startswith("250"), ctx
            assert_only_local(d)
            assert len(d.stored_files()) == 1, (d.stored_files(), ctx)
        else:
            assert d.stored_files() == [], ctx
    else:
        assert accepted and accepted[0].startswith("250 2.1.5"), ctx
        assert eod is not None and eod.startswith("250 2.0.0"), ctx
        assert_only_local(d, want)
    if case in ("plain relay", "postmaster at victim", "local domain as prefix",
                "subdomain of local", "address literal v4", "address literal v6",
                "domain 240 under victim", "domain 240 under example.test",
                "IDN lookalike A-label", "IDN lookalike U-label SMTPUTF8"):
        assert replies and replies[0].startswith("554 5.7.1"), ctx
    assert_nothing_relayed(env, victim, traps, ctx)


def test_relay_tricks_pipelined_behind_a_good_recipient(relay_env):
    """The refusable forms pipelined, 8 to a transaction (below the
    session's error limit), behind one good recipient: one reply per RCPT,
    in order, each a refusal; only alice gets the messages."""
    env, victim, traps = relay_env
    d = env.daemon(extra_conf=BUDGETS)
    forms = [CASES[k][0] for k in CASES
             if CASES[k][1] == REFUSE and len(CASES[k]) == 2
             and not any(x in CASES[k][0] for x in (b"\r", b"\n", b"\x00"))]
    chunks = [forms[i:i + 8] for i in range(0, len(forms), 8)]
    for n, chunk in enumerate(chunks):
        c = d.dialog()
        try:
            c.cmd("EHLO client.sender.test", "250")
            c.send(b"MAIL FROM:<s@sender.test>\r\nRCPT TO:<alice@example.test>\r\n"
                   + b"".join(b"RCPT TO:" + f + b"\r\n" for f in chunk) + b"DATA\r\n")
            c.expect("250 2.1.0")
            c.expect("250 2.1.5")
            for f in chunk:
                assert c.read_reply().startswith("5"), (f, c.transcript[-4:])
            c.expect("354")
            c.send(dot_stuff(sample_message("pipelined tricks %d" % n)) + b".\r\n")
            c.expect("250 2.0.0", timeout=20)
            c.cmd("QUIT", "221")
        finally:
            c.close()
    assert len(d.message_files("alice@example.test")) == len(chunks)
    assert_only_local(d)
    for content in d.messages("alice@example.test"):
        head = content.split(b"\n\n", 1)[0]
        assert b"victim" not in head, head
    assert_nothing_relayed(env, victim, traps)


# --------------------------------------------------------------------------
# submission without AUTH


SUB_FORMS = [CASES[k][0] for k in CASES if b"\n" not in CASES[k][0] and b"\r" not in CASES[k][0]]


@pytest.fixture
def relay_sub(relay_env, tmp_path):
    env, victim, traps = relay_env
    sub = submission_daemon(env.daemon, tmp_path / "sasl", extra_conf=BUDGETS)
    return env, victim, traps, sub


def check_unauthenticated(c, form):
    """MAIL is 530 5.7.0, the RCPT is refused (never 2xx)."""
    c.cmd("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
    c.send(b"RCPT TO:" + form + b"\r\n")
    r = c.read_reply()
    assert r.startswith("5"), (form, r)


def queue_text(d):
    ctl = harness.ROOT / "bin" / "chamoisctl"
    if not ctl.exists():
        return ""
    p = subprocess.run([str(ctl), "-f", str(d.conf), "queue"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30, cwd="/")
    return p.stdout.decode("utf-8", "replace")


def test_submission_starttls_without_auth_never_relays(relay_sub):
    env, victim, traps, sub = relay_sub
    for form in SUB_FORMS:
        with sub.dialog(tls=True) as c:
            check_unauthenticated(c, form)
            c.send(b"DATA\r\n")
            assert c.read_reply().startswith("5"), c.transcript
            c.cmd("RSET", "250")
            c.cmd("QUIT", "221")
    assert sub.d.stored_files() == []
    assert_nothing_relayed(env, victim, traps)
    q = queue_text(sub.d)
    assert "victim" not in q and "@" not in q, q


def test_submission_pipelined_transaction_without_auth(relay_sub):
    """MAIL/RCPT/DATA/message in one write after STARTTLS: MAIL 530, RCPT
    and DATA refused, the message lines never become a message."""
    env, victim, traps, sub = relay_sub
    with sub.dialog(tls=True) as c:
        c.send(b"MAIL FROM:<alice@example.test>\r\n"
               b"RCPT TO:<user@victim.test>\r\n"
               b"RCPT TO:<user%victim.test@example.test>\r\n"
               b"DATA\r\n")
        c.expect("530 5.7.0")
        for _ in range(3):
            assert c.read_reply().startswith("5"), c.transcript
        c.cmd("NOOP", "250")
    assert sub.d.stored_files() == []
    assert_nothing_relayed(env, victim, traps)


def test_submission_plaintext_no_auth_no_relay(relay_sub):
    """Before STARTTLS: AUTH is not advertised and not accepted; MAIL 530;
    RCPT never 2xx."""
    env, victim, traps, sub = relay_sub
    with sub.dialog(tls=False) as c:
        ehlo = c.cmd("EHLO %s" % CLIENT_NAME, "250")
        assert not [l for l in ehlo.split("\n") if l[4:].upper().startswith("AUTH")], ehlo
        r = c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "5")
        assert r.startswith("538 5.7.11") or r.startswith("530"), r
        r = c.cmd("AUTH LOGIN", "5")
        for form in (b"<user@victim.test>", b"<user%victim.test@example.test>",
                     b"<@example.test:user@victim.test>"):
            check_unauthenticated(c, form)
        c.cmd("QUIT", "221")
    assert sub.d.stored_files() == []
    assert_nothing_relayed(env, victim, traps)


def test_submissions_implicit_tls_without_auth_never_relays(relay_sub):
    env, victim, traps, sub = relay_sub
    for form in (b"<user@victim.test>", b"<user%victim.test@example.test>",
                 b"<victim.test!user@example.test>", b"<user@[127.0.0.1]>",
                 b"<alice@example.test>"):
        with sub.sdialog() as c:
            check_unauthenticated(c, form)
            c.cmd("QUIT", "221")
    assert sub.d.stored_files() == []
    assert_nothing_relayed(env, victim, traps)

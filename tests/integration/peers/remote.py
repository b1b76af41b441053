"""Programmable remote SMTP servers (aiosmtpd) and the forwarding test
environment (dnsmasq + remotes + a chamoisd pointed at both).

Remotes
-------
chamoisd has one ``remote_port`` for every remote, so all remotes of a test
listen on the same port R, each on its own loopback address (127.0.0.2,
127.0.0.3, ...; 127.0.0.9 is kept free for a chamoisd that is its own MX).
R is picked free on all of 127.0.0.2-127.0.0.20.  Each remote is an
``aiosmtpd.controller.Controller`` (its own thread and event loop) whose
SMTP class records everything and can misbehave on purpose::

    pool = RemotePool(workdir)
    r = pool.add("remote.test",
                 rcpt={"carol@remote.test": "550 5.1.1 no such user carol"},
                 eod="450 4.2.0 try later",        # reply to the final dot
                 delay={"rcpt": 8},                 # seconds before replying
                 drop="data",                       # close after the first DATA line
                 starttls=True, smtputf8=False, eightbitmime=False)
    closed = pool.closed("down.test")               # an address nothing listens on
    ...
    pool.stop()

Behaviour keywords (any step may be given a reply, a delay or a drop):

    greeting, ehlo, mail, data, eod   reply text (one line, or several joined
                                      by "\\n" for a multi-line reply) or a
                                      callable (conn, arg) -> text or None
    rcpt                              the same, or a dict address -> text
                                      (addresses compared case-insensitively;
                                      missing: accepted)
    delay={step: seconds}             steps: greeting ehlo mail rcpt data eod
    hold=step                         wait at that step (as a delay does)
                                      until Remote.release() is called (or
                                      HOLD_MAX seconds have passed)
    drop=step                         close the connection instead of replying
                                      at that step; "data" closes after the
                                      first line of message data arrived
    starttls=True                     offer STARTTLS (self-signed harness cert)
    tls_cert=(cert, key)              ... with this certificate (chain) instead
    smtputf8=False                    do not offer SMTPUTF8 (MAIL ... SMTPUTF8
                                      then gets aiosmtpd's 501)
    eightbitmime=False                do not offer 8BITMIME (BODY= gets 555)
    dsn=True                          offer DSN (RFC 3461) and take RET, ENVID,
                                      NOTIFY and ORCPT (else they get 555)

Any reply starting with 421 closes the connection after it is sent.  After a
non-2xx greeting every command but QUIT gets 503 (RFC 5321 3.1).  Defaults:
220 greeting, EHLO with SIZE 8BITMIME SMTPUTF8 [STARTTLS], "250 2.1.0 Ok",
"250 2.1.5 Ok", "354 ...", "250 2.0.0 Ok: queued".

Records (read them from the test thread; they are filled in before the
corresponding reply is sent, so once chamoisd has answered its client the
remote's part is already recorded):

    Remote.connections   [Connection]  (the Controller's start-up probe is not
                                        recorded)
    Connection           .remote .peer .tls .helo .commands [(VERB, arg)]
                         .replies [text] .transactions [Transaction] .raw (all
                         bytes received, decrypted) .closed
    Transaction          .mail_from ('' for <>) .mail_options ['SIZE=..',
                         'BODY=8BITMIME', 'SMTPUTF8'] .rcpts [(addr, reply)]
                         .accepted [addr] .rcpt_options {addr: ['NOTIFY=..']}
                         .tls .data_raw (dot-stuffed bytes as
                         received, final dot excluded) .content (unstuffed)
                         .data_complete (final dot seen) .eod_reply .delivered
    Remote.delivered()   transactions that completed with a 2xx to the dot
    RemotePool.null_sender_attempts()  every MAIL FROM:<> any remote saw

The forwarding environment
--------------------------
``ForwardEnv`` (fixture ``fwd_env``) ties it together::

    r = fwd_env.remote("remote.test")              # MX remote.test -> mx1.remote.test -> 127.0.0.2
    fwd_env.null_mx("nullmx.test")
    d = fwd_env.daemon(aliases={"fwd@example.test": ["carol@remote.test"]},
                       extra_conf="forward_rcpt_budget 3s")
    ...
    fwd_env.assert_no_bounce(local={"alice@example.test": 0})

``daemon()`` builds a harness.Chamoisd (not started), replaces its
``dns_server`` line (the harness writes one pointing at a dead port; keys may
not repeat) with the dnsmasq's address, adds ``remote_port R``, starts
dnsmasq (records are fixed then) and the daemon.  ``dns=False`` keeps the
harness's dead DNS port (for the DNS-failure case).  Everything is stopped at
teardown, also on failure; the teardown fails the test like conftest's
``chamoisd`` fixture does if a daemon died, ignored SIGTERM or logged a
sanitizer report.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
import time
from pathlib import Path

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

import harness
from peers.dns import Dnsmasq

SELF_ADDRESS = "127.0.0.9"          # kept free for chamoisd's second listener
ADDRESSES = ["127.0.0.%d" % i for i in range(2, 21) if "127.0.0.%d" % i != SELF_ADDRESS]
STEPS = ("greeting", "ehlo", "mail", "rcpt", "data", "eod")
VERB_STEP = {"EHLO": "ehlo", "HELO": "ehlo", "MAIL": "mail", "RCPT": "rcpt", "DATA": "data"}
HOLD_MAX = 120                      # seconds a hold=step waits at most
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ThreadSanitizer")


# --------------------------------------------------------------------------
# records


class Transaction:
    def __init__(self, mail_from, mail_options, tls):
        self.mail_from = mail_from
        self.mail_options = list(mail_options)
        self.tls = tls
        self.rcpts = []             # (address, reply sent)
        self.accepted = []
        self.rcpt_options = {}      # address -> its RCPT parameters (upper case)
        self.data_started = False
        self.data_raw = b""
        self.data_complete = False
        self.content = None
        self.eod_reply = None
        self.mail_reply = "250 2.1.0 Ok"

    @property
    def delivered(self):
        return self.data_complete and (self.eod_reply or "").startswith("2")

    def __repr__(self):
        return ("<Transaction from=%r opts=%r rcpts=%r data=%d bytes complete=%s eod=%r>"
                % (self.mail_from, self.mail_options, self.rcpts, len(self.data_raw),
                   self.data_complete, self.eod_reply))


class Connection:
    def __init__(self, remote, peer):
        self.remote = remote
        self.peer = peer
        self.tls = False
        self.helo = None
        self.commands = []          # (VERB, arg or None)
        self.replies = []
        self.transactions = []
        self.raw = b""
        self.closed = False

    def transcript(self):
        return "\n".join(["%s %s" % (self.remote.name, self.peer)]
                         + ["  C: %s %s" % c for c in self.commands]
                         + ["  S: %s" % r for r in self.replies])

    def __repr__(self):
        return "<Connection to %s from %s tls=%s closed=%s tx=%r>" % (
            self.remote.name, self.peer, self.tls, self.closed, self.transactions)


def _null_sender(arg):
    return bool(re.match(r"(?i)^\s*FROM:\s*<\s*>", arg or ""))


# --------------------------------------------------------------------------
# the SMTP protocol with behaviours


class RecordingSMTP(SMTP):
    def __init__(self, remote, probe=False, **kwargs):
        super().__init__(remote._handler, **kwargs)
        self.remote = remote
        self.probe = probe
        self.conn = None
        self._greeted = False
        self._refusing = False      # after a non-2xx greeting
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._wrap(verb, method)

    # -- recording ---------------------------------------------------------

    def connection_made(self, transport):
        if self.conn is None and not self.probe:
            self.conn = Connection(self.remote, transport.get_extra_info("peername"))
            self.remote.connections.append(self.conn)
        super().connection_made(transport)

    def connection_lost(self, error):
        if self.conn is not None:
            self.conn.closed = True
        super().connection_lost(error)

    def data_received(self, data):
        if self.conn is not None:
            self.conn.raw += data
        super().data_received(data)

    def _getparams(self, params):
        # a remote with DSN takes its four parameters (RFC 3461)
        result = super()._getparams(params)
        if result is not None and self.remote.dsn:
            for k in ("RET", "ENVID", "NOTIFY", "ORCPT"):
                result.pop(k, None)
        return result

    def behaviour(self, step, arg=None):
        """The configured reply for a step (None: default)."""
        b = self.remote.behaviour.get(step)
        if callable(b):
            return b(self.conn, arg)
        return b

    async def reply(self, text):
        """Push a (possibly multi-line) reply; close after a 421."""
        await self.push(_multiline(text))
        if text.startswith("421"):
            self.close()

    def close(self):
        if self.transport is not None:
            self.transport.close()

    async def pause(self, step):
        d = (self.remote.delay or {}).get(step)
        if d and not self.probe:
            await asyncio.sleep(d)
        if self.remote.hold == step and not self.probe:
            deadline = time.monotonic() + HOLD_MAX
            while not self.remote.released.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)

    async def push(self, status):
        if self.conn is not None:
            self.conn.replies.append(status if isinstance(status, str)
                                     else status.decode("utf-8", "replace"))
        if not self._greeted:
            self._greeted = True
            if not self.probe:
                await self.pause("greeting")
                if self.remote.drop == "greeting":
                    self.conn.replies.pop()
                    self.close()
                    return
                g = self.behaviour("greeting")
                if g is not None:
                    self.conn.replies[-1] = g
                    self._refusing = not g.startswith("2")
                    await super().push(_multiline(g))
                    if g.startswith("421"):
                        self.close()
                    return
        await super().push(status)

    def _wrap(self, verb, method):
        async def wrapped(arg):
            if self.conn is None:          # the Controller's probe
                return await method(arg)
            self.conn.commands.append((verb, arg))
            if self._tls_protocol is not None:
                self.conn.tls = True
            if self._refusing and verb != "QUIT":
                return await self.reply("503 5.5.1 No service, say QUIT")
            step = VERB_STEP.get(verb)
            if step is not None:
                await self.pause(step)
                if self.remote.drop == step and step != "data":
                    self.close()
                    return
                if step in ("ehlo", "data"):
                    r = self.behaviour(step, arg)
                    if r is not None:
                        return await self.reply(r)
            return await method(arg)
        return wrapped

    # -- DATA, read raw so that the exact bytes are recorded ----------------

    async def smtp_DATA(self, arg):
        if await self.check_helo_needed():
            return
        tx = getattr(self.envelope, "tx", None)
        if not self.envelope.rcpt_tos or tx is None:
            return await self.push("503 5.5.1 Error: need RCPT command")
        if arg:
            return await self.push("501 5.5.4 Syntax: DATA")
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        tx.data_started = True
        raw = bytearray()
        while self.transport is not None:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as e:
                line = await self._reader.read(e.consumed)
            except asyncio.IncompleteReadError as e:
                raw += e.partial
                tx.data_raw = bytes(raw)
                return
            if line == b".\r\n" and (not raw or raw.endswith(b"\r\n")):
                tx.data_complete = True
                break
            raw += line
            tx.data_raw = bytes(raw)
            if self.remote.drop == "data":
                self.close()
                return
        if not tx.data_complete:
            return
        lines = bytes(raw).split(b"\r\n")
        tx.content = b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)
        await self.pause("eod")
        if self.remote.drop == "eod":
            self.close()
            return
        r = self.behaviour("eod", tx)
        if r is None:
            r = "250 2.0.0 Ok: queued as %d" % len(self.remote.delivered())
        tx.eod_reply = r
        self._set_post_data_state()
        await self.reply(r)


class _Handler:
    def __init__(self, remote):
        self.remote = remote

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        if server.conn is not None:
            server.conn.helo = hostname
        session.host_name = hostname
        out = [r for r in responses if not r.startswith("250-AUTH")
               and not (r == "250-8BITMIME" and not self.remote.eightbitmime)]
        return (out[:1] + ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"] +
                (["250-DSN"] if self.remote.dsn else []) + out[1:])

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if server.conn is None:
            return None
        if address == "<>":
            address = ""
        tx = Transaction(address, mail_options, server._tls_protocol is not None)
        server.conn.transactions.append(tx)
        r = server.behaviour("mail", address)
        if r is not None and not r.startswith("2"):
            tx.mail_reply = r
            if r.startswith("421"):
                asyncio.get_event_loop().call_soon(server.close)
            return _multiline(r)
        if not self.remote.eightbitmime and any(o.startswith("BODY=") for o in mail_options):
            return "555 5.5.4 BODY parameter not supported"
        envelope.mail_from = address or "<>"
        envelope.mail_options.extend(mail_options)
        envelope.tx = tx
        return _multiline(r) if r is not None else "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if server.conn is None:
            return None
        tx = envelope.tx
        spec = self.remote.behaviour.get("rcpt")
        if isinstance(spec, dict):
            r = {k.lower(): v for k, v in spec.items()}.get(address.lower())
        elif callable(spec):
            r = spec(server.conn, address)
        else:
            r = spec
        if r is None:
            r = "250 2.1.5 Ok"
        tx.rcpts.append((address, r))
        tx.rcpt_options[address] = list(rcpt_options)
        if r.startswith("2"):
            tx.accepted.append(address)
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        if r.startswith("421"):
            asyncio.get_event_loop().call_soon(server.close)
        return _multiline(r)


def _multiline(text):
    """"550 a\n550 b" -> "550-a\r\n550 b" (push adds the last CRLF)."""
    lines = text.split("\n")
    return "\r\n".join(l[:3] + ("-" if i < len(lines) - 1 else " ") + l[4:]
                       for i, l in enumerate(lines))


class _Controller(Controller):
    def __init__(self, remote, **kwargs):
        self.remote = remote
        self._probe = False
        super().__init__(remote._handler, **kwargs)

    def factory(self):
        probe, self._probe = self._probe, False
        return RecordingSMTP(self.remote, probe=probe, **self.SMTP_kwargs)

    def _trigger_server(self):
        self._probe = True
        super()._trigger_server()


# --------------------------------------------------------------------------
# remotes


class Remote:
    def __init__(self, pool, name, address, port, listening=True, greeting=None,
                 ehlo=None, mail=None, rcpt=None, data=None, eod=None, delay=None,
                 drop=None, starttls=False, smtputf8=True, eightbitmime=True,
                 hostname=None, hold=None, tls_cert=None, dsn=False):
        if drop is not None and drop not in STEPS:
            raise ValueError("drop must be one of %s" % (STEPS,))
        if hold is not None and hold not in STEPS:
            raise ValueError("hold must be one of %s" % (STEPS,))
        for k in (delay or {}):
            if k not in STEPS:
                raise ValueError("delay step %r not one of %s" % (k, STEPS))
        self.pool = pool
        self.name = name
        self.address = address
        self.port = port
        self.listening = listening
        self.hostname = hostname or name
        self.behaviour = {"greeting": greeting, "ehlo": ehlo, "mail": mail,
                          "rcpt": rcpt, "data": data, "eod": eod}
        self.delay = dict(delay or {})
        self.drop = drop
        self.hold = hold
        self.released = threading.Event()
        self.starttls = starttls
        self.tls_cert = tls_cert
        self.smtputf8 = smtputf8
        self.eightbitmime = eightbitmime
        self.dsn = dsn
        self.connections = []
        self._handler = _Handler(self)
        self.controller = None

    def start(self):
        if not self.listening:
            return self
        tls = None
        if self.starttls:
            cert, key = self.tls_cert or harness.make_cert(self.pool.dir /
                                                           ("cert-" + self.address))
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(cert, key)
        self.controller = _Controller(
            self, hostname=self.address, port=self.port, server_hostname=self.hostname,
            ident="test remote", tls_context=tls, require_starttls=False,
            enable_SMTPUTF8=self.smtputf8, decode_data=False, ready_timeout=10,
            timeout=60)
        self.controller.start()
        return self

    def stop(self):
        self.released.set()         # a held connection goes on (and ends)
        if self.controller is not None:
            try:
                self.controller.stop()
            finally:
                self.controller = None

    def release(self):
        """End the hold=step wait of every connection, now and later."""
        self.released.set()

    # -- queries -----------------------------------------------------------

    def transactions(self):
        return [t for c in list(self.connections) for t in list(c.transactions)]

    def delivered(self):
        return [t for t in self.transactions() if t.delivered]

    def completed_data(self):
        """Transactions whose final dot arrived (whatever the reply)."""
        return [t for t in self.transactions() if t.data_complete]

    def wait_closed(self, timeout=10.0):
        """Wait until every connection made so far was closed (True), or
        the timeout passed (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.closed for c in list(self.connections)):
                return True
            time.sleep(0.05)
        return False

    def transcript(self):
        return "\n".join(c.transcript() for c in list(self.connections)) or \
            "%s: no connection" % self.name

    def __repr__(self):
        return "<Remote %s %s:%d%s>" % (self.name, self.address, self.port,
                                        "" if self.listening else " (closed)")


class RemotePool:
    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = harness.pick_port(ADDRESSES + [SELF_ADDRESS])
        self.remotes = []
        self._free = list(ADDRESSES)

    def _next_address(self):
        if not self._free:
            raise RuntimeError("out of loopback addresses for remotes")
        return self._free.pop(0)

    def add(self, name, **behaviour):
        """A started remote on the next loopback address, port self.port."""
        r = Remote(self, name, self._next_address(), self.port, **behaviour)
        self.remotes.append(r)
        return r.start()

    def closed(self, name):
        """An address nothing listens on (connection refused)."""
        r = Remote(self, name, self._next_address(), self.port, listening=False)
        self.remotes.append(r)
        return r

    def connections(self):
        return [c for r in self.remotes for c in list(r.connections)]

    def null_sender_attempts(self):
        """(remote, connection, arg) for every MAIL FROM:<> seen anywhere."""
        return [(c.remote, c, arg) for c in self.connections()
                for verb, arg in list(c.commands) if verb == "MAIL" and _null_sender(arg)]

    def settle(self, timeout=3.0):
        """Give chamoisd a moment to finish its remote sessions (bounded;
        never an assertion)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.closed for c in self.connections()):
                return True
            time.sleep(0.05)
        return False

    def transcript(self):
        return "\n".join(r.transcript() for r in self.remotes)

    def stop(self):
        errors = []
        for r in self.remotes:
            try:
                r.stop()
            except Exception as e:          # keep stopping the others
                errors.append(e)
        if errors:
            raise errors[0]


# --------------------------------------------------------------------------
# the environment


class ForwardEnv:
    """dnsmasq + remotes + chamoisd daemons for one test."""

    def __init__(self, tmp_path):
        self.dir = Path(tmp_path)
        # every name it was not given is NXDOMAIN (the checks find no record)
        self.dns = Dnsmasq(self.dir / "dns", local_zones=("#",))
        self.remotes = RemotePool(self.dir / "remotes")
        self.daemons = []
        self._mx_count = {}

    @property
    def remote_port(self):
        return self.remotes.port

    # -- DNS + remotes -------------------------------------------------------

    def _mx_host(self, domain, preference):
        n = self._mx_count.get(domain, 0) + 1
        self._mx_count[domain] = n
        host = "mx%d.%s" % (n, domain)
        self.dns.mx(domain, host, preference)
        return host

    def remote(self, domain, preference=10, **behaviour):
        """A listening remote that is an MX of domain (host mxN.domain)."""
        host = self._mx_host(domain, preference)
        behaviour.setdefault("hostname", host)
        r = self.remotes.add(host, **behaviour)
        self.dns.address(host, r.address)
        return r

    def closed_remote(self, domain, preference=10):
        """An MX of domain whose address has nothing listening."""
        host = self._mx_host(domain, preference)
        r = self.remotes.closed(host)
        self.dns.address(host, r.address)
        return r

    def null_mx(self, domain, address="127.0.0.30"):
        """RFC 7505 null MX; the domain also has an A record (nothing listens
        there), so only a daemon that ignored the null MX would try it."""
        self.dns.null_mx(domain)
        self.dns.address(domain, address)

    def self_mx(self, domain):
        """MX of domain -> 127.0.0.9; returns the extra config line that makes
        chamoisd listen there on remote_port (so that it is its own MX)."""
        host = self._mx_host(domain, 10)
        self.dns.address(host, SELF_ADDRESS)
        return "listen mx %s:%d" % (SELF_ADDRESS, self.remote_port)

    # -- chamoisd ------------------------------------------------------------

    def daemon(self, dns=True, extra_conf="", start=True, **kwargs):
        if not dns:
            kwargs.setdefault("dead_dns", True)     # no DNS server at all
        inst = harness.Chamoisd(self.dir / ("d%d" % len(self.daemons)), **kwargs)
        self.daemons.append(inst)
        lines = inst.conf_lines()
        if dns:
            if not self.dns.running():
                self.dns.start()
            lines = [("dns_server %s" % self.dns.server) if l.split(None, 1)[:1] == ["dns_server"]
                     else l for l in lines]
            inst.dns_port = self.dns.port
        lines.append("remote_port %d" % self.remote_port)
        lines += [l for l in extra_conf.splitlines() if l.strip()]
        inst.write_conf("\n".join(lines) + "\n")
        keys = [l.split(None, 1)[0] for l in lines if l.strip() and not l.startswith("#")]
        repeatable = ("listen", "dkim_key", "route", "outbound_address")
        dup = sorted({k for k in keys if keys.count(k) > 1 and k not in repeatable})
        assert not dup, "config keys repeated: %s" % dup
        if start:
            inst.start()
        return inst

    # -- checks --------------------------------------------------------------

    def assert_no_bounce(self, local=None, null_sender_expected=0):
        """No remote ever saw MAIL FROM:<> (beyond null_sender_expected, for
        a test that forwards a bounce itself), and every daemon's Maildirs
        hold exactly the expected local copies: local maps address -> count
        in new/ (others must have none), nothing in tmp/ or cur/."""
        self.remotes.settle()
        attempts = self.remotes.null_sender_attempts()
        assert len(attempts) == null_sender_expected, \
            "MAIL FROM:<> seen by remotes: %r\n%s" % (
                [(r.name, a) for r, _, a in attempts], self.remotes.transcript())
        local = {k.lower(): v for k, v in (local or {}).items()}
        for d in self.daemons:
            files = d.stored_files()
            counts = {}
            for f in files:
                rel = f.relative_to(d.maildir_root).parts
                assert len(rel) == 4 and rel[2] == "new", "unexpected file %s" % f
                addr = ("%s@%s" % (rel[1], rel[0])).lower()
                counts[addr] = counts.get(addr, 0) + 1
            want = {a: n for a, n in local.items() if n}
            assert counts == want, "Maildir contents %r, expected %r" % (counts, want)

    def finish(self):
        problems = []
        for inst in self.daemons:
            if inst.proc is None:
                continue
            if not inst.stopped and inst.proc.poll() is not None:
                problems.append("chamoisd %s died during the test with exit code %s"
                                % (inst.dir.name, inst.proc.returncode))
            if not inst.stopped:
                inst.stop()
                if inst.killed:
                    problems.append("chamoisd %s ignored SIGTERM for 10 s (killed)"
                                    % inst.dir.name)
            log = inst.log()
            for mark in SANITIZER_MARKS:
                if mark in log:
                    problems.append("chamoisd %s log has %r" % (inst.dir.name, mark))
            print("---- chamoisd %s log (%s) ----\n%s" % (inst.dir.name, inst.log_path,
                                                       log[-6000:]))
        try:
            self.remotes.stop()
        finally:
            self.dns.stop()
        print("---- remotes ----\n%s" % self.remotes.transcript())
        print("---- dnsmasq log ----\n%s" % self.dns.log()[-3000:])
        return problems


@pytest.fixture
def fwd_env(tmp_path):
    """A ForwardEnv; everything it started is stopped at teardown."""
    if not harness.chamoisd_binary().exists():
        pytest.skip("%s not built (run make, or set CHAMOISD)" % harness.chamoisd_binary())
    env = ForwardEnv(tmp_path)
    try:
        yield env
    finally:
        problems = env.finish()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


# --------------------------------------------------------------------------
# client-side helpers for the scenarios


def transaction(d, sender, rcpts, msg=None, mail_params="", ehlo="client.sender.test",
                timeout=30):
    """One SMTP transaction with chamoisd d, with a raw Dialog so that every
    reply is seen exactly.  msg (CRLF bytes) is sent, dot-stuffed, when at
    least one RCPT got a 2xx and DATA got 354.  Returns a dict with the
    reply texts: mail, rcpt (list), data, eod (None when not reached) and
    closed (the server closed the connection before our QUIT)."""
    c = harness.Dialog(d.host, d.port, timeout=timeout)
    out = {"mail": None, "rcpt": [], "data": None, "eod": None, "closed": False,
           "dialog": c}
    try:
        c.expect("220")
        c.cmd("EHLO %s" % ehlo, "250")
        out["mail"] = c.cmd("MAIL FROM:<%s>%s" % (sender, mail_params), "")
        for r in rcpts:
            out["rcpt"].append(c.cmd("RCPT TO:<%s>" % r, ""))
        if msg is not None and any(r.startswith("2") for r in out["rcpt"]):
            out["data"] = c.cmd("DATA", "")
            if out["data"].startswith("354"):
                if not msg.endswith(b"\r\n"):
                    raise ValueError("message must end with CRLF")
                c.send(harness.dot_stuff(msg) + b".\r\n")
                out["eod"] = c.read_reply()
        try:
            c.cmd("QUIT", "221")
        except (harness.ConnectionClosed, ConnectionError, AssertionError):
            out["closed"] = True
    finally:
        c.close()
    return out


def assert_reply(text, code_esc, contains=None):
    """text is one reply (lines joined by \\n): its first line starts with
    "CODE ESC " (e.g. "550 5.1.1"), and contains `contains` when given."""
    assert text is not None, "no reply (never reached)"
    first = text.split("\n")[0]
    assert first == code_esc or first.startswith(code_esc + " "), \
        "expected %r, got %r" % (code_esc, text)
    if contains is not None:
        assert contains in text, "expected %r in reply %r" % (contains, text)
    return text


def split_first_header(content):
    """(first header field with its folded lines, the rest) of CRLF bytes."""
    end = content.index(b"\r\n") + 2
    while content[end:end + 1] in (b" ", b"\t"):
        end = content.index(b"\r\n", end) + 2
    return content[:end], content[end:]


def split_forwarded(content):
    """(our Received field, the rest) of a forwarded copy (CRLF bytes): the
    copy starts with the Authentication-Results field of chamoisd's checks
    (SPEC 7: on every copy, forwarded too), then its Received."""
    ar, rest = split_first_header(content)
    assert ar.startswith(b"Authentication-Results: "), ar
    return split_first_header(rest)

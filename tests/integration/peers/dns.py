"""An authoritative, upstream-less dnsmasq on loopback for the forwarding tests.

Usage::

    dns = Dnsmasq(workdir)
    dns.mx("remote.test", "mx1.remote.test", 10)     # MX record
    dns.address("mx1.remote.test", "127.0.0.2")       # A record
    dns.null_mx("nullmx.test")                        # RFC 7505: MX 0 "."
    dns.start()          # records are fixed from here on
    ... dns_server 127.0.0.1:<dns.port> ...
    dns.stop()           # always (fixtures call it at teardown)

dnsmasq runs in the foreground (-k) with no config file, no resolv.conf, no
/etc/hosts and no upstream, answers on 127.0.0.1:<port> (UDP and TCP) only,
and is authoritative for every name under ``.test`` (``--local=/test/``):
a name it has no record for gets NXDOMAIN, a name it knows with no record
of the asked type gets an empty NOERROR answer (NODATA).  A null MX cannot
be written with ``--mx-host`` (its target "." is refused), so it is a raw
record: ``--dns-rr=DOMAIN,15,000000`` (preference 0, root name).

``query(port, name, qtype)`` is a tiny raw DNS client (UDP) returning
``(rcode, answers)`` for the self-tests; answers are ``("MX", pref, host)``,
``("A", ip)``, ``("AAAA", ip)`` or ``(type_number, raw bytes)``.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import subprocess
import time
from pathlib import Path

from harness import pick_port

DNSMASQ = os.environ.get("DNSMASQ", "/usr/sbin/dnsmasq")

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class DnsmasqUnavailable(Exception):
    pass


# --------------------------------------------------------------------------
# raw DNS client


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            b = label.encode("idna") if not label.isascii() else label.encode()
            out += bytes([len(b)]) + b
    return out + b"\0"


def _decode_name(msg, pos):
    """Return (name, position after the name in the record)."""
    labels, end, jumps = [], None, 0
    while True:
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            jumps += 1
            if jumps > 50:
                raise ValueError("compression loop")
            continue
        if n == 0:
            pos += 1
            break
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    return ".".join(labels), (end if end is not None else pos)


def query(port, name, qtype="MX", host="127.0.0.1", timeout=2.0):
    """One UDP query; returns (rcode name, [answer tuples]).  Raises
    socket.timeout when nothing answers."""
    qt = QTYPES[qtype] if isinstance(qtype, str) else qtype
    qid = random.randrange(65536)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _encode_name(name) \
        + struct.pack(">HH", qt, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (host, port))
        while True:
            msg, _ = s.recvfrom(65535)
            if struct.unpack(">H", msg[:2])[0] == qid:
                break
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    pos = 12
    for _ in range(qd):
        _, pos = _decode_name(msg, pos)
        pos += 4
    answers = []
    for _ in range(an):
        _, pos = _decode_name(msg, pos)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[pos:pos + 10])
        pos += 10
        rdata = msg[pos:pos + rdlen]
        if rtype == 15:
            pref = struct.unpack(">H", rdata[:2])[0]
            target, _ = _decode_name(msg, pos + 2)
            answers.append(("MX", pref, target))
        elif rtype == 1:
            answers.append(("A", socket.inet_ntop(socket.AF_INET, rdata)))
        elif rtype == 28:
            answers.append(("AAAA", socket.inet_ntop(socket.AF_INET6, rdata)))
        else:
            answers.append((rtype, bytes(rdata)))
        pos += rdlen
    return RCODES.get(flags & 0xF, str(flags & 0xF)), answers


# --------------------------------------------------------------------------
# the server


class Dnsmasq:
    """dnsmasq authoritative for the test zones; declare records, then start()."""

    def __init__(self, workdir, local_zones=("test",), host="127.0.0.1", port=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = None
        self.fixed_port = port     # a port picked by the caller (else one per start)
        self.local_zones = list(local_zones)
        self.records = []          # dnsmasq options, one per record
        self.proc = None
        self.log_path = self.dir / "dnsmasq.log"

    # -- records (before start) -------------------------------------------

    def _add(self, opt):
        if self.proc is not None:
            raise RuntimeError("dnsmasq already started; declare records before start()")
        self.records.append(opt)

    def mx(self, domain, target, preference=10):
        self._add("--mx-host=%s,%s,%d" % (domain, target, preference))

    def address(self, name, *addresses):
        for a in addresses:
            self._add("--host-record=%s,%s" % (name, a))

    def null_mx(self, domain):
        # RDATA: preference 0 (0x0000) and the root name (one zero octet)
        self._add("--dns-rr=%s,15,000000" % domain)

    def raw(self, option):
        """Any other dnsmasq option (e.g. '--txt-record=...')."""
        self._add(option)

    # -- process -------------------------------------------------------------

    def argv(self):
        argv = [DNSMASQ, "-k", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--port=%d" % self.port, "--listen-address=%s" % self.host,
                "--bind-interfaces", "--pid-file=",
                "--log-facility=%s" % self.log_path, "--log-queries",
                "--local-ttl=0"]
        if os.geteuid() == 0:
            argv.append("--user=root")
        argv += ["--local=/%s/" % z for z in self.local_zones]
        return argv + self.records

    def start(self, timeout=10.0):
        if not os.path.exists(DNSMASQ):
            raise DnsmasqUnavailable("%s not installed" % DNSMASQ)
        last = None
        for _ in range(1 if self.fixed_port else 5):  # the port may be taken between pick and bind
            self.port = self.fixed_port or pick_port((self.host,), udp=True)
            self._stderr = open(self.dir / "dnsmasq.stderr", "ab")
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=self._stderr, stderr=self._stderr)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    query(self.port, "ready-probe.test", "A", self.host, timeout=0.3)
                    return self
                except (socket.timeout, ConnectionRefusedError, OSError) as e:
                    last = e
                    time.sleep(0.05)
            self.stop()
            last = "dnsmasq exited with %s: %s" % (
                self.proc.returncode, self.stderr_text()[-2000:]) if self.proc else last
        raise DnsmasqUnavailable("dnsmasq did not start: %s" % last)

    def stop(self):
        p = self.proc
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        f = getattr(self, "_stderr", None)
        if f is not None:
            f.close()
            self._stderr = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        try:
            return (self.dir / "dnsmasq.stderr").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def query(self, name, qtype="MX", timeout=2.0):
        return query(self.port, name, qtype, self.host, timeout)

    @property
    def server(self):
        """The value for chamois.conf's dns_server."""
        return "%s:%d" % (self.host, self.port)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

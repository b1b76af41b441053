"""A DNSSEC-signed test DNS on loopback, for the DANE tests: nsd serves the
zones (signed at test time with ldns-keygen/ldns-signzone), and unbound,
chamoisd's dns_server, validates them with a trust anchor for the signed
zones only.

Usage::

    dns = SignedDNS(workdir)
    z = dns.zone("dane.test")                   # signed
    z.mx("dane.test", "mx1.dane.test", 10)
    z.a("mx1.dane.test", "127.0.0.2")
    z.tlsa("mx1.dane.test", port, "3 1 1 " + spki_sha256(cert))
    z.strip_signatures("TLSA")                  # optional: TLSA answers are bogus
    dns.zone("plain.test", signed=False)        # served, never validated
    dns.start()        # records are fixed from here on
    ... dns_server dns.server ...
    dns.stop()         # always (fixtures do it at teardown)

unbound answers every name outside the zones given with NXDOMAIN
(local-zone "." always_nxdomain; each zone is a transparent local zone
and a stub zone pointing at nsd), so nothing is ever asked of the world.
It has no root trust anchor: a zone given with signed=False is insecure
(answers without the AD bit), a signed one is secure, and a record that
does not validate gets SERVFAIL.  Both servers run in the foreground on
their own free loopback port (UDP and TCP) and are stopped by stop().
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

NSD = os.environ.get("NSD", "/usr/sbin/nsd")
UNBOUND = os.environ.get("UNBOUND", "/usr/sbin/unbound")
LDNS_KEYGEN = "/usr/bin/ldns-keygen"
LDNS_SIGNZONE = "/usr/bin/ldns-signzone"
START_TIMEOUT = 20


def available():
    """None when nsd, unbound and the ldns tools are installed, else why not."""
    for p in (NSD, UNBOUND, LDNS_KEYGEN, LDNS_SIGNZONE):
        if not os.access(p, os.X_OK):
            return "%s is not installed (sh .ci/deps.sh)" % p
    return None


def spki_sha256(cert_pem):
    """The hex SHA-256 of a PEM certificate's SubjectPublicKeyInfo, the data
    of a TLSA record with selector 1 and matching type 1."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert_pem), "-noout", "-pubkey"],
                         check=True, capture_output=True, timeout=30).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         check=True, capture_output=True, timeout=30).stdout
    import hashlib
    return hashlib.sha256(der).hexdigest()


def query(port, name, qtype, ad=True, timeout=2.0):
    """One UDP question to 127.0.0.1:port; (rcode, ad bit, answer count)."""
    qid = random.randrange(65536)
    flags = 0x0100 | (0x0020 if ad else 0)          # RD, and AD (RFC 6840 5.7)
    q = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, ("127.0.0.1", port))
        while True:
            msg, _ = s.recvfrom(4096)
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == qid:
                break
    fl, an = struct.unpack(">H", msg[2:4])[0], struct.unpack(">H", msg[6:8])[0]
    return fl & 0x000F, bool(fl & 0x0020), an


class Zone:
    def __init__(self, name, signed):
        self.name = name.rstrip(".")
        self.signed = signed
        self.records = []
        self.unsigned_types = set()     # their signatures dropped: bogus answers

    def _add(self, owner, rtype, data):
        self.records.append("%s. 300 IN %s %s" % (owner.rstrip("."), rtype, data))
        return self

    def mx(self, domain, host, preference=10):
        return self._add(domain, "MX", "%d %s." % (preference, host.rstrip(".")))

    def a(self, name, address):
        return self._add(name, "A", address)

    def strip_signatures(self, rtype):
        """Drop the RRSIGs over rtype after signing, as an attacker who
        strips them would: a validating resolver answers SERVFAIL."""
        self.unsigned_types.add(rtype)
        return self

    def tlsa(self, host, port, data):
        """data: "USAGE SELECTOR MTYPE HEX" (RFC 6698 2.2)"""
        return self._add("_%d._tcp.%s" % (port, host.rstrip(".")), "TLSA", data)

    def text(self):
        head = ["$TTL 300",
                "%s. 300 IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300"
                % (self.name, self.name, self.name),
                "%s. 300 IN NS ns.%s." % (self.name, self.name),
                "ns.%s. 300 IN A 127.0.0.1" % self.name]
        return "\n".join(head + self.records) + "\n"


class SignedDNS:
    __test__ = False

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zones = {}
        self.nsd_port = None
        self.port = None
        self._nsd = None
        self._unbound = None

    def zone(self, name, signed=True):
        z = self.zones.get(name) or Zone(name, signed)
        self.zones[name] = z
        return z

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def _run(self, args):
        return subprocess.run(args, cwd=str(self.dir), check=True, capture_output=True,
                              text=True, timeout=60).stdout.strip()

    def _write_zones(self):
        anchors = []
        for z in self.zones.values():
            path = self.dir / ("%s.zone" % z.name)
            path.write_text(z.text())
            if not z.signed:
                z.file = path.name
                continue
            ksk = self._run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", z.name])
            zsk = self._run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", z.name])
            self._run([LDNS_SIGNZONE, path.name, ksk, zsk])
            z.file = path.name + ".signed"
            if z.unsigned_types:
                signed = self.dir / z.file
                keep = [l for l in signed.read_text().splitlines()
                        if not (len(l.split()) > 4 and l.split()[3] == "RRSIG"
                                and l.split()[4] in z.unsigned_types)]
                signed.write_text("\n".join(keep) + "\n")
            anchors.append(str(self.dir / (ksk + ".key")))
        return anchors

    def _wait(self, proc, port, name, secure, what):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (what, proc.returncode,
                                                             self.log()))
            try:
                rcode, ad, _ = query(port, name, 6, timeout=0.5)    # SOA
                if rcode == 0 and (ad or not secure):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("%s did not answer for %s within %ds:\n%s"
                           % (what, name, START_TIMEOUT, self.log()))

    def start(self):
        anchors = self._write_zones()
        self.nsd_port = pick_port(udp=True)
        nsd_conf = self.dir / "nsd.conf"
        lines = ["server:",
                 "  ip-address: 127.0.0.1@%d" % self.nsd_port,
                 "  port: %d" % self.nsd_port,
                 '  username: ""', '  chroot: ""',
                 '  zonesdir: "%s"' % self.dir, '  database: ""',
                 '  zonelistfile: "%s/zone.list"' % self.dir,
                 '  pidfile: "%s/nsd.pid"' % self.dir,
                 '  xfrdfile: "%s/xfrd.state"' % self.dir,
                 '  xfrdir: "%s"' % self.dir,
                 '  logfile: "%s/nsd.log"' % self.dir,
                 "  server-count: 1", "  do-ip6: no",
                 "remote-control:", "  control-enable: no"]
        for z in self.zones.values():
            lines += ["zone:", "  name: %s" % z.name, "  zonefile: %s" % z.file]
        nsd_conf.write_text("\n".join(lines) + "\n")
        self._nsd = subprocess.Popen([NSD, "-d", "-c", str(nsd_conf)], cwd=str(self.dir),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        first = next(iter(self.zones.values()))
        self._wait(self._nsd, self.nsd_port, first.name, False, "nsd")

        self.port = pick_port(udp=True)
        ub_conf = self.dir / "unbound.conf"
        lines = ["server:",
                 "  interface: 127.0.0.1@%d" % self.port,
                 "  port: %d" % self.port,
                 "  do-daemonize: no", '  username: ""', '  chroot: ""',
                 '  directory: "%s"' % self.dir,
                 '  pidfile: "%s/unbound.pid"' % self.dir,
                 "  use-syslog: no", '  logfile: "%s/unbound.log"' % self.dir,
                 "  verbosity: 1", "  val-log-level: 2", "  do-ip6: no",
                 "  do-not-query-localhost: no", "  qname-minimisation: no",
                 "  trust-anchor-signaling: no",
                 '  module-config: "validator iterator"',
                 '  local-zone: "." always_nxdomain']
        lines += ['  trust-anchor-file: "%s"' % a for a in anchors]
        lines += ['  local-zone: "%s." transparent' % z for z in self.zones]
        lines += ["remote-control:", "  control-enable: no"]
        for z in self.zones:
            lines += ["stub-zone:", '  name: "%s."' % z,
                      "  stub-addr: 127.0.0.1@%d" % self.nsd_port]
        ub_conf.write_text("\n".join(lines) + "\n")
        self._unbound = subprocess.Popen([UNBOUND, "-d", "-c", str(ub_conf)],
                                         cwd=str(self.dir), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=subprocess.STDOUT)
        for z in self.zones.values():
            self._wait(self._unbound, self.port, z.name, z.signed, "unbound")
        return self

    def running(self):
        return self._unbound is not None and self._unbound.poll() is None

    def stop(self):
        for p in (self._unbound, self._nsd):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        self._unbound = self._nsd = None

    def log(self):
        out = []
        for f in ("nsd.log", "unbound.log"):
            p = self.dir / f
            if p.exists():
                out.append("---- %s ----\n%s" % (f, p.read_text(errors="replace")[-3000:]))
        return "\n".join(out)

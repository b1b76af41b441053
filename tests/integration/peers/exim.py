"""A real Exim, unpacked from Debian's package, as a sending MTA for tests.

Exim 4 is the default MTA of Debian, and it ends every delivery by
pipelining the final dot and QUIT and then closing its sending side
(shutdown(SHUT_WR)): the case of issue 12 point 1.  As for Postfix
(peers/postfix.py), nothing is installed system-wide; ``ensure_exim()``
runs once per machine (the result is kept and reused)::

    apt-get download exim4-daemon-light
    dpkg -x exim4-daemon-light_*.deb tests/integration/.peers/exim/root

(exim4-base and exim4-config are not needed: the binary is in
exim4-daemon-light, and every instance gets a minimal config of its own.)

How Exim is made to run unprivileged (found by trial):

* The binary looks its compiled-in user ``Debian-exim`` up at start-up, so
  that system account must exist; it is created (``useradd --system
  --user-group``, as the package's postinst does) when missing.
* ``exim_path`` names the unpacked binary (the daemon re-executes itself
  for each delivery).
* The unpacked binary is made non-setuid, and every Exim process runs as
  ``Debian-exim`` (``setpriv``); with ``-C`` Exim says "exim user lost
  privilege for using -C option" and goes on as that user, which is all a
  relay that only delivers over SMTP needs.
* The config routes every address to chamoisd with a ``manualroute``
  router (``route_list = * 127.0.0.1``, ``self = send``) and an ``smtp``
  transport on chamoisd's port: no DNS at all (``host_lookup`` and
  ``rfc1413_hosts`` empty).  The daemon listens on a free loopback port.

Requires root (to create the account and drop to it) and the libraries the
package depends on (libgnutls30, libgnutls-dane0, libidn12, libpcre2-8-0,
libdb5.3, libnsl2; all on a Debian 12 with the chamois deps), plus apt lists.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import smtplib
import subprocess
import time
from pathlib import Path
from typing import Optional, Sequence

import pytest

from harness import wait_log_match
from peers.postfix import (PeerUnavailable, _run, ensure_system_user, free_port, peers_base,
                           unpack_package, wait_port)

PEERS_DIR = peers_base() / "exim"
EXIM_USER = "Debian-exim"


def ensure_exim() -> Path:
    """Download and unpack Debian's exim4-daemon-light once; return the
    path of the exim4 binary."""
    if os.geteuid() != 0:
        raise PeerUnavailable("Exim peer needs root (to run as %s)" % EXIM_USER)
    root = unpack_package(PEERS_DIR, "exim4-daemon-light", "usr/sbin/exim4",
                          lambda tmp: os.chmod(tmp / "usr/sbin/exim4", 0o755))  # no setuid root
    binary = root / "usr/sbin/exim4"
    ensure_exim_user()
    r = _run([str(binary), "-bV", "-C", "/dev/null"])
    if b"Exim version" not in r.stdout:
        ldd = _run(["ldd", str(binary)]).stdout.decode(errors="replace")
        missing = [l.strip() for l in ldd.splitlines() if "not found" in l]
        raise PeerUnavailable("unpacked exim4 does not run (missing libraries %s): %s"
                              % (missing, r.stdout.decode(errors="replace")[-2000:]))
    return binary


def ensure_exim_user():
    """The account compiled into Debian's Exim; returns (uid, gid)."""
    return ensure_system_user(EXIM_USER, "chamois tests Exim user")


# the main section every instance shares: its own paths and port, no DNS
HEADER = """\
# written by tests/integration/peers/exim.py
primary_hostname = %(hostname)s
qualify_domain = %(hostname)s
exim_path = %(binary)s
spool_directory = %(spool)s
log_file_path = %(logdir)s/%%slog
exim_user = %(user)s
exim_group = %(user)s
never_users =
trusted_users = %(user)s
host_lookup =
rfc1413_hosts =
keep_environment =
local_interfaces = <; 127.0.0.1
daemon_smtp_ports = %(port)d
"""

CONFIG = HEADER + """\
tls_advertise_hosts =
acl_smtp_rcpt = accept_local

begin acl
accept_local:
  accept hosts = 127.0.0.1

begin routers
to_chamois:
  driver = manualroute
  domains = *
  route_list = * 127.0.0.1
  transport = to_chamois_smtp
  self = send

begin transports
to_chamois_smtp:
  driver = smtp
  port = %(relay_port)d
  %(tls)s

begin retry
* * F,10m,10s
"""


class Exim:
    """One Exim daemon relaying everything to 127.0.0.1:relay_port.

    ``base`` is a fresh directory (e.g. pytest's tmp_path / "exim");
    ``tls=False`` makes Exim deliver in plaintext (hosts_avoid_tls = *),
    else it uses chamoisd's STARTTLS (any certificate: Exim only tries to
    verify)."""

    def __init__(self, base, relay_port: int, tls: bool = False,
                 hostname: str = "sender.example.net"):
        self.binary = ensure_exim()
        self.uid, self.gid = ensure_exim_user()
        self.base = Path(base)
        self.relay_port = relay_port
        self.tls = tls
        self.hostname = hostname
        self.port = free_port()
        self.spool = self.base / "spool"
        self.logdir = self.base / "log"
        self.conf = self.base / "exim.conf"
        self.proc: Optional[subprocess.Popen] = None

    def _as_exim(self):
        return ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.gid,
                "--clear-groups", str(self.binary), "-C", str(self.conf)]

    def write_config(self):
        for d in (self.base, self.spool, self.logdir):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, self.uid, self.gid)
        # Debian-exim must reach base through pytest's 0700 tmp dirs
        p = self.base
        while p != p.parent and str(p).startswith("/tmp/"):
            os.chmod(p, os.stat(p).st_mode | 0o711)
            p = p.parent
        self.conf.write_text(CONFIG % {
            "binary": self.binary, "hostname": self.hostname, "spool": self.spool, "logdir": self.logdir,
            "user": "Debian-exim", "port": self.port, "relay_port": self.relay_port,
            "tls": "" if self.tls else "hosts_avoid_tls = *"})
        os.chmod(self.conf, 0o644)

    def start(self, timeout: float = 20) -> "Exim":
        self.write_config()
        self.proc = subprocess.Popen(self._as_exim() + ["-bdf"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_port("127.0.0.1", self.port, time.monotonic() + timeout,
                      proc_alive=lambda: self.proc.poll() is None)
        except Exception:
            self.stop()
            raise RuntimeError("exim did not start: %s\n%s" % (
                self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else "",
                self.log()))
        return self

    def stop(self, timeout: float = 10) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        # delivery processes Exim forked for this config
        want = str(self.conf).encode()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if want in f.read().split(b"\0"):
                        os.kill(int(d), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def submit(self, msg: bytes, sender: str, recipients: Sequence[str], timeout: float = 30):
        """Hand a message to Exim's daemon over SMTP; returns Exim's 250 text."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=timeout) as s:
            s.ehlo("client.example.net")
            s.mail(sender)
            for r in recipients:
                code, text = s.rcpt(r)
                if code != 250:
                    raise RuntimeError("Exim refused %s: %s %r" % (r, code, text))
            code, text = s.data(msg)
            if code != 250:
                raise RuntimeError("Exim refused the message: %s %r" % (code, text))
            return text.decode(errors="replace")

    def log(self) -> str:
        try:
            return (self.logdir / "mainlog").read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 30) -> "re.Match":
        """Wait until the log matches regex ``pattern``; return the match."""
        return wait_log_match(self.log, pattern, timeout, "Exim's mainlog")


RELAY_CONFIG = HEADER + """\
log_selector = +smtp_connection
tls_advertise_hosts = %(tls_hosts)s
tls_certificate = %(cert)s
tls_privatekey = %(key)s
%(tls_on_connect)s
auth_advertise_hosts = ${if eq{$tls_in_cipher}{}{}{*}}
acl_smtp_rcpt = relay_rcpt

begin acl
relay_rcpt:
  accept authenticated = *
  deny message = 5.7.1 authentication required

begin routers
all_to_mailbox:
  driver = accept
  transport = to_mailbox

begin transports
to_mailbox:
  driver = appendfile
  directory = %(mail)s
  maildir_format
  delivery_date_add = false
  envelope_to_add = false
  return_path_add = false
  user = %(user)s

begin retry
* * F,10m,10s

begin authenticators
%(authenticators)s"""

AUTHENTICATORS = {
    "PLAIN": """\
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{%(auth_user)s}}{eq{$auth3}{%(auth_pass)s}}}}
  server_set_id = $auth2
""",
    "LOGIN": """\
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and {{eq{$auth1}{%(auth_user)s}}{eq{$auth2}{%(auth_pass)s}}}}
  server_set_id = $auth1
""",
    "CRAM-MD5": """\
cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = ${if eq{$auth1}{%(auth_user)s}{%(auth_pass)s}fail}
  server_set_id = $auth1
""",
}


class EximRelay(Exim):
    """Exim as a relay host (a smarthost): STARTTLS with cert/key (or TLS
    on connect, ``implicit=True``), AUTH PLAIN and LOGIN for one user once
    TLS is up, RCPT refused without AUTH, and every message accepted put
    into the Maildir ``base/mail`` (``delivered()``).  ``tls=False``
    advertises no STARTTLS at all; ``mechs`` names the authenticators
    (PLAIN, LOGIN, CRAM-MD5)."""

    def __init__(self, base, cert: str, key: str, auth_user: str, auth_pass: str,
                 tls: bool = True, implicit: bool = False,
                 hostname: str = "relay.example.net", mechs=("PLAIN", "LOGIN")):
        super().__init__(base, relay_port=0, tls=tls, hostname=hostname)
        self.mechs = mechs
        self.cert, self.key = cert, key
        self.auth_user, self.auth_pass = auth_user, auth_pass
        self.implicit = implicit
        self.mail = self.base / "mail"

    def write_config(self):
        super().write_config()
        self.mail.mkdir(parents=True, exist_ok=True)
        os.chown(self.mail, self.uid, self.gid)
        for f in (self.cert, self.key):
            os.chown(f, self.uid, self.gid)
        self.conf.write_text(RELAY_CONFIG % {
            "binary": self.binary, "hostname": self.hostname, "spool": self.spool,
            "logdir": self.logdir, "user": EXIM_USER, "port": self.port,
            "tls_hosts": "*" if self.tls else "",
            "tls_on_connect": ("tls_on_connect_ports = %d" % self.port) if self.implicit else "",
            "cert": self.cert, "key": self.key, "mail": self.mail,
            "authenticators": "".join(AUTHENTICATORS[m] for m in self.mechs) % {
                "auth_user": self.auth_user, "auth_pass": self.auth_pass}})
        os.chmod(self.conf, 0o644)

    def delivered(self):
        """The messages in base/mail/new, oldest first, as bytes."""
        new = self.mail / "new"
        if not new.is_dir():
            return []
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        return [p.read_bytes() for p in files]
# -- fixtures (import them into a test module) -------------------------------


@pytest.fixture(scope="module")
def exim_available():
    try:
        ensure_exim()
    except PeerUnavailable as e:
        pytest.skip("Exim peer cannot run here: %s" % e)


@pytest.fixture
def exims(exim_available, tmp_path):
    made = []

    def make(relay_port, **kw):
        ex = Exim(tmp_path / ("exim%d" % len(made)), relay_port, **kw)
        made.append(ex)
        return ex.start()

    yield make
    for ex in made:
        try:
            ex.stop()
        finally:
            print("---- exim %s mainlog ----\n%s" % (ex.base.name, ex.log()[-6000:]))

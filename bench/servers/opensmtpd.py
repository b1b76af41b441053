"""OpenSMTPD (Debian 12: 6.8.0p2), unpacked from Debian's package, as a peer.

``prepare()`` unpacks ``opensmtpd`` with ``common.unpack`` and each start
runs ``smtpd -d -f WORKDIR/smtpd.conf`` in the foreground, on
127.0.0.1:PORTS["opensmtpd"].

How it is made to run from an unpacked tree without touching the machine
(found by trial):

* Three paths are compiled in and no option moves them: the queue
  ``/var/spool/smtpd`` (6.8 has ``queue compression|encryption|ttl`` but no
  queue path), the control socket ``/var/run/smtpd.sock`` and the empty
  chroot ``/var/lib/opensmtpd/empty``; the ``maildir`` action also runs the
  compiled-in ``/usr/libexec/opensmtpd/mail.maildir``.  So smtpd runs in a
  private mount namespace of its own (``unshare --mount --propagation
  private``, then a small sh script that ``exec``s smtpd, so ``self.proc`` is
  smtpd itself) where WORKDIR/var/spool is bind-mounted on /var/spool,
  WORKDIR/var/lib on /var/lib, WORKDIR/run on /run (= /var/run) and the
  unpacked usr/libexec on /usr/libexec.  The queue is therefore on the same
  disk as every other server's, under WORKDIR, and the machine's own
  /var/spool, /var/lib and /run are neither seen nor changed.  If
  /etc/resolv.conf resolves into /run (systemd-resolved's symlink), the
  script copies the namespace's resolv.conf into the new /run at that path
  first, so smtpd still asks the bench's DNS.
* Debian's smtpd is built to drop privileges to ``opensmtpd`` and
  ``opensmtpq`` (not OpenBSD's _smtpd/_smtpq: it says "unknown user
  opensmtpd" and exits without them).  They are created with ``useradd
  --system --user-group`` if missing, as the package's postinst does with
  adduser (the only global change; see ``ensure_users``).
* The local mailbox is a virtual user: the ``virtual`` table maps
  ``bench@bench.test`` to the name ``vmail`` and the ``userbase`` table maps
  ``vmail`` to uid:gid 65534:65534 (nobody:nogroup) with home WORKDIR, so no
  account is needed for it; the Maildir is chowned to 65534.  (Table names
  must not be keywords: ``table virtual ...`` is a syntax error.)
* Durability, as strace shows it: smtpd writes the envelope and the message
  into its queue and renames them into queue/ before its 250 without any
  fsync; the delivery then runs ``/bin/sh -c "/usr/libexec/opensmtpd/
  mail.maildir PATH"`` (two execs per message), which writes tmp/, fsyncs
  the file and renames it into new/ (no directory fsync).  smtpd's parent
  also makes (and removes) a /tmp/smtpd.out.XXXX file per MDA run.
* ``fwd@bench.test`` maps to ``sink@sink.test`` in the same virtual table.
  An address that comes out of an expansion is matched again against the
  rules with the source key ``local`` (the envelope is flagged internal),
  while a client's key is its IP address; ``from src regex "^local$"``
  therefore lets only the expanded alias target relay, and a client on
  127.0.0.1 cannot (``from local`` would have made it an open relay for
  loopback, since <localhost> holds 127.0.0.1).
* In a namespace with only loopback, smtpd cannot relay at all: the MX
  lookup works, but it then resolves the MX host with getaddrinfo
  (AI_ADDRCONFIG) from its bundled libasr, which ignores every IFF_LOOPBACK
  interface, finds no address family configured and never asks for the A
  record ("No MX found for domain", TempFail).  ``ensure_addrconfig()``
  (called by ``start()``) therefore gives the namespace one non-loopback
  IPv4 address when it has none: a veth pair (``bchaddr0``/``bchaddr1``,
  both ends inside the namespace, left DOWN, so no route and no traffic)
  with 192.0.2.1/32 (TEST-NET-1) on bchaddr0.  It is a no-op on a machine
  with a real interface, and goes away with the namespace.  (A dummy link
  would do as well where the kernel has it; this machine's has not.)
* ``smtp limit max-mails`` defaults to 100 messages per session, which cuts
  reused-session loads (smtp-source -d); it is raised to 1,000,000.
* smtpd resolves every client's address (PTR, then A to confirm) per
  session: one or two DNS round trips per connection, as it does by default.
* An unknown local user gets "524 5.2.4 Mailing list expansion problem";
  another domain gets "550 Invalid recipient".
* Known quirk, not configurable: smtpd listens with a backlog of 5, so a
  connection-per-message load with many concurrent sessions stalls on SYN
  retransmits (here: 20 sessions, 200 messages of 4 KiB, one connection
  each: 10 msg/s; the same with -d (reused sessions): 65-190 msg/s).
  Drive it with reused sessions too and say which figure is which.

``pids()`` is the parent smtpd; its children (control, klondike, lookup,
pony express, queue, scheduler and the forked MDAs) are all in its tree.
``drained()`` looks for envelopes left under WORKDIR/var/spool/smtpd/queue.

Needs root, ``unshare`` and ``mount`` (util-linux) and the package's
libraries: libevent-2.1-7 libssl3 libdb5.3 libcrypt1 libpam0g zlib1g.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import List, Optional

from . import common
from .common import DOMAIN, FWD_RCPT, FWD_TARGET, HOSTNAME, LOCAL_RCPT, Unavailable

VMAIL_UID = 65534   # nobody:nogroup, through the userbase table
LIBS = ["libevent-2.1-7", "libssl3", "libdb5.3", "libcrypt1", "libpam0g", "zlib1g"]


def ensure_users() -> None:
    """Create smtpd's privilege-separation users, as the postinst would."""
    for user in ("opensmtpd", "opensmtpq"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--home-dir", "/var/lib/opensmtpd/empty", "--shell", "/usr/sbin/nologin",
                            user], check=True)


ADDRCONFIG_LINK = ("bchaddr0", "bchaddr1", "192.0.2.1/32")


def ensure_addrconfig() -> None:
    """Give the current network namespace a non-loopback IPv4 address (on a
    DOWN veth pair) if it has none, so libasr's AI_ADDRCONFIG allows IPv4."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True,
                         text=True, check=True).stdout
    if any(line.split()[1] != "lo" for line in out.splitlines() if line.strip()):
        return
    a, b, addr = ADDRCONFIG_LINK
    r = subprocess.run(["ip", "link", "show", a], capture_output=True)
    if r.returncode != 0:
        r = subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b],
                           capture_output=True, text=True)
    if r.returncode != 0:
        r = subprocess.run(["ip", "link", "add", a, "type", "dummy"],
                           capture_output=True, text=True)
    if r.returncode != 0:
        raise Unavailable(f"opensmtpd: cannot add a non-loopback address: {r.stderr.strip()}")
    subprocess.run(["ip", "addr", "add", addr, "dev", a], check=True)


# Runs in the private mount namespace; $1 = workdir, $2 = the unpacked
# usr/libexec, $3 = smtpd, then smtpd's extra arguments (debug_args).
NS_SCRIPT = r"""
set -e
W=$1
SMTPD=$3
rc=$(readlink -f /etc/resolv.conf)
cp /etc/resolv.conf "$W/resolv.conf"
mount --bind "$W/var/spool" /var/spool
mount --bind "$W/var/lib" /var/lib
mount --bind "$W/run" /run
mount --bind "$2" /usr/libexec
case "$rc" in
/run/*) mkdir -p "$(dirname "$rc")"; cp "$W/resolv.conf" "$rc" ;;
esac
shift 3
exec "$SMTPD" -d -f "$W/smtpd.conf" "$@"
"""


class OpenSMTPD(common.Server):
    name = "opensmtpd"
    debug_args: List[str] = []      # e.g. ["-v", "-T", "lookup"] when looking into it

    @classmethod
    def root(cls) -> Path:
        return common.PEERS_DIR / "opensmtpd" / "root"

    @classmethod
    def prepare(cls) -> None:
        root = common.unpack("opensmtpd")
        smtpd = root / "usr/sbin/smtpd"
        if not smtpd.exists():
            raise Unavailable("opensmtpd: no usr/sbin/smtpd in the package")
        if shutil.which("unshare") is None:
            raise Unavailable("opensmtpd: needs unshare (util-linux)")
        r = subprocess.run(["ldd", str(smtpd)], capture_output=True, text=True)
        if "not found" in r.stdout:
            missing = [l.split()[0] for l in r.stdout.splitlines() if "not found" in l]
            raise Unavailable(f"opensmtpd: missing libraries {missing} "
                              f"(apt-get install {' '.join(LIBS)})")
        ensure_users()

    def write_config(self) -> Path:
        w = self.workdir
        for d in ("var/spool", "var/lib/opensmtpd/empty", "run"):
            (w / d).mkdir(parents=True, exist_ok=True)
        os.chmod(w, 0o755)
        common.make_maildir(self.maildir)
        for p in [self.maildir] + [self.maildir / s for s in ("tmp", "new", "cur")]:
            os.chown(p, VMAIL_UID, VMAIL_UID)
        (w / "virtual").write_text(f"{LOCAL_RCPT} vmail\n{FWD_RCPT} {FWD_TARGET}\n")
        (w / "userbase").write_text(f"vmail {VMAIL_UID}:{VMAIL_UID}:{w}\n")
        conf = w / "smtpd.conf"
        conf.write_text(f"""\
# bench: OpenSMTPD peer (written by bench/servers/opensmtpd.py)
smtp limit max-mails 1000000
table vusers file:{w}/virtual
table ubase file:{w}/userbase
table domains {{ "{DOMAIN}" }}
table internal {{ "^local$" }}

listen on 127.0.0.1 port {self.port} hostname {HOSTNAME}

action "local" maildir "{self.maildir}" virtual <vusers> userbase <ubase>
action "relay" relay helo {HOSTNAME}

match from any for domain <domains> action "local"
match from src regex <internal> for any action "relay"
""")
        for f in ("virtual", "userbase", "smtpd.conf"):
            os.chmod(w / f, 0o644)
        return conf

    def start(self) -> None:
        ensure_addrconfig()
        self.write_config()
        root = self.root()
        log = open(self.workdir / "smtpd.log", "wb")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--",
             "sh", "-c", NS_SCRIPT, "sh", str(self.workdir),
             str(root / "usr/libexec"), str(root / "usr/sbin/smtpd"), *self.debug_args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        self.await_greeting(self.workdir / "smtpd.log")

    def queue_files(self) -> List[Path]:
        q = self.workdir / "var/spool/smtpd/queue"
        return [p for p in q.rglob("*") if p.is_file()] if q.exists() else []

    def sendmail(self) -> Optional[List[str]]:
        return None

    def drained(self) -> bool:
        return not self.queue_files()

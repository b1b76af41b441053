"""chamoisd for the bench: the binaries the bench just built, on
127.0.0.1:PORTS["chamois"], with every file under the server's workdir.

Layout of ``workdir`` (made by ``start()``)::

    chamois.conf  mailboxes  aliases  chamoisd.log (stderr of chamoisd -d)
    mail/bench.test/bench/{tmp,new,cur}   bench@bench.test's Maildir
    Maildir -> mail/bench.test/bench      the name the bench looks at
    queue/        queue_dir: the Berkeley DB store, submit.sock, admin.sock
    dovecot/ dovecot-mail/bench.test/bench   with ``lmtp`` (chamois-lmtp): its
                  Dovecot and the Maildir it delivers into, which Maildir
                  then names (servers/dovecot.py)

What the config does, and why (checked by trial in a network namespace
with dnsmasq on 127.0.0.1:53 and smtp-sink on 127.0.0.1:25):

* chamoisd puts the Maildir of user@domain at maildir_root/domain/user/,
  so ``workdir/Maildir`` is a symlink to it and ``self.maildir`` is the real
  directory (count_new() works on either).
* ``fwd@bench.test: sink@sink.test`` is an alias with one external target,
  i.e. synchronous forwarding: the client's final dot is answered with
  the remote's own reply.  The MX look-up goes to ``dns_server
  127.0.0.1:53`` (the bench's dnsmasq) and the delivery to port 25
  (``remote_port``, the default).  The loop check (554 5.4.6) compares
  the target's address *and* remote_port with our listen address, so
  mx.sink.test = 127.0.0.1 is not taken for ourselves (we listen on 10025).
* No open relay: any domain other than bench.test gets 554 5.7.1 at RCPT.
* Limits that would skew a load test from one client address are raised
  (``LIMITS``): max_connections / max_connections_per_address (default 50
  per address; the bench's 100 sessions and 10,000 idle connections come
  from 127.x), max_errors (its tarpit sleeps a second per error past half
  of it), forward_max_per_client (default 10 forwarding sessions per
  client address, which alone would cap 20 concurrent forwarding sessions
  with 451 4.4.5), forward_max_sessions / forward_max_per_domain, and the
  idle timeouts for the idle-connection scenario.  ``queue_max_per_domain``
  is raised from 4 to 20, the same as Postfix's
  default_destination_concurrency_limit, so both queues may open the same
  number of connections to sink.test.  Nothing about durability is changed:
  Maildir files and directories and queue commits are still synced.
* No ``user``: chamoisd keeps running as root, like the other servers'
  masters; nothing in the bench needs the privilege drop.
* chamois-sendmail hands the message to ``queue/submit.sock``; the daemon
  takes the caller's uid with SO_PEERCRED and accepts any local uid, root
  included (nothing to set up), but at most 8 connections of one uid at
  once (SUBMIT_MAX_PER_UID, issue 12; the 9th gets 421 and
  chamois-sendmail exits 75).  So the queue scenario's 20 concurrent
  calls run as root, daemon and nobody (``sendmail_users``, 7 + 7 + 6),
  which the config file (0644) and its folders allow.  None of them has a
  mailbox, so the message's owner (who would get a bounce) is the
  postmaster, which defaults to the first mailbox, bench@bench.test.
  ``-f sender@client.test`` sets the envelope sender, like the Postfix
  side.
* ``chamoisctl queue`` (admin.sock, root allowed) ends with
  ``total: N messages, ... (P pending, D deferred, ...)``; drained() is
  P == D == 0.  Each call costs chamoisd a listing of its queue, so poll it
  sparingly (the sink's count is the cheaper clock).
* chamoisd does not raise RLIMIT_NOFILE itself; start() raises the soft
  limit to the hard one (prlimit) so 10,000 idle connections fit.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .common import (BENCH_DIR, DOMAIN, FWD_RCPT, FWD_TARGET, HOSTNAME,
                     LOCAL_RCPT, SENDER, Server, Unavailable, kill_tree,
                     make_maildir, start_milter_pass, wait_port)
from .dovecot import lmtp_maildir, start_lmtp

REPO = BENCH_DIR.parent
BIN = REPO / "bin"            # the Makefile links the programs into bin/

# Limits raised for a load test (see the module docstring).
LIMITS: Dict[str, str] = {
    "max_connections": "20000",
    "max_connections_per_address": "20000",
    "max_errors": "1000",
    "forward_max_sessions": "1000",
    "forward_max_per_domain": "1000",
    "forward_max_per_client": "1000",
    "queue_max_deliveries": "20",
    "queue_max_per_domain": "20",
    "smtp_timeout": "30m",
    "session_timeout": "2h",
    "shutdown_grace": "5s",
}

_TOTAL = re.compile(r"^total: (\d+) messages?, .*\((\d+) pending, (\d+) deferred,",
                    re.M)


class Chamois(Server):
    """chamoisd -d -f workdir/chamois.conf, in its own process group.

    ``extra``: more ``key value`` settings (override LIMITS and the rest,
    e.g. ``{"worker_threads": "16"}``); ``verbose``: run with -v;
    ``dkim``: key types ("rsa", "ed25519") to sign the mail of SENDER's
    domain with (``dkim_key``, keys made with ``chamoisctl dkim-keygen``
    in the workdir); ``port``: listen there instead of PORTS["chamois"]
    (a second chamoisd beside the first); ``milter``: run bench/milter_pass
    (a pass-through milter, libmilter) on workdir/milter.sock and name it
    in ``milter`` (its process counts in pids(), as Postfix's OpenDKIM
    does); ``lmtp``: deliver bench@bench.test through a Dovecot of its
    own (servers/dovecot.py, under workdir/dovecot) with ``local_delivery
    lmtp SOCKET``, into workdir/dovecot-mail/bench.test/bench, which
    ``maildir`` and the workdir/Maildir link then name (its processes
    count in pids() too, and in lmtp_pids()).
    Attributes beyond the interface: ``conf`` (the config file),
    ``log_path`` (chamoisd's stderr), ``queue_dir``, ``log()``,
    ``queue_listing()``."""

    name = "chamois"
    # the submit socket takes at most SUBMIT_MAX_PER_UID (8) connections
    # of one uid at once (queue/submit.h): the queue scenario's 20
    # concurrent chamois-sendmail run as three users (see the docstring)
    sendmail_users = (None, "daemon", "nobody")

    def __init__(self, workdir: Path, extra: Optional[Dict[str, str]] = None,
                 verbose: bool = False, dkim: Sequence[str] = (),
                 port: Optional[int] = None, bin_dir: Optional[Path] = None,
                 milter: bool = False, lmtp: bool = False):
        super().__init__(workdir)
        self.milter = milter
        self.lmtp = lmtp
        self.dovecot = None
        self.milter_proc: Optional[subprocess.Popen] = None
        self.bin = Path(bin_dir) if bin_dir else BIN
        self.extra = dict(extra or {})
        self.verbose = verbose
        self.dkim = list(dkim)
        if port is not None:
            self.port = port
        self.conf = self.workdir / "chamois.conf"
        self.log_path = self.workdir / "chamoisd.log"
        self.queue_dir = self.workdir / "queue"
        self.mail_root = self.workdir / "mail"
        local, domain = LOCAL_RCPT.split("@")
        # the real Maildir; workdir/Maildir is a symlink to it
        self.maildir = lmtp_maildir(self.workdir) if lmtp else self.mail_root / domain / local
        self._logf = None

    @classmethod
    def prepare(cls) -> None:
        for prog in ("chamoisd", "chamois-sendmail", "chamoisctl"):
            if not os.access(BIN / prog, os.X_OK):
                raise Unavailable(f"{BIN / prog} is missing: run make first")
        if os.geteuid() != 0:
            raise Unavailable("the bench runs chamoisd as root")

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "mailboxes").write_text(LOCAL_RCPT + "\n")
        (self.workdir / "aliases").write_text(f"{FWD_RCPT}: {FWD_TARGET}\n")
        settings = {
            "hostname": HOSTNAME,
            "domains": DOMAIN,
            "mailboxes": "mailboxes",
            "aliases": "aliases",
            "maildir_root": "mail",
            "queue_dir": "queue",
            "dns_server": "127.0.0.1:53",
            "remote_port": "25",
        }
        settings.update(LIMITS)
        if self.milter:
            settings["milter"] = f"unix:{self.workdir / 'milter.sock'}"
        if self.dovecot is not None:
            settings["local_delivery"] = f"lmtp {self.dovecot.lmtp_socket}"
        settings.update(self.extra)
        lines = ["# written by bench/servers/chamois.py",
                 f"listen mx 127.0.0.1:{self.port}"]
        lines += [f"{k} {v}" for k, v in settings.items()]
        lines += self.dkim_keys()
        self.conf.write_text("\n".join(lines) + "\n")
        make_maildir(self.maildir)
        link = self.workdir / "Maildir"
        if not link.is_symlink() and not link.exists():
            link.symlink_to(self.maildir.relative_to(self.workdir))

    def dkim_keys(self) -> List[str]:
        """The dkim_key lines of self.dkim, making each key once."""
        domain = SENDER.split("@")[1]
        lines = []
        for kind in self.dkim:
            key = self.workdir / f"dkim-{kind}.pem"
            if not key.exists():
                r = subprocess.run([str(self.bin / "chamoisctl"), "dkim-keygen", "-t", kind,
                                    domain, kind, str(key)],
                                   capture_output=True, text=True, timeout=60)
                if r.returncode != 0:
                    raise Unavailable("chamoisctl dkim-keygen: " + (r.stderr or r.stdout).strip())
            lines.append(f"dkim_key {domain} {kind} {key}")
        return lines

    def start(self) -> None:
        if self.lmtp:
            self.dovecot = start_lmtp(self.workdir)
        self.write_config()
        r = subprocess.run([str(self.bin / "chamoisd"), "-n", "-f", str(self.conf)],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise Unavailable("chamoisd -n: " + (r.stderr or r.stdout).strip())
        argv = [str(self.bin / "chamoisd"), "-d", "-f", str(self.conf)]
        if self.verbose:
            argv.append("-v")
        self._logf = open(self.log_path, "ab")
        if self.milter:
            self.milter_proc = start_milter_pass(self.workdir / "milter.sock", self._logf)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            _soft, hard = resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE)
            resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            pass
        try:
            wait_port(self.port, timeout=20, proc=self.proc)
        except Unavailable as e:
            self.stop()
            raise Unavailable(f"chamoisd: {e}\n{self.log()[-2000:]}")

    def stop(self) -> None:
        # SIGTERM: idle sessions get 421 at once, busy ones finish within
        # shutdown_grace (5s); kill_tree falls back to SIGKILL after 15s.
        kill_tree(self.proc, signal.SIGTERM, timeout=15)
        kill_tree(self.milter_proc, signal.SIGTERM, timeout=5)
        if self.dovecot is not None:
            self.dovecot.stop()
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def pids(self) -> List[int]:
        return [p.pid for p in (self.proc, self.milter_proc)
                if p is not None and p.poll() is None] + self.lmtp_pids()

    def milter_pids(self) -> List[int]:
        p = self.milter_proc
        return [p.pid] if p is not None and p.poll() is None else []

    def lmtp_pids(self) -> List[int]:
        p = self.dovecot.proc if self.dovecot is not None else None
        return [p.pid] if p is not None and p.poll() is None else []

    def sendmail(self) -> Optional[List[str]]:
        return [str(self.bin / "chamois-sendmail"), "-C", str(self.conf), "-i",
                "-f", SENDER, FWD_TARGET]

    def queue_listing(self) -> str:
        r = subprocess.run([str(self.bin / "chamoisctl"), "-f", str(self.conf), "queue"],
                           capture_output=True, text=True, timeout=30)
        return r.stdout + r.stderr

    def drained(self) -> bool:
        m = _TOTAL.search(self.queue_listing())
        if m is None:
            return False          # no answer (not running?): not drained
        nmsgs, pending, deferred = (int(x) for x in m.groups())
        return nmsgs == 0 or (pending == 0 and deferred == 0)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

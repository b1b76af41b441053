"""Postfix for the bench: Debian's package unpacked into bench/.peers/postfix
(common.unpack), run as an instance whose config, queue and data
directories all live under the server's workdir, on
127.0.0.1:PORTS["postfix"].

Layout of ``workdir`` (made by ``start()``)::

    etc/main.cf etc/master.cf   config_directory
    spool/                      queue_directory (pid/master.pid, maildrop/, ...)
    data/                       data_directory (owned by the mail owner)
    maillog                     maillog_file (written by postlogd)
    Maildir/{tmp,new,cur}       bench@bench.test, owned by the mail owner

Running an unpacked Postfix (found by trial for
tests/integration/peers/postfix.py, and repeated here):

* The binaries have RUNPATH /usr/lib/postfix, which does not exist:
  LD_LIBRARY_PATH points at root/usr/lib/postfix, and main.cf's
  import_environment names it too, since Postfix programs wipe their
  environment (else master's children do not start).  sendmail() therefore
  returns an argv that starts with ``env LD_LIBRARY_PATH=... MAIL_CONFIG=...``
  so that the orchestrator can run it as it is.
* command/daemon/shlib/meta_directory point into the unpacked tree;
  prepare() copies Debian's dynamicmaps.cf, makedefs.out and the .proto
  files into root/etc/postfix (the package's postinst normally does it).
  ``postfix start`` runs ``post-install create-missing``, which makes the
  queue directories with the right owners.
* Postfix refuses mail_owner root, a mail_owner sharing its uid with
  another account, or its gid with setgid_group: the mail owner is the
  system account ``chamois-test`` (created with useradd if missing, the
  same account the integration tests and smtp-sink -u use) and
  setgid_group is Debian's ``mail`` group.  master starts as root (we are
  root) and the daemons drop to chamois-test.
* Every service is unchrooted (master.cf written from scratch), since the
  queue directory holds no copy of /etc or the libraries.
* maillog_file needs maillog_file_prefixes to allow the workdir.

The bench's choices:

* ``bench.test`` is a virtual mailbox domain (virtual(8)):
  virtual_mailbox_base = workdir, and ``bench@bench.test`` maps to
  ``Maildir/`` (the trailing slash means Maildir), written with the uid/gid
  of chamois-test (virtual refuses uids below virtual_minimum_uid, so not
  root).  So the workdir and its parents must be traversable by that
  account: start() checks and raises Unavailable if not.  Unknown
  recipients in bench.test get 550 at RCPT (smtpd_reject_unlisted_recipient).
* ``fwd@bench.test`` -> ``sink@sink.test`` with virtual_alias_maps, relayed
  through the queue with DNS: smtp_dns_support_level = enabled,
  smtp_host_lookup = dns, no relayhost, so the smtp client asks the system
  resolver (/etc/resolv.conf, which in the bench namespace names dnsmasq on
  127.0.0.1) for MX sink.test -> mx.sink.test -> 127.0.0.1, port 25.  No TLS either way.
  Postfix's smtp client bounces mail whose best MX address is one of its
  own (the inet_interfaces addresses) with "5.4.6 mail for sink.test loops
  back to myself", whatever the port: with inet_interfaces = 127.0.0.1
  every relayed message bounced.  inet_interfaces must name an address
  that is on an interface ("no local interface found for 127.0.0.2" is
  fatal, and is only said on syslog or a tty), and Postfix has no switch
  for the check.  So the smtpd listener is named explicitly in master.cf
  (127.0.0.1:PORT, which ignores inet_interfaces) and inet_interfaces is
  [::1] with inet_protocols = all: "myself" is then ::1 only.  The cost is
  that the smtp client may also ask AAAA for mx.sink.test (dnsmasq answers
  with no data); smtp_address_preference = ipv4.  The namespace's
  loopback must have ::1 (IPv6 not disabled); start() checks.
* No open relay: smtpd_relay_restrictions = reject_unauth_destination
  alone (permit_mynetworks would let every 127.0.0.1 client relay), so any
  other domain gets 554 5.7.1 Relay access denied.
* Limits that would skew a load test are lifted: default_process_limit
  200 (the smtpd, virtual and smtp pools; cleanup is unlimited anyway),
  in_flow_delay 0,
  smtpd_client_connection_count_limit 0 (default 50 per client, which
  the bench's 100 sessions from 127.0.0.1 would hit),
  smtpd_client_connection_rate_limit / message / recipient / new TLS
  session rate limits 0, smtpd_error_sleep_time 0 and the error limits
  raised, smtpd_peername_lookup no (no PTR look-ups).  Everything else
  (queue file fsyncs, default_destination_concurrency_limit 20, which
  also bounds parallel virtual(8) deliveries into bench.test) is Postfix's
  default; ``extra`` overrides any of it.
* Idle-connection scenario: smtpd_timeout is 30m, but each idle SMTP
  connection holds one smtpd process, so pass ``process_limit=N`` (smtpd's
  maxproc in master.cf) to hold more than 200.
* ``postfix start`` warns that postdrop/postqueue are not set-gid ``mail``
  (dpkg -x keeps no statoverride); harmless, since everything runs as root.

pids() is master's pid: master reaps its children, so their CPU times
appear in master's cutime/cstime once they exit; children that are still
alive (smtpd, qmgr, virtual, ... persist up to max_idle = 100s) must be
summed by walking the tree (their ppid is master).  ``postfix stop`` is
asynchronous: stop() waits until no process with our MAIL_CONFIG in its
environment is left, then SIGTERM/SIGKILLs the rest.

With ``dkim`` (the queue scenario's signed Postfix, issue 15), Debian's
OpenDKIM milter (the opendkim package, and libmilter1.0.1 which it needs,
unpacked beside Postfix) runs in the foreground (``-f``) as root with
``workdir/opendkim.conf``: it signs mail of SENDER's domain with an RSA
2048 key (``openssl genpkey``, selector ``rsa``), relaxed/relaxed, From
over-signed, on the unix socket ``workdir/opendkim.sock`` (as Debian's
opendkim.conf does; UMask 0 so that cleanup, which runs as the mail
owner, may connect; on TCP loopback, found by trial, every message waited
some 40 ms on a delayed ACK: 21 msg/s).  Postfix
hands it the sendmail (pickup) mail through ``non_smtpd_milters``; a
milter that fails makes the message wait (milter_default_action =
tempfail) rather than leave unsigned.  Its process is one more tree in
pids(), so its CPU counts.  Only RSA: OpenDKIM 2.11's Ed25519 leaks the
key of every signature (dkim/signer.c).

With ``milter`` ("postfix-milter", issue 18), bench/milter_pass (a milter
that lets everything through) runs on ``workdir/milter.sock`` and
``smtpd_milters`` names it: the mail from smtp-source passes it, as
chamois-milter's does; its process counts in pids() too.

With ``lmtp`` ("postfix-lmtp", issue 21), bench@bench.test is delivered
by a Dovecot of its own (servers/dovecot.py, under ``workdir/dovecot``):
``virtual_transport = lmtp:unix:SOCKET`` (bench.test stays a virtual
mailbox domain, so virtual_mailbox_maps still says which recipients
exist at RCPT; Postfix does not ask Dovecot then), with the ``lmtp``
service in master.cf (unchrooted, as the mail owner; Dovecot's socket is
0666), Postfix's defaults otherwise (lmtp_destination_concurrency_limit
20, lmtp_connection_cache_on_demand).  The Maildir is then ``workdir/dovecot-mail/bench.test/
bench``, where the Dovecot's userdb puts it; its processes count in
pids() and lmtp_pids().

drained() walks the queue directories (maildrop, incoming, active,
deferred, hold) instead of running ``postqueue -p``, which would make
master run showq and so charge the poll to Postfix's CPU.
"""

from __future__ import annotations

import sys

import grp
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .common import (BENCH_DIR, DOMAIN, FWD_RCPT, FWD_TARGET, HOSTNAME,
                     LOCAL_RCPT, SENDER, Server, Unavailable, kill_tree,
                     make_maildir, start_milter_pass, unpack, wait_port)
from .dovecot import lmtp_maildir, start_lmtp

sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "integration"))
from peers.postfix import MASTER_CF_SERVICES, stop_instance  # noqa: E402  (the tests' own)

MAIL_OWNER = "chamois-test"
SETGID_GROUP = "mail"
QUEUE_SUBDIRS = ("maildrop", "incoming", "active", "deferred", "hold")

# master.cf from scratch: nothing chrooted; the tests' services (shared)
# plus the smtpd listener on the bench's port and virtual(8) delivery.
MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:%(port)d inet n - n - %(smtpd_maxproc)s smtpd
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
""" + MASTER_CF_SERVICES.replace("%", "%%")


def _ensure_account() -> tuple:
    """The unprivileged mail owner (and Maildir owner); (uid, gid)."""
    try:
        pw = pwd.getpwnam(MAIL_OWNER)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                            "--comment", "chamois bench/tests Postfix mail_owner",
                            MAIL_OWNER], capture_output=True, text=True, timeout=60)
        try:
            pw = pwd.getpwnam(MAIL_OWNER)
        except KeyError:
            raise Unavailable(f"cannot create user {MAIL_OWNER}: {r.stderr.strip()}")
    try:
        grp.getgrnam(SETGID_GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", SETGID_GROUP], capture_output=True,
                       timeout=60)
    return pw.pw_uid, pw.pw_gid


class Postfix(Server):
    """One Postfix instance (master + children) configured for the bench.

    ``extra``: more main.cf settings (override anything below);
    ``process_limit``: smtpd's maxproc (default: default_process_limit,
    200; the idle scenario needs one smtpd per held connection).
    Attributes beyond the interface: ``root`` (the unpacked tree),
    ``config_dir``, ``queue_dir``, ``log_path``, ``env()``, ``cmd(name,
    *args)``, ``master_pid()``, ``queue_count()``, ``log()``."""

    name = "postfix"

    def __init__(self, workdir: Path, extra: Optional[Dict[str, str]] = None,
                 process_limit: Optional[int] = None, dkim: Sequence[str] = (),
                 port: Optional[int] = None, milter: bool = False, lmtp: bool = False):
        super().__init__(workdir)
        self.extra = dict(extra or {})
        self.pass_milter = milter
        self.lmtp = lmtp
        self.dovecot = None
        if lmtp:       # where the Dovecot's userdb puts bench@bench.test
            self.maildir = lmtp_maildir(self.workdir)
        if milter and dkim:
            raise Unavailable("one milter at a time: OpenDKIM (dkim) or milter_pass")
        self.process_limit = process_limit
        if port is not None:
            self.port = port
        if list(dkim) not in ([], ["rsa"]):
            raise Unavailable("the bench's OpenDKIM signs with RSA only")
        self.dkim = list(dkim)
        self.milter: Optional[subprocess.Popen] = None
        self.root: Optional[Path] = None
        self.config_dir = self.workdir / "etc"
        self.queue_dir = self.workdir / "spool"
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "maillog"
        self._started = False

    # -- setup ---------------------------------------------------------
    @classmethod
    def prepare(cls) -> None:
        if os.geteuid() != 0:
            raise Unavailable("Postfix needs root (postfix start)")
        root = unpack("postfix")
        meta = root / "etc/postfix"
        share = root / "usr/share/postfix"
        for src, dst in (("dynamicmaps.cf", "dynamicmaps.cf"),
                         ("makedefs.out", "makedefs.out"),
                         ("main.cf.dist", "main.cf.proto"),
                         ("master.cf.dist", "master.cf.proto")):
            if not (meta / dst).exists():
                shutil.copy(share / src, meta / dst)
        env = dict(os.environ, LD_LIBRARY_PATH=str(root / "usr/lib/postfix"))
        r = subprocess.run([str(root / "usr/sbin/postconf"), "-d", "-h", "mail_version"],
                           capture_output=True, text=True, env=env, timeout=60)
        if r.returncode != 0:
            raise Unavailable("unpacked postconf does not run (install libdb5.3 libicu72 "
                              "libnsl2 libsasl2-2 libssl3): " + r.stderr.strip())
        _ensure_account()

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_")}
        env["LD_LIBRARY_PATH"] = str(self.libdir)
        env["MAIL_CONFIG"] = str(self.config_dir)
        env.setdefault("LANG", "C")
        return env

    @property
    def libdir(self) -> Path:
        return self.root / "usr/lib/postfix"

    @property
    def sbin(self) -> Path:
        return self.root / "usr/sbin"

    def main_cf(self) -> Dict[str, str]:
        local, _domain = LOCAL_RCPT.split("@")
        cf = {
            "compatibility_level": "3.6",
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "command_directory": str(self.sbin),
            "daemon_directory": str(self.root / "usr/lib/postfix/sbin"),
            "shlib_directory": str(self.libdir),
            "meta_directory": str(self.root / "etc/postfix"),
            "sendmail_path": str(self.sbin / "sendmail"),
            "mailq_path": str(self.sbin / "postqueue"),
            "newaliases_path": str(self.sbin / "postalias"),
            "manpage_directory": str(self.root / "usr/share/man"),
            "sample_directory": str(self.root / "etc/postfix"),
            "html_directory": "no",
            "readme_directory": "no",
            "import_environment": ("MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C "
                                   "POSTLOG_SERVICE POSTLOG_HOSTNAME "
                                   f"LD_LIBRARY_PATH={self.libdir}"),
            "export_environment": "TZ MAIL_CONFIG LANG LD_LIBRARY_PATH",
            "mail_owner": MAIL_OWNER,
            "setgid_group": SETGID_GROUP,
            "default_privs": "nobody",
            "syslog_name": "postfix-bench",
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": str(self.workdir),
            # names and domains
            "myhostname": HOSTNAME,
            "mydomain": DOMAIN,
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "local_transport": "error:5.1.1 no local delivery in the bench",
            "virtual_mailbox_domains": DOMAIN,
            "virtual_mailbox_base": str(self.workdir),
            "virtual_mailbox_maps": "inline:{ %s=%s/ }" % (LOCAL_RCPT, self.maildir.name),
            "virtual_alias_maps": "inline:{ %s=%s }" % (FWD_RCPT, FWD_TARGET),
            "virtual_uid_maps": "static:%d" % self.uid,
            "virtual_gid_maps": "static:%d" % self.gid,
            "biff": "no",
            "append_dot_mydomain": "no",
            # network
            # the smtpd address is in master.cf; inet_interfaces only names
            # "myself" for the smtp client's loop check (see the docstring)
            "inet_interfaces": "[::1]",
            "inet_protocols": "all",
            "smtp_address_preference": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "reject_unauth_destination",
            "smtpd_recipient_restrictions": "",
            "smtpd_peername_lookup": "no",
            "smtpd_banner": "$myhostname ESMTP Postfix (chamois bench)",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "smtp_tls_session_cache_database": "",
            "smtp_dns_support_level": "enabled",
            "smtp_host_lookup": "dns",
            "relayhost": "",
            "smtp_bind_address": "127.0.0.1",
            "smtp_helo_name": "$myhostname",
            # no throttles for a load test
            "default_process_limit": "200",
            "in_flow_delay": "0",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "smtpd_client_recipient_rate_limit": "0",
            "smtpd_client_new_tls_session_rate_limit": "0",
            "smtpd_client_auth_rate_limit": "0",
            "smtpd_error_sleep_time": "0",
            "smtpd_soft_error_limit": "1000",
            "smtpd_hard_error_limit": "1000",
            "smtpd_junk_command_limit": "100000",
            "smtpd_timeout": "30m",
            "message_size_limit": "10240000",
            "delay_warning_time": "0",
            "queue_run_delay": "10s",
            "minimal_backoff_time": "10s",
            "maximal_backoff_time": "20s",
            "smtputf8_enable": "yes",
        }
        if self.dovecot is not None:
            cf["virtual_transport"] = f"lmtp:unix:{self.dovecot.lmtp_socket}"
        cf.update(self.extra)
        return cf

    def write_config(self) -> None:
        self.uid, self.gid = _ensure_account()
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind(("::1", 0))
        except OSError as e:
            raise Unavailable(f"no ::1 on loopback ({e}): Postfix's inet_interfaces "
                              "needs it (see bench/servers/postfix.py)")
        for d in (self.workdir, self.config_dir, self.queue_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o755)
        # virtual(8) writes the Maildir as MAIL_OWNER: it must reach it
        p = self.workdir
        while True:
            mode = p.stat().st_mode
            if not mode & stat.S_IXOTH:
                raise Unavailable(f"{p} is not traversable by {MAIL_OWNER} "
                                  f"(mode {oct(mode & 0o777)}), which writes the Maildir")
            if p.parent == p:
                break
            p = p.parent
        main = "".join(f"{k} = {v}\n" for k, v in self.main_cf().items())
        (self.config_dir / "main.cf").write_text(main)
        maxproc = str(self.process_limit) if self.process_limit else "-"
        (self.config_dir / "master.cf").write_text(
            MASTER_CF % {"port": self.port, "smtpd_maxproc": maxproc})
        self.log_path.touch()
        os.chown(self.data_dir, self.uid, self.gid)
        os.chmod(self.data_dir, 0o700)
        make_maildir(self.maildir, MAIL_OWNER)

    # -- commands ------------------------------------------------------
    def cmd(self, name: str, *args: str, timeout: float = 60,
            check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(self.sbin / name)]
        if name in ("postfix", "postqueue", "postsuper", "postconf", "postcat"):
            argv += ["-c", str(self.config_dir)]
        argv += list(args)
        r = subprocess.run(argv, capture_output=True, text=True, env=self.env(),
                           timeout=timeout)
        if check and r.returncode != 0:
            raise Unavailable(f"{' '.join(argv)} failed ({r.returncode}): {r.stdout}"
                              f"{r.stderr}\n--- maillog ---\n{self.log()[-3000:]}\n(the "
                              "postfix command says why only on syslog or a tty: run it "
                              "under `script -qc` to see)")
        return r

    def start(self) -> None:
        if self.root is None:
            self.prepare()
            self.root = unpack("postfix")
        if self.lmtp:
            self.dovecot = start_lmtp(self.workdir)
        self.write_config()
        if self.dkim:
            self.start_milter()
        if self.pass_milter:
            sock = self.workdir / "milter.sock"
            with open(self.workdir / "milter_pass.log", "ab") as log:
                self.milter = start_milter_pass(sock, log)
            with open(self.config_dir / "main.cf", "a") as f:
                f.write(f"smtpd_milters = unix:{sock}\n"
                        "milter_default_action = tempfail\n")
        self._started = True
        try:
            self.cmd("postfix", "start", timeout=60)
            wait_port(self.port, timeout=30)
        except (Unavailable, subprocess.TimeoutExpired) as e:
            self.stop()
            raise Unavailable(f"postfix: {e}")

    def start_milter(self) -> None:
        """OpenDKIM on workdir/opendkim.sock, and main.cf's non_smtpd_milters."""
        od = unpack("opendkim")
        lib = unpack("libmilter1.0.1") / "usr/lib/x86_64-linux-gnu"
        sock = self.workdir / "opendkim.sock"
        key = self.workdir / "dkim-rsa.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", str(key)], check=True,
                       capture_output=True, timeout=60)
        os.chmod(key, 0o600)
        conf = self.workdir / "opendkim.conf"
        conf.write_text("\n".join([
            "Syslog no", "Mode s", f"Socket local:{sock}", "UMask 000",
            f"Domain {SENDER.split('@')[1]}", "Selector rsa", f"KeyFile {key}",
            "Canonicalization relaxed/relaxed", "OversignHeaders From",
            f"PidFile {self.workdir / 'opendkim.pid'}", ""]))
        log = open(self.workdir / "opendkim.log", "ab")
        self.milter = subprocess.Popen(
            [str(od / "usr/sbin/opendkim"), "-f", "-x", str(conf)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, LD_LIBRARY_PATH=str(lib)))
        log.close()
        deadline = time.monotonic() + 20
        while True:
            if self.milter.poll() is not None:
                raise Unavailable("opendkim exited: " +
                                  (self.workdir / "opendkim.log").read_text()[-1000:])
            if sock.is_socket():
                break
            if time.monotonic() > deadline:
                raise Unavailable(f"opendkim: no {sock}")
            time.sleep(0.05)
        with open(self.config_dir / "main.cf", "a") as f:
            f.write(f"non_smtpd_milters = unix:{sock}\n"
                    "milter_default_action = tempfail\n")

    def master_pid(self) -> Optional[int]:
        try:
            return int((self.queue_dir / "pid/master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pids(self) -> List[int]:
        pid = self.master_pid()
        pids = [pid] if pid and os.path.exists(f"/proc/{pid}") else []
        if self.milter and self.milter.poll() is None:
            pids.append(self.milter.pid)
        return pids + self.lmtp_pids()

    def milter_pids(self) -> List[int]:
        return [self.milter.pid] if self.milter and self.milter.poll() is None else []

    def lmtp_pids(self) -> List[int]:
        p = self.dovecot.proc if self.dovecot is not None else None
        return [p.pid] if p is not None and p.poll() is None else []

    def _our_pids(self) -> List[int]:
        """Every process of this instance: MAIL_CONFIG=our config dir in its
        environment (master passes it to every child)."""
        want = b"MAIL_CONFIG=" + str(self.config_dir).encode()
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if want in f.read().split(b"\0"):
                        found.append(int(d))
            except OSError:
                continue
        master = self.master_pid()
        if master and os.path.exists(f"/proc/{master}") and master not in found:
            found.append(master)
        return found

    def stop(self) -> None:
        if self._started:
            self._started = False
            stop_instance(lambda: self.cmd("postfix", "stop", check=False, timeout=30),
                          self._our_pids, 15)
            kill_tree(self.milter)
        if self.dovecot is not None:       # started before Postfix, so stopped whatever failed
            self.dovecot.stop()

    # -- queue ---------------------------------------------------------
    def sendmail(self) -> Optional[List[str]]:
        if self.root is None:
            self.root = unpack("postfix")
        return ["/usr/bin/env", f"LD_LIBRARY_PATH={self.libdir}",
                f"MAIL_CONFIG={self.config_dir}",
                str(self.sbin / "sendmail"), "-C", str(self.config_dir), "-i",
                "-f", SENDER, FWD_TARGET]

    def queue_count(self) -> int:
        """Queue files in maildrop, incoming, active, deferred and hold."""
        n = 0
        for sub in QUEUE_SUBDIRS:
            for _dirpath, _dirs, files in os.walk(self.queue_dir / sub):
                n += len(files)
        return n

    def drained(self) -> bool:
        return self.queue_count() == 0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

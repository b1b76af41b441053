"""A real Postfix, unpacked from Debian's package, as a sending MTA for tests.

Debian's ``postfix`` package conflicts with every other MTA, so it is never
installed system-wide.  Instead ``ensure_postfix()`` runs, once per machine
(the result is kept and reused)::

    apt-get download postfix
    dpkg -x postfix_*.deb tests/integration/.peers/postfix/root

and every ``Postfix`` instance runs the binaries of that tree with its own
config_directory, queue_directory and data_directory under a test's tmp dir.

How Postfix is made to run from an unpacked tree (found by trial):

* The binaries have RUNPATH /usr/lib/postfix, which does not exist, so
  ``LD_LIBRARY_PATH`` points at ``root/usr/lib/postfix``.  Postfix programs
  wipe their environment except ``import_environment``, so main.cf names
  ``LD_LIBRARY_PATH=...`` there too (else master's children cannot start).
* ``command_directory``, ``daemon_directory``, ``shlib_directory`` and
  ``meta_directory`` point into the unpacked tree; ``meta_directory`` gets
  Debian's ``dynamicmaps.cf`` copied in (the package's postinst normally
  does that).  ``postfix start`` runs ``postfix-script check-fatal`` which
  runs ``post-install create-missing``: that creates the queue directories
  with the right owners, so nothing needs ``set-permissions``.
* Postfix refuses to run with ``mail_owner`` root and refuses a
  ``mail_owner`` that shares its uid with another account or its gid with
  ``setgid_group``.  We use a dedicated system account ``chamois-test``
  (created with ``useradd --system --user-group`` if missing) and the
  standard Debian group ``mail`` as ``setgid_group``.  The daemons still
  start as root (we run as root) and drop to ``chamois-test``.
* Every daemon is unchrooted (master.cf is written from scratch with
  chroot ``n``) since the queue directory holds no copy of /etc or the libs.
* ``maillog_file`` (written by the ``postlog`` service) needs
  ``maillog_file_prefixes`` to allow the tmp dir.
* Nothing looks up DNS: ``smtp_dns_support_level = disabled`` with
  ``smtp_host_lookup = native`` and the relayhost an IP literal
  (``[127.0.0.1]:PORT``), ``smtpd_peername_lookup = no``, explicit
  ``myhostname``/``mydomain``/``myorigin``.

Requires root (``postfix start`` does) and these Debian packages, which the
postfix package depends on: libdb5.3 libicu72 libnsl2 libsasl2-2 libssl3
netbase (plus apt lists, i.e. ``apt-get update`` done once).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import grp
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

from harness import free_port, wait_log_match  # noqa: F401  (free_port: for exim.py, dovecot.py)

def peers_base() -> Path:
    """Where Debian's packages are unpacked for the tests: .peers in the
    tree, unless some directory above it is closed to other users (a clone
    in /root): the peers' own users (Debian-exim re-executes its binary)
    must reach the binaries, so they go to /var/tmp/chamois-peers-UID."""
    here = Path(__file__).resolve().parent.parent
    if all(os.stat(d).st_mode & 0o001 for d in [here, *here.parents]):
        return here / ".peers"
    base = Path("/var/tmp") / ("chamois-peers-%d" % os.getuid())
    base.mkdir(mode=0o755, exist_ok=True)
    os.chmod(base, 0o755)
    return base


PEERS_DIR = peers_base() / "postfix"
MAIL_OWNER = "chamois-test"
SETGID_GROUP = "mail"


class PeerUnavailable(Exception):
    """The peer cannot run on this machine (pytest should skip)."""


def wait_port(host: str, port: int, deadline: float, proc_alive=None) -> None:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    last = None
    while time.monotonic() < deadline:
        if proc_alive is not None and not proc_alive():
            raise RuntimeError("process exited before %s:%d accepted" % (host, port))
        try:
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect((host, port))
                return
        except OSError as e:
            last = e
            time.sleep(0.05)
    raise TimeoutError("%s:%d did not accept connections in time (%s)" % (host, port, last))


def _run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout, **kw)


def unpack_package(peers_dir: Path, package: str, marker_file: str, fixup=None) -> Path:
    """Download Debian's `package` and unpack it once under peers_dir/root
    (apt-get download + dpkg -x, under a lock); marker_file, relative to
    the root, must exist afterwards.  fixup(tmproot) adjusts the tree before
    it is put in place.  Returns the root."""
    root = peers_dir / "root"
    marker = peers_dir / ".unpacked"
    peers_dir.mkdir(parents=True, exist_ok=True)
    with open(peers_dir / ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if not (marker.exists() and (root / marker_file).exists()):
            dl = peers_dir / "download"
            shutil.rmtree(dl, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)
            dl.mkdir(parents=True)
            # apt runs downloads as _apt; let it write here (else it warns and
            # falls back to root, which also works).
            os.chmod(dl, 0o777)
            try:
                r = _run(["apt-get", "download", package], cwd=dl, timeout=300)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise PeerUnavailable("apt-get download %s failed: %s" % (package, e))
            debs = sorted(dl.glob("%s_*.deb" % package))
            if r.returncode != 0 or not debs:
                raise PeerUnavailable("apt-get download %s failed (run apt-get update?): "
                                      % package + r.stdout.decode(errors="replace")[-2000:])
            tmproot = peers_dir / "root.tmp"
            shutil.rmtree(tmproot, ignore_errors=True)
            r = _run(["dpkg", "-x", str(debs[-1]), str(tmproot)])
            if r.returncode != 0:
                raise PeerUnavailable("dpkg -x failed: " + r.stdout.decode(errors="replace"))
            if fixup is not None:
                fixup(tmproot)
            os.chmod(tmproot, 0o755)
            tmproot.rename(root)
            shutil.rmtree(dl, ignore_errors=True)
            marker.write_text("ok\n")
    return root


def _postfix_fixup(tmproot: Path) -> None:
    meta = tmproot / "etc/postfix"
    shutil.copy(tmproot / "usr/share/postfix/dynamicmaps.cf", meta / "dynamicmaps.cf")
    for name in ("makedefs.out",):
        shutil.copy(tmproot / "usr/share/postfix" / name, meta / name)
    shutil.copy(tmproot / "usr/share/postfix/main.cf.dist", meta / "main.cf.proto")
    shutil.copy(tmproot / "usr/share/postfix/master.cf.dist", meta / "master.cf.proto")


def ensure_postfix() -> Path:
    """Download and unpack Debian's postfix once; return the unpacked root."""
    if os.geteuid() != 0:
        raise PeerUnavailable("Postfix peer needs root (postfix start)")
    root = unpack_package(PEERS_DIR, "postfix", "usr/sbin/postfix", _postfix_fixup)
    env = dict(os.environ, LD_LIBRARY_PATH=str(root / "usr/lib/postfix"))
    r = _run([str(root / "usr/sbin/postconf"), "-d", "-h", "mail_version"], env=env)
    if r.returncode != 0:
        ldd = _run(["ldd", str(root / "usr/sbin/postconf")], env=env).stdout.decode(errors="replace")
        missing = [l.strip() for l in ldd.splitlines() if "not found" in l]
        raise PeerUnavailable("unpacked postconf does not run (missing libraries %s; install "
                              "libdb5.3 libicu72 libnsl2 libsasl2-2 libssl3): %s"
                              % (missing, r.stdout.decode(errors="replace")))
    return root


def ensure_system_user(name: str, comment: str, group: Optional[str] = None) -> Tuple[int, int]:
    """Make sure the system account `name` exists (useradd --system
    --user-group, no home, no shell), and the system group `group` when
    given; return (uid, gid).  Under a lock shared by every test process:
    two pytest-xdist workers must not run useradd at once (the second would
    fail on the locked /etc/passwd)."""
    PEERS_DIR.parent.mkdir(parents=True, exist_ok=True)
    with open(PEERS_DIR.parent / ".accounts.lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            r = _run(["useradd", "--system", "--user-group", "--no-create-home",
                      "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                      "--comment", comment, name])
            try:
                pw = pwd.getpwnam(name)
            except KeyError:
                raise PeerUnavailable("cannot create user %s: %s"
                                      % (name, r.stdout.decode(errors="replace")))
        if group is not None:
            try:
                grp.getgrnam(group)
            except KeyError:
                _run(["groupadd", "--system", group])
    return pw.pw_uid, pw.pw_gid


def ensure_mail_owner() -> Tuple[int, int]:
    """Make sure the unprivileged Postfix account exists; return (uid, gid)."""
    return ensure_system_user(MAIL_OWNER, "chamois tests Postfix mail_owner", SETGID_GROUP)


# The services of master.cf, written from scratch: no chroot anywhere (the
# queue directory holds no copy of /etc or the libraries).  Also used by
# bench/servers/postfix.py, which adds its smtpd listener and `virtual`.
MASTER_CF_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# master.cf for the tests: only what a relaying client needs.  %(smtpd)s is
# replaced by the smtpd listen address.
MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
%(smtpd)s inet  n       -       n       -       -       smtpd
        -o debug_peer_list=
""" + MASTER_CF_SERVICES


def stop_instance(postfix_stop, our_pids, timeout: float) -> None:
    """Stop one Postfix instance: ``postfix_stop()`` (runs `postfix stop`),
    wait up to `timeout` for its processes (``our_pids()``) to go, then
    SIGTERM and SIGKILL whatever is left.  Shared with bench/servers/."""
    try:
        postfix_stop()
    except (subprocess.TimeoutExpired, OSError):
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and our_pids():
        time.sleep(0.1)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = our_pids()
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 5
        while time.monotonic() < end and our_pids():
            time.sleep(0.1)


class Postfix:
    """One Postfix instance relaying everything to ``relay`` (host, port).

    ``base`` is a fresh directory (e.g. pytest's tmp_path / "postfix").
    ``bounce_relay`` (host, port), if given, is where non-delivery reports
    for ``sender_domain`` are sent (e.g. an aiosmtpd sink); else they are
    discarded (still logged as "sender non-delivery notification").
    """

    def __init__(self, base: Union[str, Path], relay: Tuple[str, int],
                 myhostname: str = "sender.example.net",
                 bounce_relay: Optional[Tuple[str, int]] = None,
                 verbose_peer: bool = True,
                 extra_main: Optional[dict] = None,
                 smtpd_host: str = "127.0.0.1"):
        self.root = ensure_postfix()
        self.uid, self.gid = ensure_mail_owner()
        self.base = Path(base)
        self.config_dir = self.base / "etc"
        self.queue_dir = self.base / "spool"
        # data_directory is opened by master as mail_owner, who must be able
        # to reach it: pytest's tmp dirs (/tmp/pytest-of-root, 0700) are not
        # traversable for it, so it lives in its own 0711 dir under /tmp,
        # made in write_config() and removed by stop(); base/lib links to it.
        self.data_dir: Optional[Path] = None
        self._data_parent: Optional[Path] = None
        self.log_path = self.base / "maillog"
        self.relay = relay
        self.myhostname = myhostname
        self.sender_domain = myhostname
        self.bounce_relay = bounce_relay
        self.smtpd_host = smtpd_host
        self.smtpd_port: Optional[int] = None
        self.verbose_peer = verbose_peer
        self.extra_main = dict(extra_main or {})
        self.libdir = self.root / "usr/lib/postfix"
        self.sbin = self.root / "usr/sbin"
        self.daemon_dir = self.root / "usr/lib/postfix/sbin"
        self.meta_dir = self.root / "etc/postfix"
        self._started = False

    # -- configuration -------------------------------------------------
    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_")}
        env["LD_LIBRARY_PATH"] = str(self.libdir)
        env["MAIL_CONFIG"] = str(self.config_dir)
        env.setdefault("LANG", "C")
        return env

    def main_cf(self) -> dict:
        rhost, rport = self.relay
        rhost_lit = "[%s]" % rhost if not rhost.startswith("[") else rhost
        if self.bounce_relay:
            bh, bp = self.bounce_relay
            bounce_tr = "smtp:[%s]:%d" % (bh, bp)
        else:
            bounce_tr = "discard:"
        cf = {
            "compatibility_level": "3.6",
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "command_directory": str(self.sbin),
            "daemon_directory": str(self.daemon_dir),
            "shlib_directory": str(self.libdir),
            "meta_directory": str(self.meta_dir),
            "sendmail_path": str(self.sbin / "sendmail"),
            "mailq_path": str(self.sbin / "postqueue"),
            "newaliases_path": str(self.sbin / "postalias"),
            "manpage_directory": str(self.root / "usr/share/man"),
            "sample_directory": str(self.meta_dir),
            "html_directory": "no",
            "readme_directory": "no",
            "import_environment": ("MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C "
                                   "POSTLOG_SERVICE POSTLOG_HOSTNAME "
                                   "LD_LIBRARY_PATH=%s" % self.libdir),
            # ...and what it passes to programs it runs (sendmail -> postdrop)
            "export_environment": "TZ MAIL_CONFIG LANG LD_LIBRARY_PATH",
            "mail_owner": MAIL_OWNER,
            "setgid_group": SETGID_GROUP,
            "default_privs": "nobody",
            "syslog_name": "postfix-test",
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": str(self.base),
            "myhostname": self.myhostname,
            "mydomain": self.myhostname,
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "local_transport": "error:5.1.1 no local delivery in tests",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4, ipv6" if ":" in self.smtpd_host else "ipv4",
            "mynetworks": "127.0.0.0/8 [::1]/128",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "",
            "smtpd_peername_lookup": "no",
            "smtpd_banner": "$myhostname ESMTP Postfix (chamois tests)",
            "relayhost": "%s:%d" % (rhost_lit, rport),
            "transport_maps": "inline:{ %s=%s }" % (self.sender_domain, bounce_tr),
            "smtp_bind_address": "127.0.0.1" if ":" not in rhost else "",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            "smtp_tls_security_level": "may",
            "smtp_tls_loglevel": "1",
            "smtp_tls_session_cache_database": "",
            "smtp_tls_CApath": "",
            "smtp_tls_CAfile": "",
            "smtpd_tls_security_level": "",
            "smtp_helo_name": "$myhostname",
            "smtp_connect_timeout": "10s",
            "smtp_helo_timeout": "30s",
            "biff": "no",
            "append_dot_mydomain": "no",
            "message_size_limit": "10240000",
            "queue_run_delay": "2s",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
            "delay_warning_time": "0",
            "notify_classes": "resource, software",
            "smtputf8_enable": "yes",
        }
        if self.verbose_peer:
            # Logs the SMTP client's dialogue with the relay ("> host: CMD",
            # "< host: reply"), which shows pipelining and STARTTLS.
            rh = rhost.strip("[]")
            cf["debug_peer_list"] = rh
            cf["debug_peer_level"] = "1"
        cf.update(self.extra_main)
        return cf

    def write_config(self) -> None:
        if self.data_dir is None:
            import tempfile
            self._data_parent = Path(tempfile.mkdtemp(prefix="chamois-postfix-"))
            os.chmod(self._data_parent, 0o711)
            self.data_dir = self._data_parent / "lib"
            self.base.mkdir(parents=True, exist_ok=True)
            link = self.base / "lib"
            if not link.exists():
                link.symlink_to(self.data_dir)
        for d in (self.base, self.config_dir, self.queue_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        os.chmod(self.config_dir, 0o755)
        os.chmod(self.queue_dir, 0o755)
        if self.smtpd_port is None:
            self.smtpd_port = free_port(self.smtpd_host)
        host = self.smtpd_host
        listen = "[%s]:%d" % (host, self.smtpd_port) if ":" in host else "%s:%d" % (host, self.smtpd_port)
        main = "".join("%s = %s\n" % (k, v) for k, v in self.main_cf().items())
        (self.config_dir / "main.cf").write_text(main)
        (self.config_dir / "master.cf").write_text(MASTER_CF % {"smtpd": listen})
        self.log_path.touch()
        os.chown(self.data_dir, self.uid, self.gid)
        os.chmod(self.data_dir, 0o700)

    # -- commands ------------------------------------------------------
    def cmd(self, name: str, *args: str, input: Optional[bytes] = None,
            timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        """Run an unpacked Postfix command with this instance's config."""
        argv = [str(self.sbin / name)]
        if name in ("postfix", "postqueue", "postsuper", "postconf", "postcat", "postlog"):
            argv += ["-c", str(self.config_dir)]
        argv += list(args)
        r = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=self._env(), timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s %s\n--- maillog ---\n%s" % (
                " ".join(argv), r.returncode, r.stdout.decode(errors="replace"),
                r.stderr.decode(errors="replace"), self.log()[-4000:]))
        return r

    def start(self, timeout: float = 30) -> "Postfix":
        self.write_config()
        self._started = True
        # "postfix start" runs "postfix-script check-fatal" (which creates the
        # queue directories) and check-warn itself.
        self.cmd("postfix", "start", timeout=timeout)
        wait_port(self.smtpd_host, self.smtpd_port, time.monotonic() + timeout)
        return self

    def master_pid(self) -> Optional[int]:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _our_pids(self) -> list:
        """Processes of this instance: environment MAIL_CONFIG=our config dir."""
        want = b"MAIL_CONFIG=" + str(self.config_dir).encode()
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % d, "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if want in env:
                pids.append(int(d))
        return pids

    def stop(self, timeout: float = 20) -> None:
        try:
            self._stop(timeout)
        finally:
            if self._data_parent is not None:
                shutil.rmtree(self._data_parent, ignore_errors=True)
                self._data_parent = None
                self.data_dir = None

    def _stop(self, timeout: float) -> None:
        if not self._started:
            return
        self._started = False
        stop_instance(lambda: self.cmd("postfix", "stop", check=False, timeout=timeout),
                      self._our_pids, timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- mail ----------------------------------------------------------
    def submit(self, msg: bytes, sender: str, recipients: Sequence[str],
               via: str = "smtp", timeout: float = 30) -> None:
        """Hand a message to Postfix: via its smtpd ("smtp") or its sendmail.

        Postfix prepends one Received header and adds Message-ID, Date and
        From when missing (via sendmail it also rewrites From with the
        caller's name); otherwise it relays the message unchanged."""
        if isinstance(recipients, str):
            recipients = [recipients]
        if via == "smtp":
            with smtplib.SMTP(self.smtpd_host, self.smtpd_port, timeout=timeout) as s:
                s.ehlo("client.example.net")
                refused = s.sendmail(sender, list(recipients), msg)
                if refused:
                    raise RuntimeError("Postfix smtpd refused %r" % refused)
        elif via == "sendmail":
            self.cmd("sendmail", "-C", str(self.config_dir), "-i", "-f", sender, "--",
                     *recipients, input=msg, timeout=timeout)
        else:
            raise ValueError(via)

    def queue_listing(self) -> str:
        r = self.cmd("postqueue", "-p", check=False)
        return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")

    def queue_empty(self) -> bool:
        return "Mail queue is empty" in self.queue_listing()

    def flush(self) -> None:
        self.cmd("postqueue", "-f", check=False)

    def wait_queue_empty(self, timeout: float = 30) -> bool:
        """Poll the queue until empty; return False at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue_empty():
                return True
            time.sleep(0.2)
        return self.queue_empty()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 30) -> "re.Match":
        """Wait until the log matches regex ``pattern``; return the match."""
        return wait_log_match(self.log, pattern, timeout, 'Postfix log')

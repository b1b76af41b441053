"""A real Dovecot (Debian's dovecot-imapd) reading chamoisd's Maildirs over IMAP.

``Dovecot(base, maildir_root, users, extra_conf="", protocols="imap",
user_fields={})`` writes its own config under ``base``
(a test's tmp dir) and runs ``/usr/sbin/dovecot -F -c CONF``: base_dir,
state_dir and log_path under ``base``, ``listen = 127.0.0.1``, one IMAP
listener on a free loopback port (none without "imap" in ``protocols``:
start() then waits for the LMTP socket's greeting; the bench's
chamois-lmtp and postfix-lmtp), ``ssl = no``, ``disable_plaintext_auth =
no``, passdb/userdb a passwd-file with ``{PLAIN}`` passwords.  The system
dovecot service is neither used nor touched.

How it gets at Maildirs written by chamoisd (found by trial):

* Dovecot hard-refuses mail access as uid 0 (``first_valid_uid = 0`` does not
  help: "Mail access not allowed for root"), so the mail processes run as
  the unprivileged system account ``chamois-test`` (created if missing, the
  same account the Postfix peer uses as mail_owner).
* pytest's tmp dirs (``/tmp/pytest-of-root``, 0700) cannot be traversed by
  that account, so every user's home is ``MAILDIR_ROOT/./DOMAIN/LOCAL``:
  Dovecot chroots (as root) into ``maildir_root`` (listed in
  ``valid_chroot_dirs``) before dropping privileges, and
  ``mail_location = maildir:~``.
* ``grant_access(address)`` (called by ``fetch``) makes ``maildir_root`` and
  the domain directory traversable (o+x, not listable) and chowns that one
  user's Maildir to ``chamois-test``.  File contents are not touched.
  Dovecot then moves files from new/ to cur/ and adds its index files, as
  an IMAP server does; so fetch after the checks that read the Maildir.
* ``service auth { user = root }`` so the auth process can read the
  passwd-file in the (0700) tmp dir.

Note: Dovecot trusts the ``,S=<size>`` in a Maildir file name as the file's
size on disk; a wrong S= makes FETCH fail ("Cached message size larger than
expected"), so fetching checks chamoisd's S= too.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

try:
    from .postfix import ensure_mail_owner, free_port, wait_port, PeerUnavailable
except ImportError:  # imported as a top-level module
    from postfix import ensure_mail_owner, free_port, wait_port, PeerUnavailable  # type: ignore

DOVECOT = "/usr/sbin/dovecot"
DEFAULT_PASSWORD = "secret"


def _split(address: str) -> Tuple[str, str]:
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        raise ValueError("not user@domain: %r" % address)
    return local, domain


class Dovecot:
    """Dovecot IMAP over ``maildir_root`` (Maildir of user@dom at dom/user/).

    ``users``: addresses (password ``secret``) or a dict address -> password.
    """

    def __init__(self, base: Union[str, Path], maildir_root: Union[str, Path],
                 users: Union[Iterable[str], Dict[str, str]] = ("alice@example.test",),
                 host: str = "127.0.0.1", extra_conf: str = "",
                 protocols: str = "imap", user_fields: Optional[Dict[str, str]] = None):
        if not os.path.exists(DOVECOT):
            raise PeerUnavailable("%s missing (apt-get install dovecot-imapd)" % DOVECOT)
        if os.geteuid() != 0:
            raise PeerUnavailable("Dovecot peer needs root")
        self.uid, self.gid = ensure_mail_owner()
        for name in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                raise PeerUnavailable("system user %r missing (dovecot-core's postinst "
                                      "makes it)" % name)
        self.base = Path(base)
        self.maildir_root = Path(maildir_root).resolve()
        if isinstance(users, dict):
            self.users = dict(users)
        else:
            self.users = {u: DEFAULT_PASSWORD for u in users}
        self.host = host
        self.extra_conf = extra_conf
        self.protocols = protocols
        self.user_fields = dict(user_fields or {})
        self.port: Optional[int] = None
        self.conf = self.base / "dovecot.conf"
        self.passwd = self.base / "passwd"
        self.log_path = self.base / "dovecot.log"
        self.proc: Optional[subprocess.Popen] = None
        self._out = None

    # -- configuration -------------------------------------------------
    def home(self, address: str) -> Path:
        local, domain = _split(address)
        return self.maildir_root / domain / local

    def base_conf(self) -> str:
        """The settings that keep this Dovecot private: its own instance,
        base_dir, state_dir and log under ``base``, ``listen`` on loopback
        (also used by test_install_doc.py, which adds doc/install.md's)."""
        b = self.base
        return f"""\
# written by tests/integration/peers/dovecot.py
instance_name = chamois-test-{uuid.uuid4().hex[:8]}
base_dir = {b}/run
state_dir = {b}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
debug_log_path = {self.log_path}
listen = {self.host}
"""

    def write_config(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.maildir_root.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port(self.host)
        lines = []
        for addr, pw in self.users.items():
            local, domain = _split(addr)
            if ":" in addr or ":" in pw or "\n" in addr + pw:
                raise ValueError("unusable user/password for passwd-file: %r" % addr)
            home = "%s/./%s/%s" % (self.maildir_root, domain, local)
            lines.append("%s:{PLAIN}%s:%d:%d::%s::%s\n" % (addr, pw, self.uid, self.gid, home,
                                                          self.user_fields.get(addr, "")))
        self.passwd.write_text("".join(lines))
        os.chmod(self.passwd, 0o600)
        conf = self.base_conf() + f"""\
protocols = {self.protocols}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
first_valid_uid = {self.uid}
last_valid_uid = {self.uid}
first_valid_gid = 1
valid_chroot_dirs = {self.maildir_root}
mail_location = maildir:~
mail_fsync = optimized
shutdown_clients = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd}
}}
service auth {{
  user = root
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""" + self.extra_conf
        self.conf.write_text(conf)

    @property
    def lmtp_socket(self) -> Path:
        """Dovecot's LMTP socket (base_dir's), what local_delivery lmtp names."""
        return self.base / "run" / "lmtp"

    @property
    def auth_client(self) -> Path:
        """Dovecot's auth-client socket (base_dir's), what sasl_backend names."""
        return self.base / "run" / "auth-client"

    # -- process -------------------------------------------------------
    def start(self, timeout: float = 20) -> "Dovecot":
        self.write_config()
        self._out = open(self.base / "dovecot.stderr", "wb")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT)
        try:
            if "imap" in self.protocols.split():
                wait_port(self.host, self.port, time.monotonic() + timeout,
                          proc_alive=lambda: self.proc.poll() is None)
            else:
                self.wait_lmtp(time.monotonic() + timeout)
        except Exception as e:
            self.stop()
            raise RuntimeError("Dovecot did not start: %s\n%s\n%s" % (
                e, (self.base / "dovecot.stderr").read_text(errors="replace"), self.log()))
        return self

    def wait_lmtp(self, deadline: float) -> None:
        """Wait until the LMTP socket greets (220): how start() knows an
        instance without IMAP (protocols = lmtp, the bench's) is up."""
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited with %d" % self.proc.returncode)
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(2.0)
                    s.connect(str(self.lmtp_socket))
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise TimeoutError("%s did not greet in time (%s)" % (self.lmtp_socket, last))

    def _children(self, pid: int) -> List[int]:
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                ppid = int(st.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                out.append(int(d))
        return out

    def stop(self, timeout: float = 10) -> None:
        p, self.proc = self.proc, None
        if p is None:
            return
        children = self._children(p.pid) if p.poll() is None else []
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        # The master normally takes its children with it; kill leftovers by pid.
        deadline = time.monotonic() + 5
        for c in children:
            while time.monotonic() < deadline and os.path.exists("/proc/%d" % c):
                try:
                    with open("/proc/%d/stat" % c) as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            break
                except OSError:
                    break
                time.sleep(0.05)
            try:
                os.kill(c, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._out:
            self._out.close()
            self._out = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- access --------------------------------------------------------
    def grant_access(self, address: str) -> None:
        """Let the unprivileged mail uid reach and use this user's Maildir."""
        local, domain = _split(address)
        home = self.home(address)
        for d in (home / "new", home / "cur", home / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.maildir_root, self.maildir_root / domain):
            os.chmod(d, os.stat(d).st_mode | 0o001)
        for dirpath, dirnames, filenames in os.walk(home):
            os.chown(dirpath, self.uid, self.gid)
            for n in filenames:
                os.chown(os.path.join(dirpath, n), self.uid, self.gid, follow_symlinks=False)

    def connect(self, address: str, password: Optional[str] = None,
                timeout: float = 20) -> imaplib.IMAP4:
        self.grant_access(address)
        m = imaplib.IMAP4(self.host, self.port, timeout=timeout)
        m.login(address, password if password is not None else self.users[address])
        return m

    def fetch(self, address: str, password: Optional[str] = None,
              mailbox: str = "INBOX") -> List[bytes]:
        """Return the RFC822 text (as served: CRLF) of every message in
        ``mailbox``, in UID order."""
        m = self.connect(address, password)
        try:
            typ, data = m.select(mailbox, readonly=True)
            if typ != "OK":
                raise RuntimeError("SELECT %s: %r\n%s" % (mailbox, data, self.log()[-3000:]))
            typ, data = m.uid("SEARCH", None, "ALL")
            if typ != "OK":
                raise RuntimeError("UID SEARCH: %r" % (data,))
            uids = [int(u) for u in data[0].split()] if data and data[0] else []
            bodies = []
            for uid in sorted(uids):
                typ, data = m.uid("FETCH", str(uid), "(RFC822)")
                if typ != "OK" or not data or not isinstance(data[0], tuple):
                    raise RuntimeError("UID FETCH %d: %r %r\n%s"
                                       % (uid, typ, data, self.log()[-3000:]))
                bodies.append(data[0][1])
            return bodies
        finally:
            try:
                m.logout()
            except Exception:
                pass


@contextlib.contextmanager
def dovecots(tmp_path: Union[str, Path], prefix: str = "dovecot", tail: int = 6000):
    """A test's Dovecots: ``make(maildir_root, users, **kw)`` starts one
    under tmp_path (pytest.skip when this machine cannot run it); each is
    stopped, and the tail of its log printed, when the block ends."""
    import pytest
    made: List[Dovecot] = []

    def make(maildir_root, users, **kw) -> Dovecot:
        try:
            dv = Dovecot(Path(tmp_path) / ("%s%d" % (prefix, len(made))), maildir_root,
                         users, **kw)
        except PeerUnavailable as e:
            pytest.skip("Dovecot peer cannot run here: %s" % e)
        made.append(dv)
        dv.start()
        return dv

    try:
        yield make
    finally:
        for dv in made:
            dv.stop()
            print("---- dovecot %s log ----\n%s" % (dv.base.name, dv.log()[-tail:]))

"""What every benchmarked server shares: the bench's names, ports and the
unpacking of Debian packages into bench/.peers/ (never installed system-wide,
since Debian's MTAs conflict with each other).

The bench runs inside a network namespace that has only loopback.  Inside it:

* the bench's DNS (dnsmasq) answers on 127.0.0.1:53, and /etc/resolv.conf
  (bind-mounted by ``ip netns exec`` from /etc/netns/NS/resolv.conf) names
  it, so every server's look-ups stay in the namespace;
* ``sink.test`` has MX ``mx.sink.test`` = 127.0.0.1, where smtp-sink (or the
  bench's latency sink) listens on port 25;
* each server listens for SMTP on 127.0.0.1 at its own port (below) and
  takes mail for ``bench.test``:
    - ``bench@bench.test`` is a local mailbox, delivered into ``maildir``
      (a Maildir: tmp/ new/ cur/), by the server or by its Dovecot
      (``lmtp``); the bench counts the messages in ``new/`` (count_new);
    - ``fwd@bench.test`` is forwarded (an alias) to ``sink@sink.test``;
  and relays nothing else.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional

BENCH_DIR = Path(__file__).resolve().parent.parent
PEERS_DIR = BENCH_DIR / ".peers"          # git-ignored; kept between runs

DOMAIN = "bench.test"
HOSTNAME = "mx.bench.test"
LOCAL_RCPT = "bench@bench.test"
FWD_RCPT = "fwd@bench.test"
FWD_TARGET = "sink@sink.test"
SENDER = "sender@client.test"
SINK_HOST = "127.0.0.1"
SINK_PORT = 25

PORTS = {"chamois": 10025, "postfix": 11025, "opensmtpd": 12025, "chasquid": 13025}


class Unavailable(Exception):
    """The server cannot run on this machine; the bench reports it and goes on."""


def unpack(package: str) -> Path:
    """Unpack Debian's ``package`` into bench/.peers/PACKAGE/root (once)."""
    root = PEERS_DIR / package / "root"
    stamp = PEERS_DIR / package / ".unpacked"
    if stamp.exists():
        return root
    work = PEERS_DIR / package
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    r = subprocess.run(["apt-get", "download", package], cwd=work,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Unavailable(f"apt-get download {package}: {r.stderr.strip()}")
    debs = glob.glob(str(work / f"{package}_*.deb"))
    if not debs:
        raise Unavailable(f"apt-get download {package} left no .deb")
    subprocess.run(["dpkg", "-x", debs[0], str(root)], check=True)
    stamp.touch()
    return root


def start_milter_pass(sock: Path, log) -> subprocess.Popen:
    """bench/milter_pass (the pass-through milter, libmilter) on the unix
    socket ``sock``, made world-writable (umask 0) so that a server's
    unprivileged process may connect, as Postfix's smtpd does; returns once
    the socket is there."""
    prog = BENCH_DIR / "milter_pass"
    if not os.access(prog, os.X_OK):
        raise Unavailable(f"{prog} is missing: make -C bench milter_pass")
    proc = subprocess.Popen([str(prog), f"unix:{sock}"], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: os.umask(0))
    deadline = time.monotonic() + 10
    while not sock.is_socket():
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_tree(proc)
            raise Unavailable(f"milter_pass made no {sock}")
        time.sleep(0.05)
    return proc


def wait_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1",
              proc: Optional[subprocess.Popen] = None) -> None:
    """Wait until something accepts on host:port (and greets)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise Unavailable(f"exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise Unavailable(f"nothing greeted on {host}:{port} within {timeout:.0f}s")


def make_maildir(path: Path, owner: Optional[str] = None) -> None:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    if owner:
        shutil.chown(path, owner, owner)
        for sub in ("tmp", "new", "cur"):
            shutil.chown(path / sub, owner, owner)


def count_new(maildir: Path) -> int:
    """The messages delivered into ``maildir``: the files of new/, and of
    cur/ should a reader have moved one there, each message once.  A name
    is ``UNIQUE`` in new/ and ``UNIQUE:2,FLAGS`` in cur/ (chamoisd's
    ``T.MusecPpidQnRrand.HOST,S=N``, Dovecot's ``T.MusecPpid.HOST,S=N,W=N``,
    Postfix's virtual(8) ``T.VdevIinodeMusec.HOST``), so a message is its name up
    to the ":"; cur/ is read before new/, and a file renamed between the two
    readings is missed once (counted at the next poll), never counted
    twice.  Names that start with "." are not messages (Maildir's rule);
    Dovecot's index files and dovecot-uidlist are in the top folder, not
    here."""
    names = set()
    for sub in ("cur", "new"):
        try:
            names.update(n.split(":", 1)[0] for n in os.listdir(maildir / sub)
                         if not n.startswith("."))
        except FileNotFoundError:
            pass
    return len(names)


def kill_tree(proc: Optional[subprocess.Popen], sig=signal.SIGTERM, timeout=10.0) -> None:
    """Stop a server started in its own process group, then make sure."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


class Server:
    """The interface the bench drives.  A subclass sets ``name`` and fills in
    start/stop; ``workdir`` is a fresh directory of its own for one start."""

    name = "?"

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = PORTS[self.name]
        self.maildir = self.workdir / "Maildir"   # bench@bench.test's Maildir
        self.proc: Optional[subprocess.Popen] = None

    @classmethod
    def prepare(cls) -> None:
        """Unpack/check what the server needs (idempotent); raise Unavailable."""

    def start(self) -> None:
        """Start on 127.0.0.1:self.port; return once it greets."""
        raise NotImplementedError

    def stop(self) -> None:
        kill_tree(self.proc)

    def await_greeting(self, log_path: Path) -> None:
        """Wait for the started server's greeting; if none comes, stop it
        and raise Unavailable with the end of its log."""
        try:
            wait_port(self.port, proc=self.proc)
        except Unavailable as e:
            self.stop()
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise Unavailable(f"{self.name}: {e}\n{tail}") from None

    def pids(self) -> List[int]:
        """Root pids of the server's process trees (for CPU and memory)."""
        return [self.proc.pid] if self.proc else []

    def milter_pids(self) -> List[int]:
        """Of pids(), those of a milter it runs (its CPU is also given
        apart)."""
        return []

    def lmtp_pids(self) -> List[int]:
        """Of pids(), those of the LMTP server it delivers through (the
        bench's Dovecot, servers/dovecot.py; its CPU is also given
        apart)."""
        return []

    # the users sendmail() runs as in the queue scenario, shared out among
    # its concurrent calls (None: as we are, root)
    sendmail_users: tuple = (None,)

    def sendmail(self) -> Optional[List[str]]:
        """argv of the server's sendmail for the queue scenario: it reads the
        message on stdin and queues it for FWD_TARGET (None: no sendmail)."""
        return None

    def drained(self) -> bool:
        """True when the server's queue is empty (queue scenario)."""
        return True

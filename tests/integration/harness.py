"""Helpers for the chamois integration tests.

Everything here runs the real daemon (bin/chamoisd) on loopback, on ports
picked at run time, with a per-test config, tables and Maildir tree under a
temporary directory.  Nothing ever leaves the machine: every daemon is given
a `dns_server` on a loopback port of its own, where start() runs a dnsmasq
(peers/dns.py) that answers NXDOMAIN for every name it was not given
(`inst.dns.raw(...)`, `inst.dns.address(...)` before start()), so that the
mx role's checks (SPF, DKIM, DMARC, block lists) find nothing rather than
a DNS failure; `dead_dns=True` keeps the port dead (no server at all), and a
test that points dns_server elsewhere (peers/remote.py) gets no dnsmasq.

Public API (other test files, e.g. the Postfix/Dovecot interop tests, rely
on these names):

    free_port(host="127.0.0.1") -> int
    pick_port(hosts=("127.0.0.1",), udp=False) -> int
    dead_port() -> int
    make_cert(dir) -> (cert_path, key_path)
    Chamoisd(tmp_path, ...)      start/stop/reload/log/messages/...
    Dialog(host, port)           raw SMTP dialog: send/expect/starttls
"""

import os
import random
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

START_TIMEOUT = float(os.environ.get("CHAMOIS_START_TIMEOUT", "20"))
STOP_TIMEOUT = 10.0
READ_TIMEOUT = float(os.environ.get("CHAMOIS_READ_TIMEOUT", "10"))


def chamoisd_binary():
    """Path of the daemon under test: $CHAMOISD or <repo>/bin/chamoisd."""
    return Path(os.environ.get("CHAMOISD") or ROOT / "bin" / "chamoisd")


# --------------------------------------------------------------------------
# ports


# Ports are picked below the kernel's ephemeral range (ip_local_port_range),
# which bind(("", 0)) and outgoing connections use, and each pytest-xdist
# worker (PYTEST_XDIST_WORKER gwN of PYTEST_XDIST_WORKER_COUNT) draws from a
# slice of its own: a port one worker has just picked (free, not yet bound by
# the daemon it is for) is never picked by another worker in the meantime.
# Within one process a port is not handed out twice before the slice has
# gone round.  Run serially, the one process has the whole range.

_PORT_SPAN = 16384
_ports_given = set()
_port_lock = threading.Lock()
_port_rng = random.Random()         # its own: a test seeding random changes nothing here


def _port_slice():
    """(first, end) of the ports this process may hand out."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_low, eph_high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        eph_low, eph_high = 32768, 60999
    if eph_low - 1024 >= 4096:
        low, high = max(1024, eph_low - _PORT_SPAN), eph_low
    elif 65535 - eph_high >= 4096:
        low, high = eph_high + 1, min(65536, eph_high + 1 + _PORT_SPAN)
    else:                           # no room outside it: share it
        low, high = 1024, 65536
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    index = int(worker[2:]) % count if worker[:2] == "gw" and worker[2:].isdigit() else 0
    size = (high - low) // count
    return low + index * size, low + (index + 1) * size


def _bindable(port, hosts, udp):
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
        for kind in kinds:
            with socket.socket(family, kind) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    return False
    return True


def pick_port(hosts=("127.0.0.1",), udp=False):
    """A port free a moment ago for TCP (and UDP when udp) on every host
    given, from this process's own slice (see above); never the same
    twice until the slice has gone round."""
    first, end = _port_slice()
    size = end - first
    with _port_lock:
        if len(_ports_given) > size // 2:
            _ports_given.clear()
        start = _port_rng.randrange(size)
        for i in range(size):
            port = first + (start + i) % size
            if port in _ports_given or not _bindable(port, hosts, udp):
                continue
            _ports_given.add(port)
            return port
    raise RuntimeError("no free port in %d-%d on %s" % (first, end - 1, hosts))


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago (pick_port)."""
    return pick_port((host,))


def dead_port():
    """A loopback port free for both UDP and TCP, for `dns_server`.

    Nobody listens on it, so a DNS query sent there gets ICMP port
    unreachable (or times out) and never leaves the machine.
    """
    return pick_port(("127.0.0.1",), udp=True)


def port_accepts(host, port, timeout=1.0):
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ipv6_loopback_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Poll predicate() until it returns a true value or the deadline passes.

    Returns the value; raises AssertionError naming `what` on timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def rss_kib(pid):
    """Resident memory of process pid in KiB (VmRSS of /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def wait_log_match(read_log, pattern, timeout=30, name="the log"):
    """Poll read_log() until regex pattern (multi-line) matches; return the
    match, or raise TimeoutError with the log's tail."""
    rx = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while True:
        m = rx.search(read_log())
        if m:
            return m
        if time.monotonic() >= deadline:
            raise TimeoutError("no %r in %s:\n%s" % (pattern, name, read_log()[-6000:]))
        time.sleep(0.1)


# --------------------------------------------------------------------------
# TLS certificate

_cert_lock = threading.Lock()
_cert_cache = None


def make_cert(dir, cn="mx.example.test"):
    """Write a self-signed cert.pem/key.pem into dir; return their paths.

    One key pair is generated per test session with the openssl CLI and
    copied into each directory (key mode 0600).
    """
    global _cert_cache
    with _cert_lock:
        if _cert_cache is None:
            d = Path(tempfile.mkdtemp(prefix="chamois-cert-"))
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
                 "-days", "30", "-subj", "/CN=%s" % cn,
                 "-addext", "subjectAltName=DNS:%s" % cn],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _cert_cache = d
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    cert, key = dir / "cert.pem", dir / "key.pem"
    shutil.copyfile(_cert_cache / "cert.pem", cert)
    shutil.copyfile(_cert_cache / "key.pem", key)
    os.chmod(key, 0o600)
    return str(cert), str(key)


def unverified_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_cert_der(d):
    """The certificate d's mx role serves after STARTTLS (DER bytes)."""
    with Dialog(d.host, d.port) as c:
        c.expect("220")
        c.cmd("EHLO client.remote.test", "250")
        c.starttls(unverified_context())
        return c.sock.getpeercert(binary_form=True)


def open_dirs_to_others(d):
    """Let other users (a `user` the daemon drops to) pass through d.dir and
    its parents, and read the mailboxes table and the certificate; the key
    stays the owner's only."""
    for parent in d.dir.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    d.dir.chmod(0o711)
    for name in ("mailboxes", "cert.pem"):
        (d.dir / name).chmod(0o644)
    (d.dir / "key.pem").chmod(0o600)


# --------------------------------------------------------------------------
# addresses and Maildirs


def split_address(address):
    local, _, domain = address.rpartition("@")
    return local, domain


def write_table(path, lines):
    Path(path).write_text("".join(l + "\n" for l in lines), encoding="utf-8")


def aliases_lines(aliases):
    return ["%s: %s" % (a, ", ".join(t)) for a, t in aliases.items()]


# --------------------------------------------------------------------------
# the daemon


# every daemon's own dnsmasq that is running (conftest stops what a test left)
_LIVE_DNS = set()


def _own_dns(workdir, port):
    """A daemon's dnsmasq on its dns_server port: NXDOMAIN for every name
    it was not given (dnsmasq's "#" zone is every domain)."""
    from peers.dns import Dnsmasq
    return Dnsmasq(workdir, local_zones=("#",), port=port)


def stop_leftover_dns():
    """Stop every daemon's dnsmasq still running (a test's teardown)."""
    for d in list(_LIVE_DNS):
        d.stop()
    _LIVE_DNS.clear()


class Chamoisd:
    """One chamoisd with its own config, tables and Maildir tree.

    Files written into `tmp_path`: chamois.conf, mailboxes, aliases (when
    given), cert.pem/key.pem (when tls), maildir/, queue/, chamoisd.log.
    Passing None for max_message_size / max_recipients leaves the key out.
    """

    def __init__(self, tmp_path, domains=("example.test",),
                 mailboxes=("alice@example.test", "bob@example.test"),
                 aliases=None, tls=True, extra_conf="", listen_ipv6=False,
                 hostname="mx.example.test", max_message_size=1000000,
                 max_recipients=100, postmaster=None, binary=None, dead_dns=False):
        self.dir = Path(tmp_path)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.binary = Path(binary) if binary else chamoisd_binary()
        self.hostname = hostname
        self.domains = tuple(domains)
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.host6 = "::1"
        self.port6 = free_port("::1") if listen_ipv6 else None
        self.dns_port = dead_port()
        self.own_dns_line = "dns_server 127.0.0.1:%d" % self.dns_port
        self.dns = None if dead_dns else _own_dns(self.dir / "dns", self.dns_port)
        self.conf = self.dir / "chamois.conf"
        self.mailboxes_path = self.dir / "mailboxes"
        self.aliases_path = self.dir / "aliases"
        self.maildir_root = self.dir / "maildir"
        self.queue_dir = self.dir / "queue"
        self.log_path = self.dir / "chamoisd.log"
        self.proc = None
        self.stopped = False
        self.killed = False
        self.wrapper = []   # a command chamoisd runs under (e.g. setpriv)
        self.queue_dir.mkdir(exist_ok=True)

        write_table(self.mailboxes_path, mailboxes)
        if aliases is not None:
            write_table(self.aliases_path, aliases_lines(aliases))

        lines = ["# written by tests/integration/harness.py"]
        if hostname is not None:
            lines.append("hostname %s" % hostname)
        lines.append("listen mx %s:%d" % (self.host, self.port))
        if listen_ipv6:
            lines.append("listen mx [::1]:%d" % self.port6)
        lines.append("domains %s" % " ".join(self.domains))
        lines.append("mailboxes mailboxes")
        if aliases is not None:
            lines.append("aliases aliases")
        lines.append("maildir_root maildir")
        lines.append("queue_dir queue")
        if tls:
            make_cert(self.dir)
            lines.append("tls_cert cert.pem")
            lines.append("tls_key key.pem")
        lines.append(self.own_dns_line)
        if max_message_size is not None:
            lines.append("max_message_size %d" % max_message_size)
        if max_recipients is not None:
            lines.append("max_recipients %d" % max_recipients)
        if postmaster is not None:
            lines.append("postmaster %s" % postmaster)
        self.write_conf("\n".join(lines) + "\n" + extra_conf
                        + ("\n" if extra_conf and not extra_conf.endswith("\n") else ""))

    # -- configuration files ------------------------------------------

    def write_conf(self, text):
        self.conf.write_text(text, encoding="utf-8")

    def conf_lines(self):
        return self.conf.read_text(encoding="utf-8").splitlines()

    def conf_line_number(self, prefix):
        """1-based line number of the first config line starting with prefix."""
        for i, line in enumerate(self.conf_lines(), 1):
            if line.startswith(prefix):
                return i
        raise KeyError(prefix)

    def drop_conf_key(self, key):
        lines = [l for l in self.conf_lines() if l.split(None, 1)[:1] != [key]]
        self.write_conf("\n".join(lines) + "\n")

    def set_mailboxes(self, mailboxes):
        write_table(self.mailboxes_path, mailboxes)

    def set_aliases(self, aliases):
        write_table(self.aliases_path, aliases_lines(aliases))

    # -- process control ----------------------------------------------

    def listen_addrs(self):
        addrs = [(self.host, self.port)]
        if self.port6:
            addrs.append((self.host6, self.port6))
        return addrs

    def start(self, timeout=START_TIMEOUT):
        """Launch `chamoisd -d -f conf` and wait until every port accepts."""
        if not self.binary.exists():
            raise RuntimeError("daemon binary %s does not exist" % self.binary)
        self.stopped = False
        self._start_dns()
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.wrapper + [str(self.binary), "-d", "-f", str(self.conf)],
            stdin=subprocess.DEVNULL, stdout=self._logf, stderr=self._logf,
            cwd=str(self.dir))
        deadline = time.monotonic() + timeout
        pending = list(self.listen_addrs())
        while pending:
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError("chamoisd exited with %s during start-up; log:\n%s"
                                   % (rc, self.log()))
            if port_accepts(*pending[0], timeout=0.5):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("chamoisd did not accept on %s within %.0fs; log:\n%s"
                                   % (pending[0], timeout, self.log()))
            time.sleep(0.05)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _start_dns(self):
        """The daemon's own dnsmasq, while its config still names it."""
        if self.dns is None or self.dns.running():
            return
        if self.own_dns_line not in self.conf_lines():
            return
        self.dns.start()
        _LIVE_DNS.add(self.dns)

    def stop_dns(self):
        if self.dns is not None:
            self.dns.stop()
            _LIVE_DNS.discard(self.dns)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        self.signal(signal.SIGHUP)

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait for the process to exit; return its code (None on timeout)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait up to `timeout`, then SIGKILL.  Returns the exit code
        (negative for a signal, as subprocess reports it)."""
        self.stopped = True
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.kill()
        self._close_log()
        self.stop_dns()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()
        self.stop_dns()

    def _close_log(self):
        f = getattr(self, "_logf", None)
        if f is not None:
            f.close()
            self._logf = None

    def log(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def check_config(self, timeout=30):
        """Run `chamoisd -n -f conf`; return (exit code, stdout+stderr text)."""
        p = subprocess.run([str(self.binary), "-n", "-f", str(self.conf)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout,
                           cwd=str(self.dir))
        return p.returncode, p.stdout.decode("utf-8", "replace")

    # -- Maildirs -----------------------------------------------------

    def maildir(self, address):
        """Maildir directory of address (spelled as in the table)."""
        local, domain = split_address(address)
        return self.maildir_root / domain / local

    def message_files(self, address):
        new = self.maildir(address) / "new"
        if not new.is_dir():
            return []
        return sorted(p for p in new.iterdir() if p.is_file())

    def messages(self, address):
        return [p.read_bytes() for p in self.message_files(address)]

    def stored_files(self):
        """Every regular file anywhere under maildir_root (tmp, new, cur)."""
        if not self.maildir_root.exists():
            return []
        return sorted(p for p in self.maildir_root.rglob("*") if p.is_file())

    def wait_messages(self, address, count=1, timeout=10.0):
        """Poll until address has at least `count` messages; return them."""
        wait_until(lambda: len(self.message_files(address)) >= count,
                   timeout, what="%d message(s) for %s" % (count, address))
        return self.messages(address)

    def dialog(self, ipv6=False, timeout=READ_TIMEOUT):
        """A Dialog to this daemon with the greeting already read."""
        d = Dialog(self.host6 if ipv6 else self.host,
                   self.port6 if ipv6 else self.port, timeout=timeout)
        d.expect("220")
        return d


# --------------------------------------------------------------------------
# raw SMTP dialog


class Dialog:
    """A raw SMTP client for what smtplib cannot express.

    send() writes bytes exactly as given; expect(code) reads one complete
    (possibly multi-line) reply and checks its code.  Every read has a
    timeout (ReplyTimeout).
    """

    def __init__(self, host, port, timeout=READ_TIMEOUT):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.transcript = []

    # -- low level ----------------------------------------------------

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.transcript.append(("C", data))
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReplyTimeout("no complete reply within %.1fs; got so far %r; transcript %r"
                               % (self.timeout, self.buf, self.transcript[-6:]))
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise ReplyTimeout("no complete reply within %.1fs; got so far %r; transcript %r"
                               % (self.timeout, self.buf, self.transcript[-6:]))
        if not chunk:
            raise ConnectionClosed("server closed the connection; unread %r" % self.buf)
        self.buf += chunk

    def readline(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def read_reply(self, timeout=None):
        """Read one full reply; return its text (lines joined by \\n, no CRLF)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            while b"\n" not in self.buf:
                self._fill(deadline)
            raw, _, self.buf = self.buf.partition(b"\n")
            if not raw.endswith(b"\r"):
                raise ProtocolError("reply line not ended by CRLF: %r" % raw)
            line = raw[:-1].decode("utf-8", "replace")
            lines.append(line)
            if not re.match(r"^[2-5]\d\d[ -]|^[2-5]\d\d$", line):
                raise ProtocolError("malformed reply line %r" % line)
            if len(line) == 3 or line[3] == " ":
                break
        text = "\n".join(lines)
        self.transcript.append(("S", text))
        return text

    def expect(self, code_prefix, timeout=None):
        """Read one reply; assert it starts with code_prefix ("250",
        "250 2.1.5", "5"...); return its text."""
        text = self.read_reply(timeout)
        if not text.startswith(code_prefix):
            raise AssertionError("expected %r, got %r; transcript %r"
                                 % (code_prefix, text, self.transcript[-6:]))
        return text

    def cmd(self, line, code_prefix):
        """Send one command line (CRLF added) and expect a reply."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.expect(code_prefix)

    def pending(self):
        """Bytes already received and not yet consumed (no blocking)."""
        self.sock.setblocking(False)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        finally:
            self.sock.settimeout(self.timeout)
        return self.buf

    def wait_closed(self, timeout=None):
        """True if the server closes the connection within the timeout
        (EOF or reset), discarding anything it still sends; False otherwise."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            except ssl.SSLError:
                return True
            if not chunk:
                return True
            self.buf += chunk

    def read_all_replies(self, timeout=None):
        """Read replies until the server closes the connection or goes quiet
        for `timeout`.  Returns (replies, closed).  A reset counts as closed."""
        replies = []
        while True:
            try:
                replies.append(self.read_reply(timeout))
            except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
                return replies, True
            except ReplyTimeout:
                return replies, False
            except ssl.SSLError:
                return replies, True

    # -- TLS ----------------------------------------------------------

    def starttls(self, context=None, expect="220"):
        """Send STARTTLS, expect 220, do the handshake.  Returns the 220 text."""
        text = self.cmd("STARTTLS", expect)
        self.handshake(context)
        return text

    def handshake(self, context=None):
        """TLS handshake on the connection (after a 220 to STARTTLS)."""
        if self.buf:
            raise ProtocolError("server sent %r in plaintext after its 220 to STARTTLS"
                                % self.buf)
        ctx = context or unverified_context()
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=None)
        self.transcript.append(("C", b"<TLS %s>" % self.sock.version().encode()))

    def tls_version(self):
        return self.sock.version() if isinstance(self.sock, ssl.SSLSocket) else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ReplyTimeout(AssertionError):
    pass


class ConnectionClosed(ConnectionError):
    pass


class ProtocolError(AssertionError):
    pass


# --------------------------------------------------------------------------
# message helpers


def crlf(text):
    """Turn a str or bytes with \\n line ends into CRLF bytes."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _next_field(content, pos):
    """The end of the (possibly folded) header field starting at pos."""
    end = content.index(b"\n", pos) + 1
    while end < len(content) and content[end:end + 1] in (b" ", b"\t"):
        end = content.index(b"\n", end) + 1
    return end


def split_delivered(content):
    """Split a delivered file into (prepended header lines, rest).

    The contract: Return-Path, Delivered-To, the mx role's
    Authentication-Results (RFC 8601; not on mail the queue delivers),
    Received (possibly folded), then the original message.  Returns
    ([(name, unfolded value)...], rest bytes) for Return-Path, Delivered-To
    and Received; delivered_auth_results() gives the field between them.
    """
    headers = []
    pos = 0
    for expected in (b"Return-Path", b"Delivered-To", b"Received"):
        end = _next_field(content, pos)
        field = content[pos:end]
        name, _, value = field.partition(b":")
        if expected == b"Received" and name == b"Authentication-Results":
            pos = end
            end = _next_field(content, pos)
            field = content[pos:end]
            name, _, value = field.partition(b":")
        if name != expected:
            raise AssertionError("prepended header %d is %r, expected %s"
                                 % (len(headers) + 1, field[:80], expected.decode()))
        headers.append((name.decode(), re.sub(rb"\s+", b" ", value).strip().decode("utf-8", "replace")))
        pos = end
    return headers, content[pos:]


def delivered_auth_results(content):
    """The unfolded value of the Authentication-Results field that the mx
    role put between Delivered-To and Received, or None."""
    pos = _next_field(content, _next_field(content, 0))
    end = _next_field(content, pos)
    name, _, value = content[pos:end].partition(b":")
    if name != b"Authentication-Results":
        return None
    return re.sub(rb"\s+", b" ", value).strip().decode("utf-8", "replace")


def maildir_size_from_name(path):
    m = re.search(r",S=(\d+)", Path(path).name)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------
# smtplib helpers



def smtp_client(d, ehlo=True, ipv6=False):
    """An smtplib.SMTP connected to Chamoisd d (EHLO done unless ehlo=False)."""
    s = smtplib.SMTP(d.host6 if ipv6 else d.host, d.port6 if ipv6 else d.port,
                     local_hostname="client.remote.test", timeout=READ_TIMEOUT)
    if ehlo:
        code, msg = s.ehlo()
        assert code == 250, (code, msg)
    return s


def check(resp, code, esc=None):
    """Assert an smtplib (code, message) pair: code and enhanced code."""
    c, msg = resp
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    ok = c == code and (esc is None or msg == esc or msg.startswith(esc + " ")
                        or msg.startswith(esc + "\n"))
    assert ok, "expected %s %s, got %s %r" % (code, esc or "", c, msg)
    return msg


def sample_message(subject="test message", body=None, extra_headers=()):
    """A CRLF message (bytes) with some awkward but legal content."""
    if body is None:
        body = ("Hello,\n"
                "\n"
                ".a line that starts with a dot\n"
                "..two dots\n"
                "  leading spaces and trailing ones   \n"
                "\ttab\n"
                ".\n"  # a lone dot line (stuffed on the wire)
                "\n"
                "-- \n"
                "x\n")
    head = ("From: Sender <sender@remote.test>\n"
            "To: Alice <alice@example.test>\n"
            "Subject: %s\n"
            "Message-ID: <%s@remote.test>\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n" % (subject, abs(hash(subject)) % 10**9))
    for h in extra_headers:
        head += h + "\n"
    return crlf(head + "\n" + body)


def dot_stuff(msg):
    """CRLF message -> the bytes to send after DATA, without the final dot
    (every line starting with '.' gets another '.', RFC 5321 4.5.2)."""
    if msg.startswith(b"."):
        msg = b"." + msg
    return msg.replace(b"\r\n.", b"\r\n..")

"""How sessions end and how much a peer can make chamoisd hold (issue 12 points
1-3; doc/protocol.md, "Ending a session" and "Limits"; doc/security.md
"Red-team review (issue 12)").

* TCP half-close: a client that pipelines the final dot and QUIT and then
  shuts its sending side down still gets the 250 and the 221, and the
  message is stored once (plain and TLS, mx, submission and forwarding);
  EOF inside DATA abandons the transaction.
* TLS sessions end with chamoisd's close_notify: a client that reads after
  the 221 sees a clean TLS EOF (port 25 after STARTTLS, and port 465).
* A 465 client that resets the connection while a reply is held for it
  leaves no session behind: SIGTERM still ends the daemon with exit 0 and a
  client still connected gets its 421.
* A client that pipelines commands and never reads its replies is paused:
  the daemon's resident memory (VmRSS) stays bounded while another client
  is served.

Every loop is bounded; every socket has a timeout.
"""

import re
import signal
import socket
import ssl
import struct
import time

import pytest

from harness import READ_TIMEOUT, crlf, dot_stuff, rss_kib, sample_message, unverified_context, wait_until
from peers.remote import fwd_env, transaction  # noqa: F401
from peers.sasl import ALICE, BOB, USERS, plain_b64, submission_daemon

MIB = 1024 * 1024


def strict_context():
    """A client context that reports a TCP close without close_notify as an
    error (Python sets OP_IGNORE_UNEXPECTED_EOF by default)."""
    ctx = unverified_context()
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


def small_asan_quarantine(monkeypatch):
    """Under ASan (CI), freed memory is held in a quarantine of up to 256 MiB
    that VmRSS counts; keep it small so that VmRSS measures what is held."""
    import os
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") + "quarantine_size_mb=1")



def read_to_eof(sock, timeout=READ_TIMEOUT):
    """Everything the server sends until it closes (bounded by timeout)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk
    return data, "timeout"


def replies(data):
    """Final reply lines ("NNN text") of a byte stream of replies."""
    return [l for l in data.decode("utf-8", "replace").split("\r\n")
            if re.match(r"^\d{3}( |$)", l)]


def greet_and_start(sock, rcpt="alice@example.test", sender="joe@sender.test"):
    f = b""
    sock.settimeout(READ_TIMEOUT)

    def reply():
        nonlocal f
        while True:
            m = re.search(rb"(?:^|\r\n)(\d{3}) [^\r\n]*\r\n", f)
            if m:
                line, f = f[:m.end()], f[m.end():]
                return line.decode()
            chunk = sock.recv(65536)
            assert chunk, "closed; got %r" % f
            f += chunk
    assert reply().startswith("220")
    for cmd, code in (("EHLO client.sender.test", "250"), ("MAIL FROM:<%s>" % sender, "250"),
                      ("RCPT TO:<%s>" % rcpt, "250"), ("DATA", "354")):
        sock.sendall(cmd.encode() + b"\r\n")
        r = reply()
        assert r.splitlines()[-1].startswith(code), (cmd, r)
    return reply


# --------------------------------------------------------------------------
# 1. half-close


def test_half_close_after_dot_and_quit_gets_both_replies(mx):
    msg = sample_message("half close")
    with socket.create_connection((mx.host, mx.port), timeout=READ_TIMEOUT) as s:
        greet_and_start(s)
        s.sendall(dot_stuff(msg) + b".\r\nQUIT\r\n")
        s.shutdown(socket.SHUT_WR)
        data, how = read_to_eof(s)
    got = replies(data)
    assert how == "eof", (how, data)
    assert len(got) == 2 and got[0].startswith("250 2.0.0") and got[1].startswith("221"), got
    assert len(mx.wait_messages("alice@example.test", 1)) == 1
    time.sleep(0.3)
    assert len(mx.messages("alice@example.test")) == 1


def test_half_close_over_starttls_gets_both_replies(mx):
    msg = sample_message("half close tls")
    raw = socket.create_connection((mx.host, mx.port), timeout=READ_TIMEOUT)
    try:
        raw.recv(1024)
        raw.sendall(b"EHLO client.sender.test\r\n")
        wait_until(lambda: b"250 " in raw.recv(4096), 5, what="EHLO reply")
        raw.sendall(b"STARTTLS\r\n")
        assert raw.recv(1024).startswith(b"220")
        s = strict_context().wrap_socket(raw, suppress_ragged_eofs=False)
        s.sendall(b"EHLO client.sender.test\r\n")
        buf = b""
        while not re.search(rb"\r\n250 [^\r\n]*\r\n$", b"\r\n" + buf):
            buf += s.recv(4096)
        for cmd in (b"MAIL FROM:<joe@sender.test>", b"RCPT TO:<alice@example.test>", b"DATA"):
            s.sendall(cmd + b"\r\n")
            buf = s.recv(4096)
        assert buf.startswith(b"354"), buf
        s.sendall(dot_stuff(msg) + b".\r\nQUIT\r\n")
        # TCP half-close under TLS (SSLSocket.shutdown would drop the TLS layer)
        socket.socket.shutdown(s, socket.SHUT_WR)
        data = b""
        deadline = time.monotonic() + READ_TIMEOUT
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        raw.close()
    got = replies(data)
    assert len(got) == 2 and got[0].startswith("250 2.0.0") and got[1].startswith("221"), got
    mx.wait_messages("alice@example.test", 1)
    time.sleep(0.3)
    assert len(mx.messages("alice@example.test")) == 1


def test_half_close_inside_data_abandons_the_message(mx):
    with socket.create_connection((mx.host, mx.port), timeout=READ_TIMEOUT) as s:
        greet_and_start(s)
        s.sendall(b"Subject: cut\r\n\r\nno final dot\r\n")
        s.shutdown(socket.SHUT_WR)
        data, how = read_to_eof(s)
    assert how == "eof" and replies(data) == [], data
    wait_until(lambda: "smtp disconnect reason=eof state=data" in mx.log(), 5,
               what="the eof log line")
    assert mx.stored_files() == []


def test_half_close_on_submission_gets_both_replies(chamoisd, tmp_path):
    sub = submission_daemon(chamoisd, tmp_path / "sasl")
    raw = socket.create_connection((sub.host, sub.sport), timeout=READ_TIMEOUT)
    try:
        s = strict_context().wrap_socket(raw, suppress_ragged_eofs=False)
        buf = b""

        def reply():
            nonlocal buf
            while not re.search(rb"(?:^|\r\n)\d{3} [^\r\n]*\r\n", buf):
                buf += s.recv(4096)
            m = re.search(rb"(?:^|\r\n)\d{3} [^\r\n]*\r\n", buf)
            out, buf = buf[:m.end()], buf[m.end():]
            return out
        assert reply().startswith(b"220")
        for cmd, code in ((b"EHLO laptop.client.test", b"250"),
                          (b"AUTH PLAIN " + plain_b64(BOB, USERS[BOB]).encode(), b"235"),
                          (b"MAIL FROM:<%s>" % BOB.encode(), b"250"),
                          (b"RCPT TO:<%s>" % ALICE.encode(), b"250"), (b"DATA", b"354")):
            s.sendall(cmd + b"\r\n")
            r = reply()
            assert r.splitlines()[-1].startswith(code), (cmd, r)
        s.sendall(crlf("From: <%s>\nSubject: half 465\n\nhi\n" % BOB) + b".\r\nQUIT\r\n")
        socket.socket.shutdown(s, socket.SHUT_WR)
        data = buf
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        raw.close()
    got = replies(data)
    assert len(got) == 2 and got[0].startswith("250 2.0.0") and got[1].startswith("221"), got
    sub.d.wait_messages(ALICE, 1, timeout=30)


def test_half_close_on_forward_waits_for_the_remote(fwd_env):
    r = fwd_env.remote("remote.test", delay={"eod": 1})
    d = fwd_env.daemon(aliases={"fwd@example.test": ["carol@remote.test"]})
    msg = sample_message("half close forward")
    with socket.create_connection((d.host, d.port), timeout=READ_TIMEOUT) as s:
        greet_and_start(s, rcpt="fwd@example.test")
        s.sendall(dot_stuff(msg) + b".\r\nQUIT\r\n")
        s.shutdown(socket.SHUT_WR)
        data, how = read_to_eof(s)
    got = replies(data)
    assert len(got) == 2 and got[0].startswith("250 2.0.0") and got[1].startswith("221"), got
    assert len(r.delivered()) == 1, r.transcript()


# --------------------------------------------------------------------------
# 2. close_notify after the 221


def clean_tls_end(s):
    """Read after the 221: a close_notify gives b"", a bare TCP close an
    SSLEOFError (suppress_ragged_eofs=False)."""
    s.settimeout(READ_TIMEOUT)
    try:
        rest = s.recv(4096)
    except (ssl.SSLEOFError, ssl.SSLError) as e:
        raise AssertionError("TLS ended without close_notify: %s" % e)
    assert rest == b"", rest
    s.unwrap()


def test_starttls_session_ends_with_close_notify(mx):
    raw = socket.create_connection((mx.host, mx.port), timeout=READ_TIMEOUT)
    try:
        raw.recv(1024)
        raw.sendall(b"EHLO client.sender.test\r\n")
        wait_until(lambda: b"250 " in raw.recv(4096), 5, what="EHLO reply")
        raw.sendall(b"STARTTLS\r\n")
        assert raw.recv(1024).startswith(b"220")
        s = strict_context().wrap_socket(raw, suppress_ragged_eofs=False)
        s.sendall(b"QUIT\r\n")
        assert s.recv(1024).startswith(b"221")
        clean_tls_end(s)
    finally:
        raw.close()


def test_465_session_ends_with_close_notify(chamoisd, tmp_path):
    sub = submission_daemon(chamoisd, tmp_path / "sasl")
    raw = socket.create_connection((sub.host, sub.sport), timeout=READ_TIMEOUT)
    try:
        s = strict_context().wrap_socket(raw, suppress_ragged_eofs=False)
        assert s.recv(1024).startswith(b"220")
        s.sendall(b"QUIT\r\n")
        assert s.recv(1024).startswith(b"221")
        clean_tls_end(s)
    finally:
        raw.close()


def reset(sock):
    """Close with a TCP RST (SO_LINGER 0): the daemon's next write to it
    fails (EPIPE) instead of reaching a closed socket's buffer."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("stop", ["while-held", "after-the-hold"])
def test_465_client_that_resets_does_not_hold_the_stop(chamoisd, tmp_path, stop):
    """A 465 client resets the connection while the reply to its last command
    is held (the tarpit after two errors): that reply, or the 421 of a
    SIGTERM meanwhile, can no longer be written.  bufferevent_openssl
    reports such a write as an EOF while writing; chamoisd used to retry
    it, spinning on the CPU, and at SIGTERM waited for it until
    shutdown_grace (60 s) was over.  Now the session ends (its disconnect is
    logged), the daemon exits 0 at SIGTERM, and the client still connected
    gets its 421."""
    sub = submission_daemon(chamoisd, tmp_path / "sasl", extra_conf="max_errors 3")
    d = sub.d
    idle = unverified_context().wrap_socket(
        socket.create_connection((sub.host, sub.sport), timeout=READ_TIMEOUT))
    try:
        assert idle.recv(1024).startswith(b"220")
        for _ in range(3):
            t = unverified_context().wrap_socket(
                socket.create_connection((sub.host, sub.sport), timeout=READ_TIMEOUT))
            try:
                assert t.recv(1024).startswith(b"220")
                # one TLS record: the daemon reads all three lines at once,
                # and the second error holds the NOOP's reply for a second
                t.sendall(b"XYZZY\r\nXYZZY\r\nNOOP\r\n")
                got = b""
                while got.count(b"500 ") < 2:
                    chunk = t.recv(4096)
                    assert chunk, "closed; got %r" % got
                    got += chunk
            finally:
                reset(t)
        if stop == "after-the-hold":
            wait_until(lambda: d.log().count("smtp disconnect reason=io-error") >= 3, 10,
                       what="the reset sessions to end")
        d.signal(signal.SIGTERM)
        rc = d.wait(15)
        d.stopped = True
        assert rc == 0, "exit code %s; log:\n%s" % (rc, d.log())
        data, how = read_to_eof(idle)
        assert replies(data) == ["421 4.3.2 %s Service shutting down" % d.hostname], data
        assert how == "eof", how
    finally:
        idle.close()


# --------------------------------------------------------------------------
# 3. a client that never reads its replies


def flood(host, port, total, line=b"EHLO x\r\n", tls=False):
    """Send up to `total` octets of `line` without reading; stop when the
    kernel buffers are full (a send times out).  Returns (socket, sent)."""
    s = socket.create_connection((host, port), timeout=READ_TIMEOUT)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(2.0)
    chunk = line * (65536 // len(line))
    sent = 0
    try:
        while sent < total:
            sent += s.send(chunk)
    except (socket.timeout, BlockingIOError):
        pass
    return s, sent


def test_client_that_never_reads_is_paused_and_memory_stays_bounded(chamoisd, monkeypatch):
    small_asan_quarantine(monkeypatch)
    mx = chamoisd()
    pid = mx.proc.pid
    before = rss_kib(pid)
    s, sent = flood(mx.host, mx.port, 48 * MIB)
    try:
        time.sleep(1.0)
        after = rss_kib(pid)
        grown = (after - before) / 1024
        print("flood: sent %.1f MiB, VmRSS %d -> %d KiB (+%.1f MiB)"
              % (sent / MIB, before, after, grown))
        assert grown < 32, "VmRSS grew by %.1f MiB for %.1f MiB of unread EHLO" % (grown, sent / MIB)
        assert "smtp paused reason=unread-replies" in mx.log()
        # everybody else is still served
        out = transaction(mx, "joe@sender.test", ["alice@example.test"],
                          sample_message("while flooded"))
        assert out["eod"].startswith("250"), out
        # once it reads, it gets its replies in order, up to where it stopped
        s.settimeout(READ_TIMEOUT)
        got = b""
        while got.count(b"250 SMTPUTF8\r\n") < 100:
            chunk = s.recv(65536)
            assert chunk, "closed after %d EHLO replies" % got.count(b"250 SMTPUTF8\r\n")
            got += chunk
        assert got.startswith(b"220 "), got[:100]
    finally:
        s.close()


# --------------------------------------------------------------------------
# 3. a remote that never reads, or never stops talking (outbound/client.c)


class HostileRemote:
    """A raw SMTP server on (address, port) in a thread.  mode "no-read":
    STARTTLS offered and used, 354 to DATA, then it never reads again;
    "endless": RCPT gets a multi-line 250 that never ends (bounded here to
    `limit` octets, or until chamoisd closes)."""

    def __init__(self, address, port, cert_dir, mode, limit=64 * MIB):
        import threading
        from harness import make_cert
        self.cert, self.key = make_cert(cert_dir)
        self.mode, self.limit = mode, limit
        self.sent = 0
        self.closed = threading.Event()
        self.stop_flag = threading.Event()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((address, port))
        self.lsock.listen(4)
        self.lsock.settimeout(0.5)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.monotonic() + 120
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            try:
                self.serve(conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()
                self.closed.set()

    def serve(self, conn):
        conn.settimeout(30)
        f = conn
        buf = b""

        def line():
            nonlocal buf
            while b"\r\n" not in buf:
                chunk = f.recv(4096)
                if not chunk:
                    raise OSError("closed")
                buf += chunk
            l, _, buf = buf.partition(b"\r\n")
            return l.upper()
        f.sendall(b"220 hostile.test ESMTP\r\n")
        tls = False
        while not self.stop_flag.is_set():
            l = line()
            if l.startswith(b"EHLO"):
                f.sendall(b"250-hostile.test\r\n250-PIPELINING\r\n" +
                          (b"" if tls or self.mode != "no-read" else b"250-STARTTLS\r\n") +
                          b"250 8BITMIME\r\n")
            elif l == b"STARTTLS":
                f.sendall(b"220 go ahead\r\n")
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self.cert, self.key)
                f = ctx.wrap_socket(conn, server_side=True)
                tls, buf = True, b""
            elif l.startswith(b"MAIL"):
                f.sendall(b"250 2.1.0 ok\r\n")
            elif l.startswith(b"RCPT"):
                if self.mode == "endless":
                    chunk = b"250-2.1.5 and more and more and more and more\r\n" * 1000
                    while self.sent < self.limit and not self.stop_flag.is_set():
                        f.sendall(chunk)
                        self.sent += len(chunk)
                    return
                f.sendall(b"250 2.1.5 ok\r\n")
            elif l == b"DATA":
                f.sendall(b"354 go\r\n")
                # never read again: wait until chamoisd gives up
                self.stop_flag.wait(60)
                return
            elif l == b"QUIT":
                f.sendall(b"221 bye\r\n")
                return
            else:
                f.sendall(b"250 ok\r\n")

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)
        self.lsock.close()


def peak_rss(pid, stop, out):
    while not stop.is_set():
        try:
            out.append(rss_kib(pid))
        except (OSError, AssertionError):
            return
        time.sleep(0.1)


@pytest.mark.parametrize("mode", ["no-read", "endless"])
def test_hostile_remote_cannot_grow_the_daemon(fwd_env, tmp_path, monkeypatch, mode):
    import threading
    small_asan_quarantine(monkeypatch)
    slot = fwd_env.closed_remote("remote.test")
    remote = HostileRemote(slot.address, slot.port, tmp_path / "hostile-cert", mode)
    try:
        d = fwd_env.daemon(aliases={"fwd@example.test": ["carol@remote.test"]},
                           max_message_size=200 * MIB,
                           extra_conf="forward_rcpt_budget 5s\nforward_data_budget 10s")
        pid = d.proc.pid
        before = rss_kib(pid)
        samples, stop = [], threading.Event()
        sampler = threading.Thread(target=peak_rss, args=(pid, stop, samples), daemon=True)
        sampler.start()
        with socket.create_connection((d.host, d.port), timeout=60) as s:
            s.settimeout(60)
            buf = b""

            def reply():
                nonlocal buf
                while not re.search(rb"(?:^|\r\n)\d{3} [^\r\n]*\r\n", buf):
                    chunk = s.recv(65536)
                    assert chunk, "closed; got %r" % buf
                    buf += chunk
                m = re.search(rb"(?:^|\r\n)\d{3} [^\r\n]*\r\n", buf)
                out, buf = buf[:m.end()], buf[m.end():]
                return out.decode(errors="replace").splitlines()[-1]
            assert reply().startswith("220")
            s.sendall(b"EHLO client.sender.test\r\n")
            assert reply().startswith("250")
            s.sendall(b"MAIL FROM:<joe@sender.test>\r\n")
            assert reply().startswith("250")
            s.sendall(b"RCPT TO:<fwd@example.test>\r\n")
            r = reply()
            if mode == "endless":
                final = r
            else:
                assert r.startswith("250"), r
                s.sendall(b"DATA\r\n")
                assert reply().startswith("354")
                line = b"x" * 998 + b"\r\n"
                block = b"Subject: big\r\n\r\n" + line * 1000
                for _ in range(40):                 # 40 MB of message
                    s.sendall(block)
                    block = line * 1000
                s.sendall(b".\r\n")
                final = reply()
        stop.set()
        sampler.join(5)
        grown = (max(samples + [before]) - before) / 1024
        print("%s: VmRSS %d KiB, peak +%.1f MiB, reply %r, remote sent %d"
              % (mode, before, grown, final, remote.sent))
        assert final.startswith("451 4.4.2"), final
        assert grown < 32, "VmRSS grew by %.1f MiB" % grown
    finally:
        remote.stop()

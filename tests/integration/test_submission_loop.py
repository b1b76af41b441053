"""SASL exchanges run off the event loop (doc/performance.md "Logins and
the event loop"): while libsasl2 checks a password, every other session
is served, and a session that goes away meanwhile is freed cleanly.

No timing is asserted.  To hold a password check for as long as the test
wants, the sasldb file is swapped for a FIFO once the daemon runs: the
sasldb plugin opens the file for each look-up, and opening a FIFO for
reading waits until someone opens it for writing.  The check is thus
provably still running (its AUTH has no answer, and cannot have one
before the test opens the FIFO) while the port-25 session is answered.
Releasing puts the real sasldb back and opens the FIFO for writing, so
the waiting look-up reads an empty file: a back-end failure or a failed
login, a reply either way.  Each test releases in `finally`, so the
daemon always stops."""

import errno
import os
import re
import socket
import struct
import threading
from pathlib import Path

import pytest

import harness
from peers.sasl import ALICE, BOB, USERS, plain_b64, submission_daemon

SLOW = 30           # bound for a reply after the release (a login delay is at most 8 s)


class HeldSasldb:
    """The sasldb swapped for a FIFO until release()."""

    def __init__(self, db):
        self.db = Path(db)
        self.real = self.db.with_name("sasldb2.real")
        self.fifo = self.db.with_name("sasldb2.fifo")
        os.link(self.db, self.real)
        os.mkfifo(self.fifo)
        os.rename(self.fifo, self.db)           # atomic: look-ups see one or the other
        os.link(self.db, self.fifo)             # a name to open it by after release
        self.stop = threading.Event()
        self.opener = None

    def release(self):
        """The real file back, then open the FIFO for writing (again and again
        until stopped, bounded) so that every look-up waiting on it goes on."""
        if self.opener is not None:
            return
        os.rename(self.real, self.db)
        self.opener = threading.Thread(target=self._open_writers, daemon=True)
        self.opener.start()

    def _open_writers(self):
        for _ in range(3000):                   # 60 s at most
            if self.stop.is_set():
                return
            try:
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as e:
                if e.errno != errno.ENXIO:      # ENXIO: nobody waits on it
                    raise
            self.stop.wait(0.02)

    def close(self):
        self.release()
        self.stop.set()
        self.opener.join(10)


@pytest.fixture
def held(chamoisd, tmp_path):
    sub = submission_daemon(chamoisd, tmp_path / "sasl")
    h = HeldSasldb(sub.db)
    try:
        yield sub, h
    finally:
        # the daemon is stopped before the opener, so no look-up is left waiting
        h.release()
        sub.d.stop()
        h.close()


def noop_on_port_25(d):
    with d.dialog() as c:           # greeting read
        c.cmd("EHLO honest.client.test", "250")
        c.cmd("NOOP", "250")
        c.cmd("QUIT", "221")


def submission_session_ids(d):
    return re.findall(r"([0-9a-f]{16}) smtp connected address=\S+ role=submission\b", d.log())


def test_port_25_is_served_while_a_password_check_waits(held):
    sub, h = held
    c = sub.dialog()
    try:
        c.send("AUTH PLAIN %s\r\n" % plain_b64(ALICE, USERS[ALICE]))
        # the check waits on the FIFO: the AUTH has no answer...
        noop_on_port_25(sub.d)
        assert c.pending() == b""
        # ...a second port-25 session and a second submission session are
        # served all the same
        noop_on_port_25(sub.d)
        with sub.dialog() as other:
            other.cmd("NOOP", "250")
        h.release()
        reply = c.read_reply(timeout=SLOW)
        assert reply[:1] in ("4", "5"), reply
        # the session goes on: a new exchange with the real sasldb succeeds
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "235 2.7.0")
        c.cmd("QUIT", "221")
    finally:
        c.close()
    noop_on_port_25(sub.d)


def test_many_exchanges_wait_at_once_and_all_get_answers(held):
    sub, h = held
    # four exchanges, two per user: more than the CPU pool's threads, fewer
    # than the attempts in flight that lock a user out (doc/users.md)
    users = [ALICE, BOB, ALICE, BOB]
    clients = [sub.dialog() for _ in users]
    try:
        for c, user in zip(clients, users):
            c.send("AUTH PLAIN %s\r\n" % plain_b64(user, USERS[user]))
        noop_on_port_25(sub.d)
        assert all(c.pending() == b"" for c in clients)
        h.release()
        for c in clients:
            reply = c.read_reply(timeout=SLOW)
            assert reply[:1] in ("2", "4", "5"), reply
    finally:
        for c in clients:
            c.close()
    noop_on_port_25(sub.d)


def test_session_gone_during_its_password_check_is_freed(held):
    sub, h = held
    c = sub.dialog()
    (sid,) = submission_session_ids(sub.d)
    c.send("AUTH PLAIN %s\r\n" % plain_b64(ALICE, USERS[ALICE]))
    noop_on_port_25(sub.d)          # the AUTH line was read: its check waits
    # a reset (not a FIN, which would only end the commands): the session goes now
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    harness.wait_log_match(sub.d.log, r"%s smtp disconnect reason=\S+" % sid)
    h.release()
    harness.wait_log_match(sub.d.log, r"%s auth abandoned reason=session-closed" % sid)
    # nothing else is disturbed; the daemon stops cleanly (the fixture checks
    # its exit and, under the sanitizers, its log)
    noop_on_port_25(sub.d)
    with sub.login_dialog(ALICE, USERS[ALICE]) as again:
        again.cmd("QUIT", "221")
    assert sub.d.stop() == 0

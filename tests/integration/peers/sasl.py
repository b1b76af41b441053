"""Helpers for the submission tests (test_submission.py): users in a
sasldb2 file made with the standard tool, a chamoisd listening on the
submission (587 role, STARTTLS) and submissions (465 role, implicit TLS)
roles, and clients for both.

    DOMAIN, USERS                       example.test; alice and bob with passwords
    saslpasswd(db, address, password)   saslpasswd2 -c -p -f db -u domain local
    sasl_delete(db, address)            saslpasswd2 -d -f db -u domain local
    sasl_users(db)                      sasldblistusers2 -f db -> [address]
    submission_daemon(factory, workdir, users=USERS, sasl_db=None,
                      extra_conf="", **kw) -> Sub
                                        factory is conftest's `chamoisd` or
                                        fwd_env.daemon; both stop what they
                                        started at teardown
    Sub                                 .d (harness.Chamoisd) .port (587 role)
                                        .sport (465 role) .db
                                        .smtp() .smtp_tls() .smtps()
                                        .dialog(tls=True) .sdialog()
                                        .login_dialog(user, password, implicit=False)
    plain_b64(user, password)           PLAIN initial response
    b64(text)
    scram_client()                      path of build/tests/scram_client (built
                                        if missing; pytest.skip when it cannot be)
    run_scram(sub, user, password, implicit=False, mech=None)
"""

from __future__ import annotations

import base64
import smtplib
import subprocess
from pathlib import Path

import pytest

import harness
from harness import ROOT, Dialog, READ_TIMEOUT, unverified_context

DOMAIN = "example.test"
ALICE, BOB = "alice@example.test", "bob@example.test"
USERS = {ALICE: "alice's s3cret pass", BOB: "B0b-password"}
CLIENT_NAME = "laptop.client.test"


# --------------------------------------------------------------------------
# sasldb2 through the standard tools


def _split(address):
    local, _, domain = address.rpartition("@")
    return local, domain


def saslpasswd(db, address, password, create=True):
    """saslpasswd2 [-c] -p -f db -u domain local, password on stdin (as
    doc/users.md tells a user to do).  -c also replaces a password."""
    local, domain = _split(address)
    cmd = ["saslpasswd2"] + (["-c"] if create else []) + [
        "-p", "-f", str(db), "-u", domain, local]
    p = subprocess.run(cmd, input=(password + "\n").encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, (cmd, p.returncode, p.stdout, p.stderr)


def sasl_delete(db, address):
    local, domain = _split(address)
    cmd = ["saslpasswd2", "-d", "-f", str(db), "-u", domain, local]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, (cmd, p.returncode, p.stdout, p.stderr)


def sasl_users(db):
    p = subprocess.run(["sasldblistusers2", "-f", str(db)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    return sorted(l.split(":", 1)[0] for l in p.stdout.decode().splitlines() if ":" in l)


def b64(text):
    if isinstance(text, str):
        text = text.encode("utf-8")
    return base64.b64encode(text).decode()


def plain_b64(user, password):
    return b64("\0%s\0%s" % (user, password))


# --------------------------------------------------------------------------
# the daemon


class Sub:
    def __init__(self, d, port, sport, db):
        self.d, self.port, self.sport, self.db = d, port, sport, Path(db)
        self.host = d.host

    # smtplib ---------------------------------------------------------------

    def smtp(self, port=None):
        """smtplib.SMTP on the 587 role, EHLO done, no TLS yet."""
        s = smtplib.SMTP(self.host, port or self.port, local_hostname=CLIENT_NAME,
                         timeout=READ_TIMEOUT)
        code, msg = s.ehlo()
        assert code == 250, (code, msg)
        return s

    def smtp_tls(self):
        """smtplib.SMTP on the 587 role after STARTTLS and a second EHLO."""
        s = self.smtp()
        code, msg = s.starttls(context=unverified_context())
        assert code == 220, (code, msg)
        code, msg = s.ehlo()
        assert code == 250, (code, msg)
        return s

    def smtps(self):
        """smtplib.SMTP_SSL on the 465 role (TLS from the first byte)."""
        s = smtplib.SMTP_SSL(self.host, self.sport, local_hostname=CLIENT_NAME,
                             timeout=READ_TIMEOUT, context=unverified_context())
        code, msg = s.ehlo()
        assert code == 250, (code, msg)
        return s

    # raw dialogs -----------------------------------------------------------

    def dialog(self, tls=True, timeout=READ_TIMEOUT):
        """Dialog on the 587 role: greeting, EHLO, and (tls) STARTTLS, EHLO."""
        c = Dialog(self.host, self.port, timeout=timeout)
        try:
            c.expect("220")
            c.cmd("EHLO %s" % CLIENT_NAME, "250")
            if tls:
                c.starttls()
                c.cmd("EHLO %s" % CLIENT_NAME, "250")
        except BaseException:
            c.close()
            raise
        return c

    def sdialog(self, timeout=READ_TIMEOUT):
        """Dialog on the 465 role: TLS handshake, greeting, EHLO."""
        c = Dialog(self.host, self.sport, timeout=timeout)
        try:
            c.handshake()
            c.expect("220")
            c.cmd("EHLO %s" % CLIENT_NAME, "250")
        except BaseException:
            c.close()
            raise
        return c

    def login_dialog(self, user, password, implicit=False):
        c = self.sdialog() if implicit else self.dialog()
        try:
            c.cmd("AUTH PLAIN %s" % plain_b64(user, password), "235 2.7.0")
        except BaseException:
            c.close()
            raise
        return c


def submission_conf(port, sport, db, extra=""):
    lines = ["listen submission 127.0.0.1:%d" % port,
             "listen submissions 127.0.0.1:%d" % sport,
             "sasl_db %s" % db]
    return "\n".join(lines) + "\n" + extra + ("\n" if extra and not extra.endswith("\n") else "")


def submission_daemon(factory, workdir, users=USERS, sasl_db=None, extra_conf="", **kw):
    """Make the sasldb (unless sasl_db names a path to use as it is, e.g. a
    missing one), then start a chamoisd with both submission roles through
    factory (conftest's `chamoisd` or fwd_env.daemon) and wait until the
    submission ports accept (bounded)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if sasl_db is None:
        db = workdir / "sasldb2"
        for address, password in users.items():
            saslpasswd(db, address, password)
    else:
        db = Path(sasl_db)
    port, sport = harness.free_port(), harness.free_port()
    while sport == port:
        sport = harness.free_port()
    # every port listens once the daemon is ready, and the factory waits
    # for the mx one: no probe here (it would log a TLS error on 465)
    d = factory(extra_conf=submission_conf(port, sport, db, extra_conf), **kw)
    return Sub(d, port, sport, db)


# --------------------------------------------------------------------------
# the SCRAM client (tests/sasl/scram_client.c)


def scram_client():
    path = ROOT / "build" / "tests" / "scram_client"
    if not path.exists():
        p = subprocess.run(["make", "-C", str(ROOT), "build/tests/scram_client"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        if p.returncode != 0 or not path.exists():
            pytest.skip("cannot build build/tests/scram_client:\n%s"
                        % p.stdout.decode(errors="replace")[-2000:])
    return path


def run_scram(sub, user, password, implicit=False, mech=None, timeout=60):
    """Run scram_client -v against sub; returns CompletedProcess (text)."""
    cmd = [str(scram_client())] + (["-s"] if implicit else []) + [
        "-v", sub.host, str(sub.sport if implicit else sub.port), user, password]
    if mech:
        cmd.append(mech)
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, text=True)

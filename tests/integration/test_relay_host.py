"""relay_host and relay_auth (chamois.conf(5); doc/queue.md "Relay host"):
the queue sends mail for other domains only through the relay, over TLS
verified against tls_ca_file and the relay's name, after AUTH.

The relay is a real Exim (peers/exim.py EximRelay, Debian's exim4 unpacked)
with a certificate from a CA made here with openssl (peers/tlsca.py),
STARTTLS, AUTH PLAIN/LOGIN for one user once TLS is up, and a Maildir for
what it accepts.  remote.test also has a listening MX (aiosmtpd, through
the test's dnsmasq), so that a daemon that went round the relay would be
seen there.  Mail enters on 587 with smtplib (AUTH); the queue is read
with chamoisctl."""

import os
import re
import shutil
import subprocess
import sys

import dkim
import pytest

import harness
from harness import ROOT, crlf, wait_log_match, wait_until
from peers.exim import EximRelay
from peers.postfix import PeerUnavailable
from peers.queue_util import ctl_ok, qbins, queue, wait_queue, wait_ready  # noqa: F401
from peers.remote import fwd_env  # noqa: F401
from peers.sasl import ALICE, USERS, submission_daemon
from peers.tlsca import TestCA
from test_dkim_sign import RSA_SEL, dnsfunc_for, genkey, signatures, txt_record

RELAY_NAME = "relay.example.net"
RELAY_USER, RELAY_PASS = "chamois-relay", "r3lay pass-word"


@pytest.fixture
def relay_env(fwd_env, tmp_path):
    """CA, relay certificate, DNS for the relay's names, the RSA key and
    its record; returns a function making (exim, sub) for one setup."""
    ca = TestCA(tmp_path / "ca")
    cert, key = ca.leaf(tmp_path / "relaycert", RELAY_NAME)
    fwd_env.dns.address(RELAY_NAME, "127.0.0.1")
    fwd_env.dns.address("other.example.net", "127.0.0.1")
    remote = fwd_env.remote("remote.test")
    keys = tmp_path / "keys"
    keys.mkdir()
    txt_record(fwd_env.dns, RSA_SEL, "rsa", genkey(keys / "rsa.pem", "rsa"))
    started = []

    def make(password=RELAY_PASS, tls=True, name=RELAY_NAME, mode=0o600, check_only=False,
             extra="", mechs=("PLAIN", "LOGIN")):
        try:
            exim = EximRelay(tmp_path / ("exim%d" % len(started)), cert, key, RELAY_USER,
                             RELAY_PASS, tls=tls, mechs=mechs)
        except PeerUnavailable as e:
            pytest.skip(str(e))
        started.append(exim)
        exim.start()
        auth = tmp_path / ("relay_auth%d" % len(started))
        auth.write_text("%s %s\n" % (RELAY_USER, password))
        os.chmod(auth, mode)
        conf = ("dkim_key example.test %s %s\nrelay_host %s:%d\nrelay_auth %s\n"
                "tls_ca_file %s\n%s" % (RSA_SEL, keys / "rsa.pem", name, exim.port, auth,
                                        ca.cert, extra))
        sub = submission_daemon(fwd_env.daemon, tmp_path / ("sasl%d" % len(started)),
                                extra_conf=conf, start=not check_only)
        if not check_only:
            wait_ready(sub.d)
        return exim, sub

    make.remote = remote
    make.dns_port = lambda: fwd_env.dns.port
    try:
        yield make
    finally:
        for e in started:
            e.stop()


def submit(sub, subject):
    msg = ("From: Alice <%s>\nTo: carol@remote.test\nSubject: %s\n"
           "Message-ID: <%s@laptop.example.test>\n"
           "Date: Thu, 03 Dec 2026 06:00:00 +0000\n\nhello through the relay\n"
           % (ALICE, subject, re.sub(r"\W", "", subject)))
    s = sub.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        assert s.sendmail(ALICE, ["carol@remote.test"], crlf(msg)) == {}
    finally:
        s.quit()


def test_relay_gets_the_mail_after_auth_over_verified_tls_signature_intact(
        relay_env, qbins):
    """A message submitted on 587 goes to the relay, over STARTTLS, after
    AUTH PLAIN (the strongest Exim offers), and arrives there with its
    DKIM signature valid and its Message-ID as sent; remote.test's own MX
    sees nothing."""
    exim, sub = relay_env()
    submit(sub, "via the relay")
    wait_until(lambda: exim.delivered(), 30, what="the message at the relay")
    # Exim's Maildir holds LF line ends; the verifiers want the wire form
    content = exim.delivered()[0].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert b"Message-ID: <viatherelay@laptop.example.test>" in content
    sigs = signatures(content)
    assert [s["s"] for s in sigs] == [RSA_SEL], content[:2000]
    assert dkim.verify(content, dnsfunc=dnsfunc_for(relay_env.dns_port())), content[:3000]
    log = exim.log()
    assert re.search(r"<= alice@example\.test .* P=esmtpsa X=TLS\S+ .*A=plain:%s"
                     % RELAY_USER, log), log
    assert re.search(r"client auth host=%s mech=PLAIN user=%s" % (
        re.escape(RELAY_NAME), RELAY_USER), sub.d.log()), sub.d.log()
    wait_until(lambda: queue(qbins, sub.d)[0] == {}, 30, what="an empty queue")
    assert relay_env.remote.delivered() == []


def test_the_relay_sees_outbound_address(relay_env, qbins):
    exim, sub = relay_env(extra="outbound_address 127.0.0.2\n")
    submit(sub, "from the source address")
    wait_until(lambda: exim.delivered(), 30, what="the message at the relay")
    assert re.search(r"<= alice@example\.test H=\(mx\.example\.test\) \[127\.0\.0\.2\]",
                     exim.log()), exim.log()


def test_one_session_to_the_relay_carries_every_domain(relay_env, qbins):
    """A message for two other domains reaches the relay as one message
    with both recipients (one transaction), not one per domain."""
    exim, sub = relay_env()
    s = sub.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        assert s.sendmail(ALICE, ["carol@remote.test", "dave@other.test"], crlf(
            "From: %s\nTo: carol@remote.test, dave@other.test\nSubject: two\n\nhi\n"
            % ALICE)) == {}
    finally:
        s.quit()
    wait_until(lambda: len(exim.delivered()) >= 2, 30, what="both copies at the relay")
    wait_until(lambda: queue(qbins, sub.d)[0] == {}, 30, what="an empty queue")
    assert len(re.findall(r" <= alice@example\.test ", exim.log())) == 1, exim.log()
    assert sub.d.log().count("client auth host=") == 1, sub.d.log()


def test_login_when_it_is_all_the_relay_offers(relay_env, qbins):
    exim, sub = relay_env(mechs=("LOGIN",))
    submit(sub, "with login")
    wait_until(lambda: exim.delivered(), 30, what="the message at the relay")
    assert re.search(r"A=login:%s" % RELAY_USER, exim.log()), exim.log()
    assert "client auth host=%s mech=LOGIN" % RELAY_NAME in sub.d.log()


def deferred_with(qbins, d, text):
    msgs = wait_queue(qbins, d, lambda m: any(
        r["state"] == "deferred" and r["reply"] != "-"
        for x in m.values() for r in x["rcpts"]), "a deferred recipient")
    (m,) = msgs.values()
    (r,) = m["rcpts"]
    assert text in r["reply"], r
    return r


def test_a_refused_login_defers_and_says_why(relay_env, qbins):
    exim, sub = relay_env(password="wrong")
    submit(sub, "wrong password")
    r = deferred_with(qbins, sub.d, "relay %s:%d: AUTH PLAIN refused: 535"
                      % (RELAY_NAME, exim.port))
    assert exim.delivered() == [] and relay_env.remote.delivered() == []
    # the session still ends properly (RFC 5321 4.1.1.10)
    exim.wait_log(r"closed by QUIT")


def test_a_new_login_by_sighup_and_the_waiting_message_goes(relay_env, qbins):
    """The administrator fixes relay_auth and sends SIGHUP; after
    chamoisctl flush the deferred message goes through the relay."""
    exim, sub = relay_env(password="wrong")
    submit(sub, "fixed by sighup")
    deferred_with(qbins, sub.d, "AUTH PLAIN refused: 535")
    auth = [l.split(None, 1)[1] for l in sub.d.conf_lines() if l.startswith("relay_auth ")][0]
    with open(auth, "w") as f:
        f.write("%s %s\n" % (RELAY_USER, RELAY_PASS))
    sub.d.reload()
    wait_log_match(sub.d.log, r"reload done", 20, "the daemon's log")
    ctl_ok(qbins, sub.d, "flush")
    wait_until(lambda: exim.delivered(), 30, what="the message at the relay")
    wait_until(lambda: queue(qbins, sub.d)[0] == {}, 30, what="an empty queue")


def test_a_relay_without_starttls_defers_and_gets_no_plaintext(relay_env, qbins):
    exim, sub = relay_env(tls=False)
    submit(sub, "no starttls")
    deferred_with(qbins, sub.d, "the relay offers no STARTTLS")
    assert exim.delivered() == [] and relay_env.remote.delivered() == []
    exim.wait_log(r"closed by QUIT")
    assert "AUTH" not in exim.log() and not re.search(r"<= alice", exim.log())


def test_no_mechanism_in_common_defers(relay_env, qbins):
    """A relay offering only CRAM-MD5 (obsolete, RFC 6331)."""
    exim, sub = relay_env(mechs=("CRAM-MD5",))
    submit(sub, "no common mechanism")
    deferred_with(qbins, sub.d, "no AUTH mechanism in common (the relay offers CRAM-MD5)")
    assert exim.delivered() == [] and relay_env.remote.delivered() == []


def test_a_certificate_for_another_name_defers(relay_env, qbins):
    """other.example.net points at the same Exim, whose certificate names
    relay.example.net only."""
    exim, sub = relay_env(name="other.example.net")
    submit(sub, "wrong name")
    deferred_with(qbins, sub.d, "the certificate of other.example.net does not verify")
    assert exim.delivered() == [] and relay_env.remote.delivered() == []


def test_check_refuses_a_relay_auth_file_others_can_read(relay_env):
    exim, sub = relay_env(mode=0o644, check_only=True)
    p = subprocess.run([str(sub.d.binary), "-n", "-f", str(sub.d.conf)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    out = p.stdout.decode()
    assert p.returncode == 1, out
    line = sub.d.conf_line_number("relay_auth")
    assert re.search(r"chamois\.conf:%d: relay_auth: \S+ must be mode 0600 \(it is 0644\)"
                     % line, out), out



def test_a_relay_named_by_its_address_needs_a_certificate_for_the_address(
        fwd_env, tmp_path, qbins):
    """relay_host 127.0.0.1:PORT: no DNS at all, and the certificate must
    carry IP:127.0.0.1 (the Exim whose certificate names only a DNS name
    is refused)."""
    ca = TestCA(tmp_path / "ca")
    remote = fwd_env.remote("remote.test")
    results = {}
    for label, cn in (("ip", "127.0.0.1"), ("dns", RELAY_NAME)):
        cert, key = ca.leaf(tmp_path / ("cert-" + label), cn)
        try:
            exim = EximRelay(tmp_path / ("exim-" + label), cert, key, RELAY_USER, RELAY_PASS)
        except PeerUnavailable as e:
            pytest.skip(str(e))
        try:
            exim.start()
            auth = tmp_path / ("auth-" + label)
            auth.write_text("%s %s\n" % (RELAY_USER, RELAY_PASS))
            os.chmod(auth, 0o600)
            sub = submission_daemon(fwd_env.daemon, tmp_path / ("sasl-" + label), extra_conf=(
                "relay_host 127.0.0.1:%d\nrelay_auth %s\ntls_ca_file %s\n"
                % (exim.port, auth, ca.cert)))
            wait_ready(sub.d)
            submit(sub, "by address " + label)
            if label == "ip":
                wait_until(lambda: exim.delivered(), 30, what="the message at the relay")
            else:
                deferred_with(qbins, sub.d, "the certificate of 127.0.0.1 does not verify: "
                              "IP address mismatch")
            results[label] = len(exim.delivered())
        finally:
            exim.stop()
    assert results == {"ip": 1, "dns": 0}
    assert remote.delivered() == []


def test_a_chamoisd_relay_is_logged_in_to_with_scram_sha_256(fwd_env, tmp_path, qbins):
    """A second chamoisd as the relay host offers SCRAM-SHA-256 besides
    PLAIN and LOGIN on its submission role (STARTTLS, a certificate from
    the test CA): the sender logs in with SCRAM-SHA-256 as alice, and the
    relay delivers to remote.test's MX."""
    ca = TestCA(tmp_path / "ca")
    name = "smtp.relay.test"
    remote = fwd_env.remote("remote.test")
    relay = relay_chamoisd(fwd_env, tmp_path, name, ca)
    auth = tmp_path / "relay_auth"
    auth.write_text("%s %s\n" % (ALICE, USERS[ALICE]))
    os.chmod(auth, 0o600)
    sub = submission_daemon(fwd_env.daemon, tmp_path / "sasl", extra_conf=(
        "relay_host %s:%d\nrelay_auth %s\ntls_ca_file %s\n"
        % (name, relay.port, auth, ca.cert)))
    wait_ready(sub.d)
    submit(sub, "scram to a chamoisd")
    wait_until(lambda: remote.delivered(), 30, what="the message at remote.test")
    assert re.search(r"auth ok address=127\.0\.0\.1 user=%s mechanism=SCRAM-SHA-256"
                     % re.escape(ALICE), relay.d.log()), relay.d.log()
    assert re.search(r"client auth host=%s mech=SCRAM-SHA-256" % re.escape(name),
                     sub.d.log()), sub.d.log()


def relay_chamoisd(fwd_env, tmp_path, name, ca, submissions_port=None):
    """A second chamoisd as the relay host, its certificate from ca for
    name, its 465 role moved to submissions_port when given."""
    fwd_env.dns.address(name, "127.0.0.1")
    relay = submission_daemon(fwd_env.daemon, tmp_path / "relaysasl", start=False,
                              hostname=name)
    cert, key = ca.leaf(tmp_path / "relaycert", name)
    for src, dst in ((cert, "cert.pem"), (key, "key.pem")):
        (relay.d.dir / dst).write_bytes(open(src, "rb").read())
    if submissions_port is not None:
        relay.d.write_conf("".join(
            ("listen submissions 127.0.0.1:%d\n" % submissions_port)
            if l.startswith("listen submissions ") else l + "\n"
            for l in relay.d.conf_lines()))
        relay.sport = submissions_port
    relay.d.start()
    wait_ready(relay.d)
    return relay


IN_NETNS = os.environ.get("CHAMOIS_TEST_NETNS") == "1"


def test_port_465_means_implicit_tls(request, tmp_path):
    """relay_host HOST:465 is TLS from the first byte (RFC 8314 3.3): a
    chamoisd relay's submissions role on port 465 is logged in to with
    SCRAM-SHA-256 and delivers.  Port 465 is fixed by the rule under test,
    so the test runs itself again inside a network namespace of its own
    (unshare -n, loopback only), where no other process can hold it."""
    if not IN_NETNS:
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            pytest.skip("needs root and unshare(1) for a network namespace")
        env = dict(os.environ, CHAMOIS_TEST_NETNS="1",
                   CHAMOISD=str(harness.chamoisd_binary()))
        p = subprocess.run(
            ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
             sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "%s::test_port_465_means_implicit_tls" % __file__],
            env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=300)
        out = p.stdout.decode(errors="replace")
        assert p.returncode == 0 and " passed" in out, out[-6000:]
        return
    fwd_env = request.getfixturevalue("fwd_env")
    qb = request.getfixturevalue("qbins")
    ca = TestCA(tmp_path / "ca")
    name = "smtps.relay.test"
    remote = fwd_env.remote("remote.test")
    relay = relay_chamoisd(fwd_env, tmp_path, name, ca, submissions_port=465)
    auth = tmp_path / "relay_auth"
    auth.write_text("%s %s\n" % (ALICE, USERS[ALICE]))
    os.chmod(auth, 0o600)
    sub = submission_daemon(fwd_env.daemon, tmp_path / "sasl", extra_conf=(
        "relay_host %s:465\nrelay_auth %s\ntls_ca_file %s\n" % (name, auth, ca.cert)))
    wait_ready(sub.d)
    submit(sub, "implicit tls")
    wait_until(lambda: remote.delivered(), 30, what="the message at remote.test")
    wait_until(lambda: queue(qb, sub.d)[0] == {}, 30, what="an empty queue")
    assert re.search(r"smtp connected address=127\.0\.0\.1 role=submissions\n.*"
                     r"auth ok address=127\.0\.0\.1 user=%s mechanism=SCRAM-SHA-256"
                     % re.escape(ALICE), relay.d.log(), re.S), relay.d.log()
    # the TLS line before the login's (other lines, e.g. "loop late" under
    # load, may come between them)
    assert re.search(r"client tls host=%s .*\n(.*\n)*?.*client auth host=%s mech=SCRAM-SHA-256"
                     % (re.escape(name), re.escape(name)), sub.d.log()), sub.d.log()


@pytest.mark.skipif(os.geteuid() != 0, reason="running as nobody needs root")
def test_chamois_sendmail_of_an_ordinary_user_never_reads_relay_auth(chamoisd, tmp_path):
    """The secret is chamoisd's: chamois-sendmail, run by nobody, reads the
    same chamois.conf but not the relay_auth file (mode 0600, root's), and
    queues the message."""
    from test_sendmail import make_traversable, ready, run_sendmail
    auth = tmp_path / "relay_auth"
    auth.write_text("%s %s\n" % (RELAY_USER, RELAY_PASS))
    os.chmod(auth, 0o600)
    d = ready(chamoisd(extra_conf="relay_host 127.0.0.1:%d\nrelay_auth %s\n"
                       % (harness.dead_port(), auth)))
    make_traversable(d)
    p = run_sendmail(d, ["-i", "someone@remote.test"], "Subject: cron\n\nout\n",
                     as_nobody=True)
    assert p.returncode == 0, (p.stdout, p.stderr)
    wait_log_match(d.log, r"queue stored from=<nobody@example\.test>", 20, "the log")


@pytest.mark.skipif(os.geteuid() != 0, reason="checking as `user` needs root")
def test_check_warns_that_user_cannot_reread_relay_auth(chamois_conf, tmp_path):
    """-n as root: a relay_auth file only root can read is fine for the
    start but not for a SIGHUP after the drop to `user`: a warning."""
    auth = tmp_path / "relay_auth"
    auth.write_text("%s %s\n" % (RELAY_USER, RELAY_PASS))
    os.chmod(auth, 0o600)
    d = chamois_conf(extra_conf="relay_host relay.example.net:587\nrelay_auth %s\n"
                     "user nobody\n" % auth)
    rc, out = d.check_config()
    assert re.search(r"chamois\.conf:%d: warning: relay_auth: user 'nobody' cannot read %s"
                     % (d.conf_line_number("relay_auth"), re.escape(str(auth))), out), out


def test_check_refuses_a_tls_ca_file_that_is_no_pem(chamois_conf, tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    d = chamois_conf(extra_conf="relay_host relay.example.net:587\ntls_ca_file %s\n" % bad)
    rc, out = d.check_config()
    assert rc == 1, out
    assert re.search(r"chamois\.conf:%d: tls_ca_file %s: " % (
        d.conf_line_number("tls_ca_file"), re.escape(str(bad))), out), out


def test_a_new_ca_by_sighup(relay_env, qbins, tmp_path):
    """tls_ca_file first names a CA that did not sign the relay's
    certificate: deferred; the file is replaced by the right CA, SIGHUP,
    flush: delivered."""
    other = TestCA(tmp_path / "otherca", name="another test CA")
    exim, sub = relay_env()
    ca_line = [l for l in sub.d.conf_lines() if l.startswith("tls_ca_file ")][0]
    right = ca_line.split(None, 1)[1]
    good = open(right, "rb").read()
    with open(right, "wb") as f:
        f.write(open(other.cert, "rb").read())
    sub.d.reload()
    wait_log_match(sub.d.log, r"reload done", 20, "the daemon's log")
    submit(sub, "new ca")
    deferred_with(qbins, sub.d, "does not verify: unable to get local issuer certificate")
    with open(right, "wb") as f:
        f.write(good)
    sub.d.reload()
    wait_until(lambda: sub.d.log().count("reload done") >= 2, 20, what="the second reload")
    ctl_ok(qbins, sub.d, "flush")
    wait_until(lambda: exim.delivered(), 30, what="the message at the relay")

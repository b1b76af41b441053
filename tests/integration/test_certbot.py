"""certbot and the deploy hook (etc/certbot-deploy-hook.in) against a real
ACME CA; doc/chamoisd.8 "TLS KEYS", doc/debian.md "Certificates with
certbot".

Let's Encrypt cannot reach a test machine, so Debian's pebble (the ACME
test server of Let's Encrypt) stands in for it, on free loopback ports,
with a certificate for its HTTPS endpoint made here and handed to certbot
as REQUESTS_CA_BUNDLE.  PEBBLE_VA_ALWAYS_VALID=1 marks every challenge
valid without fetching it, so certbot --standalone listens on loopback and
nobody needs to reach it; pebble's -dnsserver is a UDP socket of this test
that must see no query.  Everything else is real: certbot obtains and
renews the certificate, runs the tree's hook, and the hook hands the key to
chamoisd (running as nobody, group nogroup, as the package runs it as
chamois) and signals it to reload.  tests/fresh/acme.sh does the same on
fixed ports for the literal commands of doc/install.md.
"""

import grp
import json
import os
import shutil
import socket
import ssl
import subprocess
import urllib.request

import pytest

from harness import free_port, open_dirs_to_others, peer_cert_der, wait_until
from test_systemd_unit import HOOK_IN, render

NAME = "mail.example.test"
GROUP = "nogroup"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="certbot and the hook's chown need root"),
    pytest.mark.skipif(shutil.which("certbot") is None, reason="certbot is not installed"),
    pytest.mark.skipif(shutil.which("pebble") is None, reason="pebble is not installed"),
]


def openssl(*args, text=None):
    return subprocess.run(["openssl"] + list(args), input=text, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=True).stdout


def self_signed(key, cert, cn, san):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=%s" % cn,
            "-addext", "subjectAltName=%s" % san)


class Pebble:
    """pebble on free loopback ports, its state in tmp_path/pebble."""

    def __init__(self, tmp_path):
        self.dir = tmp_path / "pebble"
        self.dir.mkdir()
        self.ca = self.dir / "endpoint.pem"
        self_signed(self.dir / "endpoint-key.pem", self.ca,
                    "pebble endpoint", "IP:127.0.0.1")
        self.port, self.mgmt_port = free_port(), free_port()
        # the resolver pebble is given: ours, to see that it is never asked
        self.dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.dns.bind(("127.0.0.1", 0))
        self.dns.setblocking(False)
        conf = {"pebble": {
            "listenAddress": "127.0.0.1:%d" % self.port,
            "managementListenAddress": "127.0.0.1:%d" % self.mgmt_port,
            "certificate": str(self.ca),
            "privateKey": str(self.dir / "endpoint-key.pem"),
            "httpPort": free_port(), "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        (self.dir / "pebble.json").write_text(json.dumps(conf, indent=2))
        self.log_path = self.dir / "pebble.log"
        self.url = "https://127.0.0.1:%d/dir" % self.port
        self.proc = None

    def start(self):
        env = dict(os.environ, PEBBLE_VA_ALWAYS_VALID="1", PEBBLE_VA_NOSLEEP="1",
                   PEBBLE_WFE_NONCEREJECT="0")   # certbot retries a bad nonce only once
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["pebble", "-config", str(self.dir / "pebble.json"),
                 "-dnsserver", "127.0.0.1:%d" % self.dns.getsockname()[1]],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

        def answers():
            assert self.proc.poll() is None, self.log()
            try:
                self.get(self.url)
                return True
            except OSError:
                return False
        wait_until(answers, timeout=20, what="pebble's directory")

    def get(self, url):
        ctx = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
            return r.read().decode()

    def mgmt(self, path):
        return self.get("https://127.0.0.1:%d%s" % (self.mgmt_port, path))

    def log(self):
        return self.log_path.read_text(errors="replace")

    def dns_queries(self):
        n = 0
        while True:
            try:
                self.dns.recv(4096)
                n += 1
            except BlockingIOError:
                return n

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.dns.close()


@pytest.fixture
def pebble(tmp_path):
    p = Pebble(tmp_path)
    try:
        p.start()
        yield p
    finally:
        p.stop()


def served(d):
    """(PEM, subject, issuer, SAN, serial) of what d's STARTTLS presents"""
    pem = ssl.DER_cert_to_PEM_cert(peer_cert_der(d))
    out = openssl("x509", "-noout", "-subject", "-issuer", "-serial",
                  "-ext", "subjectAltName", "-nameopt", "RFC2253", text=pem)
    return pem, out


def field(out, name):
    for line in out.splitlines():
        if line.startswith(name + "="):
            return line[len(name) + 1:]
    raise KeyError(name)


def test_certbot_issues_and_renews_what_chamoisd_serves(tmp_path, pebble, chamois_conf):
    tls = tmp_path / "tls"
    dest = tls / NAME
    dest.mkdir(parents=True)
    gid = grp.getgrnam(GROUP).gr_gid
    # before certbot: a self-made certificate where the hook will put its copy
    self_signed(dest / "privkey.pem", dest / "fullchain.pem", "self-made", "DNS:" + NAME)
    for f in ("privkey.pem", "fullchain.pem"):
        os.chown(dest / f, 0, gid)
        (dest / f).chmod(0o640)
    d = chamois_conf(hostname=NAME, extra_conf="user nobody")
    for key in ("tls_cert", "tls_key"):
        d.drop_conf_key(key)
    d.write_conf(d.conf.read_text() + "tls_cert %s\ntls_key %s\n"
                 % (dest / "fullchain.pem", dest / "privkey.pem"))
    open_dirs_to_others(d)
    d.start()
    _, first = served(d)
    assert "CN=self-made" in field(first, "subject"), first

    hook = render(HOOK_IN, tmp_path / "certbot-deploy-hook")
    hook.chmod(0o755)
    env = dict(os.environ, REQUESTS_CA_BUNDLE=str(pebble.ca), CHAMOIS_TLS_DIR=str(tls),
               CHAMOIS_GROUP=GROUP, CHAMOIS_RELOAD="kill -HUP %d" % d.proc.pid)
    dirs = ["--config-dir", str(tmp_path / "le"), "--work-dir", str(tmp_path / "le-work"),
            "--logs-dir", str(tmp_path / "le-logs"), "--server", pebble.url,
            "--non-interactive", "--agree-tos", "--register-unsafely-without-email"]

    def certbot(*args):
        p = subprocess.run(["certbot"] + list(args) + dirs, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=180)
        assert p.returncode == 0, p.stdout + pebble.log()[-3000:]
        return p.stdout

    def reloaded(count):
        wait_until(lambda: d.log().count("reload done") >= count, timeout=20,
                   what="reload %d" % count)
        line = [l for l in d.log().splitlines() if "reload done" in l][count - 1]
        assert "tls=yes" in line, d.log()

    out = certbot("certonly", "--standalone", "--http-01-address", "127.0.0.1",
                  "--http-01-port", str(free_port()), "-d", NAME, "--deploy-hook", str(hook))
    assert "Successfully received certificate" in out, out
    for f in ("fullchain.pem", "privkey.pem"):
        st = (dest / f).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, 0o640), f
        assert (dest / f).read_bytes() == (tmp_path / "le" / "live" / NAME / f).read_bytes()
    reloaded(1)
    # the key and chain as the hook left them pass the unit's ExecStartPre
    rc, check = d.check_config()
    assert rc == 0 and "warning" not in check, check

    pem, issued = served(d)
    assert field(issued, "subject") == "CN=" + NAME, issued
    assert "DNS:" + NAME in issued, issued
    inter, root = tmp_path / "intermediate.pem", tmp_path / "root.pem"
    inter.write_text(pebble.mgmt("/intermediates/0"))
    root.write_text(pebble.mgmt("/roots/0"))
    assert field(issued, "issuer") == field(
        openssl("x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", str(inter)),
        "subject")
    assert field(issued, "issuer").startswith("CN=Pebble Intermediate CA"), issued
    (tmp_path / "served.pem").write_text(pem)
    assert ": OK" in openssl("verify", "-CAfile", str(root), "-untrusted", str(inter),
                             str(tmp_path / "served.pem"))

    # run without a terminal, renew first sleeps a random time (up to 8
    # minutes) unless told not to; doc/install.md's operator has a terminal
    out = certbot("renew", "--force-renewal", "--no-random-sleep-on-renew")
    assert "all renewals succeeded" in out, out
    reloaded(2)
    _, renewed = served(d)
    assert field(renewed, "subject") == "CN=" + NAME, renewed
    assert field(renewed, "serial") != field(issued, "serial"), (issued, renewed)
    assert field(renewed, "serial") == field(
        openssl("x509", "-noout", "-serial", "-in", str(dest / "fullchain.pem")), "serial")
    assert d.running()

    # no challenge was fetched and no name looked up: nothing left loopback
    assert "VA always returns valid" in pebble.log()
    assert "Attempting to validate" not in pebble.log()
    assert pebble.dns_queries() == 0

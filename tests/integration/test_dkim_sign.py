"""DKIM signing of what the queue sends (chamois.conf(5) "dkim_key";
doc/queue.md "Signing"; chamoisd(8) CHECKS).

A chamoisd with a submission listener and two dkim_key lines for
example.test (an RSA 2048 and an Ed25519 key made here with openssl
genpkey) sends to an aiosmtpd remote behind a dnsmasq MX
(peers/remote.py); the same dnsmasq serves the keys' TXT records
(SELECTOR._domainkey.example.test), and the messages as the remote got
them are verified with two verifiers, each signature on its own, the keys
looked up in that dnsmasq: dkimpy (python3-dkim) and OpenDKIM's
(libopendkim, through tests/dkim/opendkim_verify.c).  Mail enters on 587
(smtplib, AUTH) and through chamois-sendmail."""

import base64
import os
import re
import signal
import subprocess

import dkim
import pytest

from harness import ROOT, crlf, open_dirs_to_others, wait_until
from peers.dns import query
from peers.remote import fwd_env  # noqa: F401
from peers.queue_util import qbins, sendmail_ok, wait_ready  # noqa: F401
from peers.sasl import ALICE, USERS, submission_daemon

DOMAIN = "example.test"
RSA_SEL, ED_SEL = "rsa2026", "ed2026"

# an 8-bit body (UTF-8), a line of 990 octets (998 is the most RFC 5322
# allows), lines starting with dots, trailing blanks and empty lines at the
# end (the relaxed body canonicalisation drops both)
BODY = ("Grüße aus Zürich, ça va ?\n"
        "\n"
        ".a line that starts with a dot\n"
        "..two dots\n"
        ".\n"
        "trailing blanks   \t\n"
        "inner   runs\tof  blanks\n"
        + "x" * 990 + "\n"
        "last line\n"
        "\n"
        "\n")


def genkey(path, kind):
    """openssl genpkey: an RSA 2048 or Ed25519 key in PEM; its p= value."""
    if kind == "rsa":
        args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    elif kind == "rsa1024":
        args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]
    else:
        args = ["-algorithm", "ED25519"]
    subprocess.run(["openssl", "genpkey"] + args + ["-out", str(path)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    der = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE, timeout=60).stdout
    if kind == "ed25519":
        der = der[-32:]         # RFC 8463 4.2: the raw public key
    return base64.b64encode(der).decode()


def txt_record(dns, selector, kind, p):
    """The key's TXT record in dnsmasq, in strings of at most 255 octets."""
    text = "v=DKIM1; k=%s; p=%s" % ("ed25519" if kind == "ed25519" else "rsa", p)
    parts = [text[i:i + 250] for i in range(0, len(text), 250)]
    dns.raw("--txt-record=%s._domainkey.%s,%s" % (selector, DOMAIN, ",".join(parts)))


def dnsfunc_for(port):
    """dkimpy's key look-up, through the test's dnsmasq."""
    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        rcode, answers = query(port, name.rstrip("."), "TXT")
        for a in answers:
            if a[0] == 16:
                raw, out = a[1], b""
                while raw:
                    out += raw[1:1 + raw[0]]
                    raw = raw[1 + raw[0]:]
                return out
        return None
    return lookup


def signatures(content):
    """The DKIM-Signature fields of a message, as dicts of their tags."""
    head = content.split(b"\r\n\r\n", 1)[0]
    fields = re.findall(rb"(?im)^DKIM-Signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head)
    out = []
    for f in fields:
        tags = {}
        for t in re.sub(rb"\s+", b"", f).split(b";"):
            if b"=" in t:
                k, v = t.split(b"=", 1)
                tags[k.decode()] = v.decode()
        out.append(tags)
    return out


def verify_each(content, port):
    """dkimpy's verdict on every signature, in order."""
    d = dkim.DKIM(content)
    out = []
    for i in range(len(signatures(content))):
        try:
            out.append(d.verify(idx=i, dnsfunc=dnsfunc_for(port)))
        except dkim.DKIMException:      # a body hash mismatch raises
            out.append(False)
    return out


def opendkim_verifier():
    path = ROOT / "build" / "tests" / "opendkim_verify"
    if not path.exists():
        p = subprocess.run(["make", "-C", str(ROOT), "build/tests/opendkim_verify"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        assert p.returncode == 0 and path.exists(), p.stdout.decode(errors="replace")
    return path


def opendkim_verify(content, port):
    """OpenDKIM's verdict lines, one per signature: "pass d=.. s=.. a=.."."""
    p = subprocess.run([str(opendkim_verifier()), str(port)], input=content,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.stdout.decode(errors="replace").splitlines()


@pytest.fixture
def signing(fwd_env, tmp_path):
    """A remote for remote.test, the two keys and their records, and a
    chamoisd with a submission listener signing for example.test."""
    keys = tmp_path / "keys"
    keys.mkdir()
    r = fwd_env.remote("remote.test")
    txt_record(fwd_env.dns, RSA_SEL, "rsa", genkey(keys / "rsa.pem", "rsa"))
    txt_record(fwd_env.dns, ED_SEL, "ed25519", genkey(keys / "ed.pem", "ed25519"))
    conf = ("dkim_key %s %s %s\ndkim_key %s %s %s\n"
            % (DOMAIN, RSA_SEL, keys / "rsa.pem", DOMAIN, ED_SEL, keys / "ed.pem"))
    sub = submission_daemon(fwd_env.daemon, tmp_path / "sasl", extra_conf=conf,
                            mailboxes=("alice@example.test", "bob@example.test",
                                       "root@example.test"))
    wait_ready(sub.d)
    return sub, r, fwd_env.dns.port


def delivered(r, n=1):
    wait_until(lambda: len(r.delivered()) >= n, 30, what="delivery at remote.test")
    return r.delivered()[n - 1].content


def submitted(sub, frm, to, subject, body=BODY, extra=""):
    return ("From: Alice <%s>\nTo: %s\nSubject: %s\n"
            "Message-ID: <%s@laptop.example.test>\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
            "References: <one@laptop.example.test>\n <two@laptop.example.test>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n%s\n%s"
            % (frm, to, subject, re.sub(r"\W", "", subject), extra, body))


def check_both(content, port):
    sigs = signatures(content)
    assert [s["a"] for s in sigs] == ["rsa-sha256", "ed25519-sha256"], sigs
    assert [s["s"] for s in sigs] == [RSA_SEL, ED_SEL], sigs
    for s in sigs:
        assert s["d"] == DOMAIN and s["c"] == "relaxed/relaxed", s
        h = [x.lower() for x in s["h"].split(":")]
        assert h.count("from") == 2, s          # over-signed
        for name in ("to", "subject", "date", "message-id", "references",
                     "mime-version", "content-type", "content-transfer-encoding"):
            assert name in h, (name, s)
        assert "received" not in h, s
    assert verify_each(content, port) == [True, True], content[:3000]
    assert dkim.verify(content, dnsfunc=dnsfunc_for(port)), content[:3000]
    assert opendkim_verify(content, port) == [
        "pass d=%s s=%s a=rsa-sha256" % (DOMAIN, RSA_SEL),
        "pass d=%s s=%s a=ed25519-sha256" % (DOMAIN, ED_SEL)], content[:3000]


def test_submission_is_signed_with_rsa_and_ed25519(signing):
    """A message submitted on 587 reaches the remote with an RSA and an
    Ed25519 signature that dkimpy accepts, each on its own; 8-bit body,
    a 990-octet line, dot lines, a folded header."""
    sub, r, port = signing
    s = sub.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        # blanks and folding the relaxed header form must undo
        msg = submitted(sub, ALICE, "carol@remote.test", "signed on 587",
                        extra="Cc:   Dave \t <dave@remote.test>  \n"
                              "Reply-To: Alice\n\t<alice@example.test>\n"
                              "X-Not-Signed: anything\n")
        assert s.sendmail(ALICE, ["carol@remote.test"], crlf(msg),
                          mail_options=["BODY=8BITMIME"]) == {}
    finally:
        s.quit()
    content = delivered(r)
    check_both(content, port)
    assert b"x" * 990 + b"\r\n" in content
    assert b"\r\n.a line that starts with a dot\r\n..two dots\r\n.\r\n" in content
    assert "Grüße".encode() in content
    # the signatures sit above chamois's own Received
    head = content.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"DKIM-Signature:"), head[:200]
    assert head.index(b"Received:") > head.rindex(b"DKIM-Signature:")
    assert re.search(r"[0-9a-f]{16} dkim signed domain=example\.test signatures=2\n",
                     sub.d.log()), sub.d.log()


def test_sendmail_is_signed_with_rsa_and_ed25519(signing, qbins):
    """chamois-sendmail's messages are signed the same way."""
    sub, r, port = signing
    sendmail_ok(qbins, sub.d, ["carol@remote.test"],
                submitted(sub, ALICE, "carol@remote.test", "signed by sendmail"),
                sender=ALICE)
    check_both(delivered(r), port)


def test_a_message_tampered_with_fails_both(signing):
    """The verifier is not fooled: a changed body fails both signatures
    (so the passes above are not a verifier that says yes to anything)."""
    sub, r, port = signing
    s = sub.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        s.sendmail(ALICE, ["carol@remote.test"],
                   crlf(submitted(sub, ALICE, "carol@remote.test", "tamper")),
                   mail_options=["BODY=8BITMIME"])
    finally:
        s.quit()
    content = delivered(r)
    assert verify_each(content, port) == [True, True], content[:3000]
    assert b"last line" in content, content
    bad = content.replace(b"last line", b"last lime")
    assert verify_each(bad, port) == [False, False], bad[:3000]
    got = opendkim_verify(bad, port)
    assert [l.split()[0] for l in got] == ["fail", "fail"], got


@pytest.mark.parametrize("frm", ["someone@elsewhere.test",
                                 "alice@example.test, bob@example.test"])
def test_from_outside_signing_domains_goes_unsigned(signing, qbins, frm):
    """A From that is not one address of a signing domain: no signature,
    the message still goes."""
    sub, r, port = signing
    sendmail_ok(qbins, sub.d, ["carol@remote.test"],
                submitted(sub, frm, "carol@remote.test", "unsigned"), sender=ALICE)
    content = delivered(r)
    assert b"DKIM-Signature" not in content, content[:2000]
    assert "dkim signed" not in sub.d.log()


def test_sighup_new_selector_signs_new_mail_and_queued_mail_keeps_its_own(
        fwd_env, tmp_path, qbins):
    """Key rotation: a message queued (the remote says 451 to the first
    attempt) before a SIGHUP that replaces selector old by new keeps its
    old signature when it finally goes; one submitted after is signed with
    the new key.  Both verify while DNS has both records."""
    keys = tmp_path / "keys"
    keys.mkdir()
    attempts = []

    def eod(conn, arg):
        attempts.append(1)
        return "451 4.3.0 try again later" if len(attempts) == 1 else None

    r = fwd_env.remote("remote.test", eod=eod)
    txt_record(fwd_env.dns, "old", "ed25519", genkey(keys / "old.pem", "ed25519"))
    txt_record(fwd_env.dns, "new", "ed25519", genkey(keys / "new.pem", "ed25519"))
    d = wait_ready(fwd_env.daemon(
        extra_conf="dkim_key %s old %s\n" % (DOMAIN, keys / "old.pem"),
        mailboxes=("alice@example.test", "root@example.test")))
    port = fwd_env.dns.port
    sendmail_ok(qbins, d, ["carol@remote.test"],
                submitted(None, ALICE, "carol@remote.test", "queued before"), sender=ALICE)
    wait_until(lambda: len(attempts) >= 1, 30, what="the first attempt")
    lines = [("dkim_key %s new %s" % (DOMAIN, keys / "new.pem")) if l.startswith("dkim_key")
             else l for l in d.conf_lines()]
    d.write_conf("\n".join(lines) + "\n")
    d.signal(signal.SIGHUP)
    wait_until(lambda: "reload dkim keys=1" in d.log(), 15, what="reload of the keys")
    sendmail_ok(qbins, d, ["carol@remote.test"],
                submitted(None, ALICE, "carol@remote.test", "queued after"), sender=ALICE)
    subprocess.run([str(qbins["chamoisctl"]), "-f", str(d.conf), "flush"], check=True,
                   stdout=subprocess.DEVNULL, timeout=30)
    wait_until(lambda: len(r.delivered()) >= 2, 60, what="both deliveries")
    by_subject = {}
    for t in r.delivered():
        subj = re.search(rb"(?m)^Subject: (.*)\r$", t.content).group(1)
        by_subject[subj] = t.content
    before, after = by_subject[b"queued before"], by_subject[b"queued after"]
    assert [s["s"] for s in signatures(before)] == ["old"]
    assert [s["s"] for s in signatures(after)] == ["new"]
    assert verify_each(before, port) == [True]
    assert verify_each(after, port) == [True]
    assert opendkim_verify(before, port) == ["pass d=%s s=old a=ed25519-sha256" % DOMAIN]
    assert opendkim_verify(after, port) == ["pass d=%s s=new a=ed25519-sha256" % DOMAIN]


def test_sighup_with_a_bad_key_keeps_the_old_keys(fwd_env, tmp_path, qbins):
    """A SIGHUP whose dkim_key names a key that fails the checks (1024-bit
    RSA) logs it with FILE:LINE and keeps the keys in force: mail goes on
    being signed with them."""
    keys = tmp_path / "keys"
    keys.mkdir()
    r = fwd_env.remote("remote.test")
    txt_record(fwd_env.dns, "good", "ed25519", genkey(keys / "good.pem", "ed25519"))
    genkey(keys / "small.pem", "rsa1024")
    d = wait_ready(fwd_env.daemon(
        extra_conf="dkim_key %s good %s\n" % (DOMAIN, keys / "good.pem"),
        mailboxes=("alice@example.test", "root@example.test")))
    lines = [("dkim_key %s small %s" % (DOMAIN, keys / "small.pem")) if l.startswith("dkim_key")
             else l for l in d.conf_lines()]
    d.write_conf("\n".join(lines) + "\n")
    d.signal(signal.SIGHUP)
    wait_until(lambda: "the old keys stay" in d.log(), 15, what="the reload's verdict")
    assert "chamois.conf:%d: dkim_key: %s is an RSA key of 1024 bits" % (
        d.conf_line_number("dkim_key"), keys / "small.pem") in d.log(), d.log()
    sendmail_ok(qbins, d, ["carol@remote.test"],
                submitted(None, ALICE, "carol@remote.test", "after a bad reload"),
                sender=ALICE)
    content = delivered(r)
    assert [x["s"] for x in signatures(content)] == ["good"]
    assert verify_each(content, fwd_env.dns.port) == [True]


# ---------------------------------------------------------------- dkim-keygen


def keygen(qbins, conf, *args):
    return subprocess.run([str(qbins["chamoisctl"]), "-f", str(conf), "dkim-keygen"]
                          + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)


def test_keygen_keys_and_records_sign_and_verify(fwd_env, tmp_path, qbins):
    """chamoisctl dkim-keygen makes an RSA and an Ed25519 key (mode 0600,
    never over an existing file) and prints the dkim_key line and the TXT
    record; with those lines in the config and the records in DNS, the
    daemon's signatures verify with both verifiers."""
    keys = tmp_path / "keys"
    keys.mkdir()
    conf_lines, records = [], []
    for sel, args in (("kr", []), ("ke", ["-t", "ed25519"])):
        p = keygen(qbins, tmp_path / "no.conf", *(args + [DOMAIN, sel, str(keys / (sel + ".pem"))]))
        assert p.returncode == 0, p
        out = p.stdout.decode().splitlines()
        assert len(out) == 2, out
        assert out[0] == "dkim_key %s %s %s" % (DOMAIN, sel, keys / (sel + ".pem")), out
        m = re.match(r'^%s\._domainkey\.%s\. TXT((?: "[^"]{1,255}")+)$'
                     % (sel, re.escape(DOMAIN)), out[1])
        assert m, out[1]
        text = "".join(re.findall(r'"([^"]*)"', m.group(1)))
        assert text.startswith("v=DKIM1; k=%s; p=" % ("ed25519" if args else "rsa")), text
        assert (keys / (sel + ".pem")).stat().st_mode & 0o777 == 0o600
        conf_lines.append(out[0])
        fwd_env.dns.raw("--txt-record=%s._domainkey.%s,%s" % (
            sel, DOMAIN, ",".join(re.findall(r'"([^"]*)"', m.group(1)))))
    before = (keys / "kr.pem").read_bytes()
    p = keygen(qbins, tmp_path / "no.conf", DOMAIN, "kr", str(keys / "kr.pem"))
    assert p.returncode == 1 and b"File exists" in p.stderr, p
    assert (keys / "kr.pem").read_bytes() == before
    r = fwd_env.remote("remote.test")
    d = wait_ready(fwd_env.daemon(extra_conf="\n".join(conf_lines) + "\n",
                                  mailboxes=("alice@example.test", "root@example.test")))
    sendmail_ok(qbins, d, ["carol@remote.test"],
                submitted(None, ALICE, "carol@remote.test", "keygen keys"), sender=ALICE)
    content = delivered(r)
    port = fwd_env.dns.port
    assert [x["s"] for x in signatures(content)] == ["kr", "ke"]
    assert verify_each(content, port) == [True, True]
    assert opendkim_verify(content, port) == [
        "pass d=%s s=kr a=rsa-sha256" % DOMAIN, "pass d=%s s=ke a=ed25519-sha256" % DOMAIN]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the key away")
def test_keygen_as_root_gives_the_key_to_the_user(chamois_conf, qbins):
    """Run as root, the key belongs to chamois.conf's user, so that a
    SIGHUP (after the privilege drop) can read it."""
    import pwd
    c = chamois_conf(extra_conf="user nobody")
    p = keygen(qbins, c.conf, "-t", "ed25519", DOMAIN, "s1", str(c.dir / "k.pem"))
    assert p.returncode == 0, p
    st = (c.dir / "k.pem").stat()
    assert st.st_uid == pwd.getpwnam("nobody").pw_uid and st.st_mode & 0o777 == 0o600


def test_keygen_refuses_a_bad_type_domain_or_selector(qbins, tmp_path):
    for args in (["-t", "dsa", DOMAIN, "s", "k.pem"], ["not a domain", "s", "k.pem"],
                 [DOMAIN, "bad selector", "k.pem"], [DOMAIN, "s"]):
        p = keygen(qbins, tmp_path / "no.conf", *args[:-1], str(tmp_path / args[-1]))
        assert p.returncode == 2, (args, p)
    assert not (tmp_path / "k.pem").exists()


def test_dns_prints_every_record_the_domains_need(chamois_conf, qbins, tmp_path):
    """chamoisctl dns: per local domain its MX (the hostname), SPF, each
    DKIM key of it or below it (the record dkim-keygen printed) and DMARC
    with reports to the postmaster; then the host's addresses and PTRs;
    naming a domain restricts it, a domain that is not local is refused."""
    c = chamois_conf(domains=("example.test", "other.test"), postmaster="alice@example.test")
    records = {}
    lines = []
    for dom, sel, args in (("example.test", "r1", []),
                           ("lists.example.test", "e1", ["-t", "ed25519"])):
        p = keygen(qbins, tmp_path / "no.conf", *(args + [dom, sel, str(tmp_path / (sel + ".pem"))]))
        assert p.returncode == 0, p
        out = p.stdout.decode().splitlines()
        lines.append(out[0])
        records[sel] = out[1]
    with open(c.conf, "a") as f:
        f.write("\n".join(lines) + "\n")
    p = subprocess.run([str(qbins["chamoisctl"]), "-f", str(c.conf), "dns"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p
    out = p.stdout.decode().splitlines()
    dmarc = '"v=DMARC1; p=quarantine; rua=mailto:alice@example.test"'
    want = ["; example.test",
            "example.test. MX 10 mx.example.test.",
            'example.test. TXT "v=spf1 mx -all"',
            records["r1"], records["e1"],
            "_dmarc.example.test. TXT " + dmarc,
            "; other.test",
            "other.test. MX 10 mx.example.test.",
            'other.test. TXT "v=spf1 mx -all"',
            "_dmarc.other.test. TXT " + dmarc]
    assert out[:len(want)] == want, out
    rest = out[len(want):]
    assert rest and rest[0].startswith("; mx.example.test: its addresses"), rest
    for a, ptr in zip(rest[1::2], rest[2::2]):
        assert re.match(r"^mx\.example\.test\. (A [0-9.]+|AAAA [0-9a-f:]+)$", a), a
        assert re.match(r"^[0-9a-f.]+\.(in-addr|ip6)\.arpa\. PTR mx\.example\.test\.$", ptr), ptr
    p = subprocess.run([str(qbins["chamoisctl"]), "-f", str(c.conf), "dns", "other.test"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0 and "example.test. MX" not in p.stdout.decode().replace(
        "mx.example.test.", ""), p
    assert "other.test. MX 10 mx.example.test." in p.stdout.decode()
    p = subprocess.run([str(qbins["chamoisctl"]), "-f", str(c.conf), "dns", "elsewhere.test"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 2 and b"not a local domain" in p.stderr, p


def serve(dns, lines):
    """The records of `chamoisctl dns` lines (name. TYPE value) in dnsmasq."""
    for l in lines:
        if l.startswith(";"):
            continue
        name, rr, value = l.split(" ", 2)
        name = name.rstrip(".")
        if rr == "MX":
            pref, host = value.split()
            dns.mx(name, host.rstrip("."), int(pref))
        elif rr == "TXT":
            dns.raw("--txt-record=%s,%s" % (name, ",".join(re.findall(r'"([^"]*)"', value))))
        elif rr in ("A", "AAAA"):
            dns.address(name, value)        # dnsmasq makes the PTR too
        elif rr != "PTR":
            raise AssertionError(l)


def dns_check(qbins, c, dns):
    lines = [("dns_server %s" % dns.server) if l.startswith("dns_server") else l
             for l in c.conf_lines()]
    c.write_conf("\n".join(lines) + "\n")
    p = subprocess.run([str(qbins["chamoisctl"]), "-f", str(c.conf), "dns", "--check"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout.decode().splitlines()


def test_dns_check_passes_on_the_right_records_and_names_the_wrong_ones(
        chamois_conf, qbins, tmp_path):
    """chamoisctl dns --check asks dns_server for every record: all ok
    (exit 0) against exactly what `dns` printed; against a zone with
    another SPF, another DKIM key and no DMARC it names exactly those
    (differs, with what it found; missing) and exits 1."""
    from peers.dns import Dnsmasq
    c = chamois_conf(domains=("example.test",))
    p = keygen(qbins, tmp_path / "no.conf", DOMAIN, "r1", str(tmp_path / "r1.pem"))
    other = keygen(qbins, tmp_path / "no.conf", DOMAIN, "r1", str(tmp_path / "other.pem"))
    assert p.returncode == 0 and other.returncode == 0
    with open(c.conf, "a") as f:
        f.write(p.stdout.decode().splitlines()[0] + "\n")
    printed = subprocess.run([str(qbins["chamoisctl"]), "-f", str(c.conf), "dns"],
                             stdout=subprocess.PIPE, timeout=30).stdout.decode().splitlines()
    good = Dnsmasq(tmp_path / "good")
    bad = Dnsmasq(tmp_path / "bad")
    try:
        serve(good, printed)
        good.start()
        rc, out = dns_check(qbins, c, good)
        verdicts = [l.split()[0] for l in out if not l.startswith((";", " "))]
        assert rc == 0 and verdicts and set(verdicts) == {"ok"}, out
        assert len(verdicts) == len([l for l in printed if not l.startswith(";")]), out

        wrong = []
        for l in printed:
            if l.startswith("example.test. TXT"):
                l = 'example.test. TXT "v=spf1 a -all"'
            elif l.startswith("r1._domainkey"):
                l = other.stdout.decode().splitlines()[1]
            elif l.startswith("_dmarc."):
                continue
            wrong.append(l)
        serve(bad, wrong)
        bad.start()
        rc, out = dns_check(qbins, c, bad)
        assert rc == 1, out
        text = "\n".join(out)
        assert re.search(r'^differs example\.test\. TXT "v=spf1 mx -all"\n'
                         r'        found: v=spf1 a -all$', text, re.M), text
        assert re.search(r"^differs r1\._domainkey\.example\.test\. TXT ", text, re.M), text
        assert re.search(r"^missing _dmarc\.example\.test\. TXT ", text, re.M), text
        bad_lines = [l for l in out if l.split()[0] in ("differs", "missing")]
        assert len(bad_lines) == 3, out
    finally:
        good.stop()
        bad.stop()


# ---------------------------------------------------------------- -n


def test_check_accepts_good_keys_and_names_each_bad_one(chamois_conf, tmp_path):
    """-n: a 1024-bit RSA key, a public key, a missing file and a repeated
    selector are errors naming FILE:LINE; RSA 2048 and Ed25519 pass."""
    k = tmp_path / "k"
    k.mkdir()
    genkey(k / "rsa.pem", "rsa")
    genkey(k / "ed.pem", "ed25519")
    good = chamois_conf(extra_conf="dkim_key example.test a %s\ndkim_key example.test b %s\n"
                        % (k / "rsa.pem", k / "ed.pem"))
    rc, out = good.check_config()
    assert rc == 0 and "configuration OK" in out, out

    genkey(k / "small.pem", "rsa1024")
    subprocess.run(["openssl", "pkey", "-in", str(k / "ed.pem"), "-pubout",
                    "-out", str(k / "pub.pem")], check=True, timeout=30)
    lines = ["dkim_key example.test small %s" % (k / "small.pem"),
             "dkim_key example.test pub %s" % (k / "pub.pem"),
             "dkim_key example.test gone %s" % (k / "nowhere.pem"),
             "dkim_key example.test a %s" % (k / "rsa.pem"),
             "dkim_key example.test A %s" % (k / "ed.pem")]
    c = chamois_conf(extra_conf="\n".join(lines) + "\n")
    rc, out = c.check_config()
    assert rc == 1, out
    n = c.conf_line_number
    assert ("chamois.conf:%d: dkim_key: %s is an RSA key of 1024 bits; at least 2048 "
            "are needed" % (n("dkim_key example.test small"), k / "small.pem")) in out, out
    assert ("chamois.conf:%d: dkim_key: %s is a public key"
            % (n("dkim_key example.test pub"), k / "pub.pem")) in out, out
    assert ("chamois.conf:%d: dkim_key: cannot read %s: No such file or directory"
            % (n("dkim_key example.test gone"), k / "nowhere.pem")) in out, out
    assert ("chamois.conf:%d: dkim_key: selector 'A' of example.test is already set on "
            "line %d" % (n("dkim_key example.test A"), n("dkim_key example.test a"))) in out, out
    assert "configuration OK" not in out


def test_daemon_refuses_to_start_with_a_bad_key(chamois_conf, tmp_path):
    """The start runs the same checks as -n."""
    k = tmp_path / "k"
    k.mkdir()
    genkey(k / "small.pem", "rsa1024")
    c = chamois_conf(extra_conf="dkim_key example.test s %s\n" % (k / "small.pem"))
    p = subprocess.run([str(c.binary), "-d", "-f", str(c.conf)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode != 0, p.stdout
    assert b"is an RSA key of 1024 bits" in p.stdout, p.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as the user")
def test_check_warns_of_a_key_the_user_cannot_read(chamois_conf):
    """A DKIM key only root can read: -n and the start warn, naming the
    dkim_key line (SIGHUP could not reload it), and neither refuses."""
    c = chamois_conf(extra_conf="user nobody")
    open_dirs_to_others(c)
    genkey(c.dir / "dkim.pem", "ed25519")
    (c.dir / "dkim.pem").chmod(0o600)
    with open(c.conf, "a") as f:
        f.write("dkim_key example.test s1 dkim.pem\n")
    want = ("chamois.conf:%d: warning: dkim_key: user 'nobody' cannot read %s"
            % (c.conf_line_number("dkim_key"), c.dir / "dkim.pem"))
    rc, out = c.check_config()
    assert rc == 0 and want in out, out
    c.start()
    try:
        assert want in c.log(), c.log()
    finally:
        c.stop()

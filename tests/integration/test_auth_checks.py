"""The inbound checks (checks/checks.h; doc/forwarding.md "Checks"): SPF,
DKIM and DMARC on one message, through the real libraries and a real
dnsmasq serving the records, with messages signed here by dkimpy
(python3-dkim) with an RSA 2048 and an Ed25519 key.

The checks run in tests/checks/auth_check_run.c: a libevent loop, the
resolver (c-ares) pointed at the dnsmasq, the CPU pool; it prints the
Authentication-Results field and what auth_policy answers for a local copy
and for a forwarded one; its -x, -X, -w and -p options free a check with
work in flight, free it from the callback, and run fifty at once.  The
zone (all under .test and 127.in-addr.arpa; the main names):

    example.test    SPF "ip4:127.0.0.1 -all", DMARC p=reject sp=quarantine,
                    keys rsa._domainkey and ed._domainkey
    mail.example.test   SPF for the HELO identity
    none.test       SPF "ip4:127.0.0.1 -all", DMARC p=none
    chamois.test    our own domain (-d), SPF "ip4:127.0.0.9 -all"
    evil.test       nothing
    spf.test        SPF through include, mx and a (several rounds of look-ups);
                    redirect.test redirects to it; void.test has 3 void look-ups
    np.test         DMARC p=none np=reject; exists.np.test exists
    psd.test        DMARC p=reject psd=y (a public suffix domain)
    short._domainkey.example.test   an RSA key of 768 bits
"""

import base64
import shutil
import subprocess

import authres
import dkim
import nacl.signing
import pytest

from harness import ROOT, pick_port
from peers.dns import Dnsmasq

DRIVER = ROOT / "build" / "tests" / "auth_check_run"


@pytest.fixture(scope="module")
def driver():
    p = subprocess.run(["make", "-C", str(ROOT), "build/tests/auth_check_run"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert p.returncode == 0 and DRIVER.exists(), p.stdout.decode(errors="replace")
    return DRIVER


def rsa_key(path, bits=2048):
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:%d" % bits, "-out", str(path)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    der = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE, timeout=60).stdout
    return path.read_bytes(), base64.b64encode(der).decode()


def txt(dns, name, text):
    parts = [text[i:i + 250] for i in range(0, len(text), 250)]
    dns.raw("--txt-record=%s,%s" % (name, ",".join(parts)))


class Zone:
    pass


@pytest.fixture(scope="module")
def zone(tmp_path_factory):
    d = tmp_path_factory.mktemp("zone")
    z = Zone()
    z.rsa_priv, rsa_pub = rsa_key(d / "rsa.pem")
    sk = nacl.signing.SigningKey.generate()
    z.ed_priv = base64.b64encode(bytes(sk))
    ed_pub = base64.b64encode(bytes(sk.verify_key)).decode()
    # 127.in-addr.arpa too: a PTR that is not there is NXDOMAIN, not a failure
    dns = Dnsmasq(d / "dns", local_zones=("test", "127.in-addr.arpa"))
    txt(dns, "example.test", "v=spf1 ip4:127.0.0.1 -all")
    dns.address("example.test", "127.0.0.1")
    txt(dns, "_dmarc.example.test", "v=DMARC1; p=reject; sp=quarantine")
    txt(dns, "rsa._domainkey.example.test", "v=DKIM1; k=rsa; p=" + rsa_pub)
    txt(dns, "ed._domainkey.example.test", "v=DKIM1; k=ed25519; p=" + ed_pub)
    txt(dns, "mail.example.test", "v=spf1 ip4:127.0.0.1 -all")
    dns.address("sub.example.test", "127.0.0.1")
    txt(dns, "none.test", "v=spf1 ip4:127.0.0.1 -all")
    txt(dns, "_dmarc.none.test", "v=DMARC1; p=none")
    txt(dns, "chamois.test", "v=spf1 ip4:127.0.0.9 -all")
    dns.address("evil.test", "127.0.0.66")
    txt(dns, "spf.test", "v=spf1 include:inc.spf.test mx a:host.spf.test -all")
    txt(dns, "inc.spf.test", "v=spf1 ip4:10.0.0.1 -all")
    dns.mx("spf.test", "mx1.spf.test", 10)
    dns.address("mx1.spf.test", "127.0.0.5")
    dns.address("host.spf.test", "127.0.0.6")
    txt(dns, "redirect.test", "v=spf1 redirect=spf.test")
    txt(dns, "void.test", "v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test ip4:127.0.0.7 -all")
    txt(dns, "ptr.test", "v=spf1 ptr -all")
    dns.address("host.ptr.test", "127.0.0.12")          # and its PTR
    txt(dns, "exists.test", "v=spf1 exists:%{i}.ex.exists.test -all")
    dns.address("127.0.0.13.ex.exists.test", "127.0.0.1")
    txt(dns, "longinc.test", "v=spf1 include:%s.test ip4:127.0.0.1 -all" % ("a" * 64))
    txt(dns, "xn--bcher-kva.test", "v=spf1 ip4:127.0.0.1 -all")
    txt(dns, "_dmarc.xn--bcher-kva.test", "v=DMARC1; p=reject")
    txt(dns, "txtonly.test", "site-verification=abc")
    txt(dns, "badspf.test", "v=spf1 ip4:300.1.1.1 -all")
    txt(dns, "_dmarc.np.test", "v=DMARC1; p=none; np=reject")
    dns.address("exists.np.test", "127.0.0.1")
    txt(dns, "_dmarc.psd.test", "v=DMARC1; p=reject; psd=y")
    txt(dns, "other.psd.test", "v=spf1 ip4:127.0.0.1 -all")
    z.short_priv, short_pub = rsa_key(d / "short.pem", 768)
    txt(dns, "short._domainkey.example.test", "v=DKIM1; k=rsa; p=" + short_pub)
    # broken.test goes to a port where nothing answers: SERVFAIL
    dns.raw("--server=/broken.test/127.0.0.1#%d" % pick_port(udp=True))
    txt(dns, "expfail.test", "v=spf1 ip4:127.0.0.1 -all exp=why.broken.test")
    txt(dns, "afail.test", "v=spf1 a:host.broken.test ip4:127.0.0.1 -all")
    txt(dns, "incfail.test", "v=spf1 include:broken.test ip4:127.0.0.1 -all")
    dns.start()
    z.dns = dns
    yield z
    dns.stop()


MESSAGE = (b"From: Alice <alice@example.test>\r\n"
           b"To: bob@chamois.test\r\n"
           b"Subject: a signed message\r\n"
           b"Date: Thu, 03 Dec 2026 06:00:00 +0000\r\n"
           b"Message-ID: <1@example.test>\r\n"
           b"\r\n"
           b"Hello,\r\n"
           b".a line with a dot\r\n"
           b"trailing blanks   \r\n"
           b"\r\n"
           b"bye\r\n")


def signed(z, msg=MESSAGE, domain=b"example.test"):
    """msg with an Ed25519 signature over an RSA one (dkimpy)."""
    heads = [b"from", b"to", b"subject", b"date", b"message-id"]
    s1 = dkim.sign(msg, b"rsa", domain, z.rsa_priv, include_headers=heads,
                   canonicalize=(b"relaxed", b"relaxed"))
    msg = s1 + msg
    s2 = dkim.sign(msg, b"ed", domain, z.ed_priv, include_headers=heads,
                   canonicalize=(b"relaxed", b"relaxed"),
                   signature_algorithm=b"ed25519-sha256")
    return s2 + msg


def run(driver, port, msg, client="127.0.0.1", helo="mail.example.test",
        mail_from="alice@example.test", args=(), chunk=None):
    argv = [str(driver)] + list(args)
    if chunk is not None:
        argv += ["-c", str(chunk)]
    argv += [str(port), client, helo, mail_from]
    p = subprocess.run(argv, input=msg, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, (out, p.stderr.decode(errors="replace"))
    assert "inside auth_check_finish" not in p.stderr.decode(errors="replace")
    field, _, rest = out.partition("\nlocal: ")
    local, _, fwd = rest.partition("\nforward: ")
    return field + "\n", local.strip(), fwd.strip()


def results(field):
    """method -> [result, ...] of a field (unfolded)."""
    flat = " ".join(field.split())
    out = {}
    for part in flat.split(";")[1:]:
        part = part.strip()
        if "=" in part:
            m, _, rest = part.partition("=")
            out.setdefault(m, []).append(rest.split()[0])
    return out


def test_signed_spf_passing_message_passes_all_three(driver, zone):
    field, local, fwd = run(driver, zone.dns.port, signed(zone))
    r = results(field)
    assert r == {"spf": ["pass"], "dkim": ["pass", "pass"], "dmarc": ["pass"]}, field
    assert "header.a=ed25519-sha256" in field and "header.a=rsa-sha256" in field
    assert "smtp.mailfrom=alice@example.test" in field
    assert "header.from=example.test" in field
    assert field.startswith("Authentication-Results: mx.chamois.test;\n\t")
    assert all(len(l) <= 78 for l in field.splitlines()), field
    assert (local, fwd) == ("accept", "accept")


@pytest.mark.parametrize("chunk", [1, 7, 100000])
def test_chunking_does_not_change_the_verdict(driver, zone, chunk):
    field, _, _ = run(driver, zone.dns.port, signed(zone), chunk=chunk)
    assert results(field) == {"spf": ["pass"], "dkim": ["pass", "pass"],
                              "dmarc": ["pass"]}, field


def test_tampered_body_fails_both_signatures_and_dmarc_rejects(driver, zone):
    msg = signed(zone).replace(b"bye\r\n", b"bye!\r\n")
    field, local, fwd = run(driver, zone.dns.port, msg, client="127.0.0.2")
    r = results(field)
    assert r == {"spf": ["fail"], "dkim": ["fail", "fail"], "dmarc": ["fail"]}, field
    assert "body hash" in field
    assert local.startswith("550 5.7.1 "), local
    assert fwd.startswith("550 5.7.1 "), fwd


def test_tampered_header_fails(driver, zone):
    msg = signed(zone).replace(b"Subject: a signed", b"Subject: a changed")
    field, local, _ = run(driver, zone.dns.port, msg, client="127.0.0.2")
    assert results(field)["dkim"] == ["fail", "fail"], field
    assert local.startswith("550 5.7.1 ")


def test_spf_pass_keeps_a_tampered_message_aligned(driver, zone):
    msg = signed(zone).replace(b"bye\r\n", b"bye!\r\n")
    field, local, fwd = run(driver, zone.dns.port, msg)
    assert results(field) == {"spf": ["pass"], "dkim": ["fail", "fail"],
                              "dmarc": ["pass"]}, field
    assert (local, fwd) == ("accept", "accept")


def test_monitor_refuses_nothing_for_dmarc(driver, zone):
    msg = signed(zone).replace(b"bye\r\n", b"bye!\r\n")
    field, local, fwd = run(driver, zone.dns.port, msg, client="127.0.0.2",
                            mail_from="x@evil.test", args=["-m"])
    assert results(field)["dmarc"] == ["fail"], field
    assert local == "accept"
    assert fwd == "accept"      # SPF of evil.test is none, not fail


def test_dns_failure_is_temperror_and_451(driver, zone, tmp_path):
    dead = Dnsmasq(tmp_path / "dead")
    dead.start()
    port = dead.port
    dead.stop()                 # nothing answers on that port now
    field, local, fwd = run(driver, port, signed(zone))
    r = results(field)
    assert r["spf"] == ["temperror"], field
    assert r["dkim"] == ["temperror", "temperror"], field
    assert r["dmarc"] == ["temperror"], field
    assert local.startswith("451 4.7."), local
    assert fwd.startswith("451 4.7."), fwd


def test_null_sender_checks_the_helo_identity(driver, zone):
    field, _, _ = run(driver, zone.dns.port, MESSAGE, mail_from="")
    assert "spf=pass smtp.helo=mail.example.test" in field, field
    field, _, _ = run(driver, zone.dns.port, MESSAGE, mail_from="",
                      client="127.0.0.3")
    assert "spf=fail smtp.helo=mail.example.test" in field, field


def test_ipv6_client_and_address_literal_helo(driver, zone):
    field, _, _ = run(driver, zone.dns.port, MESSAGE, client="::1")
    assert results(field)["spf"] == ["fail"], field      # ip4 only, then -all
    field, _, _ = run(driver, zone.dns.port, MESSAGE, client="::ffff:127.0.0.1")
    assert results(field)["spf"] == ["pass"], field      # IPv4-mapped
    field, _, _ = run(driver, zone.dns.port, MESSAGE, helo="[127.0.0.1]", mail_from="")
    assert results(field)["spf"] == ["none"], field


def test_a_u_label_domain_is_checked_as_its_a_label(driver, zone):
    msg = MESSAGE.replace(b"Alice <alice@example.test>", "Jürgen <j@Bücher.test>".encode())
    field, local, _ = run(driver, zone.dns.port, msg, mail_from="j@bücher.test")
    assert results(field)["spf"] == ["pass"], field
    assert results(field)["dmarc"] == ["pass"], field
    assert "header.from=xn--bcher-kva.test" in field
    field, local, _ = run(driver, zone.dns.port, msg, client="127.0.0.2",
                          mail_from="j@bücher.test")
    assert results(field)["dmarc"] == ["fail"] and "p=reject" in field, field
    assert local.startswith("550 5.7.1 "), local


def test_forged_own_domain_is_refused_locally_and_forwarded(driver, zone):
    msg = MESSAGE.replace(b"From: Alice <alice@example.test>",
                          b"From: The Boss <boss@chamois.test>")
    field, local, fwd = run(driver, zone.dns.port, msg, client="127.0.0.66",
                            helo="evil.test", mail_from="attacker@evil.test",
                            args=["-d", "chamois.test", "-m"])
    assert results(field)["spf"] == ["none"], field
    assert local.startswith("550 5.7.1 ") and "chamois.test" in local, local
    assert fwd.startswith("550 5.7.1 "), fwd
    # the envelope alone claims it too
    field, local, _ = run(driver, zone.dns.port, MESSAGE, client="127.0.0.66",
                          mail_from="boss@chamois.test", args=["-d", "chamois.test"])
    assert results(field)["spf"] == ["fail"], field
    assert local.startswith("550 5.7.1 ") and "chamois.test" in local, local


def test_own_domain_with_spf_pass_goes_through(driver, zone):
    msg = MESSAGE.replace(b"alice@example.test", b"boss@chamois.test")
    field, local, fwd = run(driver, zone.dns.port, msg, client="127.0.0.9",
                            mail_from="boss@chamois.test", args=["-d", "chamois.test"])
    assert results(field)["spf"] == ["pass"], field
    assert (local, fwd) == ("accept", "accept")


def test_subdomain_finds_the_parent_policy_by_the_tree_walk(driver, zone):
    msg = MESSAGE.replace(b"alice@example.test", b"alice@sub.example.test")
    field, local, fwd = run(driver, zone.dns.port, msg, mail_from="x@none.test")
    assert results(field)["dmarc"] == ["fail"], field
    assert "p=quarantine" in field, field           # sp= of example.test
    assert "header.from=sub.example.test" in field
    assert local == "accept"
    assert fwd.startswith("550 5.7.1 "), fwd


def test_relaxed_alignment_through_the_organizational_domain(driver, zone):
    msg = MESSAGE.replace(b"alice@example.test", b"alice@sub.example.test")
    field, local, _ = run(driver, zone.dns.port, msg, mail_from="x@example.test")
    assert results(field) == {"spf": ["pass"], "dkim": ["none"], "dmarc": ["pass"]}, field


def test_dmarc_fail_under_p_none_is_not_forwarded(driver, zone):
    msg = MESSAGE.replace(b"alice@example.test", b"alice@none.test")
    field, local, fwd = run(driver, zone.dns.port, msg, mail_from="x@evil.test")
    assert results(field)["dmarc"] == ["fail"], field
    assert "p=none" in field
    assert local == "accept"
    assert fwd.startswith("550 5.7.1 "), fwd


def test_no_record_anywhere_is_dmarc_none(driver, zone):
    msg = MESSAGE.replace(b"alice@example.test", b"eve@evil.test")
    field, local, fwd = run(driver, zone.dns.port, msg, client="127.0.0.66",
                            mail_from="eve@evil.test")
    assert results(field) == {"spf": ["none"], "dkim": ["none"], "dmarc": ["none"]}, field
    assert (local, fwd) == ("accept", "accept")


def test_two_from_fields_are_no_dmarc_domain(driver, zone):
    msg = b"From: a@example.test\r\n" + MESSAGE
    field, _, _ = run(driver, zone.dns.port, msg, client="127.0.0.2")
    assert results(field)["dmarc"] == ["none"], field
    assert "header.from" not in field


@pytest.mark.parametrize("frm", [b"Team: Alice <alice@example.test>;",
                                 b"Alice <alice@example.test.>"])
def test_a_one_member_group_or_a_final_dot_does_not_escape_dmarc(driver, zone, frm):
    """RFC 6854 lets From be a group: its one member is the From domain;
    a final dot is the same DNS name (common/addrlist.c)."""
    msg = MESSAGE.replace(b"Alice <alice@example.test>", frm)
    field, local, _ = run(driver, zone.dns.port, msg, client="127.0.0.2")
    assert results(field)["dmarc"] == ["fail"] and "p=reject" in field, field
    assert "header.from=example.test" in field
    assert local.startswith("550 5.7.1 "), local


@pytest.mark.parametrize("frm", [b"alice@example.test, bob@example.test",
                                 b"Doe, John <alice@example.test>"])
def test_several_addresses_of_one_domain_are_that_domain(driver, zone, frm):
    """Two addresses of one domain, or a display name's unquoted comma
    (read as a bare name beside the address): DMARC judges that domain."""
    msg = MESSAGE.replace(b"Alice <alice@example.test>", frm)
    field, local, _ = run(driver, zone.dns.port, msg, client="127.0.0.2")
    assert results(field)["dmarc"] == ["fail"] and "p=reject" in field, field
    assert "header.from=example.test" in field
    assert local.startswith("550 5.7.1 "), local


@pytest.mark.parametrize("frm", [b"undisclosed:;", b"alice@[127.0.0.1]"])
def test_a_from_of_no_address_is_no_dmarc_domain(driver, zone, frm):
    msg = MESSAGE.replace(b"Alice <alice@example.test>", frm)
    field, _, _ = run(driver, zone.dns.port, msg, client="127.0.0.2")
    assert results(field)["dmarc"] == ["none"], field
    assert "header.from" not in field


def test_spf_through_include_mx_and_a_in_rounds(driver, zone):
    for client, want in (("127.0.0.5", "pass"), ("127.0.0.6", "pass"),
                         ("127.0.0.8", "fail")):
        field, _, _ = run(driver, zone.dns.port, MESSAGE, client=client,
                          mail_from="x@spf.test")
        assert results(field)["spf"] == [want], (client, field)
    field, _, _ = run(driver, zone.dns.port, MESSAGE, client="127.0.0.6",
                      mail_from="x@redirect.test")
    assert results(field)["spf"] == ["pass"], field


@pytest.mark.parametrize("domain,client,want", [
    ("ptr.test", "127.0.0.12", "pass"), ("ptr.test", "127.0.0.14", "fail"),
    ("exists.test", "127.0.0.13", "pass"), ("exists.test", "127.0.0.14", "fail"),
])
def test_spf_ptr_and_exists_with_a_macro(driver, zone, domain, client, want):
    field, _, _ = run(driver, zone.dns.port, MESSAGE, client=client,
                      mail_from="x@" + domain)
    assert results(field)["spf"] == [want], field


def test_txt_without_spf_is_none_and_a_broken_record_permerror(driver, zone):
    field, _, _ = run(driver, zone.dns.port, MESSAGE, mail_from="x@txtonly.test")
    assert results(field)["spf"] == ["none"], field
    field, _, _ = run(driver, zone.dns.port, MESSAGE, mail_from="x@badspf.test")
    assert results(field)["spf"] == ["permerror"], field


@pytest.mark.parametrize("domain,client,want", [
    ("expfail.test", "127.0.0.2", "fail"),     # exp= failing changes nothing
    ("afail.test", "127.0.0.1", "temperror"),  # a: failing before ip4 matches
    ("incfail.test", "127.0.0.1", "temperror"),
])
def test_a_dns_failure_on_the_way(driver, zone, domain, client, want):
    field, _, _ = run(driver, zone.dns.port, MESSAGE, client=client,
                      mail_from="x@" + domain)
    assert results(field)["spf"] == [want], field


def test_more_than_two_void_lookups_is_permerror(driver, zone):
    field, _, _ = run(driver, zone.dns.port, MESSAGE, client="127.0.0.7",
                      mail_from="x@void.test")
    assert results(field)["spf"] == ["permerror"], field


def test_np_applies_to_a_from_domain_that_does_not_exist(driver, zone):
    msg = MESSAGE.replace(b"alice@example.test", b"a@nosuch.np.test")
    field, local, _ = run(driver, zone.dns.port, msg, mail_from="x@evil.test")
    assert results(field)["dmarc"] == ["fail"] and "p=reject" in field, field
    assert local.startswith("550 5.7.1 "), local
    msg = MESSAGE.replace(b"alice@example.test", b"a@exists.np.test")
    field, local, _ = run(driver, zone.dns.port, msg, mail_from="x@evil.test")
    assert results(field)["dmarc"] == ["fail"] and "p=none" in field, field
    assert local == "accept"


def test_psd_record_makes_the_name_below_the_organizational_domain(driver, zone):
    # other.psd.test and org.psd.test are two organizations under a PSD
    msg = MESSAGE.replace(b"alice@example.test", b"a@x.org.psd.test")
    field, local, _ = run(driver, zone.dns.port, msg, mail_from="b@other.psd.test")
    assert results(field)["spf"] == ["pass"], field
    assert results(field)["dmarc"] == ["fail"], field
    assert local.startswith("550 5.7.1 "), local


def test_short_rsa_key_is_policy(driver, zone):
    heads = [b"from", b"to", b"subject", b"date", b"message-id"]
    msg = dkim.sign(MESSAGE, b"short", b"example.test", zone.short_priv,
                    include_headers=heads, canonicalize=(b"relaxed", b"relaxed")) + MESSAGE
    field, local, _ = run(driver, zone.dns.port, msg, client="127.0.0.2")
    assert results(field)["dkim"] == ["policy"], field
    assert results(field)["dmarc"] == ["fail"], field
    assert local.startswith("550 5.7.1 "), local


def test_rsa_sha1_is_policy(driver, zone):
    heads = [b"from", b"to", b"subject"]
    msg = dkim.sign(MESSAGE, b"rsa", b"example.test", zone.rsa_priv, include_headers=heads,
                    signature_algorithm=b"rsa-sha1") + MESSAGE
    field, _, _ = run(driver, zone.dns.port, msg, client="127.0.0.2")
    assert results(field)["dkim"] == ["policy"], field
    assert "header.a=rsa-sha1" in field
    assert results(field)["dmarc"] == ["fail"], field


def test_a_signature_that_does_not_parse_is_permerror(driver, zone):
    msg = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa\r\n" + MESSAGE
    field, _, _ = run(driver, zone.dns.port, msg, client="127.0.0.2")
    assert results(field)["dkim"] == ["permerror"], field
    assert "header.d=example.test" in field


def test_names_that_cannot_exist_are_no_dns_failure(driver, zone):
    """A label of 64 octets in the From domain, a DKIM d= or an SPF
    include: is no name at all (RFC 1035 2.3.4): never a temperror (which
    would have the sender try again for days), but none or permerror."""
    long = "a" * 64
    msg = (("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s.test; s=rsa;\r\n"
            " h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n" % long)
           .encode() + MESSAGE.replace(b"alice@example.test", ("a@%s.test" % long).encode()))
    field, local, fwd = run(driver, zone.dns.port, msg, mail_from="x@longinc.test")
    r = results(field)
    assert r["dkim"] == ["permerror"], field
    assert r["dmarc"] == ["none"], field
    assert r["spf"] == ["permerror"], field     # include: of no domain (RFC 7208 5.2)
    assert (local, fwd) == ("accept", "accept")


def test_only_eight_signatures_are_checked(driver, zone):
    msg = MESSAGE
    heads = [b"from", b"to", b"subject"]
    for i in range(9):
        msg = dkim.sign(msg, b"ed", b"example.test", zone.ed_priv, include_headers=heads,
                        signature_algorithm=b"ed25519-sha256") + msg
    field, _, _ = run(driver, zone.dns.port, msg, client="127.0.0.2")
    assert results(field)["dkim"] == ["pass"] * 8, field
    assert results(field)["dmarc"] == ["pass"], field


def valgrind(argv):
    """argv under valgrind, when it is installed and the build is not a
    sanitizer one (ASan, which watches the same things, refuses valgrind)"""
    mk = ROOT / "config.mk"
    if shutil.which("valgrind") is None or (mk.exists() and "-fsanitize" in mk.read_text()):
        return argv
    return ["valgrind", "-q", "--error-exitcode=99", "--leak-check=no"] + argv


@pytest.mark.parametrize("wait,sign", [(0, True), (300, True), (300, False)])
def test_free_with_work_in_flight_touches_nothing(driver, zone, wait, sign):
    """auth_check_free right after auth_check_finish: with the look-ups
    still out (wait 0), with the keys in and the verification on the CPU
    pool (wait 300 ms), or with everything in and only the report's event
    pending (unsigned, 300 ms); what comes back later must not touch the
    freed check (valgrind, when installed, says if it does), and the
    callback never runs."""
    argv = valgrind([str(driver), "-x", "-w", str(wait), str(zone.dns.port),
                     "127.0.0.1", "mail.example.test", "alice@example.test"])
    p = subprocess.run(argv, input=signed(zone) if sign else MESSAGE, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, (out, p.stderr.decode(errors="replace"))
    assert out == "freed\n", out


def test_a_long_from_domain_walks_from_its_last_seven_labels(driver, zone):
    msg = MESSAGE.replace(b"alice@example.test", b"a@a.b.c.d.e.f.g.h.example.test")
    field, _, fwd = run(driver, zone.dns.port, msg, mail_from="x@none.test")
    assert results(field)["dmarc"] == ["fail"], field
    assert "p=quarantine" in field, field           # sp= of example.test
    assert fwd.startswith("550 5.7.1 ")


def test_the_field_parses_with_an_independent_parser(driver, zone):
    """python3-authres reads every field we write back to the same
    results, properties and authserv-id (RFC 8601), once unfolded
    (RFC 5322 2.2.3: the line breaks go, the blanks stay)."""
    tampered = signed(zone).replace(b"bye\r\n", b"bye!\r\n")
    for msg, client, mail_from in ((signed(zone), "127.0.0.1", "alice@example.test"),
                                   (tampered, "127.0.0.2", "alice@example.test"),
                                   (MESSAGE, "127.0.0.3", "")):
        field, _, _ = run(driver, zone.dns.port, msg, client=client, mail_from=mail_from)
        h = authres.AuthenticationResultsHeader.parse(field.replace("\n", "").strip())
        assert h.authserv_id == "mx.chamois.test"
        got = [(r.method, r.result) for r in h.results]
        want = [(m, v) for m, vs in results(field).items() for v in vs]
        assert sorted(got) == sorted(want), field
        for r in h.results:
            if r.method == "dkim" and r.result != "none":
                props = {p.type + "." + p.name: p.value for p in r.properties}
                assert props["header.d"] == "example.test", field
                assert props["header.s"] in ("rsa", "ed"), field


def test_free_from_inside_the_callback(driver, zone):
    """The engine may free the check from its callback (checks.h: after
    cb, only auth_check_free); valgrind, when installed, watches."""
    argv = valgrind([str(driver), "-X", str(zone.dns.port), "127.0.0.1",
                     "mail.example.test", "alice@example.test"])
    p = subprocess.run(argv, input=signed(zone), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, (out, p.stderr.decode(errors="replace"))
    assert results(out.partition("\nlocal: ")[0])["dkim"] == ["pass", "pass"], out


def test_many_checks_at_once_agree(driver, zone):
    """Fifty checks of one signed message at once: their look-ups
    interleave on the loop and their verifications run side by side on
    the CPU pool's threads (one libopendkim library); every field is the
    same as a check alone gives."""
    p = subprocess.run([str(driver), "-p", "50", str(zone.dns.port), "127.0.0.1",
                        "mail.example.test", "alice@example.test"], input=signed(zone),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, (out, p.stderr.decode(errors="replace"))
    assert results(out.partition("\nlocal: ")[0])["dkim"] == ["pass", "pass"], out
    assert out.splitlines()[-1] == "parallel: 50, 0 differ", out

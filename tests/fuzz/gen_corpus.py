#!/usr/bin/env python3
"""gen_corpus.py - write the seed corpora of tests/fuzz/corpus/ (run from
anywhere; overwrites the seeds it names, leaves other files alone).  The
envelope seeds come from queue_msg_encode itself: `make -C tests/fuzz
seeds` builds build/gen_envelope and runs this script, which uses it."""
import base64, hashlib, hmac, os, struct, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- fuzz_command: selector octet % 3: 0 MAIL, 1 RCPT, 2 HELO ----
cmd = {
    "mail-plain": "0FROM:<alice@example.org>",
    "mail-null-size": "0FROM:<> SIZE=1234",
    "mail-space-params": "0FROM: <bob@example.com> BODY=8BITMIME SMTPUTF8",
    "mail-utf8": "0FROM:<用户@例子.广告> SMTPUTF8",
    "mail-utf8-no-smtputf8": "0FROM:<jürgen@münchen.example>",
    "mail-route": "0FROM:<@relay.example,@other.example:alice@example.org>",
    "mail-quoted-auth": "`FROM:<\"john doe\"@example.org> AUTH=<> BODY=7BIT",
    "mail-size-huge": "0FROM:<a@b.example> SIZE=99999999999999999999",
    "mail-size-limit": "\x10FROM:<a@b.example> SIZE=2048",
    "mail-unknown-param": "0FROM:<a@b.example> RET=HDRS",
    "rcpt-postmaster": "1TO:<postmaster>",
    "rcpt-plain": "1TO:<fwd@chamois.test>",
    "rcpt-srs": "1TO:<SRS0=abcdef=g3=example.org=alice@chamois.test>",
    "rcpt-literal4": "1TO:<user@[192.0.2.1]>",
    "rcpt-literal6": "1TO:<user@[IPv6:2001:db8::1]>",
    "rcpt-param": "1TO:<a@b.example> NOTIFY=NEVER",
    "helo-name": "2mail.example.org",
    "helo-literal-extra": "2[192.0.2.1] extra words",
    "helo-long": "2" + "a" * 300,
}
for k, v in cmd.items():
    put("fuzz_command", k, v)

# ---- fuzz_address: flags octet (bit 0: ADDR_F_NODOMAIN; rest: a
#      buffer size for addr_key), then the text ----
addrs = {
    "path": "\x40<alice@example.org>",
    "postmaster": "\x01<postmaster>",
    "bare": "\x40alice@example.org",
    "quoted": "\x40<\"quoted\\\"str\\\\ing\"@example.org>",
    "quoted-plain": "\x40<\"alice\"@example.org>",
    "idn": "\x40<bücher@münchen.example>",
    "idn-alabel": "\x40<a.b.c@xn--mnchen-3ya.example>",
    "route": "\x40<@a.example,@b.example:c@d.example>",
    "literal6": "\x40<a@[IPv6:::1]>",
    "literal4": "\x40a@[192.0.2.1]",
    "null": "\x00<>",
    "long-local": "\x40<" + "x" * 240 + "@example.org>",
    "long-label": "\x40<a@" + "b" * 64 + ".example>",
    "dots": "\x40<a..b@example.org>",
    "overlong-utf8": "\x40<\xc0\xaf@example.org>",
}
for k, v in addrs.items():
    put("fuzz_address", k, v.encode("latin-1") if k == "overlong-utf8"
        else v)

# ---- fuzz_dataphase: n, n chunk sizes, then the octets after DATA ----
def dp(name, msg, sizes=b""):
    if isinstance(msg, str):
        msg = msg.encode("utf-8")
    put("fuzz_dataphase", name, bytes([len(sizes)]) + sizes + msg)

plain = ("From: Alice <alice@example.org>\r\nTo: fwd@chamois.test\r\n"
         "Subject: hello\r\n\r\nHello.\r\n..a stuffed line\r\n.\r\n")
dp("plain", plain)
dp("plain-chunked", plain, bytes([1, 5, 64, 2]))
dp("empty-message", ".\r\n")
dp("dot-stuffing", "a\r\n..\r\n...\r\n.x\r\n.\r\n")
dp("after-end", "x\r\n.\r\nMAIL FROM:<evil@example.org>\r\n")
dp("smuggle-lf-dot-lf", "x\n.\nMAIL FROM:<evil@example.org>\r\n")
dp("smuggle-crlf-dot-lf", "x\r\n.\nRCPT TO:<victim@chamois.test>\r\n")
dp("smuggle-lf-dot-crlf", "x\n.\r\nDATA\r\n")
dp("smuggle-cr-dot-cr", "x\r.\rQUIT\r\n", bytes([1]))
dp("smuggle-dot-cr-x", "x\r\n.\rX\r\n.\r\n")
dp("received-loop",
   "Received: from a.example ([192.0.2.9])\r\n\tby mx.chamois.test "
   "(chamois) with ESMTP id 1.1\r\n\tfor <loop@chamois.test>;\r\n"
   "\tMon, 1 Jan 2024 00:00:00 +0000\r\nDelivered-To: <demo@chamois.test>"
   "\r\nDelivered-To: other@chamois.test\r\nSubject: Grüße\r\n\r\nbody\r\n"
   ".\r\n", bytes([3, 7, 11]))
dp("long-line", "Subject: x\r\n\r\n" + "y" * 1200 + "\r\n.\r\n", bytes([0]))
dp("folded-header", "Subject: a\r\n b\r\n\tc\r\nX: " + "z" * 1100 +
   "\r\n\r\n.\r\n")
dp("split-crlf", "a\r\nb\r\n.\r\n", bytes([2, 1, 1, 1]))
dp("auth-results-held",
   "Authentication-Results: mx.chamois.test;\r\n\tspf=pass smtp.mailfrom=a@b\r\n"
   "authentication-results : other.example; dkim=fail\r\nAuthentication-Results-X: y"
   "\r\nSubject: x\r\n\r\nAuthentication-Results: in the body\r\n.\r\n",
   bytes([1, 9, 23]))
dp("auth-results-long", "Authentication-Results: a;\r\n" +
   "\tdkim=pass (%s)\r\n" % ("c" * 900) * 10 + "\r\n.\r\n", bytes([0, 13]))

# ---- fuzz_srs: mode octet, days octet, text ----
SECRET = b"fuzz-secret-0123456789abcdef"
B32 = "abcdefghijklmnopqrstuvwxyz234567"
NOW = 1700000000


def tt(now):
    day = (now // 86400) % 1024
    return B32[day >> 5] + B32[day & 31]


def srs_hash(t, domain, local):
    msg = ("%s=%s=%s" % (t, domain, local)).lower().encode()
    md = hmac.new(SECRET, msg, hashlib.sha256).digest()
    bits = int.from_bytes(md[:4], "big")
    return "".join(B32[(bits >> (27 - 5 * i)) & 31] for i in range(6))


def srs_local(domain, local):
    t = tt(NOW)
    return "SRS0=%s=%s=%s=%s" % (srs_hash(t, domain, local), t, domain, local)

srs = {
    "rev-valid": b"\x00\x00" + srs_local("example.org", "alice").encode(),
    "rev-valid-upper": b"\x00\x03" + srs_local("example.org", "Bob.Smith")
        .upper().encode(),
    "rev-valid-eq-in-local": b"\x00\x01" + srs_local("example.org",
        "a=b=c").encode(),
    "rev-quoted": b"\x00\x00\"" + srs_local("[192.0.2.1]", "john doe")
        .encode() + b"\"",
    "rev-stale": b"\x00\x40" + srs_local("example.org", "alice").encode(),
    "rev-bad-hash": b"\x00\x00SRS0=aaaaaa=g3=example.org=alice",
    "rev-syntax": b"\x00\x00SRS0=abc=g3=example.org",
    "rev-not-srs": b"\x00\x00SRS1=abcdef=g3=example.org=alice",
    "rt-plain": b"\x01\x05alice@example.org",
    "rt-quoted": b"\x03\x00\"john doe\"@example.org",
    "rt-literal": b"\x05\x10user@[192.0.2.1]",
    "rt-literal6": b"\x07\x02user@[IPv6:2001:db8::1]",
    "rt-utf8": "\x01\x00bücher@münchen.example".encode(),
    "rt-escapes": b"\x01\x00\"a\\\"b\\\\c\"@example.org",
    "rt-long": b"\x07\x00" + b"x" * 180 + b"@example.org",
}
for k, v in srs.items():
    put("fuzz_srs", k, v)

# ---- fuzz_reply: flags octet (bit 0 SMTPUTF8), then remote lines ----
replies = {
    "ok": "\x00250 2.1.0 Ok\r\n",
    "ehlo": "\x00250-mx.example.org Hello\r\n250-PIPELINING\r\n"
            "250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
    "gmail-550": "\x01550-5.1.1 The email account that you tried to reach "
                 "does\r\n550-5.1.1 not exist.\r\n550 5.1.1 https://"
                 "support.example/mail/?p=NoSuchUser x1si\r\n",
    "utf8-text": "\x01452 4.2.2 Mailbox voll: Grüße\r\n",
    "utf8-text-ascii-client": "\x02452 4.2.2 Mailbox voll: Grüße\r\n",
    "no-esc": "\x00421 shutting down\r\n",
    "bare-code": "\x00354\r\n",
    "code-mismatch": "\x00250-a\r\n251 b\r\n250 ok\r\n",
    "controls": "\x00550 5.7.1 bad\x01\x1b[31m\x7f text\rmore\r\n",
    "esc-odd": "\x00250 2..1 odd\r\n250 2.1234567890123 long\r\n",
    "bad-class": "\x00650 6.0.0 what\r\n199 x\r\n",
    "long": "\x00" + "".join("250-" + "x" * 500 + "\r\n" for _ in range(9))
            + "250 end\r\n",
    "lf-only": "\x00250-first\n250 second\n",
}
for k, v in replies.items():
    put("fuzz_reply", k, v)

# ---- fuzz_config: config, "%%mailboxes" table, "%%aliases" table ----
base_conf = ("hostname mx.chamois.test\nlisten mx 127.0.0.1:2525\n"
             "listen mx [::1]:2525\ndomains chamois.test example.org\n"
             "mailboxes mailboxes\naliases aliases\nmaildir_root maildir\n"
             "queue_dir queue\n")
tables = ("%%mailboxes\ndemo@chamois.test\nalice@example.org\n"
          "%%aliases\nhello@chamois.test: demo@chamois.test\n"
          "fwd@chamois.test: someone@example.net\n"
          "list@example.org: demo@chamois.test, alice@example.org, "
          "hello@chamois.test\n")
confs = {
    "dev": base_conf + "tls_cert cert.pem\ntls_key key.pem\n"
           "dns_server 127.0.0.1:5353\n# comment\n" + tables,
    "full": base_conf + "postmaster demo@chamois.test\n"
            "max_message_size 10m\nmax_recipients 50\n"
            "forward_rcpt_budget 90s\nforward_data_budget 3m\n"
            "queue_lifetime 5d\ndelay_warning_time 4h\n"
            "srs_secret 0123456789abcdef0123\nsrs_secret "
            "fedcba9876543210fedc\nremote_port 2526\nworker_threads 4\n"
            "max_messages_per_hour 0\nuser chamois\n" + tables,
    "submission": base_conf + "listen submission [::]:587\n"
                  "listen submissions 0.0.0.0:465\ntls_cert /c.pem\n"
                  "tls_key /k.pem\nsasl_db /etc/sasldb2\n" + tables,
    "idn": base_conf.replace("example.org", "münchen.example") +
           "%%mailboxes\njürgen@münchen.example\nPostmaster@chamois.test\n",
    "alias-cycle": base_conf + "%%mailboxes\ndemo@chamois.test\n%%aliases\n"
                   "a@chamois.test: b@chamois.test\nb@chamois.test: "
                   "a@chamois.test\n",
    "alias-two-external": base_conf + "%%mailboxes\ndemo@chamois.test\n"
                          "%%aliases\nx@chamois.test: a@example.net, "
                          "b@example.net\n",
    "problems": "hostname [1.2.3.4]\nlisten web 1.2.3.4:80\nlisten mx "
                "1.2.3.4\nmax_message_size 1k\nunknown_key 1\n"
                "domains chamois.test\ndomains again.test\nsrs_secret short\n"
                "queue_lifetime 10y\n",
    "plus-tag": base_conf + "%%mailboxes\ndemo@chamois.test\n"
                "demo+lists@chamois.test\n",
}
for k, v in confs.items():
    put("fuzz_config", k, v)

# ---- fuzz_envelope: records from queue_msg_encode (gen_envelope) ----
gen = os.path.join(HERE, "build", "gen_envelope")
if os.path.exists(gen):
    os.makedirs(os.path.join(CORPUS, "fuzz_envelope"), exist_ok=True)
    subprocess.run([gen, os.path.join(CORPUS, "fuzz_envelope")], check=True)
else:
    print("gen_corpus: no build/gen_envelope (make -C tests/fuzz seeds); "
          "envelope seeds left as they are", file=sys.stderr)

# ---- fuzz_dns: flags, domain, then answers (status, u16 len, octets) ----
def name(n):
    out = b""
    for label in n.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def dns_msg(qname, qtype, answers, rcode=0, compress=True):
    """answers: (type, ttl, rdata) for qname"""
    hdr = struct.pack(">HHHHHH", 0x1234, 0x8180 | rcode, 1, len(answers),
                      0, 0)
    q = name(qname) + struct.pack(">HH", qtype, 1)
    body = b""
    for typ, ttl, rdata in answers:
        owner = b"\xc0\x0c" if compress else name(qname)
        body += owner + struct.pack(">HHIH", typ, 1, ttl, len(rdata)) + rdata
    return hdr + q + body


def mx(pref, host):
    return struct.pack(">H", pref) + name(host)


def ans(status, data):
    return bytes([status]) + struct.pack(">H", len(data)) + data


def dns_seed(fname, flags, domain, answers):
    d = domain.encode()
    put("fuzz_dns", fname, bytes([flags, len(d)]) + d + b"".join(answers))

A, AAAA, MX = 1, 28, 15
mx2 = dns_msg("example.org", MX, [(MX, 300, mx(10, "mx1.example.org")),
                                  (MX, 600, mx(20, "mx2.example.org"))])
a1 = dns_msg("mx1.example.org", A, [(A, 120, bytes([192, 0, 2, 1])),
                                    (A, 120, bytes([192, 0, 2, 2]))])
aaaa1 = dns_msg("mx1.example.org", AAAA,
                [(AAAA, 60, bytes.fromhex("20010db8" + "0" * 23 + "1"))])
a2 = dns_msg("mx2.example.org", A, [(A, 3600, bytes([198, 51, 100, 7]))])
dns_seed("two-mx", 0, "example.org",
         [ans(0, mx2), ans(0, aaaa1), ans(0, a1), ans(3, b""), ans(0, a2)])
dns_seed("two-mx-reordered", 4, "Example.ORG.",
         [ans(0x08, mx2), ans(0x00, a1), ans(0x10, aaaa1), ans(3, b""),
          ans(0, a2)])
dns_seed("two-mx-inline", 2, "example.org",
         [ans(0, mx2), ans(0, aaaa1), ans(0, a1), ans(3, b""), ans(0, a2)])
dns_seed("null-mx", 0, "example.org",
         [ans(0, dns_msg("example.org", MX, [(MX, 300, mx(0, "."))]))])
dns_seed("nxdomain", 0, "nowhere.example", [ans(4, b"")])
dns_seed("servfail", 0, "example.org", [ans(5, b"")])
dns_seed("no-mx-implicit", 0, "example.org",
         [ans(3, b""), ans(0, dns_msg("example.org", AAAA, [])),
          ans(0, dns_msg("example.org", A, [(A, 30, bytes([192, 0, 2, 5]))]))])
dns_seed("cname-only", 0, "example.org",
         [ans(0, dns_msg("example.org", MX, [(5, 300, name("alias.example"))])),
          ans(3, b""), ans(0, a1)])
dns_seed("uncompressed", 0, "example.org",
         [ans(0, dns_msg("example.org", MX, [(MX, 0, mx(5, "mx1.example.org"))],
                         compress=False)), ans(0, a1), ans(0, aaaa1)])
dns_seed("addr-timeout", 0, "example.org", [ans(0, mx2), ans(6, b"")])
dns_seed("cancel", 1, "example.org", [ans(0, mx2), ans(0, a1)])
dns_seed("bad-domain", 0, "exa mple..org", [])
dns_seed("truncated", 0, "example.org", [ans(0, mx2[:40])])


# ---- fuzz_authres: mode octet (bit 0: also write a field), then text ----
authres = {
    "ours": b"\x00Authentication-Results: mx.chamois.test; spf=pass smtp.mailfrom=a@example.test",
    "ours-folded-comments": b"\x01Authentication-Results:\r\n\t(c (nested) \\) x)\r\n"
                            b" \"mx.chamois.test\" 1 (v); none",
    "other": b"\x00Authentication-Results: mx.other.test;\n\tdkim=pass header.d=example.test",
    "unclosed": b"\x01Authentication-Results: (mx.chamois.test; none",
    "from-display": b"\x00\"Boss <b@x.test>, y\" (c) <boss@Chamois.TEST>",
    "from-group": b"\x01friends: a@example.test, b@example.test;",
    "dkim-tags": b"\x00 v=1; a=rsa-sha256; d=example.test;\r\n\ts=sel; b=ab\r\n cd; bh=x",
    "field-quotes": b"\x03\"a\\\"b\"@exa(mple).test (why (nested))",
}
for k, v in authres.items():
    put("fuzz_authres", k, v)


# ---- fuzz_spf: "CLIENT DOMAIN", then "NAME TYPE DATA" lines ----
spf_seeds = {
    'fail-exp': '2001:db8::1 example.org\nexample.org TXT v=spf1 a:fail.example.org -all exp=why.example.org\nfail.example.org FAIL\nwhy.example.org TXT %{i} is not one of %{d}s hosts\n',
    'include-loop': '192.0.2.9 loop.example\nloop.example TXT v=spf1 include:loop.example -all\n',
    'many-mechanisms': '192.0.2.1 example.org\nexample.org TXT v=spf1 include:_spf.example.org mx a:%{d}.x.example.org ptr exists:%{ir}.%{v}.e.example.org redirect=r.example.org\n_spf.example.org TXT v=spf1 ip4:10.0.0.0/8 ip6:2001:db8::/32 ~all\nexample.org MX 10 mx.example.org\nmx.example.org A 192.0.2.1\n1.2.0.192.in-addr.arpa PTR mx.example.org\n',
    'voids': '192.0.2.9 v.example\nv.example TXT v=spf1 a:n1.v.example a:n2.v.example a:n3.v.example mx:n4.v.example ?all\nn2.v.example NODATA\n',
}
for k, v in spf_seeds.items():
    put("fuzz_spf", k, v)


# ---- fuzz_dmarc: "FROM SPF SPF-DOMAIN DKIM DKIM-DOMAIN EXISTS", then "NAME TEXT" ----
dmarc_seeds = {
    "pass-relaxed": "mail.example.org 1 example.org 2 bounce.example.org 1\n"
                    "example.org v=DMARC1; p=reject; sp=quarantine; adkim=s; rua=mailto:d@example.org\n",
    "psd": "a.b.psd.example 1 c.psd.example 0 x 1\npsd.example v=DMARC1; p=reject; psd=y\n",
    "np-no-p": "gone.example.net 2 x.net 2 x.net 0\nexample.net v=DMARC1; rua=mailto:a@x.net; np=reject; t=y\n",
    "two-records": "example.com 1 example.com 0 x 1\nexample.com v=DMARC1; p=none\nexample.com v=DMARC1; p=reject\n",
    "fail-walk": "a.b.c.d.e.f.g.h.i.example.com 5 a.example.com 5 b.example.com 1\n"
                 "h.i.example.com !FAIL\nexample.com v=DMARC1; p=quarantine; pct=10; psd=n\n",
}
for k, v in dmarc_seeds.items():
    put("fuzz_dmarc", k, v)


# ---- fuzz_dkim: the key record every selector gets, then the message ----
# (an Ed25519 key made from a fixed seed, signed by dkimpy)
dkim_seeds = {'ed25519-pass': 'v=DKIM1; k=ed25519; p=iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=\nDKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.test;\n i=@example.test; q=dns/txt; s=ed; t=1796278569; h=from : to : subject\n : date; bh=zE+VV0w215ckXH6MSCLlMX/UQrEGslQBBz5+jXQ7ORQ=;\n b=yjdN2ziPs/Te7xuWgLyx4qFJlW/rDqweovb0jOBvhOlwsLS56sxqL3JdGK0SHJsCVmQlE\n S4JkiVXwYZbkurfDg==\nFrom: Alice <alice@example.test>\nTo: bob@chamois.test\nSubject: seed\nDate: Thu, 03 Dec 2026 06:00:00 +0000\n\nHello,\n.dot\ntrailing   \n\n', 'ed25519-tampered': 'v=DKIM1; k=ed25519; p=iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=\nDKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.test;\n i=@example.test; q=dns/txt; s=ed; t=1796278569; h=from : to : subject\n : date; bh=zE+VV0w215ckXH6MSCLlMX/UQrEGslQBBz5+jXQ7ORQ=;\n b=yjdN2ziPs/Te7xuWgLyx4qFJlW/rDqweovb0jOBvhOlwsLS56sxqL3JdGK0SHJsCVmQlE\n S4JkiVXwYZbkurfDg==\nFrom: Alice <alice@example.test>\nTo: bob@chamois.test\nSubject: seed\nDate: Thu, 03 Dec 2026 06:00:00 +0000\n\nHallo,\n.dot\ntrailing   \n\n', 'key-nx': '!NX\nDKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.test;\n i=@example.test; q=dns/txt; s=ed; t=1796278569; h=from : to : subject\n : date; bh=zE+VV0w215ckXH6MSCLlMX/UQrEGslQBBz5+jXQ7ORQ=;\n b=yjdN2ziPs/Te7xuWgLyx4qFJlW/rDqweovb0jOBvhOlwsLS56sxqL3JdGK0SHJsCVmQlE\n S4JkiVXwYZbkurfDg==\nFrom: Alice <alice@example.test>\nTo: bob@chamois.test\nSubject: seed\nDate: Thu, 03 Dec 2026 06:00:00 +0000\n\nHello,\n.dot\ntrailing   \n\n', 'key-fail': '!FAIL\nDKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.test;\n i=@example.test; q=dns/txt; s=ed; t=1796278569; h=from : to : subject\n : date; bh=zE+VV0w215ckXH6MSCLlMX/UQrEGslQBBz5+jXQ7ORQ=;\n b=yjdN2ziPs/Te7xuWgLyx4qFJlW/rDqweovb0jOBvhOlwsLS56sxqL3JdGK0SHJsCVmQlE\n S4JkiVXwYZbkurfDg==\nFrom: Alice <alice@example.test>\nTo: bob@chamois.test\nSubject: seed\nDate: Thu, 03 Dec 2026 06:00:00 +0000\n\nHello,\n.dot\ntrailing   \n\n', 'revoked': 'v=DKIM1; k=ed25519; p=\nDKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.test;\n i=@example.test; q=dns/txt; s=ed; t=1796278569; h=from : to : subject\n : date; bh=zE+VV0w215ckXH6MSCLlMX/UQrEGslQBBz5+jXQ7ORQ=;\n b=yjdN2ziPs/Te7xuWgLyx4qFJlW/rDqweovb0jOBvhOlwsLS56sxqL3JdGK0SHJsCVmQlE\n S4JkiVXwYZbkurfDg==\nFrom: Alice <alice@example.test>\nTo: bob@chamois.test\nSubject: seed\nDate: Thu, 03 Dec 2026 06:00:00 +0000\n\nHello,\n.dot\ntrailing   \n\n', 'no-signature': 'v=DKIM1; k=ed25519; p=iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=\nFrom: Alice <alice@example.test>\nTo: bob@chamois.test\nSubject: seed\nDate: Thu, 03 Dec 2026 06:00:00 +0000\n\nHello,\n.dot\ntrailing   \n\n', 'broken-signature': 'v=DKIM1; k=ed25519; p=iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=\nDKIM-Signature: v=1; a=rsa-sha256; d=Example.TEST; s=ed; h=from; bh=; b=\nFrom: Alice <alice@example.test>\nTo: bob@chamois.test\nSubject: seed\nDate: Thu, 03 Dec 2026 06:00:00 +0000\n\nHello,\n.dot\ntrailing   \n\n'}
for k, v in dkim_seeds.items():
    put("fuzz_dkim", k, v)


# ---- fuzz_milter: what a milter sends, packet by packet ----
def mpkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


milter_seeds = {
    "optneg": mpkt(b"O", struct.pack(">III", 6, 0x31, 0x1fffff)),
    "continue-accept": mpkt(b"c") + mpkt(b"p") + mpkt(b"a"),
    "reply-one": mpkt(b"y", b"554 5.7.1 Spam is not welcome here\0"),
    "reply-multi": mpkt(b"y", b"451-4.7.1 first\r\n451 4.7.1 second\0"),
    "reply-no-esc": mpkt(b"y", b"550 go away\0"),
    "reply-bad": mpkt(b"y", b"250 ok\0"),
    "add-insert-change": mpkt(b"h", b"X-Spam\0yes\0")
        + mpkt(b"i", struct.pack(">I", 0) + b"DKIM-Signature\0 v=1;\r\n\tb=x\0")
        + mpkt(b"m", struct.pack(">I", 2) + b"X-Two\0\0")
        + mpkt(b"m", struct.pack(">I", 1) + b"Subject\0[spam] hello\0"),
    "quarantine": mpkt(b"q", b"held\0") + mpkt(b"a"),
    "value-newlines": mpkt(b"h", b"X-Evil\0a\nFrom: forged\n\nbody\0"),
    "short": b"\0\0\0\x05h",
}
for k, v in milter_seeds.items():
    put("fuzz_milter", k, v)

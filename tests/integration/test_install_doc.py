"""doc/install.md's commands that need the outside world, run on loopback.

tests/fresh/run.sh runs the walkthrough's ```sh blocks on a pristine
Debian 12 (tests/fresh/doc-commands.py); a block right after
`<!-- run by: test_install_doc.py -->` is this file's instead, because it
needs published DNS or another mail server.  Everything is taken from the
doc as written, with only the server's address and the paths of the test
rewritten:

* the zone of section 3, served by dnsmasq (peers/dns.py), and the doc's
  four `dig` lines with `@127.0.0.1 -p PORT` added;
* the outward `swaks` of section 5 against a chamoisd with install.md's
  settings (a submission listener, the sasldb made by the doc's
  `saslpasswd2` line), elsewhere.example's MX an aiosmtpd remote
  (peers/remote.py), and the doc's `journalctl | grep` run on the log file
  the harness keeps;
* section 7's block: the sed on conf.d/10-auth.conf, local.conf, the
  `doveadm pw` line, `doveadm auth test` and `curl`, with a private
  Dovecot (peers/dovecot.py's base_dir, state_dir, log) on a copy of
  Debian's /etc/dovecot, over the Maildirs of a chamoisd that runs as the
  same unprivileged system user, read over IMAPS;
* then section 7's LMTP and auth blocks on top: their conf.d files (the
  sockets' user that account), the printf and sed on chamois.conf and
  `chamoisd -n`; mail delivered through Dovecot's LMTP and a submission
  login with Dovecot's password.
"""

import grp
import imaplib
import importlib.util
import os
import pwd
import re
import shlex
import shutil
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT, crlf, free_port, make_cert, open_dirs_to_others, unverified_context, wait_until
from peers.dns import Dnsmasq, DnsmasqUnavailable
from peers.dovecot import Dovecot
from peers.postfix import PeerUnavailable, ensure_mail_owner
from peers.remote import fwd_env  # noqa: F401
from peers.sasl import submission_daemon

DOC = ROOT / "doc" / "install.md"
DOC_COMMANDS = ROOT / "tests" / "fresh" / "doc-commands.py"
ME = Path(__file__).name
ALICE, PASSWORD = "alice@example.org", "alice-password"
FRIEND = "friend@elsewhere.example"
SASLDB = "/etc/chamois/sasldb2"
DOVECOT_USERS = "/etc/dovecot/users"
MAILDIRS = "/var/mail/chamois"

# The blocks doc/install.md leaves to this file, by what they contain; a
# marked block that matches none (or two) fails the first test.
MARKED = {"dig": "dig +short", "outward swaks": FRIEND}


# --------------------------------------------------------------------------
# the doc


def _doc_commands():
    spec = importlib.util.spec_from_file_location("doc_commands", DOC_COMMANDS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def doc_text():
    return DOC.read_text(encoding="utf-8")


def sh_blocks():
    """[(line, runner, body)] of install.md, as doc-commands.py sees them."""
    return list(_doc_commands().blocks(doc_text()))


def marked_block(name):
    needle = MARKED[name]
    found = [b for l, r, b in sh_blocks() if r == ME and needle in b]
    assert len(found) == 1, "doc/install.md: %d blocks for %s marked run by %s" % (
        len(found), name, ME)
    return found[0]


def block_with(needle):
    """The one sh block (any runner) that contains needle."""
    found = [b for l, r, b in sh_blocks() if needle in b]
    assert len(found) == 1, "doc/install.md: %d sh blocks contain %r" % (len(found), needle)
    return found[0]


def commands(body):
    """The shell commands of a block: lines joined where one ends in `\\`
    or `|`, and a heredoc (<<'EOF' ... EOF) kept with its command."""
    out, cur, lines = [], "", body.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        cur += line + "\n"
        m = re.search(r"<<-?'?(\w+)'?", line)
        if m:
            while i < len(lines) and lines[i].strip() != m.group(1):
                cur += lines[i] + "\n"
                i += 1
            cur += lines[i] + "\n"
            i += 1
        if line.rstrip().endswith(("\\", "|")):
            continue
        if cur.strip():
            out.append(cur)
        cur = ""
    return out


def command_with(body, needle):
    found = [c for c in commands(body) if needle in c]
    assert len(found) == 1, "%d commands with %r in:\n%s" % (len(found), needle, body)
    return found[0]


def replace_once(text, old, new):
    assert text.count(old) == 1, "expected %r once in:\n%s" % (old, text)
    return text.replace(old, new)


def need(program, package):
    if not shutil.which(program):
        pytest.skip("%s missing (apt-get install %s; .ci/deps.sh)" % (program, package))


def sh(command, **kw):
    return subprocess.run(["sh", "-c", command], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=60, **kw)


def sh_ok(command):
    p = sh(command)
    assert p.returncode == 0, (command, p.returncode, p.stdout, p.stderr)
    return p.stdout


def zone_records():
    """[(name, type, data)] of section 3's ```zone block."""
    m = re.search(r"^```zone\n(.*?)^```", doc_text(), re.S | re.M)
    assert m, "doc/install.md has no ```zone block"
    records = []
    for line in m.group(1).splitlines():
        if line.strip() and not line.lstrip().startswith(";"):
            name, rtype, data = line.split(None, 2)
            records.append((name, rtype, data.strip()))
    return records


def serve_zone(dns, records):
    """Declare records on a Dnsmasq (before start).  TXT goes through a
    config file, where dnsmasq reads a quoted string as one (a command
    line splits it at commas and keeps the quotes).  A and AAAA are
    `address=` (no PTR of its own, unlike host-record): the PTR comes
    from the zone only."""
    conf = []
    for name, rtype, data in records:
        name = name.rstrip(".")
        if rtype == "MX":
            pref, target = data.split()
            conf.append("mx-host=%s,%s,%s" % (name, target.rstrip("."), pref))
        elif rtype in ("A", "AAAA"):
            conf.append("address=/%s/%s" % (name, data))
        elif rtype == "TXT":
            assert re.fullmatch(r'"[^"\\]*"', data), "TXT not one plain string: %r" % data
            conf.append("txt-record=%s,%s" % (name, data))
        elif rtype == "PTR":
            conf.append("ptr-record=%s,%s" % (name, data.rstrip(".")))
        else:
            raise AssertionError("record type %s: teach serve_zone" % rtype)
    path = dns.dir / "zone.conf"
    path.write_text("".join(l + "\n" for l in conf))
    dns.raw("--conf-file=%s" % path)


# --------------------------------------------------------------------------
# 1. every block has a runner


def test_every_block_has_a_runner():
    p = subprocess.run([sys.executable, str(DOC_COMMANDS), "--list", str(DOC)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    listed = [l.split(None, 1) for l in p.stdout.splitlines()]
    bodies = {line: body for line, _, body in sh_blocks()}
    assert listed and sorted(int(l) for l, _ in listed) == sorted(bodies), p.stdout
    mine = {}
    for line, runner in listed:
        if runner == "tests/fresh/run.sh":
            assert (ROOT / runner).is_file(), runner
            continue
        assert (ROOT / "tests" / "integration" / runner).is_file(), \
            "install.md line %s: runner %s is not in tests/integration/" % (line, runner)
        if runner == ME:
            names = [n for n, needle in MARKED.items() if needle in bodies[int(line)]]
            assert len(names) == 1, \
                "install.md line %s is marked run by %s, which knows it as %r:\n%s" % (
                    line, ME, names, bodies[int(line)])
            assert names[0] not in mine, "two blocks are the %s block" % names[0]
            mine[names[0]] = line
    assert sorted(mine) == sorted(MARKED), "blocks of this file not marked: %s" % (
        sorted(set(MARKED) - set(mine)))


# --------------------------------------------------------------------------
# 2. DNS


def test_dns_block_answers_as_the_doc_says(tmp_path):
    need("dig", "bind9-dnsutils")
    records = zone_records()
    dns = Dnsmasq(tmp_path / "dns", local_zones=("example.org", "in-addr.arpa"))
    serve_zone(dns, records)
    try:
        dns.start()
    except DnsmasqUnavailable as e:
        pytest.skip(str(e))
    try:
        lines = [c.strip() for c in commands(marked_block("dig"))]
        assert len(lines) == 4 and all(l.startswith("dig ") for l in lines), lines
        answers = [sh_ok("%s @127.0.0.1 -p %d" % (l, dns.port)).strip() for l in lines]
    finally:
        dns.stop()
    print("dnsmasq log:\n" + dns.log()[-3000:])

    # "They answer `10 mail.example.org.`, the SPF record, the DMARC record
    # and `mail.example.org.`."
    m = re.search(r"^They answer (.*?)\.\n\n", doc_text(), re.S | re.M)
    assert m, "the sentence after the dig block is gone"
    said = re.findall(r"`([^`]+)`", m.group(1))
    assert len(said) == 2 and "SPF" in m.group(1) and "DMARC" in m.group(1), m.group(1)
    txt = {n: d for n, t, d in records if t == "TXT"}
    assert answers == [said[0], txt["example.org."], txt["_dmarc.example.org."], said[1]], \
        answers
    assert txt["example.org."].startswith('"v=spf1 ')
    assert txt["_dmarc.example.org."].startswith('"v=DMARC1;')


# --------------------------------------------------------------------------
# 3. sending out through submission


def test_outward_swaks_block_reaches_the_remote(fwd_env, tmp_path):
    need("swaks", "swaks libnet-ssleay-perl")
    need("saslpasswd2", "sasl2-bin")
    block = marked_block("outward swaks")
    swaks, grep = commands(block)
    assert swaks.lstrip().startswith("swaks ") and grep.lstrip().startswith("journalctl "), block

    work = tmp_path / "sasl"
    work.mkdir()
    db = work / "sasldb2"
    sh_ok(replace_once(command_with(block_with("saslpasswd2 "), "saslpasswd2 "),
                       SASLDB, str(db)))

    fwd_env.dns.local_zones.append("elsewhere.example")
    remote = fwd_env.remote("elsewhere.example")
    sub = submission_daemon(fwd_env.daemon, work, sasl_db=db, hostname="mail.example.org",
                            domains=("example.org",), mailboxes=(ALICE,))
    d = sub.d

    server = re.search(r"--server (\S+)", swaks)
    assert server and server.group(1) == "mail.example.org:587", swaks
    p = sh(replace_once(swaks, server.group(0), "--server %s:%d" % (sub.host, sub.port)))
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr, d.log()[-3000:])

    wait_until(lambda: remote.delivered(), 30, what="delivery at elsewhere.example")
    tx = remote.delivered()[0]
    assert tx.mail_from == ALICE and tx.accepted == [FRIEND], (tx.mail_from, tx.accepted)
    assert len(remote.delivered()) == 1

    # The doc reads the journal (chamoisd runs under systemd there); here
    # its stderr is the log file the harness keeps, so the doc's grep reads
    # that file in journalctl's place.
    journal = "journalctl -u chamoisd --no-pager"
    assert grep.lstrip().startswith(journal + " | grep "), grep
    from_log = replace_once(grep, journal, "cat %s" % shlex.quote(str(d.log_path)))

    def sent_line():
        p = sh(from_log)
        return [l for l in p.stdout.splitlines() if " status=sent" in l]
    lines = wait_until(sent_line, 20, what="the status=sent line for %s" % FRIEND)
    assert len(lines) == 1 and "to=<%s>" % FRIEND in lines[0], lines
    assert re.search(r" relay=\S+\[127\.0\.0\.\d+\]:\d+ ", lines[0]), lines


# --------------------------------------------------------------------------
# 4. Dovecot over the same Maildirs


DEBIAN_CONF = Path("/etc/dovecot")
PACKAGE_CONF = Path("/usr/share/dovecot")


class DocDovecot(Dovecot):
    """Dovecot with the config doc/install.md leaves on a Debian 12 server:
    a copy of /etc/dovecot (dovecot.conf, conf.d/) under base, as the
    packages install it, that names itself instead of /etc/dovecot; the
    doc's sed run on the copy's conf.d/10-auth.conf, the doc's
    local.conf in it, and, read last, peers/dovecot.py's private settings
    (base_dir, state_dir, log, loopback) and one IMAPS listener (port 993's
    role) on a free loopback port instead of 143 and 993."""

    def __init__(self, base, maildir_root, local_conf, sed):
        super().__init__(base, maildir_root, users={})
        self.etc = self.base / "etc"
        self.conf = self.etc / "dovecot.conf"
        self.local_conf, self.sed = local_conf, sed

    def doveconf(self):
        return sh_ok("doveconf -n -c %s" % shlex.quote(str(self.conf)))

    def copy_debian_conf(self):
        if not (DEBIAN_CONF / "dovecot.conf").is_file():
            raise PeerUnavailable("no %s/dovecot.conf (dovecot-core)" % DEBIAN_CONF)
        shutil.copytree(DEBIAN_CONF, self.etc, symlinks=True)
        os.chmod(self.etc, 0o755)
        # as dovecot-core and dovecot-imapd install it (ucf copies each
        # file from the package's templates), whatever this host changed
        for f in self.etc.rglob("*"):
            template = PACKAGE_CONF / f.relative_to(self.etc)
            if f.is_file() and template.is_file():
                shutil.copyfile(template, f)
        for name in ("local.conf", "users"):
            if (self.etc / name).exists():
                (self.etc / name).unlink()
        # the copy names itself, not /etc/dovecot (10-ssl.conf's key pair)
        for f in self.etc.rglob("*"):
            if f.is_file() and not f.is_symlink() and f.suffix in (".conf", ".ext"):
                f.write_text(f.read_text().replace(str(DEBIAN_CONF) + "/", str(self.etc) + "/"))
        # dovecot-core's postinst links ssl-cert's snakeoil pair as
        # private/dovecot.{pem,key}; where there is none (no snakeoil made,
        # as in a container) Dovecot does not start, even with local.conf's
        # ssl_cert: put a pair there, as a server has
        pem, key = self.etc / "private" / "dovecot.pem", self.etc / "private" / "dovecot.key"
        if not (pem.exists() and key.exists()):
            for f in (pem, key):
                if f.is_symlink():
                    f.unlink()
            pem.parent.mkdir(mode=0o700, exist_ok=True)
            cert_key = make_cert(self.base / "snakeoil")
            shutil.copyfile(cert_key[0], pem)
            shutil.copyfile(cert_key[1], key)

    def write_config(self):
        if self.port is None:
            self.port = free_port(self.host)
        sh_ok(replace_once(self.sed, str(DEBIAN_CONF) + "/", str(self.etc) + "/"))
        (self.etc / "local.conf").write_text(self.local_conf)
        private = self.etc / "chamois-test.conf"
        private.write_text(self.base_conf() + f"""\
auth_verbose = yes
shutdown_clients = yes
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.port}
    ssl = yes
  }}
}}
""")
        with open(self.conf, "a") as f:
            f.write("\n# tests/integration/test_install_doc.py\n!include %s\n" % private)


def imaps(dv):
    return imaplib.IMAP4_SSL(dv.host, dv.port, ssl_context=unverified_context(), timeout=20)


def imaps_only_message(dv, user):
    """user logs in with PASSWORD; the INBOX's one message, as served"""
    m = imaps(dv)
    try:
        m.login(user, PASSWORD)
        typ, data = m.select("INBOX", readonly=True)
        assert typ == "OK" and data == [b"1"], (typ, data, dv.log()[-3000:])
        typ, data = m.uid("FETCH", "1", "(RFC822)")
        assert typ == "OK" and isinstance(data[0], tuple), (typ, data)
        return data[0][1]
    finally:
        m.logout()


def login_fails(dv, user, password):
    m = imaps(dv)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            m.login(user, password)
    finally:
        m.logout()


def doc_dovecot(chamois_conf, tmp_path, extra_conf=""):
    """Section 7's first block as a server has it: a chamoisd (config
    written, not started) running as an unprivileged system account that
    owns the Maildirs, and a DocDovecot (not started) with the doc's sed,
    local.conf and password line; (c, dv, block, uid, account)"""
    need("doveadm", "dovecot-imapd")
    need("curl", "curl")
    try:
        uid, gid = ensure_mail_owner()
    except PeerUnavailable as e:
        pytest.skip(str(e))
    account = pwd.getpwuid(uid).pw_name
    block = block_with("/etc/dovecot/local.conf")
    m = re.search(r"^cat > /etc/dovecot/local\.conf <<'EOF'\n(.*?)^EOF$", block, re.S | re.M)
    assert m, block
    local = m.group(1)
    # The doc's `chamois` is a system user (adduser --system: a uid in
    # 100-999), and so is the test's account, made by useradd --system:
    # the doc's first_valid_uid has to admit it as it is.
    first = int(re.search(r"^first_valid_uid = (\d+)$", local, re.M).group(1))
    assert first <= uid < 1000, "%s has uid %d; the doc's first_valid_uid is %d" % (
        account, uid, first)

    # chamoisd runs as that account and owns the Maildirs, as the package's
    # chamoisd (User=chamois) does
    c = chamois_conf(domains=("example.org",), mailboxes=(ALICE,),
                     hostname="mail.example.org",
                     extra_conf="user %s\n%s" % (account, extra_conf))
    open_dirs_to_others(c)

    sed = command_with(block, "10-auth.conf")
    dv = DocDovecot(tmp_path / "dovecot", c.maildir_root, None, sed)
    try:
        dv.copy_debian_conf()
    except PeerUnavailable as e:
        pytest.skip(str(e))
    # what the sed turns off: Debian's PAM passdb (the machine's accounts)
    auth = (dv.etc / "conf.d" / "10-auth.conf").read_text()
    assert re.search(r"^!include auth-system\.conf\.ext$", auth, re.M), auth
    assert "driver = pam" in (dv.etc / "conf.d" / "auth-system.conf.ext").read_text()

    users = dv.etc / "users"                # the copy's /etc/dovecot/users
    cert, key = make_cert(tmp_path / "tls")
    local = replace_once(local, MAILDIRS, str(c.maildir_root))
    local = replace_once(local, "uid=chamois gid=chamois",
                         "uid=%s gid=%s" % (account, grp.getgrgid(gid).gr_name))
    local = replace_once(local, DOVECOT_USERS, str(users))
    local = re.sub(r"^ssl_cert = <.*$", "ssl_cert = <" + cert, local, count=1, flags=re.M)
    local = re.sub(r"^ssl_key = <.*$", "ssl_key = <" + key, local, count=1, flags=re.M)
    assert "ssl = required" in local.splitlines(), local
    assert " /etc/" not in local and "</etc/" not in local, local
    dv.local_conf = local
    # the doc's password line and the file's owner and mode
    for cmd in commands(block):
        if DOVECOT_USERS in cmd and not cmd.startswith("cat "):
            sh_ok(cmd.replace(DOVECOT_USERS, str(users)))
    assert users.read_text().startswith(ALICE + ":{SHA512-CRYPT}$6$"), users.read_text()
    assert users.stat().st_mode & 0o777 == 0o640
    return c, dv, block, uid, account


@pytest.mark.skipif(os.geteuid() != 0, reason="Dovecot and `user` need root")
def test_dovecot_local_conf_serves_chamoisd_maildirs(chamois_conf, tmp_path):
    c, dv, block, uid, account = doc_dovecot(chamois_conf, tmp_path)
    c.start()
    try:
        msg = crlf("From: <sender@remote.test>\nTo: <%s>\nSubject: over IMAP\n"
                   "Message-ID: <install-doc@remote.test>\n\nread me with Dovecot\n" % ALICE)
        with smtplib.SMTP(c.host, c.port, local_hostname="client.remote.test",
                          timeout=20) as s:
            assert s.sendmail("sender@remote.test", [ALICE], msg) == {}
        stored = c.wait_messages(ALICE, 1)
        home = c.maildir(ALICE)
        for p in [c.maildir_root, home.parent, home, home / "new"]:
            assert p.stat().st_uid == uid, "%s not owned by %s" % (p, account)
        for p in [home.parent, home, home / "new"]:     # "mode 0700 all the way down"
            assert p.stat().st_mode & 0o777 == 0o700, "%s: %o" % (p, p.stat().st_mode)

        dv.start()
        try:
            conf = dv.doveconf()
            drivers = re.findall(r"^(passdb|userdb) \{\n(?:  .*\n)*?  driver = (\S+)$",
                                 conf, re.M)
            assert sorted(drivers) == [("passdb", "passwd-file"), ("userdb", "static")], conf
            doveadm = command_with(block, "doveadm auth test")
            out = sh_ok(replace_once(doveadm, "doveadm ", "doveadm -c %s " % dv.conf))
            assert "auth succeeded" in out, out
            curl = command_with(block_with("imaps://"), "imaps://")
            served = sh_ok(replace_once(curl, "imaps://mail.example.org/",
                                        "imaps://%s:%d/" % (dv.host, dv.port)))
            assert served == stored[0].decode(), served      # (text: CRLF read as LF)
            for user in (ALICE, "Alice@Example.ORG"):     # auth_username_format = %Lu
                got = imaps_only_message(dv, user)
                assert got == crlf(stored[0])
                assert got.endswith(msg)
            # (each failure costs more of Dovecot's auth penalty: 2 s, 4 s...)
            login_fails(dv, ALICE, "wrong-password")
            login_fails(dv, "root", PASSWORD)
        finally:
            dv.stop()
            print("---- dovecot log ----\n" + dv.log()[-6000:])
    finally:
        c.stop()
        print("---- chamoisd log ----\n" + c.log()[-6000:])


def heredoc(block, path):
    m = re.search(r"^cat > %s <<'EOF'\n(.*?)^EOF$" % re.escape(path), block, re.S | re.M)
    assert m, "no heredoc for %s in:\n%s" % (path, block)
    return m.group(1)


@pytest.mark.skipif(os.geteuid() != 0, reason="Dovecot and `user` need root")
def test_dovecot_lmtp_and_auth_blocks(chamois_conf, tmp_path):
    """Section 7's "Delivery through Dovecot" and "one password store"
    blocks on top of the first: the doc's two conf.d files, its printf and
    sed on chamois.conf, `chamoisd -n`; then mail for alice goes through
    Dovecot's LMTP (read back over IMAPS, with Dovecot's Delivered-To and
    no copy written by chamoisd itself), alice logs in on the submission
    port with her Dovecot password, and the doc's journalctl line is in
    the log"""
    need("/usr/lib/dovecot/lmtp", "dovecot-lmtpd")
    sub = free_port()
    c, dv, block, uid, account = doc_dovecot(
        chamois_conf, tmp_path,
        extra_conf="listen submission 127.0.0.1:%d\nsasl_db %s\n" % (sub, SASLDB))
    run_dir = str(dv.base / "run") + "/"
    lmtp_block = block_with("99-chamois-lmtp.conf")
    auth_block = block_with("99-chamois-auth.conf")
    for blk, name in ((lmtp_block, "99-chamois-lmtp.conf"), (auth_block, "99-chamois-auth.conf")):
        text = heredoc(blk, "/etc/dovecot/conf.d/" + name)
        (dv.etc / "conf.d" / name).write_text(
            replace_once(text, "user = chamois\n", "user = %s\n" % account))
    conf = str(c.conf)
    for blk, needle in ((lmtp_block, "local_delivery lmtp"), (auth_block, "sasl_backend dovecot")):
        cmd = command_with(blk, needle).replace("/run/dovecot/", run_dir)
        sh_ok(replace_once(cmd, "/etc/chamois/chamois.conf", conf))
    lines = c.conf_lines()
    assert "local_delivery lmtp %slmtp-chamois" % run_dir in lines, lines
    assert "sasl_backend dovecot %schamois-auth" % run_dir in lines, lines
    assert not any(l.startswith("sasl_db ") for l in lines), lines
    for blk in (lmtp_block, auth_block):
        assert "chamoisd -n\n" in commands(blk)
    check = subprocess.run([str(c.binary), "-n", "-f", conf], capture_output=True, text=True,
                           cwd=str(c.dir), timeout=30)
    assert check.returncode == 0, (check.stdout, check.stderr)

    dv.start()
    try:
        c.start()
        msg = crlf("From: <sender@remote.test>\nTo: <%s>\nSubject: through LMTP\n"
                   "Message-ID: <install-doc-lmtp@remote.test>\n\nSieve ran\n" % ALICE)
        with smtplib.SMTP(c.host, c.port, local_hostname="client.remote.test",
                          timeout=20) as s:
            assert s.sendmail("sender@remote.test", [ALICE], msg) == {}
        got = imaps_only_message(dv, ALICE)
        assert got.endswith(msg), got
        assert b"\r\nDelivered-To: %s\r\n" % ALICE.encode() in got, got
        assert "result=delivered lmtp=" in c.log(), c.log()
        # submission: Dovecot's password, no sasldb anywhere
        with smtplib.SMTP(c.host, sub, local_hostname="laptop.example.org", timeout=20) as s:
            s.starttls(context=unverified_context())
            s.ehlo("laptop.example.org")
            code, _ = s.login(ALICE, PASSWORD)
            assert code == 235
        with smtplib.SMTP(c.host, sub, local_hostname="laptop.example.org", timeout=20) as s:
            s.starttls(context=unverified_context())
            s.ehlo("laptop.example.org")
            with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                s.login(ALICE, "wrong-password")
            assert e.value.smtp_code == 535
        grep = command_with(auth_block, "journalctl -u chamoisd")
        pattern = re.search(r"grep '([^']+)'", grep).group(1)
        assert re.search(r"%s %schamois-auth ready mechanisms=\"[A-Z0-9 -]*PLAIN" % (
            re.escape(pattern), re.escape(run_dir)), c.log()), c.log()
    finally:
        c.stop()
        dv.stop()
        print("---- dovecot log ----\n" + dv.log()[-6000:])
        print("---- chamoisd log ----\n" + c.log()[-6000:])

"""Content filters over milter (issue 18, doc/filters.md).

A real milter on pymilter (python3-milter, peers/pymilter_filter.py) on a
unix socket: its reject and tempfail at MAIL, at RCPT and after the final
dot are the client's replies, with its own text; its header changes (add,
insert at the top, change, remove) are in the delivered copy; the macros
and the message it was given are what Postfix gives.  A milter that is
not there, or never answers, behaves as milter_default_action says.
"""

import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from harness import check, free_port, sample_message, smtp_client, wait_until, split_delivered
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401
from peers.queue_util import qbins  # noqa: F401

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))


def have_pymilter():
    return subprocess.run([PYTHON, "-c", "import Milter"],
                          capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not have_pymilter(),
                                reason="python3-milter is not installed")


class PyMilter:
    """peers/pymilter_filter.py on a unix socket in dir, or on
    127.0.0.1:port"""

    def __init__(self, dir, port=None):
        os.makedirs(str(dir), exist_ok=True)
        self.path = os.path.join(str(dir), "pymilter.sock")
        self.log_path = os.path.join(str(dir), "pymilter.log")
        conn = "inet:%d@127.0.0.1" % port if port else "unix:" + self.path
        self.proc = subprocess.Popen(
            [PYTHON, os.path.join(HERE, "peers", "pymilter_filter.py"),
             conn, self.log_path],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if port:
            wait_until(lambda: port_open(port), 10, what="the pymilter port")
        else:
            wait_until(lambda: os.path.exists(self.path), 10,
                       what="the pymilter socket")

    def records(self):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            return [json.loads(l) for l in f if l.strip()]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def pymilter(tmp_path):
    m = PyMilter(tmp_path)
    yield m
    m.stop()


class ScriptedMilter:
    """A milter socket on loopback; serve(conn) plays each connection (in
    a thread of its own); every connection is closed by stop()."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def serve(self, c):
        pass

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


class SilentMilter(ScriptedMilter):
    """Accepts and never answers (a hung filter)."""


def milter_conf(*addresses, extra=""):
    return "".join("milter %s\n" % a for a in addresses) + extra


def test_milter_header_changes_reach_the_local_copy(chamoisd, pymilter):
    d = chamoisd(extra_conf=milter_conf("unix:" + pymilter.path))
    msg = sample_message("please change this", extra_headers=[
        "X-Delete-Me: gone soon", "X-Keep: kept"])
    with smtp_client(d) as s:
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(msg), 250, "2.0.0")
    got = d.wait_messages("alice@example.test")[0]
    _, rest = split_delivered(got)
    head = rest.split(b"\n\n", 1)[0].decode()
    lines = head.split("\n")
    assert lines[0] == "X-Milter-Top: first", head
    assert "X-Milter: seen" in lines, head
    assert "Subject: [filtered] please change this" in lines, head
    assert not any(l.startswith("X-Delete-Me") for l in lines), head
    assert "X-Keep: kept" in lines, head
    # the body untouched
    assert rest.split(b"\n\n", 1)[1] == msg.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
    # what the milter was given: Postfix's macros, the body in CRLF form
    rec = [r for r in pymilter.records() if r["event"] == "accept"][0]
    assert rec["macros"]["client_addr"] == "127.0.0.1"
    assert rec["macros"]["j"] == "mx.example.test"
    assert rec["macros"]["helo"] == "client.remote.test"
    assert rec["macros"]["mail_addr"] == "sender@remote.test"
    assert rec["macros"]["rcpt_addr"] == "alice@example.test"
    txid = re.search(r" ([0-9a-f]{16}\.1) smtp mail from=", d.log()).group(1)
    assert rec["macros"]["i"] == txid
    assert rec["mail"] == "<sender@remote.test>"
    assert rec["rcpts"] == ["<alice@example.test>"]
    assert ["Subject", "please change this"] in rec["headers"]
    assert "\r\n" in rec["body"] and ".a line that starts with a dot\r\n" in rec["body"]
    assert "milter unix:%s header changes=4" % pymilter.path in d.log()


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_milter_named_by_a_host_in_etc_hosts(chamoisd, tmp_path):
    """milter localhost:PORT: the name from /etc/hosts (chamois.conf(5));
    a name /etc/hosts does not give is a config error, never a DNS
    question"""
    port = free_port()
    m = PyMilter(tmp_path / "inet", port=port)
    try:
        d = chamoisd(extra_conf=milter_conf("localhost:%d" % port))
        with smtp_client(d) as s:
            check(s.mail("sender@remote.test"), 250, "2.1.0")
            check(s.rcpt("alice@example.test"), 250, "2.1.5")
            check(s.data(sample_message("by name")), 250, "2.0.0")
        head = d.wait_messages("alice@example.test")[0].split(b"\n\n", 1)[0]
        assert b"X-Milter: seen" in head.split(b"\n"), head
        assert [r for r in m.records() if r["event"] == "accept"]
    finally:
        m.stop()
    with open(d.conf, "a") as f:
        f.write("milter nosuch.invalid:11332\n")
    rc, out = d.check_config()
    assert rc == 1, out
    assert "milter: 'nosuch.invalid' is not in /etc/hosts" in out, out


def test_milter_rejects_and_tempfails_after_the_final_dot(chamoisd, pymilter):
    d = chamoisd(extra_conf=milter_conf("unix:" + pymilter.path))
    with smtp_client(d) as s:
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        msg = check(s.data(sample_message("please reject me")), 554, "5.7.1")
        assert "Spam is not welcome here" in msg
        # the session goes on: the next message is filtered afresh
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        msg = check(s.data(sample_message("please tempfail me")), 451, "4.7.1")
        assert "Try later, filter busy" in msg
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(sample_message("a clean one")), 250, "2.0.0")
    got = d.wait_messages("alice@example.test")
    assert len(got) == 1 and b"Subject: a clean one" in got[0]
    assert "X-Milter: seen" in got[0].decode()
    assert 'step=eom result="554 5.7.1 Spam is not welcome here"' in d.log()


def test_milter_refuses_at_mail_and_at_rcpt(chamoisd, pymilter):
    d = chamoisd(extra_conf=milter_conf("unix:" + pymilter.path))
    with smtp_client(d) as s:
        msg = check(s.mail("tempfail-mail@remote.test"), 451, "4.7.1")
        assert "Not now from you" in msg
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        msg = check(s.rcpt("refuse-rcpt@example.test"), 550, "5.7.1")
        assert "This recipient is filtered" in msg
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(sample_message("after the refusals")), 250, "2.0.0")
    assert len(d.wait_messages("alice@example.test")) == 1


@pytest.mark.parametrize("action", ["tempfail", "accept", None])
def test_dead_milter_follows_the_default_action(chamoisd, tmp_path, action):
    extra = "milter_default_action %s\n" % action if action else ""
    d = chamoisd(extra_conf=milter_conf("unix:%s/nobody-here.sock" % tmp_path,
                                        extra=extra))
    with smtp_client(d) as s:
        if action == "accept":
            check(s.mail("sender@remote.test"), 250, "2.1.0")
            check(s.rcpt("alice@example.test"), 250, "2.1.5")
            check(s.data(sample_message("no filter to ask")), 250, "2.0.0")
        else:
            # the default is tempfail
            check(s.mail("sender@remote.test"), 451, "4.7.1")
    if action == "accept":
        assert len(d.wait_messages("alice@example.test")) == 1
    else:
        assert d.message_files("alice@example.test") == []
    assert "milter unix:%s/nobody-here.sock failed" % tmp_path in d.log()


def test_hung_milter_times_out_into_the_default_action(chamoisd):
    hung = SilentMilter()
    try:
        d = chamoisd(extra_conf=milter_conf(
            "127.0.0.1:%d" % hung.port,
            extra="milter_connect_timeout 1s\nmilter_command_timeout 1s\n"))
        with smtp_client(d) as s:
            check(s.mail("sender@remote.test"), 451, "4.7.1")
        assert 'reason="timeout"' in d.log()
    finally:
        hung.stop()


FWD_ALIASES = {"fwd@example.test": ["carol@remote.test"]}


def test_forward_carries_the_header_changes(fwd_env, pymilter):
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=FWD_ALIASES, extra_conf=milter_conf(
        "unix:" + pymilter.path, extra="forward_data_budget 20s\n"))
    msg = sample_message("please change me", extra_headers=["X-Delete-Me: x"])
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg)
    assert_reply(out["eod"], "250")
    [tx] = r.delivered()
    content = tx.content.replace(b"\r\n", b"\n").decode()
    head = content.split("\n\n", 1)[0]
    lines = head.split("\n")
    # above our Received only the checks' field; the milters' top field below it
    rcv = [i for i, l in enumerate(lines) if l.startswith("Received: ")][0]
    assert rcv < lines.index("X-Milter-Top: first") < lines.index("From: Sender <sender@remote.test>"), head
    assert "X-Milter: seen" in lines, head
    assert "Subject: [filtered] please change me" in lines, head
    assert "X-Delete-Me" not in head, head


def test_forward_gets_no_final_dot_when_a_milter_rejects(fwd_env, pymilter):
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=FWD_ALIASES, extra_conf=milter_conf(
        "unix:" + pymilter.path))
    out = transaction(d, "joe@sender.test", ["fwd@example.test"],
                      sample_message("please reject me"))
    assert_reply(out["eod"], "554 5.7.1", "Spam is not welcome here")
    # the target saw RCPT, never a completed message
    assert r.transactions() and r.completed_data() == []
    fwd_env.assert_no_bounce()


def test_opendkim_signs_what_submission_queues(fwd_env, tmp_path):
    """OpenDKIM (Debian's opendkim, mode s) as a signing milter on the
    submission role: the message the queue delivers carries its
    DKIM-Signature, which dkimpy verifies with the key in DNS."""
    import dkim
    from peers.sasl import ALICE, USERS, submission_daemon
    from peers.queue_util import wait_ready
    from test_dkim_sign import dnsfunc_for, genkey, txt_record, submitted
    from harness import crlf

    if not os.path.exists("/usr/sbin/opendkim"):
        pytest.skip("opendkim is not installed")
    keys = tmp_path / "keys"
    keys.mkdir()
    r = fwd_env.remote("remote.test")
    txt_record(fwd_env.dns, "milter", "rsa", genkey(keys / "milter.pem", "rsa"))
    os.chmod(keys / "milter.pem", 0o600)
    sock = tmp_path / "opendkim.sock"
    conf = tmp_path / "opendkim.conf"
    conf.write_text("Syslog no\nBackground no\nMode s\nDomain example.test\n"
                    "Selector milter\nKeyFile %s\nSocket local:%s\n"
                    "Canonicalization relaxed/relaxed\nInternalHosts 127.0.0.1\n"
                    "RequireSafeKeys false\nPidFile %s\n"
                    % (keys / "milter.pem", sock, tmp_path / "od.pid"))
    od = subprocess.Popen(["/usr/sbin/opendkim", "-f", "-x", str(conf)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: os.path.exists(sock), 10, what="the opendkim socket")
        sub = submission_daemon(fwd_env.daemon, tmp_path / "sasl",
                                extra_conf=milter_conf("unix:%s" % sock))
        wait_ready(sub.d)
        s = sub.smtp_tls()
        try:
            s.login(ALICE, USERS[ALICE])
            msg = submitted(sub, ALICE, "carol@remote.test", "signed by a milter")
            assert s.sendmail(ALICE, ["carol@remote.test"], crlf(msg),
                              mail_options=["BODY=8BITMIME"]) == {}
        finally:
            s.quit()
        wait_until(lambda: len(r.delivered()) >= 1, 30, what="delivery")
        content = r.delivered()[0].content
        assert b"DKIM-Signature:" in content and b"s=milter" in content, content[:2000]
        assert dkim.verify(content, dnsfunc=dnsfunc_for(fwd_env.dns.port)), content[:3000]
    finally:
        od.terminate()
        od.wait(10)


# --------------------------------------------------------------------------
# rspamd (Debian's rspamd, its proxy in milter mode, scanning by itself):
# the config doc/filters.md shows, here on loopback with no redis, no
# controller, no rules or maps from the network (only the milter_headers
# plugin, a dead DNS server), so what it decides comes from its own core:
# GTUBE is rejected, a clean message gets its headers.

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

RSPAMD_CONF = """\
options {
  pidfile = "%(dir)s/rspamd.pid";
  filters = "";
  dns { nameserver = ["127.0.0.1:%(dns)d"]; timeout = 1s; retransmits = 1; }
}
logging { type = "file"; filename = "%(dir)s/rspamd.log"; level = "info"; }
modules { path = "%(dir)s/plugins"; }
actions { reject = 15; add_header = 6; }
milter_headers {
  use = ["x-spamd-result", "x-spam-status"];
  skip_local = false;
  skip_authenticated = false;
}
worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:%(port)d";
  milter = yes;
  timeout = 60s;
  upstream "local" { default = yes; self_scan = yes; }
  count = 1;
}
"""


class Rspamd:
    def __init__(self, dir):
        from harness import dead_port, free_port, port_accepts
        self.dir = dir
        self.port = free_port()
        (dir / "plugins").mkdir(parents=True)
        (dir / "db").mkdir()
        os.symlink("/usr/share/rspamd/plugins/milter_headers.lua",
                   dir / "plugins" / "milter_headers.lua")
        conf = dir / "rspamd.conf"
        conf.write_text(RSPAMD_CONF % {"dir": dir, "port": self.port,
                                       "dns": dead_port()})
        self.proc = subprocess.Popen(
            ["/usr/bin/rspamd", "-f", "-i", "-u", "root", "-g", "root",
             "-c", str(conf), "--var=DBDIR=%s/db" % dir, "--var=RUNDIR=%s" % dir,
             "--var=LOGDIR=%s" % dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=str(dir))
        try:
            # it compiles its TLD list and language models first (bounded)
            wait_until(lambda: self.proc.poll() is None and
                       port_accepts("127.0.0.1", self.port, 0.5), 90,
                       what="rspamd's milter port")
        except AssertionError:
            self.stop()
            raise

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    if not os.path.exists("/usr/bin/rspamd"):
        pytest.skip("rspamd is not installed")
    r = Rspamd(tmp_path_factory.mktemp("rspamd"))
    yield r
    r.stop()


def test_rspamd_rejects_gtube_and_passes_clean_mail(chamoisd, rspamd):
    d = chamoisd(extra_conf=milter_conf("127.0.0.1:%d" % rspamd.port))
    with smtp_client(d) as s:
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        code, text = s.data(sample_message("buy now", body="Hello\n%s\n" % GTUBE))
        assert code // 100 == 5, (code, text)
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(sample_message("lunch on friday")), 250, "2.0.0")
    [got] = d.wait_messages("alice@example.test")
    assert b"Subject: lunch on friday" in got
    # rspamd's own headers on the clean one
    assert re.search(rb"\nX-Spamd-Result: default: False \[", got), got[:3000]
    assert b"\nX-Spam-Status: No" in got, got[:3000]


def test_rspamd_gtube_on_a_forward_reaches_no_final_dot(fwd_env, rspamd):
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=FWD_ALIASES, extra_conf=milter_conf(
        "127.0.0.1:%d" % rspamd.port))
    out = transaction(d, "joe@sender.test", ["fwd@example.test"],
                      sample_message("buy now", body="Hello\n%s\n" % GTUBE))
    assert out["eod"] is not None and out["eod"].startswith("5"), out
    assert r.transactions() and r.completed_data() == []
    out = transaction(d, "joe@sender.test", ["fwd@example.test"],
                      sample_message("lunch on friday"))
    assert_reply(out["eod"], "250")
    [tx] = r.delivered()
    assert b"X-Spamd-Result: default: False" in tx.content.replace(b"\r\n", b"\n"), tx.content[:3000]
    fwd_env.assert_no_bounce()


def test_quarantined_message_is_held_listed_and_released(chamoisd, pymilter, qbins):
    from peers.queue_util import ctl_ok
    d = chamoisd(extra_conf=milter_conf("unix:" + pymilter.path))
    with smtp_client(d) as s:
        check(s.mail("sender@remote.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        msg = check(s.data(sample_message("please quarantine this")), 250, "2.0.0")
    qid = re.search(r"queued as ([0-9a-f]{16})", msg).group(1)
    # held: no copy delivered, one in the folder
    assert d.message_files("alice@example.test") == []
    assert "status=quarantined" in d.log()
    listing = ctl_ok(qbins, d, "quarantine")
    assert listing.startswith(qid + " "), listing
    assert 'reason="held by the test filter"' in listing, listing
    assert "from=<sender@remote.test>" in listing and "to=<alice@example.test>" in listing
    # released: the queue delivers it, with the milter's header changes
    ctl_ok(qbins, d, "quarantine", "release", qid)
    [got] = d.wait_messages("alice@example.test")
    assert b"Subject: please quarantine this" in got
    assert b"\nX-Milter: seen\n" in got
    assert ctl_ok(qbins, d, "quarantine") == ""


def test_milters_run_in_order_and_each_makes_its_changes(chamoisd, tmp_path):
    a, b = PyMilter(tmp_path / "a"), PyMilter(tmp_path / "b")
    try:
        d = chamoisd(extra_conf=milter_conf("unix:" + a.path, "unix:" + b.path))
        with smtp_client(d) as s:
            # the first refuses MAIL: the second is not asked
            check(s.mail("tempfail-mail@remote.test"), 451, "4.7.1")
            check(s.mail("sender@remote.test"), 250, "2.1.0")
            check(s.rcpt("alice@example.test"), 250, "2.1.5")
            check(s.data(sample_message("both of us")), 250, "2.0.0")
        [got] = d.wait_messages("alice@example.test")
        assert got.count(b"X-Milter: seen\n") == 2, got
        assert got.count(b"X-Milter-Top: first\n") == 2, got
        assert [r["event"] for r in a.records()] == ["tempfail-mail", "accept"]
        assert [r["event"] for r in b.records()] == ["accept"]
    finally:
        a.stop()
        b.stop()


class BrokenMilter(ScriptedMilter):
    """Negotiates, then answers the first step with an impossible length."""

    def packet(self, c):
        head = b""
        while len(head) < 4:
            head += c.recv(4 - len(head)) or b"!"
        n = int.from_bytes(head[:4], "big")
        data = b""
        while len(data) < n:
            more = c.recv(n - len(data))
            if not more:
                break
            data += more
        return data

    def serve(self, c):
        try:
            c.settimeout(10)
            assert self.packet(c)[:1] == b"O"
            opt = b"O" + (6).to_bytes(4, "big") + (0).to_bytes(4, "big") * 2
            c.sendall(len(opt).to_bytes(4, "big") + opt)
            self.packet(c)
            c.sendall(b"\xff\xff\xff\xffc")
        except (OSError, AssertionError):
            pass


@pytest.mark.parametrize("action", ["tempfail", "accept"])
def test_milter_breaking_the_protocol_follows_the_default_action(chamoisd, action):
    bad = BrokenMilter()
    try:
        d = chamoisd(extra_conf=milter_conf(
            "127.0.0.1:%d" % bad.port, extra="milter_default_action %s\n" % action))
        with smtp_client(d) as s:
            if action == "tempfail":
                check(s.mail("sender@remote.test"), 451, "4.7.1")
            else:
                check(s.mail("sender@remote.test"), 250, "2.1.0")
                check(s.rcpt("alice@example.test"), 250, "2.1.5")
                check(s.data(sample_message("past a broken filter")), 250, "2.0.0")
        assert 'reason="packet length out of bounds"' in d.log()
        if action == "accept":
            assert len(d.wait_messages("alice@example.test")) == 1
    finally:
        bad.stop()


def test_submission_milter_gets_the_login_and_edits_the_queued_copy(fwd_env, pymilter, tmp_path):
    from peers.sasl import ALICE, USERS, submission_daemon
    from peers.queue_util import wait_ready
    from harness import crlf

    r = fwd_env.remote("remote.test")
    sub = submission_daemon(fwd_env.daemon, tmp_path / "sasl",
                            extra_conf=milter_conf("unix:" + pymilter.path))
    wait_ready(sub.d)
    s = sub.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        msg = "From: <%s>\nTo: <carol@remote.test>\nSubject: please change\n\nhi\n" % ALICE
        assert s.sendmail(ALICE, ["carol@remote.test"], crlf(msg)) == {}
    finally:
        s.quit()
    wait_until(lambda: len(r.delivered()) >= 1, 30, what="delivery")
    content = r.delivered()[0].content.replace(b"\r\n", b"\n")
    head = content.split(b"\n\n", 1)[0].decode()
    assert "X-Milter: seen" in head.split("\n"), head
    assert "Subject: [filtered] please change" in head.split("\n"), head
    # the queue's Message-ID and Date are there too, above the client's fields
    assert "\nMessage-ID: <" in head and "\nDate: " in head, head
    rec = [x for x in pymilter.records() if x["event"] == "accept"][0]
    assert rec["macros"]["auth_authen"] == ALICE

"""Self-tests of the forwarding test peers (peers/dns.py, peers/remote.py):
they must be right before the forwarding scenarios can be believed."""

import smtplib
import socket

import pytest

from harness import Dialog, check, crlf, smtp_client, unverified_context
from peers.dns import Dnsmasq, query
from peers.remote import SELF_ADDRESS, RemotePool, fwd_env  # noqa: F401


@pytest.fixture
def dns(tmp_path):
    d = Dnsmasq(tmp_path / "dns")
    yield d
    d.stop()


@pytest.fixture
def pool(tmp_path):
    p = RemotePool(tmp_path / "remotes")
    yield p
    p.stop()


def client(remote, timeout=10):
    s = smtplib.SMTP(remote.address, remote.port, local_hostname="client.test",
                     timeout=timeout)
    return s


# -- dnsmasq ---------------------------------------------------------------


def test_dns_answers_mx_a_nullmx_nxdomain(dns):
    dns.mx("remote.test", "mx1.remote.test", 10)
    dns.mx("remote.test", "mx2.remote.test", 20)
    dns.address("mx1.remote.test", "127.0.0.2")
    dns.address("mx2.remote.test", "127.0.0.3")
    dns.null_mx("nullmx.test")
    dns.start()
    rcode, ans = dns.query("remote.test", "MX")
    assert rcode == "NOERROR"
    assert sorted(ans) == [("MX", 10, "mx1.remote.test"), ("MX", 20, "mx2.remote.test")]
    assert dns.query("mx1.remote.test", "A") == ("NOERROR", [("A", "127.0.0.2")])
    # a known name without the asked type: NODATA, not NXDOMAIN
    assert dns.query("mx1.remote.test", "AAAA") == ("NOERROR", [])
    assert dns.query("remote.test", "A") == ("NOERROR", [])
    # RFC 7505 null MX: one MX, preference 0, target the root
    assert dns.query("nullmx.test", "MX") == ("NOERROR", [("MX", 0, "")])
    # unknown names under .test: NXDOMAIN; nothing is forwarded anywhere
    assert dns.query("gone.test", "MX") == ("NXDOMAIN", [])
    assert dns.query("mx1.gone.test", "A") == ("NXDOMAIN", [])
    assert dns.query("example.com", "A")[0] in ("REFUSED", "SERVFAIL", "NXDOMAIN")
    # TCP is served too (c-ares falls back to it for truncated answers)
    with socket.create_connection(("127.0.0.1", dns.port), timeout=2):
        pass
    dns.stop()
    assert not dns.running()


def test_dns_records_fixed_after_start(dns):
    dns.start()
    with pytest.raises(RuntimeError):
        dns.mx("late.test", "mx.late.test", 10)


# -- remotes -----------------------------------------------------------------


def test_remotes_share_one_port_on_different_addresses(pool):
    a = pool.add("a.test")
    b = pool.add("b.test")
    c = pool.closed("c.test")
    assert a.port == b.port == c.port == pool.port
    assert len({a.address, b.address, c.address}) == 3
    assert SELF_ADDRESS not in (a.address, b.address, c.address)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((c.address, c.port), timeout=2)
    # the port is still free on the address kept for chamoisd itself
    with socket.socket() as s:
        s.bind((SELF_ADDRESS, pool.port))
    # the Controller's start-up probe is not recorded
    assert a.connections == [] and b.connections == []


def test_remote_records_envelope_options_and_exact_bytes(pool):
    r = pool.add("remote.test")
    msg = crlf("From: a@x.test\nSubject: t\n\n.leading dot\n..two\nend\n")
    with client(r) as s:
        s.ehlo()
        assert s.has_extn("8bitmime") and s.has_extn("smtputf8")
        assert s.has_extn("enhancedstatuscodes") and not s.has_extn("starttls")
        check(s.mail("a@x.test", ["BODY=8BITMIME", "SIZE=%d" % len(msg)]), 250, "2.1.0")
        check(s.rcpt("carol@remote.test"), 250, "2.1.5")
        check(s.rcpt("dan@remote.test"), 250, "2.1.5")
        code, _ = s.data(msg)
        assert code == 250
    [c] = r.connections
    [tx] = c.transactions
    assert c.helo == "client.test" and not c.tls
    assert tx.mail_from == "a@x.test"
    assert "BODY=8BITMIME" in tx.mail_options and "SIZE=%d" % len(msg) in tx.mail_options
    assert tx.accepted == ["carol@remote.test", "dan@remote.test"]
    assert tx.content == msg
    assert tx.data_raw == msg.replace(b"\r\n.", b"\r\n..")
    assert tx.data_complete and tx.delivered
    assert r.delivered() == [tx]
    assert pool.null_sender_attempts() == []


def test_remote_null_sender_recorded(pool):
    r = pool.add("remote.test")
    with client(r) as s:
        s.ehlo()
        check(s.mail(""), 250, "2.1.0")   # smtplib sends MAIL FROM:<>
        check(s.rcpt("x@remote.test"), 250, "2.1.5")
        assert s.data(b"Subject: bounce\r\n\r\nx\r\n")[0] == 250
    [tx] = r.delivered()
    assert tx.mail_from == ""
    [(remote, _, arg)] = pool.null_sender_attempts()
    assert remote is r and arg.upper().startswith("FROM:<>")


def test_remote_replies_per_step(pool):
    r = pool.add("remote.test",
                 rcpt={"carol@remote.test": "550 5.1.1 no such user carol",
                       "dan@remote.test": "450 4.2.0 mailbox busy",
                       "eve@remote.test": "550 mailbox unavailable"},
                 eod="554 5.7.1 spam")
    with client(r) as s:
        s.ehlo()
        s.mail("a@x.test")
        assert s.rcpt("carol@remote.test") == (550, b"5.1.1 no such user carol")
        assert s.rcpt("dan@remote.test") == (450, b"4.2.0 mailbox busy")
        assert s.rcpt("eve@remote.test") == (550, b"mailbox unavailable")
        check(s.rcpt("frank@remote.test"), 250, "2.1.5")
        assert s.data(b"Subject: x\r\n\r\nx\r\n") == (554, b"5.7.1 spam")
    [tx] = r.transactions()
    assert tx.data_complete and not tx.delivered and tx.eod_reply == "554 5.7.1 spam"


def test_remote_mail_refused_and_multiline(pool):
    r = pool.add("remote.test", mail="553 5.7.1 sender rejected\n553 5.7.1 second line")
    with client(r) as s:
        s.ehlo()
        code, text = s.mail("a@x.test")
        assert code == 553 and text == b"5.7.1 sender rejected\n5.7.1 second line"
        assert s.rcpt("carol@remote.test")[0] == 503


@pytest.mark.parametrize("greeting", ["554 5.3.2 no service here", "421 4.3.2 try later"])
def test_remote_greeting_refusal(pool, greeting):
    r = pool.add("remote.test", greeting=greeting)
    d = Dialog(r.address, r.port)
    assert d.read_reply() == greeting
    if greeting.startswith("421"):
        assert d.wait_closed()
    else:
        d.cmd("EHLO client.test", "503")
        d.cmd("QUIT", "221")
    d.close()


def test_remote_421_closes(pool):
    r = pool.add("remote.test", rcpt="421 4.3.2 shutting down")
    d = Dialog(r.address, r.port)
    d.expect("220")
    d.cmd("EHLO client.test", "250")
    d.cmd("MAIL FROM:<a@x.test>", "250")
    d.cmd("RCPT TO:<b@remote.test>", "421 4.3.2 shutting down")
    assert d.wait_closed()
    d.close()


def test_remote_delay_and_drop(pool):
    slow = pool.add("slow.test", delay={"rcpt": 6})
    d = Dialog(slow.address, slow.port, timeout=1)
    d.expect("220")
    d.cmd("EHLO client.test", "250")
    d.cmd("MAIL FROM:<a@x.test>", "250")
    d.send(b"RCPT TO:<b@slow.test>\r\n")
    with pytest.raises(AssertionError):      # ReplyTimeout
        d.read_reply(timeout=1)
    d.close()

    drop = pool.add("drop.test", drop="data")
    d = Dialog(drop.address, drop.port)
    d.expect("220")
    d.cmd("EHLO client.test", "250")
    d.cmd("MAIL FROM:<a@x.test>", "250")
    d.cmd("RCPT TO:<b@drop.test>", "250")
    d.cmd("DATA", "354")
    d.send(b"Subject: first line\r\n")
    assert d.wait_closed()
    d.close()
    [tx] = drop.transactions()
    assert tx.data_raw == b"Subject: first line\r\n" and not tx.data_complete
    assert drop.delivered() == []


def test_remote_final_dot_only_after_crlf(pool):
    """A bare LF before '.' is not an end of data at the remote either: the
    record shows whether a final dot ever arrived."""
    r = pool.add("remote.test")
    d = Dialog(r.address, r.port)
    d.expect("220")
    d.cmd("EHLO client.test", "250")
    d.cmd("MAIL FROM:<a@x.test>", "250")
    d.cmd("RCPT TO:<b@remote.test>", "250")
    d.cmd("DATA", "354")
    d.send(b"Subject: x\r\n\r\nbody\n.\nmore\r\n")
    d.close()
    assert r.wait_closed()
    [tx] = r.transactions()
    assert not tx.data_complete and tx.data_raw.endswith(b"more\r\n")


def test_remote_starttls_recorded(pool):
    r = pool.add("tls.test", starttls=True)
    with client(r) as s:
        s.ehlo()
        assert s.has_extn("starttls")
        s.starttls(context=unverified_context())
        s.ehlo()
        assert not s.has_extn("auth")
        s.mail("a@x.test")
        s.rcpt("b@tls.test")
        assert s.data(b"Subject: x\r\n\r\nx\r\n")[0] == 250
    [c] = r.connections
    assert c.tls and r.delivered()[0].tls


def test_remote_without_smtputf8_and_8bitmime(pool):
    r = pool.add("old.test", smtputf8=False, eightbitmime=False)
    with client(r) as s:
        s.ehlo()
        assert not s.has_extn("smtputf8") and not s.has_extn("8bitmime")
        assert s.mail("a@x.test", ["BODY=8BITMIME"])[0] == 555
        s.rset()
        assert s.docmd("MAIL", "FROM:<a@x.test> SMTPUTF8")[0] == 501


# -- the environment: chamoisd pointed at dnsmasq and the remotes -----------


def test_env_daemon_config_and_local_delivery(fwd_env):
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases={"fwd@example.test": ["carol@remote.test"]},
                       extra_conf="forward_rcpt_budget 3s\nforward_data_budget 5s")
    lines = d.conf_lines()
    assert [l for l in lines if l.startswith("dns_server")] == ["dns_server %s" % fwd_env.dns.server]
    assert "remote_port %d" % fwd_env.remote_port in lines
    assert d.check_config()[0] == 0, d.check_config()[1]
    # dnsmasq answers for the remote
    assert query(fwd_env.dns.port, "remote.test", "MX")[1] == [("MX", 10, "mx1.remote.test")]
    assert query(fwd_env.dns.port, "mx1.remote.test", "A")[1] == [("A", r.address)]
    # local delivery is untouched by all this
    with smtp_client(d) as s:
        check(s.mail("s@sender.test"), 250, "2.1.0")
        check(s.rcpt("alice@example.test"), 250, "2.1.5")
        check(s.data(b"Subject: local\r\n\r\nx\r\n"), 250, "2.0.0")
    fwd_env.assert_no_bounce(local={"alice@example.test": 1})
    assert r.connections == []


def test_env_self_mx_listener(fwd_env):
    line = fwd_env.self_mx("self.test")
    d = fwd_env.daemon(extra_conf=line)
    # chamoisd answers on 127.0.0.9:R as well
    c = Dialog(SELF_ADDRESS, fwd_env.remote_port)
    c.expect("220")
    c.cmd("QUIT", "221")
    c.close()
    assert fwd_env.dns.query("self.test", "MX")[1] == [("MX", 10, "mx1.self.test")]
    assert d.running()

"""SIGTERM (graceful stop) and SIGHUP (table reload) (chamoisd(8), SIGNALS)."""

import signal

from harness import (check, dot_stuff, peer_cert_der, port_accepts, sample_message, smtp_client, split_delivered,
                     wait_until)


def rcpt_reply(d, rcpt):
    """Code of the reply to RCPT TO:<rcpt> on a fresh connection."""
    with smtp_client(d) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        code, _ = s.rcpt(rcpt)
        s.quit()
    return code


def test_sigterm_idle_exits_0(chamoisd):
    d = chamoisd()
    assert d.stop() == 0, d.log()
    assert not d.killed
    assert not port_accepts(d.host, d.port)


def test_sigterm_during_data_finishes_transaction(chamoisd):
    d = chamoisd()
    msg = sample_message("in flight", body="first half\n" * 50 + "second half\n" * 50)
    wire = dot_stuff(msg)
    half = len(wire) // 2
    c = d.dialog()
    c.cmd("EHLO client.remote.test", "250")
    c.cmd("MAIL FROM:<s@remote.test>", "250 2.1.0")
    c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
    c.cmd("DATA", "354")
    c.send(wire[:half])
    d.signal(signal.SIGTERM)
    # the daemon has seen the signal once it stops accepting connections
    wait_until(lambda: not port_accepts(d.host, d.port, timeout=0.5), timeout=10,
               what="chamoisd to stop accepting after SIGTERM")
    assert d.running(), "chamoisd exited with a transaction in flight:\n" + d.log()
    c.send(wire[half:] + b".\r\n")
    c.expect("250 2.0.0")
    [content] = d.messages("alice@example.test")
    assert split_delivered(content)[1] == msg.replace(b"\r\n", b"\n")
    # QUIT may still be answered, or the server may already have closed
    try:
        c.send(b"QUIT\r\n")
        c.read_all_replies(timeout=5)
    except OSError:
        pass
    c.close()
    rc = d.wait(10)
    d.stopped = True
    assert rc == 0, "exit code %s; log:\n%s" % (rc, d.log())


def stop_with_session(d, c):
    """SIGTERM with the session c open: the daemon exits 0 soon; the
    replies c got meanwhile and whether its connection was closed."""
    d.signal(signal.SIGTERM)
    rc = d.wait(15)
    d.stopped = True
    assert rc == 0, "exit code %s; log:\n%s" % (rc, d.log())
    return c.read_all_replies(timeout=5)


def test_sigterm_idle_session_does_not_block_exit(chamoisd):
    d = chamoisd()
    c = d.dialog()
    c.cmd("EHLO client.remote.test", "250")
    # an idle session (no transaction) is told 421 or closed; exit 0 soon
    replies, closed = stop_with_session(d, c)
    assert closed
    assert all(r.startswith("421") for r in replies), replies
    c.close()


def test_shutdown_421_is_not_counted_as_the_clients_error(chamoisd):
    """A session one error short of max_errors gets one 421 at SIGTERM,
    the shutdown's, not a second "Too many errors" 421 after it (the
    shutdown reply is ours, not the client's error)."""
    d = chamoisd(extra_conf="max_errors 3")
    c = d.dialog()
    c.cmd("EHLO client.remote.test", "250")
    c.cmd("XYZZY", "500")
    c.cmd("XYZZY", "500")
    replies, closed = stop_with_session(d, c)
    c.close()
    assert closed
    assert len(replies) == 1 and replies[0].startswith("421 4.3.2"), replies
    assert "reason=too-many-errors" not in d.log()


def test_sighup_adds_mailbox(chamoisd):
    d = chamoisd()
    assert rcpt_reply(d, "carol@example.test") == 550
    d.set_mailboxes(["alice@example.test", "bob@example.test", "carol@example.test"])
    d.reload()
    wait_until(lambda: rcpt_reply(d, "carol@example.test") == 250, timeout=10,
               what="carol to be accepted after SIGHUP")
    msg = sample_message("new user")
    with smtp_client(d) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("carol@example.test"), 250, "2.1.5")
        check(s.data(msg), 250, "2.0.0")
    [content] = d.messages("carol@example.test")
    assert split_delivered(content)[1] == msg.replace(b"\r\n", b"\n")
    assert d.running()


def test_sighup_keeps_open_session(chamoisd):
    d = chamoisd()
    c = d.dialog()
    c.cmd("EHLO client.remote.test", "250")
    c.cmd("MAIL FROM:<s@remote.test>", "250 2.1.0")
    d.set_mailboxes(["alice@example.test", "bob@example.test", "carol@example.test"])
    d.reload()
    wait_until(lambda: rcpt_reply(d, "carol@example.test") == 250, timeout=10,
               what="carol to be accepted after SIGHUP")
    c.cmd("RCPT TO:<alice@example.test>", "250 2.1.5")
    c.cmd("DATA", "354")
    c.send(dot_stuff(sample_message("across reload")) + b".\r\n")
    c.expect("250 2.0.0")
    c.cmd("QUIT", "221")
    c.close()
    assert len(d.messages("alice@example.test")) == 1


def test_sighup_broken_aliases_keeps_old_tables(chamoisd):
    d = chamoisd(aliases={"team@example.test": ["alice@example.test"]})
    assert rcpt_reply(d, "team@example.test") == 250
    log_before = len(d.log())
    # broken: a syntax error, and a change that must not take effect
    d.aliases_path.write_text("team@example.test: bob@example.test\n"
                              "sales@example.test: alice@example.test\n"
                              "this line is not an alias\n")
    d.reload()
    wait_until(lambda: "aliases" in d.log()[log_before:], timeout=10,
               what="the broken aliases table to be logged")
    assert d.running(), d.log()
    # old tables still in force
    assert rcpt_reply(d, "sales@example.test") == 550
    assert rcpt_reply(d, "alice@example.test") == 250
    assert rcpt_reply(d, "bob@example.test") == 250
    with smtp_client(d) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("team@example.test"), 250, "2.1.5")
        check(s.data(sample_message("old alias")), 250, "2.0.0")
    assert len(d.messages("alice@example.test")) == 1
    assert d.messages("bob@example.test") == []
    # fixing the file and reloading again works
    d.set_aliases({"team@example.test": ["bob@example.test"]})
    d.reload()
    wait_until(lambda: rcpt_reply(d, "sales@example.test") == 550 and _team_goes_to_bob(d),
               timeout=10, what="the fixed aliases table to take effect")


def _team_goes_to_bob(d):
    before = len(d.messages("bob@example.test"))
    with smtp_client(d) as s:
        check(s.mail("s@remote.test"), 250, "2.1.0")
        check(s.rcpt("team@example.test"), 250, "2.1.5")
        check(s.data(sample_message("probe")), 250, "2.0.0")
    return len(d.messages("bob@example.test")) > before


def test_sighup_broken_mailboxes_keeps_old_tables(chamoisd):
    d = chamoisd()
    d.mailboxes_path.unlink()
    log_before = len(d.log())
    d.reload()
    wait_until(lambda: "mailboxes" in d.log()[log_before:], timeout=10,
               what="the missing mailboxes table to be logged")
    assert d.running(), d.log()
    assert rcpt_reply(d, "alice@example.test") == 250
    assert rcpt_reply(d, "bob@example.test") == 250


def _pem_to_der(path):
    import ssl
    return ssl.PEM_cert_to_DER_cert(open(path).read())


def test_sighup_reloads_tls_certificate(chamoisd, tmp_path):
    import subprocess
    d = chamoisd()
    old = peer_cert_der(d)
    assert old == _pem_to_der(d.dir / "cert.pem")
    new_dir = tmp_path / "newcert"
    new_dir.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(new_dir / "key.pem"), "-out", str(new_dir / "cert.pem"),
                    "-days", "2", "-subj", "/CN=mx2.example.test"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (d.dir / "key.pem").write_bytes((new_dir / "key.pem").read_bytes())
    (d.dir / "cert.pem").write_bytes((new_dir / "cert.pem").read_bytes())
    d.reload()
    new = _pem_to_der(new_dir / "cert.pem")
    wait_until(lambda: peer_cert_der(d) == new, timeout=10,
               what="the new certificate to be served after SIGHUP")


def test_sighup_broken_certificate_keeps_old(chamoisd):
    d = chamoisd()
    old = peer_cert_der(d)
    log_before = len(d.log())
    (d.dir / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nbroken\n"
                                    "-----END CERTIFICATE-----\n")
    d.reload()
    wait_until(lambda: "cert.pem" in d.log()[log_before:], timeout=10,
               what="the broken certificate to be logged")
    assert d.running(), d.log()
    assert peer_cert_der(d) == old


def test_systemd_notifications(chamoisd, tmp_path, monkeypatch):
    """Type=notify (chamoisd(8), SYSTEMD): READY=1 once the listeners
    accept, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on
    SIGTERM, all on the datagram socket named by NOTIFY_SOCKET."""
    import socket
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        d = chamoisd()
        monkeypatch.delenv("NOTIFY_SOCKET")

        def next_state():
            fields = sock.recv(4096).decode().split("\n")
            return [f for f in fields if f.split("=")[0] != "STATUS"]

        assert next_state() == ["READY=1"]
        assert port_accepts(d.host, d.port)
        d.signal(signal.SIGHUP)
        assert next_state() == ["RELOADING=1"]
        assert next_state() == ["READY=1"]
        assert "reload done" in d.log()
        d.signal(signal.SIGTERM)
        assert next_state() == ["STOPPING=1"]
        assert d.wait(10) == 0
        d.stopped = True
    finally:
        sock.close()

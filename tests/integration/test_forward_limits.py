"""Forwarding limits and checks the other files do not cover: session limits
(451 4.4.5), a declared SIZE the remote cannot take (552 5.3.4 at RCPT), our
own Received for the forwarded address (a loop, 554 5.4.6 at the final dot,
the remote never gets the dot), and a message larger than any buffer
streamed through intact."""

import socket

import harness
from harness import sample_message, wait_until
from peers.remote import (assert_reply, fwd_env, split_forwarded,  # noqa: F401
                          transaction)

ALIASES = {"fwd@example.test": ["carol@remote.test"],
           "fwd2@example.test": ["dan@remote2.test"]}
BUDGETS = "forward_rcpt_budget 10s\nforward_data_budget 10s"


def open_forward(d, rcpt="fwd@example.test"):
    """A client session holding a forwarding session open (after RCPT)."""
    c = harness.Dialog(d.host, d.port, timeout=15)
    c.expect("220")
    c.cmd("EHLO client.sender.test", "250")
    c.cmd("MAIL FROM:<joe@sender.test>", "250")
    return c, c.cmd("RCPT TO:<%s>" % rcpt, "")


def test_per_client_limit_gives_451_445(fwd_env):
    fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES,
                       extra_conf=BUDGETS + "\nforward_max_per_client 1")
    a, reply = open_forward(d)
    assert_reply(reply, "250")
    b, reply = open_forward(d)
    assert_reply(reply, "451 4.4.5")
    # the slot comes back when the first client leaves
    a.cmd("QUIT", "221")
    a.close()

    def retry():
        return not b.cmd("RCPT TO:<fwd@example.test>", "").startswith("451 4.4.5")
    wait_until(retry, what="the forwarding slot to be free again")
    b.cmd("QUIT", "221")
    b.close()
    fwd_env.assert_no_bounce(local={})


def test_default_per_client_limit_is_a_quarter_of_a_domain(fwd_env):
    """With the defaults (forward_max_per_domain 20, forward_max_per_client
    5) one client address holds at most five forwarding sessions: it would
    take five addresses, not two, to hold every slot of a domain (issue 12,
    point 8)."""
    fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS)
    held = []
    try:
        for _ in range(5):
            c, reply = open_forward(d)
            held.append(c)
            assert_reply(reply, "250")
        c, reply = open_forward(d)
        held.append(c)
        assert_reply(reply, "451 4.4.5")
        c, reply = forward_from(d, "127.0.0.2")     # another address: served
        held.append(c)
        assert_reply(reply, "250")
    finally:
        for c in held:
            c.close()
    fwd_env.assert_no_bounce(local={})


def test_per_domain_and_total_limits(fwd_env):
    fwd_env.remote("remote.test")
    fwd_env.remote("remote2.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS +
                       "\nforward_max_per_domain 1\nforward_max_sessions 2")
    a, reply = open_forward(d)
    assert_reply(reply, "250")
    b, reply = open_forward(d)
    assert_reply(reply, "451 4.4.5")          # remote.test has its one session
    c, reply = open_forward(d, "fwd2@example.test")
    assert_reply(reply, "250")                # another domain: fine
    e, reply = open_forward(d, "fwd2@example.test")
    assert_reply(reply, "451 4.4.5")          # two sessions in all
    for x in (a, b, c, e):
        x.close()


def test_declared_size_over_remote_limit_is_552_at_rcpt(fwd_env):
    r = fwd_env.remote("remote.test")   # aiosmtpd advertises SIZE 33554432
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS,
                       max_message_size=100 * 1024 * 1024)
    out = transaction(d, "joe@sender.test", ["fwd@example.test"],
                      sample_message("big"), mail_params=" SIZE=40000000")
    assert_reply(out["mail"], "250")
    assert_reply(out["rcpt"][0], "552 5.3.4")
    assert r.completed_data() == []
    fwd_env.assert_no_bounce(local={})


def test_our_received_for_the_forwarded_address_is_a_loop(fwd_env):
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS)
    looped = sample_message("been here", extra_headers=(
        "Received: from a.sender.test ([192.0.2.1])\r\n"
        "\tby mx.example.test (chamois) with ESMTP id 0123456789abcdef.1\r\n"
        "\tfor <fwd@example.test>;\r\n"
        "\tThu, 01 Jan 2026 00:00:00 +0000",))
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], looped)
    assert_reply(out["rcpt"][0], "250")
    assert_reply(out["eod"], "554 5.4.6")
    r.wait_closed()
    assert r.completed_data() == [], r.transcript()
    # the same message for another forwarded address is no loop
    out = transaction(d, "joe@sender.test", ["fwd@example.test"],
                      sample_message("first time"))
    assert_reply(out["eod"], "250")
    fwd_env.assert_no_bounce(local={})


def test_large_message_streams_through_intact(fwd_env):
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf="forward_data_budget 60s",
                       max_message_size=20 * 1024 * 1024)
    lines = "".join("%06d %s\n" % (i, ("." if i % 7 == 0 else "x") * 120)
                    for i in range(25000))       # about 3 MB, dot lines too
    msg = sample_message("large", body=lines)
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], msg, timeout=60)
    assert_reply(out["eod"], "250")
    [tx] = r.delivered()
    assert split_forwarded(tx.content)[1] == msg
    fwd_env.assert_no_bounce(local={})


def test_remote_session_ends_with_each_transaction(fwd_env):
    """RSET and the reply to the final dot end the remote session with QUIT
    (doc/forwarding.md step 7), so that no idle session holds a slot; the
    next transaction opens a new one."""
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS)
    c = harness.Dialog(d.host, d.port, timeout=15)
    c.expect("220")
    c.cmd("EHLO client.sender.test", "250")
    c.cmd("MAIL FROM:<joe@sender.test>", "250")
    c.cmd("RCPT TO:<fwd@example.test>", "250")
    c.cmd("RSET", "250 2.0.0")
    for subject in ("after rset", "second transaction"):
        c.cmd("MAIL FROM:<ann@sender.test>", "250")
        c.cmd("RCPT TO:<fwd@example.test>", "250")
        c.cmd("DATA", "354")
        c.send(harness.dot_stuff(sample_message(subject)) + b".\r\n")
        c.expect("250")
    c.cmd("QUIT", "221")
    c.close()
    assert r.wait_closed(), r.transcript()
    assert len(r.connections) == 3, r.transcript()
    for conn in r.connections:
        assert conn.commands[-1][0] == "QUIT", conn.transcript()
    txs = r.transactions()
    # the abandoned transaction, then the two delivered ones
    assert len(txs) == 3 and not txs[0].delivered, r.transcript()
    assert [t.mail_from.split("=")[3] for t in txs[1:]] == ["sender.test"] * 2
    assert all("=ann@" in t.mail_from for t in txs[1:])
    assert len(r.delivered()) == 2
    fwd_env.assert_no_bounce(local={})


# -- idle sessions cannot hold forward slots (doc/security.md, issue 12 point 8)


class BoundDialog(harness.Dialog):
    """A Dialog whose socket is bound to a given loopback source address,
    so that chamoisd counts it as another client address."""

    def __init__(self, host, port, source, timeout=15):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""
        self.transcript = []


def forward_from(d, source):
    c = BoundDialog(d.host, d.port, source)
    c.expect("220")
    c.cmd("EHLO client.sender.test", "250")
    c.cmd("MAIL FROM:<joe@sender.test>", "250")
    return c, c.cmd("RCPT TO:<fwd@example.test>", "")


def test_rset_gives_the_forward_slot_back(fwd_env):
    """Two clients (two addresses) take the two slots of a domain, then RSET
    and idle with NOOPs: a third client still gets its forwarded RCPT, and
    the remote saw QUIT after each RSET."""
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf=BUDGETS + "\nforward_max_per_domain 2")
    clients = []
    try:
        for source in ("127.0.0.2", "127.0.0.3"):
            c, reply = forward_from(d, source)
            clients.append(c)
            assert_reply(reply, "250 2.1.5")
        for c in clients:
            c.cmd("RSET", "250 2.0.0")
            c.cmd("NOOP", "250")
        assert r.wait_closed(), r.transcript()
        assert len(r.connections) == 2
        for conn in r.connections:
            assert [v for v, _ in conn.commands][-1] == "QUIT", conn.transcript()
        for c in clients:
            c.cmd("NOOP", "250")
        third, reply = forward_from(d, "127.0.0.4")
        clients.append(third)
        assert_reply(reply, "250 2.1.5")
    finally:
        for c in clients:
            c.close()
    fwd_env.assert_no_bounce(local={})


def test_transaction_without_data_loses_its_forward_slot(fwd_env):
    """A transaction that holds the only slot of a domain and never reaches
    DATA loses it after forward_rcpt_budget of its own time: the remote
    session ends with QUIT, another client gets the slot, and the idle
    transaction's DATA gets 451 4.4.2."""
    r = fwd_env.remote("remote.test")
    d = fwd_env.daemon(aliases=ALIASES, extra_conf="forward_rcpt_budget 2s\n"
                       "forward_data_budget 10s\nforward_max_per_domain 1")
    idle = other = None
    try:
        idle, reply = forward_from(d, "127.0.0.2")
        assert_reply(reply, "250 2.1.5")
        other, reply = forward_from(d, "127.0.0.3")
        assert_reply(reply, "451 4.4.5")

        def slot_free():
            idle.cmd("NOOP", "250")           # idling, still in the transaction
            return other.cmd("RCPT TO:<fwd@example.test>", "").startswith("250")
        wait_until(slot_free, timeout=20, interval=0.5,
                   what="the idle transaction's forwarding slot to be free")
        assert r.connections[0].commands[-1][0] == "QUIT", r.connections[0].transcript()
        assert_reply(idle.cmd("DATA", ""), "451 4.4.2")
        other.cmd("DATA", "354")
        other.send(harness.dot_stuff(sample_message("slot")) + b".\r\n")
        other.expect("250")
        # the idle client may start again
        idle.cmd("MAIL FROM:<joe@sender.test>", "250")
        idle.cmd("RSET", "250")
    finally:
        for c in (idle, other):
            if c is not None:
                c.close()
    assert len(r.delivered()) == 1
    fwd_env.assert_no_bounce(local={})
def test_forward_with_local_copy_full_spool_is_452_remote_gets_no_dot(fwd_env):
    # spool_max_size (doc/security.md "Spool space"): the local copy of a
    # forwarded message needs the spool; two mx sessions hold it
    from test_mx_limits import MIB, hold_spool, release_spool, text_lines
    r = fwd_env.remote("remote.test")
    aliases = dict(ALIASES, **{"both@example.test": ["alice@example.test",
                                                    "dave@remote.test"]})
    d = fwd_env.daemon(aliases=aliases, max_message_size=10 * MIB,
                       extra_conf=BUDGETS + "\nspool_max_size 3m")
    msg = b"Subject: big both\r\n\r\n" + text_lines(MIB)
    holders = []
    try:
        hold_spool(d, holders, rcpt="bob@example.test")
        out = transaction(d, "joe@sender.test", ["both@example.test"], msg)
        assert_reply(out["rcpt"][0], "250 2.1.5")
        assert_reply(out["eod"] if out["data"].startswith("354") else out["data"],
                     "452 4.3.1")
        assert r.completed_data() == [], r.transcript()
        assert d.messages("alice@example.test") == []
        release_spool(d, holders)
        out = transaction(d, "joe@sender.test", ["both@example.test"], msg)
        assert_reply(out["eod"], "250 2.0.0")
        [tx] = r.delivered()
        assert tx.accepted == ["dave@remote.test"]
        assert len(tx.content) > MIB * 9 // 10
        fwd_env.assert_no_bounce(local={"alice@example.test": 1})
    finally:
        for dlg in holders:
            dlg.close()

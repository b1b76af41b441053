"""Catch-all aliases (chamois.conf(5) "aliases"; doc/users.md "Catch-all"):
the line "@DOMAIN: target" takes mail for every address of the local
DOMAIN that no other entry names; an explicit mailbox or alias,
postmaster and user+tag of a known user come first.  Checked on the mx
role (RCPT replies and Maildirs), on the submission role (the queue's
expansion), through a forward (a catch-all to an external target, an
aiosmtpd remote behind dnsmasq) and in the sender policy (a catch-all
lends no address to send as)."""

import smtplib

import pytest

from harness import crlf, wait_until
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401
from peers.sasl import ALICE, USERS, submission_daemon

MAILBOXES = ("alice@example.test", "bob@example.test", "catch@example.test",
             "boss@example.test", "carl@other.test")
ALIASES = {
    "@example.test": ["catch@example.test"],
    "sales@example.test": ["bob@example.test"],
    "@fwd.test": ["archive@remote.test"],
}
MSG = crlf("From: someone@sender.test\nTo: x@example.test\nSubject: catch-all\n\nhi\n")

# (recipient, reply, the mailbox that gets it)
ROWS = [
    ("alice@example.test", "250", "alice@example.test"),        # a mailbox
    ("ALICE+news@Example.Test", "250", "alice@example.test"),   # user+tag of a user
    ("sales@example.test", "250", "bob@example.test"),          # an alias
    ("postmaster@example.test", "250", "boss@example.test"),    # postmaster
    ("nobody@example.test", "250", "catch@example.test"),       # the catch-all
    ("nobody+tag@example.test", "250", "catch@example.test"),   # ... with a tag
    ("nobody@other.test", "550 5.1.1", None),                    # no catch-all there
]


@pytest.fixture
def env(fwd_env, tmp_path):
    remote = fwd_env.remote("remote.test")
    sub = submission_daemon(fwd_env.daemon, tmp_path / "sasl",
                            domains=("example.test", "other.test", "fwd.test"),
                            mailboxes=MAILBOXES, aliases=ALIASES,
                            postmaster="boss@example.test")
    fwd_env.remote_test = remote
    return fwd_env, sub


@pytest.mark.parametrize("rcpt,reply,mailbox", ROWS, ids=[r[0] for r in ROWS])
def test_mx_role_rows(env, rcpt, reply, mailbox):
    fwd, sub = env
    t = transaction(sub.d, "someone@sender.test", [rcpt], MSG)
    assert t["rcpt"][0].startswith(reply), t
    if mailbox is None:
        assert sub.d.stored_files() == []
        return
    assert t["eod"].startswith("250"), t
    sub.d.wait_messages(mailbox)
    # exactly one copy, in that mailbox only
    assert [f.parts[-3] for f in sub.d.stored_files()] == [mailbox.split("@")[0]]


def test_submission_to_a_catchall_address_reaches_its_mailbox(env):
    fwd, sub = env
    s = sub.smtp_tls()
    try:
        s.login(ALICE, USERS[ALICE])
        assert s.sendmail(ALICE, ["nobody@example.test", "sales@example.test"], MSG) == {}
    finally:
        s.quit()
    sub.d.wait_messages("catch@example.test")
    sub.d.wait_messages("bob@example.test")
    assert sub.d.messages("alice@example.test") == []


def test_a_catchall_to_an_external_target_forwards(env):
    fwd, sub = env
    t = transaction(sub.d, "someone@sender.test", ["anything@fwd.test"], MSG)
    assert_reply(t["rcpt"][0], "250")
    assert t["eod"].startswith("250"), t
    r = fwd.remote_test
    wait_until(lambda: r.delivered(), 20, what="the forward at remote.test")
    assert [a for a, _ in r.delivered()[0].rcpts] == ["archive@remote.test"]


def test_a_catchall_lends_no_address_to_send_as(env, tmp_path):
    """catch@ gets nobody@'s mail but may not send as nobody@."""
    fwd, sub = env
    from peers.sasl import saslpasswd
    saslpasswd(sub.db, "catch@example.test", "catch pass")
    s = sub.smtp_tls()
    try:
        s.login("catch@example.test", "catch pass")
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("nobody@example.test", ["carl@other.test"], MSG)
        assert e.value.smtp_code == 553
    finally:
        s.quit()

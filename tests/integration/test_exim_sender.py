"""Exim 4 (Debian's exim4-daemon-light, unpacked by peers/exim.py) as the
sending MTA of chamoisd's mx role (issue 12 point 1; doc/protocol.md, "mx
role").

Exim pipelines the final dot and QUIT and then closes its sending side:
chamoisd must still send the 250 and the 221, so that Exim records the
delivery as done (its mainlog says "=>" and "Completed", no "==" defer)
and the message arrives in the Maildir exactly once.  Plaintext and
STARTTLS.  Every Exim is stopped at teardown, also on failure; every wait
is bounded.
"""

import re
import time

import pytest

from harness import crlf
from peers.exim import exim_available, exims  # noqa: F401 (fixtures)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_exim_delivers_once_and_records_it(chamoisd, exims, tls):
    d = chamoisd()
    ex = exims(d.port, tls=tls)
    msg = crlf("From: Joe <joe@sender.example.net>\nTo: alice@example.test\n"
               "Subject: from exim %s\nMessage-ID: <exim.%s@sender.example.net>\n"
               "Date: Thu, 01 Jan 2026 00:00:00 +0000\n\nHello from Exim.\n" % (tls, tls))
    ex.submit(msg, "joe@sender.example.net", ["alice@example.test"])

    m = ex.wait_log(r"^\S+ \S+ (\S+) Completed$", timeout=30)
    msgid = m.group(1)
    log = ex.log()
    delivered = re.search(r"%s => alice@example\.test R=to_chamois T=to_chamois_smtp "
                          r"H=127\.0\.0\.1 \[127\.0\.0\.1\](.*)C=\"250 2\.0\.0 Ok: delivered"
                          % re.escape(msgid), log)
    assert delivered, log
    if tls:
        assert "X=TLS" in delivered.group(1), delivered.group(0)
    assert not re.search(r"%s == " % re.escape(msgid), log), log       # no defer
    assert "non-properly terminated" not in log and "Connection lost" not in log.lower(), log
    files = d.wait_messages("alice@example.test", 1)
    time.sleep(0.5)
    assert len(d.messages("alice@example.test")) == 1, files
    assert b"Hello from Exim." in d.messages("alice@example.test")[0]

"""Issue 7: 2,000 hostile connections (slow talkers, garbage, endless lines)
leave an honest sender's delivery working.

No timing is asserted (that is bench/hostile.py's job): only that every
honest message sent during the load got its 250 and is in the Maildir, that
the load really was there, and that chamoisd is still up afterwards.
"""
import smtplib
import time

import harness
from peers.hostile_load import run_load

CONNECTIONS = 2000
SECONDS = 8


def test_honest_mail_gets_through_2000_hostile_connections(chamoisd):
    d = chamoisd(extra_conf="max_connections %d\nmax_connections_per_address 100\n"
                 % (CONNECTIONS + 100))
    sent, failures = [], []

    def honest(stop):
        n = 0
        while time.monotonic() < stop:
            subject = "honest %d" % n
            try:
                with smtplib.SMTP(d.host, d.port, timeout=60) as s:
                    s.sendmail("friend@remote.test", ["alice@example.test"],
                               harness.sample_message(subject))
                sent.append(subject)
            except (smtplib.SMTPException, OSError) as e:
                failures.append("%s: %r" % (subject, e))
            n += 1
            time.sleep(0.5)

    stats = run_load(d.host, d.port, CONNECTIONS, SECONDS, during=honest)
    assert not failures, failures
    assert len(sent) >= 3, sent
    # the load was really there: nearly all hostile connections got in
    assert stats["open"] >= CONNECTIONS * 0.95, stats
    got = d.messages("alice@example.test")
    for subject in sent:
        assert sum(("\nSubject: %s\n" % subject).encode() in m for m in got) == 1, subject
    # and the daemon still serves
    with smtplib.SMTP(d.host, d.port, timeout=30) as s:
        assert s.noop()[0] == 250

"""Dovecot's LMTP server for the bench's chamois-lmtp and postfix-lmtp
(issue 21): each of the two gets its own Dovecot, which delivers
bench@bench.test into the Maildir the bench counts.

It is the tests' Dovecot (tests/integration/peers/dovecot.py, Debian's
dovecot-core and dovecot-lmtpd, which .ci/deps.sh installs and bench/run.sh
runs) with ``protocols = lmtp`` and nothing else: no IMAP listener, no
quota or Sieve plugin, so the figures are the cost of plain delivery
through LMTP.  What it sets, and why (see that module for how it was
found):

* its base_dir (where the ``lmtp`` socket is, mode 0666 by Dovecot's
  default, so Postfix's lmtp client, running as the mail owner, may
  connect), state_dir and log under ``workdir/dovecot``; ``ssl = no``;
* Dovecot refuses mail access as root, so the mail is written as the
  unprivileged ``chamois-test`` account (the one Postfix's mail owner and
  virtual(8) use): ``first_valid_uid`` is its uid, and a passwd-file
  userdb gives bench@bench.test that uid and ``workdir/dovecot-mail/./
  bench.test/bench`` as home (the ``/./`` chroot of the tests' layout),
  ``mail_location = maildir:~``: that is the server's ``maildir``;
* ``mail_fsync = optimized`` (Dovecot's and Debian's default): every
  delivered message is fsynced before Dovecot's 250, as chamoisd's own
  Maildir writer and Postfix's virtual(8) do;
* Dovecot keeps its index files and dovecot-uidlist in the Maildir's top
  folder, beside new/: the bench's clear_maildir() removes them with the
  messages, so every run starts from an empty mailbox.

Its processes (the master and its children: lmtp, auth, log, config, ...)
count in the server's pids(), as a milter's do, and in its lmtp_pids(),
whose CPU the bench also gives on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import BENCH_DIR, LOCAL_RCPT, Unavailable

sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "integration"))
from peers.dovecot import Dovecot  # noqa: E402  (the tests' own)
from peers.postfix import PeerUnavailable  # noqa: E402


def lmtp_maildir(workdir: Path) -> Path:
    """Where start_lmtp(workdir)'s Dovecot puts LOCAL_RCPT's Maildir:
    workdir/dovecot-mail/DOMAIN/LOCAL (apart from chamoisd's own
    maildir_root, which chamoisd keeps at mode 0700)."""
    local, domain = LOCAL_RCPT.split("@")
    return Path(workdir) / "dovecot-mail" / domain / local


def start_lmtp(workdir: Path) -> Dovecot:
    """A started Dovecot, LMTP only, under workdir/dovecot, delivering
    LOCAL_RCPT into lmtp_maildir(workdir) (made and handed to the mail
    uid); its socket is ``.lmtp_socket``."""
    lmtp_maildir(workdir).mkdir(parents=True, exist_ok=True)
    try:
        dv = Dovecot(Path(workdir) / "dovecot", Path(workdir) / "dovecot-mail", [LOCAL_RCPT],
                     protocols="lmtp")
    except PeerUnavailable as e:
        raise Unavailable(f"dovecot: {e}") from None
    if not Path("/usr/lib/dovecot/lmtp").exists():
        raise Unavailable("/usr/lib/dovecot/lmtp missing (apt-get install dovecot-lmtpd)")
    dv.grant_access(LOCAL_RCPT)
    try:
        dv.start()
    except RuntimeError as e:
        raise Unavailable(str(e)[-2000:]) from None
    return dv

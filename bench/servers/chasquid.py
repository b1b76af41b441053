"""chasquid (Debian 12: 1.11), unpacked from Debian's package, as a peer.

``prepare()`` unpacks ``chasquid`` and ``safecat`` with ``common.unpack``
(chasquid is a static-ish Go binary that needs only libc; safecat needs only
libc) and each start runs ``chasquid -config_dir WORKDIR/config`` in the
foreground, on 127.0.0.1:PORTS["chasquid"].  Everything, the queue included,
is under WORKDIR; nothing global is touched and no user is needed (it runs
as root, and so does its MDA).

How it is configured (found by trial):

* chasquid.conf (text protobuf) sets ``smtp_address`` to 127.0.0.1:PORT and
  moves the two submission listeners to 127.0.0.1:PORT+562 (13587) and
  PORT+440 (13465): left unset they default to "systemd" (socket
  activation).  ``data_dir`` (queue, domaininfo, STS cache) is
  WORKDIR/data; ``mail_log_path`` is WORKDIR/mail.log; ``hostname`` is
  mx.bench.test.
* chasquid refuses to start without at least one certificate: a self-signed
  P-256 one for mx.bench.test is made with the ``openssl`` command into
  config/certs/mx.bench.test/{fullchain,privkey}.pem.  Clients are not made
  to use it (smtp-source speaks plain SMTP).
* Local recipients must exist: ``bench@bench.test`` is put in
  domains/bench.test/users with ``chasquid-util user-add`` (the password is
  never used); ``fwd@bench.test`` is the alias ``fwd: sink@sink.test`` in
  domains/bench.test/aliases.  Any other domain gets "relay not allowed".
* Local delivery goes through an MDA, after the 250: the message is first
  written to chasquid's queue (data/queue, a temp file renamed into place,
  no fsync, as strace shows), and a goroutine per message then runs the
  MDA.  The MDA is Debian's ``safecat`` (unpacked, not installed; it
  conflicts with nothing) with args ``Maildir/tmp Maildir/new``: it writes
  the message under tmp/, fsyncs the file and link()s it into new/ (no
  directory fsync): the maildir algorithm, one fork+exec per message and
  recipient.
* At MAIL FROM chasquid checks SPF: one TXT look-up per message.  The
  bench's DNS refuses client.test, which gives "Received-SPF: permerror"
  and the mail is accepted (only an SPF "fail" rejects).
* Outgoing: chasquid looks up the MX (sink.test -> mx.sink.test ->
  127.0.0.1) and the MTA-STS record (refused, so no policy) and connects to
  port 25.  smtp-sink offers no STARTTLS, so it sends in plain text; the
  per-domain security level starts at "plain", so that is allowed.
* chasquid's queue holds at most 200 messages, compiled in (1.11 has no
  setting for it); past that it answers "451 4.3.0 Failed to queue
  message: Queue size too big, try again later".  Local deliveries go
  through that queue, and here reception outruns safecat (~200 msg/s), so
  a run of 1,000 messages with 20 or more sessions gets a 451 after a few
  hundred, and smtp-source then stops ("fatal: end of data rejected").
  Runs of 200 messages pass at any concurrency; larger runs measure this
  limit, not throughput.
``drained()`` is true when WORKDIR/data/queue holds no message file.
``sendmail()`` is None (the queue scenario compares chamois and Postfix).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List, Optional

from . import common
from .common import DOMAIN, FWD_RCPT, FWD_TARGET, HOSTNAME, LOCAL_RCPT, Unavailable


class Chasquid(common.Server):
    name = "chasquid"

    @classmethod
    def chasquid_bin(cls) -> Path:
        return common.PEERS_DIR / "chasquid" / "root" / "usr/bin/chasquid"

    @classmethod
    def util_bin(cls) -> Path:
        return common.PEERS_DIR / "chasquid" / "root" / "usr/bin/chasquid-util"

    @classmethod
    def safecat_bin(cls) -> Path:
        return common.PEERS_DIR / "safecat" / "root" / "usr/bin/safecat"

    @classmethod
    def prepare(cls) -> None:
        common.unpack("chasquid")
        common.unpack("safecat")
        for b in (cls.chasquid_bin(), cls.util_bin(), cls.safecat_bin()):
            if not b.exists():
                raise Unavailable(f"chasquid: {b} missing from the package")
        r = subprocess.run(["openssl", "version"], capture_output=True)
        if r.returncode != 0:
            raise Unavailable("chasquid: needs the openssl command (apt-get install openssl)")

    def write_config(self) -> Path:
        w = self.workdir
        conf_dir = w / "config"
        dom = conf_dir / "domains" / DOMAIN
        certs = conf_dir / "certs" / HOSTNAME
        for d in (dom, certs, w / "data"):
            d.mkdir(parents=True, exist_ok=True)
        common.make_maildir(self.maildir)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
             "-subj", f"/CN={HOSTNAME}", "-addext", f"subjectAltName=DNS:{HOSTNAME}",
             "-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem")],
            check=True, capture_output=True, timeout=60)
        local, _ = LOCAL_RCPT.split("@")
        fwd, _ = FWD_RCPT.split("@")
        (dom / "aliases").write_text(f"{fwd}: {FWD_TARGET}\n")
        conf = conf_dir / "chasquid.conf"
        conf.write_text(f"""\
# bench: chasquid peer (written by bench/servers/chasquid.py)
hostname: "{HOSTNAME}"
smtp_address: "127.0.0.1:{self.port}"
submission_address: "127.0.0.1:{self.port + 562}"
submission_over_tls_address: "127.0.0.1:{self.port + 440}"
data_dir: "{w / 'data'}"
mail_log_path: "{w / 'mail.log'}"
mail_delivery_agent_bin: "{self.safecat_bin()}"
mail_delivery_agent_args: "{self.maildir / 'tmp'}"
mail_delivery_agent_args: "{self.maildir / 'new'}"
""")
        subprocess.run([str(self.util_bin()), f"--configdir={conf_dir}", "user-add",
                        LOCAL_RCPT, "--password=bench-unused"],
                       check=True, capture_output=True, timeout=60)
        return conf_dir

    def start(self) -> None:
        conf_dir = self.write_config()
        log = open(self.workdir / "chasquid.log", "wb")
        self.proc = subprocess.Popen(
            [str(self.chasquid_bin()), "-config_dir", str(conf_dir),
             "-logfile", str(self.workdir / "chasquid.log")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        self.await_greeting(self.workdir / "chasquid.log")

    def queue_files(self) -> List[Path]:
        q = self.workdir / "data" / "queue"
        return [p for p in q.iterdir() if p.is_file()] if q.exists() else []

    def sendmail(self) -> Optional[List[str]]:
        return None

    def drained(self) -> bool:
        return not self.queue_files()

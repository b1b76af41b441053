"""A content filter on pymilter (python3-milter), for test_milter.py.

Run as a program: ``/usr/bin/python3 pymilter_filter.py SOCKET LOGFILE``;
it listens on SOCKET (``unix:/path`` or ``inet:PORT@127.0.0.1``) and
appends one JSON line per finished message (or refusal) to LOGFILE: the
macros it was given, the envelope, the header fields and the body it saw.

What it does, by what the message says:

- MAIL FROM ``tempfail-mail@...``: 451 4.7.1 at MAIL, its own text;
- RCPT TO ``refuse-rcpt@...``: 550 5.7.1 at RCPT (that recipient only);
- a Subject with "reject me": 554 5.7.1 after the final dot;
- a Subject with "tempfail me": 451 4.7.1 after the final dot;
- a Subject with "quarantine": quarantined;
- always: ``X-Milter: seen`` added, ``X-Milter-Top: first`` inserted at
  the top, the Subject changed to "[filtered] ..." when it has "change",
  ``X-Delete-Me`` removed.
"""

import json
import sys

import Milter

LOG = None


class Filter(Milter.Base):
    def __init__(self):
        self.reset()
        self.macros = {}

    def reset(self):
        self.mail = None
        self.rcpts = []
        self.headers = []
        self.bodytext = b""

    def note(self, event):
        rec = {"event": event, "mail": self.mail, "rcpts": self.rcpts,
               "headers": self.headers, "body": self.bodytext.decode("latin-1"),
               "macros": self.macros}
        with open(LOG, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def connect(self, hostname, family, hostaddr):
        self.macros["client_addr"] = self.getsymval("{client_addr}")
        self.macros["j"] = self.getsymval("j")
        self.macros["hostaddr"] = str(hostaddr[0]) if hostaddr else None
        return Milter.CONTINUE

    def hello(self, name):
        self.macros["helo"] = name
        return Milter.CONTINUE

    def envfrom(self, mailfrom, *args):
        self.reset()
        self.mail = mailfrom
        self.macros["i"] = self.getsymval("i")
        self.macros["mail_addr"] = self.getsymval("{mail_addr}")
        self.macros["auth_authen"] = self.getsymval("{auth_authen}")
        if mailfrom.startswith("<tempfail-mail@"):
            self.setreply("451", "4.7.1", "Not now from you")
            self.note("tempfail-mail")
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def envrcpt(self, to, *args):
        self.macros["rcpt_addr"] = self.getsymval("{rcpt_addr}")
        if to.startswith("<refuse-rcpt@"):
            self.setreply("550", "5.7.1", "This recipient is filtered")
            return Milter.REJECT
        self.rcpts.append(to)
        return Milter.CONTINUE

    def header(self, name, value):
        self.headers.append([name, value])
        return Milter.CONTINUE

    def body(self, chunk):
        self.bodytext += chunk
        return Milter.CONTINUE

    def eom(self):
        subject = ""
        for name, value in self.headers:
            if name.lower() == "subject":
                subject = value
        if "reject me" in subject:
            self.setreply("554", "5.7.1", "Spam is not welcome here")
            self.note("reject")
            return Milter.REJECT
        if "tempfail me" in subject:
            self.setreply("451", "4.7.1", "Try later, filter busy")
            self.note("tempfail")
            return Milter.TEMPFAIL
        self.addheader("X-Milter", "seen")
        self.addheader("X-Milter-Top", "first", 0)
        if "change" in subject:
            self.chgheader("Subject", 1, "[filtered] " + subject)
        for name, _ in self.headers:
            if name.lower() == "x-delete-me":
                self.chgheader("X-Delete-Me", 1, "")
        if "quarantine" in subject:
            self.quarantine("held by the test filter")
        self.note("accept")
        return Milter.ACCEPT

    def abort(self):
        return Milter.CONTINUE

    def close(self):
        return Milter.CONTINUE


def main():
    global LOG
    socket, LOG = sys.argv[1], sys.argv[2]
    Milter.factory = Filter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.QUARANTINE)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    Milter.runmilter("chamois-test", socket, 60)


if __name__ == "__main__":
    main()

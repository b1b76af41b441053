"""The fail2ban filter of doc/users.md, run by the real fail2ban-regex
(Debian's fail2ban package, installed by .ci/deps.sh), and a reader of
chamoisd's log lines by their fields.

    hosts = fail2ban_hosts(d.log_path, tmp_path)   # every <HOST> it matched
    for line, fields in log_fields(d.log()): ...   # [(key, value)] per line

The filter includes common.conf (its %(__prefix_line)s); fail2ban looks
for it next to the filter, so the doc's block is written to a filter.d/
with a copy of the installed common.conf."""

import re
import shutil
import subprocess
from pathlib import Path

from harness import ROOT

DOC = ROOT / "doc" / "users.md"
COMMON = Path("/etc/fail2ban/filter.d/common.conf")


def doc_filter():
    """The fenced block of doc/users.md that is the filter (has a failregex)."""
    text = DOC.read_text(encoding="utf-8")
    for m in re.finditer(r"```[^\n]*\n(.*?)```", text, re.S):
        if "failregex" in m.group(1):
            return m.group(1)
    raise AssertionError("no fail2ban filter in %s" % DOC)


def write_filter(workdir):
    if not shutil.which("fail2ban-regex") or not COMMON.exists():
        raise AssertionError("fail2ban-regex is missing: sh .ci/deps.sh installs fail2ban")
    fdir = Path(workdir) / "filter.d"
    fdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(COMMON, fdir / "common.conf")
    path = fdir / "chamois.conf"
    path.write_text(doc_filter())
    return path


def fail2ban_hosts(log_path, workdir, logtype=None):
    """Every <HOST> the doc's filter matches in the log, in order, as
    fail2ban-regex -v lists them (logtype "journal": the prefix of lines
    that fail2ban's systemd backend reads)."""
    filt = str(write_filter(workdir))
    if logtype:
        filt += "[logtype=%s]" % logtype
    p = subprocess.run(["fail2ban-regex", "-v", str(log_path), filt],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
                       text=True)
    assert p.returncode == 0, p.stdout
    hosts = re.findall(r"(?m)^\|\s{6}(\S+)\s+\w{3} \w{3} +\d+ ", p.stdout)
    total = re.search(r"Failregex: (\d+) total", p.stdout)
    assert total and int(total.group(1)) == len(hosts), p.stdout
    return hosts


# a field: key=<...> (no '>' inside), key="..." (no '"'), key=VALUE (no
# space); a trailing (...) (no ')'); anything else is a word
_TOKEN = re.compile(r'(?P<key>[A-Za-z][\w.-]*)=(?P<val><[^>]*>|"[^"]*"|[^ ]*)(?= |$)'
                    r'|(?P<paren>\([^)]*\))$'
                    r'|(?P<word>[^ ]+)')
LINE_START = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z chamoisd: ")


def log_fields(text):
    """[(line, [(key, value)])] for every line of chamoisd's -d log, read
    as a program would: the fields of each line, delimited as doc/security.md
    ("Log lines") says."""
    out = []
    for line in text.split("\n"):
        if not line:
            continue
        m = LINE_START.match(line)
        body = line[m.end():] if m else line
        fields = []
        for t in _TOKEN.finditer(body):
            if t.group("key"):
                fields.append((t.group("key"), t.group("val")))
            elif t.group("paren"):
                fields.append(("(reply)", t.group("paren")))
        out.append((line, fields))
    return out

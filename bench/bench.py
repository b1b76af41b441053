#!/usr/bin/python3
"""bench.py - chamois side by side with Postfix, OpenSMTPD and chasquid.

    bench/run.sh [options]          (what `make bench` runs: it makes the
                                     network namespace and calls us in it)
    bench/bench.py prepare          unpack the peers (needs the apt lists)
    bench/bench.py run [options]    the scenarios; only inside the namespace
    bench/bench.py report [--name N]  the table and plot again, from results

Every server gets the same job (bench/servers/common.py): mail for
bench@bench.test goes into a Maildir, mail for fwd@bench.test goes on to
sink@sink.test, whose MX is 127.0.0.1 where Postfix's smtp-sink listens on
port 25.  Postfix's smtp-source drives them.  The scenarios (issue 8):

  disk      bench/disk: create, write, fsync, rename, fsync the directory,
            with 1 and 20 threads: what the disk allows
  inbound   smtp-source into the Maildir, 4 KiB and 100 KiB, 1/20/100
            sessions, a new connection per message (smtp-source's default)
            and, at 4 KiB, reused sessions (-d): messages per second until
            all are in new/, CPU ms per message, peak memory (PSS)
  forward   smtp-source to fwd@bench.test until smtp-sink has them all
  latency   bench/latency, one message at a time: from the client's final
            dot to the remote having the message
  queue     the server's sendmail (20 at a time) until smtp-sink has them
            all (chamois and Postfix), and again with DKIM signing (SIGNED:
            three more chamoisd, with Ed25519, RSA, RSA + Ed25519, and a
            Postfix with the OpenDKIM milter, RSA; interleaved with the
            others); meanwhile an honest session sends NOOPs on the
            server's port (bench/auth_load.py probe), and chamoisd's
            "loop late" lines (common/loopwatch.c) are read off its log
  dkim      bench/dkim_sign: CPU per signature of a 4 KiB message
  idle      bench/idle.py: 10,000 idle connections, chamoisd's PSS growth

The mail from the world passes chamois's checks (SPF, DKIM, DMARC on the mx
role, doc/forwarding.md "Checks"): the bench's dnsmasq serves client.test's
SPF record (127.0.0.0/8), its DMARC record (p=reject) and a DKIM key, and
answers NXDOMAIN for every other name it does not hold.  smtp-source's mail
is unsigned (spf=pass, dmarc=pass through SPF); the latency scenario runs a
second time with every message RSA-signed by dkimpy ("latency-dkim", the
cost of a DKIM verification) and a third time Ed25519-signed
("latency-ed25519").  --baseline REV adds "chamois-base", chamois
built from git commit REV (e.g. one without the checks), to every scenario
but the queue's: the cost of what changed since, measured side by side.
"chamois-milter" and "postfix-milter" are chamois and Postfix with one
milter that lets everything through (bench/milter_pass, built on
Sendmail's libmilter), in the inbound and forward scenarios beside the
others, and chamois-milter in the latency scenario: the cost of the
milter protocol itself (doc/filters.md).  "chamois-lmtp" and
"postfix-lmtp" deliver bench@bench.test through Dovecot's LMTP instead
(chamoisd's local_delivery lmtp, Postfix's virtual_transport =
lmtp:unix:), each with a Dovecot of its own (bench/servers/dovecot.py:
Debian's dovecot-lmtpd, LMTP only, no quota or Sieve plugin: the plain
delivery cost) writing into the Maildir the bench counts; in the inbound
scenario beside the others.  A milter's and Dovecot's CPU count in their
server's, and are also given apart.

All servers run at once and their runs interleave (run 1 of each, then run
2 of each, ...); latency and idle use freshly started servers.  Each figure
is the median of --runs runs (3); chamois's are also given as a ratio to
each peer's from the same run.  Results go to bench/results/NAME/
(results.json, table.md, throughput.png, logs).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import queue
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import procstat  # noqa: E402
from servers import common  # noqa: E402
from servers.common import Unavailable  # noqa: E402

SERVER_NAMES = ["chamois", "postfix", "opensmtpd", "chasquid"]
BASELINE = "chamois-base"       # --baseline REV: chamois built from REV
BASELINE_PORT = 10029
# chamois with one pass-through milter (bench/milter_pass, libmilter) on a
# unix socket: the cost of the milter protocol (issue 18, doc/filters.md)
# and Postfix with the same milter (smtpd_milters); name -> port
MILTERED = {"chamois-milter": 10030, "postfix-milter": 11030}
# chamois and Postfix delivering bench@bench.test through Dovecot's LMTP,
# each with a Dovecot of its own (servers/dovecot.py; issue 21), in the
# inbound scenario only; name -> port
LMTP = {"chamois-lmtp": 10031, "postfix-lmtp": 11031}
# the DKIM key of client.test (SENDER's domain) that signs latency-dkim's
# messages; its record is in the bench's dnsmasq
CLIENT_SELECTOR = "bench"
CLIENT_SELECTOR_ED = "bench-ed"
# the servers that sign (queue scenario only), started beside the others:
# name ("SERVER-..." for SERVER's class) -> (key types, port)
SIGNED = {"chamois-ed25519": (("ed25519",), 10026),
          "chamois-rsa": (("rsa",), 10027),
          "chamois-rsa+ed25519": (("rsa", "ed25519"), 10028),
          "postfix-rsa": (("rsa",), 11026)}     # with OpenDKIM (servers/postfix.py)
WORK = BENCH / ".work"
HZ = os.sysconf("SC_CLK_TCK")
KIB = 1024

# Message counts per run are the same for every server, except where a
# server cannot take them or would take minutes over them:
# - chasquid 1.11 answers "451 4.3.0 Queue size too big" past 200 messages
#   in its queue (compiled in), and local mail goes through that queue;
# - OpenSMTPD listens with a backlog of 5, so opening many connections
#   crawls on SYN retransmits (about 10 msg/s at 20 sessions), and it
#   relays at 10-25 msg/s here: its runs get 200 messages, 100 where it
#   crawls, and its latency runs 20, since its scheduler takes about a
#   second per relayed message.
def run_count(server, count: int, what: str, sessions: int = 1, reuse: bool = True) -> int:
    if server.name == "chasquid":
        return min(count, 200)
    if server.name == "opensmtpd":
        if what == "latency":
            return min(count, 20)
        if what == "forward" or (sessions >= 20 and not reuse) or sessions >= 100:
            return min(count, 100)
        return min(count, 200)
    return count


def server_class(name):
    mod = __import__("servers." + name, fromlist=["x"])
    for v in vars(mod).values():
        if isinstance(v, type) and issubclass(v, common.Server) and v is not common.Server \
                and getattr(v, "name", None) == name:
            return v
    raise Unavailable("no Server class in servers/%s.py" % name)


# -- Postfix's test tools ------------------------------------------------

def postfix_tool(name: str) -> List[str]:
    root = common.PEERS_DIR / "postfix" / "root"
    return [str(root / "usr/sbin" / name)]


def postfix_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(common.PEERS_DIR / "postfix/root/usr/lib/postfix")
    return env


class Sink:
    """smtp-sink on 127.0.0.1:25 with its running counter (-c) read off
    its output: "sess=N quit=N mesg=N" after every message."""

    def __init__(self, log: Path):
        self.mesg = 0
        self.log = log
        self.proc = subprocess.Popen(
            postfix_tool("smtp-sink") + ["-c", "-u", "nobody", "-m", "2000",
                                         "%s:%d" % (common.SINK_HOST, common.SINK_PORT), "1024"],
            stdout=subprocess.PIPE, stderr=open(log, "w"), env=postfix_env(),
            start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        common.wait_port(common.SINK_PORT, proc=self.proc)

    def _read(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            buf = (buf + chunk)[-256:]
            m = re.findall(rb"mesg=(\d+)", buf)
            if m:
                self.mesg = int(m[-1])

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.mesg < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self):
        common.kill_tree(self.proc)


class Sampler:
    """Peak PSS of a server's process trees, sampled twice a second."""

    def __init__(self, pids: List[int]):
        self.pids = pids
        self.peak = procstat.pss_kib(pids)
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop_ev.wait(0.5):
            self.peak = max(self.peak, procstat.pss_kib(self.pids))

    def stop(self) -> int:
        self.stop_ev.set()
        self.t.join()
        self.peak = max(self.peak, procstat.pss_kib(self.pids))
        return self.peak


def clear_maildir(md: Path) -> None:
    """Empty the Maildir: its messages, and the index files and
    dovecot-uidlist a Dovecot keeps in its top folder (LMTP), so that
    every run delivers into an empty mailbox."""
    for sub in ("new", "cur", "tmp"):
        d = md / sub
        if d.is_dir():
            for f in os.scandir(d):
                os.unlink(f.path)
    if md.is_dir():
        for f in os.scandir(md):
            if f.name.startswith("dovecot") and f.is_file(follow_symlinks=False):
                os.unlink(f.path)


def smtp_source(port: int, sessions: int, count: int, size: int, rcpt: str,
                reuse: bool, log) -> subprocess.Popen:
    argv = postfix_tool("smtp-source") + ["-s", str(sessions), "-m", str(count),
                                          "-l", str(size), "-f", common.SENDER,
                                          "-t", rcpt, "-M", "client.test"]
    if reuse:
        argv.append("-d")
    argv.append("127.0.0.1:%d" % port)
    return subprocess.Popen(argv, stdout=log, stderr=log, env=postfix_env())


def measure(server, work, what: str, timeout: float = 300.0) -> Dict:
    """Run work() -> (count, done_predicate) and time it until done."""
    pids = server.pids()
    load = float(open("/proc/loadavg").read().split()[0])
    cpu0 = procstat.cpu_ticks(pids)
    mcpu0 = procstat.cpu_ticks(server.milter_pids())
    lcpu0 = procstat.cpu_ticks(server.lmtp_pids())
    base = procstat.pss_kib(pids)
    sampler = Sampler(pids)
    t0 = time.monotonic()
    count, done = work()
    deadline = t0 + timeout
    while not done():
        if time.monotonic() > deadline:
            sampler.stop()
            raise RuntimeError("%s: not done within %.0f s" % (what, timeout))
        time.sleep(0.002)
    t1 = time.monotonic()
    peak = sampler.stop()
    cpu1 = procstat.cpu_ticks(server.pids())
    res = {"msgs": count, "seconds": t1 - t0, "per_second": count / (t1 - t0),
           "cpu_ms_per_msg": (cpu1 - cpu0) * 1000.0 / HZ / count,
           "pss_base_kib": base, "pss_peak_kib": peak, "load_before": load}
    if server.milter_pids():       # of cpu_ms_per_msg, the milter's own
        res["milter_cpu_ms_per_msg"] = \
            (procstat.cpu_ticks(server.milter_pids()) - mcpu0) * 1000.0 / HZ / count
    if server.lmtp_pids():         # of cpu_ms_per_msg, Dovecot's own
        res["lmtp_cpu_ms_per_msg"] = \
            (procstat.cpu_ticks(server.lmtp_pids()) - lcpu0) * 1000.0 / HZ / count
    return res


# -- scenarios -------------------------------------------------------------

def run_inbound(server, size, sessions, count, reuse, log):
    count = run_count(server, count, "inbound", sessions, reuse)
    def work():
        p = smtp_source(server.port, sessions, count, size, common.LOCAL_RCPT, reuse, log)
        rc = p.wait(600)
        if rc != 0:
            raise RuntimeError("smtp-source exited with %d" % rc)
        return count, lambda: common.count_new(server.maildir) >= count
    clear_maildir(server.maildir)
    r = measure(server, work, "inbound %s" % server.name)
    clear_maildir(server.maildir)
    return r


def run_forward(server, sink, sessions, count, log):
    count = run_count(server, count, "forward", sessions)
    def work():
        base = sink.mesg
        p = smtp_source(server.port, sessions, count, 4096, common.FWD_RCPT, True, log)
        rc = p.wait(600)
        if rc != 0:
            raise RuntimeError("smtp-source exited with %d" % rc)
        return count, lambda: sink.mesg >= base + count
    return measure(server, work, "forward %s" % server.name)


PROBE_INTERVAL = 0.01      # the honest session's NOOPs, 10 ms apart on average
_LOOP_LATE = re.compile(r"loop late ms=(\d+) probes=(\d+)")


def start_probe(server):
    """bench/auth_load.py's honest session on the server's port: NOOPs at
    random times until end_probe (SIGTERM)."""
    p = subprocess.Popen([sys.executable, str(BENCH / "auth_load.py"), "probe", "127.0.0.1",
                          str(server.port), "600", str(PROBE_INTERVAL)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(0.5)         # connected and past EHLO before the load starts
    return p


def end_probe(p) -> Dict:
    p.terminate()
    out, _ = p.communicate(timeout=60)
    got = json.loads(out or b'{"ms": [], "errors": 1}')
    ms = sorted(got["ms"])
    if not ms:
        return {"noop_errors": got["errors"] or 1}
    return {"noop_n": len(ms), "noop_p50_ms": ms[len(ms) // 2],
            "noop_p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
            "noop_max_ms": ms[-1], "noop_errors": got["errors"]}


def loop_late(server, offset: int) -> Dict:
    """chamoisd's worst "loop late ms=N" since offset of its log (0: none
    of LOOPWATCH_LATE_MS, 5 ms, or more)."""
    if server.name != "chamois":
        return {}
    late = [(int(ms), int(n)) for ms, n in _LOOP_LATE.findall(server.log()[offset:])]
    return {"loop_late_max_ms": max((ms for ms, _ in late), default=0),
            "loop_late_probes": sum(n for _, n in late)}


def run_queue(server, sink, count, parallel, log):
    argv = server.sendmail()
    body = (b"From: sender <%s>\r\nTo: <%s>\r\nSubject: bench\r\n\r\n"
            % (common.SENDER.encode(), common.FWD_TARGET.encode())
            + (b"x" * 76 + b"\r\n") * 52)           # about 4 KiB

    # the users the calls run as, each taken by one call at a time
    users = queue.Queue()
    for i in range(parallel):
        users.put(server.sendmail_users[i % len(server.sendmail_users)])

    def one(_):
        user = users.get()
        try:
            r = subprocess.run(argv, input=body, stdout=log, stderr=log, timeout=120,
                               user=user, group=user and pwd.getpwnam(user).pw_gid,
                               extra_groups=user and [])
        finally:
            users.put(user)
        if r.returncode != 0:
            raise RuntimeError("%s exited with %d" % (argv[0], r.returncode))

    put_in = {}

    def work():
        base = sink.mesg
        t0 = time.monotonic()
        with ThreadPoolExecutor(parallel) as ex:
            list(ex.map(one, range(count)))
        put_in["seconds"] = time.monotonic() - t0
        return count, lambda: sink.mesg >= base + count and server.drained()
    offset = len(server.log()) if server.name == "chamois" else 0
    probe = start_probe(server)
    try:
        r = measure(server, work, "queue %s" % server.name)
    finally:
        r_probe = end_probe(probe)
    r["put_in_per_second"] = count / put_in["seconds"]
    r.update(r_probe)
    r.update(loop_late(server, offset))
    return r


def fresh(cls, folder, **kw):
    """A server started in a fresh WORK/folder; kw go to its class."""
    wd = WORK / folder
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    server = cls(wd, **kw)
    server.start()
    return server


def on_fresh(cls, folder, fn, *args, kw=None):
    """fn(server, *args) on a server started for it in a fresh WORK/folder.
    latency: no server then holds a connection to, or a verdict on, the
    previous run's remote (OpenSMTPD waited a minute for a remote it had
    seen go away); idle: memory a previous run left is not growth."""
    server = fresh(cls, folder, **(kw or {}))
    try:
        return fn(server, *args)
    finally:
        server.stop()


def run_latency(server, count, log, head=None):
    """bench/latency against server; head: a file of header fields (a
    DKIM-Signature) put on top of every message"""
    count = run_count(server, count, "latency")
    argv = [str(BENCH / "latency"), "-c", "127.0.0.1:%d" % server.port,
            "-s", "%s:%d" % (common.SINK_HOST, common.SINK_PORT), "-n", str(count),
            "-l", "4096", "-f", common.SENDER, "-t", common.FWD_RCPT, "-T", "60"]
    if head is not None:
        argv += ["-H", str(head)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    log.write(r.stdout + r.stderr)
    if r.returncode != 0:
        raise RuntimeError("latency: %s" % (r.stderr.strip() or r.stdout.strip()))
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", r.stdout.splitlines()[-1])}


def idle_once(server, count, log):
    argv = [sys.executable, str(BENCH / "idle.py"), "--port", str(server.port),
            "--count", str(count), "--pid", str(server.pids()[0])]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    log.write(r.stdout + r.stderr)
    if r.returncode != 0:
        raise RuntimeError("idle.py: %s" % (r.stderr.strip()[-500:] or r.stdout.strip()))
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", r.stdout.splitlines()[-1])}


def run_dkim_sign(count):
    r = subprocess.run([str(BENCH / "dkim_sign"), "-n", str(count)],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("dkim_sign: %s" % r.stderr.strip())
    return {name + "_cpu_us": float(us) for name, us in
            re.findall(r"^(\S+) +signatures=\d+ cpu_us_per_msg=([\d.]+)", r.stdout, re.M)}


def run_disk(threads, seconds):
    d = WORK / "disk"
    shutil.rmtree(d, ignore_errors=True)
    (d / "tmp").mkdir(parents=True)
    (d / "new").mkdir()
    r = subprocess.run([str(BENCH / "disk"), str(d), str(threads), str(seconds), "4096"],
                       capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        raise RuntimeError("disk: %s" % r.stderr.strip())
    shutil.rmtree(d, ignore_errors=True)
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", r.stdout)}


# -- the run -----------------------------------------------------------------

def median_of(results: List[Dict]) -> Dict:
    """The median of every figure, but the worst of the *_max_ms ones (a
    stall seen in one run of three is not to be voted away)."""
    out = {}
    for k in results[0]:
        vals = [r[k] for r in results if isinstance(r.get(k), (int, float))]
        if vals:
            out[k] = max(vals) if k.endswith("_max_ms") else statistics.median(vals)
    out["runs"] = len(results)
    return out


class Bench:
    def __init__(self, a):
        self.a = a
        self.runs = a.runs
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out = BENCH / "results" / (a.name or stamp)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = open(self.out / "bench.log", "w")
        self.results: Dict = {"machine": machine(), "runs": a.runs, "scenarios": {},
                              "unavailable": {}}

    def say(self, msg):
        print(msg, flush=True)
        self.log.write(msg + "\n")
        self.log.flush()

    def record(self, key, server, value):
        self.results["scenarios"].setdefault(key, {})[server] = value
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1))

    def repeat(self, key, server_name, fn, *args):
        """--runs runs of fn(*args) in a row; record the median."""
        self.interleaved(key, [(server_name, lambda: fn(*args))])

    def interleaved(self, key, jobs):
        """jobs: [(server name, measure())].  Run 1 of every server, then
        run 2 of every server, and so on: the machine's drift (a shared VM's
        disk and CPU change speed over minutes) then falls on all servers
        alike instead of on whichever ran last.  Records each median."""
        got = {name: [] for name, _ in jobs}
        errors = {}
        for i in range(self.runs):
            for name, fn in jobs:
                try:
                    got[name].append(fn())
                except Exception as exc:    # one failed run is reported, not fatal
                    errors[name] = exc
                    self.say("  %s %s run %d failed: %s" % (key, name, i + 1, exc))
        for name, rs in got.items():
            if rs:
                m = median_of(rs)
                self.record(key, name, m)
                self.say("  %-28s %-10s %s" % (key, name, brief(m)))
            else:
                self.results.setdefault("failed", {})["%s %s" % (key, name)] = str(errors[name])

    def main(self):
        quick = self.a.quick
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # idle: 10,000 + ours
        WORK.mkdir(exist_ok=True)
        global DKIM_TXT
        key, p = client_key(WORK)
        DKIM_TXT = "v=DKIM1; k=rsa; p=" + p
        self.head = signed_head(WORK, key)
        self.head_ed = signed_head_ed25519(WORK)
        self.base_bin = build_baseline(self.a.baseline) if self.a.baseline else None
        if self.base_bin:
            self.say("%s: chamois at %s (%s)" % (BASELINE, self.a.baseline, self.base_bin.parent))
        dns = start_dns(self.out / "dnsmasq.log", check_records(p))
        sink = Sink(self.out / "smtp-sink.log")
        servers, signed = {}, {}
        self.logs = {}
        try:
            if "disk" in self.a.scenarios:
                self.say("disk: create, write 4 KiB, fsync, rename, fsync dir")
                for th in (1, 20):
                    self.repeat("disk/%d" % th, "disk", run_disk, th, 2 if quick else 5)
            if "dkim" in self.a.scenarios:
                self.say("dkim: CPU per signature, 4 KiB message")
                self.repeat("dkim-sign", "chamois", run_dkim_sign, 200 if quick else 2000)
            for name in self.a.servers:
                srv = self.start_server(name, name)
                if srv:
                    servers[name] = srv
            if self.base_bin:
                srv = self.start_server("chamois", BASELINE, bin_dir=self.base_bin,
                                        port=BASELINE_PORT)
                if srv:
                    servers[BASELINE] = srv
            if self.a.scenarios & {"inbound", "forward"}:
                self.start_beside(servers, servers, [(n, {"milter": True, "port": p})
                                                     for n, p in MILTERED.items()])
            if "inbound" in self.a.scenarios:
                self.start_beside(servers, servers, [(n, {"lmtp": True, "port": p})
                                                     for n, p in LMTP.items()])
            if "queue" in self.a.scenarios:
                self.start_beside(servers, signed, [(n, {"dkim": k, "port": p})
                                                    for n, (k, p) in SIGNED.items()])
            self.load_scenarios(servers, signed, sink, quick)
        finally:
            for srv in list(servers.values()) + list(signed.values()):
                srv.stop()
            sink.stop()
        try:
            self.fresh_scenarios(quick)
        finally:
            common.kill_tree(dns)
            for f in self.logs.values():
                f.close()
        self.results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1))
        table = report(self.results)
        (self.out / "table.md").write_text(table)
        print(table)
        plot(self.results, self.out)
        latest = BENCH / "results" / "latest"
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(self.out.name)
        self.say("results in %s" % self.out)

    def server_log(self, name):
        if name not in self.logs:
            self.logs[name] = open(self.out / ("%s.log" % name), "w")
        return self.logs[name]

    def start_server(self, name, folder, **kw):
        """A started server in WORK/folder, or None (reported) if it cannot
        run; kw go to the server's class."""
        cls = server_class(name)
        wd = WORK / folder
        shutil.rmtree(wd, ignore_errors=True)
        wd.mkdir(parents=True)
        self.say("%s: starting" % folder)
        server = None
        try:
            server = cls(wd, **kw)
            server.start()
        except Unavailable as e:
            self.results["unavailable"][folder] = str(e)
            self.say("%s: unavailable: %s" % (folder, e))
            if server is not None:
                server.stop()
            return None
        return server

    def start_beside(self, servers, into, variants):
        """variants: [(name, kw)]; each "BASE-..." name whose BASE is in
        servers (it runs) is started as BASE's class with kw (a milter,
        LMTP, DKIM keys, its own port) and put in into[name]."""
        for name, kw in variants:
            base = name.split("-")[0]
            if base in servers:
                srv = self.start_server(base, name, **kw)
                if srv:
                    into[name] = srv

    def load_scenarios(self, servers, signed, sink, quick):
        """inbound, forward and queue: every server is up, runs interleave;
        signed (the servers with DKIM keys, SIGNED) takes part in queue only."""
        sc = self.a.scenarios
        if "inbound" in sc:
            for size, counts in ((4096, {1: 1000, 20: 2000, 100: 2000}),
                                 (102400, {1: 300, 20: 1000, 100: 1000})):
                for sessions, count in counts.items():
                    if quick:
                        count //= 10
                    for reuse in ([False, True] if size == 4096 else [False]):
                        key = "inbound/%dk/%s/%d" % (size // 1024,
                                                      "reuse" if reuse else "conn", sessions)
                        self.interleaved(key, [
                            (n, lambda s=s, n=n: run_inbound(s, size, sessions, count, reuse,
                                                             self.server_log(n)))
                            for n, s in servers.items()])
        if "forward" in sc:
            for sessions, count in ((1, 1000), (20, 2000), (100, 2000)):
                if quick:
                    count //= 10
                self.interleaved("forward/%d" % sessions, [
                    (n, lambda s=s, n=n: run_forward(s, sink, sessions, count, self.server_log(n)))
                    for n, s in servers.items() if n not in LMTP])
        if "queue" in sc:
            self.interleaved("queue/20", [
                (n, lambda s=s, n=n: run_queue(s, sink, 100 if quick else 1000, 20, self.server_log(n)))
                for n, s in list(servers.items()) + list(signed.items())
                if s.sendmail() and n != BASELINE and n not in MILTERED and n not in LMTP])

    def fresh_scenarios(self, quick):
        """latency and idle: one server at a time, each run on a freshly
        started one.
        bench/latency is the remote for the latency runs (smtp-sink is
        stopped), and no server then holds a connection to, or a verdict
        on, the old remote."""
        sc = self.a.scenarios
        if "latency" in sc:
            n = 100 if quick else 1000
            for name in self.a.servers:
                if name in self.results["unavailable"] or name == "chamois":
                    continue
                self.repeat("latency", name, on_fresh, server_class(name),
                            name + "-latency", run_latency, n, self.server_log(name))
            # chamois and its baseline: unsigned mail, then DKIM-signed
            # mail, each pair interleaved
            jobs = []
            for name, kw in [("chamois", {})] + ([(BASELINE, {"bin_dir": self.base_bin,
                                                             "port": BASELINE_PORT})]
                                                 if self.base_bin else []) + \
                    [("chamois-milter", {"milter": True, "port": MILTERED["chamois-milter"]})]:
                if "chamois" not in self.a.servers or name in self.results["unavailable"]:
                    continue
                for key, head in (("latency", None), ("latency-dkim", self.head),
                                  ("latency-ed25519", self.head_ed)):
                    jobs.append((key, name, lambda kw=kw, head=head, name=name: on_fresh(
                        server_class("chamois"), name + "-latency", run_latency, n,
                        self.server_log(name), head, kw=kw)))
            for key in ("latency", "latency-dkim", "latency-ed25519"):
                js = [(nm, fn) for k, nm, fn in jobs if k == key]
                if js:
                    self.interleaved(key, js)
        if "idle" in sc and "chamois" in self.a.servers:
            self.repeat("idle", "chamois", on_fresh, server_class("chamois"), "chamois-idle",
                        idle_once, 1000 if quick else 10000, self.server_log("chamois"))


def brief(m):
    keys = [("per_second", "%.0f/s"), ("cpu_ms_per_msg", "%.3f cpu-ms/msg"),
            ("pss_peak_kib", "%.0f KiB peak"), ("p50_us", "p50 %.0f us"),
            ("p99_us", "p99 %.0f us"), ("per_conn_bytes", "%.0f B/conn"),
            ("pss_after_kib", "%.0f KiB"), ("noop_p99_ms", "NOOP p99 %.2f ms"),
            ("loop_late_max_ms", "loop late %.0f ms"),
            ("ed25519_cpu_us", "Ed25519 %.0f us/sig"), ("rsa_cpu_us", "RSA %.0f us/sig")]
    return ", ".join(f % m[k] for k, f in keys if k in m)


def client_key(work: Path):
    """client.test's DKIM key (RSA 2048, openssl genpkey) in work; returns
    (PEM path, the p= of its record)"""
    key = work / "client-dkim.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(key)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE, timeout=60).stdout
    import base64
    return key, base64.b64encode(der).decode()


def latency_message() -> bytes:
    """the message bench/latency sends (latency -P)"""
    return subprocess.run([str(BENCH / "latency"), "-P", "-l", "4096", "-f", common.SENDER,
                           "-t", common.FWD_RCPT], check=True, stdout=subprocess.PIPE,
                          timeout=60).stdout


def signed_head_ed25519(work: Path) -> Path:
    """As signed_head, with an Ed25519 key (RFC 8463; dkimpy signs with
    python3-nacl) under the selector CLIENT_SELECTOR_ED, whose record
    (ED25519_TXT) dnsmasq serves"""
    import base64
    import dkim
    import nacl.signing
    global ED25519_TXT
    sk = nacl.signing.SigningKey.generate()
    ED25519_TXT = "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(sk.verify_key)).decode()
    msg = latency_message()
    sig = dkim.sign(msg, CLIENT_SELECTOR_ED.encode(), common.SENDER.split("@")[1].encode(),
                    base64.b64encode(bytes(sk)), canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to"], signature_algorithm=b"ed25519-sha256")
    if not dkim.verify(sig + msg, dnsfunc=lambda name, timeout=5: ED25519_TXT.encode()):
        raise RuntimeError("dkimpy does not verify its own Ed25519 bench signature")
    path = work / "signed-head-ed25519.txt"
    path.write_bytes(sig)
    return path


def signed_head(work: Path, key: Path) -> Path:
    """A file with the DKIM-Signature (dkimpy, rsa-sha256, relaxed/relaxed,
    h=from:to) of bench/latency's message (latency -P): every message of a
    latency-dkim run carries it, and it verifies on each."""
    import dkim
    msg = latency_message()
    sig = dkim.sign(msg, CLIENT_SELECTOR.encode(), common.SENDER.split("@")[1].encode(),
                    key.read_bytes(), canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to"])
    if not dkim.verify(sig + msg, dnsfunc=lambda name, timeout=5: DKIM_TXT.encode()):
        raise RuntimeError("dkimpy does not verify its own bench signature")
    path = work / "signed-head.txt"
    path.write_bytes(sig)
    return path


DKIM_TXT = ""       # client.test's key record, set by Bench.main
ED25519_TXT = ""    # its Ed25519 key's record, set by signed_head_ed25519


def check_records(p: str) -> List[str]:
    """dnsmasq options for the records the mx role's checks ask for:
    SENDER's domain's SPF, DMARC and DKIM key; NXDOMAIN for any name the
    bench's dnsmasq does not hold (dnsmasq's "#" zone is every domain).
    dnsmasq is authoritative for test. (--auth-zone), so that a "no such
    name" comes with the zone's SOA, whose MINIMUM (300 s) says how long a
    resolver may keep it (RFC 2308), as real zones' answers do."""
    dom = common.SENDER.split("@")[1]
    text = "v=DKIM1; k=rsa; p=" + p
    parts = [text[i:i + 250] for i in range(0, len(text), 250)]
    # TTL 300 s for what dnsmasq serves (its default is 0: "do not keep"),
    # as real zones have: chamoisd keeps answers for their TTL
    return ["--local=/#/", "--local-ttl=300", "--auth-zone=test",
            "--auth-server=ns.test,127.0.0.1",
            "--auth-soa=1,hostmaster.test,1200,120,604800,300",
            "--txt-record=%s,v=spf1 ip4:127.0.0.0/8 -all" % dom,
            "--txt-record=_dmarc.%s,v=DMARC1; p=reject" % dom,
            "--txt-record=%s._domainkey.%s,%s" % (CLIENT_SELECTOR, dom, ",".join(parts)),
            "--txt-record=%s._domainkey.%s,%s" % (CLIENT_SELECTOR_ED, dom, ED25519_TXT)]


def build_baseline(rev: str) -> Path:
    """chamois built from git commit rev, in bench/.peers/chamois-REV (kept:
    a second run reuses it); returns its bin/ folder"""
    sha = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ROOT), "rev-parse",
                          "--short=12", rev + "^{commit}"], check=True,
                         stdout=subprocess.PIPE, text=True, timeout=60).stdout.strip()
    top = common.PEERS_DIR / ("chamois-" + sha)
    bin_dir = top / "bin"
    if all((bin_dir / p).exists() for p in ("chamoisd", "chamoisctl", "chamois-sendmail")):
        return bin_dir
    shutil.rmtree(top, ignore_errors=True)
    top.mkdir(parents=True)
    arch = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ROOT), "archive", sha],
                          check=True, stdout=subprocess.PIPE, timeout=120).stdout
    subprocess.run(["tar", "-x", "-C", str(top)], input=arch, check=True, timeout=120)
    for argv in (["./configure"], ["make", "-s", "-j%d" % (os.cpu_count() or 1),
                                   "bin/chamoisd", "bin/chamoisctl", "bin/chamois-sendmail"]):
        r = subprocess.run(argv, cwd=top, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=1200)
        if r.returncode != 0:
            raise SystemExit("--baseline %s: %s failed:\n%s" % (rev, " ".join(argv),
                             r.stdout.decode(errors="replace")[-2000:]))
    return bin_dir


def start_dns(log: Path, extra: List[str] = ()):
    argv = ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--log-facility=-",
            "--listen-address=127.0.0.1", "--port=53", "--bind-interfaces",
            "--user=nobody", "--pid-file=",
            "--mx-host=sink.test,mx.sink.test,10",
            "--host-record=mx.sink.test,127.0.0.1",
            "--host-record=mx.bench.test,127.0.0.1"] + list(extra)
    for exe in ("/usr/sbin/dnsmasq", "dnsmasq"):
        if os.path.exists(exe) or shutil.which(exe):
            argv[0] = exe
            break
    p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                         start_new_session=True)
    time.sleep(0.3)
    if p.poll() is not None:
        raise SystemExit("dnsmasq did not start: see %s" % log)
    return p


def machine():
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = open("/proc/meminfo").readline().split()[1]
    dev = subprocess.run(["df", "-T", str(WORK.parent)], capture_output=True,
                         text=True).stdout.splitlines()[-1].split()
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(int(mem) / 2**20, 1),
            "kernel": os.uname().release, "filesystem": "%s on %s" % (dev[1], dev[0])}


# -- the report ----------------------------------------------------------------

def fmt(v, f="%.0f"):
    return "–" if v is None else f % v


def report(res) -> str:
    sc = res["scenarios"]
    peers = [n for n in SERVER_NAMES if n != "chamois"]
    out = ["# chamois bench, %s" % res.get("finished", ""), "",
           "Machine: %(cpu)s, %(cores)d cores, %(mem_gib)s GiB, Linux %(kernel)s, %(filesystem)s"
           % res["machine"], "Median of %d runs; ratio = chamois / peer "
           "(for CPU and memory: peer / chamois, so above 1 is chamois ahead)." % res["runs"], ""]
    disk = {k: v["disk"]["per_second"] for k, v in sc.items() if k.startswith("disk/")}
    if disk:
        out += ["Disk: %s full durable cycles/s with 1 thread, %s with 20" %
                (fmt(disk.get("disk/1")), fmt(disk.get("disk/20"))), ""]
    hdr = "| scenario | " + " | ".join(SERVER_NAMES) + " | " + \
          " | ".join("× %s" % p for p in peers) + " |"
    sep = "|" + "---|" * (1 + len(SERVER_NAMES) + len(peers))

    def table(title, keys, field, f="%.0f", inverse=False, scale=1.0, extra=None):
        rows = []
        for k in keys:
            if k not in sc:
                continue
            vals = {n: sc[k].get(n, {}).get(field) for n in SERVER_NAMES}
            vals = {n: (v / scale if v is not None else None) for n, v in vals.items()}
            c = vals["chamois"]
            ratios = []
            for p in peers:
                v = vals[p]
                if c and v:
                    ratios.append("%.2f" % ((v / c) if inverse else (c / v)))
                else:
                    ratios.append("–")
            rows.append("| %s | %s | %s |%s" % (k, " | ".join(fmt(vals[n], f) for n in SERVER_NAMES),
                                                " | ".join(ratios),
                                                (" %s |" % extra(k)) if extra else ""))
        if rows:
            h, sp = hdr, sep
            if extra:
                h, sp = hdr + " chamois / disk (20 threads) |", sep + "---|"
            out.extend(["## " + title, "", h, sp] + rows + [""])

    inbound = sorted((k for k in sc if k.startswith("inbound/")),
                     key=lambda k: (int(k.split("/")[1][:-1]), k.split("/")[2],
                                    int(k.split("/")[3])))

    def disk_frac(k):
        d20 = disk.get("disk/20")
        c = sc[k].get("chamois", {}).get("per_second")
        return "%.0f%%" % (100 * c / d20) if d20 and c else "–"
    table("Inbound to Maildir, messages/s (conn = a connection per message, "
          "reuse = smtp-source -d)", inbound, "per_second", extra=disk_frac)
    table("Inbound, CPU ms per message", inbound, "cpu_ms_per_msg", "%.3f", inverse=True)
    table("Inbound, peak memory (PSS, MiB)", inbound, "pss_peak_kib", "%.1f", inverse=True,
          scale=KIB)
    fwd = sorted((k for k in sc if k.startswith("forward/")), key=lambda k: int(k.split("/")[1]))
    table("Forwarding (relaying) to smtp-sink, messages/s", fwd, "per_second")
    table("Forwarding, CPU ms per message", fwd, "cpu_ms_per_msg", "%.3f", inverse=True)
    table("Forwarding latency, final dot to the remote having it (µs): p50",
          ["latency"], "p50_us", inverse=True)
    table("Forwarding latency (µs): p99", ["latency"], "p99_us", inverse=True)
    table("Queue: sendmail ×20 until smtp-sink has them, messages/s", ["queue/20"], "per_second")
    table("Queue: put in (all sendmail calls returned), messages/s", ["queue/20"],
          "put_in_per_second")
    out += signed_report(sc)
    out += compare_report(sc, BASELINE, "chamois", "## chamois against chamois-base (--baseline): "
                          "what the change costs")
    out += alongside_report(sc, "milter")
    out += alongside_report(sc, "lmtp")
    d20 = disk.get("disk/20")
    if d20:
        rows = []
        for k in inbound + fwd + ["queue/20"]:
            if k in sc:
                rows.append("| %s | %s |" % (k, " | ".join(
                    fmt(100 * v / d20, "%.0f%%") if v else "–"
                    for v in (sc[k].get(n, {}).get("per_second") for n in SERVER_NAMES))))
        out.extend(["## Messages per second as a share of the disk's limit "
                    "(%.0f durable cycles/s with 20 threads)" % d20, "",
                    "| scenario | " + " | ".join(SERVER_NAMES) + " |",
                    "|" + "---|" * (1 + len(SERVER_NAMES))] + rows +
                   ["", "Forwarding writes nothing to disk, and a peer that syncs less "
                    "than a full cycle per message can pass 100%.", ""])
    if "idle" in sc and "chamois" in sc["idle"]:
        i = sc["idle"]["chamois"]
        out += ["## Idle connections", "",
                "chamoisd: %d connections, PSS %.1f MiB before, %.1f MiB after, "
                "%.0f bytes per connection" % (i.get("connections", 0),
                                                i.get("pss_before_kib", 0) / KIB,
                                                i.get("pss_after_kib", 0) / KIB,
                                                i.get("per_conn_bytes", 0)), ""]
    if res.get("failed"):
        out += ["## Failed (every run)", ""] + ["- %s: %s" % kv for kv in res["failed"].items()] + [""]
    if res.get("unavailable"):
        out += ["## Not measured", ""] + ["- %s: %s" % kv for kv in res["unavailable"].items()] + [""]
    return "\n".join(out)


def compare_report(sc, before: str, after: str, title: str) -> List[str]:
    """Two chamois side by side, "change" being after against before:
    chamois-base (--baseline) before chamois, the cost of what changed
    since, e.g. the mx role's checks; or chamois before chamois-milter, the
    cost of one milter. latency-dkim is the latency with every message
    DKIM-signed (one RSA verification each), latency-ed25519 the same with
    an Ed25519 signature."""
    rows = []
    keys = sorted((k for k in sc if k.startswith(("inbound/", "forward/"))),
                  key=lambda k: [int(x) if x.isdigit() else x for x in
                                 k.replace("k/", "/").split("/")])
    for k in keys + ["latency", "latency-dkim", "latency-ed25519"]:
        if k not in sc:
            continue
        b, a = sc[k].get(before), sc[k].get(after)
        if not b or not a:
            continue
        if k.startswith("latency"):
            cells = []
            for f in ("p50_us", "p99_us"):
                bv, av = b.get(f), a.get(f)
                cells += [fmt(bv), fmt(av), fmt(av - bv, "%+.0f") if av and bv else "–"]
            rows.append("| %s | µs p50: %s | %s | %s | µs p99: %s | %s | %s |" % ((k,) + tuple(cells)))
        else:
            bv, av = b.get("per_second"), a.get("per_second")
            bc, ac = b.get("cpu_ms_per_msg"), a.get("cpu_ms_per_msg")
            rows.append("| %s | msg/s: %s | %s | %s | CPU ms/msg: %s | %s | %s |" % (
                k, fmt(bv), fmt(av), fmt(100.0 * (av / bv - 1), "%+.1f%%") if av and bv else "–",
                fmt(bc, "%.3f"), fmt(ac, "%.3f"), fmt(ac - bc, "%+.3f") if ac and bc else "–"))
    if not rows:
        return []
    return [title, "",
            "| scenario | %s | %s | change | %s | %s | change |" % (before, after, before, after),
            "|---|---|---|---|---|---|---|"] + rows + [""]


# chamois and Postfix each beside itself with a helper process, then the
# two with it side by side (alongside_report): the two servers'
# names with it, the field of the helper's own CPU, the titles
ALONGSIDE = {
    "milter": ("chamois-milter", "postfix-milter", "milter_cpu_ms_per_msg", "the milter",
               "## chamois against chamois-milter (one pass-through milter, "
               "bench/milter_pass): what a milter costs",
               "## Postfix against postfix-milter (the same milter as smtpd_milters)",
               "## With the milter: chamois-milter against postfix-milter"),
    "lmtp": ("chamois-lmtp", "postfix-lmtp", "lmtp_cpu_ms_per_msg", "Dovecot",
             "## chamois against chamois-lmtp (local_delivery lmtp, Dovecot's LMTP): "
             "what delivering through Dovecot costs",
             "## Postfix against postfix-lmtp (virtual_transport = lmtp:unix:, "
             "the same Dovecot)",
             "## Through Dovecot's LMTP: chamois-lmtp against postfix-lmtp"),
}


def alongside_report(sc, kind: str) -> List[str]:
    """chamois and Postfix, each without and with ALONGSIDE[kind]'s helper
    (a milter, or Dovecot's LMTP for local delivery): what the helper costs
    each, and the two servers with it side by side, the helper's own CPU
    given apart."""
    ours, theirs, field, who, t_ours, t_theirs, t_both = ALONGSIDE[kind]
    out = compare_report(sc, "chamois", ours, t_ours)
    out += compare_report(sc, "postfix", theirs, t_theirs)
    rows = []
    for k in sorted(sc, key=lambda k: [int(x) if x.isdigit() else x for x in
                                       k.replace("k/", "/").split("/")]):
        c, p = sc[k].get(ours), sc[k].get(theirs)
        if not c or not p:
            continue
        rows.append("| %s | %s | %s | %s | %s (%s) | %s (%s) | %s |" % (
            k, fmt(c.get("per_second")), fmt(p.get("per_second")),
            fmt(c["per_second"] / p["per_second"], "%.2f") if p.get("per_second") else "–",
            fmt(c.get("cpu_ms_per_msg"), "%.3f"), fmt(c.get(field), "%.3f"),
            fmt(p.get("cpu_ms_per_msg"), "%.3f"), fmt(p.get(field), "%.3f"),
            fmt(p["cpu_ms_per_msg"] / c["cpu_ms_per_msg"], "%.2f")
            if c.get("cpu_ms_per_msg") else "–"))
    if rows:
        out += [t_both, "",
                "CPU ms per message of the whole server, %s included (in "
                "brackets: %s's own)." % (who, who), "",
                "| scenario | %s msg/s | %s msg/s | × | %s CPU ms/msg (%s) | %s (%s) "
                "| its CPU / this |" % (ours, theirs, ours, who, theirs, who),
                "|---|---|---|---|---|---|---|"] + rows + [""]
    return out


def signed_report(sc) -> List[str]:
    """The queue with DKIM signing beside the unsigned figures, and the CPU
    per signature (bench/dkim_sign)."""
    out = []
    q = sc.get("queue/20", {})
    base, pf = q.get("chamois"), q.get("postfix")
    what = {"chamois": "none", "chamois-ed25519": "Ed25519", "chamois-rsa": "RSA 2048",
            "chamois-rsa+ed25519": "RSA 2048 + Ed25519", "postfix": "none",
            "postfix-rsa": "RSA 2048 (OpenDKIM milter)"}
    rows = []
    for n in ["chamois"] + [k for k in SIGNED if k.startswith("chamois")] + \
            ["postfix", "postfix-rsa"]:
        m = q.get(n)
        if not m:
            continue
        cpu = m.get("cpu_ms_per_msg")
        # chamois's rows: over unsigned chamois, and against Postfix signing
        # the same way (RSA: postfix-rsa; else unsigned Postfix); Postfix's
        # rows: over unsigned Postfix
        own = base if n.startswith("chamois") else pf
        peer = None
        if n.startswith("chamois"):
            peer = q.get("postfix-rsa") if n == "chamois-rsa" else pf
        extra = fmt(cpu - own["cpu_ms_per_msg"], "%+.3f") if own and cpu else "–"
        xpf = fmt(m["per_second"] / peer["per_second"], "%.2f") if peer else "–"
        cpf = fmt(peer["cpu_ms_per_msg"] / cpu, "%.2f") if peer and cpu else "–"
        noop = "%s / %s / %s" % tuple(fmt(m.get(k), "%.2f") for k in
                                      ("noop_p50_ms", "noop_p99_ms", "noop_max_ms"))
        late = m.get("loop_late_max_ms")
        late = "–" if late is None else ("none" if late == 0 else "%d ms" % late)
        rows.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            n, what[n], fmt(m.get("per_second")), fmt(cpu, "%.3f"), extra, xpf, cpf,
            noop, late))
    if len(rows) > 1:
        out += ["## Queue with DKIM signing: sendmail ×20 until smtp-sink has them", "",
                "| server | signatures | msg/s | CPU ms/msg | CPU over unsigned | "
                "× postfix (RSA: postfix-rsa) | its CPU / this | NOOP on the port p50 / p99 / max (ms) "
                "| loop late (≥ 5 ms) |", "|" + "---|" * 9] + rows + [""]
    d = sc.get("dkim-sign", {}).get("chamois")
    if d:
        names = [("ed25519", "Ed25519"), ("rsa", "RSA 2048"),
                 ("rsa+ed25519", "both (two signatures)"),
                 ("openssl-rsa", "OpenSSL RSA 2048, key loaded once"),
                 ("openssl-rsa-pem", "OpenSSL RSA 2048, PEM parsed each time")]
        out += ["## CPU per DKIM signature, 4 KiB message, one thread (bench/dkim_sign)", "",
                "| signing | µs per message |", "|---|---|"]
        out += ["| %s | %s |" % (label, fmt(d.get(k + "_cpu_us"), "%.0f"))
                for k, label in names if k + "_cpu_us" in d] + [""]
    return out


def plot(res, out: Path):
    """throughput.png: inbound 4 KiB messages/s against sessions, per server."""
    sc = res["scenarios"]
    if not shutil.which("gnuplot") or not any(k.startswith("inbound/4k/") for k in sc):
        return
    for mode in ("conn", "reuse"):
        data = out / ("inbound-%s.dat" % mode)
        lines = ["sessions " + " ".join(SERVER_NAMES)]      # gnuplot's columnhead
        for s in (1, 20, 100):
            k = "inbound/4k/%s/%d" % (mode, s)
            row = [str(s)] + [fmt(sc.get(k, {}).get(n, {}).get("per_second"), "%.1f").replace("–", "NaN")
                              for n in SERVER_NAMES]
            lines.append(" ".join(row))
        data.write_text("\n".join(lines) + "\n")
    script = """set terminal pngcairo size 900,420 font ",10"
set output "%(png)s"
set multiplot layout 1,2 title "Inbound to Maildir, 4 KiB messages (median of %(runs)d runs)"
set logscale x
set xtics (1, 20, 100)
set xlabel "concurrent sessions"
set ylabel "messages per second"
set key top left
set grid
set yrange [0:*]
set title "a new connection per message"
plot for [i=2:5] "%(conn)s" using 1:i with linespoints lw 2 title columnhead(i)
set title "reused sessions (smtp-source -d)"
plot for [i=2:5] "%(reuse)s" using 1:i with linespoints lw 2 title columnhead(i)
unset multiplot
""" % {"png": out / "throughput.png", "runs": res["runs"],
       "conn": out / "inbound-conn.dat", "reuse": out / "inbound-reuse.dat"}
    (out / "throughput.gp").write_text(script)
    subprocess.run(["gnuplot", str(out / "throughput.gp")], check=False)


def prepare():
    for name in SERVER_NAMES:
        try:
            common.unpack("postfix")        # smtp-source and smtp-sink
            server_class(name).prepare()
            print("prepared %s" % name)
        except Unavailable as e:
            print("%s: unavailable: %s" % (name, e))
    for pkg, who in (("opendkim", "postfix-rsa"),       # postfix-rsa's milter (SIGNED)
                     ("libmilter1.0.1", "postfix-rsa"),
                     ("libmilter-dev", "chamois-milter")):      # bench/milter_pass
        try:
            common.unpack(pkg)
        except Unavailable as e:
            print("%s: unavailable: %s" % (who, e))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=["prepare", "run", "report"])
    ap.add_argument("--servers", default=",".join(SERVER_NAMES))
    ap.add_argument("--scenarios", default="disk,dkim,inbound,forward,latency,queue,idle")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a tenth of the messages, 1 run")
    ap.add_argument("--baseline", metavar="REV",
                    help="also run chamois built from git commit REV (chamois-base)")
    ap.add_argument("--name", help="results folder name (default: a time stamp)")
    a = ap.parse_args()
    if a.cmd == "prepare":
        return prepare()
    if a.cmd == "report":           # the table and the plot again, from results.json
        out = BENCH / "results" / (a.name or "latest")
        res = json.loads((out / "results.json").read_text())
        (out / "table.md").write_text(report(res))
        plot(res, out)
        print(report(res))
        return
    if os.geteuid() != 0:
        raise SystemExit("bench.py run: needs root, inside the bench's network namespace "
                         "(use bench/run.sh or make bench)")
    if not os.environ.get("CHAMOIS_BENCH_NETNS"):
        raise SystemExit("bench.py run: only inside the bench's network namespace "
                         "(bench/run.sh makes it)")
    a.servers = [s for s in a.servers.split(",") if s]
    a.scenarios = set(a.scenarios.split(","))
    if a.quick:
        a.runs = 1
    Bench(a).main()


if __name__ == "__main__":
    main()

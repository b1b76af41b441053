#!/usr/bin/python3
"""auth_load.py - SCRAM-SHA-256 logins on the submission port, and one
honest session on port 25 whose NOOP latency shows whether the event loop
is kept waiting (issue 13, doc/performance.md "Logins and the event loop").

  bench/auth_load.py [--rate 50] [--seconds 10] [--noop-ms 20]
                     [--starttls] [--plain] [--binary PATH] [--runs N] [--json FILE]

Starts its own chamoisd (bin/chamoisd or --binary, a temporary config on
free loopback ports, a dead dns_server) with a sasldb made by saslpasswd2
holding one user (so with its SCRAM-SHA-256 secret), then:

  idle   the honest session alone for a few seconds: a NOOP every --noop-ms
         on average, at random times (Poisson)
  load   the same, while --rate SCRAM-SHA-256 logins a second (each its own
         connection: implicit TLS on the submissions port, or --starttls on
         the submission port) run for --seconds

and prints the NOOP latency p50/p95/p99/max of both phases, the logins
done and failed, their own duration and chamoisd's CPU time per login.
The honest session runs in a process of its own, so that the load's
Python threads cannot delay its reads.  The client's PBKDF2 is computed
once (the salt and iteration count are the user's, fixed), so the load
costs the client little CPU.  Bounded (every phase stops after its time,
every socket has a timeout); loopback only; the daemon is stopped at the
end, whatever happened.  No pass/fail on timing: exit 1 only when a login
or a NOOP failed.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/integration"))
import harness  # noqa: E402
from peers.sasl import saslpasswd, submission_conf  # noqa: E402

USER, PASSWORD = "alice@example.test", "alice's s3cret pass"
IO_TIMEOUT = 30
HZ = os.sysconf("SC_CLK_TCK")


class Lines:
    """CRLF lines over a socket (plain or TLS)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("closed by the server")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """The last line of a (multi-line) reply."""
        while True:
            line = self.line()
            if len(line) < 4 or line[3] != "-":
                return line

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def cmd(self, text, want):
        self.send(text)
        r = self.reply()
        if not r.startswith(want):
            raise RuntimeError("%s -> %s" % (text.split(" ", 2)[:2], r))
        return r


# --------------------------------------------------------------------------
# SCRAM-SHA-256 (RFC 5802, RFC 7677), the client side

_salted = {}
_salted_lock = threading.Lock()


def _salted_password(salt, iterations):
    with _salted_lock:
        key = (salt, iterations)
        if key not in _salted:
            _salted[key] = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, iterations)
        return _salted[key]


def _hmac(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def scram_login(host, port, ctx, starttls, mech="SCRAM-SHA-256"):
    """One connection, one SCRAM-SHA-256 (or PLAIN) login; the seconds it
    took."""
    t0 = time.monotonic()
    raw = socket.create_connection((host, port), IO_TIMEOUT)
    sock = raw
    try:
        if not starttls:
            sock = ctx.wrap_socket(raw, server_hostname="mx.example.test")
        c = Lines(sock)
        if not c.reply().startswith("220"):
            raise RuntimeError("no greeting")
        c.cmd("EHLO load.client.test", "250")
        if starttls:
            c.cmd("STARTTLS", "220")
            sock = ctx.wrap_socket(raw, server_hostname="mx.example.test")
            c = Lines(sock)
            c.cmd("EHLO load.client.test", "250")
        if mech == "PLAIN":
            r = c.cmd("AUTH PLAIN " + base64.b64encode(
                ("\0%s\0%s" % (USER, PASSWORD)).encode()).decode(), "235")
            c.send("QUIT")
            return time.monotonic() - t0
        nonce = base64.b64encode(os.urandom(18)).decode()
        name = USER.replace("=", "=3D").replace(",", "=2C")
        first_bare = "n=%s,r=%s" % (name, nonce)
        r = c.cmd("AUTH SCRAM-SHA-256 " + base64.b64encode(
            ("n,," + first_bare).encode()).decode(), "334 ")
        server_first = base64.b64decode(r[4:]).decode()
        attrs = dict(a.split("=", 1) for a in server_first.split(","))
        if not attrs["r"].startswith(nonce):
            raise RuntimeError("bad server nonce")
        salted = _salted_password(base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = _hmac(salted, b"Client Key")
        final_bare = "c=biws,r=%s" % attrs["r"]
        auth_msg = ("%s,%s,%s" % (first_bare, server_first, final_bare)).encode()
        sig = _hmac(hashlib.sha256(client_key).digest(), auth_msg)
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        r = c.cmd(base64.b64encode(("%s,p=%s" % (
            final_bare, base64.b64encode(proof).decode())).encode()).decode(), "")
        if r.startswith("334 "):
            server_final = base64.b64decode(r[4:]).decode()
            want = base64.b64encode(_hmac(_hmac(salted, b"Server Key"), auth_msg)).decode()
            if server_final != "v=" + want:
                raise RuntimeError("bad server signature")
            r = c.cmd("", "")
        if not r.startswith("235"):
            raise RuntimeError("login: " + r)
        c.send("QUIT")
        return time.monotonic() - t0
    finally:
        sock.close()


def run_load(host, port, starttls, rate, seconds, mech):
    """rate logins a second for seconds (each at its own start time);
    (durations, failures)."""
    ctx = harness.unverified_context()
    durations, failures = [], []
    n = int(rate * seconds)
    start = time.monotonic() + 0.2

    def one(i):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            durations.append(scram_login(host, port, ctx, starttls, mech))
        except Exception as e:  # noqa: BLE001 - counted and shown
            failures.append(repr(e))

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(one, range(n)))
    return durations, failures


# --------------------------------------------------------------------------
# the honest session (a process of its own: python3 auth_load.py probe ...)


def probe(host, port, seconds, interval):
    """NOOPs for seconds (or until SIGTERM), at random times interval
    seconds apart on average (a Poisson process: the NOOPs sample the
    loop's state without locking on to the logins' own period); latencies
    in ms on stdout."""
    lat, errors = [], 0
    ended = []
    signal.signal(signal.SIGTERM, lambda *_: ended.append(True))
    sock = socket.create_connection((host, port), IO_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = Lines(sock)
    c.reply()
    c.cmd("EHLO honest.client.test", "250")
    stop = time.monotonic() + seconds
    nxt = time.monotonic()
    while time.monotonic() < stop and not ended:
        t0 = time.perf_counter()
        c.send("NOOP")
        if not c.reply().startswith("250"):
            errors += 1
        lat.append((time.perf_counter() - t0) * 1000)
        nxt += random.expovariate(1 / interval)
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    c.send("QUIT")
    sock.close()
    json.dump({"ms": lat, "errors": errors}, sys.stdout)


def start_probe(host, port, seconds, interval):
    return subprocess.Popen([sys.executable, __file__, "probe", host, str(port),
                             str(seconds), str(interval)], stdout=subprocess.PIPE)


def end_probe(p, seconds):
    out, _ = p.communicate(timeout=seconds + 60)
    return json.loads(out)


def pct(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    return v[min(len(v) - 1, int(q * len(v)))]


def summary(ms):
    return {"n": len(ms), "p50": pct(ms, 0.50), "p95": pct(ms, 0.95),
            "p99": pct(ms, 0.99), "max": max(ms) if ms else float("nan")}


def cpu_ticks(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])        # utime + stime


def run_once(a):
    """One daemon, the idle phase, the load phase: the figures (a dict)."""
    load_avg = os.getloadavg()[0]
    d = Path(tempfile.mkdtemp(prefix="chamois-authload-"))
    db = d / "sasldb2"
    saslpasswd(db, USER, PASSWORD)
    port, sport = harness.free_port(), harness.free_port()
    daemon = harness.Chamoisd(d / "d", binary=Path(a.binary).resolve() if a.binary else None,
                              extra_conf=submission_conf(port, sport, db))
    mech = "PLAIN" if a.plain else "SCRAM-SHA-256"
    try:
        daemon.start()
        host = daemon.host
        sub_port = port if a.starttls else sport
        # warm up: one login (loads nothing new, but fills caches)
        scram_login(host, sub_port, harness.unverified_context(), a.starttls, mech)

        p = start_probe(host, daemon.port, a.idle_seconds, a.noop_ms / 1000)
        idle = end_probe(p, a.idle_seconds)

        cpu0 = cpu_ticks(daemon.proc.pid)
        p = start_probe(host, daemon.port, a.seconds + 0.5, a.noop_ms / 1000)
        time.sleep(0.3)             # the probe is connected and going
        t0 = time.monotonic()
        durations, failures = run_load(host, sub_port, a.starttls, a.rate, a.seconds,
                                       mech)
        wall = time.monotonic() - t0
        loaded = end_probe(p, a.seconds + 0.5)
        cpu = (cpu_ticks(daemon.proc.pid) - cpu0) * 1000 / HZ
    finally:
        daemon.stop()
        if not a.keep:
            shutil.rmtree(d, ignore_errors=True)
    return {
        "mechanism": mech, "rate": a.rate, "seconds": a.seconds,
        "port": "submission+STARTTLS" if a.starttls else "submissions (implicit TLS)",
        "noop_idle": summary(idle["ms"]), "noop_load": summary(loaded["ms"]),
        "noop_errors": idle["errors"] + loaded["errors"],
        "logins": len(durations), "login_failures": len(failures),
        "logins_per_s": len(durations) / wall if wall > 0 else 0,
        "login_ms": summary([x * 1000 for x in durations]),
        "chamoisd_cpu_ms_per_login": cpu / max(1, len(durations)),
        "load_average_before": load_avg, "failures": failures[:5],
    }


def median_of(runs):
    """Each figure's median over the runs."""
    out = dict(runs[0])
    for key in ("logins", "login_failures", "logins_per_s", "chamoisd_cpu_ms_per_login",
                "load_average_before", "noop_errors"):
        out[key] = statistics.median([r[key] for r in runs])
    for key in ("noop_idle", "noop_load", "login_ms"):
        out[key] = {k: statistics.median([r[key][k] for r in runs]) for k in runs[0][key]}
    out["failures"] = [f for r in runs for f in r["failures"]][:5]
    return out


def show(a, res):
    print("%s logins: %d done, %d failed, %.1f/s achieved (asked %.0f/s, %s; "
          "load average %.2f before)"
          % (res["mechanism"], res["logins"], res["login_failures"], res["logins_per_s"],
             a.rate, res["port"], res["load_average_before"]))
    for f in res["failures"]:
        print("  failure:", f)
    lm = res["login_ms"]
    print("login time ms: p50 %.1f  p95 %.1f  max %.1f; chamoisd CPU %.2f ms per login"
          % (lm["p50"], lm["p95"], lm["max"], res["chamoisd_cpu_ms_per_login"]))
    print("NOOP on port 25, ~every %.0f ms:    n     p50    p95    p99    max (ms)" % a.noop_ms)
    for name in ("idle", "load"):
        s = res["noop_" + name]
        print("  %-30s %5d  %6.2f %6.2f %6.2f %6.2f"
              % ("alone" if name == "idle" else "during the logins",
                 s["n"], s["p50"], s["p95"], s["p99"], s["max"]))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "probe":
        probe(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--idle-seconds", type=float, default=3)
    ap.add_argument("--noop-ms", type=float, default=20)
    ap.add_argument("--starttls", action="store_true",
                    help="submission port and STARTTLS (default: submissions, 465 role)")
    ap.add_argument("--plain", action="store_true",
                    help="PLAIN logins instead: the same connections and TLS "
                    "handshakes, no key derivation")
    ap.add_argument("--binary", help="chamoisd to run (default bin/chamoisd)")
    ap.add_argument("--runs", type=int, default=1,
                    help="repeat with a fresh daemon; then the figures are the medians")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (config, log)")
    a = ap.parse_args()
    runs = []
    for _ in range(a.runs):
        runs.append(run_once(a))
        show(a, runs[-1])
    res = runs[0]
    if a.runs > 1:
        res = median_of(runs)
        print("median of %d runs:" % a.runs)
        show(a, res)
        res["runs"] = runs
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 1 if any(r["login_failures"] or r["noop_errors"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())

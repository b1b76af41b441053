#!/usr/bin/env python3
"""hostile.py - 2,000 hostile connections against chamoisd on loopback, and
one honest client that must still get its mail delivered.

  bench/hostile.py [--connections N] [--seconds S]

Starts its own chamoisd (bin/chamoisd, a temporary config on free loopback
ports, a dead dns_server), opens N connections from 127.0.0.1-127.0.0.40
split between slow talkers (one byte a second), garbage senders (random
lines) and oversized lines (64 KiB without a newline, again and again),
keeps them busy for S seconds, and meanwhile delivers honest messages with
smtplib every second, timing each.  Prints chamoisd's peak RSS, how many
hostile connections were open, and the honest deliveries' times.  Bounded:
everything stops after S seconds; loopback only.
"""
import argparse
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/integration"))
from peers.hostile_load import run_load  # noqa: E402  (the load the test uses)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def honest(port, stop, times, maildir):
    n = 0
    while time.monotonic() < stop:
        t0 = time.monotonic()
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.sendmail("friend@remote.test", ["alice@example.test"],
                           b"Subject: honest %d\r\n\r\nhello\r\n" % n)
            times.append(time.monotonic() - t0)
        except Exception as e:
            times.append(None)
            print("honest delivery failed:", e, file=sys.stderr)
        n += 1
        time.sleep(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=20)
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="chamois-hostile-"))
    port = free_port()
    (d / "mailboxes").write_text("alice@example.test\n")
    (d / "chamois.conf").write_text(
        "hostname mx.example.test\nlisten mx 127.0.0.1:%d\ndomains example.test\n"
        "mailboxes mailboxes\nmaildir_root maildir\nqueue_dir queue\n"
        "dns_server 127.0.0.1:9\nmax_connections %d\n"
        "max_connections_per_address 100\n" % (port, a.connections + 100))
    log = open(d / "log", "w")
    proc = subprocess.Popen([str(ROOT / "bin/chamoisd"), "-d", "-f", str(d / "chamois.conf")],
                            stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        base = rss_kib(proc.pid)
        peak = [base]
        times = []

        def sample():
            peak[0] = max(peak[0], rss_kib(proc.pid))

        stats = run_load("127.0.0.1", port, a.connections, a.seconds,
                         during=lambda stop: honest(port, stop, times, d / "maildir"),
                         sample=sample)
        ok = [x for x in times if x is not None]
        delivered = len(list((d / "maildir/example.test/alice/new").glob("*")))
        print("hostile connections: %d opened, %d refused, %d closed by the server"
              % (stats["open"], stats["refused"], stats["closed_by_server"]))
        print("chamoisd RSS: %d KiB before, %d KiB peak (%.1f KiB per hostile connection)"
              % (base, peak[0], (peak[0] - base) / max(1, stats["open"])))
        print("honest deliveries: %d of %d succeeded, %d in the Maildir; time median %.3f s, max %.3f s"
              % (len(ok), len(times), delivered, sorted(ok)[len(ok) // 2] if ok else -1,
                 max(ok) if ok else -1))
        return 0 if ok and len(ok) == len(times) else 1
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


if __name__ == "__main__":
    sys.exit(main())

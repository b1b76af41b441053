#!/usr/bin/python3
"""idle.py - what idle connections cost a server (issue 8, scenario d).

    /usr/bin/python3 bench/idle.py --port P --pid PID [--count 10000]
        [--hold 3] [--host 127.0.0.1] [--per-source 250] [--burst 200]
        [--timeout 120]

Opens COUNT TCP connections to HOST:PORT, each bound first to a source
address of its own group (127.0.0.2, 127.0.0.3, ... PER_SOURCE connections
each, so the server's per-address limit need only be PER_SOURCE), at most
BURST of them waiting for their greeting at once; reads each greeting (220)
and then holds them all idle for HOLD seconds. All of 127.0.0.0/8 is local
on lo, so this works in a network namespace that has only loopback.

Measures the server's memory as PSS summed over PID and all its descendants
(bench/procstat.py) before the first connection and after the hold, and
prints one line:

    connections=10000 greeted=10000 pss_before_kib=2100 pss_after_kib=9000
        per_conn_bytes=706.6 rss_before_kib=... rss_after_kib=...
        rejected=0 failed=0 closed_early=0 sources=40 seconds=1.52

connections: answered (220 or otherwise); greeted: answered 220 (per_conn_bytes divides
the PSS growth by this); rejected: greeted with anything else (421 when a
limit is hit); failed: refused or reset before a greeting; closed_early:
greeted, then closed by the server during the hold; seconds: time to
establish and greet them all. Everything is closed at the end. The whole
run is bounded by TIMEOUT seconds: past it the line is still printed, and
the exit status is 1, as it is when fewer than COUNT were greeted.

RLIMIT_NOFILE is raised to COUNT + 64 when needed (root may raise the hard
limit too); the server needs as many descriptors, which is its starter's
business.
"""

import argparse
import errno
import ipaddress
import os
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procstat  # noqa: E402

# Linux: take the source port at connect(), not bind(), so that bound
# sockets do not each reserve a port of the whole ephemeral range
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
    except (ValueError, OSError):
        if hard < need:
            sys.exit("idle: need %d file descriptors but the hard limit is"
                     " %d and cannot be raised; raise it (ulimit -Hn) or"
                     " lower --count" % (need, hard))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def source_addresses(first):
    """127.0.0.2, 127.0.0.3, ... skipping x.x.x.0 and x.x.x.255."""
    a = int(ipaddress.IPv4Address(first))
    while True:
        if a & 0xff not in (0, 255):
            if a >> 24 != 127:
                sys.exit("idle: ran out of 127.0.0.0/8 source addresses")
            yield str(ipaddress.IPv4Address(a))
        a += 1


class Conn:
    __slots__ = ("sock", "buf", "greeted")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.greeted = False


def main():
    ap = argparse.ArgumentParser(description="hold idle SMTP connections"
                                 " and measure the server's PSS growth")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True,
                    help="the server's (top) process")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--hold", type=float, default=3.0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--per-source", type=int, default=250,
                    help="connections per source address")
    ap.add_argument("--first-source", default="127.0.0.2")
    ap.add_argument("--burst", type=int, default=200,
                    help="connections awaiting their greeting at once")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    if args.count < 1 or args.per_source < 1 or args.burst < 1:
        ap.error("--count, --per-source and --burst must be at least 1")
    if not os.path.exists("/proc/%d" % args.pid):
        sys.exit("idle: no process %d" % args.pid)

    raise_nofile(args.count + 64)
    start = time.monotonic()
    deadline = start + args.timeout
    pss_before = procstat.pss_kib(args.pid)
    rss_before = procstat.rss_kib(args.pid)

    sel = selectors.DefaultSelector()
    sources = source_addresses(args.first_source)
    source, used, nsources = None, args.per_source, 0
    opened = connected = greeted = rejected = failed = closed_early = 0
    waiting = 0                 # opened, not yet greeted or gone
    conns = []
    timed_out = False
    established_at = None

    def drop(conn):
        sel.unregister(conn.sock)
        conn.sock.close()

    def on_readable(conn):
        nonlocal waiting, greeted, rejected, failed, closed_early, connected
        try:
            data = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = None
        if not data:
            if conn.greeted:
                closed_early += 1
            else:
                failed += 1
                waiting -= 1
            drop(conn)
            return
        if conn.greeted:
            return              # a late 421 and close follow; counted then
        conn.buf += data
        while b"\n" in conn.buf:
            line, conn.buf = conn.buf.split(b"\n", 1)
            if line[:4] == b"220-":
                continue
            waiting -= 1
            connected += 1
            if line[:4] == b"220 " or line.rstrip(b"\r") == b"220":
                conn.greeted = True
                conn.buf = b""
                greeted += 1
            else:
                rejected += 1
                drop(conn)
            return

    while True:
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        while opened < args.count and waiting < args.burst:
            if used == args.per_source:
                source, used = next(sources), 0
                nsources += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((source, 0))
                s.setblocking(False)
                e = s.connect_ex((args.host, args.port))
            except OSError as exc:
                s.close()
                sys.exit("idle: connection %d from %s: %s"
                         % (opened + 1, source, exc))
            used += 1
            opened += 1
            conn = Conn(s)
            conns.append(conn)
            if e not in (0, errno.EINPROGRESS):
                failed += 1
                s.close()
                continue
            waiting += 1
            sel.register(s, selectors.EVENT_READ, conn)
        if opened == args.count and waiting == 0:
            if established_at is None:
                established_at = time.monotonic()
            if time.monotonic() >= established_at + args.hold:
                break
        wait = min(deadline, (established_at + args.hold)
                   if established_at is not None else deadline) - now
        for key, _ in sel.select(timeout=max(0.0, min(wait, 1.0))):
            on_readable(key.data)

    pss_after = procstat.pss_kib(args.pid)
    rss_after = procstat.rss_kib(args.pid)
    seconds = (established_at or time.monotonic()) - start
    for conn in conns:
        if conn.sock.fileno() != -1:
            conn.sock.close()
    sel.close()

    per_conn = ((pss_after - pss_before) * 1024.0 / greeted
                if greeted else 0.0)
    print("connections=%d greeted=%d pss_before_kib=%d pss_after_kib=%d"
          " per_conn_bytes=%.1f rss_before_kib=%d rss_after_kib=%d"
          " rejected=%d failed=%d closed_early=%d sources=%d seconds=%.2f"
          % (connected, greeted, pss_before, pss_after, per_conn,
             rss_before, rss_after, rejected, failed, closed_early,
             nsources, seconds), flush=True)
    if timed_out:
        print("idle: timed out after %g s with %d of %d greeted"
              % (args.timeout, greeted, args.count), file=sys.stderr)
        return 1
    if greeted < args.count or closed_early:
        print("idle: %d of %d greeted and held (rejected %d, failed %d,"
              " closed early %d)" % (greeted - closed_early, args.count,
                                     rejected, failed, closed_early),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

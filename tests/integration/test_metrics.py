"""metrics_listen (doc/chamoisd.8, "METRICS"): OpenMetrics text at GET
/metrics from a real chamoisd after real traffic: a local delivery, a refused
RCPT, a forward to a remote that refuses (peers/remote.py), a STARTTLS, a
message queued for a remote that is down; what a user would check on the page, and what the
endpoint refuses (another path, an over-long request header)."""

import re
import socket
import subprocess
import urllib.error
import urllib.request

from harness import ROOT, free_port, sample_message, wait_until
from peers.remote import assert_reply, fwd_env, transaction  # noqa: F401

ALIASES = {"fwd@example.test": ["carol@refusing.test"]}
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def get(port, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def parse(text):
    """The page -> {(name, ((label, value), ...)): float}; checks the
    OpenMetrics framing on the way ("# EOF" last, one family's samples
    together)."""
    lines = text.split("\n")
    assert lines[-2:] == ["# EOF", ""], lines[-3:]
    out, families, current = {}, [], None
    for line in lines[:-2]:
        if line.startswith("# TYPE "):
            current = line.split()[2]
            assert current not in families, "family %s twice" % current
            families.append(current)
            continue
        if line.startswith("# HELP "):
            continue
        m = SAMPLE_RE.match(line)
        assert m, "not a sample: %r" % line
        name, labels, value = m.groups()
        assert name == current or name.startswith(current + "_"), (name, current)
        pairs = tuple(sorted(LABEL_RE.findall(labels or "")))
        out[(name, pairs)] = float(value)
    return out


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_after_traffic(fwd_env):
    fwd_env.remote("refusing.test", rcpt={"carol@refusing.test": "550 5.1.1 no carol here"})
    fwd_env.closed_remote("down.test")
    port = free_port()
    d = fwd_env.daemon(aliases=ALIASES, extra_conf="metrics_listen 127.0.0.1:%d" % port)
    wait_until(lambda: "ready version=" in d.log(), timeout=20, what="chamoisd ready")

    out = transaction(d, "joe@sender.test", ["alice@example.test"], sample_message("local"))
    assert_reply(out["eod"], "250 2.0.0")
    out = transaction(d, "joe@sender.test", ["nobody@example.test"])
    assert_reply(out["rcpt"][0], "550 5.1.1")
    out = transaction(d, "joe@sender.test", ["fwd@example.test"], sample_message("fwd"))
    assert_reply(out["rcpt"][0], "550 5.1.1", "no carol here")
    with d.dialog() as c:
        c.cmd("EHLO client.sender.test", "250")
        c.starttls()
        tls_in = c.tls_version()
        c.cmd("EHLO client.sender.test", "250")
        c.cmd("QUIT", "221")
    msg = b"From: joe@example.test\nSubject: queued\n\nfor a host that is down\n"
    p = subprocess.run([str(ROOT / "bin" / "chamois-sendmail"), "-C", str(d.conf), "-i",
                        "-f", "joe@example.test", "--", "dan@down.test"],
                       input=msg, capture_output=True, timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)

    def deferred_and_aged():
        s = parse(get(port)[2])
        ok = (value(s, "chamois_messages_total", route="queue", outcome="deferred") or 0) >= 1 \
            and (value(s, "chamois_queue_oldest_age_seconds") or 0) > 0
        return s if ok else None
    s = wait_until(deferred_and_aged, timeout=30, interval=0.3,
                   what="a deferred queued message at least a second old")

    status, ctype, _ = get(port)
    assert status == 200 and ctype.startswith("application/openmetrics-text"), ctype
    # four SMTP sessions on the mx role; none on the others
    assert value(s, "chamois_connections_total", role="mx") >= 4, s
    assert value(s, "chamois_connections_total", role="submission") == 0
    assert value(s, "chamois_messages_total", route="local", outcome="delivered") == 1
    assert value(s, "chamois_messages_total", route="forward", outcome="refused") == 1
    assert value(s, "chamois_messages_total", route="forward", outcome="sent") == 0
    # both refusals at RCPT (the unknown mailbox and the remote's 550)
    assert value(s, "chamois_rcpt_refused_total", role="mx", **{"class": "5xx"}) == 2
    # the refusing target: one refusal in a row, last class 5
    assert value(s, "chamois_forward_target_failures_in_row", domain="refusing.test") >= 1
    assert value(s, "chamois_forward_target_last_reply_class", domain="refusing.test") == 5
    assert value(s, "chamois_forward_target_replies_total", domain="refusing.test",
                 **{"class": "5xx"}) == 1
    # the queue: one message, one recipient still to go
    assert value(s, "chamois_queue_messages") == 1
    assert value(s, "chamois_queue_recipients") == 1
    assert value(s, "chamois_queue_oldest_age_seconds") > 0
    # one inbound STARTTLS, under the version the client saw
    assert value(s, "chamois_tls_handshakes_total", direction="in", version=tls_in) == 1
    assert sum(v for (n, l), v in s.items()
               if n == "chamois_tls_handshakes_total" and ("direction", "in") in l) == 1


def test_metrics_refuses_other_paths_and_huge_headers(fwd_env):
    port = free_port()
    d = fwd_env.daemon(extra_conf="metrics_listen 127.0.0.1:%d" % port)
    wait_until(lambda: "ready version=" in d.log(), timeout=20, what="chamoisd ready")
    for path in ("/", "/metrics/x", "/other"):
        try:
            get(port, path)
            raise AssertionError("%s answered 200" % path)
        except urllib.error.HTTPError as e:
            assert e.code == 404, (path, e.code)
    # a request header far beyond the bound: refused, never a page
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
        got = b""
        try:
            while len(got) < 65536:
                b = c.recv(4096)
                if not b:
                    break
                got += b
        except (ConnectionResetError, BrokenPipeError):
            pass
    assert got.startswith(b"HTTP/1.1 400 "), got[:200]
    assert b"# EOF" not in got
    # and the endpoint still serves the next client
    status, _, text = get(port)
    assert status == 200 and text.endswith("# EOF\n")


def test_metrics_listen_checked_and_bound(fwd_env):
    """-n names a bad value with its line; a port already taken stops the start."""
    d = fwd_env.daemon(extra_conf="metrics_listen localhost", start=False)
    rc, out = d.check_config()
    n = d.conf_line_number("metrics_listen")
    assert rc == 1 and ":%d: metrics_listen: 'localhost' is not ADDRESS:PORT" % n in out, out
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        d2 = fwd_env.daemon(extra_conf="metrics_listen 127.0.0.1:%d" % port, start=False)
        p = subprocess.run([str(d2.binary), "-d", "-f", str(d2.conf)], cwd=str(d2.dir),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=30)
    assert p.returncode == 1, p
    assert "metrics_listen 127.0.0.1:%d: Address already in use" % port in p.stderr, p

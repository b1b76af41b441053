"""The systemd unit (etc/chamoisd.service.in) and the certbot deploy hook
(etc/certbot-deploy-hook.in); doc/chamoisd.8, "SYSTEMD" and "TLS KEYS".

systemd-analyze rates the unit offline.  The unit itself cannot run here
(no systemd as PID 1), so what it does to chamoisd is reproduced with
setpriv: chamoisd starts as an unprivileged user with only
CAP_NET_BIND_SERVICE (ambient, the only one in the bounding set) and
no_new_privs, as User= AmbientCapabilities= CapabilityBoundingSet=
NoNewPrivileges= start it, and, in a mount namespace of its own, with
only queue_dir and maildir_root writable as ProtectSystem=strict and
ReadWritePaths= leave it; it receives mail on a port below 1024, takes a
local user's chamois-sendmail through the socket in queue_dir and reloads
on SIGHUP, under the unit's seccomp filter (SystemCallFilter=,
RestrictAddressFamilies=, MemoryDenyWriteExecute=; unit_seccomp.py).
PrivateTmp=, PrivateDevices= and the other namespaces are not reproduced.  The hook runs against a certbot-like tree in a temp
folder, with CHAMOIS_RELOAD in place of `systemctl`.
"""

import ctypes.util
import os
import pwd
import sys
import grp
import re
import shutil
import socket
import ssl
import subprocess

import pytest

from pathlib import Path

from harness import ROOT, Chamoisd, dot_stuff, sample_message, wait_until

UNIT_IN = ROOT / "etc" / "chamoisd.service.in"
HOOK_IN = ROOT / "etc" / "certbot-deploy-hook.in"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                reason="starting as another user needs root and setpriv")


def render(src, dest, sbindir="/usr/sbin"):
    """The .in file with the paths the Makefile substitutes (the package's)."""
    text = src.read_text(encoding="utf-8")
    for k, v in (("@SBINDIR@", sbindir), ("@SYSCONFDIR@", "/etc"),
                 ("@LOCALSTATEDIR@", "/var")):
        text = text.replace(k, v)
    dest.write_text(text, encoding="utf-8")
    return dest


@needs_analyze
def test_unit_exposure_at_most_2_5(tmp_path):
    unit = render(UNIT_IN, tmp_path / "chamoisd.service")
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                        "--threshold=25", "--no-pager", str(unit)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    m = re.search(r"Overall exposure level for chamoisd\.service: (\d+\.\d)", p.stdout)
    assert m, p.stdout
    assert float(m.group(1)) <= 2.5, p.stdout
    assert p.returncode == 0, p.stdout


@needs_analyze
def test_unit_verifies(tmp_path):
    # the commands must exist: this tree's binaries stand in for /usr/sbin
    unit = render(UNIT_IN, tmp_path / "chamoisd.service", sbindir=str(ROOT / "bin"))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.returncode == 0 and p.stdout == "", p.stdout


def unit_settings():
    out = {}
    for line in UNIT_IN.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def setpriv_as(user):
    """setpriv doing what the unit's User=, Group=, AmbientCapabilities=,
    CapabilityBoundingSet= and NoNewPrivileges= do."""
    s = unit_settings()
    caps = s["AmbientCapabilities"][0].lower().replace("cap_", "")
    assert s["CapabilityBoundingSet"] == s["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert s["NoNewPrivileges"] == ["yes"]
    pw = pwd.getpwnam(user)
    return ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
            "--clear-groups", "--no-new-privs",
            "--inh-caps=-all,+" + caps, "--ambient-caps=-all,+" + caps,
            "--bounding-set=-all,+" + caps]


# ProtectSystem=strict with ReadWritePaths= queue_dir and maildir_root:
# in a mount namespace of its own, those two stay writable and the mounts
# holding / and the test's folder turn read-only
PROTECT_SYSTEM = """set -e
for d in "$CHAMOIS_RW1" "$CHAMOIS_RW2"; do mount --bind "$d" "$d"; done
mount -o remount,bind,ro /
top=$(findmnt -n -o TARGET -T "$CHAMOIS_TOP")
[ "$top" = / ] || mount -o remount,bind,ro "$top"
exec "$@"
"""


def protect_system(top, *rw):
    if shutil.which("unshare") is None or shutil.which("findmnt") is None:
        pytest.skip("unshare or findmnt missing")
    return ["env", "CHAMOIS_TOP=%s" % top, "CHAMOIS_RW1=%s" % rw[0],
            "CHAMOIS_RW2=%s" % rw[1], "unshare", "--mount", "--propagation",
            "private", "sh", "-c", PROTECT_SYSTEM, "sh"]


def seccomp_as_unit(tmp_path):
    """the unit's system call filter, address families and W^X
    (unit_seccomp.py), when systemd-analyze and libseccomp are here"""
    if shutil.which("systemd-analyze") is None or ctypes.util.find_library("seccomp") is None:
        pytest.skip("systemd-analyze or libseccomp missing")
    unit = render(UNIT_IN, tmp_path / "chamoisd.service")
    # a copy beside the unit: the tree may sit where nobody cannot read
    # (a clone in /root), and the filter runs as the unit's user
    script = tmp_path / "unit_seccomp.py"
    shutil.copy(Path(__file__).with_name("unit_seccomp.py"), script)
    script.chmod(0o644)
    return [sys.executable, str(script), str(unit), "--"]


def low_port():
    """A free loopback port below 1024, found by binding (as root)."""
    for port in range(1023, 600, -1):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    pytest.skip("no free port below 1024")


def run_hook(lineage, tls_dir, reload_cmd, group="nogroup", env_extra=None):
    env = dict(os.environ, RENEWED_LINEAGE=str(lineage), CHAMOIS_TLS_DIR=str(tls_dir),
               CHAMOIS_GROUP=group, CHAMOIS_RELOAD=reload_cmd)
    env.update(env_extra or {})
    hook = render(HOOK_IN, tls_dir.parent / "certbot-deploy-hook")
    return subprocess.run(["sh", str(hook)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def certbot_lineage(le, name, n, cn):
    """/etc/letsencrypt as certbot lays it out: live/NAME/*.pem are symlinks
    to archive/NAME/*N.pem; the key is root's, 0600; both folders 0700."""
    arch, live = le / "archive" / name, le / "live" / name
    arch.mkdir(parents=True, exist_ok=True)
    live.mkdir(parents=True, exist_ok=True)
    for d in (le / "archive", le / "live"):
        d.chmod(0o700)
    key, chain = arch / ("privkey%d.pem" % n), arch / ("fullchain%d.pem" % n)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(chain), "-days", "30",
                    "-subj", "/CN=%s" % cn, "-addext", "subjectAltName=DNS:%s" % cn],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    key.chmod(0o600)
    for f, target in (("privkey.pem", key), ("fullchain.pem", chain)):
        link = live / f
        if link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(target, live))
    return live


def readable_as(user, path):
    p = subprocess.run(setpriv_as(user) + ["cat", str(path)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p.returncode == 0


def open_to(user, d):
    """user reaches d through the test's folders and owns what is in it"""
    for parent in d.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    pw = pwd.getpwnam(user)
    for p in [d] + list(d.rglob("*")):
        os.chown(p, pw.pw_uid, pw.pw_gid, follow_symlinks=False)


@needs_root
def test_deploy_hook_copies_key_for_group_and_reloads(tmp_path):
    le, tls = tmp_path / "letsencrypt", tmp_path / "tls"
    live = certbot_lineage(le, "mx.example.test", 1, "mx.example.test")
    other = certbot_lineage(le, "www.example.test", 1, "www.example.test")
    (tls / "mx.example.test").mkdir(parents=True)
    open_to("nobody", tmp_path)
    for p in [tmp_path / "letsencrypt"] + list((tmp_path / "letsencrypt").rglob("*")):
        os.chown(p, 0, 0, follow_symlinks=False)
    for p in (tls, tls / "mx.example.test"):
        os.chown(p, 0, 0)
    marker = tmp_path / "reloaded"
    assert not readable_as("nobody", live / "privkey.pem")

    p = run_hook(live, tls, "echo reload >> '%s'" % marker)
    assert p.returncode == 0, p.stdout
    dest = tls / "mx.example.test"
    gid = grp.getgrnam("nogroup").gr_gid
    assert dest.stat().st_mode & 0o777 == 0o750 and dest.stat().st_gid == gid
    for f in ("fullchain.pem", "privkey.pem"):
        st = (dest / f).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, 0o640), f
        assert (dest / f).read_bytes() == (live / f).read_bytes()
    assert readable_as("nobody", dest / "privkey.pem")
    assert list(dest.glob(".*")) == []
    assert marker.read_text() == "reload\n"

    # a lineage chamoisd does not use: nothing copied, no reload
    p = run_hook(other, tls, "echo reload >> '%s'" % marker)
    assert p.returncode == 0, p.stdout
    assert not (tls / "www.example.test").exists()
    assert marker.read_text() == "reload\n"

    # not run by certbot: says so, does nothing
    env = dict(os.environ)
    env.pop("RENEWED_LINEAGE", None)
    hook = tmp_path / "certbot-deploy-hook"
    p = subprocess.run(["sh", str(hook)], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    assert p.returncode != 0 and "RENEWED_LINEAGE" in p.stdout
    assert marker.read_text() == "reload\n"


def peer_cn(host, port):
    s = socket.create_connection((host, port), timeout=10)
    try:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        s.sendall(b"EHLO client.remote.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        s.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        t = ctx.wrap_socket(s, server_hostname=host)
        der = t.getpeercert(binary_form=True)
        t.close()
    finally:
        s.close()
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem,
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    return out.strip()


def deliver(host, port, rcpt):
    s = socket.create_connection((host, port), timeout=10)
    f = s.makefile("rb")
    try:
        def cmd(line, code):
            if line is not None:
                s.sendall(line)
            reply = f.readline()
            while reply[3:4] == b"-":
                reply = f.readline()
            assert reply.startswith(code), reply
        cmd(None, b"220")
        cmd(b"EHLO client.remote.test\r\n", b"250")
        cmd(b"MAIL FROM:<sender@remote.test>\r\n", b"250")
        cmd(b"RCPT TO:<%s>\r\n" % rcpt.encode(), b"250")
        cmd(b"DATA\r\n", b"354")
        cmd(dot_stuff(sample_message()) + b".\r\n", b"250")
        cmd(b"QUIT\r\n", b"221")
    finally:
        f.close()
        s.close()


@needs_root
def test_unprivileged_start_as_the_unit_does(tmp_path, request):
    """chamoisd started as nobody with the unit's capabilities, `user`
    naming that same user: port below 1024, mail received, SIGHUP reloads
    tables and the key the deploy hook put in place."""
    nobody = pwd.getpwnam("nobody")
    le, tls = tmp_path / "letsencrypt", tmp_path / "tls"
    live = certbot_lineage(le, "mx.example.test", 1, "mx.example.test")
    dest = tls / "mx.example.test"
    dest.mkdir(parents=True)
    p = run_hook(live, tls, "true")
    assert p.returncode == 0, p.stdout

    port = low_port()
    d = Chamoisd(tmp_path / "d", extra_conf="user nobody\nlisten mx 127.0.0.1:%d\n" % port)
    d.drop_conf_key("tls_cert")
    d.drop_conf_key("tls_key")
    d.write_conf(d.conf.read_text() + "tls_cert %s\ntls_key %s\n"
                 % (dest / "fullchain.pem", dest / "privkey.pem"))
    d.maildir_root.mkdir()
    # the session's copy of the binary sits in a folder only root enters
    shutil.copy2(d.binary, tmp_path / "chamoisd")
    d.binary = tmp_path / "chamoisd"
    open_to("nobody", d.dir)
    # a sanitizer build: LeakSanitizer stops the world with ptrace, which
    # the unit's filter (~@privileged) refuses; the rest of ASan still runs
    no_lsan = ["env", "ASAN_OPTIONS=%s" % ":".join(
        o for o in (os.environ.get("ASAN_OPTIONS"), "detect_leaks=0") if o)]
    d.wrapper = (no_lsan + protect_system(tmp_path, d.queue_dir, d.maildir_root)
                 + setpriv_as("nobody") + seccomp_as_unit(tmp_path))
    # ExecStartPre=chamoisd -n, under the same restrictions
    p = subprocess.run(d.wrapper + [str(d.binary), "-n", "-f", str(d.conf)], cwd=str(d.dir),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert p.returncode == 0 and "configuration OK" in p.stdout, p.stdout
    d.start()
    request.addfinalizer(d.stop)

    status = open("/proc/%d/status" % d.proc.pid).read()
    uids = [l for l in status.splitlines() if l.startswith("Uid:")][0].split()[1:]
    assert set(int(u) for u in uids) == {nobody.pw_uid}
    capeff = [l for l in status.splitlines() if l.startswith("CapEff:")][0].split()[1]
    assert int(capeff, 16) == 1 << 10   # CAP_NET_BIND_SERVICE only
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
    assert re.search(r"^Seccomp:\s+2$", status, re.M), status   # a filter
    assert "running as user=nobody uid=%d" % nobody.pw_uid in d.log()

    deliver("127.0.0.1", port, "alice@example.test")
    wait_until(lambda: len(d.message_files("alice@example.test")) == 1,
               what="alice's message")
    assert peer_cn("127.0.0.1", port).endswith("CN = mx.example.test")
    # queue_dir is writable in its mount namespace, everything else not
    # (nsenter -r: the process's own root, a chroot's where the tests run in one)
    def touch_inside(path):
        return subprocess.run(["nsenter", "-t", str(d.proc.pid), "-m", "-r", "touch", str(path)],
                              stderr=subprocess.DEVNULL).returncode == 0
    assert touch_inside(d.queue_dir / "x") and not touch_inside(d.dir / "x")
    (d.queue_dir / "x").unlink()

    # a local user outside the unit submits through the socket in queue_dir
    other = pwd.getpwnam("daemon")
    p = subprocess.run(["setpriv", "--reuid=%d" % other.pw_uid, "--regid=%d" % other.pw_gid,
                        "--clear-groups", "--", str(ROOT / "bin" / "chamois-sendmail"),
                        "-C", str(d.conf), "-i", "bob@example.test"],
                       input=b"Subject: cron\n\nfrom cron\n", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout
    wait_until(lambda: len(d.message_files("bob@example.test")) == 1,
               timeout=20, what="bob's message through the queue")

    # renewal: a new key, the hook copies it and signals the daemon
    certbot_lineage(le, "mx.example.test", 2, "renewed.example.test")
    d.set_mailboxes(("alice@example.test", "bob@example.test", "carol@example.test"))
    open_to("nobody", d.dir)
    p = run_hook(live, tls, "kill -HUP %d" % d.proc.pid)
    assert p.returncode == 0, p.stdout
    wait_until(lambda: "reload done" in d.log(), timeout=20, what="the reload")
    assert re.search(r"reload done mailboxes=3 tls=yes", d.log()), d.log()
    assert peer_cn("127.0.0.1", port).endswith("CN = renewed.example.test")
    deliver("127.0.0.1", d.port, "carol@example.test")
    wait_until(lambda: len(d.message_files("carol@example.test")) == 1,
               what="carol's message")
    assert d.running()


@needs_root
def test_check_and_start_agree_on_a_user_they_cannot_become(tmp_path):
    """Started as nobody (not root), `user daemon` cannot be honoured:
    -n says so on the `user` line and the daemon does not start."""
    d = Chamoisd(tmp_path / "d", extra_conf="user daemon\n")
    open_to("nobody", d.dir)
    line = d.conf_line_number("user ")
    p = subprocess.run(setpriv_as("nobody") + [str(d.binary), "-n", "-f", str(d.conf)],
                       cwd=str(d.dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30)
    assert p.returncode == 1, p.stdout
    assert "%s:%d: user: chamoisd runs as uid %d, not root, so it cannot become 'daemon'" \
        % (d.conf, line, pwd.getpwnam("nobody").pw_uid) in p.stdout, p.stdout
    p = subprocess.run(setpriv_as("nobody") + [str(d.binary), "-d", "-f", str(d.conf)],
                       cwd=str(d.dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30)
    assert p.returncode == 1, p.stdout

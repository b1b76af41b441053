"""The Debian package (debian/, doc/install.md): the first config that its
postinst makes with chamois-setup, and the .deb that `make deb` builds.

chamois-setup runs into a scratch root (--root) with its own /etc/group and
/etc/mailname; the config it writes must pass `chamoisd -n`, and its tables,
behind the real daemon, must deliver cron's mail to root into the admin's
Maildir.  Installing the .deb on this machine would replace its MTA, so
the package is only built and read with dpkg-deb (the install itself is
the fresh-chroot check of issue 14, point 6).
"""

import os
import pwd
import re
import shutil
import subprocess

import pytest

from pathlib import Path

from harness import ROOT, wait_until

SETUP = ROOT / "bin" / "chamois-setup"
SENDMAIL = ROOT / "bin" / "chamois-sendmail"


def sysconfdir():
    """SYSCONFDIR of this build, as ./configure wrote it into config.mk."""
    for line in (ROOT / "config.mk").read_text().splitlines():
        if line.startswith("SYSCONFDIR ="):
            return line.split("=", 1)[1].strip()
    raise KeyError("SYSCONFDIR")


def setup_root(tmp_path, sudo_members="alice,bob", mailname="example.org\n",
               user=None):
    """Run chamois-setup into tmp_path/root; return its chamois directory."""
    assert SETUP.exists(), "%s not built (make builds it)" % SETUP
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "group").write_text(
        "root:x:0:\nsudo:x:27:%s\nusers:x:100:\n" % sudo_members)
    if mailname is not None:
        (root / "etc" / "mailname").write_text(mailname)
    user = user or pwd.getpwuid(os.getuid()).pw_name
    p = subprocess.run([str(SETUP), "--root", str(root), "--user", user,
                        "--hostname", "mx.example.org"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout
    return root / sysconfdir().lstrip("/") / "chamois"


def table(path):
    return [l for l in path.read_text().splitlines() if l and not l.startswith("#")]


def check(binary, conf):
    p = subprocess.run([str(binary), "-n", "-f", str(conf)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return p.returncode, p.stdout.decode()


def test_setup_config_passes_n_with_root_and_postmaster_aliases(tmp_path, chamoisd_bin):
    d = setup_root(tmp_path)
    conf = (d / "chamois.conf").read_text()
    assert "hostname mx.example.org\n" in conf
    assert "domains example.org\n" in conf
    assert "listen mx 0.0.0.0:25\n" in conf
    assert table(d / "mailboxes") == ["alice@example.org"]
    assert table(d / "aliases") == ["root@example.org: alice@example.org",
                                    "postmaster@example.org: alice@example.org"]
    rc, out = check(chamoisd_bin, d / "chamois.conf")
    assert rc == 0, out


def test_setup_without_a_sudo_user_makes_a_postmaster_mailbox(tmp_path, chamoisd_bin):
    d = setup_root(tmp_path, sudo_members="", mailname=None)
    # no /etc/mailname: the mail domain is the host's name
    assert "domains mx.example.org\n" in (d / "chamois.conf").read_text()
    assert table(d / "mailboxes") == ["postmaster@mx.example.org"]
    assert table(d / "aliases") == ["root@mx.example.org: postmaster@mx.example.org"]
    rc, out = check(chamoisd_bin, d / "chamois.conf")
    assert rc == 0, out


def test_setup_leaves_an_edited_config_alone(tmp_path):
    d = setup_root(tmp_path)
    (d / "aliases").write_text("root@example.org: bob@example.org\n")
    (d / "chamois.conf").unlink()
    p = subprocess.run([str(SETUP), "--root", str(tmp_path / "root"),
                        "--hostname", "mx.example.org"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout
    assert (d / "aliases").read_text() == "root@example.org: bob@example.org\n"
    assert "made chamois.conf in" in p.stdout.decode()


def test_setup_uses_the_snakeoil_certificate_when_there_is_one(tmp_path):
    root = tmp_path / "root"
    for f in ("etc/ssl/certs/ssl-cert-snakeoil.pem", "etc/ssl/private/ssl-cert-snakeoil.key"):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("")
    d = setup_root(tmp_path)
    conf = (d / "chamois.conf").read_text()
    assert "\ntls_cert /etc/ssl/certs/ssl-cert-snakeoil.pem\n" in conf
    assert "\ntls_key /etc/ssl/private/ssl-cert-snakeoil.key\n" in conf


def test_setup_tables_deliver_crons_mail_to_root(tmp_path, chamois_conf):
    """The generated mailboxes and aliases behind a test daemon (loopback
    port, scratch dirs): what cron sends to `root` reaches the admin."""
    if not SENDMAIL.exists():
        pytest.skip("%s not built" % SENDMAIL)
    gen = setup_root(tmp_path)
    d = chamois_conf(domains=("example.org",), aliases={}, tls=False)
    shutil.copy(gen / "mailboxes", d.mailboxes_path)
    shutil.copy(gen / "aliases", d.aliases_path)
    d.start()
    try:
        wait_until(lambda: "ready version=" in d.log(), 20, what="chamoisd ready")
        msg = b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@mx> true\n\nout\n"
        p = subprocess.run([str(SENDMAIL), "-C", str(d.conf), "-FCronDaemon", "-i",
                            "-B8BITMIME", "-oem", "root"], input=msg,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 0, p.stderr
        (m,) = d.wait_messages("alice@example.org", 1, timeout=15)
        assert m.endswith(b"\n\nout\n")
    finally:
        d.stop()


# -- the .deb ---------------------------------------------------------------

NEEDED = {"dpkg-buildpackage": "dpkg-dev", "dh": "debhelper", "fakeroot": "fakeroot"}


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """`make deb` once for the module; the path of chamois_VERSION_ARCH.deb."""
    missing = [pkg for prog, pkg in NEEDED.items() if shutil.which(prog) is None]
    if missing:
        pytest.skip("make deb needs %s (apt-get install %s)"
                    % (", ".join(missing), " ".join(missing)))
    p = subprocess.run(["dpkg-checkbuilddeps"], cwd=str(ROOT), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode and "Unmet build dependencies" in out:
        pytest.skip(out.strip())
    assert p.returncode == 0, out
    version = subprocess.run(["dpkg-parsechangelog", "-S", "Version"], cwd=str(ROOT),
                             stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    arch = subprocess.run(["dpkg-architecture", "-qDEB_HOST_ARCH"], stdout=subprocess.PIPE,
                          check=True).stdout.decode().strip()
    # a scratch BUILD directory, so that a parallel `make` of the tree is not disturbed
    build = tmp_path_factory.mktemp("debbuild")
    p = subprocess.run(["make", "-s", "deb", "BUILD=%s" % build], cwd=str(ROOT),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1200)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out[-6000:]
    path = ROOT / ("chamois_%s_%s.deb" % (version, arch))
    assert path.exists(), out[-3000:]
    return path


def dpkg_deb(*args):
    return subprocess.run(["dpkg-deb"] + list(args), stdout=subprocess.PIPE,
                          check=True, timeout=60).stdout.decode()


def test_deb_files(deb):
    listing = {}
    for line in dpkg_deb("-c", str(deb)).splitlines():
        f = line.split(None, 5)[5]
        path, _, target = f.partition(" -> ")
        listing[path.lstrip(".")] = target
    for f in ("/usr/sbin/chamoisd", "/usr/sbin/chamoisctl", "/usr/sbin/chamois-sendmail",
              "/usr/share/chamois/chamois-setup", "/lib/systemd/system/chamoisd.service",
              "/usr/share/man/man8/chamoisd.8.gz", "/usr/share/man/man5/chamois.conf.5.gz",
              "/usr/share/doc/chamois/copyright"):
        assert f in listing, f
    # the sendmail interface: the paths every Debian MTA provides
    assert listing["/usr/sbin/sendmail"] == "chamois-sendmail"
    assert listing["/usr/lib/sendmail"] == "../sbin/chamois-sendmail"
    assert listing["/usr/bin/mailq"] == "../sbin/chamois-sendmail"
    # the config is postinst's (chamois-setup), not a file of the package
    assert not [f for f in listing if f.startswith("/etc/")]
    assert "/usr/share/doc/chamois/examples/chamois.conf.sample" in listing
    unit = subprocess.run("dpkg-deb --fsys-tarfile %s | tar xOf - ./lib/systemd/system/chamoisd.service"
                          % deb, shell=True, stdout=subprocess.PIPE, check=True).stdout.decode()
    assert "/usr/sbin/chamoisd -n -f /etc/chamois/chamois.conf" in unit
    assert not re.search(r"@[A-Z_]+@", unit), unit  # every path substituted


def test_deb_control(deb, tmp_path):
    fields = {}
    for line in dpkg_deb("-f", str(deb)).splitlines():
        k, _, v = line.partition(": ")
        fields[k] = v
    for k in ("Provides", "Conflicts", "Replaces"):
        assert "mail-transport-agent" in fields[k], (k, fields.get(k))
    assert "adduser" in fields["Depends"]
    ctl = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(ctl)], check=True)
    # no conffiles: chamois-setup makes /etc/chamois/* once, and then they are the admin's
    assert not (ctl / "conffiles").exists() or not (ctl / "conffiles").read_text().split()
    postinst = (ctl / "postinst").read_text()
    assert "adduser --system --group" in postinst
    assert "/usr/share/chamois/chamois-setup" in postinst
    assert "[ ! -e /etc/mailname ]" in postinst  # written only when missing
    assert "deb-systemd-invoke" in postinst  # dh_installsystemd starts the unit
    # the user is made and the config written before the unit is started
    assert postinst.index("chamois-setup\n") < postinst.index("deb-systemd-invoke")
    assert "rm -rf /var/lib/chamois" in (ctl / "postrm").read_text()
    assert (ctl / "prerm").exists()


def test_deb_lintian(deb):
    if shutil.which("lintian") is None:
        pytest.skip("lintian not installed (apt-get install lintian)")
    p = subprocess.run(["lintian", "--fail-on", "error,warning", str(deb)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert p.returncode == 0, p.stdout.decode()

"""Checks and reload that say what they do (chamoisd(8), CHECKS and
SIGHUP): -n and the daemon's start run the same checks, one -n run reports
every stage's problems, SIGHUP names what needs a restart and which
certificate is in force, sasl_db problems name the file and the cause."""

import os
import re
import subprocess

import pytest

from harness import open_dirs_to_others, peer_cert_der, port_accepts, wait_log_match, wait_until
from peers.sasl import ALICE, USERS, plain_b64, submission_conf, submission_daemon

import harness


def start_output(c, timeout=15):
    """Run `chamoisd -d` on a config expected to fail; its exit code and output."""
    p = subprocess.Popen([str(c.binary), "-d", "-f", str(c.conf)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("chamoisd kept running")
    return p.returncode, out.decode("utf-8", "replace")


def replace_conf_line(c, prefix, new):
    lines = [new if l.startswith(prefix) else l for l in c.conf_lines()]
    c.write_conf("\n".join(lines) + "\n")


def with_submission(c, db):
    port, sport = harness.free_port(), harness.free_port()
    while sport == port:
        sport = harness.free_port()
    with open(c.conf, "a") as f:
        f.write(submission_conf(port, sport, db))


# ---------------------------------------------------------------- -n


def test_check_reports_every_stage(chamois_conf):
    """A config syntax error does not hide the tables, TLS, user, path and
    sasl_db problems behind it: one -n run names them all."""
    c = chamois_conf(aliases={"team@example.test": ["nobody-here@example.test"]})
    (c.dir / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nbroken\n"
                                    "-----END CERTIFICATE-----\n")
    (c.dir / "afile").write_text("x\n")
    (c.dir / "sasldb2").write_text("this is not a Berkeley DB file\n")
    replace_conf_line(c, "queue_dir", "queue_dir afile/queue")
    with open(c.conf, "a") as f:
        f.write("frobnicate yes\nuser no-such-user-chamois\n")
    with_submission(c, c.dir / "sasldb2")
    rc, out = c.check_config()
    assert rc == 1, out
    conf = "chamois.conf:%d: "
    assert conf % c.conf_line_number("frobnicate") in out, out
    assert "aliases:1: " in out, out
    assert (conf % c.conf_line_number("tls_cert")) in out, out
    assert (conf % c.conf_line_number("user")) + "user: no such user" in out, out
    assert (conf % c.conf_line_number("queue_dir")) + "queue_dir: " in out, out
    assert "not a directory" in out.lower(), out
    assert (conf % c.conf_line_number("sasl_db")) + "sasl_db " in out, out
    assert "is not a sasldb" in out, out
    assert "configuration OK" not in out


def test_check_says_once_what_config_errors_left_unchecked(chamois_conf):
    c = chamois_conf()
    c.drop_conf_key("mailboxes")
    rc, out = c.check_config()
    assert rc == 1, out
    assert out.count("not checked for the errors above: the tables") == 1, out


def test_check_warns_of_a_missing_sasldb_without_user(chamois_conf, tmp_path):
    """No `user`: -n still names the missing sasl_db and why, as the daemon
    does at start (a warning for both: logins get 454 until it exists)."""
    c = chamois_conf()
    db = tmp_path / "nowhere" / "sasldb2"
    with_submission(c, db)
    rc, out = c.check_config()
    line = c.conf_line_number("sasl_db")
    want = "chamois.conf:%d: warning: cannot read sasl_db %s: No such file or directory" % (
        line, db)
    assert want in out, out
    assert rc == 0, out


def test_daemon_refuses_a_sasldb_that_is_not_one(chamois_conf):
    """-n and the start agree: a file that is not a sasldb is an error for both."""
    c = chamois_conf()
    (c.dir / "sasldb2").write_text("not a database\n")
    with_submission(c, c.dir / "sasldb2")
    rc, out = c.check_config()
    assert rc == 1 and "is not a sasldb" in out, out
    rc, out = start_output(c)
    assert rc != 0 and "is not a sasldb" in out, out
    assert not port_accepts(c.host, c.port)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as the user")
def test_check_and_daemon_agree_on_a_root_only_key(chamois_conf):
    """certbot's key is root's only: both -n and the start warn (SIGHUP
    could not reload it), neither refuses."""
    c = chamois_conf(extra_conf="user nobody")
    open_dirs_to_others(c)
    want = "chamois.conf:%d: warning: tls_key: user 'nobody' cannot read" % (
        c.conf_line_number("tls_key"))
    rc, out = c.check_config()
    assert rc == 0 and want in out, out
    c.start()
    try:
        assert want in c.log(), c.log()
        assert port_accepts(c.host, c.port)
    finally:
        c.stop()


# ---------------------------------------------------------------- SIGHUP


def reload_and_wait(d):
    before = d.log().count("reload done")
    d.reload()
    wait_until(lambda: d.log().count("reload done") > before, timeout=15,
               what="reload done")
    return d.log()


def test_sighup_names_a_changed_listen_and_keeps_the_old_port(chamoisd):
    d = chamoisd()
    new_port = harness.free_port()
    replace_conf_line(d, "listen ", "listen mx 127.0.0.1:%d" % new_port)
    replace_conf_line(d, "queue_dir", "queue_dir queue2")
    log = reload_and_wait(d)
    assert "reload: listen changed; restart chamoisd to apply it" in log, log
    assert "reload: queue_dir changed; restart chamoisd to apply it" in log, log
    assert port_accepts(d.host, d.port)
    assert not port_accepts(d.host, new_port)
    # the rest of the new config applies
    d.set_mailboxes(["alice@example.test", "carol@example.test"])
    log = reload_and_wait(d)
    assert "mailboxes=2" in log.rsplit("reload done", 1)[1], log


def test_sighup_names_every_other_setting_that_needs_a_restart(chamoisd):
    """chamoisd(8), SIGNALS: besides listen and queue_dir, a changed
    worker_threads, dns_server, metrics_listen or srs_secret is named and
    keeps its old value; the old metrics page stays where it was."""
    mport = harness.free_port()
    d = chamoisd(extra_conf="worker_threads 4\nmetrics_listen 127.0.0.1:%d\n"
                 "srs_secret first-secret-0123456789\n" % mport)
    assert port_accepts("127.0.0.1", mport)
    new_mport = harness.free_port()
    replace_conf_line(d, "worker_threads", "worker_threads 2")
    replace_conf_line(d, "dns_server", "dns_server 127.0.0.1:%d" % harness.dead_port())
    replace_conf_line(d, "metrics_listen", "metrics_listen 127.0.0.1:%d" % new_mport)
    replace_conf_line(d, "srs_secret", "srs_secret second-secret-0123456789")
    log = reload_and_wait(d).rsplit("reload config=", 1)[1]
    for key in ("worker_threads", "dns_server", "metrics_listen", "srs_secret"):
        assert "reload: %s changed; restart chamoisd to apply it" % key in log, log
    for key in ("listen", "queue_dir", "user"):
        assert "reload: %s changed" % key not in log, log
    assert port_accepts("127.0.0.1", mport)
    assert not port_accepts("127.0.0.1", new_mport)


def test_sighup_mismatched_key_says_the_old_certificate_stays(chamoisd, tmp_path):
    d = chamoisd()
    old = peer_cert_der(d)
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out",
                    str(tmp_path / "other.pem")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (d.dir / "key.pem").write_bytes((tmp_path / "other.pem").read_bytes())
    log = reload_and_wait(d)
    assert "the old certificate stays" in log, log
    last = log.rsplit("reload done", 1)[1].splitlines()[0]
    assert "tls=kept-old" in last, log
    assert peer_cert_der(d) == old


# ---------------------------------------------------------------- sasl_db at login


def test_login_with_a_broken_sasldb_names_the_file_and_cause(chamoisd, tmp_path):
    sub = submission_daemon(chamoisd, tmp_path / "sasl")
    d = sub.d
    sub.db.write_bytes(b"\0" * 4096)
    with sub.dialog() as c:
        c.cmd("AUTH PLAIN %s" % plain_b64(ALICE, USERS[ALICE]), "454 4.7.0")
    wait_log_match(d.log, r"sasl: mech=PLAIN sasl_db %s is not a sasldb" % re.escape(str(sub.db)))

"""chamoisd -n and start-up on broken configs (chamoisd(8),
chamois.conf(5))."""

import re
import subprocess

import pytest

from harness import port_accepts

LOC = re.compile(r"(?:^|[\s/])(?P<name>[^/\s:]+):(?P<line>\d+): \S", re.M)


def locations(output):
    """[(file basename, line)] of every FILE:LINE: message in output."""
    return [(m.group("name"), int(m.group("line"))) for m in LOC.finditer(output)]


def assert_reported(rc, out, name, lines=None):
    assert rc == 1, "exit %s, output:\n%s" % (rc, out)
    locs = locations(out)
    assert locs, "no FILE:LINE: message in output:\n%s" % out
    hits = [l for n, l in locs if n == name]
    assert hits, "no %s:LINE: message in output:\n%s" % (name, out)
    if lines is not None:
        assert set(hits) & set(lines), "expected %s line %s, output:\n%s" % (name, lines, out)


def test_good_config_exits_0(chamois_conf):
    c = chamois_conf(aliases={"team@example.test": ["alice@example.test", "bob@example.test"],
                              "fwd@example.test": ["someone@remote.test"],
                              "both@example.test": ["alice@example.test",
                                                    "someone@remote.test"]})
    rc, out = c.check_config()
    assert rc == 0, out


def test_good_config_without_tls_or_aliases_exits_0(chamois_conf):
    c = chamois_conf(tls=False)
    rc, out = c.check_config()
    assert rc == 0, out


def test_comments_and_blank_lines(chamois_conf):
    c = chamois_conf(extra_conf="\n# a comment\n   \n")
    rc, out = c.check_config()
    assert rc == 0, out


@pytest.mark.parametrize("line", [
    "frobnicate yes",
    "max_message_size lots",
    "max_recipients -3",
    "listen smtp 127.0.0.1:2525",
    "listen mx 127.0.0.1:99999",
    "listen mx nowhere",
    "queue_lifetime forever",
    "forward_rcpt_budget 3 parsecs",
])
def test_bad_line_reported_with_its_number(chamois_conf, line):
    c = chamois_conf(max_message_size=None, max_recipients=None, extra_conf=line)
    n = c.conf_line_number(line)
    rc, out = c.check_config()
    assert_reported(rc, out, "chamois.conf", [n])


@pytest.mark.parametrize("key", ["domains", "mailboxes", "maildir_root", "queue_dir", "listen"])
def test_missing_required_key(chamois_conf, key):
    c = chamois_conf()
    c.drop_conf_key(key)
    rc, out = c.check_config()
    assert_reported(rc, out, "chamois.conf")
    assert key in out, out


def test_missing_mailboxes_file(chamois_conf):
    c = chamois_conf()
    c.mailboxes_path.unlink()
    rc, out = c.check_config()
    assert rc == 1, out
    locs = locations(out)
    assert locs, out
    assert any(n in ("chamois.conf", "mailboxes") for n, _ in locs), out
    assert "mailboxes" in out


def test_alias_cycle(chamois_conf):
    c = chamois_conf(aliases={"a@example.test": ["b@example.test"],
                              "b@example.test": ["c@example.test", "alice@example.test"],
                              "c@example.test": ["a@example.test"]})
    rc, out = c.check_config()
    assert_reported(rc, out, "aliases", [1, 2, 3])


def test_alias_two_external_targets(chamois_conf):
    c = chamois_conf(aliases={"team@example.test": ["alice@example.test"],
                              "fwd@example.test": ["x@remote.test", "y@other.test"]})
    rc, out = c.check_config()
    assert_reported(rc, out, "aliases", [2])


def test_alias_two_external_targets_through_nesting(chamois_conf):
    c = chamois_conf(aliases={"one@example.test": ["x@remote.test", "two@example.test"],
                              "two@example.test": ["y@other.test"]})
    rc, out = c.check_config()
    assert_reported(rc, out, "aliases", [1, 2])


def test_alias_target_neither_mailbox_nor_alias(chamois_conf):
    c = chamois_conf(aliases={"team@example.test": ["alice@example.test"],
                              "sales@example.test": ["alice@example.test",
                                                     "nobody@example.test"]})
    rc, out = c.check_config()
    assert_reported(rc, out, "aliases", [2])


def test_alias_syntax_error(chamois_conf):
    c = chamois_conf(aliases={"team@example.test": ["alice@example.test"]})
    with open(c.aliases_path, "a") as f:
        f.write("this line has no colon\n")
    rc, out = c.check_config()
    assert_reported(rc, out, "aliases", [2])


def test_several_problems_all_reported(chamois_conf):
    c = chamois_conf(max_message_size=None, max_recipients=None,
                     extra_conf="frobnicate yes\nmax_recipients many\n")
    n1, n2 = c.conf_line_number("frobnicate"), c.conf_line_number("max_recipients")
    rc, out = c.check_config()
    assert_reported(rc, out, "chamois.conf", [n1])
    assert_reported(rc, out, "chamois.conf", [n2])


def test_daemon_refuses_to_start_on_bad_config(chamois_conf):
    c = chamois_conf(extra_conf="frobnicate yes")
    n = c.conf_line_number("frobnicate")
    p = subprocess.Popen([str(c.binary), "-d", "-f", str(c.conf)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("chamoisd kept running on a bad config")
    out = out.decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert ("chamois.conf", n) in locations(out), out
    assert not port_accepts(c.host, c.port)


def test_daemon_refuses_to_start_on_bad_aliases(chamois_conf):
    c = chamois_conf(aliases={"fwd@example.test": ["x@remote.test", "y@other.test"]})
    p = subprocess.Popen([str(c.binary), "-d", "-f", str(c.conf)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("chamoisd kept running with a bad aliases table")
    out = out.decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert any(n == "aliases" for n, _ in locations(out)), out
    assert not port_accepts(c.host, c.port)

"""`smtpwalld -t` (issue 2, test 13): check config and rules, exit 0 or 1 with FILE:LINE: message.

Run inside a throwaway network namespace, so that a -t that wrongly binds or
connects touches nothing real.
"""
import os
import shutil
import subprocess
import tempfile

import pytest


@pytest.fixture(scope="module")
def ns():
    name = "swt%dchk" % os.getpid()
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name])


@pytest.fixture
def d():
    p = tempfile.mkdtemp(prefix="swt-chk-")
    yield p
    shutil.rmtree(p, ignore_errors=True)


def write_conf(d, extra_lines, rules="block sender *@spam.example\n"):
    rules_path = os.path.join(d, "rules")
    with open(rules_path, "w") as f:
        f.write(rules)
    lines = ["# smtpwall test config",
             "listen = 0.0.0.0:10025, [::]:10025",
             "mode = redirect",
             "upstream = original",
             "local_domains = example.net",
             "trusted_networks = 127.0.0.0/8, 203.0.113.50/32",
             "rules_file = %s" % rules_path,
             "control_socket = %s" % os.path.join(d, "control.sock"),
             "log_level = debug"] + extra_lines
    path = os.path.join(d, "smtpwall.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, rules_path


def check(ns, smtpwalld, path):
    return subprocess.run(["ip", "netns", "exec", ns, str(smtpwalld), "-c", path, "-t"],
                          capture_output=True, text=True, timeout=20)


def test_good_config_exits_0(ns, smtpwalld, d):
    path, _ = write_conf(d, ["listen = [::]:10026"])     # listen is a list: it may repeat
    r = check(ns, smtpwalld, path)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(d, "control.sock")), "-t must not start anything"


def test_two_bad_lines_both_reported_exit_1(ns, smtpwalld, d):
    path, _ = write_conf(d, ["frobnicate = yes",              # line 10: unknown key
                             "max_sessions = lots"])          # line 11: bad value
    r = check(ns, smtpwalld, path)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "%s:10: " % path in r.stderr, r.stderr
    assert "%s:11: " % path in r.stderr, r.stderr


def test_repeated_single_value_key_is_an_error(ns, smtpwalld, d):
    path, _ = write_conf(d, ["mode = tproxy"])                 # line 10 repeats line 3
    r = check(ns, smtpwalld, path)
    assert r.returncode == 1 and "%s:10: " % path in r.stderr, (r.returncode, r.stderr)


def test_bad_rule_reported_with_rules_file_line(ns, smtpwalld, d):
    path, rules = write_conf(d, [], rules="block sender *@spam.example\nblock client 203.0.113.0/99\n")
    r = check(ns, smtpwalld, path)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "%s:2: " % rules in r.stderr, r.stderr

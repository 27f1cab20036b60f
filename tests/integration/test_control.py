"""Live rules through the control socket and smtpwallctl, as an administrator uses them.

Issue 3 (SPEC.md "Live rules", docs/control-protocol.md): a block applied to the
next MAIL of an open session, allow relay for one client and one domain,
persistence across SIGKILL, expiry, reload refusing a bad file, the socket's
permissions, `check` (the "why was it refused?" answer), sessions and stats,
1,000 rule changes while mail flows, and smtpwallctl's exit codes.
"""
import collections
import grp
import os
import re
import signal
import smtplib
import socket
import stat
import subprocess
import threading
import time

import pytest

import lab as L
from lab import SMTPClient, netns, parse_kv, wait_for

LAB_SERVERS = ("recorder",)

CLIENT4_OTHER = "203.0.113.11"
SMS_RCPT = "+15550100@sms.carrier.example"
BLOCKED = "550 5.7.1 <%s>: Sender address rejected: blocked by policy"


@pytest.fixture(scope="session")
def smtpwallctl():
    path = L.ctl_path()
    if not os.access(path, os.X_OK):
        pytest.skip("SMTPWALLCTL NOT BUILT: %s does not exist (run `make`, or set SMTPWALL_BUILD)" % path)
    return path


@pytest.fixture
def wall(lab, smtpwalld, smtpwallctl):
    """A fresh smtpwalld (base config, base rules) for one test."""
    p = lab.start_proxy()
    yield p
    if lab.proxy is not None:
        lab.stop_proxy()


# --- helpers --------------------------------------------------------------------------

def ctl_ok(proxy, *args, **kw):
    """smtpwallctl ARGS, which must succeed; its stdout lines."""
    r = proxy.ctl(*args, **kw)
    assert r.returncode == 0, "smtpwallctl %s -> exit %d\nstdout: %s\nstderr: %s" % (
        " ".join(args), r.returncode, r.stdout, r.stderr)
    return r.stdout.splitlines()


def rule_text(line):
    """'block sender *@x.example  # hits=3 expires_in=2s' -> 'block sender *@x.example'."""
    return re.sub(r"\s+#\s*hits=.*$", "", line).strip()


def rule_counters(line):
    m = re.search(r"#\s*(hits=.*)$", line)
    return parse_kv(m.group(1)) if m else {}


def listed_rules(proxy):
    """{rule text: counters} from `smtpwallctl rules`, checking its final line's count."""
    lines = ctl_ok(proxy, "rules")
    data, last = lines[:-1], lines[-1] if lines else ""
    m = re.match(r"^(\d+) rules?$", last)
    assert m, "last line of `smtpwallctl rules` is not 'N rules': %r" % lines
    assert int(m.group(1)) == len(data), "`rules` says %s but lists %d: %r" % (m.group(1), len(data), lines)
    out = {}
    for l in data:
        assert rule_text(l) not in out, "rule listed twice: %r" % l
        out[rule_text(l)] = rule_counters(l)
    return out


def file_rules(proxy):
    """The rule lines of the rules file on disk (comments and blank lines aside)."""
    out = []
    for l in proxy.rules_path.read_text().splitlines():
        t = re.sub(r"\s+#.*$", "", l).strip()
        if t and not t.startswith("#"):
            out.append(t)
    return out


def stray_files(proxy):
    """Anything next to the rules file that is not ours: a temporary file left behind."""
    return [p.name for p in proxy.dir.iterdir()
            if p.name != "rules" and ("rules" in p.name or p.name.endswith(".tmp") or p.name.startswith(".#"))]


def session(lab, helo, src=L.CLIENT4, dst=L.REC4):
    c = SMTPClient(lab, dst, src=src)
    assert c.greeting().code == 220
    assert c.ehlo(helo).code == 250
    return c


def send_message(c, sender, rcpts, body="Subject: t\r\n\r\nhello\r\n"):
    """One transaction on an open session; returns (MAIL reply, [RCPT replies], final reply or None)."""
    mail = c.cmd("MAIL FROM:<%s>" % sender)
    if mail.code != 250:
        return mail, [], None
    rr = [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]
    if not any(r.code == 250 for r in rr):
        assert c.cmd("RSET").code == 250
        return mail, rr, None
    assert c.cmd("DATA").code == 354
    c.send(body.encode() + b".\r\n")
    return mail, rr, c.reply()


def one_mail_from(lab, sender, helo, rcpt="user@example.net", src=L.CLIENT4):
    """A new session's MAIL FROM reply for `sender` (then RCPT and QUIT)."""
    with session(lab, helo, src=src) as c:
        r = c.cmd("MAIL FROM:<%s>" % sender)
        if r.code == 250:
            c.cmd("RCPT TO:<%s>" % rcpt)
        c.quit()
    return r


def one_rcpt(lab, rcpt, helo, src=L.CLIENT4, sender="probe@example.org"):
    with session(lab, helo, src=src) as c:
        assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        c.quit()
    return r


def add_client_address(lab, addr):
    r = lab.sh(lab.ns_cli, "ip", "-4", "addr", "show", "dev", lab.prefix + "c")
    if (" %s/" % addr) not in r.stdout:
        lab.sh(lab.ns_cli, "ip", "addr", "add", addr + "/24", "dev", lab.prefix + "c")


def stats(proxy):
    lines = ctl_ok(proxy, "stats")
    out = {}
    for l in lines:
        m = re.match(r"^([a-z_]+)=(\d+)$", l)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


class CtlConn:
    """One raw connection to the control socket (the protocol, without smtpwallctl)."""

    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""

    def close(self):
        self.sock.close()

    def send_lines(self, lines):
        self.sock.sendall("".join(l + "\n" for l in lines).encode())

    def read_line(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("control socket closed; unparsed %r" % self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode().rstrip("\r")

    def answer(self):
        """(data lines, final line)."""
        data = []
        while True:
            l = self.read_line()
            if l == "ok" or l.startswith("ok ") or l.startswith("error:"):
                return data, l
            data.append(l)


# --- 1: a block applies to the next MAIL of an open session --------------------------

def test_block_applies_to_open_session_and_unblock_restores(lab, wall):
    helo = "live-block"
    with session(lab, helo) as c:
        port = c.local_port
        mail, rr, end = send_message(c, "x@late.example", ["user@example.net"],
                                     "Subject: first\r\n\r\nbefore the block\r\n")
        assert mail.code == 250 and end is not None and end.code == 250, (mail, rr, end)

        out = ctl_ok(wall, "block", "sender", "*@late.example")
        assert out == ["added: block sender *@late.example"], out

        r = c.cmd("MAIL FROM:<x@late.example>")
        assert r.lines == [BLOCKED % "x@late.example"], "same session, after the block: %r" % r
        # the session goes on: another sender still passes
        assert c.cmd("MAIL FROM:<other@example.org>").code == 250
        assert c.cmd("RSET").code == 250

        out = ctl_ok(wall, "unblock", "sender", "*@late.example")
        assert out == ["removed: block sender *@late.example"], out

        mail, rr, end = send_message(c, "x@late.example", ["user@example.net"],
                                     "Subject: second\r\n\r\nafter the unblock\r\n")
        assert mail.code == 250, "same session, after the unblock: %r" % mail
        assert end is not None and end.code == 250, (rr, end)
        assert c.cmd("QUIT").code == 221

    (conn,) = lab.recorder.session(helo)
    subjects = [m["content"].split(b"\r\n")[0] for m in lab.recorder.messages(conn)]
    assert subjects == [b"Subject: first", b"Subject: second"], subjects
    mails = [l for l in lab.recorder.commands(conn) if l.upper().startswith("MAIL FROM:<X@LATE")]
    assert len(mails) == 2, "the blocked MAIL reached the server: %r" % lab.recorder.commands(conn)

    summ = wall.summary(port)
    refused = [parse_kv(l) for l in wall.session_lines(summ["session"]) if re.search(r"\brefuse\b", l)]
    assert any(kv.get("reason") == "sender" and kv.get("rule") == "block sender *@late.example"
               for kv in refused), 'no refuse reason=sender rule="block sender *@late.example": %r' % refused


# --- 2: allow relay: one client, one domain ---------------------------------------------

def test_allow_relay_one_client_one_domain(lab, wall):
    add_client_address(lab, CLIENT4_OTHER)
    r = one_rcpt(lab, SMS_RCPT, "relay-before")
    assert r.code == 550 and r.enh == "5.7.1", "before the rule: %r" % r

    out = ctl_ok(wall, "allow", "relay", "203.0.113.10/32", "to", "sms.carrier.example")
    assert out == ["added: allow relay 203.0.113.10/32 to sms.carrier.example"], out

    helo = "relay-allowed"
    with session(lab, helo) as c:
        mail, rr, end = send_message(c, "alert@monitor.example", [SMS_RCPT, "someone@elsewhere.example"],
                                     "Subject: alert\r\n\r\ndisk full\r\n")
        assert mail.code == 250
        assert rr[0].code == 250, "allowed client to the allowed domain: %r" % rr[0]
        assert rr[1].code == 550 and rr[1].enh == "5.7.1", "allowed client to another domain: %r" % rr[1]
        assert end is not None and end.code == 250, end
        c.quit()
    (conn,) = lab.recorder.session(helo)
    (msg,) = lab.recorder.messages(conn)
    assert msg["rcpt_tos"] == [SMS_RCPT]

    r = one_rcpt(lab, SMS_RCPT, "relay-other-client", src=CLIENT4_OTHER)
    assert r.code == 550 and r.enh == "5.7.1", "another client (%s) relayed: %r" % (CLIENT4_OTHER, r)

    out = ctl_ok(wall, "disallow", "relay", "203.0.113.10/32", "to", "sms.carrier.example")
    assert out == ["removed: allow relay 203.0.113.10/32 to sms.carrier.example"], out
    r = one_rcpt(lab, SMS_RCPT, "relay-after")
    assert r.code == 550 and r.enh == "5.7.1", "after disallow: %r" % r
    assert "allow relay" not in wall.rules_path.read_text()


# --- 3: persistence -------------------------------------------------------------------

def test_rule_survives_sigkill_right_after_ok(lab, wall):
    expected = set()
    for i, addr in enumerate(["198.51.100.99", "198.51.100.98", "2001:db8:bad::1"]):
        r = wall.ctl("block", "client", addr)
        # SIGKILL as soon as the answer is in: no chance to flush anything more
        wall.proc.send_signal(signal.SIGKILL)
        assert r.returncode == 0, "block client %s -> %d %s %s" % (addr, r.returncode, r.stdout, r.stderr)
        m = re.match(r"^added: (block client \S+)$", r.stdout.strip())
        assert m, r.stdout
        expected.add(m.group(1))
        wall.proc.wait(5)
        on_disk = set(file_rules(wall))
        assert expected <= on_disk, "acknowledged rule(s) missing from the file after SIGKILL: %s\nfile:\n%s" % (
            expected - on_disk, wall.rules_path.read_text())
        assert stray_files(wall) == [], "left behind next to the rules file: %r" % stray_files(wall)
        wall = lab.restart_proxy()
        listed = listed_rules(wall)
        assert expected <= set(listed), "after restart, `rules` lacks %s: %r" % (expected - set(listed), listed)
    assert "block client 198.51.100.99/32" in expected, expected


def test_hand_written_comments_survive_a_rewrite(lab, smtpwalld, smtpwallctl):
    text = ("# smtpwall rules, kept by hand\n"
            "\n"
            "# the spam run of last week\n"
            "block sender *@spam.example   # ticket 4711\n"
            "\n"
            "\n"
            "# the monitoring host may page through the SMS gateway\n"
            "allow relay 203.0.113.10/32 to sms.carrier.example\n"
            "# end of hand-written rules\n")
    p = lab.start_proxy(rules=text)
    ctl_ok(p, "block", "sender", "*@new.example")
    after = p.rules_path.read_text()
    lines = after.splitlines()
    for want in ["# smtpwall rules, kept by hand", "# the spam run of last week",
                 "# the monitoring host may page through the SMS gateway", "# end of hand-written rules"]:
        assert want in lines, "comment line %r lost in the rewrite:\n%s" % (want, after)
    assert re.search(r"^block sender \*@spam\.example\s+# ticket 4711$", after, re.M), \
        "inline comment lost:\n%s" % after
    assert "" in lines, "blank lines lost:\n%s" % after
    assert after.index("# the spam run") < after.index("block sender *@spam.example") \
        < after.index("# the monitoring host") < after.index("allow relay"), "comments moved:\n%s" % after
    assert file_rules(p) == ["block sender *@spam.example",
                             "allow relay 203.0.113.10/32 to sms.carrier.example",
                             "block sender *@new.example"], after
    # the untouched part of the file is byte for byte what the administrator wrote
    head = text[:text.index("# end of hand-written rules")]
    assert after.startswith(head), "hand-written part changed:\n%r\nvs\n%r" % (head, after)
    assert stray_files(p) == []
    lab.stop_proxy()


# --- 4: expiry ----------------------------------------------------------------------------

def test_rule_expires_from_rules_file_and_policy(lab, wall):
    out = ctl_ok(wall, "block", "sender", "*@tmp.example", "--for", "2s")
    assert len(out) == 1 and out[0].startswith("added: block sender *@tmp.example until="), out
    listed = listed_rules(wall)
    (tmp,) = [r for r in listed if "tmp.example" in r]
    assert "expires_in" in listed[tmp], "no expires_in in `rules`: %r" % listed
    assert re.search(r"^block sender \*@tmp\.example until=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", tmp), tmp
    assert any("tmp.example" in l for l in file_rules(wall))
    r = one_mail_from(lab, "x@tmp.example", "expiry-before")
    assert r.lines == [BLOCKED % "x@tmp.example"], r

    t0 = time.monotonic()
    wait_for(lambda: not any("tmp.example" in x for x in listed_rules(wall)), 8, "the rule to leave `rules`",
             interval=0.25)
    waited = time.monotonic() - t0
    assert waited < 5, "expired after %.1fs for a 2s rule" % waited
    wait_for(lambda: not any("tmp.example" in l for l in file_rules(wall)), 3, "the rule to leave the rules file")
    assert "block sender *@spam.example" in listed_rules(wall), "expiry took another rule with it"
    r = one_mail_from(lab, "x@tmp.example", "expiry-after")
    assert r.code == 250, "mail from tmp.example after expiry: %r" % r
    assert stray_files(wall) == []


# --- 5: reload ----------------------------------------------------------------------------

def test_reload_refuses_bad_files_and_applies_good_ones(lab, wall):
    good_rules = wall.rules_path.read_text()
    good_conf = wall.conf_path.read_text()

    def still_old_policy(tag):
        r = one_mail_from(lab, "bad@spam.example", "reload-spam-" + tag)
        assert r.lines == [BLOCKED % "bad@spam.example"], "%s: old rule no longer applies: %r" % (tag, r)
        r = one_mail_from(lab, "a@partial.example", "reload-partial-" + tag)
        assert r.code == 250, "%s: a rule from a refused file applied: %r" % (tag, r)
        r = one_rcpt(lab, "user@example.org", "reload-dom-" + tag)
        assert r.code == 550, "%s: a setting from a refused file applied: %r" % (tag, r)

    # a rules file with an error on line 3 (and a valid new rule on line 2)
    wall.rules_path.write_text(good_rules + "block sender *@partial.example\nblock sendr *@typo.example\n")
    bad_line = len(good_rules.splitlines()) + 2
    r = wall.ctl("reload")
    assert r.returncode == 1, "reload of a bad rules file -> %d %s %s" % (r.returncode, r.stdout, r.stderr)
    assert re.search(r"^%s:%d: \S" % (re.escape(str(wall.rules_path)), bad_line), r.stderr, re.M), \
        "no '%s:%d: message' in stderr: %r" % (wall.rules_path, bad_line, r.stderr)
    assert "reload refused" in r.stderr, r.stderr
    still_old_policy("badrules")
    wall.rules_path.write_text(good_rules)

    # a configuration file with an error (and a valid change before it)
    bad_conf = good_conf.replace("local_domains = example.net", "local_domains = example.net, example.org")
    assert bad_conf != good_conf
    bad_conf += "frobnicate = yes\n"
    wall.conf_path.write_text(bad_conf)
    r = wall.ctl("reload")
    assert r.returncode == 1, "reload of a bad config -> %d %s %s" % (r.returncode, r.stdout, r.stderr)
    assert re.search(r"^%s:%d: \S" % (re.escape(str(wall.conf_path)), len(bad_conf.splitlines())),
                     r.stderr, re.M), "no '%s:%d: message' in stderr: %r" % (
        wall.conf_path, len(bad_conf.splitlines()), r.stderr)
    assert "reload refused" in r.stderr, r.stderr
    still_old_policy("badconf")

    # SIGHUP with a bad rules file: nothing changes, the log says so
    wall.conf_path.write_text(good_conf)
    wall.rules_path.write_text(good_rules + "block sender *@partial.example\nallow relay nonsense\n")
    log_before = len(wall.lines())
    wall.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any("reload refused" in l for l in wall.lines()[log_before:]), 5,
             "'reload refused' in the log after SIGHUP")
    assert any(str(wall.rules_path) + ":%d:" % bad_line in l for l in wall.lines()[log_before:]), \
        "the log does not name FILE:LINE:\n" + "\n".join(wall.lines()[log_before:])
    still_old_policy("sighup")
    assert wall.alive()
    wall.rules_path.write_text(good_rules)

    # a good reload applies to new sessions
    wall.conf_path.write_text(good_conf.replace("local_domains = example.net",
                                                "local_domains = example.net, example.org"))
    out = ctl_ok(wall, "reload")
    assert out and re.match(r"^reloaded: 1 rules?$", out[-1]), out
    r = one_rcpt(lab, "user@example.org", "reload-good")
    assert r.code == 250, "example.org after a good reload: %r" % r
    r = one_mail_from(lab, "bad@spam.example", "reload-good-spam")
    assert r.code == 550, r


# --- 6: who may use the control socket ----------------------------------------------------

def test_socket_permissions(lab, wall, request):
    st = os.stat(wall.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, "control socket mode %o" % stat.S_IMODE(st.st_mode)

    # the file mode keeps nobody out: connect() fails with EACCES -> not reachable
    r = wall.ctl("rules", user="nobody")
    assert r.returncode == 3, "nobody on a 0660 socket -> %d %s %s" % (r.returncode, r.stdout, r.stderr)

    # with the mode opened up, the daemon's own SO_PEERCRED check refuses, and nothing changes
    os.chmod(wall.socket_path, 0o666)
    r = wall.ctl("block", "sender", "*@nobody.example", user="nobody")
    assert r.returncode == 1, "nobody on a 0666 socket -> %d %s %s" % (r.returncode, r.stdout, r.stderr)
    assert "permission denied" in r.stderr and "65534" in r.stderr, r.stderr
    assert "nobody.example" not in wall.rules_path.read_text()
    assert "block sender *@nobody.example" not in listed_rules(wall)
    r = wall.ctl("rules", user="nobody")
    assert r.returncode == 1 and "permission denied" in r.stderr, (r.returncode, r.stdout, r.stderr)

    # control_group: its members may use the socket
    group, user = "swt%d" % os.getpid(), "swtu%d" % os.getpid()

    def cleanup():
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)
    request.addfinalizer(cleanup)
    cleanup()
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    subprocess.run(["useradd", "-M", "-N", "-G", group, "-s", "/usr/sbin/nologin", user],
                   check=True, capture_output=True)
    p = lab.start_proxy({"control_group": group})
    st = os.stat(p.socket_path)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == grp.getgrnam(group).gr_gid, \
        "socket mode %o gid %d, want 0660 gid of %s" % (stat.S_IMODE(st.st_mode), st.st_gid, group)
    r = p.ctl("rules", user=user)
    assert r.returncode == 0, "member of control_group -> %d %s %s" % (r.returncode, r.stdout, r.stderr)
    assert "block sender *@spam.example" in r.stdout
    r = p.ctl("rules", user="nobody")
    assert r.returncode == 3, "nobody with control_group set -> %d %s" % (r.returncode, r.stderr)
    os.chmod(p.socket_path, 0o666)
    r = p.ctl("rules", user="nobody")
    assert r.returncode == 1 and "permission denied" in r.stderr, (r.returncode, r.stdout, r.stderr)
    assert group in r.stderr, "the refusal does not name the group: %r" % r.stderr


# --- 7: check -----------------------------------------------------------------------------

def test_check_explains_and_changes_nothing(lab, wall):
    args = ["check", "--client", "203.0.113.10", "--from", "alert@monitor.example",
            "--to", "someone@elsewhere.example", "--to", "user@example.net"]
    out = ctl_ok(wall, *args)
    assert out[-1] == "refused", out

    def step(prefix):
        found = [l for l in out if l.startswith(prefix)]
        assert len(found) == 1, "no single line starting %r: %r" % (prefix, out)
        return found[0]
    rel = step("rcpt <someone@elsewhere.example>:")
    assert "refused 550 5.7.1" in rel and "reason=relay" in rel, rel
    loc = step("rcpt <user@example.net>:")
    assert "accepted" in loc and "reason=local_domain" in loc, loc
    assert "accepted" in step("from <alert@monitor.example>:")
    assert "accepted" in step("client 203.0.113.10:")

    ctl_ok(wall, "block", "sender", "*@monitor.example", "--comment", "noisy")
    before = listed_rules(wall)
    out = ctl_ok(wall, *args)
    frm = step("from <alert@monitor.example>:")
    assert "refused 550 5.7.1" in frm and "block sender *@monitor.example" in frm and "reason=sender" in frm, frm
    assert out[-1] == "refused"
    ok = ctl_ok(wall, "check", "--client", "203.0.113.10", "--from", "fine@example.org", "--to", "user@example.net")
    assert ok[-1] == "accepted", ok
    after = listed_rules(wall)
    assert after == before, "`check` changed the rules or their hits:\n%r\n%r" % (before, after)

    # a real refusal counts a hit, and its log line uses the same reason words
    with session(lab, "check-real") as c:
        assert c.cmd("MAIL FROM:<alert@monitor.example>").code == 550
        assert c.cmd("MAIL FROM:<probe@example.org>").code == 250
        r = c.cmd("RCPT TO:<someone@elsewhere.example>")
        assert r.code == 550
        c.quit()
        port = c.local_port
    hits = listed_rules(wall)
    key = [k for k in hits if k.startswith("block sender *@monitor.example")]
    assert key and hits[key[0]].get("hits") == "1", "hits after one real refusal: %r" % hits
    summ = wall.summary(port)
    kvs = [parse_kv(l) for l in wall.session_lines(summ["session"]) if re.search(r"\brefuse\b", l)]
    assert any(kv.get("reason") == "relay" and kv.get("rcpt") == "<someone@elsewhere.example>" for kv in kvs), kvs
    assert any(kv.get("reason") == "sender" and kv.get("rule", "").startswith("block sender *@monitor.example")
               for kv in kvs), kvs


# --- 8: sessions and stats ------------------------------------------------------------------

def test_sessions_and_stats(lab, wall):
    s0 = stats(wall)
    for k in ("messages", "refused_rcpt_relay", "sessions_total", "sessions_active"):
        assert k in s0, "stats lacks %s: %r" % (k, s0)
    with session(lab, "watch-me") as c:
        assert c.cmd("MAIL FROM:<watch@example.org>").code == 250
        assert c.cmd("RCPT TO:<user@example.net>").code == 250
        assert c.cmd("RCPT TO:<someone@elsewhere.example>").code == 550
        lines = ctl_ok(wall, "sessions")
        mine = [l for l in lines if "client=%s:%d " % (L.CLIENT4, c.local_port) in l + " "]
        assert len(mine) == 1, "no session line for client %s:%d: %r" % (L.CLIENT4, c.local_port, lines)
        kv = parse_kv(mine[0])
        assert kv.get("from") == "<watch@example.org>", mine[0]
        assert kv.get("state"), mine[0]
        assert kv.get("server", "").startswith(L.REC4 + ":"), mine[0]
        assert kv.get("rcpt_ok") == "1" and kv.get("rcpt_refused") == "1", mine[0]
        assert re.match(r"^\d+ sessions?$", lines[-1]), lines
        assert stats(wall)["sessions_active"] >= 1
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: counted\r\n\r\none\r\n.\r\n")
        assert c.reply().code == 250
        c.quit()
    wait_for(lambda: stats(wall)["messages"] >= s0["messages"] + 1, 5, "stats messages to count the message")
    s1 = stats(wall)
    assert s1["refused_rcpt_relay"] == s0["refused_rcpt_relay"] + 1, (s0, s1)
    assert s1["messages"] == s0["messages"] + 1, (s0, s1)
    assert s1["sessions_total"] >= s0["sessions_total"] + 1, (s0, s1)
    wait_for(lambda: not any("client=%s:%d " % (L.CLIENT4, c.local_port) in l + " "
                             for l in ctl_ok(wall, "sessions")), 5, "the closed session to leave `sessions`")


# --- 9: 1,000 rule changes while mail flows ----------------------------------------------------

def test_rule_changes_under_mail_flow_lose_nothing(lab, smtpwalld, smtpwallctl):
    p = lab.start_proxy(rules="block sender *@spam.example\n")
    # Mail flows from before the first change until after the last, and at least
    # `total` messages: 4 clients, 10 messages a session, sessions one after another.
    threads, per_session, total = 4, 10, 200
    errors, sent = [], []
    changes_done = threading.Event()

    def sender(t):
        try:
            s = 0
            while not (changes_done.is_set() and len(sent) >= total) and not errors:
                s += 1
                with netns(lab.ns_cli):
                    smtp = smtplib.SMTP(L.REC4, 25, local_hostname="flow-%d-%d" % (t, s),
                                        source_address=(L.CLIENT4, 0), timeout=20)
                with smtp:
                    for m in range(per_session):
                        mid = "%d-%d-%d" % (t, s, m)
                        smtp.sendmail("flow%d@steady.example" % t, ["user@example.net"],
                                      ("X-Flow-Id: %s\r\nSubject: flow\r\n\r\nmessage %s\r\n" % (mid, mid)).encode())
                        sent.append(mid)
        except Exception as e:
            errors.append("thread %d: %r" % (t, e))

    workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()

    # 750 additions and 250 removals, interleaved, over one connection
    expected = {"block sender *@spam.example"}
    cmds, want = [], []
    for i in range(750):
        cmds.append("block sender *@flood-%d.example" % i)
        want.append("ok added: block sender *@flood-%d.example" % i)
        expected.add("block sender *@flood-%d.example" % i)
        if i % 3 == 2:
            j = i - 2
            cmds.append("unblock sender *@flood-%d.example" % j)
            want.append("ok removed: block sender *@flood-%d.example" % j)
            expected.discard("block sender *@flood-%d.example" % j)
    assert len(cmds) == 1000
    wait_for(lambda: len(sent) >= 5 or errors, 10, "mail to start flowing")
    sent_at_start = len(sent)
    t0 = time.monotonic()
    conn = CtlConn(p.socket_path)
    got = []
    try:
        for k in range(0, len(cmds), 25):
            batch = cmds[k:k + 25]
            conn.send_lines(batch)
            for _ in batch:
                data, final = conn.answer()
                got.append(final)
    finally:
        conn.close()
    changes_s = time.monotonic() - t0
    sent_at_end = len(sent)
    changes_done.set()
    bad = [(c, w, g) for c, w, g in zip(cmds, want, got) if w != g]
    assert not bad, "%d answers not as expected, first: %r" % (len(bad), bad[:3])

    t1 = time.monotonic()
    for w in workers:
        w.join(60)
    after_s, sent_after = time.monotonic() - t1, len(sent) - sent_at_end
    assert not any(w.is_alive() for w in workers), "mail threads still running"
    assert not errors, errors
    assert len(sent) >= total and len(set(sent)) == len(sent)
    print("1000 rule changes in %.2fs; %d of %d messages sent meanwhile (%.0f/s; %.0f/s afterwards)"
          % (changes_s, sent_at_end - sent_at_start, len(sent), (sent_at_end - sent_at_start) / changes_s,
             sent_after / max(after_s, 1e-3)))
    assert sent_at_end > sent_at_start, "no message was sent while the rules changed (%d before, %d after)" % (
        sent_at_start, sent_at_end)

    def received():
        c = collections.Counter()
        for m in lab.recorder.messages():
            mm = re.search(rb"^X-Flow-Id: (\S+)", m["content"], re.M)
            if mm:
                c[mm.group(1).decode()] += 1
        return c
    wait_for(lambda: sum(received().values()) >= len(sent), 10, "the recorder to have every message")
    rc = received()
    dup = {k: v for k, v in rc.items() if v != 1}
    assert not dup, "messages received more than once: %r" % dup
    assert set(rc) == set(sent), "lost: %r" % (set(sent) - set(rc))

    assert set(listed_rules(p)) == expected, "`rules` differs: missing %r, extra %r" % (
        sorted(expected - set(listed_rules(p)))[:5], sorted(set(listed_rules(p)) - expected)[:5])
    assert sorted(file_rules(p)) == sorted(expected)
    p = lab.restart_proxy()
    assert set(listed_rules(p)) == expected, "after a restart `rules` differs"
    assert sorted(file_rules(p)) == sorted(expected)
    r = one_mail_from(lab, "x@flood-1.example", "flood-still-blocked")
    assert r.code == 550, r
    r = one_mail_from(lab, "x@flood-0.example", "flood-unblocked")
    assert r.code == 250, r
    lab.stop_proxy()


# --- 10: smtpwallctl's exit codes and help ----------------------------------------------------

VERBS = ["block", "unblock", "allow", "disallow", "rules", "check", "sessions", "stats", "reload", "capture"]


def test_smtpwallctl_exit_codes_and_help(lab, wall, tmp_path):
    missing = tmp_path / "no-such.sock"
    for args in (["frobnicate"], ["block"], ["block", "sender"], ["block", "sender", "*@x.example", "--for", "2x"],
                 ["allow", "relay", "203.0.113.10/32", "sms.carrier.example"], []):
        r = wall.ctl(*args, socket_path=missing)
        assert r.returncode == 2, "usage error %r -> %d %s %s" % (args, r.returncode, r.stdout, r.stderr)
        assert "usage" in r.stderr.lower(), "no usage line for %r: %r" % (args, r.stderr)
    r = wall.ctl("rules", socket_path=missing)
    assert r.returncode == 3, "missing socket -> %d %s" % (r.returncode, r.stderr)
    r = wall.ctl("unblock", "sender", "*@never.example")
    assert r.returncode == 1, "unblock of a rule that does not exist -> %d %s" % (r.returncode, r.stdout)
    assert "no such rule" in r.stderr, r.stderr
    assert ctl_ok(wall, "rules")
    r = wall.ctl("--help")
    assert r.returncode == 0, r
    missing_verbs = [v for v in VERBS if not re.search(r"\b%s\b" % v, r.stdout)]
    assert not missing_verbs, "--help does not mention %r:\n%s" % (missing_verbs, r.stdout)


def test_socat_is_a_client(lab, wall):
    """Several commands on one connection (CRLF or LF, a quoted word), answered in order."""
    finals = socat_finals(wall, "rules\r\nstats\nunblock sender \"*@never.example\"\nblock sender\n"
                                "block sender \"*@q.example\" --comment \"say \\\"hi\\\"\"\n")
    assert finals == ["ok 1 rules", "ok", "error: no such rule: block sender *@never.example",
                      finals[3], 'ok added: block sender *@q.example comment="say \\"hi\\""'], finals
    assert finals[3].startswith("error: usage: block sender PATTERN"), finals


def socat_finals(proxy, text):
    r = subprocess.run(["socat", "-t", "5", "-", "UNIX-CONNECT:%s" % proxy.socket_path],
                       input=text, capture_output=True, text=True, timeout=10)
    return [l for l in r.stdout.splitlines() if l == "ok" or l.startswith("ok ") or l.startswith("error:")]


def test_unknown_command_answers_usage(lab, wall):
    """docs/control-protocol.md: "Unknown or malformed commands: `error: usage: ...`"."""
    finals = socat_finals(wall, "frobnicate\nrules\n")
    assert len(finals) == 2 and finals[1] == "ok 1 rules", finals
    assert finals[0].startswith("error: usage"), "unknown command answered %r" % finals[0]

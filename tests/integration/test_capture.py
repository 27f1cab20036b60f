"""Session capture with libpcap (issue 5; SPEC "Session capture"), read back with
the tools an administrator uses: tshark's SMTP dissector and tcpdump.

- `capture client`: the next session from that client is written, both legs
  with their handshakes and teardowns; tshark shows the RCPT and the 550;
- `capture sender`: a session whose client was not known in advance is
  written from its first packet (the client's SYN);
- `capture refused`: among several sessions, only the refused one is written;
- capture_max_files holds (oldest removed, logged), files are 0640 and named
  YYYYMMDDTHHMMSSZ-SESSIONID-CLIENT.pcap;
- AUTH credentials never reach the file (capture_redact = yes);
- a session that outgrows capture_buffer before it matches is written
  truncated, and the log says so;
- capture list / capture stop.
"""
import base64
import os
import re
import shutil
import stat
import subprocess
import time

import pytest

import lab as L
from lab import SMTPClient, parse_kv, wait_for

LAB_SERVERS = ()            # the module's own recorder, with AUTH
USER, PASSWORD = "monitor", "s3cret-Passw0rd!"
NAME_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{16}-[0-9a-f._]+\.pcap$")


@pytest.fixture(scope="module", autouse=True)
def tools():
    for t in ("tshark", "tcpdump"):
        if shutil.which(t) is None:
            pytest.skip("%s not installed (sudo make deps)" % t)


@pytest.fixture(scope="module")
def server(lab):
    lab.recorder = lab.start_recorder(extra_ehlo=["PIPELINING"], auth=(USER, PASSWORD))
    return lab.recorder


def tcpdump_reads_all(p):
    """Every file smtpwalld wrote is a capture tcpdump reads to the end."""
    for name in files(p):
        r = subprocess.run(["tcpdump", "-nn", "-r", str(capdir(p) / name)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0 and "truncated" not in r.stderr, (name, r.stderr)


@pytest.fixture
def wall(lab, server, smtpwalld):
    p = lab.start_proxy({"capture_interface": "any", "auth_relay": "yes"})
    yield p
    if lab.proxy is p:
        lab.stop_proxy()
    tcpdump_reads_all(p)


def ctl_ok(p, *args):
    r = p.ctl(*args)
    assert r.returncode == 0, "smtpwallctl %s -> %d: %s %s" % (" ".join(args), r.returncode, r.stdout, r.stderr)
    return r.stdout.strip()


def capdir(p):
    return p.dir / "captures"


def files(p):
    d = capdir(p)
    return sorted(f for f in os.listdir(d) if f.endswith(".pcap")) if d.exists() else []


def wait_file_closed(p, cap_id, session=None, timeout=15):
    """The log line smtpwalld writes when a capture file is complete."""
    def find():
        for line in p.lines():
            kv = parse_kv(line)
            if "capture" in line and kv.get("id") == str(cap_id) and "file" in kv and "frames" in kv and \
                    (session is None or kv.get("session") == session):
                return kv
        return None
    return wait_for(find, timeout, "capture %s to close its file" % cap_id)


def tshark(path, *args):
    r = subprocess.run(["tshark", "-n", "-r", str(path)] + list(args), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def smtp_lines(path):
    """(command, parameter, response code) per SMTP PDU, as tshark's dissector reads them."""
    out = tshark(path, "-Y", "smtp", "-T", "fields", "-e", "tcp.stream", "-e", "smtp.req.command",
                 "-e", "smtp.req.parameter", "-e", "smtp.response.code")
    return [l.split("\t") for l in out.splitlines()]


def syn_streams(path):
    out = tshark(path, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0", "-T", "fields",
                 "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.dstport")
    return [l for l in out.splitlines() if l.strip()]


def session_of(p, port):
    return p.summary(port)["session"]


def relay_attempt(lab, src, helo):
    with SMTPClient(lab, L.REC4, src=src) as c:
        assert c.greeting().code == 220
        assert c.ehlo(helo).code == 250
        assert c.cmd("MAIL FROM:<spammer@example.org>").code == 250
        r = c.cmd("RCPT TO:<victim@elsewhere.example>")
        assert r.code == 550, r
        c.quit()
        return c.local_port


def deliver(lab, src, helo, sender="user@example.org", body="hello", auth=None):
    with SMTPClient(lab, L.REC4, src=src) as c:
        assert c.greeting().code == 220
        assert c.ehlo(helo).code == 250
        if auth:
            token = base64.b64encode(("\0%s\0%s" % auth).encode()).decode()
            assert c.cmd("AUTH PLAIN " + token).code == 235
        assert c.cmd("MAIL FROM:<%s>" % sender).code == 250
        assert c.cmd("RCPT TO:<admin@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        assert c.cmd("Subject: %s\r\n\r\n%s\r\n." % (helo, body)).code == 250
        c.quit()
        return c.local_port


def test_capture_client_writes_both_legs_of_a_refused_relay(lab, wall):
    cap_id = ctl_ok(wall, "capture", "client", L.CLIENT4 + "/32", "--sessions", "1")
    assert cap_id.isdigit(), cap_id
    port = relay_attempt(lab, L.CLIENT4, "cap-client")
    sid = session_of(wall, port)
    kv = wait_file_closed(wall, cap_id, sid)
    (name,) = files(wall)
    assert NAME_RE.match(name) and sid in name and name.endswith("-%s.pcap" % L.CLIENT4), name
    path = capdir(wall) / name
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640

    lines = smtp_lines(path)
    cmds = [(c, prm) for _, c, prm, _ in lines if c]
    codes = [code for _, _, _, code in lines if code]
    assert ("RCPT", "TO:<victim@elsewhere.example>") in cmds, lines
    assert "550" in codes, lines
    # Both legs, each from its SYN: the client's to port 25 and smtpwalld's to the server.
    syns = syn_streams(path)
    assert len(syns) == 2, syns
    assert any(L.CLIENT4 in s for s in syns) and any(L.GW_S4 in s for s in syns), syns
    assert len({l[0] for l in lines}) == 2, "not two TCP streams: %r" % lines
    # ... and their teardowns.
    fins = tshark(path, "-Y", "tcp.flags.fin == 1", "-T", "fields", "-e", "tcp.stream").split()
    assert {"0", "1"} <= set(fins), fins
    # The server leg never carried the refused RCPT.
    server_stream = [l[0] for l in lines if l[1] == "RCPT"][0]
    assert all(not (c == "RCPT" and s != server_stream) for s, c, _, _ in lines)
    # tcpdump reads it too.
    r = subprocess.run(["tcpdump", "-nn", "-r", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "Flags [S]" in r.stdout, r.stderr
    # --sessions 1: done; list shows the file, no armed capture.
    out = ctl_ok(wall, "capture", "list")
    assert "capture id=%s" % cap_id not in out and name in out, out
    assert int(kv["frames"]) >= 10


def test_capture_sender_catches_an_unknown_client_from_its_syn(lab, wall):
    cap_id = ctl_ok(wall, "capture", "sender", "*@alerts.example", "--sessions", "2", "--for", "10m")
    other = deliver(lab, L.CLIENT4, "cap-other", sender="news@example.org")
    port = deliver(lab, L.TRUSTED4, "cap-sender", sender="nagios@alerts.example")
    sid = session_of(wall, port)
    wait_file_closed(wall, cap_id, sid)
    names = files(wall)
    assert len(names) == 1 and sid in names[0], names
    assert session_of(wall, other) not in names[0]
    path = capdir(wall) / names[0]
    first = tshark(path, "-c", "1", "-T", "fields", "-e", "ip.src", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack")
    assert first.split() in (["%s" % L.TRUSTED4, "1", "0"], ["%s" % L.TRUSTED4, "True", "False"]), first
    cmds = [(c, prm) for _, c, prm, _ in smtp_lines(path) if c]
    assert ("MAIL", "FROM:<nagios@alerts.example>") in cmds
    assert re.search(r"capture id=%s sender \*@alerts.example sessions_left=1 files=1 until=20" % cap_id,
                     ctl_ok(wall, "capture", "list"))
    assert ctl_ok(wall, "capture", "stop", cap_id) == "stopped capture %s" % cap_id
    assert "capture id=%s" % cap_id not in ctl_ok(wall, "capture", "list")


def test_capture_refused_writes_only_the_refused_session(lab, wall):
    cap_id = ctl_ok(wall, "capture", "refused", "--sessions", "5")
    ok1 = deliver(lab, L.CLIENT4, "cap-ok-1")
    bad = relay_attempt(lab, L.CLIENT4, "cap-refused")
    ok2 = deliver(lab, L.TRUSTED4, "cap-ok-2")
    sid = session_of(wall, bad)
    wait_file_closed(wall, cap_id, sid)
    time.sleep(L_GRACE)
    names = files(wall)
    assert len(names) == 1 and sid in names[0], names
    for port in (ok1, ok2):
        assert session_of(wall, port) not in names[0]
    assert "550" in [code for _, _, _, code in smtp_lines(capdir(wall) / names[0]) if code]
    out = ctl_ok(wall, "capture", "list")
    assert re.search(r"capture id=%s refused sessions_left=4 files=1" % cap_id, out), out


L_GRACE = 2.5   # smtpwalld closes a file 2 s after its session (the teardown frames)


def test_capture_files_are_bounded(lab, server, smtpwalld):
    p = lab.start_proxy({"capture_max_files": "2"})
    cap_id = ctl_ok(p, "capture", "client", L.CLIENT4 + "/32", "--sessions", "3")
    sids = []
    for i in range(3):
        sids.append(session_of(p, deliver(lab, L.CLIENT4, "cap-limit-%d" % i)))
        wait_file_closed(p, cap_id, sids[-1])
    names = files(p)
    assert len(names) == 2, names
    assert sids[0] not in "".join(names) and sids[2] in "".join(names), (sids, names)
    assert [l for l in p.lines() if "removed" in l and sids[0] in l], "the removal was not logged"
    lab.stop_proxy()
    tcpdump_reads_all(p)


def test_auth_credentials_are_blanked(lab, wall):
    cap_id = ctl_ok(wall, "capture", "client", L.CLIENT4 + "/32")
    port = deliver(lab, L.CLIENT4, "cap-auth", auth=(USER, PASSWORD))
    wait_file_closed(wall, cap_id, session_of(wall, port))
    (name,) = files(wall)
    raw = (capdir(wall) / name).read_bytes()
    token = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode())
    assert token not in raw and PASSWORD.encode() not in raw
    assert raw.count(b"AUTH PLAIN ") == 2, "AUTH PLAIN on both legs"
    assert raw.count(b"AUTH PLAIN " + b"*" * len(token)) == 2
    # The rest of the dialog is intact.
    cmds = [c for _, c, _, _ in smtp_lines(capdir(wall) / name) if c]
    assert cmds.count("MAIL") == 2 and cmds.count("DATA") == 2


def test_a_session_that_outgrows_the_buffer_is_written_truncated(lab, server, smtpwalld):
    p = lab.start_proxy({"capture_buffer": "64K"})
    cap_id = ctl_ok(p, "capture", "refused")
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        assert c.greeting().code == 220
        assert c.ehlo("cap-big").code == 250
        assert c.cmd("MAIL FROM:<big@example.org>").code == 250
        assert c.cmd("RCPT TO:<admin@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(("X" * 998 + "\r\n") * 300)
        assert c.cmd(".").code == 250
        assert c.cmd("MAIL FROM:<big@example.org>").code == 250
        assert c.cmd("RCPT TO:<victim@elsewhere.example>").code == 550
        c.quit()
        port = c.local_port
    sid = session_of(p, port)
    kv = wait_file_closed(p, cap_id, sid)
    assert kv.get("truncated") == "yes", kv
    assert [l for l in p.lines() if "outgrew" in l and sid in l], "truncation not logged"
    (name,) = files(p)
    # What was kept is still a readable capture starting with the handshake.
    assert tshark(capdir(p) / name, "-c", "1", "-T", "fields", "-e", "tcp.flags.syn").strip() in ("1", "True")
    lab.stop_proxy()
    tcpdump_reads_all(p)


def test_capture_errors(lab, wall):
    r = wall.ctl("capture", "client", "203.0.113.300/32")
    assert r.returncode == 1 and "error" not in r.stdout
    r = wall.ctl("capture", "stop", "999")
    assert r.returncode == 1 and "no armed capture" in r.stderr
    r = wall.ctl("capture", "sender", "*@x.example", "--sessions", "0")
    assert r.returncode in (1, 2)


def test_capture_over_ipv6(lab, wall):
    cap_id = ctl_ok(wall, "capture", "client", L.CLIENT6 + "/128")
    with SMTPClient(lab, L.REC6, src=L.CLIENT6) as c:
        assert c.greeting().code == 220
        assert c.ehlo("cap-v6").code == 250
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250
        assert c.cmd("RCPT TO:<victim@elsewhere.example>").code == 550
        c.quit()
        port = c.local_port
    sid = session_of(wall, port)
    wait_file_closed(wall, cap_id, sid)
    (name,) = files(wall)
    assert name.endswith("-%s.pcap" % L.CLIENT6.replace(":", "_")), name
    syns = syn_streams(capdir(wall) / name)
    assert len(syns) == 2 and any(L.CLIENT6 in s for s in syns) and any(L.GW_S6 in s for s in syns), syns
    assert "550" in [code for _, _, _, code in smtp_lines(capdir(wall) / name) if code]

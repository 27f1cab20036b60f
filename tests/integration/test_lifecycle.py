"""The daemon's life on a gateway (issue 6): graceful stop, reload under load, and
running unprivileged with only the capabilities systemd gives it.

- SIGTERM with sessions open: no new connection is accepted; a session in the
  middle of a transaction finishes its message; one that stays idle gets
  `421 4.3.2` after shutdown_timeout; the daemon exits 0 and said STOPPING=1.
- SIGHUP while a session is in the middle of DATA: that message completes,
  byte for byte; the session keeps its configuration, the next one gets the new.
- As the unprivileged user `nobody` with only CAP_NET_ADMIN and CAP_NET_RAW
  (what systemd/smtpwalld.service grants): a whole session through NFQUEUE
  admission, a blocked client dropped, and a capture written.
"""
import os
import pwd
import re
import signal
import socket
import time

import pytest

import lab as L
from lab import SMTPClient, parse_kv, wait_for

LAB_SERVERS = ("recorder",)
LAB_REDIRECT = None


def open_session(lab, helo, src=L.CLIENT4):
    c = SMTPClient(lab, L.REC4, src=src)
    assert c.greeting().code == 220
    assert c.ehlo(helo).code == 250
    return c


def test_sigterm_lets_open_sessions_finish_then_421(lab, smtpwalld, firewall_tool):
    p = lab.start_proxy({"shutdown_timeout": "3"})
    lab.firewall("up", p.conf_path)
    busy = open_session(lab, "term-busy")
    idle = open_session(lab, "term-idle")
    assert busy.cmd("MAIL FROM:<a@example.org>").code == 250
    assert busy.cmd("RCPT TO:<admin@example.net>").code == 250

    p.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "STOPPING=1" in p.notifications(), 5, "STOPPING=1")
    # No new session: the listener is closed, the REDIRECTed SYN gets a reset.
    with pytest.raises((ConnectionRefusedError, ConnectionResetError, EOFError, AssertionError)):
        with SMTPClient(lab, L.REC4, src=L.TRUSTED4, timeout=3) as late:
            late.greeting()
    # The open transaction completes.
    assert busy.cmd("DATA").code == 354
    r = busy.cmd("Subject: term\r\n\r\nfinished during shutdown\r\n.")
    assert r.code == 250, r
    assert busy.cmd("QUIT").code == 221
    busy.close()
    # The idle one is told, after shutdown_timeout.
    t0 = time.monotonic()
    r = idle.reply()
    assert r.code == 421 and r.enh == "4.3.2", r
    assert time.monotonic() - t0 < 10
    idle.close()
    assert p.proc.wait(10) == 0
    assert [m for m in lab.recorder.messages() if b"finished during shutdown" in m["content"]]
    lab.stop_proxy()


def test_sighup_mid_data_completes_that_message(lab, smtpwalld, firewall_tool):
    p = lab.start_proxy()
    lab.firewall("up", p.conf_path)
    c = open_session(lab, "hup-mid-data")
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<admin@example.net>").code == 250
    assert c.cmd("DATA").code == 354
    first = b"Subject: reload\r\n\r\n" + b"line before the reload\r\n" * 2000
    c.send(first)
    # A new configuration: a second local domain.
    text = p.conf_path.read_text().replace("local_domains = example.net", "local_domains = example.net, example.com")
    p.conf_path.write_text(text)
    before = len(p.notifications())
    p.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: [l for l in p.lines() if "reload config=" in l], 5, "the reload to be logged")
    notes = p.notifications()[before:]
    assert "RELOADING=1" in notes and notes[-1].startswith("READY=1"), notes
    second = b"line after the reload\r\n" * 2000
    c.send(second)
    r = c.cmd(".")
    assert r.code == 250, r
    # An open session keeps the configuration it started with (live *rules*
    # apply to the next command; a configuration applies to the next session).
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<someone@example.com>").code == 550
    c.quit()
    c.close()
    n = open_session(lab, "hup-next-session")
    assert n.cmd("MAIL FROM:<a@example.org>").code == 250
    assert n.cmd("RCPT TO:<someone@example.com>").code == 250
    n.quit()
    n.close()
    (msg,) = [m for m in lab.recorder.messages() if b"line before the reload" in m["content"]]
    assert msg["content"].replace(b"\r\n", b"\n").endswith((first.split(b"\r\n\r\n", 1)[1] + second).replace(b"\r\n", b"\n")), \
        "the message was altered across the reload"
    lab.stop_proxy()


def test_unprivileged_with_only_net_admin_and_net_raw(lab, smtpwalld, firewall_tool):
    p = lab.start_proxy({"nfqueue": "0", "nfqueue_fail": "closed"},
                        run_as=("nobody", "nogroup", ["net_admin", "net_raw"]))
    lab.firewall("up", p.conf_path)
    status = open("/proc/%d/status" % p.proc.pid).read()
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    cap_eff = int(re.search(r"^CapEff:\s+([0-9a-f]+)", status, re.M).group(1), 16)
    assert uid == str(pwd.getpwnam("nobody").pw_uid), status
    assert cap_eff == (1 << 12) | (1 << 13), "CapEff %x: want exactly CAP_NET_ADMIN and CAP_NET_RAW" % cap_eff

    cap_id = p.ctl("capture", "client", L.CLIENT4 + "/32").stdout.strip()
    assert cap_id.isdigit(), cap_id
    c = open_session(lab, "unpriv")
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<admin@example.net>").code == 250
    assert c.cmd("DATA").code == 354
    assert c.cmd("Subject: unprivileged\r\n\r\nhello\r\n.").code == 250
    c.quit()
    c.close()
    wait_for(lambda: [l for l in p.lines() if "capture id=%s session=" % cap_id in l and "frames=" in l], 15,
             "the capture file to be closed")
    names = os.listdir(p.dir / "captures")
    assert len(names) == 1 and names[0].endswith("-%s.pcap" % L.CLIENT4), names
    assert p.ctl("block", "client", L.TRUSTED4 + "/32").returncode == 0   # the rules file is writable
    try:
        with SMTPClient(lab, L.REC4, src=L.TRUSTED4, timeout=3):
            raise AssertionError("a blocked client got a TCP connection")
    except (socket.timeout, TimeoutError):
        pass
    assert "nfq_syn_dropped_client=" in p.ctl("stats").stdout
    assert not [l for l in p.lines() if "Operation not permitted" in l or "Permission denied" in l], p.log_tail()
    lab.stop_proxy()

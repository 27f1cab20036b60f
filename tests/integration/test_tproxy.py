"""mode = tproxy (issue 4; SPEC mode): the listener and the upstream sockets are
IP_TRANSPARENT and the upstream connection leaves from the client's own
address, so the mail server sees and logs the real client, not the gateway.
The rules are the real ones `smtpwall-firewall up` installs (TPROXY, the
`socket transparent` mark, the fwmark policy route).

The server is a real Postfix 3.7 in the server namespace: its log must say
`connect from unknown[203.0.113.10]` and the Received: header of the message it
queued must name 203.0.113.10, while smtpwalld still applies its policy.
"""
import re

import pytest

import lab as L
from lab import SMTPClient, parse_kv, wait_for

LAB_SERVERS = ("recorder", "postfix")
LAB_REDIRECT = None


@pytest.fixture(scope="module")
def tproxy(lab, smtpwalld, firewall_tool):
    p = lab.start_proxy({"mode": "tproxy"})
    lab.firewall("up", p.conf_path)
    yield p
    if lab.proxy is p:
        lab.stop_proxy()


def send(lab, src, dst, helo, rcpt="user@example.net"):
    """One message; returns (RCPT reply, end-of-DATA reply or None, client port)."""
    with SMTPClient(lab, dst, src=src, timeout=10) as c:
        assert c.greeting().code == 220
        assert c.ehlo(helo).code == 250
        assert c.cmd("MAIL FROM:<monitor@example.org>").code == 250
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        end = None
        if r.code == 250:
            assert c.cmd("DATA").code == 354
            end = c.cmd("Subject: %s\r\n\r\nvia tproxy\r\n." % helo)
        c.quit()
        return r, end, c.local_port


@pytest.mark.parametrize("src,dst", [(L.CLIENT4, L.PF4), (L.CLIENT6, L.PF6)], ids=["ipv4", "ipv6"])
def test_postfix_logs_the_real_client(lab, tproxy, src, dst):
    pf = lab.postfix
    before, disc = pf.queue_files(), pf.disconnects()
    helo = "tproxy-" + ("v6" if ":" in src else "v4")
    rcpt, end, port = send(lab, src, dst, helo)
    assert rcpt.code == 250 and end is not None and end.code == 250, (rcpt, end)
    pf.wait_settled(disc)

    log = pf.maillog.read_text(errors="replace")
    assert re.search(r"connect from unknown\[%s\]" % re.escape(src), log), log[-2000:]
    gw = L.GW_S6 if ":" in src else L.GW_S4
    assert "[%s]" % gw not in log, "Postfix saw the gateway's address:\n" + log[-2000:]
    (new,) = pf.queue_files() - before
    msg = pf.read(new)
    received = b"\n".join(l for l in msg["lines"] if l.startswith(b"Received:") or l.startswith(b"\t"))
    assert src.encode() in received, received

    # smtpwalld saw and relayed the session; its summary names both ends.
    s = tproxy.summary(port)
    assert s["client"].startswith(src if ":" not in src else "[" + src)
    assert s["server"] in ("%s:25" % dst, "[%s]:25" % dst)


def test_policy_still_applies_under_tproxy(lab, tproxy):
    rcpt, end, port = send(lab, L.CLIENT4, L.REC4, "tproxy-relay", rcpt="someone@elsewhere.example")
    assert rcpt.code == 550 and "Relay access denied" in rcpt.text, rcpt
    conn = lab.recorder.session("tproxy-relay")[0]
    # The recorder, too, sees the real client, and never the refused RCPT.
    assert lab.recorder.peer(conn)[0] == L.CLIENT4
    assert not [c for c in lab.recorder.commands(conn) if c.upper().startswith("RCPT")]


def test_direct_connection_to_the_listener_is_refused(lab, tproxy):
    """Not intercepted (a client reaching :10025 itself): no destination, 421, no loop."""
    with SMTPClient(lab, L.GW_C4, port=L.LISTEN_PORT, src=L.CLIENT4, timeout=10) as c:
        r = c.greeting()
        assert r.code == 421 and r.enh == "4.3.5", r


def test_tproxy_with_nfqueue_drops_blocked_and_passes_the_rest(lab, smtpwalld, firewall_tool):
    p = lab.start_proxy({"mode": "tproxy", "nfqueue": "0", "nfqueue_fail": "closed"})
    lab.firewall("up", p.conf_path)
    assert p.ctl("block", "client", "203.0.113.10/32").returncode == 0
    try:
        with SMTPClient(lab, L.REC4, src=L.CLIENT4, timeout=3):
            raise AssertionError("a blocked client got a TCP connection")
    except (TimeoutError, OSError) as e:
        assert "timed out" in str(e), e
    rcpt, end, port = send(lab, L.TRUSTED4, L.REC4, "tproxy-nfq")
    assert end is not None and end.code == 250
    conn = lab.recorder.session("tproxy-nfq")[0]
    assert lab.recorder.peer(conn)[0] == L.TRUSTED4
    lab.stop_proxy()

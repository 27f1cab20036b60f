"""xclient = on against a real Postfix (SPEC `xclient`; Postfix XCLIENT_README).

In mode redirect the server sees the gateway's address (198.51.100.1 /
2001:db8:5::1) on every connection. With xclient = on and a Postfix that
lists the gateway in smtpd_authorized_xclient_hosts, smtpwalld tells it the
real client (ADDR, PORT, NAME=[UNAVAILABLE], HELO, PROTO): Postfix's log and
the Received: header of the queued message name 203.0.113.10 (or
2001:db8:c::10), never the gateway. With xclient = off, or a Postfix that
does not authorize the gateway, the server sees the gateway (and the mail
still goes through). The client never sees XCLIENT in the EHLO reply.

This module runs its own Postfix instances (same addresses as the lab's
default one, which it therefore does not start): "postfix-xc" authorizes
the gateway, "postfix-plain" does not.
"""
import re

import pytest

import lab as L
from lab import SMTPClient

LAB_SERVERS = ()

XC_MAIN = [
    "smtpd_authorized_xclient_hosts = %s, [%s]" % (L.GW_S4, L.GW_S6),
    # the SMTP dialog in the maillog ("< ...: XCLIENT ..."), before and after XCLIENT
    "debug_peer_list = %s, [%s], %s, [%s]" % (L.GW_S4, L.GW_S6, L.CLIENT4, L.CLIENT6),
]


@pytest.fixture(scope="module")
def pfx(lab):
    pf = L.PostfixServer(lab, "postfix-xc", extra_main=XC_MAIN)
    yield pf
    pf.stop()


def _send(lab, pf, src, dst, helo, tag):
    """One message from `src` to `dst`:25 through the gateway. Returns (client port,
    EHLO reply, queue file as PostfixServer.read, new maillog text)."""
    before_files = pf.queue_files()
    before_disc = pf.disconnects()
    log_before = len(pf.maillog.read_text()) if pf.maillog.exists() else 0
    with SMTPClient(lab, dst, src=src) as c:
        g = c.greeting()
        assert g.code == 220, g
        ehlo = c.ehlo(helo)
        assert ehlo.code == 250, ehlo
        r = c.cmd("MAIL FROM:<alice@example.org>")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<user@example.net>")
        assert r.code == 250, r
        assert c.cmd("DATA").code == 354
        c.send("Subject: %s\r\n\r\nhello\r\n.\r\n" % tag)
        end = c.reply()
        assert end.code == 250, end
        assert c.cmd("QUIT").code == 221
        port = c.local_port
    pf.wait_settled(before_disc, 1)
    new = pf.queue_files() - before_files
    assert len(new) == 1, "expected one new queue file, got %r" % new
    msg = pf.read(new.pop())
    log = pf.maillog.read_text()[log_before:]
    return port, ehlo, msg, log


def _received(msg):
    """The first Received: header (with its continuation lines), as text."""
    out, inside = [], False
    for line in msg["lines"]:
        line = line.rstrip(b"\r").decode("latin-1")
        if line.lower().startswith("received:"):
            if inside:
                break
            inside = True
            out.append(line)
        elif inside and line[:1] in (" ", "\t"):
            out.append(line)
        elif inside:
            break
    assert out, "no Received: header in %r" % msg["lines"][:10]
    return " ".join(out)


@pytest.mark.parametrize("src,dst,gw,shown", [
    (L.CLIENT4, L.PF4, L.GW_S4, "unknown[%s]" % L.CLIENT4),
    (L.CLIENT6, L.PF6, L.GW_S6, "unknown[%s]" % L.CLIENT6),
], ids=["ipv4", "ipv6"])
def test_xclient_server_sees_real_client(lab, smtpwalld, pfx, src, dst, gw, shown):
    proxy = lab.start_proxy({"xclient": "on"})
    helo = "xc-client%s.example" % ("6" if ":" in src else "4")
    port, ehlo, msg, log = _send(lab, pfx, src, dst, helo, "xclient-on")

    assert "XCLIENT" not in ehlo.keywords and "XFORWARD" not in ehlo.keywords, ehlo
    # Postfix read our XCLIENT and took it (debug_peer_list logs the dialog)
    xc = re.findall(r"< [^ ]+: (XCLIENT [^\n]*)", log)
    assert xc, log
    want = "XCLIENT ADDR=%s PORT=%d NAME=[UNAVAILABLE] HELO=%s PROTO=ESMTP" % (
        ("IPV6:" + src) if ":" in src else src, port, helo)
    assert xc == [want], xc
    assert re.search(r"> [^ ]+: 220 ", log[log.index(want):]), "no 220 after XCLIENT: " + log
    # the queued message's client is the real one, nowhere the gateway
    assert "client=%s" % shown in log, log
    rec = _received(msg)
    addr = ("IPv6:" + src) if ":" in src else src
    assert "[%s]" % addr in rec, rec
    assert gw not in rec, rec
    assert "from %s " % helo in rec, rec
    assert "with ESMTP" in rec, rec

    s = proxy.summary(port)
    assert s.get("xclient") == "ok", s["_line"]


def test_xclient_helo_client(lab, smtpwalld, pfx):
    """A HELO client: PROTO=SMTP, and Postfix records SMTP (not ESMTP)."""
    proxy = lab.start_proxy({"xclient": "on"})
    before_files = pfx.queue_files()
    before_disc = pfx.disconnects()
    with SMTPClient(lab, L.PF4, src=L.CLIENT4) as c:
        assert c.greeting().code == 220
        r = c.cmd("HELO old-client.example")
        assert r.code == 250 and len(r.lines) == 1, r
        assert c.cmd("MAIL FROM:<bob@example.org>").code == 250
        assert c.cmd("RCPT TO:<user@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send("Subject: helo\r\n\r\nhi\r\n.\r\n")
        assert c.reply().code == 250
        assert c.cmd("QUIT").code == 221
        port = c.local_port
    pfx.wait_settled(before_disc, 1)
    (path,) = pfx.queue_files() - before_files
    rec = _received(pfx.read(path))
    assert "from old-client.example (unknown [%s])" % L.CLIENT4 in rec, rec
    assert "with SMTP " in rec, rec
    assert L.GW_S4 not in rec, rec
    assert proxy.summary(port).get("xclient") == "ok"


def test_xclient_off_server_sees_gateway(lab, smtpwalld, pfx):
    """The classic mistake xclient fixes: without it, Postfix sees the gateway."""
    proxy = lab.start_proxy({"xclient": "off"})
    port, ehlo, msg, log = _send(lab, pfx, L.CLIENT4, L.PF4, "xc-off.example", "xclient-off")
    assert "XCLIENT" not in ehlo.keywords, ehlo
    assert "XCLIENT" not in "".join(re.findall(r"< [^ ]+: ([^\n]*)", log)), log
    rec = _received(msg)
    assert "[%s]" % L.GW_S4 in rec, rec
    assert L.CLIENT4 not in rec, rec
    assert "xclient" not in proxy.summary(port), "no xclient= in the summary when off"


def test_xclient_client_cannot_send_xclient(lab, smtpwalld, pfx):
    """Even with xclient = on and a server that authorizes the gateway, XCLIENT typed
    by the client is 502 and never reaches the server."""
    lab.start_proxy({"xclient": "on"})
    with SMTPClient(lab, L.PF4, src=L.CLIENT4) as c:
        assert c.greeting().code == 220
        r = c.cmd("XCLIENT ADDR=192.0.2.15 NAME=trusted.example")
        assert r.code == 502, r
        assert c.ehlo("sneaky.example").code == 250
        r = c.cmd("XCLIENT ADDR=192.0.2.15")
        assert r.code == 502, r
        assert c.cmd("QUIT").code == 221


@pytest.fixture()
def pf_plain(lab, pfx):
    """A Postfix that does not authorize the gateway (on the same addresses: the
    authorizing one is stopped first)."""
    pfx.stop()
    pf = L.PostfixServer(lab, "postfix-plain",
                         extra_main=["debug_peer_list = %s, [%s]" % (L.GW_S4, L.GW_S6)])
    yield pf
    pf.stop()


def test_xclient_not_authorized_still_delivers(lab, smtpwalld, pf_plain):
    proxy = lab.start_proxy({"xclient": "on"})
    port, ehlo, msg, log = _send(lab, pf_plain, L.CLIENT4, L.PF4, "xc-plain.example", "not-offered")
    assert "XCLIENT" not in ehlo.keywords, ehlo
    # not offered: no XCLIENT sent, and the client's EHLO went out once
    assert "XCLIENT" not in "".join(re.findall(r"< [^ ]+: ([^\n]*)", log)), log
    assert len(re.findall(r"< [^ ]+: EHLO xc-plain.example", log)) == 1, log
    rec = _received(msg)
    assert "[%s]" % L.GW_S4 in rec, rec
    s = proxy.summary(port)
    assert s.get("xclient") == "not_offered", s["_line"]
    assert any("xclient=not_offered" in l for l in proxy.lines()), proxy.log_tail()

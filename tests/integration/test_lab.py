"""The lab itself, without smtpwalld: routing, the REDIRECT (both netfilter
backends) and the servers behave as the proxy tests assume. If these fail,
a proxy test failure says nothing about smtpwalld."""
import socket
import struct

import pytest

import lab as L
from lab import SMTPClient, netns

LAB_SERVERS = ("recorder", "sink", "postfix")
LAB_REDIRECT = None     # direct routing; the redirect tests install it themselves

SO_ORIGINAL_DST = 80    # linux/netfilter_ipv4.h; IP6T_SO_ORIGINAL_DST has the same value


def _deliver(lab, dst, src, helo, port=25):
    with SMTPClient(lab, dst, port=port, src=src) as c:
        assert c.greeting().code == 220
        ehlo = c.ehlo(helo)
        assert ehlo.code == 250
        assert c.cmd("MAIL FROM:<lab@example.org>").code == 250
        assert c.cmd("RCPT TO:<user@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: lab\r\n\r\nhello\r\n.\r\n")
        assert c.reply().code == 250
        assert c.cmd("QUIT").code == 221
        return ehlo


@pytest.mark.parametrize("src,dst", [(L.CLIENT4, L.REC4), (L.CLIENT6, L.REC6)], ids=["ipv4", "ipv6"])
def test_client_reaches_recorder_routed_through_gateway(lab, src, dst):
    helo = "lab-direct-" + ("6" if ":" in dst else "4")
    _deliver(lab, dst, src, helo)
    (conn,) = lab.recorder.session(helo)
    assert lab.recorder.peer(conn)[0] == src, "no NAT on the direct path: the server sees the client"
    (msg,) = lab.recorder.messages(conn)
    assert msg["rcpt_tos"] == ["user@example.net"]
    assert msg["content"] == b"Subject: lab\r\n\r\nhello\r\n"
    assert any(l.startswith("RCPT TO:<user@example.net>") for l in lab.recorder.commands(conn))


def test_recorder_advertises_what_the_tests_rely_on(lab):
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        assert "PIPELINING" in c.ehlo("lab-kw").keywords


def test_smtp_sink_advertises_xclient_and_xforward(lab):
    with SMTPClient(lab, L.SINK4, src=L.CLIENT4) as c:
        assert c.greeting().code == 220
        kw = c.ehlo("lab-sink").keywords
        assert "XCLIENT" in kw and "XFORWARD" in kw
        c.quit()


@pytest.mark.parametrize("dst,port", [(L.PF4, 25), (L.PF4, L.PF_DIRECT_PORT), (L.PF6, 25)])
def test_postfix_accepts_and_holds(lab, dst, port):
    pf = lab.postfix
    before, disc = pf.queue_files(), pf.disconnects()
    _deliver(lab, dst, L.CLIENT6 if ":" in dst else L.CLIENT4, "lab-pf", port=port)
    pf.wait_settled(disc)
    (new,) = pf.queue_files() - before
    m = pf.read(new)
    assert m["sender"] == "lab@example.org" and m["recipients"] == ["user@example.net"]


@pytest.mark.parametrize("backend", ["nft", "iptables"])
@pytest.mark.parametrize("fam", ["ipv4", "ipv6"])
def test_redirect_lands_on_gateway_port_with_original_destination(lab, backend, fam):
    v6 = fam == "ipv6"
    af = socket.AF_INET6 if v6 else socket.AF_INET
    with netns(lab.ns_gw):
        ls = socket.socket(af, socket.SOCK_STREAM)
    try:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6:
            ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        ls.bind(("::" if v6 else "0.0.0.0", L.LISTEN_PORT))
        ls.listen(4)
        ls.settimeout(10)
        lab.redirect(backend)
        try:
            dst = L.REC6 if v6 else L.REC4
            with SMTPClient(lab, dst, src=L.CLIENT6 if v6 else L.CLIENT4) as c:
                conn, peer = ls.accept()
                with conn:
                    assert peer[0] == (L.CLIENT6 if v6 else L.CLIENT4)
                    if v6:
                        raw = conn.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
                        port = struct.unpack("!H", raw[2:4])[0]
                        addr = socket.inet_ntop(socket.AF_INET6, raw[8:24])
                    else:
                        raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
                        port = struct.unpack("!H", raw[2:4])[0]
                        addr = socket.inet_ntop(socket.AF_INET, raw[4:8])
                    assert (addr, port) == (dst, 25)
                    conn.sendall(b"220 fake\r\n")
                    assert c.greeting().lines == ["220 fake"]
        finally:
            lab.redirect(None)
    finally:
        ls.close()

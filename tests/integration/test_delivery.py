"""Mail that policy allows goes through smtpwalld unchanged, as if it were not there.

Issue 2, tests 1 (byte-identical local delivery + session summary), 6 (pipelining),
8 (upstream down), 10 (IPv6 delivery); plus both netfilter backends, swaks, a volume
run against Postfix's smtp-sink, and the sd_notify readiness message.
"""
import smtplib
import socket

import pytest

import lab as L
from lab import SMTPClient, netns, wait_for

LAB_SERVERS = ("recorder", "sink")

CRLF = b"\r\n"


def dot_stuff(content):
    return b"".join((b"." + l if l.startswith(b".") else l) for l in content.splitlines(keepends=True))


def hostport_ok(value, addr, port):
    return value in ("%s:%d" % (addr, port), "[%s]:%d" % (addr, port))


TRICKY_CONTENT = CRLF.join([
    b"From: Alice <alice@example.org>",
    b"To: <user@example.net>",
    b"Subject: byte-exact",
    b"MIME-Version: 1.0",
    b"Content-Type: text/plain; charset=utf-8",
    b"Content-Transfer-Encoding: 8bit",
    b"",
    "Gr\u00fc\u00dfe aus K\u00f6ln, 8-bit UTF-8: \u2713".encode(),
    bytes(range(0x80, 0x100)),
    b"x" * 998,
    b".",
    b".leading dot",
    b"..two leading dots",
    b"trailing white space \t ",
    b"",
    b"last line",
]) + CRLF


def _deliver_raw(lab, src, dst, helo, rcpt, content):
    with SMTPClient(lab, dst, src=src) as c:
        g = c.greeting()
        assert g.code == 220, g
        assert c.ehlo(helo).code == 250
        r = c.cmd("MAIL FROM:<alice@example.org> BODY=8BITMIME")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.code == 250, r
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(content) + b".\r\n")
        end = c.reply()
        assert end.code == 250, end
        assert "recorded as" in end.text, "the 250 after DATA must be the server's own: %r" % end
        assert c.cmd("QUIT").code == 221
        return c.local_port


@pytest.mark.parametrize("src,dst,srv", [(L.CLIENT4, L.REC4, L.REC4), (L.CLIENT6, L.REC6, L.REC6)],
                         ids=["ipv4", "ipv6"])
def test_local_delivery_is_byte_identical_and_summarised(lab, proxy, src, dst, srv):
    helo = "deliv-" + ("6" if ":" in src else "4")
    port = _deliver_raw(lab, src, dst, helo, "user@example.net", TRICKY_CONTENT)

    (conn,) = lab.recorder.session(helo)
    (msg,) = lab.recorder.messages(conn)
    assert msg["mail_from"] == "alice@example.org"
    assert msg["mail_options"] == ["BODY=8BITMIME"]
    assert msg["rcpt_tos"] == ["user@example.net"]
    assert msg["wire"] == dot_stuff(TRICKY_CONTENT), "DATA bytes changed on the way"
    assert msg["content"] == TRICKY_CONTENT
    assert lab.recorder.peer(conn)[0] == (L.GW_S6 if ":" in src else L.GW_S4), \
        "mode=redirect: the server sees the gateway's address"

    s = proxy.summary(port)
    assert hostport_ok(s["client"], src, port), s["_line"]
    assert hostport_ok(s.get("server", ""), srv, 25), s["_line"]
    assert s.get("helo") == helo, s["_line"]
    assert s.get("from") == "<alice@example.org>", s["_line"]
    assert s.get("rcpt_ok") == "1" and s.get("rcpt_refused") == "0", s["_line"]
    assert s.get("messages") == "1", s["_line"]
    for k in ("bytes", "duration", "result"):
        assert s.get(k), "summary line lacks %s=: %s" % (k, s["_line"])


def test_swaks_delivery(lab, proxy):
    r = lab.sh(lab.ns_cli, "swaks", "--server", L.REC4, "--port", "25", "-li", L.CLIENT4, "--helo", "swaks-deliv",
               "--from", "swaks@example.org", "--to", "user@example.net", "--header", "Subject: swaks",
               "--body", "hello from swaks", "--timeout", "10", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "-> RCPT TO:<user@example.net>" in r.stdout
    (conn,) = lab.recorder.session("swaks-deliv")
    (msg,) = lab.recorder.messages(conn)
    assert msg["rcpt_tos"] == ["user@example.net"]
    assert b"hello from swaks" in msg["content"]


@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_delivery_with_either_netfilter_backend(lab, proxy, backend):
    helo = "backend-" + backend
    lab.redirect(backend)
    try:
        with netns(lab.ns_cli):
            s = smtplib.SMTP(L.REC4, 25, local_hostname=helo, source_address=(L.CLIENT4, 0), timeout=10)
        with s:
            refused = s.sendmail("b@example.org", ["user@example.net"], b"Subject: backend\r\n\r\nx\r\n")
            assert refused == {}
    finally:
        lab.redirect("nft")
    (conn,) = lab.recorder.session(helo)
    assert lab.recorder.peer(conn)[0] == L.GW_S4, "the message did not go through the proxy"
    assert len(lab.recorder.messages(conn)) == 1


def test_pipelined_batch_gets_replies_in_order(lab, proxy):
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        assert c.greeting().code == 220
        c.send(b"EHLO pipe-batch\r\n")
        assert "PIPELINING" in c.reply().keywords
        c.send(b"MAIL FROM:<pipe@example.org>\r\n"
               b"RCPT TO:<a@example.net>\r\n"
               b"RCPT TO:<someone@pipe-elsewhere.example>\r\n"
               b"RCPT TO:<b@example.net>\r\n"
               b"DATA\r\n")
        rs = c.replies(5)
        assert [r.code for r in rs] == [250, 250, 550, 250, 354], rs
        assert rs[2].lines == ["550 5.7.1 <someone@pipe-elsewhere.example>: Relay access denied"]
        c.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\n")
        assert c.reply().code == 250
        assert c.cmd("QUIT").code == 221
    (conn,) = lab.recorder.session("pipe-batch")
    (msg,) = lab.recorder.messages(conn)
    assert msg["rcpt_tos"] == ["a@example.net", "b@example.net"]
    assert b"pipe-elsewhere" not in lab.recorder.raw(conn)


@pytest.mark.parametrize("dst", [L.CLOSED4, L.CLOSED6], ids=["ipv4", "ipv6"])
def test_upstream_refusing_connections_gives_421(lab, proxy, dst):
    # The server namespace answers RST at once: smtpwalld must not wait for
    # timeout_connect (30 s) -- the client's 10 s read timeout would fail first.
    src = L.CLIENT6 if ":" in dst else L.CLIENT4
    with SMTPClient(lab, dst, src=src, timeout=10) as c:
        g = c.greeting()
        assert g.code == 421 and g.enh == "4.4.1", g
        c.wait_closed(10)
        assert c.eof, "session must be closed after the 421"
        port = c.local_port
    s = proxy.summary(port)
    assert s.get("result"), s["_line"]


def test_volume_through_smtp_sink(lab, proxy):
    before = len(lab.sink.message_files())
    r = lab.sh(lab.ns_cli, "smtp-source", "-s", "10", "-m", "200", "-d", "-l", "3000", "-M", "volume.example.org",
               "-f", "vol@example.org", "-t", "user@example.net", L.SINK4 + ":25", timeout=120, check=False)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr
    r = lab.sh(lab.ns_cli, "smtp-source", "-s", "20", "-m", "60", "-r", "3", "-M", "volume2.example.org",
               "-f", "vol@example.org", "-t", "user@example.net", L.SINK4 + ":25", timeout=120, check=False)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr
    wait_for(lambda: len(lab.sink.message_files()) >= before + 260, 20, "smtp-sink to dump 260 messages")
    assert len(lab.sink.message_files()) == before + 260


def test_sd_notify_ready_once_listening(proxy):
    wait_for(lambda: any("READY=1" in n for n in proxy.notifications()), 10,
             "READY=1 on $NOTIFY_SOCKET (SPEC: sd_notify READY=1 once listening)")



def test_half_close_after_final_dot_still_gets_server_replies(lab, proxy):
    """SPEC: a client may FIN right after its final dot and QUIT; the server's replies still come back."""
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        c.ehlo("half-close")
        assert c.cmd("MAIL FROM:<hc@example.org>").code == 250
        assert c.cmd("RCPT TO:<user@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: half-close\r\n\r\nbye\r\n.\r\nQUIT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        end, bye = c.replies(2)
        assert end.code == 250 and "recorded as" in end.text, end
        assert bye.code == 221, bye
    (conn,) = lab.recorder.session("half-close")
    assert len(lab.recorder.messages(conn)) == 1


def test_data_after_every_recipient_refused_is_not_started(lab, proxy):
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        c.ehlo("all-refused")
        assert c.cmd("MAIL FROM:<ar@example.org>").code == 250
        assert c.cmd("RCPT TO:<x@elsewhere.example>").code == 550
        r = c.cmd("DATA")
        assert r.code != 354 and 500 <= r.code < 600, r
        c.quit()
    (conn,) = lab.recorder.session("all-refused")
    assert lab.recorder.messages(conn) == [], "the server stored a message that had no accepted recipient"


def test_direct_connection_to_the_listener_is_refused_not_looped(lab, proxy):
    """A connection that netfilter did not redirect has no original destination but the
    listener itself: smtpwalld must refuse it, never connect to itself."""
    with SMTPClient(lab, L.GW_C4, port=L.LISTEN_PORT, src=L.CLIENT4) as c:
        try:
            g = c.greeting()
            assert g.code >= 400, g
        except EOFError:
            pass
        c.wait_closed(10)
        assert c.eof
        port = c.local_port
    wait_for(lambda: any(":%d" % port in l for l in proxy.lines()), 10, "a log line for the refused session")
    own = [l for l in proxy.lines() if "client=%s:" % L.GW_C4 in l or "client=%s:" % L.GW_S4 in l
           or "client=127.0.0.1:" in l]
    assert own == [], "smtpwalld connected to itself: %r" % own[:5]


def _large_content(size, seed=25):
    """About `size` bytes of mail: random printable lines of every length up to 998,
    empty lines, lines that start with dots (the client must stuff them), lone dots."""
    import random
    rnd = random.Random(seed)
    printable = bytes(range(0x20, 0x7f))
    pool = bytes(rnd.choice(printable) for _ in range(1 << 16)) * 2
    lines = [b"From: big@example.org", b"To: user@example.net", b"Subject: 30 MiB", b""]
    total = 0
    while total < size:
        kind = rnd.random()
        if kind < 0.02:
            line = b""
        elif kind < 0.04:
            line = b"." * rnd.randint(1, 3)
        else:
            n = 998 if kind > 0.97 else rnd.randint(1, 998 if kind > 0.6 else 120)
            off = rnd.randrange(1 << 16)
            line = pool[off:off + n]
            if kind < 0.1:
                line = b"." + line[1:]
        lines.append(line)
        total += len(line) + 2
    return CRLF.join(lines) + CRLF


def test_large_message_byte_identical(lab, proxy):
    """30 MiB with varied lines through smtpwalld: back-pressure both ways (a Python
    server slower than the client), and not one byte changed, lost or added."""
    import hashlib
    content = _large_content(30 * 1024 * 1024)
    wire = dot_stuff(content)
    assert wire != content and b"\r\n..\r\n" in wire   # the test does exercise stuffing
    with SMTPClient(lab, L.REC4, src=L.CLIENT4, timeout=30) as c:
        assert c.greeting().code == 220
        assert c.ehlo("large-30mib").code == 250
        assert c.cmd("MAIL FROM:<big@example.org> SIZE=%d" % len(wire)).code == 250
        assert c.cmd("RCPT TO:<user@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        # In pieces, each bounded: a transfer that stops moving fails in seconds, saying where.
        data, sent = memoryview(wire + b".\r\n"), 0
        c.sock.settimeout(10)
        while sent < len(data):
            try:
                c.sock.sendall(data[sent:sent + 256 * 1024])
            except socket.timeout:
                conns = lab.recorder.conns_with_helo("large-30mib")
                got = len(lab.recorder.raw(conns[0])) if conns else 0
                raise AssertionError("the transfer stalled: nothing moved for 10s after the client sent "
                                     "%d of %d bytes; the server had received %d bytes of the session"
                                     % (sent, len(data), got)) from None
            sent += min(256 * 1024, len(data) - sent)
        c.sock.settimeout(30)
        end = c.reply()
        assert end.code == 250 and "recorded as" in end.text, end
        assert c.cmd("QUIT").code == 221
        port = c.local_port
    (conn,) = lab.recorder.session("large-30mib", timeout=30)
    (msg,) = lab.recorder.messages(conn)
    sha = lambda b: hashlib.sha256(b).hexdigest()
    assert (len(msg["wire"]), sha(msg["wire"])) == (len(wire), sha(wire)), "DATA bytes changed on the way"
    assert (len(msg["content"]), sha(msg["content"])) == (len(content), sha(content)), \
        "the server's unstuffed content differs from what the client meant"
    s = proxy.summary(port)
    assert s.get("messages") == "1", s["_line"]

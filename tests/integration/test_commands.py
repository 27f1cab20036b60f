"""What reaches the server: EHLO keywords, STARTTLS, unknown verbs, non-SMTP, malformed lines.

Issue 2, tests 11 (STARTTLS stripped, CHUNKING/XCLIENT/XFORWARD hidden) and 12
(EXPN 502, HTTP 500 then 421, bare LF in a command 500 5.5.2). Each "not
forwarded" is checked on the bytes the server received, after a sync point (the
server's 221 to QUIT, or the end of the upstream connection).
"""
import pytest

import lab as L
from lab import SMTPClient

LAB_SERVERS = ("recorder", "sink")
RECORDER_TLS = True
RECORDER_EHLO = ["PIPELINING", "CHUNKING", "XCLIENT NAME ADDR PROTO HELO", "XFORWARD NAME ADDR PROTO HELO"]

HIDDEN = {"STARTTLS", "CHUNKING", "XCLIENT", "XFORWARD"}


def _ehlo_keywords(lab, dst, ns=None, src=None):
    with SMTPClient(lab, dst, ns=ns, src=src) as c:
        assert c.greeting().code == 220
        kw = c.ehlo("kw-probe").keywords
        c.quit()
        return kw


def test_ehlo_reply_hides_starttls_chunking_xclient_xforward(lab, proxy):
    direct = _ehlo_keywords(lab, L.REC4, ns=lab.ns_srv)   # from the server's own namespace: no proxy
    assert HIDDEN <= set(direct), "the recorder should advertise them: %r" % direct
    seen = _ehlo_keywords(lab, L.REC4, src=L.CLIENT4)
    assert not HIDDEN & set(seen), "advertised through smtpwalld: %r" % (HIDDEN & set(seen))
    for kw in ("PIPELINING", "8BITMIME", "SIZE", "SMTPUTF8"):
        assert kw in seen, "%s should pass through unchanged: %r" % (kw, seen)


def test_ehlo_reply_of_smtp_sink_hides_xclient_xforward(lab, proxy):
    direct = _ehlo_keywords(lab, L.SINK4, ns=lab.ns_srv)
    assert {"XCLIENT", "XFORWARD"} <= set(direct)
    seen = _ehlo_keywords(lab, L.SINK4, src=L.CLIENT4)
    assert "XCLIENT" not in seen and "XFORWARD" not in seen, seen
    assert "PIPELINING" in seen


def _session_end(lab, c, helo):
    c.quit()
    c.close()
    return lab.recorder.session(helo)


def test_starttls_answered_454_and_not_forwarded(lab, proxy):
    helo = "tls-454"
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        c.ehlo(helo)
        r = c.cmd("STARTTLS")
        assert r.code == 454 and r.enh == "4.7.0", r
        assert c.cmd("MAIL FROM:<after-tls@example.org>").code == 250, "the session stays in clear text"
        (conn,) = _session_end(lab, c, helo)
    assert b"STARTTLS" not in lab.recorder.raw(conn).upper()


def test_starttls_command_injection_never_reaches_server(lab, proxy):
    helo = "tls-inject"
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        c.ehlo(helo)
        c.send(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
        r = c.reply()
        assert r.code == 454 and r.enh == "4.7.0", r
        conns = _session_end(lab, c, helo)
    raw = b"".join(lab.recorder.raw(x) for x in conns)
    assert b"injected@example.org" not in raw, "a byte after the stripped STARTTLS reached the server"
    assert b"STARTTLS" not in raw.upper()


@pytest.mark.parametrize("line", ["EXPN staff", "ETRN example.net", "TURN", "SEND FROM:<a@example.org>",
                                  "X-LINK2STATE CHUNK=1", "XEXCH50 2 2"])
def test_unknown_verb_answered_502_not_forwarded(lab, proxy, line):
    verb = line.split()[0]
    helo = "verb-" + verb.lower()
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        c.ehlo(helo)
        r = c.cmd(line)
        assert r.code == 502 and r.enh == "5.5.1", r
        assert c.cmd("NOOP").code == 250
        (conn,) = _session_end(lab, c, helo)
    assert verb.encode() not in lab.recorder.raw(conn)


@pytest.mark.parametrize("line", ["XCLIENT ADDR=192.0.2.99 NAME=spoofed.example", "XFORWARD ADDR=192.0.2.99"])
def test_client_xclient_xforward_never_forwarded(lab, proxy, line):
    helo = "x-" + line[:5].lower()
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        c.ehlo(helo)
        r = c.cmd(line)
        assert 500 <= r.code < 600, r
        (conn,) = _session_end(lab, c, helo)
    assert b"192.0.2.99" not in lab.recorder.raw(conn)


def _until_closed(c, lines):
    """Send non-SMTP lines one by one; return every reply up to the close."""
    replies = []
    for line in lines:
        try:
            c.send(line)
        except (BrokenPipeError, ConnectionError):
            break
        try:
            replies.append(c.reply())
        except EOFError:
            break
        if replies[-1].code == 421:
            break
    try:
        while True:
            replies.append(c.reply())
    except (EOFError, ConnectionError):
        pass
    return replies


def test_http_request_500_then_421_and_close(lab, proxy):
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        replies = _until_closed(c, [b"GET / HTTP/1.1\r\n"] * 3)
        assert c.eof, "session not closed after three non-SMTP lines: %r" % replies
    assert replies and replies[-1].code == 421, replies
    first = replies[:-1]
    assert first and all(r.code == 500 and r.enh == "5.5.1" for r in first), replies
    assert len(first) <= 3, replies
    # Nothing from this session reached the server: no connection ever said GET.
    for conn in {e["conn"] for e in lab.recorder.events()}:
        assert b"GET / HTTP" not in lab.recorder.raw(conn)


def test_proxy_protocol_header_is_not_smtp(lab, proxy):
    helo = "proxy-hdr"
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        r = c.cmd("PROXY TCP4 192.0.2.77 198.51.100.25 4242 25")
        assert r.code == 500 and r.enh == "5.5.1", r
        assert c.ehlo(helo).code == 250
        (conn,) = _session_end(lab, c, helo)
    assert b"192.0.2.77" not in lab.recorder.raw(conn)


# Each is ONE command line (it ends at the only CRLF); what follows the bad byte
# is a RCPT that must not become a command of its own (command smuggling).
MALFORMED = {
    "bare-lf": b"RSET\nRCPT TO:<lf-bad@example.net>\r\n",
    "bare-cr": b"RSET\rRCPT TO:<cr-bad@example.net>\r\n",
    "nul": b"RSET\x00RCPT TO:<nul-bad@example.net>\r\n",
    "too-long": b"RCPT TO:<long-bad@example.net> X-PAD=" + b"x" * 2100 + b"\r\n",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_command_line_500_552_discarded_through_its_end(lab, proxy, name):
    """One 500 5.5.2 for the whole line (up to its CRLF), nothing of it forwarded."""
    helo = "malformed-" + name
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        c.ehlo(helo)
        assert c.cmd("MAIL FROM:<ok@example.org>").code == 250
        c.send(MALFORMED[name])
        r = c.reply()
        noop = c.cmd("NOOP")
        (conn,) = _session_end(lab, c, helo)
    got = lab.recorder.commands(conn)
    assert r.code == 500 and r.enh == "5.5.2", r
    assert b"bad" not in lab.recorder.raw(conn), "part of the malformed line reached the server: %r" % got
    assert got[-3:] == ["MAIL FROM:<ok@example.org>", "NOOP", "QUIT"], "server received %r" % got
    assert noop.code == 250, "expected one reply for the malformed line, then the server's NOOP 250; " \
        "got %r for NOOP; the server received: %r" % (noop, got)

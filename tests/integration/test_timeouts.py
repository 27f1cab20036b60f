"""Session limits, timeouts, and peers that vanish: what the other side sees.

Every wait here is bounded (a few times the configured timeout) and no elapsed
time is asserted: the tests check the reply codes an administrator would find in
a client's log, that connections end, and that no half-received message is ever
completed at the server.

  max_sessions = 2        a third concurrent client gets 421 4.7.0; a freed slot serves again
  timeout_idle = 2        a silent client gets 421 4.4.2, in command mode and in DATA
  timeout_server = 2      a server that never answers: 451 4.4.2, the message not taken
  timeout_connect = 2     a server whose SYNs vanish: 421 4.4.1
  server FIN / RST        421 4.4.1 and the session ends
  client RST in DATA      nothing stored; smtpwalld logs the abort
"""
import socket
import struct

import pytest

import lab as L
from lab import SMTPClient, parse_kv, wait_for

LAB_SERVERS = ("recorder",)

GREETING = b"220 script.example.net ESMTP scripted\r\n"
EHLO_REPLY = b"250-script.example.net\r\n250 PIPELINING\r\n"


def _closed_after(c, timeout=10.0):
    """The peer (smtpwalld) closes the client's connection; what arrived before the close."""
    rest = c.wait_closed(timeout)
    assert c.eof, "smtpwalld did not close the session within %.0fs; transcript %r" % (timeout, c.transcript)
    return rest


def _start_message(c, helo, rcpt="user@example.net"):
    assert c.greeting().code == 220
    assert c.ehlo(helo).code == 250
    assert c.cmd("MAIL FROM:<t@example.org>").code == 250
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    assert r.code == 250, r
    r = c.cmd("DATA")
    assert r.code == 354, r


def _session_log(proxy, port):
    """Every log line of the session whose client used `port` (summary included)."""
    s = proxy.summary(port)
    return s, proxy.session_lines(s["session"])


# --- max_sessions -----------------------------------------------------------------------

@pytest.fixture(scope="class")
def two_sessions_proxy(lab, smtpwalld):
    p = lab.start_proxy({"max_sessions": "2"})
    yield p
    lab.stop_proxy()


class TestMaxSessions:
    def test_third_session_refused_421_first_two_deliver_freed_slot_serves(self, lab, two_sessions_proxy):
        # Three different client addresses: the limit is global, not per client.
        a = SMTPClient(lab, L.REC4, src=L.CLIENT4)
        b = SMTPClient(lab, L.REC6, src=L.CLIENT6)
        try:
            assert a.greeting().code == 220 and b.greeting().code == 220
            with SMTPClient(lab, L.REC4, src=L.TRUSTED4) as c:
                g = c.greeting()
                assert g.code == 421 and g.enh == "4.7.0", g
                _closed_after(c)
            for cl, helo in ((a, "maxsess-a"), (b, "maxsess-b")):
                assert cl.ehlo(helo).code == 250
                assert cl.cmd("MAIL FROM:<ms@example.org>").code == 250
                assert cl.cmd("RCPT TO:<user@example.net>").code == 250
                assert cl.cmd("DATA").code == 354
                cl.send(b"Subject: %s\r\n\r\nstill served\r\n.\r\n" % helo.encode())
                end = cl.reply()
                assert end.code == 250 and "recorded as" in end.text, end
            assert a.cmd("QUIT").code == 221
            _closed_after(a)
            two_sessions_proxy.summary(a.local_port)   # the slot is free once the session is logged
            with SMTPClient(lab, L.REC4, src=L.TRUSTED4) as d:
                assert d.greeting().code == 220, "a slot freed by QUIT must serve a new client"
                assert d.cmd("QUIT").code == 221
            assert b.cmd("QUIT").code == 221
        finally:
            a.close()
            b.close()
        for helo in ("maxsess-a", "maxsess-b"):
            (conn,) = lab.recorder.session(helo)
            assert len(lab.recorder.messages(conn)) == 1, "session %s did not deliver" % helo
        refused = [l for l in two_sessions_proxy.lines() if "reason=max_sessions" in l]
        assert refused, "no log line says why the third client was refused"


# --- timeout_idle -----------------------------------------------------------------------

@pytest.fixture(scope="class")
def idle_proxy(lab, smtpwalld):
    # timeout_server well above timeout_idle: a client waiting for the server is not idle.
    p = lab.start_proxy({"timeout_idle": "2", "timeout_server": "10"})
    yield p
    lab.stop_proxy()


class TestIdle:
    def test_silent_client_after_ehlo_gets_421_442_and_is_closed(self, lab, idle_proxy):
        helo = "idle-after-ehlo"
        with SMTPClient(lab, L.REC4, src=L.CLIENT4, timeout=15) as c:
            assert c.greeting().code == 220
            assert c.ehlo(helo).code == 250
            r = c.reply()        # says nothing more; smtpwalld must speak first
            assert r.code == 421 and r.enh == "4.4.2", r
            _closed_after(c)
        (conn,) = lab.recorder.session(helo)
        assert lab.recorder.messages(conn) == [], "the idle session left a message at the server"

    def test_silent_client_in_data_gets_421_442_message_not_completed(self, lab, idle_proxy):
        helo = "idle-in-data"
        with SMTPClient(lab, L.REC4, src=L.CLIENT4, timeout=15) as c:
            _start_message(c, helo)
            c.send(b"Subject: half\r\n\r\nthe first half, and then silence\r\n")
            r = c.reply()
            assert r.code == 421 and r.enh == "4.4.2", r
            _closed_after(c)
        (conn,) = lab.recorder.session(helo)
        assert lab.recorder.messages(conn) == [], "the server stored the half message"
        raw = lab.recorder.raw(conn)
        assert b"the first half" in raw, "the test did not reach DATA at the server"
        assert b"\r\n.\r\n" not in raw.split(b"the first half", 1)[1], \
            "the half message was ended with '.' at the server"

    def test_server_slower_than_timeout_idle_is_waited_for(self, lab, idle_proxy):
        """RFC 5321 4.5.3.2: the idle timeout runs while smtpwalld awaits the client's next
        command; a client waiting for the server's reply to its final dot is not idle."""
        helo = "slow-server"
        lab.recorder.behave(data_end=3.5)
        try:
            with SMTPClient(lab, L.REC4, src=L.CLIENT4, timeout=15) as c:
                _start_message(c, helo)
                c.send(b"Subject: slow\r\n\r\nthe server takes its time\r\n.\r\n")
                end = c.reply()
                assert end.code == 250 and "recorded as" in end.text, \
                    "a server answering within timeout_server was cut off: %r" % end
                assert c.cmd("QUIT").code == 221
        finally:
            lab.recorder.behave()
        (conn,) = lab.recorder.session(helo)
        assert len(lab.recorder.messages(conn)) == 1


# --- timeout_server, timeout_connect, vanishing peers -------------------------------------

@pytest.fixture(scope="class")
def server_proxy(lab, smtpwalld):
    p = lab.start_proxy({"timeout_server": "2", "timeout_connect": "2"})
    yield p
    lab.stop_proxy()


class TestServerSide:
    def test_server_silent_after_greeting_gets_451_442(self, lab, server_proxy):
        helo = "stall-ehlo"
        lab.recorder.behave(ehlo="stall")
        try:
            with SMTPClient(lab, L.REC4, src=L.CLIENT4, timeout=15) as c:
                assert c.greeting().code == 220
                r = c.ehlo(helo)
                assert r.code == 451 and r.enh == "4.4.2", r
                c.quit()
                port = c.local_port
        finally:
            lab.recorder.behave()
        (conn,) = lab.recorder.session(helo)   # waits until smtpwalld closed the server's side
        s = server_proxy.summary(port)
        assert s["result"] != "ok", s["_line"]

    def test_server_silent_after_final_dot_gets_451_442_message_not_taken(self, lab, server_proxy):
        helo = "stall-data-end"
        lab.recorder.behave(data_end="stall")
        try:
            with SMTPClient(lab, L.REC4, src=L.CLIENT4, timeout=15) as c:
                _start_message(c, helo)
                c.send(b"Subject: stalled\r\n\r\nthe server never answers this dot\r\n.\r\n")
                r = c.reply()
                assert r.code == 451 and r.enh == "4.4.2", r
                c.quit()
        finally:
            lab.recorder.behave()
        (conn,) = lab.recorder.session(helo)
        assert b"never answers this dot\r\n.\r\n" in lab.recorder.raw(conn), \
            "the final dot never reached the server: the stall was not the server's"
        assert lab.recorder.messages(conn) == [], "the stalled server recorded the message as complete"

    def test_server_dropping_syns_gets_421_441(self, lab, server_proxy):
        with lab.blackhole(L.CLOSED4):
            with SMTPClient(lab, L.CLOSED4, src=L.CLIENT4, timeout=15) as c:
                g = c.greeting()
                assert g.code == 421 and g.enh == "4.4.1", g
                _closed_after(c)
                port = c.local_port
        s = server_proxy.summary(port)
        assert s["result"] != "ok", s["_line"]

    def test_server_closing_after_ehlo_gives_421_441_to_next_command(self, lab, server_proxy):
        def script(sc):
            sc.send(GREETING)
            sc.read_line()
            sc.send(EHLO_REPLY)
            sc.close()

        with lab.script_server(script) as srv:
            with SMTPClient(lab, L.SCRIPT4, src=L.CLIENT4, timeout=15) as c:
                assert c.greeting().code == 220
                assert c.ehlo("close-after-ehlo").code == 250
                srv.conn(0)
                try:
                    c.send(b"MAIL FROM:<t@example.org>\r\n")
                except (BrokenPipeError, ConnectionError):
                    pass     # smtpwalld may have said its 421 and closed already
                r = c.reply()
                assert r.code == 421 and r.enh == "4.4.1", r
                _closed_after(c)
            sc = srv.conn(0)
            assert sc.error is None, sc.error
        assert b"MAIL FROM" not in sc.received

    def test_server_reset_in_data_gives_421_441_and_ends_session(self, lab, server_proxy):
        def script(sc):
            sc.send(GREETING)
            sc.read_line()
            sc.send(EHLO_REPLY)
            for reply in (b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n"):
                sc.read_line()
                sc.send(reply)
            assert sc.read_line() == b"DATA"
            sc.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            sc.read_until(b"first part\r\n")
            sc.reset()

        with lab.script_server(script) as srv:
            with SMTPClient(lab, L.SCRIPT4, src=L.CLIENT4, timeout=15) as c:
                _start_message(c, "reset-in-data")
                c.send(b"Subject: reset\r\n\r\nfirst part\r\n")
                srv.conn(0)
                r = c.reply()
                assert r.code == 421 and r.enh == "4.4.1", r
                _closed_after(c)
                port = c.local_port
            assert srv.conn(0).error is None, srv.conn(0).error
        s = server_proxy.summary(port)
        assert s.get("messages") == "0", s["_line"]

    def test_client_reset_in_data_message_never_stored(self, lab, server_proxy):
        helo = "client-reset"
        with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
            _start_message(c, helo)
            c.send(b"Subject: cut\r\n\r\n" + b"half of a message\r\n" * 200)
            # The server holds half a message when the client goes away.
            (conn,) = wait_for(lambda: lab.recorder.conns_with_helo(helo), 10, "the server to see the session")
            wait_for(lambda: lab.recorder.raw(conn).count(b"half of a message") == 200, 10,
                     "the first half of the message to reach the server")
            port = c.local_port
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()   # RST, not FIN
        assert lab.recorder.session(helo) == [conn]
        assert lab.recorder.messages(conn) == [], "the server stored the message of a client that reset"
        assert b"\r\n.\r\n" not in lab.recorder.raw(conn).split(b"Subject: cut", 1)[1], \
            "the aborted message was ended with '.' at the server"
        s, lines = _session_log(server_proxy, port)
        aborts = [parse_kv(l) for l in lines if " abort data " in l]
        assert any(a.get("reason") == "client_eof" for a in aborts), \
            "no 'abort data ... reason=client_eof' line for session %s: %r" % (s["session"], lines)

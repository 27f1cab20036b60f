"""Configured limits and client blocking (issue 2, tests 9 and 5b).

Each class runs smtpwalld with its own configuration, once for all its tests.
"""
import pytest

import lab as L
from lab import SMTPClient

LAB_SERVERS = ("recorder",)


# 65536 is the smallest max_message_size smtpwalld accepts: RFC 5321
# 4.5.3.1.7 requires a server to take messages of at least 64K octets.
@pytest.fixture(scope="class", params=[65536], ids=["limit65536"])
def small_proxy(request, lab, smtpwalld):
    p = lab.start_proxy({"max_message_size": str(request.param)})
    p.limit = request.param
    yield p
    lab.stop_proxy()


@pytest.fixture(scope="class")
def block_proxy(lab, smtpwalld):
    p = lab.start_proxy(rules="block client 203.0.113.0/24\n")
    yield p
    lab.stop_proxy()


class TestMaxMessageSize:
    def test_oversize_message_refused_552_and_never_completed(self, lab, small_proxy):
        helo = "oversize-%d" % small_proxy.limit
        body = b"".join(b"%05d %s\r\n" % (i, b"o" * 70) for i in range(small_proxy.limit // 15))  # 5x the limit
        with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
            c.greeting()
            c.ehlo(helo)
            assert c.cmd("MAIL FROM:<big@example.org>").code == 250
            assert c.cmd("RCPT TO:<user@example.net>").code == 250
            assert c.cmd("DATA").code == 354
            try:
                c.send(b"Subject: too big\r\n\r\n" + body + b".\r\n")
            except (BrokenPipeError, ConnectionError):
                pass    # smtpwalld may answer and close before taking all of it
            r = c.reply()
            c.quit()
        assert r.code == 552 and r.enh == "5.3.4", r
        conns = lab.recorder.session(helo)
        assert all(lab.recorder.messages(x) == [] for x in conns), "the server stored the oversize message"
        for x in conns:
            assert b"\r\n.\r\n" not in lab.recorder.raw(x), "the refused message was ended with '.' at the server"

    def test_message_under_the_limit_passes(self, lab, small_proxy):
        helo = "undersize-%d" % small_proxy.limit
        with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
            c.greeting()
            c.ehlo(helo)
            assert c.cmd("MAIL FROM:<small@example.org> SIZE=5000").code == 250
            assert c.cmd("RCPT TO:<user@example.net>").code == 250
            assert c.cmd("DATA").code == 354
            c.send(b"Subject: small\r\n\r\n" + b"s" * 900 + b"\r\n.\r\n")
            assert c.reply().code == 250
            c.quit()
        (conn,) = lab.recorder.session(helo)
        assert len(lab.recorder.messages(conn)) == 1

    def test_size_parameter_over_limit_refused_at_mail(self, lab, small_proxy):
        helo = "size-param-%d" % small_proxy.limit
        with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
            c.greeting()
            c.ehlo(helo)
            r = c.cmd("MAIL FROM:<sized@example.org> SIZE=%d" % (6 * small_proxy.limit))
            assert r.code == 552 and r.enh == "5.3.4", r
            assert c.cmd("QUIT").code == 221
        (conn,) = lab.recorder.session(helo)
        assert b"sized@example.org" not in lab.recorder.raw(conn), "the refused MAIL reached the server"


class TestBlockClient:
    def test_blocked_client_greeted_554_and_closed(self, lab, block_proxy):
        before = sum(1 for e in lab.recorder.events() if e["ev"] == "connect")
        with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
            g = c.greeting()
            assert g.code == 554 and g.enh == "5.7.1", g
            c.wait_closed(10)
            assert c.eof, "the blocked client's session must be closed after the 554"
        # The control below sends a session through; if the blocked one had
        # reached the server it would show up before it.
        with SMTPClient(lab, L.REC6, src=L.CLIENT6) as c:
            assert c.greeting().code == 220, "a client outside the blocked network is served"
            c.ehlo("not-blocked")
            assert c.cmd("QUIT").code == 221
        lab.recorder.session("not-blocked")
        after = sum(1 for e in lab.recorder.events() if e["ev"] == "connect")
        assert after == before + 1, "the blocked client got a session at the server (SPEC: never gets a session)"


@pytest.fixture(scope="class")
def counting_proxy(lab, smtpwalld):
    p = lab.start_proxy({"max_recipients": "3", "max_sessions_per_client": "2"})
    yield p
    lab.stop_proxy()


class TestCounts:
    def test_recipients_beyond_max_recipients_get_452(self, lab, counting_proxy):
        helo = "max-rcpt"
        with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
            c.greeting()
            c.ehlo(helo)
            c.send(b"MAIL FROM:<many@example.org>\r\n" +
                   b"".join(b"RCPT TO:<r%d@example.net>\r\n" % i for i in range(1, 5)))
            rs = c.replies(5)
            assert [r.code for r in rs] == [250, 250, 250, 250, 452], rs
            assert rs[4].enh == "4.5.3", rs[4]
            assert c.cmd("DATA").code == 354
            c.send(b"Subject: many\r\n\r\nx\r\n.\r\n")
            assert c.reply().code == 250
            c.quit()
        (conn,) = lab.recorder.session(helo)
        (msg,) = lab.recorder.messages(conn)
        assert msg["rcpt_tos"] == ["r1@example.net", "r2@example.net", "r3@example.net"]
        assert b"r4@example.net" not in lab.recorder.raw(conn)

    def test_sessions_beyond_max_sessions_per_client_get_421(self, lab, counting_proxy):
        a = SMTPClient(lab, L.REC4, src=L.CLIENT4)
        b = SMTPClient(lab, L.REC4, src=L.CLIENT4)
        try:
            assert a.greeting().code == 220 and b.greeting().code == 220
            with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
                g = c.greeting()
                assert g.code == 421 and g.enh == "4.7.0", g
                c.wait_closed(10)
                assert c.eof
            with SMTPClient(lab, L.REC4, src=L.TRUSTED4) as other:
                assert other.greeting().code == 220, "the limit is per client address"
                other.quit()
            assert a.cmd("QUIT").code == 221
            a.wait_closed(10)
            counting_proxy.summary(a.local_port)
            with SMTPClient(lab, L.REC4, src=L.CLIENT4) as d:
                assert d.greeting().code == 220, "a closed session frees its slot"
                d.quit()
        finally:
            a.close()
            b.close()

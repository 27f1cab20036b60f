"""The relay decision and sender blocking, as an administrator checks them.

Issue 2, tests 2 (relay refused, the other recipient delivered), 3 (relay tricks),
4 (trusted client), 5a (blocked sender), 10 (IPv6 relay refusal).
"""
import re
import smtplib

import pytest

import lab as L
from lab import SMTPClient, netns, parse_kv

LAB_SERVERS = ("recorder",)


def refuse_lines(proxy, session):
    return [l for l in proxy.session_lines(session) if re.search(r"\brefuse\b", l)]


@pytest.mark.parametrize("src,dst", [(L.CLIENT4, L.REC4), (L.CLIENT6, L.REC6)], ids=["ipv4", "ipv6"])
def test_relay_refused_other_recipient_delivered(lab, proxy, src, dst):
    helo = "relay-mixed-" + ("6" if ":" in src else "4")
    with netns(lab.ns_cli):
        s = smtplib.SMTP(dst, 25, local_hostname=helo, source_address=(src, 0), timeout=10)
    with s:
        port = s.sock.getsockname()[1]
        assert s.ehlo()[0] == 250
        assert s.mail("mixed@example.org")[0] == 250
        assert s.rcpt("someone@elsewhere.example") == (
            550, b"5.7.1 <someone@elsewhere.example>: Relay access denied")
        assert s.rcpt("user@example.net")[0] == 250
        code, _ = s.data(b"Subject: mixed\r\n\r\nonly for the local recipient\r\n")
        assert code == 250
    (conn,) = lab.recorder.session(helo)
    (msg,) = lab.recorder.messages(conn)
    assert msg["rcpt_tos"] == ["user@example.net"]
    assert b"elsewhere.example" not in lab.recorder.raw(conn), "the refused RCPT reached the server"

    summ = proxy.summary(port)
    assert summ.get("rcpt_ok") == "1" and summ.get("rcpt_refused") == "1", summ["_line"]
    refused = [parse_kv(l) for l in refuse_lines(proxy, summ["session"])]
    assert any(kv.get("rcpt") == "<someone@elsewhere.example>" and kv.get("reason") == "relay"
               for kv in refused), "no 'refuse rcpt=<someone@elsewhere.example> reason=relay' line: %r" % refused


REFUSED = [
    "user%elsewhere.example@example.net",
    "elsewhere.example!user@example.net",
    "user@elsewhere.example@example.net",
    "@example.net:user@elsewhere.example",
    "@example.net,@example.net:user@elsewhere.example",
    "postmaster@elsewhere.example",
    "user@sub.example.net",          # local_domains = example.net matches exactly
]


@pytest.mark.parametrize("rcpt", REFUSED)
def test_untrusted_relay_attempt_refused(lab, proxy, rcpt):
    helo = "trick-%d" % REFUSED.index(rcpt)
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        c.ehlo(helo)
        assert c.cmd("MAIL FROM:<trick@example.org>").code == 250
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.code == 550 and r.enh == "5.7.1", r
        assert c.cmd("QUIT").code == 221
    (conn,) = lab.recorder.session(helo)
    raw = lab.recorder.raw(conn)
    assert b"RCPT" not in raw and rcpt.encode() not in raw, "reached the server: %r" % raw


ACCEPTED = ["postmaster", "postmaster@example.net", "PostMaster@Example.NET", "user@EXAMPLE.net.",
            '"user@elsewhere.example"@example.net']


@pytest.mark.parametrize("rcpt", ACCEPTED)
def test_untrusted_client_may_mail_local_and_postmaster(lab, proxy, rcpt):
    helo = "accept-%d" % ACCEPTED.index(rcpt)
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        c.ehlo(helo)
        assert c.cmd("MAIL FROM:<ok@example.org>").code == 250
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert not (r.code == 550 and r.enh == "5.7.1"), "refused by policy: %r" % r
        assert c.cmd("QUIT").code == 221
    (conn,) = lab.recorder.session(helo)
    assert "RCPT TO:<%s>" % rcpt in lab.recorder.commands(conn), "the RCPT did not reach the server unchanged"


@pytest.mark.parametrize("rcpt", ["someone@elsewhere.example", "user%elsewhere.example@example.net"])
def test_trusted_client_relays(lab, proxy, rcpt):
    helo = "trusted-%d" % len(rcpt)
    with netns(lab.ns_cli):
        s = smtplib.SMTP(L.REC4, 25, local_hostname=helo, source_address=(L.TRUSTED4, 0), timeout=10)
    with s:
        refused = s.sendmail("inside@example.net", [rcpt], b"Subject: relay\r\n\r\nout we go\r\n")
        assert refused == {}
    (conn,) = lab.recorder.session(helo)
    (msg,) = lab.recorder.messages(conn)
    assert msg["rcpt_tos"] == [rcpt]


@pytest.mark.parametrize("sender", ["bad@spam.example", "Bad@SPAM.Example"])
def test_blocked_sender_refused_and_session_goes_on(lab, proxy, sender):
    helo = "blocked-" + sender[0]
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        c.greeting()
        c.ehlo(helo)
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert r.lines == ["550 5.7.1 <%s>: Sender address rejected: blocked by policy" % sender], r
        assert c.cmd("MAIL FROM:<fine@example.org>").code == 250, "the session must go on after a refusal"
        assert c.cmd("QUIT").code == 221
        port = c.local_port
    (conn,) = lab.recorder.session(helo)
    assert b"spam.example" not in lab.recorder.raw(conn).lower(), "the blocked MAIL reached the server"
    summ = proxy.summary(port)
    refused = [parse_kv(l) for l in refuse_lines(proxy, summ["session"])]
    assert any(kv.get("reason") == "sender" and kv.get("rule") == "block sender *@spam.example"
               for kv in refused), 'no refuse ... reason=sender rule="block sender *@spam.example": %r' % refused

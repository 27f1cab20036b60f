"""STARTTLS passed through for trusted clients, and AUTH that the server accepted.

The server is the recorder with a self-signed certificate (STARTTLS) and one
account (AUTH PLAIN LOGIN, offered without TLS too), driven by swaks as an
administrator would:

  starttls = allow   a trusted client gets TLS end to end with the server; an
                     untrusted one sees no STARTTLS, its STARTTLS gets 454, plain
                     delivery still works
  auth_relay = yes   after the server's 235 an untrusted client may relay; with a
                     wrong password it may not (550 5.7.1)
  auth_relay = no    even after a 235, no relay
  and the credentials never reach smtpwalld's log.
"""
import base64

import pytest

import lab as L
from lab import SMTPClient

LAB_SERVERS = ()      # the module's own recorder below: TLS and AUTH

# Strings that appear nowhere else in a session, so that finding them in the log means a leak.
USER, PASSWORD = "relayuser-k7q", "Zx9-s3cret-Pw"
RELAY_RCPT = "someone@elsewhere.example"


@pytest.fixture(scope="module")
def server(lab):
    lab.recorder = lab.start_recorder(extra_ehlo=["PIPELINING"], tls=True, auth=(USER, PASSWORD))
    return lab.recorder


def swaks(lab, src, helo, *args, to="user@example.net"):
    return lab.sh(lab.ns_cli, "swaks", "--server", L.REC4, "--port", "25", "-li", src, "--helo", helo,
                  "--from", "swaks@example.org", "--to", to, "--header", "Subject: " + helo,
                  "--body", "body of " + helo, "--timeout", "10", *args, check=False)


def secrets():
    """Every form in which the credentials could leak into a log."""
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    return [USER, PASSWORD, b64(USER), b64(PASSWORD), b64("\0%s\0%s" % (USER, PASSWORD)),
            b64("%s\0%s\0%s" % (USER, USER, PASSWORD))]


# --- STARTTLS --------------------------------------------------------------------------------

@pytest.fixture(scope="class")
def tls_proxy(lab, server, smtpwalld):
    p = lab.start_proxy({"starttls": "allow"})
    yield p
    lab.stop_proxy()


class TestStarttlsAllow:
    def test_trusted_client_gets_tls_end_to_end(self, lab, server, tls_proxy):
        helo = "tls-trusted"
        r = swaks(lab, L.TRUSTED4, helo, "--tls")
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "=== TLS started" in out, out
        assert "<-  220" in out and "-> STARTTLS" in out, out
        (conn,) = server.session(helo)
        (msg,) = server.messages(conn)
        assert msg["tls"], "the server did not get the message over TLS"
        assert msg["rcpt_tos"] == ["user@example.net"]
        assert b"body of " + helo.encode() in msg["content"]

    def test_untrusted_client_sees_no_starttls_and_cannot_start_it(self, lab, server, tls_proxy):
        helo = "tls-untrusted"
        r = swaks(lab, L.CLIENT4, helo, "--tls")
        out = r.stdout + r.stderr
        assert r.returncode != 0, "swaks --tls succeeded from an untrusted client:\n" + out
        assert "=== TLS started" not in out, out
        assert "did not advertise STARTTLS" in out or "STARTTLS not advertised" in out or "<** 454" in out, out
        for conn in server.session(helo, expect=False):
            assert "STARTTLS" not in [c.upper() for c in server.commands(conn)], \
                "STARTTLS from an untrusted client reached the server"
            assert server.messages(conn) == []
        # The raw view: no STARTTLS keyword, and the verb answered 454 by smtpwalld itself.
        with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
            assert c.greeting().code == 220
            e = c.ehlo("tls-untrusted-raw")
            assert "STARTTLS" not in e.keywords, e
            r454 = c.cmd("STARTTLS")
            assert r454.code == 454 and r454.enh == "4.7.0", r454
            c.quit()

    def test_untrusted_client_still_delivers_without_tls(self, lab, server, tls_proxy):
        helo = "plain-untrusted"
        r = swaks(lab, L.CLIENT4, helo)
        assert r.returncode == 0, r.stdout + r.stderr
        (conn,) = server.session(helo)
        (msg,) = server.messages(conn)
        assert not msg["tls"]
        assert msg["rcpt_tos"] == ["user@example.net"]


# --- AUTH ------------------------------------------------------------------------------------

@pytest.fixture(scope="class")
def auth_proxy(lab, server, smtpwalld):
    p = lab.start_proxy({"auth_relay": "yes"})
    yield p
    assert not [s for s in secrets() if s in p.log_text()], "credentials in smtpwalld's log"
    lab.stop_proxy()


@pytest.fixture(scope="class")
def no_auth_relay_proxy(lab, server, smtpwalld):
    p = lab.start_proxy({"auth_relay": "no"})
    yield p
    assert not [s for s in secrets() if s in p.log_text()], "credentials in smtpwalld's log"
    lab.stop_proxy()


def _relay_rcpts(server, helo):
    """The RCPT commands the server got from the sessions that said `helo`."""
    return [c for conn in server.session(helo, expect=False) for c in server.commands(conn)
            if c.upper().startswith("RCPT")]


class TestAuthRelay:
    def test_authenticated_client_relays(self, lab, server, auth_proxy):
        helo = "auth-login-ok"
        r = swaks(lab, L.CLIENT4, helo, "--auth", "LOGIN", "--auth-user", USER, "--auth-password", PASSWORD,
                  to=RELAY_RCPT)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "<-  235" in out, out
        assert "<-  250" in out.split("-> RCPT TO:<%s>" % RELAY_RCPT, 1)[1].splitlines()[1], out
        (conn,) = server.session(helo)
        (msg,) = server.messages(conn)
        assert msg["authenticated"] and msg["rcpt_tos"] == [RELAY_RCPT], msg
        assert not [s for s in secrets() if s in auth_proxy.log_text()], "credentials in smtpwalld's log"

    def test_authenticated_client_relays_auth_plain(self, lab, server, auth_proxy):
        helo = "auth-plain-ok"
        r = swaks(lab, L.CLIENT4, helo, "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
                  to=RELAY_RCPT)
        assert r.returncode == 0, r.stdout + r.stderr
        (conn,) = server.session(helo)
        (msg,) = server.messages(conn)
        assert msg["authenticated"] and msg["rcpt_tos"] == [RELAY_RCPT], msg

    def test_wrong_password_cannot_relay(self, lab, server, auth_proxy):
        helo = "auth-login-bad"
        r = swaks(lab, L.CLIENT4, helo, "--auth-optional", "LOGIN", "--auth-user", USER,
                  "--auth-password", "wrong-" + PASSWORD, to=RELAY_RCPT)
        out = r.stdout + r.stderr
        assert "<** 535" in out, out
        assert "<** 550 5.7.1 <%s>: Relay access denied" % RELAY_RCPT in out, out
        assert r.returncode != 0, out
        assert _relay_rcpts(server, helo) == [], "the refused relay RCPT reached the server"

    def test_continuation_lines_pass_unread(self, lab, server, auth_proxy):
        """AUTH LOGIN by hand: after each 334 the next line is the client's answer, forwarded as it is."""
        helo = "auth-raw"
        with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
            assert c.greeting().code == 220
            assert "AUTH" in c.ehlo(helo).keywords
            assert c.cmd("AUTH LOGIN").code == 334
            assert c.cmd(base64.b64encode(USER.encode())).code == 334
            r = c.cmd(base64.b64encode(PASSWORD.encode()))
            assert r.code == 235, r
            assert c.cmd("MAIL FROM:<raw@example.org>").code == 250
            r = c.cmd("RCPT TO:<%s>" % RELAY_RCPT)
            assert r.code == 250, r
            c.quit()
        (conn,) = server.session(helo)
        assert "RCPT TO:<%s>" % RELAY_RCPT in server.commands(conn)


    def test_continuation_line_that_looks_like_a_command_is_not_one(self, lab, server, auth_proxy):
        """After 334 a line is the answer to the challenge, whatever it looks like: smtpwalld
        forwards it unread (the server, not smtpwalld, says it is not base64)."""
        helo = "auth-cont-verb"
        with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
            assert c.greeting().code == 220
            c.ehlo(helo)
            assert c.cmd("AUTH LOGIN").code == 334
            r = c.cmd("EXPN root")
            assert r.code == 501 and "base64" in r.text, \
                "the continuation line was not answered by the server: %r" % r
            assert c.cmd("NOOP").code == 250, "back in command mode after the failed AUTH"
            c.quit()
        (conn,) = server.session(helo)
        assert b"AUTH LOGIN\r\nEXPN root\r\nNOOP\r\n" in server.raw(conn)


class TestNoAuthRelay:
    def test_good_login_cannot_relay_when_auth_relay_no(self, lab, server, no_auth_relay_proxy):
        helo = "auth-relay-no"
        r = swaks(lab, L.CLIENT4, helo, "--auth", "LOGIN", "--auth-user", USER, "--auth-password", PASSWORD,
                  to=RELAY_RCPT)
        out = r.stdout + r.stderr
        assert "<-  235" in out, out
        assert "<** 550 5.7.1 <%s>: Relay access denied" % RELAY_RCPT in out, out
        assert _relay_rcpts(server, helo) == [], "the refused relay RCPT reached the server"

    def test_authenticated_client_still_mails_local_domain(self, lab, server, no_auth_relay_proxy):
        helo = "auth-relay-no-local"
        r = swaks(lab, L.CLIENT4, helo, "--auth", "LOGIN", "--auth-user", USER, "--auth-password", PASSWORD)
        assert r.returncode == 0, r.stdout + r.stderr
        (conn,) = server.session(helo)
        assert len(server.messages(conn)) == 1

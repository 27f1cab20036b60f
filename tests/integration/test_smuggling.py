"""SMTP smuggling (issue 2, test 7): a message must end only at CRLF.CRLF.

The lenient server is a real Postfix 3.7.11 (smtpd_forbid_bare_newline = no: a
bare LF ends a line there). Postfix's smtp-sink was tried first and is NOT
lenient (it stored every payload below as a single message), so it cannot prove
anything here. test_direct_path_smuggles first shows that, without smtpwalld,
the payloads do create a second, forged message at this Postfix; the other tests
send the same bytes through smtpwalld:

  bare_lf = reject    -> 554 5.6.0, and the server stored nothing at all
  bare_lf = normalize -> the server's 250, exactly one message, the forged
                         commands are body lines; the bytes the server got have
                         CRLF line endings only
  a NUL               -> 554 5.6.0 in both modes (SPEC: some servers strip NULs)
"""
import pytest

import lab as L
from lab import SMTPClient

LAB_SERVERS = ("postfix", "recorder")

VARIANTS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CRLF.CR": b"\r\n.\r",
    "CR.LF": b"\r.\n",
    "NUL": b"\r\n.\x00\r\n",
}
# What Postfix 3.7 with smtpd_forbid_bare_newline=no is known to fall for.
MUST_SMUGGLE_DIRECTLY = {"LF.LF", "LF.CRLF", "CRLF.LF"}

SENDER = "sender@example.org"
FORGED_MAIL = b"MAIL FROM:<forged@spam.example>"
FORGED = (FORGED_MAIL + b"\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
          b"Subject: forged\r\n\r\nforged body\r\n")


def payload(name):
    return b"Subject: smuggle " + name.encode() + b"\r\n\r\nbody" + VARIANTS[name] + FORGED + b".\r\n"


def _send(lab, dst, port, helo, name):
    """One session: the payload, then QUIT. Returns (reply to the end of DATA, every later reply)."""
    with SMTPClient(lab, dst, port=port, src=L.CLIENT4) as c:
        assert c.greeting().code == 220
        assert c.ehlo(helo).code == 250
        assert c.cmd("MAIL FROM:<%s>" % SENDER).code == 250
        assert c.cmd("RCPT TO:<user@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(payload(name))
        end = c.reply()
        later = []
        try:
            c.send(b"QUIT\r\n")
            while True:
                later.append(c.reply())
        except (EOFError, ConnectionError):
            pass
        return end, later


def _postfix_run(lab, dst, port, helo, name):
    pf = lab.postfix
    before, disc = pf.queue_files(), pf.disconnects()
    end, later = _send(lab, dst, port, helo, name)
    pf.wait_settled(disc)
    return end, later, [pf.read(f) for f in sorted(pf.queue_files() - before)]


@pytest.fixture(scope="module")
def direct():
    return {}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_direct_path_smuggles(lab, direct, name):
    """Without smtpwalld (port 2525 is not redirected): does this payload smuggle at Postfix?"""
    end, later, msgs = _postfix_run(lab, L.PF4, L.PF_DIRECT_PORT, "direct-" + name, name)
    smuggled = any(m["sender"] == "forged@spam.example" for m in msgs)
    direct[name] = smuggled
    if name in MUST_SMUGGLE_DIRECTLY:
        assert smuggled and len(msgs) == 2, \
            "the lab's lenient server did not fall for %s: the proxy tests prove nothing (%r)" % (name, msgs)


def _check_reject(lab, direct, name, dst):
    helo = "rej-" + name.replace(".", "")
    if dst == L.PF4:
        end, later, msgs = _postfix_run(lab, dst, 25, helo, name)
        assert end.code == 554 and end.enh == "5.6.0", \
            "%s (smuggles directly: %s): got %r then %r" % (name, direct.get(name), end, later)
        assert msgs == [], "%s: Postfix stored %r" % (name, msgs)
    else:
        end, later = _send(lab, dst, 25, helo, name)
        assert end.code == 554 and end.enh == "5.6.0", "%s: got %r then %r" % (name, end, later)
        conns = lab.recorder.session(helo)
        assert all(lab.recorder.messages(c) == [] for c in conns), "the server completed the refused message"
    assert [r.code for r in later] in ([], [221]), "%s: extra replies after the refusal: %r" % (name, later)


def _check_normalize(lab, direct, name, dst):
    helo = "norm-" + name.replace(".", "")
    if name == "NUL":
        return _check_reject(lab, direct, name, dst)
    if dst == L.PF4:
        end, later, msgs = _postfix_run(lab, dst, 25, helo, name)
        assert end.code == 250, "%s: got %r then %r" % (name, end, later)
        assert [r.code for r in later] == [221], \
            "%s (smuggles directly: %s): the server answered a second transaction: %r" % (name, direct.get(name), later)
        assert len(msgs) == 1, "%s (smuggles directly: %s): Postfix stored %d messages: %r" % (
            name, direct.get(name), len(msgs), [(m["sender"], m["recipients"]) for m in msgs])
        (m,) = msgs
        assert m["sender"] == SENDER and m["recipients"] == ["user@example.net"]
        lines = [l.rstrip(b"\r") for l in m["lines"]]
        assert FORGED_MAIL in lines and b"forged body" in lines, \
            "%s: the forged commands should be body lines: %r" % (name, lines)
    else:
        end, later = _send(lab, dst, 25, helo, name)
        assert end.code == 250 and [r.code for r in later] == [221], (end, later)
        (conn,) = lab.recorder.session(helo)
        (msg,) = lab.recorder.messages(conn)
        wire = msg["wire"]
        assert b"\x00" not in wire
        stripped = wire.replace(b"\r\n", b"")
        assert b"\r" not in stripped and b"\n" not in stripped, \
            "%s: the server received a bare CR or LF: %r" % (name, wire)
        assert FORGED_MAIL in msg["content"].split(b"\r\n")


SERVERS = [pytest.param(L.PF4, id="postfix"), pytest.param(L.REC4, id="recorder")]


@pytest.fixture(scope="class")
def reject_proxy(lab, smtpwalld):
    p = lab.start_proxy({"bare_lf": "reject"})
    yield p
    lab.stop_proxy()


@pytest.fixture(scope="class")
def normalize_proxy(lab, smtpwalld):
    p = lab.start_proxy({"bare_lf": "normalize"})
    yield p
    lab.stop_proxy()


class TestReject:
    @pytest.mark.parametrize("dst", SERVERS)
    @pytest.mark.parametrize("name", list(VARIANTS))
    def test_refused_554_and_nothing_stored(self, lab, direct, reject_proxy, name, dst):
        _check_reject(lab, direct, name, dst)


class TestNormalize:
    @pytest.mark.parametrize("dst", SERVERS)
    @pytest.mark.parametrize("name", list(VARIANTS))
    def test_one_message_forged_text_in_body(self, lab, direct, normalize_proxy, name, dst):
        _check_normalize(lab, direct, name, dst)

"""No allocation per command on the hot path, checked with a heap profiler.

smtpwalld runs under valgrind memcheck (SMTPWALL_VALGRIND=1, as in
`make check-valgrind`) in the namespace lab, its client in the client
namespace, Postfix's smtp-sink behind it. memcheck counts every malloc,
calloc and realloc; its exit summary ("total heap usage: N allocs") is read
from a report file of its own, per run. Each workload runs twice, small and
large, each time on a freshly started daemon, and only the difference counts:
start-up, configuration and the first session cost the same in both runs.

  messages  one session carrying 10, then 1,000 messages (MAIL, RCPT, DATA,
            a small body, NOOP): fewer than 100 more allocations for 990 more
            messages (under 0.1 a message; measured: 0).
  commands  one session, 10 then 1,000 rounds of NOOP, RSET and a MAIL that
            policy refuses (smtpwall's own 550), pipelined so that the local
            reply waits behind the server's: likewise.
  large     one session carrying 2, then 12 messages of 1 MiB: the session's
            buffers, released after each burst and grown again through the
            next message, come from the event loop's block cache (buf.c):
            fewer than 10 more allocations for 10 more messages.
  sessions  10 then 210 sessions of one message each: at most 6 allocations
            a session (measured: 5: the session, its client-map entry, the HELO
            name, the sender and the message's sender).

Skipped unless SMTPWALL_VALGRIND=1 (and root, like every lab test).
"""
import re

import pytest

import lab as L
from lab import SMTPClient

LAB_SERVERS = ("sink",)

pytestmark = pytest.mark.skipif(not L.VALGRIND, reason="heap profile: needs SMTPWALL_VALGRIND=1 "
                                "(smtpwalld under valgrind memcheck; make check-valgrind)")

TOTAL_RE = re.compile(r"total heap usage: ([\d,]+) allocs")
ERRORS_RE = re.compile(r"ERROR SUMMARY: (\d+) errors")
SMALL, LARGE = 10, 1000
BODY = "Subject: heap\r\n\r\nA small body.\r\n.\r\n"
LARGE_BODY = "Subject: large\r\n\r\n" + ("x" * 1022 + "\r\n") * 1024 + ".\r\n"   # 1 MiB


@pytest.fixture(scope="module")
def memcheck(lab, smtpwalld):
    """lab.py's memcheck command, not quiet (-q hides the heap summary), its report
    in LAB/memcheck.PID.log rather than in the daemon's log."""
    mp = pytest.MonkeyPatch()
    cmd = [a for a in L.VALGRIND_CMD if a != "-q"] + ["--log-file=%s/memcheck.%%p.log" % lab.dir]
    mp.setattr(L, "VALGRIND_CMD", cmd)
    yield
    mp.undo()


def heap_allocs(lab, workload, n):
    """Run workload(lab, n) through a fresh smtpwalld; its total allocations at exit."""
    p = lab.start_proxy(config={"workers": 1})
    port = workload(lab, n)
    p.summary(port, timeout=60)           # the last session is over, its summary logged
    lab.stop_proxy()                      # exit 0: no memcheck error, no definite leak
    report = (lab.dir / ("memcheck.%d.log" % p.proc.pid)).read_text(errors="replace")
    m, e = TOTAL_RE.search(report), ERRORS_RE.search(report)
    assert m and e, "no heap summary in the memcheck report:\n" + report[-2000:]
    assert e.group(1) == "0", report[-4000:]
    return int(m.group(1).replace(",", ""))


def session(lab):
    c = SMTPClient(lab, L.SINK4, timeout=60)
    assert c.greeting().code == 220
    assert c.ehlo("heap.example.org").code == 250
    return c


def message(c, sender="alice@example.org", body=BODY):
    c.send("MAIL FROM:<%s>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n" % sender)
    assert [r.code for r in c.replies(3)] == [250, 250, 354], c.transcript[-4:]
    c.sock.sendall(body.encode())       # not kept in the transcript
    r = c.reply()
    assert r.code == 250, r.text


def end(c):
    assert c.quit().code == 221
    c.wait_closed()
    c.close()
    return c.local_port


def messages(lab, n):
    c = session(lab)
    for _ in range(n):
        message(c)
        assert c.cmd("NOOP").code == 250
    return end(c)


def large(lab, n):
    c = session(lab)
    for _ in range(n):
        message(c, body=LARGE_BODY)
    return end(c)


def commands(lab, n):
    c = session(lab)
    for _ in range(n):
        c.send("NOOP\r\nRSET\r\nMAIL FROM:<x@spam.example>\r\n")
        assert [r.code for r in c.replies(3)] == [250, 250, 550], c.transcript[-4:]
    return end(c)


def sessions(lab, n):
    for _ in range(n):
        c = session(lab)
        message(c)
        port = end(c)
    return port


def grows_by(lab, workload, small, large):
    a, b = heap_allocs(lab, workload, small), heap_allocs(lab, workload, large)
    print("%s: %d allocs for %d, %d for %d: %.3f per unit"
          % (workload.__name__, a, small, b, large, (b - a) / (large - small)))
    return a, b


def test_no_allocation_per_message(lab, memcheck):
    a, b = grows_by(lab, messages, SMALL, LARGE)
    assert b - a < 100, ("one session: %d allocations with %d messages, %d with %d: %d more for %d more "
                         "messages (MAIL, RCPT, DATA, NOOP each)" % (a, SMALL, b, LARGE, b - a, LARGE - SMALL))


def test_no_allocation_per_command(lab, memcheck):
    a, b = grows_by(lab, commands, SMALL, LARGE)
    assert b - a < 100, ("one session: %d allocations with %d rounds of NOOP, RSET, refused MAIL; %d with "
                         "%d: %d more for %d more commands" % (a, SMALL, b, LARGE, b - a, 3 * (LARGE - SMALL)))


def test_no_allocation_per_large_message(lab, memcheck):
    a, b = grows_by(lab, large, 2, 12)
    assert b - a < 10, ("one session: %d allocations with 2 messages of 1 MiB, %d with 12: %d more for 10 "
                        "more" % (a, b, b - a))


def test_allocations_per_session_bounded(lab, memcheck):
    small, large = 10, 210
    a, b = grows_by(lab, sessions, small, large)
    per = (b - a) / (large - small)
    assert per <= 6, "%.2f allocations per session of one message (%d for %d, %d for %d)" % (
        per, a, small, b, large)

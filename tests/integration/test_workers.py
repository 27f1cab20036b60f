"""`workers`: several event-loop threads, each with its own SO_REUSEPORT listener
(SPEC, issue 7). What an administrator checks:

- `ss -ltn` shows one listener per worker on each listen address, the log says
  how many workers, `smtpwallctl stats` has `workers=N` and one line per worker;
  without `workers` in the file, there is one per CPU the daemon may use.
- Sessions are spread over the workers, and every view adds them up: stats
  (`sessions_active` and the per-worker lines), `smtpwallctl sessions` (each
  line names its worker), the log, the mail at the server.
- What the workers share holds across them: max_sessions_per_client counts one
  client's sessions on every worker (never one more than the limit, however the
  kernel spreads them), a rule added live applies on every worker at once, and
  a reload reaches the next session on every worker.
- SIGTERM: every worker stops accepting; sessions on every worker get
  `421 4.3.2` after shutdown_timeout; the daemon exits 0.

(The rest of the integration suite runs with `workers = 2`, lab.py's BASE_CONFIG.)
"""
import os
import re
import signal
import time

import lab as L
from lab import SMTPClient, wait_for

LAB_SERVERS = ("recorder",)


def stats_lines(proxy):
    r = proxy.ctl("stats")
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def stat(proxy, key):
    for line in stats_lines(proxy):
        if line.startswith(key + "="):
            return int(line.split("=", 1)[1])
    raise AssertionError("no %s in stats" % key)


def per_worker(proxy):
    """{worker id: (sessions_active, sessions_total)} from the stats lines."""
    out = {}
    for line in stats_lines(proxy):
        m = re.match(r"^worker=(\d+) sessions_active=(\d+) sessions_total=(\d+)$", line)
        if m:
            out[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    return out


def busy_workers(proxy):
    """The workers that carry at least one session now."""
    return [w for w, (a, _) in per_worker(proxy).items() if a > 0]


def greeted(lab, helo, src=L.CLIENT4):
    c = SMTPClient(lab, L.REC4, src=src, timeout=15)
    g = c.greeting()
    assert g.code == 220, g
    assert c.ehlo(helo).code == 250
    return c


def listeners(lab, port):
    out = lab.sh(lab.ns_gw, "ss", "-Hltn", "sport = :%d" % port).stdout
    return [l.split()[3] for l in out.splitlines() if l.strip()]


def test_one_listener_per_worker_and_stats(lab, smtpwalld):
    p = lab.start_proxy({"workers": "3"})
    socks = listeners(lab, L.LISTEN_PORT)
    assert sorted(socks) == sorted(["0.0.0.0:%d" % L.LISTEN_PORT] * 3 + ["[::]:%d" % L.LISTEN_PORT] * 3), socks
    assert re.search(r"listening on 0\.0\.0\.0:%d \(3 workers\)" % L.LISTEN_PORT, p.log_text()), p.log_tail()
    assert stat(p, "workers") == 3
    assert sorted(per_worker(p)) == [0, 1, 2]
    lab.stop_proxy()


def test_default_is_one_worker_per_usable_cpu(lab, smtpwalld):
    p = lab.start_proxy({"workers": None})      # not in the file
    cpus = len(os.sched_getaffinity(p.proc.pid))
    assert stat(p, "workers") == min(cpus, 64)
    assert len(listeners(lab, L.LISTEN_PORT)) == 2 * min(cpus, 64)
    lab.stop_proxy()


def test_sessions_spread_over_workers_and_add_up(lab, smtpwalld):
    n = 24
    p = lab.start_proxy({"workers": "4", "shutdown_timeout": "2"})
    conns = [greeted(lab, "spread-%d" % i) for i in range(n)]
    assert stat(p, "sessions_active") == n
    pw = per_worker(p)
    assert sum(a for a, _ in pw.values()) == n, pw
    busy = [w for w, (a, _) in pw.items() if a > 0]
    # 24 connections with distinct source ports hashed over 4 listeners: all on one
    # worker would mean the listeners are not shared (odds 4 * 4**-24).
    assert len(busy) >= 2, "every session on one worker: %r" % pw

    r = p.ctl("sessions")
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("session=")]
    assert len(lines) == n and r.stdout.splitlines()[-1] == "%d sessions" % n, r.stdout
    workers_seen = {int(re.search(r" worker=(\d+)", l).group(1)) for l in lines}
    assert workers_seen == set(busy), (workers_seen, pw)

    before = len(lab.recorder.messages())
    for i, c in enumerate(conns):
        assert c.cmd("MAIL FROM:<spread@example.org>").code == 250
        assert c.cmd("RCPT TO:<user%d@example.net>" % i).code == 250
        assert c.cmd("DATA").code == 354
        assert c.cmd("Subject: spread %d\r\n\r\nbody\r\n." % i).code == 250
        assert c.cmd("QUIT").code == 221
        c.close()
    wait_for(lambda: stat(p, "sessions_active") == 0, 10, "all sessions closed")
    assert stat(p, "messages") == n
    assert sum(t for _, t in per_worker(p).values()) == n
    assert len(lab.recorder.messages()) - before == n
    lab.stop_proxy()


def test_max_sessions_per_client_holds_across_workers(lab, smtpwalld):
    limit, tries = 5, 16
    p = lab.start_proxy({"workers": "4", "max_sessions_per_client": str(limit),
                         "shutdown_timeout": "2"})
    kept, refused = [], 0
    for i in range(tries):
        c = SMTPClient(lab, L.REC4, src=L.CLIENT4, timeout=15)
        g = c.greeting()
        if g.code == 220:
            kept.append(c)
        else:
            assert g.code == 421 and g.enh == "4.7.0" and "too many connections from" in g.text, g
            refused += 1
            c.close()
    assert len(kept) == limit and refused == tries - limit, (len(kept), refused)
    assert len(busy_workers(p)) >= 2, per_worker(p)
    for c in kept:
        c.close()
    wait_for(lambda: stat(p, "sessions_active") == 0, 10, "sessions closed")
    # The slots are given back on every worker: the client may open `limit` again.
    again = [greeted(lab, "again-%d" % i) for i in range(limit)]
    for c in again:
        c.close()
    lab.stop_proxy()


def test_live_rule_and_reload_reach_every_worker(lab, smtpwalld):
    n = 12
    p = lab.start_proxy({"workers": "3", "shutdown_timeout": "2"})
    conns = [greeted(lab, "rule-%d" % i) for i in range(n)]
    assert len(busy_workers(p)) >= 2, per_worker(p)
    r = p.ctl("block", "sender", "*@late.example")
    assert r.returncode == 0, r.stderr
    # Sessions opened before the change, on whichever worker: the new rule applies.
    for c in conns:
        r = c.cmd("MAIL FROM:<someone@late.example>")
        assert r.code == 550 and r.enh == "5.7.1", r
        c.close()
    assert stat(p, "refused_sender") == n

    # A reload (max_recipients 1) reaches the next session on every worker.
    text = p.conf_path.read_text()
    p.conf_path.write_text(text + "max_recipients = 1\n")
    r = p.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    conns = [greeted(lab, "reload-%d" % i) for i in range(n)]
    assert len(busy_workers(p)) >= 2, per_worker(p)
    for c in conns:
        assert c.cmd("MAIL FROM:<ok@example.org>").code == 250
        assert c.cmd("RCPT TO:<a@example.net>").code == 250
        r = c.cmd("RCPT TO:<b@example.net>")
        assert r.code == 452, r
        c.close()
    lab.stop_proxy()


def test_sigterm_421_on_every_worker(lab, smtpwalld):
    n = 12
    p = lab.start_proxy({"workers": "3", "shutdown_timeout": "2"})
    conns = [greeted(lab, "term-%d" % i) for i in range(n)]
    busy = busy_workers(p)
    assert len(busy) >= 2, per_worker(p)
    p.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "STOPPING=1" in p.notifications(), 5, "STOPPING=1")
    wait_for(lambda: listeners(lab, L.LISTEN_PORT) == [], 5, "every worker's listener closed")
    for c in conns:
        r = c.reply()
        assert r.code == 421 and r.enh == "4.3.2", r
        c.close()
    assert p.proc.wait(10) == 0
    summaries = [l for l in p.log_text().splitlines() if "result=shutdown" in l]
    assert len(summaries) == n, "\n".join(summaries)
    lab.stop_proxy()


def test_second_daemon_on_the_same_port_is_refused(lab, smtpwalld):
    """SO_REUSEPORT would let a second smtpwalld (same user) bind the port and take
    half of the connections without a word: it must fail to start instead."""
    p = lab.start_proxy({"workers": "2"})
    other = p.dir.parent / "second"
    other.mkdir()
    conf = other / "smtpwall.conf"
    conf.write_text(p.conf_path.read_text().replace(str(p.dir), str(other)))
    (other / "rules").write_text("")
    r = lab.sh(lab.ns_gw, str(smtpwalld), "-c", str(conf), check=False, timeout=20)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Address already in use" in r.stderr and "another smtpwalld" in r.stderr, r.stderr
    assert len(listeners(lab, L.LISTEN_PORT)) == 4      # still only the first one's
    with SMTPClient(lab, L.REC4, src=L.CLIENT4) as c:
        assert c.greeting().code == 220
    lab.stop_proxy()

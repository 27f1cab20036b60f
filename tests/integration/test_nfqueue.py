"""First-packet admission through NFQUEUE (issue 4; SPEC nfqueue, nfqueue_fail,
client_rate), with the real netfilter rules that `smtpwall-firewall up` installs
from the daemon's own configuration file.

What an administrator checks:
- a blocked client's connect() times out: its SYNs are dropped (the queue's
  counters move, the client never gets a SYN-ACK, the server never sees it),
  while an unblocked client delivers; block and unblock live with smtpwallctl;
- client_rate: the N+1th connection within the window is dropped;
- nfqueue_fail = open: with smtpwalld stopped, a client reaches the server
  directly (the documented trade-off: mail flows, uninspected); closed: it does not;
- a queue range (nfqueue = 0-1) binds one thread per queue and mail flows.
"""
import re
import socket
import time

import pytest

import lab as L
from lab import SMTPClient, parse_kv, wait_for

LAB_SERVERS = ("recorder",)
LAB_REDIRECT = None          # smtpwall-firewall installs the rules itself

BLOCKED4 = "203.0.113.10"
RATE4 = "203.0.113.20"       # added to the client namespace for the rate test
OPEN4 = "203.0.113.21"


@pytest.fixture(scope="module")
def extra_addrs(lab):
    for a in (RATE4, OPEN4):
        lab.sh(lab.ns_cli, "ip", "addr", "add", a + "/24", "dev", lab.prefix + "c")
    return True


def start(lab, **config):
    cfg = {"nfqueue": "0", "nfqueue_fail": "open"}
    cfg.update(config)
    p = lab.start_proxy(cfg)
    lab.firewall("up", p.conf_path)
    return p


def stats(proxy):
    r = proxy.ctl("stats")
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        if "=" in line and not line.startswith("client_rule"):
            k, v = line.split("=", 1)
            out[k] = v
    out["_lines"] = r.stdout.splitlines()
    return out


def deliver(lab, src, helo, dst=L.REC4, timeout=10.0):
    """One whole message from `src`; returns the 250 text of the end of DATA."""
    with SMTPClient(lab, dst, src=src, timeout=timeout) as c:
        assert c.greeting().code == 220
        assert c.ehlo(helo).code == 250
        assert c.cmd("MAIL FROM:<monitor@example.net>").code == 250
        assert c.cmd("RCPT TO:<admin@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        r = c.cmd("Subject: %s\r\n\r\nhello\r\n." % helo)
        assert r.code == 250, r
        c.quit()
        return r.text


def connect_times_out(lab, src, dst=L.REC4, timeout=3.0):
    """True if a connect() from src gets no answer at all within timeout (its SYNs
    are dropped); False if it connects; a RST is an assertion error."""
    try:
        with SMTPClient(lab, dst, src=src, timeout=timeout):
            return False
    except socket.timeout:
        return True
    except TimeoutError:
        return True


def raw_queue_packets(lab):
    """Packets that went through the queue rule (iptables raw SMTPWALL chain or
    the nft table, whichever holds it): the gateway's own packet count."""
    total = 0
    for tool in ("iptables", "ip6tables"):
        r = lab.sh(lab.ns_gw, tool, "-t", "raw", "-L", "SMTPWALL", "-v", "-x", "-n", check=False)
        for line in r.stdout.splitlines():
            if "NFQUEUE" in line:
                total += int(line.split()[0])
    r = lab.sh(lab.ns_gw, "nft", "list", "table", "inet", "smtpwall", check=False)
    for m in re.finditer(r"counter packets (\d+) bytes \d+ queue", r.stdout):
        total += int(m.group(1))
    return total


def test_blocked_client_is_dropped_at_the_first_packet(lab, smtpwalld, firewall_tool):
    p = start(lab)
    q0 = lab.queue_stats()
    assert q0[0]["portid"] != 0, "smtpwalld did not bind queue 0: %r" % q0

    # Unblocked: delivers through the proxy (the server sees the gateway).
    assert "Ok" in deliver(lab, BLOCKED4, "before-block")
    conn = lab.recorder.session("before-block")[0]
    assert lab.recorder.peer(conn)[0] == L.GW_S4

    r = p.ctl("block", "client", BLOCKED4 + "/32", "--comment", "nfq test")
    assert r.returncode == 0, r.stderr
    before_pkts, before_ids = raw_queue_packets(lab), lab.queue_stats()[0]["id_sequence"]
    assert connect_times_out(lab, BLOCKED4), "a blocked client got a TCP connection"
    # Its SYN (and the kernel's retransmissions) went through the queue and were dropped.
    assert raw_queue_packets(lab) > before_pkts
    assert lab.queue_stats()[0]["id_sequence"] > before_ids
    st = stats(p)
    assert int(st["nfq_syn_dropped_client"]) >= 1
    assert any(l.startswith("client_rule hits=") and "block client %s/32" % BLOCKED4 in l
               for l in st["_lines"]), st["_lines"]
    assert wait_for(lambda: [l for l in p.lines() if "nfq drop" in l and "client=%s:" % BLOCKED4 in l
                             and 'rule="block client %s/32"' % BLOCKED4 in l], 5, "the drop logged")
    # No session was ever created for it: the greeting-time 554 path was not needed.
    assert not [l for l in p.lines() if "refuse client=%s" % BLOCKED4 in l]

    # Meanwhile another client delivers.
    assert "Ok" in deliver(lab, L.TRUSTED4, "while-blocked")

    r = p.ctl("unblock", "client", BLOCKED4 + "/32")
    assert r.returncode == 0, r.stderr
    assert "Ok" in deliver(lab, BLOCKED4, "after-unblock")
    assert int(stats(p)["nfq_syn_accepted"]) >= 3


def test_blocked_ipv6_client_is_dropped(lab, smtpwalld, firewall_tool):
    p = start(lab)
    assert p.ctl("block", "client", "2001:db8:c::10/128").returncode == 0
    assert connect_times_out(lab, L.CLIENT6, dst=L.REC6)
    assert "Ok" in deliver(lab, "2001:db8:c::50", "v6-unblocked", dst=L.REC6)
    assert int(stats(p)["nfq_syn_dropped_client"]) >= 1


def test_client_rate_drops_the_connection_over_the_limit(lab, smtpwalld, firewall_tool, extra_addrs):
    p = start(lab, client_rate="3/min")
    for i in range(3):
        assert "Ok" in deliver(lab, RATE4, "rate-%d" % i)
    assert connect_times_out(lab, RATE4), "the 4th connection within a minute was accepted"
    st = stats(p)
    assert int(st["nfq_syn_dropped_rate"]) >= 1
    assert int(st["rate_clients"]) >= 1
    assert [l for l in p.lines() if "nfq drop" in l and "client=%s:" % RATE4 in l and "reason=rate" in l]
    # Another address has its own bucket; trusted_networks are never limited.
    assert "Ok" in deliver(lab, OPEN4, "rate-other")
    for i in range(5):
        assert "Ok" in deliver(lab, L.TRUSTED4, "rate-trusted-%d" % i)


def test_fail_open_passes_traffic_directly_when_smtpwalld_is_stopped(lab, smtpwalld, firewall_tool):
    start(lab, nfqueue_fail="open")
    lab.stop_proxy()
    q = lab.queue_stats()
    assert 0 not in q or q[0]["portid"] == 0, "queue 0 still bound: %r" % q
    # The SYN bypasses the queue unmarked, so the REDIRECT rule does not take it:
    # the client talks to the server itself, which sees the client's own address.
    with SMTPClient(lab, L.REC4, src=L.CLIENT4, timeout=5) as c:
        assert c.greeting().code == 220
        assert c.ehlo("fail-open-direct").code == 250
        c.quit()
    conn = lab.recorder.session("fail-open-direct")[0]
    assert lab.recorder.peer(conn)[0] == L.CLIENT4, "not a direct connection: %r" % lab.recorder.peer(conn)


def test_fail_closed_drops_traffic_when_smtpwalld_is_stopped(lab, smtpwalld, firewall_tool):
    p = start(lab, nfqueue_fail="closed")
    assert "Ok" in deliver(lab, L.CLIENT4, "closed-running")
    assert p.stop() == 0
    assert connect_times_out(lab, L.CLIENT4), "fail-closed let a connection through"
    # Started again, mail flows again through the same rules.
    lab.restart_proxy()
    assert "Ok" in deliver(lab, L.CLIENT4, "closed-restarted")


def test_queue_range_binds_a_thread_per_queue(lab, smtpwalld, firewall_tool):
    p = start(lab, nfqueue="0-1")
    q = lab.queue_stats()
    assert q.get(0, {}).get("portid") and q.get(1, {}).get("portid"), q
    assert q[0]["portid"] != q[1]["portid"]
    # --queue-balance hashes on the addresses: several client/server pairs spread.
    for src, dst, n in ((L.CLIENT4, L.REC4, 0), (L.TRUSTED4, L.REC4, 1), (L.CLIENT4, L.REC4, 2),
                        ("2001:db8:c::10", L.REC6, 3), ("2001:db8:c::50", L.REC6, 4)):
        assert "Ok" in deliver(lab, src, "range-%d" % n, dst=dst)
    q = lab.queue_stats()
    assert q[0]["id_sequence"] + q[1]["id_sequence"] >= 5
    assert int(stats(p)["nfq_syn_accepted"]) >= 5

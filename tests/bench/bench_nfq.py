#!/usr/bin/python3
"""bench_nfq: the NFQUEUE admission path under a SYN flood (issue 4), in the
namespace lab of the integration tests (tests/integration/lab.py). `make bench`
runs it when root; run it alone with

    sudo /usr/bin/python3 tests/bench/bench_nfq.py [--build build] [--runs 5] ...

What it measures, all in one run, side by side with a baseline; every
measurement is repeated (--runs) and reported as the median of the runs and
their min-max. Results are ratios against the baseline of the same run, never
judged against a fixed time (the brief's benchmark rule):

  A  nfqueue = off, `smtpwall-firewall up` (REDIRECT only): the latency of a
     legitimate connect() from the client namespace (203.0.113.10) to
     198.51.100.26:25 through the gateway, i.e. until the handshake with
     smtpwalld's listener completes (then close); --connects per run.
  B  nfqueue = 0 (nfqueue_fail = open, then closed; then nfqueue = 0-1): the
     same latency, idle. B/A is the cost the queue adds to every new
     connection. Since A and B run minutes apart and other work on the machine
     moves latencies by more than the queue does, B is also measured paired:
     within each run the same daemon's rules are switched every --block
     connects (ABBA) between the queue rules and the REDIRECT-only rules that
     smtpwall-firewall makes of the same file with nfqueue = off (A'); B/A' is
     the steadier ratio.
  C  the same daemon with `smtpwallctl block client 203.0.113.128/25` and
     build/synflood (tests/bench/synflood.c) sending SYNs from that /25 to
     198.51.100.26:25 for --flood-seconds, at full speed and paced (--rates,
     default: full speed and 100000/s): offered SYN/s (the
     generator) against verdicts/s (smtpwalld's nfq_syn_dropped_client over
     the flood), the kernel's counters (the queue rule's packet count, the
     queue's id_sequence, queue_dropped, user_dropped), SYNs that got no
     verdict (under fail-open they pass the gateway unmarked, uninspected;
     under fail-closed they are dropped), smtpwalld's CPU time per verdict, and
     the legitimate connect latency during the flood (median, p99,
     failures) against idle. Repeated with nfqueue = 0-1 (two queue threads).

The flood is dropped by the daemon (a blocked client), so the gateway answers
none of it; SYNs that pass unjudged under fail-open reach the server
namespace, whose SYN-ACKs die in the gateway (nobody answers ARP for the flood
addresses). Everything happens inside the lab's own namespaces, addresses from
the documentation ranges only; the lab is always torn down (namespaces
deleted, processes stopped by PID).

The machine matters: with 2 CPUs the generator (and the kernel's softirq work
for its packets, which runs on the sender's CPU over veth) takes one, smtpwalld
and this script share the other. Absolute numbers are for this box only; the
ratios are the result.
"""
import argparse
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import lab as L  # noqa: E402  (the integration tests' lab, unchanged)
from benchlib import agg, fmt, log, preflight, proc_cpu, thread_cpu  # noqa: E402

FLOOD_CIDR = "203.0.113.128/25"
FLOOD_PROBE = "203.0.113.200"       # a flood address, to check the gateway's route
LEGIT_SRC = L.CLIENT4               # 203.0.113.10: an ordinary (not trusted) client
DST, DPORT = L.SINK4, 25            # smtp-sink in the server namespace


# --- measurements ------------------------------------------------------------------

def pct(values, p):
    """The p-th percentile (nearest rank) of a non-empty list."""
    v = sorted(values)
    return v[max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))]


def connect_once(lab, timeout):
    """One connect() from LEGIT_SRC to DST:25; seconds, or None on failure."""
    with L.netns(lab.ns_cli):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((LEGIT_SRC, 0))
        s.settimeout(timeout)
        t0 = time.perf_counter()
        try:
            s.connect((DST, DPORT))
        except OSError:
            return None
        return time.perf_counter() - t0
    finally:
        s.close()


def connect_series(lab, n, interval, timeout, until=None):
    """Up to n paced connects (stopping at monotonic time `until`): latencies and failures."""
    lat, fails = [], 0
    for _ in range(n):
        if until is not None and time.monotonic() >= until:
            break
        t = connect_once(lab, timeout)
        if t is None:
            fails += 1
        else:
            lat.append(t)
        time.sleep(interval)
    return lat, fails


def lat_summary(lat, fails):
    if not lat:
        return {"n": 0, "fail": fails, "med": None, "p99": None, "max": None, "slow": 0}
    return {"n": len(lat), "fail": fails, "med": statistics.median(lat), "p99": pct(lat, 99),
            "max": max(lat), "slow": sum(1 for x in lat if x >= 0.9)}   # >= 0.9 s: a SYN retransmitted


def daemon_stats(proxy):
    r = proxy.ctl("stats")
    if r.returncode != 0:
        raise RuntimeError("smtpwallctl stats: %s" % r.stderr.strip())
    out = {}
    for line in r.stdout.splitlines():
        if "=" in line and " " not in line.split("=", 1)[0]:
            k, v = line.split("=", 1)
            try:
                out[k] = int(v)
            except ValueError:
                pass
    return out


def queue_rule_packets(lab):
    """Packets that hit the gateway's NFQUEUE rule (iptables raw SMTPWALL chain, or
    an nft table inet smtpwall `queue` rule, whichever smtpwall-firewall installed)."""
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


def link_stats(lab, ns, dev):
    r = lab.sh(ns, "ip", "-s", "-j", "link", "show", "dev", dev)
    s = json.loads(r.stdout)[0]["stats64"]
    return {"tx_dropped": s["tx"]["dropped"], "rx_dropped": s["rx"]["dropped"],
            "tx_packets": s["tx"]["packets"]}


def kernel_queues(lab):
    q = lab.queue_stats()
    tot = {"id_sequence": 0, "queue_dropped": 0, "user_dropped": 0, "waiting": 0}
    for v in q.values():
        for k in tot:
            tot[k] += v[k]
    return tot


def snapshot(lab, proxy):
    cpu, threads = proc_cpu(proxy.proc.pid), thread_cpu(proxy.proc.pid)
    return {"t": time.monotonic(), "daemon": daemon_stats(proxy), "kq": kernel_queues(lab),
            "rule": queue_rule_packets(lab), "veth": link_stats(lab, lab.ns_cli, lab.prefix + "c"),
            "cpu": cpu, "threads": threads}


# --- scenarios ------------------------------------------------------------------------

class Bench:
    def __init__(self, lab, args):
        self.lab = lab
        self.args = args
        self.synflood = Path(args.build) / "synflood"
        self.proxy = None
        self.seq = 0

    def start(self, name, **config):
        """smtpwalld with `config` and the firewall rules smtpwall-firewall derives from it."""
        lab = self.lab
        if self.proxy is not None:
            lab.firewall("down", self.proxy.conf_path, check=False)
        cfg = {"log_level": "info", "nfqueue": "off"}
        cfg.update(config)
        self.proxy = lab.start_proxy(cfg)
        comm = Path("/proc/%d/comm" % self.proxy.proc.pid).read_text().strip()
        if comm != "smtpwalld":   # CPU times are read from this PID
            raise RuntimeError("pid %d is %r, not smtpwalld" % (self.proxy.proc.pid, comm))
        lab.firewall("up", self.proxy.conf_path)
        if cfg["nfqueue"] != "off":
            want = range(int(cfg["nfqueue"].split("-")[0]), int(cfg["nfqueue"].split("-")[-1]) + 1)
            L.wait_for(lambda: all(lab.queue_stats().get(i, {}).get("portid") for i in want), 10,
                       "smtpwalld to bind queue(s) %s" % cfg["nfqueue"])
        # Warm up: the first connects pay for ARP, conntrack, the sink's first fork.
        connect_series(lab, 20, 0.002, 3.0)
        log("== %s: smtpwalld pid %d, %s" % (name, self.proxy.proc.pid,
                                             ", ".join("%s=%s" % kv for kv in config.items())))
        return self.proxy

    def idle(self, run):
        lat, fails = connect_series(self.lab, self.args.connects, self.args.interval, 3.0)
        s = lat_summary(lat, fails)
        log("   run %d idle: n=%d med=%.1fus p99=%.1fus fail=%d" % (
            run, s["n"], (s["med"] or 0) * 1e6, (s["p99"] or 0) * 1e6, s["fail"]))
        return s

    def paired_idle(self, run):
        """The running daemon's queue rules (B) against REDIRECT only (A': the rules
        smtpwall-firewall installs for the same file with nfqueue = off), alternated every
        --block connects, ABBA, so that load from elsewhere on the machine hits both alike.
        Returns (B, A') lat_summary; the queue rules are in place afterwards."""
        lab, a, p = self.lab, self.args, self.proxy
        noq = p.dir / "smtpwall-noqueue.conf"
        noq.write_text(re.sub(r"(?m)^nfqueue = .*$", "nfqueue = off", p.conf_path.read_text()))
        lat = {"B": [], "A": []}
        fails = {"B": 0, "A": 0}
        blocks = max(1, a.connects // a.block)
        for i in range(blocks):
            for side in (("B", "A") if i % 2 == 0 else ("A", "B")):
                lab.firewall("up", p.conf_path if side == "B" else noq)
                connect_once(lab, 3.0)            # the first after a rule change is not counted
                l, f = connect_series(lab, a.block, a.interval, 3.0)
                lat[side] += l
                fails[side] += f
        lab.firewall("up", p.conf_path)
        sb, sa = lat_summary(lat["B"], fails["B"]), lat_summary(lat["A"], fails["A"])
        log("   run %d idle, paired: queue med=%.1fus p99=%.1fus | REDIRECT only med=%.1fus p99=%.1fus"
            % (run, (sb["med"] or 0) * 1e6, (sb["p99"] or 0) * 1e6, (sa["med"] or 0) * 1e6,
               (sa["p99"] or 0) * 1e6))
        return sb, sa

    def flood(self, run, rate=0):
        lab, a = self.lab, self.args
        L.wait_for(lambda: kernel_queues(lab)["waiting"] == 0, 10, "the queue to drain")
        self.seq += 1
        before = snapshot(lab, self.proxy)
        cmd = [self.synflood, "-d", DST, "-p", str(DPORT), "-s", FLOOD_CIDR,
               "-t", str(a.flood_seconds), "-r", str(rate)]
        gen = lab.spawn(lab.ns_cli, cmd, "synflood-%d" % self.seq)
        t0 = time.monotonic()
        time.sleep(min(0.5, a.flood_seconds / 10))
        lat, fails = connect_series(lab, 10 ** 9, a.interval, 3.0,
                                    until=t0 + a.flood_seconds - min(0.5, a.flood_seconds / 10))
        try:
            gen.wait(a.flood_seconds + 30)
        except subprocess.TimeoutExpired:
            gen.terminate()
            gen.wait(5)
            raise RuntimeError("synflood did not stop")
        out = lab.read("synflood-%d.out" % self.seq)
        m = re.search(r"sent=(\d+) errors=(\d+) seconds=([\d.]+)", out)
        if gen.returncode != 0 or not m:
            raise RuntimeError("synflood failed (%s): %s %s" % (
                gen.returncode, out, lab.read("synflood-%d.err" % self.seq)))
        sent, gen_secs = int(m.group(1)), float(m.group(3))
        # What the flood left in the queue is judged within a moment.
        L.wait_for(lambda: kernel_queues(lab)["waiting"] == 0, 10, "the queue to drain")
        after = snapshot(lab, self.proxy)
        d = lambda k: after["daemon"].get(k, 0) - before["daemon"].get(k, 0)  # noqa: E731
        kq = {k: after["kq"][k] - before["kq"][k] for k in after["kq"]}
        rule = after["rule"] - before["rule"]
        veth_drop = after["veth"]["tx_dropped"] - before["veth"]["tx_dropped"]
        verdicts = d("nfq_verdicts")
        dropped = d("nfq_syn_dropped_client")
        accepted = d("nfq_syn_accepted")
        cpu = after["cpu"] - before["cpu"]
        busiest = max((after["threads"][t] - before["threads"].get(t, 0.0)
                       for t in after["threads"]), default=0.0)
        s = lat_summary(lat, fails)
        r = {
            "rate": rate, "offered": sent, "gen_secs": gen_secs, "offered_ps": sent / gen_secs,
            "verdicts": verdicts, "dropped_client": dropped, "accepted": accepted,
            "verdicts_ps": dropped / gen_secs,
            "rule_pkts": rule, "id_sequence": kq["id_sequence"],
            "queue_dropped": kq["queue_dropped"], "user_dropped": kq["user_dropped"],
            "unjudged": max(0, rule - verdicts), "veth_dropped": veth_drop,
            "cpu_s": cpu, "cpu_busiest_thread_s": busiest,
            "cpu_us_per_verdict": cpu * 1e6 / verdicts if verdicts else None,
            "sends": d("nfq_sends"),
            "lat": s,
            # a legit connect that succeeded without a verdict went around smtpwalld
            "legit_bypassed_est": max(0, s["n"] - accepted),
        }
        log("   run %d flood %s: offered %.0f/s verdicts %.0f/s (%.0f%%) unjudged=%d qdrop=%d udrop=%d "
            "veth_drop=%d cpu=%.2fs (%.2f us/verdict, %.1f verdicts/send) | legit n=%d med=%.1fus "
            "p99=%.1fus fail=%d slow=%d" % (
                run, "full speed" if rate == 0 else "at %d/s" % rate, r["offered_ps"], r["verdicts_ps"], 100.0 * dropped / max(sent, 1), r["unjudged"],
                r["queue_dropped"], r["user_dropped"], veth_drop, cpu, r["cpu_us_per_verdict"] or 0,
                verdicts / max(r["sends"], 1), s["n"], (s["med"] or 0) * 1e6, (s["p99"] or 0) * 1e6,
                s["fail"], s["slow"]))
        return r


# --- report -----------------------------------------------------------------------------

def ratio(num, den):
    if num is None or den is None or den[0] in (0, None):
        return "n/a"
    return "x%.2f" % (num[0] / den[0])


def flood_rows(results):
    for name, r in results:
        for rate, rs in r["flood"].items():
            if rs:
                yield name, r, (" @full" if rate == 0 else " @%dk/s" % (rate // 1000)), rs


def report(results, args):
    """results: [(name, {"idle": [lat_summary...], "flood": [flood run...]})], A first."""
    out = []
    w = out.append
    w("")
    w("bench_nfq: NFQUEUE admission (smtpwalld), %d interleaved runs; median [min-max] over the runs"
      % args.runs)
    w("  legit connect = TCP handshake %s -> %s:25 through the gateway, REDIRECTed to smtpwalld"
      % (LEGIT_SRC, DST))
    w("  flood = build/synflood from %s (blocked client), %.0f s per run, at full speed (@full)"
      " or paced" % (FLOOD_CIDR, args.flood_seconds))
    w("")
    w("Legit connect latency, idle (%d connects per run)" % args.connects)
    w("  A = the baseline daemon, nfqueue = off, its own REDIRECT-only rules. B = each queue")
    w("  configuration; paired: in the same run and daemon, the queue rules alternated every %d"
      % args.block)
    w("  connects with the REDIRECT-only rules smtpwall-firewall makes of the same file with")
    w("  nfqueue = off (A'); B/A' = median over the runs of each run's ratio.")
    w("  %-18s %-22s %-24s %-5s %-15s %-22s %-22s %s" % (
        "nfqueue", "median us", "p99 us", "fails", "B/A med, p99", "A' median us", "B/A' median", "B/A' p99"))
    base = results[0][1]["idle"]
    bmed, bp99 = agg([r["med"] for r in base]), agg([r["p99"] for r in base])
    for name, r in results:
        med, p99 = agg([x["med"] for x in r["idle"]]), agg([x["p99"] for x in r["idle"]])
        pmed = agg([x["med"] for x in r["pair"]])
        rmed = agg([b_["med"] / a_["med"] for b_, a_ in zip(r["idle"], r["pair"]) if b_["med"] and a_["med"]])
        rp99 = agg([b_["p99"] / a_["p99"] for b_, a_ in zip(r["idle"], r["pair"]) if b_["p99"] and a_["p99"]])
        w("  %-18s %-22s %-24s %-5d %-15s %-22s %-22s %s" % (
            name, fmt(med, 1e6), fmt(p99, 1e6), sum(x["fail"] for x in r["idle"]),
            "%s, %s" % (ratio(med, bmed), ratio(p99, bp99)), fmt(pmed, 1e6) if r["pair"] else "-",
            fmt(rmed, 1, 2, "x") if rmed else "-", fmt(rp99, 1, 2, "x") if rp99 else "-"))
    w("")
    w("SYN flood: offered vs judged")
    w("  %-30s %-20s %-20s %-8s %-22s %-22s %-18s %-17s %s" % (
        "nfqueue, flood", "offered SYN/s", "verdicts/s", "judged", "unjudged/run", "kernel drop/run",
        "cpu us/verdict", "cpu-bound est/s", "cpu/wall: daemon, busiest thread"))
    for name, r, rate, rs in flood_rows(results):
        off = agg([x["offered_ps"] for x in rs])
        ver = agg([x["verdicts_ps"] for x in rs])
        judged = agg([x["dropped_client"] / x["offered"] for x in rs if x["offered"]])
        unj = agg([x["unjudged"] for x in rs])
        kd = agg([x["queue_dropped"] + x["user_dropped"] for x in rs])
        cpv = agg([x["cpu_us_per_verdict"] for x in rs])
        cap = agg([1.0 / x["cpu_us_per_verdict"] for x in rs if x["cpu_us_per_verdict"]])
        util = agg([x["cpu_s"] / x["gen_secs"] for x in rs])
        busy = agg([x["cpu_busiest_thread_s"] / x["gen_secs"] for x in rs])
        w("  %-30s %-20s %-20s %-8s %-22s %-22s %-18s %-17s %s" % (
            name + rate, fmt(off, 1e-3, 0, "k"), fmt(ver, 1e-3, 0, "k"),
            "%.1f%%" % (judged[0] * 100) if judged else "n/a", fmt(unj, 1, 0), fmt(kd, 1, 0),
            fmt(cpv, 1, 2), fmt(cap, 1e3, 0, "k"), "%s, %s" % (fmt(util, 1, 2), fmt(busy, 1, 2))))
    w("")
    w("Legit connect latency during the flood")
    w("  %-30s %-26s %-26s %-16s %-9s %s" % ("nfqueue, flood", "median us", "p99 us", "fail/slow/n",
                                             "bypassed", "flood/idle median, p99"))
    for name, r, rate, rs in flood_rows(results):
        ls = [x["lat"] for x in rs]
        med, p99 = agg([x["med"] for x in ls]), agg([x["p99"] for x in ls])
        imed, ip99 = agg([x["med"] for x in r["idle"]]), agg([x["p99"] for x in r["idle"]])
        w("  %-30s %-26s %-26s %-16s %-9d %s, %s" % (
            name + rate, fmt(med, 1e6), fmt(p99, 1e6),
            "%d/%d/%d" % (sum(x["fail"] for x in ls), sum(x["slow"] for x in ls), sum(x["n"] for x in ls)),
            sum(x["legit_bypassed_est"] for x in rs), ratio(med, imed), ratio(p99, ip99)))
    w("")
    w("  verdicts/s = smtpwalld's nfq_syn_dropped_client over the generator's run time; judged = the")
    w("  same / SYNs the generator sent. unjudged = packets that hit the queue rule minus smtpwalld's")
    w("  nfq_verdicts: under nfqueue_fail=open they passed the gateway unmarked (uninspected, not")
    w("  redirected; the kernel counts none of them), under closed they were dropped (kernel drop =")
    w("  queue_dropped + user_dropped of /proc/net/netfilter/nfnetlink_queue). cpu = smtpwalld's")
    w("  whole process (utime+stime, all threads; the busiest thread is the queue's, under a flood);")
    w("  cpu-bound est = 1 / (cpu per verdict), what one busy core would judge.")
    w("  slow = legit connects that took >= 0.9 s (a SYN lost, retransmitted); bypassed = legit")
    w("  connects that succeeded without smtpwalld's verdict (connects - nfq_syn_accepted): fail-open")
    w("  overflow let their SYN around the queue, to the server directly.")
    print("\n".join(out), flush=True)


# --- main -------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SMTPWALL_BUILD") or str(REPO / "build"),
                    help="directory with smtpwalld, smtpwallctl, smtpwall-firewall, synflood")
    ap.add_argument("--runs", type=int, default=5, help="repetitions of every measurement")
    ap.add_argument("--connects", type=int, default=200, help="legit connects per idle run")
    ap.add_argument("--block", type=int, default=25, help="connects per block in the paired A'/B comparison")
    ap.add_argument("--interval", type=float, default=0.002, help="seconds between legit connects")
    ap.add_argument("--flood-seconds", type=float, default=5.0, help="length of one flood run")
    ap.add_argument("--rates", default="0,100000",
                    help="flood rates in SYN/s, comma-separated; 0 = as fast as the generator goes")
    ap.add_argument("--no-closed", action="store_true", help="skip the nfqueue_fail=closed scenario")
    ap.add_argument("--no-range", action="store_true", help="skip the nfqueue=0-1 scenario")
    ap.add_argument("--json", help="also write every run's numbers to this file")
    args = ap.parse_args()
    if args.runs < 1 or args.connects < 1 or args.block < 1 or args.flood_seconds <= 0 or args.interval < 0:
        ap.error("--runs, --connects, --block and --flood-seconds must be positive")
    try:
        args.rates = [int(x) for x in args.rates.split(",")]
        if any(x < 0 for x in args.rates):
            raise ValueError
    except ValueError:
        ap.error("--rates: comma-separated SYN/s values, 0 = full speed")
    os.environ["SMTPWALL_BUILD"] = str(Path(args.build).resolve())
    args.build = os.environ["SMTPWALL_BUILD"]
    preflight("bench_nfq", args.build, ("smtpwalld", "smtpwallctl", "smtpwall-firewall", "synflood"),
              ("ip", "iptables", "nft", "smtp-sink"))

    # SIGTERM (make interrupted, a timeout) tears down like ^C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    lab = L.Lab()
    try:
        lab.setup()
        log("bench_nfq: lab %s* (namespaces %s, %s, %s), scratch %s" % (
            lab.prefix, lab.ns_cli, lab.ns_gw, lab.ns_srv, lab.dir))
        # The flood /25 is on-link in the client's 203.0.113.0/24: the gateway routes it
        # (and would send its SYN-ACKs) to the client link, nowhere else.
        r = lab.sh(lab.ns_gw, "ip", "-4", "route", "get", FLOOD_PROBE)
        if ("dev %sgc" % lab.prefix) not in r.stdout:
            raise RuntimeError("the gateway does not route %s to the client link: %s" % (FLOOD_CIDR, r.stdout))
        lab.sink = lab.start_sink()
        b = Bench(lab, args)

        scen = [("nfqueue=off", {"nfqueue": "off"})]
        scen.append(("nfqueue=0 open", {"nfqueue": "0", "nfqueue_fail": "open"}))
        if not args.no_closed:
            scen.append(("nfqueue=0 closed", {"nfqueue": "0", "nfqueue_fail": "closed"}))
        if not args.no_range:
            scen.append(("nfqueue=0-1 open", {"nfqueue": "0-1", "nfqueue_fail": "open"}))
        res = {name: {"idle": [], "pair": [], "flood": {rate: [] for rate in args.rates}} for name, _ in scen}
        # Interleaved: every run goes through every configuration, so a slow moment of the
        # machine hits them all alike instead of one of them.
        for run in range(1, args.runs + 1):
            for name, cfg in scen:
                p = b.start(name, **cfg)
                if cfg["nfqueue"] == "off":
                    res[name]["idle"].append(b.idle(run))
                    continue
                sb, sa = b.paired_idle(run)
                res[name]["idle"].append(sb)
                res[name]["pair"].append(sa)
                rr = p.ctl("block", "client", FLOOD_CIDR, "--comment", "bench_nfq flood")
                if rr.returncode != 0:
                    raise RuntimeError("smtpwallctl block client: %s" % rr.stderr)
                for rate in args.rates:
                    res[name]["flood"][rate].append(b.flood(run, rate))
                if p.sanitizer_reports() or not p.alive():
                    raise RuntimeError("smtpwalld died or reported: %s" % p.log_tail())
        results = [(name, res[name]) for name, _ in scen]
        report(results, args)
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    except KeyboardInterrupt:
        log("bench_nfq: interrupted; tearing down")
        return 130
    finally:
        lab.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""bench_proxy: SMTP throughput through smtpwalld against no proxy and HAProxy (issue 7),
in the namespace lab of the integration tests (tests/integration/lab.py). `make bench`
runs it when root; run it alone with

    sudo /usr/bin/python3 tests/bench/bench_proxy.py [--build build] [--runs 5] [--json FILE] ...

Postfix's smtp-source (client namespace, 203.0.113.10) sends to smtp-sink
(server namespace, 198.51.100.26:25, no dump files) through the gateway
namespace, in one invocation, side by side:

  A        routed directly: the gateway forwards, no proxy. Its nat table is
           there (an empty prerouting chain), so conntrack runs as in B and C.
  B1, B2   HAProxy, `mode tcp` (a forwarder that reads nothing), nbthread 1
           and nbthread 2 (its default on this 2-CPU box); maxconn 9000; no
           splicing (its default).
  C1, C2   smtpwalld (build/smtpwalld, log_level = warning, never -d), workers 1
           and 2 (one event loop like B1; one per CPU like B2), the client
           in trusted_networks, local_domains = example.net, a `block sender`
           rule: the relay policy and the rules run on every MAIL and RCPT, and
           pass.
  B and C get the connections the same way: an nft REDIRECT of port 25 in the
  gateway to the proxy's port; both send every session to the same fixed
  upstream, 198.51.100.26:25 (smtpwalld: upstream = 198.51.100.26:25; HAProxy:
  `server s1 198.51.100.26:25`), so neither reads the original destination.

Workloads (smtp-source; one message is `-l` bytes of payload plus a few headers):

  small    -d -s 20 -m 40000 -l 1024: 20 concurrent sessions, each sending message
           after message over its one connection (-d: don't disconnect).
  large    -d -s 5 -m 500 -l 1048576: 1 MiB messages.
  connect  -s 20 -m 15000 -l 1024, without -d: smtp-source then opens a new
           connection (greeting, EHLO, MAIL, RCPT, DATA, QUIT) for every
           message, so messages/s is the connection rate.

Every workload runs --runs times (default 5). A run is split into --rounds
rounds (default 4), each sending 1/rounds of the run's messages through A, B1,
B2, C1 and C2 one after the other, in an order that alternates between rounds
and runs (A B1 B2 C1 C2, then C2 C1 B2 B1 A), so that the configurations of one run are
measured within seconds of each other and a slow moment of the machine (other
work on it) hits all of them alike. A configuration's result in a run is its
messages over its summed wall time. Reported: median [min-max] over the runs of
messages/s and payload MiB/s; Cn/A and Cn/Bn as the median [min-max] over
the runs of each run's own ratio; the proxy's own CPU per message (utime +
stime of the whole process, all threads, from /proc/PID/stat before and after
each smtp-source run). Every smtp-source run is checked: it exits 0, smtp-sink
counts every message (and smtpwalld's `messages` counter too, for C).

Idle sessions: with freshly started proxies, --idle sessions (default 5,000) are
opened through each proxy, each having received the greeting and had its EHLO
answered; the proxy's VmRSS (/proc/PID/status) grows by (after - before) /
sessions per session, repeated --idle-runs times (a fresh process each time).

Optional, not timed: --profile counts the syscalls (strace -c -f -p) and context
switches (perf stat) of B1, B2, C1 and C2 during one short small-message run, per
message; --callgrind FILE runs smtpwalld under valgrind --tool=callgrind for a
short small-message run and prints the top functions.

The machine matters: smtp-source, smtp-sink, the proxy and the kernel's network
work share the CPUs (2 on the development box), so the proxy's cost shows in
the throughput of the whole pipeline. Absolute numbers are for this box only;
the ratios are the result. Everything happens inside the lab's own namespaces
(documentation addresses only); the lab is always torn down (namespaces
deleted, processes stopped by PID).
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import lab as L  # noqa: E402  (the integration tests' lab, unchanged)
from benchlib import agg, fmt, log, preflight, proc_cpu  # noqa: E402

CLIENT = L.CLIENT4                  # 203.0.113.10, in trusted_networks for smtpwalld
DST = L.SINK4                       # 198.51.100.26: smtp-sink in the server namespace
UPSTREAM = "%s:25" % DST
SMTPWALL_PORTS = {1: L.LISTEN_PORT, 2: 10029}   # by workers
HAPROXY_PORTS = {1: 10026, 2: 10027}            # by nbthread
CALLGRIND_PORT = 10028
NAT_TABLE = "swb_nat"               # ours; the lab's REDIRECT (swt_nat) is not used
MIB = 1024 * 1024

WORKLOADS = {
    # name: (-d, payload bytes, default "sessions x messages")
    "small": (True, 1024, "20x40000"),
    "large": (True, 1048576, "5x500"),
    "connect": (False, 1024, "20x15000"),
}
WORKLOAD_TEXT = {
    "small": "1 KiB messages, 20 sessions, many messages per connection (-d)",
    "large": "1 MiB messages, many messages per connection (-d)",
    "connect": "1 KiB messages, a new connection per message",
}


# --- processes ---------------------------------------------------------------------

def vm_rss(pid):
    """VmRSS of a process, bytes."""
    m = re.search(r"^VmRSS:\s+(\d+) kB", Path("/proc/%d/status" % pid).read_text(), re.M)
    return int(m.group(1)) * 1024


def stop_pid(proc, timeout=10.0):
    """SIGTERM a process we started, SIGKILL after `timeout`; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def expect_comm(pid, comm):
    got = Path("/proc/%d/comm" % pid).read_text().strip()
    if got != comm:   # CPU times and RSS are read from this PID
        raise RuntimeError("pid %d is %r, not %s" % (pid, got, comm))


class Sink:
    """smtp-sink on 198.51.100.26:25 that dumps nothing and counts (-c) what it gets."""

    def __init__(self, lab):
        self.lab = lab
        self.out = lab.dir / "sink.out"
        # -m: simultaneous connections (the idle test holds --idle at once);
        # the last argument is the listen backlog.
        self.proc = lab.spawn(lab.ns_srv, ["smtp-sink", "-c", "-u", "nobody", "-h", "sink.example.net",
                                           "-m", "15000", UPSTREAM, "4096"], "sink")
        L.wait_for(lambda: L.listening(self.proc.pid, 25) or self.proc.poll() is not None, 10,
                   "smtp-sink listening")
        if self.proc.poll() is not None:
            raise RuntimeError("smtp-sink exited: %s" % lab.read("sink.err"))

    def messages(self):
        """The sink's message counter as it last printed it (-c: sess=N quit=N mesg=N)."""
        with open(self.out, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 256))
            tail = f.read().decode("latin-1")
        m = re.findall(r"mesg=(\d+)", tail)
        return int(m[-1]) if m else 0

    def wait_messages(self, n, timeout=10.0):
        try:
            L.wait_for(lambda: self.messages() >= n, timeout, "smtp-sink to count %d messages" % n)
        except AssertionError:
            pass
        return self.messages()


class Smtpwalld:
    """build/smtpwalld in the gateway, started here rather than by lab.start_proxy, which
    always adds -d (log level debug): this measures the daemon as deployed."""

    def __init__(self, lab, name, port, workers=1, log_level="warning", wrapper=()):
        self.lab = lab
        self.dir = lab.dir / name
        self.dir.mkdir()
        self.conf = self.dir / "smtpwall.conf"
        self.port = port
        cfg = {
            "listen": "0.0.0.0:%d" % port,
            "mode": "redirect",
            "upstream": UPSTREAM,
            "local_domains": "example.net",
            "trusted_networks": "127.0.0.0/8, %s/32" % CLIENT,
            "rules_file": self.dir / "rules",
            "control_socket": self.dir / "control.sock",
            "capture_dir": self.dir / "captures",
            "log_level": log_level,
            "workers": workers,
            # One client address holds every session here (--idle of them at once).
            "max_sessions": 20000,
            "max_sessions_per_client": 20000,
            "shutdown_timeout": 2,
        }
        self.conf.write_text("".join("%s = %s\n" % kv for kv in cfg.items()))
        (self.dir / "rules").write_text(L.BASE_RULES)
        self.log = self.dir / "smtpwalld.log"
        r = subprocess.run([str(L.daemon_path()), "-t", "-c", str(self.conf)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("smtpwalld -t: %s%s" % (r.stdout, r.stderr))
        with open(self.log, "wb") as logf:
            self.proc = lab.spawn(lab.ns_gw, list(wrapper) + [L.daemon_path(), "-c", self.conf], name,
                                  stderr=logf)
        L.wait_for(lambda: self.proc.poll() is not None or L.listening(self.proc.pid, port),
                   120 if wrapper else 10, "smtpwalld to listen on :%d" % port)
        if self.proc.poll() is not None:
            raise RuntimeError("smtpwalld exited at start: %s" % self.log_tail())
        if not wrapper:
            expect_comm(self.proc.pid, "smtpwalld")
        self.pid = self.proc.pid

    def log_tail(self, n=20):
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stats(self):
        r = subprocess.run([str(L.ctl_path()), "-s", str(self.dir / "control.sock"), "stats"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("smtpwallctl stats: %s" % r.stderr.strip())
        out = {}
        for line in r.stdout.splitlines():
            k, _, v = line.partition("=")
            if v.isdigit():
                out[k] = int(v)
        return out

    def messages(self):
        return self.stats().get("messages", 0)

    def active(self):
        return self.stats().get("sessions_active", 0)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        rc = stop_pid(self.proc, 15)
        if rc != 0:
            raise RuntimeError("smtpwalld exited %s after SIGTERM: %s" % (rc, self.log_tail()))
        return rc


class Haproxy:
    """HAProxy in the gateway, TCP mode, to the same fixed upstream."""

    def __init__(self, lab, name, port, threads):
        self.lab = lab
        self.port = port
        self.cfg = lab.dir / (name + ".cfg")
        self.cfg.write_text("\n".join([
            "global",
            "    nbthread %d" % threads,
            "    maxconn 9000",   # 2 descriptors per session: within a hard limit of 20000
            "",
            "defaults",
            "    mode tcp",
            "    timeout connect 30s",
            "    timeout client 300s",
            "    timeout server 600s",
            "",
            "frontend smtp",
            "    bind 0.0.0.0:%d" % port,
            "    default_backend upstream",
            "",
            "backend upstream",
            "    server s1 %s" % UPSTREAM,
            ""]))
        r = subprocess.run(["haproxy", "-c", "-q", "-f", str(self.cfg)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("haproxy -c: %s%s" % (r.stdout, r.stderr))
        # -db: foreground, no master process: the PID we hold is the proxy itself.
        self.proc = lab.spawn(lab.ns_gw, ["haproxy", "-db", "-f", self.cfg], name)
        L.wait_for(lambda: self.proc.poll() is not None or L.listening(self.proc.pid, port), 10,
                   "haproxy to listen on :%d" % port)
        if self.proc.poll() is not None:
            raise RuntimeError("haproxy exited at start: %s" % lab.read(name + ".err"))
        expect_comm(self.proc.pid, "haproxy")
        self.pid = self.proc.pid
        self.base_sockets = 0
        self.base_sockets = self.sockets()

    def alive(self):
        return self.proc.poll() is None

    def sockets(self):
        n = 0
        for fd in os.listdir("/proc/%d/fd" % self.pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (self.pid, fd)).startswith("socket:"):
                    n += 1
            except OSError:
                pass
        return n

    def active(self):
        """Sessions the proxy holds: its sockets beyond those it had at start, two per session."""
        return max(0, self.sockets() - self.base_sockets) // 2

    def stop(self):
        return stop_pid(self.proc, 10)


# --- the gateway's REDIRECT ------------------------------------------------------------

class Nat:
    """Our own nat table in the gateway: the prerouting chain is always there (conntrack
    runs for every configuration alike); the REDIRECT rule is set to a proxy's port, or
    absent for A."""

    def __init__(self, lab):
        self.lab = lab
        lab.sh(lab.ns_gw, "nft", "-f", "-", input=(
            "table ip %s {\n chain prerouting {\n"
            "  type nat hook prerouting priority dstnat; policy accept;\n }\n}\n" % NAT_TABLE))
        lab.cleanups.append(self.delete)
        self.port = None

    def redirect(self, port):
        if port == self.port:
            return
        cmds = "flush chain ip %s prerouting\n" % NAT_TABLE
        if port is not None:
            cmds += "add rule ip %s prerouting ip daddr %s tcp dport 25 redirect to :%d\n" % (
                NAT_TABLE, DST, port)
        self.lab.sh(self.lab.ns_gw, "nft", "-f", "-", input=cmds)
        self.port = port

    def delete(self):
        self.lab.sh(self.lab.ns_gw, "nft", "delete", "table", "ip", NAT_TABLE, check=False)


# --- smtp-source -----------------------------------------------------------------------

def source_cmd(wl, sessions, messages, size=None):
    keep, payload, _ = WORKLOADS[wl]
    cmd = ["smtp-source", "-4", "-s", str(sessions), "-m", str(messages), "-l", str(size or payload),
           "-M", "client.example.org", "-f", "sender@client.example.org", "-t", "rcpt@example.net"]
    if keep:
        cmd.append("-d")
    return cmd + ["%s:25" % DST]


class Bench:
    def __init__(self, lab, args):
        self.lab = lab
        self.args = args
        self.nat = Nat(lab)
        self.sink = Sink(lab)
        self.seq = 0
        self.proxies = {}

    def start_proxies(self):
        """Fresh B1, B2, C1, C2 (stopping the ones that run)."""
        self.stop_proxies()
        self.seq += 1
        for t in self.args.haproxy_threads:
            self.proxies["B%d" % t] = Haproxy(self.lab, "haproxy%d-%d" % (t, self.seq), HAPROXY_PORTS[t], t)
        for t in self.args.smtpwall_workers:
            self.proxies["C%d" % t] = Smtpwalld(self.lab, "smtpwalld%d-%d" % (t, self.seq), SMTPWALL_PORTS[t],
                                                workers=t)
        return self.proxies

    def stop_proxies(self):
        for name in list(self.proxies):
            self.proxies.pop(name).stop()

    def use(self, conf):
        """Route port 25 for configuration `conf` ('A', 'B1', 'B2', 'C1', 'C2')."""
        self.nat.redirect(None if conf == "A" else self.proxies[conf].port)

    def source(self, wl, sessions, messages, tag, size=None):
        """One smtp-source run from the client namespace; wall seconds (checked: exit 0)."""
        self.seq += 1
        name = "source-%d-%s" % (self.seq, tag)
        out = open(self.lab.dir / (name + ".out"), "wb")
        err = open(self.lab.dir / (name + ".err"), "wb")
        cmd = source_cmd(wl, sessions, messages, size)
        with L.netns(self.lab.ns_cli):   # the child inherits this thread's namespace
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        self.lab.procs.append(p)          # stopped by PID at teardown if still running
        deadline = time.monotonic() + self.args.timeout
        while True:   # wait4: the exit status and smtp-source's own CPU time
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                stop_pid(p, 5)
                raise RuntimeError("smtp-source did not finish within %ss: %s" % (self.args.timeout, " ".join(cmd)))
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.close()
        err.close()
        if p.returncode != 0:
            raise RuntimeError("smtp-source exited %s (%s): %s" % (p.returncode, " ".join(cmd),
                                                                  self.lab.read(name + ".err")))
        self.source_cpu = ru.ru_utime + ru.ru_stime
        return wall

    def block(self, wl, conf, messages):
        """Workload `wl` through configuration `conf`: one smtp-source run of `messages`,
        checked (every message counted by smtp-sink, and by smtpwalld for C)."""
        sessions = self.args.spec[wl][0]
        self.use(conf)
        p = self.proxies.get(conf)
        sink0 = self.sink.messages()
        c_msgs0 = p.messages() if is_c(conf) else 0
        cpu0 = proc_cpu(p.pid) if p else 0.0
        sink_cpu0 = proc_cpu(self.sink.proc.pid)
        wall = self.source(wl, min(sessions, messages), messages, "%s-%s" % (wl, conf))
        cpu1 = proc_cpu(p.pid) if p else 0.0
        sink_cpu = proc_cpu(self.sink.proc.pid) - sink_cpu0
        got = self.sink.wait_messages(sink0 + messages) - sink0
        if got != messages:
            raise RuntimeError("%s via %s: smtp-sink counted %d of %d messages" % (wl, conf, got, messages))
        if is_c(conf):
            c = p.messages() - c_msgs0
            if c != messages:
                raise RuntimeError("smtpwalld counted %d of %d messages" % (c, messages))
        if p and not p.alive():
            raise RuntimeError("%s died" % conf)
        return {"wall": wall, "messages": messages, "cpu_s": cpu1 - cpu0 if p else None,
                "source_cpu_s": self.source_cpu, "sink_cpu_s": sink_cpu}

    def run(self, wl, run):
        """One run of workload `wl`: --rounds rounds, each sending 1/rounds of the messages
        through every configuration, the order alternating (A B1 B2 C1 C2, C2 C1 B2 B1 A, ...), so
        that the configurations of one run are measured within seconds of each other.
        Per configuration: its messages over its summed wall time."""
        a = self.args
        _, payload, _ = WORKLOADS[wl]
        total = a.spec[wl][1]
        blocks = {c: [] for c in a.confs}
        for k in range(a.rounds):
            m = total // a.rounds + (1 if k < total % a.rounds else 0)
            for conf in (a.confs if (run + k) % 2 else a.confs[::-1]):
                blocks[conf].append(self.block(wl, conf, m))
        out = {}
        for conf, bl in blocks.items():
            wall = sum(x["wall"] for x in bl)
            n = sum(x["messages"] for x in bl)
            cpu = sum(x["cpu_s"] for x in bl) if conf != "A" else None
            src, snk = sum(x["source_cpu_s"] for x in bl), sum(x["sink_cpu_s"] for x in bl)
            r = out[conf] = {
                "wall": wall, "messages": n, "msgs_ps": n / wall, "mib_ps": n * payload / wall / MIB,
                "cpu_s": cpu, "cpu_us_per_msg": cpu * 1e6 / n if cpu is not None else None,
                # for reading the numbers: how busy the two ends were
                "source_cpu_s": src, "sink_cpu_s": snk,
                "blocks_msgs_ps": [x["messages"] / x["wall"] for x in bl]}
            log("   run %d %-7s %-2s %6.2fs  %8.0f msg/s  %7.1f MiB/s  cpu/wall: source %.2f sink %.2f%s" % (
                run, wl, conf, wall, r["msgs_ps"], r["mib_ps"], src / wall, snk / wall,
                "  proxy %.2f = %.1f us/msg" % (cpu / wall, r["cpu_us_per_msg"]) if cpu is not None else ""))
        return out

    def warmup(self):
        """A short run of each workload through each configuration: ARP, conntrack,
        the proxies' first allocations, the page cache."""
        for wl in self.args.workloads:
            for conf in self.args.confs:
                self.use(conf)
                s, m = self.args.spec[wl]
                self.source(wl, min(s, 5), max(5, m // 20), "warmup-%s-%s" % (wl, conf))

    # idle sessions -------------------------------------------------------------------

    def idle(self, conf, n):
        """n sessions through `conf`, each greeted and EHLO answered, held open: the
        proxy's VmRSS growth per session."""
        p = self.proxies[conf]
        self.use(conf)
        time.sleep(0.2)
        rss0 = vm_rss(p.pid)
        socks = []
        t0 = time.monotonic()
        try:
            with L.netns(self.lab.ns_cli):
                for i in range(n):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    socks.append(s)
                    s.settimeout(10)
                    s.connect((DST, 25))
                    read_reply(s, "220")
                    s.sendall(b"EHLO idle%d.example.org\r\n" % i)
                    read_reply(s, "250")
            secs = time.monotonic() - t0
            time.sleep(0.5)
            rss1 = vm_rss(p.pid)
            held = p.active()
            if held < n:
                raise RuntimeError("%s holds %d sessions, expected %d" % (conf, held, n))
        finally:
            for s in socks:
                s.close()
        # Until the proxy has let them all go, the next measurement would see them.
        L.wait_for(lambda: p.active() == 0, 30, "%s to close the idle sessions" % conf, interval=0.1)
        r = {"sessions": n, "rss_before": rss0, "rss_after": rss1,
             "bytes_per_session": (rss1 - rss0) / n, "open_secs": secs}
        log("   idle %-2s %d sessions: VmRSS %.1f -> %.1f MiB = %.0f B/session (opened in %.1fs)" % (
            conf, n, rss0 / MIB, rss1 / MIB, r["bytes_per_session"], secs))
        return r

    # profiles (not timed) --------------------------------------------------------------

    def profile(self, conf):
        """strace -c -f and perf stat on the proxy of `conf` during one short small run."""
        a = self.args
        p = self.proxies[conf]
        self.use(conf)
        sessions, messages = a.profile_spec
        res = {"messages": messages}
        # perf stat: context switches and task clock (cheap, not intrusive).
        if shutil.which("perf"):
            out = self.lab.dir / ("perf-%s.txt" % conf)
            ps = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "task-clock,context-switches,cpu-migrations",
                                   "-p", str(p.pid), "-o", str(out)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
            self.lab.procs.append(ps)
            time.sleep(0.5)
            self.source("small", sessions, messages, "perf-" + conf)
            ps.send_signal(signal.SIGINT)
            ps.wait(10)
            for line in out.read_text().splitlines():
                f = line.split(",")
                if len(f) > 3 and f[2] in ("task-clock", "context-switches", "cpu-migrations"):
                    try:
                        res[f[2]] = float(f[0])
                    except ValueError:
                        pass
        # strace -c: syscalls by name (strace slows everything: counts only).
        if shutil.which("strace"):
            out = self.lab.dir / ("strace-%s.txt" % conf)
            st = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(p.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            self.lab.procs.append(st)
            time.sleep(1.0)
            self.source("small", sessions, messages, "strace-" + conf)
            st.send_signal(signal.SIGINT)
            st.wait(30)
            calls, errors = {}, {}
            for line in out.read_text().splitlines():
                f = line.split()
                # % time, seconds, usecs/call, calls, [errors], syscall
                if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                    try:
                        calls[f[-1]] = int(f[3])
                        if len(f) == 6:
                            errors[f[-1]] = int(f[4])
                    except ValueError:
                        pass
            res["syscalls"] = calls
            res["syscall_errors"] = errors   # read/recvfrom errors here are EAGAIN
        log("   profile %s: %s" % (conf, summarize_profile(res)))
        return res

    def callgrind(self, path):
        """smtpwalld under callgrind for one short small-message run; top functions."""
        a = self.args
        sessions, messages = a.profile_spec
        self.seq += 1
        d = Smtpwalld(self.lab, "callgrind-%d" % self.seq, CALLGRIND_PORT, wrapper=[
            "valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % path])
        try:
            self.nat.redirect(CALLGRIND_PORT)
            self.source("small", sessions, messages, "callgrind")
        finally:
            self.nat.redirect(None)
            stop_pid(d.proc, 120)
        r = subprocess.run(["callgrind_annotate", "--inclusive=no", path], capture_output=True, text=True)
        total, rows = None, []
        for line in r.stdout.splitlines():
            m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)$", line)
            if m and "PROGRAM TOTALS" in m.group(2):
                total = int(m.group(1).replace(",", ""))
            elif m and total is not None:
                rows.append((int(m.group(1).replace(",", "")), m.group(2)))
        out = ["  %s instructions in all (start and stop included), %.0f per message" % (
            "{:,}".format(total or 0), (total or 0) / messages)]
        for ir, fn in rows[:a.callgrind_top]:
            out.append("  %5.1f%%  %s" % (100.0 * ir / total, fn))
        return "\n".join(out)


def read_reply(s, code):
    """Read one complete SMTP reply on a blocking socket; fail unless it is `code`."""
    buf = b""
    while True:
        d = s.recv(4096)
        if not d:
            raise RuntimeError("connection closed before a %s reply: %r" % (code, buf))
        buf += d
        lines = buf.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b" ":
                if not line.startswith(code.encode()):
                    raise RuntimeError("expected %s, got %r" % (code, buf))
                return buf


def summarize_profile(res):
    n = res["messages"]
    parts = []
    if "task-clock" in res:
        parts.append("task-clock %.1f us/msg" % (res["task-clock"] * 1e3 / n))
    if "context-switches" in res:
        parts.append("%.2f context switches/msg" % (res["context-switches"] / n))
    if res.get("syscalls"):
        c = res["syscalls"]
        e = res.get("syscall_errors", {})
        top = sorted(c.items(), key=lambda kv: -kv[1])[:6]
        parts.append("%.1f syscalls/msg (%s)" % (sum(c.values()) / n, ", ".join(
            "%s %.2f%s" % (k, v / n, " of which %.2f failed" % (e[k] / n) if e.get(k) else "")
            for k, v in top)))
    return "; ".join(parts)


# --- report -----------------------------------------------------------------------------

def is_c(conf):
    return conf.startswith("C")


def pairs(args):
    """(Cn, Bn) for every n measured both ways: smtpwalld against HAProxy with as many threads."""
    return [("C%d" % t, "B%d" % t) for t in args.smtpwall_workers if t in args.haproxy_threads]


def run_ratios(res, wl, num, den, key="msgs_ps"):
    """Each run's num/den (same run), aggregated."""
    return agg([n[key] / d[key] for n, d in zip(res[wl][num], res[wl][den]) if d[key]])


def report(res, idle, prof, args):
    out = []
    w = out.append
    bs = ["B%d" % t for t in args.haproxy_threads]
    cs = ["C%d" % t for t in args.smtpwall_workers]
    w("")
    w("bench_proxy: smtp-source -> smtp-sink through the gateway, %d runs of %d interleaved rounds; "
      "median [min-max] over the runs" % (args.runs, args.rounds))
    w("  A = routed, no proxy; %s = HAProxy 2.6 mode tcp%s; %s = smtpwalld%s (log_level warning,"
      % ("/".join(bs), ", nbthread " + "/".join(str(t) for t in args.haproxy_threads) if bs else "",
         "/".join(cs), ", workers " + "/".join(str(t) for t in args.smtpwall_workers)))
    w("  policy and rules passing); B and C: nft REDIRECT in the gateway, fixed upstream %s" % UPSTREAM)
    w("  ratios: median [min-max] over the runs of each run's own ratio")
    for wl in args.workloads:
        s, m = args.spec[wl]
        keep, payload, _ = WORKLOADS[wl]
        w("")
        w("%s: %s: smtp-source %s-s %d -m %d -l %d" % (wl, WORKLOAD_TEXT[wl], "-d " if keep else "", s, m, payload))
        w("  %-4s %-28s %-26s %-22s %s" % ("", "messages/s", "payload MiB/s", "vs A", "proxy CPU us/message"))
        for conf in args.confs:
            rs = res[wl][conf]
            mps, mib = agg([r["msgs_ps"] for r in rs]), agg([r["mib_ps"] for r in rs])
            va = "-" if conf == "A" else fmt(run_ratios(res, wl, conf, "A"), 1, 2, "x")
            cpu = agg([r["cpu_us_per_msg"] for r in rs])
            w("  %-4s %-28s %-26s %-22s %s" % (conf, fmt(mps, 1, 0), fmt(mib, 1, 1), va,
                                              fmt(cpu, 1, 1) if cpu else "-"))
        for c, bconf in pairs(args):
            cc = agg([x["cpu_us_per_msg"] / y["cpu_us_per_msg"] for x, y in zip(res[wl][c], res[wl][bconf])
                      if y["cpu_us_per_msg"]])
            w("  %s/%s: messages/s %s, proxy CPU per message %s" % (
                c, bconf, fmt(run_ratios(res, wl, c, bconf), 1, 2, "x"), fmt(cc, 1, 2, "x")))
    if idle:
        w("")
        w("Idle sessions: %d sessions held open through each proxy (greeting received, EHLO answered);"
          % args.idle)
        w("  VmRSS growth of the proxy process per session, fresh processes, %d runs" % args.idle_runs)
        w("  %-4s %-28s %-26s %s" % ("", "bytes/session", "VmRSS before, MiB", "VmRSS with the sessions, MiB"))
        for conf in [c for c in args.confs if c != "A"]:
            rs = idle.get(conf, [])
            if not rs:
                continue
            w("  %-4s %-28s %-26s %s" % (conf, fmt(agg([r["bytes_per_session"] for r in rs]), 1, 0),
                                        fmt(agg([r["rss_before"] for r in rs]), 1 / MIB, 1),
                                        fmt(agg([r["rss_after"] for r in rs]), 1 / MIB, 1)))
        for c, bconf in pairs(args):
            if c in idle and bconf in idle:
                cc = agg([x["bytes_per_session"] / y["bytes_per_session"]
                          for x, y in zip(idle[c], idle[bconf]) if y["bytes_per_session"] > 0])
                w("  %s/%s per session: %s" % (c, bconf, fmt(cc, 1, 2, "x")))
    if prof:
        w("")
        w("Profile (not timed; one small run of %d messages over %d sessions, strace -c -f and perf stat):"
          % (args.profile_spec[1], args.profile_spec[0]))
        for conf, r in prof.items():
            w("  %-4s %s" % (conf, summarize_profile(r)))
    w("")
    w("  messages/s = smtp-source's messages / its wall time (all of them counted by smtp-sink);")
    w("  payload MiB/s = messages x -l bytes / wall time. proxy CPU = utime+stime of the proxy")
    w("  process (all threads, /proc/PID/stat, 10 ms ticks) over the run / messages. smtp-source,")
    w("  smtp-sink, the proxy and the kernel share the machine's %d CPUs." % os.cpu_count())
    print("\n".join(out), flush=True)


# --- main -------------------------------------------------------------------------------

def parse_spec(text, what):
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < int(m.group(1)):
        raise argparse.ArgumentTypeError("%s: SESSIONSxMESSAGES, e.g. 20x5000 (messages >= sessions)" % what)
    return int(m.group(1)), int(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SMTPWALL_BUILD") or str(REPO / "build"),
                    help="directory with smtpwalld and smtpwallctl")
    ap.add_argument("--runs", type=int, default=5, help="repetitions of every measurement")
    ap.add_argument("--rounds", type=int, default=4,
                    help="rounds per run: each sends 1/rounds of a run's messages through every configuration")
    for wl, (_, _, spec) in WORKLOADS.items():
        ap.add_argument("--" + wl, default=spec, metavar="SxM",
                        help="%s: sessions x messages (default %s)" % (WORKLOAD_TEXT[wl], spec))
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of %s"
                    % ", ".join(WORKLOADS))
    ap.add_argument("--haproxy-threads", default="1,2",
                    help="HAProxy baselines by nbthread, comma-separated (1, 2 or both; empty: none)")
    ap.add_argument("--smtpwall-workers", default="1,2",
                    help="smtpwalld configurations by workers, comma-separated (1, 2 or both)")
    ap.add_argument("--idle", type=int, default=5000, help="idle sessions for the memory measurement (0: skip)")
    ap.add_argument("--idle-runs", type=int, default=3, help="repetitions of the idle measurement")
    ap.add_argument("--timeout", type=float, default=300, help="seconds one smtp-source run may take")
    ap.add_argument("--profile", action="store_true",
                    help="also count syscalls (strace -c) and context switches (perf stat) per message")
    ap.add_argument("--profile-run", default="20x2000", metavar="SxM", help="the small run profiled")
    ap.add_argument("--callgrind", metavar="FILE", help="also run smtpwalld under callgrind (small run), "
                    "write FILE and print the top functions")
    ap.add_argument("--callgrind-top", type=int, default=10, help="functions listed from the callgrind run")
    ap.add_argument("--json", help="also write every run's numbers to this file")
    args = ap.parse_args()
    try:
        args.spec = {wl: parse_spec(getattr(args, wl), "--" + wl) for wl in WORKLOADS}
        args.profile_spec = parse_spec(args.profile_run, "--profile-run")
        args.workloads = [x for x in args.workloads.split(",") if x]
        if not args.workloads or any(x not in WORKLOADS for x in args.workloads):
            raise argparse.ArgumentTypeError("--workloads: a subset of %s" % ", ".join(WORKLOADS))
        args.haproxy_threads = [int(x) for x in args.haproxy_threads.split(",") if x]
        if any(t not in HAPROXY_PORTS for t in args.haproxy_threads):
            raise argparse.ArgumentTypeError("--haproxy-threads: 1, 2 or 1,2")
        args.smtpwall_workers = [int(x) for x in args.smtpwall_workers.split(",") if x]
        if not args.smtpwall_workers or any(t not in SMTPWALL_PORTS for t in args.smtpwall_workers):
            raise argparse.ArgumentTypeError("--smtpwall-workers: 1, 2 or 1,2")
    except (argparse.ArgumentTypeError, ValueError) as e:
        ap.error(str(e))
    if args.rounds < 1 or any(m < args.rounds for _, m in args.spec.values()):
        ap.error("--rounds: at least 1, and at most the messages of every workload")
    if args.runs < 1 or args.idle < 0 or args.idle_runs < 1 or args.timeout <= 0:
        ap.error("--runs, --idle-runs and --timeout must be positive, --idle at least 0")
    if args.idle > 8000:
        ap.error("--idle: at most 8000 (two descriptors per session in the proxy, one in smtp-sink and here)")
    args.confs = ["A"] + ["B%d" % t for t in args.haproxy_threads] + ["C%d" % t for t in args.smtpwall_workers]
    os.environ["SMTPWALL_BUILD"] = str(Path(args.build).resolve())
    args.build = os.environ["SMTPWALL_BUILD"]
    preflight("bench_proxy", args.build, ("smtpwalld", "smtpwallctl"),
              ["ip", "nft", "smtp-sink", "smtp-source"] + (["haproxy"] if args.haproxy_threads else []))

    # Descriptors: this script holds --idle client sockets; smtp-sink and the proxies
    # (started from here) inherit the limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    # SIGTERM (make interrupted, a timeout) tears down like ^C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    lab = L.Lab()
    try:
        lab.setup()
        log("bench_proxy: lab %s* (namespaces %s, %s, %s), scratch %s" % (
            lab.prefix, lab.ns_cli, lab.ns_gw, lab.ns_srv, lab.dir))
        # Many short connections per run: a wide port range, and TIME_WAIT ports reused
        # (both per namespace: ours only).
        for ns in (lab.ns_cli, lab.ns_gw):
            lab.sh(ns, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=10240 65000",
                   "net.ipv4.tcp_tw_reuse=1")
        b = Bench(lab, args)   # (its nat table turns conntrack on in the gateway)
        # The gateway's conntrack keeps a closed connection 120 s (TIME_WAIT): at thousands
        # of connections a second the table (nf_conntrack_max) would fill and drop SYNs.
        lab.sh(lab.ns_gw, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=2")
        res = {wl: {c: [] for c in args.confs} for wl in args.workloads}
        idle, prof = {}, {}

        # Memory first, with fresh processes each time.
        if args.idle:
            for i in range(args.idle_runs):
                b.start_proxies()
                for conf in (args.confs[1:] if i % 2 == 0 else args.confs[:0:-1]):
                    idle.setdefault(conf, []).append(b.idle(conf, args.idle))

        b.start_proxies()
        log("== warm-up")
        b.warmup()
        for run in range(1, args.runs + 1):
            for wl in args.workloads:
                for conf, r in b.run(wl, run).items():
                    res[wl][conf].append(r)
        if args.profile:
            for conf in args.confs[1:]:
                prof[conf] = b.profile(conf)
        b.stop_proxies()
        report(res, idle, prof, args)
        if args.callgrind:
            log("== callgrind (smtpwalld under valgrind, %d messages)" % args.profile_spec[1])
            print("\nCallgrind: smtpwalld, one small run (%s), top %d functions by instructions (self):"
                  % (args.profile_run, args.callgrind_top))
            print(b.callgrind(args.callgrind), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items()},
                                                   "throughput": res, "idle": idle, "profile": prof},
                                                  indent=1, default=str))
    except KeyboardInterrupt:
        log("bench_proxy: interrupted; tearing down")
        return 130
    finally:
        lab.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

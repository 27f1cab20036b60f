"""What the namespace benchmarks (bench_nfq.py, bench_proxy.py) share: the
log line, a process's CPU time, the root/tool check, and the report's
median [min-max] aggregation and formatting."""
import os
import shutil
import statistics
import sys
from pathlib import Path


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _stat_cpu(path):
    f = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """utime + stime of the whole process (all threads), seconds."""
    return _stat_cpu("/proc/%d/stat" % pid)


def thread_cpu(pid):
    """{tid: utime + stime, seconds} of each thread of the process."""
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            out[int(t)] = _stat_cpu("/proc/%d/task/%s/stat" % (pid, t))
        except OSError:
            pass   # the thread ended meanwhile
    return out


def preflight(name, build, programs, tools):
    """Skip (exit 0, loudly) without root; exit 1 if a built program or a tool is missing."""
    if os.geteuid() != 0:
        print("%s: skipped: needs root (network namespaces, netfilter); run `sudo make bench`" % name,
              flush=True)
        sys.exit(0)
    b = Path(build)
    missing = [str(b / p) for p in programs if not os.access(b / p, os.X_OK)]
    missing += [t for t in tools if shutil.which(t) is None]
    if missing:
        print("%s: cannot run: missing %s (run `make` / `sudo make deps`)" % (name, ", ".join(missing)),
              flush=True)
        sys.exit(1)


def agg(values):
    """(median, min, max) of the values that are not None, or None."""
    v = [x for x in values if x is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v)


def fmt(a, scale=1.0, digits=1, unit=""):
    """An agg() triple as "median [min-max]", scaled."""
    if a is None:
        return "n/a"
    med, lo, hi = a
    return "%.*f%s [%.*f-%.*f]" % (digits, med * scale, unit, digits, lo * scale, digits, hi * scale)

"""The namespace lab for smtpwall's integration tests.

Owns: three network namespaces (client, gateway, server) with a unique prefix
per lab, the veth links between them, the netfilter REDIRECT of port 25 in the
gateway, the SMTP servers in the server namespace (aiosmtpd recorder, Postfix
smtp-sink, a real Postfix instance, scripted raw-socket servers run by threads
of the test process), one smtpwalld at a time in the gateway, and one scratch
directory under /tmp.

Never does: touch the root namespace's interfaces or netfilter, use addresses
outside 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32, signal
a process it did not start (everything is stopped by PID), or judge smtpwalld:
the tests do that.

Topology:

  client ns  (cli)                gateway ns (gw)                      server ns (srv)
  203.0.113.10, .50 (trusted) --- 203.0.113.1      198.51.100.1   --- 198.51.100.25 recorder  (aiosmtpd)
  2001:db8:c::10, ::50            2001:db8:c::1    2001:db8:5::1      198.51.100.26 smtp-sink
                                  nat prerouting: tcp dport 25        198.51.100.27 Postfix (lenient; also :2525)
                                  redirect to :10025 -> smtpwalld     198.51.100.28 nothing (closed port)
                                                                      198.51.100.29 ScriptServer (when a test runs one)
                                                                      2001:db8:5::25/26/27/28/29 likewise
"""
import contextlib
import ctypes
import json
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"   # Debian's python3: aiosmtpd lives there
LISTEN_PORT = 10025

CLIENT4 = "203.0.113.10"
TRUSTED4 = "203.0.113.50"
CLIENT6 = "2001:db8:c::10"
GW_C4, GW_C6 = "203.0.113.1", "2001:db8:c::1"
GW_S4, GW_S6 = "198.51.100.1", "2001:db8:5::1"
REC4, REC6 = "198.51.100.25", "2001:db8:5::25"
SINK4, SINK6 = "198.51.100.26", "2001:db8:5::26"
PF4, PF6 = "198.51.100.27", "2001:db8:5::27"
CLOSED4, CLOSED6 = "198.51.100.28", "2001:db8:5::28"
SCRIPT4, SCRIPT6 = "198.51.100.29", "2001:db8:5::29"
PF_DIRECT_PORT = 2525   # same Postfix smtpd, a port the gateway does not redirect

BASE_CONFIG = {
    "listen": "0.0.0.0:10025, [::]:10025",
    "mode": "redirect",
    "upstream": "original",
    "local_domains": "example.net",
    "trusted_networks": "127.0.0.0/8, 203.0.113.50/32",
    "log_level": "debug",
    # Every test runs with two event-loop threads whatever the machine has:
    # sessions land on either (SO_REUSEPORT), as on a real gateway.
    "workers": "2",
}
BASE_RULES = "block sender *@spam.example\n"


def build_dir():
    return Path(os.environ.get("SMTPWALL_BUILD") or REPO / "build")


def daemon_path():
    return build_dir() / "smtpwalld"


def ctl_path():
    return build_dir() / "smtpwallctl"


def wait_for(pred, timeout=10.0, what="condition", interval=0.02):
    """Poll pred() until it returns something true; fail loudly after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# --- network namespaces -------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


def _setns(fd):
    if _libc.setns(fd, _CLONE_NEWNET) == -1:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


@contextlib.contextmanager
def netns(name):
    """Run the block with this thread in namespace `name`.

    Sockets created inside stay in that namespace after the block, which is
    what lets the tests drive raw SMTP sessions from the client namespace.
    """
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open("/run/netns/" + name, os.O_RDONLY)
    try:
        _setns(there)
        try:
            yield
        finally:
            _setns(here)
    finally:
        os.close(here)
        os.close(there)


def listening(pid, port):
    """Addresses listening on TCP `port` in the network namespace of `pid`."""
    found = []
    for fam in ("tcp", "tcp6"):
        try:
            text = Path("/proc/%d/net/%s" % (pid, fam)).read_text()
        except OSError:
            return []
        for line in text.splitlines()[1:]:
            f = line.split()
            local, state = f[1], f[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                found.append((fam, addr))
    return found


# --- SMTP client ----------------------------------------------------------------

class Reply:
    """One SMTP reply: every line (without CRLF), its code and enhanced code."""

    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3])

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def enh(self):
        m = re.match(r"^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b", self.lines[0])
        return m.group(1) if m else None

    @property
    def keywords(self):
        """EHLO keywords (first word of every line but the greeting one), upper-case."""
        return [l[4:].split(" ")[0].upper() for l in self.lines[1:] if len(l) > 4]

    def __repr__(self):
        return "Reply(%r)" % self.text


class SMTPClient:
    """A raw SMTP client socket, created in the client namespace.

    Every read is bounded by `timeout`; a missing reply is an assertion error
    that says what was expected, never a hang.
    """

    def __init__(self, lab, dst, port=25, src=None, timeout=10.0, ns=None):
        fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
        self.dst, self.port = dst, port
        with netns(ns or lab.ns_cli):
            self.sock = socket.socket(fam, socket.SOCK_STREAM)
            try:
                self.sock.settimeout(timeout)
                if src:
                    self.sock.bind((src, 0))
                self.sock.connect((dst, port))
            except BaseException:
                self.sock.close()
                raise
        self.local = self.sock.getsockname()
        self.buf = b""
        self.eof = False
        self.transcript = []

    @property
    def local_port(self):
        return self.local[1]

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.transcript.append(("C", data))
        self.sock.sendall(data)

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError("no reply within %.0fs; transcript so far: %r"
                                 % (self.sock.gettimeout(), self.transcript)) from None
        if not d:
            self.eof = True
            raise EOFError("connection closed; unparsed %r; transcript %r" % (self.buf, self.transcript))
        self.buf += d

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def reply(self):
        lines = []
        while True:
            line = self.read_line()
            lines.append(line)
            if not re.match(r"^\d{3}[ -]?", line):
                raise AssertionError("not an SMTP reply line: %r (transcript %r)" % (line, self.transcript))
            if len(line) < 4 or line[3] == " ":
                break
        r = Reply(lines)
        self.transcript.append(("S", r.text))
        return r

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply()

    def greeting(self):
        return self.reply()

    def ehlo(self, name):
        return self.cmd("EHLO " + name)

    def wait_closed(self, timeout=10.0):
        """Read until the peer closes. Returns whatever arrived meanwhile."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        except ConnectionResetError:
            self.eof = True
        rest, self.buf = self.buf, b""
        return rest

    def quit(self):
        """QUIT, tolerating a session the proxy already closed. Returns the reply or None."""
        try:
            r = self.cmd("QUIT")
        except (EOFError, ConnectionError, BrokenPipeError):
            return None
        return r


# --- servers ------------------------------------------------------------------------

class RecorderServer:
    """Handle on recorder.py running in the server namespace."""

    def __init__(self, lab, name, addrs, extra_ehlo=(), tls=False, auth=None):
        self.lab = lab
        self.dir = lab.dir / name
        self.dir.mkdir()
        ready = self.dir / "ready"
        cmd = [PYTHON, str(HERE / "recorder.py"), "--dir", str(self.dir), "--ready-file", str(ready)]
        for a in addrs:
            cmd += ["--listen", a]
        for kw in extra_ehlo:
            cmd += ["--ehlo", kw]
        if tls:
            cert, key = lab.self_signed_cert()
            cmd += ["--tls-cert", cert, "--tls-key", key]
        if auth:
            cmd += ["--auth", "%s:%s" % auth]
        self.proc = lab.spawn(lab.ns_srv, cmd, name)
        wait_for(lambda: ready.exists() or self.proc.poll() is not None, 10, "recorder " + name)
        if self.proc.poll() is not None:
            raise RuntimeError("recorder %s exited: %s" % (name, lab.read(name + ".err")))

    def behave(self, **hooks):
        """Misbehave from the next EHLO / end of DATA on (see recorder.py):
        behave(ehlo="stall"), behave(data_end="stall"), behave(data_end=3.5); behave() to stop."""
        p, tmp = self.dir / "behave", self.dir / "behave.tmp"
        if not hooks:
            p.unlink(missing_ok=True)
            return
        tmp.write_text(json.dumps(hooks))
        os.rename(tmp, p)

    def events(self):
        p = self.dir / "events.jsonl"
        if not p.exists():
            return []
        out = []
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass   # a line still being written
        return out

    def conns_with_helo(self, helo):
        conns = []
        for e in self.events():
            if e["ev"] == "cmd":
                w = e["line"].rstrip("\r\n").split()
                if len(w) == 2 and w[0].upper() in ("EHLO", "HELO") and w[1] == helo:
                    if e["conn"] not in conns:
                        conns.append(e["conn"])
        return conns

    def closed(self, conn):
        return any(e["ev"] == "close" and e["conn"] == conn for e in self.events())

    def commands(self, conn):
        return [e["line"].rstrip("\r\n") for e in self.events() if e["ev"] == "cmd" and e["conn"] == conn]

    def raw(self, conn):
        p = self.dir / ("conn-%d.raw" % conn)
        return p.read_bytes() if p.exists() else b""

    def peer(self, conn):
        for e in self.events():
            if e["ev"] == "connect" and e["conn"] == conn:
                return e["peer"]
        return None

    def messages(self, conn=None):
        out = []
        for e in self.events():
            if e["ev"] == "message" and (conn is None or e["conn"] == conn):
                m = e["msg"]
                meta = json.loads((self.dir / ("msg-%d.json" % m)).read_text())
                meta["wire"] = (self.dir / ("msg-%d.wire" % m)).read_bytes()
                meta["content"] = (self.dir / ("msg-%d.eml" % m)).read_bytes()
                out.append(meta)
        return out

    def session(self, helo, timeout=10.0, expect=True):
        """Wait until every upstream connection that said EHLO/HELO `helo` is closed;
        return their ids. With expect=False, no such connection is not an error."""
        if expect:
            wait_for(lambda: self.conns_with_helo(helo), timeout, "server to see EHLO/HELO %s" % helo)
        conns = self.conns_with_helo(helo)
        for c in conns:
            wait_for(lambda: self.closed(c), timeout,
                     "server connection %d (helo %s) to be closed by smtpwalld" % (c, helo))
        return conns


class ScriptConn:
    """One connection to a ScriptServer, as its script drives it. Every read is bounded."""

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.sock.settimeout(10.0)
        self.buf = b""
        self.received = bytearray()    # every byte the peer (smtpwalld) sent
        self.eof = False               # the peer closed (FIN or RST)
        self.error = None              # what the script raised, if anything
        self.done = threading.Event()  # the script returned

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            raise EOFError("peer closed; unparsed %r" % self.buf)
        self.buf += d
        self.received += d

    def read_until(self, marker):
        """Everything up to and including `marker`."""
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_line(self):
        return self.read_until(b"\r\n")[:-2]

    def wait_eof(self):
        """Read until the peer closes; True if it did within the socket timeout."""
        try:
            while True:
                self._fill()
        except EOFError:
            return True
        except socket.timeout:
            return False

    def reset(self):
        """Close with an RST (SO_LINGER 0) instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self):
        self.sock.close()


class ScriptServer:
    """A raw-socket server in the server namespace whose every connection runs
    `script(conn)` (a ScriptConn) in a thread of the test process: for servers
    that close, reset or stall where no real MTA would. A script's exception is
    kept on its ScriptConn (.error), never lost. Stopped by the test or the lab."""

    def __init__(self, lab, script, addr=SCRIPT4, port=25):
        self.script = script
        self.conns = []
        self._stop = threading.Event()
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        with netns(lab.ns_srv):
            self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        lab.cleanups.append(self.stop)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()

    def _serve(self):
        while not self._stop.is_set():
            try:
                s, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c = ScriptConn(s, peer)
            self.conns.append(c)
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            self.script(c)
        except Exception as e:   # kept for the test to report
            c.error = e
        finally:
            c.done.set()

    def conn(self, n=0, timeout=10.0):
        """The n-th connection (0-based), once its script has returned."""
        wait_for(lambda: len(self.conns) > n, timeout, "connection %d to the scripted server" % n)
        c = self.conns[n]
        if not c.done.wait(timeout):
            raise AssertionError("scripted server: script of connection %d still running after %.0fs"
                                 % (n, timeout))
        return c

    def stop(self):
        if self._stop.is_set():
            return
        self._stop.set()
        self.thread.join(5)
        self.sock.close()
        for c in self.conns:
            c.close()


class SinkServer:
    """Postfix smtp-sink dumping each message to a file (volume, XCLIENT/XFORWARD advertiser)."""

    def __init__(self, lab, name, addr):
        self.dir = lab.dir / name
        self.dir.mkdir()
        shutil.chown(self.dir, "nobody")
        self.proc = lab.spawn(lab.ns_srv, ["smtp-sink", "-u", "nobody", "-h", "sink.example.net",
                                           "-d", str(self.dir) + "/%M.", addr + ":25", "256"], name)
        wait_for(lambda: listening(self.proc.pid, 25) or self.proc.poll() is not None, 10, "smtp-sink listening")
        if self.proc.poll() is not None:
            raise RuntimeError("smtp-sink exited: %s" % lab.read(name + ".err"))

    def message_files(self):
        return sorted(p for p in self.dir.iterdir() if p.is_file())


class PostfixServer:
    """A real Postfix 3.7 instance: a lenient server (bare LF ends a line, smtpd_forbid_bare_newline=no).

    Everything it accepts is put on hold (no delivery, no DNS); a "message" is a
    queue file, read back with postcat.
    """

    QUEUES = ("incoming", "active", "deferred", "hold", "corrupt")

    def __init__(self, lab, name, extra_main=()):
        """`extra_main`: more main.cf lines ("name = value"), after the defaults (they win)."""
        self.lab = lab
        d = lab.dir / name
        self.etc, self.queue, self.data = d / "etc", d / "queue", d / "data"
        for p in (self.etc, self.queue, self.data):
            p.mkdir(parents=True)
        shutil.chown(self.data, "postfix")
        self.maillog = d / "maillog"
        (self.etc / "main.cf").write_text("\n".join([
            "compatibility_level = 3.6",
            "queue_directory = %s" % self.queue,
            "data_directory = %s" % self.data,
            "maillog_file = %s" % self.maillog,
            "maillog_file_prefixes = %s" % d,
            "myhostname = pf.example.net",
            "mydomain = example.net",
            "mydestination =",
            "inet_protocols = all",
            "mynetworks = 0.0.0.0/0 [::]/0",
            "smtpd_relay_restrictions = permit_mynetworks, reject",
            "smtpd_client_restrictions = check_client_access static:HOLD",
            "smtpd_peername_lookup = no",
            "smtpd_forbid_bare_newline = no",
            "smtputf8_enable = no",
            "alias_maps =",
            "alias_database =",
            "local_recipient_maps =",
            "biff = no",
        ] + list(extra_main) + [""]))
        svc = []
        for addr in (PF4 + ":25", PF4 + ":%d" % PF_DIRECT_PORT, "[%s]:25" % PF6):
            svc.append("%-28s inet n - n - - smtpd" % addr)
        svc += ["cleanup unix n - n - 0 cleanup",
                "rewrite unix - - n - - trivial-rewrite",
                "anvil unix - - n - 1 anvil",
                "postlog unix-dgram n - n - 1 postlogd", ""]
        (self.etc / "master.cf").write_text("\n".join(svc))
        r = lab.sh(lab.ns_srv, "postfix", "-c", str(self.etc), "start", check=False)
        pidfile = self.queue / "pid" / "master.pid"
        try:
            wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "postfix master.pid")
            self.pid = int(pidfile.read_text().strip())
            wait_for(lambda: len(listening(self.pid, 25)) >= 2, 10, "postfix listening on :25")
        except AssertionError:
            raise RuntimeError("postfix did not start (rc %s): %s %s" % (
                r.returncode, r.stderr, self.maillog.read_text() if self.maillog.exists() else ""))
        lab.cleanups.append(self.stop)

    def stop(self):
        self.lab.sh(self.lab.ns_srv, "postfix", "-c", str(self.etc), "stop", check=False)
        try:
            wait_for(lambda: not os.path.exists("/proc/%d" % self.pid), 10, "postfix master to exit")
        except AssertionError:
            os.kill(self.pid, signal.SIGKILL)

    def queue_files(self):
        out = set()
        for q in self.QUEUES:
            for root, _, files in os.walk(self.queue / q):
                out.update(os.path.join(root, f) for f in files)
        return out

    def disconnects(self):
        if not self.maillog.exists():
            return 0
        return len(re.findall(r"postfix/smtpd\[\d+\]: disconnect from", self.maillog.read_text()))

    def read(self, path):
        """Envelope and content of a queue file: {'sender', 'recipients', 'body_lines'}."""
        env = self.lab.sh(None, "postcat", "-c", str(self.etc), "-e", path).stdout
        body = subprocess.run(["postcat", "-c", str(self.etc), "-hb", path],
                              capture_output=True, timeout=10).stdout
        sender = re.findall(r"^sender: (.*)$", env, re.M)
        rcpts = re.findall(r"^recipient: (.*)$", env, re.M)
        lines = [l for l in body.split(b"\n") if not l.startswith(b"*** ")]
        return {"path": path, "sender": sender[0] if sender else None, "recipients": rcpts,
                "lines": lines}

    def wait_settled(self, before_disconnects, sessions=1, timeout=10.0):
        """Wait until `sessions` more smtpd sessions ended and no message is half-written."""
        wait_for(lambda: self.disconnects() >= before_disconnects + sessions, timeout,
                 "postfix to log the end of %d session(s)" % sessions)
        wait_for(self._incoming_empty, timeout, "postfix incoming queue to drain")

    def _incoming_empty(self):
        return not any(files for _, _, files in os.walk(self.queue / "incoming"))


# --- smtpwalld ---------------------------------------------------------------------

KV_RE = re.compile(r'([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')

# SMTPWALL_VALGRIND=1: every smtpwalld runs under memcheck (a build without
# -fsanitize: make check-valgrind). valgrind runs the daemon in its own PID (ip
# netns exec execs it), writes its reports to the daemon's stderr (the log) and
# exits 99 on an error or a definite leak; it is slow to start and to exit.
VALGRIND = os.environ.get("SMTPWALL_VALGRIND") == "1"
VALGRIND_CMD = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
                "--error-exitcode=99", "--track-fds=no", "-q"]
VALGRIND_SLOW = 6   # readiness and exit waits are this many times longer
VALGRIND_RE = re.compile(r"^==\d+== (?!Warning:)\S")   # the first line of each report


def parse_kv(line):
    return {k: (v[1:-1] if v.startswith('"') else v) for k, v in KV_RE.findall(line)}


class Proxy:
    """One smtpwalld run in the gateway namespace, with its config, rules and log.

    With `again` (a stopped or killed Proxy), a new run on that run's directory,
    configuration and rules file exactly as they are on disk (its own log)."""

    def __init__(self, lab, config, rules, name, again=None, run_as=None, prefix=None):
        self.lab = lab
        self.run_as = run_as if again is None else again.run_as
        self.prefix = list(prefix or ()) if again is None else again.prefix
        self.binary = daemon_path()
        if again is None:
            self.run = 0
            self.dir = lab.dir / name
            self.dir.mkdir()
        else:
            self.run = again.run + 1
            self.dir = again.dir
        suffix = ".%d" % self.run if self.run else ""
        self.conf_path = self.dir / "smtpwall.conf"
        self.rules_path = self.dir / "rules"
        self.log_path = self.dir / ("smtpwalld%s.log" % suffix)
        self.notify_path = str(self.dir / ("notify%s.sock" % suffix))
        if again is None:
            cfg = dict(BASE_CONFIG)
            cfg["rules_file"] = str(self.rules_path)
            cfg["control_socket"] = str(self.dir / "control.sock")
            cfg["capture_dir"] = str(self.dir / "captures")
            cfg.update(config)
            self.conf_path.write_text("".join("%s = %s\n" % (k, v) for k, v in cfg.items() if v is not None))
            self.rules_path.write_text(rules)
        else:
            cfg = dict(again.config)
        self.config = cfg
        self.socket_path = Path(cfg["control_socket"])
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.setblocking(False)
        self.notified = []
        self.notes = []
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        self.log_f = open(self.log_path, "wb")
        cmd = [str(self.binary), "-c", str(self.conf_path), "-d"]
        if VALGRIND:
            cmd = VALGRIND_CMD + cmd
        if self.run_as:
            # (user, group, capabilities): an unprivileged user holding only these
            # capabilities, as systemd's User= and AmbientCapabilities= give it.
            user, group, caps = self.run_as
            pw = pwd.getpwnam(user)
            for path in (self.dir, self.rules_path, self.dir / "captures"):
                if path.exists():
                    os.chown(path, pw.pw_uid, pw.pw_gid)
            os.chmod(self.notify_path, 0o777)
            c = "".join(",+" + x for x in caps)
            cmd = ["setpriv", "--reuid=" + user, "--regid=" + group, "--clear-groups",
                   "--inh-caps=-all" + c, "--ambient-caps=-all" + c, "--bounding-set=-all" + c,
                   "--"] + cmd
        if self.prefix:
            # A wrapper that execs the daemon (e.g. prlimit --nofile=64:64 --), so
            # that self.proc.pid stays smtpwalld's own.
            cmd = [str(a) for a in self.prefix] + cmd
        self.proc = lab.spawn(lab.ns_gw, cmd, name, stderr=self.log_f, env=env)
        try:
            wait_for(lambda: self.proc.poll() is not None or self._ready(),
                     10 * (VALGRIND_SLOW if VALGRIND else 1),
                     "smtpwalld to listen on :%d (v4 and v6)" % LISTEN_PORT)
        except AssertionError as e:
            self.stop()
            raise AssertionError("%s; log:\n%s" % (e, self.log_tail()))
        if self.proc.poll() is not None:
            raise AssertionError("smtpwalld exited with %s at start; log:\n%s"
                                 % (self.proc.returncode, self.log_tail()))

    def _listening(self):
        fams = {f for f, _ in listening(self.proc.pid, LISTEN_PORT)}
        return {"tcp", "tcp6"} <= fams

    def _ready(self):
        # READY=1 comes once the listeners, the control socket and the worker
        # threads are up; the gap after listening is wide under valgrind or TSan.
        return self._listening() and any("READY=1" in n for n in self.notifications())

    def alive(self):
        return self.proc.poll() is None

    def notifications(self):
        """Every sd_notify datagram received so far (NOTIFY_SOCKET is ours)."""
        while True:
            try:
                self.notified.append(self.notify.recv(4096).decode("latin-1"))
            except (BlockingIOError, OSError):
                return list(self.notified)

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit status."""
        if VALGRIND:
            timeout *= VALGRIND_SLOW   # the leak check runs at exit
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.notes.append("did not exit within %.0fs of SIGTERM; killed" % timeout)
                self.proc.kill()
                self.proc.wait(5)
        self.log_f.close()
        self.notify.close()
        return self.proc.returncode

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def sanitizer_reports(self):
        t = self.log_text()
        return [l for l in t.splitlines() if "AddressSanitizer" in l or "runtime error:" in l or "ThreadSanitizer" in l
                or "LeakSanitizer" in l or (VALGRIND and VALGRIND_RE.match(l))]

    def lines(self):
        return self.log_text().splitlines()

    def summary(self, client_port, timeout=10.0):
        """The session summary line of the session whose client used `client_port`."""
        def find():
            for line in self.lines():
                kv = parse_kv(line)
                if "result" in kv and "session" in kv and kv.get("client", "").endswith(":%d" % client_port):
                    kv["_line"] = line
                    return kv
            return None
        try:
            return wait_for(find, timeout, "session summary line (client port %d)" % client_port)
        except AssertionError as e:
            raise AssertionError("%s; log tail:\n%s" % (e, self.log_tail()))

    def session_lines(self, session_id):
        return [l for l in self.lines() if parse_kv(l).get("session") == session_id]

    def ctl(self, *args, user=None, socket_path=None, timeout=30):
        """Run `smtpwallctl -s SOCKET ARGS...` (as root, or as `user`: a name, run
        with setpriv and that user's groups). Returns the CompletedProcess (text)."""
        cmd = [str(ctl_path()), "-s", str(socket_path or self.socket_path)] + [str(a) for a in args]
        if user is not None:
            cmd = ["setpriv", "--reuid=" + user, "--regid=" + str(pwd.getpwnam(user).pw_gid),
                   "--init-groups"] + cmd
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


# --- the lab ------------------------------------------------------------------------------

class Lab:
    _seq = 0

    def __init__(self):
        Lab._seq += 1
        prefix = "swt%d%d-" % (os.getpid(), Lab._seq)
        if len(prefix) > 12:   # veth names are at most 15 characters
            prefix = "swt%x%d-" % (os.getpid(), Lab._seq)
        self.prefix = prefix
        self.ns_cli, self.ns_gw, self.ns_srv = prefix + "cli", prefix + "gw", prefix + "srv"
        self.dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        os.chmod(self.dir, 0o755)   # postfix and nobody must reach their subdirectories
        self.namespaces = []
        self.procs = []
        self.cleanups = []
        self.proxy = None
        self.redirect_backend = None
        self._cert = None

    # running things ---------------------------------------------------------------

    def sh(self, ns, *cmd, check=True, timeout=30, input=None):
        full = (["ip", "netns", "exec", ns] if ns else []) + [str(c) for c in cmd]
        r = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise RuntimeError("%s -> %d: %s %s" % (" ".join(full), r.returncode, r.stdout, r.stderr))
        return r

    def spawn(self, ns, cmd, name, stderr=None, env=None):
        out = open(self.dir / (name + ".out"), "wb")
        err = stderr or open(self.dir / (name + ".err"), "wb")
        p = subprocess.Popen(["ip", "netns", "exec", ns] + [str(c) for c in cmd], stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err, env=env, start_new_session=True)
        self.procs.append(p)
        return p

    def read(self, name):
        p = self.dir / name
        return p.read_text(errors="replace") if p.exists() else ""

    def self_signed_cert(self):
        if self._cert is None:
            cert, key = str(self.dir / "cert.pem"), str(self.dir / "key.pem")
            self.sh(None, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-subj", "/CN=mx.example.net", "-days", "2", "-keyout", key, "-out", cert)
            self._cert = (cert, key)
        return self._cert

    # building -------------------------------------------------------------------------

    def setup(self):
        for ns in (self.ns_cli, self.ns_gw, self.ns_srv):
            self.sh(None, "ip", "netns", "add", ns)
            self.namespaces.append(ns)
            self.sh(ns, "ip", "link", "set", "lo", "up")
        p = self.prefix
        self.sh(None, "ip", "link", "add", p + "c", "netns", self.ns_cli, "type", "veth",
                "peer", "name", p + "gc", "netns", self.ns_gw)
        self.sh(None, "ip", "link", "add", p + "s", "netns", self.ns_srv, "type", "veth",
                "peer", "name", p + "gs", "netns", self.ns_gw)
        addrs = {
            (self.ns_cli, p + "c"): [CLIENT4 + "/24", TRUSTED4 + "/24", CLIENT6 + "/64", "2001:db8:c::50/64"],
            (self.ns_gw, p + "gc"): [GW_C4 + "/24", GW_C6 + "/64"],
            (self.ns_gw, p + "gs"): [GW_S4 + "/24", GW_S6 + "/64"],
            (self.ns_srv, p + "s"): [a + "/24" for a in (REC4, SINK4, PF4, CLOSED4, SCRIPT4)]
                                    + [a + "/64" for a in (REC6, SINK6, PF6, CLOSED6, SCRIPT6)],
        }
        for (ns, dev), lst in addrs.items():
            for a in lst:
                extra = ["nodad"] if ":" in a else []
                self.sh(ns, "ip", "addr", "add", a, "dev", dev, *extra)
            self.sh(ns, "ip", "link", "set", dev, "up")
        self.sh(self.ns_cli, "ip", "route", "add", "default", "via", GW_C4)
        self.sh(self.ns_cli, "ip", "-6", "route", "add", "default", "via", GW_C6)
        self.sh(self.ns_srv, "ip", "route", "add", "default", "via", GW_S4)
        self.sh(self.ns_srv, "ip", "-6", "route", "add", "default", "via", GW_S6)
        self.sh(self.ns_gw, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1")
        return self

    def redirect(self, backend):
        """Install the port-25 REDIRECT with `backend` ('nft', 'iptables') or remove it (None)."""
        if self.redirect_backend == "nft":
            self.sh(self.ns_gw, "nft", "delete", "table", "ip", "swt_nat")
            self.sh(self.ns_gw, "nft", "delete", "table", "ip6", "swt_nat")
        elif self.redirect_backend == "iptables":
            for tool in ("iptables", "ip6tables"):
                self.sh(self.ns_gw, tool, "-t", "nat", "-D", "PREROUTING", "-p", "tcp", "--dport", "25",
                        "-j", "REDIRECT", "--to-ports", str(LISTEN_PORT))
        self.redirect_backend = None
        if backend == "nft":
            rules = ""
            for fam in ("ip", "ip6"):
                rules += ("table %s swt_nat {\n chain prerouting {\n"
                          "  type nat hook prerouting priority dstnat; policy accept;\n"
                          "  tcp dport 25 redirect to :%d\n }\n}\n" % (fam, LISTEN_PORT))
            self.sh(self.ns_gw, "nft", "-f", "-", input=rules)
        elif backend == "iptables":
            for tool in ("iptables", "ip6tables"):
                self.sh(self.ns_gw, tool, "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "25",
                        "-j", "REDIRECT", "--to-ports", str(LISTEN_PORT))
        elif backend is not None:
            raise ValueError(backend)
        self.redirect_backend = backend

    def firewall(self, verb, conf_path, *extra, check=True):
        """Run `smtpwall-firewall VERB -c CONF ...` in the gateway (the real tool, on
        the daemon's own configuration file). After an `up`, teardown runs `down`."""
        r = self.sh(self.ns_gw, build_dir() / "smtpwall-firewall", verb, "-c", conf_path, *extra,
                    check=check)
        if verb == "up" and r.returncode == 0 and self._firewall_down not in self.cleanups:
            self.cleanups.append(self._firewall_down)
        return r

    def _firewall_down(self):
        self.sh(self.ns_gw, build_dir() / "smtpwall-firewall", "down", "-c", "/dev/null", check=False)

    def queue_stats(self):
        """/proc/net/netfilter/nfnetlink_queue of the gateway: {queue: {...}} with the
        kernel's own counters (peer_portid 0 = nobody bound)."""
        out = {}
        text = self.sh(self.ns_gw, "cat", "/proc/net/netfilter/nfnetlink_queue").stdout
        for line in text.splitlines():
            f = [int(x) for x in line.split()]
            out[f[0]] = {"portid": f[1], "waiting": f[2], "copy_mode": f[3], "copy_range": f[4],
                         "queue_dropped": f[5], "user_dropped": f[6], "id_sequence": f[7]}
        return out

    @contextlib.contextmanager
    def blackhole(self, addr):
        """While in the block, the server namespace drops every packet to `addr` port 25:
        a connect() there gets no answer at all (no RST), as with a dead host."""
        fam = "ip6" if ":" in addr else "ip"
        self.sh(self.ns_srv, "nft", "-f", "-", input=(
            "table inet swt_blackhole {\n chain input {\n"
            "  type filter hook input priority filter; policy accept;\n"
            "  %s daddr %s tcp dport 25 drop\n }\n}\n" % (fam, addr)))
        try:
            yield
        finally:
            self.sh(self.ns_srv, "nft", "delete", "table", "inet", "swt_blackhole")

    def script_server(self, script, addr=SCRIPT4):
        """A ScriptServer on `addr`:25 running `script` for each connection."""
        return ScriptServer(self, script, addr)

    def start_recorder(self, name="recorder", **kw):
        return RecorderServer(self, name, [REC4, REC6], **kw)

    def start_sink(self, name="sink"):
        return SinkServer(self, name, SINK4)

    def start_postfix(self, name="postfix"):
        return PostfixServer(self, name)

    _proxy_seq = 0

    def start_proxy(self, config=None, rules=BASE_RULES, run_as=None, prefix=None):
        """(Re)start smtpwalld with BASE_CONFIG updated by `config`. Only one runs at a time:
        two daemons on one SO_REUSEPORT port would share the connections. run_as:
        (user, group, [capabilities]) to run it unprivileged, through setpriv. prefix:
        argv of a wrapper that execs the daemon, outermost (e.g. ["prlimit",
        "--nofile=64:64", "--"]); kept by restart_proxy."""
        self.stop_proxy()
        Lab._proxy_seq += 1
        self.proxy = Proxy(self, config or {}, rules, "smtpwalld-%d" % Lab._proxy_seq, run_as=run_as,
                           prefix=prefix)
        return self.proxy

    def restart_proxy(self, check=True):
        """Stop smtpwalld (if it still runs; see stop_proxy) and start it again on the
        same configuration and rules files, as they are on disk now."""
        old = self.stop_proxy(check=check)
        if old is None:
            raise RuntimeError("restart_proxy: no smtpwalld was started")
        Lab._proxy_seq += 1
        self.proxy = Proxy(self, None, None, old.dir.name, again=old)
        return self.proxy

    def stop_proxy(self, check=True):
        """Stop smtpwalld; with check, a non-zero exit after SIGTERM, a SIGKILL or a
        sanitizer report (LeakSanitizer speaks at exit) is an assertion error."""
        if self.proxy is None:
            return None
        p, self.proxy = self.proxy, None
        was_alive = p.alive()
        rc = p.stop()
        problems = list(p.notes) + p.sanitizer_reports()
        if was_alive and rc != 0:
            problems.append("exit status %s after SIGTERM (expected 0)" % rc)
        if check and problems:
            raise AssertionError("smtpwalld (%s): %s\nlog tail:\n%s" % (p.dir.name, "; ".join(problems), p.log_tail(40)))
        return p

    # tearing down ------------------------------------------------------------------

    def teardown(self):
        errors = []
        try:
            self.stop_proxy()
        except Exception as e:   # keep going: the namespaces must go
            errors.append(e)
            self.proxy = None
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:
                errors.append(e)
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        # Whatever still runs inside our own namespaces was started by us
        # (children of the daemons above); end it by PID.
        for ns in self.namespaces:
            r = self.sh(None, "ip", "netns", "pids", ns, check=False)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for ns in self.namespaces:
            self.sh(None, "ip", "netns", "del", ns, check=False)
        self.namespaces = []
        if not os.environ.get("SMTPWALL_KEEP_LAB"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise errors[0]

#!/usr/bin/python3
"""Recording SMTP server for the integration lab (aiosmtpd, Debian python3-aiosmtpd).

Runs inside the lab's server namespace as a subprocess of the test. It owns one
directory and writes there, for every connection N:

  commands.log   the same events as text, for people (the demo shows it)
  events.jsonl   one JSON object a line, flushed as it happens:
                 {"ev": "connect", "conn": N, "peer": [ip, port]}
                 {"ev": "cmd", "conn": N, "line": "<command line, latin-1>"}
                 {"ev": "close", "conn": N}
                 {"ev": "message", "conn": N, "msg": M}
  conn-N.raw     every byte received on the connection, in order
  msg-M.json     envelope: conn, peer, helo, mail_from, mail_options, rcpt_tos, rcpt_options,
                 tls (the session had done STARTTLS), authenticated (an AUTH succeeded)
  msg-M.wire     the DATA lines exactly as received (dot-stuffed, CRLF), without the final ".\\r\\n"
  msg-M.eml      the content after removing dot-stuffing (what a mailbox would get)

Message files are written before the "message" event and before the 250 reply, so
a test that saw the 250 (or the event) finds complete files. It never touches
anything outside its directory and never resolves names (hostname is given).

Misbehaviour on demand (timeout tests): the file `behave` in the directory, JSON,
is read at each EHLO/HELO and at each end of DATA. {"ehlo": "stall"} never answers
the EHLO/HELO; {"data_end": "stall"} never answers the end of DATA and stores
nothing; {"data_end": 3.5} answers the end of DATA 3.5 s late. A stalled hook ends
only when the connection does, and a message whose 250 was never sent is never
stored. No file: a well-behaved server.

--auth USER:PASSWORD offers AUTH PLAIN LOGIN, even without TLS, and accepts exactly
that pair (535 otherwise).
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult


class Recorder:
    """State shared by every connection: the output directory and counters."""

    def __init__(self, outdir, extra_ehlo):
        self.outdir = outdir
        self.extra_ehlo = extra_ehlo
        self.conn_seq = 0
        self.msg_seq = 0
        self.events = open(os.path.join(outdir, "events.jsonl"), "a", buffering=1)
        self.human = open(os.path.join(outdir, "commands.log"), "a", buffering=1)

    def event(self, **kw):
        self.events.write(json.dumps(kw) + "\n")
        self.events.flush()
        # The same, for people (scripts/demo.sh shows it as "the server's log").
        if kw["ev"] == "cmd":
            self.human.write("conn %d: %s\n" % (kw["conn"], kw["line"].rstrip("\r\n")))
        elif kw["ev"] == "connect":
            self.human.write("conn %d: connection from %s\n" % (kw["conn"], kw["peer"][0] if kw["peer"] else "?"))
        elif kw["ev"] == "message":
            self.human.write("conn %d: message stored as msg-%d\n" % (kw["conn"], kw["msg"]))
        elif kw["ev"] == "close":
            self.human.write("conn %d: closed\n" % kw["conn"])
        self.human.flush()

    def behaviour(self, hook):
        """What the `behave` file asks of this hook: None, "stall" or a delay in seconds."""
        try:
            with open(os.path.join(self.outdir, "behave")) as f:
                return json.load(f).get(hook)
        except (OSError, ValueError):
            return None

    async def misbehave(self, hook):
        b = self.behaviour(hook)
        if b == "stall":
            # Cancelled by aiosmtpd when the connection ends; bounded all the same.
            await asyncio.sleep(3600)
        elif isinstance(b, (int, float)):
            await asyncio.sleep(b)

    def write_atomic(self, name, data):
        path = os.path.join(self.outdir, name)
        tmp = path + ".tmp"
        mode = "wb" if isinstance(data, (bytes, bytearray)) else "w"
        with open(tmp, mode) as f:
            f.write(data)
        os.rename(tmp, path)

    # aiosmtpd handler hooks -------------------------------------------------

    async def handle_HELO(self, server, session, envelope, hostname):
        await self.misbehave("ehlo")
        session.host_name = hostname
        return "250 %s" % server.hostname

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        await self.misbehave("ehlo")
        session.host_name = hostname
        # Advertise what the test asked for (PIPELINING, CHUNKING, XCLIENT...)
        # before the final line, so smtpwall sees a server that offers them.
        out = []
        for r in responses[:-1]:
            out.append(r)
        last = responses[-1]
        for kw in self.extra_ehlo:
            out.append("250-" + kw)
        out.append(last)
        return out

    async def handle_DATA(self, server, session, envelope):
        await self.misbehave("data_end")
        self.msg_seq += 1
        m = self.msg_seq
        conn = server.rec_conn
        meta = {
            "conn": conn,
            "peer": list(session.peer[:2]) if session.peer else None,
            "helo": session.host_name,
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "rcpt_options": envelope.rcpt_options,
            "tls": session.ssl is not None,
            "authenticated": bool(getattr(session, "authenticated", False)),
        }
        self.write_atomic("msg-%d.wire" % m, bytes(server.rec_wire))
        self.write_atomic("msg-%d.eml" % m, envelope.original_content)
        self.write_atomic("msg-%d.json" % m, json.dumps(meta))
        self.event(ev="message", conn=conn, msg=m)
        return "250 2.0.0 Ok: recorded as msg-%d" % m


class RecordingReader(asyncio.StreamReader):
    """The aiosmtpd stream reader, watched: raw bytes and command lines are logged.

    aiosmtpd reads command lines with readuntil() and DATA lines with
    readuntil(b'\\r\\n'); that difference tells commands from content.
    """

    def feed_data(self, data):
        self.rec_server.rec_raw.write(data)
        self.rec_server.rec_raw.flush()
        super().feed_data(data)

    async def readuntil(self, separator=None):
        srv = self.rec_server
        if separator is None:
            line = await super().readuntil()
            srv.rec_wire = bytearray()
            srv.rec.event(ev="cmd", conn=srv.rec_conn, line=line.decode("latin-1"))
            return line
        line = await super().readuntil(separator)
        if line != b".\r\n":
            srv.rec_wire += line
        return line


class RecordingSMTP(SMTP):
    # Long lines are part of what the tests send; refusing them is not this
    # server's job (a lenient MTA accepts them too).
    line_length_limit = 64 * 1024

    def __init__(self, rec, **kw):
        super().__init__(rec, **kw)
        self.rec = rec
        self.rec_conn = None
        self.rec_raw = None
        self.rec_wire = bytearray()

    def connection_made(self, transport):
        if self.rec_conn is None:
            self.rec.conn_seq += 1
            self.rec_conn = self.rec.conn_seq
            self.rec_raw = open(os.path.join(self.rec.outdir, "conn-%d.raw" % self.rec_conn), "ab")
            peer = transport.get_extra_info("peername")
            self.rec.event(ev="connect", conn=self.rec_conn, peer=list(peer[:2]) if peer else None)
        super().connection_made(transport)

    def _client_connected_cb(self, reader, writer):
        reader.__class__ = RecordingReader
        reader.rec_server = self
        super()._client_connected_cb(reader, writer)

    def connection_lost(self, exc):
        super().connection_lost(exc)
        if self.rec_raw is not None:
            self.rec_raw.close()
            self.rec_raw = None
            self.rec.event(ev="close", conn=self.rec_conn)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--listen", action="append", required=True, help="address to bind (repeat)")
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--hostname", default="mx.example.net")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--ehlo", action="append", default=[], help="extra EHLO keyword to advertise")
    ap.add_argument("--auth", metavar="USER:PASSWORD", help="offer AUTH PLAIN LOGIN, accept this pair")
    ap.add_argument("--ready-file", required=True)
    args = ap.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    rec = Recorder(args.dir, args.ehlo)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    loop = asyncio.get_running_loop()
    auth = {}
    if args.auth:
        user, _, password = args.auth.partition(":")

        def authenticator(server, session, envelope, mechanism, data):
            ok = (getattr(data, "login", None) == user.encode()
                  and getattr(data, "password", None) == password.encode())
            return AuthResult(success=ok, handled=False)   # handled=False: aiosmtpd says 535

        # Plaintext AUTH: smtpwalld strips STARTTLS by default, and the tests
        # must see the AUTH exchange pass through it.
        auth = {"authenticator": authenticator, "auth_require_tls": False}

    def factory():
        return RecordingSMTP(rec, hostname=args.hostname, tls_context=tls,
                             data_size_limit=64 * 1024 * 1024, enable_SMTPUTF8=True,
                             decode_data=False, loop=loop, **auth)

    servers = []
    for addr in args.listen:
        servers.append(await loop.create_server(factory, host=addr, port=args.port,
                                                reuse_address=True))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    with open(args.ready_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(args.ready_file + ".tmp", args.ready_file)
    await stop.wait()
    for s in servers:
        s.close()
    rec.events.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)

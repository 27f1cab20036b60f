/*
 * fuzz_smtp_session: libFuzzer entry point driving one SMTP session state
 * machine (proxy/smtp/fsm.h) with both peers' bytes, as proxy/session.c
 * drives it, and checking what the server and the client receive.
 *
 * Input framing: byte 0 is the configuration (bit 0 bare_lf = normalize,
 * bit 1 STARTTLS allowed, bit 2 trusted client 192.0.2.15 instead of
 * 203.0.113.10, bit 3 auth_relay = no, bit 4 xclient = on). Then chunks, each one header byte h:
 * bit 7 the direction (0 client, 1 server), bits 0-6 the length L of the
 * bytes that follow; L >= 124 is an event instead, with no bytes: 124 client
 * FIN, 125 client idle timeout, 126 server failure 451, 127 server FIN.
 * The fixture is the one of tests/unit/test_smtp_fsm.c: trusted_networks
 * 192.0.2.0/24, local_domains example.net and .example.org, rules "block
 * sender *@spam.example" and "allow relay 203.0.113.7/32 to
 * sms.carrier.example", max_message_size 1000, max_recipients 3,
 * max_line_length 512, the default commands.
 *
 * Invariants (abort() on violation, so libFuzzer keeps the input):
 *  - the FSM never consumes more than it was given, and its FIFO stays
 *    consistent (f->local holds exactly the LOCAL entries' replies);
 *  - the mode changes to DATA, AUTH or RAW only while a server reply is
 *    being read, never on the client's bytes alone, and after DATA, AUTH,
 *    STARTTLS or an AUTH answer nothing more is forwarded before a final
 *    reply line from the server (or its failure);
 *  - outside DATA and RAW, the server receives only whole CRLF lines that
 *    the client sent as whole lines, in order ("*" cancelling an AUTH
 *    excepted), and nothing at all after QUIT; in command mode each is a
 *    listed verb (never XCLIENT/XFORWARD) that parses cleanly, and a MAIL or
 *    RCPT that the policy (rules_eval_sender/rules_eval_rcpt) accepts;
 *    with xclient = on, smtpwall's own lines are allowed on top: one EHLO
 *    probe first (the verb EHLO with the arguments of a whole HELO/EHLO
 *    line the client sent), then at most one XCLIENT (printable, at most
 *    512 octets);
 *  - a message the server can see the end of has only CRLF line endings and
 *    no NUL, holds one end (its last five bytes), and in reject mode is no
 *    larger than max_message_size; after ABORT_SERVER nothing more is
 *    forwarded, and what arrived of the aborted message holds no end of data
 *    of any kind (<CR|LF> "." <CR|LF>), which a lenient server would take;
 *  - outside RAW, the client receives only reply lines ("DDD", SP or '-',
 *    CRLF).
 * Set FUZZ_SMTP_SESSION_NO_DOT_CHECK=1 to skip the last part of the message
 * check (to look past a known failure).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxy/buf.h"
#include "proxy/smtp/fsm.h"
#include "rules/rules.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZS_MAX		(4u * 1024 * 1024)
#define FZS_MARKS	256
#define FZS_DRAINS	256
#define FZS_RULES	"block sender *@spam.example\n" \
			"allow relay 203.0.113.7/32 to sms.carrier.example\n"

static const char fzs_commands[][16] = {
	"HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "HELP",
	"VRFY", "STARTTLS", "AUTH",
};

/* Where, in an output buffer of this call, the state changed. */
struct fzs_mark {
	size_t		 srv, cli;
	enum smtp_state	 state;
};

struct fzs {
	struct smtp_fsm		 f;
	struct smtp_fsm_conf	 conf;
	struct rules_policy	 policy;
	struct sockaddr_storage	 addr;
	struct buf		 to_client, to_server, cin, sin;
	int			 in_server_call;
	int			 awaiting;	/* a DATA, AUTH, STARTTLS or AUTH answer awaits its reply */
	int			 aborted;
	int			 client_eof, server_eof;

	/* the state changes of the current call */
	struct fzs_mark		 marks[FZS_MARKS];
	unsigned		 nmarks;
	enum smtp_state		 call_state;

	/* the client's stream, to match forwarded lines */
	struct buf		 cstream;
	size_t			 cpos;
	size_t			 drains[FZS_DRAINS];
	unsigned		 ndrains;

	/* xclient = on: smtpwall's own commands seen */
	int			 xc_probe, xc_sent;

	/* the message being relayed, as the server received it */
	struct buf		 msg;
	int			 in_msg;
};

/* Built once: the policy objects are read-only for the FSM. */
static struct rules_cidrset *fzs_trusted;
static struct rules_domainset *fzs_local;
static struct ruleset *fzs_ruleset;
static int fzs_no_dot_check;

static void
fzs_check(int ok)
{
	if (!ok)
		abort();
}

static void
fzs_global_init(void)
{
	struct rules_cidr c;
	char err[RULES_ERR_LEN];

	if (fzs_ruleset != NULL)
		return;
	fzs_trusted = rules_cidrset_new();
	fzs_local = rules_domainset_new();
	fzs_check(fzs_trusted != NULL && fzs_local != NULL);
	fzs_check(rules_cidr_parse("192.0.2.0/24", 12, &c, err) == 0);
	fzs_check(rules_cidrset_add(fzs_trusted, &c) == 0);
	fzs_check(rules_domainset_add(fzs_local, "example.net", 11, err) == 0);
	fzs_check(rules_domainset_add(fzs_local, ".example.org", 12, err) == 0);
	fzs_ruleset = rules_parse(FZS_RULES, sizeof(FZS_RULES) - 1, NULL, NULL);
	fzs_check(fzs_ruleset != NULL);
	fzs_no_dot_check = getenv("FUZZ_SMTP_SESSION_NO_DOT_CHECK") != NULL;
}

static struct ruleset *
fzs_rules(void *arg)
{
	(void)arg;
	return rules_ref(fzs_ruleset);
}

static void
fzs_event(void *arg, const struct smtp_event *e)
{
	struct fzs *z = arg;

	if (e->kind != SMTP_EV_STATE)
		return;
	/* The mode changes on the server's reply, never on the client's bytes alone. */
	if (e->to == SS_DATA || e->to == SS_AUTH || e->to == SS_RAW)
		fzs_check(z->in_server_call);
	fzs_check(z->nmarks < FZS_MARKS);
	z->marks[z->nmarks].srv = buf_len(&z->to_server);
	z->marks[z->nmarks].cli = buf_len(&z->to_client);
	z->marks[z->nmarks].state = e->to;
	z->nmarks++;
}

static int
fzs_line_start(const struct fzs *z, size_t p)
{
	unsigned i;

	if (p == 0 || (p >= 2 && memcmp(buf_head(&z->cstream) + p - 2, "\r\n", 2) == 0))
		return 1;
	for (i = 0; i < z->ndrains; i++)
		if (z->drains[i] == p)
			return 1;
	return 0;
}

/* A forwarded command line: a whole line of the client's stream, after the last one. */
static void
fzs_from_client(struct fzs *z, const char *l, size_t n)
{
	const char *cs = buf_len(&z->cstream) ? buf_head(&z->cstream) : "";
	size_t len = buf_len(&z->cstream), p;

	for (p = z->cpos; p + n <= len; p++)
		if (fzs_line_start(z, p) && memcmp(cs + p, l, n) == 0) {
			z->cpos = p + n;
			return;
		}
	abort();
}

/* A forwarded command: a listed verb, read without doubt, that the policy accepts. */
static void
fzs_policy(struct fzs *z, const char *l, size_t n)
{
	struct smtp_cmd c;
	struct rules_verdict v;
	struct rules_rcpt r = { 0 };
	const struct smtp_param *sz;
	unsigned long long size;
	size_t i;
	int listed = 0;

	fzs_check(smtp_parse_cmd(l, n, &c) == SMTP_PARSE_OK);
	for (i = 0; i < sizeof(fzs_commands) / sizeof(fzs_commands[0]); i++)
		listed |= smtp_slice_ieq(c.verb_text, fzs_commands[i]);
	fzs_check(listed && c.verb != SMTP_V_XCLIENT && c.verb != SMTP_V_XFORWARD);
	fzs_check(c.verb != SMTP_V_STARTTLS || z->f.starttls_allow);
	if (c.verb == SMTP_V_DATA || c.verb == SMTP_V_AUTH || c.verb == SMTP_V_STARTTLS)
		z->awaiting = 1;
	if (c.verb == SMTP_V_MAIL) {
		rules_eval_sender(fzs_ruleset, c.path.mailbox.p,
		    (c.path.flags & SMTP_PATH_NULL) ? 0 : c.path.mailbox.len, z->f.now, &v);
		fzs_check(v.accept);
		if ((sz = smtp_cmd_param(&c, "SIZE")) != NULL &&
		    smtp_param_ulong(sz->value, &size) == 0)
			fzs_check(size <= z->conf.max_message_size);
	}
	if (c.verb == SMTP_V_RCPT) {
		r.local = c.path.local.p;
		r.local_len = c.path.local.len;
		r.domain = c.path.domain.p;
		r.domain_len = c.path.domain.len;
		r.flags = c.path.flags & (RULES_RCPT_ROUTED | RULES_RCPT_PERCENT |
		    RULES_RCPT_BANG | RULES_RCPT_AT);
		/* authenticated only grows: what was accepted then is accepted now */
		rules_eval_rcpt(&z->policy, fzs_ruleset, (const struct sockaddr *)&z->addr,
		    z->f.authenticated, &r, z->f.now, &v);
		fzs_check(v.accept);
	}
}

/*
 * xclient = on: 1 if this forwarded line is one of smtpwall's own (the EHLO
 * probe, XCLIENT), checked here; 0 if it must be a client's line.
 */
static int
fzs_xclient_line(struct fzs *z, const char *l, size_t n)
{
	const char *cs = buf_len(&z->cstream) ? buf_head(&z->cstream) : "";
	size_t len = buf_len(&z->cstream), q, i, e;

	if (n > 8 && memcmp(l, "XCLIENT ", 8) == 0) {
		fzs_check(z->xc_probe && !z->xc_sent && n <= 512);
		for (i = 0; i < n - 2; i++)
			fzs_check(l[i] >= 0x20 && l[i] <= 0x7e);
		z->xc_sent = 1;
		return 1;
	}
	/* the verb as the client wrote it: an EHLO client's own line is the probe */
	if (z->xc_probe || n < 6 || strncasecmp(l, "EHLO", 4) != 0)
		return 0;
	/* the probe: "EHLO" + what follows the verb of a whole HELO/EHLO line of the client */
	z->xc_probe = 1;
	for (q = z->cpos; q + n <= len; q++) {
		if (!fzs_line_start(z, q))
			continue;
		e = q + n;
		if ((strncasecmp(cs + q, "HELO", 4) == 0 || strncasecmp(cs + q, "EHLO", 4) == 0) &&
		    memcmp(cs + q + 4, l + 4, n - 4) == 0 && e <= len)
			return 1;
	}
	abort();
}

static void
fzs_command_bytes(struct fzs *z, enum smtp_state st, const char *p, size_t n)
{
	const char *lf;
	size_t len;

	/* after QUIT, and before the greeting, nothing reaches the server */
	fzs_check(n == 0 || (st != SS_QUIT && st != SS_GREETING && st != SS_CLOSED));
	while (n > 0) {
		lf = memchr(p, '\n', n);
		fzs_check(lf != NULL);
		len = (size_t)(lf - p) + 1;
		fzs_check(len >= 2 && p[len - 2] == '\r');
		fzs_check(memchr(p, '\r', len - 2) == NULL && memchr(p, '\0', len) == NULL);
		if (z->conf.xclient && st == SS_CMD && fzs_xclient_line(z, p, len)) {
			p += len;
			n -= len;
			continue;
		}
		if (!(st == SS_AUTH && len == 3 && p[0] == '*'))
			fzs_from_client(z, p, len);
		/* nothing is read behind a command that changes the mode, before its reply */
		fzs_check(!z->awaiting);
		if (st == SS_CMD)
			fzs_policy(z, p, len - 2);
		else
			z->awaiting = 1;	/* an AUTH answer */
		p += len;
		n -= len;
	}
}

static void
fzs_msg_add(struct fzs *z, const char *p, size_t n)
{
	fzs_check(buf_append(&z->msg, p, n, FZS_MAX) == 0);
}

/* The server saw this message end: one end, at its end; CRLF only; no NUL. */
static void
fzs_msg_done(struct fzs *z)
{
	const char *p = buf_head(&z->msg);
	size_t n = buf_len(&z->msg), i;

	fzs_check(n >= 3);
	for (i = 0; i < n; i++) {
		fzs_check(p[i] != '\0');
		if (p[i] == '\n')
			fzs_check(i > 0 && p[i - 1] == '\r');
		if (p[i] == '\r')
			fzs_check(i + 1 < n && p[i + 1] == '\n');
	}
	/* "\r\n" (the DATA line's) + message: CRLF.CRLF only at the very end */
	if (n == 3)
		fzs_check(memcmp(p, ".\r\n", 3) == 0);
	else {
		fzs_check(memcmp(p + n - 5, "\r\n.\r\n", 5) == 0);
		fzs_check(memcmp(p, ".\r\n", 3) != 0);
		fzs_check(memmem(p, n - 3, "\r\n.\r\n", 5) == NULL);
	}
	if (z->conf.bare_lf == SMTP_DATA_REJECT)
		fzs_check(n - 3 <= z->conf.max_message_size);
	buf_reset(&z->msg);
	z->in_msg = 0;
}

/* The server's side was reset mid-message: what it got must not hold any kind of end. */
static void
fzs_msg_aborted(struct fzs *z)
{
	const char *p = buf_len(&z->msg) ? buf_head(&z->msg) : "";
	size_t n = buf_len(&z->msg), i;

	if (!fzs_no_dot_check && n > 0) {
		/* the DATA line's CRLF comes before the first byte */
		if (p[0] == '.' && n >= 2)
			fzs_check(p[1] != '\r' && p[1] != '\n');
		for (i = 0; i + 2 < n; i++)
			fzs_check(!((p[i] == '\r' || p[i] == '\n') && p[i + 1] == '.' &&
			    (p[i + 2] == '\r' || p[i + 2] == '\n')));
	}
	buf_reset(&z->msg);
	z->in_msg = 0;
}

/* Client bytes outside RAW: reply lines only. */
static void
fzs_reply_bytes(const char *p, size_t n)
{
	const char *lf;
	size_t len;

	while (n > 0) {
		lf = memchr(p, '\n', n);
		fzs_check(lf != NULL);
		len = (size_t)(lf - p) + 1;
		fzs_check(len >= 5 && p[len - 2] == '\r');
		fzs_check(p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
		    p[2] >= '0' && p[2] <= '9');
		fzs_check(p[3] == ' ' || p[3] == '-' || p[3] == '\r');
		p += len;
		n -= len;
	}
}

/* One segment of this call's server output, produced in state st. */
static void
fzs_server_segment(struct fzs *z, enum smtp_state st, const char *p, size_t n)
{
	switch (st) {
	case SS_DATA:
		if (!z->in_msg) {
			buf_reset(&z->msg);
			z->in_msg = 1;
		}
		fzs_msg_add(z, p, n);
		break;
	case SS_RAW:
		break;
	default:
		fzs_command_bytes(z, st, p, n);
		break;
	}
}

/* After every FSM call: check what it wrote, then carry out its flags. */
static void
fzs_after(struct fzs *z)
{
	unsigned fl = z->f.out_flags, i;
	enum smtp_state st = z->call_state;
	size_t s0 = 0, c0 = 0, s1, c1;
	const char *sp = buf_len(&z->to_server) ? buf_head(&z->to_server) : "";
	const char *cp = buf_len(&z->to_client) ? buf_head(&z->to_client) : "";
	size_t local = 0;

	z->f.out_flags = 0;

	/* the FIFO */
	fzs_check(z->f.fifo_len <= SMTP_FIFO_MAX && z->f.fifo_head < SMTP_FIFO_MAX);
	for (i = 0; i < z->f.fifo_len; i++) {
		const struct smtp_pending *e = &z->f.fifo[(z->f.fifo_head + i) % SMTP_FIFO_MAX];

		if (e->local)
			local += e->local_len;
	}
	fzs_check(local == buf_len(&z->f.local));

	/* after an abort, the FSM never forwards again */
	if (z->aborted)
		fzs_check(buf_len(&z->to_server) == 0);

	if (fl & SMTP_FSM_ABORT_SERVER) {
		/* the session resets the server: what was queued never leaves */
		buf_reset(&z->to_server);
		buf_reset(&z->sin);
		if (z->in_msg)
			fzs_msg_aborted(z);
		z->aborted = 1;
		sp = "";
	}

	/* walk the segments of this call, the state in force for each */
	for (i = 0; i <= z->nmarks; i++) {
		s1 = i < z->nmarks ? z->marks[i].srv : buf_len(&z->to_server);
		c1 = i < z->nmarks ? z->marks[i].cli : buf_len(&z->to_client);
		if (s1 > buf_len(&z->to_server))	/* reset meanwhile (abort) */
			s1 = buf_len(&z->to_server);
		if (s0 > s1)
			s0 = s1;
		if (!(fl & SMTP_FSM_ABORT_SERVER) && s1 > s0)
			fzs_server_segment(z, st, sp + s0, s1 - s0);
		if (st != SS_RAW && c1 > c0)
			fzs_reply_bytes(cp + c0, c1 - c0);
		/* a message ends where DATA mode is left without an abort */
		if (i < z->nmarks && st == SS_DATA && z->marks[i].state != SS_DATA &&
		    z->in_msg && !(fl & SMTP_FSM_ABORT_SERVER)) {
			if (z->marks[i].state == SS_CMD && z->f.data_refused == 0)
				fzs_msg_done(z);
			else
				fzs_msg_aborted(z);
		}
		if (i < z->nmarks)
			st = z->marks[i].state;
		s0 = s1;
		c0 = c1;
	}
	z->nmarks = 0;
	buf_reset(&z->to_server);
	buf_reset(&z->to_client);

	if (fl & SMTP_FSM_DRAIN_CLIENT) {
		buf_reset(&z->cin);
		fzs_check(z->ndrains < FZS_DRAINS);
		z->drains[z->ndrains++] = buf_len(&z->cstream);
	}
}

/* The server's bytes the FSM consumed: a final reply line ends the wait of the command before it. */
static void
fzs_replies_read(struct fzs *z, const char *p, size_t n)
{
	struct smtp_reply_line r;
	const char *lf;
	size_t len;

	while (n > 0 && (lf = memchr(p, '\n', n)) != NULL) {
		len = (size_t)(lf - p) + 1;
		if (smtp_parse_reply_line(p, len - 1 - (len >= 2 && p[len - 2] == '\r'), &r) == 0 &&
		    r.last)
			z->awaiting = 0;
		p += len;
		n -= len;
	}
}

static void
fzs_pump(struct fzs *z)
{
	unsigned guard;
	size_t k, n;

	for (guard = 0; guard < 100000; guard++) {
		int moved = 0;

		z->f.now = 1767225600;
		if ((n = buf_len(&z->sin)) > 0 && !z->aborted) {
			z->call_state = z->f.state;
			z->in_server_call = 1;
			k = smtp_fsm_server(&z->f, buf_head(&z->sin), n);
			z->in_server_call = 0;
			fzs_check(k <= n);
			fzs_replies_read(z, buf_head(&z->sin), k);
			buf_consume(&z->sin, k);
			moved |= k > 0;
			fzs_after(z);
		}
		if ((n = buf_len(&z->cin)) > 0) {
			z->call_state = z->f.state;
			k = smtp_fsm_client(&z->f, buf_head(&z->cin), n);
			fzs_check(k <= n);
			buf_consume(&z->cin, k);
			moved |= k > 0;
			fzs_after(z);
		}
		if (z->server_eof == 1 && buf_len(&z->sin) == 0) {
			z->server_eof = 2;
			z->call_state = z->f.state;
			if (!z->aborted)
				smtp_fsm_server_failed(&z->f, 421, "4.4.1",
				    "Error: connection to the mail server lost");
			z->awaiting = 0;
			fzs_after(z);
			moved = 1;
		}
		if (z->client_eof == 1 && (buf_len(&z->cin) == 0 || z->f.state != SS_DATA)) {
			z->client_eof = 2;
			z->call_state = z->f.state;
			smtp_fsm_client_eof(&z->f);
			fzs_after(z);
			moved = 1;
		}
		if (!moved)
			return;
	}
	abort();	/* livelock */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fzs *z;
	size_t off = 1, len;
	uint8_t cfg, h;

	if (size < 1)
		return 0;
	fzs_global_init();
	z = calloc(1, sizeof(*z));
	fzs_check(z != NULL);
	cfg = data[0];

	z->policy.trusted = fzs_trusted;
	z->policy.local_domains = fzs_local;
	z->policy.auth_relay = !(cfg & 8);
	z->conf.policy = &z->policy;
	z->conf.rules = fzs_rules;
	z->conf.commands = fzs_commands;
	z->conf.ncommands = sizeof(fzs_commands) / sizeof(fzs_commands[0]);
	z->conf.max_message_size = 1000;
	z->conf.max_recipients = 3;
	z->conf.max_line_length = 512;
	z->conf.bare_lf = (cfg & 1) ? SMTP_DATA_NORMALIZE : SMTP_DATA_REJECT;
	z->conf.hostname = "gw.example.net";
	z->conf.xclient = (cfg & 16) != 0;
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)&z->addr;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(40000);
		inet_pton(AF_INET, (cfg & 4) ? "192.0.2.15" : "203.0.113.10", &s4->sin_addr);
	}
	smtp_fsm_init(&z->f, &z->conf, (const struct sockaddr *)&z->addr, (cfg & 2) != 0,
	    &z->to_client, &z->to_server, fzs_event, z);

	while (off < size) {
		h = data[off++];
		len = h & 0x7f;
		if (len >= 124) {
			z->call_state = z->f.state;
			switch (len) {
			case 124:
				if (z->client_eof == 0)
					z->client_eof = 1;
				break;
			case 125:
				smtp_fsm_client_timeout(&z->f);
				fzs_after(z);
				break;
			case 126:
				if (!z->aborted)
					smtp_fsm_server_failed(&z->f, 451, "4.4.2",
					    "Error: timeout exceeded");
				z->awaiting = 0;
				fzs_after(z);
				break;
			default:
				if (z->server_eof == 0)
					z->server_eof = 1;
				break;
			}
			fzs_pump(z);
			continue;
		}
		if (len > size - off)
			len = size - off;
		if (h & 0x80) {
			if (!z->aborted && z->server_eof == 0)
				fzs_check(buf_append(&z->sin, data + off, len, FZS_MAX) == 0);
		} else if (z->client_eof == 0) {
			fzs_check(buf_append(&z->cin, data + off, len, FZS_MAX) == 0);
			fzs_check(buf_append(&z->cstream, data + off, len, FZS_MAX) == 0);
		}
		off += len;
		fzs_pump(z);
	}
	/* both sides go away at the end */
	if (z->client_eof == 0)
		z->client_eof = 1;
	if (z->server_eof == 0)
		z->server_eof = 1;
	fzs_pump(z);

	smtp_fsm_free(&z->f);
	buf_free(&z->to_client);
	buf_free(&z->to_server);
	buf_free(&z->cin);
	buf_free(&z->sin);
	buf_free(&z->cstream);
	buf_free(&z->msg);
	free(z);
	return 0;
}

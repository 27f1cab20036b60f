/*
 * smtp/fsm.c: one proxied SMTP session as a pure state machine (see fsm.h).
 *
 * Client side: bytes are framed into lines (CRLF required), each line is
 * checked (length, NUL, bare CR/LF), parsed, then handled by its row of
 * fsm_cmds[]. A handler either forwards the line unchanged (a SERVER entry
 * in the FIFO) or answers it itself (a LOCAL entry whose reply text waits in
 * f->local until every reply before it has gone out).
 *
 * Server side: reply lines complete the FIFO head on their final line
 * ("NNN "), continuation lines ("NNN-") are passed as they come, except for
 * the EHLO reply, which is collected and filtered as a whole.
 *
 * Mode changes (DATA content, AUTH continuation, raw bytes after STARTTLS)
 * happen only on the server's reply to the command that asks for them; until
 * that reply is in, `barrier` keeps the client's next bytes unread.
 *
 * Never: fds, clocks, logs. Allocation only in the buffers it was given.
 */
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "xclient.h"

#define FSM_LOCAL_MAX	(64 * 1024)	/* our own queued replies */
#define FSM_EHLO_MAX	(8 * 1024)	/* an EHLO reply being filtered */
#define FSM_MLINE_MAX	(64 * 1024)	/* the held lines of any other multi-line reply */
#define FSM_DATA_CHUNK	(16 * 1024)	/* output room asked for per DATA scan */

static void fsm_enter(struct smtp_fsm *, enum smtp_state);

const char *
smtp_state_str(enum smtp_state s)
{
#define CASE(x) case x: return #x
	switch (s) {
	CASE(SS_GREETING);
	CASE(SS_CMD);
	CASE(SS_DATA);
	CASE(SS_AUTH);
	CASE(SS_RAW);
	CASE(SS_QUIT);
	CASE(SS_CLOSED);
	}
#undef CASE
	return "SS_?";
}

/* ---- events and output ------------------------------------------------- */

static void
fsm_event(struct smtp_fsm *f, enum smtp_event_kind kind, const char *what,
    struct slice arg, const char *reason, int code)
{
	struct smtp_event ev = {
		.kind = kind, .what = what, .arg = arg, .reason = reason,
		.code = code, .from = f->state, .to = f->state,
	};

	if (f->event != NULL)
		f->event(f->event_arg, &ev);
}

static void
fsm_event_rule(struct smtp_fsm *f, const char *what, struct slice arg,
    const char *reason, const struct rules_rule *rule, int code)
{
	struct smtp_event ev = {
		.kind = SMTP_EV_REFUSE, .what = what, .arg = arg,
		.reason = reason, .rule = rule, .code = code,
		.from = f->state, .to = f->state,
	};

	if (f->event != NULL)
		f->event(f->event_arg, &ev);
}

/*
 * Out of memory for an output buffer: this one session cannot go on. Close
 * both sides; nothing half-written is ever completed at the server.
 */
static void
fsm_fail(struct smtp_fsm *f)
{
	f->out_flags |= SMTP_FSM_ABORT_SERVER | SMTP_FSM_CLOSE_CLIENT;
	f->server_gone = 1;
	fsm_enter(f, SS_CLOSED);
}

static void
fsm_out(struct smtp_fsm *f, struct buf *b, const void *p, size_t n)
{
	if (f->state == SS_CLOSED && b == f->to_server)
		return;
	if (buf_append(b, p, n, SMTP_OUT_MAX) == -1)
		fsm_fail(f);
}

static void
fsm_enter(struct smtp_fsm *f, enum smtp_state to)
{
	struct smtp_event ev = { .kind = SMTP_EV_STATE, .what = "state",
	    .from = f->state, .to = to };

	if (f->state == to)
		return;
	f->state = to;
	if (f->event != NULL)
		f->event(f->event_arg, &ev);
}

/* ---- the pipeline FIFO --------------------------------------------------- */

static struct smtp_pending *
fifo_head(struct smtp_fsm *f)
{
	return f->fifo_len ? &f->fifo[f->fifo_head] : NULL;
}

static struct smtp_pending *
fifo_push(struct smtp_fsm *f, unsigned verb, int local, size_t local_len)
{
	struct smtp_pending *e;

	/* Callers check fifo_len before reading a command; this is an invariant. */
	if (f->fifo_len >= SMTP_FIFO_MAX)
		return NULL;
	e = &f->fifo[(f->fifo_head + f->fifo_len) % SMTP_FIFO_MAX];
	f->fifo_len++;
	e->verb = (uint8_t)verb;
	e->local = (uint8_t)local;
	e->flags = 0;
	e->local_len = (uint16_t)local_len;
	return e;
}

/* An entry before every other: a command the server must answer first. */
static struct smtp_pending *
fifo_push_front(struct smtp_fsm *f, unsigned verb, unsigned flags)
{
	struct smtp_pending *e;

	if (f->fifo_len >= SMTP_FIFO_MAX)
		return NULL;
	f->fifo_head = (f->fifo_head + SMTP_FIFO_MAX - 1) % SMTP_FIFO_MAX;
	f->fifo_len++;
	e = &f->fifo[f->fifo_head];
	e->verb = (uint8_t)verb;
	e->local = 0;
	e->flags = (uint8_t)flags;
	e->local_len = 0;
	return e;
}

static void
fifo_pop(struct smtp_fsm *f)
{
	f->fifo_head = (f->fifo_head + 1) % SMTP_FIFO_MAX;
	f->fifo_len--;
}

/* Emit every LOCAL reply at the head of the FIFO: their turn has come. */
static void
fifo_flush_local(struct smtp_fsm *f)
{
	struct smtp_pending *e;

	while ((e = fifo_head(f)) != NULL && e->local) {
		fsm_out(f, f->to_client, buf_head(&f->local), e->local_len);
		buf_consume(&f->local, e->local_len);
		fifo_pop(f);
	}
	buf_release(&f->local);
}

/*
 * Answer a command ourselves. With nothing in flight the reply goes out at
 * once; otherwise it waits in the FIFO for the server's replies before it.
 */
static void __attribute__((format(printf, 3, 4)))
fsm_reply(struct smtp_fsm *f, unsigned verb, const char *fmt, ...)
{
	char line[SMTP_PATH_MAX + 256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 3)
		n = sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';

	if (f->fifo_len == 0) {
		fsm_out(f, f->to_client, line, (size_t)n);
		return;
	}
	if (buf_append(&f->local, line, (size_t)n, FSM_LOCAL_MAX) == -1 ||
	    fifo_push(f, verb, 1, (size_t)n) == NULL)
		fsm_fail(f);
}

static void
fsm_forward(struct smtp_fsm *f, unsigned verb, struct slice line,
    unsigned flags)
{
	struct smtp_pending *e;

	fsm_out(f, f->to_server, line.p, line.len);
	if ((e = fifo_push(f, verb, 0, 0)) == NULL) {
		fsm_fail(f);
		return;
	}
	e->flags = (uint8_t)flags;
}

/*
 * End the session once every reply the client is still owed (the server's
 * and ours, in order) has gone out: stop reading the client, let the FIFO
 * drain; smtp_fsm_finished() turns true when it is empty.
 */
static void
fsm_close_after_replies(struct smtp_fsm *f)
{
	f->out_flags |= SMTP_FSM_CLOSE_CLIENT;
	fsm_enter(f, SS_QUIT);
}

/* A protocol error by the client: counted, and too many end the session. */
static void __attribute__((format(printf, 4, 5)))
fsm_error(struct smtp_fsm *f, struct slice arg, const char *reason,
    const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fsm_event(f, SMTP_EV_ERROR, "command", arg, reason, atoi(line));
	fsm_reply(f, SMTP_V_NONE, "%s", line);
	if (++f->errors >= SMTP_MAX_ERRORS) {
		fsm_reply(f, SMTP_V_NONE, "421 4.7.0 %s Error: too many errors",
		    f->conf->hostname);
		fsm_close_after_replies(f);
	}
}

/* ---- the transaction ----------------------------------------------------- */

static void
fsm_tx_reset(struct smtp_fsm *f)
{
	f->tx_active = 0;
	f->tx_rcpt = 0;
}

/*
 * *dst = the slice as a string of at most max - 1 bytes. The block is reused
 * while the value fits (*cap: the longest string it holds), so that a MAIL,
 * or a message's end, costs no allocator call on the command path; it grows
 * only for a value longer than any before, at least doubling (at most a few
 * times a session: max is 256), and is freed with the session.
 */
_Static_assert(SMTP_HELO_MAX <= 256 && SMTP_ADDR_MAX <= 256, "fsm_set: a capacity is a uint8_t");

static void
fsm_set(struct smtp_fsm *f, char **dst, uint8_t *cap, struct slice s, size_t max)
{
	size_t n = s.len < max - 1 ? s.len : max - 1;
	size_t sz;
	char *p;

	if (*dst == NULL || n > *cap) {
		sz = *dst == NULL ? n + 1 : 2 * ((size_t)*cap + 1);
		if (sz < n + 1)
			sz = n + 1;
		if (sz > max)
			sz = max;
		if ((p = realloc(*dst, sz)) == NULL) {
			fsm_fail(f);
			return;
		}
		*dst = p;
		*cap = (uint8_t)(sz - 1);
	}
	memcpy(*dst, s.p, n);
	(*dst)[n] = '\0';
}

/* The address as the client wrote it, for our replies: "<raw>". */
static struct slice
fsm_path_text(const struct smtp_path *p)
{
	return (p->flags & SMTP_PATH_NOBRACKETS) ? p->mailbox : p->raw;
}

/*
 * A rule change takes effect for the next command of every session (SPEC.md
 * "Live rules"): each MAIL and RCPT is judged by the ruleset live now.
 */
static void
fsm_rules_now(struct smtp_fsm *f)
{
	if (f->conf->rules == NULL)
		return;
	rules_unref(f->rules);
	f->rules = f->conf->rules(f->conf->rules_arg);
}

/* ---- command handlers ------------------------------------------------------ */

static void fsm_xclient_start(struct smtp_fsm *, const struct smtp_cmd *, struct slice);

static void
fsm_cmd_helo(struct smtp_fsm *f, const struct smtp_cmd *c, struct slice line)
{
	struct slice name = c->args;
	size_t i;

	/* The HELO name alone, first word. */
	for (i = 0; i < name.len && name.p[i] != ' '; i++)
		;
	name.len = i;
	fsm_set(f, &f->helo, &f->helo_cap, name, SMTP_HELO_MAX);
	fsm_tx_reset(f);
	if (f->conf->xclient && f->xc == SMTP_XC_IDLE) {
		fsm_xclient_start(f, c, line);
		return;
	}
	fsm_forward(f, c->verb, line, 0);
}

static void
fsm_cmd_mail(struct smtp_fsm *f, const struct smtp_cmd *c, struct slice line)
{
	const struct smtp_param *size;
	unsigned long long n;
	struct rules_verdict v;
	struct slice addr = fsm_path_text(&c->path);
	struct slice box = c->path.mailbox;

	fsm_event(f, SMTP_EV_ADDRESS, "from", box, "", 0);
	if ((size = smtp_cmd_param(c, "SIZE")) != NULL &&
	    size->value.p != NULL && smtp_param_ulong(size->value, &n) == 0 &&
	    n > f->conf->max_message_size) {
		fsm_event(f, SMTP_EV_REFUSE, "from", box, "size", 552);
		fsm_reply(f, c->verb, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}

	fsm_rules_now(f);
	rules_eval_sender(f->rules, box.p, (c->path.flags & SMTP_PATH_NULL) ? 0 : box.len,
	    f->now, &v);
	if (!v.accept) {
		fsm_event_rule(f, "from", box, rules_reason_str(v.reason), v.rule, 550);
		fsm_reply(f, c->verb,
		    "550 5.7.1 <%.*s>: Sender address rejected: blocked by policy",
		    (int)addr.len, addr.p);
		return;
	}

	fsm_set(f, &f->from, &f->from_cap, box, SMTP_ADDR_MAX);
	f->have_from = 1;
	if (!f->tx_active) {
		f->tx_active = 1;
		f->tx_rcpt = 0;
		fsm_forward(f, c->verb, line, SMTP_PF_STARTS_TX);
	} else
		fsm_forward(f, c->verb, line, 0);	/* the server answers 503 nested MAIL */
}

static void
fsm_cmd_rcpt(struct smtp_fsm *f, const struct smtp_cmd *c, struct slice line)
{
	const struct smtp_path *p = &c->path;
	struct slice addr = fsm_path_text(p);
	struct rules_rcpt r;
	struct rules_verdict v;

	fsm_event(f, SMTP_EV_ADDRESS, "rcpt", p->mailbox, "", 0);
	if (!f->tx_active) {
		fsm_reply(f, c->verb, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (f->tx_rcpt >= f->conf->max_recipients) {
		f->rcpt_refused++;
		fsm_event(f, SMTP_EV_REFUSE, "rcpt", p->mailbox, "too_many_recipients", 452);
		fsm_reply(f, c->verb, "452 4.5.3 Error: too many recipients");
		return;
	}

	smtp_fsm_rcpt_of(p, &r);
	fsm_rules_now(f);
	rules_eval_rcpt(f->conf->policy, f->rules,
	    (const struct sockaddr *)&f->client, f->authenticated, &r, f->now, &v);
	if (!v.accept) {
		f->rcpt_refused++;
		fsm_event_rule(f, "rcpt", p->raw, rules_reason_str(v.reason), v.rule, 550);
		fsm_reply(f, c->verb, "550 5.7.1 <%.*s>: Relay access denied",
		    (int)addr.len, addr.p);
		return;
	}
	f->tx_rcpt++;
	fsm_forward(f, c->verb, line, 0);
}

void
smtp_fsm_rcpt_of(const struct smtp_path *p, struct rules_rcpt *r)
{
	r->local = p->local.p;
	r->local_len = p->local.len;
	r->domain = p->domain.p;
	r->domain_len = p->domain.len;
	r->flags = 0;
	if (p->flags & SMTP_PATH_ROUTED)
		r->flags |= RULES_RCPT_ROUTED;
	if (p->flags & SMTP_PATH_PERCENT)
		r->flags |= RULES_RCPT_PERCENT;
	if (p->flags & SMTP_PATH_BANG)
		r->flags |= RULES_RCPT_BANG;
	if (p->flags & SMTP_PATH_AT)
		r->flags |= RULES_RCPT_AT;
}

static void
fsm_cmd_data(struct smtp_fsm *f, const struct smtp_cmd *c, struct slice line)
{
	if (!f->tx_active) {
		fsm_reply(f, c->verb, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (f->tx_rcpt == 0) {
		fsm_reply(f, c->verb, "554 5.5.1 Error: no valid recipients");
		return;
	}
	fsm_forward(f, c->verb, line, 0);
	f->barrier = 1;		/* the content starts only after the server's 354 */
}

static void
fsm_cmd_rset(struct smtp_fsm *f, const struct smtp_cmd *c, struct slice line)
{
	fsm_tx_reset(f);
	fsm_forward(f, c->verb, line, 0);
}

static void
fsm_cmd_quit(struct smtp_fsm *f, const struct smtp_cmd *c, struct slice line)
{
	fsm_forward(f, c->verb, line, 0);
	fsm_enter(f, SS_QUIT);
}

static void
fsm_cmd_starttls(struct smtp_fsm *f, const struct smtp_cmd *c, struct slice line)
{
	/*
	 * Whatever the client sent after STARTTLS in the same batch must never
	 * reach the server (CVE-2011-0411): drain it now when we answer
	 * ourselves, or when the server's reply comes in (fsm_reply_effect).
	 */
	if (!f->starttls_allow) {
		fsm_reply(f, c->verb, "454 4.7.0 TLS not available");
		f->out_flags |= SMTP_FSM_DRAIN_CLIENT;
		return;
	}
	fsm_forward(f, c->verb, line, 0);
	f->barrier = 1;
}

static void
fsm_cmd_auth(struct smtp_fsm *f, const struct smtp_cmd *c, struct slice line)
{
	fsm_forward(f, c->verb, line, 0);
	f->barrier = 1;		/* 334 makes the next line a continuation */
}

static void
fsm_cmd_forward(struct smtp_fsm *f, const struct smtp_cmd *c, struct slice line)
{
	fsm_forward(f, c->verb, line, 0);
}

/* One row per verb that may reach the server; any other verb is answered 502. */
static const struct fsm_cmd {
	enum smtp_verb	verb;
	void		(*handle)(struct smtp_fsm *, const struct smtp_cmd *, struct slice);
} fsm_cmds[] = {
	{ SMTP_V_HELO,		fsm_cmd_helo },
	{ SMTP_V_EHLO,		fsm_cmd_helo },
	{ SMTP_V_MAIL,		fsm_cmd_mail },
	{ SMTP_V_RCPT,		fsm_cmd_rcpt },
	{ SMTP_V_DATA,		fsm_cmd_data },
	{ SMTP_V_RSET,		fsm_cmd_rset },
	{ SMTP_V_QUIT,		fsm_cmd_quit },
	{ SMTP_V_STARTTLS,	fsm_cmd_starttls },
	{ SMTP_V_AUTH,		fsm_cmd_auth },
	{ SMTP_V_NOOP,		fsm_cmd_forward },
	{ SMTP_V_HELP,		fsm_cmd_forward },
	{ SMTP_V_VRFY,		fsm_cmd_forward },
	{ SMTP_V_EXPN,		fsm_cmd_forward },
	{ SMTP_V_OTHER,		fsm_cmd_forward },	/* only if listed in `commands` */
};

static int
fsm_allowed(const struct smtp_fsm *f, struct slice verb)
{
	unsigned i;

	for (i = 0; i < f->conf->ncommands; i++)
		if (smtp_slice_ieq(verb, f->conf->commands[i]))
			return 1;
	return 0;
}

/* The server is gone (message aborted, or lost): QUIT is answered, anything else ends the session. */
static void
fsm_cmd_server_gone(struct smtp_fsm *f, const struct smtp_cmd *c)
{
	if (c->verb == SMTP_V_QUIT)
		fsm_reply(f, c->verb, "221 2.0.0 Bye");
	else
		fsm_reply(f, c->verb,
		    "421 4.4.1 %s Error: connection to the mail server lost",
		    f->conf->hostname);
	fsm_close_after_replies(f);
}

static void
fsm_command(struct smtp_fsm *f, struct slice line)
{
	struct slice text = { line.p, line.len - 2 };	/* CRLF checked by the caller */
	struct smtp_cmd c;
	const struct fsm_cmd *row = NULL;
	size_t i;
	int res;

	f->commands++;
	res = smtp_parse_cmd(text.p, text.len, &c);
	if (res == SMTP_PARSE_EMPTY) {
		fsm_error(f, text, "syntax", "500 5.5.2 Error: bad syntax");
		return;
	}
	if (res == SMTP_PARSE_NOT_SMTP) {
		fsm_event(f, SMTP_EV_ERROR, "command", text, "not_smtp", 500);
		if (++f->not_smtp >= SMTP_MAX_NOT_SMTP) {
			fsm_reply(f, SMTP_V_NONE,
			    "421 4.7.0 %s Error: this is an SMTP server; closing",
			    f->conf->hostname);
			fsm_close_after_replies(f);
			return;
		}
		fsm_reply(f, SMTP_V_NONE, "500 5.5.1 Error: not an SMTP command");
		return;
	}
	if (f->server_gone) {
		fsm_cmd_server_gone(f, &c);
		return;
	}
	/* Only smtpwall speaks XCLIENT/XFORWARD to the server, whatever `commands` says. */
	if (c.verb == SMTP_V_XCLIENT || c.verb == SMTP_V_XFORWARD ||
	    !fsm_allowed(f, c.verb_text)) {
		fsm_error(f, c.verb_text, "not_allowed", "502 5.5.1 Error: command not %s",
		    c.verb == SMTP_V_OTHER ? "recognized" : "implemented");
		return;
	}
	for (i = 0; i < sizeof(fsm_cmds) / sizeof(fsm_cmds[0]); i++)
		if (fsm_cmds[i].verb == c.verb) {
			row = &fsm_cmds[i];
			break;
		}
	if (row == NULL) {	/* allowed by `commands` but no row: BDAT, XCLIENT... */
		fsm_error(f, c.verb_text, "not_allowed",
		    "502 5.5.1 Error: command not implemented");
		return;
	}
	if (res == SMTP_PARSE_SYNTAX) {
		if (c.verb == SMTP_V_MAIL)
			fsm_error(f, text, "syntax", "501 5.1.7 Bad sender address syntax");
		else if (c.verb == SMTP_V_RCPT)
			fsm_error(f, text, "syntax", "501 5.1.3 Bad recipient address syntax");
		else
			fsm_error(f, text, "syntax", "501 5.5.4 Syntax error in parameters");
		return;
	}
	row->handle(f, &c, line);
}

/* A rejected AUTH continuation line: the server is waiting for one, so cancel the exchange. */
static void
fsm_auth_cancel(struct smtp_fsm *f)
{
	static const char cancel[] = "*\r\n";

	fsm_forward(f, SMTP_P_AUTHCONT, (struct slice){ cancel, 3 }, 0);
	f->barrier = 1;
}

/*
 * The end of the command line starting at p: the offset just past its CRLF,
 * or 0 if no CRLF is in the first n bytes. A line ends only at CRLF (RFC 5321
 * 2.3.8), so a bare LF is inside the line, never the end of it: the server
 * must not be able to read a second command where we read one bad line.
 */
static size_t
fsm_crlf_end(const char *p, size_t n)
{
	const char *lf;
	size_t off = 0;

	while (off < n && (lf = memchr(p + off, '\n', n - off)) != NULL) {
		off = (size_t)(lf - p) + 1;
		if (off >= 2 && p[off - 2] == '\r')
			return off;
	}
	return 0;
}

/* Discard the rest of a refused line through its CRLF, across chunks. */
static size_t
fsm_skip_line(struct smtp_fsm *f, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\n' && f->skip_cr) {
			f->skip_line = 0;
			f->skip_cr = 0;
			return i + 1;
		}
		f->skip_cr = p[i] == '\r';
	}
	return n;
}

/* One client line in command or AUTH-continuation mode; returns bytes consumed, 0 to wait. */
static size_t
fsm_client_line(struct smtp_fsm *f, const char *p, size_t n)
{
	size_t limit = f->conf->max_line_length, len;
	struct slice line;

	if (f->skip_line)
		return fsm_skip_line(f, p, n);
	if (f->barrier || f->fifo_len >= SMTP_FIFO_MAX - 2 ||
	    buf_len(f->to_server) > SMTP_OUT_HIGH ||
	    buf_len(f->to_client) > SMTP_OUT_HIGH)
		return 0;

	if ((len = fsm_crlf_end(p, n < limit ? n : limit)) == 0) {
		if (n < limit)
			return f->client_eof ? n : 0;	/* a partial line at EOF is dropped */
		/* No CRLF within max_line_length: refuse, then discard through its CRLF. */
		f->skip_line = 1;
		f->skip_cr = p[limit - 1] == '\r';
		if (f->state == SS_AUTH)
			fsm_auth_cancel(f);
		else
			fsm_error(f, (struct slice){ p, 64 }, "line_too_long",
			    "500 5.5.2 Error: line too long");
		return limit;
	}
	line.p = p;
	line.len = len;
	if (smtp_line_has_bad_bytes(p, len - 2)) {
		if (f->state == SS_AUTH)
			fsm_auth_cancel(f);
		else
			fsm_error(f, (struct slice){ p, len - 2 }, "bad_bytes",
			    "500 5.5.2 Error: bad character in command (NUL, bare CR or bare LF)");
		return len;
	}
	if (f->state == SS_AUTH) {
		/* Passed through unread: never parsed as a command, never logged. */
		fsm_forward(f, SMTP_P_AUTHCONT, line, 0);
		f->barrier = 1;
		return len;
	}
	fsm_command(f, line);
	return len;
}

/* Decide whether the message in flight must be refused, after each scan. */
static void
fsm_data_check(struct smtp_fsm *f)
{
	const struct smtp_data *d = &f->data;
	const char *reason = NULL;
	int code = 0;

	if (f->data_refused)
		return;
	if (d->flags & SMTP_DATA_F_NUL) {
		code = 554;
		reason = "nul";
	} else if (d->mode == SMTP_DATA_REJECT &&
	    (d->flags & (SMTP_DATA_F_BARE_LF | SMTP_DATA_F_BARE_CR))) {
		code = 554;
		reason = "bare_lf";
	} else if (d->content > f->conf->max_message_size) {
		code = 552;
		reason = "size";
	}
	if (code == 0)
		return;
	/* The server must never see the end of this message: reset its side now. */
	f->data_refused = code;
	f->data_reason = reason;
	f->server_gone = 1;
	f->out_flags |= SMTP_FSM_ABORT_SERVER;
	buf_reset(f->to_server);
	fsm_event(f, SMTP_EV_ABORT, "data",
	    (struct slice){ smtp_fsm_str(f->from), strlen(smtp_fsm_str(f->from)) }, reason, code);
}

static void
fsm_data_end(struct smtp_fsm *f)
{
	f->msg_bytes = f->data.content;
	fsm_set(f, &f->msg_from, &f->msg_from_cap,
	    (struct slice){ smtp_fsm_str(f->from), strlen(smtp_fsm_str(f->from)) }, SMTP_ADDR_MAX);
	fsm_tx_reset(f);
	fsm_enter(f, SS_CMD);
	switch (f->data_refused) {
	case 0:
		if (fifo_push(f, SMTP_P_DOT, 0, 0) == NULL)
			fsm_fail(f);
		break;
	case 552:
		fsm_reply(f, SMTP_P_DOT, "552 5.3.4 Message size exceeds fixed limit");
		break;
	default:
		if (f->data.flags & SMTP_DATA_F_NUL)
			fsm_reply(f, SMTP_P_DOT,
			    "554 5.6.0 Message refused: NUL byte in content");
		else
			fsm_reply(f, SMTP_P_DOT,
			    "554 5.6.0 Message refused: bare LF or bare CR line ending");
		break;
	}
}

static size_t
fsm_client_data(struct smtp_fsm *f, const char *p, size_t n)
{
	char scratch[FSM_DATA_CHUNK];
	char *out;
	size_t room, outlen = 0, k;

	if (f->data_refused) {
		out = scratch;		/* refused: read to its end, forward nothing */
		room = sizeof(scratch);
	} else {
		if (buf_len(f->to_server) > SMTP_OUT_HIGH)
			return 0;
		if (buf_reserve(f->to_server, FSM_DATA_CHUNK, SMTP_OUT_MAX) == -1) {
			fsm_fail(f);
			return n;
		}
		out = buf_tail(f->to_server);
		room = buf_room(f->to_server);
	}
	k = smtp_data_scan(&f->data, p, n, out, room, &outlen);
	if (!f->data_refused)
		buf_commit(f->to_server, outlen);
	fsm_data_check(f);
	if (f->data.done)
		fsm_data_end(f);
	return k;
}

static size_t
fsm_raw(struct smtp_fsm *f, struct buf *to, const char *p, size_t n)
{
	size_t room;

	if (buf_len(to) > SMTP_OUT_HIGH)
		return 0;
	room = SMTP_OUT_MAX - buf_len(to);
	if (n > room)
		n = room;
	fsm_out(f, to, p, n);
	return n;
}

static size_t
fsm_client_step(struct smtp_fsm *f, const char *p, size_t n)
{
	switch (f->state) {
	case SS_GREETING:
		return 0;		/* held until the server has greeted */
	case SS_QUIT:
	case SS_CLOSED:
		return n;		/* nothing after QUIT is forwarded */
	case SS_RAW:
		return fsm_raw(f, f->to_server, p, n);
	case SS_DATA:
		return fsm_client_data(f, p, n);
	case SS_CMD:
	case SS_AUTH:
		return fsm_client_line(f, p, n);
	}
	return 0;
}

size_t
smtp_fsm_client(struct smtp_fsm *f, const char *p, size_t n)
{
	size_t done = 0, k;

	while (done < n) {
		k = fsm_client_step(f, p + done, n - done);
		if (k == 0)
			break;
		done += k;
		if (f->out_flags & SMTP_FSM_DRAIN_CLIENT)
			return n;
	}
	return done;
}

/* ---- server replies -------------------------------------------------------- */

/* EHLO keywords the client must not see, and the verb that would make them usable. */
static const struct fsm_ehlo_drop {
	const char	*keyword;
	const char	*verb;	/* shown if this verb is in `commands`; NULL: never */
} fsm_ehlo_drops[] = {
	{ "CHUNKING",		NULL },		/* BDAT is not parsed */
	{ "BINARYMIME",		NULL },		/* needs BDAT */
	{ "XCLIENT",		NULL },		/* only smtpwall speaks it */
	{ "XFORWARD",		NULL },
	{ "ETRN",		"ETRN" },
	{ "ATRN",		"ATRN" },
	{ "TURN",		"TURN" },
	{ "EXPN",		"EXPN" },
	{ "VRFY",		"VRFY" },
	{ "XEXCH50",		"XEXCH50" },
	{ "X-LINK2STATE",	"X-LINK2STATE" },
};

static int
fsm_ehlo_keep(const struct smtp_fsm *f, struct slice kw)
{
	size_t i;

	if (smtp_slice_ieq(kw, "STARTTLS"))
		return f->starttls_allow;
	for (i = 0; i < sizeof(fsm_ehlo_drops) / sizeof(fsm_ehlo_drops[0]); i++) {
		if (!smtp_slice_ieq(kw, fsm_ehlo_drops[i].keyword))
			continue;
		return fsm_ehlo_drops[i].verb != NULL &&
		    fsm_allowed(f, (struct slice){ fsm_ehlo_drops[i].verb,
		    strlen(fsm_ehlo_drops[i].verb) });
	}
	return 1;
}

/*
 * Emit the collected EHLO reply (lines of f->ehlo, each "text\n") without the
 * keywords the client must not see; the first line (the server's name) always
 * stays, and the last kept line gets "250 ". SIZE is lowered to our limit.
 */
static void
fsm_ehlo_emit(struct smtp_fsm *f)
{
	const char *p = buf_head(&f->ehlo), *end = p + buf_len(&f->ehlo), *nl;
	struct slice lines[64];
	unsigned n = 0, keep = 0, i;
	char tmp[SMTP_REPLY_LINE_MAX + 16];
	int len;

	while (p < end && n < 64) {
		nl = memchr(p, '\n', (size_t)(end - p));
		lines[n].p = p;
		lines[n].len = (size_t)(nl - p);
		p = nl + 1;
		if (n == 0 || fsm_ehlo_keep(f, smtp_ehlo_keyword(lines[n])))
			lines[keep++] = lines[n];
		n++;
	}
	for (i = 0; i < keep; i++) {
		struct slice kw = smtp_ehlo_keyword(lines[i]);
		char sep = i + 1 == keep ? ' ' : '-';
		unsigned long long sz;
		struct slice val;

		if (i > 0 && smtp_slice_ieq(kw, "SIZE")) {
			val.p = kw.p + kw.len;
			val.len = lines[i].len - kw.len;
			while (val.len && *val.p == ' ') {
				val.p++;
				val.len--;
			}
			if (val.len == 0 || smtp_param_ulong(val, &sz) == -1 || sz == 0 ||
			    sz > f->conf->max_message_size) {
				len = snprintf(tmp, sizeof(tmp), "%d%cSIZE %llu\r\n",
				    f->ehlo_code, sep,
				    (unsigned long long)f->conf->max_message_size);
				fsm_out(f, f->to_client, tmp, (size_t)len);
				continue;
			}
		}
		len = snprintf(tmp, sizeof(tmp), "%d%c%.*s\r\n", f->ehlo_code, sep,
		    (int)lines[i].len, lines[i].p);
		fsm_out(f, f->to_client, tmp, (size_t)len);
	}
	buf_free(&f->ehlo);
}

/* The client is gone mid-message: it must never be completed at the server. */
static void
fsm_abort_in_data(struct smtp_fsm *f, const char *reason)
{
	if (!f->data_refused)
		fsm_event(f, SMTP_EV_ABORT, "data",
		    (struct slice){ smtp_fsm_str(f->from), strlen(smtp_fsm_str(f->from)) }, reason, 0);
	f->server_gone = 1;
	f->out_flags |= SMTP_FSM_ABORT_SERVER;
	buf_reset(f->to_server);
	fsm_enter(f, SS_CLOSED);
}

/* What the final line of a reply changes, by the command it answers. */
static void
fsm_reply_effect(struct smtp_fsm *f, const struct smtp_pending *e, int code)
{
	int ok = code >= 200 && code < 300;

	switch (e->verb) {
	case SMTP_P_GREETING:
		fsm_enter(f, SS_CMD);
		break;
	case SMTP_V_HELO:
	case SMTP_V_EHLO:
		if (f->xc == SMTP_XC_RELAY) {	/* the XCLIENT exchange is over */
			f->xc = SMTP_XC_DONE;
			f->barrier = 0;
		}
		if (ok)
			fsm_tx_reset(f);
		break;
	case SMTP_V_RSET:
		if (ok)
			fsm_tx_reset(f);
		break;
	case SMTP_V_MAIL:
		if (!ok && (e->flags & SMTP_PF_STARTS_TX))
			fsm_tx_reset(f);
		break;
	case SMTP_V_RCPT:
		if (ok)
			f->rcpt_ok++;
		break;
	case SMTP_V_DATA:
		f->barrier = 0;
		if (code == 354) {
			smtp_data_init(&f->data, f->conf->bare_lf);
			f->data_refused = 0;
			f->data_reason = NULL;
			fsm_enter(f, SS_DATA);
			if (f->client_eof)	/* gone before the 354: this message can never end */
				fsm_abort_in_data(f, "client_eof");
		}
		break;
	case SMTP_P_DOT:
		if (ok) {
			f->messages++;
			f->bytes += f->msg_bytes;
		}
		fsm_event(f, SMTP_EV_MESSAGE, "data",
		    (struct slice){ smtp_fsm_str(f->msg_from), strlen(smtp_fsm_str(f->msg_from)) },
		    NULL, code);
		break;
	case SMTP_V_STARTTLS:
		f->barrier = 0;
		/* Bytes the client sent before this reply were sent in plaintext after STARTTLS. */
		f->out_flags |= SMTP_FSM_DRAIN_CLIENT;
		if (code == 220)
			fsm_enter(f, SS_RAW);
		break;
	case SMTP_V_AUTH:
	case SMTP_P_AUTHCONT:
		f->barrier = 0;
		if (code == 334)
			fsm_enter(f, SS_AUTH);
		else {
			if (code == 235)
				f->authenticated = 1;
			fsm_enter(f, SS_CMD);
		}
		break;
	default:
		break;
	}
}

static void
fsm_server_garbage(struct smtp_fsm *f, struct slice line, const char *reason)
{
	fsm_event(f, SMTP_EV_SERVER, "reply", line, reason, 0);
	smtp_fsm_server_failed(f, 421, "4.4.2", "Error: bad reply from the mail server");
}

/* One line of a 250 EHLO reply, kept to be read or filtered as a whole. 0, or -1 (session failed). */
static int
fsm_ehlo_collect(struct smtp_fsm *f, const struct smtp_reply_line *r)
{
	if (buf_len(&f->ehlo) + r->text.len + 1 <= FSM_EHLO_MAX) {
		if (buf_append(&f->ehlo, r->text.p, r->text.len, FSM_EHLO_MAX) == -1 ||
		    buf_append(&f->ehlo, "\n", 1, FSM_EHLO_MAX) == -1) {
			fsm_fail(f);
			return -1;
		}
	}
	f->ehlo_code = r->code;
	return 0;
}

/* ---- XCLIENT (SPEC xclient; Postfix XCLIENT_README) ------------------------ */
/* The sequencing only: the attributes, xtext and the line itself are smtp/xclient.c's. */

/*
 * The client's first HELO/EHLO, with xclient = on: ask the server with an
 * EHLO of our own (the client's own line when it sent EHLO), and hold the
 * client's line, unsent, in the FIFO behind it. Nothing more is read from
 * the client until the reply to its own command is in.
 */
static void
fsm_xclient_start(struct smtp_fsm *f, const struct smtp_cmd *c, struct slice line)
{
	struct smtp_pending *e;
	struct slice a = c->args;

	f->xc = SMTP_XC_PROBE;
	f->xc_verb = c->verb;
	f->barrier = 1;
	/* HELO= is the whole argument, as Postfix would have read it (all its words) */
	while (a.len > 0 && (*a.p == ' ' || *a.p == '\t')) {
		a.p++;
		a.len--;
	}
	while (a.len > 0 && (a.p[a.len - 1] == ' ' || a.p[a.len - 1] == '\t'))
		a.len--;
	f->xc_helo_off = a.len > 0 ? (size_t)(a.p - line.p) : 0;
	f->xc_helo_len = a.len;
	if (buf_append(&f->xc_line, line.p, line.len, line.len) == -1) {
		fsm_fail(f);
		return;
	}
	if (c->verb == SMTP_V_EHLO)
		fsm_out(f, f->to_server, line.p, line.len);
	else {
		/* the client's line with EHLO for its verb: all after the verb, CRLF included */
		size_t rest = (size_t)(c->verb_text.p + c->verb_text.len - line.p);

		fsm_out(f, f->to_server, "EHLO", 4);
		fsm_out(f, f->to_server, line.p + rest, line.len - rest);
	}
	if ((e = fifo_push(f, SMTP_P_XPROBE, 0, 0)) == NULL) {
		fsm_fail(f);
		return;
	}
	e->flags = SMTP_PF_INTERNAL;
	if ((e = fifo_push(f, c->verb, 0, 0)) == NULL) {
		fsm_fail(f);
		return;
	}
	e->flags = SMTP_PF_HELD;
}

/*
 * Send XCLIENT with the listed attributes, answered before the held client
 * line. A HELO argument longer than 255 octets (Postfix refuses the whole
 * XCLIENT then), or whose xtext form would push the line over 512 octets
 * (only a name full of bytes that need escaping, never a hostname), is sent
 * as [UNAVAILABLE]; so is an empty one.
 */
static void
fsm_xclient_send(struct smtp_fsm *f, unsigned bits)
{
	char helo[(SMTP_HELO_MAX - 1) * 3 + 1], line[SMTP_XCLIENT_MAX + 64];
	int ehlo = f->xc_verb == SMTP_V_EHLO, n = -1;

	if (f->xc_helo_len > 0 && f->xc_helo_len < SMTP_HELO_MAX &&
	    smtp_xclient_xtext(helo, sizeof(helo), buf_head(&f->xc_line) + f->xc_helo_off,
	    f->xc_helo_len) != -1)
		n = smtp_xclient_line(bits, &f->client, helo, ehlo, line, sizeof(line));
	if (n == -1)
		n = smtp_xclient_line(bits, &f->client, "[UNAVAILABLE]", ehlo, line, sizeof(line));
	if (n == -1 || fifo_push_front(f, SMTP_P_XCLIENT, SMTP_PF_INTERNAL) == NULL) {
		fsm_fail(f);
		return;
	}
	fsm_out(f, f->to_server, line, (size_t)n);
	f->xc = SMTP_XC_SENT;
}

/* The internal commands are answered: the client's own line goes out now, unchanged. */
static void
fsm_xclient_relay(struct smtp_fsm *f)
{
	struct smtp_pending *e = fifo_head(f);

	if (e == NULL || !(e->flags & SMTP_PF_HELD) || buf_len(&f->xc_line) == 0) {
		fsm_fail(f);	/* a broken invariant: end this session only */
		return;
	}
	fsm_out(f, f->to_server, buf_head(&f->xc_line), buf_len(&f->xc_line));
	buf_free(&f->xc_line);
	e->flags &= (uint8_t)~SMTP_PF_HELD;
	f->xc = SMTP_XC_RELAY;
}

static void
fsm_xclient_event(struct smtp_fsm *f, const char *reason, int code, struct slice text)
{
	f->xc_result = reason;
	fsm_event(f, SMTP_EV_XCLIENT, "xclient", text, reason, code);
}

/* The final line of the probe's reply is in (the probe is popped). */
static void
fsm_xclient_probed(struct smtp_fsm *f, int code, struct slice text)
{
	unsigned bits = code == 250 ?
	    smtp_xclient_offered(buf_head(&f->ehlo), buf_len(&f->ehlo)) : 0;
	struct smtp_pending done;

	if (bits & SMTP_XA_ATTRS) {
		buf_free(&f->ehlo);
		fsm_xclient_send(f, bits);
		return;
	}
	fsm_xclient_event(f, "not_offered", code, text);
	if (code == 250 && f->xc_verb == SMTP_V_EHLO) {
		/* The probe was the client's own EHLO: its reply is the answer, filtered. */
		f->xc = SMTP_XC_RELAY;
		buf_free(&f->xc_line);
		done = *fifo_head(f);
		fsm_ehlo_emit(f);
		fifo_pop(f);
		fsm_reply_effect(f, &done, code);
		return;
	}
	buf_free(&f->ehlo);
	fsm_xclient_relay(f);
}

/*
 * A reply line to an internal command (the head of the FIFO): never passed
 * to the client. The probe's 250 reply is collected to be read (and, when
 * it answers the client's own EHLO, filtered and passed).
 */
static size_t
fsm_xclient_line(struct smtp_fsm *f, const struct smtp_reply_line *r, size_t len)
{
	unsigned verb = fifo_head(f)->verb;

	if (verb == SMTP_P_XPROBE && r->code == 250 && fsm_ehlo_collect(f, r) == -1)
		return len;
	if (!r->last)
		return len;
	fifo_pop(f);
	if (fifo_head(f) == NULL) {
		fsm_fail(f);	/* the held client line is always behind */
		return len;
	}
	if (verb == SMTP_P_XPROBE) {
		fsm_xclient_probed(f, r->code, r->text);
		return len;
	}
	if (r->code == 220)
		fsm_xclient_event(f, "ok", r->code, r->text);
	else
		fsm_xclient_event(f, "refused", r->code, r->text);
	fsm_xclient_relay(f);
	return len;
}

static size_t
fsm_server_line(struct smtp_fsm *f, const char *p, size_t n)
{
	struct smtp_reply_line r;
	struct smtp_pending *e;
	struct slice text;
	const char *lf;
	size_t len;

	if (f->state == SS_CLOSED)
		return n;
	if (buf_len(f->to_client) > SMTP_OUT_HIGH)
		return 0;
	if ((lf = memchr(p, '\n', n < SMTP_REPLY_LINE_MAX ? n : SMTP_REPLY_LINE_MAX)) == NULL) {
		if (n >= SMTP_REPLY_LINE_MAX)
			fsm_server_garbage(f, (struct slice){ p, 64 }, "line_too_long");
		return n >= SMTP_REPLY_LINE_MAX ? n : 0;
	}
	len = (size_t)(lf - p) + 1;
	text.p = p;
	text.len = len - 1 - (len >= 2 && p[len - 2] == '\r');
	if (smtp_parse_reply_line(text.p, text.len, &r) == -1) {
		fsm_server_garbage(f, text, "syntax");
		return n;
	}

	fifo_flush_local(f);
	if ((e = fifo_head(f)) == NULL) {
		/* Unsolicited: only a 421 (the server is going away) is passed on. */
		if (r.code == 421) {
			fsm_out(f, f->to_client, text.p, text.len);
			fsm_out(f, f->to_client, "\r\n", 2);
			f->out_flags |= SMTP_FSM_CLOSE_CLIENT;
			fsm_enter(f, SS_CLOSED);
		} else
			fsm_event(f, SMTP_EV_SERVER, "reply", text, "unsolicited", r.code);
		return len;
	}

	if (e->flags & SMTP_PF_INTERNAL)
		return fsm_xclient_line(f, &r, len);
	if (e->verb == SMTP_V_EHLO && r.code == 250) {
		if (fsm_ehlo_collect(f, &r) == -1)
			return n;
		if (r.last)
			fsm_ehlo_emit(f);
	} else if (!r.last) {
		/*
		 * Held until its last line: a reply the server leaves unfinished
		 * reaches the client as our one 451/421, never as "550-..." lines
		 * followed by another code (RFC 5321 4.2.1: one code a reply).
		 */
		if (buf_append(&f->mline, text.p, text.len, FSM_MLINE_MAX) == -1 ||
		    buf_append(&f->mline, "\r\n", 2, FSM_MLINE_MAX) == -1) {
			buf_free(&f->mline);
			fsm_server_garbage(f, (struct slice){ p, 64 }, "reply_too_long");
			return n;
		}
		return len;
	} else {
		/* Passed on as the server wrote it; only a bare LF ending is made CRLF. */
		if (buf_len(&f->mline) > 0) {
			fsm_out(f, f->to_client, buf_head(&f->mline), buf_len(&f->mline));
			buf_free(&f->mline);
		}
		fsm_out(f, f->to_client, text.p, text.len);
		fsm_out(f, f->to_client, "\r\n", 2);
	}
	if (!r.last)
		return len;

	{
		struct smtp_pending done = *e;

		fifo_pop(f);
		fsm_reply_effect(f, &done, r.code);
	}
	fifo_flush_local(f);
	return len;
}

size_t
smtp_fsm_server(struct smtp_fsm *f, const char *p, size_t n)
{
	size_t done = 0, k;

	while (done < n) {
		if (f->state == SS_RAW)
			k = fsm_raw(f, f->to_client, p + done, n - done);
		else
			k = fsm_server_line(f, p + done, n - done);
		if (k == 0)
			break;
		done += k;
	}
	return done;
}

/* ---- lifecycle and failures ------------------------------------------------ */

void
smtp_fsm_init(struct smtp_fsm *f, const struct smtp_fsm_conf *conf,
    const struct sockaddr *client, int starttls_allow,
    struct buf *to_client, struct buf *to_server,
    smtp_event_fn *event, void *event_arg)
{
	memset(f, 0, sizeof(*f));
	f->conf = conf;
	f->to_client = to_client;
	f->to_server = to_server;
	f->event = event;
	f->event_arg = event_arg;
	f->starttls_allow = starttls_allow;
	if (client != NULL)
		memcpy(&f->client, client, client->sa_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	f->state = SS_GREETING;
	fifo_push(f, SMTP_P_GREETING, 0, 0);
}

void
smtp_fsm_free(struct smtp_fsm *f)
{
	rules_unref(f->rules);
	f->rules = NULL;
	buf_free(&f->local);
	buf_free(&f->ehlo);
	buf_free(&f->mline);
	buf_free(&f->xc_line);
	free(f->helo);
	free(f->from);
	free(f->msg_from);
	f->helo = f->from = f->msg_from = NULL;
	f->helo_cap = f->from_cap = f->msg_from_cap = 0;
}

void
smtp_fsm_client_eof(struct smtp_fsm *f)
{
	f->client_eof = 1;
	switch (f->state) {
	case SS_DATA:
		fsm_abort_in_data(f, "client_eof");
		break;
	case SS_AUTH:
	case SS_RAW:
	case SS_GREETING:
		fsm_enter(f, SS_CLOSED);
		break;
	default:
		break;		/* replies still owed keep flowing */
	}
}

void
smtp_fsm_client_timeout(struct smtp_fsm *f)
{
	if (f->state == SS_CLOSED)
		return;
	fsm_out(f, f->to_client, "421 4.4.2 ", 10);
	fsm_out(f, f->to_client, f->conf->hostname, strlen(f->conf->hostname));
	fsm_out(f, f->to_client, " Error: timeout exceeded\r\n", 26);
	if (f->state == SS_DATA) {
		f->out_flags |= SMTP_FSM_ABORT_SERVER;
		buf_reset(f->to_server);
	}
	f->out_flags |= SMTP_FSM_CLOSE_CLIENT;
	fsm_enter(f, SS_CLOSED);
}

void
smtp_fsm_server_failed(struct smtp_fsm *f, int code, const char *enh, const char *text)
{
	struct smtp_pending *e;
	char line[512];
	int len, owed = 0;

	if (f->state == SS_CLOSED)
		return;
	len = snprintf(line, sizeof(line), "%d %s %s %s\r\n", code, enh,
	    f->conf->hostname, text);
	f->server_gone = 1;
	f->out_flags |= SMTP_FSM_ABORT_SERVER;
	buf_reset(f->to_server);
	buf_free(&f->ehlo);
	buf_free(&f->mline);		/* an unfinished reply is never passed on */

	while ((e = fifo_head(f)) != NULL) {
		if (e->local) {
			fifo_flush_local(f);
			continue;
		}
		if (e->flags & SMTP_PF_INTERNAL) {	/* ours: the client is owed nothing */
			fifo_pop(f);
			continue;
		}
		owed = 1;
		if (e->verb == SMTP_V_QUIT)	/* the client was leaving anyway */
			fsm_out(f, f->to_client, "221 2.0.0 Bye\r\n", 15);
		else
			fsm_out(f, f->to_client, line, (size_t)len);
		fifo_pop(f);
		if (code == 421)
			break;
	}
	f->fifo_len = 0;
	f->barrier = 0;
	buf_free(&f->local);
	buf_free(&f->xc_line);
	if (f->xc != SMTP_XC_IDLE)
		f->xc = SMTP_XC_DONE;

	if (f->state == SS_QUIT || code == 421 || f->state == SS_DATA ||
	    f->state == SS_AUTH || f->state == SS_RAW || f->state == SS_GREETING) {
		/* Mid-message or unsolicited: tell the client unless a reply already did. */
		if (!owed && f->state != SS_QUIT)
			fsm_out(f, f->to_client, line, (size_t)len);
		f->out_flags |= SMTP_FSM_CLOSE_CLIENT;
		fsm_enter(f, SS_CLOSED);
		return;
	}
	fsm_enter(f, SS_CMD);
}

int
smtp_fsm_awaiting_server(const struct smtp_fsm *f)
{
	unsigned i;

	if (f->state == SS_CLOSED || f->server_gone)
		return 0;
	for (i = 0; i < f->fifo_len; i++)
		if (!f->fifo[(f->fifo_head + i) % SMTP_FIFO_MAX].local)
			return 1;
	return 0;
}

int
smtp_fsm_finished(const struct smtp_fsm *f)
{
	if (f->state == SS_CLOSED)
		return 1;
	return (f->state == SS_QUIT || f->client_eof) && f->fifo_len == 0;
}

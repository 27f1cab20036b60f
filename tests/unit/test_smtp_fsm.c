/*
 * test_smtp_fsm: the SMTP session state machine (proxy/smtp/fsm.h) driven
 * in-process exactly as proxy/session.c drives it, and held to SPEC.md
 * ("The relay decision", "Commands", "What smtpwall never does").
 *
 * The fixture (struct tfsm) plays the session: what a side sends is queued
 * and fed again until the FSM stops consuming, out_flags are carried out
 * after every call (DRAIN empties the queued client bytes, ABORT drops what
 * was queued for the server and kills the server's side), and everything the
 * FSM writes is moved into a per-side log that the expectations walk through
 * in order. Expectations therefore check what each peer really receives.
 *
 * Two kinds of tests: the C tests below, and one cmocka test per
 * tests/dialog/NAME.dlg script (directory from $DIALOG_DIR, default
 * "tests/dialog" relative to the cwd). Dialog syntax (one item a line):
 *
 *   # comment                       blank lines are ignored too
 *   config KEY=VALUE                before the first C:/S: line; keys:
 *                                   starttls_allow auth_relay bare_lf
 *                                   max_message_size max_recipients
 *                                   max_line_length commands rules xclient
 *                                   (rules: \n for a new line)
 *   client IP                       the client's address (default 203.0.113.10,
 *                                   port 40000)
 *   C: text    / S: text            the client / server sends text CRLF
 *   C+ text    / S+ text            raw bytes, escapes \r \n \0 \t \\ \xHH
 *   C* N text                       the client sends text CRLF N times
 *                                   consecutive lines of one side are ONE
 *                                   write (pipelining), fed when the next
 *                                   item of another kind comes
 *   >S: text   / >C: text           the server / client received this line next
 *   >S+ text   / >C+ text           ... exactly these raw bytes next
 *   >S: -      / >C: -              ... nothing more so far
 *   >S:        / >C:                ... an empty line next
 *   eof client | eof server         FIN from that side
 *   timeout client                  timeout_idle fired
 *   server_failed CODE ENH TEXT     smtp_fsm_server_failed()
 *   state SS_X                      the FSM is in that state
 *   flag NAME | noflag NAME         CLOSE_CLIENT ABORT_SERVER DRAIN_CLIENT raised (ever) or not
 *   finished 0|1                    smtp_fsm_finished()
 *   event KIND WHAT [REASON]        such an event was reported (KIND: refuse
 *                                   error abort server message xclient; "*" any)
 *   noevent KIND WHAT               no such event was reported
 *
 * At the end of a script both logs must have been fully expected: a dialog
 * lists every byte each peer received.
 *
 * test_smtp_fsm_random_dialogs plays random client scripts, cut at random,
 * against a model server that reads the forwarded bytes as a real MTA would
 * and checks them (whole client lines only, policy respected, messages with
 * CRLF only and a single end); see "robustness" below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/buf.h"
#include "proxy/smtp/fsm.h"
#include "rules/rules.h"

#define TFSM_HOST		"gw.example.net"
#define TFSM_NOW		((time_t)1767225600)	/* 2026-01-01T00:00:00Z */
#define TFSM_UNTRUSTED		"203.0.113.10"
#define TFSM_TRUSTED		"192.0.2.15"
#define TFSM_RULES		"block sender *@spam.example\n" \
				"allow relay 203.0.113.7/32 to sms.carrier.example\n"
#define TFSM_COMMANDS		"HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY STARTTLS AUTH"
#define TFSM_GREETING		"220 mx.example.net ESMTP\r\n"
#define TFSM_EVENTS_MAX		1024
#define TFSM_ERR_LEN		2048
#define TFSM_NCOMMANDS		32
#define TFSM_BUF_MAX		(16u * 1024 * 1024)

/* Everything one peer received, and how far the expectations have read it. */
struct tfsm_log {
	struct buf	b;
	size_t		pos;
};

struct tfsm_event {
	enum smtp_event_kind	kind;
	char			what[16];
	char			reason[32];
	char			arg[256];
	char			rule[512];
	int			code;
	enum smtp_state		from, to;
};

struct tfsm {
	/* settings; changeable until the session starts */
	char			client_ip[64];
	int			starttls_allow;
	int			auth_relay;
	enum smtp_data_mode	bare_lf;
	uint64_t		max_message_size;
	unsigned		max_recipients;
	unsigned		max_line_length;
	char			commands[TFSM_NCOMMANDS][16];
	unsigned		ncommands;
	char			rules_text[2048];
	int			xclient;

	/* built by tfsm_start() */
	int			started;
	struct rules_cidrset	*trusted;
	struct rules_domainset	*local;
	struct ruleset		*rules;		/* what conf.rules hands out; a test may swap it */
	struct rules_policy	 policy;
	struct smtp_fsm_conf	 conf;
	struct sockaddr_storage	 addr;
	struct smtp_fsm		 f;
	struct buf		 to_client, to_server;

	/* the session's side */
	struct buf		 cin, sin;	/* sent, not yet consumed by the FSM */
	int			 client_eof, client_eof_done;
	int			 server_eof, server_eof_done;
	int			 server_aborted;
	size_t			 server_after_abort;	/* bytes the FSM forwarded after the abort */
	unsigned		 flags;		/* every out_flag ever raised */
	struct tfsm_log		 cli, srv;
	struct tfsm_event	 ev[TFSM_EVENTS_MAX];
	unsigned		 nev;

	char			 err[TFSM_ERR_LEN];
	struct tfsm		*extra;		/* a second fixture a test made, freed with this one */
};

/* ---- small tools ---------------------------------------------------------- */

/* Printable form of untrusted bytes for failure messages. */
static const char *
tfsm_esc(char *dst, size_t dlen, const char *p, size_t n)
{
	size_t o = 0, i;

	for (i = 0; i < n && o + 8 < dlen; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r')
			o += (size_t)snprintf(dst + o, dlen - o, "\\r");
		else if (c == '\n')
			o += (size_t)snprintf(dst + o, dlen - o, "\\n");
		else if (c == '\\')
			o += (size_t)snprintf(dst + o, dlen - o, "\\\\");
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(dst + o, dlen - o, "\\x%02x", c);
		else
			dst[o++] = (char)c;
	}
	if (i < n && o + 4 < dlen)
		o += (size_t)snprintf(dst + o, dlen - o, "...");
	dst[o < dlen ? o : dlen - 1] = '\0';
	return dst;
}

static int __attribute__((format(printf, 2, 3)))
tfsm_fail(struct tfsm *fx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fx->err, sizeof(fx->err), fmt, ap);
	va_end(ap);
	return -1;
}

static int
tfsm_sa(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(40000);
		return inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1 ? 0 : -1;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(40000);
		return inet_pton(AF_INET, ip, &s4->sin_addr) == 1 ? 0 : -1;
	}
}

static int
tfsm_set_commands(struct tfsm *fx, const char *list)
{
	const char *p = list;

	fx->ncommands = 0;
	while (*p != '\0') {
		size_t n = strcspn(p, " ,");

		if (n > 0) {
			if (n >= 16 || fx->ncommands >= TFSM_NCOMMANDS)
				return tfsm_fail(fx, "bad commands list '%s'", list);
			memcpy(fx->commands[fx->ncommands], p, n);
			fx->commands[fx->ncommands][n] = '\0';
			fx->ncommands++;
		}
		p += n;
		while (*p == ' ' || *p == ',')
			p++;
	}
	return 0;
}

/* ---- the fixture ------------------------------------------------------------ */

static struct tfsm *
tfsm_new(void)
{
	struct tfsm *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->client_ip, sizeof(fx->client_ip), "%s", TFSM_UNTRUSTED);
	fx->auth_relay = 1;
	fx->bare_lf = SMTP_DATA_REJECT;
	fx->max_message_size = 1000;
	fx->max_recipients = 3;
	fx->max_line_length = 512;
	snprintf(fx->rules_text, sizeof(fx->rules_text), "%s", TFSM_RULES);
	assert_int_equal(tfsm_set_commands(fx, TFSM_COMMANDS), 0);
	return fx;
}

static void
tfsm_free(struct tfsm *fx)
{
	if (fx == NULL)
		return;
	tfsm_free(fx->extra);
	if (fx->started)
		smtp_fsm_free(&fx->f);
	rules_unref(fx->rules);
	rules_cidrset_free(fx->trusted);
	rules_domainset_free(fx->local);
	buf_free(&fx->to_client);
	buf_free(&fx->to_server);
	buf_free(&fx->cin);
	buf_free(&fx->sin);
	buf_free(&fx->cli.b);
	buf_free(&fx->srv.b);
	free(fx);
}

/* conf.rules: like the daemon's, a new reference to the live ruleset. */
static struct ruleset *
tfsm_rules_current(void *arg)
{
	struct tfsm *fx = arg;

	return rules_ref(fx->rules);
}

static void
tfsm_event_cb(void *arg, const struct smtp_event *e)
{
	struct tfsm *fx = arg;
	struct tfsm_event *t;
	size_t n;

	if (fx->nev >= TFSM_EVENTS_MAX)
		return;
	t = &fx->ev[fx->nev++];
	memset(t, 0, sizeof(*t));
	t->kind = e->kind;
	t->code = e->code;
	t->from = e->from;
	t->to = e->to;
	snprintf(t->what, sizeof(t->what), "%s", e->what ? e->what : "");
	snprintf(t->reason, sizeof(t->reason), "%s", e->reason ? e->reason : "");
	if (e->arg.p != NULL) {
		n = e->arg.len < sizeof(t->arg) - 1 ? e->arg.len : sizeof(t->arg) - 1;
		memcpy(t->arg, e->arg.p, n);
	}
	if (e->rule != NULL)
		rules_rule_format(e->rule, t->rule, sizeof(t->rule));
}

static void
tfsm_rules_err(void *arg, unsigned line, const char *msg)
{
	tfsm_fail(arg, "rules line %u: %s", line, msg);
}

static int
tfsm_domain(struct tfsm *fx, const char *d)
{
	char err[RULES_ERR_LEN] = "";

	if (rules_domainset_add(fx->local, d, strlen(d), err) == -1)
		return tfsm_fail(fx, "local domain %s: %s", d, err);
	return 0;
}

/* Build the policy and the ruleset, and start the session (greeting awaited). */
static int
tfsm_start(struct tfsm *fx)
{
	struct rules_cidr c;
	char err[RULES_ERR_LEN] = "";

	if (fx->started)
		return 0;
	fx->trusted = rules_cidrset_new();
	fx->local = rules_domainset_new();
	if (fx->trusted == NULL || fx->local == NULL)
		return tfsm_fail(fx, "out of memory");
	if (rules_cidr_parse("192.0.2.0/24", 12, &c, err) == -1 ||
	    rules_cidrset_add(fx->trusted, &c) == -1)
		return tfsm_fail(fx, "trusted_networks: %s", err);
	if (tfsm_domain(fx, "example.net") == -1 || tfsm_domain(fx, ".example.org") == -1)
		return -1;
	fx->err[0] = '\0';
	fx->rules = rules_parse(fx->rules_text, strlen(fx->rules_text), tfsm_rules_err, fx);
	if (fx->rules == NULL)
		return fx->err[0] ? -1 : tfsm_fail(fx, "rules_parse failed");
	if (tfsm_sa(fx->client_ip, &fx->addr) == -1)
		return tfsm_fail(fx, "bad client address '%s'", fx->client_ip);

	fx->policy.trusted = fx->trusted;
	fx->policy.local_domains = fx->local;
	fx->policy.auth_relay = fx->auth_relay;
	fx->conf.policy = &fx->policy;
	fx->conf.rules = tfsm_rules_current;
	fx->conf.rules_arg = fx;
	fx->conf.commands = (const char (*)[16])fx->commands;
	fx->conf.ncommands = fx->ncommands;
	fx->conf.max_message_size = fx->max_message_size;
	fx->conf.max_recipients = fx->max_recipients;
	fx->conf.max_line_length = fx->max_line_length;
	fx->conf.bare_lf = fx->bare_lf;
	fx->conf.hostname = TFSM_HOST;
	fx->conf.xclient = fx->xclient;
	smtp_fsm_init(&fx->f, &fx->conf, (const struct sockaddr *)&fx->addr,
	    fx->starttls_allow, &fx->to_client, &fx->to_server, tfsm_event_cb, fx);
	fx->started = 1;
	return 0;
}

/* The pipeline FIFO as fsm.h describes it: bounded, and f->local holds exactly the LOCAL entries' replies. */
static int
tfsm_check_fifo(struct tfsm *fx)
{
	const struct smtp_fsm *f = &fx->f;
	size_t local = 0;
	unsigned i;

	if (f->fifo_len > SMTP_FIFO_MAX || f->fifo_head >= SMTP_FIFO_MAX)
		return tfsm_fail(fx, "FIFO out of bounds: head %u len %u", f->fifo_head, f->fifo_len);
	for (i = 0; i < f->fifo_len; i++) {
		const struct smtp_pending *e = &f->fifo[(f->fifo_head + i) % SMTP_FIFO_MAX];

		if (e->local)
			local += e->local_len;
	}
	if (local != buf_len(&f->local))
		return tfsm_fail(fx, "FIFO inconsistent: LOCAL entries hold %zu bytes, f->local %zu",
		    local, buf_len(&f->local));
	return 0;
}

static int
tfsm_log_add(struct tfsm *fx, struct tfsm_log *l, struct buf *from)
{
	if (buf_len(from) == 0)
		return 0;
	if (buf_append(&l->b, buf_head(from), buf_len(from), TFSM_BUF_MAX) == -1)
		return tfsm_fail(fx, "log too large");
	buf_consume(from, buf_len(from));
	return 0;
}

/* After every FSM call: carry out the flags as the session does, then let the peers read. */
static int
tfsm_after_call(struct tfsm *fx)
{
	unsigned fl = fx->f.out_flags;

	fx->f.out_flags = 0;
	fx->flags |= fl;
	if (fl & SMTP_FSM_DRAIN_CLIENT)
		buf_reset(&fx->cin);
	if (fl & SMTP_FSM_ABORT_SERVER) {
		/* the connection is reset: what was queued for the server never leaves */
		buf_reset(&fx->to_server);
		buf_reset(&fx->sin);
		fx->server_aborted = 1;
	} else if (fx->server_aborted)
		fx->server_after_abort += buf_len(&fx->to_server);
	if (tfsm_log_add(fx, &fx->srv, &fx->to_server) == -1 ||
	    tfsm_log_add(fx, &fx->cli, &fx->to_client) == -1)
		return -1;
	return tfsm_check_fifo(fx);
}

/* Feed both directions until nothing moves (proxy/session.c sess_feed). */
static int
tfsm_pump(struct tfsm *fx)
{
	unsigned guard;
	size_t k, n;

	if (tfsm_start(fx) == -1)
		return -1;
	for (guard = 0; guard < 100000; guard++) {
		int moved = 0;

		fx->f.now = TFSM_NOW;
		if ((n = buf_len(&fx->sin)) > 0) {
			k = smtp_fsm_server(&fx->f, buf_head(&fx->sin), n);
			if (k > n)
				return tfsm_fail(fx, "smtp_fsm_server consumed %zu of %zu bytes", k, n);
			buf_consume(&fx->sin, k);
			moved |= k > 0;
			if (tfsm_after_call(fx) == -1)
				return -1;
		}
		if ((n = buf_len(&fx->cin)) > 0) {
			k = smtp_fsm_client(&fx->f, buf_head(&fx->cin), n);
			if (k > n)
				return tfsm_fail(fx, "smtp_fsm_client consumed %zu of %zu bytes", k, n);
			buf_consume(&fx->cin, k);
			moved |= k > 0;
			if (tfsm_after_call(fx) == -1)
				return -1;
		}
		if (fx->server_eof && !fx->server_eof_done && buf_len(&fx->sin) == 0) {
			fx->server_eof_done = 1;
			if (!fx->server_aborted)
				smtp_fsm_server_failed(&fx->f, 421, "4.4.1",
				    "Error: connection to the mail server lost");
			if (tfsm_after_call(fx) == -1)
				return -1;
			moved = 1;
		}
		if (fx->client_eof && !fx->client_eof_done &&
		    (buf_len(&fx->cin) == 0 || fx->f.state != SS_DATA)) {
			fx->client_eof_done = 1;
			smtp_fsm_client_eof(&fx->f);
			if (tfsm_after_call(fx) == -1)
				return -1;
			moved = 1;
		}
		if (!moved)
			return 0;
	}
	return tfsm_fail(fx, "the FSM never stops consuming (livelock)");
}

static int
tfsm_send(struct tfsm *fx, struct buf *to, const char *p, size_t n)
{
	if (tfsm_start(fx) == -1)
		return -1;
	if (to == &fx->sin && fx->server_aborted)
		return tfsm_pump(fx);	/* the server's side was reset: nothing arrives */
	if (buf_append(to, p, n, TFSM_BUF_MAX) == -1)
		return tfsm_fail(fx, "input too large");
	return tfsm_pump(fx);
}

static int
tfsm_expect(struct tfsm *fx, struct tfsm_log *l, const char *side, const char *p, size_t n)
{
	char want[600], got[600];
	size_t avail = buf_len(&l->b) - l->pos;
	const char *at = buf_len(&l->b) ? buf_head(&l->b) + l->pos : "";

	if (avail >= n && memcmp(at, p, n) == 0) {
		l->pos += n;
		return 0;
	}
	return tfsm_fail(fx, "the %s should receive \"%s\", it received \"%s\"", side,
	    tfsm_esc(want, sizeof(want), p, n), tfsm_esc(got, sizeof(got), at, avail));
}

static int
tfsm_expect_nothing(struct tfsm *fx, struct tfsm_log *l, const char *side)
{
	char got[600];
	size_t avail = buf_len(&l->b) - l->pos;

	if (avail == 0)
		return 0;
	return tfsm_fail(fx, "the %s should receive nothing more, it received \"%s\"", side,
	    tfsm_esc(got, sizeof(got), buf_head(&l->b) + l->pos, avail));
}

/* ---- the C tests' vocabulary ------------------------------------------------ */

static void
tfsm_check_at(struct tfsm *fx, int rc, const char *file, int line)
{
	if (rc == -1) {
		print_error("%s\n", fx->err);
		_fail(file, line);
	}
}

#define TFSM_CHECK(fx, call)	tfsm_check_at((fx), (call), __FILE__, __LINE__)
#define START(fx)		TFSM_CHECK(fx, tfsm_start(fx))
#define CLIENT(fx, s)		TFSM_CHECK(fx, tfsm_send((fx), &(fx)->cin, (s), strlen(s)))
#define CLIENT_RAW(fx, p, n)	TFSM_CHECK(fx, tfsm_send((fx), &(fx)->cin, (p), (n)))
#define SERVER(fx, s)		TFSM_CHECK(fx, tfsm_send((fx), &(fx)->sin, (s), strlen(s)))
#define EXPECT_SERVER(fx, s)	TFSM_CHECK(fx, tfsm_expect((fx), &(fx)->srv, "server", (s), strlen(s)))
#define EXPECT_SERVER_RAW(fx, p, n) TFSM_CHECK(fx, tfsm_expect((fx), &(fx)->srv, "server", (p), (n)))
#define EXPECT_CLIENT(fx, s)	TFSM_CHECK(fx, tfsm_expect((fx), &(fx)->cli, "client", (s), strlen(s)))
#define EXPECT_NOTHING_TO_SERVER(fx) TFSM_CHECK(fx, tfsm_expect_nothing((fx), &(fx)->srv, "server"))
#define EXPECT_NOTHING_TO_CLIENT(fx) TFSM_CHECK(fx, tfsm_expect_nothing((fx), &(fx)->cli, "client"))
#define CLIENT_EOF(fx)		do { (fx)->client_eof = 1; TFSM_CHECK(fx, tfsm_pump(fx)); } while (0)
#define SERVER_EOF(fx)		do { (fx)->server_eof = 1; TFSM_CHECK(fx, tfsm_pump(fx)); } while (0)
#define EXPECT_STATE(fx, s)	assert_string_equal(smtp_state_str((fx)->f.state), smtp_state_str(s))

/* One command the server accepts: forwarded unchanged, its reply passed unchanged. */
#define ROUNDTRIP(fx, cmd, reply) do {			\
	CLIENT(fx, cmd);				\
	EXPECT_SERVER(fx, cmd);				\
	EXPECT_NOTHING_TO_SERVER(fx);			\
	SERVER(fx, reply);				\
	EXPECT_CLIENT(fx, reply);			\
	EXPECT_NOTHING_TO_CLIENT(fx);			\
} while (0)

/* A command smtpwall answers itself: never forwarded. */
#define REFUSED(fx, cmd, reply) do {			\
	CLIENT(fx, cmd);				\
	EXPECT_CLIENT(fx, reply);			\
	EXPECT_NOTHING_TO_CLIENT(fx);			\
	EXPECT_NOTHING_TO_SERVER(fx);			\
} while (0)

/* Greeting and EHLO done: command mode, nothing owed. */
#define READY(fx) do {							\
	SERVER(fx, TFSM_GREETING);					\
	EXPECT_CLIENT(fx, TFSM_GREETING);				\
	ROUNDTRIP(fx, "EHLO client.example\r\n",			\
	    "250-mx.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n");	\
} while (0)

/* A transaction with one accepted recipient, DATA answered 354. */
#define IN_DATA(fx) do {						\
	READY(fx);							\
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");	\
	ROUNDTRIP(fx, "RCPT TO:<bob@example.net>\r\n", "250 2.1.5 Ok\r\n");	\
	ROUNDTRIP(fx, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");	\
	EXPECT_STATE(fx, SS_DATA);					\
} while (0)

static unsigned
tfsm_count_events(const struct tfsm *fx, enum smtp_event_kind kind, const char *what,
    const char *reason)
{
	unsigned i, n = 0;

	for (i = 0; i < fx->nev; i++)
		if (fx->ev[i].kind == kind &&
		    (what == NULL || strcmp(fx->ev[i].what, what) == 0) &&
		    (reason == NULL || strcmp(fx->ev[i].reason, reason) == 0))
			n++;
	return n;
}

static const struct tfsm_event *
tfsm_find_event(const struct tfsm *fx, enum smtp_event_kind kind, const char *what)
{
	unsigned i;

	for (i = 0; i < fx->nev; i++)
		if (fx->ev[i].kind == kind && strcmp(fx->ev[i].what, what) == 0)
			return &fx->ev[i];
	return NULL;
}

/* Occurrences of needle in the server's log (everything it ever received). */
static unsigned
tfsm_count_in_server(const struct tfsm *fx, const char *needle, size_t nlen)
{
	const char *p = buf_len(&fx->srv.b) ? buf_head(&fx->srv.b) : "";
	size_t len = buf_len(&fx->srv.b), i;
	unsigned n = 0;

	for (i = 0; i + nlen <= len; i++)
		if (memcmp(p + i, needle, nlen) == 0)
			n++;
	return n;
}

/* A new fixture owned by the test's one, so that a failing test leaks nothing. */
static struct tfsm *
tfsm_fresh(void **state)
{
	struct tfsm *base = *state;

	tfsm_free(base->extra);
	base->extra = tfsm_new();
	return base->extra;
}

static int
tfsm_setup(void **state)
{
	*state = tfsm_new();
	return 0;
}

static int
tfsm_teardown(void **state)
{
	tfsm_free(*state);
	return 0;
}

#define SERVER_FAILED(fx, code, enh, text) do {				\
	smtp_fsm_server_failed(&(fx)->f, (code), (enh), (text));	\
	TFSM_CHECK(fx, tfsm_after_call(fx));				\
	TFSM_CHECK(fx, tfsm_pump(fx));					\
} while (0)

#define CLIENT_TIMEOUT(fx) do {						\
	smtp_fsm_client_timeout(&(fx)->f);				\
	TFSM_CHECK(fx, tfsm_after_call(fx));				\
} while (0)

/* ---- greeting and EHLO -------------------------------------------------------- */

static void
test_smtp_fsm_greeting_passes_early_talker_held(void **state)
{
	struct tfsm *fx = *state;

	CLIENT(fx, "EHLO early.example\r\nMAIL FROM:<alice@example.com>\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_STATE(fx, SS_GREETING);
	assert_true(smtp_fsm_awaiting_server(&fx->f));

	SERVER(fx, "220-mx.example.net ESMTP\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);		/* a reply is passed on whole */
	EXPECT_NOTHING_TO_SERVER(fx);		/* the greeting is not over yet */
	SERVER(fx, "220 ready\r\n");
	EXPECT_CLIENT(fx, "220-mx.example.net ESMTP\r\n220 ready\r\n");
	EXPECT_SERVER(fx, "EHLO early.example\r\nMAIL FROM:<alice@example.com>\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_STATE(fx, SS_CMD);
}

/* SIZE in the EHLO reply never promises more than max_message_size (1000). */
static void
test_smtp_fsm_ehlo_size_lowered(void **state)
{
	static const struct {
		const char *server, *client;
	} t[] = {
		{ "250-SIZE 52428800\r\n", "250-SIZE 1000\r\n" },
		{ "250-SIZE 1001\r\n", "250-SIZE 1000\r\n" },
		{ "250-SIZE 0\r\n", "250-SIZE 1000\r\n" },		/* 0: no limit */
		{ "250-SIZE\r\n", "250-SIZE 1000\r\n" },		/* no value: no limit */
		{ "250-SIZE 1000\r\n", "250-SIZE 1000\r\n" },
		{ "250-SIZE 500\r\n", "250-SIZE 500\r\n" },		/* the server's is lower */
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct tfsm *fx = tfsm_fresh(state);
		char reply[256], want[256];

		SERVER(fx, TFSM_GREETING);
		EXPECT_CLIENT(fx, TFSM_GREETING);
		CLIENT(fx, "EHLO client.example\r\n");
		EXPECT_SERVER(fx, "EHLO client.example\r\n");
		snprintf(reply, sizeof(reply), "250-mx.example.net\r\n%s250 HELP\r\n", t[i].server);
		snprintf(want, sizeof(want), "250-mx.example.net\r\n%s250 HELP\r\n", t[i].client);
		SERVER(fx, reply);
		EXPECT_CLIENT(fx, want);
		EXPECT_NOTHING_TO_CLIENT(fx);
	}
}

/* Only the first line of the EHLO reply survives: it becomes "250 name". */
static void
test_smtp_fsm_ehlo_all_keywords_dropped(void **state)
{
	struct tfsm *fx = *state;

	SERVER(fx, TFSM_GREETING);
	EXPECT_CLIENT(fx, TFSM_GREETING);
	CLIENT(fx, "EHLO client.example\r\n");
	EXPECT_SERVER(fx, "EHLO client.example\r\n");
	SERVER(fx, "250-mx.example.net greets client.example\r\n250-CHUNKING\r\n250 STARTTLS\r\n");
	EXPECT_CLIENT(fx, "250 mx.example.net greets client.example\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	/* and the session goes on */
	ROUNDTRIP(fx, "NOOP\r\n", "250 2.0.0 Ok\r\n");
}

/* HELO's reply is not an EHLO reply: nothing is filtered. */
static void
test_smtp_fsm_helo_reply_unchanged(void **state)
{
	struct tfsm *fx = *state;

	SERVER(fx, TFSM_GREETING);
	EXPECT_CLIENT(fx, TFSM_GREETING);
	ROUNDTRIP(fx, "HELO client.example\r\n", "250 mx.example.net STARTTLS CHUNKING\r\n");
}

/* ---- the relay decision --------------------------------------------------------- */

static void
test_smtp_fsm_relay_refused_never_forwarded(void **state)
{
	struct tfsm *fx = *state;
	const struct tfsm_event *e;

	fx->max_recipients = 100;
	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	REFUSED(fx, "RCPT TO:<victim@elsewhere.example>\r\n",
	    "550 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n");
	assert_int_equal(tfsm_count_in_server(fx, "elsewhere", 9), 0);
	e = tfsm_find_event(fx, SMTP_EV_REFUSE, "rcpt");
	assert_non_null(e);
	assert_string_equal(e->reason, "relay");
	assert_string_equal(e->arg, "victim@elsewhere.example");
	assert_int_equal(e->code, 550);
	assert_int_equal(fx->f.rcpt_refused, 1);

	/* local domains: exact, any subdomain of .example.org, any case, one trailing dot */
	ROUNDTRIP(fx, "RCPT TO:<bob@example.net>\r\n", "250 2.1.5 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<carol@mail.example.org>\r\n", "250 2.1.5 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<dave@EXAMPLE.NET.>\r\n", "250 2.1.5 Ok\r\n");
	REFUSED(fx, "RCPT TO:<erin@example.org>\r\n",
	    "550 5.7.1 <erin@example.org>: Relay access denied\r\n");
	REFUSED(fx, "RCPT TO:<frank@notexample.net>\r\n",
	    "550 5.7.1 <frank@notexample.net>: Relay access denied\r\n");
}

/* Each classic relay trick is refused for an untrusted client, even towards a local domain. */
static void
test_smtp_fsm_relay_routing_tricks_refused(void **state)
{
	static const char *const tricks[] = {
		"victim%elsewhere.example@example.net",
		"elsewhere.example!victim@example.net",
		"victim@elsewhere.example@example.net",
		"@example.net:victim@elsewhere.example",
		"@mx.example.net,@example.net:victim@example.net",
	};
	struct tfsm *fx = *state;
	char cmd[256], reply[256];
	size_t i;

	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	for (i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
		snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>\r\n", tricks[i]);
		snprintf(reply, sizeof(reply), "550 5.7.1 <%s>: Relay access denied\r\n", tricks[i]);
		REFUSED(fx, cmd, reply);
	}
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_REFUSE, "rcpt", "routing"),
	    sizeof(tricks) / sizeof(tricks[0]));
}

/* The same tricks from a trusted client are forwarded: it may relay anywhere. */
static void
test_smtp_fsm_relay_trusted_client(void **state)
{
	struct tfsm *fx = *state;

	snprintf(fx->client_ip, sizeof(fx->client_ip), "%s", TFSM_TRUSTED);
	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<victim@elsewhere.example>\r\n", "250 2.1.5 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<victim%elsewhere.example@example.net>\r\n", "250 2.1.5 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<@example.net:victim@elsewhere.example>\r\n", "250 2.1.5 Ok\r\n");
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_REFUSE, NULL, NULL), 0);
}

/* "allow relay 203.0.113.7/32 to sms.carrier.example": that client, that domain, nothing more. */
static void
test_smtp_fsm_relay_allow_rule(void **state)
{
	struct tfsm *fx = *state, *other;

	snprintf(fx->client_ip, sizeof(fx->client_ip), "203.0.113.7");
	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<0612345678@sms.carrier.example>\r\n", "250 2.1.5 Ok\r\n");
	REFUSED(fx, "RCPT TO:<victim@elsewhere.example>\r\n",
	    "550 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n");
	REFUSED(fx, "RCPT TO:<x@sub.sms.carrier.example>\r\n",
	    "550 5.7.1 <x@sub.sms.carrier.example>: Relay access denied\r\n");
	/* the rule does not lift the routing check */
	REFUSED(fx, "RCPT TO:<victim%elsewhere.example@sms.carrier.example>\r\n",
	    "550 5.7.1 <victim%elsewhere.example@sms.carrier.example>: Relay access denied\r\n");

	other = tfsm_fresh(state);
	READY(other);
	ROUNDTRIP(other, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	REFUSED(other, "RCPT TO:<0612345678@sms.carrier.example>\r\n",
	    "550 5.7.1 <0612345678@sms.carrier.example>: Relay access denied\r\n");
}

static void
test_smtp_fsm_relay_postmaster(void **state)
{
	struct tfsm *fx = *state;

	fx->max_recipients = 100;
	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<>\r\n", "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<postmaster>\r\n", "250 2.1.5 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<PostMaster>\r\n", "250 2.1.5 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<postmaster@example.net>\r\n", "250 2.1.5 Ok\r\n");
	REFUSED(fx, "RCPT TO:<postmaster@elsewhere.example>\r\n",
	    "550 5.7.1 <postmaster@elsewhere.example>: Relay access denied\r\n");
	REFUSED(fx, "RCPT TO:<@elsewhere.example:postmaster@example.net>\r\n",
	    "550 5.7.1 <@elsewhere.example:postmaster@example.net>: Relay access denied\r\n");
}

/* Rules come from the live ruleset: a new rule holds for the next transaction. */
static void
test_smtp_fsm_rule_change_next_transaction(void **state)
{
	static const char text[] = "block sender *@newly-bad.example\n";
	struct tfsm *fx = *state;
	struct ruleset *rs;

	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<a@newly-bad.example>\r\n", "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RSET\r\n", "250 2.0.0 Ok\r\n");
	rs = rules_parse(text, sizeof(text) - 1, NULL, NULL);
	assert_non_null(rs);
	rules_unref(fx->rules);
	fx->rules = rs;
	REFUSED(fx, "MAIL FROM:<a@newly-bad.example>\r\n",
	    "550 5.7.1 <a@newly-bad.example>: Sender address rejected: blocked by policy\r\n");
}

/*
 * SPEC.md "Live rules": "A rule change takes effect for the next command of
 * every session". An allow relay rule added between MAIL and RCPT therefore
 * holds for that RCPT. (STYLE.md 16 says a transaction keeps its snapshot;
 * SPEC.md wins where they disagree.)
 */
static void
test_smtp_fsm_rule_change_next_command(void **state)
{
	static const char text[] = "allow relay 203.0.113.10/32 to partner.example\n";
	struct tfsm *fx = *state;
	struct ruleset *rs;

	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	rs = rules_parse(text, sizeof(text) - 1, NULL, NULL);
	assert_non_null(rs);
	rules_unref(fx->rules);
	fx->rules = rs;
	ROUNDTRIP(fx, "RCPT TO:<ops@partner.example>\r\n", "250 2.1.5 Ok\r\n");
}

/* ---- senders ------------------------------------------------------------------------ */

static void
test_smtp_fsm_sender_blocked(void **state)
{
	struct tfsm *fx = *state;
	const struct tfsm_event *e;

	READY(fx);
	REFUSED(fx, "MAIL FROM:<bad@spam.example>\r\n",
	    "550 5.7.1 <bad@spam.example>: Sender address rejected: blocked by policy\r\n");
	e = tfsm_find_event(fx, SMTP_EV_REFUSE, "from");
	assert_non_null(e);
	assert_string_equal(e->reason, "sender");
	assert_string_equal(e->rule, "block sender *@spam.example");
	assert_string_equal(e->arg, "bad@spam.example");
	assert_int_equal(e->code, 550);
	/* no transaction was opened */
	REFUSED(fx, "RCPT TO:<bob@example.net>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
	REFUSED(fx, "DATA\r\n", "503 5.5.1 Error: need MAIL command\r\n");
	/* the glob is case-insensitive; a parameter does not hide the address */
	REFUSED(fx, "MAIL FROM:<Bad@SPAM.Example> BODY=8BITMIME\r\n",
	    "550 5.7.1 <Bad@SPAM.Example>: Sender address rejected: blocked by policy\r\n");
	/* the null sender is not blocked by this ruleset */
	ROUNDTRIP(fx, "MAIL FROM:<>\r\n", "250 2.1.0 Ok\r\n");
}

static void
test_smtp_fsm_sender_null_blocked_by_rule(void **state)
{
	struct tfsm *fx = *state;

	snprintf(fx->rules_text, sizeof(fx->rules_text), "block sender <>\n");
	READY(fx);
	REFUSED(fx, "MAIL FROM:<>\r\n",
	    "550 5.7.1 <>: Sender address rejected: blocked by policy\r\n");
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
}

static void
test_smtp_fsm_mail_size_param_over_limit(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	REFUSED(fx, "MAIL FROM:<alice@example.com> SIZE=5000\r\n",
	    "552 5.3.4 Message size exceeds fixed limit\r\n");
	REFUSED(fx, "RCPT TO:<bob@example.net>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com> SIZE=1000\r\n", "250 2.1.0 Ok\r\n");
}

/* ---- pipelining ------------------------------------------------------------------------ */

static void
test_smtp_fsm_pipelining_local_reply_in_place(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "MAIL FROM:<alice@example.com>\r\n"
	    "RCPT TO:<bob@example.net>\r\n"
	    "RCPT TO:<victim@elsewhere.example>\r\n"
	    "RCPT TO:<carol@example.net>\r\n"
	    "DATA\r\n");
	EXPECT_SERVER(fx, "MAIL FROM:<alice@example.com>\r\n"
	    "RCPT TO:<bob@example.net>\r\n"
	    "RCPT TO:<carol@example.net>\r\n"
	    "DATA\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	EXPECT_NOTHING_TO_CLIENT(fx);		/* the 550 waits for its turn */

	SERVER(fx, "250 2.1.0 Ok\r\n");
	EXPECT_CLIENT(fx, "250 2.1.0 Ok\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	SERVER(fx, "250 2.1.5 Ok\r\n");
	EXPECT_CLIENT(fx, "250 2.1.5 Ok\r\n"
	    "550 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	SERVER(fx, "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	EXPECT_CLIENT(fx, "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_STATE(fx, SS_DATA);
}

static void
test_smtp_fsm_pipelining_local_reply_at_once_when_idle(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	CLIENT(fx, "RCPT TO:<victim@elsewhere.example>\r\n");
	EXPECT_CLIENT(fx, "550 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n");
	assert_false(smtp_fsm_awaiting_server(&fx->f));
	/* and a whole batch of local replies goes out at once, in order */
	CLIENT(fx, "RCPT TO:<a@elsewhere.example>\r\nEXPN staff\r\nRCPT TO:<b@elsewhere.example>\r\n");
	EXPECT_CLIENT(fx, "550 5.7.1 <a@elsewhere.example>: Relay access denied\r\n"
	    "502 5.5.1 Error: command not implemented\r\n"
	    "550 5.7.1 <b@elsewhere.example>: Relay access denied\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
}

/* A multi-line reply completes its command only on its last line. */
static void
test_smtp_fsm_pipelining_multiline_reply(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "HELP\r\nEXPN staff\r\n");
	EXPECT_SERVER(fx, "HELP\r\n");
	SERVER(fx, "214-This is\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);		/* held until its last line */
	SERVER(fx, "214 help\r\n");
	EXPECT_CLIENT(fx, "214-This is\r\n214 help\r\n502 5.5.1 Error: command not implemented\r\n");
}

/* A reply the server leaves unfinished reaches the client as one code: ours. */
static void
test_smtp_fsm_unfinished_multiline_reply_never_passed(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	CLIENT(fx, "RCPT TO:<bob@example.net>\r\n");
	EXPECT_SERVER(fx, "RCPT TO:<bob@example.net>\r\n");
	SERVER(fx, "550-5.1.1 <bob@example.net>: unknown\r\n550-5.1.1 see the postmaster\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	SERVER_FAILED(fx, 451, "4.4.2", "Error: timeout waiting for the mail server");
	EXPECT_CLIENT(fx, "451 4.4.2 " TFSM_HOST " Error: timeout waiting for the mail server\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
}

/* ---- DATA ------------------------------------------------------------------------------ */

static void
test_smtp_fsm_data_barrier_then_streamed(void **state)
{
	static const char body[] = "Subject: hello\r\n\r\n..leading dot\r\nbody\r\n.\r\n";
	struct tfsm *fx = *state;

	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<bob@example.net>\r\n", "250 2.1.5 Ok\r\n");
	/* content sent with DATA is not read before the 354: a 554 would make it commands */
	CLIENT(fx, "DATA\r\nMAIL FROM:<x@example.com>\r\n");
	EXPECT_SERVER(fx, "DATA\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	SERVER(fx, "354 go ahead\r\n");
	EXPECT_CLIENT(fx, "354 go ahead\r\n");
	EXPECT_SERVER(fx, "MAIL FROM:<x@example.com>\r\n");	/* as content */
	EXPECT_STATE(fx, SS_DATA);
	CLIENT(fx, body);
	EXPECT_SERVER(fx, body);
	EXPECT_NOTHING_TO_SERVER(fx);
	EXPECT_NOTHING_TO_CLIENT(fx);		/* the 250 is the server's, never ours */
	EXPECT_STATE(fx, SS_CMD);
	assert_true(smtp_fsm_awaiting_server(&fx->f));
	SERVER(fx, "250 2.0.0 Ok: queued as 4Xyz\r\n");
	EXPECT_CLIENT(fx, "250 2.0.0 Ok: queued as 4Xyz\r\n");
	assert_int_equal(fx->f.messages, 1);
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_MESSAGE, NULL, NULL), 1);
	assert_int_equal(tfsm_find_event(fx, SMTP_EV_MESSAGE, "data")->code, 250);
	/* a second transaction works the same way */
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
}

/*
 * The log line of a message names its own sender, even when the client
 * pipelined the next transaction's MAIL behind the final dot.
 */
static void
test_smtp_fsm_message_event_names_its_own_sender(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<bob@example.net>\r\n", "250 2.1.5 Ok\r\n");
	ROUNDTRIP(fx, "DATA\r\n", "354 go ahead\r\n");
	CLIENT(fx, "hi\r\n.\r\nMAIL FROM:<carol@example.com>\r\n");
	EXPECT_SERVER(fx, "hi\r\n.\r\nMAIL FROM:<carol@example.com>\r\n");
	SERVER(fx, "250 2.0.0 Ok: queued\r\n250 2.1.0 Ok\r\n");
	EXPECT_CLIENT(fx, "250 2.0.0 Ok: queued\r\n250 2.1.0 Ok\r\n");
	assert_string_equal(tfsm_find_event(fx, SMTP_EV_MESSAGE, "data")->arg,
	    "alice@example.com");
}

/* One whole message from `from`, accepted by the server. */
static void
tfsm_message(struct tfsm *fx, const char *from)
{
	char mail[SMTP_PATH_MAX + 32];

	snprintf(mail, sizeof(mail), "MAIL FROM:<%s>\r\n", from);
	ROUNDTRIP(fx, mail, "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<bob@example.net>\r\n", "250 2.1.5 Ok\r\n");
	ROUNDTRIP(fx, "DATA\r\n", "354 go ahead\r\n");
	CLIENT(fx, "hi\r\n.\r\n");
	EXPECT_SERVER(fx, "hi\r\n.\r\n");
	SERVER(fx, "250 2.0.0 Ok: queued\r\n");
	EXPECT_CLIENT(fx, "250 2.0.0 Ok: queued\r\n");
	assert_string_equal(smtp_fsm_str(fx->f.from), from);
	assert_string_equal(smtp_fsm_str(fx->f.msg_from), from);
}

/*
 * helo, from and msg_from keep their blocks: a MAIL, a message's end or a
 * repeated EHLO whose value fits is no allocator call (no allocation per
 * command); only a longer value than any before grows a block.
 */
static void
test_smtp_fsm_strings_reuse_their_block(void **state)
{
	struct tfsm *fx = *state;
	char longer[200];
	const char *helo, *from, *msg_from;

	READY(fx);
	tfsm_message(fx, "alice@example.com");
	helo = fx->f.helo, from = fx->f.from, msg_from = fx->f.msg_from;
	assert_non_null(from);
	assert_non_null(msg_from);
	tfsm_message(fx, "al@example.com");		/* shorter */
	tfsm_message(fx, "carol@example.com");		/* as long as the first */
	assert_ptr_equal(fx->f.from, from);
	assert_ptr_equal(fx->f.msg_from, msg_from);
	ROUNDTRIP(fx, "EHLO client.example\r\n", "250 mx.example.net\r\n");
	assert_ptr_equal(fx->f.helo, helo);
	assert_string_equal(fx->f.helo, "client.example");

	/* a longer address grows the block; the grown block then serves shorter ones */
	memset(longer, 'x', sizeof(longer));
	memcpy(longer + sizeof(longer) - 13, "@example.com", 13);
	tfsm_message(fx, longer);
	assert_true(fx->f.from_cap >= strlen(longer));
	from = fx->f.from, msg_from = fx->f.msg_from;
	tfsm_message(fx, "a@example.com");
	tfsm_message(fx, longer);
	assert_ptr_equal(fx->f.from, from);
	assert_ptr_equal(fx->f.msg_from, msg_from);
	assert_int_equal(fx->f.messages, 6);
}

/* Content split anywhere (here: one byte per read) reaches the server unchanged. */
static void
test_smtp_fsm_data_byte_by_byte(void **state)
{
	static const char body[] = "From: a\r\n\r\nline one\r\n.\r\n";
	struct tfsm *fx = *state;
	size_t i;

	IN_DATA(fx);
	for (i = 0; i < sizeof(body) - 1; i++) {
		CLIENT_RAW(fx, body + i, 1);
		EXPECT_NOTHING_TO_CLIENT(fx);
	}
	EXPECT_SERVER(fx, body);
	EXPECT_NOTHING_TO_SERVER(fx);
	SERVER(fx, "250 2.0.0 queued\r\n");
	EXPECT_CLIENT(fx, "250 2.0.0 queued\r\n");
}

/* Commands pipelined after the final dot are read as commands: policy applies to them. */
static void
test_smtp_fsm_data_commands_after_dot_parsed(void **state)
{
	struct tfsm *fx = *state;

	IN_DATA(fx);
	CLIENT(fx, "hi\r\n.\r\nMAIL FROM:<bad@spam.example>\r\nQUIT\r\n");
	EXPECT_SERVER(fx, "hi\r\n.\r\nQUIT\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	EXPECT_NOTHING_TO_CLIENT(fx);
	SERVER(fx, "250 2.0.0 queued\r\n");
	EXPECT_CLIENT(fx, "250 2.0.0 queued\r\n"
	    "550 5.7.1 <bad@spam.example>: Sender address rejected: blocked by policy\r\n");
	SERVER(fx, "221 2.0.0 Bye\r\n");
	EXPECT_CLIENT(fx, "221 2.0.0 Bye\r\n");
	assert_true(smtp_fsm_finished(&fx->f));
}

static void
test_smtp_fsm_data_without_valid_rcpt(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	REFUSED(fx, "RCPT TO:<victim@elsewhere.example>\r\n",
	    "550 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n");
	REFUSED(fx, "DATA\r\n", "554 5.5.1 Error: no valid recipients\r\n");
	EXPECT_STATE(fx, SS_CMD);
	ROUNDTRIP(fx, "RSET\r\n", "250 2.0.0 Ok\r\n");
}

/* A 5xx to DATA keeps command mode: the next line is a command again. */
static void
test_smtp_fsm_data_refused_by_server(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<bob@example.net>\r\n", "250 2.1.5 Ok\r\n");
	ROUNDTRIP(fx, "DATA\r\n", "554 5.5.1 Error: no valid recipients\r\n");
	EXPECT_STATE(fx, SS_CMD);
	REFUSED(fx, "MAIL FROM:<bad@spam.example>\r\n",
	    "550 5.7.1 <bad@spam.example>: Sender address rejected: blocked by policy\r\n");
	ROUNDTRIP(fx, "RSET\r\n", "250 2.0.0 Ok\r\n");
}

static void
test_smtp_fsm_max_recipients(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<a@example.net>\r\n", "250 2.1.5 Ok\r\n");
	/* refused recipients do not count */
	REFUSED(fx, "RCPT TO:<victim@elsewhere.example>\r\n",
	    "550 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n");
	ROUNDTRIP(fx, "RCPT TO:<b@example.net>\r\n", "250 2.1.5 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<c@example.net>\r\n", "250 2.1.5 Ok\r\n");
	REFUSED(fx, "RCPT TO:<d@example.net>\r\n", "452 4.5.3 Error: too many recipients\r\n");
	/* per message: after RSET there is room again */
	ROUNDTRIP(fx, "RSET\r\n", "250 2.0.0 Ok\r\n");
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<d@example.net>\r\n", "250 2.1.5 Ok\r\n");
}

/* 1000 content bytes: exactly max_message_size, accepted. */
static void
test_smtp_fsm_data_size_limit_exact(void **state)
{
	struct tfsm *fx = *state;
	char line[101];
	int i;

	memset(line, 'x', 98);
	memcpy(line + 98, "\r\n", 3);
	IN_DATA(fx);
	for (i = 0; i < 10; i++)
		CLIENT(fx, line);
	CLIENT(fx, ".\r\n");
	assert_false(fx->flags & SMTP_FSM_ABORT_SERVER);
	for (i = 0; i < 10; i++)
		EXPECT_SERVER(fx, line);
	EXPECT_SERVER(fx, ".\r\n");
	SERVER(fx, "250 2.0.0 queued\r\n");
	EXPECT_CLIENT(fx, "250 2.0.0 queued\r\n");
}

/* 1001 bytes: aborted at the server, never ended; 552 after the client's dot. */
static void
test_smtp_fsm_data_oversize_aborted(void **state)
{
	struct tfsm *fx = *state;
	char line[101];
	int i;

	memset(line, 'x', 98);
	memcpy(line + 98, "\r\n", 3);
	IN_DATA(fx);
	for (i = 0; i < 10; i++)
		CLIENT(fx, line);
	assert_false(fx->flags & SMTP_FSM_ABORT_SERVER);
	CLIENT(fx, "y");
	assert_true(fx->flags & SMTP_FSM_ABORT_SERVER);
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_ABORT, "data", "size"), 1);
	CLIENT(fx, "\r\nmore\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);		/* 552 only once the client has finished */
	CLIENT(fx, ".\r\n");
	EXPECT_CLIENT(fx, "552 5.3.4 Message size exceeds fixed limit\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_int_equal(tfsm_count_in_server(fx, "\r\n.\r\n", 5), 0);
	assert_int_equal(tfsm_count_in_server(fx, "more", 4), 0);
	assert_int_equal(fx->server_after_abort, 0);
	/* the server's side is gone: QUIT is answered by us */
	CLIENT(fx, "QUIT\r\n");
	EXPECT_CLIENT(fx, "221 2.0.0 Bye\r\n");
	assert_int_equal(fx->server_after_abort, 0);
	assert_true(smtp_fsm_finished(&fx->f));
}

static void
test_smtp_fsm_data_oversize_then_mail_421(void **state)
{
	struct tfsm *fx = *state;
	char big[1200];

	memset(big, 'z', sizeof(big));
	memcpy(big + sizeof(big) - 2, "\r\n", 2);
	IN_DATA(fx);
	CLIENT_RAW(fx, big, sizeof(big));
	CLIENT(fx, ".\r\nMAIL FROM:<alice@example.com>\r\n");
	EXPECT_CLIENT(fx, "552 5.3.4 Message size exceeds fixed limit\r\n"
	    "421 4.4.1 " TFSM_HOST " Error: connection to the mail server lost\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_true(fx->flags & SMTP_FSM_CLOSE_CLIENT);
	assert_true(smtp_fsm_finished(&fx->f));	/* closed once its replies are out */
	assert_int_equal(tfsm_count_in_server(fx, "zzz", 3), 0);	/* one chunk: nothing left */
	assert_int_equal(tfsm_count_in_server(fx, "alice@example.com>\r\n", 20), 1);	/* the first MAIL only */
}

/* ---- content that could end a message elsewhere (SMTP smuggling) -------------------- */

static const char *const tfsm_smuggle[] = {
	"a\n.\nMAIL FROM:<x@evil.example>\r\nRCPT TO:<victim@elsewhere.example>\r\n",
	"a\r\n.\nMAIL FROM:<x@evil.example>\r\n",
	"a\n.\r\nMAIL FROM:<x@evil.example>\r\n",
	"a\r.\rMAIL FROM:<x@evil.example>\r\n",
	"a\r\n.\rMAIL FROM:<x@evil.example>\r\n",
	"a\r.\r\nMAIL FROM:<x@evil.example>\r\n",
};

/* bare_lf = reject: aborted, 554 5.6.0, no end of message of any kind reaches the server. */
static void
test_smtp_fsm_smuggling_reject(void **state)
{
	size_t i, j, len;

	for (i = 0; i < sizeof(tfsm_smuggle) / sizeof(tfsm_smuggle[0]); i++) {
		for (j = 0; j < 2; j++) {	/* one chunk, then byte by byte */
			struct tfsm *fx = tfsm_fresh(state);
			size_t k;

			IN_DATA(fx);
			len = strlen(tfsm_smuggle[i]);
			if (j == 0)
				CLIENT(fx, tfsm_smuggle[i]);
			else
				for (k = 0; k < len; k++)
					CLIENT_RAW(fx, tfsm_smuggle[i] + k, 1);
			assert_true(fx->flags & SMTP_FSM_ABORT_SERVER);
			CLIENT(fx, ".\r\n");
			EXPECT_CLIENT(fx, "554 5.6.0 Message refused: bare LF or bare CR line ending\r\n");
			EXPECT_NOTHING_TO_CLIENT(fx);
			assert_int_equal(tfsm_count_in_server(fx, "evil", 4), 0);
			/* no end of data of any kind: <LF|CR> "." <LF|CR> */
			for (k = 0; k < 4; k++) {
				char end[3] = { k & 1 ? '\r' : '\n', '.', k & 2 ? '\r' : '\n' };

				if (tfsm_count_in_server(fx, end, 3) != 0)
					fail_msg("payload %zu, %s: the server received an end of data",
					    i, j ? "byte by byte" : "one chunk");
			}
			assert_int_equal(fx->server_after_abort, 0);
		}
	}
}

/* bare_lf = normalize: one message, CRLF only, the smuggled MAIL is content. */
static void
test_smtp_fsm_smuggling_normalize(void **state)
{
	size_t i, k, len, n;
	const char *p;

	for (i = 0; i < sizeof(tfsm_smuggle) / sizeof(tfsm_smuggle[0]); i++) {
		struct tfsm *fx = tfsm_fresh(state);

		fx->bare_lf = SMTP_DATA_NORMALIZE;
		IN_DATA(fx);
		len = strlen(tfsm_smuggle[i]);
		for (k = 0; k < len; k++)
			CLIENT_RAW(fx, tfsm_smuggle[i] + k, 1);
		CLIENT(fx, ".\r\n");
		assert_false(fx->flags & SMTP_FSM_ABORT_SERVER);
		SERVER(fx, "250 2.0.0 queued\r\n");
		EXPECT_CLIENT(fx, "250 2.0.0 queued\r\n");
		EXPECT_NOTHING_TO_CLIENT(fx);
		CLIENT(fx, "QUIT\r\n");
		/* what the server received: the commands, one message, QUIT */
		p = buf_head(&fx->srv.b);
		n = buf_len(&fx->srv.b);
		for (k = 0; k < n; k++) {
			if (p[k] == '\n' && (k == 0 || p[k - 1] != '\r'))
				fail_msg("payload %zu: bare LF at %zu of the server's stream", i, k);
			if (p[k] == '\r' && (k + 1 == n || p[k + 1] != '\n'))
				fail_msg("payload %zu: bare CR at %zu of the server's stream", i, k);
		}
		assert_int_equal(tfsm_count_in_server(fx, "\r\n.\r\n", 5), 1);
		assert_true(n > 11 && memcmp(p + n - 11, "\r\n.\r\nQUIT\r\n", 11) == 0);
		assert_int_equal(tfsm_count_in_server(fx, "\r\nMAIL FROM:<x@evil.example>", 28), 1);
	}
}

/* A NUL is refused in both modes (some servers strip NULs). */
static void
test_smtp_fsm_data_nul_refused(void **state)
{
	static const char body[] = "a\0b\r\n";
	enum smtp_data_mode m;

	for (m = SMTP_DATA_REJECT; m <= SMTP_DATA_NORMALIZE; m++) {
		struct tfsm *fx = tfsm_fresh(state);

		fx->bare_lf = m;
		IN_DATA(fx);
		CLIENT_RAW(fx, body, sizeof(body) - 1);
		assert_true(fx->flags & SMTP_FSM_ABORT_SERVER);
		CLIENT(fx, ".\r\n");
		EXPECT_CLIENT(fx, "554 5.6.0 Message refused: NUL byte in content\r\n");
		EXPECT_NOTHING_TO_CLIENT(fx);
		assert_int_equal(tfsm_count_in_server(fx, "\r\n.\r\n", 5), 0);
		assert_int_equal(tfsm_count_events(fx, SMTP_EV_ABORT, "data", "nul"), 1);
	}
}

/* ---- STARTTLS ------------------------------------------------------------------------- */

static void
test_smtp_fsm_starttls_strip_drains(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "STARTTLS\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\n");
	EXPECT_CLIENT(fx, "454 4.7.0 TLS not available\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_NOTHING_TO_SERVER(fx);
	assert_true(fx->flags & SMTP_FSM_DRAIN_CLIENT);
	EXPECT_STATE(fx, SS_CMD);
	/* a later command is read normally */
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
}

/* Stripped while a command is still in flight: the 454 keeps its place. */
static void
test_smtp_fsm_starttls_strip_pipelined(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "NOOP\r\nSTARTTLS\r\nRSET\r\n");
	EXPECT_SERVER(fx, "NOOP\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	EXPECT_NOTHING_TO_CLIENT(fx);
	SERVER(fx, "250 2.0.0 Ok\r\n");
	EXPECT_CLIENT(fx, "250 2.0.0 Ok\r\n454 4.7.0 TLS not available\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_NOTHING_TO_SERVER(fx);
}

static void
test_smtp_fsm_starttls_allow_raw(void **state)
{
	static const char hello[] = "\x16\x03\x01\x00\x05\x01\0\r\n.\r\n";
	static const char shello[] = "\x16\x03\x03\0\x02\x02\n";
	struct tfsm *fx = *state;

	fx->starttls_allow = 1;
	READY(fx);
	CLIENT(fx, "STARTTLS\r\nMAIL FROM:<bad@spam.example>\r\n");
	EXPECT_SERVER(fx, "STARTTLS\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_false(fx->flags & SMTP_FSM_DRAIN_CLIENT);
	SERVER(fx, "220 2.0.0 Ready to start TLS\r\n");
	EXPECT_CLIENT(fx, "220 2.0.0 Ready to start TLS\r\n");
	assert_true(fx->flags & SMTP_FSM_DRAIN_CLIENT);
	EXPECT_STATE(fx, SS_RAW);
	EXPECT_NOTHING_TO_SERVER(fx);		/* the plaintext MAIL was drained */
	CLIENT_RAW(fx, hello, sizeof(hello) - 1);
	EXPECT_SERVER_RAW(fx, hello, sizeof(hello) - 1);
	SERVER(fx, shello);
	EXPECT_CLIENT(fx, shello);
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_NOTHING_TO_SERVER(fx);
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_REFUSE, NULL, NULL), 0);
}

/* ---- AUTH ------------------------------------------------------------------------------ */


/*
 * After 334 the next line is the client's answer, passed unread: even one
 * that looks like a blocked MAIL is neither checked, nor reported, nor
 * remembered as the sender.
 */
static void
test_smtp_fsm_auth_continuation_not_parsed(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "AUTH LOGIN\r\ndXNlcg==\r\n");
	EXPECT_SERVER(fx, "AUTH LOGIN\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);		/* nothing read before the 334 */
	SERVER(fx, "334 VXNlcm5hbWU6\r\n");
	EXPECT_CLIENT(fx, "334 VXNlcm5hbWU6\r\n");
	EXPECT_SERVER(fx, "dXNlcg==\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	SERVER(fx, "334 UGFzc3dvcmQ6\r\n");
	EXPECT_CLIENT(fx, "334 UGFzc3dvcmQ6\r\n");
	EXPECT_STATE(fx, SS_AUTH);
	CLIENT(fx, "MAIL FROM:<bad@spam.example>\r\n");
	EXPECT_SERVER(fx, "MAIL FROM:<bad@spam.example>\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_REFUSE, NULL, NULL), 0);
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_ERROR, NULL, NULL), 0);
	assert_false(fx->f.have_from);
	SERVER(fx, "535 5.7.8 Authentication failed\r\n");
	EXPECT_CLIENT(fx, "535 5.7.8 Authentication failed\r\n");
	EXPECT_STATE(fx, SS_CMD);
	assert_false(fx->f.authenticated);
	/* a failed AUTH gives no relay right */
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	REFUSED(fx, "RCPT TO:<victim@elsewhere.example>\r\n",
	    "550 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n");
}

static void
test_smtp_fsm_auth_relay(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	ROUNDTRIP(fx, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", "235 2.7.0 Authentication successful\r\n");
	assert_true(fx->f.authenticated);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<friend@elsewhere.example>\r\n", "250 2.1.5 Ok\r\n");
	/* authenticated: routing is the server's business (SPEC step 2) */
	ROUNDTRIP(fx, "RCPT TO:<a%b@elsewhere.example>\r\n", "250 2.1.5 Ok\r\n");
}

static void
test_smtp_fsm_auth_relay_off(void **state)
{
	struct tfsm *fx = *state;

	fx->auth_relay = 0;
	READY(fx);
	ROUNDTRIP(fx, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", "235 2.7.0 Authentication successful\r\n");
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	REFUSED(fx, "RCPT TO:<friend@elsewhere.example>\r\n",
	    "550 5.7.1 <friend@elsewhere.example>: Relay access denied\r\n");
	ROUNDTRIP(fx, "RCPT TO:<bob@example.net>\r\n", "250 2.1.5 Ok\r\n");
}

/* A continuation line with a bare LF is not forwarded: the exchange is cancelled with "*". */
static void
test_smtp_fsm_auth_bad_continuation_cancelled(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	ROUNDTRIP(fx, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n");
	CLIENT(fx, "dXNl\ncg==\r\n");
	EXPECT_SERVER(fx, "*\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	SERVER(fx, "501 5.7.0 Authentication aborted\r\n");
	EXPECT_CLIENT(fx, "501 5.7.0 Authentication aborted\r\n");
	EXPECT_STATE(fx, SS_CMD);
}

/* ---- commands ---------------------------------------------------------------------------- */

static void
test_smtp_fsm_commands_not_listed(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	REFUSED(fx, "EXPN staff\r\n", "502 5.5.1 Error: command not implemented\r\n");
	REFUSED(fx, "TURN\r\n", "502 5.5.1 Error: command not recognized\r\n");
	REFUSED(fx, "X-LINK2STATE CHUNK=1\r\n", "502 5.5.1 Error: command not recognized\r\n");
	REFUSED(fx, "XCLIENT ADDR=192.0.2.15\r\n", "502 5.5.1 Error: command not implemented\r\n");
	REFUSED(fx, "BDAT 10 LAST\r\n", "502 5.5.1 Error: command not implemented\r\n");
	ROUNDTRIP(fx, "VRFY bob\r\n", "252 2.0.0 bob\r\n");
	ROUNDTRIP(fx, "noop\r\n", "250 2.0.0 Ok\r\n");
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_ERROR, "command", "not_allowed"), 5);
}

/* XCLIENT and XFORWARD are never forwarded, whatever `commands` says; a listed ETRN is. */
static void
test_smtp_fsm_commands_listed(void **state)
{
	struct tfsm *fx = *state;

	assert_int_equal(tfsm_set_commands(fx, TFSM_COMMANDS " ETRN XCLIENT XFORWARD EXPN"), 0);
	READY(fx);
	REFUSED(fx, "XCLIENT ADDR=192.0.2.15 NAME=trusted.example\r\n",
	    "502 5.5.1 Error: command not implemented\r\n");
	REFUSED(fx, "XFORWARD ADDR=192.0.2.15\r\n", "502 5.5.1 Error: command not implemented\r\n");
	ROUNDTRIP(fx, "ETRN example.net\r\n", "250 Queuing started\r\n");
	ROUNDTRIP(fx, "EXPN staff\r\n", "250 <a@example.net>\r\n");
}

/* Not SMTP: 500 5.5.1, and the third such line closes the session with 421. */
static void
test_smtp_fsm_not_smtp_closes(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	REFUSED(fx, "GET / HTTP/1.1\r\n", "500 5.5.1 Error: not an SMTP command\r\n");
	REFUSED(fx, "Host: mx.example.net\r\n", "500 5.5.1 Error: not an SMTP command\r\n");
	assert_false(fx->flags & SMTP_FSM_CLOSE_CLIENT);
	CLIENT(fx, "User-Agent: curl/8\r\nNOOP\r\n");
	EXPECT_CLIENT(fx, "421 4.7.0 " TFSM_HOST " Error: this is an SMTP server; closing\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_NOTHING_TO_SERVER(fx);
	assert_true(fx->flags & SMTP_FSM_CLOSE_CLIENT);
	assert_true(smtp_fsm_finished(&fx->f));	/* closed once its replies are out */
}

/*
 * The same with a command still in flight: the server's reply to it, our
 * two 500s and the 421 reach the client, in that order, before the close.
 * (SPEC: "after a few such lines the session is closed with 421".)
 */
static void
test_smtp_fsm_not_smtp_closes_after_owed_reply(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "NOOP\r\nGET / HTTP/1.1\r\nHost: mx.example.net\r\nAccept: */*\r\n");
	EXPECT_SERVER(fx, "NOOP\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	assert_true(fx->flags & SMTP_FSM_CLOSE_CLIENT);
	SERVER(fx, "250 2.0.0 Ok\r\n");
	EXPECT_CLIENT(fx, "250 2.0.0 Ok\r\n"
	    "500 5.5.1 Error: not an SMTP command\r\n"
	    "500 5.5.1 Error: not an SMTP command\r\n"
	    "421 4.7.0 " TFSM_HOST " Error: this is an SMTP server; closing\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
}

static void
test_smtp_fsm_bad_bytes_in_command(void **state)
{
	static const struct {
		const char	*line;
		size_t		 len;
	} bad[] = {
		{ "NOOP\nRSET\r\n", 11 },		/* a bare LF inside: one line, ending at CRLF */
		{ "NO\0OP\r\n", 7 },			/* NUL */
		{ "NO\rOP\r\n", 7 },			/* bare CR */
		{ "MAIL FROM:<a@example.com>\r\r\n", 28 },
	};
	struct tfsm *fx = *state;
	size_t i;

	READY(fx);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CLIENT_RAW(fx, bad[i].line, bad[i].len);
		EXPECT_CLIENT(fx, "500 5.5.2 Error: bad character in command (NUL, bare CR or bare LF)\r\n");
		EXPECT_NOTHING_TO_CLIENT(fx);
		EXPECT_NOTHING_TO_SERVER(fx);
		ROUNDTRIP(fx, "NOOP\r\n", "250 2.0.0 Ok\r\n");
	}
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_ERROR, "command", "bad_bytes"), 4);
}

/* max_line_length (512) counts the CRLF: 512 passes, 513 is refused and discarded through its end. */
static void
test_smtp_fsm_line_length_limit(void **state)
{
	struct tfsm *fx = *state;
	char line[700];

	READY(fx);
	memset(line, 'a', sizeof(line));
	memcpy(line, "NOOP ", 5);
	memcpy(line + 510, "\r\n", 3);
	ROUNDTRIP(fx, line, "250 2.0.0 Ok\r\n");

	memcpy(line + 510, "a\r\n", 4);	/* 513 */
	REFUSED(fx, line, "500 5.5.2 Error: line too long\r\n");
	ROUNDTRIP(fx, "NOOP\r\n", "250 2.0.0 Ok\r\n");

	/* the tail of a long line is not a command, even when it looks like one */
	memcpy(line + 512, "RCPT TO:<victim@elsewhere.example>\r\n", 37);
	CLIENT_RAW(fx, line, 300);
	EXPECT_NOTHING_TO_CLIENT(fx);
	CLIENT(fx, line + 300);
	EXPECT_CLIENT(fx, "500 5.5.2 Error: line too long\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_NOTHING_TO_SERVER(fx);
	ROUNDTRIP(fx, "NOOP\r\n", "250 2.0.0 Ok\r\n");
}

static void
test_smtp_fsm_quit_nothing_after(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "QUIT\r\nMAIL FROM:<alice@example.com>\r\n");
	EXPECT_SERVER(fx, "QUIT\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	EXPECT_STATE(fx, SS_QUIT);
	assert_false(smtp_fsm_finished(&fx->f));
	CLIENT(fx, "RCPT TO:<bob@example.net>\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	EXPECT_NOTHING_TO_CLIENT(fx);
	SERVER(fx, "221 2.0.0 Bye\r\n");
	EXPECT_CLIENT(fx, "221 2.0.0 Bye\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_true(smtp_fsm_finished(&fx->f));
	/* the server closing after its 221 is no failure */
	SERVER_EOF(fx);
	EXPECT_NOTHING_TO_CLIENT(fx);
}

/* ---- the server failing ---------------------------------------------------------------- */

static void
test_smtp_fsm_server_failed_421_in_order(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "MAIL FROM:<alice@example.com>\r\n"
	    "RCPT TO:<victim@elsewhere.example>\r\n"
	    "RCPT TO:<bob@example.net>\r\n");
	EXPECT_SERVER(fx, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\n");
	SERVER(fx, "250 2.1.0 Ok\r\n");
	EXPECT_CLIENT(fx, "250 2.1.0 Ok\r\n"
	    "550 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	SERVER_FAILED(fx, 421, "4.4.2", "Error: timeout exceeded");
	EXPECT_CLIENT(fx, "421 4.4.2 " TFSM_HOST " Error: timeout exceeded\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_STATE(fx, SS_CLOSED);
	assert_true(fx->flags & SMTP_FSM_CLOSE_CLIENT);
	assert_true(fx->flags & SMTP_FSM_ABORT_SERVER);
	assert_true(smtp_fsm_finished(&fx->f));
}

/* 451: each reply still owed gets it, local replies keep their place, then "server gone". */
static void
test_smtp_fsm_server_failed_451_server_gone(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "MAIL FROM:<alice@example.com>\r\n"
	    "RCPT TO:<victim@elsewhere.example>\r\n"
	    "RCPT TO:<bob@example.net>\r\n");
	EXPECT_SERVER(fx, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\n");
	SERVER_FAILED(fx, 451, "4.4.2", "Error: timeout exceeded");
	EXPECT_CLIENT(fx, "451 4.4.2 " TFSM_HOST " Error: timeout exceeded\r\n"
	    "550 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n"
	    "451 4.4.2 " TFSM_HOST " Error: timeout exceeded\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_false(fx->flags & SMTP_FSM_CLOSE_CLIENT);
	assert_false(smtp_fsm_awaiting_server(&fx->f));
	CLIENT(fx, "MAIL FROM:<alice@example.com>\r\n");
	EXPECT_CLIENT(fx, "421 4.4.1 " TFSM_HOST " Error: connection to the mail server lost\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	assert_true(smtp_fsm_finished(&fx->f));	/* closed once its replies are out */
	assert_true(fx->flags & SMTP_FSM_CLOSE_CLIENT);
}

static void
test_smtp_fsm_server_failed_451_then_quit(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "NOOP\r\n");
	EXPECT_SERVER(fx, "NOOP\r\n");
	SERVER_FAILED(fx, 451, "4.4.2", "Error: timeout exceeded");
	EXPECT_CLIENT(fx, "451 4.4.2 " TFSM_HOST " Error: timeout exceeded\r\n");
	CLIENT(fx, "QUIT\r\n");
	EXPECT_CLIENT(fx, "221 2.0.0 Bye\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_NOTHING_TO_SERVER(fx);
	assert_true(smtp_fsm_finished(&fx->f));
}

/* After the end of DATA the server has 10 minutes; then 451, and the message is not taken. */
static void
test_smtp_fsm_server_failed_after_dot(void **state)
{
	struct tfsm *fx = *state;

	IN_DATA(fx);
	CLIENT(fx, "hi\r\n.\r\n");
	EXPECT_SERVER(fx, "hi\r\n.\r\n");
	SERVER_FAILED(fx, 451, "4.4.2", "Error: timeout exceeded");
	EXPECT_CLIENT(fx, "451 4.4.2 " TFSM_HOST " Error: timeout exceeded\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_int_equal(fx->f.messages, 0);
}

static void
test_smtp_fsm_server_lost_before_greeting(void **state)
{
	struct tfsm *fx = *state;

	CLIENT(fx, "EHLO early.example\r\n");
	SERVER_EOF(fx);
	EXPECT_CLIENT(fx, "421 4.4.1 " TFSM_HOST " Error: connection to the mail server lost\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_NOTHING_TO_SERVER(fx);
	EXPECT_STATE(fx, SS_CLOSED);
}

static void
test_smtp_fsm_server_unsolicited(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	/* an unsolicited reply that is not 421 would shift every later reply: not passed */
	SERVER(fx, "250 what?\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_SERVER, "reply", "unsolicited"), 1);
	ROUNDTRIP(fx, "NOOP\r\n", "250 2.0.0 Ok\r\n");
	/* a 421 is the server going away: passed, and the session ends */
	SERVER(fx, "421 4.3.2 mx.example.net Service shutting down\r\n");
	EXPECT_CLIENT(fx, "421 4.3.2 mx.example.net Service shutting down\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_true(fx->flags & SMTP_FSM_CLOSE_CLIENT);
	EXPECT_STATE(fx, SS_CLOSED);
}

static void
test_smtp_fsm_server_garbage_reply(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "NOOP\r\n");
	EXPECT_SERVER(fx, "NOOP\r\n");
	SERVER(fx, "HTTP/1.1 400 Bad Request\r\n");
	EXPECT_CLIENT(fx, "421 4.4.2 " TFSM_HOST " Error: bad reply from the mail server\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_true(fx->flags & SMTP_FSM_CLOSE_CLIENT);
	assert_true(fx->flags & SMTP_FSM_ABORT_SERVER);
	EXPECT_STATE(fx, SS_CLOSED);
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_SERVER, "reply", NULL), 1);
}

/* ---- the client going away -------------------------------------------------------------- */

static void
test_smtp_fsm_client_eof_during_data(void **state)
{
	struct tfsm *fx = *state;

	IN_DATA(fx);
	CLIENT(fx, "Subject: cut short\r\n");
	EXPECT_SERVER(fx, "Subject: cut short\r\n");
	CLIENT_EOF(fx);
	assert_true(fx->flags & SMTP_FSM_ABORT_SERVER);
	EXPECT_STATE(fx, SS_CLOSED);
	EXPECT_NOTHING_TO_SERVER(fx);
	assert_int_equal(tfsm_count_in_server(fx, "\r\n.\r\n", 5), 0);
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_ABORT, "data", "client_eof"), 1);
	assert_true(smtp_fsm_finished(&fx->f));
}

/* A client may half-close right after its QUIT: the 221 still reaches it. */
static void
test_smtp_fsm_client_eof_after_quit(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT(fx, "QUIT\r\n");
	EXPECT_SERVER(fx, "QUIT\r\n");
	CLIENT_EOF(fx);
	assert_false(smtp_fsm_finished(&fx->f));
	assert_true(smtp_fsm_awaiting_server(&fx->f));
	SERVER(fx, "221 2.0.0 Bye\r\n");
	EXPECT_CLIENT(fx, "221 2.0.0 Bye\r\n");
	assert_true(smtp_fsm_finished(&fx->f));
}

/* ... or right after its final dot: the message is not aborted and the server's 250 reaches it. */
static void
test_smtp_fsm_client_eof_after_dot(void **state)
{
	struct tfsm *fx = *state;

	IN_DATA(fx);
	CLIENT(fx, "hi\r\n.\r\n");
	CLIENT_EOF(fx);
	assert_false(fx->flags & SMTP_FSM_ABORT_SERVER);
	EXPECT_SERVER(fx, "hi\r\n.\r\n");
	assert_false(smtp_fsm_finished(&fx->f));
	SERVER(fx, "250 2.0.0 queued\r\n");
	EXPECT_CLIENT(fx, "250 2.0.0 queued\r\n");
	assert_true(smtp_fsm_finished(&fx->f));
	assert_int_equal(fx->f.messages, 1);
}

/*
 * FIN right behind "DATA" and half a message: once the 354 comes, the
 * content can never be completed, so the server's side must be aborted.
 */
static void
test_smtp_fsm_client_eof_before_354(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	ROUNDTRIP(fx, "RCPT TO:<bob@example.net>\r\n", "250 2.1.5 Ok\r\n");
	CLIENT(fx, "DATA\r\nSubject: cut short\r\n");
	CLIENT_EOF(fx);
	EXPECT_SERVER(fx, "DATA\r\n");
	SERVER(fx, "354 go ahead\r\n");
	EXPECT_CLIENT(fx, "354 go ahead\r\n");
	assert_true(fx->flags & SMTP_FSM_ABORT_SERVER);
	assert_int_equal(tfsm_count_in_server(fx, "\r\n.\r\n", 5), 0);
}

static void
test_smtp_fsm_client_timeout(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	CLIENT_TIMEOUT(fx);
	EXPECT_CLIENT(fx, "421 4.4.2 " TFSM_HOST " Error: timeout exceeded\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	EXPECT_NOTHING_TO_SERVER(fx);
	assert_true(fx->flags & SMTP_FSM_CLOSE_CLIENT);
	EXPECT_STATE(fx, SS_CLOSED);
	CLIENT(fx, "NOOP\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
}

static void
test_smtp_fsm_client_timeout_during_data(void **state)
{
	struct tfsm *fx = *state;

	IN_DATA(fx);
	CLIENT(fx, "Subject: slow\r\n");
	EXPECT_SERVER(fx, "Subject: slow\r\n");
	CLIENT_TIMEOUT(fx);
	EXPECT_CLIENT(fx, "421 4.4.2 " TFSM_HOST " Error: timeout exceeded\r\n");
	assert_true(fx->flags & SMTP_FSM_ABORT_SERVER);
	EXPECT_STATE(fx, SS_CLOSED);
	EXPECT_NOTHING_TO_SERVER(fx);
}

static void
test_smtp_fsm_awaiting_server(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	assert_false(smtp_fsm_awaiting_server(&fx->f));
	ROUNDTRIP(fx, "MAIL FROM:<alice@example.com>\r\n", "250 2.1.0 Ok\r\n");
	CLIENT(fx, "RCPT TO:<bob@example.net>\r\n");
	assert_true(smtp_fsm_awaiting_server(&fx->f));
	SERVER(fx, "250 2.1.5 Ok\r\n");
	EXPECT_CLIENT(fx, "250 2.1.5 Ok\r\n");
	assert_false(smtp_fsm_awaiting_server(&fx->f));
	assert_false(smtp_fsm_finished(&fx->f));
}

/* ---- xclient = on --------------------------------------------------------------- */

/* The outcome is reported once, with the server's reply; the summary field follows it. */
static void
test_smtp_fsm_xclient_refused_event(void **state)
{
	struct tfsm *fx = *state;
	const struct tfsm_event *e;

	fx->xclient = 1;
	SERVER(fx, TFSM_GREETING);
	EXPECT_CLIENT(fx, TFSM_GREETING);
	CLIENT(fx, "EHLO client.example\r\n");
	EXPECT_SERVER(fx, "EHLO client.example\r\n");
	EXPECT_NOTHING_TO_SERVER(fx);
	assert_true(smtp_fsm_awaiting_server(&fx->f));
	SERVER(fx, "250-mx.example.net\r\n250 XCLIENT ADDR\r\n");
	EXPECT_SERVER(fx, "XCLIENT ADDR=203.0.113.10\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_true(smtp_fsm_awaiting_server(&fx->f));
	assert_null(fx->f.xc_result);
	SERVER(fx, "550 5.7.0 Error: insufficient authorization\r\n");
	EXPECT_SERVER(fx, "EHLO client.example\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	e = tfsm_find_event(fx, SMTP_EV_XCLIENT, "xclient");
	assert_non_null(e);
	assert_string_equal(e->reason, "refused");
	assert_int_equal(e->code, 550);
	assert_string_equal(e->arg, "5.7.0 Error: insufficient authorization");
	assert_string_equal(fx->f.xc_result, "refused");
	SERVER(fx, "250 mx.example.net\r\n");
	EXPECT_CLIENT(fx, "250 mx.example.net\r\n");
	EXPECT_NOTHING_TO_CLIENT(fx);
	assert_false(smtp_fsm_awaiting_server(&fx->f));
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_XCLIENT, NULL, NULL), 1);
	assert_int_equal(fx->f.xc, SMTP_XC_DONE);
	assert_int_equal(fx->f.barrier, 0);
	ROUNDTRIP(fx, "NOOP\r\n", "250 2.0.0 Ok\r\n");
}

/* xclient = off (the default): not a byte more than before. */
static void
test_smtp_fsm_xclient_off_unchanged(void **state)
{
	struct tfsm *fx = *state;

	READY(fx);
	assert_null(fx->f.xc_result);
	assert_int_equal(fx->f.xc, SMTP_XC_IDLE);
	assert_int_equal(tfsm_count_events(fx, SMTP_EV_XCLIENT, NULL, NULL), 0);
	assert_int_equal(tfsm_count_in_server(fx, "XCLIENT", 7), 0);
}

/*
 * A HELO value that cannot be sent whole is [UNAVAILABLE]: over 255 octets
 * (Postfix would refuse the XCLIENT), or an xtext form that would make the
 * line longer than 512 octets.
 */
static void
test_smtp_fsm_xclient_helo_too_long(void **state)
{
	static const struct {
		char	c;
		size_t	n;
	} t[] = {
		{ 'a', 255 },	/* fits: sent */
		{ 'a', 256 },	/* over 255 */
		{ '+', 150 },	/* 450 octets of xtext: over 512 with the rest */
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct tfsm *fx = tfsm_fresh(state);
		char cmd[600], want[1024];

		fx->xclient = 1;
		memset(cmd, 0, sizeof(cmd));
		memcpy(cmd, "EHLO ", 5);
		memset(cmd + 5, t[i].c, t[i].n);
		memcpy(cmd + 5 + t[i].n, "\r\n", 2);
		SERVER(fx, TFSM_GREETING);
		EXPECT_CLIENT(fx, TFSM_GREETING);
		CLIENT(fx, cmd);
		EXPECT_SERVER(fx, cmd);
		SERVER(fx, "250-mx.example.net\r\n250 XCLIENT ADDR NAME HELO PROTO\r\n");
		if (i == 0)
			snprintf(want, sizeof(want), "XCLIENT ADDR=203.0.113.10 "
			    "NAME=[UNAVAILABLE] HELO=%.*s PROTO=ESMTP\r\n", (int)t[i].n, cmd + 5);
		else
			snprintf(want, sizeof(want), "XCLIENT ADDR=203.0.113.10 "
			    "NAME=[UNAVAILABLE] HELO=[UNAVAILABLE] PROTO=ESMTP\r\n");
		EXPECT_SERVER(fx, want);
		SERVER(fx, "220 mx.example.net ESMTP\r\n");
		EXPECT_SERVER(fx, cmd);
		SERVER(fx, "250 mx.example.net\r\n");
		EXPECT_CLIENT(fx, "250 mx.example.net\r\n");
		EXPECT_NOTHING_TO_CLIENT(fx);
		EXPECT_NOTHING_TO_SERVER(fx);
	}
}

/* The client leaves (FIN) during the exchange: its EHLO is still relayed and answered, then the end. */
static void
test_smtp_fsm_xclient_client_eof(void **state)
{
	struct tfsm *fx = *state;

	fx->xclient = 1;
	SERVER(fx, TFSM_GREETING);
	EXPECT_CLIENT(fx, TFSM_GREETING);
	CLIENT(fx, "EHLO client.example\r\n");
	EXPECT_SERVER(fx, "EHLO client.example\r\n");
	CLIENT_EOF(fx);
	assert_false(smtp_fsm_finished(&fx->f));
	SERVER(fx, "250-mx.example.net\r\n250 XCLIENT ADDR\r\n");
	EXPECT_SERVER(fx, "XCLIENT ADDR=203.0.113.10\r\n");
	SERVER(fx, "220 mx.example.net ESMTP\r\n");
	EXPECT_SERVER(fx, "EHLO client.example\r\n");
	assert_false(smtp_fsm_finished(&fx->f));
	SERVER(fx, "250 mx.example.net\r\n");
	EXPECT_CLIENT(fx, "250 mx.example.net\r\n");
	assert_true(smtp_fsm_finished(&fx->f));
}

/* ---- robustness: random dialogs against a model server ------------------------------ */

/*
 * The model server reads what the FSM forwarded the way a real MTA would
 * (command lines; after its own 354, content up to CRLF.CRLF; after its own
 * 334, one answer line) and answers at random. Whatever the client sends and
 * however both streams are cut, the server must only ever see: whole lines the
 * client sent (or "*" cancelling an AUTH), commands that the policy accepts,
 * and messages with CRLF only, no NUL, within the size limit.
 */
enum tfsm_mode { TFSM_M_CMD, TFSM_M_DATA, TFSM_M_AUTH, TFSM_M_DEAD };

struct tfsm_model {
	uint64_t	 rng;
	enum tfsm_mode	 mode;
	size_t		 spos;		/* read so far of the server's log */
	size_t		 cpos;		/* the client's stream is matched from here */
	size_t		 kpos;		/* client log checked so far */
	size_t		 data_start;
	struct buf	 cstream;	/* every byte the client sent */
	size_t		 drain_at[256];	/* cstream offsets where a DRAIN restarted the line */
	unsigned	 ndrain;
	struct buf	 replies;	/* what the server still has to send */
	int		 quit;		/* it said 221: EOF once the replies are out */
	int		 abort_seen;	/* the aborted message was checked */
};

static uint32_t
tfsm_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 32);
}

static void
tfsm_model_reply(struct tfsm_model *m, const char *r)
{
	assert_int_equal(buf_append(&m->replies, r, strlen(r), TFSM_BUF_MAX), 0);
}

static int
tfsm_model_line_start(const struct tfsm_model *m, size_t p)
{
	unsigned i;

	/* RFC 5321 2.3.8: lines end at CRLF only */
	if (p == 0 || (p >= 2 && memcmp(buf_head(&m->cstream) + p - 2, "\r\n", 2) == 0))
		return 1;
	for (i = 0; i < m->ndrain; i++)
		if (m->drain_at[i] == p)
			return 1;
	return 0;
}

/* The forwarded line must be a whole line of the client's stream, in order. */
static int
tfsm_model_from_client(struct tfsm *fx, struct tfsm_model *m, const char *l, size_t n)
{
	const char *cs = buf_head(&m->cstream);
	size_t len = buf_len(&m->cstream), p;
	char e[300];

	for (p = m->cpos; p + n <= len; p++)
		if (tfsm_model_line_start(m, p) && memcmp(cs + p, l, n) == 0) {
			m->cpos = p + n;
			return 0;
		}
	return tfsm_fail(fx, "the server received \"%s\", not a whole line the client sent",
	    tfsm_esc(e, sizeof(e), l, n));
}

static int
tfsm_model_command(struct tfsm *fx, struct tfsm_model *m, const char *l, size_t n)
{
	struct smtp_cmd c;
	struct rules_verdict v;
	struct rules_rcpt r = { 0 };
	const struct smtp_param *sz;
	unsigned long long size;
	unsigned i, listed = 0;
	char e[300];
	uint32_t x = tfsm_rand(&m->rng);

	if (smtp_parse_cmd(l, n - 2, &c) != SMTP_PARSE_OK)
		return tfsm_fail(fx, "the server received \"%s\", which is not a valid command",
		    tfsm_esc(e, sizeof(e), l, n));
	for (i = 0; i < fx->ncommands; i++)
		listed |= smtp_slice_ieq(c.verb_text, fx->commands[i]);
	if (!listed || c.verb == SMTP_V_XCLIENT || c.verb == SMTP_V_XFORWARD ||
	    (c.verb == SMTP_V_STARTTLS && !fx->starttls_allow))
		return tfsm_fail(fx, "the server received \"%s\": a verb it must never see",
		    tfsm_esc(e, sizeof(e), l, n));
	switch (c.verb) {
	case SMTP_V_EHLO:
		tfsm_model_reply(m, "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 STARTTLS\r\n");
		break;
	case SMTP_V_MAIL:
		rules_eval_sender(fx->rules, c.path.mailbox.p,
		    (c.path.flags & SMTP_PATH_NULL) ? 0 : c.path.mailbox.len, TFSM_NOW, &v);
		if (!v.accept)
			return tfsm_fail(fx, "the server received a blocked sender: \"%s\"",
			    tfsm_esc(e, sizeof(e), l, n));
		if ((sz = smtp_cmd_param(&c, "SIZE")) != NULL &&
		    smtp_param_ulong(sz->value, &size) == 0 && size > fx->max_message_size)
			return tfsm_fail(fx, "the server received an oversize MAIL: \"%s\"",
			    tfsm_esc(e, sizeof(e), l, n));
		tfsm_model_reply(m, x % 4 ? "250 2.1.0 Ok\r\n" : "451 4.3.0 Try later\r\n");
		break;
	case SMTP_V_RCPT:
		r.local = c.path.local.p;
		r.local_len = c.path.local.len;
		r.domain = c.path.domain.p;
		r.domain_len = c.path.domain.len;
		r.flags = c.path.flags & (RULES_RCPT_ROUTED | RULES_RCPT_PERCENT |
		    RULES_RCPT_BANG | RULES_RCPT_AT);
		rules_eval_rcpt(&fx->policy, fx->rules, (const struct sockaddr *)&fx->addr,
		    fx->f.authenticated, &r, TFSM_NOW, &v);
		if (!v.accept)
			return tfsm_fail(fx, "the server received a RCPT the policy refuses: \"%s\"",
			    tfsm_esc(e, sizeof(e), l, n));
		tfsm_model_reply(m, x % 4 ? "250 2.1.5 Ok\r\n" : "550 5.1.1 No such user\r\n");
		break;
	case SMTP_V_DATA:
		if (x % 8) {
			tfsm_model_reply(m, "354 End data with <CR><LF>.<CR><LF>\r\n");
			m->mode = TFSM_M_DATA;
			m->data_start = m->spos + n;
		} else
			tfsm_model_reply(m, "554 5.5.1 Error: no valid recipients\r\n");
		break;
	case SMTP_V_AUTH:
		if (x % 3 == 0) {
			tfsm_model_reply(m, "334 VXNlcm5hbWU6\r\n");
			m->mode = TFSM_M_AUTH;
		} else
			tfsm_model_reply(m, x % 3 == 1 ? "235 2.7.0 Authentication successful\r\n" :
			    "535 5.7.8 Authentication failed\r\n");
		break;
	case SMTP_V_QUIT:
		tfsm_model_reply(m, "221 2.0.0 Bye\r\n");
		m->quit = 1;
		break;
	case SMTP_V_HELP:
		tfsm_model_reply(m, "214-See RFC 5321\r\n214 2.0.0 Ok\r\n");
		break;
	case SMTP_V_VRFY:
		tfsm_model_reply(m, "252 2.0.0 Maybe\r\n");
		break;
	default:
		tfsm_model_reply(m, x % 16 ? "250 2.0.0 Ok\r\n" : "250-a\r\n250 2.0.0 Ok\r\n");
		break;
	}
	return 0;
}

/* The message the server got: "\r\n" + content + ".\r\n" has its only end at the end. */
static int
tfsm_model_message(struct tfsm *fx, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\0')
			return tfsm_fail(fx, "the server accepted a message with a NUL");
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return tfsm_fail(fx, "the server got a message with a bare LF at %zu", i);
		if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
			return tfsm_fail(fx, "the server got a message with a bare CR at %zu", i);
	}
	if (fx->bare_lf == SMTP_DATA_REJECT && n > fx->max_message_size)
		return tfsm_fail(fx, "the server got a %zu-byte message (limit %llu)", n,
		    (unsigned long long)fx->max_message_size);
	return 0;
}

/* Read what the FSM forwarded so far and answer it. */
static int
tfsm_model_run(struct tfsm *fx, struct tfsm_model *m)
{
	const char *s = buf_len(&fx->srv.b) ? buf_head(&fx->srv.b) : "";
	size_t len = buf_len(&fx->srv.b), i;
	const char *lf, *end;
	char e[300];

	/*
	 * An aborted message: what arrived of it must hold no end of data of
	 * any kind, or a lenient server (one that ends DATA at LF.LF, CR.CR...)
	 * took it before the reset.
	 */
	if (fx->server_aborted && m->mode == TFSM_M_DATA && !m->abort_seen) {
		m->abort_seen = 1;
		for (i = m->data_start - 2; i + 3 <= len; i++)
			if ((s[i] == '\r' || s[i] == '\n') && s[i + 1] == '.' &&
			    (s[i + 2] == '\r' || s[i + 2] == '\n'))
				return tfsm_fail(fx, "an aborted message reached the server with an "
				    "end of data in it: \"%s\"", tfsm_esc(e, sizeof(e), s + i, 3));
	}
	while (m->mode != TFSM_M_DEAD && !fx->server_aborted && m->spos < len) {
		if (m->mode == TFSM_M_DATA) {
			for (i = m->data_start; i < len; i++)
				if (s[i] == '\0')
					return tfsm_fail(fx, "the server received a NUL in content");
			/* the CRLF of the DATA line counts: search from it */
			end = memmem(s + m->data_start - 2, len - (m->data_start - 2), "\r\n.\r\n", 5);
			if (end == NULL)
				return 0;
			if (tfsm_model_message(fx, s + m->data_start,
			    (size_t)(end + 2 - (s + m->data_start))) == -1)
				return -1;
			m->spos = (size_t)(end - s) + 5;
			m->mode = TFSM_M_CMD;
			tfsm_model_reply(m, "250 2.0.0 Ok: queued\r\n");
			continue;
		}
		if ((lf = memchr(s + m->spos, '\n', len - m->spos)) == NULL)
			return 0;
		{
			const char *l = s + m->spos;
			size_t n = (size_t)(lf - l) + 1;

			if (n < 2 || l[n - 2] != '\r' || memchr(l, '\r', n - 2) != NULL ||
			    memchr(l, '\0', n) != NULL)
				return tfsm_fail(fx, "the server received a line that does not end "
				    "in CRLF alone: \"%s\"", tfsm_esc(e, sizeof(e), l, n));
			if (m->mode == TFSM_M_AUTH) {
				uint32_t x = tfsm_rand(&m->rng);

				if (!(n == 3 && l[0] == '*') && tfsm_model_from_client(fx, m, l, n) == -1)
					return -1;
				m->spos += n;
				if (n == 3 && l[0] == '*') {
					tfsm_model_reply(m, "501 5.7.0 Authentication aborted\r\n");
					m->mode = TFSM_M_CMD;
				} else if (x % 3 == 0)
					tfsm_model_reply(m, "334 UGFzc3dvcmQ6\r\n");
				else {
					tfsm_model_reply(m, x % 3 == 1 ?
					    "235 2.7.0 Authentication successful\r\n" :
					    "535 5.7.8 Authentication failed\r\n");
					m->mode = TFSM_M_CMD;
				}
				continue;
			}
			if (tfsm_model_from_client(fx, m, l, n) == -1 ||
			    tfsm_model_command(fx, m, l, n) == -1)
				return -1;
			m->spos += n;
			if (m->quit)
				m->mode = TFSM_M_DEAD;
		}
	}
	return 0;
}

/* The client only ever gets reply lines: "DDD", then SP, '-' or the end, then CRLF. */
static int
tfsm_model_client_log(struct tfsm *fx, struct tfsm_model *m)
{
	const char *s = buf_len(&fx->cli.b) ? buf_head(&fx->cli.b) : "";
	size_t len = buf_len(&fx->cli.b);
	const char *lf;
	char e[300];

	while (m->kpos < len && (lf = memchr(s + m->kpos, '\n', len - m->kpos)) != NULL) {
		const char *l = s + m->kpos;
		size_t n = (size_t)(lf - l) + 1;

		if (n < 5 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
		    l[2] < '0' || l[2] > '9' || (l[3] != ' ' && l[3] != '-' && l[3] != '\r') ||
		    l[n - 2] != '\r')
			return tfsm_fail(fx, "the client received \"%s\", not a reply line",
			    tfsm_esc(e, sizeof(e), l, n));
		m->kpos += n;
	}
	return 0;
}

/* Pieces of client input, by kind: M mail, R rcpt, C content, X other command, A auth, a auth answer. */
struct tfsm_piece {
	char		 kind;
	const char	*p;
	size_t		 n;
	unsigned	 weight;
};

#define TFSM_PIECE(k, s, w)	{ k, s, sizeof(s) - 1, w }

static const struct tfsm_piece tfsm_pieces[] = {
	TFSM_PIECE('M', "MAIL FROM:<alice@example.com>\r\n", 12),
	TFSM_PIECE('M', "MAIL FROM:<bad@spam.example>\r\n", 2),
	TFSM_PIECE('M', "MAIL FROM:<>\r\n", 2),
	TFSM_PIECE('M', "MAIL FROM:<alice@example.com> SIZE=5000\r\n", 1),
	TFSM_PIECE('M', "MAIL FROM:<a b>\r\n", 1),
	TFSM_PIECE('R', "RCPT TO:<bob@example.net>\r\n", 12),
	TFSM_PIECE('R', "RCPT TO:<carol@mail.example.org>\r\n", 3),
	TFSM_PIECE('R', "RCPT TO:<victim@elsewhere.example>\r\n", 4),
	TFSM_PIECE('R', "RCPT TO:<victim%elsewhere.example@example.net>\r\n", 2),
	TFSM_PIECE('R', "RCPT TO:<@example.net:victim@elsewhere.example>\r\n", 1),
	TFSM_PIECE('R', "RCPT TO:<postmaster>\r\n", 1),
	TFSM_PIECE('R', "RCPT TO:<x@sms.carrier.example>\r\n", 1),
	TFSM_PIECE('R', "RCPT TO:<bob@example.net>\n", 1),
	TFSM_PIECE('C', "Subject: test\r\n\r\nbody\r\n", 8),
	TFSM_PIECE('C', "..dotted\r\n", 2),
	TFSM_PIECE('C', "MAIL FROM:<x@evil.example>\r\n", 1),
	TFSM_PIECE('C', "bare\nlf\r\n", 1),
	TFSM_PIECE('C', "bare\rcr\r\n", 1),
	TFSM_PIECE('C', "nul\0byte\r\n", 1),
	TFSM_PIECE('C', "\n.\nMAIL FROM:<x@evil.example>\r\n", 1),
	TFSM_PIECE('C', "\r\n.\rRCPT TO:<victim@elsewhere.example>\r\n", 1),
	TFSM_PIECE('C', "0123456789012345678901234567890123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789012345678901234567890123456789\r\n", 3),
	TFSM_PIECE('X', "EHLO client.example\r\n", 4),
	TFSM_PIECE('X', "HELO client.example\r\n", 1),
	TFSM_PIECE('X', "RSET\r\n", 4),
	TFSM_PIECE('X', "NOOP\r\n", 3),
	TFSM_PIECE('X', "HELP\r\n", 1),
	TFSM_PIECE('X', "VRFY bob\r\n", 1),
	TFSM_PIECE('X', "EXPN staff\r\n", 1),
	TFSM_PIECE('X', "XCLIENT ADDR=192.0.2.15\r\n", 1),
	TFSM_PIECE('X', "ETRN example.net\r\n", 1),
	TFSM_PIECE('X', "STARTTLS\r\n", 1),
	TFSM_PIECE('X', "DATA\r\n", 1),
	TFSM_PIECE('X', "RCPT TO:<bob@example.net>\r\n", 1),
	TFSM_PIECE('X', "NO\rOP\r\n", 1),
	TFSM_PIECE('X', "NOOP", 1),		/* a line cut in two pieces */
	TFSM_PIECE('X', "\r\n", 1),
	TFSM_PIECE('X', "NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "RCPT TO:<victim@elsewhere.example>\r\n", 1),
	TFSM_PIECE('A', "AUTH LOGIN\r\n", 2),
	TFSM_PIECE('A', "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", 2),
	TFSM_PIECE('a', "dXNlcg==\r\n", 3),
	TFSM_PIECE('a', "MAIL FROM:<bad@spam.example>\r\n", 1),
	TFSM_PIECE('a', "*\r\n", 1),
	TFSM_PIECE('a', "dXNl\ncg==\r\n", 1),
};

static int
tfsm_pick(struct buf *script, uint64_t *rng, char kind)
{
	unsigned total = 0, x;
	size_t i;

	for (i = 0; i < sizeof(tfsm_pieces) / sizeof(tfsm_pieces[0]); i++)
		if (tfsm_pieces[i].kind == kind)
			total += tfsm_pieces[i].weight;
	x = tfsm_rand(rng) % total;
	for (i = 0; tfsm_pieces[i].kind != kind || x >= tfsm_pieces[i].weight; i++)
		if (tfsm_pieces[i].kind == kind)
			x -= tfsm_pieces[i].weight;
	return buf_append(script, tfsm_pieces[i].p, tfsm_pieces[i].n, TFSM_BUF_MAX);
}

/* A client script: transactions, AUTH exchanges and odd commands, rarely QUIT or HTTP. */
static int
tfsm_script(struct buf *script, uint64_t *rng)
{
	unsigned scene, i, k, n;
	int rc = 0;

	for (scene = 0; scene < 12 && rc == 0; scene++) {
		k = tfsm_rand(rng) % 20;
		if (k < 11) {
			rc |= tfsm_pick(script, rng, 'M');
			n = 1 + tfsm_rand(rng) % 5;
			for (i = 0; i < n; i++)
				rc |= tfsm_pick(script, rng, 'R');
			rc |= buf_append(script, "DATA\r\n", 6, TFSM_BUF_MAX);
			n = tfsm_rand(rng) % 6;
			for (i = 0; i < n; i++)
				rc |= tfsm_pick(script, rng, 'C');
			rc |= buf_append(script, ".\r\n", 3, TFSM_BUF_MAX);
		} else if (k < 13) {
			rc |= tfsm_pick(script, rng, 'A');
			n = tfsm_rand(rng) % 3;
			for (i = 0; i < n; i++)
				rc |= tfsm_pick(script, rng, 'a');
		} else if (k < 19)
			rc |= tfsm_pick(script, rng, 'X');
		else if (tfsm_rand(rng) % 2)
			rc |= buf_append(script, "QUIT\r\n", 6, TFSM_BUF_MAX);
		else
			rc |= buf_append(script, "GET / HTTP/1.0\r\n", 16, TFSM_BUF_MAX);
	}
	return rc;
}

/* Send to one side; a DRAIN meanwhile makes the client's next byte a line start. */
static int
tfsm_model_send(struct tfsm *fx, struct tfsm_model *m, struct buf *to, const char *p, size_t n)
{
	unsigned saved = fx->flags;
	int rc;

	fx->flags = 0;
	rc = tfsm_send(fx, to, p, n);
	if ((fx->flags & SMTP_FSM_DRAIN_CLIENT) && m->ndrain < 256)
		m->drain_at[m->ndrain++] = buf_len(&m->cstream);
	fx->flags |= saved;
	return rc;
}

static int
tfsm_random_session(struct tfsm *fx, uint64_t seed)
{
	struct tfsm_model m;
	struct buf script = { 0 };
	size_t sent = 0, n;
	unsigned step, quiet = 0;
	int rc = -1, lockstep;

	memset(&m, 0, sizeof(m));
	m.rng = seed;
	fx->bare_lf = tfsm_rand(&m.rng) % 2 ? SMTP_DATA_NORMALIZE : SMTP_DATA_REJECT;
	fx->auth_relay = (int)(tfsm_rand(&m.rng) % 2);
	if (tfsm_rand(&m.rng) % 4 == 0)
		snprintf(fx->client_ip, sizeof(fx->client_ip), "%s", TFSM_TRUSTED);
	lockstep = (int)(tfsm_rand(&m.rng) % 2);
	if (tfsm_script(&script, &m.rng) != 0)
		goto out;
	tfsm_model_reply(&m, TFSM_GREETING);
	if (tfsm_start(fx) == -1)
		goto out;

	for (step = 0; step < 4000 && quiet < 50; step++) {
		uint32_t x = tfsm_rand(&m.rng);
		size_t before_c = buf_len(&fx->cli.b), before_s = buf_len(&fx->srv.b);

		/* a lockstep client writes only once everything it sent was read */
		if (x % 2 == 0 && sent < buf_len(&script) &&
		    (!lockstep || buf_len(&fx->cin) == 0)) {
			n = 1 + tfsm_rand(&m.rng) % 96;
			if (n > buf_len(&script) - sent)
				n = buf_len(&script) - sent;
			if (buf_append(&m.cstream, buf_head(&script) + sent, n, TFSM_BUF_MAX) == -1)
				goto out;
			if (tfsm_model_send(fx, &m, &fx->cin, buf_head(&script) + sent, n) == -1)
				goto out;
			sent += n;
		} else if (buf_len(&m.replies) > 0) {
			n = 1 + tfsm_rand(&m.rng) % 64;
			if (n > buf_len(&m.replies))
				n = buf_len(&m.replies);
			if (tfsm_model_send(fx, &m, &fx->sin, buf_head(&m.replies), n) == -1)
				goto out;
			buf_consume(&m.replies, n);
		} else if (m.quit && !fx->server_eof) {
			fx->server_eof = 1;
			if (tfsm_pump(fx) == -1)
				goto out;
		} else if (sent == buf_len(&script) && !fx->client_eof && x % 7 == 0) {
			fx->client_eof = 1;
			if (tfsm_pump(fx) == -1)
				goto out;
		}
		if (tfsm_model_run(fx, &m) == -1 || tfsm_model_client_log(fx, &m) == -1)
			goto out;
		if (fx->server_after_abort > 0) {
			tfsm_fail(fx, "the FSM forwarded %zu bytes after aborting the server",
			    fx->server_after_abort);
			goto out;
		}
		quiet = (buf_len(&fx->cli.b) == before_c && buf_len(&fx->srv.b) == before_s &&
		    sent == buf_len(&script) && buf_len(&m.replies) == 0) ? quiet + 1 : 0;
	}
	rc = 0;
out:
	buf_free(&script);
	buf_free(&m.cstream);
	buf_free(&m.replies);
	return rc;
}

static void
test_smtp_fsm_random_dialogs(void **state)
{
	unsigned i;

	for (i = 0; i < 2000; i++) {
		struct tfsm *fx = tfsm_fresh(state);

		if (tfsm_random_session(fx, 0x9e3779b97f4a7c15ull * (i + 1)) == -1)
			fail_msg("random dialog %u: %s", i, fx->err);
	}
}

/* ---- the dialog runner (tests/dialog/NAME.dlg) ---------------------------------------- */

struct tfsm_dlg {
	struct tfsm	*fx;
	char		 side;		/* 'C' or 'S': the batch being written, 0 none */
	struct buf	 batch;
};

/* \r \n \0 \t \\ \xHH; anything else after a backslash is an error. */
static int
tfsm_unescape(struct tfsm *fx, const char *s, struct buf *out)
{
	char c;

	for (; *s != '\0'; s++) {
		c = *s;
		if (c == '\\') {
			switch (*++s) {
			case 'r': c = '\r'; break;
			case 'n': c = '\n'; break;
			case '0': c = '\0'; break;
			case 't': c = '\t'; break;
			case '\\': c = '\\'; break;
			case 'x': {
				char hex[3] = { 0 };
				char *end;

				if (s[1] == '\0' || s[2] == '\0')
					return tfsm_fail(fx, "bad \\x escape");
				hex[0] = s[1];
				hex[1] = s[2];
				c = (char)strtol(hex, &end, 16);
				if (*end != '\0')
					return tfsm_fail(fx, "bad \\x escape");
				s += 2;
				break;
			}
			default:
				return tfsm_fail(fx, "unknown escape \\%c", *s ? *s : '0');
			}
		}
		if (buf_append(out, &c, 1, TFSM_BUF_MAX) == -1)
			return tfsm_fail(fx, "line too large");
	}
	return 0;
}

static int
tfsm_dlg_flush(struct tfsm_dlg *d)
{
	struct tfsm *fx = d->fx;
	int rc = 0;

	if (d->side != 0)
		rc = tfsm_send(fx, d->side == 'C' ? &fx->cin : &fx->sin,
		    buf_len(&d->batch) ? buf_head(&d->batch) : "", buf_len(&d->batch));
	buf_reset(&d->batch);
	d->side = 0;
	return rc;
}

/* Text after "X: ": the rest of the line, plus CRLF. */
static int
tfsm_dlg_add(struct tfsm_dlg *d, char side, const char *text, int raw, unsigned times)
{
	struct tfsm *fx = d->fx;
	unsigned i;

	if (d->side != side && tfsm_dlg_flush(d) == -1)
		return -1;
	d->side = side;
	for (i = 0; i < times; i++) {
		if (raw) {
			if (tfsm_unescape(fx, text, &d->batch) == -1)
				return -1;
		} else if (buf_append(&d->batch, text, strlen(text), TFSM_BUF_MAX) == -1 ||
		    buf_append(&d->batch, "\r\n", 2, TFSM_BUF_MAX) == -1)
			return tfsm_fail(fx, "line too large");
	}
	return 0;
}

static int
tfsm_dlg_expect(struct tfsm_dlg *d, char side, const char *text, int raw)
{
	struct tfsm *fx = d->fx;
	struct tfsm_log *l = side == 'C' ? &fx->cli : &fx->srv;
	const char *name = side == 'C' ? "client" : "server";
	struct buf want = { 0 };
	int rc;

	if (!raw && strcmp(text, "-") == 0)
		return tfsm_expect_nothing(fx, l, name);
	if (raw)
		rc = tfsm_unescape(fx, text, &want);
	else
		rc = buf_printf(&want, TFSM_BUF_MAX, "%s\r\n", text) == -1 ?
		    tfsm_fail(fx, "line too large") : 0;
	if (rc == 0)
		rc = tfsm_expect(fx, l, name, buf_len(&want) ? buf_head(&want) : "", buf_len(&want));
	buf_free(&want);
	return rc;
}

static int
tfsm_dlg_flag(const char *name, unsigned *flag)
{
	if (strcmp(name, "CLOSE_CLIENT") == 0)
		*flag = SMTP_FSM_CLOSE_CLIENT;
	else if (strcmp(name, "ABORT_SERVER") == 0)
		*flag = SMTP_FSM_ABORT_SERVER;
	else if (strcmp(name, "DRAIN_CLIENT") == 0)
		*flag = SMTP_FSM_DRAIN_CLIENT;
	else
		return -1;
	return 0;
}

static int
tfsm_dlg_kind(const char *name, int *kind)
{
	static const struct {
		const char		*name;
		enum smtp_event_kind	 kind;
	} k[] = {
		{ "refuse", SMTP_EV_REFUSE }, { "error", SMTP_EV_ERROR },
		{ "abort", SMTP_EV_ABORT }, { "server", SMTP_EV_SERVER },
		{ "state", SMTP_EV_STATE }, { "message", SMTP_EV_MESSAGE },
		{ "xclient", SMTP_EV_XCLIENT },
	};
	size_t i;

	if (strcmp(name, "*") == 0) {
		*kind = 0;
		return 0;
	}
	for (i = 0; i < sizeof(k) / sizeof(k[0]); i++)
		if (strcmp(name, k[i].name) == 0) {
			*kind = (int)k[i].kind;
			return 0;
		}
	return -1;
}

static unsigned
tfsm_dlg_events(const struct tfsm *fx, int kind, const char *what, const char *reason)
{
	unsigned i, n = 0;

	for (i = 0; i < fx->nev; i++)
		if ((kind == 0 || (int)fx->ev[i].kind == kind) &&
		    (strcmp(what, "*") == 0 || strcmp(fx->ev[i].what, what) == 0) &&
		    (reason == NULL || strcmp(reason, "*") == 0 ||
		    strcmp(fx->ev[i].reason, reason) == 0))
			n++;
	return n;
}

static int
tfsm_dlg_config(struct tfsm *fx, char *kv)
{
	char *v = strchr(kv, '=');
	struct buf tmp = { 0 };
	unsigned long long n = 0;
	int num;

	if (fx->started)
		return tfsm_fail(fx, "config after the session started");
	if (v == NULL)
		return tfsm_fail(fx, "config needs KEY=VALUE");
	*v++ = '\0';
	num = *v != '\0' && strspn(v, "0123456789") == strlen(v);
	if (num)
		n = strtoull(v, NULL, 10);
	if (strcmp(kv, "starttls_allow") == 0 && num)
		fx->starttls_allow = (int)n;
	else if (strcmp(kv, "auth_relay") == 0 && num)
		fx->auth_relay = (int)n;
	else if (strcmp(kv, "xclient") == 0 && num)
		fx->xclient = (int)n;
	else if (strcmp(kv, "max_message_size") == 0 && num)
		fx->max_message_size = n;
	else if (strcmp(kv, "max_recipients") == 0 && num)
		fx->max_recipients = (unsigned)n;
	else if (strcmp(kv, "max_line_length") == 0 && num)
		fx->max_line_length = (unsigned)n;
	else if (strcmp(kv, "bare_lf") == 0 && strcmp(v, "reject") == 0)
		fx->bare_lf = SMTP_DATA_REJECT;
	else if (strcmp(kv, "bare_lf") == 0 && strcmp(v, "normalize") == 0)
		fx->bare_lf = SMTP_DATA_NORMALIZE;
	else if (strcmp(kv, "commands") == 0)
		return tfsm_set_commands(fx, v);
	else if (strcmp(kv, "rules") == 0) {
		if (tfsm_unescape(fx, v, &tmp) == -1 ||
		    buf_append(&tmp, "", 1, sizeof(fx->rules_text)) == -1) {
			buf_free(&tmp);
			return tfsm_fail(fx, "bad rules text");
		}
		memcpy(fx->rules_text, buf_head(&tmp), buf_len(&tmp));
		buf_free(&tmp);
	} else
		return tfsm_fail(fx, "unknown config %s=%s", kv, v);
	return 0;
}

/* One item of a dialog script; line is modified (split in words). */
static int
tfsm_dlg_line(struct tfsm_dlg *d, char *line)
{
	struct tfsm *fx = d->fx;
	char *arg, *w2, *w3;
	unsigned flag;
	int kind;

	if (strncmp(line, "C: ", 3) == 0 || strcmp(line, "C:") == 0)
		return tfsm_dlg_add(d, 'C', line[2] ? line + 3 : "", 0, 1);
	if (strncmp(line, "S: ", 3) == 0 || strcmp(line, "S:") == 0)
		return tfsm_dlg_add(d, 'S', line[2] ? line + 3 : "", 0, 1);
	if (strncmp(line, "C+ ", 3) == 0)
		return tfsm_dlg_add(d, 'C', line + 3, 1, 1);
	if (strncmp(line, "S+ ", 3) == 0)
		return tfsm_dlg_add(d, 'S', line + 3, 1, 1);
	if (strncmp(line, "C* ", 3) == 0) {
		unsigned long times = strtoul(line + 3, &arg, 10);

		if (arg == line + 3 || *arg != ' ' || times == 0 || times > 100000)
			return tfsm_fail(fx, "C* needs a count and a text");
		return tfsm_dlg_add(d, 'C', arg + 1, 0, (unsigned)times);
	}

	if (tfsm_dlg_flush(d) == -1)
		return -1;
	if (strncmp(line, ">S: ", 4) == 0 || strncmp(line, ">C: ", 4) == 0)
		return tfsm_dlg_expect(d, line[1], line + 4, 0);
	if (strcmp(line, ">S:") == 0 || strcmp(line, ">C:") == 0)
		return tfsm_dlg_expect(d, line[1], "", 0);
	if (strncmp(line, ">S+ ", 4) == 0 || strncmp(line, ">C+ ", 4) == 0)
		return tfsm_dlg_expect(d, line[1], line + 4, 1);

	arg = strchr(line, ' ');
	if (arg != NULL)
		*arg++ = '\0';
	else
		arg = line + strlen(line);
	if (strcmp(line, "config") == 0)
		return tfsm_dlg_config(fx, arg);
	if (strcmp(line, "client") == 0) {
		if (fx->started)
			return tfsm_fail(fx, "client after the session started");
		snprintf(fx->client_ip, sizeof(fx->client_ip), "%s", arg);
		return 0;
	}
	if (tfsm_start(fx) == -1)
		return -1;
	if (strcmp(line, "eof") == 0 && strcmp(arg, "client") == 0) {
		fx->client_eof = 1;
		return tfsm_pump(fx);
	}
	if (strcmp(line, "eof") == 0 && strcmp(arg, "server") == 0) {
		fx->server_eof = 1;
		return tfsm_pump(fx);
	}
	if (strcmp(line, "timeout") == 0 && strcmp(arg, "client") == 0) {
		smtp_fsm_client_timeout(&fx->f);
		return tfsm_after_call(fx) == -1 ? -1 : tfsm_pump(fx);
	}
	if (strcmp(line, "server_failed") == 0) {
		int code = atoi(arg);
		char *enh = strchr(arg, ' '), *text;

		if (code < 200 || enh == NULL || (text = strchr(enh + 1, ' ')) == NULL)
			return tfsm_fail(fx, "server_failed CODE ENH TEXT");
		*text++ = '\0';
		smtp_fsm_server_failed(&fx->f, code, enh + 1, text);
		return tfsm_after_call(fx) == -1 ? -1 : tfsm_pump(fx);
	}
	if (strcmp(line, "state") == 0) {
		if (strcmp(smtp_state_str(fx->f.state), arg) != 0)
			return tfsm_fail(fx, "state should be %s, it is %s", arg,
			    smtp_state_str(fx->f.state));
		return 0;
	}
	if (strcmp(line, "flag") == 0 || strcmp(line, "noflag") == 0) {
		int want = line[0] == 'f';

		if (tfsm_dlg_flag(arg, &flag) == -1)
			return tfsm_fail(fx, "unknown flag %s", arg);
		if (!!(fx->flags & flag) != want)
			return tfsm_fail(fx, "%s should %sbe raised", arg, want ? "" : "not ");
		return 0;
	}
	if (strcmp(line, "finished") == 0) {
		if (smtp_fsm_finished(&fx->f) != atoi(arg))
			return tfsm_fail(fx, "smtp_fsm_finished() should be %s", arg);
		return 0;
	}
	if (strcmp(line, "event") == 0 || strcmp(line, "noevent") == 0) {
		w2 = strchr(arg, ' ');
		if (w2 != NULL)
			*w2++ = '\0';
		w3 = w2 != NULL ? strchr(w2, ' ') : NULL;
		if (w3 != NULL)
			*w3++ = '\0';
		if (w2 == NULL || tfsm_dlg_kind(arg, &kind) == -1)
			return tfsm_fail(fx, "%s KIND WHAT [REASON]", line);
		if (line[0] == 'e' && tfsm_dlg_events(fx, kind, w2, w3) == 0)
			return tfsm_fail(fx, "no event %s %s %s", arg, w2, w3 ? w3 : "*");
		if (line[0] == 'n' && tfsm_dlg_events(fx, kind, w2, w3) != 0)
			return tfsm_fail(fx, "unexpected event %s %s", arg, w2);
		return 0;
	}
	return tfsm_fail(fx, "unknown dialog item \"%s\"", line);
}

static int
tfsm_dlg_run(struct tfsm *fx, FILE *in, unsigned *lineno)
{
	struct tfsm_dlg d = { fx, 0, { 0 } };
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	*lineno = 0;
	while (rc == 0 && (n = getline(&line, &cap, in)) != -1) {
		(*lineno)++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		rc = tfsm_dlg_line(&d, line);
	}
	if (rc == 0) {
		(*lineno)++;	/* the end of the file */
		rc = tfsm_dlg_flush(&d);
	}
	if (rc == 0 && !fx->started)
		rc = tfsm_fail(fx, "an empty dialog");
	if (rc == 0)
		rc = tfsm_expect_nothing(fx, &fx->cli, "client");
	if (rc == 0)
		rc = tfsm_expect_nothing(fx, &fx->srv, "server");
	free(line);
	buf_free(&d.batch);
	return rc;
}

/* One dialog file: its initial state is the path. */
static void
test_smtp_fsm_dialog(void **state)
{
	const char *path = *state;
	struct tfsm *fx = tfsm_new();
	unsigned lineno = 0;
	FILE *in;
	int rc;

	if ((in = fopen(path, "r")) == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	rc = tfsm_dlg_run(fx, in, &lineno);
	fclose(in);
	if (rc == -1) {
		char msg[TFSM_ERR_LEN + 300];

		snprintf(msg, sizeof(msg), "%s:%u: %s", path, lineno, fx->err);
		tfsm_free(fx);
		fail_msg("%s", msg);
	}
	tfsm_free(fx);
}

/* No dialog found: fail loudly rather than test nothing. */
static void
test_smtp_fsm_dialog_files_found(void **state)
{
	fail_msg("no .dlg file in %s (set DIALOG_DIR, or run from the repository root)",
	    (const char *)*state);
}

static int
tfsm_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Paths of every .dlg file in dir, sorted; *n set. */
static char **
tfsm_dialogs(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL, **nv;
	size_t len;

	*n = 0;
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".dlg") != 0)
			continue;
		if ((nv = realloc(v, (*n + 1) * sizeof(*v))) == NULL)
			break;
		v = nv;
		if (asprintf(&v[*n], "%s/%s", dir, de->d_name) == -1)
			break;
		(*n)++;
	}
	closedir(d);
	if (*n > 0)
		qsort(v, *n, sizeof(*v), tfsm_cmp_names);
	return v;
}

#define TFSM_TEST(t)	cmocka_unit_test_setup_teardown(t, tfsm_setup, tfsm_teardown)

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		TFSM_TEST(test_smtp_fsm_greeting_passes_early_talker_held),
		TFSM_TEST(test_smtp_fsm_ehlo_size_lowered),
		TFSM_TEST(test_smtp_fsm_ehlo_all_keywords_dropped),
		TFSM_TEST(test_smtp_fsm_helo_reply_unchanged),
		TFSM_TEST(test_smtp_fsm_relay_refused_never_forwarded),
		TFSM_TEST(test_smtp_fsm_relay_routing_tricks_refused),
		TFSM_TEST(test_smtp_fsm_relay_trusted_client),
		TFSM_TEST(test_smtp_fsm_relay_allow_rule),
		TFSM_TEST(test_smtp_fsm_relay_postmaster),
		TFSM_TEST(test_smtp_fsm_rule_change_next_transaction),
		TFSM_TEST(test_smtp_fsm_rule_change_next_command),
		TFSM_TEST(test_smtp_fsm_sender_blocked),
		TFSM_TEST(test_smtp_fsm_sender_null_blocked_by_rule),
		TFSM_TEST(test_smtp_fsm_mail_size_param_over_limit),
		TFSM_TEST(test_smtp_fsm_pipelining_local_reply_in_place),
		TFSM_TEST(test_smtp_fsm_pipelining_local_reply_at_once_when_idle),
		TFSM_TEST(test_smtp_fsm_pipelining_multiline_reply),
		TFSM_TEST(test_smtp_fsm_unfinished_multiline_reply_never_passed),
		TFSM_TEST(test_smtp_fsm_data_barrier_then_streamed),
		TFSM_TEST(test_smtp_fsm_message_event_names_its_own_sender),
		TFSM_TEST(test_smtp_fsm_strings_reuse_their_block),
		TFSM_TEST(test_smtp_fsm_data_byte_by_byte),
		TFSM_TEST(test_smtp_fsm_data_commands_after_dot_parsed),
		TFSM_TEST(test_smtp_fsm_data_without_valid_rcpt),
		TFSM_TEST(test_smtp_fsm_data_refused_by_server),
		TFSM_TEST(test_smtp_fsm_max_recipients),
		TFSM_TEST(test_smtp_fsm_data_size_limit_exact),
		TFSM_TEST(test_smtp_fsm_data_oversize_aborted),
		TFSM_TEST(test_smtp_fsm_data_oversize_then_mail_421),
		TFSM_TEST(test_smtp_fsm_smuggling_reject),
		TFSM_TEST(test_smtp_fsm_smuggling_normalize),
		TFSM_TEST(test_smtp_fsm_data_nul_refused),
		TFSM_TEST(test_smtp_fsm_starttls_strip_drains),
		TFSM_TEST(test_smtp_fsm_starttls_strip_pipelined),
		TFSM_TEST(test_smtp_fsm_starttls_allow_raw),
		TFSM_TEST(test_smtp_fsm_auth_continuation_not_parsed),
		TFSM_TEST(test_smtp_fsm_auth_relay),
		TFSM_TEST(test_smtp_fsm_auth_relay_off),
		TFSM_TEST(test_smtp_fsm_auth_bad_continuation_cancelled),
		TFSM_TEST(test_smtp_fsm_commands_not_listed),
		TFSM_TEST(test_smtp_fsm_commands_listed),
		TFSM_TEST(test_smtp_fsm_not_smtp_closes),
		TFSM_TEST(test_smtp_fsm_not_smtp_closes_after_owed_reply),
		TFSM_TEST(test_smtp_fsm_bad_bytes_in_command),
		TFSM_TEST(test_smtp_fsm_line_length_limit),
		TFSM_TEST(test_smtp_fsm_quit_nothing_after),
		TFSM_TEST(test_smtp_fsm_server_failed_421_in_order),
		TFSM_TEST(test_smtp_fsm_server_failed_451_server_gone),
		TFSM_TEST(test_smtp_fsm_server_failed_451_then_quit),
		TFSM_TEST(test_smtp_fsm_server_failed_after_dot),
		TFSM_TEST(test_smtp_fsm_server_lost_before_greeting),
		TFSM_TEST(test_smtp_fsm_server_unsolicited),
		TFSM_TEST(test_smtp_fsm_server_garbage_reply),
		TFSM_TEST(test_smtp_fsm_client_eof_during_data),
		TFSM_TEST(test_smtp_fsm_client_eof_after_quit),
		TFSM_TEST(test_smtp_fsm_client_eof_after_dot),
		TFSM_TEST(test_smtp_fsm_client_eof_before_354),
		TFSM_TEST(test_smtp_fsm_client_timeout),
		TFSM_TEST(test_smtp_fsm_client_timeout_during_data),
		TFSM_TEST(test_smtp_fsm_awaiting_server),
		TFSM_TEST(test_smtp_fsm_xclient_refused_event),
		TFSM_TEST(test_smtp_fsm_xclient_off_unchanged),
		TFSM_TEST(test_smtp_fsm_xclient_helo_too_long),
		TFSM_TEST(test_smtp_fsm_xclient_client_eof),
		TFSM_TEST(test_smtp_fsm_random_dialogs),
	};
	const char *dir = getenv("DIALOG_DIR");
	struct CMUnitTest *dlg;
	char **files, **names;
	size_t n, i;
	int failed;

	failed = cmocka_run_group_tests_name("smtp_fsm", tests, NULL, NULL);

	if (dir == NULL || *dir == '\0')
		dir = "tests/dialog";
	files = tfsm_dialogs(dir, &n);
	dlg = calloc(n ? n : 1, sizeof(*dlg));
	names = calloc(n ? n : 1, sizeof(*names));
	if (dlg == NULL || names == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		const char *base = strrchr(files[i], '/');

		if (asprintf(&names[i], "test_smtp_fsm_dialog %s", base ? base + 1 : files[i]) == -1)
			return 1;
		dlg[i] = (struct CMUnitTest){ names[i], test_smtp_fsm_dialog, NULL, NULL, files[i] };
	}
	if (n == 0) {
		dlg[0] = (struct CMUnitTest)cmocka_unit_test_prestate(test_smtp_fsm_dialog_files_found,
		    (void *)(uintptr_t)dir);
		n = 1;
	}
	failed += _cmocka_run_group_tests("smtp_fsm_dialogs", dlg, n, NULL, NULL);
	for (i = 0; i < n; i++) {
		if (files != NULL)
			free(files[i]);
		free(names[i]);
	}
	free(files);
	free(names);
	free(dlg);
	return failed;
}

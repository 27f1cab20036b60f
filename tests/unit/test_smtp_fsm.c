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
 *                                   max_line_length commands rules
 *                                   (rules: \n for a new line)
 *   client IP                       the client's address (default 203.0.113.10)
 *   C: text    / S: text            the client / server sends text CRLF
 *   C+ text    / S+ text            raw bytes, escapes \r \n \0 \t \\ \xHH
 *   C* N text                       the client sends text CRLF N times
 *                                   consecutive lines of one side are ONE
 *                                   write (pipelining), fed when the next
 *                                   item of another kind comes
 *   >S: text   / >C: text           the server / client received this line next
 *   >S+ text   / >C+ text           ... exactly these raw bytes next
 *   >S: -      / >C: -              ... nothing more so far
 *   eof client | eof server         FIN from that side
 *   timeout client                  timeout_idle fired
 *   server_failed CODE ENH TEXT     smtp_fsm_server_failed()
 *   state SS_X                      the FSM is in that state
 *   flag NAME | noflag NAME         CLOSE_CLIENT ABORT_SERVER DRAIN_CLIENT raised (ever) or not
 *   finished 0|1                    smtp_fsm_finished()
 *   event KIND WHAT REASON          such an event was reported (KIND: refuse
 *                                   error abort server message; "*" any)
 *   noevent KIND WHAT               no such event was reported
 *
 * At the end of a script both logs must have been fully expected: a dialog
 * lists every byte each peer received.
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
		cm_print_error("%s\n", fx->err);
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

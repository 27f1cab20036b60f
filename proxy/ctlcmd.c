/*
 * ctlcmd.c: the control commands (see ctlcmd.h and docs/control-protocol.md).
 *
 * Rule changes are built as one line of the rules-file language and parsed
 * by rules_rule_parse(), so the control socket accepts exactly what the
 * rules file accepts, with the same error messages.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admit.h"
#include "captures.h"
#include "control.h"
#include "ctlcmd.h"
#include "live.h"
#include "log.h"
#include "persist.h"
#include "session.h"
#include "sock.h"
#include "smtp/parse.h"
#include "worker.h"

#define CTL_OUT_MAX	(32 * 1024 * 1024)
#define CTL_RULE_TEXT	2048		/* one rule line, comment escaped */
#define CTL_CHECK_RCPT_MAX 1000

/* What a handler works with: the daemon, where its answer goes, and the connection for a late answer. */
struct ctl_ctx {
	struct proxy	*px;
	struct buf	*out;
	struct ctl_conn	*conn;
	const char	*usage;		/* the command's usage, from its ctl_kws[] row */
	int		 pending;	/* the answer comes later: ctl_conn_resume() */
};

/* ---- answers ------------------------------------------------------------- */

static void __attribute__((format(printf, 2, 3)))
ctl_line(struct buf *out, const char *fmt, ...)
{
	char line[CTL_RULE_TEXT + 512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)buf_append(out, line, (size_t)n, CTL_OUT_MAX);
}

/* ---- option parsing ---------------------------------------------------------- */

struct ctl_opts {
	const char	*for_;		/* --for */
	const char	*until;		/* --until */
	const char	*comment;	/* --comment */
	const char	*client, *helo, *from;
	const char	*sessions;	/* --sessions */
	const char	*to[CTL_CHECK_RCPT_MAX];
	unsigned	 nto;
};

/* 1 if name is one of the space-separated words of allowed. */
static int
ctl_opt_allowed(const char *allowed, const char *name)
{
	size_t nl = strlen(name);
	const char *p;

	for (p = allowed; (p = strstr(p, name)) != NULL; p++)
		if ((p == allowed || p[-1] == ' ') && (p[nl] == ' ' || p[nl] == '\0'))
			return 1;
	return 0;
}

/*
 * Parse --name VALUE / --name=VALUE options from argv[first..]. Only the
 * names in `allowed` (space-separated) are accepted. 0, or -1 with an error
 * answer written.
 */
static int
ctl_options(int argc, char **argv, int first, const char *allowed,
    struct ctl_opts *o, struct buf *out, const char *usage)
{
	int i;

	memset(o, 0, sizeof(*o));
	for (i = first; i < argc; i++) {
		char name[32];
		const char *val, *eq;
		const char **slot = NULL;
		size_t nl;

		if (strncmp(argv[i], "--", 2) != 0) {
			ctl_line(out, "error: usage: %s (unexpected '%s')", usage, argv[i]);
			return -1;
		}
		eq = strchr(argv[i], '=');
		nl = eq ? (size_t)(eq - argv[i] - 2) : strlen(argv[i] + 2);
		if (nl == 0 || nl >= sizeof(name)) {
			ctl_line(out, "error: usage: %s", usage);
			return -1;
		}
		memcpy(name, argv[i] + 2, nl);
		name[nl] = '\0';
		if (!ctl_opt_allowed(allowed, name)) {
			ctl_line(out, "error: usage: %s (unknown option --%s)", usage, name);
			return -1;
		}
		if (eq != NULL)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			ctl_line(out, "error: usage: %s (--%s needs a value)", usage, name);
			return -1;
		}
		if (strcmp(name, "to") == 0) {
			if (o->nto == CTL_CHECK_RCPT_MAX) {
				ctl_line(out, "error: at most %d --to", CTL_CHECK_RCPT_MAX);
				return -1;
			}
			o->to[o->nto++] = val;
			continue;
		}
		if (strcmp(name, "for") == 0)
			slot = &o->for_;
		else if (strcmp(name, "until") == 0)
			slot = &o->until;
		else if (strcmp(name, "comment") == 0)
			slot = &o->comment;
		else if (strcmp(name, "client") == 0)
			slot = &o->client;
		else if (strcmp(name, "helo") == 0)
			slot = &o->helo;
		else if (strcmp(name, "from") == 0)
			slot = &o->from;
		else if (strcmp(name, "sessions") == 0)
			slot = &o->sessions;
		if (slot == NULL) {
			ctl_line(out, "error: usage: %s", usage);
			return -1;
		}
		if (*slot != NULL) {
			ctl_line(out, "error: usage: %s (--%s given twice)", usage, name);
			return -1;
		}
		*slot = val;
	}
	return 0;
}

long long
ctlcmd_duration(const char *s)
{
	char *end;
	long long n, mul;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (*end) {
	case 's': mul = 1; break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	case 'w': mul = 7 * 86400; break;
	default: return -1;
	}
	if (n <= 0 || n > 100LL * 365 * 86400 / mul)	/* a century is absurd enough */
		return -1;
	return n * mul;
}

/* Strict: the time must print back as written, so 2026-02-30 is refused, not read as March 2. */
static int
ctl_parse_time(const char *s, time_t *out)
{
	struct tm tm;
	char *end, back[32];

	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL || *end != '\0')
		return -1;
	*out = timegm(&tm);
	if (strftime(back, sizeof(back), "%Y-%m-%dT%H:%M:%SZ", gmtime(out)) == 0 ||
	    strcmp(back, s) != 0)
		return -1;
	return 0;
}

/* ---- rule changes ---------------------------------------------------------------- */

/* Append "text" escaped for a comment="..." value. */
static void
ctl_quote(char *dst, size_t len, const char *s)
{
	size_t o = 0;

	for (; *s != '\0' && o + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			dst[o++] = '\\';
		dst[o++] = *s;
	}
	dst[o] = '\0';
}

/*
 * The rule named by argv (block sender P / block client C / allow relay C
 * to D, or the un- forms), with until/comment from the options, as one line
 * of the rules language parsed into *r. 0, or -1 with the error answered.
 */
static int
ctl_rule(int argc, char **argv, const struct ctl_opts *o, struct rules_rule *r,
    struct buf *out)
{
	char text[CTL_RULE_TEXT], when[32], q[CTL_RULE_TEXT / 2], err[RULES_ERR_LEN];
	time_t until = 0;
	size_t n;
	int relay = strcmp(argv[1], "relay") == 0;

	if (relay)
		n = (size_t)snprintf(text, sizeof(text), "allow relay %s to %s", argv[2], argv[4]);
	else
		n = (size_t)snprintf(text, sizeof(text), "block %s %s", argv[1], argv[2]);
	(void)argc;
	if (o != NULL && o->for_ != NULL && o->until != NULL) {
		ctl_line(out, "error: --for and --until are exclusive");
		return -1;
	}
	if (o != NULL && o->for_ != NULL) {
		long long d = ctlcmd_duration(o->for_);

		if (d == -1) {
			ctl_line(out, "error: bad duration '%s': expected a number and s, m, h, d or w (e.g. 7d)",
			    o->for_);
			return -1;
		}
		until = time(NULL) + (time_t)d;
	}
	if (o != NULL && o->until != NULL) {
		if (ctl_parse_time(o->until, &until) == -1) {
			ctl_line(out, "error: bad time '%s': expected YYYY-MM-DDTHH:MM:SSZ", o->until);
			return -1;
		}
		if (until <= time(NULL)) {
			ctl_line(out, "error: --until %s is already past", o->until);
			return -1;
		}
	}
	if (until != 0 && n < sizeof(text)) {
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&until));
		n += (size_t)snprintf(text + n, sizeof(text) - n, " until=%s", when);
	}
	if (o != NULL && o->comment != NULL && n < sizeof(text)) {
		ctl_quote(q, sizeof(q), o->comment);
		n += (size_t)snprintf(text + n, sizeof(text) - n, " comment=\"%s\"", q);
	}
	if (n >= sizeof(text)) {
		ctl_line(out, "error: rule too long");
		return -1;
	}
	if (rules_rule_parse(text, n, r, err) == -1) {
		ctl_line(out, "error: %s", err);
		return -1;
	}
	return 0;
}

/* A change waiting for the writer thread: answered when it is on disk and live. */
struct ctl_pending {
	struct proxy	*px;
	struct ctl_conn	*conn;
	const char	*verb;		/* "added", "updated", "removed" */
	char		 text[CTL_RULE_TEXT];
};

static void
ctl_change_done(void *arg, int ok, const char *err)
{
	struct ctl_pending *pc = arg;
	struct buf *out = ctl_conn_out(pc->conn);

	if (ok) {
		PX_STAT_ADD(pc->px, rule_changes, 1);	/* counted once on disk and live */
		log_info("control: rule %s: %s", pc->verb, pc->text);
		ctl_line(out, "ok %s: %s", pc->verb, pc->text);
	} else {
		log_warnx("control: rule not changed: %s: %s", pc->text, err);
		ctl_line(out, "error: %s; rules unchanged", err);
	}
	ctl_conn_resume(pc->conn);
	free(pc);
}

/*
 * block/unblock/allow/disallow: the change is built on the newest ruleset
 * (earlier changes may still be on their way to disk) and handed to the
 * writer; the answer comes when it is on disk and live.
 */
static void
ctl_change(struct ctl_ctx *x, int argc, char **argv, int add, int nwords)
{
	const char *usage = x->usage;
	struct buf *out = x->out;
	struct ctl_pending *pc;
	struct ctl_opts o;
	struct rules_rule r;
	struct ruleset *rs;
	int replaced = 0;

	if (argc < nwords || (nwords == 5 && strcmp(argv[3], "to") != 0)) {
		ctl_line(out, "error: usage: %s", usage);
		return;
	}
	if (ctl_options(argc, argv, nwords, add ? "for until comment" : "", &o, out, usage) == -1)
		return;
	if ((pc = calloc(1, sizeof(*pc))) == NULL) {
		ctl_line(out, "error: out of memory; rules unchanged");
		return;
	}
	if (ctl_rule(argc, argv, &o, &r, out) == -1) {
		free(pc);
		return;
	}
	rules_rule_format(&r, pc->text, sizeof(pc->text));
	rs = add ? rules_add(persist_latest(x->px), &r, &replaced) :
	    rules_remove(persist_latest(x->px), &r);
	rules_rule_clear(&r);
	if (rs == NULL) {
		if (errno == ENOENT)
			ctl_line(out, "error: no such rule: %s", pc->text);
		else if (errno == EINVAL)
			ctl_line(out, "error: not a valid rule: %s", pc->text);
		else
			ctl_line(out, "error: out of memory; rules unchanged");
		free(pc);
		return;
	}
	pc->px = x->px;
	pc->conn = x->conn;
	pc->verb = add ? (replaced ? "updated" : "added") : "removed";
	if (persist_submit(x->px, rs, ctl_change_done, pc) == -1) {
		ctl_line(out, "error: %s; rules unchanged",
		    errno == ESHUTDOWN ? "smtpwalld is stopping" : "out of memory");
		free(pc);
		return;
	}
	x->pending = 1;
}

static void
ctl_block(struct ctl_ctx *x, int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[1], "sender") != 0 && strcmp(argv[1], "client") != 0)) {
		ctl_line(x->out, "error: usage: %s", x->usage);
		return;
	}
	ctl_change(x, argc, argv, 1, 3);
}

static void
ctl_unblock(struct ctl_ctx *x, int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "sender") != 0 && strcmp(argv[1], "client") != 0)) {
		ctl_line(x->out, "error: usage: %s", x->usage);
		return;
	}
	ctl_change(x, argc, argv, 0, 3);
}

static void
ctl_allow(struct ctl_ctx *x, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "relay") != 0) {
		ctl_line(x->out, "error: usage: %s", x->usage);
		return;
	}
	ctl_change(x, argc, argv, 1, 5);
}

static void
ctl_disallow(struct ctl_ctx *x, int argc, char **argv)
{
	if (argc != 5 || strcmp(argv[1], "relay") != 0) {
		ctl_line(x->out, "error: usage: %s", x->usage);
		return;
	}
	ctl_change(x, argc, argv, 0, 5);
}

/* ---- rules ------------------------------------------------------------------------ */

static void
ctl_span(char *buf, size_t len, long long secs)
{
	long long d = secs / 86400, h = secs % 86400 / 3600, m = secs % 3600 / 60;

	if (d > 0)
		snprintf(buf, len, "%lldd%lldh%lldm", d, h, m);
	else if (h > 0)
		snprintf(buf, len, "%lldh%lldm", h, m);
	else
		snprintf(buf, len, "%lldm%llds", m, secs % 60);
}

static void
ctl_rules(struct ctl_ctx *x, int argc, char **argv)
{
	struct proxy *px = x->px;
	struct buf *out = x->out;

	char text[CTL_RULE_TEXT], left[32];
	time_t now = time(NULL);
	size_t i, n = rules_count(px->rules);

	(void)argv;
	if (argc != 1) {
		ctl_line(out, "error: usage: %s", x->usage);
		return;
	}
	for (i = 0; i < n; i++) {
		const struct rules_rule *r = rules_get(px->rules, i);
		unsigned long long hits = __atomic_load_n(&r->hits, __ATOMIC_RELAXED);

		rules_rule_format(r, text, sizeof(text));
		if (r->until != 0) {
			ctl_span(left, sizeof(left), r->until > now ? (long long)(r->until - now) : 0);
			ctl_line(out, "%s  # hits=%llu expires_in=%s", text, hits, left);
		} else
			ctl_line(out, "%s  # hits=%llu", text, hits);
	}
	ctl_line(out, "ok %zu rules", n);
}

/* ---- check: "why was this refused?" ------------------------------------------------- */

static void
ctl_rule_text(const struct rules_rule *r, char *buf, size_t len)
{
	char text[CTL_RULE_TEXT];

	rules_rule_format_key(r, text, sizeof(text));
	snprintf(buf, len, " rule=\"%s\"", text);
}

/* Which trusted_networks entry holds sa, as text; "" if none. */
static void
ctl_trusted_by(const struct rules_policy *pol, const struct sockaddr *sa, char *buf, size_t len)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; pol->trusted != NULL && i < rules_cidrset_count(pol->trusted); i++)
		if (rules_cidr_match(rules_cidrset_get(pol->trusted, i), sa)) {
			rules_cidr_format(rules_cidrset_get(pol->trusted, i), buf, len);
			return;
		}
}

static void
ctl_explain_rcpt(const struct rules_verdict *v, const char *ip, const char *tnet,
    struct slice domain, char *buf, size_t len)
{
	char rule[CTL_RULE_TEXT + 16];
	int dl = (int)domain.len;

	rule[0] = '\0';
	if (v->rule != NULL)
		ctl_rule_text(v->rule, rule, sizeof(rule));
	switch (v->reason) {
	case RULES_R_POSTMASTER:
		snprintf(buf, len, "reason=postmaster: postmaster is always accepted (RFC 5321 4.5.1)");
		break;
	case RULES_R_TRUSTED:
		snprintf(buf, len, "reason=trusted: %s is in trusted_networks (%s)", ip, tnet);
		break;
	case RULES_R_ALLOW_RULE:
		snprintf(buf, len, "reason=allow_rule%s", rule);
		break;
	case RULES_R_AUTH:
		snprintf(buf, len, "reason=auth: the session authenticated and auth_relay = yes");
		break;
	case RULES_R_LOCAL_DOMAIN:
		snprintf(buf, len, "reason=local_domain: %.*s is in local_domains", dl, domain.p);
		break;
	case RULES_R_ROUTING:
		snprintf(buf, len, "reason=routing: sender-specified routing (%%, !, a second @ or "
		    "a source route) from %s, which is not in trusted_networks", ip);
		break;
	case RULES_R_RELAY:
		snprintf(buf, len, "reason=relay: %s is not in trusted_networks, no allow relay rule "
		    "for it matches %.*s, %.*s is not in local_domains", ip, dl, domain.p, dl, domain.p);
		break;
	case RULES_R_SENDER_RULE:
	case RULES_R_CLIENT_RULE:
	case RULES_R_NONE:
		snprintf(buf, len, "reason=%s%s", rules_reason_str(v->reason), rule);
		break;
	}
}

/* "a@b" or "<a@b>" -> "VERB:<a@b>" for the SMTP parser, so check reads addresses as sessions do. */
static int
ctl_envelope_line(char *buf, size_t len, const char *verb, const char *addr)
{
	int n;

	if (addr[0] == '<')
		n = snprintf(buf, len, "%s%s", verb, addr);
	else
		n = snprintf(buf, len, "%s<%s>", verb, addr);
	return n < 0 || (size_t)n >= len ? -1 : n;
}

static void
ctl_check(struct ctl_ctx *x, int argc, char **argv)
{
	struct proxy *px = x->px;
	struct buf *out = x->out;
	const char *usage = x->usage;
	const struct pxconf *conf = px->conf;
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	const struct sockaddr *sa = (const struct sockaddr *)&ss;
	struct rules_verdict v;
	struct smtp_cmd c;
	struct ctl_opts o;
	char line[SMTP_PATH_MAX + 32], why[CTL_RULE_TEXT + 512], tnet[64], esc[SMTP_PATH_MAX * 4];
	time_t now = time(NULL);
	unsigned i;
	int refused = 0, res;

	if (ctl_options(argc, argv, 1, "client helo from to", &o, out, usage) == -1)
		return;
	if (o.client == NULL || o.from == NULL || o.nto == 0) {
		ctl_line(out, "error: usage: %s", usage);
		return;
	}
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, o.client, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, o.client, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else {
		ctl_line(out, "error: --client %s: not an IPv4 or IPv6 address", o.client);
		return;
	}

	/* Dry run: evaluations here must not count as rule hits. */
	rules_eval_client(px->rules, sa, now, &v);
	rules_hit_undo(v.rule);
	ctl_trusted_by(&conf->policy, sa, tnet, sizeof(tnet));
	if (!v.accept) {
		ctl_rule_text(v.rule, why, sizeof(why));
		ctl_line(out, "client %s: refused 554 5.7.1 (reason=client%s)", o.client, why);
		refused = 1;
	} else if (tnet[0] != '\0')
		ctl_line(out, "client %s: accepted (no block client rule matches; in trusted_networks %s: may relay anywhere)",
		    o.client, tnet);
	else
		ctl_line(out, "client %s: accepted (no block client rule matches)", o.client);
	if (o.helo != NULL)
		ctl_line(out, "helo %s: accepted (smtpwall does not judge HELO)",
		    log_escape(esc, sizeof(esc), o.helo, strlen(o.helo)));

	log_escape(esc, sizeof(esc), o.from, strlen(o.from));
	if (ctl_envelope_line(line, sizeof(line), "MAIL FROM:", o.from) == -1 ||
	    (res = smtp_parse_cmd(line, strlen(line), &c)) != SMTP_PARSE_OK) {
		ctl_line(out, "from %s: refused 501 5.1.7 (bad sender address syntax)", esc);
		refused = 1;
	} else {
		rules_eval_sender(px->rules, c.path.mailbox.p,
		    (c.path.flags & SMTP_PATH_NULL) ? 0 : c.path.mailbox.len, now, &v);
		rules_hit_undo(v.rule);
		if (!v.accept) {
			ctl_rule_text(v.rule, why, sizeof(why));
			ctl_line(out, "from <%.*s>: refused 550 5.7.1 (reason=sender%s)",
			    (int)c.path.mailbox.len, c.path.mailbox.p, why);
			refused = 1;
		} else
			ctl_line(out, "from <%.*s>: accepted (no block sender rule matches)",
			    (int)c.path.mailbox.len, c.path.mailbox.p);
	}

	for (i = 0; i < o.nto; i++) {
		struct rules_rcpt r;
		char ip[SOCK_IP_LEN];

		log_escape(esc, sizeof(esc), o.to[i], strlen(o.to[i]));
		if (ctl_envelope_line(line, sizeof(line), "RCPT TO:", o.to[i]) == -1 ||
		    smtp_parse_cmd(line, strlen(line), &c) != SMTP_PARSE_OK) {
			ctl_line(out, "rcpt %s: refused 501 5.1.3 (bad recipient address syntax)", esc);
			refused = 1;
			continue;
		}
		if (i >= conf->cf.max_recipients) {
			ctl_line(out, "rcpt <%.*s>: refused 452 4.5.3 (reason=too_many_recipients: "
			    "max_recipients = %u)", (int)c.path.raw.len, c.path.raw.p,
			    conf->cf.max_recipients);
			refused = 1;
			continue;
		}
		smtp_fsm_rcpt_of(&c.path, &r);
		rules_eval_rcpt(&conf->policy, px->rules, sa, 0, &r, now, &v);
		rules_hit_undo(v.rule);
		ctl_explain_rcpt(&v, sock_ip_str(sa, ip), tnet, c.path.domain, why, sizeof(why));
		if (v.accept)
			ctl_line(out, "rcpt <%.*s>: accepted (%s)", (int)c.path.raw.len,
			    c.path.raw.p, why);
		else {
			ctl_line(out, "rcpt <%.*s>: refused 550 5.7.1 (%s)", (int)c.path.raw.len,
			    c.path.raw.p, why);
			refused = 1;
		}
	}
	ctl_line(out, "ok %s", refused ? "refused" : "accepted");
}

/* ---- sessions, stats ---------------------------------------------------------------- */

/* One worker's sessions, formatted on its own thread (worker_call). */
struct ctl_sessions_arg {
	struct buf	*out;
	unsigned	 n;
};

static void
ctl_sessions_of(struct worker *w, void *arg)
{
	struct ctl_sessions_arg *a = arg;
	const struct session *s;
	char c[SOCK_ADDR_LEN], sv[SOCK_ADDR_LEN], from[SESS_FROM_LEN], st[16];
	uint64_t now = ev_now(w->loop);
	size_t i;

	for (s = w->sessions; s != NULL; s = s->next, a->n++) {
		const char *name = smtp_state_str(s->fsm.state) + 3;	/* "SS_DATA" -> "data" */

		for (i = 0; name[i] != '\0' && i + 1 < sizeof(st); i++)
			st[i] = (char)tolower((unsigned char)name[i]);
		st[i] = '\0';
		sess_from_str(s, from);
		ctl_line(a->out, "session=%016llx client=%s server=%s age=%llus state=%s from=%s "
		    "rcpt_ok=%u rcpt_refused=%u messages=%u worker=%u",
		    (unsigned long long)s->id,
		    sock_addr_str((const struct sockaddr *)&s->caddr, c),
		    sock_addr_str((const struct sockaddr *)&s->saddr, sv),
		    (unsigned long long)((now - s->start_ms) / 1000), st, from,
		    s->fsm.rcpt_ok, s->fsm.rcpt_refused, s->fsm.messages, w->id);
	}
}

static void
ctl_sessions(struct ctl_ctx *x, int argc, char **argv)
{
	struct ctl_sessions_arg a = { .out = x->out };

	(void)argv;
	if (argc != 1) {
		ctl_line(x->out, "error: usage: %s", x->usage);
		return;
	}
	workers_each(x->px, ctl_sessions_of, &a);
	ctl_line(x->out, "ok %u sessions", a.n);
}

static void
ctl_stats(struct ctl_ctx *x, int argc, char **argv)
{
	struct proxy *px = x->px;
	struct buf *out = x->out;

	const struct config *cf = &px->conf->cf;
	struct admit_stats as;
	unsigned long long hits = 0;
	char key[400];
	size_t i, n = rules_count(px->rules);

	(void)argv;
	if (argc != 1) {
		ctl_line(out, "error: usage: %s", x->usage);
		return;
	}
	for (i = 0; i < n; i++)
		hits += __atomic_load_n(&rules_get(px->rules, i)->hits, __ATOMIC_RELAXED);
	ctl_line(out, "uptime=%lld", (long long)(time(NULL) - px->stats.started));
	ctl_line(out, "sessions_total=%llu", (unsigned long long)PX_STAT(px, sessions));
	ctl_line(out, "sessions_active=%u", px_nsessions(px));
	ctl_line(out, "sessions_refused=%llu", (unsigned long long)PX_STAT(px, sessions_refused));
	ctl_line(out, "sessions_refused_client_rule=%llu",
	    (unsigned long long)PX_STAT(px, refused_client));
	ctl_line(out, "messages=%llu", (unsigned long long)PX_STAT(px, messages));
	ctl_line(out, "bytes=%llu", (unsigned long long)PX_STAT(px, bytes));
	ctl_line(out, "refused_rcpt=%llu", (unsigned long long)PX_STAT(px, refused_rcpt));
	ctl_line(out, "refused_rcpt_relay=%llu", (unsigned long long)PX_STAT(px, refused_rcpt_relay));
	ctl_line(out, "refused_rcpt_routing=%llu",
	    (unsigned long long)PX_STAT(px, refused_rcpt_routing));
	ctl_line(out, "refused_rcpt_limit=%llu", (unsigned long long)PX_STAT(px, refused_rcpt_limit));
	ctl_line(out, "refused_sender=%llu", (unsigned long long)PX_STAT(px, refused_sender));
	ctl_line(out, "refused_size=%llu", (unsigned long long)PX_STAT(px, refused_size));
	ctl_line(out, "aborted_data=%llu", (unsigned long long)PX_STAT(px, aborted_data));
	ctl_line(out, "rules=%zu", n);
	ctl_line(out, "rule_hits=%llu", hits);
	ctl_line(out, "rule_changes=%llu", (unsigned long long)PX_STAT(px, rule_changes));
	ctl_line(out, "reloads=%llu", (unsigned long long)PX_STAT(px, reloads));
	ctl_line(out, "workers=%u", px->nworkers);
	for (i = 0; i < px->nworkers; i++)
		ctl_line(out, "worker=%zu sessions_active=%u sessions_total=%llu", i,
		    worker_nsessions(&px->workers[i]),
		    (unsigned long long)worker_sessions_total(&px->workers[i]));
	if (cf->nfqueue_on) {
		admit_get_stats(px, &as);
		if (cf->nfqueue_first == cf->nfqueue_last)
			ctl_line(out, "nfqueue=%u", cf->nfqueue_first);
		else
			ctl_line(out, "nfqueue=%u-%u", cf->nfqueue_first, cf->nfqueue_last);
		ctl_line(out, "nfq_syn_accepted=%llu", (unsigned long long)as.syn_accepted);
		ctl_line(out, "nfq_syn_dropped_client=%llu", (unsigned long long)as.syn_dropped_client);
		ctl_line(out, "nfq_syn_dropped_rate=%llu", (unsigned long long)as.syn_dropped_rate);
		ctl_line(out, "nfq_other_packets=%llu", (unsigned long long)(as.not_syn + as.unparsed));
		ctl_line(out, "nfq_verdicts=%llu", (unsigned long long)as.verdicts);
		ctl_line(out, "nfq_sends=%llu", (unsigned long long)as.sends);
		ctl_line(out, "nfq_errors=%llu", (unsigned long long)as.errors);
		ctl_line(out, "rate_clients=%llu", (unsigned long long)as.rate_clients);
		ctl_line(out, "rate_evictions=%llu", (unsigned long long)as.rate_evictions);
	} else {
		ctl_line(out, "nfqueue=off");
	}
	/* Per block client rule: with nfqueue, each hit is a dropped SYN. */
	for (i = 0; i < n; i++) {
		const struct rules_rule *r = rules_get(px->rules, i);
		unsigned long long h = __atomic_load_n(&r->hits, __ATOMIC_RELAXED);

		if (r->kind != RULES_BLOCK_CLIENT || h == 0)
			continue;
		rules_rule_format_key(r, key, sizeof(key));
		ctl_line(out, "client_rule hits=%llu rule=\"%s\"", h, key);
	}
	ctl_line(out, "ok");
}

/* ---- reload, capture, help -------------------------------------------------------- */

static void
ctl_reload(struct ctl_ctx *x, int argc, char **argv)
{
	struct proxy *px = x->px;
	struct buf *out = x->out;

	char *msg = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *mf;
	int nerr;

	(void)argv;
	if (argc != 1) {
		ctl_line(out, "error: usage: %s", x->usage);
		return;
	}
	if ((mf = open_memstream(&msg, &len)) == NULL) {
		ctl_line(out, "error: out of memory");
		return;
	}
	nerr = live_reload(px, mf);
	fclose(mf);
	for (line = strtok_r(msg, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		ctl_line(out, "%s", line);
	free(msg);
	if (nerr)
		ctl_line(out, "error: reload refused: %d error%s, nothing changed", nerr,
		    nerr == 1 ? "" : "s");
	else
		ctl_line(out, "ok reloaded: %zu rules", rules_count(px->rules));
}

static void
ctl_capture_list(struct ctl_ctx *x)
{
	struct capt_info armed[CAPT_MAX_ARMED];
	struct capt_file files[CAPT_RECENT];
	char until[32];
	uint64_t rx, drop;
	unsigned i, n, nf;

	n = capt_list(x->px, armed, CAPT_MAX_ARMED);
	for (i = 0; i < n; i++) {
		if (armed[i].until != 0)
			strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", gmtime(&armed[i].until));
		else
			strcpy(until, "-");
		ctl_line(x->out, "capture id=%u %s%s%s sessions_left=%u files=%u until=%s",
		    armed[i].id, capt_kind_str(armed[i].kind), armed[i].match[0] ? " " : "",
		    armed[i].match, armed[i].sessions_left, armed[i].files, until);
	}
	nf = capt_files(x->px, files, CAPT_RECENT);
	for (i = 0; i < nf; i++)
		ctl_line(x->out, "file id=%u session=%016llx bytes=%llu%s%s %s/%s", files[i].id,
		    (unsigned long long)files[i].session, (unsigned long long)files[i].bytes,
		    files[i].open ? " writing" : "", files[i].truncated ? " truncated" : "",
		    x->px->conf->cf.capture_dir, files[i].name);
	capt_pcap_stats(x->px, &rx, &drop);
	if (rx != 0 || drop != 0)
		ctl_line(x->out, "pcap received=%llu dropped=%llu", (unsigned long long)rx,
		    (unsigned long long)drop);
	ctl_line(x->out, "ok %u armed, %u recent files", n, nf);
}

/*
 * capture client CIDR | sender PATTERN | rcpt PATTERN | refused
 *     [--sessions N] [--for DURATION]; capture list; capture stop ID.
 * Arming answers "ok ID", so that `id=$(smtpwallctl capture ...)` works.
 */
static void
ctl_capture(struct ctl_ctx *x, int argc, char **argv)
{
	struct buf *out = x->out;
	struct ctl_opts o;
	enum capt_kind kind;
	const char *arg = NULL;
	char err[256], *end;
	unsigned long n, sessions = 1;
	long long for_s = 0;
	unsigned id;
	int first;

	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		ctl_capture_list(x);
		return;
	}
	if (argc == 3 && strcmp(argv[1], "stop") == 0) {
		errno = 0;
		n = strtoul(argv[2], &end, 10);
		if (*argv[2] == '\0' || *end != '\0' || errno != 0 || n == 0 || n > UINT_MAX ||
		    capt_stop(x->px, (unsigned)n) == -1) {
			ctl_line(out, "error: no armed capture with id %s (see capture list)", argv[2]);
			return;
		}
		ctl_line(out, "ok stopped capture %lu", n);
		return;
	}
	for (kind = 0; kind < CAPT_KINDS; kind++)
		if (argc >= 2 && strcmp(argv[1], capt_kind_str(kind)) == 0)
			break;
	/* refused takes no argument; the others one: the CIDR or the pattern */
	first = kind == CAPT_REFUSED ? 2 : 3;
	if (kind == CAPT_KINDS || argc < first) {
		ctl_line(out, "error: usage: %s", x->usage);
		return;
	}
	if (kind != CAPT_REFUSED)
		arg = argv[2];
	if (ctl_options(argc, argv, first, "sessions for", &o, out, x->usage) == -1)
		return;
	if (o.sessions != NULL) {
		errno = 0;
		sessions = strtoul(o.sessions, &end, 10);
		if (*o.sessions < '1' || *o.sessions > '9' || *end != '\0' || errno != 0 ||
		    sessions > 999999999) {
			ctl_line(out, "error: --sessions: expected a number from 1 to 999999999, not '%s'",
			    o.sessions);
			return;
		}
	}
	if (o.for_ != NULL && (for_s = ctlcmd_duration(o.for_)) < 0) {
		ctl_line(out, "error: bad duration '%s': expected a number and s, m, h, d or w (e.g. 2h)",
		    o.for_);
		return;
	}
	if (capt_arm(x->px, kind, arg, (unsigned)sessions, (unsigned long long)for_s, &id, err,
	    sizeof(err)) == -1) {
		ctl_line(out, "error: %s", err);
		return;
	}
	ctl_line(out, "ok %u", id);
}

static void ctl_help(struct ctl_ctx *, int, char **);

static const struct ctl_kw {
	const char	*verb;
	const char	*usage;
	void		(*run)(struct ctl_ctx *, int, char **);
} ctl_kws[] = {
	{ "block",	"block sender PATTERN | block client CIDR [--for DURATION | --until TIME] [--comment TEXT]", ctl_block },
	{ "unblock",	"unblock sender PATTERN | unblock client CIDR", ctl_unblock },
	{ "allow",	"allow relay CIDR to DOMAIN-PATTERN [--for DURATION | --until TIME] [--comment TEXT]", ctl_allow },
	{ "disallow",	"disallow relay CIDR to DOMAIN-PATTERN", ctl_disallow },
	{ "rules",	"rules", ctl_rules },
	{ "check",	"check --client IP [--helo NAME] --from ADDR --to ADDR [--to ADDR ...]", ctl_check },
	{ "sessions",	"sessions", ctl_sessions },
	{ "stats",	"stats", ctl_stats },
	{ "reload",	"reload", ctl_reload },
	{ "capture",	"capture client CIDR | sender PATTERN | rcpt PATTERN | refused [--sessions N] [--for DURATION] | capture list | capture stop ID", ctl_capture },
	{ "help",	"help", ctl_help },
};

static void
ctl_help(struct ctl_ctx *x, int argc, char **argv)
{
	struct proxy *px = x->px;
	struct buf *out = x->out;

	size_t i;

	(void)px;
	(void)argc;
	(void)argv;
	for (i = 0; i < sizeof(ctl_kws) / sizeof(ctl_kws[0]); i++)
		ctl_line(out, "%s", ctl_kws[i].usage);
	ctl_line(out, "ok");
}

int
ctlcmd_run(struct proxy *px, int argc, char **argv, struct ctl_conn *c)
{
	struct ctl_ctx x = { px, ctl_conn_out(c), c, NULL, 0 };
	char esc[128];
	size_t i;

	for (i = 0; i < sizeof(ctl_kws) / sizeof(ctl_kws[0]); i++)
		if (strcmp(argv[0], ctl_kws[i].verb) == 0) {
			x.usage = ctl_kws[i].usage;
			ctl_kws[i].run(&x, argc, argv);
			return x.pending;
		}
	ctl_line(x.out, "error: usage: unknown command '%s'; commands: block, unblock, allow, "
	    "disallow, rules, check, sessions, stats, reload, capture, help",
	    log_escape(esc, sizeof(esc), argv[0], strlen(argv[0])));
	return 0;
}

/*
 * args.c: the command table of smtpwallctl and the translation of its
 * command words into one control-protocol line (see args.h for the
 * contract).
 *
 * A command is a row of args_verbs[]: literal words (lowercase), argument
 * slots (UPPERCASE names, e.g. PATTERN), the options it accepts and those it
 * requires. Parsing walks the row, then the options; the line is written in
 * the row's order with the options in args_opts[] order (so the daemon always
 * sees the order of docs/control-protocol.md, whatever order they were
 * typed in), each as "--name value".
 *
 * Never allocates, never writes anywhere but the caller's buffers (and the
 * FILE given to args_help_print).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/args.h"

#define ARGS_MAX_WORDS		6	/* the longest row: allow relay CIDR to DOMAIN-PATTERN */
#define ARGS_MAX_OPTVALS	(ARGS_LINE_MAX / 4)	/* " --x v" is more than 4 bytes: the line fills first */
#define ARGS_ESC_MAX		48	/* bytes of a bad word quoted back in a message */
#define ARGS_HELP_WIDTH		79

enum args_opt_id {
	ARGS_O_CLIENT = 0,
	ARGS_O_HELO,
	ARGS_O_FROM,
	ARGS_O_TO,
	ARGS_O_SESSIONS,
	ARGS_O_FOR,
	ARGS_O_UNTIL,
	ARGS_O_COMMENT,
	ARGS_O_COUNT,
};

#define ARGS_BIT(o)	(1u << (o))
#define ARGS_EXPIRY	(ARGS_BIT(ARGS_O_FOR) | ARGS_BIT(ARGS_O_UNTIL) | ARGS_BIT(ARGS_O_COMMENT))
#define ARGS_CAPTURE	(ARGS_BIT(ARGS_O_SESSIONS) | ARGS_BIT(ARGS_O_FOR))
#define ARGS_CHECK	(ARGS_BIT(ARGS_O_CLIENT) | ARGS_BIT(ARGS_O_HELO) | ARGS_BIT(ARGS_O_FROM) | \
			 ARGS_BIT(ARGS_O_TO))
#define ARGS_CHECK_REQ	(ARGS_BIT(ARGS_O_CLIENT) | ARGS_BIT(ARGS_O_FROM) | ARGS_BIT(ARGS_O_TO))

/* ao_flags */
#define ARGS_REPEAT	0x1	/* may be given several times (--to) */
#define ARGS_EMPTY_OK	0x2	/* "" is a value (--comment "" clears a comment) */
#define ARGS_DASH_OK	0x4	/* the next word is the value even if it starts with "--" */

struct args_opt {
	const char	*ao_name;	/* without its "--" */
	const char	*ao_value;	/* the value's name in usage lines */
	unsigned	 ao_flags;
	/* 0 if the value is acceptable; else -1 with a message in err */
	int		(*ao_check)(const char *value, char *err, size_t errlen);
};

struct args_verb {
	const char	*av_words[ARGS_MAX_WORDS];	/* literal (lowercase) or slot (UPPERCASE); NULL ends */
	unsigned	 av_opts;			/* ARGS_BIT()s accepted */
	unsigned	 av_required;			/* ARGS_BIT()s that must be given */
	const char	*av_desc;			/* for --help; may hold "\n" for a second line */
};

static int	args_check_duration(const char *, char *, size_t);
static int	args_check_time(const char *, char *, size_t);
static int	args_check_count(const char *, char *, size_t);
static int	args_check_text(const char *, char *, size_t);
static int	args_check_word(const char *, char *, size_t);

static const struct args_opt args_opts[ARGS_O_COUNT] = {
	[ARGS_O_CLIENT]   = { "client",   "IP",       0,                          args_check_word },
	[ARGS_O_HELO]     = { "helo",     "NAME",     0,                          args_check_word },
	[ARGS_O_FROM]     = { "from",     "ADDR",     0,                          args_check_word },
	[ARGS_O_TO]       = { "to",       "ADDR",     ARGS_REPEAT,                args_check_word },
	[ARGS_O_SESSIONS] = { "sessions", "N",        0,                          args_check_count },
	[ARGS_O_FOR]      = { "for",      "DURATION", 0,                          args_check_duration },
	[ARGS_O_UNTIL]    = { "until",    "TIME",     0,                          args_check_time },
	[ARGS_O_COMMENT]  = { "comment",  "TEXT",     ARGS_EMPTY_OK | ARGS_DASH_OK, args_check_text },
};

static const struct args_verb args_verbs[] = {
	{ { "block", "sender", "PATTERN" }, ARGS_EXPIRY, 0,
	  "refuse MAIL FROM addresses matching PATTERN (550 5.7.1)" },
	{ { "block", "client", "CIDR" }, ARGS_EXPIRY, 0,
	  "refuse every connection from CIDR (its first packet is dropped\n"
	  "when nfqueue is on; otherwise it is greeted 554 and closed)" },
	{ { "unblock", "sender", "PATTERN" }, 0, 0,
	  "remove the block sender rule for PATTERN" },
	{ { "unblock", "client", "CIDR" }, 0, 0,
	  "remove the block client rule for CIDR" },
	{ { "allow", "relay", "CIDR", "to", "DOMAIN-PATTERN" }, ARGS_EXPIRY, 0,
	  "let clients in CIDR relay to the domains DOMAIN-PATTERN matches" },
	{ { "disallow", "relay", "CIDR", "to", "DOMAIN-PATTERN" }, 0, 0,
	  "remove that allow relay rule" },
	{ { "rules" }, 0, 0,
	  "every rule in file order, with its hits and expiry" },
	{ { "check" }, ARGS_CHECK, ARGS_CHECK_REQ,
	  "run an envelope through the live policy without sending mail: the\n"
	  "verdict of each step and the rule or reason; ends \"ok accepted\" or\n"
	  "\"ok refused\" (exit 0 either way)" },
	{ { "sessions" }, 0, 0,
	  "live sessions: id, client, server, age, state, sender, recipients" },
	{ { "stats" }, 0, 0,
	  "counters since start" },
	{ { "reload" }, 0, 0,
	  "re-read the configuration and the rules file; a file with an error\n"
	  "changes nothing and each error is printed as FILE:LINE: message" },
	{ { "capture", "client", "CIDR" }, ARGS_CAPTURE, 0,
	  "write the next sessions from CIDR to pcap files; prints the\n"
	  "capture id" },
	{ { "capture", "sender", "PATTERN" }, ARGS_CAPTURE, 0,
	  "capture sessions whose MAIL FROM matches PATTERN" },
	{ { "capture", "rcpt", "PATTERN" }, ARGS_CAPTURE, 0,
	  "capture sessions with a RCPT TO matching PATTERN" },
	{ { "capture", "refused" }, ARGS_CAPTURE, 0,
	  "capture sessions in which smtpwall refuses a command" },
	{ { "capture", "list" }, 0, 0,
	  "the armed captures" },
	{ { "capture", "stop", "ID" }, 0, 0,
	  "disarm a capture" },
	{ { "help" }, 0, 0,
	  "the daemon's own list of commands" },
};

#define ARGS_NVERBS	(sizeof args_verbs / sizeof args_verbs[0])

/* The state of one args_build() call. */
struct args_parse {
	int			 ap_argc;
	char *const		*ap_argv;
	int			 ap_i;			/* next argv word */
	const struct args_verb	*ap_verb;
	const char		*ap_cmd;		/* "block sender", for messages */
	char			 ap_cmdbuf[64];
	const char		*ap_slots[ARGS_MAX_WORDS];	/* the value of each slot of the row */
	unsigned		 ap_seen;		/* ARGS_BIT()s given */
	size_t			 ap_nvals;
	struct {
		enum args_opt_id	 id;
		const char		*value;
	}			 ap_vals[ARGS_MAX_OPTVALS];
	struct args_out		*ap_out;
};

/* ---- small helpers ------------------------------------------------------ */

static int
args_is_slot(const char *w)
{
	return isupper((unsigned char)w[0]);
}

static int
args_is_help(const char *w)
{
	return strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0;
}

static int
args_has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* s made printable and short enough to quote back in a message. */
static const char *
args_esc(char *dst, size_t len, const char *s)
{
	size_t o = 0;

	for (; *s != '\0' && o + 4 < len && o < ARGS_ESC_MAX; s++) {
		unsigned char c = (unsigned char)*s;

		dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (*s != '\0' && o + 4 <= len) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

static void
args_fail(struct args_parse *ap, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
args_fail(struct args_parse *ap, const char *fmt, ...)
{
	va_list va;

	va_start(va, fmt);
	vsnprintf(ap->ap_out->err, sizeof ap->ap_out->err, fmt, va);
	va_end(va);
}

/* Append to a NUL-terminated buffer, truncating silently (usage texts are sized generously). */
static void
args_cat(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
args_cat(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strnlen(buf, len);
	va_list va;

	if (used + 1 >= len)
		return;
	va_start(va, fmt);
	vsnprintf(buf + used, len - used, fmt, va);
	va_end(va);
}

/* ---- value checks ------------------------------------------------------- */

long long
args_duration(const char *s)
{
	long long n = 0, unit;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		n = n * 10 + (*p - '0');
		if (n > ARGS_DURATION_MAX_DAYS * 86400LL)
			return -1;
	}
	switch (*p) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	case 'w': unit = 7 * 86400; break;
	default: return -1;
	}
	if (p[1] != '\0' || n == 0 || n > ARGS_DURATION_MAX_DAYS * 86400LL / unit)
		return -1;
	return n * unit;
}

static int
args_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int
args_time_ok(const char *s)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mon, d, h, mi, sec, leap;

	if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[19] != 'Z')
		return -1;
	y = args_digits(s, 4);
	mon = args_digits(s + 5, 2);
	d = args_digits(s + 8, 2);
	h = args_digits(s + 11, 2);
	mi = args_digits(s + 14, 2);
	sec = args_digits(s + 17, 2);
	if (y < 1970 || mon < 1 || mon > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    sec < 0 || sec > 59)
		return -1;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d > mdays[mon - 1] + (mon == 2 && leap))
		return -1;
	/* the epoch itself means "never expires" in the rules file */
	if (y == 1970 && mon == 1 && d == 1 && h == 0 && mi == 0 && sec == 0)
		return -1;
	return 0;
}

static int
args_check_duration(const char *v, char *err, size_t errlen)
{
	char esc[ARGS_ESC_MAX + 8];

	if (args_duration(v) != -1)
		return 0;
	snprintf(err, errlen, "bad DURATION '%s': expected a number and a unit s, m, h, d or w "
	    "(90m, 7d), at most %dd", args_esc(esc, sizeof esc, v), ARGS_DURATION_MAX_DAYS);
	return -1;
}

static int
args_check_time(const char *v, char *err, size_t errlen)
{
	char esc[ARGS_ESC_MAX + 8];

	if (args_time_ok(v) == 0)
		return 0;
	snprintf(err, errlen, "bad TIME '%s': expected YYYY-MM-DDTHH:MM:SSZ in UTC "
	    "(2026-12-04T17:00:00Z)", args_esc(esc, sizeof esc, v));
	return -1;
}

static int
args_check_count(const char *v, char *err, size_t errlen)
{
	char esc[ARGS_ESC_MAX + 8];
	size_t n = strlen(v);

	if (n > 0 && n <= 9 && strspn(v, "0123456789") == n && strtol(v, NULL, 10) > 0)
		return 0;
	snprintf(err, errlen, "bad N '%s': expected a whole number from 1 to 999999999",
	    args_esc(esc, sizeof esc, v));
	return -1;
}

static int
args_check_text(const char *v, char *err, size_t errlen)
{
	if (!args_has_control(v))
		return 0;
	snprintf(err, errlen, "control characters are not allowed");
	return -1;
}

static int
args_check_word(const char *v, char *err, size_t errlen)
{
	if (*v == '\0') {
		snprintf(err, errlen, "must not be empty");
		return -1;
	}
	return args_check_text(v, err, errlen);
}

/* ---- quoting and the line ------------------------------------------------ */

int
args_quote(char *dst, size_t cap, size_t *len, const char *word)
{
	size_t o = *len, need = 0;
	const char *p;
	int quote = *word == '\0' || strpbrk(word, " \t\"\\") != NULL;

	for (p = word; *p != '\0'; p++)
		need += (*p == '"' || *p == '\\') ? 2 : 1;
	need += quote ? 2 : 0;
	if (cap == 0 || o >= cap || need >= cap - o)
		return -1;
	if (quote)
		dst[o++] = '"';
	for (p = word; *p != '\0'; p++) {
		if (quote && (*p == '"' || *p == '\\'))
			dst[o++] = '\\';
		dst[o++] = *p;
	}
	if (quote)
		dst[o++] = '"';
	dst[o] = '\0';
	*len = o;
	return 0;
}

/* One word, preceded by a space unless it is the first. -1 if the line is full. */
static int
args_put(struct args_out *out, const char *word, int quoted)
{
	/* at most 4095 bytes and the NUL, whose byte becomes the LF on the wire */
	size_t cap = sizeof out->line;
	size_t n;

	if (out->len > 0) {
		if (out->len + 1 >= cap)
			return -1;
		out->line[out->len++] = ' ';
		out->line[out->len] = '\0';
	}
	if (quoted)
		return args_quote(out->line, cap, &out->len, word);
	n = strlen(word);
	if (n >= cap - out->len)
		return -1;
	memcpy(out->line + out->len, word, n + 1);
	out->len += n;
	return 0;
}

/* ---- usage texts --------------------------------------------------------- */

/* "block sender PATTERN [--for DURATION | --until TIME] [--comment TEXT]" */
static void
args_verb_synopsis(const struct args_verb *v, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < ARGS_MAX_WORDS && v->av_words[i] != NULL; i++)
		args_cat(buf, len, "%s%s", i ? " " : "", v->av_words[i]);
	for (int o = 0; o < ARGS_O_COUNT; o++) {
		const struct args_opt *op = &args_opts[o];

		if (!(v->av_opts & ARGS_BIT(o)))
			continue;
		if (o == ARGS_O_UNTIL && (v->av_opts & ARGS_BIT(ARGS_O_FOR)))
			continue;	/* written with --for */
		if (o == ARGS_O_FOR && (v->av_opts & ARGS_BIT(ARGS_O_UNTIL)))
			args_cat(buf, len, " [--for %s | --until %s]", op->ao_value,
			    args_opts[ARGS_O_UNTIL].ao_value);
		else if (!(v->av_required & ARGS_BIT(o)))
			args_cat(buf, len, " [--%s %s]", op->ao_name, op->ao_value);
		else if (op->ao_flags & ARGS_REPEAT)
			args_cat(buf, len, " --%s %s [--%s %s ...]", op->ao_name, op->ao_value,
			    op->ao_name, op->ao_value);
		else
			args_cat(buf, len, " --%s %s", op->ao_name, op->ao_value);
	}
}

/* The usage lines of every row whose first word is `first` (every row if NULL). */
static void
args_usage_of(const char *first, char *buf, size_t len)
{
	char syn[256];
	int n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARGS_NVERBS; i++) {
		if (first != NULL && strcmp(args_verbs[i].av_words[0], first) != 0)
			continue;
		args_verb_synopsis(&args_verbs[i], syn, sizeof syn);
		args_cat(buf, len, "%s smtpwallctl %s\n", n++ ? "      " : "usage:", syn);
	}
}

void
args_usage_all(char *buf, size_t len)
{
	char syn[256];

	if (len == 0)
		return;
	buf[0] = '\0';
	args_cat(buf, len, "usage: smtpwallctl [-s SOCKET] [-q] COMMAND [ARGUMENT ...]\n"
	    "       smtpwallctl COMMAND --help\n"
	    "       smtpwallctl -h | --help\n"
	    "commands:\n");
	for (size_t i = 0; i < ARGS_NVERBS; i++) {
		args_verb_synopsis(&args_verbs[i], syn, sizeof syn);
		args_cat(buf, len, "  %s\n", syn);
	}
}

/* ---- parsing ------------------------------------------------------------- */

static int
args_first_word_known(const char *w)
{
	for (size_t i = 0; i < ARGS_NVERBS; i++)
		if (strcmp(args_verbs[i].av_words[0], w) == 0)
			return 1;
	return 0;
}

/* "'sender' or 'client'": the second words of the rows starting with `first`. */
static void
args_alternatives(const char *first, char *buf, size_t len)
{
	size_t n = 0, k = 0;

	for (size_t i = 0; i < ARGS_NVERBS; i++)
		if (strcmp(args_verbs[i].av_words[0], first) == 0)
			n++;
	buf[0] = '\0';
	for (size_t i = 0; i < ARGS_NVERBS; i++) {
		if (strcmp(args_verbs[i].av_words[0], first) != 0)
			continue;
		k++;
		args_cat(buf, len, "%s'%s'", k == 1 ? "" : k == n ? " or " : ", ",
		    args_verbs[i].av_words[1]);
	}
}

/*
 * Find the row for argv's first words. ARGS_OK with ap_verb set and ap_i past
 * its command words; otherwise the result to return (usage set for the
 * command family that was named).
 */
static enum args_res
args_find_verb(struct args_parse *ap)
{
	struct args_out *out = ap->ap_out;
	const char *first = ap->ap_argv[0];
	char esc[ARGS_ESC_MAX + 8], alt[128];

	if (args_is_help(first)) {
		args_usage_all(out->usage, sizeof out->usage);
		return ARGS_HELP;
	}
	if (!args_first_word_known(first)) {
		args_usage_all(out->usage, sizeof out->usage);
		args_fail(ap, "unknown command '%s'", args_esc(esc, sizeof esc, first));
		return ARGS_USAGE;
	}
	for (size_t i = 0; i < ARGS_NVERBS; i++) {
		const struct args_verb *v = &args_verbs[i];

		if (strcmp(v->av_words[0], first) != 0)
			continue;
		if (v->av_words[1] == NULL || args_is_slot(v->av_words[1])) {
			ap->ap_verb = v;
			ap->ap_i = 1;
			ap->ap_cmd = v->av_words[0];
			return ARGS_OK;
		}
		if (ap->ap_argc > 1 && strcmp(ap->ap_argv[1], v->av_words[1]) == 0) {
			ap->ap_verb = v;
			ap->ap_i = 2;
			snprintf(ap->ap_cmdbuf, sizeof ap->ap_cmdbuf, "%s %s", v->av_words[0],
			    v->av_words[1]);
			ap->ap_cmd = ap->ap_cmdbuf;
			return ARGS_OK;
		}
	}
	/* a family (block, capture, ...) without one of its second words */
	args_usage_of(first, out->usage, sizeof out->usage);
	if (ap->ap_argc > 1 && args_is_help(ap->ap_argv[1]))
		return ARGS_HELP;
	args_alternatives(first, alt, sizeof alt);
	if (ap->ap_argc < 2)
		args_fail(ap, "%s: missing %s", first, alt);
	else
		args_fail(ap, "%s: unknown '%s': expected %s", first,
		    args_esc(esc, sizeof esc, ap->ap_argv[1]), alt);
	return ARGS_USAGE;
}

/* The row's words after the command words: literal ones and argument slots. */
static enum args_res
args_parse_slots(struct args_parse *ap)
{
	const struct args_verb *v = ap->ap_verb;
	char esc[ARGS_ESC_MAX + 8], why[ARGS_ERR_LEN];

	for (size_t k = (size_t)ap->ap_i; k < ARGS_MAX_WORDS && v->av_words[k] != NULL; k++) {
		const char *want = v->av_words[k];
		const char *w = ap->ap_i < ap->ap_argc ? ap->ap_argv[ap->ap_i] : NULL;

		if (w != NULL && args_is_help(w))
			return ARGS_HELP;
		if (w == NULL || strncmp(w, "--", 2) == 0) {
			char name[64];

			snprintf(name, sizeof name, args_is_slot(want) ? "%s" : "'%s'", want);
			if (w == NULL)
				args_fail(ap, "%s: missing %s", ap->ap_cmd, name);
			else
				args_fail(ap, "%s: missing %s before '%s'", ap->ap_cmd, name,
				    args_esc(esc, sizeof esc, w));
			return ARGS_USAGE;
		}
		if (!args_is_slot(want)) {
			if (strcmp(w, want) != 0) {
				args_fail(ap, "%s: expected '%s' after %s, not '%s'", ap->ap_cmd, want,
				    v->av_words[k - 1], args_esc(esc, sizeof esc, w));
				return ARGS_USAGE;
			}
		} else if (args_check_word(w, why, sizeof why) == -1) {
			args_fail(ap, "%s: %s: %s", ap->ap_cmd, want, why);
			return ARGS_USAGE;
		}
		ap->ap_slots[k] = w;
		ap->ap_i++;
	}
	return ARGS_OK;
}

static int
args_opt_lookup(const char *name, size_t len)
{
	for (int o = 0; o < ARGS_O_COUNT; o++)
		if (strlen(args_opts[o].ao_name) == len && strncmp(args_opts[o].ao_name, name, len) == 0)
			return o;
	return -1;
}

/* One option at ap_i ("--name value" or "--name=value"); advances ap_i past it. */
static enum args_res
args_parse_option(struct args_parse *ap)
{
	const char *w = ap->ap_argv[ap->ap_i];
	const char *eq = strchr(w, '=');
	size_t nlen = eq != NULL ? (size_t)(eq - w - 2) : strlen(w + 2);
	const struct args_opt *op;
	const char *value;
	char esc[ARGS_ESC_MAX + 8], why[ARGS_ERR_LEN];
	int o = args_opt_lookup(w + 2, nlen);

	if (o == -1 || !(ap->ap_verb->av_opts & ARGS_BIT(o))) {
		if (o == -1)
			args_fail(ap, "%s: unknown option '%s'", ap->ap_cmd, args_esc(esc, sizeof esc, w));
		else
			args_fail(ap, "%s: --%s does not apply to this command", ap->ap_cmd,
			    args_opts[o].ao_name);
		return ARGS_USAGE;
	}
	op = &args_opts[o];
	ap->ap_i++;
	if (eq != NULL) {
		value = eq + 1;
	} else if (ap->ap_i < ap->ap_argc &&
	    ((op->ao_flags & ARGS_DASH_OK) || strncmp(ap->ap_argv[ap->ap_i], "--", 2) != 0)) {
		value = ap->ap_argv[ap->ap_i++];
	} else {
		args_fail(ap, "%s: --%s: missing %s", ap->ap_cmd, op->ao_name, op->ao_value);
		return ARGS_USAGE;
	}
	if (*value == '\0' && !(op->ao_flags & ARGS_EMPTY_OK)) {
		if (o == ARGS_O_FROM)
			args_fail(ap, "%s: --from: must not be empty (the null sender is '<>')", ap->ap_cmd);
		else
			args_fail(ap, "%s: --%s: missing %s", ap->ap_cmd, op->ao_name, op->ao_value);
		return ARGS_USAGE;
	}
	if ((ap->ap_seen & ARGS_BIT(o)) && !(op->ao_flags & ARGS_REPEAT)) {
		args_fail(ap, "%s: --%s given twice", ap->ap_cmd, op->ao_name);
		return ARGS_USAGE;
	}
	if ((o == ARGS_O_FOR && (ap->ap_seen & ARGS_BIT(ARGS_O_UNTIL))) ||
	    (o == ARGS_O_UNTIL && (ap->ap_seen & ARGS_BIT(ARGS_O_FOR)))) {
		args_fail(ap, "%s: give --for or --until, not both", ap->ap_cmd);
		return ARGS_USAGE;
	}
	if (op->ao_check(value, why, sizeof why) == -1) {
		args_fail(ap, "%s: --%s: %s", ap->ap_cmd, op->ao_name, why);
		return ARGS_USAGE;
	}
	if (ap->ap_nvals == ARGS_MAX_OPTVALS) {
		args_fail(ap, "%s: too many options", ap->ap_cmd);
		return ARGS_USAGE;
	}
	ap->ap_seen |= ARGS_BIT(o);
	ap->ap_vals[ap->ap_nvals].id = (enum args_opt_id)o;
	ap->ap_vals[ap->ap_nvals].value = value;
	ap->ap_nvals++;
	return ARGS_OK;
}

static enum args_res
args_parse_options(struct args_parse *ap)
{
	char esc[ARGS_ESC_MAX + 8];
	enum args_res r;

	while (ap->ap_i < ap->ap_argc) {
		const char *w = ap->ap_argv[ap->ap_i];

		if (args_is_help(w))
			return ARGS_HELP;
		if (strncmp(w, "--", 2) == 0 && w[2] != '\0') {
			if ((r = args_parse_option(ap)) != ARGS_OK)
				return r;
			continue;
		}
		if (w[0] == '-')
			args_fail(ap, "%s: unknown option '%s'", ap->ap_cmd, args_esc(esc, sizeof esc, w));
		else
			args_fail(ap, "%s: unexpected argument '%s'", ap->ap_cmd,
			    args_esc(esc, sizeof esc, w));
		return ARGS_USAGE;
	}
	for (int o = 0; o < ARGS_O_COUNT; o++) {
		if ((ap->ap_verb->av_required & ARGS_BIT(o)) && !(ap->ap_seen & ARGS_BIT(o))) {
			args_fail(ap, "%s: missing --%s %s%s", ap->ap_cmd, args_opts[o].ao_name,
			    args_opts[o].ao_value, o == ARGS_O_FROM ? " (the null sender is '<>')" : "");
			return ARGS_USAGE;
		}
	}
	return ARGS_OK;
}

/* The line: the row's words and slot values, then the options in args_opts[] order. */
static enum args_res
args_write_line(struct args_parse *ap)
{
	const struct args_verb *v = ap->ap_verb;
	struct args_out *out = ap->ap_out;
	char num[32];
	int full = 0;

	out->len = 0;
	out->line[0] = '\0';
	for (size_t k = 0; k < ARGS_MAX_WORDS && v->av_words[k] != NULL && !full; k++) {
		if (args_is_slot(v->av_words[k]))
			full = args_put(out, ap->ap_slots[k], 1) == -1;
		else
			full = args_put(out, v->av_words[k], 0) == -1;
	}
	for (int o = 0; o < ARGS_O_COUNT && !full; o++) {
		for (size_t j = 0; j < ap->ap_nvals && !full; j++) {
			if (ap->ap_vals[j].id != (enum args_opt_id)o)
				continue;
			snprintf(num, sizeof num, "--%s", args_opts[o].ao_name);
			full = args_put(out, num, 0) == -1 || args_put(out, ap->ap_vals[j].value, 1) == -1;
		}
	}
	if (full) {
		out->len = 0;
		out->line[0] = '\0';
		args_fail(ap, "%s: the command is longer than the %d bytes the control socket takes",
		    ap->ap_cmd, ARGS_LINE_MAX);
		return ARGS_USAGE;
	}
	return ARGS_OK;
}

enum args_res
args_build(int argc, char *const argv[], struct args_out *out)
{
	struct args_parse *ap, store;
	enum args_res r;

	memset(out, 0, sizeof *out);
	ap = &store;
	memset(ap, 0, sizeof *ap);
	ap->ap_argc = argc;
	ap->ap_argv = argv;
	ap->ap_out = out;
	if (argc < 1) {
		args_usage_all(out->usage, sizeof out->usage);
		args_fail(ap, "no command given");
		return ARGS_USAGE;
	}
	if ((r = args_find_verb(ap)) != ARGS_OK)
		return r;
	r = args_parse_slots(ap);
	if (r == ARGS_OK)
		r = args_parse_options(ap);
	if (r == ARGS_OK)
		r = args_write_line(ap);
	if (r != ARGS_OK) {
		char syn[256];

		args_verb_synopsis(ap->ap_verb, syn, sizeof syn);
		snprintf(out->usage, sizeof out->usage, "usage: smtpwallctl %s\n", syn);
	}
	return r;
}

int
args_exit_status(enum args_res r)
{
	switch (r) {
	case ARGS_OK:
	case ARGS_HELP:
		return 0;
	case ARGS_USAGE:
		return 2;
	}
	return 2;
}

/* ---- the help ------------------------------------------------------------ */

static void
args_help_indent(FILE *f, const char *text, const char *indent)
{
	for (const char *p = text; *p != '\0';) {
		size_t n = strcspn(p, "\n");

		fprintf(f, "%s%.*s\n", indent, (int)n, p);
		p += n;
		if (*p == '\n')
			p++;
	}
}

/* A synopsis, broken before an option group when it would pass column 79. */
static void
args_help_synopsis(FILE *f, const char *syn)
{
	const char *indent = "     ";

	while (strlen(indent) + strlen(syn) > ARGS_HELP_WIDTH) {
		const char *cut = NULL;

		for (const char *p = strstr(syn, " ["); p != NULL; p = strstr(p + 1, " ["))
			if (p != syn && strlen(indent) + (size_t)(p - syn) <= ARGS_HELP_WIDTH)
				cut = p;
		if (cut == NULL)
			break;
		fprintf(f, "%s%.*s\n", indent, (int)(cut - syn), syn);
		syn = cut + 1;
		indent = "             ";
	}
	fprintf(f, "%s%s\n", indent, syn);
}

void
args_help_print(FILE *f)
{
	char syn[256];

	fputs("NAME\n"
	    "     smtpwallctl - control a running smtpwalld: live rules, policy checks,\n"
	    "     sessions, statistics, captures\n"
	    "\n"
	    "SYNOPSIS\n"
	    "     smtpwallctl [-s SOCKET] [-q] COMMAND [ARGUMENT ...]\n"
	    "     smtpwallctl COMMAND --help\n"
	    "     smtpwallctl -h | --help\n"
	    "\n"
	    "DESCRIPTION\n"
	    "     smtpwallctl sends one command to smtpwalld over its control socket and\n"
	    "     prints the answer. On success the data lines, then the text of the\n"
	    "     final \"ok\" line, go to standard output. When the daemon refuses, its\n"
	    "     data lines and its message go to standard error. A rule change is on\n"
	    "     disk, and applies to the next command of every open session, once\n"
	    "     smtpwallctl has returned 0.\n"
	    "\n"
	    "     The command's words, options and their syntax are checked before the\n"
	    "     daemon is contacted; addresses, CIDRs and patterns are checked by the\n"
	    "     daemon, which answers with its own message. Only root and members of\n"
	    "     control_group may use the socket.\n"
	    "\n"
	    "OPTIONS\n"
	    "     -s SOCKET   the control socket (default " ARGS_DEFAULT_SOCKET ",\n"
	    "                 control_socket in smtpwall.conf)\n"
	    "     -q          do not print the text of the final \"ok\" line (data lines\n"
	    "                 and errors are still printed)\n"
	    "     -h, --help  this help; COMMAND --help prints the usage of COMMAND\n"
	    "\n"
	    "COMMANDS\n", f);
	for (size_t i = 0; i < ARGS_NVERBS; i++) {
		args_verb_synopsis(&args_verbs[i], syn, sizeof syn);
		args_help_synopsis(f, syn);
		args_help_indent(f, args_verbs[i].av_desc, "          ");
	}
	fputs("\n"
	    "ARGUMENTS\n"
	    "     PATTERN         a glob on the MAIL FROM (or RCPT TO) address: * and ?,\n"
	    "                     case-insensitive; <> is the null sender. Quote it for\n"
	    "                     the shell: '*@spam.example'\n"
	    "     CIDR            an IPv4 or IPv6 network (203.0.113.0/24, 2001:db8::/32)\n"
	    "                     or one address\n"
	    "     DOMAIN-PATTERN  example.com (that domain), .example.com (its subdomains),\n"
	    "                     [198.51.100.2] (an address literal)\n"
	    "     DURATION        a number and a unit s, m, h, d or w: 90m, 7d (at most\n"
	    "                     36500d); the rule expires that long from now\n"
	    "     TIME            YYYY-MM-DDTHH:MM:SSZ in UTC: 2026-12-04T17:00:00Z\n"
	    "     TEXT            free text, kept in the rules file as comment=\"TEXT\"\n"
	    "     N               a number of sessions, 1 or more\n"
	    "     An option's value is the next word or follows '=': --for 7d, --for=7d.\n"
	    "     Blocking or allowing a rule that exists updates its expiry and comment.\n"
	    "\n"
	    "EXIT STATUS\n"
	    "     0  the daemon answered ok\n"
	    "     1  the daemon refused the command; its message is on standard error\n"
	    "     2  usage error: bad command, option or value; nothing was sent\n"
	    "     3  the daemon is not reachable (not running, no permission on the\n"
	    "        socket), said nothing for 30 seconds, or closed the connection\n"
	    "        before its answer was complete\n"
	    "\n"
	    "EXAMPLES\n"
	    "     Let the monitoring host relay its alerts to the SMS gateway:\n"
	    "       smtpwallctl allow relay 192.0.2.15/32 to sms.carrier.example\n"
	    "     Find out why one of its alerts was refused:\n"
	    "       smtpwallctl check --client 192.0.2.15 --from alert@monitor.example.net \\\n"
	    "           --to +15550100@sms.carrier.example\n"
	    "     Block a spam campaign for a week, and a noisy network for two hours:\n"
	    "       smtpwallctl block sender '*@spam.example' --for 7d --comment \"campaign\"\n"
	    "       smtpwallctl block client 203.0.113.0/24 --for 2h\n"
	    "     Refuse bounces until a fixed time:\n"
	    "       smtpwallctl block sender '<>' --until 2026-12-04T17:00:00Z\n"
	    "     List the rules, with their hits:\n"
	    "       smtpwallctl rules\n"
	    "     Capture the next session from a client to a pcap file:\n"
	    "       smtpwallctl capture client 192.0.2.15 --sessions 1\n"
	    "\n"
	    "FILES\n"
	    "     " ARGS_DEFAULT_SOCKET "   the default control socket\n"
	    "\n"
	    "SEE ALSO\n"
	    "     smtpwalld(8), smtpwall.conf(5); the protocol (one command a line,\n"
	    "     answers ending \"ok ...\" or \"error: ...\") is docs/control-protocol.md,\n"
	    "     so \"socat - UNIX:" ARGS_DEFAULT_SOCKET "\" is a client too.\n", f);
}

/*
 * fuzz_ctl_args: smtpwallctl's command words -> control line (ctl/args.c,
 * args_build), checked against what the daemon reads back (proxy/control.c
 * ctl_split, proxy/ctlcmd.c ctlcmd_duration). Links libctl and the daemon's
 * library.
 *
 * Input: the command words, separated by NUL bytes (argv; an empty input is
 * no command). A word of two bytes 0x01 K stands for the K-th (mod the
 * count) word of fz_tokens[]: the verbs, options and typical values, so the
 * fuzzer reaches every row quickly.
 *
 * Invariants (abort() on violation):
 *  - args_build returns OK, HELP or USAGE, with args_exit_status 0, 0, 2;
 *    USAGE has a reason without control characters, and every result but OK
 *    a usage text starting "usage: smtpwallctl";
 *  - OK: the line is NUL-terminated at len, shorter than ARGS_LINE_MAX (so
 *    line + LF fits the daemon's CTL_LINE_MAX), holds no control character
 *    (no CR/LF injection), and the daemon's ctl_split reads it back as
 *    exactly the words typed: the command words, then each option as
 *    "--name" VALUE, "--name=VALUE" and "--name VALUE" alike, in the order
 *    client helo from to sessions for until comment (typed order within
 *    one option); a --for value means the same duration to the daemon;
 *  - args_quote: any word, quoted, splits back to that one word; when it
 *    does not fit it fails leaving the buffer as it was;
 *  - for every word: args_duration == ctlcmd_duration (client and daemon
 *    accept the same DURATIONs), and args_time_ok agrees with the daemon's
 *    TIME check (proxy/ctlcmd.c ctl_parse_time, static: mirrored here:
 *    strptime, timegm, printed back identical) for years from 1970, the
 *    epoch itself excepted (the client refuses it; "never" in the rules file).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl/args.h"
#include "proxy/control.h"
#include "proxy/ctlcmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(x)	do { if (!(x)) abort(); } while (0)

static const char *const fz_tokens[] = {
	"block", "unblock", "allow", "disallow", "sender", "client", "relay", "to",
	"rules", "check", "sessions", "stats", "reload", "capture", "rcpt", "refused",
	"list", "stop", "help", "--for", "--until", "--comment", "--client", "--helo",
	"--from", "--to", "--sessions", "--help", "-h", "--", "7d", "90m",
	"2026-12-04T17:00:00Z", "2028-02-29T23:59:59Z", "<>", "*@spam.example",
	"192.0.2.0/24", "2001:db8::/32", "sms.carrier.example", "a b", "\"q\"", "back\\slash",
	"--for=7d", "--comment=", "--to=x@example.net", "3", "36500d", "5218w",
};
#define FZ_NTOKENS	(sizeof fz_tokens / sizeof fz_tokens[0])

/* args.c's option order: the order the line carries them in. */
static const char *const fz_opt_order[] = {
	"client", "helo", "from", "to", "sessions", "for", "until", "comment",
};
#define FZ_NOPTS	(sizeof fz_opt_order / sizeof fz_opt_order[0])

static int
fz_has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 1;
	return 0;
}

/* The daemon's ctl_parse_time(), mirrored: 0 if it takes s. */
static int
fz_daemon_time(const char *s)
{
	struct tm tm, *g;
	char *end, back[32];
	time_t t;

	memset(&tm, 0, sizeof tm);
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL || *end != '\0')
		return -1;
	t = timegm(&tm);
	if ((g = gmtime(&t)) == NULL ||
	    strftime(back, sizeof back, "%Y-%m-%dT%H:%M:%SZ", g) == 0 || strcmp(back, s) != 0)
		return -1;
	return 0;
}

static void
fz_word(const char *w)
{
	static char q[3 * ARGS_LINE_MAX], work[3 * ARGS_LINE_MAX];
	char *argv[CTL_ARGS_MAX];
	size_t len = 0, wl = strlen(w), cap;
	long long d;

	d = args_duration(w);
	FZ_CHECK(d == ctlcmd_duration(w));
	FZ_CHECK(d == -1 || (d > 0 && d <= ARGS_DURATION_MAX_DAYS * 86400LL));
	if (strlen(w) == 20 && strncmp(w, "1970", 4) >= 0 && strcmp(w, "1970-01-01T00:00:00Z") != 0 &&
	    strspn(w, "0123456789") >= 4)
		FZ_CHECK((args_time_ok(w) == 0) == (fz_daemon_time(w) == 0));
	else if (args_time_ok(w) == 0)
		FZ_CHECK(fz_daemon_time(w) == 0);

	/* quoting round trip */
	if (wl >= ARGS_LINE_MAX)
		return;
	FZ_CHECK(args_quote(q, sizeof q, &len, w) == 0 && len == strlen(q));
	memcpy(work, q, len + 1);
	FZ_CHECK(ctl_split(work, argv) == 1 && strcmp(argv[0], w) == 0);
	/* too small: fails, the buffer untouched */
	cap = len;
	memset(q, 'Z', cap);
	q[cap] = '\0';
	len = 1;
	FZ_CHECK(args_quote(q, cap, &len, w) == -1 && len == 1);
	for (size_t i = 0; i < cap; i++)
		FZ_CHECK(q[i] == 'Z');
}

/* A word the daemon must read: s[0..len), the whole of its word. */
struct fz_exp {
	const char	*s;
	size_t		 len;
	int		 name;	/* an option's name: its value follows */
};

/* What the daemon must read: the command words, then the options in args.c's order. */
static int
fz_expected(int argc, char **argv, struct fz_exp *exp)
{
	int n = 0, first;

	for (first = 0; first < argc && strncmp(argv[first], "--", 2) != 0; first++, n++) {
		exp[n].s = argv[first];
		exp[n].len = strlen(argv[first]);
	}
	for (size_t o = 0; o < FZ_NOPTS; o++) {
		size_t nl = strlen(fz_opt_order[o]);

		for (int i = first; i < argc; i++) {
			const char *w = argv[i], *eq;
			int match;

			FZ_CHECK(strncmp(w, "--", 2) == 0);
			eq = strchr(w, '=');
			match = (eq != NULL ? (size_t)(eq - w - 2) : strlen(w + 2)) == nl &&
			    strncmp(w + 2, fz_opt_order[o], nl) == 0;
			if (eq == NULL)
				i++;	/* its value is the next word */
			FZ_CHECK(i < argc);
			if (!match)
				continue;
			exp[n].s = w;	/* "--name", however it was typed */
			exp[n].name = 1;
			exp[n++].len = nl + 2;
			exp[n].s = eq != NULL ? eq + 1 : argv[i];
			exp[n].len = strlen(exp[n].s);
			n++;
		}
	}
	return n;
}

static void
fz_ok(int argc, char **argv, const struct args_out *out)
{
	static char work[CTL_LINE_MAX + 1];
	char *words[CTL_ARGS_MAX];
	struct fz_exp *exp;
	int n, nexp;

	FZ_CHECK(out->len < ARGS_LINE_MAX && out->len + 1 <= CTL_LINE_MAX);
	FZ_CHECK(strlen(out->line) == out->len && out->len > 0);
	FZ_CHECK(!fz_has_control(out->line, out->len));
	FZ_CHECK(out->err[0] == '\0');
	memcpy(work, out->line, out->len + 1);
	n = ctl_split(work, words);
	FZ_CHECK(n > 0);
	FZ_CHECK((exp = calloc((size_t)argc * 2 + 1, sizeof *exp)) != NULL);
	nexp = fz_expected(argc, argv, exp);
	FZ_CHECK(n == nexp);
	for (int i = 0; i < n; i++) {
		FZ_CHECK(strlen(words[i]) == exp[i].len &&
		    memcmp(words[i], exp[i].s, exp[i].len) == 0);
		/* a --for value means the same duration to the daemon */
		if (exp[i].name && strcmp(words[i], "--for") == 0 && i + 1 < n)
			FZ_CHECK(ctlcmd_duration(words[i + 1]) == args_duration(words[i + 1]) &&
			    ctlcmd_duration(words[i + 1]) > 0);
	}
	free(exp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct args_out out;
	char *buf, **argv;
	size_t nwords = 1, start = 0;
	int argc = 0;
	enum args_res r;

	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (size_t i = 0; i < size; i++)
		nwords += data[i] == '\0';
	FZ_CHECK((argv = calloc(nwords + 1, sizeof *argv)) != NULL);
	for (size_t i = 0; size > 0 && i <= size; i++) {
		if (i < size && buf[i] != '\0')
			continue;
		argv[argc] = buf + start;
		if (i - start == 2 && buf[start] == 0x01)
			argv[argc] = (char *)fz_tokens[(unsigned char)buf[start + 1] % FZ_NTOKENS];
		argc++;
		start = i + 1;
	}

	r = args_build(argc, argv, &out);
	switch (r) {
	case ARGS_OK:
		FZ_CHECK(args_exit_status(r) == 0);
		fz_ok(argc, argv, &out);
		break;
	case ARGS_HELP:
		FZ_CHECK(args_exit_status(r) == 0);
		FZ_CHECK(strncmp(out.usage, "usage: smtpwallctl", 18) == 0);
		break;
	case ARGS_USAGE:
		FZ_CHECK(args_exit_status(r) == 2);
		FZ_CHECK(out.err[0] != '\0' && !fz_has_control(out.err, strlen(out.err)));
		FZ_CHECK(strncmp(out.usage, "usage: smtpwallctl", 18) == 0);
		FZ_CHECK(out.len == 0);
		break;
	default:
		abort();
	}
	for (int i = 0; i < argc; i++)
		fz_word(argv[i]);
	free(argv);
	free(buf);
	return 0;
}

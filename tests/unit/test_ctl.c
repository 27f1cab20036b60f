/*
 * test_ctl: smtpwallctl's library (ctl/args.h, ctl/answer.h) as an
 * administrator sees it: every command's words -> the exact control-protocol
 * line, every usage error (with the usage of the command meant), the help,
 * the answer reader fed one byte at a time and in chunks (data lines, ok,
 * error, CRLF, bounds, EOF), and the exit status of each outcome.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/answer.h"
#include "ctl/args.h"

#define TC_MAXW	64

/* ---- helpers --------------------------------------------------------------- */

/* argv from a NULL-terminated list of words. */
static enum args_res
tc_build_v(struct args_out *out, const char *w, va_list va)
{
	char *argv[TC_MAXW];
	int argc = 0;

	for (; w != NULL; w = va_arg(va, const char *)) {
		assert_true(argc < TC_MAXW);
		argv[argc++] = (char *)(uintptr_t)w;
	}
	return args_build(argc, argv, out);
}

/* The words must give exactly `line`. */
static void
tc_line(const char *line, const char *w, ...)
{
	struct args_out out;
	enum args_res r;
	va_list va;

	va_start(va, w);
	r = tc_build_v(&out, w, va);
	va_end(va);
	if (r != ARGS_OK)
		fail_msg("expected \"%s\", got a usage error: %s", line, out.err);
	assert_string_equal(out.line, line);
	assert_int_equal(out.len, strlen(line));
}

/* The words must be refused with an error containing `err` and a usage containing `usage`. */
static void
tc_usage(const char *err, const char *usage, const char *w, ...)
{
	struct args_out out;
	enum args_res r;
	va_list va;

	va_start(va, w);
	r = tc_build_v(&out, w, va);
	va_end(va);
	if (r != ARGS_USAGE)
		fail_msg("expected a usage error \"%s\", got %d line \"%s\"", err, (int)r, out.line);
	if (strstr(out.err, err) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", out.err, err);
	if (strstr(out.usage, usage) == NULL)
		fail_msg("usage \"%s\" does not contain \"%s\"", out.usage, usage);
	assert_int_equal(strncmp(out.usage, "usage: smtpwallctl ", 19), 0);
	assert_int_equal(args_exit_status(r), 2);
}

/* The reader after `in` fed in pieces of `chunk` bytes (the whole of it if 0). */
struct tc_read {
	enum answer_res	 res;
	char		*held;		/* everything held, across HOLD_FULLs */
	size_t		 held_len;
	size_t		 taken;		/* bytes the reader took */
	int		 hold_fulls;
	struct answer	 a;
};

static void
tc_feed(struct tc_read *t, const char *in, size_t n, size_t chunk)
{
	size_t off = 0;

	memset(t, 0, sizeof *t);
	t->res = ANSWER_AGAIN;
	while (off < n && (t->res == ANSWER_AGAIN || t->res == ANSWER_HOLD_FULL)) {
		size_t piece = chunk == 0 || chunk > n - off ? n - off : chunk;
		size_t used = 0, pos = 0;

		do {
			size_t hl;
			const char *h;

			t->res = answer_feed(&t->a, in + off + pos, piece - pos, &used);
			assert_true(used <= piece - pos);
			pos += used;
			if (t->res == ANSWER_HOLD_FULL) {
				t->hold_fulls++;
				h = answer_held(&t->a, &hl);
				t->held = realloc(t->held, t->held_len + hl + 1);
				assert_non_null(t->held);
				memcpy(t->held + t->held_len, h, hl);
				t->held_len += hl;
				answer_held_clear(&t->a);
			}
		} while (t->res == ANSWER_HOLD_FULL && pos < piece);
		if (t->res == ANSWER_AGAIN)
			assert_int_equal(pos, piece);
		off += pos;
		t->taken = off;
	}
	{
		size_t hl;
		const char *h = answer_held(&t->a, &hl);

		t->held = realloc(t->held, t->held_len + hl + 1);
		assert_non_null(t->held);
		memcpy(t->held + t->held_len, h, hl);
		t->held_len += hl;
		t->held[t->held_len] = '\0';
	}
}

static void
tc_done(struct tc_read *t)
{
	answer_free(&t->a);
	free(t->held);
	t->held = NULL;
}

static const size_t tc_chunks[] = { 1, 2, 3, 7, 64, 0 };

/* `in`, fed in every chunk size, must end with `res`, the data `held`, the final kind and text. */
static void
tc_answer(const char *in, enum answer_res res, const char *held, enum answer_final fin,
    const char *text)
{
	for (size_t i = 0; i < sizeof tc_chunks / sizeof tc_chunks[0]; i++) {
		struct tc_read t;

		tc_feed(&t, in, strlen(in), tc_chunks[i]);
		if (t.res != res)
			fail_msg("chunk %zu: result %d, expected %d", tc_chunks[i], (int)t.res, (int)res);
		assert_string_equal(t.held, held);
		assert_int_equal(answer_final(&t.a), fin);
		assert_string_equal(answer_text(&t.a), text);
		tc_done(&t);
	}
}

/* ---- args: every command, its exact protocol line ------------------------- */

static void
test_ctl_block_and_unblock_lines(void **state)
{
	(void)state;
	tc_line("block sender *@spam.example", "block", "sender", "*@spam.example", NULL);
	tc_line("block sender <>", "block", "sender", "<>", NULL);
	tc_line("block sender *@spam.example --for 7d", "block", "sender", "*@spam.example",
	    "--for", "7d", NULL);
	tc_line("block client 203.0.113.0/24 --for 2h --comment campaign",
	    "block", "client", "203.0.113.0/24", "--for", "2h", "--comment", "campaign", NULL);
	tc_line("block client 2001:db8::/32 --until 2026-12-04T17:00:00Z",
	    "block", "client", "2001:db8::/32", "--until", "2026-12-04T17:00:00Z", NULL);
	tc_line("unblock sender *@spam.example", "unblock", "sender", "*@spam.example", NULL);
	tc_line("unblock sender <>", "unblock", "sender", "<>", NULL);
	tc_line("unblock client 203.0.113.0/24", "unblock", "client", "203.0.113.0/24", NULL);
}

static void
test_ctl_relay_lines(void **state)
{
	(void)state;
	tc_line("allow relay 192.0.2.15/32 to sms.carrier.example",
	    "allow", "relay", "192.0.2.15/32", "to", "sms.carrier.example", NULL);
	tc_line("allow relay 192.0.2.0/24 to .example.net --until 2030-01-01T00:00:00Z --comment \"monitoring hosts\"",
	    "allow", "relay", "192.0.2.0/24", "to", ".example.net", "--comment", "monitoring hosts",
	    "--until", "2030-01-01T00:00:00Z", NULL);
	tc_line("disallow relay 192.0.2.15/32 to sms.carrier.example",
	    "disallow", "relay", "192.0.2.15/32", "to", "sms.carrier.example", NULL);
}

static void
test_ctl_listing_verbs_are_one_word(void **state)
{
	(void)state;
	tc_line("rules", "rules", NULL);
	tc_line("sessions", "sessions", NULL);
	tc_line("stats", "stats", NULL);
	tc_line("reload", "reload", NULL);
	tc_line("help", "help", NULL);
}

static void
test_ctl_check_lines(void **state)
{
	(void)state;
	tc_line("check --client 192.0.2.15 --from alert@monitor.example.net --to +15550100@sms.carrier.example",
	    "check", "--client", "192.0.2.15", "--from", "alert@monitor.example.net",
	    "--to", "+15550100@sms.carrier.example", NULL);
	/* typed in any order, sent in the protocol's order; the --to's keep theirs */
	tc_line("check --client 203.0.113.10 --helo mail.example.org --from <> --to b@example.net --to a@example.net",
	    "check", "--to", "b@example.net", "--from", "<>", "--to", "a@example.net",
	    "--helo", "mail.example.org", "--client", "203.0.113.10", NULL);
	tc_line("check --client 2001:db8::1 --from <a@b.example> --to <postmaster>",
	    "check", "--client=2001:db8::1", "--from=<a@b.example>", "--to=<postmaster>", NULL);
}

static void
test_ctl_capture_lines(void **state)
{
	(void)state;
	tc_line("capture client 192.0.2.15 --sessions 1", "capture", "client", "192.0.2.15",
	    "--sessions", "1", NULL);
	tc_line("capture client 192.0.2.0/24 --sessions 3 --for 10m", "capture", "client",
	    "192.0.2.0/24", "--for", "10m", "--sessions", "3", NULL);
	tc_line("capture sender *@spam.example", "capture", "sender", "*@spam.example", NULL);
	tc_line("capture rcpt *@sms.carrier.example --for 1h", "capture", "rcpt",
	    "*@sms.carrier.example", "--for=1h", NULL);
	tc_line("capture refused --sessions 5", "capture", "refused", "--sessions=5", NULL);
	tc_line("capture list", "capture", "list", NULL);
	tc_line("capture stop 3", "capture", "stop", "3", NULL);
}

static void
test_ctl_options_sent_in_protocol_order(void **state)
{
	(void)state;
	tc_line("block client 203.0.113.0/24 --for 2h --comment noisy",
	    "block", "client", "203.0.113.0/24", "--comment", "noisy", "--for", "2h", NULL);
	tc_line("block sender x@y --until 2026-12-04T17:00:00Z --comment c",
	    "block", "sender", "x@y", "--comment=c", "--until=2026-12-04T17:00:00Z", NULL);
}

static void
test_ctl_words_quoted_as_the_protocol_reads_them(void **state)
{
	(void)state;
	tc_line("block sender *@spam.example --comment \"spam campaign\"",
	    "block", "sender", "*@spam.example", "--comment", "spam campaign", NULL);
	tc_line("block sender a@b --comment \"he said \\\"stop\\\"\"",
	    "block", "sender", "a@b", "--comment", "he said \"stop\"", NULL);
	tc_line("block sender a@b --comment \"C:\\\\mail\\\\spool\"",
	    "block", "sender", "a@b", "--comment", "C:\\mail\\spool", NULL);
	/* an empty comment clears the comment of an existing rule */
	tc_line("block sender a@b --comment \"\"", "block", "sender", "a@b", "--comment", "", NULL);
	tc_line("block sender a@b --comment \"\"", "block", "sender", "a@b", "--comment=", NULL);
	tc_line("block sender a@b --comment \"x = y\"", "block", "sender", "a@b", "--comment=x = y", NULL);
	/* a comment may start with dashes: it is the value of --comment, whatever it looks like */
	tc_line("block sender a@b --comment \"--- urgent\"",
	    "block", "sender", "a@b", "--comment", "--- urgent", NULL);
	/* the client only quotes; whether the pattern is valid is the daemon's to say */
	tc_line("block sender \"a b@c\"", "block", "sender", "a b@c", NULL);
	tc_line("block sender \"x\\\\y@z\"", "block", "sender", "x\\y@z", NULL);
	/* UTF-8 passes as is */
	tc_line("block sender a@b --comment \"r\xc3\xa9sum\xc3\xa9 spam\"",
	    "block", "sender", "a@b", "--comment", "r\xc3\xa9sum\xc3\xa9 spam", NULL);
}

static void
test_ctl_quote_rules_and_capacity(void **state)
{
	char buf[16];
	size_t len;

	(void)state;
	len = 0;
	assert_int_equal(args_quote(buf, sizeof buf, &len, "plain"), 0);
	assert_string_equal(buf, "plain");
	len = 0;
	assert_int_equal(args_quote(buf, sizeof buf, &len, ""), 0);
	assert_string_equal(buf, "\"\"");
	len = 0;
	assert_int_equal(args_quote(buf, sizeof buf, &len, "a\"b\\c"), 0);
	assert_string_equal(buf, "\"a\\\"b\\\\c\"");
	assert_int_equal(len, 9);
	/* appends after what is there */
	assert_int_equal(args_quote(buf, sizeof buf, &len, "xyz"), 0);
	assert_string_equal(buf, "\"a\\\"b\\\\c\"xyz");
	assert_int_equal(len, 12);
	/* 12 + 4 would leave no room for the NUL: refused, buffer unchanged */
	assert_int_equal(args_quote(buf, sizeof buf, &len, "abcd"), -1);
	assert_int_equal(len, 12);
	assert_string_equal(buf, "\"a\\\"b\\\\c\"xyz");
	assert_int_equal(args_quote(buf, sizeof buf, &len, "a b"), -1);	/* 5 with its quotes */
	assert_int_equal(args_quote(buf, sizeof buf, &len, "abc"), 0);
	assert_int_equal(len, 15);
	/* a tab is a word separator of the protocol too */
	len = 0;
	assert_int_equal(args_quote(buf, sizeof buf, &len, "a\tb"), 0);
	assert_string_equal(buf, "\"a\tb\"");
}

/* ---- args: usage errors ----------------------------------------------------- */

static void
test_ctl_usage_no_command_or_unknown_command(void **state)
{
	struct args_out out;

	(void)state;
	assert_int_equal(args_build(0, NULL, &out), ARGS_USAGE);
	assert_string_equal(out.err, "no command given");
	assert_non_null(strstr(out.usage, "usage: smtpwallctl [-s SOCKET] [-q] COMMAND"));
	assert_non_null(strstr(out.usage, "check --client IP"));
	tc_usage("unknown command 'frobnicate'", "[-s SOCKET]", "frobnicate", NULL);
	tc_usage("unknown command 'Block'", "[-s SOCKET]", "Block", "sender", "x", NULL);
	tc_usage("unknown command 'show'", "[-s SOCKET]", "show", "stats", NULL);
}

static void
test_ctl_usage_missing_or_wrong_words(void **state)
{
	(void)state;
	tc_usage("block: missing 'sender' or 'client'", "smtpwallctl block client CIDR", "block", NULL);
	tc_usage("block: unknown 'relay': expected 'sender' or 'client'",
	    "smtpwallctl block sender PATTERN", "block", "relay", "x", NULL);
	tc_usage("capture: missing 'client', 'sender', 'rcpt', 'refused', 'list' or 'stop'",
	    "smtpwallctl capture stop ID", "capture", NULL);
	tc_usage("block sender: missing PATTERN", "usage: smtpwallctl block sender PATTERN",
	    "block", "sender", NULL);
	tc_usage("block sender: missing PATTERN before '--for'", "block sender PATTERN",
	    "block", "sender", "--for", "7d", NULL);
	tc_usage("unblock client: missing CIDR", "unblock client CIDR", "unblock", "client", NULL);
	tc_usage("allow relay: missing 'to'", "allow relay CIDR to DOMAIN-PATTERN",
	    "allow", "relay", "192.0.2.15/32", NULL);
	tc_usage("allow relay: expected 'to' after CIDR, not 'for'", "allow relay CIDR to",
	    "allow", "relay", "192.0.2.15/32", "for", "x.example", NULL);
	tc_usage("disallow relay: missing DOMAIN-PATTERN", "disallow relay CIDR to DOMAIN-PATTERN",
	    "disallow", "relay", "192.0.2.15/32", "to", NULL);
	tc_usage("capture stop: missing ID", "capture stop ID", "capture", "stop", NULL);
	tc_usage("rules: unexpected argument 'all'", "usage: smtpwallctl rules", "rules", "all", NULL);
	tc_usage("block sender: unexpected argument 'y@z'", "block sender PATTERN",
	    "block", "sender", "x@y", "y@z", NULL);
	tc_usage("block sender: PATTERN: must not be empty", "block sender PATTERN",
	    "block", "sender", "", NULL);
}

static void
test_ctl_usage_bad_duration(void **state)
{
	static const char *bad[] = {
		"7", "d", "7x", "0d", "0s", "-1d", "+1d", "7d1", "7 d", "7D", "1.5h", " 7d",
		"36501d", "5215w", "3153600001s", "99999999999999999999999d",
	};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		tc_usage("block sender: --for: bad DURATION", "[--for DURATION | --until TIME]",
		    "block", "sender", "x@y", "--for", bad[i], NULL);
		assert_int_equal(args_duration(bad[i]), -1);
	}
	tc_usage("--for: bad DURATION '7x'", "capture refused", "capture", "refused", "--for=7x", NULL);
	assert_int_equal(args_duration("1s"), 1);
	assert_int_equal(args_duration("90m"), 5400);
	assert_int_equal(args_duration("2h"), 7200);
	assert_int_equal(args_duration("7d"), 604800);
	assert_int_equal(args_duration("2w"), 1209600);
	assert_int_equal(args_duration("007d"), 604800);
	assert_int_equal(args_duration("36500d"), 36500LL * 86400);
	assert_int_equal(args_duration("5214w"), 5214LL * 7 * 86400);
	assert_int_equal(args_duration("3153600000s"), 3153600000LL);
}

static void
test_ctl_usage_bad_time(void **state)
{
	static const char *bad[] = {
		"2026-12-04 17:00:00Z", "2026-12-04T17:00:00", "2026-12-04T17:00Z",
		"2026-12-04T17:00:00+01:00", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z",
		"2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
		"2026-12-00T00:00:00Z", "2026-12-04T24:00:00Z", "2026-12-04T17:60:00Z",
		"2026-12-04T17:00:60Z", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z",
		"2026-12-04t17:00:00z", "2O26-12-04T17:00:00Z", "tomorrow", "",
	};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(args_time_ok(bad[i]), -1);
		if (bad[i][0] != '\0')
			tc_usage("--until: bad TIME", "block client CIDR",
			    "block", "client", "203.0.113.0/24", "--until", bad[i], NULL);
	}
	tc_usage("--until: missing TIME", "block client CIDR", "block", "client", "203.0.113.0/24",
	    "--until=", NULL);
	assert_int_equal(args_time_ok("2026-12-04T17:00:00Z"), 0);
	assert_int_equal(args_time_ok("2028-02-29T12:00:00Z"), 0);
	assert_int_equal(args_time_ok("2000-02-29T23:59:59Z"), 0);
	assert_int_equal(args_time_ok("1970-01-01T00:00:01Z"), 0);
	assert_int_equal(args_time_ok("9999-12-31T23:59:59Z"), 0);
}

static void
test_ctl_usage_for_and_until_exclusive(void **state)
{
	(void)state;
	tc_usage("block sender: give --for or --until, not both", "block sender PATTERN",
	    "block", "sender", "x@y", "--for", "7d", "--until", "2026-12-04T17:00:00Z", NULL);
	tc_usage("allow relay: give --for or --until, not both", "allow relay CIDR",
	    "allow", "relay", "192.0.2.1", "to", "a.example", "--until=2026-12-04T17:00:00Z",
	    "--for=1d", NULL);
}

static void
test_ctl_usage_options_given_twice(void **state)
{
	(void)state;
	tc_usage("block sender: --for given twice", "block sender PATTERN",
	    "block", "sender", "x@y", "--for", "7d", "--for", "1d", NULL);
	tc_usage("--comment given twice", "block client CIDR",
	    "block", "client", "203.0.113.0/24", "--comment", "a", "--comment=b", NULL);
	tc_usage("check: --from given twice", "check --client IP",
	    "check", "--client", "192.0.2.1", "--from", "a@b", "--from", "c@d", "--to", "e@f", NULL);
	tc_usage("check: --client given twice", "check --client IP",
	    "check", "--client", "192.0.2.1", "--client", "192.0.2.2", "--from", "a@b", "--to", "e@f",
	    NULL);
	tc_usage("check: --helo given twice", "check --client IP", "check", "--client", "192.0.2.1",
	    "--helo", "a", "--helo", "b", "--from", "a@b", "--to", "e@f", NULL);
	tc_usage("capture refused: --sessions given twice", "capture refused",
	    "capture", "refused", "--sessions", "1", "--sessions", "2", NULL);
}

static void
test_ctl_usage_missing_values(void **state)
{
	(void)state;
	tc_usage("block sender: --for: missing DURATION", "block sender PATTERN",
	    "block", "sender", "x@y", "--for", NULL);
	tc_usage("block sender: --for: missing DURATION", "block sender PATTERN",
	    "block", "sender", "x@y", "--for", "--comment", "c", NULL);
	tc_usage("block sender: --for: missing DURATION", "block sender PATTERN",
	    "block", "sender", "x@y", "--for=", NULL);
	tc_usage("block sender: --comment: missing TEXT", "block sender PATTERN",
	    "block", "sender", "x@y", "--comment", NULL);
	tc_usage("check: --client: missing IP", "check --client IP",
	    "check", "--client", "--from", "a@b", "--to", "c@d", NULL);
	tc_usage("check: --to: missing ADDR", "check --client IP",
	    "check", "--client", "192.0.2.1", "--from", "a@b", "--to", NULL);
	tc_usage("check: --from: must not be empty (the null sender is '<>')", "check --client IP",
	    "check", "--client", "192.0.2.1", "--from", "", "--to", "c@d", NULL);
	tc_usage("check: --from: must not be empty", "check --client IP",
	    "check", "--client", "192.0.2.1", "--from=", "--to", "c@d", NULL);
	tc_usage("capture client: --sessions: missing N", "capture client CIDR",
	    "capture", "client", "192.0.2.1", "--sessions", NULL);
}

static void
test_ctl_usage_check_required_options(void **state)
{
	(void)state;
	tc_usage("check: missing --client IP", "check --client IP [--helo NAME] --from ADDR --to ADDR [--to ADDR ...]",
	    "check", "--from", "a@b", "--to", "c@d", NULL);
	tc_usage("check: missing --from ADDR (the null sender is '<>')", "check --client IP",
	    "check", "--client", "192.0.2.15", "--to", "c@d", NULL);
	tc_usage("check: missing --to ADDR", "check --client IP",
	    "check", "--client", "192.0.2.15", "--from", "a@b", NULL);
	tc_usage("check: missing --client IP", "check --client IP", "check", NULL);
}

static void
test_ctl_usage_unknown_or_misplaced_options(void **state)
{
	(void)state;
	tc_usage("block sender: unknown option '--bogus'", "block sender PATTERN",
	    "block", "sender", "x@y", "--bogus", NULL);
	tc_usage("block sender: unknown option '--bogus=1'", "block sender PATTERN",
	    "block", "sender", "x@y", "--bogus=1", NULL);
	tc_usage("block sender: unknown option '-f'", "block sender PATTERN",
	    "block", "sender", "x@y", "-f", "7d", NULL);
	tc_usage("block sender: unknown option '--fo'", "block sender PATTERN",
	    "block", "sender", "x@y", "--fo", "7d", NULL);
	tc_usage("unblock sender: --for does not apply to this command", "unblock sender PATTERN",
	    "unblock", "sender", "x@y", "--for", "7d", NULL);
	tc_usage("disallow relay: --comment does not apply", "disallow relay CIDR",
	    "disallow", "relay", "192.0.2.1", "to", "a.example", "--comment", "x", NULL);
	tc_usage("rules: --for does not apply", "usage: smtpwallctl rules", "rules", "--for", "1d", NULL);
	tc_usage("capture client: --until does not apply", "capture client CIDR",
	    "capture", "client", "192.0.2.1", "--until", "2026-12-04T17:00:00Z", NULL);
	tc_usage("check: --comment does not apply", "check --client IP", "check", "--comment", "x", NULL);
	/* smtpwallctl's own options belong before the command */
	tc_usage("stats: unknown option '-q'", "usage: smtpwallctl stats", "stats", "-q", NULL);
}

static void
test_ctl_usage_bad_session_count(void **state)
{
	(void)state;
	tc_usage("--sessions: bad N '0'", "capture client CIDR", "capture", "client", "192.0.2.1",
	    "--sessions", "0", NULL);
	tc_usage("--sessions: bad N 'all'", "capture sender PATTERN", "capture", "sender", "*@x",
	    "--sessions", "all", NULL);
	tc_usage("--sessions: bad N '-1'", "capture refused", "capture", "refused", "--sessions=-1", NULL);
	tc_usage("--sessions: bad N '1000000000'", "capture refused", "capture", "refused",
	    "--sessions", "1000000000", NULL);
	tc_line("capture refused --sessions 999999999", "capture", "refused", "--sessions",
	    "999999999", NULL);
}

/* A newline in a word would end the line early and send a second command. */
static void
test_ctl_usage_control_characters_never_reach_the_wire(void **state)
{
	(void)state;
	tc_usage("block sender: --comment: control characters are not allowed", "block sender",
	    "block", "sender", "x@y", "--comment", "a\nunblock sender *", NULL);
	tc_usage("block sender: PATTERN: control characters are not allowed", "block sender",
	    "block", "sender", "x@y\r\nrules", NULL);
	/* the rules file keeps no tab in a comment either */
	tc_usage("block sender: --comment: control characters", "block sender",
	    "block", "sender", "x@y", "--comment", "tab\there", NULL);
	tc_usage("unblock client: CIDR: control characters", "unblock client",
	    "unblock", "client", "192.0.2.1\x1b[2J", NULL);
	tc_usage("check: --to: control characters", "check --client",
	    "check", "--client", "192.0.2.1", "--from", "a@b", "--to", "c@d\x7f", NULL);
}

static void
test_ctl_usage_line_longer_than_the_protocol_takes(void **state)
{
	char text[ARGS_LINE_MAX + 16];
	struct args_out out;
	char *argv[] = { "block", "sender", "a@b", "--comment", text };
	size_t base = strlen("block sender a@b --comment ");

	(void)state;
	/* exactly 4095 bytes, and the LF: accepted */
	memset(text, 'c', ARGS_LINE_MAX - 1 - base);
	text[ARGS_LINE_MAX - 1 - base] = '\0';
	assert_int_equal(args_build(5, argv, &out), ARGS_OK);
	assert_int_equal(out.len, ARGS_LINE_MAX - 1);
	/* one more: 4097 bytes with the LF */
	strcat(text, "c");
	assert_int_equal(args_build(5, argv, &out), ARGS_USAGE);
	assert_non_null(strstr(out.err, "longer than the 4096 bytes"));
	assert_string_equal(out.line, "");
	/* quoting counts: 2000 quotes become 4000 bytes */
	memset(text, '"', 2040);
	text[2040] = '\0';
	assert_int_equal(args_build(5, argv, &out), ARGS_USAGE);
}

static void
test_ctl_many_recipients_until_the_line_is_full(void **state)
{
	static char *argv[2048];
	static char addrs[300][32];
	struct args_out out;
	int argc = 0;

	(void)state;
	argv[argc++] = "check";
	argv[argc++] = "--client";
	argv[argc++] = "192.0.2.1";
	argv[argc++] = "--from";
	argv[argc++] = "<>";
	for (int i = 0; i < 300; i++) {
		snprintf(addrs[i], sizeof addrs[i], "r%03d@x.example", i);
		argv[argc++] = "--to";
		argv[argc++] = addrs[i];
	}
	/* 300 recipients: 300 * 20 bytes, over the 4096 of one line */
	assert_int_equal(args_build(argc, argv, &out), ARGS_USAGE);
	assert_non_null(strstr(out.err, "longer than"));
	/* 150 fit, in the order given */
	assert_int_equal(args_build(5 + 2 * 150, argv, &out), ARGS_OK);
	assert_int_equal(strncmp(out.line, "check --client 192.0.2.1 --from <> --to r000@x.example --to r001@x.example ", 75), 0);
	assert_non_null(strstr(out.line, "--to r149@x.example"));
	assert_true(out.len < ARGS_LINE_MAX);
}

/* ---- args: help ----------------------------------------------------------- */

static void
test_ctl_verb_help_prints_its_usage(void **state)
{
	struct args_out out;
	char *a1[] = { "block", "sender", "--help" };
	char *a2[] = { "check", "--help" };
	char *a3[] = { "capture", "--help" };
	char *a4[] = { "rules", "-h" };
	char *a5[] = { "allow", "relay", "192.0.2.1", "--help" };
	char *a6[] = { "block", "sender", "x@y", "--for", "7d", "--help" };

	(void)state;
	assert_int_equal(args_build(3, a1, &out), ARGS_HELP);
	assert_string_equal(out.usage, "usage: smtpwallctl block sender PATTERN "
	    "[--for DURATION | --until TIME] [--comment TEXT]\n");
	assert_int_equal(args_exit_status(ARGS_HELP), 0);
	assert_int_equal(args_build(2, a2, &out), ARGS_HELP);
	assert_string_equal(out.usage, "usage: smtpwallctl check --client IP [--helo NAME] "
	    "--from ADDR --to ADDR [--to ADDR ...]\n");
	assert_int_equal(args_build(2, a3, &out), ARGS_HELP);
	assert_string_equal(out.usage,
	    "usage: smtpwallctl capture client CIDR [--sessions N] [--for DURATION]\n"
	    "       smtpwallctl capture sender PATTERN [--sessions N] [--for DURATION]\n"
	    "       smtpwallctl capture rcpt PATTERN [--sessions N] [--for DURATION]\n"
	    "       smtpwallctl capture refused [--sessions N] [--for DURATION]\n"
	    "       smtpwallctl capture list\n"
	    "       smtpwallctl capture stop ID\n");
	assert_int_equal(args_build(2, a4, &out), ARGS_HELP);
	assert_string_equal(out.usage, "usage: smtpwallctl rules\n");
	assert_int_equal(args_build(4, a5, &out), ARGS_HELP);
	assert_string_equal(out.usage, "usage: smtpwallctl allow relay CIDR to DOMAIN-PATTERN "
	    "[--for DURATION | --until TIME] [--comment TEXT]\n");
	assert_int_equal(args_build(6, a6, &out), ARGS_HELP);
}

/* The help names every command with the usage that args_build enforces, the exit codes, the examples. */
static void
test_ctl_full_help_covers_every_command(void **state)
{
	static const char *want[] = {
		"block sender PATTERN [--for DURATION | --until TIME] [--comment TEXT]",
		"block client CIDR [--for DURATION | --until TIME] [--comment TEXT]",
		"unblock sender PATTERN", "unblock client CIDR",
		"allow relay CIDR to DOMAIN-PATTERN [--for DURATION | --until TIME]",
		"disallow relay CIDR to DOMAIN-PATTERN", "\n     rules\n",
		"check --client IP [--helo NAME] --from ADDR --to ADDR [--to ADDR ...]",
		"\n     sessions\n", "\n     stats\n", "\n     reload\n",
		"capture client CIDR [--sessions N] [--for DURATION]",
		"capture sender PATTERN", "capture rcpt PATTERN", "capture refused",
		"capture list", "capture stop ID", "\n     help\n",
		"-s SOCKET", "/run/smtpwall/control.sock", "-q ",
		"EXIT STATUS", "0  the daemon answered ok", "1  the daemon refused",
		"2  usage error", "3  the daemon is not reachable",
		"smtpwallctl allow relay 192.0.2.15/32 to sms.carrier.example",
		"smtpwallctl check --client 192.0.2.15 --from alert@monitor.example.net",
		"--to +15550100@sms.carrier.example",
	};
	char *text = NULL, *line;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	args_help_print(f);
	assert_int_equal(fclose(f), 0);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (strstr(text, want[i]) == NULL)
			fail_msg("the help lacks \"%s\"", want[i]);
	/* it reads on an 80-column terminal */
	for (line = text; *line != '\0';) {
		size_t n = strcspn(line, "\n");

		if (n > 79)
			fail_msg("help line longer than 79: %.*s", (int)n, line);
		line += n + (line[n] == '\n');
	}
	free(text);
}

/* ---- answer: the reader ----------------------------------------------------- */

static void
test_ctl_answer_data_lines_then_ok_text(void **state)
{
	(void)state;
	tc_answer("block sender *@spam.example comment=\"campaign\"  # hits=12\n"
	    "block client 203.0.113.0/24 until=2026-12-04T17:00:00Z  # hits=0 expires_in=6d23h59m\n"
	    "ok 2 rules\n",
	    ANSWER_DONE,
	    "block sender *@spam.example comment=\"campaign\"  # hits=12\n"
	    "block client 203.0.113.0/24 until=2026-12-04T17:00:00Z  # hits=0 expires_in=6d23h59m\n",
	    ANSWER_FINAL_OK, "2 rules");
	tc_answer("ok added: block sender *@spam.example\n", ANSWER_DONE, "", ANSWER_FINAL_OK,
	    "added: block sender *@spam.example");
	tc_answer("ok\n", ANSWER_DONE, "", ANSWER_FINAL_OK, "");
	tc_answer("uptime=3600\n\nsessions_total=120\nok\n", ANSWER_DONE,
	    "uptime=3600\n\nsessions_total=120\n", ANSWER_FINAL_OK, "");
}

static void
test_ctl_answer_error_with_data_lines(void **state)
{
	(void)state;
	tc_answer("/etc/smtpwall/smtpwall.conf:12: unknown key 'lisen'\n"
	    "/var/lib/smtpwall/rules:3: bad CIDR\n"
	    "error: reload refused: 2 errors, nothing changed\n",
	    ANSWER_DONE,
	    "/etc/smtpwall/smtpwall.conf:12: unknown key 'lisen'\n/var/lib/smtpwall/rules:3: bad CIDR\n",
	    ANSWER_FINAL_ERROR, "reload refused: 2 errors, nothing changed");
	tc_answer("error: permission denied: uid 1000 is not root and not in group smtpwall\n",
	    ANSWER_DONE, "", ANSWER_FINAL_ERROR,
	    "permission denied: uid 1000 is not root and not in group smtpwall");
	tc_answer("error: capture is not available in this version\n", ANSWER_DONE, "",
	    ANSWER_FINAL_ERROR, "capture is not available in this version");
	tc_answer("error:no space\n", ANSWER_DONE, "", ANSWER_FINAL_ERROR, "no space");
	tc_answer("error:\n", ANSWER_DONE, "", ANSWER_FINAL_ERROR, "");
}

static void
test_ctl_answer_crlf_endings(void **state)
{
	(void)state;
	tc_answer("client 203.0.113.10: accepted (no block client rule matches)\r\n"
	    "rcpt <ops@example.net>: accepted (reason=local_domain)\r\nok accepted\r\n",
	    ANSWER_DONE,
	    "client 203.0.113.10: accepted (no block client rule matches)\n"
	    "rcpt <ops@example.net>: accepted (reason=local_domain)\n",
	    ANSWER_FINAL_OK, "accepted");
	tc_answer("a\r\nerror: no such rule: block sender x\r\n", ANSWER_DONE, "a\n",
	    ANSWER_FINAL_ERROR, "no such rule: block sender x");
	/* only the one CR before the LF is the line ending */
	tc_answer("a\r\r\nok\r\n", ANSWER_DONE, "a\\x0d\n", ANSWER_FINAL_OK, "");
}

static void
test_ctl_answer_only_ok_and_error_colon_are_final(void **state)
{
	(void)state;
	tc_answer("okay\nok.\nOK\nerror\nerrors: 3\n ok\nok done\n", ANSWER_DONE,
	    "okay\nok.\nOK\nerror\nerrors: 3\n ok\n", ANSWER_FINAL_OK, "done");
}

static void
test_ctl_answer_bytes_after_the_final_line_are_not_taken(void **state)
{
	struct answer a;
	size_t used;
	const char in[] = "x\nok fine\nerror: stray\n";

	(void)state;
	memset(&a, 0, sizeof a);
	assert_int_equal(answer_feed(&a, in, strlen(in), &used), ANSWER_DONE);
	assert_int_equal(used, strlen("x\nok fine\n"));
	assert_string_equal(answer_text(&a), "fine");
	/* and nothing changes afterwards */
	assert_int_equal(answer_feed(&a, "error: x\n", 9, &used), ANSWER_DONE);
	assert_int_equal(used, 0);
	assert_int_equal(answer_eof(&a), ANSWER_DONE);
	assert_int_equal(answer_final(&a), ANSWER_FINAL_OK);
	assert_string_equal(answer_error(&a), "");
	answer_free(&a);
}

static void
test_ctl_answer_control_characters_made_printable(void **state)
{
	static const char in[] = "from=<a\x1b]0;pwned\x07@b>\tx\x7f\n"
	    "nul\0byte\nerror: bad\x1b[2Jthing\n";

	(void)state;
	for (size_t i = 0; i < sizeof tc_chunks / sizeof tc_chunks[0]; i++) {
		struct tc_read t;

		tc_feed(&t, in, sizeof in - 1, tc_chunks[i]);
		assert_int_equal(t.res, ANSWER_DONE);
		assert_string_equal(t.held, "from=<a\\x1b]0;pwned\\x07@b>\tx\\x7f\nnul\\x00byte\n");
		assert_int_equal(answer_final(&t.a), ANSWER_FINAL_ERROR);
		assert_string_equal(answer_text(&t.a), "bad\\x1b[2Jthing");
		tc_done(&t);
	}
}

static void
test_ctl_answer_line_limit(void **state)
{
	size_t n = ANSWER_LINE_MAX + 16;
	char *in = malloc(n + 8);
	struct tc_read t;

	(void)state;
	assert_non_null(in);
	/* a line of exactly ANSWER_LINE_MAX bytes with its LF: fine */
	memset(in, 'r', ANSWER_LINE_MAX - 1);
	memcpy(in + ANSWER_LINE_MAX - 1, "\nok\n", 4);
	tc_feed(&t, in, ANSWER_LINE_MAX + 3, 0);
	assert_int_equal(t.res, ANSWER_DONE);
	assert_int_equal(t.held_len, ANSWER_LINE_MAX);
	tc_done(&t);
	tc_feed(&t, in, ANSWER_LINE_MAX + 3, 4093);
	assert_int_equal(t.res, ANSWER_DONE);
	tc_done(&t);
	/* the same with CRLF is one byte over */
	memcpy(in + ANSWER_LINE_MAX - 1, "\r\nok\n", 5);
	tc_feed(&t, in, ANSWER_LINE_MAX + 4, 1000);
	assert_int_equal(t.res, ANSWER_BAD);
	assert_string_equal(answer_error(&t.a), "a line longer than 65536 bytes");
	assert_int_equal(answer_exit_status(&t.a), ANSWER_EXIT_UNREACHABLE);
	tc_done(&t);
	/* one byte over, with no LF at all: refused before the LF ever comes */
	memset(in, 'r', n);
	tc_feed(&t, in, ANSWER_LINE_MAX, 1);
	assert_int_equal(t.res, ANSWER_BAD);
	assert_int_equal(t.taken, ANSWER_LINE_MAX - 1);
	tc_done(&t);
	/* and a bad reader stays bad */
	{
		struct answer a;
		size_t used;

		memset(&a, 0, sizeof a);
		assert_int_equal(answer_feed(&a, in, n, &used), ANSWER_BAD);
		assert_int_equal(answer_feed(&a, "ok\n", 3, &used), ANSWER_BAD);
		assert_int_equal(used, 0);
		assert_int_equal(answer_eof(&a), ANSWER_BAD);
		assert_int_equal(answer_final(&a), ANSWER_FINAL_NONE);
		answer_free(&a);
	}
	free(in);
}

/* A listing bigger than what is held comes out in pieces, complete and in order. */
static void
test_ctl_answer_long_listing_handed_over_in_pieces(void **state)
{
	const size_t lines = ANSWER_HOLD_MAX / 100 * 2 + 3;
	size_t n = lines * 100 + 8;
	char *in = malloc(n), *p = in;
	struct tc_read t;

	(void)state;
	assert_non_null(in);
	for (size_t i = 0; i < lines; i++) {
		memset(p, 'a' + (int)(i % 26), 99);
		p[99] = '\n';
		p += 100;
	}
	memcpy(p, "ok big\n", 7);
	p += 7;
	tc_feed(&t, in, (size_t)(p - in), 65536);
	assert_int_equal(t.res, ANSWER_DONE);
	assert_int_equal(t.hold_fulls, 2);
	assert_int_equal(t.held_len, lines * 100);
	assert_memory_equal(t.held, in, lines * 100);
	assert_string_equal(answer_text(&t.a), "big");
	tc_done(&t);
	free(in);
}

static void
test_ctl_answer_eof_before_the_final_line(void **state)
{
	struct answer a;
	size_t used;

	(void)state;
	memset(&a, 0, sizeof a);
	assert_int_equal(answer_eof(&a), ANSWER_BAD);
	assert_string_equal(answer_error(&a), "the connection closed before the final ok or error line");
	assert_int_equal(answer_exit_status(&a), ANSWER_EXIT_UNREACHABLE);
	answer_free(&a);

	assert_int_equal(answer_feed(&a, "rule one\nrule two\n", 18, &used), ANSWER_AGAIN);
	assert_int_equal(answer_eof(&a), ANSWER_BAD);
	assert_string_equal(answer_error(&a), "the connection closed before the final ok or error line");
	answer_free(&a);

	/* a final line without its LF may have been cut short: not taken */
	assert_int_equal(answer_feed(&a, "ok 2 ru", 7, &used), ANSWER_AGAIN);
	assert_int_equal(used, 7);
	assert_int_equal(answer_final(&a), ANSWER_FINAL_NONE);
	assert_int_equal(answer_eof(&a), ANSWER_BAD);
	assert_string_equal(answer_error(&a), "the connection closed in the middle of a line");
	assert_int_equal(answer_exit_status(&a), ANSWER_EXIT_UNREACHABLE);
	answer_free(&a);
}

static void
test_ctl_exit_status_of_each_outcome(void **state)
{
	struct answer a;
	size_t used;

	(void)state;
	assert_int_equal(args_exit_status(ARGS_OK), 0);
	assert_int_equal(args_exit_status(ARGS_HELP), 0);
	assert_int_equal(args_exit_status(ARGS_USAGE), 2);
	assert_int_equal(ANSWER_EXIT_USAGE, 2);

	memset(&a, 0, sizeof a);
	assert_int_equal(answer_exit_status(&a), 3);	/* nothing read: no answer */
	assert_int_equal(answer_feed(&a, "ok refused\n", 11, &used), ANSWER_DONE);
	/* check's "ok refused" is an answer, not a refusal of the command */
	assert_int_equal(answer_exit_status(&a), 0);
	answer_free(&a);
	assert_int_equal(answer_feed(&a, "error: no such rule: block client 192.0.2.0/24\n", 47, &used),
	    ANSWER_DONE);
	assert_int_equal(answer_exit_status(&a), 1);
	answer_free(&a);
	assert_int_equal(answer_feed(&a, "data\n", 5, &used), ANSWER_AGAIN);
	assert_int_equal(answer_exit_status(&a), 3);
	answer_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctl_block_and_unblock_lines),
		cmocka_unit_test(test_ctl_relay_lines),
		cmocka_unit_test(test_ctl_listing_verbs_are_one_word),
		cmocka_unit_test(test_ctl_check_lines),
		cmocka_unit_test(test_ctl_capture_lines),
		cmocka_unit_test(test_ctl_options_sent_in_protocol_order),
		cmocka_unit_test(test_ctl_words_quoted_as_the_protocol_reads_them),
		cmocka_unit_test(test_ctl_quote_rules_and_capacity),
		cmocka_unit_test(test_ctl_usage_no_command_or_unknown_command),
		cmocka_unit_test(test_ctl_usage_missing_or_wrong_words),
		cmocka_unit_test(test_ctl_usage_bad_duration),
		cmocka_unit_test(test_ctl_usage_bad_time),
		cmocka_unit_test(test_ctl_usage_for_and_until_exclusive),
		cmocka_unit_test(test_ctl_usage_options_given_twice),
		cmocka_unit_test(test_ctl_usage_missing_values),
		cmocka_unit_test(test_ctl_usage_check_required_options),
		cmocka_unit_test(test_ctl_usage_unknown_or_misplaced_options),
		cmocka_unit_test(test_ctl_usage_bad_session_count),
		cmocka_unit_test(test_ctl_usage_control_characters_never_reach_the_wire),
		cmocka_unit_test(test_ctl_usage_line_longer_than_the_protocol_takes),
		cmocka_unit_test(test_ctl_many_recipients_until_the_line_is_full),
		cmocka_unit_test(test_ctl_verb_help_prints_its_usage),
		cmocka_unit_test(test_ctl_full_help_covers_every_command),
		cmocka_unit_test(test_ctl_answer_data_lines_then_ok_text),
		cmocka_unit_test(test_ctl_answer_error_with_data_lines),
		cmocka_unit_test(test_ctl_answer_crlf_endings),
		cmocka_unit_test(test_ctl_answer_only_ok_and_error_colon_are_final),
		cmocka_unit_test(test_ctl_answer_bytes_after_the_final_line_are_not_taken),
		cmocka_unit_test(test_ctl_answer_control_characters_made_printable),
		cmocka_unit_test(test_ctl_answer_line_limit),
		cmocka_unit_test(test_ctl_answer_long_listing_handed_over_in_pieces),
		cmocka_unit_test(test_ctl_answer_eof_before_the_final_line),
		cmocka_unit_test(test_ctl_exit_status_of_each_outcome),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

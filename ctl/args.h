/*
 * args: smtpwallctl's command words -> one line of the control protocol
 * (docs/control-protocol.md), or a usage error carrying the usage of the
 * command that was meant.
 *
 * Owns the command table: every verb, its words, its arguments, its options
 * and its one-line description; the usage lines and the --help text are
 * generated from that table, so what the help says is what is checked.
 *
 * Checks only what can be checked without the daemon: the words, the
 * options (known, given once, with a value, --for and --until exclusive),
 * the shape of DURATION, TIME and N, and that no word is empty or holds a
 * control character. CIDRs, globs and addresses are the daemon's to judge:
 * it answers with its own message.
 *
 * Pure: no I/O except args_help_print() writing the help to the FILE it is
 * given; no allocation, no globals.
 */
#ifndef SMTPWALL_CTL_ARGS_H
#define SMTPWALL_CTL_ARGS_H

#include <stddef.h>
#include <stdio.h>

/* The protocol takes a command line of at most 4096 bytes; we count the LF. */
#define ARGS_LINE_MAX		4096
#define ARGS_ERR_LEN		256
#define ARGS_USAGE_LEN		2048
#define ARGS_DEFAULT_SOCKET	"/run/smtpwall/control.sock"
/* Longest --for: keeps an expiry within what the rules file can write back. */
#define ARGS_DURATION_MAX_DAYS	36500

enum args_res {
	ARGS_OK = 0,		/* out->line holds the protocol line */
	ARGS_HELP,		/* --help or -h: print out->usage to stdout, exit 0 */
	ARGS_USAGE,		/* out->err says what is wrong; out->usage to stderr, exit 2 */
};

struct args_out {
	char	line[ARGS_LINE_MAX];	/* the command line, without its LF, NUL-terminated */
	size_t	len;			/* strlen(line) */
	char	err[ARGS_ERR_LEN];	/* ARGS_USAGE: the reason, without "smtpwallctl: " */
	char	usage[ARGS_USAGE_LEN];	/* ARGS_HELP, ARGS_USAGE: "usage: smtpwallctl ...\n" lines */
};

/*
 * argv[0..argc) are the command's words after smtpwallctl's own options
 * (argv[0] is the verb; argc 0 means no command was given). Never reads
 * past argc. out is always filled: line on ARGS_OK, usage on the others.
 */
enum args_res	args_build(int argc, char *const argv[], struct args_out *out);

/* The exit status for a result that ends the program before any connection (HELP 0, USAGE 2). */
int		args_exit_status(enum args_res);

/*
 * Append `word` to dst (capacity cap, NUL-terminated, *len its length) as the
 * protocol reads it back: in double quotes with \" and \\ if it is empty or
 * holds a space, a tab, '"' or '\'; as is otherwise. 0, or -1 if it would
 * not fit (dst then unchanged).
 */
int		args_quote(char *dst, size_t cap, size_t *len, const char *word);

/* "7d" -> seconds; -1 unless digits + s|m|h|d|w, > 0 and at most ARGS_DURATION_MAX_DAYS. */
long long	args_duration(const char *);
/* 0 if s is YYYY-MM-DDTHH:MM:SSZ naming a real UTC second (1970..9999), -1 otherwise. */
int		args_time_ok(const char *s);

/* The general usage (synopsis and every command's usage line) into buf, NUL-terminated. */
void		args_usage_all(char *buf, size_t len);
/* The full help: synopsis, options, every command with its description, exit status, examples. */
void		args_help_print(FILE *);

#endif

/*
 * smtp/parse: SMTP command and reply lines -> structs. Pure.
 *
 * Input is one line WITHOUT its CRLF, as (pointer, length); it is never
 * NUL-terminated and never written to. Output slices point into that line.
 * No allocation, no I/O, no logging, bounded work (O(len)).
 *
 * Command syntax follows RFC 5321 section 4.1, with the leniencies real MTAs
 * accept (verbs in any case, "MAIL FROM: <a@b>" with spaces after the colon,
 * a path without angle brackets when it is one plain word). Anything that a
 * server could read differently from us (unbalanced quotes or brackets, text
 * after the path that is not ESMTP parameters, a domain that is not a domain
 * name or an address literal) is a syntax error: the proxy refuses what it
 * cannot read unambiguously rather than forward it.
 */
#ifndef SMTPWALL_SMTP_PARSE_H
#define SMTPWALL_SMTP_PARSE_H

#include <stddef.h>
#include "../slice.h"

#define SMTP_MAX_PARAMS		16	/* ESMTP parameters after a path */
#define SMTP_PATH_MAX		256	/* RFC 5321 4.5.3.1.3, brackets included */

enum smtp_verb {
	SMTP_V_NONE = 0,
	SMTP_V_HELO,
	SMTP_V_EHLO,
	SMTP_V_MAIL,
	SMTP_V_RCPT,
	SMTP_V_DATA,
	SMTP_V_RSET,
	SMTP_V_NOOP,
	SMTP_V_QUIT,
	SMTP_V_HELP,
	SMTP_V_VRFY,
	SMTP_V_EXPN,
	SMTP_V_STARTTLS,
	SMTP_V_AUTH,
	SMTP_V_BDAT,
	SMTP_V_XCLIENT,
	SMTP_V_XFORWARD,
	SMTP_V_OTHER,		/* a word that looks like an SMTP verb we have no row for (ETRN, TURN, X-LINK2STATE...) */
};

/* "HELO", "EHLO", ... "OTHER": for logs and traces. */
const char *smtp_verb_str(enum smtp_verb);

enum smtp_parse_res {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_EMPTY,	/* empty or blank line: 500 5.5.2 */
	SMTP_PARSE_NOT_SMTP,	/* HTTP request, PROXY header, binary: 500 5.5.1 */
	SMTP_PARSE_SYNTAX,	/* known verb, bad arguments (incl. a bad path): 501 5.5.4 */
};

/* flags of struct smtp_path */
#define SMTP_PATH_NULL		0x0001	/* <> */
#define SMTP_PATH_ROUTED	0x0002	/* source route "@a,@b:" present (= RULES_RCPT_ROUTED) */
#define SMTP_PATH_PERCENT	0x0004	/* '%' in the local part (= RULES_RCPT_PERCENT) */
#define SMTP_PATH_BANG		0x0008	/* '!' in the local part (= RULES_RCPT_BANG) */
#define SMTP_PATH_AT		0x0010	/* unquoted '@' in the local part (= RULES_RCPT_AT) */
#define SMTP_PATH_QUOTED	0x0020	/* local part is (or contains) a quoted string */
#define SMTP_PATH_ADDRLIT	0x0040	/* domain is an address literal [..] */
#define SMTP_PATH_NOBRACKETS	0x0080	/* client wrote the path without <> */
#define SMTP_PATH_POSTMASTER	0x0100	/* bare <postmaster> (any case), no domain */

struct smtp_path {
	struct slice	raw;		/* between < and >, route included */
	struct slice	mailbox;	/* local@domain, route removed; empty for <> */
	struct slice	route;		/* "@a,@b" without the ':'; empty if none */
	struct slice	local;		/* as written, quotes included */
	struct slice	domain;		/* after the last unquoted '@'; empty for <postmaster> */
	unsigned	flags;		/* SMTP_PATH_* */
};

struct smtp_param {
	struct slice	key;		/* "SIZE", "BODY", ... as written */
	struct slice	value;		/* after '='; value.p == NULL when there is no '=' */
};

struct smtp_cmd {
	enum smtp_verb		verb;
	struct slice		verb_text;	/* the verb as written (for OTHER: the word) */
	struct slice		args;		/* after the verb and one SP; for MAIL/RCPT after "FROM:"/"TO:" */
	struct smtp_path	path;		/* MAIL, RCPT only */
	struct smtp_param	params[SMTP_MAX_PARAMS];
	unsigned		nparams;
};

/*
 * Parse one command line (CRLF removed). Fills *cmd (zeroed first) and
 * returns enum smtp_parse_res. MAIL needs "FROM:" and RCPT "TO:" (any case);
 * MAIL accepts <>, RCPT accepts <postmaster> without a domain and otherwise
 * needs local@domain. More than SMTP_MAX_PARAMS parameters, a path longer than
 * SMTP_PATH_MAX, a NUL byte: SMTP_PARSE_SYNTAX. For the other verbs the
 * arguments are only sliced (cmd->args), not interpreted.
 */
int	smtp_parse_cmd(const char *line, size_t len, struct smtp_cmd *cmd);

/* 1 if the line (CRLF removed) contains a NUL, a CR or a LF byte, else 0. */
int	smtp_line_has_bad_bytes(const char *line, size_t len);

/* Parse "SIZE=12345" style unsigned decimal values; 0 ok, -1 if not a number or overflow. */
int	smtp_param_ulong(struct slice value, unsigned long long *out);

/* Find a parameter by key, ASCII case-insensitive; NULL if absent. */
const struct smtp_param *smtp_cmd_param(const struct smtp_cmd *, const char *key);

struct smtp_reply_line {
	int		code;		/* 200..599 */
	int		last;		/* 1: "NNN " or "NNN" (final line), 0: "NNN-" */
	struct slice	text;		/* after "NNN " / "NNN-" (may be empty) */
};

/*
 * One server reply line (CRLF removed). Returns 0, or -1 if it does not start
 * with three digits (first 2-5) followed by SP, '-' or end of line.
 */
int	smtp_parse_reply_line(const char *line, size_t len, struct smtp_reply_line *out);

/* The first word of an EHLO reply line's text ("PIPELINING", "SIZE", "AUTH"...). */
struct slice smtp_ehlo_keyword(struct slice text);

/* ASCII case-insensitive comparison of a slice with a C string: 1 if equal. */
int	smtp_slice_ieq(struct slice s, const char *lit);

#endif

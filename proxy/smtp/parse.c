/*
 * smtp/parse.c: SMTP command and reply lines -> structs (see parse.h).
 *
 * Owns: the verb table, the RFC 5321 4.1.2 path grammar as smtpwall reads it,
 * ESMTP parameter slicing, reply-line codes.
 *
 * Never: allocates, logs, does I/O, keeps state between calls, writes to or
 * reads past the line it is given (the line is not NUL-terminated).
 *
 * Why it is strict: the relay decision is made on what this file extracts and
 * the line then goes to a real MTA unchanged. Wherever two MTAs could read a
 * path differently (a '>' or '<' inside quotes, an unquoted backslash or
 * comment, a literal in a source route, an address literal with leading
 * zeros, malformed UTF-8 that a lax decoder could turn into '@'), this file
 * answers SMTP_PARSE_SYNTAX instead of choosing one reading.
 */
#include <string.h>
#include <limits.h>
#include <arpa/inet.h>

#include "parse.h"

struct smtp_parse_verb {
	const char	*name;
	size_t		 len;
	enum smtp_verb	 verb;
};

#define SMTP_PARSE_VERB(s, v)	{ s, sizeof(s) - 1, v }

static const struct smtp_parse_verb smtp_parse_verbs[] = {
	SMTP_PARSE_VERB("HELO", SMTP_V_HELO),
	SMTP_PARSE_VERB("EHLO", SMTP_V_EHLO),
	SMTP_PARSE_VERB("MAIL", SMTP_V_MAIL),
	SMTP_PARSE_VERB("RCPT", SMTP_V_RCPT),
	SMTP_PARSE_VERB("DATA", SMTP_V_DATA),
	SMTP_PARSE_VERB("RSET", SMTP_V_RSET),
	SMTP_PARSE_VERB("NOOP", SMTP_V_NOOP),
	SMTP_PARSE_VERB("QUIT", SMTP_V_QUIT),
	SMTP_PARSE_VERB("HELP", SMTP_V_HELP),
	SMTP_PARSE_VERB("VRFY", SMTP_V_VRFY),
	SMTP_PARSE_VERB("EXPN", SMTP_V_EXPN),
	SMTP_PARSE_VERB("STARTTLS", SMTP_V_STARTTLS),
	SMTP_PARSE_VERB("AUTH", SMTP_V_AUTH),
	SMTP_PARSE_VERB("BDAT", SMTP_V_BDAT),
	SMTP_PARSE_VERB("XCLIENT", SMTP_V_XCLIENT),
	SMTP_PARSE_VERB("XFORWARD", SMTP_V_XFORWARD),
};

/* First words that mark a line as some other protocol when followed by SP. */
static const char *const smtp_parse_foreign[] = {
	"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH",
	"TRACE",
};

/* PROXY protocol v1 second words ("PROXY TCP4 ..."). */
static const char *const smtp_parse_proxy1[] = { "TCP4", "TCP6", "UNKNOWN" };

/* PROXY protocol v2 signature (12 bytes). */
static const char smtp_parse_proxy2_sig[12] = {
	'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'
};

#define SMTP_PARSE_NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

const char *
smtp_verb_str(enum smtp_verb v)
{
	switch (v) {
	case SMTP_V_NONE:	return "NONE";
	case SMTP_V_HELO:	return "HELO";
	case SMTP_V_EHLO:	return "EHLO";
	case SMTP_V_MAIL:	return "MAIL";
	case SMTP_V_RCPT:	return "RCPT";
	case SMTP_V_DATA:	return "DATA";
	case SMTP_V_RSET:	return "RSET";
	case SMTP_V_NOOP:	return "NOOP";
	case SMTP_V_QUIT:	return "QUIT";
	case SMTP_V_HELP:	return "HELP";
	case SMTP_V_VRFY:	return "VRFY";
	case SMTP_V_EXPN:	return "EXPN";
	case SMTP_V_STARTTLS:	return "STARTTLS";
	case SMTP_V_AUTH:	return "AUTH";
	case SMTP_V_BDAT:	return "BDAT";
	case SMTP_V_XCLIENT:	return "XCLIENT";
	case SMTP_V_XFORWARD:	return "XFORWARD";
	case SMTP_V_OTHER:	return "OTHER";
	}
	return "?";	/* a value outside the enum: never from this parser */
}

/* ---- byte classes (locale-free: <ctype.h> would depend on setlocale) ---- */

static int
smtp_parse_is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
smtp_parse_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
smtp_parse_is_alnum(unsigned char c)
{
	return smtp_parse_is_alpha(c) || smtp_parse_is_digit(c);
}

static unsigned char
smtp_parse_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/*
 * Unquoted local-part byte other than '.' and '@': RFC 5322 atext widened to
 * every printable ASCII byte that cannot change how the path is framed or
 * tokenized ('=', '/', '{', '|' ... are fine; space, brackets, comment
 * parentheses, the route separators ',' ';' ':', backslash and quote are not).
 */
static int
smtp_parse_is_local_byte(unsigned char c)
{
	if (c < 0x21 || c > 0x7e)
		return 0;
	return strchr("<>()[],;:\\\"@.", c) == NULL;
}

/*
 * Length of the well-formed UTF-8 sequence at s[i] (a byte >= 0x80), or 0.
 * Overlong forms and surrogates are refused: a lax decoder downstream could
 * turn C0 80 into NUL or C1 80 into '@'.
 */
static size_t
smtp_parse_utf8(const unsigned char *s, size_t len, size_t i)
{
	unsigned char	c = s[i];
	unsigned char	lo = 0x80, hi = 0xbf;
	size_t		n, k;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (len - i < n)
		return 0;
	if (s[i + 1] < lo || s[i + 1] > hi)
		return 0;
	for (k = 2; k < n; k++)
		if (s[i + k] < 0x80 || s[i + k] > 0xbf)
			return 0;
	return n;
}

/*
 * No strlen(lit) first: every command is compared with a dozen verbs and
 * foreign words, and nearly every comparison ends at the first byte
 * (callgrind: this and strlen were 10% of the daemon's instructions).
 */
int
smtp_slice_ieq(struct slice s, const char *lit)
{
	size_t	i;

	for (i = 0; i < s.len; i++)
		if (lit[i] == '\0' || smtp_parse_lower((unsigned char)s.p[i]) !=
		    smtp_parse_lower((unsigned char)lit[i]))
			return 0;
	return lit[s.len] == '\0';
}

/* 1 if s starts with lit, ASCII case-insensitive. */
static int
smtp_parse_iprefix(struct slice s, const char *lit)
{
	size_t	n = strlen(lit);

	if (s.len < n)
		return 0;
	return smtp_slice_ieq((struct slice){ s.p, n }, lit);
}

static struct slice
smtp_parse_sub(struct slice s, size_t from, size_t to)
{
	return (struct slice){ s.p + from, to - from };
}

int
smtp_line_has_bad_bytes(const char *line, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			return 1;
	return 0;
}

/* ---- domains ---- */

/*
 * A host name: labels of letters, digits, '-' (not first or last in a label)
 * and well-formed UTF-8 (U-labels), separated by single dots, one trailing dot
 * allowed, at most 255 octets.
 */
static int
smtp_parse_hostname(struct slice d)
{
	const unsigned char	*s = (const unsigned char *)d.p;
	size_t			 i = 0, label = 0, n;

	if (d.len == 0 || d.len > 255)
		return -1;
	while (i < d.len) {
		unsigned char	c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return -1;
			label = 0;
			i++;
		} else if (c == '-') {
			if (label == 0)
				return -1;
			label++;
			i++;
		} else if (smtp_parse_is_alnum(c)) {
			label++;
			i++;
		} else if (c >= 0x80 && (n = smtp_parse_utf8(s, d.len, i)) != 0) {
			label += n;
			i += n;
		} else
			return -1;
	}
	if (label > 0 && s[d.len - 1] == '-')
		return -1;
	return 0;
}

/* Dotted quad, each part 0..255 in 1-3 digits without leading zeros (inet_aton reads 010 as 8). */
static int
smtp_parse_ipv4(struct slice a)
{
	size_t		i = 0, parts = 0;

	while (parts < 4) {
		size_t		start = i;
		unsigned	v = 0;

		while (i < a.len && smtp_parse_is_digit((unsigned char)a.p[i]) &&
		    i - start < 3) {
			v = v * 10 + (unsigned)(a.p[i] - '0');
			i++;
		}
		if (i == start || v > 255 || (a.p[start] == '0' && i - start > 1))
			return -1;
		parts++;
		if (parts < 4) {
			if (i >= a.len || a.p[i] != '.')
				return -1;
			i++;
		}
	}
	return i == a.len ? 0 : -1;
}

static int
smtp_parse_ipv6(struct slice a)
{
	char		buf[INET6_ADDRSTRLEN];
	unsigned char	out[16];

	if (a.len == 0 || a.len >= sizeof(buf))
		return -1;
	memcpy(buf, a.p, a.len);
	buf[a.len] = '\0';
	return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

/*
 * General-address-literal (RFC 5321 4.1.3): Standardized-tag ":" 1*dcontent.
 * The tag must start with a letter, so "[2001:db8::1]" (an IPv6 address
 * without its "IPv6:" tag, which some servers accept as one) is refused
 * rather than read as tag "2001". No tag other than IPv6 is registered, so
 * dcontent is narrowed to letters, digits and "-._:": nothing an MTA could
 * read as routing ('!', '%', '@') or quoting.
 */
static int
smtp_parse_general_literal(struct slice tag, struct slice content)
{
	size_t	i;

	if (tag.len == 0 || !smtp_parse_is_alpha((unsigned char)tag.p[0]) ||
	    !smtp_parse_is_alnum((unsigned char)tag.p[tag.len - 1]))
		return -1;
	for (i = 0; i < tag.len; i++)
		if (!smtp_parse_is_alnum((unsigned char)tag.p[i]) && tag.p[i] != '-')
			return -1;
	if (content.len == 0)
		return -1;
	for (i = 0; i < content.len; i++) {
		unsigned char	c = (unsigned char)content.p[i];

		if (!smtp_parse_is_alnum(c) && strchr("-._:", c) == NULL)
			return -1;
	}
	return 0;
}

/* Inside of "[...]": IPv4, "IPv6:" + address, or "tag:content". */
static int
smtp_parse_addrlit(struct slice in)
{
	const char	*colon = memchr(in.p, ':', in.len);
	struct slice	 tag, content;

	if (colon == NULL)
		return smtp_parse_ipv4(in);
	tag = smtp_parse_sub(in, 0, (size_t)(colon - in.p));
	content = smtp_parse_sub(in, tag.len + 1, in.len);
	if (smtp_slice_ieq(tag, "IPv6"))
		return smtp_parse_ipv6(content);
	return smtp_parse_general_literal(tag, content);
}

static int
smtp_parse_domain(struct slice d, unsigned *flags)
{
	if (d.len >= 2 && d.p[0] == '[' && d.p[d.len - 1] == ']') {
		*flags |= SMTP_PATH_ADDRLIT;
		return smtp_parse_addrlit(smtp_parse_sub(d, 1, d.len - 1));
	}
	return smtp_parse_hostname(d);
}

/* ---- local part ---- */

/*
 * Quoted string starting at s[i] == '"'. Returns the index after the closing
 * quote, or 0. qtextSMTP / quoted-pairSMTP (RFC 5321 4.1.2) plus UTF-8. It
 * never holds '<' or '>': smtp_parse_mail_rcpt() framed the path on them.
 */
static size_t
smtp_parse_quoted(struct slice l, size_t i, unsigned *flags)
{
	const unsigned char	*s = (const unsigned char *)l.p;
	size_t			 n;

	for (i++; i < l.len; i++) {
		unsigned char	c = s[i];

		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (++i >= l.len)
				return 0;
			c = s[i];
			if (c < 0x20 || c > 0x7e)
				return 0;
		} else if (c >= 0x80) {
			if ((n = smtp_parse_utf8(s, l.len, i)) == 0)
				return 0;
			i += n - 1;
			continue;
		} else if (c < 0x20 || c > 0x7e)
			return 0;
		if (c == '%')
			*flags |= SMTP_PATH_PERCENT;
		else if (c == '!')
			*flags |= SMTP_PATH_BANG;
	}
	return 0;
}

/*
 * Local part as written: words (lenient atoms or whole quoted strings)
 * joined by '.' or by an unquoted '@' (SMTP_PATH_AT). A quoted string must be
 * a whole word ("a"b is read differently by RFC 822 tokenizers).
 */
static int
smtp_parse_local(struct slice l, unsigned *flags)
{
	const unsigned char	*s = (const unsigned char *)l.p;
	size_t			 i = 0, n;
	int			 word_start = 1;

	if (l.len == 0)
		return -1;
	while (i < l.len) {
		unsigned char	c = s[i];

		if (c == '"') {
			if (!word_start || (n = smtp_parse_quoted(l, i, flags)) == 0)
				return -1;
			i = n;
			if (i < l.len && s[i] != '.' && s[i] != '@')
				return -1;
			*flags |= SMTP_PATH_QUOTED;
			word_start = 0;
			continue;
		}
		if (c == '.' || c == '@') {
			if (c == '@')
				*flags |= SMTP_PATH_AT;
			word_start = 1;
			i++;
			continue;
		}
		if (c >= 0x80) {
			if ((n = smtp_parse_utf8(s, l.len, i)) == 0)
				return -1;
			i += n;
		} else if (smtp_parse_is_local_byte(c)) {
			if (c == '%')
				*flags |= SMTP_PATH_PERCENT;
			else if (c == '!')
				*flags |= SMTP_PATH_BANG;
			i++;
		} else
			return -1;
		word_start = 0;
	}
	return 0;
}

/*
 * Index of the last '@' outside quoted strings, or -1 (also when a quote is
 * left open). Backslash escapes only inside quotes; outside, the local-part
 * check refuses it anyway.
 */
static long
smtp_parse_last_at(struct slice m)
{
	long	at = -1;
	size_t	i;
	int	inq = 0;

	for (i = 0; i < m.len; i++) {
		char	c = m.p[i];

		if (inq) {
			if (c == '\\')
				i++;
			else if (c == '"')
				inq = 0;
		} else if (c == '"')
			inq = 1;
		else if (c == '@')
			at = (long)i;
	}
	return inq ? -1 : at;
}

/* ---- paths ---- */

/*
 * "@hop1,@hop2:" at the start of raw. Each hop is a host name: RFC 5321
 * At-domain is "@" Domain, never an address literal (whose ':' would make
 * the end of the route ambiguous). Returns the index of the ':' or 0.
 */
static size_t
smtp_parse_route(struct slice raw)
{
	size_t	i = 0, start;

	for (;;) {
		if (i >= raw.len || raw.p[i] != '@')
			return 0;
		start = ++i;
		while (i < raw.len && raw.p[i] != ',' && raw.p[i] != ':')
			i++;
		if (i >= raw.len)
			return 0;
		if (smtp_parse_hostname(smtp_parse_sub(raw, start, i)) == -1)
			return 0;
		if (raw.p[i] == ':')
			return i;
		i++;
	}
}

/* raw is the text between the brackets (or the bare word). Fills *path. */
static int
smtp_parse_path(struct slice raw, int is_rcpt, struct smtp_path *path)
{
	struct slice	mbox = raw;
	size_t		colon;
	long		at;

	path->raw = raw;
	if (raw.len + 2 > SMTP_PATH_MAX)
		return SMTP_PARSE_SYNTAX;
	if (raw.len == 0) {
		if (is_rcpt)
			return SMTP_PARSE_SYNTAX;
		path->flags |= SMTP_PATH_NULL;
		path->mailbox = raw;
		return SMTP_PARSE_OK;
	}
	if (raw.p[0] == '@') {
		if ((colon = smtp_parse_route(raw)) == 0)
			return SMTP_PARSE_SYNTAX;
		path->route = smtp_parse_sub(raw, 0, colon);
		mbox = smtp_parse_sub(raw, colon + 1, raw.len);
		path->flags |= SMTP_PATH_ROUTED;
	}
	path->mailbox = mbox;
	if (is_rcpt && !(path->flags & SMTP_PATH_ROUTED) &&
	    smtp_slice_ieq(mbox, "postmaster")) {
		path->flags |= SMTP_PATH_POSTMASTER;
		path->local = mbox;
		return SMTP_PARSE_OK;
	}
	if ((at = smtp_parse_last_at(mbox)) == -1)
		return SMTP_PARSE_SYNTAX;
	path->local = smtp_parse_sub(mbox, 0, (size_t)at);
	path->domain = smtp_parse_sub(mbox, (size_t)at + 1, mbox.len);
	if (smtp_parse_local(path->local, &path->flags) == -1 ||
	    smtp_parse_domain(path->domain, &path->flags) == -1)
		return SMTP_PARSE_SYNTAX;
	return SMTP_PARSE_OK;
}

/*
 * What follows the path: nothing, or SP then "KEY[=VALUE]" separated by SP
 * (runs of SP and trailing SP tolerated). esmtp-keyword per RFC 5321 4.1.2;
 * esmtp-value is printable ASCII but '=' plus UTF-8 (RFC 6531 3.3).
 */
static int
smtp_parse_params(struct slice rest, struct smtp_cmd *cmd)
{
	const unsigned char	*s = (const unsigned char *)rest.p;
	size_t			 i = 0, start, n;

	if (rest.len > 0 && s[0] != ' ')
		return SMTP_PARSE_SYNTAX;
	for (;;) {
		struct smtp_param	*prm;

		while (i < rest.len && s[i] == ' ')
			i++;
		if (i == rest.len)
			return SMTP_PARSE_OK;
		if (cmd->nparams == SMTP_MAX_PARAMS)
			return SMTP_PARSE_SYNTAX;
		prm = &cmd->params[cmd->nparams++];
		start = i;
		if (!smtp_parse_is_alnum(s[i]))
			return SMTP_PARSE_SYNTAX;
		while (i < rest.len && (smtp_parse_is_alnum(s[i]) || s[i] == '-'))
			i++;
		prm->key = smtp_parse_sub(rest, start, i);
		if (i < rest.len && s[i] == '=') {
			start = ++i;
			while (i < rest.len && s[i] != ' ') {
				if (s[i] >= 0x80 && (n = smtp_parse_utf8(s, rest.len, i)) != 0)
					i += n;
				else if (s[i] >= 0x21 && s[i] <= 0x7e && s[i] != '=')
					i++;
				else
					return SMTP_PARSE_SYNTAX;
			}
			if (i == start)
				return SMTP_PARSE_SYNTAX;
			prm->value = smtp_parse_sub(rest, start, i);
		}
		if (i < rest.len && s[i] != ' ')
			return SMTP_PARSE_SYNTAX;
	}
}

/*
 * cmd->args holds what follows "MAIL " / "RCPT ". kw is "FROM:" or "TO:".
 * Accepted: kw, any number of SP, then "<path>" or one bare word without
 * '<', '>' or '"', then parameters.
 */
static int
smtp_parse_mail_rcpt(struct smtp_cmd *cmd, const char *kw, int is_rcpt)
{
	struct slice	a = cmd->args, raw, rest;
	size_t		i = strlen(kw), end;
	const char	*gt;
	int		res;

	if (!smtp_parse_iprefix(a, kw))
		return SMTP_PARSE_SYNTAX;
	cmd->args = a = smtp_parse_sub(a, i, a.len);
	for (i = 0; i < a.len && a.p[i] == ' '; i++)
		;
	if (i == a.len)
		return SMTP_PARSE_SYNTAX;
	if (a.p[i] == '<') {
		/*
		 * The first '>' closes the path, even inside quotes, and '<' may
		 * not appear inside: OpenSMTPD frames paths that way (strchr),
		 * so no quoted string can hide a '>' from one MTA but not another.
		 */
		if ((gt = memchr(a.p + i, '>', a.len - i)) == NULL)
			return SMTP_PARSE_SYNTAX;
		end = (size_t)(gt - a.p);
		raw = smtp_parse_sub(a, i + 1, end);
		if (memchr(raw.p, '<', raw.len) != NULL)
			return SMTP_PARSE_SYNTAX;
		rest = smtp_parse_sub(a, end + 1, a.len);
	} else {
		for (end = i; end < a.len && a.p[end] != ' '; end++)
			if (a.p[end] == '<' || a.p[end] == '>' || a.p[end] == '"')
				return SMTP_PARSE_SYNTAX;
		raw = smtp_parse_sub(a, i, end);
		rest = smtp_parse_sub(a, end, a.len);
		cmd->path.flags |= SMTP_PATH_NOBRACKETS;
	}
	if ((res = smtp_parse_path(raw, is_rcpt, &cmd->path)) != SMTP_PARSE_OK)
		return res;
	return smtp_parse_params(rest, cmd);
}

/* ---- verbs ---- */

static int
smtp_parse_is_blank_line(const char *line, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			return 0;
	return 1;
}

/* HTTP request line or PROXY v1 header: the verb word w is followed by SP at rest. */
static int
smtp_parse_is_foreign(struct slice w, struct slice rest)
{
	size_t	i, n;

	for (i = 0; i < SMTP_PARSE_NITEMS(smtp_parse_foreign); i++)
		if (smtp_slice_ieq(w, smtp_parse_foreign[i]))
			return 1;
	if (!smtp_slice_ieq(w, "PROXY"))
		return 0;
	for (i = 0; i < SMTP_PARSE_NITEMS(smtp_parse_proxy1); i++) {
		n = strlen(smtp_parse_proxy1[i]);
		if (smtp_parse_iprefix(rest, smtp_parse_proxy1[i]) &&
		    (rest.len == n || rest.p[n] == ' '))
			return 1;
	}
	return 0;
}

static enum smtp_verb
smtp_parse_lookup(struct slice w)
{
	size_t	i;

	for (i = 0; i < SMTP_PARSE_NITEMS(smtp_parse_verbs); i++)
		if (w.len == smtp_parse_verbs[i].len &&
		    smtp_slice_ieq(w, smtp_parse_verbs[i].name))
			return smtp_parse_verbs[i].verb;
	return SMTP_V_OTHER;
}

int
smtp_parse_cmd(const char *line, size_t len, struct smtp_cmd *cmd)
{
	struct slice	l = { line, len };
	size_t		i;

	memset(cmd, 0, sizeof(*cmd));
	if (len >= sizeof(smtp_parse_proxy2_sig) &&
	    memcmp(line, smtp_parse_proxy2_sig, sizeof(smtp_parse_proxy2_sig)) == 0)
		return SMTP_PARSE_NOT_SMTP;
	if (len > 0 && memchr(line, '\0', len) != NULL)
		return SMTP_PARSE_SYNTAX;
	if (smtp_parse_is_blank_line(line, len))
		return SMTP_PARSE_EMPTY;

	for (i = 0; i < len && line[i] != ' '; i++)
		if (!smtp_parse_is_alnum((unsigned char)line[i]) && line[i] != '-')
			return SMTP_PARSE_NOT_SMTP;
	if (i == 0)
		return SMTP_PARSE_NOT_SMTP;	/* leading blank: not a verb we can name */
	cmd->verb_text = smtp_parse_sub(l, 0, i);
	cmd->args = i < len ? smtp_parse_sub(l, i + 1, len) : smtp_parse_sub(l, len, len);
	if (i < len && smtp_parse_is_foreign(cmd->verb_text, cmd->args))
		return SMTP_PARSE_NOT_SMTP;
	cmd->verb = smtp_parse_lookup(cmd->verb_text);
	if (cmd->verb == SMTP_V_MAIL)
		return smtp_parse_mail_rcpt(cmd, "FROM:", 0);
	if (cmd->verb == SMTP_V_RCPT)
		return smtp_parse_mail_rcpt(cmd, "TO:", 1);
	return SMTP_PARSE_OK;
}

/* ---- helpers on parsed commands ---- */

int
smtp_param_ulong(struct slice value, unsigned long long *out)
{
	unsigned long long	v = 0;
	size_t			i;

	if (value.p == NULL || value.len == 0 || value.len > 20)
		return -1;
	for (i = 0; i < value.len; i++) {
		unsigned	d;

		if (!smtp_parse_is_digit((unsigned char)value.p[i]))
			return -1;
		d = (unsigned)(value.p[i] - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

const struct smtp_param *
smtp_cmd_param(const struct smtp_cmd *cmd, const char *key)
{
	unsigned	i;

	for (i = 0; i < cmd->nparams && i < SMTP_MAX_PARAMS; i++)
		if (smtp_slice_ieq(cmd->params[i].key, key))
			return &cmd->params[i];
	return NULL;
}

/* ---- replies ---- */

int
smtp_parse_reply_line(const char *line, size_t len, struct smtp_reply_line *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    line[1] < '0' || line[1] > '5' || line[2] < '0' || line[2] > '9')
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	out->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	out->last = len == 3 || line[3] == ' ';
	out->text = len > 3 ? (struct slice){ line + 4, len - 4 } :
	    (struct slice){ line + 3, 0 };
	return 0;
}

struct slice
smtp_ehlo_keyword(struct slice text)
{
	size_t	i = 0, start;

	if (text.len == 0)
		return text;
	/* "250- STARTTLS" is not RFC, but a keyword we fail to see is one we fail to filter. */
	while (i < text.len && text.p[i] == ' ')
		i++;
	start = i;
	while (i < text.len && text.p[i] != ' ')
		i++;
	return (struct slice){ text.p + start, i - start };
}

/*
 * rules: smtpwall's policy objects. Leaf module, pure.
 *
 * Owns: CIDR sets (trusted_networks), domain sets (local_domains), the live
 * ruleset (block sender / block client / allow relay lines of the rules_file)
 * and the relay decision of SPEC.md "The relay decision".
 *
 * Never: logs, does I/O, includes anything from proxy/, nfq/ or capture/.
 * rules_eval_*() never allocate; the only thing they write is a matched rule's
 * hit counter (a relaxed atomic).
 *
 * Errors come back through `char err[RULES_ERR_LEN]` out-parameters or, for
 * whole-file parsing, through a callback that receives every error with its
 * 1-based line number; the caller adds the file name and decides whether to log.
 *
 * A ruleset is immutable once built and reference-counted (atomic), so a new
 * one can be swapped in while sessions keep using the snapshot they started
 * their transaction with.
 */
#ifndef SMTPWALL_RULES_H
#define SMTPWALL_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>

#define RULES_ERR_LEN		256
#define RULES_PATTERN_MAX	256	/* longest sender or domain pattern */
#define RULES_COMMENT_MAX	256

/* ---- addresses and CIDR blocks ---------------------------------------- */

struct rules_cidr {
	uint8_t	family;		/* AF_INET or AF_INET6 */
	uint8_t	prefix;		/* 0..32 or 0..128 */
	uint8_t	addr[16];	/* network byte order, host bits zero */
};

/*
 * "203.0.113.0/24", "2001:db8::/32", or a bare address (a /32 or /128).
 * Host bits set ("192.0.2.1/24") is an error, not silently masked.
 * Returns 0, or -1 with err set.
 */
int	rules_cidr_parse(const char *s, size_t len, struct rules_cidr *out,
	    char err[RULES_ERR_LEN]);

/* 1 if sa (AF_INET, or AF_INET6 incl. v4-mapped ::ffff:a.b.c.d) is inside c, else 0. */
int	rules_cidr_match(const struct rules_cidr *c, const struct sockaddr *sa);

/* Canonical text ("203.0.113.0/24", "2001:db8::/32"); returns snprintf-style length. */
int	rules_cidr_format(const struct rules_cidr *c, char *buf, size_t len);

struct rules_cidrset;			/* opaque: a list of CIDR blocks */
struct rules_cidrset *rules_cidrset_new(void);
void	rules_cidrset_free(struct rules_cidrset *);
int	rules_cidrset_add(struct rules_cidrset *, const struct rules_cidr *);	/* 0 / -1 ENOMEM */
int	rules_cidrset_match(const struct rules_cidrset *, const struct sockaddr *sa);	/* 1 / 0 */
size_t	rules_cidrset_count(const struct rules_cidrset *);
const struct rules_cidr *rules_cidrset_get(const struct rules_cidrset *, size_t i);

/* ---- domain patterns (local_domains, allow relay ... to PATTERN) ------- */

/*
 * A domain pattern is one of:
 *   example.com          that domain exactly
 *   .example.com         every subdomain of example.com (not example.com itself)
 *   [198.51.100.2]       an IPv4 address literal
 *   [IPv6:2001:db8::1]   an IPv6 address literal (compared as addresses)
 * Matching is ASCII case-insensitive and ignores one trailing dot on the domain.
 */
int	rules_domain_pattern_check(const char *s, size_t len, char err[RULES_ERR_LEN]);
/* 1 if domain (as written by the client, any case, maybe one trailing dot) matches pattern. */
int	rules_domain_match(const char *pattern, size_t plen, const char *domain, size_t dlen);

struct rules_domainset;			/* opaque */
struct rules_domainset *rules_domainset_new(void);
void	rules_domainset_free(struct rules_domainset *);
int	rules_domainset_add(struct rules_domainset *, const char *pat, size_t len,
	    char err[RULES_ERR_LEN]);		/* 0 / -1 with err */
int	rules_domainset_match(const struct rules_domainset *, const char *domain, size_t len);
size_t	rules_domainset_count(const struct rules_domainset *);
const char *rules_domainset_get(const struct rules_domainset *, size_t i);	/* NUL-terminated, lowercased */

/* ---- sender globs ------------------------------------------------------ */

/*
 * Glob on a MAIL FROM address: '*' any run (also empty), '?' one byte, ASCII
 * case-insensitive, matched against the whole address "local@domain" as the
 * client wrote it between the brackets (source route removed). The pattern
 * "<>" matches only the null sender (addr_len == 0).
 */
int	rules_sender_match(const char *pattern, size_t plen, const char *addr, size_t alen);

/* ---- the live ruleset --------------------------------------------------- */

enum rules_kind {
	RULES_BLOCK_SENDER = 1,		/* block sender PATTERN */
	RULES_BLOCK_CLIENT,		/* block client CIDR */
	RULES_ALLOW_RELAY,		/* allow relay CIDR to DOMAIN-PATTERN */
};

/*
 * One rule. Its strings are owned by the rule (exact-size allocations, so a
 * ruleset of 10^6 rules stays under 200 bytes a rule, indexes included);
 * never write to them. Fields are ordered so that the struct has no holes.
 */
struct rules_rule {
	enum rules_kind		 kind;
	unsigned		 line;		/* line in the text it was parsed from; 0 if none */
	const char		*pattern;	/* sender glob, or the relay domain pattern; lowercased; "" if none */
	const char		*comment;	/* comment="..." text, "" if none */
	const char		*line_comment;	/* the "  # ..." that followed the rule on its line, verbatim
						   from the blanks before '#' on; "" if none (NULL is taken as "") */
	time_t			 until;		/* 0: never expires */
	uint64_t		 hits;		/* bumped with __atomic_fetch_add(.., __ATOMIC_RELAXED) */
	struct rules_cidr	 cidr;		/* block client, allow relay */
};

struct ruleset;				/* opaque, immutable, refcounted */

typedef void rules_err_fn(void *arg, unsigned line, const char *msg);

/*
 * Parse a whole rules file (one rule a line; '#' starts a comment outside a
 * quoted comment="..." value; blank lines ignored). Every error is reported
 * through err(arg, line, msg). Returns a new ruleset with refcount 1, or NULL
 * if there was any error (or ENOMEM). Empty text gives an empty ruleset.
 * Syntax of one rule line:
 *   block sender PATTERN [until=YYYY-MM-DDTHH:MM:SSZ] [comment="text"]
 *   block client CIDR    [until=...] [comment="..."]
 *   allow relay CIDR to DOMAIN-PATTERN [until=...] [comment="..."]
 * Rules whose until= is already past at parse time are kept (expiry is
 * decided by rules_eval_* against their `now`). A line naming the same rule
 * as an earlier line (rules_rule_same) is an error: "the same rule as line
 * N". The comment and blank lines are recorded for rules_write().
 */
struct ruleset *rules_parse(const char *text, size_t len, rules_err_fn *err, void *arg);
struct ruleset *rules_empty(void);		/* NULL on ENOMEM */
struct ruleset *rules_ref(struct ruleset *);	/* returns its argument */
void	rules_unref(struct ruleset *);		/* NULL is fine */
size_t	rules_count(const struct ruleset *);
/* The i-th rule in file order, O(log n). */
const struct rules_rule *rules_get(const struct ruleset *, size_t i);

/* The rule as one line in the language rules_parse takes (no newline). snprintf-style return. */
int	rules_rule_format(const struct rules_rule *, char *buf, size_t len);

/*
 * The rule's identity alone, as rules_rule_same() compares rules: "block
 * sender *@spam.example", without until= and comment=. What log lines and
 * `check` name a rule by (rule="..."), and what unblock/disallow take.
 */
int	rules_rule_format_key(const struct rules_rule *, char *buf, size_t len);

/* ---- changing a ruleset (the live rules: smtpwallctl, expiry) ----------- */
/*
 * A ruleset is never modified: each change returns a NEW ruleset (refcount
 * 1) that shares almost all of its structure with the old one, which stays
 * valid and unchanged for whoever holds it. A change costs O(log n) time and
 * memory, not O(n): adding one rule to a ruleset of 10^6 rules takes
 * microseconds. Hit counters live in the rule and are shared by every
 * ruleset holding it (read them with __atomic_load_n); a rule replaced by
 * rules_add starts from the count of the one it replaces.
 */

/*
 * One rule in the rules-file language (no CR, LF or NUL). An inline
 * "# comment" after it is kept with the rule (out->line_comment) and
 * written back by rules_write(). out->line is 0. The result lives in *out
 * until rules_rule_clear(out) (harmless after a failed parse too). 0, or -1
 * with err set.
 */
int	rules_rule_parse(const char *line, size_t len, struct rules_rule *out,
	    char err[RULES_ERR_LEN]);
void	rules_rule_clear(struct rules_rule *);

/* 1 if a and b are the same rule: same kind and same pattern/CIDR/domain (until and comment aside). */
int	rules_rule_same(const struct rules_rule *a, const struct rules_rule *b);

/*
 * rs plus r (rs NULL: an empty ruleset). If rs already holds the same rule,
 * that rule keeps its place, hits, line and the text before it, and takes
 * r's until and comment, and r's line_comment if it has one
 * (*replaced = 1); otherwise r is added after every existing rule
 * (*replaced = 0; replaced may be NULL). r need not come from
 * rules_rule_parse, but must be what it could give: its pattern is
 * lowercased / normalized, and a rule that would not parse back (bad CIDR,
 * domain or glob, control characters, until= out of range, a line_comment
 * that is not blanks then '#') gives NULL with errno EINVAL, so that
 * rules_write never writes a file that fails to load. NULL on ENOMEM.
 */
struct ruleset *rules_add(const struct ruleset *rs, const struct rules_rule *r, int *replaced);
/* rs without the rule same as r. NULL with errno ENOENT (no such rule) or ENOMEM. */
struct ruleset *rules_remove(const struct ruleset *rs, const struct rules_rule *r);
/* rs without the rules whose until <= now; *n says how many (0: a new reference to rs). NULL on ENOMEM. */
struct ruleset *rules_expire(const struct ruleset *rs, time_t now, size_t *n);
/* The earliest until of any rule, 0 if no rule expires. */
time_t	rules_next_expiry(const struct ruleset *rs);

/*
 * The ruleset as a rules file, through write(arg, p, n) (returns 0 or -1,
 * and rules_write stops at the first -1 and returns -1). Every rule in
 * order, each preceded by the comment and blank lines that stood before it
 * in the text it was parsed from and followed by its inline comment, kept
 * verbatim; lines after the last rule come last. So a file written by hand
 * keeps its comments through every rewrite; the comments of a removed rule
 * go with it, except the file's header: the lines before the first rule
 * down to the last blank line among them (all of a file with no rule),
 * which always come first. Rules are written in canonical form.
 */
int	rules_write(const struct ruleset *rs,
	    int (*write)(void *arg, const char *p, size_t n), void *arg);

/* ---- the decisions (SPEC.md "The relay decision") ----------------------- */
/*
 * Lookups are indexed: their cost grows with the address (its bits, the
 * domain's labels), not with the number of rules, apart from sender globs
 * that have no literal domain (e.g. "spam*@*"), which are scanned, and
 * rules that share one key (allow relay rules for one CIDR, block sender
 * globs for one domain), which are checked one by one. When several rules
 * match, the one earliest in file order decides.
 */

/* Policy from the configuration file; immutable, owned by the config. */
struct rules_policy {
	const struct rules_cidrset	*trusted;	/* trusted_networks; NULL = none */
	const struct rules_domainset	*local_domains;	/* NULL = none */
	int				 auth_relay;	/* auth_relay = yes */
};

enum rules_reason {
	RULES_R_NONE = 0,
	RULES_R_POSTMASTER,	/* accepted: RFC 5321 4.5.1 postmaster */
	RULES_R_TRUSTED,	/* accepted: client in trusted_networks */
	RULES_R_ALLOW_RULE,	/* accepted: an allow relay rule (verdict.rule) */
	RULES_R_AUTH,		/* accepted: authenticated session, auth_relay = yes */
	RULES_R_LOCAL_DOMAIN,	/* accepted: domain in local_domains */
	RULES_R_ROUTING,	/* refused: sender-specified routing from an untrusted client */
	RULES_R_RELAY,		/* refused: relay access denied */
	RULES_R_SENDER_RULE,	/* refused: a block sender rule (verdict.rule) */
	RULES_R_CLIENT_RULE,	/* refused: a block client rule (verdict.rule) */
};
/* "postmaster", "trusted", "allow_rule", "auth", "local_domain", "routing",
 * "relay", "sender", "client", "none": the reason= word of the logs. */
const char *rules_reason_str(enum rules_reason);

struct rules_verdict {
	int			 accept;	/* 1 accepted, 0 refused */
	enum rules_reason	 reason;
	const struct rules_rule	*rule;		/* the rule that decided, or NULL */
};

/* Flags of a RCPT address, set by the SMTP path parser. */
#define RULES_RCPT_ROUTED	0x01	/* source route <@hop:user@domain> */
#define RULES_RCPT_PERCENT	0x02	/* '%' in the local part */
#define RULES_RCPT_BANG		0x04	/* '!' in the local part */
#define RULES_RCPT_AT		0x08	/* an unquoted '@' in the local part (user@a@b) */

struct rules_rcpt {
	const char	*local;		/* local part as written, quotes included */
	size_t		 local_len;
	const char	*domain;	/* as written; domain_len 0 for a bare "postmaster" */
	size_t		 domain_len;
	unsigned	 flags;		/* RULES_RCPT_* */
};

/*
 * The five steps of SPEC.md, in order, first decision wins:
 * 1 postmaster, 2 routing tricks (refused unless trusted or authenticated),
 * 3 trusted / allow relay rule matching the domain / authenticated with
 * auth_relay, 4 local domain, 5 refused (RULES_R_RELAY).
 * Rules with until <= now are ignored. authenticated: the server accepted AUTH.
 */
void	rules_eval_rcpt(const struct rules_policy *, const struct ruleset *,
	    const struct sockaddr *client, int authenticated,
	    const struct rules_rcpt *rcpt, time_t now, struct rules_verdict *out);

/* First matching block sender rule refuses (RULES_R_SENDER_RULE); else accept/NONE.
 * addr: between the brackets, route removed; alen 0 = the null sender <>. */
void	rules_eval_sender(const struct ruleset *, const char *addr, size_t alen,
	    time_t now, struct rules_verdict *out);

/*
 * Take back the hit an evaluation just counted on r (NULL is fine): for dry
 * runs such as `smtpwallctl check`, which must not make a rule look used.
 */
void	rules_hit_undo(const struct rules_rule *r);

/* First matching block client rule refuses (RULES_R_CLIENT_RULE); else accept/NONE. */
void	rules_eval_client(const struct ruleset *, const struct sockaddr *client,
	    time_t now, struct rules_verdict *out);

#endif

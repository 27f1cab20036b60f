/*
 * plan: smtpwall.conf -> the commands that install or remove smtpwall's
 * netfilter rules and policy routing (see plan.h for the contract, and
 * docs/smtpwall-firewall.8 for the administrator's view of the same).
 *
 * Pure: no command is run here, nothing is read but the struct config.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fw/plan.h"
#include "proxy/config.h"

enum { FWP_V4 = 0, FWP_V6, FWP_NFAM };
enum { FWP_RAW = 0, FWP_NAT, FWP_MANGLE, FWP_NTABLE };

static const struct {
	const char	*ipt;		/* iptables tool */
	const char	*name;		/* for messages */
	const char	*nfproto;	/* nft meta nfproto */
	const char	*nftfam;	/* nft tproxy / dnat family */
	const char	*ipflag;	/* ip -4 / -6 */
	const char	*any;		/* the local default route's prefix */
} fwp_fam[FWP_NFAM] = {
	{ "iptables", "IPv4", "ipv4", "ip", "-4", "0.0.0.0/0" },
	{ "ip6tables", "IPv6", "ipv6", "ip6", "-6", "::/0" },
};

static const char *const fwp_table[FWP_NTABLE] = { "raw", "nat", "mangle" };

/* The first listen address of one family. */
struct fwp_listener {
	int		 present;
	int		 wildcard;
	char		 addr[INET6_ADDRSTRLEN];
	unsigned	 port;
};

struct fwp {
	struct fw_plan		*p;
	const struct config	*cf;
	const struct fw_opts	*o;
	struct fwp_listener	 l[FWP_NFAM];
	char			 mark[16];	/* "0x2525" */
	char			 table[16];	/* "2525" */
};

/* A string builder over a caller's buffer; overflow is sticky. */
struct fwp_sb {
	char	*buf;
	size_t	 cap, len;
	int	 overflow;
};

static void fwp_sbf(struct fwp_sb *, const char *, ...) __attribute__((format(printf, 2, 3)));

static void
fwp_sbf(struct fwp_sb *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (sb->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sb->cap - sb->len) {
		sb->overflow = 1;
		sb->buf[sb->len] = '\0';
		return;
	}
	sb->len += (size_t)n;
}

/* ---- the plan's storage ------------------------------------------------------ */

struct fw_plan *
fw_plan_new(void)
{
	return calloc(1, sizeof(struct fw_plan));
}

void
fw_plan_reset(struct fw_plan *p)
{
	p->nsteps = 0;
	p->nnotes = 0;
	p->nwords = 0;
	p->ntext = 0;
	p->overflow = 0;
}

static char *
fwp_str(struct fw_plan *p, const char *s)
{
	size_t n = strlen(s) + 1;
	char *r;

	if (p->overflow || n > FW_TEXT_MAX - p->ntext) {
		p->overflow = 1;
		return NULL;
	}
	r = p->text + p->ntext;
	memcpy(r, s, n);
	p->ntext += n;
	return r;
}

static char *fwp_strf(struct fw_plan *, const char *, ...) __attribute__((format(printf, 2, 3)));

static char *
fwp_strf(struct fw_plan *p, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf) {
		p->overflow = 1;
		return NULL;
	}
	return fwp_str(p, buf);
}

/* argv building: fwp_begin, fwp_w..., fwp_end -> word index of argv[0]. */
static int
fwp_begin(struct fw_plan *p)
{
	return (int)p->nwords;
}

static void
fwp_w(struct fw_plan *p, const char *w)
{
	char *s = fwp_str(p, w);

	if (s == NULL || p->nwords >= FW_WORDS_MAX - 1) {
		p->overflow = 1;
		return;
	}
	p->words[p->nwords++] = s;
}

/* Several words, NULL-terminated list. */
static void
fwp_ws(struct fw_plan *p, ...)
{
	const char *w;
	va_list ap;

	va_start(ap, p);
	while ((w = va_arg(ap, const char *)) != NULL)
		fwp_w(p, w);
	va_end(ap);
}

static int
fwp_end(struct fw_plan *p, int start)
{
	if (p->nwords >= FW_WORDS_MAX) {
		p->overflow = 1;
		return start;
	}
	p->words[p->nwords++] = NULL;
	return start;
}

static struct fw_step *
fwp_step(struct fw_plan *p, enum fw_step_kind kind, const char *what)
{
	struct fw_step *s;

	if (p->nsteps >= FW_STEPS_MAX) {
		p->overflow = 1;
		return NULL;
	}
	s = &p->steps[p->nsteps++];
	memset(s, 0, sizeof *s);
	s->kind = kind;
	s->what = fwp_str(p, what);
	s->check = -1;
	s->cmd[0] = s->cmd[1] = -1;
	return s;
}

char *const *
fw_plan_argv(const struct fw_plan *p, int i)
{
	return (char *const *)&p->words[i];
}

static void
fwp_note(struct fw_plan *p, const char *note)
{
	if (p->nnotes < FW_NOTES_MAX)
		p->notes[p->nnotes++] = fwp_str(p, note);
	else
		p->overflow = 1;
}

/* ---- argvs ----------------------------------------------------------------- */

/* "iptables -w -t TABLE" (the -w: wait for the xtables lock, never fail on it). */
static int
fwp_ipt(struct fw_plan *p, int fam, int table)
{
	int a = fwp_begin(p);

	fwp_ws(p, fwp_fam[fam].ipt, "-w", "-t", fwp_table[table], NULL);
	return a;
}

/* A plain iptables command on chain words: ipt -w -t T WORDS... */
static int
fwp_iptv(struct fw_plan *p, int fam, int table, ...)
{
	const char *w;
	va_list ap;
	int a = fwp_ipt(p, fam, table);

	va_start(ap, table);
	while ((w = va_arg(ap, const char *)) != NULL)
		fwp_w(p, w);
	va_end(ap);
	return fwp_end(p, a);
}

/* ip [-6] WORDS... */
static int
fwp_ipv(struct fw_plan *p, int fam, ...)
{
	const char *w;
	va_list ap;
	int a = fwp_begin(p);

	fwp_w(p, "ip");
	if (fam == FWP_V6)
		fwp_w(p, "-6");
	va_start(ap, fam);
	while ((w = va_arg(ap, const char *)) != NULL)
		fwp_w(p, w);
	va_end(ap);
	return fwp_end(p, a);
}

/* ---- listeners --------------------------------------------------------------- */

static void
fwp_listen_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof a);
		snprintf(buf, len, "%s:%u", a, (unsigned)ntohs(sin->sin_port));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof a);
		snprintf(buf, len, "[%s]:%u", a, (unsigned)ntohs(sin6->sin6_port));
	}
}

/* The first listener of each family; -1 (err) for a listen address no rule can reach. */
static int
fwp_listeners(struct fwp *x, char *err, size_t errlen)
{
	const struct config *cf = x->cf;
	unsigned i;

	if (cf->nlisten == 0) {
		snprintf(err, errlen, "%s: listen: no address: nothing to redirect port 25 to", cf->path);
		return -1;
	}
	for (i = 0; i < cf->nlisten; i++) {
		const struct sockaddr_storage *ss = &cf->listen[i];
		char v[INET6_ADDRSTRLEN + 16];
		struct fwp_listener *l;
		int loop = 0, wild = 0, fam;

		fwp_listen_str(ss, v, sizeof v);
		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ss;
			uint32_t a = ntohl(sin->sin_addr.s_addr);

			fam = FWP_V4;
			loop = (a >> 24) == 127;
			wild = a == INADDR_ANY;
		} else if (ss->ss_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)ss;

			fam = FWP_V6;
			if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
				snprintf(err, errlen, "%s: listen = %s: an IPv4-mapped address: "
				    "write the IPv4 address (e.g. %s:%u) so that IPv4 port 25 "
				    "is sent there", cf->path, v, "0.0.0.0",
				    (unsigned)ntohs(sin6->sin6_port));
				return -1;
			}
			loop = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
			wild = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
		} else {
			snprintf(err, errlen, "%s: listen = %s: not an IPv4 or IPv6 address", cf->path, v);
			return -1;
		}
		if (loop) {
			snprintf(err, errlen, "%s: listen = %s: a loopback address cannot receive "
			    "connections redirected from other interfaces: listen on %s:%u or on "
			    "an address of this host's interfaces", cf->path, v,
			    fam == FWP_V4 ? "0.0.0.0" : "[::]",
			    fam == FWP_V4
			    ? (unsigned)ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port)
			    : (unsigned)ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port));
			return -1;
		}
		l = &x->l[fam];
		if (l->present)
			continue;	/* the first one of a family is the one the rules name */
		l->present = 1;
		l->wildcard = wild;
		if (fam == FWP_V4) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ss;

			inet_ntop(AF_INET, &sin->sin_addr, l->addr, sizeof l->addr);
			l->port = ntohs(sin->sin_port);
		} else {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)ss;

			inet_ntop(AF_INET6, &sin6->sin6_addr, l->addr, sizeof l->addr);
			l->port = ntohs(sin6->sin6_port);
		}
	}
	return 0;
}

/* ---- nft --------------------------------------------------------------------- */

/* The incoming-interface match: iifname != "lo" | iifname "a" | iifname { "a", "b" }. */
static void
fwp_nft_iif(struct fwp_sb *sb, const struct config *cf)
{
	unsigned i;

	if (cf->ninterfaces == 0) {
		fwp_sbf(sb, "iifname != \"lo\"");
		return;
	}
	if (cf->ninterfaces == 1) {
		fwp_sbf(sb, "iifname \"%s\"", cf->interfaces[0]);
		return;
	}
	fwp_sbf(sb, "iifname {");
	for (i = 0; i < cf->ninterfaces; i++)
		fwp_sbf(sb, "%s \"%s\"", i ? "," : "", cf->interfaces[i]);
	fwp_sbf(sb, " }");
}

/* "queue num N" / "queue num N-M", " bypass" when nfqueue_fail = open. */
static void
fwp_nft_queue(struct fwp_sb *sb, const struct config *cf)
{
	if (cf->nfqueue_first == cf->nfqueue_last)
		fwp_sbf(sb, "queue num %u", cf->nfqueue_first);
	else
		fwp_sbf(sb, "queue num %u-%u", cf->nfqueue_first, cf->nfqueue_last);
	if (cf->nfqueue_fail == CONFIG_NFQ_FAIL_OPEN)
		fwp_sbf(sb, " bypass");
}

#define FWP_SYN	"tcp flags & (fin|syn|rst|ack) == syn"

/* The nft script: replace table inet smtpwall atomically (one nft -f transaction). */
static void
fwp_nft_script(struct fwp *x, struct fwp_sb *sb)
{
	const struct config *cf = x->cf;
	int both = x->l[FWP_V4].present && x->l[FWP_V6].present;
	int marked = cf->nfqueue_on;
	int f;

	fwp_sbf(sb, "add table inet " FW_NFT_TABLE "\n");
	fwp_sbf(sb, "delete table inet " FW_NFT_TABLE "\n");
	fwp_sbf(sb, "table inet " FW_NFT_TABLE " {\n");
	if (cf->nfqueue_on && !x->o->queue_via_iptables) {
		fwp_sbf(sb, "\tchain syn_queue {\n");
		fwp_sbf(sb, "\t\ttype filter hook prerouting priority raw; policy accept;\n");
		fwp_sbf(sb, "\t\t");
		fwp_nft_iif(sb, cf);
		if (!both)
			fwp_sbf(sb, " meta nfproto %s",
			    fwp_fam[x->l[FWP_V4].present ? FWP_V4 : FWP_V6].nfproto);
		fwp_sbf(sb, " tcp dport 25 " FWP_SYN " ");
		fwp_nft_queue(sb, cf);
		fwp_sbf(sb, "\n\t}\n");
	}
	if (cf->mode == CONFIG_MODE_REDIRECT) {
		fwp_sbf(sb, "\tchain redirect25 {\n");
		fwp_sbf(sb, "\t\ttype nat hook prerouting priority dstnat; policy accept;\n");
	} else {
		fwp_sbf(sb, "\tchain tproxy25 {\n");
		fwp_sbf(sb, "\t\ttype filter hook prerouting priority mangle; policy accept;\n");
		fwp_sbf(sb, "\t\tmeta l4proto tcp socket transparent 1 meta mark set %s accept\n",
		    x->mark);
	}
	for (f = 0; f < FWP_NFAM; f++) {
		const struct fwp_listener *l = &x->l[f];

		if (!l->present)
			continue;
		fwp_sbf(sb, "\t\t");
		fwp_nft_iif(sb, cf);
		fwp_sbf(sb, " meta nfproto %s tcp dport 25 ", fwp_fam[f].nfproto);
		if (marked)
			fwp_sbf(sb, "meta mark %s ", x->mark);
		if (cf->mode == CONFIG_MODE_REDIRECT) {
			if (l->wildcard)
				fwp_sbf(sb, "redirect to :%u\n", l->port);
			else if (f == FWP_V4)
				fwp_sbf(sb, "dnat ip to %s:%u\n", l->addr, l->port);
			else
				fwp_sbf(sb, "dnat ip6 to [%s]:%u\n", l->addr, l->port);
		} else {
			if (l->wildcard)
				fwp_sbf(sb, "tproxy %s to :%u", fwp_fam[f].nftfam, l->port);
			else if (f == FWP_V4)
				fwp_sbf(sb, "tproxy ip to %s:%u", l->addr, l->port);
			else
				fwp_sbf(sb, "tproxy ip6 to [%s]:%u", l->addr, l->port);
			fwp_sbf(sb, " meta mark set %s accept\n", x->mark);
		}
	}
	fwp_sbf(sb, "\t}\n}\n");
}

int
fw_probe_script(const struct config *cf, char *buf, size_t len)
{
	struct fwp_sb sb = { buf, len, 0, 0 };

	if (len == 0 || !cf->nfqueue_on)
		return -1;
	buf[0] = '\0';
	fwp_sbf(&sb, "table inet " FW_NFT_TABLE "_probe {\n");
	fwp_sbf(&sb, "\tchain syn_queue {\n");
	fwp_sbf(&sb, "\t\ttype filter hook prerouting priority raw; policy accept;\n");
	fwp_sbf(&sb, "\t\ttcp dport 25 " FWP_SYN " ");
	fwp_nft_queue(&sb, cf);
	fwp_sbf(&sb, "\n\t}\n}\n");
	return sb.overflow ? -1 : 0;
}

/* ---- iptables ---------------------------------------------------------------- */

/*
 * One rule per interface (-i IF), or one with ! -i lo; `tail` words after the
 * interface match. Every rule: ipt -w -t T -A SMTPWALL IIF TAIL...
 */
static void
fwp_ipt_rules(struct fwp *x, int fam, int table, const char *what, const char *hint,
    const char *const *tail)
{
	struct fw_plan *p = x->p;
	const struct config *cf = x->cf;
	unsigned i, n = cf->ninterfaces ? cf->ninterfaces : 1;

	for (i = 0; i < n; i++) {
		struct fw_step *s = fwp_step(p, FW_STEP_RUN, what);
		const char *const *t;
		int a;

		if (s == NULL)
			return;
		s->hint = hint;
		a = fwp_ipt(p, fam, table);
		fwp_ws(p, "-A", FW_IPT_CHAIN, NULL);
		if (cf->ninterfaces)
			fwp_ws(p, "-i", cf->interfaces[i], NULL);
		else
			fwp_ws(p, "!", "-i", "lo", NULL);
		for (t = tail; *t != NULL; t++)
			fwp_w(p, *t);
		s->cmd[0] = fwp_end(p, a);
	}
}

/* A plain rule, no interface match (the socket rules of mangle). */
static void
fwp_ipt_rule_any(struct fwp *x, int fam, int table, const char *what, const char *const *tail)
{
	struct fw_plan *p = x->p;
	struct fw_step *s = fwp_step(p, FW_STEP_RUN, what);
	const char *const *t;
	int a;

	if (s == NULL)
		return;
	a = fwp_ipt(p, fam, table);
	fwp_ws(p, "-A", FW_IPT_CHAIN, NULL);
	for (t = tail; *t != NULL; t++)
		fwp_w(p, *t);
	s->cmd[0] = fwp_end(p, a);
}

/* Create-or-flush chain SMTPWALL, fill it (fill()), then the PREROUTING jump if missing. */
static void
fwp_ipt_chain(struct fwp *x, int fam, int table)
{
	struct fw_plan *p = x->p;
	const struct config *cf = x->cf;
	const struct fwp_listener *l = &x->l[fam];
	const char *tool = fwp_fam[fam].ipt, *t = fwp_table[table];
	char port[16], qn[32], dest[128], what[160];
	struct fw_step *s;

	snprintf(what, sizeof what, "%s -t %s: creating chain " FW_IPT_CHAIN, tool, t);
	if ((s = fwp_step(p, FW_STEP_ENSURE, what)) == NULL)
		return;
	s->check = fwp_iptv(p, fam, table, "-S", FW_IPT_CHAIN, NULL);
	s->check_how = FW_CHECK_STATUS;
	s->cmd[0] = fwp_iptv(p, fam, table, "-N", FW_IPT_CHAIN, NULL);
	snprintf(what, sizeof what, "%s -t %s: flushing chain " FW_IPT_CHAIN, tool, t);
	if ((s = fwp_step(p, FW_STEP_RUN, what)) == NULL)
		return;
	s->cmd[0] = fwp_iptv(p, fam, table, "-F", FW_IPT_CHAIN, NULL);

	snprintf(port, sizeof port, "%u", l->port);
	if (table == FWP_RAW) {
		const char *tail[12];
		int n = 0;

		tail[n++] = "-p"; tail[n++] = "tcp"; tail[n++] = "--syn";
		tail[n++] = "--dport"; tail[n++] = "25"; tail[n++] = "-j"; tail[n++] = "NFQUEUE";
		if (cf->nfqueue_first == cf->nfqueue_last) {
			snprintf(qn, sizeof qn, "%u", cf->nfqueue_first);
			tail[n++] = "--queue-num";
		} else {
			snprintf(qn, sizeof qn, "%u:%u", cf->nfqueue_first, cf->nfqueue_last);
			tail[n++] = "--queue-balance";
		}
		tail[n++] = qn;
		if (cf->nfqueue_fail == CONFIG_NFQ_FAIL_OPEN)
			tail[n++] = "--queue-bypass";
		tail[n] = NULL;
		snprintf(what, sizeof what, "%s -t raw: adding the NFQUEUE rule", tool);
		fwp_ipt_rules(x, fam, table, what, NULL, tail);
	} else {
		const char *tail[24];
		const char *hint = NULL;
		int n = 0;

		if (table == FWP_MANGLE) {
			static const char *const mark_tail[] = { "-p", "tcp", "-m", "socket",
			    "--transparent", "-j", "MARK", "--set-mark", NULL, NULL };
			static const char *const acc_tail[] = { "-p", "tcp", "-m", "socket",
			    "--transparent", "-j", "ACCEPT", NULL };
			const char *mt[10];

			memcpy(mt, mark_tail, sizeof mark_tail);
			mt[8] = x->mark;
			snprintf(what, sizeof what,
			    "%s -t mangle: adding the rule that marks packets of transparent sockets", tool);
			fwp_ipt_rule_any(x, fam, table, what, mt);
			snprintf(what, sizeof what,
			    "%s -t mangle: adding the rule that accepts packets of transparent sockets", tool);
			fwp_ipt_rule_any(x, fam, table, what, acc_tail);
		}
		tail[n++] = "-p"; tail[n++] = "tcp"; tail[n++] = "--dport"; tail[n++] = "25";
		if (cf->nfqueue_on) {
			tail[n++] = "-m"; tail[n++] = "mark"; tail[n++] = "--mark"; tail[n++] = x->mark;
		}
		if (table == FWP_NAT && l->wildcard) {
			tail[n++] = "-j"; tail[n++] = "REDIRECT"; tail[n++] = "--to-ports";
			tail[n++] = port;
			snprintf(what, sizeof what, "%s -t nat: adding the REDIRECT rule", tool);
		} else if (table == FWP_NAT) {
			if (fam == FWP_V4)
				snprintf(dest, sizeof dest, "%s:%u", l->addr, l->port);
			else
				snprintf(dest, sizeof dest, "[%s]:%u", l->addr, l->port);
			tail[n++] = "-j"; tail[n++] = "DNAT"; tail[n++] = "--to-destination";
			tail[n++] = dest;
			snprintf(what, sizeof what, "%s -t nat: adding the DNAT rule", tool);
		} else {
			tail[n++] = "-j"; tail[n++] = "TPROXY"; tail[n++] = "--on-port"; tail[n++] = port;
			if (!l->wildcard) {
				tail[n++] = "--on-ip";
				tail[n++] = l->addr;
			}
			tail[n++] = "--tproxy-mark";
			tail[n++] = fwp_strf(p, "%s/0xffffffff", x->mark);
			snprintf(what, sizeof what, "%s -t mangle: adding the TPROXY rule", tool);
			if (fam == FWP_V6)
				hint = "ip6tables could not add the TPROXY rule: on some kernels "
				    "ip6tables has no TPROXY target (\"XT target TPROXY not found\") "
				    "while nft's tproxy ip6 works: use --backend nft, or remove the "
				    "IPv6 address from listen";
		}
		tail[n] = NULL;
		if (!p->overflow)
			fwp_ipt_rules(x, fam, table, what, hint, tail);
	}

	snprintf(what, sizeof what, "%s -t %s: adding the jump from PREROUTING to " FW_IPT_CHAIN,
	    tool, t);
	if ((s = fwp_step(p, FW_STEP_ENSURE, what)) == NULL)
		return;
	s->check = fwp_iptv(p, fam, table, "-C", "PREROUTING", "-j", FW_IPT_CHAIN, NULL);
	s->check_how = FW_CHECK_STATUS;
	s->cmd[0] = fwp_iptv(p, fam, table, "-I", "PREROUTING", "1", "-j", FW_IPT_CHAIN, NULL);
}

/* ---- removal ----------------------------------------------------------------- */

static void
fwp_rm_nft(struct fw_plan *p)
{
	struct fw_step *s = fwp_step(p, FW_STEP_REMOVE, "removing nft table inet " FW_NFT_TABLE);
	int a;

	if (s == NULL)
		return;
	a = fwp_begin(p);
	fwp_ws(p, "nft", "list", "table", "inet", FW_NFT_TABLE, NULL);
	s->check = fwp_end(p, a);
	s->check_how = FW_CHECK_STATUS;
	a = fwp_begin(p);
	fwp_ws(p, "nft", "delete", "table", "inet", FW_NFT_TABLE, NULL);
	s->cmd[0] = fwp_end(p, a);
}

static void
fwp_rm_chain(struct fw_plan *p, int fam, int table)
{
	char what[128];
	struct fw_step *s;

	snprintf(what, sizeof what, "%s -t %s: removing the jump from PREROUTING to " FW_IPT_CHAIN,
	    fwp_fam[fam].ipt, fwp_table[table]);
	if ((s = fwp_step(p, FW_STEP_REMOVE, what)) == NULL)
		return;
	s->check = fwp_iptv(p, fam, table, "-C", "PREROUTING", "-j", FW_IPT_CHAIN, NULL);
	s->check_how = FW_CHECK_STATUS;
	s->cmd[0] = fwp_iptv(p, fam, table, "-D", "PREROUTING", "-j", FW_IPT_CHAIN, NULL);

	snprintf(what, sizeof what, "%s -t %s: removing chain " FW_IPT_CHAIN,
	    fwp_fam[fam].ipt, fwp_table[table]);
	if ((s = fwp_step(p, FW_STEP_REMOVE, what)) == NULL)
		return;
	s->check = fwp_iptv(p, fam, table, "-S", FW_IPT_CHAIN, NULL);
	s->check_how = FW_CHECK_STATUS;
	s->cmd[0] = fwp_iptv(p, fam, table, "-F", FW_IPT_CHAIN, NULL);
	s->cmd[1] = fwp_iptv(p, fam, table, "-X", FW_IPT_CHAIN, NULL);
}

/*
 * The `ip rule fwmark MARK lookup TABLE` step: added if missing (ENSURE) or
 * deleted while present (REMOVE). The check matches the exact line, since
 * `ip rule show fwmark` also lists other masks such as MARK/0xff.
 */
static int
fwp_rule_step(struct fwp *x, int fam, enum fw_step_kind kind)
{
	struct fw_plan *p = x->p;
	int add = kind == FW_STEP_ENSURE;
	char what[128];
	struct fw_step *s;

	snprintf(what, sizeof what, "%s policy routing: %s ip rule fwmark %s lookup %s",
	    fwp_fam[fam].name, add ? "adding" : "removing", x->mark, x->table);
	if ((s = fwp_step(p, kind, what)) == NULL)
		return -1;
	s->check = fwp_ipv(p, fam, "-N", "rule", "show", "fwmark", x->mark, "lookup", x->table, NULL);
	s->check_how = FW_CHECK_LINE;
	s->check_line = fwp_strf(p, "from all fwmark %s lookup %s", x->mark, x->table);
	s->cmd[0] = fwp_ipv(p, fam, "rule", add ? "add" : "del", "fwmark", x->mark, "lookup",
	    x->table, NULL);
	return 0;
}

static void
fwp_rm_routing(struct fwp *x, int fam)
{
	struct fw_plan *p = x->p;
	char what[128];
	struct fw_step *s;

	if (fwp_rule_step(x, fam, FW_STEP_REMOVE) == -1)
		return;

	snprintf(what, sizeof what, "%s policy routing: removing route local %s dev lo table %s",
	    fwp_fam[fam].name, fwp_fam[fam].any, x->table);
	if ((s = fwp_step(p, FW_STEP_REMOVE, what)) == NULL)
		return;
	s->check = fwp_ipv(p, fam, "route", "show", "table", x->table, "type", "local",
	    "exact", fwp_fam[fam].any, "dev", "lo", NULL);
	s->check_how = FW_CHECK_OUTPUT;
	s->cmd[0] = fwp_ipv(p, fam, "route", "del", "local", fwp_fam[fam].any, "dev", "lo",
	    "table", x->table, NULL);
}

static void
fwp_add_routing(struct fwp *x, int fam)
{
	struct fw_plan *p = x->p;
	char what[128];
	struct fw_step *s;

	if (fwp_rule_step(x, fam, FW_STEP_ENSURE) == -1)
		return;

	snprintf(what, sizeof what, "%s policy routing: adding route local %s dev lo table %s",
	    fwp_fam[fam].name, fwp_fam[fam].any, x->table);
	if ((s = fwp_step(p, FW_STEP_RUN, what)) == NULL)
		return;
	s->cmd[0] = fwp_ipv(p, fam, "route", "replace", "local", fwp_fam[fam].any, "dev", "lo",
	    "table", x->table, NULL);
}

static void
fwp_init(struct fwp *x, struct fw_plan *p, const struct config *cf, const struct fw_opts *o)
{
	memset(x, 0, sizeof *x);
	x->p = p;
	x->cf = cf;
	x->o = o;
	snprintf(x->mark, sizeof x->mark, "0x%x", (unsigned)CONFIG_FW_MARK);
	snprintf(x->table, sizeof x->table, "%d", CONFIG_FW_TABLE);
}

/* ---- the plans --------------------------------------------------------------- */

int
fw_plan_up(struct fw_plan *p, const struct config *cf, const struct fw_opts *o,
    char *err, size_t errlen)
{
	int want_chain[FWP_NFAM][FWP_NTABLE], want_routing[FWP_NFAM];
	struct fwp x;
	int f, t;

	fwp_init(&x, p, cf, o);
	if (fwp_listeners(&x, err, errlen) == -1)
		return -1;
	for (f = 0; f < FWP_NFAM; f++) {
		int on = x.l[f].present;
		int ipt = o->backend == FW_BACKEND_IPTABLES;

		want_chain[f][FWP_RAW] = on && cf->nfqueue_on && (ipt || o->queue_via_iptables);
		want_chain[f][FWP_NAT] = on && ipt && cf->mode == CONFIG_MODE_REDIRECT;
		want_chain[f][FWP_MANGLE] = on && ipt && cf->mode == CONFIG_MODE_TPROXY;
		want_routing[f] = on && cf->mode == CONFIG_MODE_TPROXY;
		if (!on)
			fwp_note(p, f == FWP_V4
			    ? "no IPv4 listener in listen: IPv4 port 25 is not intercepted"
			    : "no IPv6 listener in listen: IPv6 port 25 is not intercepted");
	}
	if (o->backend == FW_BACKEND_NFT && o->queue_via_iptables && cf->nfqueue_on)
		fwp_note(p, "nft cannot load a queue rule here (kernel without nft_queue): "
		    "the NFQUEUE rule goes into iptables (table raw, chain " FW_IPT_CHAIN ")");

	/* Policy routing first: a mark with no route yet would be forwarded. */
	for (f = 0; f < FWP_NFAM; f++)
		if (want_routing[f])
			fwp_add_routing(&x, f);
	if (o->backend == FW_BACKEND_NFT) {
		char script[16384];
		struct fwp_sb sb = { script, sizeof script, 0, 0 };
		struct fw_step *s;
		int a;

		fwp_nft_script(&x, &sb);
		if (sb.overflow) {
			p->overflow = 1;
		} else if ((s = fwp_step(p, FW_STEP_RUN,
		    "replacing nft table inet " FW_NFT_TABLE)) != NULL) {
			a = fwp_begin(p);
			fwp_ws(p, "nft", "-f", "-", NULL);
			s->cmd[0] = fwp_end(p, a);
			s->input = fwp_str(p, script);
		}
	}
	for (f = 0; f < FWP_NFAM; f++)
		for (t = 0; t < FWP_NTABLE; t++)
			if (want_chain[f][t])
				fwp_ipt_chain(&x, f, t);

	/* What a previous up (other backend, mode, nfqueue or listen) may have left. */
	if (o->backend != FW_BACKEND_NFT)
		fwp_rm_nft(p);
	for (f = 0; f < FWP_NFAM; f++)
		for (t = 0; t < FWP_NTABLE; t++)
			if (!want_chain[f][t])
				fwp_rm_chain(p, f, t);
	for (f = 0; f < FWP_NFAM; f++)
		if (!want_routing[f])
			fwp_rm_routing(&x, f);
	if (p->overflow) {
		snprintf(err, errlen, "%s: the rules do not fit smtpwall-firewall's plan", cf->path);
		return -1;
	}
	return 0;
}

int
fw_plan_down(struct fw_plan *p)
{
	struct fwp x;
	int f, t;

	fwp_init(&x, p, NULL, NULL);
	fwp_rm_nft(p);
	for (f = 0; f < FWP_NFAM; f++)
		for (t = 0; t < FWP_NTABLE; t++)
			fwp_rm_chain(p, f, t);
	for (f = 0; f < FWP_NFAM; f++)
		fwp_rm_routing(&x, f);
	return p->overflow ? -1 : 0;
}

/* ---- printing ---------------------------------------------------------------- */

/* A word as sh reads it back: bare when safe, else in single quotes. */
static void
fwp_print_word(const char *w, FILE *f)
{
	const char *c;
	int safe = *w != '\0';

	if (strcmp(w, "!") == 0) {
		fputs("!", f);
		return;
	}
	for (c = w; *c != '\0' && safe; c++)
		if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		    "_-./:=@%+,", *c) == NULL)
			safe = 0;
	if (safe) {
		fputs(w, f);
		return;
	}
	fputc('\'', f);
	for (c = w; *c != '\0'; c++) {
		if (*c == '\'')
			fputs("'\\''", f);
		else
			fputc(*c, f);
	}
	fputc('\'', f);
}

static void
fwp_print_argv(char *const *argv, FILE *f)
{
	for (; *argv != NULL; argv++) {
		fwp_print_word(*argv, f);
		if (argv[1] != NULL)
			fputc(' ', f);
	}
}

static void
fwp_print_check(const struct fw_plan *p, const struct fw_step *s, FILE *f)
{
	switch (s->check_how) {
	case FW_CHECK_STATUS:
		fwp_print_argv(fw_plan_argv(p, s->check), f);
		fputs(" >/dev/null 2>&1", f);
		break;
	case FW_CHECK_OUTPUT:
		fputs("[ -n \"$(", f);
		fwp_print_argv(fw_plan_argv(p, s->check), f);
		fputs(" 2>/dev/null)\" ]", f);
		break;
	case FW_CHECK_LINE:
		fwp_print_argv(fw_plan_argv(p, s->check), f);
		fputs(" 2>/dev/null | grep -Eq ", f);
		fprintf(f, "'^[0-9]+:[[:space:]]+%s[[:space:]]*$'", s->check_line);
		break;
	}
}

static void
fwp_print_cmds(const struct fw_plan *p, const struct fw_step *s, FILE *f, int with_input)
{
	int i;

	for (i = 0; i < FW_STEP_CMDS && s->cmd[i] != -1; i++) {
		if (i > 0)
			fputs(" && ", f);
		fwp_print_argv(fw_plan_argv(p, s->cmd[i]), f);
		if (i == 0 && s->input != NULL && with_input)
			fprintf(f, " <<'EOF'\n%sEOF", s->input);
	}
}

void
fw_step_print(const struct fw_plan *p, const struct fw_step *s, FILE *f, int with_input)
{
	switch (s->kind) {
	case FW_STEP_RUN:
		fwp_print_cmds(p, s, f, with_input);
		break;
	case FW_STEP_ENSURE:
		fwp_print_check(p, s, f);
		fputs(" || ", f);
		if (s->cmd[1] != -1)
			fputs("{ ", f);
		fwp_print_cmds(p, s, f, with_input);
		if (s->cmd[1] != -1)
			fputs("; }", f);
		break;
	case FW_STEP_REMOVE:
		fputs("while ", f);
		fwp_print_check(p, s, f);
		fputs("; do ", f);
		fwp_print_cmds(p, s, f, with_input);
		fputs(" || break; done", f);
		break;
	}
}

void
fw_plan_print(const struct fw_plan *p, FILE *f)
{
	unsigned i;

	for (i = 0; i < p->nsteps; i++) {
		fw_step_print(p, &p->steps[i], f, 1);
		fputc('\n', f);
	}
}

/* ---- names ------------------------------------------------------------------- */

const char *
fw_backend_name(enum fw_backend b)
{
	return b == FW_BACKEND_IPTABLES ? "iptables" : "nft";
}

int
fw_backend_parse(const char *s, enum fw_backend *b)
{
	if (strcmp(s, "nft") == 0 || strcmp(s, "nftables") == 0)
		*b = FW_BACKEND_NFT;
	else if (strcmp(s, "iptables") == 0)
		*b = FW_BACKEND_IPTABLES;
	else
		return -1;
	return 0;
}

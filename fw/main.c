/*
 * smtpwall-firewall: installs, removes and shows the netfilter rules and the
 * policy routing that send port 25 to smtpwalld (docs/smtpwall-firewall.8).
 *
 *   smtpwall-firewall up|down|show [-c FILE] [--backend nft|iptables] [-n]
 *
 * Owns main(): the options and commands (one table each; the usage is
 * generated from them), the configuration (config_load(): the daemon's own
 * parser and messages), the nft queue probe, the privilege check, and the
 * exit status: 0 ok; 1 a command failed (an up that failed is rolled back
 * with down first); 2 usage or configuration error. What is run is the
 * plan's (fw/plan.h); how it is run is fw/run.h's.
 */
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fw/plan.h"
#include "fw/run.h"
#include "proxy/config.h"

#define FWM_NAME	"smtpwall-firewall"
#define FWM_PREFIX	FWM_NAME ": "

enum { FWM_OK = 0, FWM_FAILED = 1, FWM_USAGE = 2 };

struct fwm {
	const char		*cmd;
	const char		*config;
	int			 backend_given;
	enum fw_backend		 backend;
	int			 dry_run;
};

enum fwm_opt_id { FWM_OPT_CONFIG, FWM_OPT_BACKEND, FWM_OPT_DRY_RUN, FWM_OPT_HELP };

static const struct fwm_opt {
	const char	*so, *lo;	/* "-c", "--config" */
	const char	*arg;		/* NULL: a flag */
	enum fwm_opt_id	 id;
	const char	*desc;
} fwm_opts[] = {
	{ "-c", "--config", "FILE", FWM_OPT_CONFIG,
	  "the configuration (default " CONFIG_DEFAULT_PATH "); only up reads it" },
	{ "-b", "--backend", "nft|iptables", FWM_OPT_BACKEND,
	  "where up installs the rules (default nft); down and show cover both" },
	{ "-n", "--dry-run", NULL, FWM_OPT_DRY_RUN,
	  "print what would be run, as a shell script; change nothing; no root needed" },
	{ "-h", "--help", NULL, FWM_OPT_HELP, "this help" },
};

static int fwm_up(struct fwm *);
static int fwm_down(struct fwm *);
static int fwm_show(struct fwm *);

static const struct fwm_cmd {
	const char	*name;
	int		(*run)(struct fwm *);
	const char	*desc;
} fwm_cmds[] = {
	{ "up", fwm_up, "install the rules the configuration asks for, replacing any previous install" },
	{ "down", fwm_down, "remove everything smtpwall-firewall installs, whatever the configuration says" },
	{ "show", fwm_show, "print what is installed" },
};

#define FWM_NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
fwm_usage(FILE *f, int full)
{
	size_t i;

	fprintf(f, "usage: " FWM_NAME " up|down|show [-c FILE] [--backend nft|iptables] [-n]\n");
	if (!full)
		return;
	fprintf(f, "\ncommands:\n");
	for (i = 0; i < FWM_NELEM(fwm_cmds); i++)
		fprintf(f, "  %-6s %s\n", fwm_cmds[i].name, fwm_cmds[i].desc);
	fprintf(f, "\noptions:\n");
	for (i = 0; i < FWM_NELEM(fwm_opts); i++) {
		char left[64];

		snprintf(left, sizeof left, "%s, %s%s%s", fwm_opts[i].so, fwm_opts[i].lo,
		    fwm_opts[i].arg ? " " : "", fwm_opts[i].arg ? fwm_opts[i].arg : "");
		fprintf(f, "  %-26s %s\n", left, fwm_opts[i].desc);
	}
	fprintf(f, "\nexit status: 0 ok; 1 a command failed (up then removes everything); "
	    "2 usage or configuration error\n"
	    "up, down and show need root (CAP_NET_ADMIN) unless -n is given.\n");
}

static int fwm_usage_error(const char *, ...) __attribute__((format(printf, 1, 2)));

static int
fwm_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, FWM_PREFIX);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fwm_usage(stderr, 0);
	return FWM_USAGE;
}

/* Options anywhere; exactly one command word. -1 usage error (reported), 1 help, 0 ok. */
static int
fwm_args(struct fwm *m, int argc, char **argv)
{
	int i;
	size_t k;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq;
		const struct fwm_opt *o = NULL;

		if (a[0] != '-' || strcmp(a, "-") == 0) {
			if (m->cmd != NULL)
				return fwm_usage_error("one command only, '%s' is one too many", a), -1;
			m->cmd = a;
			continue;
		}
		if (strcmp(a, "--") == 0)
			return fwm_usage_error("'%s' is not an option", a), -1;
		eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
		for (k = 0; k < FWM_NELEM(fwm_opts); k++) {
			size_t n = eq ? (size_t)(eq - a) : strlen(a);

			if ((strlen(fwm_opts[k].lo) == n && strncmp(a, fwm_opts[k].lo, n) == 0) ||
			    strcmp(a, fwm_opts[k].so) == 0) {
				o = &fwm_opts[k];
				break;
			}
			/* -cFILE */
			if (fwm_opts[k].arg && strncmp(a, fwm_opts[k].so, 2) == 0 && a[2] != '\0' &&
			    a[1] != '-') {
				o = &fwm_opts[k];
				val = a + 2;
				break;
			}
		}
		if (o == NULL)
			return fwm_usage_error("unknown option '%s'", a), -1;
		if (o->arg != NULL && val == NULL) {
			if (eq != NULL)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return fwm_usage_error("%s needs a value", o->lo), -1;
		} else if (o->arg == NULL && eq != NULL) {
			return fwm_usage_error("%s takes no value", o->lo), -1;
		}
		switch (o->id) {
		case FWM_OPT_CONFIG:
			if (*val == '\0')
				return fwm_usage_error("--config needs a file name"), -1;
			m->config = val;
			break;
		case FWM_OPT_BACKEND:
			if (fw_backend_parse(val, &m->backend) == -1)
				return fwm_usage_error("unknown backend '%s': expected nft or iptables",
				    val), -1;
			m->backend_given = 1;
			break;
		case FWM_OPT_DRY_RUN:
			m->dry_run = 1;
			break;
		case FWM_OPT_HELP:
			return 1;
		}
	}
	if (m->cmd == NULL)
		return fwm_usage_error("no command: expected up, down or show"), -1;
	return 0;
}

/* Root, or CAP_NET_ADMIN in the effective set (a systemd unit without root). */
static int
fwm_privileged(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (geteuid() == 0)
		return 1;
	memset(d, 0, sizeof d);
	if (syscall(SYS_capget, &h, d) == -1)
		return 0;
	return (d[CAP_NET_ADMIN / 32].effective & (1u << (CAP_NET_ADMIN % 32))) != 0;
}

static int
fwm_need_privilege(const struct fwm *m)
{
	if (fwm_privileged())
		return 0;
	fprintf(stderr, FWM_PREFIX "%s: needs root (CAP_NET_ADMIN); -n shows what it would do\n",
	    m->cmd);
	return -1;
}

/*
 * Can nft load the queue rule? `nft -c` sends the transaction to the kernel
 * and aborts it: a kernel without nft_queue answers "No such file or
 * directory" for the queue expression. 1 yes; 0 no; -1 unknown (nft not
 * found, or not allowed to ask: -n without root).
 */
static int
fwm_nft_can_queue(const struct config *cf)
{
	char script[1024];
	char *argv[] = { "nft", "-c", "-f", "-", NULL };
	struct fw_res r;
	int ok;

	if (fw_probe_script(cf, script, sizeof script) == -1)
		return -1;
	if (fw_run(argv, script, &r) == -1 || r.status == -1) {
		if (r.status == -1)
			fw_res_free(&r);
		return -1;
	}
	if (r.status == 0)
		ok = 1;
	else if (strstr(r.err, "Operation not permitted") != NULL)
		ok = -1;
	else
		ok = 0;
	fw_res_free(&r);
	return ok;
}

static int
fwm_down_exec(FILE *errf)
{
	struct fw_plan *p = fw_plan_new();
	unsigned failed;

	if (p == NULL || fw_plan_down(p) == -1) {
		fprintf(errf, FWM_PREFIX "down: %s\n", strerror(ENOMEM));
		free(p);
		return FWM_FAILED;
	}
	failed = fw_exec(p, 1, errf);
	free(p);
	return failed ? FWM_FAILED : FWM_OK;
}

static int
fwm_up(struct fwm *m)
{
	struct fw_opts o = { m->backend, 0 };
	char err[FW_ERR_LEN];
	struct fw_plan *p;
	struct config cf;
	unsigned i;
	int nerr, rc;

	if (!m->dry_run && fwm_need_privilege(m) == -1)
		return FWM_FAILED;
	nerr = config_load(&cf, m->config, stderr);
	if (nerr != 0) {
		fprintf(stderr, FWM_PREFIX "%s: %d error%s: nothing changed\n", m->config, nerr,
		    nerr == 1 ? "" : "s");
		config_free(&cf);
		return FWM_USAGE;
	}
	if (o.backend == FW_BACKEND_NFT && cf.nfqueue_on) {
		int q = fwm_nft_can_queue(&cf);

		if (q == 0)
			o.queue_via_iptables = 1;
		else if (q == -1 && m->dry_run)
			fprintf(stderr, FWM_PREFIX "could not ask nft whether it can load a queue "
			    "rule (not root?): assuming it can; up checks for real\n");
	}
	if ((p = fw_plan_new()) == NULL) {
		fprintf(stderr, FWM_PREFIX "%s\n", strerror(errno));
		config_free(&cf);
		return FWM_FAILED;
	}
	if (fw_plan_up(p, &cf, &o, err, sizeof err) == -1) {
		fprintf(stderr, FWM_PREFIX "%s\n", err);
		free(p);
		config_free(&cf);
		return FWM_USAGE;
	}
	config_free(&cf);
	for (i = 0; i < p->nnotes; i++)
		fprintf(stderr, FWM_PREFIX "note: %s\n", p->notes[i]);
	if (m->dry_run) {
		printf("# " FWM_NAME " up: backend %s, from %s\n", fw_backend_name(o.backend),
		    m->config);
		fw_plan_print(p, stdout);
		free(p);
		return FWM_OK;
	}
	rc = FWM_OK;
	if (fw_exec(p, 0, stderr) != 0) {
		fprintf(stderr, FWM_PREFIX "up failed: removing everything (down)\n");
		if (fwm_down_exec(stderr) != FWM_OK)
			fprintf(stderr, FWM_PREFIX "down after the failed up failed too: "
			    "check with `" FWM_NAME " show`\n");
		rc = FWM_FAILED;
	}
	free(p);
	return rc;
}

static int
fwm_down(struct fwm *m)
{
	if (m->dry_run) {
		struct fw_plan *p = fw_plan_new();

		if (p == NULL || fw_plan_down(p) == -1) {
			free(p);
			fprintf(stderr, FWM_PREFIX "%s\n", strerror(ENOMEM));
			return FWM_FAILED;
		}
		printf("# " FWM_NAME " down\n");
		fw_plan_print(p, stdout);
		free(p);
		return FWM_OK;
	}
	if (fwm_need_privilege(m) == -1)
		return FWM_FAILED;
	return fwm_down_exec(stderr);
}

/* ---- show ---------------------------------------------------------------------- */

/* Lines of text that contain `needle` (NULL: all), each to stdout. */
static void
fwm_print_lines(const char *text, size_t len, const char *needle)
{
	const char *p = text, *end = text + len, *e;

	while (p < end) {
		if ((e = memchr(p, '\n', (size_t)(end - p))) == NULL)
			e = end;
		if (needle == NULL || memmem(p, (size_t)(e - p), needle, strlen(needle)) != NULL)
			printf("%.*s\n", (int)(e - p), p);
		p = e + 1;
	}
}

/* Run argv quietly; its output when it exited 0, else NULL (free() it). */
static char *
fwm_query(char *const argv[], size_t *len)
{
	struct fw_res r;

	if (fw_run(argv, NULL, &r) == -1)
		return NULL;
	if (r.status != 0) {
		fw_res_free(&r);
		return NULL;
	}
	free(r.err);
	*len = r.outlen;
	return r.out;
}

static int
fwm_show(struct fwm *m)
{
	static char *const tools[] = { "iptables", "ip6tables" };
	static char *const tables[] = { "raw", "nat", "mangle" };
	static char *const fams[] = { "-4", "-6" };
	char mark[16], table[16], line[64];
	int shown = 0;
	size_t i, j, len;
	char *out;

	snprintf(mark, sizeof mark, "0x%x", (unsigned)CONFIG_FW_MARK);
	snprintf(table, sizeof table, "%d", CONFIG_FW_TABLE);
	snprintf(line, sizeof line, "from all fwmark %s lookup %s", mark, table);
	if (m->dry_run) {
		printf("# " FWM_NAME " show runs, and prints what exits 0:\n"
		    "nft list table inet " FW_NFT_TABLE "\n");
		for (i = 0; i < 2; i++)
			for (j = 0; j < 3; j++)
				printf("%s -w -t %s -S PREROUTING -v | grep -- '-j " FW_IPT_CHAIN "'; "
				    "%s -w -t %s -S " FW_IPT_CHAIN " -v\n", tools[i], tables[j],
				    tools[i], tables[j]);
		for (i = 0; i < 2; i++)
			printf("ip %s -N rule show fwmark %s lookup %s\n", fams[i], mark, table);
		for (i = 0; i < 2; i++)
			printf("ip %s route show table %s\n", fams[i], table);
		return FWM_OK;
	}
	if (fwm_need_privilege(m) == -1)
		return FWM_FAILED;
	{
		char *argv[] = { "nft", "list", "table", "inet", FW_NFT_TABLE, NULL };

		if ((out = fwm_query(argv, &len)) != NULL) {
			printf("# nft list table inet " FW_NFT_TABLE "\n");
			fwm_print_lines(out, len, NULL);
			shown = 1;
			free(out);
		}
	}
	for (i = 0; i < 2; i++) {
		for (j = 0; j < 3; j++) {
			char *chain[] = { tools[i], "-w", "-t", tables[j], "-S",
			    FW_IPT_CHAIN, "-v", NULL };
			char *pre[] = { tools[i], "-w", "-t", tables[j], "-S",
			    "PREROUTING", "-v", NULL };
			char *jumps;
			size_t jlen = 0;

			if ((out = fwm_query(chain, &len)) == NULL)
				continue;
			printf("%s# %s -t %s\n", shown ? "\n" : "", tools[i], tables[j]);
			if ((jumps = fwm_query(pre, &jlen)) != NULL) {
				fwm_print_lines(jumps, jlen, "-j " FW_IPT_CHAIN);
				free(jumps);
			}
			fwm_print_lines(out, len, NULL);
			shown = 1;
			free(out);
		}
	}
	for (i = 0; i < 2; i++) {
		char *argv[] = { "ip", fams[i], "-N", "rule", "show", "fwmark", mark,
		    "lookup", table, NULL };
		struct fw_step chk = { .check_how = FW_CHECK_LINE, .check_line = line };
		struct fw_res r;

		if (fw_run(argv, NULL, &r) == -1)
			continue;
		if (fw_check_present(&chk, &r)) {
			printf("%s# ip %s rule\n", shown ? "\n" : "", fams[i]);
			fwm_print_lines(r.out, r.outlen, line);
			shown = 1;
		}
		fw_res_free(&r);
	}
	/* Table 2525 as a whole (what marked packets are routed by), when our route is in it. */
	for (i = 0; i < 2; i++) {
		char *argv[] = { "ip", fams[i], "route", "show", "table", table, NULL };
		char *ours[] = { "ip", fams[i], "route", "show", "table", table, "type", "local",
		    "exact", i == 0 ? "0.0.0.0/0" : "::/0", "dev", "lo", NULL };
		char *mine;
		size_t mlen = 0;

		if ((mine = fwm_query(ours, &mlen)) == NULL)
			continue;
		free(mine);
		if (mlen == 0 || (out = fwm_query(argv, &len)) == NULL)
			continue;
		if (len > 0) {
			printf("%s# ip %s route show table %s\n", shown ? "\n" : "", fams[i], table);
			fwm_print_lines(out, len, NULL);
			shown = 1;
		}
		free(out);
	}
	if (!shown)
		printf(FWM_PREFIX "nothing installed\n");
	return FWM_OK;
}

int
main(int argc, char **argv)
{
	struct fwm m = { NULL, CONFIG_DEFAULT_PATH, 0, FW_BACKEND_NFT, 0 };
	size_t i;
	int r;

	signal(SIGPIPE, SIG_IGN);	/* a command that stops reading its stdin is an error, not a death */
	r = fwm_args(&m, argc, argv);
	if (r == -1)
		return FWM_USAGE;
	if (r == 1) {
		fwm_usage(stdout, 1);
		return FWM_OK;
	}
	for (i = 0; i < FWM_NELEM(fwm_cmds); i++)
		if (strcmp(m.cmd, fwm_cmds[i].name) == 0)
			break;
	if (i == FWM_NELEM(fwm_cmds))
		return fwm_usage_error("unknown command '%s': expected up, down or show", m.cmd);
	r = fwm_cmds[i].run(&m);
	if (fflush(stdout) == EOF && r == FWM_OK)
		r = FWM_FAILED;
	return r;
}

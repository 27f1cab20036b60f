/*
 * live.c: rule changes, reload and expiry of the running daemon (see live.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "admit.h"
#include "captures.h"
#include "live.h"
#include "log.h"
#include "persist.h"

#define LIVE_EXPIRY_MAX_MS	(3600 * 1000)	/* re-check at least hourly (clock changes) */

struct ruleset *
live_rules_current(void *arg)
{
	struct proxy *px = arg;

	return px_rules(px);	/* any worker thread */
}

static void
live_expire(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct proxy *px = arg;
	struct ruleset *rs;
	size_t n = 0;

	(void)loop;
	(void)t;
	if ((rs = rules_expire(persist_latest(px), time(NULL), &n)) == NULL) {
		log_warnx("rules: expiry: out of memory; retrying");
		ev_timer_set(px->loop, &px->expiry_timer, 1000, live_expire, px);
		return;
	}
	if (n == 0) {
		rules_unref(rs);
		live_expiry_arm(px);
		return;
	}
	/*
	 * Expired rules already match nothing; this removes them from the
	 * file. When it is written, persist.c re-arms this timer.
	 */
	log_info("rules: %zu expired rules removed", n);
	if (persist_submit(px, rs, NULL, NULL) == -1)
		ev_timer_set(px->loop, &px->expiry_timer, 1000, live_expire, px);
}

void
live_expiry_arm(struct proxy *px)
{
	/* The newest ruleset: one whose expired rules are already queued for removal must not fire again. */
	time_t next = rules_next_expiry(persist_latest(px)), now = time(NULL);
	uint64_t ms;

	if (next == 0) {
		ev_timer_cancel(px->loop, &px->expiry_timer);
		return;
	}
	ms = next <= now ? 0 : (uint64_t)(next - now) * 1000;
	if (ms > LIVE_EXPIRY_MAX_MS)
		ms = LIVE_EXPIRY_MAX_MS;
	ev_timer_set(px->loop, &px->expiry_timer, ms, live_expire, px);
}

/* Settings a running daemon cannot take over: they are kept, and said so. */
static void
live_keep_restart_only(struct proxy *px, struct pxconf *nc, FILE *out)
{
	struct config *old = &px->conf->cf, *cf = &nc->cf;

	if (old->nlisten != cf->nlisten ||
	    memcmp(old->listen, cf->listen, sizeof(old->listen)) != 0)
		fprintf(out, "note: listen changed; it takes effect at the next restart\n");
	if (strcmp(old->control_socket, cf->control_socket) != 0 ||
	    strcmp(old->control_group, cf->control_group) != 0)
		fprintf(out, "note: control_socket/control_group changed; they take effect at the next restart\n");
	if (old->workers != cf->workers)
		fprintf(out, "note: workers changed; it takes effect at the next restart\n");
	if (old->mode != cf->mode)
		fprintf(out, "note: mode changed; it takes effect at the next restart "
		    "(and smtpwall-firewall up)\n");
	if (old->nfqueue_on != cf->nfqueue_on || old->nfqueue_first != cf->nfqueue_first ||
	    old->nfqueue_last != cf->nfqueue_last || old->nfqueue_fail != cf->nfqueue_fail)
		fprintf(out, "note: nfqueue/nfqueue_fail changed; they take effect at the next restart "
		    "(and smtpwall-firewall up)\n");
	memcpy(cf->listen, old->listen, sizeof(cf->listen));
	memcpy(cf->listen_len, old->listen_len, sizeof(cf->listen_len));
	cf->nlisten = old->nlisten;
	memcpy(cf->control_socket, old->control_socket, sizeof(cf->control_socket));
	memcpy(cf->control_group, old->control_group, sizeof(cf->control_group));
	cf->workers = old->workers;
	cf->mode = old->mode;
	cf->nfqueue_on = old->nfqueue_on;
	cf->nfqueue_first = old->nfqueue_first;
	cf->nfqueue_last = old->nfqueue_last;
	cf->nfqueue_fail = old->nfqueue_fail;
}

static int
live_reload_files(struct proxy *px, FILE *out)
{
	struct pxconf *nc;
	struct ruleset *rs;
	char *msg = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *mf;
	int nerr = 0;

	if (persist_busy(px)) {
		log_warnx("reload refused: a rule change is being written");
		if (out != NULL)
			fprintf(out, "a rule change is being written; try again\n");
		return 1;
	}
	if ((mf = open_memstream(&msg, &len)) == NULL) {
		log_warn("reload");
		if (out != NULL)
			fprintf(out, "%s: %s\n", px->conf_path, strerror(errno));
		return 1;
	}
	nc = pxconf_load(px->conf_path, px->hostname, live_rules_current, px, mf, &nerr);
	rs = NULL;
	if (nc != NULL) {
		rs = rulesfile_load(nc->cf.rules_file, mf, &nerr);
		if (rs == NULL) {
			pxconf_unref(nc);
			nc = NULL;
		}
	}
	if (nc != NULL)
		live_keep_restart_only(px, nc, mf);
	fclose(mf);

	for (line = strtok_r(msg, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (out != NULL)
			fprintf(out, "%s\n", line);
		if (nc == NULL)
			log_error("reload refused, nothing changed: %s", line);
		else
			log_info("reload: %s", line);
	}
	free(msg);
	if (nc == NULL)
		return nerr ? nerr : 1;

	px_swap(px, nc, rs);
	capt_reconf(px);
	admit_update(px);
	if (!px->debug)
		log_set_level((enum log_level)nc->cf.log_level);
	live_expiry_arm(px);
	PX_STAT_ADD(px, reloads, 1);
	log_info("reload config=%s rules=%zu file=%s", px->conf_path, rules_count(rs),
	    nc->cf.rules_file);
	return 0;
}

/* Reload, with systemd told (RELOADING=1 ... READY=1) whichever way it was asked for. */
int
live_reload(struct proxy *px, FILE *out)
{
	int nerr;

	(void)sd_notify(0, "RELOADING=1");
	nerr = live_reload_files(px, out);
	(void)sd_notify(0, "READY=1");
	return nerr;
}

/*
 * main.c: smtpwalld, the composition root.
 *
 * Reads the configuration and the rules file, builds the one struct proxy,
 * opens the listeners and the control socket, and runs the event loop.
 * Signals arrive through a signalfd in the loop: SIGTERM/SIGINT stop
 * accepting and give open sessions shutdown_timeout seconds, SIGHUP is
 * `reload` (configuration and rules; a file with an error changes nothing).
 *
 *   smtpwalld [-c FILE] [-t] [-d]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "admit.h"
#include "captures.h"
#include "climap.h"
#include "conf.h"
#include "control.h"
#include "ev.h"
#include "live.h"
#include "log.h"
#include "persist.h"
#include "proxy.h"
#include "rulesfile.h"
#include "session.h"
#include "sock.h"
#include "worker.h"

static void
px_usage(void)
{
	fprintf(stderr, "usage: smtpwalld [-c FILE] [-t] [-d]\n"
	    "  -c FILE  configuration (default " CONFIG_DEFAULT_PATH ")\n"
	    "  -t       check the configuration and the rules file, then exit\n"
	    "  -d       debug log\n");
	exit(2);
}

/* ---- signals, readiness ------------------------------------------------------- */

static void
px_stop_check(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct proxy *px = arg;

	(void)t;
	if (px_nsessions(px) == 0) {
		ev_stop(loop);
		return;
	}
	if (ev_now(loop) >= px->shutdown_deadline) {
		log_info("shutdown: %u sessions still open after %us; closing them with 421",
		    px_nsessions(px), px->conf->cf.shutdown_timeout);
		workers_each(px, sess_shutdown_all, NULL);
		ev_stop(loop);
		return;
	}
	ev_timer_set(loop, &px->shutdown_timer, 100, px_stop_check, px);
}

static void
px_begin_shutdown(struct proxy *px)
{
	if (px->stopping)
		return;
	px->stopping = 1;
	(void)sd_notify(0, "STOPPING=1");
	log_info("shutdown: no new sessions; %u open, waiting up to %us", px_nsessions(px),
	    px->conf->cf.shutdown_timeout);
	workers_stop_accepting(px);
	px->shutdown_deadline = ev_now(px->loop) + px->conf->cf.shutdown_timeout * 1000ull;
	ev_timer_set(px->loop, &px->shutdown_timer, 0, px_stop_check, px);
}

static void
px_signal_cb(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	struct proxy *px = arg;
	struct signalfd_siginfo si;

	(void)loop;
	(void)events;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			px_begin_shutdown(px);
			break;
		case SIGHUP:
			(void)live_reload(px, NULL);	/* its outcome is logged */
			break;
		default:
			break;
		}
	}
}

static int
px_signals(struct proxy *px)
{
	sigset_t set;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		return -1;
	return ev_add(px->loop, fd, EV_READ, px_signal_cb, px);
}

/* As many descriptors as the hard limit allows: two per session. */
static int
px_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 1024;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur > 1u << 20 ? 1 << 20 : (int)rl.rlim_cur;
}

int
main(int argc, char *argv[])
{
	static struct proxy px;
	const char *path = CONFIG_DEFAULT_PATH;
	char err[256];
	int ch, check = 0, nerr, rerr = 0;
	uint64_t rnd = 0;

	while ((ch = getopt(argc, argv, "c:tdh")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'd':
			px.debug = 1;
			break;
		default:
			px_usage();
		}
	}
	if (optind != argc)
		px_usage();

	log_init(LOG_LVL_INFO);
	if (gethostname(px.hostname, sizeof(px.hostname) - 1) == -1 || !px.hostname[0])
		strcpy(px.hostname, "smtpwall");
	px.conf_path = path;
	pthread_mutex_init(&px.mu, NULL);
	px.conf = pxconf_load(path, px.hostname, live_rules_current, &px, stderr, &nerr);
	if (px.conf != NULL)
		px.rules = rulesfile_load(px.conf->cf.rules_file, stderr, &rerr);
	nerr += rerr;
	if (check) {
		if (nerr == 0)
			fprintf(stderr, "%s: configuration and rules are valid (%zu rules)\n",
			    path, rules_count(px.rules));
		return nerr ? 1 : 0;
	}
	if (nerr)
		return 1;
	log_set_level(px.debug ? LOG_LVL_DEBUG : (enum log_level)px.conf->cf.log_level);

	/* Session ids: a random high half per process, a counter below. */
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
	px.id_base = rnd & 0xffffffff00000000ull;
	px.stats.started = time(NULL);
	if ((px.clients = climap_new()) == NULL)
		fatal("climap_new");
	if ((px.loop = ev_loop_new(px_raise_nofile())) == NULL)
		fatal("ev_loop_new");
	if (px_signals(&px) == -1)
		fatal("signals");
	if (capt_init(&px) == -1)
		fatal("capt_init");
	buf_pool_enable();
	if (workers_open(&px, workers_count(px.conf->cf.workers), err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (persist_start(&px) == -1)
		fatal("rules writer thread");
	if (ctl_open(&px, err) == -1)
		fatalx("%s", err);
	if (admit_start(&px, err, sizeof(err)) == -1)
		fatalx("%s", err);
	live_expiry_arm(&px);
	if (workers_start(&px, err, sizeof(err)) == -1)
		fatalx("%s", err);
	log_info("ready rules=%zu local_domains=%zu trusted_networks=%zu control=%s",
	    rules_count(px.rules), rules_domainset_count(px.conf->cf.local_domains),
	    rules_cidrset_count(px.conf->cf.trusted_networks), px.conf->cf.control_socket);
	(void)sd_notify(0, "READY=1");

	if (ev_run(px.loop) == -1)
		log_warn("event loop");
	workers_free(&px);	/* their sessions are closed: px_stop_check */
	log_info("stopped");
	admit_stop(&px);	/* unbound: the kernel applies nfqueue_fail from here */
	capt_free(&px);		/* capture files are closed complete */
	persist_stop(&px);	/* a write in flight completes first */
	ctl_close(&px);
	rules_unref(px.rules);
	climap_free(px.clients);
	ev_loop_free(px.loop);
	pxconf_unref(px.conf);
	pthread_mutex_destroy(&px.mu);
	buf_pool_drain();
	return 0;
}

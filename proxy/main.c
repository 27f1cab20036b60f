/*
 * main.c: smtpwalld, the composition root.
 *
 * Reads the configuration and the rules file, builds the one struct proxy,
 * opens the listeners, and runs the event loop. Signals arrive through a
 * signalfd in the loop: SIGTERM/SIGINT stop accepting and give open sessions
 * shutdown_timeout seconds, SIGHUP re-reads the rules file (a file with an
 * error changes nothing).
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
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "climap.h"
#include "config.h"
#include "ev.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "sock.h"

#define PX_RULES_MAX	(256u * 1024 * 1024)	/* a rules file larger than this is refused */

static void
px_usage(void)
{
	fprintf(stderr, "usage: smtpwalld [-c FILE] [-t] [-d]\n"
	    "  -c FILE  configuration (default " CONFIG_DEFAULT_PATH ")\n"
	    "  -t       check the configuration and the rules file, then exit\n"
	    "  -d       debug log\n");
	exit(2);
}

/* ---- the rules file ------------------------------------------------------------ */

struct px_rules_err {
	const char	*path;
	FILE		*out;
	int		 count;
};

static void
px_rules_err(void *arg, unsigned line, const char *msg)
{
	struct px_rules_err *e = arg;

	fprintf(e->out, "%s:%u: %s\n", e->path, line, msg);
	e->count++;
}

/*
 * Read and parse the rules file. A file that does not exist yet is an empty
 * ruleset (the daemon creates it on the first change). NULL on error, every
 * error written to errf as "FILE:LINE: message".
 */
static struct ruleset *
px_rules_load(const char *path, FILE *errf)
{
	struct px_rules_err e = { path, errf, 0 };
	struct ruleset *rs;
	struct stat st;
	char *text;
	ssize_t n;
	size_t got = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return rules_empty();
		fprintf(errf, "%s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || (size_t)st.st_size > PX_RULES_MAX) {
		fprintf(errf, "%s: %s\n", path, errno ? strerror(errno) : "file too large");
		close(fd);
		return NULL;
	}
	if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
		fprintf(errf, "%s: out of memory\n", path);
		close(fd);
		return NULL;
	}
	while (got < (size_t)st.st_size &&
	    (n = read(fd, text + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	rs = rules_parse(text, got, px_rules_err, &e);
	free(text);
	if (rs == NULL && e.count == 0)
		fprintf(errf, "%s: out of memory\n", path);
	return rs;
}

static struct ruleset *
px_rules_current(void *arg)
{
	struct proxy *px = arg;

	return rules_ref(px->rules);
}

/* SIGHUP: swap in the new ruleset only if the whole file is valid. */
static void
px_reload_rules(struct proxy *px)
{
	char *msg = NULL;
	size_t len = 0;
	FILE *mf = open_memstream(&msg, &len);
	struct ruleset *rs;

	if (mf == NULL) {
		log_warn("reload");
		return;
	}
	rs = px_rules_load(px->cf->rules_file, mf);
	fclose(mf);
	if (rs == NULL) {
		char *line, *save = NULL;

		for (line = strtok_r(msg, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			log_error("reload refused, rules unchanged: %s", line);
	} else {
		rules_unref(px->rules);
		px->rules = rs;
		log_info("reload rules=%zu file=%s", rules_count(rs), px->cf->rules_file);
	}
	free(msg);
}

/* ---- features this build does not have yet ---------------------------------- */

static int
px_check_supported(const struct config *cf, FILE *errf)
{
	int bad = 0;

	if (cf->mode == CONFIG_MODE_TPROXY) {
		fprintf(errf, "%s: mode = tproxy is not supported by this version; use redirect\n",
		    cf->path);
		bad++;
	}
	if (cf->nfqueue_on) {
		fprintf(errf, "%s: nfqueue is not supported by this version; set nfqueue = off\n",
		    cf->path);
		bad++;
	}
	if (cf->client_rate) {
		fprintf(errf, "%s: client_rate needs nfqueue, which this version does not support\n",
		    cf->path);
		bad++;
	}
	if (cf->xclient) {
		fprintf(errf, "%s: xclient = on is not supported by this version\n", cf->path);
		bad++;
	}
	return bad;
}

/* ---- signals, readiness ------------------------------------------------------- */

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void
px_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    (len = strlen(path)) >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, path, len);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	(void)sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	close(fd);
}

static void
px_stop_check(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct proxy *px = arg;

	(void)t;
	if (px->nsessions == 0) {
		ev_stop(loop);
		return;
	}
	if (ev_now(loop) >= px->shutdown_deadline) {
		log_info("shutdown: %u sessions still open after %us; closing them with 421",
		    px->nsessions, px->cf->shutdown_timeout);
		sess_shutdown_all(px);
		ev_stop(loop);
		return;
	}
	ev_timer_set(loop, &px->shutdown_timer, 100, px_stop_check, px);
}

static void
px_begin_shutdown(struct proxy *px)
{
	unsigned i;

	if (px->stopping)
		return;
	px->stopping = 1;
	px_notify("STOPPING=1");
	log_info("shutdown: no new sessions; %u open, waiting up to %us", px->nsessions,
	    px->cf->shutdown_timeout);
	for (i = 0; i < px->nlisten; i++) {
		ev_del(px->loop, px->listen_fd[i]);
		close(px->listen_fd[i]);
	}
	px->nlisten = 0;
	ev_timer_cancel(px->loop, &px->accept_timer);
	px->shutdown_deadline = ev_now(px->loop) + px->cf->shutdown_timeout * 1000ull;
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
			px_notify("RELOADING=1");
			px_reload_rules(px);
			px_notify("READY=1");
			break;
		default:
			break;
		}
	}
}

static void
px_accept_cb(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)events;
	sess_accept(arg, fd);
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

static void
px_listen(struct proxy *px)
{
	char err[SOCK_ERR_LEN], addr[SOCK_ADDR_LEN];
	unsigned i;
	int fd;

	for (i = 0; i < px->cf->nlisten; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&px->cf->listen[i];

		if ((fd = sock_listen(sa, px->cf->listen_len[i], err)) == -1)
			fatalx("%s", err);
		if (ev_add(px->loop, fd, EV_READ, px_accept_cb, px) == -1)
			fatal("ev_add");
		px->listen_fd[px->nlisten++] = fd;
		log_info("listening on %s", sock_addr_str(sa, addr));
	}
}

int
main(int argc, char *argv[])
{
	static struct config cf;
	static struct proxy px;
	const char *path = CONFIG_DEFAULT_PATH;
	int ch, check = 0, debug = 0, nerr;
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
			debug = 1;
			break;
		default:
			px_usage();
		}
	}
	if (optind != argc)
		px_usage();

	log_init(LOG_LVL_INFO);
	nerr = config_load(&cf, path, stderr);
	if (nerr == 0)
		nerr += px_check_supported(&cf, stderr);
	if (nerr == 0 && (px.rules = px_rules_load(cf.rules_file, stderr)) == NULL)
		nerr++;
	if (check) {
		if (nerr == 0)
			fprintf(stderr, "%s: configuration and rules are valid (%zu rules)\n",
			    path, rules_count(px.rules));
		return nerr ? 1 : 0;
	}
	if (nerr)
		return 1;
	log_set_level(debug ? LOG_LVL_DEBUG : (enum log_level)cf.log_level);

	px.cf = &cf;
	px.policy.trusted = cf.trusted_networks;
	px.policy.local_domains = cf.local_domains;
	px.policy.auth_relay = cf.auth_relay;
	if (gethostname(px.hostname, sizeof(px.hostname) - 1) == -1 || !px.hostname[0])
		strcpy(px.hostname, "smtpwall");
	px.fsmconf = (struct smtp_fsm_conf){
		.policy = &px.policy,
		.rules = px_rules_current,
		.rules_arg = &px,
		.commands = (const char (*)[16])cf.commands,
		.ncommands = cf.ncommands,
		.max_message_size = cf.max_message_size,
		.max_recipients = cf.max_recipients,
		.max_line_length = cf.max_line_length,
		.bare_lf = cf.bare_lf == CONFIG_BARE_LF_NORMALIZE ?
		    SMTP_DATA_NORMALIZE : SMTP_DATA_REJECT,
		.hostname = px.hostname,
	};
	/* Session ids: a random high half per process, a counter below. */
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
	px.id_base = rnd & 0xffffffff00000000ull;
	if ((px.clients = climap_new()) == NULL)
		fatal("climap_new");
	if ((px.loop = ev_loop_new(px_raise_nofile())) == NULL)
		fatal("ev_loop_new");
	if (px_signals(&px) == -1)
		fatal("signals");
	px_listen(&px);
	if (cf.workers > 1)
		log_info("workers = %u: this version runs one event loop", cf.workers);
	log_info("ready rules=%zu local_domains=%zu trusted_networks=%zu",
	    rules_count(px.rules), rules_domainset_count(cf.local_domains),
	    rules_cidrset_count(cf.trusted_networks));
	px_notify("READY=1");

	if (ev_run(px.loop) == -1)
		log_warn("event loop");
	log_info("stopped");
	rules_unref(px.rules);
	climap_free(px.clients);
	ev_loop_free(px.loop);
	config_free(&cf);
	return 0;
}

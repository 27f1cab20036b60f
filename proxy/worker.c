/*
 * worker.c: the session event loops and their threads (see worker.h).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "sock.h"
#include "worker.h"

unsigned
workers_count(unsigned configured)
{
	cpu_set_t set;
	int n;

	if (configured != 0)
		n = (int)configured;
	else if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	else
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX : (unsigned)n;
}

unsigned
worker_nsessions(const struct worker *w)
{
	return __atomic_load_n(&w->nsessions, __ATOMIC_RELAXED);
}

uint64_t
worker_sessions_total(const struct worker *w)
{
	return __atomic_load_n(&w->sessions_total, __ATOMIC_RELAXED);
}

/* ---- calls from the main thread ------------------------------------------------ */

static void
worker_call_cb(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	struct worker *w = arg;
	worker_fn *fn;
	uint64_t n;

	(void)loop;
	(void)events;
	if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		log_warn("worker %u: call channel", w->id);
	pthread_mutex_lock(&w->call_mu);
	fn = w->call_fn;
	w->call_fn = NULL;
	pthread_mutex_unlock(&w->call_mu);
	if (fn == NULL)
		return;
	fn(w, w->call_arg);
	pthread_mutex_lock(&w->call_mu);
	w->call_done = 1;
	pthread_cond_signal(&w->call_cv);
	pthread_mutex_unlock(&w->call_mu);
}

void
worker_call(struct worker *w, worker_fn *fn, void *arg)
{
	uint64_t one = 1;

	if (!w->running) {		/* worker 0, or a thread not started: this thread's own */
		fn(w, arg);
		return;
	}
	pthread_mutex_lock(&w->call_mu);
	w->call_fn = fn;
	w->call_arg = arg;
	w->call_done = 0;
	pthread_mutex_unlock(&w->call_mu);
	while (write(w->call_fd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
	pthread_mutex_lock(&w->call_mu);
	while (!w->call_done)
		pthread_cond_wait(&w->call_cv, &w->call_mu);
	pthread_mutex_unlock(&w->call_mu);
}

void
workers_each(struct proxy *px, worker_fn *fn, void *arg)
{
	unsigned i;

	for (i = 0; i < px->nworkers; i++)
		worker_call(&px->workers[i], fn, arg);
}

/* ---- listeners ------------------------------------------------------------------- */

static void
worker_accept_cb(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)events;
	sess_accept(arg, fd);
}

static int
worker_listen(struct worker *w, char *err, size_t errlen)
{
	const struct config *cf = &w->px->conf->cf;
	char serr[SOCK_ERR_LEN], addr[SOCK_ADDR_LEN];
	unsigned i;
	int fd;

	for (i = 0; i < cf->nlisten; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&cf->listen[i];

		if ((fd = sock_listen(sa, cf->listen_len[i], cf->mode == CONFIG_MODE_TPROXY,
		    serr)) == -1) {
			snprintf(err, errlen, "%s", serr);
			return -1;
		}
		if (ev_add(w->loop, fd, EV_READ, worker_accept_cb, w) == -1) {
			snprintf(err, errlen, "listen %s: event loop: %s", sock_addr_str(sa, addr),
			    strerror(errno));
			close(fd);
			return -1;
		}
		w->listen_idx[w->nlisten] = i;
		w->listen_fd[w->nlisten++] = fd;
	}
	return 0;
}

static void
worker_close_listeners(struct worker *w, void *arg)
{
	unsigned i;

	(void)arg;
	if (w->loop == NULL)
		return;
	for (i = 0; i < w->nlisten; i++) {
		ev_del(w->loop, w->listen_fd[i]);
		close(w->listen_fd[i]);
	}
	w->nlisten = 0;
	ev_timer_cancel(w->loop, &w->accept_timer);
}

void
workers_stop_accepting(struct proxy *px)
{
	workers_each(px, worker_close_listeners, NULL);
}

/* ---- life ------------------------------------------------------------------------- */

int
workers_open(struct proxy *px, unsigned n, char *err, size_t errlen)
{
	char addr[SOCK_ADDR_LEN], serr[SOCK_ERR_LEN];
	unsigned i;

	for (i = 0; i < px->conf->cf.nlisten; i++)
		if (sock_listen_probe((const struct sockaddr *)&px->conf->cf.listen[i],
		    px->conf->cf.listen_len[i], px->conf->cf.mode == CONFIG_MODE_TPROXY,
		    serr) == -1) {
			snprintf(err, errlen, "%s", serr);
			return -1;
		}
	if ((px->workers = calloc(n, sizeof(*px->workers))) == NULL) {
		snprintf(err, errlen, "workers: out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct worker *w = &px->workers[i];

		w->px = px;
		w->id = i;
		w->call_fd = -1;
		pthread_mutex_init(&w->call_mu, NULL);
		pthread_cond_init(&w->call_cv, NULL);
		px->nworkers++;
		/* one fd table for all: fd numbers are the process's, not a loop's */
		w->loop = i == 0 ? px->loop : ev_loop_new_sibling(px->loop);
		if (w->loop == NULL ||
		    (w->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1 ||
		    ev_add(w->loop, w->call_fd, EV_READ, worker_call_cb, w) == -1) {
			snprintf(err, errlen, "worker %u: %s", i, strerror(errno));
			return -1;
		}
		if (worker_listen(w, err, errlen) == -1)
			return -1;
	}
	for (i = 0; i < px->conf->cf.nlisten; i++)
		log_info("listening on %s (%u worker%s)",
		    sock_addr_str((const struct sockaddr *)&px->conf->cf.listen[i], addr), n,
		    n == 1 ? "" : "s");
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	buf_pool_enable();
	/* epoll_wait failing is a broken invariant: a dead worker would strand its sessions */
	if (ev_run(w->loop) == -1)
		fatal("worker %u: event loop", w->id);
	buf_pool_drain();
	return NULL;
}

int
workers_start(struct proxy *px, char *err, size_t errlen)
{
	unsigned i;
	int e;

	for (i = 1; i < px->nworkers; i++) {
		struct worker *w = &px->workers[i];

		/* Signals stay blocked in the thread (inherited): the main thread's signalfd takes them. */
		if ((e = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
			snprintf(err, errlen, "worker %u: thread: %s", i, strerror(e));
			return -1;
		}
		w->running = 1;
	}
	return 0;
}

static void
worker_stop_loop(struct worker *w, void *arg)
{
	(void)arg;
	ev_stop(w->loop);
}

void
workers_free(struct proxy *px)
{
	unsigned i;

	for (i = 0; i < px->nworkers; i++) {
		struct worker *w = &px->workers[i];

		if (w->running) {
			worker_call(w, worker_stop_loop, NULL);
			pthread_join(w->thread, NULL);
			w->running = 0;
		}
		worker_close_listeners(w, NULL);
		if (w->call_fd != -1) {
			if (w->loop != NULL)
				ev_del(w->loop, w->call_fd);
			close(w->call_fd);
		}
		if (i != 0)
			ev_loop_free(w->loop);
		pthread_cond_destroy(&w->call_cv);
		pthread_mutex_destroy(&w->call_mu);
	}
	free(px->workers);
	px->workers = NULL;
	px->nworkers = 0;
}

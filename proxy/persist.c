/*
 * persist.c: the rules file writer thread and its group commit (see persist.h).
 *
 * Shared between the loop and the thread, under the mutex: one job (the
 * ruleset and path to write) and its result. Everything else (batches,
 * waiters, px->rules) is touched by the loop only. The thread reports back
 * through an eventfd registered in the loop. Rulesets are immutable and
 * their reference counts atomic, so the thread may read and drop one while
 * the loop uses others that share its nodes.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "admit.h"
#include "live.h"
#include "log.h"
#include "persist.h"

struct persist_waiter {
	persist_done_fn		*done;
	void			*arg;
	struct persist_waiter	*next;
};

struct persist_batch {
	struct ruleset		*rs;		/* NULL: no batch */
	struct persist_waiter	*head, **tail;
};

struct persist {
	struct proxy		*px;
	pthread_t		 thread;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 efd;

	/* under mu */
	int			 stop;
	int			 job;		/* a job is handed to the thread */
	int			 job_done;
	struct ruleset		*job_rs;
	char			 job_path[PATH_MAX];
	int			 job_ok;
	char			 job_err[RULESFILE_ERR_LEN];

	/* loop only */
	int			 closing;	/* persist_stop() runs: no new submissions */
	struct persist_batch	 inflight;	/* being written */
	struct persist_batch	 queued;	/* the newest snapshot, written next */
};

static void *
persist_thread(void *arg)
{
	struct persist *p = arg;
	char path[PATH_MAX], err[RULESFILE_ERR_LEN];
	struct ruleset *rs;
	uint64_t one = 1;
	int ok;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->job && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->job)
			break;		/* stop, and nothing left to write */
		rs = p->job_rs;
		memcpy(path, p->job_path, sizeof(path));
		pthread_mutex_unlock(&p->mu);

		ok = rulesfile_save(path, rs, err) == 0;

		pthread_mutex_lock(&p->mu);
		p->job = 0;
		p->job_done = 1;
		p->job_ok = ok;
		memcpy(p->job_err, err, sizeof(err));
		/* Cannot fail short of EAGAIN at 2^64-1 pending wakeups; the loop reads job_done anyway. */
		if (write(p->efd, &one, sizeof(one)) == -1)
			continue;
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Hand the queued batch to the thread, if it is free and there is one. */
static void
persist_kick(struct persist *p)
{
	if (p->inflight.rs != NULL || p->queued.rs == NULL)
		return;
	p->inflight = p->queued;
	if (p->inflight.head == NULL)
		p->inflight.tail = &p->inflight.head;
	memset(&p->queued, 0, sizeof(p->queued));
	pthread_mutex_lock(&p->mu);
	p->job_rs = p->inflight.rs;
	snprintf(p->job_path, sizeof(p->job_path), "%s", p->px->conf->cf.rules_file);
	p->job = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void
persist_answer(struct persist_batch *b, int ok, const char *err)
{
	struct persist_waiter *w, *next;

	for (w = b->head; w != NULL; w = next) {
		next = w->next;
		if (w->done != NULL)
			w->done(w->arg, ok, err);
		free(w);
	}
	rules_unref(b->rs);
	memset(b, 0, sizeof(*b));
}

static void
persist_done(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	struct persist *p = arg;
	struct proxy *px = p->px;
	char err[RULESFILE_ERR_LEN], why[RULESFILE_ERR_LEN + 96];
	uint64_t n;
	int ok, done;

	(void)loop;
	(void)events;
	if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		log_warn("rules: writer wakeup");
	pthread_mutex_lock(&p->mu);
	done = p->job_done;
	p->job_done = 0;
	ok = p->job_ok;
	memcpy(err, p->job_err, sizeof(err));
	pthread_mutex_unlock(&p->mu);
	if (!done || p->inflight.rs == NULL)
		return;

	if (ok) {
		if (err[0] != '\0')
			log_warnx("rules: %s", err);
		px_swap(px, NULL, rules_ref(p->inflight.rs));
		admit_update(px);
		live_expiry_arm(px);
		persist_answer(&p->inflight, 1, NULL);
	} else {
		/* What was queued behind it was built on top of it: refused too. */
		log_warnx("rules: not changed: %s", err);
		persist_answer(&p->inflight, 0, err);
		snprintf(why, sizeof(why), "an earlier change could not be written: %s", err);
		persist_answer(&p->queued, 0, why);
	}
	persist_kick(p);
}

int
persist_start(struct proxy *px)
{
	struct persist *p;
	int e;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	p->px = px;
	if ((p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		free(p);
		return -1;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if ((e = pthread_create(&p->thread, NULL, persist_thread, p)) != 0) {
		close(p->efd);
		free(p);
		errno = e;
		return -1;
	}
	if (ev_add(px->loop, p->efd, EV_READ, persist_done, p) == -1) {
		persist_stop(px);
		return -1;
	}
	px->persist = p;
	return 0;
}

void
persist_stop(struct proxy *px)
{
	struct persist *p = px->persist;

	if (p == NULL)
		return;
	p->closing = 1;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	ev_del(px->loop, p->efd);
	close(p->efd);
	/* Never acknowledged: say so rather than leave the clients waiting. */
	persist_answer(&p->inflight, 0, "smtpwalld is stopping; this change may or may not be on disk");
	persist_answer(&p->queued, 0, "smtpwalld is stopping; this change was not written");
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
	px->persist = NULL;
}

const struct ruleset *
persist_latest(const struct proxy *px)
{
	const struct persist *p = px->persist;

	if (p != NULL && p->queued.rs != NULL)
		return p->queued.rs;
	if (p != NULL && p->inflight.rs != NULL)
		return p->inflight.rs;
	return px->rules;
}

int
persist_submit(struct proxy *px, struct ruleset *rs, persist_done_fn *done, void *arg)
{
	struct persist *p = px->persist;
	struct persist_waiter *w = NULL;

	if (p->closing) {
		rules_unref(rs);
		errno = ESHUTDOWN;
		return -1;
	}
	if (done != NULL && (w = calloc(1, sizeof(*w))) == NULL) {
		rules_unref(rs);
		return -1;
	}
	if (w != NULL) {
		w->done = done;
		w->arg = arg;
	}
	if (p->queued.rs == NULL)
		p->queued.tail = &p->queued.head;
	rules_unref(p->queued.rs);	/* rs was built on it and contains its changes */
	p->queued.rs = rs;
	if (w != NULL) {
		*p->queued.tail = w;
		p->queued.tail = &w->next;
	}
	persist_kick(p);
	return 0;
}

int
persist_busy(const struct proxy *px)
{
	const struct persist *p = px->persist;

	return p != NULL && (p->inflight.rs != NULL || p->queued.rs != NULL);
}

/*
 * worker: the event-loop threads that carry the sessions (SPEC `workers`).
 *
 * Each worker has its own epoll loop, its own listener per listen address
 * (SO_REUSEPORT: the kernel spreads new connections over them by their
 * addresses and ports) and its own sessions; a session lives and dies on
 * the worker that accepted it, so nothing of a session is ever shared.
 * Worker 0 is the main thread's loop, which also carries the control
 * socket, the signals, the rule expiry and the capture handle; workers
 * 1..N-1 are threads.
 *
 * What workers share is in struct proxy (proxy.c: a mutex around the
 * configuration and rules pointers and the session slots; atomic
 * counters) and in captures.c (its own mutex).
 *
 * The main thread reaches into a worker only through worker_call(): the
 * function runs on the worker's thread, between two events, while the main
 * thread waits. Workers never call each other or the main thread.
 */
#ifndef SMTPWALL_WORKER_H
#define SMTPWALL_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "config.h"
#include "ev.h"

struct proxy;
struct session;

struct worker;
typedef void worker_fn(struct worker *, void *arg);

struct worker {
	struct proxy		*px;
	unsigned		 id;
	struct ev_loop		*loop;
	pthread_t		 thread;
	int			 running;	/* a thread was started (not worker 0) */

	int			 listen_fd[CONFIG_MAX_LISTEN];
	unsigned		 listen_idx[CONFIG_MAX_LISTEN];	/* its index in cf.listen */
	unsigned		 nlisten;
	struct ev_timer		 accept_timer;	/* out of fds: listeners back on after it */

	struct session		*sessions;	/* doubly linked list of its live sessions */
	unsigned		 nsessions;	/* written by the worker, read by others: atomic */
	uint64_t		 sessions_total;	/* likewise */

	/* worker_call(): one call at a time, from the main thread */
	int			 call_fd;	/* eventfd in the worker's loop */
	pthread_mutex_t		 call_mu;
	pthread_cond_t		 call_cv;
	worker_fn		*call_fn;
	void			*call_arg;
	int			 call_done;
};

/* workers = 0: the CPUs this process may run on (its affinity mask), at most CONFIG_WORKERS_MAX. */
unsigned workers_count(unsigned configured);

/*
 * Make n workers: their loops (worker 0's is px->loop), listeners and call
 * channels; no thread yet. 0, or -1 with err (a listener that cannot bind).
 */
int	workers_open(struct proxy *px, unsigned n, char *err, size_t errlen);
/* Start the threads of workers 1..n-1. 0, or -1 with err. */
int	workers_start(struct proxy *px, char *err, size_t errlen);
/* Main thread: run fn(w, arg) on w's thread and wait until it returned. */
void	worker_call(struct worker *w, worker_fn *fn, void *arg);
/* Main thread: worker_call on every worker, in order. */
void	workers_each(struct proxy *px, worker_fn *fn, void *arg);
/* Main thread: close every worker's listeners (SIGTERM). */
void	workers_stop_accepting(struct proxy *px);
/* Main thread, after its own loop ended: stop and join the threads, free everything. */
void	workers_free(struct proxy *px);

/* Atomic views of a worker's counters, for the control socket. */
unsigned worker_nsessions(const struct worker *w);
uint64_t worker_sessions_total(const struct worker *w);

#endif

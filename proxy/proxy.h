/*
 * proxy.h: the daemon's one context object. main.c builds it and passes it
 * down; there are no other mutable globals (log.c's level aside).
 *
 * Threads: the main thread owns everything here except what the worker
 * threads (worker.h) share, which is marked. The main thread is also
 * worker 0, and the only one that swaps the configuration and the rules,
 * answers the control socket and handles signals.
 */
#ifndef SMTPWALL_PROXY_H
#define SMTPWALL_PROXY_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>
#include "conf.h"
#include "config.h"
#include "ev.h"
#include "smtp/fsm.h"
#include "../rules/rules.h"

struct session;
struct climap;
struct ctl;
struct persist;
struct admit;
struct capt;
struct worker;

/* Bumped by every worker: PX_STAT_ADD / read with PX_STAT (relaxed atomics). */
struct proxy_stats {
	time_t		started;		/* wall clock at start */
	uint64_t	sessions;		/* accepted */
	uint64_t	sessions_refused;	/* max_sessions, per client, block client */
	uint64_t	messages;		/* accepted by the server */
	uint64_t	bytes;
	uint64_t	refused_rcpt;		/* all RCPTs smtpwall refused */
	uint64_t	refused_rcpt_relay;
	uint64_t	refused_rcpt_routing;
	uint64_t	refused_rcpt_limit;	/* max_recipients */
	uint64_t	refused_sender;
	uint64_t	refused_size;		/* SIZE= at MAIL */
	uint64_t	refused_client;		/* block client rules */
	uint64_t	aborted_data;
	uint64_t	rule_changes;
	uint64_t	reloads;
};

struct proxy {
	/*
	 * mu guards the conf and rules pointers (written by the main thread
	 * only, so it reads them without the lock) and clients. Other threads
	 * take references through px_conf() and px_rules().
	 */
	pthread_mutex_t		 mu;
	struct pxconf		*conf;		/* current generation; sessions pin their own */
	struct ruleset		*rules;		/* the live ruleset; sessions take references */
	struct climap		*clients;	/* live sessions per client address */
	unsigned		 nsessions;	/* all workers' live sessions: atomic */
	uint64_t		 id_base, id_next;	/* session ids; id_next atomic */
	struct proxy_stats	 stats;		/* atomic counters */

	const char		*conf_path;
	struct ev_loop		*loop;		/* the main thread's (worker 0's) loop */
	struct ev_timer		 expiry_timer;	/* the next rule expiry */
	char			 hostname[256];	/* set before any thread starts */

	struct worker		*workers;	/* nworkers event loops; [0] runs on loop */
	unsigned		 nworkers;
	struct ctl		*ctl;		/* the control socket, NULL if none */
	struct persist		*persist;	/* the rules file writer thread */
	struct admit		*admit;		/* the NFQUEUE threads, NULL when nfqueue = off */
	struct capt		*capt;		/* armed captures (captures.c) */

	int			 debug;		/* -d: the log level stays debug across reloads */
	int			 stopping;	/* SIGTERM: no new sessions */
	struct ev_timer		 shutdown_timer;	/* polls the session count while stopping */
	uint64_t		 shutdown_deadline;	/* loop ms: then 421 4.3.2 to the rest */
};

#define PX_STAT_ADD(px, field, n) \
	((void)__atomic_fetch_add(&(px)->stats.field, (n), __ATOMIC_RELAXED))
#define PX_STAT(px, field)	__atomic_load_n(&(px)->stats.field, __ATOMIC_RELAXED)

/* proxy.c: the shared state, from any thread. */

/* The current configuration generation / ruleset: a new reference each. */
struct pxconf	*px_conf(struct proxy *);
struct ruleset	*px_rules(struct proxy *);
/* Main thread: swap in nc and/or rs (NULL: keep), taking over the caller's references. */
void	px_swap(struct proxy *, struct pxconf *nc, struct ruleset *rs);

/*
 * A session slot for a new connection from peer, under max_sessions and
 * max_sessions_per_client of conf, counted at once so that two workers
 * cannot both take the last one. 0, or -1 with *limit set to the limit's
 * name ("max_sessions" or "max_sessions_per_client").
 */
int	px_slot_take(struct proxy *, const struct pxconf *conf, const struct sockaddr *peer,
	    const char **limit);
void	px_slot_release(struct proxy *, const struct sockaddr *peer);
unsigned px_nsessions(const struct proxy *);
uint64_t px_next_id(struct proxy *);

#endif

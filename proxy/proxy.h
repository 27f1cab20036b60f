/*
 * proxy.h: the daemon's one context object. main.c builds it and passes it
 * down; there are no other mutable globals (log.c's level aside).
 */
#ifndef SMTPWALL_PROXY_H
#define SMTPWALL_PROXY_H

#include <stdint.h>
#include "config.h"
#include "ev.h"
#include "smtp/fsm.h"
#include "../rules/rules.h"

struct session;
struct climap;

struct proxy_stats {
	uint64_t	sessions;		/* accepted */
	uint64_t	sessions_refused;	/* max_sessions, per client, block client */
	uint64_t	messages;		/* accepted by the server */
	uint64_t	bytes;
	uint64_t	refused_rcpt;
	uint64_t	refused_sender;
	uint64_t	aborted_data;
};

struct proxy {
	struct config		*cf;
	struct ev_loop		*loop;
	struct ruleset		*rules;		/* the live ruleset; sessions take references */
	struct rules_policy	 policy;
	struct smtp_fsm_conf	 fsmconf;
	char			 hostname[256];

	int			 listen_fd[CONFIG_MAX_LISTEN];
	unsigned		 nlisten;
	int			 accept_paused;	/* out of fds: listeners off for a moment */
	struct ev_timer		 accept_timer;

	struct session		*sessions;	/* doubly linked list of live sessions */
	unsigned		 nsessions;
	struct climap		*clients;
	uint64_t		 id_base, id_next;

	int			 stopping;	/* SIGTERM: no new sessions */
	struct ev_timer		 shutdown_timer;	/* polls the session count while stopping */
	uint64_t		 shutdown_deadline;	/* loop ms: then 421 4.3.2 to the rest */
	struct proxy_stats	 stats;
};

#endif

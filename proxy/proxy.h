/*
 * proxy.h: the daemon's one context object. main.c builds it and passes it
 * down; there are no other mutable globals (log.c's level aside).
 */
#ifndef SMTPWALL_PROXY_H
#define SMTPWALL_PROXY_H

#include <stdint.h>
#include <time.h>
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
	struct pxconf		*conf;		/* current generation; sessions pin their own */
	const char		*conf_path;
	struct ev_loop		*loop;
	struct ruleset		*rules;		/* the live ruleset; sessions take references */
	struct ev_timer		 expiry_timer;	/* the next rule expiry */
	char			 hostname[256];

	int			 listen_fd[CONFIG_MAX_LISTEN];
	unsigned		 nlisten;
	int			 accept_paused;	/* out of fds: listeners off for a moment */
	struct ev_timer		 accept_timer;
	struct ctl		*ctl;		/* the control socket, NULL if none */
	struct persist		*persist;	/* the rules file writer thread */
	struct admit		*admit;		/* the NFQUEUE threads, NULL when nfqueue = off */
	struct capt		*capt;		/* armed captures (captures.c) */

	struct session		*sessions;	/* doubly linked list of live sessions */
	unsigned		 nsessions;
	struct climap		*clients;
	uint64_t		 id_base, id_next;

	int			 debug;		/* -d: the log level stays debug across reloads */
	int			 stopping;	/* SIGTERM: no new sessions */
	struct ev_timer		 shutdown_timer;	/* polls the session count while stopping */
	uint64_t		 shutdown_deadline;	/* loop ms: then 421 4.3.2 to the rest */
	struct proxy_stats	 stats;
};

#endif

/*
 * admit: first-packet admission through NFQUEUE (SPEC nfqueue, nfqueue_fail,
 * client_rate; the queue itself is nfq/).
 *
 * One thread per queue number of `nfqueue = N-M` (the kernel spreads SYNs
 * over them with --queue-balance). Each thread answers every SYN it is
 * handed: DROP for a client matched by a `block client` rule or over its
 * client_rate, otherwise ACCEPT with CONFIG_FW_MARK, the mark that the
 * REDIRECT/TPROXY rules of smtpwall-firewall take. The threads share one
 * small state behind a mutex that the event loop updates: the live ruleset,
 * the configuration generation (trusted_networks, client_rate) and the rate
 * table. Counters are atomics, read by `smtpwallctl stats`.
 *
 * Never: touches sessions, the event loop or the control socket; a thread
 * logs only through log.c (one write per line) and at most
 * ADMIT_LOG_PER_SEC drop lines a second, the rest counted and summarised.
 */
#ifndef SMTPWALL_ADMIT_H
#define SMTPWALL_ADMIT_H

#include <stdint.h>
#include "proxy.h"

#define ADMIT_LOG_PER_SEC	20
#define ADMIT_RATE_ENTRIES	65536	/* clients whose rate is tracked; then the least recent goes */

struct admit_stats {
	uint64_t	syn_accepted;
	uint64_t	syn_dropped_client;	/* block client rules */
	uint64_t	syn_dropped_rate;	/* client_rate */
	uint64_t	not_syn;		/* other packets queued (accepted, marked) */
	uint64_t	unparsed;		/* packets nq_pkt_parse refused (accepted, marked) */
	uint64_t	verdicts, sends;	/* batching: verdicts per sendmsg */
	uint64_t	errors;			/* socket errors on the queues */
	uint64_t	rate_clients;		/* clients in the rate table now */
	uint64_t	rate_evictions;
	unsigned	queues;
};

/*
 * Bind the queues of px->conf (nothing when nfqueue = off) and start their
 * threads. Call after the signal mask is set (the threads inherit it). 0, or
 * -1 with err set (EPERM without CAP_NET_ADMIN, a queue held by another
 * process): smtpwalld then refuses to start.
 */
int	admit_start(struct proxy *px, char *err, size_t errlen);
/* Stop and join the threads, unbind the queues (the kernel then applies nfqueue_fail). */
void	admit_stop(struct proxy *px);
/* px->rules or px->conf changed: the threads use the new ones from their next packet. */
void	admit_update(struct proxy *px);
void	admit_get_stats(const struct proxy *px, struct admit_stats *out);

#endif

/*
 * admit.c: first-packet admission through NFQUEUE (see admit.h).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../nfq/nfq.h"
#include "admit.h"
#include "ev.h"
#include "log.h"
#include "sock.h"

struct admit;

struct admit_queue {
	struct admit	*ad;
	struct nq	*nq;
	unsigned	 num;
	pthread_t	 thread;
	int		 started;
	/* drop-log limiter: this thread's lines in the current second */
	time_t		 log_sec;
	unsigned	 log_lines;
	uint64_t	 log_suppressed;
};

struct admit {
	/* what the threads read, swapped by the event loop under mu */
	pthread_mutex_t	 mu;
	struct ruleset	*rules;		/* a reference */
	struct pxconf	*conf;		/* a reference (taken and dropped by the loop's thread only) */
	struct nq_rate	*rate;		/* NULL when client_rate = off */
	unsigned	 rate_n, rate_per_s;

	int		 stop_fd;	/* eventfd: readable once admit_stop() begins */
	struct admit_queue *q;
	unsigned	 nq;

	atomic_uint_fast64_t syn_accepted, syn_dropped_client, syn_dropped_rate;
	atomic_uint_fast64_t not_syn, unparsed, errors;
};

enum admit_why { ADMIT_OK = 0, ADMIT_CLIENT, ADMIT_RATE };

/*
 * The verdict for one SYN, under ad->mu. A blocked client's SYNs take no
 * token; trusted_networks are never rate-limited (Postfix does the same for
 * mynetworks: smtpd_client_event_limit_exceptions).
 */
static enum admit_why
admit_decide(struct admit *ad, const struct nq_tuple *t, char *rule, size_t rulelen)
{
	struct sockaddr_storage client;
	struct rules_verdict v;
	enum admit_why why = ADMIT_OK;

	nq_tuple_client(t, &client);
	pthread_mutex_lock(&ad->mu);
	rules_eval_client(ad->rules, (const struct sockaddr *)&client, time(NULL), &v);
	if (!v.accept) {
		why = ADMIT_CLIENT;
		if (v.rule != NULL)
			rules_rule_format_key(v.rule, rule, rulelen);
	} else if (ad->rate != NULL &&
	    !rules_cidrset_match(ad->conf->cf.trusted_networks, (const struct sockaddr *)&client) &&
	    !nq_rate_take(ad->rate, t->family, t->src, ev_clock_ms())) {
		why = ADMIT_RATE;
	}
	pthread_mutex_unlock(&ad->mu);
	return why;
}

static void
admit_log_drop(struct admit_queue *q, const struct nq_tuple *t, enum admit_why why,
    const char *rule)
{
	struct sockaddr_storage c;
	char ca[SOCK_ADDR_LEN];
	time_t now = time(NULL);

	if (now != q->log_sec) {
		if (q->log_suppressed > 0)
			log_info("nfq queue=%u: %llu more dropped SYNs not logged in the last second "
			    "(see smtpwallctl stats)", q->num, (unsigned long long)q->log_suppressed);
		q->log_sec = now;
		q->log_lines = 0;
		q->log_suppressed = 0;
	}
	if (q->log_lines >= ADMIT_LOG_PER_SEC) {
		q->log_suppressed++;
		return;
	}
	q->log_lines++;
	nq_tuple_client(t, &c);
	sock_addr_str((const struct sockaddr *)&c, ca);
	if (why == ADMIT_CLIENT)
		log_info("nfq drop client=%s dport=%u reason=client rule=\"%s\"", ca, t->dport, rule);
	else
		log_info("nfq drop client=%s dport=%u reason=rate limit=%u/%us", ca, t->dport,
		    q->ad->rate_n, q->ad->rate_per_s);
}

/*
 * Queue one verdict. nq_verdict() fails only when its batch is full and the
 * send failed (the pending verdicts are kept): flush and try again, a few
 * times, so that no packet is left waiting in the kernel without an answer.
 */
static void
admit_verdict(struct admit_queue *q, uint32_t id, enum nq_verdict_kind v, int set_mark)
{
	int tries;

	for (tries = 0; tries < 3; tries++) {
		if (nq_verdict(q->nq, id, v, set_mark, CONFIG_FW_MARK) == 0)
			return;
		(void)nq_flush(q->nq);
	}
	atomic_fetch_add(&q->ad->errors, 1);
	log_warn("nfq queue=%u: verdict for packet %u", q->num, id);
}

/* Answer every packet waiting on this queue (nq_next until NQ_AGAIN). */
static void
admit_drain(struct admit_queue *q)
{
	struct admit *ad = q->ad;
	struct nq_packet pkt;
	struct nq_tuple t;
	char rule[400];
	enum admit_why why;
	int r;

	while ((r = nq_next(q->nq, &pkt)) == 1) {
		if (nq_pkt_parse(pkt.payload, pkt.len, &t) != 0) {
			/* Not ours to judge: on to the proxy, which judges the session. */
			atomic_fetch_add(&ad->unparsed, 1);
			admit_verdict(q, pkt.id, NQ_ACCEPT, 1);
		} else if (!nq_tuple_is_syn(&t)) {
			atomic_fetch_add(&ad->not_syn, 1);
			admit_verdict(q, pkt.id, NQ_ACCEPT, 1);
		} else if ((why = admit_decide(ad, &t, rule, sizeof(rule))) == ADMIT_OK) {
			atomic_fetch_add(&ad->syn_accepted, 1);
			admit_verdict(q, pkt.id, NQ_ACCEPT, 1);
		} else {
			atomic_fetch_add(why == ADMIT_CLIENT ? &ad->syn_dropped_client :
			    &ad->syn_dropped_rate, 1);
			admit_log_drop(q, &t, why, rule);
			admit_verdict(q, pkt.id, NQ_DROP, 0);
		}
	}
	if (r == -1 && errno != EAGAIN && errno != EINTR) {
		atomic_fetch_add(&ad->errors, 1);
		log_warn("nfq queue=%u", q->num);
	}
}

static void *
admit_thread(void *arg)
{
	struct admit_queue *q = arg;
	struct pollfd pf[2] = {
		{ .fd = nq_fd(q->nq), .events = POLLIN },
		{ .fd = q->ad->stop_fd, .events = POLLIN },
	};

	for (;;) {
		if (poll(pf, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("nfq queue=%u: poll", q->num);
			break;
		}
		if (pf[1].revents != 0)
			break;
		if (pf[0].revents != 0)
			admit_drain(q);
	}
	return NULL;
}

/* Under mu: the rate table follows client_rate (a changed rate starts afresh). */
static int
admit_rate_conf(struct admit *ad, const struct config *cf)
{
	if (ad->rate != NULL && ad->rate_n == cf->client_rate && ad->rate_per_s == cf->client_rate_per_s)
		return 0;
	nq_rate_free(ad->rate);
	ad->rate = NULL;
	ad->rate_n = cf->client_rate;
	ad->rate_per_s = cf->client_rate_per_s;
	if (cf->client_rate == 0)
		return 0;
	if ((ad->rate = nq_rate_new(cf->client_rate, cf->client_rate_per_s, ADMIT_RATE_ENTRIES)) == NULL)
		return -1;
	return 0;
}

static void
admit_free(struct admit *ad)
{
	unsigned i;

	for (i = 0; i < ad->nq; i++)
		nq_close(ad->q[i].nq);
	free(ad->q);
	if (ad->stop_fd != -1)
		close(ad->stop_fd);
	nq_rate_free(ad->rate);
	rules_unref(ad->rules);
	if (ad->conf != NULL)
		pxconf_unref(ad->conf);
	pthread_mutex_destroy(&ad->mu);
	free(ad);
}

int
admit_start(struct proxy *px, char *err, size_t errlen)
{
	const struct config *cf = &px->conf->cf;
	struct admit *ad;
	char nerr[NQ_ERR_LEN];
	unsigned i;
	int e;

	if (!cf->nfqueue_on)
		return 0;
	if ((ad = calloc(1, sizeof(*ad))) == NULL) {
		snprintf(err, errlen, "nfqueue: out of memory");
		return -1;
	}
	pthread_mutex_init(&ad->mu, NULL);
	ad->stop_fd = -1;
	ad->rules = rules_ref(px->rules);
	ad->conf = pxconf_ref(px->conf);
	if (admit_rate_conf(ad, cf) == -1 ||
	    (ad->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1 ||
	    (ad->q = calloc(cf->nfqueue_last - cf->nfqueue_first + 1, sizeof(*ad->q))) == NULL) {
		snprintf(err, errlen, "nfqueue: %s", strerror(errno));
		admit_free(ad);
		return -1;
	}
	for (i = cf->nfqueue_first; i <= cf->nfqueue_last; i++) {
		struct nq_conf qc = {
			.queue = (uint16_t)i,
			.fail_open = cf->nfqueue_fail == CONFIG_NFQ_FAIL_OPEN,
		};
		struct admit_queue *q = &ad->q[ad->nq];

		if ((q->nq = nq_open(&qc, nerr)) == NULL) {
			snprintf(err, errlen, "%s", nerr);
			admit_free(ad);
			return -1;
		}
		q->ad = ad;
		q->num = i;
		ad->nq++;
	}
	for (i = 0; i < ad->nq; i++) {
		if ((e = pthread_create(&ad->q[i].thread, NULL, admit_thread, &ad->q[i])) != 0) {
			snprintf(err, errlen, "nfqueue: thread: %s", strerror(e));
			px->admit = ad;
			admit_stop(px);
			return -1;
		}
		ad->q[i].started = 1;
	}
	px->admit = ad;
	log_info("nfqueue %u-%u: %u queue thread(s), nfqueue_fail=%s, client_rate=%s",
	    cf->nfqueue_first, cf->nfqueue_last, ad->nq,
	    cf->nfqueue_fail == CONFIG_NFQ_FAIL_OPEN ? "open" : "closed",
	    cf->client_rate ? "on" : "off");
	return 0;
}

void
admit_stop(struct proxy *px)
{
	struct admit *ad = px->admit;
	uint64_t one = 1;
	unsigned i;

	if (ad == NULL)
		return;
	if (write(ad->stop_fd, &one, sizeof(one)) == -1)
		log_warn("nfqueue: stop");
	for (i = 0; i < ad->nq; i++)
		if (ad->q[i].started)
			pthread_join(ad->q[i].thread, NULL);
	admit_free(ad);
	px->admit = NULL;
}

void
admit_update(struct proxy *px)
{
	struct admit *ad = px->admit;
	struct ruleset *old_rules;
	struct pxconf *old_conf;
	int bad;

	if (ad == NULL)
		return;
	pthread_mutex_lock(&ad->mu);
	old_rules = ad->rules;
	old_conf = ad->conf;
	ad->rules = rules_ref(px->rules);
	ad->conf = pxconf_ref(px->conf);
	bad = admit_rate_conf(ad, &px->conf->cf);
	pthread_mutex_unlock(&ad->mu);
	/* Outside the lock: freeing a large ruleset must not stall the queues. */
	rules_unref(old_rules);
	pxconf_unref(old_conf);
	if (bad)
		log_warnx("nfqueue: client_rate: out of memory; rate limiting is off");
}

void
admit_get_stats(const struct proxy *px, struct admit_stats *out)
{
	struct admit *ad = px->admit;
	struct nq_counters c;
	unsigned i;

	memset(out, 0, sizeof(*out));
	if (ad == NULL)
		return;
	out->syn_accepted = atomic_load(&ad->syn_accepted);
	out->syn_dropped_client = atomic_load(&ad->syn_dropped_client);
	out->syn_dropped_rate = atomic_load(&ad->syn_dropped_rate);
	out->not_syn = atomic_load(&ad->not_syn);
	out->unparsed = atomic_load(&ad->unparsed);
	out->errors = atomic_load(&ad->errors);
	out->queues = ad->nq;
	for (i = 0; i < ad->nq; i++) {
		nq_get_counters(ad->q[i].nq, &c);	/* a racy read of plain counters: for display */
		out->verdicts += c.verdicts;
		out->sends += c.sends;
	}
	pthread_mutex_lock(&ad->mu);
	if (ad->rate != NULL) {
		out->rate_clients = nq_rate_count(ad->rate);
		out->rate_evictions = nq_rate_evictions(ad->rate);
	}
	pthread_mutex_unlock(&ad->mu);
}

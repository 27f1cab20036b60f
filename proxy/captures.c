/*
 * captures.c: armed captures and the sessions they record (see captures.h).
 *
 * Threads: the control verbs, the pcap handle and the tick run on the main
 * thread; the session hooks run on the worker that carries the session.
 * c->mu guards all of it. Only the main thread touches the main loop (the
 * pcap fd, the tick timer): a hook that leaves nothing to capture lets the
 * next tick close the handle. A session that nothing captures pays one
 * relaxed load (c->armed) at its start and nothing afterwards.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../capture/capture.h"
#include "../nfq/nfq.h"
#include "captures.h"
#include "log.h"
#include "session.h"
#include "sock.h"

#define CAPT_READ_BATCH		256
#define CAPT_PENDING_MAX	1024	/* handshake frames of connections not accepted yet */
#define CAPT_PENDING_FRAME	256	/* larger frames are not handshakes: not kept */
#define CAPT_PENDING_MS		5000
#define CAPT_TICK_MS		250
#define CAPT_HASH		4096
#define CAPT_PCAP_BUFFER	(4 << 20)
#define CAPT_FILTER_MAX		8192
#define CAPT_PORT		25	/* the port smtpwall-firewall intercepts */

struct capt_spec {
	struct capt_spec	*next;
	struct capt_info	 info;
	struct rules_cidr	 cidr;		/* CAPT_CLIENT */
	uint64_t		 until_ms;	/* ev_clock_ms(); 0: none */
};

/* An endpoint (address, port) that identifies one leg of a recorded session. */
struct capt_key {
	sa_family_t	family;
	uint8_t		addr[16];
	uint16_t	port;
};

struct capt_rec;

struct capt_node {			/* a hash table entry: key -> (rec, leg) */
	struct capt_node	*next;
	struct capt_key		 key;
	struct capt_rec		*rec;
	enum cap_leg		 leg;
	int			 linked;
};

struct capt_rec {
	struct capt_rec		*prev, *next;
	struct session		*s;		/* NULL once the session has ended */
	uint64_t		 session_id;
	struct sockaddr_storage	 client;
	struct sockaddr_storage	 server;	/* where the upstream connection goes */
	struct capt_node	 n_client, n_server;
	struct cap_sess		*cs;
	unsigned		 spec_id;	/* the capture it is written for; 0 while buffering */
	int			 recent;	/* its index in c->recent, -1 if none */
	uint64_t		 close_ms;	/* 0 while the session runs */
	int			 warned;	/* the truncation has been logged */
};

struct capt_pending {
	struct capt_key		 client;	/* the connection's client end */
	uint64_t		 at_ms;
	struct cap_pkthdr	 h;
	uint8_t			 frame[CAPT_PENDING_FRAME];
};

struct capt {
	struct proxy		*px;
	pthread_mutex_t		 mu;
	int			 armed;		/* specs != NULL, for the hooks' unlocked look: atomic */
	struct pxconf		*conf;		/* the generation it works with (capt_reconf) */
	struct capt_spec	*specs;
	unsigned		 nspecs, next_id;
	struct capt_rec		*recs;
	struct capt_node	*hash[CAPT_HASH];
	struct cap_live		*live;
	int			 linktype;
	int			 wide;		/* the filter takes every port-25 frame */
	char			 filter[CAPT_FILTER_MAX];
	struct ev_timer		 tick;
	struct cap_budget	 budget;
	struct capt_pending	*pending;	/* ring of CAPT_PENDING_MAX */
	unsigned		 pend_head, pend_len;
	struct capt_file	 recent[CAPT_RECENT];	/* ring, newest at recent_head - 1 */
	unsigned		 recent_head, nrecent;
};

static void capt_tick(struct ev_loop *, struct ev_timer *, void *);

static void
capt_set_armed(struct capt *c)
{
	__atomic_store_n(&c->armed, c->specs != NULL, __ATOMIC_RELAXED);
}
static void capt_update_filter(struct capt *);

static const char *const capt_kind_words[] = { "client", "sender", "rcpt", "refused" };

const char *
capt_kind_str(enum capt_kind k)
{
	return (unsigned)k < sizeof(capt_kind_words) / sizeof(capt_kind_words[0]) ?
	    capt_kind_words[k] : "?";
}

/* ---- keys and the hash table -------------------------------------------------- */

static void
capt_key_of_sa(const struct sockaddr_storage *sa, struct capt_key *k)
{
	memset(k, 0, sizeof(*k));
	k->family = sa->ss_family;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		memcpy(k->addr, &s4->sin_addr, 4);
		k->port = ntohs(s4->sin_port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		memcpy(k->addr, &s6->sin6_addr, 16);
		k->port = ntohs(s6->sin6_port);
	}
}

static void
capt_key_of(sa_family_t family, const uint8_t addr[16], uint16_t port, struct capt_key *k)
{
	memset(k, 0, sizeof(*k));
	k->family = family;
	memcpy(k->addr, addr, family == AF_INET ? 4 : 16);
	k->port = port;
}

static int
capt_key_eq(const struct capt_key *a, const struct capt_key *b)
{
	return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

static unsigned
capt_key_hash(const struct capt_key *k)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < 16; i++)
		h = (h ^ k->addr[i]) * 16777619u;
	h = (h ^ (k->port & 0xff)) * 16777619u;
	h = (h ^ (k->port >> 8)) * 16777619u;
	return h % CAPT_HASH;
}

static void
capt_link(struct capt *c, struct capt_node *n)
{
	unsigned b = capt_key_hash(&n->key);

	n->next = c->hash[b];
	c->hash[b] = n;
	n->linked = 1;
}

static void
capt_unlink(struct capt *c, struct capt_node *n)
{
	struct capt_node **pp;

	if (!n->linked)
		return;
	for (pp = &c->hash[capt_key_hash(&n->key)]; *pp != NULL; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	n->linked = 0;
}

static struct capt_node *
capt_find(struct capt *c, const struct capt_key *k)
{
	struct capt_node *n;

	for (n = c->hash[capt_key_hash(k)]; n != NULL; n = n->next)
		if (capt_key_eq(&n->key, k))
			return n;
	return NULL;
}

/* ---- the recent files ---------------------------------------------------------- */

static struct capt_file *
capt_recent_at(struct capt *c, int i)
{
	return i >= 0 ? &c->recent[i] : NULL;
}

static int
capt_recent_add(struct capt *c, unsigned id, uint64_t session, const char *name)
{
	unsigned i = c->recent_head;
	struct capt_rec *r;

	/* a record still pointing at the slot being reused lets go of it */
	for (r = c->recs; r != NULL; r = r->next)
		if (r->recent == (int)i)
			r->recent = -1;
	memset(&c->recent[i], 0, sizeof(c->recent[i]));
	c->recent[i].id = id;
	c->recent[i].session = session;
	snprintf(c->recent[i].name, sizeof(c->recent[i].name), "%s", name);
	c->recent[i].open = 1;
	c->recent_head = (i + 1) % CAPT_RECENT;
	if (c->nrecent < CAPT_RECENT)
		c->nrecent++;
	return (int)i;
}

/* ---- records ------------------------------------------------------------------ */

static void
capt_prune_log(void *arg, const char *name, uint64_t size)
{
	(void)arg;
	log_info("capture: removed %s (%llu bytes): capture_max_files/capture_max_bytes",
	    name, (unsigned long long)size);
}

static void
capt_prune(struct capt *c, const char *keep)
{
	const struct config *cf = &c->conf->cf;
	char err[CAP_ERR_LEN];

	if (cap_dir_prune(cf->capture_dir, cf->capture_max_files, cf->capture_max_bytes, keep,
	    capt_prune_log, NULL, err) == -1)
		log_warnx("capture: %s: %s", cf->capture_dir, err);
}

static void
capt_rec_truncation(struct capt *c, struct capt_rec *r)
{
	if (r->warned || r->cs == NULL || !cap_sess_truncated(r->cs))
		return;
	r->warned = 1;
	log_warnx("capture session=%016llx: the session outgrew its buffer (capture_buffer = %llu "
	    "bytes, %llu in all): frames were dropped, the file is truncated",
	    (unsigned long long)r->session_id,
	    (unsigned long long)c->conf->cf.capture_buffer,
	    (unsigned long long)CAPT_TOTAL_BUFFER);
}

static void
capt_rec_free(struct capt *c, struct capt_rec *r)
{
	struct capt_file *f = capt_recent_at(c, r->recent);
	int wrote = r->cs != NULL && cap_sess_writing(r->cs);

	if (wrote) {
		if (f != NULL) {
			f->bytes = cap_sess_bytes(r->cs);
			f->truncated = cap_sess_truncated(r->cs);
			f->open = 0;
		}
		log_info("capture id=%u session=%016llx file=%s frames=%llu bytes=%llu%s",
		    r->spec_id, (unsigned long long)r->session_id, f != NULL ? f->name : "?",
		    (unsigned long long)cap_sess_frames(r->cs),
		    (unsigned long long)cap_sess_bytes(r->cs),
		    cap_sess_truncated(r->cs) ? " truncated=yes" : "");
	}
	cap_sess_close(r->cs);
	if (wrote)
		capt_prune(c, NULL);	/* the file has grown since it was started */
	capt_unlink(c, &r->n_client);
	capt_unlink(c, &r->n_server);
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		c->recs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	if (r->s != NULL)
		r->s->capt = NULL;
	free(r);
}

static struct capt_spec *
capt_spec_find(struct capt *c, unsigned id)
{
	struct capt_spec *sp;

	for (sp = c->specs; sp != NULL; sp = sp->next)
		if (sp->info.id == id)
			return sp;
	return NULL;
}

static void
capt_spec_remove(struct capt *c, struct capt_spec *sp, const char *why)
{
	struct capt_spec **pp;

	for (pp = &c->specs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == sp) {
			*pp = sp->next;
			break;
		}
	c->nspecs--;
	capt_set_armed(c);
	log_info("capture id=%u %s: %s%s%s files=%u", sp->info.id, why,
	    capt_kind_str(sp->info.kind), sp->info.match[0] ? " " : "", sp->info.match,
	    sp->info.files);
	free(sp);
}

/* Start writing r's file for capture sp: every frame buffered so far, then the rest. */
static void
capt_rec_write(struct capt *c, struct capt_rec *r, struct capt_spec *sp)
{
	const struct config *cf = &c->conf->cf;
	char name[128], err[CAP_ERR_LEN];

	if (cap_file_name(name, sizeof(name), time(NULL), r->session_id,
	    (const struct sockaddr *)&r->client) == -1 ||
	    cap_sess_write(r->cs, cf->capture_dir, name, err) == -1) {
		log_warnx("capture id=%u session=%016llx: %s/%s: %s", sp->info.id,
		    (unsigned long long)r->session_id, cf->capture_dir, name, err);
		return;
	}
	r->spec_id = sp->info.id;
	r->recent = capt_recent_add(c, sp->info.id, r->session_id, name);
	sp->info.files++;
	log_info("capture id=%u session=%016llx writing %s/%s (%s%s%s)", sp->info.id,
	    (unsigned long long)r->session_id, cf->capture_dir, name,
	    capt_kind_str(sp->info.kind), sp->info.match[0] ? " " : "", sp->info.match);
	capt_rec_truncation(c, r);
	capt_prune(c, name);
	if (--sp->info.sessions_left == 0)
		capt_spec_remove(c, sp, "done");
	capt_update_filter(c);
}

/* 1 if a sender, rcpt or refused capture is armed: every session is a candidate. */
static int
capt_armed_wide(const struct capt *c)
{
	const struct capt_spec *sp;

	for (sp = c->specs; sp != NULL; sp = sp->next)
		if (sp->info.kind != CAPT_CLIENT)
			return 1;
	return 0;
}

/* ---- the live handle ------------------------------------------------------------ */

static void
capt_pending_add(struct capt *c, const struct capt_key *client, const struct cap_pkthdr *h,
    const uint8_t *frame)
{
	struct capt_pending *p;

	if (h->caplen > CAPT_PENDING_FRAME)
		return;
	if (c->pend_len == CAPT_PENDING_MAX) {	/* full: the oldest goes */
		c->pend_head = (c->pend_head + 1) % CAPT_PENDING_MAX;
		c->pend_len--;
	}
	p = &c->pending[(c->pend_head + c->pend_len++) % CAPT_PENDING_MAX];
	p->client = *client;
	p->at_ms = ev_clock_ms();
	p->h = *h;
	memcpy(p->frame, frame, h->caplen);
}

static void capt_add_frame(struct capt *, struct capt_rec *, enum cap_leg, int,
    const struct cap_pkthdr *, const uint8_t *, size_t, const struct nq_tuple *);

/* Hand r the pending frames of its client's connection, oldest first. */
static void
capt_pending_take(struct capt *c, struct capt_rec *r)
{
	struct capt_key ck;
	struct nq_tuple t;
	unsigned i;
	size_t off;

	capt_key_of_sa(&r->client, &ck);
	for (i = 0; i < c->pend_len; i++) {
		struct capt_pending *p = &c->pending[(c->pend_head + i) % CAPT_PENDING_MAX];

		if (p->at_ms == 0 || !capt_key_eq(&p->client, &ck))
			continue;
		if (cap_l3_offset(c->linktype, p->frame, p->h.caplen, &off) == 0 &&
		    nq_pkt_parse(p->frame + off, p->h.caplen - off, &t) == 0)
			capt_add_frame(c, r, CAP_LEG_CLIENT, t.dport == CAPT_PORT, &p->h, p->frame,
			    off, &t);
		p->at_ms = 0;		/* taken */
	}
}

static void
capt_add_frame(struct capt *c, struct capt_rec *r, enum cap_leg leg, int to_server,
    const struct cap_pkthdr *h, const uint8_t *frame, size_t l3off, const struct nq_tuple *t)
{
	struct cap_tcp ct = {
		.leg = leg,
		.to_server = to_server,
		.seq = t->seq,
		.flags = t->tcp_flags,
		.payload_off = l3off + t->payload_off,
		.payload_len = t->payload_len,
	};
	char err[CAP_ERR_LEN];

	if (cap_sess_failed(r->cs))
		return;
	if (cap_sess_add(r->cs, h, frame, &ct, err) == -1)
		log_warnx("capture session=%016llx: %s: nothing more is written",
		    (unsigned long long)r->session_id, err);
	else if (cap_sess_writing(r->cs))
		capt_rec_truncation(c, r);
}

static void
capt_frame(void *arg, const struct cap_pkthdr *h, const uint8_t *frame)
{
	struct capt *c = arg;
	struct capt_key src, dst;
	struct capt_node *n;
	struct nq_tuple t;
	size_t off;
	int from_src;

	if (cap_l3_offset(c->linktype, frame, h->caplen, &off) == -1 ||
	    nq_pkt_parse(frame + off, h->caplen - off, &t) != 0)
		return;
	capt_key_of(t.family, t.src, t.sport, &src);
	capt_key_of(t.family, t.dst, t.dport, &dst);
	if ((n = capt_find(c, &src)) != NULL)
		from_src = 1;
	else if ((n = capt_find(c, &dst)) != NULL)
		from_src = 0;
	if (n != NULL) {
		/*
		 * The client leg's other end is port 25; the server leg's is the
		 * server. Anything else merely shares an endpoint (a port reused
		 * towards another peer): not this session's.
		 */
		struct capt_key peer = from_src ? dst : src, want;

		if (n->leg == CAP_LEG_SERVER) {
			capt_key_of_sa(&n->rec->server, &want);
			if (!capt_key_eq(&peer, &want))
				return;
		} else if (peer.port != CAPT_PORT)
			return;
		capt_add_frame(c, n->rec, n->leg, from_src, h, frame, off, &t);
		return;
	}
	/* A handshake of a connection not accepted yet: kept for a few seconds. */
	if (t.payload_len == 0 && (t.dport == CAPT_PORT || t.sport == CAPT_PORT))
		capt_pending_add(c, t.dport == CAPT_PORT ? &src : &dst, h, frame);
}

/* A bounded amount per call: the loop's sessions come first. */
static void
capt_read(struct capt *c)
{
	char err[CAP_ERR_LEN];
	int n, rounds;

	for (rounds = 0; rounds < 4; rounds++) {
		if ((n = cap_live_read(c->live, CAPT_READ_BATCH, capt_frame, c, err)) == -1) {
			log_warnx("capture: %s", err);
			return;
		}
		if (n < CAPT_READ_BATCH)
			return;
	}
}

static void
capt_read_cb(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	struct capt *c = arg;

	(void)loop;
	(void)fd;
	(void)events;
	pthread_mutex_lock(&c->mu);
	capt_read(c);
	pthread_mutex_unlock(&c->mu);
}

/* Read what is waiting now, so that frames seen before a decision are in. */
static void
capt_drain(struct capt *c)
{
	if (c->live != NULL)
		capt_read(c);
}

static void
capt_close_live(struct capt *c)
{
	uint64_t rx, drop;

	if (c->live == NULL)
		return;
	cap_live_stats(c->live, &rx, &drop);
	ev_del(c->px->loop, cap_live_fd(c->live));
	cap_live_close(c->live);
	c->live = NULL;
	c->filter[0] = '\0';
	log_info("capture: nothing armed or being written; pcap handle closed "
	    "(received=%llu dropped=%llu)", (unsigned long long)rx, (unsigned long long)drop);
}

/*
 * The filter for what is armed. A sender/rcpt/refused capture must see every
 * session: every port-25 frame. Client captures alone: their clients'
 * frames, and the server legs of the sessions being recorded (by the
 * upstream socket's port, entered before its SYN leaves).
 */
static int
capt_filter_text(struct capt *c, struct buf *f, size_t max, int *wide)
{
	const struct config *cf = &c->conf->cf;
	char cidr[INET6_ADDRSTRLEN + 8], ip[SOCK_IP_LEN];
	struct capt_spec *sp;
	struct capt_rec *r;
	const char *sep = "";
	unsigned up = cf->upstream_fixed ?
	    ntohs(((const struct sockaddr_in *)&cf->upstream)->sin_port) : CAPT_PORT;

	if ((*wide = capt_armed_wide(c))) {
		if (up != CAPT_PORT)
			return buf_printf(f, max, "tcp and (port %d or port %u)", CAPT_PORT, up);
		return buf_printf(f, max, "tcp port %d", CAPT_PORT);
	}
	if (buf_printf(f, max, "tcp and (") == -1)
		return -1;
	for (sp = c->specs; sp != NULL; sp = sp->next) {
		rules_cidr_format(&sp->cidr, cidr, sizeof(cidr));
		if (buf_printf(f, max, "%s(port %d and net %s)", sep, CAPT_PORT, cidr) == -1)
			return -1;
		sep = " or ";
	}
	/* Both legs of each session being recorded, also once its capture is done. */
	for (r = c->recs; r != NULL; r = r->next) {
		sock_ip_str((const struct sockaddr *)&r->client, ip);
		if (buf_printf(f, max, "%s(host %s and port %u)", sep, ip,
		    (unsigned)r->n_client.key.port) == -1)
			return -1;
		sep = " or ";
		if (!r->n_server.linked)
			continue;
		sock_ip_str((const struct sockaddr *)&r->server, ip);
		if (buf_printf(f, max, " or (host %s and port %u)", ip,
		    (unsigned)r->n_server.key.port) == -1)
			return -1;
	}
	if (*sep == '\0' && buf_printf(f, max, "port %d and less 0", CAPT_PORT) == -1)
		return -1;
	return buf_printf(f, max, ")");
}

/* The filter as a string in out[size]: 0, or -1 if it does not fit. */
static int
capt_build_filter(struct capt *c, char *out, size_t size, int *wide)
{
	struct buf f = { 0 };
	int rc;

	if ((rc = capt_filter_text(c, &f, size - 1, wide)) == 0) {
		memcpy(out, buf_len(&f) ? buf_head(&f) : "", buf_len(&f));
		out[buf_len(&f)] = '\0';
	}
	buf_free(&f);
	return rc;
}

/* Main thread: close the live handle if nothing is armed or recorded. */
static void
capt_close_if_idle(struct capt *c)
{
	if (c->specs == NULL && c->recs == NULL)
		capt_close_live(c);
}

/*
 * Re-filter the live handle for what is armed and recorded now (any thread;
 * with nothing left, the filter stays until the main thread closes it).
 */
static void
capt_update_filter(struct capt *c)
{
	char f[CAPT_FILTER_MAX], err[CAP_ERR_LEN];
	int wide;

	if (c->specs == NULL && c->recs == NULL)
		return;
	if (c->live == NULL)
		return;			/* capt_arm opens it */
	if (capt_build_filter(c, f, sizeof(f), &wide) == -1) {
		/* Too many sessions to list: take every port-25 frame instead. */
		snprintf(f, sizeof(f), "tcp port %d", CAPT_PORT);
		wide = 1;
	}
	if (strcmp(f, c->filter) == 0)
		return;
	if (cap_live_setfilter(c->live, f, err) == -1) {
		log_warnx("capture: filter \"%s\": %s", f, err);
		return;
	}
	snprintf(c->filter, sizeof(c->filter), "%s", f);
	c->wide = wide;
	log_debug("capture: filter \"%s\"", f);
}

static int
capt_open_live(struct capt *c, char *err, size_t errlen)
{
	const struct config *cf = &c->conf->cf;
	char f[CAPT_FILTER_MAX], perr[CAP_ERR_LEN];
	int wide;

	if (c->live != NULL)
		return 0;
	if (capt_build_filter(c, f, sizeof(f), &wide) == -1)
		snprintf(f, sizeof(f), "tcp port %d", CAPT_PORT);
	if ((c->live = cap_live_open(cf->capture_interface, f, CAPT_PCAP_BUFFER, perr)) == NULL) {
		snprintf(err, errlen, "capture_interface %s: %s", cf->capture_interface, perr);
		return -1;
	}
	if (ev_add(c->px->loop, cap_live_fd(c->live), EV_READ, capt_read_cb, c) == -1) {
		snprintf(err, errlen, "capture: event loop: %s", strerror(errno));
		cap_live_close(c->live);
		c->live = NULL;
		return -1;
	}
	c->linktype = cap_live_linktype(c->live);
	snprintf(c->filter, sizeof(c->filter), "%s", f);
	c->wide = wide;
	log_info("capture: pcap handle open on %s, filter \"%s\"", cf->capture_interface, f);
	return 0;
}

/* ---- the tick: expiry, grace periods, pending frames ------------------------------- */

static void
capt_tick(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct capt *c = arg;
	struct capt_spec *sp, *spn;
	struct capt_rec *r, *rn;
	uint64_t now = ev_clock_ms();
	int changed = 0;

	(void)t;
	pthread_mutex_lock(&c->mu);
	for (sp = c->specs; sp != NULL; sp = spn) {
		spn = sp->next;
		if (sp->until_ms != 0 && now >= sp->until_ms) {
			capt_spec_remove(c, sp, "expired (--for)");
			changed = 1;
		}
	}
	capt_drain(c);
	for (r = c->recs; r != NULL; r = rn) {
		rn = r->next;
		if (r->close_ms != 0 && now >= r->close_ms) {
			capt_rec_free(c, r);
			changed = 1;
		}
	}
	/*
	 * capt_drain() above stamped the frames it read after `now` was taken:
	 * compared as at_ms + limit < now, never now - at_ms (which wraps).
	 */
	while (c->pend_len > 0 && (c->pending[c->pend_head].at_ms == 0 ||
	    c->pending[c->pend_head].at_ms + CAPT_PENDING_MS < now)) {
		c->pend_head = (c->pend_head + 1) % CAPT_PENDING_MAX;
		c->pend_len--;
	}
	if (changed)
		capt_update_filter(c);
	capt_close_if_idle(c);
	/* Armed while the handle is open: the session hooks (other threads) never arm it. */
	if (c->live != NULL)
		ev_timer_set(loop, &c->tick, CAPT_TICK_MS, capt_tick, c);
	pthread_mutex_unlock(&c->mu);
}

/* ---- the control verbs ---------------------------------------------------------------- */

int
capt_init(struct proxy *px)
{
	struct capt *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	if ((c->pending = calloc(CAPT_PENDING_MAX, sizeof(*c->pending))) == NULL) {
		free(c);
		return -1;
	}
	c->px = px;
	c->conf = pxconf_ref(px->conf);
	c->next_id = 1;
	pthread_mutex_init(&c->mu, NULL);
	px->capt = c;
	return 0;
}

void
capt_reconf(struct proxy *px)
{
	struct capt *c = px->capt;
	struct pxconf *old;

	pthread_mutex_lock(&c->mu);
	old = c->conf;
	c->conf = pxconf_ref(px->conf);
	pthread_mutex_unlock(&c->mu);
	pxconf_unref(old);
}

void
capt_free(struct proxy *px)
{
	struct capt *c = px->capt;
	struct capt_spec *sp;

	if (c == NULL)
		return;
	while (c->recs != NULL)
		capt_rec_free(c, c->recs);
	while ((sp = c->specs) != NULL) {
		c->specs = sp->next;
		free(sp);
	}
	if (c->live != NULL) {
		ev_del(px->loop, cap_live_fd(c->live));
		cap_live_close(c->live);
	}
	ev_timer_cancel(px->loop, &c->tick);
	pxconf_unref(c->conf);
	pthread_mutex_destroy(&c->mu);
	free(c->pending);
	free(c);
	px->capt = NULL;
}

static int
capt_arm_locked(struct proxy *px, enum capt_kind kind, const char *arg, unsigned sessions,
    unsigned long long for_s, unsigned *id, char *err, size_t errlen)
{
	const struct config *cf = &px->conf->cf;
	struct capt *c = px->capt;
	struct capt_spec *sp, **pp;
	char rerr[RULES_ERR_LEN];
	struct stat st;

	if (c->nspecs >= CAPT_MAX_ARMED) {
		snprintf(err, errlen, "%d captures are armed already; stop one first", CAPT_MAX_ARMED);
		return -1;
	}
	/* Made on first use (mode 0750), like the files in it never readable by all. */
	if (stat(cf->capture_dir, &st) == -1 && errno == ENOENT &&
	    mkdir(cf->capture_dir, 0750) == 0)
		log_info("capture: created %s", cf->capture_dir);
	errno = 0;
	if (stat(cf->capture_dir, &st) == -1 || !S_ISDIR(st.st_mode) ||
	    access(cf->capture_dir, W_OK | X_OK) == -1) {
		snprintf(err, errlen, "capture_dir %s: %s", cf->capture_dir,
		    errno ? strerror(errno) : "not a directory");
		return -1;
	}
	if ((sp = calloc(1, sizeof(*sp))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sp->info.kind = kind;
	sp->info.sessions_left = sessions;
	if (kind == CAPT_CLIENT) {
		if (rules_cidr_parse(arg, strlen(arg), &sp->cidr, rerr) == -1) {
			snprintf(err, errlen, "%s", rerr);
			free(sp);
			return -1;
		}
		rules_cidr_format(&sp->cidr, sp->info.match, sizeof(sp->info.match));
	} else if (arg != NULL) {
		if (strlen(arg) >= sizeof(sp->info.match)) {
			snprintf(err, errlen, "pattern too long");
			free(sp);
			return -1;
		}
		snprintf(sp->info.match, sizeof(sp->info.match), "%s", arg);
	}
	if (for_s != 0) {
		sp->until_ms = ev_clock_ms() + for_s * 1000ull;
		sp->info.until = time(NULL) + (time_t)for_s;
	}
	sp->info.id = c->next_id++;
	for (pp = &c->specs; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = sp;		/* in arming order: the oldest matching capture takes a session */
	c->nspecs++;
	if (capt_open_live(c, err, errlen) == -1) {
		*pp = NULL;
		c->nspecs--;
		free(sp);
		return -1;
	}
	capt_set_armed(c);
	capt_update_filter(c);
	if (!ev_timer_armed(&c->tick))
		ev_timer_set(px->loop, &c->tick, CAPT_TICK_MS, capt_tick, c);
	*id = sp->info.id;
	log_info("capture id=%u armed: %s%s%s sessions=%u%s", sp->info.id, capt_kind_str(kind),
	    sp->info.match[0] ? " " : "", sp->info.match, sessions, for_s ? " (with --for)" : "");
	return 0;
}

int
capt_arm(struct proxy *px, enum capt_kind kind, const char *arg, unsigned sessions,
    unsigned long long for_s, unsigned *id, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&px->capt->mu);
	rc = capt_arm_locked(px, kind, arg, sessions, for_s, id, err, errlen);
	pthread_mutex_unlock(&px->capt->mu);
	return rc;
}

int
capt_stop(struct proxy *px, unsigned id)
{
	struct capt *c = px->capt;
	struct capt_spec *sp;

	pthread_mutex_lock(&c->mu);
	if ((sp = capt_spec_find(c, id)) != NULL) {
		capt_spec_remove(c, sp, "stopped");
		capt_update_filter(c);
		capt_close_if_idle(c);
	}
	pthread_mutex_unlock(&c->mu);
	return sp != NULL ? 0 : -1;
}

unsigned
capt_list(const struct proxy *px, struct capt_info *out, unsigned max)
{
	struct capt *c = px->capt;
	const struct capt_spec *sp;
	unsigned n = 0;

	pthread_mutex_lock(&c->mu);
	for (sp = c->specs; sp != NULL && n < max; sp = sp->next)
		out[n++] = sp->info;
	pthread_mutex_unlock(&c->mu);
	return n;
}

unsigned
capt_files(const struct proxy *px, struct capt_file *out, unsigned max)
{
	struct capt *c = px->capt;
	const struct capt_rec *r;
	unsigned n, i;

	pthread_mutex_lock(&c->mu);
	for (n = 0; n < c->nrecent && n < max; n++) {
		i = (c->recent_head + CAPT_RECENT - 1 - n) % CAPT_RECENT;
		out[n] = c->recent[i];
		for (r = c->recs; r != NULL; r = r->next)
			if (r->recent == (int)i && r->cs != NULL) {
				out[n].bytes = cap_sess_bytes(r->cs);
				out[n].truncated = cap_sess_truncated(r->cs);
			}
	}
	pthread_mutex_unlock(&c->mu);
	return n;
}

void
capt_pcap_stats(const struct proxy *px, uint64_t *received, uint64_t *dropped)
{
	struct capt *c = px->capt;

	*received = *dropped = 0;
	pthread_mutex_lock(&c->mu);
	if (c->live != NULL)
		cap_live_stats(c->live, received, dropped);
	pthread_mutex_unlock(&c->mu);
}

/* ---- session hooks ------------------------------------------------------------------ */

static void
capt_session_start_locked(struct capt *c, struct session *s)
{
	const struct config *cf = &c->conf->cf;
	struct cap_sess_conf scf;
	struct capt_spec *sp, *client_spec = NULL;
	struct capt_rec *r;

	if (c->live == NULL || c->specs == NULL)
		return;
	for (sp = c->specs; sp != NULL && client_spec == NULL; sp = sp->next)
		if (sp->info.kind == CAPT_CLIENT &&
		    rules_cidr_match(&sp->cidr, (const struct sockaddr *)&s->caddr))
			client_spec = sp;
	if (client_spec == NULL && !capt_armed_wide(c))
		return;
	if (c->budget.max == 0)
		c->budget.max = CAPT_TOTAL_BUFFER > 4 * cf->capture_buffer ? CAPT_TOTAL_BUFFER :
		    4 * cf->capture_buffer;
	scf = (struct cap_sess_conf){
		.linktype = c->linktype,
		.buffer_max = cf->capture_buffer,
		.redact = cf->capture_redact,
	};
	if ((r = calloc(1, sizeof(*r))) == NULL || (r->cs = cap_sess_new(&scf, &c->budget)) == NULL) {
		log_warnx("capture session=%016llx: out of memory; not recorded",
		    (unsigned long long)s->id);
		free(r);
		return;
	}
	r->s = s;
	r->session_id = s->id;
	r->client = s->caddr;
	r->server = s->saddr;
	r->recent = -1;
	r->n_client.rec = r->n_server.rec = r;
	r->n_client.leg = CAP_LEG_CLIENT;
	r->n_server.leg = CAP_LEG_SERVER;
	capt_key_of_sa(&s->caddr, &r->n_client.key);
	r->next = c->recs;
	if (c->recs != NULL)
		c->recs->prev = r;
	c->recs = r;
	s->capt = r;
	capt_drain(c);		/* the handshake frames still waiting in the pcap buffer */
	capt_link(c, &r->n_client);
	capt_pending_take(c, r);
	if (client_spec != NULL)
		capt_rec_write(c, r, client_spec);
}

static void
capt_session_upstream_locked(struct capt *c, struct session *s,
    const struct sockaddr_storage *local)
{
	struct capt_rec *r = s->capt;

	if (r == NULL || local->ss_family == AF_UNSPEC)
		return;
	r->server = s->saddr;
	capt_unlink(c, &r->n_server);		/* called again once the address is known */
	capt_key_of_sa(local, &r->n_server.key);
	if (r->n_server.key.port == 0)
		return;		/* not bound yet: wants_port was 0, the filter is wide */
	capt_link(c, &r->n_server);
	if (!c->wide)
		capt_update_filter(c);
}

static void
capt_session_event_locked(struct capt *c, struct session *s, enum capt_kind kind,
    const char *arg, size_t len)
{
	struct capt_rec *r = s->capt;
	struct capt_spec *sp;

	if (r->spec_id != 0)
		return;
	for (sp = c->specs; sp != NULL; sp = sp->next) {
		if (sp->info.kind != kind)
			continue;
		if (kind == CAPT_REFUSED ||
		    rules_sender_match(sp->info.match, strlen(sp->info.match), arg, len)) {
			capt_drain(c);
			capt_rec_write(c, r, sp);
			return;
		}
	}
}

static void
capt_session_end_locked(struct capt *c, struct session *s)
{
	struct capt_rec *r = s->capt;

	r->s = NULL;
	s->capt = NULL;
	if (r->spec_id == 0) {
		capt_rec_free(c, r);		/* never matched: its frames go */
		capt_update_filter(c);
		return;
	}
	r->close_ms = ev_clock_ms() + CAPT_GRACE_MS;	/* the tick closes it */
}

/*
 * The hooks, on the session's worker. s->capt is the session's own (only
 * its thread sets it, under the lock), so a session that is not recorded
 * never takes the lock.
 */
void
capt_session_start(struct session *s)
{
	struct capt *c = s->px->capt;

	if (c == NULL || !__atomic_load_n(&c->armed, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&c->mu);
	capt_session_start_locked(c, s);
	pthread_mutex_unlock(&c->mu);
}

int
capt_session_connect(struct session *s, const struct sockaddr *src)
{
	struct capt *c = s->px->capt;
	const struct sockaddr *dst = (const struct sockaddr *)&s->saddr;
	struct sockaddr_storage local;
	int fd;

	/*
	 * Under the lock from before the SYN until both legs are linked: the
	 * main thread reads the pcap handle, and a frame of this leg read in
	 * between would belong to no session.
	 */
	pthread_mutex_lock(&c->mu);
	if (s->capt != NULL && !c->wide) {
		/* client captures only: the port enters the filter before the SYN leaves */
		if ((fd = sock_upstream_bound(dst, src, &local)) != -1) {
			capt_session_upstream_locked(c, s, &local);
			if (sock_upstream_connect(fd, dst) == -1)
				fd = -1;	/* closed by it */
		}
	} else
		fd = sock_connect(dst, src);
	/* bound to the wildcard: the address is known once connect() chose a route */
	if (fd != -1 && s->capt != NULL && sock_local_addr(fd, &local) == 0)
		capt_session_upstream_locked(c, s, &local);
	pthread_mutex_unlock(&c->mu);
	return fd;
}

void
capt_session_event(struct session *s, enum capt_kind kind, const char *arg, size_t len)
{
	struct capt *c = s->px->capt;

	if (s->capt == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	capt_session_event_locked(c, s, kind, arg, len);
	pthread_mutex_unlock(&c->mu);
}

void
capt_session_end(struct session *s)
{
	struct capt *c = s->px->capt;

	if (s->capt == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	capt_session_end_locked(c, s);
	pthread_mutex_unlock(&c->mu);
}

/*
 * nfq: first-packet admission through NFQUEUE. Public header of the module.
 *
 * Three parts:
 *  - the packet parser (nq_pkt.c): what NFQUEUE hands over as NFQA_PAYLOAD
 *    (an IPv4 or IPv6 packet from its IP header, no link layer, possibly cut
 *    at the queue's copy range) in, a connection tuple out. Pure.
 *  - the queue (nfq.c): one bound NFQUEUE number over libmnl and the mnl API
 *    of libnetfilter_queue (nfq_nlmsg_*). Pull API: nq_next() hands out one
 *    packet at a time until NQ_AGAIN; nq_verdict() queues the verdict, and
 *    the verdicts go out batched, several netlink messages per sendmsg().
 *  - the rate table (nq_rate.c): a token bucket per client address with
 *    bounded memory, for client_rate. Pure (the caller passes the clock).
 *
 * Never: logs, includes anything from proxy/, rules/ or capture/. Errors are
 * -1 with errno, or text in err[NQ_ERR_LEN]. A struct nq or struct nq_rate
 * belongs to one thread at a time (no locking inside); the parser keeps no
 * state, so any thread may call it.
 */
#ifndef SMTPWALL_NFQ_H
#define SMTPWALL_NFQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* TCP flag bits of nq_tuple.tcp_flags, as on the wire (RFC 9293 §3.1). */
#define NQ_TCP_FIN	0x01
#define NQ_TCP_SYN	0x02
#define NQ_TCP_RST	0x04
#define NQ_TCP_PSH	0x08
#define NQ_TCP_ACK	0x10
#define NQ_TCP_URG	0x20
#define NQ_TCP_ECE	0x40
#define NQ_TCP_CWR	0x80

/*
 * One packet's connection identity. Addresses are in network byte order, an
 * IPv4 address in the first 4 bytes and the other 12 zero; ports are in host
 * order. family is AF_INET or AF_INET6.
 */
struct nq_tuple {
	sa_family_t	family;
	uint8_t		src[16];
	uint8_t		dst[16];
	uint16_t	sport;
	uint16_t	dport;
	uint8_t		tcp_flags;
	uint32_t	seq;		/* host order */
	size_t		payload_off;	/* TCP payload: offset from the IP header */
	size_t		payload_len;	/* as the IP length declares it, cut at the packet's end */
};

/* Longest IPv6 extension header chain walked; a longer one is BAD_HEADER. */
#define NQ_PKT_MAX_EXT_HEADERS	8

/* Why nq_pkt_parse refused a packet; always negative. */
enum nq_pkt_err {
	NQ_PKT_SHORT = -1,	/* cut before the TCP ports and flags */
	NQ_PKT_NOT_IP = -2,	/* IP version neither 4 nor 6 */
	NQ_PKT_NOT_TCP = -3,	/* another transport (UDP, ICMP, ESP, ...) */
	NQ_PKT_FRAGMENT = -4,	/* a non-first fragment: no TCP header in it */
	NQ_PKT_BAD_HEADER = -5,	/* lengths or offsets that contradict each other */
};

/*
 * Parse the IP and TCP headers of pkt[0..len). Returns 0 and fills *out, or a
 * negative enum nq_pkt_err and leaves *out untouched. Reads nothing outside
 * pkt[0..len) and nothing past the IPv4 total length / IPv6 payload length
 * (trailing padding is ignored). A packet cut by the copy range parses as
 * long as the first 14 bytes of its TCP header (ports, data offset, flags)
 * are inside len. IPv4 options are skipped; IPv6 hop-by-hop, routing,
 * fragment and destination options headers are walked, at most
 * NQ_PKT_MAX_EXT_HEADERS of them. Checksums are not verified (the kernel
 * has, or will). A length field of 0 (BIG TCP GSO) is BAD_HEADER: a SYN is
 * never such a packet.
 */
int nq_pkt_parse(const uint8_t *pkt, size_t len, struct nq_tuple *out);

/* A short static English text for a value nq_pkt_parse returned. */
const char *nq_pkt_strerror(int reason);

/* 1 if the packet opens a connection: SYN set and ACK clear; otherwise 0. */
int nq_tuple_is_syn(const struct nq_tuple *t);

/*
 * The client (source) address and port as a sockaddr_in or sockaddr_in6 in
 * *out, zeroed first; ss_family stays AF_UNSPEC if t->family is neither.
 */
void nq_tuple_client(const struct nq_tuple *t, struct sockaddr_storage *out);

/* ---- the queue (nfq.c) ------------------------------------------------- */

#define NQ_ERR_LEN	256

struct nq;				/* opaque: one bound queue */

struct nq_conf {
	uint16_t	queue;		/* the queue number */
	int		fail_open;	/* NFQA_CFG_F_FAIL_OPEN: accept, not drop, when the queue is full */
	uint32_t	maxlen;		/* NFQA_CFG_QUEUE_MAXLEN; 0: NQ_DEFAULT_MAXLEN */
	int		rcvbuf;		/* SO_RCVBUFFORCE bytes; 0: NQ_DEFAULT_RCVBUF */
};
#define NQ_DEFAULT_MAXLEN	8192		/* packets waiting in the kernel */
#define NQ_DEFAULT_RCVBUF	(8 << 20)
#define NQ_COPY_RANGE		128		/* bytes of each packet copied: IP + TCP headers */

/* One queued packet, valid until the next nq_next() or nq_close(). */
struct nq_packet {
	uint32_t	 id;		/* the packet id to give nq_verdict() */
	const uint8_t	*payload;	/* IP header onwards, possibly cut at NQ_COPY_RANGE */
	size_t		 len;
	uint32_t	 ifindex;	/* NFQA_IFINDEX_INDEV, 0 if absent */
	uint32_t	 mark;		/* NFQA_MARK, 0 if absent */
};

enum nq_verdict_kind { NQ_DROP = 0, NQ_ACCEPT = 1 };

/*
 * Open a netlink socket, bind it to conf->queue in copy-packet mode with
 * NQ_COPY_RANGE bytes, set the flags (GSO; FAIL_OPEN when asked), the
 * queue length and the receive buffer, and NETLINK_NO_ENOBUFS. Each step
 * waits for the kernel's ack (at most 5 s each), so its refusal is
 * reported here. The socket is non-blocking. NULL with err set on failure,
 * naming the queue, the step and the cause, e.g. "nfqueue 3: bind:
 * Operation not permitted (another process holds this queue: netlink port
 * id N)" or "nfqueue 3: bind: Permission denied (needs CAP_NET_ADMIN)"
 * (the kernel answers EPERM or EACCES without the capability, EPERM for a
 * queue bound elsewhere; /proc/net/netfilter/nfnetlink_queue tells them
 * apart). Packets queued while the queue was being set up are given back
 * to their hook (NF_REPEAT), which queues them again, configured.
 */
struct nq	*nq_open(const struct nq_conf *conf, char err[NQ_ERR_LEN]);
/* The socket, for an event loop or poll(): readable when unread packets wait. */
int		 nq_fd(const struct nq *);
/* Flush pending verdicts, unbind, close. NULL is fine. */
void		 nq_close(struct nq *);

#define NQ_AGAIN	0
/*
 * The next queued packet: 1 with *pkt filled, NQ_AGAIN when none is waiting
 * (pending verdicts have then been sent), or -1 with errno on a socket
 * error (or a failed send of pending verdicts, which stay pending).
 * Messages that are not packets (errors, acks) are consumed silently; so
 * are packets without a payload, given back with NF_REPEAT. Call it until
 * NQ_AGAIN before waiting on nq_fd() again: one receive reads many packets,
 * and those already read do not make the fd readable.
 * Every packet handed out must get exactly one nq_verdict().
 */
int		 nq_next(struct nq *, struct nq_packet *pkt);
/*
 * Queue a verdict for packet id; with NQ_ACCEPT and set_mark, the packet's
 * mark becomes `mark` (NFQA_MARK; a drop ignores it). Verdicts go out
 * together, several netlink messages in one sendto(), when the batch is
 * full, before nq_next() reads again (so at the latest at NQ_AGAIN), by
 * nq_flush() and by nq_close(). 0, or -1 with errno if the batch was full
 * and could not be sent: this verdict was not queued (it may be given
 * again), the pending ones stay queued for the next try. nq_flush(): 0, or
 * -1 with errno, the pending verdicts kept. A packet that never gets its
 * verdict waits in the kernel until the queue is unbound, then is dropped.
 */
int		 nq_verdict(struct nq *, uint32_t id, enum nq_verdict_kind v, int set_mark,
		     uint32_t mark);
int		 nq_flush(struct nq *);

struct nq_counters {
	uint64_t	packets;	/* handed out by nq_next */
	uint64_t	verdicts;	/* sent to the kernel */
	uint64_t	sends;		/* sendmsg() calls: verdicts / sends is the batching */
	uint64_t	enobufs;	/* receive overruns reported (packets lost to the queue's default) */
};
void		 nq_get_counters(const struct nq *, struct nq_counters *out);

/* ---- the rate table (nq_rate.c) ------------------------------------------ */

struct nq_rate;				/* opaque */

#define NQ_RATE_MAX_PER_S	(7 * 86400)	/* longest period: a week */
#define NQ_RATE_MAX_ENTRIES	(1u << 24)

/*
 * A token bucket per client: `rate` connections per `per_s` seconds, burst
 * `rate`, refilled continuously (exactly, in integer arithmetic that cannot
 * overflow). IPv4 addresses are keyed whole; IPv6 ones by their /64 (one
 * end site, as rotating addresses inside it must not multiply the
 * allowance). At most max_entries clients are tracked, in memory allocated
 * here once; when full, the least recently seen one is evicted (it starts
 * again with a full bucket). The hash is keyed with a random seed from
 * getrandom(). NULL with errno: ENOMEM, EINVAL when rate or per_s or
 * max_entries is 0, per_s > NQ_RATE_MAX_PER_S or max_entries >
 * NQ_RATE_MAX_ENTRIES, or getrandom()'s error.
 */
struct nq_rate	*nq_rate_new(unsigned rate, unsigned per_s, size_t max_entries);
void		 nq_rate_free(struct nq_rate *);
/*
 * One new connection from addr (family AF_INET: 4 bytes, AF_INET6: 16, in
 * network order, as in struct nq_tuple) at now_ms (any monotonic clock):
 * 1 if within the rate (a token was taken), 0 if over it. Either way the
 * client counts as seen now. A now_ms earlier than one already seen for
 * this client refills nothing. Another family is never limited (1) and
 * not tracked.
 */
int		 nq_rate_take(struct nq_rate *, sa_family_t family, const uint8_t *addr,
		     uint64_t now_ms);
size_t		 nq_rate_count(const struct nq_rate *);	/* clients tracked */
uint64_t	 nq_rate_evictions(const struct nq_rate *);

#endif /* SMTPWALL_NFQ_H */

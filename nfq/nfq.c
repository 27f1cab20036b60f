/*
 * nfq.c: one NFQUEUE queue over libmnl and the mnl API of libnetfilter_queue.
 *
 * Owns the netlink socket, a receive area of NQ_RECV_SLOTS datagram slots
 * that one recvmmsg() fills, and a send buffer of verdict messages that one
 * sendto() empties. Never logs, never blocks once nq_open() has returned
 * (nq_open itself waits up to NQ_ACK_TIMEOUT_MS for the kernel's answers),
 * and never acts on a datagram that did not come from the kernel: any local
 * process may send to a netlink port id, and a forged packet message would
 * otherwise lend its id a verdict.
 *
 * Receiving. The kernel sends each queued packet as its own datagram, so
 * the batching on this side is recvmmsg(): up to NQ_RECV_SLOTS datagrams a
 * system call. A slot holds the largest message the queue can send: the
 * copy range plus nf-queue.c's MNL_SOCKET_BUFFER_SIZE/2 for the rest of
 * the message. Each datagram is walked message by message (there may be
 * several); errors, acks and messages of other types or queues are skipped.
 *
 * Sending. nq_verdict() appends one NFQNL_MSG_VERDICT message to the send
 * buffer; nfnetlink processes every message of a datagram in turn, so one
 * sendto() carries up to NQ_SEND_MAX verdicts. The buffer goes out when it
 * is full, before each receive (so before nq_next returns NQ_AGAIN), and at
 * nq_flush() and nq_close(). The kernel takes a datagram whole or not at
 * all, so a failed send keeps the batch for the next try.
 * NFQNL_MSG_VERDICT_BATCH is not used: it gives one verdict to every queued
 * id up to a given one, which a mixed run of accepts and drops cannot use.
 *
 * Setup. The queue is bound, then its copy mode and length, then its flags
 * are set, each waiting for the kernel's ack, so a failure names its step.
 * A packet queued in between (before the copy mode, so without a payload)
 * goes back to its hook with NF_REPEAT, which queues it again to the now
 * configured queue; so does any packet that arrives without a payload.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#include "nfq/nfq.h"

#define NQ_RECV_SLOTS		64	/* datagrams per recvmmsg() */
#define NQ_SEND_MAX		64	/* verdicts per sendto() */
#define NQ_ACK_TIMEOUT_MS	5000	/* nq_open's wait for each ack */
/* The longest verdict message: header, nfgenmsg, verdict header, mark. */
#define NQ_VERDICT_MSG_MAX	(MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg)) + \
    MNL_ALIGN(MNL_ATTR_HDRLEN + sizeof(struct nfqnl_msg_verdict_hdr)) + \
    MNL_ALIGN(MNL_ATTR_HDRLEN + sizeof(uint32_t)))
#define NQ_CFG_MSG_MAX		256	/* a config message: header and at most 5 attributes */

struct nq {
	struct mnl_socket	*nq_nl;
	int			 nq_fd;
	uint16_t		 nq_queue;
	uint32_t		 nq_portid;
	uint32_t		 nq_seq;
	int			 nq_ready;	/* configured: packets are handed out */

	/* receive: nq_nrecv datagrams, walking datagram nq_cur at offset nq_off */
	char			*nq_rbuf;	/* NQ_RECV_SLOTS slots of nq_slot bytes */
	size_t			 nq_slot;
	struct mmsghdr		 nq_mmsg[NQ_RECV_SLOTS];
	struct iovec		 nq_iov[NQ_RECV_SLOTS];
	struct sockaddr_nl	 nq_from[NQ_RECV_SLOTS];
	unsigned		 nq_nrecv;
	unsigned		 nq_cur;
	size_t			 nq_off;

	/* send: nq_npend verdict messages in nq_sbuf[0..nq_slen) */
	char			*nq_sbuf;	/* NQ_SEND_MAX * NQ_VERDICT_MSG_MAX bytes */
	size_t			 nq_slen;
	unsigned		 nq_npend;

	struct nq_counters	 nq_cnt;		/* written by the queue's thread only: NQ_COUNT */
};

/*
 * One writer (the queue's thread), read by the control socket's: a relaxed
 * atomic store of the sum, no locked instruction, and no torn or racy read.
 */
#define NQ_COUNT(nq, field, n) \
	__atomic_store_n(&(nq)->nq_cnt.field, (nq)->nq_cnt.field + (n), __ATOMIC_RELAXED)


/* ---- sending --------------------------------------------------------------- */

int
nq_flush(struct nq *nq)
{
	ssize_t n;

	while (nq->nq_npend > 0) {
		n = mnl_socket_sendto(nq->nq_nl, nq->nq_sbuf, nq->nq_slen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		NQ_COUNT(nq, sends, 1);
		NQ_COUNT(nq, verdicts, nq->nq_npend);
		nq->nq_npend = 0;
		nq->nq_slen = 0;
	}
	return 0;
}

/* Queue a verdict message; verdict is the kernel's NF_* value. */
static int
nq_put_verdict(struct nq *nq, uint32_t id, uint32_t verdict, int set_mark, uint32_t mark)
{
	struct nlmsghdr *nlh;

	if (nq->nq_npend == NQ_SEND_MAX && nq_flush(nq) == -1)
		return -1;
	nlh = nfq_nlmsg_put(nq->nq_sbuf + nq->nq_slen, NFQNL_MSG_VERDICT, nq->nq_queue);
	nlh->nlmsg_seq = ++nq->nq_seq;
	nfq_nlmsg_verdict_put(nlh, (int)id, (int)verdict);
	if (set_mark)
		nfq_nlmsg_verdict_put_mark(nlh, mark);
	nq->nq_slen += nlh->nlmsg_len;
	nq->nq_npend++;
	return 0;
}

int
nq_verdict(struct nq *nq, uint32_t id, enum nq_verdict_kind v, int set_mark, uint32_t mark)
{
	if (v == NQ_ACCEPT)
		return nq_put_verdict(nq, id, NF_ACCEPT, set_mark, mark);
	return nq_put_verdict(nq, id, NF_DROP, 0, 0);
}

/* ---- receiving ------------------------------------------------------------- */

/* Fill the slots: the number of datagrams, or -1 with errno (EAGAIN: none). */
static int
nq_recv(struct nq *nq)
{
	unsigned i;
	int n;

	for (i = 0; i < NQ_RECV_SLOTS; i++) {
		nq->nq_mmsg[i].msg_hdr.msg_namelen = sizeof(nq->nq_from[i]);
		nq->nq_mmsg[i].msg_hdr.msg_flags = 0;
		nq->nq_mmsg[i].msg_len = 0;
	}
	nq->nq_nrecv = nq->nq_cur = 0;
	nq->nq_off = 0;
	if ((n = recvmmsg(nq->nq_fd, nq->nq_mmsg, NQ_RECV_SLOTS, MSG_DONTWAIT, NULL)) == -1)
		return -1;
	nq->nq_nrecv = (unsigned)n;
	return n;
}

/* 1 if datagram i is to be read: the kernel sent it, and it is whole. */
static int
nq_datagram_ok(struct nq *nq, unsigned i)
{
	const struct msghdr *mh = &nq->nq_mmsg[i].msg_hdr;

	if (mh->msg_namelen != sizeof(struct sockaddr_nl) ||
	    nq->nq_from[i].nl_family != AF_NETLINK || nq->nq_from[i].nl_pid != 0)
		return 0;
	if (mh->msg_flags & MSG_TRUNC) {
		/* Cannot happen with slots this size; if it did, a packet was lost. */
		NQ_COUNT(nq, enobufs, 1);
		return 0;
	}
	return 1;
}

/* The next netlink message of the received datagrams; NULL once used up. */
static const struct nlmsghdr *
nq_msg_next(struct nq *nq)
{
	const struct nlmsghdr *nlh;
	size_t len;

	for (; nq->nq_cur < nq->nq_nrecv; nq->nq_cur++, nq->nq_off = 0) {
		len = nq->nq_mmsg[nq->nq_cur].msg_len;
		if (nq->nq_off == 0 && !nq_datagram_ok(nq, nq->nq_cur))
			continue;
		if (nq->nq_off >= len)
			continue;
		nlh = (const struct nlmsghdr *)(nq->nq_rbuf + nq->nq_cur * nq->nq_slot + nq->nq_off);
		if (!mnl_nlmsg_ok(nlh, (int)(len - nq->nq_off)))
			continue;
		nq->nq_off += MNL_ALIGN(nlh->nlmsg_len);
		return nlh;
	}
	return NULL;
}

/* Keep the attributes nq_next uses, each only if it has its proper size. */
static int
nq_attr_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(attr);

	switch (type) {
	case NFQA_PACKET_HDR:
		if (mnl_attr_validate2(attr, MNL_TYPE_UNSPEC,
		    sizeof(struct nfqnl_msg_packet_hdr)) == -1)
			return MNL_CB_OK;
		break;
	case NFQA_MARK:
	case NFQA_IFINDEX_INDEV:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) == -1)
			return MNL_CB_OK;
		break;
	case NFQA_PAYLOAD:
		break;
	default:
		return MNL_CB_OK;
	}
	tb[type] = attr;
	return MNL_CB_OK;
}

static uint32_t
nq_attr_u32(const struct nlattr *a)
{
	return a == NULL ? 0 : ntohl(mnl_attr_get_u32(a));
}

/*
 * One message: 1 with *pkt filled if it is a packet of our queue to hand
 * out, 0 if it was consumed otherwise (not a packet, not ours, or sent
 * back with NF_REPEAT), -1 with errno if that verdict could not be queued.
 * A packet message without NFQA_PACKET_HDR has no id to answer: skipped.
 */
static int
nq_msg_packet(struct nq *nq, const struct nlmsghdr *nlh, struct nq_packet *pkt)
{
	const struct nlattr *tb[NFQA_MAX + 1] = { 0 };
	const struct nfqnl_msg_packet_hdr *ph;
	const struct nfgenmsg *nfg;
	uint32_t id;

	if (nlh->nlmsg_type != (NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET) ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(*nfg))
		return 0;
	nfg = mnl_nlmsg_get_payload(nlh);
	if (ntohs(nfg->res_id) != nq->nq_queue)
		return 0;
	(void)mnl_attr_parse(nlh, sizeof(*nfg), nq_attr_cb, tb);
	if (tb[NFQA_PACKET_HDR] == NULL)
		return 0;
	ph = mnl_attr_get_payload(tb[NFQA_PACKET_HDR]);
	id = ntohl(ph->packet_id);
	if (!nq->nq_ready || tb[NFQA_PAYLOAD] == NULL)
		return nq_put_verdict(nq, id, NF_REPEAT, 0, 0) == -1 ? -1 : 0;
	pkt->id = id;
	pkt->payload = mnl_attr_get_payload(tb[NFQA_PAYLOAD]);
	pkt->len = mnl_attr_get_payload_len(tb[NFQA_PAYLOAD]);
	pkt->ifindex = nq_attr_u32(tb[NFQA_IFINDEX_INDEV]);
	pkt->mark = nq_attr_u32(tb[NFQA_MARK]);
	return 1;
}

int
nq_next(struct nq *nq, struct nq_packet *pkt)
{
	const struct nlmsghdr *nlh;
	int r;

	for (;;) {
		while ((nlh = nq_msg_next(nq)) != NULL) {
			if ((r = nq_msg_packet(nq, nlh, pkt)) == 1)
				NQ_COUNT(nq, packets, 1);
			if (r != 0)
				return r;
		}
		if (nq_flush(nq) == -1)
			return -1;
		if ((r = nq_recv(nq)) == 0)
			return NQ_AGAIN;
		if (r == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return NQ_AGAIN;
			if (errno == ENOBUFS)
				NQ_COUNT(nq, enobufs, 1);
			else if (errno != EINTR)
				return -1;
		}
	}
}

/* ---- setup ----------------------------------------------------------------- */

static void
nq_err(char err[NQ_ERR_LEN], uint16_t queue, const char *step, int e, const char *hint)
{
	snprintf(err, NQ_ERR_LEN, "nfqueue %u: %s: %s%s", queue, step, strerror(e), hint);
}

static int
nq_ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : (int)ms;
}

/*
 * If nlh is the kernel's answer to our request seq: 1, with *error its
 * (negative) errno or 0 for an ack. Otherwise 0.
 */
static int
nq_msg_ack(const struct nq *nq, const struct nlmsghdr *nlh, uint32_t seq, int *error)
{
	const struct nlmsgerr *e;

	if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq != seq ||
	    nlh->nlmsg_pid != nq->nq_portid ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(*e))
		return 0;
	e = mnl_nlmsg_get_payload(nlh);
	*error = e->error;
	return 1;
}

/*
 * Wait for the answer to request seq: 0 on an ack, -1 with errno the
 * kernel's error, or ETIMEDOUT. Packets meanwhile are sent back (NF_REPEAT);
 * what follows the answer stays for nq_next.
 */
static int
nq_wait_ack(struct nq *nq, uint32_t seq)
{
	struct pollfd pfd = { .fd = nq->nq_fd, .events = POLLIN };
	const struct nlmsghdr *nlh;
	struct nq_packet pkt;
	struct timespec deadline;
	int error, ms, r;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += NQ_ACK_TIMEOUT_MS / 1000;
	for (;;) {
		while ((nlh = nq_msg_next(nq)) != NULL) {
			if (nq_msg_ack(nq, nlh, seq, &error)) {
				if (error == 0)
					return 0;
				errno = -error;
				return -1;
			}
			if (nq_msg_packet(nq, nlh, &pkt) == -1)
				return -1;
		}
		if (nq_flush(nq) == -1)
			return -1;
		if ((r = nq_recv(nq)) > 0)
			continue;
		if (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ENOBUFS)
			return -1;
		if ((ms = nq_ms_left(&deadline)) == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&pfd, 1, ms) == -1 && errno != EINTR)
			return -1;
	}
}

/* Send a config message built in buf and wait for its ack. */
static int
nq_config(struct nq *nq, struct nlmsghdr *nlh)
{
	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = ++nq->nq_seq;
	if (mnl_socket_sendto(nq->nq_nl, nlh, nlh->nlmsg_len) == -1)
		return -1;
	return nq_wait_ack(nq, nlh->nlmsg_seq);
}

/*
 * Why the kernel refused to bind. Without CAP_NET_ADMIN nfnetlink answers
 * EACCES or EPERM; a queue bound by another socket is EPERM too (EBUSY is
 * only our own second bind). /proc tells the EPERMs apart: it lists a bound
 * queue with its holder's netlink port id (the holder's pid, unless that
 * process has several netlink sockets).
 */
static void
nq_bind_hint(const struct nq *nq, int e, char *hint, size_t len)
{
	unsigned q, portid;
	char line[256];
	FILE *f;

	hint[0] = '\0';
	if (e == EBUSY)
		snprintf(hint, len, " (another process holds this queue?)");
	else if (e == EOPNOTSUPP || e == ENOENT)
		snprintf(hint, len, " (is the nfnetlink_queue module available?)");
	if (e == EACCES)
		snprintf(hint, len, " (needs CAP_NET_ADMIN)");
	if (e != EPERM)
		return;
	snprintf(hint, len, " (needs CAP_NET_ADMIN)");
	if ((f = fopen("/proc/net/netfilter/nfnetlink_queue", "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%u %u", &q, &portid) == 2 && q == nq->nq_queue &&
		    portid != nq->nq_portid) {
			snprintf(hint, len, " (another process holds this queue: netlink port id %u)",
			    portid);
			break;
		}
	}
	fclose(f);
}

/* Bind, copy mode and length, flags: each acked. -1 with err set. */
static int
nq_setup_queue(struct nq *nq, const struct nq_conf *conf, char err[NQ_ERR_LEN])
{
	union {
		struct nlmsghdr	h;
		char		b[NQ_CFG_MSG_MAX];
	} u;
	struct nlmsghdr *nlh;
	uint32_t mask = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;
	char hint[128];

	memset(u.b, 0, sizeof(u.b));	/* libmnl leaves attribute padding as it finds it */
	nlh = nfq_nlmsg_put(u.b, NFQNL_MSG_CONFIG, nq->nq_queue);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
	if (nq_config(nq, nlh) == -1) {
		nq_bind_hint(nq, errno, hint, sizeof(hint));
		nq_err(err, nq->nq_queue, "bind", errno, hint);
		return -1;
	}

	memset(u.b, 0, sizeof(u.b));	/* libmnl leaves attribute padding as it finds it */
	nlh = nfq_nlmsg_put(u.b, NFQNL_MSG_CONFIG, nq->nq_queue);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, NQ_COPY_RANGE);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, conf->maxlen != 0 ? conf->maxlen : NQ_DEFAULT_MAXLEN);
	if (nq_config(nq, nlh) == -1) {
		nq_err(err, nq->nq_queue, "copy mode and queue length", errno, "");
		return -1;
	}

	/* The mask says which flags this message sets; FAIL_OPEN is set or cleared. */
	memset(u.b, 0, sizeof(u.b));	/* libmnl leaves attribute padding as it finds it */
	nlh = nfq_nlmsg_put(u.b, NFQNL_MSG_CONFIG, nq->nq_queue);
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS,
	    htonl(NFQA_CFG_F_GSO | (conf->fail_open ? NFQA_CFG_F_FAIL_OPEN : 0)));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(mask));
	if (nq_config(nq, nlh) == -1) {
		nq_err(err, nq->nq_queue, "flags (GSO, FAIL_OPEN)", errno,
		    errno == EOPNOTSUPP ? " (kernel too old?)" : "");
		return -1;
	}
	return 0;
}

/* The socket and its options, before the bind so no packet meets defaults. */
static int
nq_setup_socket(struct nq *nq, const struct nq_conf *conf, char err[NQ_ERR_LEN])
{
	int rcvbuf = conf->rcvbuf > 0 ? conf->rcvbuf : NQ_DEFAULT_RCVBUF;
	int one = 1;

	if ((nq->nq_nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC)) == NULL) {
		nq_err(err, nq->nq_queue, "netlink socket", errno, "");
		return -1;
	}
	nq->nq_fd = mnl_socket_get_fd(nq->nq_nl);
	if (setsockopt(nq->nq_fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) == -1 &&
	    setsockopt(nq->nq_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) == -1) {
		nq_err(err, nq->nq_queue, "receive buffer", errno, "");
		return -1;
	}
	if (mnl_socket_setsockopt(nq->nq_nl, NETLINK_NO_ENOBUFS, &one, sizeof(one)) == -1) {
		nq_err(err, nq->nq_queue, "NETLINK_NO_ENOBUFS", errno, "");
		return -1;
	}
	if (mnl_socket_bind(nq->nq_nl, 0, MNL_SOCKET_AUTOPID) == -1) {
		nq_err(err, nq->nq_queue, "netlink bind", errno, "");
		return -1;
	}
	nq->nq_portid = mnl_socket_get_portid(nq->nq_nl);
	return 0;
}

/* The buffers: the receive slots with their iovecs, the send buffer. */
static int
nq_alloc_buffers(struct nq *nq)
{
	unsigned i;

	/* The copy range plus nf-queue.c's allowance for the rest, 8-aligned. */
	nq->nq_slot = ((size_t)NQ_COPY_RANGE + (size_t)MNL_SOCKET_BUFFER_SIZE / 2 + 7) & ~(size_t)7;
	if ((nq->nq_rbuf = malloc(NQ_RECV_SLOTS * nq->nq_slot)) == NULL ||
	    (nq->nq_sbuf = malloc(NQ_SEND_MAX * NQ_VERDICT_MSG_MAX)) == NULL)
		return -1;
	for (i = 0; i < NQ_RECV_SLOTS; i++) {
		nq->nq_iov[i].iov_base = nq->nq_rbuf + i * nq->nq_slot;
		nq->nq_iov[i].iov_len = nq->nq_slot;
		nq->nq_mmsg[i].msg_hdr.msg_name = &nq->nq_from[i];
		nq->nq_mmsg[i].msg_hdr.msg_iov = &nq->nq_iov[i];
		nq->nq_mmsg[i].msg_hdr.msg_iovlen = 1;
	}
	return 0;
}

/*
 * The packets read with the last ack go back too (NF_REPEAT): the caller
 * waits for the fd before its first nq_next(), and that would not wake for
 * packets already read.
 */
static int
nq_requeue_rest(struct nq *nq)
{
	const struct nlmsghdr *nlh;
	struct nq_packet pkt;

	while ((nlh = nq_msg_next(nq)) != NULL)
		if (nq_msg_packet(nq, nlh, &pkt) == -1)
			return -1;
	return nq_flush(nq);
}

struct nq *
nq_open(const struct nq_conf *conf, char err[NQ_ERR_LEN])
{
	struct nq *nq;

	if ((nq = calloc(1, sizeof(*nq))) == NULL) {
		nq_err(err, conf->queue, "open", errno, "");
		return NULL;
	}
	nq->nq_queue = conf->queue;
	if (nq_alloc_buffers(nq) == -1) {
		nq_err(err, conf->queue, "open", errno, "");
		nq_close(nq);
		return NULL;
	}
	if (nq_setup_socket(nq, conf, err) == -1 || nq_setup_queue(nq, conf, err) == -1) {
		/* Closing the socket unbinds the queue if the bind was done. */
		nq_close(nq);
		return NULL;
	}
	if (nq_requeue_rest(nq) == -1) {
		nq_err(err, conf->queue, "verdicts", errno, "");
		nq_close(nq);
		return NULL;
	}
	nq->nq_ready = 1;
	return nq;
}

int
nq_fd(const struct nq *nq)
{
	return nq->nq_fd;
}

void
nq_close(struct nq *nq)
{
	union {
		struct nlmsghdr	h;
		char		b[NQ_CFG_MSG_MAX];
	} u;
	struct nlmsghdr *nlh;

	if (nq == NULL)
		return;
	if (nq->nq_nl != NULL) {
		(void)nq_flush(nq);
		if (nq->nq_ready) {
			memset(u.b, 0, sizeof(u.b));	/* libmnl leaves attribute padding as it finds it */
			nlh = nfq_nlmsg_put(u.b, NFQNL_MSG_CONFIG, nq->nq_queue);
			nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_UNBIND);
			nlh->nlmsg_seq = ++nq->nq_seq;
			(void)mnl_socket_sendto(nq->nq_nl, nlh, nlh->nlmsg_len);
		}
		mnl_socket_close(nq->nq_nl);
	}
	free(nq->nq_rbuf);
	free(nq->nq_sbuf);
	free(nq);
}

void
nq_get_counters(const struct nq *nq, struct nq_counters *out)
{
	out->packets = __atomic_load_n(&nq->nq_cnt.packets, __ATOMIC_RELAXED);
	out->verdicts = __atomic_load_n(&nq->nq_cnt.verdicts, __ATOMIC_RELAXED);
	out->sends = __atomic_load_n(&nq->nq_cnt.sends, __ATOMIC_RELAXED);
	out->enobufs = __atomic_load_n(&nq->nq_cnt.enobufs, __ATOMIC_RELAXED);
}

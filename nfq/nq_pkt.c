/*
 * nq_pkt.c: IPv4/IPv6 + TCP headers -> struct nq_tuple, for the admission
 * verdict on a queued SYN.
 *
 * Owns nothing; pure functions over a caller's buffer. Never logs, allocates,
 * does I/O or reads outside pkt[0..len).
 *
 * Two bounds are kept apart on purpose. `end` is where the IP header says the
 * packet ends (total length / 40 + payload length): a header reaching past it
 * is malformed (BAD_HEADER), and bytes after it are link padding to ignore.
 * `len` is what we were given: NFQUEUE may have cut the packet at its copy
 * range, and a header that lies inside `end` but not inside `len` is merely
 * truncated (SHORT). Each read is checked against `end` first, so nothing
 * is ever taken from the padding. Only the first 14 TCP bytes must be in
 * `len`; the rest of the TCP header must only fit in `end`.
 */
#include <string.h>
#include <netinet/in.h>

#include "nfq/nq_pkt.h"

static uint16_t
nq_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* BAD_HEADER if [off, off+need) is outside the packet, SHORT if it was cut off. */
static int
nq_pkt_need(size_t off, size_t need, size_t len, size_t end)
{
	if (off + need > end)
		return NQ_PKT_BAD_HEADER;
	if (off + need > len)
		return NQ_PKT_SHORT;
	return 0;
}

/* The TCP header at pkt+off: ports, sequence number, flags and payload into *t. */
static int
nq_pkt_tcp(const uint8_t *pkt, size_t off, size_t len, size_t end, struct nq_tuple *t)
{
	const uint8_t *th = pkt + off;
	size_t doff, stop;
	int rc;

	if ((rc = nq_pkt_need(off, NQ_TCP_NEED, len, end)) != 0)
		return rc;
	doff = (size_t)(th[NQ_TCP_OFF_DOFF] >> 4) * 4;
	if (doff < NQ_TCP_HDR_MIN || off + doff > end)
		return NQ_PKT_BAD_HEADER;
	t->sport = nq_be16(th);
	t->dport = nq_be16(th + 2);
	t->seq = ((uint32_t)nq_be16(th + 4) << 16) | nq_be16(th + 6);
	t->tcp_flags = th[NQ_TCP_OFF_FLAGS];
	/* The payload: what the IP length declares after the TCP header, cut to len. */
	stop = end < len ? end : len;
	t->payload_off = off + doff;
	t->payload_len = stop > t->payload_off ? stop - t->payload_off : 0;
	return 0;
}

static int
nq_pkt_ip4(const uint8_t *pkt, size_t len, struct nq_tuple *t)
{
	size_t ihl, end;

	if (len < NQ_IP4_HDR_MIN)
		return NQ_PKT_SHORT;
	ihl = (size_t)(pkt[0] & 0x0f) * 4;
	end = nq_be16(pkt + NQ_IP4_OFF_TOTLEN);
	if (ihl < NQ_IP4_HDR_MIN || end < ihl)
		return NQ_PKT_BAD_HEADER;
	if (pkt[NQ_IP4_OFF_PROTO] != NQ_PROTO_TCP)
		return NQ_PKT_NOT_TCP;
	if ((nq_be16(pkt + NQ_IP4_OFF_FRAG) & NQ_IP4_FRAG_OFFSET) != 0)
		return NQ_PKT_FRAGMENT;
	t->family = AF_INET;
	memcpy(t->src, pkt + NQ_IP4_OFF_SRC, 4);
	memcpy(t->dst, pkt + NQ_IP4_OFF_DST, 4);
	return nq_pkt_tcp(pkt, ihl, len, end, t);
}

/*
 * Walk the extension headers from the fixed header to TCP. Hop-by-hop is
 * only valid first (RFC 8200 §4.1), so elsewhere it is BAD_HEADER, as the
 * kernel would treat it. Returns TCP's offset via *tcp_off.
 */
static int
nq_pkt_ip6_walk(const uint8_t *pkt, size_t len, size_t end, size_t *tcp_off)
{
	size_t off = NQ_IP6_HDR_LEN;
	uint8_t next = pkt[NQ_IP6_OFF_NEXT];
	unsigned n;
	int rc;

	for (n = 0;; n++) {
		if (next == NQ_PROTO_TCP) {
			*tcp_off = off;
			return 0;
		}
		if (next != NQ_PROTO_HOPOPTS && next != NQ_PROTO_ROUTING &&
		    next != NQ_PROTO_DSTOPTS && next != NQ_PROTO_FRAGMENT)
			return NQ_PKT_NOT_TCP;
		if (n == NQ_PKT_MAX_EXT_HEADERS ||
		    (next == NQ_PROTO_HOPOPTS && n != 0))
			return NQ_PKT_BAD_HEADER;
		if (next == NQ_PROTO_FRAGMENT) {
			if ((rc = nq_pkt_need(off, NQ_IP6_FRAG_HDR_LEN, len, end)) != 0)
				return rc;
			if ((nq_be16(pkt + off + NQ_IP6_FRAG_OFF_OFFSET) >> 3) != 0)
				return NQ_PKT_FRAGMENT;
			next = pkt[off];
			off += NQ_IP6_FRAG_HDR_LEN;
		} else {
			/* Hdr Ext Len counts 8-octet units after the first 8. */
			if ((rc = nq_pkt_need(off, 2, len, end)) != 0)
				return rc;
			next = pkt[off];
			off += ((size_t)pkt[off + 1] + 1) * 8;
		}
	}
}

static int
nq_pkt_ip6(const uint8_t *pkt, size_t len, struct nq_tuple *t)
{
	size_t end, tcp_off = 0;
	int rc;

	if (len < NQ_IP6_HDR_LEN)
		return NQ_PKT_SHORT;
	end = NQ_IP6_HDR_LEN + (size_t)nq_be16(pkt + NQ_IP6_OFF_PLEN);
	if ((rc = nq_pkt_ip6_walk(pkt, len, end, &tcp_off)) != 0)
		return rc;
	t->family = AF_INET6;
	memcpy(t->src, pkt + NQ_IP6_OFF_SRC, 16);
	memcpy(t->dst, pkt + NQ_IP6_OFF_DST, 16);
	return nq_pkt_tcp(pkt, tcp_off, len, end, t);
}

int
nq_pkt_parse(const uint8_t *pkt, size_t len, struct nq_tuple *out)
{
	struct nq_tuple t;
	int rc;

	if (len < 1)
		return NQ_PKT_SHORT;
	memset(&t, 0, sizeof(t));
	switch (pkt[0] >> 4) {
	case 4:
		rc = nq_pkt_ip4(pkt, len, &t);
		break;
	case 6:
		rc = nq_pkt_ip6(pkt, len, &t);
		break;
	default:
		return NQ_PKT_NOT_IP;
	}
	if (rc == 0)
		*out = t;
	return rc;
}

const char *
nq_pkt_strerror(int reason)
{
	if (reason == 0)
		return "ok";
	switch ((enum nq_pkt_err)reason) {
	case NQ_PKT_SHORT:
		return "packet truncated before the TCP ports and flags";
	case NQ_PKT_NOT_IP:
		return "not an IPv4 or IPv6 packet";
	case NQ_PKT_NOT_TCP:
		return "not a TCP packet";
	case NQ_PKT_FRAGMENT:
		return "non-first fragment, no TCP header";
	case NQ_PKT_BAD_HEADER:
		return "malformed IP or TCP header";
	}
	return "unknown packet parse error";
}

int
nq_tuple_is_syn(const struct nq_tuple *t)
{
	return (t->tcp_flags & (NQ_TCP_SYN | NQ_TCP_ACK)) == NQ_TCP_SYN;
}

void
nq_tuple_client(const struct nq_tuple *t, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (t->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)out;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(t->sport);
		memcpy(&sin->sin_addr, t->src, 4);
	} else if (t->family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(t->sport);
		memcpy(&sin6->sin6_addr, t->src, 16);
	}
}

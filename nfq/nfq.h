/*
 * nfq: first-packet admission through NFQUEUE. Public header of the module.
 *
 * So far this holds only the packet parser (nq_pkt.c): what NFQUEUE hands
 * over as NFQA_PAYLOAD (an IPv4 or IPv6 packet from its IP header, no link
 * layer, possibly cut at the queue's copy range) in, a connection tuple out.
 * The queue itself (nq_next, nq_verdict) will join it here.
 *
 * Never: logs, allocates, does I/O, includes anything from proxy/, rules/ or
 * capture/. The parser is pure and keeps no state, so any thread may call it.
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

#endif /* SMTPWALL_NFQ_H */

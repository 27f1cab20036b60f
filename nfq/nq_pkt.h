/*
 * nq_pkt.h: wire constants of the IP/TCP parser, private to nfq/. Users of
 * the parser include nfq/nfq.h; this header only names the offsets and
 * protocol numbers nq_pkt.c reads, so the code reads as the RFCs do.
 */
#ifndef SMTPWALL_NQ_PKT_H
#define SMTPWALL_NQ_PKT_H

#include "nfq/nfq.h"

/* IPv4 (RFC 791) */
#define NQ_IP4_HDR_MIN		20	/* IHL 5 */
#define NQ_IP4_OFF_TOTLEN	2
#define NQ_IP4_OFF_FRAG		6
#define NQ_IP4_FRAG_OFFSET	0x1fff	/* in 8-octet units; flags above */
#define NQ_IP4_OFF_PROTO	9
#define NQ_IP4_OFF_SRC		12
#define NQ_IP4_OFF_DST		16

/* IPv6 (RFC 8200) */
#define NQ_IP6_HDR_LEN		40
#define NQ_IP6_OFF_PLEN		4
#define NQ_IP6_OFF_NEXT		6
#define NQ_IP6_OFF_SRC		8
#define NQ_IP6_OFF_DST		24
#define NQ_IP6_FRAG_HDR_LEN	8
#define NQ_IP6_FRAG_OFF_OFFSET	2	/* offset << 3 | flags */

/* IP protocol / IPv6 next header numbers (IANA) */
#define NQ_PROTO_HOPOPTS	0
#define NQ_PROTO_TCP		6
#define NQ_PROTO_ROUTING	43
#define NQ_PROTO_FRAGMENT	44
#define NQ_PROTO_DSTOPTS	60

/* TCP (RFC 9293) */
#define NQ_TCP_HDR_MIN		20	/* data offset 5 */
#define NQ_TCP_NEED		14	/* ports, seq, ack, data offset, flags */
#define NQ_TCP_OFF_DOFF		12
#define NQ_TCP_OFF_FLAGS	13

#endif /* SMTPWALL_NQ_PKT_H */

/*
 * test_nq_pkt: the NFQUEUE payload parser of nfq/nfq.h on hand-built IPv4
 * and IPv6 packets: options, extension header chains, fragments, padding,
 * every truncation length, malformed lengths and offsets, the SYN test and
 * the client sockaddr. Each packet is parsed from an exactly-sized heap copy
 * so ASan reports any read past its end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "nfq/nfq.h"

#define T_PROTO_ICMP	1
#define T_PROTO_TCP	6
#define T_PROTO_UDP	17
#define T_PROTO_HOP	0
#define T_PROTO_ROUTING	43
#define T_PROTO_FRAG	44
#define T_PROTO_ICMP6	58
#define T_PROTO_NONE	59
#define T_PROTO_DST	60

#define T_SPORT		40000
#define T_DPORT		25

static const uint8_t t_src4[4] = { 192, 0, 2, 10 };
static const uint8_t t_dst4[4] = { 198, 51, 100, 25 };
static const uint8_t t_src6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10 };
static const uint8_t t_dst6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x25 };

static void
t_put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* A TCP header of doff_words 32-bit words (options are NOPs); returns its length. */
static size_t
t_tcp(uint8_t *p, uint8_t flags, unsigned doff_words)
{
	size_t n = (size_t)doff_words * 4;

	memset(p, 1, n < 20 ? 20 : n);
	t_put16(p, T_SPORT);
	t_put16(p + 2, T_DPORT);
	memset(p + 4, 0, 8);			/* seq, ack */
	p[12] = (uint8_t)(doff_words << 4);
	p[13] = flags;
	t_put16(p + 14, 64240);			/* window */
	memset(p + 16, 0, 4);			/* checksum, urgent pointer */
	return n < 20 ? 20 : n;
}

/* An IPv4 header with opt_len bytes of options (NOPs) and total length hdr+payload. */
static size_t
t_ip4(uint8_t *p, size_t opt_len, uint8_t proto, unsigned frag, size_t payload)
{
	size_t hl = 20 + opt_len;

	memset(p, 0, hl);
	p[0] = (uint8_t)(0x40 | hl / 4);
	t_put16(p + 2, (unsigned)(hl + payload));
	t_put16(p + 6, frag);
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, t_src4, 4);
	memcpy(p + 16, t_dst4, 4);
	memset(p + 20, 1, opt_len);
	return hl;
}

static size_t
t_ip6(uint8_t *p, uint8_t next, size_t payload)
{
	memset(p, 0, 40);
	p[0] = 0x60;
	t_put16(p + 4, (unsigned)payload);
	p[6] = next;
	p[7] = 64;
	memcpy(p + 8, t_src6, 16);
	memcpy(p + 24, t_dst6, 16);
	return 40;
}

/* Hop-by-hop, routing or destination options header of (units + 1) * 8 bytes. */
static size_t
t_ext6(uint8_t *p, uint8_t next, unsigned units)
{
	size_t n = ((size_t)units + 1) * 8;

	memset(p, 0, n);
	p[0] = next;
	p[1] = (uint8_t)units;
	p[2] = 1;				/* PadN covering the rest */
	p[3] = (uint8_t)(n - 4);
	return n;
}

static size_t
t_frag6(uint8_t *p, uint8_t next, unsigned offset_units, int more)
{
	memset(p, 0, 8);
	p[0] = next;
	t_put16(p + 2, offset_units << 3 | (more ? 1 : 0));
	p[4] = 0xde;				/* identification */
	return 8;
}

/* Parse an exactly-sized heap copy of pkt[0..len). */
static int
t_parse(const uint8_t *pkt, size_t len, struct nq_tuple *out)
{
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, pkt, len);
	rc = nq_pkt_parse(len ? copy : NULL, len, out);
	free(copy);
	return rc;
}

static size_t
t_syn4(uint8_t *p, size_t opt_len, uint8_t flags)
{
	size_t n = t_ip4(p, opt_len, T_PROTO_TCP, 0, 20);

	return n + t_tcp(p + n, flags, 5);
}

static size_t
t_syn6(uint8_t *p, uint8_t flags)
{
	size_t n = t_ip6(p, T_PROTO_TCP, 20);

	return n + t_tcp(p + n, flags, 5);
}

static void
t_assert_v4_tuple(const struct nq_tuple *t, uint8_t flags)
{
	static const uint8_t zero[12];

	assert_int_equal(t->family, AF_INET);
	assert_memory_equal(t->src, t_src4, 4);
	assert_memory_equal(t->dst, t_dst4, 4);
	assert_memory_equal(t->src + 4, zero, 12);
	assert_memory_equal(t->dst + 4, zero, 12);
	assert_int_equal(t->sport, T_SPORT);
	assert_int_equal(t->dport, T_DPORT);
	assert_int_equal(t->tcp_flags, flags);
}

static void
t_assert_v6_tuple(const struct nq_tuple *t, uint8_t flags)
{
	assert_int_equal(t->family, AF_INET6);
	assert_memory_equal(t->src, t_src6, 16);
	assert_memory_equal(t->dst, t_dst6, 16);
	assert_int_equal(t->sport, T_SPORT);
	assert_int_equal(t->dport, T_DPORT);
	assert_int_equal(t->tcp_flags, flags);
}

/*
 * Every prefix of pkt: SHORT while the first 14 TCP bytes at tcp_off are
 * incomplete, then the same tuple as the whole packet.
 */
static void
t_assert_truncations(const uint8_t *pkt, size_t full, size_t tcp_off)
{
	struct nq_tuple whole, t;
	size_t len;

	assert_int_equal(t_parse(pkt, full, &whole), 0);
	for (len = 0; len <= full; len++) {
		memset(&t, 0, sizeof(t));
		if (len < tcp_off + 14) {
			assert_int_equal(t_parse(pkt, len, &t), NQ_PKT_SHORT);
		} else {
			assert_int_equal(t_parse(pkt, len, &t), 0);
			assert_memory_equal(&t, &whole, sizeof(t));
		}
	}
}

static void
test_nq_pkt_ipv4_syn_to_port_25(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	size_t n = t_syn4(p, 0, NQ_TCP_SYN);

	(void)state;
	memset(&t, 0xaa, sizeof(t));	/* unused address bytes must come back zero */
	assert_int_equal(t_parse(p, n, &t), 0);
	t_assert_v4_tuple(&t, NQ_TCP_SYN);
	assert_true(nq_tuple_is_syn(&t));
}

/* The sequence number and the payload's place, as the capture code needs them. */
static void
test_nq_pkt_seq_and_payload(void **state)
{
	uint8_t p[160];
	struct nq_tuple t;
	size_t n, tcp_off;

	(void)state;
	tcp_off = t_ip4(p, 4, T_PROTO_TCP, 0, 32 + 5);
	n = tcp_off + t_tcp(p + tcp_off, NQ_TCP_ACK | NQ_TCP_PSH, 8);
	p[tcp_off + 4] = 0x01;
	p[tcp_off + 5] = 0x02;
	p[tcp_off + 6] = 0x03;
	p[tcp_off + 7] = 0xf4;
	memcpy(p + n, "AUTH ", 5);
	n += 5;
	memset(p + n, 0xee, 7);			/* link padding: not payload */
	assert_int_equal(t_parse(p, n + 7, &t), 0);
	assert_int_equal(t.seq, 0x010203f4u);
	assert_int_equal(t.payload_off, tcp_off + 32);
	assert_int_equal(t.payload_len, 5);
	assert_memory_equal(p + t.payload_off, "AUTH ", 5);
	/* Cut short (a snap length): the payload stops at the end of what is there. */
	assert_int_equal(t_parse(p, n - 2, &t), 0);
	assert_int_equal(t.payload_len, 3);

	tcp_off = t_ip6(p, T_PROTO_TCP, 20 + 4);
	n = tcp_off + t_tcp(p + tcp_off, NQ_TCP_ACK, 5);
	memcpy(p + n, "QUIT", 4);
	assert_int_equal(t_parse(p, n + 4, &t), 0);
	assert_int_equal(t.payload_off, 60);
	assert_int_equal(t.payload_len, 4);
	assert_int_equal(t.seq, 0);
}

static void
test_nq_pkt_ipv4_options_are_skipped(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	size_t n;

	(void)state;
	/* 12 bytes of options (IHL 8) and the maximum, 40 (IHL 15). */
	n = t_syn4(p, 12, NQ_TCP_SYN);
	assert_int_equal(p[0], 0x48);
	assert_int_equal(t_parse(p, n, &t), 0);
	t_assert_v4_tuple(&t, NQ_TCP_SYN);
	t_assert_truncations(p, n, 32);

	n = t_syn4(p, 40, NQ_TCP_SYN);
	assert_int_equal(p[0], 0x4f);
	assert_int_equal(t_parse(p, n, &t), 0);
	t_assert_v4_tuple(&t, NQ_TCP_SYN);
}

static void
test_nq_pkt_ipv4_tcp_options_and_padding(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	size_t n;

	(void)state;
	/* A real SYN carries MSS, SACK, timestamps, wscale: data offset 10. */
	n = t_ip4(p, 0, T_PROTO_TCP, 0, 40);
	n += t_tcp(p + n, NQ_TCP_SYN, 10);
	assert_int_equal(n, 60);
	assert_int_equal(t_parse(p, n, &t), 0);
	t_assert_v4_tuple(&t, NQ_TCP_SYN);

	/* Link padding after the total length is ignored. */
	n = t_syn4(p, 0, NQ_TCP_SYN);
	memset(p + n, 0xff, 6);
	assert_int_equal(t_parse(p, n + 6, &t), 0);
	t_assert_v4_tuple(&t, NQ_TCP_SYN);
}

static void
test_nq_pkt_ipv6_syn(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	size_t n = t_syn6(p, NQ_TCP_SYN);

	(void)state;
	assert_int_equal(t_parse(p, n, &t), 0);
	t_assert_v6_tuple(&t, NQ_TCP_SYN);
	assert_true(nq_tuple_is_syn(&t));

	memset(p + n, 0xff, 8);		/* padding after the payload length */
	assert_int_equal(t_parse(p, n + 8, &t), 0);
	t_assert_v6_tuple(&t, NQ_TCP_SYN);
}

static void
test_nq_pkt_ipv6_hop_by_hop_and_dstopts_before_tcp(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	size_t n, tcp_off;

	(void)state;
	n = t_ip6(p, T_PROTO_HOP, 8 + 16 + 20);
	n += t_ext6(p + n, T_PROTO_DST, 0);
	n += t_ext6(p + n, T_PROTO_TCP, 1);
	tcp_off = n;
	n += t_tcp(p + n, NQ_TCP_SYN, 5);
	assert_int_equal(t_parse(p, n, &t), 0);
	t_assert_v6_tuple(&t, NQ_TCP_SYN);
	t_assert_truncations(p, n, tcp_off);

	/* ... and with a routing header between them. */
	n = t_ip6(p, T_PROTO_HOP, 8 + 24 + 8 + 20);
	n += t_ext6(p + n, T_PROTO_ROUTING, 0);
	n += t_ext6(p + n, T_PROTO_DST, 2);
	n += t_ext6(p + n, T_PROTO_TCP, 0);
	n += t_tcp(p + n, NQ_TCP_SYN, 5);
	assert_int_equal(t_parse(p, n, &t), 0);
	t_assert_v6_tuple(&t, NQ_TCP_SYN);
}

static void
test_nq_pkt_ipv6_chain_limit_and_hop_by_hop_position(void **state)
{
	uint8_t p[256];
	struct nq_tuple t;
	size_t n;
	unsigned i;

	(void)state;
	/* NQ_PKT_MAX_EXT_HEADERS destination options headers: still found. */
	n = t_ip6(p, T_PROTO_DST, NQ_PKT_MAX_EXT_HEADERS * 8 + 20);
	for (i = 0; i < NQ_PKT_MAX_EXT_HEADERS; i++)
		n += t_ext6(p + n, i + 1 < NQ_PKT_MAX_EXT_HEADERS ? T_PROTO_DST : T_PROTO_TCP, 0);
	n += t_tcp(p + n, NQ_TCP_SYN, 5);
	assert_int_equal(t_parse(p, n, &t), 0);
	t_assert_v6_tuple(&t, NQ_TCP_SYN);

	/* One more is refused rather than walked. */
	n = t_ip6(p, T_PROTO_DST, (NQ_PKT_MAX_EXT_HEADERS + 1) * 8 + 20);
	for (i = 0; i <= NQ_PKT_MAX_EXT_HEADERS; i++)
		n += t_ext6(p + n, i < NQ_PKT_MAX_EXT_HEADERS ? T_PROTO_DST : T_PROTO_TCP, 0);
	n += t_tcp(p + n, NQ_TCP_SYN, 5);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);

	/* Hop-by-hop anywhere but first is invalid (RFC 8200 §4.1). */
	n = t_ip6(p, T_PROTO_DST, 16 + 20);
	n += t_ext6(p + n, T_PROTO_HOP, 0);
	n += t_ext6(p + n, T_PROTO_TCP, 0);
	n += t_tcp(p + n, NQ_TCP_SYN, 5);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
}

static void
test_nq_pkt_udp_icmp_are_not_tcp(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	size_t n;

	(void)state;
	n = t_ip4(p, 0, T_PROTO_UDP, 0, 28);
	memset(p + n, 0, 28);
	assert_int_equal(t_parse(p, n + 28, &t), NQ_PKT_NOT_TCP);

	n = t_ip4(p, 0, T_PROTO_ICMP, 0, 8);
	memset(p + n, 0, 8);
	p[n] = 8;				/* echo request */
	assert_int_equal(t_parse(p, n + 8, &t), NQ_PKT_NOT_TCP);

	n = t_ip6(p, T_PROTO_ICMP6, 8);
	memset(p + n, 0, 8);
	p[n] = 128;
	assert_int_equal(t_parse(p, n + 8, &t), NQ_PKT_NOT_TCP);

	/* UDP behind a hop-by-hop header, and "no next header". */
	n = t_ip6(p, T_PROTO_HOP, 8 + 8);
	n += t_ext6(p + n, T_PROTO_UDP, 0);
	memset(p + n, 0, 8);
	assert_int_equal(t_parse(p, n + 8, &t), NQ_PKT_NOT_TCP);
	n = t_ip6(p, T_PROTO_NONE, 0);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_NOT_TCP);
}

static void
test_nq_pkt_not_ip(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	size_t n = t_syn4(p, 0, NQ_TCP_SYN);

	(void)state;
	p[0] = 0x55;
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_NOT_IP);
	p[0] = 0x05;
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_NOT_IP);
	assert_int_equal(t_parse(p, 1, &t), NQ_PKT_NOT_IP);
	assert_int_equal(t_parse(p, 0, &t), NQ_PKT_SHORT);
}

static void
test_nq_pkt_ipv4_fragments(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	size_t n;

	(void)state;
	/* Offset 185 (1480 bytes in): TCP bytes, but no TCP header. */
	n = t_ip4(p, 0, T_PROTO_TCP, 185, 20);
	n += t_tcp(p + n, NQ_TCP_SYN, 5);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_FRAGMENT);
	/* The same with More Fragments set. */
	t_put16(p + 6, 0x2000 | 185);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_FRAGMENT);

	/* A first fragment (MF, offset 0) has the header and parses; DF is no fragment. */
	t_put16(p + 6, 0x2000);
	assert_int_equal(t_parse(p, n, &t), 0);
	t_assert_v4_tuple(&t, NQ_TCP_SYN);
	t_put16(p + 6, 0x4000);
	assert_int_equal(t_parse(p, n, &t), 0);
}

static void
test_nq_pkt_ipv6_fragment_header(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	size_t n, tcp_off;

	(void)state;
	n = t_ip6(p, T_PROTO_FRAG, 8 + 20);
	n += t_frag6(p + n, T_PROTO_TCP, 0, 1);
	tcp_off = n;
	n += t_tcp(p + n, NQ_TCP_SYN, 5);
	assert_int_equal(t_parse(p, n, &t), 0);
	t_assert_v6_tuple(&t, NQ_TCP_SYN);
	t_assert_truncations(p, n, tcp_off);

	/* Non-first: refused whatever follows, even when it looks like TCP. */
	t_frag6(p + 40, T_PROTO_TCP, 185, 0);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_FRAGMENT);
	t_frag6(p + 40, T_PROTO_TCP, 1, 1);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_FRAGMENT);

	/* Behind a hop-by-hop header too. */
	n = t_ip6(p, T_PROTO_HOP, 8 + 8 + 20);
	n += t_ext6(p + n, T_PROTO_FRAG, 0);
	n += t_frag6(p + n, T_PROTO_TCP, 0, 1);
	n += t_tcp(p + n, NQ_TCP_SYN, 5);
	assert_int_equal(t_parse(p, n, &t), 0);
	t_frag6(p + 48, T_PROTO_TCP, 2, 0);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_FRAGMENT);
}

static void
test_nq_pkt_every_truncation(void **state)
{
	uint8_t p[128];
	size_t n;

	(void)state;
	n = t_syn4(p, 0, NQ_TCP_SYN);
	t_assert_truncations(p, n, 20);
	n = t_syn6(p, NQ_TCP_SYN);
	t_assert_truncations(p, n, 40);

	/* Cut by the copy range inside long TCP options: still fine. */
	n = t_ip4(p, 0, T_PROTO_TCP, 0, 60);
	n += t_tcp(p + n, NQ_TCP_SYN, 15);
	t_assert_truncations(p, n, 20);
}

static void
test_nq_pkt_bad_ihl_and_total_length(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	size_t n;

	(void)state;
	/*
	 * IHL below 5, where the bytes at 4 * IHL would pass for a TCP header
	 * (data offset 5 at byte 28 in the options), so only the IHL check
	 * can refuse it.
	 */
	n = t_syn4(p, 12, NQ_TCP_SYN);
	p[28] = 5 << 4;
	assert_int_equal(t_parse(p, n, &t), 0);
	p[0] = 0x44;				/* IHL 4 */
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	p[12] = 5 << 4;
	p[0] = 0x40;				/* IHL 0 */
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);

	n = t_syn4(p, 0, NQ_TCP_SYN);

	/* IHL 15 (60 bytes) in a 40-byte packet. */
	p[0] = 0x4f;
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	p[0] = 0x45;

	/* Total length smaller than the IP header, or with no room for TCP. */
	t_put16(p + 2, 19);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	t_put16(p + 2, 20 + 13);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	assert_int_equal(t_parse(p, 25, &t), NQ_PKT_BAD_HEADER);	/* malformed beats cut */
	t_put16(p + 2, 20 + 19);		/* ports and flags fit, 20-byte header does not */
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	t_put16(p + 2, 0);			/* BIG TCP GSO: never a SYN */
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	t_put16(p + 2, 40);
	assert_int_equal(t_parse(p, n, &t), 0);

	/* IPv6: payload length shorter than the TCP header or an extension header. */
	n = t_syn6(p, NQ_TCP_SYN);
	t_put16(p + 4, 10);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	n = t_ip6(p, T_PROTO_HOP, 4);
	n += t_ext6(p + n, T_PROTO_TCP, 0);
	n += t_tcp(p + n, NQ_TCP_SYN, 5);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	t_put16(p + 4, 1);			/* not even next header + length */
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	/* Bytes past the payload length are padding, never a header to follow. */
	n = t_ip6(p, T_PROTO_HOP, 1);
	n += t_ext6(p + n, T_PROTO_UDP, 0);
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
}

static void
test_nq_pkt_bad_data_offset(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	size_t n;

	(void)state;
	n = t_syn4(p, 0, NQ_TCP_SYN);
	p[20 + 12] = 4 << 4;
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	p[20 + 12] = 0;
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	/* 60-byte TCP header in a 40-byte packet, even if more bytes follow as padding. */
	p[20 + 12] = 15 << 4;
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	memset(p + n, 0, 40);
	assert_int_equal(t_parse(p, n + 40, &t), NQ_PKT_BAD_HEADER);

	n = t_syn6(p, NQ_TCP_SYN);
	p[40 + 12] = 6 << 4;			/* 24 bytes in a 20-byte payload */
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	p[40 + 12] = 3 << 4;
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
}

static void
test_nq_pkt_syn_vs_syn_ack_vs_ack(void **state)
{
	static const struct {
		uint8_t	flags;
		int	syn;
	} cases[] = {
		{ NQ_TCP_SYN, 1 },
		{ NQ_TCP_SYN | NQ_TCP_ECE | NQ_TCP_CWR, 1 },	/* ECN-setup SYN */
		{ NQ_TCP_SYN | NQ_TCP_ACK, 0 },
		{ NQ_TCP_ACK, 0 },
		{ NQ_TCP_ACK | NQ_TCP_PSH, 0 },
		{ NQ_TCP_RST, 0 },
		{ NQ_TCP_FIN | NQ_TCP_ACK, 0 },
	};
	uint8_t p[128];
	struct nq_tuple t;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = t_syn4(p, 0, cases[i].flags);
		assert_int_equal(t_parse(p, n, &t), 0);
		assert_int_equal(t.tcp_flags, cases[i].flags);
		assert_int_equal(nq_tuple_is_syn(&t), cases[i].syn);
		n = t_syn6(p, cases[i].flags);
		assert_int_equal(t_parse(p, n, &t), 0);
		assert_int_equal(nq_tuple_is_syn(&t), cases[i].syn);
	}
}

static void
test_nq_pkt_client_sockaddr_v4_and_v6(void **state)
{
	uint8_t p[128];
	struct nq_tuple t;
	struct sockaddr_storage ss;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
	char txt[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(t_parse(p, t_syn4(p, 0, NQ_TCP_SYN), &t), 0);
	memset(&ss, 0xaa, sizeof(ss));
	nq_tuple_client(&t, &ss);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), T_SPORT);
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, txt, sizeof(txt)));
	assert_string_equal(txt, "192.0.2.10");

	assert_int_equal(t_parse(p, t_syn6(p, NQ_TCP_SYN), &t), 0);
	memset(&ss, 0xaa, sizeof(ss));
	nq_tuple_client(&t, &ss);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), T_SPORT);
	assert_int_equal(sin6->sin6_flowinfo, 0);
	assert_int_equal(sin6->sin6_scope_id, 0);
	assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, txt, sizeof(txt)));
	assert_string_equal(txt, "2001:db8::10");

	memset(&t, 0, sizeof(t));
	nq_tuple_client(&t, &ss);
	assert_int_equal(ss.ss_family, AF_UNSPEC);
}

static void
test_nq_pkt_failure_leaves_tuple_untouched(void **state)
{
	uint8_t p[128];
	struct nq_tuple t, before;
	size_t n = t_syn4(p, 0, NQ_TCP_SYN);

	(void)state;
	memset(&before, 0xaa, sizeof(before));
	t = before;
	p[20 + 12] = 0;				/* bad data offset, after the addresses */
	assert_int_equal(t_parse(p, n, &t), NQ_PKT_BAD_HEADER);
	assert_memory_equal(&t, &before, sizeof(t));
	assert_int_equal(t_parse(p, 30, &t), NQ_PKT_SHORT);
	assert_memory_equal(&t, &before, sizeof(t));
}

static void
test_nq_pkt_strerror_names_each_reason(void **state)
{
	static const int reasons[] = { NQ_PKT_SHORT, NQ_PKT_NOT_IP, NQ_PKT_NOT_TCP,
	    NQ_PKT_FRAGMENT, NQ_PKT_BAD_HEADER };
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		assert_non_null(nq_pkt_strerror(reasons[i]));
		assert_true(reasons[i] < 0);
		for (j = 0; j < i; j++)
			assert_string_not_equal(nq_pkt_strerror(reasons[i]),
			    nq_pkt_strerror(reasons[j]));
	}
	assert_string_equal(nq_pkt_strerror(NQ_PKT_NOT_TCP), "not a TCP packet");
	assert_non_null(nq_pkt_strerror(-99));
	assert_non_null(nq_pkt_strerror(0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nq_pkt_ipv4_syn_to_port_25),
		cmocka_unit_test(test_nq_pkt_seq_and_payload),
		cmocka_unit_test(test_nq_pkt_ipv4_options_are_skipped),
		cmocka_unit_test(test_nq_pkt_ipv4_tcp_options_and_padding),
		cmocka_unit_test(test_nq_pkt_ipv6_syn),
		cmocka_unit_test(test_nq_pkt_ipv6_hop_by_hop_and_dstopts_before_tcp),
		cmocka_unit_test(test_nq_pkt_ipv6_chain_limit_and_hop_by_hop_position),
		cmocka_unit_test(test_nq_pkt_udp_icmp_are_not_tcp),
		cmocka_unit_test(test_nq_pkt_not_ip),
		cmocka_unit_test(test_nq_pkt_ipv4_fragments),
		cmocka_unit_test(test_nq_pkt_ipv6_fragment_header),
		cmocka_unit_test(test_nq_pkt_every_truncation),
		cmocka_unit_test(test_nq_pkt_bad_ihl_and_total_length),
		cmocka_unit_test(test_nq_pkt_bad_data_offset),
		cmocka_unit_test(test_nq_pkt_syn_vs_syn_ack_vs_ack),
		cmocka_unit_test(test_nq_pkt_client_sockaddr_v4_and_v6),
		cmocka_unit_test(test_nq_pkt_failure_leaves_tuple_untouched),
		cmocka_unit_test(test_nq_pkt_strerror_names_each_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

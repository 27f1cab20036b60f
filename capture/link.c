/*
 * link.c: cap_l3_offset, where the IP header starts in a captured frame.
 *
 * Knows the link types a Linux capture hands out: the cooked headers of
 * "any" (DLT_LINUX_SLL, DLT_LINUX_SLL2), Ethernet with up to two VLAN tags
 * (802.1Q 0x8100, 802.1ad 0x88a8), raw IP (DLT_RAW, LINKTYPE_RAW 101,
 * DLT_IPV4, DLT_IPV6) and the 4-byte address family of DLT_NULL/DLT_LOOP
 * (either byte order, every AF_INET6 value the BSDs use).
 *
 * Pure: owns nothing, never logs, allocates or reads outside
 * frame[0..caplen). The answer is only an offset whose version nibble
 * agrees with the link header; the IP header itself is the caller's to check.
 */
#include <stddef.h>
#include <stdint.h>
#include <pcap/dlt.h>

#include "capture/capture.h"

#define CAP_ETHERTYPE_IPV4	0x0800
#define CAP_ETHERTYPE_IPV6	0x86dd
#define CAP_ETHERTYPE_8021Q	0x8100
#define CAP_ETHERTYPE_8021AD	0x88a8
#define CAP_ETH_TYPE_OFF	12	/* after the two MAC addresses */
#define CAP_ETH_TAG_LEN		4	/* TPID + TCI */
#define CAP_ETH_MAX_TAGS	2
#define CAP_SLL_LEN		16
#define CAP_SLL_PROTO_OFF	14
#define CAP_SLL2_LEN		20
#define CAP_SLL2_PROTO_OFF	0
#define CAP_NULL_LEN		4
#define CAP_LINKTYPE_RAW	101	/* the file link type of raw IP */

/* Address family values of DLT_NULL/DLT_LOOP headers. */
#define CAP_BSD_AF_INET		2
#define CAP_LINUX_AF_INET6	10
#define CAP_NETBSD_AF_INET6	24	/* also OpenBSD */
#define CAP_FREEBSD_AF_INET6	28
#define CAP_DARWIN_AF_INET6	30

static uint16_t
cap_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* 4 or 6 for an IPv4/IPv6 ethertype, else 0. */
static int
cap_ethertype_version(uint16_t type)
{
	if (type == CAP_ETHERTYPE_IPV4)
		return 4;
	if (type == CAP_ETHERTYPE_IPV6)
		return 6;
	return 0;
}

static int
cap_af_version(uint32_t af)
{
	switch (af) {
	case CAP_BSD_AF_INET:
		return 4;
	case CAP_LINUX_AF_INET6:
	case CAP_NETBSD_AF_INET6:
	case CAP_FREEBSD_AF_INET6:
	case CAP_DARWIN_AF_INET6:
		return 6;
	}
	return 0;
}

/* DLT_NULL is in the capturing host's order, DLT_LOOP in network order: try both. */
static int
cap_null_version(const uint8_t *p)
{
	uint32_t be = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	uint32_t le = (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
	int v;

	if ((v = cap_af_version(be)) != 0)
		return v;
	return cap_af_version(le);
}

/* Ethernet: the ethertype after at most CAP_ETH_MAX_TAGS VLAN tags. */
static int
cap_eth(const uint8_t *frame, size_t caplen, size_t *off)
{
	size_t pos = CAP_ETH_TYPE_OFF;
	uint16_t type;
	int tags;

	for (tags = 0;; tags++) {
		if (caplen < pos + 2)
			return 0;
		type = cap_be16(frame + pos);
		if ((type != CAP_ETHERTYPE_8021Q && type != CAP_ETHERTYPE_8021AD) ||
		    tags == CAP_ETH_MAX_TAGS)
			break;
		pos += CAP_ETH_TAG_LEN;
	}
	*off = pos + 2;
	return cap_ethertype_version(type);
}

/* The IP version the link header announces (0: none) and where IP starts. */
static int
cap_link_version(int linktype, const uint8_t *frame, size_t caplen, size_t *off)
{
	if (linktype == DLT_LINUX_SLL) {
		if (caplen < CAP_SLL_LEN)
			return 0;
		*off = CAP_SLL_LEN;
		return cap_ethertype_version(cap_be16(frame + CAP_SLL_PROTO_OFF));
	}
#ifdef DLT_LINUX_SLL2
	if (linktype == DLT_LINUX_SLL2) {
		if (caplen < CAP_SLL2_LEN)
			return 0;
		*off = CAP_SLL2_LEN;
		return cap_ethertype_version(cap_be16(frame + CAP_SLL2_PROTO_OFF));
	}
#endif
	if (linktype == DLT_EN10MB)
		return cap_eth(frame, caplen, off);
	if (linktype == DLT_NULL || linktype == DLT_LOOP) {
		if (caplen < CAP_NULL_LEN)
			return 0;
		*off = CAP_NULL_LEN;
		return cap_null_version(frame);
	}
	*off = 0;
	if (linktype == DLT_RAW || linktype == CAP_LINKTYPE_RAW)
		return caplen > 0 ? frame[0] >> 4 : 0;
#ifdef DLT_IPV4
	if (linktype == DLT_IPV4)
		return 4;
#endif
#ifdef DLT_IPV6
	if (linktype == DLT_IPV6)
		return 6;
#endif
	return 0;
}

int
cap_l3_offset(int linktype, const uint8_t *frame, size_t caplen, size_t *off)
{
	size_t o = 0;
	int v;

	if (frame == NULL)
		return -1;
	v = cap_link_version(linktype, frame, caplen, &o);
	if ((v != 4 && v != 6) || o >= caplen || frame[o] >> 4 != v)
		return -1;
	*off = o;
	return 0;
}

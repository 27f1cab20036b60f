/*
 * fuzz_nq_pkt: nq_pkt_parse on arbitrary bytes, as NFQUEUE might hand them
 * over. Invariants: the result is 0 or one of the named reasons; on success
 * the family is AF_INET or AF_INET6, an IPv4 tuple's unused address bytes are
 * zero, and nq_tuple_client yields a sockaddr of that family and port.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "nfq/nfq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fz_check_tuple(const struct nq_tuple *t)
{
	static const uint8_t zero[12];
	struct sockaddr_storage ss;

	if (t->family != AF_INET && t->family != AF_INET6)
		abort();
	if (t->family == AF_INET &&
	    (memcmp(t->src + 4, zero, 12) != 0 || memcmp(t->dst + 4, zero, 12) != 0))
		abort();
	nq_tuple_client(t, &ss);
	if (ss.ss_family != t->family)
		abort();
	if (ss.ss_family == AF_INET &&
	    ntohs(((const struct sockaddr_in *)&ss)->sin_port) != t->sport)
		abort();
	if (ss.ss_family == AF_INET6 &&
	    ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port) != t->sport)
		abort();
	(void)nq_tuple_is_syn(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so ASan sees any read past the end. */
	uint8_t *pkt = malloc(size ? size : 1);
	struct nq_tuple t;
	int rc;

	if (pkt == NULL)
		return 0;
	memcpy(pkt, data, size);
	rc = nq_pkt_parse(pkt, size, &t);
	switch (rc) {
	case 0:
		fz_check_tuple(&t);
		break;
	case NQ_PKT_SHORT:
	case NQ_PKT_NOT_IP:
	case NQ_PKT_NOT_TCP:
	case NQ_PKT_FRAGMENT:
	case NQ_PKT_BAD_HEADER:
		if (nq_pkt_strerror(rc) == NULL)
			abort();
		break;
	default:
		abort();
	}
	free(pkt);
	return 0;
}

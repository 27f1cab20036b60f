/*
 * synflood: a TCP SYN generator for the NFQUEUE benchmark (tests/bench/bench_nfq.py,
 * `make bench`). Run it only inside the benchmark's network namespaces.
 *
 *   synflood -d DST_IP -p PORT -s SRC_CIDR [-t SECONDS] [-r RATE] [-n COUNT] [-b BATCH]
 *
 * Sends IPv4 TCP SYNs (with an MSS option, as a real client would) to exactly
 * one destination, DST_IP:PORT, from source addresses drawn at random from
 * SRC_CIDR (its first and last address skipped when the prefix is /30 or
 * shorter: a network or broadcast source is a martian and never reaches the
 * queue) and random source ports 1024..65535, random sequence numbers. At full
 * speed by default, or paced to RATE packets per second; for SECONDS (default
 * 5) or COUNT packets, whichever comes first. Batches of BATCH packets
 * (default 64) go out with one sendmmsg() on a raw IPPROTO_RAW socket
 * (IP_HDRINCL implied) that is connect()ed to DST_IP, so nothing can go
 * elsewhere. The IP and TCP checksums are computed here, correctly.
 *
 * Network hygiene, not negotiable: DST_IP and the whole SRC_CIDR must lie in
 * the documentation ranges 192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24
 * (RFC 5737); anything else is refused before a socket is opened. IPv4 only.
 *
 * Output, one line on stdout at the end, key=value:
 *   sent=N errors=N seconds=S rate=PPS batch=B
 * Exit 0 when it ran; 1 on a runtime error (no permission: needs CAP_NET_RAW);
 * 2 on a usage error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* sendmmsg */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SF_MAX_BATCH	1024
#define SF_IP_LEN	20
#define SF_TCP_LEN	24		/* 20 + MSS option */
#define SF_PKT_LEN	(SF_IP_LEN + SF_TCP_LEN)

static volatile sig_atomic_t sf_stop;

static void
sf_on_signal(int sig)
{
	(void)sig;
	sf_stop = 1;
}

static void
sf_usage(FILE *f)
{
	fprintf(f,
	    "usage: synflood -d DST_IP -p PORT -s SRC_CIDR [-t SECONDS] [-r RATE] [-n COUNT] [-b BATCH]\n"
	    "  -d DST_IP    the one IPv4 destination (must be in 192.0.2.0/24, 198.51.100.0/24\n"
	    "               or 203.0.113.0/24)\n"
	    "  -p PORT      destination TCP port, 1..65535\n"
	    "  -s SRC_CIDR  source addresses, e.g. 203.0.113.128/25 (inside the same ranges)\n"
	    "  -t SECONDS   duration, default 5 (fractions allowed; 0: no limit, then -n is needed)\n"
	    "  -r RATE      packets per second, default 0 = as fast as possible\n"
	    "  -n COUNT     stop after COUNT packets, default 0 = no limit\n"
	    "  -b BATCH     packets per sendmmsg(), 1..%d, default 64\n"
	    "Sends IPv4 TCP SYNs on a raw socket (needs CAP_NET_RAW). Prints\n"
	    "sent=N errors=N seconds=S rate=PPS batch=B.\n", SF_MAX_BATCH);
}

/* 1 if a (host order) is in one of the RFC 5737 documentation networks. */
static int
sf_doc_addr(uint32_t a)
{
	return (a & 0xffffff00u) == 0xc0000200u ||	/* 192.0.2.0/24 */
	    (a & 0xffffff00u) == 0xc6336400u ||		/* 198.51.100.0/24 */
	    (a & 0xffffff00u) == 0xcb007100u;		/* 203.0.113.0/24 */
}

static int
sf_parse_ull(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
sf_parse_secs(const char *s, double *out)
{
	char *end;
	double v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= 0.0) || v > 86400.0)
		return -1;
	*out = v;
	return 0;
}

/* "A.B.C.D/N" -> first address and size (host order). */
static int
sf_parse_cidr(const char *s, uint32_t *base, uint64_t *size)
{
	char buf[32], *slash;
	struct in_addr a;
	unsigned long long plen;
	uint32_t mask;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	if ((slash = strchr(buf, '/')) == NULL)
		return -1;
	*slash = '\0';
	if (inet_pton(AF_INET, buf, &a) != 1 || sf_parse_ull(slash + 1, 32, &plen) != 0)
		return -1;
	mask = plen == 0 ? 0 : 0xffffffffu << (32 - plen);
	*base = ntohl(a.s_addr) & mask;
	*size = (uint64_t)1 << (32 - plen);
	return 0;
}

/* xoshiro-style generator: splitmix64 is plenty for addresses and ports. */
static uint64_t sf_rng;

static uint64_t
sf_rand(void)
{
	uint64_t z = (sf_rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t
sf_sum(const void *p, size_t len, uint32_t sum)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	if (len & 1)
		sum += (uint32_t)b[len - 1] << 8;
	return sum;
}

static uint16_t
sf_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void
sf_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
sf_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* One SYN from src:sport to dst:dport, both checksums filled. */
static void
sf_build(uint8_t *pkt, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
    uint32_t seq, uint16_t ipid)
{
	uint8_t *ip = pkt, *tcp = pkt + SF_IP_LEN;
	uint8_t pseudo[12];

	memset(pkt, 0, SF_PKT_LEN);
	ip[0] = 0x45;				/* IPv4, 5 words */
	sf_put16(ip + 2, SF_PKT_LEN);
	sf_put16(ip + 4, ipid);
	ip[6] = 0x40;				/* DF */
	ip[8] = 64;				/* TTL */
	ip[9] = IPPROTO_TCP;
	sf_put32(ip + 12, src);
	sf_put32(ip + 16, dst);
	sf_put16(ip + 10, sf_fold(sf_sum(ip, SF_IP_LEN, 0)));

	sf_put16(tcp, sport);
	sf_put16(tcp + 2, dport);
	sf_put32(tcp + 4, seq);
	tcp[12] = (SF_TCP_LEN / 4) << 4;
	tcp[13] = 0x02;				/* SYN */
	sf_put16(tcp + 14, 64240);		/* window */
	tcp[20] = 2;				/* MSS option, 1460 */
	tcp[21] = 4;
	sf_put16(tcp + 22, 1460);

	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = IPPROTO_TCP;
	sf_put16(pseudo + 10, SF_TCP_LEN);
	sf_put16(tcp + 16, sf_fold(sf_sum(tcp, SF_TCP_LEN, sf_sum(pseudo, sizeof(pseudo), 0))));
}

static double
sf_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	static uint8_t pkts[SF_MAX_BATCH][SF_PKT_LEN];
	static struct iovec iov[SF_MAX_BATCH];
	static struct mmsghdr msgs[SF_MAX_BATCH];
	const char *dst_s = NULL, *src_s = NULL;
	unsigned long long port = 0, rate = 0, count = 0, batch = 64, v;
	unsigned long long sent = 0, errors = 0;
	double secs = 5.0, start, now, elapsed;
	uint32_t dst, src_base, src_first;
	uint64_t src_size, src_n;
	struct sockaddr_in sin;
	struct in_addr da;
	struct sigaction sa;
	int c, fd;
	size_t i;

	while ((c = getopt(argc, argv, "d:p:s:t:r:n:b:h")) != -1) {
		switch (c) {
		case 'd':
			dst_s = optarg;
			break;
		case 'p':
			if (sf_parse_ull(optarg, 65535, &port) != 0 || port == 0) {
				fprintf(stderr, "synflood: -p %s: not a port 1..65535\n", optarg);
				return 2;
			}
			break;
		case 's':
			src_s = optarg;
			break;
		case 't':
			if (sf_parse_secs(optarg, &secs) != 0) {
				fprintf(stderr, "synflood: -t %s: not a duration in seconds (0..86400)\n", optarg);
				return 2;
			}
			break;
		case 'r':
			if (sf_parse_ull(optarg, 100000000ull, &rate) != 0) {
				fprintf(stderr, "synflood: -r %s: not a rate 0..100000000\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (sf_parse_ull(optarg, ULLONG_MAX, &count) != 0) {
				fprintf(stderr, "synflood: -n %s: not a count\n", optarg);
				return 2;
			}
			break;
		case 'b':
			if (sf_parse_ull(optarg, SF_MAX_BATCH, &batch) != 0 || batch == 0) {
				fprintf(stderr, "synflood: -b %s: not a batch size 1..%d\n", optarg, SF_MAX_BATCH);
				return 2;
			}
			break;
		case 'h':
			sf_usage(stdout);
			return 0;
		default:
			sf_usage(stderr);
			return 2;
		}
	}
	if (optind != argc || dst_s == NULL || src_s == NULL || port == 0) {
		sf_usage(stderr);
		return 2;
	}
	if (secs == 0.0 && count == 0) {
		fprintf(stderr, "synflood: -t 0 needs -n COUNT\n");
		return 2;
	}
	if (inet_pton(AF_INET, dst_s, &da) != 1) {
		fprintf(stderr, "synflood: -d %s: not an IPv4 address (IPv4 only)\n", dst_s);
		return 2;
	}
	dst = ntohl(da.s_addr);
	if (!sf_doc_addr(dst)) {
		fprintf(stderr, "synflood: -d %s: refused: only 192.0.2.0/24, 198.51.100.0/24 "
		    "and 203.0.113.0/24 (RFC 5737) are allowed\n", dst_s);
		return 2;
	}
	if (sf_parse_cidr(src_s, &src_base, &src_size) != 0) {
		fprintf(stderr, "synflood: -s %s: not an IPv4 CIDR (A.B.C.D/N)\n", src_s);
		return 2;
	}
	if (!sf_doc_addr(src_base) || !sf_doc_addr((uint32_t)(src_base + src_size - 1))) {
		fprintf(stderr, "synflood: -s %s: refused: sources must lie inside 192.0.2.0/24, "
		    "198.51.100.0/24 or 203.0.113.0/24 (RFC 5737)\n", src_s);
		return 2;
	}
	src_first = src_base;
	src_n = src_size;
	if (src_size >= 4) {		/* skip network and broadcast */
		src_first = src_base + 1;
		src_n = src_size - 2;
	}

	if (getrandom(&sf_rng, sizeof(sf_rng), 0) != (ssize_t)sizeof(sf_rng))
		sf_rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sf_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if ((fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW)) == -1) {
		fprintf(stderr, "synflood: raw socket: %s (needs CAP_NET_RAW)\n", strerror(errno));
		return 1;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr = da;
	/* Connected: every datagram goes to DST_IP and nowhere else. */
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		fprintf(stderr, "synflood: connect %s: %s\n", dst_s, strerror(errno));
		close(fd);
		return 1;
	}
	for (i = 0; i < SF_MAX_BATCH; i++) {
		iov[i].iov_base = pkts[i];
		iov[i].iov_len = SF_PKT_LEN;
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	start = now = sf_now();
	for (;;) {
		size_t n = batch;
		int r;

		if (sf_stop)
			break;
		if (secs > 0.0 && now - start >= secs)
			break;
		if (count != 0) {
			if (sent >= count)
				break;
			if (count - sent < n)
				n = (size_t)(count - sent);
		}
		if (rate != 0) {
			/* Pace: never ahead of rate * elapsed; sleep off any lead. */
			double due = (double)(sent + n) / (double)rate;

			if (due > now - start) {
				double wait = due - (now - start);
				struct timespec ts;

				if (secs > 0.0 && now - start + wait > secs)
					wait = secs - (now - start);
				ts.tv_sec = (time_t)wait;
				ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
				nanosleep(&ts, NULL);
				now = sf_now();
				continue;
			}
		}
		for (i = 0; i < n; i++) {
			uint64_t r64 = sf_rand();
			uint32_t src = src_first + (uint32_t)(r64 % src_n);
			uint16_t sport = (uint16_t)(1024 + (r64 >> 32) % (65536 - 1024));

			sf_build(pkts[i], src, dst, sport, (uint16_t)port, (uint32_t)sf_rand(),
			    (uint16_t)(sent + i));
		}
		r = sendmmsg(fd, msgs, (unsigned int)n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			errors++;
			if (errno != ENOBUFS && errno != EAGAIN) {
				fprintf(stderr, "synflood: sendmmsg: %s\n", strerror(errno));
				close(fd);
				return 1;
			}
		} else {
			sent += (unsigned long long)r;
		}
		now = sf_now();
	}
	elapsed = sf_now() - start;
	close(fd);
	v = sent;
	printf("sent=%llu errors=%llu seconds=%.3f rate=%.0f batch=%llu\n", v, errors, elapsed,
	    elapsed > 0.0 ? (double)v / elapsed : 0.0, batch);
	return 0;
}

/*
 * sock.c: socket creation and addresses (see sock.h).
 *
 * Owns every socket()/bind()/listen()/accept4()/connect() of the daemon, so
 * that options are set in one place and privileged ones (IP_TRANSPARENT for
 * TPROXY) can later move to a helper. Never logs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/netfilter_ipv4.h>	/* SO_ORIGINAL_DST */

#include "sock.h"

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST	80	/* linux/netfilter_ipv6/ip6_tables.h, which clashes with glibc */
#endif

socklen_t
sock_addr_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
}

/* IP_TRANSPARENT / IPV6_TRANSPARENT: may bind to, and accept for, non-local addresses. */
static int
sock_transparent(int fd, int family)
{
	int one = 1;

	if (family == AF_INET6)
		return setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
	return setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
}

/*
 * A socket bound to sa, as a listener is: SO_REUSEADDR (a connection of an
 * earlier run in TIME_WAIT is no conflict), v6-only, IP_TRANSPARENT if
 * asked, SO_REUSEPORT if asked. fd, or -1 with err set.
 */
static int
sock_bound(const struct sockaddr *sa, socklen_t len, int transparent, int reuseport,
    char err[SOCK_ERR_LEN])
{
	char addr[SOCK_ADDR_LEN];
	int fd, one = 1;

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, SOCK_ERR_LEN, "socket: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) ||
	    (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)) {
		snprintf(err, SOCK_ERR_LEN, "setsockopt: %s", strerror(errno));
		goto bad;
	}
	if (transparent && sock_transparent(fd, sa->sa_family) == -1) {
		snprintf(err, SOCK_ERR_LEN, "listen %s: IP_TRANSPARENT (mode = tproxy needs "
		    "CAP_NET_ADMIN): %s", sock_addr_str(sa, addr), strerror(errno));
		goto bad;
	}
	if (bind(fd, sa, len) == -1) {
		int e = errno;

		snprintf(err, SOCK_ERR_LEN, "bind %s: %s%s", sock_addr_str(sa, addr),
		    strerror(e), e == EADDRINUSE ?
		    " (another program, or another smtpwalld, listens there)" : "");
		goto bad;
	}
	return fd;
bad:
	close(fd);
	return -1;
}

int
sock_listen(const struct sockaddr *sa, socklen_t len, int transparent, char err[SOCK_ERR_LEN])
{
	char addr[SOCK_ADDR_LEN];
	int fd;

	if ((fd = sock_bound(sa, len, transparent, 1, err)) == -1)
		return -1;
	if (listen(fd, SOMAXCONN) == -1) {
		snprintf(err, SOCK_ERR_LEN, "listen %s: %s", sock_addr_str(sa, addr),
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
sock_listen_probe(const struct sockaddr *sa, socklen_t len, int transparent,
    char err[SOCK_ERR_LEN])
{
	int fd;

	/* without SO_REUSEPORT: fails where anything listens */
	if ((fd = sock_bound(sa, len, transparent, 0, err)) == -1)
		return -1;
	close(fd);
	return 0;
}

int
sock_accept(int lfd, struct sockaddr_storage *peer)
{
	socklen_t len = sizeof(*peer);
	int fd, one = 1;

	memset(peer, 0, sizeof(*peer));
	if ((fd = accept4(lfd, (struct sockaddr *)peer, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1)
		return -1;
	/* Replies are small and come in bursts we already batch ourselves. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int
sock_local_addr(int fd, struct sockaddr_storage *addr)
{
	socklen_t len = sizeof(*addr);

	memset(addr, 0, sizeof(*addr));
	return getsockname(fd, (struct sockaddr *)addr, &len);
}

int
sock_original_dst(int fd, struct sockaddr_storage *dst)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(*dst);
	int r;

	if (sock_local_addr(fd, &local) == -1)
		return -1;
	memset(dst, 0, sizeof(*dst));
	if (local.ss_family == AF_INET6)
		r = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, dst, &len);
	else
		r = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, &len);
	if (r == -1)
		return -1;
	/* Without a NAT mapping, conntrack reports the local address itself. */
	if (sock_addr_equal((struct sockaddr *)dst, (struct sockaddr *)&local)) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

int
sock_tproxy_dst(int fd, const struct sockaddr *listener, struct sockaddr_storage *dst)
{
	const struct sockaddr_in *l4 = (const struct sockaddr_in *)listener;
	const struct sockaddr_in6 *l6 = (const struct sockaddr_in6 *)listener;
	const struct sockaddr_in *d4 = (const struct sockaddr_in *)dst;
	const struct sockaddr_in6 *d6 = (const struct sockaddr_in6 *)dst;
	int direct;

	if (sock_local_addr(fd, dst) == -1)
		return -1;
	if (dst->ss_family != listener->sa_family)
		return 0;
	if (dst->ss_family == AF_INET)
		direct = d4->sin_port == l4->sin_port &&
		    (l4->sin_addr.s_addr == htonl(INADDR_ANY) ||
		    l4->sin_addr.s_addr == d4->sin_addr.s_addr);
	else
		direct = d6->sin6_port == l6->sin6_port &&
		    (IN6_IS_ADDR_UNSPECIFIED(&l6->sin6_addr) ||
		    memcmp(&l6->sin6_addr, &d6->sin6_addr, 16) == 0);
	if (direct) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

/* The upstream socket, bound to src (TPROXY) or, with bind_now, to the wildcard. */
static int
sock_upstream_open(const struct sockaddr *dst, const struct sockaddr *src, int bind_now)
{
	struct sockaddr_storage from;
	int fd, one = 1, e;

	if ((fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&from, 0, sizeof(from));
	from.ss_family = dst->sa_family;
	if (src != NULL) {
		/* The client's address, a port of the kernel's choosing: reusing the
		 * client's own port would be the very 4-tuple being intercepted. */
		memcpy(&from, src, sock_addr_len(src));
		if (from.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&from)->sin6_port = 0;
		else
			((struct sockaddr_in *)&from)->sin_port = 0;
		if (sock_transparent(fd, dst->sa_family) == -1)
			goto bad;
	}
	if (src != NULL || bind_now) {
		if (!bind_now)
			(void)setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&from, sock_addr_len((struct sockaddr *)&from)) == -1)
			goto bad;
	}
	return fd;
bad:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

int
sock_upstream_connect(int fd, const struct sockaddr *dst)
{
	int e;

	if (connect(fd, dst, sock_addr_len(dst)) == -1 && errno != EINPROGRESS) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return 0;
}

int
sock_upstream_bound(const struct sockaddr *dst, const struct sockaddr *src,
    struct sockaddr_storage *local)
{
	int fd, e;

	if ((fd = sock_upstream_open(dst, src, 1)) == -1)
		return -1;
	if (sock_local_addr(fd, local) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
sock_connect(const struct sockaddr *dst, const struct sockaddr *src)
{
	int fd;

	if ((fd = sock_upstream_open(dst, src, 0)) == -1 || sock_upstream_connect(fd, dst) == -1)
		return -1;
	return fd;
}

int
sock_connect_error(int fd)
{
	socklen_t len = sizeof(int);
	int e = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
		return errno;
	return e;
}

void
sock_abort(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static const void *
sock_ip_ptr(const struct sockaddr *sa, int *family, unsigned *port)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

	if (sa->sa_family == AF_INET6) {
		*port = ntohs(s6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			*family = AF_INET;
			return &s6->sin6_addr.s6_addr[12];
		}
		*family = AF_INET6;
		return &s6->sin6_addr;
	}
	*port = ntohs(s4->sin_port);
	*family = AF_INET;
	return &s4->sin_addr;
}

char *
sock_ip_str(const struct sockaddr *sa, char buf[SOCK_IP_LEN])
{
	unsigned port;
	int family;
	const void *ip = sock_ip_ptr(sa, &family, &port);

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
		snprintf(buf, SOCK_IP_LEN, "unknown");
		return buf;
	}
	if (inet_ntop(family, ip, buf, SOCK_IP_LEN) == NULL)
		snprintf(buf, SOCK_IP_LEN, "unknown");
	return buf;
}

char *
sock_addr_str(const struct sockaddr *sa, char buf[SOCK_ADDR_LEN])
{
	char ip[SOCK_IP_LEN];
	unsigned port;
	int family;

	(void)sock_ip_ptr(sa, &family, &port);
	sock_ip_str(sa, ip);
	if (family == AF_INET6)
		snprintf(buf, SOCK_ADDR_LEN, "[%s]:%u", ip, port);
	else
		snprintf(buf, SOCK_ADDR_LEN, "%s:%u", ip, port);
	return buf;
}

int
sock_addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)a, *b4 = (const struct sockaddr_in *)b;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a, *b6 = (const struct sockaddr_in6 *)b;

	if (a->sa_family != b->sa_family)
		return 0;
	if (a->sa_family == AF_INET)
		return a4->sin_port == b4->sin_port &&
		    a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	if (a->sa_family == AF_INET6)
		return a6->sin6_port == b6->sin6_port &&
		    memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0;
	return 0;
}

int
sock_addr_parse(const char *s, struct sockaddr_storage *out)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *hs;
	size_t hl;
	char *end;
	unsigned long port;

	memset(out, 0, sizeof(*out));
	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return -1;
		hs = s + 1;
		hl = (size_t)(rb - hs);
		colon = rb + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		hs = s;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno || port > 65535)
		return -1;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1 && *s != '[') {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)port);
		return 0;
	}
	if (*s == '[' && inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)port);
		return 0;
	}
	return -1;
}

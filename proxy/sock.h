/*
 * sock: every socket smtpwalld creates is made here, with all its options in
 * one place: the listeners (SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY), the
 * accepted client sockets, and the non-blocking upstream connects. Also the
 * original destination of a REDIRECTed connection (SO_ORIGINAL_DST /
 * IP6T_SO_ORIGINAL_DST, read from conntrack), and address printing.
 *
 * Never logs: errors are -1 with errno, or text in err[SOCK_ERR_LEN].
 */
#ifndef SMTPWALL_SOCK_H
#define SMTPWALL_SOCK_H

#include <stddef.h>
#include <sys/socket.h>

#define SOCK_ERR_LEN	256
#define SOCK_ADDR_LEN	80	/* "[ffff:...:ffff]:65535" fits */
#define SOCK_IP_LEN	64	/* INET6_ADDRSTRLEN and then some */

/* A non-blocking listener bound to sa. fd, or -1 with err set. */
int	sock_listen(const struct sockaddr *sa, socklen_t len, char err[SOCK_ERR_LEN]);

/* accept4(NONBLOCK|CLOEXEC); fd or -1 with errno (EAGAIN when none is waiting). */
int	sock_accept(int lfd, struct sockaddr_storage *peer);

/* Where the client meant to connect before the REDIRECT. 0, or -1 with errno (ENOENT: not redirected). */
int	sock_original_dst(int fd, struct sockaddr_storage *dst);

/* getsockname. 0 / -1. */
int	sock_local_addr(int fd, struct sockaddr_storage *addr);

/* Non-blocking connect to dst. fd (connection maybe still in progress), or -1 with errno. */
int	sock_connect(const struct sockaddr *dst);

/* After the connect completed (writable): 0, or the errno it failed with. */
int	sock_connect_error(int fd);

/* Close with an RST (SO_LINGER 0): the peer must not take this as a clean end. */
void	sock_abort(int fd);

/* "192.0.2.1:25" / "[2001:db8::1]:25"; v4-mapped IPv6 printed as IPv4. Returns buf. */
char	*sock_addr_str(const struct sockaddr *sa, char buf[SOCK_ADDR_LEN]);
/* The address alone, without port. Returns buf. */
char	*sock_ip_str(const struct sockaddr *sa, char buf[SOCK_IP_LEN]);

/* 1 if same family, address and port. */
int	sock_addr_equal(const struct sockaddr *a, const struct sockaddr *b);
socklen_t sock_addr_len(const struct sockaddr *sa);

/* Parse "IP:PORT" / "[IPv6]:PORT" (numeric). 0, or -1. */
int	sock_addr_parse(const char *s, struct sockaddr_storage *out);

#endif

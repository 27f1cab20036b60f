/*
 * sock: every socket smtpwalld creates is made here, with all its options in
 * one place: the listeners (SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY), the
 * accepted client sockets, and the non-blocking upstream connects. Also the
 * original destination of a REDIRECTed connection (SO_ORIGINAL_DST /
 * IP6T_SO_ORIGINAL_DST, read from conntrack) or a TPROXYed one (the
 * accepted socket's own address), and address printing.
 *
 * TPROXY (mode = tproxy): the listener is IP_TRANSPARENT, so it accepts
 * connections to any address that the firewall's tproxy rule sends it, and
 * the upstream socket is IP_TRANSPARENT too and bound to the client's
 * address (port chosen by the kernel), so the server sees the real client.
 * Both need CAP_NET_ADMIN.
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

/*
 * A non-blocking listener bound to sa (IP_TRANSPARENT if transparent), with
 * SO_REUSEPORT: each worker binds its own. fd, or -1 with err set.
 */
int	sock_listen(const struct sockaddr *sa, socklen_t len, int transparent,
	    char err[SOCK_ERR_LEN]);
/*
 * Is sa free for us? SO_REUSEPORT would let a second daemon of the same user
 * bind the port silently and take half of the connections; a socket without
 * it cannot bind where anything listens. 0, or -1 with err ("Address already
 * in use"). Binds nothing that stays.
 */
int	sock_listen_probe(const struct sockaddr *sa, socklen_t len, int transparent,
	    char err[SOCK_ERR_LEN]);

/* accept4(NONBLOCK|CLOEXEC); fd or -1 with errno (EAGAIN when none is waiting). */
int	sock_accept(int lfd, struct sockaddr_storage *peer);

/* Where the client meant to connect before the REDIRECT. 0, or -1 with errno (ENOENT: not redirected). */
int	sock_original_dst(int fd, struct sockaddr_storage *dst);

/*
 * Where the client meant to connect under TPROXY: the accepted socket's own
 * address. -1 with errno ENOENT if that is the listener's port on the
 * listener's address (the client connected to the listener itself: not
 * intercepted, and relaying it would loop back to us).
 */
int	sock_tproxy_dst(int fd, const struct sockaddr *listener, struct sockaddr_storage *dst);

/* getsockname. 0 / -1. */
int	sock_local_addr(int fd, struct sockaddr_storage *addr);

/*
 * Non-blocking connect to dst. fd (connection maybe still in progress), or -1
 * with errno. With src (TPROXY: the client's address, same family as dst),
 * the socket is IP_TRANSPARENT and bound to src's address with port 0.
 */
int	sock_connect(const struct sockaddr *dst, const struct sockaddr *src);
/*
 * sock_connect in two steps, for a caller that must know the socket's own
 * port before its SYN leaves (a session being captured): the socket, bound
 * now (to src, or to the wildcard address) with *local filled in, then the
 * connect.
 */
int	sock_upstream_bound(const struct sockaddr *dst, const struct sockaddr *src,
	    struct sockaddr_storage *local);
int	sock_upstream_connect(int fd, const struct sockaddr *dst);	/* 0, or -1 with errno; the fd is closed */

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

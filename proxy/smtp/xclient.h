/*
 * smtp/xclient: the pure, state-free pieces of Postfix's XCLIENT extension
 * (Postfix XCLIENT_README; SPEC xclient): which attributes a server's EHLO
 * reply offers, the RFC 3461 xtext encoding, the client's address as XCLIENT
 * writes it, and the XCLIENT command line itself.
 *
 * The attributes smtpwall sends, in this order, when the server lists them
 * after its XCLIENT keyword (Postfix answers 501 to an attribute it does not
 * support): ADDR, PORT, NAME, HELO, PROTO. NAME is always [UNAVAILABLE]:
 * smtpwall does no reverse DNS, and a name it has not verified must not
 * reach the server's access rules.
 *
 * Never: session state, sequencing (when to probe, send or relay is
 * smtp/fsm.c's), allocation, I/O, logs. Output goes into the caller's
 * buffers, with their size checked.
 */
#ifndef SMTPWALL_SMTP_XCLIENT_H
#define SMTPWALL_SMTP_XCLIENT_H

#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define SMTP_XCLIENT_MAX	512	/* an XCLIENT line, CRLF included (XCLIENT_README) */
/* Room for smtp_xclient_addr(): "IPV6:" + the longest IPv6 text, or "[UNAVAILABLE]". */
#define SMTP_XCLIENT_ADDR_SIZE	(INET6_ADDRSTRLEN + 16)

/* Attribute bits, as smtp_xclient_offered() reads them and smtp_xclient_line() takes them. */
#define SMTP_XA_ADDR	0x01
#define SMTP_XA_PORT	0x02
#define SMTP_XA_NAME	0x04
#define SMTP_XA_HELO	0x08
#define SMTP_XA_PROTO	0x10
#define SMTP_XA_ATTRS	(SMTP_XA_ADDR | SMTP_XA_PORT | SMTP_XA_NAME | SMTP_XA_HELO | SMTP_XA_PROTO)
#define SMTP_XA_OFFERED	0x80	/* the XCLIENT keyword itself */

/*
 * What a collected 250 EHLO reply says of XCLIENT: SMTP_XA_* bits, 0 if it
 * is not offered. `reply` is the reply's text (after "250-"/"250 "), one
 * line after the other, each ended by '\n' (a last line without it is read
 * too), no CR. The first line is the server's greeting text, never a
 * keyword. Keyword and attribute names are case-insensitive; unknown names
 * are ignored.
 */
unsigned smtp_xclient_offered(const char *reply, size_t len);

/*
 * RFC 3461 xtext of n bytes: bytes outside "!".."~", '+' and '=' become
 * "+XX" (upper case hex). Writes a NUL-terminated string into dst; returns
 * its length, or -1 if dst (dlen bytes, NUL included) is too small.
 */
int	smtp_xclient_xtext(char *dst, size_t dlen, const char *s, size_t n);

/*
 * The client's address as XCLIENT writes it, NUL-terminated into dst (at
 * least SMTP_XCLIENT_ADDR_SIZE bytes, or it is cut): a.b.c.d, IPV6:x::y
 * (an IPv4-mapped IPv6 address as a.b.c.d), or [UNAVAILABLE] for any other
 * family. *port is the client's port in host order, 0 if unknown.
 */
void	smtp_xclient_addr(const struct sockaddr_storage *client, char *dst, size_t dlen,
	    unsigned *port);

/*
 * The XCLIENT command line, CRLF included, with the attributes in `bits`
 * (SMTP_XA_*; others ignored), in the order above: ADDR and PORT from
 * `client` (PORT=[UNAVAILABLE] when it has none), NAME=[UNAVAILABLE],
 * HELO=helo (already xtext, see smtp_xclient_xtext()), PROTO=ESMTP if the
 * client said EHLO (`ehlo` non-zero), else SMTP. Written into line (size
 * bytes) and NUL-terminated after the CRLF. Returns its length, CRLF
 * included, or -1 if it exceeds SMTP_XCLIENT_MAX octets or the buffer.
 */
int	smtp_xclient_line(unsigned bits, const struct sockaddr_storage *client,
	    const char *helo, int ehlo, char *line, size_t size);

#endif

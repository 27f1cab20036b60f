/*
 * smtp/xclient.c: the pure XCLIENT helpers (see xclient.h): the attribute
 * table, reading the offer from an EHLO reply, xtext, the client's address
 * and the XCLIENT line.
 *
 * Never: session state or sequencing (smtp/fsm.c), allocation, fds, logs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"
#include "xclient.h"

#define XC_UNAVAILABLE	"[UNAVAILABLE]"

/* The attributes, in the order they are sent. */
static const struct smtp_xattr {
	const char	*name;
	unsigned	 bit;
} smtp_xattrs[] = {
	{ "ADDR",	SMTP_XA_ADDR },
	{ "PORT",	SMTP_XA_PORT },
	{ "NAME",	SMTP_XA_NAME },
	{ "HELO",	SMTP_XA_HELO },
	{ "PROTO",	SMTP_XA_PROTO },
};
#define SMTP_NXATTRS	(sizeof(smtp_xattrs) / sizeof(smtp_xattrs[0]))

/* The attribute names after the XCLIENT keyword of one line, as bits. */
static unsigned
smtp_xclient_attrs(struct slice l, struct slice kw)
{
	const char *end = l.p + l.len;
	struct slice w;
	unsigned bits = 0, i;

	w.p = kw.p + kw.len;
	while (w.p < end) {
		while (w.p < end && *w.p == ' ')
			w.p++;
		for (w.len = 0; w.p + w.len < end && w.p[w.len] != ' '; w.len++)
			;
		for (i = 0; i < SMTP_NXATTRS; i++)
			if (smtp_slice_ieq(w, smtp_xattrs[i].name))
				bits |= smtp_xattrs[i].bit;
		w.p += w.len;
	}
	return bits;
}

unsigned
smtp_xclient_offered(const char *reply, size_t len)
{
	const char *p = reply, *end, *nl;
	unsigned bits = 0, n;
	struct slice l, kw;

	if (reply == NULL || len == 0)
		return 0;
	end = reply + len;
	for (n = 0; p < end; n++) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		l.p = p;
		l.len = (size_t)(nl - p);
		p = nl < end ? nl + 1 : end;
		kw = smtp_ehlo_keyword(l);
		if (n == 0 || !smtp_slice_ieq(kw, "XCLIENT"))
			continue;	/* the first line is the greeting text */
		bits |= SMTP_XA_OFFERED | smtp_xclient_attrs(l, kw);
	}
	return bits;
}

int
smtp_xclient_xtext(char *dst, size_t dlen, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0, i;

	if (dlen == 0)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x21 || c > 0x7e || c == '+' || c == '=') {
			if (o + 3 >= dlen)
				return -1;
			dst[o++] = '+';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		} else {
			if (o + 1 >= dlen)
				return -1;
			dst[o++] = (char)c;
		}
	}
	dst[o] = '\0';
	return (int)o;
}

void
smtp_xclient_addr(const struct sockaddr_storage *client, char *dst, size_t dlen,
    unsigned *port)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)client;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)client;
	char ip[INET6_ADDRSTRLEN];

	*port = 0;
	snprintf(dst, dlen, XC_UNAVAILABLE);
	if (client->ss_family == AF_INET) {
		if (inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip)) != NULL)
			snprintf(dst, dlen, "%s", ip);
		*port = ntohs(s4->sin_port);
	} else if (client->ss_family == AF_INET6) {
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			if (inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, sizeof(ip)) != NULL)
				snprintf(dst, dlen, "%s", ip);
		} else if (inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip)) != NULL)
			snprintf(dst, dlen, "IPV6:%s", ip);
		*port = ntohs(s6->sin6_port);
	}
}

int
smtp_xclient_line(unsigned bits, const struct sockaddr_storage *client,
    const char *helo, int ehlo, char *line, size_t size)
{
	char addr[SMTP_XCLIENT_ADDR_SIZE], portstr[16];
	const char *val;
	unsigned port, i;
	size_t n;
	int k;

	if (size <= sizeof("XCLIENT") - 1)
		return -1;
	smtp_xclient_addr(client, addr, sizeof(addr), &port);
	if (port != 0)
		snprintf(portstr, sizeof(portstr), "%u", port);
	else
		snprintf(portstr, sizeof(portstr), XC_UNAVAILABLE);
	n = (size_t)snprintf(line, size, "XCLIENT");
	for (i = 0; i < SMTP_NXATTRS; i++) {
		if (!(bits & smtp_xattrs[i].bit))
			continue;
		switch (smtp_xattrs[i].bit) {
		case SMTP_XA_ADDR:	val = addr; break;
		case SMTP_XA_PORT:	val = portstr; break;
		case SMTP_XA_HELO:	val = helo; break;
		case SMTP_XA_PROTO:	val = ehlo ? "ESMTP" : "SMTP"; break;
		default:		val = XC_UNAVAILABLE; break;
		}
		k = snprintf(line + n, size - n, " %s=%s", smtp_xattrs[i].name, val);
		if (k < 0 || (size_t)k >= size - n)
			return -1;
		n += (size_t)k;
	}
	if (n + 2 > SMTP_XCLIENT_MAX || n + 2 >= size)
		return -1;
	line[n++] = '\r';
	line[n++] = '\n';
	line[n] = '\0';
	return (int)n;
}

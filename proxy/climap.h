/*
 * climap: live session count per client address, for max_sessions_per_client.
 * A chained hash table keyed by the IP (port ignored, v4-mapped folded to v4).
 * Entries exist only while their count is above zero, so memory follows the
 * number of distinct live clients. Never logs.
 */
#ifndef SMTPWALL_CLIMAP_H
#define SMTPWALL_CLIMAP_H

#include <sys/socket.h>

struct climap;

struct climap *climap_new(void);
void	climap_free(struct climap *);
/* Count one more session for sa's address: the new count, or -1 (ENOMEM). */
long	climap_inc(struct climap *, const struct sockaddr *sa);
/* One session fewer. */
void	climap_dec(struct climap *, const struct sockaddr *sa);
unsigned long climap_get(const struct climap *, const struct sockaddr *sa);

#endif

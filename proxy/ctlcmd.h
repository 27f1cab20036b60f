/*
 * ctlcmd: what each control command does (docs/control-protocol.md).
 *
 * A static keyword table maps the words of a command to its handler, which
 * appends its answer (data lines, then one final "ok ..." or "error: ..."
 * line) to the connection's output buffer. Rule changes go through live.c,
 * so they are on disk before "ok". Never blocks, never logs client input
 * unescaped.
 */
#ifndef SMTPWALL_CTLCMD_H
#define SMTPWALL_CTLCMD_H

#include "buf.h"
#include "proxy.h"

/* Run one command (argv[0] is the verb); its whole answer is appended to out. */
void	ctlcmd_run(struct proxy *px, int argc, char **argv, struct buf *out);

/* "7d" / "90m" / "30s" / "2h" / "1w": seconds, or -1 if malformed or absurd. */
long long ctlcmd_duration(const char *s);

#endif

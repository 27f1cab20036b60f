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

struct ctl_conn;

/*
 * Run one command (argv[0] is the verb) for connection c. Returns 0 when its
 * whole answer is in ctl_conn_out(c), or 1 when the answer comes later (a
 * rule change being written to disk): then ctl_conn_resume(c) is called once
 * it is complete.
 */
int	ctlcmd_run(struct proxy *px, int argc, char **argv, struct ctl_conn *c);

/* "7d" / "90m" / "30s" / "2h" / "1w": seconds, or -1 if malformed or absurd. */
long long ctlcmd_duration(const char *s);

#endif

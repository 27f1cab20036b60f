/*
 * control: the UNIX control socket (docs/control-protocol.md).
 *
 * Owns the listening socket and its client connections: creation with mode
 * 0660 and group control_group, the SO_PEERCRED check (root or a member of
 * control_group, anyone else gets one error line and is closed), line
 * framing and word splitting. What a command does is ctlcmd.c's.
 * Never blocks: a client that does not read its answers is dropped once its
 * output buffer is full.
 */
#ifndef SMTPWALL_CONTROL_H
#define SMTPWALL_CONTROL_H

#include "proxy.h"

#define CTL_LINE_MAX	4096	/* a command line, LF included */
#define CTL_ARGS_MAX	1024	/* a 4096-byte line has fewer words than this */

struct ctl_conn;

/* The output buffer of a connection, for an answer written later. */
struct buf *ctl_conn_out(struct ctl_conn *c);
/*
 * An answer that ctlcmd_run() left pending (it returned 1) is complete in
 * ctl_conn_out(c): send it, then go on with the connection's next commands.
 * If the client has gone meanwhile, this frees what is left of it.
 */
void	ctl_conn_resume(struct ctl_conn *c);

/* Open the control socket of px->conf into px->ctl. 0, or -1 with err set. */
int	ctl_open(struct proxy *px, char err[256]);
/* Close it and every client connection; the socket file is removed. */
void	ctl_close(struct proxy *px);

/*
 * Split a command line in place into words: spaces and tabs separate, a
 * word in double quotes may hold them, with \" and \\ inside. Returns the
 * number of words, or -1 (unbalanced quote, too many words).
 */
int	ctl_split(char *line, char *argv[CTL_ARGS_MAX]);

#endif

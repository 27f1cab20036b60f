/*
 * session: one client connection and its upstream connection.
 *
 * Owns both sockets, their four buffers, the SMTP FSM, the timers. It is
 * the only code that reads and writes a session's sockets: it feeds what it
 * read to the FSM, writes what the FSM produced, carries out the FSM's flags
 * and logs its events. sess_close() is the single exit; the memory is freed
 * after the current loop iteration (ev_defer), so no callback of the same
 * batch ever touches a freed session.
 */
#ifndef SMTPWALL_SESSION_H
#define SMTPWALL_SESSION_H

#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "ev.h"
#include "conf.h"
#include "smtp/fsm.h"

struct proxy;
struct worker;
struct capt_rec;

struct conn {
	int		fd;		/* -1 when closed */
	struct buf	in, out;
	int		eof;		/* read side ended (FIN or error) */
	int		eof_handled;	/* the FSM has been told */
	int		connecting;	/* server side: connect() in progress */
	int		bulk;		/* the last read filled its room: read more at once */
};

struct session {
	struct proxy		*px;
	struct worker		*w;		/* the worker (thread, loop) it lives on */
	struct pxconf		*conf;		/* the configuration it started with (pinned) */
	struct session		*prev, *next;
	uint64_t		 id;
	struct sockaddr_storage	 caddr;		/* client */
	struct sockaddr_storage	 saddr;		/* the server we connect to */
	struct conn		 client, server;
	struct smtp_fsm		 fsm;
	struct ev_timer		 t_idle, t_server, t_connect, t_linger;
	unsigned		 last_commands;	/* fsm.commands at the last idle reset */
	uint64_t		 start_ms;
	int			 dead;
	int			 draining;	/* closing: flushing the last replies to the client */
	const char		*result;	/* summary: why it ended */
	struct capt_rec		*capt;		/* being captured (captures.c), or NULL */
};

#define SESS_FROM_LEN	(SMTP_ADDR_MAX * 4 + 3)

/*
 * The session's sender for a key=value line: "<escaped address>", or "-"
 * when no MAIL was accepted ("<>" is the null sender). Returns buf.
 */
char	*sess_from_str(const struct session *s, char buf[SESS_FROM_LEN]);

/* Accept every pending connection on one of w's listeners. */
void	sess_accept(struct worker *w, int lfd);

/* End a session now: summary line, sockets closed, memory freed after this iteration. */
void	sess_close(struct session *s, const char *result);

/* SIGTERM's last step: 421 4.3.2 to every session of w still open, then close it. */
void	sess_shutdown_all(struct worker *w, void *unused);

#endif

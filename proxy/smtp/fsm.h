/*
 * smtp/fsm: one proxied SMTP session as a pure state machine.
 *
 * Bytes in, bytes out: the session feeds what it read from the client and
 * from the server; the FSM appends what each side must receive to two output
 * buffers it was given, and raises flags (close the client, abort the server,
 * drain the client, go raw) that the session carries out. It owns the
 * pipeline FIFO, the transaction, the EHLO filter and the policy calls.
 *
 * Never: touches an fd, reads a clock, logs, or blocks. Decisions worth a
 * log line are reported through the event callback; timers live in the
 * session, which calls smtp_fsm_server_failed()/smtp_fsm_client_timeout().
 *
 * The rules: a command is forwarded only once its whole line has arrived, and
 * unchanged; the mode changes only on the server's reply (354 -> DATA, 334 ->
 * AUTH continuation, 220 to STARTTLS -> raw), so after DATA, AUTH and STARTTLS
 * no further client byte is read until that reply is in; replies smtpwall
 * writes itself take their exact place among the server's (FIFO of in-flight
 * commands, each SERVER or LOCAL); the 250 after the end of DATA is always
 * the server's; a refused message is aborted at the server, never ended.
 * With xclient = on, the client's first HELO/EHLO is held behind smtpwall's
 * own EHLO (and XCLIENT, when offered): their replies never reach the
 * client, which gets exactly one reply to its command.
 */
#ifndef SMTPWALL_SMTP_FSM_H
#define SMTPWALL_SMTP_FSM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>
#include "../buf.h"
#include "../../rules/rules.h"
#include "parse.h"
#include "data.h"

#define SMTP_FIFO_MAX		64	/* commands in flight; then the client is not read */
#define SMTP_REPLY_LINE_MAX	2048	/* longest server reply line accepted */
#define SMTP_OUT_HIGH		(64 * 1024)	/* stop producing output for a side above this */
#define SMTP_OUT_MAX		(256 * 1024)	/* hard maximum of an output buffer */
#define SMTP_MAX_NOT_SMTP	3	/* non-SMTP lines, then 421 and close */
#define SMTP_MAX_ERRORS		20	/* protocol errors, then 421 and close (Postfix smtpd_hard_error_limit) */
#define SMTP_HELO_MAX		256
#define SMTP_ADDR_MAX		SMTP_PATH_MAX

enum smtp_state {
	SS_GREETING = 0,	/* waiting for the server's greeting; client input is held */
	SS_CMD,			/* command mode */
	SS_DATA,		/* relaying message content after 354 */
	SS_AUTH,		/* after 334: the next client line is an AUTH continuation, passed unread */
	SS_RAW,			/* after 220 to an allowed STARTTLS: opaque bytes both ways */
	SS_QUIT,		/* QUIT forwarded or answered: nothing more is forwarded */
	SS_CLOSED,		/* the session is over; input is discarded */
};
const char *smtp_state_str(enum smtp_state);

/* out_flags: what the session must do; it clears them after acting. */
#define SMTP_FSM_CLOSE_CLIENT	0x01	/* the client is closed once the replies it is owed are written
					   (informational: smtp_fsm_finished() says when) */
#define SMTP_FSM_ABORT_SERVER	0x02	/* reset the server connection now; drop what is queued for it */
#define SMTP_FSM_DRAIN_CLIENT	0x04	/* discard every client byte received so far, kernel buffer included */

enum smtp_event_kind {
	SMTP_EV_REFUSE = 1,	/* smtpwall refused a command itself (policy or limit) */
	SMTP_EV_ERROR,		/* a protocol error by the client (syntax, unknown verb, bad bytes) */
	SMTP_EV_ABORT,		/* a message was refused during DATA and aborted at the server */
	SMTP_EV_SERVER,		/* the server misbehaved (garbage reply, unsolicited reply) */
	SMTP_EV_STATE,		/* state change (debug) */
	SMTP_EV_MESSAGE,	/* the server answered the end of DATA (code) */
	SMTP_EV_ADDRESS,	/* a MAIL FROM or RCPT TO that parsed, before the policy judges it
				   (what "from"/"rcpt", arg the mailbox): capture triggers */
	SMTP_EV_XCLIENT,	/* xclient = on: the outcome (reason "ok", "not_offered" or
				   "refused"; code and arg: the server's reply that decided) */
};

struct smtp_event {
	enum smtp_event_kind	 kind;
	const char		*what;		/* "rcpt", "from", "command", "data", "reply", "state" */
	struct slice		 arg;		/* the address, verb or line concerned (untrusted bytes) */
	const char		*reason;	/* relay, routing, sender, size, bare_lf, nul, syntax, ... */
	const struct rules_rule	*rule;		/* the rule that decided, if any */
	int			 code;		/* the reply code sent or received */
	enum smtp_state		 from, to;	/* SMTP_EV_STATE */
};

typedef void smtp_event_fn(void *arg, const struct smtp_event *);
/* The live ruleset, as a new reference the FSM will drop. */
typedef struct ruleset *smtp_rules_fn(void *arg);

/* Immutable per-daemon settings, owned by the caller, outliving every session. */
struct smtp_fsm_conf {
	const struct rules_policy *policy;
	smtp_rules_fn		*rules;		/* current live ruleset */
	void			*rules_arg;
	const char		(*commands)[16];	/* verbs allowed to reach the server, upper case */
	unsigned		 ncommands;
	uint64_t		 max_message_size;
	unsigned		 max_recipients;
	unsigned		 max_line_length;	/* CRLF included */
	enum smtp_data_mode	 bare_lf;
	const char		*hostname;	/* in our own 421 replies */
	int			 xclient;	/* send XCLIENT when the server offers it (SPEC xclient) */
};

struct smtp_pending {
	uint8_t		verb;		/* enum smtp_verb, or SMTP_P_* below */
	uint8_t		local;		/* 1: smtpwall answers it; its reply is in fsm->local */
	uint8_t		flags;		/* SMTP_PF_* */
	uint16_t	local_len;
};
#define SMTP_PF_STARTS_TX	0x01	/* this MAIL opened the transaction */
#define SMTP_PF_INTERNAL	0x02	/* smtpwall's own command (XCLIENT exchange): its reply is
					   never passed on, and the client is owed nothing for it */
#define SMTP_PF_HELD		0x04	/* the client's HELO/EHLO, not sent yet: it goes out once
					   the internal commands before it are answered */
#define SMTP_P_GREETING	200	/* pseudo-verbs of the FIFO */
#define SMTP_P_DOT	201
#define SMTP_P_AUTHCONT	202
#define SMTP_P_XPROBE	203	/* internal EHLO: does the server offer XCLIENT, with which attributes? */
#define SMTP_P_XCLIENT	204	/* internal XCLIENT */

/*
 * xclient = on, once per session, on the client's first HELO/EHLO (held in
 * the FIFO, SMTP_PF_HELD, behind the internal commands; `barrier` holds the
 * client's next bytes until the reply to its own HELO/EHLO):
 * IDLE -> PROBE (EHLO sent) -> SENT (XCLIENT sent, if offered) -> RELAY (the
 * client's line forwarded) -> DONE. A server failure on the way is DONE.
 */
enum smtp_xclient {
	SMTP_XC_IDLE = 0,
	SMTP_XC_PROBE,
	SMTP_XC_SENT,
	SMTP_XC_RELAY,
	SMTP_XC_DONE,
};

struct smtp_fsm {
	const struct smtp_fsm_conf *conf;
	struct buf		*to_client;
	struct buf		*to_server;
	smtp_event_fn		*event;
	void			*event_arg;

	enum smtp_state		 state;
	unsigned		 out_flags;	/* SMTP_FSM_* */
	struct sockaddr_storage	 client;	/* for the relay decision */
	int			 starttls_allow;	/* this client may STARTTLS through */
	int			 authenticated;	/* the server answered 235 */
	int			 server_gone;	/* the server's side was aborted or lost */
	int			 client_eof;
	int			 barrier;	/* a mode-changing command awaits its reply */
	int			 skip_line;	/* discarding an over-long line through its CRLF */
	int			 skip_cr;	/* while skipping: the last byte discarded was CR */
	unsigned		 not_smtp;	/* lines that were not SMTP at all */
	unsigned		 errors;	/* protocol errors */
	time_t			 now;		/* set by the caller before each call: rule expiry */

	/* pipeline FIFO (ring) */
	struct smtp_pending	 fifo[SMTP_FIFO_MAX];
	unsigned		 fifo_head, fifo_len;
	struct buf		 local;		/* our replies waiting for their turn */
	struct buf		 ehlo;		/* the EHLO reply being filtered */
	struct buf		 mline;		/* the lines so far of another multi-line reply */
	int			 ehlo_code;

	/* xclient = on */
	enum smtp_xclient	 xc;
	unsigned		 xc_verb;	/* the client's: SMTP_V_HELO or SMTP_V_EHLO */
	struct buf		 xc_line;	/* its line, CRLF included, until it is sent */
	size_t			 xc_helo_off, xc_helo_len;	/* its argument in xc_line, trimmed */

	/* the transaction */
	int			 tx_active;	/* a MAIL was forwarded since the last reset */
	unsigned		 tx_rcpt;	/* RCPTs forwarded in this transaction */
	struct ruleset		*rules;		/* live ruleset as of the last MAIL/RCPT (a reference) */
	struct smtp_data	 data;
	int			 data_refused;	/* reason the current message is being discarded, 0 if none */
	const char		*data_reason;

	/* for the session summary */
	/*
	 * Heap strings sized to what they held (an idle session holds no 256-byte
	 * arrays); NULL: none yet. A block is kept and reused by the next value
	 * that fits (its capacity in *_cap), so MAIL after MAIL is no allocator
	 * call: only a longer value than any before grows it (see fsm_set).
	 */
	char			*helo;		/* at most SMTP_HELO_MAX - 1 bytes */
	char			*from;		/* last MAIL FROM as written, between the brackets */
	int			 have_from;
	unsigned		 rcpt_ok, rcpt_refused, messages, commands;
	uint8_t			 helo_cap, from_cap, msg_from_cap;	/* longest string each block
							   holds (its size - 1), 0: no block */
	uint64_t		 bytes;		/* content bytes of messages the server accepted */
	uint64_t		 msg_bytes;	/* content bytes of the message in flight */
	char			*msg_from;	/* its sender: a pipelined MAIL may follow the dot */
	const char		*xc_result;	/* "ok", "not_offered", "refused"; NULL: not tried */
};

/*
 * Start a session: the server's greeting is awaited, client input held.
 * to_client and to_server are the session's output buffers; the FSM only
 * appends to them, and stops producing output for a side whose buffer holds
 * more than SMTP_OUT_HIGH bytes.
 */
void	smtp_fsm_init(struct smtp_fsm *, const struct smtp_fsm_conf *conf,
	    const struct sockaddr *client, int starttls_allow,
	    struct buf *to_client, struct buf *to_server,
	    smtp_event_fn *event, void *event_arg);
void	smtp_fsm_free(struct smtp_fsm *);	/* drops the rules reference and buffers */

/* Feed client bytes; returns how many were consumed (the rest must be fed again later). */
size_t	smtp_fsm_client(struct smtp_fsm *, const char *p, size_t n);
/* Feed server bytes; returns how many were consumed. */
size_t	smtp_fsm_server(struct smtp_fsm *, const char *p, size_t n);

/* The client closed its side (FIN): a message in flight is aborted, replies still owed keep flowing. */
void	smtp_fsm_client_eof(struct smtp_fsm *);
/* The client was silent for timeout_idle: 421 4.4.2, close. */
void	smtp_fsm_client_timeout(struct smtp_fsm *);
/*
 * The server's side failed (could not connect, closed, reset, timed out):
 * every reply still owed by the server is answered with `code enh text`
 * (421 closes the client after it; any other code leaves the session in
 * "server gone" mode, where QUIT gets 221 and anything else 421).
 */
void	smtp_fsm_server_failed(struct smtp_fsm *, int code, const char *enh, const char *text);

/*
 * The relay decision's view of a parsed RCPT path (slices into the path's
 * line). The one translation from SMTP_PATH_* to RULES_RCPT_*, shared by
 * sessions and `smtpwallctl check`, so that check judges exactly as they do.
 */
void	smtp_fsm_rcpt_of(const struct smtp_path *p, struct rules_rcpt *r);

/* One of the FSM's strings (helo, from, msg_from), "" when not set. */
static inline const char *
smtp_fsm_str(const char *s)
{
	return s != NULL ? s : "";
}

/* 1 if a reply from the server is awaited (arm timeout_server). */
int	smtp_fsm_awaiting_server(const struct smtp_fsm *);
/* 1 if the session is done: nothing owed either way and (QUIT, closed or client EOF). */
int	smtp_fsm_finished(const struct smtp_fsm *);

#endif

/*
 * captures: the armed captures of `smtpwallctl capture` and the sessions they
 * record (SPEC "Session capture"; the packets and files are capture/).
 *
 * Owns: the list of armed captures (client CIDR, sender or rcpt glob,
 * refused), the one libpcap handle while anything is armed (its fd in the
 * event loop, its BPF filter rebuilt from what is armed), the demultiplexing
 * of captured frames to sessions (the client leg by the client's address and
 * port, the server leg by the upstream socket's own address and port), the
 * handshake frames seen before a connection is accepted, and the files
 * written (named, bounded by capture_max_files / capture_max_bytes, logged).
 *
 * A `capture client` session is written from its first frame on. While a
 * sender, rcpt or refused capture is armed, every new session's frames wait
 * in a bounded buffer (capture_buffer each, CAPT_TOTAL_BUFFER in all) and
 * are written only if the session matches. With only client captures armed
 * the filter takes only their clients' traffic and the server legs of their
 * sessions, so other sessions cost nothing.
 *
 * Never: blocks the loop (the pcap fd is non-blocking), or lets a capture
 * error touch a session: a capture that cannot open or write is logged and
 * dropped, and the session goes on.
 */
#ifndef SMTPWALL_CAPTURES_H
#define SMTPWALL_CAPTURES_H

#include <stdint.h>
#include <sys/socket.h>
#include "proxy.h"

#define CAPT_TOTAL_BUFFER	(64ull << 20)	/* all sessions' buffers together (at least 4 x capture_buffer) */
#define CAPT_GRACE_MS		2000		/* after a session ends: its FIN and ACK frames */
#define CAPT_MAX_ARMED		64
#define CAPT_RECENT		32		/* files `capture list` remembers */

struct session;

enum capt_kind { CAPT_CLIENT = 0, CAPT_SENDER, CAPT_RCPT, CAPT_REFUSED };
#define CAPT_KINDS	4

/* "client", "sender", "rcpt", "refused": the verb's word for the kind. */
const char *capt_kind_str(enum capt_kind);

/* One armed capture, as `capture list` shows it. */
struct capt_info {
	unsigned	 id;
	enum capt_kind	 kind;
	char		 match[256];		/* the CIDR or the pattern; "" for refused */
	unsigned	 sessions_left;
	unsigned	 files;
	time_t		 until;			/* 0: no --for */
};

/* One file written (or being written), newest first. */
struct capt_file {
	unsigned	 id;			/* the capture */
	uint64_t	 session;
	char		 name[128];
	uint64_t	 bytes;
	int		 open;			/* still being written */
	int		 truncated;
};

int	capt_init(struct proxy *px);		/* 0 / -1 ENOMEM; opens nothing */
void	capt_free(struct proxy *px);		/* closes every file */
void	capt_reconf(struct proxy *px);		/* a reload: take px->conf (main thread) */

/*
 * Arm a capture. arg: the CIDR (client), the glob (sender, rcpt), NULL
 * (refused). sessions >= 1; for_s 0 = until its sessions are done. *id on
 * success; -1 with err (a bad CIDR, too many armed, libpcap cannot open
 * capture_interface, capture_dir not writable).
 */
int	capt_arm(struct proxy *px, enum capt_kind kind, const char *arg, unsigned sessions,
	    unsigned long long for_s, unsigned *id, char *err, size_t errlen);
/* Disarm one; files being written are finished. 0, or -1 if no such capture. */
int	capt_stop(struct proxy *px, unsigned id);
/* Copies of the armed captures (at most max); their number. */
unsigned capt_list(const struct proxy *px, struct capt_info *out, unsigned max);
/* The recent files, newest first (at most max); their number. */
unsigned capt_files(const struct proxy *px, struct capt_file *out, unsigned max);
/* libpcap's counters since the handle opened (0 if none open). */
void	capt_pcap_stats(const struct proxy *px, uint64_t *received, uint64_t *dropped);

/* ---- session hooks (session.c) ---- */

/* A session begins (client address known, before the upstream connect). */
void	capt_session_start(struct session *s);
/*
 * The upstream connection of a session being recorded (s->capt set):
 * sock_connect()'s result, with the server leg in the filter and the
 * demultiplexer before its first frame can be read.
 */
int	capt_session_connect(struct session *s, const struct sockaddr *src);
/* A MAIL FROM / RCPT TO address (kind SENDER / RCPT), or a refusal (REFUSED, arg NULL). */
void	capt_session_event(struct session *s, enum capt_kind kind, const char *arg, size_t len);
/* The session is over: its file is closed CAPT_GRACE_MS later (teardown frames). */
void	capt_session_end(struct session *s);

#endif

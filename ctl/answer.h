/*
 * answer: the incremental reader of one smtpwalld control answer
 * (docs/control-protocol.md): zero or more data lines, then exactly one
 * final line, "ok", "ok TEXT" or "error: TEXT". Lines end in LF or CRLF.
 *
 * Bytes are fed as they arrive, in chunks of any size (one byte at a time
 * works). Data lines are held until the final line says where they go
 * (stdout after ok, stderr after error); a listing too long to hold is
 * handed over in pieces (ANSWER_HOLD_FULL) and the caller streams it.
 *
 * Bounds, so that a broken or hostile daemon cannot exhaust the client: one
 * line at most ANSWER_LINE_MAX bytes, at most ANSWER_HOLD_MAX bytes held,
 * at most ANSWER_TOTAL_MAX bytes in the whole answer. Control characters in
 * a line (other than tab) are handed out as \xNN, never raw, so the answer
 * cannot drive the administrator's terminal.
 *
 * Pure: no I/O, no globals; allocates only its buffers (the line, the held
 * data, the final text), freed by answer_free(). The all-zero struct answer is a valid empty reader.
 */
#ifndef SMTPWALL_CTL_ANSWER_H
#define SMTPWALL_CTL_ANSWER_H

#include <stddef.h>

#define ANSWER_LINE_MAX		(64 * 1024)		/* one line, its LF (and CR) included */
#define ANSWER_HOLD_MAX		(16 * 1024 * 1024)	/* data held before the caller must take it */
#define ANSWER_TOTAL_MAX	((size_t)1 << 30)	/* the whole answer */
#define ANSWER_ERR_LEN		128

/* smtpwallctl's exit statuses (SPEC.md "Programs"). */
enum answer_exit {
	ANSWER_EXIT_OK = 0,		/* the daemon answered ok */
	ANSWER_EXIT_REFUSED = 1,	/* it answered error: (or the answer could not be written out) */
	ANSWER_EXIT_USAGE = 2,		/* bad command line; nothing sent */
	ANSWER_EXIT_UNREACHABLE = 3,	/* no connection, no answer in time, or no complete answer */
};

enum answer_res {
	ANSWER_AGAIN = 0,	/* every byte taken; feed more */
	ANSWER_HOLD_FULL,	/* take answer_held(), answer_held_clear(), then feed the rest */
	ANSWER_DONE,		/* the final line was read; answer_final(), answer_text() */
	ANSWER_BAD,		/* no valid answer can follow: answer_error() says why */
};

enum answer_final {
	ANSWER_FINAL_NONE = 0,	/* not read yet */
	ANSWER_FINAL_OK,
	ANSWER_FINAL_ERROR,
};

struct answer {
	char		*an_line;	/* the line being read, without its LF */
	size_t		 an_line_len, an_line_size;
	char		*an_held;	/* data lines, made printable, each ending in "\n" */
	size_t		 an_held_len, an_held_size;
	size_t		 an_total;	/* bytes taken so far */
	enum answer_final an_final;
	char		*an_text;	/* the final line's TEXT, printable; NULL if none */
	int		 an_bad;
	char		 an_err[ANSWER_ERR_LEN];
};

/*
 * Take up to n bytes of p; *used says how many were taken (all of them on
 * ANSWER_AGAIN; up to the end of the line that caused ANSWER_HOLD_FULL or
 * ANSWER_DONE; bytes after the final line are never taken). After
 * ANSWER_DONE or ANSWER_BAD, the same result again with *used 0.
 */
enum answer_res	answer_feed(struct answer *, const char *p, size_t n, size_t *used);

/*
 * The connection ended: ANSWER_DONE if the final line had been read,
 * otherwise ANSWER_BAD with answer_error() saying what was missing (an
 * unterminated last line is not taken as final: it may be cut short).
 */
enum answer_res	answer_eof(struct answer *);

/* The data lines held so far (printable, "\n"-terminated), and forgetting them. */
const char	*answer_held(const struct answer *, size_t *len);
void		 answer_held_clear(struct answer *);

enum answer_final answer_final(const struct answer *);
/* The final line's TEXT ("ok TEXT", "error: TEXT"), printable; "" if it has none. */
const char	*answer_text(const struct answer *);
/* Why the answer is unusable (after ANSWER_BAD); "" otherwise. */
const char	*answer_error(const struct answer *);

/* OK for "ok", REFUSED for "error:", UNREACHABLE while there is no final line. */
enum answer_exit answer_exit_status(const struct answer *);

void		 answer_free(struct answer *);

#endif

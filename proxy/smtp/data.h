/*
 * smtp/data: the DATA content scanner. Pure, incremental, streaming.
 *
 * Fed the raw bytes the client sends after the server's 354, in chunks of any
 * size split anywhere, it finds the end of the message, which is ONLY
 * CRLF "." CRLF in the client's raw bytes (the CRLF that ended the DATA
 * command line counts, so ".\r\n" as the very first line ends an empty
 * message), and produces what the server must receive:
 *
 *  - SMTP_DATA_REJECT (bare_lf = reject): the output is the input, unchanged.
 *    A bare LF, a bare CR (one not followed by LF) or a NUL sets a flag; the
 *    caller aborts the server's side and answers 554 5.6.0 at the end.
 *  - SMTP_DATA_NORMALIZE (bare_lf = normalize): every bare LF and every bare
 *    CR becomes CRLF; an output line that starts with '.' gets one more '.'
 *    when the line ending before it was bare, or when the line is exactly "."
 *    and its own ending is bare, so the server can never see CRLF "." CRLF
 *    before the real end (only the CR of a "." CR line is ever held back).
 *    Only SMTP_DATA_F_NUL is set in this mode (a NUL refuses the message
 *    either way); the bare-ending flags stay off.
 *
 * The caller must not forward the output of a call that set a flag: in
 * REJECT mode that output holds the offending byte.
 *
 * Invariant (tested, fuzzed): in NORMALIZE mode, the output contains no bare
 * CR or LF, and "\r\n" + output contains "\r\n.\r\n" exactly once, at its end.
 * In REJECT mode, if no flag is set, the same holds.
 *
 * Never allocates; never looks ahead beyond the bytes given; no I/O.
 */
#ifndef SMTPWALL_SMTP_DATA_H
#define SMTPWALL_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

enum smtp_data_mode {
	SMTP_DATA_REJECT = 0,
	SMTP_DATA_NORMALIZE,
};

#define SMTP_DATA_F_BARE_LF	0x01
#define SMTP_DATA_F_BARE_CR	0x02
#define SMTP_DATA_F_NUL		0x04

/* The worst-case expansion: one input byte never produces more than this many output bytes. */
#define SMTP_DATA_EXPANSION	4

struct smtp_data {
	enum smtp_data_mode	mode;
	unsigned		state;		/* private: where in the line we are, see data.c */
	unsigned		flags;		/* SMTP_DATA_F_* seen so far */
	uint64_t		content;	/* message bytes seen so far, raw, excluding the final ".\r\n" */
	int			done;		/* 1 once the end-of-data line has been consumed */
};

/* Start a message: state "at the start of a line, after CRLF". */
void	smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode);

/*
 * Scan up to inlen bytes of client input. Output for the server is appended
 * at out (at most outroom bytes; *outlen is set to the number written).
 * Returns the number of input bytes consumed. Consumes at most up to and
 * including the end-of-data line ".\r\n"; then d->done = 1 and the terminator
 * is in the output. Stops early only when outroom is too small to hold the
 * output of the next byte (give it at least SMTP_DATA_EXPANSION bytes of room
 * to guarantee progress). Bytes held back across chunks (a trailing CR in
 * NORMALIZE mode) are reported as consumed and written by a later call.
 */
size_t	smtp_data_scan(struct smtp_data *d, const char *in, size_t inlen,
	    char *out, size_t outroom, size_t *outlen);

#endif

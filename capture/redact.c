/*
 * redact.c: AUTH redaction of one leg's SMTP conversation (cap_redact_*).
 *
 * Follows both byte streams of one TCP connection by sequence number: the
 * client side (to_server) is scanned line by line for what to blank, the
 * server side only for the code of each final reply line. Blanked means
 * every byte but CR and LF becomes '*': lengths never change, so the TCP
 * stream in the file stays consistent (checksums aside).
 *
 * What is blanked on the client side:
 *  - on a line "AUTH <mechanism> <initial response>" (AUTH in any case),
 *    everything from the first non-space byte after the mechanism word to
 *    the end of the line (the spaces around the mechanism are kept, so
 *    "AUTH PLAIN ****" still reads as a command);
 *  - while the server's last final reply was 334 (continuation mode),
 *    every client line, whole;
 *  - data that cannot be followed (below).
 * A multi-line reply "334-..." is not final: only its last line (code and
 * space, or code and end of line) counts. Any other final reply closes
 * continuation mode and ends the exchange.
 *
 * Streams: the SYN of each direction gives the stream start (seq + 1);
 * without one (a capture that began mid-connection) the first segment
 * with payload starts the stream. Offsets are 64-bit, unwrapped near the
 * next expected byte.
 *
 * What it cannot follow, it blanks (client side only; the server side
 * never is):
 *  - a segment past a gap while an exchange may be open (from an AUTH line
 *    or a 334 to the next final non-334 reply): the whole segment;
 *  - after any gap, the rest of the line the segment starts in, up to the
 *    first LF: where that line began is unknown, and it may be the tail of
 *    an AUTH line;
 *  - a gap's bytes arriving later (a retransmission of a segment lost
 *    before the capture point) are scanned from the line state saved at
 *    the gap when they start exactly there, and blanked whole otherwise,
 *    or when the exchange may have been open at the gap;
 *  - retransmitted bytes already seen are blanked exactly where they were
 *    the first time (a list of blanked ranges, CR/LF inside them kept);
 *    once that list or the list of gaps overflows, every byte seen again
 *    is blanked whole.
 * After a gap in the server side, continuation mode is assumed while an
 * exchange may be open, until the next final reply line read in full.
 *
 * Owns its fixed-size state (one allocation). Never logs, never changes a
 * length, a CR or an LF, never writes a byte other than '*', never reads
 * or writes outside payload[0..len).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"

#define CAP_RD_RANGES	32
#define CAP_RD_HOLES	8
#define CAP_TCP_SYN	0x02
#define CAP_RD_BLANK_C	'*'

/* Where the client side is in its current line. */
enum cap_rd_mode {
	CAP_RD_START = 0,	/* at the start of a line */
	CAP_RD_HEAD,		/* matching "AUTH " (rl_hpos bytes so far) */
	CAP_RD_SP1,		/* after "AUTH ", before the mechanism */
	CAP_RD_MECH,		/* in the mechanism word */
	CAP_RD_SP2,		/* after the mechanism, before the initial response */
	CAP_RD_BLANK,		/* the rest of the line is blanked */
	CAP_RD_PASS,		/* the rest of the line passes */
};

struct cap_rd_line {
	enum cap_rd_mode	rl_mode;
	unsigned		rl_hpos;
};

/* Client stream offsets [rr_start, rr_end) that were blanked. */
struct cap_rd_range {
	uint64_t	rr_start;
	uint64_t	rr_end;
};

/* Client stream bytes [rh_start, rh_end) skipped by a gap, not seen yet. */
struct cap_rd_hole {
	uint64_t		rh_start;
	uint64_t		rh_end;
	struct cap_rd_line	rh_line;	/* the line state at rh_start */
	int			rh_cont;	/* continuation mode was open there */
	int			rh_open;	/* an exchange may have been open there */
	int			rh_valid;	/* rh_line still holds for rh_start */
};

struct cap_rd_dir {
	int		rd_started;
	uint32_t	rd_base;	/* seq of stream offset 0 */
	uint64_t	rd_next;	/* offset of the next in-order byte */
};

struct cap_redact {
	struct cap_rd_dir	cr_dir[2];	/* [0] server side, [1] client side */
	/* the client side */
	struct cap_rd_line	cr_line;
	struct cap_rd_range	cr_ranges[CAP_RD_RANGES];	/* sorted, disjoint */
	unsigned		cr_nranges;
	struct cap_rd_hole	cr_holes[CAP_RD_HOLES];
	unsigned		cr_nholes;
	int			cr_lost;	/* a list overflowed */
	/* the server side */
	unsigned		cr_rpos;	/* bytes of the reply code read (0..3) */
	unsigned		cr_rcode;
	int			cr_rskip;	/* the rest of this reply line is not read */
	/* the leg */
	int			cr_cont;	/* the last final reply was 334 */
	int			cr_open;	/* an AUTH exchange may be open */
};

struct cap_redact *
cap_redact_new(void)
{
	return calloc(1, sizeof(struct cap_redact));
}

void
cap_redact_free(struct cap_redact *rd)
{
	free(rd);
}

/* ---- blanked ranges ---------------------------------------------------------- */

/* Record [s, e) as blanked, merging with neighbours; overflow sets cr_lost. */
static void
cap_rd_cover(struct cap_redact *rd, uint64_t s, uint64_t e)
{
	struct cap_rd_range *r = rd->cr_ranges;
	unsigned i, j, n = rd->cr_nranges;

	if (s >= e)
		return;
	for (i = 0; i < n && r[i].rr_end < s; i++)
		;
	if (i < n && r[i].rr_start <= e) {
		if (s < r[i].rr_start)
			r[i].rr_start = s;
		if (e > r[i].rr_end)
			r[i].rr_end = e;
		for (j = i + 1; j < n && r[j].rr_start <= r[i].rr_end; j++)
			if (r[j].rr_end > r[i].rr_end)
				r[i].rr_end = r[j].rr_end;
		memmove(&r[i + 1], &r[j], (n - j) * sizeof(*r));
		rd->cr_nranges = n - (j - i - 1);
		return;
	}
	if (n == CAP_RD_RANGES) {
		rd->cr_lost = 1;
		return;
	}
	memmove(&r[i + 1], &r[i], (n - i) * sizeof(*r));
	r[i].rr_start = s;
	r[i].rr_end = e;
	rd->cr_nranges = n + 1;
}

static int
cap_rd_covered(const struct cap_redact *rd, uint64_t off)
{
	unsigned i;

	for (i = 0; i < rd->cr_nranges; i++)
		if (off >= rd->cr_ranges[i].rr_start && off < rd->cr_ranges[i].rr_end)
			return 1;
	return 0;
}

static void
cap_rd_blank(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != '\r' && p[i] != '\n')
			p[i] = CAP_RD_BLANK_C;
}

/* ---- the client side, in order ------------------------------------------------- */

/* Advance line state l over byte c; 1 if c is to be blanked. */
static int
cap_rd_byte(struct cap_redact *rd, struct cap_rd_line *l, int cont, uint8_t c)
{
	static const char auth[] = "auth ";
	int blank = 0;

	if (l->rl_mode == CAP_RD_START) {
		l->rl_mode = cont ? CAP_RD_BLANK : CAP_RD_HEAD;
		l->rl_hpos = 0;
	}
	switch (l->rl_mode) {
	case CAP_RD_START:
		break;
	case CAP_RD_HEAD:
		if ((c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c) != auth[l->rl_hpos])
			l->rl_mode = CAP_RD_PASS;
		else if (++l->rl_hpos == sizeof(auth) - 1)
			l->rl_mode = CAP_RD_SP1;
		break;
	case CAP_RD_SP1:
		if (c == ' ')
			break;
		if (c == '\r' || c == '\n') {
			l->rl_mode = CAP_RD_PASS;
			break;
		}
		l->rl_mode = CAP_RD_MECH;
		rd->cr_open = 1;
		break;
	case CAP_RD_MECH:
		if (c == ' ' || c == '\r')
			l->rl_mode = CAP_RD_SP2;
		break;
	case CAP_RD_SP2:
		if (c == ' ' || c == '\r' || c == '\n')
			break;
		l->rl_mode = CAP_RD_BLANK;
		blank = 1;
		break;
	case CAP_RD_BLANK:
		blank = 1;
		break;
	case CAP_RD_PASS:
		break;
	}
	if (c == '\n')
		l->rl_mode = CAP_RD_START;
	return blank;
}

/*
 * Client bytes p[0..n) at stream offset off, in order after line state l:
 * blank what the lines say (everything if whole), record it.
 */
static void
cap_rd_lines(struct cap_redact *rd, struct cap_rd_line *l, int cont, uint64_t off,
    uint8_t *p, size_t n, int whole)
{
	uint64_t run = 0;
	int inrun = 0, b;
	size_t i;

	for (i = 0; i < n; i++) {
		b = cap_rd_byte(rd, l, cont, p[i]) || whole;
		if (b && p[i] != '\r' && p[i] != '\n')
			p[i] = CAP_RD_BLANK_C;
		if (b && !inrun) {
			run = off + i;
			inrun = 1;
		} else if (!b && inrun) {
			cap_rd_cover(rd, run, off + i);
			inrun = 0;
		}
	}
	if (inrun)
		cap_rd_cover(rd, run, off + n);
}

/* ---- the client side, bytes seen before or skipped ----------------------------- */

static struct cap_rd_hole *
cap_rd_hole_at(struct cap_redact *rd, uint64_t off)
{
	unsigned i;

	for (i = 0; i < rd->cr_nholes; i++)
		if (off >= rd->cr_holes[i].rh_start && off < rd->cr_holes[i].rh_end)
			return &rd->cr_holes[i];
	return NULL;
}

static void
cap_rd_hole_add(struct cap_redact *rd, uint64_t s, uint64_t e)
{
	struct cap_rd_hole *h;

	if (rd->cr_nholes == CAP_RD_HOLES) {
		rd->cr_lost = 1;
		return;
	}
	h = &rd->cr_holes[rd->cr_nholes++];
	h->rh_start = s;
	h->rh_end = e;
	h->rh_line = rd->cr_line;
	h->rh_cont = rd->cr_cont;
	h->rh_open = rd->cr_open || rd->cr_cont;
	h->rh_valid = 1;
}

/*
 * Client bytes p[0..n) at offset off (possibly negative: before the start
 * we took), all below the next in-order byte: retransmissions and the
 * bytes of gaps.
 */
static void
cap_rd_old(struct cap_redact *rd, int64_t off, uint8_t *p, size_t n)
{
	struct cap_rd_hole *h;
	uint64_t o, take;
	size_t i = 0;

	while (i < n) {
		if (off + (int64_t)i < 0) {	/* never seen, nothing known */
			cap_rd_blank(p + i, 1);
			i++;
			continue;
		}
		o = (uint64_t)off + i;
		if ((h = cap_rd_hole_at(rd, o)) != NULL) {
			take = h->rh_end - o;
			if (take > n - i)
				take = n - i;
			if (h->rh_valid && o == h->rh_start) {
				cap_rd_lines(rd, &h->rh_line, h->rh_cont, o, p + i, take,
				    h->rh_open);
				h->rh_start += take;
				if (h->rh_start == h->rh_end)
					*h = rd->cr_holes[--rd->cr_nholes];
			} else {
				/* not where we know the line state: blank it all */
				h->rh_valid = 0;
				cap_rd_blank(p + i, take);
				cap_rd_cover(rd, o, o + take);
			}
			i += take;
			continue;
		}
		if (rd->cr_lost || cap_rd_covered(rd, o))
			cap_rd_blank(p + i, 1);
		i++;
	}
}

/* ---- the server side ------------------------------------------------------------- */

static void
cap_rd_final(struct cap_redact *rd, unsigned code)
{
	if (code == 334) {
		rd->cr_cont = 1;
		rd->cr_open = 1;
	} else {
		rd->cr_cont = 0;
		rd->cr_open = 0;
	}
}

static void
cap_rd_replies(struct cap_redact *rd, const uint8_t *p, size_t n)
{
	size_t i;
	uint8_t c;

	for (i = 0; i < n; i++) {
		c = p[i];
		if (c == '\n') {
			if (!rd->cr_rskip && rd->cr_rpos == 3)	/* "334\n" */
				cap_rd_final(rd, rd->cr_rcode);
			rd->cr_rskip = 0;
			rd->cr_rpos = 0;
			rd->cr_rcode = 0;
			continue;
		}
		if (rd->cr_rskip)
			continue;
		if (rd->cr_rpos < 3) {
			if (c >= '0' && c <= '9') {
				rd->cr_rcode = rd->cr_rcode * 10 + (unsigned)(c - '0');
				rd->cr_rpos++;
			} else
				rd->cr_rskip = 1;
			continue;
		}
		if (c == ' ' || c == '\r')
			cap_rd_final(rd, rd->cr_rcode);
		rd->cr_rskip = 1;	/* '-' (not final) or the rest of the line */
	}
}

/* ---- one segment --------------------------------------------------------------- */

/* The stream offset of seq, unwrapped near the next expected byte. */
static int64_t
cap_rd_offset(const struct cap_rd_dir *d, uint32_t seq)
{
	uint32_t rel = seq - d->rd_base;
	int32_t delta = (int32_t)(rel - (uint32_t)d->rd_next);

	return (int64_t)d->rd_next + delta;
}

void
cap_redact_segment(struct cap_redact *rd, int to_server, uint8_t flags, uint32_t seq,
    uint8_t *payload, size_t len)
{
	struct cap_rd_dir *d = &rd->cr_dir[to_server ? 1 : 0];
	int64_t off, end, next;
	size_t skip;

	if (flags & CAP_TCP_SYN) {
		seq++;			/* the SYN takes one sequence number */
		if (!d->rd_started || d->rd_next == 0) {
			d->rd_base = seq;
			d->rd_started = 1;
		}
	}
	if (len == 0 || payload == NULL)
		return;
	if (!d->rd_started) {		/* capture began mid-connection */
		d->rd_base = seq;
		d->rd_started = 1;
	}
	off = cap_rd_offset(d, seq);
	end = off + (int64_t)len;
	next = (int64_t)d->rd_next;

	if (!to_server) {
		if (end <= next)
			return;		/* seen before */
		if (off > next) {	/* a gap: resynchronize at the next line */
			rd->cr_rskip = 1;
			if (rd->cr_open)
				rd->cr_cont = 1;
			skip = 0;
		} else
			skip = (size_t)(next - off);
		cap_rd_replies(rd, payload + skip, len - skip);
		d->rd_next = (uint64_t)end;
		return;
	}

	if (off < next)
		cap_rd_old(rd, off, payload, (size_t)((end < next ? end : next) - off));
	if (end <= next)
		return;
	if (off > next) {
		int whole = rd->cr_open || rd->cr_cont;

		cap_rd_hole_add(rd, (uint64_t)next, (uint64_t)off);
		rd->cr_line.rl_mode = CAP_RD_BLANK;	/* up to the first LF */
		d->rd_next = (uint64_t)off;
		cap_rd_lines(rd, &rd->cr_line, rd->cr_cont, (uint64_t)off, payload, len, whole);
	} else {
		skip = (size_t)(next - off);
		cap_rd_lines(rd, &rd->cr_line, rd->cr_cont, (uint64_t)next, payload + skip,
		    len - skip, 0);
	}
	d->rd_next = (uint64_t)end;
}

/*
 * smtp/data: the DATA content scanner (contract in data.h). Pure: no
 * allocation, no I/O, no logging, no clock; O(1) state, O(n) work.
 *
 * What it owns: deciding where a message ends, what the server receives,
 * and which anomalies the client's bytes contain. What it never does: find
 * an end anywhere but the raw CRLF "." CRLF, look at a byte beyond inlen,
 * write a byte beyond outroom, or touch input after the end.
 *
 * Lines.  A line ending is CRLF, a bare CR (a CR not followed by LF) or a
 * bare LF (an LF not preceded by CR). A line is what lies between two
 * endings; the first line follows the CRLF of the DATA command. The end of
 * the message is the line "." between two CRLF endings, i.e. the raw bytes
 * CRLF "." CRLF. Every other spelling (LF.LF, CR.CR, LF.CRLF, CRLF.LF,
 * CRLF.CR, ".\0", CRLF.CR CRLF, which Postfix reads as "." because it strips
 * every CR before an LF, ...) is content: treating any of them as the end is
 * exactly the disagreement that SMTP smuggling exploits (SEC Consult, Dec
 * 2023; CVE-2023-51764/51765/51766).
 *
 * REJECT.  The output is the input, byte for byte, terminator included.
 * F_BARE_LF, F_BARE_CR and F_NUL record what was seen. A CR is known to be
 * bare only when the next byte arrives, so a CR that ends a chunk sets its
 * flag (if any) in the next call. One byte is held back, as in NORMALIZE:
 * the CR of a line "." CR after a CRLF, until the next byte says whether it
 * is the end. Written at once, a server that ends lines at a bare CR would
 * read CRLF "." CR as the end of a message we are about to refuse.
 *
 * NORMALIZE.  Every line is written followed by CRLF (so a bare CR or LF
 * becomes CRLF), with one extra '.' in front of it when the line starts with
 * '.' and
 *   (a) the ending before it was bare, or
 *   (b) the line is exactly "." and its own ending is bare.
 * Only NUL sets a flag in this mode (F_NUL: the message is refused anyway).
 * Why these two and no more: an output line "." can only come from an input
 * line "." that gets no extra dot, which by (a) and (b) means both its
 * endings were CRLF in the client's bytes, which is the real end; so the
 * server sees CRLF "." CRLF exactly once. A line like ".x" after a CRLF is
 * left alone even if it ends bare: its dot already stood at the start of a
 * real SMTP line, so the client's dot-stuffing means to the server what it
 * would mean without us, and such a line can never become the end line.
 * Stuffing it would need the whole line held back (unbounded); the rule
 * above needs at most one byte held back: the CR of a line "." CR that
 * follows a CRLF, which is the end if an LF comes next and the line ".",
 * stuffed, if anything else does. Everything else is written as soon as it
 * is read (a leading '.' is common to all outcomes, a CR is "\r" in all).
 * Worst case, the byte after such a held CR writes ".\r\n" plus itself: 4
 * bytes, SMTP_DATA_EXPANSION. In case (a) the extra dot goes out with the
 * byte after the line's first dot, which keeps that worst case at 4.
 *
 * Caller's duty: the output of a call that sets a flag must not reach the
 * server (it holds the NUL or the bare LF; a bare CR's own CR may have gone
 * out in the previous call, alone, but never as the CR of a "." line, so it
 * cannot end anything).
 *
 * content counts the raw bytes consumed, minus those that may still turn out
 * to be the terminator (a pending "." or "." CR after a CRLF): it only ever
 * grows, and ends exactly at the message size without the final ".\r\n".
 * A message of exactly max_message_size bytes is never counted as more.
 */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "data.h"

/* Where the scanner stands; stored in struct smtp_data.state. */
enum smtp_data_state {
	SMTP_DS_BOL = 0,	/* start of a line after CRLF (or the DATA line's) */
	SMTP_DS_BOL_BARE,	/* start of a line after a bare CR or LF */
	SMTP_DS_DOT,		/* the line is "." so far, after CRLF: maybe the end */
	SMTP_DS_DOT_CR,		/* the line is "." CR after CRLF: the end if LF follows */
	SMTP_DS_DOT_BARE,	/* the line is "." so far, after a bare ending */
	SMTP_DS_TEXT,		/* inside a line that can no longer be the end */
	SMTP_DS_CR,		/* a CR in a line that is not "."; CRLF or bare is open */
	SMTP_DS_DONE,		/* the end-of-data line has been consumed */
};

/* How many consumed bytes may still be the terminator ".\r\n" itself. */
static uint64_t
smtp_data_tentative(enum smtp_data_state s)
{
	switch (s) {
	case SMTP_DS_DOT:
		return 1;
	case SMTP_DS_DOT_CR:
		return 2;
	case SMTP_DS_DONE:
		return 3;
	case SMTP_DS_BOL:
	case SMTP_DS_BOL_BARE:
	case SMTP_DS_DOT_BARE:
	case SMTP_DS_TEXT:
	case SMTP_DS_CR:
		break;
	}
	return 0;
}

/* The end detector and line tracker: the state after byte c. Same in both modes. */
static enum smtp_data_state
smtp_data_next(enum smtp_data_state s, unsigned char c)
{
	switch (s) {
	case SMTP_DS_BOL:
	case SMTP_DS_BOL_BARE:
	case SMTP_DS_TEXT:
		if (c == '\n')
			return SMTP_DS_BOL_BARE;
		if (c == '\r')
			return SMTP_DS_CR;
		if (c == '.' && s == SMTP_DS_BOL)
			return SMTP_DS_DOT;
		if (c == '.' && s == SMTP_DS_BOL_BARE)
			return SMTP_DS_DOT_BARE;
		return SMTP_DS_TEXT;
	case SMTP_DS_DOT:
		if (c == '\r')
			return SMTP_DS_DOT_CR;
		return smtp_data_next(SMTP_DS_TEXT, c);
	case SMTP_DS_DOT_BARE:
		return smtp_data_next(SMTP_DS_TEXT, c);
	case SMTP_DS_DOT_CR:
		if (c == '\n')
			return SMTP_DS_DONE;
		return smtp_data_next(SMTP_DS_BOL_BARE, c);	/* the CR was bare */
	case SMTP_DS_CR:
		if (c == '\n')
			return SMTP_DS_BOL;
		return smtp_data_next(SMTP_DS_BOL_BARE, c);	/* the CR was bare */
	case SMTP_DS_DONE:
		break;
	}
	return SMTP_DS_DONE;
}

static size_t
smtp_data_put(char *o, const char *s, size_t n)
{
	memcpy(o, s, n);
	return n;
}

/*
 * NORMALIZE output for byte c read in state s, into o (at least
 * SMTP_DATA_EXPANSION bytes); returns its length. The dots written here are
 * rules (a) and (b) of the header comment.
 */
static size_t
smtp_data_normalize(enum smtp_data_state s, unsigned char c, char *o)
{
	size_t n = 0;

	switch (s) {
	case SMTP_DS_BOL:
	case SMTP_DS_BOL_BARE:
	case SMTP_DS_TEXT:
		if (c == '\n')
			return smtp_data_put(o, "\r\n", 2);
		o[0] = (char)c;
		return 1;
	case SMTP_DS_DOT:
		if (c == '\r')
			return 0;				/* held: end or rule (b) */
		if (c == '\n')
			n = smtp_data_put(o, ".", 1);		/* rule (b) */
		return n + smtp_data_normalize(SMTP_DS_TEXT, c, o + n);
	case SMTP_DS_DOT_BARE:
		n = smtp_data_put(o, ".", 1);			/* rule (a) */
		return n + smtp_data_normalize(SMTP_DS_TEXT, c, o + n);
	case SMTP_DS_DOT_CR:
		if (c == '\n')
			return smtp_data_put(o, "\r\n", 2);	/* the end */
		n = smtp_data_put(o, ".\r\n", 3);		/* rule (b), bare CR */
		return n + smtp_data_normalize(SMTP_DS_BOL_BARE, c, o + n);
	case SMTP_DS_CR:
		n = smtp_data_put(o, "\n", 1);			/* its "\r" is already out */
		if (c == '\n')
			return n;
		return n + smtp_data_normalize(SMTP_DS_BOL_BARE, c, o + n);
	case SMTP_DS_DONE:
		break;
	}
	return 0;
}

/* REJECT output for byte c read in state s: the byte itself, but for the held CR. */
static size_t
smtp_data_passthrough(enum smtp_data_state s, unsigned char c, char *o)
{
	if (s == SMTP_DS_DOT && c == '\r')
		return 0;				/* held: the end, or a bare CR */
	if (s == SMTP_DS_DOT_CR)
		return smtp_data_put(o, "\r", 1) + smtp_data_put(o + 1, (const char *)&c, 1);
	o[0] = (char)c;
	return 1;
}

static unsigned
smtp_data_flags(enum smtp_data_mode mode, enum smtp_data_state s, unsigned char c)
{
	unsigned f = 0;
	int after_cr = (s == SMTP_DS_CR || s == SMTP_DS_DOT_CR);

	if (c == '\0')
		f |= SMTP_DATA_F_NUL;
	if (mode == SMTP_DATA_REJECT) {
		if (c == '\n' && !after_cr)
			f |= SMTP_DATA_F_BARE_LF;
		if (c != '\n' && after_cr)
			f |= SMTP_DATA_F_BARE_CR;
	}
	return f;
}

/* A word with the byte b in every lane. */
#define SMTP_DATA_LANES(b)	((uint64_t)(b) * 0x0101010101010101ull)

/* Nonzero if some byte of w is zero (Hacker's Delight 6-1; exact as a yes/no). */
static inline uint64_t
smtp_data_has_zero(uint64_t w)
{
	return (w - SMTP_DATA_LANES(0x01)) & ~w & SMTP_DATA_LANES(0x80);
}

/*
 * Copy to o the run of bytes at p that change nothing inside a line, up to
 * the first CR, LF or NUL (at most n; o has room for n); its length.
 * Message bodies are long runs of text, and this loop is most of the CPU a
 * large message costs: 16 bytes at a time with SSE2 (every x86-64 has it),
 * copied as they are checked (the last block's bytes past the run land in
 * o's room and are overwritten by what follows), else 8 at a time in a
 * word, then byte by byte to find which one it is.
 */
static size_t
smtp_data_copy_plain(char *o, const unsigned char *p, size_t n)
{
	size_t i = 0, from;
	uint64_t w;

#if defined(__SSE2__)
	const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n'), nul = _mm_setzero_si128();

	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(
		    _mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)), _mm_cmpeq_epi8(v, nul)));

		_mm_storeu_si128((__m128i *)(void *)(o + i), v);
		if (m != 0)
			return i + (size_t)__builtin_ctz(m);
	}
#endif
	from = i;
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		if (smtp_data_has_zero(w) || smtp_data_has_zero(w ^ SMTP_DATA_LANES('\r')) ||
		    smtp_data_has_zero(w ^ SMTP_DATA_LANES('\n')))
			break;
	}
	for (; i < n; i++)
		if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
			break;
	memcpy(o + from, p + from, i - from);
	return i;
}

/* A byte that, first on a line after CRLF, makes it ordinary text (not "." nor an ending). */
static inline int
smtp_data_plain_first(unsigned char c)
{
	return c != '.' && c != '\r' && c != '\n' && c != '\0';
}

void
smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode)
{
	memset(d, 0, sizeof(*d));
	d->mode = mode;
	d->state = SMTP_DS_BOL;
}

size_t
smtp_data_scan(struct smtp_data *d, const char *in, size_t inlen,
    char *out, size_t outroom, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, o = 0;

	while (i < inlen && d->state != SMTP_DS_DONE) {
		enum smtp_data_state s = d->state, next;
		char tmp[SMTP_DATA_EXPANSION];
		size_t n;

		if (s == SMTP_DS_TEXT) {
			/* Fast path: the body of a line is copied as is. */
			size_t room = outroom - o, run;

			run = smtp_data_copy_plain(out + o, p + i,
			    inlen - i < room ? inlen - i : room);
			if (run > 0) {
				i += run;
				o += run;
				d->content += run;
				continue;
			}
			/*
			 * CRLF and an ordinary first byte: how nearly every line of
			 * a body ends and the next begins. Both modes write these
			 * three bytes as read, no flag, back in TEXT: what the
			 * byte-by-byte path below does in three steps.
			 */
			if (p[i] == '\r' && inlen - i >= 3 && p[i + 1] == '\n' &&
			    smtp_data_plain_first(p[i + 2]) && outroom - o >= 3) {
				memcpy(out + o, p + i, 3);
				i += 3;
				o += 3;
				d->content += 3;
				continue;
			}
		}

		if (d->mode == SMTP_DATA_NORMALIZE)
			n = smtp_data_normalize(s, p[i], tmp);
		else
			n = smtp_data_passthrough(s, p[i], tmp);
		if (n > outroom - o)
			break;
		if (n > 0)
			memcpy(out + o, tmp, n);
		o += n;

		next = smtp_data_next(s, p[i]);
		d->flags |= smtp_data_flags(d->mode, s, p[i]);
		d->content += 1 + smtp_data_tentative(s) - smtp_data_tentative(next);
		d->state = next;
		i++;
	}
	if (d->state == SMTP_DS_DONE)
		d->done = 1;
	*outlen = o;
	return i;
}

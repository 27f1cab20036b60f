/*
 * test_smtp_data: the DATA scanner of proxy/smtp/data.h, held to a reference
 * model.
 *
 * tdata_ref() below is the whole contract written the slow and obvious way:
 * it sees the whole input at once, finds the first "\r\n.\r\n" in "\r\n" +
 * input, cuts the message into lines and writes them back out. Every input
 * of the corpus is then fed to the real scanner in every way a socket could
 * deliver it (one call, split at every byte boundary, byte by byte, with
 * exactly SMTP_DATA_EXPANSION bytes of output room, with less room than
 * that), and all of them must agree with the model byte for byte.
 *
 * Input chunks and output buffers are malloc'd to their exact size, so under
 * ASan a read past inlen or a write past outroom is caught, not just wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/smtp/data.h"

#define TDATA_END	"\r\n.\r\n"

/* ------------------------------------------------------------------ */
/* The reference model                                                 */

struct tdata_result {
	size_t		consumed;
	int		done;
	unsigned	flags;
	uint64_t	content;
	char		*out;
	size_t		outlen;
};

static void *
tdata_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	assert_non_null(p);
	return p;
}

/*
 * The model, for an input that holds an end. Lines end with CRLF, a CR not
 * followed by LF or an LF not preceded by CR; NORMALIZE writes each line plus
 * CRLF, with one more '.' when the line starts with '.' and the ending before
 * it was bare, or the line is exactly "." and its own ending is bare.
 * Returns 0 when the input has no end.
 */
static int
tdata_ref(enum smtp_data_mode mode, const char *in, size_t len, struct tdata_result *r)
{
	char *v = tdata_xmalloc(len + 2);
	size_t end = 0, p, i, o;
	int prev_bare = 0;

	/* The end: the first CRLF "." CRLF, counting the DATA line's CRLF. */
	memcpy(v, "\r\n", 2);
	memcpy(v + 2, in, len);
	for (p = 0; p + 5 <= len + 2; p++) {
		if (memcmp(v + p, TDATA_END, 5) == 0) {
			end = p + 3;
			break;
		}
	}
	free(v);
	if (end == 0)
		return 0;

	memset(r, 0, sizeof(*r));
	r->consumed = end;
	r->done = 1;
	r->content = end - 3;
	r->out = tdata_xmalloc(2 * end + 4);

	for (i = 0; i < end; i++) {
		if (in[i] == '\0')
			r->flags |= SMTP_DATA_F_NUL;
		if (mode != SMTP_DATA_REJECT)
			continue;
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			r->flags |= SMTP_DATA_F_BARE_LF;
		if (in[i] == '\r' && in[i + 1] != '\n')		/* in[end - 1] is '\n' */
			r->flags |= SMTP_DATA_F_BARE_CR;
	}

	if (mode == SMTP_DATA_REJECT) {
		memcpy(r->out, in, end);
		r->outlen = end;
		return 1;
	}

	for (i = 0, o = 0; i < end;) {
		size_t start = i, llen;
		int bare, stuff;

		while (in[i] != '\r' && in[i] != '\n')
			i++;
		llen = i - start;
		bare = !(in[i] == '\r' && in[i + 1] == '\n');
		stuff = llen > 0 && in[start] == '.' &&
		    (prev_bare || (bare && llen == 1));
		if (stuff)
			r->out[o++] = '.';
		memcpy(r->out + o, in + start, llen);
		o += llen;
		memcpy(r->out + o, "\r\n", 2);
		o += 2;
		i += bare ? 1 : 2;
		prev_bare = bare;
	}
	r->outlen = o;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Drivers: feed the real scanner the way a session would              */

static void
tdata_append(struct tdata_result *r, const char *p, size_t n, size_t *cap)
{
	if (r->outlen + n > *cap) {
		*cap = (r->outlen + n) * 2 + 64;
		r->out = realloc(r->out, *cap);
		assert_non_null(r->out);
	}
	if (n > 0)
		memcpy(r->out + r->outlen, p, n);
	r->outlen += n;
}

/*
 * Output size of the next byte of in, from the current state: scanned on a
 * copy of the scanner (the struct is plain data by contract).
 */
static size_t
tdata_next_output(const struct smtp_data *d, const char *in)
{
	struct smtp_data probe = *d;
	char out[64];
	size_t olen = 0;

	assert_int_equal(smtp_data_scan(&probe, in, 1, out, sizeof(out), &olen), 1);
	return olen;
}

/*
 * Feed one chunk until it is consumed or the message is done. room 0 means
 * ample room (one call must take the whole chunk); room >= EXPANSION must
 * make progress on every call; a smaller room may stall, and then the call
 * must have written nothing, changed nothing, and the next byte really must
 * not fit; the driver then retries with EXPANSION bytes.
 */
static void
tdata_feed(struct smtp_data *d, const char *chunk, size_t len, size_t room,
    struct tdata_result *r, size_t *cap)
{
	char *in = tdata_xmalloc(len);
	size_t off = 0, turn = 0;

	if (len > 0)
		memcpy(in, chunk, len);
	while (off < len && !d->done) {
		size_t want = room, olen = (size_t)-1, used;
		uint64_t content = d->content;
		unsigned flags = d->flags;
		char *out;

		if (room == 0)
			want = (len - off) * SMTP_DATA_EXPANSION;
		else if (room < SMTP_DATA_EXPANSION)
			want = 1 + ((r->consumed + turn++) % room);	/* 1 .. room */
		out = tdata_xmalloc(want);
		used = smtp_data_scan(d, in + off, len - off, out, want, &olen);
		assert_true(used <= len - off);
		assert_true(olen <= want);
		assert_true(olen <= used * SMTP_DATA_EXPANSION);
		assert_true(d->content >= content);
		if (room == 0)
			assert_true(used == len - off || d->done);
		if (want >= SMTP_DATA_EXPANSION)
			assert_true(used > 0);
		if (used == 0) {
			assert_int_equal(olen, 0);
			assert_true(d->content == content);
			assert_int_equal(d->flags, flags);
			assert_true(tdata_next_output(d, in + off) > want);
			free(out);
			out = tdata_xmalloc(SMTP_DATA_EXPANSION);
			used = smtp_data_scan(d, in + off, len - off, out,
			    SMTP_DATA_EXPANSION, &olen);
			assert_true(used > 0);
		} else if (!d->done && off + used < len) {
			/* It stopped early: only because the next byte did not fit. */
			assert_true(tdata_next_output(d, in + off + used) > want - olen);
		}
		tdata_append(r, out, olen, cap);
		free(out);
		off += used;
		r->consumed += used;
	}
	if (d->done && off < len) {
		char out[SMTP_DATA_EXPANSION];
		size_t olen = (size_t)-1;

		/* After the end, nothing more is taken: the rest is commands. */
		assert_int_equal(smtp_data_scan(d, in + off, len - off, out,
		    sizeof(out), &olen), 0);
		assert_int_equal(olen, 0);
	}
	free(in);
}

/* Scan in[0..len) cut at the given offsets (sorted, within len). */
static void
tdata_scan_cuts(enum smtp_data_mode mode, const char *in, size_t len,
    const size_t *cuts, size_t ncuts, size_t room, struct tdata_result *r)
{
	struct smtp_data d;
	size_t cap = 0, prev = 0, k;

	memset(r, 0, sizeof(*r));
	smtp_data_init(&d, mode);
	for (k = 0; k <= ncuts; k++) {
		size_t next = k < ncuts ? cuts[k] : len;

		tdata_feed(&d, in + prev, next - prev, room, r, &cap);
		prev = next;
	}
	r->done = d.done;
	r->flags = d.flags;
	r->content = d.content;
}

static void
tdata_scan_once(enum smtp_data_mode mode, const char *in, size_t len,
    struct tdata_result *r)
{
	tdata_scan_cuts(mode, in, len, NULL, 0, 0, r);
}

static void
tdata_assert_same(const struct tdata_result *want, const struct tdata_result *got)
{
	assert_int_equal(got->consumed, want->consumed);
	assert_int_equal(got->done, want->done);
	assert_int_equal(got->flags, want->flags);
	assert_true(got->content == want->content);
	assert_int_equal(got->outlen, want->outlen);
	if (want->outlen > 0)
		assert_memory_equal(got->out, want->out, want->outlen);
}

/*
 * The model's answer, and the scanner's in one call, split at every byte
 * boundary, byte by byte, with EXPANSION bytes of room, with less.
 */
static void
tdata_check_mode(enum smtp_data_mode mode, const char *in, size_t len)
{
	struct tdata_result want, got;
	size_t k, *bytes;

	assert_true(tdata_ref(mode, in, len, &want));

	tdata_scan_once(mode, in, len, &got);
	tdata_assert_same(&want, &got);
	free(got.out);

	for (k = 0; k <= len; k++) {
		tdata_scan_cuts(mode, in, len, &k, 1, 0, &got);
		tdata_assert_same(&want, &got);
		free(got.out);
	}

	bytes = tdata_xmalloc(len * sizeof(*bytes));
	for (k = 0; k < len; k++)
		bytes[k] = k;
	tdata_scan_cuts(mode, in, len, bytes, len, 0, &got);
	tdata_assert_same(&want, &got);
	free(got.out);

	tdata_scan_cuts(mode, in, len, NULL, 0, SMTP_DATA_EXPANSION, &got);
	tdata_assert_same(&want, &got);
	free(got.out);

	tdata_scan_cuts(mode, in, len, NULL, 0, SMTP_DATA_EXPANSION - 1, &got);
	tdata_assert_same(&want, &got);
	free(got.out);

	/* Byte by byte AND starved of room: every hold-back crosses a call. */
	tdata_scan_cuts(mode, in, len, bytes, len, 2, &got);
	tdata_assert_same(&want, &got);
	free(got.out);

	free(bytes);
	free(want.out);
}

static void
tdata_check(const char *in, size_t len)
{
	tdata_check_mode(SMTP_DATA_REJECT, in, len);
	tdata_check_mode(SMTP_DATA_NORMALIZE, in, len);
}

/* ------------------------------------------------------------------ */
/* The invariant of data.h                                             */

/*
 * Only CRLF line endings, and "\r\n" + out holds "\r\n.\r\n" exactly once,
 * at its very end (done) or not at all (not done; then a last "\r" may still
 * wait for its LF).
 */
static int
tdata_invariant_ok(const char *out, size_t len, int done)
{
	char *v = tdata_xmalloc(len + 2);
	size_t i, ends = 0;
	int ok = 1;

	for (i = 0; i < len; i++) {
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			ok = 0;
		if (out[i] == '\r' && (i + 1 < len ? out[i + 1] != '\n' : done))
			ok = 0;
	}
	memcpy(v, "\r\n", 2);
	if (len > 0)
		memcpy(v + 2, out, len);
	for (i = 0; i + 5 <= len + 2; i++)
		if (memcmp(v + i, TDATA_END, 5) == 0)
			ends++;
	free(v);
	if (done)
		return ok && ends == 1 && len >= 3 &&
		    memcmp(out + len - 3, ".\r\n", 3) == 0;
	return ok && ends == 0;
}

static void
test_smtp_data_model_agrees_with_hand_written_outputs(void **state)
{
	/* The model itself checked on cases worked out by hand. */
	static const struct {
		const char	*in;
		size_t		 len;
		const char	*norm;
		size_t		 normlen;
		unsigned	 rflags;
	} c[] = {
#define TDATA_CASE(i, n, f)	{ i, sizeof(i) - 1, n, sizeof(n) - 1, f }
		TDATA_CASE(".\r\n", ".\r\n", 0),
		TDATA_CASE("abc\r\n.\nxyz\r\n.\r\n", "abc\r\n..\r\nxyz\r\n.\r\n",
		    SMTP_DATA_F_BARE_LF),
		TDATA_CASE("a\rb\nc\r\n.\r\n", "a\r\nb\r\nc\r\n.\r\n",
		    SMTP_DATA_F_BARE_CR | SMTP_DATA_F_BARE_LF),
		TDATA_CASE("\n.x\r\n.\r\n", "\r\n..x\r\n.\r\n", SMTP_DATA_F_BARE_LF),
		TDATA_CASE(".x\n.\r\n.\r\n", ".x\r\n..\r\n.\r\n", SMTP_DATA_F_BARE_LF),
		TDATA_CASE(".\r\r\n.\r\n", "..\r\n\r\n.\r\n", SMTP_DATA_F_BARE_CR),
		TDATA_CASE("..\r\n.\r\n", "..\r\n.\r\n", 0),
		TDATA_CASE("\r\n.\r\n", "\r\n.\r\n", 0),
#undef TDATA_CASE
	};
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
		struct tdata_result r;

		assert_true(tdata_ref(SMTP_DATA_NORMALIZE, c[k].in, c[k].len, &r));
		assert_int_equal(r.consumed, c[k].len);
		assert_int_equal(r.outlen, c[k].normlen);
		assert_memory_equal(r.out, c[k].norm, c[k].normlen);
		assert_int_equal(r.flags, 0);
		free(r.out);
		assert_true(tdata_ref(SMTP_DATA_REJECT, c[k].in, c[k].len, &r));
		assert_int_equal(r.flags, c[k].rflags);
		assert_memory_equal(r.out, c[k].in, c[k].len);
		free(r.out);
	}
}

/* ------------------------------------------------------------------ */
/* The smuggling corpus                                                */

/*
 * A message with a smuggling sequence in it, a forged second transaction
 * after it, then the real end, then the client's next command. Every
 * sequence here ends the message at some MTA; none of them may end it here.
 */
#define TDATA_HEAD	"From: <a@example.com>\r\nSubject: a\r\n\r\nhi"
#define TDATA_FORGED	"MAIL FROM:<ceo@victim.example>\r\n" \
			"RCPT TO:<x@victim.example>\r\n" \
			"DATA\r\n" \
			"From: <ceo@victim.example>\r\n\r\nforged\r\n"
#define TDATA_REAL_END	".\r\n"
#define TDATA_AFTER	"QUIT\r\n"

static const struct tdata_smuggle {
	const char	*name;
	const char	*seq;
	size_t		 seqlen;
	unsigned	 rflags;	/* REJECT mode */
	unsigned	 nflags;	/* NORMALIZE mode */
	const char	*norm;		/* what NORMALIZE makes of seq */
	size_t		 normlen;
} tdata_smuggles[] = {
#define TDATA_SEQ(n, s, rf, nf, out)	{ n, s, sizeof(s) - 1, rf, nf, out, sizeof(out) - 1 }
	TDATA_SEQ("LF.LF", "\n.\n", SMTP_DATA_F_BARE_LF, 0, "\r\n..\r\n"),
	TDATA_SEQ("CR.CR", "\r.\r", SMTP_DATA_F_BARE_CR, 0, "\r\n..\r\n"),
	TDATA_SEQ("LF.CRLF", "\n.\r\n", SMTP_DATA_F_BARE_LF, 0, "\r\n..\r\n"),
	TDATA_SEQ("CRLF.LF", "\r\n.\n", SMTP_DATA_F_BARE_LF, 0, "\r\n..\r\n"),
	TDATA_SEQ("CRLF.CR", "\r\n.\r", SMTP_DATA_F_BARE_CR, 0, "\r\n..\r\n"),
	TDATA_SEQ("CR.LF", "\r.\n", SMTP_DATA_F_BARE_CR | SMTP_DATA_F_BARE_LF, 0,
	    "\r\n..\r\n"),
	TDATA_SEQ("LF.CR", "\n.\r", SMTP_DATA_F_BARE_CR | SMTP_DATA_F_BARE_LF, 0,
	    "\r\n..\r\n"),
	TDATA_SEQ("CR.CRLF", "\r.\r\n", SMTP_DATA_F_BARE_CR, 0, "\r\n..\r\n"),
	/* Postfix strips every CR before an LF: it reads ".\r\r\n" as ".". */
	TDATA_SEQ("CRLF.CRCRLF", "\r\n.\r\r\n", SMTP_DATA_F_BARE_CR, 0,
	    "\r\n..\r\n\r\n"),
	/* Servers that strip NULs see "." in the next two. */
	TDATA_SEQ("CRLF.NUL CRLF", "\r\n.\0\r\n", SMTP_DATA_F_NUL, SMTP_DATA_F_NUL,
	    "\r\n.\0\r\n"),
	TDATA_SEQ("CRLF NUL. CRLF", "\r\n\0.\r\n", SMTP_DATA_F_NUL, SMTP_DATA_F_NUL,
	    "\r\n\0.\r\n"),
	TDATA_SEQ("CRLF.CR NUL LF", "\r\n.\r\0\n",
	    SMTP_DATA_F_BARE_CR | SMTP_DATA_F_BARE_LF | SMTP_DATA_F_NUL,
	    SMTP_DATA_F_NUL, "\r\n..\r\n\0\r\n"),
	TDATA_SEQ("stuffed dot", "\r\n..\r\n", 0, 0, "\r\n..\r\n"),
	TDATA_SEQ("LF..LF", "\n..\n", SMTP_DATA_F_BARE_LF, 0, "\r\n...\r\n"),
	TDATA_SEQ("dot space", "\r\n. \r\n", 0, 0, "\r\n. \r\n"),
	TDATA_SEQ("LF LF.LF LF", "\n\n.\n\n", SMTP_DATA_F_BARE_LF, 0,
	    "\r\n\r\n..\r\n\r\n"),
	TDATA_SEQ("CRLF.LF.CRLF", "\r\n.\n.\r\n", SMTP_DATA_F_BARE_LF, 0,
	    "\r\n..\r\n..\r\n"),
	TDATA_SEQ("CRLF.CR.CRLF", "\r\n.\r.\r\n", SMTP_DATA_F_BARE_CR, 0,
	    "\r\n..\r\n..\r\n"),
	TDATA_SEQ("CR CRLF.CR.", "\r\r\n.\r.x\r\n", SMTP_DATA_F_BARE_CR, 0,
	    "\r\n\r\n..\r\n..x\r\n"),
#undef TDATA_SEQ
};

/* HEAD seq FORGED ".\r\n" QUIT: *endp is where the real end stops. */
static char *
tdata_build(const char *seq, size_t seqlen, size_t *lenp, size_t *endp)
{
	static const char head[] = TDATA_HEAD, forged[] = TDATA_FORGED,
	    real_end[] = TDATA_REAL_END, after[] = TDATA_AFTER;
	size_t len = 0;
	char *m = tdata_xmalloc(sizeof(head) + seqlen + sizeof(forged) +
	    sizeof(real_end) + sizeof(after));

#define TDATA_ADD(p, n)	do { memcpy(m + len, p, n); len += n; } while (0)
	TDATA_ADD(head, sizeof(head) - 1);
	TDATA_ADD(seq, seqlen);
	TDATA_ADD(forged, sizeof(forged) - 1);
	TDATA_ADD(real_end, sizeof(real_end) - 1);
	*endp = len;
	TDATA_ADD(after, sizeof(after) - 1);
#undef TDATA_ADD
	*lenp = len;
	return m;
}

static void
test_smtp_data_smuggling_sequences_never_end_the_message(void **state)
{
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(tdata_smuggles) / sizeof(tdata_smuggles[0]); k++) {
		const struct tdata_smuggle *s = &tdata_smuggles[k];
		struct tdata_result r, n;
		size_t len, end, nlen, nend;
		char *m = tdata_build(s->seq, s->seqlen, &len, &end);
		char *want = tdata_build(s->norm, s->normlen, &nlen, &nend);

		print_message("smuggle: %s\n", s->name);
		tdata_scan_once(SMTP_DATA_REJECT, m, len, &r);
		assert_int_equal(r.done, 1);
		assert_int_equal(r.consumed, end);	/* the real end, not the forged one */
		assert_true(r.content == end - 3);
		assert_int_equal(r.flags, s->rflags);
		assert_int_equal(r.outlen, end);
		assert_memory_equal(r.out, m, end);
		if (r.flags == 0)
			assert_true(tdata_invariant_ok(r.out, r.outlen, 1));

		tdata_scan_once(SMTP_DATA_NORMALIZE, m, len, &n);
		assert_int_equal(n.done, 1);
		assert_int_equal(n.consumed, end);
		assert_true(n.content == end - 3);
		assert_int_equal(n.flags, s->nflags);
		assert_true(tdata_invariant_ok(n.out, n.outlen, 1));
		assert_int_equal(n.outlen, nend);
		assert_memory_equal(n.out, want, nend);

		tdata_check(m, len);
		free(r.out);
		free(n.out);
		free(m);
		free(want);
	}
}

/* "\r\n.\r" ends a chunk: nothing is decided until the next byte. */
static void
test_smtp_data_dot_cr_at_chunk_end_then_lf_is_the_end(void **state)
{
	static const char c1[] = "hi\r\n.\r", c2[] = "\nMAIL FROM:<x@evil.example>\r\n";
	enum smtp_data_mode mode;

	(void)state;
	for (mode = SMTP_DATA_REJECT; mode <= SMTP_DATA_NORMALIZE; mode++) {
		struct smtp_data d;
		char out[64];
		size_t olen;

		smtp_data_init(&d, mode);
		assert_int_equal(smtp_data_scan(&d, c1, sizeof(c1) - 1, out,
		    sizeof(out), &olen), sizeof(c1) - 1);
		assert_int_equal(d.done, 0);
		assert_int_equal(d.flags, 0);
		assert_true(d.content == 4);	/* "hi\r\n": ".\r" may be the end */
		/*
		 * In both modes the CR is held until the next byte: a server that
		 * ends lines at a bare CR must never see CRLF "." CR of a message
		 * that turns out to be refused.
		 */
		assert_int_equal(olen, 5);
		assert_memory_equal(out, "hi\r\n.", 5);
		assert_int_equal(smtp_data_scan(&d, c2, sizeof(c2) - 1, out,
		    sizeof(out), &olen), 1);
		assert_int_equal(d.done, 1);
		assert_int_equal(d.flags, 0);
		assert_true(d.content == 4);
		assert_int_equal(olen, 2);
		assert_memory_equal(out, "\r\n", olen);
		/* After the end: the next command is not the scanner's. */
		assert_int_equal(smtp_data_scan(&d, c2 + 1, sizeof(c2) - 2, out,
		    sizeof(out), &olen), 0);
		assert_int_equal(olen, 0);
	}
}

static void
test_smtp_data_dot_cr_at_chunk_end_then_other_is_bare_cr(void **state)
{
	static const char c1[] = "hi\r\n.\r", c2[] = "MAIL FROM:<x@evil.example>\r\n";
	struct smtp_data d;
	char out[128];
	size_t olen;

	(void)state;
	smtp_data_init(&d, SMTP_DATA_REJECT);
	smtp_data_scan(&d, c1, sizeof(c1) - 1, out, sizeof(out), &olen);
	assert_int_equal(d.flags, 0);		/* undecided yet */
	/* The CR after the dot is not written before the next byte decides. */
	assert_int_equal(olen, 5);
	assert_memory_equal(out, "hi\r\n.", 5);
	assert_int_equal(smtp_data_scan(&d, c2, 1, out, sizeof(out), &olen), 1);
	assert_int_equal(d.flags, SMTP_DATA_F_BARE_CR);
	assert_int_equal(d.done, 0);

	smtp_data_init(&d, SMTP_DATA_NORMALIZE);
	smtp_data_scan(&d, c1, sizeof(c1) - 1, out, sizeof(out), &olen);
	assert_int_equal(smtp_data_scan(&d, c2, sizeof(c2) - 1, out, sizeof(out),
	    &olen), sizeof(c2) - 1);
	assert_int_equal(d.flags, 0);
	assert_int_equal(d.done, 0);
	assert_int_equal(olen, 3 + sizeof(c2) - 1);
	assert_memory_equal(out, ".\r\nMAIL", 7);	/* the line "." became ".." */
	assert_true(d.content == sizeof(c1) - 1 + sizeof(c2) - 1);
}

static void
test_smtp_data_empty_message_ends_at_first_line(void **state)
{
	static const char in[] = ".\r\nMAIL FROM:<x@evil.example>\r\n";
	enum smtp_data_mode mode;

	(void)state;
	for (mode = SMTP_DATA_REJECT; mode <= SMTP_DATA_NORMALIZE; mode++) {
		struct tdata_result r;

		tdata_scan_once(mode, in, sizeof(in) - 1, &r);
		assert_int_equal(r.done, 1);
		assert_int_equal(r.consumed, 3);
		assert_true(r.content == 0);
		assert_int_equal(r.flags, 0);
		assert_int_equal(r.outlen, 3);
		assert_memory_equal(r.out, ".\r\n", 3);
		free(r.out);
	}
	tdata_check(in, sizeof(in) - 1);
}

static void
test_smtp_data_message_of_one_empty_line(void **state)
{
	static const char in[] = "\r\n.\r\n";
	enum smtp_data_mode mode;

	(void)state;
	for (mode = SMTP_DATA_REJECT; mode <= SMTP_DATA_NORMALIZE; mode++) {
		struct tdata_result r;

		tdata_scan_once(mode, in, sizeof(in) - 1, &r);
		assert_int_equal(r.done, 1);
		assert_int_equal(r.consumed, 5);
		assert_true(r.content == 2);
		assert_int_equal(r.outlen, 5);
		assert_memory_equal(r.out, in, 5);
		free(r.out);
	}
	tdata_check(in, sizeof(in) - 1);
}

/* Dots on the very first line: the DATA command's CRLF is before them. */
static void
test_smtp_data_dots_at_the_very_start(void **state)
{
	static const struct {
		const char	*in;
		size_t		 len;
		const char	*norm;
		size_t		 normlen;
		unsigned	 rflags;
	} c[] = {
#define TDATA_CASE(i, n, f)	{ i, sizeof(i) - 1, n, sizeof(n) - 1, f }
		TDATA_CASE("..\r\n.\r\n", "..\r\n.\r\n", 0),
		TDATA_CASE(".\nMAIL\r\n.\r\n", "..\r\nMAIL\r\n.\r\n", SMTP_DATA_F_BARE_LF),
		TDATA_CASE(".\rMAIL\r\n.\r\n", "..\r\nMAIL\r\n.\r\n", SMTP_DATA_F_BARE_CR),
		TDATA_CASE(".x\r\n.\r\n", ".x\r\n.\r\n", 0),
		TDATA_CASE("\n.\r\n.\r\n", "\r\n..\r\n.\r\n", SMTP_DATA_F_BARE_LF),
		TDATA_CASE("\r.\r\n.\r\n", "\r\n..\r\n.\r\n", SMTP_DATA_F_BARE_CR),
		TDATA_CASE(".\r\r\n.\r\n", "..\r\n\r\n.\r\n", SMTP_DATA_F_BARE_CR),
#undef TDATA_CASE
	};
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
		struct tdata_result r;

		tdata_scan_once(SMTP_DATA_REJECT, c[k].in, c[k].len, &r);
		assert_int_equal(r.consumed, c[k].len);
		assert_int_equal(r.flags, c[k].rflags);
		free(r.out);
		tdata_scan_once(SMTP_DATA_NORMALIZE, c[k].in, c[k].len, &r);
		assert_int_equal(r.consumed, c[k].len);
		assert_int_equal(r.outlen, c[k].normlen);
		assert_memory_equal(r.out, c[k].norm, c[k].normlen);
		assert_true(tdata_invariant_ok(r.out, r.outlen, 1));
		free(r.out);
		tdata_check(c[k].in, c[k].len);
	}
}

/* The case of data.h: normalizing "abc\r\n.\nxyz" must not make CRLF.CRLF. */
static void
test_smtp_data_normalize_stuffs_dot_line_after_crlf(void **state)
{
	static const char in[] = "abc\r\n.\nxyz\r\n.\r\n";
	struct tdata_result r;

	(void)state;
	tdata_scan_once(SMTP_DATA_NORMALIZE, in, sizeof(in) - 1, &r);
	assert_int_equal(r.consumed, sizeof(in) - 1);
	assert_int_equal(r.outlen, sizeof("abc\r\n..\r\nxyz\r\n.\r\n") - 1);
	assert_memory_equal(r.out, "abc\r\n..\r\nxyz\r\n.\r\n", r.outlen);
	free(r.out);
}

/* Clean mail is untouched by NORMALIZE, and REJECT sees nothing in it. */
static void
test_smtp_data_clean_message_passes_unchanged(void **state)
{
	static const char in[] =
	    "Received: from a by b\r\n\tid 1\r\n"
	    "Subject: dots\r\n\r\n"
	    "..leading dot, stuffed by the client\r\n"
	    "...\r\n"
	    ". \r\n"
	    "a.b.\r\n"
	    "\r\n"
	    ".\r\n";
	enum smtp_data_mode mode;

	(void)state;
	for (mode = SMTP_DATA_REJECT; mode <= SMTP_DATA_NORMALIZE; mode++) {
		struct tdata_result r;

		tdata_scan_once(mode, in, sizeof(in) - 1, &r);
		assert_int_equal(r.done, 1);
		assert_int_equal(r.flags, 0);
		assert_int_equal(r.outlen, sizeof(in) - 1);
		assert_memory_equal(r.out, in, r.outlen);
		assert_true(tdata_invariant_ok(r.out, r.outlen, 1));
		free(r.out);
	}
	tdata_check(in, sizeof(in) - 1);
}

/* NUL is flagged in both modes; bare CR/LF only where they are refused. */
static void
test_smtp_data_flags_per_mode(void **state)
{
	static const char in[] = "a\0b\nc\rd\r\n.\r\n";
	struct tdata_result r;

	(void)state;
	tdata_scan_once(SMTP_DATA_REJECT, in, sizeof(in) - 1, &r);
	assert_int_equal(r.flags,
	    SMTP_DATA_F_NUL | SMTP_DATA_F_BARE_LF | SMTP_DATA_F_BARE_CR);
	free(r.out);
	tdata_scan_once(SMTP_DATA_NORMALIZE, in, sizeof(in) - 1, &r);
	assert_int_equal(r.flags, SMTP_DATA_F_NUL);
	assert_int_equal(r.outlen, sizeof("a\0b\r\nc\r\nd\r\n.\r\n") - 1);
	assert_memory_equal(r.out, "a\0b\r\nc\r\nd\r\n.\r\n", r.outlen);
	free(r.out);
	tdata_check(in, sizeof(in) - 1);
}

/* The worst case of SMTP_DATA_EXPANSION is reached, and is enough. */
static void
test_smtp_data_expansion_bound_is_tight(void **state)
{
	/* After "\r\n.\r", the byte '.' writes ".\r\n" and its own '.'. */
	static const char in[] = "\r\n.\r.";
	struct smtp_data d;
	char out[SMTP_DATA_EXPANSION];
	size_t olen;

	(void)state;
	smtp_data_init(&d, SMTP_DATA_NORMALIZE);
	assert_int_equal(smtp_data_scan(&d, in, 4, out, sizeof(out), &olen), 4);
	assert_int_equal(olen, 3);
	assert_memory_equal(out, "\r\n.", 3);
	/* With one byte too few it waits, consuming nothing. */
	assert_int_equal(smtp_data_scan(&d, in + 4, 1, out, SMTP_DATA_EXPANSION - 1,
	    &olen), 0);
	assert_int_equal(olen, 0);
	assert_int_equal(smtp_data_scan(&d, in + 4, 1, out, sizeof(out), &olen), 1);
	assert_int_equal(olen, SMTP_DATA_EXPANSION);
	assert_memory_equal(out, ".\r\n.", 4);
}

/* Zero room, zero input, NULL buffers: nothing happens, nothing breaks. */
static void
test_smtp_data_zero_room_and_zero_input(void **state)
{
	struct smtp_data d;
	char out[8];
	size_t olen = 99;

	(void)state;
	smtp_data_init(&d, SMTP_DATA_NORMALIZE);
	assert_int_equal(smtp_data_scan(&d, "abc", 3, NULL, 0, &olen), 0);
	assert_int_equal(olen, 0);
	assert_int_equal(smtp_data_scan(&d, NULL, 0, out, sizeof(out), &olen), 0);
	assert_int_equal(olen, 0);
	assert_true(d.content == 0);
	assert_int_equal(smtp_data_scan(&d, "abc", 3, out, 2, &olen), 2);
	assert_int_equal(olen, 2);
	assert_true(d.content == 2);
}

/* ------------------------------------------------------------------ */
/* Random messages                                                     */

static uint64_t
tdata_rand(uint64_t *s)
{
	/* xorshift64*: fixed seed, same sequence on every run and compiler. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static void
test_smtp_data_random_messages_keep_the_invariant(void **state)
{
	static const char alphabet[] = { '\r', '\n', '.', 'a', '\0' };
	uint64_t seed = 0x5eedda7a5eedda7aULL;
	char in[40 + 5];
	int iter;

	(void)state;
	for (iter = 0; iter < 20000; iter++) {
		size_t len = tdata_rand(&seed) % 41, k;
		struct tdata_result r, n, ref;

		for (k = 0; k < len; k++)
			in[k] = alphabet[tdata_rand(&seed) % sizeof(alphabet)];
		memcpy(in + len, TDATA_END, 5);
		len += 5;

		tdata_scan_once(SMTP_DATA_REJECT, in, len, &r);
		tdata_scan_once(SMTP_DATA_NORMALIZE, in, len, &n);

		/* Both modes find the same end, before or at the appended one. */
		assert_int_equal(r.done, 1);
		assert_int_equal(n.done, 1);
		assert_int_equal(r.consumed, n.consumed);
		assert_true(r.content == r.consumed - 3);
		assert_true(n.content == r.content);

		/* REJECT passes everything through; clean means well-formed. */
		assert_int_equal(r.outlen, r.consumed);
		assert_memory_equal(r.out, in, r.consumed);
		if ((r.flags & ~(unsigned)SMTP_DATA_F_NUL) == 0) {
			assert_true(tdata_invariant_ok(r.out, r.outlen, 1));
			assert_int_equal(n.outlen, r.outlen);	/* nothing to normalize */
			assert_memory_equal(n.out, r.out, r.outlen);
		}
		assert_int_equal(n.flags, r.flags & SMTP_DATA_F_NUL);
		assert_int_equal(!!(r.flags & SMTP_DATA_F_NUL),
		    memchr(in, '\0', r.consumed) != NULL);

		assert_true(tdata_invariant_ok(n.out, n.outlen, 1));

		assert_true(tdata_ref(SMTP_DATA_NORMALIZE, in, len, &ref));
		tdata_assert_same(&ref, &n);
		free(ref.out);
		assert_true(tdata_ref(SMTP_DATA_REJECT, in, len, &ref));
		tdata_assert_same(&ref, &r);
		free(ref.out);

		if (iter % 50 == 0)
			tdata_check(in, len);
		free(r.out);
		free(n.out);
	}
}

/* ------------------------------------------------------------------ */
/* A large message, streamed                                           */

#define TDATA_BIG	(10u * 1024 * 1024)
#define TDATA_CHUNK	4096

/*
 * Stream whole copies of pattern (ending in CRLF, no end in it) until past
 * TDATA_BIG bytes, then ".\r\n", in TDATA_CHUNK pieces. The output must be
 * copies of the pattern's own output; the end must be found only at the end;
 * content must be every byte so far but a pending "." or "." CR.
 */
static void
tdata_stream(enum smtp_data_mode mode, const char *pat, size_t patlen)
{
	struct tdata_result ref;
	struct smtp_data d;
	char *msg, *out = tdata_xmalloc(TDATA_CHUNK * SMTP_DATA_EXPANSION);
	size_t reps = TDATA_BIG / patlen + 1, len = reps * patlen + 3, off, k;
	size_t want_off = 0, normlen;

	/* What one copy of the pattern becomes (the state repeats: after CRLF). */
	msg = tdata_xmalloc(patlen + 3);
	memcpy(msg, pat, patlen);
	memcpy(msg + patlen, ".\r\n", 3);
	assert_true(tdata_ref(mode, msg, patlen + 3, &ref));
	assert_int_equal(ref.consumed, patlen + 3);
	normlen = ref.outlen - 3;
	free(msg);

	msg = tdata_xmalloc(len);
	for (k = 0; k < reps; k++)
		memcpy(msg + k * patlen, pat, patlen);
	memcpy(msg + len - 3, ".\r\n", 3);

	smtp_data_init(&d, mode);
	for (off = 0; off < len;) {
		size_t n = len - off < TDATA_CHUNK ? len - off : TDATA_CHUNK;
		size_t olen, used, tent = 0, i;

		used = smtp_data_scan(&d, msg + off, n, out,
		    TDATA_CHUNK * SMTP_DATA_EXPANSION, &olen);
		assert_int_equal(used, n);
		off += used;
		/* Compare with the expected stream, byte for byte. */
		for (i = 0; i < olen; i++, want_off++) {
			char w = want_off / normlen < reps ?
			    ref.out[want_off % normlen] :
			    ".\r\n"[want_off - reps * normlen];

			if (out[i] != w)
				fail_msg("output differs at byte %zu", want_off);
		}
		if (off < len) {
			assert_int_equal(d.done, 0);
			if (off >= 3 && memcmp(msg + off - 3, "\r\n.", 3) == 0)
				tent = 1;
			if (off >= 4 && memcmp(msg + off - 4, "\r\n.\r", 4) == 0)
				tent = 2;
			assert_true(d.content == off - tent);
		}
	}
	assert_int_equal(d.done, 1);
	assert_true(d.content == (uint64_t)reps * patlen);
	assert_true(d.content > TDATA_BIG);
	assert_int_equal(want_off, reps * normlen + 3);
	assert_int_equal(d.flags, ref.flags);
	free(ref.out);
	free(out);
	free(msg);
}

static void
test_smtp_data_large_message_streams_in_chunks(void **state)
{
	/* 57 and 31 bytes, odd: chunk edges fall at every offset of them. */
	static const char clean[] =
	    "line of text\r\n..stuffed\r\n\r\n.\tx\r\n"
	    "..\r\n. \r\nmore text here.\r\n";
	static const char dirty[] =
	    "a\n.\nb\r.\rc\r\n.\rd\r\n.\ne\n..\r\n.\r\r\nf\r\n";

	(void)state;
	tdata_stream(SMTP_DATA_REJECT, clean, sizeof(clean) - 1);
	tdata_stream(SMTP_DATA_NORMALIZE, clean, sizeof(clean) - 1);
	tdata_stream(SMTP_DATA_NORMALIZE, dirty, sizeof(dirty) - 1);
	tdata_stream(SMTP_DATA_REJECT, dirty, sizeof(dirty) - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtp_data_model_agrees_with_hand_written_outputs),
		cmocka_unit_test(test_smtp_data_smuggling_sequences_never_end_the_message),
		cmocka_unit_test(test_smtp_data_dot_cr_at_chunk_end_then_lf_is_the_end),
		cmocka_unit_test(test_smtp_data_dot_cr_at_chunk_end_then_other_is_bare_cr),
		cmocka_unit_test(test_smtp_data_empty_message_ends_at_first_line),
		cmocka_unit_test(test_smtp_data_message_of_one_empty_line),
		cmocka_unit_test(test_smtp_data_dots_at_the_very_start),
		cmocka_unit_test(test_smtp_data_normalize_stuffs_dot_line_after_crlf),
		cmocka_unit_test(test_smtp_data_clean_message_passes_unchanged),
		cmocka_unit_test(test_smtp_data_flags_per_mode),
		cmocka_unit_test(test_smtp_data_expansion_bound_is_tight),
		cmocka_unit_test(test_smtp_data_zero_room_and_zero_input),
		cmocka_unit_test(test_smtp_data_random_messages_keep_the_invariant),
		cmocka_unit_test(test_smtp_data_large_message_streams_in_chunks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

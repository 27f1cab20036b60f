/*
 * fuzz_ctl_answer: smtpwallctl's reader of a control answer (ctl/answer.c)
 * on arbitrary daemon output, fed in chunks.
 *
 * Input: byte 0: bits 0-6 the chunk size (0: one call with everything, else
 * 1..127 bytes a call), bit 7 the stream starts with ANSWER_LINE_MAX - 8 +
 * (byte 1 & 15) bytes "x" (a first data line at the line limit, within
 * libFuzzer's default input size); bytes 1.. (2.. with bit 7) are the
 * daemon's bytes.
 *
 * A reference reads the whole stream at once: LF-terminated lines, one CR
 * before the LF dropped; the first line that is "ok", starts with "ok " or
 * with "error:" is the final one; a line of ANSWER_LINE_MAX - 1 bytes or more
 * before its LF ends everything (bad). Invariants (abort() on violation):
 *  - the reader finishes (DONE) exactly when the reference finds a final
 *    line before any over-long line, and says BAD exactly on an over-long
 *    line before it; it takes exactly the bytes up to the final line's LF,
 *    never one after, and then answers DONE with nothing taken;
 *  - the held data lines are the reference's data lines, each made
 *    printable (control bytes but tab as \xNN) and ended by "\n", across
 *    ANSWER_HOLD_FULL; no held or text byte is a control byte but tab/LF;
 *  - answer_final, answer_text (leading blanks dropped, printable) and
 *    answer_exit_status match; answer_eof says DONE iff there is a final
 *    line, and BAD otherwise, with a message;
 *  - feeding the stream byte by byte (three at a time past 1 KiB) gives the
 *    same result.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/answer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(x)	do { if (!(x)) abort(); } while (0)

struct fz_ref {
	enum answer_res	 res;		/* DONE, BAD (over-long line) or AGAIN (no final line) */
	size_t		 used;		/* DONE: bytes up to and including the final LF */
	enum answer_final final;
	char		*held;		/* the expected held text */
	size_t		 held_len;
	char		*text;		/* the expected final text */
};

static size_t
fz_printable(char *dst, const char *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c == '\t' || (c >= 0x20 && c != 0x7f))
			dst[o++] = (char)c;
		else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	return o;
}

static void
fz_reference(const char *s, size_t n, struct fz_ref *ref)
{
	size_t pos = 0;

	memset(ref, 0, sizeof *ref);
	FZ_CHECK((ref->held = malloc(4 * n + 1)) != NULL);
	ref->res = ANSWER_AGAIN;
	while (pos < n) {
		const char *lf = memchr(s + pos, '\n', n - pos);
		size_t l = lf != NULL ? (size_t)(lf - (s + pos)) : n - pos, c;
		const char *p = s + pos;

		if (l >= ANSWER_LINE_MAX) {
			ref->res = ANSWER_BAD;
			return;
		}
		if (lf == NULL)
			return;
		pos += l + 1;
		c = l > 0 && p[l - 1] == '\r' ? l - 1 : l;
		if ((c == 2 && memcmp(p, "ok", 2) == 0) || (c >= 3 && memcmp(p, "ok ", 3) == 0) ||
		    (c >= 6 && memcmp(p, "error:", 6) == 0)) {
			size_t skip = p[0] == 'o' ? 2 : 6;

			ref->final = p[0] == 'o' ? ANSWER_FINAL_OK : ANSWER_FINAL_ERROR;
			while (skip < c && (p[skip] == ' ' || p[skip] == '\t'))
				skip++;
			FZ_CHECK((ref->text = malloc(4 * (c - skip) + 1)) != NULL);
			ref->text[fz_printable(ref->text, p + skip, c - skip)] = '\0';
			ref->res = ANSWER_DONE;
			ref->used = pos;
			return;
		}
		ref->held_len += fz_printable(ref->held + ref->held_len, p, c);
		ref->held[ref->held_len++] = '\n';
	}
}

struct fz_run {
	enum answer_res	 res;
	size_t		 used;
	char		*held;
	size_t		 held_len;
};

/*
 * Feed s[0..n) in calls of `chunk` bytes (0: all at once), the first `first`
 * bytes in one call; collect the held data.
 */
static void
fz_run(struct answer *a, const char *s, size_t n, size_t first, size_t chunk, struct fz_run *run)
{
	size_t off = 0, used, hl;
	enum answer_res r = ANSWER_AGAIN;
	const char *h;

	memset(run, 0, sizeof *run);
	FZ_CHECK((run->held = malloc(4 * n + 1)) != NULL);
	while (off < n) {
		size_t len = chunk == 0 || chunk > n - off ? n - off : chunk;
		char *copy;

		if (off == 0 && first > len)
			len = first < n ? first : n;
		if (chunk > 1) {
			copy = malloc(len);	/* exact size: ASan sees overreads */
			FZ_CHECK(copy != NULL);
			memcpy(copy, s + off, len);
			r = answer_feed(a, copy, len, &used);
			free(copy);
		} else
			r = answer_feed(a, s + off, len, &used);	/* s is an exact-size copy */
		FZ_CHECK(used <= len);
		if (r == ANSWER_AGAIN)
			FZ_CHECK(used == len);
		off += used;
		if (r == ANSWER_HOLD_FULL || r == ANSWER_AGAIN || r == ANSWER_DONE) {
			h = answer_held(a, &hl);
			FZ_CHECK(h != NULL);
			memcpy(run->held + run->held_len, h, hl);
			run->held_len += hl;
			answer_held_clear(a);
			FZ_CHECK(answer_held(a, &hl) != NULL && hl == 0);
		}
		if (r == ANSWER_DONE || r == ANSWER_BAD)
			break;
	}
	run->res = r;
	run->used = off;
	/* After the end, the same answer again, with nothing taken. */
	if (r == ANSWER_DONE || r == ANSWER_BAD) {
		FZ_CHECK(answer_feed(a, "ok\n", 3, &used) == r && used == 0);
		FZ_CHECK(answer_feed(a, "", 0, &used) == r && used == 0);
	}
}

static void
fz_no_control(const char *s, size_t n, int lf_ok)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		FZ_CHECK(c == '\t' || (lf_ok && c == '\n') || (c >= 0x20 && c != 0x7f));
	}
}

static void
fz_check(struct answer *a, const struct fz_run *run, const struct fz_ref *ref, size_t n)
{
	enum answer_res eof;

	FZ_CHECK(run->res == ref->res);
	fz_no_control(run->held, run->held_len, 1);
	switch (ref->res) {
	case ANSWER_DONE:
		FZ_CHECK(run->used == ref->used);
		FZ_CHECK(answer_final(a) == ref->final);
		FZ_CHECK(strcmp(answer_text(a), ref->text) == 0);
		fz_no_control(answer_text(a), strlen(answer_text(a)), 0);
		FZ_CHECK(answer_exit_status(a) ==
		    (ref->final == ANSWER_FINAL_OK ? ANSWER_EXIT_OK : ANSWER_EXIT_REFUSED));
		FZ_CHECK(*answer_error(a) == '\0');
		FZ_CHECK(run->held_len == ref->held_len &&
		    (ref->held_len == 0 || memcmp(run->held, ref->held, ref->held_len) == 0));
		break;
	case ANSWER_BAD:
		FZ_CHECK(answer_final(a) == ANSWER_FINAL_NONE);
		FZ_CHECK(*answer_error(a) != '\0');
		FZ_CHECK(answer_exit_status(a) == ANSWER_EXIT_UNREACHABLE);
		/* what was held is a prefix of the reference's data lines */
		FZ_CHECK(run->held_len <= ref->held_len &&
		    (run->held_len == 0 || memcmp(run->held, ref->held, run->held_len) == 0));
		break;
	default:
		FZ_CHECK(run->used == n);
		FZ_CHECK(answer_final(a) == ANSWER_FINAL_NONE);
		FZ_CHECK(answer_exit_status(a) == ANSWER_EXIT_UNREACHABLE);
		FZ_CHECK(*answer_text(a) == '\0');
		FZ_CHECK(run->held_len == ref->held_len &&
		    (ref->held_len == 0 || memcmp(run->held, ref->held, ref->held_len) == 0));
		break;
	}
	eof = answer_eof(a);
	if (ref->res == ANSWER_DONE)
		FZ_CHECK(eof == ANSWER_DONE);
	else
		FZ_CHECK(eof == ANSWER_BAD && *answer_error(a) != '\0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct answer a1 = { 0 }, a2 = { 0 };
	struct fz_run r1, r2;
	struct fz_ref ref;
	size_t chunk, pad = 0, n;
	char *s;

	if (size == 0)
		return 0;
	chunk = data[0] & 0x7f;
	if ((data[0] & 0x80) && size >= 2) {
		pad = ANSWER_LINE_MAX - 8 + (data[1] & 15);
		data++;
		size--;
	}
	data++;
	size--;
	n = pad + size;
	FZ_CHECK((s = malloc(n ? n : 1)) != NULL);	/* exact size */
	memset(s, 'x', pad);
	memcpy(s + pad, data, size);

	fz_reference(s, n, &ref);
	/* the pad in one call but its last 256 bytes: chunks across the limit only */
	fz_run(&a1, s, n, pad > 256 ? pad - 256 : 0, chunk, &r1);
	fz_check(&a1, &r1, &ref, n);
	/* byte by byte (in threes past 1 KiB): the same result; not with the long pad line */
	if (!pad) {
		fz_run(&a2, s, n, 0, n <= 1024 ? 1 : 3, &r2);
		fz_check(&a2, &r2, &ref, n);
		FZ_CHECK(r1.res == r2.res && r1.used == r2.used && r1.held_len == r2.held_len);
		free(r2.held);
	}
	answer_free(&a1);
	answer_free(&a2);
	free(r1.held);
	free(ref.held);
	free(ref.text);
	free(s);
	return 0;
}

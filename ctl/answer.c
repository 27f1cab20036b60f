/*
 * answer.c: reading one control answer line by line, within fixed bounds
 * (see answer.h for the contract).
 *
 * A line is gathered raw in an_line until its LF; then one CR before the LF
 * is dropped and the line is either the final one (ok / error:) or a data
 * line, which is copied into an_held made printable. Nothing is ever written
 * back into the caller's bytes.
 *
 * Never does I/O, never aborts: every limit and allocation failure ends in
 * ANSWER_BAD with a message.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/answer.h"

#define ANSWER_LINE_INIT	256
#define ANSWER_HELD_INIT	4096
/* one raw byte becomes at most 4 printable ones (\xNN) */
#define ANSWER_HELD_CAP		(ANSWER_HOLD_MAX + 4 * (size_t)ANSWER_LINE_MAX + 1)

static enum answer_res
answer_fail(struct answer *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static enum answer_res
answer_fail(struct answer *a, const char *fmt, ...)
{
	va_list va;

	va_start(va, fmt);
	vsnprintf(a->an_err, sizeof a->an_err, fmt, va);
	va_end(va);
	a->an_bad = 1;
	return ANSWER_BAD;
}

/* Grow *buf to hold at least need bytes, doubling from init, never past cap. 0 or -1. */
static int
answer_reserve(char **buf, size_t *size, size_t need, size_t init, size_t cap)
{
	size_t n = *size ? *size : init;
	char *p;

	if (need <= *size)
		return 0;
	if (need > cap)
		return -1;
	while (n < need)
		n = n > cap / 2 ? cap : n * 2;
	if ((p = realloc(*buf, n)) == NULL)
		return -1;
	*buf = p;
	*size = n;
	return 0;
}

/* src[0..n) into dst with every control byte but tab as \xNN; returns the bytes written. */
static size_t
answer_printable(char *dst, const char *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		} else {
			dst[o++] = (char)c;
		}
	}
	return o;
}

static enum answer_res
answer_set_final(struct answer *a, enum answer_final kind, const char *text, size_t n)
{
	while (n > 0 && (*text == ' ' || *text == '\t')) {
		text++;
		n--;
	}
	if ((a->an_text = malloc(4 * n + 1)) == NULL)
		return answer_fail(a, "out of memory");
	a->an_text[answer_printable(a->an_text, text, n)] = '\0';
	a->an_final = kind;
	return ANSWER_DONE;
}

static int
answer_starts(const char *p, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);

	return n >= k && memcmp(p, prefix, k) == 0;
}

/* A whole line (without LF) is in an_line: classify it and take it. */
static enum answer_res
answer_line_done(struct answer *a)
{
	const char *p = a->an_line;
	size_t n = a->an_line_len;

	a->an_line_len = 0;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	/* "Data lines never start with ok or error:"; "okay" is not the final "ok" */
	if ((n == 2 && memcmp(p, "ok", 2) == 0) || answer_starts(p, n, "ok "))
		return answer_set_final(a, ANSWER_FINAL_OK, p + 2, n - 2);
	if (answer_starts(p, n, "error:"))
		return answer_set_final(a, ANSWER_FINAL_ERROR, p + 6, n - 6);
	if (answer_reserve(&a->an_held, &a->an_held_size, a->an_held_len + 4 * n + 1,
	    ANSWER_HELD_INIT, ANSWER_HELD_CAP) == -1)
		return answer_fail(a, "out of memory");
	a->an_held_len += answer_printable(a->an_held + a->an_held_len, p, n);
	a->an_held[a->an_held_len++] = '\n';
	return a->an_held_len >= ANSWER_HOLD_MAX ? ANSWER_HOLD_FULL : ANSWER_AGAIN;
}

enum answer_res
answer_feed(struct answer *a, const char *p, size_t n, size_t *used)
{
	size_t off = 0;
	enum answer_res r;

	*used = 0;
	if (a->an_bad)
		return ANSWER_BAD;
	if (a->an_final != ANSWER_FINAL_NONE)
		return ANSWER_DONE;
	while (off < n) {
		const char *lf = memchr(p + off, '\n', n - off);
		size_t seg = lf != NULL ? (size_t)(lf - (p + off)) : n - off;
		size_t take = seg + (lf != NULL);

		if (take > ANSWER_TOTAL_MAX - a->an_total) {
			*used = off;
			return answer_fail(a, "answer longer than %zu MiB", ANSWER_TOTAL_MAX >> 20);
		}
		/* the LF counts: the content of a line may use ANSWER_LINE_MAX - 1 bytes */
		if (seg > ANSWER_LINE_MAX - 1 - a->an_line_len) {
			*used = off;
			return answer_fail(a, "a line longer than %d bytes", ANSWER_LINE_MAX);
		}
		if (answer_reserve(&a->an_line, &a->an_line_size, a->an_line_len + seg,
		    ANSWER_LINE_INIT, ANSWER_LINE_MAX) == -1) {
			*used = off;
			return answer_fail(a, "out of memory");
		}
		if (seg > 0)
			memcpy(a->an_line + a->an_line_len, p + off, seg);
		a->an_line_len += seg;
		a->an_total += take;
		off += take;
		if (lf == NULL)
			break;
		if ((r = answer_line_done(a)) != ANSWER_AGAIN) {
			*used = off;
			return r;
		}
	}
	*used = off;
	return ANSWER_AGAIN;
}

enum answer_res
answer_eof(struct answer *a)
{
	if (a->an_bad)
		return ANSWER_BAD;
	if (a->an_final != ANSWER_FINAL_NONE)
		return ANSWER_DONE;
	if (a->an_line_len > 0)
		return answer_fail(a, "the connection closed in the middle of a line");
	return answer_fail(a, "the connection closed before the final ok or error line");
}

const char *
answer_held(const struct answer *a, size_t *len)
{
	*len = a->an_held_len;
	return a->an_held_len > 0 ? a->an_held : "";
}

void
answer_held_clear(struct answer *a)
{
	a->an_held_len = 0;
}

enum answer_final
answer_final(const struct answer *a)
{
	return a->an_final;
}

const char *
answer_text(const struct answer *a)
{
	return a->an_text != NULL ? a->an_text : "";
}

const char *
answer_error(const struct answer *a)
{
	return a->an_bad ? a->an_err : "";
}

enum answer_exit
answer_exit_status(const struct answer *a)
{
	switch (a->an_final) {
	case ANSWER_FINAL_OK:
		return ANSWER_EXIT_OK;
	case ANSWER_FINAL_ERROR:
		return ANSWER_EXIT_REFUSED;
	case ANSWER_FINAL_NONE:
		break;
	}
	return ANSWER_EXIT_UNREACHABLE;
}

void
answer_free(struct answer *a)
{
	free(a->an_line);
	free(a->an_held);
	free(a->an_text);
	memset(a, 0, sizeof *a);
}

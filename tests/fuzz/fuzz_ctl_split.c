/*
 * fuzz_ctl_split: the daemon's side of the control protocol, up to the verb
 * table: line framing (proxy/control.c reads a connection into a struct buf
 * of at most CTL_LINE_MAX bytes and takes lines with buf_getline), word
 * splitting (ctl_split) and DURATION (ctlcmd_duration).
 *
 * Input: byte 0: bits 0-5 the size of each read (1..64), bit 6 quote every
 * word in the round trip (not only those that need it), bit 7 the stream is
 * the rest repeated three times (lines longer than CTL_LINE_MAX within
 * libFuzzer's default input size). Bytes 1.. are what the client sends.
 *
 * The framing loop is ctl_conn_io()'s, with read() replaced by a copy.
 * Invariants (abort() on violation):
 *  - framing: the lines taken are exactly the stream's LF-terminated lines,
 *    in order, one CR before the LF removed; framing stops ("line too
 *    long") exactly when a line has CTL_LINE_MAX bytes or more before its LF;
 *  - ctl_split agrees with an independent reference splitter (same result,
 *    same words), and its words lie inside the line, in order, without
 *    overlapping;
 *  - round trip: the words, each quoted as smtpwallctl quotes them (or all
 *    quoted), joined by runs of spaces and tabs, split back to the same words;
 *  - ctlcmd_duration agrees with a reference for every word: digits, one of
 *    s m h d w, more than 0 and at most a century; else -1.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/buf.h"
#include "proxy/control.h"
#include "proxy/ctlcmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(x)	do { if (!(x)) abort(); } while (0)
#define FZ_REF_MAX	(CTL_LINE_MAX + 1)

/* The reference: one state machine over the whole line; words are copied out. */
struct fz_words {
	int	 n;
	char	*w[CTL_ARGS_MAX];	/* each malloc'd, NUL-terminated */
};

static void
fz_words_free(struct fz_words *ws)
{
	for (int i = 0; i < ws->n; i++)
		free(ws->w[i]);
	ws->n = 0;
}

static int
fz_ref_split(const char *s, struct fz_words *ws)
{
	size_t len = strlen(s), i = 0, o;
	char *word;

	ws->n = 0;
	for (;;) {
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i == len)
			return ws->n;
		if (ws->n == CTL_ARGS_MAX)
			return -1;
		FZ_CHECK((word = malloc(len + 1)) != NULL);
		ws->w[ws->n++] = word;
		o = 0;
		if (s[i] == '"') {
			for (i++;; ) {
				if (i == len)
					return -1;
				if (s[i] == '"')
					break;
				if (s[i] == '\\' && i + 1 < len && (s[i + 1] == '"' || s[i + 1] == '\\'))
					i++;
				word[o++] = s[i++];
			}
			i++;	/* the closing quote */
			if (i < len && s[i] != ' ' && s[i] != '\t')
				return -1;
		} else {
			while (i < len && s[i] != ' ' && s[i] != '\t')
				word[o++] = s[i++];
		}
		word[o] = '\0';
	}
}

/* Split a copy of line with ctl_split; check it against the reference and in-bounds. */
static int
fz_split_check(const char *line, char **argv, char *work, size_t worksize, struct fz_words *ref)
{
	size_t len = strlen(line);
	int argc, rn;

	FZ_CHECK(len < worksize);
	memcpy(work, line, len + 1);
	argc = ctl_split(work, argv);
	rn = fz_ref_split(line, ref);
	FZ_CHECK(argc == rn);
	FZ_CHECK(argc >= -1 && argc <= CTL_ARGS_MAX);
	for (int i = 0; i < argc; i++) {
		size_t wl = strlen(argv[i]);

		FZ_CHECK(argv[i] >= work && argv[i] + wl < work + len + 1);
		if (i > 0)
			FZ_CHECK(argv[i] > argv[i - 1] + strlen(argv[i - 1]));
		FZ_CHECK(strcmp(argv[i], ref->w[i]) == 0);
	}
	return argc;
}

/* As smtpwallctl's args_quote(): quoted if empty or holding blank, '"' or '\'. */
static size_t
fz_quote(char *dst, const char *w, int always)
{
	size_t o = 0;
	int q = always || *w == '\0' || strpbrk(w, " \t\"\\") != NULL;

	if (q)
		dst[o++] = '"';
	for (; *w != '\0'; w++) {
		if (q && (*w == '"' || *w == '\\'))
			dst[o++] = '\\';
		dst[o++] = *w;
	}
	if (q)
		dst[o++] = '"';
	return o;
}

static long long
fz_ref_duration(const char *s)
{
	static const char units[] = "smhdw";
	static const long long mul[] = { 1, 60, 3600, 86400, 7 * 86400 };
	const long long max = 100LL * 365 * 86400;
	size_t nd = strspn(s, "0123456789");
	const char *u;
	long long n = 0;

	if (nd == 0 || s[nd] == '\0' || s[nd + 1] != '\0' || (u = strchr(units, s[nd])) == NULL)
		return -1;
	for (size_t i = 0; i < nd; i++) {
		n = n * 10 + (s[i] - '0');
		if (n > max)
			return -1;	/* beyond any unit's limit already */
	}
	if (n == 0 || n > max / mul[u - units])
		return -1;
	return n * mul[u - units];
}

static void
fz_line(const char *line, int always)
{
	static char work[FZ_REF_MAX], work2[4 * FZ_REF_MAX + 2 * CTL_ARGS_MAX + 16];
	static char *argv[CTL_ARGS_MAX], *argv2[CTL_ARGS_MAX];
	struct fz_words ref = { 0 }, ref2 = { 0 };
	char *joined;
	size_t o = 0;
	int argc, argc2;

	argc = fz_split_check(line, argv, work, sizeof work, &ref);
	if (argc <= 0) {
		fz_words_free(&ref);
		return;
	}
	for (int i = 0; i < argc; i++) {
		long long d = ctlcmd_duration(ref.w[i]);

		FZ_CHECK(d == fz_ref_duration(ref.w[i]));
	}
	/* Round trip: quote, join with varying blanks, split again. */
	FZ_CHECK((joined = malloc(sizeof work2)) != NULL);
	for (int i = 0; i < argc; i++) {
		if (i > 0 || (always && i == 0))
			joined[o++] = (i & 1) ? '\t' : ' ';
		if (i % 3 == 2)
			joined[o++] = ' ';
		o += fz_quote(joined + o, ref.w[i], always);
	}
	joined[o] = '\0';
	argc2 = fz_split_check(joined, argv2, work2, sizeof work2, &ref2);
	FZ_CHECK(argc2 == argc);
	for (int i = 0; i < argc; i++)
		FZ_CHECK(strcmp(ref2.w[i], ref.w[i]) == 0);
	free(joined);
	fz_words_free(&ref);
	fz_words_free(&ref2);
}

/* The reference framing: the next line of s[*pos..n), or 0 at the end / -1 if too long. */
static int
fz_ref_line(const char *s, size_t n, size_t *pos, const char **line, size_t *len)
{
	const char *lf = memchr(s + *pos, '\n', n - *pos);
	size_t l = lf != NULL ? (size_t)(lf - (s + *pos)) : n - *pos;

	if (l >= CTL_LINE_MAX)
		return -1;
	if (lf == NULL)
		return 0;
	*line = s + *pos;
	*len = l;
	*pos += l + 1;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char cmd[CTL_LINE_MAX + 1];
	struct buf in = { 0 };
	struct slice sl;
	size_t chunk, n, fed = 0, refpos = 0, reflen;
	const char *refline;
	char *stream;
	int always, reps, eof = 0, r;

	if (size == 0)
		return 0;
	chunk = (data[0] & 0x3f) + 1;
	always = (data[0] & 0x40) != 0;
	reps = (data[0] & 0x80) ? 3 : 1;
	data++;
	size--;
	FZ_CHECK((stream = malloc(size * (size_t)reps + 1)) != NULL);
	for (int i = 0; i < reps; i++)
		memcpy(stream + (size_t)i * size, data, size);
	n = size * (size_t)reps;

	/* ctl_conn_io(), with read() taking up to `chunk` bytes of the stream. */
	while (!eof) {
		size_t want = CTL_LINE_MAX - buf_len(&in), got;

		if (want == 0 || buf_reserve(&in, want < 1024 ? want : 1024, CTL_LINE_MAX) == -1) {
			/* "error: line too long": the reference must see a line that long */
			FZ_CHECK(want == 0);
			FZ_CHECK(fz_ref_line(stream, n, &refpos, &refline, &reflen) == -1);
			break;
		}
		got = buf_room(&in) < chunk ? buf_room(&in) : chunk;
		if (got > n - fed)
			got = n - fed;
		if (got == 0)
			eof = 1;
		else {
			memcpy(buf_tail(&in), stream + fed, got);
			buf_commit(&in, got);
			fed += got;
		}
		while (buf_getline(&in, &sl)) {
			size_t len = sl.len - 1;

			FZ_CHECK(sl.len >= 1 && sl.p[sl.len - 1] == '\n');
			FZ_CHECK(fz_ref_line(stream, n, &refpos, &refline, &reflen) == 1);
			FZ_CHECK(reflen == len && memcmp(refline, sl.p, len) == 0);
			if (len > 0 && sl.p[len - 1] == '\r')
				len--;
			FZ_CHECK(len <= CTL_LINE_MAX);
			memcpy(cmd, sl.p, len);
			cmd[len] = '\0';
			buf_consume(&in, sl.len);
			fz_line(cmd, always);
		}
	}
	if (eof) {
		/* all complete lines were taken; what is left is one unterminated line */
		r = fz_ref_line(stream, n, &refpos, &refline, &reflen);
		FZ_CHECK(r == 0 && n - refpos == buf_len(&in));
	}
	buf_free(&in);
	free(stream);
	return 0;
}

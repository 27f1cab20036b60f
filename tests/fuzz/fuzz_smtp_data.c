/*
 * fuzz_smtp_data: libFuzzer entry point for the DATA scanner (proxy/smtp/data.h).
 *
 * Input: byte 0 picks the mode (bit 0) and where the rest is cut in two
 * (bits 1-7, scaled to its length); bytes 1.. are the client's DATA bytes.
 * The scanner runs once over the whole input with ample room, and once over
 * the two chunks with only SMTP_DATA_EXPANSION bytes of room per call; both
 * must agree, and so must a third run fed one byte a call (which takes
 * none of the scanner's fast paths), and must keep the invariant of data.h. Any violation abort()s,
 * so libFuzzer keeps the input. Chunks are copied to exact-size heap blocks
 * so ASan sees any read past inlen.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/smtp/data.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_data_run {
	struct smtp_data	 d;
	char			*out;
	size_t			 outlen;
	size_t			 consumed;
};

static void
fuzz_data_check(int ok)
{
	if (!ok)
		abort();
}

/* Feed one chunk with outroom bytes per call (0: all the room it may need). */
static void
fuzz_data_feed(struct fuzz_data_run *r, const uint8_t *p, size_t len, size_t outroom)
{
	char *in = malloc(len ? len : 1);
	size_t off = 0;

	fuzz_data_check(in != NULL);
	if (len > 0)
		memcpy(in, p, len);
	while (off < len && !r->d.done) {
		size_t room = outroom ? outroom : (len - off) * SMTP_DATA_EXPANSION;
		char *out = malloc(room ? room : 1);	/* exact: ASan sees overflows */
		size_t olen, used;

		fuzz_data_check(out != NULL);
		used = smtp_data_scan(&r->d, in + off, len - off, out, room, &olen);
		fuzz_data_check(used > 0 && used <= len - off);
		fuzz_data_check(olen <= room && olen <= used * SMTP_DATA_EXPANSION);
		if (olen > 0)
			memcpy(r->out + r->outlen, out, olen);
		free(out);
		r->outlen += olen;
		r->consumed += used;
		off += used;
	}
	if (r->d.done && off < len) {
		char out[SMTP_DATA_EXPANSION];
		size_t olen;

		fuzz_data_check(smtp_data_scan(&r->d, in + off, len - off,
		    out, sizeof(out), &olen) == 0 && olen == 0);
	}
	free(in);
}

/* Is there a "\r\n.\r\n" in "\r\n" + p[0..len), and where does the first one end? */
static size_t
fuzz_data_first_end(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] != '\n' || i < 2 || p[i - 1] != '\r' || p[i - 2] != '.')
			continue;
		if (i == 2 || (i >= 4 && p[i - 3] == '\n' && p[i - 4] == '\r'))
			return i + 1;
	}
	return 0;
}

/* The REJECT flags, worked out from the raw bytes p[0..len). */
static unsigned
fuzz_data_raw_flags(const char *p, size_t len)
{
	unsigned f = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\0')
			f |= SMTP_DATA_F_NUL;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			f |= SMTP_DATA_F_BARE_LF;
		if (p[i] == '\r' && i + 1 < len && p[i + 1] != '\n')
			f |= SMTP_DATA_F_BARE_CR;	/* a last CR is undecided */
	}
	return f;
}

/* Only CRLF line endings (a last CR may wait for its LF if not done). */
static int
fuzz_data_only_crlf(const char *p, size_t len, int done)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return 0;
		if (p[i] == '\r' && (i + 1 < len ? p[i + 1] != '\n' : done))
			return 0;
	}
	return 1;
}

/* The invariant of data.h on what the server receives. */
static void
fuzz_data_check_output(const struct fuzz_data_run *r)
{
	fuzz_data_check(fuzz_data_only_crlf(r->out, r->outlen, r->d.done));
	if (r->d.done)
		fuzz_data_check(fuzz_data_first_end(r->out, r->outlen) == r->outlen);
	else
		fuzz_data_check(fuzz_data_first_end(r->out, r->outlen) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum smtp_data_mode mode;
	struct fuzz_data_run one, two, bytes;
	const uint8_t *in = data + 1;
	size_t len, cut, end;

	if (size < 1)
		return 0;
	mode = (data[0] & 1) ? SMTP_DATA_NORMALIZE : SMTP_DATA_REJECT;
	len = size - 1;
	cut = (size_t)(data[0] >> 1) * (len + 1) / 128;

	memset(&one, 0, sizeof(one));
	memset(&two, 0, sizeof(two));
	memset(&bytes, 0, sizeof(bytes));
	one.out = malloc(len * SMTP_DATA_EXPANSION + 1);
	two.out = malloc(len * SMTP_DATA_EXPANSION + 1);
	bytes.out = malloc(len * SMTP_DATA_EXPANSION + 1);
	fuzz_data_check(one.out != NULL && two.out != NULL && bytes.out != NULL);
	smtp_data_init(&one.d, mode);
	smtp_data_init(&two.d, mode);
	smtp_data_init(&bytes.d, mode);

	fuzz_data_feed(&one, in, len, 0);
	fuzz_data_feed(&two, in, cut, SMTP_DATA_EXPANSION);
	fuzz_data_feed(&two, in + cut, len - cut, SMTP_DATA_EXPANSION);
	for (end = 0; end < len; end++)
		fuzz_data_feed(&bytes, in + end, 1, SMTP_DATA_EXPANSION);

	/* However the bytes arrive, the result is the same. */
	fuzz_data_check(one.consumed == two.consumed && one.d.done == two.d.done);
	fuzz_data_check(one.d.flags == two.d.flags && one.d.content == two.d.content);
	fuzz_data_check(one.outlen == two.outlen &&
	    (one.outlen == 0 || memcmp(one.out, two.out, one.outlen) == 0));
	fuzz_data_check(one.consumed == bytes.consumed && one.d.done == bytes.d.done);
	fuzz_data_check(one.d.flags == bytes.d.flags && one.d.content == bytes.d.content);
	fuzz_data_check(one.outlen == bytes.outlen &&
	    (one.outlen == 0 || memcmp(one.out, bytes.out, one.outlen) == 0));

	/* The end is the first raw CRLF.CRLF, and nothing else. */
	end = fuzz_data_first_end((const char *)in, len);
	if (end > 0)
		fuzz_data_check(one.d.done && one.consumed == end &&
		    one.d.content == end - 3);
	else
		fuzz_data_check(!one.d.done && one.consumed == len &&
		    one.d.content <= len && one.d.content + 2 >= len);
	fuzz_data_check(!!(one.d.flags & SMTP_DATA_F_NUL) ==
	    (one.consumed > 0 && memchr(in, '\0', one.consumed) != NULL));

	if (mode == SMTP_DATA_REJECT) {
		fuzz_data_check(one.d.flags ==
		    fuzz_data_raw_flags((const char *)in, one.consumed));
		/*
		 * Output is the input, except that the CR of a line "." CR is
		 * held until the next byte: input that stops right there lacks
		 * that one CR in the output.
		 */
		size_t held = !one.d.done && one.consumed >= 2 &&
		    memcmp(in + one.consumed - 2, ".\r", 2) == 0 &&
		    (one.consumed == 2 || (one.consumed >= 4 &&
		    memcmp(in + one.consumed - 4, "\r\n", 2) == 0));

		fuzz_data_check(one.outlen + held == one.consumed &&
		    (one.outlen == 0 || memcmp(one.out, in, one.outlen) == 0));
		if ((one.d.flags & (SMTP_DATA_F_BARE_LF | SMTP_DATA_F_BARE_CR)) == 0)
			fuzz_data_check_output(&one);
	} else {
		fuzz_data_check((one.d.flags & ~(unsigned)SMTP_DATA_F_NUL) == 0);
		fuzz_data_check_output(&one);
	}

	free(one.out);
	free(two.out);
	free(bytes.out);
	return 0;
}

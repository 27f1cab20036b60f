/*
 * fuzz_smtp_cmd: smtp_parse_cmd and smtp_parse_reply_line on arbitrary lines.
 * Invariants: every slice it returns lies inside the input line; a path's
 * parts lie inside the path; the verb is a known value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/smtp/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fz_inside(struct slice s, const char *base, size_t len)
{
	if (s.len == 0)
		return;
	if (s.p < base || s.p + s.len > base + len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so ASan sees any read past the end. */
	char *line = malloc(size ? size : 1);
	struct smtp_cmd c;
	struct smtp_reply_line r;
	unsigned i;
	int res;

	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	res = smtp_parse_cmd(line, size, &c);
	if (res < SMTP_PARSE_OK || res > SMTP_PARSE_SYNTAX)
		abort();
	if (res == SMTP_PARSE_OK) {
		if (c.verb > SMTP_V_OTHER || smtp_verb_str(c.verb) == NULL)
			abort();
		fz_inside(c.verb_text, line, size);
		fz_inside(c.args, line, size);
		fz_inside(c.path.raw, line, size);
		fz_inside(c.path.mailbox, c.path.raw.p, c.path.raw.len);
		fz_inside(c.path.local, c.path.raw.p, c.path.raw.len);
		fz_inside(c.path.domain, c.path.raw.p, c.path.raw.len);
		if (c.nparams > SMTP_MAX_PARAMS)
			abort();
		for (i = 0; i < c.nparams; i++) {
			fz_inside(c.params[i].key, line, size);
			fz_inside(c.params[i].value, line, size);
		}
	}
	if (smtp_parse_reply_line(line, size, &r) == 0) {
		if (r.code < 200 || r.code > 599)
			abort();
		fz_inside(r.text, line, size);
		fz_inside(smtp_ehlo_keyword(r.text), line, size);
	}
	(void)smtp_line_has_bad_bytes(line, size);
	free(line);
	return 0;
}

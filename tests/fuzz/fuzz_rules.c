/*
 * fuzz_rules: the rules-file language. Invariants: parse either succeeds or
 * reports at least one error; every parsed rule formats to a line that
 * parses back to a rule that formats identically (round trip).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fz_count(void *arg, unsigned line, const char *msg)
{
	(void)line;
	if (msg == NULL || *msg == '\0')
		abort();
	(*(int *)arg)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	char a[1024], b[1024];
	struct ruleset *rs, *again;
	int errors = 0, e2 = 0;
	size_t i;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	rs = rules_parse(text, size, fz_count, &errors);
	if (rs == NULL && errors == 0)
		abort();
	if (rs != NULL && errors != 0)
		abort();
	for (i = 0; rs != NULL && i < rules_count(rs); i++) {
		rules_rule_format(rules_get(rs, i), a, sizeof(a));
		if ((again = rules_parse(a, strlen(a), fz_count, &e2)) == NULL ||
		    rules_count(again) != 1)
			abort();
		rules_rule_format(rules_get(again, 0), b, sizeof(b));
		if (strcmp(a, b) != 0)
			abort();
		rules_unref(again);
	}
	rules_unref(rs);
	free(text);
	return 0;
}

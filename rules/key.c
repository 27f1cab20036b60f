/*
 * key.c: a rule's identity as text (see rules_rule_format_key in rules.h).
 */
#include "rules.h"

int
rules_rule_format_key(const struct rules_rule *r, char *buf, size_t len)
{
	struct rules_rule key = *r;

	key.until = 0;
	key.comment = "";
	return rules_rule_format(&key, buf, len);
}

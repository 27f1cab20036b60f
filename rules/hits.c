/*
 * hits.c: the hit counters' one mutator outside evaluation. The counter is
 * the only mutable field of a shared, otherwise immutable rule; it is
 * changed with relaxed atomics only.
 */
#include <stdint.h>

#include "rules.h"

void
rules_hit_undo(const struct rules_rule *r)
{
	if (r != NULL)
		__atomic_fetch_sub((uint64_t *)(uintptr_t)&r->hits, 1, __ATOMIC_RELAXED);
}

/*
 * persist: writing the rules file off the event loop, with group commit.
 *
 * A rule change must be on disk before it is acknowledged (SPEC.md "Live
 * rules"), but a write and two fsyncs on the event loop would stall every
 * session while they run, and with 10^6 rules the file is tens of MB. So one
 * writer thread does the writing; the loop never waits for it.
 *
 * A change is built on the newest ruleset requested so far (persist_latest),
 * which is queued. While a write is in flight, further changes only replace
 * the queued snapshot, and their waiters join one batch: when the writer is
 * free it writes the newest snapshot once, and every change it contains is
 * acknowledged together. When a write is on disk, the loop makes that
 * ruleset live and calls each waiter with ok; if it fails, that batch and
 * everything queued after it (built on top of it) are refused, and the
 * pending state falls back to the live ruleset.
 */
#ifndef SMTPWALL_PERSIST_H
#define SMTPWALL_PERSIST_H

#include "proxy.h"
#include "rulesfile.h"

struct persist;

/* Called on the loop when the change is on disk and live (ok = 1), or refused (err). */
typedef void persist_done_fn(void *arg, int ok, const char *err);

/* Start the writer thread. 0, or -1 with errno. */
int	persist_start(struct proxy *px);
/* Wait for the writes in flight, then stop the thread (at shutdown). */
void	persist_stop(struct proxy *px);

/* The ruleset a new change must be built on: the newest one requested (not a new reference). */
const struct ruleset *persist_latest(const struct proxy *px);

/*
 * Queue rs (this takes over its reference) to be written and made live.
 * done(arg, ...) is called exactly once, later, on the loop; done may be
 * NULL (expiry). 0, or -1 (ENOMEM, or ESHUTDOWN once persist_stop() has
 * begun) with rs dropped and done not called.
 */
int	persist_submit(struct proxy *px, struct ruleset *rs, persist_done_fn *done, void *arg);

/* 1 while a change is queued or being written (reload refuses then: it would race them). */
int	persist_busy(const struct proxy *px);

#endif

/*
 * live: changing what the running daemon does, from the control socket or
 * a signal. The rules: written by persist.c's thread first, then swapped in
 * (readers never wait: sessions hold references to the ruleset they use).
 * The configuration:
 * a new generation swapped in only if the whole file (and the rules file)
 * is valid. Rule expiry: a timer at the next until= of any rule.
 */
#ifndef SMTPWALL_LIVE_H
#define SMTPWALL_LIVE_H

#include <stdio.h>
#include "proxy.h"
#include "rulesfile.h"

/* The FSM's view of the live rules: a new reference to the current ruleset. */
struct ruleset *live_rules_current(void *px);


/*
 * Re-read the configuration file and the rules file. Errors ("FILE:LINE:
 * message") and notes go to out (if not NULL), one a line; returns the number of errors
 * (0: the new configuration and rules are live). Refused while a rule
 * change is still being written. Also logs the outcome.
 */
int	live_reload(struct proxy *px, FILE *out);

/* (Re)arm the expiry timer for the current ruleset. */
void	live_expiry_arm(struct proxy *px);

#endif

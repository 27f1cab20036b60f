/*
 * conf: one generation of the daemon's configuration.
 *
 * Everything a session reads from the configuration (the struct config, the
 * relay policy built from it, the FSM settings) lives in one immutable,
 * reference-counted object. Each session holds the generation it started
 * with; `reload` builds a new one and swaps the pointer, and the old one is
 * freed when its last session ends. So a reload never changes a setting
 * under a session's feet, and never waits for sessions to end.
 */
#ifndef SMTPWALL_CONF_H
#define SMTPWALL_CONF_H

#include <stdio.h>
#include "config.h"
#include "smtp/fsm.h"
#include "../rules/rules.h"

struct pxconf {
	unsigned		refs;		/* atomic */
	struct config		cf;
	struct rules_policy	policy;
	struct smtp_fsm_conf	fsmconf;
};

/*
 * Read and check path into a new generation (refs 1). fsm.hostname, .rules
 * and .rules_arg are taken from the arguments. NULL if the file has errors
 * (each written to errf as "FILE:LINE: message"; *nerr says how many) or on
 * ENOMEM (*nerr = 1, message written).
 */
struct pxconf *pxconf_load(const char *path, const char *hostname,
	    smtp_rules_fn *rules, void *rules_arg, FILE *errf, int *nerr);
struct pxconf *pxconf_ref(struct pxconf *);
void	pxconf_unref(struct pxconf *);	/* NULL is fine */

#endif

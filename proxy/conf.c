/*
 * conf.c: configuration generations (see conf.h).
 */
#include <stdlib.h>

#include "conf.h"

struct pxconf *
pxconf_load(const char *path, const char *hostname, smtp_rules_fn *rules,
    void *rules_arg, FILE *errf, int *nerr)
{
	struct pxconf *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		fprintf(errf, "%s: out of memory\n", path);
		*nerr = 1;
		return NULL;
	}
	*nerr = config_load(&c->cf, path, errf);
	if (*nerr != 0) {
		config_free(&c->cf);
		free(c);
		return NULL;
	}
	c->refs = 1;
	c->policy.trusted = c->cf.trusted_networks;
	c->policy.local_domains = c->cf.local_domains;
	c->policy.auth_relay = c->cf.auth_relay;
	c->fsmconf = (struct smtp_fsm_conf){
		.policy = &c->policy,
		.rules = rules,
		.rules_arg = rules_arg,
		.commands = (const char (*)[16])c->cf.commands,
		.ncommands = c->cf.ncommands,
		.max_message_size = c->cf.max_message_size,
		.max_recipients = c->cf.max_recipients,
		.max_line_length = c->cf.max_line_length,
		.bare_lf = c->cf.bare_lf == CONFIG_BARE_LF_NORMALIZE ?
		    SMTP_DATA_NORMALIZE : SMTP_DATA_REJECT,
		.hostname = hostname,
		.xclient = c->cf.xclient,
	};
	return c;
}

struct pxconf *
pxconf_ref(struct pxconf *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void
pxconf_unref(struct pxconf *c)
{
	/* Sessions of every worker let go of it: the last one, on any thread, frees it. */
	if (c == NULL || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	config_free(&c->cf);
	free(c);
}

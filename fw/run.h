/*
 * run: smtpwall-firewall's commands, run for real: fork + execvp (no shell,
 * PATH lookup), stdin from a string, stdout and stderr captured; and a plan
 * (fw/plan.h) executed step by step, each failure reported on stderr as
 * "smtpwall-firewall: WHAT: LINE" for every line the command wrote there.
 */
#ifndef SMTPWALL_FW_RUN_H
#define SMTPWALL_FW_RUN_H

#include <stddef.h>
#include <stdio.h>

#include "fw/plan.h"

#define FW_OUT_MAX	(16u * 1024 * 1024)	/* captured bytes per stream; more is dropped */

struct fw_res {
	int	 status;	/* exit status; 128 + signal; -1 when it could not be run */
	int	 exec_errno;	/* status -1: why (ENOENT: not in PATH) */
	char	*out;		/* NUL-terminated, never NULL after fw_run() returned 0 */
	size_t	 outlen;
	char	*err;
	size_t	 errlen;
};

/* Run argv (argv[0] looked up in PATH) with `input` (or /dev/null) as stdin.
 * 0 (see res->status), or -1 with errno (pipe, fork, memory). */
int	fw_run(char *const argv[], const char *input, struct fw_res *res);
void	fw_res_free(struct fw_res *);

/* Did a check say "present"? (plan.h: FW_CHECK_*; a check that could not run: absent) */
int	fw_check_present(const struct fw_step *, const struct fw_res *);

/*
 * Execute the plan's steps in order; the first failure stops it unless
 * keep_going (down: remove all that can be removed). Failures are reported
 * on errf with the step's `what` and hint. Returns the number of failed steps.
 */
unsigned fw_exec(const struct fw_plan *, int keep_going, FILE *errf);

#endif

/*
 * rulesfile: the rules_file on disk.
 *
 * Loading: a file that does not exist yet is an empty ruleset; errors are
 * "FILE:LINE: message". Saving is crash-safe (SPEC.md "Live rules"): the
 * whole ruleset goes to a temporary file in the same directory, which is
 * fsync'd and renamed over the old one, then the directory is fsync'd, so
 * after a crash at any moment the file is the old one or the new one, never
 * a mix, and a change acknowledged after rulesfile_save() returned survives.
 * Never logs.
 */
#ifndef SMTPWALL_RULESFILE_H
#define SMTPWALL_RULESFILE_H

#include <stdio.h>
#include "../rules/rules.h"

#define RULESFILE_ERR_LEN	512

/* A new ruleset, or NULL with every error written to errf; *nerr counts them. */
struct ruleset *rulesfile_load(const char *path, FILE *errf, int *nerr);

/*
 * Write rs to path as described above. 0 (err[0] != '\0' then holds a
 * warning: the directory could not be fsync'd), or -1 with err set and the
 * old file untouched.
 */
int	rulesfile_save(const char *path, const struct ruleset *rs, char err[RULESFILE_ERR_LEN]);

#endif

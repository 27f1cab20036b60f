/*
 * plan: smtpwall.conf -> the exact commands smtpwall-firewall runs
 * (docs/smtpwall-firewall.8 says what they install and why).
 *
 * A plan is a list of steps; a step is one command, or one command guarded by
 * a check ("add the jump only if -C says it is missing", "delete the ip rule
 * while it is there"). Every argv and every nft script is computed here,
 * from the configuration alone: no command is run, no file read, nothing
 * logged, so the unit tests see exactly what a root run would do, and -n
 * prints it (fw_plan_print(): a POSIX shell script that does the same).
 *
 * What smtpwall installs, and nothing else (fw_plan_down() removes each of
 * them, in both backends and both families, whatever the configuration says):
 *   nft table `inet smtpwall`;
 *   iptables/ip6tables chain SMTPWALL in raw, nat and mangle, each jumped to
 *   from the built-in PREROUTING chain;
 *   `ip [-6] rule fwmark CONFIG_FW_MARK lookup CONFIG_FW_TABLE` and
 *   `ip [-6] route local default dev lo table CONFIG_FW_TABLE`.
 *
 * fw_plan_up() installs the pieces the configuration asks for, then removes
 * the named pieces it does not ask for (left by a previous up with another
 * backend, mode, nfqueue or listen): one run replaces any previous install.
 *
 * Words and texts live in the plan itself: a plan is neither copied nor
 * shared; fw_plan_new() allocates one (it is large), free() frees it.
 */
#ifndef SMTPWALL_FW_PLAN_H
#define SMTPWALL_FW_PLAN_H

#include <stddef.h>
#include <stdio.h>

struct config;

#define FW_NFT_TABLE		"smtpwall"	/* nft table inet smtpwall */
#define FW_IPT_CHAIN		"SMTPWALL"	/* iptables user chain, tables raw, nat, mangle */
#define FW_STEPS_MAX		640
#define FW_WORDS_MAX		12288
#define FW_TEXT_MAX		(192 * 1024)
#define FW_NOTES_MAX		4
#define FW_STEP_CMDS		2
#define FW_ERR_LEN		512

enum fw_backend { FW_BACKEND_NFT = 0, FW_BACKEND_IPTABLES };

struct fw_opts {
	enum fw_backend	backend;
	/*
	 * nft backend only: nft cannot load a queue expression here (kernel
	 * without nft_queue, see fw_probe_script()), so the NFQUEUE rule goes
	 * into iptables/ip6tables table raw, chain SMTPWALL.
	 */
	int		queue_via_iptables;
};

enum fw_step_kind {
	FW_STEP_RUN = 0,	/* run the commands; a failure is an error */
	FW_STEP_ENSURE,		/* run the commands only if the check says absent */
	FW_STEP_REMOVE,		/* while the check says present, run the commands (bounded) */
};

enum fw_check {
	FW_CHECK_STATUS = 0,	/* present: the check exits 0 */
	FW_CHECK_OUTPUT,	/* present: exits 0 and prints something */
	FW_CHECK_LINE,		/* present: exits 0 and prints a line "PRIO:<space>check_line" (ip rule) */
};

/* A check that cannot run (command not found) says "absent": what a missing
 * tool would have had to install is not there. */
#define FW_REMOVE_MAX		32	/* REMOVE: at most this many rounds */

struct fw_step {
	enum fw_step_kind	 kind;
	const char		*what;		/* "adding the IPv4 REDIRECT rule": for error messages */
	const char		*hint;		/* advice printed when the step fails, or NULL */
	int			 check;		/* word index of the check's argv, or -1 */
	enum fw_check		 check_how;
	const char		*check_line;	/* FW_CHECK_LINE */
	int			 cmd[FW_STEP_CMDS];	/* word indexes of the argvs, -1 unused */
	const char		*input;		/* stdin of cmd[0] (nft -f -), or NULL */
};

struct fw_plan {
	struct fw_step	 steps[FW_STEPS_MAX];
	unsigned	 nsteps;
	const char	*notes[FW_NOTES_MAX];	/* for stderr, without "smtpwall-firewall: " or LF */
	unsigned	 nnotes;
	char		*words[FW_WORDS_MAX];	/* NULL-terminated argvs, back to back */
	unsigned	 nwords;
	char		 text[FW_TEXT_MAX];
	size_t		 ntext;
	int		 overflow;
};

/* An empty plan (calloc); NULL on ENOMEM. free() it. */
struct fw_plan	*fw_plan_new(void);
void		 fw_plan_reset(struct fw_plan *);

/*
 * The up plan for cf under opts, into an empty or reset plan. 0; or -1 when
 * the configuration cannot be installed (a loopback or IPv4-mapped listen
 * address, no listen address at all), with err saying why and naming the
 * file and the listen value ("FILE: listen = 127.0.0.1:10025: ...").
 */
int		 fw_plan_up(struct fw_plan *, const struct config *cf, const struct fw_opts *,
		    char *err, size_t errlen);

/* The down plan: remove every named piece, in both backends and families. 0, or -1 (overflow). */
int		 fw_plan_down(struct fw_plan *);

/* The argv at word index i (NULL-terminated). */
char *const	*fw_plan_argv(const struct fw_plan *, int i);

/* The plan as a POSIX sh script (what -n prints). */
void		 fw_plan_print(const struct fw_plan *, FILE *);
/* One step, as fw_plan_print() writes it (for messages: no trailing LF, nft input not included). */
void		 fw_step_print(const struct fw_plan *, const struct fw_step *, FILE *, int with_input);

/*
 * The script `nft -c -f -` checks to learn whether nft can load the queue
 * rule cf needs (the kernel may lack nft_queue: nft then fails "No such file
 * or directory"). A scratch table that -c never commits. Into buf (NUL-
 * terminated); -1 if it does not fit or cf has no nfqueue.
 */
int		 fw_probe_script(const struct config *cf, char *buf, size_t len);

/* "nft" / "iptables" for messages; NULL for an unknown name in fw_backend_parse (-1). */
const char	*fw_backend_name(enum fw_backend);
int		 fw_backend_parse(const char *, enum fw_backend *);

#endif

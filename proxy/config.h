/*
 * config: smtpwall.conf -> struct config (SPEC.md "Configuration").
 *
 * `key = value` lines, '#' starts a comment (outside nothing: values never
 * contain '#'), blank lines ignored, lists comma- and/or space-separated.
 * Only keys marked (list) in SPEC.md may repeat; repeating a list key appends.
 * Unknown keys, bad values and repeated scalar keys are errors.
 *
 * Every error is written as one line "FILE:LINE: message\n" to the caller's
 * FILE * (stderr for smtpwalld -t; a memstream for reload) and parsing goes
 * on, so one run reports every error. Every key of SPEC.md is recognised and
 * validated, including those the daemon uses only in later features.
 */
#ifndef SMTPWALL_CONFIG_H
#define SMTPWALL_CONFIG_H

#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>
#include "../rules/rules.h"

#define CONFIG_DEFAULT_PATH	"/etc/smtpwall/smtpwall.conf"
#define CONFIG_WORKERS_MAX	64	/* event-loop threads */
#define CONFIG_WORKERS_MAX_STR	"64"
#define CONFIG_MAX_LISTEN	16
#define CONFIG_MAX_COMMANDS	32
#define CONFIG_VERB_MAX		16

/*
 * The contract between smtpwalld and smtpwall-firewall. With nfqueue, the
 * daemon sets CONFIG_FW_MARK on every SYN it accepts, and the REDIRECT /
 * TPROXY rules take only packets with that mark: a SYN that bypassed the
 * queue (nfqueue_fail = open, daemon not running or queue full) goes to the
 * server directly, never to a port where nothing listens. Under mode =
 * tproxy, the same mark routes through table CONFIG_FW_TABLE (local
 * delivery: `ip rule fwmark MARK lookup TABLE`, `local default dev lo`).
 */
#define CONFIG_FW_MARK		0x2525u
#define CONFIG_FW_TABLE		2525

enum config_mode { CONFIG_MODE_REDIRECT = 0, CONFIG_MODE_TPROXY };
enum config_starttls { CONFIG_STARTTLS_STRIP = 0, CONFIG_STARTTLS_ALLOW };
enum config_bare_lf { CONFIG_BARE_LF_REJECT = 0, CONFIG_BARE_LF_NORMALIZE };
enum config_nfq_fail { CONFIG_NFQ_FAIL_OPEN = 0, CONFIG_NFQ_FAIL_CLOSED };

struct config {
	char			 path[4096];		/* the file it was read from */

	struct sockaddr_storage	 listen[CONFIG_MAX_LISTEN];	/* "0.0.0.0:10025", "[::]:10025" */
	socklen_t		 listen_len[CONFIG_MAX_LISTEN];
	unsigned		 nlisten;

	char			 interfaces[16][16];	/* IFNAMSIZ; empty list = all but lo */
	unsigned		 ninterfaces;

	enum config_mode	 mode;
	int			 upstream_fixed;	/* 0: "original" */
	struct sockaddr_storage	 upstream;		/* when upstream_fixed: HOST:PORT (numeric host) */
	socklen_t		 upstream_len;

	struct rules_domainset	*local_domains;		/* never NULL after config_init */
	struct rules_cidrset	*trusted_networks;	/* default 127.0.0.0/8, ::1/128 (replaced, not appended, by the first line that sets it) */
	int			 auth_relay;		/* default 1 */
	char			 rules_file[4096];	/* default /var/lib/smtpwall/rules */
	char			 control_socket[108];	/* default /run/smtpwall/control.sock */
	char			 control_group[64];	/* "" = none */

	int			 nfqueue_on;		/* nfqueue = off | N | N-M */
	unsigned		 nfqueue_first, nfqueue_last;
	enum config_nfq_fail	 nfqueue_fail;
	unsigned		 client_rate;		/* 0 = off */
	unsigned		 client_rate_per_s;	/* window in seconds: 1 (/s), 60 (/min), 3600 (/h) */

	char			 capture_dir[4096];	/* default /var/lib/smtpwall/captures */
	char			 capture_interface[16];	/* default "any" */
	uint64_t		 capture_buffer;	/* bytes, default 4M */
	unsigned		 capture_max_files;	/* 1000 */
	uint64_t		 capture_max_bytes;	/* 1G */
	int			 capture_redact;	/* 1 */

	enum config_starttls	 starttls;
	int			 xclient;		/* 0 off */
	unsigned		 max_sessions;		/* 10000 */
	unsigned		 max_sessions_per_client;	/* 50 */
	unsigned		 max_recipients;	/* 100 */
	uint64_t		 max_message_size;	/* 52428800 */
	unsigned		 max_line_length;	/* 2048, CRLF included; at least 512 (RFC 5321 4.5.3.1.4) */
	char			 commands[CONFIG_MAX_COMMANDS][CONFIG_VERB_MAX];	/* upper case */
	unsigned		 ncommands;
	enum config_bare_lf	 bare_lf;
	unsigned		 timeout_connect;	/* seconds: 30 */
	unsigned		 timeout_idle;		/* 300 */
	unsigned		 timeout_server;	/* 600 */
	unsigned		 workers;		/* 0 = number of CPUs */
	unsigned		 shutdown_timeout;	/* 30 */
	int			 log_level;		/* enum log_level values: error 0, warning 1, info 2, debug 3 */
};

/* Defaults of SPEC.md. 0, or -1 on ENOMEM. */
int	config_init(struct config *cf);
void	config_free(struct config *cf);		/* frees the sets; the struct may be re-inited */

/*
 * Parse `text` (read from `path`, used only in messages) over defaults already
 * set by config_init(). Returns the number of errors (0 = valid), each written
 * to errf as "PATH:LINE: message\n".
 */
int	config_parse(struct config *cf, const char *path, const char *text, size_t len, FILE *errf);

/* config_init + read the file + config_parse. A file that cannot be read is
 * one error "PATH: strerror". Returns the number of errors. */
int	config_load(struct config *cf, const char *path, FILE *errf);

/* 1 if VERB (as written, any case) is in `commands`. */
int	config_command_allowed(const struct config *cf, const char *verb, size_t len);

#endif

/*
 * log: the daemon's only logger, to stderr (journald under systemd), one
 * line per call, prefixed "smtpwalld[PID]: LEVEL: " unless stderr is the
 * journal (then "<N>" syslog priority prefixes, sd-daemon style).
 *
 * The only mutable globals of the program live here: the level.
 * fatal()/fatalx() are for start-up and broken invariants only: a failure in
 * one connection never ends the process.
 */
#ifndef SMTPWALL_LOG_H
#define SMTPWALL_LOG_H

#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARNING,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

void	log_init(enum log_level lvl);
void	log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
int	log_enabled(enum log_level lvl);

/* log_warn appends ": strerror(errno)"; the x variants do not. */
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Escape untrusted bytes for a log line: printable ASCII except '\\', '"'
 * and space is kept, everything else becomes \xHH (strnvis-like). Always
 * NUL-terminates; truncates (ending with "...") when dst is too small.
 * Returns dst.
 */
char	*log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

#endif

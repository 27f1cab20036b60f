/*
 * log: the daemon's logger (log.h).
 *
 * Owns: the only mutable globals of the program, the level and whether
 * stderr is the journal. Each message becomes one line built in a stack
 * buffer (LOG_LINE_MAX, truncated with "...") and written with one write(2),
 * so lines from several worker threads never interleave.
 *
 * Format: "smtpwalld[PID]: error: msg" (no level word for info). When
 * stderr is the systemd journal (JOURNAL_STREAM names stderr's device and
 * inode, as sd_journal_stream_fd documents), "<3>msg" with the syslog
 * priority instead: journald adds the program name and pid itself.
 *
 * Never: allocates, changes errno for its caller, or escapes its message
 * (callers escape what came from the network with log_escape()); only a CR
 * or LF inside it becomes a space, so that one call stays one line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX	4096
#define LOG_TRUNC	"..."

static atomic_int log_level_cur = LOG_LVL_INFO;
static atomic_int log_journal = -1;	/* -1: not determined yet */

/* JOURNAL_STREAM="DEV:INO" is inherited by children; trust it only if it is our stderr. */
static int
log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (env == NULL || *env == '\0')
		return 0;
	if (sscanf(env, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static int
log_is_journal(void)
{
	int j = atomic_load_explicit(&log_journal, memory_order_relaxed);

	if (j == -1) {
		j = log_stderr_is_journal();
		atomic_store_explicit(&log_journal, j, memory_order_relaxed);
	}
	return j;
}

void
log_init(enum log_level lvl)
{
	int saved = errno;

	log_set_level(lvl);
	atomic_store_explicit(&log_journal, log_stderr_is_journal(), memory_order_relaxed);
	errno = saved;
}

void
log_set_level(enum log_level lvl)
{
	atomic_store_explicit(&log_level_cur, (int)lvl, memory_order_relaxed);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&log_level_cur, memory_order_relaxed);
}

int
log_enabled(enum log_level lvl)
{
	return (int)lvl <= atomic_load_explicit(&log_level_cur, memory_order_relaxed);
}

/* ---- line building ------------------------------------------------------ */

struct log_line {
	char	buf[LOG_LINE_MAX];
	size_t	len;		/* bytes used, newline not counted */
	int	trunc;
};

/* Room for text: one byte is kept for the newline. */
static size_t
log_line_room(const struct log_line *l)
{
	return sizeof(l->buf) - 1 - l->len;
}

static void log_line_vadd(struct log_line *, const char *, va_list)
    __attribute__((format(printf, 2, 0)));

static void
log_line_vadd(struct log_line *l, const char *fmt, va_list ap)
{
	size_t room = log_line_room(l);
	int n;

	if (l->trunc)
		return;
	/* vsnprintf wants room for its NUL: the newline's byte serves */
	n = vsnprintf(l->buf + l->len, room + 1, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n > room) {
		l->len += room;
		l->trunc = 1;
	} else {
		l->len += (size_t)n;
	}
}

static void log_line_add(struct log_line *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
log_line_add(struct log_line *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line_vadd(l, fmt, ap);
	va_end(ap);
}

static void
log_line_write(struct log_line *l)
{
	const char *p = l->buf;
	size_t left, i;
	ssize_t n;

	for (i = 0; i < l->len; i++)
		if (l->buf[i] == '\n' || l->buf[i] == '\r')
			l->buf[i] = ' ';
	if (l->trunc)
		memcpy(l->buf + l->len - strlen(LOG_TRUNC), LOG_TRUNC, strlen(LOG_TRUNC));
	l->buf[l->len++] = '\n';
	left = l->len;
	while (left > 0) {
		n = write(STDERR_FILENO, p, left);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return;		/* nowhere left to report it */
		}
		p += n;
		left -= (size_t)n;
	}
}

static const char *
log_level_word(enum log_level lvl)
{
	switch (lvl) {
	case LOG_LVL_ERROR:
		return "error: ";
	case LOG_LVL_WARNING:
		return "warning: ";
	case LOG_LVL_INFO:
		return "";
	case LOG_LVL_DEBUG:
		return "debug: ";
	}
	return "";
}

static int
log_syslog_prio(enum log_level lvl)
{
	switch (lvl) {
	case LOG_LVL_ERROR:
		return 3;
	case LOG_LVL_WARNING:
		return 4;
	case LOG_LVL_INFO:
		return 6;
	case LOG_LVL_DEBUG:
		return 7;
	}
	return 6;
}

static void log_vemit(enum log_level, int, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

/* errnum: append ": strerror(errnum)" when not 0. */
static void
log_vemit(enum log_level lvl, int errnum, const char *fmt, va_list ap)
{
	struct log_line l;
	char ebuf[128];

	l.len = 0;
	l.trunc = 0;
	if (log_is_journal())
		log_line_add(&l, "<%d>", log_syslog_prio(lvl));
	else
		log_line_add(&l, "smtpwalld[%ld]: %s", (long)getpid(), log_level_word(lvl));
	log_line_vadd(&l, fmt, ap);
	if (errnum != 0)
		log_line_add(&l, ": %s", strerror_r(errnum, ebuf, sizeof(ebuf)));
	log_line_write(&l);
}

/* ---- the public calls ------------------------------------------------------ */

#define LOG_EMIT(lvl, errnum) do {					\
	int saved_ = errno;						\
	va_list ap_;							\
									\
	if (log_enabled(lvl)) {						\
		va_start(ap_, fmt);					\
		log_vemit((lvl), (errnum) ? saved_ : 0, fmt, ap_);	\
		va_end(ap_);						\
	}								\
	errno = saved_;							\
} while (0)

void
log_warn(const char *fmt, ...)
{
	LOG_EMIT(LOG_LVL_WARNING, 1);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_EMIT(LOG_LVL_WARNING, 0);
}

void
log_error(const char *fmt, ...)
{
	LOG_EMIT(LOG_LVL_ERROR, 0);
}

void
log_info(const char *fmt, ...)
{
	LOG_EMIT(LOG_LVL_INFO, 0);
}

void
log_debug(const char *fmt, ...)
{
	LOG_EMIT(LOG_LVL_DEBUG, 0);
}

void
fatal(const char *fmt, ...)
{
	LOG_EMIT(LOG_LVL_ERROR, 1);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_EMIT(LOG_LVL_ERROR, 0);
	exit(1);
}

/* ---- escaping ------------------------------------------------------------ */

static int
log_keep_byte(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '\\' && c != '"';
}

static size_t
log_escaped_len(const char *src, size_t srclen)
{
	size_t i, n = 0;

	for (i = 0; i < srclen; i++)
		n += log_keep_byte((unsigned char)src[i]) ? 1 : 4;
	return n;
}

char *
log_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	const size_t tl = strlen(LOG_TRUNC);
	size_t i, o = 0, limit, dots = 0;

	if (dstlen == 0)
		return dst;
	limit = dstlen - 1;
	if (log_escaped_len(src, srclen) > limit) {
		/* whole escapes only, then "..." (or what fits of it) */
		dots = limit < tl ? limit : tl;
		limit -= dots;
	}
	for (i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];

		if (log_keep_byte(c)) {
			if (o + 1 > limit)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 > limit)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		}
	}
	memcpy(dst + o, LOG_TRUNC, dots);
	o += dots;
	dst[o] = '\0';
	return dst;
}

/*
 * rulesfile.c: reading and crash-safe rewriting of the rules_file (see rulesfile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rulesfile.h"

#define RULESFILE_MAX		(512u * 1024 * 1024)	/* a larger file is refused */
#define RULESFILE_WBUF		(64 * 1024)

struct rulesfile_err {
	const char	*path;
	FILE		*out;
	int		 count;
};

static void
rulesfile_report(void *arg, unsigned line, const char *msg)
{
	struct rulesfile_err *e = arg;

	fprintf(e->out, "%s:%u: %s\n", e->path, line, msg);
	e->count++;
}

struct ruleset *
rulesfile_load(const char *path, FILE *errf, int *nerr)
{
	struct rulesfile_err e = { path, errf, 0 };
	struct ruleset *rs;
	struct stat st;
	char *text;
	ssize_t n;
	size_t got = 0;
	int fd;

	*nerr = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return rules_empty();	/* created by the first change */
		fprintf(errf, "%s: %s\n", path, strerror(errno));
		*nerr = 1;
		return NULL;
	}
	if (fstat(fd, &st) == -1 || (size_t)st.st_size > RULESFILE_MAX) {
		fprintf(errf, "%s: %s\n", path, errno ? strerror(errno) : "file too large");
		close(fd);
		*nerr = 1;
		return NULL;
	}
	if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
		fprintf(errf, "%s: out of memory\n", path);
		close(fd);
		*nerr = 1;
		return NULL;
	}
	while (got < (size_t)st.st_size &&
	    (n = read(fd, text + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	rs = rules_parse(text, got, rulesfile_report, &e);
	free(text);
	*nerr = e.count;
	if (rs == NULL && e.count == 0) {
		fprintf(errf, "%s: out of memory\n", path);
		*nerr = 1;
	}
	return rs;
}

/* Buffered writer for rules_write(). */
struct rulesfile_out {
	int	fd;
	char	buf[RULESFILE_WBUF];
	size_t	len;
};

static int
rulesfile_flush(struct rulesfile_out *o)
{
	size_t off = 0;
	ssize_t n;

	while (off < o->len) {
		if ((n = write(o->fd, o->buf + off, o->len - off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)n;
	}
	o->len = 0;
	return 0;
}

static int
rulesfile_put(void *arg, const char *p, size_t n)
{
	struct rulesfile_out *o = arg;

	while (n > 0) {
		size_t k = sizeof(o->buf) - o->len;

		if (k == 0) {
			if (rulesfile_flush(o) == -1)
				return -1;
			continue;
		}
		if (k > n)
			k = n;
		memcpy(o->buf + o->len, p, k);
		o->len += k;
		p += k;
		n -= k;
	}
	return 0;
}

int
rulesfile_save(const char *path, const struct ruleset *rs, char err[RULESFILE_ERR_LEN])
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	struct rulesfile_out *o;
	int dfd, saved;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
	    snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
		snprintf(err, RULESFILE_ERR_LEN, "%.300s: path too long", path);
		return -1;
	}
	if ((o = malloc(sizeof(*o))) == NULL) {
		snprintf(err, RULESFILE_ERR_LEN, "%.300s: out of memory", path);
		return -1;
	}
	o->len = 0;
	if ((o->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) == -1) {
		snprintf(err, RULESFILE_ERR_LEN, "cannot write %.300s: %.150s", tmp, strerror(errno));
		free(o);
		return -1;
	}
	if (rules_write(rs, rulesfile_put, o) == -1 || rulesfile_flush(o) == -1 ||
	    fsync(o->fd) == -1) {
		saved = errno;
		snprintf(err, RULESFILE_ERR_LEN, "cannot write %.300s: %.150s", tmp, strerror(saved));
		goto bad;
	}
	if (close(o->fd) == -1) {
		o->fd = -1;
		snprintf(err, RULESFILE_ERR_LEN, "cannot write %.300s: %.150s", tmp, strerror(errno));
		goto bad;
	}
	o->fd = -1;
	if (rename(tmp, path) == -1) {
		snprintf(err, RULESFILE_ERR_LEN, "cannot rename %.150s to %.150s: %.150s", tmp, path,
		    strerror(errno));
		goto bad;
	}
	free(o);
	/*
	 * The rename itself must reach the disk before we say ok. If that
	 * fails the new file is already in place: report a warning, not a
	 * failure, so that memory and disk agree.
	 */
	err[0] = '\0';
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1)
		snprintf(err, RULESFILE_ERR_LEN, "cannot sync directory of %.300s: %.150s", path,
		    strerror(errno));
	if (dfd != -1)
		close(dfd);
	return 0;
bad:
	if (o->fd != -1)
		close(o->fd);
	unlink(tmp);
	free(o);
	return -1;
}

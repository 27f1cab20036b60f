/*
 * dir.c: the capture directory. cap_file_name makes a capture file's name;
 * cap_dir_prune keeps the directory within capture_max_files and
 * capture_max_bytes, oldest first.
 *
 * Owns nothing between calls. Never logs (each removal is reported through
 * the caller's function), never follows a symbolic link, never counts or
 * touches a directory entry whose name is not exactly of cap_file_name's
 * shape or which is not a regular file, and never removes `keep`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include "capture/capture.h"

#define CAP_TIME_LEN	16	/* YYYYMMDDTHHMMSSZ */
#define CAP_ID_LEN	16
#define CAP_ADDR_MAX	INET6_ADDRSTRLEN
#define CAP_SUFFIX	".pcap"

struct cap_dent {
	char		*cd_name;
	uint64_t	 cd_size;
};

/* The client's address as it goes in a file name, into a[CAP_ADDR_MAX]. */
static int
cap_name_addr(const struct sockaddr *sa, char *a)
{
	const struct sockaddr_in6 *sin6;
	char *p;

	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		return inet_ntop(AF_INET, &sin->sin_addr, a, CAP_ADDR_MAX) == NULL ? -1 : 0;
	}
	if (sa->sa_family != AF_INET6)
		return -1;
	sin6 = (const struct sockaddr_in6 *)sa;
	if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		return inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], a, CAP_ADDR_MAX) == NULL ?
		    -1 : 0;
	if (inet_ntop(AF_INET6, &sin6->sin6_addr, a, CAP_ADDR_MAX) == NULL)
		return -1;
	for (p = a; *p != '\0'; p++)
		if (*p == ':')
			*p = '_';
	return 0;
}

int
cap_file_name(char *buf, size_t len, time_t t, uint64_t session_id,
    const struct sockaddr *client)
{
	char ts[CAP_TIME_LEN + 1], addr[CAP_ADDR_MAX];
	struct tm tm;
	int n;

	if (len > 0)
		buf[0] = '\0';
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm) != CAP_TIME_LEN ||
	    cap_name_addr(client, addr) == -1)
		return -1;
	n = snprintf(buf, len, "%s-%016llx-%s" CAP_SUFFIX, ts,
	    (unsigned long long)session_id, addr);
	if (n < 0 || (size_t)n >= len) {
		if (len > 0)
			buf[0] = '\0';
		return -1;
	}
	return n;
}

static int
cap_all(const char *s, size_t n, const char *set)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(set, s[i]) == NULL)
			return 0;
	return 1;
}

#define CAP_DIGITS	"0123456789"
#define CAP_HEX		"0123456789abcdefABCDEF"

/* 1 if name has exactly the shape cap_file_name gives. */
static int
cap_name_is_capture(const char *name)
{
	size_t n = strlen(name), sfx = sizeof(CAP_SUFFIX) - 1;
	size_t head = CAP_TIME_LEN + 1 + CAP_ID_LEN + 1, alen;

	if (n <= head + sfx || strcmp(name + n - sfx, CAP_SUFFIX) != 0)
		return 0;
	alen = n - head - sfx;
	if (alen > CAP_ADDR_MAX - 1)
		return 0;
	return cap_all(name, 8, CAP_DIGITS) && name[8] == 'T' &&
	    cap_all(name + 9, 6, CAP_DIGITS) && name[15] == 'Z' && name[16] == '-' &&
	    cap_all(name + 17, CAP_ID_LEN, CAP_HEX) && name[33] == '-' &&
	    cap_all(name + head, alen, CAP_HEX "._");
}

static int
cap_dent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cap_dent *)a)->cd_name,
	    ((const struct cap_dent *)b)->cd_name);
}

static void
cap_dents_free(struct cap_dent *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].cd_name);
	free(v);
}

/* The capture files of the directory open as dfd, unsorted. 0, or -1 with err. */
static int
cap_dir_list(int dfd, const char *dir, struct cap_dent **out, size_t *outn,
    char err[CAP_ERR_LEN])
{
	struct cap_dent *v = NULL, *nv;
	size_t n = 0, cap = 0;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;

	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		snprintf(err, CAP_ERR_LEN, "%s: %s", dir, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	rewinddir(d);
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno == 0)
				break;
			snprintf(err, CAP_ERR_LEN, "readdir %s: %s", dir, strerror(errno));
			goto fail;
		}
		if (!cap_name_is_capture(de->d_name))
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno == ENOENT)
				continue;
			snprintf(err, CAP_ERR_LEN, "%s/%s: %s", dir, de->d_name, strerror(errno));
			goto fail;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL)
				goto nomem;
			v = nv;
		}
		if ((v[n].cd_name = strdup(de->d_name)) == NULL)
			goto nomem;
		v[n++].cd_size = (uint64_t)st.st_size;
	}
	closedir(d);
	*out = v;
	*outn = n;
	return 0;
nomem:
	snprintf(err, CAP_ERR_LEN, "%s: %s", dir, strerror(ENOMEM));
fail:
	closedir(d);
	cap_dents_free(v, n);
	return -1;
}

int
cap_dir_prune(const char *dir, unsigned max_files, uint64_t max_bytes,
    const char *keep, cap_prune_fn *fn, void *arg, char err[CAP_ERR_LEN])
{
	struct cap_dent *v = NULL;
	uint64_t total = 0;
	size_t n = 0, files, i;
	int dfd, removed = 0;

	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, CAP_ERR_LEN, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (cap_dir_list(dfd, dir, &v, &n, err) == -1) {
		close(dfd);
		return -1;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cap_dent_cmp);
	for (i = 0; i < n; i++)
		total += v[i].cd_size;
	files = n;
	for (i = 0; i < n && (files > max_files || total > max_bytes); i++) {
		if (keep != NULL && strcmp(v[i].cd_name, keep) == 0)
			continue;
		if (unlinkat(dfd, v[i].cd_name, 0) == -1) {
			if (errno == ENOENT) {	/* gone meanwhile: no longer counts */
				files--;
				total -= v[i].cd_size;
				continue;
			}
			snprintf(err, CAP_ERR_LEN, "unlink %s/%s: %s", dir, v[i].cd_name,
			    strerror(errno));
			removed = -1;
			break;
		}
		files--;
		total -= v[i].cd_size;
		removed++;
		if (fn != NULL)
			fn(arg, v[i].cd_name, v[i].cd_size);
	}
	cap_dents_free(v, n);
	close(dfd);
	return removed;
}

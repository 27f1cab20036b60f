/*
 * run: fork/execvp with captured output, and a plan's steps executed
 * (see run.h). The only file of fw/ besides main.c that touches processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fw/run.h"

#define FWR_PREFIX	"smtpwall-firewall: "

struct fwr_buf {
	char	*b;
	size_t	 len, cap;
};

static int
fwr_append(struct fwr_buf *o, const char *s, size_t n)
{
	if (o->len + n > FW_OUT_MAX)
		n = FW_OUT_MAX - o->len;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		char *nb;

		while (cap < o->len + n + 1)
			cap *= 2;
		if ((nb = realloc(o->b, cap)) == NULL)
			return -1;
		o->b = nb;
		o->cap = cap;
	}
	memcpy(o->b + o->len, s, n);
	o->len += n;
	o->b[o->len] = '\0';
	return 0;
}

static void
fwr_close(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

int
fw_run(char *const argv[], const char *input, struct fw_res *res)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, ex[2] = { -1, -1 };
	struct fwr_buf ob = { NULL, 0, 0 }, eb = { NULL, 0, 0 };
	size_t inlen = input ? strlen(input) : 0, inoff = 0;
	int saved, st, e, n;
	pid_t pid;

	memset(res, 0, sizeof *res);
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
	    pipe2(err, O_CLOEXEC) == -1 || pipe2(ex, O_CLOEXEC) == -1)
		goto fail;
	if (fwr_append(&ob, "", 0) == -1 || fwr_append(&eb, "", 0) == -1)
		goto fail;
	if ((pid = fork()) == -1)
		goto fail;
	if (pid == 0) {
		/* The child: only async-signal-safe calls until exec. */
		if (dup2(in[0], 0) == -1 || dup2(out[1], 1) == -1 || dup2(err[1], 2) == -1)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		e = errno;
		if (write(ex[1], &e, sizeof e) < 0)
			_exit(127);
		_exit(127);
	}
	fwr_close(&in[0]);
	fwr_close(&out[1]);
	fwr_close(&err[1]);
	fwr_close(&ex[1]);
	if (inlen == 0)
		fwr_close(&in[1]);
	else
		fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);

	while (out[0] != -1 || err[0] != -1 || in[1] != -1) {
		struct pollfd pf[3];
		int np = 0, ii = -1, io = -1, ie = -1;

		if (in[1] != -1) {
			pf[np] = (struct pollfd){ .fd = in[1], .events = POLLOUT };
			ii = np++;
		}
		if (out[0] != -1) {
			pf[np] = (struct pollfd){ .fd = out[0], .events = POLLIN };
			io = np++;
		}
		if (err[0] != -1) {
			pf[np] = (struct pollfd){ .fd = err[0], .events = POLLIN };
			ie = np++;
		}
		if (poll(pf, (nfds_t)np, -1) == -1) {
			if (errno == EINTR)
				continue;
			goto fail_child;
		}
		if (ii != -1 && pf[ii].revents) {
			ssize_t w = write(in[1], input + inoff, inlen - inoff);

			if (w > 0)
				inoff += (size_t)w;
			if ((w == -1 && errno != EAGAIN && errno != EINTR) || inoff == inlen)
				fwr_close(&in[1]);	/* done, or the child does not read (EPIPE) */
		}
		if (io != -1 && pf[io].revents) {
			char buf[8192];
			ssize_t r = read(out[0], buf, sizeof buf);

			if (r > 0) {
				if (fwr_append(&ob, buf, (size_t)r) == -1)
					goto fail_child;
			} else if (r == 0 || errno != EINTR) {
				fwr_close(&out[0]);
			}
		}
		if (ie != -1 && pf[ie].revents) {
			char buf[8192];
			ssize_t r = read(err[0], buf, sizeof buf);

			if (r > 0) {
				if (fwr_append(&eb, buf, (size_t)r) == -1)
					goto fail_child;
			} else if (r == 0 || errno != EINTR) {
				fwr_close(&err[0]);
			}
		}
	}
	while (waitpid(pid, &st, 0) == -1) {
		if (errno != EINTR)
			goto fail;
	}
	do {
		n = (int)read(ex[0], &e, sizeof e);
	} while (n == -1 && errno == EINTR);
	fwr_close(&ex[0]);
	if (n == (int)sizeof e) {
		res->status = -1;
		res->exec_errno = e;
	} else if (WIFEXITED(st)) {
		res->status = WEXITSTATUS(st);
	} else {
		res->status = 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	}
	res->out = ob.b;
	res->outlen = ob.len;
	res->err = eb.b;
	res->errlen = eb.len;
	return 0;

fail_child:
	saved = errno;
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	errno = saved;
fail:
	saved = errno;
	fwr_close(&in[0]);
	fwr_close(&in[1]);
	fwr_close(&out[0]);
	fwr_close(&out[1]);
	fwr_close(&err[0]);
	fwr_close(&err[1]);
	fwr_close(&ex[0]);
	fwr_close(&ex[1]);
	free(ob.b);
	free(eb.b);
	errno = saved;
	return -1;
}

void
fw_res_free(struct fw_res *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
}

/* "32765:\tfrom all fwmark 0x2525 lookup 2525" matches "from all fwmark 0x2525 lookup 2525". */
static int
fwr_line_matches(const char *line, size_t len, const char *want)
{
	size_t i = 0, wl = strlen(want);

	while (i < len && line[i] >= '0' && line[i] <= '9')
		i++;
	if (i == 0 || i >= len || line[i] != ':')
		return 0;
	i++;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	while (len > i && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	return len - i == wl && memcmp(line + i, want, wl) == 0;
}

int
fw_check_present(const struct fw_step *s, const struct fw_res *r)
{
	const char *p, *e;

	if (r->status != 0)
		return 0;
	switch (s->check_how) {
	case FW_CHECK_STATUS:
		return 1;
	case FW_CHECK_OUTPUT:
		for (p = r->out; p < r->out + r->outlen; p++)
			if (*p != ' ' && *p != '\t' && *p != '\n')
				return 1;
		return 0;
	case FW_CHECK_LINE:
		for (p = r->out; p < r->out + r->outlen; p = e + 1) {
			if ((e = memchr(p, '\n', (size_t)(r->out + r->outlen - p))) == NULL)
				e = r->out + r->outlen;
			if (fwr_line_matches(p, (size_t)(e - p), s->check_line))
				return 1;
		}
		return 0;
	}
	return 0;
}

/* Every line of text, prefixed. */
static void
fwr_lines(FILE *errf, const char *what, const char *text, size_t len)
{
	const char *p = text, *end = text + len, *e;

	while (p < end) {
		if ((e = memchr(p, '\n', (size_t)(end - p))) == NULL)
			e = end;
		if (e > p)
			fprintf(errf, FWR_PREFIX "%s: %.*s\n", what, (int)(e - p), p);
		p = e + 1;
	}
}

static void
fwr_failed(const struct fw_plan *p, const struct fw_step *s, const char *const *argv,
    const struct fw_res *r, FILE *errf)
{
	fprintf(errf, FWR_PREFIX "%s: failed: ", s->what);
	if (argv != NULL) {
		const char *const *a;

		for (a = argv; *a != NULL; a++)
			fprintf(errf, "%s%s", *a, a[1] ? " " : "");
	} else {
		fw_step_print(p, s, errf, 0);
	}
	if (r == NULL)
		fprintf(errf, ": %s\n", strerror(errno));
	else if (r->status == -1)
		fprintf(errf, ": cannot run %s: %s\n", argv ? argv[0] : "it", strerror(r->exec_errno));
	else
		fprintf(errf, " (exit status %d)\n", r->status);
	if (r != NULL)
		fwr_lines(errf, s->what, r->err, r->errlen);
	if (s->hint != NULL)
		fprintf(errf, FWR_PREFIX "%s\n", s->hint);
}

/* The step's commands in order; 0, or -1 after reporting the failure. */
static int
fwr_cmds(const struct fw_plan *p, const struct fw_step *s, FILE *errf)
{
	int i;

	for (i = 0; i < FW_STEP_CMDS && s->cmd[i] != -1; i++) {
		char *const *argv = fw_plan_argv(p, s->cmd[i]);
		struct fw_res r;

		if (fw_run(argv, i == 0 ? s->input : NULL, &r) == -1) {
			fwr_failed(p, s, (const char *const *)argv, NULL, errf);
			return -1;
		}
		if (r.status != 0) {
			fwr_failed(p, s, (const char *const *)argv, &r, errf);
			fw_res_free(&r);
			return -1;
		}
		if (r.outlen > 0)
			fwrite(r.out, 1, r.outlen, stdout);
		fwr_lines(errf, s->what, r.err, r.errlen);	/* warnings of a command that worked */
		fw_res_free(&r);
	}
	return 0;
}

/* 1 present, 0 absent, -1 the check could not even be started (reported). */
static int
fwr_check(const struct fw_plan *p, const struct fw_step *s, FILE *errf)
{
	struct fw_res r;
	int present;

	if (fw_run(fw_plan_argv(p, s->check), NULL, &r) == -1) {
		fwr_failed(p, s, (const char *const *)fw_plan_argv(p, s->check), NULL, errf);
		return -1;
	}
	present = fw_check_present(s, &r);
	fw_res_free(&r);
	return present;
}

static int
fwr_step(const struct fw_plan *p, const struct fw_step *s, FILE *errf)
{
	int i, present;

	switch (s->kind) {
	case FW_STEP_RUN:
		return fwr_cmds(p, s, errf);
	case FW_STEP_ENSURE:
		if ((present = fwr_check(p, s, errf)) == -1)
			return -1;
		return present ? 0 : fwr_cmds(p, s, errf);
	case FW_STEP_REMOVE:
		for (i = 0; i < FW_REMOVE_MAX; i++) {
			if ((present = fwr_check(p, s, errf)) == -1)
				return -1;
			if (!present)
				return 0;
			if (fwr_cmds(p, s, errf) == -1)
				return -1;
		}
		fprintf(errf, FWR_PREFIX "%s: still present after %d removals\n", s->what,
		    FW_REMOVE_MAX);
		return -1;
	}
	return -1;
}

unsigned
fw_exec(const struct fw_plan *p, int keep_going, FILE *errf)
{
	unsigned i, failed = 0;

	for (i = 0; i < p->nsteps; i++) {
		if (fwr_step(p, &p->steps[i], errf) == -1) {
			failed++;
			if (!keep_going)
				break;
		}
	}
	return failed;
}

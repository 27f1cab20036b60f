/*
 * smtpwallctl: the administrator's client of smtpwalld's control socket.
 *
 *   smtpwallctl [-s SOCKET] [-q] COMMAND [ARGUMENT ...]
 *
 * Owns main(): its own options, the command line (through args_build(),
 * which writes the protocol line or refuses with the command's usage before
 * anything is sent), one connection, one command, the answer (through
 * answer_feed()), and the exit status: 0 ok, 1 the daemon refused, 2 usage,
 * 3 the daemon not reachable or no complete answer (SPEC.md "Programs").
 *
 * Never blocks forever: the socket is non-blocking and every wait (a full
 * listen queue, the write, each read) is bounded by SCTL_TIMEOUT_MS. Never
 * dies of SIGPIPE: a daemon that closes early, or a reader of our stdout
 * that goes away (smtpwallctl rules | head), is an error like any other.
 * Links nothing of proxy/.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl/answer.h"
#include "ctl/args.h"

#define SCTL_TIMEOUT_MS		30000	/* documented in --help as "30 seconds" */
#define SCTL_RETRY_MS		100	/* between connects while the listen queue is full */
#define SCTL_READ_CHUNK		65536

struct sctl {
	const char	*sc_path;	/* the control socket */
	int		 sc_quiet;	/* -q: no "ok" text */
	int		 sc_fd;
	int		 sc_streamed;	/* data lines already went to stdout before the final line */
	int		 sc_out_broken;	/* stdout's reader went away (EPIPE): write nothing more there */
	struct answer	 sc_ans;
};

enum sctl_opts_res { SCTL_OPTS_OK = 0, SCTL_OPTS_HELP, SCTL_OPTS_USAGE };

static long long
sctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
sctl_ms_left(long long deadline)
{
	long long left = deadline - sctl_now_ms();

	return left > 0 ? (int)left : 0;
}

static void
sctl_usage_error(const char *msg, const char *usage)
{
	fprintf(stderr, "smtpwallctl: %s\n%s", msg, usage);
}

static void
sctl_general_usage_error(const char *msg)
{
	char usage[ARGS_USAGE_LEN];

	args_usage_all(usage, sizeof usage);
	sctl_usage_error(msg, usage);
}

/*
 * smtpwallctl's own options, before the command: -s PATH (or -sPATH), -q,
 * -h/--help; "--" ends them. *first is the index of the command's first word.
 */
static enum sctl_opts_res
sctl_options(int argc, char **argv, struct sctl *c, int *first)
{
	char msg[128];
	int i;

	for (i = 1; i < argc; i++) {
		const char *w = argv[i];

		if (w[0] != '-' || w[1] == '\0')
			break;
		if (strcmp(w, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(w, "--help") == 0)
			return SCTL_OPTS_HELP;
		if (w[1] == '-') {
			snprintf(msg, sizeof msg, "unknown option '%.64s'", w);
			sctl_general_usage_error(msg);
			return SCTL_OPTS_USAGE;
		}
		for (const char *p = w + 1; *p != '\0'; p++) {
			if (*p == 'q') {
				c->sc_quiet = 1;
			} else if (*p == 'h') {
				return SCTL_OPTS_HELP;
			} else if (*p == 's') {
				if (p[1] != '\0') {
					c->sc_path = p + 1;
				} else if (i + 1 < argc) {
					c->sc_path = argv[++i];
				} else {
					sctl_general_usage_error("-s needs a SOCKET path");
					return SCTL_OPTS_USAGE;
				}
				break;
			} else {
				snprintf(msg, sizeof msg, "unknown option '-%c'", *p);
				sctl_general_usage_error(msg);
				return SCTL_OPTS_USAGE;
			}
		}
	}
	*first = i;
	return SCTL_OPTS_OK;
}

/*
 * A connected, non-blocking AF_UNIX stream socket, or -1 with errno set. A
 * full listen queue (EAGAIN) is retried until the deadline, then ETIMEDOUT.
 */
static int
sctl_connect(const char *path)
{
	struct sockaddr_un sun;
	long long deadline = sctl_now_ms() + SCTL_TIMEOUT_MS;
	int fd, saved;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0)
			return fd;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			break;
		if (sctl_ms_left(deadline) == 0) {
			errno = ETIMEDOUT;
			break;
		}
		poll(NULL, 0, SCTL_RETRY_MS);
	}
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* The whole of p[0..n), within the deadline. 0, or -1 with errno set. */
static int
sctl_send(int fd, const char *p, size_t n)
{
	long long deadline = sctl_now_ms() + SCTL_TIMEOUT_MS;
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };

	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w >= 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -1;
		if (poll(&pfd, 1, sctl_ms_left(deadline)) == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}

/* Data lines to stdout (dropped, once its reader is gone) or stderr. */
static void
sctl_emit(struct sctl *c, FILE *f, const char *p, size_t n)
{
	if (n == 0 || (f == stdout && c->sc_out_broken))
		return;
	if (fwrite(p, 1, n, f) != n && f == stdout && errno == EPIPE)
		c->sc_out_broken = 1;
}

/* The data lines held so far: stdout when the answer is a success or already streaming. */
static void
sctl_emit_held(struct sctl *c, FILE *f)
{
	size_t n;
	const char *p = answer_held(&c->sc_ans, &n);

	sctl_emit(c, c->sc_streamed ? stdout : f, p, n);
	answer_held_clear(&c->sc_ans);
}

/* No usable answer: what came of it goes out, then why; exit 3. */
static int
sctl_broken_answer(struct sctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
sctl_broken_answer(struct sctl *c, const char *fmt, ...)
{
	va_list va;

	sctl_emit_held(c, stderr);
	fflush(stdout);
	fputs("smtpwallctl: ", stderr);
	va_start(va, fmt);
	vfprintf(stderr, fmt, va);
	va_end(va);
	fputc('\n', stderr);
	return ANSWER_EXIT_UNREACHABLE;
}

/* The final line is in: print the answer where it belongs; the exit status. */
static int
sctl_finish(struct sctl *c)
{
	const char *text = answer_text(&c->sc_ans);

	if (answer_final(&c->sc_ans) == ANSWER_FINAL_ERROR) {
		sctl_emit_held(c, stderr);
		fflush(stdout);
		if (*text != '\0')
			fprintf(stderr, "smtpwallctl: %s\n", text);
		else
			fprintf(stderr, "smtpwallctl: smtpwalld refused the command (no reason given)\n");
		return ANSWER_EXIT_REFUSED;
	}
	sctl_emit_held(c, stdout);
	if (*text != '\0' && !c->sc_quiet) {
		sctl_emit(c, stdout, text, strlen(text));
		sctl_emit(c, stdout, "\n", 1);
	}
	return ANSWER_EXIT_OK;
}

/* Feed n bytes to the reader. -1 while the answer goes on; else the exit status. */
static int
sctl_take(struct sctl *c, const char *buf, size_t n)
{
	size_t off = 0, used;

	while (off < n) {
		switch (answer_feed(&c->sc_ans, buf + off, n - off, &used)) {
		case ANSWER_AGAIN:
			return -1;
		case ANSWER_HOLD_FULL:
			/* too long to hold: a listing, so it goes to stdout as it comes */
			c->sc_streamed = 1;
			sctl_emit_held(c, stdout);
			break;
		case ANSWER_DONE:
			return sctl_finish(c);
		case ANSWER_BAD:
			return sctl_broken_answer(c, "bad answer from smtpwalld at %s: %s",
			    c->sc_path, answer_error(&c->sc_ans));
		}
		off += used;
	}
	return -1;
}

/* Read the answer, each read within SCTL_TIMEOUT_MS of the previous one; the exit status. */
static int
sctl_receive(struct sctl *c, int send_errno)
{
	char buf[SCTL_READ_CHUNK];
	struct pollfd pfd = { .fd = c->sc_fd, .events = POLLIN };
	long long deadline = sctl_now_ms() + SCTL_TIMEOUT_MS;
	int status;

	for (;;) {
		int pr = poll(&pfd, 1, sctl_ms_left(deadline));
		ssize_t n;

		if (pr == -1 && errno == EINTR)
			continue;
		if (pr == -1)
			return sctl_broken_answer(c, "waiting for smtpwalld at %s: %s", c->sc_path,
			    strerror(errno));
		if (pr == 0)
			return sctl_broken_answer(c, "no answer from smtpwalld at %s for %d seconds",
			    c->sc_path, SCTL_TIMEOUT_MS / 1000);
		n = read(c->sc_fd, buf, sizeof buf);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == -1 && errno != ECONNRESET)
			return sctl_broken_answer(c, "reading from smtpwalld at %s: %s", c->sc_path,
			    strerror(errno));
		if (n <= 0) {
			/* the command never left: say why rather than "closed" */
			if (send_errno != 0)
				return sctl_broken_answer(c, "sending to smtpwalld at %s: %s",
				    c->sc_path, strerror(send_errno));
			answer_eof(&c->sc_ans);
			return sctl_broken_answer(c, "smtpwalld at %s: %s", c->sc_path,
			    answer_error(&c->sc_ans));
		}
		if ((status = sctl_take(c, buf, (size_t)n)) != -1)
			return status;
		deadline = sctl_now_ms() + SCTL_TIMEOUT_MS;
	}
}

/* stdout is flushed and closed; a failure other than a vanished reader turns success into 1. */
static int
sctl_close_stdout(struct sctl *c, int status)
{
	int failed = fflush(stdout) == EOF || ferror(stdout);
	int err = errno;

	if (!failed || c->sc_out_broken || err == EPIPE)
		return status;
	fprintf(stderr, "smtpwallctl: writing the answer: %s\n", strerror(err));
	return status == ANSWER_EXIT_OK ? ANSWER_EXIT_REFUSED : status;
}

int
main(int argc, char **argv)
{
	struct sctl c;
	struct args_out *out;
	int first, status, send_errno = 0;
	char msg[64 + sizeof ((struct sockaddr_un *)0)->sun_path];

	memset(&c, 0, sizeof c);
	c.sc_path = ARGS_DEFAULT_SOCKET;
	c.sc_fd = -1;
	signal(SIGPIPE, SIG_IGN);

	switch (sctl_options(argc, argv, &c, &first)) {
	case SCTL_OPTS_OK:
		break;
	case SCTL_OPTS_HELP:
		args_help_print(stdout);
		return sctl_close_stdout(&c, ANSWER_EXIT_OK);
	case SCTL_OPTS_USAGE:
		return ANSWER_EXIT_USAGE;
	}
	if (*c.sc_path == '\0' || strlen(c.sc_path) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
		snprintf(msg, sizeof msg, "-s: the socket path must be 1 to %zu bytes long",
		    sizeof ((struct sockaddr_un *)0)->sun_path - 1);
		sctl_general_usage_error(msg);
		return ANSWER_EXIT_USAGE;
	}

	if ((out = malloc(sizeof *out)) == NULL) {
		fprintf(stderr, "smtpwallctl: out of memory\n");
		return ANSWER_EXIT_UNREACHABLE;
	}
	switch (args_build(argc - first, argv + first, out)) {
	case ARGS_OK:
		break;
	case ARGS_HELP:
		fputs(out->usage, stdout);
		free(out);
		return sctl_close_stdout(&c, ANSWER_EXIT_OK);
	case ARGS_USAGE:
		sctl_usage_error(out->err, out->usage);
		free(out);
		return ANSWER_EXIT_USAGE;
	}

	if ((c.sc_fd = sctl_connect(c.sc_path)) == -1) {
		if (errno == ETIMEDOUT)
			fprintf(stderr, "smtpwallctl: cannot reach smtpwalld at %s: its listen queue "
			    "stayed full for %d seconds (is it stuck?)\n", c.sc_path, SCTL_TIMEOUT_MS / 1000);
		else
			fprintf(stderr, "smtpwallctl: cannot reach smtpwalld at %s: %s "
			    "(is it running? are you root or in control_group?)\n", c.sc_path,
			    strerror(errno));
		free(out);
		return ANSWER_EXIT_UNREACHABLE;
	}
	/* args_build leaves room for the LF in line[] */
	out->line[out->len] = '\n';
	if (sctl_send(c.sc_fd, out->line, out->len + 1) == -1) {
		send_errno = errno;
		/* a daemon that closed (EPIPE) may have answered first, e.g. "permission denied": read it */
		if (send_errno != EPIPE && send_errno != ECONNRESET) {
			fprintf(stderr, "smtpwallctl: sending to smtpwalld at %s: %s\n", c.sc_path,
			    strerror(send_errno));
			free(out);
			close(c.sc_fd);
			return ANSWER_EXIT_UNREACHABLE;
		}
	}
	free(out);

	status = sctl_receive(&c, send_errno);
	close(c.sc_fd);
	answer_free(&c.sc_ans);
	return sctl_close_stdout(&c, status);
}

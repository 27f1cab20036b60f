/*
 * control.c: the control socket's connections (see control.h).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "control.h"
#include "ctlcmd.h"
#include "log.h"

#define CTL_CONNS_MAX	32
#define CTL_OUT_MAX	(32 * 1024 * 1024)	/* `sessions` with many sessions */

struct ctl_conn {
	struct ctl	*cc_ctl;
	struct ctl_conn	*cc_prev, *cc_next;
	int		 cc_fd;
	struct buf	 cc_in, cc_out;
	int		 cc_eof;	/* the client is done sending */
	int		 cc_waiting;	/* an answer is pending (a rule change being written) */
	int		 cc_dead;
};

struct ctl {
	struct proxy	*ct_px;
	int		 ct_fd;
	char		 ct_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	gid_t		 ct_gid;
	int		 ct_have_gid;
	struct ctl_conn	*ct_conns;
	unsigned	 ct_nconns;
	struct ev_timer	 ct_resume;	/* out of descriptors: the listener rests a moment */
};

static void
ctl_accept_resume(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct ctl *ct = arg;

	(void)t;
	ev_mod(loop, ct->ct_fd, EV_READ);
}

int
ctl_split(char *line, char *argv[CTL_ARGS_MAX])
{
	char *r = line, *w = line;
	int argc = 0;

	for (;;) {
		while (*r == ' ' || *r == '\t')
			r++;
		if (*r == '\0')
			return argc;
		if (argc == CTL_ARGS_MAX)
			return -1;
		argv[argc++] = w;
		if (*r == '"') {
			for (r++; *r != '"'; r++) {
				if (*r == '\0')
					return -1;
				if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
					r++;
				*w++ = *r;
			}
			r++;
			if (*r != '\0' && *r != ' ' && *r != '\t')
				return -1;	/* "a"b: not one word */
		} else
			while (*r != '\0' && *r != ' ' && *r != '\t')
				*w++ = *r++;
		if (*r != '\0')
			r++;
		*w++ = '\0';
	}
}

/* ---- connections ---------------------------------------------------------- */

static void
ctl_conn_free(void *arg)
{
	struct ctl_conn *c = arg;

	buf_free(&c->cc_in);
	buf_free(&c->cc_out);
	free(c);
}

static void
ctl_conn_close(struct ctl_conn *c)
{
	struct ctl *ct = c->cc_ctl;

	if (c->cc_dead)
		return;
	c->cc_dead = 1;
	ev_del(ct->ct_px->loop, c->cc_fd);
	close(c->cc_fd);
	if (c->cc_prev != NULL)
		c->cc_prev->cc_next = c->cc_next;
	else
		ct->ct_conns = c->cc_next;
	if (c->cc_next != NULL)
		c->cc_next->cc_prev = c->cc_prev;
	ct->ct_nconns--;
	/* A pending answer still refers to it: ctl_conn_resume() frees it then. */
	if (!c->cc_waiting && ev_defer(ct->ct_px->loop, ctl_conn_free, c) == -1)
		log_warn("control: cannot defer free");
}

struct buf *
ctl_conn_out(struct ctl_conn *c)
{
	return &c->cc_out;
}

static void
ctl_conn_io(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	struct ctl_conn *c = arg;
	struct slice line;
	char cmd[CTL_LINE_MAX + 1], *argv[CTL_ARGS_MAX];
	ssize_t n;
	int argc;

	(void)fd;
	if (c->cc_dead)
		return;
	/* Complete lines never stay in cc_in unless an answer is pending, so a full buffer is one long line. */
	if ((events & (EV_READ | EV_ERROR)) && !c->cc_eof && !c->cc_waiting) {
		size_t want = CTL_LINE_MAX - buf_len(&c->cc_in);

		if (want == 0 || buf_reserve(&c->cc_in, want < 1024 ? want : 1024, CTL_LINE_MAX) == -1) {
			buf_append(&c->cc_out, "error: line too long\n", 21, CTL_OUT_MAX);
			buf_reset(&c->cc_in);
			c->cc_eof = 1;
		} else if ((n = read(c->cc_fd, buf_tail(&c->cc_in), buf_room(&c->cc_in))) > 0)
			buf_commit(&c->cc_in, (size_t)n);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			c->cc_eof = 1;
	}
	/* Answer every complete line, in order; a pending answer holds the rest back. */
	while (!c->cc_dead && !c->cc_waiting && buf_getline(&c->cc_in, &line)) {
		size_t len = line.len - 1;

		if (len > 0 && line.p[len - 1] == '\r')
			len--;
		memcpy(cmd, line.p, len);
		cmd[len] = '\0';
		buf_consume(&c->cc_in, line.len);
		if ((argc = ctl_split(cmd, argv)) == -1)
			buf_printf(&c->cc_out, CTL_OUT_MAX,
			    "error: unbalanced quotes or too many words\n");
		else if (argc > 0)
			c->cc_waiting = ctlcmd_run(c->cc_ctl->ct_px, argc, argv, c);
	}
	while (buf_len(&c->cc_out) > 0) {
		n = send(c->cc_fd, buf_head(&c->cc_out), buf_len(&c->cc_out), MSG_NOSIGNAL);
		if (n > 0) {
			buf_consume(&c->cc_out, (size_t)n);
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		ctl_conn_close(c);
		return;
	}
	buf_release(&c->cc_out);
	if (c->cc_eof && buf_len(&c->cc_out) == 0 && !c->cc_waiting) {
		ctl_conn_close(c);
		return;
	}
	ev_mod(loop, c->cc_fd, (c->cc_eof || c->cc_waiting ? 0 : EV_READ) |
	    (buf_len(&c->cc_out) > 0 ? EV_WRITE : 0));
}

void
ctl_conn_resume(struct ctl_conn *c)
{
	c->cc_waiting = 0;
	if (c->cc_dead) {
		if (ev_defer(c->cc_ctl->ct_px->loop, ctl_conn_free, c) == -1)
			log_warn("control: cannot defer free");
		return;
	}
	/* As if the socket were writable: send the answer, run what is buffered. */
	ctl_conn_io(c->cc_ctl->ct_px->loop, c->cc_fd, EV_WRITE, c);
}

/* ---- who may talk to us -------------------------------------------------------- */

static int
ctl_member(uid_t uid, gid_t gid, gid_t group)
{
	struct passwd pw, *res = NULL;
	char pwbuf[4096];
	gid_t groups[256];
	int n = 256, i;

	if (gid == group)
		return 1;
	if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) != 0 || res == NULL)
		return 0;
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) == -1)
		return 0;
	for (i = 0; i < n; i++)
		if (groups[i] == group)
			return 1;
	return 0;
}

static void
ctl_accept(struct ev_loop *loop, int lfd, unsigned events, void *arg)
{
	struct ctl *ct = arg;
	struct ctl_conn *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char line[256];
	int fd;

	(void)events;
	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		/*
		 * Out of descriptors: the connection stays in the backlog and the
		 * (level-triggered) listener would fire again at once. Rest it
		 * 100 ms, as sess_accept() does for the SMTP listeners.
		 */
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			log_warn("control: accept");
			ev_mod(loop, lfd, 0);
			ev_timer_set(loop, &ct->ct_resume, 100, ctl_accept_resume, ct);
		}
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		close(fd);
		return;
	}
	/* The file mode keeps others out; this check holds even if it was loosened. */
	if (cred.uid != 0 && !(ct->ct_have_gid && ctl_member(cred.uid, cred.gid, ct->ct_gid))) {
		snprintf(line, sizeof(line),
		    "error: permission denied: uid %u is not root and not in group %s\n",
		    (unsigned)cred.uid, ct->ct_have_gid ?
		    ct->ct_px->conf->cf.control_group : "(no control_group set)");
		(void)send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		log_warnx("control: refused uid=%u pid=%d", (unsigned)cred.uid, (int)cred.pid);
		return;
	}
	if (ct->ct_nconns >= CTL_CONNS_MAX || (c = calloc(1, sizeof(*c))) == NULL) {
		(void)send(fd, "error: too many control connections\n", 36,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	c->cc_ctl = ct;
	c->cc_fd = fd;
	if (ev_add(loop, fd, EV_READ, ctl_conn_io, c) == -1) {
		close(fd);
		free(c);
		return;
	}
	c->cc_next = ct->ct_conns;
	if (ct->ct_conns != NULL)
		ct->ct_conns->cc_prev = c;
	ct->ct_conns = c;
	ct->ct_nconns++;
}

int
ctl_open(struct proxy *px, char err[256])
{
	const struct config *cf = &px->conf->cf;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	struct ctl *ct;
	struct group gr, *gres = NULL;
	char grbuf[4096];
	mode_t old;
	int fd;

	if ((ct = calloc(1, sizeof(*ct))) == NULL) {
		snprintf(err, 256, "control: out of memory");
		return -1;
	}
	ct->ct_px = px;
	if (cf->control_group[0] != '\0') {
		if (getgrnam_r(cf->control_group, &gr, grbuf, sizeof(grbuf), &gres) != 0 ||
		    gres == NULL) {
			snprintf(err, 256, "control_group %s: no such group", cf->control_group);
			free(ct);
			return -1;
		}
		ct->ct_gid = gr.gr_gid;
		ct->ct_have_gid = 1;
	}
	snprintf(ct->ct_path, sizeof(ct->ct_path), "%s", cf->control_socket);
	memcpy(sun.sun_path, ct->ct_path, sizeof(sun.sun_path));
	/* A stale socket from a previous run is replaced; any other file is not. */
	if (lstat(ct->ct_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, 256, "control_socket %s exists and is not a socket",
			    ct->ct_path);
			free(ct);
			return -1;
		}
		unlink(ct->ct_path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, 256, "control socket: %s", strerror(errno));
		free(ct);
		return -1;
	}
	old = umask(0117);	/* born 0660: never a moment open to others */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		snprintf(err, 256, "control_socket %s: %s", ct->ct_path, strerror(errno));
		close(fd);
		free(ct);
		return -1;
	}
	umask(old);
	if (chmod(ct->ct_path, 0660) == -1 ||
	    (ct->ct_have_gid && chown(ct->ct_path, (uid_t)-1, ct->ct_gid) == -1) ||
	    listen(fd, 16) == -1 || ev_add(px->loop, fd, EV_READ, ctl_accept, ct) == -1) {
		snprintf(err, 256, "control_socket %s: %s", ct->ct_path, strerror(errno));
		close(fd);
		unlink(ct->ct_path);
		free(ct);
		return -1;
	}
	ct->ct_fd = fd;
	px->ctl = ct;
	return 0;
}

void
ctl_close(struct proxy *px)
{
	struct ctl *ct = px->ctl;

	if (ct == NULL)
		return;
	while (ct->ct_conns != NULL)
		ctl_conn_close(ct->ct_conns);
	ev_timer_cancel(px->loop, &ct->ct_resume);
	ev_del(px->loop, ct->ct_fd);
	close(ct->ct_fd);
	unlink(ct->ct_path);
	free(ct);
	px->ctl = NULL;
}

/*
 * session.c: the I/O of one proxied connection (see session.h).
 *
 * Each readiness callback reads what is there, then runs sess_pump(): feed
 * the FSM both ways until nothing moves, carry out its flags, write what it
 * produced (optimistically, arming EV_WRITE only when the kernel is full),
 * and recompute which events and timers the session needs. Back-pressure is
 * the FSM refusing input while a side's output is above its high watermark,
 * and this file not reading a side whose input buffer is full.
 *
 * Never: blocks, or ends the process over one connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "captures.h"
#include "climap.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "sock.h"
#include "worker.h"

#define SESS_IN_MAX	(64 * 1024)	/* per-side input buffer */
#define SESS_READ_CHUNK	(16 * 1024)	/* a read's room; SESS_IN_MAX in bulk (DATA) */
#define SESS_LINGER_MS	10000		/* time to flush the last replies */
#define SESS_ACCEPT_MAX	64		/* accepts per wakeup, fairness */

static void sess_pump(struct session *);
static void sess_fd_cb(struct ev_loop *, int, unsigned, void *);

/* ---- logging ---------------------------------------------------------------- */

static void
sess_log_event(void *arg, const struct smtp_event *ev)
{
	struct session *s = arg;
	struct proxy *px = s->px;
	char a[SMTP_PATH_MAX * 4 + 8], rule[512];

	if (ev->kind == SMTP_EV_ADDRESS) {	/* every MAIL/RCPT: for capture triggers only, no log line */
		capt_session_event(s, strcmp(ev->what, "from") == 0 ? CAPT_SENDER : CAPT_RCPT,
		    ev->arg.p, ev->arg.p ? ev->arg.len : 0);
		return;
	}
	/* Escaping costs more than the event: only for a line that will be written. */
	a[0] = '\0';
	if (log_enabled(ev->kind == SMTP_EV_SERVER || ev->kind == SMTP_EV_XCLIENT ?
	    LOG_LVL_WARNING : ev->kind == SMTP_EV_STATE ? LOG_LVL_DEBUG : LOG_LVL_INFO))
		log_escape(a, sizeof(a), ev->arg.p, ev->arg.p ? ev->arg.len : 0);
	switch (ev->kind) {
	case SMTP_EV_REFUSE:
		rule[0] = '\0';
		if (ev->rule != NULL) {
			char text[400];

			rules_rule_format_key(ev->rule, text, sizeof(text));
			snprintf(rule, sizeof(rule), " rule=\"%s\"", text);
		}
		if (strcmp(ev->what, "rcpt") == 0) {
			PX_STAT_ADD(px, refused_rcpt, 1);
			if (strcmp(ev->reason, "relay") == 0)
				PX_STAT_ADD(px, refused_rcpt_relay, 1);
			else if (strcmp(ev->reason, "routing") == 0)
				PX_STAT_ADD(px, refused_rcpt_routing, 1);
			else
				PX_STAT_ADD(px, refused_rcpt_limit, 1);
		} else if (strcmp(ev->what, "from") == 0) {
			if (strcmp(ev->reason, "size") == 0)
				PX_STAT_ADD(px, refused_size, 1);
			else
				PX_STAT_ADD(px, refused_sender, 1);
		}
		log_info("session=%016llx refuse %s=<%s> reason=%s code=%d%s",
		    (unsigned long long)s->id, ev->what, a, ev->reason, ev->code, rule);
		capt_session_event(s, CAPT_REFUSED, NULL, 0);
		break;
	case SMTP_EV_ERROR:
		log_info("session=%016llx error %s=\"%s\" reason=%s code=%d",
		    (unsigned long long)s->id, ev->what, a, ev->reason, ev->code);
		break;
	case SMTP_EV_ABORT:
		PX_STAT_ADD(px, aborted_data, 1);
		capt_session_event(s, CAPT_REFUSED, NULL, 0);
		log_info("session=%016llx abort data from=<%s> reason=%s code=%d bytes=%llu",
		    (unsigned long long)s->id, a, ev->reason, ev->code,
		    (unsigned long long)s->fsm.data.content);
		break;
	case SMTP_EV_SERVER:
		log_warnx("session=%016llx server_error reply=\"%s\" reason=%s",
		    (unsigned long long)s->id, a, ev->reason);
		break;
	case SMTP_EV_MESSAGE:
		if (ev->code >= 200 && ev->code < 300) {
			PX_STAT_ADD(px, messages, 1);
			PX_STAT_ADD(px, bytes, s->fsm.msg_bytes);
		}
		log_info("session=%016llx message from=<%s> code=%d bytes=%llu",
		    (unsigned long long)s->id, a, ev->code,
		    (unsigned long long)s->fsm.msg_bytes);
		break;
	case SMTP_EV_STATE:
		log_debug("session=%016llx state %s -> %s", (unsigned long long)s->id,
		    smtp_state_str(ev->from), smtp_state_str(ev->to));
		break;
	case SMTP_EV_ADDRESS:
		break;			/* handled above */
	case SMTP_EV_XCLIENT:
		/* xclient = on: the server's reply that decided is untrusted text */
		if (strcmp(ev->reason, "ok") == 0)
			log_debug("session=%016llx xclient=ok", (unsigned long long)s->id);
		else if (strcmp(ev->reason, "refused") == 0)
			log_warnx("session=%016llx xclient=refused code=%d reply=\"%s\"",
			    (unsigned long long)s->id, ev->code, a);
		else
			log_info("session=%016llx xclient=%s code=%d", (unsigned long long)s->id,
			    ev->reason, ev->code);
		break;
	}
}

char *
sess_from_str(const struct session *s, char buf[SESS_FROM_LEN])
{
	if (!s->fsm.have_from) {
		strcpy(buf, "-");
		return buf;
	}
	buf[0] = '<';
	log_escape(buf + 1, SESS_FROM_LEN - 2, smtp_fsm_str(s->fsm.from), strlen(smtp_fsm_str(s->fsm.from)));
	strcat(buf, ">");
	return buf;
}

static void
sess_log_summary(struct session *s)
{
	char c[SOCK_ADDR_LEN], sv[SOCK_ADDR_LEN];
	char helo[SMTP_HELO_MAX * 4], from[SESS_FROM_LEN];
	uint64_t ms = ev_now(s->w->loop) - s->start_ms;

	if (!log_enabled(LOG_LVL_INFO))
		return;
	log_escape(helo, sizeof(helo), smtp_fsm_str(s->fsm.helo), strlen(smtp_fsm_str(s->fsm.helo)));
	sess_from_str(s, from);
	log_info("session=%016llx client=%s server=%s helo=%s from=%s "
	    "rcpt_ok=%u rcpt_refused=%u messages=%u bytes=%llu%s%s duration=%llu.%03llu "
	    "result=%s",
	    (unsigned long long)s->id,
	    sock_addr_str((struct sockaddr *)&s->caddr, c),
	    sock_addr_str((struct sockaddr *)&s->saddr, sv),
	    helo[0] ? helo : "-", from, s->fsm.rcpt_ok, s->fsm.rcpt_refused,
	    s->fsm.messages, (unsigned long long)s->fsm.bytes,
	    s->fsm.xc_result ? " xclient=" : "", s->fsm.xc_result ? s->fsm.xc_result : "",
	    (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000),
	    s->result ? s->result : "ok");
}

/* ---- closing ------------------------------------------------------------------ */

static void
sess_free(void *arg)
{
	struct session *s = arg;

	smtp_fsm_free(&s->fsm);
	pxconf_unref(s->conf);
	buf_free(&s->client.in);
	buf_free(&s->client.out);
	buf_free(&s->server.in);
	buf_free(&s->server.out);
	free(s);
}

static void
conn_close(struct ev_loop *loop, struct conn *c, int abort)
{
	if (c->fd == -1)
		return;
	ev_del(loop, c->fd);
	if (abort)
		sock_abort(c->fd);
	else
		close(c->fd);
	c->fd = -1;
	buf_free(&c->in);
	buf_free(&c->out);
}

/*
 * The server's side ends here. A message in flight is reset, never ended:
 * an RST cannot be mistaken for the end of DATA by the server.
 */
static void
sess_server_close(struct session *s, int abort)
{
	ev_timer_cancel(s->w->loop, &s->t_server);
	ev_timer_cancel(s->w->loop, &s->t_connect);
	conn_close(s->w->loop, &s->server, abort || s->fsm.state == SS_DATA ||
	    s->server.connecting);
	s->server.connecting = 0;
}

void
sess_close(struct session *s, const char *result)
{
	struct worker *w = s->w;

	if (s->dead)
		return;
	s->dead = 1;
	if (s->result == NULL)
		s->result = result;
	sess_log_summary(s);
	capt_session_end(s);
	sess_server_close(s, s->fsm.state == SS_DATA);
	conn_close(w->loop, &s->client, 0);
	ev_timer_cancel(w->loop, &s->t_idle);
	ev_timer_cancel(w->loop, &s->t_linger);

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	__atomic_store_n(&w->nsessions, w->nsessions - 1, __ATOMIC_RELAXED);
	px_slot_release(s->px, (struct sockaddr *)&s->caddr);
	if (ev_defer(w->loop, sess_free, s) == -1)
		log_warn("session=%016llx: cannot defer free; leaking it",
		    (unsigned long long)s->id);
}

/* ---- timers --------------------------------------------------------------------- */

static void
sess_idle_timeout(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct session *s = arg;

	(void)loop;
	(void)t;
	s->result = "timeout_idle";
	smtp_fsm_client_timeout(&s->fsm);
	sess_pump(s);
}

static void
sess_server_timeout(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct session *s = arg;

	(void)loop;
	(void)t;
	log_info("session=%016llx server timeout after %us", (unsigned long long)s->id,
	    s->conf->cf.timeout_server);
	s->result = "timeout_server";
	smtp_fsm_server_failed(&s->fsm, 451, "4.4.2",
	    "Error: timeout waiting for the mail server");
	sess_pump(s);
}

static void
sess_connect_timeout(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct session *s = arg;

	(void)loop;
	(void)t;
	log_info("session=%016llx connect timeout after %us", (unsigned long long)s->id,
	    s->conf->cf.timeout_connect);
	s->result = "server_unreachable";
	smtp_fsm_server_failed(&s->fsm, 421, "4.4.1",
	    "Error: cannot connect to the mail server");
	sess_pump(s);
}

static void
sess_linger_timeout(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	sess_close(arg, NULL);
}

/* ---- reading and writing ------------------------------------------------------- */

/*
 * Read once into c->in. 2 if bytes filled all the room offered (more may be
 * waiting), 1 if fewer came (the socket is drained for now: reading again
 * would only meet EAGAIN), 0 if nothing, -1 on EOF or error (c->eof set).
 * Commands come a few bytes at a time and get SESS_READ_CHUNK of room; once
 * a read fills its room (a message body streaming in), the next ones get all
 * of SESS_IN_MAX: fewer read calls per MiB (make bench-proxy, 1 MiB
 * messages: about 3% less CPU per message).
 */
static int
conn_read(struct conn *c)
{
	size_t room, chunk = c->bulk ? SESS_IN_MAX : SESS_READ_CHUNK;
	ssize_t n;

	if (c->eof || c->fd == -1)
		return 0;
	if (buf_reserve(&c->in, chunk < SESS_IN_MAX - buf_len(&c->in) ?
	    chunk : SESS_IN_MAX - buf_len(&c->in), SESS_IN_MAX) == -1)
		return 0;
	room = buf_room(&c->in);
	n = read(c->fd, buf_tail(&c->in), room);
	if (n > 0) {
		buf_commit(&c->in, (size_t)n);
		c->bulk = (size_t)n == room;
		return c->bulk ? 2 : 1;
	}
	if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		c->eof = 1;
		return -1;
	}
	return 0;
}

/* Write as much of c->out as the kernel takes. 0, or -1 when the peer is gone. */
static int
conn_write(struct conn *c)
{
	ssize_t n;

	while (buf_len(&c->out) > 0 && c->fd != -1 && !c->connecting) {
		n = send(c->fd, buf_head(&c->out), buf_len(&c->out), MSG_NOSIGNAL);
		if (n > 0) {
			buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		return -1;
	}
	buf_release(&c->out);
	return 0;
}

/* STARTTLS: every client byte received so far was sent before our reply; none may reach the server. */
static void
sess_drain_client(struct session *s)
{
	char junk[4096];
	unsigned i;

	buf_reset(&s->client.in);
	/* Bounded: a client still streaming is not allowed to hold the loop. */
	for (i = 0; i < 64 && s->client.fd != -1; i++)
		if (read(s->client.fd, junk, sizeof(junk)) <= 0)
			break;
}

/* ---- the pump ---------------------------------------------------------------------- */

static void
sess_flags(struct session *s)
{
	unsigned fl = s->fsm.out_flags;

	s->fsm.out_flags = 0;
	if (fl & SMTP_FSM_DRAIN_CLIENT)
		sess_drain_client(s);
	if (fl & SMTP_FSM_ABORT_SERVER)
		sess_server_close(s, 1);
}

/* Feed both directions until nothing moves. */
static void
sess_feed(struct session *s)
{
	struct smtp_fsm *f = &s->fsm;
	size_t k, guard;

	for (guard = 0; guard < 1024; guard++) {
		int moved = 0;

		f->now = time(NULL);
		if (buf_len(&s->server.in) > 0) {
			k = smtp_fsm_server(f, buf_head(&s->server.in), buf_len(&s->server.in));
			buf_consume(&s->server.in, k);
			moved |= k > 0;
			sess_flags(s);
		}
		if (buf_len(&s->client.in) > 0) {
			k = smtp_fsm_client(f, buf_head(&s->client.in), buf_len(&s->client.in));
			buf_consume(&s->client.in, k);
			moved |= k > 0;
			sess_flags(s);
		}
		/* The server's EOF counts once every byte it sent before it was read. */
		if (s->server.eof && !s->server.eof_handled && buf_len(&s->server.in) == 0) {
			s->server.eof_handled = 1;
			sess_server_close(s, 0);
			if (s->result == NULL && f->state != SS_QUIT)
				s->result = "server_lost";
			smtp_fsm_server_failed(f, 421, "4.4.1",
			    "Error: connection to the mail server lost");
			sess_flags(s);
			moved = 1;
		}
		/*
		 * The client's EOF: a message is aborted only once all it sent was
		 * scanned; in command mode a partial last line is dropped.
		 */
		if (s->client.eof && !s->client.eof_handled &&
		    (buf_len(&s->client.in) == 0 || f->state != SS_DATA)) {
			s->client.eof_handled = 1;
			smtp_fsm_client_eof(f);
			sess_flags(s);
			moved = 1;
		}
		if (!moved)
			break;
	}
	buf_release(&s->client.in);
	buf_release(&s->server.in);
}

static unsigned
sess_mask_client(const struct session *s)
{
	unsigned m = 0;

	if (!s->client.eof && !s->draining && buf_len(&s->client.in) < SESS_IN_MAX)
		m |= EV_READ;
	if (buf_len(&s->client.out) > 0)
		m |= EV_WRITE;
	return m;
}

static unsigned
sess_mask_server(const struct session *s)
{
	unsigned m = 0;

	if (s->server.connecting)
		return EV_WRITE;
	if (!s->server.eof && buf_len(&s->server.in) < SESS_IN_MAX)
		m |= EV_READ;
	if (buf_len(&s->server.out) > 0)
		m |= EV_WRITE;
	return m;
}

/*
 * One of the two timeouts runs at a time, by whose turn it is (RFC 5321
 * 4.5.3.2): while a server reply is awaited, timeout_server; otherwise
 * timeout_idle, restarted by every complete command and by DATA or raw
 * traffic. A slow server (up to 10 minutes after the end of DATA) must
 * never make the client see an idle 421 and send the message twice.
 */
static void
sess_timers(struct session *s)
{
	struct smtp_fsm *f = &s->fsm;

	if (smtp_fsm_awaiting_server(f)) {
		ev_timer_cancel(s->w->loop, &s->t_idle);
		if (s->server.fd != -1 && !s->server.connecting &&
		    !ev_timer_armed(&s->t_server))
			ev_timer_set(s->w->loop, &s->t_server, s->conf->cf.timeout_server * 1000ull,
			    sess_server_timeout, s);
		return;
	}
	ev_timer_cancel(s->w->loop, &s->t_server);
	if (!ev_timer_armed(&s->t_idle) || f->commands != s->last_commands ||
	    f->state == SS_DATA || f->state == SS_RAW) {
		s->last_commands = f->commands;
		ev_timer_set(s->w->loop, &s->t_idle, s->conf->cf.timeout_idle * 1000ull,
		    sess_idle_timeout, s);
	}
}

static void
sess_pump(struct session *s)
{

	if (s->dead)
		return;
	/* A timer may have failed the server's side: close it now, not at the next input. */
	sess_flags(s);
	/*
	 * Feed and write until neither moves: the FSM stops taking input while
	 * an output is above its high watermark, so a write that drains it must
	 * be followed by another feed, or a session whose input buffer is full
	 * (no read event) and whose output is empty (no write event) would
	 * sleep forever. No read happens in here, so this ends.
	 */
	for (;;) {
		size_t pending;

		sess_feed(s);
		pending = buf_len(&s->server.out) + buf_len(&s->client.out);
		if (conn_write(&s->server) == -1) {
			/* Writing to the server failed: treat as lost, its replies will not come. */
			s->server.eof = 1;
			sess_feed(s);
		}
		if (conn_write(&s->client) == -1) {
			sess_close(s, "client_lost");
			return;
		}
		if (buf_len(&s->server.out) + buf_len(&s->client.out) == pending ||
		    (buf_len(&s->client.in) == 0 && buf_len(&s->server.in) == 0))
			break;
	}

	if (smtp_fsm_finished(&s->fsm)) {
		if (s->result == NULL)
			s->result = s->client.eof && s->fsm.state != SS_QUIT ?
			    "client_eof" : "ok";
		if (buf_len(&s->client.out) == 0) {
			sess_close(s, NULL);
			return;
		}
		/* Let the last replies drain, then close; bounded. */
		if (!s->draining) {
			s->draining = 1;
			sess_server_close(s, 0);
			ev_timer_set(s->w->loop, &s->t_linger, SESS_LINGER_MS,
			    sess_linger_timeout, s);
		}
	}

	if (s->client.fd != -1)
		ev_mod(s->w->loop, s->client.fd, sess_mask_client(s));
	if (s->server.fd != -1)
		ev_mod(s->w->loop, s->server.fd, sess_mask_server(s));
	if (!s->draining)
		sess_timers(s);
}

static void
sess_server_connected(struct session *s)
{
	int e = sock_connect_error(s->server.fd);
	char a[SOCK_ADDR_LEN];

	s->server.connecting = 0;
	ev_timer_cancel(s->w->loop, &s->t_connect);
	if (e != 0) {
		log_info("session=%016llx connect %s: %s", (unsigned long long)s->id,
		    sock_addr_str((struct sockaddr *)&s->saddr, a), strerror(e));
		s->result = "server_unreachable";
		sess_server_close(s, 1);
		smtp_fsm_server_failed(&s->fsm, 421, "4.4.1",
		    "Error: cannot connect to the mail server");
		s->server.eof = s->server.eof_handled = 1;
	}
}

static void
sess_fd_cb(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	struct session *s = arg;
	int i;

	(void)loop;
	if (s->dead)
		return;
	if (fd == s->server.fd) {
		if (s->server.connecting) {
			if (events & (EV_WRITE | EV_ERROR))
				sess_server_connected(s);
		} else if (events & (EV_READ | EV_ERROR)) {
			/* Read a few times: level-triggered, but fewer wakeups under bulk. */
			for (i = 0; i < 4 && buf_len(&s->server.in) < SESS_IN_MAX; i++)
				if (conn_read(&s->server) < 2)
					break;
		}
	} else if (fd == s->client.fd) {
		if (events & (EV_READ | EV_ERROR))
			for (i = 0; i < 4 && buf_len(&s->client.in) < SESS_IN_MAX; i++)
				if (conn_read(&s->client) < 2)
					break;
	}
	sess_pump(s);
}

/* ---- accepting -------------------------------------------------------------------- */

/* A refusal before any session exists: one reply, best effort, then close. */
static void
sess_refuse_early(int fd, const char *line)
{
	(void)send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

/*
 * May peer have a session? 0 with a session slot taken (px_slot_take), or
 * -1 with the connection answered and closed.
 */
static int
sess_admit(struct worker *w, const struct pxconf *conf, int fd,
    const struct sockaddr_storage *peer)
{
	struct proxy *px = w->px;
	char ip[SOCK_IP_LEN], line[512], rule[400];
	struct rules_verdict v;
	struct ruleset *rs;
	const char *limit;

	/* (No "shutting down" case: SIGTERM closes the listeners between two events.) */
	if (px_slot_take(px, conf, (const struct sockaddr *)peer, &limit) == -1) {
		int per_client = strcmp(limit, "max_sessions") != 0;

		sock_ip_str((const struct sockaddr *)peer, ip);
		PX_STAT_ADD(px, sessions_refused, 1);
		log_info("refuse client=%s reason=%s limit=%u", ip, limit,
		    per_client ? conf->cf.max_sessions_per_client : conf->cf.max_sessions);
		snprintf(line, sizeof(line), "421 4.7.0 %s Error: too many connections%s%s\r\n",
		    px->hostname, per_client ? " from " : "", per_client ? ip : "");
		sess_refuse_early(fd, line);
		return -1;
	}
	rs = px_rules(px);
	rules_eval_client(rs, (const struct sockaddr *)peer, time(NULL), &v);
	if (!v.accept) {
		sock_ip_str((const struct sockaddr *)peer, ip);
		PX_STAT_ADD(px, sessions_refused, 1);
		PX_STAT_ADD(px, refused_client, 1);
		rule[0] = '\0';
		if (v.rule != NULL)
			rules_rule_format_key(v.rule, rule, sizeof(rule));
		rules_unref(rs);
		px_slot_release(px, (const struct sockaddr *)peer);
		log_info("refuse client=%s reason=client rule=\"%s\"", ip, rule);
		snprintf(line, sizeof(line),
		    "554 5.7.1 Service unavailable; client [%s] blocked by policy\r\n", ip);
		sess_refuse_early(fd, line);
		return -1;
	}
	rules_unref(rs);
	return 0;
}

/* The configured address of the listener lfd of w. */
static const struct sockaddr *
sess_listener_addr(const struct worker *w, const struct pxconf *conf, int lfd)
{
	unsigned i;

	for (i = 0; i < w->nlisten; i++)
		if (w->listen_fd[i] == lfd)
			return (const struct sockaddr *)&conf->cf.listen[w->listen_idx[i]];
	return NULL;
}

/*
 * Where this connection goes: the fixed upstream, or where the client meant
 * to go (from conntrack under REDIRECT, the socket's own address under TPROXY).
 */
static int
sess_upstream(struct session *s, int fd, int lfd, struct sockaddr_storage *dst)
{
	const struct config *cf = &s->conf->cf;
	struct sockaddr_storage orig;
	const struct sockaddr *l;

	if (cf->mode == CONFIG_MODE_TPROXY) {
		/* listen addresses are restart-only: every generation has the same */
		if ((l = sess_listener_addr(s->w, s->conf, lfd)) == NULL) {
			errno = ENOENT;
			return -1;
		}
		if (sock_tproxy_dst(fd, l, &orig) == -1)
			return -1;
	} else if (!cf->upstream_fixed && sock_original_dst(fd, &orig) == -1)
		return -1;
	if (cf->upstream_fixed)
		memcpy(dst, &cf->upstream, sizeof(*dst));
	else
		*dst = orig;
	return 0;
}

/*
 * The upstream connection: under TPROXY from the client's own address, so
 * that the server sees and logs the real client; a fixed upstream of the
 * other address family cannot be reached that way, and is reached from the
 * gateway's address instead.
 */
static int
sess_connect_upstream(struct session *s)
{
	const struct sockaddr *src = NULL;

	if (s->conf->cf.mode == CONFIG_MODE_TPROXY && s->caddr.ss_family == s->saddr.ss_family)
		src = (const struct sockaddr *)&s->caddr;
	if (s->capt != NULL)
		return capt_session_connect(s, src);
	return sock_connect((struct sockaddr *)&s->saddr, src);
}

/* A connection that has a session slot (sess_admit); takes over conf's reference. */
static void
sess_start(struct worker *w, struct pxconf *conf, int fd, int lfd,
    const struct sockaddr_storage *peer)
{
	struct proxy *px = w->px;
	struct session *s;
	char ip[SOCK_ADDR_LEN], line[512];
	int starttls;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(line, sizeof(line), "421 4.3.0 %s Error: out of memory\r\n",
		    px->hostname);
		sess_refuse_early(fd, line);
		px_slot_release(px, (const struct sockaddr *)peer);
		pxconf_unref(conf);
		return;
	}
	s->px = px;
	s->w = w;
	s->conf = conf;
	s->id = px_next_id(px);
	s->caddr = *peer;
	s->client.fd = fd;
	s->server.fd = -1;
	s->start_ms = ev_now(w->loop);

	if (sess_upstream(s, fd, lfd, &s->saddr) == -1) {
		log_info("session=%016llx client=%s refused: no original destination "
		    "(a direct connection to the listener, not sent by the firewall's %s rule)",
		    (unsigned long long)s->id, sock_addr_str((const struct sockaddr *)peer, ip),
		    conf->cf.mode == CONFIG_MODE_TPROXY ? "TPROXY" : "REDIRECT");
		snprintf(line, sizeof(line),
		    "421 4.3.5 %s Error: no destination for this connection\r\n", px->hostname);
		sess_refuse_early(fd, line);
		px_slot_release(px, (const struct sockaddr *)peer);
		pxconf_unref(s->conf);
		free(s);
		return;
	}

	starttls = conf->cf.starttls == CONFIG_STARTTLS_ALLOW &&
	    rules_cidrset_match(conf->cf.trusted_networks, (const struct sockaddr *)peer);
	smtp_fsm_init(&s->fsm, &conf->fsmconf, (const struct sockaddr *)peer, starttls,
	    &s->client.out, &s->server.out, sess_log_event, s);

	/* In the list before anything can fail, so sess_close() is the one exit. */
	s->next = w->sessions;
	if (w->sessions != NULL)
		w->sessions->prev = s;
	w->sessions = s;
	__atomic_store_n(&w->nsessions, w->nsessions + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&w->sessions_total, w->sessions_total + 1, __ATOMIC_RELAXED);
	PX_STAT_ADD(px, sessions, 1);

	if (ev_add(w->loop, fd, EV_READ, sess_fd_cb, s) == -1) {
		log_warn("session=%016llx: ev_add", (unsigned long long)s->id);
		sess_close(s, "error");
		return;
	}
	capt_session_start(s);
	if (log_enabled(LOG_LVL_DEBUG))	/* the addresses cost a printf each */
		log_debug("session=%016llx connect client=%s server=%s worker=%u",
		    (unsigned long long)s->id, sock_addr_str((struct sockaddr *)&s->caddr, ip),
		    sock_addr_str((struct sockaddr *)&s->saddr, line), w->id);

	if ((s->server.fd = sess_connect_upstream(s)) == -1) {
		log_info("session=%016llx connect %s: %s", (unsigned long long)s->id,
		    sock_addr_str((struct sockaddr *)&s->saddr, ip), strerror(errno));
		s->result = "server_unreachable";
		s->server.eof = s->server.eof_handled = 1;
		smtp_fsm_server_failed(&s->fsm, 421, "4.4.1",
		    "Error: cannot connect to the mail server");
		sess_pump(s);
		return;
	}
	s->server.connecting = 1;
	if (ev_add(w->loop, s->server.fd, EV_WRITE, sess_fd_cb, s) == -1) {
		log_warn("session=%016llx: ev_add", (unsigned long long)s->id);
		sess_close(s, "error");
		return;
	}
	ev_timer_set(w->loop, &s->t_connect, conf->cf.timeout_connect * 1000ull,
	    sess_connect_timeout, s);
	ev_timer_set(w->loop, &s->t_idle, conf->cf.timeout_idle * 1000ull,
	    sess_idle_timeout, s);
}

static void
sess_accept_resume(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct worker *w = arg;
	unsigned i;

	(void)t;
	for (i = 0; i < w->nlisten; i++)
		ev_mod(loop, w->listen_fd[i], EV_READ);
}

void
sess_accept(struct worker *w, int lfd)
{
	struct sockaddr_storage peer;
	struct pxconf *conf;
	unsigned i, n;
	int fd;

	for (n = 0; n < SESS_ACCEPT_MAX; n++) {
		if ((fd = sock_accept(lfd, &peer)) == -1) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Out of descriptors: stop accepting for a moment, keep serving. */
				log_warn("accept");
				for (i = 0; i < w->nlisten; i++)
					ev_mod(w->loop, w->listen_fd[i], 0);
				ev_timer_set(w->loop, &w->accept_timer, 100,
				    sess_accept_resume, w);
			}
			return;
		}
		/* The generation the session will pin, also for its admission. */
		conf = px_conf(w->px);
		if (sess_admit(w, conf, fd, &peer) == 0)
			sess_start(w, conf, fd, lfd, &peer);
		else
			pxconf_unref(conf);
	}
}

void
sess_shutdown_all(struct worker *w, void *unused)
{
	struct session *s, *next;
	char line[256];
	int n;

	(void)unused;
	n = snprintf(line, sizeof(line), "421 4.3.2 %s Error: shutting down\r\n",
	    w->px->hostname);
	for (s = w->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->client.fd != -1)
			(void)send(s->client.fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
		sess_close(s, "shutdown");
	}
}

/*
 * test_ev: the event loop of proxy/ev.h with real pipes, socketpairs and
 * eventfds: fd callbacks and masks, deletion inside a batch, the timer heap
 * (order, cancel, re-arm), deferred calls, ev_run/ev_stop.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "proxy/ev.h"

#define TEST_MAXFDS	4096

struct rec {
	int		 calls;
	int		 fd;
	unsigned	 events;
};

static void
rec_cb(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	struct rec *r = arg;

	(void)loop;
	r->calls++;
	r->fd = fd;
	r->events |= events;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int
make_eventfd(uint64_t value)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	assert_int_not_equal(fd, -1);
	if (value > 0)
		assert_int_equal(write(fd, &value, sizeof(value)), sizeof(value));
	return fd;
}

static int
setup_loop(void **state)
{
	struct ev_loop *loop = ev_loop_new(TEST_MAXFDS);

	if (loop == NULL)
		return -1;
	*state = loop;
	return 0;
}

static int
teardown_loop(void **state)
{
	ev_loop_free(*state);
	return 0;
}

/* ---- fds ------------------------------------------------------------- */

static void
test_ev_read_and_write_callbacks_fire(void **state)
{
	struct ev_loop *loop = *state;
	struct rec r = { 0 }, w = { 0 };
	int p[2], sp[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp), 0);

	assert_int_equal(ev_add(loop, p[0], EV_READ, rec_cb, &r), 0);
	assert_int_equal(ev_add(loop, sp[0], EV_WRITE, rec_cb, &w), 0);
	assert_int_equal(ev_mask(loop, p[0]), EV_READ);
	assert_int_equal(ev_mask(loop, sp[0]), EV_WRITE);

	/* an empty pipe is not readable; a fresh socket is writable */
	assert_int_equal(ev_run_once(loop, 0), 1);
	assert_int_equal(r.calls, 0);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.fd, sp[0]);
	assert_int_equal(w.events, EV_WRITE);

	assert_int_equal(write(p[1], "x", 1), 1);
	w = (struct rec){ 0 };
	assert_int_equal(ev_run_once(loop, 1000), 2);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.fd, p[0]);
	assert_int_equal(r.events, EV_READ);
	assert_int_equal(w.calls, 1);

	/* level-triggered: unread data fires again */
	r = (struct rec){ 0 };
	assert_int_equal(ev_run_once(loop, 0), 2);
	assert_int_equal(r.calls, 1);

	assert_int_equal(ev_del(loop, p[0]), 0);
	assert_int_equal(ev_del(loop, sp[0]), 0);
	assert_int_equal(ev_mask(loop, p[0]), 0);
	assert_int_equal(ev_run_once(loop, 0), 0);
	close(p[0]);
	close(p[1]);
	close(sp[0]);
	close(sp[1]);
}

static void
test_ev_mask_changes(void **state)
{
	struct ev_loop *loop = *state;
	struct rec r = { 0 };
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp), 0);
	assert_int_equal(write(sp[1], "data", 4), 4);

	/* registered with mask 0: known, but silent */
	assert_int_equal(ev_add(loop, sp[0], 0, rec_cb, &r), 0);
	assert_int_equal(ev_run_once(loop, 0), 0);
	assert_int_equal(r.calls, 0);

	assert_int_equal(ev_mod(loop, sp[0], EV_READ | EV_WRITE), 0);
	assert_int_equal(ev_mask(loop, sp[0]), EV_READ | EV_WRITE);
	assert_int_equal(ev_run_once(loop, 0), 1);
	assert_int_equal(r.events, EV_READ | EV_WRITE);

	r = (struct rec){ 0 };
	assert_int_equal(ev_mod(loop, sp[0], EV_WRITE), 0);
	assert_int_equal(ev_mod(loop, sp[0], EV_WRITE), 0);	/* unchanged */
	assert_int_equal(ev_run_once(loop, 0), 1);
	assert_int_equal(r.events, EV_WRITE);

	/* mask 0 again: not even a hangup wakes the loop for it */
	r = (struct rec){ 0 };
	assert_int_equal(ev_mod(loop, sp[0], 0), 0);
	close(sp[1]);
	assert_int_equal(ev_run_once(loop, 0), 0);
	assert_int_equal(r.calls, 0);
	assert_int_equal(ev_mask(loop, sp[0]), 0);

	/* still registered: re-enabling works without another ev_add */
	assert_int_equal(ev_mod(loop, sp[0], EV_READ), 0);
	assert_int_equal(ev_run_once(loop, 0), 1);
	assert_true(r.events & EV_READ);

	/* bad masks and unknown fds */
	errno = 0;
	assert_int_equal(ev_mod(loop, sp[0], EV_ERROR), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(ev_del(loop, sp[0]), 0);
	errno = 0;
	assert_int_equal(ev_mod(loop, sp[0], EV_READ), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(ev_del(loop, sp[0]), -1);
	assert_int_equal(errno, ENOENT);
	close(sp[0]);
}

static void
test_ev_error_is_reported(void **state)
{
	struct ev_loop *loop = *state;
	struct rec w = { 0 };
	int p[2];

	assert_int_equal(pipe(p), 0);
	close(p[0]);		/* writing now fails: EPOLLERR */
	assert_int_equal(ev_add(loop, p[1], EV_WRITE, rec_cb, &w), 0);
	assert_int_equal(ev_run_once(loop, 1000), 1);
	assert_int_equal(w.events, EV_ERROR | EV_WRITE);
	assert_int_equal(ev_del(loop, p[1]), 0);
	close(p[1]);
}

static void
test_ev_fd_table_grows_to_maxfds(void **state)
{
	struct ev_loop *loop;
	struct rec r = { 0 };
	int fd = make_eventfd(1);
	int high = 1000;

	(void)state;
	loop = ev_loop_new(1001);
	assert_non_null(loop);
	assert_int_equal(dup2(fd, high), high);
	assert_int_equal(ev_add(loop, high, EV_READ, rec_cb, &r), 0);
	assert_int_equal(ev_run_once(loop, 0), 1);
	assert_int_equal(r.fd, high);

	errno = 0;
	assert_int_equal(ev_add(loop, 1001, EV_READ, rec_cb, &r), -1);
	assert_int_equal(errno, ERANGE);
	errno = 0;
	assert_int_equal(ev_add(loop, -1, EV_READ, rec_cb, &r), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(ev_mask(loop, 5000), 0);

	assert_int_equal(ev_del(loop, high), 0);
	close(high);
	close(fd);
	ev_loop_free(loop);
}

/* Two ready fds; whichever callback runs first deletes the other. */
struct pair {
	struct ev_loop	*loop;
	int		 fd[2];
	int		 calls[2];
	int		 replace;	/* close + reopen the victim on the same number */
	int		 newfd;
	struct rec	 newrec;
};

static void
pair_cb(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	struct pair *pr = arg;
	int me = fd == pr->fd[0] ? 0 : 1;
	int other = pr->fd[1 - me];

	(void)events;
	pr->calls[me]++;
	if (pr->calls[0] + pr->calls[1] > 1)
		return;
	assert_int_equal(ev_del(loop, other), 0);
	if (!pr->replace)
		return;
	close(other);
	/* the next eventfd takes the freed number; it is readable too */
	pr->newfd = make_eventfd(1);
	assert_int_equal(pr->newfd, other);
	assert_int_equal(ev_add(loop, pr->newfd, EV_READ, rec_cb, &pr->newrec), 0);
}

static void
run_pair(struct ev_loop *loop, int replace)
{
	struct pair pr;

	memset(&pr, 0, sizeof(pr));
	pr.loop = loop;
	pr.replace = replace;
	pr.fd[0] = make_eventfd(1);
	pr.fd[1] = make_eventfd(1);
	assert_int_equal(ev_add(loop, pr.fd[0], EV_READ, pair_cb, &pr), 0);
	assert_int_equal(ev_add(loop, pr.fd[1], EV_READ, pair_cb, &pr), 0);

	assert_int_equal(ev_run_once(loop, 1000), 1);
	assert_int_equal(pr.calls[0] + pr.calls[1], 1);
	/* the stale event of the old fd never reaches the new registration */
	assert_int_equal(pr.newrec.calls, 0);

	if (pr.calls[0] == 1) {
		ev_del(loop, pr.fd[0]);
		close(pr.fd[0]);
	} else {
		ev_del(loop, pr.fd[1]);
		close(pr.fd[1]);
	}
	if (replace) {
		/* in the next batch the new fd is reported normally */
		assert_int_equal(ev_run_once(loop, 1000), 1);
		assert_int_equal(pr.newrec.calls, 1);
		ev_del(loop, pr.newfd);
		close(pr.newfd);
	} else {
		close(pr.calls[0] == 1 ? pr.fd[1] : pr.fd[0]);
	}
}

static void
test_ev_delete_in_callback_suppresses_pending_event(void **state)
{
	run_pair(*state, 0);
}

static void
test_ev_fd_reused_in_same_batch_gets_no_stale_event(void **state)
{
	run_pair(*state, 1);
}

/* A callback that turns off its own write interest gets only what is left. */
static void
self_mod_cb(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	struct rec *r = arg;

	r->calls++;
	r->events |= events;
	assert_int_equal(ev_mod(loop, fd, 0), 0);
}

static void
test_ev_callback_may_change_own_mask(void **state)
{
	struct ev_loop *loop = *state;
	struct rec r = { 0 };
	int fd = make_eventfd(1);

	assert_int_equal(ev_add(loop, fd, EV_READ | EV_WRITE, self_mod_cb, &r), 0);
	assert_int_equal(ev_run_once(loop, 0), 1);
	assert_int_equal(r.calls, 1);
	assert_int_equal(ev_run_once(loop, 0), 0);
	assert_int_equal(r.calls, 1);
	ev_del(loop, fd);
	close(fd);
}

/* ---- timers ---------------------------------------------------------- */

struct tlog {
	struct ev_timer	 t[50];
	uint64_t	 delay[50];
	uint64_t	 deadline[50];
	int		 order[50];
	int		 n;
	int		 early_fire;	/* fired before its deadline on the loop clock */
};

static void
tlog_cb(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct tlog *tl = arg;
	int i = (int)(t - tl->t);

	if (ev_now(loop) < tl->deadline[i])
		tl->early_fire = 1;
	assert_false(ev_timer_armed(t));
	tl->order[tl->n++] = i;
}

static void
test_ev_timers_fire_in_order(void **state)
{
	struct ev_loop *loop = *state;
	struct tlog *tl = calloc(1, sizeof(*tl));
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	uint64_t start;
	int i;

	assert_non_null(tl);
	for (i = 0; i < 50; i++) {
		tl->delay[i] = (uint64_t)(rand_r(&seed) % 21);
		ev_timer_set(loop, &tl->t[i], tl->delay[i], tlog_cb, tl);
		tl->deadline[i] = ev_now(loop) + tl->delay[i];
		assert_true(ev_timer_armed(&tl->t[i]));
	}
	start = now_ms();
	while (tl->n < 50 && now_ms() - start < 2000)
		assert_int_not_equal(ev_run_once(loop, -1), -1);

	assert_int_equal(tl->n, 50);
	assert_false(tl->early_fire);
	for (i = 1; i < 50; i++) {
		if (tl->delay[tl->order[i - 1]] > tl->delay[tl->order[i]])
			fail_msg("timer %d (%llu ms) fired before timer %d (%llu ms)",
			    tl->order[i - 1], (unsigned long long)tl->delay[tl->order[i - 1]],
			    tl->order[i], (unsigned long long)tl->delay[tl->order[i]]);
	}
	/* the loop waited for them rather than spinning past them */
	assert_true(now_ms() - start <= 1000);
	free(tl);
}

static void
count_cb(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	(*(int *)arg)++;
}

static void
test_ev_timer_waits_its_delay(void **state)
{
	struct ev_loop *loop = *state;
	struct ev_timer t = { 0 };
	int fired = 0;
	uint64_t start = now_ms();

	ev_timer_set(loop, &t, 30, count_cb, &fired);
	/* -1: block until something happens; only the timer can */
	while (fired == 0)
		assert_int_not_equal(ev_run_once(loop, -1), -1);
	assert_true(now_ms() - start >= 29);
	assert_true(now_ms() - start < 1000);
	assert_false(ev_timer_armed(&t));
}

static void
test_ev_timer_cancel(void **state)
{
	struct ev_loop *loop = *state;
	struct ev_timer t[5];
	int fired[5] = { 0 };
	int i;

	memset(t, 0, sizeof(t));
	ev_timer_cancel(loop, &t[0]);	/* unarmed: a no-op */
	for (i = 0; i < 5; i++)
		ev_timer_set(loop, &t[i], (uint64_t)i, count_cb, &fired[i]);
	ev_timer_cancel(loop, &t[2]);
	ev_timer_cancel(loop, &t[0]);
	ev_timer_cancel(loop, &t[0]);
	assert_false(ev_timer_armed(&t[2]));
	assert_false(ev_timer_armed(&t[0]));
	assert_true(ev_timer_armed(&t[4]));

	for (i = 0; i < 20 && (fired[1] + fired[3] + fired[4]) < 3; i++)
		ev_run_once(loop, 10);
	assert_int_equal(fired[0], 0);
	assert_int_equal(fired[1], 1);
	assert_int_equal(fired[2], 0);
	assert_int_equal(fired[3], 1);
	assert_int_equal(fired[4], 1);
	/* nothing left: a bounded wait returns empty */
	assert_int_equal(ev_run_once(loop, 0), 0);
}

/* The first of two due timers cancels the second in the same pass. */
struct victim {
	struct ev_timer	 a, b;
	int		 a_fired, b_fired;
};

static void
victim_b_cb(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	((struct victim *)arg)->b_fired++;
}

static void
victim_a_cb(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct victim *v = arg;

	(void)t;
	v->a_fired++;
	ev_timer_cancel(loop, &v->b);
}

static void
test_ev_timer_cancel_from_timer_callback(void **state)
{
	struct ev_loop *loop = *state;
	struct victim v;

	memset(&v, 0, sizeof(v));
	ev_timer_set(loop, &v.a, 0, victim_a_cb, &v);
	ev_timer_set(loop, &v.b, 1, victim_b_cb, &v);
	usleep(5000);
	ev_run_once(loop, 0);
	ev_run_once(loop, 0);
	assert_int_equal(v.a_fired, 1);
	assert_int_equal(v.b_fired, 0);
}

static void
test_ev_timer_rearm(void **state)
{
	struct ev_loop *loop = *state;
	struct ev_timer t = { 0 }, other = { 0 };
	int fired = 0, other_fired = 0;
	uint64_t start = now_ms();

	/* earlier: from 10 s down to 5 ms */
	ev_timer_set(loop, &other, 10000, count_cb, &other_fired);
	ev_timer_set(loop, &t, 10000, count_cb, &fired);
	ev_timer_set(loop, &t, 5, count_cb, &fired);
	while (fired == 0 && now_ms() - start < 2000)
		ev_run_once(loop, -1);
	assert_int_equal(fired, 1);
	assert_true(now_ms() - start < 1000);
	assert_true(ev_timer_armed(&other));

	/* later: from 0 ms up to 10 s, so it must not fire now */
	fired = 0;
	ev_timer_set(loop, &t, 0, count_cb, &fired);
	ev_timer_set(loop, &t, 10000, count_cb, &fired);
	usleep(2000);
	ev_run_once(loop, 0);
	assert_int_equal(fired, 0);
	assert_true(ev_timer_armed(&t));
	ev_timer_cancel(loop, &t);
	ev_timer_cancel(loop, &other);
	assert_int_equal(other_fired, 0);
}

/* A timer re-arming itself for 0 ms fires once per iteration, not forever. */
static void
rearm_zero_cb(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	(*(int *)arg)++;
	ev_timer_set(loop, t, 0, rearm_zero_cb, arg);
}

static void
test_ev_timer_rearm_in_callback_does_not_starve_loop(void **state)
{
	struct ev_loop *loop = *state;
	struct ev_timer t = { 0 };
	int fired = 0;

	ev_timer_set(loop, &t, 0, rearm_zero_cb, &fired);
	assert_int_equal(ev_run_once(loop, 0), 1);
	assert_int_equal(fired, 1);
	assert_int_equal(ev_run_once(loop, 0), 1);
	assert_int_equal(fired, 2);
	ev_timer_cancel(loop, &t);
}

/* ---- deferred calls and ev_run --------------------------------------- */

struct dlog {
	struct ev_loop	*loop;
	char		 seq[32];
	size_t		 n;
};

static void
dlog_add(struct dlog *d, char c)
{
	assert_true(d->n < sizeof(d->seq) - 1);
	d->seq[d->n++] = c;
}

static void defer_x(void *arg) { dlog_add(arg, 'x'); }
static void defer_y(void *arg) { dlog_add(arg, 'y'); }

static void
defer_chain(void *arg)
{
	struct dlog *d = arg;

	dlog_add(d, 'c');
	assert_int_equal(ev_defer(d->loop, defer_x, d), 0);
}

static void
defer_fd_cb(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	struct dlog *d = arg;

	(void)events;
	(void)fd;
	dlog_add(d, 'F');
	assert_int_equal(ev_defer(loop, defer_y, d), 0);
	assert_int_equal(ev_defer(loop, defer_chain, d), 0);
}

static void
test_ev_defer_runs_after_batch_in_fifo_order(void **state)
{
	struct ev_loop *loop = *state;
	struct dlog d;
	int a = make_eventfd(1), b = make_eventfd(1);

	memset(&d, 0, sizeof(d));
	d.loop = loop;
	assert_int_equal(ev_add(loop, a, EV_READ, defer_fd_cb, &d), 0);
	assert_int_equal(ev_add(loop, b, EV_READ, defer_fd_cb, &d), 0);
	assert_int_equal(ev_run_once(loop, 1000), 2);
	/* both callbacks first, then their defers in order, then the chained ones */
	assert_string_equal(d.seq, "FFycycxx");

	ev_del(loop, a);
	ev_del(loop, b);
	close(a);
	close(b);
}

static void
test_ev_defer_outside_loop_runs_without_waiting(void **state)
{
	struct ev_loop *loop = *state;
	struct dlog d;
	uint64_t start = now_ms();

	memset(&d, 0, sizeof(d));
	d.loop = loop;
	assert_int_equal(ev_defer(loop, defer_chain, &d), 0);
	assert_int_equal(ev_defer(loop, defer_y, &d), 0);
	ev_run_once(loop, 5000);
	assert_string_equal(d.seq, "cyx");
	assert_true(now_ms() - start < 1000);
}

static void
defer_free(void *arg)
{
	free(arg);
}

static void
test_ev_loop_free_runs_pending_defers(void **state)
{
	struct ev_loop *loop = ev_loop_new(16);
	void *p = malloc(32);

	(void)state;
	assert_non_null(loop);
	assert_non_null(p);
	assert_int_equal(ev_defer(loop, defer_free, p), 0);
	ev_loop_free(loop);	/* ASan reports a leak if the defer was dropped */
}

static void
stop_cb(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	(void)t;
	(*(int *)arg)++;
	ev_stop(loop);
}

static void
test_ev_run_until_stop(void **state)
{
	struct ev_loop *loop = *state;
	struct ev_timer t = { 0 };
	int stopped = 0;
	uint64_t start = now_ms();

	ev_timer_set(loop, &t, 10, stop_cb, &stopped);
	assert_int_equal(ev_run(loop), 0);
	assert_int_equal(stopped, 1);
	assert_true(now_ms() - start >= 9);
	assert_true(ev_now(loop) >= start);
}

static void
watchdog(int sig)
{
	static const char msg[] = "test_ev: watchdog: a test hung\n";

	(void)sig;
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

/*
 * Sibling loops share one fd table. In one batch of loop A, a callback
 * deletes and closes A's other fd, whose number a new eventfd then takes and
 * loop B registers: A's pending event for the old fd is dropped, never
 * B's callback run on A; A cannot register an fd B holds; B gets its event.
 */
struct sib {
	struct ev_loop	*a, *b;
	int		 fd[2];
	int		 a_calls, reused;
	struct rec	 b_rec;
};

static void
sib_a_cb(struct ev_loop *loop, int fd, unsigned events, void *arg)
{
	struct sib *x = arg;
	int other = fd == x->fd[0] ? x->fd[1] : x->fd[0];

	(void)events;
	x->a_calls++;
	if (x->reused != -1)
		return;
	assert_int_equal(ev_del(loop, other), 0);
	close(other);
	x->reused = make_eventfd(1);		/* the lowest free number: other's */
	assert_int_equal(x->reused, other);
	assert_int_equal(ev_add(x->b, x->reused, EV_READ, rec_cb, &x->b_rec), 0);
}

static void
test_ev_siblings_share_the_table_and_keep_apart(void **state)
{
	struct sib x = { .reused = -1 };

	(void)state;
	assert_non_null(x.a = ev_loop_new(TEST_MAXFDS));
	assert_non_null(x.b = ev_loop_new_sibling(x.a));
	x.fd[0] = make_eventfd(1);
	x.fd[1] = make_eventfd(1);
	assert_int_equal(ev_add(x.a, x.fd[0], EV_READ, sib_a_cb, &x), 0);
	assert_int_equal(ev_add(x.a, x.fd[1], EV_READ, sib_a_cb, &x), 0);

	assert_int_equal(ev_run_once(x.a, 1000), 1);	/* the stale event is not a call */
	assert_int_equal(x.a_calls, 1);
	assert_int_equal(x.b_rec.calls, 0);
	assert_int_equal(ev_mask(x.a, x.reused), 0);	/* not A's */
	assert_int_equal(ev_add(x.a, x.reused, EV_READ, rec_cb, &x.b_rec), -1);
	assert_int_equal(errno, EBUSY);

	assert_int_equal(ev_run_once(x.b, 1000), 1);
	assert_int_equal(x.b_rec.calls, 1);
	assert_int_equal(x.b_rec.fd, x.reused);

	assert_int_equal(ev_del(x.b, x.reused), 0);
	close(x.reused);
	close(x.fd[0] == x.reused ? x.fd[1] : x.fd[0]);
	ev_loop_free(x.b);
	ev_loop_free(x.a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ev_read_and_write_callbacks_fire, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_mask_changes, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_error_is_reported, setup_loop, teardown_loop),
		cmocka_unit_test(test_ev_fd_table_grows_to_maxfds),
		cmocka_unit_test_setup_teardown(test_ev_delete_in_callback_suppresses_pending_event, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_fd_reused_in_same_batch_gets_no_stale_event, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_callback_may_change_own_mask, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_timers_fire_in_order, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_timer_waits_its_delay, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_timer_cancel, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_timer_cancel_from_timer_callback, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_timer_rearm, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_timer_rearm_in_callback_does_not_starve_loop, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_defer_runs_after_batch_in_fifo_order, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_ev_defer_outside_loop_runs_without_waiting, setup_loop, teardown_loop),
		cmocka_unit_test(test_ev_loop_free_runs_pending_defers),
		cmocka_unit_test(test_ev_siblings_share_the_table_and_keep_apart),
		cmocka_unit_test_setup_teardown(test_ev_run_until_stop, setup_loop, teardown_loop),
	};

	signal(SIGALRM, watchdog);
	alarm(30);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * ev: the event loop of ev.h, redis-ae sized.
 *
 * Owns: one epoll instance (level-triggered), the fd-indexed handler table
 * (maxfds slots, calloc'd at once: its zero pages cost no memory until an
 * fd number uses them, so it needs no growing), the binary min-heap of armed timers (the
 * struct ev_timer lives in its owner; the heap holds pointers and each timer
 * knows its position), the FIFO of deferred calls, and the cached clock.
 *
 * One iteration: wait (bounded by the nearest timer), refresh the clock,
 * dispatch the fd events, run the deferred calls, fire the due timers, run
 * the deferred calls again. epoll_ctl is called only when an fd's mask
 * really changes; an fd registered with mask 0 stays in the table but not in
 * epoll, so EPOLLHUP/EPOLLERR cannot wake the loop for it.
 *
 * Every epoll registration carries the fd and the table slot's generation,
 * bumped by ev_del(); an event whose generation is stale (its fd was deleted,
 * maybe re-added, by an earlier callback of the same batch) is dropped.
 *
 * Loops of one process may share one fd table (ev_loop_new_sibling): fd
 * numbers are process-wide, so per-loop tables would each grow to the
 * highest fd of all of them, a table's worth of memory per loop. A slot
 * says which loop owns it; only the owner writes it, and takes it over only
 * after the previous owner's ev_del() (the fd closed, its number reused).
 * Another loop reads just the owner and the generation of a slot (atomics),
 * for a stale event of an fd it has deleted, and drops that event.
 *
 * Never: logs, closes or reads fds, touches a timer's owner, or blocks
 * anywhere but in epoll_wait. Not thread-safe: one loop per thread.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "ev.h"

#define EV_BATCH	256	/* epoll events per epoll_wait */
#define EV_MIN_TIMERS	64
#define EV_MIN_DEFERS	16

struct ev_fd {
	struct ev_loop	*owner;		/* ev_add()ed there and not ev_del()ed: atomic */
	unsigned	 mask;		/* EV_READ|EV_WRITE asked for */
	uint32_t	 gen;		/* bumped on ev_del(): atomic */
	ev_fd_cb	*cb;
	void		*arg;
};

struct ev_defer_call {
	ev_defer_cb	*fn;
	void		*arg;
};

struct ev_loop {
	int			 epfd;
	int			 maxfds;
	struct ev_fd		*fds;		/* maxfds slots */
	int			 fds_borrowed;	/* a sibling's: not freed here */

	struct ev_timer		**heap;
	size_t			 nheap, heapcap;

	struct ev_defer_call	*defers;
	size_t			 ndefers, defercap;

	uint64_t		 now;
	int			 stop;
	struct epoll_event	 events[EV_BATCH];
};

/* ---- clock ------------------------------------------------------------ */

uint64_t
ev_clock_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;	/* cannot fail with a valid clock id */
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
ev_now(const struct ev_loop *loop)
{
	return loop->now;
}

/* ---- loop ------------------------------------------------------------- */

/* A loop with the fd table shared, or (shared NULL) its own. */
static struct ev_loop *
ev_loop_make(int maxfds, struct ev_fd *shared)
{
	struct ev_loop *loop;

	if (maxfds <= 0) {
		errno = EINVAL;
		return NULL;
	}
	loop = calloc(1, sizeof(*loop));
	if (loop == NULL)
		return NULL;
	loop->maxfds = maxfds;
	loop->fds = shared != NULL ? shared : calloc((size_t)maxfds, sizeof(*loop->fds));
	loop->fds_borrowed = shared != NULL;
	loop->epfd = loop->fds != NULL ? epoll_create1(EPOLL_CLOEXEC) : -1;
	if (loop->epfd == -1) {
		if (!loop->fds_borrowed)
			free(loop->fds);
		free(loop);
		return NULL;
	}
	loop->now = ev_clock_ms();
	return loop;
}

struct ev_loop *
ev_loop_new(int maxfds)
{
	return ev_loop_make(maxfds, NULL);
}

struct ev_loop *
ev_loop_new_sibling(struct ev_loop *first)
{
	return ev_loop_make(first->maxfds, first->fds);
}

static void ev_run_defers(struct ev_loop *);

/*
 * Pending deferred calls still run (they are usually frees); armed timers
 * are forgotten without touching them, since their owners may be gone.
 */
void
ev_loop_free(struct ev_loop *loop)
{
	if (loop == NULL)
		return;
	ev_run_defers(loop);
	close(loop->epfd);
	if (!loop->fds_borrowed)
		free(loop->fds);
	free(loop->heap);
	free(loop->defers);
	free(loop);
}

void
ev_stop(struct ev_loop *loop)
{
	loop->stop = 1;
}

/* ---- fd table --------------------------------------------------------- */

static struct ev_loop *
ev_fd_owner(const struct ev_fd *e)
{
	return __atomic_load_n(&e->owner, __ATOMIC_ACQUIRE);
}

/* fd's slot if this loop owns it. */
static struct ev_fd *
ev_fd_slot(const struct ev_loop *loop, int fd)
{
	if (fd < 0 || fd >= loop->maxfds || ev_fd_owner(&loop->fds[fd]) != loop)
		return NULL;
	return &loop->fds[fd];
}

static uint32_t
ev_epoll_bits(unsigned mask)
{
	return ((mask & EV_READ) ? EPOLLIN : 0) | ((mask & EV_WRITE) ? EPOLLOUT : 0);
}

/*
 * Bring epoll in line with a mask change: ADD from 0, DEL to 0, MOD
 * otherwise. A closed-and-reused fd number may be missing from epoll (or
 * still in it) behind our back; ENOENT and EEXIST switch to the other call.
 */
static int
ev_epoll_update(struct ev_loop *loop, int fd, const struct ev_fd *e, unsigned old)
{
	struct epoll_event ee;
	int op;

	if (old == e->mask)
		return 0;
	memset(&ee, 0, sizeof(ee));
	ee.events = ev_epoll_bits(e->mask);
	ee.data.u64 = ((uint64_t)e->gen << 32) | (uint32_t)fd;
	if (e->mask == 0) {
		if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, &ee) == -1 &&
		    errno != ENOENT && errno != EBADF)
			return -1;
		return 0;
	}
	op = old == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	if (epoll_ctl(loop->epfd, op, fd, &ee) == 0)
		return 0;
	if (op == EPOLL_CTL_ADD && errno == EEXIST)
		op = EPOLL_CTL_MOD;
	else if (op == EPOLL_CTL_MOD && errno == ENOENT)
		op = EPOLL_CTL_ADD;
	else
		return -1;
	return epoll_ctl(loop->epfd, op, fd, &ee);
}

/* Registering an fd that is already registered replaces its callback and mask. */
int
ev_add(struct ev_loop *loop, int fd, unsigned mask, ev_fd_cb *cb, void *arg)
{
	struct ev_loop *owner;
	struct ev_fd *e;
	unsigned old;

	if (fd < 0 || cb == NULL || (mask & ~(unsigned)(EV_READ | EV_WRITE))) {
		errno = fd < 0 ? EBADF : EINVAL;
		return -1;
	}
	if (fd >= loop->maxfds) {
		errno = ERANGE;
		return -1;
	}
	e = &loop->fds[fd];
	owner = ev_fd_owner(e);
	if (owner != NULL && owner != loop) {
		errno = EBUSY;		/* a sibling still holds this fd: its ev_del() is missing */
		return -1;
	}
	old = owner == loop ? e->mask : 0;
	e->mask = mask;
	if (ev_epoll_update(loop, fd, e, old) == -1) {
		e->mask = old;
		return -1;
	}
	e->cb = cb;
	e->arg = arg;
	__atomic_store_n(&e->owner, loop, __ATOMIC_RELEASE);
	return 0;
}

int
ev_mod(struct ev_loop *loop, int fd, unsigned mask)
{
	struct ev_fd *e = ev_fd_slot(loop, fd);
	unsigned old;

	if (e == NULL) {
		errno = ENOENT;
		return -1;
	}
	if (mask & ~(unsigned)(EV_READ | EV_WRITE)) {
		errno = EINVAL;
		return -1;
	}
	old = e->mask;
	e->mask = mask;
	if (ev_epoll_update(loop, fd, e, old) == -1) {
		e->mask = old;
		return -1;
	}
	return 0;
}

int
ev_del(struct ev_loop *loop, int fd)
{
	struct ev_fd *e = ev_fd_slot(loop, fd);
	unsigned old;

	if (e == NULL) {
		errno = ENOENT;
		return -1;
	}
	old = e->mask;
	e->mask = 0;
	/* an fd closed before ev_del() already left epoll: not an error */
	(void)ev_epoll_update(loop, fd, e, old);
	e->cb = NULL;
	e->arg = NULL;
	__atomic_store_n(&e->gen, e->gen + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&e->owner, NULL, __ATOMIC_RELEASE);
	return 0;
}

unsigned
ev_mask(const struct ev_loop *loop, int fd)
{
	const struct ev_fd *e = ev_fd_slot(loop, fd);

	return e != NULL ? e->mask : 0;
}

/* ---- timers: binary min-heap on `when`, idx = position + 1 -------------- */

static void
ev_heap_place(struct ev_loop *loop, struct ev_timer *t, size_t pos)
{
	loop->heap[pos] = t;
	t->idx = pos + 1;
}

static void
ev_heap_up(struct ev_loop *loop, size_t pos)
{
	struct ev_timer *t = loop->heap[pos];

	while (pos > 0) {
		size_t parent = (pos - 1) / 2;

		if (loop->heap[parent]->when <= t->when)
			break;
		ev_heap_place(loop, loop->heap[parent], pos);
		pos = parent;
	}
	ev_heap_place(loop, t, pos);
}

static void
ev_heap_down(struct ev_loop *loop, size_t pos)
{
	struct ev_timer *t = loop->heap[pos];

	for (;;) {
		size_t child = 2 * pos + 1;

		if (child >= loop->nheap)
			break;
		if (child + 1 < loop->nheap &&
		    loop->heap[child + 1]->when < loop->heap[child]->when)
			child++;
		if (t->when <= loop->heap[child]->when)
			break;
		ev_heap_place(loop, loop->heap[child], pos);
		pos = child;
	}
	ev_heap_place(loop, t, pos);
}

static void
ev_heap_remove(struct ev_loop *loop, struct ev_timer *t)
{
	size_t pos = t->idx - 1;
	struct ev_timer *last = loop->heap[--loop->nheap];

	t->idx = 0;
	if (last == t)
		return;
	ev_heap_place(loop, last, pos);
	if (pos > 0 && loop->heap[(pos - 1) / 2]->when > last->when)
		ev_heap_up(loop, pos);
	else
		ev_heap_down(loop, pos);
}

static int
ev_heap_grow(struct ev_loop *loop)
{
	size_t n = loop->heapcap > 0 ? loop->heapcap * 2 : EV_MIN_TIMERS;
	struct ev_timer **p;

	if (n > SIZE_MAX / sizeof(*p))
		return -1;
	p = realloc(loop->heap, n * sizeof(*p));
	if (p == NULL)
		return -1;
	loop->heap = p;
	loop->heapcap = n;
	return 0;
}

/*
 * ev.h gives this no error return: if the heap cannot grow (ENOMEM), the
 * timer is left unarmed, which the caller can see with ev_timer_armed().
 */
void
ev_timer_set(struct ev_loop *loop, struct ev_timer *t, uint64_t ms,
    ev_timer_cb *cb, void *arg)
{
	uint64_t when = ms > UINT64_MAX - loop->now ? UINT64_MAX : loop->now + ms;

	t->cb = cb;
	t->arg = arg;
	if (t->idx != 0) {
		uint64_t old = t->when;

		t->when = when;
		if (when < old)
			ev_heap_up(loop, t->idx - 1);
		else
			ev_heap_down(loop, t->idx - 1);
		return;
	}
	if (loop->nheap == loop->heapcap && ev_heap_grow(loop) == -1)
		return;
	t->when = when;
	loop->heap[loop->nheap] = t;
	ev_heap_up(loop, loop->nheap++);
}

void
ev_timer_cancel(struct ev_loop *loop, struct ev_timer *t)
{
	if (t->idx != 0)
		ev_heap_remove(loop, t);
}

/* ms until the nearest timer, capped to what epoll_wait takes; -1 if none. */
static int
ev_timer_timeout(const struct ev_loop *loop)
{
	uint64_t when;

	if (loop->nheap == 0)
		return -1;
	when = loop->heap[0]->when;
	if (when <= loop->now)
		return 0;
	return when - loop->now > INT_MAX ? INT_MAX : (int)(when - loop->now);
}

/*
 * Fire the due timers, earliest first. At most as many as were armed when
 * the pass began: a callback that re-arms its timer for 0 ms waits for the
 * next iteration instead of starving the fds.
 */
static int
ev_run_timers(struct ev_loop *loop)
{
	size_t budget = loop->nheap;
	int fired = 0;

	while (budget-- > 0 && loop->nheap > 0 && loop->heap[0]->when <= loop->now) {
		struct ev_timer *t = loop->heap[0];

		ev_heap_remove(loop, t);
		fired++;
		t->cb(loop, t, t->arg);
	}
	return fired;
}

/* ---- deferred calls ------------------------------------------------------ */

int
ev_defer(struct ev_loop *loop, ev_defer_cb *fn, void *arg)
{
	if (loop->ndefers == loop->defercap) {
		size_t n = loop->defercap > 0 ? loop->defercap * 2 : EV_MIN_DEFERS;
		struct ev_defer_call *p;

		if (n > SIZE_MAX / sizeof(*p) ||
		    (p = realloc(loop->defers, n * sizeof(*p))) == NULL) {
			errno = ENOMEM;
			return -1;
		}
		loop->defers = p;
		loop->defercap = n;
	}
	loop->defers[loop->ndefers].fn = fn;
	loop->defers[loop->ndefers].arg = arg;
	loop->ndefers++;
	return 0;
}

/* FIFO; calls deferred by deferred calls run in the same pass. */
static void
ev_run_defers(struct ev_loop *loop)
{
	size_t i;

	for (i = 0; i < loop->ndefers; i++) {
		struct ev_defer_call c = loop->defers[i];

		c.fn(c.arg);
	}
	loop->ndefers = 0;
}

/* ---- dispatch ------------------------------------------------------------ */

static unsigned
ev_events_of(uint32_t ep, unsigned mask)
{
	unsigned ev = 0;

	if (mask == 0)
		return 0;
	if (ep & EPOLLIN)
		ev |= EV_READ;
	if (ep & EPOLLOUT)
		ev |= EV_WRITE;
	/* an error or hangup ends any pending read or write: let both see it */
	if (ep & (EPOLLERR | EPOLLHUP))
		ev |= EV_ERROR | EV_READ | EV_WRITE;
	return ev & (mask | EV_ERROR);
}

static int
ev_dispatch(struct ev_loop *loop, int n)
{
	int i, calls = 0;

	for (i = 0; i < n; i++) {
		uint64_t data = loop->events[i].data.u64;
		int fd = (int)(uint32_t)data;
		struct ev_fd *e = ev_fd_slot(loop, fd);
		unsigned events;

		if (e == NULL || __atomic_load_n(&e->gen, __ATOMIC_RELAXED) != (uint32_t)(data >> 32))
			continue;	/* deleted earlier in this batch (maybe taken by a sibling) */
		events = ev_events_of(loop->events[i].events, e->mask);
		if (events == 0)
			continue;	/* masked off earlier in this batch */
		calls++;
		e->cb(loop, fd, events, e->arg);
	}
	return calls;
}

int
ev_run_once(struct ev_loop *loop, int timeout_ms)
{
	int timeout, n, calls;

	loop->now = ev_clock_ms();
	timeout = ev_timer_timeout(loop);
	if (timeout_ms >= 0 && (timeout == -1 || timeout_ms < timeout))
		timeout = timeout_ms;
	if (loop->ndefers > 0)
		timeout = 0;
	n = epoll_wait(loop->epfd, loop->events, EV_BATCH, timeout);
	if (n == -1 && errno != EINTR)
		return -1;
	loop->now = ev_clock_ms();
	calls = n > 0 ? ev_dispatch(loop, n) : 0;
	ev_run_defers(loop);
	calls += ev_run_timers(loop);
	ev_run_defers(loop);
	return calls;
}

int
ev_run(struct ev_loop *loop)
{
	loop->stop = 0;
	while (!loop->stop) {
		if (ev_run_once(loop, -1) == -1)
			return -1;
	}
	return 0;
}

/*
 * ev: the event loop. epoll (level-triggered), an fd-indexed handler table,
 * a binary min-heap of timers, deferred calls run after each iteration.
 *
 * One loop per thread; nothing here is thread-safe, and nothing here is
 * global. Callbacks may add, modify or delete any fd or timer, including
 * their own; a deleted fd's pending events in the current batch are skipped.
 * Memory that a callback frees must be freed through ev_defer() so that no
 * callback later in the same batch touches it.
 */
#ifndef SMTPWALL_EV_H
#define SMTPWALL_EV_H

#include <stddef.h>
#include <stdint.h>

#define EV_READ		0x1
#define EV_WRITE	0x2
#define EV_ERROR	0x4	/* reported only: EPOLLERR/EPOLLHUP */

struct ev_loop;
struct ev_timer;

typedef void ev_fd_cb(struct ev_loop *, int fd, unsigned events, void *arg);
typedef void ev_timer_cb(struct ev_loop *, struct ev_timer *, void *arg);
typedef void ev_defer_cb(void *arg);

/* Embed in the owner's struct; zero-initialise. Private fields. */
struct ev_timer {
	uint64_t	 when;		/* ms, loop clock */
	size_t		 idx;		/* position in the heap + 1; 0 = not armed */
	ev_timer_cb	*cb;
	void		*arg;
};

/* maxfds: the highest fd number + 1 it can take (RLIMIT_NOFILE). NULL on error. */
struct ev_loop *ev_loop_new(int maxfds);
void	ev_loop_free(struct ev_loop *);
/*
 * A loop for another thread that shares first's fd table (each fd is
 * registered in one loop at a time; a sibling must not outlive first).
 * NULL on error.
 */
struct ev_loop *ev_loop_new_sibling(struct ev_loop *first);

/* Register fd with mask EV_READ|EV_WRITE (may be 0). 0, or -1 with errno. */
int	ev_add(struct ev_loop *, int fd, unsigned mask, ev_fd_cb *cb, void *arg);
/* Change the mask (no syscall if unchanged). 0 / -1. */
int	ev_mod(struct ev_loop *, int fd, unsigned mask);
/* Forget fd (before close()). 0 / -1. */
int	ev_del(struct ev_loop *, int fd);
unsigned ev_mask(const struct ev_loop *, int fd);

/* Arm (or re-arm) t to fire once after ms milliseconds. */
void	ev_timer_set(struct ev_loop *, struct ev_timer *t, uint64_t ms,
	    ev_timer_cb *cb, void *arg);
void	ev_timer_cancel(struct ev_loop *, struct ev_timer *t);	/* unarmed is fine */
static inline int ev_timer_armed(const struct ev_timer *t) { return t->idx != 0; }

/* Monotonic milliseconds, cached once per loop iteration. */
uint64_t ev_now(const struct ev_loop *);
/* The same clock read now: for code on other threads than the loop's (any thread). */
uint64_t ev_clock_ms(void);

/* Run fn(arg) after the current batch of callbacks, in FIFO order. 0 / -1 ENOMEM. */
int	ev_defer(struct ev_loop *, ev_defer_cb *fn, void *arg);

/* Run until ev_stop(). 0, or -1 if epoll_wait failed with something other than EINTR. */
int	ev_run(struct ev_loop *);
void	ev_stop(struct ev_loop *);

/* One iteration, waiting at most timeout_ms (-1: until an event or timer). For tests. */
int	ev_run_once(struct ev_loop *, int timeout_ms);

#endif

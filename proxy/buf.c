/*
 * buf: the linear byte buffer of buf.h.
 *
 * Owns: the storage of one struct buf (malloc'd lazily, freed when empty on
 * buf_release()). Growth doubles from BUF_MIN_SIZE and is capped at the
 * caller's hard maximum; compaction (moving the data back to offset 0) happens
 * only inside buf_reserve(), so a slice taken from the buffer stays valid
 * until the next call that may grow it.
 *
 * Never: logs, does I/O, grows past `max`, or changes the buffer on failure.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define BUF_MIN_SIZE	1024

/*
 * The block cache of a thread that asked for one (buf_pool_enable: the
 * event loop). Sessions take and give back their I/O buffers on every event
 * (a buffer is released when empty, so an idle session holds none); freed
 * blocks of the power-of-two sizes buffers grow by wait here, so that this
 * is a push and a pop, not malloc and free. Bounded: BUF_POOL_DEPTH blocks a
 * size. Off in sanitizer builds, whose use-after-free checks a cache hides.
 */
#define BUF_POOL_CLASSES	7	/* 1 KiB .. 64 KiB */
#define BUF_POOL_DEPTH		32

#if defined(__SANITIZE_ADDRESS__)
#define BUF_POOL_ALLOWED	0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BUF_POOL_ALLOWED	0
#endif
#endif
#ifndef BUF_POOL_ALLOWED
#define BUF_POOL_ALLOWED	1
#endif

static __thread struct buf_pool {
	int	 on;
	unsigned n[BUF_POOL_CLASSES];
	void	*blk[BUF_POOL_CLASSES][BUF_POOL_DEPTH];
} buf_pool;

static int
buf_pool_class(size_t sz)
{
	size_t c = BUF_MIN_SIZE;
	int k;

	for (k = 0; k < BUF_POOL_CLASSES; k++, c <<= 1)
		if (sz == c)
			return k;
	return -1;
}

static void *
buf_alloc(size_t sz)
{
	int k;

	if (buf_pool.on && (k = buf_pool_class(sz)) != -1 && buf_pool.n[k] > 0)
		return buf_pool.blk[k][--buf_pool.n[k]];
	return malloc(sz);
}

static void
buf_dealloc(void *p, size_t sz)
{
	int k;

	if (p != NULL && buf_pool.on && (k = buf_pool_class(sz)) != -1 &&
	    buf_pool.n[k] < BUF_POOL_DEPTH) {
		buf_pool.blk[k][buf_pool.n[k]++] = p;
		return;
	}
	free(p);
}

void
buf_pool_enable(void)
{
	buf_pool.on = BUF_POOL_ALLOWED;
}

void
buf_pool_drain(void)
{
	int k;

	for (k = 0; k < BUF_POOL_CLASSES; k++)
		while (buf_pool.n[k] > 0)
			free(buf_pool.blk[k][--buf_pool.n[k]]);
	buf_pool.on = 0;
}

/* The size to grow to for `want` bytes in total, or 0 if past max. */
static size_t
buf_grow_size(size_t cur, size_t want, size_t max)
{
	size_t sz = cur < BUF_MIN_SIZE ? BUF_MIN_SIZE : cur;

	if (want > max)
		return 0;
	while (sz < want) {
		if (sz > max / 2) {
			sz = max;
			break;
		}
		sz *= 2;
	}
	return sz > max ? max : sz;
}

/* 1 if a block of sz bytes may come from and go back to this thread's cache. */
static int
buf_pool_holds(size_t sz)
{
	return buf_pool.on && buf_pool_class(sz) != -1;
}

/*
 * Move the data to a new allocation of `sz` bytes at offset 0. On a buffer
 * whose data already starts at 0, realloc may extend in place; otherwise a
 * fresh block avoids copying the consumed head. With the cache on, a block of
 * a cached size moves through the cache instead: a buffer released after each
 * burst grows again (1 KiB .. 64 KiB) on the next one, e.g. through every
 * large message, and realloc would be an allocator call each time. Either way
 * the buffer is untouched if allocation fails.
 */
static int
buf_resize(struct buf *b, size_t sz)
{
	char *p;

	if (b->data == NULL) {
		if ((p = buf_alloc(sz)) == NULL)
			return -1;
	} else if (b->head == 0 && !buf_pool_holds(b->size) && !buf_pool_holds(sz)) {
		p = realloc(b->data, sz);
		if (p == NULL)
			return -1;
	} else {
		p = buf_alloc(sz);
		if (p == NULL)
			return -1;
		memcpy(p, b->data + b->head, b->len);
		buf_dealloc(b->data, b->size);
	}
	b->data = p;
	b->size = sz;
	b->head = 0;
	return 0;
}

int
buf_reserve(struct buf *b, size_t need, size_t max)
{
	size_t sz;

	if (need > SIZE_MAX - b->len || b->len + need > max) {
		errno = ENOBUFS;
		return -1;
	}
	if (b->data != NULL && buf_room(b) >= need)
		return 0;
	if (b->data != NULL && b->size - b->len >= need) {
		memmove(b->data, b->data + b->head, b->len);
		b->head = 0;
		return 0;
	}
	sz = buf_grow_size(b->size, b->len + need, max);
	if (sz == 0) {
		errno = ENOBUFS;
		return -1;
	}
	if (buf_resize(b, sz) == -1) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

void
buf_commit(struct buf *b, size_t n)
{
	assert(n == 0 || (b->data != NULL && n <= buf_room(b)));
	b->len += n;
}

void
buf_consume(struct buf *b, size_t n)
{
	assert(n <= b->len);
	b->len -= n;
	b->head = b->len == 0 ? 0 : b->head + n;
}

int
buf_append(struct buf *b, const void *p, size_t n, size_t max)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n, max) == -1)
		return -1;
	memcpy(buf_tail(b), p, n);
	b->len += n;
	return 0;
}

/*
 * vsnprintf needs room for a NUL that is never committed. When the text
 * itself fits under max but its NUL does not, format into a scratch block.
 */
static int buf_vprintf_exact(struct buf *, size_t, size_t, const char *, va_list)
    __attribute__((format(printf, 4, 0)));

static int
buf_vprintf_exact(struct buf *b, size_t max, size_t n, const char *fmt, va_list ap)
{
	char *tmp;
	int rc;

	if (buf_reserve(b, n + 1, max) == 0) {
		vsnprintf(buf_tail(b), n + 1, fmt, ap);
		b->len += n;
		return 0;
	}
	if (errno != ENOBUFS)
		return -1;
	tmp = malloc(n + 1);
	if (tmp == NULL) {
		errno = ENOMEM;
		return -1;
	}
	vsnprintf(tmp, n + 1, fmt, ap);
	rc = buf_append(b, tmp, n, max);
	free(tmp);
	return rc;
}

int
buf_printf(struct buf *b, size_t max, const char *fmt, ...)
{
	va_list ap, ap2;
	size_t room = b->data != NULL ? buf_room(b) : 0;
	int n, rc;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(room > 0 ? buf_tail(b) : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		va_end(ap2);
		errno = EINVAL;
		return -1;
	}
	if ((size_t)n < room) {
		va_end(ap2);
		if (b->len + (size_t)n > max) {
			/* it fitted in storage allocated under a larger max */
			errno = ENOBUFS;
			return -1;
		}
		b->len += (size_t)n;
		return 0;
	}
	if (n == 0) {
		va_end(ap2);
		return 0;
	}
	rc = buf_vprintf_exact(b, max, (size_t)n, fmt, ap2);
	va_end(ap2);
	return rc;
}

int
buf_getline(const struct buf *b, struct slice *line)
{
	const char *p, *lf;

	if (b->len == 0)
		return 0;
	p = b->data + b->head;
	lf = memchr(p, '\n', b->len);
	if (lf == NULL)
		return 0;
	line->p = p;
	line->len = (size_t)(lf - p) + 1;
	return 1;
}

void
buf_reset(struct buf *b)
{
	b->head = 0;
	b->len = 0;
}

void
buf_release(struct buf *b)
{
	if (b->len == 0)
		buf_free(b);
}

void
buf_free(struct buf *b)
{
	buf_dealloc(b->data, b->size);
	b->data = NULL;
	b->size = 0;
	b->head = 0;
	b->len = 0;
}

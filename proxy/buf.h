/*
 * buf: a linear byte buffer with a hard maximum size.
 *
 * The all-zero struct buf is a valid, empty, unallocated buffer (no malloc
 * until data arrives), and buf_release() frees the storage once the buffer is
 * empty again, so an idle session holds no buffer memory.
 * Data lives in data[head .. head+len); room at the tail is size-head-len.
 * Compaction (memmove to offset 0) happens only inside buf_reserve().
 *
 * Every function that can grow the buffer takes the hard maximum; growing
 * past it fails with errno ENOBUFS, an allocation failure with ENOMEM.
 * Never logs, never does I/O.
 */
#ifndef SMTPWALL_BUF_H
#define SMTPWALL_BUF_H

#include <stddef.h>
#include "slice.h"

struct buf {
	char	*data;
	size_t	 size;		/* allocated bytes */
	size_t	 head;		/* offset of the first byte of data */
	size_t	 len;		/* bytes of data */
};

static inline size_t buf_len(const struct buf *b) { return b->len; }
/* NULL for an unallocated buffer: NULL + 0 would be undefined behaviour. */
static inline const char *buf_head(const struct buf *b) { return b->data ? b->data + b->head : NULL; }
static inline char *buf_tail(struct buf *b) { return b->data ? b->data + b->head + b->len : NULL; }
/* Contiguous room after the data without compacting or growing. */
static inline size_t buf_room(const struct buf *b) { return b->size - b->head - b->len; }

/*
 * Make at least `need` contiguous bytes of room at the tail, compacting and
 * then growing (doubling, at least 1 KiB) but never past `max` total size.
 * 0, or -1 with errno ENOBUFS (would exceed max) or ENOMEM.
 */
int	buf_reserve(struct buf *b, size_t need, size_t max);

/* Mark n bytes written at buf_tail() as data (n <= buf_room()). */
void	buf_commit(struct buf *b, size_t n);

/* Drop n bytes from the head (n <= len). When len reaches 0, head resets to 0. */
void	buf_consume(struct buf *b, size_t n);

/* Append n bytes: 0, or -1 (ENOBUFS/ENOMEM) with the buffer unchanged. */
int	buf_append(struct buf *b, const void *p, size_t n, size_t max);

/* Append formatted text: 0, or -1 (ENOBUFS/ENOMEM) with the buffer unchanged. */
int	buf_printf(struct buf *b, size_t max, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/*
 * The first line in the buffer, up to and including the first LF:
 * returns 1 and sets *line (LF included), or 0 if there is no LF yet.
 * Does not consume.
 */
int	buf_getline(const struct buf *b, struct slice *line);

/* Empty the buffer (keeps the storage). */
void	buf_reset(struct buf *b);

/* Free the storage if the buffer is empty; no-op otherwise. */
void	buf_release(struct buf *b);

/* Free the storage unconditionally; the struct is all-zero afterwards. */
void	buf_free(struct buf *b);

/*
 * The calling thread keeps a small cache of freed blocks (the event loop:
 * no malloc/free per event for its I/O buffers), or gives it back
 * (buf_pool_drain, at exit). Other threads free as usual.
 */
void	buf_pool_enable(void);
void	buf_pool_drain(void);

#endif

/*
 * slice.h: a borrowed, length-delimited byte range.
 *
 * A slice points into memory owned by someone else (usually a struct buf) and
 * is valid only until the next buf_* call on that buffer. It is never
 * NUL-terminated: always carry the length. Anything that must outlive the
 * buffer is copied, with a length limit.
 */
#ifndef SMTPWALL_SLICE_H
#define SMTPWALL_SLICE_H

#include <stddef.h>

struct slice {
	const char	*p;
	size_t		 len;
};

#define SLICE_NULL	((struct slice){ NULL, 0 })

#endif

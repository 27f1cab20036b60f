/*
 * test_buf: the byte buffer of proxy/buf.h: lazy allocation, growth and its
 * hard maximum, compaction, line extraction, formatted appends, release.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/buf.h"

#define TEST_MAX	(64 * 1024)

static void
test_buf_zero_struct_is_valid_and_empty(void **state)
{
	struct buf b = { 0 };
	struct slice l = SLICE_NULL;

	(void)state;
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(buf_getline(&b, &l), 0);
	buf_consume(&b, 0);
	buf_reset(&b);
	buf_release(&b);
	assert_null(b.data);
	assert_int_equal(buf_append(&b, "", 0, TEST_MAX), 0);
	assert_null(b.data);		/* nothing to store, nothing allocated */
	buf_free(&b);
	assert_null(b.data);
}

static void
test_buf_reserve_commit_consume(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_reserve(&b, 10, TEST_MAX), 0);
	assert_non_null(b.data);
	assert_true(buf_room(&b) >= 10);
	memcpy(buf_tail(&b), "HELO a.b\r\n", 10);
	buf_commit(&b, 10);
	assert_int_equal(buf_len(&b), 10);
	assert_memory_equal(buf_head(&b), "HELO a.b\r\n", 10);

	buf_consume(&b, 5);
	assert_int_equal(buf_len(&b), 5);
	assert_memory_equal(buf_head(&b), "a.b\r\n", 5);
	assert_int_equal(b.head, 5);

	buf_consume(&b, 5);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(b.head, 0);	/* empty: back to offset 0 */
	buf_free(&b);
}

static void
test_buf_growth_doubles_from_1k_and_caps_at_max(void **state)
{
	struct buf b = { 0 };
	char chunk[1500];

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(buf_reserve(&b, 1, 3000), 0);
	assert_int_equal(b.size, 1024);
	assert_int_equal(buf_append(&b, chunk, 1000, 3000), 0);
	assert_int_equal(buf_append(&b, chunk, 100, 3000), 0);
	assert_int_equal(b.size, 2048);
	assert_int_equal(buf_append(&b, chunk, 1500, 3000), 0);
	assert_int_equal(b.size, 3000);	/* 4096 would pass the maximum */
	assert_int_equal(buf_len(&b), 2600);
	buf_free(&b);

	/* a maximum below the 1 KiB minimum is respected too */
	assert_int_equal(buf_reserve(&b, 10, 100), 0);
	assert_int_equal(b.size, 100);
	buf_free(&b);
}

static void
test_buf_compaction_keeps_data(void **state)
{
	struct buf b = { 0 };
	char data[1024];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + i % 26);
	assert_int_equal(buf_append(&b, data, sizeof(data), 1024), 0);
	assert_int_equal(b.size, 1024);
	buf_consume(&b, 1000);
	assert_int_equal(buf_room(&b), 0);

	/* 1000 bytes fit only once the 24 live bytes move to the front */
	assert_int_equal(buf_reserve(&b, 1000, 1024), 0);
	assert_int_equal(b.size, 1024);
	assert_int_equal(b.head, 0);
	assert_int_equal(buf_len(&b), 24);
	assert_memory_equal(buf_head(&b), data + 1000, 24);
	assert_true(buf_room(&b) >= 1000);
	buf_free(&b);
}

static void
test_buf_growth_after_consume_keeps_data(void **state)
{
	struct buf b = { 0 };
	char data[1024];

	(void)state;
	memset(data, 'a', sizeof(data));
	memcpy(data + 1020, "tail", 4);
	assert_int_equal(buf_append(&b, data, sizeof(data), TEST_MAX), 0);
	buf_consume(&b, 1000);
	assert_int_equal(buf_append(&b, "MORE", 4, TEST_MAX), 0);
	assert_int_equal(buf_len(&b), 28);
	assert_memory_equal(buf_head(&b) + 20, "tailMORE", 8);
	buf_free(&b);
}

static void
test_buf_enobufs_at_max_leaves_buffer_unchanged(void **state)
{
	struct buf b = { 0 };
	char data[2048];
	char *before_data;
	size_t before_size, before_head;

	(void)state;
	memset(data, 'z', sizeof(data));
	assert_int_equal(buf_append(&b, data, 2000, 2048), 0);
	buf_consume(&b, 10);
	before_data = b.data;
	before_size = b.size;
	before_head = b.head;

	errno = 0;
	assert_int_equal(buf_append(&b, data, 59, 2048), -1);
	assert_int_equal(errno, ENOBUFS);
	errno = 0;
	assert_int_equal(buf_reserve(&b, 59, 2048), -1);
	assert_int_equal(errno, ENOBUFS);
	errno = 0;
	assert_int_equal(buf_printf(&b, 2048, "%059d", 0), -1);
	assert_int_equal(errno, ENOBUFS);
	errno = 0;
	assert_int_equal(buf_reserve(&b, SIZE_MAX, SIZE_MAX), -1);
	assert_int_equal(errno, ENOBUFS);

	assert_ptr_equal(b.data, before_data);
	assert_int_equal(b.size, before_size);
	assert_int_equal(b.head, before_head);
	assert_int_equal(buf_len(&b), 1990);

	/* exactly up to the maximum is fine */
	assert_int_equal(buf_append(&b, data, 58, 2048), 0);
	assert_int_equal(buf_len(&b), 2048);
	assert_int_equal(b.size, 2048);
	buf_free(&b);
}

static void
test_buf_getline_with_and_without_lf(void **state)
{
	struct buf b = { 0 };
	struct slice l;

	(void)state;
	assert_int_equal(buf_append(&b, "MAIL FROM:<a@b>", 15, TEST_MAX), 0);
	assert_int_equal(buf_getline(&b, &l), 0);

	assert_int_equal(buf_append(&b, "\r\nRCPT TO:<c@d>\r\nDA", 19, TEST_MAX), 0);
	assert_int_equal(buf_getline(&b, &l), 1);
	assert_int_equal(l.len, 17);
	assert_memory_equal(l.p, "MAIL FROM:<a@b>\r\n", 17);
	assert_int_equal(buf_getline(&b, &l), 1);	/* does not consume */
	assert_int_equal(l.len, 17);
	buf_consume(&b, l.len);

	assert_int_equal(buf_getline(&b, &l), 1);
	assert_int_equal(l.len, 15);
	assert_memory_equal(l.p, "RCPT TO:<c@d>\r\n", 15);
	buf_consume(&b, l.len);

	assert_int_equal(buf_getline(&b, &l), 0);	/* "DA" is incomplete */
	assert_int_equal(buf_len(&b), 2);
	assert_int_equal(buf_append(&b, "TA\n", 3, TEST_MAX), 0);	/* bare LF ends a line too */
	assert_int_equal(buf_getline(&b, &l), 1);
	assert_int_equal(l.len, 5);
	assert_memory_equal(l.p, "DATA\n", 5);
	buf_free(&b);
}

static void
test_buf_getline_nul_bytes_are_data(void **state)
{
	struct buf b = { 0 };
	struct slice l;

	(void)state;
	assert_int_equal(buf_append(&b, "A\0B\n", 4, TEST_MAX), 0);
	assert_int_equal(buf_getline(&b, &l), 1);
	assert_int_equal(l.len, 4);
	buf_free(&b);
}

static void
test_buf_printf_small_and_large(void **state)
{
	struct buf b = { 0 };
	char big[5000];
	size_t i;

	(void)state;
	assert_int_equal(buf_printf(&b, TEST_MAX, "250 %s\r\n", "ok"), 0);
	assert_int_equal(buf_len(&b), 8);
	assert_memory_equal(buf_head(&b), "250 ok\r\n", 8);

	/* longer than the room: formatted again into exactly enough room */
	for (i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)('0' + i % 10);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(buf_printf(&b, TEST_MAX, "<%s>", big), 0);
	assert_int_equal(buf_len(&b), 8 + 2 + 4999);
	assert_memory_equal(buf_head(&b) + 8, "<0123", 5);
	assert_memory_equal(buf_head(&b) + 8 + 1 + 4990, "012345678>", 10);

	assert_int_equal(buf_printf(&b, TEST_MAX, "%s", ""), 0);
	assert_int_equal(buf_len(&b), 5009);
	buf_free(&b);
}

static void
test_buf_printf_fills_exactly_to_max(void **state)
{
	struct buf b = { 0 };

	(void)state;
	/* the text fits under max, its terminating NUL would not */
	assert_int_equal(buf_printf(&b, 10, "%s", "0123456789"), 0);
	assert_int_equal(buf_len(&b), 10);
	assert_memory_equal(buf_head(&b), "0123456789", 10);
	buf_free(&b);

	assert_int_equal(buf_append(&b, "abcdefgh", 8, 10), 0);
	assert_int_equal(buf_printf(&b, 10, "%d", 42), 0);
	assert_memory_equal(buf_head(&b), "abcdefgh42", 10);
	errno = 0;
	assert_int_equal(buf_printf(&b, 10, "%d", 1), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(buf_len(&b), 10);
	buf_free(&b);
}

static void
test_buf_release_frees_only_when_empty(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(buf_append(&b, "QUIT\r\n", 6, TEST_MAX), 0);
	buf_release(&b);
	assert_non_null(b.data);
	assert_int_equal(buf_len(&b), 6);
	assert_memory_equal(buf_head(&b), "QUIT\r\n", 6);

	buf_consume(&b, 6);
	buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.size, 0);
	assert_int_equal(b.head, 0);

	/* and it is usable again afterwards */
	assert_int_equal(buf_append(&b, "x", 1, TEST_MAX), 0);
	assert_int_equal(buf_len(&b), 1);
	buf_free(&b);
}

static void
test_buf_reset_keeps_storage(void **state)
{
	struct buf b = { 0 };
	char *p;

	(void)state;
	assert_int_equal(buf_append(&b, "abc", 3, TEST_MAX), 0);
	buf_consume(&b, 1);
	p = b.data;
	buf_reset(&b);
	assert_ptr_equal(b.data, p);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(b.head, 0);
	assert_int_equal(buf_room(&b), b.size);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.size, 0);
}

/* With the thread's cache on, a released block is reused, not freed and taken again. */
static void
test_buf_pool_reuses_blocks(void **state)
{
	struct buf a = { 0 }, b = { 0 };
	const char *first;

	(void)state;
	buf_pool_enable();
	assert_int_equal(buf_append(&a, "hello", 5, 1 << 20), 0);
	first = buf_head(&a);
	buf_consume(&a, 5);
	buf_release(&a);			/* empty: back to the cache */
	assert_null(buf_head(&a));
	assert_int_equal(buf_append(&b, "again", 5, 1 << 20), 0);
#if !defined(__SANITIZE_ADDRESS__)
	assert_ptr_equal(buf_head(&b), first);	/* the same 1 KiB block */
#else
	(void)first;				/* sanitizer builds keep malloc/free */
#endif
	assert_memory_equal(buf_head(&b), "again", 5);
	buf_free(&b);
	buf_pool_drain();
}

/*
 * With the cache on, growth moves the data through the cache too (no realloc):
 * the smaller block goes back to it, the larger one comes from it, so a
 * buffer that is released and grows again, burst after burst, costs no
 * allocator call once the cache holds its sizes.
 */
static void
test_buf_pool_serves_growth(void **state)
{
	char data[2500];
	struct buf a = { 0 }, b = { 0 }, c = { 0 };
	const char *small, *large;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + i % 26);
	buf_pool_enable();
	assert_int_equal(buf_append(&a, data, 1000, 1 << 20), 0);
	small = buf_head(&a);
	assert_int_equal(buf_append(&a, data + 1000, 1500, 1 << 20), 0);	/* 1 KiB -> 4 KiB */
	assert_int_equal(a.size, 4096);
	assert_memory_equal(buf_head(&a), data, sizeof(data));
	large = buf_head(&a);
	assert_int_equal(buf_append(&b, "x", 1, 1 << 20), 0);
	buf_consume(&a, buf_len(&a));
	buf_release(&a);
	assert_int_equal(buf_append(&c, data, 1000, 1 << 20), 0);
	assert_int_equal(buf_append(&c, data + 1000, 1500, 1 << 20), 0);
	assert_memory_equal(buf_head(&c), data, sizeof(data));
#if !defined(__SANITIZE_ADDRESS__)
	assert_ptr_equal(buf_head(&b), small);	/* a's 1 KiB block, given back as it grew */
	assert_ptr_equal(buf_head(&c), large);	/* a's 4 KiB block, from the cache */
#else
	(void)small, (void)large;		/* sanitizer builds keep malloc/free */
#endif
	buf_free(&b);
	buf_free(&c);
	buf_pool_drain();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_zero_struct_is_valid_and_empty),
		cmocka_unit_test(test_buf_reserve_commit_consume),
		cmocka_unit_test(test_buf_growth_doubles_from_1k_and_caps_at_max),
		cmocka_unit_test(test_buf_compaction_keeps_data),
		cmocka_unit_test(test_buf_growth_after_consume_keeps_data),
		cmocka_unit_test(test_buf_enobufs_at_max_leaves_buffer_unchanged),
		cmocka_unit_test(test_buf_getline_with_and_without_lf),
		cmocka_unit_test(test_buf_getline_nul_bytes_are_data),
		cmocka_unit_test(test_buf_printf_small_and_large),
		cmocka_unit_test(test_buf_printf_fills_exactly_to_max),
		cmocka_unit_test(test_buf_release_frees_only_when_empty),
		cmocka_unit_test(test_buf_reset_keeps_storage),
		cmocka_unit_test(test_buf_pool_reuses_blocks),
		cmocka_unit_test(test_buf_pool_serves_growth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_capture: the capture module of capture/capture.h without a live
 * handle: file names, pruning the capture directory, link-layer offsets,
 * AUTH redaction on hand-made TCP streams, and the session recorder
 * (buffer and budget bounds, writing, reading the file back with libpcap,
 * O_EXCL, the file mode, a write error). Files go to a fresh mkdtemp
 * directory per test.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <pcap/pcap.h>

#include "capture/capture.h"

#define T_TIME		1700000000	/* 2023-11-14T22:13:20Z */
#define T_NAME_V4	"20231114T221320Z-00000000000000ab-192.0.2.15.pcap"
#define T_SYN		0x02
#define T_ACK		0x10
#define T_PSH		0x08
#define T_REC_HDR	16
#define T_FILE_HDR	24

/* ---- helpers ---------------------------------------------------------------- */

static char *
t_mkdir(void)
{
	char *d = strdup("/tmp/test_capture.XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

/* Remove every entry of d (files, links, empty directories), then d. */
static void
t_rmdir(char *d)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
	free(d);
}

static void
t_file(const char *dir, const char *name, size_t size)
{
	char path[512];
	FILE *fp;
	size_t i;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(fp = fopen(path, "w"));
	for (i = 0; i < size; i++)
		fputc('x', fp);
	assert_int_equal(fclose(fp), 0);
}

static int
t_exists(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &st) == 0;
}

static void
t_put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
t_put32(uint8_t *p, uint32_t v)
{
	t_put16(p, v >> 16);
	t_put16(p + 2, v & 0xffff);
}

/*
 * A DLT_RAW IPv4/TCP frame client 192.0.2.15:40000 <-> 198.51.100.25:25
 * carrying payload; *t describes it. Returns the frame length.
 */
static size_t
t_frame(uint8_t *f, int to_server, uint32_t seq, uint8_t flags, const char *payload,
    size_t plen, struct cap_tcp *t)
{
	static const uint8_t cli[4] = { 192, 0, 2, 15 }, srv[4] = { 198, 51, 100, 25 };

	memset(f, 0, 40);
	f[0] = 0x45;
	t_put16(f + 2, (unsigned)(40 + plen));
	f[8] = 64;
	f[9] = 6;
	memcpy(f + 12, to_server ? cli : srv, 4);
	memcpy(f + 16, to_server ? srv : cli, 4);
	t_put16(f + 20, to_server ? 40000 : 25);
	t_put16(f + 22, to_server ? 25 : 40000);
	t_put32(f + 24, seq);
	f[32] = 5 << 4;
	f[33] = flags;
	t_put16(f + 34, 65535);
	memcpy(f + 40, payload, plen);
	memset(t, 0, sizeof(*t));
	t->leg = CAP_LEG_CLIENT;
	t->to_server = to_server;
	t->seq = seq;
	t->flags = flags;
	t->payload_off = 40;
	t->payload_len = plen;
	return 40 + plen;
}

static struct sockaddr_storage
t_sa(int af, const char *addr)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)af;
	if (af == AF_INET)
		assert_int_equal(inet_pton(AF_INET,
		    addr, &((struct sockaddr_in *)&ss)->sin_addr), 1);
	else
		assert_int_equal(inet_pton(AF_INET6,
		    addr, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
	return ss;
}

/* ---- file names ---------------------------------------------------------------- */

static void
test_capture_name_ipv4(void **state)
{
	struct sockaddr_storage ss = t_sa(AF_INET, "192.0.2.15");
	char buf[128];

	(void)state;
	assert_int_equal(cap_file_name(buf, sizeof(buf), T_TIME, 0xab,
	    (struct sockaddr *)&ss), (int)strlen(T_NAME_V4));
	assert_string_equal(buf, T_NAME_V4);
}

static void
test_capture_name_ipv6_and_v4_mapped(void **state)
{
	struct sockaddr_storage ss = t_sa(AF_INET6, "2001:db8::1:15");
	char buf[128];

	(void)state;
	assert_true(cap_file_name(buf, sizeof(buf), 0, 0x0123456789abcdefULL,
	    (struct sockaddr *)&ss) > 0);
	assert_string_equal(buf, "19700101T000000Z-0123456789abcdef-2001_db8__1_15.pcap");
	ss = t_sa(AF_INET6, "::ffff:192.0.2.15");
	assert_true(cap_file_name(buf, sizeof(buf), T_TIME, 0xab, (struct sockaddr *)&ss) > 0);
	assert_string_equal(buf, T_NAME_V4);
	ss = t_sa(AF_INET6, "::1");
	assert_true(cap_file_name(buf, sizeof(buf), T_TIME, 0xab, (struct sockaddr *)&ss) > 0);
	assert_string_equal(buf, "20231114T221320Z-00000000000000ab-__1.pcap");
}

static void
test_capture_name_buffer_exact_and_too_small(void **state)
{
	struct sockaddr_storage ss = t_sa(AF_INET, "192.0.2.15");
	size_t n = strlen(T_NAME_V4);
	char *buf = malloc(n + 1);

	(void)state;
	assert_non_null(buf);
	assert_int_equal(cap_file_name(buf, n + 1, T_TIME, 0xab, (struct sockaddr *)&ss), (int)n);
	assert_string_equal(buf, T_NAME_V4);
	assert_int_equal(cap_file_name(buf, n, T_TIME, 0xab, (struct sockaddr *)&ss), -1);
	assert_int_equal(cap_file_name(buf, 1, T_TIME, 0xab, (struct sockaddr *)&ss), -1);
	assert_int_equal(cap_file_name(NULL, 0, T_TIME, 0xab, (struct sockaddr *)&ss), -1);
	ss.ss_family = AF_UNIX;
	assert_int_equal(cap_file_name(buf, n + 1, T_TIME, 0xab, (struct sockaddr *)&ss), -1);
	free(buf);
}

/* ---- pruning -------------------------------------------------------------------- */

struct t_pruned {
	char		names[16][96];
	uint64_t	sizes[16];
	int		n;
};

static void
t_prune_cb(void *arg, const char *name, uint64_t size)
{
	struct t_pruned *p = arg;

	assert_true(p->n < 16);
	snprintf(p->names[p->n], sizeof(p->names[p->n]), "%s", name);
	p->sizes[p->n++] = size;
}

#define T_F1	"20230101T000000Z-0000000000000001-192.0.2.1.pcap"
#define T_F2	"20230102T000000Z-0000000000000002-2001_db8__1.pcap"
#define T_F3	"20230103T000000Z-0000000000000003-192.0.2.3.pcap"
#define T_F4	"20230104T000000Z-00000000000000FF-192.0.2.4.pcap"

static void
test_capture_prune_count_oldest_first(void **state)
{
	char err[CAP_ERR_LEN] = "", *d = t_mkdir();
	struct t_pruned p = { .n = 0 };

	(void)state;
	t_file(d, T_F3, 10);
	t_file(d, T_F1, 10);
	t_file(d, T_F4, 10);
	t_file(d, T_F2, 10);
	assert_int_equal(cap_dir_prune(d, 2, 1000, NULL, t_prune_cb, &p, err), 2);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.names[0], T_F1);
	assert_string_equal(p.names[1], T_F2);
	assert_int_equal(p.sizes[0], 10);
	assert_false(t_exists(d, T_F1));
	assert_false(t_exists(d, T_F2));
	assert_true(t_exists(d, T_F3));
	assert_true(t_exists(d, T_F4));
	/* within bounds: nothing more */
	assert_int_equal(cap_dir_prune(d, 2, 1000, NULL, t_prune_cb, &p, err), 0);
	assert_int_equal(p.n, 2);
	t_rmdir(d);
}

static void
test_capture_prune_bytes(void **state)
{
	char err[CAP_ERR_LEN] = "", *d = t_mkdir();
	struct t_pruned p = { .n = 0 };

	(void)state;
	t_file(d, T_F1, 100);
	t_file(d, T_F2, 100);
	t_file(d, T_F3, 100);
	assert_int_equal(cap_dir_prune(d, 100, 200, NULL, t_prune_cb, &p, err), 1);
	assert_string_equal(p.names[0], T_F1);
	assert_int_equal(cap_dir_prune(d, 100, 199, NULL, NULL, NULL, err), 1);
	assert_false(t_exists(d, T_F2));
	assert_true(t_exists(d, T_F3));
	assert_int_equal(cap_dir_prune(d, 0, 0, NULL, NULL, NULL, err), 1);
	assert_false(t_exists(d, T_F3));
	t_rmdir(d);
}

static void
test_capture_prune_keep_is_kept(void **state)
{
	char err[CAP_ERR_LEN] = "", *d = t_mkdir();
	struct t_pruned p = { .n = 0 };

	(void)state;
	t_file(d, T_F1, 10);
	t_file(d, T_F2, 10);
	t_file(d, T_F3, 10);
	assert_int_equal(cap_dir_prune(d, 1, 1000, T_F1, t_prune_cb, &p, err), 2);
	assert_true(t_exists(d, T_F1));
	assert_false(t_exists(d, T_F2));
	assert_false(t_exists(d, T_F3));
	assert_int_equal(cap_dir_prune(d, 0, 0, T_F1, NULL, NULL, err), 0);
	assert_true(t_exists(d, T_F1));
	t_rmdir(d);
}

static void
test_capture_prune_foreign_links_dirs_untouched(void **state)
{
	static const char *foreign[] = {
		"notes.txt",
		"20230101T000000Z-0000000000000001-192.0.2.1.pcap.tmp",
		"20230101T000000Z-000000000000001-192.0.2.1.pcap",	/* 15 hex digits */
		"20230101X000000Z-0000000000000001-192.0.2.1.pcap",
		"20230101T000000Z-0000000000000001-192.0.2.1:25.pcap",
		"20230101T000000Z-0000000000000001-.pcap",
		"20230101T000000Z-000000000000000g-192.0.2.1.pcap",
		".pcap",
	};
	char err[CAP_ERR_LEN] = "", path[512], *d = t_mkdir();
	struct t_pruned p = { .n = 0 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
		t_file(d, foreign[i], 1000);
	/* a symlink and a directory with capture names, the link to a capture */
	t_file(d, T_F4, 10);
	snprintf(path, sizeof(path), "%s/%s", d, T_F1);
	assert_int_equal(symlink(T_F4, path), 0);
	snprintf(path, sizeof(path), "%s/%s", d, T_F2);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(cap_dir_prune(d, 0, 0, NULL, t_prune_cb, &p, err), 1);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.names[0], T_F4);
	for (i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
		assert_true(t_exists(d, foreign[i]));
	assert_true(t_exists(d, T_F1));
	assert_true(t_exists(d, T_F2));
	t_rmdir(d);
}

static void
test_capture_prune_empty_and_missing_dir(void **state)
{
	char err[CAP_ERR_LEN] = "", *d = t_mkdir();

	(void)state;
	assert_int_equal(cap_dir_prune(d, 0, 0, NULL, NULL, NULL, err), 0);
	assert_int_equal(cap_dir_prune("/nonexistent/smtpwall-captures", 1, 1, NULL, NULL, NULL,
	    err), -1);
	assert_non_null(strstr(err, "No such file"));
	t_rmdir(d);
}

/* ---- link layer -------------------------------------------------------------------- */

/* cap_l3_offset on an exactly-sized heap copy, so ASan sees any overread. */
static int
t_l3(int linktype, const uint8_t *frame, size_t len, size_t *off)
{
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, frame, len);
	rc = cap_l3_offset(linktype, copy, len, off);
	free(copy);
	return rc;
}

/* Offset want for the full frame; -1 for every cut that ends at or before it. */
static void
t_l3_check(int linktype, const uint8_t *frame, size_t len, size_t want)
{
	size_t off = 999, cut;

	assert_int_equal(t_l3(linktype, frame, len, &off), 0);
	assert_int_equal(off, want);
	for (cut = 0; cut <= want; cut++)
		assert_int_equal(t_l3(linktype, frame, cut, &off), -1);
}

static void
test_capture_link_sll_and_sll2(void **state)
{
	uint8_t f[64];

	(void)state;
	memset(f, 0, sizeof(f));
	t_put16(f + 14, 0x0800);
	f[16] = 0x45;
	t_l3_check(DLT_LINUX_SLL, f, sizeof(f), 16);
	t_put16(f + 14, 0x86dd);
	assert_int_equal(t_l3(DLT_LINUX_SLL, f, sizeof(f), &(size_t){ 0 }), -1);	/* v4 nibble */
	f[16] = 0x60;
	t_l3_check(DLT_LINUX_SLL, f, sizeof(f), 16);
	t_put16(f + 14, 0x0806);		/* ARP */
	assert_int_equal(t_l3(DLT_LINUX_SLL, f, sizeof(f), &(size_t){ 0 }), -1);

	memset(f, 0, sizeof(f));
	t_put16(f, 0x86dd);
	f[20] = 0x60;
	t_l3_check(DLT_LINUX_SLL2, f, sizeof(f), 20);
	t_put16(f, 0x0800);
	assert_int_equal(t_l3(DLT_LINUX_SLL2, f, sizeof(f), &(size_t){ 0 }), -1);
}

static void
test_capture_link_ethernet_and_vlan_tags(void **state)
{
	uint8_t f[64];

	(void)state;
	memset(f, 0xee, sizeof(f));
	t_put16(f + 12, 0x0800);
	f[14] = 0x45;
	t_l3_check(DLT_EN10MB, f, sizeof(f), 14);
	t_put16(f + 12, 0x8100);
	t_put16(f + 16, 0x86dd);
	f[18] = 0x60;
	t_l3_check(DLT_EN10MB, f, sizeof(f), 18);
	t_put16(f + 12, 0x88a8);
	t_put16(f + 16, 0x8100);
	t_put16(f + 20, 0x0800);
	f[22] = 0x45;
	t_l3_check(DLT_EN10MB, f, sizeof(f), 22);
	/* a third tag is too many */
	t_put16(f + 20, 0x8100);
	t_put16(f + 24, 0x0800);
	f[26] = 0x45;
	assert_int_equal(t_l3(DLT_EN10MB, f, sizeof(f), &(size_t){ 0 }), -1);
}

static void
test_capture_link_raw_null_loop(void **state)
{
	uint8_t f[48];
	size_t off = 99;

	(void)state;
	memset(f, 0, sizeof(f));
	f[0] = 0x45;
	assert_int_equal(t_l3(DLT_RAW, f, sizeof(f), &off), 0);
	assert_int_equal(off, 0);
	assert_int_equal(t_l3(101, f, 1, &off), 0);
	assert_int_equal(t_l3(DLT_IPV4, f, 1, &off), 0);
	assert_int_equal(t_l3(DLT_IPV6, f, 1, &off), -1);
	assert_int_equal(t_l3(DLT_RAW, f, 0, &off), -1);
	f[0] = 0x60;
	assert_int_equal(t_l3(DLT_RAW, f, sizeof(f), &off), 0);
	assert_int_equal(t_l3(DLT_IPV6, f, sizeof(f), &off), 0);
	f[0] = 0x00;
	assert_int_equal(t_l3(DLT_RAW, f, sizeof(f), &off), -1);

	/* DLT_NULL: host order; DLT_LOOP: network order; either accepted */
	memset(f, 0, sizeof(f));
	f[0] = 2;
	f[4] = 0x45;
	t_l3_check(DLT_NULL, f, sizeof(f), 4);
	t_l3_check(DLT_LOOP, f, sizeof(f), 4);
	f[0] = 0;
	f[3] = 2;
	t_l3_check(DLT_LOOP, f, sizeof(f), 4);
	f[4] = 0x60;
	assert_int_equal(t_l3(DLT_LOOP, f, sizeof(f), &off), -1);	/* AF_INET, v6 nibble */
	f[3] = 24;
	t_l3_check(DLT_NULL, f, sizeof(f), 4);
	f[3] = 28;
	t_l3_check(DLT_NULL, f, sizeof(f), 4);
	f[3] = 0;
	f[0] = 30;
	t_l3_check(DLT_NULL, f, sizeof(f), 4);
	f[0] = 10;
	t_l3_check(DLT_NULL, f, sizeof(f), 4);
	f[0] = 7;
	assert_int_equal(t_l3(DLT_NULL, f, sizeof(f), &off), -1);

	/* an unknown link type */
	f[0] = 0x45;
	assert_int_equal(t_l3(DLT_IEEE802_11, f, sizeof(f), &off), -1);
}

/* ---- redaction ------------------------------------------------------------------ */

struct t_conv {
	struct cap_redact	*rd;
	uint32_t		 seq[2];	/* next seq per direction [to_server] */
};

static void
t_conv_start(struct t_conv *c, uint32_t cisn, uint32_t sisn)
{
	assert_non_null(c->rd = cap_redact_new());
	c->seq[1] = cisn;
	c->seq[0] = sisn;
	cap_redact_segment(c->rd, 1, T_SYN, cisn, NULL, 0);
	cap_redact_segment(c->rd, 0, T_SYN | T_ACK, sisn, NULL, 0);
	c->seq[1]++;
	c->seq[0]++;
}

/* A segment at seq: in must come out as want (same length). */
static void
t_seg_at(struct t_conv *c, int to_server, uint32_t seq, const char *in, const char *want)
{
	size_t n = strlen(in);
	uint8_t *p = malloc(n ? n : 1);

	assert_int_equal(strlen(want), n);
	assert_non_null(p);
	memcpy(p, in, n);
	cap_redact_segment(c->rd, to_server, T_ACK | T_PSH, seq, p, n);
	if (memcmp(p, want, n) != 0)
		fail_msg("in \"%s\"\n got \"%.*s\"\nwant \"%s\"", in, (int)n, (char *)p, want);
	free(p);
}

/* The next in-order segment of one direction. */
static void
t_seg(struct t_conv *c, int to_server, const char *in, const char *want)
{
	t_seg_at(c, to_server, c->seq[to_server], in, want);
	c->seq[to_server] += (uint32_t)strlen(in);
}

#define T_C(c, in, want)	t_seg(c, 1, in, want)
#define T_S(c, in)		t_seg(c, 0, in, in)

static void
test_capture_redact_auth_plain_initial_response(void **state)
{
	struct t_conv c;

	(void)state;
	t_conv_start(&c, 1000, 5000);
	T_S(&c, "220 mx.example.com ESMTP\r\n");
	T_C(&c, "EHLO client.example\r\n", "EHLO client.example\r\n");
	T_S(&c, "250-mx.example.com\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n");
	T_C(&c, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", "AUTH PLAIN ********************\r\n");
	T_S(&c, "235 2.7.0 Authentication successful\r\n");
	T_C(&c, "MAIL FROM:<alice@example.com>\r\n", "MAIL FROM:<alice@example.com>\r\n");
	cap_redact_free(c.rd);
}

static void
test_capture_redact_auth_login_two_continuations(void **state)
{
	struct t_conv c;

	(void)state;
	t_conv_start(&c, 0xfffffff0, 77);	/* the client's sequence numbers wrap */
	T_S(&c, "220 mx ESMTP\r\n");
	T_C(&c, "EHLO c\r\n", "EHLO c\r\n");
	T_S(&c, "250 AUTH LOGIN\r\n");
	T_C(&c, "AUTH LOGIN\r\n", "AUTH LOGIN\r\n");
	T_S(&c, "334 VXNlcm5hbWU6\r\n");
	T_C(&c, "YWxpY2U=\r\n", "********\r\n");
	T_S(&c, "334 UGFzc3dvcmQ6\r\n");
	T_C(&c, "c2VjcmV0\r\n", "********\r\n");
	T_S(&c, "235 2.7.0 ok\r\n");
	T_C(&c, "QUIT\r\n", "QUIT\r\n");
	cap_redact_free(c.rd);
}

static void
test_capture_redact_auth_split_across_segments(void **state)
{
	struct t_conv c;

	(void)state;
	t_conv_start(&c, 1000, 5000);
	T_S(&c, "220 mx\r\n");
	T_C(&c, "AU", "AU");
	T_C(&c, "TH PLA", "TH PLA");
	T_C(&c, "IN", "IN");
	T_C(&c, " ", " ");
	T_C(&c, "c2Vj", "****");
	T_C(&c, "cmV0\r", "****\r");
	T_C(&c, "\nNOOP\r\n", "\nNOOP\r\n");
	T_S(&c, "235 ok\r\n");
	/* a reply split inside its code */
	T_C(&c, "AUTH LOGIN\r\n", "AUTH LOGIN\r\n");
	T_S(&c, "33");
	T_S(&c, "4 VXNl\r\n");
	T_C(&c, "YWxp", "****");
	T_C(&c, "Y2U=\r\nQU", "****\r\n**");	/* still continuation: no reply yet */
	T_S(&c, "235 ok\r\n");
	T_C(&c, "IT\r\n", "**\r\n");	/* the rest of the line that began in it */
	T_C(&c, "QUIT\r\n", "QUIT\r\n");
	cap_redact_free(c.rd);
}

static void
test_capture_redact_retransmission_blanked_again(void **state)
{
	struct t_conv c;
	uint32_t s;

	(void)state;
	t_conv_start(&c, 1000, 5000);
	T_S(&c, "220 mx\r\n");
	T_C(&c, "EHLO c\r\n", "EHLO c\r\n");
	s = c.seq[1];
	T_C(&c, "AUTH PLAIN c2VjcmV0\r\n", "AUTH PLAIN ********\r\n");
	/* the same segment again, then an overlapping one reaching new data */
	t_seg_at(&c, 1, s, "AUTH PLAIN c2VjcmV0\r\n", "AUTH PLAIN ********\r\n");
	t_seg_at(&c, 1, s + 11, "c2VjcmV0\r\nNOOP\r\n", "********\r\nNOOP\r\n");
	c.seq[1] += 6;
	/* a retransmission of bytes that were not blanked stays as it was */
	t_seg_at(&c, 1, s - 8, "EHLO c\r\n", "EHLO c\r\n");
	T_S(&c, "235 ok\r\n");
	t_seg_at(&c, 1, s + 5, "PLAIN c2Vj", "PLAIN ****");
	cap_redact_free(c.rd);
}

static void
test_capture_redact_lowercase_and_spacing(void **state)
{
	struct t_conv c;

	(void)state;
	t_conv_start(&c, 1000, 5000);
	T_C(&c, "auth plain c2VjcmV0\r\n", "auth plain ********\r\n");
	T_S(&c, "235 ok\r\n");
	T_C(&c, "AuTh  CRAM-MD5  x y\r\n", "AuTh  CRAM-MD5  ***\r\n");
	T_S(&c, "535 no\r\n");
	T_C(&c, "AUTH\r\n", "AUTH\r\n");		/* no mechanism */
	T_C(&c, "AUTHX PLAIN abc\r\n", "AUTHX PLAIN abc\r\n");
	T_C(&c, " AUTH PLAIN abc\r\n", " AUTH PLAIN abc\r\n");
	cap_redact_free(c.rd);
}

static void
test_capture_redact_multiline_334_and_final_lines(void **state)
{
	struct t_conv c;

	(void)state;
	t_conv_start(&c, 1000, 5000);
	/* "334-" is not final: nothing opens until the last line */
	T_S(&c, "334-first\r\n");
	T_C(&c, "NOOP\r\n", "NOOP\r\n");
	T_S(&c, "334 last\r\n");
	T_C(&c, "secret\r\n", "******\r\n");
	/* a non-final line of another code does not close */
	T_S(&c, "250-more\r\n");
	T_C(&c, "again\r\n", "*****\r\n");
	T_S(&c, "250 done\r\n");
	T_C(&c, "NOOP\r\n", "NOOP\r\n");
	/* a bare "334" line, and a bare-LF ending */
	T_S(&c, "334\r\n");
	T_C(&c, "x\r\n", "*\r\n");
	T_S(&c, "235 ok\n");
	T_C(&c, "NOOP\r\n", "NOOP\r\n");
	T_S(&c, "334\n");
	T_C(&c, "\r\n", "\r\n");
	T_C(&c, "y\n", "*\n");
	T_S(&c, "3345 not a reply\r\n");
	T_C(&c, "z\r\n", "*\r\n");
	T_S(&c, "501 cancelled\r\n");
	T_C(&c, "NOOP\r\n", "NOOP\r\n");
	cap_redact_free(c.rd);
}

static void
test_capture_redact_plain_session_unchanged(void **state)
{
	static const char *dlg[][2] = {
		{ "S", "220 mx.example.com ESMTP\r\n" },
		{ "C", "EHLO client.example\r\n" },
		{ "S", "250-mx.example.com\r\n250-AUTH PLAIN\r\n250 SIZE 100\r\n" },
		{ "C", "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n" },
		{ "S", "250 ok\r\n550 5.7.1 relay denied\r\n554 no valid recipients\r\n" },
		{ "C", "RSET\r\n" },
		{ "S", "250 ok\r\n" },
		{ "C", "MAIL FROM:<a@example.com>\r\n" },
		{ "S", "250 ok\r\n" },
		{ "C", "RCPT TO:<c@example.com>\r\n" },
		{ "S", "250 ok\r\n" },
		{ "C", "DATA\r\n" },
		{ "S", "354 go\r\n" },
		{ "C", "Subject: authentication\r\n\r\nThe word AUTHX and 334 here.\r\n.\r\n" },
		{ "S", "250 queued\r\n" },
		{ "C", "QUIT\r\n" },
		{ "S", "221 bye\r\n" },
	};
	struct t_conv c;
	size_t i;

	(void)state;
	t_conv_start(&c, 123456, 654321);
	for (i = 0; i < sizeof(dlg) / sizeof(dlg[0]); i++)
		t_seg(&c, dlg[i][0][0] == 'C', dlg[i][1], dlg[i][1]);
	cap_redact_free(c.rd);
}

static void
test_capture_redact_gap_in_exchange_blanks_segment(void **state)
{
	struct t_conv c;
	uint32_t hole;

	(void)state;
	t_conv_start(&c, 1000, 5000);
	T_S(&c, "220 mx\r\n");
	T_C(&c, "AUTH LOGIN\r\n", "AUTH LOGIN\r\n");
	T_S(&c, "334 VXNl\r\n");
	hole = c.seq[1];
	/* "YWxpY2U=\r\n" (10 bytes) never seen, then a segment past it */
	c.seq[1] += 10;
	T_C(&c, "NOOP\r\nRSET\r\n", "****\r\n****\r\n");
	T_S(&c, "235 ok\r\n");
	T_C(&c, "NOOP\r\n", "NOOP\r\n");
	/* the lost segment arrives late: the exchange was open at the gap */
	t_seg_at(&c, 1, hole, "YWxpY2U=\r\n", "********\r\n");
	cap_redact_free(c.rd);
}

static void
test_capture_redact_gap_outside_exchange(void **state)
{
	struct t_conv c;
	uint32_t hole;

	(void)state;
	t_conv_start(&c, 1000, 5000);
	T_S(&c, "220 mx\r\n");
	T_C(&c, "EHLO c\r\n", "EHLO c\r\n");
	T_S(&c, "250 ok\r\n");
	hole = c.seq[1];
	/* "AUTH PL" lost: what follows it is blanked up to its line's end */
	c.seq[1] += 7;
	T_C(&c, "AIN c2Vj\r\nNOOP\r\n", "********\r\nNOOP\r\n");
	/* the lost bytes arrive: read with the line state at the gap */
	t_seg_at(&c, 1, hole, "AUTH PL", "AUTH PL");
	T_S(&c, "235 ok\r\n");
	/* a lost segment arriving elsewhere than its start: blanked whole */
	hole = c.seq[1];
	c.seq[1] += 12;
	T_C(&c, "QUIT\r\n", "****\r\n");
	t_seg_at(&c, 1, hole + 6, "NOOP\r\n", "****\r\n");
	t_seg_at(&c, 1, hole, "RSET\r\n", "****\r\n");
	cap_redact_free(c.rd);
}

static void
test_capture_redact_server_gap_assumes_continuation(void **state)
{
	struct t_conv c;

	(void)state;
	t_conv_start(&c, 1000, 5000);
	T_S(&c, "220 mx\r\n");
	T_C(&c, "AUTH LOGIN\r\n", "AUTH LOGIN\r\n");
	/* the server's 334 is lost: its next line is read after it */
	c.seq[0] += 10;
	T_S(&c, "xyz\r\n");
	T_C(&c, "YWxpY2U=\r\n", "********\r\n");
	T_S(&c, "235 ok\r\n");
	T_C(&c, "NOOP\r\n", "NOOP\r\n");
	cap_redact_free(c.rd);
}

static void
test_capture_redact_no_syn_seen(void **state)
{
	struct t_conv c;

	(void)state;
	assert_non_null(c.rd = cap_redact_new());
	c.seq[1] = 777777;
	c.seq[0] = 0xfffffffe;
	T_S(&c, "250 ok\r\n");
	T_C(&c, "AUTH PLAIN c2VjcmV0\r\n", "AUTH PLAIN ********\r\n");
	T_S(&c, "235 ok\r\n");
	T_C(&c, "NOOP\r\n", "NOOP\r\n");
	/* bytes from before the first one seen: unknown, blanked */
	t_seg_at(&c, 1, 777777 - 6, "RSET\r\n", "****\r\n");
	cap_redact_free(c.rd);
}

static void
test_capture_redact_many_ranges_then_retransmission(void **state)
{
	struct t_conv c;
	uint32_t first;
	int i;

	(void)state;
	t_conv_start(&c, 1000, 5000);
	first = c.seq[1];
	T_C(&c, "NOOP\r\n", "NOOP\r\n");
	for (i = 0; i < 100; i++) {
		T_C(&c, "AUTH PLAIN c2Vj\r\n", "AUTH PLAIN ****\r\n");
		T_S(&c, "535 no\r\n");
	}
	/* the ranges list overflowed: anything seen again is blanked whole */
	t_seg_at(&c, 1, first, "NOOP\r\n", "****\r\n");
	T_C(&c, "NOOP\r\n", "NOOP\r\n");
	cap_redact_free(c.rd);
}

/* ---- the session recorder -------------------------------------------------------- */

static char t_err[CAP_ERR_LEN];		/* of the last t_add */

struct t_sent {
	uint8_t			f[16][256];
	struct cap_pkthdr	h[16];
	int			n;
};

/* Add one frame; remember what the file should hold (want: redacted payload, or NULL). */
static int
t_add(struct cap_sess *cs, struct t_sent *s, int to_server, uint32_t seq, uint8_t flags,
    const char *payload, const char *want)
{
	uint8_t f[256], orig[256];
	struct cap_pkthdr h;
	struct cap_tcp t;
	size_t n;
	int rc;

	n = t_frame(f, to_server, seq, flags, payload, strlen(payload), &t);
	memcpy(orig, f, n);
	memset(&h, 0, sizeof(h));
	h.ts.tv_sec = T_TIME + s->n;
	h.ts.tv_usec = 1000 * s->n;
	h.caplen = h.len = (uint32_t)n;
	t_err[0] = '\0';
	rc = cap_sess_add(cs, &h, f, &t, t_err);
	assert_memory_equal(f, orig, n);	/* the caller's frame is never changed */
	if (want != NULL) {
		assert_true(s->n < 16);
		memcpy(s->f[s->n], f, n);
		memcpy(s->f[s->n] + 40, want, strlen(want));
		s->h[s->n++] = h;
	}
	return rc;
}

/* The file dir/name holds exactly the frames of s, in order. */
static void
t_read_back(const char *dir, const char *name, const struct t_sent *s)
{
	char path[512], ebuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *ph;
	const u_char *data;
	pcap_t *p;
	int i;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	p = pcap_open_offline(path, ebuf);
	if (p == NULL)
		fail_msg("%s", ebuf);
	assert_int_equal(pcap_datalink(p), DLT_RAW);
	assert_int_equal(pcap_snapshot(p), CAP_SNAPLEN);
	for (i = 0; i < s->n; i++) {
		assert_int_equal(pcap_next_ex(p, &ph, &data), 1);
		assert_int_equal(ph->caplen, s->h[i].caplen);
		assert_int_equal(ph->len, s->h[i].len);
		assert_int_equal(ph->ts.tv_sec, s->h[i].ts.tv_sec);
		assert_int_equal(ph->ts.tv_usec, s->h[i].ts.tv_usec);
		assert_memory_equal(data, s->f[i], ph->caplen);
	}
	assert_int_equal(pcap_next_ex(p, &ph, &data), PCAP_ERROR_BREAK);
	pcap_close(p);
}

static uint64_t
t_fsize(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static void
test_capture_sess_buffer_max_truncates(void **state)
{
	struct cap_budget b = { 0, 1 << 20 };
	struct cap_sess_conf conf = { DLT_RAW, 3 * (T_REC_HDR + 44), 0 };
	struct t_sent s = { .n = 0 };
	struct cap_sess *cs;

	(void)state;
	assert_non_null(cs = cap_sess_new(&conf, &b));
	assert_int_equal(t_add(cs, &s, 1, 1, T_ACK, "abcd", "abcd"), 0);
	assert_int_equal(t_add(cs, &s, 1, 5, T_ACK, "efgh", "efgh"), 0);
	assert_int_equal(t_add(cs, &s, 1, 9, T_ACK, "ijkl", "ijkl"), 0);
	assert_false(cap_sess_truncated(cs));
	assert_int_equal(b.used, 3 * (T_REC_HDR + 44));
	assert_int_equal(t_add(cs, &s, 1, 13, T_ACK, "mnop", NULL), 0);	/* over buffer_max */
	assert_true(cap_sess_truncated(cs));
	assert_int_equal(t_add(cs, &s, 0, 1, T_ACK, "", NULL), 0);		/* 40 bytes: still over */
	assert_int_equal(cap_sess_frames(cs), 3);
	assert_int_equal(cap_sess_bytes(cs), 0);
	assert_false(cap_sess_writing(cs));
	assert_int_equal(b.used, 3 * (T_REC_HDR + 44));
	cap_sess_close(cs);
	assert_int_equal(b.used, 0);
	cap_sess_close(NULL);
}

static void
test_capture_sess_budget_shared_and_given_back(void **state)
{
	struct cap_budget b = { 0, 2 * (T_REC_HDR + 44) };
	struct cap_sess_conf conf = { DLT_RAW, 1 << 20, 0 };
	struct t_sent s = { .n = 0 };
	struct cap_sess *a, *c;
	char err[CAP_ERR_LEN] = "", *d = t_mkdir();

	(void)state;
	assert_non_null(a = cap_sess_new(&conf, &b));
	assert_non_null(c = cap_sess_new(&conf, &b));
	assert_int_equal(t_add(a, &s, 1, 1, T_ACK, "abcd", "abcd"), 0);
	assert_int_equal(t_add(c, &s, 1, 1, T_ACK, "wxyz", NULL), 0);
	assert_int_equal(b.used, b.max);
	assert_int_equal(t_add(a, &s, 1, 5, T_ACK, "efgh", NULL), 0);
	assert_true(cap_sess_truncated(a));
	assert_false(cap_sess_truncated(c));
	/* writing gives the buffer's bytes back */
	assert_int_equal(cap_sess_write(a, d, T_F1, err), 0);
	assert_int_equal(b.used, T_REC_HDR + 44);
	assert_int_equal(t_add(c, &s, 1, 5, T_ACK, "efgh", NULL), 0);
	assert_false(cap_sess_truncated(c));
	assert_int_equal(b.used, b.max);
	cap_sess_close(c);
	assert_int_equal(b.used, 0);
	cap_sess_close(a);
	assert_int_equal(b.used, 0);
	t_rmdir(d);
}

static void
test_capture_sess_write_in_order_and_read_back(void **state)
{
	struct cap_budget b = { 0, 1 << 20 };
	struct cap_sess_conf conf = { DLT_RAW, 1 << 20, 1 };
	struct t_sent s = { .n = 0 };
	char err[CAP_ERR_LEN] = "", *d = t_mkdir();
	struct cap_sess *cs;
	uint64_t want;
	int i;

	(void)state;
	assert_non_null(cs = cap_sess_new(&conf, &b));
	assert_int_equal(t_add(cs, &s, 1, 999, T_SYN, "", ""), 0);
	assert_int_equal(t_add(cs, &s, 0, 4999, T_SYN | T_ACK, "", ""), 0);
	assert_int_equal(t_add(cs, &s, 0, 5000, T_ACK | T_PSH, "220 mx\r\n", "220 mx\r\n"), 0);
	assert_int_equal(t_add(cs, &s, 1, 1000, T_ACK | T_PSH, "AUTH PLAIN c2Vj\r\n",
	    "AUTH PLAIN ****\r\n"), 0);
	assert_int_equal(cap_sess_frames(cs), 4);
	assert_int_equal(cap_sess_write(cs, d, T_F3, err), 0);
	assert_true(cap_sess_writing(cs));
	assert_int_equal(b.used, 0);
	/* from now on frames go to the file, still redacted */
	assert_int_equal(t_add(cs, &s, 0, 5008, T_ACK | T_PSH, "334 \r\n", "334 \r\n"), 0);
	assert_int_equal(t_add(cs, &s, 1, 1017, T_ACK | T_PSH, "cGFzcw==\r\n", "********\r\n"), 0);
	assert_int_equal(t_add(cs, &s, 0, 5014, T_ACK | T_PSH, "235 ok\r\n", "235 ok\r\n"), 0);
	assert_int_equal(t_add(cs, &s, 1, 1027, T_ACK | T_PSH, "QUIT\r\n", "QUIT\r\n"), 0);
	assert_int_equal(cap_sess_frames(cs), 8);
	for (want = T_FILE_HDR, i = 0; i < s.n; i++)
		want += T_REC_HDR + s.h[i].caplen;
	assert_int_equal(cap_sess_bytes(cs), want);
	/* flushed after every frame: complete before the close */
	assert_int_equal(t_fsize(d, T_F3), want);
	t_read_back(d, T_F3, &s);
	assert_int_equal(cap_sess_write(cs, d, T_F4, err), -1);	/* already writing */
	cap_sess_close(cs);
	t_read_back(d, T_F3, &s);
	t_rmdir(d);
}

static void
test_capture_sess_exists_refused_and_mode_0640(void **state)
{
	struct cap_budget b = { 0, 1 << 20 };
	struct cap_sess_conf conf = { DLT_RAW, 1 << 20, 0 };
	struct t_sent s = { .n = 0 };
	char err[CAP_ERR_LEN] = "", path[512], *d = t_mkdir();
	struct cap_sess *cs;
	struct stat st;
	mode_t old;

	(void)state;
	assert_non_null(cs = cap_sess_new(&conf, &b));
	assert_int_equal(t_add(cs, &s, 1, 1, T_ACK, "abcd", "abcd"), 0);
	t_file(d, T_F1, 3);
	assert_int_equal(cap_sess_write(cs, d, T_F1, err), -1);
	assert_non_null(strstr(err, "File exists"));
	assert_int_equal(t_fsize(d, T_F1), 3);		/* not overwritten */
	assert_false(cap_sess_writing(cs));
	assert_int_equal(cap_sess_frames(cs), 1);	/* still buffering */
	assert_int_equal(cap_sess_write(cs, d, "a/b", err), -1);
	assert_int_equal(cap_sess_write(cs, "/nonexistent-dir", T_F2, err), -1);
	old = umask(0);
	assert_int_equal(cap_sess_write(cs, d, T_F2, err), 0);
	umask(old);
	snprintf(path, sizeof(path), "%s/%s", d, T_F2);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	cap_sess_close(cs);
	t_read_back(d, T_F2, &s);

	/* a strict umask does not narrow it either */
	s.n = 0;
	assert_non_null(cs = cap_sess_new(&conf, &b));
	old = umask(077);
	assert_int_equal(cap_sess_write(cs, d, T_F3, err), 0);
	umask(old);
	snprintf(path, sizeof(path), "%s/%s", d, T_F3);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	cap_sess_close(cs);
	t_read_back(d, T_F3, &s);		/* an empty capture is a valid file */
	t_rmdir(d);
}

static void
test_capture_sess_write_error_marks_failed(void **state)
{
	struct cap_budget b = { 0, 1 << 20 };
	struct cap_sess_conf conf = { DLT_RAW, 1 << 20, 1 };
	struct t_sent s = { .n = 0 };
	char err[CAP_ERR_LEN] = "", *d = t_mkdir();
	struct cap_sess *cs;
	struct rlimit old, lim;
	void (*osig)(int);
	int i, rc = 0;

	(void)state;
	/* a file size limit stands in for a full disk: write(2) fails with EFBIG */
	osig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 200;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_non_null(cs = cap_sess_new(&conf, &b));
	assert_int_equal(t_add(cs, &s, 1, 1, T_ACK, "abcd", "abcd"), 0);
	assert_int_equal(cap_sess_write(cs, d, T_F1, err), 0);
	for (i = 0; i < 10 && rc == 0; i++)
		rc = t_add(cs, &s, 1, 5 + 4 * (uint32_t)i, T_ACK, "efgh", NULL);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(t_err, "large"));	/* EFBIG */
	assert_true(cap_sess_failed(cs));
	assert_false(cap_sess_writing(cs));
	assert_int_equal(t_add(cs, &s, 1, 99, T_ACK, "ijkl", NULL), 0);	/* ignored */
	assert_int_equal(cap_sess_write(cs, d, T_F2, err), -1);
	cap_sess_close(cs);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, osig);
	assert_true(t_fsize(d, T_F1) <= 200);
	t_rmdir(d);
}

static void
test_capture_sess_write_error_on_buffered_frames(void **state)
{
	struct cap_budget b = { 0, 1 << 20 };
	struct cap_sess_conf conf = { DLT_RAW, 1 << 20, 0 };
	struct t_sent s = { .n = 0 };
	char err[CAP_ERR_LEN] = "", *d = t_mkdir();
	struct cap_sess *cs;
	struct rlimit old, lim;
	void (*osig)(int);
	int i;

	(void)state;
	osig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 100;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_non_null(cs = cap_sess_new(&conf, &b));
	for (i = 0; i < 5; i++)
		assert_int_equal(t_add(cs, &s, 1, 1 + 4 * (uint32_t)i, T_ACK, "abcd", NULL), 0);
	assert_int_equal(cap_sess_write(cs, d, T_F1, err), -1);
	assert_non_null(strstr(err, "large"));		/* EFBIG: "File too large" */
	assert_true(cap_sess_failed(cs));
	assert_int_equal(b.used, 0);
	cap_sess_close(cs);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, osig);
	t_rmdir(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capture_name_ipv4),
		cmocka_unit_test(test_capture_name_ipv6_and_v4_mapped),
		cmocka_unit_test(test_capture_name_buffer_exact_and_too_small),
		cmocka_unit_test(test_capture_prune_count_oldest_first),
		cmocka_unit_test(test_capture_prune_bytes),
		cmocka_unit_test(test_capture_prune_keep_is_kept),
		cmocka_unit_test(test_capture_prune_foreign_links_dirs_untouched),
		cmocka_unit_test(test_capture_prune_empty_and_missing_dir),
		cmocka_unit_test(test_capture_link_sll_and_sll2),
		cmocka_unit_test(test_capture_link_ethernet_and_vlan_tags),
		cmocka_unit_test(test_capture_link_raw_null_loop),
		cmocka_unit_test(test_capture_redact_auth_plain_initial_response),
		cmocka_unit_test(test_capture_redact_auth_login_two_continuations),
		cmocka_unit_test(test_capture_redact_auth_split_across_segments),
		cmocka_unit_test(test_capture_redact_retransmission_blanked_again),
		cmocka_unit_test(test_capture_redact_lowercase_and_spacing),
		cmocka_unit_test(test_capture_redact_multiline_334_and_final_lines),
		cmocka_unit_test(test_capture_redact_plain_session_unchanged),
		cmocka_unit_test(test_capture_redact_gap_in_exchange_blanks_segment),
		cmocka_unit_test(test_capture_redact_gap_outside_exchange),
		cmocka_unit_test(test_capture_redact_server_gap_assumes_continuation),
		cmocka_unit_test(test_capture_redact_no_syn_seen),
		cmocka_unit_test(test_capture_redact_many_ranges_then_retransmission),
		cmocka_unit_test(test_capture_sess_buffer_max_truncates),
		cmocka_unit_test(test_capture_sess_budget_shared_and_given_back),
		cmocka_unit_test(test_capture_sess_write_in_order_and_read_back),
		cmocka_unit_test(test_capture_sess_exists_refused_and_mode_0640),
		cmocka_unit_test(test_capture_sess_write_error_marks_failed),
		cmocka_unit_test(test_capture_sess_write_error_on_buffered_frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

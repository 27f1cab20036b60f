/*
 * bench_data: the DATA content scanner (proxy/smtp/data.c) in MiB/s, next to
 * memcpy of the same bytes in the same run (the floor: the scanner copies
 * what it reads into the server's buffer). `make bench`.
 *
 * Bodies of 1 MiB, fed in 16 KiB chunks as the session reads them:
 *   text78    lines of 78 characters, CRLF (ordinary mail)
 *   text998   lines of 998 characters (the RFC 5322 maximum; base64 bodies
 *             are 76, attachments in long lines come close to this)
 *   dots      every third line starts with a dot (dot-stuffed content)
 * each in both bare_lf modes (reject: byte for byte; normalize). Every
 * figure is the median [min-max] of 15 runs of 64 MiB each; the scanner's
 * output is checked against the input once (reject mode copies exactly).
 *
 * Plain C, no test framework; prints a table; exits 1 if a check fails.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/bench/benchclock.h"
#include "proxy/smtp/data.h"

#define BD_BODY		(1u << 20)
#define BD_CHUNK	(16u * 1024)
#define BD_ROUNDS	64		/* bodies per run */
#define BD_RUNS		15

/* A body of BD_BODY bytes of lines `width` long (every `dot_every`th starting with '.'), then ".\r\n". */
static size_t
bd_body(char *p, unsigned width, unsigned dot_every)
{
	size_t n = 0;
	unsigned line = 0, i;

	while (n + width + 2 <= BD_BODY) {
		for (i = 0; i < width; i++)
			p[n + i] = (char)('a' + (n + i) % 26);
		if (dot_every && line % dot_every == 0)
			p[n] = '.';
		n += width;
		p[n++] = '\r';
		p[n++] = '\n';
		line++;
	}
	memcpy(p + n, ".\r\n", 3);
	return n + 3;
}

/* One body through the scanner in BD_CHUNK pieces; the bytes written. */
static size_t
bd_scan(const char *body, size_t len, char *out, size_t outroom, enum smtp_data_mode mode)
{
	struct smtp_data d;
	size_t off = 0, o = 0, w;

	smtp_data_init(&d, mode);
	while (off < len && !d.done) {
		size_t n = len - off < BD_CHUNK ? len - off : BD_CHUNK;
		size_t k = smtp_data_scan(&d, body + off, n, out + o, outroom - o, &w);

		off += k;
		o += w;
		if (k == 0)
			break;
	}
	return d.done ? o : 0;
}

static void
bd_report(const char *name, const char *mode, double *s, double *base)
{
	double mib = (double)BD_ROUNDS * BD_BODY / (1 << 20), r[BD_RUNS];
	int i;

	for (i = 0; i < BD_RUNS; i++)
		r[i] = base[i] / s[i];		/* same run: memcpy time / scanner time */
	qsort(s, BD_RUNS, sizeof(*s), bench_cmp_double);
	qsort(base, BD_RUNS, sizeof(*base), bench_cmp_double);
	qsort(r, BD_RUNS, sizeof(*r), bench_cmp_double);
	printf("%-8s %-10s %7.0f [%5.0f-%5.0f]   %7.0f [%5.0f-%5.0f]   x%.2f [%.2f-%.2f]\n", name, mode,
	    mib / s[BD_RUNS / 2], mib / s[BD_RUNS - 1], mib / s[0],
	    mib / base[BD_RUNS / 2], mib / base[BD_RUNS - 1], mib / base[0],
	    r[BD_RUNS / 2], r[0], r[BD_RUNS - 1]);
}

int
main(void)
{
	static const struct { const char *name; unsigned width, dots; } kinds[] = {
		{ "text78", 78, 0 }, { "text998", 998, 0 }, { "dots", 78, 3 },
	};
	static const struct { const char *name; enum smtp_data_mode mode; } modes[] = {
		{ "reject", SMTP_DATA_REJECT }, { "normalize", SMTP_DATA_NORMALIZE },
	};
	char *body = malloc(BD_BODY + 8), *out = malloc(2 * BD_BODY + 64);
	double s[BD_RUNS], base[BD_RUNS], t;
	size_t k, m, len, olen;
	int run, j, rc = 0;
	volatile size_t sink = 0;

	if (body == NULL || out == NULL)
		return 1;
	printf("bench_data: DATA scanner, 1 MiB bodies in 16 KiB chunks, %d runs of %d MiB; "
	    "median [min-max]\n", BD_RUNS, BD_ROUNDS);
	printf("%-8s %-10s %-22s   %-22s   %s\n", "body", "bare_lf", "scanner MiB/s", "memcpy MiB/s",
	    "scanner/memcpy speed");
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		len = bd_body(body, kinds[k].width, kinds[k].dots);
		for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
			olen = bd_scan(body, len, out, 2 * BD_BODY + 64, modes[m].mode);
			if (olen != len || (modes[m].mode == SMTP_DATA_REJECT && memcmp(out, body, len) != 0)) {
				fprintf(stderr, "bench_data: %s/%s: the output differs from the input\n",
				    kinds[k].name, modes[m].name);
				rc = 1;
				continue;
			}
			for (run = 0; run < BD_RUNS; run++) {
				/* interleaved: the baseline within milliseconds of the scanner */
				t = bench_now();
				for (j = 0; j < BD_ROUNDS; j++)
					sink += bd_scan(body, len, out, 2 * BD_BODY + 64, modes[m].mode);
				s[run] = bench_now() - t;
				t = bench_now();
				for (j = 0; j < BD_ROUNDS; j++) {
					size_t off;

					for (off = 0; off < len; off += BD_CHUNK)
						memcpy(out + off, body + off, len - off < BD_CHUNK ? len - off : BD_CHUNK);
					sink += out[j];
				}
				base[run] = bench_now() - t;
			}
			bd_report(kinds[k].name, modes[m].name, s, base);
		}
	}
	(void)sink;
	free(body);
	free(out);
	return rc;
}

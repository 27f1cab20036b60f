/*
 * fuzz_config: the smtpwall.conf parser. Invariants: no crash, no leak, every
 * error is reported as one "PATH:LINE: message" line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cf = calloc(1, sizeof(*cf));
	char *text = malloc(size ? size : 1), *out = NULL, *line, *save = NULL;
	size_t outlen = 0;
	FILE *errf;
	int n, lines = 0;

	if (cf == NULL || text == NULL || (errf = open_memstream(&out, &outlen)) == NULL)
		abort();
	memcpy(text, data, size);
	if (config_init(cf) == -1)
		abort();
	n = config_parse(cf, "fz.conf", text, size, errf);
	fclose(errf);
	for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "fz.conf:", 8) != 0)
			abort();
		lines++;
	}
	if (n != lines)
		abort();
	config_free(cf);
	free(cf);
	free(out);
	free(text);
	return 0;
}

/*
 * fuzz_capture: the pure parts of the capture module on arbitrary input.
 *
 * cap_l3_offset: the whole input as a frame of every link type; on success
 * the offset is inside the frame and the byte there has version 4 or 6.
 *
 * cap_redact_segment: the input as a sequence of segments of one leg,
 *	byte 0: bit 0 to_server, bit 1 SYN, bit 2 an absolute seq follows
 *	[4 bytes seq, big-endian]  else byte 1: a signed offset from the
 *	    direction's next expected seq (retransmissions, gaps)
 *	then: 1 byte payload length, the payload (cut at the input's end).
 * Invariants: a payload keeps its length; CR and LF bytes never change;
 * every other byte is unchanged or becomes '*'; the server side's bytes
 * never change.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pcap/dlt.h>

#include "capture/capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int fz_linktypes[] = {
	DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_EN10MB, DLT_RAW, 101, DLT_IPV4, DLT_IPV6,
	DLT_NULL, DLT_LOOP, DLT_IEEE802_11, -1,
};

static void
fz_link(const uint8_t *data, size_t size)
{
	uint8_t *frame = malloc(size ? size : 1);	/* exact size: ASan sees overreads */
	size_t i, off;

	if (frame == NULL)
		return;
	memcpy(frame, data, size);
	for (i = 0; i < sizeof(fz_linktypes) / sizeof(fz_linktypes[0]); i++) {
		off = (size_t)-1;
		if (cap_l3_offset(fz_linktypes[i], frame, size, &off) == 0) {
			if (off >= size || (frame[off] >> 4 != 4 && frame[off] >> 4 != 6))
				abort();
		}
	}
	free(frame);
}

static void
fz_redact(const uint8_t *data, size_t size)
{
	struct cap_redact *rd = cap_redact_new();
	uint32_t next[2] = { 0, 0 }, seq;
	size_t pos = 0, len, i;
	uint8_t h, *p;
	int dir;

	if (rd == NULL)
		return;
	while (pos < size) {
		h = data[pos++];
		dir = h & 1;
		if (h & 4) {
			if (size - pos < 4)
				break;
			seq = (uint32_t)data[pos] << 24 | (uint32_t)data[pos + 1] << 16 |
			    (uint32_t)data[pos + 2] << 8 | data[pos + 3];
			pos += 4;
		} else {
			if (pos >= size)
				break;
			seq = next[dir] + (uint32_t)(int32_t)(int8_t)data[pos++];
		}
		if (pos >= size)
			break;
		len = data[pos++];
		if (len > size - pos)
			len = size - pos;
		if ((p = malloc(len ? len : 1)) == NULL)
			break;
		memcpy(p, data + pos, len);
		cap_redact_segment(rd, dir, (h & 2) ? 0x02 : 0x10, seq, len ? p : NULL, len);
		for (i = 0; i < len; i++) {
			if (p[i] == data[pos + i])
				continue;
			if (!dir || p[i] != '*' || data[pos + i] == '\r' || data[pos + i] == '\n')
				abort();
		}
		free(p);
		pos += len;
		next[dir] = seq + (uint32_t)len + ((h & 2) ? 1 : 0);
	}
	cap_redact_free(rd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_link(data, size);
	fz_redact(data, size);
	return 0;
}

/*
 * sess.c: the session recorder of capture.h (cap_sess_*).
 *
 * Owns, for one session: a FIFO of copied frames while buffering (each
 * frame counts 16 + caplen bytes, its size in the file, against the
 * recorder's buffer_max and the shared budget), one cap_redact per leg
 * when redaction is on, and once writing, the file: a pcap_dumper_t over
 * stdio on an fd it created with O_EXCL.
 *
 * Redaction is applied to the copy, in the order frames are added, whether
 * the frame is then kept, written or dropped (a dropped frame's payload is
 * still fed to the redactor, on a scratch copy, so the streams stay in
 * step).
 *
 * Flush policy: the buffered frames are flushed once written, then every
 * frame added while writing is flushed at once: a file is complete, frame
 * by frame, for a reader (tcpdump -r, tshark -r) at any moment, and a write
 * error (ENOSPC) is seen on the frame that hit it. Captures are rare and
 * chosen, so one write(2) per frame is cheap.
 *
 * A write error marks the recorder failed: the file is closed as it is
 * (the frames before the one that failed stay readable; that one may be
 * cut short) and nothing more is written.
 *
 * Never logs, never overwrites a file, never holds more than buffer_max
 * bytes or takes the budget past its max, never modifies the caller's frame.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <pcap/pcap.h>

#include "capture/capture.h"

#define CAP_FILE_HDR_LEN	24	/* struct pcap_file_header */
#define CAP_REC_HDR_LEN		16	/* a record header in the file */
#define CAP_FILE_MODE		0640

struct cap_frame {
	struct cap_frame	*cf_next;
	struct cap_pkthdr	 cf_h;
	uint8_t			 cf_data[];
};

struct cap_sess {
	struct cap_sess_conf	 cs_conf;
	struct cap_budget	*cs_budget;
	struct cap_frame	*cs_head;
	struct cap_frame	**cs_tail;
	uint64_t		 cs_held;	/* buffered bytes, counted in the budget */
	uint64_t		 cs_frames;	/* kept or written */
	uint64_t		 cs_dropped;
	int			 cs_failed;
	struct cap_redact	*cs_rd[2];	/* [leg], when redacting */
	uint8_t			*cs_scratch;	/* CAP_SNAPLEN bytes, when redacting */
	pcap_t			*cs_dead;	/* writing: the dumper's handle */
	pcap_dumper_t		*cs_dump;
	uint64_t		 cs_bytes;	/* of the file */
};

struct cap_sess *
cap_sess_new(const struct cap_sess_conf *conf, struct cap_budget *budget)
{
	struct cap_sess *cs;

	if ((cs = calloc(1, sizeof(*cs))) == NULL)
		return NULL;
	cs->cs_conf = *conf;
	cs->cs_budget = budget;
	cs->cs_tail = &cs->cs_head;
	if (conf->redact &&
	    ((cs->cs_rd[CAP_LEG_CLIENT] = cap_redact_new()) == NULL ||
	    (cs->cs_rd[CAP_LEG_SERVER] = cap_redact_new()) == NULL ||
	    (cs->cs_scratch = malloc(CAP_SNAPLEN)) == NULL)) {
		cap_sess_close(cs);
		return NULL;
	}
	return cs;
}

/* Free the buffered frames and give their bytes back to the budget. */
static void
cap_sess_unbuffer(struct cap_sess *cs)
{
	struct cap_frame *f, *next;

	for (f = cs->cs_head; f != NULL; f = next) {
		next = f->cf_next;
		free(f);
	}
	cs->cs_head = NULL;
	cs->cs_tail = &cs->cs_head;
	if (cs->cs_budget != NULL)
		cs->cs_budget->used -= cs->cs_held < cs->cs_budget->used ?
		    cs->cs_held : cs->cs_budget->used;
	cs->cs_held = 0;
}

/* Blank the TCP payload of frame[0..caplen) (a copy) if t says there is one. */
static void
cap_sess_redact(struct cap_sess *cs, uint8_t *frame, uint32_t caplen,
    const struct cap_tcp *t)
{
	size_t off, len;

	if (t == NULL || cs->cs_rd[CAP_LEG_CLIENT] == NULL)
		return;
	off = t->payload_off;
	len = t->payload_len;
	if (off > caplen)
		off = len = 0;
	else if (len > caplen - off)
		len = caplen - off;
	cap_redact_segment(cs->cs_rd[t->leg == CAP_LEG_SERVER ? CAP_LEG_SERVER : CAP_LEG_CLIENT],
	    t->to_server, t->flags, t->seq, frame + off, len);
}

/* Closing after a write error: what was written stays, nothing more is. */
static void
cap_sess_fail(struct cap_sess *cs, const char *what, int error, char err[CAP_ERR_LEN])
{
	snprintf(err, CAP_ERR_LEN, "%s: %s", what, strerror(error));
	cs->cs_failed = 1;
	if (cs->cs_dump != NULL)
		pcap_dump_close(cs->cs_dump);
	cs->cs_dump = NULL;
	if (cs->cs_dead != NULL)
		pcap_close(cs->cs_dead);
	cs->cs_dead = NULL;
}

/* Write one record; 0, or -1 with err set and the recorder failed. */
static int
cap_sess_dump(struct cap_sess *cs, const struct cap_pkthdr *h, const uint8_t *data,
    char err[CAP_ERR_LEN])
{
	struct pcap_pkthdr ph;
	FILE *fp = pcap_dump_file(cs->cs_dump);

	memset(&ph, 0, sizeof(ph));
	ph.ts = h->ts;
	ph.caplen = h->caplen;
	ph.len = h->len;
	errno = 0;
	pcap_dump((u_char *)cs->cs_dump, &ph, data);
	if (ferror(fp)) {
		cap_sess_fail(cs, "write", errno ? errno : EIO, err);
		return -1;
	}
	cs->cs_bytes += CAP_REC_HDR_LEN + (uint64_t)h->caplen;
	cs->cs_frames++;
	return 0;
}

static int
cap_sess_flush(struct cap_sess *cs, char err[CAP_ERR_LEN])
{
	errno = 0;
	if (pcap_dump_flush(cs->cs_dump) == -1) {
		cap_sess_fail(cs, "write", errno ? errno : EIO, err);
		return -1;
	}
	return 0;
}

int
cap_sess_add(struct cap_sess *cs, const struct cap_pkthdr *h, const uint8_t *frame,
    const struct cap_tcp *t, char err[CAP_ERR_LEN])
{
	struct cap_pkthdr hh = *h;
	struct cap_frame *f;
	uint64_t sz;

	if (cs->cs_failed)
		return 0;
	if (hh.caplen > CAP_SNAPLEN)
		hh.caplen = CAP_SNAPLEN;
	if (hh.len < hh.caplen)
		hh.len = hh.caplen;
	sz = CAP_REC_HDR_LEN + (uint64_t)hh.caplen;

	if (cs->cs_dump != NULL) {
		const uint8_t *data = frame;

		if (cs->cs_scratch != NULL && t != NULL) {
			memcpy(cs->cs_scratch, frame, hh.caplen);
			cap_sess_redact(cs, cs->cs_scratch, hh.caplen, t);
			data = cs->cs_scratch;
		}
		if (cap_sess_dump(cs, &hh, data, err) == -1)
			return -1;
		return cap_sess_flush(cs, err);
	}

	if (cs->cs_held + sz > cs->cs_conf.buffer_max ||
	    (cs->cs_budget != NULL && cs->cs_budget->used + sz > cs->cs_budget->max)) {
		cs->cs_dropped++;
		if (cs->cs_scratch != NULL && t != NULL) {
			/* keep the redactor in step: it may have to blank later frames */
			memcpy(cs->cs_scratch, frame, hh.caplen);
			cap_sess_redact(cs, cs->cs_scratch, hh.caplen, t);
		}
		return 0;
	}
	if ((f = malloc(sizeof(*f) + hh.caplen)) == NULL) {
		cs->cs_dropped++;
		snprintf(err, CAP_ERR_LEN, "buffer: %s", strerror(ENOMEM));
		return -1;
	}
	f->cf_next = NULL;
	f->cf_h = hh;
	memcpy(f->cf_data, frame, hh.caplen);
	cap_sess_redact(cs, f->cf_data, hh.caplen, t);
	*cs->cs_tail = f;
	cs->cs_tail = &f->cf_next;
	cs->cs_held += sz;
	if (cs->cs_budget != NULL)
		cs->cs_budget->used += sz;
	cs->cs_frames++;
	return 0;
}

/* Create dir/name (never an existing one) and open a dumper on it. */
static int
cap_sess_create(struct cap_sess *cs, const char *dir, const char *name,
    char path[], size_t pathlen, char err[CAP_ERR_LEN])
{
	FILE *fp;
	int fd, n, e;

	n = snprintf(path, pathlen, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= pathlen || strchr(name, '/') != NULL || *name == '\0') {
		snprintf(err, CAP_ERR_LEN, "%s: bad capture file name", name);
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, CAP_FILE_MODE)) == -1) {
		snprintf(err, CAP_ERR_LEN, "%s: %s", name, strerror(errno));
		return -1;
	}
	if (fchmod(fd, CAP_FILE_MODE) == -1 || (fp = fdopen(fd, "wb")) == NULL) {
		e = errno;
		close(fd);
		unlink(path);
		snprintf(err, CAP_ERR_LEN, "%s: %s", name, strerror(e));
		return -1;
	}
	if ((cs->cs_dead = pcap_open_dead(cs->cs_conf.linktype, CAP_SNAPLEN)) == NULL) {
		fclose(fp);
		unlink(path);
		snprintf(err, CAP_ERR_LEN, "%s: %s", name, strerror(ENOMEM));
		return -1;
	}
	/*
	 * pcap_dump_fopen fails on a link type files cannot hold, leaving fp
	 * ours; it also fcloses fp when writing the header fails, but the
	 * 24-byte header only goes into the fresh stream's buffer here, so
	 * that cannot happen: a full disk shows at the first flush.
	 */
	if ((cs->cs_dump = pcap_dump_fopen(cs->cs_dead, fp)) == NULL) {
		snprintf(err, CAP_ERR_LEN, "%s: %s", name, pcap_geterr(cs->cs_dead));
		fclose(fp);
		unlink(path);
		pcap_close(cs->cs_dead);
		cs->cs_dead = NULL;
		return -1;
	}
	cs->cs_bytes = CAP_FILE_HDR_LEN;
	return 0;
}

int
cap_sess_write(struct cap_sess *cs, const char *dir, const char *name,
    char err[CAP_ERR_LEN])
{
	char path[4096];
	struct cap_frame *f;

	if (cs->cs_dump != NULL || cs->cs_failed) {
		snprintf(err, CAP_ERR_LEN, "%s: %s", name,
		    cs->cs_failed ? "capture failed" : "already writing");
		return -1;
	}
	if (cap_sess_create(cs, dir, name, path, sizeof(path), err) == -1)
		return -1;
	/* Frames kept were counted when buffered; now they count as written. */
	cs->cs_frames = 0;
	for (f = cs->cs_head; f != NULL; f = f->cf_next)
		if (cap_sess_dump(cs, &f->cf_h, f->cf_data, err) == -1)
			break;
	cap_sess_unbuffer(cs);
	if (cs->cs_failed)
		return -1;
	return cap_sess_flush(cs, err);
}

int
cap_sess_writing(const struct cap_sess *cs)
{
	return cs->cs_dump != NULL;
}

int
cap_sess_truncated(const struct cap_sess *cs)
{
	return cs->cs_dropped > 0;
}

int
cap_sess_failed(const struct cap_sess *cs)
{
	return cs->cs_failed;
}

uint64_t
cap_sess_frames(const struct cap_sess *cs)
{
	return cs->cs_frames;
}

uint64_t
cap_sess_bytes(const struct cap_sess *cs)
{
	return cs->cs_dump != NULL ? cs->cs_bytes : 0;
}

void
cap_sess_close(struct cap_sess *cs)
{
	if (cs == NULL)
		return;
	if (cs->cs_dump != NULL) {
		pcap_dump_flush(cs->cs_dump);
		pcap_dump_close(cs->cs_dump);
	}
	if (cs->cs_dead != NULL)
		pcap_close(cs->cs_dead);
	cap_sess_unbuffer(cs);
	cap_redact_free(cs->cs_rd[CAP_LEG_CLIENT]);
	cap_redact_free(cs->cs_rd[CAP_LEG_SERVER]);
	free(cs->cs_scratch);
	free(cs);
}

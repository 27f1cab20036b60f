/*
 * live.c: the live libpcap handle of capture.h (cap_live_*).
 *
 * Owns one pcap_t: created on an interface ("any": every interface), snaplen
 * CAP_SNAPLEN, immediate mode (each packet is readable as soon as it is
 * captured, so a session's packets are never held back behind a timeout),
 * a kernel buffer of the caller's size, non-blocking, one BPF filter. Its
 * selectable fd goes in the caller's event loop; cap_live_read() drains what
 * is waiting, at most `max` frames a call.
 *
 * Never logs, never blocks once open, never keeps a frame: each is valid
 * only during the callback. libpcap's own text goes into err.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcap/pcap.h>

#include "capture/capture.h"

struct cap_live {
	pcap_t	*cl_p;
	int	 cl_fd;
	int	 cl_linktype;
};

struct cap_live_cb {
	cap_packet_fn	*cc_fn;
	void		*cc_arg;
};

/* Compile `filter` for p and set it; the old filter stays on failure. */
static int
cap_live_filter(pcap_t *p, const char *filter, char err[CAP_ERR_LEN])
{
	struct bpf_program prog;
	int rc;

	if (filter == NULL)
		filter = "";
	if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) == PCAP_ERROR) {
		snprintf(err, CAP_ERR_LEN, "filter \"%s\": %s", filter, pcap_geterr(p));
		return -1;
	}
	rc = pcap_setfilter(p, &prog);
	if (rc == -1)
		snprintf(err, CAP_ERR_LEN, "set filter: %s", pcap_geterr(p));
	pcap_freecode(&prog);
	return rc == -1 ? -1 : 0;
}

/* err = "what: <libpcap's text>", naming the status when libpcap gave no text. */
static void
cap_live_status(pcap_t *p, const char *what, int status, char err[CAP_ERR_LEN])
{
	const char *txt = pcap_geterr(p);

	if (status == PCAP_ERROR || txt == NULL || *txt == '\0')
		snprintf(err, CAP_ERR_LEN, "%s: %s", what,
		    txt != NULL && *txt != '\0' ? txt : pcap_statustostr(status));
	else
		snprintf(err, CAP_ERR_LEN, "%s: %s (%s)", what, pcap_statustostr(status), txt);
}

struct cap_live *
cap_live_open(const char *iface, const char *filter, int bufsize, char err[CAP_ERR_LEN])
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	struct cap_live *cl;
	pcap_t *p;
	int rc;

	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		snprintf(err, CAP_ERR_LEN, "out of memory");
		return NULL;
	}
	if ((p = pcap_create(iface, ebuf)) == NULL) {
		snprintf(err, CAP_ERR_LEN, "pcap_create %s: %s", iface, ebuf);
		free(cl);
		return NULL;
	}
	if ((rc = pcap_set_snaplen(p, CAP_SNAPLEN)) != 0 ||
	    (rc = pcap_set_immediate_mode(p, 1)) != 0 ||
	    (bufsize > 0 && (rc = pcap_set_buffer_size(p, bufsize)) != 0)) {
		cap_live_status(p, iface, rc, err);
		goto fail;
	}
	/* rc > 0 is a warning (e.g. promiscuous mode not supported): fine. */
	if ((rc = pcap_activate(p)) < 0) {
		cap_live_status(p, iface, rc, err);
		goto fail;
	}
	if (pcap_setnonblock(p, 1, ebuf) == PCAP_ERROR) {
		snprintf(err, CAP_ERR_LEN, "%s: non-blocking: %s", iface, ebuf);
		goto fail;
	}
	if (cap_live_filter(p, filter, err) == -1)
		goto fail;
	if ((cl->cl_fd = pcap_get_selectable_fd(p)) == -1) {
		snprintf(err, CAP_ERR_LEN, "%s: no selectable fd", iface);
		goto fail;
	}
	cl->cl_p = p;
	cl->cl_linktype = pcap_datalink(p);
	return cl;
fail:
	pcap_close(p);
	free(cl);
	return NULL;
}

int
cap_live_setfilter(struct cap_live *cl, const char *filter, char err[CAP_ERR_LEN])
{
	return cap_live_filter(cl->cl_p, filter, err);
}

int
cap_live_fd(const struct cap_live *cl)
{
	return cl->cl_fd;
}

int
cap_live_linktype(const struct cap_live *cl)
{
	return cl->cl_linktype;
}

static void
cap_live_cb(u_char *user, const struct pcap_pkthdr *ph, const u_char *bytes)
{
	const struct cap_live_cb *cc = (const struct cap_live_cb *)user;
	struct cap_pkthdr h;

	h.ts = ph->ts;
	h.caplen = ph->caplen;
	h.len = ph->len;
	cc->cc_fn(cc->cc_arg, &h, bytes);
}

int
cap_live_read(struct cap_live *cl, int max, cap_packet_fn *fn, void *arg,
    char err[CAP_ERR_LEN])
{
	struct cap_live_cb cc = { fn, arg };
	int n;

	/* pcap_dispatch takes max <= 0 as "no limit": not ours to give. */
	if (max <= 0) {
		snprintf(err, CAP_ERR_LEN, "read: bad frame count %d", max);
		return -1;
	}
	n = pcap_dispatch(cl->cl_p, max, cap_live_cb, (u_char *)&cc);
	if (n == PCAP_ERROR_BREAK)	/* pcap_breakloop: not used, nothing read */
		return 0;
	if (n < 0) {
		snprintf(err, CAP_ERR_LEN, "read: %s", pcap_geterr(cl->cl_p));
		return -1;
	}
	return n;
}

void
cap_live_stats(struct cap_live *cl, uint64_t *received, uint64_t *dropped)
{
	struct pcap_stat ps;

	*received = *dropped = 0;
	if (pcap_stats(cl->cl_p, &ps) == 0) {
		*received = ps.ps_recv;
		*dropped = ps.ps_drop;
	}
}

void
cap_live_close(struct cap_live *cl)
{
	if (cl == NULL)
		return;
	pcap_close(cl->cl_p);
	free(cl);
}

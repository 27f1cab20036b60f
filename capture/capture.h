/*
 * capture: chosen sessions written to pcap files with libpcap (SPEC "Session
 * capture"). Public header of the module.
 *
 * Four parts, each usable alone:
 *  - the live handle (cap_live_*): one libpcap handle on capture_interface,
 *    immediate mode, non-blocking, one BPF filter; its fd goes in the
 *    caller's event loop, and cap_live_read() hands out what is waiting.
 *  - the link layer (cap_l3_offset): where the IP header starts in a
 *    captured frame, for the link types a Linux capture gives. Pure.
 *  - the session recorder (cap_sess_*): the packets of one session, both
 *    legs, kept in a bounded buffer until the caller decides the session is
 *    to be written (or at once), then written to a pcap file of its own,
 *    with AUTH payloads blanked when asked (cap_redact, below).
 *  - the directory (cap_file_name, cap_dir_prune): file names, and the
 *    capture_max_files / capture_max_bytes bound, oldest removed first.
 *
 * The caller (proxy/) owns everything else: which captures are armed, which
 * packet belongs to which session (it parses IP/TCP itself and passes the
 * TCP facts in struct cap_tcp), when a session matches, logging.
 *
 * Never: logs, includes anything from proxy/, rules/ or nfq/, blocks (the
 * live handle is non-blocking; file writes are plain buffered stdio on a
 * local file). Errors are -1 with text in err[CAP_ERR_LEN]. Not
 * thread-safe: one thread (the event loop) uses it.
 */
#ifndef SMTPWALL_CAPTURE_H
#define SMTPWALL_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#define CAP_ERR_LEN	256
#define CAP_SNAPLEN	65535

/* One captured frame's header (pcap's, without depending on <pcap.h>). */
struct cap_pkthdr {
	struct timeval	ts;
	uint32_t	caplen;		/* bytes present */
	uint32_t	len;		/* bytes on the wire */
};

/* ---- the live handle -------------------------------------------------------- */

struct cap_live;

/*
 * pcap_create(iface) ("any" is every interface), snaplen CAP_SNAPLEN,
 * immediate mode, a kernel buffer of bufsize bytes, activate, non-blocking,
 * and `filter` (pcap-filter(7) syntax) compiled and set. NULL with err set.
 */
struct cap_live	*cap_live_open(const char *iface, const char *filter, int bufsize,
		    char err[CAP_ERR_LEN]);
/* Replace the filter. 0, or -1 with err set (the old filter stays). */
int		 cap_live_setfilter(struct cap_live *, const char *filter, char err[CAP_ERR_LEN]);
int		 cap_live_fd(const struct cap_live *);		/* pcap_get_selectable_fd */
int		 cap_live_linktype(const struct cap_live *);	/* DLT_* */
typedef void	 cap_packet_fn(void *arg, const struct cap_pkthdr *h, const uint8_t *frame);
/*
 * Hand at most `max` waiting frames to fn (never blocks). The number handed
 * out (0: none waiting), or -1 with err set.
 */
int		 cap_live_read(struct cap_live *, int max, cap_packet_fn *fn, void *arg,
		    char err[CAP_ERR_LEN]);
/* pcap_stats: frames received, and dropped by the kernel (buffer full). */
void		 cap_live_stats(struct cap_live *, uint64_t *received, uint64_t *dropped);
void		 cap_live_close(struct cap_live *);		/* NULL is fine */

/* ---- the link layer --------------------------------------------------------- */

/*
 * Where the IP header starts in frame[0..caplen) for link type `linktype`
 * (DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_EN10MB with or without 802.1Q tags,
 * DLT_RAW, DLT_NULL/DLT_LOOP): 0 and *off set, or -1 (another link type,
 * not IPv4/IPv6, or cut short). Reads nothing outside the frame.
 */
int		 cap_l3_offset(int linktype, const uint8_t *frame, size_t caplen, size_t *off);

/* ---- the session recorder ----------------------------------------------------- */

/* The two legs of a proxied session. */
enum cap_leg { CAP_LEG_CLIENT = 0, CAP_LEG_SERVER = 1 };

/*
 * What the caller found in a frame: which leg, which way (to_server: from
 * the client to the gateway on the client leg, from the gateway to the
 * server on the server leg), and the TCP facts redaction needs. Offsets are
 * from the start of the frame.
 */
struct cap_tcp {
	enum cap_leg	leg;
	int		to_server;
	uint32_t	seq;		/* host order */
	uint8_t		flags;		/* TCP flags as on the wire (SYN 0x02, FIN 0x01, RST 0x04) */
	size_t		payload_off;
	size_t		payload_len;	/* within caplen */
};

/*
 * Bytes held in every recorder's buffer together, against a total cap. A
 * frame counts 16 + caplen bytes: its size in the file.
 */
struct cap_budget {
	uint64_t	used;
	uint64_t	max;
};

struct cap_sess_conf {
	int		linktype;	/* of the frames that will be added */
	uint64_t	buffer_max;	/* capture_buffer: bytes held before a decision (16 + caplen a frame) */
	int		redact;		/* capture_redact: blank AUTH payloads */
};

struct cap_sess;

/* A recorder in buffering mode. budget is shared and must outlive it. NULL on ENOMEM. */
struct cap_sess	*cap_sess_new(const struct cap_sess_conf *, struct cap_budget *budget);
/*
 * Add one frame (caplen above CAP_SNAPLEN is cut to it). Redaction (when
 * on) is applied to the copy that is kept or written, never to `frame`;
 * t NULL means no TCP payload to look at. Every frame with a payload is
 * fed to the leg's redactor, dropped ones included, so the streams stay in
 * step. While buffering, a frame that would take the recorder past
 * buffer_max or the budget past its max is dropped and the recorder marked
 * truncated. While writing, it goes to the file and is flushed at once (a
 * reader sees whole frames at any time). 0, or -1 with err set (out of
 * memory while buffering: the frame is dropped; a write error: the file is
 * closed as it is and the recorder stops writing, see cap_sess_failed).
 * Once failed, frames are ignored (0).
 */
int		 cap_sess_add(struct cap_sess *, const struct cap_pkthdr *h, const uint8_t *frame,
		    const struct cap_tcp *t, char err[CAP_ERR_LEN]);
/*
 * Start writing: create dir/name (O_CREAT|O_EXCL, mode 0640 whatever the
 * umask: never overwrites; name is one path component), write the pcap
 * header and every buffered frame, flush, free the buffer and give its
 * bytes back to the budget; later frames are written as they come. 0, or
 * -1 with err set: the file could not be created (EEXIST included; the
 * recorder keeps buffering), or writing it failed (the recorder is failed,
 * its buffer freed).
 */
int		 cap_sess_write(struct cap_sess *, const char *dir, const char *name,
		    char err[CAP_ERR_LEN]);
int		 cap_sess_writing(const struct cap_sess *);
int		 cap_sess_truncated(const struct cap_sess *);	/* frames were dropped while buffering */
int		 cap_sess_failed(const struct cap_sess *);	/* a write failed; nothing more is written */
uint64_t	 cap_sess_frames(const struct cap_sess *);	/* frames kept or written */
uint64_t	 cap_sess_bytes(const struct cap_sess *);	/* bytes of the file so far (0 if not writing) */
/* Flush and close the file (if any), free the buffer and give its bytes back to the budget. NULL is fine. */
void		 cap_sess_close(struct cap_sess *);

/* ---- AUTH redaction (used by cap_sess; public for its unit tests and fuzzer) ---- */

/*
 * The SMTP conversation of one leg, to find the bytes an AUTH exchange
 * carries from the client side: after "AUTH <mechanism>" the rest of that
 * line (an initial response), and every line the client side sends while
 * the server's last reply was 334, are blanked: each byte becomes '*'
 * (CR and LF kept, lengths unchanged, so the TCP stream stays consistent).
 * Conservative on what it cannot follow: data past a gap in the sequence
 * while an exchange may be open is blanked whole. Retransmitted bytes are
 * blanked as they were the first time.
 */
struct cap_redact;
struct cap_redact *cap_redact_new(void);
void		 cap_redact_free(struct cap_redact *);
/*
 * One TCP segment's payload of this leg, modified in place (payload may be
 * NULL when len is 0). SYN sets the stream start (seq + 1); without one,
 * the first segment with a payload does. Only client-side bytes
 * (to_server) are ever changed.
 */
void		 cap_redact_segment(struct cap_redact *, int to_server, uint8_t flags, uint32_t seq,
		    uint8_t *payload, size_t len);

/* ---- the directory ------------------------------------------------------------ */

/*
 * "YYYYMMDDTHHMMSSZ-SESSIONID-CLIENT.pcap": t in UTC, the session id as 16
 * hex digits, the client's address (IPv6 with ':' written as '_', so the
 * name is safe everywhere a ticket attachment goes). The length, or -1 if
 * len is too small or the address is neither AF_INET nor AF_INET6 (buf is
 * then ""). A v4-mapped IPv6 address is written as IPv4.
 */
int		 cap_file_name(char *buf, size_t len, time_t t, uint64_t session_id,
		    const struct sockaddr *client);

/* Called for each file cap_dir_prune removes (its name and size), to log it. */
typedef void	 cap_prune_fn(void *arg, const char *name, uint64_t size);
/*
 * Keep dir within max_files files and max_bytes bytes of capture files
 * (names as cap_file_name makes them; nothing else in dir is counted or
 * touched), removing the oldest first (by name, which starts with the
 * time). `keep` (a name, or NULL) is never removed: the file being written.
 * Only regular files count (never a symbolic link: lstat semantics); a
 * bound of 0 removes every file but `keep`. The number removed, or -1 with
 * err set (an unlink that failed stops it; earlier removals were reported).
 */
int		 cap_dir_prune(const char *dir, unsigned max_files, uint64_t max_bytes,
		    const char *keep, cap_prune_fn *fn, void *arg, char err[CAP_ERR_LEN]);

#endif /* SMTPWALL_CAPTURE_H */

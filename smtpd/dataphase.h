/* dataphase.h - the DATA phase: end-of-data detection and header checks. */
#ifndef CHAMOIS_DATAPHASE_H
#define CHAMOIS_DATAPHASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum data_status {
	DATA_MORE,	/* all input consumed, no end yet */
	DATA_END,	/* <CRLF>.<CRLF> seen; input after it is not consumed */
	DATA_BARE_CR,	/* a CR not followed by LF */
	DATA_BARE_LF,	/* an LF not preceded by CR */
	DATA_NUL,	/* a NUL octet (outside a CR LF pair) */
};

/*
 * The only end of data is <CRLF>.<CRLF> (RFC 5321 4.1.1.4); a bare CR or
 * LF anywhere stops the scan, so that no sequence can be read as an end
 * by a later server (SMTP smuggling); so does a NUL, which a server that
 * drops NUL before parsing would turn <CRLF>NUL.<CRLF> into an end
 * (doc/protocol.md, "Message content"; doc/security.md).  Output is the
 * message with LF line ends and dot-stuffing undone; it never holds CR or
 * NUL.
 */
struct data_scanner {
	int state;
	size_t line_len;	/* octets of the current line, CRLF included */
	bool long_line;		/* a line over TEXT_LINE_MAX was seen */
	uint64_t octets;	/* message octets in wire form (CRLF) */
};

void data_scanner_init(struct data_scanner *);
/*
 * data_scan - consume up to len octets of in, write at most as many to
 * out (*outlen); returns the octets consumed and sets *st.
 */
size_t data_scan(struct data_scanner *, const char *in, size_t len, char *out,
    size_t *outlen, enum data_status *st);

#define HEADER_KEEP_MAX		64	/* addresses remembered per kind */
#define HEADER_FIELD_KEEP	998	/* octets of an unfolded field examined */

/*
 * header_scanner - watches the header section of the LF-form message:
 * Received fields are counted, Delivered-To addresses kept, and so are
 * the "for <address>" of Received fields that this server (hostname)
 * wrote, to find forwarding loops.
 */
struct header_scanner {
	const char *hostname;
	bool done;		/* the blank line that ends the header was seen */
	bool non_ascii;		/* an octet >= 0x80 in the header section */
	unsigned received;	/* Received: fields */
	char *delivered_to[HEADER_KEEP_MAX];
	size_t ndelivered;
	char *ours_for[HEADER_KEEP_MAX];	/* our own Received ... for <x> */
	size_t nours;
	char field[HEADER_FIELD_KEEP + 1];	/* the field being read, unfolded */
	size_t fieldlen;
	bool in_field;
	bool at_bol;
};

void header_scanner_init(struct header_scanner *, const char *hostname);
void header_scan(struct header_scanner *, const char *text, size_t len);
/* header_scan_end - the message ended: the last field is complete */
void header_scan_end(struct header_scanner *);
void header_scanner_free(struct header_scanner *);

/*
 * header_filter - holds back, in the header section of the LF-form
 * message, every Authentication-Results field until it is complete and
 * asks drop() whether it goes (RFC 8601 5: such a field naming our host
 * that came from outside is removed, doc/protocol.md "Message content");
 * every other octet passes at once.  A held field longer than
 * HEADER_HOLD_MAX is removed: it cannot be judged whole.
 */
#define HEADER_HOLD_MAX		8192
#define HEADER_HOLD_NAME	"Authentication-Results"

typedef bool (*header_drop_fn)(void *arg, const char *field, size_t len);

struct header_filter {
	header_drop_fn drop;
	void *arg;
	bool done;		/* past the header section: all passes */
	bool at_bol;
	int mode;		/* dataphase.c: HF_* */
	char hold[HEADER_HOLD_MAX];
	size_t holdlen;
	unsigned dropped;	/* fields removed */
	unsigned overlong;	/* of which over HEADER_HOLD_MAX */
};

void header_filter_init(struct header_filter *, header_drop_fn, void *arg);
/*
 * header_filter - filter len octets of in into out, which has room for
 * len + HEADER_HOLD_MAX octets; returns the octets written
 */
size_t header_filter(struct header_filter *, const char *in, size_t len,
    char *out);
/* header_filter_end - the message ended: what is held is judged (<= HEADER_HOLD_MAX) */
size_t header_filter_end(struct header_filter *, char *out);

#endif

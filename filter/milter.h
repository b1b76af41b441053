/*
 * milter.h - the client side of the milter protocol (version 6, as
 * Postfix speaks it): one connection to one content filter for one SMTP
 * session, on the event loop (filter/milter.c; doc/filters.md).
 */
#ifndef CHAMOIS_MILTER_H
#define CHAMOIS_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../common/limits.h"

struct event_base;
struct milter;

/* SMFIC_*: the commands the MTA sends */
#define SMFIC_ABORT	'A'
#define SMFIC_BODY	'B'
#define SMFIC_CONNECT	'C'
#define SMFIC_MACRO	'D'
#define SMFIC_BODYEOB	'E'
#define SMFIC_HELO	'H'
#define SMFIC_QUIT_NC	'K'
#define SMFIC_HEADER	'L'
#define SMFIC_MAIL	'M'
#define SMFIC_EOH	'N'
#define SMFIC_OPTNEG	'O'
#define SMFIC_QUIT	'Q'
#define SMFIC_RCPT	'R'
#define SMFIC_DATA	'T'

/* SMFIR_*: what a milter answers */
#define SMFIR_ADDRCPT	'+'
#define SMFIR_DELRCPT	'-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_SHUTDOWN	'4'
#define SMFIR_ACCEPT	'a'
#define SMFIR_REPLBODY	'b'
#define SMFIR_CONTINUE	'c'
#define SMFIR_DISCARD	'd'
#define SMFIR_CHGFROM	'e'
#define SMFIR_CONN_FAIL	'f'
#define SMFIR_ADDHEADER	'h'
#define SMFIR_INSHEADER	'i'
#define SMFIR_SETSYMLIST 'l'
#define SMFIR_CHGHEADER	'm'
#define SMFIR_PROGRESS	'p'
#define SMFIR_QUARANTINE 'q'
#define SMFIR_REJECT	'r'
#define SMFIR_SKIP	's'
#define SMFIR_TEMPFAIL	't'
#define SMFIR_REPLYCODE	'y'
#define SMFIR_OPTNEG	'O'

/* SMFIF_*: actions a milter may take at the end of a message */
#define SMFIF_ADDHDRS	0x01
#define SMFIF_CHGBODY	0x02
#define SMFIF_ADDRCPT	0x04
#define SMFIF_DELRCPT	0x08
#define SMFIF_CHGHDRS	0x10
#define SMFIF_QUARANTINE 0x20
#define SMFIF_CHGFROM	0x40
#define SMFIF_ADDRCPT_PAR 0x80
#define SMFIF_SETSYMLIST 0x100

/* SMFIP_*: steps a milter does not want (NO*), or answers not (NR_*) */
#define SMFIP_NOCONNECT	0x01
#define SMFIP_NOHELO	0x02
#define SMFIP_NOMAIL	0x04
#define SMFIP_NORCPT	0x08
#define SMFIP_NOBODY	0x10
#define SMFIP_NOHDRS	0x20
#define SMFIP_NOEOH	0x40
#define SMFIP_NR_HDR	0x80
#define SMFIP_NOUNKNOWN	0x100
#define SMFIP_NODATA	0x200
#define SMFIP_SKIP	0x400
#define SMFIP_RCPT_REJ	0x800
#define SMFIP_NR_CONN	0x1000
#define SMFIP_NR_HELO	0x2000
#define SMFIP_NR_MAIL	0x4000
#define SMFIP_NR_RCPT	0x8000
#define SMFIP_NR_DATA	0x10000
#define SMFIP_NR_UNKN	0x20000
#define SMFIP_NR_EOH	0x40000
#define SMFIP_NR_BODY	0x80000
#define SMFIP_HDR_LEADSPC 0x100000

/* a packet: 4 octets of length, then the command and its data */
#define MILTER_PACKET_MAX	(256 * 1024)
/* a body chunk (libmilter's MILTER_CHUNK_SIZE) */
#define MILTER_CHUNK		65535

/*
 * struct milter_msg - one packet from a milter, parsed (milter_parse):
 * the pointers point into the packet and are NUL-terminated there
 */
struct milter_msg {
	char cmd;			/* SMFIR_* */
	/* SMFIR_OPTNEG */
	uint32_t version, actions, protocol;
	/* SMFIR_ADDHEADER, SMFIR_INSHEADER, SMFIR_CHGHEADER */
	uint32_t index;
	const char *name;
	const char *value;
	/* SMFIR_REPLYCODE (a checked reply), SMFIR_QUARANTINE (the reason) */
	const char *text;
};

/*
 * milter_parse - one packet's command and data (the length taken off):
 * true with *m filled, false when it is malformed (a reply code that is
 * no 4xx/5xx reply, a missing NUL, a short field); pkt is changed
 * (a reply's line ends)
 */
bool milter_parse(char *pkt, size_t len, struct milter_msg *m);
/*
 * milter_reply_line - a SMFIR_REPLYCODE text as one SMTP reply line:
 * its first line, with an enhanced code (X.0.0 of its class when it has
 * none), anything but printable ASCII replaced, bounded by out's size
 */
void milter_reply_line(const char *text, char *out, size_t outlen);

/* enum milter_verdict - a milter's answer to a step */
enum milter_verdict {
	MILTER_CONTINUE,	/* go on (and every step with no answer) */
	MILTER_ACCEPT,		/* accept: no more steps of this message */
	MILTER_REJECT,		/* 5xx */
	MILTER_TEMPFAIL,	/* 4xx */
	MILTER_DISCARD,		/* accept, and throw away */
	MILTER_FAILED,		/* unreachable, timed out, broke the protocol */
};

/* struct milter_edit - a header change a milter asked for at the end */
struct milter_edit {
	char cmd;		/* SMFIR_ADDHEADER, SMFIR_INSHEADER, SMFIR_CHGHEADER */
	uint32_t index;
	char *name, *value;
};

/* struct milter_params - where a milter is, its limits, for the log */
struct milter_params {
	const struct sockaddr *sa;
	socklen_t salen;
	const char *name;		/* as configured, for log lines */
	const char *logid;		/* the session's id */
	unsigned connect_timeout;	/* seconds: connect and negotiation */
	unsigned command_timeout;	/* each step but the content */
	unsigned content_timeout;	/* a body chunk, the end of the message */
};

/*
 * milter_answer_fn - the answer to a step: the verdict and, for a
 * reject or tempfail with its own reply, that reply as a line ("" if none)
 */
typedef void (*milter_answer_fn)(void *arg, enum milter_verdict,
    const char *reply);

/* struct milter_macro - one macro: {client_addr}, i, j... */
struct milter_macro {
	const char *name, *value;
};

/*
 * milter_open - connect to the milter and negotiate; steps may be given
 * at once (they wait for the negotiation).  Every step below either
 * returns false (the milter does not want it, or answers no such step:
 * it counts as MILTER_CONTINUE and fn is never called) or true, and fn
 * is called once, later, from the loop.  One step at a time.
 */
struct milter *milter_open(struct event_base *, const struct milter_params *);
/* the steps; macros: sent before the step (SMFIC_MACRO), may be 0 */
bool milter_connect(struct milter *, const char *hostname,
    const struct sockaddr *, const struct milter_macro *, size_t nmacros,
    milter_answer_fn, void *);
bool milter_helo(struct milter *, const char *helo, const struct milter_macro *,
    size_t nmacros, milter_answer_fn, void *);
/* args: the sender ("<a@b>") and its ESMTP parameters */
bool milter_mail(struct milter *, const char *const *args, size_t nargs,
    const struct milter_macro *, size_t nmacros, milter_answer_fn, void *);
bool milter_rcpt(struct milter *, const char *rcpt, const struct milter_macro *,
    size_t nmacros, milter_answer_fn, void *);
bool milter_data(struct milter *, const struct milter_macro *, size_t nmacros,
    milter_answer_fn, void *);
/* value: as in the message, from after the colon, LF line ends */
bool milter_header(struct milter *, const char *name, const char *value,
    milter_answer_fn, void *);
bool milter_eoh(struct milter *, const struct milter_macro *, size_t nmacros,
    milter_answer_fn, void *);
/* a chunk of the body (after the header section), LF line ends: sent CRLF */
bool milter_body(struct milter *, const char *text, size_t len,
    milter_answer_fn, void *);
/* the end of the message: the edits come before the answer (milter_edits) */
bool milter_eom(struct milter *, const struct milter_macro *, size_t nmacros,
    milter_answer_fn, void *);
/* milter_abort - the message is over (RSET, refused): the next one starts */
void milter_abort(struct milter *);
/* milter_edits - the header changes of the last end of message */
const struct milter_edit *milter_edits(const struct milter *, size_t *n);
/* milter_quarantine - the quarantine reason of the last message, or NULL */
const char *milter_quarantine(const struct milter *);
/* milter_failed - the milter failed (milter_default_action applies) */
bool milter_failed(const struct milter *);
/* milter_close - QUIT and close (never calls an answer afterwards) */
void milter_close(struct milter *);

#endif

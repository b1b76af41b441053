/*
 * dovecot_auth.h - the client side of Dovecot's authentication protocol
 * (version 1.2, doc.dovecot.org "Authentication protocol"), the wire part
 * only: one server line parsed into a dav_line, and the AUTH and CONT
 * lines a client sends, formatted into a caller's bounded buffer.  No
 * I/O here: the back end that runs it on the event loop is not written
 * yet (sasl_backend dovecot, SPEC 11).
 */
#ifndef CHAMOIS_DOVECOT_AUTH_H
#define CHAMOIS_DOVECOT_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/* the longest server line we read; longer is a protocol error (AUTH_LINE_MAX and room for fields) */
#define DAV_LINE_MAX	16384

enum dav_kind {
	DAV_BAD,	/* not a line of the protocol, or too long */
	DAV_VERSION,	/* VERSION major minor: major must be 1 */
	DAV_MECH,	/* MECH name [flags]: arg is the name */
	DAV_SPID, DAV_CUID, DAV_COOKIE,	/* handshake lines we ignore */
	DAV_DONE,	/* end of the handshake */
	DAV_OK,		/* OK id [user=...]: authenticated */
	DAV_CONT,	/* CONT id base64: a challenge, arg */
	DAV_FAIL,	/* FAIL id [reason=...] [temp]: temp means a back-end failure */
	DAV_OTHER,	/* a line the protocol may add later: ignored */
};

struct dav_line {
	enum dav_kind kind;
	unsigned long id;	/* OK, CONT, FAIL: the request id */
	unsigned major, minor;	/* VERSION */
	const char *arg;	/* MECH name, CONT challenge; points into the line */
	const char *user;	/* OK/FAIL user=, or NULL; points into the line */
	bool temp;		/* FAIL ... temp */
	bool private_mech;	/* MECH ... private: not to be advertised */
};

/*
 * dav_parse - line (len octets, no LF, in a buffer of len + 1: it is
 * written to, tabs and the end become NULs) into
 * *out; DAV_BAD for a malformed line, which ends the connection
 */
enum dav_kind dav_parse(char *line, size_t len, struct dav_line *out);
/*
 * dav_format_auth - "AUTH\tid\tmech\tservice=smtp[\tsecured]\tresp=b64\n"
 * (resp= left out when initial is NULL) into out; -1 if it does not fit
 * or a value holds a tab, LF or other control octet (no field injection)
 */
int dav_format_auth(char *out, size_t size, unsigned long id, const char *mech,
    bool secured, const char *initial);
/*
 * dav_format_auth_from - dav_format_auth with the connection's addresses
 * (lip=, rip=: IP text, NULL to leave out) and, when no_penalty, Dovecot's
 * "no-penalty" flag (its auth penalty off: chamoisd delays failures itself)
 */
int dav_format_auth_from(char *out, size_t size, unsigned long id,
    const char *mech, bool secured, const char *initial, const char *lip,
    const char *rip, bool no_penalty);
/* dav_format_cont - "CONT\tid\tb64\n" into out; -1 as dav_format_auth */
int dav_format_cont(char *out, size_t size, unsigned long id, const char *b64);

#endif

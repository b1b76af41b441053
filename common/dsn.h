/*
 * dsn.h - the parameters of delivery status notifications (RFC 3461):
 * NOTIFY, RET, ENVID and ORCPT, and the xtext they are written in.
 * Pure; used by the session engine (MAIL, RCPT), the submit socket, the
 * queue (its record and reports) and the outbound client (passed on).
 */
#ifndef CHAMOIS_DSN_H
#define CHAMOIS_DSN_H

#include <stdbool.h>
#include <stddef.h>

#define DSN_ENVID_MAX	100	/* RFC 3461 4.4: ENVID's value, octets */
#define DSN_ORCPT_MAX	500	/* RFC 3461 4.2: ORCPT's value, octets */

/* RET= of MAIL (RFC 3461 4.3); DSN_RET_DEFAULT: not given */
enum dsn_ret { DSN_RET_DEFAULT, DSN_RET_FULL, DSN_RET_HDRS };

/* NOTIFY= of RCPT (RFC 3461 4.1), a set; 0: not given */
#define DSN_NOTIFY_NEVER	0x01
#define DSN_NOTIFY_SUCCESS	0x02
#define DSN_NOTIFY_FAILURE	0x04
#define DSN_NOTIFY_DELAY	0x08

/*
 * dsn_notify_parse - "NEVER", or SUCCESS, FAILURE and DELAY joined by
 * commas (any case, each once); the set, 0 if it is not that
 */
unsigned dsn_notify_parse(const char *value);
/* dsn_notify_format - the set as NOTIFY's value, "" for 0 (into out) */
const char *dsn_notify_format(unsigned notify, char *out, size_t size);
/*
 * dsn_wants - whether a recipient whose NOTIFY was notify (0: not given,
 * which is FAILURE,DELAY: RFC 3461 4.1) asks for a report of event (one
 * of SUCCESS, FAILURE, DELAY)
 */
bool dsn_wants(unsigned notify, unsigned event);
/* dsn_ret_parse - "FULL" or "HDRS" (any case); -1 if neither */
int dsn_ret_parse(const char *value);
/* dsn_ret_name - "FULL", "HDRS", "" */
const char *dsn_ret_name(enum dsn_ret);

/*
 * dsn_xtext_decode - the xtext in (RFC 3461 4: "+XX" for an octet, other
 * octets 0x21-0x7e but '+' and '=') decoded into out; false when in is
 * not xtext, decodes to anything but printable ASCII (0x20-0x7e), or does
 * not fit
 */
bool dsn_xtext_decode(const char *in, char *out, size_t size);
/* dsn_xtext_encode - s as xtext; malloc'd */
char *dsn_xtext_encode(const char *s);
/*
 * dsn_envid_parse - ENVID's value (xtext, at most DSN_ENVID_MAX octets)
 * decoded into out; false if bad
 */
bool dsn_envid_parse(const char *value, char *out, size_t size);
/*
 * dsn_orcpt_parse - ORCPT's value "addr-type;xtext" (RFC 3461 4.2, at
 * most DSN_ORCPT_MAX octets; addr-type an atom) into out as
 * "addr-type;decoded address"; false if bad
 */
bool dsn_orcpt_parse(const char *value, char *out, size_t size);
/* dsn_orcpt_param - a kept "type;address" as ORCPT's value again; malloc'd */
char *dsn_orcpt_param(const char *orcpt);

#endif

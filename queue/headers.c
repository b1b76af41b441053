/*
 * headers.c - header fixes for messages that enter the queue (pure: no
 * I/O, no clock; random_u64() makes the Message-ID unique).
 *
 * RFC 5322 3.6 wants exactly one Date and, SHOULD, one Message-ID; a
 * message submitted without them gets them, at the top, the way a
 * submission server adds them (RFC 6409 8.2, 8.3).  Only the header
 * section is looked at: the lines from the top that are header fields
 * ("name:", the obsolete "name :" too, RFC 5322 4.5.3) or their
 * continuation lines.  It ends at the first empty line, at the end of the
 * message, or at the first line that is neither; in that last case the
 * message has no separator and its body would be read as a broken header
 * field, so an empty line is put in front of that line (as Postfix's
 * cleanup does).  Everything else is kept byte for byte.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/addrlist.h"
#include "../common/util.h"
#include "queue.h"
#include "sendmail_parse.h"


char *
queue_fix_headers(const char *msg, size_t len, const char *hostname,
    time_t now, size_t *outlen)
{
	bool have_id = false, have_date = false, infield = false, sep = false;
	size_t i = 0, body = len, hlen = 0, o = 0;
	char head[512], date[64];
	char *out;

	if (hostname == NULL || hostname[0] == '\0')
		hostname = "localhost";
	while (i < len) {
		const char *nl = memchr(msg + i, '\n', len - i);
		size_t e = nl != NULL ? (size_t)(nl - msg) : len, n = e - i;

		if (n == 0 || (n == 1 && msg[i] == '\r'))
			break;		/* the separator */
		if ((msg[i] == ' ' || msg[i] == '\t') && infield) {
			i = e + 1;	/* a continuation line */
			continue;
		}
		if (header_field_name(msg + i, n) == 0) {
			sep = true;	/* the body, with no separator before it */
			body = i;
			break;
		}
		infield = true;
		if (header_field_is(msg + i, n, "Message-ID"))
			have_id = true;
		else if (header_field_is(msg + i, n, "Date"))
			have_date = true;
		i = e + 1;
	}

	if (!have_id) {
		struct tm tm;
		char stamp[32];

		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		hlen += (size_t)snprintf(head + hlen, sizeof(head) - hlen,
		    "Message-ID: <%s.%016" PRIx64 "@%.255s>\n", stamp,
		    random_u64(), hostname);
	}
	if (!have_date) {
		rfc5322_date(date, sizeof(date), now);
		hlen += (size_t)snprintf(head + hlen, sizeof(head) - hlen,
		    "Date: %s\n", date);
	}

	out = xmalloc(hlen + len + 2);
	memcpy(out, head, hlen);
	o = hlen;
	memcpy(out + o, msg, body);
	o += body;
	if (sep)
		out[o++] = '\n';
	memcpy(out + o, msg + body, len - body);
	o += len - body;
	out[o] = '\0';
	*outlen = o;
	return out;
}

/*
 * queue_from_domain - the one domain of the addresses of the one From
 * field of the LF-form message msg[0..len), as a lower-case A-label in
 * out (DKIM signing, doc/queue.md "Signing"); NULL with why set when
 * there is no From, several, or one that addr_list_from_domain gives no
 * one domain
 */
const char *
queue_from_domain(const char *msg, size_t len, char *out, size_t size,
    const char **why)
{
	bool blank;
	size_t hlen = sm_header_len(msg, len, &blank), i = 0, n = 0;
	size_t fstart = 0, fend = 0;
	const char *colon;

	while (i < hlen) {
		const char *nl = memchr(msg + i, '\n', hlen - i);
		size_t e = nl ? (size_t)(nl - msg) : hlen;

		if (header_field_is(msg + i, e - i, "From")) {
			n++;
			fstart = i;
			/* the field and its continuation lines */
			while (e + 1 < hlen && (msg[e + 1] == ' ' || msg[e + 1] == '\t')) {
				nl = memchr(msg + e + 1, '\n', hlen - e - 1);
				e = nl ? (size_t)(nl - msg) : hlen;
			}
			fend = e;
		}
		i = e + 1;
	}
	if (n != 1)
		return (*why = n ? "several From fields" : "no From field", NULL);
	colon = memchr(msg + fstart, ':', fend - fstart);
	if (addr_list_from_domain(colon + 1, (size_t)(msg + fend - colon - 1),
	    out, size, why) != FROM_DOMAIN_ONE)
		return NULL;
	return out;
}

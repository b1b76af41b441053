/*
 * bounce.c - the RFC 3464 delivery status notification (pure: no I/O, no
 * clock; the only outside input is random_u64() for the Message-ID and
 * the MIME boundary).
 *
 * The report is a multipart/report (RFC 6522) of three parts:
 *   1. text/plain: what happened, one paragraph per recipient;
 *   2. message/delivery-status (RFC 3464): Reporting-MTA and Arrival-Date,
 *      then one block per recipient;
 *   3. text/rfc822-headers: the header section of the original message,
 *      or, when the sender asked for it (RET=FULL, RFC 3461 4.3), the
 *      whole message as a message/rfc822.
 *
 * A report is about one event (RFC 3461 6), with one Action: failed,
 * delayed, or (BOUNCE_SUCCESS) "delivered" for local recipients and
 * "relayed" for those a server without the DSN extension took, as the
 * caller selects them; the DSN parameters given at submission show as
 * Original-Envelope-Id and Original-Recipient.
 *
 * Internationalised mail (RFC 6533): an address or a diagnostic that is
 * not ASCII makes part 2 a message/global-delivery-status, where the
 * address type "utf-8" carries the UTF-8 address as it is; ASCII
 * addresses keep the type "rfc822".  An original header section that is
 * not ASCII makes part 3 a message/global-headers.  Such parts, the
 * text part and the report itself then say Content-Transfer-Encoding:
 * 8bit; the report only ever goes into a local Maildir.
 *
 * Everything taken from the queue record or from the original message is
 * made safe before it is written: control characters become spaces,
 * bytes that are not UTF-8 become '?', long values are folded at spaces
 * (RFC 5322 2.2.3) and cut where a run without spaces would pass 998
 * octets, the diagnostic and the header section have upper bounds, and
 * the boundary is chosen after the parts are made, so that it occurs in
 * none of them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/util.h"
#include "queue.h"

#define FOLD_WANT	78		/* fold a longer line where it has a space */
#define FOLD_HARD	998		/* RFC 5322 2.1.1: never a longer line */
#define DIAG_MAX	2048		/* octets of a diagnostic kept */
#define HEADERS_MAX	(64 * 1024)	/* octets of the original header section kept */
#define TEXT_INDENT	"    "

static void
buf_str(struct strbuf *b, const char *s)
{
	strbuf_add(b, s, strlen(s));
}

/*
 * utf8_seq - the length of the well-formed UTF-8 sequence at s (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF), 0 if none
 */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/*
 * clean - s made fit for one field or line: control characters and runs
 * of blanks become one space, no blank at either end, bytes that are not
 * UTF-8 become '?', cut to max octets (on a character boundary, marked
 * "...").  Sets *utf8 when the result is not ASCII.  Caller frees.
 */
static char *
clean(const char *s, size_t max, bool *utf8)
{
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)u), o = 0, i = 0;
	char *out = xmalloc(n + 4);

	while (i < n) {
		size_t k;

		if (u[i] < 0x20 || u[i] == 0x7f || u[i] == ' ') {
			if (o > 0 && out[o - 1] != ' ')
				out[o++] = ' ';
			i++;
			continue;
		}
		if ((k = utf8_seq(u + i, n - i)) == 0) {
			out[o++] = '?';
			i++;
			continue;
		}
		if (o + k > max) {
			while (o > 0 && out[o - 1] == ' ')
				o--;
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (k > 1)
			*utf8 = true;
		memcpy(out + o, u + i, k);
		o += k;
		i += k;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return out;
}

/*
 * put_folded - s (cleaned: single spaces, no control characters) on a line
 * that already holds col octets, then a newline.  Lines grow past
 * FOLD_WANT only where s has no space, and never past FOLD_HARD; a run
 * without spaces too long for a line is cut on a character boundary.
 * With cont NULL this is a header field: it folds before a space, which
 * stays, so that unfolding gives s back (a cut adds a space).  Otherwise
 * it is text: a new line starts with cont instead of the space.
 */
static void
put_folded(struct strbuf *b, size_t col, const char *s, const char *cont)
{
	size_t n = strlen(s), i = 0, start = col;
	size_t indent = cont != NULL ? strlen(cont) : 1;

	while (i < n) {
		size_t j = i + 1, seg;

		while (j < n && s[j] != ' ')
			j++;
		seg = j - i;
		if (s[i] == ' ' && col + seg > FOLD_WANT && col > start) {
			strbuf_add(b, "\n", 1);
			col = 0;
			if (cont != NULL) {
				buf_str(b, cont);
				col = indent;
				i++;
				seg--;
			}
			start = col;
		}
		while (col + seg > FOLD_HARD) {
			size_t take = FOLD_HARD - col;

			while (take > 1 && ((unsigned char)s[i + take] & 0xc0) == 0x80)
				take--;
			strbuf_add(b, s + i, take);
			strbuf_add(b, "\n", 1);
			buf_str(b, cont != NULL ? cont : " ");
			col = start = indent;
			i += take;
			seg -= take;
		}
		strbuf_add(b, s + i, seg);
		col += seg;
		i += seg;
	}
	strbuf_add(b, "\n", 1);
}

/* put_field - "name: value", value folded */
static void
put_field(struct strbuf *b, const char *name, const char *value)
{
	buf_str(b, name);
	buf_str(b, ": ");
	put_folded(b, strlen(name) + 2, value, NULL);
}


/* status_ok - an RFC 3463 status code: class "." subject "." detail */
static bool
status_ok(const char *s)
{
	size_t n;

	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return false;
	if (s[1] != '.')
		return false;
	s += 2;
	for (int part = 0; part < 2; part++) {
		for (n = 0; s[n] >= '0' && s[n] <= '9'; n++)
			;
		if (n < 1 || n > 3)
			return false;
		s += n;
		if (part == 0 && *s++ != '.')
			return false;
	}
	return *s == '\0';
}

/* diag_is_reply - the diagnostic looks like an SMTP reply ("550 ...", "451-...") */
static bool
diag_is_reply(const char *s)
{
	return s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' &&
	    s[2] >= '0' && s[2] <= '9' && (s[3] == '\0' || s[3] == ' ' ||
	    s[3] == '-');
}

/* one selected recipient, cleaned */
struct rinfo {
	char *addr, *orig, *diag, *remote;
	char *orcpt_type;	/* ORCPT's addr-type, NULL: orig is not an ORCPT */
	const char *action;	/* the Action field's value */
	bool addr8, orig8;
	char status[16];
	unsigned attempts;
};

static void
rinfo_fill(struct rinfo *r, const struct queue_rcpt *q, enum bounce_action action,
    bool *any8)
{
	bool diag8 = false, remote8 = false;

	r->addr = clean(q->addr, 1000, &r->addr8);
	if (q->orcpt != NULL && strchr(q->orcpt, ';') != NULL) {
		/* RFC 3464 2.3.1: the ORCPT as given, decoded (dsn.h) */
		const char *semi = strchr(q->orcpt, ';');
		char *type = xasprintf("%.*s", (int)(semi - q->orcpt), q->orcpt);

		r->orcpt_type = clean(type, 64, &r->orig8);
		r->orig = clean(semi + 1, 1000, &r->orig8);
		free(type);
	} else
		r->orig = clean(q->orig, 1000, &r->orig8);
	if (r->orcpt_type == NULL &&
	    (r->orig[0] == '\0' || strcmp(r->orig, r->addr) == 0)) {
		free(r->orig);
		r->orig = NULL;
		r->orig8 = false;
	}
	r->diag = clean(q->last_reply, DIAG_MAX, &diag8);
	r->remote = clean(q->remote_mta, 300, &remote8);
	r->action = action == BOUNCE_DELAYED ? "delayed" : action == BOUNCE_FAILED ?
	    "failed" : q->expanded ? "expanded" : q->local ? "delivered" : "relayed";
	if (status_ok(q->status))
		memcpy(r->status, q->status, strlen(q->status) + 1);
	else
		memcpy(r->status, action == BOUNCE_DELAYED ? "4.0.0" :
		    action == BOUNCE_FAILED ? "5.0.0" : "2.0.0", 6);
	r->attempts = q->attempts;
	if (r->addr8 || r->orig8 || diag8 || remote8)
		*any8 = true;
}

static void
rinfo_free(struct rinfo *r)
{
	free(r->addr);
	free(r->orig);
	free(r->diag);
	free(r->remote);
	free(r->orcpt_type);
}

/* the human-readable part */
static void
make_text(struct strbuf *b, const struct queue_msg *msg, const struct rinfo *rs,
    size_t n, enum bounce_action action, const char *hostname, time_t until)
{
	char date[64], *para;

	strbuf_printf(b, "This is the mail system at %s.\n\n", hostname);
	if (action == BOUNCE_SUCCESS && n > 0 && strcmp(rs[0].action, "expanded") == 0)
		put_folded(b, 0, "You asked for a report on the delivery of your "
		    "message: the addresses below are aliases of several "
		    "recipients, and the message has been passed on to each of "
		    "them. You will get no report of success for those "
		    "recipients, only of a failure or a delay if you asked for "
		    "it.", "");
	else if (action == BOUNCE_SUCCESS && n > 0 && strcmp(rs[0].action, "delivered") == 0)
		put_folded(b, 0, "You asked for a report on the delivery of your "
		    "message: it has been delivered to the mailboxes of the "
		    "recipients below.", "");
	else if (action == BOUNCE_SUCCESS)
		put_folded(b, 0, "You asked for a report on the delivery of your "
		    "message: it has been handed to the servers of the recipients "
		    "below. Those servers send no delivery reports, so this is "
		    "the last report you will get about them.", "");
	else if (action == BOUNCE_FAILED)
		put_folded(b, 0, "Your message could not be delivered to the "
		    "recipients below. The mail system has given up on them: "
		    "either a server refused them for good, or they could not "
		    "be reached for as long as messages are kept in the "
		    "queue. The reason is given under each address.", "");
	else {
		if (until > 0)
			rfc5322_date(date, sizeof(date), until);
		para = xasprintf("Your message has not been delivered yet to "
		    "the recipients below. The mail system is still trying, "
		    "and will keep trying %s%s; you do not need to send it "
		    "again. If it finally fails, you will get another report. "
		    "The last reason is given under each address.",
		    until > 0 ? "until " : "until the message has been in the "
		    "queue for as long as messages are kept (queue_lifetime)",
		    until > 0 ? date : "");
		put_folded(b, 0, para, "");
		free(para);
	}
	for (size_t i = 0; i < n; i++) {
		const struct rinfo *r = &rs[i];
		char *line;

		buf_str(b, "\n");
		if (r->orig != NULL)
			line = xasprintf("<%s> (you sent it to <%s>)", r->addr,
			    r->orig);
		else
			line = xasprintf("<%s>", r->addr);
		put_folded(b, 0, line, TEXT_INDENT);
		free(line);
		if (r->diag[0] != '\0' && r->remote[0] != '\0')
			line = xasprintf("%s said: %s", r->remote, r->diag);
		else if (r->diag[0] != '\0')
			line = xasprintf("%s", r->diag);
		else if (r->attempts == 0)
			line = xasprintf("(not tried: no reason was recorded)");
		else
			line = xasprintf("(no reason was recorded)");
		buf_str(b, TEXT_INDENT);
		put_folded(b, strlen(TEXT_INDENT), line, TEXT_INDENT);
		free(line);
	}
	buf_str(b, "\n");
	put_folded(b, 0, msg->ret == DSN_RET_FULL ? "The delivery report and "
	    "your message are attached." : "The delivery report and the header "
	    "section of your message are attached.", "");
	strbuf_printf(b, "Queue ID: %s\n", msg->id);
}

/* addr_field - "rfc822; a@b" or, for a UTF-8 address, "utf-8; ..." */
static void
put_addr_field(struct strbuf *b, const char *name, const char *addr, bool utf8)
{
	char *v = xasprintf("%s; %s", utf8 ? "utf-8" : "rfc822", addr);

	put_field(b, name, v);
	free(v);
}

/* the message/delivery-status part (RFC 3464 2.2, 2.3) */
static void
make_status(struct strbuf *b, const struct queue_msg *msg, const struct rinfo *rs,
    size_t n, enum bounce_action action, const char *hostname, time_t now,
    time_t until)
{
	char date[64];
	char *v;
	bool ignored = false;

	if (msg->envid != NULL && msg->envid[0] != '\0') {
		/* RFC 3464 2.2.1: first, as the sender gave it (decoded) */
		v = clean(msg->envid, DSN_ENVID_MAX, &ignored);
		put_field(b, "Original-Envelope-Id", v);
		free(v);
	}
	v = xasprintf("dns; %s", hostname);
	put_field(b, "Reporting-MTA", v);
	free(v);
	strbuf_printf(b, "X-Chamois-Queue-ID: %s\n", msg->id);
	rfc5322_date(date, sizeof(date), msg->created);
	put_field(b, "Arrival-Date", date);
	for (size_t i = 0; i < n; i++) {
		const struct rinfo *r = &rs[i];

		buf_str(b, "\n");
		if (r->orcpt_type != NULL) {
			v = xasprintf("%s; %s", r->orcpt_type, r->orig);
			put_field(b, "Original-Recipient", v);
			free(v);
		} else if (r->orig != NULL)
			put_addr_field(b, "Original-Recipient", r->orig, r->orig8);
		put_addr_field(b, "Final-Recipient", r->addr, r->addr8);
		put_field(b, "Action", r->action);
		put_field(b, "Status", r->status);
		if (r->remote[0] != '\0') {
			v = xasprintf("dns; %s", r->remote);
			put_field(b, "Remote-MTA", v);
			free(v);
		}
		if (r->diag[0] != '\0') {
			v = xasprintf("%s; %s", diag_is_reply(r->diag) ? "smtp" :
			    "X-Chamois", r->diag);
			put_field(b, "Diagnostic-Code", v);
			free(v);
		}
		/* the report is made right after the attempt that decided it */
		if (r->attempts > 0) {
			rfc5322_date(date, sizeof(date), now);
			put_field(b, "Last-Attempt-Date", date);
		}
		if (action == BOUNCE_DELAYED && until > 0) {
			rfc5322_date(date, sizeof(date), until);
			put_field(b, "Will-Retry-Until", date);
		}
	}
}

/*
 * make_headers - the original header section, made safe: it ends at its
 * first empty line (a body handed in by mistake stays out) or at a line
 * that is neither a field nor the continuation of one, CRLF becomes
 * LF, a CR elsewhere becomes a space, NUL
 * and bytes that are not UTF-8 are replaced, a line longer than
 * FOLD_HARD is cut with a fold, a section longer than HEADERS_MAX is cut
 * there, and the last line ends with a newline.  Sets *utf8 for
 * UTF-8 header fields (RFC 6532).
 */
static void
make_headers(struct strbuf *b, const char *h, size_t len, bool *utf8)
{
	const unsigned char *u = (const unsigned char *)h;
	size_t i = 0;
	bool infield = false;

	if (h == NULL)
		return;
	if (len > HEADERS_MAX)
		len = HEADERS_MAX;
	while (i < len) {
		size_t e = i, col = 0, next;

		while (e < len && u[e] != '\n')
			e++;
		next = e + 1;
		if (e > i && u[e - 1] == '\r')
			e--;	/* CRLF */
		if (e == i || !(header_field_name(h + i, e - i) > 0 || (infield &&
		    (u[i] == ' ' || u[i] == '\t'))))
			break;	/* the end of the header section */
		infield = true;
		while (i < e) {
			size_t k = utf8_seq(u + i, e - i);
			char c[4];

			if (col + (k ? k : 1) > FOLD_HARD) {
				strbuf_add(b, "\n ", 2);
				col = 1;
			}
			if (k == 0 || u[i] == '\0' || u[i] == '\r') {
				c[0] = u[i] == '\r' ? ' ' : '?';
				strbuf_add(b, c, 1);
				i++;
				col++;
				continue;
			}
			if (k > 1)
				*utf8 = true;
			strbuf_add(b, (const char *)u + i, k);
			i += k;
			col += k;
		}
		strbuf_add(b, "\n", 1);
		i = next;
	}
}

static void
put_part_head(struct strbuf *b, const char *boundary, const char *type,
    const char *desc, bool eightbit)
{
	strbuf_printf(b, "\n--%s\n", boundary);
	strbuf_printf(b, "Content-Description: %s\n", desc);
	strbuf_printf(b, "Content-Type: %s\n", type);
	strbuf_printf(b, "Content-Transfer-Encoding: %s\n\n", eightbit ? "8bit" : "7bit");
}

/*
 * build - the report; until, when not 0, is when the queue gives up on
 * the message (created + queue_lifetime): a delayed report then says so
 * in the text and in Will-Retry-Until.
 */
static char *
build(const struct queue_msg *msg, const bool *which,
    enum bounce_action action, const char *headers, size_t headers_len,
    const char *hostname, time_t now, time_t until, size_t *len)
{
	struct strbuf text = { 0 }, status = { 0 }, hdrs = { 0 }, out = { 0 };
	struct rinfo *rs;
	size_t n = 0;
	bool status8 = false, hdrs8 = false, ignored = false, full8 = false;
	/* RFC 3461 4.3: RET=FULL returns the message, if it is not too big */
	bool full = msg->ret == DSN_RET_FULL && headers != NULL &&
	    headers_len <= BOUNCE_FULL_MAX;
	char *boundary = NULL, *owner, *host, date[64];

	*len = 0;
	if (msg->nrcpts == 0)
		return NULL;
	host = clean(hostname != NULL && hostname[0] != '\0' ? hostname :
	    "localhost", 255, &ignored);
	rs = xcalloc(msg->nrcpts, sizeof(*rs));
	for (size_t i = 0; i < msg->nrcpts; i++)
		if (which == NULL || which[i])
			rinfo_fill(&rs[n++], &msg->rcpts[i], action, &status8);
	if (n == 0) {
		free(rs);
		free(host);
		return NULL;
	}
	/* the owner goes only into To: (RFC 6532 allows UTF-8 there) */
	owner = clean(msg->owner, 1000, &ignored);
	if (owner[0] == '\0') {
		free(owner);
		owner = xstrdup("postmaster");
	}

	make_text(&text, msg, rs, n, action, host, until);
	make_status(&status, msg, rs, n, action, host, now, until);
	if (full) {
		const char *end = memmem(headers, headers_len, "\n\n", 2);
		size_t hl = end ? (size_t)(end - headers) : headers_len;

		for (size_t i = 0; i < headers_len; i++)
			if ((unsigned char)headers[i] >= 0x80) {
				full8 = true;
				hdrs8 = hdrs8 || i < hl;	/* RFC 6532: message/global */
			}
		strbuf_add(&hdrs, headers, headers_len);
		if (headers_len > 0 && headers[headers_len - 1] != '\n')
			strbuf_add(&hdrs, "\n", 1);
	} else
		make_headers(&hdrs, headers, headers_len, &hdrs8);

	/* a boundary that none of the parts holds (RFC 2046 5.1.1) */
	for (;;) {
		boundary = xasprintf("=_%s.%016" PRIx64, msg->id, random_u64());
		if (memmem(text.p, text.len, boundary, strlen(boundary)) == NULL &&
		    memmem(status.p, status.len, boundary, strlen(boundary)) == NULL &&
		    (hdrs.len == 0 || memmem(hdrs.p, hdrs.len, boundary,
		    strlen(boundary)) == NULL))
			break;
		free(boundary);
	}

	rfc5322_date(date, sizeof(date), now);
	put_field(&out, "Date", date);
	strbuf_printf(&out, "From: Mail Delivery System <MAILER-DAEMON@%s>\n", host);
	if (strchr(owner, '@') != NULL)
		strbuf_printf(&out, "To: <%s>\n", owner);
	else
		strbuf_printf(&out, "To: <%s@%s>\n", owner, host);
	put_field(&out, "Subject", action == BOUNCE_DELAYED ?
	    "Delayed Mail (still being retried)" : action == BOUNCE_SUCCESS ?
	    "Successful Mail Delivery Report" :
	    "Undelivered Mail Returned to Sender");
	strbuf_printf(&out, "Message-ID: <%" PRId64 ".%016" PRIx64 ".%s@%s>\n",
	    (int64_t)now, random_u64(), msg->id[0] ? msg->id : "dsn", host);
	buf_str(&out, "Auto-Submitted: auto-replied\n");
	buf_str(&out, "MIME-Version: 1.0\n");
	strbuf_printf(&out, "Content-Type: multipart/report; report-type=delivery-status;\n"
	    "\tboundary=\"%s\"\n", boundary);
	if (status8 || hdrs8 || full8)
		buf_str(&out, "Content-Transfer-Encoding: 8bit\n");
	buf_str(&out, "\nThis is a MIME-encapsulated message.\n");

	put_part_head(&out, boundary, "text/plain; charset=utf-8", "Notification",
	    status8);
	strbuf_add(&out, text.p, text.len);
	put_part_head(&out, boundary, status8 ? "message/global-delivery-status" :
	    "message/delivery-status", "Delivery report", status8);
	strbuf_add(&out, status.p, status.len);
	if (full)
		put_part_head(&out, boundary, hdrs8 ? "message/global" :
		    "message/rfc822", action == BOUNCE_DELAYED ? "Delayed Message" :
		    action == BOUNCE_SUCCESS ? "Delivered Message" :
		    "Undelivered Message", full8);
	else
		put_part_head(&out, boundary, hdrs8 ? "message/global-headers" :
		    "text/rfc822-headers", action == BOUNCE_DELAYED ?
		    "Delayed Message Headers" : action == BOUNCE_SUCCESS ?
		    "Delivered Message Headers" : "Undelivered Message Headers",
		    hdrs8);
	if (hdrs.len > 0)
		strbuf_add(&out, hdrs.p, hdrs.len);
	strbuf_printf(&out, "\n--%s--\n", boundary);

	for (size_t i = 0; i < n; i++)
		rinfo_free(&rs[i]);
	free(rs);
	free(text.p);
	free(status.p);
	free(hdrs.p);
	free(boundary);
	free(owner);
	free(host);
	*len = out.len;
	return out.p;
}

/*
 * bounce_build - see queue.h.  which NULL selects every recipient.  With
 * no recipient selected there is nothing to report (RFC 3464 2.3 wants at
 * least one): NULL, *len 0.  A delayed report with retry_until 0 names the
 * queue_lifetime setting instead of a date (Will-Retry-Until is optional,
 * RFC 3464 2.3.9).
 */
char *
bounce_build(const struct queue_msg *msg, const bool *which,
    enum bounce_action action, const char *headers, size_t headers_len,
    const char *hostname, time_t now, time_t retry_until, size_t *len)
{
	return build(msg, which, action, headers, headers_len, hostname, now,
	    action == BOUNCE_DELAYED ? retry_until : 0, len);
}

/*
 * envelope.c - struct queue_msg <-> the record kept in the queue store.
 *
 * The record is text, one field a line, so that a queue can be read with
 * db_dump when something goes wrong:
 *
 *	chamois-queue 1
 *	id 5f0c1e2d3a4b6c7d
 *	created 1700000000
 *	sender alice@example.org
 *	owner alice
 *	uid -1
 *	size 1234
 *	body8bit 0
 *	smtputf8 0
 *	rcpts 1
 *	rcpt
 *	addr bob@example.net
 *	orig rfc822;bob@example.net
 *	local 0
 *	state deferred
 *	attempts 2
 *	next 1700000300
 *	status 4.4.1
 *	reply 451 4.4.1 try%20later%0A...
 *	remote mx.example.net
 *	reported 0
 *	end
 *
 * Version 2 adds the DSN parameters (RFC 3461): "envid" and "ret" (FULL,
 * HDRS or empty) after smtputf8, "notify" (NEVER, or SUCCESS, FAILURE
 * and DELAY joined by commas, or empty) and "orcpt" after reported.  A
 * record is written in version 1 when it has none of them, so that an
 * older chamoisd still reads it; a version 1 record reads as no DSN
 * parameters at all (NOTIFY as if FAILURE,DELAY: RFC 3461 4.1).
 *
 * The message fields come first, in this order, then one block per
 * recipient opened by "rcpt", then "end"; every field is required exactly
 * once and in order, so a truncated or spliced record is refused.  String
 * values are escaped: '%', control characters (LF and CR among them), DEL
 * and the space at either end of a value become %XX, so any byte but NUL
 * round-trips; octets >= 0x80 stay as they are (UTF-8 stays readable).
 * The first line names the version (1 or 2); a record of another
 * version is refused, never guessed at.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "queue.h"

#define RECORD_MAGIC	"chamois-queue"
#define RECORD_MAX_RCPTS	1000000	/* a sanity bound on a record's own count */

/* The record builder is a strbuf (common/util.h). */

static bool
needs_escape(unsigned char c, bool edge)
{
	return c < 0x20 || c == 0x7f || c == '%' || (edge && c == ' ');
}

/* rec_str - "key value\n" with value escaped (NULL is written as "") */
static void
rec_str(struct strbuf *r, const char *key, const char *val)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = val ? strlen(val) : 0;

	strbuf_printf(r, "%s ", key);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)val[i];

		if (needs_escape(c, i == 0 || i == n - 1)) {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			strbuf_add(r, e, 3);
		} else
			strbuf_add(r, &val[i], 1);
	}
	strbuf_add(r, "\n", 1);
}

static const char *const state_names[] = {
	[RS_PENDING] = "pending",
	[RS_DEFERRED] = "deferred",
	[RS_DELIVERED] = "delivered",
	[RS_FAILED] = "failed",
};

/* has_dsn - whether m needs version 2 (a DSN parameter) */
static bool
has_dsn(const struct queue_msg *m)
{
	if ((m->envid && m->envid[0]) || m->ret != DSN_RET_DEFAULT)
		return true;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].notify != 0 ||
		    (m->rcpts[i].orcpt && m->rcpts[i].orcpt[0]))
			return true;
	return false;
}

/* queue_msg_encode - the record (text, one field a line); caller frees */
char *
queue_msg_encode(const struct queue_msg *m, size_t *len)
{
	struct strbuf r = { 0 };
	bool v2 = has_dsn(m);
	char notify[64];

	strbuf_printf(&r, "%s %u\n", RECORD_MAGIC, v2 ? 2 : 1);
	rec_str(&r, "id", m->id);
	strbuf_printf(&r, "created %lld\n", (long long)m->created);
	rec_str(&r, "sender", m->sender);
	rec_str(&r, "owner", m->owner);
	strbuf_printf(&r, "uid %ld\n", m->uid);
	strbuf_printf(&r, "size %" PRIu64 "\n", m->size);
	strbuf_printf(&r, "body8bit %d\n", m->body8bit ? 1 : 0);
	strbuf_printf(&r, "smtputf8 %d\n", m->smtputf8 ? 1 : 0);
	if (v2) {
		rec_str(&r, "envid", m->envid);
		rec_str(&r, "ret", dsn_ret_name(m->ret));
	}
	strbuf_printf(&r, "rcpts %zu\n", m->nrcpts);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *rc = &m->rcpts[i];
		unsigned st = rc->state;

		if (st >= nitems(state_names))
			fatalx("queue_msg_encode: %s: recipient state %u", m->id, st);
		strbuf_add(&r, "rcpt\n", 5);
		rec_str(&r, "addr", rc->addr);
		rec_str(&r, "orig", rc->orig);
		strbuf_printf(&r, "local %d\n", rc->local ? 1 : 0);
		strbuf_printf(&r, "state %s\n", state_names[st]);
		strbuf_printf(&r, "attempts %u\n", rc->attempts);
		strbuf_printf(&r, "next %lld\n", (long long)rc->next_attempt);
		rec_str(&r, "status", rc->status);
		rec_str(&r, "reply", rc->last_reply);
		rec_str(&r, "remote", rc->remote_mta);
		strbuf_printf(&r, "reported %d\n", rc->reported ? 1 : 0);
		if (v2) {
			rec_str(&r, "notify", dsn_notify_format(rc->notify, notify,
			    sizeof(notify)));
			rec_str(&r, "orcpt", rc->orcpt);
		}
	}
	strbuf_add(&r, "end\n", 4);
	*len = r.len;
	return r.p;
}

/*
 * The parser: a cursor over the record, one line at a time.
 */
struct cur {
	const char *p, *end;
	char *val;		/* the current line's value, unescaped */
};

/*
 * next_field - the next line must be "key value" (or "key" alone when
 * bare); c->val gets the unescaped value.  -1 on anything else.
 */
static int
next_field(struct cur *c, const char *key, bool bare)
{
	size_t klen = strlen(key), n = 0;
	const char *nl, *v;

	free(c->val);
	c->val = NULL;
	nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
	if (nl == NULL || (size_t)(nl - c->p) < klen ||
	    memcmp(c->p, key, klen) != 0)
		return -1;
	v = c->p + klen;
	if (bare) {
		if (v != nl)
			return -1;
	} else if (v == nl || *v++ != ' ')
		return -1;
	c->val = xmalloc((size_t)(nl - v) + 1);
	for (; v < nl; v++) {
		unsigned char ch = (unsigned char)*v;

		if (ch == '%') {
			int hi, lo;

			if (nl - v < 3 || (hi = hex_digit(v[1])) < 0 ||
			    (lo = hex_digit(v[2])) < 0 || (hi == 0 && lo == 0))
				return -1;
			c->val[n++] = (char)(hi << 4 | lo);
			v += 2;
		} else if (ch < 0x20 || ch == 0x7f)
			return -1;	/* the encoder never leaves these raw */
		else
			c->val[n++] = (char)ch;
	}
	c->val[n] = '\0';
	c->p = nl + 1;
	return 0;
}

static int
field_str(struct cur *c, const char *key, char **out)
{
	if (next_field(c, key, false) == -1)
		return -1;
	*out = c->val;
	c->val = NULL;
	return 0;
}

/* field_ll - a decimal integer in [min, max], no sign unless min < 0 */
static int
field_ll(struct cur *c, const char *key, long long min, long long max,
    long long *out)
{
	char *e;
	const char *s;
	long long v;

	if (next_field(c, key, false) == -1)
		return -1;
	s = c->val;
	if (*s == '-' && min < 0)
		s++;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(c->val, &e, 10);
	if (errno != 0 || *e != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
field_u64(struct cur *c, const char *key, uint64_t *out)
{
	char *e;
	unsigned long long v;

	if (next_field(c, key, false) == -1)
		return -1;
	if (c->val[0] < '0' || c->val[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(c->val, &e, 10);
	if (errno != 0 || *e != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
field_bool(struct cur *c, const char *key, bool *out)
{
	long long v;

	if (field_ll(c, key, 0, 1, &v) == -1)
		return -1;
	*out = v == 1;
	return 0;
}

static bool
valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n != QUEUE_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int
decode_rcpt(struct cur *c, struct queue_rcpt *rc, bool v2)
{
	long long v;
	size_t st;

	if (next_field(c, "rcpt", true) == -1 ||
	    field_str(c, "addr", &rc->addr) == -1 ||
	    field_str(c, "orig", &rc->orig) == -1 ||
	    field_bool(c, "local", &rc->local) == -1 ||
	    next_field(c, "state", false) == -1)
		return -1;
	for (st = 0; st < nitems(state_names); st++)
		if (strcmp(c->val, state_names[st]) == 0)
			break;
	if (st == nitems(state_names))
		return -1;
	rc->state = (enum rcpt_state)st;
	if (field_ll(c, "attempts", 0, UINT_MAX, &v) == -1)
		return -1;
	rc->attempts = (unsigned)v;
	if (field_ll(c, "next", LLONG_MIN, LLONG_MAX, &v) == -1)
		return -1;
	rc->next_attempt = (time_t)v;
	if (next_field(c, "status", false) == -1 ||
	    !str_copy(rc->status, c->val, sizeof(rc->status)))
		return -1;
	if (field_str(c, "reply", &rc->last_reply) == -1 ||
	    field_str(c, "remote", &rc->remote_mta) == -1 ||
	    field_bool(c, "reported", &rc->reported) == -1)
		return -1;
	if (!v2)
		return 0;
	if (next_field(c, "notify", false) == -1)
		return -1;
	if (c->val[0] != '\0' && (rc->notify = dsn_notify_parse(c->val)) == 0)
		return -1;
	return field_str(c, "orcpt", &rc->orcpt);
}

/* queue_msg_decode - 0, or -1 for a malformed record or an unknown version */
int
queue_msg_decode(const char *rec, size_t len, struct queue_msg *m)
{
	struct cur c = { .p = rec, .end = rec + len };
	long long v;
	size_t i;
	bool v2;

	memset(m, 0, sizeof(*m));
	if (memchr(rec, '\0', len) != NULL)
		goto bad;
	if (next_field(&c, RECORD_MAGIC, false) == -1 ||
	    (strcmp(c.val, "1") != 0 && strcmp(c.val, "2") != 0))
		goto bad;
	v2 = c.val[0] == '2';
	if (next_field(&c, "id", false) == -1 || !valid_id(c.val))
		goto bad;
	memcpy(m->id, c.val, QUEUE_ID_LEN + 1);
	if (field_ll(&c, "created", LLONG_MIN, LLONG_MAX, &v) == -1)
		goto bad;
	m->created = (time_t)v;
	if (field_str(&c, "sender", &m->sender) == -1 ||
	    field_str(&c, "owner", &m->owner) == -1 ||
	    field_ll(&c, "uid", LONG_MIN, LONG_MAX, &v) == -1)
		goto bad;
	m->uid = (long)v;
	if (field_u64(&c, "size", &m->size) == -1 ||
	    field_bool(&c, "body8bit", &m->body8bit) == -1 ||
	    field_bool(&c, "smtputf8", &m->smtputf8) == -1)
		goto bad;
	if (v2) {
		int r;

		if (field_str(&c, "envid", &m->envid) == -1 ||
		    next_field(&c, "ret", false) == -1)
			goto bad;
		if (c.val[0] == '\0')
			m->ret = DSN_RET_DEFAULT;
		else if ((r = dsn_ret_parse(c.val)) < 0)
			goto bad;
		else
			m->ret = (enum dsn_ret)r;
	}
	if (field_ll(&c, "rcpts", 0, RECORD_MAX_RCPTS, &v) == -1)
		goto bad;
	/* the count is checked against the blocks, not trusted for an allocation */
	for (i = 0; i < (size_t)v; i++) {
		struct queue_rcpt *rc;

		m->rcpts = xreallocarray(m->rcpts, i + 1, sizeof(*m->rcpts));
		rc = &m->rcpts[i];
		memset(rc, 0, sizeof(*rc));
		m->nrcpts = i + 1;
		if (decode_rcpt(&c, rc, v2) == -1)
			goto bad;
	}
	if (next_field(&c, "end", true) == -1 || c.p != c.end)
		goto bad;
	free(c.val);
	/* the version it would be written in again */
	m->version = has_dsn(m) ? 2 : 1;
	return 0;
bad:
	free(c.val);
	queue_msg_free(m);
	return -1;
}

/* queue_msg_free - the fields, not the struct; leaves it zeroed */
/* rcpts_free - n recipients and their array */
static void
rcpts_free(struct queue_rcpt *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].addr);
		free(r[i].orig);
		free(r[i].last_reply);
		free(r[i].remote_mta);
		free(r[i].orcpt);
	}
	free(r);
}

void
queue_msg_free(struct queue_msg *m)
{
	rcpts_free(m->rcpts, m->nrcpts);
	rcpts_free(m->expanded, m->nexpanded);
	free(m->envid);
	free(m->sender);
	free(m->owner);
	memset(m, 0, sizeof(*m));
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* queue_msg_drop_expanded - see queue.h */
void
queue_msg_drop_expanded(struct queue_msg *m)
{
	rcpts_free(m->expanded, m->nexpanded);
	m->expanded = NULL;
	m->nexpanded = 0;
}

/* rcpts_copy - a deep copy of n recipients (NULL for none) */
static struct queue_rcpt *
rcpts_copy(const struct queue_rcpt *src, size_t n)
{
	struct queue_rcpt *dst;

	if (n == 0)
		return NULL;
	dst = xreallocarray(NULL, n, sizeof(*dst));
	for (size_t i = 0; i < n; i++) {
		struct queue_rcpt *d = &dst[i];
		const struct queue_rcpt *s = &src[i];

		*d = *s;
		d->addr = dup_or_null(s->addr);
		d->orig = dup_or_null(s->orig);
		d->last_reply = dup_or_null(s->last_reply);
		d->remote_mta = dup_or_null(s->remote_mta);
		d->orcpt = dup_or_null(s->orcpt);
	}
	return dst;
}

/* queue_msg_copy - a deep copy into dst (whose old contents are not freed) */
void
queue_msg_copy(struct queue_msg *dst, const struct queue_msg *src)
{
	*dst = *src;
	dst->sender = dup_or_null(src->sender);
	dst->owner = dup_or_null(src->owner);
	dst->envid = dup_or_null(src->envid);
	dst->rcpts = rcpts_copy(src->rcpts, src->nrcpts);
	dst->expanded = rcpts_copy(src->expanded, src->nexpanded);
}

/*
 * queue_new_id - 16 lowercase hex digits from 64 random bits.  Two ids
 * collide with probability about n^2 / 2^65 for n messages in the queue;
 * qstore_put refuses an id already stored (EEXIST) rather than overwrite.
 */
void
queue_new_id(char id[QUEUE_ID_LEN + 1])
{
	snprintf(id, QUEUE_ID_LEN + 1, "%016" PRIx64, random_u64());
}

/* queue_msg_done - true when no recipient is pending or deferred */
bool
queue_msg_done(const struct queue_msg *m)
{
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == RS_PENDING ||
		    m->rcpts[i].state == RS_DEFERRED)
			return false;
	return true;
}

const char *
queue_state_name(enum rcpt_state st)
{
	return (size_t)st < nitems(state_names) ? state_names[st] : "?";
}

/*
 * sendmail_parse.c - the pure parts of chamois-sendmail: stdin into LF
 * form, the header section (the recipients of -t), the From: field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "sendmail_parse.h"

/* ---------------------------------------------------------------- stdin */

void
sm_input_init(struct sm_input *in, bool ignore_dots, size_t max)
{
	memset(in, 0, sizeof(*in));
	in->ignore_dots = ignore_dots;
	in->max = max;
	in->first = true;
}

static void
buf_add(char **b, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t want = *cap ? *cap : 4096;

		while (want < *len + n + 1)
			want *= 2;
		*b = xreallocarray(*b, want, 1);
		*cap = want;
	}
	memcpy(*b + *len, p, n);
	*len += n;
	(*b)[*len] = '\0';
}

/* take_line - one complete line (its LF, if any, excluded) */
static void
take_line(struct sm_input *in, const char *p, size_t n)
{
	if (n > 0 && p[n - 1] == '\r')
		n--;
	in->lines++;
	if (in->nul)
		return;
	if (memchr(p, '\0', n) != NULL) {
		in->nul = true;
		in->nul_line = in->lines;
		return;
	}
	if (in->first) {
		in->first = false;
		/* an mbox envelope line is not part of the message */
		if (n >= 5 && memcmp(p, "From ", 5) == 0)
			return;
	}
	if (!in->ignore_dots && n == 1 && p[0] == '.') {
		in->done = true;
		return;
	}
	if (in->max && in->len + n + 1 > in->max) {
		in->too_big = true;
		return;
	}
	buf_add(&in->buf, &in->len, &in->cap, p, n);
	buf_add(&in->buf, &in->len, &in->cap, "\n", 1);
}

bool
sm_input_feed(struct sm_input *in, const char *p, size_t n)
{
	while (n > 0 && !in->done) {
		const char *lf = memchr(p, '\n', n);
		size_t k = lf ? (size_t)(lf - p) : n;

		if (lf == NULL) {
			/* keep the partial line (bounded by max like the rest) */
			if (in->max == 0 || in->linelen + k <= in->max + 2)
				buf_add(&in->line, &in->linelen, &in->linecap, p, k);
			else
				in->too_big = true;
			break;
		}
		if (in->linelen > 0) {
			if (in->max == 0 || in->linelen + k <= in->max + 2)
				buf_add(&in->line, &in->linelen, &in->linecap, p, k);
			else
				in->too_big = true;
			take_line(in, in->line, in->linelen);
			in->linelen = 0;
		} else
			take_line(in, p, k);
		p += k + 1;
		n -= k + 1;
	}
	return in->done;
}

void
sm_input_finish(struct sm_input *in)
{
	if (!in->done && in->linelen > 0)
		take_line(in, in->line, in->linelen);
	in->linelen = 0;
	if (in->buf == NULL)
		buf_add(&in->buf, &in->len, &in->cap, "", 0);
}

void
sm_input_free(struct sm_input *in)
{
	free(in->buf);
	free(in->line);
	memset(in, 0, sizeof(*in));
}

/* --------------------------------------------------------------- header */

enum sm_hline
sm_line_kind(const char *line, size_t len, bool in_field)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return SM_H_BLANK;
	if (line[0] == ' ' || line[0] == '\t')
		return in_field ? SM_H_CONT : SM_H_OTHER;
	return header_field_name(line, len) > 0 ? SM_H_FIELD : SM_H_OTHER;
}

size_t
sm_header_len(const char *msg, size_t len, bool *blank)
{
	size_t pos = 0;
	bool in_field = false;

	*blank = false;
	while (pos < len) {
		const char *lf = memchr(msg + pos, '\n', len - pos);
		size_t n = lf ? (size_t)(lf - (msg + pos)) : len - pos;

		switch (sm_line_kind(msg + pos, n, in_field)) {
		case SM_H_FIELD:
			in_field = true;
			break;
		case SM_H_CONT:
			break;
		case SM_H_BLANK:
			*blank = true;
			return lf ? pos + n + 1 : len;
		case SM_H_OTHER:
			return pos;
		}
		pos += n + (lf != NULL);
	}
	return pos;
}

/*
 * each_field - call fn for every field of hdr[0..len): its name line
 * start, the whole field's extent [start, end) and the value's start
 */
static int
each_field(const char *hdr, size_t len,
    int (*fn)(void *, const char *hdr, size_t start, size_t value, size_t end),
    void *arg)
{
	size_t pos = 0;

	while (pos < len) {
		const char *lf = memchr(hdr + pos, '\n', len - pos);
		size_t n = lf ? (size_t)(lf - (hdr + pos)) : len - pos;
		size_t start = pos, end, value;

		if (sm_line_kind(hdr + pos, n, false) != SM_H_FIELD)
			return 0;	/* the end of the header section */
		value = (size_t)((const char *)memchr(hdr + pos, ':', n) - hdr) + 1;
		end = pos + n + (lf != NULL);
		while (end < len && (hdr[end] == ' ' || hdr[end] == '\t')) {
			const char *l2 = memchr(hdr + end, '\n', len - end);

			end = l2 ? (size_t)(l2 - hdr) + 1 : len;
		}
		if (fn(arg, hdr, start, value, end) != 0)
			return -1;
		pos = end;
	}
	return 0;
}

struct has_arg {
	const char *name;
	bool found;
};

static int
has_fn(void *arg, const char *hdr, size_t start, size_t value, size_t end)
{
	struct has_arg *a = arg;

	if (header_field_is(hdr + start, end - start, a->name))
		a->found = true;
	return 0;
}

bool
sm_header_has(const char *hdr, size_t len, const char *name)
{
	struct has_arg a = { name, false };

	each_field(hdr, len, has_fn, &a);
	return a.found;
}

struct rcpts_arg {
	const char *domain;
	struct addr_list *out;
	char *err;
	size_t errsize;
};

static int
rcpts_fn(void *arg, const char *hdr, size_t start, size_t value, size_t end)
{
	static const char *names[] = { "To", "Cc", "Bcc" };
	struct rcpts_arg *a = arg;
	char err[256];

	for (size_t i = 0; i < nitems(names); i++) {
		if (!header_field_is(hdr + start, end - start, names[i]))
			continue;
		if (addr_list_parse(hdr + value, end - value, a->domain, a->out,
		    err, sizeof(err)) == -1) {
			snprintf(a->err, a->errsize, "%s: %s", names[i], err);
			return -1;
		}
	}
	return 0;
}

int
sm_header_rcpts(const char *hdr, size_t len, const char *domain,
    struct addr_list *out, char *err, size_t errsize)
{
	struct rcpts_arg a = { domain, out, err, errsize };

	return each_field(hdr, len, rcpts_fn, &a);
}

struct remove_arg {
	const char *name;
	char *out;
	size_t outlen;
	size_t copied;		/* hdr[0..copied) is decided */
};

static int
remove_fn(void *arg, const char *hdr, size_t start, size_t value, size_t end)
{
	struct remove_arg *a = arg;

	if (!header_field_is(hdr + start, end - start, a->name))
		return 0;
	memcpy(a->out + a->outlen, hdr + a->copied, start - a->copied);
	a->outlen += start - a->copied;
	a->copied = end;
	return 0;
}

char *
sm_remove_field(const char *msg, size_t len, const char *name, size_t *outlen)
{
	struct remove_arg a = { name, xmalloc(len + 1), 0, 0 };
	bool blank;
	size_t hlen = sm_header_len(msg, len, &blank);

	each_field(msg, hlen, remove_fn, &a);
	memcpy(a.out + a.outlen, msg + a.copied, len - a.copied);
	a.outlen += len - a.copied;
	a.out[a.outlen] = '\0';
	*outlen = a.outlen;
	return a.out;
}

/* ----------------------------------------------------------------- From */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
b64_append(char **b, size_t *len, size_t *cap, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		char q[4];

		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		q[0] = b64[(v >> 18) & 63];
		q[1] = b64[(v >> 12) & 63];
		q[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		q[3] = i + 2 < n ? b64[v & 63] : '=';
		buf_add(b, len, cap, q, 4);
	}
}

char *
sm_from_field(const char *fullname, const char *addr)
{
	char *name, *b = NULL;
	size_t n = 0, len = 0, cap = 0;
	bool ascii = true, plain = true;

	if (fullname == NULL)
		fullname = "";
	/* no control characters; blanks collapsed and trimmed */
	name = xmalloc(strlen(fullname) + 1);
	for (const char *p = fullname; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 32 || c == 127)
			c = ' ';
		if (c == ' ' && (n == 0 || name[n - 1] == ' '))
			continue;
		if (c >= 128)
			ascii = false;
		else if (c != ' ' && !((c >= 'a' && c <= 'z') || (c >= 'A' &&
		    c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("!#$%&'*+-/=?^_`{|}~", c)))
			plain = false;
		name[n++] = (char)c;
	}
	while (n > 0 && name[n - 1] == ' ')
		n--;
	name[n] = '\0';
	buf_add(&b, &len, &cap, "From: ", 6);
	if (n == 0) {
		buf_add(&b, &len, &cap, addr, strlen(addr));
		buf_add(&b, &len, &cap, "\n", 1);
		free(name);
		return b;
	}
	if (!ascii) {
		/* RFC 2047 encoded-words of at most 45 octets of UTF-8 each */
		size_t i = 0;

		while (i < n) {
			size_t k = n - i > 45 ? 45 : n - i;

			while (i + k < n && k > 0 &&
			    ((unsigned char)name[i + k] & 0xc0) == 0x80)
				k--;
			if (k == 0)
				k = n - i > 45 ? 45 : n - i;
			if (i > 0)
				buf_add(&b, &len, &cap, "\n ", 2);
			buf_add(&b, &len, &cap, "=?UTF-8?B?", 10);
			b64_append(&b, &len, &cap, (const unsigned char *)name + i, k);
			buf_add(&b, &len, &cap, "?=", 2);
			i += k;
		}
	} else if (plain) {
		buf_add(&b, &len, &cap, name, n);
	} else {
		buf_add(&b, &len, &cap, "\"", 1);
		for (size_t i = 0; i < n; i++) {
			if (name[i] == '"' || name[i] == '\\')
				buf_add(&b, &len, &cap, "\\", 1);
			buf_add(&b, &len, &cap, &name[i], 1);
		}
		buf_add(&b, &len, &cap, "\"", 1);
	}
	buf_add(&b, &len, &cap, " <", 2);
	buf_add(&b, &len, &cap, addr, strlen(addr));
	buf_add(&b, &len, &cap, ">\n", 2);
	free(name);
	return b;
}

/*
 * headedit.c - one change to a header section (RFC 5322 2.2): add,
 * insert, change or remove a field, as a content filter asks
 * (smtpd_tx_header_*, route.h; doc/filters.md).  Field names match
 * without regard to case; a folded value keeps its folding.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/body.h"
#include "../common/util.h"
#include "headedit.h"

/* field_end - the end of the field starting at p (after its last LF) */
static size_t
field_end(const char *h, size_t len, size_t p)
{
	while (p < len) {
		const char *nl = memchr(h + p, '\n', len - p);

		if (nl == NULL)
			return len;
		p = (size_t)(nl - h) + 1;
		if (p >= len || (h[p] != ' ' && h[p] != '\t'))
			return p;
	}
	return len;
}

/* is_named - the field at p is called name (header_field_is, any case) */
static bool
is_named(const char *h, size_t len, size_t p, const char *name)
{
	const char *nl = memchr(h + p, '\n', len - p);

	return header_field_is(h + p, nl ? (size_t)(nl - (h + p)) : len - p,
	    name);
}

/*
 * make_field - "name: value\n", value's CRLF made LF, a tab before each
 * line that would start without one; NULL for a bad name or value
 */
static char *
make_field(const char *name, const char *value, size_t *flen)
{
	size_t nl = strlen(name), vl = strlen(value), o = 0;
	char *f;

	if (nl == 0)
		return NULL;
	for (size_t i = 0; i < nl; i++)
		if (name[i] <= ' ' || name[i] > '~' || name[i] == ':')
			return NULL;
	while (vl > 0 && (value[vl - 1] == '\n' || value[vl - 1] == '\r'))
		vl--;
	f = xmalloc(nl + 2 * vl + 4);
	memcpy(f, name, nl);
	o = nl;
	f[o++] = ':';
	if (vl == 0 || (value[0] != ' ' && value[0] != '\t'))
		f[o++] = ' ';
	for (size_t i = 0; i < vl; i++) {
		char c = value[i];

		if (c == '\r') {
			if (i + 1 >= vl || value[i + 1] != '\n') {
				free(f);
				return NULL;	/* a bare CR */
			}
			continue;
		}
		f[o++] = c;
		if (c == '\n' && i + 1 < vl && value[i + 1] != ' ' &&
		    value[i + 1] != '\t')
			f[o++] = '\t';
	}
	f[o++] = '\n';
	f[o] = '\0';
	*flen = o;
	return f;
}

/* head_edit - see headedit.h */
char *
head_edit(const char *h, size_t len, enum head_op op, unsigned index,
    const char *name, const char *value, size_t *outlen)
{
	size_t at = len, cut = 0, flen = 0, p = 0;
	char *f = NULL, *out;
	unsigned seen = 0;

	if (value != NULL && memchr(value, '\0', strlen(value) + 1) !=
	    value + strlen(value))
		return NULL;
	if (value != NULL && (f = make_field(name, value, &flen)) == NULL)
		return NULL;
	if (value == NULL && op != HEAD_CHANGE)
		return NULL;
	switch (op) {
	case HEAD_ADD:
		break;
	case HEAD_INSERT:
		/* before the index-th field (0: the top) */
		for (unsigned i = 0; i < index && p < len; i++)
			p = field_end(h, len, p);
		at = p;
		break;
	case HEAD_CHANGE:
		for (p = 0; p < len; p = field_end(h, len, p))
			if (is_named(h, len, p, name) && ++seen == index) {
				at = p;
				cut = field_end(h, len, p) - p;
				break;
			}
		if (seen != index && f == NULL) {	/* nothing to remove */
			*outlen = len;
			out = xmalloc(len + 1);
			memcpy(out, h, len);
			out[len] = '\0';
			return out;
		}
		break;
	}
	if (len - cut + flen > HEADER_EDIT_MAX) {
		free(f);
		return NULL;
	}
	*outlen = len - cut + flen;
	out = xmalloc(*outlen + 1);
	memcpy(out, h, at);
	if (f != NULL)
		memcpy(out + at, f, flen);
	memcpy(out + at + flen, h + at + cut, len - at - cut);
	out[*outlen] = '\0';
	free(f);
	return out;
}

/* head_section_len - see headedit.h */
bool
head_section_len(const char *t, size_t len, bool more, size_t *hlen)
{
	const char *p;

	if (len > 0 && t[0] == '\n') {
		*hlen = 0;
		return true;
	}
	for (p = t; (p = memchr(p, '\n', len - (size_t)(p - t))) != NULL; p++)
		if ((size_t)(p - t) + 1 < len && p[1] == '\n') {
			*hlen = (size_t)(p - t) + 1;
			return true;
		}
	if (more)
		return false;
	*hlen = len;		/* a message that is all header */
	return true;
}

/* head_read - see headedit.h */
char *
head_read(const struct body *b, uint64_t off, bool complete, size_t *hlen,
    bool *toolong)
{
	size_t cap = 16384, got = 0;
	char *buf = xmalloc(cap + 1);

	*toolong = false;
	for (;;) {
		ssize_t n = body_read_at(b, off + got, buf + got, cap - got);

		if (n > 0 && (got += (size_t)n) < cap)
			continue;
		/* cap read, or the end of what b holds (a read error: as its end) */
		if (head_section_len(buf, got, got == cap || !complete, hlen)) {
			if (*hlen > HEADER_EDIT_MAX)
				break;
			buf[*hlen] = '\0';
			return buf;
		}
		if (got < cap)		/* b holds no more yet */
			break;
		if (cap > HEADER_EDIT_MAX) {
			*toolong = true;
			break;
		}
		cap = cap * 2 > HEADER_EDIT_MAX + 1 ? HEADER_EDIT_MAX + 1 : cap * 2;
		buf = xreallocarray(buf, cap + 1, 1);
	}
	if (complete && got > HEADER_EDIT_MAX)
		*toolong = true;
	free(buf);
	return NULL;
}

/*
 * dsn.c - NOTIFY, RET, ENVID, ORCPT and xtext (RFC 3461).  Pure.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dsn.h"
#include "util.h"

static const struct {
	const char *name;
	unsigned bit;
} notify_words[] = {
	{ "NEVER", DSN_NOTIFY_NEVER },
	{ "SUCCESS", DSN_NOTIFY_SUCCESS },
	{ "FAILURE", DSN_NOTIFY_FAILURE },
	{ "DELAY", DSN_NOTIFY_DELAY },
};

/* dsn_notify_parse - see dsn.h */
unsigned
dsn_notify_parse(const char *v)
{
	unsigned set = 0;

	for (;;) {
		size_t n = strcspn(v, ","), i;

		for (i = 0; i < nitems(notify_words); i++)
			if (strlen(notify_words[i].name) == n &&
			    strncasecmp(v, notify_words[i].name, n) == 0)
				break;
		if (i == nitems(notify_words) || (set & notify_words[i].bit))
			return 0;
		set |= notify_words[i].bit;
		if (v[n] == '\0')
			break;
		v += n + 1;
	}
	/* RFC 3461 4.1: NEVER stands alone */
	if ((set & DSN_NOTIFY_NEVER) && set != DSN_NOTIFY_NEVER)
		return 0;
	return set;
}

/* dsn_notify_format - see dsn.h */
const char *
dsn_notify_format(unsigned notify, char *out, size_t size)
{
	size_t o = 0;

	if (size == 0)
		return out;
	out[0] = '\0';
	for (size_t i = 0; i < nitems(notify_words); i++) {
		size_t n = strlen(notify_words[i].name);

		if (!(notify & notify_words[i].bit) || o + n + 2 > size)
			continue;
		if (o > 0)
			out[o++] = ',';
		memcpy(out + o, notify_words[i].name, n + 1);
		o += n;
	}
	return out;
}

/* dsn_wants - see dsn.h */
bool
dsn_wants(unsigned notify, unsigned event)
{
	if (notify == 0)	/* RFC 3461 4.1: as if FAILURE,DELAY */
		notify = DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY;
	return (notify & event) != 0;
}

/* dsn_ret_parse - see dsn.h */
int
dsn_ret_parse(const char *v)
{
	if (strcasecmp(v, "FULL") == 0)
		return DSN_RET_FULL;
	if (strcasecmp(v, "HDRS") == 0)
		return DSN_RET_HDRS;
	return -1;
}

/* dsn_ret_name - see dsn.h */
const char *
dsn_ret_name(enum dsn_ret r)
{
	return r == DSN_RET_FULL ? "FULL" : r == DSN_RET_HDRS ? "HDRS" : "";
}

/* dsn_xtext_decode - see dsn.h */
bool
dsn_xtext_decode(const char *in, char *out, size_t size)
{
	size_t o = 0;

	for (const char *p = in; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '+') {
			int hi, lo;

			/* RFC 3461 says upper case; lower case is taken too */
			if ((hi = hex_digit(p[1])) < 0 || (lo = hex_digit(p[2])) < 0)
				return false;
			c = (unsigned char)(hi << 4 | lo);
			p += 2;
			if (c < 0x20 || c > 0x7e)
				return false;
		} else if (c < 0x21 || c > 0x7e || c == '=')
			return false;
		if (o + 1 >= size)
			return false;
		out[o++] = (char)c;
	}
	if (size == 0)
		return false;
	out[o] = '\0';
	return true;
}

/* dsn_xtext_encode - see dsn.h */
char *
dsn_xtext_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xmalloc(strlen(s) * 3 + 1), *o = out;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x21 || c > 0x7e || c == '+' || c == '=') {
			*o++ = '+';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else
			*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

/* dsn_envid_parse - see dsn.h */
bool
dsn_envid_parse(const char *v, char *out, size_t size)
{
	return v[0] != '\0' && strlen(v) <= DSN_ENVID_MAX &&
	    dsn_xtext_decode(v, out, size);
}

/* atom_char - RFC 5322 atext */
static bool
atom_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~",
	    c) != NULL);
}

/* dsn_orcpt_parse - see dsn.h */
bool
dsn_orcpt_parse(const char *v, char *out, size_t size)
{
	const char *semi = strchr(v, ';');
	size_t tlen;

	if (strlen(v) > DSN_ORCPT_MAX || semi == NULL || semi == v ||
	    semi[1] == '\0')
		return false;
	tlen = (size_t)(semi - v);
	for (size_t i = 0; i < tlen; i++)
		if (!atom_char((unsigned char)v[i]))
			return false;
	if (tlen + 1 >= size)
		return false;
	memcpy(out, v, tlen + 1);
	return dsn_xtext_decode(semi + 1, out + tlen + 1, size - tlen - 1);
}

/* dsn_orcpt_param - see dsn.h */
char *
dsn_orcpt_param(const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	char *x, *out;

	if (semi == NULL)
		return dsn_xtext_encode(orcpt);
	x = dsn_xtext_encode(semi + 1);
	out = xasprintf("%.*s;%s", (int)(semi - orcpt), orcpt, x);
	free(x);
	return out;
}

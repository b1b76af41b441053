/*
 * dovecot_auth.c - the wire part of Dovecot's authentication protocol,
 * client side (dovecot_auth.h).  A server line is split at its tabs in
 * place; every field we keep points into it.  Values we send are checked
 * for control octets, so a client's base64 or mechanism can never add a
 * field or a line of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dovecot_auth.h"

#define DAV_FIELDS_MAX	32

/* number - a decimal request id or version; false if not all digits */
static bool
number(const char *s, unsigned long *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	*v = strtoul(s, &end, 10);
	return *end == '\0' && *v <= 0xffffffffUL;
}

enum dav_kind
dav_parse(char *line, size_t len, struct dav_line *out)
{
	char *f[DAV_FIELDS_MAX];
	size_t n = 0;
	unsigned long v;

	memset(out, 0, sizeof(*out));
	out->kind = DAV_BAD;
	if (len == 0 || len > DAV_LINE_MAX || memchr(line, '\0', len) != NULL)
		return DAV_BAD;
	line[len] = '\0';
	for (char *p = line; ; ) {
		if (n == DAV_FIELDS_MAX)
			return DAV_BAD;
		f[n++] = p;
		if ((p = strchr(p, '\t')) == NULL)
			break;
		*p++ = '\0';
	}
	if (strcmp(f[0], "VERSION") == 0) {
		if (n < 3 || !number(f[1], &v) || v != 1)
			return DAV_BAD;
		out->major = (unsigned)v;
		if (!number(f[2], &v))
			return DAV_BAD;
		out->minor = (unsigned)v;
		return out->kind = DAV_VERSION;
	}
	if (strcmp(f[0], "MECH") == 0) {
		if (n < 2 || f[1][0] == '\0')
			return DAV_BAD;
		out->arg = f[1];
		for (size_t i = 2; i < n; i++)
			if (strcmp(f[i], "private") == 0)
				out->private_mech = true;
		return out->kind = DAV_MECH;
	}
	if (strcmp(f[0], "SPID") == 0)
		return out->kind = DAV_SPID;
	if (strcmp(f[0], "CUID") == 0)
		return out->kind = DAV_CUID;
	if (strcmp(f[0], "COOKIE") == 0)
		return out->kind = DAV_COOKIE;
	if (strcmp(f[0], "DONE") == 0)
		return out->kind = DAV_DONE;

	enum dav_kind k;
	if (strcmp(f[0], "OK") == 0)
		k = DAV_OK;
	else if (strcmp(f[0], "CONT") == 0)
		k = DAV_CONT;
	else if (strcmp(f[0], "FAIL") == 0)
		k = DAV_FAIL;
	else
		return out->kind = DAV_OTHER;
	if (n < 2 || !number(f[1], &out->id))
		return DAV_BAD;
	if (k == DAV_CONT) {
		/* the challenge may be empty, never absent */
		if (n != 3)
			return DAV_BAD;
		out->arg = f[2];
		return out->kind = k;
	}
	for (size_t i = 2; i < n; i++) {
		if (strncmp(f[i], "user=", 5) == 0)
			out->user = f[i] + 5;
		else if (strcmp(f[i], "temp") == 0)
			out->temp = true;
	}
	if (k == DAV_OK)
		out->temp = false;
	return out->kind = k;
}

/* clean - no control octet (tab, CR, LF, NUL...) in a value we send */
static bool
clean(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* done - snprintf's result as "it fits" */
static int
done(int r, size_t size)
{
	return r < 0 || (size_t)r >= size ? -1 : r;
}

int
dav_format_auth(char *out, size_t size, unsigned long id, const char *mech,
    bool secured, const char *initial)
{
	return dav_format_auth_from(out, size, id, mech, secured, initial, NULL,
	    NULL, false);
}

int
dav_format_auth_from(char *out, size_t size, unsigned long id,
    const char *mech, bool secured, const char *initial, const char *lip,
    const char *rip, bool no_penalty)
{
	if (mech[0] == '\0' || !clean(mech) ||
	    (initial != NULL && !clean(initial)) ||
	    (lip != NULL && !clean(lip)) || (rip != NULL && !clean(rip)))
		return -1;
	return done(snprintf(out, size,
	    "AUTH\t%lu\t%s\tservice=smtp%s%s%s%s%s%s%s%s\n", id, mech,
	    secured ? "\tsecured" : "", no_penalty ? "\tno-penalty" : "",
	    lip != NULL ? "\tlip=" : "", lip != NULL ? lip : "",
	    rip != NULL ? "\trip=" : "", rip != NULL ? rip : "",
	    initial != NULL ? "\tresp=" : "", initial != NULL ? initial : ""),
	    size);
}

int
dav_format_cont(char *out, size_t size, unsigned long id, const char *b64)
{
	if (!clean(b64))
		return -1;
	return done(snprintf(out, size, "CONT\t%lu\t%s\n", id, b64), size);
}

/*
 * addr.c - mailbox syntax of RFC 5321 4.1.2, extended to UTF-8 by
 * RFC 6531 3.3, and the keys under which tables look addresses up
 * (ASCII case folded, domains as IDNA A-labels; chamois.conf(5), ADDRESSES).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "addr.h"
#include "util.h"

/* utf8_valid - well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF) */
bool
utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + n;

	while (p < e) {
		unsigned c = *p, len, cp;

		if (c < 0x80) {
			p++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			len = 2; cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3; cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4; cp = c & 0x07;
		} else
			return false;
		if ((size_t)(e - p) < len)
			return false;
		for (unsigned i = 1; i < len; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		p += len;
	}
	return true;
}

/* RFC 5322 atext, plus any non-ASCII octet (RFC 6531 UTF8-non-ascii) */
static bool
is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool
is_letdig(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80;
}

/* dot_string_len - length of the Dot-string at s, 0 if none */
static size_t
dot_string_len(const char *s, size_t n)
{
	size_t i = 0;

	for (;;) {
		size_t start = i;

		while (i < n && is_atext((unsigned char)s[i]))
			i++;
		if (i == start)
			return 0;
		if (i < n && s[i] == '.') {
			i++;
			continue;
		}
		return i;
	}
}

/* domain_len - length of the Domain or address-literal at s, 0 if none */
static size_t
domain_len(const char *s, size_t n)
{
	size_t i = 0;

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		char lit[64];
		unsigned char bin[16];
		size_t len;

		if (close == NULL)
			return 0;
		len = (size_t)(close - s) - 1;
		if (len == 0 || len >= sizeof(lit))
			return 0;
		memcpy(lit, s + 1, len);
		lit[len] = '\0';
		if (strncasecmp(lit, "IPv6:", 5) == 0) {
			if (inet_pton(AF_INET6, lit + 5, bin) != 1)
				return 0;
		} else if (inet_pton(AF_INET, lit, bin) != 1)
			return 0;
		return len + 2;
	}
	for (;;) {
		size_t start = i;

		while (i < n && (is_letdig((unsigned char)s[i]) || s[i] == '-'))
			i++;
		/*
		 * 63 octets per label (RFC 1035 2.3.4); for a U-label the limit
		 * is on its A-label (RFC 5890 2.3.2.1), checked by IDNA later
		 */
		if (i == start || s[start] == '-' || s[i - 1] == '-' ||
		    (i - start > 63 && str_is_ascii(s + start, i - start)))
			return 0;
		if (i + 1 < n && s[i] == '.' && s[i + 1] != '>' &&
		    s[i + 1] != '\0') {
			i++;
			continue;
		}
		return i;
	}
}

/*
 * parse_mailbox - Local-part "@" Domain at s (n octets available); returns
 * the octets used, 0 on a syntax error.
 */
static size_t
parse_mailbox(const char *s, size_t n, struct mailaddr *a, int flags,
    enum addr_status *st)
{
	size_t i, dl;

	*st = ADDR_SYNTAX;
	if (n > 0 && s[0] == '"') {
		char buf[PATH_MAX_OCTETS + 1];
		size_t o = 0;

		for (i = 1; i < n && s[i] != '"'; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '\\') {
				if (++i >= n || (unsigned char)s[i] < 32 ||
				    (unsigned char)s[i] > 126)
					return 0;
				c = (unsigned char)s[i];
			} else if (c < 32 || c == 127)
				return 0;
			if (o + 2 >= sizeof(buf)) {
				*st = ADDR_TOOLONG;
				return 0;
			}
			if (c == '"' || c == '\\')
				buf[o++] = '\\';
			buf[o++] = (char)c;
		}
		if (i >= n)
			return 0;
		i++;
		buf[o] = '\0';
		/* "alice" is alice: keep quotes only where they are needed */
		if (o > 0 && dot_string_len(buf, o) == o)
			str_copy(a->local, buf, sizeof(a->local));
		else if (!bsnprintf(a->local, sizeof(a->local), "\"%s\"", buf)) {
			*st = ADDR_TOOLONG;
			return 0;
		}
	} else {
		i = dot_string_len(s, n);
		if (i == 0)
			return 0;
		if (i >= sizeof(a->local)) {
			*st = ADDR_TOOLONG;
			return 0;
		}
		memcpy(a->local, s, i);
		a->local[i] = '\0';
	}
	if (i >= n || s[i] != '@') {
		if ((flags & ADDR_F_NODOMAIN) &&
		    strcasecmp(a->local, "postmaster") == 0) {
			a->domain[0] = '\0';
			*st = ADDR_OK;
			return i;
		}
		return 0;
	}
	i++;
	dl = domain_len(s + i, n - i);
	if (dl == 0)
		return 0;
	if (dl > DOMAIN_MAX) {
		*st = ADDR_TOOLONG;
		return 0;
	}
	memcpy(a->domain, s + i, dl);
	a->domain[dl] = '\0';
	if (a->domain[0] != '[' && !str_is_ascii(a->domain, dl)) {
		char key[DOMAIN_MAX + 1];

		if (!addr_domain_key(a->domain, key, sizeof(key)))
			return 0;
	}
	*st = ADDR_OK;
	return i + dl;
}

static enum addr_status
addr_check(struct mailaddr *a, int flags)
{
	size_t ll = strlen(a->local), dl = strlen(a->domain);

	/* RFC 5321 4.5.3.1.3: 256 octets for the path, '<' and '>' included */
	if (ll + dl + 1 > PATH_MAX_OCTETS - 2)
		return ADDR_TOOLONG;
	if (!utf8_valid(a->local, ll) || !utf8_valid(a->domain, dl))
		return ADDR_SYNTAX;
	if (!(flags & ADDR_F_UTF8) &&
	    (!str_is_ascii(a->local, ll) || !str_is_ascii(a->domain, dl)))
		return ADDR_NONASCII;
	return ADDR_OK;
}

enum addr_status
addr_parse_path(const char **sp, struct mailaddr *a, int flags)
{
	const char *s = *sp, *close;
	enum addr_status st;
	size_t n, used;

	if (*s != '<')
		return ADDR_SYNTAX;
	s++;
	if (*s == '>') {
		*sp = s + 1;
		return ADDR_NULL;
	}
	/* A-d-l: "@" Domain *( "," "@" Domain ) ":" is accepted and ignored */
	if (*s == '@') {
		const char *colon = strchr(s, ':');
		const char *gt = strchr(s, '>');

		if (colon == NULL || (gt && gt < colon))
			return ADDR_SYNTAX;
		for (const char *p = s; p < colon;) {
			size_t dl;

			if (*p != '@')
				return ADDR_SYNTAX;
			dl = domain_len(p + 1, (size_t)(colon - p - 1));
			if (dl == 0)
				return ADDR_SYNTAX;
			p += 1 + dl;
			if (p < colon && (*p++ != ',' || p == colon))
				return ADDR_SYNTAX;
		}
		s = colon + 1;
	}
	n = strlen(s);
	memset(a, 0, sizeof(*a));
	used = parse_mailbox(s, n, a, flags, &st);
	if (used == 0)
		return st;
	if (s[used] != '>')
		return ADDR_SYNTAX;
	close = s + used;
	if ((st = addr_check(a, flags)) != ADDR_OK)
		return st;
	*sp = close + 1;
	return ADDR_OK;
}

enum addr_status
addr_parse(const char *s, struct mailaddr *a, int flags)
{
	enum addr_status st;
	size_t n = strlen(s), used;

	memset(a, 0, sizeof(*a));
	used = parse_mailbox(s, n, a, flags, &st);
	if (used == 0)
		return st;
	if (used != n)
		return ADDR_SYNTAX;
	return addr_check(a, flags);
}

/* labels_nonempty - "a.b" yes; "", ".a", "a.", "a..b" no */
static bool
labels_nonempty(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && s[0] != '.' && s[n - 1] != '.' &&
	    strstr(s, "..") == NULL;
}

bool
addr_domain_key(const char *domain, char *out, size_t size)
{
	char *ascii = NULL;
	bool ok;

	if (str_is_ascii(domain, strlen(domain))) {
		if (!str_copy(out, domain, size))
			return false;
		str_lower(out);
		return true;
	}
	if (idn2_to_ascii_8z(domain, &ascii,
	    IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK)
		return false;
	/*
	 * the mapping drops ignorable characters (U+00AD SOFT HYPHEN, ...):
	 * a label made only of them comes out empty, and "x@\u00ad" would
	 * have no domain at all (found by fuzz_command)
	 */
	ok = labels_nonempty(ascii) && str_copy(out, ascii, size);
	idn2_free(ascii);
	if (ok)
		str_lower(out);
	return ok;
}

bool
dns_name_ok(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)		/* RFC 1035 2.3.4 */
		return false;
	for (size_t i = 0; i < len; i++) {
		if (name[i] != '.') {
			if (++label > 63)
				return false;
			continue;
		}
		if (label == 0)
			return false;	/* an empty label */
		label = 0;
	}
	return label > 0;
}

bool
addr_key(const struct mailaddr *a, char *out, size_t size)
{
	char dom[DOMAIN_MAX + 1];
	size_t ll = strlen(a->local);

	if (a->domain[0] == '\0')
		dom[0] = '\0';
	else if (a->domain[0] == '[')
		str_copy(dom, a->domain, sizeof(dom));
	else if (!addr_domain_key(a->domain, dom, sizeof(dom)))
		return false;
	if (ll + 1 + strlen(dom) + 1 > size)
		return false;
	memcpy(out, a->local, ll + 1);
	str_lower(out);
	if (dom[0]) {
		out[ll] = '@';
		memcpy(out + ll + 1, dom, strlen(dom) + 1);
	}
	return true;
}

void
addr_format(const struct mailaddr *a, char *out, size_t size)
{
	if (a->domain[0])
		bsnprintf(out, size, "%s@%s", a->local, a->domain);
	else
		str_copy(out, a->local, size);
}

bool
addr_is_dot_string(const char *s, size_t n)
{
	return n > 0 && dot_string_len(s, n) == n;
}

bool
domain_within(const char *d, const char *dom)
{
	size_t dl = strlen(d), l = strlen(dom);

	if (l == 0 || dl < l || strcmp(d + dl - l, dom) != 0)
		return false;
	return dl == l || d[dl - l - 1] == '.';
}

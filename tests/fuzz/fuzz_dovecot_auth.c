/*
 * fuzz_dovecot_auth - the Dovecot auth protocol's line parser
 * (submission/dovecot_auth.c dav_parse) and its AUTH/CONT formatters.
 *
 * Input: what an auth server sends, cut into lines at LF (as a reader
 * would) and parsed one by one in a buffer of exactly len + 1 octets, so
 * ASan sees any read or write past it.  Checks: a line longer than
 * DAV_LINE_MAX is DAV_BAD; the fields kept point into the line; a CONT's
 * challenge fed back through dav_format_cont gives one line, or -1 when
 * it holds a control octet.
 */
#include "fuzz.h"
#include "submission/dovecot_auth.h"

static bool
inside(const char *p, const char *buf, size_t len)
{
	return p >= buf && p <= buf + len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t start = 0;

	while (start < size) {
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t len = (nl != NULL ? (size_t)(nl - data) : size) - start;
		char *buf = malloc(len + 1);
		struct dav_line l;
		enum dav_kind k;

		FUZZ_CHECK(buf != NULL);
		memcpy(buf, data + start, len);
		k = dav_parse(buf, len, &l);
		FUZZ_CHECK(k == l.kind);
		if (len > DAV_LINE_MAX)
			FUZZ_CHECK(k == DAV_BAD);
		if (l.arg != NULL)
			FUZZ_CHECK(inside(l.arg, buf, len));
		if (l.user != NULL)
			FUZZ_CHECK(inside(l.user, buf, len));
		if (k == DAV_OK)
			FUZZ_CHECK(!l.temp);
		if (k == DAV_CONT) {
			size_t n = strlen(l.arg) + 32;
			char *out = malloc(n);
			int r;

			FUZZ_CHECK(out != NULL);
			r = dav_format_cont(out, n, l.id, l.arg);
			if (r >= 0) {
				FUZZ_CHECK((size_t)r == strlen(out));
				FUZZ_CHECK(strchr(out, '\n') == out + r - 1);
			}
			free(out);
		}
		free(buf);
		start += len + 1;
	}
	return 0;
}
